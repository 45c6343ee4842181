package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// TestTokenExchangeServe (issue 15 item 3) through the real config path:
// the token_exchange section of the file reaches `gatehouse serve`, which
// lists the grant in its metadata, lets the client it names exchange a
// token for a resource that client serves, and refuses a client it does
// not name.
func TestTokenExchangeServe(t *testing.T) {
	const mcp, api = "https://mcp.example.com/mcp", "https://api.example.com"
	cfg := serveConfig(t, "http://127.0.0.1:1", "allow_insecure_issuer: true\ntoken_exchange:\n  lifetime: 2m\n  clients:\n"+
		"    - client_id: gw\n      subject_audiences: [\""+mcp+"\"]\n      audiences: [\""+api+"\"]\n")
	for _, args := range [][]string{
		{"resource", "add", mcp, "--scope", "notes:read", "--default-scope", "notes:read", "--accept-client-credentials"},
		{"resource", "add", api, "--scope", "notes:read", "--default-scope", "notes:read", "--accept-client-credentials"},
	} {
		var out bytes.Buffer
		if err := run(context.Background(), append(args, "--config", cfg), &out); err != nil {
			t.Fatalf("%v: %v\n%s", args, err, out.String())
		}
	}
	svc := createMachineClient(t, "svc", "--config", cfg)
	gw := createMachineClient(t, "gw", "--config", cfg)
	base := "http://" + startServe(t, "--config", cfg)

	_, meta := getJSON(t, base+"/.well-known/oauth-authorization-server")
	if !strings.Contains(meta["grant_types_supported"].(string), "token-exchange") {
		t.Errorf("grant_types_supported = %v, want token exchange listed", meta["grant_types_supported"])
	}
	s, body := clientCredentials(t, base, "svc", svc, mcp)
	subject, _ := body["access_token"].(string)
	if s != 200 || subject == "" {
		t.Fatalf("client_credentials = %d %v", s, body)
	}
	exchange := func(id, secret string) (int, map[string]any) {
		f := url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:token-exchange"}, "subject_token": {subject},
			"subject_token_type": {"urn:ietf:params:oauth:token-type:access_token"}, "resource": {api}}
		req, _ := http.NewRequest(http.MethodPost, base+"/token", strings.NewReader(f.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth(id, secret)
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
	if s, body := exchange("gw", gw); s != 200 || body["expires_in"] != 120.0 || body["issued_token_type"] != "urn:ietf:params:oauth:token-type:access_token" {
		t.Errorf("exchange by the named client = %d %v, want 200, expires_in 120 (lifetime 2m)", s, body)
	}
	if s, body := exchange("svc", svc); s != 400 || body["error"] != "unauthorized_client" {
		t.Errorf("exchange by a client the policy does not name = %d %v, want 400 unauthorized_client", s, body)
	}
}

// getJSON GETs u and decodes the JSON object, joining string arrays with
// spaces.
func getJSON(t *testing.T, u string) (int, map[string]any) {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	b, _ := io.ReadAll(resp.Body)
	_ = json.Unmarshal(b, &m)
	for k, v := range m {
		if arr, ok := v.([]any); ok {
			var ss []string
			for _, x := range arr {
				if s, ok := x.(string); ok {
					ss = append(ss, s)
				}
			}
			m[k] = strings.Join(ss, " ")
		}
	}
	return resp.StatusCode, m
}
