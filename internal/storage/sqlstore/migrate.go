package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Migration is one numbered schema change and, in [Store.MigrationStatus],
// whether it has been applied.
type Migration struct {
	// Version is the file's number (0001_init.sql is 1).
	Version int
	// Name is the file name; empty for a version recorded in the database
	// that this binary does not know (the database is newer than the code).
	Name string
	// SQL is the file's content, run as one multi-statement Exec.
	SQL string
	// Applied reports whether the database has recorded the version.
	Applied bool
	// AppliedAt is when it was applied; zero while pending.
	AppliedAt time.Time
}

// loadMigrations reads every NNNN_name.sql at the root of fsys, ordered by
// version.
func loadMigrations(fsys fs.FS) ([]Migration, error) {
	if fsys == nil {
		return nil, nil
	}
	names, err := fs.Glob(fsys, "*.sql")
	if err != nil {
		return nil, err
	}
	var ms []Migration
	for _, name := range names {
		num, _, ok := strings.Cut(name, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v <= 0 {
			return nil, fmt.Errorf("migration %q: name must be NNNN_name.sql", name)
		}
		b, err := fs.ReadFile(fsys, name)
		if err != nil {
			return nil, err
		}
		ms = append(ms, Migration{Version: v, Name: path.Base(name), SQL: string(b)})
	}
	slices.SortFunc(ms, func(a, b Migration) int { return a.Version - b.Version })
	for i := 1; i < len(ms); i++ {
		if ms[i].Version == ms[i-1].Version {
			return nil, fmt.Errorf("migrations %q and %q share version %d", ms[i-1].Name, ms[i].Name, ms[i].Version)
		}
	}
	return ms, nil
}

const createMigrationsTable = `CREATE TABLE IF NOT EXISTS schema_migrations (
	version BIGINT PRIMARY KEY,
	applied_at BIGINT NOT NULL
)`

// Migrate applies the pending migrations in order, each in its own
// transaction together with its schema_migrations row, and returns those it
// applied. Running it again is a no-op. Concurrent migrators are safe: each
// transaction takes the dialect's migration lock and re-checks the version
// under it.
//
// A database migrated by a newer binary (versions this one does not know)
// is refused with a [*SchemaError] before anything is written: this
// binary's queries are not written for that schema, and applying an old
// migration the newer binary skipped could break it.
func (s *Store) Migrate(ctx context.Context) ([]Migration, error) {
	ms, err := loadMigrations(s.migrations)
	if err != nil {
		return nil, fmt.Errorf("migrate: %w", err)
	}
	// A schema behind this binary's is what Migrate is for.
	if err := s.CheckSchema(ctx); err != nil {
		var se *SchemaError
		if !errors.As(err, &se) || se.Newer() {
			return nil, fmt.Errorf("migrate: %w", err)
		}
	}
	var applied []Migration
	for _, m := range ms {
		ran := false
		err := s.tryTx(ctx, func(tx *sql.Tx) error {
			if s.d.MigrationLock != "" {
				if _, err := tx.ExecContext(ctx, s.d.MigrationLock); err != nil {
					return fmt.Errorf("lock: %w", err)
				}
			}
			if _, err := tx.ExecContext(ctx, createMigrationsTable); err != nil {
				return fmt.Errorf("create schema_migrations: %w", err)
			}
			var n int64
			if err := tx.QueryRowContext(ctx, s.d.rebind("SELECT count(*) FROM schema_migrations WHERE version = ?"), m.Version).Scan(&n); err != nil {
				return err
			}
			if n > 0 {
				return nil
			}
			// No arguments: both drivers run the whole multi-statement
			// file (pgx switches to the simple protocol).
			if _, err := tx.ExecContext(ctx, m.SQL); err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, s.d.rebind("INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)"),
				m.Version, micros(s.now())); err != nil {
				return err
			}
			ran = true
			return nil
		})
		if err != nil {
			return applied, fmt.Errorf("migrate %s: %w", m.Name, err)
		}
		if ran {
			applied = append(applied, m)
		}
	}
	return applied, nil
}

// MigrationStatus lists every known migration, applied or pending, in
// version order, followed by versions the database records but this binary
// does not know. It writes nothing, so it works on a database never
// migrated.
func (s *Store) MigrationStatus(ctx context.Context) ([]Migration, error) {
	ms, err := loadMigrations(s.migrations)
	if err != nil {
		return nil, fmt.Errorf("migration status: %w", err)
	}
	var exists int64
	if err := s.w.QueryRowContext(ctx, s.d.rebind(s.d.TableExists), "schema_migrations").Scan(&exists); err != nil {
		return nil, fmt.Errorf("migration status: %w", s.mapErr(err))
	}
	if exists == 0 {
		return ms, nil
	}
	rows, err := s.w.QueryContext(ctx, "SELECT version, applied_at FROM schema_migrations ORDER BY version")
	if err != nil {
		return nil, fmt.Errorf("migration status: %w", s.mapErr(err))
	}
	defer rows.Close()
	for rows.Next() {
		var v, at int64
		if err := rows.Scan(&v, &at); err != nil {
			return nil, fmt.Errorf("migration status: %w", err)
		}
		i := slices.IndexFunc(ms, func(m Migration) bool { return int64(m.Version) == v })
		if i < 0 {
			ms = append(ms, Migration{Version: int(v), Applied: true, AppliedAt: fromMicros(at)})
			continue
		}
		ms[i].Applied, ms[i].AppliedAt = true, fromMicros(at)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("migration status: %w", err)
	}
	return ms, nil
}

// SchemaError is what [Store.CheckSchema] returns for a database whose
// schema is not the one this binary's queries are written for: behind it
// (never migrated, or migrated by an older binary) or ahead of it
// (migrated by a newer one). Either way the first query would fail with a
// driver error naming a table or column, or, worse, succeed against a
// changed table; the caller says what to run instead.
type SchemaError struct {
	// Current is the highest version the database records; 0 for a
	// database never migrated.
	Current int
	// Required is the highest version this binary knows.
	Required int
	// Pending are the versions this binary knows and the database lacks.
	Pending []int
	// Unknown are the versions the database records and this binary does
	// not know: it was migrated by a newer gatehouse.
	Unknown []int
}

// Newer reports whether the database was migrated past this binary.
func (e *SchemaError) Newer() bool { return len(e.Unknown) > 0 }

func (e *SchemaError) Error() string {
	if e.Newer() {
		return fmt.Sprintf("database schema is at version %d, newer than this gatehouse (version %d)", e.Current, e.Required)
	}
	return fmt.Sprintf("database schema is at version %d, this gatehouse needs %d", e.Current, e.Required)
}

// CheckSchema returns a [*SchemaError] unless the database has every
// migration this binary knows and none it does not. It writes nothing.
func (s *Store) CheckSchema(ctx context.Context) error {
	ms, err := s.MigrationStatus(ctx)
	if err != nil {
		return err
	}
	e := &SchemaError{}
	for _, m := range ms {
		if m.Name != "" {
			e.Required = max(e.Required, m.Version)
		}
		switch {
		case m.Applied:
			e.Current = max(e.Current, m.Version)
			if m.Name == "" {
				e.Unknown = append(e.Unknown, m.Version)
			}
		default:
			e.Pending = append(e.Pending, m.Version)
		}
	}
	if len(e.Pending) == 0 && len(e.Unknown) == 0 {
		return nil
	}
	return e
}
