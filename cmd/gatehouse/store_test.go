package main

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/gatehouse-mcp/gatehouse/internal/config"
)

// TestStoreFileModes: the SQLite files are owner-only even in a directory
// that already existed, and a group-readable key file is warned about.
func TestStoreFileModes(t *testing.T) {
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	c := config.Default()
	c.Storage.SQLitePath = filepath.Join(dir, "gatehouse.db")
	st, err := openStore(t.Context(), c, false)
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	for _, name := range []string{"gatehouse.db", "gatehouse.db-wal", "gatehouse.db-shm"} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			continue // -wal and -shm exist only while open on some systems
		}
		if fi.Mode().Perm()&0o077 != 0 {
			t.Errorf("%s has mode %o, want owner-only", name, fi.Mode().Perm())
		}
	}

	kek := filepath.Join(dir, "kek")
	if err := os.WriteFile(kek, []byte(strings.Repeat("ab", 32)), 0o644); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	warnKeyFileMode(slog.New(slog.NewTextHandler(&logs, nil)), kek)
	if !strings.Contains(logs.String(), "readable by group or others") || !strings.Contains(logs.String(), "0644") {
		t.Errorf("no warning for a 0644 key file: %q", logs.String())
	}
	os.Chmod(kek, 0o600)
	logs.Reset()
	warnKeyFileMode(slog.New(slog.NewTextHandler(&logs, nil)), kek)
	if logs.Len() != 0 {
		t.Errorf("a warning for a 0600 key file: %q", logs.String())
	}
}

// TestLoadOrCreateKeyRace: processes creating the dev key at once all end
// up with the one key on disk.
func TestLoadOrCreateKeyRace(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kek")
	keys := make([][]byte, 8)
	var wg sync.WaitGroup
	for i := range keys {
		wg.Go(func() {
			k, err := loadOrCreateKey(path)
			if err != nil {
				t.Error(err)
			}
			keys[i] = k
		})
	}
	wg.Wait()
	onDisk, err := config.ReadKeyFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for i, k := range keys {
		if !bytes.Equal(k, onDisk) {
			t.Errorf("caller %d got a key that is not the one on disk", i)
		}
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %o, want 600", fi.Mode().Perm())
	}
	if leftovers, _ := filepath.Glob(filepath.Join(filepath.Dir(path), ".kek-*")); len(leftovers) > 0 {
		t.Errorf("temporary files left: %v", leftovers)
	}
}

// TestAdminNeedsAStore: without --config or --data, an admin command
// refuses to create a dev store in an empty directory.
func TestAdminNeedsAStore(t *testing.T) {
	t.Chdir(t.TempDir())
	t.Setenv("GATEHOUSE_CONFIG", "")
	var out bytes.Buffer
	err := run(t.Context(), []string{"keys", "rotate"}, &out)
	if err == nil || !strings.Contains(err.Error(), "no --config") {
		t.Errorf("keys rotate in an empty directory = %v, want a refusal", err)
	}
	if _, err := os.Stat(defaultDataDir); err == nil {
		t.Errorf("%s was created", defaultDataDir)
	}
}
