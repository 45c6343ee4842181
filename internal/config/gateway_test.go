package config

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestGatewayScopePolicies: a route's scope_policies load as written (an
// empty mapping stays distinct from an absent key: it lifts stored
// policies), and Validate reports, each at its key, a policy for a scope
// the route does not use, one without groups, a group name `user group
// add` would refuse, a scope implying a restricted one without being
// restricted as tightly, and policies nothing would register.
func TestGatewayScopePolicies(t *testing.T) {
	path := writeConfig(t, "gatehouse.yaml", `issuer: https://auth.example.com
gateway:
  routes:
    - name: notes
      url: https://mcp.example.com/notes/mcp
      upstream: {url: "http://127.0.0.1:3001/mcp"}
      scopes: [notes:read]
      tools: {add_note: [notes:write], "admin_*": [notes:admin]}
      prompts: {report: [notes:report]}
      implied_scopes: {notes:admin: [notes:write], notes:owner: [notes:admin]}
      scope_policies:
        notes:write: {groups: [editors, admins]}
        notes:admin: {groups: [admins]}
        notes:report: {groups: [auditors]}
    - name: files
      url: https://mcp.example.com/files/mcp
      upstream: {url: "http://127.0.0.1:3002/mcp"}
      scopes: [files:read]
      scope_policies: {}
    - name: wiki
      url: https://mcp.example.com/wiki/mcp
      upstream: {url: "http://127.0.0.1:3003/mcp"}
      scopes: [wiki:read]
      tools: {edit: [wiki:write]}
      implied_scopes: {wiki:admin: [wiki:write]}
      scope_policies:
        wiki:delete: {groups: [editors]}
        wiki:write:
          groups: [editors, "two words", "a,b"]
        wiki:read: {groups: []}
`)
	c, err := Load(path, env(nil))
	must(t, err)
	want := map[string]ScopePolicy{
		"notes:write":  {Groups: []string{"editors", "admins"}},
		"notes:admin":  {Groups: []string{"admins"}},
		"notes:report": {Groups: []string{"auditors"}},
	}
	if diff := cmp.Diff(want, c.Gateway.Routes[0].ScopePolicies); diff != "" {
		t.Errorf("notes scope_policies (-want +got):\n%s", diff)
	}
	if p := c.Gateway.Routes[1].ScopePolicies; p == nil || len(p) != 0 {
		t.Errorf("files scope_policies {} = %#v, want an empty, non-nil map", p)
	}
	got := lines(t, path, c.Gateway.Validate(c.Issuer))
	wantProblems := []string{
		// notes:owner implies notes:admin and, through it, notes:write.
		`gatehouse.yaml:11:7: gateway.routes[0] (notes): scope_policies: notes:owner implies notes:admin, which needs group admins; give notes:owner a policy whose groups are all among those (a user granted notes:owner has notes:admin at the gateway)`,
		`gatehouse.yaml:11:7: gateway.routes[0] (notes): scope_policies: notes:owner implies notes:write, which needs group editors or admins; give notes:owner a policy whose groups are all among those (a user granted notes:owner has notes:write at the gateway)`,
		// wiki:admin implying wiki:write is not reported while wiki:write's
		// groups are themselves refused.
		`gatehouse.yaml:27:9: gateway.routes[2] (wiki): scope_policies: "wiki:delete" is not a scope of the route (of scopes, tools, resources, prompts or implied_scopes)`,
		`gatehouse.yaml:29:29: gateway.routes[2] (wiki): scope_policies[wiki:write]: group name "two words": use 1 to 100 bytes of UTF-8 without spaces, commas or control characters`,
		`gatehouse.yaml:29:42: gateway.routes[2] (wiki): scope_policies[wiki:write]: group name "a,b": use 1 to 100 bytes of UTF-8 without spaces, commas or control characters`,
		`gatehouse.yaml:30:9: gateway.routes[2] (wiki): scope_policies[wiki:read]: groups or claims is required (the groups one of which a user needs for the scope, or claims: {name: [values]})`,
	}
	if diff := cmp.Diff(wantProblems, got); diff != "" {
		t.Errorf("problems (-want +got):\n%s", diff)
	}

	// Policies take effect only through the registered resource.
	path = writeConfig(t, "gatehouse.yaml", `issuer: https://auth.example.com
gateway:
  register_resources: false
  routes:
    - name: notes
      url: https://mcp.example.com/notes/mcp
      upstream: {url: "http://127.0.0.1:3001/mcp"}
      tools: {add_note: [notes:write]}
      scope_policies: {notes:write: {groups: [editors]}}
`)
	c, err = Load(path, env(nil))
	must(t, err)
	got = lines(t, path, c.Gateway.Validate(c.Issuer))
	wantProblems = []string{`gatehouse.yaml:9:7: gateway.routes[0] (notes): scope_policies take effect through the route's registered resource, and register_resources is false; remove them and set the policies at the authorization server (gatehouse resource add --scope-group)`}
	if diff := cmp.Diff(wantProblems, got); diff != "" {
		t.Errorf("register_resources false: problems (-want +got):\n%s", diff)
	}
}

// TestGatewayScopePolicyClaims: claim conditions load as written, alone
// or with groups, and Validate reports, each at its key, a claim without
// values, a bad claim name or value, and a scope implying one with a
// claim condition without the same condition at most as wide.
func TestGatewayScopePolicyClaims(t *testing.T) {
	path := writeConfig(t, "gatehouse.yaml", `issuer: https://auth.example.com
gateway:
  routes:
    - name: notes
      url: https://mcp.example.com/notes/mcp
      upstream: {url: "http://127.0.0.1:3001/mcp"}
      scopes: [notes:read]
      tools: {add_note: [notes:write], "admin_*": [notes:admin]}
      implied_scopes: {notes:admin: [notes:write]}
      scope_policies:
        notes:write: {claims: {department: [engineering, research]}}
        notes:admin: {groups: [admins], claims: {department: [engineering, sales]}}
        notes:read:
          claims: {"a=b": [x], level: [], team: ["a,b"]}
`)
	c, err := Load(path, env(nil))
	must(t, err)
	want := map[string]ScopePolicy{
		"notes:write": {Claims: map[string][]string{"department": {"engineering", "research"}}},
		"notes:admin": {Groups: []string{"admins"}, Claims: map[string][]string{"department": {"engineering", "sales"}}},
		"notes:read":  {Claims: map[string][]string{"a=b": {"x"}, "level": {}, "team": {"a,b"}}},
	}
	if diff := cmp.Diff(want, c.Gateway.Routes[0].ScopePolicies); diff != "" {
		t.Errorf("notes scope_policies (-want +got):\n%s", diff)
	}
	got := lines(t, path, c.Gateway.Validate(c.Issuer))
	wantProblems := []string{
		`gatehouse.yaml:10:7: gateway.routes[0] (notes): scope_policies: notes:admin implies notes:write, which needs department engineering or research; give notes:admin a claims condition on department whose values are all among those (a user granted notes:admin has notes:write at the gateway)`,
		`gatehouse.yaml:14:20: gateway.routes[0] (notes): scope_policies[notes:read].claims: claim name "a=b": use 1 to 100 bytes of UTF-8 without '=', spaces or control characters`,
		`gatehouse.yaml:14:32: gateway.routes[0] (notes): scope_policies[notes:read].claims[level]: list the values, one of which a user needs`,
		`gatehouse.yaml:14:50: gateway.routes[0] (notes): scope_policies[notes:read].claims[team]: claim value "a,b": use 1 to 255 bytes of UTF-8 without commas or control characters`,
	}
	if diff := cmp.Diff(wantProblems, got); diff != "" {
		t.Errorf("problems (-want +got):\n%s", diff)
	}
}
