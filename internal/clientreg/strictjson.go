package clientreg

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"unicode/utf8"
)

// maxJSONDepth bounds nesting: registration metadata is flat apart from
// jwks (three levels) and a few extension objects.
const maxJSONDepth = 16

// decodeObject parses b strictly as one JSON object and returns its
// members, with numbers as json.Number so unknown fields round-trip
// exactly. It refuses invalid UTF-8 (encoding/json would silently replace
// it), a duplicate member name at any depth (encoding/json keeps the last
// one, so two parsers could disagree about what was registered), nesting
// deeper than maxJSONDepth, and anything after the object.
//
// Member names are matched case-sensitively by the callers: the map is
// looked up with exact keys, never through struct tags, which
// encoding/json matches case-insensitively.
func decodeObject(b []byte) (map[string]any, error) {
	if !utf8.Valid(b) {
		return nil, errors.New("the body is not valid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil {
		return nil, errors.New("the body is not valid JSON")
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, errors.New("the body must be a JSON object")
	}
	if err := walkObject(dec, 1); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("the body has data after the JSON object")
	}
	var m map[string]any
	dec = json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil {
		return nil, errors.New("the body is not valid JSON")
	}
	return m, nil
}

// walkObject reads the members of an object whose '{' was consumed,
// refusing duplicate names.
func walkObject(dec *json.Decoder, depth int) error {
	if depth > maxJSONDepth {
		return fmt.Errorf("the JSON is nested more than %d levels deep", maxJSONDepth)
	}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return errors.New("the body is not valid JSON")
		}
		name, _ := tok.(string)
		if seen[name] {
			return fmt.Errorf("the member %q appears more than once", truncate(name, 64))
		}
		seen[name] = true
		if err := walkValue(dec, depth); err != nil {
			return err
		}
	}
	if _, err := dec.Token(); err != nil { // '}'
		return errors.New("the body is not valid JSON")
	}
	return nil
}

func walkValue(dec *json.Decoder, depth int) error {
	tok, err := dec.Token()
	if err != nil {
		return errors.New("the body is not valid JSON")
	}
	d, ok := tok.(json.Delim)
	if !ok {
		return nil
	}
	switch d {
	case '{':
		return walkObject(dec, depth+1)
	case '[':
		if depth+1 > maxJSONDepth {
			return fmt.Errorf("the JSON is nested more than %d levels deep", maxJSONDepth)
		}
		for dec.More() {
			if err := walkValue(dec, depth+1); err != nil {
				return err
			}
		}
		if _, err := dec.Token(); err != nil { // ']'
			return errors.New("the body is not valid JSON")
		}
	}
	return nil
}

// canonicalJSON encodes v with sorted object keys (encoding/json sorts map
// keys) and without HTML escaping, so equal metadata gives equal bytes.
func canonicalJSON(v any) string {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return "{}"
	}
	return string(bytes.TrimSuffix(buf.Bytes(), []byte("\n")))
}
