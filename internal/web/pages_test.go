package web

import (
	"bytes"
	"flag"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
	"unicode"

	"github.com/google/go-cmp/cmp"
)

// cspForbidden matches markup the CSP would block: inline scripts and
// styles, event-handler attributes and javascript: URLs.
var cspForbidden = regexp.MustCompile(`(?i)<script|<style|\sstyle=|\son[a-z]+=|javascript:`)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the current output")

// testKey is a fixed CSRF key so that golden files and tokens are stable.
var testKey = bytes.Repeat([]byte{0x42}, 32)

func newPages(t *testing.T, secure bool) *Pages {
	t.Helper()
	p, err := New(Options{CSRFKey: testKey, Secure: secure})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return p
}

// testLogo is a 1×1 PNG as a data: URL.
const testLogo = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="

// newBrandedPages is what an operator who set branding.name and
// branding.logo_url gets, on the issuer host auth.acme.example.
func newBrandedPages(t *testing.T, logo string) *Pages {
	t.Helper()
	p, err := New(Options{CSRFKey: testKey, Secure: true, ProductName: "Acme Corp", LogoURL: logo, IssuerHost: "auth.acme.example"})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return p
}

// render runs one page method against a recorder and returns it.
func render(t *testing.T, f func(w http.ResponseWriter, r *http.Request)) *httptest.ResponseRecorder {
	t.Helper()
	w := httptest.NewRecorder()
	f(w, httptest.NewRequest(http.MethodGet, "/", nil))
	return w
}

// checkGolden compares got with testdata/name.golden, or rewrites the file
// under -update. The stylesheet's content hash is replaced by a fixed
// string so that editing the CSS does not touch every golden file.
func checkGolden(t *testing.T, p *Pages, name, got string) {
	t.Helper()
	got = strings.ReplaceAll(got, p.StylesheetURL(), "/static/gatehouse.CSSHASH.css")
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./internal/web -update to create it)", err)
	}
	if diff := cmp.Diff(string(want), got); diff != "" {
		t.Errorf("%s mismatch (-want +got):\n%s", path, diff)
	}
}

var (
	granted = time.Date(2026, 3, 14, 9, 26, 53, 0, time.UTC)

	loginData = LoginData{
		Action:     "/login",
		CSRF:       "csrf-token-value",
		Request:    "req-123",
		ClientName: "Claude",
	}
	consentData = ConsentData{
		Action:       "/consent",
		CSRF:         "csrf-token-value",
		Request:      "req-123",
		Username:     "alice",
		ClientName:   "Example Agent",
		ClientID:     "https://agent.example.com/client.json",
		ClientURI:    "https://agent.example.com/",
		Publisher:    "agent.example.com",
		RedirectURI:  "https://agent.example.com/oauth/callback",
		RedirectHost: "agent.example.com",
		Resource:     "https://mcp.example.com/mcp",
		ResourceName: "Example MCP",
		Scopes: []ScopeItem{
			{Name: "files:read", Description: "Read your files", Tools: []string{"list_files", "read_file"}},
			{Name: "files:write", Description: "Change your files"},
		},
		Warnings: []string{"This app was registered a minute ago."},
	}
)

// accountData is alice's account page with a static client (two tool
// calls) and an unverified self-registered one, and one with a verified
// publisher.
var accountData = AccountData{
	CSRF:           "csrf-token-value",
	Username:       "alice",
	Notice:         "Access was revoked.",
	RevokeAction:   "/account/revoke",
	PasswordAction: "/account/password",
	SessionsAction: "/account/sessions",
	SignOutAction:  "/logout",
	PasswordRules:  "at least 8 characters",
	AccessTokenTTL: "10 minutes",
	Agents: []AgentItem{
		{ClientName: "Claude", ClientID: "c-1", Static: true,
			Resources: []AgentResource{{Resource: "https://mcp.example.com/mcp", Name: "Example MCP", Scopes: []string{"files:read", "files:write"}}},
			Granted:   granted, Updated: granted.Add(time.Hour), LastUsed: granted.Add(2 * time.Hour), AccessUntil: granted.Add(2*time.Hour + 10*time.Minute),
			ToolCalls: []ToolCallItem{{Time: granted.Add(3 * time.Hour), Tool: "read_file", Resource: "https://mcp.example.com/mcp", Outcome: "allowed"}, {Time: granted.Add(2 * time.Hour), Tool: "list_files", Outcome: "ok"}}},
		{ClientID: "dcr-7f3a", Resources: []AgentResource{{Resource: "https://other.example.com/mcp"}}},
		{ClientName: "Agent", ClientID: "https://agent.example.com/client.json", Publisher: "agent.example.com", Granted: granted},
	},
}

func TestPagesGolden(t *testing.T) {
	p := newPages(t, true)
	loginErr := loginData
	loginErr.Username = "alice"
	loginErr.Error = "Wrong username or password."
	loginProviders := loginData
	loginProviders.NoPassword = true
	loginProviders.Providers = []LoginProvider{{ID: "acme", Name: "Acme SSO", Action: "/login/oidc/acme"}, {ID: "google", Name: "Google", Action: "/login/oidc/google"}}
	loopback := consentData
	loopback.ClientName = ""
	loopback.ClientID = "dcr-7f3a"
	loopback.ClientURI = ""
	loopback.Publisher = ""
	loopback.ResourceName = ""
	loopback.RedirectURI = "http://127.0.0.1:3000/callback"
	loopback.RedirectHost = ""
	loopback.LoopbackOnly = true
	loopback.Scopes = nil
	loopback.Warnings = nil

	branded := newBrandedPages(t, testLogo)
	tests := []struct {
		name       string
		f          func(w http.ResponseWriter, r *http.Request)
		wantStatus int
	}{
		{"login", func(w http.ResponseWriter, r *http.Request) { p.Login(w, r, 0, loginData) }, http.StatusOK},
		{"login_branded", func(w http.ResponseWriter, r *http.Request) { branded.Login(w, r, 0, loginData) }, http.StatusOK},
		{"login_error", func(w http.ResponseWriter, r *http.Request) { p.Login(w, r, http.StatusUnauthorized, loginErr) }, http.StatusUnauthorized},
		{"login_providers", func(w http.ResponseWriter, r *http.Request) { p.Login(w, r, 0, loginProviders) }, http.StatusOK},
		{"consent", func(w http.ResponseWriter, r *http.Request) { p.Consent(w, r, consentData) }, http.StatusOK},
		{"consent_loopback", func(w http.ResponseWriter, r *http.Request) { p.Consent(w, r, loopback) }, http.StatusOK},
		{"error", func(w http.ResponseWriter, r *http.Request) {
			p.Error(w, r, http.StatusBadRequest, ErrorData{
				Title:       "The app's sign-in request was refused",
				Description: "Go back to the app and try again. If you see this page again, contact the app's developer.",
				Detail:      `redirect_uri "http://127.0.0.1:9999/cb" is not registered for this client`,
				Code:        "invalid_request",
			})
		}, http.StatusBadRequest},
		{"error_branded", func(w http.ResponseWriter, r *http.Request) {
			branded.Error(w, r, http.StatusNotFound, ErrorData{Title: "Page not found", Description: "There is nothing at this address."})
		}, http.StatusNotFound},
		{"error_default", func(w http.ResponseWriter, r *http.Request) { p.Error(w, r, 0, ErrorData{}) }, http.StatusInternalServerError},
		{"message", func(w http.ResponseWriter, r *http.Request) {
			p.Message(w, r, 0, MessageData{Title: "You declined", Body: "Example Agent was not given access. You can close this window."})
		}, http.StatusOK},
		{"account", func(w http.ResponseWriter, r *http.Request) { p.Account(w, r, 0, accountData) }, http.StatusOK},
		{"account_empty_error", func(w http.ResponseWriter, r *http.Request) {
			d := accountData
			d.Agents, d.Notice, d.Error = nil, "", "Your current password is incorrect."
			p.Account(w, r, http.StatusBadRequest, d)
		}, http.StatusBadRequest},
		{"account_no_password", func(w http.ResponseWriter, r *http.Request) {
			d := accountData
			d.Agents, d.Notice, d.NoPassword = nil, "", true
			p.Account(w, r, 0, d)
		}, http.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := render(t, tt.f)
			if w.Code != tt.wantStatus {
				t.Errorf("status: got %d, want %d", w.Code, tt.wantStatus)
			}
			if got, want := w.Header().Get("Content-Type"), "text/html; charset=utf-8"; got != want {
				t.Errorf("Content-Type: got %q, want %q", got, want)
			}
			// The page sets the browser headers itself, even unwrapped.
			if got, want := w.Header().Get("Content-Security-Policy"), ContentSecurityPolicy; got != want {
				t.Errorf("Content-Security-Policy: got %q, want %q", got, want)
			}
			if got, want := w.Header().Get("Cache-Control"), "no-store"; got != want {
				t.Errorf("Cache-Control: got %q, want %q", got, want)
			}
			// The CSRF field was given, so no cookie may be minted.
			if got := w.Header().Values("Set-Cookie"); len(got) != 0 {
				t.Errorf("Set-Cookie: got %q, want none", got)
			}
			body := w.Body.String()
			// The CSP allows no inline script or style; nothing may need it.
			if bad := cspForbidden.FindString(body); bad != "" {
				t.Errorf("page contains %q, which the CSP forbids", bad)
			}
			checkGolden(t, p, tt.name, body)
		})
	}
}

// TestFormContract pins the ids and field names that scripts, the
// chromedp browser test and the handlers in internal/as rely on.
func TestFormContract(t *testing.T) {
	p := newPages(t, false)
	tests := []struct {
		name string
		f    func(w http.ResponseWriter, r *http.Request)
		want []string
	}{
		{"login", func(w http.ResponseWriter, r *http.Request) { p.Login(w, r, 0, loginData) }, []string{
			`<form id="login-form" method="post" action="/login">`,
			`name="csrf_token" value="csrf-token-value"`,
			`name="request" value="req-123"`,
			`name="username"`,
			`name="password" type="password"`,
			`<button id="login" type="submit"`,
		}},
		{"consent", func(w http.ResponseWriter, r *http.Request) { p.Consent(w, r, consentData) }, []string{
			`<form id="consent-form" method="post" action="/consent">`,
			`name="csrf_token" value="csrf-token-value"`,
			`name="request" value="req-123"`,
			`<button id="deny" type="submit" name="decision" value="deny">`,
			`<button id="allow" type="submit" name="decision" value="allow"`,
		}},
		{"account", func(w http.ResponseWriter, r *http.Request) { p.Account(w, r, 0, accountData) }, []string{
			`<form id="signout-form" method="post" action="/logout"`,
			`<form method="post" action="/account/revoke" class="revoke">`,
			`name="client_id" value="c-1"`,
			`name="client_id" value="https://agent.example.com/client.json"`,
			`<form id="password-form" method="post" action="/account/password">`,
			`name="current_password" type="password"`,
			`name="new_password" type="password"`,
			`name="new_password2" type="password"`,
			`<form id="sessions-form" method="post" action="/account/sessions">`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := render(t, tt.f).Body.String()
			for _, want := range tt.want {
				if !strings.Contains(body, want) {
					t.Errorf("page does not contain %q", want)
				}
			}
		})
	}
}

func TestPagesEscape(t *testing.T) {
	p := newPages(t, false)
	const evil = `<script>alert(1)</script>`
	const escaped = `&lt;script&gt;alert(1)&lt;/script&gt;`
	c := consentData
	c.ClientName = evil
	c.Warnings = []string{evil}
	c.Scopes = []ScopeItem{{Name: evil, Description: evil, Tools: []string{evil}}}
	c.RedirectHost = evil
	tests := []struct {
		name string
		f    func(w http.ResponseWriter, r *http.Request)
	}{
		{"login", func(w http.ResponseWriter, r *http.Request) {
			p.Login(w, r, 0, LoginData{ClientName: evil, Error: evil, Username: evil})
		}},
		{"consent", func(w http.ResponseWriter, r *http.Request) { p.Consent(w, r, c) }},
		{"error", func(w http.ResponseWriter, r *http.Request) {
			p.Error(w, r, 400, ErrorData{Title: evil, Description: evil, Detail: evil, Code: evil})
		}},
		{"message", func(w http.ResponseWriter, r *http.Request) { p.Message(w, r, 0, MessageData{Title: evil, Body: evil}) }},
		{"account", func(w http.ResponseWriter, r *http.Request) {
			p.Account(w, r, 0, AccountData{Username: evil, Notice: evil, Error: evil, Agents: []AgentItem{{ClientName: evil, ClientID: evil, Publisher: evil,
				Resources: []AgentResource{{Resource: evil, Name: evil, Scopes: []string{evil}}}, ToolCalls: []ToolCallItem{{Tool: evil, Outcome: evil}}}}})
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := render(t, tt.f).Body.String()
			if strings.Contains(body, "<script") {
				t.Errorf("page contains an unescaped <script>:\n%s", body)
			}
			if !strings.Contains(body, escaped) {
				t.Errorf("page does not contain %q:\n%s", escaped, body)
			}
		})
	}
}

// TestPagesStripFormatCharacters: client-supplied text reaches no page
// with a Unicode format character in it (U+202E would show
// "Evil\u202egnp.exe" as "Evilexe.png"), while the revoke form still
// posts the client_id as stored.
func TestPagesStripFormatCharacters(t *testing.T) {
	p := newPages(t, false)
	const evil = "Evil\u202egnp.exe\u200b\u2066\ufeff"
	c := consentData
	c.ClientName, c.ClientID, c.ClientURI, c.Publisher, c.RedirectURI, c.RedirectHost = evil, evil, evil, evil, evil, ""
	tests := []struct {
		name string
		f    func(w http.ResponseWriter, r *http.Request)
	}{
		{"login", func(w http.ResponseWriter, r *http.Request) { p.Login(w, r, 0, LoginData{ClientName: evil}) }},
		{"consent", func(w http.ResponseWriter, r *http.Request) { p.Consent(w, r, c) }},
		{"error", func(w http.ResponseWriter, r *http.Request) { p.Error(w, r, 400, ErrorData{Description: evil}) }},
		{"error detail", func(w http.ResponseWriter, r *http.Request) { p.Error(w, r, 400, ErrorData{Detail: evil}) }},
		{"account", func(w http.ResponseWriter, r *http.Request) {
			p.Account(w, r, 0, AccountData{Agents: []AgentItem{{ClientName: evil, ClientID: evil, ToolCalls: []ToolCallItem{{Tool: evil}}}}})
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := render(t, tt.f).Body.String()
			shown := body
			if tt.name == "account" {
				if got := fieldValue(t, body, "client_id"); got != evil {
					t.Errorf("revoke form posts client_id %q, want the stored %q", got, evil)
				}
				shown = strings.ReplaceAll(body, `value="`+evil+`"`, "")
			}
			if strings.ContainsFunc(shown, func(r rune) bool { return unicode.Is(unicode.Cf, r) }) {
				t.Errorf("the %s page shows a format character:\n%q", tt.name, shown)
			}
			if !strings.Contains(shown, "Evilgnp.exe") {
				t.Errorf("the %s page does not show the text without its format characters:\n%s", tt.name, shown)
			}
		})
	}
	if got := Visible("plain"); got != "plain" {
		t.Errorf("Visible(%q) = %q", "plain", got)
	}
}

func TestPagesActionURLFiltered(t *testing.T) {
	p := newPages(t, false)
	body := render(t, func(w http.ResponseWriter, r *http.Request) {
		p.Login(w, r, 0, LoginData{Action: "javascript:alert(1)"})
	}).Body.String()
	if strings.Contains(body, "javascript:") {
		t.Errorf("page contains a javascript: URL:\n%s", body)
	}
	if want := `action="#ZgotmplZ"`; !strings.Contains(body, want) {
		t.Errorf("page does not contain %q", want)
	}
}

func TestConsentRedirectHost(t *testing.T) {
	p := newPages(t, false)
	tests := []struct {
		redirectURI, redirectHost, want string
	}{
		{"https://app.example.com/cb", "app.example.com", "app.example.com"},
		{"https://app.example.com/cb", "", "app.example.com"},
		{"http://127.0.0.1:3000/callback", "", "127.0.0.1:3000"},
		{"http://[::1]:8080/cb", "", "[::1]:8080"},
		{"com.example.app:/oauth2redirect", "", "the app com.example.app"},
		{"claude://claude.ai/mcp-auth-callback/sdk", "", "the app claude"},
		{"com.evil.app://github.com/cb", "", "the app com.evil.app"},
		{"HTTPS://App.Example.com/cb", "", "App.Example.com"},
	}
	for _, tt := range tests {
		d := consentData
		d.RedirectURI, d.RedirectHost = tt.redirectURI, tt.redirectHost
		body := render(t, func(w http.ResponseWriter, r *http.Request) { p.Consent(w, r, d) }).Body.String()
		want := `<p>After you allow, you will be sent to <span class="redirect-host">` + tt.want + `</span></p>`
		if !strings.Contains(body, want) {
			t.Errorf("Consent(RedirectURI %q, RedirectHost %q): page does not contain %q", tt.redirectURI, tt.redirectHost, want)
		}
	}
}

func TestConsentLoopbackWarning(t *testing.T) {
	p := newPages(t, false)
	const marker = `id="loopback-warning"`
	for _, loopback := range []bool{false, true} {
		d := consentData
		d.LoopbackOnly = loopback
		body := render(t, func(w http.ResponseWriter, r *http.Request) { p.Consent(w, r, d) }).Body.String()
		if got := strings.Contains(body, marker); got != loopback {
			t.Errorf("Consent(LoopbackOnly %v): warning shown = %v, want %v", loopback, got, loopback)
		}
		if got := strings.Contains(body, "Any program running on this computer could be receiving it."); got != loopback {
			t.Errorf("Consent(LoopbackOnly %v): warning text shown = %v, want %v", loopback, got, loopback)
		}
	}
}

// TestPagesMintCSRF checks that a page given no CSRF token mints one that
// CheckCSRF accepts with the cookie it set.
func TestPagesMintCSRF(t *testing.T) {
	p := newPages(t, true)
	w := render(t, func(w http.ResponseWriter, r *http.Request) {
		p.Consent(w, r, ConsentData{Action: "/consent", Request: "r"})
	})
	cookies := w.Result().Cookies()
	if len(cookies) != 1 {
		t.Fatalf("got %d cookies, want 1", len(cookies))
	}
	tok := fieldValue(t, w.Body.String(), "csrf_token")
	if !p.CheckCSRF(postForm(t, cookies[0], "csrf_token="+tok)) {
		t.Errorf("CheckCSRF(token from page %q, cookie %q) = false, want true", tok, cookies[0].Value)
	}
}

// fieldValue returns the value of the first input named name in body.
func fieldValue(t *testing.T, body, name string) string {
	t.Helper()
	_, rest, ok := strings.Cut(body, `name="`+name+`" value="`)
	if !ok {
		t.Fatalf("no field %q in page", name)
	}
	v, _, _ := strings.Cut(rest, `"`)
	return v
}

func TestNewOptions(t *testing.T) {
	tests := []struct {
		name       string
		opts       Options
		wantErr    bool
		wantStyle  string
		wantHeader string
	}{
		{"defaults", Options{CSRFKey: testKey}, false, "/static/gatehouse.", `<header class="site"><span class="site-name">Gatehouse</span></header>`},
		{"prefix without slash", Options{CSRFKey: testKey, StaticPrefix: "/assets", ProductName: "Acme Login"}, false, "/assets/gatehouse.", `<header class="site"><span class="site-name">Acme Login</span></header>`},
		{"branded", Options{CSRFKey: testKey, ProductName: " Acme\u202e Corp ", IssuerHost: "auth.acme.example:8443", LogoURL: "https://cdn.acme.example/logo.svg"}, false, "/static/gatehouse.",
			`<header class="site"><img class="logo" src="https://cdn.acme.example/logo.svg" alt="" height="28"><span class="site-name">Acme Corp</span><span class="site-host">auth.acme.example:8443</span></header>`},
		{"http logo", Options{CSRFKey: testKey, LogoURL: "http://cdn.acme.example/logo.png"}, true, "", ""},
		{"javascript logo", Options{CSRFKey: testKey, LogoURL: "javascript:alert(1)"}, true, "", ""},
		{"relative prefix", Options{CSRFKey: testKey, StaticPrefix: "static/"}, true, "", ""},
		{"no key", Options{}, true, "", ""},
		{"short key", Options{CSRFKey: make([]byte, 31)}, true, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := New(tt.opts)
			if gotErr := err != nil; gotErr != tt.wantErr {
				t.Fatalf("New(%s): got error %v, want error %v", tt.name, err, tt.wantErr)
			}
			if err != nil {
				return
			}
			if got := p.StylesheetURL(); !strings.HasPrefix(got, tt.wantStyle) || !strings.HasSuffix(got, ".css") {
				t.Errorf("StylesheetURL() = %q, want %q…css", got, tt.wantStyle)
			}
			body := render(t, func(w http.ResponseWriter, r *http.Request) { p.Message(w, r, 0, MessageData{Title: "Signed out"}) }).Body.String()
			if !strings.Contains(body, tt.wantHeader) {
				t.Errorf("page does not contain %q", tt.wantHeader)
			}
			if want := `<link rel="stylesheet" href="` + p.StylesheetURL() + `">`; !strings.Contains(body, want) {
				t.Errorf("page does not contain %q", want)
			}
		})
	}
}

func TestNewCopiesKey(t *testing.T) {
	key := bytes.Clone(testKey)
	p, err := New(Options{CSRFKey: key})
	if err != nil {
		t.Fatal(err)
	}
	c := &http.Cookie{Name: "gh_csrf", Value: strings.Repeat("A", 52)}
	w := httptest.NewRecorder()
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.AddCookie(c)
	before := p.CSRFToken(w, r)
	key[0] ^= 0xff
	if got := p.CSRFToken(w, r); got != before {
		t.Errorf("CSRFToken after caller changed its key slice: got %q, want %q", got, before)
	}
}

// TestPagesPasskeys: a sign-in page offering passkeys and an account page
// with the Passkeys section load the one script from ScriptURL, with no
// inline script; the passkey forms carry the CSRF token and stay hidden
// until the script shows them; a passkey's name is escaped.
func TestPagesPasskeys(t *testing.T) {
	p := newPages(t, false)
	const evil = `<script>alert(1)</script>`
	login := render(t, func(w http.ResponseWriter, r *http.Request) {
		p.Login(w, r, 0, LoginData{CSRF: "tok", PasskeyAction: "/passkey/login", PasskeyOptions: "/passkey/options"})
	}).Body.String()
	account := render(t, func(w http.ResponseWriter, r *http.Request) {
		p.Account(w, r, 0, AccountData{CSRF: "tok", Username: "alice", PasskeyAddAction: "/account/passkeys/add", PasskeyOptionsAction: "/account/passkeys/options",
			PasskeyRenameAction: "/account/passkeys/rename", PasskeyRemoveAction: "/account/passkeys/remove",
			Passkeys: []PasskeyItem{{ID: "cred-1", Name: evil}}})
	}).Body.String()
	for name, tc := range map[string]struct{ body, form, ceremony string }{
		"login":   {login, `<form id="passkey-login" method="post" action="/passkey/login" class="provider" data-ceremony="get" data-options="/passkey/options" hidden>`, "get"},
		"account": {account, `<form id="passkey-add" method="post" action="/account/passkeys/add" data-ceremony="create" data-options="/account/passkeys/options" hidden>`, "create"},
	} {
		if got := strings.Count(tc.body, "<script"); got != 1 || !strings.Contains(tc.body, `<script src="`+p.ScriptURL()+`"></script>`) {
			t.Errorf("%s: %d <script> elements, want exactly <script src=%q></script>:\n%s", name, got, p.ScriptURL(), tc.body)
		}
		if !strings.Contains(tc.body, tc.form) {
			t.Errorf("%s: no %s passkey form %s:\n%s", name, tc.ceremony, tc.form, tc.body)
		}
	}
	for _, action := range []string{"rename", "remove"} {
		if want := `action="/account/passkeys/` + action + `" class="inline">` + "\n" + `<input type="hidden" name="csrf_token" value="tok">`; !strings.Contains(account, want) {
			t.Errorf("account: no %s form with the CSRF token:\n%s", action, account)
		}
	}
	if strings.Contains(account, evil) || !strings.Contains(account, "&lt;script&gt;alert(1)&lt;/script&gt;") {
		t.Errorf("account: passkey name not escaped:\n%s", account)
	}
	// Without passkeys, no script.
	plain := render(t, func(w http.ResponseWriter, r *http.Request) { p.Login(w, r, 0, LoginData{}) }).Body.String()
	if strings.Contains(plain, "<script") || strings.Contains(plain, "passkey") {
		t.Errorf("login without passkeys mentions them:\n%s", plain)
	}
}
