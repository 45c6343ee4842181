package as

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/gatehouse-mcp/gatehouse/internal/dpop"
	"github.com/gatehouse-mcp/gatehouse/internal/storage"
)

// dpopKey is a client's DPoP key in a test.
type dpopKey struct {
	priv   *ecdsa.PrivateKey
	signer *dpop.Signer
}

func newDPoPKey(t *testing.T) dpopKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	must(t, err)
	s, err := dpop.NewSigner("ES256", k)
	must(t, err)
	return dpopKey{priv: k, signer: s}
}

// proof signs a proof for a POST to the token endpoint at the test clock's
// time.
func (ts *testServer) proof(t *testing.T, k dpopKey, nonce string) string {
	t.Helper()
	p, err := k.signer.Proof(dpop.ProofClaims{Method: "POST", URL: ts.URL + "/token", IssuedAt: ts.Clock.Now(), Nonce: nonce})
	must(t, err)
	return p
}

// rawProof signs header and claims as given with k (ES256), or as alg none
// or HS256 when the header says so: the proofs dpop.Signer will not make.
func rawProof(t *testing.T, k *ecdsa.PrivateKey, hdr, claims map[string]any) string {
	t.Helper()
	hb, _ := json.Marshal(hdr)
	cb, _ := json.Marshal(claims)
	enc := base64.RawURLEncoding.EncodeToString
	input := enc(hb) + "." + enc(cb)
	switch hdr["alg"] {
	case "none":
		return input + "."
	case "HS256":
		m := hmac.New(sha256.New, []byte("a shared secret of thirty-two by"))
		m.Write([]byte(input))
		return input + "." + enc(m.Sum(nil))
	}
	sum := sha256.Sum256([]byte(input))
	r, s, err := ecdsa.Sign(rand.Reader, k, sum[:])
	must(t, err)
	sig := make([]byte, 64)
	r.FillBytes(sig[:32])
	s.FillBytes(sig[32:])
	return input + "." + enc(sig)
}

func jwkOf(t *testing.T, key any) map[string]any {
	t.Helper()
	b, err := json.Marshal(jose.JSONWebKey{Key: key})
	must(t, err)
	var m map[string]any
	must(t, json.Unmarshal(b, &m))
	return m
}

// postDPoP posts a token request with the DPoP headers given.
func (ts *testServer) postDPoP(t *testing.T, form url.Values, basicUser, basicPass string, proofs ...string) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), http.MethodPost, ts.URL+"/token", strings.NewReader(form.Encode()))
	must(t, err)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if basicUser != "" {
		req.SetBasicAuth(url.QueryEscape(basicUser), url.QueryEscape(basicPass))
	}
	for _, p := range proofs {
		req.Header.Add("DPoP", p)
	}
	resp, err := http.DefaultClient.Do(req)
	must(t, err)
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(body)
}

// cnfJKT returns the cnf.jkt claim of an access token ("" if none),
// reading the payload without verifying: the token comes straight from
// the server under test.
func cnfJKT(t *testing.T, tok string) string {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("access token %q is not a JWS", tok)
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	must(t, err)
	var c struct {
		Cnf *struct {
			JKT string `json:"jkt"`
		} `json:"cnf"`
	}
	must(t, json.Unmarshal(b, &c))
	if c.Cnf == nil {
		return ""
	}
	return c.Cnf.JKT
}

func decodeToken(t *testing.T, status int, body string) tokenResponse {
	t.Helper()
	if status != http.StatusOK {
		t.Fatalf("token request = %d %s, want 200", status, body)
	}
	var tr tokenResponse
	must(t, json.Unmarshal([]byte(body), &tr))
	return tr
}

// dpopToken posts a token request that must succeed and returns its response.
func (ts *testServer) dpopToken(t *testing.T, form url.Values, basicUser, basicPass string, proofs ...string) tokenResponse {
	t.Helper()
	s, _, b := ts.postDPoP(t, form, basicUser, basicPass, proofs...)
	return decodeToken(t, s, b)
}

var ccForm = url.Values{"grant_type": {"client_credentials"}, "resource": {testResource}}

// TestDPoPMetadata: the metadata advertises the proof algorithms (RFC 9449
// §5.1), ES256 first.
func TestDPoPMetadata(t *testing.T) {
	ts := newTestServer(t, nil)
	resp, err := http.Get(ts.URL + "/.well-known/oauth-authorization-server")
	must(t, err)
	defer resp.Body.Close()
	var m struct {
		Algs []string `json:"dpop_signing_alg_values_supported"`
	}
	must(t, json.NewDecoder(resp.Body).Decode(&m))
	if len(m.Algs) == 0 || m.Algs[0] != "ES256" {
		t.Errorf("dpop_signing_alg_values_supported = %v, want ES256 first", m.Algs)
	}
}

// TestDPoPBindsAccessToken: a token request with a proof gets token_type
// DPoP and cnf.jkt = the proof key's thumbprint (RFC 9449 §5, §6.1); one
// without stays a bearer token.
func TestDPoPBindsAccessToken(t *testing.T) {
	ts := newTestServer(t, nil)
	k := newDPoPKey(t)
	s, _, b := ts.postDPoP(t, ccForm, confClient, confSecret, ts.proof(t, k, ""))
	tr := decodeToken(t, s, b)
	if tr.TokenType != "DPoP" || cnfJKT(t, tr.AccessToken) != k.signer.JKT() {
		t.Errorf("with a proof: token_type %q, cnf.jkt %q; want DPoP, %q", tr.TokenType, cnfJKT(t, tr.AccessToken), k.signer.JKT())
	}
	// Introspection says so too (RFC 9449 §6.2).
	_, _, ib := ts.post(t, "/introspect", url.Values{"token": {tr.AccessToken}}, confClient, confSecret)
	var intro struct {
		TokenType string `json:"token_type"`
		Cnf       struct {
			JKT string `json:"jkt"`
		} `json:"cnf"`
	}
	must(t, json.Unmarshal([]byte(ib), &intro))
	if intro.TokenType != "DPoP" || intro.Cnf.JKT != k.signer.JKT() {
		t.Errorf("introspection = %s, want token_type DPoP and cnf.jkt %s", ib, k.signer.JKT())
	}
	s, _, b = ts.postDPoP(t, ccForm, confClient, confSecret)
	tr = decodeToken(t, s, b)
	if tr.TokenType != "Bearer" || cnfJKT(t, tr.AccessToken) != "" {
		t.Errorf("without a proof: token_type %q, cnf.jkt %q; want Bearer and none", tr.TokenType, cnfJKT(t, tr.AccessToken))
	}
}

// TestDPoPTokenRefusals is the negative table at the token endpoint: each
// proof is refused with 400 invalid_dpop_proof (RFC 9449 §5), and nothing
// is stored: the authorization code is still unused (it redeems with a
// good proof afterwards), and no jti is recorded.
func TestDPoPTokenRefusals(t *testing.T) {
	ts := newTestServer(t, nil)
	k, other := newDPoPKey(t), newDPoPKey(t)
	now := ts.Clock.Now()
	endpoint := ts.URL + "/token"
	with := func(edit func(h, c map[string]any)) string {
		h := map[string]any{"typ": "dpop+jwt", "alg": "ES256", "jwk": jwkOf(t, &k.priv.PublicKey)}
		c := map[string]any{"jti": "jti-" + t.Name(), "htm": "POST", "htu": endpoint, "iat": now.Unix()}
		edit(h, c)
		return rawProof(t, k.priv, h, c)
	}
	tests := []struct {
		name   string
		proofs []string
		want   string
	}{
		{"proof for another URL (§4.3 item 9)", []string{with(func(h, c map[string]any) { c["htu"] = ts.URL + "/revoke" })}, "for the URL"},
		{"proof for another method (§4.3 item 8)", []string{with(func(h, c map[string]any) { c["htm"] = "GET" })}, `method 'GET'`},
		{"stale iat (§4.3 item 11)", []string{with(func(h, c map[string]any) { c["iat"] = now.Add(-2 * time.Minute).Unix() })}, "ago"},
		{"future iat (§4.3 item 11)", []string{with(func(h, c map[string]any) { c["iat"] = now.Add(time.Minute).Unix() })}, "in the future"},
		{"signed by another key (§4.3 item 6)", []string{with(func(h, c map[string]any) { h["jwk"] = jwkOf(t, &other.priv.PublicKey) })}, "signature"},
		{"alg none (§4.3 item 5)", []string{with(func(h, c map[string]any) { h["alg"] = "none" })}, `alg 'none'`},
		{"alg HS256 (§4.3 item 5)", []string{with(func(h, c map[string]any) { h["alg"] = "HS256" })}, `alg 'HS256'`},
		{"private key in jwk (§4.3 item 7)", []string{with(func(h, c map[string]any) { h["jwk"] = jwkOf(t, k.priv) })}, "private member"},
		{"typ JWT (§4.3 item 4)", []string{with(func(h, c map[string]any) { h["typ"] = "JWT" })}, "typ"},
		{"two DPoP headers (§4.3 item 1)", []string{ts.proof(t, k, ""), ts.proof(t, k, "")}, "more than one DPoP header"},
		{"not a JWT (§4.3 item 2)", []string{"not-a-jwt"}, "not a JWS"},
	}
	code := ts.code(t, defaultAuth())
	before := ts.snapshot(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, _, b := ts.postDPoP(t, exchange(code), "", "", tt.proofs...)
			assertOAuthError(t, s, b, http.StatusBadRequest, "invalid_dpop_proof")
			if !strings.Contains(b, tt.want) {
				t.Errorf("body %s does not say %q", b, tt.want)
			}
			if after := ts.snapshot(t); after != before {
				t.Error("a refused proof changed storage")
			}
		})
	}
	// The code was never consumed: a good proof redeems it.
	good := ts.proof(t, k, "")
	tr := ts.dpopToken(t, exchange(code), "", "", good)
	if tr.TokenType != "DPoP" || cnfJKT(t, tr.AccessToken) != k.signer.JKT() {
		t.Errorf("after the refusals: token_type %q, cnf.jkt %q; want DPoP bound to the key", tr.TokenType, cnfJKT(t, tr.AccessToken))
	}

	t.Run("replayed jti (§11.1)", func(t *testing.T) {
		// The same proof again, with another valid grant: refused, and
		// nothing issued.
		before := ts.snapshot(t)
		s, _, b := ts.postDPoP(t, ccForm, confClient, confSecret, good)
		assertOAuthError(t, s, b, http.StatusBadRequest, "invalid_dpop_proof")
		if !strings.Contains(b, "already used") {
			t.Errorf("body %s does not say the proof was already used", b)
		}
		if ts.snapshot(t) != before {
			t.Error("a replayed proof changed storage")
		}
	})
}

// TestDPoPReplayAcrossReplicas: the jti is recorded in the database, so a
// second server on the same store (another replica) refuses a proof the
// first accepted.
func TestDPoPReplayAcrossReplicas(t *testing.T) {
	ts := newTestServer(t, nil)
	k := newDPoPKey(t)
	proof := ts.proof(t, k, "")
	ts.dpopToken(t, ccForm, confClient, confSecret, proof)
	opts := ts.opts
	replica, err := New(opts)
	must(t, err)
	req, _ := http.NewRequest(http.MethodPost, ts.URL+"/token", strings.NewReader(ccForm.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(confClient, url.QueryEscape(confSecret))
	req.Header.Set("DPoP", proof)
	rec := httptest.NewRecorder()
	replica.ServeHTTP(rec, req)
	assertOAuthError(t, rec.Code, rec.Body.String(), http.StatusBadRequest, "invalid_dpop_proof")
}

// TestDPoPRefreshBound: a refresh token issued with a proof is bound to
// its key (RFC 9449 §5): a refresh without a proof or with another key is
// refused, also inside the retry window after a rotation, and neither
// refusal revokes the family: the key's holder goes on.
func TestDPoPRefreshBound(t *testing.T) {
	ts := newTestServer(t, nil)
	k, other := newDPoPKey(t), newDPoPKey(t)
	code := ts.code(t, defaultAuth())
	first := ts.dpopToken(t, exchange(code), "", "", ts.proof(t, k, ""))
	refresh := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {first.RefreshToken}, "client_id": {publicClient}}

	refused := func(name string, proofs ...string) {
		t.Helper()
		// Another key's proof is valid: its jti is recorded (replay), and
		// nothing else may change.
		before := ts.snapshotWithout(t, "replay")
		s, _, b := ts.postDPoP(t, refresh, "", "", proofs...)
		assertOAuthError(t, s, b, http.StatusBadRequest, "invalid_dpop_proof")
		if ts.snapshotWithout(t, "replay") != before {
			t.Errorf("%s: a refused refresh changed storage", name)
		}
	}
	refused("no proof")
	refused("another key", ts.proof(t, other, ""))

	s, _, b1 := ts.postDPoP(t, refresh, "", "", ts.proof(t, k, ""))
	second := decodeToken(t, s, b1)
	if second.TokenType != "DPoP" || cnfJKT(t, second.AccessToken) != k.signer.JKT() {
		t.Fatalf("refresh with the key: token_type %q, cnf.jkt %q", second.TokenType, cnfJKT(t, second.AccessToken))
	}
	// Inside the retry window: the sealed answer only for the key.
	ts.Clock.Advance(2 * time.Second)
	refused("no proof, retry window")
	refused("another key, retry window", ts.proof(t, other, ""))
	s, _, b2 := ts.postDPoP(t, refresh, "", "", ts.proof(t, k, ""))
	if s != 200 || b2 != b1 {
		t.Fatalf("retry with the key inside the window = %d, identical %v; want 200 and the same answer", s, b2 == b1)
	}
	// The family lives on, still bound.
	next := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {second.RefreshToken}, "client_id": {publicClient}}
	s, _, b := ts.postDPoP(t, next, "", "", ts.proof(t, k, ""))
	if third := decodeToken(t, s, b); cnfJKT(t, third.AccessToken) != k.signer.JKT() {
		t.Errorf("the rotated token's access token is not bound to the key")
	}
}

// TestDPoPNonce: with RequireNonce, a proof without the server's nonce is
// refused with 400 use_dpop_nonce and a DPoP-Nonce header (RFC 9449 §8),
// storing nothing; the retry with it succeeds and gets the nonce again; a
// nonce from two windows ago is refused.
func TestDPoPNonce(t *testing.T) {
	ts := newTestServer(t, func(o *Options) { o.DPoP.RequireNonce = true })
	k := newDPoPKey(t)
	before := ts.snapshot(t)
	s, h, b := ts.postDPoP(t, ccForm, confClient, confSecret, ts.proof(t, k, ""))
	assertOAuthError(t, s, b, http.StatusBadRequest, "use_dpop_nonce")
	nonce := h.Get("DPoP-Nonce")
	if nonce == "" {
		t.Fatal("use_dpop_nonce without a DPoP-Nonce header")
	}
	if ts.snapshot(t) != before {
		t.Error("a proof refused for its nonce changed storage")
	}
	s, _, b = ts.postDPoP(t, ccForm, confClient, confSecret, ts.proof(t, k, "forged"))
	assertOAuthError(t, s, b, http.StatusBadRequest, "use_dpop_nonce")

	s, h, b = ts.postDPoP(t, ccForm, confClient, confSecret, ts.proof(t, k, nonce))
	if tr := decodeToken(t, s, b); tr.TokenType != "DPoP" {
		t.Errorf("with the nonce: token_type %q, want DPoP", tr.TokenType)
	}
	if h.Get("DPoP-Nonce") == "" {
		t.Error("a success with nonces required has no DPoP-Nonce header")
	}
	ts.Clock.Advance(2 * nonceWindow)
	s, _, b = ts.postDPoP(t, ccForm, confClient, confSecret, ts.proof(t, k, nonce))
	assertOAuthError(t, s, b, http.StatusBadRequest, "use_dpop_nonce")
	// A bearer request is not asked for a nonce.
	s, _, b = ts.postDPoP(t, ccForm, confClient, confSecret)
	decodeToken(t, s, b)
}

// TestDPoPBoundClient: a client registered with dpop_bound_access_tokens
// (RFC 9449 §5.2) is refused a token without a proof, and gets a bound one
// with.
func TestDPoPBoundClient(t *testing.T) {
	ts := newTestServer(t, nil)
	_, err := ts.Store.UpdateClient(t.Context(), confClient, func(c storage.Client) (storage.Client, error) { c.DPoPBound = true; return c, nil })
	must(t, err)
	before := ts.snapshot(t)
	s, _, b := ts.postDPoP(t, ccForm, confClient, confSecret)
	assertOAuthError(t, s, b, http.StatusBadRequest, "invalid_dpop_proof")
	if !strings.Contains(b, "dpop_bound_access_tokens") {
		t.Errorf("refusal %s does not name dpop_bound_access_tokens", b)
	}
	if ts.snapshot(t) != before {
		t.Error("the refusal changed storage")
	}
	k := newDPoPKey(t)
	s, _, b = ts.postDPoP(t, ccForm, confClient, confSecret, ts.proof(t, k, ""))
	if tr := decodeToken(t, s, b); cnfJKT(t, tr.AccessToken) != k.signer.JKT() {
		t.Error("a bound client's token is not bound to its proof's key")
	}
}

// TestDPoPCORS: a page's DPoP client may send the DPoP header to /token
// (preflight) and read the DPoP-Nonce of the answer (RFC 9449 §8).
func TestDPoPCORS(t *testing.T) {
	ts := newTestServer(t, func(o *Options) { o.DPoP.RequireNonce = true })
	req, _ := http.NewRequest(http.MethodOptions, ts.URL+"/token", nil)
	req.Header.Set("Origin", "https://app.example.com")
	req.Header.Set("Access-Control-Request-Method", "POST")
	req.Header.Set("Access-Control-Request-Headers", "dpop")
	resp, err := http.DefaultClient.Do(req)
	must(t, err)
	resp.Body.Close()
	if !strings.Contains(resp.Header.Get("Access-Control-Allow-Headers"), "DPoP") {
		t.Errorf("preflight Access-Control-Allow-Headers = %q, want DPoP", resp.Header.Get("Access-Control-Allow-Headers"))
	}
	_, h, _ := ts.postDPoP(t, ccForm, confClient, confSecret, ts.proof(t, newDPoPKey(t), ""))
	if h.Get("DPoP-Nonce") == "" || !strings.Contains(h.Get("Access-Control-Expose-Headers"), "DPoP-Nonce") {
		t.Errorf("use_dpop_nonce answer: DPoP-Nonce %q, Access-Control-Expose-Headers %q; want the nonce exposed", h.Get("DPoP-Nonce"), h.Get("Access-Control-Expose-Headers"))
	}
}
