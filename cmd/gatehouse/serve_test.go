package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/gatehouse-mcp/gatehouse/internal/config"
	"github.com/gatehouse-mcp/gatehouse/internal/storage"
	"github.com/gatehouse-mcp/gatehouse/internal/syncbuf"
)

// serveConfig writes a serve config file for issuer in a new directory and
// returns its path. extra is appended to the YAML.
func serveConfig(t *testing.T, issuer, extra string) string {
	t.Helper()
	dir := t.TempDir()
	kek := make([]byte, 32)
	rand.Read(kek)
	if err := os.WriteFile(filepath.Join(dir, "kek"), []byte(hex.EncodeToString(kek)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	y := fmt.Sprintf("issuer: %q\nlisten: 127.0.0.1:0\nadmin_listen: \"\"\nstorage:\n  sqlite_path: %q\nkeys:\n  encryption_key_file: %q\n%s",
		issuer, filepath.Join(dir, "gatehouse.db"), filepath.Join(dir, "kek"), extra)
	path := filepath.Join(dir, "gatehouse.yaml")
	if err := os.WriteFile(path, []byte(y), 0o600); err != nil {
		t.Fatal(err)
	}
	// Admin commands act only on a database that exists: make it, as an
	// operator provisioning before the first serve does.
	if err := run(t.Context(), []string{"migrate", "--config", path}, io.Discard); err != nil {
		t.Fatalf("gatehouse migrate --config %s: %v", path, err)
	}
	return path
}

var servingRE = regexp.MustCompile(`serving issuer \S+ on (\S+)`)

// startServe runs `gatehouse serve` in-process and returns the bound
// address; the server stops when the test ends. It fails the test if
// serve returns before it is ready.
func startServe(t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	out := &syncbuf.Buffer{}
	done := make(chan error, 1)
	go func() { done <- run(ctx, append([]string{"serve"}, args...), out) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("serve returned %v after shutdown", err)
			}
		case <-time.After(15 * time.Second):
			t.Errorf("serve did not stop within 15s")
		}
	})
	deadline := time.After(20 * time.Second)
	for {
		if m := servingRE.FindStringSubmatch(out.String()); m != nil {
			return m[1]
		}
		select {
		case err := <-done:
			done <- err // for the cleanup
			t.Fatalf("serve returned before serving: %v\n%s", err, out.String())
		case <-deadline:
			t.Fatalf("serve not ready after 20s:\n%s", out.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// TestServeRefusesInsecureIssuer: outside dev mode an http issuer is
// refused (an authorization server MUST use TLS, OAuth 2.1 §1.5) unless
// allow_insecure_issuer says a TLS-terminating proxy is in front; the
// refusal names the setting.
func TestServeRefusesInsecureIssuer(t *testing.T) {
	refused := []struct {
		name string
		cfg  string
		args []string
	}{
		{"http non-loopback issuer", serveConfig(t, "http://as.example.com", ""), nil},
		{"http loopback issuer", serveConfig(t, "http://127.0.0.1:8080", ""), nil},
		{"http issuer from the --issuer flag", serveConfig(t, "https://as.example.com", ""), []string{"--issuer", "http://as.example.com"}},
		{"allow_insecure_issuer false", serveConfig(t, "http://as.example.com", "allow_insecure_issuer: false\n"), nil},
	}
	for _, tt := range refused {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			var out strings.Builder
			err := run(ctx, append([]string{"serve", "--config", tt.cfg}, tt.args...), &out)
			if err == nil || !strings.Contains(err.Error(), "allow_insecure_issuer") {
				t.Errorf("serve = %v, want a refusal naming allow_insecure_issuer", err)
			}
			if strings.Contains(out.String(), "serving issuer") {
				t.Errorf("serve started:\n%s", out.String())
			}
		})
	}
	for _, tt := range []struct{ name, issuer, extra string }{
		{"http non-loopback with allow_insecure_issuer", "http://as.example.com", "allow_insecure_issuer: true\n"},
		{"https issuer", "https://as.example.com", ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			addr := startServe(t, "--config", serveConfig(t, tt.issuer, tt.extra))
			resp, err := http.Get("http://" + addr + "/.well-known/oauth-authorization-server")
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"issuer": "`+tt.issuer+`"`) {
				t.Errorf("metadata = %d %s, want issuer %s", resp.StatusCode, body, tt.issuer)
			}
		})
	}
}

// rawRequest sends a GET with one header of n bytes and returns the status.
func rawRequest(t *testing.T, addr, path string, n int) int {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: %s\r\nX-Padding: %s\r\nConnection: close\r\n\r\n", path, addr, strings.Repeat("p", n))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("no response to a %d-byte header: %v", n, err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestServeHeaderLimit: the public and admin listeners of a running
// `serve` refuse request headers over the limit with 431 and serve
// ordinary ones.
func TestServeHeaderLimit(t *testing.T) {
	admin := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	addr := startServe(t, "--config", serveConfig(t, "https://as.example.com", ""), "--admin-listen", admin)
	for _, tt := range []struct {
		name, addr, path string
	}{
		{"public", addr, "/.well-known/oauth-authorization-server"},
		{"admin", admin, "/healthz"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if s := rawRequest(t, tt.addr, tt.path, 8<<10); s != http.StatusOK {
				t.Errorf("an 8 KiB header: status %d, want 200", s)
			}
			if s := rawRequest(t, tt.addr, tt.path, 128<<10); s != http.StatusRequestHeaderFieldsTooLarge {
				t.Errorf("a 128 KiB header: status %d, want 431", s)
			}
		})
	}
}

// TestServeTimeouts: the listeners' http.Server bounds how long a client
// may take to send headers and body, to read the answer, and to idle, so
// slow clients (slowloris) cannot hold connections; and it bounds header
// size. The fields are checked rather than waited for.
func TestServeTimeouts(t *testing.T) {
	hs := httpServer(http.NotFoundHandler(), slog.New(slog.DiscardHandler))
	for _, tt := range []struct {
		name     string
		got, max time.Duration
	}{
		{"ReadHeaderTimeout", hs.ReadHeaderTimeout, 30 * time.Second},
		{"ReadTimeout", hs.ReadTimeout, 2 * time.Minute},
		{"WriteTimeout", hs.WriteTimeout, 5 * time.Minute},
		{"IdleTimeout", hs.IdleTimeout, 10 * time.Minute},
	} {
		if tt.got <= 0 || tt.got > tt.max {
			t.Errorf("%s = %v, want set and at most %v", tt.name, tt.got, tt.max)
		}
	}
	if hs.ReadHeaderTimeout > hs.ReadTimeout {
		t.Errorf("ReadHeaderTimeout %v exceeds ReadTimeout %v", hs.ReadHeaderTimeout, hs.ReadTimeout)
	}
	if hs.MaxHeaderBytes <= 0 || hs.MaxHeaderBytes > 64<<10 {
		t.Errorf("MaxHeaderBytes = %d, want set and at most 64 KiB", hs.MaxHeaderBytes)
	}
	if hs.ErrorLog == nil {
		t.Errorf("ErrorLog is nil: connection errors would go to the standard logger")
	}
}

// TestServeSecurityHeaders: every response of the public handler, whatever
// the route, method or outcome, carries X-Content-Type-Options: nosniff;
// every HTML response also forbids framing.
func TestServeSecurityHeaders(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	c := config.Default()
	c.Issuer = "https://as.example.com"
	c.AdminListen = ""
	c.Storage.SQLitePath = filepath.Join(dir, "gatehouse.db")
	c.Keys.EncryptionKey = make([]byte, 32)
	st, err := openStore(ctx, c, false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	srv, err := newServer(ctx, c, st, slog.New(slog.DiscardHandler), false, false)
	if err != nil {
		t.Fatal(err)
	}
	form := "application/x-www-form-urlencoded"
	tests := []struct {
		method, target, contentType, body string
	}{
		{"GET", "/.well-known/oauth-authorization-server", "", ""},
		{"GET", "/.well-known/openid-configuration", "", ""},
		{"POST", "/.well-known/oauth-authorization-server", "", ""},
		{"GET", "/jwks", "", ""},
		{"DELETE", "/jwks", "", ""},
		{"OPTIONS", "/token", "", ""},
		{"GET", "/token", "", ""},
		{"POST", "/token", form, "grant_type=client_credentials"},
		{"POST", "/token", "application/json", "{}"},
		{"POST", "/revoke", form, "token=x"},
		{"POST", "/introspect", form, "token=x"},
		{"GET", "/authorize", "", ""},
		{"GET", "/authorize?client_id=nobody", "", ""},
		{"GET", "/login", "", ""},
		{"POST", "/login", form, "username=a"},
		{"POST", "/consent", form, "decision=allow"},
		{"GET", "/account/consents", "", ""},
		{"GET", "/account", "", ""},
		{"GET", "/account/login", "", ""},
		{"POST", "/account/login", form, "username=a"},
		{"POST", "/account/revoke", form, "client_id=a"},
		{"POST", "/logout", form, ""},
		{"GET", "/static/gatehouse.css", "", ""},
		{"GET", "/static/nothing.js", "", ""},
		{"GET", "/nothing-here", "", ""},
		{"GET", "/static/../jwks", "", ""},
		{"GET", "//jwks", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.target, func(t *testing.T) {
			req := httptest.NewRequest(tt.method, tt.target, strings.NewReader(tt.body))
			if tt.contentType != "" {
				req.Header.Set("Content-Type", tt.contentType)
			}
			w := httptest.NewRecorder()
			srv.handler.ServeHTTP(w, req)
			h := w.Result().Header
			if h.Get("X-Content-Type-Options") != "nosniff" {
				t.Errorf("status %d: X-Content-Type-Options %q, want nosniff", w.Code, h.Get("X-Content-Type-Options"))
			}
			if strings.HasPrefix(h.Get("Content-Type"), "text/html") {
				if h.Get("X-Frame-Options") != "DENY" || !strings.Contains(h.Get("Content-Security-Policy"), "frame-ancestors 'none'") {
					t.Errorf("status %d HTML: X-Frame-Options %q, CSP %q; want DENY and frame-ancestors 'none'", w.Code, h.Get("X-Frame-Options"), h.Get("Content-Security-Policy"))
				}
			}
		})
	}
}

// TestServeRefusesBadKEK: with a wrong, missing, short or empty
// key-encryption key, serve exits with an error naming the problem and
// stores nothing: no signing key is added, re-encrypted or dropped.
func TestServeRefusesBadKEK(t *testing.T) {
	cfg := serveConfig(t, "https://as.example.com", "")
	dir := filepath.Dir(cfg)
	kek := filepath.Join(dir, "kek")
	good, err := os.ReadFile(kek)
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	if err := run(t.Context(), []string{"keys", "rotate", "--config", cfg}, &out); err != nil {
		t.Fatalf("keys rotate: %v\n%s", err, out.String())
	}
	c := config.Default()
	c.Storage.SQLitePath = filepath.Join(dir, "gatehouse.db")
	rows := func() []storage.SigningKey {
		t.Helper()
		st, err := openStore(t.Context(), c, false)
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		keys, err := st.ListSigningKeys(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		return keys
	}
	before := rows()
	if len(before) != 2 {
		t.Fatalf("%d signing keys after keys rotate, want 2", len(before))
	}
	wrong := make([]byte, 32)
	rand.Read(wrong)
	for _, tt := range []struct {
		name    string
		kek     *string // nil: no file
		wantErr string
	}{
		{"wrong KEK", ptr(hex.EncodeToString(wrong) + "\n"), "wrong master key"},
		{"missing KEK file", nil, "no such file"},
		{"short KEK", ptr(hex.EncodeToString(wrong[:16]) + "\n"), "32 bytes"},
		{"empty KEK file", ptr(""), "32 bytes"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			os.Remove(kek)
			if tt.kek != nil {
				if err := os.WriteFile(kek, []byte(*tt.kek), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			t.Cleanup(func() { os.WriteFile(kek, good, 0o600) })
			ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
			defer cancel()
			var out strings.Builder
			err := run(ctx, []string{"serve", "--config", cfg}, &out)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("serve with a %s = %v, want an error saying %q", tt.name, err, tt.wantErr)
			}
			if strings.Contains(out.String(), "serving issuer") {
				t.Errorf("serve with a %s started:\n%s", tt.name, out.String())
			}
			if diff := cmp.Diff(before, rows()); diff != "" {
				t.Errorf("serve with a %s changed the signing keys (-before +after):\n%s", tt.name, diff)
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

// TestServeBranding: branding.name and branding.logo_url from the config
// file reach the pages of `gatehouse serve`, with the issuer's host; the
// logo's origin, and only it, joins img-src of the pages' policy.
func TestServeBranding(t *testing.T) {
	cfg := serveConfig(t, "https://auth.acme.example", "branding:\n  name: Acme Corp\n  logo_url: https://cdn.acme.example/logo.svg\n")
	addr := startServe(t, "--config", cfg)
	resp, err := http.Get("http://" + addr + "/nothing-here")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	want := `<header class="site"><img class="logo" src="https://cdn.acme.example/logo.svg" alt="" height="28"><span class="site-name">Acme Corp</span><span class="site-host">auth.acme.example</span></header>`
	if !strings.Contains(string(body), want) {
		t.Errorf("page does not contain %q:\n%s", want, body)
	}
	if got, want := resp.Header.Get("Content-Security-Policy"), "default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'self'; img-src 'self' data: https://cdn.acme.example; frame-ancestors 'none'; base-uri 'none'"; got != want {
		t.Errorf("Content-Security-Policy = %q, want %q", got, want)
	}

	// A logo the pages could not show safely stops serve before it starts.
	bad := serveConfig(t, "https://auth.acme.example", "branding:\n  logo_url: http://cdn.acme.example/logo.svg\n")
	err = run(t.Context(), []string{"serve", "--config", bad}, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "branding.logo_url must be an https URL") {
		t.Errorf("serve with an http logo = %v, want an error naming branding.logo_url", err)
	}
}

// captureLog sends the logs of servers started after it to the returned
// buffer, until the test's cleanups (which stop those servers first) end.
func captureLog(t *testing.T) *syncbuf.Buffer {
	buf := &syncbuf.Buffer{}
	prev := logOutput
	logOutput = buf
	t.Cleanup(func() { logOutput = prev })
	return buf
}

// TestServeWarnsOfResourceWithoutDefaultScope: serve logs a warning at
// start for each resource with scopes but no default scope.
func TestServeWarnsOfResourceWithoutDefaultScope(t *testing.T) {
	cfg := serveConfig(t, "https://as.example.com", "")
	for _, args := range [][]string{
		{"resource", "add", "https://bare.example.com/mcp", "--scope", "files:read", "--config", cfg},
		{"resource", "add", "https://ok.example.com/mcp", "--scope", "files:read", "--default-scope", "files:read", "--config", cfg},
	} {
		if err := run(t.Context(), args, io.Discard); err != nil {
			t.Fatalf("gatehouse %s: %v", strings.Join(args, " "), err)
		}
	}
	logs := captureLog(t)
	startServe(t, "--config", cfg)
	if n := strings.Count(logs.String(), "no default scope"); n != 1 || !strings.Contains(logs.String(), "resource=https://bare.example.com/mcp") {
		t.Errorf("serve logged %d warnings of no default scope, want 1 for https://bare.example.com/mcp:\n%s", n, logs.String())
	}
}

// TestServePortInUse: serve binds its port before anything else, so a
// port in use fails naming the address, before the gateway's routes or
// anything else is printed.
func TestServePortInUse(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	cfg := serveConfig(t, "https://as.example.com", `gateway:
  routes:
    - name: everything
      url: https://mcp.example.com/everything/mcp
      upstream:
        url: http://127.0.0.1:9/mcp
`)
	var out bytes.Buffer
	err = run(t.Context(), []string{"serve", "--config", cfg, "--listen", busy.Addr().String()}, &out)
	if want := `listen "` + busy.Addr().String() + `": listen tcp ` + busy.Addr().String() + `: bind: address already in use`; err == nil || err.Error() != want {
		t.Errorf("serve on a port in use = %v, want %q", err, want)
	}
	if out.Len() != 0 {
		t.Errorf("serve printed before failing:\n%s", out.String())
	}
}
