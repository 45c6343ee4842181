package interop

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/golang-jwt/jwt/v5"
	"github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/modelcontextprotocol/go-sdk/oauthex"
)

// The tests in this file put an OpenAPI route of the gateway (issue 15) in
// front of Prism mocking the pet store document (testdata/openapi), next
// to `gatehouse dev --gateway`, and drive it with the Go and TypeScript
// SDK clients. The API side checks the token exchanged for each call with
// golang-jwt, a JWT library Gatehouse does not use.

// openAPIEnv is `gatehouse dev` serving an OpenAPI route in front of Prism.
type openAPIEnv struct {
	dev      *mcpDev
	prism    *prism
	routeURL string
	apiAud   string // the API's resource identifier
	gwClient string // the gateway's client at the authorization server
	granted  bool   // list_tools: granted (tools/list shows only what the token may call)
}

// startOpenAPIEnv starts Prism on doc and `gatehouse dev --gateway` with
// an OpenAPI route exchanging tokens for it.
func startOpenAPIEnv(t *testing.T, doc string, granted bool) *openAPIEnv {
	t.Helper()
	p := startPrism(t, doc)
	g := newGatehouse(t)
	env := &openAPIEnv{prism: p, apiAud: "https://pets.example.test/api", gwClient: "gatehouse-gateway-pets", granted: granted}
	listTools := "grantable"
	if granted {
		listTools = "granted"
	}
	// The gateway's confidential client: the token exchange policy names
	// it (dev derives the policy from the route). Only `gatehouse dev`
	// creates a data directory, and the gateway reads the secret when it
	// starts: run dev once without the gateway first.
	startMCPDevWith(t, g, "petuser", "petuser-interop-pw").proc.stop(10 * time.Second)
	out := g.run(t, "client", "create", "--id", env.gwClient, "--confidential")
	m := regexp.MustCompile(`client_secret:\s+(\S+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("client create printed no secret:\n%s", out)
	}
	dir := t.TempDir()
	secretFile := filepath.Join(dir, "gw-secret")
	if err := os.WriteFile(secretFile, []byte(m[1]+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	gwPort := freePort(t)
	env.routeURL = fmt.Sprintf("http://127.0.0.1:%d/pets/mcp", gwPort)
	cfg := map[string]any{"gateway": map[string]any{
		"listen": fmt.Sprintf("127.0.0.1:%d", gwPort),
		"routes": []any{map[string]any{
			"name": "pets", "url": env.routeURL, "title": "the pet store API",
			"scopes":          []string{"pets:read"},
			"request_timeout": "30s",
			"list_tools":      listTools,
			"upstream": map[string]any{
				"openapi": map[string]any{"document": doc, "base_url": p.URL()},
				"auth": map[string]any{"token_exchange": map[string]any{
					"resource": env.apiAud, "client_id": env.gwClient, "client_secret_file": secretFile,
				}},
			},
		}},
	}}
	b, _ := json.MarshalIndent(cfg, "", "  ")
	cfgFile := filepath.Join(dir, "gateway.json")
	if err := os.WriteFile(cfgFile, b, 0o600); err != nil {
		t.Fatal(err)
	}
	env.dev = startMCPDevWith(t, g, "petuser", "petuser-interop-pw", "--gateway", cfgFile)
	return env
}

// TestOpenAPI (issue 15 "Must show"): both SDK clients complete OAuth
// through the OpenAPI route, list the document's operations as tools
// (filtered by scope), call a read tool and a write tool (step-up), with
// path parameters kept inside the API's path and invalid arguments never
// reaching Prism; Prism saw only valid requests, each with a token
// exchanged for the call: the API's audience, the user's subject, the
// gateway and the client in act, only the tool's scope; never the
// client's own token.
func TestOpenAPI(t *testing.T) {
	if testing.Short() {
		t.Skip("interop test: runs Prism and the gatehouse binary")
	}
	for _, doc := range []string{"pets.yaml", "pets-3.0.yaml"} {
		t.Run(doc, func(t *testing.T) {
			// The 3.0 document's route lists only the tools a token may
			// call now: the write tools appear after the step-up.
			env := startOpenAPIEnv(t, petsDoc(t, doc), doc == "pets-3.0.yaml")
			t.Run("go-sdk", func(t *testing.T) { runOpenAPIGoSDK(t, env) })
			if doc == "pets.yaml" {
				t.Run("typescript-sdk", func(t *testing.T) { runOpenAPITS(t, env) })
			}
			checkPrismSaw(t, env)
		})
	}
}

// runOpenAPIGoSDK drives the route with the Go SDK client.
func runOpenAPIGoSDK(t *testing.T, env *openAPIEnv) {
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cs, authorizeURLs := connectGoSDK(ctx, t, env.dev.devServer, env.routeURL, "http://127.0.0.1:53692/callback", "gatehouse-openapi-interop-go")
	defer cs.Close()
	if len(*authorizeURLs) != 1 || strings.Join(strings.Fields((*authorizeURLs)[0].Query().Get("scope")), " ") != "pets:read" {
		t.Fatalf("authorizations after connect: %v; want one asking for pets:read", *authorizeURLs)
	}

	lt, err := cs.ListTools(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]*mcp.Tool{}
	for _, tl := range lt.Tools {
		byName[tl.Name] = tl
	}
	inventory := ""
	for name := range byName {
		if strings.Contains(name, "inventory") {
			inventory = name
		}
	}
	for _, want := range []string{"listPets", "getPet", "createPet", "deletePet"} {
		write := want == "createPet" || want == "deletePet"
		if listed := byName[want] != nil; listed != (!env.granted || !write) {
			t.Errorf("tools/list (list_tools granted: %v) = %v: %s listed %v", env.granted, slices.Sorted(maps.Keys(byName)), want, listed)
		}
	}
	if inventory == "" {
		t.Fatalf("tools/list = %v: no tool for GET /stores/{storeId}/inventory (no operationId: a name derived from method and path)", slices.Sorted(maps.Keys(byName)))
	}
	if tl := byName["getPet"]; tl == nil || tl.Annotations == nil || !tl.Annotations.ReadOnlyHint || tl.Title == "" {
		t.Errorf("getPet tool %+v: want readOnlyHint and the summary as title", tl)
	}

	// A read tool, through the exchanged token.
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "getPet", Arguments: map[string]any{"petId": 1}})
	if err != nil || res.IsError || !strings.Contains(textOf(res), "Rex") {
		t.Fatalf("getPet = %+v, %v\n--- gatehouse dev ---\n%s", res, err, env.dev.Output())
	}
	if sc, ok := res.StructuredContent.(map[string]any); !ok || sc["name"] != "Rex" {
		t.Errorf("getPet structuredContent = %#v, want the pet object", res.StructuredContent)
	}

	// Invalid arguments never reach Prism.
	before := len(env.prism.Requests())
	for _, args := range []map[string]any{{"petId": "one"}, {"petId": 0}, {}} {
		res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "getPet", Arguments: args})
		if err != nil || !res.IsError || !strings.Contains(textOf(res), "petId") {
			t.Errorf("getPet %v = %+v, %v; want a tool error naming petId", args, res, err)
		}
	}
	if n := len(env.prism.Requests()) - before; n != 0 {
		t.Errorf("invalid arguments reached Prism %d times", n)
	}

	// Path parameters stay in their segment: Prism must see each value as
	// the storeId of /stores/{storeId}/inventory.
	for _, v := range []string{"../pets/1", "..%2Fpets", "a?sku=evil", "https://evil.example/x", "%2F"} {
		before := len(env.prism.Requests())
		res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: inventory, Arguments: map[string]any{"storeId": v, "sku": "bone-01"}})
		if err != nil || res.IsError {
			t.Errorf("%s storeId=%q = %+v, %v", inventory, v, res, err)
			continue
		}
		reqs := env.prism.Requests()[before:]
		if len(reqs) != 1 {
			t.Errorf("%s storeId=%q: Prism saw %d requests, want 1", inventory, v, len(reqs))
			continue
		}
		u, _ := url.Parse(reqs[0].URI)
		segs := strings.Split(strings.TrimPrefix(u.EscapedPath(), "/"), "/")
		if len(segs) != 3 || segs[0] != "stores" || segs[2] != "inventory" || u.Query().Get("sku") != "bone-01" || len(u.Query()) != 1 {
			t.Errorf("%s storeId=%q reached Prism as %q: the value left its segment", inventory, v, reqs[0].URI)
		}
		if got, _ := url.PathUnescape(segs[1]); got != v {
			t.Errorf("%s storeId=%q reached Prism as segment %q", inventory, v, segs[1])
		}
	}
	for _, v := range []string{"..", ".", ""} {
		before := len(env.prism.Requests())
		res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: inventory, Arguments: map[string]any{"storeId": v, "sku": "x"}})
		if err != nil || !res.IsError || len(env.prism.Requests()) != before {
			t.Errorf("%s storeId=%q = %+v, %v; want a tool error and no request", inventory, v, res, err)
		}
	}

	// A write tool needs pets:write: the call is stepped up (the Go SDK
	// re-authorizes on the 403 insufficient_scope challenge).
	res, err = cs.CallTool(ctx, &mcp.CallToolParams{Name: "createPet", Arguments: map[string]any{"body": map[string]any{"name": "Kitty", "tag": "cat"}}})
	if err != nil || res.IsError {
		t.Fatalf("createPet (step-up) = %+v, %v\n--- gatehouse dev ---\n%s", res, err, env.dev.Output())
	}
	if len(*authorizeURLs) != 2 || !slices.Contains(strings.Fields((*authorizeURLs)[1].Query().Get("scope")), "pets:write") {
		t.Errorf("authorizations after the write: %v; want a second one with pets:write", *authorizeURLs)
	}
	if lt, err := cs.ListTools(ctx, nil); err != nil || !slices.ContainsFunc(lt.Tools, func(tl *mcp.Tool) bool { return tl.Name == "deletePet" }) {
		t.Errorf("tools/list after the step-up = %v, %v; want deletePet", lt, err)
	}
}

// runOpenAPITS drives the route with the TypeScript SDK client.
func runOpenAPITS(t *testing.T, env *openAPIEnv) {
	node := nodeBin(t)
	dir := interopDir(t)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	calls, _ := json.Marshal(map[string]any{
		"read":    map[string]any{"name": "listPets", "arguments": map[string]any{"limit": 2, "tags": []string{"dog", "cat"}}},
		"invalid": map[string]any{"name": "listPets", "arguments": map[string]any{"limit": 1000}},
		"write":   map[string]any{"name": "deletePet", "arguments": map[string]any{"petId": 2}},
	})
	cmd := exec.CommandContext(ctx, node, filepath.Join(dir, "openapi_ts_client.mjs"),
		env.routeURL, env.dev.Username, env.dev.Password, "http://127.0.0.1:53693/callback", string(calls))
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "NO_PROXY=127.0.0.1,localhost", "no_proxy=127.0.0.1,localhost")
	p := startProc(t, "openapi_ts_client.mjs", cmd)
	m, err := p.waitLine(ctx, regexp.MustCompile(`^RESULT (.*)$`))
	if err != nil {
		t.Fatalf("TypeScript client: %v\n%s\n--- gatehouse dev ---\n%s", err, p.output(), env.dev.Output())
	}
	var result struct {
		OK    bool              `json:"ok"`
		Steps []json.RawMessage `json:"steps"`
	}
	if err := json.Unmarshal([]byte(m[1]), &result); err != nil {
		t.Fatalf("RESULT line %q: %v", m[1], err)
	}
	seen := map[string]bool{}
	for _, raw := range result.Steps {
		var s struct {
			Name string `json:"name"`
			OK   bool   `json:"ok"`
		}
		json.Unmarshal(raw, &s)
		seen[s.Name] = true
		t.Logf("%.600s", raw)
		if !s.OK {
			t.Errorf("step %q failed: %s", s.Name, raw)
		}
	}
	for _, name := range []string{"connect", "tools/list", "tools/call read", "tools/call invalid arguments", "step-up write"} {
		if !seen[name] {
			t.Errorf("step %q did not run", name)
		}
	}
	if !result.OK {
		t.Logf("--- TypeScript client ---\n%s\n--- gatehouse dev ---\n%s", p.output(), env.dev.Output())
	}
}

// checkPrismSaw checks every request Prism received: valid, and carrying a
// token exchanged for it that golang-jwt accepts for the API (aud), with
// the user as subject, the gateway's client and the MCP client in act,
// and only the scope of the operation.
func checkPrismSaw(t *testing.T, env *openAPIEnv) {
	t.Helper()
	reqs := env.prism.Requests()
	if len(reqs) == 0 {
		t.Fatal("Prism saw no request")
	}
	for _, r := range env.prism.ValidationErrors() {
		t.Errorf("Prism found the request invalid: %s", r)
	}
	resp, err := noProxyClient().Get(env.dev.Issuer + "/jwks")
	if err != nil {
		t.Fatal(err)
	}
	var set jose.JSONWebKeySet
	err = json.NewDecoder(resp.Body).Decode(&set)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	keyfunc := func(tok *jwt.Token) (any, error) {
		kid, _ := tok.Header["kid"].(string)
		keys := set.Key(kid)
		if len(keys) != 1 {
			return nil, jwt.ErrTokenUnverifiable
		}
		return keys[0].Key, nil
	}
	type actor struct {
		Sub string `json:"sub"`
		Act *actor `json:"act"`
	}
	type claims struct {
		jwt.RegisteredClaims
		Scope    string `json:"scope"`
		ClientID string `json:"client_id"`
		Act      *actor `json:"act"`
	}
	for _, r := range reqs {
		tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok {
			t.Errorf("%s %s reached the API without a bearer token", r.Method, r.URI)
			continue
		}
		var c claims
		if _, err := jwt.ParseWithClaims(tok, &c, keyfunc, jwt.WithValidMethods([]string{"ES256"}),
			jwt.WithIssuer(env.dev.Issuer), jwt.WithAudience(env.apiAud), jwt.WithExpirationRequired()); err != nil {
			t.Errorf("%s %s: golang-jwt refuses the API's token for audience %s: %v", r.Method, r.URI, env.apiAud, err)
			continue
		}
		if aud, _ := c.GetAudience(); slices.Contains(aud, env.routeURL) {
			t.Errorf("%s %s: the client's own token (aud %v) reached the API", r.Method, r.URI, aud)
		}
		wantScope := "pets:read"
		if r.Method == http.MethodPost || r.Method == http.MethodDelete {
			wantScope = "pets:write"
		}
		if c.Subject == "" || c.Scope != wantScope || c.ClientID != env.gwClient || c.Act == nil || c.Act.Sub != env.gwClient ||
			c.Act.Act == nil || c.Act.Act.Sub != "gatehouse-demo" {
			t.Errorf("%s %s: token sub %q scope %q client_id %q act %+v; want the user, %s only, %s, act %s then gatehouse-demo",
				r.Method, r.URI, c.Subject, c.Scope, c.ClientID, c.Act, wantScope, env.gwClient, env.gwClient)
		}
	}
}

// TestOpenAPIGitHub (issue 15, "a large real document"): a route serving
// the repos operations of GitHub's REST API description (npm
// @octokit/openapi) in front of Prism mocking that document, with a static
// credential toward the API: tools/list lists every repos operation the
// document has (those with a non-JSON body named as skipped), and calls
// with path and query parameters reach Prism as valid requests carrying the
// gateway's credential, never the client's token.
func TestOpenAPIGitHub(t *testing.T) {
	if testing.Short() {
		t.Skip("interop test: runs Prism on GitHub's document and the gatehouse binary")
	}
	doc := githubDoc(t)
	want := reposOperations(t, doc)
	p := startPrism(t, doc)
	g := newGatehouse(t)
	dir := t.TempDir()
	const apiCredential = "Bearer github-api-credential-5d1e"
	gwPort := freePort(t)
	routeURL := fmt.Sprintf("http://127.0.0.1:%d/github/mcp", gwPort)
	cfg := map[string]any{"gateway": map[string]any{
		"listen": fmt.Sprintf("127.0.0.1:%d", gwPort),
		"routes": []any{map[string]any{
			"name": "github", "url": routeURL, "scopes": []string{"github:read"},
			"request_timeout": "30s",
			"upstream": map[string]any{
				"openapi": map[string]any{
					"document": doc, "base_url": p.URL(),
					"include": map[string]any{"tags": []string{"repos"}},
					"scopes":  map[string]any{"read": []string{"github:read"}, "write": []string{"github:write"}},
				},
				"header": "Authorization", "header_value_env": "GITHUB_API_CREDENTIAL",
			},
		}},
	}}
	b, _ := json.MarshalIndent(cfg, "", "  ")
	cfgFile := filepath.Join(dir, "gateway.json")
	if err := os.WriteFile(cfgFile, b, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("GITHUB_API_CREDENTIAL", apiCredential)
	dev := startMCPDevWith(t, g, "ghuser", "ghuser-interop-pw", "--gateway", cfgFile)

	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cs, _ := connectGoSDK(ctx, t, dev.devServer, routeURL, "http://127.0.0.1:53694/callback", "gatehouse-openapi-github")
	defer cs.Close()
	var names []string
	for tl, err := range cs.Tools(ctx, nil) {
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, tl.Name)
	}
	// Names over 64 characters are cut and given a hash: compare their
	// first 40.
	for i, n := range names {
		if len(n) > 64 {
			t.Errorf("tool name %q is longer than 64 characters", n)
		}
		names[i] = cut40(n)
	}
	for i, n := range want {
		want[i] = cut40(n)
	}
	slices.Sort(names)
	slices.Sort(want)
	if !slices.Equal(names, want) {
		t.Errorf("tools/list: %d tools, want the %d repos operations with JSON (or no) bodies;\nmissing %v\nextra %v",
			len(names), len(want), difference(want, names), difference(names, want))
	}

	calls := []struct {
		tool string
		args map[string]any
		path string
	}{
		{"repos_get", map[string]any{"owner": "octocat", "repo": "hello-world"}, "/repos/octocat/hello-world"},
		{"repos_list-for-org", map[string]any{"org": "github", "type": "public", "per_page": 5}, "/orgs/github/repos?per_page=5&type=public"},
		{"repos_get-content", map[string]any{"owner": "octocat", "repo": "hello-world", "path": "docs/README.md"}, "/repos/octocat/hello-world/contents/docs%2FREADME.md"},
	}
	for _, c := range calls {
		before := len(p.Requests())
		res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: c.tool, Arguments: c.args})
		if err != nil || res.IsError {
			t.Errorf("%s %v = %+v, %v", c.tool, c.args, res, err)
			continue
		}
		reqs := p.Requests()[before:]
		if len(reqs) != 1 {
			t.Errorf("%s: Prism saw %d requests, want 1", c.tool, len(reqs))
			continue
		}
		if got := canonicalQuery(reqs[0].URI); got != c.path {
			t.Errorf("%s reached Prism as %q, want %q", c.tool, reqs[0].URI, c.path)
		}
		if a := reqs[0].Header.Get("Authorization"); a != apiCredential {
			t.Errorf("%s reached Prism with Authorization %q, want the gateway's credential", c.tool, a)
		}
	}
	for _, r := range p.ValidationErrors() {
		t.Errorf("Prism found the request invalid: %s", r)
	}
}

// reposOperations lists the tool names the route must serve: every
// operation of the document tagged repos whose request body, if any, can
// be JSON, named by its operationId with "/" as "_".
func reposOperations(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Paths map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, ops := range doc.Paths {
		for method, raw := range ops {
			if !slices.Contains([]string{"get", "put", "post", "delete", "patch", "head", "options", "trace"}, method) {
				continue
			}
			var op struct {
				OperationID string   `json:"operationId"`
				Tags        []string `json:"tags"`
				RequestBody *struct {
					Content map[string]json.RawMessage `json:"content"`
				} `json:"requestBody"`
			}
			if err := json.Unmarshal(raw, &op); err != nil {
				t.Fatal(err)
			}
			if !slices.Contains(op.Tags, "repos") {
				continue
			}
			if op.RequestBody != nil && len(op.RequestBody.Content) > 0 && op.RequestBody.Content["application/json"] == nil {
				continue
			}
			out = append(out, strings.ReplaceAll(op.OperationID, "/", "_"))
		}
	}
	slices.Sort(out)
	return out
}

// difference is what a has and b lacks (both sorted).
func difference(a, b []string) []string {
	var out []string
	for _, s := range a {
		if _, found := slices.BinarySearch(b, s); !found {
			out = append(out, s)
		}
	}
	return out
}

// canonicalQuery is uri with its query parameters sorted.
func canonicalQuery(uri string) string {
	u, err := url.Parse(uri)
	if err != nil || u.RawQuery == "" {
		return uri
	}
	return u.EscapedPath() + "?" + u.Query().Encode()
}

// cut40 is a long tool name's first 40 characters, the part of it that is
// not a hash.
func cut40(name string) string {
	if len(name) >= 64 {
		return name[:40]
	}
	return name
}

// connectGoSDK connects the Go SDK client to endpoint, authorizing as the
// dev server's demo user through the public client gatehouse-demo
// (playing the browser). The returned slice grows with each authorization
// the client makes, step-ups included.
func connectGoSDK(ctx context.Context, t *testing.T, dev *devServer, endpoint, redirectURL, name string) (*mcp.ClientSession, *[]*url.URL) {
	t.Helper()
	authorizeURLs := &[]*url.URL{}
	handler, err := auth.NewAuthorizationCodeHandler(&auth.AuthorizationCodeHandlerConfig{
		PreregisteredClient: &oauthex.ClientCredentials{ClientID: "gatehouse-demo", Issuer: dev.Issuer},
		RedirectURL:         redirectURL,
		Client:              noProxyClient(),
		AuthorizationCodeFetcher: func(ctx context.Context, args *auth.AuthorizationArgs) (*auth.AuthorizationResult, error) {
			u, err := url.Parse(args.URL)
			if err != nil {
				return nil, err
			}
			*authorizeURLs = append(*authorizeURLs, u)
			loc, _, err := playBrowser(ctx, args.URL, dev.Username, dev.Password, redirectURL)
			if err != nil {
				return nil, err
			}
			q := loc.Query()
			if q.Get("error") != "" {
				return nil, fmt.Errorf("authorization error %s: %s", q.Get("error"), q.Get("error_description"))
			}
			return &auth.AuthorizationResult{Code: q.Get("code"), State: q.Get("state"), Iss: q.Get("iss")}, nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	cs, err := mcp.NewClient(&mcp.Implementation{Name: name, Version: "1"}, nil).Connect(ctx, &mcp.StreamableClientTransport{
		Endpoint: endpoint, HTTPClient: &http.Client{Transport: noProxyClient().Transport}, OAuthHandler: handler,
	}, nil)
	if err != nil {
		t.Fatalf("Connect(%s) = %v\n--- gatehouse dev ---\n%s", endpoint, err, dev.Output())
	}
	return cs, authorizeURLs
}
