package sqlstore

import (
	"context"
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

// ListUserGroups returns userID's groups in name order.
func (s *Store) ListUserGroups(ctx context.Context, userID string) ([]string, error) {
	gs, err := queryAll(ctx, s, s.r, scanString, "SELECT group_name FROM user_groups WHERE user_id = ? ORDER BY group_name", userID)
	if err != nil {
		return nil, fmt.Errorf("list user groups: %w", err)
	}
	return gs, nil
}

// ListAllUserGroups returns every user's groups by user id, in name order.
func (s *Store) ListAllUserGroups(ctx context.Context) (map[string][]string, error) {
	type row struct{ user, group string }
	rows, err := queryAll(ctx, s, s.r, func(r rowScanner) (row, error) {
		var x row
		err := r.Scan(&x.user, &x.group)
		return x, err
	}, "SELECT user_id, group_name FROM user_groups ORDER BY user_id, group_name")
	if err != nil {
		return nil, fmt.Errorf("list all user groups: %w", err)
	}
	out := map[string][]string{}
	for _, x := range rows {
		out[x.user] = append(out[x.user], x.group)
	}
	return out, nil
}

func scanString(r rowScanner) (string, error) {
	var v string
	err := r.Scan(&v)
	return v, err
}
