package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/gatehouse-mcp/gatehouse/internal/storage"
)

// upstreamCols lists the upstream_identities columns.
var upstreamCols = []string{"provider", "subject", "user_id", "created_at"}

var (
	upstreamSelect = "SELECT " + cols(upstreamCols) + " FROM upstream_identities"
	upstreamInsert = insertSQL("upstream_identities", upstreamCols)
)

func scanUpstream(r rowScanner) (storage.UpstreamIdentity, error) {
	var id storage.UpstreamIdentity
	var created int64
	if err := r.Scan(&id.Provider, &id.Subject, &id.UserID, &created); err != nil {
		return storage.UpstreamIdentity{}, err
	}
	id.CreatedAt = fromMicros(created)
	return id, nil
}

// CreateUpstreamUser stores u and its upstream identity in one
// transaction; storage.ErrAlreadyExists if either is taken. Not retried
// on a conflict: the caller reads the identity a concurrent sign-in made.
func (s *Store) CreateUpstreamUser(ctx context.Context, u storage.User, id storage.UpstreamIdentity) error {
	if id.UserID != u.ID {
		return fmt.Errorf("create upstream user: the identity names user %q, not %q", id.UserID, u.ID)
	}
	err := s.writeTx(ctx, false, func(tx *sql.Tx) error {
		if _, err := s.exec(ctx, tx, userInsert, userArgs(u)...); err != nil {
			return err
		}
		_, err := s.exec(ctx, tx, upstreamInsert, id.Provider, id.Subject, id.UserID, micros(id.CreatedAt))
		return err
	})
	if err != nil {
		return fmt.Errorf("create upstream user: %w", err)
	}
	return nil
}

// LinkUpstreamIdentity ties id to the existing user id.UserID, in one
// transaction with the checks that the user exists and has no identity
// at id.Provider yet.
func (s *Store) LinkUpstreamIdentity(ctx context.Context, id storage.UpstreamIdentity) error {
	err := s.writeTx(ctx, false, func(tx *sql.Tx) error {
		if _, err := queryRow(ctx, s, tx, scanUser, userSelect+" WHERE id = ?", id.UserID); err != nil {
			return err
		}
		_, err := queryRow(ctx, s, tx, scanUpstream, upstreamSelect+" WHERE provider = ? AND user_id = ?", id.Provider, id.UserID)
		switch {
		case err == nil:
			return fmt.Errorf("user %s already has an identity at %s: %w", id.UserID, id.Provider, storage.ErrAlreadyExists)
		case !errors.Is(err, storage.ErrNotFound):
			return err
		}
		_, err = s.exec(ctx, tx, upstreamInsert, id.Provider, id.Subject, id.UserID, micros(id.CreatedAt))
		return err
	})
	if err != nil {
		return fmt.Errorf("link upstream identity: %w", err)
	}
	return nil
}

// GetUpstreamIdentity returns the identity (provider, subject), or
// storage.ErrNotFound.
func (s *Store) GetUpstreamIdentity(ctx context.Context, provider, subject string) (storage.UpstreamIdentity, error) {
	id, err := queryRow(ctx, s, s.r, scanUpstream, upstreamSelect+" WHERE provider = ? AND subject = ?", provider, subject)
	if err != nil {
		return storage.UpstreamIdentity{}, fmt.Errorf("get upstream identity: %w", err)
	}
	return id, nil
}

// ListUpstreamIdentities returns every identity ordered by provider and
// subject.
func (s *Store) ListUpstreamIdentities(ctx context.Context) ([]storage.UpstreamIdentity, error) {
	ids, err := queryAll(ctx, s, s.r, scanUpstream, upstreamSelect+" ORDER BY provider, subject")
	if err != nil {
		return nil, fmt.Errorf("list upstream identities: %w", err)
	}
	return ids, nil
}
