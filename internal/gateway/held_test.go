package gateway

// What held under the second outside review (issue 20), kept so: the
// gateway's limits on what a client sends and an upstream answers. Each
// test asserts the behaviour (the refusal, the stop at a cap, the bytes an
// upstream got to write), never a duration.

import (
	"bytes"
	"cmp"
	"compress/gzip"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse-mcp/gatehouse/internal/mcpauthz"
)

// The documented defaults (docs/gateway.md) of max_body_bytes and
// max_message_bytes, written out so that a changed default fails here.
const (
	documentedMaxBody    = 4 << 20
	documentedMaxMessage = 16 << 20
)

// echoUpstream is an HTTP upstream that answers every POST with an empty
// result for id 1 and counts the requests that reach it.
func echoUpstream(t *testing.T) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"jsonrpc":"2.0","id":1,"result":{}}`)
	}))
	t.Cleanup(srv.Close)
	return srv, &n
}

// nested is depth arrays inside each other.
func nested(depth int) string { return strings.Repeat("[", depth) + strings.Repeat("]", depth) }

// TestNestedJSONRefused: a body nested millions deep, just under the 4 MiB
// body cap, is refused as a parse error and never reaches the upstream;
// nesting of a sane depth passes.
func TestNestedJSONRefused(t *testing.T) {
	up, reached := echoUpstream(t)
	tg := newTestGateway(t, []Route{httpRoute(up.URL)}, nil)
	c := newRawClient(t, tg.base+"/up/mcp", "alice-read")
	call := func(args string) string {
		return `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"x":` + args + `}}}`
	}
	fill := func(wrap func(string) string) string { // the deepest body under the cap
		depth := (documentedMaxBody - len(wrap(""))) / 2
		return wrap(nested(depth))
	}
	deepObject := func(depth int) string {
		return strings.Repeat(`{"a":`, depth) + "1" + strings.Repeat("}", depth)
	}

	if resp, msgs := c.post(call(nested(64))); resp.StatusCode != http.StatusOK || len(msgs) != 1 || msgs[0].Error != nil || reached.Load() != 1 {
		t.Fatalf("arguments nested 64 deep = %d %+v (upstream reached %d times), want 200 and a result from the upstream", resp.StatusCode, msgs, reached.Load())
	}
	for _, tt := range []struct{ name, body string }{
		{"arguments nested arrays", fill(call)},
		{"arguments nested objects", call(deepObject((documentedMaxBody - len(call("1"))) / 6))},
		{"a batch nested arrays", fill(func(s string) string { return s })},
		{"id nested arrays", fill(func(s string) string { return `{"jsonrpc":"2.0","method":"ping","id":` + s + `}` })},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if len(tt.body) > documentedMaxBody {
				t.Fatalf("body of %d bytes, over the %d-byte cap: this would test the cap", len(tt.body), documentedMaxBody)
			}
			before := reached.Load()
			resp, msgs := c.post(tt.body)
			if resp.StatusCode != http.StatusBadRequest || len(msgs) != 1 || msgs[0].Error == nil || msgs[0].Error.Code != mcpauthz.CodeParseError {
				t.Errorf("POST %s (%d bytes) = %d %+v, want 400 and JSON-RPC error %d", tt.name, len(tt.body), resp.StatusCode, msgs, mcpauthz.CodeParseError)
			}
			if n := reached.Load() - before; n != 0 {
				t.Errorf("POST %s reached the upstream %d times, want 0", tt.name, n)
			}
		})
	}
}

// TestGzipRequestBodyRefused: the gateway never inflates a request body
// (a gzip bomb inflates past any cap): a gzip-encoded call is refused with
// 415 naming the encoding and never reaches the upstream, where the same
// call sent plain is answered.
func TestGzipRequestBodyRefused(t *testing.T) {
	up, reached := echoUpstream(t)
	tg := newTestGateway(t, []Route{httpRoute(up.URL)}, nil)
	c := newRawClient(t, tg.base+"/up/mcp", "alice-read")
	const call = `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{}}}`
	if resp, msgs := c.post(call); resp.StatusCode != http.StatusOK || len(msgs) != 1 || msgs[0].Error != nil || reached.Load() != 1 {
		t.Fatalf("the plain call = %d %+v (upstream reached %d times), want 200 and a result from the upstream", resp.StatusCode, msgs, reached.Load())
	}
	var zbody bytes.Buffer
	zw := gzip.NewWriter(&zbody)
	io.WriteString(zw, call)
	zw.Close()
	resp, msgs := c.post(zbody.String(), "Content-Encoding", "gzip")
	if resp.StatusCode != http.StatusUnsupportedMediaType || len(msgs) != 1 || msgs[0].Error == nil || msgs[0].Error.Code != mcpauthz.CodeInvalidRequest ||
		!strings.Contains(msgs[0].Error.Message, `Content-Encoding "gzip" is not supported`) {
		t.Errorf("the gzip-encoded call = %d %+v, want 415 and JSON-RPC error %d naming the encoding", resp.StatusCode, msgs, mcpauthz.CodeInvalidRequest)
	}
	if n := reached.Load(); n != 1 {
		t.Errorf("the gzip-encoded call reached the upstream (%d requests in all, want 1)", n)
	}
}

// offer is an upstream answer of up to total bytes: head, then chunk
// again and again. With gz set each piece is a gzip member of its own
// (Content-Encoding: gzip; one stream to a reader), and total counts
// inflated bytes.
type offer struct {
	contentType string
	gz          bool
	head, chunk []byte
	total       int64

	written atomic.Int64 // bytes (inflated, with gz) the upstream wrote before it stopped
	done    chan struct{}
}

func (o *offer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	defer close(o.done)
	io.Copy(io.Discard, r.Body)
	w.Header().Set("Content-Type", o.contentType)
	head, chunk := o.head, o.chunk
	if o.gz {
		w.Header().Set("Content-Encoding", "gzip")
		head, chunk = gzipped(head), gzipped(chunk)
	}
	w.WriteHeader(http.StatusOK)
	if _, err := w.Write(head); err != nil {
		return
	}
	o.written.Add(int64(len(o.head)))
	for o.written.Load() < o.total {
		if _, err := w.Write(chunk); err != nil {
			return
		}
		o.written.Add(int64(len(o.chunk)))
	}
}

// gzipped is b as one gzip member.
func gzipped(b []byte) []byte {
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	zw.Write(b)
	zw.Close()
	return buf.Bytes()
}

// TestUpstreamAnswerCapped: an upstream offering 1 GiB, plain or as a
// gzip bomb, as JSON or an event stream, is stopped at the 16 MiB default
// of max_message_bytes: the client gets a JSON-RPC error (for another
// content type at once: it is never passed on, see mcpauthz.ResponseKind),
// the upstream wrote a small part of what
// it offered, and the gateway never held it (its allocations stay far
// below 1 GiB).
func TestUpstreamAnswerCapped(t *testing.T) {
	const (
		gib    = 1 << 30
		bounds = 256 << 20 // far above the cap plus socket buffers, far below 1 GiB
	)
	x := bytes.Repeat([]byte("x"), 1<<20)
	lines := bytes.Repeat([]byte("data: "+strings.Repeat("x", 1000)+"\n"), 1024)
	jsonHead := []byte(`{"jsonrpc":"2.0","id":1,"result":{"pad":"`)
	sseHead := []byte("event: message\ndata: " + string(jsonHead))
	tests := []struct {
		name     string
		offer    *offer
		status   int
		code     int    // JSON-RPC error code of the last message
		contains string // in its message
		kind     string // of gatehouse_gateway_upstream_errors_total; "" for too_large
	}{
		{"json", &offer{contentType: "application/json", head: jsonHead, chunk: x},
			http.StatusBadGateway, mcpauthz.CodeInternal, "too large", ""},
		{"event stream, one long line", &offer{contentType: "text/event-stream", head: sseHead, chunk: x},
			http.StatusOK, mcpauthz.CodeUpstreamClosed, "ended the stream before responding", ""},
		{"event stream, an event that never ends", &offer{contentType: "text/event-stream", head: []byte("event: message\n"), chunk: lines},
			http.StatusOK, mcpauthz.CodeUpstreamClosed, "ended the stream before responding", ""},
		{"other content type", &offer{contentType: "application/octet-stream", head: x, chunk: x},
			http.StatusBadGateway, mcpauthz.CodeInternal, "cannot be checked", "unfilterable"},
		{"json gzip bomb", &offer{contentType: "application/json", gz: true, head: jsonHead, chunk: x},
			http.StatusBadGateway, mcpauthz.CodeInternal, "too large", ""},
		{"event stream gzip bomb", &offer{contentType: "text/event-stream", gz: true, head: sseHead, chunk: x},
			http.StatusOK, mcpauthz.CodeUpstreamClosed, "ended the stream before responding", ""},
	}
	var routes []Route
	for i, tt := range tests {
		tt.offer.total, tt.offer.done = gib, make(chan struct{})
		up := httptest.NewServer(tt.offer)
		t.Cleanup(up.Close)
		r := httpRoute(up.URL)
		r.Name, r.URL = fmt.Sprintf("r%d", i), fmt.Sprintf("/r%d/mcp", i)
		routes = append(routes, r)
	}
	tg := newTestGateway(t, routes, nil)
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			allocBefore := ms.TotalAlloc

			req, _ := http.NewRequest(http.MethodPost, routes[i].URL, strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo"}}`))
			req.Header.Set("Authorization", "Bearer alice-read")
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Accept", "application/json, text/event-stream")
			resp, err := (&http.Client{Timeout: time.Minute}).Do(req)
			if err != nil {
				t.Fatal(err)
			}
			msgs := readMessages(t, resp)
			resp.Body.Close()
			select {
			case <-tt.offer.done:
			case <-time.After(time.Minute): // a liveness guard, not a measurement
				t.Fatalf("the upstream is still writing (%d bytes so far): the gateway neither stopped reading nor closed the connection", tt.offer.written.Load())
			}
			runtime.ReadMemStats(&ms)
			alloc := ms.TotalAlloc - allocBefore
			written := tt.offer.written.Load()
			t.Logf("the upstream wrote %d MiB (inflated: %v) of the 1024 offered; the test process allocated %d MiB", written>>20, tt.offer.gz, alloc>>20)

			if resp.StatusCode != tt.status {
				t.Errorf("status %d, want %d", resp.StatusCode, tt.status)
			}
			if len(msgs) == 0 || string(msgs[len(msgs)-1].ID) != "1" || msgs[len(msgs)-1].Error == nil ||
				msgs[len(msgs)-1].Error.Code != tt.code || !strings.Contains(msgs[len(msgs)-1].Error.Message, tt.contains) {
				t.Errorf("messages %+v, want last a JSON-RPC error %d for id 1 containing %q", msgs, tt.code, tt.contains)
			}
			kind := cmp.Or(tt.kind, "too_large")
			if v := metricValue(t, tg, "gatehouse_gateway_upstream_errors_total", "route", routes[i].Name, "kind", kind); v != 1 {
				t.Errorf("gatehouse_gateway_upstream_errors_total{kind=%q} = %v, want 1: the answer was not ended by the cap or the content type", kind, v)
			}
			// Inflated, a gzip member is 1 MiB, and the socket buffers
			// hold many of them: what the bomb wrote says little.
			if !tt.offer.gz && written >= bounds {
				t.Errorf("the upstream wrote %d bytes of the %d offered, want less than %d: the gateway read past the cap", written, int64(gib), bounds)
			}
			if alloc >= bounds {
				t.Errorf("the test process allocated %d bytes during the answer, want less than %d: the gateway held more than the cap", alloc, bounds)
			}
		})
	}
}

// TestUpstreamAnswerAtCap pins the default cap: a JSON answer of exactly
// 16 MiB passes, one byte more is refused.
func TestUpstreamAnswerAtCap(t *testing.T) {
	answer := func(size int) []byte {
		head, tail := `{"jsonrpc":"2.0","id":1,"result":{"pad":"`, `"}}`
		return []byte(head + strings.Repeat("x", size-len(head)-len(tail)) + tail)
	}
	var body atomic.Pointer[[]byte]
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.Write(*body.Load())
	}))
	t.Cleanup(up.Close)
	tg := newTestGateway(t, []Route{httpRoute(up.URL)}, nil)
	c := newRawClient(t, tg.base+"/up/mcp", "alice-read")
	for _, tt := range []struct {
		size   int
		status int
	}{
		{documentedMaxMessage, http.StatusOK},
		{documentedMaxMessage + 1, http.StatusBadGateway},
	} {
		b := answer(tt.size)
		body.Store(&b)
		resp, msgs := c.post(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo"}}`)
		ok := len(msgs) == 1 && msgs[0].Error == nil && len(msgs[0].Result) > tt.size-100
		if resp.StatusCode != tt.status || ok != (tt.status == http.StatusOK) {
			t.Errorf("a %d-byte JSON answer = %d (result passed on: %v), want %d", tt.size, resp.StatusCode, ok, tt.status)
		}
	}
}

// TestEndlessEventStreamCut: an upstream that answers a call with an
// event stream that never ends is cut at the route's request_timeout
// (default 2 minutes; short here): the client gets the events so far and
// then a JSON-RPC error for the call, and the upstream's request is
// cancelled long before it would have finished.
func TestEndlessEventStreamCut(t *testing.T) {
	const events = 20000 // 5 ms apart: 100 s, were it not cut
	var sent atomic.Int64
	cut := make(chan bool, 1)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(http.StatusOK)
		rc := http.NewResponseController(w)
		for i := range events {
			ev := fmt.Sprintf("event: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{\"progressToken\":\"t\",\"progress\":%d}}\n\n", i)
			if _, err := io.WriteString(w, ev); err != nil || rc.Flush() != nil {
				break
			}
			sent.Add(1)
			select {
			case <-r.Context().Done():
				cut <- true
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
		cut <- r.Context().Err() != nil
	}))
	t.Cleanup(up.Close)
	r := httpRoute(up.URL)
	r.RequestTimeout = 300 * time.Millisecond
	tg := newTestGateway(t, []Route{r}, nil)
	c := newRawClient(t, tg.base+"/up/mcp", "alice-read")
	resp, msgs := c.post(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","_meta":{"progressToken":"t"}}}`)
	if resp.StatusCode != http.StatusOK || len(msgs) < 2 {
		t.Fatalf("the call = %d with %d messages, want 200, events and an error", resp.StatusCode, len(msgs))
	}
	if m := msgs[0]; m.Method != "notifications/progress" {
		t.Errorf("first message %+v, want a progress notification (the stream flowed before the cut)", m)
	}
	last := msgs[len(msgs)-1]
	if string(last.ID) != "1" || last.Error == nil || last.Error.Code != mcpauthz.CodeUpstreamClosed {
		t.Errorf("last message %+v, want a JSON-RPC error %d for id 1", last, mcpauthz.CodeUpstreamClosed)
	}
	select {
	case wasCut := <-cut:
		if !wasCut {
			t.Errorf("the upstream sent all %d events: the stream was not cut", events)
		}
	case <-time.After(time.Minute): // a liveness guard, not a measurement
		t.Fatalf("the upstream is still streaming after the client's answer ended (%d events)", sent.Load())
	}
	t.Logf("the upstream sent %d of %d events before the cut", sent.Load(), events)
}
