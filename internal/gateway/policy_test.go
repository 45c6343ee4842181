package gateway

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
)

func mustPolicy(t *testing.T, r Route) *policy {
	t.Helper()
	var p policy
	var err error
	p.baseline = dedup(r.Scopes)
	p.implied = closure(r.ImpliedScopes)
	if p.tools, err = compileRules(r.Tools, r.DenyUnlistedTools, p.baseline); err != nil {
		t.Fatal(err)
	}
	if p.resources, err = compileRules(r.Resources, r.DenyUnlistedResources, p.baseline); err != nil {
		t.Fatal(err)
	}
	if p.prompts, err = compileRules(r.Prompts, r.DenyUnlistedPrompts, p.baseline); err != nil {
		t.Fatal(err)
	}
	return &p
}

func TestPolicyCheck(t *testing.T) {
	p := mustPolicy(t, Route{
		Scopes:              []string{"r"},
		ImpliedScopes:       map[string][]string{"admin": {"w"}, "w": {"r"}},
		Tools:               Rules{"get": nil, "set": {"w"}, "admin_*": {"admin"}, "admin_safe": {"w"}, "*": {"x"}},
		Resources:           Rules{"file:///secret/*": {"admin"}},
		Prompts:             Rules{"p1": {"w"}},
		DenyUnlistedPrompts: true,
	})
	tests := []struct {
		name    string
		granted []string
		msg     message
		want    decision
		need    []string
	}{
		{"listed tool, baseline only", []string{"r"}, message{method: methodCallTool, name: "get"}, allow, []string{"r"}},
		{"listed tool needing more", []string{"r"}, message{method: methodCallTool, name: "set"}, stepUp, []string{"r", "w"}},
		{"implied scope", []string{"admin"}, message{method: methodCallTool, name: "set"}, allow, []string{"r", "w"}},
		{"prefix", []string{"r", "w"}, message{method: methodCallTool, name: "admin_drop"}, stepUp, []string{"r", "admin"}},
		{"exact beats prefix", []string{"r", "w"}, message{method: methodCallTool, name: "admin_safe"}, allow, []string{"r", "w"}},
		{"default for unlisted", []string{"r"}, message{method: methodCallTool, name: "other"}, stepUp, []string{"r", "x"}},
		{"resource prefix", []string{"r"}, message{method: methodReadResource, uri: "file:///secret/key"}, stepUp, []string{"r", "admin"}},
		{"unlisted resource", []string{"r"}, message{method: methodReadResource, uri: "file:///public"}, allow, []string{"r"}},
		{"listed prompt", []string{"w"}, message{method: methodGetPrompt, name: "p1"}, allow, []string{"r", "w"}},
		{"unlisted prompt denied", []string{"admin"}, message{method: methodGetPrompt, name: "p2"}, deny, nil},
		{"other method", []string{"r"}, message{method: "ping"}, allow, []string{"r"}},
		{"baseline missing", nil, message{method: "ping"}, stepUp, []string{"r"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, need := p.check(tt.granted, &tt.msg)
			if d != tt.want || !slices.Equal(need, tt.need) {
				t.Errorf("check(%v, %s %s%s) = %v %v, want %v %v", tt.granted, tt.msg.method, tt.msg.name, tt.msg.uri, d, need, tt.want, tt.need)
			}
		})
	}
}

func TestFilterResult(t *testing.T) {
	p := mustPolicy(t, Route{Scopes: []string{"r"}, Tools: Rules{"b": {"w"}, "c": nil}, DenyUnlistedTools: true})
	in := `{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"a"},{"name":"b","x":1},{"name":"c"}],"nextCursor":"n"}}`
	out, changed := p.filterResult(methodListTools, []string{"r"}, []byte(in))
	if !changed {
		t.Fatal("filterResult did not change the list")
	}
	var got struct {
		Result struct {
			Tools      []map[string]any `json:"tools"`
			NextCursor string           `json:"nextCursor"`
		} `json:"result"`
	}
	json.Unmarshal(out, &got)
	if len(got.Result.Tools) != 1 || got.Result.Tools[0]["name"] != "c" || got.Result.NextCursor != "n" {
		t.Errorf("filtered = %s", out)
	}
	if _, changed := p.filterResult(methodListTools, []string{"r", "w"}, []byte(`{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"b"},{"name":"c"}]}}`)); changed {
		t.Error("filterResult changed a list the token may see whole")
	}
	// A list marked for shared caches becomes private: it depends on the
	// token (RS-18).
	out, changed = p.filterResult(methodListTools, []string{"r", "w"}, []byte(`{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"c"}],"cacheScope":"public"}}`))
	if !changed || !strings.Contains(string(out), `"cacheScope":"private"`) {
		t.Errorf("filterResult of a public list = %s, %v; want cacheScope private", out, changed)
	}
}

func TestInspect(t *testing.T) {
	valid := []struct {
		body string
		want message
	}{
		{`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"name":"x"}}}`,
			message{method: methodCallTool, isRequest: true, idKey: "n1", name: "echo"}},
		{`{"jsonrpc":"2.0","id":"a","method":"resources/read","params":{"uri":"file:///x","_meta":{"progressToken":5}}}`,
			message{method: methodReadResource, isRequest: true, idKey: "sa", uri: "file:///x", progress: "n5"}},
		{`{"jsonrpc":"2.0","id":1.0,"result":{}}`, message{idKey: "n1"}},
		{`{"jsonrpc":"2.0","method":"notifications/initialized"}`, message{method: "notifications/initialized", isRequest: true}},
		{` {"jsonrpc":"2.0","id":null,"method":"ping"} `, message{method: "ping", isRequest: true}},
	}
	for _, tt := range valid {
		msgs, batch, err := inspect([]byte(tt.body))
		if err != nil || batch || len(msgs) != 1 {
			t.Errorf("inspect(%s) = %v, %v, %v", tt.body, msgs, batch, err)
			continue
		}
		m := msgs[0]
		if m.method != tt.want.method || m.isRequest != tt.want.isRequest || m.idKey != tt.want.idKey ||
			m.name != tt.want.name || m.uri != tt.want.uri || m.progress != tt.want.progress {
			t.Errorf("inspect(%s) = %+v, want %+v", tt.body, m, tt.want)
		}
	}
	msgs, batch, err := inspect([]byte(`[{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a"}},{"jsonrpc":"2.0","method":"notifications/x"}]`))
	if err != nil || !batch || len(msgs) != 2 || msgs[0].name != "a" {
		t.Errorf("batch = %+v %v %v", msgs, batch, err)
	}
	for _, body := range []string{
		``, `[]`, `null`, `"x"`, `{`, `{"method":1}`,
		`{"jsonrpc":"2.0","id":1,"method":"a","method":"b"}`,
		`{"jsonrpc":"2.0","id":1,"Method":"tools/call"}`,
		`{"jsonrpc":"2.0","id":1,"id":2,"method":"ping"}`,
		`{"jsonrpc":"2.0","id":{},"method":"ping"}`,
		`{"jsonrpc":"2.0","id":true,"method":"ping"}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":[]}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":1}}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a","name":"b"}}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a","NAME":"b"}}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","paramſ":{"name":"a"}}`,
		`{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":"a","Uri":"b"}}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a"}}x`,
		`[{"jsonrpc":"2.0","id":1,"method":"ping"},1]`,
		`[{"jsonrpc":"2.0","id":1,"method":"ping"}]]`,
	} {
		if msgs, _, err := inspect([]byte(body)); err == nil {
			t.Errorf("inspect(%s) = %+v, want an error", body, msgs)
		}
	}
}

// FuzzInspect checks that inspect never panics and that what it accepts
// reads the same to a case-sensitive decoder: the method, id and tool
// name the policy checked are the ones the upstream sees.
func FuzzInspect(f *testing.F) {
	for _, s := range []string{
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo"}}`,
		`[{"jsonrpc":"2.0","id":"x","method":"resources/read","params":{"uri":"u"}}]`,
		`{"jsonrpc":"2.0","id":1,"result":{}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		msgs, _, err := inspect(body)
		if err != nil {
			return
		}
		for _, m := range msgs {
			var exact map[string]json.RawMessage
			if json.Unmarshal(m.raw, &exact) != nil {
				t.Fatalf("accepted %q, which is not an object", m.raw)
			}
			var method string
			if raw, ok := exact["method"]; ok {
				json.Unmarshal(raw, &method)
			}
			if method != m.method {
				t.Fatalf("method %q, exact decoder reads %q", m.method, method)
			}
			if m.method == methodCallTool {
				var params map[string]json.RawMessage
				json.Unmarshal(exact["params"], &params)
				var name string
				json.Unmarshal(params["name"], &name)
				if name != m.name {
					t.Fatalf("tool %q, exact decoder reads %q", m.name, name)
				}
			}
		}
	})
}
