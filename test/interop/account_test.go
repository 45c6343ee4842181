package interop

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestAccount is the account page end to end (issue 16 item 2): a user
// connects an MCP client (the TypeScript SDK, account_ts_client.mjs)
// through the demo MCP server of `gatehouse dev` and calls a tool; in
// headless Chromium they sign in at /account (its own sign-in page), see
// the client with that tool call, and revoke it; the client's next
// refresh then fails with invalid_grant.
func TestAccount(t *testing.T) {
	if testing.Short() {
		t.Skip("starts gatehouse dev, Node and Chromium: not in -short")
	}
	node := nodeBin(t)
	dir := interopDir(t)
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "@modelcontextprotocol", "sdk", "package.json")); err != nil {
		skipOrFatal(t, "npm package @modelcontextprotocol/sdk is not installed in %s: run `npm ci --prefix %s --no-audit --no-fund` (or scripts/test.sh)", dir, dir)
	}
	browser := newBrowser(t)
	d := startMCPDev(t, "carol", "carol-interop-pw")

	// 1. The client connects and calls list_notes, then waits.
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	goFile := filepath.Join(t.TempDir(), "revoked")
	cmd := exec.CommandContext(ctx, node, filepath.Join(dir, "account_ts_client.mjs"),
		d.MCPURL, d.Issuer, d.Username, d.Password, "http://127.0.0.1:53684/callback", goFile)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "NO_PROXY=127.0.0.1,localhost", "no_proxy=127.0.0.1,localhost")
	p := startProc(t, "account_ts_client.mjs", cmd)
	if _, err := p.waitLine(ctx, regexp.MustCompile(`^(READY|RESULT .*)$`)); err != nil || strings.Contains(p.output(), "RESULT ") {
		t.Fatalf("TypeScript client did not connect and call a tool: %v\n%s\n--- gatehouse dev ---\n%s", err, p.output(), d.Output())
	}

	// 2. In Chromium: /account sends a signed-out browser to its sign-in.
	bctx, bcancel := context.WithTimeout(browser, time.Minute)
	defer bcancel()
	css := func(s string) chromedp.CSS { return chromedp.CSS(s) }
	if err := chromedp.Do(bctx, chromedp.Navigate(d.Issuer+"/account"), chromedp.WaitVisible(css("#login-form"))); err != nil {
		t.Fatalf("open /account: %v", err)
	}
	if loc, err := chromedp.Run(bctx, chromedp.Location()); err != nil || !strings.HasSuffix(loc, "/account/login") {
		t.Errorf("signed out, /account landed on %q (%v), want /account/login", loc, err)
	}
	err := chromedp.Do(bctx,
		chromedp.SendKeys(css("#username"), d.Username),
		chromedp.SendKeys(css("#password"), d.Password),
		chromedp.Click(css("#login")),
		chromedp.WaitVisible(css("#agents-heading")))
	if err != nil {
		t.Fatalf("sign in on /account/login: %v", err)
	}
	agents, err := chromedp.Run(bctx, chromedp.Text(css("ul.agents")))
	if err != nil {
		t.Fatalf("the account page lists no agents: %v", err)
	}
	t.Logf("connected agents:\n%s", agents)
	for _, want := range []string{"Gatehouse demo client", "Registered by your administrator", "notes:read", "list_notes", d.MCPURL} {
		if !strings.Contains(agents, want) {
			t.Errorf("the connected agents section lacks %q", want)
		}
	}

	// 3. Revoke.
	err = chromedp.Do(bctx, chromedp.Click(css("ul.agents form.revoke button")), chromedp.WaitVisible(css("#notice")))
	if err != nil {
		t.Fatalf("revoke: %v", err)
	}
	if n, err := chromedp.Run(bctx, chromedp.Evaluate[int](`document.querySelectorAll('ul.agents > li').length`)); err != nil || n != 0 {
		t.Errorf("after revoking, the page lists %d agents (%v), want none", n, err)
	}

	// 4. The client's next refresh fails with invalid_grant.
	if err := os.WriteFile(goFile, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	m, err := p.waitLine(ctx, regexp.MustCompile(`^RESULT (.*)$`))
	if err != nil {
		t.Fatalf("TypeScript client: %v\n%s", err, p.output())
	}
	var result struct {
		OK    bool              `json:"ok"`
		Steps []json.RawMessage `json:"steps"`
	}
	if err := json.Unmarshal([]byte(m[1]), &result); err != nil {
		t.Fatalf("RESULT line %q: %v", m[1], err)
	}
	ran := map[string]bool{}
	for _, raw := range result.Steps {
		var s tsStep
		json.Unmarshal(raw, &s)
		ran[s.Name] = true
		t.Logf("%s", raw)
		if !s.OK {
			t.Errorf("step %q failed: %s", s.Name, raw)
		}
	}
	for _, name := range []string{"connect", "tools/call list_notes", "refresh after revoke"} {
		if !ran[name] {
			t.Errorf("step %q did not run", name)
		}
	}
	if !result.OK || t.Failed() {
		t.Logf("--- client ---\n%s\n--- gatehouse dev ---\n%s", p.output(), d.Output())
	}
}
