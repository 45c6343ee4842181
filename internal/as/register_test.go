package as

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-mcp/gatehouse/internal/clientreg"
	"github.com/gatehouse-mcp/gatehouse/internal/storage"
)

// allowMachineClients is the operator's opt-in that lets dynamic clients
// use client_credentials, for notes:read only.
func allowMachineClients(r *Registration) {
	r.AllowClientCredentials = true
	r.ClientCredentialsScopes = []string{"notes:read"}
}

// openRegistration enables open registration without a rate limit; mod
// adjusts the rest.
func openRegistration(mod func(*Registration)) func(*Options) {
	return func(o *Options) {
		o.Registration = Registration{Mode: RegistrationOpen, RateLimit: -1}
		if mod != nil {
			mod(&o.Registration)
		}
	}
}

// regResp is a response of the registration endpoints.
type regResp struct {
	status int
	header http.Header
	body   string
	json   map[string]any
}

func (r regResp) str(k string) string { s, _ := r.json[k].(string); return s }

// call sends a request to a registration endpoint path.
func (ts *testServer) call(t *testing.T, method, path, contentType, body, bearer string) regResp {
	t.Helper()
	req, err := http.NewRequest(method, ts.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	r := regResp{status: resp.StatusCode, header: resp.Header, body: string(b)}
	_ = json.Unmarshal(b, &r.json)
	return r
}

// register POSTs a registration request.
func (ts *testServer) register(t *testing.T, body string) regResp {
	t.Helper()
	return ts.call(t, http.MethodPost, "/register", "application/json", body, "")
}

// mustRegister registers and fails the test unless it gets 201.
func (ts *testServer) mustRegister(t *testing.T, body string) regResp {
	t.Helper()
	r := ts.register(t, body)
	if r.status != http.StatusCreated {
		t.Fatalf("register = %d %s", r.status, r.body)
	}
	return r
}

// maskRegistration pins a client information response's shape: issued
// values become their names, and the JSON is re-indented with sorted keys.
func maskRegistration(t *testing.T, body string) string {
	t.Helper()
	var m map[string]any
	must(t, json.Unmarshal([]byte(body), &m))
	for _, k := range []string{"client_id", "client_secret", "registration_access_token", "registration_client_uri"} {
		if _, ok := m[k]; ok {
			m[k] = "<" + k + ">"
		}
	}
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	must(t, enc.Encode(m))
	return b.String()
}

// Metadata of real clients (approximately what they send).
const (
	cursorMetadata = `{"client_name":"Cursor","redirect_uris":["cursor://anysphere.cursor-mcp/oauth/callback"],"token_endpoint_auth_method":"none","grant_types":["authorization_code","refresh_token"],"response_types":["code"]}`
	sdkMetadata    = `{"client_name":"MCP SDK client","client_uri":"https://sdk.example.com","redirect_uris":["http://127.0.0.1/callback"],"token_endpoint_auth_method":"none","grant_types":["authorization_code","refresh_token"],"response_types":["code"],"x_vendor_flag":{"beta":true}}`
)

// cursorAuth is an authorization request of a client registered with
// cursorMetadata (its private-use redirect URI).
func cursorAuth(clientID string) authRequest {
	a := defaultAuth()
	a.clientID, a.redirectURI = clientID, "cursor://anysphere.cursor-mcp/oauth/callback"
	return a
}

// TestRegisterRefusals: each bad registration gets its exact error code,
// description and status (golden bodies), with no-store, and stores nothing.
func TestRegisterRefusals(t *testing.T) {
	ts := newTestServer(t, openRegistration(nil))
	reg := func(fields string) string { return `{"client_name":"X",` + fields + `}` }
	native := func(uri string) string {
		return reg(`"application_type":"native","token_endpoint_auth_method":"none","redirect_uris":["` + uri + `"]`)
	}
	web := func(uri string) string { return reg(`"application_type":"web","redirect_uris":["` + uri + `"]`) }
	tests := []struct {
		name, body string
		wantStatus int
		wantCode   string
	}{
		{"javascript uri", native("javascript:alert(document.cookie)"), 400, "invalid_redirect_uri"},
		{"data uri", native("data:text/html;base64,PHNjcmlwdD4="), 400, "invalid_redirect_uri"},
		{"file uri", native("file:///etc/passwd"), 400, "invalid_redirect_uri"},
		{"vbscript uri", native("vbscript:msgbox(1)"), 400, "invalid_redirect_uri"},
		{"fragment", web("https://app.example.com/cb#x"), 400, "invalid_redirect_uri"},
		{"non-loopback http", native("http://app.example.com/cb"), 400, "invalid_redirect_uri"},
		{"wildcard", web("https://*.example.com/cb"), 400, "invalid_redirect_uri"},
		{"loopback for a web client", web("http://127.0.0.1/callback"), 400, "invalid_redirect_uri"},
		{"private scheme for a web client", web("cursor://anysphere.cursor-mcp/oauth/callback"), 400, "invalid_redirect_uri"},
		{"unlisted private scheme", native("myapp://callback"), 400, "invalid_redirect_uri"},
		{"opaque private scheme", native("com.example.app:callback"), 400, "invalid_redirect_uri"},
		{"user information", web("https://user@app.example.com/cb"), 400, "invalid_redirect_uri"},
		{"relative uri", web("/callback"), 400, "invalid_redirect_uri"},
		{"no redirect_uris", reg(`"token_endpoint_auth_method":"none"`), 400, "invalid_redirect_uri"},
		{"case-variant member name", `{"Redirect_URIs":["https://app.example.com/cb"]}`, 400, "invalid_redirect_uri"},
		{"unknown auth method", reg(`"redirect_uris":["https://a.example/cb"],"token_endpoint_auth_method":"tls_client_auth"`), 400, "invalid_client_metadata"},
		{"client_secret_jwt", reg(`"redirect_uris":["https://a.example/cb"],"token_endpoint_auth_method":"client_secret_jwt"`), 400, "invalid_client_metadata"},
		{"implicit grant", reg(`"redirect_uris":["https://a.example/cb"],"grant_types":["implicit"]`), 400, "invalid_client_metadata"},
		{"password grant", reg(`"redirect_uris":["https://a.example/cb"],"grant_types":["password"]`), 400, "invalid_client_metadata"},
		{"device grant", reg(`"redirect_uris":["https://a.example/cb"],"grant_types":["urn:ietf:params:oauth:grant-type:device_code"]`), 400, "invalid_client_metadata"},
		{"token response type", reg(`"redirect_uris":["https://a.example/cb"],"response_types":["code","token"]`), 400, "invalid_client_metadata"},
		{"jwks and jwks_uri", reg(`"redirect_uris":["https://a.example/cb"],"token_endpoint_auth_method":"private_key_jwt","jwks":{"keys":[{"kty":"EC"}]},"jwks_uri":"https://a.example/jwks"`), 400, "invalid_client_metadata"},
		{"private_key_jwt without keys", reg(`"redirect_uris":["https://a.example/cb"],"token_endpoint_auth_method":"private_key_jwt"`), 400, "invalid_client_metadata"},
		{"private key in jwks", reg(`"redirect_uris":["https://a.example/cb"],"token_endpoint_auth_method":"private_key_jwt","jwks":{"keys":[{"kty":"EC","crv":"P-256","x":"x","y":"y","d":"secret"}]}`), 400, "invalid_client_metadata"},
		{"client_credentials with none", `{"grant_types":["client_credentials"],"token_endpoint_auth_method":"none"}`, 400, "invalid_client_metadata"},
		{"oversized client_name", `{"client_name":"` + strings.Repeat("N", 201) + `","redirect_uris":["https://a.example/cb"]}`, 400, "invalid_client_metadata"},
		{"oversized redirect uri", `{"redirect_uris":["https://a.example/` + strings.Repeat("p", 2048) + `"]}`, 400, "invalid_redirect_uri"},
		{"too many redirect uris", `{"redirect_uris":[` + strings.TrimSuffix(strings.Repeat(`"https://a.example/cb",`, 21), ",") + `]}`, 400, "invalid_redirect_uri"},
		{"bad application_type", reg(`"redirect_uris":["https://a.example/cb"],"application_type":"desktop"`), 400, "invalid_client_metadata"},
		{"client_id sent", reg(`"redirect_uris":["https://a.example/cb"],"client_id":"mine"`), 400, "invalid_client_metadata"},
		{"duplicate member", `{"redirect_uris":["https://a.example/cb"],"redirect_uris":["https://evil.example/cb"]}`, 400, "invalid_client_metadata"},
		{"not an object", `["https://a.example/cb"]`, 400, "invalid_client_metadata"},
		{"malformed json", `{"redirect_uris":`, 400, "invalid_client_metadata"},
		{"trailing data", `{"redirect_uris":["https://a.example/cb"]} x`, 400, "invalid_client_metadata"},
	}
	before := ts.snapshot(t)
	var bodies strings.Builder
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := ts.register(t, tt.body)
			assertOAuthError(t, r.status, r.body, tt.wantStatus, tt.wantCode)
			if cc := r.header.Get("Cache-Control"); cc != "no-store" {
				t.Errorf("Cache-Control = %q, want no-store", cc)
			}
			fmt.Fprintf(&bodies, "%s: %d %s", tt.name, r.status, r.body)
		})
	}
	for _, tt := range []struct {
		name, method, contentType, body string
		wantStatus                      int
		wantCode                        string
	}{
		{"form content type", http.MethodPost, "application/x-www-form-urlencoded", "redirect_uris=https://a.example/cb", 415, "invalid_client_metadata"},
		{"no content type", http.MethodPost, "", `{}`, 415, "invalid_client_metadata"},
		{"body too large", http.MethodPost, "application/json", `{"x":"` + strings.Repeat("a", clientreg.MaxRegistrationBytes) + `"}`, 413, "invalid_client_metadata"},
		{"GET", http.MethodGet, "", "", 405, "invalid_request"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := ts.call(t, tt.method, "/register", tt.contentType, tt.body, "")
			assertOAuthError(t, r.status, r.body, tt.wantStatus, tt.wantCode)
			fmt.Fprintf(&bodies, "%s: %d %s", tt.name, r.status, r.body)
		})
	}
	golden(t, ts, "register_errors", bodies.String())
	if after := ts.snapshot(t); after != before {
		t.Error("a refused registration changed storage")
	}
}

// TestRegisterResponses: accepted registrations echo the normalised
// metadata (defaults, inferred application_type, unknown members) with
// the issued values, 201 and no-store.
func TestRegisterResponses(t *testing.T) {
	ts := newTestServer(t, openRegistration(nil))
	for _, tt := range []struct{ name, body string }{
		{"register_cursor", cursorMetadata},
		{"register_sdk", sdkMetadata},
		{"register_confidential", `{"client_name":"Web App","redirect_uris":["https://app.example.com/cb"],"scope":"notes:read openid"}`},
		{"register_claude_web", `{"client_name":"claudeai","redirect_uris":["https://claude.ai/api/mcp/auth_callback"],"token_endpoint_auth_method":"none","grant_types":["authorization_code","refresh_token"],"application_type":"web"}`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := ts.mustRegister(t, tt.body)
			if r.header.Get("Cache-Control") != "no-store" || r.header.Get("Content-Type") != "application/json" {
				t.Errorf("headers %v, want application/json and no-store", r.header)
			}
			id := r.str("client_id")
			if !strings.HasPrefix(id, "dcr_") || r.str("registration_client_uri") != ts.URL+"/register/"+id || r.str("registration_access_token") == "" {
				t.Errorf("issued values wrong: %s", r.body)
			}
			if got := int64(r.json["client_id_issued_at"].(float64)); got != ts.Clock.Now().Unix() {
				t.Errorf("client_id_issued_at = %d, want %d", got, ts.Clock.Now().Unix())
			}
			golden(t, ts, tt.name, maskRegistration(t, r.body))
			c, err := ts.Store.GetClient(t.Context(), id)
			must(t, err)
			if c.Origin != storage.OriginDCR || c.RegistrationTokenHash == "" || (c.SecretHash != "") != (r.str("client_secret") != "") {
				t.Errorf("stored client %+v does not match the response", c)
			}
		})
	}
}

// TestRegisteredClientFlow: a registered native client completes the
// authorization code flow with a loopback redirect on any port, and a
// registered confidential client's secret works at the token endpoint.
func TestRegisteredClientFlow(t *testing.T) {
	ts := newTestServer(t, openRegistration(allowMachineClients))
	id := ts.mustRegister(t, sdkMetadata).str("client_id")
	a := defaultAuth()
	a.clientID = id
	form := exchange(ts.code(t, a))
	form.Set("client_id", id)
	s, _, body := ts.post(t, "/token", form, "", "")
	if s != 200 || !strings.Contains(body, `"refresh_token"`) {
		t.Fatalf("code exchange = %d %s", s, body)
	}
	c, err := ts.Store.GetClient(t.Context(), id)
	must(t, err)
	if c.TokenCount != 1 || c.LastUsedAt.IsZero() {
		t.Errorf("client use not recorded: %+v", c)
	}

	r := ts.mustRegister(t, `{"client_name":"Worker","grant_types":["client_credentials"],"token_endpoint_auth_method":"client_secret_post"}`)
	s, _, body = ts.post(t, "/token", url.Values{"grant_type": {"client_credentials"}, "resource": {testResource},
		"client_id": {r.str("client_id")}, "client_secret": {r.str("client_secret")}}, "", "")
	if s != 200 {
		t.Fatalf("client_credentials with the registered secret = %d %s", s, body)
	}
	if r.json["client_secret_expires_at"] != float64(0) {
		t.Errorf("client_secret_expires_at = %v, want 0", r.json["client_secret_expires_at"])
	}
}

// registerDirect runs a registration without HTTP (no rate limit), for
// load tests.
func (ts *testServer) registerDirect(t *testing.T, body string) (storage.Client, bool, error) {
	md, err := clientreg.Parse([]byte(body), clientreg.Options{Kind: clientreg.Register, Redirect: ts.opts.Registration.Redirect})
	if err != nil {
		return storage.Client{}, false, err
	}
	if err := ts.applyScopePolicy(t.Context(), md, true); err != nil {
		return storage.Client{}, false, err
	}
	_, c, existing, err := ts.registerClient(t.Context(), md)
	return c, existing, err
}

func (ts *testServer) dynamicClients(t *testing.T) []storage.Client {
	t.Helper()
	cs, err := ts.Store.ListClients(t.Context())
	must(t, err)
	return slices.DeleteFunc(cs, func(c storage.Client) bool { return c.Origin != storage.OriginDCR })
}

// TestRegisterDedup: identical registrations of a public client that never
// obtained a token share one row, whatever the concurrency; the shared
// client has no registration access token any more; confidential
// registrations are never shared; once the client has obtained a token, an
// identical registration gets a new client.
func TestRegisterDedup(t *testing.T) {
	ts := newTestServer(t, openRegistration(allowMachineClients))
	var wg sync.WaitGroup
	sem := make(chan struct{}, 32)
	type result struct {
		id     string
		shared bool
	}
	results := make(chan result, 1000)
	for range 1000 {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			c, shared, err := ts.registerDirect(t, cursorMetadata)
			if err != nil {
				t.Errorf("register: %v", err)
				return
			}
			results <- result{c.ID, shared}
		})
	}
	wg.Wait()
	close(results)
	seen := map[string]bool{}
	created := 0
	for r := range results {
		seen[r.id] = true
		if !r.shared {
			created++
		}
	}
	clients := ts.dynamicClients(t)
	if len(clients) != 1 || len(seen) != 1 || created != 1 {
		t.Fatalf("1000 identical registrations left %d clients (%d distinct ids, %d created), want 1", len(clients), len(seen), created)
	}
	if clients[0].RegistrationTokenHash != "" {
		t.Error("the shared client kept a registration access token")
	}

	// Over HTTP: the first registration of new metadata gets a
	// registration access token; an identical one gets the same client
	// without one, and the first token stops working.
	meta := strings.Replace(cursorMetadata, `"Cursor"`, `"Cursor Beta"`, 1)
	r1, r2 := ts.mustRegister(t, meta), ts.mustRegister(t, meta)
	if r1.str("client_id") != r2.str("client_id") || r1.str("registration_access_token") == "" || r1.str("registration_client_uri") == "" {
		t.Fatalf("re-registration: %s / %s", r1.body, r2.body)
	}
	if _, ok := r2.json["registration_access_token"]; ok {
		t.Errorf("a shared client's registration response has a registration access token: %s", r2.body)
	}
	if _, ok := r2.json["registration_client_uri"]; ok {
		t.Errorf("a shared client's registration response has a registration_client_uri: %s", r2.body)
	}
	if g := ts.call(t, http.MethodGet, "/register/"+r1.str("client_id"), "", "", r1.str("registration_access_token")); g.status != 401 {
		t.Errorf("the first registration access token still works on a shared client: %d", g.status)
	}
	// Different metadata is a different client.
	if r := ts.mustRegister(t, strings.Replace(cursorMetadata, `"Cursor"`, `"Cursor Nightly"`, 1)); r.str("client_id") == r1.str("client_id") {
		t.Error("different metadata got the same client")
	}
	// Confidential registrations are never shared: each has its own id
	// and secret, and both secrets keep working.
	conf := `{"client_name":"Svc","grant_types":["client_credentials"],"token_endpoint_auth_method":"client_secret_basic"}`
	c1, c2 := ts.mustRegister(t, conf), ts.mustRegister(t, conf)
	if c1.str("client_id") == c2.str("client_id") {
		t.Fatalf("confidential re-registration shared the client: %s / %s", c1.body, c2.body)
	}
	cc := url.Values{"grant_type": {"client_credentials"}, "resource": {testResource}}
	for _, c := range []regResp{c1, c2} {
		if s, _, b := ts.post(t, "/token", cc, c.str("client_id"), c.str("client_secret")); s != 200 {
			t.Errorf("confidential client %s = %d %s", c.str("client_id"), s, b)
		}
	}
	// The public client obtains a token: an identical registration is a
	// new client, and the second of those shares that one.
	used := r1.str("client_id")
	a := cursorAuth(used)
	form := exchange(ts.code(t, a))
	form.Set("client_id", used)
	form.Set("redirect_uri", a.redirectURI)
	if s, _, b := ts.post(t, "/token", form, "", ""); s != 200 {
		t.Fatalf("code exchange = %d %s", s, b)
	}
	r3 := ts.mustRegister(t, meta)
	if r3.str("client_id") == used {
		t.Fatal("a used client was handed to a new registration")
	}
	if r4 := ts.mustRegister(t, meta); r4.str("client_id") != r3.str("client_id") {
		t.Error("the second unused identical registration was not de-duplicated")
	}
}

// TestRegistrationModes: closed (the zero value) refuses and advertises
// nothing; open advertises the endpoint; token requires an initial access
// token, which can be single-use, expire and be revoked.
func TestRegistrationModes(t *testing.T) {
	t.Run("closed", func(t *testing.T) {
		ts := newTestServer(t, nil)
		r := ts.register(t, sdkMetadata)
		assertOAuthError(t, r.status, r.body, 403, "access_denied")
		_, meta := fetch(t, ts.URL+"/.well-known/oauth-authorization-server")
		if strings.Contains(meta, "registration_endpoint") || strings.Contains(meta, "client_id_metadata_document_supported") {
			t.Errorf("closed registration is advertised:\n%s", meta)
		}
	})
	t.Run("open", func(t *testing.T) {
		ts := newTestServer(t, openRegistration(nil))
		_, meta := fetch(t, ts.URL+"/.well-known/oauth-authorization-server")
		var m map[string]any
		must(t, json.Unmarshal([]byte(meta), &m))
		if m["registration_endpoint"] != ts.URL+"/register" {
			t.Errorf("registration_endpoint = %v", m["registration_endpoint"])
		}
	})
	t.Run("issuer with a path", func(t *testing.T) {
		ts := newTestServerPath(t, "/tenant1", openRegistration(nil))
		r := ts.mustRegister(t, cursorMetadata)
		uri := r.str("registration_client_uri")
		if !strings.HasPrefix(uri, ts.URL+"/register/dcr_") {
			t.Fatalf("registration_client_uri = %q", uri)
		}
		if g := ts.call(t, http.MethodGet, strings.TrimPrefix(uri, ts.URL), "", "", r.str("registration_access_token")); g.status != 200 {
			t.Errorf("GET registration_client_uri = %d %s", g.status, g.body)
		}
	})
	t.Run("token", func(t *testing.T) {
		ts := newTestServer(t, openRegistration(func(r *Registration) { r.Mode = RegistrationToken }))
		ctx := t.Context()
		post := func(body, tok string) regResp {
			return ts.call(t, http.MethodPost, "/register", "application/json", body, tok)
		}
		r := post(sdkMetadata, "")
		assertOAuthError(t, r.status, r.body, 401, "invalid_token")
		// No credentials at all: a bare challenge (RFC 6750 §3.1).
		if r.header.Get("WWW-Authenticate") != "Bearer" {
			t.Errorf("WWW-Authenticate = %q, want %q", r.header.Get("WWW-Authenticate"), "Bearer")
		}
		multi, id, err := clientreg.CreateInitialAccessToken(ctx, ts.Store, nil, ts.Clock.Now(), time.Hour, false)
		must(t, err)
		if r := post(sdkMetadata, multi); r.status != 201 {
			t.Fatalf("with a token = %d %s", r.status, r.body)
		}
		if r := post(cursorMetadata, multi); r.status != 201 {
			t.Fatalf("reusing a multi-use token = %d %s", r.status, r.body)
		}
		once, _, err := clientreg.CreateInitialAccessToken(ctx, ts.Store, nil, ts.Clock.Now(), time.Hour, true)
		must(t, err)
		if r := post(`{"redirect_uris":["javascript:x"]}`, once); r.status != 400 {
			t.Fatalf("bad metadata with a single-use token = %d", r.status)
		}
		if r := post(sdkMetadata, once); r.status != 201 {
			t.Fatalf("single-use token after a refused request = %d %s: refused requests must not consume it", r.status, r.body)
		}
		if r := post(cursorMetadata, once); r.status != 401 {
			t.Errorf("single-use token reused = %d", r.status)
		}
		must(t, clientreg.RevokeInitialAccessToken(ctx, ts.Store, ts.Clock.Now(), id))
		if r := post(sdkMetadata, multi); r.status != 401 {
			t.Errorf("revoked token = %d", r.status)
		}
		other, _, err := clientreg.CreateInitialAccessToken(ctx, ts.Store, nil, ts.Clock.Now(), time.Hour, false)
		must(t, err)
		ts.Clock.Advance(time.Hour)
		if r := post(sdkMetadata, other); r.status != 401 {
			t.Errorf("expired token = %d", r.status)
		}
	})
}

// TestRegistrationLimits: the per-IP rate limit, the cap on dynamic
// clients and the scope policy.
func TestRegistrationLimits(t *testing.T) {
	t.Run("rate limit", func(t *testing.T) {
		ts := newTestServer(t, openRegistration(func(r *Registration) { r.RateLimit, r.RateWindow = 3, time.Minute }))
		for i := range 3 {
			ts.mustRegister(t, fmt.Sprintf(`{"client_name":"c%d","redirect_uris":["https://a.example/cb"]}`, i))
		}
		r := ts.register(t, cursorMetadata)
		assertOAuthError(t, r.status, r.body, 429, "temporarily_unavailable")
		if r.header.Get("Retry-After") == "" {
			t.Error("429 without Retry-After")
		}
		ts.Clock.Advance(time.Minute)
		ts.mustRegister(t, cursorMetadata)
	})
	t.Run("cap", func(t *testing.T) {
		ts := newTestServer(t, openRegistration(func(r *Registration) { r.MaxClients = 2 }))
		ts.mustRegister(t, cursorMetadata)
		ts.mustRegister(t, sdkMetadata)
		ts.mustRegister(t, cursorMetadata) // de-duplicated: no new row
		r := ts.register(t, `{"client_name":"third","redirect_uris":["https://a.example/cb"]}`)
		assertOAuthError(t, r.status, r.body, 503, "temporarily_unavailable")
	})
	t.Run("scopes", func(t *testing.T) {
		ts := newTestServer(t, openRegistration(func(r *Registration) { r.AllowedScopes = []string{"notes:read"} }))
		r := ts.register(t, `{"redirect_uris":["https://a.example/cb"],"scope":"notes:read notes:write"}`)
		assertOAuthError(t, r.status, r.body, 400, "invalid_client_metadata")
		if !strings.Contains(r.body, `notes:write`) {
			t.Errorf("the refusal does not name the scope: %s", r.body)
		}
		for i, tt := range []struct{ scope, want string }{
			{`"scope":"openid profile notes:read offline_access",`, "notes:read offline_access"},
			{``, "notes:read"},
			{`"scope":"openid",`, "notes:read"},
		} {
			r := ts.mustRegister(t, fmt.Sprintf(`{%s"redirect_uris":["https://a.example/cb"],"client_name":"s%d"}`, tt.scope, i))
			if r.str("scope") != tt.want {
				t.Errorf("scope %s echoed %q, want %q", tt.scope, r.str("scope"), tt.want)
			}
			c, err := ts.Store.GetClient(t.Context(), r.str("client_id"))
			must(t, err)
			if !slices.Equal(c.Scopes, []string{"notes:read"}) {
				t.Errorf("stored scopes %q, want [notes:read]", c.Scopes)
			}
		}
	})
}

// TestConsentDetails: what the consent page is told about each kind of client.
func TestConsentDetails(t *testing.T) {
	ts := newTestServer(t, openRegistration(nil))
	r := ts.mustRegister(t, sdkMetadata)
	c, err := ts.Store.GetClient(t.Context(), r.str("client_id"))
	must(t, err)
	pub, uri, warns := ts.consentDetails(c)
	if pub != "" || uri != "https://sdk.example.com" || len(warns) != 1 {
		t.Errorf("dcr consent details = %q %q %q", pub, uri, warns)
	}
	c, err = ts.Store.GetClient(t.Context(), publicClient)
	must(t, err)
	if pub, uri, warns := ts.consentDetails(c); pub != "" || uri != "" || warns != nil {
		t.Errorf("static consent details = %q %q %q", pub, uri, warns)
	}
}

// TestDynamicClientScopes: a dynamically registered client's own "scope"
// is no ceiling (MCP clients register with the first challenge's scope and
// step up later, RS-7); registration.allowed_scopes is, and an
// administrator's client keeps its allowlist.
func TestDynamicClientScopes(t *testing.T) {
	const registerRead = `{"client_name":"SDK","redirect_uris":["http://127.0.0.1/callback"],"token_endpoint_auth_method":"none","grant_types":["authorization_code","refresh_token"],"scope":"notes:read"}`
	// stepUp signs in and authorizes notes:read, then asks for more, as
	// a client answering a 403 insufficient_scope does.
	stepUp := func(ts *testServer, clientID string) *url.URL {
		b := newBrowser(t)
		a := defaultAuth()
		a.clientID = clientID
		if loc := ts.authorize(t, b, a); loc.Query().Get("code") == "" {
			t.Fatalf("first authorization = %s, want a code", loc)
		}
		a.scope = "notes:read notes:write"
		return ts.authorize(t, b, a)
	}
	t.Run("registered scope is not a ceiling", func(t *testing.T) {
		ts := newTestServer(t, openRegistration(nil))
		id := ts.mustRegister(t, registerRead).str("client_id")
		loc := stepUp(ts, id)
		if loc.Query().Get("code") == "" {
			t.Fatalf("step-up beyond the registered scope = %s, want a code", loc)
		}
		form := exchange(loc.Query().Get("code"))
		form.Set("client_id", id)
		s, _, body := ts.post(t, "/token", form, "", "")
		if s != 200 || !strings.Contains(body, `"scope":"notes:read notes:write"`) {
			t.Errorf("token after step-up = %d %s, want both scopes", s, body)
		}
	})
	t.Run("allowed_scopes is", func(t *testing.T) {
		ts := newTestServer(t, openRegistration(func(r *Registration) { r.AllowedScopes = []string{"notes:read"} }))
		id := ts.mustRegister(t, registerRead).str("client_id")
		loc := stepUp(ts, id)
		if q := loc.Query(); q.Get("error") != "invalid_scope" || !strings.Contains(q.Get("error_description"), "notes:write") {
			t.Errorf("step-up beyond allowed_scopes = %s, want invalid_scope naming notes:write", loc)
		}
	})
	t.Run("an administrator's allowlist is", func(t *testing.T) {
		ts := newTestServer(t, nil)
		_, err := ts.Store.UpdateClient(t.Context(), publicClient, func(c storage.Client) (storage.Client, error) {
			c.Scopes = []string{"notes:read"}
			return c, nil
		})
		must(t, err)
		loc := stepUp(ts, publicClient)
		if loc.Query().Get("error") != "invalid_scope" {
			t.Errorf("step-up beyond the client's allowlist = %s, want invalid_scope", loc)
		}
	})
}

// TestRegisterInitialAccessTokenErrors: with registration.mode token, a
// request without a token is told it is missing (golden), one with another
// scheme that it is not Bearer, one with a wrong token that it is unknown;
// all are 401 invalid_token and change nothing.
func TestRegisterInitialAccessTokenErrors(t *testing.T) {
	ts := newTestServer(t, openRegistration(func(r *Registration) { r.Mode = RegistrationToken }))
	before := ts.snapshot(t)
	var bodies strings.Builder
	for _, tt := range []struct {
		name, authorization string
		wantChallenge       string
		wantDesc            string
	}{
		// RFC 6750 §3.1: no credentials at all, no error code in the challenge.
		{"no Authorization header", "", "Bearer", "missing initial access token: "},
		{"Basic credentials", "Basic Y2xpZW50OnNlY3JldA==", `Bearer error="invalid_token"`, "the Authorization header holds no Bearer token: "},
		{"empty Bearer", "Bearer ", `Bearer error="invalid_token"`, "the Authorization header holds no Bearer token: "},
		{"unknown token", "Bearer ghiat_unknown", `Bearer error="invalid_token"`, "registration requires a valid initial access token from the operator (gatehouse client token create), sent as Authorization: Bearer; the initial access token is unknown, expired, revoked or already used"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequest(http.MethodPost, ts.URL+"/register", strings.NewReader(sdkMetadata))
			must(t, err)
			req.Header.Set("Content-Type", "application/json")
			if tt.authorization != "" {
				req.Header.Set("Authorization", tt.authorization)
			}
			resp, err := http.DefaultClient.Do(req)
			must(t, err)
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			assertOAuthError(t, resp.StatusCode, string(b), http.StatusUnauthorized, "invalid_token")
			var e struct {
				Description string `json:"error_description"`
			}
			must(t, json.Unmarshal(b, &e))
			if !strings.HasPrefix(e.Description, tt.wantDesc) {
				t.Errorf("POST /register with Authorization %q: error_description = %q, want it to start %q", tt.authorization, e.Description, tt.wantDesc)
			}
			if got := resp.Header.Values("WWW-Authenticate"); len(got) != 1 || got[0] != tt.wantChallenge {
				t.Errorf("WWW-Authenticate = %q, want [%q]", got, tt.wantChallenge)
			}
			fmt.Fprintf(&bodies, "%s: %d %s", tt.name, resp.StatusCode, b)
		})
	}
	golden(t, ts, "register_iat_errors", bodies.String())
	if after := ts.snapshot(t); after != before {
		t.Error("a refused registration changed storage")
	}
}
