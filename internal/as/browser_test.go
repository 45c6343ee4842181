package as

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
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
