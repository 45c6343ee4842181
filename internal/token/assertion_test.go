package token

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/google/go-cmp/cmp"
)

const (
	testTokenURL = "https://as.example.com/token"
	testIssuer   = "https://as.example.com"
	testClient   = "https://client.example.com/metadata.json"
)

// clientKeys are generated once: RSA generation is slow.
var clientKeys = sync.OnceValue(func() map[string]crypto.Signer {
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(err)
	}
	ec384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		panic(err)
	}
	rs, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	_, ed, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		panic(err)
	}
	other, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(err)
	}
	return map[string]crypto.Signer{"ec": ec, "ec384": ec384, "rsa": rs, "ed": ed, "other": other}
})

// clientJWKS is the client's published set: one key of each kind, plus an
// encryption key and a symmetric key that must never be used.
func clientJWKS(t *testing.T) []byte {
	t.Helper()
	keys := clientKeys()
	set := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{
		{Key: keys["ec"].Public(), KeyID: "ec", Use: "sig"},
		{Key: keys["ec384"].Public(), KeyID: "ec384"},
		{Key: keys["rsa"].Public(), KeyID: "rsa", Algorithm: "PS256"},
		{Key: keys["ed"].Public(), KeyID: "ed", Algorithm: "EdDSA"},
		{Key: keys["other"].Public(), KeyID: "enc", Use: "enc"},
		{Key: []byte("0123456789abcdef0123456789abcdef"), KeyID: "oct"},
	}}
	body := mustJSON(t, set)
	// An unknown key type must be skipped, not fail the whole set.
	body = []byte(strings.Replace(string(body), `"keys":[`, `"keys":[{"kty":"XYZ","kid":"future"},`, 1))
	return body
}

func assertionClaims(now time.Time) map[string]any {
	return map[string]any{
		"iss": testClient,
		"sub": testClient,
		"aud": testTokenURL,
		"jti": "jti-123",
		"iat": now.Unix(),
		"exp": now.Add(2 * time.Minute).Unix(),
	}
}

func assertionOpts(now time.Time) AssertionOptions {
	return AssertionOptions{
		ClientID:  testClient,
		Audiences: []string{testTokenURL, testIssuer},
		Now:       now,
	}
}

func TestVerifyClientAssertion(t *testing.T) {
	now := newClock().Now()
	keys := clientKeys()
	jwks := clientJWKS(t)
	sign := func(alg jose.SignatureAlgorithm, key string, kid string, claims map[string]any) string {
		h := map[jose.HeaderKey]any{}
		if kid != "" {
			h["kid"] = kid
		}
		return signJWS(t, alg, keys[key], h, mustJSON(t, claims))
	}
	with := func(mutate func(map[string]any)) map[string]any {
		c := assertionClaims(now)
		mutate(c)
		return c
	}

	t.Run("valid", func(t *testing.T) {
		tests := []struct {
			name      string
			assertion string
			opts      func(*AssertionOptions)
			wantKID   string
		}{
			{"ES256", sign(jose.ES256, "ec", "ec", assertionClaims(now)), nil, "ec"},
			{"ES384", sign(jose.ES384, "ec384", "ec384", assertionClaims(now)), nil, "ec384"},
			{"PS256", sign(jose.PS256, "rsa", "rsa", assertionClaims(now)), nil, "rsa"},
			{"EdDSA", sign(jose.EdDSA, "ed", "ed", assertionClaims(now)), nil, "ed"},
			{"no kid", sign(jose.ES256, "ec", "", assertionClaims(now)), nil, "ec"},
			{"aud is the issuer", sign(jose.ES256, "ec", "ec", with(func(c map[string]any) { c["aud"] = testIssuer })), nil, "ec"},
			{"aud array", sign(jose.ES256, "ec", "ec", with(func(c map[string]any) { c["aud"] = []string{"https://other", testTokenURL} })), nil, "ec"},
			{"fractional exp", sign(jose.ES256, "ec", "ec", with(func(c map[string]any) { c["exp"] = float64(now.Unix()) + 60.5 })), nil, "ec"},
			{"no iat", sign(jose.ES256, "ec", "ec", with(func(c map[string]any) { delete(c, "iat") })), nil, "ec"},
			{"expired within leeway", sign(jose.ES256, "ec", "ec", with(func(c map[string]any) { c["exp"] = now.Add(-10 * time.Second).Unix() })),
				func(o *AssertionOptions) { o.Leeway = 30 * time.Second }, "ec"},
			{"long lifetime allowed", sign(jose.ES256, "ec", "ec", with(func(c map[string]any) { c["exp"] = now.Add(time.Hour).Unix() })),
				func(o *AssertionOptions) { o.MaxLifetime = time.Hour }, "ec"},
		}
		for _, tt := range tests {
			opts := assertionOpts(now)
			if tt.opts != nil {
				tt.opts(&opts)
			}
			got, err := VerifyClientAssertion(tt.assertion, jwks, opts)
			if err != nil {
				t.Errorf("%s: VerifyClientAssertion() error = %v", tt.name, err)
				continue
			}
			if got.JTI != "jti-123" || got.KeyID != tt.wantKID || got.ExpiresAt.IsZero() {
				t.Errorf("%s: VerifyClientAssertion() = %+v, want jti-123, kid %s and an exp", tt.name, got, tt.wantKID)
			}
		}
	})

	t.Run("claims", func(t *testing.T) {
		got, err := VerifyClientAssertion(sign(jose.ES256, "ec", "ec", assertionClaims(now)), jwks, assertionOpts(now))
		if err != nil {
			t.Fatal(err)
		}
		want := AssertionClaims{JTI: "jti-123", ExpiresAt: now.Add(2 * time.Minute), IssuedAt: now, KeyID: "ec"}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("VerifyClientAssertion() mismatch (-want +got):\n%s", diff)
		}
	})

	t.Run("invalid", func(t *testing.T) {
		payload := mustJSON(t, assertionClaims(now))
		good := sign(jose.ES256, "ec", "ec", assertionClaims(now))
		parts := strings.Split(good, ".")
		tampered := b64(mustJSON(t, with(func(c map[string]any) { c["sub"] = "someone-else" })))
		ecPublicJSON := mustJSON(t, jose.JSONWebKey{Key: keys["ec"].Public(), KeyID: "ec"})

		tests := []struct {
			name      string
			assertion string
			opts      func(*AssertionOptions)
			want      string // in the error message
		}{
			{"empty", "", nil, "not a compact JWS"},
			{"garbage", "garbage", nil, "not a compact JWS"},
			{"too long", good + strings.Repeat("A", maxAssertionSize), nil, "longer than"},
			{"tampered payload", parts[0] + "." + tampered + "." + parts[2], nil, "signature does not verify"},
			{"alg none", unsignedJWS(t, map[string]any{"alg": "none", "kid": "ec"}, payload), nil, `"none" is not allowed`},
			{"HS256 keyed with the client's public JWK", hmacJWS(t, map[string]any{"alg": "HS256", "kid": "ec"}, payload, ecPublicJSON), nil, `"HS256" is not allowed`},
			{"HS256 keyed with the JWKS's symmetric key", hmacJWS(t, map[string]any{"alg": "HS256", "kid": "oct"}, payload, []byte("0123456789abcdef0123456789abcdef")), nil, `"HS256" is not allowed`},
			{"HS256 keyed with the whole JWKS", hmacJWS(t, map[string]any{"alg": "HS256"}, payload, jwks), nil, `"HS256" is not allowed`},
			{"unknown kid", sign(jose.ES256, "ec", "nope", assertionClaims(now)), nil, "no key in the client's JWKS matches"},
			{"key not in the JWKS", sign(jose.ES256, "other", "", assertionClaims(now)), nil, "signature does not verify"},
			{"attacker key with the client's kid", sign(jose.ES256, "other", "ec", assertionClaims(now)), nil, "signature does not verify"},
			{"encryption key", sign(jose.ES256, "other", "enc", assertionClaims(now)), nil, "no key in the client's JWKS matches"},
			{"alg differs from the key's alg", sign(jose.RS256, "rsa", "rsa", assertionClaims(now)), nil, "no key in the client's JWKS matches"},
			{"alg does not fit the curve", unsignedJWS(t, map[string]any{"alg": "ES256", "kid": "ec384"}, payload) + b64(make([]byte, 64)), nil, "no key in the client's JWKS matches"},
			{"wrong aud", sign(jose.ES256, "ec", "ec", with(func(c map[string]any) { c["aud"] = "https://other.example.com/token" })), nil, "aud does not name this server"},
			{"aud array without us", sign(jose.ES256, "ec", "ec", with(func(c map[string]any) { c["aud"] = []string{"https://a", "https://b"} })), nil, "aud does not name this server"},
			{"aud is a prefix", sign(jose.ES256, "ec", "ec", with(func(c map[string]any) { c["aud"] = testIssuer + "/" })), nil, "aud does not name this server"},
			{"missing aud", sign(jose.ES256, "ec", "ec", with(func(c map[string]any) { delete(c, "aud") })), nil, "missing aud"},
			{"aud is a number", sign(jose.ES256, "ec", "ec", with(func(c map[string]any) { c["aud"] = 5 })), nil, "aud is neither"},
			{"iss is not sub", sign(jose.ES256, "ec", "ec", with(func(c map[string]any) { c["sub"] = "user-1" })), nil, "sub is not the client_id"},
			{"iss is another client", sign(jose.ES256, "ec", "ec", with(func(c map[string]any) { c["iss"] = "other"; c["sub"] = "other" })), nil, "iss is not the client_id"},
			{"iss in upper case key", sign(jose.ES256, "ec", "ec", with(func(c map[string]any) { c["ISS"] = c["iss"]; delete(c, "iss") })), nil, "missing iss"},
			{"missing jti", sign(jose.ES256, "ec", "ec", with(func(c map[string]any) { delete(c, "jti") })), nil, "missing jti"},
			{"empty jti", sign(jose.ES256, "ec", "ec", with(func(c map[string]any) { c["jti"] = "" })), nil, "jti is empty"},
			{"jti not a string", sign(jose.ES256, "ec", "ec", with(func(c map[string]any) { c["jti"] = 7 })), nil, "jti is not a string"},
			{"expired", sign(jose.ES256, "ec", "ec", with(func(c map[string]any) { c["exp"] = now.Add(-time.Second).Unix() })), nil, "expired at"},
			{"exp now", sign(jose.ES256, "ec", "ec", with(func(c map[string]any) { c["exp"] = now.Unix() })), nil, "expired at"},
			{"missing exp", sign(jose.ES256, "ec", "ec", with(func(c map[string]any) { delete(c, "exp") })), nil, "missing exp"},
			{"exp as a string", sign(jose.ES256, "ec", "ec", with(func(c map[string]any) { c["exp"] = "1900000000" })), nil, "exp is not a NumericDate"},
			{"exp absurd", sign(jose.ES256, "ec", "ec", with(func(c map[string]any) { c["exp"] = 1e300 })), nil, "exp is not a NumericDate"},
			{"exp too far ahead", sign(jose.ES256, "ec", "ec", with(func(c map[string]any) { c["exp"] = now.Add(11 * time.Minute).Unix() })), nil, "is more than 10m0s ahead"},
			{"exp past MaxLifetime", sign(jose.ES256, "ec", "ec", assertionClaims(now)), func(o *AssertionOptions) { o.MaxLifetime = time.Minute }, "is more than 1m0s ahead"},
			{"nbf in the future", sign(jose.ES256, "ec", "ec", with(func(c map[string]any) { c["nbf"] = now.Add(time.Minute).Unix() })), nil, "not valid before"},
			{"iat in the future", sign(jose.ES256, "ec", "ec", with(func(c map[string]any) { c["iat"] = now.Add(time.Minute).Unix() })), nil, "issued in the future"},
			{"claims not an object", signJWS(t, jose.ES256, keys["ec"], map[jose.HeaderKey]any{"kid": "ec"}, []byte(`"x"`)), nil, "not a JSON object"},
			{"expired beyond leeway", sign(jose.ES256, "ec", "ec", with(func(c map[string]any) { c["exp"] = now.Add(-time.Minute).Unix() })),
				func(o *AssertionOptions) { o.Leeway = 30 * time.Second }, "expired at"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				opts := assertionOpts(now)
				if tt.opts != nil {
					tt.opts(&opts)
				}
				got, err := VerifyClientAssertion(tt.assertion, jwks, opts)
				if !errors.Is(err, ErrInvalidAssertion) || !strings.Contains(err.Error(), tt.want) {
					t.Fatalf("VerifyClientAssertion(%.40q...) = %+v, %v, want ErrInvalidAssertion saying %q", tt.assertion, got, err, tt.want)
				}
				// The error may be logged: it must not carry the assertion
				// or any of its parts.
				for _, part := range strings.Split(tt.assertion, ".") {
					if len(part) >= 8 && strings.Contains(err.Error(), part) {
						t.Errorf("error %q contains part of the assertion", err)
					}
				}
			})
		}
	})

	t.Run("options", func(t *testing.T) {
		good := sign(jose.ES256, "ec", "ec", assertionClaims(now))
		tests := []struct {
			name   string
			mutate func(*AssertionOptions)
		}{
			{"no client id", func(o *AssertionOptions) { o.ClientID = "" }},
			{"no audiences", func(o *AssertionOptions) { o.Audiences = nil }},
			{"no time", func(o *AssertionOptions) { o.Now = time.Time{} }},
			{"negative leeway", func(o *AssertionOptions) { o.Leeway = -1 }},
		}
		for _, tt := range tests {
			opts := assertionOpts(now)
			tt.mutate(&opts)
			if _, err := VerifyClientAssertion(good, jwks, opts); err == nil {
				t.Errorf("%s: VerifyClientAssertion() succeeded, want error", tt.name)
			}
		}
		for _, bad := range []string{"", "{", `{"keys":{}}`} {
			if _, err := VerifyClientAssertion(good, []byte(bad), assertionOpts(now)); err == nil {
				t.Errorf("VerifyClientAssertion(jwks %q) succeeded, want error", bad)
			}
		}
		if _, err := VerifyClientAssertion(good, []byte(`{"keys":[]}`), assertionOpts(now)); !errors.Is(err, ErrInvalidAssertion) {
			t.Errorf("VerifyClientAssertion(empty JWKS) error = %v, want ErrInvalidAssertion", err)
		}
	})
}

// TestAssertionJWKSWithPrivateKey: a client that (wrongly) published its
// private key still gets verified with the public half only.
func TestAssertionJWKSWithPrivateKey(t *testing.T) {
	now := newClock().Now()
	key := clientKeys()["ec"]
	jwks := mustJSON(t, jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: key, KeyID: "ec"}}})
	a := signJWS(t, jose.ES256, key, map[jose.HeaderKey]any{"kid": "ec"}, mustJSON(t, assertionClaims(now)))
	if _, err := VerifyClientAssertion(a, jwks, assertionOpts(now)); err != nil {
		t.Errorf("VerifyClientAssertion() error = %v", err)
	}
}

func TestAssertionTimeClaimJSON(t *testing.T) {
	tests := []struct {
		raw  string
		ok   bool
		want int64
	}{
		{`1700000000`, true, 1700000000},
		{`1700000000.9`, true, 1700000000},
		{`1.7e9`, true, 1700000000},
		{`"1700000000"`, false, 0},
		{`-1`, false, 0},
		{`null`, false, 0},
		{`true`, false, 0},
		{`1e300`, false, 0},
	}
	for _, tt := range tests {
		got, _, err := timeClaim(map[string]json.RawMessage{"exp": json.RawMessage(tt.raw)}, "exp")
		if (err == nil) != tt.ok || (tt.ok && got.Unix() != tt.want) {
			t.Errorf("timeClaim(%s) = %v, %v, want ok=%v %d", tt.raw, got, err, tt.ok, tt.want)
		}
	}
}
