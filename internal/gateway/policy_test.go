package gateway

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/gatehouse-mcp/gatehouse/internal/mcpauthz"
)

func mustPolicy(t *testing.T, r Route) *policy {
	t.Helper()
	var p policy
	var err error
	p.baseline = mcpauthz.Dedup(r.Scopes)
	p.implied = mcpauthz.Closure(r.ImpliedScopes)
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
		msg     mcpauthz.Message
		want    decision
		need    []string
	}{
		{"listed tool, baseline only", []string{"r"}, mcpauthz.Message{Method: mcpauthz.MethodCallTool, Name: "get"}, allow, []string{"r"}},
		{"listed tool needing more", []string{"r"}, mcpauthz.Message{Method: mcpauthz.MethodCallTool, Name: "set"}, stepUp, []string{"r", "w"}},
		{"implied scope", []string{"admin"}, mcpauthz.Message{Method: mcpauthz.MethodCallTool, Name: "set"}, allow, []string{"r", "w"}},
		{"prefix", []string{"r", "w"}, mcpauthz.Message{Method: mcpauthz.MethodCallTool, Name: "admin_drop"}, stepUp, []string{"r", "admin"}},
		{"exact beats prefix", []string{"r", "w"}, mcpauthz.Message{Method: mcpauthz.MethodCallTool, Name: "admin_safe"}, allow, []string{"r", "w"}},
		{"default for unlisted", []string{"r"}, mcpauthz.Message{Method: mcpauthz.MethodCallTool, Name: "other"}, stepUp, []string{"r", "x"}},
		{"resource prefix", []string{"r"}, mcpauthz.Message{Method: mcpauthz.MethodReadResource, URI: "file:///secret/key"}, stepUp, []string{"r", "admin"}},
		{"unlisted resource", []string{"r"}, mcpauthz.Message{Method: mcpauthz.MethodReadResource, URI: "file:///public"}, allow, []string{"r"}},
		{"listed prompt", []string{"w"}, mcpauthz.Message{Method: mcpauthz.MethodGetPrompt, Name: "p1"}, allow, []string{"r", "w"}},
		{"unlisted prompt denied", []string{"admin"}, mcpauthz.Message{Method: mcpauthz.MethodGetPrompt, Name: "p2"}, deny, nil},
		{"subscribe like read", []string{"r"}, mcpauthz.Message{Method: mcpauthz.MethodSubscribe, URI: "file:///secret/key"}, stepUp, []string{"r", "admin"}},
		{"completion of a listed prompt", []string{"r"}, mcpauthz.Message{Method: mcpauthz.MethodComplete, Ref: mcpauthz.RefPrompt, Name: "p1"}, stepUp, []string{"r", "w"}},
		{"completion of an unlisted prompt denied", []string{"admin"}, mcpauthz.Message{Method: mcpauthz.MethodComplete, Ref: mcpauthz.RefPrompt, Name: "p2"}, deny, nil},
		{"completion of a secret resource template", []string{"r"}, mcpauthz.Message{Method: mcpauthz.MethodComplete, Ref: mcpauthz.RefResource, URI: "file:///secret/{name}"}, stepUp, []string{"r", "admin"}},
		{"completion of another kind", []string{"r"}, mcpauthz.Message{Method: mcpauthz.MethodComplete, Ref: "ref/other", Name: "p2"}, allow, []string{"r"}},
		{"other method", []string{"r"}, mcpauthz.Message{Method: "ping"}, allow, []string{"r"}},
		{"baseline missing", nil, mcpauthz.Message{Method: "ping"}, stepUp, []string{"r"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, need := p.check(tt.granted, &tt.msg)
			if d != tt.want || !slices.Equal(need, tt.need) {
				t.Errorf("check(%v, %s %s%s) = %v %v, want %v %v", tt.granted, tt.msg.Method, tt.msg.Name, tt.msg.URI, d, need, tt.want, tt.need)
			}
		})
	}
}

func TestFilterResult(t *testing.T) {
	p := mustPolicy(t, Route{Scopes: []string{"r"}, Tools: Rules{"b": {"w"}, "c": nil}, DenyUnlistedTools: true})
	in := `{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"a"},{"name":"b","x":1},{"name":"c"}],"nextCursor":"n"}}`
	out, changed := p.filterResult(mcpauthz.MethodListTools, []string{"r"}, []byte(in))
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
	if out, _ := p.filterResult(mcpauthz.MethodListTools, []string{"r", "w"}, []byte(`{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"b"},{"name":"c"}]}}`)); !strings.Contains(string(out), `[{"name":"b"},{"name":"c"}]`) {
		t.Errorf("filterResult of a list the token may see whole = %s, want both tools", out)
	}
	// A list marked for shared caches becomes private: it depends on the
	// token (RS-18).
	out, changed = p.filterResult(mcpauthz.MethodListTools, []string{"r", "w"}, []byte(`{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"c"}],"cacheScope":"public"}}`))
	if !changed || !strings.Contains(string(out), `"cacheScope":"private"`) {
		t.Errorf("filterResult of a public list = %s, %v; want cacheScope private", out, changed)
	}
}
