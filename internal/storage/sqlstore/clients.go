package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/gatehouse-mcp/gatehouse/internal/storage"
)

// clientCols lists the clients columns; id first, the order of clientArgs
// and scanClient.
var clientCols = []string{
	"id", "secret_hash", "secret_expires_at", "name", "redirect_uris",
	"grant_types", "response_types", "token_endpoint_auth_method", "scopes",
	"application_type", "jwks", "jwks_uri", "origin",
	"registration_token_hash", "metadata", "created_at", "updated_at",
	"last_used_at", "token_count", "reset_at", "dpop_bound",
}

var (
	clientSelect = "SELECT " + cols(clientCols) + " FROM clients"
	clientInsert = insertSQL("clients", clientCols)
	clientUpdate = "UPDATE clients SET " + setSQL(clientCols[1:]) + " WHERE id = ?"
)

func clientArgs(c storage.Client) []any {
	return []any{
		c.ID, c.SecretHash, micros(c.SecretExpiresAt), c.Name,
		encodeJSON(c.RedirectURIs), encodeJSON(c.GrantTypes),
		encodeJSON(c.ResponseTypes), c.TokenEndpointAuthMethod,
		encodeJSON(c.Scopes), c.ApplicationType, c.JWKS, c.JWKSURI,
		string(c.Origin), c.RegistrationTokenHash, c.Metadata,
		micros(c.CreatedAt), micros(c.UpdatedAt), micros(c.LastUsedAt),
		c.TokenCount, micros(c.ResetAt), boolInt(c.DPoPBound),
	}
}

func scanClient(r rowScanner) (storage.Client, error) {
	var (
		c                                      storage.Client
		secretExp, created, updated, lastUsed  int64
		reset, dpopBound                       int64
		redirect, grants, responses, scopes, o string
	)
	err := r.Scan(&c.ID, &c.SecretHash, &secretExp, &c.Name, &redirect,
		&grants, &responses, &c.TokenEndpointAuthMethod, &scopes,
		&c.ApplicationType, &c.JWKS, &c.JWKSURI, &o,
		&c.RegistrationTokenHash, &c.Metadata, &created, &updated,
		&lastUsed, &c.TokenCount, &reset, &dpopBound)
	if err != nil {
		return storage.Client{}, err
	}
	c.SecretExpiresAt = fromMicros(secretExp)
	c.RedirectURIs = decodeList(redirect, &err)
	c.GrantTypes = decodeList(grants, &err)
	c.ResponseTypes = decodeList(responses, &err)
	c.Scopes = decodeList(scopes, &err)
	c.Origin = storage.ClientOrigin(o)
	c.CreatedAt = fromMicros(created)
	c.UpdatedAt = fromMicros(updated)
	c.LastUsedAt = fromMicros(lastUsed)
	c.ResetAt = fromMicros(reset)
	c.DPoPBound = dpopBound != 0
	return c, err
}

// CreateClient stores a new client; storage.ErrAlreadyExists if the ID is
// taken.
func (s *Store) CreateClient(ctx context.Context, c storage.Client) error {
	if _, err := s.exec(ctx, s.w, clientInsert, clientArgs(c)...); err != nil {
		return fmt.Errorf("create client: %w", err)
	}
	return nil
}

// GetClient returns the client id, or storage.ErrNotFound.
func (s *Store) GetClient(ctx context.Context, id string) (storage.Client, error) {
	c, err := queryRow(ctx, s, s.r, scanClient, clientSelect+" WHERE id = ?", id)
	if err != nil {
		return storage.Client{}, fmt.Errorf("get client: %w", err)
	}
	return c, nil
}

// ListClients returns every client ordered by ID.
func (s *Store) ListClients(ctx context.Context) ([]storage.Client, error) {
	cs, err := queryAll(ctx, s, s.r, scanClient, clientSelect+" ORDER BY id")
	if err != nil {
		return nil, fmt.Errorf("list clients: %w", err)
	}
	return cs, nil
}

// CountClients reads the count of origin's clients from client_counts,
// which triggers on clients keep (migration 0003_client_counts.sql): one
// row read however many clients there are. An origin without a row has
// none.
func (s *Store) CountClients(ctx context.Context, origin storage.ClientOrigin) (int, error) {
	var n int64
	err := s.mapErr(s.queryRowContext(ctx, s.r, "SELECT n FROM client_counts WHERE origin = ?", string(origin)).Scan(&n))
	if errors.Is(err, storage.ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("count clients: %w", err)
	}
	return int(max(n, 0)), nil
}

// UpdateClient loads the client (locking it), applies fn and stores the
// result in one transaction; a change of redirect URIs deletes the
// client's consents in it too. If fn fails the row is left unchanged and
// fn's error is returned wrapped. fn must not use the Store (on SQLite the
// only writer connection is busy running it) and may not change the ID.
func (s *Store) UpdateClient(ctx context.Context, id string, fn func(storage.Client) (storage.Client, error)) (storage.Client, error) {
	c, err := s.updateClient(ctx, id, nil, fn)
	if err != nil {
		return storage.Client{}, fmt.Errorf("update client: %w", err)
	}
	return c, nil
}

// ResetClient is UpdateClient that also deletes, in the same transaction,
// the client's codes, grants, refresh tokens and consents (what
// DeleteClient deletes), keeping the client, and sets its ResetAt to t.
func (s *Store) ResetClient(ctx context.Context, id string, t time.Time, fn func(storage.Client) (storage.Client, error)) (storage.Client, error) {
	c, err := s.updateClient(ctx, id, &t, fn)
	if err != nil {
		return storage.Client{}, fmt.Errorf("reset client: %w", err)
	}
	return c, nil
}

// clientDependents deletes what was issued to a client, dependents first;
// every ? is the client id.
var clientDependents = []string{
	"DELETE FROM refresh_tokens WHERE client_id = ? OR grant_id IN (SELECT id FROM grants WHERE client_id = ?)",
	"DELETE FROM grants WHERE client_id = ?",
	"DELETE FROM auth_codes WHERE client_id = ?",
	"DELETE FROM consents WHERE client_id = ?",
}

// updateClient applies fn to the locked client; with reset set, it also
// deletes what was issued to it and sets ResetAt (ResetClient). ResetAt is
// the store's: whatever fn returns, it is kept or set here.
func (s *Store) updateClient(ctx context.Context, id string, reset *time.Time, fn func(storage.Client) (storage.Client, error)) (storage.Client, error) {
	var out storage.Client
	err := s.writeTx(ctx, false, func(tx *sql.Tx) error {
		old, err := queryRow(ctx, s, tx, scanClient, clientSelect+" WHERE id = ?"+s.d.ForUpdate, id)
		if err != nil {
			return err
		}
		c, err := fn(old)
		if err != nil {
			return err
		}
		if c.ID != id {
			return fmt.Errorf("client id cannot change (%q to %q)", id, c.ID)
		}
		c.ResetAt = old.ResetAt
		switch {
		case reset != nil:
			c.ResetAt = *reset
			if err := s.runAll(ctx, tx, id, clientDependents...); err != nil {
				return err
			}
		case !slices.Equal(old.RedirectURIs, c.RedirectURIs):
			if err := s.runAll(ctx, tx, id, "DELETE FROM consents WHERE client_id = ?"); err != nil {
				return err
			}
		}
		args := append(clientArgs(c)[1:], id)
		if _, err := s.exec(ctx, tx, clientUpdate, args...); err != nil {
			return err
		}
		out = c
		return nil
	})
	return out, err
}

// DeleteClient removes the client and, explicitly in the same transaction
// (foreign keys only back this up), its codes, grants, refresh tokens and
// consents.
func (s *Store) DeleteClient(ctx context.Context, id string) error {
	return s.DeleteClientIf(ctx, id, func(storage.Client) error { return nil })
}

// DeleteClientIf locks the client, runs check on it and, if it passes,
// deletes it as DeleteClient does, all in one transaction.
func (s *Store) DeleteClientIf(ctx context.Context, id string, check func(storage.Client) error) error {
	// Retried on a conflict: check runs again on the row as it then is.
	err := s.writeTx(ctx, true, func(tx *sql.Tx) error {
		c, err := queryRow(ctx, s, tx, scanClient, clientSelect+" WHERE id = ?"+s.d.ForUpdate, id)
		if err != nil {
			return err
		}
		if err := check(c); err != nil {
			return err
		}
		return s.cascade(ctx, tx, id, append(slices.Clone(clientDependents), "DELETE FROM clients WHERE id = ?")...)
	})
	if err != nil {
		return fmt.Errorf("delete client: %w", err)
	}
	return nil
}

// TouchClient records that the client obtained a token at t: it counts the
// token and moves LastUsedAt forward (never back, since replicas may
// report out of order).
func (s *Store) TouchClient(ctx context.Context, id string, t time.Time) error {
	ts := micros(t)
	n, err := s.exec(ctx, s.w, `UPDATE clients SET token_count = token_count + 1,
		last_used_at = CASE WHEN last_used_at < ? THEN ? ELSE last_used_at END
		WHERE id = ?`, ts, ts, id)
	if err == nil && n == 0 {
		err = storage.ErrNotFound
	}
	if err != nil {
		return fmt.Errorf("touch client: %w", err)
	}
	return nil
}

// userCols lists the users columns, id first.
var userCols = []string{"id", "username", "password_hash", "epoch", "disabled_at", "created_at", "updated_at"}

var (
	userSelect = "SELECT " + cols(userCols) + " FROM users"
	userInsert = insertSQL("users", userCols)
	userUpdate = "UPDATE users SET " + setSQL(userCols[1:]) + " WHERE id = ?"
)

func userArgs(u storage.User) []any {
	return []any{u.ID, u.Username, u.PasswordHash, u.Epoch, micros(u.DisabledAt), micros(u.CreatedAt), micros(u.UpdatedAt)}
}

func scanUser(r rowScanner) (storage.User, error) {
	var u storage.User
	var disabled, created, updated int64
	if err := r.Scan(&u.ID, &u.Username, &u.PasswordHash, &u.Epoch, &disabled, &created, &updated); err != nil {
		return storage.User{}, err
	}
	u.DisabledAt = fromMicros(disabled)
	u.CreatedAt = fromMicros(created)
	u.UpdatedAt = fromMicros(updated)
	return u, nil
}

// CreateUser stores a new user; storage.ErrAlreadyExists if the ID or the
// username is taken.
func (s *Store) CreateUser(ctx context.Context, u storage.User) error {
	if _, err := s.exec(ctx, s.w, userInsert, userArgs(u)...); err != nil {
		return fmt.Errorf("create user: %w", err)
	}
	return nil
}

// GetUser returns the user id, or storage.ErrNotFound.
func (s *Store) GetUser(ctx context.Context, id string) (storage.User, error) {
	u, err := queryRow(ctx, s, s.r, scanUser, userSelect+" WHERE id = ?", id)
	if err != nil {
		return storage.User{}, fmt.Errorf("get user: %w", err)
	}
	return u, nil
}

// GetUserByName returns the user with username (exact, case-sensitive
// match), or storage.ErrNotFound.
func (s *Store) GetUserByName(ctx context.Context, username string) (storage.User, error) {
	u, err := queryRow(ctx, s, s.r, scanUser, userSelect+" WHERE username = ?", username)
	if err != nil {
		return storage.User{}, fmt.Errorf("get user by name: %w", err)
	}
	return u, nil
}

// ListUsers returns every user ordered by username.
func (s *Store) ListUsers(ctx context.Context) ([]storage.User, error) {
	us, err := queryAll(ctx, s, s.r, scanUser, userSelect+" ORDER BY username")
	if err != nil {
		return nil, fmt.Errorf("list users: %w", err)
	}
	return us, nil
}

// UpdateUser loads the user (locking it), applies fn and stores the result
// in one transaction; see [Store.UpdateClient] for the rules fn follows.
// Renaming to a taken username is storage.ErrAlreadyExists.
func (s *Store) UpdateUser(ctx context.Context, id string, fn func(storage.User) (storage.User, error)) (storage.User, error) {
	u, err := s.updateUser(ctx, id, nil, fn)
	if err != nil {
		return storage.User{}, fmt.Errorf("update user: %w", err)
	}
	return u, nil
}

// ResetUser is UpdateUser that also advances the user's epoch and, in the
// same transaction, deletes their sessions, consents and codes and revokes
// their grants at t.
func (s *Store) ResetUser(ctx context.Context, id string, t time.Time, fn func(storage.User) (storage.User, error)) (storage.User, error) {
	u, err := s.updateUser(ctx, id, &t, fn)
	if err != nil {
		return storage.User{}, fmt.Errorf("reset user: %w", err)
	}
	return u, nil
}

// updateUser applies fn to the locked user; with reset set, it also ends
// what the user holds (ResetUser).
func (s *Store) updateUser(ctx context.Context, id string, reset *time.Time, fn func(storage.User) (storage.User, error)) (storage.User, error) {
	var out storage.User
	err := s.writeTx(ctx, false, func(tx *sql.Tx) error {
		old, err := queryRow(ctx, s, tx, scanUser, userSelect+" WHERE id = ?"+s.d.ForUpdate, id)
		if err != nil {
			return err
		}
		u, err := fn(old)
		if err != nil {
			return err
		}
		if u.ID != id {
			return fmt.Errorf("user id cannot change (%q to %q)", id, u.ID)
		}
		if reset != nil {
			u.Epoch = old.Epoch + 1
			if err := s.runAll(ctx, tx, id,
				"DELETE FROM sessions WHERE user_id = ?",
				"DELETE FROM consents WHERE user_id = ?",
				"DELETE FROM auth_codes WHERE user_id = ?",
			); err != nil {
				return err
			}
			if _, err := s.exec(ctx, tx, "UPDATE grants SET revoked_at = ? WHERE user_id = ? AND revoked_at = 0", micros(*reset), id); err != nil {
				return err
			}
		}
		args := append(userArgs(u)[1:], id)
		if _, err := s.exec(ctx, tx, userUpdate, args...); err != nil {
			return err
		}
		out = u
		return nil
	})
	return out, err
}

// DeleteUser removes the user and, explicitly in the same transaction, their
// sessions, consents, codes, grants, refresh tokens, groups (of both
// sources), upstream claims and upstream identities.
func (s *Store) DeleteUser(ctx context.Context, id string) error {
	err := s.writeTx(ctx, true, func(tx *sql.Tx) error {
		return s.cascade(ctx, tx, id,
			"DELETE FROM refresh_tokens WHERE user_id = ? OR grant_id IN (SELECT id FROM grants WHERE user_id = ?)",
			"DELETE FROM grants WHERE user_id = ?",
			"DELETE FROM auth_codes WHERE user_id = ?",
			"DELETE FROM consents WHERE user_id = ?",
			"DELETE FROM sessions WHERE user_id = ?",
			"DELETE FROM user_groups WHERE user_id = ?",
			"DELETE FROM upstream_groups WHERE user_id = ?",
			"DELETE FROM upstream_claims WHERE user_id = ?",
			"DELETE FROM upstream_identities WHERE user_id = ?",
			"DELETE FROM passkeys WHERE user_id = ?",
			"DELETE FROM users WHERE id = ?",
		)
	})
	if err != nil {
		return fmt.Errorf("delete user: %w", err)
	}
	return nil
}

// cascade runs deletes whose every ? is id; the last one deletes the owner
// and must match a row, else storage.ErrNotFound. Dependents go first so a
// foreign key never sees a dangling row mid-transaction.
func (s *Store) cascade(ctx context.Context, tx *sql.Tx, id string, deletes ...string) error {
	if err := s.runAll(ctx, tx, id, deletes[:len(deletes)-1]...); err != nil {
		return err
	}
	return errNotFoundIfZero(s.exec(ctx, tx, deletes[len(deletes)-1], idArgs(deletes[len(deletes)-1], id)...))
}

// runAll runs statements whose every ? is id, in order.
func (s *Store) runAll(ctx context.Context, tx *sql.Tx, id string, stmts ...string) error {
	for _, q := range stmts {
		if _, err := s.exec(ctx, tx, q, idArgs(q, id)...); err != nil {
			return err
		}
	}
	return nil
}

// idArgs is id once for every ? of q.
func idArgs(q, id string) []any {
	args := make([]any, strings.Count(q, "?"))
	for i := range args {
		args[i] = id
	}
	return args
}

// errNotFoundIfZero returns err, or storage.ErrNotFound when a keyed delete
// or update matched no row.
func errNotFoundIfZero(n int64, err error) error {
	if err != nil {
		return err
	}
	if n == 0 {
		return storage.ErrNotFound
	}
	return nil
}
