package openapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/google/jsonschema-go/jsonschema"
)

// ArgError is a tool argument that does not match the tool's input schema,
// found before any request is made. Arg is the argument's name ("" for the
// arguments as a whole); Problem says what is wrong, in words a model can
// act on.
type ArgError struct {
	Arg, Problem string
}

// Error names the argument and the problem.
func (e *ArgError) Error() string {
	if e.Arg == "" {
		return "invalid arguments: " + e.Problem
	}
	return fmt.Sprintf("invalid argument %q: %s", e.Arg, e.Problem)
}

// maxProblemLen bounds the text of an ArgError's Problem: a validator's
// message can quote large parts of the schema or the value.
const maxProblemLen = 500

// validator checks tool arguments, one resolved schema per argument, so
// that an error names the argument it is about.
type validator struct {
	props    map[string]*jsonschema.Resolved
	required []string
}

// compile resolves the tool's argument schemas once.
func (t *Tool) compile() (*validator, error) {
	t.once.Do(func() {
		v := &validator{props: make(map[string]*jsonschema.Resolved, len(t.propSchemas))}
		for name, text := range t.propSchemas {
			var s jsonschema.Schema
			if err := json.Unmarshal(text, &s); err != nil {
				t.vErr = fmt.Errorf("openapi: tool %s: schema of argument %q: %w", t.Name, name, err)
				return
			}
			rs, err := s.Resolve(nil)
			if err != nil {
				t.vErr = fmt.Errorf("openapi: tool %s: schema of argument %q: %w", t.Name, name, err)
				return
			}
			v.props[name] = rs
		}
		for _, p := range t.params {
			if p.required {
				v.required = append(v.required, p.name)
			}
		}
		if t.bodyReq {
			v.required = append(v.required, "body")
		}
		t.validator = v
	})
	return t.validator, t.vErr
}

// Validate checks args (a JSON object, or empty for no arguments) against
// the tool's input schema and returns an [*ArgError] for the first problem:
// not an object, an unknown argument, a missing required one, or a value
// its schema refuses. Arguments are checked in name order, so the error is
// the same from call to call. A non-ArgError error means the tool's schema
// itself cannot be used (reported once per tool).
func (t *Tool) Validate(args json.RawMessage) error {
	_, err := t.parseArgs(args)
	return err
}

// parsedArgs are a call's arguments: raw, to build the request from (so a
// number keeps its exact text), by name.
type parsedArgs map[string]json.RawMessage

func (t *Tool) parseArgs(args json.RawMessage) (parsedArgs, error) {
	v, err := t.compile()
	if err != nil {
		return nil, err
	}
	trimmed := bytes.TrimSpace(args)
	if len(trimmed) == 0 || bytes.Equal(trimmed, []byte("null")) {
		trimmed = []byte("{}")
	}
	var raw parsedArgs
	if err := json.Unmarshal(trimmed, &raw); err != nil || raw == nil {
		return nil, &ArgError{Problem: "the arguments must be a JSON object"}
	}
	// A parameter cannot be sent as null (a query or header has no
	// spelling for it), and models often send null for an argument they
	// mean to leave out: null for an optional parameter is its absence.
	for name, value := range raw {
		if name != "body" && !slices.Contains(v.required, name) && bytes.Equal(bytes.TrimSpace(value), []byte("null")) {
			delete(raw, name)
		}
	}
	names := make([]string, 0, len(raw))
	for name := range raw {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if _, ok := v.props[name]; !ok {
			return nil, &ArgError{Arg: name, Problem: "this tool has no such argument" + t.argList()}
		}
	}
	for _, name := range v.required {
		if _, ok := raw[name]; !ok {
			return nil, &ArgError{Arg: name, Problem: "is required"}
		}
	}
	for _, name := range names {
		var value any
		if err := json.Unmarshal(raw[name], &value); err != nil {
			return nil, &ArgError{Arg: name, Problem: "is not valid JSON"}
		}
		if err := v.props[name].Validate(value); err != nil {
			return nil, &ArgError{Arg: name, Problem: problem(err)}
		}
	}
	return raw, nil
}

// argList returns " (arguments: a, b, c)" for an unknown-argument error.
func (t *Tool) argList() string {
	names := make([]string, 0, len(t.propSchemas))
	for n := range t.propSchemas {
		names = append(names, n)
	}
	if len(names) == 0 {
		return "; it takes no arguments"
	}
	sort.Strings(names)
	return " (arguments: " + strings.Join(names, ", ") + ")"
}

// problem turns a jsonschema-go error into a short message: its
// "validating <schema>: " prefixes carry schema locations that mean
// nothing to the caller, the last part says what failed.
func problem(err error) string {
	msg := err.Error()
	for {
		rest, ok := strings.CutPrefix(msg, "validating ")
		if !ok {
			break
		}
		i := strings.Index(rest, ": ")
		if i < 0 {
			break
		}
		msg = rest[i+2:]
	}
	// jsonschema-go prints a JSON null as an invalid reflect.Value.
	msg = strings.ReplaceAll(msg, "<invalid reflect.Value>", "null")
	return truncate(msg, maxProblemLen)
}

// truncate cuts s to at most n bytes on a rune boundary, marking the cut.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

// Request returns the HTTP request for a call of the tool with args (the
// tool call's "arguments" object). args are validated against the input
// schema first: a mismatch returns an [*ArgError] and no request.
//
// The request goes to base (scheme, host, and path as a prefix; the
// document's servers are ignored; a query on base is kept, before the
// tool's) with the path template expanded by [ExpandPath] (so no argument
// can change the path's segments or the host), the query parameters by
// [EncodeQuery], header parameters set, the "body" argument as the JSON
// body with the document's JSON media type as Content-Type, and Accept:
// application/json.
func (t *Tool) Request(ctx context.Context, base *url.URL, args json.RawMessage) (*http.Request, error) {
	if base == nil || base.Scheme == "" || base.Host == "" {
		return nil, errors.New("openapi: the base URL needs a scheme and a host")
	}
	raw, err := t.parseArgs(args)
	if err != nil {
		return nil, err
	}
	pathParams := make(map[string]string)
	var query []QueryParam
	header := make(http.Header)
	for _, p := range t.params {
		value, ok := raw[p.name]
		if !ok {
			continue
		}
		switch p.in {
		case "path":
			s, err := simpleValue(value, p.explode)
			if err != nil {
				return nil, &ArgError{Arg: p.name, Problem: err.Error()}
			}
			pathParams[p.name] = s
		case "query":
			v, err := decodeNumber(value)
			if err != nil {
				return nil, &ArgError{Arg: p.name, Problem: "is not valid JSON"}
			}
			if v == nil && !p.json {
				continue // null: the parameter is left out
			}
			query = append(query, QueryParam{Name: p.name, Value: v, Style: p.style, Explode: p.explode, JSON: p.json})
		case "header":
			var s string
			if p.json {
				s = string(compact(value))
			} else if s, err = simpleValue(value, p.explode); err != nil {
				return nil, &ArgError{Arg: p.name, Problem: err.Error()}
			}
			if strings.ContainsAny(s, "\r\n\x00") {
				return nil, &ArgError{Arg: p.name, Problem: "a header value cannot hold a line break or NUL"}
			}
			header.Set(p.name, s)
		}
	}
	path, err := ExpandPath(t.Path, pathParams)
	if err != nil {
		// Only the values "", "." and ".." reach here: the template
		// was checked when the tool was made.
		name := ""
		for n := range pathParams {
			if strings.Contains(err.Error(), fmt.Sprintf("%q", n)) {
				name = n
			}
		}
		return nil, &ArgError{Arg: name, Problem: strings.TrimPrefix(err.Error(), fmt.Sprintf("path parameter %q ", name))}
	}
	q, err := EncodeQuery(query)
	if err != nil {
		var name string
		for _, p := range query {
			if strings.HasPrefix(err.Error(), fmt.Sprintf("query parameter %q:", p.Name)) {
				name = p.Name
			}
		}
		return nil, &ArgError{Arg: name, Problem: strings.TrimPrefix(err.Error(), fmt.Sprintf("query parameter %q: ", name))}
	}
	if base.RawQuery != "" {
		q = strings.TrimSuffix(base.RawQuery+"&"+q, "&")
	}
	u := &url.URL{
		Scheme:   base.Scheme,
		User:     base.User,
		Host:     base.Host,
		RawQuery: q,
	}
	prefix := strings.TrimSuffix(base.EscapedPath(), "/")
	u.RawPath = prefix + path
	if u.Path, err = url.PathUnescape(u.RawPath); err != nil {
		return nil, fmt.Errorf("openapi: base path %q: %w", base.EscapedPath(), err)
	}

	var body []byte
	if b, ok := raw["body"]; ok && t.hasBody {
		// null for an optional body is no body, as for parameters.
		if t.bodyReq || !bytes.Equal(bytes.TrimSpace(b), []byte("null")) {
			body = compact(b)
		}
	}
	var req *http.Request
	if body != nil {
		req, err = http.NewRequestWithContext(ctx, t.Method, u.String(), bytes.NewReader(body))
	} else {
		req, err = http.NewRequestWithContext(ctx, t.Method, u.String(), nil)
	}
	if err != nil {
		return nil, fmt.Errorf("openapi: %w", err)
	}
	// Belt and braces: whatever the arguments, the request stays on base.
	if req.URL.Scheme != base.Scheme || req.URL.Host != base.Host || !strings.HasPrefix(req.URL.EscapedPath(), prefix+"/") {
		return nil, fmt.Errorf("openapi: request URL %q left the base URL", req.URL.Redacted())
	}
	for k, vs := range header {
		req.Header[k] = vs
	}
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", t.bodyType)
	}
	return req, nil
}

// simpleValue spells a path or header value in style simple: a scalar as
// its text, an array as items joined by ",", an object as k,v,k,v (or
// k=v,k=v exploded).
func simpleValue(raw json.RawMessage, explode *bool) (string, error) {
	v, err := decodeNumber(raw)
	if err != nil {
		return "", errors.New("is not valid JSON")
	}
	switch v := v.(type) {
	case []any:
		parts := make([]string, len(v))
		for i, item := range v {
			s, err := scalar(item)
			if err != nil {
				return "", fmt.Errorf("item %d: %v", i, err)
			}
			parts[i] = s
		}
		return strings.Join(parts, ","), nil
	case map[string]any:
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		parts := make([]string, 0, 2*len(v))
		for _, k := range keys {
			s, err := scalar(v[k])
			if err != nil {
				return "", fmt.Errorf("member %q: %v", k, err)
			}
			if explode != nil && *explode {
				parts = append(parts, k+"="+s)
			} else {
				parts = append(parts, k, s)
			}
		}
		return strings.Join(parts, ","), nil
	case nil:
		return "", errors.New("cannot be null")
	}
	return scalar(v)
}

// decodeNumber decodes JSON keeping numbers as json.Number, so that an
// integer beyond 2^53 reaches the API as written.
func decodeNumber(raw json.RawMessage) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	return v, nil
}

func compact(raw json.RawMessage) []byte {
	var b bytes.Buffer
	if err := json.Compact(&b, raw); err != nil {
		return raw
	}
	return b.Bytes()
}
