package clientreg

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/gatehouse-mcp/gatehouse/internal/storage"
)

// Initial access tokens (RFC 7591 §3) let an operator hand out the right
// to register a client when registration.mode is token.
//
// They are kept in the replay table (storage.Replay), which the storage
// interface already has and garbage-collects, instead of a table of their
// own. Only the SHA-256 of a token is stored, under these keys:
//
//	iat:<hash>          the token is valid until the row's expiry (zero: forever)
//	iat-once:<hash>     the token is single-use
//	iat-used:<hash>     a single-use token was used
//	iat-revoked:<hash>  the operator revoked the token (kept forever)
//
// The price of reusing the replay table: tokens cannot be listed, and a
// revocation is a marker rather than a deletion. The token's id, printed
// at creation and accepted by revoke, is its hash in hex.
const iatPrefix = "ghiat_"

// ErrInvalidInitialAccessToken means the token is unknown, expired,
// revoked or already used.
var ErrInvalidInitialAccessToken = errors.New("the initial access token is unknown, expired, revoked or already used")

// iatHash returns the hex SHA-256 of a token: its id and storage key.
func iatHash(tok string) string {
	sum := sha256.Sum256([]byte(tok))
	return hex.EncodeToString(sum[:])
}

// CreateInitialAccessToken creates a token valid for ttl from now (ttl <=
// 0: until revoked), single-use if singleUse. It returns the token, shown
// once, and its id. r nil means crypto/rand.
func CreateInitialAccessToken(ctx context.Context, st storage.Replay, r io.Reader, now time.Time, ttl time.Duration, singleUse bool) (tok, id string, err error) {
	if r == nil {
		r = rand.Reader
	}
	var b [32]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return "", "", fmt.Errorf("create initial access token: %w", err)
	}
	tok = iatPrefix + base64.RawURLEncoding.EncodeToString(b[:])
	id = iatHash(tok)
	var exp time.Time
	if ttl > 0 {
		exp = now.Add(ttl)
	}
	if singleUse {
		if err := st.UseOnce(ctx, "iat-once:"+id, exp); err != nil {
			return "", "", fmt.Errorf("create initial access token: %w", err)
		}
	}
	if err := st.UseOnce(ctx, "iat:"+id, exp); err != nil {
		return "", "", fmt.Errorf("create initial access token: %w", err)
	}
	return tok, id, nil
}

// RevokeInitialAccessToken revokes a token given the token itself or its
// id. Revoking twice is not an error; an unknown or expired token is.
func RevokeInitialAccessToken(ctx context.Context, st storage.Replay, now time.Time, tokenOrID string) error {
	id := strings.ToLower(tokenOrID)
	if strings.HasPrefix(tokenOrID, iatPrefix) {
		id = iatHash(tokenOrID)
	}
	ok, err := st.Seen(ctx, "iat:"+id, now)
	if err != nil {
		return fmt.Errorf("revoke initial access token: %w", err)
	}
	if !ok {
		return errors.New("no such initial access token (or it expired)")
	}
	err = st.UseOnce(ctx, "iat-revoked:"+id, time.Time{})
	if err != nil && !errors.Is(err, storage.ErrAlreadyExists) {
		return fmt.Errorf("revoke initial access token: %w", err)
	}
	return nil
}

// UseInitialAccessToken checks tok at now and, when consume is set and
// the token is single-use, consumes it (exactly one of concurrent callers
// succeeds). It returns ErrInvalidInitialAccessToken for a token that is
// unknown, expired, revoked or used.
func UseInitialAccessToken(ctx context.Context, st storage.Replay, tok string, now time.Time, consume bool) error {
	if !strings.HasPrefix(tok, iatPrefix) || len(tok) > 100 {
		return ErrInvalidInitialAccessToken
	}
	id := iatHash(tok)
	for _, k := range []struct {
		key  string
		want bool
	}{{"iat:" + id, true}, {"iat-revoked:" + id, false}} {
		seen, err := st.Seen(ctx, k.key, now)
		if err != nil {
			return fmt.Errorf("check initial access token: %w", err)
		}
		if seen != k.want {
			return ErrInvalidInitialAccessToken
		}
	}
	once, err := st.Seen(ctx, "iat-once:"+id, now)
	if err != nil {
		return fmt.Errorf("check initial access token: %w", err)
	}
	if !once {
		return nil
	}
	if !consume {
		used, err := st.Seen(ctx, "iat-used:"+id, now)
		if err != nil {
			return fmt.Errorf("check initial access token: %w", err)
		}
		if used {
			return ErrInvalidInitialAccessToken
		}
		return nil
	}
	// The used marker never expires, so garbage collection cannot revive
	// a used token.
	err = st.UseOnce(ctx, "iat-used:"+id, time.Time{})
	if errors.Is(err, storage.ErrAlreadyExists) {
		return ErrInvalidInitialAccessToken
	}
	if err != nil {
		return fmt.Errorf("use initial access token: %w", err)
	}
	return nil
}
