package gateway

import (
	"context"
	"mime"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/gatehouse-mcp/gatehouse/internal/mcpauthz"
)

// splitUpstream is a Go SDK MCP server over Streamable HTTP with the
// tools echo and admin_reset (counted), serving every revision as the
// conformance fixture does: a request naming 2026-07-28 or later without
// a session id goes to a stateless handler (the SDK serves 2026-07-28
// only so), every other to a stateful one.
func splitUpstream(t *testing.T, jsonResponse bool) (*httptest.Server, *recorder, *atomic.Int64) {
	t.Helper()
	s := mcp.NewServer(&mcp.Implementation{Name: "upstream", Version: "1"}, nil)
	var resets atomic.Int64
	mcp.AddTool(s, &mcp.Tool{Name: "echo"}, func(ctx context.Context, req *mcp.CallToolRequest, in echoIn) (*mcp.CallToolResult, any, error) {
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "echo: " + in.Message}}}, nil, nil
	})
	mcp.AddTool(s, &mcp.Tool{Name: "admin_reset"}, func(context.Context, *mcp.CallToolRequest, echoIn) (*mcp.CallToolResult, any, error) {
		resets.Add(1)
		return &mcp.CallToolResult{}, nil, nil
	})
	get := func(*http.Request) *mcp.Server { return s }
	stateful := mcp.NewStreamableHTTPHandler(get, &mcp.StreamableHTTPOptions{JSONResponse: jsonResponse})
	stateless := mcp.NewStreamableHTTPHandler(get, &mcp.StreamableHTTPOptions{JSONResponse: jsonResponse, Stateless: true})
	rec := &recorder{}
	srv := httptest.NewServer(rec.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get(headerProtocolVersion) >= firstStatelessRevision && r.Header.Get(headerSessionID) == "" {
			stateless.ServeHTTP(w, r)
			return
		}
		stateful.ServeHTTP(w, r)
	})))
	t.Cleanup(srv.Close)
	return srv, rec, &resets
}

// clientExchange is one HTTP request of a client and its answer.
type clientExchange struct {
	method      string // the request's Mcp-Method (sent from 2026-07-28 on)
	status      int
	contentType string // the answer's media type
	challenge   string // the answer's WWW-Authenticate
	session     string // the answer's Mcp-Session-Id
}

// TestHTTPUpstreamStateless runs the Go SDK client in 2026-07-28 through
// an HTTP route (list_tools granted) to an upstream that speaks it, with
// event-stream and JSON answers: server/discover is answered, no session
// is opened at the gateway or the upstream, tools/list is filtered and
// says cacheScope "private" (RS-18), a permitted call runs, and a call
// needing more scope gets the step-up challenge and never reaches the
// upstream. The same route and upstream still serve 2025-11-25 with a
// session.
func TestHTTPUpstreamStateless(t *testing.T) {
	for _, jsonResponse := range []bool{false, true} {
		name, answer := "sse", "text/event-stream"
		if jsonResponse {
			name, answer = "json", "application/json"
		}
		for _, rev := range []string{firstStatelessRevision, "2025-11-25"} {
			t.Run(name+"/"+rev, func(t *testing.T) {
				up, rec, resets := splitUpstream(t, jsonResponse)
				route := httpRoute(up.URL)
				route.ListTools = mcpauthz.ListGranted
				tg := newTestGateway(t, []Route{route}, nil)
				var mu sync.Mutex
				var wire []clientExchange
				client := &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
					resp, err := (&bearerTransport{token: "alice-read", base: http.DefaultTransport}).RoundTrip(r)
					if err == nil {
						mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
						mu.Lock()
						wire = append(wire, clientExchange{method: r.Header.Get(headerMethod), status: resp.StatusCode, contentType: mt,
							challenge: resp.Header.Get("WWW-Authenticate"), session: resp.Header.Get(headerSessionID)})
						mu.Unlock()
					}
					return resp, err
				})}
				c := mcp.NewClient(&mcp.Implementation{Name: "gosdk-test", Version: "1"}, nil)
				cs, err := c.Connect(t.Context(), &mcp.StreamableClientTransport{Endpoint: tg.base + "/up/mcp", HTTPClient: client, DisableStandaloneSSE: true},
					&mcp.ClientSessionOptions{ProtocolVersion: rev})
				if err != nil {
					t.Fatalf("Connect(%q) = %v", rev, err)
				}
				defer cs.Close()
				if got := cs.InitializeResult().ProtocolVersion; got != rev {
					t.Fatalf("Connect(%q): negotiated %q", rev, got)
				}
				stateless := rev >= firstStatelessRevision
				if stateless != (cs.ID() == "") {
					t.Errorf("Connect(%q): session id %q, want one only before %s", rev, cs.ID(), firstStatelessRevision)
				}
				ctx := t.Context()
				tools, err := cs.ListTools(ctx, nil)
				if err != nil {
					t.Fatalf("ListTools = %v", err)
				}
				var got []string
				for _, tl := range tools.Tools {
					got = append(got, tl.Name)
				}
				if !slices.Equal(got, []string{"echo"}) || tools.CacheScope != "private" {
					t.Errorf("tools/list with fake:read = %v, cacheScope %q; want [echo], private", got, tools.CacheScope)
				}
				res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "echo", Arguments: map[string]any{"message": "through"}})
				if err != nil || res.IsError || len(res.Content) == 0 || res.Content[0].(*mcp.TextContent).Text != "echo: through" {
					t.Fatalf("tools/call echo = %+v, %v", res, err)
				}
				if _, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "admin_reset"}); err == nil {
					t.Error("tools/call admin_reset with fake:read succeeded")
				}
				if n := resets.Load(); n != 0 {
					t.Errorf("admin_reset ran %d times upstream, want 0", n)
				}
				if n := tg.Sessions("up"); stateless && n != 0 {
					t.Errorf("gateway sessions of a 2026-07-28 client = %d, want 0", n)
				}
				for _, h := range rec.headers() {
					if h.Get(headerSessionID) != "" && stateless {
						t.Errorf("the upstream saw session id %q from a 2026-07-28 client", h.Get(headerSessionID))
					}
					if got := h.Values("Authorization"); len(got) != 1 || got[0] != "Bearer upstream-credential" {
						t.Errorf("upstream Authorization = %q, want only the gateway's credential", got)
					}
				}
				if !stateless {
					return
				}
				stepUp := `Bearer error="insufficient_scope", scope="fake:read fake:admin", resource_metadata="` + tg.base +
					`/.well-known/oauth-protected-resource/up/mcp", error_description="tool admin_reset needs scope fake:read fake:admin"`
				want := []clientExchange{
					{method: "server/discover", status: http.StatusOK, contentType: answer},
					{method: "tools/list", status: http.StatusOK, contentType: answer},
					{method: "tools/call", status: http.StatusOK, contentType: answer},
					{method: "tools/call", status: http.StatusForbidden, contentType: "application/json", challenge: stepUp},
				}
				mu.Lock()
				defer mu.Unlock()
				if diff := cmp.Diff(want, wire, cmp.AllowUnexported(clientExchange{})); diff != "" {
					t.Errorf("the client's exchanges (-want +got):\n%s", diff)
				}
			})
		}
	}
}

// TestHTTPUpstreamParamHeaders checks that an HTTP upstream gets the
// client's Mcp-Param-* headers (SEP-2243: they mirror tool arguments, the
// upstream checks them, and an intermediary must pass them on), and still
// nothing else of the client's.
func TestHTTPUpstreamParamHeaders(t *testing.T) {
	up, rec, _ := splitUpstream(t, true)
	tg := newTestGateway(t, []Route{httpRoute(up.URL)}, nil)
	c := newRawClient(t, tg.base+"/up/mcp", "alice-read")
	resp, _ := c.stateless(1, "tools/call", map[string]any{"name": "echo", "arguments": map[string]any{"message": "m"}},
		"Mcp-Param-Region", "eu", "X-Other", "no", "Cookie", "c=1")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("tools/call = %d", resp.StatusCode)
	}
	hs := rec.headers()
	if len(hs) == 0 {
		t.Fatal("the upstream received nothing")
	}
	h := hs[len(hs)-1]
	if h.Get("Mcp-Param-Region") != "eu" {
		t.Errorf("upstream Mcp-Param-Region = %q, want eu", h.Get("Mcp-Param-Region"))
	}
	if h.Get("X-Other") != "" || h.Get("Cookie") != "" {
		t.Errorf("upstream got X-Other %q, Cookie %q: only the listed headers and Mcp-Param-* pass", h.Get("X-Other"), h.Get("Cookie"))
	}
}
