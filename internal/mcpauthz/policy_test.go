package mcpauthz

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func mustPolicy(t *testing.T, o PolicyOptions) *Policy {
	t.Helper()
	p, err := NewPolicy(o)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestPolicyDecide(t *testing.T) {
	p := mustPolicy(t, PolicyOptions{
		Baseline:            []string{"r"},
		Implied:             map[string][]string{"admin": {"w"}, "w": {"r"}},
		Tools:               Rules{"get": nil, "set": {"w"}, "admin_*": {"admin"}, "admin_safe": {"w"}, "*": {"x"}},
		Resources:           Rules{"file:///secret/*": {"admin"}},
		Prompts:             Rules{"p1": {"w"}},
		DenyUnlistedPrompts: true,
	})
	tests := []struct {
		name    string
		granted []string
		msg     Message
		want    Decision
		need    []string
	}{
		{"listed tool, baseline only", []string{"r"}, Message{Method: MethodCallTool, Name: "get"}, Allow, []string{"r"}},
		{"listed tool needing more", []string{"r"}, Message{Method: MethodCallTool, Name: "set"}, StepUp, []string{"r", "w"}},
		{"implied scope", []string{"admin"}, Message{Method: MethodCallTool, Name: "set"}, Allow, []string{"r", "w"}},
		{"prefix", []string{"r", "w"}, Message{Method: MethodCallTool, Name: "admin_drop"}, StepUp, []string{"r", "admin"}},
		{"exact beats prefix", []string{"r", "w"}, Message{Method: MethodCallTool, Name: "admin_safe"}, Allow, []string{"r", "w"}},
		{"default for unlisted", []string{"r"}, Message{Method: MethodCallTool, Name: "other"}, StepUp, []string{"r", "x"}},
		{"resource prefix", []string{"r"}, Message{Method: MethodReadResource, URI: "file:///secret/key"}, StepUp, []string{"r", "admin"}},
		{"unlisted resource", []string{"r"}, Message{Method: MethodReadResource, URI: "file:///public"}, Allow, []string{"r"}},
		{"listed prompt", []string{"w"}, Message{Method: MethodGetPrompt, Name: "p1"}, Allow, []string{"r", "w"}},
		{"unlisted prompt denied", []string{"admin"}, Message{Method: MethodGetPrompt, Name: "p2"}, Deny, nil},
		{"subscribe like read", []string{"r"}, Message{Method: MethodSubscribe, URI: "file:///secret/key"}, StepUp, []string{"r", "admin"}},
		{"completion of a listed prompt", []string{"r"}, Message{Method: MethodComplete, Ref: RefPrompt, Name: "p1"}, StepUp, []string{"r", "w"}},
		{"completion of an unlisted prompt denied", []string{"admin"}, Message{Method: MethodComplete, Ref: RefPrompt, Name: "p2"}, Deny, nil},
		{"completion of a secret resource template", []string{"r"}, Message{Method: MethodComplete, Ref: RefResource, URI: "file:///secret/{name}"}, StepUp, []string{"r", "admin"}},
		{"completion of another kind", []string{"r"}, Message{Method: MethodComplete, Ref: "ref/other", Name: "p2"}, Allow, []string{"r"}},
		{"other method", []string{"r"}, Message{Method: "ping"}, Allow, []string{"r"}},
		{"baseline missing", nil, Message{Method: "ping"}, StepUp, []string{"r"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, need := p.Decide(tt.granted, &tt.msg)
			if d != tt.want || !slices.Equal(need, tt.need) {
				t.Errorf("Decide(%v, %s %s%s) = %v %v, want %v %v", tt.granted, tt.msg.Method, tt.msg.Name, tt.msg.URI, d, need, tt.want, tt.need)
			}
		})
	}
}

// TestPolicyMethodsAndLiteralNames checks the rules of package rs: scopes
// per method on top of those per tool (the method's first), and tool
// names matched exactly, "*" included.
func TestPolicyMethodsAndLiteralNames(t *testing.T) {
	p := mustPolicy(t, PolicyOptions{
		Baseline:     []string{"r"},
		Methods:      map[string][]string{MethodCallTool: {"call"}, MethodReadResource: {"res"}},
		Tools:        Rules{"add_*": {"w"}, "a*b": {"x"}},
		LiteralNames: true,
	})
	for _, tt := range []struct {
		msg  Message
		want []string
	}{
		{Message{Method: MethodCallTool, Name: "add_*"}, []string{"r", "call", "w"}},
		{Message{Method: MethodCallTool, Name: "add_note"}, []string{"r", "call"}},
		{Message{Method: MethodCallTool, Name: "a*b"}, []string{"r", "call", "x"}},
		{Message{Method: MethodReadResource, URI: "file:///a"}, []string{"r", "res"}},
		{Message{Method: MethodInitialize}, []string{"r"}},
	} {
		if d, need := p.Decide(nil, &tt.msg); d != StepUp || !slices.Equal(need, tt.want) {
			t.Errorf("Decide(%s %s%s) = %v %v, want step_up %v", tt.msg.Method, tt.msg.Name, tt.msg.URI, d, need, tt.want)
		}
	}
	if _, err := NewPolicy(PolicyOptions{Tools: Rules{"a*b": nil}}); err == nil || !strings.Contains(err.Error(), `tools: "a*b"`) {
		t.Errorf(`NewPolicy with the tool rule "a*b" = %v, want an error naming it`, err)
	}
	if _, err := NewPolicy(PolicyOptions{Methods: map[string][]string{"x": {"a b"}}}); err == nil || !strings.Contains(err.Error(), `methods: "a b" is not a scope token`) {
		t.Errorf(`NewPolicy with the method scope "a b" = %v, want an error naming it`, err)
	}
}

// TestPolicyCheck checks a request's verdict: every message decided once,
// denial before step-up, and a step-up asking for every scope the request
// needs, so that the new token covers all of it.
func TestPolicyCheck(t *testing.T) {
	p := mustPolicy(t, PolicyOptions{
		Baseline:            []string{"r"},
		Tools:               Rules{"set": {"w"}, "drop": {"admin"}},
		Prompts:             Rules{"p": {"prompts"}},
		DenyUnlistedPrompts: true,
	})
	set := Message{Method: MethodCallTool, Name: "set", IsRequest: true}
	drop := Message{Method: MethodCallTool, Name: "drop", IsRequest: true}
	prompt := Message{Method: MethodGetPrompt, Name: "p", IsRequest: true}
	secret := Message{Method: MethodGetPrompt, Name: "secret", IsRequest: true}
	note := Message{Method: "notifications/initialized", IsRequest: true}
	for _, tt := range []struct {
		name           string
		granted        []string
		msgs           []Message
		decisions      []Decision
		denied, stepUp string // the method and name of the message, "" for none, "-" for an empty one
		need           []string
	}{
		{"all allowed", []string{"r", "w", "prompts"}, []Message{set, prompt, note}, []Decision{Allow, Allow, Allow}, "", "", []string{"r", "w", "prompts"}},
		{"the step-up asks for every scope of the batch", []string{"r", "prompts"}, []Message{prompt, set, drop}, []Decision{Allow, StepUp, StepUp}, "", "tools/call set", []string{"r", "prompts", "w", "admin"}},
		{"denial wins", []string{"r"}, []Message{set, secret}, []Decision{StepUp, Deny}, "prompts/get secret", "tools/call set", []string{"r", "w"}},
		{"no message: the baseline", nil, nil, []Decision{}, "", "-", []string{"r"}},
		{"baseline missing", nil, []Message{note}, []Decision{StepUp}, "", "notifications/initialized ", []string{"r"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			decisions := make([]Decision, len(tt.msgs))
			v := p.Check(tt.granted, tt.msgs, decisions)
			if nv := p.Check(tt.granted, tt.msgs, nil); !cmp.Equal(nv, v) {
				t.Errorf("Check without decisions = %+v, with = %+v", nv, v)
			}
			name := func(m *Message) string {
				switch {
				case m == nil:
					return ""
				case m.Method == "":
					return "-"
				}
				return m.Method + " " + m.Name
			}
			got := []any{decisions, name(v.Denied), name(v.StepUp), v.Need}
			want := []any{tt.decisions, tt.denied, tt.stepUp, tt.need}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("Check(%v, …) = decisions, denied, step-up, need (-want +got):\n%s", tt.granted, diff)
			}
		})
	}
}

func TestFilterResult(t *testing.T) {
	p := mustPolicy(t, PolicyOptions{Baseline: []string{"r"}, Tools: Rules{"b": {"w"}, "c": nil}, DenyUnlistedTools: true, ListTools: ListGranted})
	in := `{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"a"},{"name":"b","x":1},{"name":"c"}],"nextCursor":"n"}}`
	out, changed := p.FilterList(MethodListTools, []string{"r"}, []byte(in))
	if !changed {
		t.Fatal("Policy.FilterList did not change the list")
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
	if out, _ := p.FilterList(MethodListTools, []string{"r", "w"}, []byte(`{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"b"},{"name":"c"}]}}`)); !strings.Contains(string(out), `[{"name":"b"},{"name":"c"}]`) {
		t.Errorf("Policy.FilterList of a list the token may see whole = %s, want both tools", out)
	}
	// A list marked for shared caches becomes private: it depends on the
	// token (RS-18).
	out, changed = p.FilterList(MethodListTools, []string{"r", "w"}, []byte(`{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"c"}],"cacheScope":"public"}}`))
	if !changed || !strings.Contains(string(out), `"cacheScope":"private"`) {
		t.Errorf("Policy.FilterList of a public list = %s, %v; want cacheScope private", out, changed)
	}
}

// TestListModes: which tools a token granted only the baseline sees in
// each ListMode, with a tool needing more scope (b), one needing the
// baseline (c) and one the policy refuses whatever the scopes (a,
// unlisted). Prompts and resources lists keep what the token may use.
func TestListModes(t *testing.T) {
	const tools = `{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"a"},{"name":"b"},{"name":"c"}]}}`
	const prompts = `{"jsonrpc":"2.0","id":1,"result":{"prompts":[{"name":"a"},{"name":"b"},{"name":"c"}]}}`
	names := func(t *testing.T, msg []byte, member string) []string {
		var m struct {
			Result map[string]json.RawMessage `json:"result"`
		}
		if err := json.Unmarshal(msg, &m); err != nil {
			t.Fatalf("list %s: %v", msg, err)
		}
		if string(m.Result["cacheScope"]) != `"private"` {
			t.Errorf("list %s: cacheScope %s, want \"private\" (the list depends on the token)", msg, m.Result["cacheScope"])
		}
		var entries []struct {
			Name string `json:"name"`
		}
		if err := json.Unmarshal(m.Result[member], &entries); err != nil {
			t.Fatalf("list %s: %v", msg, err)
		}
		var out []string
		for _, e := range entries {
			out = append(out, e.Name)
		}
		return out
	}
	for _, tt := range []struct {
		name        string
		list        ListMode
		deny        bool
		wantTools   []string // nil: the list passes untouched
		wantPrompts []string
	}{
		{"default", "", true, []string{"b", "c"}, []string{"c"}},
		{"grantable", ListGrantable, true, []string{"b", "c"}, []string{"c"}},
		{"grantable, nothing denied", ListGrantable, false, nil, []string{"a", "c"}},
		{"granted", ListGranted, true, []string{"c"}, []string{"c"}},
		{"granted, nothing denied", ListGranted, false, []string{"a", "c"}, []string{"a", "c"}},
		{"all", ListAll, true, nil, []string{"c"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := mustPolicy(t, PolicyOptions{
				Baseline: []string{"r"},
				Tools:    Rules{"b": {"w"}, "c": nil}, DenyUnlistedTools: tt.deny,
				Prompts: Rules{"b": {"w"}, "c": nil}, DenyUnlistedPrompts: tt.deny,
				ListTools: tt.list,
			})
			out, changed := p.FilterList(MethodListTools, []string{"r"}, []byte(tools))
			if changed != (tt.wantTools != nil) {
				t.Errorf("FilterList(tools/list) changed = %v, want %v", changed, tt.wantTools != nil)
			}
			if changed {
				if diff := cmp.Diff(tt.wantTools, names(t, out, "tools")); diff != "" {
					t.Errorf("FilterList(tools/list) with %q (-want +got):\n%s", tt.list, diff)
				}
			}
			out, _ = p.FilterList(MethodListPrompts, []string{"r"}, []byte(prompts))
			if diff := cmp.Diff(tt.wantPrompts, names(t, out, "prompts")); diff != "" {
				t.Errorf("FilterList(prompts/list) with %q (-want +got):\n%s", tt.list, diff)
			}
		})
	}
	if _, err := NewPolicy(PolicyOptions{ListTools: "callable"}); err == nil || !strings.Contains(err.Error(), "grantable, granted, all") {
		t.Errorf("NewPolicy(ListTools callable) = %v, want an error naming the modes", err)
	}
}

// FuzzResourceNeeds: whatever a URI appends to its canonical form (a
// query, a fragment, trailing slashes), it needs at least the scopes of
// the exact rule for that form, and it is refused when that form is.
func FuzzResourceNeeds(f *testing.F) {
	for _, s := range []string{
		"file:///secret/key", "file:///secret/key?x", "file:///secret/key#x", "file:///secret/key/", "file:///secret/key//?a#b",
		"https://example.com/a?q=1#f", "urn:isbn:0451450523", "mem:a/", "file:///", "?x", "",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, uri string) {
		c := canonURI(uri)
		if strings.Contains(c, "*") {
			return // not a key
		}
		rules, err := compileRules(Rules{c: {"secret"}, c + "/": {"slash"}}, false, false, []string{"base"})
		if err != nil {
			t.Fatal(err)
		}
		need, ok := rules.needsURI(uri)
		if !ok || !slices.Contains(need, "base") || !slices.Contains(need, "secret") || !slices.Contains(need, "slash") {
			t.Fatalf("needsURI(%q) with rules for %q and %q/ = %v %v, want base, secret and slash", uri, c, c, need, ok)
		}
		// A route that lists only uri refuses it when its canonical
		// form differs, being unlisted.
		listed, err := compileRules(Rules{strings.ReplaceAll(uri, "*", ""): nil}, true, false, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := listed.needsURI(uri); ok && c != uri && !strings.Contains(uri, "*") {
			t.Fatalf("needsURI(%q) with only it listed = ok, want refused: %q is unlisted", uri, c)
		}
	})
}
