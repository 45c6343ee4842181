package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-mcp/gatehouse/internal/config"
	"github.com/gatehouse-mcp/gatehouse/internal/syncbuf"
)

// startDev runs `gatehouse dev` in-process on fresh ports with data in
// dir and returns the issuer and the demo MCP server's URL; it stops when
// the test ends.
func startDev(t *testing.T, dir string) (issuer, mcpURL string) {
	t.Helper()
	issuer, mcpURL, _ = startDevArgs(t, dir)
	return issuer, mcpURL
}

// startDevArgs is startDev with more flags; it returns the banner too.
func startDevArgs(t *testing.T, dir string, extra ...string) (issuer, mcpURL, banner string) {
	t.Helper()
	listen := "127.0.0.1:" + strconv.Itoa(freePort(t))
	mcpListen := "127.0.0.1:" + strconv.Itoa(freePort(t))
	ctx, cancel := context.WithCancel(context.Background())
	out := &syncbuf.Buffer{}
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, append([]string{"dev", "--data", dir, "--listen", listen, "--mcp-listen", mcpListen}, extra...), out)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			t.Errorf("dev did not stop within 15s")
		}
	})
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(out.String(), "Press Ctrl-C") {
		select {
		case err := <-done:
			t.Fatalf("dev returned before serving: %v\n%s", err, out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no banner after 20s; output:\n%s", out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	return "http://" + listen, "http://" + mcpListen + "/mcp", out.String()
}

// postJSON POSTs body as JSON and returns the status and decoded body.
func postJSON(t *testing.T, u, body string) (int, map[string]any) {
	t.Helper()
	resp, err := http.Post(u, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	b, _ := io.ReadAll(resp.Body)
	_ = json.Unmarshal(b, &m)
	return resp.StatusCode, m
}

// clientCredentials asks issuer for a client_credentials token.
func clientCredentials(t *testing.T, issuer, id, secret, resource string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, issuer+"/token", strings.NewReader(url.Values{"grant_type": {"client_credentials"}, "resource": {resource}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(secret))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	b, _ := io.ReadAll(resp.Body)
	_ = json.Unmarshal(b, &m)
	return resp.StatusCode, m
}

var cliSecretRE = regexp.MustCompile(`client_secret:\s+(\S+)`)

// createMachineClient runs `gatehouse client create` for a confidential
// client_credentials client and returns its secret.
func createMachineClient(t *testing.T, id string, storeArgs ...string) string {
	t.Helper()
	var out bytes.Buffer
	args := append([]string{"client", "create", "--id", id, "--confidential", "--grant-type", "client_credentials"}, storeArgs...)
	if err := run(context.Background(), args, &out); err != nil {
		t.Fatalf("client create: %v\n%s", err, out.String())
	}
	m := cliSecretRE.FindStringSubmatch(out.String())
	if m == nil {
		t.Fatalf("client create printed no secret:\n%s", out.String())
	}
	return m[1]
}

// TestMachineTokensEndToEnd (issue 11 F1) through the real commands: in
// dev (open registration) and in serve, a self-registered client asking
// for client_credentials is refused with the rule's name; an operator
// client gets tokens only for a resource added with
// --accept-client-credentials (the demo resource refuses it); and the
// operator's registration opt-in works within its scopes.
func TestMachineTokensEndToEnd(t *testing.T) {
	ccReg := `{"client_name":"Worker","grant_types":["client_credentials"],"token_endpoint_auth_method":"client_secret_basic"}`
	wantRefusal := func(t *testing.T, status int, body map[string]any, wantStatus int, code, desc string) {
		t.Helper()
		d, _ := body["error_description"].(string)
		if status != wantStatus || body["error"] != code || !strings.Contains(d, desc) {
			t.Errorf("got %d %v, want %d %s with %q", status, body, wantStatus, code, desc)
		}
	}

	t.Run("dev", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "data")
		issuer, mcpURL := startDev(t, dir)
		s, body := postJSON(t, issuer+"/register", ccReg)
		wantRefusal(t, s, body, 400, "invalid_client_metadata", "registration.allow_client_credentials")
		secret := createMachineClient(t, "svc", "--data", dir)
		s, body = clientCredentials(t, issuer, "svc", secret, mcpURL)
		wantRefusal(t, s, body, 400, "invalid_target", "does not accept client_credentials tokens")
	})

	t.Run("serve", func(t *testing.T) {
		cfg := serveConfig(t, "http://127.0.0.1:1", "allow_insecure_issuer: true\nregistration:\n  mode: open\n")
		for _, args := range [][]string{
			{"resource", "add", "https://users.example.com/mcp", "--scope", "notes:read", "--default-scope", "notes:read"},
			{"resource", "add", "https://machines.example.com/mcp", "--scope", "notes:read", "--default-scope", "notes:read", "--accept-client-credentials"},
		} {
			var out bytes.Buffer
			if err := run(context.Background(), append(args, "--config", cfg), &out); err != nil {
				t.Fatalf("%v: %v\n%s", args, err, out.String())
			}
		}
		secret := createMachineClient(t, "svc", "--config", cfg)
		// Requests go to the bound address; the issuer in the file only
		// names the server in what it issues.
		base := "http://" + startServe(t, "--config", cfg)
		s, body := postJSON(t, base+"/register", ccReg)
		wantRefusal(t, s, body, 400, "invalid_client_metadata", "registration.allow_client_credentials")
		s, body = clientCredentials(t, base, "svc", secret, "https://users.example.com/mcp")
		wantRefusal(t, s, body, 400, "invalid_target", "does not accept client_credentials tokens")
		if s, body = clientCredentials(t, base, "svc", secret, "https://machines.example.com/mcp"); s != 200 || body["access_token"] == nil {
			t.Errorf("operator client on a resource that accepts machine tokens = %d %v", s, body)
		}
	})

	t.Run("serve with the registration opt-in", func(t *testing.T) {
		cfg := serveConfig(t, "http://127.0.0.1:1", "allow_insecure_issuer: true\nregistration:\n  mode: open\n  allow_client_credentials: true\n  client_credentials_scopes: [notes:read]\n")
		var out bytes.Buffer
		if err := run(context.Background(), []string{"resource", "add", "https://machines.example.com/mcp", "--scope", "notes:read", "--scope", "notes:write",
			"--default-scope", "notes:read", "--accept-client-credentials", "--config", cfg}, &out); err != nil {
			t.Fatalf("resource add: %v\n%s", err, out.String())
		}
		base := "http://" + startServe(t, "--config", cfg)
		s, reg := postJSON(t, base+"/register", ccReg)
		if s != 201 {
			t.Fatalf("registration with the opt-in = %d %v", s, reg)
		}
		id, _ := reg["client_id"].(string)
		secret, _ := reg["client_secret"].(string)
		if s, body := clientCredentials(t, base, id, secret, "https://machines.example.com/mcp"); s != 200 || body["scope"] != "notes:read" {
			t.Errorf("self-registered machine client within the opt-in = %d %v, want 200 with scope notes:read", s, body)
		}
	})
}

// TestGatewayRouteAcceptsClientCredentials: the route key reaches the
// gateway's route (and so rs and the registered resource).
func TestGatewayRouteAcceptsClientCredentials(t *testing.T) {
	var c config.Config
	c.Issuer = "https://as.example.com"
	c.Gateway.Routes = []config.GatewayRoute{
		{Name: "users", URL: "https://gw.example.com/u/mcp", Upstream: config.GatewayUpstream{URL: "http://127.0.0.1:1/mcp"}},
		{Name: "machines", URL: "https://gw.example.com/m/mcp", Upstream: config.GatewayUpstream{URL: "http://127.0.0.1:1/mcp"}, AcceptClientCredentials: true},
	}
	opts, err := gatewayOptions(c, c.Gateway, nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if opts.Routes[0].AcceptClientCredentials || !opts.Routes[1].AcceptClientCredentials {
		t.Errorf("routes' AcceptClientCredentials = %v, %v; want false, true", opts.Routes[0].AcceptClientCredentials, opts.Routes[1].AcceptClientCredentials)
	}
}
