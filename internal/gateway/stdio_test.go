package gateway

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/gatehouse-mcp/gatehouse/internal/mcpauthz"
	"github.com/gatehouse-mcp/gatehouse/internal/storage"
)

// TestStdioGoSDKClient runs the MCP Go SDK client through a stdio route
// to fakemcp: tools/list (every tool: list_tools grantable, no deny
// rule), a call, a step-up refusal, a
// prompt and a resource behind the policy, and the environment the
// process gets.
func TestStdioGoSDKClient(t *testing.T) {
	t.Setenv("GATEWAY_OWN_SECRET", "the gateway's own secret")
	// The SDK's default is 2026-07-28 without a session (the gateway
	// bridges it to the process it keeps for the subject, see
	// stateless.go); 2025-11-25 is a session with a process of its own.
	for _, version := range []string{"2026-07-28", "2025-11-25"} {
		t.Run(version, func(t *testing.T) { testStdioGoSDKClient(t, version) })
	}
}

func testStdioGoSDKClient(t *testing.T, version string) {
	stateless := version >= firstStatelessRevision
	tg := newTestGateway(t, []Route{fakeRoute(t)}, nil)
	url := tg.base + "/fake/mcp"

	connect := func(token string) *mcp.ClientSession {
		t.Helper()
		c := mcp.NewClient(&mcp.Implementation{Name: "gosdk-test", Version: "1"}, nil)
		cs, err := c.Connect(t.Context(), &mcp.StreamableClientTransport{
			Endpoint:   url,
			HTTPClient: &http.Client{Transport: &bearerTransport{token: token, base: http.DefaultTransport}},
		}, &mcp.ClientSessionOptions{ProtocolVersion: version})
		if err != nil {
			t.Fatalf("Connect(%s) = %v", token, err)
		}
		t.Cleanup(func() { cs.Close() })
		return cs
	}
	cs := connect("alice-read")
	ctx := t.Context()

	tools, err := cs.ListTools(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, tl := range tools.Tools {
		got = append(got, tl.Name)
	}
	// list_tools grantable (the default), no deny rule: every tool,
	// admin_* (fake:admin) too, so that calling one can start a step-up.
	if len(got) != 12 || !slices.Contains(got, "admin_reset") || !slices.Contains(got, "echo") {
		t.Errorf("tools/list with fake:read = %v, want all 12, admin_reset and echo among them", got)
	}

	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "echo", Arguments: map[string]any{"message": "hi"}})
	if err != nil || res.IsError {
		t.Fatalf("tools/call echo = %+v, %v", res, err)
	}
	if txt := res.Content[0].(*mcp.TextContent).Text; txt != "echo: hi" {
		t.Errorf("echo = %q, want %q", txt, "echo: hi")
	}

	if _, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "admin_reset"}); err == nil {
		t.Error("tools/call admin_reset with fake:read succeeded, want a step-up refusal")
	}

	prompts, err := cs.ListPrompts(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(prompts.Prompts) != 1 || prompts.Prompts[0].Name != "greet" {
		t.Errorf("prompts/list = %+v, want only greet", prompts.Prompts)
	}
	resources, err := cs.ListResources(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(resources.Resources) != 1 || resources.Resources[0].URI != "fake://public/a" {
		t.Errorf("resources/list = %+v, want only fake://public/a", resources.Resources)
	}
	if _, err := cs.ReadResource(ctx, &mcp.ReadResourceParams{URI: "fake://private/b"}); err == nil {
		t.Error("resources/read fake://private/b with fake:read succeeded")
	}
	if _, err := cs.ReadResource(ctx, &mcp.ReadResourceParams{URI: "fake://public/a"}); err != nil {
		t.Errorf("resources/read fake://public/a = %v", err)
	}
	// Spellings a normalising upstream reads as fake://private/b are
	// refused, not matched as text against the rules.
	for _, uri := range []string{"FAKE://private/b", "fake://PRIVATE/b", "fake://public/../private/b", "fake://public/%2E%2E/private/b", "fake://private//b"} {
		_, err := cs.ReadResource(ctx, &mcp.ReadResourceParams{URI: uri})
		if err == nil || !strings.Contains(err.Error(), "not in normal form") {
			t.Errorf("resources/read %s = %v, want a normal-form refusal", uri, err)
		}
	}
	if err := cs.Subscribe(ctx, &mcp.SubscribeParams{URI: "fake://private/b"}); err == nil && !stateless {
		// 2026-07-28 has no resources/subscribe: the SDK does not send it.
		t.Error("resources/subscribe fake://private/b with fake:read succeeded")
	}

	// The process sees its configured environment and nothing of the
	// gateway's.
	res, err = cs.CallTool(ctx, &mcp.CallToolParams{Name: "env"})
	if err != nil {
		t.Fatal(err)
	}
	env := res.Content[0].(*mcp.TextContent).Text
	if !strings.Contains(env, "FAKE_UPSTREAM_TOKEN=upstream-secret") {
		t.Errorf("upstream environment lacks its credential:\n%s", env)
	}
	if strings.Contains(env, "GATEWAY_OWN_SECRET") {
		t.Errorf("upstream environment has the gateway's own variables:\n%s", env)
	}

	admin := connect("alice-admin")
	res, err = admin.CallTool(ctx, &mcp.CallToolParams{Name: "admin_reset", Arguments: map[string]any{"message": "ok"}})
	if err != nil || res.IsError {
		t.Fatalf("tools/call admin_reset with fake:admin = %+v, %v", res, err)
	}
	all, _ := admin.ListTools(ctx, nil)
	if len(all.Tools) != 12 {
		t.Errorf("tools/list with fake:admin has %d tools, want all 12", len(all.Tools))
	}
	if stateless {
		// Both tokens are alice's: one process serves her requests.
		if n := tg.Sessions("fake"); n != 1 {
			t.Errorf("Sessions(fake) = %d, want 1 (one process per subject)", n)
		}
	} else {
		if n := tg.Sessions("fake"); n != 2 {
			t.Errorf("Sessions(fake) = %d, want 2 (one process per session)", n)
		}
		cs.Close()
		admin.Close()
		waitFor(t, 5*time.Second, "processes to exit after DELETE", func() bool { return tg.Sessions("fake") == 0 })
	}
	if !strings.Contains(tg.logs.String(), "fakemcp: started pid") || !strings.Contains(tg.logs.String(), "route=fake") {
		t.Errorf("upstream stderr is not in the log with the route name:\n%s", tg.logs.String())
	}
}

// TestStdioStepUpChallenge checks the 403 a tool call without its scope
// gets: the rs challenge format with every scope the call needs.
func TestStdioStepUpChallenge(t *testing.T) {
	tg := newTestGateway(t, []Route{fakeRoute(t)}, nil)
	c := newRawClient(t, tg.base+"/fake/mcp", "alice-read")
	c.initialize()
	resp, msgs := c.post(`{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"admin_wipe","arguments":{}}}`)
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("status %d, want 403", resp.StatusCode)
	}
	want := `Bearer error="insufficient_scope", scope="fake:read fake:admin", resource_metadata="` + tg.base +
		`/.well-known/oauth-protected-resource/fake/mcp", error_description="tool admin_wipe needs scope fake:read fake:admin"`
	if got := resp.Header.Get("WWW-Authenticate"); got != want {
		t.Errorf("WWW-Authenticate =\n%s\nwant\n%s", got, want)
	}
	if len(msgs) != 1 || string(msgs[0].ID) != "7" || msgs[0].Error == nil || msgs[0].Error.Code != mcpauthz.CodeForbidden {
		t.Errorf("body = %+v, want a JSON-RPC error for id 7", msgs)
	}

	// Without a token: 401 with the metadata URL and the baseline scope.
	c2 := newRawClient(t, tg.base+"/fake/mcp", "")
	resp, _ = c2.post(`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{}}`)
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(resp.Header.Get("WWW-Authenticate"), `scope="fake:read"`) {
		t.Errorf("no token: %d %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
	// A token without the baseline scope: 403.
	c3 := newRawClient(t, tg.base+"/fake/mcp", "nobody")
	resp, _ = c3.post(`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{}}`)
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("token without baseline scope: %d, want 403", resp.StatusCode)
	}

	// Audit: the refused call is recorded as step_up.
	tg.Close()
	events, err := tg.store.QueryAudit(t.Context(), storage.AuditQuery{Type: AuditToolCall})
	if err != nil {
		t.Fatal(err)
	}
	if len(events) != 1 || events[0].Outcome != "step_up" || events[0].UserID != "alice" || events[0].ClientID != "client-a" ||
		events[0].Resource != tg.base+"/fake/mcp" || events[0].Detail != "route=fake tool=admin_wipe" {
		t.Errorf("audit events = %+v", events)
	}
}

// TestDenyUnlisted checks a route that refuses tools it does not list.
func TestDenyUnlisted(t *testing.T) {
	r := fakeRoute(t)
	r.Tools = Rules{"echo": nil, "admin_*": {"fake:admin"}}
	r.DenyUnlistedTools = true
	tg := newTestGateway(t, []Route{r}, nil)
	c := newRawClient(t, tg.base+"/fake/mcp", "alice-admin")
	c.initialize()
	_, list := c.call("tools/list", map[string]any{})
	if got, want := names(t, list, "tools", "name"), []string{"echo", "admin_reset", "admin_wipe"}; !cmp.Equal(got, want) {
		t.Errorf("tools/list = %v, want %v", got, want)
	}
	status, res := c.callTool("env", nil)
	if status != http.StatusOK || res.Error == nil || res.Error.Code != mcpauthz.CodeForbidden || !strings.Contains(res.Error.Message, "not allowed") {
		t.Errorf("tools/call env (unlisted) = %d %+v, want a JSON-RPC access error", status, res)
	}
	if status, res := c.callTool("echo", map[string]any{"message": "x"}); status != http.StatusOK || toolText(res) != "echo: x" {
		t.Errorf("tools/call echo = %d %+v", status, res)
	}
}

// TestRefusedBatchRecorded checks which tool calls of a refused batch are
// recorded: the denied ones when any message is denied (outcome
// "denied"; none when only a prompt is), else those needing a step-up
// ("step_up"); never the allowed ones nor other methods.
func TestRefusedBatchRecorded(t *testing.T) {
	r := fakeRoute(t)
	r.Tools = Rules{"echo": nil, "admin_*": {"fake:admin"}}
	r.DenyUnlistedTools = true
	r.DenyUnlistedPrompts = true
	tg := newTestGateway(t, []Route{r}, nil)
	c := newRawClient(t, tg.base+"/fake/mcp", "alice-read")
	msg := func(id int, method, name string) string {
		return `{"jsonrpc":"2.0","id":` + itoa(id) + `,"method":"` + method + `","params":{"name":"` + name + `"}}`
	}
	for _, batch := range [][]string{
		{msg(1, "tools/call", "echo"), msg(2, "tools/call", "admin_wipe"), msg(3, "tools/call", "env"),
			msg(4, "prompts/get", "unlisted"), msg(5, "tools/call", "crash"), msg(6, "tools/call", "admin_reset")},
		{msg(7, "tools/call", "admin_reset"), msg(8, "tools/call", "echo"), msg(9, "prompts/get", "secret_prompt"), msg(10, "tools/call", "admin_wipe")},
		{msg(11, "tools/call", "admin_wipe"), msg(12, "prompts/get", "unlisted")},
	} {
		body := "[" + strings.Join(batch, ",") + "]"
		if resp, _ := c.post(body); resp.StatusCode != http.StatusForbidden {
			t.Errorf("POST %s = %d, want 403", body, resp.StatusCode)
		}
	}
	tg.Close()
	events, err := tg.store.QueryAudit(t.Context(), storage.AuditQuery{Type: AuditToolCall})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range events {
		got = append(got, e.Outcome+" "+e.Detail)
	}
	want := []string{
		"denied route=fake tool=env", "denied route=fake tool=crash",
		"step_up route=fake tool=admin_reset", "step_up route=fake tool=admin_wipe",
	}
	if diff := cmp.Diff(want, got, cmpopts.SortSlices(func(a, b string) bool { return a < b })); diff != "" {
		t.Errorf("recorded tool calls (-want +got):\n%s", diff)
	}
}

// TestSessionBinding checks that a session id is no credential: another
// subject presenting it is refused, an unknown one gets 404.
func TestSessionBinding(t *testing.T) {
	tg := newTestGateway(t, []Route{fakeRoute(t)}, nil)
	alice := newRawClient(t, tg.base+"/fake/mcp", "alice-read")
	alice.initialize()
	bob := newRawClient(t, tg.base+"/fake/mcp", "bob-read")
	bob.sid = alice.sid
	if status, _ := bob.callTool("echo", nil); status != http.StatusForbidden {
		t.Errorf("bob with alice's session: status %d, want 403", status)
	}
	if st := bob.delete(); st != http.StatusForbidden {
		t.Errorf("bob DELETE alice's session: status %d, want 403", st)
	}
	bob.sid = "made-up"
	if status, _ := bob.callTool("echo", nil); status != http.StatusNotFound {
		t.Errorf("unknown session: status %d, want 404", status)
	}
	if status, res := alice.callTool("echo", map[string]any{"message": "still mine"}); status != http.StatusOK || toolText(res) != "echo: still mine" {
		t.Errorf("alice after bob's attempts: %d %+v", status, res)
	}
	if len(alice.sid) < 43 {
		t.Errorf("session id %q is shorter than 256 bits", alice.sid)
	}
}

// TestMisbehavingUpstream checks that an upstream process that crashes,
// hangs, floods its output or writes garbage costs its own session only:
// the caller gets a clear JSON-RPC error, the session is gone, and other
// sessions and the gateway carry on.
func TestMisbehavingUpstream(t *testing.T) {
	r := fakeRoute(t)
	r.RequestTimeout = 700 * time.Millisecond
	r.MaxMessageBytes = 1 << 20
	tg := newTestGateway(t, []Route{r}, nil)
	url := tg.base + "/fake/mcp"
	bystander := newRawClient(t, url, "bob-read")
	bystander.initialize()

	for _, tt := range []struct {
		tool     string
		status   int
		code     int
		contains string
	}{
		{"crash", http.StatusBadGateway, mcpauthz.CodeUpstreamClosed, "exited"},
		{"hang", http.StatusGatewayTimeout, mcpauthz.CodeTimeout, "did not answer within"},
		{"flood", http.StatusBadGateway, mcpauthz.CodeUpstreamClosed, "larger than"},
		{"garbage", http.StatusBadGateway, mcpauthz.CodeUpstreamClosed, "not JSON-RPC"},
	} {
		t.Run(tt.tool, func(t *testing.T) {
			for _, accept := range []string{"application/json", "application/json, text/event-stream"} {
				c := newRawClient(t, url, "alice-read")
				c.accept = accept
				c.initialize()
				start := time.Now()
				status, res := c.callTool(tt.tool, nil)
				wantStatus := tt.status
				if strings.Contains(accept, "event-stream") {
					wantStatus = http.StatusOK // the stream had started
				}
				if status != wantStatus || res.Error == nil || res.Error.Code != tt.code || !strings.Contains(res.Error.Message, tt.contains) {
					t.Errorf("Accept %q: tools/call %s = %d %+v, want %d and a JSON-RPC error %d containing %q", accept, tt.tool, status, res, wantStatus, tt.code, tt.contains)
				}
				if d := time.Since(start); d > 5*time.Second {
					t.Errorf("tools/call %s took %s", tt.tool, d)
				}
				if tt.tool != "hang" {
					waitFor(t, 5*time.Second, "the session to end", func() bool {
						st, _ := c.callTool("echo", nil)
						return st == http.StatusNotFound
					})
				} else if st, res := c.callTool("echo", map[string]any{"message": "after hang"}); st != http.StatusOK || toolText(res) != "echo: after hang" {
					// A hung request is cancelled; the session itself lives.
					t.Errorf("echo after a hung call = %d %+v", st, res)
				}
				if st, res := bystander.callTool("echo", map[string]any{"message": "fine"}); st != http.StatusOK || toolText(res) != "echo: fine" {
					t.Fatalf("bystander session after %s: %d %+v", tt.tool, st, res)
				}
				c.delete()
			}
		})
	}
	waitFor(t, 10*time.Second, "only the bystander's process to remain", func() bool { return tg.Sessions("fake") == 1 })
}

// TestStartFailure checks a stdio upstream that cannot start or dies at
// once: a 502 with a JSON-RPC error, no session, the slot given back.
func TestStartFailure(t *testing.T) {
	missing := fakeRoute(t)
	missing.Name, missing.URL, missing.Upstream.Command = "missing", "/missing/mcp", "/nonexistent/mcp-server"
	dies := fakeRoute(t)
	dies.Name, dies.URL = "dies", "/dies/mcp"
	dies.Upstream.Env = append(dies.Upstream.Env, "FAKEMCP_EXIT_AT_START=1")
	tg := newTestGateway(t, []Route{missing, dies}, nil)
	for _, name := range []string{"missing", "dies"} {
		c := newRawClient(t, tg.base+"/"+name+"/mcp", "alice-read")
		resp, msgs := c.post(`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"x","version":"1"}}}`)
		if resp.StatusCode != http.StatusBadGateway || resp.Header.Get(headerSessionID) != "" || len(msgs) != 1 || msgs[0].Error == nil {
			t.Errorf("%s: initialize = %d (session %q) %+v, want 502 with a JSON-RPC error and no session", name, resp.StatusCode, resp.Header.Get(headerSessionID), msgs)
		}
		waitFor(t, 5*time.Second, name+" slot released", func() bool { return tg.Sessions(name) == 0 })
	}
}

// TestSessionLimit opens 100 sessions at once against a stdio route
// limited to 25 processes: 25 succeed, the others get 503 with a JSON-RPC
// error, and the number of processes never exceeds the limit. Then a
// route limited to 100 takes all 100.
func TestSessionLimit(t *testing.T) {
	for _, limit := range []int{25, 100} {
		t.Run("limit "+itoa(limit), func(t *testing.T) {
			r := fakeRoute(t)
			r.MaxSessions = limit
			tg := newTestGateway(t, []Route{r}, nil)
			url := tg.base + "/fake/mcp"
			var peak atomic.Int64
			stop := make(chan struct{})
			var wg sync.WaitGroup
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					if n := int64(tg.Sessions("fake")); n > peak.Load() {
						peak.Store(n)
					}
					select {
					case <-stop:
						return
					case <-time.After(time.Millisecond):
					}
				}
			}()
			const clients = 100
			var ok, refused atomic.Int64
			clientsList := make([]*rawClient, clients)
			var cwg sync.WaitGroup
			for i := range clients {
				cwg.Add(1)
				go func() {
					defer cwg.Done()
					c := newRawClient(t, url, "alice-read")
					resp, msgs := c.post(`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"x","version":"1"}}}`)
					switch {
					case resp.StatusCode == http.StatusOK && len(msgs) == 1 && msgs[0].Result != nil:
						c.sid = resp.Header.Get(headerSessionID)
						clientsList[i] = c
						ok.Add(1)
					case resp.StatusCode == http.StatusServiceUnavailable && len(msgs) == 1 && msgs[0].Error != nil &&
						strings.Contains(msgs[0].Error.Message, "limit") && string(msgs[0].ID) == "1":
						refused.Add(1)
					default:
						t.Errorf("initialize = %d %+v", resp.StatusCode, msgs)
					}
				}()
			}
			cwg.Wait()
			if ok.Load() != int64(limit) || refused.Load() != int64(clients-limit) {
				t.Errorf("%d sessions opened, %d refused; want %d and %d", ok.Load(), refused.Load(), limit, clients-limit)
			}
			// Every open session works.
			var fails atomic.Int64
			for _, c := range clientsList {
				if c == nil {
					continue
				}
				cwg.Add(1)
				go func() {
					defer cwg.Done()
					if st, res := c.callTool("echo", map[string]any{"message": "m"}); st != http.StatusOK || toolText(res) != "echo: m" {
						fails.Add(1)
					}
				}()
			}
			cwg.Wait()
			if fails.Load() > 0 {
				t.Errorf("%d sessions failed a call", fails.Load())
			}
			for _, c := range clientsList {
				if c != nil {
					if st := c.delete(); st != http.StatusNoContent {
						t.Errorf("DELETE = %d, want 204", st)
					}
				}
			}
			waitFor(t, 10*time.Second, "every process to exit", func() bool { return tg.Sessions("fake") == 0 })
			close(stop)
			wg.Wait()
			if peak.Load() > int64(limit) {
				t.Errorf("peak processes %d exceeds the limit %d", peak.Load(), limit)
			}
		})
	}
}

// TestSessionLimitPerUser: one user cannot take every session of a route.
// With max_sessions_per_user 4, alice's fifth session gets 429 with
// Retry-After and a JSON-RPC error while bob still gets one; ending one of
// alice's sessions gives her a slot back.
func TestSessionLimitPerUser(t *testing.T) {
	r := fakeRoute(t)
	r.MaxSessions = 16
	r.MaxSessionsPerUser = 4
	tg := newTestGateway(t, []Route{r}, nil)
	url := tg.base + "/fake/mcp"
	const initialize = `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"x","version":"1"}}}`
	open := func(token string) (*rawClient, *http.Response, []rpcResult) {
		c := newRawClient(t, url, token)
		resp, msgs := c.post(initialize)
		c.sid = resp.Header.Get(headerSessionID)
		return c, resp, msgs
	}
	var alice []*rawClient
	for i := range 4 {
		c, resp, _ := open("alice-read")
		if resp.StatusCode != http.StatusOK || c.sid == "" {
			t.Fatalf("alice's session %d = %d, want 200", i+1, resp.StatusCode)
		}
		alice = append(alice, c)
	}
	_, resp, msgs := open("alice-read")
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" || len(msgs) != 1 || msgs[0].Error == nil ||
		!strings.Contains(msgs[0].Error.Message, "limit per user") || string(msgs[0].ID) != "1" {
		t.Errorf("alice's fifth session = %d (Retry-After %q) %+v, want 429 with a JSON-RPC error", resp.StatusCode, resp.Header.Get("Retry-After"), msgs)
	}
	if c, resp, _ := open("bob-read"); resp.StatusCode != http.StatusOK {
		t.Errorf("bob's session = %d, want 200", resp.StatusCode)
	} else {
		c.delete()
	}
	if st := alice[0].delete(); st != http.StatusNoContent {
		t.Fatalf("DELETE = %d, want 204", st)
	}
	waitFor(t, 5*time.Second, "alice's slot to come back", func() bool {
		c, resp, _ := open("alice-read")
		if resp.StatusCode == http.StatusOK {
			alice[0] = c
			return true
		}
		return false
	})
	for _, c := range alice {
		c.delete()
	}
	waitFor(t, 10*time.Second, "every process to exit", func() bool { return tg.Sessions("fake") == 0 })
}

func itoa(n int) string {
	b, _ := json.Marshal(n)
	return string(b)
}

// TestIdleTimeout checks that an idle session's process is stopped.
func TestIdleTimeout(t *testing.T) {
	r := fakeRoute(t)
	r.SessionIdleTimeout = 300 * time.Millisecond
	tg := newTestGateway(t, []Route{r}, nil)
	c := newRawClient(t, tg.base+"/fake/mcp", "alice-read")
	c.initialize()
	// A slow call outlasting the idle timeout keeps the session.
	if st, res := c.callTool("slow", map[string]any{"ms": 600}); st != http.StatusOK || toolText(res) != "slow done" {
		t.Fatalf("slow call = %d %+v", st, res)
	}
	waitFor(t, 5*time.Second, "the idle session's process to exit", func() bool { return tg.Sessions("fake") == 0 })
	if st, _ := c.callTool("echo", nil); st != http.StatusNotFound {
		t.Errorf("call on an idled session = %d, want 404", st)
	}
}

// TestStdioStreams checks the event-stream side: progress notifications
// go to the stream of their request, other server messages to the GET
// stream.
func TestStdioStreams(t *testing.T) {
	tg := newTestGateway(t, []Route{fakeRoute(t)}, nil)
	c := newRawClient(t, tg.base+"/fake/mcp", "alice-read")

	c.initialize()
	resp, msgs := c.post(`{"jsonrpc":"2.0","id":"p1","method":"tools/call","params":{"name":"progress","arguments":{},"_meta":{"progressToken":"tok"}}}`)
	var progress int
	for _, m := range msgs {
		if m.Method == "notifications/progress" {
			progress++
		}
	}
	if resp.Header.Get("Content-Type") != "text/event-stream" || progress != 3 || toolText(msgs[len(msgs)-1]) != "progress done" {
		t.Errorf("progress call: %s, %d progress notifications, messages %+v", resp.Header.Get("Content-Type"), progress, msgs)
	}

	// A notification sent while a JSON-only call waits goes to the GET
	// stream.
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	get := c.openStream(ctx)
	lines := make(chan string, 16)
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := get.Body.Read(buf)
			if n > 0 {
				lines <- string(buf[:n])
			}
			if err != nil {
				close(lines)
				return
			}
		}
	}()
	c.accept = "application/json"
	if st, res := c.callTool("notify", nil); st != http.StatusOK || toolText(res) != "notified" {
		t.Fatalf("notify = %d %+v", st, res)
	}
	var got strings.Builder
	timeout := time.After(5 * time.Second)
	for !strings.Contains(got.String(), "note from fakemcp") {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("GET stream ended: %q", got.String())
			}
			got.WriteString(l)
		case <-timeout:
			t.Fatalf("no notification on the GET stream: %q", got.String())
		}
	}
	// A second GET stream is refused while one is open.
	req2, _ := http.NewRequest(http.MethodGet, c.url, nil)
	req2.Header = get.Request.Header.Clone()
	if resp, err := http.DefaultClient.Do(req2); err != nil || resp.StatusCode != http.StatusConflict {
		t.Errorf("second GET stream: %v %v, want 409", resp.StatusCode, err)
	}
	// Ending the session ends the GET stream.
	c.delete()
	for range lines {
	}
}

// TestShutdownDrains checks a graceful shutdown: a call in flight
// completes, new requests get 503, and then processes are stopped.
func TestShutdownDrains(t *testing.T) {
	tg := newTestGateway(t, []Route{fakeRoute(t)}, nil)
	c := newRawClient(t, tg.base+"/fake/mcp", "alice-read")
	c.initialize()
	done := make(chan rpcResult)
	go func() {
		_, res := c.callTool("slow", map[string]any{"ms": 500})
		done <- res
	}()
	time.Sleep(100 * time.Millisecond)
	shut := make(chan error)
	go func() { shut <- tg.Shutdown(context.Background()) }()
	time.Sleep(50 * time.Millisecond)
	c2 := newRawClient(t, tg.base+"/fake/mcp", "alice-read")
	resp, msgs := c2.post(`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{}}`)
	if resp.StatusCode != http.StatusServiceUnavailable || len(msgs) != 1 || msgs[0].Error == nil {
		t.Errorf("request while draining = %d %+v, want 503 with a JSON-RPC error", resp.StatusCode, msgs)
	}
	if res := <-done; toolText(res) != "slow done" {
		t.Errorf("in-flight call during shutdown = %+v", res)
	}
	if err := <-shut; err != nil {
		t.Errorf("Shutdown = %v", err)
	}
	if n := tg.Sessions("fake"); n != 0 {
		t.Errorf("Sessions after Shutdown = %d, want 0", n)
	}
}

// TestBodyAndHost checks the request body cap, Host validation (DNS
// rebinding) and Origin validation.
func TestBodyAndHost(t *testing.T) {
	r := fakeRoute(t)
	r.MaxBodyBytes = 1024
	r.AllowedOrigins = []string{"https://inspector.example"}
	tg := newTestGateway(t, []Route{r}, nil)
	c := newRawClient(t, tg.base+"/fake/mcp", "alice-read")
	if resp, _ := c.post(`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"pad":"` + strings.Repeat("x", 2000) + `"}}`); resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("large body: %d, want 413", resp.StatusCode)
	}
	resp, _ := c.post(`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{}}`, "Origin", "http://evil.example")
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("foreign Origin: %d, want 403", resp.StatusCode)
	}
	resp, _ = c.post(`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"x","version":"1"}}}`, "Origin", "https://inspector.example")
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Access-Control-Allow-Origin") != "https://inspector.example" {
		t.Errorf("allowed Origin: %d %q", resp.StatusCode, resp.Header.Get("Access-Control-Allow-Origin"))
	}
	// A rebinding page: another Host, its own Origin.
	req, _ := http.NewRequest(http.MethodPost, c.url, strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{}}`))
	req.Host = "evil.example:80"
	req.Header.Set("Origin", "http://evil.example:80")
	req.Header.Set("Authorization", "Bearer alice-read")
	req.Header.Set("Content-Type", "application/json")
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusMisdirectedRequest {
		t.Errorf("foreign Host: %v %v, want 421", resp.StatusCode, err)
	}
	// A body the gateway cannot read unambiguously never reaches the
	// upstream.
	for _, body := range []string{
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","Name":"admin_wipe"}}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","name":"admin_wipe"}}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","Params":{"name":"admin_wipe"}}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo"}} {}`,
	} {
		if resp, _ := c.post(body); resp.StatusCode != http.StatusBadRequest {
			t.Errorf("ambiguous body %s: %d, want 400", body, resp.StatusCode)
		}
	}
	// Two requests under one id: the tools/list response could be taken
	// for the tools/call one and skip the filter, or the call skip the
	// audit log.
	for _, body := range []string{
		`[{"jsonrpc":"2.0","id":7,"method":"tools/list"},{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"echo"}}]`,
		`[{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"echo"}},{"jsonrpc":"2.0","id":9.0,"method":"ping"}]`,
	} {
		if resp, msgs := c.post(body); resp.StatusCode != http.StatusBadRequest || len(msgs) != 1 || msgs[0].Error == nil || msgs[0].Error.Code != mcpauthz.CodeInvalidRequest {
			t.Errorf("batch reusing an id %s: %d %+v, want 400 and error %d", body, resp.StatusCode, msgs, mcpauthz.CodeInvalidRequest)
		}
	}
	// Mcp-Name must match the body (TestHeaderMismatch has the rules).
	c.initialize()
	if resp, msgs := c.post(`{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"echo"}}`, headerName, "admin_wipe"); resp.StatusCode != http.StatusBadRequest ||
		len(msgs) != 1 || msgs[0].Error == nil || msgs[0].Error.Code != mcpauthz.CodeHeaderMismatch || string(msgs[0].ID) != "5" {
		t.Errorf("Mcp-Name mismatch: %d %s, want 400 and error %d for id 5", resp.StatusCode, describe(msgs), mcpauthz.CodeHeaderMismatch)
	}
}

// TestMetadata checks the route's protected resource metadata.
func TestMetadata(t *testing.T) {
	tg := newTestGateway(t, []Route{fakeRoute(t)}, nil)
	for _, path := range []string{"/.well-known/oauth-protected-resource/fake/mcp", "/.well-known/oauth-protected-resource"} {
		resp, err := http.Get(tg.base + path)
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		json.NewDecoder(resp.Body).Decode(&m)
		resp.Body.Close()
		want := map[string]any{
			"resource": tg.base + "/fake/mcp", "authorization_servers": []any{"https://as.example.com"},
			// Every scope of the route, the baseline first.
			"scopes_supported": []any{"fake:read", "fake:admin"}, "bearer_methods_supported": []any{"header"},
			// No title: the default, which the consent page shows.
			"resource_name": "the fake MCP server",
		}
		if diff := cmp.Diff(want, m); diff != "" {
			t.Errorf("GET %s (-want +got):\n%s", path, diff)
		}
	}
	res := tg.Resources(map[string]map[string]string{"fake": {"fake:admin": "Administer"}})
	want := []storage.Resource{{
		URL: tg.base + "/fake/mcp", Name: "the fake MCP server",
		Scopes: []storage.Scope{
			{Name: "fake:read"},
			{Name: "fake:admin", Description: "Administer"},
		},
		DefaultScopes: []string{"fake:read"},
	}}
	if diff := cmp.Diff(want, res); diff != "" {
		t.Errorf("Resources (-want +got):\n%s", diff)
	}
}
