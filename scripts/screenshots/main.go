// Command screenshots takes PNG screenshots of the sign-in, consent,
// error and account pages of a running `gatehouse dev`, and of the
// account page's Passkeys section on its localhost origin (a passkey
// added with Chromium's virtual authenticator), at 1200×900 in headless
// Chromium, for docs/screenshots. scripts/screenshots.sh starts a
// branded dev server in a temporary directory and runs it:
//
//	bash scripts/screenshots.sh            # rewrites docs/screenshots/*.png
//
// or, against a dev server you already run:
//
//	GATEHOUSE_DEV_PASSWORD=… go run ./scripts/screenshots -issuer http://127.0.0.1:8080 -out docs/screenshots
//
// It registers a realistic self-registered client through /register (a
// long name, a home page, three loopback redirect URIs) and asks for
// three scopes, since that is the consent page that must fit: the dev
// server must allow open registration (its default). The sign-in is never
// completed, so the only thing stored is that client, which the server
// deletes after registration.unused_ttl.
package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/chromedp/cdproto/webauthn"
	"github.com/chromedp/chromedp"
)

func main() {
	issuer := flag.String("issuer", "http://127.0.0.1:8080", "issuer of the running `gatehouse dev`")
	user := flag.String("user", "demo", "the demo user")
	out := flag.String("out", "docs/screenshots", "directory the PNG files are written to")
	chromium := flag.String("chromium", "", "Chromium binary (default: $GATEHOUSE_CHROMIUM, /usr/bin/chromium, /usr/bin/chromium-browser)")
	flag.Parse()
	password := os.Getenv("GATEHOUSE_DEV_PASSWORD")
	if password == "" {
		fmt.Fprintln(os.Stderr, "screenshots: set GATEHOUSE_DEV_PASSWORD to the demo user's password")
		os.Exit(2)
	}
	if err := run(*issuer, *user, password, *out, *chromium); err != nil {
		fmt.Fprintln(os.Stderr, "screenshots:", err)
		os.Exit(1)
	}
}

func run(issuer, user, password, out, chromium string) error {
	if chromium == "" {
		chromium = findChromium()
	}
	if chromium == "" {
		return errors.New("no Chromium found: install Debian's chromium or pass -chromium")
	}
	var meta struct {
		AuthorizationEndpoint string `json:"authorization_endpoint"`
		RegistrationEndpoint  string `json:"registration_endpoint"`
	}
	if err := getJSON(issuer+"/.well-known/oauth-authorization-server", &meta); err != nil {
		return fmt.Errorf("metadata: %w", err)
	}
	if meta.RegistrationEndpoint == "" {
		return errors.New("the server does not offer /register: run it with open registration (the dev default)")
	}
	redirects := []string{"http://127.0.0.1:33418/oauth/callback", "http://localhost:33418/oauth/callback", "http://[::1]:33418/oauth/callback"}
	clientID, err := register(meta.RegistrationEndpoint, map[string]any{
		"client_name":                "Acme Research Assistant for Enterprise Knowledge (desktop)",
		"client_uri":                 "https://assistant.acme-research.example/desktop",
		"redirect_uris":              redirects,
		"token_endpoint_auth_method": "none",
		"grant_types":                []string{"authorization_code", "refresh_token"},
		"response_types":             []string{"code"},
	})
	if err != nil {
		return fmt.Errorf("register: %w", err)
	}
	authorize := func(redirectURI string) string {
		verifier := rand.Text() + rand.Text()
		sum := sha256.Sum256([]byte(verifier))
		return meta.AuthorizationEndpoint + "?" + url.Values{
			"response_type": {"code"}, "client_id": {clientID}, "redirect_uri": {redirectURI},
			"scope": {"notes:read notes:write offline_access"}, "state": {rand.Text()},
			"code_challenge": {base64.RawURLEncoding.EncodeToString(sum[:])}, "code_challenge_method": {"S256"},
		}.Encode()
	}

	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("hide-scrollbars", true),
		chromedp.Flag("force-color-profile", "srgb"),
	)
	dir, err := os.MkdirTemp("", "gatehouse-screenshots-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	opts = append(opts, chromedp.UserDataDir(dir))
	actx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancel()
	ctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	ctx, cancel = context.WithTimeout(ctx, 60*time.Second)
	defer cancel()

	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	shot := func(name string) error {
		png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		path := filepath.Join(out, name+".png")
		if err := os.WriteFile(path, png, 0o644); err != nil {
			return err
		}
		fmt.Printf("wrote %s (%d bytes)\n", path, len(png))
		return nil
	}
	css := func(s string) chromedp.CSS { return chromedp.CSS(s) }
	if err := chromedp.Do(ctx,
		chromedp.EmulateViewport(1200, 900),
		chromedp.Navigate(authorize(redirects[0])),
		chromedp.WaitVisible(css("#login-form")),
	); err != nil {
		return fmt.Errorf("sign-in page: %w", err)
	}
	if err := shot("login"); err != nil {
		return err
	}
	if err := chromedp.Do(ctx,
		chromedp.SendKeys(css("#username"), user),
		chromedp.SendKeys(css("#password"), password),
		chromedp.Click(css("#login")),
		chromedp.WaitVisible(css("#consent-form")),
	); err != nil {
		return fmt.Errorf("consent page (is %q the demo user, with that password?): %w", user, err)
	}
	if err := shot("consent"); err != nil {
		return err
	}
	// Allow, so that the client is connected to the account. The browser
	// then fails to reach the redirect URI (nothing listens there), which
	// does not matter: the consent is remembered.
	if err := chromedp.Do(ctx, chromedp.Click(css("#allow")), chromedp.WaitNotPresent(css("#consent-form"))); err != nil {
		return fmt.Errorf("allow: %w", err)
	}
	// A redirect URI the client did not register: the page the user sees
	// instead of being sent anywhere, with "For developers" opened.
	if err := chromedp.Do(ctx,
		chromedp.Navigate(authorize("http://127.0.0.1:33418/elsewhere")),
		chromedp.WaitVisible(css("details.developer")),
		chromedp.Click(css("details.developer summary")),
	); err != nil {
		return fmt.Errorf("error page: %w", err)
	}
	if err := shot("error"); err != nil {
		return err
	}
	// The account page, in the session of the sign-in above, with the
	// client just allowed.
	if err := chromedp.Do(ctx,
		chromedp.Navigate(issuer+"/account"),
		chromedp.WaitVisible(css("#agents-heading")),
	); err != nil {
		return fmt.Errorf("account page: %w", err)
	}
	if err := shot("account"); err != nil {
		return err
	}
	return passkeyShot(ctx, issuer, user, password, shot)
}

// passkeyShot adds a passkey with Chromium's virtual authenticator on
// dev's localhost origin (WebAuthn refuses 127.0.0.1, and the pages offer
// passkeys only on the passkey origin) and shoots the account page's
// Passkeys section as passkeys.png.
func passkeyShot(ctx context.Context, issuer, user, password string, shot func(string) error) error {
	u, err := url.Parse(issuer)
	if err != nil {
		return err
	}
	account := "http://localhost:" + u.Port() + "/account"
	if _, err := chromedp.Call(ctx, webauthn.Enable, webauthn.EnableParams{}); err != nil {
		return fmt.Errorf("WebAuthn.enable: %w", err)
	}
	if _, err := chromedp.Call(ctx, webauthn.AddVirtualAuthenticator, webauthn.AddVirtualAuthenticatorParams{Options: &webauthn.VirtualAuthenticatorOptions{
		Protocol: webauthn.AuthenticatorProtocolCtap2, Ctap2version: webauthn.Ctap2versionCtap21, Transport: webauthn.AuthenticatorTransportInternal,
		HasResidentKey: true, HasUserVerification: true, IsUserVerified: true, AutomaticPresenceSimulation: true,
	}}); err != nil {
		return fmt.Errorf("WebAuthn.addVirtualAuthenticator: %w", err)
	}
	css := func(s string) chromedp.CSS { return chromedp.CSS(s) }
	if err := chromedp.Do(ctx,
		chromedp.Navigate(account),
		chromedp.WaitVisible(css("#login-form")),
		chromedp.SendKeys(css("#username"), user),
		chromedp.SendKeys(css("#password"), password),
		chromedp.Click(css("#login")),
		chromedp.WaitVisible(css("#passkey-add-button")),
		chromedp.SendKeys(css("#passkey-name"), "Work laptop"),
		chromedp.Click(css("#passkey-add-button")),
		chromedp.WaitVisible(css("ul.passkeys")),
	); err != nil {
		return fmt.Errorf("passkeys on %s: %w", account, err)
	}
	// The section at the top of the window.
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.getElementById('passkeys-heading').parentElement.scrollIntoView({block: 'start'}), true`)); err != nil {
		return fmt.Errorf("scroll to the passkeys: %w", err)
	}
	return shot("passkeys")
}

func findChromium() string {
	for _, p := range []string{os.Getenv("GATEHOUSE_CHROMIUM"), "/usr/bin/chromium", "/usr/bin/chromium-browser"} {
		if p == "" {
			continue
		}
		if path, err := exec.LookPath(p); err == nil {
			return path
		}
	}
	return ""
}

func getJSON(u string, v any) error {
	resp, err := http.Get(u)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

func register(endpoint string, md map[string]any) (string, error) {
	body, _ := json.Marshal(md)
	resp, err := http.Post(endpoint, "application/json", bytes.NewReader(body))
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusCreated {
		return "", fmt.Errorf("%s: %s", resp.Status, b)
	}
	var r struct {
		ClientID string `json:"client_id"`
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return "", err
	}
	return r.ClientID, nil
}
