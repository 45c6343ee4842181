package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/gatehouse-mcp/gatehouse/internal/storage"
)

var authCodeCols = []string{
	"hash", "client_id", "user_id", "redirect_uri", "scopes", "resource",
	"code_challenge", "code_challenge_method", "nonce", "grant_id",
	"auth_time", "created_at", "expires_at", "consumed_at",
}

var authCodeSelect = "SELECT " + cols(authCodeCols) + " FROM auth_codes"

func scanAuthCode(r rowScanner) (storage.AuthCode, error) {
	var (
		c                                   storage.AuthCode
		scopes                              string
		authTime, created, expiry, consumed int64
	)
	err := r.Scan(&c.Hash, &c.ClientID, &c.UserID, &c.RedirectURI, &scopes,
		&c.Resource, &c.CodeChallenge, &c.CodeChallengeMethod, &c.Nonce,
		&c.GrantID, &authTime, &created, &expiry, &consumed)
	if err != nil {
		return storage.AuthCode{}, err
	}
	c.Scopes = decodeList(scopes, &err)
	c.AuthTime = fromMicros(authTime)
	c.CreatedAt = fromMicros(created)
	c.ExpiresAt = fromMicros(expiry)
	c.ConsumedAt = fromMicros(consumed)
	return c, err
}

// CreateAuthCode stores a code; storage.ErrAlreadyExists if the hash is
// taken, storage.ErrNotFound if the client or user does not exist.
func (s *Store) CreateAuthCode(ctx context.Context, c storage.AuthCode) error {
	_, err := s.exec(ctx, s.w, insertSQL("auth_codes", authCodeCols),
		c.Hash, c.ClientID, c.UserID, c.RedirectURI, encodeJSON(c.Scopes),
		c.Resource, c.CodeChallenge, c.CodeChallengeMethod, c.Nonce,
		c.GrantID, micros(c.AuthTime), micros(c.CreatedAt),
		micros(c.ExpiresAt), micros(c.ConsumedAt))
	if err != nil {
		return fmt.Errorf("create auth code: %w", err)
	}
	return nil
}

// ConsumeAuthCode marks the code used at now with one conditional UPDATE …
// RETURNING, so exactly one of any number of concurrent callers gets the
// row back. The others find the code already used and get the stored code
// (with ConsumedAt set) and an error wrapping storage.ErrConsumed; an
// unknown hash is storage.ErrNotFound. It does not check expiry: the
// caller compares ExpiresAt with its clock.
func (s *Store) ConsumeAuthCode(ctx context.Context, hash string, now time.Time) (storage.AuthCode, error) {
	if now.IsZero() {
		// 0 means "unused" at rest; consuming at the zero time would
		// leave the code redeemable.
		return storage.AuthCode{}, errors.New("consume auth code: now is the zero time")
	}
	var c storage.AuthCode
	err := s.writeTx(ctx, true, func(tx *sql.Tx) error {
		var err error
		c, err = queryRow(ctx, s, tx, scanAuthCode,
			"UPDATE auth_codes SET consumed_at = ? WHERE hash = ? AND consumed_at = 0 RETURNING "+cols(authCodeCols),
			micros(now), hash)
		if !errors.Is(err, storage.ErrNotFound) {
			return err
		}
		c, err = queryRow(ctx, s, tx, scanAuthCode, authCodeSelect+" WHERE hash = ?", hash)
		if err != nil {
			return err
		}
		return storage.ErrConsumed
	})
	switch {
	case errors.Is(err, storage.ErrConsumed):
		return c, fmt.Errorf("consume auth code: %w", err)
	case err != nil:
		return storage.AuthCode{}, fmt.Errorf("consume auth code: %w", err)
	}
	return c, nil
}
