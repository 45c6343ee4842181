package interop

import (
	"context"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// authorizeLine is the authorization URL a CLI client prints for the user.
var authorizeLine = regexp.MustCompile(`(http://127\.0\.0\.1:\d+/authorize\?\S+)`)

// testMCPRemote runs mcp-remote as Claude Desktop does: a stdio MCP server
// (this test speaks MCP JSON-RPC to its stdin and stdout, through the Go
// SDK's CommandTransport) bridging to the demo's Streamable HTTP endpoint.
// It prints the authorization URL on standard error and waits on its
// loopback callback; the test completes the URL in headless Chromium.
func testMCPRemote(t *testing.T) {
	node := nodeBin(t)
	bin := npmPackageBin(t, realClientsDir(t), "mcp-remote", "mcp-remote")
	browser := newBrowser(t)
	d := startMCPDev(t, "alice", "correct horse battery staple", "--access-token-ttl", realClientTTL.String())

	cmd := exec.Command(node, bin, d.MCPURL, strconv.Itoa(freePort(t)), "--host", "127.0.0.1")
	// BROWSER=true: the opener it tries (xdg-open) runs `true URL` instead
	// of a desktop browser; the test is the user.
	cmd.Env = append(os.Environ(), "MCP_REMOTE_CONFIG_DIR="+t.TempDir(), "HOME="+t.TempDir(), "BROWSER=true")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stderr, w := watchOutput(t, "mcp-remote (standard error)")
	cmd.Stderr = w
	t.Cleanup(func() {
		if cmd.Process != nil {
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		}
	})

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	client := mcp.NewClient(&mcp.Implementation{Name: "gatehouse-realclients", Version: "1"}, nil)
	var session *mcp.ClientSession

	// completeAuthorization waits for the next authorization URL
	// mcp-remote prints after line n and completes it in Chromium.
	completeAuthorization := func(t *testing.T, n int) signIn {
		t.Helper()
		m, _, err := stderr.waitLineAfter(ctx, n, authorizeLine)
		if err != nil {
			t.Fatal(err)
		}
		got, err := authorizeInChromium(browser, d, m[1])
		if err != nil {
			t.Fatalf("Chromium, authorization URL printed by mcp-remote: %v", err)
		}
		return got
	}

	step(t, "sign in with notes:read in Chromium", func(t *testing.T) {
		done := make(chan error, 1)
		go func() {
			var err error
			session, err = client.Connect(ctx, &mcp.CommandTransport{Command: cmd}, nil)
			done <- err
		}()
		got := completeAuthorization(t, 0)
		if !got.LoggedIn || !strings.Contains(got.ConsentText, "notes:read") || strings.Contains(got.ConsentText, "notes:write") {
			t.Errorf("sign-in: logged in %v, consent page %q, want the login page and notes:read, not notes:write, on the consent page", got.LoggedIn, got.ConsentText)
		}
		if err := <-done; err != nil {
			t.Fatalf("initialize through mcp-remote: %v", err)
		}
	})
	t.Cleanup(func() { session.Close() })

	var tools []string
	step(t, "list tools", func(t *testing.T) {
		res, err := session.ListTools(ctx, nil)
		if err != nil {
			t.Fatalf("tools/list: %v", err)
		}
		for _, tool := range res.Tools {
			tools = append(tools, tool.Name)
		}
		if !slices.Contains(tools, "list_notes") {
			t.Fatalf("tools/list = %v, want list_notes", tools)
		}
	})
	step(t, "call list_notes", func(t *testing.T) { callTool(ctx, t, session, "list_notes", nil) })
	// Not a step that ends the session: the step-up below is tried either
	// way, so its result shows whether the rest works.
	t.Run("add_note is listed", func(t *testing.T) {
		if !slices.Contains(tools, "add_note") {
			t.Fatalf("tools/list for a notes:read token = %v, want add_note listed: %s", tools, stepUpPending)
		}
	})
	step(t, "call add_note, stepped up to notes:write in Chromium", func(t *testing.T) {
		n := stderr.lineCount()
		type result struct {
			res *mcp.CallToolResult
			err error
		}
		done := make(chan result, 1)
		go func() {
			res, err := session.CallTool(ctx, &mcp.CallToolParams{Name: "add_note", Arguments: map[string]any{"title": "from mcp-remote", "text": "stepped up"}})
			done <- result{res, err}
		}()
		got := completeAuthorization(t, n)
		if !strings.Contains(got.ConsentText, "notes:write") {
			t.Errorf("step-up consent page = %q, want notes:write asked for", got.ConsentText)
		}
		r := <-done
		switch {
		case r.err != nil:
			t.Fatalf("tools/call add_note: %v", r.err)
		case r.res.IsError:
			t.Fatalf("tools/call add_note: tool error %s", toolText(r.res))
		}
	})
	step(t, "refresh after expiry", func(t *testing.T) {
		before := countRefreshes(t, d)
		waitTokenExpiry()
		callTool(ctx, t, session, "list_notes", nil)
		if after := countRefreshes(t, d); after <= before {
			t.Fatalf("tokens issued from a refresh token: %d before the access token expired, %d after list_notes, want more", before, after)
		}
	})
}

// callTool calls a tool and fails the test when the call or the tool
// fails; it returns the result.
func callTool(ctx context.Context, t *testing.T, s *mcp.ClientSession, name string, args map[string]any) *mcp.CallToolResult {
	t.Helper()
	if args == nil {
		args = map[string]any{}
	}
	res, err := s.CallTool(ctx, &mcp.CallToolParams{Name: name, Arguments: args})
	if err != nil {
		t.Fatalf("tools/call %s: %v", name, err)
	}
	if res.IsError {
		t.Fatalf("tools/call %s: tool error %s", name, toolText(res))
	}
	return res
}

// toolText is the text content of a tool result.
func toolText(res *mcp.CallToolResult) string {
	var b strings.Builder
	for _, c := range res.Content {
		if tc, ok := c.(*mcp.TextContent); ok {
			b.WriteString(tc.Text)
		}
	}
	return b.String()
}
