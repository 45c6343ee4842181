package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse-mcp/gatehouse/internal/as"
	"github.com/gatehouse-mcp/gatehouse/internal/password"
	"github.com/gatehouse-mcp/gatehouse/internal/storage"
	"github.com/gatehouse-mcp/gatehouse/internal/storage/sqlite"
	"github.com/gatehouse-mcp/gatehouse/internal/token"
	"github.com/gatehouse-mcp/gatehouse/internal/web"
)

const (
	testResource = "http://127.0.0.1:18081/mcp"
	testSecret   = "test-secret-0123456789-abcdefghijklmnopq"
	testPassword = "correct horse battery staple"
)

// startAS runs a real authorization server (SQLite, ES256) on loopback
// with a confidential client "cc", a public client "pub" and a user
// "bench", and returns its issuer.
func startAS(t *testing.T) string {
	t.Helper()
	ctx := t.Context()
	st, err := sqlite.Open(ctx, sqlite.Options{Path: filepath.Join(t.TempDir(), "g.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	kr, err := token.NewKeyring(ctx, token.KeyringOptions{Keys: st, EncryptionKey: make([]byte, 32), Now: time.Now})
	if err != nil {
		t.Fatal(err)
	}
	pages, err := web.New(web.Options{CSRFKey: make([]byte, 32), StaticPrefix: "/static/"})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(st.PutResource(ctx, storage.Resource{URL: testResource, Name: "Notes", Scopes: []storage.Scope{{Name: "notes:read"}},
		DefaultScopes: []string{"notes:read"}, AcceptClientCredentials: true, CreatedAt: now, UpdatedAt: now}))
	for _, c := range []storage.Client{
		{ID: "cc", GrantTypes: []string{"client_credentials"}, TokenEndpointAuthMethod: "client_secret_basic",
			SecretHash: token.Hash(testSecret), ApplicationType: "web"},
		{ID: "pub", RedirectURIs: []string{"http://127.0.0.1/callback"}, GrantTypes: []string{"authorization_code", "refresh_token"},
			ResponseTypes: []string{"code"}, TokenEndpointAuthMethod: "none", ApplicationType: "native"},
	} {
		c.Origin, c.Metadata, c.CreatedAt, c.UpdatedAt = storage.OriginStatic, "{}", now, now
		must(st.CreateClient(ctx, c))
	}
	hash, err := password.HashWithParams(testPassword, password.Params{Memory: 64, Time: 1, Parallelism: 1, SaltLength: 16, KeyLength: 32}, nil)
	must(err)
	must(st.CreateUser(ctx, storage.User{ID: "u1", Username: "bench", PasswordHash: hash, CreatedAt: now, UpdatedAt: now}))

	hs := httptest.NewUnstartedServer(nil)
	issuer := "http://" + hs.Listener.Addr().String()
	srv, err := as.New(as.Options{Issuer: issuer, Store: st, Keyring: kr, Pages: pages, Now: time.Now, AllowHTTPIssuer: true})
	must(err)
	hs.Config.Handler = srv
	hs.Start()
	t.Cleanup(hs.Close)
	return issuer
}

func TestScenariosAgainstGatehouse(t *testing.T) {
	issuer := startAS(t)
	pw := filepath.Join(t.TempDir(), "pw")
	os.WriteFile(pw, []byte(testPassword+"\n"), 0o600)
	results := filepath.Join(t.TempDir(), "results.jsonl")
	var out bytes.Buffer
	err := mainErr(context.Background(), []string{
		"--url", issuer, "--server-pid", fmt.Sprint(os.Getpid()),
		"--client-id", "cc", "--client-secret", testSecret, "--public-client", "pub",
		"--username", "bench", "--password-file", pw, "--resource", testResource,
		"--scenarios", "discovery,jwks,client_credentials,introspect,code_flow,refresh",
		"--concurrency", "1,3", "--duration", "150ms", "--warmup", "20ms", "--max-requests", "500",
		"--introspect-pool", "4", "--json", results,
	}, &out)
	if err != nil {
		t.Fatalf("mainErr: %v\n%s", err, out.String())
	}
	t.Log(out.String())
	b, err := os.ReadFile(results)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, line := range bytes.Split(bytes.TrimSpace(b), []byte("\n")) {
		var r result
		if err := json.Unmarshal(line, &r); err != nil {
			t.Fatal(err)
		}
		if r.Scenario == "" {
			continue
		}
		seen[r.Scenario] = true
		if r.Units == 0 || r.Errors != 0 {
			t.Errorf("%s at %d: %d units, %d errors (%s)", r.Scenario, r.Concurrency, r.Units, r.Errors, r.FirstError)
		}
		if r.Units > 500 {
			t.Errorf("%s: %d units, more than --max-requests", r.Scenario, r.Units)
		}
		if r.ServerCPUus < 0 || r.PeakRSSMB <= 0 {
			t.Errorf("%s: no CPU or RSS figures: %+v", r.Scenario, r)
		}
		if want := map[string]float64{"code_flow": 2}[r.Scenario]; want > 0 && float64(r.Requests)/float64(r.Units) != want {
			t.Errorf("%s: %d requests for %d units, want %v per unit", r.Scenario, r.Requests, r.Units, want)
		}
	}
	for _, s := range []string{"discovery", "jwks", "client_credentials", "introspect", "code_flow", "refresh"} {
		if !seen[s] {
			t.Errorf("no result for %s", s)
		}
	}

	out.Reset()
	if err := runCompare([]string{results}, &out); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"client_credentials", "targets (gatehouse)", "JWKS ≥ 20,000 req/s"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("compare output lacks %q:\n%s", want, out.String())
		}
	}
}

func TestRefusesNonLoopback(t *testing.T) {
	for _, u := range []string{"http://example.com", "http://10.0.0.1:8080", "https://127.0.0.1", "http://[::2]:80"} {
		if err := checkLoopback(u); err == nil {
			t.Errorf("checkLoopback(%q) = nil, want an error", u)
		}
	}
	for _, u := range []string{"http://127.0.0.1:8080", "http://127.9.9.9", "http://[::1]:9", "http://localhost:1"} {
		if err := checkLoopback(u); err != nil {
			t.Errorf("checkLoopback(%q) = %v", u, err)
		}
	}
	err := mainErr(context.Background(), []string{"--url", "http://192.0.2.1:8080"}, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "loopback") {
		t.Errorf("mainErr with a remote URL = %v, want a loopback error", err)
	}
}

// TestRSToolsCall drives a stand-in MCP server that answers over SSE and
// keeps sessions, as the go-sdk's Streamable HTTP handler does.
func TestRSToolsCall(t *testing.T) {
	issuer := startAS(t)
	var calls atomic.Int64
	mcp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer tok" {
			w.Header().Set("WWW-Authenticate", `Bearer resource_metadata="x"`)
			w.WriteHeader(401)
			return
		}
		var req struct {
			ID     any    `json:"id"`
			Method string `json:"method"`
		}
		json.NewDecoder(r.Body).Decode(&req)
		switch req.Method {
		case "initialize":
			w.Header().Set("Mcp-Session-Id", "s1")
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprintf(w, `{"jsonrpc":"2.0","id":1,"result":{"protocolVersion":"2025-06-18"}}`)
		case "notifications/initialized":
			w.WriteHeader(202)
		case "tools/list":
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprintf(w, `{"jsonrpc":"2.0","id":2,"result":{"tools":[{"name":"list_notes"}]}}`)
		case "tools/call":
			if r.Header.Get("Mcp-Session-Id") != "s1" || r.Header.Get("MCP-Protocol-Version") == "" {
				w.WriteHeader(400)
				return
			}
			calls.Add(1)
			w.Header().Set("Content-Type", "text/event-stream")
			w.(http.Flusher).Flush() // forces chunked encoding
			fmt.Fprintf(w, "event: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":%v,\"result\":{\"content\":[]}}\n\n", req.ID)
		}
	}))
	defer mcp.Close()
	var out bytes.Buffer
	err := mainErr(context.Background(), []string{
		"--url", issuer, "--rs-url", mcp.URL + "/mcp", "--rs-token", "tok", "--scenarios", "rs_tools_call",
		"--concurrency", "2", "--duration", "100ms", "--warmup", "0", "--server-pid", fmt.Sprint(os.Getpid()),
	}, &out)
	if err != nil {
		t.Fatalf("mainErr: %v\n%s", err, out.String())
	}
	if calls.Load() == 0 || strings.Contains(out.String(), "errors;") {
		t.Errorf("%d tools/call; output:\n%s", calls.Load(), out.String())
	}
}

func TestCookieJar(t *testing.T) {
	j := cookieJar{}
	j.update([]string{"a=1; Path=/; HttpOnly", "b=2; Max-Age=60", "c=3; Expires=Thu, 01 Jan 1970 00:00:00 GMT"})
	if j["a"] != "1" || j["b"] != "2" || j["c"] != "" {
		t.Errorf("jar = %v", j)
	}
	j.update([]string{"a=; Max-Age=0"})
	if _, ok := j["a"]; ok || j.header() != "Cookie: b=2" {
		t.Errorf("jar = %v, header %q", j, j.header())
	}
}

func TestPercentile(t *testing.T) {
	var d []time.Duration
	for i := 1; i <= 100; i++ {
		d = append(d, time.Duration(i)*time.Millisecond)
	}
	for p, want := range map[float64]time.Duration{0.5: 50 * time.Millisecond, 0.9: 90 * time.Millisecond, 0.99: 99 * time.Millisecond} {
		if got := percentile(d, p); got != want {
			t.Errorf("percentile(%v) = %v, want %v", p, got, want)
		}
	}
	if percentile(nil, 0.5) != 0 {
		t.Error("percentile of nothing is not 0")
	}
}
