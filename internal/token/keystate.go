package token

import (
	"slices"
	"time"

	"github.com/gatehouse-mcp/gatehouse/internal/storage"
)

// KeyState is where a signing key is in its life.
type KeyState string

// The states of a signing key, in the order a key normally goes through
// them.
const (
	// StateNext is a key published (in the JWKS) that signs nothing yet:
	// rotated in less than the activation delay ago.
	StateNext KeyState = "next"
	// StateSigning is the key that signs new tokens.
	StateSigning KeyState = "signing"
	// StateVerifyOnly is a key still published, so tokens it signed keep
	// verifying, that signs nothing: replaced by a newer key.
	StateVerifyOnly KeyState = "verify-only"
	// StateExpired is a replaced key past its RemoveAfter: out of the
	// JWKS, verifying nothing, until garbage collection deletes it.
	StateExpired KeyState = "expired"
	// StateWithdrawn is a key withdrawn at once ([Keyring.Withdraw]): out
	// of the JWKS, its private key deleted, kept as a tombstone until
	// garbage collection deletes it at RemoveAfter.
	StateWithdrawn KeyState = "withdrawn"
)

// KeyStatus is a stored signing key's state at a time and its next
// change, as the keyring that signs sees them.
type KeyStatus struct {
	// Key is the stored row, without its private key.
	Key storage.SigningKey
	// State is the key's state at the time asked about.
	State KeyState
	// Next is the state the key goes to at Until; empty when no time
	// alone changes it: the signing key signs until the next rotation,
	// and an expired or withdrawn key waits for garbage collection.
	Next KeyState
	// Until is when the state changes to Next; zero when Next is empty.
	Until time.Time
}

// KeyStates returns the state of every key in rows (as
// storage.Keys.ListSigningKeys returns them) at now, newest first, for a
// keyring whose activation delay is activate
// ([KeyringOptions.ActivationDelay]). It applies the rule the keyring
// signs by (one function, so a listing cannot drift from what signs) and
// needs no key-encryption key. A state's end is found by applying that
// rule at each later time a key becomes due or leaves the JWKS.
//
// What it says is what a keyring that has read rows signs with; a
// replica still holding an older snapshot catches up within its
// RefreshInterval.
func KeyStates(rows []storage.SigningKey, now time.Time, activate time.Duration) []KeyStatus {
	rows = slices.Clone(rows)
	slices.SortStableFunc(rows, func(a, b storage.SigningKey) int {
		return newestFirst(a.CreatedAt, b.CreatedAt, a.ID, b.ID)
	})
	// The live keys, in the order chooseSigner takes them.
	var live []keyTimes
	var liveRow []int
	var changes []time.Time // every time a key becomes due or leaves the JWKS
	for i, r := range rows {
		if !r.WithdrawnAt.IsZero() {
			continue
		}
		kt := keyTimes{created: r.CreatedAt, retired: r.RetiredAt, removeAfter: r.RemoveAfter}
		live = append(live, kt)
		liveRow = append(liveRow, i)
		changes = append(changes, kt.created.Add(activate))
		if !kt.removeAfter.IsZero() {
			changes = append(changes, kt.removeAfter)
		}
	}
	slices.SortFunc(changes, time.Time.Compare)
	changes = slices.Compact(changes)
	// stateAt is the state of live key j at t.
	stateAt := func(j int, t time.Time) KeyState {
		signer, _ := chooseSigner(live, t, activate)
		k := live[j]
		switch {
		case j == signer:
			return StateSigning
		case !k.published(t):
			return StateExpired
		case k.retired.IsZero() && k.created.After(t.Add(-activate)):
			return StateNext
		}
		return StateVerifyOnly
	}
	out := make([]KeyStatus, len(rows))
	for i, r := range rows {
		r.PrivateKey = nil
		out[i] = KeyStatus{Key: r, State: StateWithdrawn}
	}
	for j, i := range liveRow {
		st := stateAt(j, now)
		out[i].State = st
		for _, t := range changes {
			if !t.After(now) {
				continue
			}
			if next := stateAt(j, t); next != st {
				out[i].Next, out[i].Until = next, t
				break
			}
		}
	}
	return out
}
