package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/gatehouse-mcp/gatehouse/internal/storage"
)

var grantCols = []string{
	"id", "client_id", "user_id", "resource", "scopes", "auth_time",
	"created_at", "expires_at", "revoked_at", "user_epoch",
}

var grantSelect = "SELECT " + cols(grantCols) + " FROM grants"

func scanGrant(r rowScanner) (storage.Grant, error) {
	var (
		g                                  storage.Grant
		scopes                             string
		authTime, created, expiry, revoked int64
	)
	err := r.Scan(&g.ID, &g.ClientID, &g.UserID, &g.Resource, &scopes,
		&authTime, &created, &expiry, &revoked, &g.UserEpoch)
	if err != nil {
		return storage.Grant{}, err
	}
	g.Scopes = decodeList(scopes, &err)
	g.AuthTime = fromMicros(authTime)
	g.CreatedAt = fromMicros(created)
	g.ExpiresAt = fromMicros(expiry)
	g.RevokedAt = fromMicros(revoked)
	return g, err
}

// CreateGrant stores a grant; storage.ErrAlreadyExists if the ID is taken,
// storage.ErrNotFound if the client does not exist. A zero ExpiresAt
// means the family never expires.
func (s *Store) CreateGrant(ctx context.Context, g storage.Grant) error {
	_, err := s.exec(ctx, s.w, insertSQL("grants", grantCols),
		g.ID, g.ClientID, g.UserID, g.Resource, encodeJSON(g.Scopes),
		micros(g.AuthTime), micros(g.CreatedAt), micros(g.ExpiresAt),
		micros(g.RevokedAt), g.UserEpoch)
	if err != nil {
		return fmt.Errorf("create grant: %w", err)
	}
	return nil
}

// GetGrant returns the grant, revoked or expired or not, or
// storage.ErrNotFound.
func (s *Store) GetGrant(ctx context.Context, id string) (storage.Grant, error) {
	g, err := queryRow(ctx, s, s.r, scanGrant, grantSelect+" WHERE id = ?", id)
	if err != nil {
		return storage.Grant{}, fmt.Errorf("get grant: %w", err)
	}
	return g, nil
}

// userGrantsSQL lists a user's live grants (grants_user_id index) with
// the creation time of each one's newest refresh token
// (refresh_tokens_grant_id index).
var userGrantsSQL = func() string {
	g := make([]string, len(grantCols))
	for i, c := range grantCols {
		g[i] = "g." + c
	}
	return "SELECT " + cols(g) + ", COALESCE((SELECT MAX(rt.created_at) FROM refresh_tokens rt WHERE rt.grant_id = g.id), 0)" +
		" FROM grants g WHERE g.user_id = ? AND g.revoked_at = 0 AND (g.expires_at = 0 OR g.expires_at > ?)" +
		" ORDER BY g.client_id, g.resource, g.id"
}()

// ListUserGrants returns userID's live grants with their last use.
func (s *Store) ListUserGrants(ctx context.Context, userID string, now time.Time) ([]storage.GrantUse, error) {
	gs, err := queryAll(ctx, s, s.r, func(r rowScanner) (storage.GrantUse, error) {
		var (
			gu                                 storage.GrantUse
			scopes                             string
			authTime, created, expiry, revoked int64
			last                               int64
		)
		err := r.Scan(&gu.ID, &gu.ClientID, &gu.UserID, &gu.Resource, &scopes,
			&authTime, &created, &expiry, &revoked, &gu.UserEpoch, &last)
		if err != nil {
			return storage.GrantUse{}, err
		}
		gu.Scopes = decodeList(scopes, &err)
		gu.AuthTime = fromMicros(authTime)
		gu.CreatedAt = fromMicros(created)
		gu.ExpiresAt = fromMicros(expiry)
		gu.RevokedAt = fromMicros(revoked)
		gu.LastUsed = fromMicros(last)
		return gu, err
	}, userGrantsSQL, userID, micros(now))
	if err != nil {
		return nil, fmt.Errorf("list user grants: %w", err)
	}
	return gs, nil
}

// RevokeGrants revokes every active grant of userID to clientID at
// resource at t, returning the count.
func (s *Store) RevokeGrants(ctx context.Context, userID, clientID, resource string, t time.Time) (int64, error) {
	if t.IsZero() {
		return 0, errors.New("revoke grants: t is the zero time")
	}
	n, err := s.exec(ctx, s.w, "UPDATE grants SET revoked_at = ? WHERE user_id = ? AND client_id = ? AND resource = ? AND revoked_at = 0",
		micros(t), userID, clientID, resource)
	if err != nil {
		return 0, fmt.Errorf("revoke grants: %w", err)
	}
	return n, nil
}

// RevokeGrant marks the grant revoked at t unless it already is (the first
// revocation time stays); storage.ErrNotFound for an unknown grant. Its
// refresh tokens stay stored, so a later presentation is still recognised
// as belonging to a revoked family.
func (s *Store) RevokeGrant(ctx context.Context, id string, t time.Time) error {
	if t.IsZero() {
		return errors.New("revoke grant: t is the zero time")
	}
	n, err := s.exec(ctx, s.w, "UPDATE grants SET revoked_at = ? WHERE id = ? AND revoked_at = 0", micros(t), id)
	if err == nil && n == 0 {
		// Either revoked before (fine) or unknown.
		_, err = queryRow(ctx, s, s.w, scanGrant, grantSelect+" WHERE id = ?", id)
	}
	if err != nil {
		return fmt.Errorf("revoke grant: %w", err)
	}
	return nil
}

var refreshTokenCols = []string{
	"hash", "grant_id", "client_id", "user_id", "scopes", "resource",
	"created_at", "expires_at", "rotated_at", "retry", "retry_key", "jkt",
}

var (
	refreshTokenSelect = "SELECT " + cols(refreshTokenCols) + " FROM refresh_tokens"
	refreshTokenInsert = insertSQL("refresh_tokens", refreshTokenCols)
)

func refreshTokenArgs(t storage.RefreshToken) []any {
	return []any{
		t.Hash, t.GrantID, t.ClientID, t.UserID, encodeJSON(t.Scopes),
		t.Resource, micros(t.CreatedAt), micros(t.ExpiresAt),
		micros(t.RotatedAt), nilIfEmpty(t.Retry), t.RetryKey, t.JKT,
	}
}

func scanRefreshToken(r rowScanner) (storage.RefreshToken, error) {
	var (
		t                        storage.RefreshToken
		scopes                   string
		created, expiry, rotated int64
	)
	err := r.Scan(&t.Hash, &t.GrantID, &t.ClientID, &t.UserID, &scopes,
		&t.Resource, &created, &expiry, &rotated, &t.Retry, &t.RetryKey, &t.JKT)
	if err != nil {
		return storage.RefreshToken{}, err
	}
	t.Scopes = decodeList(scopes, &err)
	t.CreatedAt = fromMicros(created)
	t.ExpiresAt = fromMicros(expiry)
	t.RotatedAt = fromMicros(rotated)
	t.Retry = emptyToNil(t.Retry)
	return t, err
}

// CreateRefreshToken stores the first token of a grant;
// storage.ErrAlreadyExists if the hash is taken, storage.ErrNotFound if
// the grant or client does not exist.
func (s *Store) CreateRefreshToken(ctx context.Context, t storage.RefreshToken) error {
	if _, err := s.exec(ctx, s.w, refreshTokenInsert, refreshTokenArgs(t)...); err != nil {
		return fmt.Errorf("create refresh token: %w", err)
	}
	return nil
}

// GetRefreshToken returns the token, rotated or not, or
// storage.ErrNotFound. After RotateRefreshToken returned
// storage.ErrTokenReused, this is how the caller reads the stored old token
// (RotatedAt, Retry, RetryKey of the rotation that won).
func (s *Store) GetRefreshToken(ctx context.Context, hash string) (storage.RefreshToken, error) {
	t, err := queryRow(ctx, s, s.r, scanRefreshToken, refreshTokenSelect+" WHERE hash = ?", hash)
	if err != nil {
		return storage.RefreshToken{}, fmt.Errorf("get refresh token: %w", err)
	}
	return t, nil
}

// RotateRefreshToken marks oldHash rotated at next.CreatedAt, stores retry
// and retryKey on it and inserts next, in one transaction. The conditional
// UPDATE (rotated_at = 0) lets exactly one of any number of concurrent
// callers through.
//
// Deviation from the interface doc, which cannot be met with an
// error-only result: on reuse it returns an error wrapping
// storage.ErrTokenReused but not the old token; the caller reads it with
// GetRefreshToken(oldHash), which then shows the winner's RotatedAt, Retry
// and RetryKey. An unknown oldHash is storage.ErrNotFound; a next whose
// hash exists is storage.ErrAlreadyExists and rotates nothing.
func (s *Store) RotateRefreshToken(ctx context.Context, oldHash string, next storage.RefreshToken, retry []byte, retryKey string) error {
	if next.CreatedAt.IsZero() {
		// rotated_at = 0 means "current": rotating at the zero time would
		// leave the old token usable.
		return errors.New("rotate refresh token: next.CreatedAt is the zero time")
	}
	err := s.writeTx(ctx, true, func(tx *sql.Tx) error {
		n, err := s.exec(ctx, tx,
			"UPDATE refresh_tokens SET rotated_at = ?, retry = ?, retry_key = ? WHERE hash = ? AND rotated_at = 0",
			micros(next.CreatedAt), nilIfEmpty(retry), retryKey, oldHash)
		if err != nil {
			return err
		}
		if n == 0 {
			if _, err := queryRow(ctx, s, tx, scanRefreshToken, refreshTokenSelect+" WHERE hash = ?", oldHash); err != nil {
				return err
			}
			return storage.ErrTokenReused
		}
		_, err = s.exec(ctx, tx, refreshTokenInsert, refreshTokenArgs(next)...)
		return err
	})
	if err != nil {
		return fmt.Errorf("rotate refresh token: %w", err)
	}
	return nil
}
