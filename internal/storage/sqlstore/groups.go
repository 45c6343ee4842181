package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// AddUserGroup puts userID in group at t; storage.ErrAlreadyExists if
// they are in it, storage.ErrNotFound for an unknown user (the foreign
// key).
func (s *Store) AddUserGroup(ctx context.Context, userID, group string, t time.Time) error {
	if _, err := s.exec(ctx, s.w, "INSERT INTO user_groups (user_id, group_name, created_at) VALUES (?, ?, ?)",
		userID, group, micros(t)); err != nil {
		return fmt.Errorf("add user group: %w", err)
	}
	return nil
}

// RemoveUserGroup takes userID out of group; storage.ErrNotFound if they
// were not in it.
func (s *Store) RemoveUserGroup(ctx context.Context, userID, group string) error {
	err := errNotFoundIfZero(s.exec(ctx, s.w, "DELETE FROM user_groups WHERE user_id = ? AND group_name = ?", userID, group))
	if err != nil {
		return fmt.Errorf("remove user group: %w", err)
	}
	return nil
}

// SetUpstreamGroups replaces the groups provider gave userID with groups
// in one transaction; storage.ErrNotFound for an unknown user.
func (s *Store) SetUpstreamGroups(ctx context.Context, userID, provider string, groups []string, t time.Time) error {
	err := s.writeTx(ctx, true, func(tx *sql.Tx) error {
		// The user is read first: a provider that now gives no group
		// inserts nothing, so the foreign key alone would not say.
		if _, err := queryRow(ctx, s, tx, scanString, "SELECT id FROM users WHERE id = ?", userID); err != nil {
			return err
		}
		if _, err := s.exec(ctx, tx, "DELETE FROM upstream_groups WHERE user_id = ? AND provider = ?", userID, provider); err != nil {
			return err
		}
		seen := map[string]bool{}
		for _, g := range groups {
			if seen[g] {
				continue
			}
			seen[g] = true
			if _, err := s.exec(ctx, tx, "INSERT INTO upstream_groups (user_id, provider, group_name, updated_at) VALUES (?, ?, ?, ?)",
				userID, provider, g, micros(t)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("set upstream groups: %w", err)
	}
	return nil
}

// ListUpstreamGroups returns the groups each provider gave userID.
func (s *Store) ListUpstreamGroups(ctx context.Context, userID string) (map[string][]string, error) {
	rows, err := queryAll(ctx, s, s.r, scanPair, "SELECT provider, group_name FROM upstream_groups WHERE user_id = ? ORDER BY provider, group_name", userID)
	if err != nil {
		return nil, fmt.Errorf("list upstream groups: %w", err)
	}
	return byFirst(rows), nil
}

// userGroupsUnion is every (user, group) of both sources, once each.
const userGroupsUnion = "SELECT user_id, group_name FROM user_groups UNION SELECT user_id, group_name FROM upstream_groups"

// ListUserGroups returns userID's groups of both sources in name order.
func (s *Store) ListUserGroups(ctx context.Context, userID string) ([]string, error) {
	gs, err := queryAll(ctx, s, s.r, scanString,
		"SELECT group_name FROM user_groups WHERE user_id = ? UNION SELECT group_name FROM upstream_groups WHERE user_id = ? ORDER BY group_name", userID, userID)
	if err != nil {
		return nil, fmt.Errorf("list user groups: %w", err)
	}
	return gs, nil
}

// ListAllUserGroups returns every user's groups of both sources by user
// id, in name order.
func (s *Store) ListAllUserGroups(ctx context.Context) (map[string][]string, error) {
	rows, err := queryAll(ctx, s, s.r, scanPair, "SELECT user_id, group_name FROM ("+userGroupsUnion+") AS g ORDER BY user_id, group_name")
	if err != nil {
		return nil, fmt.Errorf("list all user groups: %w", err)
	}
	return byFirst(rows), nil
}

// pair is a row of two strings.
type pair struct{ a, b string }

func scanPair(r rowScanner) (pair, error) {
	var p pair
	err := r.Scan(&p.a, &p.b)
	return p, err
}

// byFirst groups the second strings of rows by the first, in row order.
func byFirst(rows []pair) map[string][]string {
	out := map[string][]string{}
	for _, p := range rows {
		out[p.a] = append(out[p.a], p.b)
	}
	return out
}

func scanString(r rowScanner) (string, error) {
	var v string
	err := r.Scan(&v)
	return v, err
}
