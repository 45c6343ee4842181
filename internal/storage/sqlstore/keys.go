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
	"id", "algorithm", "private_key", "public_jwk", "created_at", "retired_at", "remove_after", "withdrawn_at",
}

func scanSigningKey(r rowScanner) (storage.SigningKey, error) {
	var (
		k                                   storage.SigningKey
		created, retired, remove, withdrawn int64
	)
	err := r.Scan(&k.ID, &k.Algorithm, &k.PrivateKey, &k.PublicJWK, &created, &retired, &remove, &withdrawn)
	if err != nil {
		return storage.SigningKey{}, err
	}
	k.PrivateKey = emptyToNil(k.PrivateKey)
	k.CreatedAt = fromMicros(created)
	k.RetiredAt = fromMicros(retired)
	k.RemoveAfter = fromMicros(remove)
	k.WithdrawnAt = fromMicros(withdrawn)
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

// ResealSigningKeys replaces the sealed private key of every key not
// withdrawn (a tombstone has none) with reseal's result, in one
// transaction; the table lock (Postgres) keeps rotations out meanwhile, so
// no key sealed under the old master key slips in.
func (s *Store) ResealSigningKeys(ctx context.Context, reseal func(storage.SigningKey) ([]byte, error)) (int, error) {
	n := 0
	err := s.writeTx(ctx, false, func(tx *sql.Tx) error {
		n = 0
		if s.d.LockTable != nil {
			if _, err := s.exec(ctx, tx, s.d.LockTable("signing_keys")); err != nil {
				return err
			}
		}
		ks, err := queryAll(ctx, s, tx, scanSigningKey, "SELECT "+cols(signingKeyCols)+" FROM signing_keys WHERE withdrawn_at = 0 ORDER BY id")
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
	if !next.WithdrawnAt.IsZero() {
		return errors.New("rotate signing key: next is withdrawn")
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
			micros(next.CreatedAt), micros(next.RetiredAt), micros(next.RemoveAfter), 0)
		return err
	})
	if err != nil {
		return fmt.Errorf("rotate signing key: %w", err)
	}
	return nil
}

var errNotRetired = errors.New("not retired")

// WithdrawSigningKey turns the retired key id into a tombstone (withdrawn
// at the time at, private key deleted) in one transaction; see
// storage.Keys. The table lock (Postgres) orders it with rotations, so the
// key cannot be read as retired here while a rotation is undoing that.
func (s *Store) WithdrawSigningKey(ctx context.Context, id string, at time.Time) (storage.SigningKey, error) {
	if at.IsZero() {
		// withdrawn_at = 0 means "not withdrawn".
		return storage.SigningKey{}, errors.New("withdraw signing key: the time is zero")
	}
	var k storage.SigningKey
	err := s.writeTx(ctx, true, func(tx *sql.Tx) error {
		if s.d.LockTable != nil {
			if _, err := s.exec(ctx, tx, s.d.LockTable("signing_keys")); err != nil {
				return err
			}
		}
		var err error
		k, err = queryRow(ctx, s, tx, scanSigningKey, "SELECT "+cols(signingKeyCols)+" FROM signing_keys WHERE id = ?", id)
		switch {
		case err != nil:
			return err
		case !k.WithdrawnAt.IsZero():
			return storage.ErrWithdrawn
		case k.RetiredAt.IsZero():
			return errNotRetired // not storage.ErrConflict here: writeTx would retry it
		}
		if _, err := s.exec(ctx, tx, "UPDATE signing_keys SET withdrawn_at = ?, private_key = NULL WHERE id = ?", micros(at), id); err != nil {
			return err
		}
		k.WithdrawnAt, k.PrivateKey = fromMicros(micros(at)), nil
		return nil
	})
	switch {
	case errors.Is(err, storage.ErrWithdrawn):
		return k, err
	case errors.Is(err, errNotRetired):
		return storage.SigningKey{}, fmt.Errorf("withdraw signing key %s: %w: it is not retired (it signs, or is about to): rotate first", id, storage.ErrConflict)
	case err != nil:
		return storage.SigningKey{}, fmt.Errorf("withdraw signing key %s: %w", id, err)
	}
	return k, nil
}
