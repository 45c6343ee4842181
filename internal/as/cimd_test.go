package as

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse-mcp/gatehouse/internal/clientreg"
	"github.com/gatehouse-mcp/gatehouse/internal/oauth"
	"github.com/gatehouse-mcp/gatehouse/internal/storage"
	"github.com/gatehouse-mcp/gatehouse/internal/syncbuf"
)

// docServer serves client metadata documents over TLS on 127.0.0.1 and
// counts the requests per path.
type docServer struct {
	*httptest.Server
	pool *x509.CertPool

	mu    sync.Mutex
	docs  map[string]docResponse
	hits  map[string]int
	total atomic.Int64
}

// docResponse is what a path answers.
type docResponse struct {
	status       int
	body         string
	cacheControl string
	location     string
	delay        time.Duration
	// echo, with no body, answers a valid document for whatever URL was
	// requested (host and query included): many client IDs, one path.
	echo bool
}

func newDocServer(t *testing.T) *docServer {
	t.Helper()
	d := &docServer{docs: map[string]docResponse{}, hits: map[string]int{}}
	d.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d.total.Add(1)
		d.mu.Lock()
		d.hits[r.URL.Path]++
		resp, ok := d.docs[r.URL.Path]
		d.mu.Unlock()
		if !ok {
			http.NotFound(w, r)
			return
		}
		time.Sleep(resp.delay)
		if resp.cacheControl != "" {
			w.Header().Set("Cache-Control", resp.cacheControl)
		}
		if resp.location != "" {
			w.Header().Set("Location", resp.location)
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(max(resp.status, 200))
		if resp.echo && resp.body == "" {
			resp.body = docFor("https://"+r.Host+r.URL.RequestURI(), nil)
		}
		io.WriteString(w, resp.body)
	}))
	d.Server.Config.ErrorLog = log.New(io.Discard, "", 0)
	d.StartTLS()
	t.Cleanup(d.Close)
	d.pool = x509.NewCertPool()
	d.pool.AddCert(d.Certificate())
	return d
}

func (d *docServer) set(path string, r docResponse) {
	d.mu.Lock()
	d.docs[path] = r
	d.mu.Unlock()
}

func (d *docServer) count(path string) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.hits[path]
}

// doc returns a metadata document for the URL of path, with extra members.
func (d *docServer) doc(path string, extra map[string]any) string {
	return docFor(d.URL+path, extra)
}

// docFor returns a metadata document for the URL id, with extra members
// (a nil value removes one).
func docFor(id string, extra map[string]any) string {
	m := map[string]any{
		"client_id":      id,
		"client_name":    "Claude Code",
		"redirect_uris":  []string{"http://localhost/callback", "http://127.0.0.1/callback"},
		"grant_types":    []string{"authorization_code", "refresh_token"},
		"response_types": []string{"code"},
		"client_uri":     "https://claude.ai",
	}
	for k, v := range extra {
		if v == nil {
			delete(m, k)
		} else {
			m[k] = v
		}
	}
	b, _ := json.Marshal(m)
	return string(b)
}

// cimdResolver is a FetchOptions.LookupNetIP for tests: example.com and
// its subdomains (in the test certificate) are the document server's
// loopback address, internal.example is a private address, and nothing
// else resolves.
func cimdResolver(_ context.Context, _, host string) ([]netip.Addr, error) {
	switch {
	case host == "example.com" || strings.HasSuffix(host, ".example.com"):
		return []netip.Addr{netip.MustParseAddr("127.0.0.1")}, nil
	case host == "internal.example":
		return []netip.Addr{netip.MustParseAddr("10.1.2.3")}, nil
	}
	return nil, errors.New("no such host")
}

// cimdOptions turns CIMD on with the dev allowance for the document
// server's loopback address and its certificate injected.
func cimdOptions(d *docServer, mod func(*Registration)) func(*Options) {
	return func(o *Options) {
		o.Registration = Registration{CIMD: CIMD{Enabled: true, Fetch: clientreg.FetchOptions{AllowHosts: []string{"127.0.0.1"}, RootCAs: d.pool}}}
		if mod != nil {
			mod(&o.Registration)
		}
	}
}

// cimdTestIP is the client address of the tests that call lookupClient
// directly.
const cimdTestIP = "192.0.2.10"

// cimdAuth is an authorization request of a metadata-document client
// with a loopback redirect on an ephemeral port (what Claude Code sends).
func cimdAuth(id string) authRequest {
	return authRequest{clientID: id, redirectURI: "http://localhost:49152/callback", scope: "notes:read", resource: testResource, state: "st-c", verifier: testVerifier}
}

// redeem exchanges a code of a metadata-document client.
func (ts *testServer) redeem(t *testing.T, a authRequest, code string) tokenResponse {
	t.Helper()
	s, _, body := ts.post(t, "/token", url.Values{
		"grant_type": {"authorization_code"}, "code": {code}, "client_id": {a.clientID},
		"redirect_uri": {a.redirectURI}, "code_verifier": {a.verifier},
	}, "", "")
	if s != 200 {
		t.Fatalf("code exchange = %d %s", s, body)
	}
	var tr tokenResponse
	must(t, json.Unmarshal([]byte(body), &tr))
	return tr
}

// TestCIMDFlow: a metadata-document client (Claude Code's shape) goes
// through /authorize to a code, a token and a refresh, with one fetch; it
// is stored as an Origin cimd client; the consent page is told its domain.
func TestCIMDFlow(t *testing.T) {
	d := newDocServer(t)
	id := d.URL + "/oauth/claude-code-client-metadata"
	d.set("/oauth/claude-code-client-metadata", docResponse{body: d.doc("/oauth/claude-code-client-metadata", nil), cacheControl: "max-age=3600"})
	ts := newTestServer(t, cimdOptions(d, nil))

	_, meta := fetch(t, ts.URL+"/.well-known/oauth-authorization-server")
	if !strings.Contains(meta, `"client_id_metadata_document_supported": true`) || strings.Contains(meta, "registration_endpoint") {
		t.Errorf("metadata does not advertise CIMD alone:\n%s", meta)
	}

	a := cimdAuth(id)
	b := newBrowser(t)
	p := b.get(a.url(ts.URL))
	p = ts.login(t, b, p, testUser, testPassword)
	if p.status != 200 || !strings.Contains(p.body, `id="consent-form"`) {
		t.Fatalf("no consent page: %d\n%s", p.status, p.body)
	}
	if !strings.Contains(p.body, "Claude Code") {
		t.Error("the consent page does not name the client")
	}
	loc := location(t, ts.consent(t, b, p, "allow"))
	if loc.Query().Get("state") != "st-c" || !strings.HasPrefix(loc.String(), "http://localhost:49152/callback?") {
		t.Fatalf("redirect to %s", loc)
	}
	tr := ts.redeem(t, a, loc.Query().Get("code"))
	s, _, body := ts.post(t, "/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tr.RefreshToken}, "client_id": {id}}, "", "")
	if s != 200 {
		t.Fatalf("refresh = %d %s", s, body)
	}
	if n := d.count("/oauth/claude-code-client-metadata"); n != 1 {
		t.Errorf("document fetched %d times for authorize, token and refresh; want 1 (cached)", n)
	}

	c, err := ts.Store.GetClient(t.Context(), id)
	must(t, err)
	if c.Origin != storage.OriginCIMD || c.Name != "Claude Code" || c.TokenEndpointAuthMethod != "none" || c.ApplicationType != "native" || c.TokenCount == 0 {
		t.Errorf("stored client = %+v", c)
	}
	pub, uri, warns := ts.consentDetails(c)
	if pub != "127.0.0.1" || uri != "" || warns != nil {
		t.Errorf("consentDetails = %q %q %q; want the document's host as publisher, and no client_uri off that host", pub, uri, warns)
	}

	// max-age 3600 within [5m, 24h]: refetched after an hour.
	ts.Clock.Advance(59 * time.Minute)
	if _, err := ts.lookupClient(t.Context(), id, cimdTestIP); err != nil || d.count("/oauth/claude-code-client-metadata") != 1 {
		t.Fatalf("lookup within max-age: %v, %d fetches", err, d.count("/oauth/claude-code-client-metadata"))
	}
	ts.Clock.Advance(2 * time.Minute)
	if _, err := ts.lookupClient(t.Context(), id, cimdTestIP); err != nil || d.count("/oauth/claude-code-client-metadata") != 2 {
		t.Fatalf("lookup after max-age: %v, %d fetches", err, d.count("/oauth/claude-code-client-metadata"))
	}
}

// TestCIMDRefusals: a document that cannot be used stops the request at
// /authorize with an error page (never a redirect) that says why.
func TestCIMDRefusals(t *testing.T) {
	d := newDocServer(t)
	set := func(path string, r docResponse) string { d.set(path, r); return d.URL + path }
	docAt := func(path string, extra map[string]any) string {
		return set(path, docResponse{body: d.doc(path, extra)})
	}
	var logs syncbuf.Buffer
	ts := newTestServer(t, func(o *Options) {
		cimdOptions(d, func(r *Registration) { r.CIMD.Fetch.Timeout = 300 * time.Millisecond })(o)
		o.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	})
	// A document written for its URL is told what is wrong with it; for
	// anything else the page says only that no document could be had,
	// and the log says why.
	const unusable = "could not be fetched, or is not a client metadata document for that URL"
	tests := []struct {
		name, id, redirect, want, logged string
	}{
		{"client_id mismatch", docAt("/mismatch", map[string]any{"client_id": d.URL + "/other"}), "", unusable, "does not equal its URL"},
		{"shared secret method", docAt("/secret", map[string]any{"token_endpoint_auth_method": "client_secret_basic"}), "", "must not use token_endpoint_auth_method client_secret_basic", ""},
		{"client_secret member", docAt("/secret2", map[string]any{"client_secret": "s"}), "", "must not contain client_secret", ""},
		{"no client_name", docAt("/noname", map[string]any{"client_name": nil}), "", "no client_name", ""},
		{"no redirect_uris", docAt("/noredirect", map[string]any{"redirect_uris": nil}), "", "no redirect_uris", ""},
		{"bad redirect uri", docAt("/js", map[string]any{"redirect_uris": []string{"javascript:alert(1)"}}), "javascript:alert(1)", "never allowed", ""},
		{"redirect not listed", docAt("/listed", nil), "http://localhost:5555/elsewhere", "is not registered for this client", ""},
		{"not json", set("/notjson", docResponse{body: "<html>"}), "", unusable, "not valid JSON"},
		{"404", d.URL + "/missing", "", unusable, "status 404; only 200"},
		{"500", set("/error", docResponse{status: 500, body: "{}"}), "", unusable, "status 500"},
		{"redirect", set("/moved", docResponse{status: 302, location: "https://127.0.0.1:1/internal"}), "", unusable, "redirects are not followed"},
		{"oversized", set("/big", docResponse{body: `{"client_name":"` + strings.Repeat("x", 6000) + `"}`}), "", unusable, "larger than 5120 bytes"},
		{"slow", set("/slow", docResponse{body: "{}", delay: time.Second}), "", unusable, "timed out"},
		{"dot segment", d.URL + "/a/../mismatch", "", `must not contain "." or ".." path segments`, ""},
		{"user information", strings.Replace(d.URL, "https://", "https://u@", 1) + "/x", "", "must not contain user information", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := cimdAuth(tt.id)
			if tt.redirect != "" {
				a.redirectURI = tt.redirect
			}
			p := newBrowser(t).get(a.url(ts.URL))
			body := html.UnescapeString(p.body)
			if p.status != 400 || p.header.Get("Location") != "" || !strings.Contains(body, tt.want) {
				t.Fatalf("GET /authorize = %d (Location %q), want 400 with %q:\n%s", p.status, p.header.Get("Location"), tt.want, body)
			}
			if tt.logged != "" {
				if strings.Contains(body, tt.logged) {
					t.Errorf("the page tells the caller %q", tt.logged)
				}
				if line := logLine(logs.String(), tt.id); !strings.Contains(line, tt.logged) {
					t.Errorf("no log line with the client_id and %q:\n%s", tt.logged, logs.String())
				}
			}
		})
	}
	// Nothing was stored for a refused document.
	cs, err := ts.Store.ListClients(t.Context())
	must(t, err)
	for _, c := range cs {
		if c.Origin == storage.OriginCIMD && c.ID != d.URL+"/listed" {
			t.Errorf("refused document stored as client %s", c.ID)
		}
	}
}

// TestCIMDSSRF: without the dev allowance, a document URL on a
// special-use address is refused before any connection, through /authorize
// and /token alike.
func TestCIMDSSRF(t *testing.T) {
	d := newDocServer(t)
	d.set("/doc", docResponse{body: d.doc("/doc", nil)})
	var logs syncbuf.Buffer
	ts := newTestServer(t, func(o *Options) {
		o.Registration = Registration{CIMD: CIMD{Enabled: true, Fetch: clientreg.FetchOptions{RootCAs: d.pool}}}
		o.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	})
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(d.URL, "https://"))
	for _, id := range []string{d.URL + "/doc", "https://localhost:" + port + "/doc", "https://[::ffff:127.0.0.1]:" + port + "/doc", "https://169.254.169.254/latest/meta-data/doc", "https://10.0.0.1/doc"} {
		p := newBrowser(t).get(cimdAuth(id).url(ts.URL))
		if body := html.UnescapeString(p.body); p.status != 400 || !strings.Contains(body, "could not be fetched") {
			t.Errorf("authorize with %s = %d:\n%s", id, p.status, body)
		}
		if line := logLine(logs.String(), id); !strings.Contains(line, "refused to prevent server-side request forgery") {
			t.Errorf("no log line with %s and the refusal:\n%s", id, logs.String())
		}
		s, _, body := ts.post(t, "/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"x"}, "client_id": {id}}, "", "")
		assertOAuthError(t, s, body, 401, "invalid_client")
	}
	if n := d.total.Load(); n != 0 {
		t.Errorf("the internal server got %d requests", n)
	}
}

// TestCIMDTrustPolicy: with an allowlist, only listed domains or exact
// URLs are fetched.
func TestCIMDTrustPolicy(t *testing.T) {
	d := newDocServer(t)
	d.set("/doc", docResponse{body: d.doc("/doc", nil)})
	d.set("/other", docResponse{body: d.doc("/other", nil)})
	ts := newTestServer(t, cimdOptions(d, func(r *Registration) {
		r.CIMD.AllowDomains = []string{"claude.ai"}
		r.CIMD.AllowURLs = []string{d.URL + "/doc"}
	}))
	if _, err := ts.lookupClient(t.Context(), d.URL+"/doc", cimdTestIP); err != nil {
		t.Fatalf("listed URL refused: %v", err)
	}
	_, err := ts.lookupClient(t.Context(), d.URL+"/other", cimdTestIP)
	if err == nil || !strings.Contains(err.Error(), "does not accept client metadata documents from 127.0.0.1") {
		t.Fatalf("unlisted URL: %v", err)
	}
	if n := d.count("/other"); n != 0 {
		t.Errorf("an untrusted document was fetched %d times", n)
	}
}

// TestCIMDCaching: concurrent requests fetch once; failures are
// remembered for failure_ttl; Cache-Control is clamped to the configured
// bounds.
func TestCIMDCaching(t *testing.T) {
	d := newDocServer(t)
	ts := newTestServer(t, cimdOptions(d, func(r *Registration) { r.CIMD.MinTTL, r.CIMD.MaxTTL = 5*time.Minute, time.Hour }))
	ctx := t.Context()

	d.set("/burst", docResponse{body: d.doc("/burst", nil), delay: 100 * time.Millisecond})
	var wg sync.WaitGroup
	for range 30 {
		wg.Go(func() {
			if _, err := ts.lookupClient(ctx, d.URL+"/burst", cimdTestIP); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if n := d.count("/burst"); n != 1 {
		t.Errorf("30 concurrent lookups fetched %d times, want 1", n)
	}

	d.set("/flaky", docResponse{status: 503, body: "{}"})
	if _, err := ts.lookupClient(ctx, d.URL+"/flaky", cimdTestIP); err == nil {
		t.Fatal("a 503 document was accepted")
	}
	d.set("/flaky", docResponse{body: d.doc("/flaky", nil)})
	ts.Clock.Advance(59 * time.Second)
	if _, err := ts.lookupClient(ctx, d.URL+"/flaky", cimdTestIP); err == nil || d.count("/flaky") != 1 {
		t.Fatalf("within failure_ttl: %v after %d fetches; want the remembered failure, 1 fetch", err, d.count("/flaky"))
	}
	ts.Clock.Advance(time.Second)
	if _, err := ts.lookupClient(ctx, d.URL+"/flaky", cimdTestIP); err != nil || d.count("/flaky") != 2 {
		t.Fatalf("after failure_ttl: %v after %d fetches; want the document fetched again and accepted", err, d.count("/flaky"))
	}

	for _, tt := range []struct {
		path, cc string
		fresh    time.Duration // still cached after this long
	}{
		{"/short", "max-age=10", 4 * time.Minute},    // raised to min_ttl
		{"/long", "max-age=86400", 59 * time.Minute}, // lowered to max_ttl
		{"/nostore", "no-store", 4 * time.Minute},    // min_ttl
		{"/none", "", 4 * time.Minute},               // min_ttl
	} {
		d.set(tt.path, docResponse{body: d.doc(tt.path, nil), cacheControl: tt.cc})
		start := ts.Clock.Now()
		if _, err := ts.lookupClient(ctx, d.URL+tt.path, cimdTestIP); err != nil {
			t.Fatal(err)
		}
		ts.Clock.Advance(tt.fresh)
		ts.lookupClient(ctx, d.URL+tt.path, cimdTestIP)
		if n := d.count(tt.path); n != 1 {
			t.Errorf("%s (%q): %d fetches within %s, want 1", tt.path, tt.cc, n, tt.fresh)
		}
		ts.Clock.Advance(time.Hour + time.Minute - ts.Clock.Now().Sub(start))
		ts.lookupClient(ctx, d.URL+tt.path, cimdTestIP)
		if n := d.count(tt.path); n != 2 {
			t.Errorf("%s (%q): %d fetches after the bound, want 2", tt.path, tt.cc, n)
		}
	}
}

// TestCIMDDocumentChanges: a cosmetic change updates the stored client;
// a changed redirect URI re-creates it, revoking its tokens.
func TestCIMDDocumentChanges(t *testing.T) {
	d := newDocServer(t)
	const path = "/client.json"
	id := d.URL + path
	d.set(path, docResponse{body: d.doc(path, nil)})
	ts := newTestServer(t, cimdOptions(d, nil))
	a := cimdAuth(id)
	tr := ts.redeem(t, a, ts.code(t, a))
	refresh := func() int {
		s, _, b := ts.post(t, "/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tr.RefreshToken}, "client_id": {id}}, "", "")
		if s == 200 {
			must(t, json.Unmarshal([]byte(b), &tr))
		}
		return s
	}

	d.set(path, docResponse{body: d.doc(path, map[string]any{"client_name": "Claude Code 2"})})
	ts.Clock.Advance(6 * time.Minute)
	if s := refresh(); s != 200 {
		t.Fatalf("refresh after a cosmetic change = %d", s)
	}
	c, err := ts.Store.GetClient(t.Context(), id)
	must(t, err)
	if c.Name != "Claude Code 2" || c.TokenCount < 2 {
		t.Errorf("after a cosmetic change: %+v", c)
	}

	d.set(path, docResponse{body: d.doc(path, map[string]any{"redirect_uris": []string{"http://127.0.0.1/other"}})})
	ts.Clock.Advance(6 * time.Minute)
	if s := refresh(); s != 400 {
		t.Fatalf("refresh after a redirect change = %d, want 400 (tokens revoked)", s)
	}
	events, err := ts.Store.QueryAudit(t.Context(), storage.AuditQuery{Type: "client.cimd_changed"})
	must(t, err)
	if len(events) != 1 {
		t.Errorf("%d client.cimd_changed events, want 1", len(events))
	}
}

// TestCIMDSyncStaleRow: syncCIMDClient starts from the row lookupClient
// read; when that row was deleted meanwhile (another replica, the CLI),
// the update finds nothing, and the retry reads storage again and
// re-creates the client from the document.
func TestCIMDSyncStaleRow(t *testing.T) {
	d := newDocServer(t)
	ts := newTestServer(t, cimdOptions(d, nil))
	ctx := t.Context()
	for _, tt := range []struct {
		name   string
		change map[string]any
	}{
		{"cosmetic change (update)", map[string]any{"client_name": "Claude Code 2"}},
		{"redirect change (reset)", map[string]any{"redirect_uris": []string{"http://127.0.0.1/other"}}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			path := "/stale-" + strings.Fields(tt.name)[0]
			id := d.URL + path
			d.set(path, docResponse{body: d.doc(path, nil)})
			if _, err := ts.lookupClient(ctx, id, cimdTestIP); err != nil {
				t.Fatal(err)
			}
			stale, err := ts.Store.GetClient(ctx, id)
			must(t, err)
			must(t, ts.Store.DeleteClient(ctx, id))
			d.set(path, docResponse{body: d.doc(path, tt.change)})
			want, _, err := ts.fetchCIMD(ctx, id)
			must(t, err)
			if _, err := ts.syncCIMDClient(ctx, want, &stale); err != nil {
				t.Fatalf("syncCIMDClient(%q) from a deleted row = %v, want the client re-created", id, err)
			}
			got, err := ts.Store.GetClient(ctx, id)
			if err != nil || got.Metadata != want.Metadata {
				t.Errorf("GetClient(%q) after the sync = %+v, %v; want the changed document's client", id, got, err)
			}
		})
	}
}

// TestCIMDPreregisteredAndDisabled: an operator's client with a URL id is
// used as is; with CIMD off a URL id is just an unknown client; unused
// document clients are reaped like registered ones.
func TestCIMDPreregisteredAndDisabled(t *testing.T) {
	d := newDocServer(t)
	ts := newTestServer(t, cimdOptions(d, nil))
	ctx := t.Context()
	static := d.URL + "/pinned"
	now := ts.Clock.Now()
	must(t, ts.Store.CreateClient(ctx, storage.Client{ID: static, Name: "Pinned", RedirectURIs: []string{"http://localhost/callback"}, GrantTypes: []string{"authorization_code"},
		ResponseTypes: []string{"code"}, TokenEndpointAuthMethod: "none", ApplicationType: "native", Origin: storage.OriginStatic, Metadata: "{}", CreatedAt: now, UpdatedAt: now}))
	if c, err := ts.lookupClient(ctx, static, cimdTestIP); err != nil || c.Name != "Pinned" || d.total.Load() != 0 {
		t.Fatalf("pre-registered URL client: %+v, %v, %d fetches", c, err, d.total.Load())
	}

	d.set("/unused", docResponse{body: d.doc("/unused", nil)})
	if _, err := ts.lookupClient(ctx, d.URL+"/unused", cimdTestIP); err != nil {
		t.Fatal(err)
	}
	ts.Clock.Advance(25 * time.Hour)
	if n, err := ts.Reap(ctx, ts.Clock.Now()); err != nil || n != 1 {
		t.Fatalf("Reap = %d, %v; want the unused document client", n, err)
	}
	if _, err := ts.lookupClient(ctx, d.URL+"/unused", cimdTestIP); err != nil {
		t.Fatalf("a reaped document client does not come back: %v", err)
	}

	off := newTestServer(t, nil)
	p := newBrowser(t).get(cimdAuth(d.URL + "/unused").url(off.URL))
	if p.status != 400 || !strings.Contains(html.UnescapeString(p.body), "is not registered with this authorization server") {
		t.Errorf("CIMD off: %d\n%s", p.status, p.body)
	}
}

// TestCIMDLimits: the CIMD limits as configured (the adversarial tests
// cover the defaults): the cap of document clients, the host budget
// shared by subdomains, re-creation after a document change, a failing
// jwks_uri, and failures not remembered when failure_ttl is off.
func TestCIMDLimits(t *testing.T) {
	d := newDocServer(t)
	d.set("/app", docResponse{echo: true})
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(d.URL, "https://"))
	var logs syncbuf.Buffer
	newServer := func(t *testing.T, mod func(*Registration)) *testServer {
		return newTestServer(t, func(o *Options) {
			cimdOptions(d, func(r *Registration) {
				r.Mode, r.RateLimit = RegistrationOpen, -1
				r.CIMD.Fetch.AllowHosts = append(r.CIMD.Fetch.AllowHosts, "a.example.com", "b.example.com")
				r.CIMD.Fetch.LookupNetIP = cimdResolver
				mod(r)
			})(o)
			o.Logger = slog.New(slog.NewTextHandler(&logs, nil))
		})
	}
	lookup := func(ts *testServer, id string) error {
		_, err := ts.lookupClient(t.Context(), id, cimdTestIP)
		return err
	}

	t.Run("cap", func(t *testing.T) {
		ts := newServer(t, func(r *Registration) { r.CIMD.MaxClients = 2 })
		for i := range 2 {
			must(t, lookup(ts, fmt.Sprintf("%s/app?i=%d", d.URL, i)))
		}
		before := ts.snapshot(t)
		err := lookup(ts, d.URL+"/app?i=2")
		if oe := oauthErr(err); oe == nil || oe.Status != http.StatusServiceUnavailable || !strings.Contains(oe.Description, "limit of 2 clients identified by a metadata document") {
			t.Errorf("third document client = %v, want 503 naming the cap", err)
		}
		if ts.snapshot(t) != before {
			t.Error("the refused client changed storage")
		}
		ts.mustRegister(t, cursorMetadata)    // registrations have their own cap
		must(t, lookup(ts, d.URL+"/app?i=0")) // and known document clients keep working
	})

	t.Run("subdomains share their domain's budget", func(t *testing.T) {
		ts := newServer(t, func(r *Registration) { r.CIMD.HostRateLimit = 2 })
		must(t, lookup(ts, "https://a.example.com:"+port+"/app"))
		must(t, lookup(ts, "https://b.example.com:"+port+"/app"))
		err := lookup(ts, "https://a.example.com:"+port+"/app?again")
		if oe := oauthErr(err); oe == nil || oe.Status != http.StatusTooManyRequests || !strings.Contains(oe.Description, "on example.com") {
			t.Errorf("third client on *.example.com = %v, want 429 naming example.com", err)
		}
		must(t, lookup(ts, d.URL+"/app")) // 127.0.0.1 is another host
	})

	t.Run("re-creation is not a new client", func(t *testing.T) {
		ts := newServer(t, func(r *Registration) { r.CIMD.HostRateLimit = 1 })
		id := d.URL + "/changing"
		d.set("/changing", docResponse{body: d.doc("/changing", nil)})
		must(t, lookup(ts, id))
		d.set("/changing", docResponse{body: d.doc("/changing", map[string]any{"redirect_uris": []string{"http://127.0.0.1/other"}})})
		ts.Clock.Advance(6 * time.Minute)
		c, err := ts.lookupClient(t.Context(), id, cimdTestIP)
		if err != nil || len(c.RedirectURIs) != 1 || c.RedirectURIs[0] != "http://127.0.0.1/other" {
			t.Errorf("after a redirect change with the host's budget used up = %+v, %v; want the client re-created", c.RedirectURIs, err)
		}
	})

	t.Run("jwks_uri", func(t *testing.T) {
		ts := newServer(t, func(r *Registration) {})
		id := d.URL + "/pkjwt"
		d.set("/pkjwt", docResponse{body: d.doc("/pkjwt", map[string]any{"token_endpoint_auth_method": "private_key_jwt", "jwks_uri": "https://internal.example/jwks"})})
		err := lookup(ts, id)
		if oe := oauthErr(err); oe == nil || oe.Code != "invalid_client" || !strings.Contains(oe.Description, "the JWK Set at the jwks_uri") || strings.Contains(oe.Description, "10.1.2.3") {
			t.Errorf("a jwks_uri on a private address = %v, want invalid_client without the address", err)
		}
		if line := logLine(logs.String(), id); !strings.Contains(line, "10.1.2.3") {
			t.Errorf("the log does not say why:\n%s", logs.String())
		}
	})

	t.Run("failure_ttl off", func(t *testing.T) {
		ts := newServer(t, func(r *Registration) { r.CIMD.FailureTTL = -1 })
		for range 2 {
			if err := lookup(ts, d.URL+"/gone"); err == nil {
				t.Fatal("a missing document was accepted")
			}
		}
		if n := d.count("/gone"); n != 2 {
			t.Errorf("2 lookups with failure_ttl off fetched %d times, want 2", n)
		}
	})
}

// oauthErr returns err as an *oauth.Error, or nil.
func oauthErr(err error) *oauth.Error {
	var oe *oauth.Error
	if errors.As(err, &oe) {
		return oe
	}
	return nil
}
