package rsmcp

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/gatehouse-mcp/gatehouse/internal/mcpauthz/mcphttptest"
	"github.com/gatehouse-mcp/gatehouse/rs"
)

var expiry = time.Date(2026, 8, 1, 12, 5, 0, 0, time.UTC)

// verifier accepts "read" (notes:read) and "write" (notes:read
// notes:write) for subject alice, and "down" fails as an outage.
var verifier = rs.VerifierFunc(func(ctx context.Context, token string) (*rs.TokenInfo, error) {
	ti := &rs.TokenInfo{Subject: "alice", ClientID: "client-1", Issuer: "https://as.example.com", Expiry: expiry, ID: "jti-1"}
	switch token {
	case "read":
		ti.Scopes = []string{"notes:read"}
	case "write":
		ti.Scopes = []string{"notes:read", "notes:write"}
	case "down":
		return nil, rs.ErrUnavailable
	default:
		return nil, errors.Join(rs.ErrInvalidToken, rs.ErrExpired, errors.New("detail for logs only"))
	}
	if time.Now().After(ti.Expiry) {
		ti.Expiry = time.Now().Add(time.Hour)
	}
	return ti, nil
})

func TestTokenInfo(t *testing.T) {
	got := TokenInfo(&rs.TokenInfo{Subject: "alice", ClientID: "c", Issuer: "https://as", Scopes: []string{"a"}, Expiry: expiry, ID: "j"})
	want := &auth.TokenInfo{Scopes: []string{"a"}, Expiration: expiry, UserID: "alice",
		Extra: map[string]any{"client_id": "c", "issuer": "https://as", "jti": "j"}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("TokenInfo mismatch (-want +got):\n%s", diff)
	}
	if TokenInfo(nil) != nil {
		t.Error("TokenInfo(nil) != nil")
	}
}

func TestTokenVerifier(t *testing.T) {
	tv := TokenVerifier(verifier)
	ti, err := tv(t.Context(), "read", nil)
	if err != nil || ti.UserID != "alice" {
		t.Errorf("TokenVerifier(read) = %+v, %v, want UserID alice", ti, err)
	}
	_, err = tv(t.Context(), "bad", nil)
	if !errors.Is(err, auth.ErrInvalidToken) || strings.Contains(err.Error(), "detail") {
		t.Errorf("TokenVerifier(bad) = %v, want auth.ErrInvalidToken without details", err)
	}
	_, err = tv(t.Context(), "down", nil)
	if err == nil || errors.Is(err, auth.ErrInvalidToken) {
		t.Errorf("TokenVerifier(down) = %v, want an error that is not ErrInvalidToken", err)
	}
	// It plugs into the SDK's own middleware.
	h := auth.RequireBearerToken(tv, nil)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if auth.TokenInfoFromContext(r.Context()).UserID != "alice" {
			t.Error("auth.TokenInfoFromContext has no UserID alice")
		}
	}))
	for tok, want := range map[string]int{"read": 200, "bad": 401, "down": 500} {
		w := httptest.NewRecorder()
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.Header.Set("Authorization", "Bearer "+tok)
		h.ServeHTTP(w, r)
		if w.Code != want {
			t.Errorf("auth.RequireBearerToken(TokenVerifier) with %q = %d, want %d", tok, w.Code, want)
		}
	}
}

// notesServer is a stateless SDK server with a read and a write tool,
// counting write executions.
func notesServer(writes *atomic.Int64, seen *atomic.Pointer[auth.TokenInfo]) http.Handler {
	s := mcp.NewServer(&mcp.Implementation{Name: "t", Version: "1"}, nil)
	type in struct {
		Title string `json:"title,omitempty"`
	}
	mcp.AddTool(s, &mcp.Tool{Name: "list_notes"}, func(ctx context.Context, req *mcp.CallToolRequest, _ in) (*mcp.CallToolResult, any, error) {
		if seen != nil {
			seen.Store(req.Extra.TokenInfo)
		}
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "ok"}}}, nil, nil
	})
	mcp.AddTool(s, &mcp.Tool{Name: "add_note"}, func(ctx context.Context, req *mcp.CallToolRequest, _ in) (*mcp.CallToolResult, any, error) {
		writes.Add(1)
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "added"}}}, nil, nil
	})
	h := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return s }, &mcp.StreamableHTTPOptions{Stateless: true, JSONResponse: true})
	return Protect(h, verifier, &rs.Options{
		ResourceMetadataURL: "https://mcp.example.com/.well-known/oauth-protected-resource/mcp",
		Scopes:              []string{"notes:read"},
		ToolScopes:          map[string][]string{"add_note": {"notes:write"}},
		ListTools:           rs.ListGranted,
	})
}

func call(h http.Handler, token, body string) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	r := httptest.NewRequest(http.MethodPost, "https://mcp.example.com/mcp", strings.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set("Accept", "application/json, text/event-stream")
	r.Header.Set("Mcp-Protocol-Version", "2025-06-18")
	if token != "" {
		r.Header.Set("Authorization", "Bearer "+token)
	}
	h.ServeHTTP(w, r)
	return w
}

func TestProtect(t *testing.T) {
	var writes atomic.Int64
	var seen atomic.Pointer[auth.TokenInfo]
	h := notesServer(&writes, &seen)
	w := call(h, "read", `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"list_notes","arguments":{}}}`)
	if w.Code != http.StatusOK {
		t.Fatalf("list_notes with notes:read = %d %s", w.Code, w.Body)
	}
	if ti := seen.Load(); ti == nil || ti.UserID != "alice" || ti.Extra["client_id"] != "client-1" {
		t.Errorf("tool saw RequestExtra.TokenInfo %+v, want UserID alice, client_id client-1", ti)
	}
	w = call(h, "read", `{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"add_note","arguments":{}}}`)
	if w.Code != http.StatusForbidden || !strings.HasPrefix(w.Header().Get("WWW-Authenticate"), `Bearer error="insufficient_scope", scope="notes:read notes:write"`) {
		t.Errorf("add_note with notes:read = %d %q", w.Code, w.Header().Get("WWW-Authenticate"))
	}
	w = call(h, "write", `{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"add_note","arguments":{}}}`)
	if w.Code != http.StatusOK || writes.Load() != 1 {
		t.Errorf("add_note with notes:write = %d %s, writes %d", w.Code, w.Body, writes.Load())
	}
	w = call(h, "read", `{"jsonrpc":"2.0","id":4,"method":"tools/list"}`)
	if w.Code != http.StatusOK || strings.Contains(w.Body.String(), "add_note") || !strings.Contains(w.Body.String(), "list_notes") {
		t.Errorf("tools/list with notes:read = %d %s, want list_notes only", w.Code, w.Body)
	}
	if w := call(h, "bad", `{}`); w.Code != http.StatusUnauthorized || !strings.Contains(w.Header().Get("WWW-Authenticate"), `error="invalid_token", error_description="token expired"`) {
		t.Errorf("bad token = %d %q", w.Code, w.Header().Get("WWW-Authenticate"))
	}
	if w := call(h, "down", `{}`); w.Code != http.StatusServiceUnavailable {
		t.Errorf("verifier outage = %d, want 503", w.Code)
	}
}

// TestProtectStatelessJSON sends 2026-07-28 requests (no initialize, no
// session; the revision, client and capabilities in each request's _meta)
// to a stateless SDK server answering with JSON: the tools list is
// filtered and marked cacheScope "private" (RS-18), and a permitted call
// runs. (The demo's tests cover event-stream answers.)
func TestProtectStatelessJSON(t *testing.T) {
	var writes atomic.Int64
	h := notesServer(&writes, nil)
	post := func(method, name, params string) *httptest.ResponseRecorder {
		w := httptest.NewRecorder()
		meta := `"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{},` +
			`"io.modelcontextprotocol/clientInfo":{"name":"raw","version":"1"}}`
		if params != "" {
			meta += "," + params
		}
		r := httptest.NewRequest(http.MethodPost, "https://mcp.example.com/mcp",
			strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"`+method+`","params":{`+meta+`}}`))
		r.Header.Set("Content-Type", "application/json")
		r.Header.Set("Accept", "application/json, text/event-stream")
		r.Header.Set("Authorization", "Bearer read")
		r.Header.Set("Mcp-Protocol-Version", "2026-07-28")
		r.Header.Set("Mcp-Method", method)
		if name != "" {
			r.Header.Set("Mcp-Name", name)
		}
		h.ServeHTTP(w, r)
		return w
	}
	w := post("tools/list", "", "")
	body := w.Body.String()
	if w.Code != http.StatusOK || !strings.HasPrefix(w.Header().Get("Content-Type"), "application/json") {
		t.Fatalf("tools/list = %d %s %s, want 200 JSON", w.Code, w.Header().Get("Content-Type"), body)
	}
	if strings.Contains(body, "add_note") || !strings.Contains(body, `"list_notes"`) || !strings.Contains(body, `"cacheScope":"private"`) {
		t.Errorf("tools/list with notes:read = %s, want list_notes only, cacheScope private", body)
	}
	w = post("tools/call", "list_notes", `"name":"list_notes","arguments":{}`)
	if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), `"text":"ok"`) {
		t.Errorf("tools/call list_notes = %d %s, want its result", w.Code, w.Body)
	}
}

// FuzzProtectDifferential sends arbitrary bodies with a notes:read token
// through Protect to the real SDK server: whatever the body, the
// notes:write tool must never run. It is the check that the middleware and
// the SDK read tools/call the same way.
func FuzzProtectDifferential(f *testing.F) {
	for _, s := range []string{
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"add_note","arguments":{}}}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"list_notes","Name":"add_note"}}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"Name":"add_note"}}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"n\u0061me":"add_note"}}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"add\u005fnote"}}`,
		`{"jsonrpc":"2.0","id":1,"method":"ping","method":"tools/call","params":{"name":"add_note"}}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"list_notes"}} {"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"add_note"}}`,
		`[{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"list_notes"}},{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"add_note"}}]`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"list_notes"},"params":{"name":"add_note"}}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"add_note\u0000"}}`,
		"\xef\xbb\xbf" + `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"add_note"}}`,
	} {
		f.Add([]byte(s))
	}
	var writes atomic.Int64
	h := notesServer(&writes, nil)
	f.Fuzz(func(t *testing.T, body []byte) {
		before := writes.Load()
		w := call(h, "read", string(body))
		if writes.Load() != before {
			t.Fatalf("add_note ran with a notes:read token for body %q (status %d)", body, w.Code)
		}
	})
}

// TestProtectResumedStream: an SDK server with an event store replays a
// POST's events on a GET with Last-Event-ID. The replayed tools/list
// response is filtered as the original was (RS-18), cacheScope included.
func TestProtectResumedStream(t *testing.T) {
	s := mcp.NewServer(&mcp.Implementation{Name: "t", Version: "1"}, nil)
	type in struct{}
	ok := func(context.Context, *mcp.CallToolRequest, in) (*mcp.CallToolResult, any, error) {
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "ok"}}}, nil, nil
	}
	mcp.AddTool(s, &mcp.Tool{Name: "list_notes"}, ok)
	mcp.AddTool(s, &mcp.Tool{Name: "add_note"}, ok)
	h := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return s },
		&mcp.StreamableHTTPOptions{EventStore: mcp.NewMemoryEventStore(nil)})
	srv := httptest.NewServer(Protect(h, verifier, &rs.Options{
		Scopes:       []string{"notes:read"},
		ToolScopes:   map[string][]string{"add_note": {"notes:write"}},
		ListTools:    rs.ListGranted,
		AllowedHosts: []string{"*"},
	}))
	defer srv.Close()

	c := &mcphttptest.Client{URL: srv.URL, Token: "read"}
	c.Initialize(t)
	_, first := c.Do(t, http.MethodPost, `{"jsonrpc":"2.0","id":2,"method":"tools/list"}`)
	if !strings.Contains(first, "list_notes") || strings.Contains(first, "add_note") {
		t.Fatalf("tools/list = %s, want list_notes only", first)
	}
	// Resume from the stream's first event, before the response.
	from := mcphttptest.FirstEventID(first)
	if from == "" {
		t.Fatalf("the tools/list stream has no event ids: %s", first)
	}
	resp, replay := c.Resume(t, from)
	if resp.StatusCode != http.StatusOK || !strings.Contains(replay, "list_notes") {
		t.Fatalf("GET Last-Event-ID %s = %d %s, want the replayed tools/list", from, resp.StatusCode, replay)
	}
	if strings.Contains(replay, "add_note") || strings.Contains(replay, `"cacheScope":"public"`) {
		t.Errorf("the replayed tools/list lists add_note to a notes:read token, or may be cached for everyone: %s", replay)
	}
}
