package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/gatehouse-mcp/gatehouse/internal/storage"
)

// GarbageCollect deletes, in one transaction, everything that expired at or
// before now: codes, sessions, refresh tokens (including
// those of expired grants) and grants past ExpiresAt, replay entries past
// their expiry, throttle windows that ended, and retired keys past
// RemoveAfter. An expiry of zero means "never" and is kept. Revoked but
// unexpired grants are kept on purpose: reuse of their tokens must still be
// recognised.
func (s *Store) GarbageCollect(ctx context.Context, now time.Time) (storage.GCResult, error) {
	ts := micros(now)
	var r storage.GCResult
	err := s.writeTx(ctx, true, func(tx *sql.Tx) error {
		r = storage.GCResult{}
		for _, d := range []struct {
			n     *int64
			query string
			args  int
		}{
			{&r.AuthCodes, "DELETE FROM auth_codes WHERE expires_at <> 0 AND expires_at <= ?", 1},
			{&r.Sessions, "DELETE FROM sessions WHERE expires_at <> 0 AND expires_at <= ?", 1},
			// Tokens first, so deleting their grants cascades nothing and
			// the counts are exact.
			{&r.RefreshTokens, `DELETE FROM refresh_tokens WHERE (expires_at <> 0 AND expires_at <= ?)
				OR grant_id IN (SELECT id FROM grants WHERE expires_at <> 0 AND expires_at <= ?)`, 2},
			{&r.Grants, "DELETE FROM grants WHERE expires_at <> 0 AND expires_at <= ?", 1},
			{&r.Replay, "DELETE FROM replay WHERE expires_at <> 0 AND expires_at <= ?", 1},
			{&r.Throttle, "DELETE FROM throttle WHERE reset_at <= ?", 1},
			{&r.Keys, "DELETE FROM signing_keys WHERE retired_at <> 0 AND remove_after <> 0 AND remove_after <= ?", 1},
		} {
			args := []any{ts}
			if d.args == 2 {
				args = append(args, ts)
			}
			n, err := s.exec(ctx, tx, d.query, args...)
			if err != nil {
				return err
			}
			*d.n = n
		}
		return nil
	})
	if err != nil {
		return storage.GCResult{}, fmt.Errorf("garbage collect: %w", err)
	}
	return r, nil
}
