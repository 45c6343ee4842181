package token

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestKeyStatesFollowSigner: across a rotation, the activation delay and
// the old key's end of publication, KeyStates names the key Sign signs
// with as signing, the others next, verify-only, expired or withdrawn,
// and each state's end; a listing read before a change predicts it.
func TestKeyStatesFollowSigner(t *testing.T) {
	ctx := t.Context()
	store, clk := &fakeKeys{}, newClock()
	const delay, retireFor = 90 * time.Second, time.Hour
	k, err := NewKeyring(ctx, KeyringOptions{Keys: store, EncryptionKey: testEncKey, Now: clk.Now, ActivationDelay: delay, RetireFor: retireFor})
	if err != nil {
		t.Fatal(err)
	}
	first := k.set.Load().active.kid
	clk.Advance(time.Second)
	second, err := k.Rotate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	rotated := clk.Now()

	// state is one key's line of the listing.
	type state struct {
		State, Next KeyState
		Until       time.Time
	}
	for _, step := range []struct {
		name string
		at   time.Time
		want map[string]state
	}{
		{"just rotated", rotated, map[string]state{
			first:  {StateSigning, StateVerifyOnly, rotated.Add(delay)},
			second: {StateNext, StateSigning, rotated.Add(delay)},
		}},
		{"a second before the delay", rotated.Add(delay - time.Second), map[string]state{
			first:  {StateSigning, StateVerifyOnly, rotated.Add(delay)},
			second: {StateNext, StateSigning, rotated.Add(delay)},
		}},
		{"at the delay", rotated.Add(delay), map[string]state{
			first:  {StateVerifyOnly, StateExpired, rotated.Add(retireFor)},
			second: {StateSigning, "", time.Time{}},
		}},
		{"after retire_for", rotated.Add(retireFor), map[string]state{
			first:  {StateExpired, "", time.Time{}},
			second: {StateSigning, "", time.Time{}},
		}},
	} {
		t.Run(step.name, func(t *testing.T) {
			clk.Advance(step.at.Sub(clk.Now()))
			rows, err := store.ListSigningKeys(ctx)
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]state{}
			var signing []string
			for _, s := range KeyStates(rows, clk.Now(), delay) {
				if s.Key.PrivateKey != nil {
					t.Errorf("KeyStates returned the private key of %s", s.Key.ID)
				}
				got[s.Key.ID] = state{s.State, s.Next, s.Until}
				if s.State == StateSigning {
					signing = append(signing, s.Key.ID)
				}
			}
			if diff := cmp.Diff(step.want, got); diff != "" {
				t.Errorf("KeyStates() %s (-want +got):\n%s", step.name, diff)
			}
			tok, err := k.Sign(ctx, testClaims(clk.Now()))
			if err != nil {
				t.Fatal(err)
			}
			if kid := headerKID(t, tok); len(signing) != 1 || signing[0] != kid {
				t.Errorf("Sign() signed with %s; KeyStates() lists %v as signing", kid, signing)
			}
		})
	}

	t.Run("withdrawn", func(t *testing.T) {
		w, err := k.Withdraw(ctx, second)
		if err != nil {
			t.Fatal(err)
		}
		rows, err := store.ListSigningKeys(ctx)
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]KeyState{}
		for _, s := range KeyStates(rows, clk.Now(), delay) {
			got[s.Key.ID] = s.State
		}
		want := map[string]KeyState{first: StateExpired, second: StateWithdrawn, w.Replacement: StateSigning}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("KeyStates() after withdrawing the signing key (-want +got):\n%s", diff)
		}
		tok, err := k.Sign(ctx, testClaims(clk.Now()))
		if err != nil {
			t.Fatal(err)
		}
		if kid := headerKID(t, tok); kid != w.Replacement {
			t.Errorf("Sign() after the withdrawal signed with %s, want the replacement %s", kid, w.Replacement)
		}
	})
}

// TestDoubleRotationWaits: two rotations within the activation delay
// (A → B → C) leave B and C waiting; A signs until B has been published for
// the delay, B until C has. Before the fix the middle key B signed at
// once, before resource servers could have fetched it.
func TestDoubleRotationWaits(t *testing.T) {
	ctx := t.Context()
	store, clk := &fakeKeys{}, newClock()
	const delay, retireFor = 90 * time.Second, time.Hour
	k, err := NewKeyring(ctx, KeyringOptions{Keys: store, EncryptionKey: testEncKey, Now: clk.Now, ActivationDelay: delay, RetireFor: retireFor})
	if err != nil {
		t.Fatal(err)
	}
	a := k.set.Load().active.kid
	clk.Advance(2 * delay) // a has long been published
	b, err := k.Rotate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	bAt := clk.Now()
	clk.Advance(10 * time.Second)
	c, err := k.Rotate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cAt := clk.Now()
	for _, step := range []struct {
		name string
		at   time.Time
		want string
	}{
		{"right after the second rotation", cAt, a},
		{"a second before b is due", bAt.Add(delay - time.Second), a},
		{"b due", bAt.Add(delay), b},
		{"a second before c is due", cAt.Add(delay - time.Second), b},
		{"c due", cAt.Add(delay), c},
	} {
		t.Run(step.name, func(t *testing.T) {
			clk.Advance(step.at.Sub(clk.Now()))
			tok, err := k.Sign(ctx, testClaims(clk.Now()))
			if err != nil {
				t.Fatal(err)
			}
			if kid := headerKID(t, tok); kid != step.want {
				t.Errorf("Sign() at %s signed with %s, want %s (a %s, b %s, c %s)", step.name, kid, step.want, a, b, c)
			}
			rows, err := store.ListSigningKeys(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range KeyStates(rows, clk.Now(), delay) {
				if (s.State == StateSigning) != (s.Key.ID == step.want) {
					t.Errorf("KeyStates() at %s lists %s as %s; %s signs", step.name, s.Key.ID, s.State, step.want)
				}
			}
		})
	}
}
