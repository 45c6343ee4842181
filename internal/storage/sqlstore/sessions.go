package sqlstore

import (
	"context"
	"fmt"

	"github.com/gatehouse-mcp/gatehouse/internal/storage"
)

var sessionCols = []string{"id_hash", "user_id", "auth_time", "created_at", "expires_at"}

var sessionSelect = "SELECT " + cols(sessionCols) + " FROM sessions"

func scanSession(r rowScanner) (storage.Session, error) {
	var (
		ss                        storage.Session
		authTime, created, expiry int64
	)
	if err := r.Scan(&ss.IDHash, &ss.UserID, &authTime, &created, &expiry); err != nil {
		return storage.Session{}, err
	}
	ss.AuthTime = fromMicros(authTime)
	ss.CreatedAt = fromMicros(created)
	ss.ExpiresAt = fromMicros(expiry)
	return ss, nil
}

// CreateSession stores a session; storage.ErrAlreadyExists if the hash is
// taken, storage.ErrNotFound if the user does not exist.
func (s *Store) CreateSession(ctx context.Context, ss storage.Session) error {
	_, err := s.exec(ctx, s.w, insertSQL("sessions", sessionCols),
		ss.IDHash, ss.UserID, micros(ss.AuthTime), micros(ss.CreatedAt), micros(ss.ExpiresAt))
	if err != nil {
		return fmt.Errorf("create session: %w", err)
	}
	return nil
}

// GetSession returns the session, expired or not (the caller decides), or
// storage.ErrNotFound.
func (s *Store) GetSession(ctx context.Context, idHash string) (storage.Session, error) {
	ss, err := queryRow(ctx, s, s.r, scanSession, sessionSelect+" WHERE id_hash = ?", idHash)
	if err != nil {
		return storage.Session{}, fmt.Errorf("get session: %w", err)
	}
	return ss, nil
}

// DeleteSession removes the session; storage.ErrNotFound if there is none.
func (s *Store) DeleteSession(ctx context.Context, idHash string) error {
	err := errNotFoundIfZero(s.exec(ctx, s.w, "DELETE FROM sessions WHERE id_hash = ?", idHash))
	if err != nil {
		return fmt.Errorf("delete session: %w", err)
	}
	return nil
}

var authRequestCols = []string{
	"id", "client_id", "redirect_uri", "state", "scopes", "resource",
	"code_challenge", "code_challenge_method", "nonce", "prompt",
	"created_at", "expires_at",
}

var authRequestSelect = "SELECT " + cols(authRequestCols) + " FROM auth_requests"

func scanAuthRequest(r rowScanner) (storage.AuthRequest, error) {
	var (
		ar              storage.AuthRequest
		scopes          string
		created, expiry int64
	)
	err := r.Scan(&ar.ID, &ar.ClientID, &ar.RedirectURI, &ar.State, &scopes,
		&ar.Resource, &ar.CodeChallenge, &ar.CodeChallengeMethod, &ar.Nonce,
		&ar.Prompt, &created, &expiry)
	if err != nil {
		return storage.AuthRequest{}, err
	}
	ar.Scopes = decodeList(scopes, &err)
	ar.CreatedAt = fromMicros(created)
	ar.ExpiresAt = fromMicros(expiry)
	return ar, err
}

// CreateAuthRequest stores a pending authorization request;
// storage.ErrAlreadyExists if the ID is taken, storage.ErrNotFound if the
// client does not exist.
func (s *Store) CreateAuthRequest(ctx context.Context, r storage.AuthRequest) error {
	_, err := s.exec(ctx, s.w, insertSQL("auth_requests", authRequestCols),
		r.ID, r.ClientID, r.RedirectURI, r.State, encodeJSON(r.Scopes),
		r.Resource, r.CodeChallenge, r.CodeChallengeMethod, r.Nonce,
		r.Prompt, micros(r.CreatedAt), micros(r.ExpiresAt))
	if err != nil {
		return fmt.Errorf("create auth request: %w", err)
	}
	return nil
}

// GetAuthRequest returns the request, expired or not, or
// storage.ErrNotFound.
func (s *Store) GetAuthRequest(ctx context.Context, id string) (storage.AuthRequest, error) {
	r, err := queryRow(ctx, s, s.r, scanAuthRequest, authRequestSelect+" WHERE id = ?", id)
	if err != nil {
		return storage.AuthRequest{}, fmt.Errorf("get auth request: %w", err)
	}
	return r, nil
}

// DeleteAuthRequest removes the request; storage.ErrNotFound if there is
// none, so of two replicas finishing the same request only one sees nil.
func (s *Store) DeleteAuthRequest(ctx context.Context, id string) error {
	err := errNotFoundIfZero(s.exec(ctx, s.w, "DELETE FROM auth_requests WHERE id = ?", id))
	if err != nil {
		return fmt.Errorf("delete auth request: %w", err)
	}
	return nil
}
