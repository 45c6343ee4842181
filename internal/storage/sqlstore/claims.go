package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"maps"
	"slices"
	"time"
)

// SetUpstreamClaims replaces the claims provider gave userID with claims
// in one transaction; storage.ErrNotFound for an unknown user.
func (s *Store) SetUpstreamClaims(ctx context.Context, userID, provider string, claims map[string][]string, t time.Time) error {
	err := s.writeTx(ctx, true, func(tx *sql.Tx) error {
		// As in SetUpstreamGroups: no claims insert nothing, so the user
		// is read first to tell an unknown user.
		if _, err := queryRow(ctx, s, tx, scanString, "SELECT id FROM users WHERE id = ?", userID); err != nil {
			return err
		}
		if _, err := s.exec(ctx, tx, "DELETE FROM upstream_claims WHERE user_id = ? AND provider = ?", userID, provider); err != nil {
			return err
		}
		for _, name := range slices.Sorted(maps.Keys(claims)) {
			seen := map[string]bool{}
			for _, v := range claims[name] {
				if seen[v] {
					continue
				}
				seen[v] = true
				if _, err := s.exec(ctx, tx, "INSERT INTO upstream_claims (user_id, provider, claim_name, claim_value, updated_at) VALUES (?, ?, ?, ?, ?)",
					userID, provider, name, v, micros(t)); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("set upstream claims: %w", err)
	}
	return nil
}

// ListUserClaims returns the values all providers gave userID by claim
// name, each once, in order.
func (s *Store) ListUserClaims(ctx context.Context, userID string) (map[string][]string, error) {
	rows, err := queryAll(ctx, s, s.r, scanPair,
		"SELECT DISTINCT claim_name, claim_value FROM upstream_claims WHERE user_id = ? ORDER BY claim_name, claim_value", userID)
	if err != nil {
		return nil, fmt.Errorf("list user claims: %w", err)
	}
	return byFirst(rows), nil
}
