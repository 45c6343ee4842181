package demo

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/gatehouse-mcp/gatehouse/internal/testissuer"
	"github.com/gatehouse-mcp/gatehouse/rs"
)

// demoServer is the demo behind an httptest server, with tool executions
// counted.
type demoServer struct {
	as       *testissuer.Issuer
	srv      *httptest.Server
	resource string
	mu       sync.Mutex
	ran      map[string]int
}

func newDemoServer(t *testing.T) *demoServer { return newDemoServerListing(t, "") }

// newDemoServerListing is newDemoServer with Options.ListTools list.
func newDemoServerListing(t *testing.T, list rs.ListMode) *demoServer {
	t.Helper()
	return newDemoServerWith(t, func(o *Options) { o.ListTools = list })
}

// newDemoServerWith is newDemoServer with options changed by mod.
func newDemoServerWith(t *testing.T, mod func(*Options)) *demoServer {
	t.Helper()
	a := testissuer.New(t)
	srv := httptest.NewUnstartedServer(nil)
	d := &demoServer{as: a, srv: srv, resource: "http://" + srv.Listener.Addr().String() + "/mcp", ran: map[string]int{}}
	opts := Options{Issuer: a.URL, Resource: d.resource, HTTPClient: a.Client()}
	mod(&opts)
	h, err := NewHandler(opts)
	if err != nil {
		t.Fatal(err)
	}
	toolRan = func(tool string) {
		d.mu.Lock()
		d.ran[tool]++
		d.mu.Unlock()
	}
	t.Cleanup(func() { toolRan = nil })
	srv.Config.Handler = h
	srv.Start()
	t.Cleanup(srv.Close)
	return d
}

func (d *demoServer) executions() map[string]int {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := map[string]int{}
	for k, v := range d.ran {
		out[k] = v
	}
	return out
}

// wire is an SDK client's HTTP transport: it adds a fixed bearer token
// and records every exchange, so that tests see what the client cannot
// show (statuses, challenges, session ids).
type wire struct {
	token string
	mu    sync.Mutex
	log   []exchange
}

// exchange is one HTTP request of a client and its answer.
type exchange struct {
	method  string // the JSON-RPC method of the request's body
	session string // the request's Mcp-Session-Id
	status  int
	// contentType, challenge and newSession are the answer's media type,
	// WWW-Authenticate and Mcp-Session-Id.
	contentType, challenge, newSession string
}

func (w *wire) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+w.token)
	var msg struct {
		Method string `json:"method"`
	}
	if r.Body != nil {
		body, err := io.ReadAll(r.Body)
		r.Body.Close()
		if err != nil {
			return nil, err
		}
		json.Unmarshal(body, &msg)
		r.Body = io.NopCloser(bytes.NewReader(body))
	}
	resp, err := http.DefaultTransport.RoundTrip(r)
	if err != nil {
		return nil, err
	}
	w.mu.Lock()
	w.log = append(w.log, exchange{
		method: msg.Method, session: r.Header.Get("Mcp-Session-Id"), status: resp.StatusCode,
		contentType: mediaType(resp.Header.Get("Content-Type")),
		challenge:   resp.Header.Get("WWW-Authenticate"), newSession: resp.Header.Get("Mcp-Session-Id"),
	})
	w.mu.Unlock()
	return resp, nil
}

// mediaType is a Content-Type without its parameters.
func mediaType(ct string) string {
	t, _, _ := strings.Cut(ct, ";")
	return strings.TrimSpace(t)
}

// exchanges returns what the client has sent and received so far.
func (w *wire) exchanges() []exchange {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.log)
}

// connect opens an MCP session with a fixed token, in the revision the
// SDK client prefers (2026-07-28 in v1.8.0).
func (d *demoServer) connect(t *testing.T, token string) *mcp.ClientSession {
	t.Helper()
	cs, _ := d.connectAt(t, token, "")
	return cs
}

// connectAt is connect asking for MCP revision rev (empty: the SDK's
// choice). It fails the test unless the demo agrees to rev, without a
// session (initialize, Mcp-Session-Id) from 2026-07-28 on and with one
// before.
func (d *demoServer) connectAt(t *testing.T, token, rev string) (*mcp.ClientSession, *wire) {
	t.Helper()
	w := &wire{token: token}
	c := mcp.NewClient(&mcp.Implementation{Name: "demo-test", Version: "1"}, nil)
	cs, err := c.Connect(t.Context(), &mcp.StreamableClientTransport{
		Endpoint:             d.resource,
		HTTPClient:           &http.Client{Transport: w},
		DisableStandaloneSSE: true,
	}, &mcp.ClientSessionOptions{ProtocolVersion: rev})
	if err != nil {
		t.Fatalf("Connect(%s, %q) = %v", d.resource, rev, err)
	}
	t.Cleanup(func() { cs.Close() })
	if rev != "" {
		if got := cs.InitializeResult().ProtocolVersion; got != rev {
			t.Fatalf("Connect(%q): the demo speaks %q", rev, got)
		}
		if stateless := rev >= statelessRevision; stateless != (cs.ID() == "") {
			t.Fatalf("Connect(%q): session id %q, want one only before %s", rev, cs.ID(), statelessRevision)
		}
	}
	return cs, w
}

func toolNames(t *testing.T, cs *mcp.ClientSession) []string {
	t.Helper()
	names, _ := toolList(t, cs)
	return names
}

// toolList returns the names tools/list shows and its cacheScope.
func toolList(t *testing.T, cs *mcp.ClientSession) (names []string, cacheScope string) {
	t.Helper()
	res, err := cs.ListTools(t.Context(), nil)
	if err != nil {
		t.Fatalf("ListTools = %v", err)
	}
	for _, tool := range res.Tools {
		names = append(names, tool.Name)
	}
	return names, res.CacheScope
}

// revisions are the MCP revisions the demo speaks: 2026-07-28, stateless
// (server/discover, no session), and the session-based ones before it.
var revisions = []string{"2026-07-28", "2025-11-25", "2025-06-18", "2025-03-26"}

// TestDemoNotes runs the notes through the real SDK client in every
// revision: per-user notes, the scope of each tool, and a refused call
// that leaves the client able to go on.
// TestDemoReportsToolCalls: with ToolCalled set, every tools/call the
// server handled is reported with the token's subject and client and its
// outcome; a call rs refused before the server saw it is not.
func TestDemoReportsToolCalls(t *testing.T) {
	var (
		mu    sync.Mutex
		calls []ToolCall
	)
	d := newDemoServerWith(t, func(o *Options) {
		o.ToolCalled = func(_ context.Context, c ToolCall) {
			mu.Lock()
			calls = append(calls, c)
			mu.Unlock()
		}
	})
	ctx := t.Context()
	cs := d.connect(t, d.as.Token(t, d.resource, "alice", "notes:read", nil))
	if _, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "list_notes"}); err != nil {
		t.Fatal(err)
	}
	if res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "read_note", Arguments: map[string]any{"id": "99"}}); err != nil || !res.IsError {
		t.Fatalf("read_note of a missing note = %+v, %v; want a tool error", res, err)
	}
	if _, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "add_note", Arguments: map[string]any{"title": "x"}}); err == nil {
		t.Fatal("add_note with notes:read succeeded")
	}
	want := []ToolCall{
		{Tool: "list_notes", Subject: "alice", ClientID: testissuer.ClientID, Resource: d.resource, Outcome: "ok"},
		{Tool: "read_note", Subject: "alice", ClientID: testissuer.ClientID, Resource: d.resource, Outcome: "tool_error"},
	}
	mu.Lock()
	defer mu.Unlock()
	for _, c := range calls {
		if c.Time.IsZero() {
			t.Errorf("call %s reported without a time", c.Tool)
		}
	}
	if diff := cmp.Diff(want, calls, cmpopts.IgnoreFields(ToolCall{}, "Time")); diff != "" {
		t.Errorf("reported tool calls (-want +got):\n%s", diff)
	}
}

func TestDemoNotes(t *testing.T) {
	for _, rev := range revisions {
		t.Run(rev, func(t *testing.T) { testDemoNotes(t, rev) })
	}
}

func testDemoNotes(t *testing.T, rev string) {
	d := newDemoServer(t)
	aliceRead, _ := d.connectAt(t, d.as.Token(t, d.resource, "alice", "notes:read", nil), rev)
	aliceRW, _ := d.connectAt(t, d.as.Token(t, d.resource, "alice", "notes:read notes:write", nil), rev)
	bobRW, _ := d.connectAt(t, d.as.Token(t, d.resource, "bob", "notes:read notes:write", nil), rev)
	ctx := t.Context()

	if diff := cmp.Diff([]string{"add_note", "delete_note", "list_notes", "read_note"}, toolNames(t, aliceRW)); diff != "" {
		t.Errorf("tools/list with notes:read notes:write (-want +got):\n%s", diff)
	}

	// notes:read cannot add: the call fails before the tool runs.
	_, err := aliceRead.CallTool(ctx, &mcp.CallToolParams{Name: "add_note", Arguments: map[string]any{"title": "x"}})
	if err == nil || !strings.Contains(err.Error(), "insufficient_scope") {
		t.Errorf("CallTool(add_note) with notes:read = %v, want an insufficient_scope error", err)
	}
	if n := d.executions()["add_note"]; n != 0 {
		t.Errorf("add_note ran %d times with notes:read, want 0", n)
	}
	// The session survives the refusal.
	if _, err := aliceRead.CallTool(ctx, &mcp.CallToolParams{Name: "list_notes"}); err != nil {
		t.Errorf("CallTool(list_notes) after a refused call = %v", err)
	}

	res, err := aliceRW.CallTool(ctx, &mcp.CallToolParams{Name: "add_note", Arguments: map[string]any{"title": "Groceries", "text": "milk"}})
	if err != nil || res.IsError {
		t.Fatalf("CallTool(add_note) = %+v, %v", res, err)
	}
	var added Note
	if err := remarshal(res.StructuredContent, &added); err != nil || added.ID != "1" || added.Title != "Groceries" {
		t.Errorf("add_note result = %+v (%v), want note 1 Groceries", res.StructuredContent, err)
	}
	// Alice's read-only session sees it; Bob does not.
	res, err = aliceRead.CallTool(ctx, &mcp.CallToolParams{Name: "read_note", Arguments: map[string]any{"id": "1"}})
	if err != nil || res.IsError {
		t.Fatalf("CallTool(read_note) = %+v, %v", res, err)
	}
	var note Note
	if err := remarshal(res.StructuredContent, &note); err != nil || note.Text != "milk" {
		t.Errorf("read_note = %+v (%v), want text milk", res.StructuredContent, err)
	}
	res, err = bobRW.CallTool(ctx, &mcp.CallToolParams{Name: "list_notes"})
	if err != nil {
		t.Fatal(err)
	}
	var list listOut
	if err := remarshal(res.StructuredContent, &list); err != nil || len(list.Notes) != 0 {
		t.Errorf("Bob's list_notes = %+v (%v), want none", res.StructuredContent, err)
	}
	res, err = bobRW.CallTool(ctx, &mcp.CallToolParams{Name: "delete_note", Arguments: map[string]any{"id": "1"}})
	if err != nil || !res.IsError {
		t.Errorf("Bob's delete_note(1) = %+v, %v, want a tool error", res, err)
	}
	res, err = aliceRW.CallTool(ctx, &mcp.CallToolParams{Name: "delete_note", Arguments: map[string]any{"id": "1"}})
	if err != nil || res.IsError {
		t.Errorf("Alice's delete_note(1) = %+v, %v", res, err)
	}
}

func remarshal(in, out any) error {
	b, err := json.Marshal(in)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, out)
}

// TestDemoRefusesTokens sends bad tokens to the real SDK server: each is a
// 401 with the challenge, and no tool runs.
func TestDemoRefusesTokens(t *testing.T) {
	d := newDemoServer(t)
	good := d.as.Token(t, d.resource, "alice", "notes:read notes:write", nil)
	metaURL := strings.Replace(d.resource, "/mcp", "/.well-known/oauth-protected-resource/mcp", 1)
	base := `Bearer resource_metadata="` + metaURL + `", scope="notes:read"`
	otherAS := testissuer.New(t)
	tests := []struct {
		name, auth, query, want string
	}{
		{"no token", "", "", base},
		{"query string", "", url.Values{"access_token": {good}}.Encode(), base},
		{"expired", d.as.Token(t, d.resource, "alice", "notes:read notes:write", func(c map[string]any) { c["exp"] = time.Now().Add(-time.Minute).Unix() }),
			"", base + `, error="invalid_token", error_description="token expired"`},
		{"another resource", d.as.Token(t, "http://127.0.0.1:1/mcp", "alice", "notes:read notes:write", nil),
			"", base + `, error="invalid_token", error_description="token is for another resource"`},
		{"another issuer's key", otherAS.Token(t, d.resource, "alice", "notes:read notes:write", func(c map[string]any) { c["iss"] = d.as.URL }),
			"", base + `, error="invalid_token", error_description="invalid signature"`},
	}
	body := `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"add_note","arguments":{"title":"x"}}}`
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u := d.resource
			if tt.query != "" {
				u += "?" + tt.query
			}
			req, _ := http.NewRequest(http.MethodPost, u, strings.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Accept", "application/json, text/event-stream")
			if tt.auth != "" {
				req.Header.Set("Authorization", "Bearer "+tt.auth)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("WWW-Authenticate") != tt.want {
				t.Errorf("POST = %d %s\nwant 401 %s", resp.StatusCode, resp.Header.Get("WWW-Authenticate"), tt.want)
			}
		})
	}
	if got := d.executions(); len(got) != 0 {
		t.Errorf("tool executions = %v, want none", got)
	}
}

// TestDemoSessionBoundToUser checks that the SDK's session hijacking guard
// works with the subject rsmcp passes: Bob cannot use Alice's session.
func TestDemoSessionBoundToUser(t *testing.T) {
	d := newDemoServer(t)
	alice := d.as.Token(t, d.resource, "alice", "notes:read notes:write", nil)
	bob := d.as.Token(t, d.resource, "bob", "notes:read notes:write", nil)
	post := func(tok, session, body string) *http.Response {
		req, _ := http.NewRequest(http.MethodPost, d.resource, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		req.Header.Set("Authorization", "Bearer "+tok)
		if session != "" {
			req.Header.Set("Mcp-Session-Id", session)
			req.Header.Set("Mcp-Protocol-Version", "2025-06-18")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp
	}
	resp := post(alice, "", `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}`)
	session := resp.Header.Get("Mcp-Session-Id")
	if resp.StatusCode != http.StatusOK || session == "" {
		t.Fatalf("initialize = %d, session %q", resp.StatusCode, session)
	}
	if r := post(alice, session, `{"jsonrpc":"2.0","method":"notifications/initialized"}`); r.StatusCode != http.StatusAccepted {
		t.Fatalf("initialized = %d", r.StatusCode)
	}
	call := `{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"add_note","arguments":{"title":"hijack"}}}`
	if r := post(bob, session, call); r.StatusCode != http.StatusForbidden {
		t.Errorf("Bob's call on Alice's session = %d, want 403", r.StatusCode)
	}
	if n := d.executions()["add_note"]; n != 0 {
		t.Errorf("add_note ran %d times on a hijacked session, want 0", n)
	}
	if r := post(alice, session, call); r.StatusCode != http.StatusOK {
		t.Errorf("Alice's call on her session = %d, want 200", r.StatusCode)
	}
}

func TestDemoMetadata(t *testing.T) {
	d := newDemoServer(t)
	for _, path := range []string{"/.well-known/oauth-protected-resource/mcp", "/.well-known/oauth-protected-resource"} {
		resp, err := http.Get(strings.Replace(d.resource, "/mcp", path, 1))
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		json.NewDecoder(resp.Body).Decode(&m)
		resp.Body.Close()
		want := map[string]any{
			"resource":                 d.resource,
			"authorization_servers":    []any{d.as.URL},
			"scopes_supported":         []any{"notes:read", "notes:write"},
			"bearer_methods_supported": []any{"header"},
			"resource_name":            "Gatehouse demo notes",
		}
		if diff := cmp.Diff(want, m); diff != "" {
			t.Errorf("GET %s (-want +got):\n%s", path, diff)
		}
	}
}

// TestDemoListTools: by default (grantable) a notes:read token lists the
// tools that need notes:write, so a host that only calls listed tools can
// call add_note and be stepped up; granted hides them. A list rs filtered
// depends on the token and says so (cacheScope "private", RS-18); the
// others are the server's own list, the same for every token, and pass
// as the SDK wrote them.
func TestDemoListTools(t *testing.T) {
	all := []string{"add_note", "delete_note", "list_notes", "read_note"}
	for _, tt := range []struct {
		list       rs.ListMode
		want       []string
		cacheScope string
	}{
		{"", all, "public"},
		{rs.ListGrantable, all, "public"},
		{rs.ListGranted, []string{"list_notes", "read_note"}, "private"},
		{rs.ListAll, all, "public"},
	} {
		for _, rev := range revisions {
			t.Run(string(tt.list)+"/"+rev, func(t *testing.T) {
				d := newDemoServerListing(t, tt.list)
				read, _ := d.connectAt(t, d.as.Token(t, d.resource, "alice", "notes:read", nil), rev)
				names, scope := toolList(t, read)
				if diff := cmp.Diff(tt.want, names); diff != "" {
					t.Errorf("tools/list with notes:read, ListTools %q (-want +got):\n%s", tt.list, diff)
				}
				if scope != tt.cacheScope {
					t.Errorf("tools/list with notes:read, ListTools %q: cacheScope %q, want %q", tt.list, scope, tt.cacheScope)
				}
			})
		}
	}
}

// TestDemoStateless follows the SDK client through the demo in
// 2026-07-28: server/discover instead of initialize, no session, each
// request carrying its token, the notes found by the token's subject, and
// the step-up challenge on a call that needs more scope.
func TestDemoStateless(t *testing.T) {
	d := newDemoServerListing(t, rs.ListGranted)
	read, readWire := d.connectAt(t, d.as.Token(t, d.resource, "alice", "notes:read", nil), "2026-07-28")
	rw, rwWire := d.connectAt(t, d.as.Token(t, d.resource, "alice", "notes:read notes:write", nil), "2026-07-28")
	ctx := t.Context()

	// The demo answered server/discover: its name and instructions
	// reached the client without initialize.
	if r := read.InitializeResult(); r.ServerInfo == nil || r.ServerInfo.Name != "gatehouse-demo-notes" || !strings.Contains(r.Instructions, "notes:write") {
		t.Errorf("server/discover result = %+v, want the demo's name and instructions", r)
	}
	names, scope := toolList(t, read)
	if diff := cmp.Diff([]string{"list_notes", "read_note"}, names); diff != "" || scope != "private" {
		t.Errorf("tools/list with notes:read = %v, cacheScope %q; want list_notes read_note, private (-want +got):\n%s", names, scope, diff)
	}
	if res, err := rw.CallTool(ctx, &mcp.CallToolParams{Name: "add_note", Arguments: map[string]any{"title": "Groceries"}}); err != nil || res.IsError {
		t.Fatalf("CallTool(add_note) with notes:write = %+v, %v", res, err)
	}
	// Another client of the same user, with another token, sees the note:
	// the notes are the subject's, not a session's.
	res, err := read.CallTool(ctx, &mcp.CallToolParams{Name: "list_notes"})
	if err != nil || res.IsError {
		t.Fatalf("CallTool(list_notes) = %+v, %v", res, err)
	}
	var list listOut
	if err := remarshal(res.StructuredContent, &list); err != nil || len(list.Notes) != 1 || list.Notes[0].Title != "Groceries" {
		t.Errorf("list_notes = %+v (%v), want the note Groceries", res.StructuredContent, err)
	}
	_, err = read.CallTool(ctx, &mcp.CallToolParams{Name: "add_note", Arguments: map[string]any{"title": "x"}})
	if err == nil || !strings.Contains(err.Error(), "insufficient_scope") {
		t.Errorf("CallTool(add_note) with notes:read = %v, want an insufficient_scope error", err)
	}
	if n := d.executions()["add_note"]; n != 1 {
		t.Errorf("add_note ran %d times, want once (notes:write only)", n)
	}

	metaURL := strings.Replace(d.resource, "/mcp", "/.well-known/oauth-protected-resource/mcp", 1)
	stepUp := `Bearer error="insufficient_scope", scope="notes:read notes:write", resource_metadata="` + metaURL +
		`", error_description="tool add_note needs scope notes:read notes:write"`
	// The demo answers with event streams: the tools/list above was
	// filtered (and marked private) event by event.
	const sse, plainJSON = "text/event-stream", "application/json"
	want := []exchange{
		{method: "server/discover", status: http.StatusOK, contentType: sse},
		{method: "tools/list", status: http.StatusOK, contentType: sse},
		{method: "tools/call", status: http.StatusOK, contentType: sse},
		{method: "tools/call", status: http.StatusForbidden, contentType: plainJSON, challenge: stepUp},
	}
	if diff := cmp.Diff(want, readWire.exchanges(), cmp.AllowUnexported(exchange{})); diff != "" {
		t.Errorf("the notes:read client's exchanges (-want +got):\n%s", diff)
	}
	for _, e := range rwWire.exchanges() {
		if e.method == "initialize" || e.session != "" || e.newSession != "" {
			t.Errorf("the notes:write client's exchange %+v: want no initialize and no session", e)
		}
	}
}

// TestDemoStepUpFromList calls add_note, listed for a notes:read token,
// the way a client does that only calls listed tools: the 403 challenge
// names every scope the call needs, and the tool does not run.
func TestDemoStepUpFromList(t *testing.T) {
	d := newDemoServer(t)
	tok := d.as.Token(t, d.resource, "alice", "notes:read", nil)
	if names := toolNames(t, d.connect(t, tok)); !slices.Contains(names, "add_note") {
		t.Fatalf("tools/list with notes:read = %v, want add_note listed", names)
	}
	req, _ := http.NewRequest(http.MethodPost, d.resource, strings.NewReader(`{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"add_note","arguments":{"title":"x"}}}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	metaURL := strings.Replace(d.resource, "/mcp", "/.well-known/oauth-protected-resource/mcp", 1)
	want := `Bearer error="insufficient_scope", scope="notes:read notes:write", resource_metadata="` + metaURL +
		`", error_description="tool add_note needs scope notes:read notes:write"`
	if resp.StatusCode != http.StatusForbidden || resp.Header.Get("WWW-Authenticate") != want {
		t.Errorf("tools/call add_note with notes:read = %d %s\nwant 403 %s", resp.StatusCode, resp.Header.Get("WWW-Authenticate"), want)
	}
	if !strings.Contains(string(body), `"id":7`) {
		t.Errorf("403 body = %s, want the JSON-RPC error for id 7", body)
	}
	if n := d.executions()["add_note"]; n != 0 {
		t.Errorf("add_note ran %d times with notes:read, want 0", n)
	}
}

func TestNotesLimits(t *testing.T) {
	n := newNotes(time.Now)
	for i := range maxNotesPerUser {
		if _, err := n.add("u", fmt.Sprint("n", i), ""); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := n.add("u", "one too many", ""); err == nil {
		t.Error("add beyond the per-user limit succeeded")
	}
	if _, err := n.add("v", "", ""); err == nil {
		t.Error("add without a title succeeded")
	}
	if _, err := n.get("v", "1"); !errors.Is(err, errNotFound) {
		t.Errorf("get(v, 1) = %v, want %v", err, errNotFound)
	}
}
