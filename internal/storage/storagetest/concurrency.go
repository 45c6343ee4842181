package storagetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-mcp/gatehouse/internal/storage"
)

// racers is how many goroutines each race runs.
const racers = 20

// RunConcurrencyTests races goroutines on the atomic verbs: exactly one of
// them wins a single-use code, a refresh rotation or a replay key; update
// closures and key rotations may refuse racers with storage.ErrConflict
// but at least one of them wins, and none loses an update it reported
// done; failure counts lose no update.
func RunConcurrencyTests(t *testing.T, open func(t *testing.T) storage.Store) {
	t.Helper()
	for _, tc := range []struct {
		name string
		fn   func(t *testing.T, s storage.Store)
	}{
		{"ConcurrentConsumeAuthCode", raceConsumeAuthCode},
		{"ConcurrentRotateRefreshToken", raceRotateRefreshToken},
		{"ConcurrentUseOnce", raceUseOnce},
		{"ConcurrentAddFailure", raceAddFailure},
		{"ConcurrentUpdateClient", raceUpdateClient},
		{"ConcurrentClientCounts", raceClientCounts},
		{"ConcurrentRotateSigningKey", raceRotateSigningKey},
		{"ConcurrentAuditTail", raceAuditTail},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, open(t)) })
	}
}

// race runs fn(i) for i in [0, racers) in goroutines released together,
// and returns their errors by i.
func race(fn func(i int) error) []error {
	var (
		wg    sync.WaitGroup
		start = make(chan struct{})
		errs  = make([]error, racers)
	)
	for i := range racers {
		wg.Go(func() {
			<-start
			errs[i] = fn(i)
		})
	}
	close(start)
	wg.Wait()
	return errs
}

// warmUp opens pool connections with a round of concurrent reads, so the
// race that follows is not staggered by connection setup.
func warmUp(s storage.Store) {
	race(func(i int) error {
		_, err := s.Seen(context.Background(), fmt.Sprint("warm-up", i), t0)
		return err
	})
}

// oneWinner checks that exactly one error is nil and all others match
// loser, and returns the winner's index (-1 if none).
func oneWinner(t *testing.T, call string, errs []error, loser error) int {
	t.Helper()
	winner := -1
	for i, err := range errs {
		switch {
		case err == nil && winner >= 0:
			t.Errorf("%s: racers %d and %d both succeeded", call, winner, i)
		case err == nil:
			winner = i
		case !errors.Is(err, loser):
			t.Errorf("%s (racer %d) = %v, want nil or %v", call, i, err, loser)
		}
	}
	if winner < 0 {
		t.Errorf("%s: no racer succeeded", call)
	}
	return winner
}

// someWinners checks that at least one error is nil and all others match
// loser (the contract of a verb that may refuse a racer with ErrConflict:
// "a concurrent writer won", so some writer must have), and returns the
// winners' indexes.
func someWinners(t *testing.T, call string, errs []error, loser error) []int {
	t.Helper()
	var winners []int
	for i, err := range errs {
		switch {
		case err == nil:
			winners = append(winners, i)
		case !errors.Is(err, loser):
			t.Errorf("%s (racer %d) = %v, want nil or %v", call, i, err, loser)
		}
	}
	if len(winners) == 0 {
		t.Errorf("%s: all %d racers failed, want at least one to succeed", call, len(errs))
	}
	return winners
}

func raceConsumeAuthCode(t *testing.T, s storage.Store) {
	ctx := t.Context()
	mustCreateClient(t, s, "c1")
	mustCreateUser(t, s, "u1")
	mustCreateAuthCode(t, s, newAuthCode("code", "c1", "u1"))

	warmUp(s)
	got := make([]storage.AuthCode, racers)
	errs := race(func(i int) error {
		var err error
		got[i], err = s.ConsumeAuthCode(ctx, "code", at(time.Duration(i+1)*time.Second))
		return err
	})
	w := oneWinner(t, `ConsumeAuthCode("code")`, errs, storage.ErrConsumed)
	if w < 0 {
		return
	}
	// Every loser sees the code as the winner consumed it.
	for i := range got {
		if !got[i].ConsumedAt.Equal(got[w].ConsumedAt) || got[i].Hash != "code" {
			t.Errorf("ConsumeAuthCode (racer %d) = %q consumed at %v, want %q consumed at %v (racer %d)",
				i, got[i].Hash, got[i].ConsumedAt, "code", got[w].ConsumedAt, w)
		}
	}
	if want := at(time.Duration(w+1) * time.Second); !got[w].ConsumedAt.Equal(want) {
		t.Errorf("winner's ConsumedAt = %v, want %v", got[w].ConsumedAt, want)
	}
}

func raceRotateRefreshToken(t *testing.T, s storage.Store) {
	ctx := t.Context()
	mustCreateClient(t, s, "c1")
	mustCreateUser(t, s, "u1")
	g := newGrant("g1", "c1", "u1")
	mustCreateGrant(t, s, g)
	mustCreateRefreshToken(t, s, newRefreshToken("old", g))

	next := func(i int) storage.RefreshToken {
		rt := newRefreshToken(fmt.Sprint("next", i), g)
		rt.CreatedAt = at(time.Duration(i+1) * time.Second)
		return rt
	}
	warmUp(s)
	errs := race(func(i int) error {
		return s.RotateRefreshToken(ctx, "old", next(i), []byte(fmt.Sprint("retry", i)), fmt.Sprint("key", i))
	})
	w := oneWinner(t, `RotateRefreshToken("old")`, errs, storage.ErrTokenReused)
	if w < 0 {
		return
	}
	old, err := s.GetRefreshToken(ctx, "old")
	wantErr(t, `GetRefreshToken("old")`, err, nil)
	if string(old.Retry) != fmt.Sprint("retry", w) || old.RetryKey != fmt.Sprint("key", w) || !old.RotatedAt.Equal(next(w).CreatedAt) {
		t.Errorf(`GetRefreshToken("old") = Retry %q, RetryKey %q, RotatedAt %v; want the winner's %q, %q, %v`,
			old.Retry, old.RetryKey, old.RotatedAt, fmt.Sprint("retry", w), fmt.Sprint("key", w), next(w).CreatedAt)
	}
	for i := range racers {
		_, err := s.GetRefreshToken(ctx, fmt.Sprint("next", i))
		wantFound(t, fmt.Sprintf("GetRefreshToken(%q)", fmt.Sprint("next", i)), err, i == w)
	}
}

func raceUseOnce(t *testing.T, s storage.Store) {
	ctx := t.Context()
	warmUp(s)
	errs := race(func(int) error { return s.UseOnce(ctx, "jti", farFuture) })
	oneWinner(t, `UseOnce("jti")`, errs, storage.ErrAlreadyExists)

	// Taking over an expired entry is a race too.
	if err := s.UseOnce(ctx, "expired", longAgo); err != nil {
		t.Fatalf(`UseOnce("expired") = %v`, err)
	}
	errs = race(func(int) error { return s.UseOnce(ctx, "expired", farFuture) })
	oneWinner(t, `UseOnce("expired") after expiry`, errs, storage.ErrAlreadyExists)
}

func raceAddFailure(t *testing.T, s storage.Store) {
	ctx := t.Context()
	warmUp(s)
	counts := make([]int, racers)
	errs := race(func(i int) error {
		var err error
		counts[i], _, err = s.AddFailure(ctx, "k", at(time.Second), time.Hour)
		return err
	})
	for i, err := range errs {
		wantErr(t, fmt.Sprintf("AddFailure (racer %d)", i), err, nil)
	}
	// Every failure is counted once: the counts are 1…racers.
	slices.Sort(counts)
	for i, n := range counts {
		if n != i+1 {
			t.Fatalf("AddFailure counts = %v, want 1…%d", counts, racers)
		}
	}
	n, _, err := s.Failures(ctx, "k", at(2*time.Second))
	if err != nil || n != racers {
		t.Errorf(`Failures("k") = %d, %v; want %d, nil`, n, err, racers)
	}
}

func raceUpdateClient(t *testing.T, s storage.Store) {
	ctx := t.Context()
	c := mustCreateClient(t, s, "c1")
	warmUp(s)
	errs := race(func(int) error {
		_, err := s.UpdateClient(ctx, "c1", func(old storage.Client) (storage.Client, error) {
			old.TokenCount++
			return old, nil
		})
		return err
	})
	// A backend may refuse a racer with ErrConflict (the caller retries),
	// but must never lose an update it reported done.
	won := len(someWinners(t, `UpdateClient("c1")`, errs, storage.ErrConflict))
	got, err := s.GetClient(ctx, "c1")
	wantErr(t, `GetClient("c1")`, err, nil)
	if want := c.TokenCount + int64(won); got.TokenCount != want {
		t.Errorf(`GetClient("c1").TokenCount = %d, want %d (%d updates succeeded)`, got.TokenCount, want, won)
	}
}

// raceClientCounts: concurrent creates and deletes, including racers
// creating the same id (one wins) and deleting the same client (one
// wins), leave CountClients equal to the clients that exist.
func raceClientCounts(t *testing.T, s storage.Store) {
	ctx := t.Context()
	for i := range racers {
		c := newClient(fmt.Sprint("old", i))
		c.Origin = storage.OriginCIMD
		if err := s.CreateClient(ctx, c); err != nil {
			t.Fatalf("CreateClient(%q) = %v", c.ID, err)
		}
	}
	warmUp(s)
	errs := race(func(i int) error {
		var err error
		switch i % 4 {
		case 0: // a new client of its own
			c := newClient(fmt.Sprint("new", i))
			c.Origin = storage.OriginCIMD
			err = s.CreateClient(ctx, c)
		case 1: // the same new client as every other case-1 racer
			c := newClient("shared")
			c.Origin = storage.OriginCIMD
			if err = s.CreateClient(ctx, c); errors.Is(err, storage.ErrAlreadyExists) {
				err = nil
			}
		case 2: // an existing client of its own
			err = s.DeleteClient(ctx, fmt.Sprint("old", i))
		case 3: // the same existing client as every other case-3 racer
			if err = s.DeleteClient(ctx, "old3"); errors.Is(err, storage.ErrNotFound) {
				err = nil
			}
		}
		// The caller retries a conflict; the count must still match.
		if errors.Is(err, storage.ErrConflict) {
			return nil
		}
		return err
	})
	for i, err := range errs {
		wantErr(t, fmt.Sprintf("racer %d", i), err, nil)
	}
	list, err := s.ListClients(ctx)
	wantErr(t, "ListClients()", err, nil)
	n, err := s.CountClients(ctx, storage.OriginCIMD)
	if err != nil || n != len(list) {
		t.Errorf("CountClients(cimd) after racing creates and deletes = %d, %v; want %d (the clients that exist)", n, err, len(list))
	}
}

func raceRotateSigningKey(t *testing.T, s storage.Store) {
	ctx := t.Context()
	// With an active key every racer first contends for its row; without a
	// table-level guard, racers that queued on it each insert a key.
	if err := s.RotateSigningKey(ctx, newKey("initial", at(-time.Hour)), at(1000*time.Hour)); err != nil {
		t.Fatalf(`RotateSigningKey("initial") = %v`, err)
	}
	warmUp(s)
	// A few rounds: a lost race shows up often, not always.
	for round := range 3 {
		id := func(i int) string { return fmt.Sprintf("k%d-%d", round, i) }
		errs := race(func(i int) error {
			return s.RotateSigningKey(ctx, newKey(id(i), at(time.Duration(round*racers+i)*time.Hour)), at(1000*time.Hour))
		})
		// A racer refused with ErrConflict stored nothing; at least one
		// rotated, and the active key is a winner's.
		winners := someWinners(t, fmt.Sprintf("RotateSigningKey (round %d)", round), errs, storage.ErrConflict)
		keys, err := s.ListSigningKeys(ctx)
		wantErr(t, "ListSigningKeys()", err, nil)
		var active []string
		stored := map[string]bool{}
		for _, k := range keys {
			stored[k.ID] = true
			if k.RetiredAt.IsZero() {
				active = append(active, k.ID)
			}
		}
		if len(active) != 1 {
			t.Fatalf("after concurrent rotations (round %d) keys %v are active, want 1", round, active)
		}
		for i := range racers {
			won := slices.Contains(winners, i)
			if stored[id(i)] != won {
				t.Errorf("round %d: racer %d's key stored = %v, want %v (RotateSigningKey returned %v)", round, i, stored[id(i)], won, errs[i])
			}
		}
		if !slices.ContainsFunc(winners, func(i int) bool { return id(i) == active[0] }) {
			t.Errorf("round %d: the active key %s is not one a successful RotateSigningKey stored", round, active[0])
		}
	}
}

// raceAuditTail appends audit events from racing goroutines while a reader
// follows the log the way `gatehouse audit tail` does (QueryAudit with
// AfterID set to the last ID seen). IDs must become visible in order: if a
// transaction holding a lower ID committed after one holding a higher ID,
// the tailer would move past the lower ID before it appeared and never see
// that event.
func raceAuditTail(t *testing.T, s storage.Store) {
	ctx := t.Context()
	warmUp(s)
	const rounds = 15
	var (
		seen    = map[string]int{}
		last    int64
		done    = make(chan struct{})
		tailErr error
		tailWG  sync.WaitGroup
	)
	follow := func() bool { // one poll; reports whether it found events
		es, err := s.QueryAudit(ctx, storage.AuditQuery{AfterID: last, Limit: 1000})
		if err != nil {
			tailErr = err
			return false
		}
		for _, e := range es {
			seen[e.Detail]++
			last = e.ID
		}
		return len(es) > 0
	}
	tailWG.Go(func() {
		for {
			select {
			case <-done:
				return
			default:
			}
			if !follow() {
				time.Sleep(time.Millisecond)
			}
		}
	})
	errs := race(func(i int) error {
		for r := range rounds {
			// Alternate single appends and group commits, as the server does.
			e := func(k int) storage.AuditEvent {
				return storage.AuditEvent{Time: at(time.Second), Type: "test.tail", Outcome: "success", Detail: fmt.Sprintf("%d/%d/%d", i, r, k)}
			}
			var err error
			if r%2 == 0 {
				err = s.AppendAudit(ctx, e(0))
			} else {
				err = s.AppendAudits(ctx, []storage.AuditEvent{e(0), e(1), e(2)})
			}
			if err != nil {
				return err
			}
		}
		return nil
	})
	close(done)
	tailWG.Wait()
	for follow() { // drain what committed after the last poll
	}
	for i, err := range errs {
		wantErr(t, fmt.Sprintf("AppendAudit(s) (racer %d)", i), err, nil)
	}
	wantErr(t, "QueryAudit (tailing)", tailErr, nil)
	want := racers * (rounds/2*3 + (rounds+1)/2) // even rounds 1 event, odd rounds 3
	all, err := s.QueryAudit(ctx, storage.AuditQuery{Limit: 10 * want})
	wantErr(t, "QueryAudit({})", err, nil)
	if len(all) != want {
		t.Fatalf("QueryAudit({}) returned %d events, want %d", len(all), want)
	}
	var missed []string
	for _, e := range all {
		switch seen[e.Detail] {
		case 1:
		case 0:
			missed = append(missed, fmt.Sprintf("id %d (%s)", e.ID, e.Detail))
		default:
			t.Errorf("the tailer saw event %s %d times", e.Detail, seen[e.Detail])
		}
	}
	if len(missed) > 0 {
		t.Errorf("the tailer never saw %d of %d events (IDs committed out of order): %v", len(missed), want, missed[:min(len(missed), 5)])
	}
}
