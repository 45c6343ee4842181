package as

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"html"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/gatehouse-mcp/gatehouse/internal/storage"
)

// The client quirk catalogue (issue 13, item 5): what real MCP clients
// send that a textbook authorization server gets wrong, one row each,
// through the real server and its HTTP endpoints. A row names the client,
// the request it really sends, what Gatehouse does, and the client issue
// or spec line the behaviour comes from; its run proves it.

// quirk is one real client's behaviour.
type quirk struct {
	name  string
	sends string // the request the client really sends
	does  string // what Gatehouse does, and why
	cite  string // the client issue or spec line
	run   func(t *testing.T)
}

func TestClientQuirks(t *testing.T) {
	for _, q := range []quirk{{
		name:  "omits resource",
		sends: "clients written for MCP 2025-03-26, before resource indicators were required, and gateways that drop it (mcp-gateway before 3.3.2, gemini-cli before #4981) send /authorize and /token without resource",
		does: "with exactly one registered resource, that resource is the audience (RFC 8707 §2 lets the AS use a default); " +
			"with several, invalid_target naming the rule, redirected to the client (its redirect URI was verified)",
		cite: "RFC 8707 §2 (\"the authorization server MAY process the request with no specific resource or by using a pre-defined default resource value\"); " +
			"https://github.com/google-gemini/gemini-cli/pull/4981; https://github.com/MikkoParkkola/mcp-gateway/issues/369",
		run: quirkOmitsResource,
	}, {
		name:  "resource with a trailing slash or an uppercase host",
		sends: "resource=https://root.example.com/ (JavaScript's URL.href adds the root slash) and resource=https://MCP.EXAMPLE.COM/mcp",
		does: "scheme and host are compared case-insensitively and a root path's slash is dropped (RFC 3986 §6.2.2.1, §6.2.3), " +
			"so both name the registered resource; a slash after a real path is a different resource and gets invalid_target",
		cite: "https://github.com/vercel/ai/issues/13988; https://github.com/anthropics/claude-code/issues/52871; " +
			"https://github.com/sigbit/mcp-auth-proxy/issues/123; MCP authorization \"Canonical Server URI\"",
		run: quirkResourceSpelling,
	}, {
		name:  "CIMD lists port-less loopback redirects, client uses localhost:<port>",
		sends: "Claude Code's document lists http://localhost/callback and http://127.0.0.1/callback, then /authorize has redirect_uri=http://localhost:49152/callback",
		does: "any port matches a registered loopback redirect, for the IP literals (RFC 8252 §7.3: MUST) and for the name localhost " +
			"registered as localhost (RFC 8252 §8.3 only discourages clients from using the name; the port rule's reason, an ephemeral " +
			"listener, is the same); localhost never matches 127.0.0.1 and the path must match exactly",
		cite: "https://github.com/anthropics/claude-code/issues/90370; RFC 8252 §7.3 (\"MUST allow any port to be specified at the time of the request for loopback IP redirect URIs\"), §8.3; " +
			"the same decision for the name in fosite: https://github.com/ory/fosite/pull/874",
		run: quirkLoopbackPorts,
	}, {
		name:  "CIMD with private_key_jwt and keys at a jwks_uri (ChatGPT)",
		sends: "client_id=https://chatgpt.com/oauth/<id>/client.json whose document has token_endpoint_auth_method private_key_jwt, token_endpoint_auth_signing_alg RS256 and jwks_uri; /token carries an RS256 client_assertion",
		does: "the jwks_uri is fetched with the SSRF-safe fetcher and cached with the document; an assertion with an unknown kid fetches it again " +
			"once per client per minute (and within the host's fetch budget), keeping the grant; a second unknown kid within the minute is refused without a fetch",
		cite: "https://github.com/Altinity/altinity-mcp/issues/118 (ChatGPT's document); https://github.com/pocket-id/pocket-id/issues/1718; " +
			"RFC 7523 §2.2; RFC 7591 §2 (jwks_uri \"allows for key rotation\")",
		run: quirkChatGPTJWKSURI,
	}, {
		name:  "Cursor registers cursor:// and https://www.cursor.com together",
		sends: "POST /register with redirect_uris cursor://anysphere.cursor-mcp/oauth/callback, https://www.cursor.com/agents/mcp/oauth/callback and http://localhost:8787/callback",
		does:  "registered as one public client (private-use scheme allowed by policy, RFC 8252 §7.1); each URI gets codes, exactly",
		cite: "https://github.com/erp-mafia/accounted/pull/2225 (Cursor's three-URI body); https://github.com/soflyy/agent-connector-for-wp/issues/111; " +
			"https://github.com/makeplane/plane-mcp-server/issues/159; RFC 8252 §7.1",
		run: quirkCursorRedirects,
	}, {
		name:  "requests every scope in scopes_supported",
		sends: "scope = all of the protected resource metadata's scopes_supported, or all of the AS metadata's (which spans every resource)",
		does: "every scope of the resource is granted after consent; a scope of another resource is invalid_scope naming it and the resource " +
			"(RFC 6749 §3.3 lets the AS refuse; silently narrowing would hide why a tool fails later)",
		cite: "https://github.com/punkpeye/mcp-remote/issues/162; MCP authorization \"Scope Selection Strategy\"; RFC 6749 §3.3",
		run:  quirkEveryScope,
	}, {
		name:  "always appends offline_access",
		sends: "scope=notes:read offline_access, whatever scopes_supported says",
		does:  "accepted: a refresh token is issued (as it is without offline_access, SEP-2207), and offline_access is never in the access token's scope",
		cite: "https://github.com/anthropics/claude-code/issues/41610; https://github.com/ChronoAIProject/NyxID/issues/1217; " +
			"MCP SEP-2207 (https://github.com/modelcontextprotocol/modelcontextprotocol/pull/2207)",
		run: quirkOfflineAccess,
	}, {
		name:  "ignores the step-up scope and refreshes",
		sends: "after 403 insufficient_scope scope=\"notes:write\", grant_type=refresh_token without scope (TypeScript SDK), or with scope=notes:read notes:write",
		does: "without scope: a token with the granted scope only (RFC 6749 §6: a refresh cannot widen); with the wider scope: invalid_scope saying " +
			"a refresh may only narrow, and nothing changes: the refresh token stays valid and unrotated, and the client must re-authorize",
		cite: "https://github.com/modelcontextprotocol/typescript-sdk/issues/2255; https://github.com/anthropics/claude-code/issues/28258; RFC 6749 §6",
		run:  quirkStepUpRefresh,
	}, {
		name:  "registers twice per connect",
		sends: "two identical POST /register bodies (a public client) within one connect",
		does: "both get the same client_id (de-duplication by keyed hash of the metadata); the second gets no registration_access_token, " +
			"since a shared client belongs to nobody",
		cite: "https://github.com/anomalyco/opencode/issues/35625; https://github.com/anomalyco/opencode/issues/40767; RFC 7591 §3.2.1",
		run:  quirkRegistersTwice,
	}, {
		name:  "keeps using its first refresh token",
		sends: "grant_type=refresh_token with the first refresh token again after it was rotated (a retry after a network blip, or a second process)",
		does: "an identical retry within refresh_retry_window (30s) gets the identical response; any other reuse revokes the whole grant, the " +
			"successor included (RFC 9700 §4.14.2: the server cannot tell thief from client, so it revokes the active refresh token)",
		cite: "RFC 9700 §4.14.2; OAuth 2.1 §4.3.1; https://github.com/github/copilot-cli/issues/3456; https://github.com/anthropics/claude-code/issues/91641",
		run:  quirkFirstRefreshToken,
	}, {
		name:  "asks for openid",
		sends: "scope=openid profile email offline_access notes:read (clients built for OIDC providers, e.g. Inspector against better-auth)",
		does: "invalid_scope saying this server issues no ID tokens; the metadata says the same: id_token_signing_alg_values_supported is empty " +
			"and there is no userinfo_endpoint",
		cite: "https://github.com/better-auth/better-auth/issues/3411; OpenID Connect Core §3.1.2.1 (openid asks for an ID token)",
		run:  quirkOpenID,
	}} {
		t.Run(q.name, func(t *testing.T) {
			t.Logf("sends: %s\ndoes:  %s\ncite:  %s", q.sends, q.does, q.cite)
			q.run(t)
		})
	}
}

// redirectErrorOf returns the error and error_description of an
// authorization error redirect.
func redirectErrorOf(t *testing.T, loc *url.URL) (code, desc string) {
	t.Helper()
	q := loc.Query()
	if q.Get("code") != "" {
		t.Fatalf("redirect %s carries a code, want an error", loc)
	}
	return q.Get("error"), q.Get("error_description")
}

// wantError checks an OAuth JSON error: status, code and a description
// containing desc.
func wantError(t *testing.T, what string, status int, body string, wantStatus int, wantCode, desc string) {
	t.Helper()
	var e struct {
		Error       string `json:"error"`
		Description string `json:"error_description"`
	}
	_ = json.Unmarshal([]byte(body), &e)
	if status != wantStatus || e.Error != wantCode || !strings.Contains(e.Description, desc) {
		t.Errorf("%s = (%d, %q, %q), want (%d, %q, containing %q)", what, status, e.Error, e.Description, wantStatus, wantCode, desc)
	}
}

// tokenJSON decodes a successful token response.
func tokenJSON(t *testing.T, status int, body string) map[string]any {
	t.Helper()
	if status != http.StatusOK {
		t.Fatalf("token request = %d %s, want 200", status, body)
	}
	var m map[string]any
	must(t, json.Unmarshal([]byte(body), &m))
	return m
}

func quirkOmitsResource(t *testing.T) {
	t.Run("one resource: it is the audience", func(t *testing.T) {
		ts := newTestServer(t, nil)
		must(t, ts.Store.DeleteResource(t.Context(), testResource2))
		a := defaultAuth()
		a.resource = ""
		form := exchange(ts.code(t, a))
		s, _, body := ts.post(t, "/token", form, "", "")
		tr := tokenJSON(t, s, body)
		if aud := fmt.Sprint(jwtClaims(t, tr["access_token"].(string))["aud"]); !strings.Contains(aud, testResource) {
			t.Errorf("aud = %s, want %s", aud, testResource)
		}
	})
	t.Run("several resources: invalid_target", func(t *testing.T) {
		ts := newTestServer(t, nil)
		a := defaultAuth()
		a.resource = ""
		before := ts.snapshot(t)
		code, desc := redirectErrorOf(t, ts.authorize(t, newBrowser(t), a))
		if code != "invalid_target" || desc != "the resource parameter is required: this authorization server protects more than one resource" {
			t.Errorf("/authorize without resource = (%q, %q), want invalid_target naming the rule", code, desc)
		}
		if ts.snapshot(t) != before {
			t.Error("the refusal changed storage")
		}
	})
}

func quirkResourceSpelling(t *testing.T) {
	ts := newTestServer(t, nil)
	const root = "https://root.example.com"
	now := ts.Clock.Now()
	must(t, ts.Store.PutResource(t.Context(), storage.Resource{URL: root, Name: "Root", Scopes: []storage.Scope{{Name: "root:read"}}, CreatedAt: now, UpdatedAt: now}))
	for _, tt := range []struct{ sent, scope, wantAud string }{
		{root + "/", "root:read", root},
		{"HTTPS://ROOT.EXAMPLE.COM", "root:read", root},
		{"https://MCP.EXAMPLE.COM/mcp", "notes:read", testResource},
		{"https://mcp.example.com:443/mcp", "notes:read", testResource},
	} {
		t.Run(tt.sent, func(t *testing.T) {
			a := defaultAuth()
			a.resource, a.scope = tt.sent, tt.scope
			form := exchange(ts.code(t, a))
			form.Set("resource", tt.sent)
			s, _, body := ts.post(t, "/token", form, "", "")
			tr := tokenJSON(t, s, body)
			if aud := fmt.Sprint(jwtClaims(t, tr["access_token"].(string))["aud"]); aud != tt.wantAud && aud != "["+tt.wantAud+"]" {
				t.Errorf("resource %q: aud = %s, want %s", tt.sent, aud, tt.wantAud)
			}
		})
	}
	t.Run("slash after a path", func(t *testing.T) {
		a := defaultAuth()
		a.resource = testResource + "/"
		code, desc := redirectErrorOf(t, ts.authorize(t, newBrowser(t), a))
		if want := "the resource 'https://mcp.example.com/mcp/' is not registered with this authorization server"; code != "invalid_target" || desc != want {
			t.Errorf("/authorize resource=%s = (%q, %q), want (invalid_target, %q)", a.resource, code, desc, want)
		}
	})
}

func quirkLoopbackPorts(t *testing.T) {
	d := newDocServer(t)
	const claude = "/oauth/claude-code-client-metadata"
	d.set(claude, docResponse{body: d.doc(claude, nil)})
	const onlyIP = "/oauth/ip-only"
	d.set(onlyIP, docResponse{body: d.doc(onlyIP, map[string]any{"redirect_uris": []string{"http://127.0.0.1/callback"}})})
	ts := newTestServer(t, cimdOptions(d, nil))
	for _, redirect := range []string{"http://localhost:49152/callback", "http://127.0.0.1:5555/callback", "http://localhost/callback", "http://[::1]:1/callback"} {
		t.Run(redirect, func(t *testing.T) {
			a := cimdAuth(d.URL + claude)
			a.redirectURI = redirect
			if redirect == "http://[::1]:1/callback" {
				// Not registered: ::1 is loopback too, but neither listed form.
				p := newBrowser(t).get(a.url(ts.URL))
				if p.status != 400 || p.header.Get("Location") != "" || !strings.Contains(html.UnescapeString(p.body), "is not registered for this client") || !strings.Contains(p.body, "<code>invalid_request</code>") {
					t.Errorf("GET /authorize redirect_uri=%s = %d (Location %q), want the 400 error page", redirect, p.status, p.header.Get("Location"))
				}
				return
			}
			loc := ts.authorize(t, newBrowser(t), a)
			if !strings.HasPrefix(loc.String(), redirect+"?") || loc.Query().Get("code") == "" {
				t.Errorf("redirect_uri=%s: redirected to %s, want a code there", redirect, loc)
			}
		})
	}
	t.Run("localhost against a document listing only 127.0.0.1", func(t *testing.T) {
		a := cimdAuth(d.URL + onlyIP)
		p := newBrowser(t).get(a.url(ts.URL))
		body := html.UnescapeString(p.body)
		if p.status != 400 || p.header.Get("Location") != "" || !strings.Contains(body, `redirect_uri "http://localhost:49152/callback" is not registered for this client`) || !strings.Contains(body, "<code>invalid_request</code>") {
			t.Errorf("GET /authorize = %d (Location %q), want the 400 error page naming the redirect URI:\n%s", p.status, p.header.Get("Location"), body)
		}
	})
}

// rsaKey is an RS256 key of a private_key_jwt client, as ChatGPT signs.
type rsaKey struct {
	kid string
	key *rsa.PrivateKey
}

func newRSAKey(t *testing.T, kid string) rsaKey {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	must(t, err)
	return rsaKey{kid: kid, key: k}
}

// jwksOf is the JWK Set publishing keys.
func jwksOf(t *testing.T, keys ...rsaKey) string {
	t.Helper()
	var set jose.JSONWebKeySet
	for _, k := range keys {
		set.Keys = append(set.Keys, jose.JSONWebKey{Key: &k.key.PublicKey, KeyID: k.kid, Algorithm: "RS256", Use: "sig"})
	}
	b, err := json.Marshal(set)
	must(t, err)
	return string(b)
}

// assertion signs an RFC 7523 client assertion for ts's token endpoint.
func (k rsaKey) assertion(t *testing.T, ts *testServer, client string) string {
	t.Helper()
	now := ts.Clock.Now()
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: k.key}, (&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", k.kid))
	must(t, err)
	payload, err := json.Marshal(map[string]any{"iss": client, "sub": client, "aud": ts.URL + "/token", "jti": rand.Text(), "iat": now.Unix(), "exp": now.Add(2 * time.Minute).Unix()})
	must(t, err)
	obj, err := s.Sign(payload)
	must(t, err)
	out, err := obj.CompactSerialize()
	must(t, err)
	return out
}

func quirkChatGPTJWKSURI(t *testing.T) {
	d := newDocServer(t)
	const docPath, jwksPath = "/oauth/tU1UVEq8rRTK/client.json", "/oauth/jwks.json"
	id := d.URL + docPath
	redirect := "https://chatgpt.com/connector/oauth/tU1UVEq8rRTK"
	d.set(docPath, docResponse{body: d.doc(docPath, map[string]any{
		"client_name": "ChatGPT", "client_uri": "https://chatgpt.com/", "redirect_uris": []string{redirect},
		"token_endpoint_auth_method": "private_key_jwt", "token_endpoint_auth_signing_alg": "RS256", "jwks_uri": d.URL + jwksPath,
	}), cacheControl: "max-age=3600"})
	k1, k2, k3 := newRSAKey(t, "k1"), newRSAKey(t, "k2"), newRSAKey(t, "k3")
	d.set(jwksPath, docResponse{body: jwksOf(t, k1)})
	ts := newTestServer(t, cimdOptions(d, nil))

	a := authRequest{clientID: id, redirectURI: redirect, scope: "notes:read", resource: testResource, state: "st-g", verifier: testVerifier}
	assertion := func(k rsaKey) url.Values {
		return url.Values{"client_assertion_type": {assertionTypeJWT}, "client_assertion": {k.assertion(t, ts, id)}}
	}
	form := url.Values{"grant_type": {"authorization_code"}, "code": {ts.code(t, a)}, "redirect_uri": {redirect}, "code_verifier": {testVerifier}}
	s, _, body := ts.post(t, "/token", merge(form, assertion(k1)), "", "")
	tr := tokenJSON(t, s, body)
	if n := d.count(jwksPath); n != 1 {
		t.Fatalf("jwks_uri fetched %d times for authorize and token, want 1", n)
	}

	// ChatGPT rotates to k2: the first assertion with it fetches the set
	// again, and the grant survives (the refresh token from before works).
	d.set(jwksPath, docResponse{body: jwksOf(t, k2)})
	s, _, body = ts.post(t, "/token", merge(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tr["refresh_token"].(string)}}, assertion(k2)), "", "")
	tr = tokenJSON(t, s, body)
	if n := d.count(jwksPath); n != 2 {
		t.Errorf("jwks_uri fetched %d times after a rotation, want 2", n)
	}
	c, err := ts.Store.GetClient(t.Context(), id)
	must(t, err)
	if !strings.Contains(c.JWKS, `"kid":"k2"`) || strings.Contains(c.JWKS, `"kid":"k1"`) {
		t.Errorf("stored JWKS = %s, want k2 alone", c.JWKS)
	}
	if _, err := ts.lookupClient(t.Context(), id, cimdTestIP); err != nil {
		t.Fatal(err)
	}
	if c2, _ := ts.Store.GetClient(t.Context(), id); c2.JWKS != c.JWKS {
		t.Errorf("a lookup from the cached document put back the old keys: %s", c2.JWKS)
	}

	// An unknown kid again within the minute: refused, nothing fetched,
	// nothing changed.
	before := ts.snapshotWithout(t, "used_once")
	s, _, body = ts.post(t, "/token", merge(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tr["refresh_token"].(string)}}, assertion(k3)), "", "")
	wantError(t, "refresh with an unpublished kid", s, body, http.StatusUnauthorized, "invalid_client", "no key in the client's JWKS matches the assertion's kid and algorithm RS256")
	if n := d.count(jwksPath); n != 2 {
		t.Errorf("jwks_uri fetched %d times after a second unknown kid within a minute, want still 2 (rate limit)", n)
	}
	if ts.snapshotWithout(t, "used_once") != before {
		t.Error("the refused assertion changed storage")
	}
	// A minute later the set may be fetched again (k3 is still unknown).
	ts.Clock.Advance(jwksRefreshWindow + time.Second)
	s, _, body = ts.post(t, "/token", merge(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tr["refresh_token"].(string)}}, assertion(k3)), "", "")
	wantError(t, "refresh with an unpublished kid a minute later", s, body, http.StatusUnauthorized, "invalid_client", "no key in the client's JWKS matches")
	if n := d.count(jwksPath); n != 3 {
		t.Errorf("jwks_uri fetched %d times a minute later, want 3", n)
	}

	// When the document expires (max-age 3600) it is fetched again with
	// its jwks_uri, which now has k3 too: new keys at the same jwks_uri
	// are a rotation, not a new client, and revoke nothing.
	ts.Clock.Advance(time.Hour)
	d.set(jwksPath, docResponse{body: jwksOf(t, k2, k3)})
	if _, err := ts.lookupClient(t.Context(), id, cimdTestIP); err != nil {
		t.Fatal(err)
	}
	s, _, body = ts.post(t, "/token", merge(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tr["refresh_token"].(string)}}, assertion(k3)), "", "")
	tokenJSON(t, s, body)
	if n := d.count(jwksPath); n != 4 {
		t.Errorf("jwks_uri fetched %d times after the document expired, want 4", n)
	}

	t.Run("inline jwks changed", func(t *testing.T) {
		// Keys in the document itself are the document: new ones are a
		// security-relevant change that revokes what the client held
		// (CIMD §4.2), unlike new keys at an unchanged jwks_uri.
		const inline = "/oauth/inline/client.json"
		inlineID := d.URL + inline
		docWith := func(k rsaKey) docResponse {
			var set map[string]any
			must(t, json.Unmarshal([]byte(jwksOf(t, k)), &set))
			return docResponse{body: d.doc(inline, map[string]any{"client_name": "Inline", "redirect_uris": []string{redirect},
				"token_endpoint_auth_method": "private_key_jwt", "jwks": set})}
		}
		d.set(inline, docWith(k1))
		ts := newTestServer(t, cimdOptions(d, nil))
		a := a
		a.clientID = inlineID
		form := url.Values{"grant_type": {"authorization_code"}, "code": {ts.code(t, a)}, "redirect_uri": {redirect}, "code_verifier": {testVerifier}}
		s, _, body := ts.post(t, "/token", merge(form, url.Values{"client_assertion_type": {assertionTypeJWT}, "client_assertion": {k1.assertion(t, ts, inlineID)}}), "", "")
		rt := tokenJSON(t, s, body)["refresh_token"].(string)
		d.set(inline, docWith(k2))
		ts.Clock.Advance(6 * time.Minute) // past cimd.min_ttl
		s, _, body = ts.post(t, "/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt},
			"client_assertion_type": {assertionTypeJWT}, "client_assertion": {k2.assertion(t, ts, inlineID)}}, "", "")
		wantError(t, "refresh after the document's keys changed", s, body, http.StatusBadRequest, "invalid_grant", "the refresh token is invalid")
	})

	t.Run("host fetch budget used up", func(t *testing.T) {
		// The document and its jwks_uri use the host's budget of two
		// fetches a minute: the refresh for a new kid is refused unfetched.
		d.set(jwksPath, docResponse{body: jwksOf(t, k1)})
		ts := newTestServer(t, cimdOptions(d, func(r *Registration) { r.CIMD.FetchRateLimit = 2 }))
		fetched := d.count(jwksPath)
		form := url.Values{"grant_type": {"authorization_code"}, "code": {ts.code(t, a)}, "redirect_uri": {redirect}, "code_verifier": {testVerifier}}
		d.set(jwksPath, docResponse{body: jwksOf(t, k2)})
		s, _, body := ts.post(t, "/token", merge(form, url.Values{"client_assertion_type": {assertionTypeJWT}, "client_assertion": {k2.assertion(t, ts, id)}}), "", "")
		wantError(t, "code exchange with a new kid past the fetch budget", s, body, http.StatusUnauthorized, "invalid_client", "no key in the client's JWKS matches")
		if n := d.count(jwksPath) - fetched; n != 1 {
			t.Errorf("jwks_uri fetched %d times, want 1 (with the document; the refresh is over budget)", n)
		}
	})
}

func quirkCursorRedirects(t *testing.T) {
	ts := newTestServer(t, openRegistration(nil))
	uris := []string{"cursor://anysphere.cursor-mcp/oauth/callback", "https://www.cursor.com/agents/mcp/oauth/callback", "http://localhost:8787/callback"}
	b, err := json.Marshal(map[string]any{"client_name": "Cursor", "redirect_uris": uris, "token_endpoint_auth_method": "none",
		"grant_types": []string{"authorization_code", "refresh_token"}, "response_types": []string{"code"}})
	must(t, err)
	r := ts.mustRegister(t, string(b))
	if got := fmt.Sprint(r.json["redirect_uris"]); got != fmt.Sprint(uris) {
		t.Errorf("registered redirect_uris = %s, want %s", got, uris)
	}
	for _, u := range uris {
		t.Run(u, func(t *testing.T) {
			a := defaultAuth()
			a.clientID, a.redirectURI = r.str("client_id"), u
			loc := ts.authorize(t, newBrowser(t), a)
			if !strings.HasPrefix(loc.String(), u+"?") || loc.Query().Get("code") == "" {
				t.Errorf("redirect_uri=%s: redirected to %s, want a code there", u, loc)
			}
		})
	}
	t.Run("a neighbour of the https URI", func(t *testing.T) {
		a := defaultAuth()
		a.clientID, a.redirectURI = r.str("client_id"), "https://www.cursor.com/agents/mcp/oauth/callback/x"
		p := newBrowser(t).get(a.url(ts.URL))
		if p.status != 400 || p.header.Get("Location") != "" || !strings.Contains(html.UnescapeString(p.body), "is not registered for this client") || !strings.Contains(p.body, "<code>invalid_request</code>") {
			t.Errorf("GET /authorize redirect_uri=%s = %d (Location %q), want the 400 error page", a.redirectURI, p.status, p.header.Get("Location"))
		}
	})
}

func quirkEveryScope(t *testing.T) {
	ts := newTestServer(t, nil)
	t.Run("every scope of the protected resource metadata", func(t *testing.T) {
		a := defaultAuth()
		a.scope = "notes:read notes:write"
		s, _, body := ts.post(t, "/token", exchange(ts.code(t, a)), "", "")
		if got := tokenJSON(t, s, body)["scope"]; got != "notes:read notes:write" {
			t.Errorf("scope = %v, want notes:read notes:write", got)
		}
	})
	t.Run("every scope of the AS metadata", func(t *testing.T) {
		_, meta := fetch(t, ts.URL+"/.well-known/oauth-authorization-server")
		var m struct {
			Scopes []string `json:"scopes_supported"`
		}
		must(t, json.Unmarshal([]byte(meta), &m))
		a := defaultAuth()
		a.scope = strings.Join(m.Scopes, " ")
		before := ts.snapshot(t)
		code, desc := redirectErrorOf(t, ts.authorize(t, newBrowser(t), a))
		if want := "the scope 'other:read' is not defined for the resource " + testResource; code != "invalid_scope" || desc != want {
			t.Errorf("/authorize scope=%q = (%q, %q), want (invalid_scope, %q)", a.scope, code, desc, want)
		}
		if ts.snapshot(t) != before {
			t.Error("the refusal changed storage")
		}
	})
}

func quirkOfflineAccess(t *testing.T) {
	ts := newTestServer(t, nil)
	for _, scope := range []string{"notes:read offline_access", "notes:read"} {
		t.Run(scope, func(t *testing.T) {
			a := defaultAuth()
			a.scope = scope
			s, _, body := ts.post(t, "/token", exchange(ts.code(t, a)), "", "")
			tr := tokenJSON(t, s, body)
			if tr["refresh_token"] == nil || tr["scope"] != "notes:read" {
				t.Errorf("token response = %s, want a refresh token and scope notes:read", body)
			}
			if sc := jwtClaims(t, tr["access_token"].(string))["scope"]; sc != "notes:read" {
				t.Errorf("access token scope = %v, want notes:read (offline_access is about the grant)", sc)
			}
		})
	}
}

func quirkStepUpRefresh(t *testing.T) {
	ts := newTestServer(t, nil)
	s, _, body := ts.post(t, "/token", exchange(ts.code(t, defaultAuth())), "", "")
	rt := tokenJSON(t, s, body)["refresh_token"].(string)
	refresh := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}, "client_id": {publicClient}}

	before := ts.snapshot(t)
	s, _, body = ts.post(t, "/token", merge(refresh, url.Values{"scope": {"notes:read notes:write"}}), "", "")
	wantError(t, "refresh asking for the step-up scope", s, body, http.StatusBadRequest, "invalid_scope", "a refresh may only narrow the scope: 'notes:read notes:write' was not granted")
	if ts.snapshot(t) != before {
		t.Error("the refused refresh changed storage (rotated or revoked the token)")
	}

	s, _, body = ts.post(t, "/token", refresh, "", "")
	if got := tokenJSON(t, s, body)["scope"]; got != "notes:read" {
		t.Errorf("refresh without scope after the refusal: scope = %v, want notes:read (the refresh token is intact, and no wider)", got)
	}
}

func quirkRegistersTwice(t *testing.T) {
	ts := newTestServer(t, openRegistration(nil))
	first := ts.mustRegister(t, sdkMetadata)
	second := ts.mustRegister(t, sdkMetadata)
	if first.str("client_id") != second.str("client_id") {
		t.Errorf("client_ids %q and %q, want one client", first.str("client_id"), second.str("client_id"))
	}
	if first.str("registration_access_token") == "" || second.str("registration_access_token") != "" {
		t.Errorf("registration_access_token first %q, second %q; want one, then none", first.str("registration_access_token"), second.str("registration_access_token"))
	}
	cs, err := ts.Store.ListClients(t.Context())
	must(t, err)
	n := 0
	for _, c := range cs {
		if c.Origin == storage.OriginDCR {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d registered clients stored, want 1", n)
	}
}

func quirkFirstRefreshToken(t *testing.T) {
	ts := newTestServer(t, nil)
	s, _, body := ts.post(t, "/token", exchange(ts.code(t, defaultAuth())), "", "")
	first := tokenJSON(t, s, body)["refresh_token"].(string)
	refresh := func(rt string) (int, string) {
		s, _, body := ts.post(t, "/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}, "client_id": {publicClient}}, "", "")
		return s, body
	}
	s, rotated := refresh(first)
	second := tokenJSON(t, s, rotated)["refresh_token"].(string)

	ts.Clock.Advance(10 * time.Second)
	if s, retried := refresh(first); s != 200 || retried != rotated {
		t.Errorf("identical retry within the window = %d %s, want the same response as the rotation", s, retried)
	}

	ts.Clock.Advance(time.Minute)
	s, body = refresh(first)
	wantError(t, "first refresh token after the window", s, body, http.StatusBadRequest, "invalid_grant", "the refresh token was already used; the authorization has been revoked")
	s, body = refresh(second)
	wantError(t, "its successor after the reuse", s, body, http.StatusBadRequest, "invalid_grant", "the refresh token has been revoked")
}

func quirkOpenID(t *testing.T) {
	ts := newTestServer(t, nil)
	a := defaultAuth()
	a.scope = "openid profile email offline_access notes:read"
	before := ts.snapshot(t)
	code, desc := redirectErrorOf(t, ts.authorize(t, newBrowser(t), a))
	if want := "this server is not an OpenID Provider: it issues no ID tokens, so the scope openid cannot be granted; request the resource's scopes without it"; code != "invalid_scope" || desc != want {
		t.Errorf("/authorize scope=%q = (%q, %q), want (invalid_scope, %q)", a.scope, code, desc, want)
	}
	if ts.snapshot(t) != before {
		t.Error("the refusal changed storage")
	}
	for _, path := range []string{"/.well-known/openid-configuration", "/.well-known/oauth-authorization-server"} {
		_, meta := fetch(t, ts.URL+path)
		var m map[string]any
		must(t, json.Unmarshal([]byte(meta), &m))
		if algs, ok := m["id_token_signing_alg_values_supported"].([]any); !ok || len(algs) != 0 {
			t.Errorf("%s: id_token_signing_alg_values_supported = %v, want [] (no ID token is signed)", path, m["id_token_signing_alg_values_supported"])
		}
		if _, ok := m["userinfo_endpoint"]; ok {
			t.Errorf("%s advertises a userinfo_endpoint", path)
		}
	}
}

// TestRegisterClientCredentialsOnly: a client_credentials-only
// registration with response_types [] has [] echoed and stored, not the
// ["code"] default, which is for an omitted member (RFC 7591 §2); with
// authorization_code an empty list would contradict the grant, and code
// is registered (RFC 7591 §2.1).
func TestRegisterClientCredentialsOnly(t *testing.T) {
	ts := newTestServer(t, openRegistration(allowMachineClients))
	r := ts.mustRegister(t, `{"client_name":"Worker","grant_types":["client_credentials"],"response_types":[],"token_endpoint_auth_method":"client_secret_basic"}`)
	golden(t, ts, "register_client_credentials", maskRegistration(t, r.body))
	c, err := ts.Store.GetClient(t.Context(), r.str("client_id"))
	must(t, err)
	if c.ResponseTypes == nil || len(c.ResponseTypes) != 0 {
		t.Errorf("stored response types = %#v, want []", c.ResponseTypes)
	}
	for _, tt := range []struct{ name, body, want string }{
		{"omitted", `{"client_name":"Worker","grant_types":["client_credentials"],"token_endpoint_auth_method":"client_secret_basic"}`, "[code]"},
		{"empty with authorization_code", `{"client_name":"App","redirect_uris":["https://app.example.com/cb"],"response_types":[]}`, "[code]"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := fmt.Sprint(ts.mustRegister(t, tt.body).json["response_types"]); got != tt.want {
				t.Errorf("response_types = %s, want %s", got, tt.want)
			}
		})
	}
}
