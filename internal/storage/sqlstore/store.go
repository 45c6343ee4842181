package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"sync"
	"sync/atomic"
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
	stmts      stmtCache
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

// Close closes the prepared statements and the pools.
func (s *Store) Close() error {
	errs := s.stmts.close()
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
	res, err := s.execContext(ctx, q, query, args...)
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
	v, err := scan(s.queryRowContext(ctx, q, query, args...))
	return v, s.mapErr(err)
}

// queryAll runs a query and scans every row with scan.
func queryAll[T any](ctx context.Context, s *Store, q querier, scan func(rowScanner) (T, error), query string, args ...any) ([]T, error) {
	rows, err := s.queryContext(ctx, q, query, args...)
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

// execContext, queryContext and queryRowContext run query (with ?
// placeholders, rebound here) on q: through the prepared statement of
// [Store.stmt] when there is one, else as a plain query. Errors are the
// driver's, unmapped.
func (s *Store) execContext(ctx context.Context, q querier, query string, args ...any) (sql.Result, error) {
	query = s.d.rebind(query)
	if st := s.stmt(ctx, q, query); st != nil {
		return st.ExecContext(ctx, args...)
	}
	return q.ExecContext(ctx, query, args...)
}

func (s *Store) queryContext(ctx context.Context, q querier, query string, args ...any) (*sql.Rows, error) {
	query = s.d.rebind(query)
	if st := s.stmt(ctx, q, query); st != nil {
		return st.QueryContext(ctx, args...)
	}
	return q.QueryContext(ctx, query, args...)
}

func (s *Store) queryRowContext(ctx context.Context, q querier, query string, args ...any) *sql.Row {
	query = s.d.rebind(query)
	if st := s.stmt(ctx, q, query); st != nil {
		return st.QueryRowContext(ctx, args...)
	}
	return q.QueryRowContext(ctx, query, args...)
}

// maxPrepared bounds the statements a Store keeps prepared. The queries
// are string constants, plus the few dozen shapes QueryAudit builds, so
// the bound is never reached in practice; past it, queries run unprepared.
const maxPrepared = 256

// stmtCache holds the statements a Store prepared, one *sql.Stmt per pool
// and query; database/sql then prepares it once on each connection of the
// pool that runs it and keeps it until the connection closes.
type stmtCache struct {
	m sync.Map // stmtKey → *sql.Stmt; read without locking on every query

	// missed is set when a transaction ran a query that has no statement
	// yet; the next writeTx to finish prepares those (see prepareMissed).
	missed atomic.Bool

	mu      sync.Mutex // guards the fields below and every store into m
	n       int        // statements in m
	closed  bool
	pending map[string]struct{} // writer-pool queries a transaction missed
}

type stmtKey struct {
	db    *sql.DB
	query string
}

// stmt returns the prepared statement to run query (already rebound) on q
// with, or nil to run it as a plain query. Only dialects with
// [Dialect.Prepare] prepare.
//
// On a pool (*sql.DB), a query is prepared on its first use. Inside a
// transaction nothing is prepared on the pool: on SQLite the transaction
// holds the only writer connection, so that would wait for the
// transaction, which waits for us. A statement the writer pool already has
// is bound to the transaction with Tx.StmtContext (which reuses it when it
// is prepared on the transaction's connection, the only one on SQLite);
// one it does not have yet runs as a plain query, and is prepared on the
// pool once the transaction is over.
func (s *Store) stmt(ctx context.Context, q querier, query string) *sql.Stmt {
	if !s.d.Prepare {
		return nil
	}
	switch q := q.(type) {
	case *sql.DB:
		if v, ok := s.stmts.m.Load(stmtKey{q, query}); ok {
			return v.(*sql.Stmt)
		}
		return s.prepare(ctx, q, query)
	case *sql.Tx:
		if v, ok := s.stmts.m.Load(stmtKey{s.w, query}); ok {
			return q.StmtContext(ctx, v.(*sql.Stmt))
		}
		s.stmts.miss(query)
	}
	return nil
}

// prepare prepares query on db and caches it. It returns nil, so that the
// caller runs the query unprepared, when the cache is closed or full or
// preparing fails; running it then reports the error, if it persists.
func (s *Store) prepare(ctx context.Context, db *sql.DB, query string) *sql.Stmt {
	c := &s.stmts
	c.mu.Lock()
	full := c.closed || c.n >= maxPrepared
	c.mu.Unlock()
	if full {
		return nil
	}
	st, err := db.PrepareContext(ctx, query)
	if err != nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	k := stmtKey{db, query}
	if v, ok := c.m.Load(k); ok {
		// Prepared concurrently; keep the first.
		st.Close()
		return v.(*sql.Stmt)
	}
	if c.closed || c.n >= maxPrepared {
		st.Close()
		return nil
	}
	c.m.Store(k, st)
	c.n++
	return st
}

// miss records that a transaction ran query unprepared.
func (c *stmtCache) miss(query string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed || c.n+len(c.pending) >= maxPrepared {
		return
	}
	if c.pending == nil {
		c.pending = map[string]struct{}{}
	}
	c.pending[query] = struct{}{}
	c.missed.Store(true)
}

// prepareMissed prepares on the writer pool the queries transactions ran
// unprepared. writeTx calls it after the transaction, when the writer
// connection is free again; it costs an atomic load once every statement
// is prepared.
func (s *Store) prepareMissed(ctx context.Context) {
	c := &s.stmts
	if !c.missed.Load() {
		return
	}
	c.mu.Lock()
	pending := c.pending
	c.pending = nil
	c.missed.Store(false)
	c.mu.Unlock()
	for query := range pending {
		if ctx.Err() != nil {
			return // a later transaction will miss them again
		}
		s.prepare(ctx, s.w, query)
	}
}

// close closes every cached statement; later queries run unprepared.
func (c *stmtCache) close() []error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	c.pending = nil
	var errs []error
	c.m.Range(func(k, v any) bool {
		errs = append(errs, v.(*sql.Stmt).Close())
		c.m.Delete(k)
		return true
	})
	c.n = 0
	return errs
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
	defer s.prepareMissed(ctx)
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
