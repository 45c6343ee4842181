package gateway

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gatehouse-mcp/gatehouse/internal/mcpauthz"
	"github.com/gatehouse-mcp/gatehouse/internal/storage"
	"github.com/gatehouse-mcp/gatehouse/internal/storage/sqlite"
	"github.com/gatehouse-mcp/gatehouse/internal/syncbuf"
	"github.com/gatehouse-mcp/gatehouse/rs"
)

// Test tokens: each names a subject and its scopes.
var testTokens = map[string]*rs.TokenInfo{
	"alice-read":  {Subject: "alice", ClientID: "client-a", Scopes: []string{"fake:read"}},
	"alice-admin": {Subject: "alice", ClientID: "client-a", Scopes: []string{"fake:read", "fake:admin"}},
	"erin-write":  {Subject: "erin", ClientID: "client-e", Scopes: []string{"fake:read", "fake:write"}},
	"bob-read":    {Subject: "bob", ClientID: "client-b", Scopes: []string{"fake:read"}},
	"nobody":      {Subject: "carol", ClientID: "client-c", Scopes: nil},
	// A scope that grants the others only through a route's
	// ImpliedScopes.
	"dave-super": {Subject: "dave", ClientID: "client-d", Scopes: []string{"fake:super"}},
}

// testVerifier accepts the test tokens for any resource.
func testVerifier(string) (rs.Verifier, error) {
	return rs.VerifierFunc(func(_ context.Context, token string) (*rs.TokenInfo, error) {
		if ti, ok := testTokens[token]; ok {
			return ti, nil
		}
		return nil, fmt.Errorf("%w: unknown test token", rs.ErrInvalidToken)
	}), nil
}

var (
	fakeOnce sync.Once
	fakeBin  string
	fakeErr  error
)

// fakeMCP builds testdata/fakemcp once and returns the binary.
func fakeMCP(t testing.TB) string {
	t.Helper()
	fakeOnce.Do(func() {
		dir, err := os.MkdirTemp("", "gateway-fakemcp-")
		if err != nil {
			fakeErr = err
			return
		}
		fakeBin = filepath.Join(dir, "fakemcp")
		out, err := exec.Command("go", "build", "-o", fakeBin, "./testdata/fakemcp").CombinedOutput()
		if err != nil {
			fakeErr = fmt.Errorf("go build ./testdata/fakemcp: %v\n%s", err, out)
		}
	})
	if fakeErr != nil {
		t.Fatal(fakeErr)
	}
	return fakeBin
}

func TestMain(m *testing.M) {
	stopGrace = 300 * time.Millisecond
	code := m.Run()
	if fakeBin != "" {
		os.RemoveAll(filepath.Dir(fakeBin))
	}
	os.Exit(code)
}

// testGateway is a gateway on an httptest server.
type testGateway struct {
	*Gateway
	srv   *httptest.Server
	base  string // http://127.0.0.1:PORT
	store storage.Store
	reg   *prometheus.Registry
	logs  *syncbuf.Buffer
}

// newTestGateway serves routes on a fresh loopback server. Each route's
// URL is given as a path and becomes base+path. mutate may change the
// options before New.
func newTestGateway(t *testing.T, routes []Route, mutate func(*Options)) *testGateway {
	t.Helper()
	var h http.Handler = http.NotFoundHandler()
	var hmu sync.RWMutex
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hmu.RLock()
		hh := h
		hmu.RUnlock()
		hh.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	for i := range routes {
		if strings.HasPrefix(routes[i].URL, "/") {
			routes[i].URL = srv.URL + routes[i].URL
		}
	}
	st, err := sqlite.Open(t.Context(), sqlite.Options{Path: filepath.Join(t.TempDir(), "gw.db"), Now: time.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	logs := &syncbuf.Buffer{}
	reg := prometheus.NewRegistry()
	opts := Options{
		Issuer:      "https://as.example.com",
		Routes:      routes,
		NewVerifier: testVerifier,
		Audit:       st,
		Registerer:  reg,
		Logger:      slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	if mutate != nil {
		mutate(&opts)
	}
	g, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		g.Close()
		if t.Failed() {
			t.Logf("--- gateway log ---\n%s", logs.String())
		}
	})
	hmu.Lock()
	h = g
	hmu.Unlock()
	return &testGateway{Gateway: g, srv: srv, base: srv.URL, store: st, reg: reg, logs: logs}
}

// fakeRoute is a stdio route to fakemcp at /fake/mcp with a small policy:
// fake:read for everything, admin_* needs fake:admin.
func fakeRoute(t *testing.T) Route {
	return Route{
		Name:     "fake",
		URL:      "/fake/mcp",
		Upstream: Upstream{Command: fakeMCP(t), Env: []string{"FAKE_UPSTREAM_TOKEN=upstream-secret"}},
		Scopes:   []string{"fake:read"},
		Tools:    Rules{"admin_*": {"fake:admin"}},
		Prompts:  Rules{"secret_prompt": {"fake:admin"}},
		Resources: Rules{
			"fake://private/*": {"fake:admin"},
		},
	}
}

// rpcResult is one JSON-RPC response read by the raw client.
type rpcResult struct {
	ID     json.RawMessage     `json:"id"`
	Result json.RawMessage     `json:"result"`
	Error  *mcpauthz.ErrorBody `json:"error"`
	Method string              `json:"method"`
	Params json.RawMessage     `json:"params"`
}

// rawClient speaks Streamable HTTP by hand, for tests that need to see
// status codes and headers.
type rawClient struct {
	t      *testing.T
	url    string
	token  string
	sid    string
	accept string
	hc     *http.Client
	nextID int
}

func newRawClient(t *testing.T, url, token string) *rawClient {
	return &rawClient{t: t, url: url, token: token, accept: "application/json, text/event-stream", hc: &http.Client{Timeout: 30 * time.Second}}
}

// post sends body and returns the response with every message read from
// it (JSON or an event stream).
func (c *rawClient) post(body string, header ...string) (*http.Response, []rpcResult) {
	c.t.Helper()
	req, err := http.NewRequest(http.MethodPost, c.url, strings.NewReader(body))
	if err != nil {
		c.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", c.accept)
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	if c.sid != "" {
		req.Header.Set(headerSessionID, c.sid)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		c.t.Fatalf("POST %s: %v", c.url, err)
	}
	defer resp.Body.Close()
	return resp, readMessages(c.t, resp)
}

// openStream opens the session's GET event stream (server messages
// outside any request), closed when ctx ends or the test does.
func (c *rawClient) openStream(ctx context.Context) *http.Response {
	c.t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.url, nil)
	if err != nil {
		c.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set(headerSessionID, c.sid)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusOK {
		c.t.Fatalf("GET stream: %v %v", resp, err)
	}
	c.t.Cleanup(func() { resp.Body.Close() })
	return resp
}

// readMessages reads the JSON-RPC messages of a response.
func readMessages(t *testing.T, resp *http.Response) []rpcResult {
	t.Helper()
	var out []rpcResult
	ct := resp.Header.Get("Content-Type")
	switch {
	case strings.HasPrefix(ct, "text/event-stream"):
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 64<<10), 64<<20)
		for sc.Scan() {
			if d, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
				var m rpcResult
				if err := json.Unmarshal([]byte(d), &m); err != nil {
					t.Fatalf("event data %q: %v", d, err)
				}
				out = append(out, m)
			}
		}
	case strings.HasPrefix(ct, "application/json"):
		b, _ := io.ReadAll(resp.Body)
		b = bytes.TrimSpace(b)
		if len(b) > 0 && b[0] == '[' {
			if err := json.Unmarshal(b, &out); err != nil {
				t.Fatalf("body %s: %v", b, err)
			}
		} else if len(b) > 0 && !isOAuthError(b) {
			var m rpcResult
			if err := json.Unmarshal(b, &m); err != nil {
				t.Fatalf("body %s: %v", b, err)
			}
			out = append(out, m)
		}
	default:
		io.Copy(io.Discard, resp.Body)
	}
	return out
}

// isOAuthError reports whether b is an {"error": "code", ...} body
// rather than a JSON-RPC message.
func isOAuthError(b []byte) bool {
	var m map[string]json.RawMessage
	return json.Unmarshal(b, &m) == nil && len(m["error"]) > 0 && m["error"][0] == '"'
}

// initialize opens a session; it fails the test unless it succeeds.
func (c *rawClient) initialize() {
	c.t.Helper()
	resp, msgs := c.post(`{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}`)
	if resp.StatusCode != http.StatusOK || len(msgs) != 1 || msgs[0].Result == nil {
		c.t.Fatalf("initialize: status %d, messages %+v", resp.StatusCode, msgs)
	}
	c.sid = resp.Header.Get(headerSessionID)
	if c.sid == "" {
		c.t.Fatal("initialize: no Mcp-Session-Id")
	}
	if resp, _ := c.post(`{"jsonrpc":"2.0","method":"notifications/initialized"}`); resp.StatusCode != http.StatusAccepted {
		c.t.Fatalf("notifications/initialized: status %d, want 202", resp.StatusCode)
	}
}

// call sends one request and returns the status and its response (the
// last message with an id).
func (c *rawClient) call(method string, params any) (int, rpcResult) {
	c.t.Helper()
	c.nextID++
	b, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": c.nextID, "method": method, "params": params})
	resp, msgs := c.post(string(b))
	var last rpcResult
	for _, m := range msgs {
		if len(m.ID) > 0 && m.Method == "" {
			last = m
		}
	}
	return resp.StatusCode, last
}

// callTool calls a tool and returns the status and response.
func (c *rawClient) callTool(name string, args map[string]any) (int, rpcResult) {
	c.t.Helper()
	if args == nil {
		args = map[string]any{}
	}
	return c.call("tools/call", map[string]any{"name": name, "arguments": args})
}

// delete ends the session.
func (c *rawClient) delete() int {
	c.t.Helper()
	req, _ := http.NewRequest(http.MethodDelete, c.url, nil)
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set(headerSessionID, c.sid)
	resp, err := c.hc.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// toolText is the first text content of a tools/call result.
func toolText(r rpcResult) string {
	var res struct {
		Content []struct {
			Text string `json:"text"`
		} `json:"content"`
	}
	json.Unmarshal(r.Result, &res)
	if len(res.Content) == 0 {
		return ""
	}
	return res.Content[0].Text
}

// names lists the "name" (or "uri") members of a list result's member.
func names(t *testing.T, r rpcResult, member, key string) []string {
	t.Helper()
	var res map[string]json.RawMessage
	var entries []map[string]any
	if err := json.Unmarshal(r.Result, &res); err != nil {
		t.Fatalf("list result %s: %v", r.Result, err)
	}
	if err := json.Unmarshal(res[member], &entries); err != nil {
		t.Fatalf("list result %s: %v", r.Result, err)
	}
	var out []string
	for _, e := range entries {
		s, _ := e[key].(string)
		out = append(out, s)
	}
	return out
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// bearerTransport adds a bearer token to every request.
type bearerTransport struct {
	token string
	base  http.RoundTripper
}

func (b *bearerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	r.Header.Set("Cookie", "client-cookie=must-not-pass")
	return b.base.RoundTrip(r)
}
