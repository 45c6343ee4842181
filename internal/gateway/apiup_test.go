package gateway

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-mcp/gatehouse/internal/openapi"
	"github.com/gatehouse-mcp/gatehouse/rs"
)

// petsDoc is the OpenAPI document of the route tests: a read, a write and
// a delete operation, the write without an operationId.
const petsDoc = `{
  "openapi": "3.1.0",
  "info": {"title": "Pets", "version": "1"},
  "paths": {
    "/pets/{petId}": {
      "parameters": [{"name": "petId", "in": "path", "required": true, "schema": {"type": "string"}}],
      "get": {"operationId": "getPet", "summary": "Get a pet", "tags": ["pets"],
        "responses": {"200": {"description": "ok", "content": {"application/json": {"schema": {"type": "object", "properties": {"id": {"type": "string"}}}}}}}},
      "delete": {"operationId": "deletePet", "summary": "Delete a pet", "tags": ["pets"], "responses": {"204": {"description": "gone"}}}
    },
    "/pets": {
      "get": {"operationId": "listPets", "tags": ["pets"], "parameters": [{"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1}}],
        "responses": {"200": {"description": "ok", "content": {"application/json": {"schema": {"type": "array", "items": {"type": "object"}}}}}}},
      "post": {"summary": "Add a pet", "tags": ["pets"],
        "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object", "required": ["name"], "properties": {"name": {"type": "string"}}}}}},
        "responses": {"201": {"description": "created", "content": {"application/json": {"schema": {"type": "object"}}}}}}
    }
  }
}`

// apiRecorder is the API behind the route: it records every request and
// answers from its table.
type apiRecorder struct {
	mu   sync.Mutex
	seen []*http.Request
}

func (a *apiRecorder) requests() []*http.Request {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.seen)
}

func (a *apiRecorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	r2 := r.Clone(r.Context())
	r2.Body = io.NopCloser(strings.NewReader(string(body)))
	a.mu.Lock()
	a.seen = append(a.seen, r2)
	a.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	switch {
	case r.Method == http.MethodGet && r.URL.Path == "/v1/pets/missing":
		w.WriteHeader(http.StatusNotFound)
		io.WriteString(w, `{"message":"no such pet"}`)
	case r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, "/v1/pets/"):
		json.NewEncoder(w).Encode(map[string]string{"id": strings.TrimPrefix(r.URL.EscapedPath(), "/v1/pets/")})
	case r.Method == http.MethodGet && r.URL.Path == "/v1/pets":
		io.WriteString(w, `[{"id":"1"},{"id":"2"}]`)
	case r.Method == http.MethodPost && r.URL.Path == "/v1/pets":
		w.WriteHeader(http.StatusCreated)
		w.Write(body)
	default:
		w.WriteHeader(http.StatusNoContent)
	}
}

// tokenEndpoint is an authorization server's token endpoint for token
// exchange: it records each request and issues "api:<subject token>:<scope>".
type tokenEndpoint struct {
	mu     sync.Mutex
	forms  []url.Values
	refuse bool
}

func (e *tokenEndpoint) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	r.ParseForm()
	e.mu.Lock()
	e.forms = append(e.forms, r.PostForm)
	refuse := e.refuse
	e.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	if id, secret, _ := r.BasicAuth(); id != "gw-client" || secret != "gw-secret" {
		w.WriteHeader(http.StatusUnauthorized)
		io.WriteString(w, `{"error":"invalid_client"}`)
		return
	}
	if refuse {
		w.WriteHeader(http.StatusBadRequest)
		io.WriteString(w, `{"error":"invalid_scope","error_description":"the subject token does not grant fake:write"}`)
		return
	}
	json.NewEncoder(w).Encode(map[string]any{
		"access_token": "api:" + r.PostForm.Get("subject_token") + ":" + r.PostForm.Get("scope"), "token_type": "Bearer",
		"issued_token_type": "urn:ietf:params:oauth:token-type:access_token", "expires_in": 300, "scope": r.PostForm.Get("scope"),
	})
}

func (e *tokenEndpoint) requests() []url.Values {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.forms)
}

// openAPIRoute is a route serving petsDoc in front of api, exchanging
// tokens at te.
func openAPIRoute(t *testing.T, api, te *httptest.Server) Route {
	t.Helper()
	doc, err := openapi.Load([]byte(petsDoc))
	if err != nil {
		t.Fatal(err)
	}
	tools, _, err := doc.Tools(openapi.Options{Scopes: openapi.ScopeRules{
		Read: []string{"fake:read"}, Write: []string{"fake:write"},
		Operations: map[string][]string{"deletePet": {"fake:admin"}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	return Route{
		Name: "pets", URL: "/pets/mcp", Scopes: []string{"fake:read"},
		Upstream: Upstream{API: &API{
			Tools: tools, BaseURL: api.URL + "/v1",
			Exchange: &Exchange{
				Exchanger: &rs.Exchanger{TokenURL: te.URL + "/token", ClientID: "gw-client", ClientSecret: "gw-secret"},
				Resource:  "https://api.example/",
			},
		}},
	}
}

// TestOpenAPIRouteCalls: an OpenAPI route lists the document's operations
// as tools with their annotations, calls the API with a token exchanged
// for the caller's (never the caller's own), caches it per user, client
// and scope set, keeps path parameters inside their segment, validates
// arguments before anything is sent, and turns API failures into tool
// errors.
func TestOpenAPIRouteCalls(t *testing.T) {
	api := &apiRecorder{}
	apiSrv := httptest.NewServer(api)
	defer apiSrv.Close()
	te := &tokenEndpoint{}
	teSrv := httptest.NewServer(te)
	defer teSrv.Close()
	tg := newTestGateway(t, []Route{openAPIRoute(t, apiSrv, teSrv)}, nil)
	c := newRawClient(t, tg.base+"/pets/mcp", "alice-read")
	c.initialize()

	_, res := c.call("tools/list", map[string]any{})
	var list struct {
		Tools []struct {
			Name        string         `json:"name"`
			Annotations map[string]any `json:"annotations"`
		} `json:"tools"`
	}
	json.Unmarshal(res.Result, &list)
	names := map[string]map[string]any{}
	for _, tl := range list.Tools {
		names[tl.Name] = tl.Annotations
	}
	for _, want := range []string{"getPet", "listPets", "deletePet"} {
		if _, ok := names[want]; !ok {
			t.Errorf("tools/list = %v, want %s", names, want)
		}
	}
	if names["getPet"]["readOnlyHint"] != true || names["deletePet"]["destructiveHint"] != true {
		t.Errorf("annotations: getPet %v, deletePet %v; want readOnlyHint and destructiveHint", names["getPet"], names["deletePet"])
	}

	// A read: the API sees the exchanged token, never the caller's.
	status, res := c.callTool("getPet", map[string]any{"petId": "rex"})
	if status != http.StatusOK || toolIsError(res) {
		t.Fatalf("getPet: %d %s %+v", status, res.Result, res.Error)
	}
	reqs := api.requests()
	if len(reqs) != 1 {
		t.Fatalf("API requests = %d, want 1", len(reqs))
	}
	got := reqs[0]
	if auth := got.Header.Get("Authorization"); auth != "Bearer api:alice-read:fake:read" {
		t.Errorf("API Authorization = %q, want the exchanged token with only the tool's scope", auth)
	}
	for k, v := range got.Header {
		if strings.Contains(strings.Join(v, " "), "alice-read") && !strings.HasPrefix(v[0], "Bearer api:") {
			t.Errorf("the caller's token reached the API in %s: %q", k, v)
		}
	}
	forms := te.requests()
	if len(forms) != 1 {
		t.Fatalf("exchanges = %d, want 1", len(forms))
	}
	// (more exchanges below)
	f := forms[0]
	if f.Get("grant_type") != "urn:ietf:params:oauth:grant-type:token-exchange" || f.Get("subject_token") != "alice-read" ||
		f.Get("resource") != "https://api.example/" || f.Get("scope") != "fake:read" {
		t.Errorf("exchange request = %v", f)
	}

	// The second call reuses the exchanged token; the same user through
	// another client gets a token of its own (its act names that client).
	c.callTool("getPet", map[string]any{"petId": "rex"})
	if n := len(te.requests()); n != 1 {
		t.Errorf("exchanges after a second call = %d, want 1 (cached)", n)
	}
	testTokens["alice-other-client"] = &rs.TokenInfo{Subject: "alice", ClientID: "client-z", Scopes: []string{"fake:read"}}
	t.Cleanup(func() { delete(testTokens, "alice-other-client") })
	oc := newRawClient(t, tg.base+"/pets/mcp", "alice-other-client")
	oc.initialize()
	oc.callTool("getPet", map[string]any{"petId": "rex"})
	if forms := te.requests(); len(forms) != 2 || forms[1].Get("subject_token") != "alice-other-client" {
		t.Errorf("exchanges after alice's call through another client = %v, want a second exchange of that client's token", forms)
	}
	if last := api.requests()[len(api.requests())-1]; last.Header.Get("Authorization") != "Bearer api:alice-other-client:fake:read" {
		t.Errorf("alice through another client reached the API with %q", last.Header.Get("Authorization"))
	}

	// Path parameters stay in their segment; "..", "." and "" are
	// refused before any request.
	for _, v := range []string{"../admin", "a/b", "x?y=1", "https://evil.example/", "%2F"} {
		before := len(api.requests())
		status, res = c.callTool("getPet", map[string]any{"petId": v})
		reqs := api.requests()
		if status != http.StatusOK || len(reqs) != before+1 {
			t.Fatalf("getPet %q: %d %s, API requests %d", v, status, res.Result, len(reqs)-before)
		}
		p := reqs[len(reqs)-1].URL
		if !strings.HasPrefix(p.EscapedPath(), "/v1/pets/") || strings.Count(p.EscapedPath(), "/") != 3 || p.RawQuery != "" {
			t.Errorf("getPet %q reached %q (query %q): the value left its path segment", v, p.EscapedPath(), p.RawQuery)
		}
	}
	for _, v := range []string{"..", ".", ""} {
		before := len(api.requests())
		_, res = c.callTool("getPet", map[string]any{"petId": v})
		if !toolIsError(res) || len(api.requests()) != before {
			t.Errorf("getPet %q: %s; want a tool error and no API request", v, res.Result)
		}
	}

	// Invalid arguments: a tool error naming the argument, nothing sent.
	before := len(api.requests())
	_, res = c.callTool("listPets", map[string]any{"limit": "many"})
	if !toolIsError(res) || !strings.Contains(string(res.Result), "limit") || len(api.requests()) != before {
		t.Errorf("listPets limit=many: %s; want a tool error naming limit and no API request", res.Result)
	}

	// A JSON array answer is text; structuredContent is never an array.
	_, res = c.callTool("listPets", map[string]any{"limit": 2})
	var lr struct {
		StructuredContent json.RawMessage `json:"structuredContent"`
		IsError           bool            `json:"isError"`
	}
	json.Unmarshal(res.Result, &lr)
	if lr.IsError || (len(lr.StructuredContent) > 0 && lr.StructuredContent[0] != '{') {
		t.Errorf("listPets: %s; want a result whose structuredContent, if any, is an object", res.Result)
	}

	// A non-2xx answer is a tool error with the status.
	_, res = c.callTool("getPet", map[string]any{"petId": "missing"})
	if !toolIsError(res) || !strings.Contains(string(res.Result), "404") {
		t.Errorf("getPet missing: %s; want a tool error with 404", res.Result)
	}

	// The write needs fake:write: the policy steps up before the API.
	before = len(api.requests())
	status, _ = c.callTool("post_pets", map[string]any{"body": map[string]any{"name": "rex"}})
	if status != http.StatusForbidden || len(api.requests()) != before {
		t.Errorf("write with fake:read: status %d; want 403 (step-up) and no API request", status)
	}
	w := newRawClient(t, tg.base+"/pets/mcp", "erin-write")
	w.initialize()
	_, res = w.callTool(writeToolName(t, w), map[string]any{"body": map[string]any{"name": "rex"}})
	if toolIsError(res) {
		t.Fatalf("write with fake:write: %s", res.Result)
	}
	last := api.requests()[len(api.requests())-1]
	if last.Method != http.MethodPost || last.Header.Get("Authorization") != "Bearer api:erin-write:fake:write" {
		t.Errorf("write reached the API as %s with %q", last.Method, last.Header.Get("Authorization"))
	}

	// A refused exchange is a tool error that says why; nothing is sent.
	te.mu.Lock()
	te.refuse = true
	te.mu.Unlock()
	before = len(api.requests())
	_, res = w.callTool("listPets", map[string]any{})
	if !toolIsError(res) || !strings.Contains(string(res.Result), "invalid_scope") || len(api.requests()) != before {
		t.Errorf("refused exchange: %s; want a tool error naming invalid_scope and no API request", res.Result)
	}
}

// writeToolName finds the tool of POST /pets (no operationId: the name is
// derived from method and path) in the list.
func writeToolName(t *testing.T, c *rawClient) string {
	t.Helper()
	_, res := c.call("tools/list", map[string]any{})
	var list struct {
		Tools []struct {
			Name string `json:"name"`
		} `json:"tools"`
	}
	json.Unmarshal(res.Result, &list)
	for _, tl := range list.Tools {
		if tl.Name != "getPet" && tl.Name != "listPets" && tl.Name != "deletePet" {
			return tl.Name
		}
	}
	t.Fatalf("no tool for POST /pets in %s", res.Result)
	return ""
}

// toolIsError reports a tools/call result with isError true.
func toolIsError(res rpcResult) bool {
	var r struct {
		IsError bool `json:"isError"`
	}
	json.Unmarshal(res.Result, &r)
	return r.IsError
}

// TestOpenAPIRouteLimits: the route's request_timeout ends the API call
// (not only the client's wait), and an API answer that echoes the
// gateway's credentials reaches the client with them removed.
func TestOpenAPIRouteLimits(t *testing.T) {
	cancelled := make(chan struct{}, 10)
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v1/pets/slow" {
			select {
			case <-r.Context().Done():
				cancelled <- struct{}{}
			case <-time.After(20 * time.Second):
			}
			return
		}
		// Echo the request, as some APIs' errors do.
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprintf(w, `{"message":"bad request for %s with %s and %s"}`, r.URL.RequestURI(), r.Header.Get("X-Api-Key"), r.Header.Get("Authorization"))
	}))
	defer api.Close()
	te := httptest.NewServer(&tokenEndpoint{})
	defer te.Close()
	rt := openAPIRoute(t, api, te)
	rt.RequestTimeout = 300 * time.Millisecond
	rt.Upstream.API.Header = http.Header{"X-Api-Key": {"static-key-0123456789"}}
	rt.Upstream.API.Query = url.Values{"api_key": {"query-key-0123456789"}}
	tg := newTestGateway(t, []Route{rt}, nil)
	c := newRawClient(t, tg.base+"/pets/mcp", "alice-read")
	c.initialize()

	c.callTool("getPet", map[string]any{"petId": "slow"})
	select {
	case <-cancelled:
	case <-time.After(10 * time.Second):
		t.Fatal("the API call outlived the route's request_timeout by 10 s: it was not cancelled")
	}

	_, res := c.callTool("getPet", map[string]any{"petId": "echo"})
	text := string(res.Result)
	for _, secret := range []string{"static-key-0123456789", "query-key-0123456789", "api:alice-read:fake:read"} {
		if strings.Contains(text, secret) {
			t.Errorf("the result shows a credential of the gateway (%s): %s", secret, text)
		}
	}
	if !toolIsError(res) || !strings.Contains(text, "[credential removed]") {
		t.Errorf("echoing API: %s; want a tool error with the credentials removed", text)
	}
}

// TestOpenAPIRouteStateless: an MCP 2026-07-28 client (no initialize, no
// session) lists and calls an OpenAPI route's tools.
func TestOpenAPIRouteStateless(t *testing.T) {
	api := &apiRecorder{}
	apiSrv := httptest.NewServer(api)
	defer apiSrv.Close()
	te := httptest.NewServer(&tokenEndpoint{})
	defer te.Close()
	tg := newTestGateway(t, []Route{openAPIRoute(t, apiSrv, te)}, nil)
	c := newRawClient(t, tg.base+"/pets/mcp", "alice-read")
	meta := map[string]any{"io.modelcontextprotocol/protocolVersion": "2026-07-28",
		"io.modelcontextprotocol/clientInfo": map[string]any{"name": "raw", "version": "1"}, "io.modelcontextprotocol/clientCapabilities": map[string]any{}}
	call := func(method, name string, params map[string]any) (int, rpcResult) {
		params["_meta"] = meta
		b, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": 1, "method": method, "params": params})
		h := []string{"Mcp-Protocol-Version", "2026-07-28", "Mcp-Method", method}
		if name != "" {
			h = append(h, "Mcp-Name", name)
		}
		resp, msgs := c.post(string(b), h...)
		if len(msgs) != 1 {
			t.Fatalf("%s: status %d, %d messages", method, resp.StatusCode, len(msgs))
		}
		return resp.StatusCode, msgs[0]
	}
	status, res := call("tools/list", "", map[string]any{})
	if status != http.StatusOK || !strings.Contains(string(res.Result), `"getPet"`) {
		t.Fatalf("stateless tools/list: %d %s %+v", status, res.Result, res.Error)
	}
	status, res = call("tools/call", "getPet", map[string]any{"name": "getPet", "arguments": map[string]any{"petId": "rex"}})
	if status != http.StatusOK || toolIsError(res) || !strings.Contains(string(res.Result), "rex") {
		t.Fatalf("stateless tools/call: %d %s %+v", status, res.Result, res.Error)
	}
	if reqs := api.requests(); len(reqs) != 1 || reqs[0].Header.Get("Authorization") != "Bearer api:alice-read:fake:read" {
		t.Errorf("API requests %d, last with %q", len(reqs), reqs[len(reqs)-1].Header.Get("Authorization"))
	}
}
