package as

import (
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden with the current output")

// golden compares got with testdata/name.golden, rewriting it under -update.
// The issuer (random port) is replaced with ISSUER first.
func golden(t *testing.T, ts *testServer, name, got string) {
	t.Helper()
	got = strings.ReplaceAll(got, ts.URL, "ISSUER")
	path := filepath.Join("testdata", name+".golden")
	if *update {
		must(t, os.MkdirAll("testdata", 0o755))
		must(t, os.WriteFile(path, []byte(got), 0o644))
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if diff := cmp.Diff(string(want), got); diff != "" {
		t.Errorf("%s mismatch (-want +got):\n%s", path, diff)
	}
}

// maskTokens replaces token values in a JSON body with their kind, so a
// golden file pins the response's shape and fixed fields.
func maskTokens(body string) string {
	for _, k := range []string{"access_token", "refresh_token", "jti", "sub", "gid"} {
		body = regexp.MustCompile(`"`+k+`":"[^"]*"`).ReplaceAllString(body, `"`+k+`":"<`+k+`>"`)
	}
	return regexp.MustCompile(`"(exp|iat|nbf)":\d+`).ReplaceAllString(body, `"$1":<time>`)
}
