package token

import (
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"testing"
	"time"
)

// BenchmarkSign measures the hot path of the token endpoint. Compare
// ES256 with BenchmarkRawECDSASign: the difference should be no more than
// BenchmarkClaimsJSON plus base64 (about a microsecond).
func BenchmarkSign(b *testing.B) {
	for _, alg := range allAlgs {
		b.Run(alg, func(b *testing.B) {
			f := newTestKeyring(b, alg)
			c := testClaims(f.clock.Now())
			ctx := b.Context()
			for b.Loop() {
				if _, err := f.k.Sign(ctx, c); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkRawECDSASign is the floor for ES256 signing: SHA-256 of a
// token-sized signing input and one P-256 signature, nothing else.
func BenchmarkRawECDSASign(b *testing.B) {
	f := newTestKeyring(b, ES256)
	priv := f.k.set.Load().active.priv.(*ecdsa.PrivateKey)
	tok, err := f.k.Sign(b.Context(), testClaims(f.clock.Now()))
	if err != nil {
		b.Fatal(err)
	}
	input := []byte(tok[:len(tok)-87]) // header.payload without ".signature"
	for b.Loop() {
		h := sha256.Sum256(input)
		if _, _, err := ecdsa.Sign(rand.Reader, priv, h[:]); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkClaimsJSON is the JSON-encoding part of Sign.
func BenchmarkClaimsJSON(b *testing.B) {
	c := testClaims(newClock().Now())
	for b.Loop() {
		if _, err := json.Marshal(c.wire()); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerify verifies one token over and over, as introspection by a
// resource server does: after the first call, the remembered verification.
func BenchmarkVerify(b *testing.B) {
	for _, alg := range allAlgs {
		b.Run(alg, func(b *testing.B) {
			f := newTestKeyring(b, alg)
			ctx := b.Context()
			tok, err := f.k.Sign(ctx, testClaims(f.clock.Now()))
			if err != nil {
				b.Fatal(err)
			}
			for b.Loop() {
				if _, err := f.k.Verify(ctx, tok); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkVerifyUncached is the first verification of a token: parse,
// signature, claims (the verified-token cache disabled).
func BenchmarkVerifyUncached(b *testing.B) {
	for _, alg := range allAlgs {
		b.Run(alg, func(b *testing.B) {
			store, clk := &fakeKeys{}, newClock()
			k, err := NewKeyring(b.Context(), KeyringOptions{Keys: store, EncryptionKey: testEncKey, Algorithm: alg, Now: clk.Now, RetireFor: time.Hour, VerifiedCacheSize: -1})
			if err != nil {
				b.Fatal(err)
			}
			f := keyringFixture{k: k, store: store, clock: clk}
			ctx := b.Context()
			tok, err := f.k.Sign(ctx, testClaims(f.clock.Now()))
			if err != nil {
				b.Fatal(err)
			}
			for b.Loop() {
				if _, err := f.k.Verify(ctx, tok); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkJWKS(b *testing.B) {
	f := newTestKeyring(b, ES256)
	ctx := b.Context()
	for b.Loop() {
		if _, err := f.k.JWKS(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkHash(b *testing.B) {
	s, err := NewSecret(nil)
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		_ = Hash(s)
	}
}

func BenchmarkNewSecret(b *testing.B) {
	for b.Loop() {
		if _, err := NewSecret(nil); err != nil {
			b.Fatal(err)
		}
	}
}
