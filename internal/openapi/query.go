package openapi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
)

// QueryParam is one query parameter of a tool call, with how the OpenAPI
// document says to serialise it.
type QueryParam struct {
	// Name is the parameter's name in the document. Required.
	Name string
	// Value is the argument, as decoded from the tool call's JSON: nil
	// (the parameter is left out), string, bool, float64, int, int64,
	// json.Number, []any, []string, map[string]any (keys sent in sorted
	// order, so the query is deterministic) or [Object] (keys sent in its
	// order). Arrays and objects may hold only scalars unless JSON is set.
	Value any
	// Style is the parameter's style; "" and "form" (the OpenAPI default for
	// query parameters) are supported, others refused.
	Style string
	// Explode is the parameter's explode flag; nil means the OpenAPI default
	// for the style, true for form.
	Explode *bool
	// JSON is set for a parameter declared with content application/json:
	// the value is sent as its JSON text and Style and Explode are ignored.
	JSON bool
}

// Object is a JSON object value whose members keep their order, for callers
// that know the order the API expects (such as the order of the schema's
// properties).
type Object []Member

// Member is one name and value of an [Object].
type Member struct {
	Name  string
	Value any
}

// EncodeQuery returns the query string (without "?") for params, in their
// order, following OpenAPI 3 style form:
//
//	value              explode true                    explode false
//	"blue"             color=blue                      color=blue
//	[blue,black]       color=blue&color=black          color=blue,black
//	{R:100,G:200}      R=100&G=200                     color=R,100,G,200
//	"" or [] or {}     color=                          color=
//
// Names and values are percent-encoded (RFC 3986: every byte outside the
// unreserved set, space as %20), so a "," or "&" inside a value is never
// read as a separator. Non-string scalars are written as their JSON text
// (true, 42, 1.5). A JSON parameter is sent as name=<JSON text>. It returns
// an error naming the parameter for an unsupported style, a nested array or
// object in form style, and an unsupported value type.
func EncodeQuery(params []QueryParam) (string, error) {
	var parts []string
	for _, p := range params {
		if p.Name == "" {
			return "", fmt.Errorf("query parameter with no name")
		}
		if p.Value == nil {
			continue
		}
		encoded, err := encodeParam(p)
		if err != nil {
			return "", fmt.Errorf("query parameter %q: %w", p.Name, err)
		}
		parts = append(parts, encoded...)
	}
	return strings.Join(parts, "&"), nil
}

// encodeParam returns the name=value pairs of one parameter.
func encodeParam(p QueryParam) ([]string, error) {
	name := escapeQuery(p.Name)
	if p.JSON {
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false) // the API gets the text as given, not \u003c
		if err := enc.Encode(p.Value); err != nil {
			return nil, fmt.Errorf("cannot be written as JSON: %w", err)
		}
		return []string{name + "=" + escapeQuery(strings.TrimSuffix(buf.String(), "\n"))}, nil
	}
	if p.Style != "" && p.Style != "form" {
		return nil, fmt.Errorf("style %q is not supported for query parameters (only form)", p.Style)
	}
	explode := p.Explode == nil || *p.Explode

	switch v := p.Value.(type) {
	case []any:
		items := make([]string, len(v))
		for i, item := range v {
			s, err := scalar(item)
			if err != nil {
				return nil, fmt.Errorf("item %d: %w", i, err)
			}
			items[i] = escapeQuery(s)
		}
		return formArray(name, items, explode), nil
	case []string:
		items := make([]string, len(v))
		for i, item := range v {
			items[i] = escapeQuery(item)
		}
		return formArray(name, items, explode), nil
	case map[string]any:
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		obj := make(Object, len(keys))
		for i, k := range keys {
			obj[i] = Member{k, v[k]}
		}
		return formObject(name, obj, explode)
	case Object:
		return formObject(name, v, explode)
	}
	s, err := scalar(p.Value)
	if err != nil {
		return nil, err
	}
	return []string{name + "=" + escapeQuery(s)}, nil
}

// formArray spells an array: one name=item per item exploded, one
// comma-separated name=a,b,c otherwise; name= for an empty array.
func formArray(name string, items []string, explode bool) []string {
	if len(items) == 0 {
		return []string{name + "="}
	}
	if !explode {
		return []string{name + "=" + strings.Join(items, ",")}
	}
	out := make([]string, len(items))
	for i, item := range items {
		out[i] = name + "=" + item
	}
	return out
}

// formObject spells an object: key=value per member exploded (the
// parameter's own name does not appear), name=k1,v1,k2,v2 otherwise; name=
// for an empty object.
func formObject(name string, obj Object, explode bool) ([]string, error) {
	if len(obj) == 0 {
		return []string{name + "="}, nil
	}
	pairs := make([]string, 0, len(obj))
	flat := make([]string, 0, 2*len(obj))
	for _, m := range obj {
		s, err := scalar(m.Value)
		if err != nil {
			return nil, fmt.Errorf("member %q: %w", m.Name, err)
		}
		k, v := escapeQuery(m.Name), escapeQuery(s)
		pairs = append(pairs, k+"="+v)
		flat = append(flat, k, v)
	}
	if explode {
		return pairs, nil
	}
	return []string{name + "=" + strings.Join(flat, ",")}, nil
}

// scalar returns the text of a scalar value: a string as itself, anything
// else as its JSON text.
func scalar(v any) (string, error) {
	switch v := v.(type) {
	case string:
		return v, nil
	case bool, float64, float32, int, int64, int32, json.Number:
		b, err := json.Marshal(v)
		if err != nil {
			return "", fmt.Errorf("cannot be written: %w", err)
		}
		return string(b), nil
	case nil:
		// "null" would reach the API as the four-letter string.
		return "", fmt.Errorf("null cannot be sent in form style")
	case []any, []string, map[string]any, Object:
		return "", fmt.Errorf("a nested array or object cannot be sent in form style; the document must declare content application/json for it")
	default:
		return "", fmt.Errorf("unsupported value type %T", v)
	}
}

// escapeQuery percent-encodes every byte outside RFC 3986's unreserved set.
// url.QueryEscape is not used: it writes a space as "+", which RFC 3986
// (and so OpenAPI) reads as a literal plus, while %20 means a space to
// every parser.
func escapeQuery(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	escapeSegment(&b, s)
	return b.String()
}
