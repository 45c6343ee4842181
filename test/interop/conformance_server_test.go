package interop

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"
)

// The conformance CLI's server mode (0.1.16, pinned in
// test/interop/package.json) checks an MCP server's protocol behaviour. It
// sends no Authorization header (INTEROP.md §3), so the test obtains a real
// access token through the real flow and preload-auth.mjs adds it to the
// CLI's requests to the demo MCP server's origin.

// conformanceServerBaseline is the CLI's expected-failures file: the
// scenarios the demo notes server cannot serve, each with the reason in a
// comment on its line.
const conformanceServerBaseline = "conformance-server-baseline.yaml"

// serverScenarioDir matches the CLI's server-mode result directories:
// server-<scenario>-<ISO time with : and . replaced by ->.
var serverScenarioDir = regexp.MustCompile(`^server-(.+)-\d{4}-\d{2}-\d{2}T[\d-]+Z$`)

// TestConformanceServer runs `conformance server` (Node 22) against the
// demo MCP server of `gatehouse dev`, behind rs, with a token obtained by
// authorization code + PKCE for the pre-registered client gatehouse-demo
// (login and consent played by playBrowser) and injected by
// preload-auth.mjs.
//
// Every scenario not in conformance-server-baseline.yaml must pass (no
// FAILURE, no WARNING, at least one SUCCESS), and every baselined scenario
// must still fail, so the baseline cannot rot silently; the CLI enforces
// the same with --expected-failures (where a WARNING counts as a failure)
// and its exit status is asserted too. No check may fail for an
// authorization reason: the baseline covers missing fixtures, never a
// refused token.
func TestConformanceServer(t *testing.T) {
	if testing.Short() {
		t.Skip("interop test: runs the gatehouse binary and the Node conformance CLI")
	}
	node := nodeBin(t)
	dir := interopDir(t)
	cli := npmPackageBin(t, dir, "@modelcontextprotocol/conformance", "conformance")
	// The preload imports undici, a dependency of the conformance package.
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "undici", "package.json")); err != nil {
		skipOrFatal(t, "npm package undici (a dependency of @modelcontextprotocol/conformance) is not installed in %s: run `npm ci --prefix %s --no-audit --no-fund` (or scripts/test.sh)", dir, dir)
	}
	preload := filepath.Join(dir, "preload-auth.mjs")
	if _, err := os.Stat(preload); err != nil {
		t.Fatal(err)
	}
	baselinePath := filepath.Join(dir, conformanceServerBaseline)
	baseline := readServerBaseline(t, baselinePath)

	// The CLI cannot refresh: the token must outlive the run whatever the
	// default TTL becomes. startMCPDev (mcp_gosdk_test.go) passes the flag.
	d := startMCPDev(t, "conformance", "pw-"+rand.Text(), "--access-token-ttl", "1h")
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	token := demoToken(ctx, t, d.devServer, "notes:read notes:write")

	mcpURL, err := url.Parse(d.MCPURL)
	if err != nil {
		t.Fatal(err)
	}
	origin := mcpURL.Scheme + "://" + mcpURL.Host
	outDir := t.TempDir()
	cmd := exec.Command(node, cli, "server",
		"--url", d.MCPURL,
		"--expected-failures", baselinePath,
		"--output-dir", outDir)
	cmd.Dir = t.TempDir()
	nodeOptions := "--import=" + (&url.URL{Scheme: "file", Path: preload}).String()
	if prev := os.Getenv("NODE_OPTIONS"); prev != "" {
		nodeOptions = prev + " " + nodeOptions
	}
	cmd.Env = append(os.Environ(),
		"NODE_OPTIONS="+nodeOptions,
		"GATEHOUSE_PRELOAD_TOKEN="+token,
		"GATEHOUSE_PRELOAD_ORIGIN="+origin,
		"NO_COLOR=1", "FORCE_COLOR=0")
	p := startProc(t, "conformance server", cmd)
	exitErr := p.wait(ctx)
	out := p.output()
	if ctx.Err() != nil {
		t.Fatalf("conformance server did not finish in time: %v", exitErr)
	}
	if !strings.Contains(out, "preload-auth: bearer token for "+origin) {
		t.Fatalf("preload-auth.mjs was not loaded into the CLI (NODE_OPTIONS=%s)", nodeOptions)
	}
	if strings.Contains(out, token) {
		t.Errorf("the CLI's output contains the access token")
	}
	// The summary counts checks, not scenarios.
	summary := regexp.MustCompile(`(?m)^Total: \d+ passed, \d+ failed\s*$`).FindString(out)
	if summary == "" {
		t.Errorf("the CLI printed no summary line `Total: N passed, N failed`")
	}
	summary = strings.TrimSpace(summary)
	t.Logf("conformance CLI: %s (checks); exit: %v", summary, exitErr)
	m := regexp.MustCompile(`(?m)^Running \S+ suite \((\d+) scenarios\)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("the CLI did not announce its suite (`Running active suite (N scenarios)`)")
	}
	want, _ := strconv.Atoi(m[1])
	results := readServerChecks(t, outDir)
	if len(results) == 0 || len(results) != want {
		t.Fatalf("checks.json for %d scenarios in %s, the CLI announced %d", len(results), outDir, want)
	}
	var passed, failed, unexpected, stale []string
	for _, sc := range slices.Sorted(maps.Keys(results)) {
		checks := results[sc]
		_, expected := baseline[sc]
		ok := scenarioPassed(checks)
		for _, c := range checks {
			if c.Status != "SUCCESS" {
				line := fmt.Sprintf("%s  %-8s %s (%s)", sc, c.Status, c.ID, c.Name)
				if c.ErrorMessage != "" {
					line += ": " + c.ErrorMessage
				}
				if !expected && len(c.Details) > 0 {
					line += "\n    details: " + string(c.Details)
				}
				t.Log(line)
			}
			switch {
			case authFailure(c):
				// The baseline is for fixtures the demo lacks. A check
				// that saw the token refused means the injection or rs is
				// broken, whatever the baseline says; and a check passed
				// on a 401 (dns-rebinding-protection takes any 4xx)
				// proves nothing.
				t.Errorf("scenario %s: check %s (%s) saw the token refused: %s %s", sc, c.ID, c.Status, c.ErrorMessage, c.Details)
			case expected && (c.Status == "FAILURE" || c.Status == "WARNING") && !missingFixture.MatchString(c.ErrorMessage):
				// A baselined scenario must keep failing for its reason,
				// a fixture the demo lacks, not for some new one.
				t.Errorf("scenario %s (baselined: %s): check %s is a %s for another reason than a missing fixture: %s %s",
					sc, baseline[sc], c.ID, c.Status, c.ErrorMessage, c.Details)
			}
		}
		switch {
		case ok && expected:
			stale = append(stale, sc)
		case ok:
			passed = append(passed, sc)
		case expected:
			failed = append(failed, sc)
		default:
			failed = append(failed, sc)
			unexpected = append(unexpected, sc)
		}
	}
	t.Logf("passed (%d): %s", len(passed), strings.Join(passed, " "))
	t.Logf("failed (%d, %d in the baseline): %s", len(failed), len(failed)-len(unexpected), strings.Join(failed, " "))
	for _, sc := range unexpected {
		t.Errorf("scenario %s failed and is not in %s", sc, conformanceServerBaseline)
	}
	for _, sc := range stale {
		t.Errorf("scenario %s passes but is in %s (%s): remove it", sc, conformanceServerBaseline, baseline[sc])
	}
	for _, sc := range slices.Sorted(maps.Keys(baseline)) {
		if _, ran := results[sc]; !ran {
			t.Errorf("%s lists %s, which the CLI did not run: remove it", conformanceServerBaseline, sc)
		}
	}
	if len(passed) == 0 {
		t.Errorf("no scenario passed")
	}
	if exitErr != nil && len(unexpected) == 0 && len(stale) == 0 {
		t.Errorf("conformance CLI exited with %v (%s) though every result matches the baseline", exitErr, summary)
	}
	if exitErr == nil && (len(unexpected) > 0 || len(stale) > 0) {
		t.Errorf("conformance CLI exited 0 though results differ from the baseline")
	}
}

// missingFixture matches the MCP errors of a call to a tool, prompt,
// resource or method the demo does not have: the only acceptable reason for
// a baselined failure.
var missingFixture = regexp.MustCompile(`MCP error -3260[12]: (unknown tool "|unknown prompt "|Resource not found|method not found: ")`)

// scenarioPassed is the CLI's verdict with --expected-failures (no FAILURE
// and no WARNING), made strict: at least one check succeeded.
func scenarioPassed(checks []conformanceCheck) bool {
	succeeded := false
	for _, c := range checks {
		switch c.Status {
		case "FAILURE", "WARNING":
			return false
		case "SUCCESS":
			succeeded = true
		}
	}
	return succeeded
}

// authFailure reports whether a check saw the server refuse the token: a
// failure that mentions it, or any check whose request got a 401.
func authFailure(c conformanceCheck) bool {
	var d struct {
		StatusCode int `json:"statusCode"`
	}
	if json.Unmarshal(c.Details, &d) == nil && d.StatusCode == http.StatusUnauthorized {
		return true
	}
	if c.Status != "FAILURE" && c.Status != "WARNING" {
		return false
	}
	s := c.ErrorMessage + " " + string(c.Details)
	for _, marker := range []string{"401", "403", "Unauthorized", "Forbidden", "invalid_token", "insufficient_scope", "WWW-Authenticate"} {
		if strings.Contains(s, marker) {
			return true
		}
	}
	return false
}

// readServerBaseline reads the expected-failures file: YAML with a list
// `server`, one scenario per line, each with its reason in a trailing
// comment (`  - tools-call-image  # the demo has no test_image_content`).
// An entry without a reason is an error.
func readServerBaseline(t *testing.T, path string) map[string]string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Server []string `json:"server"`
	}
	if err := yaml.UnmarshalStrict(b, &doc); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	entry := regexp.MustCompile(`^\s*-\s*([A-Za-z0-9_./-]+)\s*(?:#\s*(.*?))?\s*$`)
	reasons := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if m := entry.FindStringSubmatch(sc.Text()); m != nil {
			reasons[m[1]] = m[2]
		}
	}
	out := map[string]string{}
	for _, name := range doc.Server {
		reason, ok := reasons[name]
		switch {
		case !ok:
			t.Fatalf("%s: write %s as `  - %s  # reason` on a line of its own", path, name, name)
		case reason == "":
			t.Fatalf("%s: %s has no reason: add `# why the demo cannot pass it`", path, name)
		case out[name] != "":
			t.Fatalf("%s: %s is listed twice", path, name)
		}
		out[name] = reason
	}
	if len(out) != len(reasons) {
		t.Fatalf("%s: %d list lines but %d entries under server", path, len(reasons), len(out))
	}
	return out
}

// readServerChecks reads every checks.json below dir, by scenario.
func readServerChecks(t *testing.T, dir string) map[string][]conformanceCheck {
	t.Helper()
	res := map[string][]conformanceCheck{}
	for name, checks := range readConformanceChecks(t, dir) {
		if m := serverScenarioDir.FindStringSubmatch(name); m != nil {
			name = m[1]
		}
		res[name] = append(res[name], checks...)
	}
	return res
}

// demoToken obtains an access token for the demo MCP server through the
// real flow: authorization code with PKCE (S256) for the pre-registered
// public client gatehouse-demo, resource = the MCP URL, login and consent
// played by playBrowser, then the code exchanged at the token endpoint.
func demoToken(ctx context.Context, t *testing.T, d *devServer, scope string) string {
	t.Helper()
	c := noProxyClient()
	var meta struct {
		Issuer                string `json:"issuer"`
		AuthorizationEndpoint string `json:"authorization_endpoint"`
		TokenEndpoint         string `json:"token_endpoint"`
	}
	getJSON(ctx, t, c, d.Issuer+"/.well-known/oauth-authorization-server", &meta)
	if meta.Issuer != d.Issuer || meta.AuthorizationEndpoint == "" || meta.TokenEndpoint == "" {
		t.Fatalf("authorization server metadata %+v", meta)
	}

	// The demo client's loopback redirect URI matches any port (RFC 8252
	// §7.3); nothing listens on it.
	redirectURI := fmt.Sprintf("http://127.0.0.1:%d/callback", freePort(t))
	verifier := rand.Text() + rand.Text()
	sum := sha256.Sum256([]byte(verifier))
	state := rand.Text()
	q := url.Values{
		"response_type":         {"code"},
		"client_id":             {"gatehouse-demo"},
		"redirect_uri":          {redirectURI},
		"scope":                 {scope},
		"state":                 {state},
		"code_challenge":        {base64.RawURLEncoding.EncodeToString(sum[:])},
		"code_challenge_method": {"S256"},
		"resource":              {d.MCPURL},
	}
	loc, steps, err := playBrowser(ctx, meta.AuthorizationEndpoint+"?"+q.Encode(), d.Username, d.Password, redirectURI)
	if err != nil {
		t.Fatalf("browser: %v", err)
	}
	for _, s := range steps {
		t.Logf("browser: %s %s -> %d %s", s.Method, s.URL, s.Status, s.Location)
	}
	got := loc.Query()
	if e := got.Get("error"); e != "" {
		t.Fatalf("authorization error %s: %s", e, got.Get("error_description"))
	}
	if got.Get("state") != state || got.Get("iss") != d.Issuer || got.Get("code") == "" {
		t.Fatalf("authorization response %s: want state %q, iss %q and a code", loc, state, d.Issuer)
	}

	form := url.Values{
		"grant_type":    {"authorization_code"},
		"code":          {got.Get("code")},
		"redirect_uri":  {redirectURI},
		"client_id":     {"gatehouse-demo"},
		"code_verifier": {verifier},
		"resource":      {d.MCPURL},
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, meta.TokenEndpoint, strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	var tok struct {
		AccessToken string `json:"access_token"`
		TokenType   string `json:"token_type"`
		Scope       string `json:"scope"`
		ExpiresIn   int    `json:"expires_in"`
	}
	if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &tok) != nil || tok.AccessToken == "" || !strings.EqualFold(tok.TokenType, "Bearer") {
		t.Fatalf("POST %s = %d %s", meta.TokenEndpoint, resp.StatusCode, body)
	}
	granted := strings.Fields(tok.Scope)
	for _, s := range strings.Fields(scope) {
		if tok.Scope != "" && !slices.Contains(granted, s) {
			t.Fatalf("token response scope %q lacks %s", tok.Scope, s)
		}
	}
	t.Logf("access token: scope %q, expires in %ds", tok.Scope, tok.ExpiresIn)
	return tok.AccessToken
}

// getJSON GETs u and decodes its JSON body into v.
func getJSON(ctx context.Context, t *testing.T, c *http.Client, u string, v any) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s = %d %s", u, resp.StatusCode, body)
	}
	if err := json.Unmarshal(body, v); err != nil {
		t.Fatalf("GET %s: %v: %s", u, err, body)
	}
}
