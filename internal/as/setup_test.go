package as

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"fmt"
	"html"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-mcp/gatehouse/internal/password"
	"github.com/gatehouse-mcp/gatehouse/internal/storage"
	"github.com/gatehouse-mcp/gatehouse/internal/storage/sqlite"
	"github.com/gatehouse-mcp/gatehouse/internal/token"
	"github.com/gatehouse-mcp/gatehouse/internal/web"

	_ "modernc.org/sqlite"
)

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

func (c *clock) Advance(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

// testEpoch is the time on a test server's clock when it starts.
var testEpoch = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

// Fixtures every test server has.
const (
	testUser       = "alice"
	testPassword   = "correct horse battery staple"
	testResource   = "https://mcp.example.com/mcp"
	testResource2  = "https://other.example.com/mcp"
	publicClient   = "public-app"
	publicRedirect = "http://127.0.0.1/callback"
	confClient     = "service"
	confSecret     = "s3cret+with/special=chars%and:colon"
	webClient      = "web-app"
	webSecret      = "web-secret"
	webRedirect    = "https://app.example.com/cb"
)

// testServer is an authorization server on an httptest listener with real
// SQLite storage and an injected clock.
type testServer struct {
	*Server
	URL    string // issuer
	Store  storage.Store
	Clock  *clock
	dbPath string
	userID string
}

// newTestServer starts a server. mod, if not nil, adjusts the options;
// issuerPath, if not empty, gives the issuer a path (e.g. "/tenant1").
func newTestServer(t *testing.T, mod func(*Options)) *testServer {
	return newTestServerPath(t, "", mod)
}

func newTestServerPath(t *testing.T, issuerPath string, mod func(*Options)) *testServer {
	t.Helper()
	ctx := t.Context()
	clk := &clock{t: testEpoch}
	dbPath := filepath.Join(t.TempDir(), "gatehouse.db")
	st, err := sqlite.Open(ctx, sqlite.Options{Path: dbPath, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })

	kek := make([]byte, 32)
	kr, err := token.NewKeyring(ctx, token.KeyringOptions{Keys: st, EncryptionKey: kek, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	issuer := "http://" + ln.Addr().String() + issuerPath
	pages, err := web.New(web.Options{CSRFKey: make([]byte, 32), StaticPrefix: issuerPath + "/static/"})
	if err != nil {
		t.Fatal(err)
	}
	ts := &testServer{URL: issuer, Store: st, Clock: clk, dbPath: dbPath}
	ts.seed(t)
	opts := Options{Issuer: issuer, Store: st, Keyring: kr, Pages: pages, Now: clk.Now, AllowHTTPIssuer: true}
	if mod != nil {
		mod(&opts)
	}
	srv, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	ts.Server = srv
	hs := httptest.NewUnstartedServer(srv)
	hs.Listener.Close()
	hs.Listener = ln
	hs.Start()
	t.Cleanup(hs.Close)
	return ts
}

// seed registers the fixtures: a user, two resources and three clients.
func (ts *testServer) seed(t *testing.T) {
	t.Helper()
	ctx := t.Context()
	now := ts.Clock.Now()
	hash, err := password.HashWithParams(testPassword, password.Params{Memory: 64, Time: 1, Parallelism: 1, SaltLength: 16, KeyLength: 32}, strings.NewReader(strings.Repeat("x", 64)))
	if err != nil {
		t.Fatal(err)
	}
	ts.userID = "user-alice"
	must(t, ts.Store.CreateUser(ctx, storage.User{ID: ts.userID, Username: testUser, PasswordHash: hash, CreatedAt: now, UpdatedAt: now}))
	for _, r := range []storage.Resource{
		// The operator lets machine clients use Notes (client_credentials);
		// Other accepts users only, the default.
		{URL: testResource, Name: "Notes", Scopes: []storage.Scope{
			{Name: "notes:read", Description: "Read notes", Tools: []string{"read_note"}},
			{Name: "notes:write", Description: "Write notes", Tools: []string{"add_note"}},
		}, DefaultScopes: []string{"notes:read"}, AcceptClientCredentials: true},
		{URL: testResource2, Name: "Other", Scopes: []storage.Scope{{Name: "other:read"}}},
	} {
		r.CreatedAt, r.UpdatedAt = now, now
		must(t, ts.Store.PutResource(ctx, r))
	}
	for _, c := range []storage.Client{
		{ID: publicClient, Name: "Public App", RedirectURIs: []string{publicRedirect, "http://localhost/callback"}, GrantTypes: []string{"authorization_code", "refresh_token"}, TokenEndpointAuthMethod: "none", ApplicationType: "native"},
		{ID: confClient, Name: "Service", GrantTypes: []string{"client_credentials"}, TokenEndpointAuthMethod: "client_secret_basic", SecretHash: token.Hash(confSecret), ApplicationType: "web"},
		{ID: webClient, Name: "Web App", RedirectURIs: []string{webRedirect}, GrantTypes: []string{"authorization_code", "refresh_token", "client_credentials"}, TokenEndpointAuthMethod: "client_secret_post", SecretHash: token.Hash(webSecret), ApplicationType: "web"},
	} {
		c.ResponseTypes = []string{"code"}
		c.Origin = storage.OriginStatic
		c.Metadata = "{}"
		c.CreatedAt, c.UpdatedAt = now, now
		must(t, ts.Store.CreateClient(ctx, c))
	}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// snapshot returns a digest of every stored row except the audit log and
// the failure counters, for asserting that a refused request changed
// nothing. Every table is read, so one a migration adds (client_counts)
// is covered without a change here.
func (ts *testServer) snapshot(t *testing.T) string {
	t.Helper()
	return ts.snapshotWithout(t)
}

// snapshotWithout is snapshot without the named tables: for a refusal
// that rightly records something, such as the jti of a valid client
// assertion (replay).
func (ts *testServer) snapshotWithout(t *testing.T, skip ...string) string {
	t.Helper()
	db, err := sql.Open("sqlite", ts.dbPath+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var tables []string
	rows, err := db.Query("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT IN ('audit_events', 'throttle', 'schema_migrations') AND name NOT LIKE 'sqlite%' ORDER BY name")
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			t.Fatal(err)
		}
		tables = append(tables, name)
	}
	rows.Close()
	if len(tables) < 11 {
		t.Fatalf("snapshot found only the tables %q", tables)
	}
	h := sha256.New()
	for _, table := range tables {
		if slices.Contains(skip, table) {
			continue
		}
		rows, err := db.Query("SELECT * FROM " + table + " ORDER BY 1")
		if err != nil {
			t.Fatal(err)
		}
		cols, _ := rows.Columns()
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		for rows.Next() {
			if err := rows.Scan(ptrs...); err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(h, "%s:%v\n", table, vals)
		}
		rows.Close()
	}
	return hex.EncodeToString(h.Sum(nil))
}

// browser is a cookie-keeping HTTP client that does not follow redirects,
// so tests see every Location.
type browser struct {
	t      testing.TB
	client *http.Client
}

func newBrowser(t testing.TB) *browser {
	jar, _ := cookiejar.New(nil)
	// localhost is dialled at 127.0.0.1, where the test servers listen:
	// the passkey tests reach their server on a localhost origin, as a
	// browser must (WebAuthn refuses an IP address).
	dialer := &net.Dialer{}
	transport := &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		if port, ok := strings.CutPrefix(addr, "localhost:"); ok {
			addr = "127.0.0.1:" + port
		}
		return dialer.DialContext(ctx, network, addr)
	}}
	t.Cleanup(transport.CloseIdleConnections)
	return &browser{t: t, client: &http.Client{
		Transport:     transport,
		Jar:           jar,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

// page is a fetched response with its body.
type page struct {
	status int
	header http.Header
	body   string
}

func (b *browser) do(req *http.Request) page {
	b.t.Helper()
	resp, err := b.client.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return page{status: resp.StatusCode, header: resp.Header, body: string(body)}
}

func (b *browser) get(u string) page {
	b.t.Helper()
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		b.t.Fatal(err)
	}
	return b.do(req)
}

func (b *browser) post(u string, form url.Values) page {
	b.t.Helper()
	req, err := http.NewRequest(http.MethodPost, u, strings.NewReader(form.Encode()))
	if err != nil {
		b.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return b.do(req)
}

var (
	hiddenRE = regexp.MustCompile(`<input type="hidden" name="([a-z_]+)" value="([^"]*)">`)
	actionRE = regexp.MustCompile(`<form id="([a-z-]+)" method="post" action="([^"]*)"`)
)

// form returns the action and hidden fields of the page's form with id.
func (p page) form(t testing.TB, id string) (string, url.Values) {
	t.Helper()
	var action string
	for _, m := range actionRE.FindAllStringSubmatch(p.body, -1) {
		if m[1] == id {
			action = html.UnescapeString(m[2])
		}
	}
	if action == "" {
		t.Fatalf("no form %q in page (status %d):\n%s", id, p.status, p.body)
	}
	v := url.Values{}
	for _, m := range hiddenRE.FindAllStringSubmatch(p.body, -1) {
		v.Set(m[1], html.UnescapeString(m[2]))
	}
	return action, v
}

// authRequest is the parameters of an authorization request.
type authRequest struct {
	clientID, redirectURI, scope, resource, state, verifier, prompt string
}

func (a authRequest) url(issuer string) string {
	v := url.Values{
		"response_type": {"code"}, "client_id": {a.clientID}, "redirect_uri": {a.redirectURI},
		"code_challenge": {s256(a.verifier)}, "code_challenge_method": {"S256"},
	}
	for k, val := range map[string]string{"scope": a.scope, "resource": a.resource, "state": a.state, "prompt": a.prompt} {
		if val != "" {
			v.Set(k, val)
		}
	}
	return issuer + "/authorize?" + v.Encode()
}

const testVerifier = "dBjftJeZ4CVP-mJ0kXJr-gq7jXx1dlS6ahiFFHLyCqs-verifier"

// defaultAuth is a valid request of the public client.
func defaultAuth() authRequest {
	return authRequest{clientID: publicClient, redirectURI: "http://127.0.0.1:5555/callback", scope: "notes:read", resource: testResource, state: "st-1", verifier: testVerifier}
}

// authorize runs the browser through login and consent and returns the
// redirect Location.
func (ts *testServer) authorize(t *testing.T, b *browser, a authRequest) *url.URL {
	t.Helper()
	p := b.get(a.url(ts.URL))
	if p.status == http.StatusOK && strings.Contains(p.body, `id="login-form"`) {
		p = ts.login(t, b, p, testUser, testPassword)
	}
	if p.status == http.StatusOK && strings.Contains(p.body, `id="consent-form"`) {
		p = ts.consent(t, b, p, "allow")
	}
	return location(t, p)
}

func (ts *testServer) login(t *testing.T, b *browser, p page, user, pw string) page {
	t.Helper()
	action, v := p.form(t, "login-form")
	v.Set("username", user)
	v.Set("password", pw)
	return b.post(ts.origin()+action, v)
}

func (ts *testServer) consent(t *testing.T, b *browser, p page, decision string) page {
	t.Helper()
	action, v := p.form(t, "consent-form")
	v.Set("decision", decision)
	return b.post(ts.origin()+action, v)
}

// origin is the issuer without its path, for form actions (absolute paths).
func (ts *testServer) origin() string {
	u, _ := url.Parse(ts.URL)
	return u.Scheme + "://" + u.Host
}

func location(t testing.TB, p page) *url.URL {
	t.Helper()
	if p.status != http.StatusFound && p.status != http.StatusSeeOther {
		t.Fatalf("status %d, want a redirect; body:\n%s", p.status, p.body)
	}
	u, err := url.Parse(p.header.Get("Location"))
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// code runs the flow and returns the authorization code.
func (ts *testServer) code(t *testing.T, a authRequest) string {
	t.Helper()
	loc := ts.authorize(t, newBrowser(t), a)
	c := loc.Query().Get("code")
	if c == "" {
		t.Fatalf("no code in %s", loc)
	}
	return c
}

// tokenRequest POSTs a form to the token endpoint and returns status and body.
func (ts *testServer) post(t *testing.T, path string, form url.Values, basicUser, basicPass string) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), http.MethodPost, ts.URL+path, strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if basicUser != "" {
		req.SetBasicAuth(url.QueryEscape(basicUser), url.QueryEscape(basicPass))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(body)
}

func storageQueryAll() storage.AuditQuery { return storage.AuditQuery{Limit: 1000} }
