package postgres_test

import (
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"io/fs"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/gatehouse-mcp/gatehouse/internal/storage"
	"github.com/gatehouse-mcp/gatehouse/internal/storage/postgres"
	"github.com/gatehouse-mcp/gatehouse/internal/storage/sqlstore"
	"github.com/gatehouse-mcp/gatehouse/internal/storage/storagetest"
)

// dsn returns GATEHOUSE_TEST_POSTGRES_DSN; unset skips the test locally but
// fails it in CI, so Postgres coverage cannot silently disappear.
func dsn(t *testing.T) string {
	t.Helper()
	d := os.Getenv("GATEHOUSE_TEST_POSTGRES_DSN")
	if d == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("GATEHOUSE_TEST_POSTGRES_DSN is unset in CI; start a server with scripts/pg-test-start.sh")
		}
		t.Skip("GATEHOUSE_TEST_POSTGRES_DSN is unset; start a server with scripts/pg-test-start.sh")
	}
	return d
}

// freshSchema returns a new random schema name and drops the schema when
// the test ends.
func freshSchema(t *testing.T, dsn string) string {
	t.Helper()
	b := make([]byte, 8)
	rand.Read(b)
	schema := "gatehouse_test_" + hex.EncodeToString(b)
	t.Cleanup(func() {
		db, err := sql.Open("pgx", dsn)
		if err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
			return
		}
		defer db.Close()
		if _, err := db.Exec("DROP SCHEMA IF EXISTS " + pgx.Identifier{schema}.Sanitize() + " CASCADE"); err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
		}
	})
	return schema
}

func open(t *testing.T) storage.Store {
	t.Helper()
	d := dsn(t)
	s, err := postgres.Open(t.Context(), postgres.Options{DSN: d, Schema: freshSchema(t, d), AutoMigrate: true})
	if err != nil {
		t.Fatalf("postgres.Open() = %v", err)
	}
	// Registered after freshSchema's cleanup, so it runs first: the pool
	// is closed before the schema is dropped.
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close() = %v", err)
		}
	})
	return s
}

func TestPostgres(t *testing.T) {
	dsn(t)
	storagetest.RunTests(t, open)
	storagetest.RunConcurrencyTests(t, open)
}

// TestMigrate checks that Open leaves migrating to Migrate, and that
// concurrent migrators (replicas starting together) apply each migration
// exactly once.
func TestMigrate(t *testing.T) {
	d := dsn(t)
	schema := freshSchema(t, d)
	stores := make([]*postgres.Store, 3)
	for i := range stores {
		s, err := postgres.Open(t.Context(), postgres.Options{DSN: d, Schema: schema})
		if err != nil {
			t.Fatalf("postgres.Open() = %v", err)
		}
		t.Cleanup(func() { s.Close() })
		stores[i] = s
	}

	status, err := stores[0].MigrationStatus(t.Context())
	if err != nil || len(status) == 0 {
		t.Fatalf("MigrationStatus() before Migrate = %v, %v", status, err)
	}
	for _, m := range status {
		if m.Applied {
			t.Errorf("MigrationStatus() before Migrate: %s applied, want pending", m.Name)
		}
	}

	var (
		mu      sync.Mutex
		applied []sqlstore.Migration
		wg      sync.WaitGroup
	)
	for _, s := range stores {
		wg.Go(func() {
			ms, err := s.Migrate(t.Context())
			if err != nil {
				t.Errorf("Migrate() = %v", err)
			}
			mu.Lock()
			applied = append(applied, ms...)
			mu.Unlock()
		})
	}
	wg.Wait()
	if len(applied) != len(status) {
		t.Errorf("concurrent Migrate() applied %d migrations in total, want %d", len(applied), len(status))
	}

	status, err = stores[1].MigrationStatus(t.Context())
	if err != nil {
		t.Fatalf("MigrationStatus() = %v", err)
	}
	for _, m := range status {
		if !m.Applied || m.AppliedAt.IsZero() {
			t.Errorf("MigrationStatus() after Migrate: %+v, want applied", m)
		}
	}
	if ms, err := stores[2].Migrate(t.Context()); err != nil || len(ms) != 0 {
		t.Errorf("Migrate() again = %v, %v; want nothing applied", ms, err)
	}
}

// TestClientCountsMigration: 0003_client_counts.sql starts the counts from
// the clients a database already holds, then keeps them.
func TestClientCountsMigration(t *testing.T) {
	ctx := t.Context()
	d := dsn(t)
	schema := freshSchema(t, d)

	// The schema before 0003, with clients in it.
	before := storagetest.MigrationsBefore(t, "migrations", "0003")
	// postgres.Open creates the schema and sets the search path; its
	// pool then serves a store that knows only the older migrations.
	base, err := postgres.Open(ctx, postgres.Options{DSN: d, Schema: schema})
	if err != nil {
		t.Fatal(err)
	}
	old, err := sqlstore.New(sqlstore.Config{Writer: base.DB(), Dialect: postgres.Dialect, Migrations: before, Now: func() time.Time { return time.Unix(1e9, 0) }})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := old.Migrate(ctx); err != nil {
		t.Fatalf("Migrate() to the schema before 0003 = %v", err)
	}
	storagetest.SeedClientsBefore0003(t, func(id string, o storage.ClientOrigin) error {
		_, err := base.DB().ExecContext(ctx, "INSERT INTO clients (id, origin) VALUES ($1, $2)", id, string(o))
		return err
	})
	old.Close()

	s, err := postgres.Open(ctx, postgres.Options{DSN: d, Schema: schema, AutoMigrate: true})
	if err != nil {
		t.Fatalf("postgres.Open() migrating to 0003 = %v", err)
	}
	defer s.Close()
	storagetest.CheckClientCountsAfter0003(t, s)
}

// TestSchema: CheckSchema and Migrate on empty, behind and newer
// databases, each a fresh schema.
func TestSchema(t *testing.T) {
	d := dsn(t)
	storagetest.RunSchemaTests(t, "migrations", func(t *testing.T) storagetest.SchemaOpener {
		schema := freshSchema(t, d)
		return func(t *testing.T, fsys fs.FS) *sqlstore.Store {
			// postgres.Open creates the schema and sets the search path;
			// its pool serves a store knowing only fsys.
			base, err := postgres.Open(t.Context(), postgres.Options{DSN: d, Schema: schema})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { base.Close() })
			s, err := sqlstore.New(sqlstore.Config{Writer: base.DB(), Dialect: postgres.Dialect, Migrations: fsys, Now: func() time.Time { return time.Unix(1e9, 0) }})
			if err != nil {
				t.Fatal(err)
			}
			return s
		}
	})
}

// TestOpenMigrateRefusesNewerSchema: postgres.Open with AutoMigrate (serve
// --migrate, gatehouse migrate) refuses a database migrated by a newer
// binary.
func TestOpenMigrateRefusesNewerSchema(t *testing.T) {
	d := dsn(t)
	schema := freshSchema(t, d)
	s, err := postgres.Open(t.Context(), postgres.Options{DSN: d, Schema: schema, AutoMigrate: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.DB().ExecContext(t.Context(), "INSERT INTO schema_migrations (version, applied_at) VALUES (9999, 0)"); err != nil {
		t.Fatal(err)
	}
	s.Close()
	_, err = postgres.Open(t.Context(), postgres.Options{DSN: d, Schema: schema, AutoMigrate: true})
	var se *sqlstore.SchemaError
	if !errors.As(err, &se) || !se.Newer() || se.Current != 9999 {
		t.Errorf("postgres.Open(AutoMigrate) on a newer database = %v, want a SchemaError at version 9999", err)
	}
}
