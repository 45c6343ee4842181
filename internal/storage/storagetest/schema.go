package storagetest

import (
	"errors"
	"io/fs"
	"slices"
	"strconv"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/google/go-cmp/cmp"

	"github.com/gatehouse-mcp/gatehouse/internal/storage/sqlstore"
)

// SchemaOpener opens a store on one database, the same on every call of
// one test, that knows only the migrations in fsys. It must not migrate.
type SchemaOpener func(t *testing.T, fsys fs.FS) *sqlstore.Store

// RunSchemaTests checks [sqlstore.Store.CheckSchema] and the refusal of
// [sqlstore.Store.Migrate] on a database that is empty, behind, current
// and ahead of the migrations in dir (the backend's migrations
// directory). newDatabase returns an opener on a fresh empty database.
func RunSchemaTests(t *testing.T, dir string, newDatabase func(t *testing.T) SchemaOpener) {
	all := MigrationsBefore(t, dir, "9999")
	versions := migrationVersions(t, all)
	latest := versions[len(versions)-1]

	t.Run("Empty", func(t *testing.T) {
		open := newDatabase(t)
		got := schemaError(t, open(t, all))
		want := &sqlstore.SchemaError{Current: 0, Required: latest, Pending: versions}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("CheckSchema() on an empty database (-want +got):\n%s", diff)
		}
		if got.Newer() || !strings.Contains(got.Error(), "schema is at version 0, this gatehouse needs "+strconv.Itoa(latest)) {
			t.Errorf("CheckSchema() on an empty database = %q (newer %v), want behind", got, got.Newer())
		}
		// CheckSchema wrote nothing: the database is still empty.
		if got := schemaError(t, open(t, all)); got.Current != 0 || len(got.Pending) != len(versions) {
			t.Errorf("CheckSchema() again = %+v, want the database still empty", got)
		}
	})

	t.Run("Behind", func(t *testing.T) {
		open := newDatabase(t)
		cut := versions[len(versions)/2]
		if _, err := open(t, MigrationsBefore(t, dir, versionName(cut))).Migrate(t.Context()); err != nil {
			t.Fatalf("Migrate() to the schema before %04d = %v", cut, err)
		}
		got := schemaError(t, open(t, all))
		i := slices.Index(versions, cut)
		want := &sqlstore.SchemaError{Current: versions[i-1], Required: latest, Pending: versions[i:]}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("CheckSchema() on a database before %04d (-want +got):\n%s", cut, diff)
		}
		s := open(t, all)
		if applied, err := s.Migrate(t.Context()); err != nil || len(applied) != len(versions)-i {
			t.Fatalf("Migrate() from before %04d = %d applied, %v; want %d", cut, len(applied), err, len(versions)-i)
		}
		if err := s.CheckSchema(t.Context()); err != nil {
			t.Errorf("CheckSchema() after Migrate() = %v, want nil", err)
		}
	})

	t.Run("Newer", func(t *testing.T) {
		open := newDatabase(t)
		future := fstest.MapFS{}
		for name, f := range all {
			future[name] = f
		}
		next := latest + 1
		future[versionName(next)+"_future.sql"] = &fstest.MapFile{Data: []byte("CREATE TABLE gatehouse_future (id BIGINT PRIMARY KEY)")}
		if _, err := open(t, future).Migrate(t.Context()); err != nil {
			t.Fatalf("Migrate() with a future migration = %v", err)
		}
		s := open(t, all)
		got := schemaError(t, s)
		want := &sqlstore.SchemaError{Current: next, Required: latest, Unknown: []int{next}}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("CheckSchema() on a database migrated by a newer binary (-want +got):\n%s", diff)
		}
		if !got.Newer() || !strings.Contains(got.Error(), "newer than this gatehouse") {
			t.Errorf("CheckSchema() on a newer database = %q (newer %v), want newer", got, got.Newer())
		}
		applied, err := s.Migrate(t.Context())
		var se *sqlstore.SchemaError
		if !errors.As(err, &se) || !se.Newer() || len(applied) != 0 {
			t.Errorf("Migrate() on a newer database = %v, %v; want a SchemaError and nothing applied", applied, err)
		}
	})
}

// schemaError returns s.CheckSchema's error, failing the test unless it is
// a *SchemaError.
func schemaError(t *testing.T, s *sqlstore.Store) *sqlstore.SchemaError {
	t.Helper()
	err := s.CheckSchema(t.Context())
	var se *sqlstore.SchemaError
	if !errors.As(err, &se) {
		t.Fatalf("CheckSchema() = %v, want a *sqlstore.SchemaError", err)
	}
	return se
}

// migrationVersions returns the versions of the migration files in fsys,
// in order.
func migrationVersions(t *testing.T, fsys fstest.MapFS) []int {
	t.Helper()
	var vs []int
	for name := range fsys {
		num, _, _ := strings.Cut(name, "_")
		v, err := strconv.Atoi(num)
		if err != nil {
			t.Fatalf("migration %q: %v", name, err)
		}
		vs = append(vs, v)
	}
	slices.Sort(vs)
	if len(vs) < 2 {
		t.Fatalf("%d migrations, want at least 2", len(vs))
	}
	return vs
}

// versionName is a version as the file names spell it ("0005").
func versionName(v int) string {
	s := strconv.Itoa(v)
	return strings.Repeat("0", max(0, 4-len(s))) + s
}
