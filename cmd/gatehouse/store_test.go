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

// TestKeysRekey: keys rekey re-encrypts the signing keys under a new KEK;
// afterwards the old KEK opens nothing and the new one everything.
func TestKeysRekey(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	newKEK := filepath.Join(t.TempDir(), "new-kek")
	do := func(args ...string) (string, error) {
		var out bytes.Buffer
		err := run(t.Context(), args, &out)
		return out.String(), err
	}
	if out, err := do("keys", "rotate", "--data", data); err != nil {
		t.Fatalf("keys rotate: %v\n%s", err, out)
	}
	if out, err := do("keys", "gen-kek", newKEK); err != nil {
		t.Fatalf("keys gen-kek: %v\n%s", err, out)
	}
	if _, err := do("keys", "rekey", "--data", data); err == nil {
		t.Error("keys rekey without --new-key-file succeeded")
	}
	out, err := do("keys", "rekey", "--new-key-file", newKEK, "--data", data)
	if err != nil || !strings.Contains(out, "re-encrypted 2 signing keys") {
		t.Fatalf("keys rekey = %v\n%s", err, out)
	}
	if _, err := do("keys", "rotate", "--data", data); err == nil {
		t.Error("keys rotate with the old KEK still works after rekey")
	}
	b, err := os.ReadFile(newKEK)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(data, "kek"), b, 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := do("keys", "rotate", "--data", data); err != nil {
		t.Errorf("keys rotate with the new KEK: %v\n%s", err, out)
	}
	if out, _ := do("audit", "query", "--since", "1h", "--data", data); !strings.Contains(out, "key.resealed") {
		t.Errorf("audit lacks key.resealed:\n%s", out)
	}
}
