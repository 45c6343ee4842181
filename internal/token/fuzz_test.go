package token

import (
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// FuzzVerify feeds arbitrary input to Keyring.Verify: it must not panic,
// and anything it accepts must carry the claims an access token needs.
func FuzzVerify(f *testing.F) {
	fx := newTestKeyring(f, ES256)
	good, err := fx.k.Sign(f.Context(), testClaims(fx.clock.Now()))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add("")
	f.Add("..")
	f.Add(strings.Replace(good, ".", "..", 1))
	f.Add(`{"payload":"","protected":"","signature":""}`)
	f.Fuzz(func(t *testing.T, s string) {
		c, err := fx.k.Verify(t.Context(), s)
		if err == nil && (c.JTI == "" || c.Issuer == "" || c.ExpiresAt.IsZero()) {
			t.Errorf("Verify(%q) accepted incomplete claims %+v", s, c)
		}
	})
}

// FuzzVerifyClientAssertion feeds arbitrary assertions: no panic, and no
// error message that echoes the input.
func FuzzVerifyClientAssertion(f *testing.F) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	key := clientKeys()["ec"]
	jwks := mustJSON(f, jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: key.Public(), KeyID: "ec"}}})
	f.Add(signJWS(f, jose.ES256, key, map[jose.HeaderKey]any{"kid": "ec"}, mustJSON(f, assertionClaims(now))))
	f.Add("")
	f.Add("a.b.c")
	f.Fuzz(func(t *testing.T, s string) {
		opts := AssertionOptions{ClientID: testClient, Audiences: []string{testTokenURL}, Now: now}
		_, err := VerifyClientAssertion(s, jwks, opts)
		if err != nil && len(s) >= 16 && strings.Contains(err.Error(), s) {
			t.Errorf("error %q echoes the assertion", err)
		}
	})
}
