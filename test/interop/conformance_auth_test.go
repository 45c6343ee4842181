package interop

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The conformance CLI's authorization mode (0.2.0-alpha) runs these two
// scenarios when no --scenario is given. The code grant needs the metadata
// scenario's result, so running it alone always fails (INTEROP.md §3).
var authScenarios = []string{"authorization-server-metadata-endpoint", "authorization-code-grant"}

// conformanceCallbackPort is the CLI's default callback port: the client is
// registered with exactly http://127.0.0.1:3000/callback.
const conformanceCallbackPort = 3000

// conformanceCheck is one entry of a scenario's checks.json.
type conformanceCheck struct {
	ID           string          `json:"id"`
	Name         string          `json:"name"`
	Description  string          `json:"description"`
	Status       string          `json:"status"` // SUCCESS, FAILURE, WARNING, SKIPPED, INFO
	ErrorMessage string          `json:"errorMessage"`
	Details      json.RawMessage `json:"details"`
}

// TestConformanceAuthorization runs `conformance authorization` (the alpha
// CLI, on Node 22) against `gatehouse dev`: the AS metadata checks and one
// real authorization code grant, with this test playing the browser
// through the login and consent pages. Both scenarios must pass; a SKIPPED
// check (the grant without a client id, say) counts as a failure.
func TestConformanceAuthorization(t *testing.T) {
	if testing.Short() {
		t.Skip("interop test: runs the gatehouse binary and the Node conformance CLI")
	}
	node := nodeBin(t)
	cli := npmPackageBin(t, filepath.Join(interopDir(t), "conformance-alpha"), "@modelcontextprotocol/conformance", "conformance")

	const clientID = "conformance-client"
	registered := fmt.Sprintf("http://127.0.0.1:%d/callback", conformanceCallbackPort)
	gh := newGatehouse(t)
	// Admin commands act only on data `gatehouse dev` made: dev first.
	dev := gh.startDev(t, "conformance", "pw-"+rand.Text())
	gh.createPublicClient(t, clientID, "MCP conformance", registered)
	t.Logf("gatehouse dev: issuer %s", dev.Issuer)

	// The registered redirect URI has port 3000; if something else holds
	// it, run the callback on another port: loopback redirect URIs match
	// any port (RFC 8252 §7.3), which the server must honour anyway.
	port := conformanceCallbackPort
	if !portFree(port) {
		port = freePort(t)
		t.Logf("port %d is busy: the CLI's callback listens on %d (registered %s; loopback ports may vary)", conformanceCallbackPort, port, registered)
	}
	callback := fmt.Sprintf("http://127.0.0.1:%d/callback", port)

	outDir := t.TempDir()
	cmd := exec.Command(node, cli, "authorization",
		"--url", dev.Issuer,
		"--client-id", clientID,
		"--port", strconv.Itoa(port),
		"--output-dir", outDir)
	cmd.Dir = t.TempDir()
	cmd.Env = append(os.Environ(), "NO_COLOR=1", "FORCE_COLOR=0")
	p := startProc(t, "conformance authorization", cmd)

	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	if _, err := p.waitLine(ctx, regexp.MustCompile(`Callback server started`)); err != nil {
		t.Fatal(err)
	}
	m, err := p.waitLine(ctx, regexp.MustCompile(`^\s*(https?://\S+\?\S*response_type=code\S*)\s*$`))
	if err != nil {
		t.Fatal(err)
	}
	authorizeURL := m[1]
	t.Logf("authorize URL from the CLI: %s", authorizeURL)
	if !strings.HasPrefix(authorizeURL, dev.Issuer+"/") {
		t.Fatalf("the CLI's authorize URL %s is not on the issuer %s", authorizeURL, dev.Issuer)
	}

	got, steps, err := playBrowser(ctx, authorizeURL, dev.Username, dev.Password, callback)
	for _, s := range steps {
		t.Logf("browser: %s %s -> %d %s", s.Method, s.URL, s.Status, s.Location)
	}
	if err != nil {
		t.Fatalf("browser: %v", err)
	}
	// Deliver the authorization response to the CLI's callback server, as
	// the browser would.
	resp, err := noProxyClient().Get(got.String())
	if err != nil {
		t.Fatalf("GET %s (the CLI's callback): %v", got, err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("the CLI's callback answered %d: %s", resp.StatusCode, body)
	}

	exitErr := p.wait(ctx)
	out := p.output()
	summary := "(no summary line)"
	if m := regexp.MustCompile(`(?m)^Total: (\d+) passed, (\d+) failed\s*$`).FindString(out); m != "" {
		summary = strings.TrimSpace(m)
	}
	t.Logf("conformance CLI: %s; exit: %v", summary, exitErr)

	results := readConformanceChecks(t, outDir)
	var passed, failed, skipped []string
	for _, sc := range authScenarios {
		checks, ok := results[sc]
		if !ok {
			t.Errorf("scenario %s: no checks.json in %s", sc, outDir)
			failed = append(failed, sc)
			continue
		}
		status := "passed"
		succeeded := 0
		for _, c := range checks {
			line := fmt.Sprintf("%-8s %s / %s (%s)", c.Status, sc, c.ID, c.Name)
			if c.ErrorMessage != "" {
				line += ": " + c.ErrorMessage
			}
			t.Log(line)
			switch c.Status {
			case "SUCCESS":
				succeeded++
			case "FAILURE":
				status = "failed"
				if len(c.Details) > 0 {
					t.Logf("         details: %s", c.Details)
				}
			case "SKIPPED":
				if status == "passed" {
					status = "skipped"
				}
			case "WARNING":
				// Does not fail the run (the CLI exits 0), but is reported.
				t.Logf("         warning, not a failure: %s", c.Description)
			}
		}
		if status == "passed" && succeeded == 0 {
			status = "failed"
			t.Errorf("scenario %s: no successful check", sc)
		}
		switch status {
		case "passed":
			passed = append(passed, sc)
		case "failed":
			failed = append(failed, sc)
		default:
			skipped = append(skipped, sc)
		}
	}
	for sc := range results {
		if !slices.Contains(authScenarios, sc) {
			t.Logf("extra scenario %s (not asserted): %d checks", sc, len(results[sc]))
		}
	}
	t.Logf("scenarios: %d passed, %d failed, %d skipped (CLI %s)", len(passed), len(failed), len(skipped), summary)
	if len(passed) != len(authScenarios) || len(failed) != 0 || len(skipped) != 0 {
		t.Errorf("want %d scenarios passed, 0 failed, 0 skipped; got passed %v, failed %v, skipped %v (a SKIPPED grant is a failure)",
			len(authScenarios), passed, failed, skipped)
	}
	if exitErr != nil {
		t.Errorf("conformance CLI exited with %v (%s)", exitErr, summary)
	}
}

// scenarioDir matches the CLI's result directories:
// authorization-server-<scenario>-<ISO time with : and . replaced by ->.
var scenarioDir = regexp.MustCompile(`^authorization-server-(.+)-\d{4}-\d{2}-\d{2}T[\d-]+Z$`)

// readConformanceChecks reads every checks.json below dir, by scenario.
func readConformanceChecks(t *testing.T, dir string) map[string][]conformanceCheck {
	t.Helper()
	res := map[string][]conformanceCheck{}
	var files []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && d.Name() == "checks.json" {
			files = append(files, path)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("read results in %s: %v", dir, err)
	}
	sort.Strings(files)
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var checks []conformanceCheck
		if err := json.Unmarshal(b, &checks); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		base := filepath.Base(filepath.Dir(f))
		name := base
		if m := scenarioDir.FindStringSubmatch(base); m != nil {
			name = m[1]
		}
		res[name] = append(res[name], checks...)
	}
	return res
}
