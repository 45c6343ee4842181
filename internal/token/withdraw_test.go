package token

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/gatehouse-mcp/gatehouse/internal/storage"
)

// withdrawFixture is two keyrings (replicas A and B) on one store and one
// clock, with an activation delay, as serve runs them.
type withdrawFixture struct {
	t     *testing.T
	a, b  *Keyring
	store *fakeKeys
	clock *clock
}

const withdrawDelay = 90 * time.Second // KeyringOptions.ActivationDelay

func newWithdrawFixture(t *testing.T) withdrawFixture {
	t.Helper()
	store, clk := &fakeKeys{}, newClock()
	opts := KeyringOptions{Keys: store, EncryptionKey: testEncKey, Now: clk.Now, RetireFor: time.Hour, ActivationDelay: withdrawDelay}
	a, err := NewKeyring(t.Context(), opts)
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewKeyring(t.Context(), opts)
	if err != nil {
		t.Fatal(err)
	}
	return withdrawFixture{t: t, a: a, b: b, store: store, clock: clk}
}

// sign signs fresh claims with k and returns the token and its kid.
func (f withdrawFixture) sign(k *Keyring) (string, string) {
	f.t.Helper()
	tok, err := k.Sign(f.t.Context(), testClaims(f.clock.Now()))
	if err != nil {
		f.t.Fatalf("Sign() error = %v", err)
	}
	return tok, headerKID(f.t, tok)
}

// published returns the kids of k's JWKS.
func (f withdrawFixture) published(k *Keyring) []string {
	f.t.Helper()
	body, err := k.JWKS(f.t.Context())
	if err != nil {
		f.t.Fatal(err)
	}
	return jwksKIDs(f.t, body)
}

// wantWithdrawn fails unless k refuses tok as signed by the withdrawn key.
func (f withdrawFixture) wantWithdrawn(who string, k *Keyring, tok, kid string) {
	f.t.Helper()
	_, err := k.Verify(f.t.Context(), tok)
	if !errors.Is(err, ErrUnknownKey) || !strings.Contains(err.Error(), "withdrawn") {
		f.t.Errorf("%s: Verify(token of withdrawn key %s) = %v, want %v saying it was withdrawn", who, kid, err, ErrUnknownKey)
	}
	if slices.Contains(f.published(k), kid) {
		f.t.Errorf("%s: JWKS() = %v still publishes withdrawn key %s", who, f.published(k), kid)
	}
}

// TestWithdrawRetiredKey: withdrawing a retired key removes it from the
// JWKS and from verification at once on the replica that withdrew it, and
// on another replica at its next reload (RefreshInterval), even for a
// token that replica had remembered as verified. Nothing is rotated.
func TestWithdrawRetiredKey(t *testing.T) {
	f := newWithdrawFixture(t)
	ctx := t.Context()
	old, k1 := f.sign(f.a)
	for _, k := range []*Keyring{f.a, f.b} {
		if _, err := k.Verify(ctx, old); err != nil { // remembered by both
			t.Fatalf("Verify(fresh token) = %v", err)
		}
	}
	f.clock.Advance(time.Minute)
	k2, err := f.a.Rotate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(withdrawDelay)

	withdrawnAt := f.clock.Now()
	w, err := f.a.Withdraw(ctx, k1)
	if err != nil {
		t.Fatalf("Withdraw(%s) = %v", k1, err)
	}
	if w.Replacement != "" || w.Already || w.Key.ID != k1 || !w.Key.WithdrawnAt.Equal(withdrawnAt) {
		t.Errorf("Withdraw(retired %s) = %+v, want the key withdrawn at %s and no rotation", k1, w, withdrawnAt)
	}
	f.wantWithdrawn("A at once", f.a, old, k1)
	if _, kid := f.sign(f.a); kid != k2 {
		t.Errorf("A signs with %s after withdrawing a retired key, want %s", kid, k2)
	}
	if row := f.store.row(k1); row.PrivateKey != nil || row.WithdrawnAt.IsZero() {
		t.Errorf("stored row of withdrawn key %s = %+v, want a tombstone without private key", k1, row)
	}

	// B reloads within RefreshInterval.
	f.clock.Advance(DefaultRefreshInterval)
	f.wantWithdrawn("B after RefreshInterval", f.b, old, k1)
	if _, kid := f.sign(f.b); kid != k2 {
		t.Errorf("B signs with %s, want %s", kid, k2)
	}
}

// TestWithdrawActiveKey: withdrawing the key that signs first rotates so
// another key signs — at once, without the activation delay, since the
// key it would wait behind is gone — then withdraws it. Other replicas
// follow at their next reload.
func TestWithdrawActiveKey(t *testing.T) {
	f := newWithdrawFixture(t)
	ctx := t.Context()
	old, k1 := f.sign(f.a)
	if _, err := f.b.Verify(ctx, old); err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(time.Minute)

	w, err := f.a.Withdraw(ctx, k1)
	if err != nil {
		t.Fatalf("Withdraw(active %s) = %v", k1, err)
	}
	k2 := w.Replacement
	if k2 == "" || k2 == k1 || w.Key.ID != k1 || w.Already {
		t.Fatalf("Withdraw(active %s) = %+v, want a replacement key", k1, w)
	}
	f.wantWithdrawn("A at once", f.a, old, k1)
	tok, kid := f.sign(f.a)
	if kid != k2 {
		t.Errorf("A signs with %s right after withdrawing the active key, want the replacement %s (no activation delay)", kid, k2)
	}
	if got := f.published(f.a); !cmp.Equal(got, []string{k2}) {
		t.Errorf("A's JWKS() = %v, want [%s]", got, k2)
	}

	// B verifies the replacement's tokens at once (unknown kid: reload),
	// which also drops the withdrawn key there.
	if _, err := f.b.Verify(ctx, tok); err != nil {
		t.Errorf("B.Verify(token of the replacement key) = %v", err)
	}
	f.clock.Advance(DefaultRefreshInterval)
	f.wantWithdrawn("B after RefreshInterval", f.b, old, k1)
	if _, kid := f.sign(f.b); kid != k2 {
		t.Errorf("B signs with %s after its reload, want %s", kid, k2)
	}

	infos, err := f.b.Keys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var withdrawn, active []string
	for _, ki := range infos {
		switch {
		case !ki.WithdrawnAt.IsZero():
			withdrawn = append(withdrawn, ki.ID)
			if ki.Active || ki.Published {
				t.Errorf("Keys() lists withdrawn key %s as active or published: %+v", ki.ID, ki)
			}
		case ki.Active:
			active = append(active, ki.ID)
		}
	}
	if !cmp.Equal(withdrawn, []string{k1}) || !cmp.Equal(active, []string{k2}) {
		t.Errorf("Keys() withdrawn %v, active %v; want [%s], [%s]", withdrawn, active, k1, k2)
	}
}

// TestWithdrawPendingKey: a rotated-in key still waiting for its
// activation delay is withdrawn the same way: a fresh key replaces it and
// signs at once.
func TestWithdrawPendingKey(t *testing.T) {
	f := newWithdrawFixture(t)
	ctx := t.Context()
	_, k1 := f.sign(f.a)
	f.clock.Advance(time.Minute)
	pending, err := f.a.Rotate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, kid := f.sign(f.a); kid != k1 {
		t.Fatalf("during the activation delay A signs with %s, want %s", kid, k1)
	}
	f.clock.Advance(time.Second)
	w, err := f.a.Withdraw(ctx, pending)
	if err != nil {
		t.Fatalf("Withdraw(pending %s) = %v", pending, err)
	}
	if w.Replacement == "" || w.Replacement == pending || w.Replacement == k1 {
		t.Fatalf("Withdraw(pending %s) = %+v, want a fresh replacement", pending, w)
	}
	if _, kid := f.sign(f.a); kid != w.Replacement {
		t.Errorf("after withdrawing the pending key A signs with %s, want %s", kid, w.Replacement)
	}
	if got := f.published(f.a); !cmp.Equal(got, []string{w.Replacement, k1}) {
		t.Errorf("JWKS() = %v, want [%s %s]: the withdrawn key gone, the retired one kept", got, w.Replacement, k1)
	}
}

// TestWithdrawEdgeCases: the only key (a new one replaces it), an unknown
// kid, and a key withdrawn twice.
func TestWithdrawEdgeCases(t *testing.T) {
	f := newTestKeyring(t, ES256)
	ctx := t.Context()
	only := f.k.set.Load().active.kid
	first := f.clock.Now()
	w, err := f.k.Withdraw(ctx, only)
	if err != nil || w.Replacement == "" {
		t.Fatalf("Withdraw(the only key) = %+v, %v; want a replacement", w, err)
	}
	if got := jwksKIDs(t, mustJWKS(t, f.k)); !cmp.Equal(got, []string{w.Replacement}) {
		t.Errorf("JWKS() after withdrawing the only key = %v, want [%s]", got, w.Replacement)
	}

	f.clock.Advance(time.Minute)
	lists := len(f.store.rows)
	again, err := f.k.Withdraw(ctx, only)
	if err != nil || !again.Already || again.Replacement != "" || !again.Key.WithdrawnAt.Equal(first) {
		t.Errorf("Withdraw(%s) again = %+v, %v; want Already, withdrawn at %s, no rotation", only, again, err, first)
	}
	if len(f.store.rows) != lists {
		t.Errorf("withdrawing twice stored %d more keys", len(f.store.rows)-lists)
	}

	if _, err := f.k.Withdraw(ctx, "no-such-kid"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf(`Withdraw("no-such-kid") = %v, want %v`, err, storage.ErrNotFound)
	}
}

// TestWithdrawnKeyNeverSigns: a replica whose snapshot predates the
// withdrawal signs with the withdrawn key until its reload — then never
// again, and NewKeyring on a store whose signing keys are all withdrawn
// makes a new one rather than signing with a tombstone.
func TestWithdrawnKeyNeverSigns(t *testing.T) {
	f := newWithdrawFixture(t)
	ctx := t.Context()
	_, k1 := f.sign(f.a)
	if _, err := f.a.Withdraw(ctx, k1); err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(DefaultRefreshInterval)
	if _, kid := f.sign(f.b); kid == k1 {
		t.Errorf("B signs with withdrawn key %s after its reload", kid)
	}
	// Retire the replacement by hand and withdraw it too: no key is left.
	for i := range f.store.rows {
		if f.store.rows[i].RetiredAt.IsZero() {
			f.store.rows[i].RetiredAt = f.clock.Now()
			if _, err := f.store.WithdrawSigningKey(context.Background(), f.store.rows[i].ID, f.clock.Now()); err != nil {
				t.Fatal(err)
			}
		}
	}
	c, err := NewKeyring(ctx, KeyringOptions{Keys: f.store, EncryptionKey: testEncKey, Now: f.clock.Now, RetireFor: time.Hour})
	if err != nil {
		t.Fatalf("NewKeyring(only tombstones) = %v", err)
	}
	tok, kid := f.sign(c)
	if f.store.row(kid).WithdrawnAt != (time.Time{}) {
		t.Errorf("NewKeyring(only tombstones) signs with withdrawn key %s", kid)
	}
	if _, err := c.Verify(ctx, tok); err != nil {
		t.Errorf("Verify(new key's token) = %v", err)
	}
}

func mustJWKS(t *testing.T, k *Keyring) []byte {
	t.Helper()
	b, err := k.JWKS(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return b
}
