package token

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/google/go-cmp/cmp"

	"github.com/gatehouse-mcp/gatehouse/internal/storage"
)

var allAlgs = []string{ES256, RS256, EdDSA}

func TestSignVerifyRoundTrip(t *testing.T) {
	for _, alg := range allAlgs {
		t.Run(alg, func(t *testing.T) {
			f := newTestKeyring(t, alg)
			now := f.clock.Now()
			want := testClaims(now)
			tok, err := f.k.Sign(t.Context(), want)
			if err != nil {
				t.Fatalf("Sign() error = %v", err)
			}
			got, err := f.k.Verify(t.Context(), tok)
			if err != nil {
				t.Fatalf("Verify(Sign(claims)) error = %v", err)
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("Verify(Sign(claims)) mismatch (-want +got):\n%s", diff)
			}

			// The header is exactly what RFC 9068 asks for, with the kid of
			// the active key.
			infos, err := f.k.Keys(t.Context())
			if err != nil || len(infos) != 1 {
				t.Fatalf("Keys() = %v, %v, want one key", infos, err)
			}
			var header map[string]any
			raw, _ := base64.RawURLEncoding.DecodeString(strings.Split(tok, ".")[0])
			if err := json.Unmarshal(raw, &header); err != nil {
				t.Fatal(err)
			}
			wantHeader := map[string]any{"alg": alg, "kid": infos[0].ID, "typ": "at+jwt"}
			if diff := cmp.Diff(wantHeader, header); diff != "" {
				t.Errorf("token header mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// TestSignMatchesGoJose checks the hand-built JWS against go-jose's own
// signer: header and payload byte for byte, and the whole token where the
// algorithm is deterministic (RS256, EdDSA).
func TestSignMatchesGoJose(t *testing.T) {
	for _, alg := range allAlgs {
		t.Run(alg, func(t *testing.T) {
			f := newTestKeyring(t, alg)
			key := f.k.set.Load().active
			payload := mustJSON(t, testClaims(f.clock.Now()).wire())
			signer, err := jose.NewSigner(
				jose.SigningKey{Algorithm: key.alg, Key: jose.JSONWebKey{Key: key.priv, KeyID: key.kid}},
				(&jose.SignerOptions{}).WithType("at+jwt"))
			if err != nil {
				t.Fatal(err)
			}
			jws, err := signer.Sign(payload)
			if err != nil {
				t.Fatal(err)
			}
			want, err := jws.CompactSerialize()
			if err != nil {
				t.Fatal(err)
			}
			got, err := key.sign(payload)
			if err != nil {
				t.Fatal(err)
			}
			if alg == ES256 { // randomized signature: compare the signed part
				got, want = got[:strings.LastIndex(got, ".")], want[:strings.LastIndex(want, ".")]
			}
			if got != want {
				t.Errorf("sign() = %s\ngo-jose = %s", got, want)
			}
		})
	}
}

func TestSignWireClaims(t *testing.T) {
	f := newTestKeyring(t, ES256)
	now := f.clock.Now()
	tests := []struct {
		name   string
		claims AccessClaims
		want   map[string]any
	}{
		{
			name:   "all claims",
			claims: testClaims(now),
			want: map[string]any{
				"iss": "https://as.example.com", "sub": "user-1", "aud": "https://mcp.example.com/mcp",
				"client_id": "client-1", "scope": "tools:read tools:write", "jti": "jti-1", "gid": "grant-1",
				"iat": float64(now.Unix()), "nbf": float64(now.Unix()), "exp": float64(now.Unix() + 300),
				"auth_time": float64(now.Unix() - 60),
			},
		},
		{
			name: "optional claims omitted",
			claims: AccessClaims{
				Issuer: "https://as.example.com", Subject: "client-1", Audience: "https://mcp.example.com/mcp",
				ClientID: "client-1", JTI: "jti-2", IssuedAt: now, ExpiresAt: now.Add(time.Minute),
			},
			want: map[string]any{
				"iss": "https://as.example.com", "sub": "client-1", "aud": "https://mcp.example.com/mcp",
				"client_id": "client-1", "jti": "jti-2",
				"iat": float64(now.Unix()), "exp": float64(now.Unix() + 60),
			},
		},
	}
	bound := testClaims(now)
	bound.JKT = "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"
	tests = append(tests, struct {
		name   string
		claims AccessClaims
		want   map[string]any
	}{
		// RFC 9449 §6.1: a DPoP-bound token confirms its key with cnf.jkt.
		name:   "DPoP-bound",
		claims: bound,
		want: map[string]any{
			"iss": "https://as.example.com", "sub": "user-1", "aud": "https://mcp.example.com/mcp",
			"client_id": "client-1", "scope": "tools:read tools:write", "jti": "jti-1", "gid": "grant-1",
			"iat": float64(now.Unix()), "nbf": float64(now.Unix()), "exp": float64(now.Unix() + 300),
			"auth_time": float64(now.Unix() - 60), "cnf": map[string]any{"jkt": bound.JKT},
		},
	})
	for _, tt := range tests {
		tok, err := f.k.Sign(t.Context(), tt.claims)
		if err != nil {
			t.Fatalf("%s: Sign() error = %v", tt.name, err)
		}
		raw, _ := base64.RawURLEncoding.DecodeString(strings.Split(tok, ".")[1])
		var got map[string]any
		if err := json.Unmarshal(raw, &got); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("%s: payload mismatch (-want +got):\n%s", tt.name, diff)
		}
	}
}

func TestSignRefusesIncompleteClaims(t *testing.T) {
	f := newTestKeyring(t, ES256)
	now := f.clock.Now()
	tests := []struct {
		name   string
		mutate func(*AccessClaims)
	}{
		{"no iss", func(c *AccessClaims) { c.Issuer = "" }},
		{"no sub", func(c *AccessClaims) { c.Subject = "" }},
		{"no aud", func(c *AccessClaims) { c.Audience = "" }},
		{"no client_id", func(c *AccessClaims) { c.ClientID = "" }},
		{"no jti", func(c *AccessClaims) { c.JTI = "" }},
		{"no iat", func(c *AccessClaims) { c.IssuedAt = time.Time{} }},
		{"no exp", func(c *AccessClaims) { c.ExpiresAt = time.Time{} }},
		{"exp before iat", func(c *AccessClaims) { c.ExpiresAt = c.IssuedAt.Add(-time.Second) }},
		{"nbf after exp", func(c *AccessClaims) { c.NotBefore = c.ExpiresAt.Add(time.Second) }},
		{"exp past key publication", func(c *AccessClaims) { c.ExpiresAt = c.IssuedAt.Add(2 * time.Hour) }},
	}
	for _, tt := range tests {
		c := testClaims(now)
		tt.mutate(&c)
		if tok, err := f.k.Sign(t.Context(), c); err == nil {
			t.Errorf("%s: Sign() = %q, nil, want error", tt.name, tok)
		}
	}
}

func TestVerifyRejects(t *testing.T) {
	f := newTestKeyring(t, ES256)
	ctx := t.Context()
	now := f.clock.Now()
	good, err := f.k.Sign(ctx, testClaims(now))
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(good, ".")
	active := f.k.set.Load().active
	kid := active.kid
	pubJSON := mustJSON(t, active.public)
	payload := mustJSON(t, testClaims(now).wire())

	attacker, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	attackerRing := newTestKeyring(t, ES256)
	foreign, err := attackerRing.k.Sign(ctx, testClaims(now))
	if err != nil {
		t.Fatal(err)
	}

	tampered := testClaims(now)
	tampered.Scope = "admin"
	tamperedPayload := b64(mustJSON(t, tampered.wire()))

	noJTI := testClaims(now).wire()
	noJTI.JTI = ""
	pubDER, err := x509.MarshalPKIXPublicKey(active.priv.Public())
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name  string
		token string
		want  error
	}{
		{"empty", "", ErrMalformed},
		{"garbage", "not a jwt", ErrMalformed},
		{"two parts", parts[0] + "." + parts[1], ErrMalformed},
		{"too long", good + strings.Repeat("A", maxTokenSize), ErrMalformed},
		{"JSON serialization", `{"payload":"` + parts[1] + `","protected":"` + parts[0] + `","signature":"` + parts[2] + `"}`, ErrMalformed},
		{"tampered payload", parts[0] + "." + tamperedPayload + "." + parts[2], ErrSignature},
		{"tampered signature", parts[0] + "." + parts[1] + "." + b64(bytes.Repeat([]byte{1}, 64)), ErrSignature},
		{"truncated signature", parts[0] + "." + parts[1] + "." + parts[2][:20], ErrSignature},
		{"wrong kid", signJWS(t, jose.ES256, attacker, map[jose.HeaderKey]any{"kid": "no-such-key", "typ": "at+jwt"}, payload), ErrUnknownKey},
		{"no kid", signJWS(t, jose.ES256, attacker, map[jose.HeaderKey]any{"typ": "at+jwt"}, payload), ErrUnknownKey},
		{"other server's token", foreign, ErrUnknownKey},
		{"attacker key with our kid", signJWS(t, jose.ES256, attacker, map[jose.HeaderKey]any{"kid": kid, "typ": "at+jwt"}, payload), ErrSignature},
		{"alg none", unsignedJWS(t, map[string]any{"alg": "none", "kid": kid, "typ": "at+jwt"}, payload), ErrAlgorithm},
		{"alg none with signature", unsignedJWS(t, map[string]any{"alg": "none", "kid": kid, "typ": "at+jwt"}, payload) + parts[2], ErrAlgorithm},
		{"HS256 keyed with public JWK", hmacJWS(t, map[string]any{"alg": "HS256", "kid": kid, "typ": "at+jwt"}, payload, pubJSON), ErrAlgorithm},
		{"HS256 keyed with public key DER", hmacJWS(t, map[string]any{"alg": "HS256", "kid": kid, "typ": "at+jwt"}, payload, pubDER), ErrAlgorithm},
		{"EdDSA header on ES256 key", unsignedJWS(t, map[string]any{"alg": "EdDSA", "kid": kid, "typ": "at+jwt"}, payload) + b64(make([]byte, 64)), ErrAlgorithm},
		{"no typ", signJWS(t, jose.ES256, active.priv, map[jose.HeaderKey]any{"kid": kid}, payload), ErrType},
		{"typ JWT", signJWS(t, jose.ES256, active.priv, map[jose.HeaderKey]any{"kid": kid, "typ": "JWT"}, payload), ErrType},
		{"missing jti", signJWS(t, jose.ES256, active.priv, map[jose.HeaderKey]any{"kid": kid, "typ": "at+jwt"}, mustJSON(t, noJTI)), ErrMalformed},
		{"claims not an object", signJWS(t, jose.ES256, active.priv, map[jose.HeaderKey]any{"kid": kid, "typ": "at+jwt"}, []byte(`["x"]`)), ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := f.k.Verify(ctx, tt.token)
			if !errors.Is(err, tt.want) {
				t.Errorf("Verify(%.40q...) = %+v, %v, want %v", tt.token, got, err, tt.want)
			}
			if err != nil && tt.token != "" && strings.Contains(err.Error(), tt.token) {
				t.Errorf("Verify error %q contains the token", err)
			}
		})
	}

	// The keyring accepts what it signs with application/at+jwt too (RFC
	// 9068 §4), to check the typ test is not simply "equals".
	alt := signJWS(t, jose.ES256, active.priv, map[jose.HeaderKey]any{"kid": kid, "typ": "application/AT+JWT"}, payload)
	if _, err := f.k.Verify(ctx, alt); err != nil {
		t.Errorf("Verify(typ application/AT+JWT) error = %v, want nil", err)
	}
}

func TestVerifyTime(t *testing.T) {
	f := newTestKeyring(t, ES256)
	ctx := t.Context()
	now := f.clock.Now()
	future := testClaims(now)
	future.NotBefore = now.Add(time.Minute)
	tokNow, err := f.k.Sign(ctx, testClaims(now))
	if err != nil {
		t.Fatal(err)
	}
	tokFuture, err := f.k.Sign(ctx, future)
	if err != nil {
		t.Fatal(err)
	}

	if _, err := f.k.Verify(ctx, tokFuture); !errors.Is(err, ErrNotYetValid) {
		t.Errorf("Verify(nbf in a minute) error = %v, want ErrNotYetValid", err)
	}
	f.clock.Advance(5*time.Minute - time.Second)
	if _, err := f.k.Verify(ctx, tokNow); err != nil {
		t.Errorf("Verify(one second before exp) error = %v, want nil", err)
	}
	f.clock.Advance(time.Second)
	if _, err := f.k.Verify(ctx, tokNow); !errors.Is(err, ErrExpired) {
		t.Errorf("Verify(at exp) error = %v, want ErrExpired", err)
	}

	// With leeway, a keyring tolerates a little skew either way.
	lenient, err := NewKeyring(ctx, KeyringOptions{Keys: f.store, EncryptionKey: testEncKey, Now: f.clock.Now, RetireFor: time.Hour, Leeway: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lenient.Verify(ctx, tokNow); err != nil {
		t.Errorf("Verify(at exp, 30s leeway) error = %v, want nil", err)
	}
	f.clock.Advance(30 * time.Second)
	if _, err := lenient.Verify(ctx, tokNow); !errors.Is(err, ErrExpired) {
		t.Errorf("Verify(30s after exp, 30s leeway) error = %v, want ErrExpired", err)
	}
}

func TestJWKSHasNoPrivateParts(t *testing.T) {
	private := []string{"d", "p", "q", "dp", "dq", "qi", "oth", "k"}
	for _, alg := range allAlgs {
		t.Run(alg, func(t *testing.T) {
			f := newTestKeyring(t, alg)
			if _, err := f.k.Rotate(t.Context()); err != nil { // a retired key too
				t.Fatal(err)
			}
			body, err := f.k.JWKS(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			var doc struct {
				Keys []map[string]any `json:"keys"`
			}
			if err := json.Unmarshal(body, &doc); err != nil {
				t.Fatalf("JWKS() = %s: %v", body, err)
			}
			if len(doc.Keys) != 2 {
				t.Fatalf("JWKS() has %d keys, want 2: %s", len(doc.Keys), body)
			}
			for _, key := range doc.Keys {
				for _, p := range private {
					if _, ok := key[p]; ok {
						t.Errorf("JWKS() key %v has private member %q", key["kid"], p)
					}
				}
				if key["alg"] != alg || key["use"] != "sig" || key["kid"] == "" {
					t.Errorf("JWKS() key = %v, want alg %s, use sig and a kid", key, alg)
				}
			}
			// And go-jose agrees each key is public.
			var set jose.JSONWebKeySet
			if err := json.Unmarshal(body, &set); err != nil {
				t.Fatal(err)
			}
			for _, k := range set.Keys {
				if !k.IsPublic() {
					t.Errorf("JWKS() key %s is not public", k.KeyID)
				}
			}
		})
	}
}

func TestRotation(t *testing.T) {
	f := newTestKeyring(t, ES256) // RetireFor: 1h
	ctx := t.Context()
	created := f.clock.Now()
	oldKID := f.k.set.Load().active.kid
	oldKey := f.k.set.Load().active.priv
	// A token signed by the old key that outlives the retirement period,
	// to show exactly when the old key stops verifying.
	long := testClaims(f.clock.Now())
	long.ExpiresAt = long.IssuedAt.Add(10 * time.Hour)
	oldTok := signJWS(t, jose.ES256, oldKey, map[jose.HeaderKey]any{"kid": oldKID, "typ": "at+jwt"}, mustJSON(t, long.wire()))

	jwks1, err := f.k.JWKS(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if again, _ := f.k.JWKS(ctx); &again[0] != &jwks1[0] {
		t.Error("JWKS() re-encoded an unchanged key set")
	}
	// A periodic reload that finds nothing new keeps the encoded bytes.
	lists := f.store.listCount()
	f.clock.Advance(DefaultRefreshInterval)
	if again, _ := f.k.JWKS(ctx); &again[0] != &jwks1[0] || f.store.listCount() != lists+1 {
		t.Errorf("after a reload (%d lists) that found no change, JWKS() was re-encoded", f.store.listCount()-lists)
	}

	f.clock.Advance(time.Minute)
	rotatedAt := f.clock.Now()
	newKID, err := f.k.Rotate(ctx)
	if err != nil {
		t.Fatalf("Rotate() error = %v", err)
	}
	if newKID == oldKID {
		t.Fatalf("Rotate() = %s, the old kid", newKID)
	}
	tok, err := f.k.Sign(ctx, testClaims(f.clock.Now()))
	if err != nil {
		t.Fatal(err)
	}
	if got := headerKID(t, tok); got != newKID {
		t.Errorf("after Rotate, Sign() used kid %s, want %s", got, newKID)
	}

	infos, err := f.k.Keys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	wantInfos := []KeyInfo{
		{ID: newKID, Algorithm: ES256, CreatedAt: rotatedAt, Active: true, Published: true},
		{ID: oldKID, Algorithm: ES256, CreatedAt: created, RetiredAt: rotatedAt, RemoveAfter: rotatedAt.Add(time.Hour), Published: true},
	}
	if diff := cmp.Diff(wantInfos, infos); diff != "" {
		t.Errorf("Keys() mismatch (-want +got):\n%s", diff)
	}

	check := func(when string, wantKIDs []string, wantErr error) {
		t.Helper()
		body, err := f.k.JWKS(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if got := jwksKIDs(t, body); !cmp.Equal(got, wantKIDs) {
			t.Errorf("%s: JWKS() kids = %v, want %v", when, got, wantKIDs)
		}
		if _, err := f.k.Verify(ctx, oldTok); !errors.Is(err, wantErr) {
			t.Errorf("%s: Verify(old key's token) error = %v, want %v", when, err, wantErr)
		}
	}
	check("just after rotation", []string{newKID, oldKID}, nil)
	f.clock.Advance(time.Hour - time.Second)
	check("one second before RemoveAfter", []string{newKID, oldKID}, nil)
	f.clock.Advance(time.Second)
	check("at RemoveAfter", []string{newKID}, ErrUnknownKey)
}

// TestReplicas runs two keyrings on one store, as two replicas sharing a
// database.
func TestReplicas(t *testing.T) {
	ctx := t.Context()
	store, clk := &fakeKeys{}, newClock()
	opts := KeyringOptions{Keys: store, EncryptionKey: testEncKey, Now: clk.Now, RetireFor: time.Hour}
	a, err := NewKeyring(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewKeyring(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	if ka, kb := a.set.Load().active.kid, b.set.Load().active.kid; ka != kb {
		t.Fatalf("second replica created its own key: %s vs %s", ka, kb)
	}
	first := a.set.Load().active.kid

	// The hot path does not touch storage.
	lists := store.listCount()
	for range 100 {
		tok, err := a.Sign(ctx, testClaims(clk.Now()))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := b.Verify(ctx, tok); err != nil {
			t.Fatal(err)
		}
		if _, err := a.JWKS(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if got := store.listCount(); got != lists {
		t.Errorf("100 Sign/Verify/JWKS calls listed keys %d times, want 0", got-lists)
	}

	// b rotates; a keeps signing with the old key until its refresh, and
	// those tokens verify on b because the old key stays published.
	second, err := b.Rotate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := a.Sign(ctx, testClaims(clk.Now()))
	if err != nil {
		t.Fatal(err)
	}
	if got := headerKID(t, tok); got != first {
		t.Errorf("before refresh, a signed with %s, want %s", got, first)
	}
	if _, err := b.Verify(ctx, tok); err != nil {
		t.Errorf("b.Verify(a's token with the retired key) error = %v", err)
	}
	// a verifies b's new-key token at once: an unknown kid forces a reload.
	tokB, err := b.Sign(ctx, testClaims(clk.Now()))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Verify(ctx, tokB); err != nil {
		t.Errorf("a.Verify(b's token with the new key) error = %v", err)
	}

	// After the refresh interval a signs with the new key.
	clk.Advance(DefaultRefreshInterval)
	tok, err = a.Sign(ctx, testClaims(clk.Now()))
	if err != nil {
		t.Fatal(err)
	}
	if got := headerKID(t, tok); got != second {
		t.Errorf("after refresh, a signed with %s, want %s", got, second)
	}
}

// TestCreateRace stages the race the design has to survive: two replicas
// both find no key and both create one.
func TestCreateRace(t *testing.T) {
	ctx := t.Context()
	store, clk := &fakeKeys{}, newClock()
	opts := KeyringOptions{Keys: store, EncryptionKey: testEncKey, Now: clk.Now, RetireFor: time.Hour}
	a, err := NewKeyring(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	tokA, err := a.Sign(ctx, testClaims(clk.Now()))
	if err != nil {
		t.Fatal(err)
	}
	store.hideNext = 1 // b's first look sees an empty table
	b, err := NewKeyring(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	if b.set.Load().active.kid == a.set.Load().active.kid {
		t.Fatal("staging failed: b did not create a key")
	}
	// a's token, signed with the key that lost, still verifies everywhere.
	for name, k := range map[string]*Keyring{"a": a, "b": b} {
		if _, err := k.Verify(ctx, tokA); err != nil {
			t.Errorf("%s.Verify(token of the losing key) error = %v", name, err)
		}
	}
	// After a reload both agree on the winner.
	if err := a.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	if ka, kb := a.set.Load().active.kid, b.set.Load().active.kid; ka != kb {
		t.Errorf("after reload, a uses %s and b uses %s", ka, kb)
	}

	// Truly concurrent creation on an empty store: everyone converges.
	store2 := &fakeKeys{}
	opts.Keys = store2
	rings := make([]*Keyring, 8)
	var wg sync.WaitGroup
	for i := range rings {
		wg.Go(func() {
			k, err := NewKeyring(ctx, opts)
			if err != nil {
				t.Error(err)
				return
			}
			rings[i] = k
		})
	}
	wg.Wait()
	kids := map[string]bool{}
	for _, k := range rings {
		if k == nil {
			t.FailNow()
		}
		if err := k.Reload(ctx); err != nil {
			t.Fatal(err)
		}
		kids[k.set.Load().active.kid] = true
	}
	if len(kids) != 1 {
		t.Errorf("after concurrent creation and reload, replicas use %d different keys, want 1", len(kids))
	}
}

// TestStorageDown checks that an unreachable database does not stop
// signing, until keys are too stale to promise verification.
func TestStorageDown(t *testing.T) {
	f := newTestKeyring(t, ES256) // RetireFor: 1h
	ctx := t.Context()
	f.store.setListErr(errBoom)
	if err := f.k.Reload(ctx); !errors.Is(err, errBoom) {
		t.Errorf("Reload() error = %v, want %v", err, errBoom)
	}
	f.clock.Advance(50 * time.Minute)
	if _, err := f.k.Sign(ctx, testClaims(f.clock.Now())); err != nil {
		t.Errorf("Sign() 50 minutes into an outage error = %v, want nil", err)
	}
	f.clock.Advance(6 * time.Minute)
	if _, err := f.k.Sign(ctx, testClaims(f.clock.Now())); err == nil {
		t.Error("Sign() of a token outliving the key's guaranteed publication succeeded, want error")
	}
	f.store.setListErr(nil)
	f.clock.Advance(2 * time.Second) // past the retry backoff
	if _, err := f.k.Sign(ctx, testClaims(f.clock.Now())); err != nil {
		t.Errorf("Sign() after storage is back error = %v, want nil", err)
	}
}

func TestKeysEncryptedAtRest(t *testing.T) {
	for _, alg := range allAlgs {
		t.Run(alg, func(t *testing.T) {
			f := newTestKeyring(t, alg)
			ctx := t.Context()
			active := f.k.set.Load().active
			row := f.store.row(active.kid)
			der, err := x509.MarshalPKCS8PrivateKey(active.priv)
			if err != nil {
				t.Fatal(err)
			}
			if bytes.Contains(row.PrivateKey, der) || bytes.Contains(row.PrivateKey, der[len(der)-32:]) {
				t.Error("stored PrivateKey contains the key in clear")
			}
			if strings.Contains(row.PublicJWK, `"d"`) {
				t.Errorf("stored PublicJWK has a private part: %s", row.PublicJWK)
			}
			plain, err := Open(testEncKey, row.PrivateKey, []byte(row.ID))
			if err != nil || !bytes.Equal(plain, der) {
				t.Errorf("Open(stored key, AD=kid) = %x, %v, want the PKCS#8 key", plain, err)
			}

			// Another master key cannot open the keys.
			wrong := bytes.Repeat([]byte{7}, KeySize)
			if _, err := NewKeyring(ctx, KeyringOptions{Keys: f.store, EncryptionKey: wrong, Now: f.clock.Now}); !errors.Is(err, ErrOpen) {
				t.Errorf("NewKeyring(wrong master key) error = %v, want ErrOpen", err)
			}
		})
	}
}

func TestReloadRefusesTamperedRows(t *testing.T) {
	f := newTestKeyring(t, ES256)
	ctx := t.Context()
	good := f.store.row(f.k.set.Load().active.kid)
	other := newTestKeyring(t, ES256)
	foreign := other.store.row(other.k.set.Load().active.kid)

	tests := []struct {
		name   string
		mutate func(*storage.SigningKey)
	}{
		{"sealed key moved to another kid", func(r *storage.SigningKey) { r.ID = foreign.ID }},
		{"foreign public JWK", func(r *storage.SigningKey) { r.PublicJWK = foreign.PublicJWK }},
		{"public JWK not JSON", func(r *storage.SigningKey) { r.PublicJWK = "{" }},
		{"flipped ciphertext bit", func(r *storage.SigningKey) {
			r.PrivateKey = bytes.Clone(r.PrivateKey)
			r.PrivateKey[20] ^= 1
		}},
		{"algorithm changed", func(r *storage.SigningKey) { r.Algorithm = RS256 }},
		{"unknown algorithm", func(r *storage.SigningKey) { r.Algorithm = "HS256" }},
	}
	for _, tt := range tests {
		row := good
		tt.mutate(&row)
		store := &fakeKeys{rows: []storage.SigningKey{row}}
		_, err := NewKeyring(ctx, KeyringOptions{Keys: store, EncryptionKey: testEncKey, Now: f.clock.Now})
		if err == nil {
			t.Errorf("%s: NewKeyring() succeeded, want error", tt.name)
		}
	}
}

func TestNewKeyringOptions(t *testing.T) {
	clk := newClock()
	tests := []struct {
		name string
		opts KeyringOptions
	}{
		{"no keys", KeyringOptions{EncryptionKey: testEncKey, Now: clk.Now}},
		{"no encryption key", KeyringOptions{Keys: &fakeKeys{}, Now: clk.Now}},
		{"short encryption key", KeyringOptions{Keys: &fakeKeys{}, EncryptionKey: testEncKey[:16], Now: clk.Now}},
		{"no clock", KeyringOptions{Keys: &fakeKeys{}, EncryptionKey: testEncKey}},
		{"HS256", KeyringOptions{Keys: &fakeKeys{}, EncryptionKey: testEncKey, Now: clk.Now, Algorithm: "HS256"}},
		{"none", KeyringOptions{Keys: &fakeKeys{}, EncryptionKey: testEncKey, Now: clk.Now, Algorithm: "none"}},
		{"retire shorter than refresh", KeyringOptions{Keys: &fakeKeys{}, EncryptionKey: testEncKey, Now: clk.Now, RetireFor: time.Second}},
		{"negative leeway", KeyringOptions{Keys: &fakeKeys{}, EncryptionKey: testEncKey, Now: clk.Now, Leeway: -time.Second}},
		{"storage down", KeyringOptions{Keys: &fakeKeys{listErr: errBoom}, EncryptionKey: testEncKey, Now: clk.Now}},
		{"storage refuses key", KeyringOptions{Keys: &fakeKeys{rotateErr: errBoom}, EncryptionKey: testEncKey, Now: clk.Now}},
	}
	for _, tt := range tests {
		if _, err := NewKeyring(t.Context(), tt.opts); err == nil {
			t.Errorf("%s: NewKeyring() succeeded, want error", tt.name)
		}
	}
}

func headerKID(t *testing.T, tok string) string {
	t.Helper()
	jws, err := jose.ParseSignedCompact(tok, verifyAlgs)
	if err != nil {
		t.Fatal(err)
	}
	return jws.Signatures[0].Header.KeyID
}

func jwksKIDs(t *testing.T, body []byte) []string {
	t.Helper()
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(body, &set); err != nil {
		t.Fatal(err)
	}
	var kids []string
	for _, k := range set.Keys {
		kids = append(kids, k.KeyID)
	}
	return kids
}

// TestActivationDelay: a rotated-in key is published at once but signs
// only after the delay, so no token reaches a resource server before the
// key is in every replica's JWKS; the first key of a store signs at once.
func TestActivationDelay(t *testing.T) {
	ctx := t.Context()
	store, clk := &fakeKeys{}, newClock()
	const delay = 90 * time.Second
	k, err := NewKeyring(ctx, KeyringOptions{Keys: store, EncryptionKey: make([]byte, KeySize), Now: clk.Now, ActivationDelay: delay})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := k.Sign(ctx, testClaims(clk.Now()))
	if err != nil {
		t.Fatalf("the first key does not sign at once: %v", err)
	}
	first := headerKID(t, tok)
	clk.Advance(time.Second)
	second, err := k.Rotate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	jwks, err := k.JWKS(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(jwks), second) || !strings.Contains(string(jwks), first) {
		t.Fatalf("right after rotation the JWKS does not publish both keys: %s", jwks)
	}
	clk.Advance(delay - 2*time.Second)
	tok, _ = k.Sign(ctx, testClaims(clk.Now()))
	if got := headerKID(t, tok); got != first {
		t.Errorf("before the delay, signed with %s, want the previous key %s", got, first)
	}
	clk.Advance(2 * time.Second)
	tok, _ = k.Sign(ctx, testClaims(clk.Now()))
	if got := headerKID(t, tok); got != second {
		t.Errorf("after the delay, signed with %s, want the new key %s", got, second)
	}
}

// newCachingKeyring is newTestKeyring with the verified-token cache of the
// given size.
func newCachingKeyring(t testing.TB, size int) keyringFixture {
	t.Helper()
	store, clk := &fakeKeys{}, newClock()
	k, err := NewKeyring(t.Context(), KeyringOptions{Keys: store, EncryptionKey: testEncKey, Now: clk.Now, RetireFor: time.Hour, VerifiedCacheSize: size})
	if err != nil {
		t.Fatal(err)
	}
	return keyringFixture{k: k, store: store, clock: clk}
}

func (f keyringFixture) cached() int {
	f.k.verifiedMu.RLock()
	defer f.k.verifiedMu.RUnlock()
	return len(f.k.verified)
}

func TestVerifyCacheHit(t *testing.T) {
	f := newTestKeyring(t, ES256)
	ctx := t.Context()
	want := testClaims(f.clock.Now())
	tok, err := f.k.Sign(ctx, want)
	if err != nil {
		t.Fatal(err)
	}
	first, err := f.k.Verify(ctx, tok)
	if err != nil {
		t.Fatal(err)
	}
	if n := f.cached(); n != 1 {
		t.Fatalf("after one Verify, %d tokens remembered, want 1", n)
	}
	second, err := f.k.Verify(ctx, tok)
	if err != nil {
		t.Fatalf("Verify(remembered token) error = %v", err)
	}
	if diff := cmp.Diff(first, second); diff != "" {
		t.Errorf("remembered claims differ from the first verification (-first +second):\n%s", diff)
	}
	// Times travel as whole seconds, in UTC.
	want.AuthTime = want.AuthTime.Truncate(time.Second)
	if diff := cmp.Diff(want, second); diff != "" {
		t.Errorf("remembered claims differ from the signed ones (-signed +remembered):\n%s", diff)
	}

	// The second answer came from the cache: mark the entry and look.
	f.k.verifiedMu.Lock()
	for h, v := range f.k.verified {
		v.claims.Scope = "from the cache"
		f.k.verified[h] = v
	}
	f.k.verifiedMu.Unlock()
	if got, err := f.k.Verify(ctx, tok); err != nil || got.Scope != "from the cache" {
		t.Errorf("Verify(remembered token) = scope %q, %v; want the remembered entry", got.Scope, err)
	}
}

func TestVerifyCacheExpired(t *testing.T) {
	f := newTestKeyring(t, ES256)
	ctx := t.Context()
	tok, err := f.k.Sign(ctx, testClaims(f.clock.Now())) // exp in 5 minutes
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.k.Verify(ctx, tok); err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(5*time.Minute - time.Second)
	if _, err := f.k.Verify(ctx, tok); err != nil {
		t.Errorf("Verify(remembered, a second before exp) error = %v", err)
	}
	f.clock.Advance(time.Second)
	if f.cached() != 1 {
		t.Fatal("the token is no longer remembered; the test would not exercise the cache")
	}
	if c, err := f.k.Verify(ctx, tok); !errors.Is(err, ErrExpired) {
		t.Errorf("Verify(remembered, at exp) = %+v, %v; want ErrExpired", c, err)
	}
}

func TestVerifyCacheKeyRemoved(t *testing.T) {
	t.Run("deleted from storage", func(t *testing.T) {
		f := newTestKeyring(t, ES256)
		ctx := t.Context()
		oldKID := f.k.set.Load().active.kid
		tok, err := f.k.Sign(ctx, testClaims(f.clock.Now()))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.k.Verify(ctx, tok); err != nil {
			t.Fatal(err)
		}
		if _, err := f.k.Rotate(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := f.k.Verify(ctx, tok); err != nil {
			t.Errorf("Verify(remembered, key retired but published) error = %v", err)
		}
		// Garbage collection deletes the retired key's row.
		f.store.mu.Lock()
		f.store.rows = slices.DeleteFunc(f.store.rows, func(r storage.SigningKey) bool { return r.ID == oldKID })
		f.store.mu.Unlock()
		if err := f.k.Reload(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := f.k.Verify(ctx, tok); !errors.Is(err, ErrUnknownKey) {
			t.Errorf("Verify(remembered, key deleted) error = %v, want ErrUnknownKey", err)
		}
	})
	t.Run("past RemoveAfter", func(t *testing.T) {
		f := newTestKeyring(t, ES256)
		ctx := t.Context()
		oldKID := f.k.set.Load().active.kid
		tok, err := f.k.Sign(ctx, testClaims(f.clock.Now()))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.k.Verify(ctx, tok); err != nil {
			t.Fatal(err)
		}
		if _, err := f.k.Rotate(ctx); err != nil {
			t.Fatal(err)
		}
		// An operator shortened the retired key's publication to a minute.
		f.store.mu.Lock()
		for i := range f.store.rows {
			if f.store.rows[i].ID == oldKID {
				f.store.rows[i].RemoveAfter = f.clock.Now().Add(time.Minute)
			}
		}
		f.store.mu.Unlock()
		if err := f.k.Reload(ctx); err != nil {
			t.Fatal(err)
		}
		f.clock.Advance(time.Minute) // the token has 4 minutes left
		if _, err := f.k.Verify(ctx, tok); !errors.Is(err, ErrUnknownKey) {
			t.Errorf("Verify(remembered, key past RemoveAfter) error = %v, want ErrUnknownKey", err)
		}
	})
	t.Run("same kid, other key", func(t *testing.T) {
		// Storage swapped the key material under the kid (a restored
		// backup, say): the remembered verification no longer holds.
		f := newTestKeyring(t, ES256)
		other := newTestKeyring(t, ES256)
		ctx := t.Context()
		kid := f.k.set.Load().active.kid
		tok, err := f.k.Sign(ctx, testClaims(f.clock.Now()))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.k.Verify(ctx, tok); err != nil {
			t.Fatal(err)
		}
		f.k.mu.Lock()
		set := f.k.set.Load()
		swapped := &keySet{active: set.active, byKID: map[string]*loadedKey{}, ordered: set.ordered}
		lk := *set.byKID[kid]
		lk.signingKey = other.k.set.Load().active.signingKey
		swapped.byKID[kid] = &lk
		f.k.set.Store(swapped)
		f.k.mu.Unlock()
		if _, err := f.k.Verify(ctx, tok); err == nil {
			t.Error("Verify(remembered, key material swapped under its kid) = nil error")
		}
	})
}

func TestVerifyCacheTampered(t *testing.T) {
	f := newTestKeyring(t, ES256)
	ctx := t.Context()
	now := f.clock.Now()
	good, err := f.k.Sign(ctx, testClaims(now))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.k.Verify(ctx, good); err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(good, ".")
	tampered := testClaims(now)
	tampered.Scope = "admin"
	flip := func(s string) string {
		b := []byte(s)
		b[len(b)/2] ^= 1
		return string(b)
	}
	for name, tok := range map[string]string{
		"payload":           parts[0] + "." + b64(mustJSON(t, tampered.wire())) + "." + parts[2],
		"payload bit":       parts[0] + "." + flip(parts[1]) + "." + parts[2],
		"signature bit":     parts[0] + "." + parts[1] + "." + flip(parts[2]),
		"header bit":        flip(parts[0]) + "." + parts[1] + "." + parts[2],
		"appended":          good + "A",
		"signature dropped": parts[0] + "." + parts[1] + ".",
	} {
		for range 2 {
			if c, err := f.k.Verify(ctx, tok); err == nil {
				t.Errorf("Verify(tampered %s) = %+v, nil error", name, c)
			}
		}
	}
	if n := f.cached(); n != 1 {
		t.Errorf("%d tokens remembered, want only the good one", n)
	}
}

func TestVerifyCacheBounded(t *testing.T) {
	f := newCachingKeyring(t, 4)
	ctx := t.Context()
	var toks []string
	for i := range 10 {
		c := testClaims(f.clock.Now())
		c.JTI = fmt.Sprint("jti-", i)
		tok, err := f.k.Sign(ctx, c)
		if err != nil {
			t.Fatal(err)
		}
		toks = append(toks, tok)
	}
	for range 2 {
		for i, tok := range toks {
			c, err := f.k.Verify(ctx, tok)
			if err != nil || c.JTI != fmt.Sprint("jti-", i) {
				t.Errorf("Verify(token %d) = jti %q, %v", i, c.JTI, err)
			}
			if n := f.cached(); n > 4 {
				t.Fatalf("%d tokens remembered, want at most 4", n)
			}
		}
	}

	off := newCachingKeyring(t, -1)
	tok, err := off.k.Sign(ctx, testClaims(off.clock.Now()))
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if _, err := off.k.Verify(ctx, tok); err != nil {
			t.Errorf("Verify(cache disabled) error = %v", err)
		}
	}
	if off.k.verified != nil {
		t.Error("VerifiedCacheSize -1 still remembers tokens")
	}
}

func TestVerifyCacheConcurrent(t *testing.T) {
	f := newCachingKeyring(t, 8)
	ctx := t.Context()
	var toks []string
	for i := range 16 {
		c := testClaims(f.clock.Now())
		c.JTI = fmt.Sprint("jti-", i)
		tok, err := f.k.Sign(ctx, c)
		if err != nil {
			t.Fatal(err)
		}
		toks = append(toks, tok)
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 50 {
				j := (g + i) % len(toks)
				if c, err := f.k.Verify(ctx, toks[j]); err != nil || c.JTI != fmt.Sprint("jti-", j) {
					t.Errorf("Verify(token %d) = jti %q, %v", j, c.JTI, err)
				}
			}
		})
	}
	wg.Wait()
}

// TestReseal: after re-encrypting the keys under a new master key, a
// keyring with the new key verifies what the old one signed and signs
// on; the old master key opens nothing. A wrong old key changes nothing.
func TestReseal(t *testing.T) {
	f := newTestKeyring(t, ES256)
	ctx := t.Context()
	if _, err := f.k.Rotate(ctx); err != nil {
		t.Fatal(err)
	}
	tok, err := f.k.Sign(ctx, testClaims(f.clock.Now()))
	if err != nil {
		t.Fatal(err)
	}
	newKey := []byte("fedcba9876543210fedcba9876543210")
	before := slices.Clone(f.store.rows)
	if _, err := Reseal(ctx, f.store, newKey, testEncKey, rand.Reader); err == nil {
		t.Error("Reseal with the wrong old key succeeded")
	}
	if !slices.EqualFunc(before, f.store.rows, func(a, b storage.SigningKey) bool { return bytes.Equal(a.PrivateKey, b.PrivateKey) }) {
		t.Error("a failed Reseal changed the stored keys")
	}
	if _, err := Reseal(ctx, f.store, testEncKey, testEncKey, rand.Reader); err == nil {
		t.Error("Reseal to the same key succeeded")
	}
	n, err := Reseal(ctx, f.store, testEncKey, newKey, rand.Reader)
	if err != nil || n != 2 {
		t.Fatalf("Reseal = %d, %v; want 2 keys", n, err)
	}
	k2, err := NewKeyring(ctx, KeyringOptions{Keys: f.store, EncryptionKey: newKey, Algorithm: ES256, Now: f.clock.Now, RetireFor: time.Hour})
	if err != nil {
		t.Fatalf("NewKeyring with the new master key: %v", err)
	}
	if _, err := k2.Verify(ctx, tok); err != nil {
		t.Errorf("a token signed before resealing does not verify: %v", err)
	}
	if _, err := k2.Sign(ctx, testClaims(f.clock.Now())); err != nil {
		t.Errorf("Sign after resealing: %v", err)
	}
	if _, err := NewKeyring(ctx, KeyringOptions{Keys: f.store, EncryptionKey: testEncKey, Algorithm: ES256, Now: f.clock.Now, RetireFor: time.Hour}); err == nil {
		t.Error("the old master key still opens the keys")
	}
}

// TestVerifyReadsJKT: cnf.jkt survives Sign and Verify, so the
// authorization server's own introspection and revocation see the
// binding (RFC 9449 §6.1).
func TestVerifyReadsJKT(t *testing.T) {
	f := newTestKeyring(t, ES256)
	want := testClaims(f.clock.Now())
	want.JKT = "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"
	tok, err := f.k.Sign(t.Context(), want)
	if err != nil {
		t.Fatal(err)
	}
	got, err := f.k.Verify(t.Context(), tok)
	if err != nil || got.JKT != want.JKT {
		t.Errorf("Verify(Sign(claims with jkt)) = jkt %q, %v; want %q", got.JKT, err, want.JKT)
	}
}
