package crash

// This file is the process harness: build the binary, configure a
// deployment through the CLI, start, kill and restart `gatehouse serve`,
// and play the browser and the OAuth clients against it.

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gatehouse-mcp/gatehouse/internal/syncbuf"
	jose "github.com/go-jose/go-jose/v4"
	"github.com/jackc/pgx/v5"
	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx"
	_ "modernc.org/sqlite"             // database/sql driver "sqlite"
)

// Fixtures every deployment gets from Setup.
const (
	ServiceClient = "svc" // confidential, client_credentials; also introspects
	AppClient     = "app" // public, authorization_code + refresh_token
	AppRedirect   = "http://127.0.0.1:5555/callback"
	User          = "alice"
	Password      = "correct horse battery staple"
	Resource      = "https://mcp.example.com/mcp"
	Scope         = "notes:read"
)

// ModuleRoot returns the directory of the gatehouse go.mod.
func ModuleRoot(t testing.TB) string {
	t.Helper()
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil || strings.TrimSpace(string(out)) == "" || strings.TrimSpace(string(out)) == os.DevNull {
		t.Fatalf("go env GOMOD: %v %q", err, out)
	}
	return filepath.Dir(strings.TrimSpace(string(out)))
}

// BuildBinary builds ./cmd/gatehouse into a temporary directory.
func BuildBinary(t testing.TB) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "gatehouse")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/gatehouse")
	cmd.Dir = ModuleRoot(t)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/gatehouse: %v\n%s", err, out)
	}
	return bin
}

// FreeAddr returns a loopback address that was free a moment ago.
func FreeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// skipOrFail skips locally and fails under CI=true, where every backend
// must be exercised.
func skipOrFail(t testing.TB, format string, args ...any) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf(format, args...)
	}
	t.Skipf(format, args...)
}

var (
	pgOnce sync.Once
	pgDSN  string
	pgErr  error
	pgDir  string
)

// StopPostgres stops the PostgreSQL that PostgresDSN started, if any. Call
// it from TestMain after m.Run.
func StopPostgres() {
	if pgDir == "" {
		return
	}
	root, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return
	}
	cmd := exec.Command("bash", filepath.Join(filepath.Dir(strings.TrimSpace(string(root))), "scripts/pg-test-stop.sh"), pgDir)
	cmd.Run()
}

// PostgresDSN returns a DSN whose search_path is a fresh schema, dropped
// when the test ends. The server is GATEHOUSE_TEST_POSTGRES_DSN, or one
// started once per test binary with scripts/pg-test-start.sh.
func PostgresDSN(t testing.TB) string {
	t.Helper()
	base := os.Getenv("GATEHOUSE_TEST_POSTGRES_DSN")
	if base == "" {
		pgOnce.Do(func() {
			dir, err := os.MkdirTemp("", "gatehouse-pg-")
			if err != nil {
				pgErr = err
				return
			}
			cmd := exec.Command("bash", filepath.Join(ModuleRoot(t), "scripts/pg-test-start.sh"), dir)
			cmd.Env = append(os.Environ(), "PG_WAIT_SECONDS=5")
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			out, err := cmd.Output()
			if err != nil {
				pgErr = fmt.Errorf("scripts/pg-test-start.sh: %v: %s", err, stderr.String())
				os.RemoveAll(dir)
				return
			}
			pgDir = dir
			pgDSN = strings.TrimPrefix(strings.TrimSpace(string(out)), "GATEHOUSE_TEST_POSTGRES_DSN=")
		})
		if pgErr != nil {
			skipOrFail(t, "GATEHOUSE_TEST_POSTGRES_DSN is unset and PostgreSQL could not be started: %v", pgErr)
		}
		base = pgDSN
	}
	db, err := sql.Open("pgx", base)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	schema := "gatehouse_proc_" + hex.EncodeToString(randomBytes(6))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := db.ExecContext(ctx, "CREATE SCHEMA "+pgx.Identifier{schema}.Sanitize()); err != nil {
		skipOrFail(t, "PostgreSQL at GATEHOUSE_TEST_POSTGRES_DSN is not usable: %v", err)
	}
	t.Cleanup(func() {
		db, err := sql.Open("pgx", base)
		if err != nil {
			return
		}
		defer db.Close()
		db.Exec("DROP SCHEMA IF EXISTS " + pgx.Identifier{schema}.Sanitize() + " CASCADE")
	})
	if u, err := url.Parse(base); err == nil && u.Scheme != "" {
		q := u.Query()
		q.Set("search_path", schema)
		u.RawQuery = q.Encode()
		return u.String()
	}
	return base + " search_path=" + schema
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// Backend selects the storage of a deployment.
type Backend struct {
	Driver string // "sqlite" or "postgres"
	DSN    string // postgres only
}

// Deployment is a configured gatehouse: a data directory, a config file
// and the CLI to administer it.
type Deployment struct {
	t       testing.TB
	Bin     string
	Dir     string
	Config  string
	Env     []string
	Issuer  string
	Backend Backend
	// ServiceSecret is ServiceClient's secret, set by Setup.
	ServiceSecret string
}

// NewDeployment writes a config for issuer (http on loopback, with
// allow_insecure_issuer) and a key-encryption key made by
// `gatehouse keys gen-kek`. extraYAML is appended to the config.
func NewDeployment(t testing.TB, bin string, b Backend, issuer, extraYAML string) *Deployment {
	t.Helper()
	dir := t.TempDir()
	d := &Deployment{t: t, Bin: bin, Dir: dir, Config: filepath.Join(dir, "gatehouse.yaml"), Issuer: issuer, Backend: b}
	d.Env = append(os.Environ(), "GATEHOUSE_CONFIG=")
	storageYAML := fmt.Sprintf("storage:\n  driver: sqlite\n  sqlite_path: %q\n", d.SQLitePath())
	if b.Driver == "postgres" {
		d.Env = append(d.Env, "GATEHOUSE_STORAGE_POSTGRES_DSN="+b.DSN)
		storageYAML = "storage:\n  driver: postgres\n"
	}
	d.run(nil, "keys", "gen-kek", filepath.Join(dir, "kek"))
	y := fmt.Sprintf("issuer: %q\nlisten: 127.0.0.1:0\nadmin_listen: \"\"\nallow_insecure_issuer: true\n%skeys:\n  encryption_key_file: %q\nlog:\n  level: warn\n%s",
		issuer, storageYAML, filepath.Join(dir, "kek"), extraYAML)
	if err := os.WriteFile(d.Config, []byte(y), 0o600); err != nil {
		t.Fatal(err)
	}
	// Setup's admin commands act only on a database that exists (and
	// PostgreSQL's is not migrated by serve without --migrate).
	d.CLI("migrate")
	return d
}

// SQLitePath is the database file of a sqlite deployment.
func (d *Deployment) SQLitePath() string { return filepath.Join(d.Dir, "gatehouse.db") }

func (d *Deployment) run(stdin io.Reader, args ...string) string {
	d.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, d.Bin, args...)
	cmd.Env = d.Env
	cmd.Stdin = stdin
	out, err := cmd.CombinedOutput()
	if err != nil {
		d.t.Fatalf("gatehouse %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// CLI runs `gatehouse ARGS --config CONFIG` and returns its output.
func (d *Deployment) CLI(args ...string) string {
	d.t.Helper()
	// --config goes before a "--", after which every argument is one
	// (a key id may start with "-").
	i := slices.Index(args, "--")
	if i < 0 {
		i = len(args)
	}
	return d.run(nil, slices.Concat(args[:i], []string{"--config", d.Config}, args[i:])...)
}

var secretRE = regexp.MustCompile(`client_secret:\s+(\S+)`)

// Setup registers the fixtures through the CLI: the confidential service
// client, the public app client, the user and the resource.
func (d *Deployment) Setup() {
	d.t.Helper()
	out := d.CLI("client", "create", "--id", ServiceClient, "--name", "Service", "--confidential", "--grant-type", "client_credentials")
	m := secretRE.FindStringSubmatch(out)
	if m == nil {
		d.t.Fatalf("client create printed no secret:\n%s", out)
	}
	d.ServiceSecret = m[1]
	d.CLI("client", "create", "--id", AppClient, "--name", "App", "--redirect-uri", "http://127.0.0.1/callback")
	pw := filepath.Join(d.Dir, "password")
	if err := os.WriteFile(pw, []byte(Password+"\n"), 0o600); err != nil {
		d.t.Fatal(err)
	}
	d.CLI("user", "add", User, "--password-file", pw)
	d.CLI("resource", "add", Resource, "--name", "Notes", "--scope", Scope+"=Read notes", "--default-scope", Scope, "--accept-client-credentials")
}

// Process is a running `gatehouse serve`.
type Process struct {
	t    testing.TB
	cmd  *exec.Cmd
	Addr string
	URL  string // http://Addr, where to send requests (may differ from the issuer)
	out  *syncbuf.Buffer
	done chan struct{}
	err  error
}

// Start runs `gatehouse serve` on listen (with --migrate if migrate) and
// waits until it serves metadata. The process is killed when the test ends
// if it still runs.
func (d *Deployment) Start(listen string, migrate bool) *Process {
	d.t.Helper()
	args := []string{"serve", "--config", d.Config, "--listen", listen}
	if migrate {
		args = append(args, "--migrate")
	}
	cmd := exec.Command(d.Bin, args...)
	cmd.Env = d.Env
	p := &Process{t: d.t, cmd: cmd, Addr: listen, URL: "http://" + listen, out: &syncbuf.Buffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.out, p.out
	if err := cmd.Start(); err != nil {
		d.t.Fatal(err)
	}
	go func() { p.err = cmd.Wait(); close(p.done) }()
	d.t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			p.cmd.Process.Kill()
			<-p.done
		}
		if d.t.Failed() {
			d.t.Logf("gatehouse serve on %s output:\n%s", listen, p.out.String())
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case <-p.done:
			d.t.Fatalf("serve exited before it was ready: %v\n%s", p.err, p.out.String())
		default:
		}
		if strings.Contains(p.out.String(), "serving issuer") {
			if resp, err := http.Get(p.URL + "/.well-known/oauth-authorization-server"); err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					return p
				}
			}
		}
		if time.Now().After(deadline) {
			d.t.Fatalf("serve not ready after 30s:\n%s", p.out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Kill sends SIGKILL and waits for the process to exit.
func (p *Process) Kill() {
	p.t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		p.t.Fatalf("SIGKILL: %v", err)
	}
	<-p.done
}

// Stop sends SIGTERM and waits up to 15s for a graceful exit.
func (p *Process) Stop() {
	p.t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		p.t.Fatalf("SIGTERM: %v", err)
	}
	select {
	case <-p.done:
		if p.err != nil {
			p.t.Errorf("serve exited with %v after SIGTERM", p.err)
		}
	case <-time.After(15 * time.Second):
		p.cmd.Process.Kill()
		<-p.done
		p.t.Errorf("serve did not stop within 15s of SIGTERM")
	}
}

// Output is what the process wrote so far.
func (p *Process) Output() string { return p.out.String() }

// Client plays a browser and an OAuth client against one server address.
// Its methods return errors instead of failing the test, so load
// goroutines may use them. It is not safe for concurrent use by several
// goroutines when they share a session; give each its own.
type Client struct {
	Issuer string // what tokens must carry as iss
	Base   string // where requests go
	HTTP   *http.Client
}

// NewClient returns a client with its own cookie jar that does not follow
// redirects.
func NewClient(issuer, base string) *Client {
	jar, _ := cookiejar.New(nil)
	return &Client{Issuer: issuer, Base: base, HTTP: &http.Client{
		Jar:           jar,
		Timeout:       15 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

// Response is an HTTP response with its body read.
type Response struct {
	Status int
	Header http.Header
	Body   string
}

// Do sends a request and reads the whole response.
func (c *Client) Do(req *http.Request) (Response, error) {
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return Response{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return Response{}, err
	}
	return Response{Status: resp.StatusCode, Header: resp.Header, Body: string(b)}, nil
}

// PostForm posts a form to Base+path, with Basic credentials if user is set.
func (c *Client) PostForm(path string, form url.Values, user, pass string) (Response, error) {
	req, err := http.NewRequest(http.MethodPost, c.Base+path, strings.NewReader(form.Encode()))
	if err != nil {
		return Response{}, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if user != "" {
		req.SetBasicAuth(url.QueryEscape(user), url.QueryEscape(pass))
	}
	return c.Do(req)
}

// Get fetches Base+path.
func (c *Client) Get(path string) (Response, error) {
	req, err := http.NewRequest(http.MethodGet, c.Base+path, nil)
	if err != nil {
		return Response{}, err
	}
	return c.Do(req)
}

var (
	hiddenRE = regexp.MustCompile(`<input type="hidden" name="([a-z_]+)" value="([^"]*)">`)
	actionRE = regexp.MustCompile(`<form id="([a-z-]+)" method="post" action="([^"]*)"`)
)

// Submit posts the page's form with id, its hidden fields and extra.
func (c *Client) Submit(p Response, id string, extra url.Values) (Response, error) {
	var action string
	for _, m := range actionRE.FindAllStringSubmatch(p.Body, -1) {
		if m[1] == id {
			action = html.UnescapeString(m[2])
		}
	}
	if action == "" {
		return Response{}, fmt.Errorf("no form %q in a %d page", id, p.Status)
	}
	v := url.Values{}
	for _, m := range hiddenRE.FindAllStringSubmatch(p.Body, -1) {
		v.Set(m[1], html.UnescapeString(m[2]))
	}
	for k, vs := range extra {
		v[k] = vs
	}
	return c.PostForm(action, v, "", "")
}

// Verifier returns a fresh PKCE verifier.
func Verifier() string { return base64.RawURLEncoding.EncodeToString(randomBytes(32)) }

// Challenge is the S256 challenge of a verifier.
func Challenge(v string) string {
	s := sha256.Sum256([]byte(v))
	return base64.RawURLEncoding.EncodeToString(s[:])
}

// Authorize runs /authorize for AppClient with verifier, signing in and
// consenting when the server asks, and returns the code.
func (c *Client) Authorize(verifier string) (string, error) {
	state := hex.EncodeToString(randomBytes(8))
	q := url.Values{
		"response_type": {"code"}, "client_id": {AppClient}, "redirect_uri": {AppRedirect},
		"code_challenge": {Challenge(verifier)}, "code_challenge_method": {"S256"},
		"state": {state}, "resource": {Resource}, "scope": {Scope},
	}
	p, err := c.Get("/authorize?" + q.Encode())
	if err != nil {
		return "", err
	}
	for step := 0; step < 3 && p.Status == http.StatusOK && err == nil; step++ {
		switch {
		case strings.Contains(p.Body, `id="login-form"`):
			p, err = c.Submit(p, "login-form", url.Values{"username": {User}, "password": {Password}})
		case strings.Contains(p.Body, `id="consent-form"`):
			p, err = c.Submit(p, "consent-form", url.Values{"decision": {"allow"}})
		default:
			return "", fmt.Errorf("authorize: unexpected page: %.300s", p.Body)
		}
	}
	if err != nil {
		return "", err
	}
	if p.Status != http.StatusFound && p.Status != http.StatusSeeOther {
		return "", fmt.Errorf("authorize ended with status %d: %.300s", p.Status, p.Body)
	}
	loc, err := url.Parse(p.Header.Get("Location"))
	if err != nil {
		return "", err
	}
	lq := loc.Query()
	if lq.Get("state") != state || lq.Get("iss") != c.Issuer || lq.Get("code") == "" {
		return "", fmt.Errorf("authorization response %s: want code, state and iss %s", loc, c.Issuer)
	}
	return lq.Get("code"), nil
}

// TokenResponse is a successful token response.
type TokenResponse struct {
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
	Scope        string `json:"scope"`
}

// ErrorResponse is an OAuth error response.
type ErrorResponse struct {
	Error       string `json:"error"`
	Description string `json:"error_description"`
}

// ExchangeForm is the token request redeeming code with verifier.
func ExchangeForm(code, verifier string) url.Values {
	return url.Values{"grant_type": {"authorization_code"}, "code": {code}, "client_id": {AppClient}, "redirect_uri": {AppRedirect}, "code_verifier": {verifier}}
}

// RefreshForm is the token request rotating rt.
func RefreshForm(rt string) url.Values {
	return url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}, "client_id": {AppClient}}
}

// Token posts a token request. A non-200 answer is returned as an
// *OAuthError.
func (c *Client) Token(form url.Values, user, pass string) (TokenResponse, error) {
	r, err := c.PostForm("/token", form, user, pass)
	if err != nil {
		return TokenResponse{}, err
	}
	if r.Status != http.StatusOK {
		return TokenResponse{}, parseOAuthError(r)
	}
	var tr TokenResponse
	if err := json.Unmarshal([]byte(r.Body), &tr); err != nil || tr.AccessToken == "" {
		return TokenResponse{}, fmt.Errorf("token response %.200q: %v", r.Body, err)
	}
	return tr, nil
}

// OAuthError is a non-200 answer from an OAuth endpoint.
type OAuthError struct {
	Status int
	ErrorResponse
}

func (e *OAuthError) Error() string {
	return fmt.Sprintf("%d %s: %s", e.Status, e.ErrorResponse.Error, e.Description)
}

func parseOAuthError(r Response) error {
	e := &OAuthError{Status: r.Status}
	if err := json.Unmarshal([]byte(r.Body), &e.ErrorResponse); err != nil {
		e.ErrorResponse.Error = "(not JSON)"
		e.Description = fmt.Sprintf("%.200q", r.Body)
	}
	return e
}

// IsOAuthError reports whether err is an OAuth error answer with status
// and code.
func IsOAuthError(err error, status int, code string) bool {
	var oe *OAuthError
	return errors.As(err, &oe) && oe.Status == status && oe.ErrorResponse.Error == code
}

// ClientCredentials gets a token for ServiceClient.
func (c *Client) ClientCredentials(secret string) (TokenResponse, error) {
	return c.Token(url.Values{"grant_type": {"client_credentials"}, "resource": {Resource}}, ServiceClient, secret)
}

// Introspect asks, as ServiceClient, whether tok is active.
func (c *Client) Introspect(secret, tok string) (bool, error) {
	r, err := c.PostForm("/introspect", url.Values{"token": {tok}}, ServiceClient, secret)
	if err != nil {
		return false, err
	}
	if r.Status != http.StatusOK {
		return false, parseOAuthError(r)
	}
	var v struct {
		Active bool `json:"active"`
	}
	if err := json.Unmarshal([]byte(r.Body), &v); err != nil {
		return false, err
	}
	return v.Active, nil
}

// Revoke revokes tok as ServiceClient (access tokens) or AppClient.
func (c *Client) Revoke(form url.Values, user, pass string) error {
	r, err := c.PostForm("/revoke", form, user, pass)
	if err != nil {
		return err
	}
	if r.Status != http.StatusOK {
		return parseOAuthError(r)
	}
	return nil
}

// JWKS fetches the server's key set.
func (c *Client) JWKS() (jose.JSONWebKeySet, error) {
	var set jose.JSONWebKeySet
	r, err := c.Get("/jwks")
	if err != nil {
		return set, err
	}
	if r.Status != http.StatusOK {
		return set, fmt.Errorf("jwks: status %d", r.Status)
	}
	err = json.Unmarshal([]byte(r.Body), &set)
	return set, err
}

// KeyIDs lists the kids of a key set.
func KeyIDs(set jose.JSONWebKeySet) []string {
	var ids []string
	for _, k := range set.Keys {
		ids = append(ids, k.KeyID)
	}
	return ids
}

// Claims are the access-token claims the tests look at.
type Claims struct {
	Issuer   string `json:"iss"`
	Audience any    `json:"aud"`
	Expiry   int64  `json:"exp"`
	JTI      string `json:"jti"`
	KeyID    string `json:"-"`
}

// VerifyAccessToken checks tok's signature against set and returns its
// claims; it checks iss and exp against issuer and now.
func VerifyAccessToken(tok string, set jose.JSONWebKeySet, issuer string, now time.Time) (Claims, error) {
	jws, err := jose.ParseSignedCompact(tok, []jose.SignatureAlgorithm{jose.ES256, jose.RS256, jose.EdDSA})
	if err != nil {
		return Claims{}, err
	}
	kid := jws.Signatures[0].Header.KeyID
	keys := set.Key(kid)
	if len(keys) == 0 {
		return Claims{}, fmt.Errorf("kid %q is not in the JWKS (%v)", kid, KeyIDs(set))
	}
	payload, err := jws.Verify(keys[0])
	if err != nil {
		return Claims{}, fmt.Errorf("signature: %w", err)
	}
	var c Claims
	if err := json.Unmarshal(payload, &c); err != nil {
		return Claims{}, err
	}
	c.KeyID = kid
	if c.Issuer != issuer {
		return c, fmt.Errorf("iss %q, want %q", c.Issuer, issuer)
	}
	if !time.Unix(c.Expiry, 0).After(now) {
		return c, fmt.Errorf("expired at %v", time.Unix(c.Expiry, 0))
	}
	return c, nil
}

// SQLiteIntegrity runs PRAGMA integrity_check and foreign_key_check on a
// database file that no process has open.
func SQLiteIntegrity(t testing.TB, path string) {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query("PRAGMA integrity_check")
	if err != nil {
		t.Fatalf("integrity_check: %v", err)
	}
	var res []string
	for rows.Next() {
		var s string
		rows.Scan(&s)
		res = append(res, s)
	}
	rows.Close()
	if len(res) != 1 || res[0] != "ok" {
		t.Errorf("PRAGMA integrity_check = %q, want [ok]", res)
	}
	rows, err = db.Query("PRAGMA foreign_key_check")
	if err != nil {
		t.Fatalf("foreign_key_check: %v", err)
	}
	n := 0
	for rows.Next() {
		n++
	}
	rows.Close()
	if n != 0 {
		t.Errorf("PRAGMA foreign_key_check found %d violations", n)
	}
}
