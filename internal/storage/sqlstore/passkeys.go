package sqlstore

import (
	"context"
	"fmt"
	"time"

	"github.com/gatehouse-mcp/gatehouse/internal/storage"
)

// passkeyCols lists the passkeys columns, the order of passkeyArgs and
// scanPasskey.
var passkeyCols = []string{
	"id", "user_id", "public_key", "sign_count", "transports", "aaguid",
	"backup_eligible", "backup_state", "name", "created_at", "last_used_at",
}

var passkeySelect = "SELECT " + cols(passkeyCols) + " FROM passkeys"

func scanPasskey(r rowScanner) (storage.Passkey, error) {
	var (
		p                 storage.Passkey
		count, be, bs     int64
		created, used     int64
		transports        string
		publicKey, aaguid []byte
	)
	err := r.Scan(&p.ID, &p.UserID, &publicKey, &count, &transports, &aaguid, &be, &bs, &p.Name, &created, &used)
	if err != nil {
		return storage.Passkey{}, err
	}
	p.PublicKey, p.AAGUID = emptyToNil(publicKey), emptyToNil(aaguid)
	p.SignCount = uint32(count)
	p.Transports = decodeList(transports, &err)
	p.BackupEligible, p.BackupState = be != 0, bs != 0
	p.CreatedAt, p.LastUsedAt = fromMicros(created), fromMicros(used)
	return p, err
}

// CreatePasskey stores p; storage.ErrAlreadyExists for a taken id,
// storage.ErrNotFound for an unknown user (the foreign key).
func (s *Store) CreatePasskey(ctx context.Context, p storage.Passkey) error {
	_, err := s.exec(ctx, s.w, insertSQL("passkeys", passkeyCols),
		p.ID, p.UserID, p.PublicKey, int64(p.SignCount), encodeJSON(p.Transports), nilIfEmpty(p.AAGUID),
		boolInt(p.BackupEligible), boolInt(p.BackupState), p.Name, micros(p.CreatedAt), micros(p.LastUsedAt))
	if err != nil {
		return fmt.Errorf("create passkey: %w", err)
	}
	return nil
}

// GetPasskey returns the passkey id.
func (s *Store) GetPasskey(ctx context.Context, id string) (storage.Passkey, error) {
	p, err := queryRow(ctx, s, s.r, scanPasskey, passkeySelect+" WHERE id = ?", id)
	if err != nil {
		return storage.Passkey{}, fmt.Errorf("get passkey: %w", err)
	}
	return p, nil
}

// ListPasskeys returns userID's passkeys, oldest first.
func (s *Store) ListPasskeys(ctx context.Context, userID string) ([]storage.Passkey, error) {
	ps, err := queryAll(ctx, s, s.r, scanPasskey, passkeySelect+" WHERE user_id = ? ORDER BY created_at, id", userID)
	if err != nil {
		return nil, fmt.Errorf("list passkeys: %w", err)
	}
	return ps, nil
}

// UsePasskey records a sign-in with passkey id.
func (s *Store) UsePasskey(ctx context.Context, id string, signCount uint32, backupState bool, t time.Time) error {
	err := errNotFoundIfZero(s.exec(ctx, s.w, "UPDATE passkeys SET sign_count = ?, backup_state = ?, last_used_at = ? WHERE id = ?",
		int64(signCount), boolInt(backupState), micros(t), id))
	if err != nil {
		return fmt.Errorf("use passkey: %w", err)
	}
	return nil
}

// RenamePasskey names userID's passkey id. The user is part of the key:
// another user's passkey matches no row.
func (s *Store) RenamePasskey(ctx context.Context, userID, id, name string) error {
	err := errNotFoundIfZero(s.exec(ctx, s.w, "UPDATE passkeys SET name = ? WHERE id = ? AND user_id = ?", name, id, userID))
	if err != nil {
		return fmt.Errorf("rename passkey: %w", err)
	}
	return nil
}

// DeletePasskey deletes userID's passkey id; another user's matches no
// row.
func (s *Store) DeletePasskey(ctx context.Context, userID, id string) error {
	err := errNotFoundIfZero(s.exec(ctx, s.w, "DELETE FROM passkeys WHERE id = ? AND user_id = ?", id, userID))
	if err != nil {
		return fmt.Errorf("delete passkey: %w", err)
	}
	return nil
}
