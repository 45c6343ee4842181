package interop

import (
	"context"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// baselineVerdict returns the CLI's output from its summary on: the
// baseline check's lists of expected, stale and unexpected scenarios.
func baselineVerdict(out string) string {
	if i := strings.Index(out, "=== SUMMARY ==="); i >= 0 {
		return out[i:]
	}
	return out
}

// conformanceRun is the result of one `conformance server` run.
type conformanceRun struct {
	checks    map[string][]conformanceCheck // by scenario
	announced int                           // scenarios the CLI said it would run
	exitErr   error
	output    string
}

// runConformanceServer runs `conformance server --url mcpURL extra...`
// (with token injected when not empty, and --expected-failures baseline
// when not empty) until it exits.
func runConformanceServer(ctx context.Context, t *testing.T, cli, mcpURL, token, baseline string, extra ...string) *conformanceRun {
	t.Helper()
	out := t.TempDir()
	ctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	args := append([]string{cli, "server", "--url", mcpURL, "-o", out}, extra...)
	if baseline != "" {
		args = append(args, "--expected-failures", baseline)
	}
	cmd := exec.Command(nodeBin(t), args...)
	cmd.Dir = interopDir(t)
	cmd.Env = append(os.Environ(), "NO_PROXY=127.0.0.1,localhost", "no_proxy=127.0.0.1,localhost", "NO_COLOR=1", "FORCE_COLOR=0")
	origin := ""
	if token != "" {
		u, _ := url.Parse(mcpURL)
		origin = u.Scheme + "://" + u.Host
		cmd.Env = append(cmd.Env,
			"NODE_OPTIONS=--import "+filepath.Join(interopDir(t), "preload-auth.mjs"),
			"GATEHOUSE_PRELOAD_TOKEN="+token, "GATEHOUSE_PRELOAD_ORIGIN="+origin)
	}
	p := startProc(t, "conformance server "+mcpURL, cmd)
	exitErr := p.wait(ctx)
	if ctx.Err() != nil {
		t.Fatalf("conformance server %s did not finish in time: %v\n%s", mcpURL, exitErr, p.output())
	}
	run := &conformanceRun{checks: readServerChecks(t, out), exitErr: exitErr, output: p.output()}
	if !regexp.MustCompile(`(?m)^Total: \d+ passed, \d+ failed`).MatchString(run.output) {
		t.Fatalf("conformance server %s printed no summary `Total: N passed, N failed` (exit %v):\n%s", mcpURL, exitErr, run.output)
	}
	if token != "" && !strings.Contains(run.output, "preload-auth: bearer token for "+origin) {
		t.Fatalf("preload-auth.mjs was not loaded into the CLI")
	}
	m := regexp.MustCompile(`(?m)^Running (?:\S+ suite|requirements \S+) \((\d+) scenarios\)`).FindStringSubmatch(run.output)
	if m == nil {
		t.Fatalf("the CLI did not announce its scenarios (`Running active suite (N scenarios)` or `Running requirements REV (N scenarios)`):\n%s", run.output)
	}
	run.announced, _ = strconv.Atoi(m[1])
	if len(run.checks) == 0 {
		t.Fatalf("conformance server wrote no checks:\n%s", run.output)
	}
	return run
}
