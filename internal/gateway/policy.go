package gateway

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
)

// Rules maps names (tool names, prompt names, resource URIs) to the scopes
// using them needs, on top of a route's baseline scopes. A key ending in
// "*" is a prefix matching every name that starts with the rest; the key
// "*" alone matches everything. An exact key wins over prefixes, a longer
// prefix over a shorter one.
type Rules map[string][]string

// ruleSet is compiled [Rules].
type ruleSet struct {
	exact    map[string][]string // name → every scope it needs (baseline included)
	prefixes []prefixRule        // longest first
	deny     bool                // unmatched names are refused
	baseline []string
}

type prefixRule struct {
	prefix string
	scopes []string
}

// compileRules compiles r on top of baseline.
func compileRules(r Rules, deny bool, baseline []string) (ruleSet, error) {
	rs := ruleSet{exact: map[string][]string{}, deny: deny, baseline: baseline}
	for k, scopes := range r {
		for _, s := range scopes {
			if !validScope(s) {
				return rs, fmt.Errorf("%q is not a scope token (RFC 6749 §3.3)", s)
			}
		}
		all := dedup(append(slices.Clone(baseline), scopes...))
		switch i := strings.IndexByte(k, '*'); {
		case i < 0:
			rs.exact[k] = all
		case i == len(k)-1:
			rs.prefixes = append(rs.prefixes, prefixRule{k[:i], all})
		default:
			return rs, fmt.Errorf("%q: \"*\" may only end a key", k)
		}
	}
	sort.Slice(rs.prefixes, func(i, j int) bool { return len(rs.prefixes[i].prefix) > len(rs.prefixes[j].prefix) })
	return rs, nil
}

// needs returns every scope using name needs, or ok false when the policy
// refuses name whatever the scopes.
func (r *ruleSet) needs(name string) (scopes []string, ok bool) {
	if s, found := r.exact[name]; found {
		return s, true
	}
	for _, p := range r.prefixes {
		if strings.HasPrefix(name, p.prefix) {
			return p.scopes, true
		}
	}
	if r.deny {
		return nil, false
	}
	return r.baseline, true
}

// policy is a route's compiled scope policy.
type policy struct {
	baseline  []string
	implied   map[string][]string // scope → the scopes it includes (closure)
	tools     ruleSet
	resources ruleSet
	prompts   ruleSet
}

// decision is the policy's answer for one message.
type decision int

const (
	allow  decision = iota
	stepUp          // scopes missing: 403 with an insufficient_scope challenge
	deny            // refused by the policy whatever the scopes
)

func (d decision) String() string {
	switch d {
	case stepUp:
		return "step_up"
	case deny:
		return "denied"
	}
	return "allowed"
}

// check decides msg for a token granted granted, and returns every scope
// msg needs.
func (p *policy) check(granted []string, msg *message) (decision, []string) {
	need, ok := p.baseline, true
	switch msg.method {
	case methodCallTool:
		need, ok = p.tools.needs(msg.name)
	case methodGetPrompt:
		need, ok = p.prompts.needs(msg.name)
	case methodReadResource:
		need, ok = p.resources.needs(msg.uri)
	}
	if !ok {
		return deny, nil
	}
	if !p.hasAll(granted, need) {
		return stepUp, need
	}
	return allow, need
}

// has reports whether granted satisfies need, directly or through the
// scope hierarchy.
func (p *policy) has(granted []string, need string) bool {
	for _, g := range granted {
		if g == need || slices.Contains(p.implied[g], need) {
			return true
		}
	}
	return false
}

// hasAll reports whether granted satisfies every scope of needs.
func (p *policy) hasAll(granted, needs []string) bool {
	for _, n := range needs {
		if !p.has(granted, n) {
			return false
		}
	}
	return true
}

// may reports whether a token granted granted may use name under rules.
func (p *policy) may(r *ruleSet, granted []string, name string) bool {
	need, ok := r.needs(name)
	return ok && p.hasAll(granted, need)
}

// filterResult removes from a list response (tools/list, prompts/list,
// resources/list) the entries a token granted granted may not use,
// keeping every other member. It returns the rewritten message and true,
// or false when nothing was removed or msg is not such a response.
func (p *policy) filterResult(method string, granted []string, msg []byte) ([]byte, bool) {
	var rules *ruleSet
	var member, key string
	switch method {
	case methodListTools:
		rules, member, key = &p.tools, "tools", "name"
	case methodListPrompts:
		rules, member, key = &p.prompts, "prompts", "name"
	case methodListResources:
		rules, member, key = &p.resources, "resources", "uri"
	default:
		return nil, false
	}
	var top map[string]json.RawMessage
	if json.Unmarshal(msg, &top) != nil || top["result"] == nil {
		return nil, false
	}
	var result map[string]json.RawMessage
	if json.Unmarshal(top["result"], &result) != nil || result[member] == nil {
		return nil, false
	}
	var items []json.RawMessage
	if json.Unmarshal(result[member], &items) != nil {
		return nil, false
	}
	kept := items[:0]
	for _, it := range items {
		var entry map[string]json.RawMessage
		var name string
		if json.Unmarshal(it, &entry) == nil && json.Unmarshal(entry[key], &name) == nil && p.may(rules, granted, name) {
			kept = append(kept, it)
		}
	}
	// The filtered list depends on the token: a result that says it may be
	// cached for everyone (cacheScope, 2026-07-28) must say "private"
	// instead (RS-18), as package rs does.
	private := json.RawMessage(`"private"`)
	scopeChanged := result["cacheScope"] != nil && !bytes.Equal(bytes.TrimSpace(result["cacheScope"]), private)
	if len(kept) == len(items) && !scopeChanged {
		return nil, false
	}
	if scopeChanged {
		result["cacheScope"] = private
	}
	var err error
	if result[member], err = json.Marshal(kept); err != nil {
		return nil, false
	}
	if top["result"], err = json.Marshal(result); err != nil {
		return nil, false
	}
	out, err := json.Marshal(top)
	if err != nil {
		return nil, false
	}
	return out, true
}

// closure returns the transitive closure of an implies relation.
func closure(in map[string][]string) map[string][]string {
	if len(in) == 0 {
		return nil
	}
	out := make(map[string][]string, len(in))
	for s := range in {
		var reach []string
		stack := slices.Clone(in[s])
		for len(stack) > 0 {
			x := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			if x == s || slices.Contains(reach, x) {
				continue
			}
			reach = append(reach, x)
			stack = append(stack, in[x]...)
		}
		out[s] = reach
	}
	return out
}

// validScope reports whether s is a scope-token (RFC 6749 §3.3).
func validScope(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x21 || c == 0x22 || c == 0x5c || c > 0x7e {
			return false
		}
	}
	return true
}

// dedup returns s without repeated elements, in order of first appearance.
func dedup(s []string) []string {
	var out []string
	for _, x := range s {
		if !slices.Contains(out, x) {
			out = append(out, x)
		}
	}
	return out
}
