package as

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-mcp/gatehouse/rs"
)

// exchange is a valid code exchange for the public client.
func exchange(code string) url.Values {
	return url.Values{
		"grant_type": {"authorization_code"}, "code": {code}, "client_id": {publicClient},
		"redirect_uri": {defaultAuth().redirectURI}, "code_verifier": {testVerifier},
	}
}

// TestTokenRefusals: each refusal has its exact error and status (golden
// bodies) and changes nothing in storage.
func TestTokenRefusals(t *testing.T) {
	ts := newTestServer(t, nil)
	rt := ts.refreshToken(t)
	cc := url.Values{"grant_type": {"client_credentials"}, "resource": {testResource}}
	tests := []struct {
		name         string
		form         url.Values
		user, pass   string
		contentType  string
		wantStatus   int
		wantCode     string
		wantBasicHdr bool
	}{
		{name: "missing grant_type", form: url.Values{"client_id": {publicClient}}, wantStatus: 400, wantCode: "invalid_request"},
		{name: "unsupported grant_type", form: url.Values{"grant_type": {"password"}, "client_id": {publicClient}}, wantStatus: 400, wantCode: "unsupported_grant_type"},
		{name: "implicit-style grant", form: url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:device_code"}}, wantStatus: 400, wantCode: "unsupported_grant_type"},
		{name: "no client authentication", form: cc, wantStatus: 401, wantCode: "invalid_client"},
		{name: "unknown client", form: url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}, "client_id": {"nobody"}}, wantStatus: 401, wantCode: "invalid_client"},
		{name: "wrong secret basic", form: cc, user: confClient, pass: "wrong", wantStatus: 401, wantCode: "invalid_client", wantBasicHdr: true},
		{name: "wrong secret post", form: merge(cc, url.Values{"client_id": {webClient}, "client_secret": {"wrong"}}), wantStatus: 401, wantCode: "invalid_client"},
		{name: "basic client registered for post", form: cc, user: webClient, pass: webSecret, wantStatus: 401, wantCode: "invalid_client", wantBasicHdr: true},
		{name: "two auth methods", form: merge(cc, url.Values{"client_id": {confClient}, "client_secret": {confSecret}}), user: confClient, pass: confSecret, wantStatus: 400, wantCode: "invalid_request"},
		{name: "public client without grant", form: url.Values{"grant_type": {"client_credentials"}, "client_id": {publicClient}}, wantStatus: 400, wantCode: "unauthorized_client"},
		{name: "client_credentials unknown scope", form: merge(cc, url.Values{"scope": {"admin"}}), user: confClient, pass: confSecret, wantStatus: 400, wantCode: "invalid_scope"},
		{name: "client_credentials offline_access", form: merge(cc, url.Values{"scope": {"offline_access"}}), user: confClient, pass: confSecret, wantStatus: 400, wantCode: "invalid_scope"},
		{name: "client_credentials unknown resource", form: url.Values{"grant_type": {"client_credentials"}, "resource": {"https://nope.example.com"}}, user: confClient, pass: confSecret, wantStatus: 400, wantCode: "invalid_target"},
		{name: "client_credentials no resource, two registered", form: url.Values{"grant_type": {"client_credentials"}}, user: confClient, pass: confSecret, wantStatus: 400, wantCode: "invalid_target"},
		{name: "duplicate parameter", form: url.Values{"grant_type": {"client_credentials", "client_credentials"}}, user: confClient, pass: confSecret, wantStatus: 400, wantCode: "invalid_request"},
		{name: "wrong content type", form: cc, user: confClient, pass: confSecret, contentType: "application/json", wantStatus: 400, wantCode: "invalid_request"},
		{name: "missing code", form: url.Values{"grant_type": {"authorization_code"}, "client_id": {publicClient}, "code_verifier": {testVerifier}}, wantStatus: 400, wantCode: "invalid_request"},
		{name: "missing code_verifier", form: url.Values{"grant_type": {"authorization_code"}, "client_id": {publicClient}, "code": {"x"}}, wantStatus: 400, wantCode: "invalid_request"},
		{name: "malformed code_verifier", form: url.Values{"grant_type": {"authorization_code"}, "client_id": {publicClient}, "code": {"x"}, "code_verifier": {"short"}}, wantStatus: 400, wantCode: "invalid_request"},
		{name: "unknown code", form: exchange("not-a-code"), wantStatus: 400, wantCode: "invalid_grant"},
		{name: "missing refresh_token", form: url.Values{"grant_type": {"refresh_token"}, "client_id": {publicClient}}, wantStatus: 400, wantCode: "invalid_request"},
		{name: "unknown refresh_token", form: url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"nope"}, "client_id": {publicClient}}, wantStatus: 400, wantCode: "invalid_grant"},
		{name: "refresh widening scope", form: url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}, "client_id": {publicClient}, "scope": {"notes:read notes:write"}}, wantStatus: 400, wantCode: "invalid_scope"},
		{name: "refresh another resource", form: url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}, "client_id": {publicClient}, "resource": {testResource2}}, wantStatus: 400, wantCode: "invalid_target"},
		{name: "refresh by another client", form: url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}, "client_id": {webClient}, "client_secret": {webSecret}}, wantStatus: 400, wantCode: "invalid_grant"},
	}
	var bodies strings.Builder
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := ts.snapshot(t)
			req, _ := http.NewRequest(http.MethodPost, ts.URL+"/token", strings.NewReader(tt.form.Encode()))
			ct := tt.contentType
			if ct == "" {
				ct = "application/x-www-form-urlencoded"
			}
			req.Header.Set("Content-Type", ct)
			if tt.user != "" {
				req.SetBasicAuth(url.QueryEscape(tt.user), url.QueryEscape(tt.pass))
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			var buf strings.Builder
			_, _ = fmt.Fprint(&buf, readAll(resp))
			body := buf.String()
			assertOAuthError(t, resp.StatusCode, body, tt.wantStatus, tt.wantCode)
			if got := resp.Header.Get("WWW-Authenticate") != ""; got != tt.wantBasicHdr {
				t.Errorf("WWW-Authenticate present = %v, want %v", got, tt.wantBasicHdr)
			}
			if resp.Header.Get("Cache-Control") != "no-store" {
				t.Errorf("Cache-Control = %q, want no-store", resp.Header.Get("Cache-Control"))
			}
			if ts.snapshot(t) != before {
				t.Errorf("storage changed")
			}
			fmt.Fprintf(&bodies, "%s: %d %s", tt.name, resp.StatusCode, body)
		})
	}
	golden(t, ts, "token_errors", bodies.String())
}

func merge(a, b url.Values) url.Values {
	out := url.Values{}
	for _, v := range []url.Values{a, b} {
		for k, vs := range v {
			out[k] = append(out[k], vs...)
		}
	}
	return out
}

func readAll(resp *http.Response) string {
	defer resp.Body.Close()
	var b strings.Builder
	buf := make([]byte, 4096)
	for {
		n, err := resp.Body.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			return b.String()
		}
	}
}

// TestCodeSingleUse: a replayed code is refused and revokes what the first
// redemption issued (RFC 9700 §4.5).
func TestCodeSingleUse(t *testing.T) {
	ts := newTestServer(t, nil)
	code := ts.code(t, defaultAuth())
	s, _, body := ts.post(t, "/token", exchange(code), "", "")
	if s != 200 {
		t.Fatalf("first redemption = %d %s", s, body)
	}
	var first tokenResponse
	must(t, json.Unmarshal([]byte(body), &first))
	s, _, body = ts.post(t, "/token", exchange(code), "", "")
	assertOAuthError(t, s, body, 400, "invalid_grant")
	s, _, body = ts.post(t, "/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {first.RefreshToken}, "client_id": {publicClient}}, "", "")
	assertOAuthError(t, s, body, 400, "invalid_grant")
	if got := ts.introspect(t, first.AccessToken); got {
		t.Errorf("access token from a replayed code is still active at introspection")
	}
}

// TestCodeBindings: the code is bound to its client, redirect URI, verifier
// and lifetime; each mismatch is invalid_grant and burns the code.
func TestCodeBindings(t *testing.T) {
	ts := newTestServer(t, nil)
	tests := []struct {
		name string
		mod  func(v url.Values)
		wait time.Duration
		user string
		pass string
	}{
		{name: "wrong verifier", mod: func(v url.Values) { v.Set("code_verifier", strings.Repeat("a", 43)) }},
		{name: "verifier of another challenge", mod: func(v url.Values) { v.Set("code_verifier", testVerifier+"x") }},
		{name: "redirect_uri differs", mod: func(v url.Values) { v.Set("redirect_uri", "http://127.0.0.1:5556/callback") }},
		{name: "redirect_uri missing", mod: func(v url.Values) { v.Del("redirect_uri") }},
		{name: "another client", mod: func(v url.Values) {
			v.Del("client_id")
			v.Set("client_id", webClient)
			v.Set("client_secret", webSecret)
		}},
		{name: "expired", wait: 61 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code := ts.code(t, defaultAuth())
			ts.Clock.Advance(tt.wait)
			v := exchange(code)
			if tt.mod != nil {
				tt.mod(v)
			}
			s, _, body := ts.post(t, "/token", v, "", "")
			assertOAuthError(t, s, body, 400, "invalid_grant")
			s, _, body = ts.post(t, "/token", exchange(code), "", "")
			assertOAuthError(t, s, body, 400, "invalid_grant")
		})
	}
	t.Run("resource differs", func(t *testing.T) {
		code := ts.code(t, defaultAuth())
		v := exchange(code)
		v.Set("resource", testResource2)
		s, _, body := ts.post(t, "/token", v, "", "")
		assertOAuthError(t, s, body, 400, "invalid_target")
	})
	t.Run("resource with root slash is the same", func(t *testing.T) {
		if got, _ := CanonicalResource("HTTPS://MCP.example.com:443/"); got != "https://mcp.example.com" {
			t.Errorf("CanonicalResource = %q, want https://mcp.example.com", got)
		}
	})
}

// introspect reports whether the token is active, asking as the
// confidential service client.
func (ts *testServer) introspect(t *testing.T, tok string) bool {
	t.Helper()
	s, _, body := ts.post(t, "/introspect", url.Values{"token": {tok}}, confClient, confSecret)
	if s != 200 {
		t.Fatalf("introspect = %d %s", s, body)
	}
	var r struct {
		Active bool `json:"active"`
	}
	must(t, json.Unmarshal([]byte(body), &r))
	return r.Active
}

// TestRevokeAndIntrospect: revoking a refresh token revokes the grant and
// its access tokens; revoking an access token makes it inactive.
func TestRevokeAndIntrospect(t *testing.T) {
	ts := newTestServer(t, nil)
	code := ts.code(t, defaultAuth())
	_, _, body := ts.post(t, "/token", exchange(code), "", "")
	var tr tokenResponse
	must(t, json.Unmarshal([]byte(body), &tr))
	if !ts.introspect(t, tr.AccessToken) {
		t.Fatalf("fresh access token inactive")
	}
	s, _, body := ts.post(t, "/introspect", url.Values{"token": {tr.AccessToken}}, confClient, confSecret)
	if s != 200 || !strings.Contains(body, `"aud":"`+testResource+`"`) || !strings.Contains(body, `"client_id":"`+publicClient+`"`) {
		t.Errorf("introspection = %d %s", s, body)
	}
	// Public clients may not introspect.
	s, _, body = ts.post(t, "/introspect", url.Values{"token": {tr.AccessToken}, "client_id": {publicClient}}, "", "")
	assertOAuthError(t, s, body, 401, "invalid_client")

	s, _, _ = ts.post(t, "/revoke", url.Values{"token": {tr.RefreshToken}, "client_id": {publicClient}}, "", "")
	if s != 200 {
		t.Fatalf("revoke = %d", s)
	}
	if ts.introspect(t, tr.AccessToken) {
		t.Errorf("access token still active after its refresh token's grant was revoked")
	}
	s, _, body = ts.post(t, "/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tr.RefreshToken}, "client_id": {publicClient}}, "", "")
	assertOAuthError(t, s, body, 400, "invalid_grant")

	// Client credentials token, revoked by itself.
	s, _, body = ts.post(t, "/token", url.Values{"grant_type": {"client_credentials"}, "resource": {testResource}}, confClient, confSecret)
	if s != 200 {
		t.Fatal(body)
	}
	must(t, json.Unmarshal([]byte(body), &tr))
	if !ts.introspect(t, tr.AccessToken) {
		t.Fatalf("client credentials token inactive")
	}
	ts.post(t, "/revoke", url.Values{"token": {tr.AccessToken}, "token_type_hint": {"access_token"}}, confClient, confSecret)
	if ts.introspect(t, tr.AccessToken) {
		t.Errorf("access token active after revocation")
	}
	// Unknown tokens: 200, nothing revealed (RFC 7009 §2.2).
	if s, _, _ := ts.post(t, "/revoke", url.Values{"token": {"unknown"}}, confClient, confSecret); s != 200 {
		t.Errorf("revoke unknown token = %d, want 200", s)
	}
	s, _, body = ts.post(t, "/revoke", url.Values{"token": {"x"}, "token_type_hint": {"id_token"}}, confClient, confSecret)
	assertOAuthError(t, s, body, 400, "unsupported_token_type")
	// Expired tokens are inactive.
	ts.Clock.Advance(11 * time.Minute)
	_, _, body = ts.post(t, "/token", url.Values{"grant_type": {"client_credentials"}, "resource": {testResource}}, confClient, confSecret)
	must(t, json.Unmarshal([]byte(body), &tr))
	ts.Clock.Advance(11 * time.Minute)
	if ts.introspect(t, tr.AccessToken) {
		t.Errorf("expired access token active")
	}
}

// TestClientSecretThrottle: repeated wrong secrets lock the client out for
// the window with 429 and Retry-After.
func TestClientSecretThrottle(t *testing.T) {
	ts := newTestServer(t, func(o *Options) { o.ClientAuthMaxFailures = 3 })
	cc := url.Values{"grant_type": {"client_credentials"}, "resource": {testResource}}
	for range 3 {
		s, _, body := ts.post(t, "/token", cc, confClient, "wrong")
		assertOAuthError(t, s, body, 401, "invalid_client")
	}
	s, h, body := ts.post(t, "/token", cc, confClient, confSecret)
	assertOAuthError(t, s, body, 429, "invalid_client")
	if h.Get("Retry-After") == "" {
		t.Errorf("no Retry-After")
	}
	ts.Clock.Advance(16 * time.Minute)
	if s, _, body := ts.post(t, "/token", cc, confClient, confSecret); s != 200 {
		t.Errorf("after the window = %d %s, want 200", s, body)
	}
}

// TestTokenResponsesGolden pins the success bodies of /token, /introspect
// and /revoke, with token values masked.
func TestTokenResponsesGolden(t *testing.T) {
	ts := newTestServer(t, nil)
	var out strings.Builder
	code := ts.code(t, defaultAuth())
	s, h, body := ts.post(t, "/token", exchange(code), "", "")
	fmt.Fprintf(&out, "authorization_code: %d %s %s", s, h.Get("Cache-Control"), maskTokens(body))
	var tr tokenResponse
	must(t, json.Unmarshal([]byte(body), &tr))
	s, h, body = ts.post(t, "/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tr.RefreshToken}, "client_id": {publicClient}}, "", "")
	fmt.Fprintf(&out, "refresh_token: %d %s %s", s, h.Get("Cache-Control"), maskTokens(body))
	s, h, body = ts.post(t, "/token", url.Values{"grant_type": {"client_credentials"}, "resource": {testResource}}, confClient, confSecret)
	fmt.Fprintf(&out, "client_credentials: %d %s %s", s, h.Get("Cache-Control"), maskTokens(body))
	s, h, body = ts.post(t, "/introspect", url.Values{"token": {tr.AccessToken}}, confClient, confSecret)
	fmt.Fprintf(&out, "introspect active: %d %s %s", s, h.Get("Cache-Control"), maskTokens(body))
	s, h, body = ts.post(t, "/introspect", url.Values{"token": {"garbage"}}, confClient, confSecret)
	fmt.Fprintf(&out, "introspect inactive: %d %s %s", s, h.Get("Cache-Control"), body)
	s, h, body = ts.post(t, "/revoke", url.Values{"token": {"garbage"}}, confClient, confSecret)
	fmt.Fprintf(&out, "revoke: %d %q %q\n", s, h.Get("Cache-Control"), body)
	golden(t, ts, "token_responses", out.String())
}

// TestCanonicalResourceAgreesWithRS: the AS canonicalises http(s)
// resources exactly as resource servers do (rs.CanonicalResource), or a
// token's audience could miss the resource it was issued for.
func TestCanonicalResourceAgreesWithRS(t *testing.T) {
	for _, in := range []string{
		"https://mcp.example.com/mcp", "HTTPS://MCP.Example.com:443/", "http://[::1]:80/", "http://127.0.0.1:8081/mcp?x=1",
		"https://mcp.example.com:0443/", "https://mcp.example.com:/mcp", "https://mcp.example.com/MCP/",
	} {
		as, err := CanonicalResource(in)
		want, rerr := rs.CanonicalResource(in)
		if err != nil || rerr != nil || as != want {
			t.Errorf("CanonicalResource(%q) = %q, %v; rs says %q, %v", in, as, err, want, rerr)
		}
	}
	// Other schemes with a host stay accepted (RFC 8707 allows any
	// absolute URI), lower-cased, their port kept.
	if got, err := CanonicalResource("WSS://Mcp.Example.com:443/x"); err != nil || got != "wss://mcp.example.com:443/x" {
		t.Errorf("CanonicalResource(wss) = %q, %v; want wss://mcp.example.com:443/x", got, err)
	}
}
