package gateway

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/gatehouse-mcp/gatehouse/internal/mcpauthz"
	"github.com/gatehouse-mcp/gatehouse/internal/mcpauthz/mcphttptest"
	"github.com/gatehouse-mcp/gatehouse/internal/storage"
)

// recorder keeps the headers an upstream received.
type recorder struct {
	mu   sync.Mutex
	reqs []http.Header
}

func (rec *recorder) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec.mu.Lock()
		rec.reqs = append(rec.reqs, r.Header.Clone())
		rec.mu.Unlock()
		h.ServeHTTP(w, r)
	})
}

func (rec *recorder) headers() []http.Header {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return slices.Clone(rec.reqs)
}

type echoIn struct {
	Message string `json:"message,omitempty"`
}

// newUpstream returns a Go SDK MCP server over Streamable HTTP with the
// tools echo, admin_reset and tick (progress notifications 300 ms apart),
// recording what it receives.
func newUpstream(t *testing.T, jsonResponse bool) (*httptest.Server, *recorder) {
	t.Helper()
	s := mcp.NewServer(&mcp.Implementation{Name: "upstream", Version: "1"}, nil)
	echo := func(ctx context.Context, req *mcp.CallToolRequest, in echoIn) (*mcp.CallToolResult, any, error) {
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: req.Params.Name + ": " + in.Message}}}, nil, nil
	}
	mcp.AddTool(s, &mcp.Tool{Name: "echo"}, echo)
	mcp.AddTool(s, &mcp.Tool{Name: "admin_reset"}, echo)
	mcp.AddTool(s, &mcp.Tool{Name: "tick"}, func(ctx context.Context, req *mcp.CallToolRequest, in echoIn) (*mcp.CallToolResult, any, error) {
		for i := 1; i <= 2; i++ {
			req.Session.NotifyProgress(ctx, &mcp.ProgressNotificationParams{ProgressToken: req.Params.GetProgressToken(), Progress: float64(i), Total: 2})
			time.Sleep(300 * time.Millisecond)
		}
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "ticked"}}}, nil, nil
	})
	rec := &recorder{}
	h := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return s }, &mcp.StreamableHTTPOptions{JSONResponse: jsonResponse})
	srv := httptest.NewServer(rec.wrap(h))
	t.Cleanup(srv.Close)
	return srv, rec
}

// httpRoute is a route to an HTTP upstream with a static credential.
func httpRoute(upstream string) Route {
	return Route{
		Name:     "up",
		URL:      "/up/mcp",
		Upstream: Upstream{URL: upstream + "/", Header: http.Header{"Authorization": {"Bearer upstream-credential"}, "X-Upstream-Key": {"k1"}}},
		Scopes:   []string{"fake:read"},
		Tools:    Rules{"admin_*": {"fake:admin"}},
	}
}

// TestHTTPUpstream runs the Go SDK client through an HTTP route to a Go
// SDK server (event-stream and JSON responses): the upstream sees the
// gateway's credential and its own session id, never the client's token,
// cookie or the gateway's session id.
func TestHTTPUpstream(t *testing.T) {
	for _, jsonResponse := range []bool{false, true} {
		name := "sse"
		if jsonResponse {
			name = "json"
		}
		t.Run(name, func(t *testing.T) {
			up, rec := newUpstream(t, jsonResponse)
			tg := newTestGateway(t, []Route{httpRoute(up.URL)}, nil)
			url := tg.base + "/up/mcp"
			var gatewaySessions []string
			var gmu sync.Mutex
			client := &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
				resp, err := (&bearerTransport{token: "alice-read", base: http.DefaultTransport}).RoundTrip(r)
				if err == nil && resp.Header.Get(headerSessionID) != "" {
					gmu.Lock()
					gatewaySessions = append(gatewaySessions, resp.Header.Get(headerSessionID))
					gmu.Unlock()
				}
				return resp, err
			})}
			c := mcp.NewClient(&mcp.Implementation{Name: "gosdk-test", Version: "1"}, nil)
			cs, err := c.Connect(t.Context(), &mcp.StreamableClientTransport{Endpoint: url, HTTPClient: client}, nil)
			if err != nil {
				t.Fatalf("Connect = %v\n%s", err, tg.logs.String())
			}
			ctx := t.Context()
			tools, err := cs.ListTools(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, tl := range tools.Tools {
				got = append(got, tl.Name)
			}
			slices.Sort(got)
			// admin_reset needs fake:admin: listed all the same (list_tools
			// grantable, the default), for a step-up.
			if want := []string{"admin_reset", "echo", "tick"}; !slices.Equal(got, want) {
				t.Errorf("tools/list = %v, want %v", got, want)
			}
			res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "echo", Arguments: map[string]any{"message": "through"}})
			if err != nil || res.IsError || res.Content[0].(*mcp.TextContent).Text != "echo: through" {
				t.Fatalf("tools/call echo = %+v, %v", res, err)
			}
			if _, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "admin_reset"}); err == nil {
				t.Error("tools/call admin_reset without fake:admin succeeded")
			}
			cs.Close()
			waitFor(t, 5*time.Second, "the session to end", func() bool { return tg.Sessions("up") == 0 })

			hs := rec.headers()
			if len(hs) == 0 {
				t.Fatal("the upstream received nothing")
			}
			var upstreamSessions []string
			for _, h := range hs {
				if got := h.Values("Authorization"); len(got) != 1 || got[0] != "Bearer upstream-credential" {
					t.Errorf("upstream Authorization = %q, want only the gateway's credential", got)
				}
				if h.Get("X-Upstream-Key") != "k1" {
					t.Errorf("upstream X-Upstream-Key = %q", h.Get("X-Upstream-Key"))
				}
				if h.Get("Cookie") != "" {
					t.Errorf("upstream received the client's Cookie %q", h.Get("Cookie"))
				}
				if sid := h.Get(headerSessionID); sid != "" {
					upstreamSessions = append(upstreamSessions, sid)
				}
			}
			gmu.Lock()
			defer gmu.Unlock()
			if len(gatewaySessions) == 0 || len(upstreamSessions) == 0 {
				t.Fatalf("sessions: gateway %v, upstream %v", gatewaySessions, upstreamSessions)
			}
			for _, g := range gatewaySessions {
				if slices.Contains(upstreamSessions, g) {
					t.Errorf("the upstream saw the gateway's session id %q", g)
				}
			}
		})
	}
}

// metricValue gathers the registry and returns the value of the series
// of name with the given label pairs (a histogram's sample count).
func metricValue(t *testing.T, tg *testGateway, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := tg.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for i := 0; i+1 < len(labels); i += 2 {
				found := false
				for _, lp := range m.GetLabel() {
					if lp.GetName() == labels[i] && lp.GetValue() == labels[i+1] {
						found = true
					}
				}
				if !found {
					continue next
				}
			}
			switch {
			case m.GetCounter() != nil:
				return m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				return m.GetGauge().GetValue()
			case m.GetHistogram() != nil:
				return float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return 0
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// TestHTTPUpstreamStreams checks that an upstream event stream is passed
// on event by event, not buffered: the first progress notification
// arrives well before the result.
func TestHTTPUpstreamStreams(t *testing.T) {
	up, _ := newUpstream(t, false)
	tg := newTestGateway(t, []Route{httpRoute(up.URL)}, nil)
	c := newRawClient(t, tg.base+"/up/mcp", "alice-read")
	c.initialize()
	req, _ := http.NewRequest(http.MethodPost, c.url, strings.NewReader(`{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"tick","arguments":{},"_meta":{"progressToken":"t"}}}`))
	req.Header.Set("Authorization", "Bearer alice-read")
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set(headerSessionID, c.sid)
	start := time.Now()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	var firstProgress, result time.Duration
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.Contains(line, "notifications/progress") && firstProgress == 0:
			firstProgress = time.Since(start)
		case strings.Contains(line, "ticked"):
			result = time.Since(start)
		}
	}
	if firstProgress == 0 || result == 0 || result-firstProgress < 400*time.Millisecond {
		t.Errorf("first progress at %s, result at %s: want the progress streamed ~600ms before the result", firstProgress, result)
	}
}

// TestHTTPUpstreamFailures checks that an upstream that is down, hangs or
// refuses the gateway's credential gives the client a JSON-RPC error at
// once, not a hang, and never its own challenge.
func TestHTTPUpstreamFailures(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := "http://" + ln.Addr().String()
	ln.Close()
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body) // so that the server notices the client going away
		select {
		case <-r.Context().Done():
		case <-time.After(10 * time.Second):
		}
	}))
	defer hang.Close()
	refuse := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("WWW-Authenticate", `Bearer resource_metadata="https://upstream.example/prm"`)
		w.WriteHeader(http.StatusUnauthorized)
	}))
	defer refuse.Close()
	broken := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.Write([]byte("event: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/message\",\"params\":{}}\n\n"))
	}))
	defer broken.Close()

	mk := func(name, u string) Route {
		r := httpRoute(u)
		r.Name, r.URL, r.RequestTimeout = name, "/"+name+"/mcp", 500*time.Millisecond
		return r
	}
	tg := newTestGateway(t, []Route{mk("down", down), mk("hang", hang.URL), mk("refuse", refuse.URL), mk("broken", broken.URL)}, nil)
	for _, tt := range []struct {
		route  string
		status int
		code   int
		text   string
	}{
		{"down", http.StatusBadGateway, mcpauthz.CodeUpstreamClosed, "unavailable"},
		{"hang", http.StatusGatewayTimeout, mcpauthz.CodeTimeout, "did not answer within 500ms"},
		{"refuse", http.StatusBadGateway, mcpauthz.CodeInternal, "refused the gateway's credentials"},
		{"broken", http.StatusOK, mcpauthz.CodeUpstreamClosed, "ended the stream before responding"},
	} {
		c := newRawClient(t, tg.base+"/"+tt.route+"/mcp", "alice-read")
		start := time.Now()
		resp, msgs := c.post(`{"jsonrpc":"2.0","id":"x1","method":"tools/call","params":{"name":"echo"}}`)
		last := msgs[len(msgs)-1]
		if resp.StatusCode != tt.status || string(last.ID) != `"x1"` || last.Error == nil || last.Error.Code != tt.code || !strings.Contains(last.Error.Message, tt.text) {
			t.Errorf("%s: %d %+v, want %d with JSON-RPC error %d %q", tt.route, resp.StatusCode, msgs, tt.status, tt.code, tt.text)
		}
		if resp.Header.Get("WWW-Authenticate") != "" {
			t.Errorf("%s: the upstream's challenge reached the client: %q", tt.route, resp.Header.Get("WWW-Authenticate"))
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("%s: took %s", tt.route, d)
		}
	}
	tg.Close()
	// Each call was recorded before it was forwarded, and its outcome
	// after: failed, naming the same call.
	events, err := tg.store.QueryAudit(t.Context(), storage.AuditQuery{Type: "gateway."})
	if err != nil {
		t.Fatal(err)
	}
	if len(events) != 8 {
		t.Fatalf("audit events = %+v, want 8", events)
	}
	pairs := map[string][]string{} // call=<id> → its events' type and outcome
	for _, e := range events {
		id := e.Detail[strings.Index(e.Detail, " call=")+1:]
		id, _, _ = strings.Cut(id, " ")
		pairs[id] = append(pairs[id], e.Type+" "+e.Outcome)
	}
	for id, got := range pairs {
		if want := []string{"gateway.tool_call allowed", "gateway.tool_result failed"}; !slices.Equal(got, want) {
			t.Errorf("audit events of %s = %q, want %q", id, got, want)
		}
	}
	if len(pairs) != 4 {
		t.Errorf("audit events name %d calls, want 4: %+v", len(pairs), events)
	}
	for route, kind := range map[string]string{"down": "unavailable", "hang": "timeout", "refuse": "credentials", "broken": "unavailable"} {
		if v := metricValue(t, tg, "gatehouse_gateway_upstream_errors_total", "route", route, "kind", kind); v != 1 {
			t.Errorf("gatehouse_gateway_upstream_errors_total{route=%q,kind=%q} = %v, want 1", route, kind, v)
		}
	}
}

// TestFailureAnswersInBodyOrder checks that when the upstream fails a
// batch, the JSON-RPC errors answering its calls come back in the order
// of the body, on HTTP and stdio, as one JSON array or as events.
func TestFailureAnswersInBodyOrder(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := httpRoute("http://" + ln.Addr().String())
	ln.Close()
	down.Name, down.URL = "down", "/down/mcp"
	stdio := fakeRoute(t)
	stdio.RequestTimeout = 500 * time.Millisecond
	tg := newTestGateway(t, []Route{down, stdio}, nil)

	// More calls than a map's iteration order keeps by chance.
	var parts, want []string
	for i := range 24 {
		id := strconv.Itoa(100 - i)
		if i%2 == 1 {
			id = strconv.Quote("c" + strconv.Itoa(i))
		}
		parts = append(parts, `{"jsonrpc":"2.0","id":`+id+`,"method":"tools/call","params":{"name":"hang"}}`)
		want = append(want, id)
	}
	body := "[" + strings.Join(parts, ",") + "]"
	for _, tt := range []struct {
		route, accept string
		status, code  int
	}{
		{"down", "application/json, text/event-stream", http.StatusBadGateway, mcpauthz.CodeUpstreamClosed},
		{"fake", "application/json", http.StatusGatewayTimeout, mcpauthz.CodeTimeout},
		{"fake", "text/event-stream", http.StatusOK, mcpauthz.CodeTimeout},
	} {
		c := newRawClient(t, tg.base+"/"+tt.route+"/mcp", "alice-read")
		if tt.route == "fake" {
			c.initialize()
		}
		c.accept = tt.accept
		resp, msgs := c.post(body)
		var got []string
		for _, m := range msgs {
			if m.Error == nil || m.Error.Code != tt.code {
				t.Errorf("%s, Accept %q: message %+v, want JSON-RPC error %d", tt.route, tt.accept, m, tt.code)
			}
			got = append(got, string(m.ID))
		}
		if resp.StatusCode != tt.status {
			t.Errorf("%s, Accept %q: status %d, want %d", tt.route, tt.accept, resp.StatusCode, tt.status)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("%s, Accept %q: ids of the errors (-body order +got):\n%s", tt.route, tt.accept, diff)
		}
	}
}

// TestMetricsAndAudit checks decisions per route in the metrics and an
// audit event per tool call in the store.
func TestMetricsAndAudit(t *testing.T) {
	up, _ := newUpstream(t, true)
	tg := newTestGateway(t, []Route{httpRoute(up.URL)}, nil)
	c := newRawClient(t, tg.base+"/up/mcp", "alice-read")
	c.initialize()
	c.callTool("echo", map[string]any{"message": "a"})
	c.callTool("echo", map[string]any{"message": "b"})
	c.callTool("admin_reset", nil)
	c.delete()
	if v := metricValue(t, tg, "gatehouse_gateway_decisions_total", "route", "up", "kind", "tool", "decision", "allowed"); v != 2 {
		t.Errorf("allowed decisions = %v, want 2", v)
	}
	if v := metricValue(t, tg, "gatehouse_gateway_decisions_total", "route", "up", "kind", "tool", "decision", "step_up"); v != 1 {
		t.Errorf("step_up decisions = %v, want 1", v)
	}
	if v := metricValue(t, tg, "gatehouse_gateway_tool_call_duration_seconds", "route", "up"); v != 2 {
		t.Errorf("tool call latency observations = %v, want 2", v)
	}
	if v := metricValue(t, tg, "gatehouse_gateway_requests_total", "route", "up", "method", "POST", "code", "403"); v != 1 {
		t.Errorf("403 requests = %v, want 1", v)
	}
	tg.Close()
	events, err := tg.store.QueryAudit(t.Context(), storage.AuditQuery{Type: "gateway."})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range events {
		got = append(got, e.Type+" "+e.Outcome)
		if e.UserID != "alice" || e.ClientID != "client-a" || e.Resource != tg.base+"/up/mcp" || !strings.HasPrefix(e.Detail, "route=up tool=") ||
			(e.Type == AuditToolResult) != strings.Contains(e.Detail, "latency_ms=") {
			t.Errorf("audit event %+v", e)
		}
	}
	slices.Sort(got)
	want := []string{"gateway.tool_call allowed", "gateway.tool_call allowed", "gateway.tool_call step_up", "gateway.tool_result ok", "gateway.tool_result ok"}
	if !slices.Equal(got, want) {
		t.Errorf("audit events = %q, want %q", got, want)
	}
}

// TestHTTPUpstreamResumedStream: an upstream with an event store replays a
// POST's events on a GET with Last-Event-ID; the replayed tools/list is
// filtered as the original was.
func TestHTTPUpstreamResumedStream(t *testing.T) {
	s := mcp.NewServer(&mcp.Implementation{Name: "upstream", Version: "1"}, nil)
	echo := func(context.Context, *mcp.CallToolRequest, echoIn) (*mcp.CallToolResult, any, error) {
		return &mcp.CallToolResult{}, nil, nil
	}
	mcp.AddTool(s, &mcp.Tool{Name: "echo"}, echo)
	mcp.AddTool(s, &mcp.Tool{Name: "admin_reset"}, echo)
	up := httptest.NewServer(mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return s },
		&mcp.StreamableHTTPOptions{EventStore: mcp.NewMemoryEventStore(nil)}))
	defer up.Close()
	// granted: the list depends on the token, and the replay must be
	// filtered as the first answer was.
	route := httpRoute(up.URL)
	route.ListTools = mcpauthz.ListGranted
	tg := newTestGateway(t, []Route{route}, nil)
	url := tg.base + "/up/mcp"
	c := &mcphttptest.Client{URL: url, Token: "alice-read"}
	c.Initialize(t)
	_, first := c.Do(t, http.MethodPost, `{"jsonrpc":"2.0","id":2,"method":"tools/list"}`)
	if !strings.Contains(first, `"echo"`) || strings.Contains(first, "admin_reset") {
		t.Fatalf("tools/list = %s, want echo only", first)
	}
	from := mcphttptest.FirstEventID(first)
	if from == "" {
		t.Fatalf("the tools/list stream has no event ids: %s", first)
	}
	resp, replay := c.Resume(t, from)
	if resp.StatusCode != http.StatusOK || !strings.Contains(replay, `"echo"`) {
		t.Fatalf("GET Last-Event-ID %s = %d %s, want the replayed tools/list", from, resp.StatusCode, replay)
	}
	if strings.Contains(replay, "admin_reset") || strings.Contains(replay, `"cacheScope":"public"`) {
		t.Errorf("the replayed tools/list lists admin_reset to alice-read, or may be cached for everyone: %s", replay)
	}
}
