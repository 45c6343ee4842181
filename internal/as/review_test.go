package as

// Tests of the findings of the outside review (issue 11), one named test
// per finding, listed in the index at the top of adversarial_test.go. Each
// asserts the refusal (status, OAuth error, description) and, where a
// refusal must change nothing, that storage did not change.

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/gatehouse-mcp/gatehouse/internal/clientreg"
	"github.com/gatehouse-mcp/gatehouse/internal/oauth"
	"github.com/gatehouse-mcp/gatehouse/internal/storage"
	"github.com/gatehouse-mcp/gatehouse/internal/token"
)

// jwtClaims decodes the payload of a compact JWT without verifying it (the
// server under test signed it).
func jwtClaims(t *testing.T, tok string) map[string]any {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("not a compact JWS: %q", tok)
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	must(t, err)
	var m map[string]any
	must(t, json.Unmarshal(b, &m))
	return m
}

// assertDescription fails unless the JSON error body's
// error_description contains want.
func assertDescription(t *testing.T, body, want string) {
	t.Helper()
	var e struct {
		Description string `json:"error_description"`
	}
	_ = json.Unmarshal([]byte(body), &e)
	if !strings.Contains(e.Description, want) {
		t.Errorf("error_description = %q, want it to contain %q", e.Description, want)
	}
}

// machineKey is a private_key_jwt key pair of a metadata-document client.
type machineKey struct {
	key  *ecdsa.PrivateKey
	jwks map[string]any
}

func newMachineKey(t *testing.T) machineKey {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	must(t, err)
	pub := jose.JSONWebKey{Key: &key.PublicKey, KeyID: "k1", Algorithm: "ES256", Use: "sig"}
	b, err := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{pub}})
	must(t, err)
	var m map[string]any
	must(t, json.Unmarshal(b, &m))
	return machineKey{key: key, jwks: m}
}

// assertion signs an RFC 7523 client assertion of client for ts.
func (k machineKey) assertion(t *testing.T, ts *testServer, client string) string {
	t.Helper()
	now := ts.Clock.Now()
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: k.key}, (&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", "k1"))
	must(t, err)
	payload, err := json.Marshal(map[string]any{"iss": client, "sub": client, "aud": ts.URL + "/token", "jti": rand.Text(), "iat": now.Unix(), "exp": now.Add(2 * time.Minute).Unix()})
	must(t, err)
	obj, err := s.Sign(payload)
	must(t, err)
	out, err := obj.CompactSerialize()
	must(t, err)
	return out
}

// TestAdversarialAnonymousMachineTokens (issue 11 F1): nobody gets a token
// without a user just by registering. A self-registered client asking for
// client_credentials is refused at /register; one that has the grant
// anyway (registered before the rule, or a metadata document listing it
// with private_key_jwt) is refused at /token; and with the operator's
// opt-in a dynamic client gets only the opted-in scopes, only for a
// resource that accepts machine tokens. Every refusal changes nothing.
func TestAdversarialAnonymousMachineTokens(t *testing.T) {
	const ruleText = "self-registered and metadata-document clients cannot use the client_credentials grant"
	t.Run("registration asking for client_credentials", func(t *testing.T) {
		ts := newTestServer(t, openRegistration(nil))
		before := ts.snapshot(t)
		for _, body := range []string{
			`{"client_name":"Worker","grant_types":["client_credentials"],"token_endpoint_auth_method":"client_secret_basic"}`,
			`{"client_name":"Both","redirect_uris":["https://app.example/cb"],"grant_types":["authorization_code","client_credentials"],"token_endpoint_auth_method":"client_secret_post"}`,
		} {
			r := ts.register(t, body)
			assertOAuthError(t, r.status, r.body, http.StatusBadRequest, "invalid_client_metadata")
			assertDescription(t, r.body, ruleText)
			assertDescription(t, r.body, "registration.allow_client_credentials")
		}
		assertUnchanged(t, ts, before)
	})

	t.Run("dynamic client that holds the grant", func(t *testing.T) {
		// A client registered before the rule existed: its row lists the
		// grant, but /token still refuses it.
		ts := newTestServer(t, openRegistration(nil))
		const secret = "dcr-secret"
		c := storage.Client{ID: "dcr_old", Name: "Old worker", GrantTypes: []string{"client_credentials"}, TokenEndpointAuthMethod: "client_secret_basic", SecretHash: token.Hash(secret)}
		addClient(t, ts, c)
		_, err := ts.Store.UpdateClient(t.Context(), c.ID, func(c storage.Client) (storage.Client, error) { c.Origin = storage.OriginDCR; return c, nil })
		must(t, err)
		before := ts.snapshot(t)
		for _, res := range []string{testResource, testResource2} {
			s, _, body := ts.post(t, "/token", url.Values{"grant_type": {"client_credentials"}, "resource": {res}}, c.ID, secret)
			assertOAuthError(t, s, body, http.StatusBadRequest, "unauthorized_client")
			assertDescription(t, body, ruleText)
		}
		assertUnchanged(t, ts, before)
	})

	t.Run("metadata document with private_key_jwt", func(t *testing.T) {
		d := newDocServer(t)
		k := newMachineKey(t)
		ts := newTestServer(t, cimdOptions(d, nil))
		d.set("/worker", docResponse{body: d.doc("/worker", map[string]any{
			"client_name": "Worker", "token_endpoint_auth_method": "private_key_jwt", "jwks": k.jwks,
			"grant_types": []string{"authorization_code", "client_credentials"},
		})})
		id := d.URL + "/worker"
		// Resolve the document once (as its first /authorize would), so
		// the refusal below must change nothing.
		if _, err := ts.lookupClient(t.Context(), id, "127.0.0.1"); err != nil {
			t.Fatal(err)
		}
		// The valid assertion's jti is spent (replay), nothing else.
		before := ts.snapshotWithout(t, "replay")
		s, _, body := ts.post(t, "/token", url.Values{"grant_type": {"client_credentials"}, "resource": {testResource},
			"client_assertion_type": {assertionTypeJWT}, "client_assertion": {k.assertion(t, ts, id)}}, "", "")
		assertOAuthError(t, s, body, http.StatusBadRequest, "unauthorized_client")
		assertDescription(t, body, ruleText)
		if ts.snapshotWithout(t, "replay") != before {
			t.Error("storage changed by a refused request")
		}
	})

	t.Run("operator opt-in", func(t *testing.T) {
		ts := newTestServer(t, openRegistration(allowMachineClients))
		r := ts.mustRegister(t, `{"client_name":"Worker","grant_types":["client_credentials"],"token_endpoint_auth_method":"client_secret_basic"}`)
		id, secret := r.str("client_id"), r.str("client_secret")
		cc := func(resource, scope string) (int, string) {
			v := url.Values{"grant_type": {"client_credentials"}, "resource": {resource}}
			if scope != "" {
				v.Set("scope", scope)
			}
			s, _, body := ts.post(t, "/token", v, id, secret)
			return s, body
		}
		before := ts.snapshot(t)
		s, body := cc(testResource2, "")
		assertOAuthError(t, s, body, http.StatusBadRequest, "invalid_target")
		assertDescription(t, body, "does not accept client_credentials tokens")
		s, body = cc(testResource, "notes:write")
		assertOAuthError(t, s, body, http.StatusBadRequest, "invalid_scope")
		assertDescription(t, body, "not available to self-registered clients with client_credentials; available: notes:read")
		assertUnchanged(t, ts, before)

		s, body = cc(testResource, "")
		if s != http.StatusOK {
			t.Fatalf("client_credentials within the opt-in = %d %s", s, body)
		}
		var tr tokenResponse
		must(t, json.Unmarshal([]byte(body), &tr))
		c := jwtClaims(t, tr.AccessToken)
		if c["sub"] != id || c["client_id"] != id || c["scope"] != "notes:read" || c["auth_time"] != nil {
			t.Errorf("machine token claims = %v, want sub = client_id = %s, scope notes:read, no auth_time", c, id)
		}
	})

	t.Run("operator client", func(t *testing.T) {
		ts := newTestServer(t, nil)
		before := ts.snapshot(t)
		s, _, body := ts.post(t, "/token", url.Values{"grant_type": {"client_credentials"}, "resource": {testResource2}}, confClient, confSecret)
		assertOAuthError(t, s, body, http.StatusBadRequest, "invalid_target")
		assertDescription(t, body, "the resource "+testResource2+" does not accept client_credentials tokens (tokens without a user); its operator can allow them with accept_client_credentials")
		assertUnchanged(t, ts, before)
		s, _, body = ts.post(t, "/token", url.Values{"grant_type": {"client_credentials"}, "resource": {testResource}, "scope": {"notes:read notes:write"}}, confClient, confSecret)
		if s != http.StatusOK {
			t.Fatalf("an operator client on a resource that accepts machine tokens = %d %s", s, body)
		}
		var tr tokenResponse
		must(t, json.Unmarshal([]byte(body), &tr))
		if c := jwtClaims(t, tr.AccessToken); c["sub"] != confClient || c["client_id"] != confClient {
			t.Errorf("claims %v, want sub = client_id = %s", c, confClient)
		}
	})
}

// TestAdversarialRegistrationHijack (issue 11 F2): no registration or
// management call by one party changes what another party's client does
// or where its users' codes go, and de-duplication keeps working.
func TestAdversarialRegistrationHijack(t *testing.T) {
	const meta = `{"client_name":"App A","redirect_uris":["https://app-a.example/cb"],"token_endpoint_auth_method":"none","grant_types":["authorization_code","refresh_token"],"application_type":"web"}`
	attackerMeta := strings.Replace(meta, `["https://app-a.example/cb"]`, `["https://app-a.example/cb","https://attacker.example/cb"]`, 1)
	put := func(ts *testServer, id, body, rat string) regResp {
		return ts.call(t, http.MethodPut, "/register/"+id, "application/json", `{"client_id":"`+id+`",`+strings.TrimPrefix(body, "{"), rat)
	}
	// attackerLink is the link party B sends A's users, with B's redirect.
	attackerLink := func(ts *testServer, id string) authRequest {
		a := defaultAuth()
		a.clientID, a.redirectURI = id, "https://attacker.example/cb"
		return a
	}
	consentTo := func(ts *testServer, b *browser, id string) {
		a := defaultAuth()
		a.clientID, a.redirectURI = id, "https://app-a.example/cb"
		if loc := ts.authorize(t, b, a); loc.Query().Get("code") == "" {
			t.Fatalf("A's user got no code: %s", loc)
		}
	}

	t.Run("second registration of identical metadata", func(t *testing.T) {
		ts := newTestServer(t, openRegistration(nil))
		a := ts.mustRegister(t, meta)
		id, ratA := a.str("client_id"), a.str("registration_access_token")
		b := ts.mustRegister(t, meta) // party B, byte-identical metadata
		if b.str("client_id") != id {
			t.Fatalf("identical public registrations were not de-duplicated: %s / %s", a.body, b.body)
		}
		if b.str("registration_access_token") != "" {
			t.Fatalf("the second party got a registration access token: %s", b.body)
		}
		before := ts.snapshot(t)
		// Every way to change the shared client is refused, the first
		// registrant's token included.
		for _, tt := range []struct {
			name string
			r    regResp
		}{
			{"PUT without a token", put(ts, id, attackerMeta, "")},
			{"PUT with a guessed token", put(ts, id, attackerMeta, "guess")},
			{"PUT with the first registrant's token", put(ts, id, attackerMeta, ratA)},
			{"DELETE with the first registrant's token", ts.call(t, http.MethodDelete, "/register/"+id, "", "", ratA)},
			{"GET with the first registrant's token", ts.call(t, http.MethodGet, "/register/"+id, "", "", ratA)},
		} {
			assertOAuthError(t, tt.r.status, tt.r.body, http.StatusUnauthorized, "invalid_token")
			if tt.r.status == http.StatusUnauthorized && !strings.Contains(tt.r.body, "registration access token") {
				t.Errorf("%s: description %s does not name the registration access token", tt.name, tt.r.body)
			}
		}
		assertUnchanged(t, ts, before)
		// A's user consents; B's link with its own redirect URI gets no code.
		br := newBrowser(t)
		consentTo(ts, br, id)
		before = ts.snapshot(t)
		p := br.get(attackerLink(ts, id).url(ts.URL))
		assertNoLocation(t, p)
		if p.status != http.StatusBadRequest || !strings.Contains(p.body, "is not registered for this client") {
			t.Errorf("the attacker's link = %d, want the error page naming the redirect URI", p.status)
		}
		assertUnchanged(t, ts, before)
	})

	t.Run("identical registration while an update is in flight", func(t *testing.T) {
		// A reads its client and is about to update it when B's identical
		// registration shares it: the update must not go through.
		ts := newTestServer(t, openRegistration(nil))
		a := ts.mustRegister(t, meta)
		id, ratA := a.str("client_id"), a.str("registration_access_token")
		read, err := ts.Store.GetClient(t.Context(), id)
		must(t, err)
		ts.mustRegister(t, meta)
		before := ts.snapshot(t)
		req := httptest.NewRequest(http.MethodPut, "/register/"+id, strings.NewReader(`{"client_id":"`+id+`",`+strings.TrimPrefix(attackerMeta, "{")))
		req.Header.Set("Content-Type", "application/json")
		err = ts.updateRegistration(httptest.NewRecorder(), req, read, ratA)
		if oe := oauth.As(err); err == nil || oe.Code != oauth.InvalidToken || oe.HTTPStatus() != http.StatusUnauthorized {
			t.Errorf("update of a client shared meanwhile = %v, want 401 invalid_token", err)
		}
		err = ts.deleteRegistration(httptest.NewRecorder(), httptest.NewRequest(http.MethodDelete, "/register/"+id, nil), read, ratA)
		if oe := oauth.As(err); err == nil || oe.Code != oauth.InvalidToken || oe.HTTPStatus() != http.StatusUnauthorized {
			t.Errorf("delete of a client shared meanwhile = %v, want 401 invalid_token", err)
		}
		assertUnchanged(t, ts, before)
	})

	t.Run("attacker registers first and changes the client", func(t *testing.T) {
		ts := newTestServer(t, openRegistration(nil))
		b := ts.mustRegister(t, meta) // B front-runs with A's public metadata
		idB, ratB := b.str("client_id"), b.str("registration_access_token")
		if u := put(ts, idB, attackerMeta, ratB); u.status != http.StatusOK {
			t.Fatalf("B's update of its own client = %d %s", u.status, u.body)
		}
		a := ts.mustRegister(t, meta)
		if a.str("client_id") == idB {
			t.Fatal("A was handed the client B changed")
		}
		br := newBrowser(t)
		consentTo(ts, br, a.str("client_id"))
		before := ts.snapshot(t)
		assertNoLocation(t, br.get(attackerLink(ts, a.str("client_id")).url(ts.URL)))
		assertUnchanged(t, ts, before)
	})

	t.Run("a consented client's redirect change asks again", func(t *testing.T) {
		ts := newTestServer(t, openRegistration(nil))
		a := ts.mustRegister(t, meta)
		id, rat := a.str("client_id"), a.str("registration_access_token")
		br := newBrowser(t)
		consentTo(ts, br, id)
		if u := put(ts, id, attackerMeta, rat); u.status != http.StatusOK {
			t.Fatalf("update = %d %s", u.status, u.body)
		}
		if _, err := ts.Store.GetConsent(t.Context(), ts.userID, id, testResource); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("GetConsent after a redirect change = %v, want ErrNotFound", err)
		}
		// The signed-in user is asked again, for the new redirect URI.
		p := br.get(attackerLink(ts, id).url(ts.URL))
		if p.status != http.StatusOK || !strings.Contains(p.body, `id="consent-form"`) {
			t.Errorf("authorize after the change = %d, want the consent page", p.status)
		}
	})

	t.Run("client ids cannot be computed offline", func(t *testing.T) {
		secret := make([]byte, 32)
		other := make([]byte, 32)
		other[0] = 1
		ts1 := newTestServer(t, openRegistration(nil))
		ts1.dedupKey = mustDedupKey(t, ts1, secret)
		ts2 := newTestServer(t, openRegistration(nil))
		ts2.dedupKey = mustDedupKey(t, ts2, other)
		md := mustParse(t, meta)
		canon := md.JSON()
		unkeyed := sha256.Sum256([]byte("gatehouse/dcr/v1\x00" + ts1.URL + "\x000\x00" + canon))
		id := ts1.slotID(canon, 0)
		ts2.opts.Issuer = ts1.opts.Issuer // the same server but for its secret
		for _, guess := range []string{"dcr_" + base64.RawURLEncoding.EncodeToString(unkeyed[:16]), ts2.slotID(canon, 0)} {
			if guess == id {
				t.Errorf("client id %s is computable without the server's secret", id)
			}
		}
		// The same secret (every replica's) gives the same id.
		ts2.dedupKey = mustDedupKey(t, ts2, secret)
		if ts2.slotID(canon, 0) != id {
			t.Error("two servers with one secret derive different ids: de-duplication would not work across replicas")
		}
	})
}

// mustDedupKey builds a server for secret the way New does and returns
// its dedup key.
func mustDedupKey(t *testing.T, ts *testServer, secret []byte) []byte {
	t.Helper()
	opts := ts.opts
	opts.Secret = secret
	s, err := New(opts)
	must(t, err)
	return s.dedupKey
}

// mustParse parses registration metadata.
func mustParse(t *testing.T, body string) *clientreg.Metadata {
	t.Helper()
	md, err := clientreg.Parse([]byte(body), clientreg.Options{Kind: clientreg.Register})
	must(t, err)
	return md
}

// TestRegistrationUpdateAtomic (issue 20 F3): an RFC 7592 update is
// conditional on the client being as it was read. Two concurrent updates
// give one success and one 409, never a 500 or a lost update; a client
// deleted with 204 never comes back.
func TestRegistrationUpdateAtomic(t *testing.T) {
	ts := newTestServer(t, openRegistration(nil))
	r := ts.mustRegister(t, sdkMetadata)
	id, rat := r.str("client_id"), r.str("registration_access_token")
	body := func(name string) string {
		return `{"client_id":"` + id + `","client_name":"` + name + `","redirect_uris":["http://127.0.0.1/callback"],"token_endpoint_auth_method":"none","grant_types":["authorization_code","refresh_token"]}`
	}
	const n = 8
	var wg sync.WaitGroup
	statuses := make(chan int, n)
	for i := range n {
		wg.Go(func() {
			statuses <- ts.call(t, http.MethodPut, "/register/"+id, "application/json", body(fmt.Sprintf("Name %d", i)), rat).status
		})
	}
	wg.Wait()
	close(statuses)
	counts := map[int]int{}
	for s := range statuses {
		counts[s]++
	}
	if counts[http.StatusOK] < 1 || counts[http.StatusOK]+counts[http.StatusConflict] != n {
		t.Errorf("concurrent updates: statuses %v, want at least one 200 and the rest 409", counts)
	}
	// The stored name is one that an answered 200 wrote: read it back.
	g := ts.call(t, http.MethodGet, "/register/"+id, "", "", rat)
	if g.status != http.StatusOK || !strings.HasPrefix(g.str("client_name"), "Name ") {
		t.Errorf("after concurrent updates GET = %d %s", g.status, g.body)
	}
	// An update decided on a read that another update overtook is a
	// conflict, not a lost update (the interleaving, made deterministic).
	stale, err := ts.Store.GetClient(t.Context(), id)
	must(t, err)
	if u := ts.call(t, http.MethodPut, "/register/"+id, "application/json", body("Overtaking"), rat); u.status != http.StatusOK {
		t.Fatalf("PUT = %d %s", u.status, u.body)
	}
	req := httptest.NewRequest(http.MethodPut, "/register/"+id, strings.NewReader(body("Stale")))
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	err = ts.updateRegistration(rec, req, stale, rat)
	if oe := oauth.As(err); err == nil || oe.HTTPStatus() != http.StatusConflict || !strings.Contains(oe.Description, "changed by another request") {
		t.Errorf("update on a stale read = %v, want 409 naming the conflict", err)
	}
	if c, _ := ts.Store.GetClient(t.Context(), id); c.Name != "Overtaking" {
		t.Errorf("after a refused stale update the name is %q, want Overtaking", c.Name)
	}

	// DELETE, then an update with the same token: 401, and the client
	// stays deleted.
	if d := ts.call(t, http.MethodDelete, "/register/"+id, "", "", rat); d.status != http.StatusNoContent {
		t.Fatalf("DELETE = %d %s", d.status, d.body)
	}
	u := ts.call(t, http.MethodPut, "/register/"+id, "application/json", body("Back"), rat)
	assertOAuthError(t, u.status, u.body, http.StatusUnauthorized, "invalid_token")
	if _, err := ts.Store.GetClient(t.Context(), id); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("GetClient after DELETE and PUT = %v, want ErrNotFound", err)
	}
}

// TestAdversarialAuthorizeStoresNothing (issue 11 F4): an anonymous
// caller's /authorize requests store nothing (the pending request travels
// sealed in the form), state and nonce are capped, a sealed request
// cannot be forged, outlive its lifetime or be completed twice, and
// failed logins past the per-IP limit make no counter row per account
// name.
func TestAdversarialAuthorizeStoresNothing(t *testing.T) {
	ts := newTestServer(t, nil)
	big := strings.Repeat("s", maxStateBytes)

	before := ts.snapshot(t)
	for i := range 50 {
		v := authValues(ts, defaultAuth())
		v.Set("state", big)
		v.Set("nonce", fmt.Sprintf("%0*d", maxStateBytes, i))
		p := newBrowser(t).get(ts.URL + "/authorize?" + v.Encode())
		if p.status != http.StatusOK || !strings.Contains(p.body, `id="login-form"`) {
			t.Fatalf("request %d: status %d, want the login page", i, p.status)
		}
	}
	assertUnchanged(t, ts, before)

	for _, param := range []string{"state", "nonce"} {
		v := authValues(ts, defaultAuth())
		v.Set(param, big+"x")
		p := newBrowser(t).get(ts.URL + "/authorize?" + v.Encode())
		assertNoLocation(t, p)
		if p.status != http.StatusBadRequest || !strings.Contains(p.body, param+" is 1025 bytes long; at most 1024 are accepted") {
			t.Errorf("%s of 1025 bytes: status %d, want a 400 page naming the limit", param, p.status)
		}
	}
	assertUnchanged(t, ts, before)

	// A forged, tampered, foreign or expired sealed request is a page.
	b := newBrowser(t)
	login := b.get(defaultAuth().url(ts.URL))
	action, fields := login.form(t, "login-form")
	sealed := fields.Get("request")
	foreign := newTestServer(t, nil)
	foreignSealed, err := foreign.sealPending(pending{ID: "x", ClientID: publicClient, ExpiresAt: ts.Clock.Now().Add(time.Hour)})
	must(t, err)
	tampered := []byte(sealed)
	tampered[len(tampered)/2] ^= 1
	for name, v := range map[string]string{"tampered": string(tampered), "sealed by another server": foreignSealed, "forged": "not-sealed"} {
		f := url.Values{}
		for k, vs := range fields {
			f[k] = vs
		}
		f.Set("request", v)
		f.Set("username", testUser)
		f.Set("password", testPassword)
		p := b.post(ts.origin()+action, f)
		assertNoLocation(t, p)
		if p.status != http.StatusBadRequest || !strings.Contains(p.body, "expired or was already completed") {
			t.Errorf("%s request: status %d, want the 400 page", name, p.status)
		}
	}

	// Completed once: the consent form sent again (twice at once) gets no
	// second code.
	consent := ts.login(t, b, login, testUser, testPassword)
	caction, cfields := consent.form(t, "consent-form")
	cfields.Set("decision", "allow")
	codes := func() int {
		t.Helper()
		var n int
		db, err := sql.Open("sqlite", ts.dbPath+"?mode=ro")
		must(t, err)
		defer db.Close()
		must(t, db.QueryRow("SELECT count(*) FROM auth_codes").Scan(&n))
		return n
	}
	n0 := codes()
	var wg sync.WaitGroup
	statuses := make(chan int, 4)
	for range 4 {
		wg.Go(func() { statuses <- b.post(ts.origin()+caction, cfields).status })
	}
	wg.Wait()
	close(statuses)
	var redirects int
	for s := range statuses {
		if s == http.StatusSeeOther || s == http.StatusFound {
			redirects++
		}
	}
	if redirects != 1 || codes() != n0+1 {
		t.Errorf("one consent form sent 4 times: %d redirects and %d codes, want 1 and 1", redirects, codes()-n0)
	}

	// Expired: the login form after the request's lifetime.
	eb := newBrowser(t)
	p := eb.get(defaultAuth().url(ts.URL))
	ts.Clock.Advance(16 * time.Minute)
	if p = ts.login(t, eb, p, testUser, testPassword); p.status != http.StatusBadRequest || !strings.Contains(p.body, "expired or was already completed") {
		t.Errorf("expired request: status %d, want the 400 page", p.status)
	}
}

// TestAdversarialLoginThrottleRows (issue 11 F4): past the per-IP limit,
// failed logins under made-up account names add no counter rows.
func TestAdversarialLoginThrottleRows(t *testing.T) {
	ts := newTestServer(t, nil)
	b := newBrowser(t)
	p := b.get(defaultAuth().url(ts.URL))
	for i := range 25 {
		if r := ts.login(t, b, p, fmt.Sprintf("nobody-%d", i), "wrong"); r.status != http.StatusUnauthorized && r.status != http.StatusTooManyRequests {
			t.Fatalf("failed login %d: status %d", i, r.status)
		}
	}
	db, err := sql.Open("sqlite", ts.dbPath+"?mode=ro")
	must(t, err)
	defer db.Close()
	var n int
	must(t, db.QueryRow("SELECT count(*) FROM throttle WHERE throttle_key LIKE 'login:user:%'").Scan(&n))
	if limit := 4 * 5; n > limit {
		t.Errorf("25 failed logins from one IP left %d account counters, want at most %d (the per-IP limit)", n, limit)
	}
}

// TestAdversarialHeadAuthorize (issue 11 F8): HEAD /authorize is refused
// and issues no code, even for a signed-in user whose consent would let a
// GET answer with one at once.
func TestAdversarialHeadAuthorize(t *testing.T) {
	ts := newTestServer(t, nil)
	b := newBrowser(t)
	ts.authorize(t, b, defaultAuth()) // signs in and consents
	before := ts.snapshot(t)
	req, err := http.NewRequest(http.MethodHead, defaultAuth().url(ts.URL), nil)
	must(t, err)
	p := b.do(req)
	assertNoLocation(t, p)
	if p.status != http.StatusMethodNotAllowed || p.header.Get("Allow") != "GET, POST" {
		t.Errorf("HEAD /authorize = %d Allow %q, want 405 with Allow: GET, POST", p.status, p.header.Get("Allow"))
	}
	assertUnchanged(t, ts, before)
}

// TestAdversarialPasswordChangeRevokes (issue 20 F2): after a password
// change (what gatehouse user passwd and user revoke do: storage.ResetUser)
// nothing issued before it works: the thief's browser session no longer
// gets codes silently, their refresh token is refused, their access token
// introspects inactive, and a sign-in that raced the change gets a session
// that is void. Disabling the user does the same and blocks sign-in.
func TestAdversarialPasswordChangeRevokes(t *testing.T) {
	ts := newTestServer(t, nil)
	owner := advTokens(t, ts, defaultAuth()) // the user's own session and tokens
	thief := newBrowser(t)
	loc := ts.authorize(t, thief, defaultAuth())
	code := loc.Query().Get("code")
	if code == "" {
		t.Fatalf("no code: %s", loc)
	}
	s, _, body := ts.post(t, "/token", exchange(code), "", "")
	if s != http.StatusOK {
		t.Fatalf("code exchange = %d %s", s, body)
	}
	var stolen tokenResponse
	must(t, json.Unmarshal([]byte(body), &stolen))
	// A sign-in racing the change: the password is checked (the user, and
	// so the epoch, read) before the change, the session written after it.
	u, err := ts.Store.GetUserByName(t.Context(), testUser)
	must(t, err)

	_, err = ts.Store.ResetUser(t.Context(), ts.userID, ts.Clock.Now(), func(u storage.User) (storage.User, error) {
		u.PasswordHash = "$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHRzYWx0c2FsdA$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g"
		return u, nil
	})
	must(t, err)

	// The thief's browser is asked to sign in again: no code.
	p := thief.get(defaultAuth().url(ts.URL))
	assertNoLocation(t, p)
	if p.status != http.StatusOK || !strings.Contains(p.body, `id="login-form"`) {
		t.Errorf("the thief's session after the change: status %d, want the login page", p.status)
	}
	// The raced session is void too.
	racer := httptest.NewRecorder()
	raced, err := ts.startSession(racer, httptest.NewRequest(http.MethodPost, "/login", nil), u)
	must(t, err)
	ck := racer.Result().Cookies()[0]
	req := httptest.NewRequest(http.MethodGet, "/authorize", nil)
	req.AddCookie(ck)
	if sess, _ := ts.currentSession(req); sess != nil || raced == nil {
		t.Error("a session started with the old password is valid after the change")
	}
	s, _, body = ts.post(t, "/token", refreshForm(stolen.RefreshToken), "", "")
	assertOAuthError(t, s, body, http.StatusBadRequest, "invalid_grant")
	if ts.introspect(t, stolen.AccessToken) {
		t.Error("an access token issued before the change introspects active")
	}
	if ts.introspect(t, owner.AccessToken) {
		t.Error("an access token of the user's other session introspects active")
	}

	// Disabled: sessions end, the right password is refused with a page
	// that says so, and nothing is issued.
	ts2 := newTestServer(t, nil)
	b := newBrowser(t)
	ts2.authorize(t, b, defaultAuth())
	_, err = ts2.Store.ResetUser(t.Context(), ts2.userID, ts2.Clock.Now(), func(u storage.User) (storage.User, error) {
		u.DisabledAt = ts2.Clock.Now()
		return u, nil
	})
	must(t, err)
	p = b.get(defaultAuth().url(ts2.URL))
	if !strings.Contains(p.body, `id="login-form"`) {
		t.Fatalf("a disabled user's session still works: status %d", p.status)
	}
	before := ts2.snapshot(t)
	p = ts2.login(t, b, p, testUser, testPassword)
	assertNoLocation(t, p)
	if p.status != http.StatusForbidden || !strings.Contains(p.body, "This account is disabled") {
		t.Errorf("sign-in of a disabled user = %d, want 403 saying the account is disabled", p.status)
	}
	assertUnchanged(t, ts2, before)
}

// TestAdversarialDeletedClientTokens (issue 20 F4): a machine token of a
// client that was deleted, re-created, or reset (an RFC 7592 update that
// revokes what it held) introspects inactive.
func TestAdversarialDeletedClientTokens(t *testing.T) {
	ts := newTestServer(t, openRegistration(allowMachineClients))
	cc := func(id, secret string) string {
		t.Helper()
		s, _, body := ts.post(t, "/token", url.Values{"grant_type": {"client_credentials"}, "resource": {testResource}}, id, secret)
		if s != http.StatusOK {
			t.Fatalf("client_credentials for %s = %d %s", id, s, body)
		}
		var tr tokenResponse
		must(t, json.Unmarshal([]byte(body), &tr))
		return tr.AccessToken
	}
	// An operator client, deleted and then created again with the same id.
	tok := cc(confClient, confSecret)
	if !ts.introspect(t, tok) {
		t.Fatal("a fresh machine token introspects inactive")
	}
	old, err := ts.Store.GetClient(t.Context(), confClient)
	must(t, err)
	must(t, ts.Store.DeleteClient(t.Context(), confClient))
	if ts.introspect(t, tok) {
		t.Error("a deleted client's machine token introspects active")
	}
	ts.Clock.Advance(time.Second)
	old.CreatedAt = ts.Clock.Now()
	must(t, ts.Store.CreateClient(t.Context(), old))
	if ts.introspect(t, tok) {
		t.Error("a machine token of a client since re-created introspects active")
	}
	if fresh := cc(confClient, confSecret); !ts.introspect(t, fresh) {
		t.Error("the re-created client's own token introspects inactive")
	}

	// A self-registered machine client: RFC 7592 update that changes its
	// keys/authentication (reset), then DELETE.
	r := ts.mustRegister(t, `{"client_name":"Worker","grant_types":["client_credentials"],"token_endpoint_auth_method":"client_secret_basic"}`)
	id, secret, rat := r.str("client_id"), r.str("client_secret"), r.str("registration_access_token")
	tok = cc(id, secret)
	ts.Clock.Advance(time.Second)
	u := ts.call(t, http.MethodPut, "/register/"+id, "application/json", `{"client_id":"`+id+`","client_secret":"`+secret+`","client_name":"Worker","grant_types":["client_credentials"],"token_endpoint_auth_method":"client_secret_post"}`, rat)
	if u.status != http.StatusOK {
		t.Fatalf("update = %d %s", u.status, u.body)
	}
	if ts.introspect(t, tok) {
		t.Error("a machine token issued before a reset introspects active")
	}
	tok = cc2(t, ts, id, secret)
	// A reset in the same second as the token (iat has whole seconds):
	// the token is void too.
	ts.Clock.Advance(300 * time.Millisecond)
	_, err = ts.Store.ResetClient(t.Context(), id, ts.Clock.Now(), func(c storage.Client) (storage.Client, error) { return c, nil })
	must(t, err)
	if ts.introspect(t, tok) {
		t.Error("a machine token issued in the second of a reset, before it, introspects active")
	}
	ts.Clock.Advance(time.Second)
	if tok = cc2(t, ts, id, secret); !ts.introspect(t, tok) {
		t.Fatal("a machine token issued a second after the reset introspects inactive")
	}
	if d := ts.call(t, http.MethodDelete, "/register/"+id, "", "", rat); d.status != http.StatusNoContent {
		t.Fatalf("DELETE = %d %s", d.status, d.body)
	}
	if ts.introspect(t, tok) {
		t.Error("a machine token of a client deleted through RFC 7592 introspects active")
	}
}

// cc2 is client_credentials with client_secret_post.
func cc2(t *testing.T, ts *testServer, id, secret string) string {
	t.Helper()
	s, _, body := ts.post(t, "/token", url.Values{"grant_type": {"client_credentials"}, "resource": {testResource}, "client_id": {id}, "client_secret": {secret}}, "", "")
	if s != http.StatusOK {
		t.Fatalf("client_credentials (post) for %s = %d %s", id, s, body)
	}
	var tr tokenResponse
	must(t, json.Unmarshal([]byte(body), &tr))
	return tr.AccessToken
}

// TestAdversarialCIMDBlock (issue 20 F9): an operator's block of a
// metadata-document URL or host holds: the document is not fetched again,
// its client does not come back, its users get a page saying so, and its
// tokens requests are refused. Lifting the block lets it back in.
func TestAdversarialCIMDBlock(t *testing.T) {
	d := newDocServer(t)
	ts := newTestServer(t, cimdOptions(d, nil))
	d.set("/app", docResponse{body: d.doc("/app", nil)})
	d.set("/other", docResponse{body: d.doc("/other", nil)})
	id := d.URL + "/app"
	// The client exists and a user has used it.
	if loc := ts.authorize(t, newBrowser(t), cimdAuth(id)); loc.Query().Get("code") == "" {
		t.Fatalf("no code before the block: %s", loc)
	}
	block := func(b storage.ClientBlock) {
		t.Helper()
		b.CreatedAt = ts.Clock.Now()
		must(t, ts.Store.PutClientBlock(t.Context(), b))
		if !b.Host {
			must(t, ts.Store.DeleteClient(t.Context(), b.Target)) // what `gatehouse client block` does
		}
	}
	refused := func(name, clientID string) {
		t.Helper()
		before, fetches := ts.snapshot(t), d.total.Load()
		p := newBrowser(t).get(cimdAuth(clientID).url(ts.URL))
		assertNoLocation(t, p)
		if p.status != http.StatusBadRequest || !strings.Contains(p.body, "blocked this application") {
			t.Errorf("%s: /authorize = %d, want the 400 page saying the application is blocked", name, p.status)
		}
		if n := d.total.Load(); n != fetches {
			t.Errorf("%s: the blocked document was fetched %d more times", name, n-fetches)
		}
		assertUnchanged(t, ts, before)
		if _, err := ts.Store.GetClient(t.Context(), clientID); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("%s: the blocked client is stored: %v", name, err)
		}
	}
	block(storage.ClientBlock{Target: id, Reason: "abuse"})
	ts.Clock.Advance(time.Hour) // past any document cache
	refused("URL block", id)
	// Its token requests are refused too.
	s, _, body := ts.post(t, "/token", url.Values{"grant_type": {"authorization_code"}, "code": {"x"}, "client_id": {id},
		"redirect_uri": {"http://localhost:49152/callback"}, "code_verifier": {testVerifier}}, "", "")
	assertOAuthError(t, s, body, http.StatusUnauthorized, "invalid_client")

	// A host block covers every document on it.
	block(storage.ClientBlock{Target: clientreg.DocumentHost(id), Host: true})
	refused("host block", d.URL+"/other")

	// Lifted, the application works again.
	must(t, ts.Store.DeleteClientBlock(t.Context(), id))
	must(t, ts.Store.DeleteClientBlock(t.Context(), clientreg.DocumentHost(id)))
	if loc := ts.authorize(t, newBrowser(t), cimdAuth(id)); loc.Query().Get("code") == "" {
		t.Errorf("no code after the block was lifted: %s", loc)
	}
}

// racingStore runs hook once, just before the next write of the kind it
// wraps, as a reset made on another replica or the CLI lands in the
// middle of a request.
type racingStore struct {
	storage.Store
	mu          sync.Mutex
	beforeGrant func()
	beforePut   func()
}

func (s *racingStore) take(f *func()) func() {
	s.mu.Lock()
	defer s.mu.Unlock()
	g := *f
	*f = nil
	return g
}

func (s *racingStore) CreateGrant(ctx context.Context, g storage.Grant) error {
	if f := s.take(&s.beforeGrant); f != nil {
		f()
	}
	return s.Store.CreateGrant(ctx, g)
}

func (s *racingStore) PutConsent(ctx context.Context, c storage.Consent) error {
	if f := s.take(&s.beforePut); f != nil {
		f()
	}
	return s.Store.PutConsent(ctx, c)
}

// TestAdversarialRevocationRaces (issue 20 F2, found by review): a
// password change or disable that lands while a request is between its
// session check and its writes must still win. The grant (and consent)
// the request writes after the reset belong to the old epoch: the code is
// refused at /token, nothing refreshes, and the consent does not count.
func TestAdversarialRevocationRaces(t *testing.T) {
	reset := func(ts *testServer, disable bool) func() {
		return func() {
			_, err := ts.Store.ResetUser(context.Background(), ts.userID, ts.Clock.Now(), func(u storage.User) (storage.User, error) {
				if disable {
					u.DisabledAt = ts.Clock.Now()
				} else {
					u.PasswordHash = "changed"
				}
				return u, nil
			})
			must(t, err)
		}
	}
	for _, disable := range []bool{false, true} {
		t.Run(fmt.Sprintf("silent authorize, disable=%v", disable), func(t *testing.T) {
			rs := &racingStore{}
			ts := newTestServer(t, func(o *Options) { rs.Store = o.Store; o.Store = rs })
			thief := newBrowser(t)
			ts.authorize(t, thief, defaultAuth()) // a session and a remembered consent
			rs.beforeGrant = reset(ts, disable)
			code := location(t, thief.get(defaultAuth().url(ts.URL))).Query().Get("code")
			if rs.beforeGrant != nil || code == "" {
				t.Fatalf("the reset did not land between the checks and the writes (code %q)", code)
			}
			s, _, body := ts.post(t, "/token", exchange(code), "", "")
			assertOAuthError(t, s, body, http.StatusBadRequest, "invalid_grant")
			assertDescription(t, body, "the user's access was revoked")
		})
	}
	t.Run("consent", func(t *testing.T) {
		rs := &racingStore{}
		ts := newTestServer(t, func(o *Options) { rs.Store = o.Store; o.Store = rs })
		b := newBrowser(t)
		p := ts.login(t, b, b.get(defaultAuth().url(ts.URL)), testUser, testPassword)
		rs.beforePut = reset(ts, false)
		code := location(t, ts.consent(t, b, p, "allow")).Query().Get("code")
		s, _, body := ts.post(t, "/token", exchange(code), "", "")
		assertOAuthError(t, s, body, http.StatusBadRequest, "invalid_grant")
		// The consent written after the reset is of the old epoch: a new
		// sign-in is asked to consent again.
		u, err := ts.Store.GetUser(t.Context(), ts.userID)
		must(t, err)
		if ok, err := ts.hasConsent(t.Context(), &storage.Session{UserID: ts.userID, UserEpoch: u.Epoch}, pending{ClientID: publicClient, Resource: testResource, Scopes: []string{"notes:read"}}); err != nil || ok {
			t.Errorf("the consent written after the reset counts in the new epoch: %v, %v", ok, err)
		}
	})
}

// TestAdversarialConsentFormBinding (review): the consent form's request
// is answered only by the form it was sealed into and the session it was
// shown to: the login form's request posted to /consent does not skip the
// sign-in prompt=login asked for, another signed-in browser cannot answer
// it, and an answer after the client dropped the redirect URI issues
// nothing.
func TestAdversarialConsentFormBinding(t *testing.T) {
	ts := newTestServer(t, openRegistration(nil))
	b := newBrowser(t)
	ts.authorize(t, b, defaultAuth()) // signed in, consented
	ts.Clock.Advance(time.Hour)       // so that prompt=login asks again
	a := defaultAuth()
	a.prompt = "login"
	p := b.get(a.url(ts.URL))
	_, fields := p.form(t, "login-form")
	fields.Set("decision", "allow")
	before := ts.snapshot(t)
	got := b.post(ts.URL+"/consent", fields)
	assertNoLocation(t, got)
	if got.status != http.StatusBadRequest {
		t.Errorf("the login form's request posted to /consent = %d, want the 400 page", got.status)
	}
	assertUnchanged(t, ts, before)

	// A consent page shown to one browser, answered by another signed-in
	// browser with its own CSRF token.
	mine, other := newBrowser(t), newBrowser(t)
	ts.authorize(t, other, defaultAuth())
	c := defaultAuth()
	c.prompt = "consent"
	page := ts.login(t, mine, mine.get(c.url(ts.URL)), testUser, testPassword)
	_, mineFields := page.form(t, "consent-form")
	otherPage := other.get(c.url(ts.URL))
	_, otherFields := otherPage.form(t, "consent-form")
	otherFields.Set("request", mineFields.Get("request"))
	otherFields.Set("decision", "allow")
	before = ts.snapshot(t)
	got = other.post(ts.URL+"/consent", otherFields)
	assertNoLocation(t, got)
	if got.status != http.StatusBadRequest || !strings.Contains(got.body, "shown to another sign-in") {
		t.Errorf("a consent form answered from another session = %d, want the 400 page", got.status)
	}
	assertUnchanged(t, ts, before)

	// The client's owner drops the redirect URI while the page is open.
	r := ts.mustRegister(t, `{"client_name":"App","redirect_uris":["https://app.example/cb","https://app.example/cb2"],"token_endpoint_auth_method":"none","application_type":"web"}`)
	id, rat := r.str("client_id"), r.str("registration_access_token")
	d := defaultAuth()
	d.clientID, d.redirectURI = id, "https://app.example/cb2"
	br := newBrowser(t)
	cp := ts.login(t, br, br.get(d.url(ts.URL)), testUser, testPassword)
	if u := ts.call(t, http.MethodPut, "/register/"+id, "application/json", `{"client_id":"`+id+`","client_name":"App","redirect_uris":["https://app.example/cb"],"token_endpoint_auth_method":"none","application_type":"web"}`, rat); u.status != http.StatusOK {
		t.Fatalf("update = %d %s", u.status, u.body)
	}
	got = ts.consent(t, br, cp, "allow")
	assertNoLocation(t, got)
	if got.status != http.StatusBadRequest || !strings.Contains(got.body, msgClientChanged) {
		t.Errorf("consent after the redirect URI was dropped = %d, want the 400 page", got.status)
	}
}

// TestAdversarialIPv6Budget (review): the per-address budgets count an
// IPv6 /64 as one address, since one host can use any address in it: ten
// registrations from one /64 against a limit of two are limited; another
// /64 has its own budget.
func TestAdversarialIPv6Budget(t *testing.T) {
	ts := newTestServer(t, func(o *Options) {
		o.Registration = Registration{Mode: RegistrationOpen, RateLimit: 2}
		o.TrustProxyHeaders = true
	})
	register := func(i int, addr string) int {
		req, err := http.NewRequest(http.MethodPost, ts.URL+"/register", strings.NewReader(fmt.Sprintf(`{"client_name":"c%d","redirect_uris":["http://127.0.0.1/cb"],"token_endpoint_auth_method":"none"}`, i)))
		must(t, err)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Forwarded-For", addr)
		resp, err := http.DefaultClient.Do(req)
		must(t, err)
		resp.Body.Close()
		return resp.StatusCode
	}
	created := 0
	for i := range 10 {
		if register(i, fmt.Sprintf("2001:db8:1:2::%x", i+1)) == http.StatusCreated {
			created++
		}
	}
	if created != 2 {
		t.Errorf("%d of 10 registrations from one /64 passed a limit of 2, want 2", created)
	}
	if s := register(10, "2001:db8:1:3::1"); s != http.StatusCreated {
		t.Errorf("a registration from another /64 = %d, want 201", s)
	}
}
