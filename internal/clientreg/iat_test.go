package clientreg

import (
	"errors"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-mcp/gatehouse/internal/storage/sqlite"
)

func TestInitialAccessTokens(t *testing.T) {
	ctx := t.Context()
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	st, err := sqlite.Open(ctx, sqlite.Options{Path: filepath.Join(t.TempDir(), "db"), Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })

	tok, id, err := CreateInitialAccessToken(ctx, st, nil, now, time.Hour, false)
	if err != nil {
		t.Fatal(err)
	}
	for range 3 { // multi-use
		if err := UseInitialAccessToken(ctx, st, tok, now, true); err != nil {
			t.Fatalf("UseInitialAccessToken = %v", err)
		}
	}
	for _, bad := range []string{"", "ghiat_wrong", tok + "x", "Bearer " + tok} {
		if err := UseInitialAccessToken(ctx, st, bad, now, true); !errors.Is(err, ErrInvalidInitialAccessToken) {
			t.Errorf("UseInitialAccessToken(%q) = %v, want invalid", bad, err)
		}
	}
	if err := UseInitialAccessToken(ctx, st, tok, now.Add(time.Hour), true); !errors.Is(err, ErrInvalidInitialAccessToken) {
		t.Errorf("expired token accepted: %v", err)
	}
	if err := RevokeInitialAccessToken(ctx, st, now, id); err != nil {
		t.Fatal(err)
	}
	if err := RevokeInitialAccessToken(ctx, st, now, tok); err != nil {
		t.Fatalf("revoking twice = %v", err)
	}
	if err := UseInitialAccessToken(ctx, st, tok, now, true); !errors.Is(err, ErrInvalidInitialAccessToken) {
		t.Errorf("revoked token accepted: %v", err)
	}
	if err := RevokeInitialAccessToken(ctx, st, now, "00"); err == nil {
		t.Error("revoking an unknown id succeeded")
	}

	// Single use: checking does not consume; exactly one of many
	// concurrent consumers wins.
	once, _, err := CreateInitialAccessToken(ctx, st, nil, now, 0, true)
	if err != nil {
		t.Fatal(err)
	}
	if err := UseInitialAccessToken(ctx, st, once, now, false); err != nil {
		t.Fatalf("check of a single-use token = %v", err)
	}
	var wins, losses int
	var wg sync.WaitGroup
	var rmu sync.Mutex
	for range 20 {
		wg.Go(func() {
			err := UseInitialAccessToken(ctx, st, once, now, true)
			rmu.Lock()
			defer rmu.Unlock()
			switch {
			case err == nil:
				wins++
			case errors.Is(err, ErrInvalidInitialAccessToken):
				losses++
			default:
				t.Errorf("UseInitialAccessToken = %v", err)
			}
		})
	}
	wg.Wait()
	if wins != 1 || losses != 19 {
		t.Fatalf("single-use token: %d wins, %d losses; want 1 and 19", wins, losses)
	}
	if err := UseInitialAccessToken(ctx, st, once, now, false); !errors.Is(err, ErrInvalidInitialAccessToken) {
		t.Errorf("a used single-use token still checks: %v", err)
	}
	// Garbage collection keeps what must be kept.
	if _, err := st.GarbageCollect(ctx, now.Add(1000*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := UseInitialAccessToken(ctx, st, once, now.Add(1000*time.Hour), true); !errors.Is(err, ErrInvalidInitialAccessToken) {
		t.Errorf("GC revived a used token: %v", err)
	}
}
