package as

import (
	"context"
	"encoding/json"
	"html"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/gatehouse-mcp/gatehouse/internal/gateway"
	"github.com/gatehouse-mcp/gatehouse/internal/token"
)

// oauth2Config is golang.org/x/oauth2 set up as the public test client.
func (ts *testServer) oauth2Config(redirect string) *oauth2.Config {
	return &oauth2.Config{
		ClientID:    publicClient,
		RedirectURL: redirect,
		Scopes:      []string{"notes:read"},
		Endpoint: oauth2.Endpoint{
			AuthURL:   ts.URL + "/authorize",
			TokenURL:  ts.URL + "/token",
			AuthStyle: oauth2.AuthStyleInParams,
		},
	}
}

// TestCodeFlowOAuth2Client drives code + PKCE → token → refresh with
// golang.org/x/oauth2 as a real client (AS-14, AS-15, AS-7, AS-9).
func TestCodeFlowOAuth2Client(t *testing.T) {
	ts := newTestServer(t, nil)
	ctx := context.Background()
	cfg := ts.oauth2Config("http://127.0.0.1:41234/callback")
	verifier := oauth2.GenerateVerifier()
	authURL := cfg.AuthCodeURL("state-123", oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("resource", testResource))

	b := newBrowser(t)
	p := b.get(authURL)
	if p.status != http.StatusOK || !strings.Contains(p.body, `id="login-form"`) {
		t.Fatalf("GET authorize = %d, want the login page; body:\n%s", p.status, p.body)
	}
	p = ts.login(t, b, p, testUser, testPassword)
	if !strings.Contains(p.body, `id="consent-form"`) {
		t.Fatalf("after login: status %d, want the consent page; body:\n%s", p.status, p.body)
	}
	for _, want := range []string{"Public App", "127.0.0.1:41234", "notes:read", "Read notes", "read_note", testResource} {
		if !strings.Contains(p.body, want) {
			t.Errorf("consent page does not show %q", want)
		}
	}
	loc := location(t, ts.consent(t, b, p, "allow"))
	q := loc.Query()
	if got, want := loc.Scheme+"://"+loc.Host+loc.Path, "http://127.0.0.1:41234/callback"; got != want {
		t.Errorf("redirected to %s, want %s", got, want)
	}
	if q.Get("state") != "state-123" || q.Get("iss") != ts.URL || q.Get("code") == "" {
		t.Fatalf("redirect query = %v, want code, state=state-123, iss=%s", q, ts.URL)
	}

	tok, err := cfg.Exchange(ctx, q.Get("code"), oauth2.VerifierOption(verifier), oauth2.SetAuthURLParam("resource", testResource))
	if err != nil {
		t.Fatalf("Exchange: %v", err)
	}
	if tok.RefreshToken == "" || tok.TokenType != "Bearer" || tok.ExpiresIn != 600 {
		t.Errorf("token = %+v, want a Bearer token with refresh token and expires_in 600", tok)
	}
	claims, err := ts.opts.Keyring.Verify(ctx, tok.AccessToken)
	if err != nil {
		t.Fatalf("Verify(access token): %v", err)
	}
	want := token.AccessClaims{Issuer: ts.URL, Subject: ts.userID, Audience: testResource, ClientID: publicClient, Scope: "notes:read"}
	got := token.AccessClaims{Issuer: claims.Issuer, Subject: claims.Subject, Audience: claims.Audience, ClientID: claims.ClientID, Scope: claims.Scope}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("access token claims (-want +got):\n%s", diff)
	}
	if claims.JTI == "" || claims.GrantID == "" || !claims.ExpiresAt.Equal(ts.Clock.Now().Add(10*time.Minute).Truncate(time.Second)) {
		t.Errorf("claims jti=%q gid=%q exp=%v: want jti, gid, exp = now+10m", claims.JTI, claims.GrantID, claims.ExpiresAt)
	}

	// Expire the access token: the token source refreshes with rotation.
	ts.Clock.Advance(11 * time.Minute)
	tok.Expiry = ts.Clock.Now().Add(-time.Minute)
	src := cfg.TokenSource(ctx, tok)
	tok2, err := src.Token()
	if err != nil {
		t.Fatalf("refresh: %v", err)
	}
	if tok2.AccessToken == tok.AccessToken || tok2.RefreshToken == "" || tok2.RefreshToken == tok.RefreshToken {
		t.Fatalf("refresh did not rotate: old rt %q..., new rt %q...", tok.RefreshToken[:8], tok2.RefreshToken[:8])
	}

	// Outside the retry window, the old refresh token is theft: refused,
	// and the whole family is revoked, including the newest token.
	ts.Clock.Advance(time.Minute)
	status, _, body := ts.post(t, "/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}, "client_id": {publicClient}}, "", "")
	assertOAuthError(t, status, body, http.StatusBadRequest, "invalid_grant")
	status, _, body = ts.post(t, "/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok2.RefreshToken}, "client_id": {publicClient}}, "", "")
	assertOAuthError(t, status, body, http.StatusBadRequest, "invalid_grant")
}

// TestClientCredentialsOAuth2Client uses x/oauth2/clientcredentials with
// Basic (form-encoded, as x/oauth2 does) and body authentication.
func TestClientCredentialsOAuth2Client(t *testing.T) {
	ts := newTestServer(t, nil)
	for _, tt := range []struct {
		name, id, secret string
		style            oauth2.AuthStyle
	}{
		{"basic", confClient, confSecret, oauth2.AuthStyleInHeader},
		{"post", webClient, webSecret, oauth2.AuthStyleInParams},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg := clientcredentials.Config{
				ClientID: tt.id, ClientSecret: tt.secret, TokenURL: ts.URL + "/token", AuthStyle: tt.style,
				Scopes: []string{"notes:write"}, EndpointParams: url.Values{"resource": {testResource}},
			}
			tok, err := cfg.Token(context.Background())
			if err != nil {
				t.Fatalf("Token: %v", err)
			}
			claims, err := ts.opts.Keyring.Verify(context.Background(), tok.AccessToken)
			if err != nil {
				t.Fatal(err)
			}
			if claims.Subject != tt.id || claims.ClientID != tt.id || claims.Audience != testResource || claims.Scope != "notes:write" || claims.GrantID != "" {
				t.Errorf("claims = %+v, want sub=client_id=%s aud=%s scope=notes:write and no grant", claims, tt.id, testResource)
			}
			if tok.RefreshToken != "" {
				t.Errorf("client_credentials returned a refresh token")
			}
		})
	}
}

// TestBasicAuthRawCredentials: the MCP TypeScript SDK sends id:secret in
// Basic without form-encoding (INTEROP.md §2); both forms must work.
func TestBasicAuthRawCredentials(t *testing.T) {
	ts := newTestServer(t, nil)
	form := url.Values{"grant_type": {"client_credentials"}, "resource": {testResource}}
	for _, tt := range []struct {
		name string
		user string
		pass string
	}{
		{"form-encoded", url.QueryEscape(confClient), url.QueryEscape(confSecret)},
		{"raw", confClient, confSecret},
	} {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodPost, ts.URL+"/token", strings.NewReader(form.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.SetBasicAuth(tt.user, tt.pass)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Errorf("token with %s Basic credentials = %d, want 200", tt.name, resp.StatusCode)
			}
		})
	}
}

// TestConsentRemembered: a second authorization with the same scopes skips
// the consent page; a wider one asks again.
func TestConsentRemembered(t *testing.T) {
	ts := newTestServer(t, nil)
	b := newBrowser(t)
	ts.authorize(t, b, defaultAuth())
	p := b.get(defaultAuth().url(ts.URL))
	loc := location(t, p)
	if loc.Query().Get("code") == "" {
		t.Fatalf("second authorization did not return a code directly: %s", loc)
	}
	wider := defaultAuth()
	wider.scope = "notes:read notes:write"
	p = b.get(wider.url(ts.URL))
	if !strings.Contains(p.body, `id="consent-form"`) {
		t.Fatalf("wider scope did not ask for consent: status %d", p.status)
	}
	consentAgain := defaultAuth()
	consentAgain.prompt = "consent"
	p = b.get(consentAgain.url(ts.URL))
	if !strings.Contains(p.body, `id="consent-form"`) {
		t.Fatalf("prompt=consent did not ask for consent: status %d", p.status)
	}
}

// TestPagesNameSignedInUser: the consent page, reached from the login form
// or from /authorize with a session, and the consents page name the user
// who is signed in.
func TestPagesNameSignedInUser(t *testing.T) {
	ts := newTestServer(t, nil)
	b := newBrowser(t) // shared: each step runs in the session the first started
	want := "Signed in as <strong>" + testUser + "</strong>"
	for _, step := range []struct {
		name string
		load func() page
	}{
		{"consent page after the login form", func() page {
			return ts.login(t, b, b.get(defaultAuth().url(ts.URL)), testUser, testPassword)
		}},
		{"consent page from /authorize with a session", func() page { return b.get(defaultAuth().url(ts.URL)) }},
		{"account page", func() page { return b.get(ts.URL + pathAccount) }},
	} {
		t.Run(step.name, func(t *testing.T) {
			p := step.load()
			if p.status != http.StatusOK || !strings.Contains(p.body, want) {
				t.Errorf("%s: status %d, body without %q:\n%s", step.name, p.status, want, p.body)
			}
		})
	}
}

// TestRefreshRetryWindow: inside the window, the identical refresh request
// gets the identical answer; a different one is theft and revokes the
// family (INTEROP.md §4).
func TestRefreshRetryWindow(t *testing.T) {
	ts := newTestServer(t, nil)
	rt := ts.refreshToken(t)
	req := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}, "client_id": {publicClient}}
	s1, _, b1 := ts.post(t, "/token", req, "", "")
	ts.Clock.Advance(5 * time.Second)
	s2, _, b2 := ts.post(t, "/token", req, "", "")
	if s1 != 200 || s2 != 200 || b1 != b2 {
		t.Fatalf("retry inside window: (%d, %d), identical=%v; want (200, 200) and identical bodies", s1, s2, b1 == b2)
	}
	var first tokenResponse
	must(t, json.Unmarshal([]byte(b1), &first))

	narrower := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}, "client_id": {publicClient}, "scope": {"notes:read"}}
	// Same scope as granted, spelled explicitly: the fingerprint is the
	// effective scope, so this counts as identical.
	if s, _, b := ts.post(t, "/token", narrower, "", ""); s != 200 || b != b1 {
		t.Fatalf("explicit identical scope inside window = %d, identical=%v; want 200 and the same body", s, b == b1)
	}
	// Another resource is not a retry: the reuse revokes the family
	// before the resource is even checked (F8).
	other := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}, "client_id": {publicClient}, "resource": {testResource2}}
	s, _, b := ts.post(t, "/token", other, "", "")
	assertOAuthError(t, s, b, http.StatusBadRequest, "invalid_grant")

	ts.Clock.Advance(time.Minute)
	s, _, b = ts.post(t, "/token", req, "", "")
	assertOAuthError(t, s, b, http.StatusBadRequest, "invalid_grant")
	s, _, b = ts.post(t, "/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {first.RefreshToken}, "client_id": {publicClient}}, "", "")
	assertOAuthError(t, s, b, http.StatusBadRequest, "invalid_grant")
}

// TestConcurrentRefresh: N concurrent identical refreshes (an agent
// retrying from several windows) all get the same answer; the family
// survives.
func TestConcurrentRefresh(t *testing.T) {
	ts := newTestServer(t, nil)
	rt := ts.refreshToken(t)
	req := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}, "client_id": {publicClient}}
	const n = 8
	bodies := make([]string, n)
	statuses := make([]int, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { statuses[i], _, bodies[i] = ts.post(t, "/token", req, "", "") })
	}
	wg.Wait()
	for i := range n {
		if statuses[i] != 200 || bodies[i] != bodies[0] {
			t.Fatalf("request %d: status %d, identical=%v; want 200 and identical bodies", i, statuses[i], bodies[i] == bodies[0])
		}
	}
	var next tokenResponse
	must(t, json.Unmarshal([]byte(bodies[0]), &next))
	s, _, b := ts.post(t, "/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {next.RefreshToken}, "client_id": {publicClient}}, "", "")
	if s != 200 {
		t.Fatalf("the rotated token after concurrent retries = %d %s, want 200", s, b)
	}
}

// refreshToken runs the flow and returns a refresh token.
func (ts *testServer) refreshToken(t *testing.T) string {
	t.Helper()
	code := ts.code(t, defaultAuth())
	s, _, b := ts.post(t, "/token", url.Values{
		"grant_type": {"authorization_code"}, "code": {code}, "client_id": {publicClient},
		"redirect_uri": {defaultAuth().redirectURI}, "code_verifier": {testVerifier},
	}, "", "")
	if s != 200 {
		t.Fatalf("code exchange = %d %s", s, b)
	}
	var tr tokenResponse
	must(t, json.Unmarshal([]byte(b), &tr))
	return tr.RefreshToken
}

// assertOAuthError checks an OAuth JSON error response.
func assertOAuthError(t *testing.T, status int, body string, wantStatus int, wantCode string) {
	t.Helper()
	var e struct {
		Error       string `json:"error"`
		Description string `json:"error_description"`
	}
	if err := json.Unmarshal([]byte(body), &e); err != nil {
		t.Fatalf("error body %q is not JSON: %v", body, err)
	}
	if status != wantStatus || e.Error != wantCode {
		t.Errorf("got (%d, %q: %s), want (%d, %q)", status, e.Error, e.Description, wantStatus, wantCode)
	}
	if e.Description == "" {
		t.Errorf("error %q has no error_description", e.Error)
	}
}

// TestConsentRevocation: withdrawing a consent on the account page revokes
// the client's refresh tokens and asks for consent again next time.
func TestConsentRevocation(t *testing.T) {
	ts := newTestServer(t, nil)
	b := newBrowser(t)
	loc := ts.authorize(t, b, defaultAuth())
	s, _, body := ts.post(t, "/token", exchange(loc.Query().Get("code")), "", "")
	if s != 200 {
		t.Fatal(body)
	}
	var tr tokenResponse
	must(t, json.Unmarshal([]byte(body), &tr))

	p := b.get(ts.URL + "/account")
	if p.status != 200 || !strings.Contains(p.body, "Public App") {
		t.Fatalf("account page = %d, want it to list Public App:\n%s", p.status, p.body)
	}
	m := regexp.MustCompile(`<form[^>]*action="([^"]*/account/revoke)"`).FindStringSubmatch(p.body)
	if m == nil {
		t.Fatalf("no revoke form:\n%s", p.body)
	}
	v := url.Values{}
	for _, h := range hiddenRE.FindAllStringSubmatch(p.body, -1) {
		v.Set(h[1], html.UnescapeString(h[2]))
	}
	if v.Get("client_id") != publicClient {
		t.Fatalf("revoke form fields = %v", v)
	}
	r := b.post(ts.origin()+html.UnescapeString(m[1]), v)
	if r.status != http.StatusSeeOther {
		t.Fatalf("revoke consent = %d:\n%s", r.status, r.body)
	}
	s, _, body = ts.post(t, "/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tr.RefreshToken}, "client_id": {publicClient}}, "", "")
	assertOAuthError(t, s, body, 400, "invalid_grant")
	if p := b.get(defaultAuth().url(ts.URL)); !strings.Contains(p.body, `id="consent-form"`) {
		t.Errorf("after revocation the consent page is not shown again (status %d)", p.status)
	}
}

// TestConsentNamesGatewayRoute: the consent page asks about a gateway
// route without a title as "the NAME MCP server", not as its bare name
// ("Allow Public App to access everything?").
func TestConsentNamesGatewayRoute(t *testing.T) {
	ts := newTestServer(t, nil)
	const resource = "https://mcp.example.com/everything/mcp"
	g, err := gateway.New(gateway.Options{Issuer: ts.URL, Routes: []gateway.Route{
		{Name: "everything", URL: resource, Upstream: gateway.Upstream{URL: "http://127.0.0.1:9/mcp"}, Scopes: []string{"everything:use"}},
	}})
	must(t, err)
	for _, r := range g.Resources(nil) {
		r.CreatedAt, r.UpdatedAt = ts.Clock.Now(), ts.Clock.Now()
		must(t, ts.Store.PutResource(t.Context(), r))
	}
	a := defaultAuth()
	a.resource, a.scope = resource, "everything:use"
	b := newBrowser(t)
	p := ts.login(t, b, b.get(a.url(ts.URL)), testUser, testPassword)
	if want := "<h1>Allow Public App to access the everything MCP server?</h1>"; p.status != http.StatusOK || !strings.Contains(p.body, want) {
		t.Errorf("consent page: status %d, body without %q:\n%s", p.status, want, p.body)
	}
}
