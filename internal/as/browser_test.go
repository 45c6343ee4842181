package as

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/gatehouse-mcp/gatehouse/internal/storage"
)

// chromiumPath finds Debian's chromium. Without it the browser tests skip
// locally and fail under CI=true, where scripts/test.sh installs it.
func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, p := range []string{os.Getenv("GATEHOUSE_CHROMIUM"), "/usr/bin/chromium", "/usr/bin/chromium-browser"} {
		if p == "" {
			continue
		}
		if _, err := exec.LookPath(p); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("chromium not found: CI must install Debian's chromium (scripts/test.sh does)")
	}
	t.Skip("chromium not found; install Debian's chromium to run the browser tests")
	return ""
}

// newChrome starts a headless Chromium with the flags this sandbox needs
// (no background networking: the machine has no internet).
func newChrome(t *testing.T) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath(t)),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-quic", true),
		chromedp.UserDataDir(t.TempDir()),
	)
	actx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancel)
	ctx, cancel2 := chromedp.NewContext(actx)
	t.Cleanup(cancel2)
	ctx, cancel3 := context.WithTimeout(ctx, 60*time.Second)
	t.Cleanup(cancel3)
	return ctx
}

// callbackServer stands in for the client's loopback redirect listener.
func callbackServer(t *testing.T) (string, <-chan url.Values) {
	got := make(chan url.Values, 4)
	cb := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/callback" {
			http.NotFound(w, r) // the browser also asks for /favicon.ico
			return
		}
		got <- r.URL.Query()
		w.Write([]byte("<!doctype html><title>done</title><p id=done>You can close this window.</p>"))
	}))
	t.Cleanup(cb.Close)
	return cb.URL + "/callback", got
}

// TestBrowserLoginConsent drives the login and consent pages in headless
// Chromium: a wrong password, a refused consent, then a granted one whose
// code redeems for tokens. It proves the pages work without JavaScript
// under the strict CSP, and that the consent POST's cross-origin redirect
// is not blocked (no form-action in the CSP).
func TestBrowserLoginConsent(t *testing.T) {
	ctx := newChrome(t)
	ts := newTestServer(t, nil)
	redirect, got := callbackServer(t)
	a := defaultAuth()
	a.redirectURI = redirect

	css := func(s string) chromedp.CSS { return chromedp.CSS(s) }
	err := chromedp.Do(ctx,
		chromedp.Navigate(a.url(ts.URL)),
		chromedp.WaitVisible(css("#login-form")),
		chromedp.SendKeys(css("#username"), testUser),
		chromedp.SendKeys(css("#password"), "wrong password"),
		chromedp.Click(css("#login")),
		chromedp.WaitVisible(css("#login-error")),
	)
	if err != nil {
		t.Fatalf("browser: %v", err)
	}
	errText, err := chromedp.Run(ctx, chromedp.Text(css("#login-error")))
	if err != nil {
		t.Fatal(err)
	}
	err = chromedp.Do(ctx,
		chromedp.SetValue(css("#password"), testPassword),
		chromedp.Click(css("#login")),
		chromedp.WaitVisible(css("#consent-form")),
	)
	if err != nil {
		t.Fatalf("browser: %v", err)
	}
	consentText, err := chromedp.Run(ctx, chromedp.Text(css("main")))
	if err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(ctx, chromedp.Click(css("#deny")), chromedp.WaitVisible(css("#done"))); err != nil {
		t.Fatalf("browser: %v", err)
	}
	if errText != msgBadLogin {
		t.Errorf("login error = %q, want %q", errText, msgBadLogin)
	}
	u, _ := url.Parse(redirect)
	for _, want := range []string{"Public App", u.Host, "notes:read", "Read notes"} {
		if !strings.Contains(consentText, want) {
			t.Errorf("consent page text lacks %q", want)
		}
	}
	q := <-got
	if q.Get("error") != "access_denied" || q.Get("iss") != ts.URL || q.Get("state") != a.state {
		t.Fatalf("deny redirect = %v, want access_denied with iss and state", q)
	}

	// The session is kept: a second authorization goes straight to consent.
	err = chromedp.Do(ctx,
		chromedp.Navigate(a.url(ts.URL)),
		chromedp.WaitVisible(css("#consent-form")),
		chromedp.Click(css("#allow")),
		chromedp.WaitVisible(css("#done")),
	)
	if err != nil {
		t.Fatalf("browser: %v", err)
	}
	q = <-got
	if q.Get("code") == "" || q.Get("iss") != ts.URL {
		t.Fatalf("allow redirect = %v, want a code and iss", q)
	}
	v := exchange(q.Get("code"))
	v.Set("redirect_uri", redirect)
	if s, _, body := ts.post(t, "/token", v, "", ""); s != 200 {
		t.Fatalf("code from the browser flow = %d %s", s, body)
	}
}

// A realistic self-registered client for the fold test: a long name, a
// home page and several loopback redirect URIs (so both the "registered
// itself" and the "this computer" warnings show), asking for several
// scopes of a resource whose scopes each unlock tools.
const (
	foldClientName = "Acme Research Assistant for Enterprise Knowledge Bases (desktop, beta 2026.11)"
	foldResource   = "https://knowledge-base.mcp.acme-research.example.com/mcp"
	foldScope      = "kb:read kb:write kb:admin tickets:read offline_access"
)

var foldRedirects = []string{
	"http://localhost:6274/oauth/callback",
	"http://localhost:6274/oauth/callback/debug",
	"http://127.0.0.1/callback",
	"http://[::1]/callback",
}

// seedFoldResource stores the resource of the fold test, with extra more
// scopes named extra:1, extra:2… besides its four.
func seedFoldResource(t *testing.T, ts *testServer, extra int) {
	t.Helper()
	now := ts.Clock.Now()
	scopes := []storage.Scope{
		{Name: "kb:read", Description: "Search and read every article in the knowledge base", Tools: []string{"search_articles", "read_article", "list_collections"}},
		{Name: "kb:write", Description: "Create, edit and publish articles in your name", Tools: []string{"create_article", "update_article", "publish_article"}},
		{Name: "kb:admin", Description: "Manage collections and who may see them", Tools: []string{"create_collection", "share_collection", "delete_collection"}},
		{Name: "tickets:read", Description: "Read support tickets linked to articles", Tools: []string{"list_tickets", "read_ticket"}},
	}
	for i := 1; i <= extra; i++ {
		scopes = append(scopes, storage.Scope{Name: fmt.Sprintf("extra:%d", i), Description: "Another permission with a description of a realistic length", Tools: []string{"some_tool", "another_tool"}})
	}
	must(t, ts.Store.PutResource(t.Context(), storage.Resource{URL: foldResource, Name: "Acme knowledge base", Scopes: scopes, CreatedAt: now, UpdatedAt: now}))
}

// registerFoldClient registers the fold test's client through /register.
func registerFoldClient(t *testing.T, ts *testServer) string {
	t.Helper()
	body, _ := json.Marshal(map[string]any{
		"client_name": foldClientName, "client_uri": "https://assistant.acme-research.example.com/desktop",
		"redirect_uris": foldRedirects, "token_endpoint_auth_method": "none",
		"grant_types": []string{"authorization_code", "refresh_token"}, "response_types": []string{"code"},
	})
	return ts.mustRegister(t, string(body)).str("client_id")
}

// TestBrowserConsentAboveFold: on a 1200×900 window, the Allow and Deny
// buttons of the consent page of a self-registered client (registered
// through /register, or identified by a metadata document), and the host
// the browser will be sent to, are on screen without scrolling; with far
// more scopes than fit, too (the decision sticks to the window's bottom).
func TestBrowserConsentAboveFold(t *testing.T) {
	chromiumPath(t)
	tests := []struct {
		name  string
		setup func(t *testing.T) (*testServer, string)
		scope string
	}{
		{"dynamic registration", func(t *testing.T) (*testServer, string) {
			ts := newTestServer(t, openRegistration(nil))
			seedFoldResource(t, ts, 0)
			return ts, registerFoldClient(t, ts)
		}, foldScope},
		{"metadata document", func(t *testing.T) (*testServer, string) {
			d := newDocServer(t)
			const path = "/oauth/acme-research-assistant/client-metadata.json"
			d.set(path, docResponse{body: d.doc(path, map[string]any{"client_name": foldClientName, "redirect_uris": foldRedirects, "client_uri": d.URL + "/desktop"})})
			ts := newTestServer(t, cimdOptions(d, nil))
			seedFoldResource(t, ts, 0)
			return ts, d.URL + path
		}, foldScope},
		{"twenty scopes", func(t *testing.T) (*testServer, string) {
			ts := newTestServer(t, openRegistration(nil))
			seedFoldResource(t, ts, 16)
			return ts, registerFoldClient(t, ts)
		}, foldScope + " extra:1 extra:2 extra:3 extra:4 extra:5 extra:6 extra:7 extra:8 extra:9 extra:10 extra:11 extra:12 extra:13 extra:14 extra:15 extra:16"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts, clientID := tt.setup(t)
			a := authRequest{clientID: clientID, redirectURI: foldRedirects[0], scope: tt.scope, resource: foldResource, state: "st-f", verifier: testVerifier}
			ctx := newChrome(t)
			css := func(s string) chromedp.CSS { return chromedp.CSS(s) }
			err := chromedp.Do(ctx,
				chromedp.EmulateViewport(1200, 900),
				chromedp.Navigate(a.url(ts.URL)),
				chromedp.WaitVisible(css("#login-form")),
				chromedp.SendKeys(css("#username"), testUser),
				chromedp.SendKeys(css("#password"), testPassword),
				chromedp.Click(css("#login")),
				chromedp.WaitVisible(css("#consent-form")),
			)
			if err != nil {
				t.Fatalf("browser: %v", err)
			}
			// The bottom edge of each button and the window's height, in CSS
			// pixels, with the page scrolled to its top.
			m, err := chromedp.Run(ctx, chromedp.Evaluate[map[string]float64](`({
				allow: document.querySelector("#allow").getBoundingClientRect().bottom + window.scrollY,
				deny: document.querySelector("#deny").getBoundingClientRect().bottom + window.scrollY,
				host: document.querySelector(".redirect-host").getBoundingClientRect().bottom + window.scrollY,
				viewport: window.innerHeight,
				page: document.documentElement.scrollHeight,
			})`))
			if err != nil {
				t.Fatalf("measure: %v", err)
			}
			allow, deny, host, viewport := m["allow"], m["deny"], m["host"], m["viewport"]
			t.Logf("consent page at 1200×900: %vpx tall; Allow ends at %vpx, Deny at %vpx", m["page"], allow, deny)
			if dir := os.Getenv("GATEHOUSE_FOLD_SCREENSHOT_DIR"); dir != "" {
				png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
				must(t, err)
				must(t, os.WriteFile(filepath.Join(dir, strings.ReplaceAll(t.Name(), "/", "_")+".png"), png, 0o644))
			}
			if viewport != 900 {
				t.Fatalf("window.innerHeight = %v, want 900", viewport)
			}
			if allow <= 0 || allow > viewport || deny <= 0 || deny > viewport {
				t.Errorf("consent page at 1200×900: Allow ends at %vpx, Deny at %vpx; want both within %vpx", allow, deny, viewport)
			}
			if host <= 0 || host > viewport {
				t.Errorf("consent page at 1200×900: the redirect host ends at %vpx; want it within %vpx, next to Allow", host, viewport)
			}
		})
	}
}
