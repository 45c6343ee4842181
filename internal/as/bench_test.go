package as_test

// Benchmarks of the authorization server's hot paths, in process: the
// handler is called directly (no sockets), with real storage and real
// signing keys, so ns/op is the server's own cost per request.
//
//	go test -run '^$' -bench . -count 6 ./internal/as | tee new.txt
//	benchstat old.txt new.txt
//
// Profile one path:
//
//	go test -run '^$' -bench 'TokenClientCredentials/sqlite$' -cpuprofile cpu.out ./internal/as
//	go tool pprof -top as.test cpu.out
//
// SQLite runs in a temporary directory. PostgreSQL variants run when
// GATEHOUSE_TEST_POSTGRES_DSN is set (scripts/pg-test-start.sh), in a
// throwaway schema.

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	_ "github.com/jackc/pgx/v5/stdlib"

	"github.com/gatehouse-mcp/gatehouse/internal/as"
	"github.com/gatehouse-mcp/gatehouse/internal/storage"
	"github.com/gatehouse-mcp/gatehouse/internal/storage/postgres"
	"github.com/gatehouse-mcp/gatehouse/internal/storage/sqlite"
	"github.com/gatehouse-mcp/gatehouse/internal/token"
	"github.com/gatehouse-mcp/gatehouse/internal/web"
)

const (
	benchIssuer   = "http://127.0.0.1:18080"
	benchResource = "http://127.0.0.1:18081/mcp"
	benchCC       = "bench-cc"
	benchSecret   = "bench-secret-0123456789-abcdefghijklmnop"
	benchPublic   = "bench-public"
	benchRedirect = "http://127.0.0.1/callback"
)

// benchEnv is a server with a confidential client, a public client, and a
// user whose browser session and consent already exist.
type benchEnv struct {
	srv     *as.Server
	store   storage.Store
	basic   string // Authorization header of the confidential client
	session string // Cookie header of the user's browser
}

// benchBackends runs f once per storage backend.
func benchBackends(b *testing.B, f func(b *testing.B, e *benchEnv)) {
	b.Run("sqlite", func(b *testing.B) { f(b, newBenchEnv(b, benchSQLite(b))) })
	b.Run("postgres", func(b *testing.B) { f(b, newBenchEnv(b, benchPostgres(b))) })
}

func benchSQLite(b *testing.B) storage.Store {
	st, err := sqlite.Open(b.Context(), sqlite.Options{Path: b.TempDir() + "/gatehouse.db"})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	return st
}

func benchPostgres(b *testing.B) storage.Store {
	dsn := os.Getenv("GATEHOUSE_TEST_POSTGRES_DSN")
	if dsn == "" {
		b.Skip("GATEHOUSE_TEST_POSTGRES_DSN is unset; start a server with scripts/pg-test-start.sh")
	}
	var rnd [8]byte
	rand.Read(rnd[:])
	schema := "gatehouse_bench_" + hex.EncodeToString(rnd[:])
	st, err := postgres.Open(context.Background(), postgres.Options{DSN: dsn, Schema: schema, AutoMigrate: true})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		st.Close()
		if db, err := sql.Open("pgx", dsn); err == nil {
			db.Exec("DROP SCHEMA IF EXISTS " + pgx.Identifier{schema}.Sanitize() + " CASCADE")
			db.Close()
		}
	})
	return st
}

// newBenchEnv seeds st and starts a server on it; mods adjust the
// server's options.
func newBenchEnv(b *testing.B, st storage.Store, mods ...func(*as.Options)) *benchEnv {
	b.Helper()
	ctx := b.Context()
	now := time.Now()
	kek := make([]byte, 32)
	kr, err := token.NewKeyring(ctx, token.KeyringOptions{Keys: st, EncryptionKey: kek, Now: time.Now})
	if err != nil {
		b.Fatal(err)
	}
	pages, err := web.New(web.Options{CSRFKey: make([]byte, 32), StaticPrefix: "/static/"})
	if err != nil {
		b.Fatal(err)
	}
	fail := func(err error) {
		if err != nil {
			b.Helper()
			b.Fatal(err)
		}
	}
	fail(st.PutResource(ctx, storage.Resource{URL: benchResource, Name: "Notes",
		Scopes:        []storage.Scope{{Name: "notes:read", Description: "Read notes"}, {Name: "notes:write", Description: "Write notes"}},
		DefaultScopes: []string{"notes:read"}, AcceptClientCredentials: true, CreatedAt: now, UpdatedAt: now}))
	for _, c := range []storage.Client{
		{ID: benchCC, Name: "bench cc", GrantTypes: []string{"client_credentials"}, TokenEndpointAuthMethod: "client_secret_basic",
			SecretHash: token.Hash(benchSecret), ApplicationType: "web"},
		{ID: benchPublic, Name: "bench public", RedirectURIs: []string{benchRedirect}, GrantTypes: []string{"authorization_code", "refresh_token"},
			ResponseTypes: []string{"code"}, TokenEndpointAuthMethod: "none", ApplicationType: "native"},
	} {
		c.Origin, c.Metadata, c.CreatedAt, c.UpdatedAt = storage.OriginStatic, "{}", now, now
		fail(st.CreateClient(ctx, c))
	}
	userID := "bench-user"
	fail(st.CreateUser(ctx, storage.User{ID: userID, Username: "bench", PasswordHash: "unused", CreatedAt: now, UpdatedAt: now}))
	sid, err := token.NewSecret(rand.Reader)
	fail(err)
	fail(st.CreateSession(ctx, storage.Session{IDHash: token.Hash(sid), UserID: userID, AuthTime: now, CreatedAt: now, ExpiresAt: now.Add(12 * time.Hour)}))
	fail(st.PutConsent(ctx, storage.Consent{UserID: userID, ClientID: benchPublic, Resource: benchResource, Scopes: []string{"notes:read"}, CreatedAt: now, UpdatedAt: now}))
	opts := as.Options{Issuer: benchIssuer, Store: st, Keyring: kr, Pages: pages, Now: time.Now, AllowHTTPIssuer: true}
	for _, mod := range mods {
		mod(&opts)
	}
	srv, err := as.New(opts)
	fail(err)
	return &benchEnv{
		srv:     srv,
		store:   st,
		basic:   "Basic " + base64.StdEncoding.EncodeToString([]byte(benchCC+":"+benchSecret)),
		session: pages.CookieName("gh_session") + "=" + sid,
	}
}

// serve runs one request through the full handler and returns the recorder.
func (e *benchEnv) serve(method, target, body string, header ...string) *httptest.ResponseRecorder {
	var r *http.Request
	if body != "" {
		r = httptest.NewRequest(method, target, strings.NewReader(body))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	} else {
		r = httptest.NewRequest(method, target, nil)
	}
	r.RemoteAddr = "127.0.0.1:40000"
	for i := 0; i+1 < len(header); i += 2 {
		r.Header.Set(header[i], header[i+1])
	}
	w := httptest.NewRecorder()
	e.srv.ServeHTTP(w, r)
	return w
}

func benchCheck(b testing.TB, w *httptest.ResponseRecorder, status int, what string) {
	if w.Code != status {
		b.Fatalf("%s: HTTP %d, want %d: %s", what, w.Code, status, w.Body.String())
	}
}

// tokenResponse is the part of a token response the benchmarks read.
type tokenResponse struct {
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
}

func s256(verifier string) string {
	sum := sha256.Sum256([]byte(verifier))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// cpuTime is the process's user+system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// benchLoop runs f b.N times and reports, besides wall time, the process
// CPU time per operation (cpu-ns/op): on a machine shared with other work
// wall time includes waiting for a core, CPU time does not.
func benchLoop(b *testing.B, f func()) {
	c0 := cpuTime()
	for b.Loop() {
		f()
	}
	b.ReportMetric(float64(cpuTime()-c0)/float64(b.N), "cpu-ns/op")
}

// benchParallel is benchLoop with 16 goroutines per CPU; setup runs once
// per goroutine before its loop and returns its operation.
func benchParallel(b *testing.B, setup func() func()) {
	b.SetParallelism(16)
	c0 := cpuTime()
	b.RunParallel(func(pb *testing.PB) {
		f := setup()
		for pb.Next() {
			f()
		}
	})
	b.ReportMetric(float64(cpuTime()-c0)/float64(b.N), "cpu-ns/op")
}

var benchCCForm = url.Values{"grant_type": {"client_credentials"}, "resource": {benchResource}}.Encode()

func (e *benchEnv) clientCredentials(b testing.TB) string {
	w := e.serve("POST", "/token", benchCCForm, "Authorization", e.basic)
	benchCheck(b, w, 200, "client_credentials")
	var t tokenResponse
	json.Unmarshal(w.Body.Bytes(), &t)
	return t.AccessToken
}

// authorizeCode runs /authorize with the session cookie and returns the
// code; verifier is the PKCE verifier the code is bound to.
func (e *benchEnv) authorizeCode(b testing.TB, verifier string) string {
	q := url.Values{"response_type": {"code"}, "client_id": {benchPublic}, "redirect_uri": {benchRedirect},
		"code_challenge": {s256(verifier)}, "code_challenge_method": {"S256"}, "state": {"bench-state"}, "resource": {benchResource}}
	w := e.serve("GET", "/authorize?"+q.Encode(), "", "Cookie", e.session)
	benchCheck(b, w, http.StatusFound, "authorize")
	loc, err := url.Parse(w.Header().Get("Location"))
	if err != nil || loc.Query().Get("code") == "" {
		b.Fatalf("authorize: no code in %q", w.Header().Get("Location"))
	}
	return loc.Query().Get("code")
}

func (e *benchEnv) redeem(b testing.TB, code, verifier string) tokenResponse {
	form := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {benchRedirect},
		"client_id": {benchPublic}, "code_verifier": {verifier}}.Encode()
	w := e.serve("POST", "/token", form)
	benchCheck(b, w, 200, "authorization_code")
	var t tokenResponse
	json.Unmarshal(w.Body.Bytes(), &t)
	if t.RefreshToken == "" {
		b.Fatal("authorization_code: no refresh token")
	}
	return t
}

func (e *benchEnv) refresh(b testing.TB, rt string) string {
	form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}, "client_id": {benchPublic}}.Encode()
	w := e.serve("POST", "/token", form)
	benchCheck(b, w, 200, "refresh_token")
	var t tokenResponse
	json.Unmarshal(w.Body.Bytes(), &t)
	return t.RefreshToken
}

func benchVerifier() string { return rand.Text() + rand.Text() }

// BenchmarkDiscovery is GET of the RFC 8414 metadata: pre-encoded bytes.
func BenchmarkDiscovery(b *testing.B) {
	e := newBenchEnv(b, benchSQLite(b))
	benchLoop(b, func() {
		benchCheck(b, e.serve("GET", "/.well-known/oauth-authorization-server", ""), 200, "discovery")
	})
}

// BenchmarkJWKS is GET of the key set.
func BenchmarkJWKS(b *testing.B) {
	e := newBenchEnv(b, benchSQLite(b))
	benchLoop(b, func() {
		benchCheck(b, e.serve("GET", "/jwks", ""), 200, "jwks")
	})
}

// BenchmarkClientAuthentication is client_secret_basic alone, measured
// through /introspect without a token: form parsing, the client row, the
// failure throttle and one SHA-256, then a 400 invalid_request.
func BenchmarkClientAuthentication(b *testing.B) {
	benchBackends(b, func(b *testing.B, e *benchEnv) {
		benchLoop(b, func() {
			benchCheck(b, e.serve("POST", "/introspect", "token_type_hint=access_token", "Authorization", e.basic), 400, "client authentication")
		})
	})
}

// BenchmarkTokenClientCredentials is the whole client_credentials request:
// form parsing, client authentication, resource and scopes, signing (see
// internal/token BenchmarkSign for the signature alone), the audit row,
// the JSON response.
func BenchmarkTokenClientCredentials(b *testing.B) {
	benchBackends(b, func(b *testing.B, e *benchEnv) {
		benchLoop(b, func() { e.clientCredentials(b) })
	})
}

// BenchmarkTokenClientCredentialsParallel is the same with 16 requests per
// CPU in flight, as under load: it adds the cost of contention (the
// single SQLite writer connection, pool waits).
func BenchmarkTokenClientCredentialsParallel(b *testing.B) {
	benchBackends(b, func(b *testing.B, e *benchEnv) {
		benchParallel(b, func() func() { return func() { e.clientCredentials(b) } })
	})
}

// BenchmarkIntrospect is introspection of a JWT access token by a
// confidential client: authentication, signature verification, the
// revocation lookup.
func BenchmarkIntrospect(b *testing.B) {
	benchBackends(b, func(b *testing.B, e *benchEnv) {
		body := url.Values{"token": {e.clientCredentials(b)}}.Encode()
		benchLoop(b, func() {
			benchCheck(b, e.serve("POST", "/introspect", body, "Authorization", e.basic), 200, "introspect")
		})
	})
}

// BenchmarkAuthorizeWithSession is /authorize for a signed-in user who has
// consented: straight to the redirect with a code.
func BenchmarkAuthorizeWithSession(b *testing.B) {
	benchBackends(b, func(b *testing.B, e *benchEnv) {
		v := benchVerifier()
		benchLoop(b, func() { e.authorizeCode(b, v) })
	})
}

// BenchmarkCodeRedemption is the authorization_code grant alone: consume
// the code, check PKCE, sign, store the first refresh token, audit. The
// codes are issued before the timer starts.
func BenchmarkCodeRedemption(b *testing.B) {
	benchBackends(b, func(b *testing.B, e *benchEnv) {
		v := benchVerifier()
		codes := make([]string, b.N)
		for i := range codes {
			codes[i] = e.authorizeCode(b, v)
		}
		b.ResetTimer()
		c0 := cpuTime()
		for i := 0; i < b.N; i++ {
			e.redeem(b, codes[i], v)
		}
		b.ReportMetric(float64(cpuTime()-c0)/float64(b.N), "cpu-ns/op")
	})
}

// BenchmarkCodeFlow is one whole flow with session and consent present:
// authorize → code → token with a refresh token.
func BenchmarkCodeFlow(b *testing.B) {
	benchBackends(b, func(b *testing.B, e *benchEnv) {
		benchLoop(b, func() {
			v := benchVerifier()
			e.redeem(b, e.authorizeCode(b, v), v)
		})
	})
}

// BenchmarkRefreshRotation is the refresh_token grant with rotation, one
// family: read the token and grant, sign, seal the retry response, rotate
// in one transaction, audit.
func BenchmarkRefreshRotation(b *testing.B) {
	benchBackends(b, func(b *testing.B, e *benchEnv) {
		v := benchVerifier()
		rt := e.redeem(b, e.authorizeCode(b, v), v).RefreshToken
		benchLoop(b, func() { rt = e.refresh(b, rt) })
	})
}

// BenchmarkRefreshRotationParallel rotates 16 families per CPU at once.
func BenchmarkRefreshRotationParallel(b *testing.B) {
	benchBackends(b, func(b *testing.B, e *benchEnv) {
		benchParallel(b, func() func() {
			v := benchVerifier()
			rt := e.redeem(b, e.authorizeCode(b, v), v).RefreshToken
			return func() { rt = e.refresh(b, rt) }
		})
	})
}

// BenchmarkIntrospectParallel introspects with 16 requests per CPU in
// flight: reads only, so it shows the read path under concurrency.
func BenchmarkIntrospectParallel(b *testing.B) {
	benchBackends(b, func(b *testing.B, e *benchEnv) {
		body := url.Values{"token": {e.clientCredentials(b)}}.Encode()
		benchParallel(b, func() func() {
			return func() {
				benchCheck(b, e.serve("POST", "/introspect", body, "Authorization", e.basic), 200, "introspect")
			}
		})
	})
}

// BenchmarkRegisterClient is POST /register of a new public client (its
// client_name differs every time, so nothing is de-duplicated) with 100
// or 100,000 dynamic clients already stored, half registered and half
// metadata-document clients. The cap check counts the registered ones
// (storage.CountClients): creating a client must cost the same however
// many exist.
//
//	go test -run '^$' -bench 'RegisterClient' -count 6 ./internal/as | tee new.txt
//	go run golang.org/x/perf/cmd/benchstat@latest -col /existing new.txt
func BenchmarkRegisterClient(b *testing.B) {
	for _, backend := range []struct {
		name string
		open func(*testing.B) storage.Store
	}{{"sqlite", benchSQLite}, {"postgres", benchPostgres}} {
		for _, existing := range []int{100, 100_000} {
			b.Run(fmt.Sprintf("%s/existing=%d", backend.name, existing), func(b *testing.B) {
				st := backend.open(b)
				seedDynamicClients(b, st, existing)
				e := newBenchEnv(b, st, func(o *as.Options) {
					o.Registration = as.Registration{Mode: as.RegistrationOpen, RateLimit: -1, MaxClients: 10_000_000}
				})
				n := 0
				benchLoop(b, func() {
					n++
					body := fmt.Sprintf(`{"client_name":"bench client %d","redirect_uris":["http://127.0.0.1/callback"],"application_type":"native","token_endpoint_auth_method":"none","grant_types":["authorization_code","refresh_token"]}`, n)
					benchCheck(b, e.serve("POST", "/register", body, "Content-Type", "application/json"), http.StatusCreated, "register")
				})
			})
		}
	}
}

// seedDynamicClients stores n dynamic clients through CreateClient, on 8
// connections at once where the backend has them.
func seedDynamicClients(b *testing.B, st storage.Store, n int) {
	b.Helper()
	now := time.Now()
	ids := make(chan int)
	errs := make(chan error, 8)
	for range 8 {
		go func() {
			var first error
			for i := range ids {
				c := storage.Client{ID: fmt.Sprintf("dcr_seed_%07d", i), Name: "seed", RedirectURIs: []string{benchRedirect},
					GrantTypes: []string{"authorization_code"}, ResponseTypes: []string{"code"}, TokenEndpointAuthMethod: "none",
					ApplicationType: "native", Origin: storage.OriginDCR, Metadata: "{}", CreatedAt: now, UpdatedAt: now}
				if i%2 == 1 {
					c.ID, c.Origin = fmt.Sprintf("https://app%d.example/client.json", i), storage.OriginCIMD
				}
				if err := st.CreateClient(b.Context(), c); err != nil && first == nil {
					first = err
				}
			}
			errs <- first
		}()
	}
	for i := range n {
		ids <- i
	}
	close(ids)
	for range 8 {
		if err := <-errs; err != nil {
			b.Fatal(err)
		}
	}
}

// benchAPI is the resource the exchange benchmarks ask tokens for.
const benchAPI = "https://api.example.com/v1"

// newExchangeBenchEnv is newBenchEnv with token exchange: the
// confidential client may exchange tokens for benchResource for benchAPI.
func newExchangeBenchEnv(b *testing.B, st storage.Store) *benchEnv {
	e := newBenchEnv(b, st, func(o *as.Options) {
		o.TokenExchange = as.TokenExchange{Clients: []as.ExchangeClient{{ClientID: benchCC, SubjectAudiences: []string{benchResource}, Audiences: []string{benchAPI}}}}
	})
	now := time.Now()
	if err := st.PutResource(b.Context(), storage.Resource{URL: benchAPI, Name: "API", Scopes: []storage.Scope{{Name: "notes:read"}, {Name: "notes:write"}},
		DefaultScopes: []string{"notes:read"}, CreatedAt: now, UpdatedAt: now}); err != nil {
		b.Fatal(err)
	}
	return e
}

// exchangeForm is a token exchange of a fresh user's access token (one
// code flow) for benchAPI.
func (e *benchEnv) exchangeForm(b testing.TB) string {
	v := benchVerifier()
	t := e.redeem(b, e.authorizeCode(b, v), v)
	return url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:token-exchange"}, "subject_token": {t.AccessToken},
		"subject_token_type": {"urn:ietf:params:oauth:token-type:access_token"}, "resource": {benchAPI}}.Encode()
}

// BenchmarkTokenExchangeParallel is the RFC 8693 token exchange grant
// with 16 requests per CPU in flight, each goroutine exchanging its own
// user's token: client authentication, the subject token's checks
// (signature, revocation, authorization, user), signing, the audit row.
func BenchmarkTokenExchangeParallel(b *testing.B) {
	run := func(b *testing.B, e *benchEnv) {
		benchParallel(b, func() func() {
			form := e.exchangeForm(b)
			return func() {
				benchCheck(b, e.serve("POST", "/token", form, "Authorization", e.basic), 200, "token exchange")
			}
		})
	}
	b.Run("sqlite", func(b *testing.B) { run(b, newExchangeBenchEnv(b, benchSQLite(b))) })
	b.Run("postgres", func(b *testing.B) { run(b, newExchangeBenchEnv(b, benchPostgres(b))) })
}
