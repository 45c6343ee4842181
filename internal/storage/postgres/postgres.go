package postgres

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/gatehouse-mcp/gatehouse/internal/storage"
	"github.com/gatehouse-mcp/gatehouse/internal/storage/sqlstore"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// defaultMaxOpenConns bounds the pool when Options.MaxOpenConns is zero,
// well below PostgreSQL's default max_connections of 100 so several
// replicas fit.
const defaultMaxOpenConns = 10

// migrationLockKey is the first half of the advisory lock key taken around
// each migration ("gate" in ASCII); the second half hashes the schema, so
// migrating different schemas of one database does not serialise.
const migrationLockKey = 0x67617465

// Options configures [Open].
type Options struct {
	// DSN is a libpq connection string or postgres:// URL. Required.
	DSN string
	// Schema, if set, is created if missing and made the connection's
	// search_path, so the store's tables live there. Empty means the
	// DSN's default search_path.
	Schema string
	// AutoMigrate applies pending migrations in Open. False (the default)
	// leaves that to `gatehouse migrate` ([Store.Migrate]), so a rollout
	// never changes the schema as a side effect.
	AutoMigrate bool
	// MaxOpenConns bounds the connection pool; zero means 10.
	MaxOpenConns int
	// Now is the clock for operations whose interface takes no time
	// (Replay.UseOnce, migration timestamps). Nil means time.Now.
	Now func() time.Time
}

// Store is the PostgreSQL backend. Besides storage.Store it has Migrate
// and MigrationStatus (from sqlstore.Store) for `gatehouse migrate`.
type Store struct {
	*sqlstore.Store
}

var _ storage.Store = (*Store)(nil)

// Dialect is the PostgreSQL flavour of the shared queries.
var Dialect = sqlstore.Dialect{
	Name:      "postgres",
	Numbered:  true,
	ForUpdate: " FOR UPDATE",
	// SHARE ROW EXCLUSIVE conflicts with itself and with row writes but
	// not with reads: concurrent rotations queue, JWKS reads go on.
	LockTable: func(table string) string {
		return "LOCK TABLE " + table + " IN SHARE ROW EXCLUSIVE MODE"
	},
	MigrationLock: fmt.Sprintf("SELECT pg_advisory_xact_lock(%d, hashtext(coalesce(current_schema(), '')))", migrationLockKey),
	TableExists:   "SELECT count(*) FROM pg_catalog.pg_tables WHERE schemaname = current_schema() AND tablename = ?",
	MapError:      mapError,
}

// Open connects to opts.DSN, creates opts.Schema if set, and migrates only
// if opts.AutoMigrate.
func Open(ctx context.Context, opts Options) (*Store, error) {
	if opts.DSN == "" {
		return nil, errors.New("postgres: DSN is empty")
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	cfg, err := pgx.ParseConfig(opts.DSN)
	if err != nil {
		return nil, fmt.Errorf("postgres: parse DSN: %w", err)
	}
	if opts.Schema != "" {
		// search_path is resolved per statement, so it can name the schema
		// before ensureSchema below creates it.
		cfg.RuntimeParams["search_path"] = pgx.Identifier{opts.Schema}.Sanitize()
	}
	db := stdlib.OpenDB(*cfg)
	maxConns := opts.MaxOpenConns
	if maxConns <= 0 {
		maxConns = defaultMaxOpenConns
	}
	db.SetMaxOpenConns(maxConns)
	db.SetMaxIdleConns(maxConns)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("postgres: connect: %w", err)
	}
	if opts.Schema != "" {
		if err := ensureSchema(ctx, db, opts.Schema); err != nil {
			db.Close()
			return nil, err
		}
	}
	migrations, err := fs.Sub(migrationFiles, "migrations")
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("postgres: %w", err)
	}
	s, err := sqlstore.New(sqlstore.Config{Writer: db, Dialect: Dialect, Migrations: migrations, Now: opts.Now})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("postgres: %w", err)
	}
	if opts.AutoMigrate {
		if _, err := s.Migrate(ctx); err != nil {
			s.Close()
			return nil, fmt.Errorf("postgres: %w", err)
		}
	}
	return &Store{Store: s}, nil
}

// ensureSchema creates schema unless it exists. CREATE SCHEMA IF NOT EXISTS
// can still fail when two processes run it at once; the loser then finds
// the schema there.
func ensureSchema(ctx context.Context, db *sql.DB, schema string) error {
	_, err := db.ExecContext(ctx, "CREATE SCHEMA IF NOT EXISTS "+pgx.Identifier{schema}.Sanitize())
	if err == nil {
		return nil
	}
	var n int
	if qerr := db.QueryRowContext(ctx, "SELECT count(*) FROM pg_catalog.pg_namespace WHERE nspname = $1", schema).Scan(&n); qerr == nil && n > 0 {
		return nil
	}
	return fmt.Errorf("postgres: create schema %q: %w", schema, err)
}

// SQLSTATE codes mapped to storage sentinels.
const (
	uniqueViolation      = "23505"
	foreignKeyViolation  = "23503"
	serializationFailure = "40001"
	deadlockDetected     = "40P01"
	lockNotAvailable     = "55P03"
)

// mapError maps PostgreSQL SQLSTATEs to the storage sentinels, keeping the
// driver error in the chain.
func mapError(err error) error {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		return err
	}
	switch pe.Code {
	case uniqueViolation:
		return fmt.Errorf("%w: %w", storage.ErrAlreadyExists, err)
	case foreignKeyViolation:
		return fmt.Errorf("%w (referenced row): %w", storage.ErrNotFound, err)
	case serializationFailure, deadlockDetected, lockNotAvailable:
		return fmt.Errorf("%w: %w", storage.ErrConflict, err)
	}
	return err
}
