package as

// Adversarial tests: one named test per attack on the authorization-server
// core (RFC 9700 §4, OAuth 2.1 §7). Each asserts the exact refusal and,
// where a refusal must change nothing, that storage did not change
// (ts.snapshot). This comment is the index: attacks already covered by
// other files are listed with their test and not repeated here.
//
// | Attack                                                            | RFC 9700       | Test                                                        |
// |-------------------------------------------------------------------|----------------|-------------------------------------------------------------|
// | PKCE downgrade: plain, missing challenge, missing method          | §4.8           | TestAuthorizeRedirectedErrors (authorize_test.go)           |
// | PKCE downgrade: s256, padded/std-base64 or empty challenge        | §4.8           | TestAdversarialPKCEDowngradeAuthorize                       |
// | PKCE downgrade: valid code redeemed without code_verifier         | §4.8.2         | TestAdversarialPKCEVerifierMissing                          |
// | PKCE downgrade: the challenge presented as a plain verifier       | §4.8.2         | TestAdversarialPKCEPlainVerifier                            |
// | PKCE: verifier for another challenge (code injection)             | §4.5           | TestCodeBindings/verifier_of_another_challenge (token_test.go) |
// | Code replay: second use fails, revokes what the first issued      | §4.5, §4.14    | TestCodeSingleUse (token_test.go)                           |
// | Code replay: concurrent redemptions, one consumes the code, then  | §4.5           | TestAdversarialCodeReplayConcurrent                         |
// |   dies; F9: the others are refused as replays, not for any reason |                |                                                             |
// | Code issued to A redeemed by confidential client B                | §4.5           | TestCodeBindings/another_client (token_test.go)             |
// | Code issued to A redeemed by public client B (no secret to check) | §4.5           | TestAdversarialCodeOtherPublicClient                        |
// | Code bound to redirect_uri, resource, lifetime                    | §4.1, §4.5     | TestCodeBindings (token_test.go)                            |
// | redirect_uri tampering, loopback client (suffix, traversal,       | §4.1           | TestAuthorizeRefusedWithoutRedirect (authorize_test.go)     |
// |   userinfo, case, percent-encoding, fragment)                     |                |                                                             |
// | redirect_uri tampering, https client (userinfo, port on           | §4.1           | TestAdversarialRedirectURITampering                         |
// |   non-loopback, case, percent-encoding, traversal, suffix, ...)   |                |                                                             |
// |   and more loopback tricks (IP spellings, ports 0/99999, [::1])   |                |                                                             |
// | Open redirect via error responses: no Location for an             | §4.11.2        | TestAdversarialNoOpenRedirectOnErrors                       |
// |   unverified redirect_uri, whatever else is wrong                 |                |                                                             |
// | Open redirect via a self-registered client: its errors are a page | §4.11.2        | TestAdversarialNoOpenRedirectViaDynamicClient               |
// |   until the user has signed in, prompt=none's too (issue 11 F3)   |                |                                                             |
// | Mix-up: iss on success, every error, deny, prompt=none            | §4.4           | TestAdversarialMixUpIss (+ TestAuthorizeRedirectedErrors,   |
// |                                                                   |                |   TestConsentDenied, TestAuthorizeNoState)                  |
// | CSRF on consent (no token, another browser's token)               | §4.7           | TestCSRF (authorize_test.go)                                |
// | CSRF on login (login CSRF), no token / other token / no cookie    | §4.7           | TestAdversarialLoginCSRF                                    |
// | CSRF on the account page (revoke consent) and logout              | §4.7           | TestAdversarialAccountCSRF                                  |
// | Clickjacking: XFO DENY + frame-ancestors 'none' on every page     | §4.16          | TestAdversarialClickjackingHeaders                          |
// | Session fixation: planted session id                              | –              | TestSessionFixation (authorize_test.go)                     |
// | Session fixation: id changes at every login; logout kills it      | –              | TestAdversarialSessionRenewedAtLogin                        |
// | Refresh theft: reuse outside the window revokes the family        | §4.14.2        | TestCodeFlowOAuth2Client, TestRefreshRetryWindow (flow_test.go) |
// | Refresh theft: inside the window only the identical request is    | §4.14.2        | TestAdversarialRefreshTheft (another scope, another client, |
// |   answered                                                        |                |   after the successor was used, window disabled)            |
// | Refresh token of A used by client B; widening scope; resource     | §4.14          | TestTokenRefusals (token_test.go)                           |
// | Revocation/introspection of another client's tokens               | RFC 7009 §2.1  | TestAdversarialForeignTokenRevocation                       |
// | Introspection by a public client, of its own tokens too (held,    | RFC 7662 §2.1  | TestAdversarialPublicClientIntrospection                    |
// |   issue 20)                                                       |                |                                                             |
// | Client impersonation with private_key_jwt (jti replay, alg none,  | §4.15, RFC 7523| TestAdversarialClientAssertion                              |
// |   HS256 keyed with the public JWK, foreign sub, aud, exp)         |                |                                                             |
// | Oversized bodies: 413, bounded reading and memory                 | –              | TestAdversarialOversizedBody, TestAdversarialOversizedBodyStreaming |
// | Malformed forms and JSON, wrong content types, garbage (no 500)   | –              | TestAdversarialMalformedRequests                            |
// | Identifiers that are not UTF-8 or hold NUL (500 on PostgreSQL)    | –              | TestAdversarialNonUTF8 (+ test/replicas)                    |
// | Duplicate parameters (invalid_request), /token /revoke /introspect| OAuth 2.1 §3.1 | TestAdversarialDuplicateParameters (+ TestTokenRefusals,    |
// |   and /authorize                                                  |                |   TestAuthorizeRefusedWithoutRedirect)                      |
// | Credentials in the URL query are ignored                          | §4.3.2         | TestAdversarialCredentialsInQuery                           |
// | GET (and other methods) on POST endpoints                         | –              | TestAdversarialMethodNotAllowed                             |
// | Brute force on login, per account                                 | –              | TestLoginFailures (authorize_test.go)                       |
// | Brute force on login, per IP (password spraying), spoofed XFF     | –              | TestAdversarialLoginBruteForcePerIP                         |
// | Brute force on login with parallel requests                       | –              | TestAdversarialLoginBruteForceParallel                      |
// | Brute force on client secrets, Basic at /token                    | –              | TestClientSecretThrottle (token_test.go)                    |
// | Brute force on client secrets across /token /revoke /introspect   | –              | TestAdversarialClientSecretBruteForce                       |
// | Brute force on client secrets with parallel requests              | –              | TestAdversarialClientSecretBruteForceParallel               |
// | 307 redirect re-posting the password to the client                | §4.12          | TestAdversarialNo307AfterPost                               |
// | Reflected XSS on the error and login pages                        | –              | TestAdversarialReflectedXSS                                 |
// | Header injection through state                                    | –              | TestAdversarialStateHeaderInjection                         |
// | Secrets in logs and the audit log                                 | –              | TestNoSecretsInLogs (hygiene_test.go)                       |
// | Secrets in dev's request log (codes, tokens, state, cookies)      | –              | TestDevRequestLog (cmd/gatehouse/requestlog_test.go)        |
// | nosniff (and anti-framing on HTML) on every public response       | §4.16          | TestServeSecurityHeaders (cmd/gatehouse/serve_test.go)      |
// | Oversized headers (431), slow clients (server timeouts)           | –              | TestServeHeaderLimit, TestServeTimeouts (cmd/gatehouse)     |
// | http issuer outside dev mode without allow_insecure_issuer        | OAuth 2.1 §1.5 | TestServeRefusesInsecureIssuer (cmd/gatehouse)              |
// |                                                                   |                |                                                             |
// | Issue 11 (outside review), tests in review_test.go unless named:  |                |                                                             |
// | F1 machine tokens for anyone: a self-registered or metadata-      | RFC 9068 §2.2  | TestAdversarialAnonymousMachineTokens, TestMachineTokens    |
// |   document client gets client_credentials tokens, no user         |                |   (gateway), TestMachineTokensEndToEnd (cmd/gatehouse)      |
// | F2 registration hijack: identical metadata hands a second party   | RFC 7592 §2    | TestAdversarialRegistrationHijack, TestRegisterDedup        |
// |   the client and a registration access token; ids computable      |                |   (register_test.go), TestRegistrationUpdateAtomic          |
// | F3 open redirect through prompt=none for a self-registered client | §4.11.2        | TestAdversarialNoOpenRedirectViaDynamicClient               |
// | F4 storage amplification at /authorize: a stored pending request  | –              | TestAdversarialAuthorizeStoresNothing,                      |
// |   per anonymous request, state/nonce of any length; counter rows  |                |   TestAdversarialLoginThrottleRows                          |
// | F5 flood of metadata-document clients from one address, or from   | –              | TestAdversarialCIMDClientFlood                              |
// |   many addresses on one host (query strings), past the budgets    |                |                                                             |
// | F5 document clients filling registration.max_clients (503 for     | –              | TestAdversarialClientCapsSeparate (+ TestCIMDLimits/cap)    |
// |   every registration): each kind has its own cap                  |                |                                                             |
// | F6 fetcher as an oracle (DNS answers, closed ports, TLS, status)  | –              | TestAdversarialCIMDFetchOracle (+ TestCIMDRefusals,         |
// |   and as an unthrottled request amplifier                         |                |   TestCIMDSSRF, TestCIMDLimits/jwks_uri)                    |
// | F6 (issue 13) unknown kid as a fetch amplifier: each assertion    | RFC 7523 §3    | TestClientQuirks/CIMD_with_private_key_jwt_and_keys_at_a_   |
// |   with a made-up kid refetching a document client's jwks_uri;     |                |   jwks_uri_(ChatGPT) (quirks_test.go)                       |
// |   rotated keys put back by the cached document                    |                |                                                             |
// | F7 consent spoofing: private-use redirect shown as a web host;    | RFC 8252 §7.1, | TestAdversarialConsentSpoofing (+ TestPagesStrip-           |
// |   bidi and other format characters in displayed metadata          | RFC 7591 §2    |   FormatCharacters in internal/web)                         |
// | F8 HEAD /authorize issues a code like GET                         | –              | TestAdversarialHeadAuthorize                                |
// | F8 rotated refresh token with a wrong scope or resource: refused  | §4.14.2        | TestAdversarialRefreshReuseDetectedFirst                    |
// |   before reuse detection, so the family survived                  |                |                                                             |
// | F9 concurrent code redemption allowing zero winners               | §4.5           | TestAdversarialCodeReplayConcurrent                         |
// |                                                                   |                |                                                             |
// | Issue 20 (second outside review), tests in review_test.go unless named: |                |                                                             |
// | F1 unaudited issuance: with the audit log failing, a token, code  | –              | TestAdversarialUnauditedIssuance (audit_test.go)            |
// |   or client is refused (500), not handed out unrecorded           |                |                                                             |
// | F2 a password change (or revoke, disable) leaves sessions,        | RFC 9700 §4.14 | TestAdversarialPasswordChangeRevokes (+ storage             |
// |   refresh tokens and access tokens working, on every replica      |                |   suite UserReset, test/replicas)                           |
// | F3 RFC 7592 update not atomic: lost updates, deleted clients back | RFC 7592 §2    | TestRegistrationUpdateAtomic                                |
// | F4 a deleted or re-created client's machine tokens stay active    | RFC 7662 §2.2  | TestAdversarialDeletedClientTokens                          |
// | F5 X-Forwarded-For text as the client IP: a fresh rate-limit      | –              | TestAdversarialForwardedForGarbage, TestClientIP            |
// |   bucket and audit ip per string; entries past the trusted        |                |   (clientip_test.go), TestAuditClientIP (gateway)           |
// |   proxies must parse as IP addresses, else the peer is used       |                |                                                             |
// | F6 a metadata-document client_id with bidi, zero-width, U+2028,   | –              | TestAdversarialCIMDClientIDCharacters (cimdid_test.go);     |
// |   C1 or other non-ASCII characters: refused before fetch, no      |                |   the CLI's escaping: TestCLIEscapesStoredText              |
// |   client row, no audit event                                      |                |   (cmd/gatehouse)                                           |

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/gatehouse-mcp/gatehouse/internal/storage"
	"github.com/gatehouse-mcp/gatehouse/internal/syncbuf"
)

// advHTTP never follows redirects, so every Location is seen.
var advHTTP = &http.Client{
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	Timeout:       30 * time.Second,
}

// advResp is a response with its body read.
type advResp struct {
	status int
	header http.Header
	body   string
}

// advSend sends a request and returns the response or the transport error.
// It never calls t.Fatal, so goroutines may use it.
func advSend(method, u, contentType string, body io.Reader, hdr http.Header) (advResp, error) {
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		return advResp{}, err
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for k, vs := range hdr {
		req.Header[k] = vs
	}
	resp, err := advHTTP.Do(req)
	if err != nil {
		return advResp{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return advResp{status: resp.StatusCode, header: resp.Header, body: string(b)}, err
}

// advDo is advSend for the test goroutine.
func advDo(t *testing.T, method, u, contentType string, body io.Reader, hdr http.Header) advResp {
	t.Helper()
	r, err := advSend(method, u, contentType, body, hdr)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	return r
}

const formType = "application/x-www-form-urlencoded"

// basicHeader returns an Authorization header with form-encoded Basic credentials.
func basicHeader(id, secret string) http.Header {
	cred := url.QueryEscape(id) + ":" + url.QueryEscape(secret)
	return http.Header{"Authorization": {"Basic " + base64.StdEncoding.EncodeToString([]byte(cred))}}
}

// authValues returns the query parameters of an authorization request.
func authValues(ts *testServer, a authRequest) url.Values {
	v, _ := url.ParseQuery(strings.SplitN(a.url(ts.URL), "?", 2)[1])
	return v
}

// advTokens runs the code flow for a and redeems the code.
func advTokens(t *testing.T, ts *testServer, a authRequest) tokenResponse {
	t.Helper()
	code := ts.code(t, a)
	v := exchange(code)
	v.Set("client_id", a.clientID)
	v.Set("redirect_uri", a.redirectURI)
	v.Set("code_verifier", a.verifier)
	s, _, body := ts.post(t, "/token", v, "", "")
	if s != http.StatusOK {
		t.Fatalf("code exchange = %d %s", s, body)
	}
	var tr tokenResponse
	must(t, json.Unmarshal([]byte(body), &tr))
	return tr
}

// refreshForm is a refresh request of the public client.
func refreshForm(rt string) url.Values {
	return url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}, "client_id": {publicClient}}
}

// assertNoLocation fails if a browser response redirects anywhere.
func assertNoLocation(t *testing.T, p page) {
	t.Helper()
	if p.status >= 300 && p.status < 400 || p.header.Get("Location") != "" {
		t.Errorf("status %d Location %q, want no redirect", p.status, p.header.Get("Location"))
	}
}

// hiddenFields returns the hidden inputs of a page (all its forms).
func hiddenFields(p page) url.Values {
	v := url.Values{}
	for _, m := range hiddenRE.FindAllStringSubmatch(p.body, -1) {
		v.Set(m[1], html.UnescapeString(m[2]))
	}
	return v
}

// assertUnchanged fails if storage changed since before.
func assertUnchanged(t *testing.T, ts *testServer, before string) {
	t.Helper()
	if ts.snapshot(t) != before {
		t.Errorf("storage changed by a refused request")
	}
}

// addClient registers an extra client for one test.
func addClient(t *testing.T, ts *testServer, c storage.Client) {
	t.Helper()
	now := ts.Clock.Now()
	c.ResponseTypes = []string{"code"}
	c.Origin = storage.OriginStatic
	c.Metadata = "{}"
	c.CreatedAt, c.UpdatedAt = now, now
	if c.ApplicationType == "" {
		c.ApplicationType = "web"
	}
	must(t, ts.Store.CreateClient(t.Context(), c))
}

// TestAdversarialPKCEDowngradeAuthorize: challenge methods and challenges
// that are not exactly S256 over a 43-character base64url value are
// refused (to the verified redirect URI, with iss), and nothing is stored.
func TestAdversarialPKCEDowngradeAuthorize(t *testing.T) {
	ts := newTestServer(t, nil)
	tests := []struct {
		name string
		mod  func(v url.Values)
	}{
		{"lower-case s256", func(v url.Values) { v.Set("code_challenge_method", "s256") }},
		{"S256 with a trailing space", func(v url.Values) { v.Set("code_challenge_method", "S256 ") }},
		{"plain with the verifier as challenge", func(v url.Values) {
			v.Set("code_challenge_method", "plain")
			v.Set("code_challenge", testVerifier[:43])
		}},
		{"empty challenge with S256", func(v url.Values) { v.Set("code_challenge", "") }},
		{"challenge in standard base64", func(v url.Values) { v.Set("code_challenge", strings.Repeat("+/", 21)+"A") }},
		{"challenge with padding", func(v url.Values) { v.Set("code_challenge", s256(testVerifier)[:42]+"=") }},
		{"challenge one character long", func(v url.Values) { v.Set("code_challenge", s256(testVerifier)+"A") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := ts.snapshot(t)
			v := authValues(ts, defaultAuth())
			tt.mod(v)
			loc := location(t, newBrowser(t).get(ts.URL+"/authorize?"+v.Encode()))
			q := loc.Query()
			if q.Get("error") != "invalid_request" || q.Has("code") || q.Get("iss") != ts.URL || q.Get("state") != "st-1" {
				t.Errorf("redirect query = %v, want error=invalid_request with iss and state, no code", q)
			}
			assertUnchanged(t, ts, before)
		})
	}
}

// TestAdversarialPKCEVerifierMissing: a valid code redeemed without
// code_verifier (the downgrade of RFC 9700 §4.8.2: an attacker who stole
// the code hopes the server treats PKCE as optional) is refused, and the
// refusal changes nothing.
func TestAdversarialPKCEVerifierMissing(t *testing.T) {
	ts := newTestServer(t, nil)
	code := ts.code(t, defaultAuth())
	for _, tt := range []struct {
		name string
		mod  func(url.Values)
	}{
		{"absent", func(v url.Values) { v.Del("code_verifier") }},
		{"empty", func(v url.Values) { v.Set("code_verifier", "") }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			before := ts.snapshot(t)
			v := exchange(code)
			tt.mod(v)
			s, _, body := ts.post(t, "/token", v, "", "")
			assertOAuthError(t, s, body, http.StatusBadRequest, "invalid_request")
			assertUnchanged(t, ts, before)
		})
	}
}

// TestAdversarialPKCEPlainVerifier: the code_challenge is public (it was in
// the authorization URL). Presenting it as the verifier, as the plain
// method would accept, is refused and issues nothing.
func TestAdversarialPKCEPlainVerifier(t *testing.T) {
	ts := newTestServer(t, nil)
	a := defaultAuth()
	code := ts.code(t, a)
	v := exchange(code)
	v.Set("code_verifier", s256(a.verifier))
	s, _, body := ts.post(t, "/token", v, "", "")
	assertOAuthError(t, s, body, http.StatusBadRequest, "invalid_grant")
	if strings.Contains(body, "access_token") {
		t.Errorf("a token was issued for the challenge used as verifier")
	}
}

// TestAdversarialCodeReplayConcurrent: N simultaneous redemptions of one
// code (an attacker racing the client): exactly one consumes the code and
// the N-1 others are refused as replays (invalid_grant, "already used"),
// each revoking what the code issued. The consumer gets the tokens, or,
// when a replay revoked the grant before it read it, invalid_grant "the
// authorization has been revoked"; whatever it got is dead afterwards.
// Refusing every redemption for some other reason is not a pass.
func TestAdversarialCodeReplayConcurrent(t *testing.T) {
	ts := newTestServer(t, nil)
	code := ts.code(t, defaultAuth())
	const n = 8
	res := make([]advResp, n)
	errs := make([]error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	body := exchange(code).Encode()
	for i := range n {
		wg.Go(func() {
			<-start
			res[i], errs[i] = advSend(http.MethodPost, ts.URL+"/token", formType, strings.NewReader(body), nil)
		})
	}
	close(start)
	wg.Wait()
	const (
		replayed = "the authorization code was already used; tokens issued from it have been revoked"
		revoked  = "the authorization has been revoked"
	)
	var won []tokenResponse
	consumers, replays := 0, 0
	for i, r := range res {
		if errs[i] != nil {
			t.Fatalf("redemption %d: %v", i, errs[i])
		}
		if r.status == http.StatusOK {
			var tr tokenResponse
			must(t, json.Unmarshal([]byte(r.body), &tr))
			won = append(won, tr)
			consumers++
			continue
		}
		assertOAuthError(t, r.status, r.body, http.StatusBadRequest, "invalid_grant")
		var e struct {
			Description string `json:"error_description"`
		}
		json.Unmarshal([]byte(r.body), &e)
		switch e.Description {
		case replayed:
			replays++
		case revoked:
			consumers++
		default:
			t.Errorf("redemption %d: invalid_grant %q, want %q (a replay) or %q (the consumer, after a replay revoked its grant)", i, e.Description, replayed, revoked)
		}
	}
	t.Logf("%d concurrent redemptions: the consumer got tokens: %v", n, len(won) == 1)
	if consumers != 1 || replays != n-1 {
		t.Fatalf("%d concurrent redemptions of one code: %d consumed it (%d got tokens), %d were refused as replays; want 1 and %d",
			n, consumers, len(won), replays, n-1)
	}
	events, err := ts.Store.QueryAudit(t.Context(), storage.AuditQuery{Type: "code.replay"})
	must(t, err)
	if len(events) != n-1 {
		t.Errorf("%d code.replay audit events, want %d", len(events), n-1)
	}
	for _, tr := range won {
		if ts.introspect(t, tr.AccessToken) {
			t.Errorf("the winning redemption's access token is still active after %d replays", n-1)
		}
		s, _, b := ts.post(t, "/token", refreshForm(tr.RefreshToken), "", "")
		assertOAuthError(t, s, b, http.StatusBadRequest, "invalid_grant")
	}
}

// TestAdversarialCodeOtherPublicClient: a public client cannot redeem a
// code issued to another public client, even with the right verifier and
// redirect URI (there is no secret: the client_id binding is all there is).
func TestAdversarialCodeOtherPublicClient(t *testing.T) {
	ts := newTestServer(t, nil)
	addClient(t, ts, storage.Client{ID: "public-app-2", Name: "Other App", RedirectURIs: []string{publicRedirect}, GrantTypes: []string{"authorization_code", "refresh_token"}, TokenEndpointAuthMethod: "none", ApplicationType: "native"})
	code := ts.code(t, defaultAuth())
	v := exchange(code)
	v.Set("client_id", "public-app-2")
	s, _, body := ts.post(t, "/token", v, "", "")
	assertOAuthError(t, s, body, http.StatusBadRequest, "invalid_grant")
	if strings.Contains(body, "access_token") {
		t.Errorf("another client redeemed the code")
	}
}

// TestAdversarialRedirectURITampering: every variation of a registered
// redirect URI that is not the exact string (or, for loopback http, the
// same URI on another port) is refused with an HTML page: no Location,
// nothing stored, and no link to the attacker's URI.
func TestAdversarialRedirectURITampering(t *testing.T) {
	ts := newTestServer(t, nil)
	web := authRequest{clientID: webClient, redirectURI: webRedirect, scope: "notes:read", resource: testResource, state: "st-1", verifier: testVerifier}
	tests := []struct {
		name string
		a    authRequest
		uri  string
	}{
		// The confidential web client: https://app.example.com/cb.
		{"userinfo good@evil", web, "https://app.example.com@evil.example/cb"},
		{"userinfo with port", web, "https://app.example.com:443@evil.example/cb"},
		{"backslash before @", web, `https://app.example.com\@evil.example/cb`},
		{"port on non-loopback", web, "https://app.example.com:8443/cb"},
		{"explicit default port", web, "https://app.example.com:443/cb"},
		{"http downgrade", web, "http://app.example.com/cb"},
		{"host case", web, "https://APP.example.com/cb"},
		{"path case", web, "https://app.example.com/CB"},
		{"path suffix", web, "https://app.example.com/cb/evil"},
		{"path continues", web, "https://app.example.com/cbevil"},
		{"trailing slash", web, "https://app.example.com/cb/"},
		{"host suffix", web, "https://app.example.com.evil.example/cb"},
		{"host prefix", web, "https://evilapp.example.com/cb"},
		{"extra query", web, "https://app.example.com/cb?next=https://evil.example"},
		{"path traversal out", web, "https://app.example.com/cb/../evil"},
		{"path traversal in", web, "https://app.example.com/evil/../cb"},
		{"percent-encoded path", web, "https://app.example.com/%63b"},
		{"percent-encoded host", web, "https://app%2eexample.com/cb"},
		{"fragment with @", web, "https://app.example.com/cb#@evil.example"},
		{"NUL byte", web, "https://app.example.com/cb\x00"},
		{"trailing space", web, "https://app.example.com/cb "},
		{"loopback for a web client", web, "http://127.0.0.1/cb"},
		{"javascript scheme", web, "javascript://app.example.com/cb%0aalert(1)"},
		{"scheme-relative", web, "//evil.example/cb"},
		// The public loopback client: http://127.0.0.1/callback and http://localhost/callback.
		{"loopback port then @", defaultAuth(), "http://127.0.0.1:5555@evil.example/callback"},
		{"loopback backslash", defaultAuth(), `http://127.0.0.1:5555\@evil.example/callback`},
		{"loopback [::1] not registered", defaultAuth(), "http://[::1]:5555/callback"},
		{"loopback 127.0.0.2", defaultAuth(), "http://127.0.0.2:5555/callback"},
		{"loopback short IP", defaultAuth(), "http://127.1:5555/callback"},
		{"loopback hex IP", defaultAuth(), "http://0x7f000001:5555/callback"},
		{"loopback decimal IP", defaultAuth(), "http://2130706433:5555/callback"},
		{"loopback https", defaultAuth(), "https://127.0.0.1:5555/callback"},
		{"loopback port 0", defaultAuth(), "http://127.0.0.1:0/callback"},
		{"loopback port out of range", defaultAuth(), "http://127.0.0.1:99999/callback"},
		{"loopback port with sign", defaultAuth(), "http://127.0.0.1:+5555/callback"},
		{"loopback extra query", defaultAuth(), "http://127.0.0.1:5555/callback?x=1"},
		{"loopback trailing slash", defaultAuth(), "http://127.0.0.1:5555/callback/"},
		{"localhost with trailing dot", defaultAuth(), "http://localhost.:5555/callback"},
		{"localhost subdomain", defaultAuth(), "http://app.localhost:5555/callback"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := ts.snapshot(t)
			v := authValues(ts, tt.a)
			v.Set("redirect_uri", tt.uri)
			p := newBrowser(t).get(ts.URL + "/authorize?" + v.Encode())
			assertNoLocation(t, p)
			if p.status != http.StatusBadRequest || !strings.Contains(p.header.Get("Content-Type"), "text/html") || !strings.Contains(p.body, "invalid_request") {
				t.Errorf("status %d, want a 400 HTML page naming invalid_request", p.status)
			}
			if strings.Contains(p.body, "href=\"http") && strings.Contains(p.body, "evil") {
				t.Errorf("the error page links to the attacker's URI")
			}
			assertUnchanged(t, ts, before)
		})
	}
}

// TestAdversarialNoOpenRedirectOnErrors: when the redirect URI is not the
// client's, no other error turns the server into an open redirector
// (RFC 9700 §4.11.2): whatever else is wrong, the answer is an HTML page
// with no Location, and nothing is stored.
func TestAdversarialNoOpenRedirectOnErrors(t *testing.T) {
	ts := newTestServer(t, nil)
	const evil = "https://evil.example/cb"
	signedIn := newBrowser(t)
	ts.authorize(t, signedIn, defaultAuth())
	tests := []struct {
		name string
		b    *browser
		post bool
		mod  func(v url.Values)
	}{
		{"unknown client and response_type=token", nil, false, func(v url.Values) {
			v.Set("client_id", "nobody")
			v.Set("response_type", "token")
		}},
		{"no client_id", nil, false, func(v url.Values) { v.Del("client_id") }},
		{"missing PKCE", nil, false, func(v url.Values) { v.Del("code_challenge"); v.Del("code_challenge_method") }},
		{"response_type=token", nil, false, func(v url.Values) { v.Set("response_type", "token") }},
		{"unknown scope", nil, false, func(v url.Values) { v.Set("scope", "admin") }},
		{"unknown resource", nil, false, func(v url.Values) { v.Set("resource", "https://unknown.example/mcp") }},
		{"prompt=none signed out", nil, false, func(v url.Values) { v.Set("prompt", "none") }},
		{"prompt=none signed in without consent", signedIn, false, func(v url.Values) {
			v.Set("prompt", "none")
			v.Set("scope", "notes:read notes:write")
		}},
		{"signed in with consent", signedIn, false, func(v url.Values) {}},
		{"another client's registered redirect", nil, false, func(v url.Values) { v.Set("redirect_uri", webRedirect) }},
		{"POST with evil redirect", nil, true, func(v url.Values) {}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := ts.snapshot(t)
			v := authValues(ts, defaultAuth())
			v.Set("redirect_uri", evil)
			tt.mod(v)
			b := tt.b
			if b == nil {
				b = newBrowser(t)
			}
			var p page
			if tt.post {
				p = b.post(ts.URL+"/authorize", v)
			} else {
				p = b.get(ts.URL + "/authorize?" + v.Encode())
			}
			assertNoLocation(t, p)
			if p.status != http.StatusBadRequest || !strings.Contains(p.header.Get("Content-Type"), "text/html") {
				t.Errorf("status %d, want a 400 HTML page", p.status)
			}
			assertUnchanged(t, ts, before)
		})
	}
	// The browser forms carry only the pending request's id: a forged or
	// stale id is a page, never a redirect.
	for _, path := range []string{"/login", "/consent"} {
		t.Run("forged request id at "+path, func(t *testing.T) {
			b := newBrowser(t)
			_, v := b.get(defaultAuth().url(ts.URL)).form(t, "login-form")
			v.Set("request", "forged-request-id")
			v.Set("username", testUser)
			v.Set("password", testPassword)
			v.Set("decision", "allow")
			before := ts.snapshot(t)
			p := b.post(ts.URL+path, v)
			assertNoLocation(t, p)
			if p.status != http.StatusBadRequest {
				t.Errorf("status %d, want 400", p.status)
			}
			assertUnchanged(t, ts, before)
		})
	}
}

// TestAdversarialNoOpenRedirectViaDynamicClient: anyone may register a
// client with an attacker's redirect URI (open DCR, or a metadata document)
// and send users an erroneous request on purpose; the server must not
// bounce them there before they have signed in (RFC 9700 §4.11.2, OAuth
// 2.1 §7.12.2, AS-13). prompt=none gets the same rule (issue 11 F3): an
// erroneous request and a valid one's login_required are pages too. A
// signed-in user still gets the error at the redirect URI, with iss.
func TestAdversarialNoOpenRedirectViaDynamicClient(t *testing.T) {
	ts := newTestServer(t, openRegistration(nil))
	const evil = "https://evil.example/cb"
	id := ts.mustRegister(t, `{"client_name":"Totally Legit","redirect_uris":["`+evil+`"],"token_endpoint_auth_method":"none"}`).str("client_id")
	bad := func() url.Values {
		a := defaultAuth()
		a.clientID, a.redirectURI = id, evil
		v := authValues(ts, a)
		v.Del("code_challenge") // an erroneous request: PKCE missing
		return v
	}
	before := ts.snapshot(t)
	p := newBrowser(t).get(ts.URL + "/authorize?" + bad().Encode())
	assertNoLocation(t, p)
	if p.status != http.StatusBadRequest || !strings.Contains(p.header.Get("Content-Type"), "text/html") || !strings.Contains(p.body, "code_challenge") {
		t.Errorf("signed out: status %d, want a 400 HTML page naming the error", p.status)
	}
	assertUnchanged(t, ts, before)

	for name, v := range map[string]url.Values{"erroneous": bad(), "valid": authValues(ts, func() authRequest {
		a := defaultAuth()
		a.clientID, a.redirectURI = id, evil
		return a
	}())} {
		v.Set("prompt", "none")
		before := ts.snapshot(t)
		p = newBrowser(t).get(ts.URL + "/authorize?" + v.Encode())
		assertNoLocation(t, p)
		want := "code_challenge"
		if name == "valid" {
			want = "not signed in and prompt=none forbids asking"
		}
		if p.status != http.StatusBadRequest || !strings.Contains(p.header.Get("Content-Type"), "text/html") || !strings.Contains(p.body, want) {
			t.Errorf("prompt=none, %s request, signed out: status %d, want a 400 HTML page saying %q", name, p.status, want)
		}
		assertUnchanged(t, ts, before)
	}

	signedIn := newBrowser(t)
	ts.authorize(t, signedIn, defaultAuth()) // signs in through the static client
	p = signedIn.get(ts.URL + "/authorize?" + bad().Encode())
	if loc := location(t, p); !strings.HasPrefix(loc.String(), evil+"?") || loc.Query().Get("error") != "invalid_request" {
		t.Errorf("signed in: Location %s, want the error at the redirect URI", loc)
	}

	// A client an administrator registered keeps the immediate redirect.
	v := authValues(ts, defaultAuth())
	v.Del("code_challenge")
	p = newBrowser(t).get(ts.URL + "/authorize?" + v.Encode())
	if loc := location(t, p); loc.Query().Get("error") != "invalid_request" {
		t.Errorf("static client signed out: Location %s, want the error redirect", loc)
	}
}

// TestAdversarialMixUpIss: every authorization response, success or error,
// carries exactly one iss equal to the issuer byte for byte (RFC 9207 §2,
// RFC 9700 §4.4), even when the registered redirect URI has its own iss
// parameter, and for an issuer with a path. Authorization responses are
// not cacheable and send no Referer onwards (RFC 9700 §4.2, §4.3).
func TestAdversarialMixUpIss(t *testing.T) {
	ts := newTestServer(t, nil)
	const sneaky = "https://iss.example.com/cb?iss=https%3A%2F%2Fevil.example"
	addClient(t, ts, storage.Client{ID: "iss-app", Name: "Iss App", RedirectURIs: []string{sneaky}, GrantTypes: []string{"authorization_code"}, TokenEndpointAuthMethod: "none", ApplicationType: "web"})
	tenant := newTestServerPath(t, "/tenant1", nil)

	signedIn := newBrowser(t)
	ts.authorize(t, signedIn, defaultAuth())

	// fresh runs a flow that must show the consent page on a server of its
	// own, so no remembered consent skips it.
	fresh := func(decision string) func(t *testing.T, _ *testServer) (page, string) {
		return func(t *testing.T, _ *testServer) (page, string) {
			ts := newTestServer(t, nil)
			b := newBrowser(t)
			p := ts.login(t, b, b.get(defaultAuth().url(ts.URL)), testUser, testPassword)
			return ts.consent(t, b, p, decision), ts.URL
		}
	}
	tests := []struct {
		name      string
		ts        *testServer
		wantError string // "" for a code
		run       func(t *testing.T, ts *testServer) (p page, issuer string)
	}{
		{"success after login and consent", ts, "", fresh("allow")},
		{"deny", ts, "access_denied", fresh("deny")},
		{"success with remembered consent", ts, "", func(t *testing.T, ts *testServer) (page, string) {
			return signedIn.get(defaultAuth().url(ts.URL)), ts.URL
		}},
		{"success with remembered consent, POST", ts, "", func(t *testing.T, ts *testServer) (page, string) {
			return signedIn.post(ts.URL+"/authorize", authValues(ts, defaultAuth())), ts.URL
		}},
		{"success with prompt=none", ts, "", func(t *testing.T, ts *testServer) (page, string) {
			a := defaultAuth()
			a.prompt = "none"
			return signedIn.get(a.url(ts.URL)), ts.URL
		}},
		{"success to a redirect URI with its own iss", ts, "", func(t *testing.T, ts *testServer) (page, string) {
			a := authRequest{clientID: "iss-app", redirectURI: sneaky, scope: "notes:read", resource: testResource, state: "st-1", verifier: testVerifier}
			b := newBrowser(t)
			p := ts.login(t, b, b.get(a.url(ts.URL)), testUser, testPassword)
			return ts.consent(t, b, p, "allow"), ts.URL
		}},
		{"login_required", ts, "login_required", func(t *testing.T, ts *testServer) (page, string) {
			a := defaultAuth()
			a.prompt = "none"
			return newBrowser(t).get(a.url(ts.URL)), ts.URL
		}},
		{"consent_required", ts, "consent_required", func(t *testing.T, ts *testServer) (page, string) {
			a := defaultAuth()
			a.prompt = "none"
			a.scope = "notes:read notes:write"
			return signedIn.get(a.url(ts.URL)), ts.URL
		}},
		{"unsupported_response_type", ts, "unsupported_response_type", func(t *testing.T, ts *testServer) (page, string) {
			v := authValues(ts, defaultAuth())
			v.Set("response_type", "token")
			return newBrowser(t).get(ts.URL + "/authorize?" + v.Encode()), ts.URL
		}},
		{"invalid_scope signed in", ts, "invalid_scope", func(t *testing.T, ts *testServer) (page, string) {
			a := defaultAuth()
			a.scope = "admin"
			return signedIn.get(a.url(ts.URL)), ts.URL
		}},
		{"error to a redirect URI with its own iss", ts, "invalid_scope", func(t *testing.T, ts *testServer) (page, string) {
			a := authRequest{clientID: "iss-app", redirectURI: sneaky, scope: "admin", resource: testResource, state: "st-1", verifier: testVerifier}
			return newBrowser(t).get(a.url(ts.URL)), ts.URL
		}},
		{"issuer with a path: success", tenant, "", func(t *testing.T, ts *testServer) (page, string) {
			b := newBrowser(t)
			p := ts.login(t, b, b.get(defaultAuth().url(ts.URL)), testUser, testPassword)
			return ts.consent(t, b, p, "allow"), ts.URL
		}},
		{"issuer with a path: error", tenant, "invalid_target", func(t *testing.T, ts *testServer) (page, string) {
			a := defaultAuth()
			a.resource = "https://unknown.example/mcp"
			return newBrowser(t).get(a.url(ts.URL)), ts.URL
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, issuer := tt.run(t, tt.ts)
			loc := location(t, p)
			q := loc.Query()
			if got := q["iss"]; len(got) != 1 || got[0] != issuer {
				t.Errorf("iss = %q, want exactly [%q]", got, issuer)
			}
			if q.Get("error") != tt.wantError {
				t.Errorf("error = %q, want %q", q.Get("error"), tt.wantError)
			}
			if (q.Get("code") != "") != (tt.wantError == "") {
				t.Errorf("code present = %v, want %v", q.Get("code") != "", tt.wantError == "")
			}
			if q.Get("state") != "st-1" {
				t.Errorf("state = %q, want st-1", q.Get("state"))
			}
			if p.header.Get("Cache-Control") != "no-store" || p.header.Get("Referrer-Policy") != "no-referrer" {
				t.Errorf("Cache-Control %q Referrer-Policy %q, want no-store and no-referrer", p.header.Get("Cache-Control"), p.header.Get("Referrer-Policy"))
			}
		})
	}
}

// TestAdversarialLoginCSRF: a login POST without the CSRF token, with
// another browser's token, or from a browser without the CSRF cookie (an
// attacker signing the victim into the attacker's account, or guessing
// passwords through the victim's browser) is refused before the password
// is even checked: no session, no failure counted, storage unchanged.
func TestAdversarialLoginCSRF(t *testing.T) {
	ts := newTestServer(t, nil)
	victim := newBrowser(t)
	action, v := victim.get(defaultAuth().url(ts.URL)).form(t, "login-form")
	attacker := newBrowser(t)
	_, av := attacker.get(defaultAuth().url(ts.URL)).form(t, "login-form")
	v.Set("username", testUser)
	v.Set("password", testPassword)
	tests := []struct {
		name  string
		b     *browser
		token string
	}{
		{"missing token", victim, ""},
		{"another browser's token", victim, av.Get("csrf_token")},
		{"no CSRF cookie", newBrowser(t), v.Get("csrf_token")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := ts.snapshot(t)
			f := url.Values{}
			for k, vs := range v {
				f[k] = vs
			}
			if tt.token == "" {
				f.Del("csrf_token")
			} else {
				f.Set("csrf_token", tt.token)
			}
			p := tt.b.post(ts.origin()+action, f)
			if p.status != http.StatusForbidden {
				t.Errorf("status %d, want 403", p.status)
			}
			assertNoLocation(t, p)
			for _, c := range p.header.Values("Set-Cookie") {
				if strings.HasPrefix(c, sessionCookie+"=") {
					t.Errorf("a session cookie was set: %s", c)
				}
			}
			assertUnchanged(t, ts, before)
			n, _, err := ts.Store.Failures(t.Context(), "login:user:"+testUser, ts.Clock.Now())
			must(t, err)
			if n != 0 {
				t.Errorf("the password was checked: %d failures recorded", n)
			}
		})
	}
}

// TestAdversarialAccountCSRF: revoking a client (on the account page and
// at the old consents address), changing the password, signing out other
// sessions and signing out are state-changing POSTs; without the CSRF
// token, or with another browser's, they are refused and the consent and
// the session survive.
func TestAdversarialAccountCSRF(t *testing.T) {
	ts := newTestServer(t, nil)
	b := newBrowser(t)
	ts.authorize(t, b, defaultAuth())
	p := b.get(ts.URL + "/account")
	if p.status != http.StatusOK {
		t.Fatalf("account page = %d", p.status)
	}
	v := hiddenFields(p)
	v.Set("resource", testResource)
	attacker := newBrowser(t)
	_, av := attacker.get(defaultAuth().url(ts.URL)).form(t, "login-form")
	for _, path := range []string{"/account/revoke", "/account/consents", "/account/password", "/account/sessions", "/logout"} {
		for _, tok := range []string{"", av.Get("csrf_token")} {
			t.Run(fmt.Sprintf("%s token=%v", path, tok != ""), func(t *testing.T) {
				before := ts.snapshot(t)
				f := url.Values{"client_id": {v.Get("client_id")}, "resource": {v.Get("resource")},
					"current_password": {testPassword}, "new_password": {"a new password"}, "new_password2": {"a new password"}}
				if tok != "" {
					f.Set("csrf_token", tok)
				}
				r := b.post(ts.URL+path, f)
				if r.status != http.StatusForbidden {
					t.Errorf("status %d, want 403", r.status)
				}
				assertNoLocation(t, r)
				assertUnchanged(t, ts, before)
			})
		}
	}
	if p := b.get(ts.URL + "/account"); p.status != http.StatusOK || !strings.Contains(p.body, "Public App") {
		t.Errorf("after the forged requests the session or consent is gone: status %d", p.status)
	}
}

// TestAdversarialClickjackingHeaders: every HTML page (login, consent,
// error, not found, method not allowed, the consents list, messages, the
// throttled login) forbids framing twice over (X-Frame-Options: DENY and
// CSP frame-ancestors 'none', RFC 9700 §4.16) and carries nosniff,
// no-referrer and no-store.
func TestAdversarialClickjackingHeaders(t *testing.T) {
	ts := newTestServer(t, func(o *Options) { o.LoginMaxFailures = 1 })
	signedIn := newBrowser(t)
	ts.authorize(t, signedIn, defaultAuth())

	tests := []struct {
		name       string
		wantStatus int
		get        func(t *testing.T) page
	}{
		{"login", 200, func(t *testing.T) page { return newBrowser(t).get(defaultAuth().url(ts.URL)) }},
		{"login failed", 401, func(t *testing.T) page {
			b := newBrowser(t)
			return ts.login(t, b, b.get(defaultAuth().url(ts.URL)), "nobody-"+t.Name(), "wrong")
		}},
		{"login throttled", 429, func(t *testing.T) page {
			b := newBrowser(t)
			p := ts.login(t, b, b.get(defaultAuth().url(ts.URL)), "throttled", "wrong")
			return ts.login(t, b, p, "throttled", "wrong")
		}},
		{"consent", 200, func(t *testing.T) page {
			a := defaultAuth()
			a.scope = "notes:read notes:write"
			return signedIn.get(a.url(ts.URL))
		}},
		{"authorize error", 400, func(t *testing.T) page { return newBrowser(t).get(ts.URL + "/authorize?client_id=nobody") }},
		{"not found", 404, func(t *testing.T) page { return newBrowser(t).get(ts.URL + "/nothing-here") }},
		{"method not allowed", 405, func(t *testing.T) page { return newBrowser(t).get(ts.URL + "/login") }},
		{"CSRF refusal", 403, func(t *testing.T) page {
			return newBrowser(t).post(ts.URL+"/consent", url.Values{"decision": {"allow"}})
		}},
		{"account", 200, func(t *testing.T) page { return signedIn.get(ts.URL + "/account") }},
		{"account sign-in", 200, func(t *testing.T) page { return newBrowser(t).get(ts.URL + "/account/login") }},
		{"account sign-in failed", 401, func(t *testing.T) page {
			b := newBrowser(t)
			return b.post(ts.URL+"/account/login", url.Values{"csrf_token": {hiddenFields(b.get(ts.URL + "/account/login")).Get("csrf_token")}, "username": {"nobody"}, "password": {"wrong"}})
		}},
		{"signed out (message)", 200, func(t *testing.T) page {
			b := newBrowser(t)
			ts.authorize(t, b, defaultAuth())
			return b.post(ts.URL+"/logout", url.Values{"csrf_token": {hiddenFields(b.get(ts.URL + "/account")).Get("csrf_token")}})
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := tt.get(t)
			if p.status != tt.wantStatus {
				t.Errorf("status %d, want %d", p.status, tt.wantStatus)
			}
			h := p.header
			if !strings.HasPrefix(h.Get("Content-Type"), "text/html") {
				t.Errorf("Content-Type %q, want text/html", h.Get("Content-Type"))
			}
			if h.Get("X-Frame-Options") != "DENY" {
				t.Errorf("X-Frame-Options %q, want DENY", h.Get("X-Frame-Options"))
			}
			if !strings.Contains(h.Get("Content-Security-Policy"), "frame-ancestors 'none'") {
				t.Errorf("Content-Security-Policy %q lacks frame-ancestors 'none'", h.Get("Content-Security-Policy"))
			}
			for k, want := range map[string]string{"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer", "Cache-Control": "no-store"} {
				if h.Get(k) != want {
					t.Errorf("%s %q, want %q", k, h.Get(k), want)
				}
			}
		})
	}
}

// TestAdversarialSessionRenewedAtLogin: signing in again (prompt=login)
// replaces the session id, and the old id no longer works; signing out
// kills the session server-side, so a copied cookie is useless.
func TestAdversarialSessionRenewedAtLogin(t *testing.T) {
	ts := newTestServer(t, nil)
	u, _ := url.Parse(ts.URL)
	cookie := func(b *browser) string {
		for _, c := range b.client.Jar.Cookies(u) {
			if c.Name == sessionCookie {
				return c.Value
			}
		}
		return ""
	}
	withSession := func(id string) *browser {
		b := newBrowser(t)
		b.client.Jar.SetCookies(u, []*http.Cookie{{Name: sessionCookie, Value: id, Path: "/"}})
		return b
	}
	b := newBrowser(t)
	ts.authorize(t, b, defaultAuth())
	first := cookie(b)
	if first == "" {
		t.Fatal("no session cookie after login")
	}
	ts.Clock.Advance(time.Minute)
	a := defaultAuth()
	a.prompt = "login"
	p := b.get(a.url(ts.URL))
	if !strings.Contains(p.body, `id="login-form"`) {
		t.Fatalf("prompt=login: status %d, want the login page", p.status)
	}
	location(t, ts.login(t, b, p, testUser, testPassword))
	second := cookie(b)
	if second == "" || second == first {
		t.Fatalf("the session id did not change at the second login")
	}
	// Without a valid session the account page sends the browser to its
	// sign-in page.
	if p := withSession(first).get(ts.URL + "/account"); p.status != http.StatusSeeOther {
		t.Errorf("the pre-login session id still works: status %d, want 303", p.status)
	}
	if p := withSession(second).get(ts.URL + "/account"); p.status != http.StatusOK {
		t.Fatalf("the new session id does not work: status %d", p.status)
	}
	csrf := hiddenFields(b.get(ts.URL + "/account")).Get("csrf_token")
	if p := b.post(ts.URL+"/logout", url.Values{"csrf_token": {csrf}}); p.status != http.StatusOK {
		t.Fatalf("logout = %d", p.status)
	}
	if p := withSession(second).get(ts.URL + "/account"); p.status != http.StatusSeeOther {
		t.Errorf("a copied session cookie works after logout: status %d, want 303", p.status)
	}
}

// TestAdversarialRefreshTheft: inside the retry window only the identical
// request from the same client gets the stored answer (RFC 9700 §4.14.2).
// Anything else presenting a rotated token is refused, and a reuse that
// is not a retry revokes the family.
func TestAdversarialRefreshTheft(t *testing.T) {
	wide := defaultAuth()
	wide.scope = "notes:read notes:write"
	rotate := func(t *testing.T, ts *testServer, rt string) tokenResponse {
		t.Helper()
		s, _, b := ts.post(t, "/token", refreshForm(rt), "", "")
		if s != http.StatusOK {
			t.Fatalf("rotation = %d %s", s, b)
		}
		var tr tokenResponse
		must(t, json.Unmarshal([]byte(b), &tr))
		return tr
	}
	familyRevoked := func(t *testing.T, ts *testServer, newest tokenResponse) {
		t.Helper()
		s, _, b := ts.post(t, "/token", refreshForm(newest.RefreshToken), "", "")
		assertOAuthError(t, s, b, http.StatusBadRequest, "invalid_grant")
		if ts.introspect(t, newest.AccessToken) {
			t.Errorf("the family's newest access token is still active")
		}
	}

	t.Run("another scope inside the window", func(t *testing.T) {
		ts := newTestServer(t, nil)
		first := advTokens(t, ts, wide)
		second := rotate(t, ts, first.RefreshToken)
		ts.Clock.Advance(5 * time.Second)
		v := refreshForm(first.RefreshToken)
		v.Set("scope", "notes:read")
		s, _, b := ts.post(t, "/token", v, "", "")
		assertOAuthError(t, s, b, http.StatusBadRequest, "invalid_grant")
		familyRevoked(t, ts, second)
	})

	t.Run("another client inside the window", func(t *testing.T) {
		ts := newTestServer(t, nil)
		first := advTokens(t, ts, defaultAuth())
		rotate(t, ts, first.RefreshToken)
		ts.Clock.Advance(5 * time.Second)
		v := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {first.RefreshToken}, "client_id": {webClient}, "client_secret": {webSecret}}
		s, _, b := ts.post(t, "/token", v, "", "")
		assertOAuthError(t, s, b, http.StatusBadRequest, "invalid_grant")
		if strings.Contains(b, "access_token") {
			t.Errorf("another client got the stored retry answer")
		}
	})

	t.Run("identical retry after the successor was used", func(t *testing.T) {
		// The client evidently received the answer (it used the token in
		// it), so a replay of its predecessor is not a retry but a copy:
		// answering it hands a thief a live access token.
		ts := newTestServer(t, nil)
		first := advTokens(t, ts, defaultAuth())
		second := rotate(t, ts, first.RefreshToken)
		ts.Clock.Advance(time.Second)
		third := rotate(t, ts, second.RefreshToken)
		ts.Clock.Advance(time.Second)
		s, _, b := ts.post(t, "/token", refreshForm(first.RefreshToken), "", "")
		assertOAuthError(t, s, b, http.StatusBadRequest, "invalid_grant")
		if strings.Contains(b, second.AccessToken) {
			t.Errorf("the replay of a token whose successor was already used got the stored answer (a live access token)")
		}
		familyRevoked(t, ts, third)
	})

	t.Run("window disabled", func(t *testing.T) {
		ts := newTestServer(t, func(o *Options) { o.RefreshRetryWindow = -1 })
		first := advTokens(t, ts, defaultAuth())
		second := rotate(t, ts, first.RefreshToken)
		s, _, b := ts.post(t, "/token", refreshForm(first.RefreshToken), "", "")
		assertOAuthError(t, s, b, http.StatusBadRequest, "invalid_grant")
		familyRevoked(t, ts, second)
	})
}

// TestAdversarialRefreshReuseDetectedFirst (issue 11, F8): a rotated
// refresh token presented again revokes its family whatever else is wrong
// with the request. Were the scope or resource checked first, a thief
// replaying a stolen token with a widened scope or another resource would
// get invalid_scope or invalid_target and the family would live on.
func TestAdversarialRefreshReuseDetectedFirst(t *testing.T) {
	const reused = "the refresh token was already used; the authorization has been revoked"
	for _, tt := range []struct {
		name string
		mod  func(url.Values)
	}{
		{"widened scope", func(v url.Values) { v.Set("scope", "notes:read notes:write") }},
		{"another resource", func(v url.Values) { v.Set("resource", testResource2) }},
		{"resource not a URL", func(v url.Values) { v.Set("resource", "not a url") }},
		{"malformed scope", func(v url.Values) { v.Set("scope", `notes:read "quoted"`) }},
		{"another client", func(v url.Values) { v.Set("client_id", webClient); v.Set("client_secret", webSecret) }},
	} {
		for _, advance := range []time.Duration{5 * time.Second, time.Hour} {
			t.Run(fmt.Sprintf("%s after %s", tt.name, advance), func(t *testing.T) {
				ts := newTestServer(t, nil)
				first := advTokens(t, ts, defaultAuth())
				s, _, b := ts.post(t, "/token", refreshForm(first.RefreshToken), "", "")
				if s != http.StatusOK {
					t.Fatalf("rotation = %d %s", s, b)
				}
				var second tokenResponse
				must(t, json.Unmarshal([]byte(b), &second))
				ts.Clock.Advance(advance)

				v := refreshForm(first.RefreshToken)
				tt.mod(v)
				s, _, b = ts.post(t, "/token", v, "", "")
				assertOAuthError(t, s, b, http.StatusBadRequest, "invalid_grant")
				if desc := oauthDescription(t, b); desc != reused {
					t.Errorf("error_description = %q, want %q", desc, reused)
				}
				// The family is revoked: the successor no longer refreshes,
				// its access token is inactive.
				s, _, b = ts.post(t, "/token", refreshForm(second.RefreshToken), "", "")
				assertOAuthError(t, s, b, http.StatusBadRequest, "invalid_grant")
				if desc := oauthDescription(t, b); desc != "the refresh token has been revoked" {
					t.Errorf("successor refresh: error_description = %q, want the grant revoked", desc)
				}
				if ts.introspect(t, second.AccessToken) {
					t.Errorf("the successor's access token is still active")
				}
			})
		}
	}
}

// oauthDescription is the error_description of an OAuth error body.
func oauthDescription(t *testing.T, body string) string {
	t.Helper()
	var e struct {
		Description string `json:"error_description"`
	}
	must(t, json.Unmarshal([]byte(body), &e))
	return e.Description
}

// TestAdversarialForeignTokenRevocation: a client cannot revoke another
// client's tokens (RFC 7009 §2.1: 200, nothing revealed, nothing changed),
// nor learn about another client's refresh token by introspection.
func TestAdversarialForeignTokenRevocation(t *testing.T) {
	ts := newTestServer(t, nil)
	tr := advTokens(t, ts, defaultAuth())
	for _, tt := range []struct {
		name, tok, hint string
	}{
		{"refresh token", tr.RefreshToken, "refresh_token"},
		{"access token", tr.AccessToken, "access_token"},
		{"refresh token with wrong hint", tr.RefreshToken, "access_token"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			before := ts.snapshot(t)
			s, _, body := ts.post(t, "/revoke", url.Values{"token": {tt.tok}, "token_type_hint": {tt.hint}, "client_id": {webClient}, "client_secret": {webSecret}}, "", "")
			if s != http.StatusOK || body != "" {
				t.Errorf("revoke by another client = %d %q, want 200 and an empty body", s, body)
			}
			assertUnchanged(t, ts, before)
		})
	}
	if !ts.introspect(t, tr.AccessToken) {
		t.Errorf("the access token is inactive after another client's revocation")
	}
	s, _, body := ts.post(t, "/introspect", url.Values{"token": {tr.RefreshToken}}, confClient, confSecret)
	if s != http.StatusOK || strings.TrimSpace(body) != `{"active":false}` {
		t.Errorf("introspection of another client's refresh token = %d %s, want {\"active\":false}", s, body)
	}
	s, _, body = ts.post(t, "/token", refreshForm(tr.RefreshToken), "", "")
	if s != http.StatusOK {
		t.Errorf("the refresh token stopped working after another client's revocation: %d %s", s, body)
	}
}

// TestAdversarialPublicClientIntrospection: a public client (no secret to
// prove who it is) cannot introspect anything, its own tokens included,
// whether it names itself in the form or in Basic with an empty password
// (RFC 7662 §2.1: the endpoint requires authorization). Held under the
// second outside review (issue 20).
func TestAdversarialPublicClientIntrospection(t *testing.T) {
	ts := newTestServer(t, nil)
	tr := advTokens(t, ts, defaultAuth())
	s, _, body := ts.post(t, "/token", url.Values{"grant_type": {"client_credentials"}, "resource": {testResource}}, confClient, confSecret)
	if s != http.StatusOK {
		t.Fatalf("client_credentials = %d %s", s, body)
	}
	var machine tokenResponse
	must(t, json.Unmarshal([]byte(body), &machine))
	for _, tok := range []struct{ name, value string }{
		{"its own access token", tr.AccessToken},
		{"its own refresh token", tr.RefreshToken},
		{"another client's access token", machine.AccessToken},
		{"an unknown token", "not-a-token"},
	} {
		for _, how := range []struct {
			name       string
			form       url.Values
			user, pass string
			why        string // in error_description
		}{
			{"client_id in the form", url.Values{"token": {tok.value}, "client_id": {publicClient}}, "", "", "public clients may not introspect"},
			{"Basic without a password", url.Values{"token": {tok.value}}, publicClient, "", "registered for none authentication but used client_secret_basic"},
		} {
			t.Run(tok.name+", "+how.name, func(t *testing.T) {
				before := ts.snapshot(t)
				s, _, body := ts.post(t, "/introspect", how.form, how.user, how.pass)
				assertOAuthError(t, s, body, http.StatusUnauthorized, "invalid_client")
				assertDescription(t, body, how.why)
				if strings.Contains(body, "active") {
					t.Errorf("the refusal says something about the token: %s", body)
				}
				assertUnchanged(t, ts, before)
			})
		}
	}
	// The tokens are live: the refusal was the client's, not the token's.
	if !ts.introspect(t, tr.AccessToken) {
		t.Errorf("the public client's access token is inactive")
	}
}

// TestAdversarialClientAssertion: private_key_jwt client authentication
// (RFC 7523 §3) refuses a replayed jti (also at another endpoint),
// alg=none, an HMAC keyed with the client's public JWK, an assertion
// naming another client, a foreign audience and an expired assertion.
func TestAdversarialClientAssertion(t *testing.T) {
	ts := newTestServer(t, nil)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	must(t, err)
	pub := jose.JSONWebKey{Key: &key.PublicKey, KeyID: "k1", Algorithm: "ES256", Use: "sig"}
	jwks, err := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{pub}})
	must(t, err)
	const jwtClient = "jwt-app"
	addClient(t, ts, storage.Client{ID: jwtClient, Name: "JWT App", GrantTypes: []string{"client_credentials"}, TokenEndpointAuthMethod: "private_key_jwt", JWKS: string(jwks)})

	now := ts.Clock.Now()
	claims := func(mod func(map[string]any)) map[string]any {
		c := map[string]any{"iss": jwtClient, "sub": jwtClient, "aud": ts.URL + "/token", "jti": rand.Text(), "iat": now.Unix(), "exp": now.Add(2 * time.Minute).Unix()}
		if mod != nil {
			mod(c)
		}
		return c
	}
	sign := func(alg jose.SignatureAlgorithm, k any, c map[string]any) string {
		t.Helper()
		s, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: k}, (&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", "k1"))
		must(t, err)
		payload, err := json.Marshal(c)
		must(t, err)
		obj, err := s.Sign(payload)
		must(t, err)
		out, err := obj.CompactSerialize()
		must(t, err)
		return out
	}
	es256 := func(c map[string]any) string { return sign(jose.ES256, key, c) }
	unsigned := func(c map[string]any) string {
		h := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`))
		p, _ := json.Marshal(c)
		return h + "." + base64.RawURLEncoding.EncodeToString(p) + "."
	}
	form := func(assertion string) url.Values {
		return url.Values{"grant_type": {"client_credentials"}, "resource": {testResource}, "client_assertion_type": {assertionTypeJWT}, "client_assertion": {assertion}}
	}

	replayed := es256(claims(nil))
	if s, _, b := ts.post(t, "/token", form(replayed), "", ""); s != http.StatusOK {
		t.Fatalf("a fresh assertion = %d %s, want 200", s, b)
	}
	tests := []struct {
		name      string
		path      string
		assertion string
	}{
		{"jti replay", "/token", replayed},
		{"jti replay at introspection", "/introspect", replayed},
		{"alg none", "/token", unsigned(claims(nil))},
		{"HS256 keyed with the public JWK", "/token", sign(jose.HS256, jwks, claims(nil))},
		{"signed for another client", "/token", es256(claims(func(c map[string]any) { c["sub"], c["iss"] = confClient, confClient }))},
		{"iss differs from sub", "/token", es256(claims(func(c map[string]any) { c["iss"] = "someone-else" }))},
		{"audience of another server", "/token", es256(claims(func(c map[string]any) { c["aud"] = "https://other-as.example/token" }))},
		{"expired", "/token", es256(claims(func(c map[string]any) { c["exp"] = now.Add(-time.Minute).Unix() }))},
		{"too long-lived", "/token", es256(claims(func(c map[string]any) { c["exp"] = now.Add(24 * time.Hour).Unix() }))},
		{"no jti", "/token", es256(claims(func(c map[string]any) { delete(c, "jti") }))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := ts.snapshot(t)
			f := form(tt.assertion)
			if tt.path == "/introspect" {
				f = url.Values{"token": {"x"}, "client_assertion_type": {assertionTypeJWT}, "client_assertion": {tt.assertion}}
			}
			s, _, b := ts.post(t, tt.path, f, "", "")
			assertOAuthError(t, s, b, http.StatusUnauthorized, "invalid_client")
			assertUnchanged(t, ts, before)
		})
	}
}

// TestAdversarialOversizedBody: a body over the limit gets 413 from the API
// endpoints, and a 4xx page (never a redirect, nothing stored) from the
// browser endpoints.
func TestAdversarialOversizedBody(t *testing.T) {
	ts := newTestServer(t, nil)
	big := "grant_type=client_credentials&resource=" + url.QueryEscape(testResource) + "&pad=" + strings.Repeat("a", 2*maxFormBytes)
	for _, path := range []string{"/token", "/revoke", "/introspect"} {
		t.Run(path, func(t *testing.T) {
			before := ts.snapshot(t)
			r := advDo(t, http.MethodPost, ts.URL+path, formType, strings.NewReader(big), basicHeader(confClient, confSecret))
			assertOAuthError(t, r.status, r.body, http.StatusRequestEntityTooLarge, "invalid_request")
			assertUnchanged(t, ts, before)
		})
	}
	for _, path := range []string{"/authorize", "/login", "/consent"} {
		t.Run(path, func(t *testing.T) {
			before := ts.snapshot(t)
			r := advDo(t, http.MethodPost, ts.URL+path, formType, strings.NewReader(authValues(ts, defaultAuth()).Encode()+"&pad="+strings.Repeat("a", 2*maxFormBytes)), nil)
			if r.status != http.StatusBadRequest && r.status != http.StatusRequestEntityTooLarge {
				t.Errorf("status %d, want 400 or 413", r.status)
			}
			if r.header.Get("Location") != "" {
				t.Errorf("an oversized form was redirected to %s", r.header.Get("Location"))
			}
			assertUnchanged(t, ts, before)
		})
	}
}

// TestAdversarialOversizedBodyStreaming: a client that announces 256 MiB
// and keeps sending is cut off after the limit: it gets 413, the server
// reads a bounded amount, and its memory does not grow with the body.
func TestAdversarialOversizedBodyStreaming(t *testing.T) {
	ts := newTestServer(t, nil)
	u, _ := url.Parse(ts.URL)
	conn, err := net.Dial("tcp", u.Host)
	must(t, err)
	defer conn.Close()
	must(t, conn.SetDeadline(time.Now().Add(30*time.Second)))
	const claimed = 256 << 20
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	_, err = fmt.Fprintf(conn, "POST /token HTTP/1.1\r\nHost: %s\r\nContent-Type: %s\r\nContent-Length: %d\r\nAuthorization: %s\r\n\r\ngrant_type=client_credentials&pad=",
		u.Host, formType, claimed, basicHeader(confClient, confSecret).Get("Authorization"))
	must(t, err)
	written := make(chan int64, 1)
	go func() {
		buf := bytes.Repeat([]byte("a"), 32<<10)
		var n int64
		for n < claimed {
			m, err := conn.Write(buf)
			n += int64(m)
			if err != nil {
				break
			}
		}
		written <- n
	}()
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("no response to an endless body: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	conn.Close() // stops the writer if the server is still reading
	n := <-written
	runtime.ReadMemStats(&after)
	assertOAuthError(t, resp.StatusCode, string(body), http.StatusRequestEntityTooLarge, "invalid_request")
	if n >= claimed {
		t.Errorf("the server read the whole %d-byte body", claimed)
	}
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 32<<20 {
		t.Errorf("allocated %d MiB while refusing the body, want under 32 MiB", grew>>20)
	}
	t.Logf("sent %d KiB before the server stopped reading; allocated %d KiB", n>>10, (after.TotalAlloc-before.TotalAlloc)>>10)
}

// TestAdversarialMalformedRequests: malformed encodings, JSON bodies and
// wrong content types are invalid_request; garbage values are 4xx, never
// a 500; nothing is stored. Media type parameters and case are accepted.
func TestAdversarialMalformedRequests(t *testing.T) {
	ts := newTestServer(t, nil)
	cc := "grant_type=client_credentials&resource=" + url.QueryEscape(testResource)
	basic := basicHeader(confClient, confSecret)
	tests := []struct {
		name        string
		path        string
		contentType string
		body        string
		hdr         http.Header
		wantStatus  int
		wantCode    string
	}{
		{"bad percent-encoding", "/token", formType, cc + "&%zz=1", basic, 400, "invalid_request"},
		{"semicolon separator", "/token", formType, "grant_type=client_credentials;resource=x", basic, 400, "invalid_request"},
		{"truncated escape", "/revoke", formType, "token=abc%", basic, 400, "invalid_request"},
		{"JSON body as JSON", "/token", "application/json", `{"grant_type":"client_credentials"}`, basic, 400, "invalid_request"},
		{"malformed JSON as JSON", "/token", "application/json", `{"grant_type":`, basic, 400, "invalid_request"},
		{"JSON body at revoke", "/revoke", "application/json", `{"token":"x"}`, basic, 400, "invalid_request"},
		{"JSON body at introspect", "/introspect", "application/json", `{"token":"x"}`, basic, 400, "invalid_request"},
		{"JSON body labelled as a form", "/token", formType, `{"grant_type":"client_credentials"}`, basic, 400, "invalid_request"},
		{"text/plain", "/token", "text/plain", cc, basic, 400, "invalid_request"},
		{"multipart", "/token", "multipart/form-data; boundary=x", "--x\r\nContent-Disposition: form-data; name=\"grant_type\"\r\n\r\nclient_credentials\r\n--x--\r\n", basic, 400, "invalid_request"},
		{"no content type", "/token", "", cc, basic, 400, "invalid_request"},
		{"look-alike media type", "/token", formType + "-evil", cc, basic, 400, "invalid_request"},
		{"malformed media type", "/token", formType + ";;=", cc, basic, 400, "invalid_request"},
		{"NUL in code", "/token", formType, exchange("a\x00b").Encode(), nil, 400, "invalid_request"},
		{"invalid UTF-8 client_id", "/token", formType, "grant_type=client_credentials&client_id=%FF%FE", nil, 400, "invalid_request"},
		{"invalid UTF-8 scope", "/token", formType, cc + "&scope=notes%FF", basic, 400, "invalid_request"},
		{"huge client_id", "/token", formType, "grant_type=client_credentials&client_id=" + strings.Repeat("c", 60<<10), nil, 401, "invalid_client"},
		{"resource not a URL", "/token", formType, "grant_type=client_credentials&resource=%3A%3A", basic, 400, "invalid_target"},
		{"resource with broken IPv6 host", "/token", formType, "grant_type=client_credentials&resource=" + url.QueryEscape("https://[::1/mcp"), basic, 400, "invalid_target"},
		{"Basic without colon", "/token", formType, cc, http.Header{"Authorization": {"Basic " + base64.StdEncoding.EncodeToString([]byte("service"))}}, 401, "invalid_client"},
		{"Basic not base64", "/token", formType, cc, http.Header{"Authorization": {"Basic %%%"}}, 401, "invalid_client"},
		{"Bearer scheme", "/token", formType, cc, http.Header{"Authorization": {"Bearer abc"}}, 401, "invalid_client"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := ts.snapshot(t)
			r := advDo(t, http.MethodPost, ts.URL+tt.path, tt.contentType, strings.NewReader(tt.body), tt.hdr)
			assertOAuthError(t, r.status, r.body, tt.wantStatus, tt.wantCode)
			assertUnchanged(t, ts, before)
		})
	}
	for _, ct := range []string{formType + "; charset=UTF-8", "Application/X-WWW-Form-URLEncoded"} {
		t.Run("accepted "+ct, func(t *testing.T) {
			if r := advDo(t, http.MethodPost, ts.URL+"/token", ct, strings.NewReader(cc), basic); r.status != http.StatusOK {
				t.Errorf("Content-Type %q: status %d %s, want 200", ct, r.status, r.body)
			}
		})
	}
}

// TestAdversarialDuplicateParameters: a repeated parameter (one value for
// the checker, another for the user; RFC 6749 §3.1) is invalid_request at
// every endpoint, before anything is consumed or stored; at /authorize it
// is a page, never a redirect to either value.
func TestAdversarialDuplicateParameters(t *testing.T) {
	ts := newTestServer(t, nil)
	code := ts.code(t, defaultAuth())
	rt := advTokens(t, ts, defaultAuth()).RefreshToken
	cc := url.Values{"grant_type": {"client_credentials"}, "resource": {testResource}}
	tests := []struct {
		name       string
		path       string
		form       url.Values
		user, pass string
	}{
		{"client_id", "/token", merge(exchange(code), url.Values{"client_id": {webClient}}), "", ""},
		{"code", "/token", merge(exchange(code), url.Values{"code": {"other"}}), "", ""},
		{"code_verifier", "/token", merge(exchange(code), url.Values{"code_verifier": {strings.Repeat("b", 43)}}), "", ""},
		{"redirect_uri", "/token", merge(exchange(code), url.Values{"redirect_uri": {"https://evil.example/cb"}}), "", ""},
		{"refresh_token", "/token", merge(refreshForm(rt), url.Values{"refresh_token": {"other"}}), "", ""},
		{"scope", "/token", merge(refreshForm(rt), url.Values{"scope": {"notes:read", "notes:write"}}), "", ""},
		{"client_secret", "/token", merge(cc, url.Values{"client_id": {webClient}, "client_secret": {webSecret, "wrong"}}), "", ""},
		{"client_assertion", "/token", merge(cc, url.Values{"client_assertion_type": {assertionTypeJWT}, "client_assertion": {"a.b.c", "d.e.f"}}), "", ""},
		{"token at revoke", "/revoke", url.Values{"token": {rt, "other"}}, confClient, confSecret},
		{"token_type_hint at revoke", "/revoke", url.Values{"token": {rt}, "token_type_hint": {"refresh_token", "access_token"}}, confClient, confSecret},
		{"token at introspect", "/introspect", url.Values{"token": {rt, "other"}}, confClient, confSecret},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := ts.snapshot(t)
			s, _, body := ts.post(t, tt.path, tt.form, tt.user, tt.pass)
			assertOAuthError(t, s, body, http.StatusBadRequest, "invalid_request")
			assertUnchanged(t, ts, before)
		})
	}
	for _, tt := range []struct{ param, extra string }{
		{"redirect_uri", "https://evil.example/cb"},
		{"client_id", webClient},
		{"code_challenge_method", "plain"},
		{"code_challenge", s256("another-verifier-another-verifier-another-verifier")},
		{"response_type", "token"},
		{"scope", "notes:write"},
	} {
		t.Run("authorize "+tt.param, func(t *testing.T) {
			before := ts.snapshot(t)
			v := authValues(ts, defaultAuth())
			v.Add(tt.param, tt.extra)
			p := newBrowser(t).get(ts.URL + "/authorize?" + v.Encode())
			assertNoLocation(t, p)
			if p.status != http.StatusBadRequest || !strings.Contains(p.body, "invalid_request") {
				t.Errorf("status %d, want a 400 page naming invalid_request", p.status)
			}
			assertUnchanged(t, ts, before)
		})
	}
}

// TestAdversarialCredentialsInQuery: parameters in the URL of a POST to the
// API endpoints are ignored (credentials in URLs leak through logs and
// history, RFC 9700 §4.3.2): a secret or code there authenticates nothing.
func TestAdversarialCredentialsInQuery(t *testing.T) {
	ts := newTestServer(t, nil)
	code := ts.code(t, defaultAuth())
	before := ts.snapshot(t)
	q := url.Values{"client_id": {webClient}, "client_secret": {webSecret}}
	r := advDo(t, http.MethodPost, ts.URL+"/token?"+q.Encode(), formType, strings.NewReader("grant_type=client_credentials&resource="+url.QueryEscape(testResource)), nil)
	assertOAuthError(t, r.status, r.body, http.StatusUnauthorized, "invalid_client")
	r = advDo(t, http.MethodPost, ts.URL+"/token?"+exchange(code).Encode(), formType, strings.NewReader("client_id="+publicClient), nil)
	assertOAuthError(t, r.status, r.body, http.StatusBadRequest, "invalid_request")
	r = advDo(t, http.MethodPost, ts.URL+"/introspect?"+url.Values{"token": {"x"}}.Encode(), formType, strings.NewReader(""), basicHeader(confClient, confSecret))
	assertOAuthError(t, r.status, r.body, http.StatusBadRequest, "invalid_request")
	assertUnchanged(t, ts, before)
}

// TestAdversarialMethodNotAllowed: the POST-only endpoints refuse every
// other method with 405 and Allow, even when the query holds a complete,
// valid request; nothing is stored.
func TestAdversarialMethodNotAllowed(t *testing.T) {
	ts := newTestServer(t, nil)
	cc := url.Values{"grant_type": {"client_credentials"}, "resource": {testResource}, "client_id": {webClient}, "client_secret": {webSecret}}
	for _, path := range []string{"/token", "/revoke", "/introspect"} {
		for _, m := range []string{http.MethodGet, http.MethodPut, http.MethodDelete, http.MethodPatch} {
			t.Run(m+" "+path, func(t *testing.T) {
				before := ts.snapshot(t)
				r := advDo(t, m, ts.URL+path+"?"+cc.Encode(), formType, strings.NewReader(cc.Encode()), nil)
				assertOAuthError(t, r.status, r.body, http.StatusMethodNotAllowed, "invalid_request")
				if r.header.Get("Allow") != "POST" {
					t.Errorf("Allow %q, want POST", r.header.Get("Allow"))
				}
				assertUnchanged(t, ts, before)
			})
		}
	}
	for _, tt := range []struct{ method, path, allow string }{
		{http.MethodGet, "/login", "POST"},
		{http.MethodGet, "/consent", "POST"},
		{http.MethodGet, "/logout", "POST"},
		{http.MethodPut, "/authorize", "GET, POST"},
		{http.MethodDelete, "/authorize", "GET, POST"},
	} {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			before := ts.snapshot(t)
			r := advDo(t, tt.method, ts.URL+tt.path+"?"+authValues(ts, defaultAuth()).Encode(), "", nil, nil)
			if r.status != http.StatusMethodNotAllowed || r.header.Get("Allow") != tt.allow {
				t.Errorf("status %d Allow %q, want 405 and %q", r.status, r.header.Get("Allow"), tt.allow)
			}
			if r.header.Get("Location") != "" {
				t.Errorf("redirected to %s", r.header.Get("Location"))
			}
			assertUnchanged(t, ts, before)
		})
	}
}

// TestAdversarialLoginBruteForcePerIP: password spraying (one guess per
// account, many accounts, one IP) hits the per-IP limit (4 × the
// per-account one) and is refused with 429 and Retry-After, even for the
// right password. A client-supplied X-Forwarded-For does not reset the
// count: it is ignored unless proxy headers are trusted, and then the
// address the proxy appended (the last one) counts, not the first, which
// the client wrote.
func TestAdversarialLoginBruteForcePerIP(t *testing.T) {
	const maxFailures = 1 // per account; per IP 4 × 1 = 4
	for _, tt := range []struct {
		name  string
		trust bool
		xff   func(i int) string
	}{
		{"no proxy header", false, func(int) string { return "" }},
		{"spoofed X-Forwarded-For, not trusted", false, func(i int) string { return fmt.Sprintf("198.51.100.%d", i) }},
		{"spoofed first hop behind an appending proxy", true, func(i int) string { return fmt.Sprintf("198.51.100.%d, 203.0.113.7", i) }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ts := newTestServer(t, func(o *Options) { o.LoginMaxFailures = maxFailures; o.TrustProxyHeaders = tt.trust })
			b := newBrowser(t)
			action, v := b.get(defaultAuth().url(ts.URL)).form(t, "login-form")
			attempt := func(i int, user, pw string) page {
				f := url.Values{}
				for k, vs := range v {
					f[k] = vs
				}
				f.Set("username", user)
				f.Set("password", pw)
				req, err := http.NewRequest(http.MethodPost, ts.origin()+action, strings.NewReader(f.Encode()))
				must(t, err)
				req.Header.Set("Content-Type", formType)
				if x := tt.xff(i); x != "" {
					req.Header.Set("X-Forwarded-For", x)
				}
				return b.do(req)
			}
			for i := range 4 * maxFailures {
				if p := attempt(i, fmt.Sprintf("user%d", i), "guess"); p.status != http.StatusUnauthorized {
					t.Fatalf("guess %d: status %d, want 401", i, p.status)
				}
			}
			before := ts.snapshot(t)
			p := attempt(100, testUser, testPassword)
			if p.status != http.StatusTooManyRequests {
				t.Fatalf("after %d failures from one IP: status %d, want 429", 4*maxFailures, p.status)
			}
			if ra, err := strconv.Atoi(p.header.Get("Retry-After")); err != nil || ra <= 0 || ra > int((15*time.Minute).Seconds())+1 {
				t.Errorf("Retry-After %q, want seconds until the window ends", p.header.Get("Retry-After"))
			}
			assertUnchanged(t, ts, before)
		})
	}
}

// slowCheck is a store whose failure-counter reads take as long as a real
// password or secret check does (argon2id with the default parameters
// takes tens of milliseconds; a remote database adds a round trip), so
// parallel requests overlap the way they do in production. The test
// server's cheap argon2 parameters would otherwise hide any race.
type slowCheck struct {
	storage.Store
	delay time.Duration
}

func (s slowCheck) Failures(ctx context.Context, key string, now time.Time) (int, time.Time, error) {
	n, reset, err := s.Store.Failures(ctx, key, now)
	time.Sleep(s.delay)
	return n, reset, err
}

// TestAdversarialLoginBruteForceParallel: guesses sent in parallel get as
// many password checks as sequential ones, no more, no fewer: each attempt
// is counted before its check, so exactly LoginMaxFailures wrong passwords
// are answered 401 per window and the rest 429.
func TestAdversarialLoginBruteForceParallel(t *testing.T) {
	const maxFailures, n = 3, 24
	ts := newTestServer(t, func(o *Options) {
		o.LoginMaxFailures = maxFailures
		o.Store = slowCheck{o.Store, 50 * time.Millisecond}
	})
	b := newBrowser(t)
	action, v := b.get(defaultAuth().url(ts.URL)).form(t, "login-form")
	v.Set("username", testUser)
	v.Set("password", "guess")
	u, _ := url.Parse(ts.URL)
	var cookies []string
	for _, c := range b.client.Jar.Cookies(u) {
		cookies = append(cookies, c.Name+"="+c.Value)
	}
	hdr := http.Header{"Cookie": {strings.Join(cookies, "; ")}}
	statuses := make([]int, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			r, err := advSend(http.MethodPost, ts.origin()+action, formType, strings.NewReader(v.Encode()), hdr)
			if err == nil {
				statuses[i] = r.status
			}
		})
	}
	close(start)
	wg.Wait()
	counts := map[int]int{}
	for _, s := range statuses {
		counts[s]++
	}
	t.Logf("%d parallel guesses: statuses %v", n, counts)
	if counts[http.StatusUnauthorized] != maxFailures || counts[http.StatusTooManyRequests] != n-maxFailures {
		t.Errorf("%d parallel guesses: statuses %v; want %d password checks (401) and 429 for the rest", n, counts, maxFailures)
	}
}

// TestAdversarialClientSecretBruteForce: wrong secrets count against the
// client wherever they are tried (/token, /revoke, /introspect; Basic or
// post), and past the limit every endpoint answers 429 with Retry-After,
// even to the right secret.
func TestAdversarialClientSecretBruteForce(t *testing.T) {
	ts := newTestServer(t, func(o *Options) { o.ClientAuthMaxFailures = 3 })
	wrong := func(path string) {
		t.Helper()
		s, _, body := ts.post(t, path, url.Values{"token": {"x"}, "grant_type": {"client_credentials"}, "resource": {testResource}, "client_id": {webClient}, "client_secret": {"guess"}}, "", "")
		assertOAuthError(t, s, body, http.StatusUnauthorized, "invalid_client")
	}
	wrong("/token")
	wrong("/revoke")
	wrong("/introspect")
	for _, tt := range []struct {
		path string
		form url.Values
	}{
		{"/token", url.Values{"grant_type": {"client_credentials"}, "resource": {testResource}}},
		{"/revoke", url.Values{"token": {"x"}}},
		{"/introspect", url.Values{"token": {"x"}}},
	} {
		t.Run(tt.path, func(t *testing.T) {
			f := merge(tt.form, url.Values{"client_id": {webClient}, "client_secret": {webSecret}})
			s, h, body := ts.post(t, tt.path, f, "", "")
			assertOAuthError(t, s, body, http.StatusTooManyRequests, "invalid_client")
			if ra, err := strconv.Atoi(h.Get("Retry-After")); err != nil || ra <= 0 {
				t.Errorf("Retry-After %q, want a positive number of seconds", h.Get("Retry-After"))
			}
		})
	}
	// Other clients are not affected.
	if s, _, body := ts.post(t, "/token", url.Values{"grant_type": {"client_credentials"}, "resource": {testResource}}, confClient, confSecret); s != http.StatusOK {
		t.Errorf("another client after the lockout = %d %s, want 200", s, body)
	}
}

// TestAdversarialClientSecretBruteForceParallel: parallel guesses of a
// client secret get as many checks as sequential ones, no more, no fewer:
// the failures counted 1 to ClientAuthMaxFailures are answered 401, every
// other guess 429.
func TestAdversarialClientSecretBruteForceParallel(t *testing.T) {
	const maxFailures, n = 3, 24
	ts := newTestServer(t, func(o *Options) {
		o.ClientAuthMaxFailures = maxFailures
		o.Store = slowCheck{o.Store, 50 * time.Millisecond}
	})
	body := url.Values{"grant_type": {"client_credentials"}, "resource": {testResource}}.Encode()
	hdr := basicHeader(confClient, "guess")
	statuses := make([]int, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			r, err := advSend(http.MethodPost, ts.URL+"/token", formType, strings.NewReader(body), hdr)
			if err == nil {
				statuses[i] = r.status
			}
		})
	}
	close(start)
	wg.Wait()
	counts := map[int]int{}
	for _, s := range statuses {
		counts[s]++
	}
	t.Logf("%d parallel guesses: statuses %v", n, counts)
	if counts[http.StatusUnauthorized] != maxFailures || counts[http.StatusTooManyRequests] != n-maxFailures {
		t.Errorf("%d parallel guesses: statuses %v; want %d secret checks (401) and 429 for the rest", n, counts, maxFailures)
	}
}

// pgText is a store that, like PostgreSQL, refuses text that is not valid
// UTF-8 or that contains NUL (SQLSTATE 22021), where SQLite stores and
// compares any bytes. It stands in for PostgreSQL in TestAdversarialNonUTF8.
type pgText struct{ storage.Store }

func checkText(ss ...string) error {
	for _, s := range ss {
		if !utf8.ValidString(s) || strings.ContainsRune(s, 0) {
			return errors.New(`ERROR: invalid byte sequence for encoding "UTF8" (SQLSTATE 22021)`)
		}
	}
	return nil
}

func (s pgText) GetClient(ctx context.Context, id string) (storage.Client, error) {
	if err := checkText(id); err != nil {
		return storage.Client{}, err
	}
	return s.Store.GetClient(ctx, id)
}

func (s pgText) GetUserByName(ctx context.Context, name string) (storage.User, error) {
	if err := checkText(name); err != nil {
		return storage.User{}, err
	}
	return s.Store.GetUserByName(ctx, name)
}

func (s pgText) GetResource(ctx context.Context, u string) (storage.Resource, error) {
	if err := checkText(u); err != nil {
		return storage.Resource{}, err
	}
	return s.Store.GetResource(ctx, u)
}

func (s pgText) Failures(ctx context.Context, key string, now time.Time) (int, time.Time, error) {
	if err := checkText(key); err != nil {
		return 0, time.Time{}, err
	}
	return s.Store.Failures(ctx, key, now)
}

func (s pgText) AddFailure(ctx context.Context, key string, now time.Time, window time.Duration) (int, time.Time, error) {
	if err := checkText(key); err != nil {
		return 0, time.Time{}, err
	}
	return s.Store.AddFailure(ctx, key, now, window)
}

// TestAdversarialNonUTF8: identifiers that are not UTF-8 or contain NUL
// (client_id, username, the pending request id, state, resource) are
// refused as bad requests at the protocol boundary, never passed to a
// store that rejects them. On PostgreSQL they are a 500 and an ERROR log
// line per request today (an unauthenticated way to flood the error log
// and the 5xx alerts); on SQLite they happen to be 4xx.
func TestAdversarialNonUTF8(t *testing.T) {
	ts := newTestServer(t, func(o *Options) { o.Store = pgText{o.Store} })
	b := newBrowser(t)
	_, lv := b.get(defaultAuth().url(ts.URL)).form(t, "login-form")
	authWith := func(k, v string) string {
		q := authValues(ts, defaultAuth())
		q.Set(k, v)
		return ts.URL + "/authorize?" + q.Encode()
	}
	loginWith := func(k, v string) url.Values {
		f := url.Values{"username": {testUser}, "password": {"wrong"}}
		for key, vs := range lv {
			f[key] = vs
		}
		f.Set(k, v)
		return f
	}
	tests := []struct {
		name string
		send func() (int, string)
	}{
		{"token client_id", func() (int, string) {
			s, _, body := ts.post(t, "/token", url.Values{"grant_type": {"client_credentials"}, "client_id": {"\xff\xfe"}}, "", "")
			return s, body
		}},
		{"token client_id with NUL", func() (int, string) {
			s, _, body := ts.post(t, "/token", url.Values{"grant_type": {"client_credentials"}, "client_id": {"a\x00b"}}, "", "")
			return s, body
		}},
		{"token Basic id", func() (int, string) {
			s, _, body := ts.post(t, "/token", url.Values{"grant_type": {"client_credentials"}}, "\xff", "x")
			return s, body
		}},
		{"revoke client_id", func() (int, string) {
			s, _, body := ts.post(t, "/revoke", url.Values{"token": {"x"}, "client_id": {"\xff"}}, "", "")
			return s, body
		}},
		{"introspect Basic id", func() (int, string) {
			s, _, body := ts.post(t, "/introspect", url.Values{"token": {"x"}}, "\xff", "x")
			return s, body
		}},
		{"authorize client_id", func() (int, string) {
			p := newBrowser(t).get(authWith("client_id", "\xff"))
			return p.status, ""
		}},
		{"authorize state", func() (int, string) {
			p := newBrowser(t).get(authWith("state", "\xff"))
			return p.status, ""
		}},
		{"authorize resource", func() (int, string) {
			p := newBrowser(t).get(authWith("resource", "https://mcp.example.com/\xff"))
			return p.status, ""
		}},
		{"login username", func() (int, string) {
			p := b.post(ts.URL+"/login", loginWith("username", "\xff\x00"))
			return p.status, ""
		}},
		{"login request id", func() (int, string) {
			p := b.post(ts.URL+"/login", loginWith("request", "\xff"))
			return p.status, ""
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if s, body := tt.send(); s >= 500 {
				body = strings.TrimSpace(body)
				t.Errorf("status %d %s, want a 4xx refusal (or, for state, a redirect), not a server error", s, body)
			}
		})
	}
}

// TestAdversarialNo307AfterPost: after a POST carrying the password (login)
// or the consent, the browser is sent to the client with 303, never 307 or
// 308, which would re-post the form (and the password) to the client
// (RFC 9700 §4.12).
func TestAdversarialNo307AfterPost(t *testing.T) {
	ts := newTestServer(t, nil)
	b := newBrowser(t)
	p := ts.login(t, b, b.get(defaultAuth().url(ts.URL)), testUser, testPassword)
	if r := ts.consent(t, b, p, "deny"); r.status != http.StatusSeeOther {
		t.Errorf("consent deny: status %d, want 303", r.status)
	}
	b2 := newBrowser(t)
	p = ts.login(t, b2, b2.get(defaultAuth().url(ts.URL)), testUser, testPassword)
	if r := ts.consent(t, b2, p, "allow"); r.status != http.StatusSeeOther {
		t.Errorf("consent allow: status %d, want 303", r.status)
	}
	// Consent remembered: the login POST itself issues the code.
	b3 := newBrowser(t)
	if r := ts.login(t, b3, b3.get(defaultAuth().url(ts.URL)), testUser, testPassword); r.status != http.StatusSeeOther {
		t.Errorf("login with remembered consent: status %d, want 303", r.status)
	}
}

// TestAdversarialReflectedXSS: attacker-controlled request values shown on
// the error and login pages are escaped.
func TestAdversarialReflectedXSS(t *testing.T) {
	ts := newTestServer(t, nil)
	const payload = `"><script>alert(1)</script><img src=x onerror=alert(1)>`
	check := func(t *testing.T, p page) {
		t.Helper()
		lower := strings.ToLower(p.body)
		if strings.Contains(lower, "<script") || strings.Contains(lower, "<img src=x") {
			t.Errorf("the payload is rendered unescaped:\n%s", p.body)
		}
	}
	t.Run("client_id", func(t *testing.T) {
		check(t, newBrowser(t).get(ts.URL+"/authorize?"+url.Values{"client_id": {payload}}.Encode()))
	})
	t.Run("redirect_uri", func(t *testing.T) {
		v := authValues(ts, defaultAuth())
		v.Set("redirect_uri", "https://evil.example/"+payload)
		check(t, newBrowser(t).get(ts.URL+"/authorize?"+v.Encode()))
	})
	t.Run("repeated parameter name", func(t *testing.T) {
		check(t, newBrowser(t).get(ts.URL+"/authorize?"+url.Values{payload: {"a", "b"}}.Encode()))
	})
	t.Run("username", func(t *testing.T) {
		b := newBrowser(t)
		p := ts.login(t, b, b.get(defaultAuth().url(ts.URL)), payload, "wrong")
		if p.status != http.StatusUnauthorized {
			t.Fatalf("status %d, want 401", p.status)
		}
		check(t, p)
	})
}

// TestAdversarialStateHeaderInjection: CR and LF in state cannot split the
// redirect response; they come back percent-encoded.
func TestAdversarialStateHeaderInjection(t *testing.T) {
	ts := newTestServer(t, nil)
	v := authValues(ts, defaultAuth())
	v.Set("state", "x\r\nSet-Cookie: injected=1\r\n\r\n<html>")
	v.Set("response_type", "token") // an error redirect: no login needed
	p := newBrowser(t).get(ts.URL + "/authorize?" + v.Encode())
	loc := p.header.Get("Location")
	if strings.ContainsAny(loc, "\r\n") || strings.Contains(strings.Join(p.header.Values("Set-Cookie"), ";"), "injected") {
		t.Fatalf("state split the response: Location %q Set-Cookie %q", loc, p.header.Values("Set-Cookie"))
	}
	// RFC 6749 Appendix A.5: state is 1*VSCHAR, so control characters make
	// the request invalid. It is refused on the error page (nothing is
	// redirected with a state the client never could have sent).
	if p.status != http.StatusBadRequest || loc != "" || !strings.Contains(p.body, "invalid_request") {
		t.Errorf("state with CR LF: status %d Location %q, want 400 invalid_request page and no redirect", p.status, loc)
	}
}

// cimdToken presents the client_id id at /token from the address ip (the
// server trusts X-Forwarded-For), with a refresh token that does not
// exist: the client is looked up first, so a new metadata-document
// client is fetched and stored, and the grant then fails with
// invalid_grant.
func cimdToken(t *testing.T, ts *testServer, id, ip string) advResp {
	t.Helper()
	form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"no-such-token"}, "client_id": {id}}
	return advDo(t, http.MethodPost, ts.URL+"/token", formType, strings.NewReader(form.Encode()), http.Header{"X-Forwarded-For": {ip}})
}

// TestAdversarialCIMDClientFlood (F5): a metadata-document client is a
// new client like a registration, so new ones are budgeted per client
// address and per document host (default 60 per hour each, as /register
// per address). A query string makes a new client_id, not a new host.
// The request over a budget is refused before anything is fetched or
// stored.
func TestAdversarialCIMDClientFlood(t *testing.T) {
	const limit = 60 // the defaults
	d := newDocServer(t)
	d.set("/flood", docResponse{echo: true})
	d.set("/other", docResponse{echo: true})
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(d.URL, "https://"))
	hosts := []string{d.URL, "https://example.com:" + port} // two hosts, one server
	newServer := func(t *testing.T) *testServer {
		return newTestServer(t, func(o *Options) {
			cimdOptions(d, func(r *Registration) {
				r.CIMD.Fetch.AllowHosts = append(r.CIMD.Fetch.AllowHosts, "example.com")
				r.CIMD.Fetch.LookupNetIP = cimdResolver
			})(o)
			o.TrustProxyHeaders = true
		})
	}
	n := 0
	newID := func(host, path string) string { n++; return fmt.Sprintf("%s%s?n=%d", host, path, n) }
	created := func(t *testing.T, r advResp, id string) {
		t.Helper()
		if r.status != http.StatusBadRequest || !strings.Contains(r.body, `"invalid_grant"`) {
			t.Fatalf("/token with the new document client %s = %d %s; want 400 invalid_grant (client accepted)", id, r.status, r.body)
		}
	}
	refused := func(t *testing.T, ts *testServer, id, ip, want string) {
		t.Helper()
		before, fetched := ts.snapshot(t), d.total.Load()
		r := cimdToken(t, ts, id, ip)
		assertOAuthError(t, r.status, r.body, http.StatusTooManyRequests, "temporarily_unavailable")
		if desc := oauthDescription(t, r.body); !strings.Contains(desc, want) || !strings.Contains(desc, "retry after") {
			t.Errorf("error_description = %q, want it to contain %q and when to retry", desc, want)
		}
		if r.header.Get("Retry-After") == "" {
			t.Error("429 without Retry-After")
		}
		if ts.snapshot(t) != before {
			t.Error("the refused client changed storage")
		}
		if got := d.total.Load(); got != fetched {
			t.Errorf("the refused client's document was fetched (%d requests)", got-fetched)
		}
	}

	t.Run("per address", func(t *testing.T) {
		ts := newServer(t)
		for i := range limit { // spread over two hosts: no host reaches its budget
			id := newID(hosts[i%2], "/flood")
			created(t, cimdToken(t, ts, id, "198.51.100.7"), id)
		}
		refused(t, ts, newID(hosts[0], "/flood"), "198.51.100.7", "from this address")
		refused(t, ts, newID(hosts[1], "/other"), "198.51.100.7", "from this address")
		id := newID(hosts[1], "/flood")
		created(t, cimdToken(t, ts, id, "198.51.100.8"), id) // another address has its own budget
		ts.Clock.Advance(time.Hour)
		id = newID(hosts[0], "/flood")
		created(t, cimdToken(t, ts, id, "198.51.100.7"), id) // and so has the next hour
	})

	t.Run("per host, query strings", func(t *testing.T) {
		ts := newServer(t)
		for i := range limit { // one address each: no address reaches its budget
			id := newID(hosts[0], "/flood")
			created(t, cimdToken(t, ts, id, fmt.Sprintf("203.0.113.%d", i+1)), id)
		}
		refused(t, ts, newID(hosts[0], "/flood"), "192.0.2.1", "127.0.0.1")
		refused(t, ts, newID(hosts[0], "/other"), "192.0.2.2", "127.0.0.1") // another path, same host
		id := newID(hosts[1], "/flood")
		created(t, cimdToken(t, ts, id, "192.0.2.3"), id) // another host has its own budget
	})
}

// TestAdversarialClientCapsSeparate (F5): metadata-document clients do
// not fill registration.max_clients (which made every registration fail
// with 503): each kind of client has its own cap, and a registration
// refused at its cap stores nothing.
func TestAdversarialClientCapsSeparate(t *testing.T) {
	d := newDocServer(t)
	d.set("/app", docResponse{echo: true})
	ts := newTestServer(t, func(o *Options) {
		cimdOptions(d, func(r *Registration) { r.Mode, r.RateLimit, r.MaxClients = RegistrationOpen, -1, 2 })(o)
		o.TrustProxyHeaders = true
	})
	newDoc := func(i int) {
		t.Helper()
		id := fmt.Sprintf("%s/app?i=%d", d.URL, i)
		if r := cimdToken(t, ts, id, "198.51.100.1"); r.status != http.StatusBadRequest || !strings.Contains(r.body, `"invalid_grant"`) {
			t.Fatalf("/token with the new document client %s = %d %s; want 400 invalid_grant (client accepted)", id, r.status, r.body)
		}
	}
	for i := range 3 { // more document clients than registration.max_clients
		newDoc(i)
	}
	ts.mustRegister(t, cursorMetadata)
	ts.mustRegister(t, sdkMetadata)
	before := ts.snapshot(t)
	r := ts.register(t, `{"client_name":"third","redirect_uris":["https://a.example/cb"]}`)
	assertOAuthError(t, r.status, r.body, http.StatusServiceUnavailable, "temporarily_unavailable")
	if desc := oauthDescription(t, r.body); !strings.Contains(desc, "limit of 2 dynamically registered clients") {
		t.Errorf("error_description = %q, want it to name the cap of registered clients", desc)
	}
	if ts.snapshot(t) != before {
		t.Error("the refused registration changed storage")
	}
	newDoc(3) // registered clients do not fill the documents' cap either
}

// TestAdversarialCIMDFetchOracle (F6): the document fetcher tells the
// caller nothing about the network. Every failure, for any host and
// port, gets one description that names only the URL the caller sent;
// what happened (addresses, ports, TLS, status) goes to the server log
// with the client_id. A failure is remembered for a minute, and fetches
// per document host are budgeted (60 per minute), so the server cannot
// be made to send requests on demand.
func TestAdversarialCIMDFetchOracle(t *testing.T) {
	d := newDocServer(t)
	plain := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "{}") }))
	t.Cleanup(plain.Close)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	closedPort := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	d.set("/error", docResponse{status: 500, body: "{}"})
	d.set("/moved", docResponse{status: 302, location: "https://10.0.0.1/admin"})
	d.set("/html", docResponse{body: "<html>"})
	d.set("/foreign", docResponse{body: docFor("https://10.0.0.1/secret-client", nil)})
	d.set("/big", docResponse{body: `{"client_name":"` + strings.Repeat("x", 6000) + `"}`})
	d.set("/slow", docResponse{body: "{}", delay: time.Second})
	var logs syncbuf.Buffer
	newServer := func(t *testing.T) *testServer {
		return newTestServer(t, func(o *Options) {
			cimdOptions(d, func(r *Registration) {
				r.CIMD.Fetch.LookupNetIP = cimdResolver
				r.CIMD.Fetch.Timeout = 300 * time.Millisecond
			})(o)
			o.TrustProxyHeaders = true
			o.Logger = slog.New(slog.NewTextHandler(&logs, nil))
		})
	}
	generic := func(id string) string {
		// error_description allows no double quote (RFC 6749 §5.2): %q
		// reaches the client with single quotes.
		return fmt.Sprintf("the client metadata document '%s' could not be fetched, or is not a client metadata document for that URL (a JSON object whose client_id is the URL)", id)
	}

	t.Run("one answer for every failure", func(t *testing.T) {
		ts := newServer(t)
		for i, tt := range []struct {
			name, id, logged string
		}{
			{"name resolving to a private address", "https://internal.example/doc", "10.1.2.3"},
			{"closed port", fmt.Sprintf("https://127.0.0.1:%d/doc", closedPort), "could not connect"},
			{"service without TLS", strings.Replace(plain.URL, "http://", "https://", 1) + "/doc", "the request failed"},
			{"404", d.URL + "/missing", "status 404"},
			{"500", d.URL + "/error", "status 500"},
			{"redirect", d.URL + "/moved", "redirect"},
			{"not JSON", d.URL + "/html", "JSON"},
			{"another URL's document", d.URL + "/foreign", "does not equal its URL"},
			{"oversized", d.URL + "/big", "larger than 5120 bytes"},
			{"slow", d.URL + "/slow", "timed out"},
		} {
			t.Run(tt.name, func(t *testing.T) {
				before := ts.snapshot(t)
				r := cimdToken(t, ts, tt.id, fmt.Sprintf("192.0.2.%d", i+1))
				assertOAuthError(t, r.status, r.body, http.StatusUnauthorized, "invalid_client")
				if desc := oauthDescription(t, r.body); desc != generic(tt.id) {
					t.Errorf("error_description = %q, want %q", desc, generic(tt.id))
				}
				if ts.snapshot(t) != before {
					t.Error("the refused document changed storage")
				}
				if line := logLine(logs.String(), tt.id); !strings.Contains(line, tt.logged) {
					t.Errorf("the server log has no line with the client_id and %q:\n%s", tt.logged, logs.String())
				}
			})
		}
		// The error page of /authorize says no more.
		a := cimdAuth("https://internal.example/page")
		p := newBrowser(t).get(a.url(ts.URL))
		if body := html.UnescapeString(p.body); p.status != http.StatusBadRequest || !strings.Contains(body, "could not be fetched, or is not a client metadata document") || strings.Contains(body, "10.1.2.3") {
			t.Errorf("GET /authorize = %d, want 400 saying only that no document could be had:\n%s", p.status, body)
		}
	})

	t.Run("failures are remembered", func(t *testing.T) {
		ts := newServer(t)
		id := d.URL + "/flaky"
		d.set("/flaky", docResponse{status: 503, body: "{}"})
		for i := range 3 {
			r := cimdToken(t, ts, id, fmt.Sprintf("192.0.2.%d", 100+i))
			assertOAuthError(t, r.status, r.body, http.StatusUnauthorized, "invalid_client")
		}
		if n := d.count("/flaky"); n != 1 {
			t.Errorf("3 requests within a minute fetched the failing document %d times, want 1", n)
		}
		d.set("/flaky", docResponse{body: d.doc("/flaky", nil)})
		ts.Clock.Advance(time.Minute)
		if r := cimdToken(t, ts, id, "192.0.2.110"); r.status != http.StatusBadRequest || !strings.Contains(r.body, `"invalid_grant"`) {
			t.Errorf("a minute later, the fixed document = %d %s; want it fetched and accepted", r.status, r.body)
		}
	})

	t.Run("fetches per host are budgeted", func(t *testing.T) {
		const budget = 60 // the default, per minute
		ts := newServer(t)
		// A known client of the host, whose cached document has expired.
		d.set("/known", docResponse{body: d.doc("/known", nil)})
		if r := cimdToken(t, ts, d.URL+"/known", "192.0.2.200"); r.status != http.StatusBadRequest {
			t.Fatalf("known client = %d %s", r.status, r.body)
		}
		ts.Clock.Advance(10 * time.Minute)
		start := d.total.Load()
		for i := range budget { // new client IDs by query string, each from its own address
			id := fmt.Sprintf("%s/missing?probe=%d", d.URL, i)
			r := cimdToken(t, ts, id, fmt.Sprintf("203.0.113.%d", i+1))
			assertOAuthError(t, r.status, r.body, http.StatusUnauthorized, "invalid_client")
		}
		before := ts.snapshot(t)
		id := d.URL + "/missing?probe=over"
		r := cimdToken(t, ts, id, "198.51.100.99")
		assertOAuthError(t, r.status, r.body, http.StatusServiceUnavailable, "temporarily_unavailable")
		if desc := oauthDescription(t, r.body); !strings.Contains(desc, "127.0.0.1") || !strings.Contains(desc, "retry after") {
			t.Errorf("error_description = %q, want the host's fetch budget and when to retry", desc)
		}
		if n := d.total.Load() - start; n != budget {
			t.Errorf("%d client IDs on one host made %d fetches within a minute, want %d", budget+1, n, budget)
		}
		if ts.snapshot(t) != before {
			t.Error("the refused request changed storage")
		}
		// The host's known client keeps working from storage meanwhile.
		if r := cimdToken(t, ts, d.URL+"/known", "192.0.2.200"); r.status != http.StatusBadRequest || !strings.Contains(r.body, `"invalid_grant"`) {
			t.Errorf("known client while the host's budget is used up = %d %s; want it served from storage", r.status, r.body)
		}
		ts.Clock.Advance(time.Minute)
		if r := cimdToken(t, ts, id, "198.51.100.99"); r.status != http.StatusUnauthorized {
			t.Errorf("a minute later = %d %s; want the document fetched again (401, it is missing)", r.status, r.body)
		}
	})
}

// logLine returns the first log line that mentions id (as logged: quoted
// by the text handler when it needs to be).
func logLine(logs, id string) string {
	for _, line := range strings.Split(logs, "\n") {
		if strings.Contains(line, id) || strings.Contains(line, strconv.Quote(id)) {
			return line
		}
	}
	return ""
}

// TestAdversarialConsentSpoofing (F7): the consent page must not lend a
// client a name it does not have. A private-use redirect is shown as the
// app it opens (com.evil.app://github.com/cb is "the app com.evil.app",
// not "github.com"); Unicode format characters (category Cf: bidi
// overrides such as U+202E, zero-width characters) are refused in every
// displayed metadata field, in registrations, RFC 7592 updates and
// metadata documents alike; and the pages strip them from client text
// stored before this rule.
func TestAdversarialConsentSpoofing(t *testing.T) {
	d := newDocServer(t)
	ts := newTestServer(t, cimdOptions(d, func(r *Registration) { r.Mode, r.RateLimit = RegistrationOpen, -1 }))

	t.Run("private-use redirect", func(t *testing.T) {
		id := ts.mustRegister(t, `{"client_name":"GitHub","redirect_uris":["com.evil.app://github.com/cb"],"application_type":"native","token_endpoint_auth_method":"none"}`).str("client_id")
		b := newBrowser(t)
		a := defaultAuth()
		a.clientID, a.redirectURI = id, "com.evil.app://github.com/cb"
		p := ts.login(t, b, b.get(a.url(ts.URL)), testUser, testPassword)
		if !strings.Contains(p.body, `id="consent-form"`) {
			t.Fatalf("no consent page: %d\n%s", p.status, p.body)
		}
		const want = `<span class="redirect-host">the app com.evil.app</span>`
		if !strings.Contains(p.body, want) || strings.Contains(p.body, `<span class="redirect-host">github.com</span>`) {
			t.Errorf("consent page does not say %q:\n%s", want, p.body)
		}
	})

	base := map[string]any{"client_name": "App", "redirect_uris": []string{"https://app.example/cb"}}
	withField := func(k string, v any) string {
		m := map[string]any{}
		for k, v := range base {
			m[k] = v
		}
		m[k] = v
		b, _ := json.Marshal(m)
		return string(b)
	}
	fields := []struct {
		field string
		value any
		code  string
		point string
	}{
		{"client_name", "Evil\u202egnp.exe", "invalid_client_metadata", "U+202E"},
		{"client_name", "Git\u200bHub", "invalid_client_metadata", "U+200B"},
		{"client_name", "\u2066GitHub\u2069", "invalid_client_metadata", "U+2066"},
		{"client_name", "\ufeffGitHub", "invalid_client_metadata", "U+FEFF"},
		{"client_uri", "https://app.example/\u202e", "invalid_client_metadata", "U+202E"},
		{"logo_uri", "https://app.example/\u202elogo.png", "invalid_client_metadata", "U+202E"},
		{"tos_uri", "https://app.example/tos\u202e", "invalid_client_metadata", "U+202E"},
		{"policy_uri", "https://app.example/\u202epolicy", "invalid_client_metadata", "U+202E"},
		{"contacts", []string{"ops@app.example", "\u202eadmin@app.example"}, "invalid_client_metadata", "U+202E"},
		{"software_id", "app\u202e", "invalid_client_metadata", "U+202E"},
		{"software_version", "1.0\u202e", "invalid_client_metadata", "U+202E"},
		{"redirect_uris", []string{"https://app.example/cb\u202e"}, "invalid_redirect_uri", "U+202E"},
	}
	for _, tt := range fields {
		t.Run("register "+tt.field+" "+tt.point, func(t *testing.T) {
			before := ts.snapshot(t)
			r := ts.register(t, withField(tt.field, tt.value))
			assertOAuthError(t, r.status, r.body, http.StatusBadRequest, tt.code)
			if desc := oauthDescription(t, r.body); !strings.Contains(desc, tt.field) || !strings.Contains(desc, tt.point) {
				t.Errorf("error_description = %q, want it to name %s and %s", desc, tt.field, tt.point)
			}
			if ts.snapshot(t) != before {
				t.Error("the refused registration changed storage")
			}
		})
	}

	t.Run("RFC 7592 update", func(t *testing.T) {
		reg := ts.mustRegister(t, withField("client_name", "App"))
		path := strings.TrimPrefix(reg.str("registration_client_uri"), ts.URL)
		update := map[string]any{"client_id": reg.str("client_id"), "redirect_uris": []string{"https://app.example/cb"}}
		for _, tt := range fields {
			m := maps.Clone(update)
			if _, ok := m[tt.field]; !ok || tt.field == "redirect_uris" {
				m[tt.field] = tt.value
			}
			body, _ := json.Marshal(m)
			before := ts.snapshot(t)
			r := ts.call(t, http.MethodPut, path, "application/json", string(body), reg.str("registration_access_token"))
			assertOAuthError(t, r.status, r.body, http.StatusBadRequest, tt.code)
			if desc := oauthDescription(t, r.body); !strings.Contains(desc, tt.field) || !strings.Contains(desc, tt.point) {
				t.Errorf("update with %s %q: error_description = %q, want it to name the field and %s", tt.field, tt.value, desc, tt.point)
			}
			if ts.snapshot(t) != before {
				t.Errorf("the refused update of %s changed storage", tt.field)
			}
		}
	})

	t.Run("metadata document", func(t *testing.T) {
		for i, tt := range fields {
			path := fmt.Sprintf("/cf%d", i)
			id := d.URL + path
			d.set(path, docResponse{body: docFor(id, map[string]any{tt.field: tt.value})})
			before := ts.snapshot(t)
			r := advDo(t, http.MethodPost, ts.URL+"/token", formType, strings.NewReader(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"x"}, "client_id": {id}}.Encode()), nil)
			assertOAuthError(t, r.status, r.body, http.StatusUnauthorized, "invalid_client")
			if desc := oauthDescription(t, r.body); !strings.Contains(desc, tt.field) || !strings.Contains(desc, tt.point) {
				t.Errorf("document with %s %q: error_description = %q, want it to name the field and %s", tt.field, tt.value, desc, tt.point)
			}
			if ts.snapshot(t) != before {
				t.Errorf("the refused document with %s changed storage", tt.field)
			}
		}
	})

	t.Run("stored before the rule", func(t *testing.T) {
		now := ts.Clock.Now()
		must(t, ts.Store.CreateClient(t.Context(), storage.Client{ID: "legacy\u202e", Name: "Evil\u202egnp.exe", RedirectURIs: []string{"http://127.0.0.1/cb"},
			GrantTypes: []string{"authorization_code"}, ResponseTypes: []string{"code"}, TokenEndpointAuthMethod: "none", ApplicationType: "native",
			Origin: storage.OriginDCR, Metadata: `{"client_uri":"https://app.example/\u202e"}`, CreatedAt: now, UpdatedAt: now}))
		b := newBrowser(t)
		a := defaultAuth()
		a.clientID, a.redirectURI = "legacy\u202e", "http://127.0.0.1/cb"
		login := b.get(a.url(ts.URL))
		consent := ts.login(t, b, login, testUser, testPassword)
		if !strings.Contains(consent.body, `id="consent-form"`) {
			t.Fatalf("no consent page: %d\n%s", consent.status, consent.body)
		}
		for name, p := range map[string]page{"login": login, "consent": consent} {
			if strings.ContainsRune(p.body, '\u202e') || !strings.Contains(p.body, "Evilgnp.exe") {
				t.Errorf("the %s page shows the stored name with its U+202E, or not at all:\n%s", name, p.body)
			}
		}
	})
}
