package as

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"html"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/fxamacker/cbor/v2"

	"github.com/gatehouse-mcp/gatehouse/internal/storage"
)

// softAuthenticator is a WebAuthn authenticator in software: one P-256
// passkey with "none" attestation, answering the server's options the way
// a browser's navigator.credentials.create/get would, built from the
// WebAuthn data formats (authenticator data, COSE key, CBOR attestation
// object, client data JSON). Its fields let a test break what a real
// authenticator or browser gets right.
type softAuthenticator struct {
	origin     string // clientDataJSON's origin
	rpID       string // hashed into the authenticator data
	noUV       bool   // leave the UV flag unset: the user was not verified
	key        *ecdsa.PrivateKey
	credID     []byte
	userHandle []byte
	count      uint32
}

func newSoftAuthenticator(t *testing.T, origin, rpID string) *softAuthenticator {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	must(t, err)
	id := make([]byte, 16)
	_, err = rand.Read(id)
	must(t, err)
	return &softAuthenticator{origin: origin, rpID: rpID, key: key, credID: id}
}

var b64 = base64.RawURLEncoding

// authData is the authenticator data: RP ID hash, flags (UP, UV unless
// noUV, AT with attested), signature counter, attested credential data.
func (a *softAuthenticator) authData(attested []byte) []byte {
	h := sha256.Sum256([]byte(a.rpID))
	flags := byte(0x01) // UP
	if !a.noUV {
		flags |= 0x04
	}
	if attested != nil {
		flags |= 0x40
	}
	d := append(h[:], flags)
	d = binary.BigEndian.AppendUint32(d, a.count)
	return append(d, attested...)
}

func (a *softAuthenticator) clientData(t *testing.T, typ, challenge string) []byte {
	b, err := json.Marshal(map[string]any{"type": typ, "challenge": challenge, "origin": a.origin, "crossOrigin": false})
	must(t, err)
	return b
}

// create answers registration options (the JSON the server sent) with
// the new credential's JSON, as the page's script posts it.
func (a *softAuthenticator) create(t *testing.T, options string) string {
	t.Helper()
	var o struct {
		PublicKey struct {
			Challenge string `json:"challenge"`
			User      struct {
				ID string `json:"id"`
			} `json:"user"`
		} `json:"publicKey"`
	}
	must(t, json.Unmarshal([]byte(options), &o))
	var err error
	a.userHandle, err = b64.DecodeString(o.PublicKey.User.ID)
	must(t, err)
	pub, err := a.key.PublicKey.Bytes() // uncompressed: 0x04 || x || y
	must(t, err)
	x, y := pub[1:33], pub[33:]
	cose, err := cbor.Marshal(map[int]any{1: 2, 3: -7, -1: 1, -2: x, -3: y})
	must(t, err)
	attested := make([]byte, 16) // AAGUID: none
	attested = binary.BigEndian.AppendUint16(attested, uint16(len(a.credID)))
	attested = append(append(attested, a.credID...), cose...)
	att, err := cbor.Marshal(map[string]any{"fmt": "none", "attStmt": map[string]any{}, "authData": a.authData(attested)})
	must(t, err)
	return a.credentialJSON(t, map[string]any{
		"clientDataJSON":    b64.EncodeToString(a.clientData(t, "webauthn.create", o.PublicKey.Challenge)),
		"attestationObject": b64.EncodeToString(att),
		"transports":        []string{"internal"},
	})
}

// get answers sign-in options with an assertion of the passkey.
func (a *softAuthenticator) get(t *testing.T, options string) string {
	t.Helper()
	var o struct {
		PublicKey struct {
			Challenge string `json:"challenge"`
		} `json:"publicKey"`
	}
	must(t, json.Unmarshal([]byte(options), &o))
	a.count++
	ad := a.authData(nil)
	cd := a.clientData(t, "webauthn.get", o.PublicKey.Challenge)
	h := sha256.Sum256(cd)
	digest := sha256.Sum256(append(append([]byte{}, ad...), h[:]...))
	sig, err := ecdsa.SignASN1(rand.Reader, a.key, digest[:])
	must(t, err)
	return a.credentialJSON(t, map[string]any{
		"clientDataJSON":    b64.EncodeToString(cd),
		"authenticatorData": b64.EncodeToString(ad),
		"signature":         b64.EncodeToString(sig),
		"userHandle":        b64.EncodeToString(a.userHandle),
	})
}

func (a *softAuthenticator) credentialJSON(t *testing.T, response map[string]any) string {
	b, err := json.Marshal(map[string]any{
		"id": b64.EncodeToString(a.credID), "rawId": b64.EncodeToString(a.credID), "type": "public-key",
		"authenticatorAttachment": "platform", "clientExtensionResults": map[string]any{}, "response": response,
	})
	must(t, err)
	return string(b)
}

// newPasskeyServer is a test server whose relying party is localhost on
// the test listener's port (an IP address cannot be an RP ID), like
// `gatehouse dev`'s, reached there: its URL is that origin (the issuer
// stays on 127.0.0.1). It returns the origin too.
func newPasskeyServer(t *testing.T) (*testServer, string) {
	t.Helper()
	return newPasskeyServerWith(t, nil)
}

func newPasskeyServerWith(t *testing.T, mod func(*Options)) (*testServer, string) {
	t.Helper()
	var origin string
	ts := newTestServer(t, func(o *Options) {
		u, _ := url.Parse(o.Issuer)
		origin = "http://localhost:" + u.Port()
		o.Passkeys = Passkeys{RPID: "localhost", Origins: []string{origin}}
		if mod != nil {
			mod(o)
		}
	})
	ts.URL = origin
	return ts, origin
}

// passkeyOptions posts the CSRF token of page path to an options
// endpoint and returns the JSON answer.
func (ts *testServer) passkeyOptions(t *testing.T, b *browser, page, endpoint string) string {
	t.Helper()
	p := b.post(ts.URL+endpoint, url.Values{"csrf_token": {hiddenFields(b.get(ts.URL + page)).Get("csrf_token")}})
	if p.status != http.StatusOK || !strings.HasPrefix(p.header.Get("Content-Type"), "application/json") {
		t.Fatalf("POST %s = %d %s\n%s", endpoint, p.status, p.header.Get("Content-Type"), p.body)
	}
	return p.body
}

// addPasskey registers a's passkey for b's signed-in user, named name.
func (ts *testServer) addPasskey(t *testing.T, b *browser, a *softAuthenticator, name string) page {
	t.Helper()
	cred := a.create(t, ts.passkeyOptions(t, b, pathAccount, pathAccountPasskeyOptions))
	return ts.accountPost(t, b, pathAccountPasskeyAdd, url.Values{"name": {name}, "credential": {cred}})
}

// passkeySignIn signs b in with a on the account sign-in page.
func (ts *testServer) passkeySignIn(t *testing.T, b *browser, a *softAuthenticator) page {
	t.Helper()
	return ts.passkeyForm(t, b, b.get(ts.URL+pathAccountLogin), a)
}

// passkeyForm does what the script does with the sign-in page p's
// passkey form: fetches the options, has a answer them, and submits the
// form with the answer.
func (ts *testServer) passkeyForm(t *testing.T, b *browser, p page, a *softAuthenticator) page {
	t.Helper()
	action, v := p.form(t, "passkey-login")
	options := regexp.MustCompile(`data-options="([^"]*)"`).FindStringSubmatch(p.body)
	if options == nil {
		t.Fatalf("passkey form without data-options:\n%s", p.body)
	}
	o := b.post(ts.origin()+html.UnescapeString(options[1]), url.Values{"csrf_token": {v.Get("csrf_token")}})
	if o.status != http.StatusOK {
		t.Fatalf("passkey options = %d\n%s", o.status, o.body)
	}
	v.Set("credential", a.get(t, o.body))
	return b.post(ts.origin()+action, v)
}

func auditTypes(t *testing.T, ts *testServer, prefix string) []storage.AuditEvent {
	t.Helper()
	es, err := ts.Store.QueryAudit(t.Context(), storage.AuditQuery{Type: prefix, Limit: 1000})
	must(t, err)
	return es
}

// TestPasskeyRegisterAndSignIn: a signed-in user adds a passkey (stored
// with its name, audited passkey.added); another browser, signed out,
// signs in with it without a username (a new session, audited
// login.success, the counter stored) and reaches the account page.
func TestPasskeyRegisterAndSignIn(t *testing.T) {
	ts, origin := newPasskeyServer(t)
	b := newBrowser(t)
	ts.accountLogin(t, b, testUser, testPassword)
	a := newSoftAuthenticator(t, origin, "localhost")
	p := ts.addPasskey(t, b, a, "My laptop")
	if p.status != http.StatusSeeOther || p.header.Get("Location") != pathAccount+"?done=passkey-added" {
		t.Fatalf("add passkey = %d Location %q\n%s", p.status, p.header.Get("Location"), p.body)
	}
	ps, err := ts.Store.ListPasskeys(t.Context(), ts.userID)
	must(t, err)
	if len(ps) != 1 || ps[0].Name != "My laptop" || ps[0].ID != b64.EncodeToString(a.credID) {
		t.Fatalf("passkeys = %+v, want one named My laptop", ps)
	}
	if es := auditTypes(t, ts, "passkey."); len(es) != 1 || es[0].Type != "passkey.added" || es[0].UserID != ts.userID {
		t.Errorf("audit = %+v, want one passkey.added of alice", es)
	}

	b2 := newBrowser(t)
	p = ts.passkeySignIn(t, b2, a)
	if p.status != http.StatusSeeOther || p.header.Get("Location") != pathAccount {
		t.Fatalf("passkey sign-in = %d Location %q\n%s", p.status, p.header.Get("Location"), p.body)
	}
	if p := b2.get(ts.URL + pathAccount); p.status != http.StatusOK || !strings.Contains(p.body, testUser) {
		t.Errorf("GET /account after passkey sign-in = %d, want 200 naming %s", p.status, testUser)
	}
	got, err := ts.Store.GetPasskey(t.Context(), ps[0].ID)
	must(t, err)
	if got.SignCount != 1 || got.LastUsedAt.IsZero() {
		t.Errorf("passkey after sign-in: count %d, last used %v; want 1 and set", got.SignCount, got.LastUsedAt)
	}
	es := auditTypes(t, ts, "login.success")
	if last := es[len(es)-1]; last.UserID != ts.userID || !strings.Contains(last.Detail, "passkey") {
		t.Errorf("last login.success = %+v, want alice's by passkey", last)
	}
}

// TestPasskeyRegisterRefusals: an answer from another origin, for another
// RP ID, or without user verification adds no passkey (400, audited
// passkey.add_failed); nor does an answer replayed after it was used.
func TestPasskeyRegisterRefusals(t *testing.T) {
	for _, tc := range []struct {
		name    string
		breakIt func(a *softAuthenticator)
	}{
		{"WrongOrigin", func(a *softAuthenticator) { a.origin = "http://evil.localhost:1" }},
		{"WrongRPID", func(a *softAuthenticator) { a.rpID = "example.com" }},
		{"NoUserVerification", func(a *softAuthenticator) { a.noUV = true }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ts, origin := newPasskeyServer(t)
			b := newBrowser(t)
			ts.accountLogin(t, b, testUser, testPassword)
			a := newSoftAuthenticator(t, origin, "localhost")
			tc.breakIt(a)
			if p := ts.addPasskey(t, b, a, "x"); p.status != http.StatusBadRequest || !strings.Contains(p.body, "could not be added") {
				t.Errorf("add = %d, want 400 saying it could not be added\n%s", p.status, p.body)
			}
			if ps, _ := ts.Store.ListPasskeys(t.Context(), ts.userID); len(ps) != 0 {
				t.Errorf("passkeys = %+v, want none", ps)
			}
			if es := auditTypes(t, ts, "passkey."); len(es) != 1 || es[0].Type != "passkey.add_failed" {
				t.Errorf("audit = %+v, want one passkey.add_failed", es)
			}
		})
	}
	t.Run("Replayed", func(t *testing.T) {
		ts, origin := newPasskeyServer(t)
		b := newBrowser(t)
		ts.accountLogin(t, b, testUser, testPassword)
		a := newSoftAuthenticator(t, origin, "localhost")
		cred := a.create(t, ts.passkeyOptions(t, b, pathAccount, pathAccountPasskeyOptions))
		saved := ts.ceremonyCookies(b)
		if p := ts.accountPost(t, b, pathAccountPasskeyAdd, url.Values{"credential": {cred}}); p.status != http.StatusSeeOther {
			t.Fatalf("add = %d\n%s", p.status, p.body)
		}
		must(t, ts.Store.DeletePasskey(t.Context(), ts.userID, b64.EncodeToString(a.credID)))
		ts.restoreCookies(b, saved)
		if p := ts.accountPost(t, b, pathAccountPasskeyAdd, url.Values{"credential": {cred}}); p.status != http.StatusBadRequest {
			t.Errorf("replayed add = %d, want 400", p.status)
		}
		if ps, _ := ts.Store.ListPasskeys(t.Context(), ts.userID); len(ps) != 0 {
			t.Errorf("passkeys after a replay = %+v, want none", ps)
		}
	})
}

// ceremonyCookies returns b's passkey ceremony cookies, to replay them.
func (ts *testServer) ceremonyCookies(b *browser) []*http.Cookie {
	u, _ := url.Parse(ts.URL)
	var out []*http.Cookie
	for _, c := range b.client.Jar.Cookies(u) {
		if strings.Contains(c.Name, "passkey") {
			out = append(out, &http.Cookie{Name: c.Name, Value: c.Value, Path: "/"})
		}
	}
	return out
}

func (ts *testServer) restoreCookies(b *browser, cs []*http.Cookie) {
	u, _ := url.Parse(ts.URL)
	b.client.Jar.SetCookies(u, cs)
}

// TestPasskeySignInRefusals: a registered passkey's assertion is refused
// (401 or 400, no session, audited login.failure) from another origin,
// for another RP ID, without user verification, replayed, for a
// credential the server does not know, or naming another user.
func TestPasskeySignInRefusals(t *testing.T) {
	ts, origin := newPasskeyServer(t)
	b := newBrowser(t)
	ts.accountLogin(t, b, testUser, testPassword)
	a := newSoftAuthenticator(t, origin, "localhost")
	if p := ts.addPasskey(t, b, a, "ok"); p.status != http.StatusSeeOther {
		t.Fatalf("add = %d\n%s", p.status, p.body)
	}
	ts.addUser(t, "user-bob", "bob", "bob's password is long")
	for _, tc := range []struct {
		name    string
		breakIt func(a *softAuthenticator)
	}{
		{"WrongOrigin", func(a *softAuthenticator) { a.origin = "http://localhost:1" }},
		{"WrongRPID", func(a *softAuthenticator) { a.rpID = "example.com" }},
		{"NoUserVerification", func(a *softAuthenticator) { a.noUV = true }},
		{"UnknownCredential", func(a *softAuthenticator) { a.credID = []byte("not a registered credential") }},
		{"OtherUsersHandle", func(a *softAuthenticator) { a.userHandle = []byte("user-bob") }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bad := *a
			tc.breakIt(&bad)
			b := newBrowser(t)
			p := ts.passkeySignIn(t, b, &bad)
			if p.status != http.StatusUnauthorized || !strings.Contains(p.body, "was not accepted") {
				t.Errorf("sign-in = %d, want 401 saying it was not accepted\n%s", p.status, p.body)
			}
			if p := b.get(ts.URL + pathAccount); p.status != http.StatusSeeOther {
				t.Errorf("GET /account after a refused sign-in = %d, want 303 to sign in", p.status)
			}
			es := auditTypes(t, ts, "login.failure")
			if len(es) == 0 || !strings.Contains(es[len(es)-1].Detail, "passkey") {
				t.Errorf("audit = %+v, want a login.failure by passkey last", es)
			}
		})
	}
	t.Run("Replayed", func(t *testing.T) {
		b := newBrowser(t)
		cred := a.get(t, ts.passkeyOptions(t, b, pathAccountLogin, pathPasskeyOptions))
		saved := ts.ceremonyCookies(b)
		form := url.Values{"csrf_token": {hiddenFields(b.get(ts.URL + pathAccountLogin)).Get("csrf_token")}, "credential": {cred}}
		if p := b.post(ts.URL+pathPasskeyLogin, form); p.status != http.StatusSeeOther {
			t.Fatalf("sign-in = %d\n%s", p.status, p.body)
		}
		// The same answer with the same ceremony cookie, from a browser
		// that never signed in.
		b2 := newBrowser(t)
		form.Set("csrf_token", hiddenFields(b2.get(ts.URL+pathAccountLogin)).Get("csrf_token"))
		ts.restoreCookies(b2, saved)
		if p := b2.post(ts.URL+pathPasskeyLogin, form); p.status != http.StatusBadRequest || !strings.Contains(p.body, "already used") {
			t.Errorf("replayed sign-in = %d, want 400 saying already used\n%s", p.status, p.body)
		}
		if p := b2.get(ts.URL + pathAccount); p.status != http.StatusSeeOther {
			t.Errorf("GET /account after a replay = %d, want 303", p.status)
		}
	})
}

// TestPasskeyCannotRemoveOthers: alice cannot remove or rename bob's
// passkey by its id (404, still there); she can remove her own (audited
// passkey.removed).
func TestPasskeyCannotRemoveOthers(t *testing.T) {
	ts, origin := newPasskeyServer(t)
	ts.addUser(t, "user-bob", "bob", "bob's password is long")
	bob := newBrowser(t)
	ts.accountLogin(t, bob, "bob", "bob's password is long")
	bobKey := newSoftAuthenticator(t, origin, "localhost")
	if p := ts.addPasskey(t, bob, bobKey, "bob's"); p.status != http.StatusSeeOther {
		t.Fatalf("bob's add = %d\n%s", p.status, p.body)
	}
	alice := newBrowser(t)
	ts.accountLogin(t, alice, testUser, testPassword)
	aliceKey := newSoftAuthenticator(t, origin, "localhost")
	if p := ts.addPasskey(t, alice, aliceKey, "alice's"); p.status != http.StatusSeeOther {
		t.Fatalf("alice's add = %d\n%s", p.status, p.body)
	}
	bobID := b64.EncodeToString(bobKey.credID)
	if p := ts.accountPost(t, alice, pathAccountPasskeyRemove, url.Values{"id": {bobID}}); p.status != http.StatusNotFound {
		t.Errorf("alice removes bob's passkey = %d, want 404", p.status)
	}
	if p := ts.accountPost(t, alice, pathAccountPasskeyRename, url.Values{"id": {bobID}, "name": {"mine"}}); p.status != http.StatusNotFound {
		t.Errorf("alice renames bob's passkey = %d, want 404", p.status)
	}
	if got, err := ts.Store.GetPasskey(t.Context(), bobID); err != nil || got.Name != "bob's" {
		t.Errorf("bob's passkey = %+v, %v; want it unchanged", got, err)
	}
	if p := alice.post(ts.URL+pathAccountPasskeyRemove, url.Values{"id": {b64.EncodeToString(aliceKey.credID)}}); p.status != http.StatusForbidden {
		t.Errorf("remove without CSRF token = %d, want 403", p.status)
	}
	if p := ts.accountPost(t, alice, pathAccountPasskeyRemove, url.Values{"id": {b64.EncodeToString(aliceKey.credID)}}); p.status != http.StatusSeeOther {
		t.Errorf("alice removes her passkey = %d, want 303", p.status)
	}
	if ps, _ := ts.Store.ListPasskeys(t.Context(), ts.userID); len(ps) != 0 {
		t.Errorf("alice's passkeys = %+v, want none", ps)
	}
	if es := auditTypes(t, ts, "passkey.removed"); len(es) != 1 || es[0].UserID != ts.userID {
		t.Errorf("audit = %+v, want one passkey.removed of alice", es)
	}
}

// TestPasskeyConfig: on an IP-address issuer passkeys are off by default
// (the endpoints are not found); an IP-address rp_id, or an origin not on
// the rp_id, is a configuration error.
func TestPasskeyConfig(t *testing.T) {
	// On a page reached at another origin than the passkeys' (dev's
	// 127.0.0.1 beside localhost) the browser would refuse the
	// ceremony: neither page offers it there.
	pts, _ := newPasskeyServer(t)
	ip := newBrowser(t)
	if p := ip.get(pts.Issuer() + pathAccountLogin); p.status != http.StatusOK || strings.Contains(p.body, "passkey") {
		t.Errorf("GET %s on 127.0.0.1 = %d, offers passkeys:\n%s", pathAccountLogin, p.status, p.body)
	}
	if p := ip.get(pts.URL + pathAccountLogin); !strings.Contains(p.body, `id="passkey-login"`) {
		t.Errorf("GET %s on localhost does not offer passkeys:\n%s", pathAccountLogin, p.body)
	}

	ts := newTestServer(t, nil)
	if ts.PasskeysEnabled() {
		t.Error("passkeys enabled on an IP-address issuer")
	}
	b := newBrowser(t)
	csrf := hiddenFields(b.get(ts.URL + pathAccountLogin)).Get("csrf_token")
	if p := b.post(ts.URL+pathPasskeyOptions, url.Values{"csrf_token": {csrf}}); p.status != http.StatusNotFound {
		t.Errorf("POST %s with passkeys off = %d, want 404", pathPasskeyOptions, p.status)
	}
	iss, _ := url.Parse("https://auth.example.com")
	for _, tc := range []struct {
		o    Passkeys
		want string
	}{
		{Passkeys{RPID: "127.0.0.1"}, "is an IP address"},
		{Passkeys{Origins: []string{"https://evil.example.net"}}, "is not on the rp_id"},
		{Passkeys{Origins: []string{"https://auth.example.com/path"}}, "is not an origin"},
	} {
		if _, err := newWebAuthn(tc.o, iss); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("newWebAuthn(%+v) = %v, want an error saying %q", tc.o, err, tc.want)
		}
	}
	w, err := newWebAuthn(Passkeys{}, iss)
	if err != nil || w.Config.RPID != "auth.example.com" || len(w.Config.RPOrigins) != 1 || w.Config.RPOrigins[0] != "https://auth.example.com" {
		t.Errorf("defaults from the issuer = %+v, %v; want auth.example.com and its origin", w, err)
	}
}

// TestPasskeyAuthorizationSignIn: the authorization flow's sign-in page
// offers the passkey, and signing in with it continues the request to
// the consent page and on to the client with a code.
func TestPasskeyAuthorizationSignIn(t *testing.T) {
	ts, origin := newPasskeyServer(t)
	b := newBrowser(t)
	ts.accountLogin(t, b, testUser, testPassword)
	a := newSoftAuthenticator(t, origin, "localhost")
	if p := ts.addPasskey(t, b, a, "key"); p.status != http.StatusSeeOther {
		t.Fatalf("add = %d\n%s", p.status, p.body)
	}
	b2 := newBrowser(t)
	p := b2.get(defaultAuth().url(ts.URL))
	p = ts.passkeyForm(t, b2, p, a)
	if p.status != http.StatusOK || !strings.Contains(p.body, `id="consent-form"`) {
		t.Fatalf("passkey sign-in in the authorization flow = %d, want the consent page\n%s", p.status, p.body)
	}
	loc := location(t, ts.consent(t, b2, p, "allow"))
	if loc.Query().Get("code") == "" || loc.Query().Get("state") != "st-1" {
		t.Errorf("redirect after consent = %s, want a code and the state", loc)
	}
	es := auditTypes(t, ts, "login.success")
	if last := es[len(es)-1]; last.ClientID != publicClient || !strings.HasPrefix(last.Detail, "passkey") {
		t.Errorf("last login.success = %+v, want by passkey for %s", last, publicClient)
	}
}

// TestPasskeySignInThrottled: passkey sign-ins share the login throttle
// of the client IP: past its limit even a valid passkey gets 429 with
// Retry-After, and failed passkey attempts count toward it.
func TestPasskeySignInThrottled(t *testing.T) {
	ts, origin := newPasskeyServerWith(t, func(o *Options) { o.LoginMaxFailures = 1 }) // the IP's limit is 4
	b := newBrowser(t)
	ts.accountLogin(t, b, testUser, testPassword)
	a := newSoftAuthenticator(t, origin, "localhost")
	if p := ts.addPasskey(t, b, a, "key"); p.status != http.StatusSeeOther {
		t.Fatalf("add = %d\n%s", p.status, p.body)
	}
	bad := *a
	bad.noUV = true
	for i := range 4 {
		if p := ts.passkeySignIn(t, newBrowser(t), &bad); p.status != http.StatusUnauthorized {
			t.Fatalf("failed attempt %d = %d, want 401", i+1, p.status)
		}
	}
	p := ts.passkeySignIn(t, newBrowser(t), a)
	if p.status != http.StatusTooManyRequests || p.header.Get("Retry-After") == "" {
		t.Errorf("valid passkey past the limit = %d Retry-After %q, want 429 with Retry-After", p.status, p.header.Get("Retry-After"))
	}
}
