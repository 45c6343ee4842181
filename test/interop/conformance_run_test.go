package interop

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/url"
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

	"golang.org/x/oauth2"
)

// gatewayConformanceBaseline is the CLI's expected-failures file for the
// runs through the gateway: the scenarios whose fixture server-everything
// lacks, each with a reason `no tool|prompt|resource NAME: ...`.
const gatewayConformanceBaseline = "gateway-conformance-baseline.yaml"

// hollowPasses are the scenarios the CLI counts as passed although
// server-everything lacks their fixture: the error result of a call to an
// unknown tool happens to satisfy their checks. They cannot be baselined
// (the CLI would call the entry stale); the test recognises them by that
// error result and requires exactly these.
var hollowPasses = map[string]string{
	"tools-call-simple-text": "no tool test_simple_text: the CLI accepts any text content, and the unknown-tool error is text",
	"tools-call-error":       "no tool test_error_handling: the CLI wants isError, which the unknown-tool error has",
}

// baselineReason is the form of a reason in gatewayConformanceBaseline.
var baselineReason = regexp.MustCompile(`^no (tool|prompt|resource) (\S+): \S`)

// fixtureOutputMissing matches the CLI's failures of a tool scenario whose
// tool returned an error instead of the fixture's output.
var fixtureOutputMissing = regexp.MustCompile(`^(No (image|audio|resource) content found|Expected multiple content items|No (log|progress) notifications received|Server did not request (sampling|elicitation) from client)\b`)

// unknownToolResult matches the text of the error result server-everything
// returns for a call to a tool it does not have.
var unknownToolResult = regexp.MustCompile(`Tool (\S+) not found`)

// missingFixtureReason is a baselined scenario's stated reason: the kind and
// name of the fixture server-everything lacks.
type missingFixtureReason struct {
	kind, name string
}

// TestGatewayConformance runs the MCP conformance CLI in server mode
// against server-everything directly and through both gateway routes
// (stdio and HTTP upstream; the token, got through the real flow, is
// injected by preload-auth.mjs as in conformance_server_test.go).
//
// It checks that the gateway loses no check that passes without it (it is
// transparent to the protocol), and, with gateway-conformance-baseline.yaml
// passed as --expected-failures, that every scenario server-everything can
// serve passes through the gateway: the CLI exits 0 (no unexpected failure,
// no stale entry), every unlisted scenario has a SUCCESS and no FAILURE or
// WARNING, every listed one still fails because the fixture its reason
// names is missing upstream, and no check saw the token refused.
// server-everything 2026.8.31 has no fixture mode (its only argument is
// the transport), so the baseline lists the scenarios whose test_* tools,
// prompts and resources it lacks.
func TestGatewayConformance(t *testing.T) {
	if testing.Short() {
		t.Skip("interop test: runs the gatehouse binary, Node, server-everything and the conformance CLI")
	}
	// Three CLI runs of ~5s each; the bound is for a hang, not for speed.
	ctx, cancel := context.WithTimeout(t.Context(), 150*time.Second)
	defer cancel()
	baselinePath := filepath.Join(interopDir(t), gatewayConformanceBaseline)
	baseline := readServerBaseline(t, baselinePath)
	reasons := map[string]missingFixtureReason{}
	for sc, reason := range baseline {
		m := baselineReason.FindStringSubmatch(reason)
		if m == nil {
			t.Fatalf("%s: the reason of %s must start `no tool|prompt|resource NAME: `, got %q", gatewayConformanceBaseline, sc, reason)
		}
		reasons[sc] = missingFixtureReason{kind: m[1], name: m[2]}
	}

	env := startGatewayEnv(t)
	cli := npmPackageBin(t, interopDir(t), "@modelcontextprotocol/conformance", "conformance")
	direct := runConformanceServer(ctx, t, cli, env.upURL, "", "").statuses()
	for _, route := range []struct{ name, url string }{{"everything-stdio", env.stdioURL}, {"everything-http", env.httpURL}} {
		t.Run(route.name, func(t *testing.T) {
			token := gatewayToken(t, env, route.url)
			run := runConformanceServer(ctx, t, cli, route.url, token, baselinePath)
			got := run.statuses()
			var lost []string
			for id, status := range direct {
				if status == "SUCCESS" && got[id] != "SUCCESS" {
					lost = append(lost, fmt.Sprintf("%s (%s through the gateway)", id, got[id]))
				}
			}
			// server-everything itself lets a rebinding page in; the
			// gateway's Host check does not.
			if id := "dns-rebinding-protection/localhost-host-rebinding-rejected"; got[id] != "SUCCESS" {
				t.Errorf("%s through the gateway: %s, want SUCCESS", id, got[id])
			}
			sort.Strings(lost)
			if len(lost) > 0 {
				t.Errorf("checks that pass against server-everything but not through the gateway: %s\n--- gateway ---\n%s", strings.Join(lost, ", "), env.gateway.output())
			}
			if strings.Contains(run.output, token) {
				t.Errorf("the CLI's output contains the access token")
			}
			checkGatewayBaseline(t, run, reasons)
			t.Logf("direct: %s; through the gateway: %s", summarize(direct), summarize(got))
		})
	}
}

// checkGatewayBaseline checks a run through the gateway against the
// baseline's scenarios and their reasons (see TestGatewayConformance).
func checkGatewayBaseline(t *testing.T, run *conformanceRun, reasons map[string]missingFixtureReason) {
	t.Helper()
	if len(run.checks) != run.announced {
		t.Errorf("checks.json for %d scenarios, the CLI announced %d", len(run.checks), run.announced)
	}
	// What server-everything offers, as the CLI's list scenarios saw it.
	offered := map[string][]string{
		"tool":     listedNames(t, run.checks, "tools-list", "tools"),
		"prompt":   listedNames(t, run.checks, "prompts-list", "prompts"),
		"resource": listedNames(t, run.checks, "resources-list", "resources"),
	}
	var passed, hollow, baselined []string
	for _, sc := range slices.Sorted(maps.Keys(run.checks)) {
		checks := run.checks[sc]
		reason, expected := reasons[sc]
		for _, c := range checks {
			if authFailure(c) {
				t.Errorf("scenario %s: check %s (%s) saw the token refused: %s %s", sc, c.ID, c.Status, c.ErrorMessage, c.Details)
			}
		}
		switch {
		case expected && scenarioPassed(checks):
			t.Errorf("scenario %s passes through the gateway but is in %s (%s %s): remove it", sc, gatewayConformanceBaseline, reason.kind, reason.name)
		case expected:
			baselined = append(baselined, sc)
			checkMissingFixture(t, sc, checks, reason, offered[reason.kind])
		case !scenarioPassed(checks):
			for _, c := range checks {
				if c.Status != "SUCCESS" {
					t.Errorf("scenario %s is not in %s but check %s is a %s: %s %s", sc, gatewayConformanceBaseline, c.ID, c.Status, c.ErrorMessage, c.Details)
				}
			}
		case hollowTool(checks) != "":
			hollow = append(hollow, sc)
			if _, ok := hollowPasses[sc]; !ok {
				t.Errorf("scenario %s passes only because server-everything answers that tool %s is not found: add it to hollowPasses", sc, hollowTool(checks))
			}
		default:
			passed = append(passed, sc)
		}
	}
	for _, sc := range slices.Sorted(maps.Keys(reasons)) {
		if _, ran := run.checks[sc]; !ran {
			t.Errorf("%s lists %s, which the CLI did not run: remove it", gatewayConformanceBaseline, sc)
		}
	}
	for _, sc := range slices.Sorted(maps.Keys(hollowPasses)) {
		if !slices.Contains(hollow, sc) {
			t.Errorf("hollowPasses lists %s (%s), which is no longer a hollow pass (%v): remove it, or baseline it if it fails", sc, hollowPasses[sc], statusesOf(run.checks[sc]))
		}
	}
	if len(passed) == 0 {
		t.Errorf("no scenario passed through the gateway")
	}
	if run.exitErr != nil {
		t.Errorf("conformance CLI with --expected-failures exited with %v, want 0:\n%s", run.exitErr, baselineVerdict(run.output))
	}
	t.Logf("passed (%d): %s", len(passed), strings.Join(passed, " "))
	t.Logf("passed without their fixture (%d): %s", len(hollow), strings.Join(hollow, " "))
	t.Logf("failed, baselined (%d): %s", len(baselined), strings.Join(baselined, " "))
}

// checkMissingFixture checks that a baselined scenario fails for its
// stated reason: the fixture is not offered, and every failing check says
// it was not found or, for a tool, misses what the fixture would produce.
func checkMissingFixture(t *testing.T, sc string, checks []conformanceCheck, reason missingFixtureReason, offered []string) {
	t.Helper()
	if slices.Contains(offered, reason.name) {
		t.Errorf("scenario %s is baselined for lack of %s %s, but server-everything lists it", sc, reason.kind, reason.name)
	}
	// A resource template's variables match any path segment.
	name := regexp.MustCompile(`\\\{[^}]*\\\}`).ReplaceAllString(regexp.QuoteMeta(reason.name), `[^/\s"]+`)
	notFound := regexp.MustCompile(`(?i)\b` + reason.kind + ` ` + name + ` not found\b`)
	for _, c := range checks {
		if c.Status != "FAILURE" && c.Status != "WARNING" {
			continue
		}
		switch {
		case notFound.MatchString(c.ErrorMessage) || notFound.Match(c.Details):
		case reason.kind == "tool" && fixtureOutputMissing.MatchString(c.ErrorMessage):
		default:
			t.Errorf("scenario %s (baselined: no %s %s): check %s is a %s for another reason: %s %s",
				sc, reason.kind, reason.name, c.ID, c.Status, c.ErrorMessage, c.Details)
		}
	}
}

// listedNames returns the names a list scenario's check reported in its
// details (field tools, prompts or resources).
func listedNames(t *testing.T, checks map[string][]conformanceCheck, scenario, field string) []string {
	t.Helper()
	for _, c := range checks[scenario] {
		var d map[string]json.RawMessage
		var names []string
		if c.Status == "SUCCESS" && json.Unmarshal(c.Details, &d) == nil && json.Unmarshal(d[field], &names) == nil && len(names) > 0 {
			return names
		}
	}
	t.Errorf("scenario %s reported no %s: cannot check the baseline's reasons against it", scenario, field)
	return nil
}

// hollowTool returns the tool a passing check called if its result was
// server-everything's error for an unknown tool, else "".
func hollowTool(checks []conformanceCheck) string {
	for _, c := range checks {
		var d struct {
			Result struct {
				IsError bool `json:"isError"`
				Content []struct {
					Text string `json:"text"`
				} `json:"content"`
			} `json:"result"`
		}
		if c.Status != "SUCCESS" || json.Unmarshal(c.Details, &d) != nil || !d.Result.IsError {
			continue
		}
		for _, content := range d.Result.Content {
			if m := unknownToolResult.FindStringSubmatch(content.Text); m != nil {
				return m[1]
			}
		}
	}
	return ""
}

// statusesOf lists a scenario's check statuses.
func statusesOf(checks []conformanceCheck) []string {
	var s []string
	for _, c := range checks {
		s = append(s, c.ID+"="+c.Status)
	}
	return s
}

// baselineVerdict returns the CLI's output from its summary on: the
// baseline check's lists of expected, stale and unexpected scenarios.
func baselineVerdict(out string) string {
	if i := strings.Index(out, "=== SUMMARY ==="); i >= 0 {
		return out[i:]
	}
	return out
}

// summarize counts check statuses.
func summarize(checks map[string]string) string {
	n := map[string]int{}
	for _, s := range checks {
		n[s]++
	}
	return fmt.Sprintf("%d SUCCESS, %d FAILURE, %d WARNING", n["SUCCESS"], n["FAILURE"], n["WARNING"])
}

// conformanceRun is the result of one `conformance server` run.
type conformanceRun struct {
	checks    map[string][]conformanceCheck // by scenario
	announced int                           // scenarios the CLI said it would run
	exitErr   error
	output    string
}

// statuses returns each check's status by scenario/check id.
func (r *conformanceRun) statuses() map[string]string {
	res := map[string]string{}
	for scenario, checks := range r.checks {
		for _, c := range checks {
			res[scenario+"/"+c.ID] = c.Status
		}
	}
	return res
}

// runConformanceServer runs `conformance server --url mcpURL` (with token
// injected when not empty, and --expected-failures baseline when not
// empty) until it exits.
func runConformanceServer(ctx context.Context, t *testing.T, cli, mcpURL, token, baseline string) *conformanceRun {
	t.Helper()
	out := t.TempDir()
	ctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	args := []string{cli, "server", "--url", mcpURL, "-o", out}
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
	m := regexp.MustCompile(`(?m)^Running \S+ suite \((\d+) scenarios\)`).FindStringSubmatch(run.output)
	if m == nil {
		t.Fatalf("the CLI did not announce its suite (`Running active suite (N scenarios)`):\n%s", run.output)
	}
	run.announced, _ = strconv.Atoi(m[1])
	if len(run.checks) == 0 {
		t.Fatalf("conformance server wrote no checks:\n%s", run.output)
	}
	return run
}

// gatewayToken gets an access token for a gateway route with every scope
// of its policy, through the real code flow with PKCE (x/oauth2 as the
// client, the scripted browser as the user).
func gatewayToken(t *testing.T, env *gatewayEnv, resource string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	resp, err := noProxyClient().Get(env.dev.Issuer + "/.well-known/oauth-authorization-server")
	if err != nil {
		t.Fatal(err)
	}
	var meta struct {
		AuthorizationEndpoint string `json:"authorization_endpoint"`
		TokenEndpoint         string `json:"token_endpoint"`
	}
	json.NewDecoder(resp.Body).Decode(&meta)
	resp.Body.Close()
	const redirectURL = "http://127.0.0.1:53692/callback"
	cfg := &oauth2.Config{
		ClientID:    "gatehouse-demo",
		Endpoint:    oauth2.Endpoint{AuthURL: meta.AuthorizationEndpoint, TokenURL: meta.TokenEndpoint, AuthStyle: oauth2.AuthStyleInParams},
		RedirectURL: redirectURL,
		Scopes:      []string{"everything:read", "everything:admin"},
	}
	verifier := oauth2.GenerateVerifier()
	authURL := cfg.AuthCodeURL("gateway-conformance", oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("resource", resource))
	loc, _, err := playBrowser(ctx, authURL, env.dev.Username, env.dev.Password, redirectURL)
	if err != nil {
		t.Fatal(err)
	}
	q := loc.Query()
	if q.Get("state") != "gateway-conformance" || q.Get("code") == "" {
		t.Fatalf("authorization response %s", loc)
	}
	ctx = context.WithValue(ctx, oauth2.HTTPClient, &http.Client{Transport: noProxyClient().Transport, Timeout: 30 * time.Second})
	tok, err := cfg.Exchange(ctx, q.Get("code"), oauth2.VerifierOption(verifier), oauth2.SetAuthURLParam("resource", resource))
	if err != nil {
		t.Fatal(err)
	}
	return tok.AccessToken
}
