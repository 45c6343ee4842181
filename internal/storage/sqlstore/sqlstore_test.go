package sqlstore

import (
	"testing"
	"testing/fstest"
	"time"
)

func TestRebind(t *testing.T) {
	pg := &Dialect{Numbered: true}
	lite := &Dialect{}
	for _, tt := range []struct {
		in, want string
	}{
		{"SELECT a FROM t WHERE b = ? AND c = ?", "SELECT a FROM t WHERE b = $1 AND c = $2"},
		{"SELECT '?', \"?\" FROM t WHERE x = ?", "SELECT '?', \"?\" FROM t WHERE x = $1"},
		{"SELECT 'it''s ?' WHERE y = ?", "SELECT 'it''s ?' WHERE y = $1"},
		{"SELECT 1", "SELECT 1"},
	} {
		if got := pg.rebind(tt.in); got != tt.want {
			t.Errorf("rebind(%q) = %q, want %q", tt.in, got, tt.want)
		}
		if got := lite.rebind(tt.in); got != tt.in {
			t.Errorf("rebind(%q) without numbering = %q, want it unchanged", tt.in, got)
		}
	}
}

func TestMicrosRoundTrip(t *testing.T) {
	zone := time.FixedZone("UTC+01", 3600)
	for _, in := range []time.Time{
		time.Date(2025, 1, 2, 3, 4, 5, 999999999, zone),
		time.Date(1969, 12, 31, 23, 59, 59, 1500, time.UTC), // before the epoch
		time.Date(2262, 1, 1, 0, 0, 0, 0, time.UTC),         // past int64 nanoseconds
	} {
		got := fromMicros(micros(in))
		want := in.Truncate(time.Microsecond).UTC()
		if !got.Equal(want) || got.Location() != time.UTC {
			t.Errorf("fromMicros(micros(%v)) = %v, want %v", in, got, want)
		}
	}
	if got := micros(time.Time{}); got != 0 {
		t.Errorf("micros(zero) = %d, want 0", got)
	}
	if got := fromMicros(0); !got.IsZero() {
		t.Errorf("fromMicros(0) = %v, want the zero time", got)
	}
}

func TestLoadMigrations(t *testing.T) {
	ms, err := loadMigrations(fstest.MapFS{
		"0002_more.sql": {Data: []byte("B")},
		"0001_init.sql": {Data: []byte("A")},
		"README.md":     {Data: []byte("ignored")},
	})
	if err != nil || len(ms) != 2 || ms[0].Version != 1 || ms[1].Name != "0002_more.sql" || ms[1].SQL != "B" {
		t.Errorf("loadMigrations() = %+v, %v; want 0001_init.sql then 0002_more.sql", ms, err)
	}
	for name, fsys := range map[string]fstest.MapFS{
		"duplicate version": {"0001_a.sql": {}, "1_b.sql": {}},
		"no number":         {"init.sql": {}},
		"zero":              {"0000_x.sql": {}},
	} {
		if _, err := loadMigrations(fsys); err == nil {
			t.Errorf("loadMigrations(%s) = nil error, want an error", name)
		}
	}
}
