package interop

import (
	"context"
	"fmt"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// inspectorWeb is a running `mcp-inspector --web`.
type inspectorWeb struct {
	URL  string // with its API token
	proc *proc
}

// startInspectorWeb runs MCP Inspector's web UI for the demo server on
// free loopback ports and returns the URL it prints (with its API token).
func startInspectorWeb(t *testing.T, d *mcpDev) *inspectorWeb {
	t.Helper()
	home := t.TempDir()
	cmd := exec.Command(nodeBin(t), inspectorBin(t), "--web", "--config", inspectorConfig(t, home, d), "--server", "demo")
	cmd.Dir = home
	cmd.Env = append(inspectorEnv(home),
		"CLIENT_PORT="+strconv.Itoa(freePort(t)),
		"MCP_SANDBOX_PORT="+strconv.Itoa(freePort(t)))
	p := startProc(t, "mcp-inspector --web", cmd)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	m, err := p.waitLine(ctx, regexp.MustCompile(`^\s*(http://127\.0\.0\.1:\d+/?\?MCP_INSPECTOR_API_TOKEN=\w+)`))
	if err != nil {
		t.Fatalf("the Inspector web UI did not start: %v", err)
	}
	return &inspectorWeb{URL: m[1], proc: p}
}

// waitJS polls a JavaScript expression in the tab until it is true.
func waitJS(ctx context.Context, what, expr string) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for {
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](expr))
		if err == nil && ok {
			return nil
		}
		select {
		case <-ctx.Done():
			text, _ := chromedp.Run(context.WithoutCancel(ctx), chromedp.Evaluate[string](`document.body ? document.body.innerText.slice(0, 800) : ''`))
			return fmt.Errorf("waiting for %s (%s): %v (last error %v); the page says: %s", what, expr, ctx.Err(), err, text)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// clickJS clicks the element an expression returns (Mantine hides the
// inputs of its switches and segmented controls, so a synthetic click is
// what reaches them).
func clickJS(ctx context.Context, what, expr string) error {
	ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`(() => { const e = `+expr+`; if (!e) return false; e.click(); return true })()`))
	if err != nil {
		return fmt.Errorf("click %s: %w", what, err)
	}
	if !ok {
		return fmt.Errorf("click %s: not on the page (%s)", what, expr)
	}
	return nil
}

// Inspector web UI selectors (2.12.0).
const (
	webConnected  = `document.querySelector('[data-testid=connection-status]')?.dataset.status === 'connected'`
	webToolsTab   = `[...document.querySelectorAll('input')].find(i => i.value === 'Tools')`
	webToolCount  = `Number(document.querySelector('[data-testid=tools-screen]')?.dataset.toolCount || 0)`
	webToolNames  = `[...document.querySelectorAll('button[data-variant=listItem]')].map(b => b.innerText.trim())`
	webCallStatus = `document.querySelector('[data-testid=tools-screen]')?.dataset.callStatus`
	webExecute    = `[...document.querySelectorAll('button')].find(b => b.innerText.trim() === 'Execute Tool')`
)

// webStepUpDialog is the Authorize button of the Inspector's "Additional
// permissions required" dialog.
const webStepUpDialog = `[...document.querySelectorAll('button')].find(b => b.innerText.trim() === 'Authorize')`

// webSelectTool shows a tool's form in the Tools tab.
func webSelectTool(ctx context.Context, name string) error {
	closeResults := `document.querySelector('button[aria-label="Close results"]')`
	if open, _ := chromedp.Run(ctx, chromedp.Evaluate[bool](`!!`+closeResults)); open {
		if err := clickJS(ctx, "Close results", closeResults); err != nil {
			return err
		}
	}
	if err := clickJS(ctx, "tool "+name, webTool(name)); err != nil {
		return err
	}
	return waitJS(ctx, "the tool form", webExecute+` !== undefined`)
}

// webField is the tool form's input of an argument (found by its label).
func webField(arg string) string {
	return `document.getElementById([...document.querySelectorAll('label')].find(l => l.innerText.trim().replace(/\s*\*$/, '') === ` + strconv.Quote(arg) + `)?.htmlFor || '-')`
}

// webFill types into the tool form's field of an argument.
func webFill(ctx context.Context, arg, value string) error {
	id, err := chromedp.Run(ctx, chromedp.Evaluate[string](webField(arg)+`?.id || ''`))
	if err != nil {
		return err
	}
	if id == "" {
		return fmt.Errorf("the tool form has no field %q", arg)
	}
	return chromedp.Do(ctx, chromedp.SendKeys(chromedp.CSS("#"+id), value))
}

// webTool is the list entry of a tool.
func webTool(name string) string {
	return `[...document.querySelectorAll('button[data-variant=listItem]')].find(b => b.innerText.trim() === ` + strconv.Quote(name) + `)`
}

// webRunTool selects a tool in the Tools tab, executes it and waits for
// the call to end; it returns the call status and the screen's text.
func webRunTool(ctx context.Context, name string) (status, text string, err error) {
	// After a call the screen shows its result: closing it brings back
	// the form (and the tool list's selection stays).
	closeResults := `document.querySelector('button[aria-label="Close results"]')`
	if open, _ := chromedp.Run(ctx, chromedp.Evaluate[bool](`!!`+closeResults)); open {
		if err := clickJS(ctx, "Close results", closeResults); err != nil {
			return "", "", err
		}
	}
	if err := clickJS(ctx, "tool "+name, webTool(name)); err != nil {
		return "", "", err
	}
	if err := waitJS(ctx, "the tool form", webExecute+` !== undefined`); err != nil {
		return "", "", err
	}
	if err := waitJS(ctx, "no call status", webCallStatus+` === 'idle'`); err != nil {
		return "", "", err
	}
	return webExecuteTool(ctx)
}

// webExecuteTool presses Execute Tool and waits for the call to end.
func webExecuteTool(ctx context.Context) (status, text string, err error) {
	if err := clickJS(ctx, "Execute Tool", webExecute); err != nil {
		return "", "", err
	}
	if err := waitJS(ctx, "the call to end", `['ok', 'error'].includes(`+webCallStatus+`)`); err != nil {
		return "", "", err
	}
	status, err = chromedp.Run(ctx, chromedp.Evaluate[string](webCallStatus))
	if err != nil {
		return "", "", err
	}
	text, err = chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector('[data-testid=tools-screen]').innerText`))
	return status, text, err
}

// testInspectorWeb drives MCP Inspector's web UI in headless Chromium as a
// person would: Connect, sign in on Gatehouse's pages in the same tab, the
// Tools tab, Execute Tool.
func testInspectorWeb(t *testing.T) {
	browser := newBrowser(t)
	d := startMCPDev(t, "alice", "correct horse battery staple", "--access-token-ttl", realClientTTL.String())
	web := startInspectorWeb(t, d)
	ctx, cancel := context.WithTimeout(browser, 3*time.Minute)
	defer cancel()

	step(t, "connect and sign in with notes:read in Chromium", func(t *testing.T) {
		if err := chromedp.Do(ctx, chromedp.Navigate(web.URL)); err != nil {
			t.Fatal(err)
		}
		if err := waitJS(ctx, "the Connect switch", `!!document.querySelector('input[aria-label^="Connect or disconnect"]')`); err != nil {
			t.Fatal(err)
		}
		if err := clickJS(ctx, "Connect", `document.querySelector('input[aria-label^="Connect or disconnect"]')`); err != nil {
			t.Fatal(err)
		}
		got, err := signInChromium(ctx, d.Issuer, d.Username, d.Password)
		if err != nil {
			t.Fatalf("Chromium, sign-in started by the Inspector: %v", err)
		}
		if !got.LoggedIn || !strings.Contains(got.ConsentText, "notes:read") || strings.Contains(got.ConsentText, "notes:write") {
			t.Errorf("sign-in: logged in %v, consent page %q, want the login page and notes:read, not notes:write, on the consent page", got.LoggedIn, got.ConsentText)
		}
		if err := waitJS(ctx, "the Inspector to connect", webConnected); err != nil {
			t.Fatal(err)
		}
	})
	var tools []string
	step(t, "list tools", func(t *testing.T) {
		if err := clickJS(ctx, "the Tools tab", webToolsTab); err != nil {
			t.Fatal(err)
		}
		if err := waitJS(ctx, "the tool list", webToolCount+` > 0`); err != nil {
			t.Fatal(err)
		}
		var err error
		if tools, err = chromedp.Run(ctx, chromedp.Evaluate[[]string](webToolNames)); err != nil {
			t.Fatal(err)
		}
		if !slices.Contains(tools, "list_notes") {
			t.Fatalf("Tools tab = %v, want list_notes", tools)
		}
	})
	step(t, "call list_notes", func(t *testing.T) {
		status, text, err := webRunTool(ctx, "list_notes")
		if err != nil || status != "ok" {
			t.Fatalf("Execute Tool list_notes = %q, %v; want ok. The screen says: %s", status, err, text)
		}
	})
	t.Run("add_note is listed", func(t *testing.T) {
		if !slices.Contains(tools, "add_note") {
			t.Fatalf("Tools tab for a notes:read token = %v, want add_note listed: %s", tools, stepUpPending)
		}
	})
	t.Run("call add_note from the list, stepped up to notes:write in Chromium", func(t *testing.T) {
		if !slices.Contains(tools, "add_note") {
			t.Fatalf("add_note is not in the Tools tab: %s", stepUpPending)
		}
		if err := webSelectTool(ctx, "add_note"); err != nil {
			t.Fatal(err)
		}
		if err := webFill(ctx, "title", "from the Inspector web UI"); err != nil {
			t.Fatal(err)
		}
		// Under load the Inspector sometimes shows the 403 as a failed call
		// ("Auth challenge: insufficient_scope") instead of its step-up
		// dialog; a person would press Execute Tool again, and so does the
		// test, once.
		for try := 1; ; try++ {
			if err := clickJS(ctx, "Execute Tool", webExecute); err != nil {
				t.Fatal(err)
			}
			if err := waitJS(ctx, "the step-up dialog or a failed call", webStepUpDialog+` !== undefined || `+webCallStatus+` === 'error'`); err != nil {
				t.Fatal(err)
			}
			if open, _ := chromedp.Run(ctx, chromedp.Evaluate[bool](webStepUpDialog+` !== undefined`)); open {
				break
			}
			text, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector('[data-testid=tools-screen]').innerText`))
			if try == 2 {
				t.Fatalf("add_note failed twice without the step-up dialog: %s", text)
			}
			t.Logf("add_note failed without the step-up dialog, pressing Execute Tool again: %s", text)
			if err := webSelectTool(ctx, "add_note"); err != nil {
				t.Fatal(err)
			}
		}
		dialog, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body.innerText`))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(dialog, "notes:write") {
			t.Errorf("step-up dialog = %q, want notes:write named", dialog)
		}
		if err := clickJS(ctx, "Authorize", webStepUpDialog); err != nil {
			t.Fatal(err)
		}
		got, err := signInChromium(ctx, d.Issuer, d.Username, d.Password)
		if err != nil {
			t.Fatalf("Chromium, step-up started by the Inspector: %v", err)
		}
		if got.LoggedIn || !strings.Contains(got.ConsentText, "notes:write") {
			t.Errorf("step-up sign-in: login page shown %v, consent page %q; want the session kept and notes:write asked for", got.LoggedIn, got.ConsentText)
		}
		if err := waitJS(ctx, "the Inspector to connect", webConnected); err != nil {
			t.Fatal(err)
		}
		// "Step-up authorization succeeded. Retry your action.": the form
		// is back; the test retries the call.
		if err := waitJS(ctx, "the add_note form after the step-up", webExecute+` !== undefined`); err != nil {
			t.Fatal(err)
		}
		if v, _ := chromedp.Run(ctx, chromedp.Evaluate[string](webField("title")+`?.value || ''`)); v == "" {
			if err := webFill(ctx, "title", "from the Inspector web UI"); err != nil {
				t.Fatal(err)
			}
		}
		status, text, err := webExecuteTool(ctx)
		if err != nil || status != "ok" {
			t.Fatalf("Execute Tool add_note after the step-up = %q, %v; want ok. The screen says: %s", status, err, text)
		}
	})
	step(t, "refresh after expiry", func(t *testing.T) {
		before := countRefreshes(t, d)
		waitTokenExpiry()
		status, text, err := webRunTool(ctx, "list_notes")
		if err != nil || status != "ok" {
			t.Fatalf("Execute Tool list_notes after expiry = %q, %v; want ok. The screen says: %s", status, err, text)
		}
		if after := countRefreshes(t, d); after <= before {
			t.Fatalf("tokens issued from a refresh token: %d before the access token expired, %d after list_notes, want more", before, after)
		}
	})
}
