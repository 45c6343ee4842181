package interop

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"
)

// TestGatewayConformance runs the MCP conformance CLI in server mode
// against server-everything directly and through both gateway routes
// (stdio and HTTP upstream; the token, got through the real flow, is
// injected by preload-auth.mjs as in conformance_server_test.go), and checks that the gateway loses no check
// that passes without it: it is transparent to the protocol.
// server-everything lacks several fixture tools the CLI calls, so the
// direct run is the baseline rather than all-green.
func TestGatewayConformance(t *testing.T) {
	if testing.Short() {
		t.Skip("interop test: runs the gatehouse binary, Node, server-everything and the conformance CLI")
	}
	env := startGatewayEnv(t)
	cli := npmPackageBin(t, interopDir(t), "@modelcontextprotocol/conformance", "conformance")
	direct := runConformanceServer(t, cli, env.upURL, "")
	for _, route := range []struct{ name, url string }{{"everything-stdio", env.stdioURL}, {"everything-http", env.httpURL}} {
		t.Run(route.name, func(t *testing.T) {
			token := gatewayToken(t, env, route.url)
			got := runConformanceServer(t, cli, route.url, token)
			var lost []string
			for id, status := range direct {
				if status == "SUCCESS" && got[id] != "SUCCESS" {
					lost = append(lost, fmt.Sprintf("%s (%s through the gateway)", id, got[id]))
				}
			}
			// server-everything itself lets a rebinding page in; the
			// gateway's Host check does not.
			if id := "dns-rebinding-protection/localhost-host-rebinding-rejected"; got[id] != "SUCCESS" {
				t.Errorf("%s through the gateway: %s, want SUCCESS", id, got[id])
			}
			sort.Strings(lost)
			if len(lost) > 0 {
				t.Errorf("checks that pass against server-everything but not through the gateway: %s\n--- gateway ---\n%s", strings.Join(lost, ", "), env.gateway.output())
			}
			t.Logf("direct: %s; through the gateway: %s", summarize(direct), summarize(got))
		})
	}
}

// summarize counts check statuses.
func summarize(checks map[string]string) string {
	n := map[string]int{}
	for _, s := range checks {
		n[s]++
	}
	return fmt.Sprintf("%d SUCCESS, %d FAILURE, %d WARNING", n["SUCCESS"], n["FAILURE"], n["WARNING"])
}

// runConformanceServer runs `conformance server --url mcpURL` (with token
// injected when not empty) and returns each check's status by
// scenario/check id.
func runConformanceServer(t *testing.T, cli, mcpURL, token string) map[string]string {
	t.Helper()
	out := t.TempDir()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, nodeBin(t), cli, "server", "--url", mcpURL, "-o", out)
	cmd.Dir = interopDir(t)
	cmd.Env = append(os.Environ(), "NO_PROXY=127.0.0.1,localhost", "no_proxy=127.0.0.1,localhost")
	if token != "" {
		u, _ := url.Parse(mcpURL)
		cmd.Env = append(cmd.Env,
			"NODE_OPTIONS=--import "+filepath.Join(interopDir(t), "preload-auth.mjs"),
			"GATEHOUSE_PRELOAD_TOKEN="+token, "GATEHOUSE_PRELOAD_ORIGIN="+u.Scheme+"://"+u.Host)
	}
	p := startProc(t, "conformance server "+mcpURL, cmd)
	if _, err := p.waitLine(ctx, regexp.MustCompile(`^Total: \d+ passed, \d+ failed`)); err != nil {
		t.Fatalf("conformance server: %v\n%s", err, p.output())
	}
	p.wait(ctx)
	res := map[string]string{}
	for scenario, checks := range readServerChecks(t, out) {
		for _, c := range checks {
			res[scenario+"/"+c.ID] = c.Status
		}
	}
	if len(res) == 0 {
		t.Fatalf("conformance server wrote no checks:\n%s", p.output())
	}
	return res
}

// gatewayToken gets an access token for a gateway route with every scope
// of its policy, through the real code flow with PKCE (x/oauth2 as the
// client, the scripted browser as the user).
func gatewayToken(t *testing.T, env *gatewayEnv, resource string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	resp, err := noProxyClient().Get(env.dev.Issuer + "/.well-known/oauth-authorization-server")
	if err != nil {
		t.Fatal(err)
	}
	var meta struct {
		AuthorizationEndpoint string `json:"authorization_endpoint"`
		TokenEndpoint         string `json:"token_endpoint"`
	}
	json.NewDecoder(resp.Body).Decode(&meta)
	resp.Body.Close()
	const redirectURL = "http://127.0.0.1:53692/callback"
	cfg := &oauth2.Config{
		ClientID:    "gatehouse-demo",
		Endpoint:    oauth2.Endpoint{AuthURL: meta.AuthorizationEndpoint, TokenURL: meta.TokenEndpoint, AuthStyle: oauth2.AuthStyleInParams},
		RedirectURL: redirectURL,
		Scopes:      []string{"everything:read", "everything:admin"},
	}
	verifier := oauth2.GenerateVerifier()
	authURL := cfg.AuthCodeURL("gateway-conformance", oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("resource", resource))
	loc, _, err := playBrowser(ctx, authURL, env.dev.Username, env.dev.Password, redirectURL)
	if err != nil {
		t.Fatal(err)
	}
	q := loc.Query()
	if q.Get("state") != "gateway-conformance" || q.Get("code") == "" {
		t.Fatalf("authorization response %s", loc)
	}
	ctx = context.WithValue(ctx, oauth2.HTTPClient, &http.Client{Transport: noProxyClient().Transport, Timeout: 30 * time.Second})
	tok, err := cfg.Exchange(ctx, q.Get("code"), oauth2.VerifierOption(verifier), oauth2.SetAuthURLParam("resource", resource))
	if err != nil {
		t.Fatal(err)
	}
	return tok.AccessToken
}
