package sqlstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/gatehouse-mcp/gatehouse/internal/storage"
)

// UseOnce records key until expiresAt (zero: forever). It returns
// storage.ErrAlreadyExists if key is recorded and unexpired.
//
// The interface passes no current time, so "unexpired" is judged against
// the Store's clock (Config.Now): one upsert inserts the key, or takes over
// a row whose expires_at has passed, and affects no row when the key is
// live. That single statement is what makes exactly one of concurrent
// callers win.
func (s *Store) UseOnce(ctx context.Context, key string, expiresAt time.Time) error {
	n, err := s.exec(ctx, s.w, `INSERT INTO replay (replay_key, expires_at) VALUES (?, ?)
		ON CONFLICT (replay_key) DO UPDATE SET expires_at = excluded.expires_at
		WHERE replay.expires_at <> 0 AND replay.expires_at <= ?`,
		key, micros(expiresAt), micros(s.now()))
	if err == nil && n == 0 {
		err = storage.ErrAlreadyExists
	}
	if err != nil {
		return fmt.Errorf("use once: %w", err)
	}
	return nil
}

// Seen reports whether key is recorded and unexpired at now (expires_at >
// now, or 0 for forever).
func (s *Store) Seen(ctx context.Context, key string, now time.Time) (bool, error) {
	var n int64
	err := s.queryRowContext(ctx, s.r,
		"SELECT count(*) FROM replay WHERE replay_key = ? AND (expires_at = 0 OR expires_at > ?)",
		key, micros(now)).Scan(&n)
	if err != nil {
		return false, fmt.Errorf("seen: %w", s.mapErr(err))
	}
	return n > 0, nil
}

// AddFailure counts a failure for key at now in a fixed window: the first
// failure (or the first after the window ended) starts a window of length
// window at now with count 1; later ones increment the count. It returns
// the count and when the window ends. One upsert, so concurrent failures
// are all counted.
func (s *Store) AddFailure(ctx context.Context, key string, now time.Time, window time.Duration) (int, time.Time, error) {
	if window <= 0 {
		return 0, time.Time{}, errors.New("add failure: window must be positive")
	}
	nowUS, resetUS := micros(now), micros(now.Add(window))
	var (
		count   int64
		resetAt int64
	)
	err := s.queryRowContext(ctx, s.w, `INSERT INTO throttle (throttle_key, failures, reset_at) VALUES (?, 1, ?)
		ON CONFLICT (throttle_key) DO UPDATE SET
			failures = CASE WHEN throttle.reset_at <= ? THEN 1 ELSE throttle.failures + 1 END,
			reset_at = CASE WHEN throttle.reset_at <= ? THEN excluded.reset_at ELSE throttle.reset_at END
		RETURNING failures, reset_at`,
		key, resetUS, nowUS, nowUS).Scan(&count, &resetAt)
	if err != nil {
		return 0, time.Time{}, fmt.Errorf("add failure: %w", s.mapErr(err))
	}
	return int(count), fromMicros(resetAt), nil
}

// Failures returns the count for key and when its window ends, or 0 and
// the zero time when key has no window open at now.
func (s *Store) Failures(ctx context.Context, key string, now time.Time) (int, time.Time, error) {
	var count, resetAt int64
	err := s.queryRowContext(ctx, s.r,
		"SELECT failures, reset_at FROM throttle WHERE throttle_key = ? AND reset_at > ?",
		key, micros(now)).Scan(&count, &resetAt)
	if err != nil {
		if err = s.mapErr(err); errors.Is(err, storage.ErrNotFound) {
			return 0, time.Time{}, nil
		}
		return 0, time.Time{}, fmt.Errorf("failures: %w", err)
	}
	return int(count), fromMicros(resetAt), nil
}

// RemoveFailure decrements key's count, never below zero; an unknown key
// is not an error.
func (s *Store) RemoveFailure(ctx context.Context, key string) error {
	if _, err := s.exec(ctx, s.w, "UPDATE throttle SET failures = failures - 1 WHERE throttle_key = ? AND failures > 0", key); err != nil {
		return fmt.Errorf("remove failure: %w", err)
	}
	return nil
}

// ResetFailures forgets key; forgetting an unknown key is not an error.
func (s *Store) ResetFailures(ctx context.Context, key string) error {
	if _, err := s.exec(ctx, s.w, "DELETE FROM throttle WHERE throttle_key = ?", key); err != nil {
		return fmt.Errorf("reset failures: %w", err)
	}
	return nil
}
