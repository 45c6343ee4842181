package openapi

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/url"
	"strings"
	"testing"
)

func mustURL(t testing.TB, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func TestRequest(t *testing.T) {
	for _, f := range fixtures {
		tools, _ := toolsOf(t, loadFixture(t, f), Options{})
		tests := []struct {
			name, tool, base, args string
			wantMethod, wantURL    string
			wantHeader             map[string]string
			wantBody               string
		}{
			{"query arrays, JSON content and header", "listPets", "https://api.example.com/v1/",
				`{"tags": ["a b", "c,d"], "limit": 10, "ids": [1, 2], "filter": {"color": "red"}, "X-Request-Id": "r-1"}`,
				"GET", "https://api.example.com/v1/pets?tags=a%20b&tags=c%2Cd&limit=10&ids=1,2&filter=%7B%22color%22%3A%22red%22%7D",
				map[string]string{"Accept": "application/json", "X-Request-Id": "r-1"}, ""},
			{"no arguments", "listPets", "https://api.example.com", ``, "GET", "https://api.example.com/pets", map[string]string{"Accept": "application/json"}, ""},
			{"null query argument left out", "listPets", "https://api.example.com", `{"tags": null}`, "GET", "https://api.example.com/pets", nil, ""},
			{"base query kept", "listPets", "https://api.example.com/x?access_token=k", `{"limit": 1}`, "GET", "https://api.example.com/x/pets?access_token=k&limit=1", nil, ""},
			{"path parameter escaped", "get_pets_petId", "http://127.0.0.1:8080/api", `{"petId": "../../admin?x=1#f"}`, "GET", "http://127.0.0.1:8080/api/pets/..%2F..%2Fadmin%3Fx%3D1%23f", nil, ""},
			{"full URL as path parameter", "deletePet", "https://api.example.com", `{"petId": "https://evil.example/"}`, "DELETE", "https://api.example.com/pets/https%3A%2F%2Fevil.example%2F", nil, ""},
			{"JSON body", "createPet", "https://api.example.com", `{"body": {"name": "Rex", "tag": null, "age": 12345678901234567890}}`, "POST", "https://api.example.com/pets",
				map[string]string{"Content-Type": "application/json", "Accept": "application/json"}, `{"name":"Rex","tag":null,"age":12345678901234567890}`},
			{"merge-patch body and integer path parameter", "putTree", "https://api.example.com", `{"treeId": 42, "body": {"name": "root"}}`, "PUT", "https://api.example.com/trees/42",
				map[string]string{"Content-Type": "application/merge-patch+json"}, `{"name":"root"}`},
		}
		for _, tt := range tests {
			t.Run(f+"/"+tt.name, func(t *testing.T) {
				req, err := tools[tt.tool].Request(context.Background(), mustURL(t, tt.base), json.RawMessage(tt.args))
				if err != nil {
					t.Fatalf("Request: %v", err)
				}
				if req.Method != tt.wantMethod || req.URL.String() != tt.wantURL {
					t.Errorf("request %s %s, want %s %s", req.Method, req.URL, tt.wantMethod, tt.wantURL)
				}
				for k, v := range tt.wantHeader {
					if got := req.Header.Get(k); got != v {
						t.Errorf("header %s = %q, want %q", k, got, v)
					}
				}
				var body []byte
				if req.Body != nil {
					body, _ = io.ReadAll(req.Body)
				}
				if string(body) != tt.wantBody {
					t.Errorf("body %q, want %q", body, tt.wantBody)
				}
				if tt.wantBody == "" && req.Header.Get("Content-Type") != "" {
					t.Errorf("Content-Type %q without a body", req.Header.Get("Content-Type"))
				}
			})
		}
	}
}

// TestRequestArgErrors checks that arguments the schema refuses give an
// ArgError naming the argument, and no request.
func TestRequestArgErrors(t *testing.T) {
	for _, f := range fixtures {
		tools, _ := toolsOf(t, loadFixture(t, f), Options{})
		tests := []struct {
			name, tool, args, wantArg, wantProblem string
		}{
			{"not an object", "listPets", `[1]`, "", "must be a JSON object"},
			{"unknown argument", "listPets", `{"limt": 1}`, "limt", "no such argument (arguments: X-Request-Id, filter, ids, limit, tags)"},
			{"missing required", "get_pets_petId", `{}`, "petId", "is required"},
			{"missing body", "createPet", `{}`, "body", "is required"},
			{"wrong type", "listPets", `{"limit": "ten"}`, "limit", "type"},
			{"below minimum", "listPets", `{"limit": 0}`, "limit", "minimum"},
			{"array item type", "listPets", `{"ids": [1, "two"]}`, "ids", "type"},
			{"body property type", "createPet", `{"body": {"name": 5}}`, "body", "type"},
			{"body required property", "createPet", `{"body": {"tag": "x"}}`, "body", "name"},
			{"body enum", "createPet", `{"body": {"name": "x", "kind": "cow"}}`, "body", "enum"},
			{"exclusive minimum", "createPet", `{"body": {"name": "x", "age": 0}}`, "body", "exclusiveMinimum"},
			{"dot-dot path value", "get_pets_petId", `{"petId": ".."}`, "petId", `is "..", which servers resolve as a relative path segment`},
			{"empty path value", "get_pets_petId", `{"petId": ""}`, "petId", "is empty"},
			{"header line break", "listPets", `{"X-Request-Id": "a\r\nX-Evil: 1"}`, "X-Request-Id", "line break"},
			{"integer path parameter", "getTree", `{"treeId": 1.5}`, "treeId", "type"},
		}
		for _, tt := range tests {
			t.Run(f+"/"+tt.name, func(t *testing.T) {
				req, err := tools[tt.tool].Request(context.Background(), mustURL(t, "https://api.example.com"), json.RawMessage(tt.args))
				if req != nil {
					t.Errorf("Request returned a request to %s", req.URL)
				}
				var ae *ArgError
				if !errors.As(err, &ae) {
					t.Fatalf("Request error %v (%T), want an *ArgError", err, err)
				}
				if ae.Arg != tt.wantArg || !strings.Contains(ae.Problem, tt.wantProblem) {
					t.Errorf("ArgError{%q, %q}, want argument %q and a problem containing %q", ae.Arg, ae.Problem, tt.wantArg, tt.wantProblem)
				}
				if tt.wantArg != "" && !strings.Contains(ae.Error(), `"`+tt.wantArg+`"`) {
					t.Errorf("Error() = %q does not name the argument", ae.Error())
				}
			})
		}
	}
}

// TestRequestNullOptionalBody checks that null for an optional body sends
// no body, and that a required body is sent as given.
func TestRequestNullOptionalBody(t *testing.T) {
	for _, required := range []bool{false, true} {
		doc, err := Load([]byte("openapi: 3.1.0\ninfo: {title: t, version: \"1\"}\npaths:\n  /x:\n    post:\n      requestBody: {required: " + map[bool]string{false: "false", true: "true"}[required] + ", content: {application/json: {schema: {type: [object, \"null\"]}}}}\n      responses: {\"204\": {description: ok}}\n"))
		if err != nil {
			t.Fatal(err)
		}
		tools, _, err := doc.Tools(Options{})
		if err != nil {
			t.Fatal(err)
		}
		req, err := tools[0].Request(context.Background(), mustURL(t, "https://api.example.com"), json.RawMessage(`{"body": null}`))
		if err != nil {
			t.Fatal(err)
		}
		var body []byte
		if req.Body != nil {
			body, _ = io.ReadAll(req.Body)
		}
		if want := map[bool]string{false: "", true: "null"}[required]; string(body) != want {
			t.Errorf("required %v: body %q, want %q", required, body, want)
		}
	}
}

func TestRequestBadBase(t *testing.T) {
	tools, _ := toolsOf(t, loadFixture(t, fixtures[0]), Options{})
	for _, base := range []*url.URL{nil, {Path: "/v1"}, {Scheme: "https"}} {
		if _, err := tools["listPets"].Request(context.Background(), base, nil); err == nil {
			t.Errorf("Request with base %v: no error", base)
		}
	}
}

// FuzzRequest checks that whatever the arguments, a request keeps the base
// URL's scheme, host and path prefix, and the path keeps the template's
// segments.
func FuzzRequest(f *testing.F) {
	doc := loadFixture(f, fixtures[1])
	tools, _, err := doc.Tools(Options{})
	if err != nil {
		f.Fatal(err)
	}
	byName := make(map[string]*Tool)
	for _, t := range tools {
		byName[t.Name] = t
	}
	f.Add("get_pets_petId", `{"petId": "../../admin"}`)
	f.Add("deletePet", `{"petId": "%2e%2e"}`)
	f.Add("listPets", `{"tags": ["?x=1#y", "&a=b"], "X-Request-Id": "x"}`)
	f.Add("putTree", `{"treeId": 1, "body": {"name": "//evil.example"}}`)
	f.Add("get_pets_petId", `{"petId": "https://evil.example/x"}`)
	f.Add("get_pets_petId", `{"petId": "\\..\\"}`)
	base := mustURL(f, "https://api.example.com/v1/")
	f.Fuzz(func(t *testing.T, name, args string) {
		tool := byName[name]
		if tool == nil {
			return
		}
		req, err := tool.Request(context.Background(), base, json.RawMessage(args))
		if err != nil {
			return
		}
		u := req.URL
		if u.Scheme != "https" || u.Host != "api.example.com" || u.User != nil || u.Fragment != "" {
			t.Fatalf("args %s moved the request to %s", args, u)
		}
		p := u.EscapedPath()
		if !strings.HasPrefix(p, "/v1/") {
			t.Fatalf("args %s: path %q left /v1/", args, p)
		}
		if resolved := u.ResolveReference(&url.URL{}); !strings.HasPrefix(resolved.EscapedPath(), "/v1/") {
			t.Fatalf("args %s: path %q resolves outside /v1/", args, p)
		}
		segs := strings.Split(strings.TrimPrefix(p, "/v1/"), "/")
		if want := strings.Count(tool.Path, "/"); len(segs) != want {
			t.Fatalf("args %s: path %q has %d segments, the template %q %d", args, p, len(segs), tool.Path, want)
		}
		for _, s := range segs {
			if dec, err := url.PathUnescape(s); err == nil && (dec == "." || dec == "..") {
				t.Fatalf("args %s: path %q has a dot segment", args, p)
			}
		}
		for k := range req.Header {
			switch k {
			case "Accept", "Content-Type", "X-Request-Id":
			default:
				t.Fatalf("args %s set header %q", args, k)
			}
		}
	})
}

// TestRequestConcurrent calls one tool from many goroutines, the first
// calls compiling its validator (run with -race).
func TestRequestConcurrent(t *testing.T) {
	tools, _ := toolsOf(t, loadFixture(t, fixtures[1]), Options{})
	tool := tools["createPet"]
	base := mustURL(t, "https://api.example.com")
	errs := make(chan error, 16)
	for i := 0; i < cap(errs); i++ {
		go func() {
			_, err := tool.Request(context.Background(), base, json.RawMessage(`{"body": {"name": "Rex"}}`))
			errs <- err
		}()
	}
	for i := 0; i < cap(errs); i++ {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}
