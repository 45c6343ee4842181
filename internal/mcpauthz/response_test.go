package mcpauthz

import (
	"encoding/json"
	"slices"
	"testing"
)

func TestFilterList(t *testing.T) {
	allow := func(names ...string) func(string) bool {
		return func(n string) bool { return slices.Contains(names, n) }
	}
	for _, tt := range []struct {
		name, in, member, key string
		allowed               func(string) bool
		want                  string // "" when not a list response
	}{
		{"removes denied tools, keeps other members", `{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"a"},{"name":"b","x":1}],"nextCursor":"n"}}`,
			"tools", "name", allow("b"),
			`{"id":1,"jsonrpc":"2.0","result":{"cacheScope":"private","nextCursor":"n","tools":[{"name":"b","x":1}]}}`},
		{"all allowed: re-encoded from what was checked", `{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"a"}]}}`, "tools", "name", allow("a"),
			`{"id":1,"jsonrpc":"2.0","result":{"cacheScope":"private","tools":[{"name":"a"}]}}`},
		{"entries without one string key fail closed", `{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"a"},{},{"name":null},{"name":1},{"Name":"a"},{"name":"a","NAME":"b"},7]}}`,
			"tools", "name", allow("a", ""),
			`{"id":1,"jsonrpc":"2.0","result":{"cacheScope":"private","tools":[{"name":"a"},{"Name":"a"}]}}`},
		{"members found case-insensitively", `{"jsonrpc":"2.0","id":1,"resulT":{"TOOLS":[{"nAme":"b"},{"name":"a"}],"CacheScope":"public"}}`,
			"tools", "name", allow("a"),
			`{"id":1,"jsonrpc":"2.0","resulT":{"CacheScope":"private","TOOLS":[{"name":"a"}]}}`},
		{"duplicated members: the checked one is sent", `{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"b"}]},"result":{"tools":[{"name":"b","name":"a"}]}}`,
			"tools", "name", allow("a"),
			`{"id":1,"jsonrpc":"2.0","result":{"cacheScope":"private","tools":[{"name":"a"}]}}`},
		{"resources by uri", `{"jsonrpc":"2.0","id":1,"result":{"resources":[{"uri":"u1","name":"x"},{"uri":"u2"}]}}`,
			"resources", "uri", allow("u2"),
			`{"id":1,"jsonrpc":"2.0","result":{"cacheScope":"private","resources":[{"uri":"u2"}]}}`},
		{"no cacheScope is public: private is added (RS-18)", `{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"a"}]}}`,
			"tools", "name", allow("a"),
			`{"id":1,"jsonrpc":"2.0","result":{"cacheScope":"private","tools":[{"name":"a"}]}}`},
		{"a member spelled with \\u escapes is found", `{"jsonrpc":"2.0","id":1,"result":{"\u0074ools":[{"name":"a"},{"name":"b"}]}}`,
			"tools", "name", allow("b"),
			`{"id":1,"jsonrpc":"2.0","result":{"cacheScope":"private","tools":[{"name":"b"}]}}`},
		{"a member with U+017F (folds to s) is found", "{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"tool\u017f\":[{\"name\":\"a\"},{\"name\":\"b\"}]}}",
			"tools", "name", allow("b"),
			"{\"id\":1,\"jsonrpc\":\"2.0\",\"result\":{\"cacheScope\":\"private\",\"tool\u017f\":[{\"name\":\"b\"}]}}"},
		{"a call result is no list", `{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"hi"}]}}`, "tools", "name", allow(), ""},
		{"a public list becomes private (RS-18)", `{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"a"}],"cacheScope":"public"}}`,
			"tools", "name", allow("a"),
			`{"id":1,"jsonrpc":"2.0","result":{"cacheScope":"private","tools":[{"name":"a"}]}}`},
		{"an error response", `{"jsonrpc":"2.0","id":1,"error":{"code":1,"message":"x"}}`, "tools", "name", allow(), ""},
		{"another list", `{"jsonrpc":"2.0","id":1,"result":{"prompts":[{"name":"a"}]}}`, "tools", "name", allow(), ""},
		{"not an array", `{"jsonrpc":"2.0","id":1,"result":{"tools":{"name":"a"}}}`, "tools", "name", allow(), ""},
		{"not JSON", `event: message`, "tools", "name", allow(), ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			out, changed := FilterList([]byte(tt.in), tt.member, tt.key, tt.allowed)
			if tt.want == "" {
				if changed {
					t.Errorf("FilterList changed %s to %s", tt.in, out)
				}
				return
			}
			if !changed || string(out) != tt.want {
				t.Errorf("FilterList(%s) = %s, %v; want %s", tt.in, out, changed, tt.want)
			}
		})
	}
}

func TestErrorResponse(t *testing.T) {
	for _, tt := range []struct {
		id   json.RawMessage
		data any
		want string
	}{
		{nil, nil, `{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"Parse error"}}`},
		{json.RawMessage(`"a"`), map[string]string{"error": "x"}, `{"jsonrpc":"2.0","id":"a","error":{"code":-32700,"message":"Parse error","data":{"error":"x"}}}`},
	} {
		if got := string(ErrorResponse(tt.id, CodeParseError, "Parse error", tt.data)); got != tt.want {
			t.Errorf("ErrorResponse(%s) = %s, want %s", tt.id, got, tt.want)
		}
	}
	if got := string(InspectRefusal(ErrDuplicateID)); got != `{"jsonrpc":"2.0","id":null,"error":{"code":-32600,"message":"Invalid Request: two requests in the batch have the same id"}}` {
		t.Errorf("InspectRefusal(ErrDuplicateID) = %s", got)
	}
	if got := string(InspectRefusal(ErrUninspectable)); got != `{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"Parse error"}}` {
		t.Errorf("InspectRefusal(ErrUninspectable) = %s", got)
	}
	want := `{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"reason":"timeout","requestId":3}}`
	if got := string(CancelNotification(json.RawMessage("3"), "timeout")); got != want {
		t.Errorf("CancelNotification = %s, want %s", got, want)
	}
}

func TestClosure(t *testing.T) {
	got := Closure(map[string][]string{
		"admin": {"write"},
		"write": {"read"},
		"read":  {"admin"}, // a cycle ends where it closes
		"solo":  nil,
	})
	for s, want := range map[string][]string{
		"admin": {"read", "write"},
		"write": {"admin", "read"},
		"read":  {"admin", "write"},
		"solo":  nil,
	} {
		g := slices.Sorted(slices.Values(got[s]))
		if !slices.Equal(g, want) {
			t.Errorf("Closure()[%s] = %v, want %v", s, g, want)
		}
	}
	if Closure(nil) != nil {
		t.Error("Closure(nil) is not nil")
	}
	for _, tt := range []struct {
		granted, needs []string
		want           bool
	}{
		{[]string{"admin"}, []string{"read", "write"}, true},
		{[]string{"solo"}, []string{"solo"}, true},
		{[]string{"solo"}, []string{"read"}, false},
		{nil, []string{"read"}, false},
		{nil, nil, true},
	} {
		if h := got.HasAll(tt.granted, tt.needs); h != tt.want {
			t.Errorf("HasAll(%v, %v) = %v, want %v", tt.granted, tt.needs, h, tt.want)
		}
	}
	if got := Dedup([]string{"a", "b", "a", "c", "b"}); !slices.Equal(got, []string{"a", "b", "c"}) {
		t.Errorf("Dedup = %v", got)
	}
	for s, want := range map[string]bool{"mcp:read": true, "": false, "a b": false, `a"`: false, `a\`: false, "é": false, "~!": true} {
		if ValidScope(s) != want {
			t.Errorf("ValidScope(%q) = %v, want %v", s, !want, want)
		}
	}
}

func TestRewriteMessages(t *testing.T) {
	// Rewrites the message with id 2 only.
	two := func(msg []byte) ([]byte, bool) {
		if ResponseID(msg) != "n2" {
			return nil, false
		}
		return []byte(`{"id":2,"rewritten":true}`), true
	}
	for _, tt := range []struct {
		name, in, want string
		changed        bool
	}{
		{"a message fn rewrites", ` {"id":2} `, `{"id":2,"rewritten":true}`, true},
		{"a message fn leaves", `{"id":1}`, `{"id":1}`, false},
		{"a batch: only the message fn rewrites changes, re-encoded", "[ {\"id\":1}, {\"id\":2} ]", `[{"id":1},{"id":2,"rewritten":true}]`, true},
		{"a batch fn leaves is returned as it is", "[ {\"id\":1} ]", "[ {\"id\":1} ]", false},
		{"not an array", `[{"id":2}`, `[{"id":2}`, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			out, changed := RewriteMessages([]byte(tt.in), two)
			if string(out) != tt.want || changed != tt.changed {
				t.Errorf("RewriteMessages(%q) = %q, %v; want %q, %v", tt.in, out, changed, tt.want, tt.changed)
			}
		})
	}
}
