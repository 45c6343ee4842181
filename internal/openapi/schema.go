package openapi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/pb33f/go-yaml"
	"github.com/pb33f/libopenapi/datamodel/high/base"
)

// maxSchemaDepth bounds how deep a converted schema nests. Recursion through
// a $ref never reaches it (see converter); it stops a document whose inline
// schemas are absurdly deep from making a tool schema of unbounded size.
// Deeper subschemas become {} (anything), and the API checks them itself.
const maxSchemaDepth = 48

// converter turns OpenAPI schemas (3.0 dialect or 3.1/JSON Schema 2020-12)
// into JSON Schema 2020-12 text, the dialect of MCP's inputSchema and
// outputSchema. It reads the document's YAML nodes (which libopenapi parsed
// and keeps) rather than libopenapi's schema objects: building those for
// every schema of a large document took more memory than the rest of the
// conversion together. One converter serves a whole document: the text of
// a referenced schema that holds no cycle is cached by its $ref, so each
// component is converted once however many operations use it.
type converter struct {
	oas30    bool
	doc      *yaml.Node // the document's root mapping
	cache    map[string][]byte
	patterns map[string]bool // pattern → compiles with Go's regexp

	// Per root schema (reset by root):
	stack   []string          // $refs being converted, outermost first
	defs    map[string][]byte // $defs name → text, for recursive schemas
	defRefs map[string]string // $ref → $defs name
	pending []string          // $refs that need a $defs entry
	cycles  int               // count of $refs written as #/$defs/...
	err     error             // first unresolvable reference
}

func newConverter(oas30 bool, doc *yaml.Node) *converter {
	for doc != nil && doc.Kind == yaml.DocumentNode && len(doc.Content) == 1 {
		doc = doc.Content[0]
	}
	return &converter{oas30: oas30, doc: doc, cache: make(map[string][]byte), patterns: make(map[string]bool)}
}

// root converts sp as the root of one tool schema. It returns the schema
// text and the $defs its recursive references need (nil when none), which
// the caller places at the root of the whole tool schema. description, when
// set, is used if the schema has none (a parameter's own description).
func (c *converter) root(sp *base.SchemaProxy, description string) (schema []byte, defs map[string][]byte, err error) {
	c.stack = c.stack[:0]
	c.defs, c.defRefs, c.pending, c.err = nil, nil, nil, nil
	var b bytes.Buffer
	switch {
	case sp == nil:
		b.WriteString("{}")
	case sp.GetReference() != "":
		c.convertRef(&b, sp.GetReference(), 0, description)
	default:
		c.convert(&b, sp.GetValueNode(), 0, description)
	}
	// Each recursive reference needs its target in $defs; converting a
	// target may find further ones.
	for len(c.pending) > 0 && c.err == nil {
		ref := c.pending[0]
		c.pending = c.pending[1:]
		var d bytes.Buffer
		c.stack = append(c.stack[:0], ref)
		c.convert(&d, c.resolve(ref), 1, "")
		c.defs[c.defRefs[ref]] = d.Bytes()
	}
	if c.err != nil {
		return nil, nil, c.err
	}
	return b.Bytes(), c.defs, nil
}

// resolve returns the node a local $ref ("#/json/pointer") points to, or
// nil.
func (c *converter) resolve(ref string) *yaml.Node {
	frag, ok := strings.CutPrefix(ref, "#")
	if !ok {
		return nil
	}
	if dec, err := url.PathUnescape(frag); err == nil {
		frag = dec
	}
	n := c.doc
	if frag == "" {
		return n
	}
	if !strings.HasPrefix(frag, "/") {
		return nil // a plain-name fragment ($anchor) is not supported
	}
	for _, tok := range strings.Split(frag[1:], "/") {
		tok = strings.ReplaceAll(strings.ReplaceAll(tok, "~1", "/"), "~0", "~")
		n = deref(n)
		switch {
		case n == nil:
			return nil
		case n.Kind == yaml.MappingNode:
			n = mapGet(n, tok)
		case n.Kind == yaml.SequenceNode:
			i, err := strconv.Atoi(tok)
			if err != nil || i < 0 || i >= len(n.Content) {
				return nil
			}
			n = n.Content[i]
		default:
			return nil
		}
	}
	return deref(n)
}

// convert writes the JSON Schema text of the schema node n.
func (c *converter) convert(b *bytes.Buffer, n *yaml.Node, depth int, description string) {
	n = deref(n)
	switch {
	case n == nil:
		b.WriteString("{}")
		return
	case n.Kind == yaml.ScalarNode && n.ShortTag() == "!!bool":
		// JSON Schema's boolean schemas (3.1; and additionalProperties:
		// false in 3.0).
		if v, _ := strconv.ParseBool(n.Value); v {
			b.WriteString("true")
		} else {
			b.WriteString("false")
		}
		return
	case n.Kind != yaml.MappingNode:
		b.WriteString("{}") // not a schema: accept anything, the API decides
		return
	}
	if ref := mapGet(n, "$ref"); ref != nil && ref.Kind == yaml.ScalarNode {
		// OpenAPI 3.0 ignores a $ref's siblings; 3.1 (JSON Schema
		// 2020-12) applies them too, which write spells as an allOf.
		if c.oas30 || len(n.Content) == 2 {
			c.convertRef(b, ref.Value, depth, description)
			return
		}
	}
	if c.oas30 && isTrue(mapGet(n, "nullable")) && mapGet(n, "type") == nil {
		// OpenAPI 3.0.3 says nullable without a type has no effect, but
		// documents (GitHub's among them) write it next to allOf, oneOf
		// or anyOf to mean "or null": accept null, the API decides.
		b.WriteString(`{"anyOf":[`)
		c.write(b, n, depth+1, description)
		b.WriteString(`,{"type":"null"}]}`)
		return
	}
	c.write(b, n, depth, description)
}

// convertRef writes the schema that ref points to: from the cache, as a
// $defs reference when ref is being converted further up (a recursive
// schema), or converted here.
func (c *converter) convertRef(b *bytes.Buffer, ref string, depth int, description string) {
	if !strings.HasPrefix(ref, "#") {
		c.fail(fmt.Errorf("$ref %q points outside the document", ref))
		b.WriteString("{}")
		return
	}
	if slices.Contains(c.stack, ref) {
		c.cycleRef(b, ref)
		return
	}
	if description == "" {
		if cached, ok := c.cache[ref]; ok {
			b.Write(cached)
			return
		}
	}
	target := c.resolve(ref)
	if target == nil {
		c.fail(fmt.Errorf("$ref %q does not resolve", ref))
		b.WriteString("{}")
		return
	}
	if loopsWithoutSchema(c, ref) {
		c.fail(fmt.Errorf("$ref %q refers back to itself through $refs alone, so it describes no value", ref))
		b.WriteString("{}")
		return
	}
	c.stack = append(c.stack, ref)
	start, cycles := b.Len(), c.cycles
	c.convert(b, target, depth, description)
	c.stack = c.stack[:len(c.stack)-1]
	// Text that points into $defs depends on the root it was made for;
	// anything else is the same wherever the $ref appears.
	if c.cycles == cycles && description == "" && c.err == nil {
		c.cache[ref] = bytes.Clone(b.Bytes()[start:])
	}
}

// loopsWithoutSchema reports whether following ref through schemas that
// are only a $ref comes back to ref (which would make a $defs entry that
// is only a reference to itself).
func loopsWithoutSchema(c *converter, ref string) bool {
	seen := map[string]bool{ref: true}
	for n := c.resolve(ref); n != nil && n.Kind == yaml.MappingNode && len(n.Content) == 2; {
		next := mapGet(n, "$ref")
		if next == nil || next.Kind != yaml.ScalarNode {
			return false
		}
		if seen[next.Value] {
			return true
		}
		seen[next.Value] = true
		n = c.resolve(next.Value)
	}
	return false
}

// cycleRef writes a reference to the $defs entry for ref, which is being
// converted further up: this is how a recursive schema stays finite.
func (c *converter) cycleRef(b *bytes.Buffer, ref string) {
	if c.defRefs == nil {
		c.defRefs = make(map[string]string)
		c.defs = make(map[string][]byte)
	}
	name, ok := c.defRefs[ref]
	if !ok {
		name = defName(ref, c.defRefs)
		c.defRefs[ref] = name
		c.pending = append(c.pending, ref)
	}
	c.cycles++
	b.WriteString(`{"$ref":`)
	writeJSONString(b, "#/$defs/"+name)
	b.WriteByte('}')
}

// defName returns a $defs name for ref: its last pointer segment made of
// safe characters, with a number added if another $ref already has it.
func defName(ref string, taken map[string]string) string {
	base := ref[strings.LastIndexByte(ref, '/')+1:]
	base = sanitize(strings.NewReplacer("~1", "_", "~0", "_").Replace(base))
	if base == "" {
		base = "schema"
	}
	used := func(n string) bool {
		for _, v := range taken {
			if v == n {
				return true
			}
		}
		return false
	}
	name := base
	for i := 2; used(name); i++ {
		name = base + "_" + strconv.Itoa(i)
	}
	return name
}

func (c *converter) fail(err error) {
	if c.err == nil {
		c.err = err
	}
}

// write writes the keywords of the schema mapping n, in a fixed order
// ("type" first).
func (c *converter) write(b *bytes.Buffer, n *yaml.Node, depth int, description string) {
	if depth > maxSchemaDepth {
		b.WriteString("{}")
		return
	}
	o := objWriter{b: b}
	b.WriteByte('{')

	nullable := c.oas30 && isTrue(mapGet(n, "nullable"))
	var types []string
	if t := deref(mapGet(n, "type")); t != nil {
		switch t.Kind {
		case yaml.ScalarNode:
			types = []string{t.Value}
		case yaml.SequenceNode:
			for _, item := range t.Content {
				types = append(types, item.Value)
			}
		}
	}
	if nullable && len(types) > 0 && !slices.Contains(types, "null") {
		types = append(types, "null")
	}
	switch len(types) {
	case 0:
	case 1:
		o.key("type")
		writeJSONString(b, types[0])
	default:
		o.key("type")
		writeJSON(b, types)
	}
	o.str("title", mapGet(n, "title"))
	if d := mapGet(n, "description"); d != nil && d.Value != "" {
		o.str("description", d)
	} else if description != "" {
		o.key("description")
		writeJSONString(b, description)
	}
	o.str("format", mapGet(n, "format"))
	if e := deref(mapGet(n, "enum")); e != nil && e.Kind == yaml.SequenceNode {
		vals := make([]any, 0, len(e.Content)+1)
		hasNull := false
		for _, item := range e.Content {
			v := nodeValue(item)
			hasNull = hasNull || v == nil
			vals = append(vals, v)
		}
		if nullable && !hasNull {
			vals = append(vals, nil)
		}
		o.key("enum")
		writeJSON(b, vals)
	}
	for _, k := range []string{"const", "default"} {
		if v := mapGet(n, k); v != nil {
			o.key(k)
			writeJSON(b, nodeValue(v))
		}
	}
	for _, k := range []string{"deprecated", "readOnly", "writeOnly"} {
		if isTrue(mapGet(n, k)) {
			o.key(k)
			b.WriteString("true")
		}
	}

	// Numbers. OpenAPI 3.0 spells an exclusive bound as a boolean next to
	// minimum/maximum; 2020-12 as the bound itself.
	minimum, maximum := mapGet(n, "minimum"), mapGet(n, "maximum")
	if em := deref(mapGet(n, "exclusiveMinimum")); em != nil {
		if em.ShortTag() != "!!bool" {
			o.num("exclusiveMinimum", em)
		} else if isTrue(em) && minimum != nil {
			o.num("exclusiveMinimum", minimum)
			minimum = nil
		}
	}
	if em := deref(mapGet(n, "exclusiveMaximum")); em != nil {
		if em.ShortTag() != "!!bool" {
			o.num("exclusiveMaximum", em)
		} else if isTrue(em) && maximum != nil {
			o.num("exclusiveMaximum", maximum)
			maximum = nil
		}
	}
	o.num("minimum", minimum)
	o.num("maximum", maximum)
	o.num("multipleOf", mapGet(n, "multipleOf"))

	// Strings. A pattern Go's regexp cannot compile (ECMA-262 lookaround,
	// backreferences) is left out rather than failing the operation: the
	// API still checks it.
	o.num("minLength", mapGet(n, "minLength"))
	o.num("maxLength", mapGet(n, "maxLength"))
	if p := deref(mapGet(n, "pattern")); p != nil && p.Kind == yaml.ScalarNode && c.validPattern(p.Value) {
		o.str("pattern", p)
	}

	// Arrays.
	c.one(&o, "items", mapGet(n, "items"), depth)
	c.list(&o, "prefixItems", mapGet(n, "prefixItems"), depth)
	o.num("minItems", mapGet(n, "minItems"))
	o.num("maxItems", mapGet(n, "maxItems"))
	if isTrue(mapGet(n, "uniqueItems")) {
		o.key("uniqueItems")
		b.WriteString("true")
	}
	c.one(&o, "contains", mapGet(n, "contains"), depth)
	o.num("minContains", mapGet(n, "minContains"))
	o.num("maxContains", mapGet(n, "maxContains"))

	// Objects.
	c.schemaMap(&o, "properties", mapGet(n, "properties"), depth, nil)
	if r := deref(mapGet(n, "required")); r != nil && r.Kind == yaml.SequenceNode && len(r.Content) > 0 {
		names := make([]string, 0, len(r.Content))
		for _, item := range r.Content {
			names = append(names, item.Value)
		}
		o.key("required")
		writeJSON(b, names)
	}
	if ap := deref(mapGet(n, "additionalProperties")); ap != nil && !isTrue(ap) {
		c.one(&o, "additionalProperties", ap, depth)
	}
	c.schemaMap(&o, "patternProperties", mapGet(n, "patternProperties"), depth, c.validPattern)
	c.one(&o, "propertyNames", mapGet(n, "propertyNames"), depth)
	o.num("minProperties", mapGet(n, "minProperties"))
	o.num("maxProperties", mapGet(n, "maxProperties"))
	if dr := deref(mapGet(n, "dependentRequired")); dr != nil && dr.Kind == yaml.MappingNode {
		o.key("dependentRequired")
		writeJSON(b, nodeValue(dr))
	}
	c.schemaMap(&o, "dependentSchemas", mapGet(n, "dependentSchemas"), depth, nil)

	// Composition. A 3.1 $ref with siblings joins the allOf.
	allOf := deref(mapGet(n, "allOf"))
	if ref := mapGet(n, "$ref"); ref != nil && !c.oas30 {
		o.key("allOf")
		b.WriteByte('[')
		c.convertRef(b, ref.Value, depth+1, "")
		if allOf != nil && allOf.Kind == yaml.SequenceNode {
			for _, item := range allOf.Content {
				b.WriteByte(',')
				c.convert(b, item, depth+1, "")
			}
		}
		b.WriteByte(']')
	} else {
		c.list(&o, "allOf", allOf, depth)
	}
	c.list(&o, "anyOf", mapGet(n, "anyOf"), depth)
	c.list(&o, "oneOf", mapGet(n, "oneOf"), depth)
	for _, k := range []string{"not", "if", "then", "else"} {
		c.one(&o, k, mapGet(n, k), depth)
	}
	b.WriteByte('}')
}

// one writes key: the schema n, when n is there.
func (c *converter) one(o *objWriter, key string, n *yaml.Node, depth int) {
	if n == nil {
		return
	}
	o.key(key)
	c.convert(o.b, n, depth+1, "")
}

// list writes key: [schemas of the sequence n], when n is a non-empty
// sequence.
func (c *converter) list(o *objWriter, key string, n *yaml.Node, depth int) {
	n = deref(n)
	if n == nil || n.Kind != yaml.SequenceNode || len(n.Content) == 0 {
		return
	}
	o.key(key)
	o.b.WriteByte('[')
	for i, item := range n.Content {
		if i > 0 {
			o.b.WriteByte(',')
		}
		c.convert(o.b, item, depth+1, "")
	}
	o.b.WriteByte(']')
}

// schemaMap writes key: {name: schema...} for the mapping n, in the
// document's order, keeping only names keep accepts (all when nil).
func (c *converter) schemaMap(o *objWriter, key string, n *yaml.Node, depth int, keep func(string) bool) {
	n = deref(n)
	if n == nil || n.Kind != yaml.MappingNode || len(n.Content) == 0 {
		return
	}
	written := 0
	for i := 0; i+1 < len(n.Content); i += 2 {
		name := n.Content[i].Value
		if keep != nil && !keep(name) {
			continue
		}
		if written == 0 {
			o.key(key)
			o.b.WriteByte('{')
		} else {
			o.b.WriteByte(',')
		}
		written++
		writeJSONString(o.b, name)
		o.b.WriteByte(':')
		c.convert(o.b, n.Content[i+1], depth+1, "")
	}
	if written > 0 {
		o.b.WriteByte('}')
	}
}

// validPattern reports whether Go's regexp (which jsonschema-go uses)
// compiles p.
func (c *converter) validPattern(p string) bool {
	ok, seen := c.patterns[p]
	if !seen {
		_, err := regexp.Compile(p)
		ok = err == nil
		c.patterns[p] = ok
	}
	return ok
}

// mapGet returns the value of key in the mapping n, or nil.
func mapGet(n *yaml.Node, key string) *yaml.Node {
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return nil
}

// deref follows YAML aliases.
func deref(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode && i < 100; i++ {
		n = n.Alias
	}
	return n
}

func isTrue(n *yaml.Node) bool {
	n = deref(n)
	return n != nil && n.Kind == yaml.ScalarNode && n.ShortTag() == "!!bool" && strings.EqualFold(n.Value, "true")
}

// objWriter writes the members of a JSON object, commas included.
type objWriter struct {
	b *bytes.Buffer
	n int
}

func (o *objWriter) key(k string) {
	if o.n > 0 {
		o.b.WriteByte(',')
	}
	o.n++
	writeJSONString(o.b, k)
	o.b.WriteByte(':')
}

// num writes k: the number n, when n is a number.
func (o *objWriter) num(k string, n *yaml.Node) {
	n = deref(n)
	if n == nil || n.Kind != yaml.ScalarNode {
		return
	}
	if v, ok := nodeValue(n).(json.Number); ok {
		o.key(k)
		o.b.WriteString(string(v))
	}
}

// str writes k: the string n, when n is a scalar.
func (o *objWriter) str(k string, n *yaml.Node) {
	n = deref(n)
	if n == nil || n.Kind != yaml.ScalarNode || n.Value == "" {
		return
	}
	o.key(k)
	writeJSONString(o.b, n.Value)
}

func writeJSONString(b *bytes.Buffer, s string) { writeJSON(b, s) }

// writeJSON writes v as JSON without HTML escaping (a description's "<"
// reaches the client as written).
func writeJSON(b *bytes.Buffer, v any) {
	enc := json.NewEncoder(b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		// Only a float that is NaN or infinite can fail here; YAML
		// allows .inf, JSON does not.
		b.WriteString("null")
		return
	}
	b.Truncate(b.Len() - 1) // Encode's newline
}

// nodeValue returns the JSON value of a YAML node (enum, const, default).
// Integers and floats keep their text as json.Number, so a large integer
// is not rounded through float64.
func nodeValue(n *yaml.Node) any {
	if n == nil {
		return nil
	}
	switch n.Kind {
	case yaml.DocumentNode:
		if len(n.Content) == 1 {
			return nodeValue(n.Content[0])
		}
		return nil
	case yaml.AliasNode:
		return nodeValue(n.Alias)
	case yaml.SequenceNode:
		out := make([]any, len(n.Content))
		for i, item := range n.Content {
			out[i] = nodeValue(item)
		}
		return out
	case yaml.MappingNode:
		out := make(map[string]any, len(n.Content)/2)
		for i := 0; i+1 < len(n.Content); i += 2 {
			out[n.Content[i].Value] = nodeValue(n.Content[i+1])
		}
		return out
	}
	switch n.ShortTag() {
	case "!!null":
		return nil
	case "!!bool":
		v, err := strconv.ParseBool(strings.ToLower(n.Value))
		if err == nil {
			return v
		}
	case "!!int", "!!float":
		if json.Valid([]byte(n.Value)) {
			return json.Number(n.Value)
		}
		if f, err := strconv.ParseFloat(n.Value, 64); err == nil {
			return json.Number(strconv.FormatFloat(f, 'g', -1, 64))
		}
	}
	return n.Value
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// withDefs returns schema (an object's text) with a "$defs" member holding
// defs, in name order, or schema itself when defs is empty.
func withDefs(schema []byte, defs map[string][]byte) []byte {
	if len(defs) == 0 || len(schema) < 2 || schema[0] != '{' {
		return schema
	}
	var b bytes.Buffer
	b.Grow(len(schema) + 64)
	b.Write(schema[:len(schema)-1])
	if len(schema) > 2 {
		b.WriteByte(',')
	}
	b.WriteString(`"$defs":`)
	writeDefs(&b, defs)
	b.WriteByte('}')
	return b.Bytes()
}

func writeDefs(b *bytes.Buffer, defs map[string][]byte) {
	names := make([]string, 0, len(defs))
	for n := range defs {
		names = append(names, n)
	}
	sort.Strings(names)
	b.WriteByte('{')
	for i, n := range names {
		if i > 0 {
			b.WriteByte(',')
		}
		writeJSONString(b, n)
		b.WriteByte(':')
		b.Write(defs[n])
	}
	b.WriteByte('}')
}
