package gateway

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"

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
