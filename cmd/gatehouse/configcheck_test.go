package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// fiveMistakes is a config file with five different mistakes: a
// misspelt key, a duration without a unit, a port that is not one, a
// driver that does not exist and a number that is a word.
const fiveMistakes = `issuer: https://auth.example.com
listen: 127.0.0.1:notaport
keys:
  encryption_key_file: %KEK%
tokens:
  access_token_ttl: 10
storage:
  driver: mysql
registration:
  idel_ttl: 720h
gateway:
  routes:
    - name: notes
      url: https://mcp.example.com/notes/mcp
      upstream:
        url: http://127.0.0.1:3001/mcp
      max_sessions: lots
`

// TestConfigCheckFiveProblems (issue 12, item 4): `gatehouse config check`
// on a file with five different mistakes reports all five, one per line
// with the file's line and the key, then their count, and fails; `serve`
// refuses the same file with the same five.
func TestConfigCheckFiveProblems(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "gatehouse.yaml")
	if err := os.WriteFile(path, []byte(strings.ReplaceAll(fiveMistakes, "%KEK%", writeKEK(t))), 0o600); err != nil {
		t.Fatal(err)
	}
	want := []string{
		path + `:2:1: listen "127.0.0.1:notaport": port "notaport" is not a number from 0 to 65535 or a known service name`,
		path + `:6:21: tokens.access_token_ttl: "10" is not a duration: give a number and a unit, such as "90s", "10m" or "720h"`,
		path + `:8:3: storage.driver "mysql" must be sqlite or postgres`,
		path + `:10:3: registration.idel_ttl: unknown key "idel_ttl" (did you mean "idle_ttl"?)`,
		path + `:17:21: gateway.routes[0].max_sessions: must be a whole number, not "lots"`,
	}

	var out bytes.Buffer
	err := run(t.Context(), []string{"config", "check", "--config", path}, &out)
	if err == nil || err.Error() != "5 problems" {
		t.Errorf("config check = %v, want the error %q (exit status 1)", err, "5 problems")
	}
	got := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(got) > len(want) {
		got = got[len(got)-len(want):]
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("config check output ends (-want +got):\n%s\nwhole output:\n%s", diff, out.String())
	}
	if !strings.Contains(out.String(), "driver: mysql") {
		t.Errorf("config check does not print the effective configuration:\n%s", out.String())
	}

	err = run(t.Context(), []string{"serve", "--config", path, "--listen", "127.0.0.1:0"}, &out)
	for _, w := range want[1:] {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("serve = %v, want it to report %q", err, w)
		}
	}
	// The flag replaced the bad listen address: serve does not blame the file for it.
	if err != nil && strings.Contains(err.Error(), "notaport") {
		t.Errorf("serve --listen 127.0.0.1:0 = %v, still reporting the file's listen", err)
	}
}

// TestConfigCheckOutcomes: a good file passes; a missing file, and a bad
// --listen given to serve or gateway, are one problem each, named as such.
func TestConfigCheckOutcomes(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	if err := os.WriteFile(good, []byte("issuer: https://auth.example.com\nlisten: \":https\"\nkeys:\n  encryption_key_file: "+writeKEK(t)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := run(t.Context(), []string{"config", "check", "--config", good}, &out); err != nil || !strings.HasSuffix(out.String(), "# configuration OK\n") {
		t.Errorf("config check of a good file = %v, output:\n%s", err, out.String())
	}

	out.Reset()
	missing := filepath.Join(dir, "missing.yaml")
	err := run(t.Context(), []string{"config", "check", "--config", missing}, &out)
	if want := missing + ": cannot read the config file: no such file or directory\n"; err == nil || err.Error() != "1 problem" || out.String() != want {
		t.Errorf("config check of a missing file = %v, output %q; want 1 problem, output %q", err, out.String(), want)
	}

	err = run(t.Context(), []string{"serve", "--config", good, "--listen", "127.0.0.1:99999"}, &out)
	if want := `flag --listen: listen "127.0.0.1:99999": port 99999 is out of range (0 to 65535)`; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("serve --listen 127.0.0.1:99999 = %v, want %q", err, want)
	}
	err = run(t.Context(), []string{"gateway", "--config", good, "--listen", "127.0.0.1:notaport"}, &out)
	if want := `flag --listen: gateway.listen "127.0.0.1:notaport": port "notaport" is not a number from 0 to 65535 or a known service name`; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("gateway --listen 127.0.0.1:notaport = %v, want %q", err, want)
	}
}
