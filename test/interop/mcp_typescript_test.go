package interop

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/gatehouse-mcp/gatehouse/internal/demo"
)

// tsStep is one step the TypeScript client reports.
type tsStep struct {
	Name    string          `json:"name"`
	OK      bool            `json:"ok"`
	Error   string          `json:"error"`
	Scope   string          `json:"scope"`
	Outcome string          `json:"outcome"`
	Raw     json.RawMessage `json:"-"`
}

// TestMCPTypeScriptClient runs the MCP TypeScript SDK client
// (@modelcontextprotocol/sdk, pinned in test/interop/package.json) headless
// against the demo MCP server of `gatehouse dev`: discovery from the 401,
// authorization (the script plays the browser), tools/list listing every
// tool (add_note, which needs notes:write, too), tools/call, refresh
// after the access token expires, and step-up to notes:write started from
// the listed add_note — with a refresh token (the SDK's known quirk,
// checked exchange by exchange so that the test fails once the SDK steps
// up properly) and without one. It runs once with the pre-registered demo
// client and once letting the SDK register itself (it registers with the
// scope of the first challenge, notes:read, and must still be able to step
// up to notes:write).
func TestMCPTypeScriptClient(t *testing.T) {
	for _, client := range []string{"gatehouse-demo", "dcr"} {
		t.Run(client, func(t *testing.T) { testMCPTypeScriptClient(t, client) })
	}
}

func testMCPTypeScriptClient(t *testing.T, client string) {
	node := nodeBin(t)
	dir := interopDir(t)
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "@modelcontextprotocol", "sdk", "package.json")); err != nil {
		skipOrFatal(t, "npm package @modelcontextprotocol/sdk is not installed in %s: run `npm ci --prefix %s --no-audit --no-fund` (or scripts/test.sh)", dir, dir)
	}
	// Tokens live long enough for the first steps and are short enough to
	// wait out (with the demo's clock skew) for the refresh step.
	const ttl = 4 * time.Second
	d := startMCPDev(t, "bob", "bob-interop-pw", "--access-token-ttl", ttl.String())
	wait := int((ttl + demo.ClockSkew).Seconds())

	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, filepath.Join(dir, "mcp_ts_client.mjs"),
		d.MCPURL, d.Username, d.Password, "http://127.0.0.1:53683/callback", strconv.Itoa(wait), client)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "NO_PROXY=127.0.0.1,localhost", "no_proxy=127.0.0.1,localhost")
	p := startProc(t, "mcp_ts_client.mjs", cmd)
	m, err := p.waitLine(ctx, regexp.MustCompile(`^RESULT (.*)$`))
	if err != nil {
		t.Fatalf("TypeScript client: %v\n%s\n--- gatehouse dev ---\n%s", err, p.output(), d.Output())
	}
	var result struct {
		OK    bool              `json:"ok"`
		Steps []json.RawMessage `json:"steps"`
	}
	if err := json.Unmarshal([]byte(m[1]), &result); err != nil {
		t.Fatalf("RESULT line %q: %v", m[1], err)
	}
	got := map[string]tsStep{}
	for _, raw := range result.Steps {
		var s tsStep
		json.Unmarshal(raw, &s)
		s.Raw = raw
		got[s.Name] = s
		t.Logf("%s", raw)
	}
	for _, name := range []string{
		"connect", "tools/list", "tools/call list_notes", "refresh after expiry",
		"step-up with refresh token", "tools/call after refused step-up",
		"step-up to notes:write", "tools/list after step-up", "read_note",
	} {
		s, ok := got[name]
		switch {
		case !ok:
			t.Errorf("step %q did not run", name)
		case !s.OK:
			t.Errorf("step %q failed: %s", name, s.Raw)
		}
	}
	if s := got["connect"]; !strings.Contains(string(s.Raw), `"resource":"`+d.MCPURL+`"`) || !strings.Contains(string(s.Raw), `"method":"S256"`) {
		t.Errorf("first authorization %s: want resource %s and S256", s.Raw, d.MCPURL)
	}
	// The SDK saves the client information it was given too: a
	// registration is a client id other than the demo client's.
	var connect struct {
		Registrations []struct {
			ClientID string `json:"client_id"`
		} `json:"registrations"`
	}
	json.Unmarshal(got["connect"].Raw, &connect)
	registered := false
	for _, r := range connect.Registrations {
		registered = registered || (r.ClientID != "" && r.ClientID != "gatehouse-demo")
	}
	if registered != (client == "dcr") {
		t.Errorf("connect %s: registered a client: %v, want %v", got["connect"].Raw, registered, client == "dcr")
	}
	checkStepUpQuirk(t, got["step-up with refresh token"], d.MCPURL)
	if s := got["step-up to notes:write"]; !strings.Contains(s.Scope, "notes:write") {
		t.Errorf("step-up authorization scope %q lacks notes:write", s.Scope)
	}
	if !result.OK || t.Failed() {
		sc := bufio.NewScanner(strings.NewReader(p.output()))
		for sc.Scan() {
			if !strings.HasPrefix(sc.Text(), "STEP ") && !strings.HasPrefix(sc.Text(), "RESULT ") {
				t.Log(sc.Text())
			}
		}
		t.Logf("--- gatehouse dev ---\n%s", d.Output())
	}
}

// checkStepUpQuirk checks the step "step-up with refresh token" against
// the SDK's known quirk (INTEROP.md §2): the tool call is challenged with
// exactly rs's insufficient_scope challenge for add_note; the SDK
// refreshes its token without asking for the challenged scope (no new
// authorization), is challenged again with the same header, and gives up.
// Any other exchange fails the test, a proper step-up included: then the
// quirk is stale, and this check, the script's step 5 and INTEROP.md must
// change, as a conformance baseline entry must go once it passes.
func checkStepUpQuirk(t *testing.T, s tsStep, mcpURL string) {
	t.Helper()
	type challenge struct {
		Status          int    `json:"status"`
		WWWAuthenticate string `json:"wwwAuthenticate"`
	}
	type tokenRequest struct {
		GrantType string  `json:"grant_type"`
		Scope     *string `json:"scope"`
		Status    int     `json:"status"`
	}
	var got struct {
		Challenges        []challenge    `json:"challenges"`
		TokenRequests     []tokenRequest `json:"tokenRequests"`
		NewAuthorizations int            `json:"newAuthorizations"`
	}
	if err := json.Unmarshal(s.Raw, &got); err != nil {
		t.Fatalf("step %q: %v", s.Name, err)
	}
	metadata := strings.Replace(mcpURL, "/mcp", "/.well-known/oauth-protected-resource/mcp", 1)
	header := `Bearer error="insufficient_scope", scope="notes:read notes:write", resource_metadata="` + metadata +
		`", error_description="tool add_note needs scope notes:read notes:write"`
	want := challenge{Status: 403, WWWAuthenticate: header}
	if diff := cmp.Diff([]challenge{want, want}, got.Challenges); diff != "" {
		t.Errorf("step-up with a refresh token: MCP responses (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]tokenRequest{{GrantType: "refresh_token", Status: 200}}, got.TokenRequests); diff != "" {
		t.Errorf("step-up with a refresh token: token requests (-want +got):\n%s", diff)
	}
	if got.NewAuthorizations != 0 {
		t.Errorf("step-up with a refresh token: %d new authorizations, want 0 (the quirk refreshes)", got.NewAuthorizations)
	}
	if !strings.HasPrefix(s.Outcome, "known SDK quirk") || !strings.Contains(s.Error, "Server returned 403 after trying upscoping") {
		t.Errorf("step-up with a refresh token: outcome %q, error %q; want the known quirk (if the SDK now steps up, the quirk is stale: update this check, step 5 of mcp_ts_client.mjs and INTEROP.md §2)", s.Outcome, s.Error)
	}
}
