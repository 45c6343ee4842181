package gateway

import (
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"

	"github.com/gatehouse-mcp/gatehouse/internal/mcpauthz"
)

// Rules maps names (tool names, prompt names, resource URIs) to the scopes
// using them needs, on top of a route's baseline scopes. A key ending in
// "*" is a prefix matching every name that starts with the rest; the key
// "*" alone matches everything. An exact key wins over prefixes, a longer
// prefix over a shorter one. A resource URI is also matched without its
// query, fragment and trailing slashes (see ruleSet.needsURI).
type Rules map[string][]string

// ruleSet is compiled [Rules].
type ruleSet struct {
	exact    map[string][]string // name → every scope it needs (baseline included)
	byCanon  map[string][]string // canonURI(key) → every scope the exact keys of that form need
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
	rs := ruleSet{exact: map[string][]string{}, byCanon: map[string][]string{}, deny: deny, baseline: baseline}
	// In key order, so that the scopes of byCanon come in an order that
	// does not change from one run to the next.
	for _, k := range slices.Sorted(maps.Keys(r)) {
		scopes := r[k]
		for _, s := range scopes {
			if !mcpauthz.ValidScope(s) {
				return rs, fmt.Errorf("%q is not a scope token (RFC 6749 §3.3)", s)
			}
		}
		all := mcpauthz.Dedup(append(slices.Clone(baseline), scopes...))
		switch i := strings.IndexByte(k, '*'); {
		case i < 0:
			rs.exact[k] = all
			c := canonURI(k)
			rs.byCanon[c] = mcpauthz.Dedup(append(rs.byCanon[c], all...))
		case i == len(k)-1:
			rs.prefixes = append(rs.prefixes, prefixRule{k[:i], all})
		default:
			return rs, fmt.Errorf("%q: \"*\" may only end a key", k)
		}
	}
	sort.Slice(rs.prefixes, func(i, j int) bool { return len(rs.prefixes[i].prefix) > len(rs.prefixes[j].prefix) })
	return rs, nil
}

// empty reports whether r has no rules: every name needs the baseline.
func (r *ruleSet) empty() bool { return len(r.exact) == 0 && len(r.prefixes) == 0 && !r.deny }

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

// needsURI is needs for a resource URI. The rules match URIs as text, but
// an upstream serving files (or anything addressed by path) reads
// file:///secret/key?x, file:///secret/key#x and file:///secret/key/ as
// file:///secret/key. So a URI needs every scope its own text needs, every
// scope its canonical form (see [canonURI]) needs, and those of every
// exact rule whose key has the same canonical form; it is refused when
// either its text or its canonical form is. Appending to a URI can thus
// never make it need fewer scopes than the rule its canonical form
// matches.
func (r *ruleSet) needsURI(uri string) (scopes []string, ok bool) {
	need, ok := r.needs(uri)
	c := canonURI(uri)
	if c != uri {
		n, cok := r.needs(c)
		need, ok = mcpauthz.Dedup(append(slices.Clone(need), n...)), ok && cok
	}
	if n, found := r.byCanon[c]; found {
		need = mcpauthz.Dedup(append(slices.Clone(need), n...))
	}
	if !ok {
		return nil, false
	}
	return need, true
}

// canonURI is the form of a resource URI the policy also matches it by:
// without its query, its fragment and trailing slashes. Only a comparison
// key: it is never sent anywhere.
func canonURI(uri string) string {
	if i := strings.IndexAny(uri, "?#"); i >= 0 {
		uri = uri[:i]
	}
	return strings.TrimRight(uri, "/")
}

// policy is a route's compiled scope policy.
type policy struct {
	baseline  []string
	implied   mcpauthz.Implied // scope → the scopes it includes (closure)
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
func (p *policy) check(granted []string, msg *mcpauthz.Message) (decision, []string) {
	need, ok := p.baseline, true
	switch msg.Method {
	case mcpauthz.MethodCallTool:
		need, ok = p.tools.needs(msg.Name)
	case mcpauthz.MethodGetPrompt:
		need, ok = p.prompts.needs(msg.Name)
	case mcpauthz.MethodReadResource, mcpauthz.MethodSubscribe, mcpauthz.MethodUnsubscribe:
		need, ok = p.resources.needsURI(msg.URI)
	case mcpauthz.MethodComplete:
		// Completions of a prompt's or a resource template's arguments
		// can reveal what is behind it: the same rules apply.
		switch msg.Ref {
		case mcpauthz.RefPrompt:
			need, ok = p.prompts.needs(msg.Name)
		case mcpauthz.RefResource:
			need, ok = p.resources.needsURI(msg.URI)
		}
	}
	if !ok {
		return deny, nil
	}
	if !p.implied.HasAll(granted, need) {
		return stepUp, need
	}
	return allow, need
}

// may reports whether a token granted granted may use name, given what
// needs says it needs.
func (p *policy) may(needs func(string) ([]string, bool), granted []string, name string) bool {
	need, ok := needs(name)
	return ok && p.implied.HasAll(granted, need)
}

// filterResult removes from a list response (tools/list, prompts/list,
// resources/list) the entries a token granted granted may not use,
// keeping every other member (see mcpauthz.FilterList). It returns the rewritten message and true,
// or false when nothing was removed or msg is not such a response.
func (p *policy) filterResult(method string, granted []string, msg []byte) ([]byte, bool) {
	var needs func(string) ([]string, bool)
	var member, key string
	switch method {
	case mcpauthz.MethodListTools:
		needs, member, key = p.tools.needs, "tools", "name"
	case mcpauthz.MethodListPrompts:
		needs, member, key = p.prompts.needs, "prompts", "name"
	case mcpauthz.MethodListResources:
		needs, member, key = p.resources.needsURI, "resources", "uri"
	default:
		return nil, false
	}
	return mcpauthz.FilterList(msg, member, key, func(name string) bool { return p.may(needs, granted, name) })
}
