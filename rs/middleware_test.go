package rs

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse-mcp/gatehouse/internal/mcpauthz"
	"github.com/google/go-cmp/cmp"
)

// fakeMCP is a stand-in MCP server: it answers tools/list with four tools
// and counts tools/call executions per tool. With sse set it answers in
// server-sent events.
type fakeMCP struct {
	sse   bool
	calls sync.Map // tool name → *atomic.Int64
	total atomic.Int64
	info  atomic.Pointer[TokenInfo] // from the last request's context
}

var fakeTools = []string{"list_notes", "read_note", "add_note", "delete_note"}

func (f *fakeMCP) executions() int64 { return f.total.Load() }

func (f *fakeMCP) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.info.Store(TokenInfoFromContext(r.Context()))
	if r.Method != http.MethodPost {
		w.WriteHeader(http.StatusMethodNotAllowed)
		return
	}
	body, _ := io.ReadAll(r.Body)
	var batch []json.RawMessage
	isBatch := json.Unmarshal(body, &batch) == nil
	if !isBatch {
		batch = []json.RawMessage{body}
	}
	var out []any
	for _, raw := range batch {
		var msg struct {
			ID     json.RawMessage `json:"id"`
			Method string          `json:"method"`
			Params struct {
				Name string `json:"name"`
			} `json:"params"`
		}
		if err := json.Unmarshal(raw, &msg); err != nil {
			http.Error(w, "bad json", http.StatusBadRequest)
			return
		}
		var result any
		switch msg.Method {
		case "tools/list":
			var tools []map[string]any
			for _, t := range fakeTools {
				tools = append(tools, map[string]any{"name": t, "inputSchema": map[string]any{"type": "object"}})
			}
			result = map[string]any{"tools": tools}
		case "tools/call":
			n, _ := f.calls.LoadOrStore(msg.Params.Name, new(atomic.Int64))
			n.(*atomic.Int64).Add(1)
			f.total.Add(1)
			result = map[string]any{"content": []any{map[string]any{"type": "text", "text": "ran " + msg.Params.Name}}}
		default:
			result = map[string]any{}
		}
		if msg.ID != nil {
			out = append(out, map[string]any{"jsonrpc": "2.0", "id": msg.ID, "result": result})
		}
	}
	var payload any = out
	if !isBatch && len(out) == 1 {
		payload = out[0]
	}
	b, _ := json.Marshal(payload)
	if f.sse {
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(http.StatusOK)
		fmt.Fprintf(w, "event: message\nid: 1\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{}}\n\n")
		w.(http.Flusher).Flush()
		fmt.Fprintf(w, "event: message\nid: 2\ndata: %s\n\n", b)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(b)
}

// testOptions are the demo's options: notes:read for everything,
// notes:write for the tools that change notes.
func testOptions() *Options {
	return &Options{
		ResourceMetadataURL: testMetadataURL,
		Scopes:              []string{"notes:read"},
		ToolScopes: map[string][]string{
			"list_notes":  {"notes:read"},
			"read_note":   {"notes:read"},
			"add_note":    {"notes:write"},
			"delete_note": {"notes:write"},
		},
		ListTools: ListGranted,
		// httptest servers listen on 127.0.0.1:<random>, not on the
		// metadata URL's host; the Host guard has its own test.
		AllowedHosts: []string{"*"},
	}
}

// TestRequireBearerHost: the DNS-rebinding guard (RS-17). A rebinding page
// sets both Host and Origin to its own name, so Origin alone cannot tell;
// the Host must be one the resource answers to, by default the metadata
// URL's host.
func TestRequireBearerHost(t *testing.T) {
	a := newTestAS(t)
	v := newVerifier(t, a, newClock(), nil)
	mcp := &fakeMCP{}
	opts := testOptions()
	opts.AllowedHosts = nil // default: mcp.example.com, from ResourceMetadataURL
	var reached atomic.Int64
	h := RequireBearer(v, opts)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reached.Add(1)
		mcp.ServeHTTP(w, r)
	}))
	tok := a.token(nil)
	for _, tt := range []struct {
		host, origin string
		want         int
	}{
		{"mcp.example.com", "", http.StatusOK},
		{"MCP.example.com", "https://mcp.example.com", http.StatusOK},
		{"evil.example.com", "http://evil.example.com", http.StatusForbidden},
		{"evil.example.com", "", http.StatusForbidden},
		{"127.0.0.1:8081", "", http.StatusForbidden},
	} {
		req := httptest.NewRequest(http.MethodPost, "http://"+tt.host+"/mcp", strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"ping"}`))
		req.Host = tt.host
		if tt.origin != "" {
			req.Header.Set("Origin", tt.origin)
		}
		req.Header.Set("Authorization", "Bearer "+tok)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != tt.want {
			t.Errorf("Host %q Origin %q = %d %s, want %d", tt.host, tt.origin, rec.Code, rec.Body, tt.want)
		}
	}
	if n := reached.Load(); n != 2 {
		t.Errorf("the MCP handler ran %d times, want 2 (only the allowed hosts)", n)
	}
}

// rpcBody is a tools/call request for tool.
func rpcBody(id int, tool string) string {
	return fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":%q,"arguments":{}}}`, id, tool)
}

const challenge401 = `Bearer resource_metadata="` + testMetadataURL + `", scope="notes:read"`

// TestRequireBearerRefuses sends bad or missing tokens with a tools/call:
// every one is a 401 with the right challenge, and the tool never runs.
func TestRequireBearerRefuses(t *testing.T) {
	a := newTestAS(t)
	c := newClock()
	v := newVerifier(t, a, c, nil)
	k := a.keys[0]
	mcp := &fakeMCP{}
	srv := httptest.NewServer(RequireBearer(v, testOptions())(mcp))
	defer srv.Close()
	valid := a.token(nil)

	invalidToken := func(desc string) string {
		return challenge401 + `, error="invalid_token", error_description="` + desc + `"`
	}
	tests := []struct {
		name       string
		setup      func(r *http.Request)
		wantHeader string
		wantBody   string
	}{
		{"no token", func(r *http.Request) {}, challenge401, `{"error":"invalid_token","error_description":"no access token"}`},
		{"token in the query string", func(r *http.Request) {
			r.URL.RawQuery = url.Values{"access_token": {valid}}.Encode()
		}, challenge401, `{"error":"invalid_token","error_description":"no access token"}`},
		{"basic auth", func(r *http.Request) { r.SetBasicAuth("u", "p") }, challenge401, `{"error":"invalid_token","error_description":"no access token"}`},
		{"expired", bearer(a.token(func(m map[string]any) { m["exp"] = t0.Add(-time.Second).Unix() })), invalidToken("token expired"), ""},
		{"not yet valid", bearer(a.token(func(m map[string]any) { m["nbf"] = t0.Add(time.Minute).Unix() })), invalidToken("token not yet valid"), ""},
		{"wrong issuer", bearer(a.token(func(m map[string]any) { m["iss"] = "https://other-as.example.com" })), invalidToken("token from another issuer"), ""},
		{"another resource of the same AS", bearer(a.token(func(m map[string]any) { m["aud"] = "https://mcp.example.com/other" })), invalidToken("token is for another resource"), ""},
		{"alg none", bearer(unsigned(map[string]any{"alg": "none", "kid": k.kid, "typ": "at+jwt"}, a.claims())), invalidToken("signing algorithm not allowed"), ""},
		{"HS256 with the public key", bearer(signHS256(map[string]any{"alg": "HS256", "kid": k.kid, "typ": "at+jwt"}, a.claims(), publicPEM(t, k))), invalidToken("signing algorithm not allowed"), ""},
		{"unknown kid", bearer(sign(t, map[string]any{"alg": "ES256", "kid": "unknown", "typ": "at+jwt"}, a.claims(), k)), invalidToken("unknown signing key"), ""},
		{"tampered payload", bearer(tamperPayload(valid, func() map[string]any {
			m := a.claims()
			m["scope"] = "notes:read notes:write"
			return m
		}())), invalidToken("invalid signature"), ""},
		{"oversized token", bearer(strings.Repeat("a", DefaultMaxTokenBytes+1)), invalidToken("token too large"), ""},
		{"not a b64token", bearer("abc def"), invalidToken("malformed token"), ""},
		{"garbage", bearer("abc"), invalidToken("malformed token"), ""},
		// Issue 11 F1: a token without a user (client_credentials: sub is
		// the client id, RFC 9068 §2.2) where the resource accepts users
		// only, the default.
		{"machine token", bearer(a.token(func(m map[string]any) { m["sub"] = m["client_id"] })),
			invalidToken("this resource does not accept tokens issued without a user (client_credentials); sign in as a user"), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodPost, srv.URL, strings.NewReader(rpcBody(1, "list_notes")))
			req.Header.Set("Content-Type", "application/json")
			tt.setup(req)
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusUnauthorized {
				t.Errorf("status = %d, want 401 (body %s)", resp.StatusCode, body)
			}
			if got := resp.Header.Get("WWW-Authenticate"); got != tt.wantHeader {
				t.Errorf("WWW-Authenticate = %s\nwant                %s", got, tt.wantHeader)
			}
			if tt.wantBody != "" && strings.TrimSpace(string(body)) != tt.wantBody {
				t.Errorf("body = %s, want %s", body, tt.wantBody)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type = %q, want application/json", ct)
			}
		})
	}
	if n := mcp.executions(); n != 0 {
		t.Errorf("tool executions = %d, want 0", n)
	}
}

// TestRequireBearerMachineTokens: a machine token (sub = client_id) is
// refused unless the resource accepts client credentials, and then reaches
// the handler marked as one; a user's token is never taken for one.
func TestRequireBearerMachineTokens(t *testing.T) {
	a := newTestAS(t)
	v := newVerifier(t, a, newClock(), nil)
	machine := a.token(func(m map[string]any) { m["sub"] = "svc"; m["client_id"] = "svc" })
	user := a.token(nil)
	for _, tt := range []struct {
		name   string
		accept bool
		tok    string
		want   int
		isMach bool
	}{
		{"machine, not accepted", false, machine, http.StatusUnauthorized, false},
		{"machine, accepted", true, machine, http.StatusOK, true},
		{"user, not accepted", false, user, http.StatusOK, false},
		{"user, accepted", true, user, http.StatusOK, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			mcp := &fakeMCP{}
			opts := testOptions()
			opts.AcceptClientCredentials = tt.accept
			srv := httptest.NewServer(RequireBearer(v, opts)(mcp))
			defer srv.Close()
			status, _, body := post(t, srv, tt.tok, rpcBody(1, "list_notes"))
			if status != tt.want {
				t.Fatalf("status = %d %s, want %d", status, body, tt.want)
			}
			if got := mcp.info.Load().Machine(); status == http.StatusOK && got != tt.isMach {
				t.Errorf("TokenInfo.Machine() = %v, want %v", got, tt.isMach)
			}
			if want := int64(0); status != http.StatusOK && mcp.executions() != want {
				t.Errorf("tool executions = %d, want 0", mcp.executions())
			}
		})
	}
	if (*TokenInfo)(nil).Machine() || (&TokenInfo{Subject: "x"}).Machine() {
		t.Error("a nil TokenInfo or one without client_id counts as a machine token")
	}
}

func bearer(tok string) func(r *http.Request) {
	return func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+tok) }
}

// post sends body with token and returns status, header and body.
func post(t *testing.T, srv *httptest.Server, tok, body string) (int, http.Header, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, srv.URL, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

func TestRequireBearerStepUp(t *testing.T) {
	a := newTestAS(t)
	v := newVerifier(t, a, newClock(), nil)
	mcp := &fakeMCP{}
	srv := httptest.NewServer(RequireBearer(v, testOptions())(mcp))
	defer srv.Close()
	read := a.token(nil)
	both := a.token(func(m map[string]any) { m["scope"] = "notes:read notes:write" })
	writeOnly := a.token(func(m map[string]any) { m["scope"] = "notes:write" })

	// notes:read calls list_notes.
	if code, _, body := post(t, srv, read, rpcBody(1, "list_notes")); code != http.StatusOK {
		t.Fatalf("tools/call list_notes with notes:read = %d %s, want 200", code, body)
	}
	// notes:read calls add_note: 403 step-up, before the tool runs.
	code, h, body := post(t, srv, read, rpcBody(2, "add_note"))
	if code != http.StatusForbidden {
		t.Errorf("tools/call add_note with notes:read: status %d, want 403", code)
	}
	want := `Bearer error="insufficient_scope", scope="notes:read notes:write", resource_metadata="` + testMetadataURL + `", error_description="tool add_note needs scope notes:read notes:write"`
	if got := h.Get("WWW-Authenticate"); got != want {
		t.Errorf("WWW-Authenticate = %s\nwant                %s", got, want)
	}
	var rpc struct {
		JSONRPC string `json:"jsonrpc"`
		ID      int    `json:"id"`
		Error   struct {
			Code int               `json:"code"`
			Data map[string]string `json:"data"`
		} `json:"error"`
	}
	if err := json.Unmarshal([]byte(body), &rpc); err != nil || rpc.ID != 2 || rpc.Error.Code != mcpauthz.CodeForbidden || rpc.Error.Data["error"] != "insufficient_scope" {
		t.Errorf("403 body = %s (%v), want a JSON-RPC error for id 2 with data.error insufficient_scope", body, err)
	}
	if n, ok := mcp.calls.Load("add_note"); ok && n.(*atomic.Int64).Load() != 0 {
		t.Errorf("add_note ran %d times, want 0", n.(*atomic.Int64).Load())
	}
	// With both scopes it runs.
	if code, _, body := post(t, srv, both, rpcBody(3, "add_note")); code != http.StatusOK {
		t.Errorf("tools/call add_note with both scopes = %d %s, want 200", code, body)
	}
	// notes:write alone lacks the baseline: 403 on any request.
	code, h, _ = post(t, srv, writeOnly, `{"jsonrpc":"2.0","id":4,"method":"initialize","params":{}}`)
	wantBaseline := `Bearer error="insufficient_scope", scope="notes:read", resource_metadata="` + testMetadataURL + `", error_description="initialize needs scope notes:read"`
	if code != http.StatusForbidden || h.Get("WWW-Authenticate") != wantBaseline {
		t.Errorf("initialize with notes:write only = %d %s, want 403 %s", code, h.Get("WWW-Authenticate"), wantBaseline)
	}
	// A batch asks for every scope of every message in one challenge.
	batch := "[" + rpcBody(5, "list_notes") + "," + rpcBody(6, "delete_note") + "]"
	code, h, body = post(t, srv, read, batch)
	if code != http.StatusForbidden || !strings.Contains(h.Get("WWW-Authenticate"), `scope="notes:read notes:write"`) {
		t.Errorf("batch with delete_note = %d %s", code, h.Get("WWW-Authenticate"))
	}
	if strings.TrimSpace(body) != `{"error":"insufficient_scope","error_description":"tool delete_note needs scope notes:read notes:write"}` {
		t.Errorf("batch 403 body = %s", body)
	}
	if got, want := mcp.executions(), int64(2); got != want {
		t.Errorf("tool executions = %d, want %d (list_notes and add_note with both scopes)", got, want)
	}
}

func TestRequireBearerImpliedScopes(t *testing.T) {
	a := newTestAS(t)
	v := newVerifier(t, a, newClock(), nil)
	mcp := &fakeMCP{}
	opts := testOptions()
	opts.ImpliedScopes = map[string][]string{"notes:admin": {"notes:write"}, "notes:write": {"notes:read"}}
	srv := httptest.NewServer(RequireBearer(v, opts)(mcp))
	defer srv.Close()
	admin := a.token(func(m map[string]any) { m["scope"] = "notes:admin" })
	for i, tool := range fakeTools {
		if code, _, body := post(t, srv, admin, rpcBody(i, tool)); code != http.StatusOK {
			t.Errorf("tools/call %s with notes:admin (implies write, read) = %d %s, want 200", tool, code, body)
		}
	}
	read := a.token(nil)
	if code, _, _ := post(t, srv, read, rpcBody(9, "add_note")); code != http.StatusForbidden {
		t.Errorf("tools/call add_note with notes:read = %d, want 403 (read implies nothing)", code)
	}
}

func TestRequireBearerFilterToolsList(t *testing.T) {
	for _, sse := range []bool{false, true} {
		t.Run(fmt.Sprintf("sse=%v", sse), func(t *testing.T) {
			a := newTestAS(t)
			v := newVerifier(t, a, newClock(), nil)
			mcp := &fakeMCP{sse: sse}
			srv := httptest.NewServer(RequireBearer(v, testOptions())(mcp))
			defer srv.Close()
			list := `{"jsonrpc":"2.0","id":"list-1","method":"tools/list","params":{}}`
			tests := []struct {
				scope string
				want  []string
			}{
				{"notes:read", []string{"list_notes", "read_note"}},
				{"notes:read notes:write", fakeTools},
			}
			for _, tt := range tests {
				tok := a.token(func(m map[string]any) { m["scope"] = tt.scope })
				code, _, body := post(t, srv, tok, list)
				if code != http.StatusOK {
					t.Fatalf("tools/list = %d %s", code, body)
				}
				got := toolNames(t, body, sse)
				if diff := cmp.Diff(tt.want, got); diff != "" {
					t.Errorf("tools/list with scope %q (-want +got):\n%s", tt.scope, diff)
				}
			}
			// A batch with tools/list is filtered too.
			tok := a.token(nil)
			code, _, body := post(t, srv, tok, `[`+list+`,{"jsonrpc":"2.0","id":2,"method":"ping"}]`)
			if code != http.StatusOK || strings.Contains(body, "add_note") || !strings.Contains(body, "list_notes") {
				t.Errorf("batched tools/list = %d %s, want list_notes and no add_note", code, body)
			}
		})
	}
}

// TestRequireBearerListTools: which tools a notes:read token sees in each
// ListMode, and that a tool listed for it (grantable, the default)
// answers its call with the step-up challenge naming every scope it
// needs, before the server sees the call.
func TestRequireBearerListTools(t *testing.T) {
	granted := []string{"list_notes", "read_note"}
	for _, tt := range []struct {
		name   string
		list   ListMode
		legacy bool // FilterToolsList
		want   []string
	}{
		{"default", "", false, fakeTools},
		{"grantable", ListGrantable, false, fakeTools},
		{"granted", ListGranted, false, granted},
		{"all", ListAll, false, fakeTools},
		{"FilterToolsList", "", true, granted},
		{"ListTools wins over FilterToolsList", ListGrantable, true, fakeTools},
	} {
		t.Run(tt.name, func(t *testing.T) {
			a := newTestAS(t)
			v := newVerifier(t, a, newClock(), nil)
			mcp := &fakeMCP{}
			opts := testOptions()
			opts.ListTools, opts.FilterToolsList = tt.list, tt.legacy
			srv := httptest.NewServer(RequireBearer(v, opts)(mcp))
			defer srv.Close()
			read := a.token(func(m map[string]any) { m["scope"] = "notes:read" })
			code, _, body := post(t, srv, read, `{"jsonrpc":"2.0","id":"list-1","method":"tools/list","params":{}}`)
			if code != http.StatusOK {
				t.Fatalf("tools/list = %d %s", code, body)
			}
			if diff := cmp.Diff(tt.want, toolNames(t, body, false)); diff != "" {
				t.Errorf("tools/list with notes:read (-want +got):\n%s", diff)
			}
			code, h, body := post(t, srv, read, rpcBody(3, "add_note"))
			want := `Bearer error="insufficient_scope", scope="notes:read notes:write", resource_metadata="` + testMetadataURL +
				`", error_description="tool add_note needs scope notes:read notes:write"`
			if code != http.StatusForbidden || h.Get("WWW-Authenticate") != want {
				t.Errorf("tools/call add_note with notes:read = %d %s\nwant 403 %s", code, h.Get("WWW-Authenticate"), want)
			}
			if !strings.Contains(body, `"id":3`) || !strings.Contains(body, `"scope":"notes:read notes:write"`) {
				t.Errorf("403 body = %s, want the JSON-RPC error for id 3 naming both scopes", body)
			}
			if mcp.executions() != 0 {
				t.Errorf("a tool ran with notes:read")
			}
			// The 401 challenge still asks for the baseline only.
			if code, h, _ := post(t, srv, "", rpcBody(4, "add_note")); code != http.StatusUnauthorized || h.Get("WWW-Authenticate") != challenge401 {
				t.Errorf("tools/call without a token = %d %s, want 401 %s", code, h.Get("WWW-Authenticate"), challenge401)
			}
		})
	}
}

func TestOptionsAllScopes(t *testing.T) {
	for _, tt := range []struct {
		name string
		opts Options
		want []string
	}{
		{"none", Options{}, nil},
		{"baseline first", Options{Scopes: []string{"notes:read"}, ToolScopes: map[string][]string{"add_note": {"notes:write"}, "read_note": {"notes:read"}}}, []string{"notes:read", "notes:write"}},
		{"every source", Options{
			Scopes:        []string{"z"},
			ToolScopes:    map[string][]string{"t": {"b"}},
			MethodScopes:  map[string][]string{"resources/read": {"c"}},
			ImpliedScopes: map[string][]string{"admin": {"b", "a"}},
		}, []string{"z", "a", "admin", "b", "c"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, tt.opts.AllScopes()); diff != "" {
				t.Errorf("%+v.AllScopes() (-want +got):\n%s", tt.opts, diff)
			}
		})
	}
}

// toolNames returns the tool names of a tools/list response (JSON or SSE).
func toolNames(t *testing.T, body string, sse bool) []string {
	t.Helper()
	data := body
	if sse {
		data = ""
		for _, ev := range strings.Split(body, "\n\n") {
			if strings.Contains(ev, `"tools"`) {
				for _, l := range strings.Split(ev, "\n") {
					if v, ok := strings.CutPrefix(l, "data: "); ok {
						data = v
					}
				}
			}
		}
	}
	var resp struct {
		ID     string `json:"id"`
		Result struct {
			Tools []struct {
				Name        string         `json:"name"`
				InputSchema map[string]any `json:"inputSchema"`
			} `json:"tools"`
		} `json:"result"`
	}
	if err := json.Unmarshal([]byte(data), &resp); err != nil {
		t.Fatalf("tools/list response %q: %v", body, err)
	}
	if resp.ID != "list-1" {
		t.Errorf("tools/list response id = %q, want list-1", resp.ID)
	}
	var names []string
	for _, tool := range resp.Result.Tools {
		if tool.InputSchema == nil {
			t.Errorf("tool %s lost its inputSchema in filtering", tool.Name)
		}
		names = append(names, tool.Name)
	}
	return names
}

func TestRequireBearerContext(t *testing.T) {
	a := newTestAS(t)
	v := newVerifier(t, a, newClock(), nil)
	mcp := &fakeMCP{}
	srv := httptest.NewServer(RequireBearer(v, nil)(mcp))
	defer srv.Close()
	if code, _, body := post(t, srv, a.token(nil), `{"jsonrpc":"2.0","id":1,"method":"ping"}`); code != http.StatusOK {
		t.Fatalf("ping = %d %s", code, body)
	}
	got := mcp.info.Load()
	if got == nil || got.Subject != "user-1" || got.ClientID != "client-1" || !got.HasScope("notes:read") || !got.Expiry.Equal(t0.Add(5*time.Minute)) {
		t.Errorf("TokenInfoFromContext = %+v, want subject user-1, client client-1, scope notes:read, expiry t0+5m", got)
	}
	// With nil options no challenge names a scope or metadata URL.
	code, h, _ := post(t, srv, "", "{}")
	if code != http.StatusUnauthorized || h.Get("WWW-Authenticate") != "Bearer" {
		t.Errorf("no token with nil options = %d %q, want 401 \"Bearer\"", code, h.Get("WWW-Authenticate"))
	}
}

func TestRequireBearerBodies(t *testing.T) {
	a := newTestAS(t)
	v := newVerifier(t, a, newClock(), nil)
	mcp := &fakeMCP{}
	opts := testOptions()
	opts.MaxBodyBytes = 1024
	srv := httptest.NewServer(RequireBearer(v, opts)(mcp))
	defer srv.Close()
	tok := a.token(nil)
	tests := []struct {
		name string
		body string
		want int
	}{
		{"valid call", rpcBody(1, "read_note"), http.StatusOK},
		{"too large", `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"read_note","arguments":{"x":"` + strings.Repeat("x", 1024) + `"}}}`, http.StatusRequestEntityTooLarge},
		{"not JSON", `{"jsonrpc":`, http.StatusBadRequest},
		{"trailing value", rpcBody(1, "read_note") + rpcBody(2, "add_note"), http.StatusBadRequest},
		{"duplicate name", `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"add_note","name":"read_note"}}`, http.StatusBadRequest},
		{"duplicate method", `{"jsonrpc":"2.0","id":1,"method":"tools/call","method":"ping","params":{"name":"add_note"}}`, http.StatusBadRequest},
		{"duplicate params", `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"add_note"},"params":{"name":"read_note"}}`, http.StatusBadRequest},
		{"name not a string", `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":["add_note"]}}`, http.StatusBadRequest},
		{"params an array", `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":["add_note"]}`, http.StatusBadRequest},
		{"case variant Name", `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"read_note","Name":"add_note"}}`, http.StatusBadRequest},
		{"long s in params", `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"read_note"},"paramſ":{"name":"add_note"}}`, http.StatusBadRequest},
		{"case variant Method", `{"jsonrpc":"2.0","id":1,"method":"ping","Method":"tools/call","params":{"name":"add_note"}}`, http.StatusBadRequest},
		{"escaped name key", `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"n\u0061me":"add_note"}}`, http.StatusForbidden},
		{"escaped method", `{"jsonrpc":"2.0","id":1,"method":"tools\/call","params":{"name":"add_note"}}`, http.StatusForbidden},
		{"empty batch", `[]`, http.StatusBadRequest},
		{"batch reusing an id", `[` + rpcBody(7, "read_note") + `,{"jsonrpc":"2.0","id":7.0,"method":"tools/list"}]`, http.StatusBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, body := post(t, srv, tok, tt.body)
			if code != tt.want {
				t.Errorf("POST %.60s = %d %s, want %d", tt.body, code, body, tt.want)
			}
		})
	}
	if n, ok := mcp.calls.Load("add_note"); ok {
		t.Errorf("add_note ran %d times, want 0", n.(*atomic.Int64).Load())
	}
}

// TestRequireBearerBodyTooLarge: a body longer than MaxBodyBytes gets the
// gateway's 413, a JSON-RPC error response with id null naming the limit
// (MCP transport: the body of a refusal "MAY comprise a JSON-RPC error
// response that has no id"), and never reaches the server.
func TestRequireBearerBodyTooLarge(t *testing.T) {
	a := newTestAS(t)
	v := newVerifier(t, a, newClock(), nil)
	mcp := &fakeMCP{}
	opts := testOptions()
	opts.MaxBodyBytes = 64
	srv := httptest.NewServer(RequireBearer(v, opts)(mcp))
	defer srv.Close()
	body := `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"read_note","arguments":{"x":"` + strings.Repeat("x", 64) + `"}}}`
	code, h, got := post(t, srv, a.token(nil), body)
	const want = `{"jsonrpc":"2.0","id":null,"error":{"code":-32600,"message":"request body exceeds 64 bytes"}}` + "\n"
	if code != http.StatusRequestEntityTooLarge || got != want || h.Get("Content-Type") != "application/json" {
		t.Errorf("POST of %d bytes = %d %q %s, want 413 application/json %s", len(body), code, h.Get("Content-Type"), got, want)
	}
	if n, ok := mcp.calls.Load("read_note"); ok {
		t.Errorf("read_note ran %d times, want 0", n.(*atomic.Int64).Load())
	}
}

// TestRequireBearerBatchLimit (issue 20 F1): a batch of more than
// MaxBatchMessages messages is refused with 400 and an Invalid Request
// error naming the limit, and none of its calls runs; one at the limit
// goes through.
func TestRequireBearerBatchLimit(t *testing.T) {
	a := newTestAS(t)
	v := newVerifier(t, a, newClock(), nil)
	mcp := &fakeMCP{}
	opts := testOptions()
	opts.MaxBatchMessages = 3
	srv := httptest.NewServer(RequireBearer(v, opts)(mcp))
	defer srv.Close()
	tok := a.token(nil)
	batch := func(n int) string {
		var msgs []string
		for i := range n {
			msgs = append(msgs, rpcBody(i+1, "read_note"))
		}
		return "[" + strings.Join(msgs, ",") + "]"
	}
	code, _, body := post(t, srv, tok, batch(4))
	want := `{"jsonrpc":"2.0","id":null,"error":{"code":-32600,"message":"Invalid Request: the batch has 4 messages; at most 3 are allowed in one batch (max_batch_messages)","data":{"max_batch_messages":3}}}`
	if code != http.StatusBadRequest || strings.TrimSpace(body) != want {
		t.Errorf("POST a batch of 4 = %d %s, want 400 %s", code, body, want)
	}
	if n := mcp.executions(); n != 0 {
		t.Errorf("after a refused batch of 4 the server ran %d calls, want 0", n)
	}
	if code, _, body := post(t, srv, tok, batch(3)); code != http.StatusOK {
		t.Errorf("POST a batch of 3 = %d %s, want 200", code, body)
	}
	if n := mcp.executions(); n != 3 {
		t.Errorf("after a batch of 3 the server ran %d calls, want 3", n)
	}
}

func TestRequireBearerCORS(t *testing.T) {
	a := newTestAS(t)
	v := newVerifier(t, a, newClock(), nil)
	opts := testOptions()
	opts.AllowedOrigins = []string{"http://localhost:6274"}
	srv := httptest.NewServer(RequireBearer(v, opts)(&fakeMCP{}))
	defer srv.Close()
	do := func(method, origin string, hdr map[string]string) *http.Response {
		req, _ := http.NewRequest(method, srv.URL, strings.NewReader("{}"))
		req.Header.Set("Origin", origin)
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	// Preflight from the allowed origin: 204 without a token.
	resp := do(http.MethodOptions, "http://localhost:6274", map[string]string{"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization"})
	if resp.StatusCode != http.StatusNoContent || resp.Header.Get("Access-Control-Allow-Origin") != "http://localhost:6274" ||
		!strings.Contains(resp.Header.Get("Access-Control-Allow-Headers"), "Authorization") {
		t.Errorf("preflight = %d %v", resp.StatusCode, resp.Header)
	}
	// A 401 to the allowed origin exposes WWW-Authenticate.
	resp = do(http.MethodPost, "http://localhost:6274", nil)
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(resp.Header.Get("Access-Control-Expose-Headers"), "WWW-Authenticate") {
		t.Errorf("cross-origin 401 = %d, Access-Control-Expose-Headers %q", resp.StatusCode, resp.Header.Get("Access-Control-Expose-Headers"))
	}
	// Another origin is refused outright.
	resp = do(http.MethodPost, "https://evil.example.com", nil)
	if resp.StatusCode != http.StatusForbidden || resp.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("foreign origin = %d %v, want 403 without CORS headers", resp.StatusCode, resp.Header)
	}
	// The server's own origin is fine.
	resp = do(http.MethodPost, srv.URL, nil)
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("same origin = %d, want 401", resp.StatusCode)
	}
}

func TestRequireBearerMultipleAuthorization(t *testing.T) {
	a := newTestAS(t)
	v := newVerifier(t, a, newClock(), nil)
	srv := httptest.NewServer(RequireBearer(v, testOptions())(&fakeMCP{}))
	defer srv.Close()
	req, _ := http.NewRequest(http.MethodPost, srv.URL, strings.NewReader("{}"))
	req.Header.Add("Authorization", "Bearer "+a.token(nil))
	req.Header.Add("Authorization", "Bearer "+a.token(nil))
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("two Authorization headers = %d, want 400", resp.StatusCode)
	}
}

func TestRequireBearerUnavailable(t *testing.T) {
	a := newTestAS(t)
	down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "down", http.StatusBadGateway)
	}))
	defer down.Close()
	v, err := NewJWTVerifier(JWTOptions{Issuer: a.issuer, Resource: testResource, JWKSURL: down.URL, Now: newClock().Now})
	if err != nil {
		t.Fatal(err)
	}
	mcp := &fakeMCP{}
	srv := httptest.NewServer(RequireBearer(v, testOptions())(mcp))
	defer srv.Close()
	code, h, _ := post(t, srv, a.token(nil), rpcBody(1, "list_notes"))
	if code != http.StatusServiceUnavailable || h.Get("WWW-Authenticate") != "" {
		t.Errorf("JWKS down = %d %q, want 503 without a challenge", code, h.Get("WWW-Authenticate"))
	}
	if mcp.executions() != 0 {
		t.Error("a tool ran while the token could not be verified")
	}
}

func TestRequireBearerPanics(t *testing.T) {
	for name, f := range map[string]func(){
		"nil verifier":  func() { RequireBearer(nil, nil) },
		"bad scope":     func() { RequireBearer(VerifierFunc(nil), &Options{Scopes: []string{`a"b`}}) },
		"bad ListTools": func() { RequireBearer(VerifierFunc(nil), &Options{ListTools: "callable"}) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("RequireBearer with %s did not panic", name)
				}
			}()
			f()
		}()
	}
}

// TestRequireBearerLongToolName checks that a client-chosen tool name
// cannot blow up the challenge header.
func TestRequireBearerLongToolName(t *testing.T) {
	a := newTestAS(t)
	v := newVerifier(t, a, newClock(), nil)
	srv := httptest.NewServer(RequireBearer(v, testOptions())(&fakeMCP{}))
	defer srv.Close()
	writeOnly := a.token(func(m map[string]any) { m["scope"] = "notes:write" })
	code, h, body := post(t, srv, writeOnly, rpcBody(1, strings.Repeat("x\r\n\"", 5000)))
	if code != http.StatusForbidden {
		t.Fatalf("status = %d, want 403", code)
	}
	if got := h.Get("WWW-Authenticate"); len(got) > 400 || strings.ContainsAny(got, "\r\n") {
		t.Errorf("WWW-Authenticate is %d bytes: %q", len(got), got)
	}
	if len(body) > 1000 {
		t.Errorf("body is %d bytes", len(body))
	}
}

// TestRequireBearerMethodScopes checks MethodScopes: a method's scopes are
// needed on top of the baseline, and with a tool's scopes (the method's
// first) for tools/call; "*" in a ToolScopes key is part of the name.
func TestRequireBearerMethodScopes(t *testing.T) {
	a := newTestAS(t)
	v := newVerifier(t, a, newClock(), nil)
	opts := testOptions()
	opts.MethodScopes = map[string][]string{"resources/read": {"notes:files"}, "tools/call": {"notes:call"}}
	opts.ToolScopes = map[string][]string{"add_*": {"notes:write"}}
	srv := httptest.NewServer(RequireBearer(v, opts)(&fakeMCP{}))
	defer srv.Close()
	read := a.token(nil)
	for _, tt := range []struct {
		name, body, challenge string
	}{
		{"resources/read", `{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":"file:///a"}}`,
			`scope="notes:read notes:files", resource_metadata="` + testMetadataURL + `", error_description="resource file:///a needs scope notes:read notes:files"`},
		{"a tool without rule", rpcBody(2, "add_note"),
			`scope="notes:read notes:call", resource_metadata="` + testMetadataURL + `", error_description="tool add_note needs scope notes:read notes:call"`},
		{"the tool named add_*", rpcBody(3, "add_*"),
			`scope="notes:read notes:call notes:write", resource_metadata="` + testMetadataURL + `", error_description="tool add_* needs scope notes:read notes:call notes:write"`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			code, h, body := post(t, srv, read, tt.body)
			if want := `Bearer error="insufficient_scope", ` + tt.challenge; code != http.StatusForbidden || h.Get("WWW-Authenticate") != want {
				t.Errorf("POST %s with notes:read = %d %s %s, want 403 %s", tt.body, code, h.Get("WWW-Authenticate"), body, want)
			}
		})
	}
}

// TestRequireBearerHeaderMismatch (issue 13 item 2, SEP-2243): an
// Mcp-Method or Mcp-Name header that disagrees with the body, or one a
// 2026-07-28 request lacks, is answered 400 with a JSON-RPC HeaderMismatch
// error (-32020) for the request's id, before the scopes are checked and
// before the server runs anything; a matching request, and an older one
// without the headers, go through.
func TestRequireBearerHeaderMismatch(t *testing.T) {
	a := newTestAS(t)
	v := newVerifier(t, a, newClock(), nil)
	mcp := &fakeMCP{}
	srv := httptest.NewServer(RequireBearer(v, testOptions())(mcp))
	defer srv.Close()
	both := a.token(func(m map[string]any) { m["scope"] = "notes:read notes:write" })
	read := a.token(nil)
	const modern = "2026-07-28"
	for _, tt := range []struct {
		name    string
		token   string
		id      int
		tool    string   // called in the body
		headers []string // name, value pairs
		want    int      // status; 400 means HeaderMismatch
	}{
		{"Mcp-Name names another tool", both, 7, "add_note", []string{"Mcp-Protocol-Version", modern, "Mcp-Method", "tools/call", "Mcp-Name", "read_note"}, http.StatusBadRequest},
		{"Mcp-Method names another method", both, 8, "add_note", []string{"Mcp-Protocol-Version", modern, "Mcp-Method", "tools/list", "Mcp-Name", "add_note"}, http.StatusBadRequest},
		{"2026-07-28 without the headers", both, 9, "read_note", []string{"Mcp-Protocol-Version", modern}, http.StatusBadRequest},
		{"2026-07-28 without Mcp-Name", both, 10, "read_note", []string{"Mcp-Protocol-Version", modern, "Mcp-Method", "tools/call"}, http.StatusBadRequest},
		// The header check comes before the policy: a mismatch is not
		// answered with a step-up for the tool in the body.
		{"mismatch before the scopes", read, 11, "add_note", []string{"Mcp-Protocol-Version", modern, "Mcp-Method", "tools/call", "Mcp-Name", "read_note"}, http.StatusBadRequest},
		{"an older version's mismatch", both, 12, "add_note", []string{"Mcp-Protocol-Version", "2025-06-18", "Mcp-Name", "read_note"}, http.StatusBadRequest},
		{"2026-07-28 with matching headers", both, 13, "add_note", []string{"Mcp-Protocol-Version", modern, "Mcp-Method", "tools/call", "Mcp-Name", "add_note"}, http.StatusOK},
		{"spaces around a value are not part of it (RFC 9110 §5.5)", both, 14, "add_note", []string{"Mcp-Protocol-Version", modern, "Mcp-Method", "tools/call", "Mcp-Name", "  add_note  "}, http.StatusOK},
		{"an older version without the headers", both, 15, "add_note", []string{"Mcp-Protocol-Version", "2025-06-18"}, http.StatusOK},
		{"no version, no headers", both, 16, "add_note", nil, http.StatusOK},
	} {
		t.Run(tt.name, func(t *testing.T) {
			before := mcp.executions()
			req, _ := http.NewRequest(http.MethodPost, srv.URL, strings.NewReader(rpcBody(tt.id, tt.tool)))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Authorization", "Bearer "+tt.token)
			for i := 0; i+1 < len(tt.headers); i += 2 {
				req.Header.Set(tt.headers[i], tt.headers[i+1])
			}
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			var rpc mcpauthz.Error
			if err := json.Unmarshal(body, &rpc); err != nil {
				t.Fatalf("body %s: %v", body, err)
			}
			ran := mcp.executions() - before
			if tt.want == http.StatusOK {
				if resp.StatusCode != http.StatusOK || ran != 1 || rpc.Error.Code != 0 {
					t.Errorf("POST = %d %s, the tool ran %d times; want 200 and one run", resp.StatusCode, body, ran)
				}
				return
			}
			if resp.StatusCode != http.StatusBadRequest || rpc.Error.Code != mcpauthz.CodeHeaderMismatch || string(rpc.ID) != fmt.Sprint(tt.id) ||
				!strings.HasPrefix(rpc.Error.Message, "Header mismatch: ") || ran != 0 {
				t.Errorf("POST = %d %s, the tool ran %d times; want 400, a JSON-RPC error %d for id %d, no run", resp.StatusCode, body, ran, mcpauthz.CodeHeaderMismatch, tt.id)
			}
		})
	}
}
