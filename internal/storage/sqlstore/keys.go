package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/gatehouse-mcp/gatehouse/internal/storage"
)

var signingKeyCols = []string{
	"id", "algorithm", "private_key", "public_jwk", "created_at", "retired_at", "remove_after",
}

func scanSigningKey(r rowScanner) (storage.SigningKey, error) {
	var (
		k                        storage.SigningKey
		created, retired, remove int64
	)
	err := r.Scan(&k.ID, &k.Algorithm, &k.PrivateKey, &k.PublicJWK, &created, &retired, &remove)
	if err != nil {
		return storage.SigningKey{}, err
	}
	k.PrivateKey = emptyToNil(k.PrivateKey)
	k.CreatedAt = fromMicros(created)
	k.RetiredAt = fromMicros(retired)
	k.RemoveAfter = fromMicros(remove)
	return k, nil
}

// ListSigningKeys returns every key, newest first (ties by ID, descending).
func (s *Store) ListSigningKeys(ctx context.Context) ([]storage.SigningKey, error) {
	ks, err := queryAll(ctx, s, s.r, scanSigningKey,
		"SELECT "+cols(signingKeyCols)+" FROM signing_keys ORDER BY created_at DESC, id DESC")
	if err != nil {
		return nil, fmt.Errorf("list signing keys: %w", err)
	}
	return ks, nil
}

// ResealSigningKeys replaces every key's sealed private key with reseal's
// result, in one transaction; the table lock (Postgres) keeps rotations
// out meanwhile, so no key sealed under the old master key slips in.
func (s *Store) ResealSigningKeys(ctx context.Context, reseal func(storage.SigningKey) ([]byte, error)) (int, error) {
	n := 0
	err := s.writeTx(ctx, false, func(tx *sql.Tx) error {
		n = 0
		if s.d.LockTable != nil {
			if _, err := s.exec(ctx, tx, s.d.LockTable("signing_keys")); err != nil {
				return err
			}
		}
		ks, err := queryAll(ctx, s, tx, scanSigningKey, "SELECT "+cols(signingKeyCols)+" FROM signing_keys ORDER BY id")
		if err != nil {
			return err
		}
		for _, k := range ks {
			sealed, err := reseal(k)
			if err != nil {
				return fmt.Errorf("key %s: %w", k.ID, err)
			}
			if _, err := s.exec(ctx, tx, "UPDATE signing_keys SET private_key = ? WHERE id = ?", nilIfEmpty(sealed), k.ID); err != nil {
				return err
			}
			n++
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("reseal signing keys: %w", err)
	}
	return n, nil
}

// RotateSigningKey retires every active key at next.CreatedAt, keeping it
// published until removeAfter, and inserts next as the active key, in one
// transaction. The table lock (Postgres) makes concurrent rotations run one
// after the other, so exactly one key is ever active; the first rotation on
// an empty table simply creates the first key.
func (s *Store) RotateSigningKey(ctx context.Context, next storage.SigningKey, removeAfter time.Time) error {
	if next.CreatedAt.IsZero() {
		// retired_at = 0 means "active": retiring at the zero time would
		// leave two active keys.
		return errors.New("rotate signing key: next.CreatedAt is the zero time")
	}
	err := s.writeTx(ctx, true, func(tx *sql.Tx) error {
		if s.d.LockTable != nil {
			if _, err := s.exec(ctx, tx, s.d.LockTable("signing_keys")); err != nil {
				return err
			}
		}
		if _, err := s.exec(ctx, tx,
			"UPDATE signing_keys SET retired_at = ?, remove_after = ? WHERE retired_at = 0",
			micros(next.CreatedAt), micros(removeAfter)); err != nil {
			return err
		}
		_, err := s.exec(ctx, tx, insertSQL("signing_keys", signingKeyCols),
			next.ID, next.Algorithm, nilIfEmpty(next.PrivateKey), next.PublicJWK,
			micros(next.CreatedAt), micros(next.RetiredAt), micros(next.RemoveAfter))
		return err
	})
	if err != nil {
		return fmt.Errorf("rotate signing key: %w", err)
	}
	return nil
}
