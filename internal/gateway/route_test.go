package gateway

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/gatehouse-mcp/gatehouse/internal/mcpauthz"
)

// The tests of this file build the policy the way a deployment does,
// through New (newRoute) from a Route, and check it with real requests to
// fakemcp; the compiled rules are checked in package mcpauthz.

// wantDenied checks a response the policy refuses whatever the scopes: a
// JSON-RPC access error (HTTP 200, the session lives) naming the subject.
func wantDenied(t *testing.T, call string, status int, res rpcResult, subject string) {
	t.Helper()
	want := subject + " is not allowed through this gateway"
	if status != http.StatusOK || res.Error == nil || res.Error.Code != mcpauthz.CodeForbidden || res.Error.Message != want {
		t.Errorf("%s = %d %+v, want 200 with JSON-RPC error %d %q", call, status, res.Error, mcpauthz.CodeForbidden, want)
		return
	}
	if d, _ := res.Error.Data.(map[string]any); d["error"] != "access_denied" {
		t.Errorf("%s: error data %v, want error access_denied", call, res.Error.Data)
	}
}

// wantResult checks a successful JSON-RPC response.
func wantResult(t *testing.T, call string, status int, res rpcResult) {
	t.Helper()
	if status != http.StatusOK || res.Error != nil || res.Result == nil {
		t.Errorf("%s = %d error %+v, want a result", call, status, res.Error)
	}
}

// TestRouteDenyUnlisted checks DenyUnlistedPrompts and
// DenyUnlistedResources of a route built by New: prompts and resources
// the rules do not list are hidden from the lists and refused, even to a
// token holding every scope, while the same rules without the flags serve
// them (the control route).
func TestRouteDenyUnlisted(t *testing.T) {
	rules := func(name string, deny bool) Route {
		r := fakeRoute(t)
		r.Name, r.URL = name, "/"+name+"/mcp"
		r.Prompts = Rules{"greet": nil}
		r.Resources = Rules{"fake://public/*": nil}
		r.DenyUnlistedPrompts, r.DenyUnlistedResources = deny, deny
		return r
	}
	tg := newTestGateway(t, []Route{rules("deny", true), rules("open", false)}, nil)

	deny := newRawClient(t, tg.base+"/deny/mcp", "alice-admin")
	deny.initialize()
	_, list := deny.call("prompts/list", map[string]any{})
	if got, want := names(t, list, "prompts", "name"), []string{"greet"}; !cmp.Equal(got, want) {
		t.Errorf("deny: prompts/list = %v, want %v", got, want)
	}
	status, res := deny.call("prompts/get", map[string]any{"name": "secret_prompt"})
	wantDenied(t, "deny: prompts/get secret_prompt", status, res, `prompt "secret_prompt"`)
	status, res = deny.call("completion/complete", map[string]any{"ref": map[string]any{"type": "ref/prompt", "name": "secret_prompt"}, "argument": map[string]any{"name": "a", "value": ""}})
	wantDenied(t, "deny: completion/complete of prompt secret_prompt", status, res, `prompt "secret_prompt"`)
	status, res = deny.call("prompts/get", map[string]any{"name": "greet"})
	wantResult(t, "deny: prompts/get greet", status, res)

	_, list = deny.call("resources/list", map[string]any{})
	if got, want := names(t, list, "resources", "uri"), []string{"fake://public/a"}; !cmp.Equal(got, want) {
		t.Errorf("deny: resources/list = %v, want %v", got, want)
	}
	status, res = deny.call("resources/read", map[string]any{"uri": "fake://private/b"})
	wantDenied(t, "deny: resources/read fake://private/b", status, res, `resource "fake://private/b"`)
	status, res = deny.call("resources/subscribe", map[string]any{"uri": "fake://private/b"})
	wantDenied(t, "deny: resources/subscribe fake://private/b", status, res, `resource "fake://private/b"`)
	status, res = deny.call("resources/read", map[string]any{"uri": "fake://public/a"})
	wantResult(t, "deny: resources/read fake://public/a", status, res)

	open := newRawClient(t, tg.base+"/open/mcp", "alice-admin")
	open.initialize()
	_, list = open.call("prompts/list", map[string]any{})
	if got, want := names(t, list, "prompts", "name"), []string{"greet", "secret_prompt"}; !cmp.Equal(got, want) {
		t.Errorf("open: prompts/list = %v, want %v", got, want)
	}
	status, res = open.call("prompts/get", map[string]any{"name": "secret_prompt"})
	wantResult(t, "open: prompts/get secret_prompt", status, res)
	_, list = open.call("resources/list", map[string]any{})
	if got, want := names(t, list, "resources", "uri"), []string{"fake://public/a", "fake://private/b"}; !cmp.Equal(got, want) {
		t.Errorf("open: resources/list = %v, want %v", got, want)
	}
	status, res = open.call("resources/read", map[string]any{"uri": "fake://private/b"})
	wantResult(t, "open: resources/read fake://private/b", status, res)
}

// TestRouteImpliedScopes checks ImpliedScopes of a route built by New: a
// token holding only fake:super, which implies fake:admin, which implies
// fake:read, passes the baseline check of every request (fake:read, in
// rs.RequireBearer) and the per-tool, per-prompt and per-resource policy
// (fake:admin), and sees every listed entry; the same token on a route
// without the hierarchy is refused at the baseline.
func TestRouteImpliedScopes(t *testing.T) {
	implied := fakeRoute(t)
	implied.ImpliedScopes = map[string][]string{"fake:super": {"fake:admin"}, "fake:admin": {"fake:read"}}
	flat := fakeRoute(t)
	flat.Name, flat.URL = "flat", "/flat/mcp"
	tg := newTestGateway(t, []Route{implied, flat}, nil)

	c := newRawClient(t, tg.base+"/fake/mcp", "dave-super")
	c.initialize()
	status, res := c.callTool("admin_reset", map[string]any{"message": "implied"})
	if status != http.StatusOK || toolText(res) != "admin_reset: implied" {
		t.Errorf("tools/call admin_reset with fake:super = %d %+v, want the tool's answer", status, res)
	}
	_, list := c.call("tools/list", map[string]any{})
	if got := names(t, list, "tools", "name"); len(got) != 12 || !strings.Contains(strings.Join(got, " "), "admin_wipe") {
		t.Errorf("tools/list with fake:super = %v, want all 12 tools", got)
	}
	status, res = c.call("prompts/get", map[string]any{"name": "secret_prompt"})
	wantResult(t, "prompts/get secret_prompt with fake:super", status, res)
	status, res = c.call("resources/read", map[string]any{"uri": "fake://private/b"})
	wantResult(t, "resources/read fake://private/b with fake:super", status, res)

	// A scope implies the scopes below it, not the ones above: fake:read
	// alone still gets the step-up challenge for admin_*.
	r := newRawClient(t, tg.base+"/fake/mcp", "alice-read")
	r.initialize()
	if status, _ := r.callTool("admin_reset", nil); status != http.StatusForbidden {
		t.Errorf("tools/call admin_reset with fake:read = %d, want 403", status)
	}

	resp, _ := newRawClient(t, tg.base+"/flat/mcp", "dave-super").post(`{"jsonrpc":"2.0","id":0,"method":"initialize","params":{}}`)
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(resp.Header.Get("WWW-Authenticate"), `error="insufficient_scope"`) {
		t.Errorf("initialize with fake:super on a route without ImpliedScopes = %d %q, want 403 insufficient_scope",
			resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
}

// TestRouteStepUpCoversTheBatch checks the step-up challenge of a batch:
// it asks for every scope the batch needs, those of the calls the token
// may make included, so that the token a client gets by stepping up
// (MCP clients of 2025-11-25 replace their scopes with the challenge's)
// still makes them. Nothing is forwarded.
func TestRouteStepUpCoversTheBatch(t *testing.T) {
	route := httpRoute("http://127.0.0.1:1") // never reached
	route.Tools = Rules{"admin_*": {"fake:admin"}, "write_*": {"fake:write"}}
	tg := newTestGateway(t, []Route{route}, nil)
	c := newRawClient(t, tg.base+"/up/mcp", "erin-write")
	resp, _ := c.post(`[{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"write_note"}},` +
		`{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"admin_reset"}}]`)
	want := `Bearer error="insufficient_scope", scope="fake:read fake:write fake:admin", resource_metadata="` + tg.base +
		`/.well-known/oauth-protected-resource/up/mcp", error_description="tool admin_reset needs scope fake:read fake:write fake:admin"`
	if got := resp.Header.Get("WWW-Authenticate"); resp.StatusCode != http.StatusForbidden || got != want {
		t.Errorf("batch of write_note and admin_reset with fake:read fake:write = %d %s\nwant 403 %s", resp.StatusCode, got, want)
	}
}

// TestRouteListTools checks list_tools on routes built by New, with a
// tool needing more scope (admin_*: fake:admin), one needing the
// baseline (echo) and the rest refused whatever the scopes
// (deny_unlisted_tools): what a fake:read token sees in each mode, that
// a refused tool is never listed under grantable, and that every mode
// still refuses it and steps up a listed admin_reset.
func TestRouteListTools(t *testing.T) {
	all := []string{"admin_reset", "admin_wipe", "big", "crash", "echo", "env", "flood", "garbage", "hang", "notify", "progress", "slow"}
	modes := []struct {
		list mcpauthz.ListMode
		want []string
	}{
		{"", []string{"admin_reset", "admin_wipe", "echo"}},
		{mcpauthz.ListGrantable, []string{"admin_reset", "admin_wipe", "echo"}},
		{mcpauthz.ListGranted, []string{"echo"}},
		{mcpauthz.ListAll, all},
	}
	var routes []Route
	for i, m := range modes {
		r := fakeRoute(t)
		r.Name = fmt.Sprintf("r%d", i)
		r.URL = "/" + r.Name + "/mcp"
		r.Tools = Rules{"echo": nil, "admin_*": {"fake:admin"}}
		r.DenyUnlistedTools = true
		r.ListTools = m.list
		routes = append(routes, r)
	}
	tg := newTestGateway(t, routes, nil)
	for i, m := range modes {
		t.Run(string(m.list), func(t *testing.T) {
			url := tg.base + "/" + routes[i].Name + "/mcp"
			c := newRawClient(t, url, "alice-read")
			c.initialize()
			_, list := c.call("tools/list", map[string]any{})
			got := names(t, list, "tools", "name")
			slices.Sort(got)
			if diff := cmp.Diff(m.want, got); diff != "" {
				t.Errorf("tools/list with fake:read, list_tools %q (-want +got):\n%s", m.list, diff)
			}
			// Listed or not, env is refused, and admin_reset steps up.
			status, res := c.callTool("env", nil)
			wantDenied(t, "tools/call env", status, res, `tool "env"`)
			resp, msgs := c.post(`{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"admin_reset","arguments":{}}}`)
			want := `Bearer error="insufficient_scope", scope="fake:read fake:admin", resource_metadata="` + tg.base +
				"/.well-known/oauth-protected-resource/" + routes[i].Name + `/mcp", error_description="tool admin_reset needs scope fake:read fake:admin"`
			if resp.StatusCode != http.StatusForbidden || resp.Header.Get("WWW-Authenticate") != want {
				t.Errorf("tools/call admin_reset with fake:read = %d %s\nwant 403 %s", resp.StatusCode, resp.Header.Get("WWW-Authenticate"), want)
			}
			if len(msgs) != 1 || string(msgs[0].ID) != "7" || msgs[0].Error == nil || msgs[0].Error.Code != mcpauthz.CodeForbidden {
				t.Errorf("admin_reset body = %+v, want a JSON-RPC error for id 7", msgs)
			}
		})
	}
}
