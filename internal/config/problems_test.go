package config

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// writeConfig writes text to gatehouse.yaml (or name) in a temporary
// directory and returns its path.
func writeConfig(t *testing.T, name, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	must(t, os.WriteFile(path, []byte(text), 0o600))
	return path
}

// lines is the problems of err, one string each, with the file's
// directory cut so that the wants read as the user sees them.
func lines(t *testing.T, path string, err error) []string {
	t.Helper()
	if err == nil {
		return nil
	}
	var ps Problems
	if !errors.As(err, &ps) {
		t.Fatalf("error %v (%T) is not Problems", err, err)
	}
	var out []string
	for _, p := range ps {
		out = append(out, strings.ReplaceAll(p.Error(), filepath.Dir(path)+string(filepath.Separator), ""))
	}
	return out
}

// TestLoadReportsEveryProblem: Load reports every unknown key and every
// value of the wrong type at once, each with its line, column and key
// path, instead of stopping at the first.
func TestLoadReportsEveryProblem(t *testing.T) {
	for _, tt := range []struct {
		name string
		file string // gatehouse.yaml, or j.json when it starts with {
		want []string
	}{
		{"misspelt keys at every depth", `issuer: https://auth.example.com
lisen: 127.0.0.1:8080
registration:
  idel_ttl: 720h
  cimd:
    max_clinets: 5
gateway:
  routes:
    - name: notes
      url: https://mcp.example.com/notes/mcp
      upstream: {url: "http://127.0.0.1:3001/mcp", hedaer: X-Key}
`, []string{
			`gatehouse.yaml:2:1: lisen: unknown key "lisen" (did you mean "listen"?)`,
			`gatehouse.yaml:4:3: registration.idel_ttl: unknown key "idel_ttl" (did you mean "idle_ttl"?)`,
			`gatehouse.yaml:6:5: registration.cimd.max_clinets: unknown key "max_clinets" (did you mean "max_clients"?)`,
			`gatehouse.yaml:11:52: gateway.routes[0].upstream.hedaer: unknown key "hedaer" (did you mean "header"?)`,
		}},
		{"a key nothing resembles lists the keys", "tokens:\n  lifetime: 5m\n", []string{
			`gatehouse.yaml:2:3: tokens.lifetime: unknown key "lifetime" (the keys of tokens are access_token_ttl, refresh_token_ttl, grant_ttl, code_ttl, refresh_retry_window)`,
		}},
		{"a key in the wrong case", "Issuer: https://auth.example.com\n", []string{
			`gatehouse.yaml:1:1: Issuer: unknown key "Issuer" (did you mean "issuer"?)`,
		}},
		{"secrets are never read from the file", "storage:\n  postgres_dsn: postgres://u:p@db/x\nkeys:\n  encryption_key: abc\n", []string{
			`gatehouse.yaml:2:3: storage.postgres_dsn: unknown key "postgres_dsn": the DSN is never read from the config file: set postgres_dsn_file, or the environment variable GATEHOUSE_STORAGE_POSTGRES_DSN`,
			`gatehouse.yaml:4:3: keys.encryption_key: unknown key "encryption_key": the key is never read from the config file: set encryption_key_file`,
		}},
		{"wrong types", `tokens:
  access_token_ttl: 10
  code_ttl: [1m]
login:
  max_failures: five
  window: 10 minutes
allow_insecure_issuer: maybe
trusted_proxies: 10.0.0.0/8
storage: sqlite
gateway:
  routes:
    - oops
    - name: x
      max_body_bytes: 4MiB
      scopes: {a: b}
`, []string{
			`gatehouse.yaml:2:21: tokens.access_token_ttl: "10" is not a duration: give a number and a unit, such as "90s", "10m" or "720h"`,
			`gatehouse.yaml:3:13: tokens.code_ttl: must be a duration such as "10m", not a list`,
			`gatehouse.yaml:5:17: login.max_failures: must be a whole number, not "five"`,
			`gatehouse.yaml:6:11: login.window: "10 minutes" is not a duration: give a number and a unit, such as "90s", "10m" or "720h"`,
			`gatehouse.yaml:7:24: allow_insecure_issuer: must be true or false, not "maybe"`,
			`gatehouse.yaml:8:18: trusted_proxies: must be a list, not "10.0.0.0/8"`,
			`gatehouse.yaml:9:10: storage: must be a mapping of keys, not "sqlite"`,
			`gatehouse.yaml:12:7: gateway.routes[0]: must be a mapping of keys, not "oops"`,
			`gatehouse.yaml:14:23: gateway.routes[1].max_body_bytes: must be a whole number, not "4MiB"`,
			`gatehouse.yaml:15:15: gateway.routes[1].scopes: must be a list, not a mapping`,
		}},
		{"a number too large for its field", "login:\n  max_failures: 99999999999999999999\n", []string{
			`gatehouse.yaml:2:17: login.max_failures: must be a whole number, not "99999999999999999999"`,
		}},
		{"a repeated key", "issuer: https://a.example.com\nlog:\n  level: info\n  level: debug\n", []string{
			`gatehouse.yaml:4:3: log.level: key "level" appears twice (first on line 3)`,
		}},
		{"JSON", "{\n\t\"issuer\": \"https://auth.example.com\",\n\t\"tokens\": {\"acess_token_ttl\": \"5m\"},\n\t\"login\": {\"max_failures\": \"5\"}\n}\n", []string{
			`j.json:3:13: tokens.acess_token_ttl: unknown key "acess_token_ttl" (did you mean "access_token_ttl"?)`,
			`j.json:4:28: login.max_failures: must be a whole number, not "5"`,
		}},
		// The file could not be read or parsed at all: one problem.
		{"not YAML", "issuer: https://a.example.com\n  tokens: [\n", []string{
			`gatehouse.yaml:2: not valid YAML (or JSON): mapping values are not allowed in this context`,
		}},
		{"not a mapping", "- issuer\n", []string{
			`gatehouse.yaml:1:1: the file must be a mapping of keys such as "issuer: https://auth.example.com", not a list`,
		}},
		{"two documents", "issuer: https://a.example.com\n---\nissuer: https://b.example.com\n", []string{
			`gatehouse.yaml:2:1: the file holds more than one YAML document (a line "---"); a config file is one document`,
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			name := "gatehouse.yaml"
			if strings.HasPrefix(tt.file, "{") {
				name = "j.json"
			}
			path := writeConfig(t, name, tt.file)
			_, err := Load(path, env(nil))
			if diff := cmp.Diff(tt.want, lines(t, path, err)); diff != "" {
				t.Errorf("Load problems (-want +got):\n%s", diff)
			}
		})
	}
}

// TestLoadMissingFile: a missing file is one problem naming the file,
// and Fatal (nothing to validate).
func TestLoadMissingFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nope.yaml")
	_, err := Load(path, env(nil))
	var ps Problems
	if !errors.As(err, &ps) || !ps.Fatal() || len(ps) != 1 || ps[0].Error() != path+": cannot read the config file: no such file or directory" {
		t.Errorf("Load(missing file) = %v, want one fatal problem naming %s", err, path)
	}
}

// TestLoadKeepsGoodValues: a refused key keeps its default while the
// rest of the file applies; YAML's looser scalars are taken the way a
// reader means them; anchors and merge keys work.
func TestLoadKeepsGoodValues(t *testing.T) {
	path := writeConfig(t, "gatehouse.yaml", `issuer: https://auth.example.com
listen: 8080
allow_insecure_issuer: yes
tokens:
  access_token_ttl: 10
  code_ttl: 30s
registration:
  cimd:
    mode: off
base: &route
  upstream: {url: "http://127.0.0.1:3001/mcp"}
gateway:
  routes:
    - <<: *route
      name: notes
      url: https://mcp.example.com/notes/mcp
`)
	c, err := Load(path, env(nil))
	want := []string{
		`gatehouse.yaml:5:21: tokens.access_token_ttl: "10" is not a duration: give a number and a unit, such as "90s", "10m" or "720h"`,
		`gatehouse.yaml:10:1: base: unknown key "base" (the keys of the top level are issuer, listen, admin_listen, allow_insecure_issuer, trust_proxy_headers, trusted_proxies, storage, keys, tokens, login, log, audit, identity, registration, token_exchange, dpop, passkeys, gateway, branding)`,
	}
	if diff := cmp.Diff(want, lines(t, path, err)); diff != "" {
		t.Errorf("Load problems (-want +got):\n%s", diff)
	}
	if c.Issuer != "https://auth.example.com" || c.Listen != "8080" || !c.AllowInsecureIssuer || c.Registration.CIMD.Mode != "off" {
		t.Errorf("Load = issuer %q listen %q allow_insecure_issuer %v cimd.mode %q, want the file's values", c.Issuer, c.Listen, c.AllowInsecureIssuer, c.Registration.CIMD.Mode)
	}
	if got := time.Duration(c.Tokens.AccessTokenTTL); got != 10*time.Minute {
		t.Errorf("refused access_token_ttl = %v, want the default 10m", got)
	}
	if got := time.Duration(c.Tokens.CodeTTL); got != 30*time.Second {
		t.Errorf("code_ttl = %v, want 30s from the file", got)
	}
	if len(c.Gateway.Routes) != 1 || c.Gateway.Routes[0].Upstream.URL != "http://127.0.0.1:3001/mcp" {
		t.Errorf("merged route = %+v, want the upstream of the anchor", c.Gateway.Routes)
	}
}

// TestEnvProblemsNameTheVariable: every bad environment variable is
// reported, each naming itself and its key; a value the environment set
// that Validate refuses names the variable, not a line of the file.
func TestEnvProblemsNameTheVariable(t *testing.T) {
	path := writeConfig(t, "gatehouse.yaml", "issuer: https://auth.example.com\nlisten: 127.0.0.1:8080\n")
	c, err := Load(path, env(map[string]string{
		"GATEHOUSE_LOGIN_MAX_FAILURES":    "many",
		"GATEHOUSE_TOKENS_CODE_TTL":       "30",
		"GATEHOUSE_TRUST_PROXY_HEADERS":   "sure",
		"GATEHOUSE_LISTEN":                "127.0.0.1:70000",
		"GATEHOUSE_REGISTRATION_MODE":     "public",
		"GATEHOUSE_REGISTRATION_IDLE_TTL": "1h",
	}))
	want := []string{
		`environment variable GATEHOUSE_TRUST_PROXY_HEADERS: trust_proxy_headers: must be true or false, not "sure"`,
		`environment variable GATEHOUSE_TOKENS_CODE_TTL: tokens.code_ttl: "30" is not a duration: give a number and a unit, such as "90s", "10m" or "720h"`,
		`environment variable GATEHOUSE_LOGIN_MAX_FAILURES: login.max_failures: must be a whole number, not "many"`,
	}
	if diff := cmp.Diff(want, lines(t, path, err)); diff != "" {
		t.Errorf("Load problems (-want +got):\n%s", diff)
	}
	c.Keys.EncryptionKey = make([]byte, 32)
	want = []string{
		`environment variable GATEHOUSE_LISTEN: listen "127.0.0.1:70000": port 70000 is out of range (0 to 65535)`,
		`environment variable GATEHOUSE_REGISTRATION_MODE: registration.mode "public" must be open, token or closed`,
		`environment variable GATEHOUSE_REGISTRATION_IDLE_TTL: registration.idle_ttl (1h0m0s) must be at least tokens.refresh_token_ttl (720h0m0s), or clients are reaped while their refresh tokens are still valid`,
	}
	if diff := cmp.Diff(want, lines(t, path, c.Validate(false))); diff != "" {
		t.Errorf("Validate problems (-want +got):\n%s", diff)
	}
}

// TestValidateLocatesProblems: Validate places each problem at its key's
// line, at the enclosing key's line when the key is missing, at the flag
// that set it, or at the file when nothing in it is to blame; and Collect
// drops what Validate says about a value Load or Resolve refused.
func TestValidateLocatesProblems(t *testing.T) {
	path := writeConfig(t, "gatehouse.yaml", `issuer: https://auth.example.com:99999
listen: 127.0.0.1:notaport
admin_listen: "[::1]:metrics"
storage:
  driver: mysql
keys:
  encryption_key_file: /nonexistent/kek
gateway:
  listen: "localhost:"
  routes:
    - name: notes
      url: https://mcp.example.com/notes/mcp
      list_tools: callable
    - name: files
      url: https://mcp.example.com/files/mcp
      upstream: http://127.0.0.1:3002/mcp
`)
	c, err := Load(path, env(nil))
	c.AdminListen = "127.0.0.1:http"
	c.SetFrom("admin_listen", "flag --admin-listen")
	got := lines(t, path, Collect(err, c.Resolve(env(nil)), c.Validate(false)))
	want := []string{
		`gatehouse.yaml:1:1: issuer "https://auth.example.com:99999": port 99999 is out of range (1 to 65535)`,
		`gatehouse.yaml:2:1: listen "127.0.0.1:notaport": port "notaport" is not a number from 0 to 65535 or a known service name`,
		`gatehouse.yaml:5:3: storage.driver "mysql" must be sqlite or postgres`,
		`gatehouse.yaml:7:3: keys.encryption_key_file: open /nonexistent/kek: no such file or directory`,
		`gatehouse.yaml:9:3: gateway.listen "localhost:": the port is missing (such as :8080)`,
		`gatehouse.yaml:11:7: gateway.routes[0] (notes): upstream needs url (Streamable HTTP), command (stdio) or openapi (an HTTP API)`,
		`gatehouse.yaml:13:7: gateway.routes[0] (notes): list_tools "callable" must be grantable (the default), granted or all`,
		`gatehouse.yaml:16:17: gateway.routes[1].upstream: must be a mapping of keys, not "http://127.0.0.1:3002/mcp"`,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("problems (-want +got):\n%s", diff)
	}
	c.AdminListen = "127.0.0.1:notaport"
	got = lines(t, path, c.Validate(false))
	if want := `flag --admin-listen: admin_listen "127.0.0.1:notaport": port "notaport" is not a number from 0 to 65535 or a known service name`; !strings.Contains(strings.Join(got, "\n"), want) {
		t.Errorf("Validate problems = %q, want %q", got, want)
	}
}

// TestResolveKeepsTheCause: a problem of Resolve still wraps the error
// of reading the file.
func TestResolveKeepsTheCause(t *testing.T) {
	c := Default()
	c.Keys.EncryptionKeyFile = filepath.Join(t.TempDir(), "kek")
	if err := c.Resolve(env(nil)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Resolve with a missing key file = %v, want fs.ErrNotExist", err)
	}
}

func TestCheckListen(t *testing.T) {
	for _, tt := range []struct {
		addr, want string
	}{
		{"127.0.0.1:8080", ""},
		{":8080", ""},
		{"[::1]:0", ""},
		{"localhost:65535", ""},
		{"gatehouse.internal:https", ""},
		{"[fe80::1%eth0]:8080", ""},
		{"127.0.0.1:notaport", `port "notaport" is not a number from 0 to 65535 or a known service name`},
		{"127.0.0.1:65536", "port 65536 is out of range (0 to 65535)"},
		{"127.0.0.1:-1", `port "-1" is not a number from 0 to 65535 or a known service name`},
		{"127.0.0.1", "must be host:port, such as 127.0.0.1:8080 or [::1]:8080 (missing port in address)"},
		{"::1:8080", "must be host:port, such as 127.0.0.1:8080 or [::1]:8080 (too many colons in address)"},
		{"127.0.0.1:", "the port is missing (such as :8080)"},
		{"bad_host!:80", `host "bad_host!" is not an IP address or a host name`},
		{"http://127.0.0.1:8080", "must be host:port, such as 127.0.0.1:8080 or [::1]:8080 (too many colons in address)"},
	} {
		err := CheckListen(tt.addr)
		got := ""
		if err != nil {
			got = err.Error()
		}
		if got != tt.want {
			t.Errorf("CheckListen(%q) = %q, want %q", tt.addr, got, tt.want)
		}
	}
}

func TestEditDistance(t *testing.T) {
	for _, tt := range []struct {
		a, b string
		want int
	}{
		{"idel_ttl", "idle_ttl", 1},
		{"lisen", "listen", 1},
		{"issuer", "issuer", 0},
		{"", "abc", 3},
		{"acess_token_ttl", "access_token_ttl", 1},
	} {
		if got := editDistance(tt.a, tt.b); got != tt.want {
			t.Errorf("editDistance(%q, %q) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
	}
}
