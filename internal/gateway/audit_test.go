package gateway

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-mcp/gatehouse/internal/mcpauthz"
	"github.com/gatehouse-mcp/gatehouse/internal/storage"
)

// Tests of issue 20 F1: a batch of 20,001 calls filled the audit queue,
// and every call ran upstream while most audit rows were dropped. The rule
// now: every forwarded tool call has a committed audit record before or
// as it is forwarded, and before anything of its answer reaches the
// client (audit.go's top comment); when the store cannot keep up, calls
// wait or are refused (503, JSON-RPC -32005), and records are never
// dropped.

// slowAudit wraps the test store: every AppendAudits waits for gate (a
// value or its closing), and fails with fail when set.
type slowAudit struct {
	storage.Audit
	gate chan struct{}
	fail error
}

func (s *slowAudit) AppendAudits(ctx context.Context, es []storage.AuditEvent) error {
	if s.gate != nil {
		select {
		case <-s.gate:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if s.fail != nil {
		return s.fail
	}
	return s.Audit.AppendAudits(ctx, es)
}

// executed lists the tool calls an upstream ran, as "tool message".
type executed struct {
	mu    sync.Mutex
	calls []string
	file  string // a stdio upstream's FAKEMCP_CALL_LOG
}

func (e *executed) add(s string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.calls = append(e.calls, s)
}

func (e *executed) list(t *testing.T) []string {
	t.Helper()
	if e.file != "" {
		b, err := os.ReadFile(e.file)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		}
		return strings.Fields(strings.ReplaceAll(string(b), "echo ", ""))
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.calls)
}

// countingUpstream is a Streamable HTTP MCP upstream (JSON responses,
// batches of any length) whose echo tool records each message it runs.
func countingUpstream(t *testing.T) (*httptest.Server, *executed) {
	ran := &executed{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body json.RawMessage
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			http.Error(w, "bad JSON", http.StatusBadRequest)
			return
		}
		batch := len(body) > 0 && body[0] == '['
		var msgs []json.RawMessage
		if batch {
			json.Unmarshal(body, &msgs)
		} else {
			msgs = []json.RawMessage{body}
		}
		var out []any
		for _, raw := range msgs {
			var m struct {
				ID     json.RawMessage `json:"id"`
				Method string          `json:"method"`
				Params struct {
					Name      string            `json:"name"`
					Arguments map[string]string `json:"arguments"`
				} `json:"params"`
			}
			json.Unmarshal(raw, &m)
			var result any = map[string]any{}
			switch m.Method {
			case "initialize":
				w.Header().Set(headerSessionID, "upstream-session")
				result = map[string]any{"protocolVersion": "2025-06-18", "capabilities": map[string]any{"tools": map[string]any{}}, "serverInfo": map[string]any{"name": "counting", "version": "1"}}
			case "tools/call":
				ran.add(m.Params.Arguments["message"])
				result = map[string]any{"content": []any{map[string]any{"type": "text", "text": "echo: " + m.Params.Arguments["message"]}}}
			}
			if m.ID != nil {
				out = append(out, map[string]any{"jsonrpc": "2.0", "id": m.ID, "result": result})
			}
		}
		if len(out) == 0 {
			w.WriteHeader(http.StatusAccepted)
			return
		}
		var payload any = out
		if !batch {
			payload = out[0]
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(payload)
	}))
	t.Cleanup(srv.Close)
	return srv, ran
}

// auditRoutes are an HTTP route (/up/mcp) to a counting upstream and a
// stdio route (/fake/mcp) to fakemcp logging its calls, each with what
// it ran.
func auditRoutes(t *testing.T) ([]Route, map[string]*executed) {
	up, ranHTTP := countingUpstream(t)
	ranStdio := &executed{file: filepath.Join(t.TempDir(), "calls")}
	stdio := fakeRoute(t)
	stdio.Upstream.Env = append(stdio.Upstream.Env, "FAKEMCP_CALL_LOG="+ranStdio.file)
	return []Route{httpRoute(up.URL), stdio}, map[string]*executed{"up": ranHTTP, "fake": ranStdio}
}

// batchOf is a JSON-RPC batch of n echo calls with messages prefix-1…n.
func batchOf(prefix string, n int) string {
	msgs := make([]string, n)
	for i := range msgs {
		msgs[i] = fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":"echo","arguments":{"message":"%s-%d"}}}`, i+1, prefix, i+1)
	}
	return "[" + strings.Join(msgs, ",") + "]"
}

// auditedCalls returns the messages of the calls the audit log records
// as forwarded ("allowed") on route, and how many outcomes it holds.
func auditedCalls(t *testing.T, tg *testGateway, route string) (calls int, outcomes int) {
	t.Helper()
	events, err := tg.store.QueryAudit(t.Context(), storage.AuditQuery{Type: "gateway.", Limit: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range events {
		if !strings.HasPrefix(e.Detail, "route="+route+" ") {
			continue
		}
		switch {
		case e.Type == AuditToolCall && e.Outcome == "allowed":
			calls++
		case e.Type == AuditToolResult:
			outcomes++
		}
	}
	return calls, outcomes
}

// TestAuditUnderBatch (issue 20 F1): a batch at max_batch_messages through
// an HTTP and a stdio route, while the store is slow and the audit queue
// smaller than the batch (an empty queue takes a batch of any size):
// every call the upstream ran has its record, and every one has its
// outcome once the gateway is closed. On a fresh gateway the records are
// committed before the batch is forwarded; once the store has committed
// (a call before), as it is forwarded.
func TestAuditUnderBatch(t *testing.T) {
	for _, tt := range []struct {
		route string
		warm  int
	}{{"up", 0}, {"fake", 0}, {"up", 1}, {"fake", 1}} {
		route := tt.route
		t.Run(fmt.Sprintf("%s/committed_before=%d", route, tt.warm), func(t *testing.T) {
			routes, ran := auditRoutes(t)
			for i := range routes {
				routes[i].MaxBatchMessages = 100
			}
			gate := make(chan struct{})
			tg := newTestGateway(t, routes, func(o *Options) {
				o.Audit = &slowAudit{Audit: o.Audit, gate: gate}
				o.AuditBuffer = 16
			})
			// The store takes a while for every transaction.
			stop := make(chan struct{})
			defer close(stop)
			go func() {
				for {
					select {
					case <-stop:
						return
					case <-time.After(20 * time.Millisecond):
					}
					select {
					case gate <- struct{}{}:
					case <-stop:
						return
					}
				}
			}()
			c := newRawClient(t, tg.base+"/"+route+"/mcp", "alice-read")
			c.initialize()
			for i := range tt.warm {
				msg := fmt.Sprintf("%s-warm-%d", route, i)
				if status, res := c.callTool("echo", map[string]any{"message": msg}); status != http.StatusOK || toolText(res) != "echo: "+msg {
					t.Fatalf("call %s = %d %+v, want its result", msg, status, res)
				}
			}
			// An empty queue: the outcomes before are written.
			waitFor(t, 10*time.Second, "the outcomes of the calls before", func() bool {
				_, outcomes := auditedCalls(t, tg, route)
				return outcomes == tt.warm
			})
			resp, msgs := c.post(batchOf(route, 100))
			ok := 0
			for _, m := range msgs {
				if m.Error == nil && strings.HasPrefix(toolText(m), "echo") {
					ok++
				}
			}
			if resp.StatusCode != http.StatusOK || ok != 100 {
				t.Errorf("a batch of 100 calls = %d with %d results of %d messages, want 200 with 100", resp.StatusCode, ok, len(msgs))
			}
			tg.Close()
			n := len(ran[route].list(t))
			calls, outcomes := auditedCalls(t, tg, route)
			if calls != n || outcomes != n || n != 100+tt.warm {
				t.Errorf("the upstream ran %d calls; the audit log records %d forwarded and %d outcomes, want %d each", n, calls, outcomes, 100+tt.warm)
			}
		})
	}
}

// TestAuditUnderBurst (issue 20 F1): concurrent single calls while the
// store holds a transaction: the calls that fit the audit queue wait, the
// others are refused at once with 503 and JSON-RPC -32005 and never reach
// the upstream. No call is answered before its record is committed: on a
// fresh gateway the waiting calls are not forwarded either; once the
// store has committed (a call before), they are, as their records are
// committed, unless the route's gateway has AuditBeforeForward, which
// forwards none of them before its commit. The upstream's calls and the records match one for one, and
// the log sums the refusals up in two lines (the first refusal, then the
// rest at shutdown: the clock stands still), not one per call.
func TestAuditUnderBurst(t *testing.T) {
	for _, tt := range []struct {
		route     string
		committed bool
		before    bool // Options.AuditBeforeForward
	}{{"up", false, false}, {"fake", false, false}, {"up", true, false}, {"fake", true, false}, {"up", true, true}, {"fake", true, true}} {
		route := tt.route
		t.Run(fmt.Sprintf("%s/committed_before=%v/audit_before_forward=%v", route, tt.committed, tt.before), func(t *testing.T) {
			routes, ran := auditRoutes(t)
			gate := make(chan struct{})
			const queue, clients, callsEach = 4, 8, 5
			tg := newTestGateway(t, routes, func(o *Options) {
				o.Audit = &slowAudit{Audit: o.Audit, gate: gate}
				o.AuditBuffer = queue
				o.AuditBeforeForward = tt.before
				fixed := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
				o.Now = func() time.Time { return fixed }
			})
			var wg sync.WaitGroup
			var mu sync.Mutex
			var forwarded, refused []string
			warm := 0
			if tt.committed {
				// One call and its outcome, each let through the gate.
				msg := route + "-warm"
				c := newRawClient(t, tg.base+"/"+route+"/mcp", "alice-read")
				c.initialize()
				done := make(chan struct{})
				go func() {
					defer close(done)
					if status, res := c.callTool("echo", map[string]any{"message": msg}); status != http.StatusOK || toolText(res) != "echo: "+msg {
						t.Errorf("call %s = %d %+v, want its result", msg, status, res)
					}
				}()
				gate <- struct{}{}
				<-done
				gate <- struct{}{}
				waitFor(t, 10*time.Second, "the first call's outcome", func() bool {
					_, outcomes := auditedCalls(t, tg, route)
					return outcomes == 1
				})
				forwarded, warm = append(forwarded, msg), 1
			}
			for i := range clients {
				c := newRawClient(t, tg.base+"/"+route+"/mcp", "alice-read")
				c.initialize()
				wg.Go(func() {
					for k := range callsEach {
						msg := fmt.Sprintf("%s-%d-%d", route, i, k)
						status, res := c.callTool("echo", map[string]any{"message": msg})
						mu.Lock()
						switch {
						case status == http.StatusOK && toolText(res) == "echo: "+msg:
							forwarded = append(forwarded, msg)
						case status == http.StatusServiceUnavailable && res.Error != nil && res.Error.Code == CodeAuditUnavailable &&
							strings.Contains(res.Error.Message, "audit record could not be written"):
							refused = append(refused, msg)
						default:
							t.Errorf("call %s = %d %+v, want its result or the audit refusal", msg, status, res)
						}
						mu.Unlock()
					}
				})
			}
			// While the store holds the first transaction, the first
			// calls of queue clients wait; every call of the others is
			// refused. Then the store is released.
			waitFor(t, 10*time.Second, "a full queue and every other call refused", func() bool {
				return metricValue(t, tg, "gatehouse_gateway_audit_queued") == queue &&
					metricValue(t, tg, "gatehouse_gateway_audit_refused_total", "route", route, "reason", "queue_full") == (clients-queue)*callsEach
			})
			if tt.committed && !tt.before {
				waitFor(t, 10*time.Second, "the waiting calls forwarded", func() bool {
					return len(ran[route].list(t)) == warm+queue
				})
			} else if got := ran[route].list(t); len(got) != warm {
				t.Errorf("the upstream ran %q before the waiting calls' records were committed, want only the %d call(s) before", got, warm)
			}
			mu.Lock()
			if len(forwarded) != warm {
				t.Errorf("calls answered with their result %q while the store holds their records, want none", forwarded[warm:])
			}
			mu.Unlock()
			close(gate)
			wg.Wait()
			tg.Close()

			got := ran[route].list(t)
			slices.Sort(got)
			slices.Sort(forwarded)
			if !slices.Equal(got, forwarded) {
				t.Errorf("the upstream ran %q, want exactly the calls answered with a result %q", got, forwarded)
			}
			calls, outcomes := auditedCalls(t, tg, route)
			if calls != len(got) || outcomes != len(got) {
				t.Errorf("the upstream ran %d calls; the audit log records %d forwarded and %d outcomes", len(got), calls, outcomes)
			}
			if len(forwarded)-warm < queue || len(forwarded)-warm+len(refused) != clients*callsEach {
				t.Errorf("%d calls forwarded and %d refused, want at least the %d that waited, and %d in all", len(forwarded)-warm, len(refused), queue, clients*callsEach)
			}
			if v := metricValue(t, tg, "gatehouse_gateway_audit_refused_total", "route", route, "reason", "queue_full"); int(v) != len(refused) {
				t.Errorf("gatehouse_gateway_audit_refused_total = %v, want %d", v, len(refused))
			}
			var lines, sum int
			for _, line := range strings.Split(tg.logs.String(), "\n") {
				if strings.Contains(line, "audit log unavailable") {
					lines++
					var n int
					fmt.Sscanf(line[strings.Index(line, "refused_calls="):], "refused_calls=%d", &n)
					sum += n
				}
			}
			if lines != 2 || sum != len(refused) {
				t.Errorf("the log has %d summary lines counting %d refused calls, want 2 counting %d:\n%s", lines, sum, len(refused), tg.logs.String())
			}
		})
	}
}

// TestAuditStoreFailing (issue 20 F1): when the store fails, no call is
// forwarded: a single call and a batch get 503 with Retry-After and a
// JSON-RPC error -32005 naming the audit log, for every call; a call the
// policy refuses gets the same, not an unrecorded refusal.
func TestAuditStoreFailing(t *testing.T) {
	routes, ran := auditRoutes(t)
	tg := newTestGateway(t, routes, func(o *Options) {
		o.Audit = &slowAudit{Audit: o.Audit, fail: errors.New("disk full")}
	})
	for _, route := range []string{"up", "fake"} {
		c := newRawClient(t, tg.base+"/"+route+"/mcp", "alice-read")
		c.initialize()
		for _, tt := range []struct {
			name, body string
			ids        []string
		}{
			{"single call", `{"jsonrpc":"2.0","id":"s1","method":"tools/call","params":{"name":"echo","arguments":{"message":"single"}}}`, []string{`"s1"`}},
			{"batch", batchOf(route, 3), []string{"1", "2", "3"}},
			{"step-up", `{"jsonrpc":"2.0","id":"a1","method":"tools/call","params":{"name":"admin_wipe","arguments":{"message":"admin"}}}`, []string{`"a1"`}},
		} {
			resp, msgs := c.post(tt.body)
			var ids []string
			for _, m := range msgs {
				if m.Error == nil || m.Error.Code != CodeAuditUnavailable || !strings.Contains(m.Error.Message, "not forwarded because its audit record could not be written") {
					t.Errorf("%s %s: message %+v, want error %d naming the audit record", route, tt.name, m, CodeAuditUnavailable)
				}
				ids = append(ids, string(m.ID))
			}
			if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" || !slices.Equal(ids, tt.ids) {
				t.Errorf("%s %s = %d (Retry-After %q) for ids %q, want 503 with Retry-After for %q", route, tt.name, resp.StatusCode, resp.Header.Get("Retry-After"), ids, tt.ids)
			}
		}
		if got := ran[route].list(t); len(got) != 0 {
			t.Errorf("%s: the upstream ran %q, want nothing", route, got)
		}
	}
	if v := metricValue(t, tg, "gatehouse_gateway_audit_refused_total", "route", "up", "reason", "store_error"); v != 5 {
		t.Errorf("gatehouse_gateway_audit_refused_total{route=up,reason=store_error} = %v, want 5", v)
	}
}

// TestBatchLimit (issue 20 F1): a batch past max_batch_messages is refused
// with 400 and a JSON-RPC error naming the limit, before anything of it
// is forwarded or audited.
func TestBatchLimit(t *testing.T) {
	routes, ran := auditRoutes(t)
	for i := range routes {
		routes[i].MaxBatchMessages = 3
	}
	tg := newTestGateway(t, routes, nil)
	for _, route := range []string{"up", "fake"} {
		c := newRawClient(t, tg.base+"/"+route+"/mcp", "alice-read")
		c.initialize()
		resp, msgs := c.post(batchOf(route, 4))
		want := "Invalid Request: the batch has 4 messages; at most 3 are allowed in one batch (max_batch_messages)"
		if resp.StatusCode != http.StatusBadRequest || len(msgs) != 1 || msgs[0].Error == nil ||
			msgs[0].Error.Code != mcpauthz.CodeInvalidRequest || msgs[0].Error.Message != want {
			t.Errorf("%s: a batch of 4 = %d %+v, want 400 with %q", route, resp.StatusCode, msgs, want)
		}
		if got := ran[route].list(t); len(got) != 0 {
			t.Errorf("%s: the upstream ran %q, want nothing", route, got)
		}
		if resp, msgs := c.post(batchOf(route, 3)); resp.StatusCode != http.StatusOK || len(msgs) != 3 {
			t.Errorf("%s: a batch of 3 = %d with %d messages, want 200 with 3", route, resp.StatusCode, len(msgs))
		}
	}
	tg.Close()
	for _, route := range []string{"up", "fake"} {
		if calls, _ := auditedCalls(t, tg, route); calls != 3 {
			t.Errorf("%s: %d calls audited, want the 3 of the batch at the limit", route, calls)
		}
	}
}

// failingOutcomes wraps the test store: its first failures transactions
// holding outcomes (and only outcomes) fail; negative fails them all.
type failingOutcomes struct {
	storage.Audit
	mu       sync.Mutex
	failures int
}

func (s *failingOutcomes) AppendAudits(ctx context.Context, es []storage.AuditEvent) error {
	s.mu.Lock()
	fail := s.failures != 0 && !slices.ContainsFunc(es, func(e storage.AuditEvent) bool { return e.Type != AuditToolResult })
	if fail && s.failures > 0 {
		s.failures--
	}
	s.mu.Unlock()
	if fail {
		return errors.New("disk full")
	}
	return s.Audit.AppendAudits(ctx, es)
}

// TestAuditOutcomeRetried (issue 20 F1): an outcome whose transaction
// fails is kept and written later, at the latest when the gateway closes;
// one that still cannot be written then is counted as lost and logged.
// The call's own record was written before it was forwarded either way.
func TestAuditOutcomeRetried(t *testing.T) {
	for _, tt := range []struct {
		name     string
		failures int
		outcomes int
		lost     float64
	}{
		{"store recovers", 1, 1, 0},
		{"store stays down", -1, 0, 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			routes, _ := auditRoutes(t)
			tg := newTestGateway(t, routes[:1], func(o *Options) {
				o.Audit = &failingOutcomes{Audit: o.Audit, failures: tt.failures}
			})
			c := newRawClient(t, tg.base+"/up/mcp", "alice-read")
			c.initialize()
			if status, res := c.callTool("echo", map[string]any{"message": "m"}); status != http.StatusOK || toolText(res) != "echo: m" {
				t.Fatalf("call = %d %+v, want its result", status, res)
			}
			tg.Close()
			calls, outcomes := auditedCalls(t, tg, "up")
			if calls != 1 || outcomes != tt.outcomes {
				t.Errorf("the audit log records %d forwarded calls and %d outcomes, want 1 and %d", calls, outcomes, tt.outcomes)
			}
			if v := metricValue(t, tg, "gatehouse_gateway_audit_write_errors_total"); v < 1 {
				t.Errorf("gatehouse_gateway_audit_write_errors_total = %v, want at least 1", v)
			}
			if v := metricValue(t, tg, "gatehouse_gateway_audit_lost_total"); v != tt.lost {
				t.Errorf("gatehouse_gateway_audit_lost_total = %v, want %v", v, tt.lost)
			}
			if lost := strings.Contains(tg.logs.String(), "audit outcome events lost"); lost != (tt.lost > 0) {
				t.Errorf("the log reports lost outcomes: %v, want %v:\n%s", lost, tt.lost > 0, tg.logs.String())
			}
		})
	}
}

// flakyAudit wraps the test store, which the test turns slow and failing
// while calls are in flight: while hold is set, every AppendAudits waits
// for it to be closed; while failing, it fails.
type flakyAudit struct {
	storage.Audit
	mu      sync.Mutex
	hold    chan struct{}
	failing bool
}

func (s *flakyAudit) AppendAudits(ctx context.Context, es []storage.AuditEvent) error {
	s.mu.Lock()
	hold := s.hold
	s.mu.Unlock()
	if hold != nil {
		select {
		case <-hold:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	s.mu.Lock()
	failing := s.failing
	s.mu.Unlock()
	if failing {
		return errors.New("disk full")
	}
	return s.Audit.AppendAudits(ctx, es)
}

func (s *flakyAudit) set(hold chan struct{}, failing bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hold, s.failing = hold, failing
}

// TestAuditStoreFailsInFlight (issue 20 F1): once the store has committed,
// a call is forwarded as its record is committed, not after; its response
// is held until the commit. When that commit fails, the call has run:
// its record is kept and retried, the response held until the record is
// written (or, past the request's deadline, withheld: 503, -32005 saying
// the call was forwarded), and the next call, the store now known to
// fail, is refused and not forwarded. A record still unwritten at
// shutdown is counted as lost and logged.
func TestAuditStoreFailsInFlight(t *testing.T) {
	for _, route := range []string{"up", "fake"} {
		for _, recovers := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s/recovers=%v", route, recovers), func(t *testing.T) {
				routes, ran := auditRoutes(t)
				if !recovers {
					// The response is withheld at the deadline.
					for i := range routes {
						routes[i].RequestTimeout = 2 * time.Second
					}
				}
				store := &flakyAudit{}
				tg := newTestGateway(t, routes, func(o *Options) {
					store.Audit = o.Audit
					o.Audit = store
				})
				url := tg.base + "/" + route + "/mcp"
				c := newRawClient(t, url, "alice-read")
				c.initialize()
				// The first call waits for its record: nothing has
				// committed yet. Its outcome is written before the store
				// turns.
				proveStore(t, tg, c, route, route+"-1")

				hold := make(chan struct{})
				store.set(hold, true)
				type answer struct {
					status  int
					res     rpcResult
					records int // the records of allowed calls the store had when the answer came
					err     error
				}
				answered := make(chan answer, 1)
				c2 := newRawClient(t, url, "alice-read")
				c2.initialize()
				go func() {
					status, res := c2.callTool("echo", map[string]any{"message": route + "-2"})
					es, err := tg.store.QueryAudit(context.Background(), storage.AuditQuery{Type: AuditToolCall, Limit: 100})
					records := 0
					for _, e := range es {
						if e.Outcome == "allowed" && strings.HasPrefix(e.Detail, "route="+route+" ") {
							records++
						}
					}
					answered <- answer{status, res, records, err}
				}()
				// The second call is forwarded while the store holds its
				// record, which then fails.
				waitFor(t, 10*time.Second, "the upstream to run the second call", func() bool {
					return slices.Contains(ran[route].list(t), route+"-2")
				})
				close(hold)
				waitFor(t, 10*time.Second, "the failed transaction", func() bool {
					return metricValue(t, tg, "gatehouse_gateway_audit_write_errors_total") >= 1
				})
				// The store is known to fail: the next call is refused
				// before it is forwarded.
				c3 := newRawClient(t, url, "alice-read")
				c3.initialize()
				status, res := c3.callTool("echo", map[string]any{"message": route + "-3"})
				if status != http.StatusServiceUnavailable || res.Error == nil || res.Error.Code != CodeAuditUnavailable ||
					!strings.Contains(res.Error.Message, "not forwarded") {
					t.Errorf("a call while the store fails = %d %+v, want 503 with %d, not forwarded", status, res, CodeAuditUnavailable)
				}

				if recovers {
					store.set(nil, false)
				}
				a := <-answered
				switch {
				case a.err != nil:
					t.Fatal(a.err)
				case recovers && (a.status != http.StatusOK || toolText(a.res) != "echo: "+route+"-2"):
					t.Errorf("the call in flight once the store recovers = %d %+v, want its result", a.status, a.res)
				case !recovers && (a.status != http.StatusServiceUnavailable || a.res.Error == nil || a.res.Error.Code != CodeAuditUnavailable ||
					!strings.Contains(a.res.Error.Message, "forwarded, but its audit record could not be written") ||
					!strings.Contains(fmt.Sprint(a.res.Error.Data), "forwarded:true")):
					t.Errorf("the call in flight while the store stays down = %d %+v, want 503 with %d saying it was forwarded", a.status, a.res, CodeAuditUnavailable)
				}
				if a.status == http.StatusOK && a.records != 2 {
					t.Errorf("the call in flight was answered when the store had %d records, want 2 (its own committed)", a.records)
				}

				tg.Close()
				if got, want := ran[route].list(t), []string{route + "-1", route + "-2"}; !slices.Equal(got, want) {
					t.Errorf("the upstream ran %q, want %q", got, want)
				}
				calls, outcomes := auditedCalls(t, tg, route)
				lost := metricValue(t, tg, "gatehouse_gateway_audit_lost_total")
				logged := strings.Contains(tg.logs.String(), "audit records of forwarded tool calls lost")
				if recovers && (calls != 2 || outcomes != 2 || lost != 0 || logged) {
					t.Errorf("the audit log records %d forwarded calls and %d outcomes, %v lost (logged: %v), want 2, 2, none", calls, outcomes, lost, logged)
				}
				// The second call's record and its "withheld" outcome.
				if !recovers && (calls != 1 || outcomes != 1 || lost != 2 || !logged) {
					t.Errorf("the audit log records %d forwarded calls and %d outcomes, %v lost (logged: %v), want 1, 1, 2 lost and logged", calls, outcomes, lost, logged)
				}
			})
		}
	}
}

// TestAuditCloseDuringCallersFlush (issue 20 F1): a call on a fresh
// gateway writes its record itself (no transaction is running), and the
// gateway closes while that transaction runs, then fails. The writer,
// woken by the close while the caller was writing, must hear of the
// caller's end and finish: Close returns with the writer stopped and
// nothing queued, not after waiting out its deadline with the writer
// asleep (the same missed wake-up left records of forwarded calls that
// failed in a caller's transaction waiting for other traffic to be
// retried).
func TestAuditCloseDuringCallersFlush(t *testing.T) {
	routes, ran := auditRoutes(t)
	gate := make(chan struct{})
	tg := newTestGateway(t, routes[:1], func(o *Options) {
		o.Audit = &slowAudit{Audit: o.Audit, gate: gate, fail: errors.New("disk full")}
	})
	a := tg.audit
	c := newRawClient(t, tg.base+"/up/mcp", "alice-read")
	c.initialize()
	answered := make(chan int, 1)
	go func() {
		status, _ := c.callTool("echo", map[string]any{"message": "m"})
		answered <- status
	}()
	// The caller is writing its own record: the queue is taken and a
	// transaction runs.
	waitFor(t, 10*time.Second, "the caller's own transaction", func() bool {
		a.mu.Lock()
		defer a.mu.Unlock()
		return a.flushing && a.queued == 1 && len(a.queue) == 0
	})
	closed := make(chan struct{})
	go func() {
		tg.Close()
		close(closed)
	}()
	// The writer has taken the close's wake-up, and found the caller
	// writing.
	waitFor(t, 10*time.Second, "the writer to see the close", func() bool {
		a.mu.Lock()
		closing := a.closing
		a.mu.Unlock()
		return closing && len(a.wake) == 0
	})
	close(gate)
	if status := <-answered; status != http.StatusServiceUnavailable {
		t.Errorf("the call whose record failed = %d, want 503", status)
	}
	<-closed
	select {
	case <-a.done:
	default:
		t.Errorf("Close returned with the audit writer still running")
	}
	if got := ran["up"].list(t); len(got) != 0 {
		t.Errorf("the upstream ran %q, want nothing", got)
	}
	if v := metricValue(t, tg, "gatehouse_gateway_audit_queued"); v != 0 {
		t.Errorf("gatehouse_gateway_audit_queued = %v after Close, want 0", v)
	}
}

// notifyingUpstream is a Streamable HTTP MCP upstream with a standalone
// GET stream: its tool notify sends a notifications/message on that
// stream before it answers, as an upstream may while a call runs.
func notifyingUpstream(t *testing.T) (*httptest.Server, *executed) {
	ran := &executed{}
	events := make(chan string, 16)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.Method {
		case http.MethodGet:
			w.Header().Set("Content-Type", "text/event-stream")
			w.WriteHeader(http.StatusOK)
			w.(http.Flusher).Flush()
			for {
				select {
				case e := <-events:
					fmt.Fprintf(w, "event: message\ndata: %s\n\n", e)
					w.(http.Flusher).Flush()
				case <-r.Context().Done():
					return
				}
			}
		case http.MethodDelete:
			return
		}
		var m struct {
			ID     json.RawMessage `json:"id"`
			Method string          `json:"method"`
			Params struct {
				Name      string            `json:"name"`
				Arguments map[string]string `json:"arguments"`
			} `json:"params"`
		}
		if err := json.NewDecoder(r.Body).Decode(&m); err != nil {
			http.Error(w, "bad JSON", http.StatusBadRequest)
			return
		}
		w.Header().Set(headerSessionID, "upstream-session")
		var result any = map[string]any{}
		switch m.Method {
		case "initialize":
			result = map[string]any{"protocolVersion": "2025-06-18", "capabilities": map[string]any{"tools": map[string]any{}}, "serverInfo": map[string]any{"name": "notifying", "version": "1"}}
		case "tools/call":
			ran.add(m.Params.Name)
			if m.Params.Name == "notify" {
				events <- `{"jsonrpc":"2.0","method":"notifications/message","params":{"level":"info","data":"note from the upstream"}}`
			}
			result = map[string]any{"content": []any{map[string]any{"type": "text", "text": m.Params.Name + ": done"}}}
		}
		if m.ID == nil {
			w.WriteHeader(http.StatusAccepted)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"jsonrpc": "2.0", "id": m.ID, "result": result})
	}))
	t.Cleanup(srv.Close)
	return srv, ran
}

// TestAuditHoldsServerMessages (issue 20 F1): nothing of a call's answer
// reaches the client before its record is committed, and that includes
// what the upstream sends the session besides the response: a
// notification a tool sends while it runs goes to the session's GET
// stream (stdio: the gateway routes it there for a JSON-only call; HTTP:
// the upstream's own GET stream). Here the record's commit fails while
// the call runs, the response is withheld at the deadline, and the
// notification must wait until the record is written (the store back,
// the record retried), not pass while the store holds or fails it.
func TestAuditHoldsServerMessages(t *testing.T) {
	for _, route := range []string{"up", "fake"} {
		t.Run(route, func(t *testing.T) {
			var rt Route
			var ran *executed
			if route == "up" {
				up, r := notifyingUpstream(t)
				rt, ran = httpRoute(up.URL), r
			} else {
				ran = &executed{file: filepath.Join(t.TempDir(), "calls")}
				rt = fakeRoute(t)
				rt.Upstream.Env = append(rt.Upstream.Env, "FAKEMCP_CALL_LOG="+ran.file)
			}
			// The response is withheld at the deadline.
			rt.RequestTimeout = 2 * time.Second
			store := &flakyAudit{}
			tg := newTestGateway(t, []Route{rt}, func(o *Options) {
				store.Audit = o.Audit
				o.Audit = store
			})
			c := newRawClient(t, tg.base+"/"+route+"/mcp", "alice-read")
			c.initialize()
			// A first call, its record committed first: the store has
			// proven itself.
			proveStore(t, tg, c, route, "first")

			// The session's GET stream: when the notification comes, how
			// many records of the notify call the store has.
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			get := c.openStream(ctx)
			noted := make(chan int, 1)
			go func() {
				sc := bufio.NewScanner(get.Body)
				for sc.Scan() {
					if !strings.Contains(sc.Text(), "note from") {
						continue
					}
					es, _ := tg.store.QueryAudit(context.Background(), storage.AuditQuery{Type: AuditToolCall, Limit: 100})
					n := 0
					for _, e := range es {
						if e.Outcome == "allowed" && strings.Contains(e.Detail, " tool=notify ") {
							n++
						}
					}
					noted <- n
					return
				}
			}()

			hold := make(chan struct{})
			store.set(hold, true)
			answered := make(chan rpcResult, 1)
			c.accept = "application/json"
			go func() {
				_, res := c.callTool("notify", nil)
				answered <- res
			}()
			waitFor(t, 10*time.Second, "the upstream to run notify", func() bool {
				return slices.Contains(ran.list(t), "notify")
			})
			close(hold)
			if res := <-answered; res.Error == nil || res.Error.Code != CodeAuditUnavailable {
				t.Errorf("the call whose record failed = %+v, want its response withheld (%d)", res, CodeAuditUnavailable)
			}
			// The store is back: the record is retried and written, and
			// only then may the notification pass.
			store.set(nil, false)
			select {
			case n := <-noted:
				if n != 1 {
					t.Errorf("the notification reached the client when the store had %d records of the call, want 1 (committed)", n)
				}
			case <-time.After(20 * time.Second):
				t.Fatal("the notification never reached the client once the record was written")
			}
		})
	}
}

// TestAuditHoldsReleased: the records a session's server messages wait
// for are forgotten once written, also in a session that never gets a
// server message: a long session keeps no record of every call it made.
func TestAuditHoldsReleased(t *testing.T) {
	routes, _ := auditRoutes(t)
	tg := newTestGateway(t, routes, nil)
	for i, route := range []string{"up", "fake"} {
		c := newRawClient(t, tg.base+"/"+route+"/mcp", "alice-read")
		c.accept = "application/json"
		c.initialize()
		const calls = 50
		for i := range calls {
			if status, _ := c.callTool("echo", map[string]any{"message": fmt.Sprint(i)}); status != http.StatusOK {
				t.Fatalf("%s: call %d = %d, want 200", route, i, status)
			}
		}
		rt := tg.routes[i]
		rt.mu.Lock()
		s := rt.sessions[c.sid]
		rt.mu.Unlock()
		h := &s.holds
		if s.proc != nil {
			h = &s.proc.holds
		}
		h.mu.Lock()
		n := len(h.units)
		h.mu.Unlock()
		if n > 1 {
			t.Errorf("%s: after %d calls the session holds %d records, want at most the last one", route, calls, n)
		}
	}
}

// TestAuditClientGoneWhileCommitting (issue 20 F1): a client that goes
// away while its forwarded call's record is still being committed (a
// slow store, not a failing one) has left, not been refused its answer:
// the call's outcome is "failed" like any call whose client went away,
// its record is written, and nothing reports the audit log as failing or
// a response as withheld.
func TestAuditClientGoneWhileCommitting(t *testing.T) {
	for _, tt := range []struct{ route, accept string }{
		{"up", "application/json"}, {"fake", "application/json"}, {"fake", "application/json, text/event-stream"},
	} {
		route := tt.route
		t.Run(route+"/"+tt.accept, func(t *testing.T) {
			routes, ran := auditRoutes(t)
			store := &flakyAudit{}
			tg := newTestGateway(t, routes, func(o *Options) {
				store.Audit = o.Audit
				o.Audit = store
			})
			c := newRawClient(t, tg.base+"/"+route+"/mcp", "alice-read")
			c.initialize()
			proveStore(t, tg, c, route, "first")

			hold := make(chan struct{})
			store.set(hold, false)
			ctx, cancel := context.WithCancel(t.Context())
			done := make(chan struct{})
			go func() {
				defer close(done)
				body := `{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"echo","arguments":{"message":"gone"}}}`
				req, _ := http.NewRequestWithContext(ctx, http.MethodPost, c.url, strings.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("Accept", tt.accept)
				req.Header.Set("Authorization", "Bearer alice-read")
				req.Header.Set(headerSessionID, c.sid)
				if resp, err := http.DefaultClient.Do(req); err == nil {
					resp.Body.Close()
				}
			}()
			waitFor(t, 10*time.Second, "the upstream to run the call", func() bool {
				return slices.Contains(ran[route].list(t), "gone")
			})
			cancel()
			<-done
			// The gateway has seen the client go: the call's outcome is
			// queued behind its record, which the store still holds.
			waitFor(t, 10*time.Second, "the call's outcome queued", func() bool {
				return metricValue(t, tg, "gatehouse_gateway_audit_queued") == 2
			})
			close(hold)
			tg.Close()

			es, err := tg.store.QueryAudit(context.Background(), storage.AuditQuery{Type: AuditToolResult, Limit: 100})
			if err != nil {
				t.Fatal(err)
			}
			var outcomes []string
			for _, e := range es {
				if strings.HasPrefix(e.Detail, "route="+route+" ") {
					outcomes = append(outcomes, e.Outcome)
				}
			}
			slices.Sort(outcomes)
			if want := []string{"failed", "ok"}; !slices.Equal(outcomes, want) {
				t.Errorf("outcomes %q, want %q (the call whose client left: failed)", outcomes, want)
			}
			if calls, _ := auditedCalls(t, tg, route); calls != 2 {
				t.Errorf("%d records of forwarded calls, want 2", calls)
			}
			if logs := tg.logs.String(); strings.Contains(logs, "withheld") || strings.Contains(logs, "audit log") {
				t.Errorf("the log reports the audit log failing or a response withheld:\n%s", logs)
			}
		})
	}
}

// TestAuditShutdownAfterDrainDeadline (issue 20 F1): when requests in
// flight outlast the drain (Shutdown's ctx has ended), the audit queue
// still gets its final pass before Shutdown returns, after which the
// caller closes the store: a forwarded call's record still being retried
// is counted as lost and logged then, not left to a writer the process
// is about to end.
func TestAuditShutdownAfterDrainDeadline(t *testing.T) {
	routes, ran := auditRoutes(t)
	store := &flakyAudit{}
	tg := newTestGateway(t, routes[:1], func(o *Options) {
		store.Audit = o.Audit
		o.Audit = store
	})
	a := tg.audit
	url := tg.base + "/up/mcp"
	c := newRawClient(t, url, "alice-read")
	c.initialize()
	proveStore(t, tg, c, "up", "first")
	// A call forwarded as its record commits, and the commit fails: the
	// record is retried, the call's response held, the call in flight.
	hold := make(chan struct{})
	store.set(hold, true)
	go c.callTool("echo", map[string]any{"message": "second"})
	waitFor(t, 10*time.Second, "the upstream to run the second call", func() bool {
		return slices.Contains(ran["up"].list(t), "second")
	})
	close(hold)
	waitFor(t, 10*time.Second, "the failed transaction", func() bool {
		return metricValue(t, tg, "gatehouse_gateway_audit_write_errors_total") >= 1
	})
	// The store is slow as well as failing: the writer's last pass
	// waits for it until the gateway is closing.
	final := make(chan struct{})
	store.set(final, true)
	go func() {
		waitFor(t, 10*time.Second, "the audit log to close", func() bool {
			a.mu.Lock()
			defer a.mu.Unlock()
			return a.closing
		})
		close(final)
	}()
	drained, cancel := context.WithCancel(context.Background())
	cancel()
	if err := tg.Shutdown(drained); err == nil {
		t.Errorf("Shutdown with a call in flight past the drain = nil, want the drain's error")
	}
	if v := metricValue(t, tg, "gatehouse_gateway_audit_lost_total"); v < 1 {
		t.Errorf("gatehouse_gateway_audit_lost_total = %v when Shutdown returned, want the retried record counted", v)
	}
	if !strings.Contains(tg.logs.String(), "audit records of forwarded tool calls lost") {
		t.Errorf("the log does not report the lost record when Shutdown returned:\n%s", tg.logs.String())
	}
}

// proveStore makes one call through c on route and waits for its outcome:
// the store has then committed, so later calls are forwarded as their
// records commit (auditLog.ahead) rather than after.
func proveStore(t *testing.T, tg *testGateway, c *rawClient, route, msg string) {
	t.Helper()
	if status, res := c.callTool("echo", map[string]any{"message": msg}); status != http.StatusOK || res.Error != nil {
		t.Fatalf("first call = %d %+v, want its result", status, res)
	}
	waitFor(t, 10*time.Second, "the first call's outcome", func() bool {
		_, outcomes := auditedCalls(t, tg, route)
		return outcomes == 1
	})
}
