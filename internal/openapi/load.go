package openapi

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/pb33f/go-yaml"
	"github.com/pb33f/libopenapi"
	"github.com/pb33f/libopenapi/datamodel"
	v3 "github.com/pb33f/libopenapi/datamodel/high/v3"
	"github.com/pb33f/libopenapi/index"
	"github.com/pb33f/libopenapi/utils"
)

// Document is a parsed OpenAPI 3.0 or 3.1 document whose local $refs
// resolve. Make one with [Load]; turn its operations into tools with
// [Document.Tools]. A Document is not safe for concurrent use.
type Document struct {
	version string // the document's "openapi" field
	oas30   bool
	model   *v3.Document
	ops     []operation
	// schemes maps a security scheme's name to its type ("oauth2",
	// "openIdConnect", "apiKey", "http", "mutualTLS").
	schemes map[string]string
	conv    *converter
}

// operation is one method of one path, in document order.
type operation struct {
	method string // upper case
	path   string
	item   *v3.PathItem
	op     *v3.Operation
}

// key returns the "METHOD /path" spelling that Options use for an
// operation.
func (o operation) key() string { return o.method + " " + o.path }

// Load parses an OpenAPI 3.0 or 3.1 document, JSON or YAML. It returns an
// error naming the problem for data that is not such a document (an
// OpenAPI 2.0 "swagger" document included), a $ref to another file or a
// URL (nothing outside the document is ever read), a local $ref that does
// not resolve, and a document without paths.
func Load(data []byte) (*Document, error) {
	if len(strings.TrimSpace(string(data))) == 0 {
		return nil, errors.New("openapi: the document is empty")
	}
	cfg := datamodel.NewDocumentConfiguration()
	cfg.AllowFileReferences = false
	cfg.AllowRemoteReferences = false
	// The converter bounds recursive schemas itself; libopenapi's check
	// would only report them as errors.
	cfg.SkipCircularReferenceCheck = true
	// Index metadata (all descriptions, enums...) and $refs inside x-
	// extensions serve linters, not us; skipping them saves about 15 MB
	// on GitHub's description, whose conversion must stay under 300 MB.
	cfg.SkipMetadataCollection = true
	cfg.ExcludeExtensionRefs = true
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	doc, err := libopenapi.NewDocumentWithConfiguration(data, cfg)
	if err != nil {
		if strings.Contains(err.Error(), "spec type not supported") {
			return nil, errors.New("openapi: not an OpenAPI 3 document (no \"openapi\" version field)")
		}
		return nil, fmt.Errorf("openapi: not an OpenAPI document: %w", err)
	}
	info := doc.GetSpecInfo()
	if info == nil || info.SpecType != utils.OpenApi3 {
		if info != nil && info.SpecType == utils.OpenApi2 {
			return nil, errors.New("openapi: this is an OpenAPI 2.0 (swagger) document; convert it to OpenAPI 3.0 or 3.1 first")
		}
		return nil, errors.New("openapi: not an OpenAPI 3 document (no \"openapi\" field)")
	}
	version := info.Version
	oas30 := strings.HasPrefix(version, "3.0.")
	if !oas30 && !strings.HasPrefix(version, "3.1.") {
		return nil, fmt.Errorf("openapi: version %q is not supported; OpenAPI 3.0.x and 3.1.x are", version)
	}
	// libopenapi follows a $ref whose target is itself a $ref until it
	// finds a value, and with its circular-reference check off (see
	// above) a loop of such references overflows the stack, which no
	// recover catches: refuse them first.
	if err := checkRefLoops(info.RootNode); err != nil {
		return nil, err
	}
	model, err := doc.BuildV3Model()
	if model == nil {
		return nil, fmt.Errorf("openapi: %w", err)
	}
	// External references are checked before any build error: libopenapi
	// reports them as refs it could not find, which hides the reason.
	if idx := model.Index; idx != nil {
		for _, ref := range idx.GetRawReferencesSequenced() {
			full := ref.RawRef
			if full == "" {
				full = ref.FullDefinition
			}
			if full != "" && !strings.HasPrefix(full, "#") {
				line := 0
				if ref.Node != nil {
					line = ref.Node.Line
				}
				return nil, fmt.Errorf("openapi: $ref %q (line %d) points outside the document; only local references (#/...) are supported: bundle the document into one file", full, line)
			}
		}
		if errs := idx.GetReferenceIndexErrors(); len(errs) > 0 {
			for i, e := range errs {
				var ie *index.IndexingError
				if errors.As(e, &ie) && ie.Node != nil {
					errs[i] = fmt.Errorf("line %d: %w", ie.Node.Line, e)
				}
			}
			return nil, fmt.Errorf("openapi: %w", joinFirst(errs, 5))
		}
	}
	if err != nil {
		return nil, fmt.Errorf("openapi: %w", err)
	}
	m := &model.Model
	if m.Paths == nil || m.Paths.PathItems == nil || m.Paths.PathItems.Len() == 0 {
		return nil, errors.New("openapi: the document has no paths, so no operations to offer as tools")
	}
	d := &Document{version: version, oas30: oas30, model: m, schemes: make(map[string]string), conv: newConverter(oas30, info.RootNode)}
	if m.Components != nil && m.Components.SecuritySchemes != nil {
		for name, s := range m.Components.SecuritySchemes.FromOldest() {
			if s != nil {
				d.schemes[name] = s.Type
			}
		}
	}
	for path, item := range m.Paths.PathItems.FromOldest() {
		if item == nil {
			continue
		}
		for method, op := range item.GetOperations().FromOldest() {
			if op == nil {
				continue
			}
			d.ops = append(d.ops, operation{method: strings.ToUpper(method), path: path, item: item, op: op})
		}
	}
	return d, nil
}

// checkRefLoops returns an error for a $ref whose target is a $ref, and so
// on, back to the first: such a chain names no value.
func checkRefLoops(root *yaml.Node) error {
	c := newConverter(false, root)
	next := func(ref string) (string, bool) {
		target := c.resolve(ref)
		if r := mapGet(target, "$ref"); r != nil && r.Kind == yaml.ScalarNode {
			return r.Value, true
		}
		return "", false
	}
	safe := make(map[string]bool) // refs whose chain ends in a value
	var walk func(n *yaml.Node, depth int) error
	walk = func(n *yaml.Node, depth int) error {
		if n == nil || depth > 10000 {
			return nil
		}
		if n.Kind == yaml.MappingNode {
			if r := mapGet(n, "$ref"); r != nil && r.Kind == yaml.ScalarNode && strings.HasPrefix(r.Value, "#") && !safe[r.Value] {
				seen := map[string]bool{}
				chain := []string{}
				for ref, ok := r.Value, true; ok && !safe[ref]; ref, ok = next(ref) {
					if seen[ref] {
						return fmt.Errorf("openapi: $ref %q (line %d) leads back to itself through $refs alone (%s), so it names no value", r.Value, r.Line, strings.Join(append(chain, ref), " → "))
					}
					seen[ref] = true
					chain = append(chain, ref)
				}
				for _, ref := range chain {
					safe[ref] = true
				}
			}
		}
		for _, child := range n.Content {
			if err := walk(child, depth+1); err != nil {
				return err
			}
		}
		return nil
	}
	return walk(root, 0)
}

// Version returns the document's "openapi" version, such as "3.1.0".
func (d *Document) Version() string { return d.version }

// joinFirst joins the first n errors and says how many more there were.
func joinFirst(errs []error, n int) error {
	if len(errs) <= n {
		return errors.Join(errs...)
	}
	return fmt.Errorf("%w\n(and %d more)", errors.Join(errs[:n]...), len(errs)-n)
}
