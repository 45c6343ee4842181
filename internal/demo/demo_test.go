package demo

import (
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
	a := testissuer.New(t)
	srv := httptest.NewUnstartedServer(nil)
	d := &demoServer{as: a, srv: srv, resource: "http://" + srv.Listener.Addr().String() + "/mcp", ran: map[string]int{}}
	h, err := NewHandler(Options{Issuer: a.URL, Resource: d.resource, HTTPClient: a.Client(), ListTools: list})
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

// bearerTransport adds a fixed Authorization header.
type bearerTransport struct{ token string }

func (b bearerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return http.DefaultTransport.RoundTrip(r)
}

// connect opens an MCP session with a fixed token.
func (d *demoServer) connect(t *testing.T, token string) *mcp.ClientSession {
	t.Helper()
	c := mcp.NewClient(&mcp.Implementation{Name: "demo-test", Version: "1"}, nil)
	cs, err := c.Connect(t.Context(), &mcp.StreamableClientTransport{
		Endpoint:             d.resource,
		HTTPClient:           &http.Client{Transport: bearerTransport{token}},
		DisableStandaloneSSE: true,
	}, nil)
	if err != nil {
		t.Fatalf("Connect(%s) = %v", d.resource, err)
	}
	t.Cleanup(func() { cs.Close() })
	return cs
}

func toolNames(t *testing.T, cs *mcp.ClientSession) []string {
	t.Helper()
	res, err := cs.ListTools(t.Context(), nil)
	if err != nil {
		t.Fatalf("ListTools = %v", err)
	}
	var names []string
	for _, tool := range res.Tools {
		names = append(names, tool.Name)
	}
	return names
}

func TestDemoNotes(t *testing.T) {
	d := newDemoServer(t)
	aliceRead := d.connect(t, d.as.Token(t, d.resource, "alice", "notes:read", nil))
	aliceRW := d.connect(t, d.as.Token(t, d.resource, "alice", "notes:read notes:write", nil))
	bobRW := d.connect(t, d.as.Token(t, d.resource, "bob", "notes:read notes:write", nil))
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
// call add_note and be stepped up; granted hides them.
func TestDemoListTools(t *testing.T) {
	all := []string{"add_note", "delete_note", "list_notes", "read_note"}
	for _, tt := range []struct {
		list rs.ListMode
		want []string
	}{
		{"", all},
		{rs.ListGrantable, all},
		{rs.ListGranted, []string{"list_notes", "read_note"}},
		{rs.ListAll, all},
	} {
		t.Run(string(tt.list), func(t *testing.T) {
			d := newDemoServerListing(t, tt.list)
			read := d.connect(t, d.as.Token(t, d.resource, "alice", "notes:read", nil))
			if diff := cmp.Diff(tt.want, toolNames(t, read)); diff != "" {
				t.Errorf("tools/list with notes:read, ListTools %q (-want +got):\n%s", tt.list, diff)
			}
		})
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
