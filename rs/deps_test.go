package rs

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestDependencies enforces the package's promise: the standard library
// and go-jose only, so it can be vendored into any MCP server. The
// packages of this module it imports, internal/mcpauthz, internal/oauth,
// internal/boundmap and internal/dpop (shared with the gateway and the
// authorization server),
// are held to the same rule: their own imports appear in the list.
func TestDependencies(t *testing.T) {
	// A go list that fails is a failure, not a skip: the rule would go
	// unchecked, and the go command is there whenever the test runs.
	out, err := exec.Command("go", "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", ".").Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("go list -deps: %v\n%s", err, stderr)
	}
	if len(strings.Fields(string(out))) == 0 {
		t.Fatal("go list -deps listed nothing, not even this package")
	}
	for _, p := range strings.Fields(string(out)) {
		switch {
		case p == "github.com/gatehouse-mcp/gatehouse/rs":
		case p == "github.com/gatehouse-mcp/gatehouse/internal/mcpauthz", p == "github.com/gatehouse-mcp/gatehouse/internal/oauth",
			p == "github.com/gatehouse-mcp/gatehouse/internal/boundmap", p == "github.com/gatehouse-mcp/gatehouse/internal/dpop":
		case strings.HasPrefix(p, "github.com/go-jose/go-jose/v4"):
		default:
			t.Errorf("rs depends on %s; it may import only the standard library, go-jose and internal/{mcpauthz,oauth,boundmap,dpop}", p)
		}
	}
}

// TestNoDependencyTypesInAPI checks that no exported declaration mentions
// a go-jose type, so the dependency can change without breaking users.
func TestNoDependencyTypesInAPI(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatal(err)
		}
		check := func(n ast.Node, what string) {
			ast.Inspect(n, func(n ast.Node) bool {
				if sel, ok := n.(*ast.SelectorExpr); ok {
					if x, ok := sel.X.(*ast.Ident); ok && x.Name == "jose" {
						t.Errorf("%s: exported %s uses jose.%s", fset.Position(sel.Pos()), what, sel.Sel.Name)
					}
				}
				return true
			})
		}
		for _, d := range f.Decls {
			switch d := d.(type) {
			case *ast.FuncDecl:
				if d.Name.IsExported() && (d.Recv == nil || exportedRecv(d.Recv)) {
					check(d.Type, d.Name.Name)
				}
			case *ast.GenDecl:
				for _, s := range d.Specs {
					ts, ok := s.(*ast.TypeSpec)
					if !ok || !ts.Name.IsExported() {
						continue
					}
					if st, ok := ts.Type.(*ast.StructType); ok {
						for _, fld := range st.Fields.List {
							for _, n := range fld.Names {
								if n.IsExported() {
									check(fld.Type, ts.Name.Name+"."+n.Name)
								}
							}
						}
						continue
					}
					check(ts.Type, ts.Name.Name)
				}
			}
		}
	}
}

func exportedRecv(recv *ast.FieldList) bool {
	if len(recv.List) == 0 {
		return false
	}
	t := recv.List[0].Type
	if s, ok := t.(*ast.StarExpr); ok {
		t = s.X
	}
	id, ok := t.(*ast.Ident)
	return ok && id.IsExported()
}
