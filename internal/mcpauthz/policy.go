package mcpauthz

import (
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
)

// Rules maps names (tool names, prompt names, resource URIs) to the scopes
// using them needs, on top of a policy's baseline scopes. A key ending in
// "*" is a prefix matching every name that starts with the rest; the key
// "*" alone matches everything. An exact key wins over prefixes, a longer
// prefix over a shorter one. A resource URI is also matched without its
// query, fragment and trailing slashes (see ruleSet.needsURI).
type Rules map[string][]string

// PolicyOptions configures [NewPolicy].
type PolicyOptions struct {
	// Baseline are the scopes every message needs.
	Baseline []string
	// Implied maps a scope to the scopes it includes (see [Closure]).
	Implied map[string][]string
	// Methods maps a JSON-RPC method to the scopes it needs on top of
	// Baseline (package rs's MethodScopes).
	Methods map[string][]string
	// Tools, Prompts and Resources are the name rules of tools/call,
	// prompts/get and of messages naming a resource by URI; completions
	// of a prompt's or a resource template's arguments follow the rules
	// of the prompt or resource.
	Tools, Prompts, Resources Rules
	// DenyUnlistedTools, -Prompts and -Resources refuse a name no rule
	// matches, whatever the scopes.
	DenyUnlistedTools, DenyUnlistedPrompts, DenyUnlistedResources bool
	// LiteralNames makes every rule key a name matched exactly, "*"
	// included (package rs's ToolScopes, whose keys are tool names).
	LiteralNames bool
	// ListTools says which tools a tools/list response keeps (see
	// [ListMode]). Empty means [ListGrantable]. Prompts and resources
	// lists always keep what the token may use ([ListGranted]).
	ListTools ListMode
}

// ListMode says which tools a filtered tools/list response keeps.
type ListMode string

// The list modes.
const (
	// ListGrantable keeps every tool the policy does not refuse whatever
	// the scopes: a tool needing scopes the token lacks stays listed, and
	// calling it gets the step-up challenge naming them. Hosts that only
	// call listed tools (MCP Inspector, Claude Desktop through mcp-remote)
	// can reach step-up. The default.
	ListGrantable ListMode = "grantable"
	// ListGranted keeps only the tools the token may call now: the least
	// disclosure, but a host that only calls listed tools never calls one
	// that needs more scope, so it never steps up.
	ListGranted ListMode = "granted"
	// ListAll filters nothing: even tools the policy refuses whatever the
	// scopes (deny_unlisted_tools) are listed, with their descriptions
	// and input schemas, to every token with the baseline.
	ListAll ListMode = "all"
)

// ParseListMode returns the ListMode named s; "" is [ListGrantable].
func ParseListMode(s string) (ListMode, error) {
	switch m := ListMode(s); m {
	case "":
		return ListGrantable, nil
	case ListGrantable, ListGranted, ListAll:
		return m, nil
	}
	return "", fmt.Errorf("list_tools %q is not one of grantable, granted, all", s)
}

// Policy decides MCP messages by the scopes of a token: the one scope
// policy of package rs and of the gateway. Create it with [NewPolicy].
type Policy struct {
	listTools ListMode
	baseline  []string
	implied   Implied
	methods   map[string][]string // method → every scope it needs (baseline included)
	tools     ruleSet
	resources ruleSet
	prompts   ruleSet
}

// NewPolicy compiles o. It fails for a scope that is not a scope token
// (RFC 6749 §3.3) or, unless o.LiteralNames, a key with "*" other than at
// its end, naming the rule set at fault ("tools: …").
func NewPolicy(o PolicyOptions) (*Policy, error) {
	for _, s := range o.Baseline {
		if !ValidScope(s) {
			return nil, fmt.Errorf("scopes: %q is not a scope token (RFC 6749 §3.3)", s)
		}
	}
	listTools, err := ParseListMode(string(o.ListTools))
	if err != nil {
		return nil, err
	}
	p := &Policy{listTools: listTools, baseline: Dedup(o.Baseline), implied: Closure(o.Implied), methods: map[string][]string{}}
	for _, m := range slices.Sorted(maps.Keys(o.Methods)) {
		if err := validScopes(o.Methods[m]); err != nil {
			return nil, fmt.Errorf("methods: %v", err)
		}
		p.methods[m] = Dedup(append(slices.Clone(p.baseline), o.Methods[m]...))
	}
	if p.tools, err = compileRules(o.Tools, o.DenyUnlistedTools, o.LiteralNames, p.baseline); err != nil {
		return nil, fmt.Errorf("tools: %v", err)
	}
	if p.resources, err = compileRules(o.Resources, o.DenyUnlistedResources, o.LiteralNames, p.baseline); err != nil {
		return nil, fmt.Errorf("resources: %v", err)
	}
	if p.prompts, err = compileRules(o.Prompts, o.DenyUnlistedPrompts, o.LiteralNames, p.baseline); err != nil {
		return nil, fmt.Errorf("prompts: %v", err)
	}
	return p, nil
}

func validScopes(scopes []string) error {
	for _, s := range scopes {
		if !ValidScope(s) {
			return fmt.Errorf("%q is not a scope token (RFC 6749 §3.3)", s)
		}
	}
	return nil
}

// Baseline returns the scopes every message needs.
func (p *Policy) Baseline() []string { return p.baseline }

// Implied returns the scope hierarchy, closed.
func (p *Policy) Implied() Implied { return p.implied }

// HasResourceRules reports whether any resource rule exists: without one
// every URI needs the baseline, whatever its form.
func (p *Policy) HasResourceRules() bool { return !p.resources.empty() }

// Decision is a policy's answer for one message.
type Decision int

// The decisions.
const (
	Allow  Decision = iota
	StepUp          // scopes missing: 403 with an insufficient_scope challenge
	Deny            // refused by the policy whatever the scopes
)

// String returns the decision's name in metrics and audit records.
func (d Decision) String() string {
	switch d {
	case StepUp:
		return "step_up"
	case Deny:
		return "denied"
	}
	return "allowed"
}

// Decide decides m for a token granted granted, and returns every scope m
// needs (nil when denied).
func (p *Policy) Decide(granted []string, m *Message) (Decision, []string) {
	need, ok := p.baseline, true
	switch m.Method {
	case MethodCallTool:
		need, ok = p.tools.needs(m.Name)
	case MethodGetPrompt:
		need, ok = p.prompts.needs(m.Name)
	case MethodReadResource, MethodSubscribe, MethodUnsubscribe:
		need, ok = p.resources.needsURI(m.URI)
	case MethodComplete:
		// Completions of a prompt's or a resource template's arguments
		// can reveal what is behind it: the same rules apply.
		switch m.Ref {
		case RefPrompt:
			need, ok = p.prompts.needs(m.Name)
		case RefResource:
			need, ok = p.resources.needsURI(m.URI)
		}
	}
	if !ok {
		return Deny, nil
	}
	if s, found := p.methods[m.Method]; found {
		// The method's scopes first, then the name's.
		need = Dedup(append(slices.Clone(s), need...))
	}
	if !p.implied.HasAll(granted, need) {
		return StepUp, need
	}
	return Allow, need
}

// Verdict is a policy's answer for the messages of one request.
type Verdict struct {
	// Denied is the first message the policy refuses whatever the
	// scopes; nil if none.
	Denied *Message
	// StepUp is the first message needing scopes the token lacks (an
	// empty Message when the token lacks the baseline itself); nil if
	// none.
	StepUp *Message
	// Need is every scope the request needs, for the step-up challenge:
	// the scopes of every message (not only those that failed), so that
	// the token a client obtains by stepping up covers the whole request
	// (RFC 6750 §3.1: "the scope necessary to access the protected
	// resource"). The baseline when there is no message.
	Need []string
}

// Check decides every message of a request once, for a token granted
// granted, and stores the decision of msgs[i] in decisions[i] unless
// decisions is nil (it must then be as long as msgs): a caller that needs
// no more than the verdict allocates nothing. The baseline is checked
// even with no message.
func (p *Policy) Check(granted []string, msgs []Message, decisions []Decision) Verdict {
	var v Verdict
	for i := range msgs {
		m := &msgs[i]
		d, need := p.Decide(granted, m)
		if decisions != nil {
			decisions[i] = d
		}
		v.Need = Dedup(append(v.Need, need...))
		switch {
		case d == Deny && v.Denied == nil:
			v.Denied = m
		case d == StepUp && v.StepUp == nil:
			v.StepUp = m
		}
	}
	if len(v.Need) == 0 {
		v.Need = p.baseline
	}
	if v.StepUp == nil && !p.implied.HasAll(granted, p.baseline) {
		v.StepUp = &Message{}
	}
	return v
}

// ListTools returns the policy's [ListMode].
func (p *Policy) ListTools() ListMode { return p.listTools }

// FiltersTools reports whether a tools/list response can lose a tool to
// the policy: with [ListGranted], or with [ListGrantable] when some tool
// is refused whatever the scopes (deny_unlisted_tools). Otherwise the
// list does not depend on the token and passes as the server sent it.
func (p *Policy) FiltersTools() bool {
	switch p.listTools {
	case ListGranted:
		return true
	case ListGrantable:
		return p.tools.deny
	}
	return false
}

// FilterList removes from the response to a list request (tools/list,
// prompts/list, resources/list: method) the entries a token granted
// granted is not shown (see [Policy.Listed]), keeping every other member
// (see [FilterList]). It returns the rewritten message and true, or false
// when msg is not such a response or (tools/list, see
// [Policy.FiltersTools]) nothing in it can be removed.
func (p *Policy) FilterList(method string, granted []string, msg []byte) ([]byte, bool) {
	var member, key string
	switch method {
	case MethodListTools:
		if !p.FiltersTools() {
			return nil, false
		}
		member, key = "tools", "name"
	case MethodListPrompts:
		member, key = "prompts", "name"
	case MethodListResources:
		member, key = "resources", "uri"
	default:
		return nil, false
	}
	return FilterList(msg, member, key, p.Listed(method, granted))
}

// Listed returns whether a list response shows a token granted granted an
// entry of the list method returns: for tools/list as the policy's
// [ListMode] says, for prompts/list and resources/list what
// [Policy.Allowed] allows.
func (p *Policy) Listed(method string, granted []string) func(name string) bool {
	if method != MethodListTools {
		return p.Allowed(method, granted)
	}
	switch p.listTools {
	case ListAll:
		return func(string) bool { return true }
	case ListGrantable:
		// Hidden only when no scope can ever let the token call it.
		return func(name string) bool {
			_, ok := p.tools.needs(name)
			return ok
		}
	}
	return p.Allowed(method, granted)
}

// Allowed returns whether a token granted granted may use an entry of the
// list method returns (a tool, prompt or resource, by name or URI): what
// its rule needs, granted directly or through the scope hierarchy. It is
// false for anything else.
func (p *Policy) Allowed(method string, granted []string) func(name string) bool {
	// One closure, no method value: this is per request.
	var rules *ruleSet
	switch method {
	case MethodListTools:
		rules = &p.tools
	case MethodListPrompts:
		rules = &p.prompts
	case MethodListResources:
		rules = &p.resources
	default:
		return func(string) bool { return false }
	}
	byURI := method == MethodListResources
	return func(name string) bool {
		need, ok := rules.needs(name)
		if byURI {
			need, ok = rules.needsURI(name)
		}
		return ok && p.implied.HasAll(granted, need)
	}
}

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

// compileRules compiles r on top of baseline; with literal, every key is
// an exact name.
func compileRules(r Rules, deny, literal bool, baseline []string) (ruleSet, error) {
	rs := ruleSet{exact: map[string][]string{}, byCanon: map[string][]string{}, deny: deny, baseline: baseline}
	// In key order, so that the scopes of byCanon come in an order that
	// does not change from one run to the next.
	for _, k := range slices.Sorted(maps.Keys(r)) {
		scopes := r[k]
		if err := validScopes(scopes); err != nil {
			return rs, err
		}
		all := Dedup(append(slices.Clone(baseline), scopes...))
		i := strings.IndexByte(k, '*')
		switch {
		case i < 0 || literal:
			rs.exact[k] = all
			c := canonURI(k)
			rs.byCanon[c] = Dedup(append(rs.byCanon[c], all...))
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
		need, ok = Dedup(append(slices.Clone(need), n...)), ok && cok
	}
	if n, found := r.byCanon[c]; found {
		need = Dedup(append(slices.Clone(need), n...))
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
