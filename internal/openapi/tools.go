package openapi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"mime"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"

	v3 "github.com/pb33f/libopenapi/datamodel/high/v3"
	"github.com/pb33f/libopenapi/orderedmap"
)

// Selection chooses which of a document's operations become tools. Each
// non-empty include list must match (Tags: the operation has one of the
// tags; OperationIDs: its operationId is listed; Methods: its method,
// case-insensitive; PathPrefixes: its path is the prefix or continues it
// after a "/", so "/repos" selects "/repos" and "/repos/{owner}" but not
// "/repositories", and "/repos/" only "/repos/{owner}"), and an operation that matches any exclude list is left
// out. The zero Selection selects every operation.
type Selection struct {
	Tags, OperationIDs, Methods, PathPrefixes                             []string
	ExcludeTags, ExcludeOperationIDs, ExcludeMethods, ExcludePathPrefixes []string
}

// ScopeRules says which scopes a tool call needs. The first rule that
// applies to an operation gives all of its scopes:
//
//  1. Operations, by operationId or "METHOD /path" (an empty list means no
//     scope).
//  2. The document's own scopes: those of the operation's security
//     requirement (or the document's top-level one) for oauth2 and
//     openIdConnect schemes, each renamed through ScopeMap when listed
//     there. Of several alternative requirements the first that names
//     such a scheme is used.
//  3. Tags: the union of the lists of the operation's tags that appear.
//  4. Read for GET, HEAD and OPTIONS; Write for every other method.
//
// The result is sorted and de-duplicated; it may be empty.
type ScopeRules struct {
	Read, Write []string
	Tags        map[string][]string
	Operations  map[string][]string
	ScopeMap    map[string]string
}

// Options configures [Document.Tools].
type Options struct {
	Selection Selection
	// Names overrides the tool name of an operation, keyed by operationId
	// or "METHOD /path". A name is used as given: it must pass
	// [CheckToolName] and be unique.
	Names  map[string]string
	Scopes ScopeRules
}

// Tool is one operation offered as an MCP tool.
type Tool struct {
	// Name is the MCP tool name (see [ToolName]).
	Name string
	// Title is the operation's summary.
	Title string
	// Description is the operation's description, or its summary.
	Description string
	// InputSchema is a JSON Schema 2020-12 object: one property per path,
	// query and header parameter, by the parameter's name, and "body" for
	// the JSON request body. Unknown properties are refused.
	InputSchema json.RawMessage
	// OutputSchema is the JSON Schema of the JSON 2xx response when that is
	// an object; when it is an array, an object whose "items" holds it (and
	// [Tool.Result] wraps the array the same way); nil otherwise.
	OutputSchema json.RawMessage
	// ReadOnly is set for GET and HEAD, Destructive for DELETE (MCP's
	// readOnlyHint and destructiveHint).
	ReadOnly, Destructive bool
	// Scopes are the scopes a call needs (see [ScopeRules]).
	Scopes []string
	// Method (upper case), Path (the document's template) and OperationID
	// (possibly empty) name the operation.
	Method, Path, OperationID string

	params      []param
	hasBody     bool
	bodyReq     bool
	bodyType    string // the JSON media type sent as Content-Type
	wrapItems   bool   // OutputSchema wraps an array in "items"
	propSchemas map[string][]byte

	once      sync.Once
	validator *validator
	vErr      error
}

// param is one parameter of a tool, as the request needs it.
type param struct {
	name, in string
	required bool
	style    string
	explode  *bool
	json     bool // content application/json
}

// Skipped is a selected operation that could not become a tool.
type Skipped struct {
	Method, Path, OperationID, Reason string
}

// maxTools bounds how many tools one route may hold; a client cannot list
// or a model choose among more than this many anyway.
const maxTools = 5000

var knownMethods = map[string]bool{
	http.MethodGet: true, http.MethodPut: true, http.MethodPost: true, http.MethodDelete: true,
	http.MethodOptions: true, http.MethodHead: true, http.MethodPatch: true, http.MethodTrace: true,
}

// Tools returns one tool per selected operation, in document order, and
// the selected operations that could not be offered, each with its
// reason (a non-JSON request body, a required cookie or forbidden header
// parameter, an unsupported parameter style, a schema that does not
// resolve...). The error is only for opts that do not fit the document: an
// operationId or "METHOD /path" in Names or Scopes.Operations that names no
// operation, or more than one; an unknown method, tag or operationId in the
// Selection; an invalid or duplicate tool name.
func (d *Document) Tools(opts Options) ([]*Tool, []Skipped, error) {
	if err := d.checkOptions(opts); err != nil {
		return nil, nil, err
	}
	var tools []*Tool
	var skipped []Skipped
	for i := range d.ops {
		o := &d.ops[i]
		if !opts.Selection.selects(o) {
			continue
		}
		t, reason := d.tool(o)
		if reason != "" {
			skipped = append(skipped, Skipped{Method: o.method, Path: o.path, OperationID: o.op.OperationId, Reason: reason})
			continue
		}
		t.Scopes = d.scopes(o, opts.Scopes)
		tools = append(tools, t)
	}
	if len(tools) > maxTools {
		return nil, nil, fmt.Errorf("openapi: %d operations selected, more than %d; narrow the selection", len(tools), maxTools)
	}
	// Names: overrides first, so that derived names step around them.
	var namer Namer
	named := make([]bool, len(tools))
	for i, t := range tools {
		name, ok := d.lookup(opts.Names, t.Method, t.Path, t.OperationID)
		if !ok {
			continue
		}
		if err := namer.Claim(name); err != nil {
			return nil, nil, fmt.Errorf("openapi: names: %s %s: %w", t.Method, t.Path, err)
		}
		t.Name = name
		named[i] = true
	}
	for i, t := range tools {
		if !named[i] {
			t.Name = namer.Name(t.Method, t.Path, t.OperationID)
		}
	}
	return tools, skipped, nil
}

// checkOptions refuses options that name what the document does not have.
func (d *Document) checkOptions(opts Options) error {
	for key := range opts.Names {
		if _, err := d.resolveKey(key); err != nil {
			return fmt.Errorf("openapi: names: %w", err)
		}
	}
	for key := range opts.Scopes.Operations {
		if _, err := d.resolveKey(key); err != nil {
			return fmt.Errorf("openapi: scopes: operations: %w", err)
		}
	}
	s := opts.Selection
	for _, list := range [][]string{s.Methods, s.ExcludeMethods} {
		for _, m := range list {
			if !knownMethods[strings.ToUpper(m)] {
				return fmt.Errorf("openapi: selection: %q is not an HTTP method", m)
			}
		}
	}
	tags := make(map[string]bool)
	ids := make(map[string]bool)
	for _, o := range d.ops {
		for _, t := range o.op.Tags {
			tags[t] = true
		}
		ids[o.op.OperationId] = true
	}
	for _, list := range [][]string{s.Tags, s.ExcludeTags} {
		for _, t := range list {
			if !tags[t] {
				return fmt.Errorf("openapi: selection: no operation has the tag %q", t)
			}
		}
	}
	for _, list := range [][]string{s.OperationIDs, s.ExcludeOperationIDs} {
		for _, id := range list {
			if id == "" || !ids[id] {
				return fmt.Errorf("openapi: selection: no operation has the operationId %q", id)
			}
		}
	}
	for _, list := range [][]string{s.PathPrefixes, s.ExcludePathPrefixes} {
		for _, p := range list {
			if !strings.HasPrefix(p, "/") {
				return fmt.Errorf("openapi: selection: path prefix %q does not start with '/'", p)
			}
		}
	}
	return nil
}

// resolveKey finds the one operation that key (an operationId or
// "METHOD /path") names.
func (d *Document) resolveKey(key string) (*operation, error) {
	var found []*operation
	for i := range d.ops {
		o := &d.ops[i]
		if o.op.OperationId == key || o.key() == key {
			found = append(found, o)
		}
	}
	switch len(found) {
	case 0:
		if m, p, ok := strings.Cut(key, " "); ok && strings.HasPrefix(p, "/") && m != strings.ToUpper(m) {
			return nil, fmt.Errorf("%q names no operation (write the method in upper case: %q)", key, strings.ToUpper(m)+" "+p)
		}
		return nil, fmt.Errorf("%q names no operation: use an operationId or \"METHOD /path\" as written in the document", key)
	case 1:
		return found[0], nil
	}
	return nil, fmt.Errorf("%q names %d operations (the operationId is not unique); use \"METHOD /path\" instead", key, len(found))
}

// lookup finds the entry of m for an operation: by "METHOD /path" first,
// then by operationId.
func (d *Document) lookup(m map[string]string, method, path, id string) (string, bool) {
	if v, ok := m[method+" "+path]; ok {
		return v, true
	}
	if id != "" {
		v, ok := m[id]
		return v, ok
	}
	return "", false
}

func (s Selection) selects(o *operation) bool {
	id := o.op.OperationId
	if len(s.Tags) > 0 && !anyIn(o.op.Tags, s.Tags) ||
		len(s.OperationIDs) > 0 && (id == "" || !slices.Contains(s.OperationIDs, id)) ||
		len(s.Methods) > 0 && !containsFold(s.Methods, o.method) ||
		len(s.PathPrefixes) > 0 && !hasPathPrefix(o.path, s.PathPrefixes) {
		return false
	}
	if anyIn(o.op.Tags, s.ExcludeTags) ||
		id != "" && slices.Contains(s.ExcludeOperationIDs, id) ||
		containsFold(s.ExcludeMethods, o.method) ||
		hasPathPrefix(o.path, s.ExcludePathPrefixes) {
		return false
	}
	return true
}

func anyIn(have, want []string) bool {
	for _, h := range have {
		if slices.Contains(want, h) {
			return true
		}
	}
	return false
}

func containsFold(list []string, s string) bool {
	for _, v := range list {
		if strings.EqualFold(v, s) {
			return true
		}
	}
	return false
}

// hasPathPrefix reports whether path is one of prefixes or continues one
// after a "/"; a prefix that ends in "/" matches only the paths below it.
func hasPathPrefix(path string, prefixes []string) bool {
	for _, p := range prefixes {
		if strings.HasSuffix(p, "/") {
			if strings.HasPrefix(path, p) {
				return true
			}
		} else if path == p || strings.HasPrefix(path, p+"/") {
			return true
		}
	}
	return false
}

// scopes applies rules to o (see [ScopeRules]).
func (d *Document) scopes(o *operation, rules ScopeRules) []string {
	if s, ok := lookupList(rules.Operations, o); ok {
		return normScopes(s)
	}
	if s, ok := d.documentScopes(o); ok {
		mapped := make([]string, len(s))
		for i, name := range s {
			mapped[i] = name
			if to, ok := rules.ScopeMap[name]; ok {
				mapped[i] = to
			}
		}
		return normScopes(mapped)
	}
	var fromTags []string
	tagged := false
	for _, tag := range o.op.Tags {
		if s, ok := rules.Tags[tag]; ok {
			tagged = true
			fromTags = append(fromTags, s...)
		}
	}
	if tagged {
		return normScopes(fromTags)
	}
	switch o.method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return normScopes(rules.Read)
	}
	return normScopes(rules.Write)
}

func lookupList(m map[string][]string, o *operation) ([]string, bool) {
	if v, ok := m[o.key()]; ok {
		return v, true
	}
	if id := o.op.OperationId; id != "" {
		v, ok := m[id]
		return v, ok
	}
	return nil, false
}

// documentScopes returns the scopes of the first of o's security
// requirements (its own, else the document's) that names an oauth2 or
// openIdConnect scheme; false when there is none or it lists no scope.
func (d *Document) documentScopes(o *operation) ([]string, bool) {
	reqs := o.op.Security
	if reqs == nil && !operationDeclaresSecurity(o.op) {
		reqs = d.model.Security
	}
	for _, req := range reqs {
		if req == nil || req.Requirements == nil {
			continue
		}
		var scopes []string
		found := false
		for scheme, s := range req.Requirements.FromOldest() {
			switch d.schemes[scheme] {
			case "oauth2", "openIdConnect":
				found = true
				scopes = append(scopes, s...)
			}
		}
		if found {
			return scopes, len(scopes) > 0
		}
	}
	return nil, false
}

// operationDeclaresSecurity reports whether op has its own "security",
// even an empty one (which turns the document's requirement off).
func operationDeclaresSecurity(op *v3.Operation) bool {
	low := op.GoLow()
	return low != nil && low.Security.KeyNode != nil
}

func normScopes(s []string) []string {
	out := make([]string, 0, len(s))
	for _, v := range s {
		if v != "" {
			out = append(out, v)
		}
	}
	sort.Strings(out)
	return slices.Compact(out)
}

// forbiddenHeaders are header parameters a tool may not set: they belong to
// the connection (hop-by-hop), to the gateway (credentials, Host), or are
// computed from the request itself.
var forbiddenHeaders = map[string]bool{
	"Connection": true, "Keep-Alive": true, "Proxy-Authenticate": true, "Proxy-Authorization": true,
	"Proxy-Connection": true, "Te": true, "Trailer": true, "Transfer-Encoding": true, "Upgrade": true,
	"Cookie": true, "Host": true, "Content-Length": true, "Set-Cookie": true,
}

// ignoredHeaders are header parameters OpenAPI itself says to ignore
// ("If in is "header" and the name field is "Accept", "Content-Type" or
// "Authorization", the parameter definition SHALL be ignored.").
var ignoredHeaders = map[string]bool{"Accept": true, "Content-Type": true, "Authorization": true}

// tool converts one operation, or returns why it cannot.
func (d *Document) tool(o *operation) (*Tool, string) {
	op := o.op
	t := &Tool{
		Title:       strings.TrimSpace(op.Summary),
		Description: strings.TrimSpace(cmpOr(op.Description, op.Summary)),
		ReadOnly:    o.method == http.MethodGet || o.method == http.MethodHead,
		Destructive: o.method == http.MethodDelete,
		Method:      o.method,
		Path:        o.path,
		OperationID: op.OperationId,
		propSchemas: make(map[string][]byte),
	}
	if _, err := ExpandPath(templateCheck(o.path)); err != nil {
		return nil, fmt.Sprintf("path template: %v", err)
	}

	// Parameters: the operation's override the path item's of the same
	// name and location.
	type key struct{ name, in string }
	var params []*v3.Parameter
	seen := make(map[key]int)
	for _, list := range [][]*v3.Parameter{o.item.Parameters, op.Parameters} {
		for _, p := range list {
			if p == nil {
				continue
			}
			k := key{p.Name, p.In}
			if i, ok := seen[k]; ok {
				params[i] = p
				continue
			}
			seen[k] = len(params)
			params = append(params, p)
		}
	}

	type prop struct {
		name   string
		schema []byte
	}
	var props []prop
	var required []string
	defs := make(map[string][]byte)
	addDefs := func(more map[string][]byte) string {
		for n, s := range more {
			if old, ok := defs[n]; ok && !bytes.Equal(old, s) {
				return fmt.Sprintf("two recursive schemas are both named %q", n)
			}
			defs[n] = s
		}
		return ""
	}
	names := make(map[string]string) // argument name → location
	pathNames := placeholders(o.path)
	for _, p := range params {
		req := p.Required != nil && *p.Required
		switch p.In {
		case "path":
			req = true
			if !slices.Contains(pathNames, p.Name) {
				// A path parameter the template does not use cannot be
				// sent; OpenAPI requires every one to appear.
				return nil, fmt.Sprintf("path parameter %q does not appear in the path template", p.Name)
			}
		case "query":
		case "header":
			canon := http.CanonicalHeaderKey(p.Name)
			if ignoredHeaders[canon] {
				continue
			}
			if forbiddenHeaders[canon] || !validHeaderName(p.Name) {
				if req {
					return nil, fmt.Sprintf("required header parameter %q cannot be set by a tool call", p.Name)
				}
				continue
			}
		case "cookie":
			if req {
				return nil, fmt.Sprintf("required cookie parameter %q is not supported", p.Name)
			}
			continue
		default:
			return nil, fmt.Sprintf("parameter %q has an unknown location %q", p.Name, p.In)
		}
		if where, dup := names[p.Name]; dup {
			return nil, fmt.Sprintf("parameter %q is both a %s and a %s parameter; tool arguments need distinct names", p.Name, where, p.In)
		}
		names[p.Name] = p.In

		pr := param{name: p.Name, in: p.In, required: req, style: p.Style, explode: p.Explode}
		schemaProxy := p.Schema
		if p.Content != nil && p.Content.Len() > 0 {
			_, media := firstJSON(p.Content)
			if media == nil {
				if req {
					return nil, fmt.Sprintf("parameter %q has content %s, not JSON", p.Name, strings.Join(contentTypes(p.Content), ", "))
				}
				continue
			}
			pr.json = true
			schemaProxy = media.Schema
		}
		switch p.In {
		case "path", "header":
			if pr.style != "" && pr.style != "simple" {
				return nil, fmt.Sprintf("%s parameter %q has style %q; only simple is supported", p.In, p.Name, pr.style)
			}
		case "query":
			if !pr.json && pr.style != "" && pr.style != "form" {
				if req {
					return nil, fmt.Sprintf("query parameter %q has style %q; only form is supported", p.Name, pr.style)
				}
				continue
			}
		}
		s, more, err := d.conv.root(schemaProxy, strings.TrimSpace(p.Description))
		if err != nil {
			return nil, fmt.Sprintf("parameter %q: %v", p.Name, err)
		}
		if r := addDefs(more); r != "" {
			return nil, r
		}
		props = append(props, prop{p.Name, s})
		if req {
			required = append(required, p.Name)
		}
		t.params = append(t.params, pr)
	}
	for _, name := range pathNames {
		if names[name] != "path" {
			return nil, fmt.Sprintf("path template names {%s} but no path parameter %q is declared", name, name)
		}
	}

	if rb := op.RequestBody; rb != nil {
		req := rb.Required != nil && *rb.Required
		mt, media := firstJSON(rb.Content)
		switch {
		case media != nil:
		case rb.Content == nil || rb.Content.Len() == 0:
			mt = "" // a body without content: nothing to send
		default:
			return nil, fmt.Sprintf("request body is %s, not JSON", strings.Join(contentTypes(rb.Content), ", "))
		}
		if mt != "" {
			if where, dup := names["body"]; dup {
				return nil, fmt.Sprintf("a %s parameter is named \"body\", the argument that holds the request body", where)
			}
			s, more, err := d.conv.root(media.Schema, strings.TrimSpace(rb.Description))
			if err != nil {
				return nil, fmt.Sprintf("request body: %v", err)
			}
			if r := addDefs(more); r != "" {
				return nil, r
			}
			props = append(props, prop{"body", s})
			if req {
				required = append(required, "body")
			}
			t.hasBody, t.bodyReq, t.bodyType = true, req, mt
		}
	}

	// The input schema: an object of the arguments.
	var b bytes.Buffer
	ow := objWriter{b: &b}
	b.WriteByte('{')
	ow.key("type")
	b.WriteString(`"object"`)
	ow.key("properties")
	b.WriteByte('{')
	for i, p := range props {
		if i > 0 {
			b.WriteByte(',')
		}
		writeJSONString(&b, p.name)
		b.WriteByte(':')
		b.Write(p.schema)
		t.propSchemas[p.name] = withDefs(p.schema, defs)
	}
	b.WriteByte('}')
	if len(required) > 0 {
		ow.key("required")
		writeJSON(&b, required)
	}
	ow.key("additionalProperties")
	b.WriteString("false")
	if len(defs) > 0 {
		ow.key("$defs")
		writeDefs(&b, defs)
	}
	b.WriteByte('}')
	t.InputSchema = b.Bytes()

	out, wrap, err := d.outputSchema(op)
	if err != nil {
		return nil, fmt.Sprintf("response: %v", err)
	}
	t.OutputSchema, t.wrapItems = out, wrap
	return t, ""
}

// outputSchema returns the output schema of op: from the JSON schema of its
// first 2xx response (200, 201, ... in order, then "2XX"), when that is an
// object, or an array (wrapped in "items").
func (d *Document) outputSchema(op *v3.Operation) (json.RawMessage, bool, error) {
	if op.Responses == nil || op.Responses.Codes == nil {
		return nil, false, nil
	}
	var codes []string
	for code := range op.Responses.Codes.KeysFromOldest() {
		if len(code) == 3 && code[0] == '2' {
			codes = append(codes, code)
		}
	}
	sort.Slice(codes, func(i, j int) bool {
		// "2XX" after the explicit codes.
		xi, xj := strings.ContainsAny(codes[i], "xX"), strings.ContainsAny(codes[j], "xX")
		if xi != xj {
			return xj
		}
		return codes[i] < codes[j]
	})
	for _, code := range codes {
		resp := op.Responses.Codes.GetOrZero(code)
		if resp == nil || resp.Content == nil {
			continue
		}
		_, media := firstJSON(resp.Content)
		if media == nil || media.Schema == nil {
			continue
		}
		s, defs, err := d.conv.root(media.Schema, "")
		if err != nil {
			return nil, false, err
		}
		switch schemaKind(s) {
		case "object":
			// MCP requires "type": "object" at the root of an output
			// schema, which an allOf of objects does not say itself.
			if !bytes.HasPrefix(s, []byte(`{"type":`)) {
				s = append([]byte(`{"type":"object",`), s[1:]...)
			}
			return withDefs(s, defs), false, nil
		case "array":
			var b bytes.Buffer
			b.WriteString(`{"type":"object","properties":{"items":`)
			b.Write(s)
			b.WriteString(`},"required":["items"]`)
			if len(defs) > 0 {
				b.WriteString(`,"$defs":`)
				writeDefs(&b, defs)
			}
			b.WriteByte('}')
			return b.Bytes(), true, nil
		}
		return nil, false, nil
	}
	return nil, false, nil
}

// schemaKind returns "object" or "array" when the converted schema says
// its instances are exactly that: its "type"; "properties" without a type;
// or an allOf with a member that is (an allOf of objects is how OpenAPI
// documents spell inheritance). Otherwise "".
func schemaKind(s []byte) string {
	var top struct {
		Type       json.RawMessage   `json:"type"`
		Properties json.RawMessage   `json:"properties"`
		AllOf      []json.RawMessage `json:"allOf"`
	}
	if json.Unmarshal(s, &top) != nil {
		return ""
	}
	if len(top.Type) > 0 {
		var typ string
		if json.Unmarshal(top.Type, &typ) != nil {
			return "" // a list of types: not always one kind
		}
		if typ == "object" || typ == "array" {
			return typ
		}
		return ""
	}
	if len(top.Properties) > 0 {
		return "object"
	}
	for _, m := range top.AllOf {
		if k := schemaKind(m); k != "" {
			return k
		}
	}
	return ""
}

// firstJSON returns the first JSON media type of content and its entry.
func firstJSON(content *orderedmap.Map[string, *v3.MediaType]) (string, *v3.MediaType) {
	for mt, media := range content.FromOldest() {
		if isJSONMediaType(mt) && media != nil {
			mediatype, _, _ := mime.ParseMediaType(mt)
			return mediatype, media
		}
	}
	return "", nil
}

func contentTypes(content *orderedmap.Map[string, *v3.MediaType]) []string {
	var out []string
	for mt := range content.FromOldest() {
		out = append(out, mt)
	}
	return out
}

// isJSONMediaType reports whether mt is application/json or a +json type
// (application/merge-patch+json, application/vnd.github+json...).
func isJSONMediaType(mt string) bool {
	t, _, err := mime.ParseMediaType(mt)
	if err != nil {
		return false
	}
	return t == "application/json" || strings.HasSuffix(t, "+json") && strings.HasPrefix(t, "application/")
}

// placeholders returns the names of a path template's {placeholders}.
func placeholders(path string) []string {
	var out []string
	for {
		i := strings.IndexByte(path, '{')
		if i < 0 {
			return out
		}
		j := strings.IndexByte(path[i:], '}')
		if j < 0 {
			return out
		}
		out = append(out, path[i+1:i+j])
		path = path[i+j+1:]
	}
}

// templateCheck returns path and a value for each placeholder, to check a
// template with ExpandPath before any call.
func templateCheck(path string) (string, map[string]string) {
	m := make(map[string]string)
	for _, n := range placeholders(path) {
		m[n] = "x"
	}
	return path, m
}

func validHeaderName(name string) bool {
	if name == "" {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return true
}
