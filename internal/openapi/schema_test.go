package openapi

import (
	"encoding/json"
	"strings"
	"testing"
)

// bodySchema loads a one-operation document of the given version whose
// JSON request body has the schema text (YAML flow style) and components,
// and returns the converted body schema and the $defs of the tool, or the
// reason the operation was skipped.
func bodySchema(t *testing.T, version, schema, components string) (body, defs string, skipped string) {
	t.Helper()
	doc := "openapi: " + version + "\ninfo: {title: t, version: \"1\"}\npaths:\n  /x:\n    post:\n      requestBody:\n        content:\n          application/json:\n            schema: " + schema + "\n      responses: {\"204\": {description: ok}}\n"
	if components != "" {
		doc += "components:\n  schemas:\n" + components
	}
	d, err := Load([]byte(doc))
	if err != nil {
		t.Fatalf("Load: %v\n%s", err, doc)
	}
	tools, skips, err := d.Tools(Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(skips) > 0 {
		return "", "", skips[0].Reason
	}
	var in struct {
		Properties map[string]json.RawMessage `json:"properties"`
		Defs       json.RawMessage            `json:"$defs"`
	}
	if err := json.Unmarshal(tools[0].InputSchema, &in); err != nil {
		t.Fatal(err)
	}
	if _, err := tools[0].compile(); err != nil {
		t.Errorf("validator: %v", err)
	}
	return string(in.Properties["body"]), string(in.Defs), ""
}

func TestSchemaConversion(t *testing.T) {
	tests := []struct {
		name, version, schema, components string
		want, wantDefs                    string
	}{
		{"3.0 nullable", "3.0.3", "{type: string, nullable: true}", "", `{"type":["string","null"]}`, ""},
		{"3.0 nullable without type allows null", "3.0.3", "{nullable: true, allOf: [{$ref: '#/components/schemas/A'}]}", "    A: {type: string}\n", `{"anyOf":[{"allOf":[{"type":"string"}]},{"type":"null"}]}`, ""},
		{"3.0 nullable enum gains null", "3.0.3", "{type: string, enum: [a], nullable: true}", "", `{"type":["string","null"],"enum":["a",null]}`, ""},
		{"3.0 exclusive bounds", "3.0.3", "{type: number, minimum: 1, exclusiveMinimum: true, maximum: 9, exclusiveMaximum: true}", "", `{"type":"number","exclusiveMinimum":1,"exclusiveMaximum":9}`, ""},
		{"3.0 exclusive false keeps minimum", "3.0.3", "{type: number, minimum: 1, exclusiveMinimum: false}", "", `{"type":"number","minimum":1}`, ""},
		{"3.1 numeric exclusive bound", "3.1.0", "{type: number, exclusiveMinimum: 0}", "", `{"type":"number","exclusiveMinimum":0}`, ""},
		{"3.1 nullable is not a keyword", "3.1.0", "{type: string, nullable: true}", "", `{"type":"string"}`, ""},
		{"3.1 boolean schemas", "3.1.0", "{type: array, items: false, prefixItems: [true]}", "", `{"type":"array","items":false,"prefixItems":[true]}`, ""},
		{"3.1 const and examples", "3.1.0", "{const: 3, examples: [3]}", "", `{"const":3}`, ""},
		{"large integer kept", "3.0.3", "{type: integer, maximum: 12345678901234567890, default: 12345678901234567890}", "", `{"type":"integer","default":12345678901234567890,"maximum":12345678901234567890}`, ""},
		{"dropped keywords", "3.0.3", "{type: object, example: {a: 1}, discriminator: {propertyName: a}, xml: {name: x}, x-foo: 1}", "", `{"type":"object"}`, ""},
		{"pattern Go compiles is kept", "3.0.3", "{type: string, pattern: '^[a-z]+$'}", "", `{"type":"string","pattern":"^[a-z]+$"}`, ""},
		{"lookahead pattern dropped", "3.0.3", "{type: string, pattern: '^(?!x).*$', minLength: 1}", "", `{"type":"string","minLength":1}`, ""},
		{"invalid patternProperties key dropped", "3.1.0", "{type: object, patternProperties: {'^(?=a)': {type: string}, '^b': {type: integer}}}", "", `{"type":"object","patternProperties":{"^b":{"type":"integer"}}}`, ""},
		{"additionalProperties schema and false", "3.0.3", "{type: object, additionalProperties: {type: string}, properties: {a: {type: object, additionalProperties: false}}}", "", `{"type":"object","properties":{"a":{"type":"object","additionalProperties":false}},"additionalProperties":{"type":"string"}}`, ""},
		{"additionalProperties true dropped", "3.0.3", "{type: object, additionalProperties: true}", "", `{"type":"object"}`, ""},
		{"$ref inlined", "3.0.3", "{$ref: '#/components/schemas/A'}", "    A: {type: string, format: uuid}\n", `{"type":"string","format":"uuid"}`, ""},
		{"3.0 $ref siblings ignored", "3.0.3", "{type: object, properties: {a: {$ref: '#/components/schemas/A', description: sibling}}}", "    A: {type: string}\n", `{"type":"object","properties":{"a":{"type":"string"}}}`, ""},
		{"3.1 $ref siblings apply", "3.1.0", "{type: object, properties: {a: {$ref: '#/components/schemas/A', description: sibling}}}", "    A: {type: string}\n", `{"type":"object","properties":{"a":{"description":"sibling","allOf":[{"type":"string"}]}}}`, ""},
		{"escaped pointer", "3.0.3", "{$ref: '#/components/schemas/a~1b'}", "    a/b: {type: boolean}\n", `{"type":"boolean"}`, ""},
		{"self recursion", "3.0.3", "{$ref: '#/components/schemas/T'}", "    T: {type: object, properties: {next: {$ref: '#/components/schemas/T'}}}\n",
			`{"type":"object","properties":{"next":{"$ref":"#/$defs/T"}}}`, `{"T":{"type":"object","properties":{"next":{"$ref":"#/$defs/T"}}}}`},
		{"mutual recursion", "3.0.3", "{$ref: '#/components/schemas/A'}", "    A: {type: object, properties: {b: {$ref: '#/components/schemas/B'}}}\n    B: {type: array, items: {$ref: '#/components/schemas/A'}}\n",
			`{"type":"object","properties":{"b":{"type":"array","items":{"$ref":"#/$defs/A"}}}}`, `{"A":{"type":"object","properties":{"b":{"type":"array","items":{"$ref":"#/$defs/A"}}}}}`},
		{"inline nesting cut at depth", "3.0.3", strings.Repeat("{type: array, items: ", 60) + "{type: string}" + strings.Repeat("}", 60), "",
			strings.Repeat(`{"type":"array","items":`, maxSchemaDepth+1) + "{}" + strings.Repeat("}", maxSchemaDepth+1), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body, defs, skipped := bodySchema(t, tt.version, tt.schema, tt.components)
			if skipped != "" {
				t.Fatalf("skipped: %s", skipped)
			}
			if !sameJSON(t, []byte(body), []byte(tt.want)) {
				t.Errorf("body schema\n got %s\nwant %s", body, tt.want)
			}
			if (defs == "") != (tt.wantDefs == "") || defs != "" && !sameJSON(t, []byte(defs), []byte(tt.wantDefs)) {
				t.Errorf("$defs\n got %s\nwant %s", defs, tt.wantDefs)
			}
		})
	}
}

// TestLoadRefusesRefLoop checks that a chain of $refs that comes back to
// its start is an error, not a crash (libopenapi would overflow the stack
// following it).
func TestLoadRefusesRefLoop(t *testing.T) {
	doc := "openapi: 3.0.3\ninfo: {title: t, version: \"1\"}\npaths:\n  /x:\n    get:\n      responses:\n        \"200\":\n          description: ok\n          content:\n            application/json:\n              schema: {$ref: '#/components/schemas/A'}\ncomponents:\n  schemas:\n    A: {$ref: '#/components/schemas/B'}\n    B: {$ref: '#/components/schemas/A'}\n"
	_, err := Load([]byte(doc))
	if err == nil || !strings.Contains(err.Error(), `leads back to itself through $refs alone (#/components/schemas/A → #/components/schemas/B → #/components/schemas/A)`) {
		t.Errorf("Load error %v, want the $ref loop named", err)
	}
}
