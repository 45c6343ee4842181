package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/gatehouse-mcp/gatehouse/internal/config"
	"github.com/gatehouse-mcp/gatehouse/internal/gateway"
	"github.com/gatehouse-mcp/gatehouse/internal/mcpauthz/mcphttptest"
	"github.com/gatehouse-mcp/gatehouse/internal/storage"
	"github.com/gatehouse-mcp/gatehouse/internal/storage/sqlite"
	"github.com/gatehouse-mcp/gatehouse/internal/syncbuf"
	"github.com/gatehouse-mcp/gatehouse/internal/testissuer"
)

// policyUpstream is a Go SDK MCP server (JSON responses) with tools,
// prompts and resources on both sides of the test policy; it records the
// X-Upstream-Key header of every request.
func policyUpstream(t *testing.T) (url string, keys func() []string) {
	t.Helper()
	s := mcp.NewServer(&mcp.Implementation{Name: "policy-upstream", Version: "1"}, nil)
	tool := func(ctx context.Context, req *mcp.CallToolRequest, _ struct{}) (*mcp.CallToolResult, any, error) {
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "ran " + req.Params.Name}}}, nil, nil
	}
	for _, name := range []string{"list_notes", "add_note", "admin_wipe", "secret_tool"} {
		mcp.AddTool(s, &mcp.Tool{Name: name}, tool)
	}
	for _, name := range []string{"greet", "secret_prompt"} {
		s.AddPrompt(&mcp.Prompt{Name: name}, func(context.Context, *mcp.GetPromptRequest) (*mcp.GetPromptResult, error) {
			return &mcp.GetPromptResult{Messages: []*mcp.PromptMessage{{Role: "user", Content: &mcp.TextContent{Text: "hello"}}}}, nil
		})
	}
	for _, uri := range []string{"fake://public/a", "fake://private/b"} {
		s.AddResource(&mcp.Resource{URI: uri, Name: uri}, func(_ context.Context, req *mcp.ReadResourceRequest) (*mcp.ReadResourceResult, error) {
			return &mcp.ReadResourceResult{Contents: []*mcp.ResourceContents{{URI: req.Params.URI, Text: "content"}}}, nil
		})
	}
	var mu sync.Mutex
	var seen []string
	h := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return s }, &mcp.StreamableHTTPOptions{JSONResponse: true})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Header.Get("X-Upstream-Key"))
		mu.Unlock()
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv.URL + "/mcp", func() []string { mu.Lock(); defer mu.Unlock(); return slices.Clone(seen) }
}

// rpcReply is a JSON-RPC response as the gateway relays it.
type rpcReply struct {
	status int
	header http.Header
	Result json.RawMessage `json:"result"`
	Error  *struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// rpc sends one JSON-RPC request and decodes the response, JSON or the
// first event of a stream carrying one.
func rpc(t *testing.T, c *mcphttptest.Client, method string, params any) rpcReply {
	t.Helper()
	b, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": 7, "method": method, "params": params})
	resp, body := c.Do(t, http.MethodPost, string(b))
	r := rpcReply{status: resp.StatusCode, header: resp.Header}
	for _, l := range strings.Split(body, "\n") {
		l = strings.TrimPrefix(l, "data: ")
		if strings.HasPrefix(l, "{") && (strings.Contains(l, `"result"`) || strings.Contains(l, `"error"`)) {
			if err := json.Unmarshal([]byte(l), &r); err != nil {
				t.Fatalf("%s: response %q: %v", method, l, err)
			}
			break
		}
	}
	return r
}

// listed returns the key member of every entry of a list result.
func listed(t *testing.T, r rpcReply, member, key string) []string {
	t.Helper()
	var res map[string]json.RawMessage
	var entries []map[string]any
	if err := json.Unmarshal(r.Result, &res); err != nil || json.Unmarshal(res[member], &entries) != nil {
		t.Fatalf("list result %s (error %+v): no %s list", r.Result, r.Error, member)
	}
	var out []string
	for _, e := range entries {
		s, _ := e[key].(string)
		out = append(out, s)
	}
	slices.Sort(out)
	return out
}

// TestGatewayConfigPolicy writes a gateway section in YAML and runs
// `gatehouse gateway --config FILE`, the real path (config.Load,
// loadGatewayConfig, Resolve, gatewayOptions, gateway.New and the route
// registration), then shows with real requests that each policy setting
// of the file reaches the gateway's behaviour.
func TestGatewayConfigPolicy(t *testing.T) {
	iss := testissuer.New(t)
	upURL, upKeys := policyUpstream(t)
	t.Setenv("TEST_GATEWAY_UPSTREAM_KEY", "upstream-key-1")
	dir := t.TempDir()
	listen := "127.0.0.1:" + strconv.Itoa(freePort(t))
	routeURL := "http://" + listen + "/notes/mcp"
	cfg := fmt.Sprintf(`issuer: %q
storage:
  sqlite_path: %q
gateway:
  listen: %q
  routes:
    - name: notes
      url: %q
      title: Notes through the gateway
      upstream:
        url: %q
        header: X-Upstream-Key
        header_value_env: TEST_GATEWAY_UPSTREAM_KEY
      scopes: [notes:read]
      scope_descriptions:
        notes:write: Write notes
      implied_scopes:
        notes:admin: [notes:write]
        notes:write: [notes:read]
      scope_policies:
        notes:write: {groups: [editors]}
        notes:admin: {groups: [editors]}
      tools:
        list_notes: []
        add_note: [notes:write]
        "admin_*": [notes:admin]
      deny_unlisted_tools: true
      prompts:
        greet: []
      deny_unlisted_prompts: true
      resources:
        "fake://public/*": []
      deny_unlisted_resources: true
      max_sessions_per_user: 1
      max_body_bytes: 4096
`, iss.URL, filepath.Join(dir, "gatehouse.db"), listen, routeURL, upURL)
	path := filepath.Join(dir, "gatehouse.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	out := &syncbuf.Buffer{}
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{"gateway", "--config", path}, out) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("gateway returned %v after shutdown", err)
			}
		case <-time.After(15 * time.Second):
			t.Errorf("gateway did not stop within 15s")
		}
	})
	deadline := time.After(20 * time.Second)
	for !strings.Contains(out.String(), "Gatehouse gateway is running") {
		select {
		case err := <-done:
			done <- err
			t.Fatalf("gateway returned before serving: %v\n%s", err, out.String())
		case <-deadline:
			t.Fatalf("gateway not ready after 20s:\n%s", out.String())
		case <-time.After(20 * time.Millisecond):
		}
	}

	// scope_policies: this gateway alone cannot enforce them; it says so.
	if want := "warning: gateway route notes: scope_policies are written into its resource in this gateway's storage and enforced only by an authorization server that uses the same storage"; !strings.Contains(out.String(), want) {
		t.Errorf("gateway output lacks %q:\n%s", want, out.String())
	}

	// scopes: the baseline of the 401 challenge.
	anon := &mcphttptest.Client{URL: routeURL}
	if resp, _ := anon.Do(t, http.MethodPost, `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{}}`); resp.StatusCode != http.StatusUnauthorized ||
		!strings.Contains(resp.Header.Get("WWW-Authenticate"), `scope="notes:read"`) {
		t.Errorf("no token: %d %q, want 401 with scope=\"notes:read\"", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}

	alice := &mcphttptest.Client{URL: routeURL, Token: iss.Token(t, routeURL, "alice", "notes:read", nil)}
	alice.Initialize(t)
	// tools and deny_unlisted_tools, with list_tools grantable (the
	// default): add_note and admin_wipe are listed for a step-up,
	// secret_tool, refused whatever the scopes, is not.
	if got, want := listed(t, rpc(t, alice, "tools/list", map[string]any{}), "tools", "name"), []string{"add_note", "admin_wipe", "list_notes"}; !cmp.Equal(got, want) {
		t.Errorf("tools/list with notes:read = %v, want %v", got, want)
	}
	if r := rpc(t, alice, "tools/call", map[string]any{"name": "add_note", "arguments": map[string]any{}}); r.status != http.StatusForbidden ||
		!strings.Contains(r.header.Get("WWW-Authenticate"), `scope="notes:read notes:write"`) {
		t.Errorf("tools/call add_note with notes:read = %d %q, want 403 for scope \"notes:read notes:write\"", r.status, r.header.Get("WWW-Authenticate"))
	}
	wantRefused := func(call string, r rpcReply, subject string) {
		t.Helper()
		if want := subject + " is not allowed through this gateway"; r.status != http.StatusOK || r.Error == nil || r.Error.Message != want {
			t.Errorf("%s = %d %+v, want the JSON-RPC error %q", call, r.status, r.Error, want)
		}
	}
	wantRefused("tools/call secret_tool", rpc(t, alice, "tools/call", map[string]any{"name": "secret_tool", "arguments": map[string]any{}}), `tool "secret_tool"`)
	if r := rpc(t, alice, "tools/call", map[string]any{"name": "list_notes", "arguments": map[string]any{}}); r.status != http.StatusOK || !strings.Contains(string(r.Result), "ran list_notes") {
		t.Errorf("tools/call list_notes = %d %s %+v", r.status, r.Result, r.Error)
	}
	// prompts and deny_unlisted_prompts.
	if got, want := listed(t, rpc(t, alice, "prompts/list", map[string]any{}), "prompts", "name"), []string{"greet"}; !cmp.Equal(got, want) {
		t.Errorf("prompts/list = %v, want %v", got, want)
	}
	wantRefused("prompts/get secret_prompt", rpc(t, alice, "prompts/get", map[string]any{"name": "secret_prompt"}), `prompt "secret_prompt"`)
	// resources and deny_unlisted_resources.
	if got, want := listed(t, rpc(t, alice, "resources/list", map[string]any{}), "resources", "uri"), []string{"fake://public/a"}; !cmp.Equal(got, want) {
		t.Errorf("resources/list = %v, want %v", got, want)
	}
	wantRefused("resources/read fake://private/b", rpc(t, alice, "resources/read", map[string]any{"uri": "fake://private/b"}), `resource "fake://private/b"`)
	// max_body_bytes.
	if resp, _ := alice.Do(t, http.MethodPost, `{"jsonrpc":"2.0","id":9,"method":"ping","params":{"pad":"`+strings.Repeat("x", 5000)+`"}}`); resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("a 5000-byte body with max_body_bytes 4096 = %d, want 413", resp.StatusCode)
	}
	// max_sessions_per_user: alice holds her one session.
	second := &mcphttptest.Client{URL: routeURL, Token: alice.Token}
	if resp, body := second.Do(t, http.MethodPost, `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}`); resp.StatusCode != http.StatusTooManyRequests {
		t.Errorf("alice's second session with max_sessions_per_user 1 = %d %s, want 429", resp.StatusCode, body)
	}

	// implied_scopes: notes:admin alone passes the baseline and the tools
	// needing notes:write and notes:admin.
	admin := &mcphttptest.Client{URL: routeURL, Token: iss.Token(t, routeURL, "bob", "notes:admin", nil)}
	admin.Initialize(t)
	if got, want := listed(t, rpc(t, admin, "tools/list", map[string]any{}), "tools", "name"), []string{"add_note", "admin_wipe", "list_notes"}; !cmp.Equal(got, want) {
		t.Errorf("tools/list with notes:admin = %v, want %v", got, want)
	}
	if r := rpc(t, admin, "tools/call", map[string]any{"name": "add_note", "arguments": map[string]any{}}); r.status != http.StatusOK || !strings.Contains(string(r.Result), "ran add_note") {
		t.Errorf("tools/call add_note with notes:admin = %d %s %+v", r.status, r.Result, r.Error)
	}

	// upstream.header and header_value_env: the upstream's credential.
	if keys := upKeys(); len(keys) == 0 || slices.ContainsFunc(keys, func(k string) bool { return k != "upstream-key-1" }) {
		t.Errorf("upstream got X-Upstream-Key %q, want the value of TEST_GATEWAY_UPSTREAM_KEY in every request", keys)
	}

	// title and scope_descriptions: the registered resource.
	st, err := sqlite.Open(t.Context(), sqlite.Options{Path: filepath.Join(dir, "gatehouse.db"), Now: time.Now})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	res, err := st.GetResource(t.Context(), routeURL)
	if err != nil {
		t.Fatalf("GetResource(%s) = %v, want the route registered", routeURL, err)
	}
	desc := map[string]string{}
	for _, s := range res.Scopes {
		desc[s.Name] = s.Description
	}
	if res.Name != "Notes through the gateway" || desc["notes:write"] != "Write notes" || !slices.Equal(res.DefaultScopes, []string{"notes:read"}) {
		t.Errorf("registered resource = %+v, want name %q, notes:write described, default scopes [notes:read]", res, "Notes through the gateway")
	}
	if want := map[string]storage.ScopePolicy{"notes:write": {Groups: []string{"editors"}}, "notes:admin": {Groups: []string{"editors"}}}; !cmp.Equal(want, res.ScopePolicies) {
		t.Errorf("registered resource's scope policies = %v, want %v", res.ScopePolicies, want)
	}
	for _, s := range []string{"notes:read", "notes:write", "notes:admin"} {
		if _, ok := desc[s]; !ok {
			t.Errorf("registered resource scopes %v lack %s", res.Scopes, s)
		}
	}
}

// TestGatewayOptionsConsumesEveryRouteField fills every field of
// config.GatewayRoute (by reflection, so a field added later is covered)
// and checks that gatewayOptions carries it into the gateway.Route: a
// field of the same name must hold the same value; the others are listed
// below with what they become. A field that is in neither fails the test:
// map it in gatewayOptions (and here), or say here why it is not its job.
func TestGatewayOptionsConsumesEveryRouteField(t *testing.T) {
	t.Setenv("TEST_GATEWAY_INHERITED", "inherited-value")
	var r config.GatewayRoute
	n := 0
	fill(reflect.ValueOf(&r).Elem(), "", &n)
	r.Upstream.InheritEnv = []string{"TEST_GATEWAY_INHERITED"}

	// Fields that have no namesake in gateway.Route: where they go.
	special := map[string]func(c config.GatewayRoute, g gateway.Route) bool{
		// The consent page's descriptions: registerGatewayResources
		// passes them to Gateway.Resources (TestGatewayConfigPolicy).
		"ScopeDescriptions": nil,
		// Who may be granted a scope is the authorization server's
		// decision: registerGatewayResources writes the policies into
		// the route's resource (TestGatewayRouteScopePolicy).
		"ScopePolicies": nil,
		// Read by Gateway.Resolve into HeaderValue and Resolved.
		"Upstream.HeaderValueFile": nil,
		"Upstream.HeaderValueEnv":  nil,
		"Upstream.Env.Value":       nil,
		"Upstream.Env.ValueFile":   nil,
		"Upstream.Env.ValueEnv":    nil,
		"Upstream.Header": func(c config.GatewayRoute, g gateway.Route) bool {
			return len(g.Upstream.Header.Values(c.Upstream.Header)) > 0
		},
		"Upstream.HeaderValue": func(c config.GatewayRoute, g gateway.Route) bool {
			return slices.Contains(g.Upstream.Header.Values(c.Upstream.Header), c.Upstream.HeaderValue)
		},
		"Upstream.Env.Name": func(c config.GatewayRoute, g gateway.Route) bool {
			return slices.Contains(g.Upstream.Env, c.Upstream.Env[0].Name+"="+c.Upstream.Env[0].Resolved)
		},
		"Upstream.Env.Resolved": func(c config.GatewayRoute, g gateway.Route) bool {
			return slices.Contains(g.Upstream.Env, c.Upstream.Env[0].Name+"="+c.Upstream.Env[0].Resolved)
		},
		"Upstream.InheritEnv": func(c config.GatewayRoute, g gateway.Route) bool {
			return slices.Contains(g.Upstream.Env, "TEST_GATEWAY_INHERITED=inherited-value")
		},
	}
	// An upstream is HTTP (url) or stdio (command): the fields of each
	// kind are checked with an upstream of that kind.
	stdioOnly := map[string]bool{"Upstream.Command": true, "Upstream.Args": true, "Upstream.Dir": true,
		"Upstream.Env.Name": true, "Upstream.Env.Resolved": true, "Upstream.InheritEnv": true}

	httpRoute := r
	httpRoute.Upstream.Command = ""
	stdioRoute := r
	stdioRoute.Upstream.URL = ""
	routes := map[bool]gateway.Route{}
	for stdio, c := range map[bool]config.GatewayRoute{false: httpRoute, true: stdioRoute} {
		opts, err := gatewayOptions(config.Config{Issuer: "https://as.example.com"}, config.Gateway{Routes: []config.GatewayRoute{c}}, nil, nil, nil)
		if err != nil || len(opts.Routes) != 1 {
			t.Fatalf("gatewayOptions = %d routes, %v", len(opts.Routes), err)
		}
		routes[stdio] = opts.Routes[0]
	}

	paths := leafPaths(reflect.TypeOf(r), "")
	for path := range special {
		if !slices.Contains(paths, path) {
			t.Errorf("this test lists config.GatewayRoute.%s, which does not exist: remove it", path)
		}
	}
	for _, path := range paths {
		stdio := stdioOnly[path]
		c := map[bool]config.GatewayRoute{false: httpRoute, true: stdioRoute}[stdio]
		g := routes[stdio]
		if check, ok := special[path]; ok {
			if check != nil && !check(c, g) {
				t.Errorf("config.GatewayRoute.%s = %v does not reach the gateway.Route (Upstream %+v)", path, lookup(reflect.ValueOf(c), path), g.Upstream)
			}
			continue
		}
		want := lookup(reflect.ValueOf(c), path)
		got := lookupByName(reflect.ValueOf(g), path)
		if !got.IsValid() {
			t.Errorf("config.GatewayRoute.%s has no namesake in gateway.Route and no entry in this test: map it in gatewayOptions and here, or say why not", path)
			continue
		}
		if !want.Type().ConvertibleTo(got.Type()) || !reflect.DeepEqual(want.Convert(got.Type()).Interface(), got.Interface()) {
			t.Errorf("gatewayOptions: gateway.Route.%s = %v, want config.GatewayRoute.%s = %v", path, got, path, want)
		}
	}
}

// fill sets every field of v to a non-zero value: strings are derived
// from the field's path, numbers count up from *n, so no two fields hold
// the same value and a value copied to the wrong field shows.
func fill(v reflect.Value, path string, n *int) {
	switch v.Kind() {
	case reflect.Struct:
		for i := range v.NumField() {
			f := v.Type().Field(i)
			if f.IsExported() {
				fill(v.Field(i), strings.TrimPrefix(path+"."+f.Name, "."), n)
			}
		}
	case reflect.String:
		v.SetString("v-" + path)
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int64:
		*n++
		v.SetInt(int64(1000 + *n))
	case reflect.Slice:
		s := reflect.MakeSlice(v.Type(), 2, 2)
		for i := range 2 {
			fill(s.Index(i), path, n)
			if s.Index(i).Kind() == reflect.String {
				s.Index(i).SetString(fmt.Sprintf("v-%s-%d", path, i))
			}
		}
		v.Set(s)
	case reflect.Map:
		m := reflect.MakeMap(v.Type())
		k := reflect.New(v.Type().Key()).Elem()
		k.SetString("k-" + path)
		e := reflect.New(v.Type().Elem()).Elem()
		fill(e, path, n)
		m.SetMapIndex(k, e)
		v.Set(m)
	case reflect.Pointer:
		// An openapi upstream (Upstream.OpenAPI, Upstream.Auth) is a kind
		// of its own, left nil here: TestOpenAPIUpstreamOptions checks
		// its mapping.
	default:
		panic(fmt.Sprintf("fill: %s has kind %s", path, v.Kind()))
	}
}

// leafPaths lists the paths of the fields fill sets, structs (and slices
// of structs) walked into.
func leafPaths(t reflect.Type, prefix string) []string {
	var out []string
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		p := strings.TrimPrefix(prefix+"."+f.Name, ".")
		ft := f.Type
		if ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.Struct {
			ft = ft.Elem()
		}
		if ft.Kind() == reflect.Struct {
			out = append(out, leafPaths(ft, p)...)
			continue
		}
		if ft.Kind() == reflect.Pointer {
			continue // see fill
		}
		out = append(out, p)
	}
	return out
}

// lookup follows path in v (the first element of a slice of structs).
func lookup(v reflect.Value, path string) reflect.Value {
	for _, name := range strings.Split(path, ".") {
		if v.Kind() == reflect.Slice {
			v = v.Index(0)
		}
		v = v.FieldByName(name)
	}
	return v
}

// lookupByName is lookup that returns the zero Value when a field is
// missing.
func lookupByName(v reflect.Value, path string) reflect.Value {
	for _, name := range strings.Split(path, ".") {
		if v.Kind() != reflect.Struct {
			return reflect.Value{}
		}
		if v = v.FieldByName(name); !v.IsValid() {
			return v
		}
	}
	return v
}

// TestGatewayOptionsAuditBeforeForward: gateway.audit_before_forward
// reaches the gateway's options, and is off unless set.
func TestGatewayOptionsAuditBeforeForward(t *testing.T) {
	for _, set := range []bool{false, true} {
		opts, err := gatewayOptions(config.Config{Issuer: "https://as.example.com"}, config.Gateway{AuditBeforeForward: set}, nil, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		if opts.AuditBeforeForward != set {
			t.Errorf("gateway.audit_before_forward = %v: gateway.Options.AuditBeforeForward = %v", set, opts.AuditBeforeForward)
		}
	}
}

// TestOpenAPIUpstreamOptions: every key of an openapi upstream reaches the
// gateway's API: the selection, names and scope rules shape the tools, the
// header and query credentials and the token exchange are set, and a
// route with token exchange yields its exchange policy.
func TestOpenAPIUpstreamOptions(t *testing.T) {
	doc := []byte(`{"openapi":"3.1.0","info":{"title":"t","version":"1"},"paths":{
	  "/a":{"get":{"operationId":"getA","tags":["x"],"responses":{"200":{"description":"ok"}}},
	        "post":{"operationId":"postA","tags":["x"],"responses":{"200":{"description":"ok"}}}},
	  "/b":{"get":{"operationId":"getB","tags":["y"],"responses":{"200":{"description":"ok"}}},
	        "delete":{"operationId":"delB","tags":["y"],"responses":{"200":{"description":"ok"}}}}}}`)
	r := config.GatewayRoute{Name: "api", URL: "https://gw.example.com/api/mcp", Upstream: config.GatewayUpstream{
		Header: "X-Api-Key", HeaderValue: "header-secret",
		OpenAPI: &config.GatewayOpenAPI{
			Document: "api.json", Data: doc, BaseURL: "https://api.example.com/v1", MaxResponseBytes: 777, OutputSchemas: new(bool),
			Include: config.GatewayOpenAPISelect{Methods: []string{"GET", "POST"}},
			Exclude: config.GatewayOpenAPISelect{Tags: []string{"y"}},
			Names:   map[string]string{"postA": "make_a"},
			Scopes: config.GatewayOpenAPIScopes{Read: []string{"api:read"}, Write: []string{"api:write"},
				Operations: map[string][]string{"getA": {"api:a"}}},
		},
		Auth: &config.GatewayAPIAuth{QueryParam: "key", QueryValue: "query-secret", TokenExchange: &config.GatewayTokenExchange{
			Resource: "https://api.example.com/", ClientID: "gw", ClientSecret: "s3", Header: "X-Token",
		}},
	}}
	opts, err := gatewayOptions(config.Config{Issuer: "https://as.example.com"}, config.Gateway{Routes: []config.GatewayRoute{r}}, nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	api := opts.Routes[0].Upstream.API
	if api == nil {
		t.Fatal("no API upstream")
	}
	got := map[string][]string{}
	for _, tl := range api.Tools {
		got[tl.Name] = tl.Scopes
	}
	want := map[string][]string{"getA": {"api:a"}, "make_a": {"api:write"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("tools = %v, want %v (include GET/POST, exclude tag y, names, operation scopes over method scopes)", got, want)
	}
	if api.BaseURL != "https://api.example.com/v1" || api.MaxResponseBytes != 777 || !api.NoOutputSchemas || api.Header.Get("X-Api-Key") != "header-secret" || api.Query.Get("key") != "query-secret" {
		t.Errorf("API = base %q max %d header %v query %v", api.BaseURL, api.MaxResponseBytes, api.Header, api.Query)
	}
	ex := api.Exchange
	if ex == nil || ex.Resource != "https://api.example.com/" || ex.Header != "X-Token" || ex.Exchanger.TokenURL != "https://as.example.com/token" ||
		ex.Exchanger.ClientID != "gw" || ex.Exchanger.ClientSecret != "s3" {
		t.Errorf("Exchange = %+v", ex)
	}
	pol := gatewayExchangeClients(config.Gateway{Routes: []config.GatewayRoute{r}})
	if len(pol) != 1 || pol[0].ClientID != "gw" || !reflect.DeepEqual(pol[0].SubjectAudiences, []string{r.URL}) || !reflect.DeepEqual(pol[0].Audiences, []string{"https://api.example.com/"}) {
		t.Errorf("exchange policy = %+v", pol)
	}
}

// TestOpenAPIDocumentFetch: a document given as an https URL is fetched
// with the SSRF-safe fetcher, which refuses a loopback address (an
// operator's typo must not turn the gateway into a probe of its own
// network), and http is refused by validation before any fetch.
func TestOpenAPIDocumentFetch(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("the fetcher reached the loopback server: %s", r.URL)
	}))
	defer srv.Close()
	gw := config.Gateway{Routes: []config.GatewayRoute{{Name: "api", Upstream: config.GatewayUpstream{
		OpenAPI: &config.GatewayOpenAPI{Document: srv.URL + "/openapi.json?key=secret-key", BaseURL: "https://api.example.com"},
	}}}}
	err := fetchOpenAPIDocuments(t.Context(), gw)
	if err == nil || !strings.Contains(err.Error(), "127.0.0.1") || !strings.Contains(err.Error(), `route "api"`) || strings.Contains(err.Error(), "secret-key") {
		t.Fatalf("fetch of a loopback document = %v, want a refusal naming the address and the route, without the URL's query", err)
	}
}
