package as

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-mcp/gatehouse/internal/storage"
	"github.com/gatehouse-mcp/gatehouse/internal/token"
)

// Token exchange fixtures: an API the gateway calls for users, one that
// accepts machine tokens, and the gateway, a confidential client that
// serves testResource and may exchange its tokens for both.
const (
	exAPI          = "https://api.example.com/v1"
	exMachineAPI   = "https://machine-api.example.com"
	exUnregistered = "https://unregistered.example.com"
	exGateway      = "mcp-gateway"
	exGatewaySec   = "gateway-secret"
	exChained      = "api-backend" // the API's own client, exchanging onwards
	exChainedSec   = "api-backend-secret"
)

// newExchangeServer is a test server with token exchange enabled and the
// fixtures above registered.
func newExchangeServer(t *testing.T) *testServer {
	t.Helper()
	return newExchangeServerWith(t, nil)
}

// newExchangeServerWith is newExchangeServer with the token exchange
// clients policy replaced (nil keeps the default).
func newExchangeServerWith(t *testing.T, policy []ExchangeClient) *testServer {
	t.Helper()
	ts := newTestServer(t, func(o *Options) {
		// Resource servers get clock leeway; the exchange must not.
		kr, err := token.NewKeyring(t.Context(), token.KeyringOptions{Keys: o.Store, EncryptionKey: make([]byte, 32), Now: o.Now, Leeway: time.Minute})
		must(t, err)
		o.Keyring = kr
		o.TokenExchange = TokenExchange{Clients: []ExchangeClient{
			{ClientID: exGateway, SubjectAudiences: []string{testResource}, Audiences: []string{exAPI, exMachineAPI, exUnregistered}},
			{ClientID: exChained, SubjectAudiences: []string{exAPI}, Audiences: []string{exMachineAPI}, Scopes: []string{"notes:read"}},
			// Named in the policy, and refused anyway: public.
			{ClientID: publicClient, SubjectAudiences: []string{testResource}, Audiences: []string{exAPI}},
		}}
		if policy != nil {
			o.TokenExchange.Clients = policy
		}
	})
	ctx := t.Context()
	now := ts.Clock.Now()
	for _, r := range []storage.Resource{
		{URL: exAPI, Name: "API", Scopes: []storage.Scope{{Name: "notes:read"}, {Name: "notes:write"}, {Name: "admin"}}, DefaultScopes: []string{"notes:read"}},
		{URL: exMachineAPI, Name: "Machine API", Scopes: []storage.Scope{{Name: "notes:read"}, {Name: "notes:write"}}, AcceptClientCredentials: true},
	} {
		r.CreatedAt, r.UpdatedAt = now, now
		must(t, ts.Store.PutResource(ctx, r))
	}
	for _, c := range []storage.Client{
		{ID: exGateway, Name: "Gateway", SecretHash: token.Hash(exGatewaySec)},
		{ID: exChained, Name: "API backend", SecretHash: token.Hash(exChainedSec)},
	} {
		c.GrantTypes, c.TokenEndpointAuthMethod, c.ApplicationType = []string{"client_credentials"}, "client_secret_basic", "web"
		c.ResponseTypes, c.Origin, c.Metadata = []string{"code"}, storage.OriginStatic, "{}"
		c.CreatedAt, c.UpdatedAt = now, now
		must(t, ts.Store.CreateClient(ctx, c))
	}
	return ts
}

// userToken runs the code flow for the public client at testResource with
// scope and returns the access token.
func (ts *testServer) userToken(t *testing.T, scope string) string {
	t.Helper()
	a := defaultAuth()
	a.scope = scope
	return ts.redeem(t, a, ts.code(t, a)).AccessToken
}

// exForm is a token exchange request for subject at resource.
func exForm(subject, resource, scope string) url.Values {
	v := url.Values{
		"grant_type":         {gtTokenExchange},
		"subject_token":      {subject},
		"subject_token_type": {tokenTypeAccess},
		"resource":           {resource},
	}
	if scope != "" {
		v.Set("scope", scope)
	}
	return v
}

// exchangeOK exchanges as the gateway and wants a token.
func (ts *testServer) exchangeOK(t *testing.T, form url.Values, id, secret string) (exchangeResponse, token.AccessClaims) {
	t.Helper()
	s, h, body := ts.post(t, "/token", form, id, secret)
	if s != http.StatusOK {
		t.Fatalf("token exchange = %d %s, want 200", s, body)
	}
	if h.Get("Cache-Control") != "no-store" {
		t.Errorf("Cache-Control = %q, want no-store", h.Get("Cache-Control"))
	}
	var r exchangeResponse
	must(t, json.Unmarshal([]byte(body), &r))
	if strings.Contains(body, "refresh_token") {
		t.Errorf("token exchange response has a refresh token: %s", body)
	}
	c, err := ts.opts.Keyring.Verify(t.Context(), r.AccessToken)
	must(t, err)
	return r, c
}

// exchangeEvents returns the token.exchange audit events.
func (ts *testServer) exchangeEvents(t *testing.T) []storage.AuditEvent {
	t.Helper()
	evs, err := ts.Store.QueryAudit(t.Context(), storage.AuditQuery{Type: "token.exchange", Limit: 1000})
	must(t, err)
	return evs
}

func actorChain(a *token.Actor) []string {
	var out []string
	for ; a != nil; a = a.Act {
		out = append(out, a.Subject)
	}
	return out
}

// TestTokenExchange (issue 15 item 3): the gateway trades the user's token
// for its MCP resource for a token for the API: aud the API, sub the user,
// client_id the gateway, act gateway then the MCP client, the subject's
// scopes the API defines, the subject's authorization (gid), at most the
// exchange lifetime and never past the subject token; audited without
// the tokens.
func TestTokenExchange(t *testing.T) {
	ts := newExchangeServer(t)
	subject := ts.userToken(t, "notes:read notes:write")
	sc, err := ts.opts.Keyring.Verify(t.Context(), subject)
	must(t, err)

	r, c := ts.exchangeOK(t, exForm(subject, exAPI, ""), exGateway, exGatewaySec)
	if r.IssuedTokenType != tokenTypeAccess || r.TokenType != "Bearer" || r.ExpiresIn != 300 || r.Scope != "notes:read notes:write" {
		t.Errorf("response = %+v, want access_token type, Bearer, 300 s, scope notes:read notes:write", r)
	}
	if c.Audience != exAPI || c.Subject != ts.userID || c.ClientID != exGateway || c.Scope != "notes:read notes:write" || c.Issuer != ts.URL {
		t.Errorf("claims = aud %q sub %q client_id %q scope %q iss %q", c.Audience, c.Subject, c.ClientID, c.Scope, c.Issuer)
	}
	if got := actorChain(c.Act); !slices.Equal(got, []string{exGateway, publicClient}) {
		t.Errorf("act chain = %q, want [%s %s]", got, exGateway, publicClient)
	}
	if c.GrantID == "" || c.GrantID != sc.GrantID || c.JTI == sc.JTI || !c.AuthTime.Equal(sc.AuthTime) {
		t.Errorf("gid %q jti %q auth_time %v; subject gid %q jti %q auth_time %v: want the same gid and auth_time, a fresh jti", c.GrantID, c.JTI, c.AuthTime, sc.GrantID, sc.JTI, sc.AuthTime)
	}
	if !c.ExpiresAt.Equal(ts.Clock.Now().Add(5 * time.Minute)) {
		t.Errorf("exp = %v, want now + 5m", c.ExpiresAt)
	}

	// A narrower request, by audience, asking for a JWT.
	f := exForm(subject, "", "notes:read")
	f.Del("resource")
	f.Set("audience", exAPI)
	f.Set("requested_token_type", tokenTypeJWT)
	r, c = ts.exchangeOK(t, f, exGateway, exGatewaySec)
	if r.Scope != "notes:read" || c.Scope != "notes:read" || r.IssuedTokenType != tokenTypeJWT {
		t.Errorf("narrowed exchange: scope %q (claim %q), issued_token_type %q", r.Scope, c.Scope, r.IssuedTokenType)
	}

	// Eight minutes on, the subject token has two left: so has its child.
	ts.Clock.Advance(8 * time.Minute)
	r, c = ts.exchangeOK(t, exForm(subject, exAPI, ""), exGateway, exGatewaySec)
	if r.ExpiresIn != 120 || !c.ExpiresAt.Equal(sc.ExpiresAt) {
		t.Errorf("near the subject's expiry: expires_in %d, exp %v; want 120 and the subject's exp %v", r.ExpiresIn, c.ExpiresAt, sc.ExpiresAt)
	}

	evs := ts.exchangeEvents(t)
	if len(evs) != 3 {
		t.Fatalf("token.exchange events = %d, want 3", len(evs))
	}
	e := evs[0] // oldest first
	if e.Outcome != "success" || e.UserID != ts.userID || e.ClientID != exGateway || e.Resource != exAPI ||
		!strings.Contains(e.Detail, "subject_client="+publicClient) || !strings.Contains(e.Detail, "subject_aud="+testResource) || !strings.Contains(e.Detail, "scope=notes:read") {
		t.Errorf("audit event = %+v", e)
	}
	for _, e := range evs {
		if strings.Contains(e.Detail, subject[:20]) || strings.Contains(e.Detail, r.AccessToken[:20]) {
			t.Errorf("audit event holds a token: %+v", e)
		}
	}
}

// TestTokenExchangeChained: a token that was itself exchanged can be
// exchanged again by a client serving its audience; act nests the actors,
// newest outermost (RFC 8693 §4.1), and the policy's scopes bound it.
func TestTokenExchangeChained(t *testing.T) {
	ts := newExchangeServer(t)
	first, _ := ts.exchangeOK(t, exForm(ts.userToken(t, "notes:read notes:write"), exAPI, ""), exGateway, exGatewaySec)
	_, c := ts.exchangeOK(t, exForm(first.AccessToken, exMachineAPI, ""), exChained, exChainedSec)
	if got := actorChain(c.Act); !slices.Equal(got, []string{exChained, exGateway, publicClient}) {
		t.Errorf("act chain = %q, want [%s %s %s]", got, exChained, exGateway, publicClient)
	}
	if c.Subject != ts.userID || c.Scope != "notes:read" {
		t.Errorf("chained token: sub %q scope %q, want the user and notes:read", c.Subject, c.Scope)
	}
	// The subject token has notes:write and the target defines it, but
	// this client's policy stops at notes:read.
	s, _, body := ts.post(t, "/token", exForm(first.AccessToken, exMachineAPI, "notes:write"), exChained, exChainedSec)
	assertOAuthError(t, s, body, 400, "invalid_scope")
}

// TestTokenExchangeMachineSubject: a token without a user can be
// exchanged only for a resource that accepts such tokens, and what comes
// back is a machine token again (sub = client_id, no auth_time), never a
// token that passes for a user's (the issue-11 invariant).
func TestTokenExchangeMachineSubject(t *testing.T) {
	ts := newExchangeServer(t)
	s, _, body := ts.post(t, "/token", url.Values{"grant_type": {"client_credentials"}, "resource": {testResource}}, confClient, confSecret)
	if s != 200 {
		t.Fatalf("client_credentials = %d %s", s, body)
	}
	var tr tokenResponse
	must(t, json.Unmarshal([]byte(body), &tr))

	s, _, body = ts.post(t, "/token", exForm(tr.AccessToken, exAPI, ""), exGateway, exGatewaySec)
	assertOAuthError(t, s, body, 400, "invalid_target")

	_, c := ts.exchangeOK(t, exForm(tr.AccessToken, exMachineAPI, ""), exGateway, exGatewaySec)
	if c.Subject != c.ClientID || c.ClientID != exGateway || !c.AuthTime.IsZero() {
		t.Errorf("machine exchange: sub %q client_id %q auth_time %v; want sub = client_id = %s, no auth_time", c.Subject, c.ClientID, c.AuthTime, exGateway)
	}
	if got := actorChain(c.Act); !slices.Equal(got, []string{exGateway, confClient}) {
		t.Errorf("act chain = %q, want [%s %s]", got, exGateway, confClient)
	}
}

// TestTokenExchangeMayAct: a subject token carrying may_act can be
// exchanged only by the party it names (RFC 8693 §4.4).
func TestTokenExchangeMayAct(t *testing.T) {
	ts := newExchangeServer(t)
	sc, err := ts.opts.Keyring.Verify(t.Context(), ts.userToken(t, "notes:read"))
	must(t, err)
	for _, tt := range []struct {
		mayAct string
		want   int
	}{{exGateway, 200}, {"someone-else", 400}} {
		c := sc
		c.JTI += tt.mayAct
		c.MayAct = &token.Actor{Subject: tt.mayAct}
		tok, err := ts.opts.Keyring.Sign(t.Context(), c)
		must(t, err)
		s, _, body := ts.post(t, "/token", exForm(tok, exAPI, ""), exGateway, exGatewaySec)
		if s != tt.want {
			t.Errorf("may_act %s: %d %s, want %d", tt.mayAct, s, body, tt.want)
		}
		if tt.want != 200 {
			assertOAuthError(t, s, body, 400, "invalid_grant")
		}
	}
}

// TestTokenExchangeRefusals: each refusal has its error code, status and
// a description (golden bodies), issues nothing, and is audited as a
// token.exchange failure naming the client. Targets follow SPEC-CHECKLIST
// AS-9: an unknown resource is invalid_target.
func TestTokenExchangeRefusals(t *testing.T) {
	ts := newExchangeServer(t)
	ctx := t.Context()
	subject := ts.userToken(t, "notes:read")
	sc, err := ts.opts.Keyring.Verify(ctx, subject)
	must(t, err)
	resign := func(mod func(*token.AccessClaims)) string {
		c := sc
		c.JTI = "resigned-" + fmt.Sprint(time.Now().UnixNano())
		mod(&c)
		tok, err := ts.opts.Keyring.Sign(ctx, c)
		must(t, err)
		return tok
	}
	parts := strings.Split(subject, ".")
	// Another base64url character at position 10: XOR-ing the byte (as
	// this did) made a character outside the alphabet for some of the
	// random ECDSA signatures, and the refusal read "not an access token"
	// instead of the signature's (a flake under load, 2026-12-08).
	sig := []byte(parts[2])
	sig[10] = 'A'
	if parts[2][10] == 'A' {
		sig[10] = 'B'
	}
	badSig := parts[0] + "." + parts[1] + "." + string(sig)
	ok := exForm(subject, exAPI, "")
	with := func(k, v string) url.Values {
		f := merge(ok, nil)
		if v == "" {
			f.Del(k)
		} else {
			f.Set(k, v)
		}
		return f
	}
	tests := []struct {
		name       string
		form       url.Values
		id, secret string
		status     int
		code       string
	}{
		{"public client", merge(ok, url.Values{"client_id": {publicClient}}), "", "", 400, "unauthorized_client"},
		{"client not allowed to exchange", ok, confClient, confSecret, 400, "unauthorized_client"},
		{"missing subject_token", with("subject_token", ""), exGateway, exGatewaySec, 400, "invalid_request"},
		{"missing subject_token_type", with("subject_token_type", ""), exGateway, exGatewaySec, 400, "invalid_request"},
		{"unsupported subject_token_type", with("subject_token_type", "urn:ietf:params:oauth:token-type:refresh_token"), exGateway, exGatewaySec, 400, "invalid_request"},
		{"unsupported requested_token_type", with("requested_token_type", "urn:ietf:params:oauth:token-type:id_token"), exGateway, exGatewaySec, 400, "invalid_request"},
		{"actor_token", merge(ok, url.Values{"actor_token": {subject}, "actor_token_type": {tokenTypeAccess}}), exGateway, exGatewaySec, 400, "invalid_request"},
		{"no target", with("resource", ""), exGateway, exGatewaySec, 400, "invalid_request"},
		{"two resources", merge(ok, url.Values{"resource": {exMachineAPI}}), exGateway, exGatewaySec, 400, "invalid_target"},
		{"resource and audience differ", merge(ok, url.Values{"audience": {exMachineAPI}}), exGateway, exGatewaySec, 400, "invalid_target"},
		{"audience not allowed", with("resource", testResource2), exGateway, exGatewaySec, 400, "invalid_target"},
		{"audience not a URI", with("resource", "my-api"), exGateway, exGatewaySec, 400, "invalid_target"},
		{"audience allowed but not registered", with("resource", exUnregistered), exGateway, exGatewaySec, 400, "invalid_target"},
		{"scope wider than the subject token", with("scope", "notes:read notes:write"), exGateway, exGatewaySec, 400, "invalid_scope"},
		{"garbage subject_token", with("subject_token", "not-a-token"), exGateway, exGatewaySec, 400, "invalid_grant"},
		{"bad signature", with("subject_token", badSig), exGateway, exGatewaySec, 400, "invalid_grant"},
		{"wrong issuer", with("subject_token", resign(func(c *token.AccessClaims) { c.Issuer = "https://evil.example.com" })), exGateway, exGatewaySec, 400, "invalid_grant"},
		{"subject audience not served by the client", with("subject_token", resign(func(c *token.AccessClaims) { c.Audience = testResource2 })), exGateway, exGatewaySec, 400, "invalid_grant"},
		{"unknown grant", with("subject_token", resign(func(c *token.AccessClaims) { c.GrantID = "no-such-grant" })), exGateway, exGatewaySec, 400, "invalid_grant"},
		{"user token without gid", with("subject_token", resign(func(c *token.AccessClaims) { c.GrantID = "" })), exGateway, exGatewaySec, 400, "invalid_grant"},
		{"expired within leeway", with("subject_token", resign(func(c *token.AccessClaims) {
			c.IssuedAt, c.NotBefore, c.ExpiresAt = c.IssuedAt.Add(-time.Hour), time.Time{}, ts.Clock.Now().Add(-time.Second)
		})), exGateway, exGatewaySec, 400, "invalid_grant"},
	}
	var bodies strings.Builder
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := ts.snapshot(t)
			nBefore := len(ts.exchangeEvents(t))
			s, h, body := ts.post(t, "/token", tt.form, tt.id, tt.secret)
			assertOAuthError(t, s, body, tt.status, tt.code)
			if h.Get("Cache-Control") != "no-store" {
				t.Errorf("Cache-Control = %q, want no-store", h.Get("Cache-Control"))
			}
			if ts.snapshot(t) != before {
				t.Errorf("storage changed")
			}
			evs := ts.exchangeEvents(t)
			last := evs[len(evs)-1]
			if len(evs) != nBefore+1 || last.Outcome != "failure" || !strings.HasPrefix(last.Detail, tt.code+": ") || last.ClientID == "" {
				t.Errorf("audit: %d events (was %d), newest %+v; want one more failure starting %q", len(evs), nBefore, last, tt.code)
			}
			if strings.Contains(last.Detail, parts[2][:16]) {
				t.Errorf("audit detail holds the subject token: %s", last.Detail)
			}
			fmt.Fprintf(&bodies, "%s: %d %s", tt.name, s, body)
		})
	}
	golden(t, ts, "token_exchange_errors", bodies.String())
}

// TestTokenExchangeRevokedSubject: a subject token that is expired, was
// revoked, or whose user was revoked (reset) or disabled cannot be
// exchanged (invalid_grant); and revoking the user revokes the tokens
// already exchanged (introspection), as it does every access token.
func TestTokenExchangeRevokedSubject(t *testing.T) {
	ctx := t.Context()
	for _, tt := range []struct {
		name   string
		revoke func(ts *testServer, subject tokenResponse)
	}{
		{"expired", func(ts *testServer, _ tokenResponse) { ts.Clock.Advance(10 * time.Minute) }},
		{"token revoked", func(ts *testServer, subject tokenResponse) {
			if s, _, b := ts.post(t, "/revoke", url.Values{"token": {subject.AccessToken}, "client_id": {publicClient}}, "", ""); s != 200 {
				t.Fatalf("revoke = %d %s", s, b)
			}
		}},
		{"authorization revoked", func(ts *testServer, subject tokenResponse) {
			if s, _, b := ts.post(t, "/revoke", url.Values{"token": {subject.RefreshToken}, "client_id": {publicClient}}, "", ""); s != 200 {
				t.Fatalf("revoke = %d %s", s, b)
			}
		}},
		{"user revoked", func(ts *testServer, _ tokenResponse) {
			_, err := ts.Store.ResetUser(ctx, ts.userID, ts.Clock.Now(), func(u storage.User) (storage.User, error) { return u, nil })
			must(t, err)
		}},
		{"user disabled", func(ts *testServer, _ tokenResponse) {
			_, err := ts.Store.UpdateUser(ctx, ts.userID, func(u storage.User) (storage.User, error) { u.DisabledAt = ts.Clock.Now(); return u, nil })
			must(t, err)
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ts := newExchangeServer(t)
			a := defaultAuth()
			subject := ts.redeem(t, a, ts.code(t, a))
			before, _ := ts.exchangeOK(t, exForm(subject.AccessToken, exAPI, ""), exGateway, exGatewaySec)
			tt.revoke(ts, subject)
			s, _, body := ts.post(t, "/token", exForm(subject.AccessToken, exAPI, ""), exGateway, exGatewaySec)
			assertOAuthError(t, s, body, 400, "invalid_grant")
			if (tt.name == "user revoked" || tt.name == "authorization revoked") && ts.introspect(t, before.AccessToken) {
				t.Errorf("a token exchanged before the revocation is still active at introspection")
			}
		})
	}
}

// TestTokenExchangeDisabled: without a policy the grant is not offered
// (metadata) and refused as unsupported; with one, metadata lists it.
func TestTokenExchangeDisabled(t *testing.T) {
	ts := newTestServer(t, nil)
	s, _, body := ts.post(t, "/token", exForm("x.y.z", testResource, ""), confClient, confSecret)
	assertOAuthError(t, s, body, 400, "unsupported_grant_type")
	grants := func(ts *testServer) []string {
		var m struct {
			GrantTypes []string `json:"grant_types_supported"`
		}
		resp, err := http.Get(ts.URL + "/.well-known/oauth-authorization-server")
		must(t, err)
		must(t, json.Unmarshal([]byte(readAll(resp)), &m))
		return m.GrantTypes
	}
	if slices.Contains(grants(ts), gtTokenExchange) {
		t.Errorf("metadata lists token exchange without a policy")
	}
	if !slices.Contains(grants(newExchangeServer(t)), gtTokenExchange) {
		t.Errorf("metadata does not list token exchange with a policy")
	}
}

// TestTokenExchangePolicyOptions: a bad policy is refused by New.
func TestTokenExchangePolicyOptions(t *testing.T) {
	for _, te := range []TokenExchange{
		{Clients: []ExchangeClient{{ClientID: "a", Audiences: []string{exAPI}}}},
		{Clients: []ExchangeClient{{ClientID: "a", SubjectAudiences: []string{testResource}}}},
		{Clients: []ExchangeClient{{ClientID: "a", SubjectAudiences: []string{"not a uri"}, Audiences: []string{exAPI}}}},
		{Clients: []ExchangeClient{{SubjectAudiences: []string{testResource}, Audiences: []string{exAPI}}}},
		{Lifetime: time.Millisecond, Clients: []ExchangeClient{{ClientID: "a", SubjectAudiences: []string{testResource}, Audiences: []string{exAPI}}}},
	} {
		if _, err := newExchangePolicies(&te); err == nil {
			t.Errorf("newExchangePolicies(%+v) = nil error", te)
		}
	}
}

// TestTokenExchangeResponseGolden pins the exchange response body (RFC
// 8693 §2.2.1), token masked.
func TestTokenExchangeResponseGolden(t *testing.T) {
	ts := newExchangeServer(t)
	s, h, body := ts.post(t, "/token", exForm(ts.userToken(t, "notes:read"), exAPI, ""), exGateway, exGatewaySec)
	golden(t, ts, "token_exchange_response", fmt.Sprintf("%d %s %s %s", s, h.Get("Content-Type"), h.Get("Cache-Control"), maskTokens(body)))
}

// TestTokenExchangePolicyPairs: a client with several entries (a gateway
// serving several OpenAPI routes) exchanges a token only within the entry
// its subject token fits: a token of one resource is never exchanged for
// the audience of another entry.
func TestTokenExchangePolicyPairs(t *testing.T) {
	ts := newExchangeServerWith(t, []ExchangeClient{
		{ClientID: exGateway, SubjectAudiences: []string{testResource}, Audiences: []string{exAPI}},
		{ClientID: exGateway, SubjectAudiences: []string{exAPI}, Audiences: []string{exMachineAPI}},
	})
	subject := ts.userToken(t, "notes:read")
	r, _ := ts.exchangeOK(t, exForm(subject, exAPI, "notes:read"), exGateway, exGatewaySec)
	status, _, body := ts.post(t, "/token", exForm(subject, exMachineAPI, "notes:read"), exGateway, exGatewaySec)
	if status != http.StatusBadRequest || !strings.Contains(body, `"invalid_target"`) {
		t.Errorf("a token of %s exchanged for %s (the other entry's audience) = %d %s, want 400 invalid_target", testResource, exMachineAPI, status, body)
	}
	// The API's token fits the second entry.
	ts.exchangeOK(t, exForm(r.AccessToken, exMachineAPI, "notes:read"), exGateway, exGatewaySec)
}

// TestTokenExchangeDynamicClients (issue 11's invariant, for this grant):
// a self-registered client (RFC 7591) or a metadata-document client is
// refused with unauthorized_client even when the policy names it and it
// authenticates, and nothing is stored.
func TestTokenExchangeDynamicClients(t *testing.T) {
	for _, origin := range []storage.ClientOrigin{storage.OriginDCR, storage.OriginCIMD} {
		t.Run(string(origin), func(t *testing.T) {
			const id, secret = "dyn-client", "dyn-client-secret-0123456789"
			ts := newExchangeServerWith(t, []ExchangeClient{{ClientID: id, SubjectAudiences: []string{testResource}, Audiences: []string{exAPI}}})
			now := ts.Clock.Now()
			must(t, ts.Store.CreateClient(t.Context(), storage.Client{
				ID: id, Name: "Dynamic", SecretHash: token.Hash(secret), GrantTypes: []string{"client_credentials"},
				TokenEndpointAuthMethod: "client_secret_basic", ApplicationType: "web", ResponseTypes: []string{"code"},
				Origin: origin, Metadata: "{}", CreatedAt: now, UpdatedAt: now,
			}))
			subject := ts.userToken(t, "notes:read")
			before := ts.snapshot(t)
			s, _, body := ts.post(t, "/token", exForm(subject, exAPI, "notes:read"), id, secret)
			assertOAuthError(t, s, body, http.StatusBadRequest, "unauthorized_client")
			if !strings.Contains(body, "self-registered") {
				t.Errorf("refusal %s does not name the rule", body)
			}
			if ts.snapshot(t) != before {
				t.Error("storage changed")
			}
		})
	}
}
