package main

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gatehouse-mcp/gatehouse/internal/password"
)

// TestDevUserPasswordNotInFlag (issue 11, item 8c): `gatehouse dev --user
// NAME:PASSWORD` is refused before anything is created, with a message
// saying where the password goes instead.
func TestDevUserPasswordNotInFlag(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	// Cancelled: were the flag accepted, dev would stop at once rather
	// than serve.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var out bytes.Buffer
	err := run(ctx, []string{"dev", "--data", data, "--listen", "127.0.0.1:0", "--mcp-listen", "127.0.0.1:0", "--user", "tester:a-long-password"}, &out)
	if err == nil {
		t.Fatal("dev --user tester:a-long-password succeeded, want refused")
	}
	for _, want := range []string{"--user takes only the user name", "--password-file FILE", devPasswordEnv, "process list"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("dev --user NAME:PASSWORD = %q, want it to mention %q", err, want)
		}
	}
	if strings.Contains(err.Error(), "a-long-password") {
		t.Errorf("the refusal repeats the password: %q", err)
	}
	if _, err := os.Stat(data); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the refused command created the data directory (stat: %v)", err)
	}
}

// TestDevPassword: the demo user's password comes from --password-file,
// else GATEHOUSE_DEV_PASSWORD, else a generated one kept in the data
// directory (for any user name); the user can then sign in with it.
func TestDevPassword(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "pw")
	if err := os.WriteFile(file, []byte("from-the-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	short := filepath.Join(dir, "short")
	if err := os.WriteFile(short, []byte("short\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := func(v string) func(string) (string, bool) {
		return func(k string) (string, bool) {
			if k == devPasswordEnv && v != "" {
				return v, true
			}
			return "", false
		}
	}
	tests := []struct {
		name       string
		file, env  string
		wantPW     string // "" for a generated one
		wantSource string
		wantErr    string
	}{
		{"file", file, "", "from-the-file", "--password-file " + file, ""},
		{"file beats env", file, "from-the-env", "from-the-file", "--password-file " + file, ""},
		{"env", "", "from-the-env", "from-the-env", devPasswordEnv, ""},
		{"generated", "", "", "", "", ""},
		{"file too short", short, "", "", "", "--password-file: the password must be at least 8 characters"},
		{"file missing", filepath.Join(dir, "none"), "", "", "", "--password-file: open "},
		{"env too short", "", "short", "", "", devPasswordEnv + ": the password must be at least 8 characters"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data := t.TempDir()
			c, err := devConfig(data, "127.0.0.1:8080", true)
			if err != nil {
				t.Fatal(err)
			}
			st, err := openStore(t.Context(), c, true)
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			pw, source, err := devPassword(data, tt.file, env(tt.env))
			if tt.wantErr != "" {
				if err == nil || !strings.HasPrefix(err.Error(), tt.wantErr) {
					t.Fatalf("devPassword(%q, env %q) = %v, want %q", tt.file, tt.env, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("devPassword(%q, env %q) = %v", tt.file, tt.env, err)
			}
			kept, keptErr := os.ReadFile(filepath.Join(data, devPasswordFile))
			if tt.wantPW == "" {
				if len(pw) < 16 || keptErr != nil || string(kept) != pw+"\n" {
					t.Errorf("generated password %q, kept %q (%v); want a long one kept in %s", pw, kept, keptErr, devPasswordFile)
				}
				if again, _, _ := devPassword(data, "", env("")); again != pw {
					t.Errorf("second start generated %q, want the kept %q", again, pw)
				}
			} else if pw != tt.wantPW || keptErr == nil {
				t.Errorf("devPassword = %q (kept file: %v), want %q and nothing kept", pw, keptErr, tt.wantPW)
			}
			if source != tt.wantSource {
				t.Errorf("source = %q, want %q", source, tt.wantSource)
			}
			if err := upsertUser(t.Context(), st, "tester", pw); err != nil {
				t.Fatal(err)
			}
			u, err := st.GetUserByName(t.Context(), "tester")
			if err != nil {
				t.Fatal(err)
			}
			if ok, _ := password.Verify(pw, u.PasswordHash); !ok {
				t.Errorf("user tester does not have the password %q", pw)
			}
		})
	}
}

// TestUpsertUser: `dev` starting again with the same password leaves the
// user as it is (their sessions and tokens live on); a new password is
// set and ends what the user held, as `user passwd` does.
func TestUpsertUser(t *testing.T) {
	ctx := t.Context()
	c, err := devConfig(t.TempDir(), "127.0.0.1:8080", true)
	if err != nil {
		t.Fatal(err)
	}
	st, err := openStore(ctx, c, true)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := upsertUser(ctx, st, "tester", "first-password"); err != nil {
		t.Fatal(err)
	}
	created, err := st.GetUserByName(ctx, "tester")
	if err != nil {
		t.Fatal(err)
	}
	if err := upsertUser(ctx, st, "tester", "first-password"); err != nil {
		t.Fatal(err)
	}
	same, err := st.GetUserByName(ctx, "tester")
	if err != nil {
		t.Fatal(err)
	}
	if same.PasswordHash != created.PasswordHash || same.Epoch != created.Epoch {
		t.Errorf("the same password again: hash changed %v, epoch %d → %d; want the user untouched", same.PasswordHash != created.PasswordHash, created.Epoch, same.Epoch)
	}
	if err := upsertUser(ctx, st, "tester", "second-password"); err != nil {
		t.Fatal(err)
	}
	changed, err := st.GetUserByName(ctx, "tester")
	if err != nil {
		t.Fatal(err)
	}
	if ok, _ := password.Verify("second-password", changed.PasswordHash); !ok || changed.Epoch <= created.Epoch || changed.ID != created.ID {
		t.Errorf("a new password: verifies %v, epoch %d → %d, id %s → %s; want it set, the epoch advanced, the same user", ok, created.Epoch, changed.Epoch, created.ID, changed.ID)
	}
}
