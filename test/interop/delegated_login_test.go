package interop

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	jose "github.com/go-jose/go-jose/v4"
	"github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/modelcontextprotocol/go-sdk/oauthex"
)

// TestDelegatedLogin runs examples/saaslogin, a SaaS with its own users
// and login form, as a separate process next to `gatehouse dev --delegate`
// (issue 14 item 2). A headless Chromium carries the authorization of an
// MCP client (the official Go SDK's OAuth client, with the pre-registered
// demo client): Gatehouse's login page ("Continue with saas"), the SaaS's
// own form (user and password typed in, its button clicked), Gatehouse's
// consent page, and the client's loopback callback; the client then calls
// list_notes. Gatehouse must have provisioned one user for the SaaS's
// subject, which a second sign-in in a new browser reuses.
//
// The refusals run in Chromium too, because the browser is what a
// challenge is bound to (its sealed cookie): the assertion replayed in the
// browser that used it (Back, reload); an assertion forged with another
// key under the SaaS's kid, and one signed by the SaaS's own key but
// expired, each for the login_challenge of the browser's own pending
// sign-in and opened in that browser (an attacker holding both: the
// browser adds nothing to how they are made, so the test signs them in
// Go); and the SaaS's form tampered with to sign in for another
// challenge. Each ends on Gatehouse's error page with HTTP 400 and no
// user. Each step is a named subtest; without Chromium the test skips,
// and under CI=true fails.
func TestDelegatedLogin(t *testing.T) {
	if testing.Short() {
		t.Skip("starts examples/saaslogin, Chromium and gatehouse dev: not in -short")
	}
	interopChromium(t)
	root := findModuleRoot(t)
	dir := t.TempDir()
	saasBin := filepath.Join(dir, "saaslogin")
	build := exec.Command("go", "build", "-o", saasBin, "./examples/saaslogin")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./examples/saaslogin: %v\n%s", err, out)
	}
	keyFile, pubFile := filepath.Join(dir, "saas.key"), filepath.Join(dir, "saas.pub")
	if out, err := exec.Command(saasBin, "genkey", "-key", keyFile, "-pub", pubFile).CombinedOutput(); err != nil {
		t.Fatalf("saaslogin genkey: %v\n%s", err, out)
	}
	saasAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	saasURL := "http://" + saasAddr
	d := startMCPDev(t, "demo", "demo-interop-pw", "--delegate", "saas,"+saasURL+"/login,"+pubFile)
	saas := startProc(t, "saaslogin", exec.Command(saasBin, "serve", "-listen", saasAddr, "-key", keyFile, "-gatehouse", d.Issuer, "-id", "saas"))
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	if _, err := saas.waitLine(ctx, regexp.MustCompile(`saaslogin: listening`)); err != nil {
		t.Fatalf("saaslogin did not start: %v\n%s", err, saas.output())
	}
	callback := startCallback(t)
	const aliceName = "oidc:delegate:saas:u-1001"
	var sessions []*mcp.ClientSession
	t.Cleanup(func() {
		for _, cs := range sessions {
			cs.Close()
		}
	})

	// connect runs the Go SDK's MCP client; its authorization goes through
	// browser (a profile of its own) and the SaaS's form as user.
	connect := func(t *testing.T, browser context.Context, user, password string) (*mcp.ClientSession, delegatedTrip) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		var trip delegatedTrip
		handler, err := auth.NewAuthorizationCodeHandler(&auth.AuthorizationCodeHandlerConfig{
			PreregisteredClient: &oauthex.ClientCredentials{ClientID: "gatehouse-demo", Issuer: d.Issuer},
			RedirectURL:         callback,
			Client:              &http.Client{Transport: noProxyClient().Transport, Timeout: 30 * time.Second},
			AuthorizationCodeFetcher: func(_ context.Context, args *auth.AuthorizationArgs) (*auth.AuthorizationResult, error) {
				var err error
				trip, err = signInDelegated(browser, args.URL, d.Issuer, saasURL, callback, delegatedSignIn{User: user, Password: password})
				if err != nil {
					return nil, err
				}
				if trip.Landed == "" {
					return nil, fmt.Errorf("the authorization ended on an error page (pages %v, HTTP %d): %s: %s (%s)", trip.Pages, trip.End.Status, trip.End.Title, trip.End.Text, trip.End.Detail)
				}
				u, err := url.Parse(trip.Landed)
				if err != nil {
					return nil, err
				}
				q := u.Query()
				if e := q.Get("error"); e != "" {
					return nil, fmt.Errorf("authorization error %s: %s", e, q.Get("error_description"))
				}
				return &auth.AuthorizationResult{Code: q.Get("code"), State: q.Get("state"), Iss: q.Get("iss")}, nil
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		client := mcp.NewClient(&mcp.Implementation{Name: "gatehouse-interop-delegated", Version: "1"}, nil)
		cs, err := client.Connect(ctx, &mcp.StreamableClientTransport{
			Endpoint:     d.MCPURL,
			HTTPClient:   &http.Client{Transport: noProxyClient().Transport},
			OAuthHandler: handler,
		}, nil)
		if err != nil {
			t.Fatalf("Connect(%s) through the SaaS's login = %v (pages %v)\n%s", d.MCPURL, err, trip.Pages, saas.output())
		}
		sessions = append(sessions, cs)
		return cs, trip
	}
	saasUsers := func(t *testing.T) string {
		t.Helper()
		users := d.run(t, "user", "list")
		if n := strings.Count(users, "oidc:delegate:saas:"); n != 1 || !strings.Contains(users, aliceName) {
			t.Errorf("gatehouse user list shows %d users of the SaaS, want alice's (%s) alone:\n%s", n, aliceName, users)
		}
		return users
	}
	wantPages := []string{"gatehouse-login", "saas-login", "gatehouse-consent"}

	browser := newBrowser(t)
	var first delegatedTrip
	var cs *mcp.ClientSession
	step(t, "MCP client authorizes through the SaaS's login page in Chromium", func(t *testing.T) {
		cs, first = connect(t, browser, "alice", "alice-password")
		if strings.Join(first.Pages, " ") != strings.Join(wantPages, " ") {
			t.Errorf("pages = %v, want %v", first.Pages, wantPages)
		}
		if !strings.Contains(first.LoginText, "Continue with saas") {
			t.Errorf("Gatehouse's login page = %q, want a Continue with saas button", first.LoginText)
		}
		if !strings.HasPrefix(first.Assertion, d.Issuer+"/login/delegate/callback?assertion=") {
			t.Errorf("the SaaS sent the browser to %q, want Gatehouse's delegate callback with an assertion", first.Assertion)
		}
	})
	step(t, "MCP client calls list_notes", func(t *testing.T) {
		res, err := cs.CallTool(t.Context(), &mcp.CallToolParams{Name: "list_notes"})
		if err != nil || res.IsError {
			t.Fatalf("tools/call list_notes = %+v, %v", res, err)
		}
	})
	step(t, "Gatehouse provisioned the SaaS user", func(t *testing.T) { saasUsers(t) })
	t.Run("replayed assertion refused", func(t *testing.T) {
		// The browser that used the assertion opens it again (Back, or
		// a reload of the callback).
		got, err := openPage(browser, first.Assertion)
		if err != nil {
			t.Fatal(err)
		}
		if got.Status != http.StatusBadRequest || !strings.Contains(got.Text, "already used") {
			t.Errorf("replayed assertion: HTTP %d %q: %s; want 400 saying it was already used", got.Status, got.Title, got.Text)
		}
	})
	step(t, "second sign-in in a new browser reuses the user", func(t *testing.T) {
		cs2, trip := connect(t, newBrowser(t), "alice", "alice-password")
		// No consent page: the first sign-in's consent belongs to the same
		// Gatehouse user and covers the request.
		if want := wantPages[:2]; strings.Join(trip.Pages, " ") != strings.Join(want, " ") {
			t.Errorf("pages = %v, want %v (the consent remembered)", trip.Pages, want)
		}
		if res, err := cs2.CallTool(t.Context(), &mcp.CallToolParams{Name: "list_notes"}); err != nil || res.IsError {
			t.Fatalf("tools/call list_notes = %+v, %v", res, err)
		}
		saasUsers(t)
	})

	// The refusals, in a browser with no session: each starts a sign-in of
	// its own (a login_challenge sealed in this browser's cookie).
	refusals := newBrowser(t)
	authURL := authorizeURL(d.Issuer, "gatehouse-demo", callback, d.MCPURL, "notes:read")
	realKey := readECKey(t, keyFile)
	kid := thumbprint(t, &realKey.PublicKey)
	forger, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		key  *ecdsa.PrivateKey
		age  time.Duration
		want string
	}{
		{"forged assertion refused", forger, 0, "signature does not verify"},
		{"expired assertion refused", realKey, 10 * time.Minute, "the assertion has expired"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			trip, err := signInDelegated(refusals, authURL, d.Issuer, saasURL, callback, delegatedSignIn{StopAtSaaS: true})
			if err != nil {
				t.Fatal(err)
			}
			// The assertion's times are the SaaS's clock: the real one, as
			// gatehouse dev's.
			now := time.Now().Add(-tt.age)
			a := signES256(t, tt.key, kid, map[string]any{"iss": "saas", "aud": d.Issuer, "login_challenge": trip.Challenge, "sub": "u-1001",
				"iat": now.Unix(), "exp": now.Add(2 * time.Minute).Unix()})
			got, err := openPage(refusals, d.Issuer+"/login/delegate/callback?assertion="+url.QueryEscape(a))
			if err != nil {
				t.Fatal(err)
			}
			if got.Status != http.StatusBadRequest || !strings.Contains(got.Detail, tt.want) {
				t.Errorf("HTTP %d %q: %s (for developers: %s); want 400 saying %q", got.Status, got.Title, got.Text, got.Detail, tt.want)
			}
		})
	}
	t.Run("wrong challenge refused", func(t *testing.T) {
		// The SaaS's form tampered with: it signs bob in for a challenge
		// that is not this browser's.
		trip, err := signInDelegated(refusals, authURL, d.Issuer, saasURL, callback, delegatedSignIn{User: "bob", Password: "bob-password", Challenge: rand.Text()})
		if err != nil {
			t.Fatal(err)
		}
		want := "does not belong to a sign-in started in this browser"
		if trip.Landed != "" || trip.End.Status != http.StatusBadRequest || !strings.Contains(trip.End.Text, want) {
			t.Errorf("pages %v, landed %q, HTTP %d %q: %s; want 400 saying %q", trip.Pages, trip.Landed, trip.End.Status, trip.End.Title, trip.End.Text, want)
		}
	})
	t.Run("no user but alice, no password in the log", func(t *testing.T) {
		if users := saasUsers(t); strings.Contains(users, "u-1002") {
			t.Errorf("bob (u-1002), whose sign-in was refused, has a user:\n%s", users)
		}
		if strings.Contains(d.Output(), "alice-password") {
			t.Errorf("gatehouse dev logged the SaaS user's password")
		}
	})
}

// delegatedSignIn is what signInDelegated does on the SaaS's login page.
type delegatedSignIn struct {
	User, Password string
	// Challenge, if set, replaces the login_challenge of the SaaS's form
	// before it is sent (a tampered form).
	Challenge string
	// StopAtSaaS ends the walk on the SaaS's login page.
	StopAtSaaS bool
}

// delegatedTrip is what Chromium went through in one authorization.
type delegatedTrip struct {
	// Pages are the pages seen, in order: gatehouse-login, saas-login,
	// gatehouse-consent.
	Pages     []string
	LoginText string // Gatehouse's login page
	// Challenge is the login_challenge Gatehouse sent the browser to the
	// SaaS with.
	Challenge string
	// Assertion is the URL the SaaS sent the browser back to (Gatehouse's
	// delegate callback with the assertion), when Gatehouse answered it
	// with its consent page.
	Assertion string
	Landed    string   // the client's redirect URI with the code, if it got there
	End       pageSeen // the page it stopped on otherwise (an error page)
}

// pageSeen is a page as Chromium shows it.
type pageSeen struct {
	Ready, Href, Kind, Title, Text string
	// Detail is an error page's "For developers" part (collapsed, so not
	// in Text).
	Detail string
	Status int // the HTTP status of the navigation that loaded it
}

// readPage reads the tab's page: kind is gatehouse-login (a delegate-login
// form), saas-login, gatehouse-consent, or empty.
func readPage(ctx context.Context) (pageSeen, error) {
	return chromedp.Run(ctx, chromedp.Evaluate[pageSeen](`({
		Ready: document.readyState,
		Href: location.href,
		Kind: document.getElementById('consent-form') ? 'gatehouse-consent' :
		      document.getElementById('delegate-login') ? 'gatehouse-login' :
		      document.getElementById('saas-login') ? 'saas-login' : '',
		Title: document.querySelector('h1') ? document.querySelector('h1').innerText : '',
		Text: document.body ? document.body.innerText.slice(0, 1500) : '',
		Detail: document.querySelector('details.developer') ? document.querySelector('details.developer').textContent.trim().replace(/\s+/g, ' ') : '',
		Status: performance.getEntriesByType('navigation')[0]?.responseStatus || 0})`))
}

// openPage opens target in the tab and returns the page it shows.
func openPage(ctx context.Context, target string) (pageSeen, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.Navigate(target)); err != nil {
		return pageSeen{}, fmt.Errorf("open %s: %w", target, err)
	}
	return readPage(ctx)
}

// signInDelegated carries an authorization in Chromium: on Gatehouse's
// login page it presses "Continue with" the delegate, on the SaaS's own
// form (at saasURL) types the user and password and clicks its button, on
// Gatehouse's consent page clicks Allow, and stops at the client's
// redirect URI (callbackURL), at Gatehouse's error page, or, when in.
// StopAtSaaS, on the SaaS's form.
func signInDelegated(ctx context.Context, authURL, issuer, saasURL, callbackURL string, in delegatedSignIn) (delegatedTrip, error) {
	var trip delegatedTrip
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.Navigate(authURL)); err != nil {
		return trip, fmt.Errorf("open %s: %w", authURL, err)
	}
	css := func(s string) chromedp.CSS { return chromedp.CSS(s) }
	seen := func(p string) {
		if len(trip.Pages) == 0 || trip.Pages[len(trip.Pages)-1] != p {
			trip.Pages = append(trip.Pages, p)
		}
	}
	for {
		st, err := readPage(ctx)
		if err != nil {
			return trip, fmt.Errorf("read the page: %w", err)
		}
		onIssuer := strings.HasPrefix(st.Href, issuer+"/")
		switch {
		case st.Ready != "complete":
		case strings.HasPrefix(st.Href, callbackURL):
			trip.Landed = st.Href
			return trip, nil
		case st.Kind == "gatehouse-login" && onIssuer:
			seen(st.Kind)
			trip.LoginText = st.Text
			err = chromedp.Do(ctx, chromedp.Click(css("#delegate-login button")), chromedp.WaitNotPresent(css("#delegate-login")))
		case st.Kind == "saas-login" && strings.HasPrefix(st.Href, saasURL+"/"):
			if strings.Contains(st.Text, "Wrong username or password") {
				return trip, fmt.Errorf("the SaaS refused %q: %s", in.User, st.Text)
			}
			seen(st.Kind)
			if u, err := url.Parse(st.Href); err == nil {
				trip.Challenge = u.Query().Get("login_challenge")
			}
			if in.StopAtSaaS {
				return trip, nil
			}
			if in.Challenge != "" {
				if _, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector('#saas-login input[name=login_challenge]').value = `+strconv.Quote(in.Challenge))); err != nil {
					return trip, fmt.Errorf("tamper with the SaaS's form: %w", err)
				}
			}
			err = chromedp.Do(ctx,
				chromedp.SendKeys(css("#saas-login input[name=username]"), in.User),
				chromedp.SendKeys(css("#saas-login input[name=password]"), in.Password),
				chromedp.Click(css("#saas-login button[type=submit]")),
				chromedp.WaitNotPresent(css("#saas-login")))
		case st.Kind == "gatehouse-consent" && onIssuer:
			seen(st.Kind)
			if strings.HasPrefix(st.Href, issuer+"/login/delegate/callback?") {
				trip.Assertion = st.Href
			}
			err = chromedp.Do(ctx, chromedp.Click(css("#allow")), chromedp.WaitNotPresent(css("#consent-form")))
		case onIssuer && st.Title != "":
			trip.End = st
			return trip, nil
		case !onIssuer && st.Href != "about:blank":
			// Off Gatehouse and not on a page this walk knows: the SaaS
			// (or someone) answered with something else than its form or
			// a redirect to Gatehouse.
			trip.End = st
			return trip, fmt.Errorf("the browser is on %s (HTTP %d), neither the SaaS's login form nor Gatehouse nor the client's redirect URI (pages %v): %s", st.Href, st.Status, trip.Pages, st.Text)
		}
		if err != nil {
			return trip, fmt.Errorf("on %s: %w", st.Href, err)
		}
		select {
		case <-ctx.Done():
			return trip, fmt.Errorf("the authorization did not end (pages %v, last %s: %s): %w", trip.Pages, st.Href, st.Text, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func readECKey(t *testing.T, path string) *ecdsa.PrivateKey {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return k.(*ecdsa.PrivateKey)
}

func thumbprint(t *testing.T, pub *ecdsa.PublicKey) string {
	t.Helper()
	sum, err := (&jose.JSONWebKey{Key: pub}).Thumbprint(crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(sum)
}

func signES256(t *testing.T, key *ecdsa.PrivateKey, kid string, claims map[string]any) string {
	t.Helper()
	sig, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: jose.JSONWebKey{Key: key, KeyID: kid}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(claims)
	jws, err := sig.Sign(b)
	if err != nil {
		t.Fatal(err)
	}
	s, err := jws.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return s
}
