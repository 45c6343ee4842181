package mcpauthz

import (
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"testing"
)

func TestInspect(t *testing.T) {
	valid := []struct {
		body string
		want Message
	}{
		{`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"name":"x"}}}`,
			Message{Method: MethodCallTool, IsRequest: true, IDKey: "n1", Name: "echo"}},
		{`{"params":{"name":"echo"},"method":"tools/call","id":"1","jsonrpc":"2.0"}`,
			Message{Method: MethodCallTool, IsRequest: true, IDKey: "s1", Name: "echo"}},
		{`{"jsonrpc":"2.0","id":1,"method":"tools\/call","params":{"n\u0061me":"add_note"}}`,
			Message{Method: MethodCallTool, IsRequest: true, IDKey: "n1", Name: "add_note"}},
		{`{"jsonrpc":"2.0","id":2,"method":"prompts/get","params":{"name":"greet"}}`,
			Message{Method: MethodGetPrompt, IsRequest: true, IDKey: "n2", Name: "greet"}},
		{`{"jsonrpc":"2.0","id":"a","method":"resources/read","params":{"uri":"file:///x","_meta":{"progressToken":5}}}`,
			Message{Method: MethodReadResource, IsRequest: true, IDKey: "sa", URI: "file:///x", Progress: "n5"}},
		// Only the member that names the target is read strictly, and only
		// for the methods it names one in.
		{`{"jsonrpc":"2.0","id":6,"method":"resources/subscribe","params":{"uri":"file:///y"}}`,
			Message{Method: MethodSubscribe, IsRequest: true, IDKey: "n6", URI: "file:///y"}},
		{`{"jsonrpc":"2.0","id":7,"method":"completion/complete","params":{"ref":{"type":"ref/prompt","name":"greet"},"argument":{"name":"who","value":"a"}}}`,
			Message{Method: MethodComplete, IsRequest: true, IDKey: "n7", Ref: "ref/prompt", Name: "greet"}},
		{`{"jsonrpc":"2.0","id":8,"method":"completion/complete","params":{"argument":{"name":"p"},"ref":{"uri":"file:///{path}","type":"ref/resource"}}}`,
			Message{Method: MethodComplete, IsRequest: true, IDKey: "n8", Ref: "ref/resource", URI: "file:///{path}"}},
		{`{"jsonrpc":"2.0","id":3,"method":"initialize","params":{"name":1,"Name":[],"clientInfo":{"name":"c"}}}`,
			Message{Method: MethodInitialize, IsRequest: true, IDKey: "n3"}},
		{`{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"uri":1,"URI":2}}`,
			Message{Method: MethodCallTool, IsRequest: true, IDKey: "n4"}},
		{`{"jsonrpc":"2.0","id":5,"method":"tools/call","params":null}`,
			Message{Method: MethodCallTool, IsRequest: true, IDKey: "n5"}},
		{`{"jsonrpc":"2.0","id":1.0,"result":{}}`, Message{IDKey: "n1"}},
		{`{"jsonrpc":"2.0","id":1e0,"error":{"code":1,"message":"x"}}`, Message{IDKey: "n1"}},
		{`{"jsonrpc":"2.0","method":"notifications/initialized"}`, Message{Method: "notifications/initialized", IsRequest: true}},
		{` {"jsonrpc":"2.0","id":null,"method":"notifications/ping"} `, Message{Method: "notifications/ping", IsRequest: true}},
		{`{"jsonrpc":"2.0","method":"notifications/progress","params":{"_meta":"not an object","progressToken":"t"}}`,
			Message{Method: MethodProgress, IsRequest: true}},
	}
	for _, tt := range valid {
		msgs, batch, err := Inspect([]byte(tt.body), 0)
		if err != nil || batch || len(msgs) != 1 {
			t.Errorf("Inspect(%s) = %v, %v, %v", tt.body, msgs, batch, err)
			continue
		}
		m := msgs[0]
		if string(m.Raw) != tt.body {
			t.Errorf("Inspect(%s).Raw = %s, want the body", tt.body, m.Raw)
		}
		m.Raw, m.ID = nil, nil
		if m.Method != tt.want.Method || m.IsRequest != tt.want.IsRequest || m.IDKey != tt.want.IDKey ||
			m.Name != tt.want.Name || m.URI != tt.want.URI || m.Progress != tt.want.Progress || m.Ref != tt.want.Ref {
			t.Errorf("Inspect(%s) = %+v, want %+v", tt.body, m, tt.want)
		}
	}

	msgs, batch, err := Inspect([]byte(`[{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a"}}, {"jsonrpc":"2.0","method":"notifications/x"}]`), 0)
	if err != nil || !batch || len(msgs) != 2 || msgs[0].Name != "a" || msgs[1].Method != "notifications/x" ||
		string(msgs[1].Raw) != `{"jsonrpc":"2.0","method":"notifications/x"}` {
		t.Errorf("batch = %+v %v %v", msgs, batch, err)
	}
	if msgs, _, _ := Inspect([]byte(`{"jsonrpc":"2.0","id":  7,"method":"ping"}`), 0); len(msgs) != 1 || string(msgs[0].ID) != "7" || !msgs[0].IsCall() {
		t.Errorf("Inspect kept id %q (call %v), want 7 as sent", msgs[0].ID, msgs[0].IsCall())
	}

	// A request without an id (absent or null) is a JSON-RPC notification
	// an upstream may still run, unanswered and unaudited: only
	// notifications/* may come without one (review of issue 20 F1).
	for _, body := range []string{
		`{"jsonrpc":"2.0","method":"tools/call","params":{"name":"delete_repo"}}`,
		`{"jsonrpc":"2.0","id":null,"method":"tools/call","params":{"name":"delete_repo"}}`,
		`[{"jsonrpc":"2.0","id":1,"method":"ping"},{"jsonrpc":"2.0","method":"resources/read","params":{"uri":"file:///x"}}]`,
		`{"jsonrpc":"2.0","method":"ping"}`,
	} {
		if _, _, err := Inspect([]byte(body), 0); !errors.Is(err, ErrRequestWithoutID) {
			t.Errorf("Inspect(%s) = %v, want ErrRequestWithoutID", body, err)
		}
	}
	if got, want := string(InspectRefusal(ErrRequestWithoutID)), `{"jsonrpc":"2.0","id":null,"error":{"code":-32600,"message":"Invalid Request: a request needs an id (a string or a number); only notifications/* may be sent without one"}}`; got != want {
		t.Errorf("InspectRefusal(ErrRequestWithoutID) = %s, want %s", got, want)
	}

	for _, body := range []string{
		`[{"jsonrpc":"2.0","id":7,"method":"tools/list"},{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"x"}}]`,
		`[{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"x"}},{"jsonrpc":"2.0","id":9.0,"method":"ping"}]`,
		`[{"jsonrpc":"2.0","id":"a","method":"ping"},{"jsonrpc":"2.0","id":"\u0061","method":"ping"}]`,
		`[{"jsonrpc":"2.0","id":9007199254740993,"method":"ping"},{"jsonrpc":"2.0","id":9007199254740992,"method":"ping"}]`,
	} {
		if _, _, err := Inspect([]byte(body), 0); !errors.Is(err, ErrDuplicateID) {
			t.Errorf("Inspect(%s) = %v, want ErrDuplicateID", body, err)
		}
	}
	// A batch longer than maxBatch is refused before its messages are
	// read (the one past the limit is not even JSON-RPC); at the limit it
	// is read.
	ping := `{"jsonrpc":"2.0","method":"notifications/x"}`
	for _, tt := range []struct {
		n, max int
		want   error
	}{
		{3, 3, nil},
		{3, 0, nil},
		{4, 3, &BatchTooLargeError{Len: 4, Max: 3}},
	} {
		body := "[" + strings.Repeat(ping+",", tt.n-1) + ping + "]"
		if tt.want != nil {
			body = "[" + strings.Repeat(ping+",", tt.n-1) + `{"method":1}]`
		}
		msgs, _, err := Inspect([]byte(body), tt.max)
		if tt.want == nil && (err != nil || len(msgs) != tt.n) {
			t.Errorf("Inspect(%d messages, %d) = %d messages, %v; want %d, nil", tt.n, tt.max, len(msgs), err, tt.n)
		}
		var tooLarge *BatchTooLargeError
		if tt.want != nil && (!errors.As(err, &tooLarge) || *tooLarge != *tt.want.(*BatchTooLargeError)) {
			t.Errorf("Inspect(%d messages, %d) = %v, want %v", tt.n, tt.max, err, tt.want)
		}
	}
	refusal := string(InspectRefusal(&BatchTooLargeError{Len: 101, Max: 100}))
	if want := `{"jsonrpc":"2.0","id":null,"error":{"code":-32600,"message":"Invalid Request: the batch has 101 messages; at most 100 are allowed in one batch (max_batch_messages)","data":{"max_batch_messages":100}}}`; refusal != want {
		t.Errorf("InspectRefusal(BatchTooLargeError) = %s, want %s", refusal, want)
	}

	// Ids are per direction: a request and a response (to the server's own
	// request) may share one, and notifications have none.
	for _, body := range []string{
		`[{"jsonrpc":"2.0","id":7,"method":"ping"},{"jsonrpc":"2.0","id":7,"result":{}}]`,
		`[{"jsonrpc":"2.0","method":"notifications/x"},{"jsonrpc":"2.0","method":"notifications/x"}]`,
		`[{"jsonrpc":"2.0","id":1,"method":"ping"},{"jsonrpc":"2.0","id":"1","method":"ping"}]`,
	} {
		if _, _, err := Inspect([]byte(body), 0); err != nil {
			t.Errorf("Inspect(%s) = %v, want no error", body, err)
		}
	}

	for _, body := range []string{
		``, ` `, `[]`, `null`, `"x"`, `{`, `{}x`, `{"method":1}`, `{"method":null}`,
		`{"jsonrpc":"2.0","id":1,"method":"a","method":"b"}`,
		`{"jsonrpc":"2.0","id":1,"Method":"tools/call"}`,
		`{"jsonrpc":"2.0","id":1,"METHOD":"tools/call","method":"ping"}`,
		`{"jsonrpc":"2.0","id":1,"id":2,"method":"ping"}`,
		`{"jsonrpc":"2.0","iD":1,"method":"ping"}`,
		`{"jsonrpc":"2.0","id":{},"method":"ping"}`,
		`{"jsonrpc":"2.0","id":[1],"method":"ping"}`,
		`{"jsonrpc":"2.0","id":true,"method":"ping"}`,
		`{"jsonrpc":"2.0","id":1e999,"method":"ping"}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":[]}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":"x"}`,
		`{"jsonrpc":"2.0","id":1,"method":"ping","params":1}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":1}}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":null}}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a","name":"b"}}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a","NAME":"b"}}`,
		`{"jsonrpc":"2.0","id":1,"method":"prompts/get","params":{"Name":"b"}}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a"},"params":{"name":"b"}}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","paramſ":{"name":"a"}}`,
		`{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":"a","Uri":"b"}}`,
		`{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":["a"]}}`,
		`{"jsonrpc":"2.0","id":1,"method":"resources/subscribe","params":{"uri":"a","URI":"b"}}`,
		`{"jsonrpc":"2.0","id":1,"method":"resources/unsubscribe","params":{"uri":1}}`,
		`{"jsonrpc":"2.0","id":1,"method":"completion/complete","params":{"ref":"ref/prompt"}}`,
		`{"jsonrpc":"2.0","id":1,"method":"completion/complete","params":{"ref":{"type":"ref/prompt","name":"a"},"Ref":{}}}`,
		`{"jsonrpc":"2.0","id":1,"method":"completion/complete","params":{"ref":{"type":"ref/prompt","name":"a","Name":"b"}}}`,
		`{"jsonrpc":"2.0","id":1,"method":"completion/complete","params":{"ref":{"type":"ref/prompt","name":"a","name":"b"}}}`,
		`{"jsonrpc":"2.0","id":1,"method":"completion/complete","params":{"ref":{"type":"ref/resource","uri":["x"]}}}`,
		`{"jsonrpc":"2.0","id":1,"method":"completion/complete","params":{"ref":{"type":"ref/prompt","TYPE":"ref/resource"}}}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a"}}x`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a"}}{}`,
		`[{"jsonrpc":"2.0","id":1,"method":"ping"},1]`,
		`[{"jsonrpc":"2.0","id":1,"method":"ping"}]]`,
		`[{"jsonrpc":"2.0","id":1,"method":"ping"},{"method":"tools/call","params":{"Name":"x"}}]`,
		`[[{"jsonrpc":"2.0","id":1,"method":"ping"}]]`,
	} {
		if msgs, _, err := Inspect([]byte(body), 0); err == nil {
			t.Errorf("Inspect(%s) = %+v, want an error", body, msgs)
		}
	}
}

func TestIDKey(t *testing.T) {
	for raw, want := range map[string]string{
		`1`: "n1", `1.0`: "n1", `1e0`: "n1", ` 10 `: "n10", `-0.5`: "n-0.5",
		`"1"`: "s1", `"a\u0062"`: "sab", `""`: "s",
		`null`: "", ``: "", `true`: "", `{}`: "", `1e999`: "", `"unterminated`: "",
	} {
		if got := IDKey(json.RawMessage(raw)); got != want {
			t.Errorf("IDKey(%s) = %q, want %q", raw, got, want)
		}
	}
	if got := ResponseID([]byte(`{"jsonrpc":"2.0","id":"x","result":{}}`)); got != "sx" {
		t.Errorf("ResponseID = %q, want sx", got)
	}
	if got := ResponseID([]byte(`not json`)); got != "" {
		t.Errorf("ResponseID(not json) = %q, want empty", got)
	}
}

func TestClip(t *testing.T) {
	if got := Clip("short"); got != "short" {
		t.Errorf("Clip(short) = %q", got)
	}
	long := strings.Repeat("a", 63) + "é" + "tail" // é straddles byte 64
	got := Clip(long)
	if got != strings.Repeat("a", 63)+"..." {
		t.Errorf("Clip cut inside a character: %q", got)
	}
}

// FuzzInspect feeds arbitrary bodies to Inspect: no panics, and whatever
// it accepts reads the same to an exact-key decoder (the MCP SDKs) and to
// a case-insensitive one (Go's encoding/json into structs): the method,
// id, tool or prompt name and resource URI that were checked are the ones
// any server sees.
func FuzzInspect(f *testing.F) {
	for _, s := range []string{
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"add_note"}}`,
		`[{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"list_notes"}},{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"add_note"}}]`,
		`[{"jsonrpc":"2.0","id":"x","method":"resources/read","params":{"uri":"u"}}]`,
		`{"jsonrpc":"2.0","id":"x","method":"tools/list"}`,
		`{"jsonrpc":"2.0","id":2,"method":"prompts/get","params":{"name":"p","_meta":{"progressToken":"t"}}}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a","Name":"b"}}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools\/call","params":{"n\u0061me":"add_note"}}`,
		`{"jsonrpc":"2.0","id":1,"result":{}}`,
		`{"jsonrpc":"2.0","id":3,"method":"completion/complete","params":{"ref":{"type":"ref/prompt","name":"p"},"argument":{"name":"a","value":"b"}}}`,
		`{"method":null}`, `[]`, `{}`, `"x"`, `{"a":[[[[{}]]]]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		msgs, batch, err := Inspect(body, 0)
		if err != nil {
			return
		}
		if !json.Valid(body) {
			t.Fatalf("Inspect accepted invalid JSON %q", body)
		}
		var raws []json.RawMessage
		if batch {
			if err := json.Unmarshal(body, &raws); err != nil {
				t.Fatalf("batch %q: %v", body, err)
			}
		} else {
			raws = []json.RawMessage{body}
		}
		if len(raws) != len(msgs) {
			t.Fatalf("Inspect(%q) found %d messages, decode finds %d", body, len(msgs), len(raws))
		}
		ids := map[string]bool{}
		for _, m := range msgs {
			if !m.IsCall() {
				continue
			}
			if ids[m.IDKey] {
				t.Fatalf("Inspect(%q) accepted two requests with id %q", body, m.IDKey)
			}
			ids[m.IDKey] = true
		}
		for i, raw := range raws {
			m := msgs[i]
			// The exact-key reading.
			var exact map[string]json.RawMessage
			if err := json.Unmarshal(raw, &exact); err != nil {
				t.Fatalf("message %q: %v", raw, err)
			}
			var method string
			_, isRequest := exact["method"]
			if isRequest {
				json.Unmarshal(exact["method"], &method)
			}
			if method != m.Method || isRequest != m.IsRequest {
				t.Fatalf("Inspect(%q) method %q (request %v), exact decoder %q (%v)", raw, m.Method, m.IsRequest, method, isRequest)
			}
			var params map[string]json.RawMessage
			json.Unmarshal(exact["params"], &params)
			var name, uri string
			json.Unmarshal(params["name"], &name)
			json.Unmarshal(params["uri"], &uri)
			wantName, wantURI, wantRef := "", "", ""
			switch method {
			case MethodCallTool, MethodGetPrompt:
				wantName = name
			case MethodReadResource, MethodSubscribe, MethodUnsubscribe:
				wantURI = uri
			case MethodComplete:
				var ref map[string]json.RawMessage
				json.Unmarshal(params["ref"], &ref)
				json.Unmarshal(ref["type"], &wantRef)
				json.Unmarshal(ref["name"], &wantName)
				json.Unmarshal(ref["uri"], &wantURI)
			}
			if m.Name != wantName || m.URI != wantURI || m.Ref != wantRef {
				t.Fatalf("Inspect(%q) name %q uri %q ref %q, exact decoder %q %q %q", raw, m.Name, m.URI, m.Ref, wantName, wantURI, wantRef)
			}
			if key := IDKey(exact["id"]); key != m.IDKey {
				t.Fatalf("Inspect(%q) id %q, exact decoder %q", raw, m.IDKey, key)
			}

			// The case-insensitive reading.
			var folded struct {
				Method *string
				ID     any
				Params json.RawMessage
			}
			if err := json.Unmarshal(raw, &folded); err != nil {
				t.Fatalf("Inspect(%q) accepted what encoding/json refuses: %v", raw, err)
			}
			if (folded.Method != nil) != isRequest || (folded.Method != nil && *folded.Method != method) {
				t.Fatalf("Inspect(%q) method %q, case-insensitive decoder %v", raw, m.Method, folded.Method)
			}
			var target string
			var into any
			switch method {
			case MethodCallTool, MethodGetPrompt:
				into, target = &struct{ Name *string }{}, m.Name
			case MethodReadResource, MethodSubscribe, MethodUnsubscribe:
				into, target = &struct{ URI *string }{}, m.URI
			case MethodComplete:
				var p struct {
					Ref *struct{ Type, Name, URI *string }
				}
				if err := json.Unmarshal(folded.Params, &p); len(folded.Params) > 0 && err != nil {
					t.Fatalf("Inspect(%q) accepted params encoding/json refuses: %v", raw, err)
				}
				deref := func(p *string) string {
					if p == nil {
						return ""
					}
					return *p
				}
				if p.Ref != nil && (deref(p.Ref.Type) != m.Ref || deref(p.Ref.Name) != m.Name || deref(p.Ref.URI) != m.URI) {
					t.Fatalf("Inspect(%q) ref %q %q %q, case-insensitive decoder %+v", raw, m.Ref, m.Name, m.URI, p.Ref)
				}
			}
			if into != nil && len(folded.Params) > 0 {
				if err := json.Unmarshal(folded.Params, into); err != nil {
					t.Fatalf("Inspect(%q) accepted params encoding/json refuses: %v", raw, err)
				}
				var got *string
				switch v := into.(type) {
				case *struct{ Name *string }:
					got = v.Name
				case *struct{ URI *string }:
					got = v.URI
				}
				if got != nil && *got != target || got == nil && target != "" {
					t.Fatalf("Inspect(%q) target %q, case-insensitive decoder %v", raw, target, got)
				}
			}
			if f, ok := folded.ID.(float64); ok && m.IDKey != "n"+strconv.FormatFloat(f, 'g', -1, 64) {
				t.Fatalf("Inspect(%q) id %q, float64 decoder %v", raw, m.IDKey, f)
			}
		}
	})
}
