package storagetest

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"testing/fstest"

	"github.com/gatehouse-mcp/gatehouse/internal/storage"
)

// MigrationsBefore returns the migration files in dir whose names sort
// before version (such as "0003"): a backend's tests migrate a store to
// the schema before version with them, fill it by raw SQL, and then open
// it with every migration, as an upgrade does.
func MigrationsBefore(t *testing.T, dir, version string) fstest.MapFS {
	t.Helper()
	files, err := fs.Glob(os.DirFS(dir), "*.sql")
	if err != nil {
		t.Fatal(err)
	}
	before := fstest.MapFS{}
	for _, name := range files {
		if name >= version {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		before[name] = &fstest.MapFile{Data: b}
	}
	return before
}

// clientsBefore0003 are the origins of the clients c0…c5 that
// SeedClientsBefore0003 stores.
var clientsBefore0003 = []storage.ClientOrigin{storage.OriginStatic, storage.OriginDCR, storage.OriginDCR, storage.OriginCIMD, storage.OriginCIMD, storage.OriginCIMD}

// SeedClientsBefore0003 stores six clients (one static, two registered,
// three metadata-document clients) in a schema before migration 0003
// (client_counts) through insert, a raw INSERT INTO clients (id, origin):
// the code's client columns are those of the newest schema.
func SeedClientsBefore0003(t *testing.T, insert func(id string, origin storage.ClientOrigin) error) {
	t.Helper()
	for i, o := range clientsBefore0003 {
		if err := insert(fmt.Sprint("c", i), o); err != nil {
			t.Fatalf("insert client c%d = %v", i, err)
		}
	}
}

// CheckClientCountsAfter0003 checks s, migrated past 0003 after
// SeedClientsBefore0003: the counts the migration computed are those of
// the rows, and a delete keeps them so.
func CheckClientCountsAfter0003(t *testing.T, s storage.Store) {
	t.Helper()
	ctx := t.Context()
	want := map[storage.ClientOrigin]int{storage.OriginStatic: 1, storage.OriginDCR: 2, storage.OriginCIMD: 3}
	for o, n := range want {
		if got, err := s.CountClients(ctx, o); err != nil || got != n {
			t.Errorf("CountClients(%q) after the migration = %d, %v; want %d", o, got, err, n)
		}
	}
	if err := s.DeleteClient(ctx, "c5"); err != nil {
		t.Fatal(err)
	}
	if got, err := s.CountClients(ctx, storage.OriginCIMD); err != nil || got != 2 {
		t.Errorf("CountClients(cimd) after a delete = %d, %v; want 2", got, err)
	}
}
