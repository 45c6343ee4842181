package gateway

import (
	"bytes"
	"encoding/json"
	"flag"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
)

var updateGolden = flag.Bool("update", false, "rewrite testdata/*.golden from the current output")

// TestOpenAPIToolsListGolden: what an MCP client sees of an OpenAPI route,
// the tools/list result for petsDoc (names, titles, annotations, input and
// output schemas), compared with testdata/openapi-tools-list.golden
// (-update rewrites it).
func TestOpenAPIToolsListGolden(t *testing.T) {
	api := httptest.NewServer(&apiRecorder{})
	defer api.Close()
	te := httptest.NewServer(&tokenEndpoint{})
	defer te.Close()
	tg := newTestGateway(t, []Route{openAPIRoute(t, api, te)}, nil)
	c := newRawClient(t, tg.base+"/pets/mcp", "alice-read")
	c.initialize()
	_, res := c.call("tools/list", map[string]any{})
	var out bytes.Buffer
	if err := json.Indent(&out, res.Result, "", "  "); err != nil {
		t.Fatalf("tools/list result %s: %v", res.Result, err)
	}
	out.WriteByte('\n')
	path := filepath.Join("testdata", "openapi-tools-list.golden")
	if *updateGolden {
		if err := os.WriteFile(path, out.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if !bytes.Equal(out.Bytes(), want) {
		t.Errorf("tools/list differs from %s (-update rewrites it):\n%s", path, out.String())
	}
}
