package sqlstore

import (
	"context"
	"fmt"

	"github.com/gatehouse-mcp/gatehouse/internal/storage"
)

var sessionCols = []string{"id_hash", "user_id", "user_epoch", "auth_time", "created_at", "expires_at"}

var sessionSelect = "SELECT " + cols(sessionCols) + " FROM sessions"

func scanSession(r rowScanner) (storage.Session, error) {
	var (
		ss                        storage.Session
		authTime, created, expiry int64
	)
	if err := r.Scan(&ss.IDHash, &ss.UserID, &ss.UserEpoch, &authTime, &created, &expiry); err != nil {
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
		ss.IDHash, ss.UserID, ss.UserEpoch, micros(ss.AuthTime), micros(ss.CreatedAt), micros(ss.ExpiresAt))
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

// DeleteUserSessions deletes userID's sessions other than except (through
// the sessions_user_id index) and returns the count.
func (s *Store) DeleteUserSessions(ctx context.Context, userID, except string) (int64, error) {
	n, err := s.exec(ctx, s.w, "DELETE FROM sessions WHERE user_id = ? AND id_hash <> ?", userID, except)
	if err != nil {
		return 0, fmt.Errorf("delete user sessions: %w", err)
	}
	return n, nil
}
