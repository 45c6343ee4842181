package as

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"net/http"
	"strings"
	"testing"
)

// TestUpstreamPrivateKeyJWT: with a client key, Gatehouse authenticates
// at the provider's token endpoint with private_key_jwt (issue 14 item
// 1): a JWT the fake provider verifies (signature with the registered
// public key, iss and sub the client id, aud its token endpoint, short
// exp, a jti it has not seen), and no client secret. A second sign-in
// works too: each token request has a fresh jti.
func TestUpstreamPrivateKeyJWT(t *testing.T) {
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	must(t, err)
	for _, tt := range []struct {
		name string
		key  crypto.Signer
		kid  string
	}{
		{"ES256 with a kid", newECKey(t), "gatehouse-2025"},
		{"RS256 without a kid", rsaKey, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ts, idp := newUpstreamServer(t, func(u *Upstream) { u.ClientSecret, u.ClientKey, u.ClientKeyID = "", tt.key, tt.kid })
			idp.set(func(f *fakeIdP) { f.clientKey = tt.key.Public() })
			for i := range 2 {
				p := ts.upstreamSignIn(t, newBrowser(t), defaultAuth())
				if p.status == http.StatusFound && location(t, p).Query().Get("code") != "" {
					continue // the second sign-in: consent remembered
				}
				if !strings.Contains(p.body, `id="consent-form"`) {
					t.Fatalf("sign-in %d: status %d (the provider refused the assertion: %q), want the consent page:\n%s", i+1, p.status, idp.assertionErr, p.body)
				}
			}
			if idp.tokenBasic || idp.tokenSecretIn {
				t.Errorf("token request sent a client secret (Basic %v, client_secret %v); private_key_jwt sends none", idp.tokenBasic, idp.tokenSecretIn)
			}
			if idp.assertionKID != tt.kid {
				t.Errorf("assertion kid = %q, want %q", idp.assertionKID, tt.kid)
			}
			if len(idp.jtis) != 2 {
				t.Errorf("the provider saw %d distinct jti, want 2 (one per token request)", len(idp.jtis))
			}
		})
	}

	// A key the provider does not know: its token endpoint refuses the
	// client, and the sign-in fails naming that.
	t.Run("unregistered key", func(t *testing.T) {
		ts, idp := newUpstreamServer(t, func(u *Upstream) { u.ClientSecret, u.ClientKey = "", newECKey(t) })
		idp.set(func(f *fakeIdP) { f.clientKey = newECKey(t).Public() })
		before := ts.snapshotWithout(t, "replay")
		p := ts.upstreamSignIn(t, newBrowser(t), defaultAuth())
		if p.status != http.StatusBadGateway || !strings.Contains(p.body, "the provider&#39;s token endpoint answered invalid_client") {
			t.Errorf("unregistered key: status %d, want 502 naming invalid_client:\n%s", p.status, p.body)
		}
		if !strings.HasPrefix(idp.assertionErr, "signature") {
			t.Errorf("the provider refused the assertion for %q, want its signature", idp.assertionErr)
		}
		if after := ts.snapshotWithout(t, "replay"); after != before {
			t.Errorf("a refused sign-in changed storage")
		}
	})
}

// TestUpstreamClientKeyRefused: New refuses a provider with both a secret
// and a key, with neither, and a key of an algorithm it does not sign
// with.
func TestUpstreamClientKeyRefused(t *testing.T) {
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	must(t, err)
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	must(t, err)
	ts := newTestServer(t, nil)
	for _, tt := range []struct {
		name string
		mod  func(*Upstream)
		want string
	}{
		{"secret and key", func(u *Upstream) { u.ClientKey = newECKey(t) }, "one of ClientSecret and ClientKey"},
		{"neither", func(u *Upstream) { u.ClientSecret = "" }, "one of ClientSecret and ClientKey"},
		{"P-384", func(u *Upstream) { u.ClientSecret, u.ClientKey = "", p384 }, "only P-256"},
		{"RSA 1024", func(u *Upstream) { u.ClientSecret, u.ClientKey = "", small }, "at least 2048 bits"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			u := acmeUpstream("https://idp.acme.example")
			tt.mod(&u)
			o := ts.opts
			o.Upstreams = []Upstream{u}
			if _, err := New(o); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("New = %v, want an error saying %q", err, tt.want)
			}
		})
	}
}
