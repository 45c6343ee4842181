package sqlite_test

import (
	"path/filepath"
	"testing"

	"github.com/gatehouse-mcp/gatehouse/internal/storage"
	"github.com/gatehouse-mcp/gatehouse/internal/storage/sqlite"
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
	} {
		var got string
		if err := s.DB().QueryRowContext(t.Context(), "PRAGMA "+tt.pragma).Scan(&got); err != nil || got != tt.want {
			t.Errorf("PRAGMA %s = %q, %v; want %q", tt.pragma, got, err, tt.want)
		}
	}
}
