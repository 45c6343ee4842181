package openapi

import (
	"encoding/json"
	"net/url"
	"strings"
	"testing"
)

func ptr(b bool) *bool { return &b }

// TestEncodeQuerySpecExamples follows the style examples of the OpenAPI 3.1
// specification (4.8.12.4 Style Examples): color as a string "blue", an
// array ["blue","black","brown"] and an object {R:100, G:200, B:150}.
func TestEncodeQuerySpecExamples(t *testing.T) {
	array := []any{"blue", "black", "brown"}
	object := Object{{"R", 100.0}, {"G", 200.0}, {"B", 150.0}}
	tests := []struct {
		name    string
		value   any
		explode *bool
		want    string
	}{
		{"empty explode false", "", ptr(false), "color="},
		{"empty explode true", "", ptr(true), "color="},
		{"string explode false", "blue", ptr(false), "color=blue"},
		{"string explode true", "blue", ptr(true), "color=blue"},
		{"array explode false", array, ptr(false), "color=blue,black,brown"},
		{"array explode true", array, ptr(true), "color=blue&color=black&color=brown"},
		{"array default explode", array, nil, "color=blue&color=black&color=brown"},
		{"object explode false", object, ptr(false), "color=R,100,G,200,B,150"},
		{"object explode true", object, ptr(true), "R=100&G=200&B=150"},
		{"object default explode", object, nil, "R=100&G=200&B=150"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := EncodeQuery([]QueryParam{{Name: "color", Value: tt.value, Style: "form", Explode: tt.explode}})
			if err != nil {
				t.Fatalf("EncodeQuery: %v", err)
			}
			if got != tt.want {
				t.Errorf("EncodeQuery(%v, explode %v) = %q, want %q", tt.value, tt.explode, got, tt.want)
			}
		})
	}
}

func TestEncodeQuery(t *testing.T) {
	var decoded map[string]any
	if err := json.Unmarshal([]byte(`{"R":100,"G":200,"B":150}`), &decoded); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		params []QueryParam
		want   string
	}{
		{"map keys sorted, exploded", []QueryParam{{Name: "color", Value: decoded}}, "B=150&G=200&R=100"},
		{"map keys sorted, not exploded", []QueryParam{{Name: "color", Value: decoded, Explode: ptr(false)}}, "color=B,150,G,200,R,100"},
		{"separators in values encoded", []QueryParam{{Name: "q", Value: []string{"a,b", "c&d=e"}, Explode: ptr(false)}}, "q=a%2Cb,c%26d%3De"},
		{"space is %20 and plus encoded", []QueryParam{{Name: "q", Value: "a b+c"}}, "q=a%20b%2Bc"},
		{"name encoded", []QueryParam{{Name: "a b&c", Value: "1"}}, "a%20b%26c=1"},
		{"scalars as JSON text", []QueryParam{{Name: "n", Value: 42.0}, {Name: "f", Value: 1.5}, {Name: "b", Value: true}, {Name: "i", Value: 7}, {Name: "j", Value: json.Number("12345678901234567890")}}, "n=42&f=1.5&b=true&i=7&j=12345678901234567890"},
		{"nil left out, order kept", []QueryParam{{Name: "z", Value: "1"}, {Name: "skip", Value: nil}, {Name: "a", Value: "2"}}, "z=1&a=2"},
		{"empty array", []QueryParam{{Name: "ids", Value: []any{}}}, "ids="},
		{"empty object", []QueryParam{{Name: "o", Value: map[string]any{}, Explode: ptr(false)}}, "o="},
		{"JSON content object", []QueryParam{{Name: "filter", JSON: true, Value: map[string]any{"state": "open", "tags": []any{"a<b", "c"}}}}, "filter=%7B%22state%22%3A%22open%22%2C%22tags%22%3A%5B%22a%3Cb%22%2C%22c%22%5D%7D"},
		{"JSON content string", []QueryParam{{Name: "s", JSON: true, Value: "x"}}, "s=%22x%22"},
		{"JSON ignores style", []QueryParam{{Name: "s", JSON: true, Style: "deepObject", Value: []any{1.0, 2.0}}}, "s=%5B1%2C2%5D"},
		{"none", nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := EncodeQuery(tt.params)
			if err != nil {
				t.Fatalf("EncodeQuery: %v", err)
			}
			if got != tt.want {
				t.Errorf("EncodeQuery = %q, want %q", got, tt.want)
			}
		})
	}
}

// TestEncodeQueryRoundTrip checks that a standard query parser reads back
// exactly the values sent, whatever bytes they hold.
func TestEncodeQueryRoundTrip(t *testing.T) {
	values := []string{"a,b", "x&y=z", "100%", "a+b c", "é/?#", "\x00\xff"}
	items := make([]any, len(values))
	for i, v := range values {
		items[i] = v
	}
	got, err := EncodeQuery([]QueryParam{{Name: "v", Value: items}})
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := url.ParseQuery(got)
	if err != nil {
		t.Fatalf("ParseQuery(%q): %v", got, err)
	}
	if back := parsed["v"]; strings.Join(back, "|") != strings.Join(values, "|") || len(back) != len(values) {
		t.Errorf("round trip of %q gave %q", values, back)
	}
}

func TestEncodeQueryRefuses(t *testing.T) {
	tests := []struct {
		name    string
		param   QueryParam
		wantErr string
	}{
		{"nested array", QueryParam{Name: "ids", Value: []any{[]any{"a"}}}, `query parameter "ids": item 0: a nested array or object`},
		{"nested object", QueryParam{Name: "o", Value: map[string]any{"k": map[string]any{}}}, `query parameter "o": member "k": a nested array or object`},
		{"null item", QueryParam{Name: "ids", Value: []any{nil}}, `query parameter "ids": item 0: null`},
		{"other style", QueryParam{Name: "o", Style: "deepObject", Value: map[string]any{"k": "v"}}, `query parameter "o": style "deepObject" is not supported`},
		{"unknown type", QueryParam{Name: "x", Value: struct{}{}}, `query parameter "x": unsupported value type`},
		{"no name", QueryParam{Value: "x"}, "no name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := EncodeQuery([]QueryParam{tt.param})
			if err == nil {
				t.Fatalf("EncodeQuery = %q, want an error", got)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error %q, want it to contain %q", err, tt.wantErr)
			}
		})
	}
}
