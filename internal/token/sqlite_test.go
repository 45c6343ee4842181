package token_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/gatehouse-mcp/gatehouse/internal/storage/sqlite"
	"github.com/gatehouse-mcp/gatehouse/internal/token"
)

// TestKeyringOnSQLite runs replicas against the real embedded backend, so
// the keyring's assumptions about storage (ordering, atomic rotation, time
// round-trips) are checked against a real implementation, not only the
// in-package fake.
func TestKeyringOnSQLite(t *testing.T) {
	ctx := t.Context()
	store, err := sqlite.Open(ctx, sqlite.Options{Path: filepath.Join(t.TempDir(), "gatehouse.db")})
	if err != nil {
		t.Fatalf("sqlite.Open() = %v", err)
	}
	t.Cleanup(func() { _ = store.Close() })

	var now atomic.Int64
	now.Store(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC).UnixNano())
	clock := func() time.Time { return time.Unix(0, now.Load()).UTC() }
	opts := token.KeyringOptions{
		Keys:          store,
		EncryptionKey: bytes.Repeat([]byte{9}, token.KeySize),
		Now:           clock,
		RetireFor:     time.Hour,
	}

	// Replicas starting together on an empty database converge on one key.
	rings := make([]*token.Keyring, 4)
	var wg sync.WaitGroup
	for i := range rings {
		wg.Go(func() {
			k, err := token.NewKeyring(ctx, opts)
			if err != nil {
				t.Errorf("NewKeyring() error = %v", err)
				return
			}
			rings[i] = k
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	for _, k := range rings {
		if err := k.Reload(ctx); err != nil {
			t.Fatal(err)
		}
	}
	a, b := rings[0], rings[1]
	keysA, err := a.Keys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	active := 0
	for _, ki := range keysA {
		if ki.Active {
			active++
		}
	}
	if active != 1 {
		t.Errorf("after concurrent start, %d active keys, want 1: %+v", active, keysA)
	}
	for i, k := range rings[1:] {
		got, err := k.Keys(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(keysA, got); diff != "" {
			t.Errorf("replica %d sees other keys than replica 0 (-0 +%d):\n%s", i+1, i+1, diff)
		}
	}

	claims := token.AccessClaims{
		Issuer: "https://as.example.com", Subject: "user-1", Audience: "https://mcp.example.com/mcp",
		ClientID: "client-1", JTI: "jti-1", IssuedAt: clock(), ExpiresAt: clock().Add(5 * time.Minute),
	}
	tokA, err := a.Sign(ctx, claims)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Verify(ctx, tokA); err != nil {
		t.Errorf("b.Verify(a's token) error = %v", err)
	}

	// b rotates; a verifies b's new-key tokens at once and a's old-key
	// tokens keep verifying on b.
	now.Add(int64(time.Minute))
	if _, err := b.Rotate(ctx); err != nil {
		t.Fatal(err)
	}
	claims.IssuedAt, claims.ExpiresAt = clock(), clock().Add(5*time.Minute)
	tokB, err := b.Sign(ctx, claims)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Verify(ctx, tokB); err != nil {
		t.Errorf("a.Verify(b's token with the new key) error = %v", err)
	}
	if _, err := b.Verify(ctx, tokA); err != nil {
		t.Errorf("b.Verify(a's token with the retired key) error = %v", err)
	}
	jwksA, err := a.JWKS(ctx)
	if err != nil {
		t.Fatal(err)
	}
	jwksB, err := b.JWKS(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(jwksA, jwksB) {
		t.Errorf("replicas publish different JWKS:\n%s\n%s", jwksA, jwksB)
	}

	// a withdraws the active key: a replacement signs at once, and after
	// its reload b refuses tokens of the withdrawn key and lists it as
	// withdrawn. The tombstone round-trips through SQLite.
	now.Add(int64(time.Minute))
	withdrawn := headerKIDOf(t, tokB)
	w, err := a.Withdraw(ctx, withdrawn)
	if err != nil || w.Replacement == "" {
		t.Fatalf("a.Withdraw(active) = %+v, %v; want a replacement", w, err)
	}
	if err := b.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Verify(ctx, tokB); !errors.Is(err, token.ErrUnknownKey) {
		t.Errorf("b.Verify(token of the withdrawn key) = %v, want %v", err, token.ErrUnknownKey)
	}
	claims.IssuedAt, claims.ExpiresAt = clock(), clock().Add(5*time.Minute)
	tokC, err := b.Sign(ctx, claims)
	if err != nil {
		t.Fatal(err)
	}
	if got := headerKIDOf(t, tokC); got != w.Replacement {
		t.Errorf("b signs with %s after the withdrawal, want the replacement %s", got, w.Replacement)
	}
	infos, err := b.Keys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, ki := range infos {
		if ki.ID == withdrawn && (!ki.WithdrawnAt.Equal(clock()) || ki.Published || ki.Active) {
			t.Errorf("b.Keys() lists the withdrawn key as %+v, want withdrawn at %s, not published", ki, clock())
		}
	}
}

// headerKIDOf returns the kid of a compact JWS's header.
func headerKIDOf(t *testing.T, tok string) string {
	t.Helper()
	h, err := base64.RawURLEncoding.DecodeString(strings.SplitN(tok, ".", 2)[0])
	if err != nil {
		t.Fatal(err)
	}
	var v struct {
		Kid string `json:"kid"`
	}
	if err := json.Unmarshal(h, &v); err != nil {
		t.Fatal(err)
	}
	return v.Kid
}
