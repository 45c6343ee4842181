package interop

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-mcp/gatehouse/rs"
	"github.com/gatehouse-mcp/gatehouse/test/interop/conformancefixture"
)

// The conformance fixture (package conformancefixture) has every tool,
// prompt and resource the server scenarios of the conformance CLI call, so
// a scenario that fails here fails because of where the fixture is placed,
// never because a fixture is missing.

// Baselines (--expected-failures) of TestConformanceFixture, one per CLI
// and placement group. Each entry names the spec reason it cannot pass;
// none may name a missing fixture.
const (
	conformanceServerBaseline      = "conformance-server-baseline.yaml"                   // 0.1.16: direct, behind rs
	conformanceServerBaseline2026  = "conformance-server-2026-07-28-baseline.yaml"        // 0.2.0-alpha.12 --requirements 2026-07-28: direct, behind rs
	gatewayConformanceBaseline     = "gateway-conformance-baseline.yaml"                  // 0.1.16: both gateway routes
	gatewayConformanceBaseline2026 = "gateway-conformance-2026-07-28-baseline.yaml"       // 0.2.0-alpha.12 --requirements 2026-07-28: gateway, HTTP upstream
	gatewayStdioBaseline2026       = "gateway-stdio-conformance-2026-07-28-baseline.yaml" // 0.2.0-alpha.12 --requirements 2026-07-28: gateway, stdio upstream
)

// fixtureScope is the one scope of the fixture's resource, in rs and in
// the gateway: the placements test the protocol, not the policy.
const fixtureScope = "fixture:use"

// fixtureCLI is one conformance CLI and how it is run.
type fixtureCLI struct {
	name string   // as printed: "0.1.16", "2026-07-28"
	bin  string   // the CLI's entry point
	args []string // after `server --url URL`
	// scored are the scenarios the CLI scores (`conformance list --server
	// --requirements REV`); nil means every scenario it runs.
	scored map[string]bool
}

// fixturePlacement is where the fixture sits and how the CLI reaches it.
type fixturePlacement struct {
	name     string
	url      string
	token    string            // injected by preload-auth.mjs; "" for none
	baseline map[string]string // by CLI name: file in test/interop
}

// TestConformanceFixture runs `conformance server` 0.1.16 (active suite)
// and 0.2.0-alpha.12 (--requirements 2026-07-28) against the conformance
// fixture in four placements: directly (in process), behind rs
// (rs.RequireBearer with a JWT verifier, the token got through the real
// code flow from `gatehouse dev`), and through `gatehouse gateway` with the
// fixture as a Streamable HTTP upstream and as a stdio upstream (the
// fixture built as a binary).
//
// Every scenario the CLI scores must pass (a SUCCESS, no FAILURE, no
// WARNING) unless the placement's baseline lists it with a spec reason;
// the CLI enforces the baseline too (--expected-failures: a listed
// scenario that passes is stale) and must exit 0. No check may see the
// token refused. The 0.2.0-alpha.12 CLI also runs scenarios that are not
// part of 2026-07-28 (extensions, pending): they are reported, not scored,
// as the CLI does.
func TestConformanceFixture(t *testing.T) {
	if testing.Short() {
		t.Skip("interop test: runs the gatehouse binary, the fixture and the Node conformance CLIs")
	}
	dir := interopDir(t)
	clis := []fixtureCLI{
		{name: "0.1.16", bin: npmPackageBin(t, dir, "@modelcontextprotocol/conformance", "conformance")},
		{name: "2026-07-28", bin: npmPackageBin(t, filepath.Join(dir, "conformance-alpha"), "@modelcontextprotocol/conformance", "conformance"),
			args: []string{"--requirements", "2026-07-28"}},
	}
	clis[1].scored = requiredScenarios(t, clis[1].bin, "2026-07-28")
	for _, f := range []string{conformanceServerBaseline, conformanceServerBaseline2026, gatewayConformanceBaseline, gatewayConformanceBaseline2026, gatewayStdioBaseline2026} {
		for sc, reason := range readServerBaseline(t, filepath.Join(dir, f)) {
			if fixtureReason.MatchString(reason) {
				t.Errorf("%s: %s is baselined for a missing fixture (%q): add the fixture to conformancefixture instead", f, sc, reason)
			}
		}
	}

	server := conformancefixture.New()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	go conformancefixture.Updates(ctx, server, 3*time.Second)
	direct := httptest.NewServer(conformancefixture.Handler(server))
	t.Cleanup(direct.Close)

	d := startMCPDev(t, "fixture", "pw-"+rand.Text(), "--access-token-ttl", "1h")
	rsURL := startFixtureBehindRS(t, d, conformancefixture.Handler(server))
	stdioURL, httpURL := startFixtureGateway(t, d, buildFixture(t), direct.URL+"/mcp")

	placements := []fixturePlacement{
		{name: "direct", url: direct.URL + "/mcp",
			baseline: map[string]string{"0.1.16": conformanceServerBaseline, "2026-07-28": conformanceServerBaseline2026}},
		{name: "rs", url: rsURL, token: fixtureToken(t, d.devServer, rsURL),
			baseline: map[string]string{"0.1.16": conformanceServerBaseline, "2026-07-28": conformanceServerBaseline2026}},
		{name: "gateway-http", url: httpURL, token: fixtureToken(t, d.devServer, httpURL),
			baseline: map[string]string{"0.1.16": gatewayConformanceBaseline, "2026-07-28": gatewayConformanceBaseline2026}},
		{name: "gateway-stdio", url: stdioURL, token: fixtureToken(t, d.devServer, stdioURL),
			baseline: map[string]string{"0.1.16": gatewayConformanceBaseline, "2026-07-28": gatewayStdioBaseline2026}},
	}
	var counts []string
	// passedDirectly[cli] are the scenarios that passed against the bare
	// fixture: a scenario baselined elsewhere must be one of them, or the
	// fixture, not the placement, is what fails.
	passedDirectly := map[string]map[string]bool{}
	for _, p := range placements {
		for _, cli := range clis {
			t.Run(p.name+"/"+cli.name, func(t *testing.T) {
				if p.token != "" {
					requireChallenge(t, p.url)
				}
				baselinePath := filepath.Join(dir, p.baseline[cli.name])
				run := runConformanceServer(t.Context(), t, cli.bin, p.url, p.token, baselinePath, cli.args...)
				baseline := readServerBaseline(t, baselinePath)
				n, passed := checkFixtureRun(t, run, cli.scored, baseline, p.baseline[cli.name])
				if p.name == "direct" {
					passedDirectly[cli.name] = passed
				}
				direct, ran := passedDirectly[cli.name]
				if !ran && len(baseline) > 0 {
					t.Logf("the direct placement did not run (-run): %s's entries are not checked against it", p.baseline[cli.name])
				}
				for sc := range baseline {
					if ran && !direct[sc] {
						t.Errorf("%s lists %s, which does not pass against the fixture directly either: fix the fixture", p.baseline[cli.name], sc)
					}
				}
				if p.token != "" && strings.Contains(run.output, p.token) {
					t.Errorf("the CLI's output contains the access token")
				}
				counts = append(counts, fmt.Sprintf("%s %s: %s", p.name, cli.name, n))
			})
		}
	}
	for _, c := range counts {
		t.Logf("placement %s", c)
	}
}

// fixtureReason matches a baseline reason that blames a missing fixture.
var fixtureReason = regexp.MustCompile(`(?i)\b(no (tool|prompt|resource)|fixture|not a demo tool|unknown (tool|prompt)|not found)\b`)

// checkFixtureRun checks one CLI run against its baseline (see
// TestConformanceFixture) and returns its pass count, as
// "N/M scenarios passed (K baselined, U not scored)", and the scored
// scenarios that passed. scored nil means every scenario is scored.
func checkFixtureRun(t *testing.T, run *conformanceRun, scored map[string]bool, baseline map[string]string, baselineName string) (string, map[string]bool) {
	t.Helper()
	switch {
	case len(run.checks) == run.announced:
	case scored == nil:
		t.Errorf("checks.json for %d scenarios, the CLI announced %d", len(run.checks), run.announced)
	default:
		// A scenario the revision does not require may end without
		// results (a tasks-extension scenario waiting for a task that
		// never comes); a required one may not.
		t.Logf("checks.json for %d scenarios, the CLI announced %d", len(run.checks), run.announced)
	}
	for sc := range scored {
		if _, ran := run.checks[sc]; !ran {
			t.Errorf("scenario %s is required but has no checks.json", sc)
		}
	}
	var passed, baselined, notScored []string
	for _, sc := range slices.Sorted(maps.Keys(run.checks)) {
		checks := run.checks[sc]
		if scored != nil && !scored[sc] {
			notScored = append(notScored, fmt.Sprintf("%s(%s)", sc, verdict(checks)))
			for _, c := range checks {
				if c.Status != "SUCCESS" && !strings.HasPrefix(sc, "tasks-") {
					// Not scored, but worth reading: what failed and why.
					t.Logf("not scored: %s: check %s is a %s: %s", sc, c.ID, c.Status, c.ErrorMessage)
				}
			}
			continue
		}
		for _, c := range checks {
			if authFailure(c) {
				t.Errorf("scenario %s: check %s (%s) saw the token refused: %s %s", sc, c.ID, c.Status, c.ErrorMessage, c.Details)
			}
		}
		reason, expected := baseline[sc]
		switch ok := scenarioPassed(checks); {
		case ok && expected:
			t.Errorf("scenario %s passes but is in %s (%s): remove it", sc, baselineName, reason)
		case ok:
			passed = append(passed, sc)
		case expected:
			baselined = append(baselined, sc)
		default:
			for _, c := range checks {
				if c.Status != "SUCCESS" {
					t.Errorf("scenario %s is not in %s but check %s is a %s: %s %s", sc, baselineName, c.ID, c.Status, c.ErrorMessage, c.Details)
				}
			}
		}
	}
	for _, sc := range slices.Sorted(maps.Keys(baseline)) {
		if _, ran := run.checks[sc]; !ran {
			t.Errorf("%s lists %s, which the CLI did not run: remove it", baselineName, sc)
		}
	}
	if run.exitErr != nil {
		t.Errorf("conformance CLI with --expected-failures %s exited with %v, want 0:\n%s", baselineName, run.exitErr, baselineVerdict(run.output))
	}
	total := len(run.checks) - len(notScored)
	t.Logf("passed (%d): %s", len(passed), strings.Join(passed, " "))
	t.Logf("failed, baselined in %s (%d): %s", baselineName, len(baselined), strings.Join(baselined, " "))
	if len(notScored) > 0 {
		t.Logf("not scored by the CLI (%d): %s", len(notScored), strings.Join(notScored, " "))
	}
	ok := map[string]bool{}
	for _, sc := range passed {
		ok[sc] = true
	}
	return fmt.Sprintf("%d/%d scenarios passed (%d baselined, %d not scored)", len(passed), total, len(baselined), len(notScored)), ok
}

// requireChallenge checks that a placement with a token really sits behind
// a bearer check: a tools/list without the token is answered 401 with a
// Bearer challenge, so the CLI's passes are passes of authenticated calls.
func requireChallenge(t *testing.T, mcpURL string) {
	t.Helper()
	body := `{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{}}`
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, mcpURL, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	resp, err := noProxyClient().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized || !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer ") {
		t.Fatalf("POST %s without a token = %d, WWW-Authenticate %q; want 401 with a Bearer challenge", mcpURL, resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
}

// requiredScenarios returns the server scenarios a revision requires,
// as `conformance list --server --requirements rev` prints them.
func requiredScenarios(t *testing.T, cli, rev string) map[string]bool {
	t.Helper()
	cmd := exec.Command(nodeBin(t), cli, "list", "--server", "--requirements", rev)
	cmd.Env = append(os.Environ(), "NO_COLOR=1", "FORCE_COLOR=0")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("conformance list --server --requirements %s: %v", rev, err)
	}
	// It lists client scenarios too, after the server ones.
	section := string(out)
	if i := strings.Index(section, "Server scenarios"); i >= 0 {
		section = section[i:]
	}
	if i := strings.Index(section, "Client scenarios"); i >= 0 {
		section = section[:i]
	}
	res := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^  - (\S+)$`).FindAllStringSubmatch(section, -1) {
		res[m[1]] = true
	}
	if len(res) == 0 {
		t.Fatalf("conformance list --server --requirements %s listed no scenario:\n%s", rev, out)
	}
	return res
}

// verdict is a scenario's result in one word.
func verdict(checks []conformanceCheck) string {
	if scenarioPassed(checks) {
		return "passed"
	}
	return "failed"
}

// startFixtureBehindRS serves the fixture behind rs.RequireBearer (a JWT
// verifier for the resource, registered with `gatehouse resource add`) and
// the resource's RFC 9728 metadata, and returns the MCP URL.
func startFixtureBehindRS(t *testing.T, d *mcpDev, server http.Handler) string {
	t.Helper()
	srv := httptest.NewUnstartedServer(nil)
	resource := "http://" + srv.Listener.Addr().String() + "/mcp"
	d.run(t, "resource", "add", "--name", "Conformance fixture", "--scope", fixtureScope, resource)
	metaURL, err := rs.MetadataURL(resource)
	if err != nil {
		t.Fatal(err)
	}
	meta, err := rs.MetadataHandler(rs.ResourceMetadata{Resource: resource, AuthorizationServers: []string{d.Issuer}, ScopesSupported: []string{fixtureScope}})
	if err != nil {
		t.Fatal(err)
	}
	v, err := rs.NewJWTVerifier(rs.JWTOptions{Issuer: d.Issuer, Resource: resource, HTTPClient: noProxyClient()})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/mcp", rs.RequireBearer(v, &rs.Options{ResourceMetadataURL: metaURL, Scopes: []string{fixtureScope}})(server))
	mux.Handle(strings.TrimPrefix(metaURL, "http://"+srv.Listener.Addr().String()), meta)
	srv.Config.Handler = mux
	srv.Start()
	t.Cleanup(srv.Close)
	return resource
}

// startFixtureGateway starts `gatehouse gateway` with two routes to the
// fixture: fixture-stdio runs bin as its upstream process, fixture-http
// forwards to upstreamURL. It returns the two routes' MCP URLs.
func startFixtureGateway(t *testing.T, d *mcpDev, bin, upstreamURL string) (stdioURL, httpURL string) {
	t.Helper()
	gwPort, adminPort := freePort(t), freePort(t)
	stdioURL = fmt.Sprintf("http://127.0.0.1:%d/fixture/mcp", gwPort)
	httpURL = fmt.Sprintf("http://127.0.0.1:%d/fixture-http/mcp", gwPort)
	route := func(name, u string, upstream map[string]any) map[string]any {
		return map[string]any{"name": name, "url": u, "upstream": upstream, "request_timeout": "30s", "scopes": []string{fixtureScope}}
	}
	cfg := map[string]any{
		"issuer":  d.Issuer,
		"storage": map[string]any{"driver": "sqlite", "sqlite_path": filepath.Join(d.Data, "gatehouse.db")},
		"gateway": map[string]any{
			"listen":       fmt.Sprintf("127.0.0.1:%d", gwPort),
			"admin_listen": fmt.Sprintf("127.0.0.1:%d", adminPort),
			"routes": []any{
				route("fixture-stdio", stdioURL, map[string]any{"command": bin}),
				route("fixture-http", httpURL, map[string]any{"url": upstreamURL}),
			},
		},
	}
	b, _ := json.MarshalIndent(cfg, "", "  ")
	cfgFile := filepath.Join(t.TempDir(), "gateway.json")
	if err := os.WriteFile(cfgFile, b, 0o600); err != nil {
		t.Fatal(err)
	}
	gw := startProc(t, "gatehouse gateway", exec.Command(d.Bin, "gateway", "--config", cfgFile))
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	if _, err := gw.waitLine(ctx, regexp.MustCompile(`^Gatehouse gateway is running`)); err != nil {
		t.Fatalf("gatehouse gateway did not start: %v\n%s", err, gw.output())
	}
	return stdioURL, httpURL
}

// buildFixture builds the fixture's stdio binary (cmd/conformance-fixture).
func buildFixture(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "conformance-fixture")
	cmd := exec.Command("go", "build", "-o", bin, "./test/interop/conformancefixture/cmd/conformance-fixture")
	cmd.Dir = findModuleRoot(t)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build conformance-fixture: %v\n%s", err, out)
	}
	return bin
}

// fixtureToken gets an access token for resource with fixtureScope
// through the real code flow (see demoToken).
func fixtureToken(t *testing.T, d *devServer, resource string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	dd := *d
	dd.MCPURL = resource
	return demoToken(ctx, t, &dd, fixtureScope)
}
