package interop

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/modelcontextprotocol/go-sdk/oauthex"

	"github.com/gatehouse-mcp/gatehouse/internal/demo"
)

// TestUpstreamOIDC signs people in to Gatehouse through an upstream
// OpenID provider nobody in this project wrote (issue 14, "Real peers in
// the tests"): Ory Hydra v2.3.0, built from the Go module proxy by
// scripts/hydra/build.sh and named by GATEHOUSE_TEST_HYDRA (scripts/test.sh
// builds it and sets it). A headless Chromium carries an MCP client's
// authorization (the official Go SDK's OAuth client) from Gatehouse's
// login page ("Continue with Hydra") to Hydra's login page and back to
// Gatehouse's consent page; the client then calls list_notes. Gatehouse
// must have provisioned one user (provider hydra, Hydra's subject), which
// a second sign-in in a new browser reuses, and audited login.success and
// user.provisioned with provider=hydra. The MCP TypeScript SDK client
// (upstream_ts_client.mjs, a client of its own at Gatehouse) then goes
// through the same pages: it serves its loopback redirect URI and hands
// its authorization URL to Chromium, exchanges the code it gets back,
// lists the tools and calls list_notes, as the same user. A wrong client secret and a
// consent refused at Hydra each end on Gatehouse's error page naming the
// provider and the reason, with no user, audited as login.upstream_failed.
// Each step is a named subtest. The dex subtest does the same sign-in
// through Dex v2.45.1 (upstream_dex_test.go), whose groups claim drives a
// scope policy.
func TestUpstreamOIDC(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Ory Hydra, Chromium and gatehouse serve: not in -short")
	}
	t.Run("hydra", testUpstreamHydra)
	t.Run("dex", testUpstreamDex)
}

// hydraEnv names the Ory Hydra v2.3.0 binary the tests start.
const hydraEnv = "GATEHOUSE_TEST_HYDRA"

// hydraBinary returns the Hydra binary of GATEHOUSE_TEST_HYDRA: skip
// locally, fail under CI, when there is none.
func hydraBinary(t *testing.T) string {
	t.Helper()
	p := os.Getenv(hydraEnv)
	if p == "" {
		skipOrFatal(t, "Ory Hydra v2.3.0 is not built: %s is not set (build it with `scripts/hydra/build.sh DIR` and set %s to the path it prints; scripts/test.sh does both)", hydraEnv, hydraEnv)
	}
	if fi, err := os.Stat(p); err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
		skipOrFatal(t, "%s=%s is not an executable file (%v): build Ory Hydra with scripts/hydra/build.sh", hydraEnv, p, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, p, "version").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "v2.3.0") {
		t.Fatalf("%s version = %v, %q; want Ory Hydra v2.3.0", p, err, out)
	}
	t.Logf("peer: Ory Hydra v2.3.0 (%s)", p)
	return p
}

// ---------------------------------------------------------------------------
// Hydra's login and consent app.

// hydraUser is a person of the login and consent app.
type hydraUser struct {
	Password, Subject, Email, Name string
	Groups                         []string
}

// hydraApp is the login and consent provider Hydra sends browsers to
// (Hydra has no user database or login UI of its own): a login form for
// its fixed users, accepted through Hydra's admin API with the user's
// subject, and a consent step that grants the requested scopes with the
// user's email, name and groups in the ID token, or, when told to,
// rejects the consent.
type hydraApp struct {
	URL   string
	admin string // Hydra's admin URL, set once Hydra runs
	users map[string]hydraUser

	mu          sync.Mutex
	denyConsent bool
}

var hydraLoginPage = template.Must(template.New("login").Parse(`<!doctype html>
<title>Hydra test login</title>
<h1>Sign in at the Hydra test provider</h1>
{{if .Error}}<p id="hydra-error">{{.Error}}</p>{{end}}
<form id="hydra-login" method="post" action="/login">
<input type="hidden" name="login_challenge" value="{{.Challenge}}">
<input id="hydra-username" name="username">
<input id="hydra-password" name="password" type="password">
<button id="hydra-submit" type="submit">Sign in</button>
</form>`))

// startHydraApp serves the login and consent app on a loopback port.
func startHydraApp(t *testing.T, users map[string]hydraUser) *hydraApp {
	t.Helper()
	a := &hydraApp{users: users}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /login", a.loginForm)
	mux.HandleFunc("POST /login", a.login)
	mux.HandleFunc("GET /consent", a.consent)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	a.URL = srv.URL
	return a
}

func (a *hydraApp) setDenyConsent(deny bool) {
	a.mu.Lock()
	a.denyConsent = deny
	a.mu.Unlock()
}

// loginForm shows the login form for Hydra's login challenge, or accepts
// at once when Hydra says the person is already signed in there (skip).
func (a *hydraApp) loginForm(w http.ResponseWriter, r *http.Request) {
	ch := r.URL.Query().Get("login_challenge")
	var req struct {
		Skip    bool   `json:"skip"`
		Subject string `json:"subject"`
	}
	if err := a.adminJSON(r.Context(), http.MethodGet, "/admin/oauth2/auth/requests/login?login_challenge="+url.QueryEscape(ch), nil, &req); err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	if req.Skip {
		a.acceptLogin(w, r, ch, req.Subject)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	hydraLoginPage.Execute(w, map[string]string{"Challenge": ch})
}

// login checks the form's password and accepts Hydra's login challenge
// with the user's subject.
func (a *hydraApp) login(w http.ResponseWriter, r *http.Request) {
	ch := r.PostFormValue("login_challenge")
	u, ok := a.users[r.PostFormValue("username")]
	if !ok || u.Password != r.PostFormValue("password") {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.WriteHeader(http.StatusUnauthorized)
		hydraLoginPage.Execute(w, map[string]string{"Challenge": ch, "Error": "wrong username or password"})
		return
	}
	a.acceptLogin(w, r, ch, u.Subject)
}

func (a *hydraApp) acceptLogin(w http.ResponseWriter, r *http.Request, challenge, subject string) {
	var res struct {
		RedirectTo string `json:"redirect_to"`
	}
	if err := a.adminJSON(r.Context(), http.MethodPut, "/admin/oauth2/auth/requests/login/accept?login_challenge="+url.QueryEscape(challenge),
		map[string]any{"subject": subject, "remember": false}, &res); err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	http.Redirect(w, r, res.RedirectTo, http.StatusSeeOther)
}

// consent accepts Hydra's consent challenge with the requested scopes and
// the user's claims in the ID token, or rejects it (access_denied) when
// denyConsent is set.
func (a *hydraApp) consent(w http.ResponseWriter, r *http.Request) {
	ch := r.URL.Query().Get("consent_challenge")
	var req struct {
		Subject  string   `json:"subject"`
		Scope    []string `json:"requested_scope"`
		Audience []string `json:"requested_access_token_audience"`
	}
	if err := a.adminJSON(r.Context(), http.MethodGet, "/admin/oauth2/auth/requests/consent?consent_challenge="+url.QueryEscape(ch), nil, &req); err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	a.mu.Lock()
	deny := a.denyConsent
	a.mu.Unlock()
	var res struct {
		RedirectTo string `json:"redirect_to"`
	}
	var err error
	if deny {
		err = a.adminJSON(r.Context(), http.MethodPut, "/admin/oauth2/auth/requests/consent/reject?consent_challenge="+url.QueryEscape(ch),
			map[string]any{"error": "access_denied", "error_description": "The person did not allow Gatehouse to see their profile."}, &res)
	} else {
		var u hydraUser
		for _, x := range a.users {
			if x.Subject == req.Subject {
				u = x
			}
		}
		err = a.adminJSON(r.Context(), http.MethodPut, "/admin/oauth2/auth/requests/consent/accept?consent_challenge="+url.QueryEscape(ch),
			map[string]any{
				"grant_scope":                 req.Scope,
				"grant_access_token_audience": req.Audience,
				"remember":                    false,
				"session": map[string]any{"id_token": map[string]any{
					"email": u.Email, "email_verified": true, "name": u.Name, "groups": u.Groups,
				}},
			}, &res)
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	http.Redirect(w, r, res.RedirectTo, http.StatusSeeOther)
}

// adminJSON calls Hydra's admin API.
func (a *hydraApp) adminJSON(ctx context.Context, method, path string, in, out any) error {
	return hydraAdmin(ctx, a.admin, method, path, in, out)
}

// hydraAdmin sends a JSON request to Hydra's admin API and decodes a 2xx
// answer into out.
func hydraAdmin(ctx context.Context, admin, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, admin+path, body)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json")
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := noProxyClient().Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("hydra admin %s %s: HTTP %d: %s", method, path, resp.StatusCode, b)
	}
	return json.Unmarshal(b, out)
}

// ---------------------------------------------------------------------------
// Hydra itself.

// hydra is a running `hydra serve all --dev`.
type hydra struct {
	Issuer, Public, Admin string
	proc                  *proc
}

// startHydra runs Hydra with an in-memory database on loopback ports,
// sending browsers to app's login and consent pages.
func startHydra(t *testing.T, bin string, app *hydraApp) *hydra {
	t.Helper()
	dir := t.TempDir()
	pub, adm := freePort(t), freePort(t)
	for adm == pub {
		adm = freePort(t)
	}
	h := &hydra{Public: fmt.Sprintf("http://127.0.0.1:%d", pub), Admin: fmt.Sprintf("http://127.0.0.1:%d", adm)}
	// Lax cookies: Hydra's default SameSite=None needs Secure, which a
	// browser drops on http; every hop here is a top-level navigation on
	// 127.0.0.1, which Lax allows.
	cfg := fmt.Sprintf(`dsn: memory
serve:
  public: {host: 127.0.0.1, port: %d}
  admin: {host: 127.0.0.1, port: %d}
  cookies: {same_site_mode: Lax}
urls:
  self: {issuer: %q, public: %q}
  login: %q
  consent: %q
secrets:
  system: [%q]
oauth2:
  expose_internal_errors: true
log:
  level: warn
`, pub, adm, h.Public, h.Public, app.URL+"/login", app.URL+"/consent", rand.Text()+rand.Text())
	cfgFile := filepath.Join(dir, "hydra.yaml")
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "serve", "all", "--dev", "--sqa-opt-out", "-c", cfgFile)
	// A clean environment: Hydra reads any variable named like one of
	// its configuration keys.
	cmd.Env = []string{"PATH=/usr/bin:/bin", "HOME=" + dir}
	cmd.Dir = dir
	h.proc = startProc(t, "hydra", cmd)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	waitHTTPOK(t, ctx, h.Admin+"/health/ready", h.proc.output)
	waitHTTPOK(t, ctx, h.Public+"/.well-known/openid-configuration", h.proc.output)
	var meta struct {
		Issuer string `json:"issuer"`
	}
	if err := hydraAdmin(ctx, h.Public, http.MethodGet, "/.well-known/openid-configuration", nil, &meta); err != nil {
		t.Fatal(err)
	}
	h.Issuer = meta.Issuer
	app.admin = h.Admin
	return h
}

// createClient registers Gatehouse at Hydra as a confidential client
// (client_secret_basic, authorization code) with the redirect URIs, and
// returns its client id.
func (h *hydra) createClient(t *testing.T, secret string, redirectURIs ...string) string {
	t.Helper()
	var c struct {
		ID string `json:"client_id"`
	}
	err := hydraAdmin(t.Context(), h.Admin, http.MethodPost, "/admin/clients", map[string]any{
		"client_name":                "Gatehouse",
		"client_secret":              secret,
		"redirect_uris":              redirectURIs,
		"grant_types":                []string{"authorization_code"},
		"response_types":             []string{"code"},
		"scope":                      "openid email profile",
		"token_endpoint_auth_method": "client_secret_basic",
	}, &c)
	if err != nil || c.ID == "" {
		t.Fatalf("register Gatehouse at Hydra: client id %q, %v", c.ID, err)
	}
	return c.ID
}

// ---------------------------------------------------------------------------
// Gatehouse with Hydra as its identity provider.

// upstreamGatehouse is a running `gatehouse serve` whose identity
// providers are upstream ones (Hydra twice, once with a wrong client
// secret; or Dex), and the demo MCP server it protects, run in the test
// process.
type upstreamGatehouse struct {
	*gatehouse
	Config, Issuer, MCPURL string
	proc                   *proc
}

// upstreamClientID is the MCP client registered at Gatehouse.
const upstreamClientID = "hydra-interop-client"

// startUpstreamGatehouse runs `gatehouse serve` on port with providers
// (YAML list items under identity.providers), registers the MCP client
// and the demo resource through the CLI (`resource add` gets
// resourceFlags too), and serves the demo MCP server.
//
// serve, not dev: `gatehouse dev` takes no identity providers yet (its
// --idp flag is issue 14 item 4). The demo MCP server is the one dev
// serves (internal/demo), here in the test process.
func startUpstreamGatehouse(t *testing.T, port int, providers string, resourceFlags ...string) *upstreamGatehouse {
	t.Helper()
	g := newGatehouse(t)
	dir := t.TempDir()
	issuer := fmt.Sprintf("http://127.0.0.1:%d", port)
	mcpLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	d := &upstreamGatehouse{gatehouse: g, Config: filepath.Join(dir, "gatehouse.yaml"), Issuer: issuer,
		MCPURL: "http://" + mcpLn.Addr().String() + "/mcp"}
	kek := filepath.Join(dir, "kek")
	d.cli(t, "keys", "gen-kek", kek)
	cfg := fmt.Sprintf(`issuer: %q
listen: 127.0.0.1:%d
admin_listen: ""
allow_insecure_issuer: true
storage: {driver: sqlite, sqlite_path: %q}
keys: {encryption_key_file: %q}
identity:
  providers:
%s`, issuer, port, filepath.Join(dir, "gatehouse.db"), kek, providers)
	if err := os.WriteFile(d.Config, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	d.cli(t, "migrate", "--config", d.Config)
	d.cli(t, "client", "create", "--config", d.Config, "--id", upstreamClientID, "--name", "MCP client (Go SDK)", "--redirect-uri", "http://127.0.0.1/callback")
	d.cli(t, append(append([]string{"resource", "add", "--config", d.Config, "--name", "Demo notes",
		"--scope", "notes:read=Read your notes=list_notes,read_note", "--scope", "notes:write=Create and delete your notes=add_note,delete_note",
		"--default-scope", "notes:read"}, resourceFlags...), d.MCPURL)...)

	cmd := exec.Command(g.Bin, "serve", "--config", d.Config)
	cmd.Env = append(os.Environ(), "GATEHOUSE_CONFIG=")
	d.proc = startProc(t, "gatehouse serve", cmd)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	waitHTTPOK(t, ctx, issuer+"/.well-known/oauth-authorization-server", d.proc.output)

	h, err := demo.NewHandler(demo.Options{Issuer: issuer, Resource: d.MCPURL, HTTPClient: &http.Client{Transport: noProxyClient().Transport}})
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(mcpLn)
	t.Cleanup(func() { srv.Close() })
	return d
}

// cli runs a gatehouse command (its flags include --config where needed).
func (d *upstreamGatehouse) cli(t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, d.Bin, args...)
	cmd.Env = append(os.Environ(), "GATEHOUSE_CONFIG=")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("gatehouse %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// upstreamUserRow is a line of `gatehouse user list`.
type upstreamUserRow struct{ Username, ID, Provider, Subject string }

// users returns `gatehouse user list`, one row per user.
func (d *upstreamGatehouse) users(t *testing.T) []upstreamUserRow {
	t.Helper()
	out := d.cli(t, "user", "list", "--config", d.Config)
	var rows []upstreamUserRow
	for i, line := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Fields(line)
		if i == 0 || len(f) < 4 || strings.HasPrefix(line, "No users") {
			continue
		}
		rows = append(rows, upstreamUserRow{Username: f[0], ID: f[1], Provider: f[len(f)-2], Subject: f[len(f)-1]})
	}
	return rows
}

// audit returns the audit lines of an event type.
func (d *upstreamGatehouse) audit(t *testing.T, typ string) []string {
	t.Helper()
	out := d.cli(t, "audit", "query", "--config", d.Config, "--type", typ, "--limit", "1000")
	var lines []string
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, typ) {
			lines = append(lines, l)
		}
	}
	return lines
}

// ---------------------------------------------------------------------------
// The browser.

// upstreamTrip is what Chromium went through in one authorization: the
// pages it saw, in order (gatehouse-login, hydra-login, gatehouse-consent,
// gatehouse-error, hydra-error: the provider's pages are named after
// upstreamLogin.Name), and where it ended.
type upstreamTrip struct {
	Pages      []string
	LoginText  string // Gatehouse's login page
	ErrorTitle string // Gatehouse's error page, if it ended there
	ErrorText  string
	// ErrorDetail is the error page's "For developers" part (collapsed,
	// so not in ErrorText).
	ErrorDetail string
	Landed      string // the client's redirect URI with the code, if it got there
}

// upstreamLogin is how signInThroughUpstream finds its way through an
// upstream provider's own pages.
type upstreamLogin struct {
	// Name names the provider's pages in upstreamTrip.Pages
	// (<Name>-login, <Name>-error).
	Name string
	// LoginURL is where the provider's login page is served (a prefix);
	// PeerURL is where the provider's other pages are: one of them with
	// text on it that is not the login page is an error page.
	LoginURL, PeerURL string
	// Form, Username, Password and Submit are CSS selectors of the login
	// page's form (present only on that page), its fields and its submit
	// button; Refused is the message the page shows for a wrong password.
	Form, Username, Password, Submit, Refused string
}

// signInThroughUpstream carries an authorization in Chromium: on
// Gatehouse's login page it presses "Continue with" the provider (form
// id oidc-<provider>), signs in on the provider's login page (up) as
// user, allows on Gatehouse's consent page, and stops at the client's
// redirect URI (callbackURL) or at an error page of Gatehouse or the
// provider.
func signInThroughUpstream(ctx context.Context, authURL, issuer string, up upstreamLogin, callbackURL, provider, username, password string) (upstreamTrip, error) {
	var trip upstreamTrip
	ctx, cancel := context.WithTimeout(ctx, 90*time.Second)
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
		type pageState struct {
			Ready, Href, Kind, Title, Text, Detail string
			Refused                                bool
		}
		st, err := chromedp.Run(ctx, chromedp.Evaluate[pageState](`({
			Ready: document.readyState,
			Href: location.href,
			Kind: document.getElementById('consent-form') ? 'consent' :
			      document.getElementById('oidc-`+provider+`') ? 'login' :
			      document.querySelector(`+strconv.Quote(up.Form)+`) ? 'upstream-login' : '',
			Refused: !!document.querySelector(`+strconv.Quote(up.Refused)+`),
			Title: document.querySelector('h1') ? document.querySelector('h1').innerText : '',
			Text: document.body ? document.body.innerText.slice(0, 1500) : '',
			Detail: document.querySelector('details.developer') ? document.querySelector('details.developer').textContent : ''})`))
		if err != nil {
			return trip, fmt.Errorf("read the page: %w", err)
		}
		switch {
		case st.Ready != "complete":
		case strings.HasPrefix(st.Href, callbackURL):
			trip.Landed = st.Href
			return trip, nil
		case st.Kind == "login" && strings.HasPrefix(st.Href, issuer+"/"):
			seen("gatehouse-login")
			trip.LoginText = st.Text
			err = chromedp.Do(ctx, chromedp.Click(css("#oidc-"+provider+" button")), chromedp.WaitNotPresent(css("#oidc-"+provider)))
		case st.Kind == "upstream-login" && strings.HasPrefix(st.Href, up.LoginURL+"/"):
			if st.Refused {
				return trip, fmt.Errorf("%s's login page refused %q: %s", up.Name, username, st.Text)
			}
			seen(up.Name + "-login")
			err = chromedp.Do(ctx,
				chromedp.SendKeys(css(up.Username), username),
				chromedp.SendKeys(css(up.Password), password),
				chromedp.Click(css(up.Submit)),
				chromedp.WaitNotPresent(css(up.Form)))
		case st.Kind == "consent" && strings.HasPrefix(st.Href, issuer+"/"):
			seen("gatehouse-consent")
			err = chromedp.Do(ctx, chromedp.Click(css("#allow")), chromedp.WaitNotPresent(css("#consent-form")))
		case strings.HasPrefix(st.Href, issuer+"/") && st.Title != "":
			seen("gatehouse-error")
			trip.ErrorTitle, trip.ErrorText, trip.ErrorDetail = st.Title, st.Text, strings.Join(strings.Fields(st.Detail), " ")
			return trip, nil
		case strings.HasPrefix(st.Href, up.PeerURL+"/") && st.Text != "":
			seen(up.Name + "-error")
			trip.ErrorText = st.Text
			return trip, nil
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

// startCallback serves the MCP client's redirect URI on a loopback port,
// so the browser lands on a page there (the code is read from its URL).
func startCallback(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		io.WriteString(w, "Signed in. You can close this tab.")
	}))
	t.Cleanup(srv.Close)
	return srv.URL + "/callback"
}

// ---------------------------------------------------------------------------
// The test.

func testUpstreamHydra(t *testing.T) {
	bin := hydraBinary(t)
	interopChromium(t)
	alice := hydraUser{Password: "alice-at-hydra", Subject: "hydra-subject-alice-7f3a", Email: "alice@example.com", Name: "Alice Example", Groups: []string{"editors"}}
	bob := hydraUser{Password: "bob-at-hydra", Subject: "hydra-subject-bob-91c2", Email: "bob@example.com", Name: "Bob Example", Groups: []string{"readers"}}
	app := startHydraApp(t, map[string]hydraUser{"alice": alice, "bob": bob})
	hy := startHydra(t, bin, app)

	// Gatehouse's issuer must be known before it is registered at Hydra
	// (its redirect URIs), and Hydra's client id before Gatehouse starts.
	port := freePort(t)
	issuer := fmt.Sprintf("http://127.0.0.1:%d", port)
	secret := "gatehouse-at-hydra-" + rand.Text()
	clientID := hy.createClient(t, secret, issuer+"/login/oidc/hydra/callback", issuer+"/login/oidc/hydra-wrong/callback", issuer+"/login/oidc/hydra-corp/callback")
	dir := t.TempDir()
	good, wrong := filepath.Join(dir, "hydra-secret"), filepath.Join(dir, "hydra-wrong-secret")
	if err := os.WriteFile(good, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(wrong, []byte("not-"+secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	providers := fmt.Sprintf(`    - {name: hydra, display_name: Hydra, issuer: %q, client_id: %q, client_secret_file: %q}
    - {name: hydra-wrong, display_name: Hydra with a wrong secret, issuer: %q, client_id: %q, client_secret_file: %q}
    - {name: hydra-corp, display_name: Hydra for corp.example, issuer: %q, client_id: %q, client_secret_file: %q, allowed_email_domains: [corp.example]}
`, hy.Issuer, clientID, good, hy.Issuer, clientID, wrong, hy.Issuer, clientID, good)
	g := startUpstreamGatehouse(t, port, providers)
	callback := startCallback(t)
	aliceName := "oidc:hydra:" + alice.Subject
	var sessions []*mcp.ClientSession
	t.Cleanup(func() {
		for _, cs := range sessions {
			cs.Close()
		}
	})

	hydraLogin := upstreamLogin{Name: "hydra", LoginURL: app.URL, PeerURL: hy.Public,
		Form: "#hydra-login", Username: "#hydra-username", Password: "#hydra-password", Submit: "#hydra-submit", Refused: "#hydra-error"}
	// connect runs the Go SDK's MCP client with browser (a profile of its
	// own): its authorization goes through Chromium and Hydra as username.
	// The session lives until the whole test ends: later steps use it.
	connect := func(t *testing.T, browser context.Context, username string, pw string) (*mcp.ClientSession, upstreamTrip) {
		t.Helper()
		cs, trip := connectThroughUpstream(t, g, browser, callback, hydraLogin, "hydra", username, pw)
		sessions = append(sessions, cs)
		return cs, trip
	}
	wantPages := []string{"gatehouse-login", "hydra-login", "gatehouse-consent"}

	var first upstreamTrip
	var cs *mcp.ClientSession
	browser, browser2 := newBrowser(t), newBrowser(t)
	step(t, "MCP client authorizes through Hydra in Chromium", func(t *testing.T) {
		cs, first = connect(t, browser, "alice", alice.Password)
		if !strings.Contains(first.LoginText, "Continue with Hydra") {
			t.Errorf("Gatehouse's login page = %q, want a Continue with Hydra button", first.LoginText)
		}
		if strings.Join(first.Pages, " ") != strings.Join(wantPages, " ") {
			t.Errorf("pages = %v, want %v", first.Pages, wantPages)
		}
	})
	step(t, "MCP client calls list_notes", func(t *testing.T) {
		res, err := cs.CallTool(t.Context(), &mcp.CallToolParams{Name: "list_notes"})
		if err != nil || res.IsError {
			t.Fatalf("tools/call list_notes = %+v, %v", res, err)
		}
	})
	var aliceID string
	step(t, "Gatehouse provisioned the Hydra user", func(t *testing.T) {
		rows := g.users(t)
		if len(rows) != 1 || rows[0].Username != aliceName || rows[0].Provider != "hydra" || rows[0].Subject != alice.Subject {
			t.Fatalf("gatehouse user list = %+v, want one user %s with provider hydra and subject %s", rows, aliceName, alice.Subject)
		}
		aliceID = rows[0].ID
	})
	step(t, "audit names the provider", func(t *testing.T) {
		if got := g.audit(t, "user.provisioned"); len(got) != 1 || !strings.Contains(got[0], `detail="provider=hydra"`) || !strings.Contains(got[0], aliceID) {
			t.Errorf("user.provisioned events = %q, want one naming provider=hydra and user %s", got, aliceID)
		}
		if got := g.audit(t, "login.success"); len(got) != 1 || !strings.Contains(got[0], `detail="provider=hydra"`) || !strings.Contains(got[0], aliceID) {
			t.Errorf("login.success events = %q, want one naming provider=hydra and user %s", got, aliceID)
		}
		if got := g.audit(t, "token.issued"); len(got) == 0 || !strings.Contains(got[0], aliceID) {
			t.Errorf("token.issued events = %q, want the MCP client's token for user %s", got, aliceID)
		}
	})
	step(t, "second sign-in in a new browser reuses the user", func(t *testing.T) {
		cs2, trip := connect(t, browser2, "alice", alice.Password)
		// No consent page: the consent the first sign-in gave belongs to
		// the same Gatehouse user, and covers the request.
		if want := wantPages[:2]; strings.Join(trip.Pages, " ") != strings.Join(want, " ") {
			t.Errorf("pages = %v, want %v (the consent remembered)", trip.Pages, want)
		}
		if res, err := cs2.CallTool(t.Context(), &mcp.CallToolParams{Name: "list_notes"}); err != nil || res.IsError {
			t.Fatalf("tools/call list_notes = %+v, %v", res, err)
		}
		if rows := g.users(t); len(rows) != 1 || rows[0].ID != aliceID {
			t.Errorf("gatehouse user list after the second sign-in = %+v, want only %s (%s)", rows, aliceName, aliceID)
		}
		if got := g.audit(t, "user.provisioned"); len(got) != 1 {
			t.Errorf("user.provisioned events = %q, want still one", got)
		}
		if got := g.audit(t, "login.success"); len(got) != 2 || !strings.Contains(got[0], aliceID) || !strings.Contains(got[1], aliceID) {
			t.Errorf("login.success events = %q, want two for user %s", got, aliceID)
		}
	})

	step(t, "TypeScript SDK client authorizes through Hydra in Chromium and calls list_notes", func(t *testing.T) {
		// A client of its own at Gatehouse, so that Gatehouse's consent
		// page shows (alice allowed only the Go client so far).
		g.cli(t, "client", "create", "--config", g.Config, "--id", upstreamTSClientID, "--name", "MCP client (TypeScript SDK)", "--redirect-uri", "http://127.0.0.1/callback")
		steps, authURL, trip := runTSClientThroughUpstream(t, g, newBrowser(t), upstreamTSClientID, hydraLogin, "hydra", "alice", alice.Password)
		if !strings.Contains(trip.LoginText, "Continue with Hydra") {
			t.Errorf("Gatehouse's login page = %q, want a Continue with Hydra button", trip.LoginText)
		}
		if strings.Join(trip.Pages, " ") != strings.Join(wantPages, " ") {
			t.Errorf("pages = %v, want %v", trip.Pages, wantPages)
		}
		q := authURL.Query()
		if authURL.Scheme+"://"+authURL.Host != g.Issuer || q.Get("client_id") != upstreamTSClientID || q.Get("resource") != g.MCPURL || q.Get("code_challenge_method") != "S256" {
			t.Errorf("the SDK's authorization URL %s: want Gatehouse's, for client %s, resource %s, S256", authURL, upstreamTSClientID, g.MCPURL)
		}
		for _, name := range []string{"authorization URL", "callback", "token", "tools/list", "tools/call list_notes"} {
			s, ok := steps[name]
			switch {
			case !ok:
				t.Errorf("step %q of the TypeScript client did not run", name)
			case !s.OK:
				t.Errorf("step %q of the TypeScript client failed: %s", name, s.Raw)
			}
		}
		if s := steps["callback"]; !strings.Contains(string(s.Raw), `"iss":"`+g.Issuer+`"`) {
			t.Errorf("callback %s: want iss %s (RFC 9207)", s.Raw, g.Issuer)
		}
		if s := steps["token"]; !strings.Contains(s.Scope, "notes:read") {
			t.Errorf("token %s: want scope notes:read", s.Raw)
		}
		if rows := g.users(t); len(rows) != 1 || rows[0].ID != aliceID {
			t.Errorf("gatehouse user list = %+v, want only %s (%s): the TypeScript client's sign-in reuses her", rows, aliceName, aliceID)
		}
		if got := g.audit(t, "login.success"); len(got) != 3 || !strings.Contains(got[0], aliceID) || !strings.Contains(got[0], `detail="provider=hydra"`) {
			t.Errorf("login.success events = %q, want a third for user %s naming provider=hydra", got, aliceID)
		}
		if got := g.audit(t, "token.issued"); !slices.ContainsFunc(got, func(l string) bool { return strings.Contains(l, upstreamTSClientID) && strings.Contains(l, aliceID) }) {
			t.Errorf("token.issued events = %q, want one for client %s and user %s", got, upstreamTSClientID, aliceID)
		}
	})

	// The failures: bob signs in, who has no Gatehouse user yet; after
	// each, there is still none, and the failure is audited.
	failed := func(t *testing.T, provider, wantTitle, wantText, wantDetail, wantAudit string) {
		t.Helper()
		browser := newBrowser(t)
		trip, err := signInThroughUpstream(browser, authorizeURL(g.Issuer, upstreamClientID, callback, g.MCPURL, "notes:read"), g.Issuer, hydraLogin, callback, provider, "bob", bob.Password)
		if err != nil {
			t.Fatal(err)
		}
		if trip.ErrorTitle != wantTitle || !strings.Contains(trip.ErrorText, wantText) || !strings.Contains(trip.ErrorDetail, wantDetail) {
			t.Errorf("ended on pages %v, title %q, text %q, for developers %q; want Gatehouse's error page %q saying %q, for developers %q",
				trip.Pages, trip.ErrorTitle, trip.ErrorText, trip.ErrorDetail, wantTitle, wantText, wantDetail)
		}
		if rows := g.users(t); len(rows) != 1 || rows[0].ID != aliceID {
			t.Errorf("gatehouse user list = %+v, want only %s: no user for bob", rows, aliceName)
		}
		got := g.audit(t, "login.upstream_failed")
		if !slices.ContainsFunc(got, func(l string) bool { return strings.Contains(l, wantAudit) }) {
			t.Errorf("login.upstream_failed events = %q, want one saying %q", got, wantAudit)
		}
	}
	t.Run("wrong client secret", func(t *testing.T) {
		failed(t, "hydra-wrong", "Sign-in with Hydra with a wrong secret failed", "Gatehouse could not complete the sign-in with Hydra with a wrong secret.",
			"the provider's token endpoint answered invalid_client", "provider=hydra-wrong: the provider's token endpoint answered invalid_client")
	})
	t.Run("user outside the allowed email domain", func(t *testing.T) {
		failed(t, "hydra-corp", "Sign-in with Hydra for corp.example failed", "Accounts at example.com may not sign in to this server.",
			"the email domain example.com is not in allowed_email_domains", "provider=hydra-corp: the email domain example.com is not in allowed_email_domains")
	})
	t.Run("consent denied at Hydra", func(t *testing.T) {
		app.setDenyConsent(true)
		defer app.setDenyConsent(false)
		failed(t, "hydra", "Sign-in with Hydra failed", "Sign-in with Hydra was cancelled or refused.",
			"the provider answered error=access_denied", "provider=hydra: the provider answered error=access_denied")
	})
}

// authorizeURL is an authorization request of the MCP client clientID
// for the demo resource and scope (S256: its code_verifier, for a
// request that gets a code, is authorizeVerifier).
func authorizeURL(issuer, clientID, redirectURI, resource, scope string) string {
	q := url.Values{
		"response_type":         {"code"},
		"client_id":             {clientID},
		"redirect_uri":          {redirectURI},
		"scope":                 {scope},
		"state":                 {rand.Text()},
		"code_challenge":        {"E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"}, // S256 of authorizeVerifier
		"code_challenge_method": {"S256"},
		"resource":              {resource},
	}
	return issuer + "/authorize?" + q.Encode()
}

// connectThroughUpstream runs the Go SDK's MCP client against g's demo
// MCP server with browser (a profile of its own): its authorization goes
// through Chromium, Gatehouse's login page and the provider's (up) as
// username. The caller closes the session.
func connectThroughUpstream(t *testing.T, g *upstreamGatehouse, browser context.Context, callback string, up upstreamLogin, provider, username, pw string) (*mcp.ClientSession, upstreamTrip) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var trip upstreamTrip
	handler, err := auth.NewAuthorizationCodeHandler(&auth.AuthorizationCodeHandlerConfig{
		PreregisteredClient: &oauthex.ClientCredentials{ClientID: upstreamClientID, Issuer: g.Issuer},
		RedirectURL:         callback,
		Client:              &http.Client{Transport: noProxyClient().Transport, Timeout: 30 * time.Second},
		AuthorizationCodeFetcher: func(ctx context.Context, args *auth.AuthorizationArgs) (*auth.AuthorizationResult, error) {
			var err error
			trip, err = signInThroughUpstream(browser, args.URL, g.Issuer, up, callback, provider, username, pw)
			if err != nil {
				return nil, err
			}
			if trip.Landed == "" {
				return nil, fmt.Errorf("the authorization ended on an error page (pages %v): %s: %s", trip.Pages, trip.ErrorTitle, trip.ErrorText)
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
	client := mcp.NewClient(&mcp.Implementation{Name: "gatehouse-interop-" + up.Name, Version: "1"}, nil)
	cs, err := client.Connect(ctx, &mcp.StreamableClientTransport{
		Endpoint:     g.MCPURL,
		HTTPClient:   &http.Client{Transport: noProxyClient().Transport},
		OAuthHandler: handler,
	}, nil)
	if err != nil {
		t.Fatalf("Connect(%s) through %s = %v (pages %v)", g.MCPURL, up.Name, err, trip.Pages)
	}
	return cs, trip
}

// upstreamTSClientID is the TypeScript SDK client registered at Gatehouse.
const upstreamTSClientID = "hydra-interop-ts-client"

// runTSClientThroughUpstream runs the MCP TypeScript SDK client
// (upstream_ts_client.mjs) as clientID against g's demo MCP server. The
// script serves its own loopback redirect URI and prints the SDK's
// authorization URL; Chromium (browser) opens it and goes through
// Gatehouse's login page and the provider's (up) as username
// (signInThroughUpstream) to that redirect URI, where the script takes the
// code, lets the SDK exchange it, lists the tools and calls list_notes.
// It returns the script's steps by name, the authorization URL and the
// browser's trip.
func runTSClientThroughUpstream(t *testing.T, g *upstreamGatehouse, browser context.Context, clientID string, up upstreamLogin, provider, username, pw string) (map[string]tsStep, *url.URL, upstreamTrip) {
	t.Helper()
	node := nodeBin(t)
	dir := interopDir(t)
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "@modelcontextprotocol", "sdk", "package.json")); err != nil {
		skipOrFatal(t, "npm package @modelcontextprotocol/sdk is not installed in %s: run `npm ci --prefix %s --no-audit --no-fund` (or scripts/test.sh)", dir, dir)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, filepath.Join(dir, "upstream_ts_client.mjs"), g.MCPURL, clientID)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "NO_PROXY=127.0.0.1,localhost", "no_proxy=127.0.0.1,localhost")
	p := startProc(t, "upstream_ts_client.mjs", cmd)
	m, err := p.waitLine(ctx, regexp.MustCompile(`^STEP (\{"name":"authorization URL".*\})$`))
	if err != nil {
		t.Fatalf("TypeScript client: %v", err)
	}
	var handed struct{ URL, RedirectURI string }
	if err := json.Unmarshal([]byte(m[1]), &handed); err != nil {
		t.Fatalf("step %s: %v", m[1], err)
	}
	authURL, err := url.Parse(handed.URL)
	if err != nil || handed.RedirectURI == "" || authURL.Query().Get("redirect_uri") != handed.RedirectURI {
		t.Fatalf("step %s: want an authorization URL (%v) whose redirect_uri is the script's", m[1], err)
	}
	trip, err := signInThroughUpstream(browser, handed.URL, g.Issuer, up, handed.RedirectURI, provider, username, pw)
	if err != nil {
		t.Fatal(err)
	}
	if trip.Landed == "" {
		t.Fatalf("the authorization ended on an error page (pages %v): %s: %s", trip.Pages, trip.ErrorTitle, trip.ErrorText)
	}
	m, err = p.waitLine(ctx, regexp.MustCompile(`^RESULT (.*)$`))
	if err != nil {
		t.Fatalf("TypeScript client: %v", err)
	}
	var result struct {
		Steps []json.RawMessage `json:"steps"`
	}
	if err := json.Unmarshal([]byte(m[1]), &result); err != nil {
		t.Fatalf("RESULT line %q: %v", m[1], err)
	}
	steps := map[string]tsStep{}
	for _, raw := range result.Steps {
		var s tsStep
		json.Unmarshal(raw, &s)
		s.Raw = raw
		steps[s.Name] = s
		t.Logf("%s", raw)
	}
	return steps, authURL, trip
}

// authorizeVerifier is the code_verifier of authorizeURL's code_challenge
// (the example of RFC 7636, appendix B).
const authorizeVerifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
