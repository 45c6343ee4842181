package gateway

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/gatehouse-mcp/gatehouse/internal/mcpauthz"
)

// statelessBody is a request of MCP 2026-07-28 (SEP-2575): no session,
// the protocol version, client capabilities and client info in _meta.
func statelessBody(id any, method string, params map[string]any) string {
	if params == nil {
		params = map[string]any{}
	}
	if _, ok := params["_meta"]; !ok {
		params["_meta"] = map[string]any{
			metaProtocolVersion:    "2026-07-28",
			metaClientCapabilities: map[string]any{},
			metaClientInfo:         map[string]any{"name": "stateless-test", "version": "1"},
		}
	}
	b, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": id, "method": method, "params": params})
	return string(b)
}

// stateless posts a 2026-07-28 request with the headers the revision
// requires (SEP-2243); header adds or overrides some.
func (c *rawClient) stateless(id any, method string, params map[string]any, header ...string) (*http.Response, []rpcResult) {
	c.t.Helper()
	h := []string{headerProtocolVersion, "2026-07-28", headerMethod, method}
	if name, ok := params["name"].(string); ok {
		h = append(h, headerName, name)
	}
	return c.post(statelessBody(id, method, params), append(h, header...)...)
}

// TestStatelessStdio checks MCP 2026-07-28 requests on a stdio route
// (issue 13 item 2): they reach a process the gateway keeps per subject,
// under ids of the gateway's own, and get their answers under the
// client's; what only HTTP can say (the version header, removed methods,
// error statuses) the gateway says. Both kinds of upstream: one that
// speaks 2026-07-28 itself (native) and one of an older revision, which
// the gateway initializes and bridges.
func TestStatelessStdio(t *testing.T) {
	for _, native := range []bool{false, true} {
		name := "bridged"
		if native {
			name = "native"
		}
		t.Run(name, func(t *testing.T) {
			r := fakeRoute(t)
			if native {
				r.Upstream.Env = append(r.Upstream.Env, "FAKEMCP_STATELESS=1")
			}
			tg := newTestGateway(t, []Route{r}, nil)
			url := tg.base + "/fake/mcp"
			alice := newRawClient(t, url, "alice-read")

			resp, msgs := alice.stateless(1, "server/discover", nil)
			if resp.StatusCode != http.StatusOK || len(msgs) != 1 || msgs[0].Result == nil {
				t.Fatalf("server/discover = %d %+v, want 200 and a result", resp.StatusCode, msgs)
			}
			var d struct {
				SupportedVersions []string                   `json:"supportedVersions"`
				Capabilities      map[string]json.RawMessage `json:"capabilities"`
				Meta              map[string]struct {
					Name string `json:"name"`
				} `json:"_meta"`
			}
			json.Unmarshal(msgs[0].Result, &d)
			wantServer := "fakemcp"
			if native {
				wantServer = "fakemcp-stateless"
			}
			if !slices.Contains(d.SupportedVersions, "2026-07-28") || d.Capabilities["tools"] == nil || d.Meta[metaServerInfo].Name != wantServer {
				t.Errorf("server/discover result = %s, want 2026-07-28 supported, tools capability, server %s", msgs[0].Result, wantServer)
			}
			if !native && strings.Contains(string(msgs[0].Result), "listChanged") {
				t.Errorf("bridged server/discover = %s offers list-changed notifications, which need subscriptions/listen", msgs[0].Result)
			}

			// tools/list: the process's list (nothing denied: every tool);
			// resources/list: filtered, so private to the token.
			resp, msgs = alice.stateless("list", "tools/list", nil)
			if resp.StatusCode != http.StatusOK || len(msgs) != 1 || string(msgs[0].ID) != `"list"` {
				t.Fatalf("tools/list = %d %+v", resp.StatusCode, msgs)
			}
			if got := names(t, msgs[0], "tools", "name"); len(got) != 12 {
				t.Errorf("tools/list = %v, want the 12 tools", got)
			}
			resp, msgs = alice.stateless("res", "resources/list", nil)
			var scope struct {
				CacheScope string `json:"cacheScope"`
			}
			if resp.StatusCode != http.StatusOK || len(msgs) != 1 {
				t.Fatalf("resources/list = %d %+v", resp.StatusCode, msgs)
			}
			if got := names(t, msgs[0], "resources", "uri"); !slices.Equal(got, []string{"fake://public/a"}) {
				t.Errorf("resources/list with fake:read = %v, want only fake://public/a", got)
			}
			if json.Unmarshal(msgs[0].Result, &scope); scope.CacheScope != "private" {
				t.Errorf("resources/list cacheScope = %q, want private (the list depends on the token)", scope.CacheScope)
			}

			// A call is answered under the client's id.
			resp, msgs = alice.stateless(7, "tools/call", map[string]any{"name": "echo", "arguments": map[string]any{"message": "hi"}})
			if resp.StatusCode != http.StatusOK || len(msgs) != 1 || string(msgs[0].ID) != "7" || toolText(msgs[0]) != "echo: hi" {
				t.Errorf("tools/call echo = %d %+v, want 200, id 7, echo: hi", resp.StatusCode, msgs)
			}

			// The gateway initialized a bridged process itself, declaring
			// no client capabilities; a native one never was.
			_, msgs = alice.stateless(8, "tools/call", map[string]any{"name": "initparams"})
			got := toolText(msgs[0])
			if native && got != "none" {
				t.Errorf("native process was initialized: %s", got)
			}
			if !native && (!strings.Contains(got, `"protocolVersion":"2025-11-25"`) || !strings.Contains(got, `"capabilities":{}`)) {
				t.Errorf("bridged process initialized with %s, want 2025-11-25 and no capabilities", got)
			}

			// One process per subject: alice's requests share hers, bob
			// gets his own.
			pid := func(c *rawClient) string {
				t.Helper()
				_, msgs := c.stateless("pid", "tools/call", map[string]any{"name": "pid"})
				if len(msgs) != 1 {
					t.Fatalf("pid: %+v", msgs)
				}
				return toolText(msgs[0])
			}
			bob := newRawClient(t, url, "bob-read")
			if a1, a2, b := pid(alice), pid(alice), pid(bob); a1 != a2 || a1 == b || a1 == "" {
				t.Errorf("pids alice %s, %s, bob %s: want alice's the same, bob's another", a1, a2, b)
			}
			if n := tg.Sessions("fake"); n != 2 {
				t.Errorf("Sessions = %d, want 2 (a process for alice, one for bob)", n)
			}

			// Two requests of alice in flight at once with the same id
			// each get their own answer.
			var wg sync.WaitGroup
			answers := make([]string, 2)
			for i := range answers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					c := newRawClient(t, url, "alice-read")
					resp, msgs := c.stateless(1, "tools/call", map[string]any{"name": "slow", "arguments": map[string]any{"ms": 300}})
					if resp.StatusCode == http.StatusOK && len(msgs) == 1 && string(msgs[0].ID) == "1" {
						answers[i] = toolText(msgs[0])
					}
				}()
			}
			wg.Wait()
			if answers[0] != "slow done" || answers[1] != "slow done" {
				t.Errorf("two concurrent calls with id 1 = %q, want both answered", answers)
			}

			// A request from the process is answered by the gateway: a
			// stateless client cannot be asked.
			_, msgs = alice.stateless(9, "tools/call", map[string]any{"name": "ask"})
			if got := toolText(msgs[0]); !strings.Contains(got, "-32601") || !strings.Contains(got, "input-required") {
				t.Errorf("ask = %q, want the gateway's Method not found", got)
			}

			// Step-up works as with sessions.
			resp, _ = alice.stateless(10, "tools/call", map[string]any{"name": "admin_reset"})
			if resp.StatusCode != http.StatusForbidden || !strings.Contains(resp.Header.Get("WWW-Authenticate"), "insufficient_scope") {
				t.Errorf("admin_reset with fake:read = %d %q, want 403 insufficient_scope", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
			}

			// Errors with the HTTP status of SEP-2575, as JSON or as the
			// first message of what would have been a stream.
			for _, accept := range []string{"application/json", "application/json, text/event-stream"} {
				alice.accept = accept
				for _, tt := range []struct {
					name   string
					id     any
					method string
					params map[string]any
					header []string
					status int
					code   int
				}{
					{"unknown method (the process's answer)", 11, "nope/nothing", nil, nil, http.StatusNotFound, codeMethodNotFound},
					{"initialize is gone", 12, "initialize", nil, nil, http.StatusNotFound, codeMethodNotFound},
					{"ping is gone", 13, "ping", nil, nil, http.StatusNotFound, codeMethodNotFound},
					{"no version header", 14, "tools/list", nil, []string{headerProtocolVersion, ""}, http.StatusBadRequest, codeHeaderMismatch},
					{"header and _meta disagree", 15, "tools/list", nil, []string{headerProtocolVersion, "2099-01-01"}, http.StatusBadRequest, codeHeaderMismatch},
					{"unsupported revision", 16, "tools/list", map[string]any{"_meta": map[string]any{metaProtocolVersion: "2099-01-01", metaClientCapabilities: map[string]any{}}},
						[]string{headerProtocolVersion, "2099-01-01"}, http.StatusBadRequest, mcpauthz.CodeUnsupportedProtocolVersion},
					{"no client capabilities", 17, "tools/list", map[string]any{"_meta": map[string]any{metaProtocolVersion: "2026-07-28"}},
						nil, http.StatusBadRequest, mcpauthz.CodeInvalidParams},
				} {
					resp, msgs := alice.stateless(tt.id, tt.method, tt.params, tt.header...)
					if resp.StatusCode != tt.status || len(msgs) != 1 || msgs[0].Error == nil || msgs[0].Error.Code != tt.code || string(msgs[0].ID) == "null" {
						t.Errorf("%s (Accept %s) = %d %+v, want %d, error %d with the request's id", tt.name, accept, resp.StatusCode, msgs, tt.status, tt.code)
					}
				}
			}
			alice.accept = "application/json, text/event-stream"

			if !native {
				resp, msgs = alice.stateless(18, "subscriptions/listen", map[string]any{"notifications": map[string]any{"toolsListChanged": true}})
				if resp.StatusCode != http.StatusNotFound || len(msgs) != 1 || msgs[0].Error == nil || msgs[0].Error.Code != codeMethodNotFound {
					t.Errorf("subscriptions/listen on a bridged process = %d %+v, want 404 Method not found", resp.StatusCode, msgs)
				}
			}

			// Sessions still work beside it, and cannot reach the
			// stateless process.
			legacy := newRawClient(t, url, "alice-read")
			legacy.initialize()
			if st, res := legacy.callTool("echo", map[string]any{"message": "s"}); st != http.StatusOK || toolText(res) != "echo: s" {
				t.Errorf("session call = %d %+v", st, res)
			}
		})
	}
}

// TestStatelessLimits checks that a subject's stateless process counts
// as one of its sessions: a user at max_sessions_per_user gets 429.
func TestStatelessLimits(t *testing.T) {
	r := fakeRoute(t)
	r.MaxSessionsPerUser = 1
	tg := newTestGateway(t, []Route{r}, nil)
	url := tg.base + "/fake/mcp"
	legacy := newRawClient(t, url, "alice-read")
	legacy.initialize()
	resp, msgs := newRawClient(t, url, "alice-read").stateless(1, "tools/list", nil)
	if resp.StatusCode != http.StatusTooManyRequests || len(msgs) != 1 || string(msgs[0].ID) != "1" {
		t.Errorf("stateless request of a user at the limit = %d %+v, want 429 with the request's id", resp.StatusCode, msgs)
	}
	if resp, _ := newRawClient(t, url, "bob-read").stateless(1, "tools/list", nil); resp.StatusCode != http.StatusOK {
		t.Errorf("another user = %d, want 200", resp.StatusCode)
	}
}
