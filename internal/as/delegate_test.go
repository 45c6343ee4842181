package as

import (
	"crypto/ecdsa"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/gatehouse-mcp/gatehouse/internal/storage"
	"github.com/gatehouse-mcp/gatehouse/internal/token"
)

// saasLoginURL is the delegate's login page in these tests: nothing
// listens there, the tests play the SaaS by signing assertions.
const saasLoginURL = "https://saas.example/login?tenant=t1"

// fakeSaaS signs assertions the way a delegated-login SaaS does.
type fakeSaaS struct {
	t   *testing.T
	key *ecdsa.PrivateKey
	kid string
}

func newFakeSaaS(t *testing.T) *fakeSaaS {
	k := newECKey(t)
	kid, err := token.Thumbprint(&k.PublicKey)
	must(t, err)
	return &fakeSaaS{t: t, key: k, kid: kid}
}

// publicKeys is the SaaS's public key as Gatehouse's configuration reads
// it.
func (f *fakeSaaS) publicKeys() []jose.JSONWebKey {
	b, err := json.Marshal(jose.JSONWebKey{Key: &f.key.PublicKey})
	must(f.t, err)
	keys, err := token.ParsePublicKeys(b)
	must(f.t, err)
	return keys
}

// sign returns claims as a compact JWS signed with key under kid and alg.
func (f *fakeSaaS) sign(claims map[string]any, key any, kid string, alg jose.SignatureAlgorithm) string {
	sig, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: jose.JSONWebKey{Key: key, KeyID: kid}}, (&jose.SignerOptions{}).WithType("JWT"))
	must(f.t, err)
	b, err := json.Marshal(claims)
	must(f.t, err)
	jws, err := sig.Sign(b)
	must(f.t, err)
	s, err := jws.CompactSerialize()
	must(f.t, err)
	return s
}

// newDelegateServer is a test server with the delegate "saas" (and local
// sign-in, unless mod turns it off).
func newDelegateServer(t *testing.T, mod func(*Options)) (*testServer, *fakeSaaS) {
	saas := newFakeSaaS(t)
	ts := newTestServer(t, func(o *Options) {
		o.Delegate = &Delegate{ID: "saas", DisplayName: "Acme Notes", LoginURL: saasLoginURL, Keys: saas.publicKeys()}
		if mod != nil {
			mod(o)
		}
	})
	return ts, saas
}

// claims are a valid assertion's claims for challenge and subject.
func (ts *testServer) delegateClaims(challenge, sub string) map[string]any {
	now := ts.Clock.Now()
	return map[string]any{"iss": "saas", "aud": ts.URL, "login_challenge": challenge, "sub": sub,
		"name": "Jane Doe", "email": "jane@acme.example", "groups": []string{"staff"},
		"iat": now.Unix(), "exp": now.Add(2 * time.Minute).Unix()}
}

// startDelegated starts the authorization request a in b, presses
// "Continue with Acme Notes", and returns the challenge the SaaS's login
// page was given.
func (ts *testServer) startDelegated(t *testing.T, b *browser, a authRequest) string {
	t.Helper()
	lp := b.get(a.url(ts.URL))
	action, v := lp.form(t, "delegate-login")
	p := b.post(ts.origin()+action, v)
	toSaaS := location(t, p)
	if !strings.HasPrefix(toSaaS.String(), "https://saas.example/login?") || toSaaS.Query().Get("tenant") != "t1" {
		t.Fatalf("the button sent the browser to %s, want the SaaS login URL with its query kept", toSaaS)
	}
	ch := toSaaS.Query().Get("login_challenge")
	if len(ch) < 40 {
		t.Fatalf("login_challenge %q: want a 256-bit random value", ch)
	}
	return ch
}

// delegateCallback sends b back to Gatehouse with assertion.
func (ts *testServer) delegateCallback(b *browser, assertion string) page {
	return b.get(ts.URL + "/login/delegate/callback?assertion=" + url.QueryEscape(assertion))
}

func (ts *testServer) delegateFailures(t *testing.T) []storage.AuditEvent {
	t.Helper()
	q := storageQueryAll()
	q.Type = "login.delegate_failed"
	es, err := ts.Store.QueryAudit(t.Context(), q)
	must(t, err)
	return es
}

// TestDelegatedLogin: the SaaS signs its user in, Gatehouse provisions
// the user once under (delegate:saas, sub), the client gets a token for
// that user; a second sign-in (fresh browser) is the same user (issue 14
// item 2).
func TestDelegatedLogin(t *testing.T) {
	ts, saas := newDelegateServer(t, nil)
	ctx := t.Context()
	b := newBrowser(t)
	ch := ts.startDelegated(t, b, defaultAuth())
	p := ts.delegateCallback(b, saas.sign(ts.delegateClaims(ch, "u-1001"), saas.key, saas.kid, jose.ES256))
	if !strings.Contains(p.body, `id="consent-form"`) {
		t.Fatalf("after the SaaS's assertion: status %d, want the consent page:\n%s", p.status, p.body)
	}
	id, err := ts.Store.GetUpstreamIdentity(ctx, "delegate:saas", "u-1001")
	if err != nil {
		t.Fatalf("GetUpstreamIdentity(delegate:saas, u-1001) = %v", err)
	}
	u, err := ts.Store.GetUser(ctx, id.UserID)
	must(t, err)
	if u.Username != "oidc:delegate:saas:u-1001" || u.PasswordHash != "" {
		t.Errorf("provisioned user = %+v, want name oidc:delegate:saas:u-1001 and no password", u)
	}
	code := location(t, ts.consent(t, b, p, "allow")).Query().Get("code")
	status, _, body := ts.post(t, "/token", exchange(code), "", "")
	if status != http.StatusOK {
		t.Fatalf("code exchange = %d %s", status, body)
	}
	var tr tokenResponse
	must(t, json.Unmarshal([]byte(body), &tr))
	if c := jwtClaims(t, tr.AccessToken); c["sub"] != u.ID || c["aud"] != testResource {
		t.Errorf("access token sub, aud = %v, %v; want %s, %s", c["sub"], c["aud"], u.ID, testResource)
	}

	// Again in a fresh browser: the same user, and the remembered
	// consent lets the code through at once.
	users, _ := ts.Store.ListUsers(ctx)
	b2 := newBrowser(t)
	ch = ts.startDelegated(t, b2, defaultAuth())
	p = ts.delegateCallback(b2, saas.sign(ts.delegateClaims(ch, "u-1001"), saas.key, saas.kid, jose.ES256))
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
	if len(es) != 2 || es[0].Detail != "provider=delegate:saas" || es[0].UserID != u.ID {
		t.Errorf("login.success events = %+v, want two naming provider=delegate:saas and user %s", es, u.ID)
	}
	if got := ts.delegateFailures(t); len(got) != 0 {
		t.Errorf("login.delegate_failed events = %+v, want none", got)
	}
}

// TestDelegatedLoginRefusals: each way an assertion can be wrong is a
// page saying why, and creates no user, identity, session, code or grant;
// those tied to a sign-in of the browser are audited.
func TestDelegatedLoginRefusals(t *testing.T) {
	other := newECKey(t)
	otherKID, _ := token.Thumbprint(&other.PublicKey)
	for _, tt := range []struct {
		name string
		// assertion returns the assertion to send back for the browser's
		// challenge; it may move the clock.
		assertion  func(ts *testServer, saas *fakeSaaS, ch string) string
		wantStatus int
		want       string
	}{
		{"wrong signature", func(ts *testServer, saas *fakeSaaS, ch string) string {
			return saas.sign(ts.delegateClaims(ch, "u-1"), other, saas.kid, jose.ES256) // another key under the registered kid
		}, http.StatusBadRequest, "signature does not verify"},
		{"unknown key", func(ts *testServer, saas *fakeSaaS, ch string) string {
			return saas.sign(ts.delegateClaims(ch, "u-1"), other, otherKID, jose.ES256)
		}, http.StatusBadRequest, "is not a registered key of saas"},
		{"expired", func(ts *testServer, saas *fakeSaaS, ch string) string {
			a := saas.sign(ts.delegateClaims(ch, "u-1"), saas.key, saas.kid, jose.ES256)
			ts.Clock.Advance(3 * time.Minute) // exp was 2 minutes after iat
			return a
		}, http.StatusBadRequest, "the assertion has expired"},
		{"too long-lived", func(ts *testServer, saas *fakeSaaS, ch string) string {
			c := ts.delegateClaims(ch, "u-1")
			c["exp"] = ts.Clock.Now().Add(time.Hour).Unix()
			return saas.sign(c, saas.key, saas.kid, jose.ES256)
		}, http.StatusBadRequest, "exp is more than 5m0s after its iat"},
		{"no exp", func(ts *testServer, saas *fakeSaaS, ch string) string {
			c := ts.delegateClaims(ch, "u-1")
			delete(c, "exp")
			return saas.sign(c, saas.key, saas.kid, jose.ES256)
		}, http.StatusBadRequest, "must have exp and iat"},
		{"wrong challenge", func(ts *testServer, saas *fakeSaaS, ch string) string {
			return saas.sign(ts.delegateClaims(ch[1:]+"A", "u-1"), saas.key, saas.kid, jose.ES256)
		}, http.StatusBadRequest, "does not belong to a sign-in started in this browser"},
		{"wrong aud", func(ts *testServer, saas *fakeSaaS, ch string) string {
			c := ts.delegateClaims(ch, "u-1")
			c["aud"] = "https://other-gatehouse.example"
			return saas.sign(c, saas.key, saas.kid, jose.ES256)
		}, http.StatusBadRequest, "aud does not contain this server"},
		{"wrong iss", func(ts *testServer, saas *fakeSaaS, ch string) string {
			c := ts.delegateClaims(ch, "u-1")
			c["iss"] = "another-saas"
			return saas.sign(c, saas.key, saas.kid, jose.ES256)
		}, http.StatusBadRequest, `iss "another-saas" is not "saas"`},
		{"no sub", func(ts *testServer, saas *fakeSaaS, ch string) string {
			c := ts.delegateClaims(ch, "u-1")
			delete(c, "sub")
			return saas.sign(c, saas.key, saas.kid, jose.ES256)
		}, http.StatusForbidden, "sub is missing"},
		{"algorithm not pinned", func(ts *testServer, saas *fakeSaaS, ch string) string {
			return saas.sign(ts.delegateClaims(ch, "u-1"), []byte("0123456789abcdef0123456789abcdef"), saas.kid, jose.HS256)
		}, http.StatusBadRequest, "algorithm &#34;HS256&#34; is not that of a registered key"},
		{"sign-in expired", func(ts *testServer, saas *fakeSaaS, ch string) string {
			ts.Clock.Advance(delegateFlightTTL + time.Second)
			return saas.sign(ts.delegateClaims(ch, "u-1"), saas.key, saas.kid, jose.ES256)
		}, http.StatusBadRequest, "has expired"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ts, saas := newDelegateServer(t, func(o *Options) { o.AuthRequestTTL = time.Hour })
			b := newBrowser(t)
			ch := ts.startDelegated(t, b, defaultAuth())
			before := ts.snapshotWithout(t, "replay")
			p := ts.delegateCallback(b, tt.assertion(ts, saas, ch))
			if p.status != tt.wantStatus || !strings.Contains(p.body, "Sign-in with Acme Notes failed") || !strings.Contains(p.body, htmlEscape(tt.want)) {
				t.Errorf("status %d, want %d and a page naming Acme Notes and %q:\n%s", p.status, tt.wantStatus, tt.want, p.body)
			}
			if after := ts.snapshotWithout(t, "replay"); after != before {
				t.Errorf("a refused sign-in changed storage (a user, identity, session, code or grant)")
			}
			if es := ts.delegateFailures(t); tt.name != "algorithm not pinned" && (len(es) != 1 || !strings.HasPrefix(es[0].Detail, "delegate=saas: ")) {
				t.Errorf("login.delegate_failed events = %+v, want one naming delegate=saas", es)
			}
		})
	}
}

// TestDelegatedLoginReplay: an assertion signs in once, in the browser
// whose sign-in it answers: sent again, or in another browser, or with
// the sign-in cookie put back, it is refused and creates nothing.
func TestDelegatedLoginReplay(t *testing.T) {
	ts, saas := newDelegateServer(t, nil)
	wantRefused := func(what string, p page) {
		t.Helper()
		if p.status != http.StatusBadRequest || !strings.Contains(p.body, "does not belong to a sign-in started in this browser, or was already used") {
			t.Errorf("%s: status %d, want 400 naming the challenge:\n%s", what, p.status, p.body)
		}
	}
	// In another browser (a login CSRF: the attacker's assertion sent
	// to the victim): refused, and the owner's sign-in still works.
	b := newBrowser(t)
	ch := ts.startDelegated(t, b, defaultAuth())
	a := saas.sign(ts.delegateClaims(ch, "u-1"), saas.key, saas.kid, jose.ES256)
	before := ts.snapshotWithout(t, "replay")
	wantRefused("assertion in another browser", ts.delegateCallback(newBrowser(t), a))
	if after := ts.snapshotWithout(t, "replay"); after != before {
		t.Errorf("a refused assertion changed storage")
	}
	origin, _ := url.Parse(ts.URL)
	kept := b.client.Jar.Cookies(origin)
	if p := ts.delegateCallback(b, a); !strings.Contains(p.body, `id="consent-form"`) {
		t.Fatalf("genuine assertion: status %d, want the consent page:\n%s", p.status, p.body)
	}
	users, _ := ts.Store.ListUsers(t.Context())
	wantRefused("replayed assertion", ts.delegateCallback(b, a))
	b.client.Jar.SetCookies(origin, kept)
	wantRefused("replayed assertion with the sign-in cookie put back", ts.delegateCallback(b, a))
	if again, _ := ts.Store.ListUsers(t.Context()); len(again) != len(users) {
		t.Errorf("replays made users: %d, was %d", len(again), len(users))
	}
	if es := ts.delegateFailures(t); len(es) != 3 {
		t.Errorf("login.delegate_failed events = %d, want 3 (the signature is the SaaS's: each replay is audited)", len(es))
	}
	// Junk that neither belongs to a sign-in nor carries the SaaS's
	// signature is anyone's to send: refused, logged, not audited.
	p := ts.delegateCallback(newBrowser(t), "not.a.jws")
	if p.status != http.StatusBadRequest || !strings.Contains(p.body, "not a compact JWS") {
		t.Errorf("junk assertion: status %d:\n%s", p.status, p.body)
	}
	if p := newBrowser(t).get(ts.URL + "/login/delegate/callback"); p.status != http.StatusBadRequest {
		t.Errorf("no assertion: status %d, want 400", p.status)
	}
	if es := ts.delegateFailures(t); len(es) != 3 {
		t.Errorf("login.delegate_failed events = %d after junk, want still 3", len(es))
	}
}

// TestDelegatedLoginOnly: with local sign-in off and no providers, the
// authorization request goes straight to the SaaS, and prompt=login and
// max_age are passed on and then required of auth_time.
func TestDelegatedLoginOnly(t *testing.T) {
	ts, saas := newDelegateServer(t, func(o *Options) { o.DisableLocalLogin = true })
	b := newBrowser(t)
	a := defaultAuth()
	a.prompt = "login"
	toSaaS := location(t, b.get(a.url(ts.URL)))
	if !strings.HasPrefix(toSaaS.String(), "https://saas.example/login?") || toSaaS.Query().Get("prompt") != "login" {
		t.Fatalf("/authorize with only a delegate sent the browser to %s, want the SaaS with prompt=login", toSaaS)
	}
	ch := toSaaS.Query().Get("login_challenge")
	c := ts.delegateClaims(ch, "u-2")
	p := ts.delegateCallback(b, saas.sign(c, saas.key, saas.kid, jose.ES256))
	if p.status != http.StatusForbidden || !strings.Contains(p.body, "auth_time is missing or too old") {
		t.Errorf("prompt=login without auth_time: status %d, want 403:\n%s", p.status, p.body)
	}
	b = newBrowser(t)
	toSaaS = location(t, b.get(a.url(ts.URL)))
	c = ts.delegateClaims(toSaaS.Query().Get("login_challenge"), "u-2")
	c["auth_time"] = ts.Clock.Now().Unix()
	if p := ts.delegateCallback(b, saas.sign(c, saas.key, saas.kid, jose.ES256)); !strings.Contains(p.body, `id="consent-form"`) {
		t.Errorf("prompt=login with a fresh auth_time: status %d, want the consent page:\n%s", p.status, p.body)
	}
}

// TestDelegateOptions: New refuses a delegate it could not use.
func TestDelegateOptions(t *testing.T) {
	saas := newFakeSaaS(t)
	for _, d := range []Delegate{
		{ID: "", LoginURL: saasLoginURL, Keys: saas.publicKeys()},
		{ID: "a:b", LoginURL: saasLoginURL, Keys: saas.publicKeys()},
		{ID: "saas", LoginURL: "/login", Keys: saas.publicKeys()},
		{ID: "saas", LoginURL: saasLoginURL},
		{ID: "saas", LoginURL: saasLoginURL, Keys: []jose.JSONWebKey{{Key: []byte("shared-secret-shared-secret-0123"), KeyID: "k", Algorithm: "HS256"}}},
	} {
		if _, err := newDelegate(&d); err == nil {
			t.Errorf("newDelegate(%+v) = nil error", d)
		}
	}
}
