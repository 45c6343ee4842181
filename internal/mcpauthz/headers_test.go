package mcpauthz

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestCheckHeaders(t *testing.T) {
	const (
		call     = `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"add_note"}}`
		read     = `{"jsonrpc":"2.0","id":"r","method":"resources/read","params":{"uri":"file:///a"}}`
		prompt   = `{"jsonrpc":"2.0","id":2,"method":"prompts/get","params":{"name":"summary"}}`
		list     = `{"jsonrpc":"2.0","id":3,"method":"tools/list"}`
		note     = `{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":1}}`
		response = `{"jsonrpc":"2.0","id":4,"result":{}}`
		batch    = `[{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"add_note"}},{"jsonrpc":"2.0","id":2,"method":"ping"}]`
		modern   = StandardHeadersVersion
		old      = "2025-06-18"
	)
	for _, tt := range []struct {
		name    string
		version string   // Mcp-Protocol-Version; "" for none
		headers []string // name, value pairs, added in order
		body    string
		want    string // a part of the problem; "" when the request passes
	}{
		// From 2026-07-28 on, a request carries both headers.
		{"2026: tools/call with both headers", modern, []string{HeaderMethod, "tools/call", HeaderName, "add_note"}, call, ""},
		{"2026: Mcp-Method missing", modern, []string{HeaderName, "add_note"}, call, `the Mcp-Method header is required from protocol version 2026-07-28 on; it must be the request's method "tools/call"`},
		{"2026: Mcp-Name missing", modern, []string{HeaderMethod, "tools/call"}, call, `the Mcp-Name header is required for "tools/call" from protocol version 2026-07-28 on; it must be "add_note"`},
		{"2026: Mcp-Method another method", modern, []string{HeaderMethod, "tools/list", HeaderName, "add_note"}, call, `Mcp-Method header value "tools/list" does not match body value "tools/call"`},
		{"2026: Mcp-Name another tool", modern, []string{HeaderMethod, "tools/call", HeaderName, "admin_wipe"}, call, `Mcp-Name header value "admin_wipe" does not match body value "add_note"`},
		{"2026: Mcp-Name in another case", modern, []string{HeaderMethod, "tools/call", HeaderName, "Add_Note"}, call, `does not match body value "add_note"`},
		{"2026: resources/read by URI", modern, []string{HeaderMethod, "resources/read", HeaderName, "file:///a"}, read, ""},
		{"2026: resources/read, another URI", modern, []string{HeaderMethod, "resources/read", HeaderName, "file:///b"}, read, `Mcp-Name header value "file:///b" does not match body value "file:///a"`},
		{"2026: resources/read without Mcp-Name", modern, []string{HeaderMethod, "resources/read"}, read, `required for "resources/read"`},
		{"2026: prompts/get", modern, []string{HeaderMethod, "prompts/get", HeaderName, "summary"}, prompt, ""},
		{"2026: prompts/get without Mcp-Name", modern, []string{HeaderMethod, "prompts/get"}, prompt, `required for "prompts/get"`},
		{"2026: a method naming nothing needs Mcp-Method only", modern, []string{HeaderMethod, "tools/list"}, list, ""},
		{"2026: a method naming nothing, no header", modern, nil, list, "the Mcp-Method header is required"},
		{"2026: Mcp-Name where the method names nothing is the server's", modern, []string{HeaderMethod, "tools/list", HeaderName, "x"}, list, ""},
		{"2026: a task id in Mcp-Name (SEP-2663) is the server's", modern, []string{HeaderMethod, "tasks/get", HeaderName, "t-1"},
			`{"jsonrpc":"2.0","id":7,"method":"tasks/get","params":{"taskId":"t-1"}}`, ""},
		{"a later version needs them too", "2027-01-15", []string{HeaderMethod, "tools/call"}, call, "the Mcp-Name header is required"},
		{"2026: a notification needs none", modern, nil, note, ""},
		{"2026: a notification's header must still match", modern, []string{HeaderMethod, "tools/call"}, note, `Mcp-Method header value "tools/call" does not match body value "notifications/cancelled"`},
		{"2026: a response needs none", modern, nil, response, ""},
		{"2026: a batch without headers is not this check's", modern, nil, batch, ""},

		// Mcp-Name in SEP-2243's Base64 form.
		{"encoded Mcp-Name", modern, []string{HeaderMethod, "tools/call", HeaderName, "=?base64?YWRkX25vdGU=?="}, call, ""},
		{"encoded Mcp-Name of a non-ASCII name", modern, []string{HeaderMethod, "tools/call", HeaderName, "=?base64?w6l0w6k=?="},
			`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"été"}}`, ""},
		{"unencoded non-ASCII Mcp-Name (Go SDK v1.8.0 clients)", modern, []string{HeaderMethod, "tools/call", HeaderName, "été"},
			`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"été"}}`, ""},
		{"encoded Mcp-Name of another tool", modern, []string{HeaderMethod, "tools/call", HeaderName, "=?base64?YWRtaW5fd2lwZQ==?="}, call,
			`Mcp-Name header value "=?base64?YWRtaW5fd2lwZQ==?=" does not match body value "add_note"`},
		{"Mcp-Name that is not Base64 inside the sentinel", modern, []string{HeaderMethod, "tools/call", HeaderName, "=?base64?not base64!?="}, call,
			`Mcp-Name header value "=?base64?not base64!?=" is not valid =?base64?...?= encoding`},
		{"a name that looks encoded must be sent encoded", modern, []string{HeaderMethod, "tools/call", HeaderName, "=?base64?YQ==?="},
			`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"=?base64?YQ==?="}}`, `does not match body value "=?base64?YQ==?="`},

		// Sent twice: a reader of the other value could disagree.
		{"Mcp-Method twice", modern, []string{HeaderMethod, "tools/call", HeaderMethod, "tools/list", HeaderName, "add_note"}, call, "the Mcp-Method header is sent 2 times; send it once"},
		{"Mcp-Name twice, at an old version", old, []string{HeaderName, "add_note", HeaderName, "admin_wipe"}, call, "the Mcp-Name header is sent 2 times"},

		// Before 2026-07-28: nothing is required; what is sent must match.
		{"old: no headers", old, nil, call, ""},
		{"no version: no headers", "", nil, call, ""},
		{"old: Mcp-Method alone, matching", old, []string{HeaderMethod, "tools/call"}, call, ""},
		{"old: Mcp-Name alone, matching", old, []string{HeaderName, "add_note"}, call, ""},
		{"old: Mcp-Name of another tool", old, []string{HeaderName, "admin_wipe"}, call, `Mcp-Name header value "admin_wipe" does not match body value "add_note"`},
		{"no version: Mcp-Method of another method", "", []string{HeaderMethod, "ping"}, call, `Mcp-Method header value "ping" does not match body value "tools/call"`},
		{"old: Mcp-Name on a method naming nothing", old, []string{HeaderName, "add_note"}, list, ""},
		{"old: completion names its resource template", old, []string{HeaderName, "file:///b"},
			`{"jsonrpc":"2.0","id":6,"method":"completion/complete","params":{"ref":{"type":"ref/resource","uri":"file:///{x}"},"argument":{"name":"x","value":""}}}`, `does not match body value "file:///{x}"`},
		{"old: Mcp-Method on a response", old, []string{HeaderMethod, "tools/call"}, response, `does not match body value ""`},
		{"old: subscribe names its URI", old, []string{HeaderMethod, "resources/subscribe", HeaderName, "file:///a"},
			`{"jsonrpc":"2.0","id":5,"method":"resources/subscribe","params":{"uri":"file:///a"}}`, ""},
		{"old: completion names its prompt", old, []string{HeaderName, "summary"},
			`{"jsonrpc":"2.0","id":6,"method":"completion/complete","params":{"ref":{"type":"ref/prompt","name":"summary"},"argument":{"name":"a","value":""}}}`, ""},
		{"old: a batch with Mcp-Method", old, []string{HeaderMethod, "tools/call"}, batch, "Mcp-Method and Mcp-Name describe one message; a batch cannot carry them"},
		{"2026: a batch with Mcp-Name", modern, []string{HeaderName, "add_note"}, batch, "a batch cannot carry them"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			msgs, isBatch, err := Inspect([]byte(tt.body), 0)
			if err != nil {
				t.Fatalf("Inspect(%s): %v", tt.body, err)
			}
			h := http.Header{}
			if tt.version != "" {
				h.Set(HeaderProtocolVersion, tt.version)
			}
			for i := 0; i+1 < len(tt.headers); i += 2 {
				h.Add(tt.headers[i], tt.headers[i+1])
			}
			got := CheckHeaders(h, msgs, isBatch)
			switch {
			case tt.want == "" && got != "":
				t.Errorf("CheckHeaders = %q, want no problem", got)
			case tt.want != "" && !strings.Contains(got, tt.want):
				t.Errorf("CheckHeaders = %q, want a problem containing %q", got, tt.want)
			case got != "" && !strings.HasPrefix(got, "Header mismatch: "):
				t.Errorf("CheckHeaders = %q, want the spec's \"Header mismatch: \" prefix", got)
			}
		})
	}
}

// TestCheckHeadersQuotesClientText: header and body values reach the
// message clipped, and anything unprintable escaped.
func TestCheckHeadersQuotesClientText(t *testing.T) {
	msgs, _, err := Inspect([]byte(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"add_note"}}`), 0)
	if err != nil {
		t.Fatal(err)
	}
	h := http.Header{}
	h.Set(HeaderMethod, "tools/call")
	h.Set(HeaderName, "\u202eevil\x7f"+strings.Repeat("x", 100))
	got := CheckHeaders(h, msgs, false)
	want := `Header mismatch: Mcp-Name header value "\u202eevil\x7f` + strings.Repeat("x", 64-len("\u202eevil\x7f")) + `..." does not match body value "add_note"`
	if got != want {
		t.Errorf("CheckHeaders = %q\nwant           %q", got, want)
	}
}

func TestWriteHeaderMismatch(t *testing.T) {
	for _, tt := range []struct {
		name, body, wantID string
	}{
		{"a request: its id", `{"jsonrpc":"2.0","id":"a-1","method":"tools/call","params":{"name":"x"}}`, `"a-1"`},
		{"a notification: null", `{"jsonrpc":"2.0","method":"notifications/cancelled"}`, `null`},
		{"a batch: null", `[{"jsonrpc":"2.0","id":1,"method":"ping"}]`, `null`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			msgs, batch, err := Inspect([]byte(tt.body), 0)
			if err != nil {
				t.Fatal(err)
			}
			w := httptest.NewRecorder()
			WriteHeaderMismatch(w, msgs, batch, "Header mismatch: x")
			var got Error
			if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil {
				t.Fatalf("body %s: %v", w.Body, err)
			}
			if w.Code != http.StatusBadRequest || got.Error.Code != CodeHeaderMismatch || string(got.ID) != tt.wantID || got.Error.Message != "Header mismatch: x" ||
				w.Header().Get("Content-Type") != "application/json" {
				t.Errorf("got %d %s %s, want 400, id %s, code %d", w.Code, w.Header().Get("Content-Type"), w.Body, tt.wantID, CodeHeaderMismatch)
			}
		})
	}
}
