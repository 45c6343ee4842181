package openapi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/pb33f/go-yaml"
	"github.com/pb33f/libopenapi/datamodel/high/base"
	"github.com/pb33f/libopenapi/orderedmap"
)

// maxSchemaDepth bounds how deep a converted schema nests. Recursion through
// a $ref never reaches it (see converter); it stops a document whose inline
// schemas are absurdly deep from making a tool schema of unbounded size.
// Deeper subschemas become {} (anything), and the API checks them itself.
const maxSchemaDepth = 48

// converter turns OpenAPI schemas (3.0 dialect or 3.1/JSON Schema 2020-12)
// into JSON Schema 2020-12 text, the dialect of MCP's inputSchema and
// outputSchema. One converter serves a whole document: the text of a
// referenced schema that holds no cycle is cached by its $ref, so each
// component is converted once however many operations use it.
type converter struct {
	oas30 bool
	cache map[string][]byte

	// Per root schema (reset by root):
	stack   []string                     // $refs being converted, outermost first
	defs    map[string][]byte            // $defs name → text, for recursive schemas
	defRefs map[string]string            // $ref → $defs name
	proxies map[string]*base.SchemaProxy // $ref → its proxy, for $defs
	pending []string                     // $refs that need a $defs entry
	cycles  int                          // count of $refs written as #/$defs/...
	err     error                        // first unresolvable reference
}

func newConverter(oas30 bool) *converter {
	return &converter{oas30: oas30, cache: make(map[string][]byte)}
}

// root converts sp as the root of one tool schema. It returns the schema
// text and the $defs its recursive references need (nil when none), which
// the caller places at the root of the whole tool schema. description, when
// set, is used if the schema has none (a parameter's own description).
func (c *converter) root(sp *base.SchemaProxy, description string) (schema []byte, defs map[string][]byte, err error) {
	c.stack = c.stack[:0]
	c.defs, c.defRefs, c.proxies, c.pending, c.err = nil, nil, nil, nil, nil
	var b bytes.Buffer
	c.convert(&b, sp, 0, description)
	// Each recursive reference needs its target in $defs; converting a
	// target may find further ones.
	for len(c.pending) > 0 && c.err == nil {
		ref := c.pending[0]
		c.pending = c.pending[1:]
		name := c.defRefs[ref]
		if _, done := c.defs[name]; done {
			continue
		}
		c.defs[name] = nil // claimed: a reference to it inside is a cycle
		var d bytes.Buffer
		c.stack = append(c.stack[:0], ref)
		c.write(&d, c.proxies[ref], 1, "")
		c.defs[name] = d.Bytes()
	}
	if c.err != nil {
		return nil, nil, c.err
	}
	return b.Bytes(), c.defs, nil
}

// convert writes the JSON Schema text of sp at the given depth.
func (c *converter) convert(b *bytes.Buffer, sp *base.SchemaProxy, depth int, description string) {
	if sp == nil {
		b.WriteString("{}")
		return
	}
	ref := sp.GetReference()
	if ref != "" {
		if !strings.HasPrefix(ref, "#") {
			c.fail(fmt.Errorf("external $ref %q is not supported; bundle the document into one file", ref))
			b.WriteString("{}")
			return
		}
		for _, onStack := range c.stack {
			if onStack == ref {
				c.cycleRef(b, ref, sp)
				return
			}
		}
		if description == "" {
			if cached, ok := c.cache[ref]; ok {
				b.Write(cached)
				return
			}
		}
		c.stack = append(c.stack, ref)
		start, cycles := b.Len(), c.cycles
		c.write(b, sp, depth, description)
		c.stack = c.stack[:len(c.stack)-1]
		// Text that points into $defs depends on the root it was made
		// for; anything else is the same wherever the $ref appears.
		if c.cycles == cycles && description == "" && c.err == nil {
			c.cache[ref] = bytes.Clone(b.Bytes()[start:])
		}
		return
	}
	c.write(b, sp, depth, description)
}

// cycleRef writes a reference to the $defs entry for ref, which is being
// converted further up: this is how a recursive schema stays finite.
func (c *converter) cycleRef(b *bytes.Buffer, ref string, sp *base.SchemaProxy) {
	if c.defRefs == nil {
		c.defRefs = make(map[string]string)
		c.defs = make(map[string][]byte)
		c.proxies = make(map[string]*base.SchemaProxy)
	}
	name, ok := c.defRefs[ref]
	if !ok {
		name = defName(ref, c.defRefs)
		c.defRefs[ref] = name
		c.proxies[ref] = sp
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
	base = strings.NewReplacer("~1", "_", "~0", "_").Replace(base)
	base = sanitize(base)
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

// write writes the keywords of the schema sp points to (its $ref already
// followed by libopenapi).
func (c *converter) write(b *bytes.Buffer, sp *base.SchemaProxy, depth int, description string) {
	if depth > maxSchemaDepth {
		b.WriteString("{}")
		return
	}
	s := sp.Schema()
	if s == nil {
		if err := sp.GetBuildError(); err != nil {
			c.fail(fmt.Errorf("schema %s: %w", refOrInline(sp), err))
		} else if sp.IsReference() {
			c.fail(fmt.Errorf("$ref %q does not resolve", sp.GetReference()))
		}
		b.WriteString("{}")
		return
	}
	if s.BooleanSchema != nil {
		if *s.BooleanSchema {
			b.WriteString("{}")
		} else {
			b.WriteString(`{"not":{}}`)
		}
		return
	}
	o := objWriter{b: b}
	b.WriteByte('{')

	nullable := c.oas30 && s.Nullable != nil && *s.Nullable
	types := s.Type
	if nullable && len(types) > 0 && !contains(types, "null") {
		types = append(append([]string(nil), types...), "null")
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
	if s.Title != "" {
		o.key("title")
		writeJSONString(b, s.Title)
	}
	if d := cmpOr(s.Description, description); d != "" {
		o.key("description")
		writeJSONString(b, d)
	}
	if s.Format != "" {
		o.key("format")
		writeJSONString(b, s.Format)
	}
	if len(s.Enum) > 0 {
		vals := make([]any, 0, len(s.Enum)+1)
		hasNull := false
		for _, n := range s.Enum {
			v := nodeValue(n)
			hasNull = hasNull || v == nil
			vals = append(vals, v)
		}
		if nullable && !hasNull {
			vals = append(vals, nil)
		}
		o.key("enum")
		writeJSON(b, vals)
	}
	if s.Const != nil {
		o.key("const")
		writeJSON(b, nodeValue(s.Const))
	}
	if s.Default != nil {
		o.key("default")
		writeJSON(b, nodeValue(s.Default))
	}
	if s.Deprecated != nil && *s.Deprecated {
		o.key("deprecated")
		b.WriteString("true")
	}
	if s.ReadOnly != nil && *s.ReadOnly {
		o.key("readOnly")
		b.WriteString("true")
	}
	if s.WriteOnly != nil && *s.WriteOnly {
		o.key("writeOnly")
		b.WriteString("true")
	}

	// Numbers. OpenAPI 3.0 spells an exclusive bound as a boolean next to
	// minimum/maximum; 2020-12 as the bound itself.
	minimum, maximum := s.Minimum, s.Maximum
	if em := s.ExclusiveMinimum; em != nil {
		if em.IsB() {
			o.key("exclusiveMinimum")
			writeJSON(b, em.B)
		} else if em.A && minimum != nil {
			o.key("exclusiveMinimum")
			writeJSON(b, *minimum)
			minimum = nil
		}
	}
	if em := s.ExclusiveMaximum; em != nil {
		if em.IsB() {
			o.key("exclusiveMaximum")
			writeJSON(b, em.B)
		} else if em.A && maximum != nil {
			o.key("exclusiveMaximum")
			writeJSON(b, *maximum)
			maximum = nil
		}
	}
	o.num("minimum", minimum)
	o.num("maximum", maximum)
	o.num("multipleOf", s.MultipleOf)

	// Strings. A pattern Go's regexp cannot compile (ECMA-262 lookaround,
	// backreferences) is left out rather than failing the operation: the
	// API still checks it.
	o.int("minLength", s.MinLength)
	o.int("maxLength", s.MaxLength)
	if s.Pattern != "" && validPattern(s.Pattern) {
		o.key("pattern")
		writeJSONString(b, s.Pattern)
	}

	// Arrays.
	if s.Items != nil {
		if s.Items.IsA() {
			o.key("items")
			c.convert(b, s.Items.A, depth+1, "")
		} else if !s.Items.B {
			o.key("items")
			b.WriteString("false")
		}
	}
	c.list(&o, "prefixItems", s.PrefixItems, depth)
	o.int("minItems", s.MinItems)
	o.int("maxItems", s.MaxItems)
	if s.UniqueItems != nil && *s.UniqueItems {
		o.key("uniqueItems")
		b.WriteString("true")
	}
	c.one(&o, "contains", s.Contains, depth)
	o.int("minContains", s.MinContains)
	o.int("maxContains", s.MaxContains)

	// Objects.
	if s.Properties != nil && s.Properties.Len() > 0 {
		o.key("properties")
		c.schemaMap(b, s.Properties, depth)
	}
	if len(s.Required) > 0 {
		o.key("required")
		writeJSON(b, s.Required)
	}
	if ap := s.AdditionalProperties; ap != nil {
		if ap.IsA() && ap.A != nil {
			o.key("additionalProperties")
			c.convert(b, ap.A, depth+1, "")
		} else if ap.IsB() && !ap.B {
			o.key("additionalProperties")
			b.WriteString("false")
		}
	}
	if pp := s.PatternProperties; pp != nil && pp.Len() > 0 {
		valid := orderedmap.New[string, *base.SchemaProxy]()
		for k, v := range pp.FromOldest() {
			if validPattern(k) {
				valid.Set(k, v)
			}
		}
		if valid.Len() > 0 {
			o.key("patternProperties")
			c.schemaMap(b, valid, depth)
		}
	}
	c.one(&o, "propertyNames", s.PropertyNames, depth)
	o.int("minProperties", s.MinProperties)
	o.int("maxProperties", s.MaxProperties)
	if dr := s.DependentRequired; dr != nil && dr.Len() > 0 {
		o.key("dependentRequired")
		m := make(map[string][]string, dr.Len())
		for k, v := range dr.FromOldest() {
			m[k] = v
		}
		writeJSON(b, m)
	}
	if ds := s.DependentSchemas; ds != nil && ds.Len() > 0 {
		o.key("dependentSchemas")
		c.schemaMap(b, ds, depth)
	}

	// Composition.
	c.list(&o, "allOf", s.AllOf, depth)
	c.list(&o, "anyOf", s.AnyOf, depth)
	c.list(&o, "oneOf", s.OneOf, depth)
	c.one(&o, "not", s.Not, depth)
	c.one(&o, "if", s.If, depth)
	c.one(&o, "then", s.Then, depth)
	c.one(&o, "else", s.Else, depth)
	b.WriteByte('}')
}

func (c *converter) one(o *objWriter, key string, sp *base.SchemaProxy, depth int) {
	if sp == nil {
		return
	}
	o.key(key)
	c.convert(o.b, sp, depth+1, "")
}

func (c *converter) list(o *objWriter, key string, sps []*base.SchemaProxy, depth int) {
	if len(sps) == 0 {
		return
	}
	o.key(key)
	o.b.WriteByte('[')
	for i, sp := range sps {
		if i > 0 {
			o.b.WriteByte(',')
		}
		c.convert(o.b, sp, depth+1, "")
	}
	o.b.WriteByte(']')
}

func (c *converter) schemaMap(b *bytes.Buffer, m *orderedmap.Map[string, *base.SchemaProxy], depth int) {
	b.WriteByte('{')
	i := 0
	for k, v := range m.FromOldest() {
		if i > 0 {
			b.WriteByte(',')
		}
		i++
		writeJSONString(b, k)
		b.WriteByte(':')
		c.convert(b, v, depth+1, "")
	}
	b.WriteByte('}')
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

func (o *objWriter) num(k string, v *float64) {
	if v != nil {
		o.key(k)
		writeJSON(o.b, *v)
	}
}

func (o *objWriter) int(k string, v *int64) {
	if v != nil {
		o.key(k)
		o.b.WriteString(strconv.FormatInt(*v, 10))
	}
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

// validPattern reports whether Go's regexp (which jsonschema-go uses)
// compiles p.
func validPattern(p string) bool {
	_, err := regexp.Compile(p)
	return err == nil
}

func refOrInline(sp *base.SchemaProxy) string {
	if r := sp.GetReference(); r != "" {
		return strconv.Quote(r)
	}
	return "(inline)"
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
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
	if len(defs) == 0 {
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
