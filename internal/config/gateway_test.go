package config

import (
	"strings"
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

// TestGatewayOpenAPI (issue 15): an openapi upstream's keys load, its
// document file and secrets are read by Resolve, and Validate reports
// each mistake at its key: openapi beside url, a missing document or an
// http one, a bad base URL, tools rules (an openapi route's scopes are its
// scope rules), a bad method, path or scope, auth on another upstream, and
// token exchange without client, secret or a resource identifier.
func TestGatewayOpenAPI(t *testing.T) {
	docFile := writeConfig(t, "pets.yaml", "openapi: 3.1.0\n")
	secret := writeConfig(t, "gw-secret", "s3cret\n")
	path := writeConfig(t, "gatehouse.yaml", `issuer: https://auth.example.com
gateway:
  routes:
    - name: pets
      url: https://mcp.example.com/pets/mcp
      scopes: [pets:read]
      upstream:
        openapi:
          document: `+docFile+`
          base_url: https://api.example.com/v1
          include: {tags: [pets], methods: [GET, post]}
          scopes: {read: [pets:read], write: [pets:write], operations: {deletePet: [pets:admin]}, scope_map: {"read:pets": pets:read}}
        auth:
          query_param: api_key
          query_value_env: PETS_KEY
          token_exchange: {resource: "https://api.example.com/", client_id: gw, client_secret_file: `+secret+`}
    - name: bad
      url: https://mcp.example.com/bad/mcp
      tools: {x: [a]}
      upstream:
        url: http://127.0.0.1:1/mcp
        openapi:
          document: http://docs.example.com/api.json
          base_url: /relative
          include: {methods: [FETCH], paths: [pets]}
          scopes: {read: ["bad scope"]}
        auth:
          query_value_file: /nonexistent
          token_exchange: {resource: "not a url"}
    - name: other
      url: https://mcp.example.com/other/mcp
      upstream:
        url: http://127.0.0.1:2/mcp
        auth: {query_param: k, query_value_env: K}
    - name: clash
      url: https://mcp.example.com/clash/mcp
      upstream:
        header_value_env: PETS_KEY
        openapi: {document: `+docFile+`, base_url: "http://api.example.com/v1"}
        auth:
          token_exchange: {resource: "https://MCP.example.com:443/pets/mcp/", client_id: gw, client_secret_env: PETS_KEY, token_url: "http://as.example.com/token"}
    - name: issuer
      url: https://mcp.example.com/issuer/mcp
      upstream:
        openapi: {document: `+docFile+`, base_url: "http://127.0.0.1:8080/v1"}
        auth:
          token_exchange: {resource: "https://auth.example.com", client_id: gw, client_secret_env: PETS_KEY, header: X-User-Token}
`)
	c, err := Load(path, env(map[string]string{"PETS_KEY": "key-1"}))
	must(t, err)
	o := c.Gateway.Routes[0].Upstream.OpenAPI
	if o == nil || o.BaseURL != "https://api.example.com/v1" || o.Scopes.Operations["deletePet"][0] != "pets:admin" || o.Include.Methods[1] != "post" {
		t.Fatalf("openapi = %+v", o)
	}
	got := lines(t, path, c.Gateway.Validate(c.Issuer))
	for _, g := range got {
		t.Log(g)
	}
	for _, want := range []string{
		`gateway.routes[1] (bad): upstream has openapi and url or command; set one`,
		`gateway.routes[1] (bad): tools rules do not apply to an openapi route`,
		`upstream.openapi.document "http://docs.example.com/api.json": fetch the document over https, or save it to a file`,
		`upstream.openapi.base_url "/relative" must be the API's absolute http(s) base URL`,
		`upstream.openapi.include.methods: "FETCH" is not an HTTP method`,
		`upstream.openapi.include.paths: "pets" must start with /`,
		`"bad scope" is not a scope token`,
		`upstream.auth: query_value_file or query_value_env needs query_param`,
		`upstream.auth.token_exchange.resource "not a url" must be the API's absolute http(s) resource identifier`,
		`upstream.auth.token_exchange.client_id is required`,
		`upstream.auth.token_exchange needs client_secret_file or client_secret_env`,
		`gateway.routes[2] (other): upstream.auth applies to an openapi upstream`,
		`gateway.routes[3] (clash): upstream.openapi.base_url "http://api.example.com/v1": use https (http only on loopback`,
		`gateway.routes[3] (clash): upstream.auth.token_exchange.token_url "http://as.example.com/token": use https`,
		`gateway.routes[3] (clash): upstream.auth.token_exchange.header (Authorization) and upstream.header carry two credentials in one header`,
		`gateway.routes[3] (clash): upstream.auth.token_exchange.resource "https://MCP.example.com:443/pets/mcp/" is a gateway route's URL`,
		`gateway.routes[4] (issuer): upstream.auth.token_exchange.resource "https://auth.example.com" is the authorization server's issuer`,
	} {
		found := false
		for _, g := range got {
			if strings.Contains(g, want) {
				found = true
			}
		}
		if !found {
			t.Errorf("no problem %q among:\n%s", want, strings.Join(got, "\n"))
		}
	}
	for _, g := range got {
		if strings.Contains(g, "routes[0]") || (strings.Contains(g, "routes[4]") && !strings.Contains(g, "issuer")) {
			t.Errorf("the valid route has a problem: %s", g)
		}
	}

	// Resolve reads the document and the secrets.
	c.Gateway.Routes = c.Gateway.Routes[:1]
	must(t, c.Gateway.Resolve(func(k string) (string, bool) { return map[string]string{"PETS_KEY": "key-1"}[k], k == "PETS_KEY" }))
	r := c.Gateway.Routes[0].Upstream
	if string(r.OpenAPI.Data) != "openapi: 3.1.0\n" || r.Auth.QueryValue != "key-1" || r.Auth.TokenExchange.ClientSecret != "s3cret" {
		t.Errorf("resolved: data %q query %q secret %q", r.OpenAPI.Data, r.Auth.QueryValue, r.Auth.TokenExchange.ClientSecret)
	}
}
