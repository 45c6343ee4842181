package as

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// TestAuthorizeRefusedWithoutRedirect: until client and redirect URI are
// verified, every error is an HTML page and never a redirect (AS-12,
// AS-13), and nothing is stored.
func TestAuthorizeRefusedWithoutRedirect(t *testing.T) {
	ts := newTestServer(t, nil)
	base := defaultAuth()
	tests := []struct {
		name     string
		mod      func(v url.Values)
		wantCode string
	}{
		{"missing client_id", func(v url.Values) { v.Del("client_id") }, "invalid_request"},
		{"unknown client", func(v url.Values) { v.Set("client_id", "nobody") }, "invalid_client"},
		{"missing redirect_uri", func(v url.Values) { v.Del("redirect_uri") }, "invalid_request"},
		{"unregistered redirect_uri", func(v url.Values) { v.Set("redirect_uri", "https://evil.example.com/callback") }, "invalid_request"},
		{"path suffix", func(v url.Values) { v.Set("redirect_uri", "http://127.0.0.1:5555/callback/evil") }, "invalid_request"},
		{"path traversal", func(v url.Values) { v.Set("redirect_uri", "http://127.0.0.1:5555/callback/../evil") }, "invalid_request"},
		{"userinfo", func(v url.Values) { v.Set("redirect_uri", "http://127.0.0.1@evil.example.com/callback") }, "invalid_request"},
		{"localhost for 127.0.0.1", func(v url.Values) { v.Set("redirect_uri", "http://localhost.evil.com:5555/callback") }, "invalid_request"},
		{"case changed", func(v url.Values) { v.Set("redirect_uri", "http://127.0.0.1:5555/Callback") }, "invalid_request"},
		{"percent-encoded", func(v url.Values) { v.Set("redirect_uri", "http://127.0.0.1:5555/%63allback") }, "invalid_request"},
		{"fragment", func(v url.Values) { v.Set("redirect_uri", "http://127.0.0.1:5555/callback#x") }, "invalid_request"},
		{"duplicate parameter", func(v url.Values) { v.Add("state", "again") }, "invalid_request"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := ts.snapshot(t)
			v, _ := url.ParseQuery(strings.SplitN(base.url(ts.URL), "?", 2)[1])
			tt.mod(v)
			p := newBrowser(t).get(ts.URL + "/authorize?" + v.Encode())
			if p.status != http.StatusBadRequest || p.header.Get("Location") != "" {
				t.Fatalf("status %d Location %q, want 400 and no redirect", p.status, p.header.Get("Location"))
			}
			if !strings.Contains(p.header.Get("Content-Type"), "text/html") || !strings.Contains(p.body, tt.wantCode) {
				t.Errorf("page does not name %q:\n%s", tt.wantCode, p.body)
			}
			if p.header.Get("Content-Security-Policy") == "" || p.header.Get("X-Frame-Options") != "DENY" {
				t.Errorf("error page lacks CSP or X-Frame-Options")
			}
			if after := ts.snapshot(t); after != before {
				t.Errorf("storage changed")
			}
		})
	}
}

// TestAuthorizeRedirectedErrors: once the redirect URI is trusted, errors
// go back to the client with state and iss (AS-7, AS-14, AS-9).
func TestAuthorizeRedirectedErrors(t *testing.T) {
	ts := newTestServer(t, nil)
	tests := []struct {
		name     string
		mod      func(v url.Values)
		wantCode string
	}{
		{"response_type token", func(v url.Values) { v.Set("response_type", "token") }, "unsupported_response_type"},
		{"missing response_type", func(v url.Values) { v.Del("response_type") }, "invalid_request"},
		{"missing code_challenge", func(v url.Values) { v.Del("code_challenge"); v.Del("code_challenge_method") }, "invalid_request"},
		{"plain PKCE", func(v url.Values) { v.Set("code_challenge_method", "plain") }, "invalid_request"},
		{"missing method", func(v url.Values) { v.Del("code_challenge_method") }, "invalid_request"},
		{"malformed challenge", func(v url.Values) { v.Set("code_challenge", "short") }, "invalid_request"},
		{"unknown scope", func(v url.Values) { v.Set("scope", "admin") }, "invalid_scope"},
		{"scope of another resource", func(v url.Values) { v.Set("scope", "other:read") }, "invalid_scope"},
		{"unknown resource", func(v url.Values) { v.Set("resource", "https://unknown.example.com/mcp") }, "invalid_target"},
		{"resource with fragment", func(v url.Values) { v.Set("resource", testResource+"#f") }, "invalid_target"},
		{"two resources", func(v url.Values) { v.Add("resource", testResource2) }, "invalid_target"},
		{"request object", func(v url.Values) { v.Set("request", "eyJ.x.y") }, "invalid_request"},
		{"unknown prompt", func(v url.Values) { v.Set("prompt", "select_account") }, "invalid_request"},
		{"prompt none not signed in", func(v url.Values) { v.Set("prompt", "none") }, "login_required"},
	}
	var bodies strings.Builder
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := ts.snapshot(t)
			v, _ := url.ParseQuery(strings.SplitN(defaultAuth().url(ts.URL), "?", 2)[1])
			tt.mod(v)
			loc := location(t, newBrowser(t).get(ts.URL+"/authorize?"+v.Encode()))
			q := loc.Query()
			if q.Get("error") != tt.wantCode || q.Get("state") != "st-1" || q.Get("iss") != ts.URL || q.Get("error_description") == "" {
				t.Errorf("redirect query = %v, want error=%s with description, state=st-1, iss=%s", q, tt.wantCode, ts.URL)
			}
			if !strings.HasPrefix(loc.String(), "http://127.0.0.1:5555/callback?") {
				t.Errorf("redirected to %s, want the registered redirect URI", loc)
			}
			if tt.wantCode != "login_required" && ts.snapshot(t) != before {
				t.Errorf("storage changed")
			}
			fmt.Fprintf(&bodies, "%s: error=%s error_description=%s\n", tt.name, q.Get("error"), q.Get("error_description"))
		})
	}
	golden(t, ts, "authorize_errors", bodies.String())
}

// TestAuthorizeNoState: without state, none is returned, but iss is.
func TestAuthorizeNoState(t *testing.T) {
	ts := newTestServer(t, nil)
	a := defaultAuth()
	a.state = ""
	loc := ts.authorize(t, newBrowser(t), a)
	if loc.Query().Has("state") || loc.Query().Get("iss") != ts.URL {
		t.Errorf("redirect = %s, want no state and iss", loc)
	}
}

// TestAuthorizeDefaults: no scope gives the resource's default scopes; no
// resource with two registered resources is invalid_target; with one
// resource it is the audience (documented default).
func TestAuthorizeDefaults(t *testing.T) {
	ts := newTestServer(t, nil)
	a := defaultAuth()
	a.scope = ""
	code := ts.code(t, a)
	s, _, body := ts.post(t, "/token", url.Values{"grant_type": {"authorization_code"}, "code": {code}, "client_id": {publicClient}, "redirect_uri": {a.redirectURI}, "code_verifier": {testVerifier}}, "", "")
	if s != 200 || !strings.Contains(body, `"scope":"notes:read"`) {
		t.Errorf("no scope: token = %d %s, want the default scope notes:read", s, body)
	}
	a.resource = ""
	loc := newBrowser(t).get(a.url(ts.URL))
	if q := location(t, loc).Query(); q.Get("error") != "invalid_target" {
		t.Errorf("no resource with two registered: %v, want invalid_target", q)
	}
	must(t, ts.Store.DeleteResource(t.Context(), testResource2))
	ts.Clock.Advance(cacheTTL) // a change made by another process (the CLI) is seen within cacheTTL
	a.scope = "notes:read"
	code = ts.code(t, a)
	s, _, body = ts.post(t, "/token", url.Values{"grant_type": {"authorization_code"}, "code": {code}, "client_id": {publicClient}, "redirect_uri": {a.redirectURI}, "code_verifier": {testVerifier}}, "", "")
	if s != 200 {
		t.Fatalf("single resource default: token = %d %s", s, body)
	}
}

// TestLoginFailures: a wrong password shows one message that does not say
// which field was wrong; repeated failures are refused with Retry-After.
func TestLoginFailures(t *testing.T) {
	ts := newTestServer(t, func(o *Options) { o.LoginMaxFailures = 3 })
	b := newBrowser(t)
	p := b.get(defaultAuth().url(ts.URL))
	for i, cred := range [][2]string{{testUser, "wrong"}, {"nobody", "wrong"}, {testUser, "wrong"}, {testUser, "wrong"}} {
		p = ts.login(t, b, p, cred[0], cred[1])
		if p.status != http.StatusUnauthorized || !strings.Contains(p.body, msgBadLogin) {
			t.Fatalf("attempt %d: status %d, want 401 with %q", i, p.status, msgBadLogin)
		}
	}
	p = ts.login(t, b, p, testUser, testPassword)
	if p.status != http.StatusTooManyRequests || p.header.Get("Retry-After") == "" || !strings.Contains(p.body, "Too many failed sign-in attempts") {
		t.Fatalf("after 3 failures: status %d Retry-After %q, want 429 with Retry-After", p.status, p.header.Get("Retry-After"))
	}
	ts.Clock.Advance(16 * time.Minute)
	p = ts.login(t, b, p, testUser, testPassword)
	if p.status != http.StatusBadRequest || !strings.Contains(p.body, "expired") {
		t.Fatalf("login on an expired request: status %d, want 400 saying it expired", p.status)
	}
	p = ts.login(t, b, b.get(defaultAuth().url(ts.URL)), testUser, testPassword)
	if !strings.Contains(p.body, `id="consent-form"`) {
		t.Fatalf("after the window: status %d, want the consent page", p.status)
	}
}

// TestConsentDenied: deny sends access_denied with state and iss.
func TestConsentDenied(t *testing.T) {
	ts := newTestServer(t, nil)
	b := newBrowser(t)
	p := ts.login(t, b, b.get(defaultAuth().url(ts.URL)), testUser, testPassword)
	loc := location(t, ts.consent(t, b, p, "deny"))
	if q := loc.Query(); q.Get("error") != "access_denied" || q.Get("state") != "st-1" || q.Get("iss") != ts.URL || q.Has("code") {
		t.Errorf("deny redirect = %v, want access_denied with state and iss and no code", q)
	}
}

// TestCSRF: a consent POST without the token, or with a token from
// another browser, is refused and issues nothing.
func TestCSRF(t *testing.T) {
	ts := newTestServer(t, nil)
	victim := newBrowser(t)
	p := ts.login(t, victim, victim.get(defaultAuth().url(ts.URL)), testUser, testPassword)
	action, v := p.form(t, "consent-form")
	attacker := newBrowser(t)
	_, av := attacker.get(defaultAuth().url(ts.URL)).form(t, "login-form")

	before := ts.snapshot(t)
	for name, token := range map[string]string{"missing": "", "another browser's": av.Get("csrf_token")} {
		v.Set("csrf_token", token)
		v.Set("decision", "allow")
		r := victim.post(ts.origin()+action, v)
		if r.status != http.StatusForbidden || r.header.Get("Location") != "" {
			t.Errorf("%s CSRF token: status %d Location %q, want 403 and no redirect", name, r.status, r.header.Get("Location"))
		}
	}
	if ts.snapshot(t) != before {
		t.Errorf("storage changed")
	}
}

// TestSessionFixation: the session cookie set at login is new, whatever
// cookie the browser came with.
func TestSessionFixation(t *testing.T) {
	ts := newTestServer(t, nil)
	b := newBrowser(t)
	u, _ := url.Parse(ts.URL)
	b.client.Jar.SetCookies(u, []*http.Cookie{{Name: sessionCookie, Value: "planted-by-attacker", Path: "/"}})
	p := ts.login(t, b, b.get(defaultAuth().url(ts.URL)), testUser, testPassword)
	if p.status != http.StatusOK {
		t.Fatalf("login = %d", p.status)
	}
	for _, c := range b.client.Jar.Cookies(u) {
		if c.Name == sessionCookie && c.Value == "planted-by-attacker" {
			t.Fatalf("the planted session id survived login")
		}
	}
}
