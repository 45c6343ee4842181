package rs

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/sha256"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// dpopURL is what the protected endpoint's htu must be: the resource's
// public origin (from the metadata URL, not the test listener's address)
// and the request path.
const dpopURL = "https://mcp.example.com/"

// recordingReplay is the memory cache, remembering which keys it took.
type recordingReplay struct {
	ReplayCache
	mu   sync.Mutex
	took []string
}

func (r *recordingReplay) Use(ctx context.Context, key string, exp time.Time) (bool, error) {
	fresh, err := r.ReplayCache.Use(ctx, key, exp)
	if fresh {
		r.mu.Lock()
		r.took = append(r.took, key)
		r.mu.Unlock()
	}
	return fresh, err
}

func (r *recordingReplay) count() int { r.mu.Lock(); defer r.mu.Unlock(); return len(r.took) }

func jktOf(t testing.TB, k *signingKey) string {
	t.Helper()
	pub := k.priv.(*ecdsa.PrivateKey).Public()
	tp, err := (&jose.JSONWebKey{Key: pub}).Thumbprint(crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	return b64.EncodeToString(tp)
}

func jwkMap(t testing.TB, key any) map[string]any {
	t.Helper()
	b, err := json.Marshal(jose.JSONWebKey{Key: key})
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	json.Unmarshal(b, &m)
	return m
}

func ath(tok string) string {
	sum := sha256.Sum256([]byte(tok))
	return b64.EncodeToString(sum[:])
}

// dpopProof signs a proof for a POST of tok to dpopURL at t0 with k,
// edited by edit.
func dpopProof(t testing.TB, k *signingKey, tok string, edit func(h, c map[string]any)) string {
	t.Helper()
	h := map[string]any{"typ": "dpop+jwt", "alg": "ES256", "jwk": jwkMap(t, k.priv.(*ecdsa.PrivateKey).Public())}
	c := map[string]any{"jti": "proof-" + t.Name(), "htm": "POST", "htu": dpopURL, "iat": t0.Unix(), "ath": ath(tok)}
	if edit != nil {
		edit(h, c)
	}
	switch h["alg"] {
	case "none":
		return unsigned(h, c)
	case "HS256":
		return signHS256(h, c, []byte("a shared secret of thirty-two by"))
	}
	return sign(t, h, c, k)
}

func dpopChallenge(code, desc string) string {
	return `DPoP error="` + code + `", error_description="` + desc + `", algs="ES256 EdDSA RS256", resource_metadata="` + testMetadataURL + `"`
}

// doDPoP sends a tools/call with the Authorization header auth and the
// DPoP headers proofs.
func doDPoP(t *testing.T, srv *httptest.Server, auth string, proofs ...string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, srv.URL, strings.NewReader(rpcBody(1, "list_notes")))
	req.Header.Set("Content-Type", "application/json")
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	for _, p := range proofs {
		req.Header.Add("DPoP", p)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(body)
}

// TestRequireBearerDPoP: a DPoP-bound token (cnf.jkt) with a valid proof
// by its key reaches the handler with TokenInfo.JKT set (RFC 9449 §7.1);
// a bearer token still works; the proof's jti is recorded once.
func TestRequireBearerDPoP(t *testing.T) {
	a := newTestAS(t)
	c := newClock()
	mcp := &fakeMCP{}
	replay := &recordingReplay{ReplayCache: NewMemoryReplayCache(0, c.Now)}
	opts := testOptions()
	opts.DPoP = DPoPOptions{Now: c.Now, Replay: replay}
	srv := httptest.NewServer(RequireBearer(newVerifier(t, a, c, nil), opts)(mcp))
	defer srv.Close()
	key := newECKey(t, "client")
	bound := a.token(func(m map[string]any) { m["cnf"] = map[string]any{"jkt": jktOf(t, key)} })

	resp, body := doDPoP(t, srv, "DPoP "+bound, dpopProof(t, key, bound, nil))
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("bound token with its proof = %d %s, want 200", resp.StatusCode, body)
	}
	if info := mcp.info.Load(); info == nil || info.JKT != jktOf(t, key) {
		t.Errorf("TokenInfo.JKT = %v, want the key's thumbprint", info)
	}
	if replay.count() != 1 {
		t.Errorf("replay cache took %d proofs, want 1", replay.count())
	}
	if resp, body := doDPoP(t, srv, "Bearer "+a.token(nil)); resp.StatusCode != http.StatusOK {
		t.Errorf("bearer token = %d %s, want 200", resp.StatusCode, body)
	}
}

// TestRequireBearerDPoPRefuses is the negative table at the resource: each
// request is answered 401 with a DPoP challenge (RFC 9449 §7.1) and the
// right error, the tool never runs, and no refused proof is recorded in
// the replay cache. The MCP DPoP profile (SEP-1932,
// modelcontextprotocol/modelcontextprotocol seps/1932-dpop-extension.md
// lines 33-37, "Stateless DPoP Proof Replay Protection") lets a server
// that keeps no jti state accept iat within ±5 minutes; rs keeps the jti
// (§11.1), so its window is the tighter default of DPoPOptions (60 s
// back, 10 s ahead), and the profile adds no claim (no body digest in
// that revision) for it to check.
func TestRequireBearerDPoPRefuses(t *testing.T) {
	a := newTestAS(t)
	c := newClock()
	mcp := &fakeMCP{}
	replay := &recordingReplay{ReplayCache: NewMemoryReplayCache(0, c.Now)}
	opts := testOptions()
	opts.DPoP = DPoPOptions{Now: c.Now, Replay: replay}
	srv := httptest.NewServer(RequireBearer(newVerifier(t, a, c, nil), opts)(mcp))
	defer srv.Close()
	key, other := newECKey(t, "client"), newECKey(t, "other")
	bound := a.token(func(m map[string]any) { m["cnf"] = map[string]any{"jkt": jktOf(t, key)} })
	plain := a.token(nil)
	proof := func(edit func(h, c map[string]any)) string { return dpopProof(t, key, bound, edit) }
	const bad = "invalid_dpop_proof"

	tests := []struct {
		name   string
		auth   string
		proofs []string
		code   string
		desc   string
	}{
		{"bound token as Bearer (§7.1)", "Bearer " + bound, []string{proof(nil)}, "invalid_token",
			"the access token is DPoP-bound: send it as Authorization: DPoP, with a DPoP proof (RFC 9449 section 7.1)"},
		{"bound token without proof (§7.1)", "DPoP " + bound, nil, bad, "the request has no DPoP header: a DPoP-bound token needs a proof signed by its key"},
		{"unbound token with the DPoP scheme", "DPoP " + plain, []string{dpopProof(t, key, plain, nil)}, "invalid_token", "the access token is not DPoP-bound: send it with the Bearer scheme"},
		{"two DPoP headers (§4.3 item 1)", "DPoP " + bound, []string{proof(nil), proof(nil)}, bad, "the request has more than one DPoP header"},
		{"proof for another URL (§4.3 item 9)", "DPoP " + bound, []string{proof(func(h, c map[string]any) { c["htu"] = "https://mcp.example.com/other" })}, bad,
			"the DPoP proof is for the URL 'https://mcp.example.com/other', this request is for 'https://mcp.example.com/' (htu, RFC 9449 section 4.3)"},
		{"proof for another method (§4.3 item 8)", "DPoP " + bound, []string{proof(func(h, c map[string]any) { c["htm"] = "GET" })}, bad,
			"the DPoP proof is for the method 'GET', this request is POST (htm, RFC 9449 section 4.3)"},
		{"stale iat (§4.3 item 11)", "DPoP " + bound, []string{proof(func(h, c map[string]any) { c["iat"] = t0.Add(-61 * time.Second).Unix() })}, bad,
			"the DPoP proof was issued at 2026-08-01T11:58:59Z, more than 1m0s ago: make a new proof for each request (iat, RFC 9449 section 4.3 item 11, section 11.1)"},
		{"future iat (§4.3 item 11)", "DPoP " + bound, []string{proof(func(h, c map[string]any) { c["iat"] = t0.Add(11 * time.Second).Unix() })}, bad,
			"the DPoP proof was issued at 2026-08-01T12:00:11Z, more than 10s in the future: check the client's clock (iat, RFC 9449 section 4.3 item 11, section 11.1)"},
		{"wrong ath (§4.3 item 12)", "DPoP " + bound, []string{proof(func(h, c map[string]any) { c["ath"] = ath(plain) })}, bad,
			"the DPoP proof's ath is not the hash of this access token (RFC 9449 section 4.3 item 12)"},
		{"no ath (§4.3 item 12)", "DPoP " + bound, []string{proof(func(h, c map[string]any) { delete(c, "ath") })}, bad,
			"the DPoP proof has no ath: a proof sent with an access token must carry its hash (RFC 9449 section 4.2, section 4.3 item 12)"},
		{"proof signed by another key (§4.3 item 12)", "DPoP " + bound, []string{dpopProof(t, other, bound, nil)}, bad,
			"the DPoP proof is signed by another key than the one the access token is bound to"},
		{"jwk of another key than the signature (§4.3 item 6)", "DPoP " + bound, []string{proof(func(h, c map[string]any) { h["jwk"] = jwkMap(t, other.priv.(*ecdsa.PrivateKey).Public()) })}, bad,
			"the DPoP proof's signature does not verify with its jwk"},
		{"alg none (§4.3 item 5)", "DPoP " + bound, []string{proof(func(h, c map[string]any) { h["alg"] = "none" })}, bad,
			"the DPoP proof's alg 'none' is not accepted; accepted: ES256, EdDSA, RS256"},
		{"alg HS256 (§4.3 item 5)", "DPoP " + bound, []string{proof(func(h, c map[string]any) { h["alg"] = "HS256" })}, bad,
			"the DPoP proof's alg 'HS256' is not accepted; accepted: ES256, EdDSA, RS256"},
		{"private key in jwk (§4.3 item 7)", "DPoP " + bound, []string{proof(func(h, c map[string]any) { h["jwk"] = jwkMap(t, key.priv) })}, bad,
			"the DPoP proof's jwk has the private member 'd': it must be the public key only (RFC 9449 section 4.3 item 7)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := doDPoP(t, srv, tt.auth, tt.proofs...)
			if resp.StatusCode != http.StatusUnauthorized {
				t.Errorf("status = %d, want 401 (body %s)", resp.StatusCode, body)
			}
			if got, want := resp.Header.Get("WWW-Authenticate"), dpopChallenge(tt.code, tt.desc); got != want {
				t.Errorf("WWW-Authenticate = %s\nwant                %s", got, want)
			}
			var e struct{ Error string }
			json.Unmarshal([]byte(body), &e)
			if e.Error != tt.code {
				t.Errorf("body error = %q, want %q", e.Error, tt.code)
			}
		})
	}
	if n := mcp.executions(); n != 0 {
		t.Errorf("tool executions = %d, want 0", n)
	}
	if n := replay.count(); n != 0 {
		t.Errorf("the replay cache recorded %d refused proofs, want none", n)
	}

	t.Run("replayed jti (§11.1)", func(t *testing.T) {
		p := proof(nil)
		if resp, body := doDPoP(t, srv, "DPoP "+bound, p); resp.StatusCode != http.StatusOK {
			t.Fatalf("first use = %d %s", resp.StatusCode, body)
		}
		resp, _ := doDPoP(t, srv, "DPoP "+bound, p)
		if want := dpopChallenge(bad, "the DPoP proof was already used: make a new proof for each request"); resp.Header.Get("WWW-Authenticate") != want {
			t.Errorf("replay: %d, WWW-Authenticate = %s, want %s", resp.StatusCode, resp.Header.Get("WWW-Authenticate"), want)
		}
		if n := mcp.executions(); n != 1 {
			t.Errorf("tool executions = %d, want 1 (the first use only)", n)
		}
	})
}

// TestRequireBearerDPoPNonce: with Nonces, a proof without the nonce is
// answered 401 use_dpop_nonce with a DPoP-Nonce header (RFC 9449 §9); the
// retry with it passes; a nonce two periods old is refused again.
func TestRequireBearerDPoPNonce(t *testing.T) {
	a := newTestAS(t)
	c := newClock()
	nonces, err := NewDPoPNonces([]byte(strings.Repeat("k", 32)), time.Minute, c.Now)
	if err != nil {
		t.Fatal(err)
	}
	opts := testOptions()
	opts.DPoP = DPoPOptions{Now: c.Now, Nonces: nonces}
	mcp := &fakeMCP{}
	srv := httptest.NewServer(RequireBearer(newVerifier(t, a, c, nil), opts)(mcp))
	defer srv.Close()
	key := newECKey(t, "client")
	bound := a.token(func(m map[string]any) { m["cnf"] = map[string]any{"jkt": jktOf(t, key)} })

	resp, _ := doDPoP(t, srv, "DPoP "+bound, dpopProof(t, key, bound, nil))
	nonce := resp.Header.Get("DPoP-Nonce")
	want := dpopChallenge("use_dpop_nonce", "this resource requires a nonce in DPoP proofs: make a new proof with the nonce of the DPoP-Nonce header")
	if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("WWW-Authenticate") != want || nonce == "" {
		t.Fatalf("no nonce: %d, WWW-Authenticate %s, DPoP-Nonce %q; want 401, %s and a nonce", resp.StatusCode, resp.Header.Get("WWW-Authenticate"), nonce, want)
	}
	withNonce := func(jti, n string) string {
		return dpopProof(t, key, bound, func(h, c map[string]any) { c["nonce"], c["jti"] = n, jti })
	}
	if resp, body := doDPoP(t, srv, "DPoP "+bound, withNonce("j2", nonce)); resp.StatusCode != http.StatusOK {
		t.Fatalf("with the nonce = %d %s, want 200", resp.StatusCode, body)
	}
	c.Advance(2 * time.Minute)
	stale := dpopProof(t, key, bound, func(h, m map[string]any) { m["nonce"], m["jti"], m["iat"] = nonce, "j3", c.Now().Unix() })
	if resp, _ := doDPoP(t, srv, "DPoP "+bound, stale); resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("DPoP-Nonce") == nonce {
		t.Errorf("a nonce two periods old = %d, new nonce %q; want 401 and another nonce", resp.StatusCode, resp.Header.Get("DPoP-Nonce"))
	}
}

// TestMemoryReplayCacheFull: a full cache of live proofs refuses a new one
// (the request gets 503) rather than forget one that could then be
// replayed; expired entries make room.
func TestMemoryReplayCacheFull(t *testing.T) {
	c := newClock()
	r := NewMemoryReplayCache(2, c.Now)
	ctx := t.Context()
	for _, k := range []string{"a", "b"} {
		if fresh, err := r.Use(ctx, k, c.Now().Add(time.Minute)); !fresh || err != nil {
			t.Fatalf("Use(%s) = %v, %v", k, fresh, err)
		}
	}
	if fresh, _ := r.Use(ctx, "a", c.Now().Add(time.Minute)); fresh {
		t.Error("Use(a) again = fresh, want a replay")
	}
	if _, err := r.Use(ctx, "c", c.Now().Add(time.Minute)); err == nil {
		t.Error("Use(c) on a full cache of live proofs succeeded, want an error")
	}
	c.Advance(2 * time.Minute)
	if fresh, err := r.Use(ctx, "c", c.Now().Add(time.Minute)); !fresh || err != nil {
		t.Errorf("Use(c) after expiry = %v, %v; want fresh", fresh, err)
	}
}
