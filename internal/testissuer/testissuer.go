// Package testissuer is an OAuth authorization server reduced to what a
// resource server's token verifier reads: RFC 8414 metadata naming a JWKS of
// one ES256 key, and RFC 9068 access tokens signed with that key. It is for
// the tests of the packages that verify tokens without a whole server (the
// gateway, the demo, the CLI's gateway command); the rs package keeps its
// own, which also rotates and withdraws keys.
package testissuer

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// KeyID is the kid of the one signing key.
const KeyID = "k1"

// ClientID is the client_id claim of every token Token mints.
const ClientID = "test-client"

// Issuer is a running test issuer; URL is both its issuer identifier and
// the base of its metadata and JWKS.
type Issuer struct {
	URL    string
	srv    *httptest.Server
	signer jose.Signer
	jti    atomic.Int64
}

// New starts an issuer on 127.0.0.1, closed when t ends.
func New(t testing.TB) *Issuer {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	iss := &Issuer{}
	iss.signer, err = jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: key},
		(&jose.SignerOptions{}).WithType("at+jwt").WithHeader("kid", KeyID))
	if err != nil {
		t.Fatal(err)
	}
	jwks := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: KeyID, Algorithm: "ES256", Use: "sig"}}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/oauth-authorization-server", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]string{"issuer": iss.URL, "jwks_uri": iss.URL + "/jwks"})
	})
	mux.HandleFunc("GET /jwks", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(jwks)
	})
	iss.srv = httptest.NewServer(mux)
	t.Cleanup(iss.srv.Close)
	iss.URL = iss.srv.URL
	return iss
}

// Client returns an HTTP client for the issuer's metadata and JWKS.
func (iss *Issuer) Client() *http.Client { return iss.srv.Client() }

// Token returns an RFC 9068 access token for sub with scope at resource,
// valid for five minutes from now and with a jti of its own. mod, when not
// nil, changes the claims before they are signed (a test's wrong audience,
// an expired token, a missing claim).
func (iss *Issuer) Token(t testing.TB, resource, sub, scope string, mod func(claims map[string]any)) string {
	t.Helper()
	now := time.Now()
	claims := map[string]any{
		"iss": iss.URL, "sub": sub, "aud": resource, "client_id": ClientID, "scope": scope,
		"iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(5 * time.Minute).Unix(),
		"jti": fmt.Sprintf("%s-%d", sub, iss.jti.Add(1)),
	}
	if mod != nil {
		mod(claims)
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	jws, err := iss.signer.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := jws.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}
