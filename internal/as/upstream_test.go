package as

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/gatehouse-mcp/gatehouse/internal/storage"
)

// fakeIdP is an upstream OpenID provider for the tests: discovery, JWKS,
// an authorization endpoint that signs the person in at once and sends
// the browser back, a token endpoint issuing ID tokens it signs, and
// userinfo. Its knobs make it misbehave in one way at a time.
type fakeIdP struct {
	t           testing.TB
	URL         string
	now         func() time.Time
	jwksFetches int // answered JWKS requests

	mu       sync.Mutex
	key      *ecdsa.PrivateKey
	kid      string
	codes    map[string]fakeCode
	lastAuth url.Values // the last authorization request's parameters

	// Knobs.
	subject     string
	idClaims    map[string]any       // added to every ID token
	userinfo    map[string]any       // the userinfo response, with sub
	tamper      func(map[string]any) // edits the ID token's claims
	badSig      bool                 // signs with a key not in the JWKS, same kid
	denyWith    string               // the authorization endpoint answers error=…
	issParam    bool                 // metadata promises iss in responses
	sendIss     string               // iss sent in the authorization response
	userinfoHit int
	tokenBasic  bool // the last token request authenticated with HTTP Basic

	// clientKey, when set, is the public key of Gatehouse's client
	// assertions: the token endpoint then takes private_key_jwt only
	// (RFC 7523 §3), and refuses a reused jti.
	clientKey     any
	jtis          map[string]bool
	assertionKID  string // the kid header of the last accepted assertion
	assertionErr  string // why the last assertion was refused
	tokenSecretIn bool   // the last token request carried a client_secret
}

type fakeCode struct{ nonce, challenge, redirectURI string }

const (
	idpClientID = "gatehouse-at-idp"
	idpSecret   = "idp-secret/with+special=chars"
)

func newFakeIdP(t testing.TB) *fakeIdP {
	f := &fakeIdP{t: t, codes: map[string]fakeCode{}, kid: "k1", subject: "248289761001",
		idClaims: map[string]any{"email": "jane@acme.example", "email_verified": true, "name": "Jane Doe", "groups": []any{"staff", "mcp-users"}}}
	f.key = newECKey(t)
	srv := httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(srv.Close)
	f.URL = srv.URL
	return f
}

func newECKey(t testing.TB) *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	must(t, err)
	return k
}

func (f *fakeIdP) serve(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	w.Header().Set("Content-Type", "application/json") // every answer but the redirect is JSON
	writeJSON := func(v any) { _ = json.NewEncoder(w).Encode(v) }
	switch r.URL.Path {
	case "/.well-known/openid-configuration":
		writeJSON(map[string]any{
			"issuer": f.URL, "authorization_endpoint": f.URL + "/authorize", "token_endpoint": f.URL + "/token",
			"jwks_uri": f.URL + "/jwks", "userinfo_endpoint": f.URL + "/userinfo",
			"id_token_signing_alg_values_supported":          []string{"ES256"},
			"authorization_response_iss_parameter_supported": f.issParam,
		})
	case "/jwks":
		f.jwksFetches++
		writeJSON(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &f.key.PublicKey, KeyID: f.kid, Algorithm: "ES256", Use: "sig"}}})
	case "/authorize":
		q := r.URL.Query()
		f.lastAuth = q
		if q.Get("client_id") != idpClientID || q.Get("response_type") != "code" || q.Get("code_challenge_method") != "S256" {
			http.Error(w, "bad authorization request", http.StatusBadRequest)
			return
		}
		back := url.Values{"state": {q.Get("state")}}
		if f.sendIss != "" {
			back.Set("iss", f.sendIss)
		}
		if f.denyWith != "" {
			back.Set("error", f.denyWith)
		} else {
			code := rand.Text()
			f.codes[code] = fakeCode{nonce: q.Get("nonce"), challenge: q.Get("code_challenge"), redirectURI: q.Get("redirect_uri")}
			back.Set("code", code)
		}
		http.Redirect(w, r, q.Get("redirect_uri")+"?"+back.Encode(), http.StatusFound)
	case "/token":
		user, pass, basic := r.BasicAuth()
		f.tokenBasic = basic
		err := r.ParseForm()
		_, f.tokenSecretIn = r.PostForm["client_secret"]
		if f.clientKey != nil {
			f.assertionErr = f.checkAssertion(r.PostForm)
			if basic || f.tokenSecretIn {
				f.assertionErr = "a client secret was sent with private_key_jwt"
			}
		}
		if err != nil || (f.clientKey == nil && (!basic || user != url.QueryEscape(idpClientID) || pass != url.QueryEscape(idpSecret))) || (f.clientKey != nil && f.assertionErr != "") {
			w.WriteHeader(http.StatusUnauthorized)
			writeJSON(map[string]string{"error": "invalid_client"})
			return
		}
		c, ok := f.codes[r.PostForm.Get("code")]
		delete(f.codes, r.PostForm.Get("code"))
		sum := sha256.Sum256([]byte(r.PostForm.Get("code_verifier")))
		if !ok || c.redirectURI != r.PostForm.Get("redirect_uri") || base64.RawURLEncoding.EncodeToString(sum[:]) != c.challenge {
			w.WriteHeader(http.StatusBadRequest)
			writeJSON(map[string]string{"error": "invalid_grant"})
			return
		}
		now := f.now()
		claims := map[string]any{"iss": f.URL, "sub": f.subject, "aud": idpClientID, "iat": now.Unix(), "exp": now.Add(5 * time.Minute).Unix(), "nonce": c.nonce}
		for k, v := range f.idClaims {
			claims[k] = v
		}
		if f.tamper != nil {
			f.tamper(claims)
		}
		writeJSON(map[string]any{"access_token": "at-" + f.subject, "token_type": "Bearer", "expires_in": 300, "id_token": f.sign(claims)})
	case "/userinfo":
		f.userinfoHit++
		if r.Header.Get("Authorization") != "Bearer at-"+f.subject {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		resp := map[string]any{"sub": f.subject}
		for k, v := range f.userinfo {
			resp[k] = v
		}
		writeJSON(resp)
	default:
		http.NotFound(w, r)
	}
}

// checkAssertion verifies a private_key_jwt client authentication (RFC
// 7523 §3, OpenID Connect Core §9) and returns why it fails, or "": the
// assertion type, the signature with the registered key, iss and sub the
// client id, aud this token endpoint, exp in the future and at most five
// minutes after iat, and a jti not seen before.
func (f *fakeIdP) checkAssertion(form url.Values) string {
	if form.Get("client_assertion_type") != "urn:ietf:params:oauth:client-assertion-type:jwt-bearer" {
		return "client_assertion_type is " + form.Get("client_assertion_type")
	}
	if id := form.Get("client_id"); id != "" && id != idpClientID {
		return "client_id is " + id
	}
	jws, err := jose.ParseSignedCompact(form.Get("client_assertion"), []jose.SignatureAlgorithm{jose.ES256, jose.RS256})
	if err != nil {
		return "parse: " + err.Error()
	}
	payload, err := jws.Verify(f.clientKey)
	if err != nil {
		return "signature: " + err.Error()
	}
	var c struct {
		Iss, Sub, Aud, Jti string
		Iat, Exp           int64
	}
	if err := json.Unmarshal(payload, &c); err != nil {
		return "claims: " + err.Error()
	}
	now := f.now().Unix()
	switch {
	case c.Iss != idpClientID || c.Sub != idpClientID:
		return "iss or sub is not the client id"
	case c.Aud != f.URL+"/token":
		return "aud is " + c.Aud + ", not the token endpoint"
	case c.Exp <= now || c.Exp-c.Iat > 300 || c.Iat > now+60:
		return "expired, or valid for more than five minutes"
	case c.Jti == "" || f.jtis[c.Jti]:
		return "jti missing or used before"
	}
	if f.jtis == nil {
		f.jtis = map[string]bool{}
	}
	f.jtis[c.Jti] = true
	f.assertionKID = jws.Signatures[0].Header.KeyID
	return ""
}

// sign returns claims as a compact ES256 JWS with the provider's key (or,
// with badSig, another key under the same kid).
func (f *fakeIdP) sign(claims map[string]any) string {
	key := f.key
	if f.badSig {
		key = newECKey(f.t)
	}
	sig, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: jose.JSONWebKey{Key: key, KeyID: f.kid}}, (&jose.SignerOptions{}).WithType("JWT"))
	must(f.t, err)
	b, err := json.Marshal(claims)
	must(f.t, err)
	jws, err := sig.Sign(b)
	must(f.t, err)
	s, err := jws.CompactSerialize()
	must(f.t, err)
	return s
}

// set runs fn on the provider under its lock.
func (f *fakeIdP) set(fn func(f *fakeIdP)) { f.mu.Lock(); fn(f); f.mu.Unlock() }

// acmeUpstream is the provider "acme" at the fake provider at issuer.
func acmeUpstream(issuer string) Upstream {
	return Upstream{Name: "acme", DisplayName: "Acme SSO", Issuer: issuer, ClientID: idpClientID, ClientSecret: idpSecret}
}

// newUpstreamServer is a test server with the fake provider "acme".
func newUpstreamServer(t *testing.T, mod func(*Upstream)) (*testServer, *fakeIdP) {
	idp := newFakeIdP(t)
	ts := newTestServer(t, func(o *Options) {
		u := acmeUpstream(idp.URL)
		if mod != nil {
			mod(&u)
		}
		o.Upstreams = []Upstream{u}
	})
	idp.now = ts.Clock.Now
	return ts, idp
}

// upstreamSignIn starts the authorization request a, presses "Continue
// with Acme SSO", lets the provider answer, and returns Gatehouse's
// answer to the callback.
func (ts *testServer) upstreamSignIn(t *testing.T, b *browser, a authRequest) page {
	t.Helper()
	p := b.get(a.url(ts.URL))
	action, v := p.form(t, "oidc-acme")
	p = b.post(ts.origin()+action, v)
	toIdP := location(t, p)
	p = b.get(toIdP.String())
	return b.get(location(t, p).String())
}

// upstreamFailures returns the login.upstream_failed events.
func (ts *testServer) upstreamFailures(t *testing.T) []storage.AuditEvent {
	t.Helper()
	q := storageQueryAll()
	q.Type = "login.upstream_failed"
	es, err := ts.Store.QueryAudit(t.Context(), q)
	must(t, err)
	return es
}

// TestUpstreamSignIn: a person of the provider signs in, is provisioned
// once, consents, and the client gets a token whose sub is that user; a
// second sign-in is the same user (issue 14 item 1).
func TestUpstreamSignIn(t *testing.T) {
	ts, idp := newUpstreamServer(t, nil)
	ctx := t.Context()
	b := newBrowser(t)
	p := ts.upstreamSignIn(t, b, defaultAuth())
	if !strings.Contains(p.body, `id="consent-form"`) {
		t.Fatalf("after the provider's callback: status %d, want the consent page:\n%s", p.status, p.body)
	}
	if !idp.tokenBasic {
		t.Errorf("the token request did not use client_secret_basic, the default")
	}
	if idp.userinfoHit != 0 {
		t.Errorf("userinfo was read %d times; the ID token had every claim", idp.userinfoHit)
	}
	id, err := ts.Store.GetUpstreamIdentity(ctx, "acme", idp.subject)
	if err != nil {
		t.Fatalf("GetUpstreamIdentity(acme, %s) = %v", idp.subject, err)
	}
	u, err := ts.Store.GetUser(ctx, id.UserID)
	must(t, err)
	if u.Username != "oidc:acme:"+idp.subject || u.PasswordHash != "" {
		t.Errorf("provisioned user = %+v, want name oidc:acme:%s and no password", u, idp.subject)
	}
	loc := location(t, ts.consent(t, b, p, "allow"))
	code := loc.Query().Get("code")
	status, _, body := ts.post(t, "/token", exchange(code), "", "")
	if status != http.StatusOK {
		t.Fatalf("code exchange = %d %s", status, body)
	}
	var tr tokenResponse
	must(t, json.Unmarshal([]byte(body), &tr))
	if c := jwtClaims(t, tr.AccessToken); c["sub"] != u.ID || c["aud"] != testResource {
		t.Errorf("access token sub, aud = %v, %v; want %s, %s", c["sub"], c["aud"], u.ID, testResource)
	}

	// Again in a fresh browser: the same user, no second one, and the
	// remembered consent lets the code through at once.
	users, _ := ts.Store.ListUsers(ctx)
	p = ts.upstreamSignIn(t, newBrowser(t), defaultAuth())
	if loc := location(t, p); loc.Query().Get("code") == "" {
		t.Fatalf("second sign-in: %s, want a code", loc)
	}
	again, _ := ts.Store.ListUsers(ctx)
	ids, _ := ts.Store.ListUpstreamIdentities(ctx)
	if len(again) != len(users) || len(ids) != 1 || ids[0].UserID != u.ID {
		t.Errorf("after a second sign-in: %d users (was %d), identities %+v; want the same user", len(again), len(users), ids)
	}
	q := storageQueryAll()
	q.Type = "login.success"
	es, _ := ts.Store.QueryAudit(ctx, q)
	if len(es) != 2 || es[0].Detail != "provider=acme" || es[0].UserID != u.ID {
		t.Errorf("login.success events = %+v, want two naming provider=acme and user %s", es, u.ID)
	}
	if got := ts.upstreamFailures(t); len(got) != 0 {
		t.Errorf("login.upstream_failed events = %+v, want none", got)
	}
}

// TestUpstreamSignInPassesPromptAndMaxAge: the client's prompt=login and
// max_age reach the provider, and an ID token without auth_time is then
// refused.
func TestUpstreamSignInPassesPromptAndMaxAge(t *testing.T) {
	ts, idp := newUpstreamServer(t, nil)
	a := defaultAuth()
	a.prompt = "login"
	p := ts.upstreamSignIn(t, newBrowser(t), a)
	if got := idp.lastAuth.Get("prompt"); got != "login" {
		t.Errorf("prompt at the provider = %q, want login", got)
	}
	if !strings.Contains(p.body, `id="consent-form"`) {
		t.Fatalf("prompt=login sign-in: status %d, want the consent page", p.status)
	}
	u := a.url(ts.URL) + "&max_age=300"
	b := newBrowser(t)
	lp := b.get(u)
	action, v := lp.form(t, "oidc-acme")
	toIdP := location(t, b.post(ts.origin()+action, v))
	if got := toIdP.Query().Get("max_age"); got != "300" {
		t.Errorf("max_age at the provider = %q, want 300", got)
	}
	p = b.get(location(t, b.get(toIdP.String())).String())
	if p.status != http.StatusForbidden || !strings.Contains(p.body, "auth_time") {
		t.Errorf("max_age without auth_time: status %d, want 403 naming auth_time:\n%s", p.status, p.body)
	}
	idp.set(func(f *fakeIdP) { f.idClaims["auth_time"] = ts.Clock.Now().Unix() })
	p = ts.upstreamSignIn(t, newBrowser(t), authRequest{clientID: a.clientID, redirectURI: a.redirectURI, scope: a.scope, resource: a.resource, verifier: a.verifier, state: "x"})
	if !strings.Contains(p.body, `id="consent-form"`) && p.status != http.StatusFound {
		t.Errorf("with auth_time: status %d, want to continue", p.status)
	}
}

// TestUpstreamUserinfoFallback: a provider that puts only sub in the ID
// token is asked for the rest at userinfo, whose sub must match.
func TestUpstreamUserinfoFallback(t *testing.T) {
	ts, idp := newUpstreamServer(t, func(u *Upstream) {
		u.AllowedEmailDomains = []string{"acme.example"}
		u.RequiredClaims = map[string]string{"groups": "mcp-users"}
	})
	idp.set(func(f *fakeIdP) {
		f.idClaims = nil
		f.userinfo = map[string]any{"email": "jane@acme.example", "email_verified": true, "name": "Jane", "groups": []any{"mcp-users"}}
	})
	p := ts.upstreamSignIn(t, newBrowser(t), defaultAuth())
	if !strings.Contains(p.body, `id="consent-form"`) {
		t.Fatalf("status %d, want the consent page (claims from userinfo):\n%s", p.status, p.body)
	}
	if idp.userinfoHit != 1 {
		t.Errorf("userinfo read %d times, want 1", idp.userinfoHit)
	}

	// A userinfo response about someone else is refused.
	ts2, idp2 := newUpstreamServer(t, nil)
	idp2.set(func(f *fakeIdP) {
		f.idClaims = nil
		f.userinfo = map[string]any{"sub": "someone-else", "email": "x@acme.example"}
	})
	before := ts2.snapshotWithout(t, "replay")
	p = ts2.upstreamSignIn(t, newBrowser(t), defaultAuth())
	if p.status != http.StatusBadGateway || !strings.Contains(p.body, "userinfo sub") {
		t.Errorf("userinfo about someone else: status %d, want 502 naming the userinfo sub:\n%s", p.status, p.body)
	}
	if after := ts2.snapshotWithout(t, "replay"); after != before {
		t.Errorf("a refused sign-in changed storage")
	}
}

// TestUpstreamFailures: each way the provider's answer can be wrong is a
// page naming the provider and the reason, an audit event, and no user,
// identity, session, code or grant.
func TestUpstreamFailures(t *testing.T) {
	for _, tt := range []struct {
		name       string
		mod        func(*Upstream)
		idp        func(f *fakeIdP)
		wantStatus int
		want       string
	}{
		{"tampered signature", nil, func(f *fakeIdP) { f.badSig = true }, http.StatusBadGateway, "the ID token was refused"},
		{"wrong nonce", nil, func(f *fakeIdP) { f.tamper = func(c map[string]any) { c["nonce"] = "another-nonce" } }, http.StatusBadGateway, "nonce is not the one this sign-in sent"},
		{"no nonce", nil, func(f *fakeIdP) { f.tamper = func(c map[string]any) { delete(c, "nonce") } }, http.StatusBadGateway, "nonce is not the one this sign-in sent"},
		{"wrong aud", nil, func(f *fakeIdP) { f.tamper = func(c map[string]any) { c["aud"] = "another-client" } }, http.StatusBadGateway, "the ID token was refused"},
		{"wrong iss in the ID token", nil, func(f *fakeIdP) { f.tamper = func(c map[string]any) { c["iss"] = "https://evil.example" } }, http.StatusBadGateway, "the ID token was refused"},
		{"expired", nil, func(f *fakeIdP) {
			f.tamper = func(c map[string]any) { c["exp"] = f.now().Add(-time.Minute).Unix() }
		}, http.StatusBadGateway, "the ID token has expired"},
		{"missing required claim", func(u *Upstream) { u.RequiredClaims = map[string]string{"groups": "admins"} }, nil, http.StatusForbidden, "the claim groups does not hold the required value"},
		{"domain not allowed", func(u *Upstream) { u.AllowedEmailDomains = []string{"example.org"} }, nil, http.StatusForbidden, "Accounts at acme.example may not sign in"},
		{"email not verified", func(u *Upstream) { u.AllowedEmailDomains = []string{"acme.example"} }, func(f *fakeIdP) { f.idClaims["email_verified"] = false }, http.StatusForbidden, "email_verified is false"},
		{"access_denied", nil, func(f *fakeIdP) { f.denyWith = "access_denied" }, http.StatusForbidden, "Sign-in with Acme SSO was cancelled or refused."},
		{"wrong iss in the response", nil, func(f *fakeIdP) { f.sendIss = "https://evil.example" }, http.StatusBadRequest, "The response did not come from Acme SSO."},
		{"iss promised, not sent", nil, func(f *fakeIdP) { f.issParam = true }, http.StatusBadRequest, "The response did not come from Acme SSO."},
		{"wrong client secret", func(u *Upstream) { u.ClientSecret = "wrong" }, nil, http.StatusBadGateway, "the provider's token endpoint answered invalid_client"},
		{"no subject", func(u *Upstream) { u.SubjectClaim = "oid" }, nil, http.StatusForbidden, "the subject claim oid is missing"},
		{"groups claim of another shape", nil, func(f *fakeIdP) { f.idClaims["groups"] = map[string]any{"roles": []any{"editors"}} }, http.StatusBadGateway, "the groups claim groups is neither a string nor a list of strings"},
		{"groups claim with a non-string", nil, func(f *fakeIdP) { f.idClaims["groups"] = []any{"editors", 7} }, http.StatusBadGateway, "the groups claim groups holds a member that is not a string"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ts, idp := newUpstreamServer(t, tt.mod)
			if tt.idp != nil {
				idp.set(tt.idp)
			}
			before := ts.snapshotWithout(t, "replay")
			p := ts.upstreamSignIn(t, newBrowser(t), defaultAuth())
			if p.status != tt.wantStatus || !strings.Contains(p.body, "Sign-in with Acme SSO failed") || !strings.Contains(p.body, htmlEscape(tt.want)) {
				t.Errorf("status %d, want %d and a page naming Acme SSO and %q:\n%s", p.status, tt.wantStatus, tt.want, p.body)
			}
			if after := ts.snapshotWithout(t, "replay"); after != before {
				t.Errorf("a refused sign-in changed storage (a user, identity, session, code or grant)")
			}
			if es := ts.upstreamFailures(t); len(es) != 1 || !strings.HasPrefix(es[0].Detail, "provider=acme: ") || es[0].ClientID != publicClient {
				t.Errorf("login.upstream_failed events = %+v, want one naming provider=acme and the client", es)
			}
		})
	}
}

// htmlEscape is s as html/template writes it in text.
func htmlEscape(s string) string {
	return strings.NewReplacer("'", "&#39;", `"`, "&#34;").Replace(s)
}

// TestUpstreamState: the provider's answer counts only with the state of
// a sign-in this browser started, once.
func TestUpstreamState(t *testing.T) {
	ts, _ := newUpstreamServer(t, nil)
	start := func(b *browser) *url.URL {
		lp := b.get(defaultAuth().url(ts.URL))
		action, v := lp.form(t, "oidc-acme")
		toIdP := location(t, ts.browserPost(b, action, v))
		return location(t, b.get(toIdP.String())) // the callback URL
	}
	before := ts.snapshotWithout(t, "replay")
	wantRefused := func(what string, p page) {
		t.Helper()
		if p.status != http.StatusBadRequest || !strings.Contains(p.body, "does not belong to a sign-in started in this browser") {
			t.Errorf("%s: status %d, want 400 naming the state:\n%s", what, p.status, p.body)
		}
	}

	// The callback in another browser (a login CSRF: the attacker's
	// response sent to the victim) is refused.
	cb := start(newBrowser(t))
	wantRefused("callback in another browser", newBrowser(t).get(cb.String()))

	// A state swapped for another sign-in's, in the browser of both.
	b := newBrowser(t)
	cb1, cb2 := start(b), start(b)
	swapped := *cb1
	q := cb1.Query()
	q.Set("state", cb2.Query().Get("state"))
	q.Set("code", "forged-"+q.Get("code"))
	swapped.RawQuery = q.Encode()
	p := b.get(swapped.String())
	if p.status != http.StatusBadGateway { // the state is b's, the code is not the provider's
		t.Errorf("swapped state with a forged code: status %d, want 502", p.status)
	}
	// Its state is now used: the genuine answer to it is refused too.
	wantRefused("replayed state", b.get(cb2.String()))
	if after := ts.snapshotWithout(t, "replay"); after != before {
		t.Errorf("refused callbacks changed storage")
	}

	// The genuine first answer works once; its replay is refused, even
	// with the sign-in cookie put back (a copied cookie and URL).
	origin, _ := url.Parse(ts.URL)
	kept := b.client.Jar.Cookies(origin)
	if p := b.get(cb1.String()); !strings.Contains(p.body, `id="consent-form"`) {
		t.Fatalf("genuine callback: status %d, want the consent page", p.status)
	}
	wantRefused("replayed callback", b.get(cb1.String()))
	b.client.Jar.SetCookies(origin, kept)
	wantRefused("replayed callback with the cookie put back", b.get(cb1.String()))
	wantRefused("no state", b.get(ts.URL+"/login/oidc/acme/callback?code=x"))
	// Responses that belong to no sign-in of the browser are anyone's to
	// send: they are not written to the audit log (only the swapped
	// state's, whose sign-in was real, is).
	if es := ts.upstreamFailures(t); len(es) != 1 {
		t.Errorf("login.upstream_failed events = %+v, want only the swapped state's", es)
	}
}

// browserPost posts a form to a path of this server.
func (ts *testServer) browserPost(b *browser, action string, v url.Values) page {
	return b.post(ts.origin()+action, v)
}

// TestLocalLoginDisabled: without local sign-in the page has only the
// provider's button, and a password form posted anyway is refused.
func TestLocalLoginDisabled(t *testing.T) {
	idp := newFakeIdP(t)
	ts := newTestServer(t, func(o *Options) {
		o.DisableLocalLogin = true
		o.Upstreams = []Upstream{{Name: "acme", DisplayName: "Acme SSO", Issuer: idp.URL, ClientID: idpClientID, ClientSecret: idpSecret}}
	})
	idp.now = ts.Clock.Now
	b := newBrowser(t)
	p := b.get(defaultAuth().url(ts.URL))
	if strings.Contains(p.body, `id="login-form"`) || !strings.Contains(p.body, `id="oidc-acme"`) {
		t.Fatalf("login page with local sign-in off:\n%s", p.body)
	}
	_, v := p.form(t, "oidc-acme")
	v.Set("username", testUser)
	v.Set("password", testPassword)
	p = b.post(ts.URL+"/login", v)
	if p.status != http.StatusForbidden || !strings.Contains(p.body, "turned off") {
		t.Errorf("password sign-in with local sign-in off: status %d, want 403:\n%s", p.status, p.body)
	}
	if _, err := New(Options{Issuer: ts.URL, Store: ts.Store, Keyring: ts.opts.Keyring, Pages: ts.opts.Pages, Now: ts.Clock.Now, AllowHTTPIssuer: true, DisableLocalLogin: true}); err == nil {
		t.Errorf("New with DisableLocalLogin and no upstreams = nil error")
	}
}

// TestUpstreamUnreachable: a provider that cannot be reached is a page
// naming it, and nothing is stored.
func TestUpstreamUnreachable(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	dead := srv.URL
	srv.Close()
	ts := newTestServer(t, func(o *Options) {
		o.Upstreams = []Upstream{{Name: "acme", DisplayName: "Acme SSO", Issuer: dead, ClientID: idpClientID, ClientSecret: idpSecret}}
	})
	b := newBrowser(t)
	lp := b.get(defaultAuth().url(ts.URL))
	action, v := lp.form(t, "oidc-acme")
	p := b.post(ts.origin()+action, v)
	if p.status != http.StatusBadGateway || !strings.Contains(p.body, "Gatehouse could not reach Acme SSO.") {
		t.Errorf("unreachable provider: status %d, want 502 naming it:\n%s", p.status, p.body)
	}
	if es := ts.upstreamFailures(t); len(es) != 1 {
		t.Errorf("login.upstream_failed events = %+v, want one", es)
	}
}

// TestUpstreamKeyRotation: after the provider rotates its signing key (a
// new kid), a sign-in verifies without a restart: the key set fetches the
// JWKS again for a key it does not have, but at most once per
// jwksRefetchInterval. Within it, an ID token signed with an unknown key
// is refused with the reason and nothing is fetched; once it has passed,
// the next sign-in fetches once and succeeds.
func TestUpstreamKeyRotation(t *testing.T) {
	ts, idp := newUpstreamServer(t, nil)
	fetches := func() int { idp.mu.Lock(); defer idp.mu.Unlock(); return idp.jwksFetches }
	if p := ts.upstreamSignIn(t, newBrowser(t), defaultAuth()); !strings.Contains(p.body, `id="consent-form"`) {
		t.Fatalf("first sign-in: status %d", p.status)
	}
	if n := fetches(); n != 1 {
		t.Fatalf("JWKS fetched %d times by the first sign-in, want 1", n)
	}
	if p := ts.upstreamSignIn(t, newBrowser(t), defaultAuth()); !strings.Contains(p.body, `id="consent-form"`) || fetches() != 1 {
		t.Fatalf("second sign-in with the same key: status %d, JWKS fetched %d times, want the consent page and no new fetch", p.status, fetches())
	}
	idp.set(func(f *fakeIdP) { f.key, f.kid = newECKey(t), "k2" })
	ts.Clock.Advance(jwksRefetchInterval - time.Second)
	for range 2 {
		p := ts.upstreamSignIn(t, newBrowser(t), defaultAuth())
		if p.status != http.StatusBadGateway || !strings.Contains(p.body, "the JWKS was fetched 9s ago (at most once per 10s)") {
			t.Errorf("sign-in with a new key within the refetch interval: status %d, want 502 saying the JWKS was fetched 9s ago:\n%s", p.status, p.body)
		}
	}
	if n := fetches(); n != 1 {
		t.Errorf("JWKS fetched %d times within the refetch interval, want still 1", n)
	}
	ts.Clock.Advance(time.Second)
	if p := ts.upstreamSignIn(t, newBrowser(t), defaultAuth()); !strings.Contains(p.body, `id="consent-form"`) {
		t.Fatalf("sign-in after the key rotation, the interval passed: status %d:\n%s", p.status, p.body)
	}
	if n := fetches(); n != 2 {
		t.Errorf("JWKS fetched %d times after the interval, want 2", n)
	}
}

// TestUpstreamGroupsToScopes (issue 14 items 1 and 3): the provider's
// groups claim is the person's groups for scope policies, replaced at
// each sign-in. With [editors] in the ID token they get notes:write; at
// the next sign-in without it the scope is withheld (a page that says
// why), and the refresh of the token from before drops it. A group an
// operator added is kept apart: the provider's claim does not erase it.
func TestUpstreamGroupsToScopes(t *testing.T) {
	ts, idp := newUpstreamServer(t, nil)
	ts.restrictWrite(t)
	ctx := t.Context()
	idp.set(func(f *fakeIdP) { f.idClaims["groups"] = []any{"staff", "editors"} })
	a := defaultAuth()
	a.scope = "notes:read notes:write offline_access"

	b := newBrowser(t)
	p := ts.upstreamSignIn(t, b, a)
	if offered := between(p.body, `id="scopes-heading"`, `</ul>`); !strings.Contains(offered, "notes:write") || strings.Contains(p.body, "Not available to you") {
		t.Fatalf("consent page with editors from the provider offers %q (status %d), want notes:write and nothing unavailable", offered, p.status)
	}
	g := ts.tokenFor(t, exchange(location(t, ts.consent(t, b, p, "allow")).Query().Get("code")))
	if g.Scope != "notes:read notes:write" || g.claimed != "notes:read notes:write" {
		t.Fatalf("token with editors from the provider: response scope %q, claim %q; want notes:read notes:write", g.Scope, g.claimed)
	}
	id, err := ts.Store.GetUpstreamIdentity(ctx, "acme", idp.subject)
	must(t, err)
	if got, _ := ts.Store.ListUpstreamGroups(ctx, id.UserID); len(got) != 1 || strings.Join(got["acme"], ",") != "editors,staff" {
		t.Errorf("stored provider groups = %v, want acme: editors, staff", got)
	}

	// Taken out of editors at the provider: the next sign-in replaces the
	// groups, and the step-up to notes:write ends on the page that says
	// why, remembered consent notwithstanding.
	idp.set(func(f *fakeIdP) { f.idClaims["groups"] = []any{"staff"} })
	p = ts.upstreamSignIn(t, newBrowser(t), a)
	if p.status != http.StatusForbidden || p.header.Get("Location") != "" || !strings.Contains(p.body, "notes:write needs group editors") {
		t.Errorf("sign-in without editors = %d (Location %q), want 403 naming the group; body:\n%s", p.status, p.header.Get("Location"), p.body)
	}
	events, err := ts.Store.QueryAudit(ctx, storage.AuditQuery{Type: "scope.withheld", UserID: id.UserID})
	must(t, err)
	if len(events) != 1 || events[0].Detail != "notes:write needs group editors" {
		t.Errorf("scope.withheld events = %+v, want one naming notes:write and editors", events)
	}
	// The client's token from before loses the scope at its next refresh.
	g = ts.tokenFor(t, refresh(g.RefreshToken))
	if g.Scope != "notes:read" || g.claimed != "notes:read" {
		t.Errorf("refresh after the sign-in without editors: response scope %q, claim %q; want notes:read", g.Scope, g.claimed)
	}

	// An operator puts the user in editors: a sign-in whose ID token
	// carries no groups claim at all (no groups from the provider) keeps
	// it, and notes:write is granted again.
	must(t, ts.Store.AddUserGroup(ctx, id.UserID, "editors", ts.Clock.Now()))
	idp.set(func(f *fakeIdP) { delete(f.idClaims, "groups") })
	p = ts.upstreamSignIn(t, newBrowser(t), a)
	if loc := location(t, p); loc.Query().Get("code") == "" {
		t.Fatalf("sign-in with the operator's editors: %s, want a code (consent remembered)", loc)
	} else if g = ts.tokenFor(t, exchange(loc.Query().Get("code"))); g.Scope != "notes:read notes:write" {
		t.Errorf("token with the operator's editors: scope %q, want notes:read notes:write", g.Scope)
	}
	if got, _ := ts.Store.ListUpstreamGroups(ctx, id.UserID); len(got) != 0 {
		t.Errorf("stored provider groups after a sign-in without the claim = %v, want none", got)
	}
}

// TestUpstreamClaimsToScopes (issue 14 item 3): a scope policy's claim
// condition is met by the values the provider gave at the last sign-in
// of the claims it is configured to keep (policy_claims). With
// department=engineering in the ID token the user gets notes:write; at
// the next sign-in with another department the scope is withheld (a page
// that names the claim), and the refresh of the token from before drops
// it. A local user has no claims: the consent page withholds the scope
// from them.
func TestUpstreamClaimsToScopes(t *testing.T) {
	ts, idp := newUpstreamServer(t, func(u *Upstream) { u.PolicyClaims = []string{"department"} })
	ctx := t.Context()
	res, err := ts.Store.GetResource(ctx, testResource)
	must(t, err)
	res.ScopePolicies = map[string]storage.ScopePolicy{"notes:write": {Claims: map[string][]string{"department": {"engineering", "research"}}}}
	must(t, ts.Store.PutResource(ctx, res))
	const why = "notes:write needs department engineering or research"
	idp.set(func(f *fakeIdP) { f.idClaims["department"] = "engineering" })
	a := defaultAuth()
	a.scope = "notes:read notes:write offline_access"

	b := newBrowser(t)
	p := ts.upstreamSignIn(t, b, a)
	if offered := between(p.body, `id="scopes-heading"`, `</ul>`); !strings.Contains(offered, "notes:write") || strings.Contains(p.body, "Not available to you") {
		t.Fatalf("consent page with department engineering offers %q (status %d), want notes:write and nothing unavailable", offered, p.status)
	}
	g := ts.tokenFor(t, exchange(location(t, ts.consent(t, b, p, "allow")).Query().Get("code")))
	if g.Scope != "notes:read notes:write" || g.claimed != "notes:read notes:write" {
		t.Fatalf("token with department engineering: response scope %q, claim %q; want notes:read notes:write", g.Scope, g.claimed)
	}
	id, err := ts.Store.GetUpstreamIdentity(ctx, "acme", idp.subject)
	must(t, err)
	if got, _ := ts.Store.ListUserClaims(ctx, id.UserID); len(got) != 1 || strings.Join(got["department"], ",") != "engineering" {
		t.Errorf("stored claims = %v, want department: engineering only (email, name are not policy claims)", got)
	}

	// Moved to sales at the provider: the next sign-in replaces the
	// value, and the step-up to notes:write ends on the page that names
	// the claim, remembered consent notwithstanding.
	idp.set(func(f *fakeIdP) { f.idClaims["department"] = []any{"sales"} })
	p = ts.upstreamSignIn(t, newBrowser(t), a)
	if p.status != http.StatusForbidden || p.header.Get("Location") != "" || !strings.Contains(p.body, why) {
		t.Errorf("sign-in with department sales = %d (Location %q), want 403 naming the claim; body:\n%s", p.status, p.header.Get("Location"), p.body)
	}
	events, err := ts.Store.QueryAudit(ctx, storage.AuditQuery{Type: "scope.withheld", UserID: id.UserID})
	must(t, err)
	if len(events) != 1 || events[0].Detail != why {
		t.Errorf("scope.withheld events = %+v, want one naming the claim", events)
	}
	g = ts.tokenFor(t, refresh(g.RefreshToken))
	if g.Scope != "notes:read" || g.claimed != "notes:read" {
		t.Errorf("refresh after the sign-in with department sales: response scope %q, claim %q; want notes:read", g.Scope, g.claimed)
	}

	// A local user has no claims: notes:write is withheld, saying why.
	lb := newBrowser(t)
	p = ts.login(t, lb, lb.get(a.url(ts.URL)), testUser, testPassword)
	if offered := between(p.body, `id="scopes-heading"`, `id="unavailable-heading"`); !strings.Contains(offered, "notes:read") || strings.Contains(offered, "notes:write") {
		t.Errorf("local user's consent page offers %q (status %d), want notes:read and not notes:write", offered, p.status)
	}
	if un := between(p.body, `id="unavailable-heading"`, `</ul>`); !strings.Contains(un, why) {
		t.Errorf("local user's unavailable scopes = %q, want %q", un, why)
	}
	if g = ts.tokenFor(t, exchange(location(t, ts.consent(t, lb, p, "allow")).Query().Get("code"))); g.Scope != "notes:read" {
		t.Errorf("local user's token: scope %q, want notes:read", g.Scope)
	}
}

// TestUpstreamPolicyClaimShape: a kept claim of a shape Gatehouse cannot
// read as values fails the sign-in with a page that names the claim.
func TestUpstreamPolicyClaimShape(t *testing.T) {
	ts, idp := newUpstreamServer(t, func(u *Upstream) { u.PolicyClaims = []string{"department"} })
	idp.set(func(f *fakeIdP) { f.idClaims["department"] = map[string]any{"name": "engineering"} })
	p := ts.upstreamSignIn(t, newBrowser(t), defaultAuth())
	if p.status != http.StatusBadGateway || !strings.Contains(p.body, "the claim department is not a string, boolean, number or a list of them") {
		t.Errorf("sign-in with an object claim = %d, want 502 naming the claim; body:\n%s", p.status, p.body)
	}
}
