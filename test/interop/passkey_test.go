package interop

import (
	"context"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/webauthn"
	"github.com/chromedp/chromedp"
)

// TestPasskey is passkeys end to end (issue 16 item 3) in headless
// Chromium with its DevTools virtual authenticator (CTAP2, internal,
// resident keys, user verification): on `gatehouse dev`'s localhost
// origin (WebAuthn refuses 127.0.0.1, so dev prints its account page on
// localhost) a user signs in with their password, adds a passkey on
// /account through the page's script, signs out, and signs in again with
// the passkey alone: no username typed.
func TestPasskey(t *testing.T) {
	if testing.Short() {
		t.Skip("starts gatehouse dev and Chromium: not in -short")
	}
	browser := newBrowser(t)
	d := startMCPDev(t, "dora", "dora-interop-pw")
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	m, err := d.proc.waitLine(ctx, regexp.MustCompile(`^\s*Account page:\s+(\S+)`))
	if err != nil {
		t.Fatalf("gatehouse dev printed no account page: %v\n%s", err, d.Output())
	}
	account := m[1]
	if !strings.HasPrefix(account, "http://localhost:") {
		t.Fatalf("dev's account page is %s, want it on http://localhost:PORT (passkeys need a domain)", account)
	}

	bctx, bcancel := context.WithTimeout(browser, time.Minute)
	defer bcancel()
	if _, err := chromedp.Call(bctx, webauthn.Enable, webauthn.EnableParams{}); err != nil {
		t.Fatalf("WebAuthn.enable: %v", err)
	}
	auth, err := chromedp.Call(bctx, webauthn.AddVirtualAuthenticator, webauthn.AddVirtualAuthenticatorParams{Options: &webauthn.VirtualAuthenticatorOptions{
		Protocol:                    webauthn.AuthenticatorProtocolCtap2,
		Ctap2version:                webauthn.Ctap2versionCtap21,
		Transport:                   webauthn.AuthenticatorTransportInternal,
		HasResidentKey:              true,
		HasUserVerification:         true,
		IsUserVerified:              true,
		AutomaticPresenceSimulation: true,
	}})
	if err != nil {
		t.Fatalf("WebAuthn.addVirtualAuthenticator: %v", err)
	}
	css := func(s string) chromedp.CSS { return chromedp.CSS(s) }
	fail := func(format string, args ...any) {
		t.Helper()
		body, _ := chromedp.Run(bctx, chromedp.Text(css("main")))
		t.Fatalf(format+"\n--- page ---\n%s\n--- gatehouse dev ---\n%s", append(args, body, d.Output())...)
	}

	// 1. Password sign-in on the localhost origin, then "Add a passkey".
	err = chromedp.Do(bctx,
		chromedp.Navigate(account),
		chromedp.WaitVisible(css("#login-form")),
		chromedp.SendKeys(css("#username"), d.Username),
		chromedp.SendKeys(css("#password"), d.Password),
		chromedp.Click(css("#login")),
		chromedp.WaitVisible(css("#passkeys-heading")))
	if err != nil {
		fail("sign in with the password on %s: %v", account, err)
	}
	err = chromedp.Do(bctx,
		chromedp.WaitVisible(css("#passkey-add-button")), // shown by the script: WebAuthn is there
		chromedp.SendKeys(css("#passkey-name"), "Chromium virtual key"),
		chromedp.Click(css("#passkey-add-button")),
		chromedp.WaitVisible(css("#notice")))
	if err != nil {
		fail("add a passkey: %v", err)
	}
	list, err := chromedp.Run(bctx, chromedp.Text(css("ul.passkeys")))
	if err != nil || !strings.Contains(list, "Chromium virtual key") {
		fail("the passkeys list = %q (%v), want the new passkey", list, err)
	}
	creds, err := chromedp.Call(bctx, webauthn.GetCredentials, webauthn.GetCredentialsParams(auth))
	if err != nil || len(creds.Credentials) != 1 || !creds.Credentials[0].IsResidentCredential || creds.Credentials[0].RpID != "localhost" {
		t.Fatalf("the virtual authenticator holds %+v (%v), want one resident credential for localhost", creds, err)
	}

	// 2. Sign out, and sign in with the passkey: no username.
	err = chromedp.Do(bctx,
		chromedp.Click(css("#signout")),
		chromedp.WaitNotPresent(css("#signout")), // the "Signed out" page
		chromedp.Navigate(account),
		chromedp.WaitVisible(css("#passkey-signin")),
		chromedp.Click(css("#passkey-signin")),
		chromedp.WaitVisible(css("#passkeys-heading")))
	if err != nil {
		fail("sign in with the passkey: %v", err)
	}
	who, err := chromedp.Run(bctx, chromedp.Text(css(".signed-in")))
	if err != nil || !strings.Contains(who, d.Username) {
		fail("after the passkey sign-in the page says %q (%v), want %s", who, err, d.Username)
	}
	creds, err = chromedp.Call(bctx, webauthn.GetCredentials, webauthn.GetCredentialsParams(auth))
	if err != nil || len(creds.Credentials) != 1 || creds.Credentials[0].SignCount < 1 {
		t.Errorf("after the sign-in the credential is %+v (%v), want its counter moved", creds, err)
	}
}
