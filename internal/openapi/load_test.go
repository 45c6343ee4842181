package openapi

import (
	"encoding/json"
	"errors"
	"os"
	"reflect"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// fixtures are the same pets API as OpenAPI 3.0 (YAML) and 3.1 (JSON).
var fixtures = []string{"testdata/pets-3.0.yaml", "testdata/pets-3.1.json"}

func loadFixture(t testing.TB, path string) *Document {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	doc, err := Load(data)
	if err != nil {
		t.Fatalf("Load(%s): %v", path, err)
	}
	return doc
}

func TestLoadFixtures(t *testing.T) {
	for _, f := range fixtures {
		doc := loadFixture(t, f)
		want := "3.0.3"
		if strings.Contains(f, "3.1") {
			want = "3.1.0"
		}
		if doc.Version() != want {
			t.Errorf("%s: Version() = %q, want %q", f, doc.Version(), want)
		}
		if len(doc.ops) != 8 {
			t.Errorf("%s: %d operations, want 8", f, len(doc.ops))
		}
	}
}

// TestLoadYAMLAndJSONAgree loads the 3.0 fixture as YAML and as JSON and
// expects the same tools.
func TestLoadYAMLAndJSONAgree(t *testing.T) {
	y, err := os.ReadFile(fixtures[0])
	if err != nil {
		t.Fatal(err)
	}
	j, err := yaml.YAMLToJSON(y)
	if err != nil {
		t.Fatal(err)
	}
	var got [2][]*Tool
	for i, data := range [][]byte{y, j} {
		doc, err := Load(data)
		if err != nil {
			t.Fatalf("Load: %v", err)
		}
		if got[i], _, err = doc.Tools(Options{}); err != nil {
			t.Fatal(err)
		}
	}
	if len(got[0]) != len(got[1]) {
		t.Fatalf("YAML gave %d tools, JSON %d", len(got[0]), len(got[1]))
	}
	for i := range got[0] {
		a, b := got[0][i], got[1][i]
		// YAMLToJSON sorts keys, so properties come in another order.
		if a.Name != b.Name || !sameJSON(t, a.InputSchema, b.InputSchema) || !sameJSON(t, a.OutputSchema, b.OutputSchema) {
			t.Errorf("tool %d: YAML %s %s, JSON %s %s", i, a.Name, a.InputSchema, b.Name, b.InputSchema)
		}
	}
}

func sameJSON(t testing.TB, a, b []byte) bool {
	t.Helper()
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	var x, y any
	if err := json.Unmarshal(a, &x); err != nil {
		t.Fatalf("%s: %v", a, err)
	}
	if err := json.Unmarshal(b, &y); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	return reflect.DeepEqual(x, y)
}

func TestLoadRefuses(t *testing.T) {
	const paths = `paths: {/x: {get: {responses: {"200": {description: ok}}}}}`
	tests := []struct {
		name, doc, wantErr string
	}{
		{"empty", "  \n", "the document is empty"},
		{"not OpenAPI", `{"hello": "world"}`, "not an OpenAPI 3 document"},
		{"swagger 2", "swagger: \"2.0\"\ninfo: {title: t, version: \"1\"}\npaths: {}\n", "OpenAPI 2.0 (swagger)"},
		{"version 3.2", "openapi: 3.2.0\ninfo: {title: t, version: \"1\"}\n" + paths, `version "3.2.0" is not supported`},
		{"no paths", "openapi: 3.1.0\ninfo: {title: t, version: \"1\"}\n", "has no paths"},
		{"external file ref", "openapi: 3.0.3\ninfo: {title: t, version: \"1\"}\npaths:\n  /x:\n    get:\n      responses:\n        \"200\":\n          description: ok\n          content:\n            application/json:\n              schema: {$ref: \"other.yaml#/Pet\"}\n", `"other.yaml#/Pet"`},
		{"external URL ref", "openapi: 3.0.3\ninfo: {title: t, version: \"1\"}\npaths:\n  /x:\n    $ref: \"https://evil.example/paths.yaml#/x\"\n", "points outside the document"},
		{"unresolved local ref", "openapi: 3.0.3\ninfo: {title: t, version: \"1\"}\npaths:\n  /x:\n    get:\n      responses:\n        \"200\":\n          description: ok\n          content:\n            application/json:\n              schema: {$ref: \"#/components/schemas/Missing\"}\n", "line 11: component `#/components/schemas/Missing` does not exist"},
		{"not YAML", "openapi: [", "not an OpenAPI"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc, err := Load([]byte(tt.doc))
			if err == nil {
				t.Fatalf("Load = %v, want an error", doc)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("Load error %q, want it to contain %q", err, tt.wantErr)
			}
		})
	}
}

func asArgError(err error, target **ArgError) bool { return errors.As(err, target) }
