package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"time"

	"github.com/gatehouse-mcp/gatehouse/internal/storage"
)

// Config configures a [Store].
type Config struct {
	// Writer runs every statement that writes, and every transaction.
	Writer *sql.DB
	// Reader runs plain reads. Nil means Writer. SQLite gives a separate
	// pool so reads do not queue behind its single writer connection.
	Reader *sql.DB
	// Dialect adapts queries and errors to the database.
	Dialect Dialect
	// Migrations holds the dialect's numbered NNNN_name.sql files for
	// [Store.Migrate] and [Store.MigrationStatus]. Nil means none.
	Migrations fs.FS
	// Now is the clock for the few operations whose interface takes no
	// time (Replay.UseOnce, migration timestamps). Required: backends set
	// it from their Options, defaulting to time.Now only in Open.
	Now func() time.Time
}

// Store implements storage.Store on database/sql. Create it with [New].
type Store struct {
	w, r       *sql.DB
	d          Dialect
	migrations fs.FS
	now        func() time.Time
}

var _ storage.Store = (*Store)(nil)

// New returns a Store over the pools in cfg. It does not migrate; the
// Store owns the pools and closes them in [Store.Close].
func New(cfg Config) (*Store, error) {
	if cfg.Writer == nil {
		return nil, errors.New("sqlstore: Config.Writer is nil")
	}
	if cfg.Now == nil {
		return nil, errors.New("sqlstore: Config.Now is nil")
	}
	r := cfg.Reader
	if r == nil {
		r = cfg.Writer
	}
	return &Store{w: cfg.Writer, r: r, d: cfg.Dialect, migrations: cfg.Migrations, now: cfg.Now}, nil
}

// DB returns the writer pool, for backends and tests that need raw access.
func (s *Store) DB() *sql.DB { return s.w }

// Ping checks that both pools reach the database.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.w.PingContext(ctx); err != nil {
		return fmt.Errorf("ping: %w", err)
	}
	if s.r != s.w {
		if err := s.r.PingContext(ctx); err != nil {
			return fmt.Errorf("ping reader: %w", err)
		}
	}
	return nil
}

// Close closes the pools.
func (s *Store) Close() error {
	var errs []error
	if s.r != s.w {
		errs = append(errs, s.r.Close())
	}
	errs = append(errs, s.w.Close())
	return errors.Join(errs...)
}

// querier is what *sql.DB and *sql.Tx share.
type querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// rowScanner is what *sql.Row and *sql.Rows share.
type rowScanner interface {
	Scan(dest ...any) error
}

// mapErr turns sql.ErrNoRows into storage.ErrNotFound and lets the dialect
// map driver errors.
func (s *Store) mapErr(err error) error {
	if errors.Is(err, sql.ErrNoRows) {
		return storage.ErrNotFound
	}
	return s.d.mapError(err)
}

// exec runs a statement and returns the number of affected rows.
func (s *Store) exec(ctx context.Context, q querier, query string, args ...any) (int64, error) {
	res, err := q.ExecContext(ctx, s.d.rebind(query), args...)
	if err != nil {
		return 0, s.mapErr(err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, s.mapErr(err)
	}
	return n, nil
}

// queryRow runs a query expected to return at most one row and scans it
// with scan; no row is storage.ErrNotFound.
func queryRow[T any](ctx context.Context, s *Store, q querier, scan func(rowScanner) (T, error), query string, args ...any) (T, error) {
	v, err := scan(q.QueryRowContext(ctx, s.d.rebind(query), args...))
	return v, s.mapErr(err)
}

// queryAll runs a query and scans every row with scan.
func queryAll[T any](ctx context.Context, s *Store, q querier, scan func(rowScanner) (T, error), query string, args ...any) ([]T, error) {
	rows, err := q.QueryContext(ctx, s.d.rebind(query), args...)
	if err != nil {
		return nil, s.mapErr(err)
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, s.mapErr(err)
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, s.mapErr(err)
	}
	return out, nil
}

// maxAttempts bounds how often a transaction that lost a race to a
// concurrent writer (storage.ErrConflict: serialization failure, deadlock,
// lock timeout) is run again.
const maxAttempts = 4

// writeTx runs fn in a write transaction and commits it. With retry, a
// transaction that fails with storage.ErrConflict is run again a few times:
// only for fn that are safe to repeat, which excludes caller closures,
// whose side effects are unknown.
func (s *Store) writeTx(ctx context.Context, retry bool, fn func(tx *sql.Tx) error) error {
	for attempt := 1; ; attempt++ {
		err := s.tryTx(ctx, fn)
		if err == nil || !retry || attempt >= maxAttempts || !errors.Is(err, storage.ErrConflict) || ctx.Err() != nil {
			return err
		}
	}
}

func (s *Store) tryTx(ctx context.Context, fn func(tx *sql.Tx) error) (err error) {
	var tx *sql.Tx
	if s.d.BeginWrite != nil {
		tx, err = s.d.BeginWrite(ctx, s.w)
	} else {
		tx, err = s.w.BeginTx(ctx, nil)
	}
	if err != nil {
		return fmt.Errorf("begin: %w", s.mapErr(err))
	}
	committed := false
	defer func() {
		if !committed {
			// The rollback error adds nothing to fn's error: the
			// transaction is void either way.
			_ = tx.Rollback()
		}
	}()
	if err := fn(tx); err != nil {
		return err
	}
	committed = true
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", s.mapErr(err))
	}
	return nil
}

// micros encodes t as unix microseconds; the zero time is 0.
func micros(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMicro()
}

// fromMicros decodes micros: 0 is the zero time, anything else a UTC time.
func fromMicros(v int64) time.Time {
	if v == 0 {
		return time.Time{}
	}
	return time.UnixMicro(v).UTC()
}

// encodeJSON encodes v, whose types (string slices, []storage.Scope) cannot
// fail to marshal.
func encodeJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("sqlstore: encode %T: %v", v, err))
	}
	return string(b)
}

// decodeList decodes a JSON string list; "null" (and, defensively, "")
// decode to nil.
func decodeList(s string, errp *error) []string {
	if s == "" || s == "null" {
		return nil
	}
	var v []string
	if err := json.Unmarshal([]byte(s), &v); err != nil && *errp == nil {
		*errp = fmt.Errorf("decode string list: %w", err)
	}
	return v
}

// nilIfEmpty stores empty byte slices as NULL so both backends read nil.
func nilIfEmpty(b []byte) any {
	if len(b) == 0 {
		return nil
	}
	return b
}

func emptyToNil(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return b
}

// cols joins column names for SELECT and INSERT lists.
func cols(names []string) string { return strings.Join(names, ", ") }

// placeholders returns "?, ?, …" for n values.
func placeholders(n int) string {
	return strings.TrimSuffix(strings.Repeat("?, ", n), ", ")
}

// insertSQL returns an INSERT of all names into table.
func insertSQL(table string, names []string) string {
	return "INSERT INTO " + table + " (" + cols(names) + ") VALUES (" + placeholders(len(names)) + ")"
}

// setSQL returns "a = ?, b = ?" for names.
func setSQL(names []string) string {
	parts := make([]string, len(names))
	for i, n := range names {
		parts[i] = n + " = ?"
	}
	return strings.Join(parts, ", ")
}

// excludedSQL returns "a = excluded.a, …" for an upsert that replaces names.
func excludedSQL(names []string) string {
	parts := make([]string, len(names))
	for i, n := range names {
		parts[i] = n + " = excluded." + n
	}
	return strings.Join(parts, ", ")
}
