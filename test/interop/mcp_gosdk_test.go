package interop

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/modelcontextprotocol/go-sdk/oauthex"
)

// The tests in this file drive the demo MCP server that `gatehouse dev`
// serves (package internal/demo, protected by package rs) with real MCP
// clients: the official Go SDK here, the TypeScript SDK in
// mcp_typescript_test.go.

// mcpDev is a running `gatehouse dev` whose demo MCP server answers.
type mcpDev struct {
	*devServer
	proc *proc
}

// startMCPDev runs `gatehouse dev` like startDev (interop_test.go), with
// extra flags, and waits until the demo MCP server serves its protected
// resource metadata.
func startMCPDev(t *testing.T, username, password string, extra ...string) *mcpDev {
	t.Helper()
	return startMCPDevWith(t, newGatehouse(t), username, password, extra...)
}

// startMCPDevWith is startMCPDev on g's data directory, which a test may
// have prepared with admin commands.
func startMCPDevWith(t *testing.T, g *gatehouse, username, password string, extra ...string) *mcpDev {
	t.Helper()
	var port, mcpPort int
	for {
		port, mcpPort = freePort(t), freePort(t)
		if port != mcpPort {
			break
		}
	}
	listen := fmt.Sprintf("127.0.0.1:%d", port)
	args := append([]string{"dev",
		"--data", g.Data,
		"--listen", listen,
		"--mcp-listen", fmt.Sprintf("127.0.0.1:%d", mcpPort),
		"--user", username}, extra...)
	cmd := exec.Command(g.Bin, args...)
	cmd.Env = append(os.Environ(), "GATEHOUSE_DEV_PASSWORD="+password)
	p := startProc(t, "gatehouse dev", cmd)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	m, err := p.waitLine(ctx, regexp.MustCompile(`^\s*Issuer:\s+(\S+)\s*$`))
	if err != nil {
		t.Fatalf("gatehouse dev did not start: %v\n%s", err, p.output())
	}
	d := &devServer{gatehouse: g, Issuer: m[1], Username: username, Password: password, proc: p}
	m, err = p.waitLine(ctx, regexp.MustCompile(`^\s*Demo MCP server:\s+(\S+)`))
	if err != nil {
		t.Fatalf("gatehouse dev printed no demo MCP server: %v\n%s", err, p.output())
	}
	d.MCPURL = m[1]
	if want := fmt.Sprintf("http://127.0.0.1:%d/mcp", mcpPort); d.MCPURL != want {
		t.Fatalf("demo MCP server at %q, want %q", d.MCPURL, want)
	}
	prm := strings.Replace(d.MCPURL, "/mcp", "/.well-known/oauth-protected-resource/mcp", 1)
	for {
		resp, err := noProxyClient().Get(prm)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		select {
		case <-ctx.Done():
			t.Fatalf("demo MCP server never served %s: %v\n%s", prm, err, p.output())
		case <-time.After(100 * time.Millisecond):
		}
	}
	return &mcpDev{devServer: d, proc: p}
}

// recordingTransport records the token requests a client makes.
type recordingTransport struct {
	base http.RoundTripper
	mu   sync.Mutex
	reqs []string // grant_type of each /token request
}

func (r *recordingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if strings.HasSuffix(req.URL.Path, "/token") && req.GetBody != nil {
		if b, err := req.GetBody(); err == nil {
			raw, _ := io.ReadAll(io.LimitReader(b, 64<<10))
			b.Close()
			form, _ := url.ParseQuery(string(raw))
			r.mu.Lock()
			r.reqs = append(r.reqs, form.Get("grant_type"))
			r.mu.Unlock()
		}
	}
	return r.base.RoundTrip(req)
}

func (r *recordingTransport) grants() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.reqs)
}

// TestMCPGoSDKClient runs the Go SDK's OAuth client against the demo:
// 401 → protected resource metadata → authorization server metadata →
// client registration → authorize (login and consent, played in Go) →
// token → tools/list → tools/call; then refresh after expiry, and step-up
// from notes:read to notes:write on a 403 insufficient_scope. It runs once
// with the pre-registered demo client and once with dynamic client
// registration (RFC 7591), when the authorization server offers it.
func TestMCPGoSDKClient(t *testing.T) {
	// Tokens live 12s: x/oauth2 refreshes 10s before expiry, so a token
	// is used for about 2s and then refreshed.
	d := startMCPDev(t, "alice", "alice-interop-pw", "--access-token-ttl", "12s")
	const redirectURL = "http://127.0.0.1:53682/callback"
	t.Run("preregistered", func(t *testing.T) {
		runGoSDKClient(t, d, redirectURL, &auth.AuthorizationCodeHandlerConfig{
			PreregisteredClient: &oauthex.ClientCredentials{ClientID: "gatehouse-demo", Issuer: d.Issuer},
		})
	})
	t.Run("dynamic registration", func(t *testing.T) {
		var meta struct {
			RegistrationEndpoint string `json:"registration_endpoint"`
		}
		resp, err := noProxyClient().Get(d.Issuer + "/.well-known/oauth-authorization-server")
		if err != nil {
			t.Fatal(err)
		}
		json.NewDecoder(resp.Body).Decode(&meta)
		resp.Body.Close()
		if meta.RegistrationEndpoint == "" {
			t.Skip("the authorization server advertises no registration_endpoint")
		}
		runGoSDKClient(t, d, redirectURL, &auth.AuthorizationCodeHandlerConfig{
			DynamicClientRegistrationConfig: &auth.DynamicClientRegistrationConfig{Metadata: &oauthex.ClientRegistrationMetadata{
				ClientName:              "Gatehouse interop (Go SDK)",
				RedirectURIs:            []string{redirectURL},
				GrantTypes:              []string{"authorization_code", "refresh_token"},
				ResponseTypes:           []string{"code"},
				TokenEndpointAuthMethod: "none",
			}},
		})
	})
}

// runGoSDKClient runs the flow of TestMCPGoSDKClient with the client
// registration of cfg.
func runGoSDKClient(t *testing.T, d *mcpDev, redirectURL string, cfg *auth.AuthorizationCodeHandlerConfig) {
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	rec := &recordingTransport{base: noProxyClient().Transport}
	httpClient := &http.Client{Transport: rec, Timeout: 30 * time.Second}
	var authorizeURLs []*url.URL
	cfg.RedirectURL = redirectURL
	cfg.RequestRefreshToken = true
	cfg.Client = httpClient
	cfg.AuthorizationCodeFetcher = func(ctx context.Context, args *auth.AuthorizationArgs) (*auth.AuthorizationResult, error) {
		u, err := url.Parse(args.URL)
		if err != nil {
			return nil, err
		}
		authorizeURLs = append(authorizeURLs, u)
		loc, _, err := playBrowser(ctx, args.URL, d.Username, d.Password, redirectURL)
		if err != nil {
			return nil, err
		}
		q := loc.Query()
		if q.Get("error") != "" {
			return nil, fmt.Errorf("authorization error %s: %s", q.Get("error"), q.Get("error_description"))
		}
		return &auth.AuthorizationResult{Code: q.Get("code"), State: q.Get("state"), Iss: q.Get("iss")}, nil
	}
	handler, err := auth.NewAuthorizationCodeHandler(cfg)
	if err != nil {
		t.Fatal(err)
	}
	client := mcp.NewClient(&mcp.Implementation{Name: "gatehouse-interop-go", Version: "1"}, nil)
	cs, err := client.Connect(ctx, &mcp.StreamableClientTransport{
		Endpoint:     d.MCPURL,
		HTTPClient:   &http.Client{Transport: noProxyClient().Transport},
		OAuthHandler: handler,
	}, nil)
	if err != nil {
		t.Fatalf("Connect(%s) = %v\n%s", d.MCPURL, err, d.Output())
	}
	defer cs.Close()

	// The first authorization asked for the 401's baseline scope and named
	// the resource (RFC 8707).
	if len(authorizeURLs) != 1 {
		t.Fatalf("authorizations after connect = %d, want 1", len(authorizeURLs))
	}
	q := authorizeURLs[0].Query()
	if q.Get("resource") != d.MCPURL || q.Get("code_challenge_method") != "S256" || !slices.Contains(strings.Fields(q.Get("scope")), "notes:read") || slices.Contains(strings.Fields(q.Get("scope")), "notes:write") {
		t.Errorf("first authorize request %s: want resource %s, S256, scope notes:read without notes:write", authorizeURLs[0], d.MCPURL)
	}

	// Every tool is listed, those needing notes:write too (list_tools
	// grantable): a host that only calls listed tools can reach step-up.
	listed := listTools(ctx, t, cs)
	if want := []string{"add_note", "delete_note", "list_notes", "read_note"}; !slices.Equal(listed, want) {
		t.Errorf("tools/list with notes:read = %v, want %v", listed, want)
	}
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "list_notes"})
	if err != nil || res.IsError {
		t.Fatalf("tools/call list_notes = %+v, %v", res, err)
	}

	// Refresh: once the token nears expiry the SDK refreshes it, and the
	// server accepts the new one.
	time.Sleep(3 * time.Second)
	if res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "list_notes"}); err != nil || res.IsError {
		t.Fatalf("tools/call list_notes after expiry = %+v, %v", res, err)
	}
	if grants := rec.grants(); !slices.Contains(grants, "refresh_token") {
		t.Errorf("token requests %v include no refresh", grants)
	}

	// Step-up, started from the list as a host that only offers listed
	// tools does: add_note needs notes:write. The 403 challenge makes the
	// SDK authorize again with the union of scopes, then retry the call.
	i := slices.Index(listed, "add_note")
	if i < 0 {
		t.Fatalf("add_note is not listed for notes:read (%v): step-up is unreachable for hosts that call listed tools only", listed)
	}
	res, err = cs.CallTool(ctx, &mcp.CallToolParams{Name: listed[i], Arguments: map[string]any{"title": "From Go", "text": "step-up worked"}})
	if err != nil || res.IsError {
		t.Fatalf("tools/call add_note (step-up) = %+v, %v\n%s", res, err, d.Output())
	}
	if len(authorizeURLs) != 2 {
		t.Fatalf("authorizations after step-up = %d, want 2", len(authorizeURLs))
	}
	scopes := strings.Fields(authorizeURLs[1].Query().Get("scope"))
	if !slices.Contains(scopes, "notes:read") || !slices.Contains(scopes, "notes:write") {
		t.Errorf("step-up authorize scope = %q, want notes:read and notes:write", scopes)
	}
	var added struct {
		ID string `json:"id"`
	}
	b, _ := json.Marshal(res.StructuredContent)
	json.Unmarshal(b, &added)
	if added.ID == "" {
		t.Fatalf("add_note returned %s, want a note id", b)
	}
	if got, want := listTools(ctx, t, cs), []string{"add_note", "delete_note", "list_notes", "read_note"}; !slices.Equal(got, want) {
		t.Errorf("tools/list after step-up = %v, want %v", got, want)
	}
	res, err = cs.CallTool(ctx, &mcp.CallToolParams{Name: "read_note", Arguments: map[string]any{"id": added.ID}})
	if err != nil || res.IsError {
		t.Fatalf("tools/call read_note = %+v, %v", res, err)
	}
	if b, _ := json.Marshal(res.StructuredContent); !strings.Contains(string(b), "step-up worked") {
		t.Errorf("read_note = %s, want the note's text", b)
	}
	t.Logf("token requests: %v", rec.grants())
}

// listTools returns the sorted tool names.
func listTools(ctx context.Context, t *testing.T, cs *mcp.ClientSession) []string {
	t.Helper()
	res, err := cs.ListTools(ctx, nil)
	if err != nil {
		t.Fatalf("tools/list = %v", err)
	}
	var names []string
	for _, tool := range res.Tools {
		names = append(names, tool.Name)
	}
	slices.Sort(names)
	return names
}
