package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

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

// TestAdminNeverCreatesKeyMaterial: an admin command without --config
// acts only on a directory `gatehouse dev` made. It creates no data
// directory, database or key-encryption key, and it recognises a
// serve's database at the default path (no kek next to it, or no dev
// mark) and says to pass --config, leaving it unchanged. Only dev makes
// a data directory, and dev too refuses a serve's database.
func TestAdminNeverCreatesKeyMaterial(t *testing.T) {
	t.Setenv("GATEHOUSE_CONFIG", "")
	var out bytes.Buffer
	gatehouse := func(args ...string) error {
		out.Reset()
		return run(t.Context(), args, &out)
	}
	refused := func(t *testing.T, err error, wants ...string) {
		t.Helper()
		if err == nil {
			t.Fatalf("succeeded, want refused:\n%s", out.String())
		}
		for _, w := range wants {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("error %q lacks %q", err, w)
			}
		}
	}
	missing := func(t *testing.T, paths ...string) {
		t.Helper()
		for _, p := range paths {
			if _, err := os.Stat(p); err == nil {
				t.Errorf("%s was created", p)
			}
		}
	}

	t.Run("nothing there", func(t *testing.T) {
		t.Chdir(t.TempDir())
		refused(t, gatehouse("keys", "rotate"), "no --config")
		missing(t, defaultDataDir)
		refused(t, gatehouse("user", "list", "--data", "elsewhere"), "--data elsewhere: no `gatehouse dev` data there", "--config FILE")
		missing(t, "elsewhere")
	})

	t.Run("serve database at the default path", func(t *testing.T) {
		t.Chdir(t.TempDir())
		// A serve whose storage.sqlite_path is the default and whose
		// key-encryption key lives elsewhere.
		kek := filepath.Join(t.TempDir(), "kek")
		if err := gatehouse("keys", "gen-kek", kek); err != nil {
			t.Fatal(err)
		}
		cfg := filepath.Join(t.TempDir(), "gatehouse.yaml")
		if err := os.WriteFile(cfg, []byte("issuer: https://as.example.com\nkeys:\n  encryption_key_file: "+kek+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := gatehouse("migrate", "--config", cfg); err != nil {
			t.Fatalf("migrate --config: %v", err)
		}
		if err := gatehouse("keys", "rotate", "--config", cfg); err != nil {
			t.Fatalf("keys rotate --config: %v", err)
		}
		db := filepath.Join(defaultDataDir, devDatabase)
		files := func() []byte {
			t.Helper()
			b, err := os.ReadFile(db)
			if err != nil {
				t.Fatal(err)
			}
			wal, _ := os.ReadFile(db + "-wal")
			return append(b, wal...)
		}
		before := files()
		for _, args := range [][]string{{"keys", "rotate"}, {"keys", "list"}, {"user", "list", "--data", defaultDataDir}, {"migrate"}} {
			refused(t, gatehouse(args...), db+" is not a `gatehouse dev` database", "no key-encryption key", "--config FILE", "nothing was written")
		}
		// dev refuses it too, before it serves or writes anything.
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		refused(t, run(ctx, []string{"dev", "--listen", "127.0.0.1:0", "--mcp-listen", "127.0.0.1:0"}, &out), "`gatehouse serve` made it", "another --data DIR")
		missing(t, filepath.Join(defaultDataDir, devKEK), filepath.Join(defaultDataDir, devMarker), filepath.Join(defaultDataDir, devPasswordFile))
		if !bytes.Equal(before, files()) {
			t.Errorf("the serve database changed")
		}
		if err := gatehouse("keys", "list", "--config", cfg); err != nil || strings.Count(out.String(), "ES256") != 2 {
			t.Errorf("keys list --config = %v, want the 2 keys:\n%s", err, out.String())
		}
	})

	t.Run("database and kek without the dev mark", func(t *testing.T) {
		data := newDevData(t)
		if err := os.Remove(filepath.Join(data, devMarker)); err != nil {
			t.Fatal(err)
		}
		refused(t, gatehouse("keys", "rotate", "--data", data), "not the mark `gatehouse dev` leaves", "--config FILE", "gatehouse dev --data "+data)
		// Starting dev once marks a directory an older dev made.
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		run(ctx, []string{"dev", "--data", data, "--listen", "127.0.0.1:0", "--mcp-listen", "127.0.0.1:0"}, &out)
		if err := gatehouse("keys", "rotate", "--data", data); err != nil {
			t.Errorf("keys rotate after dev marked the directory: %v", err)
		}
	})
}

// TestKeysRekey: keys rekey re-encrypts the signing keys under a new KEK;
// afterwards the old KEK opens nothing and the new one everything.
func TestKeysRekey(t *testing.T) {
	data := newDevData(t)
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

// TestKeysWithdraw: keys withdraw takes a retired key, the active key
// (replaced first by a new key) or, with --all, every key but a new one;
// keys list shows the withdrawn keys with the time, and the audit log the
// withdrawals. An unknown kid is a clear error; withdrawing twice changes
// nothing; rekey skips the tombstones.
func TestKeysWithdraw(t *testing.T) {
	data := newDevData(t)
	// --data goes right after the subcommand, so that a key id (base64url:
	// it may start with "-") can follow "--".
	do := func(args ...string) (string, error) {
		var out bytes.Buffer
		err := run(t.Context(), append(append(slices.Clone(args[:2]), "--data", data), args[2:]...), &out)
		return out.String(), err
	}
	must := func(args ...string) string {
		t.Helper()
		out, err := do(args...)
		if err != nil {
			t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return out
	}
	// states returns kid → STATE column of keys list ("signing",
	// "next", "withdrawn"...).
	states := func() map[string]string {
		t.Helper()
		return listStates(must("keys", "list"))
	}
	kidWith := func(m map[string]string, state string) string {
		t.Helper()
		for k, s := range m {
			if s == state {
				return k
			}
		}
		t.Fatalf("keys list has no %s key: %v", state, m)
		return ""
	}

	must("keys", "rotate") // the first key, then a second, which waits for keys.activation_delay
	before := states()
	// The first key signs, but storage has retired it: withdrawing it
	// needs no new key (the second signs at once). The second is what
	// storage lists as active: a new key replaces it first.
	retired, active := kidWith(before, "signing"), kidWith(before, "next")
	// Both change when the new key has been published for the default
	// keys.activation_delay, 90 s.
	list := must("keys", "list")
	created, err := time.Parse(time.RFC3339, strings.Fields(listLine(t, list, active))[2])
	if err != nil {
		t.Fatal(err)
	}
	due := created.Add(90 * time.Second).Format(time.RFC3339)
	for kid, want := range map[string]string{retired: "signing  verify-only at " + due, active: "next  signing at " + due} {
		if line := strings.Join(strings.Fields(listLine(t, list, kid))[3:], " "); line != strings.Join(strings.Fields(want), " ") {
			t.Errorf("keys list right after keys rotate shows %s as %q, want %q", kid, line, want)
		}
	}

	for _, args := range [][]string{{"keys", "withdraw"}, {"keys", "withdraw", "--all", "--", active}} {
		if out, err := do(args...); err == nil || !strings.Contains(err.Error(), "usage") {
			t.Errorf("%s = %v\n%s; want a usage error", strings.Join(args, " "), err, out)
		}
	}
	if _, err := do("keys", "withdraw", "no-such-kid"); err == nil || !strings.Contains(err.Error(), `no signing key "no-such-kid"`) {
		t.Errorf("keys withdraw no-such-kid = %v, want an error naming the kid", err)
	}
	if got := states(); !cmp.Equal(got, before) {
		t.Errorf("refused withdrawals changed the keys: %v, want %v", got, before)
	}

	if out := must("keys", "withdraw", "--", retired); !strings.Contains(out, "withdrew signing key "+retired) || strings.Contains(out, "new signing key") {
		t.Errorf("keys withdraw RETIRED:\n%s\nwant the withdrawal and no new key", out)
	}
	if out := must("keys", "withdraw", "--", retired); !strings.Contains(out, "already withdrawn") {
		t.Errorf("keys withdraw RETIRED again:\n%s\nwant \"already withdrawn\"", out)
	}
	out := must("keys", "withdraw", "--", active)
	if !strings.Contains(out, "replaces "+active) || !strings.Contains(out, "withdrew signing key "+active) {
		t.Errorf("keys withdraw ACTIVE:\n%s\nwant a replacement and the withdrawal", out)
	}
	after := states()
	if after[retired] != "withdrawn" || after[active] != "withdrawn" || len(after) != 3 {
		t.Errorf("keys list after two withdrawals: %v, want both withdrawn and one new key", after)
	}
	replacement := kidWith(after, "signing")
	if line := listLine(t, must("keys", "list"), active); !strings.Contains(line, "withdrawn at 20") {
		t.Errorf("keys list shows the withdrawn key as %q, want its withdrawal time", line)
	}

	if out := must("keys", "withdraw", "--all"); !strings.Contains(out, "withdrew signing key "+replacement) {
		t.Errorf("keys withdraw --all:\n%s\nwant %s withdrawn", out, replacement)
	}
	final := states()
	if kidWith(final, "signing") == replacement || len(final) != 4 {
		t.Errorf("keys list after --all: %v, want one new active key and every other withdrawn", final)
	}
	for kid, s := range final {
		if s != "signing" && s != "withdrawn" {
			t.Errorf("after --all key %s is %s, want withdrawn", kid, s)
		}
	}

	if out := must("keys", "rekey", "--new-key-file", writeKEK(t)); !strings.Contains(out, "re-encrypted 1 signing keys") {
		t.Errorf("keys rekey after withdrawals:\n%s\nwant only the live key re-encrypted", out)
	}
	if out := must("audit", "query", "--since", "1h"); strings.Count(out, "key.withdrawn") != 3 {
		t.Errorf("audit has %d key.withdrawn events, want 3:\n%s", strings.Count(out, "key.withdrawn"), out)
	}
}

// listLine returns the line of keys list output about kid.
func listLine(t *testing.T, out, kid string) string {
	t.Helper()
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, kid+" ") {
			return line
		}
	}
	t.Fatalf("keys list has no line for %s:\n%s", kid, out)
	return ""
}

// writeKEK writes a new key-encryption key with keys gen-kek and returns
// its path.
func writeKEK(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "kek")
	var out bytes.Buffer
	if err := run(t.Context(), []string{"keys", "gen-kek", path}, &out); err != nil {
		t.Fatalf("keys gen-kek: %v\n%s", err, out.String())
	}
	return path
}

// TestKEKLeakProcedure runs the commands SECURITY.md gives for a leaked
// KEK, in its order: afterwards one signing key is live, sealed under the
// new KEK (the old KEK opens nothing), and every key an old copy of the
// database holds is withdrawn.
func TestKEKLeakProcedure(t *testing.T) {
	data := newDevData(t)
	must := func(args ...string) string {
		t.Helper()
		var out bytes.Buffer
		if err := run(t.Context(), append(args, "--data", data), &out); err != nil {
			t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out.String())
		}
		return out.String()
	}
	must("keys", "rotate")
	var old []string
	for _, line := range strings.Split(strings.TrimSpace(must("keys", "list")), "\n")[1:] {
		old = append(old, strings.Fields(line)[0])
	}
	oldKEK, err := os.ReadFile(filepath.Join(data, "kek"))
	if err != nil {
		t.Fatal(err)
	}

	newKEK := filepath.Join(t.TempDir(), "kek.new")
	var out bytes.Buffer
	if err := run(t.Context(), []string{"keys", "gen-kek", newKEK}, &out); err != nil {
		t.Fatal(err)
	}
	must("keys", "rekey", "--new-key-file", newKEK)
	b, err := os.ReadFile(newKEK)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(data, "kek"), b, 0o600); err != nil {
		t.Fatal(err)
	}
	must("keys", "withdraw", "--all")

	list := must("keys", "list")
	for _, kid := range old {
		if line := listLine(t, list, kid); !strings.Contains(line, "withdrawn") {
			t.Errorf("after the procedure old key %s is %q, want withdrawn", kid, line)
		}
	}
	if n := strings.Count(strings.Join(slices.Collect(maps.Values(listStates(list))), " "), "signing"); n != 1 {
		t.Errorf("after the procedure %d signing keys, want 1:\n%s", n, list)
	}
	must("keys", "rotate") // the new KEK opens the live key
	if err := os.WriteFile(filepath.Join(data, "kek"), oldKEK, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := run(t.Context(), []string{"keys", "rotate", "--data", data}, &out); err == nil || !strings.Contains(err.Error(), "wrong master key") {
		t.Errorf("keys rotate with the leaked KEK = %v, want it unable to open the live key", err)
	}
}

// newDevData returns a dev data directory as `gatehouse dev` leaves it
// (database migrated, key-encryption key, mark), which is all admin
// commands given --data accept.
func newDevData(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "data")
	c, err := devConfig(dir, "127.0.0.1:8080", true)
	if err != nil {
		t.Fatal(err)
	}
	st, err := openStore(t.Context(), c, true)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	return dir
}

// listStates returns kid → STATE column of keys list output.
func listStates(out string) map[string]string {
	m := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n")[1:] {
		f := strings.Fields(line)
		m[f[0]] = f[3]
	}
	return m
}

// TestAdminConfigNeedsExistingDatabase (review finding): with --config and
// SQLite, an admin command never creates or migrates the database. From
// another directory, the relative default path finds nothing: the command
// fails, saying so, and creates nothing there.
func TestAdminConfigNeedsExistingDatabase(t *testing.T) {
	kek := filepath.Join(t.TempDir(), "kek")
	if err := run(t.Context(), []string{"keys", "gen-kek", kek}, io.Discard); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(t.TempDir(), "gatehouse.yaml")
	if err := os.WriteFile(cfg, []byte("issuer: https://as.example.com\nkeys:\n  encryption_key_file: "+kek+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Chdir(t.TempDir()) // not where the server runs
	for _, args := range [][]string{
		{"keys", "rotate"},
		{"client", "block", "--host", "evil.example"},
		{"user", "list"},
		{"keys", "rekey", "--new-key-file", kek},
	} {
		err := run(t.Context(), append(args, "--config", cfg), io.Discard)
		if err == nil || !strings.Contains(err.Error(), "no database at storage.sqlite_path ./gatehouse-data/gatehouse.db") || !strings.Contains(err.Error(), "gatehouse migrate") {
			t.Errorf("gatehouse %s --config (no database here) = %v, want it refused naming the path and gatehouse migrate", strings.Join(args, " "), err)
		}
		if _, err := os.Stat(defaultDataDir); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("gatehouse %s created %s (%v)", strings.Join(args, " "), defaultDataDir, err)
		}
	}
	// Once made (migrate, or a first serve), the same commands work.
	if err := run(t.Context(), []string{"migrate", "--config", cfg}, io.Discard); err != nil {
		t.Fatal(err)
	}
	if err := run(t.Context(), []string{"keys", "rotate", "--config", cfg}, io.Discard); err != nil {
		t.Errorf("keys rotate --config after migrate: %v", err)
	}
}
