package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// decodeFile reads a config file's text (YAML, or JSON, which is YAML)
// into c. It parses to a node tree, which keeps lines, and walks it
// against Config's json names and types, so that every unknown key and
// every value of the wrong type is reported at once with its line and key
// path. Refused keys are cut from the tree and keep their defaults; what
// is left is decoded as JSON, the way the config always was, so json
// tags stay the only naming source.
func decodeFile(file string, raw []byte, c *Config, src *sources) Problems {
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil // an empty file: the defaults
		}
		return Problems{syntaxProblem(file, err)}
	}
	var more yaml.Node
	if err := dec.Decode(&more); !errors.Is(err, io.EOF) {
		p := Problem{Source: file, Message: "the file holds more than one YAML document (a line \"---\"); a config file is one document", fatal: true}
		if err == nil {
			p.Line, p.Column = more.Line, more.Column
		}
		return Problems{p}
	}
	if len(doc.Content) == 0 {
		return nil
	}
	root := doc.Content[0]
	if root.Kind == yaml.ScalarNode && root.ShortTag() == "!!null" {
		return nil
	}
	if resolve(root).Kind != yaml.MappingNode {
		return Problems{{Source: file, Line: root.Line, Column: root.Column, fatal: true,
			Message: fmt.Sprintf("the file must be a mapping of keys such as \"issuer: https://auth.example.com\", not %s", describe(root))}}
	}
	w := walker{file: file, src: src}
	w.check(root, reflect.TypeOf(Config{}), "")
	var v any
	if err := root.Decode(&v); err != nil {
		return append(w.probs, Problem{Source: file, Message: err.Error(), fatal: true})
	}
	js, err := json.Marshal(v)
	if err != nil {
		return append(w.probs, Problem{Source: file, Message: err.Error(), fatal: true})
	}
	jd := json.NewDecoder(bytes.NewReader(js))
	jd.DisallowUnknownFields()
	if err := jd.Decode(c); err != nil {
		// The walk should have cut whatever json refuses; say so if not.
		return append(w.probs, Problem{Source: file, Message: err.Error(), fatal: true})
	}
	return w.probs
}

// yamlLine finds the line in a yaml syntax error ("yaml: line 3: …").
var yamlLine = regexp.MustCompile(`^yaml: (?:line (\d+): )?(.*)$`)

// syntaxProblem is the Problem of a file the YAML parser refused.
func syntaxProblem(file string, err error) Problem {
	p := Problem{Source: file, Message: "not valid YAML (or JSON): " + err.Error(), fatal: true}
	if m := yamlLine.FindStringSubmatch(err.Error()); m != nil {
		p.Line, _ = strconv.Atoi(m[1])
		p.Message = "not valid YAML (or JSON): " + m[2]
	}
	return p
}

// walker checks a node tree against a Go type.
type walker struct {
	file  string
	src   *sources
	probs Problems
}

// refuse records a problem with the value at path, which is cut.
func (w *walker) refuse(n *yaml.Node, path, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if path != "" {
		msg = path + ": " + msg
	}
	w.probs = append(w.probs, Problem{Source: w.file, Line: n.Line, Column: n.Column, Path: path, Message: msg, refused: true})
}

var durationType = reflect.TypeOf(Duration(0))

// resolve follows an alias (*anchor) to the node it names.
func resolve(n *yaml.Node) *yaml.Node {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

// check checks n against t at path. It reports whether n can be decoded
// as t; it rewrites scalars that YAML types differently from what Go
// expects (8080 for a string, yes for a bool) so that the JSON decoding
// that follows accepts them.
func (w *walker) check(n *yaml.Node, t reflect.Type, path string) bool {
	orig := n
	n = resolve(n)
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" {
		return true // leaves the default in place, as JSON null does
	}
	if t == durationType {
		if n.Kind != yaml.ScalarNode {
			w.refuse(orig, path, "must be a duration such as \"10m\", not %s", describe(n))
			return false
		}
		if _, err := time.ParseDuration(n.Value); err != nil {
			w.refuse(orig, path, "%q is not a duration: give a number and a unit, such as \"90s\", \"10m\" or \"720h\"", n.Value)
			return false
		}
		n.Tag = "!!str"
		return true
	}
	switch t.Kind() {
	case reflect.Pointer:
		return w.check(orig, t.Elem(), path)
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			w.refuse(orig, path, "must be a mapping of keys, not %s", describe(n))
			return false
		}
		w.checkStruct(n, t, path)
		return true
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			w.refuse(orig, path, "must be a mapping, not %s", describe(n))
			return false
		}
		var kept []*yaml.Node
		seen := map[string]int{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := resolve(n.Content[i]), n.Content[i+1]
			if k.Kind != yaml.ScalarNode {
				w.refuse(k, path, "a key must be a plain value, not %s", describe(k))
				continue
			}
			kp := path + "." + k.Value
			if line, dup := seen[k.Value]; dup {
				w.refuse(k, kp, "key %q appears twice (first on line %d)", k.Value, line)
				continue
			}
			seen[k.Value] = k.Line
			w.record(kp, k)
			k.Tag = "!!str"
			if w.check(v, t.Elem(), kp) {
				kept = append(kept, n.Content[i], v)
			}
		}
		n.Content = kept
		return true
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			w.refuse(orig, path, "must be a list, not %s", describe(n))
			return false
		}
		for i, e := range n.Content {
			ep := fmt.Sprintf("%s[%d]", path, i)
			w.record(ep, e)
			if !w.check(e, t.Elem(), ep) {
				// Keep the indexes of the later elements.
				n.Content[i] = &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null", Value: "null", Line: e.Line, Column: e.Column}
			}
		}
		return true
	}
	if n.Kind != yaml.ScalarNode {
		w.refuse(orig, path, "must be %s, not %s", kindName(t), describe(n))
		return false
	}
	switch t.Kind() {
	case reflect.String:
		n.Tag = "!!str" // listen: 8080 is the string "8080"
		return true
	case reflect.Bool:
		switch strings.ToLower(n.Value) {
		case "true", "yes", "on":
			n.Tag, n.Value = "!!bool", "true"
			return true
		case "false", "no", "off":
			n.Tag, n.Value = "!!bool", "false"
			return true
		}
		w.refuse(orig, path, "must be true or false, not %q", n.Value)
		return false
	case reflect.Int, reflect.Int64:
		if n.ShortTag() == "!!int" {
			var v int64
			if err := n.Decode(&v); err == nil && !reflect.Zero(t).OverflowInt(v) {
				return true
			}
		}
		w.refuse(orig, path, "must be a whole number, not %q", n.Value)
		return false
	}
	w.refuse(orig, path, "cannot hold a %s", t)
	return false
}

// checkStruct checks a mapping against the json names of struct type t,
// refusing unknown and repeated keys.
func (w *walker) checkStruct(n *yaml.Node, t reflect.Type, path string) {
	fields := map[string]reflect.Type{}
	var names []string
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if !f.IsExported() || name == "" || name == "-" {
			continue
		}
		fields[name] = f.Type
		names = append(names, name)
	}
	var kept []*yaml.Node
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := resolve(n.Content[i]), n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			w.refuse(k, path, "a key must be a name, not %s", describe(k))
			continue
		}
		if k.Value == "<<" && k.ShortTag() == "!!merge" {
			// A merge key (<<: *defaults) brings in the keys of the
			// mappings it names; check them as keys of this mapping.
			for _, m := range mergeSources(v) {
				if m.Kind == yaml.MappingNode {
					w.checkStruct(m, t, path)
				} else {
					w.refuse(v, path, "<< must name a mapping, not %s", describe(m))
				}
			}
			kept = append(kept, n.Content[i], v)
			continue
		}
		kp := joinPath(path, k.Value)
		ft, ok := fields[k.Value]
		if !ok {
			w.refuse(k, kp, "unknown key %q%s", k.Value, suggest(k.Value, names, path))
			continue
		}
		if line, dup := seen[k.Value]; dup {
			w.refuse(k, kp, "key %q appears twice (first on line %d)", k.Value, line)
			continue
		}
		seen[k.Value] = k.Line
		w.record(kp, k)
		if w.check(v, ft, kp) {
			kept = append(kept, n.Content[i], v)
		}
	}
	n.Content = kept
}

// mergeSources are the mappings a merge key's value names.
func mergeSources(v *yaml.Node) []*yaml.Node {
	v = resolve(v)
	if v.Kind == yaml.SequenceNode {
		var ms []*yaml.Node
		for _, e := range v.Content {
			ms = append(ms, resolve(e))
		}
		return ms
	}
	return []*yaml.Node{v}
}

// record notes where the key path is in the file.
func (w *walker) record(path string, n *yaml.Node) {
	if w.src.pos == nil {
		w.src.pos = map[string][2]int{}
	}
	w.src.pos[path] = [2]int{n.Line, n.Column}
}

func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// secretKeys are keys a reader may expect but that are never read from
// the file, because they hold secrets.
var secretKeys = map[string]string{
	"postgres_dsn":   "the DSN is never read from the config file: set postgres_dsn_file, or the environment variable GATEHOUSE_STORAGE_POSTGRES_DSN",
	"encryption_key": "the key is never read from the config file: set encryption_key_file",
	"header_value":   "the credential is never read from the config file: set header_value_file or header_value_env",
	"client_secret":  "the client secret is never read from the config file: set client_secret_file or client_secret_env",
}

// suggest is " (did you mean "x"?)" for the known name closest to key,
// or a hint for a secret that belongs elsewhere.
func suggest(key string, names []string, path string) string {
	if hint, ok := secretKeys[key]; ok {
		return ": " + hint
	}
	best, bestD := "", 3
	if len(key) < 5 {
		bestD = 2
	}
	for _, n := range names {
		d := editDistance(strings.ToLower(key), n)
		if d < bestD {
			best, bestD = n, d
		}
	}
	if best != "" {
		return fmt.Sprintf(" (did you mean %q?)", best)
	}
	where := "the top level"
	if path != "" {
		where = path
	}
	return fmt.Sprintf(" (the keys of %s are %s)", where, strings.Join(names, ", "))
}

// editDistance is the optimal string alignment distance: insertions,
// deletions, substitutions and transpositions of neighbours ("idel" →
// "idle") each count 1.
func editDistance(a, b string) int {
	d := make([][]int, len(a)+1)
	for i := range d {
		d[i] = make([]int, len(b)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(a); i++ {
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(a)][len(b)]
}

// describe names what a node is, for messages: a mapping, a list, or the
// value itself.
func describe(n *yaml.Node) string {
	switch resolve(n).Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	}
	v := resolve(n).Value
	// A value in the wrong place may be a secret (a DSN where a mapping
	// belongs): a URL is shown without its userinfo and query, and a value
	// with spaces or an @ not at all.
	if strings.Contains(v, "://") {
		return strconv.Quote(redactURL(v))
	}
	if strings.ContainsAny(v, "@ \t\r\n") {
		return "a text value (not shown: it may be a secret)"
	}
	return strconv.Quote(v)
}

// kindName says what a value of type t looks like, for messages.
func kindName(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int64:
		return "a whole number"
	}
	return "a " + t.String()
}
