package as

// Tests of the findings of the outside review (issue 11), one named test
// per finding, listed in the index at the top of adversarial_test.go. Each
// asserts the refusal (status, OAuth error, description) and, where a
// refusal must change nothing, that storage did not change.

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

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
		if _, err := ts.lookupClient(t.Context(), id); err != nil {
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
