package interop

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/modelcontextprotocol/go-sdk/oauthex"
)

// The tests in this file put `gatehouse gateway` in front of
// @modelcontextprotocol/server-everything (an MCP server without auth),
// once as a stdio upstream and once as a Streamable HTTP upstream, next to
// `gatehouse dev` as the authorization server, and drive the routes with
// the official Go and TypeScript SDK clients.

// Secrets of the gateway test: the stdio upstream's API key (from a
// file), the HTTP upstream's credential (from the gateway's environment),
// and a variable of the gateway's own environment that must not leak.
const (
	gwStdioSecret  = "stdio-upstream-secret-7f3a"
	gwHTTPSecret   = "Bearer http-upstream-secret-91c2"
	gwOwnSecretEnv = "GATEWAY_OWN_SECRET_MUST_NOT_LEAK"
)

// gatewayEnv is a running authorization server, server-everything over
// HTTP behind a recording proxy, and a gateway with two routes.
type gatewayEnv struct {
	dev       *mcpDev
	upURL     string // the HTTP upstream (through the recording proxy)
	stdioURL  string
	httpURL   string
	adminURL  string
	gateway   *proc
	recorder  *headerRecorder
	everyBin  string
	configDir string
}

// headerRecorder keeps the headers of requests reaching the HTTP upstream.
type headerRecorder struct {
	mu   sync.Mutex
	seen []http.Header
}

func (h *headerRecorder) headers() []http.Header {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.seen)
}

// startGatewayEnv starts everything gatewayEnv describes.
func startGatewayEnv(t *testing.T) *gatewayEnv {
	t.Helper()
	node := nodeBin(t)
	everything := npmPackageBin(t, interopDir(t), "@modelcontextprotocol/server-everything", "mcp-server-everything")
	d := startMCPDev(t, "gwuser", "gwuser-interop-pw")
	env := &gatewayEnv{dev: d, everyBin: everything, configDir: t.TempDir(), recorder: &headerRecorder{}}

	// server-everything over Streamable HTTP (it takes its port from PORT
	// and listens on every interface), behind a recording proxy.
	upPort := freePort(t)
	upCmd := exec.Command(node, everything, "streamableHttp")
	// Only what node needs: its get-env tool shows the environment.
	upCmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"), "PORT=" + strconv.Itoa(upPort)}
	up := startProc(t, "server-everything streamableHttp", upCmd)
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	if _, err := up.waitLine(ctx, regexp.MustCompile(`listening on port`)); err != nil {
		t.Fatalf("server-everything streamableHttp: %v\n%s", err, up.output())
	}
	target, _ := url.Parse(fmt.Sprintf("http://127.0.0.1:%d", upPort))
	rp := httputil.NewSingleHostReverseProxy(target)
	rp.FlushInterval = -1
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		env.recorder.mu.Lock()
		env.recorder.seen = append(env.recorder.seen, r.Header.Clone())
		env.recorder.mu.Unlock()
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(proxy.Close)
	env.upURL = proxy.URL + "/mcp"

	gwPort, adminPort := freePort(t), freePort(t)
	env.stdioURL = fmt.Sprintf("http://127.0.0.1:%d/everything/mcp", gwPort)
	env.httpURL = fmt.Sprintf("http://127.0.0.1:%d/everything-http/mcp", gwPort)
	env.adminURL = fmt.Sprintf("http://127.0.0.1:%d", adminPort)
	secretFile := filepath.Join(env.configDir, "everything-api-key")
	if err := os.WriteFile(secretFile, []byte(gwStdioSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	policy := map[string]any{
		"scopes":             []string{"everything:read"},
		"scope_descriptions": map[string]string{"everything:read": "Use the everything server", "everything:admin": "See its environment and trigger requests"},
		"tools":              map[string][]string{"get-env": {"everything:admin"}, "trigger-*": {"everything:admin"}},
	}
	route := func(name, u string, upstream map[string]any) map[string]any {
		r := map[string]any{"name": name, "url": u, "upstream": upstream, "request_timeout": "30s"}
		for k, v := range policy {
			r[k] = v
		}
		return r
	}
	cfg := map[string]any{
		"issuer":  d.Issuer,
		"storage": map[string]any{"driver": "sqlite", "sqlite_path": filepath.Join(d.Data, "gatehouse.db")},
		"log":     map[string]any{"level": "debug"},
		"gateway": map[string]any{
			"listen":       fmt.Sprintf("127.0.0.1:%d", gwPort),
			"admin_listen": fmt.Sprintf("127.0.0.1:%d", adminPort),
			"routes": []any{
				route("everything-stdio", env.stdioURL, map[string]any{
					"command": node, "args": []string{everything, "stdio"},
					"env": []any{map[string]any{"name": "EVERYTHING_API_KEY", "value_file": secretFile}},
				}),
				route("everything-http", env.httpURL, map[string]any{
					"url": proxy.URL + "/mcp", "header": "Authorization", "header_value_env": "EVERYTHING_UPSTREAM_CREDENTIAL",
				}),
			},
		},
	}
	b, _ := json.MarshalIndent(cfg, "", "  ")
	cfgFile := filepath.Join(env.configDir, "gateway.json")
	if err := os.WriteFile(cfgFile, b, 0o600); err != nil {
		t.Fatal(err)
	}
	gwCmd := exec.Command(d.Bin, "gateway", "--config", cfgFile)
	gwCmd.Env = append(os.Environ(), "EVERYTHING_UPSTREAM_CREDENTIAL="+gwHTTPSecret, gwOwnSecretEnv+"=leaked")
	env.gateway = startProc(t, "gatehouse gateway", gwCmd)
	if _, err := env.gateway.waitLine(ctx, regexp.MustCompile(`^Gatehouse gateway is running`)); err != nil {
		t.Fatalf("gatehouse gateway did not start: %v\n%s", err, env.gateway.output())
	}
	return env
}

// TestGatewayServerEverything runs the Go and TypeScript SDK clients
// through both gateway routes to server-everything: discovery from the
// gateway's 401, authorization at `gatehouse dev`, tools/list listing
// get-env (everything:admin) to an everything:read token (list_tools
// grantable), a call, a step-up started from the listed get-env, and
// get-env itself,
// which shows what the stdio upstream's environment holds. Then the audit
// log, the metrics and what the HTTP upstream received are checked.
func TestGatewayServerEverything(t *testing.T) {
	if testing.Short() {
		t.Skip("interop test: runs the gatehouse binary, Node and server-everything")
	}
	env := startGatewayEnv(t)
	routes := []struct{ name, url string }{{"everything-stdio", env.stdioURL}, {"everything-http", env.httpURL}}
	for _, r := range routes {
		t.Run("go-sdk "+r.name, func(t *testing.T) {
			out := runGatewayGoSDK(t, env, r.url)
			if r.name == "everything-stdio" {
				if !strings.Contains(out, "EVERYTHING_API_KEY") || !strings.Contains(out, gwStdioSecret) {
					t.Errorf("get-env through the stdio route lacks the configured credential:\n%s", out)
				}
				if strings.Contains(out, gwOwnSecretEnv) || strings.Contains(out, "GATEHOUSE_") {
					t.Errorf("get-env through the stdio route shows the gateway's own environment:\n%s", out)
				}
			}
		})
	}
	for _, r := range routes {
		t.Run("typescript "+r.name, func(t *testing.T) {
			runGatewayTS(t, env, r.url)
		})
	}

	t.Run("upstream never sees the client's token", func(t *testing.T) {
		hs := env.recorder.headers()
		if len(hs) == 0 {
			t.Fatal("the HTTP upstream received no request")
		}
		for _, h := range hs {
			if got := h.Values("Authorization"); len(got) != 1 || got[0] != gwHTTPSecret {
				t.Errorf("upstream Authorization = %q, want only the configured credential", got)
			}
			for k, vs := range h {
				for _, v := range vs {
					if strings.Contains(v, "eyJ") {
						t.Errorf("upstream header %s carries a JWT: %.40s...", k, v)
					}
				}
			}
			if h.Get("Cookie") != "" {
				t.Errorf("upstream received Cookie %q", h.Get("Cookie"))
			}
		}
	})

	t.Run("audit log", func(t *testing.T) {
		out := env.dev.run(t, "audit", "query", "--type", "gateway.", "--limit", "1000")
		for _, route := range []string{"everything-stdio", "everything-http"} {
			for _, want := range []*regexp.Regexp{
				regexp.MustCompile(`gateway\.tool_call\s+outcome=allowed user=\S+ client=gatehouse-demo resource=\S+ ip=127\.0\.0\.1 detail="route=` + route + ` tool=echo call=\S+"`),
				regexp.MustCompile(`gateway\.tool_result\s+outcome=ok .* detail="route=` + route + ` tool=echo call=\S+ latency_ms=\d+"`),
				regexp.MustCompile(`(?m)outcome=step_up .* detail="route=` + route + ` tool=get-env"$`),
				regexp.MustCompile(`outcome=allowed .* detail="route=` + route + ` tool=get-env call=`),
			} {
				if !want.MatchString(out) {
					t.Errorf("audit log lacks %s:\n%s", want, out)
				}
			}
		}
	})

	t.Run("metrics", func(t *testing.T) {
		resp, err := noProxyClient().Get(env.adminURL + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		for _, want := range []string{
			`gatehouse_gateway_decisions_total{decision="step_up",kind="tool",route="everything-stdio"}`,
			`gatehouse_gateway_decisions_total{decision="allowed",kind="tool",route="everything-http"}`,
			`gatehouse_gateway_tool_call_duration_seconds_count{route="everything-stdio"}`,
		} {
			if !strings.Contains(string(b), want) {
				t.Errorf("metrics lack %s", want)
			}
		}
	})

	t.Run("stderr in the log", func(t *testing.T) {
		if !regexp.MustCompile(`upstream stderr.*route=everything-stdio`).MatchString(env.gateway.output()) {
			t.Errorf("the gateway log has no stderr line of the stdio upstream:\n%s", env.gateway.output())
		}
	})

	t.Run("graceful stop", func(t *testing.T) {
		env.gateway.stop(15 * time.Second)
		if err := env.gateway.exitErr(); err != nil {
			t.Errorf("gatehouse gateway exited with %v after SIGINT\n%s", err, env.gateway.output())
		}
	})
}

// runGatewayGoSDK runs the Go SDK's OAuth client through one route and
// returns what get-env answered after the step-up.
func runGatewayGoSDK(t *testing.T, env *gatewayEnv, mcpURL string) string {
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	const redirectURL = "http://127.0.0.1:53690/callback"
	var authorizeURLs []*url.URL
	handler, err := auth.NewAuthorizationCodeHandler(&auth.AuthorizationCodeHandlerConfig{
		PreregisteredClient: &oauthex.ClientCredentials{ClientID: "gatehouse-demo", Issuer: env.dev.Issuer},
		RedirectURL:         redirectURL,
		RequestRefreshToken: true,
		Client:              noProxyClient(),
		AuthorizationCodeFetcher: func(ctx context.Context, args *auth.AuthorizationArgs) (*auth.AuthorizationResult, error) {
			u, err := url.Parse(args.URL)
			if err != nil {
				return nil, err
			}
			authorizeURLs = append(authorizeURLs, u)
			loc, _, err := playBrowser(ctx, args.URL, env.dev.Username, env.dev.Password, redirectURL)
			if err != nil {
				return nil, err
			}
			q := loc.Query()
			if q.Get("error") != "" {
				return nil, fmt.Errorf("authorization error %s: %s", q.Get("error"), q.Get("error_description"))
			}
			return &auth.AuthorizationResult{Code: q.Get("code"), State: q.Get("state"), Iss: q.Get("iss")}, nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	client := mcp.NewClient(&mcp.Implementation{Name: "gatehouse-gateway-interop-go", Version: "1"}, nil)
	cs, err := client.Connect(ctx, &mcp.StreamableClientTransport{
		Endpoint:     mcpURL,
		HTTPClient:   &http.Client{Transport: noProxyClient().Transport},
		OAuthHandler: handler,
	}, nil)
	if err != nil {
		t.Fatalf("Connect(%s) = %v\n--- gateway ---\n%s", mcpURL, err, env.gateway.output())
	}
	defer cs.Close()
	if len(authorizeURLs) != 1 {
		t.Fatalf("authorizations after connect = %d, want 1", len(authorizeURLs))
	}
	q := authorizeURLs[0].Query()
	if scopes := strings.Fields(q.Get("scope")); q.Get("resource") != mcpURL || !slices.Contains(scopes, "everything:read") || slices.Contains(scopes, "everything:admin") {
		t.Errorf("first authorize request: resource %q scope %q, want %s and everything:read (the 401's baseline) without everything:admin", q.Get("resource"), q.Get("scope"), mcpURL)
	}

	tools := listTools(ctx, t, cs)
	if !slices.Contains(tools, "echo") || !slices.Contains(tools, "get-env") {
		t.Errorf("tools/list with everything:read = %v, want echo and get-env (list_tools grantable)", tools)
	}
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "echo", Arguments: map[string]any{"message": "hello gateway"}})
	if err != nil || res.IsError || !strings.Contains(textOf(res), "hello gateway") {
		t.Fatalf("tools/call echo = %+v, %v", res, err)
	}
	// Step-up, started from the list as a host that only offers listed
	// tools does.
	i := slices.Index(tools, "get-env")
	if i < 0 {
		t.Fatalf("get-env is not listed for everything:read (%v): step-up is unreachable for hosts that call listed tools only", tools)
	}
	res, err = cs.CallTool(ctx, &mcp.CallToolParams{Name: tools[i], Arguments: map[string]any{}})
	if err != nil || res.IsError {
		t.Fatalf("tools/call get-env (step-up) = %+v, %v\n--- gateway ---\n%s", res, err, env.gateway.output())
	}
	if len(authorizeURLs) != 2 {
		t.Fatalf("authorizations after step-up = %d, want 2", len(authorizeURLs))
	}
	if scopes := strings.Fields(authorizeURLs[1].Query().Get("scope")); !slices.Contains(scopes, "everything:admin") || !slices.Contains(scopes, "everything:read") {
		t.Errorf("step-up scope = %q, want everything:read and everything:admin", scopes)
	}
	if tools := listTools(ctx, t, cs); !slices.Contains(tools, "get-env") {
		t.Errorf("tools/list after step-up = %v, want get-env", tools)
	}
	return textOf(res)
}

// textOf joins the text contents of a tool result.
func textOf(res *mcp.CallToolResult) string {
	var b strings.Builder
	for _, c := range res.Content {
		if tc, ok := c.(*mcp.TextContent); ok {
			b.WriteString(tc.Text)
		}
	}
	return b.String()
}

// runGatewayTS runs gateway_ts_client.mjs through one route.
func runGatewayTS(t *testing.T, env *gatewayEnv, mcpURL string) {
	node := nodeBin(t)
	dir := interopDir(t)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, filepath.Join(dir, "gateway_ts_client.mjs"),
		mcpURL, env.dev.Username, env.dev.Password, "http://127.0.0.1:53691/callback", "echo", "get-env")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "NO_PROXY=127.0.0.1,localhost", "no_proxy=127.0.0.1,localhost")
	p := startProc(t, "gateway_ts_client.mjs", cmd)
	m, err := p.waitLine(ctx, regexp.MustCompile(`^RESULT (.*)$`))
	if err != nil {
		t.Fatalf("TypeScript client: %v\n%s\n--- gateway ---\n%s", err, p.output(), env.gateway.output())
	}
	var result struct {
		OK    bool              `json:"ok"`
		Steps []json.RawMessage `json:"steps"`
	}
	if err := json.Unmarshal([]byte(m[1]), &result); err != nil {
		t.Fatalf("RESULT line %q: %v", m[1], err)
	}
	seen := map[string]bool{}
	for _, raw := range result.Steps {
		var s struct {
			Name  string `json:"name"`
			OK    bool   `json:"ok"`
			Scope string `json:"scope"`
		}
		json.Unmarshal(raw, &s)
		seen[s.Name] = true
		t.Logf("%.400s", raw)
		if !s.OK {
			t.Errorf("step %q failed: %s", s.Name, raw)
		}
		if s.Name == "step-up" && !strings.Contains(s.Scope, "everything:admin") {
			t.Errorf("step-up authorization scope %q lacks everything:admin", s.Scope)
		}
	}
	for _, name := range []string{"connect", "tools/list grantable", "tools/call allowed", "step-up", "tools/list after step-up"} {
		if !seen[name] {
			t.Errorf("step %q did not run", name)
		}
	}
	if !result.OK {
		t.Logf("--- TypeScript client ---\n%s\n--- gateway ---\n%s", p.output(), env.gateway.output())
	}
}

// TestGatewayConfigErrors checks that `gatehouse gateway` reports every
// problem of a bad gateway section at once and starts nothing.
func TestGatewayConfigErrors(t *testing.T) {
	if testing.Short() {
		t.Skip("interop test: builds and runs the gatehouse binary")
	}
	bin := buildGatehouse(t)
	dir := t.TempDir()
	cfg := `issuer: http://127.0.0.1:1
storage: {driver: sqlite, sqlite_path: ` + filepath.Join(dir, "g.db") + `}
gateway:
  routes:
    - name: a
      url: http://127.0.0.1:8090/a/mcp
      upstream: {url: http://127.0.0.1:3001/mcp, command: node}
    - name: a
      url: ftp://x/mcp
      upstream: {url: http://127.0.0.1:3001/mcp, header: Authorization}
      scopes: ["bad scope"]
    - name: c
      url: http://127.0.0.1:8090/c/mcp
      upstream: {command: node, header_value_env: X}
      tools: {"a*b": [x]}
      max_sessions_per_user: -1
      max_batch_messages: -1
`
	path := filepath.Join(dir, "bad.yaml")
	os.WriteFile(path, []byte(cfg), 0o600)
	out, err := exec.Command(bin, "gateway", "--config", path).CombinedOutput()
	if err == nil {
		t.Fatalf("gatehouse gateway with a bad config succeeded:\n%s", out)
	}
	for _, want := range []string{
		"has both url and command", "name is used by another route", `url "ftp://x/mcp"`,
		"has no value", `"bad scope" is not a scope token`, "apply to an HTTP upstream", `"*" may only end a key`,
		"max_sessions_per_user must not be negative", "max_batch_messages must not be negative",
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}
