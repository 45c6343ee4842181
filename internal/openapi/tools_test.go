package openapi

import (
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"
)

func toolsOf(t testing.TB, doc *Document, opts Options) (map[string]*Tool, []Skipped) {
	t.Helper()
	tools, skipped, err := doc.Tools(opts)
	if err != nil {
		t.Fatalf("Tools: %v", err)
	}
	m := make(map[string]*Tool)
	for _, tool := range tools {
		m[tool.Name] = tool
	}
	return m, skipped
}

// TestToolsFixtures checks every tool of both fixtures: name (operationId,
// or derived from method and path), hints, scopes from the document's
// OAuth2 requirements or the method rule, output schema presence, and the
// skipped operations with their reasons.
func TestToolsFixtures(t *testing.T) {
	type want struct {
		method, path     string
		readOnly, destr  bool
		scopes           []string
		output, wrapping bool
	}
	wants := map[string]want{
		"listPets":       {"GET", "/pets", true, false, []string{"pets:read"}, true, true},
		"createPet":      {"POST", "/pets", false, false, []string{"pets:write"}, true, false},
		"get_pets_petId": {"GET", "/pets/{petId}", true, false, []string{"pets:read"}, true, false},
		"deletePet":      {"DELETE", "/pets/{petId}", false, true, []string{"pets:admin"}, false, false},
		"getTree":        {"GET", "/trees/{treeId}", true, false, []string{"read"}, true, false},
		"putTree":        {"PUT", "/trees/{treeId}", false, false, []string{"write"}, true, false},
	}
	wantSkipped := []Skipped{
		{"PUT", "/pets/{petId}/photo", "uploadPhoto", "request body is multipart/form-data, not JSON"},
		{"GET", "/session", "getSession", `required cookie parameter "sid" is not supported`},
	}
	for _, f := range fixtures {
		t.Run(f, func(t *testing.T) {
			doc := loadFixture(t, f)
			tools, skipped := toolsOf(t, doc, Options{Scopes: ScopeRules{Read: []string{"read"}, Write: []string{"write"}}})
			if len(tools) != len(wants) {
				t.Errorf("%d tools, want %d", len(tools), len(wants))
			}
			for name, w := range wants {
				tool := tools[name]
				if tool == nil {
					t.Errorf("no tool %q", name)
					continue
				}
				if tool.Method != w.method || tool.Path != w.path || tool.ReadOnly != w.readOnly || tool.Destructive != w.destr {
					t.Errorf("%s: %s %s readOnly %v destructive %v, want %s %s %v %v", name, tool.Method, tool.Path, tool.ReadOnly, tool.Destructive, w.method, w.path, w.readOnly, w.destr)
				}
				if !slices.Equal(tool.Scopes, w.scopes) {
					t.Errorf("%s: scopes %q, want %q", name, tool.Scopes, w.scopes)
				}
				if (tool.OutputSchema != nil) != w.output || tool.wrapItems != w.wrapping {
					t.Errorf("%s: output schema %s (wrapping %v), want present %v wrapping %v", name, tool.OutputSchema, tool.wrapItems, w.output, w.wrapping)
				}
				for _, s := range []json.RawMessage{tool.InputSchema, tool.OutputSchema} {
					if s == nil {
						continue
					}
					var top map[string]any
					if err := json.Unmarshal(s, &top); err != nil {
						t.Fatalf("%s: schema %s: %v", name, s, err)
					}
					if top["type"] != "object" {
						t.Errorf("%s: schema root type %v, want object (MCP requires it): %s", name, top["type"], s)
					}
				}
				if _, err := tool.compile(); err != nil {
					t.Errorf("%s: %v", name, err)
				}
			}
			slices.SortFunc(skipped, func(a, b Skipped) int { return strings.Compare(a.OperationID, b.OperationID) })
			slices.SortFunc(wantSkipped, func(a, b Skipped) int { return strings.Compare(a.OperationID, b.OperationID) })
			if !reflect.DeepEqual(skipped, wantSkipped) {
				t.Errorf("skipped %+v, want %+v", skipped, wantSkipped)
			}
			if got := tools["listPets"]; got != nil && (got.Title != "List pets" || got.Description != "Lists the pets, filtered by tag.") {
				t.Errorf("listPets title %q description %q", got.Title, got.Description)
			}
			if got := tools["createPet"]; got != nil && got.Description != "Create a pet" {
				t.Errorf("createPet description %q, want the summary", got.Description)
			}
		})
	}
}

// TestInputSchemaDialects checks that the 3.0 fixture's nullable and
// boolean exclusiveMinimum become the JSON Schema 2020-12 the 3.1 fixture
// spells directly, and that parameters are properties with the
// parameter's description and a required list.
func TestInputSchemaDialects(t *testing.T) {
	var bodies [2]any
	for i, f := range fixtures {
		tools, _ := toolsOf(t, loadFixture(t, f), Options{})
		var in struct {
			Properties map[string]any `json:"properties"`
			Required   []string       `json:"required"`
		}
		if err := json.Unmarshal(tools["createPet"].InputSchema, &in); err != nil {
			t.Fatal(err)
		}
		bodies[i] = in.Properties["body"]
		if !slices.Equal(in.Required, []string{"body"}) {
			t.Errorf("%s: createPet required %q, want [body]", f, in.Required)
		}
		body := in.Properties["body"].(map[string]any)["properties"].(map[string]any)
		if got := body["tag"].(map[string]any)["type"]; !reflect.DeepEqual(got, []any{"string", "null"}) {
			t.Errorf("%s: tag type %v, want [string null]", f, got)
		}
		if got := body["age"]; !reflect.DeepEqual(got, map[string]any{"type": "integer", "exclusiveMinimum": 0.0}) {
			t.Errorf("%s: age %v, want exclusiveMinimum 0 and no minimum", f, got)
		}
		if got := body["kind"].(map[string]any)["enum"]; !reflect.DeepEqual(got, []any{"cat", "dog", nil}) {
			t.Errorf("%s: kind enum %v, want cat, dog, null", f, got)
		}

		if err := json.Unmarshal(tools["get_pets_petId"].InputSchema, &in); err != nil {
			t.Fatal(err)
		}
		if got := in.Properties["petId"]; !reflect.DeepEqual(got, map[string]any{"type": "string", "description": "The pet's id."}) {
			t.Errorf("%s: petId %v", f, got)
		}
	}
	if !reflect.DeepEqual(bodies[0], bodies[1]) {
		t.Errorf("3.0 body schema %v\n3.1 body schema %v", bodies[0], bodies[1])
	}
}

// TestRecursiveSchema checks that a recursive schema becomes $defs and a
// $ref, which the validator follows to any depth.
func TestRecursiveSchema(t *testing.T) {
	for _, f := range fixtures {
		tools, _ := toolsOf(t, loadFixture(t, f), Options{})
		tool := tools["putTree"]
		var in struct {
			Defs map[string]any `json:"$defs"`
		}
		if err := json.Unmarshal(tool.InputSchema, &in); err != nil {
			t.Fatal(err)
		}
		if _, ok := in.Defs["Node"]; !ok {
			t.Fatalf("%s: no $defs.Node in %s", f, tool.InputSchema)
		}
		if !strings.Contains(string(tool.OutputSchema), `"$defs":{"Node"`) {
			t.Errorf("%s: output schema has no $defs: %s", f, tool.OutputSchema)
		}
		ok := `{"treeId": 1, "body": {"name": "a", "children": [{"name": "b", "children": [{"name": "c"}]}]}}`
		if err := tool.Validate(json.RawMessage(ok)); err != nil {
			t.Errorf("%s: Validate(%s): %v", f, ok, err)
		}
		bad := `{"treeId": 1, "body": {"name": "a", "children": [{"name": "b", "children": [{"nom": "c"}]}]}}`
		err := tool.Validate(json.RawMessage(bad))
		var ae *ArgError
		if !asArgError(err, &ae) || ae.Arg != "body" || !strings.Contains(ae.Problem, "name") {
			t.Errorf("%s: Validate(deep child without name) = %v, want an ArgError for body naming \"name\"", f, err)
		}
	}
}

func TestToolsSelection(t *testing.T) {
	doc := loadFixture(t, fixtures[0])
	tests := []struct {
		name string
		sel  Selection
		want []string
	}{
		{"all", Selection{}, []string{"createPet", "deletePet", "getTree", "get_pets_petId", "listPets", "putTree"}},
		{"tag", Selection{Tags: []string{"pets"}}, []string{"createPet", "get_pets_petId", "listPets"}},
		{"tag and method", Selection{Tags: []string{"pets"}, Methods: []string{"get"}}, []string{"get_pets_petId", "listPets"}},
		{"operationIds", Selection{OperationIDs: []string{"deletePet", "getTree"}}, []string{"deletePet", "getTree"}},
		{"path prefix is segment-wise", Selection{PathPrefixes: []string{"/pets/"}}, []string{"deletePet", "get_pets_petId"}},
		{"path prefix", Selection{PathPrefixes: []string{"/pets"}}, []string{"createPet", "deletePet", "get_pets_petId", "listPets"}},
		{"path prefix not a segment", Selection{PathPrefixes: []string{"/pe"}}, nil},
		{"exclude tag", Selection{ExcludeTags: []string{"pets", "trees"}}, []string{"deletePet"}},
		{"exclude method", Selection{ExcludeMethods: []string{"GET", "put"}}, []string{"createPet", "deletePet"}},
		{"exclude operationId", Selection{Tags: []string{"trees"}, ExcludeOperationIDs: []string{"putTree"}}, []string{"getTree"}},
		{"exclude path prefix", Selection{ExcludePathPrefixes: []string{"/pets/{petId}"}}, []string{"createPet", "getTree", "listPets", "putTree"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tools, _ := toolsOf(t, doc, Options{Selection: tt.sel})
			var got []string
			for name := range tools {
				got = append(got, name)
			}
			slices.Sort(got)
			if !slices.Equal(got, tt.want) {
				t.Errorf("tools %q, want %q", got, tt.want)
			}
		})
	}
}

// TestToolsScopes checks the order of the scope rules: Operations, then
// the document's OAuth2 scopes (through ScopeMap), then Tags, then
// Read/Write by method.
func TestToolsScopes(t *testing.T) {
	doc := loadFixture(t, fixtures[0])
	base := ScopeRules{Read: []string{"api:read"}, Write: []string{"api:write", "api:read", "api:write"}}
	tests := []struct {
		name  string
		rules func(r *ScopeRules)
		tool  string
		want  []string
	}{
		{"document scope", nil, "listPets", []string{"pets:read"}},
		{"document scope mapped", func(r *ScopeRules) { r.ScopeMap = map[string]string{"pets:read": "read"} }, "listPets", []string{"read"}},
		{"document scope wins over tag", func(r *ScopeRules) { r.Tags = map[string][]string{"pets": {"tagged"}} }, "createPet", []string{"pets:write"}},
		{"operation by id wins", func(r *ScopeRules) { r.Operations = map[string][]string{"listPets": {"z", "a", "z"}} }, "listPets", []string{"a", "z"}},
		{"operation by method and path wins", func(r *ScopeRules) { r.Operations = map[string][]string{"GET /pets/{petId}": {"one"}} }, "get_pets_petId", []string{"one"}},
		{"operation with no scopes", func(r *ScopeRules) { r.Operations = map[string][]string{"deletePet": {}} }, "deletePet", []string{}},
		{"tag without document scope", func(r *ScopeRules) { r.Tags = map[string][]string{"trees": {"trees"}} }, "putTree", []string{"trees"}},
		{"read by method", nil, "getTree", []string{"api:read"}},
		{"write by method, de-duplicated", nil, "putTree", []string{"api:read", "api:write"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := base
			if tt.rules != nil {
				tt.rules(&r)
			}
			tools, _ := toolsOf(t, doc, Options{Scopes: r})
			if got := tools[tt.tool].Scopes; !slices.Equal(got, tt.want) {
				t.Errorf("%s scopes %q, want %q", tt.tool, got, tt.want)
			}
		})
	}
}

func TestToolsNames(t *testing.T) {
	doc := loadFixture(t, fixtures[0])
	tools, _ := toolsOf(t, doc, Options{Names: map[string]string{"listPets": "pets_list", "GET /pets/{petId}": "listPets"}})
	if tools["pets_list"] == nil || tools["pets_list"].OperationID != "listPets" {
		t.Errorf("override by operationId not applied: %v", tools)
	}
	if tools["listPets"] == nil || tools["listPets"].Path != "/pets/{petId}" {
		t.Errorf("override by METHOD /path not applied: %v", tools)
	}
}

func TestToolsOptionErrors(t *testing.T) {
	doc := loadFixture(t, fixtures[0])
	tests := []struct {
		name    string
		opts    Options
		wantErr string
	}{
		{"unknown operation in names", Options{Names: map[string]string{"nope": "x"}}, `"nope" names no operation`},
		{"lower-case method in names", Options{Names: map[string]string{"get /pets": "x"}}, `write the method in upper case: "GET /pets"`},
		{"unknown operation in scopes", Options{Scopes: ScopeRules{Operations: map[string][]string{"DELETE /pets": {"x"}}}}, `scopes: operations: "DELETE /pets" names no operation`},
		{"invalid tool name", Options{Names: map[string]string{"listPets": "list pets"}}, `tool name "list pets" has ' '`},
		{"duplicate tool name", Options{Names: map[string]string{"listPets": "x", "createPet": "x"}}, `tool name "x" is already used`},
		{"unknown method", Options{Selection: Selection{Methods: []string{"FETCH"}}}, `"FETCH" is not an HTTP method`},
		{"unknown tag", Options{Selection: Selection{ExcludeTags: []string{"cats"}}}, `no operation has the tag "cats"`},
		{"unknown operationId", Options{Selection: Selection{OperationIDs: []string{"listCats"}}}, `no operation has the operationId "listCats"`},
		{"relative path prefix", Options{Selection: Selection{PathPrefixes: []string{"pets"}}}, `path prefix "pets" does not start with '/'`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := doc.Tools(tt.opts)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("Tools error %v, want it to contain %q", err, tt.wantErr)
			}
		})
	}
}

// TestToolsSkipReasons covers operations that cannot become tools.
func TestToolsSkipReasons(t *testing.T) {
	const head = "openapi: 3.0.3\ninfo: {title: t, version: \"1\"}\npaths:\n"
	tests := []struct {
		name, paths, want string
	}{
		{"forbidden required header", "  /x:\n    get:\n      parameters: [{name: Host, in: header, required: true, schema: {type: string}}]\n      responses: {\"200\": {description: ok}}\n", `required header parameter "Host" cannot be set by a tool call`},
		{"same name twice", "  /x/{id}:\n    get:\n      parameters: [{name: id, in: path, required: true, schema: {type: string}}, {name: id, in: query, schema: {type: string}}]\n      responses: {\"200\": {description: ok}}\n", `parameter "id" is both a path and a query parameter`},
		{"query named body", "  /x:\n    post:\n      parameters: [{name: body, in: query, schema: {type: string}}]\n      requestBody: {content: {application/json: {schema: {type: object}}}}\n      responses: {\"200\": {description: ok}}\n", `a query parameter is named "body"`},
		{"undeclared path parameter", "  /x/{id}:\n    get:\n      responses: {\"200\": {description: ok}}\n", `path template names {id} but no path parameter "id" is declared`},
		{"required deepObject", "  /x:\n    get:\n      parameters: [{name: f, in: query, required: true, style: deepObject, schema: {type: object}}]\n      responses: {\"200\": {description: ok}}\n", `query parameter "f" has style "deepObject"; only form is supported`},
		{"dot-dot template", "  /a/../x:\n    get:\n      responses: {\"200\": {description: ok}}\n", `path template: path template "/a/../x" has a ".." segment`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc, err := Load([]byte(head + tt.paths))
			if err != nil {
				t.Fatal(err)
			}
			tools, skipped, err := doc.Tools(Options{})
			if err != nil {
				t.Fatal(err)
			}
			if len(tools) != 0 || len(skipped) != 1 || !strings.Contains(skipped[0].Reason, tt.want) {
				t.Errorf("tools %d, skipped %+v; want one skipped with reason %q", len(tools), skipped, tt.want)
			}
		})
	}
}
