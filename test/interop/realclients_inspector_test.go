package interop

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// inspectorBin is MCP Inspector's launcher (`mcp-inspector`; --cli, --web).
func inspectorBin(t *testing.T) string {
	t.Helper()
	return npmPackageBin(t, realClientsDir(t), "@modelcontextprotocol/inspector", "mcp-inspector")
}

// inspectorEnv is the environment of an Inspector process: a home of its
// own, secrets (OAuth tokens) kept in a file there so one CLI run finds the
// tokens of the last, and no desktop browser opened (BROWSER=true makes
// the opener run `true URL`; the test is the user).
func inspectorEnv(home string) []string {
	return append(os.Environ(),
		"HOME="+home,
		"MCP_INSPECTOR_SECRET_STORE=file",
		"BROWSER=true",
		"NO_COLOR=1",
	)
}

// inspectorConfig writes (once) and returns the Inspector's read-only
// session config for the demo: a Streamable HTTP server whose OAuth scope
// is notes:read. Without a configured scope the Inspector asks for every
// scope in the protected resource metadata's scopes_supported at the first
// sign-in (it does not take the 401 challenge's scope), so it never needs
// a step-up; a user who wants least privilege sets the scope, as here.
func inspectorConfig(t *testing.T, home string, d *mcpDev) string {
	t.Helper()
	p := filepath.Join(home, "inspector-config.json")
	if _, err := os.Stat(p); err == nil {
		return p
	}
	b, err := json.Marshal(map[string]any{"mcpServers": map[string]any{"demo": map[string]any{
		"type": "streamable-http", "url": d.MCPURL, "oauth": map[string]any{"scopes": "notes:read"},
	}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// Lines of the Inspector CLI's interactive OAuth, on standard error.
var (
	inspectorNavigate = regexp.MustCompile(`Please navigate to: (http\S+)`)
	inspectorStepUp   = regexp.MustCompile(`needs additional (OAuth )?scopes?`)
)

// cliRun is one run of the Inspector CLI.
type cliRun struct {
	Stdout    string
	Stderr    string
	SignIns   []signIn
	SteppedUp bool  // it asked to proceed with step-up authorization (answered y)
	Err       error // its exit status
}

// runInspectorCLI runs `mcp-inspector --cli` against the demo with the
// given method arguments as a user at a terminal would: every
// authorization URL it prints is completed in Chromium, and its step-up
// question is answered "y" on standard input. MCP_AUTO_OPEN_ENABLED=true
// is the documented switch for interactive OAuth without a TTY.
func runInspectorCLI(ctx context.Context, t *testing.T, node, bin string, browser context.Context, d *mcpDev, home string, callbackPort int, args ...string) cliRun {
	t.Helper()
	full := append([]string{bin, "--cli",
		"--config", inspectorConfig(t, home, d), "--server", "demo",
		"--callback-url", "http://127.0.0.1:" + strconv.Itoa(callbackPort) + "/oauth/callback",
		"--format", "json"}, args...)
	cmd := exec.Command(node, full...)
	cmd.Env = append(inspectorEnv(home), "MCP_AUTO_OPEN_ENABLED=true")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var stdout bytes.Buffer
	cmd.Stdout = &stdout
	stderr, w := watchOutput(t, "mcp-inspector --cli "+strings.Join(args, " "))
	cmd.Stderr = w
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start the Inspector CLI: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() { _ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }()

	var run cliRun
	seen := 0
	for done := false; !done; {
		select {
		case run.Err = <-exited:
			done = true
		case <-ctx.Done():
			t.Fatalf("the Inspector CLI did not finish: %v\n%s", ctx.Err(), stderr.output())
		case <-time.After(50 * time.Millisecond):
		}
		lines := stderr.linesAfter(seen)
		seen += len(lines)
		for _, l := range lines {
			if m := inspectorNavigate.FindStringSubmatch(l); m != nil && !done {
				got, err := authorizeInChromium(browser, d, m[1])
				if err != nil {
					t.Fatalf("Chromium, authorization URL printed by the Inspector CLI: %v", err)
				}
				run.SignIns = append(run.SignIns, got)
			}
			if inspectorStepUp.MatchString(l) && !done {
				run.SteppedUp = true
				io.WriteString(stdin, "y\n")
			}
		}
	}
	run.Stdout, run.Stderr = stdout.String(), stderr.output()
	return run
}

// testInspectorCLI runs MCP Inspector's CLI once per operation, as a
// script or a person at a terminal would, all sharing one home (the
// stored registration and tokens) and one browser profile.
func testInspectorCLI(t *testing.T) {
	node, bin := nodeBin(t), inspectorBin(t)
	browser := newBrowser(t)
	d := startMCPDev(t, "alice", "correct horse battery staple", "--access-token-ttl", realClientTTL.String())
	home := t.TempDir()
	port := freePort(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cli := func(t *testing.T, args ...string) cliRun {
		t.Helper()
		return runInspectorCLI(ctx, t, node, bin, browser, d, home, port, args...)
	}

	var tools []string
	step(t, "sign in with notes:read in Chromium, list tools", func(t *testing.T) {
		run := cli(t, "--method", "tools/list")
		if run.Err != nil {
			t.Fatalf("tools/list: %v\n%s", run.Err, run.Stderr)
		}
		if len(run.SignIns) != 1 || !run.SignIns[0].LoggedIn || !strings.Contains(run.SignIns[0].ConsentText, "notes:read") || strings.Contains(run.SignIns[0].ConsentText, "notes:write") {
			t.Fatalf("sign-ins = %+v, want one, with the login page and notes:read, not notes:write, on the consent page", run.SignIns)
		}
		var res struct {
			Result struct {
				Tools []struct {
					Name string `json:"name"`
				} `json:"tools"`
			} `json:"result"`
		}
		if err := json.Unmarshal([]byte(run.Stdout), &res); err != nil {
			t.Fatalf("tools/list output %q: %v", run.Stdout, err)
		}
		for _, tool := range res.Result.Tools {
			tools = append(tools, tool.Name)
		}
		if !slices.Contains(tools, "list_notes") {
			t.Fatalf("tools/list = %v (output %s), want list_notes", tools, run.Stdout)
		}
	})
	callOK := func(t *testing.T, run cliRun, name string) {
		t.Helper()
		if run.Err != nil {
			t.Fatalf("tools/call %s: %v\n%s%s", name, run.Err, run.Stdout, run.Stderr)
		}
		var res struct {
			Result *struct {
				IsError bool `json:"isError"`
			} `json:"result"`
		}
		if err := json.Unmarshal([]byte(run.Stdout), &res); err != nil || res.Result == nil || res.Result.IsError {
			t.Fatalf("tools/call %s = %s (%v), want a result", name, run.Stdout, err)
		}
	}
	step(t, "call list_notes with the stored token", func(t *testing.T) {
		run := cli(t, "--method", "tools/call", "--tool-name", "list_notes")
		callOK(t, run, "list_notes")
		if len(run.SignIns) != 0 {
			t.Errorf("list_notes signed in again (%d times), want the stored token used", len(run.SignIns))
		}
	})
	// Not steps that end the session: without issue 13 item 1 add_note is
	// not listed and the Inspector refuses to call it, and the refresh
	// below does not depend on it.
	t.Run("add_note is listed", func(t *testing.T) {
		if !slices.Contains(tools, "add_note") {
			t.Fatalf("tools/list for a notes:read token = %v, want add_note listed: %s", tools, stepUpPending)
		}
	})
	t.Run("call add_note, stepped up to notes:write in Chromium", func(t *testing.T) {
		run := cli(t, "--method", "tools/call", "--tool-name", "add_note", "--tool-arg", "title=from the Inspector CLI", "text=stepped up")
		if strings.Contains(run.Stdout+run.Stderr, "not found on server") {
			t.Fatalf("the Inspector CLI cannot call add_note: %q: %s", strings.TrimSpace(run.Stdout+run.Stderr), stepUpPending)
		}
		callOK(t, run, "add_note")
		if !run.SteppedUp || len(run.SignIns) != 1 || !strings.Contains(run.SignIns[0].ConsentText, "notes:write") {
			t.Errorf("step-up: asked %v, sign-ins %+v; want the step-up question and one consent asking for notes:write\n%s\n%s", run.SteppedUp, run.SignIns, run.Stdout, run.Stderr)
		}
	})
	step(t, "refresh after expiry", func(t *testing.T) {
		before := countRefreshes(t, d)
		waitTokenExpiry()
		run := cli(t, "--method", "tools/call", "--tool-name", "list_notes")
		callOK(t, run, "list_notes")
		if len(run.SignIns) != 0 {
			t.Errorf("list_notes after expiry signed in again (%d times), want a refresh", len(run.SignIns))
		}
		if after := countRefreshes(t, d); after <= before {
			t.Fatalf("tokens issued from a refresh token: %d before the access token expired, %d after list_notes, want more", before, after)
		}
	})
}
