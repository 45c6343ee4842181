package as

import (
	"encoding/json"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-mcp/gatehouse/internal/password"
	"github.com/gatehouse-mcp/gatehouse/internal/storage"
)

// connect runs alice's browser b through the authorization flow of the
// public client and redeems the code: the client is then connected to
// her account with a refresh token.
func (ts *testServer) connect(t *testing.T, b *browser) tokenResponse {
	t.Helper()
	loc := ts.authorize(t, b, defaultAuth())
	s, _, body := ts.post(t, "/token", exchange(loc.Query().Get("code")), "", "")
	if s != http.StatusOK {
		t.Fatalf("token = %d %s", s, body)
	}
	var tr tokenResponse
	must(t, json.Unmarshal([]byte(body), &tr))
	if tr.RefreshToken == "" {
		t.Fatal("no refresh token")
	}
	return tr
}

// addUser stores another local user with password pw.
func (ts *testServer) addUser(t *testing.T, id, name, pw string) {
	t.Helper()
	hash, err := password.HashWithParams(pw, password.Params{Memory: 64, Time: 1, Parallelism: 1, SaltLength: 16, KeyLength: 32}, strings.NewReader(strings.Repeat("y", 64)))
	must(t, err)
	now := ts.Clock.Now()
	must(t, ts.Store.CreateUser(t.Context(), storage.User{ID: id, Username: name, PasswordHash: hash, CreatedAt: now, UpdatedAt: now}))
}

// accountLogin signs b in on the account sign-in page and returns the
// response to the POST.
func (ts *testServer) accountLogin(t *testing.T, b *browser, user, pw string) page {
	t.Helper()
	p := b.get(ts.URL + pathAccountLogin)
	action, v := p.form(t, "login-form")
	v.Set("username", user)
	v.Set("password", pw)
	return b.post(ts.origin()+action, v)
}

// accountPost posts form to path with the CSRF token of b's account page.
func (ts *testServer) accountPost(t *testing.T, b *browser, path string, form url.Values) page {
	t.Helper()
	form.Set("csrf_token", hiddenFields(b.get(ts.URL+pathAccount)).Get("csrf_token"))
	return b.post(ts.URL+path, form)
}

func (ts *testServer) refreshStatus(t *testing.T, rt string) (int, string) {
	t.Helper()
	s, _, body := ts.post(t, "/token", refreshForm(rt), "", "")
	return s, body
}

// TestAccountSignIn: signed out, /account sends the browser to its own
// sign-in page; a POST without the CSRF token is refused; a wrong
// password is refused and audited like the authorization flow's; the
// right one starts a session and lands on /account, which names the user.
func TestAccountSignIn(t *testing.T) {
	ts := newTestServer(t, nil)
	b := newBrowser(t)
	p := b.get(ts.URL + pathAccount)
	if p.status != http.StatusSeeOther || p.header.Get("Location") != pathAccountLogin {
		t.Fatalf("signed-out GET /account = %d Location %q, want 303 to %s", p.status, p.header.Get("Location"), pathAccountLogin)
	}
	if p := b.post(ts.URL+pathAccountLogin, url.Values{"username": {testUser}, "password": {testPassword}}); p.status != http.StatusForbidden {
		t.Errorf("sign-in without CSRF token = %d, want 403", p.status)
	}
	if p := ts.accountLogin(t, b, testUser, "wrong"); p.status != http.StatusUnauthorized || !strings.Contains(p.body, msgBadLogin) {
		t.Errorf("wrong password = %d, want 401 with %q", p.status, msgBadLogin)
	}
	if p := b.get(ts.URL + pathAccount); p.status != http.StatusSeeOther {
		t.Errorf("after a failed sign-in GET /account = %d, want 303", p.status)
	}
	p = ts.accountLogin(t, b, testUser, testPassword)
	if p.status != http.StatusSeeOther || p.header.Get("Location") != pathAccount {
		t.Fatalf("sign-in = %d Location %q, want 303 to %s", p.status, p.header.Get("Location"), pathAccount)
	}
	p = b.get(ts.URL + pathAccount)
	if p.status != http.StatusOK || !strings.Contains(p.body, "Signed in as <strong>"+testUser+"</strong>") || !strings.Contains(p.body, `id="no-agents"`) {
		t.Errorf("account page = %d:\n%s", p.status, p.body)
	}
	events, err := ts.Store.QueryAudit(t.Context(), storage.AuditQuery{Type: "login.", UserID: ts.userID})
	must(t, err)
	var types []string
	for _, e := range events {
		types = append(types, e.Type)
	}
	if got := strings.Join(types, " "); got != "login.failure login.success" {
		t.Errorf("audit = %q, want login.failure login.success", got)
	}
}

// TestAccountSignInThrottled: the account sign-in shares the login
// throttle: past LoginMaxFailures it answers 429 with Retry-After.
func TestAccountSignInThrottled(t *testing.T) {
	ts := newTestServer(t, func(o *Options) { o.LoginMaxFailures = 1 })
	b := newBrowser(t)
	ts.accountLogin(t, b, testUser, "wrong")
	p := ts.accountLogin(t, b, testUser, testPassword)
	if p.status != http.StatusTooManyRequests || p.header.Get("Retry-After") == "" {
		t.Errorf("sign-in past the limit = %d Retry-After %q, want 429 with Retry-After", p.status, p.header.Get("Retry-After"))
	}
}

// TestAccountConnectedAgents: the page lists the client alice connected,
// with its publisher line, scopes per resource, last use and her last
// tool calls through it (newest first, at most 5), and nobody else's.
func TestAccountConnectedAgents(t *testing.T) {
	ts := newTestServer(t, nil)
	ts.addUser(t, "user-bob", "bob", "bob's password")
	b := newBrowser(t)
	ts.connect(t, b)
	ctx := t.Context()
	base := ts.Clock.Now()
	var events []storage.AuditEvent
	for i := range 6 {
		events = append(events, storage.AuditEvent{Time: base.Add(time.Duration(i) * time.Minute), Type: "gateway.tool_call", UserID: ts.userID, ClientID: publicClient, Resource: testResource, Outcome: "allowed", Detail: "route=notes tool=tool" + string(rune('a'+i)) + " call=1"})
	}
	events = append(events,
		storage.AuditEvent{Time: base.Add(10 * time.Minute), Type: "demo.tool_call", UserID: ts.userID, ClientID: publicClient, Resource: testResource, Outcome: "ok", Detail: "tool=add_note"},
		storage.AuditEvent{Time: base.Add(20 * time.Minute), Type: "gateway.tool_call", UserID: "user-bob", ClientID: publicClient, Outcome: "allowed", Detail: "tool=bobs_tool"},
		storage.AuditEvent{Time: base.Add(20 * time.Minute), Type: "gateway.tool_call", UserID: ts.userID, ClientID: webClient, Outcome: "allowed", Detail: "tool=other_clients_tool"})
	must(t, ts.Store.AppendAudits(ctx, events))

	p := b.get(ts.URL + pathAccount)
	if p.status != http.StatusOK {
		t.Fatalf("account page = %d", p.status)
	}
	for _, want := range []string{
		"<h3>Public App</h3>", "Registered by your administrator", "<code>notes:read</code>", "Notes <code>" + testResource + "</code>",
		"(last sign-in or token refresh)", "at most 10 minutes", "MCP servers protected only by the <code>rs</code> library do not report them",
	} {
		if !strings.Contains(p.body, want) {
			t.Errorf("account page lacks %q", want)
		}
	}
	calls := regexpAll(`<code class="tool">([^<]*)</code>`, p.body)
	if got, want := strings.Join(calls, " "), "add_note toolf toole toold toolc"; got != want {
		t.Errorf("last tool calls = %q, want %q", got, want)
	}
	if strings.Contains(p.body, "Web App") {
		t.Error("the page lists a client alice never connected")
	}

	// Bob signs in: alice's client is not his.
	bob := newBrowser(t)
	ts.accountLogin(t, bob, "bob", "bob's password")
	if p := bob.get(ts.URL + pathAccount); p.status != http.StatusOK || strings.Contains(p.body, "Public App") || strings.Contains(p.body, "bobs_tool") {
		t.Errorf("bob's account page = %d, lists alice's client or a tool call:\n%s", p.status, p.body)
	}
}

// TestAccountRevoke: Revoke ends the client's consent and grants: the
// refresh token fails with invalid_grant at once, the access token
// introspects inactive, consent.revoked is audited, and the page no
// longer lists the client.
func TestAccountRevoke(t *testing.T) {
	ts := newTestServer(t, nil)
	b := newBrowser(t)
	tr := ts.connect(t, b)
	p := ts.accountPost(t, b, pathAccountRevoke, url.Values{"client_id": {publicClient}})
	if p.status != http.StatusSeeOther || p.header.Get("Location") != pathAccount+"?done=revoked" {
		t.Fatalf("revoke = %d Location %q:\n%s", p.status, p.header.Get("Location"), p.body)
	}
	s, body := ts.refreshStatus(t, tr.RefreshToken)
	assertOAuthError(t, s, body, http.StatusBadRequest, "invalid_grant")
	if ts.introspect(t, tr.AccessToken) {
		t.Error("the access token introspects active after the revocation")
	}
	events, err := ts.Store.QueryAudit(t.Context(), storage.AuditQuery{Type: "consent.revoked", UserID: ts.userID})
	must(t, err)
	if len(events) != 1 || events[0].ClientID != publicClient || events[0].Resource != testResource {
		t.Errorf("consent.revoked events = %+v, want one for %s at %s", events, publicClient, testResource)
	}
	p = b.get(ts.URL + p.header.Get("Location"))
	if strings.Contains(p.body, "<h3>Public App</h3>") || !strings.Contains(p.body, accountNotices["revoked"]) {
		t.Errorf("after revoking, the page still lists the client or lacks the notice:\n%s", p.body)
	}
}

// TestAccountCannotRevokeOthers: bob posting the client_id of alice's
// agent revokes nothing of hers (404), and her refresh token still works.
func TestAccountCannotRevokeOthers(t *testing.T) {
	ts := newTestServer(t, nil)
	ts.addUser(t, "user-bob", "bob", "bob's password")
	tr := ts.connect(t, newBrowser(t))
	bob := newBrowser(t)
	ts.accountLogin(t, bob, "bob", "bob's password")
	before := ts.snapshot(t)
	if p := ts.accountPost(t, bob, pathAccountRevoke, url.Values{"client_id": {publicClient}}); p.status != http.StatusNotFound {
		t.Errorf("bob revoking alice's client = %d, want 404", p.status)
	}
	// The old per-resource form, with alice's client and resource.
	ts.accountPost(t, bob, pathConsents, url.Values{"client_id": {publicClient}, "resource": {testResource}})
	if ts.snapshot(t) != before {
		t.Error("bob's revocations changed storage")
	}
	if s, body := ts.refreshStatus(t, tr.RefreshToken); s != http.StatusOK {
		t.Errorf("alice's refresh token after bob's attempts = %d %s, want 200", s, body)
	}
}

// TestAccountConsentsRedirect: the old /account/consents address sends a
// GET to /account.
func TestAccountConsentsRedirect(t *testing.T) {
	ts := newTestServer(t, nil)
	if p := newBrowser(t).get(ts.URL + pathConsents); p.status != http.StatusSeeOther || p.header.Get("Location") != pathAccount {
		t.Errorf("GET %s = %d Location %q, want 303 to %s", pathConsents, p.status, p.header.Get("Location"), pathAccount)
	}
	// The old form's POST revokes only a consent or grant the user holds;
	// anything else is 404 and leaves no audit row (review of 16a, L1).
	b := newBrowser(t)
	ts.accountLogin(t, b, testUser, testPassword)
	before, err := ts.Store.QueryAudit(t.Context(), storage.AuditQuery{Type: "consent.revoked", Limit: 100})
	must(t, err)
	for _, f := range []url.Values{
		{"client_id": {"https://evil.example/ \u202e fake"}, "resource": {""}},
		{"client_id": {publicClient}, "resource": {testResource}},
		{"client_id": {""}, "resource": {testResource}},
	} {
		if p := ts.accountPost(t, b, pathConsents, f); p.status != http.StatusNotFound {
			t.Errorf("POST %s %v = %d, want 404 (nothing held)", pathConsents, f, p.status)
		}
	}
	after, err := ts.Store.QueryAudit(t.Context(), storage.AuditQuery{Type: "consent.revoked", Limit: 100})
	must(t, err)
	if len(after) != len(before) {
		t.Errorf("consent.revoked rows %d -> %d: a revocation of nothing was audited as a success", len(before), len(after))
	}
}

// TestAccountPasswordChange: the current password must be right, the new
// one follow the rules and be typed twice; a change ends everything alice
// held (the refresh token fails, other sessions end) but keeps this
// browser signed in, and only the new password signs in.
func TestAccountPasswordChange(t *testing.T) {
	ts := newTestServer(t, nil)
	b := newBrowser(t)
	tr := ts.connect(t, b)
	other := newBrowser(t)
	ts.accountLogin(t, other, testUser, testPassword)
	const next = "a brand new password"
	for _, tt := range []struct {
		name, current, new1, new2 string
		want                      string
	}{
		{"wrong current", "wrong", next, next, msgWrongCurrent},
		{"too short", testPassword, "short", "short", password.Rules},
		{"not the same twice", testPassword, next, next + "x", msgPasswordsDiffer},
	} {
		p := ts.accountPost(t, b, pathAccountPassword, url.Values{"current_password": {tt.current}, "new_password": {tt.new1}, "new_password2": {tt.new2}})
		if p.status != http.StatusBadRequest || !strings.Contains(p.body, tt.want) {
			t.Errorf("%s: %d, want 400 with %q", tt.name, p.status, tt.want)
		}
	}
	if s, _ := ts.refreshStatus(t, tr.RefreshToken); s != http.StatusOK {
		t.Fatalf("a refused change revoked the refresh token: %d", s)
	}
	p := ts.accountPost(t, b, pathAccountPassword, url.Values{"current_password": {testPassword}, "new_password": {next}, "new_password2": {next}})
	if p.status != http.StatusSeeOther || p.header.Get("Location") != pathAccount+"?done=password" {
		t.Fatalf("change = %d Location %q:\n%s", p.status, p.header.Get("Location"), p.body)
	}
	if p := b.get(ts.URL + pathAccount); p.status != http.StatusOK {
		t.Errorf("this browser was signed out by its own change: %d", p.status)
	}
	if p := other.get(ts.URL + pathAccount); p.status != http.StatusSeeOther {
		t.Errorf("another session survived the change: %d", p.status)
	}
	s, body := ts.refreshStatus(t, tr.RefreshToken)
	assertOAuthError(t, s, body, http.StatusBadRequest, "invalid_grant")
	if p := ts.accountLogin(t, newBrowser(t), testUser, testPassword); p.status != http.StatusUnauthorized {
		t.Errorf("the old password still signs in: %d", p.status)
	}
	if p := ts.accountLogin(t, newBrowser(t), testUser, next); p.status != http.StatusSeeOther {
		t.Errorf("the new password does not sign in: %d", p.status)
	}
}

// TestAccountSignOutOthers: "Sign out other sessions" ends alice's other
// sessions, keeps this one, and leaves bob's alone.
func TestAccountSignOutOthers(t *testing.T) {
	ts := newTestServer(t, nil)
	ts.addUser(t, "user-bob", "bob", "bob's password")
	b, other, bob := newBrowser(t), newBrowser(t), newBrowser(t)
	ts.accountLogin(t, b, testUser, testPassword)
	ts.accountLogin(t, other, testUser, testPassword)
	ts.accountLogin(t, bob, "bob", "bob's password")
	if p := ts.accountPost(t, b, pathAccountSessions, url.Values{}); p.status != http.StatusSeeOther {
		t.Fatalf("sign out others = %d", p.status)
	}
	for name, tt := range map[string]struct {
		b    *browser
		want int
	}{"this": {b, http.StatusOK}, "other": {other, http.StatusSeeOther}, "bob's": {bob, http.StatusOK}} {
		if p := tt.b.get(ts.URL + pathAccount); p.status != tt.want {
			t.Errorf("%s session: GET /account = %d, want %d", name, p.status, tt.want)
		}
	}
}

// TestAccountPostSignedOut: a POST with a valid CSRF token but no session
// changes nothing and shows the sign-in page with 401.
func TestAccountPostSignedOut(t *testing.T) {
	ts := newTestServer(t, nil)
	b := newBrowser(t)
	csrf := hiddenFields(b.get(ts.URL + pathAccountLogin)).Get("csrf_token")
	for _, path := range []string{pathAccountRevoke, pathAccountPassword, pathAccountSessions} {
		p := b.post(ts.URL+path, url.Values{"csrf_token": {csrf}, "client_id": {publicClient}})
		if p.status != http.StatusUnauthorized || !strings.Contains(p.body, `id="login-form"`) {
			t.Errorf("signed-out POST %s = %d, want 401 with the sign-in form", path, p.status)
		}
	}
}

func TestDetailField(t *testing.T) {
	for _, tt := range []struct{ detail, want string }{
		{"route=notes tool=add_note call=7", "add_note"},
		{"tool=read_note", "read_note"},
		{`route=x tool="a b" call=1`, "a b"},
		{"route=x mytool=no", ""},
		{"", ""},
	} {
		if got := detailField(tt.detail, "tool"); got != tt.want {
			t.Errorf("detailField(%q) = %q, want %q", tt.detail, got, tt.want)
		}
	}
}

// regexpAll returns the first group of every match of expr in s.
func regexpAll(expr, s string) []string {
	var out []string
	for _, m := range regexp.MustCompile(expr).FindAllStringSubmatch(s, -1) {
		out = append(out, m[1])
	}
	return out
}

// TestAccountSignInUpstream: the account sign-in offers the upstream
// provider; its callback lands on /account, signed in as the provisioned
// user, with no authorization to continue.
func TestAccountSignInUpstream(t *testing.T) {
	ts, idp := newUpstreamServer(t, nil)
	b := newBrowser(t)
	p := b.get(ts.URL + pathAccountLogin)
	action, v := p.form(t, "oidc-acme")
	p = b.post(ts.origin()+action, v)
	p = b.get(location(t, p).String()) // the provider answers at once
	p = b.get(location(t, p).String()) // Gatehouse's callback
	if p.status != http.StatusSeeOther || p.header.Get("Location") != pathAccount {
		t.Fatalf("after the provider's callback: %d Location %q, want 303 to %s:\n%s", p.status, p.header.Get("Location"), pathAccount, p.body)
	}
	if p := b.get(ts.URL + pathAccount); p.status != http.StatusOK || !strings.Contains(p.body, "oidc:acme:"+idp.subject) {
		t.Errorf("account page after the upstream sign-in = %d, want it signed in as oidc:acme:%s", p.status, idp.subject)
	}
	// An upstream user has no password to change here.
	if p := b.get(ts.URL + pathAccount); strings.Contains(p.body, `id="password-form"`) {
		t.Error("the account page offers a password change to a user without a password")
	}
}

// TestAccountRequestRefusedByAuthorizationForms: the account sign-in's
// sealed request names no client; posted to the authorization flow's
// login or consent form it is refused, not continued.
func TestAccountRequestRefusedByAuthorizationForms(t *testing.T) {
	ts, _ := newUpstreamServer(t, nil)
	b := newBrowser(t)
	_, v := b.get(ts.URL+pathAccountLogin).form(t, "oidc-acme")
	if v.Get("request") == "" {
		t.Fatal("the account sign-in's provider form has no request field")
	}
	v.Set("username", testUser)
	v.Set("password", testPassword)
	v.Set("decision", "allow")
	for _, path := range []string{pathLogin, pathConsent} {
		p := b.post(ts.URL+path, v)
		if p.status != http.StatusBadRequest || !strings.Contains(p.body, htmlEscape(msgAccountRequest)) {
			t.Errorf("POST %s with the account sign-in's request = %d, want 400 with %q", path, p.status, msgAccountRequest)
		}
	}
}
