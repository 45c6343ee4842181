//go:build linux

package main

import (
	"bytes"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/gatehouse-mcp/gatehouse/internal/password"
	"github.com/gatehouse-mcp/gatehouse/internal/ptytest"
	"github.com/gatehouse-mcp/gatehouse/internal/storage"
)

// TestUserAddAtTerminal: `gatehouse user add` at a terminal asks for the
// password twice, stating the rules, without echoing it, and stores a
// hash of it; a second typing that differs, a password breaking the rules
// and Ctrl-C each change nothing. From a pipe it reads one line without a
// prompt.
func TestUserAddAtTerminal(t *testing.T) {
	data := newDevData(t)
	const pw = "correct horse battery"
	prompt := "New password for alice (" + passwordRules + "): "
	again := "Repeat the password: "
	hashOf := func(name string) (string, bool) {
		t.Helper()
		c, err := devConfig(data, "127.0.0.1:8080", false)
		if err != nil {
			t.Fatal(err)
		}
		st, err := openStore(t.Context(), c, false)
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		u, err := st.GetUserByName(t.Context(), name)
		if errors.Is(err, storage.ErrNotFound) {
			return "", false
		} else if err != nil {
			t.Fatal(err)
		}
		return u.PasswordHash, true
	}

	t.Run("refused", func(t *testing.T) {
		for _, tt := range []struct {
			name    string
			prompts []string
			typed   []string
			want    string
		}{
			{"second typing differs", []string{prompt, again}, []string{pw + "\r", pw + "!\r"}, "gatehouse: the two passwords differ; nothing was changed"},
			{"too short", []string{prompt}, []string{"short\r"}, "gatehouse: the password must be " + passwordRules},
			{"Ctrl-C", []string{prompt}, []string{"\x03"}, "gatehouse: interrupted; nothing was changed"},
		} {
			t.Run(tt.name, func(t *testing.T) {
				shown, err := ptytest.Run(t, gatehouseCmd(t, "user", "add", "alice", "--data", data), tt.prompts, tt.typed)
				if err == nil || !strings.Contains(shown, tt.want) {
					t.Errorf("user add alice typing %q = %v, want exit 1 saying %q; the terminal shows:\n%s", tt.typed, err, tt.want, shown)
				}
				for _, typed := range tt.typed {
					if s := strings.TrimSpace(typed); len(s) > 1 && strings.Contains(shown, s) {
						t.Errorf("the terminal shows the typed %q:\n%s", s, shown)
					}
				}
				if _, ok := hashOf("alice"); ok {
					t.Error("user alice exists after a refused user add")
				}
			})
		}
	})

	t.Run("added", func(t *testing.T) {
		shown, err := ptytest.Run(t, gatehouseCmd(t, "user", "add", "alice", "--data", data), []string{prompt, again}, []string{pw + "\r", pw + "\r"})
		if err != nil || !strings.Contains(shown, "added user alice") {
			t.Fatalf("user add alice at a terminal = %v; the terminal shows:\n%s", err, shown)
		}
		if strings.Contains(shown, pw) || strings.Contains(shown, "correct") {
			t.Errorf("the terminal echoed the password:\n%s", shown)
		}
		hash, _ := hashOf("alice")
		if ok, err := password.Verify(pw, hash); !ok || err != nil {
			t.Errorf("password.Verify(typed password, alice's hash) = %v, %v; want true", ok, err)
		}
	})

	t.Run("passwd", func(t *testing.T) {
		const pw2 = "another long password"
		shown, err := ptytest.Run(t, gatehouseCmd(t, "user", "passwd", "alice", "--data", data), []string{prompt, again}, []string{pw2 + "\r", pw2 + "\r"})
		if err != nil || !strings.Contains(shown, "password updated for alice") || strings.Contains(shown, "another") {
			t.Fatalf("user passwd alice at a terminal = %v; the terminal shows:\n%s", err, shown)
		}
		hash, _ := hashOf("alice")
		if ok, _ := password.Verify(pw2, hash); !ok {
			t.Error("the typed password does not verify after user passwd")
		}
	})

	t.Run("pipe", func(t *testing.T) {
		cmd := gatehouseCmd(t, "user", "add", "bob", "--data", data)
		// The pipe stays open after the line: one line is all it reads.
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		defer w.Close()
		cmd.Stdin = r
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		w.WriteString("piped-password\nsecond line\n")
		err = cmd.Run()
		r.Close()
		if err != nil || out.String() != "added user bob\n" {
			t.Fatalf("user add bob from a pipe = %v, printed %q; want no prompt, only %q", err, out.String(), "added user bob\n")
		}
		hash, _ := hashOf("bob")
		if ok, _ := password.Verify("piped-password", hash); !ok {
			t.Error("the piped password does not verify")
		}

		cmd = gatehouseCmd(t, "user", "add", "carol", "--data", data)
		cmd.Stdin = strings.NewReader("short\n")
		out.Reset()
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err == nil || out.String() != "gatehouse: the password must be "+passwordRules+"\n" {
			t.Errorf("user add carol from a pipe with a short password = %v, printed %q", err, out.String())
		}
	})
}

// TestCheckPasswordCountsCharacters: the rule says "at least 8
// characters", so it counts characters, not bytes.
func TestCheckPasswordCountsCharacters(t *testing.T) {
	for _, tt := range []struct {
		pw string
		ok bool
	}{
		{"abcdefgh", true},
		{"abcdefg", false},
		{"pässwörd", true}, // 8 characters, 10 bytes
		{"ääää", false},    // 4 characters, 8 bytes
		{"🔑🔑🔑🔑🔑🔑🔑🔑", true}, // 8 characters
	} {
		if err := checkPassword(tt.pw); (err == nil) != tt.ok {
			t.Errorf("checkPassword(%q) = %v, want ok %v", tt.pw, err, tt.ok)
		}
	}
}
