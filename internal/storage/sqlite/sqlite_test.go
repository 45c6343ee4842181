package sqlite_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-mcp/gatehouse/internal/storage"
	"github.com/gatehouse-mcp/gatehouse/internal/storage/sqlite"
	"github.com/gatehouse-mcp/gatehouse/internal/storage/sqlstore"
	"github.com/gatehouse-mcp/gatehouse/internal/storage/storagetest"
)

// open returns a store on a fresh file; :memory: would not be shared by the
// writer and the read pool.
func open(t *testing.T) storage.Store {
	t.Helper()
	s, err := sqlite.Open(t.Context(), sqlite.Options{Path: filepath.Join(t.TempDir(), "gatehouse.db")})
	if err != nil {
		t.Fatalf("sqlite.Open() = %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close() = %v", err)
		}
	})
	return s
}

func TestSQLite(t *testing.T) {
	storagetest.RunTests(t, open)
	storagetest.RunConcurrencyTests(t, open)
}

func TestMigrateIsIdempotent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "gatehouse.db")
	for range 2 {
		s, err := sqlite.Open(t.Context(), sqlite.Options{Path: path})
		if err != nil {
			t.Fatalf("sqlite.Open(%q) = %v", path, err)
		}
		applied, err := s.Migrate(t.Context())
		if err != nil || len(applied) != 0 {
			t.Errorf("Migrate() after Open = %v, %v; want nothing applied", applied, err)
		}
		status, err := s.MigrationStatus(t.Context())
		if err != nil || len(status) == 0 {
			t.Fatalf("MigrationStatus() = %v, %v", status, err)
		}
		for _, m := range status {
			if !m.Applied || m.Name == "" || m.AppliedAt.IsZero() {
				t.Errorf("MigrationStatus() entry %+v, want applied, named, timestamped", m)
			}
		}
		s.Close()
	}
}

func TestOpenRejectsMemory(t *testing.T) {
	if _, err := sqlite.Open(t.Context(), sqlite.Options{Path: ":memory:"}); err == nil {
		t.Errorf(`sqlite.Open(":memory:") = nil error, want an error`)
	}
}

// TestPragmas checks that the writer connection got the settings the DSN
// asks for; a typo there would fail silently.
func TestPragmas(t *testing.T) {
	s, err := sqlite.Open(t.Context(), sqlite.Options{Path: filepath.Join(t.TempDir(), "gatehouse.db")})
	if err != nil {
		t.Fatalf("sqlite.Open() = %v", err)
	}
	defer s.Close()
	for _, tt := range []struct{ pragma, want string }{
		{"journal_mode", "wal"},
		{"foreign_keys", "1"},
		{"busy_timeout", "5000"},
		{"synchronous", "1"}, // NORMAL
		// The writer still checkpoints past 1,000 pages besides the
		// background checkpoints: only a writer restarts the WAL.
		{"wal_autocheckpoint", "1000"},
	} {
		var got string
		if err := s.DB().QueryRowContext(t.Context(), "PRAGMA "+tt.pragma).Scan(&got); err != nil || got != tt.want {
			t.Errorf("PRAGMA %s = %q, %v; want %q", tt.pragma, got, err, tt.want)
		}
	}
}

// TestCheckpoints: the store copies the WAL into the database file in
// the background, not only when a commit takes the WAL past 1,000 pages
// (writes far below that here).
func TestCheckpoints(t *testing.T) {
	path := filepath.Join(t.TempDir(), "gatehouse.db")
	s, err := sqlite.Open(t.Context(), sqlite.Options{Path: path})
	if err != nil {
		t.Fatalf("sqlite.Open() = %v", err)
	}
	defer s.Close()
	size := func() int64 {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		return fi.Size()
	}
	// Wait for the migrations to be copied, then write 100 pages' worth.
	waitSize := func(what string, cond func(int64) bool) int64 {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for !cond(size()) {
			if time.Now().After(deadline) {
				t.Fatalf("the database file is %d bytes, waiting for %s", size(), what)
			}
			time.Sleep(10 * time.Millisecond)
		}
		return size()
	}
	before := waitSize("the migrations", func(n int64) bool { return n > 4096 })
	detail := strings.Repeat("x", 4000)
	for i := range 100 {
		e := storage.AuditEvent{Time: time.Now(), Type: "test.checkpoint", Detail: fmt.Sprint(i, detail)}
		if err := s.AppendAudit(t.Context(), e); err != nil {
			t.Fatalf("AppendAudit(#%d) = %v", i, err)
		}
	}
	waitSize(fmt.Sprintf("300 kB of events copied into it (%d bytes before)", before), func(n int64) bool { return n >= before+300<<10 })
}

// TestWALBounded: under steady writes with readers, the WAL file stays
// small: the writer's own checkpoints let it start the WAL over, which the
// background checkpoints alone would not (it grew by every write, 50 MB
// here, when they were all there was).
func TestWALBounded(t *testing.T) {
	path := filepath.Join(t.TempDir(), "gatehouse.db")
	s, err := sqlite.Open(t.Context(), sqlite.Options{Path: path})
	if err != nil {
		t.Fatalf("sqlite.Open() = %v", err)
	}
	defer s.Close()
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			for ctx.Err() == nil {
				s.QueryAudit(ctx, storage.AuditQuery{Limit: 5})
			}
		})
	}
	for i := range 2000 {
		e := storage.AuditEvent{Time: time.Now(), Type: "test.wal", UserID: fmt.Sprint("u", i%10), Detail: fmt.Sprint(i)}
		if err := s.AppendAudit(t.Context(), e); err != nil {
			t.Fatalf("AppendAudit(#%d) = %v", i, err)
		}
	}
	cancel()
	wg.Wait()
	fi, err := os.Stat(path + "-wal")
	if err != nil {
		t.Fatal(err)
	}
	if fi.Size() > 24<<20 {
		t.Errorf("the WAL is %d bytes after 2,000 writes, want at most 24 MB", fi.Size())
	}
}

// TestWALBoundedUnderOverlappingReaders: readers that always overlap (one
// begins before the other ends, as on a busy server) leave the writer no
// moment to start the WAL over; the checkpointer's TRUNCATE bounds it
// anyway. Without it the WAL grew with the writes.
func TestWALBoundedUnderOverlappingReaders(t *testing.T) {
	t.Parallel() // seconds of writes on a file of its own
	path := filepath.Join(t.TempDir(), "gatehouse.db")
	s, err := sqlite.Open(t.Context(), sqlite.Options{Path: path})
	if err != nil {
		t.Fatalf("sqlite.Open() = %v", err)
	}
	defer s.Close()
	rdb, err := sql.Open("sqlite", "file:"+path+"?mode=ro&_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	defer rdb.Close()
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	for i := range 2 {
		wg.Go(func() {
			time.Sleep(time.Duration(i) * 10 * time.Millisecond) // the relay's offset
			for ctx.Err() == nil {
				tx, err := rdb.BeginTx(context.Background(), &sql.TxOptions{ReadOnly: true})
				if err != nil {
					return
				}
				var n int
				tx.QueryRow("SELECT count(*) FROM audit_events").Scan(&n) // takes the snapshot
				time.Sleep(20 * time.Millisecond)
				tx.Rollback()
			}
		})
	}
	var largest int64
	for i := range 5000 {
		e := storage.AuditEvent{Time: time.Now(), Type: "test.wal", UserID: fmt.Sprint("u", i%10), Detail: fmt.Sprint(i)}
		if err := s.AppendAudit(t.Context(), e); err != nil {
			t.Fatalf("AppendAudit(#%d) = %v", i, err)
		}
		if fi, err := os.Stat(path + "-wal"); err == nil {
			largest = max(largest, fi.Size())
		}
	}
	cancel()
	wg.Wait()
	// The bound is the truncation threshold (8 MB) plus what a stream of
	// writes as fast as this loop adds while a checkpoint runs; the WAL
	// without the truncation grew with the writes, past 100 MB here.
	if largest > 48<<20 {
		t.Errorf("the WAL reached %d bytes during 5,000 writes with overlapping readers, want at most 48 MB", largest)
	}
}

// TestClientCountsMigration: 0003_client_counts.sql starts the counts from
// the clients a database already holds, then keeps them.
func TestClientCountsMigration(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "gatehouse.db")

	// The schema before 0003, with clients in it.
	before := storagetest.MigrationsBefore(t, "migrations", "0003")
	db, err := sql.Open("sqlite", path+"?_txlock=immediate&_pragma=foreign_keys(1)")
	if err != nil {
		t.Fatal(err)
	}
	old, err := sqlstore.New(sqlstore.Config{Writer: db, Dialect: sqlite.Dialect, Migrations: before, Now: func() time.Time { return time.Unix(1e9, 0) }})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := old.Migrate(ctx); err != nil {
		t.Fatalf("Migrate() to the schema before 0003 = %v", err)
	}
	storagetest.SeedClientsBefore0003(t, func(id string, o storage.ClientOrigin) error {
		_, err := db.ExecContext(ctx, "INSERT INTO clients (id, origin) VALUES (?, ?)", id, string(o))
		return err
	})
	old.Close()

	s, err := sqlite.Open(ctx, sqlite.Options{Path: path})
	if err != nil {
		t.Fatalf("sqlite.Open() migrating to 0003 = %v", err)
	}
	defer s.Close()
	storagetest.CheckClientCountsAfter0003(t, s)
}

// TestSchema: CheckSchema and Migrate on empty, behind and newer
// databases (sqlite.Open migrates, so the stores here are built on the
// file directly).
func TestSchema(t *testing.T) {
	storagetest.RunSchemaTests(t, "migrations", func(t *testing.T) storagetest.SchemaOpener {
		path := filepath.Join(t.TempDir(), "gatehouse.db")
		return func(t *testing.T, fsys fs.FS) *sqlstore.Store {
			db, err := sql.Open("sqlite", path+"?_txlock=immediate&_pragma=foreign_keys(1)")
			if err != nil {
				t.Fatal(err)
			}
			s, err := sqlstore.New(sqlstore.Config{Writer: db, Dialect: sqlite.Dialect, Migrations: fsys, Now: func() time.Time { return time.Unix(1e9, 0) }})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			return s
		}
	})
}

// TestOpenRefusesNewerSchema: sqlite.Open, which migrates, refuses a
// database migrated by a newer binary instead of running against it.
func TestOpenRefusesNewerSchema(t *testing.T) {
	path := filepath.Join(t.TempDir(), "gatehouse.db")
	s, err := sqlite.Open(t.Context(), sqlite.Options{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.DB().ExecContext(t.Context(), "INSERT INTO schema_migrations (version, applied_at) VALUES (9999, 0)"); err != nil {
		t.Fatal(err)
	}
	s.Close()
	_, err = sqlite.Open(t.Context(), sqlite.Options{Path: path})
	var se *sqlstore.SchemaError
	if !errors.As(err, &se) || !se.Newer() || se.Current != 9999 {
		t.Errorf("sqlite.Open() on a newer database = %v, want a SchemaError at version 9999", err)
	}
}
