package openapi

import (
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// githubDocEnv overrides where the GitHub REST API description is read
// from.
const githubDocEnv = "GATEHOUSE_TEST_GITHUB_OPENAPI"

// githubDoc returns GitHub's REST API description (npm @octokit/openapi,
// pinned in test/interop/package.json). It skips the test when the file is
// absent, and fails it under CI=true, where the peers are installed.
func githubDoc(tb testing.TB) []byte {
	tb.Helper()
	path := os.Getenv(githubDocEnv)
	if path == "" {
		root, err := moduleRoot()
		if err != nil {
			tb.Fatal(err)
		}
		path = filepath.Join(root, "test", "interop", "node_modules", "@octokit", "openapi", "generated", "api.github.com.json")
	}
	data, err := os.ReadFile(path)
	if err != nil {
		msg := "GitHub's OpenAPI document is not installed (npm ci --prefix test/interop, or set " + githubDocEnv + "): " + err.Error()
		if os.Getenv("CI") == "true" {
			tb.Fatal("prerequisite missing under CI=true: " + msg)
		}
		tb.Skip(msg)
	}
	return data
}

// moduleRoot returns the directory of the main module's go.mod.
func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", err
	}
	return filepath.Dir(strings.TrimSpace(string(out))), nil
}

// TestGitHubDocumentConverts converts every operation of GitHub's REST API
// description: no conversion error, every skipped operation named with
// its reason, every tool's input schema usable by the validator.
func TestGitHubDocumentConverts(t *testing.T) {
	data := githubDoc(t)
	doc, err := Load(data)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	tools, skipped, err := doc.Tools(Options{Scopes: ScopeRules{Read: []string{"read"}, Write: []string{"write"}}})
	if err != nil {
		t.Fatalf("Tools: %v", err)
	}
	reasons := make(map[string]int)
	for _, s := range skipped {
		t.Logf("skipped %s %s (%s): %s", s.Method, s.Path, s.OperationID, s.Reason)
		if s.Reason == "" {
			t.Errorf("skipped %s %s without a reason", s.Method, s.Path)
		}
		reasons[s.Reason]++
	}
	var rs []string
	for r, n := range reasons {
		rs = append(rs, r)
		_ = n
	}
	sort.Strings(rs)
	for _, r := range rs {
		t.Logf("%4d × %s", reasons[r], r)
	}
	t.Logf("%d operations, %d tools, %d skipped", len(doc.ops), len(tools), len(skipped))
	if len(tools)+len(skipped) != len(doc.ops) {
		t.Errorf("%d tools + %d skipped, want %d operations", len(tools), len(skipped), len(doc.ops))
	}
	for _, tool := range tools {
		if _, err := tool.compile(); err != nil {
			t.Errorf("tool %s: %v", tool.Name, err)
		}
	}
}
