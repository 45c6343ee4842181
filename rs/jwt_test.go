package rs

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse-mcp/gatehouse/internal/oauth"
	jose "github.com/go-jose/go-jose/v4"
	"github.com/google/go-cmp/cmp"
)

func TestJWTVerifyValid(t *testing.T) {
	a := newTestAS(t)
	c := newClock()
	v := newVerifier(t, a, c, nil)
	tok := a.token(func(m map[string]any) { m["auth_time"] = t0.Add(-time.Hour).Unix() })
	got, err := v.Verify(t.Context(), tok)
	if err != nil {
		t.Fatalf("Verify(%q) = %v, want nil error", short(tok), err)
	}
	want := &TokenInfo{
		Subject:   "user-1",
		ClientID:  "client-1",
		Scopes:    []string{"notes:read"},
		Issuer:    a.issuer,
		Audience:  []string{testResource},
		Expiry:    t0.Add(5 * time.Minute),
		IssuedAt:  t0,
		NotBefore: t0,
		AuthTime:  t0.Add(-time.Hour),
		ID:        "jti-1",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Verify(%q) mismatch (-want +got):\n%s", short(tok), diff)
	}
}

// TestJWTVerify covers what a token must satisfy, one violation per case.
func TestJWTVerify(t *testing.T) {
	a := newTestAS(t)
	k := a.keys[0]
	other := newECKey(t, "key-1") // same kid, key the AS never published
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	rs256 := &signingKey{kid: "key-1", alg: "RS256", priv: rsaKey}
	jwkJSON, _ := jose.JSONWebKey{Key: k.priv.Public(), KeyID: k.kid, Algorithm: "ES256", Use: "sig"}.MarshalJSON()

	attacker := newECKey(t, "evil")
	var attackerHits atomic.Int64
	attackerSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		attackerHits.Add(1)
		b, _ := jose.JSONWebKey{Key: attacker.priv.Public(), KeyID: "evil", Algorithm: "ES256"}.MarshalJSON()
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"keys":[%s]}`, b)
	}))
	defer attackerSrv.Close()
	attackerJWK := func() map[string]any {
		b, _ := jose.JSONWebKey{Key: attacker.priv.Public(), KeyID: "key-1", Algorithm: "ES256"}.MarshalJSON()
		var m map[string]any
		json.Unmarshal(b, &m)
		return m
	}()

	with := func(mod func(map[string]any)) map[string]any {
		c := a.claims()
		mod(c)
		return c
	}
	hdr := func(mod func(map[string]any)) map[string]any {
		h := header(k)
		mod(h)
		return h
	}

	tests := []struct {
		name  string
		token string
		skew  time.Duration
		want  error // nil: accepted
	}{
		{"valid", a.token(nil), 0, nil},
		{"expired", a.token(func(c map[string]any) { c["exp"] = t0.Add(-time.Second).Unix() }), 0, ErrExpired},
		{"expires now (strict)", a.token(func(c map[string]any) { c["exp"] = t0.Unix() }), 0, ErrExpired},
		{"expired within skew", a.token(func(c map[string]any) { c["exp"] = t0.Add(-10 * time.Second).Unix() }), 30 * time.Second, nil},
		{"expired beyond skew", a.token(func(c map[string]any) { c["exp"] = t0.Add(-31 * time.Second).Unix() }), 30 * time.Second, ErrExpired},
		{"not yet valid", a.token(func(c map[string]any) { c["nbf"] = t0.Add(time.Second).Unix() }), 0, ErrNotYetValid},
		{"not yet valid within skew", a.token(func(c map[string]any) { c["nbf"] = t0.Add(10 * time.Second).Unix() }), 30 * time.Second, nil},
		{"fractional exp", a.token(func(c map[string]any) { c["exp"] = float64(t0.Unix()) + 0.5 }), 0, nil},
		{"wrong issuer", a.token(func(c map[string]any) { c["iss"] = "https://evil.example.com" }), 0, ErrIssuer},
		{"issuer with trailing slash", a.token(func(c map[string]any) { c["iss"] = a.issuer + "/" }), 0, ErrIssuer},
		{"another resource of the same AS", a.token(func(c map[string]any) { c["aud"] = "https://mcp.example.com/other" }), 0, ErrAudience},
		{"resource prefix is not the resource", a.token(func(c map[string]any) { c["aud"] = "https://mcp.example.com/mcp/x" }), 0, ErrAudience},
		{"audience array naming the resource", a.token(func(c map[string]any) { c["aud"] = []string{"https://x.example.com", testResource} }), 0, nil},
		{"audience array without the resource", a.token(func(c map[string]any) { c["aud"] = []string{"https://x.example.com"} }), 0, ErrAudience},
		{"audience in upper case, default port", a.token(func(c map[string]any) { c["aud"] = "HTTPS://MCP.Example.COM:443/mcp" }), 0, nil},
		{"audience as number", a.token(func(c map[string]any) { c["aud"] = 7 }), 0, ErrMalformed},
		{"alg none", unsigned(hdr(func(h map[string]any) { h["alg"] = "none" }), a.claims()), 0, ErrAlgorithm},
		{"HS256 keyed with the public key (PEM)", signHS256(hdr(func(h map[string]any) { h["alg"] = "HS256" }), a.claims(), publicPEM(t, k)), 0, ErrAlgorithm},
		{"HS256 keyed with the public key (JWK)", signHS256(hdr(func(h map[string]any) { h["alg"] = "HS256" }), a.claims(), jwkJSON), 0, ErrAlgorithm},
		{"RS256 not in the allowlist", sign(t, header(rs256), a.claims(), rs256), 0, ErrAlgorithm},
		{"unknown kid", sign(t, hdr(func(h map[string]any) { h["kid"] = "nope" }), a.claims(), k), 0, ErrUnknownKey},
		{"signed by another key", sign(t, header(other), a.claims(), other), 0, ErrSignature},
		{"tampered payload", tamperPayload(a.token(nil), with(func(c map[string]any) { c["scope"] = "notes:read notes:write" })), 0, ErrSignature},
		{"tampered subject", tamperPayload(a.token(nil), with(func(c map[string]any) { c["sub"] = "admin" })), 0, ErrSignature},
		{"typ JWT", sign(t, hdr(func(h map[string]any) { h["typ"] = "JWT" }), a.claims(), k), 0, ErrType},
		{"no typ", sign(t, hdr(func(h map[string]any) { delete(h, "typ") }), a.claims(), k), 0, ErrType},
		{"typ application/at+jwt", sign(t, hdr(func(h map[string]any) { h["typ"] = "application/at+jwt" }), a.claims(), k), 0, nil},
		{"typ AT+JWT", sign(t, hdr(func(h map[string]any) { h["typ"] = "AT+JWT" }), a.claims(), k), 0, nil},
		{"jku to the attacker's keys", sign(t, hdr(func(h map[string]any) { h["kid"] = "evil"; h["jku"] = attackerSrv.URL }), a.claims(), attacker), 0, ErrUnknownKey},
		{"x5u to the attacker's keys", sign(t, hdr(func(h map[string]any) { h["kid"] = "evil"; h["x5u"] = attackerSrv.URL }), a.claims(), attacker), 0, ErrUnknownKey},
		{"embedded jwk of the attacker", sign(t, hdr(func(h map[string]any) { h["jwk"] = attackerJWK }), a.claims(), attacker), 0, ErrSignature},
		{"oversized", a.token(func(c map[string]any) { c["pad"] = strings.Repeat("x", DefaultMaxTokenBytes) }), 0, ErrTooLarge},
		{"not a JWS", "not-a-token", 0, ErrMalformed},
		{"JWE shape", "a.b.c.d.e", 0, ErrMalformed},
		{"bad base64", "e30.e30.!!!", 0, ErrMalformed},
		{"claims not JSON", signPayload(t, header(k), []byte("not json"), k), 0, ErrMalformed},
		{"exp as string", a.token(func(c map[string]any) { c["exp"] = "tomorrow" }), 0, ErrMalformed},
		{"exp out of range", a.token(func(c map[string]any) { c["exp"] = 1e300 }), 0, ErrMalformed},
	}
	add := func(name, token string, want error) {
		tests = append(tests, struct {
			name  string
			token string
			skew  time.Duration
			want  error
		}{name, token, 0, want})
	}

	// More header confusion: the HMAC key as the public key's DER and raw
	// point too, an EdDSA key, crit, a duplicated header member (go-jose
	// refuses it; the ES256 fast path must not take it), and the JSON
	// serializations (compact only).
	der, err := x509.MarshalPKIXPublicKey(k.priv.Public())
	if err != nil {
		t.Fatal(err)
	}
	point, err := k.priv.Public().(*ecdsa.PublicKey).Bytes()
	if err != nil {
		t.Fatal(err)
	}
	_, edPriv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ed := &signingKey{kid: "key-1", alg: "EdDSA", priv: edPriv}
	hs := hdr(func(h map[string]any) { h["alg"] = "HS256" })
	add("HS256 keyed with the public key (DER)", signHS256(hs, a.claims(), der), ErrAlgorithm)
	add("HS256 keyed with the public key (uncompressed point)", signHS256(hs, a.claims(), point), ErrAlgorithm)
	add("EdDSA not in the allowlist", sign(t, header(ed), a.claims(), ed), ErrAlgorithm)
	// go-jose parses a crit it does not understand and refuses it when
	// verifying: the reason is "invalid signature".
	add("crit with an unknown header", sign(t, hdr(func(h map[string]any) { h["crit"] = []string{"exp"}; h["exp"] = 1 }), a.claims(), k), ErrSignature)
	claimsJSON, _ := json.Marshal(a.claims())
	add("duplicated kid in the header", signRaw(t, []byte(`{"alg":"ES256","kid":"`+k.kid+`","kid":"`+k.kid+`","typ":"at+jwt"}`), claimsJSON, k), ErrMalformed)
	add("duplicated alg in the header", signRaw(t, []byte(`{"alg":"ES256","alg":"ES256","kid":"`+k.kid+`","typ":"at+jwt"}`), claimsJSON, k), ErrMalformed)
	parts := strings.Split(a.token(nil), ".")
	add("flattened JSON serialization", fmt.Sprintf(`{"protected":%q,"payload":%q,"signature":%q}`, parts[0], parts[1], parts[2]), ErrMalformed)
	add("general JSON serialization", fmt.Sprintf(`{"payload":%q,"signatures":[{"protected":%q,"signature":%q}]}`, parts[1], parts[0], parts[2]), ErrMalformed)

	// Issue 20 F8: the claims set is read with exact member names, each
	// at most once. A claim rs reads spelled in another case is refused
	// (not ignored, not folded), alone or next to the real one; a member
	// repeated is refused whatever its values, even spelled with escapes.
	// Members inside nested values are not rs's business.
	valid := string(claimsJSON)
	withMembers := func(members string) []byte { return []byte(valid[:len(valid)-1] + "," + members + "}") }
	renamed := func(claim, to string) []byte {
		return []byte(strings.Replace(valid, `"`+claim+`":`, `"`+to+`":`, 1))
	}
	claimValues := map[string][2]string{ // a valid value, another value
		"iss":       {fmt.Sprintf("%q", a.issuer), `"https://evil.example.com"`},
		"sub":       {`"user-1"`, `"admin"`},
		"aud":       {fmt.Sprintf("%q", testResource), `"https://other.example.com"`},
		"exp":       {fmt.Sprint(t0.Add(5 * time.Minute).Unix()), fmt.Sprint(t0.Add(100 * time.Hour).Unix())},
		"nbf":       {fmt.Sprint(t0.Unix()), fmt.Sprint(t0.Add(time.Hour).Unix())},
		"iat":       {fmt.Sprint(t0.Unix()), fmt.Sprint(t0.Add(-time.Hour).Unix())},
		"auth_time": {fmt.Sprint(t0.Unix()), fmt.Sprint(t0.Add(-time.Hour).Unix())},
		"jti":       {`"jti-1"`, `"jti-2"`},
		"client_id": {`"client-1"`, `"client-2"`},
		"scope":     {`"notes:read"`, `"notes:read notes:write"`},
	}
	for _, claim := range []string{"iss", "sub", "aud", "exp", "nbf", "iat", "auth_time", "jti", "client_id", "scope"} {
		vals := claimValues[claim]
		upper, title := strings.ToUpper(claim), strings.ToUpper(claim[:1])+claim[1:]
		for _, variant := range []string{upper, title} {
			if strings.Contains(valid, `"`+claim+`":`) {
				add(fmt.Sprintf("%q instead of %q", variant, claim), signPayload(t, header(k), renamed(claim, variant), k), ErrMalformed)
			}
			add(fmt.Sprintf("%q next to %q", variant, claim), signPayload(t, header(k), withMembers(fmt.Sprintf("%q:%s", variant, vals[1])), k), ErrMalformed)
		}
		if strings.Contains(valid, `"`+claim+`":`) {
			add(fmt.Sprintf("%q twice, same value", claim), signPayload(t, header(k), withMembers(fmt.Sprintf("%q:%s", claim, vals[0])), k), ErrMalformed)
			add(fmt.Sprintf("%q twice, other value last", claim), signPayload(t, header(k), withMembers(fmt.Sprintf("%q:%s", claim, vals[1])), k), ErrMalformed)
		} else {
			add(fmt.Sprintf("%q twice", claim), signPayload(t, header(k), withMembers(fmt.Sprintf("%q:%s,%q:%s", claim, vals[0], claim, vals[1])), k), ErrMalformed)
		}
	}
	add(`"ſub" (long s) next to "sub"`, signPayload(t, header(k), withMembers(`"ſub":"admin"`), k), ErrMalformed)
	add(`"ſcope" (long s) next to "scope"`, signPayload(t, header(k), withMembers(`"ſcope":"notes:write"`), k), ErrMalformed)
	add(`"aud" twice, the second escaped`, signPayload(t, header(k), withMembers(`"aud":"https://other.example.com"`), k), ErrMalformed)
	add("a private claim twice", signPayload(t, header(k), withMembers(`"gid":"grant-2"`), k), ErrMalformed)
	add("duplicates inside a nested value", signPayload(t, header(k), withMembers(`"act":{"sub":"a","sub":"b"}`), k), nil)
	// cnf is read (RFC 9449 §6.1), as strictly as the claims.
	add("cnf.jkt twice", signPayload(t, header(k), withMembers(`"cnf":{"jkt":"a","jkt":"b"}`), k), ErrMalformed)
	add("cnf.JKT", signPayload(t, header(k), withMembers(`"cnf":{"JKT":"a"}`), k), ErrMalformed)
	add("cnf not an object", signPayload(t, header(k), withMembers(`"cnf":"a"`), k), ErrMalformed)
	add("a private claim that only resembles one", signPayload(t, header(k), withMembers(`"AUDIENCE":"x","subject":"y"`), k), nil)
	add("claims an array", signPayload(t, header(k), []byte(`[`+valid+`]`), k), ErrMalformed)
	add("claims followed by more JSON", signPayload(t, header(k), []byte(valid+`{}`), k), ErrMalformed)

	for _, claim := range []string{"iss", "sub", "aud", "exp", "iat", "jti", "client_id"} {
		tests = append(tests, struct {
			name  string
			token string
			skew  time.Duration
			want  error
		}{"missing " + claim, a.token(func(c map[string]any) { delete(c, claim) }), 0, ErrMissingClaim})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := newVerifier(t, a, newClock(), func(o *JWTOptions) { o.ClockSkew = tt.skew })
			_, err := v.Verify(t.Context(), tt.token)
			switch {
			case tt.want == nil && err != nil:
				t.Errorf("Verify(%q) = %v, want nil", short(tt.token), err)
			case tt.want != nil && (!errors.Is(err, tt.want) || !errors.Is(err, ErrInvalidToken)):
				t.Errorf("Verify(%q) = %v, want %v (and %v)", short(tt.token), err, tt.want, ErrInvalidToken)
			}
		})
	}
	if n := attackerHits.Load(); n != 0 {
		t.Errorf("the attacker's key server got %d requests, want 0 (jku/x5u must be ignored)", n)
	}
}

func TestNewJWTVerifierOptions(t *testing.T) {
	base := JWTOptions{Issuer: "https://as.example.com", Resource: testResource}
	tests := []struct {
		name    string
		mod     func(*JWTOptions)
		wantErr bool
	}{
		{"defaults", func(*JWTOptions) {}, false},
		{"no issuer", func(o *JWTOptions) { o.Issuer = "" }, true},
		{"issuer with query", func(o *JWTOptions) { o.Issuer = "https://as.example.com?x=1" }, true},
		{"no resource", func(o *JWTOptions) { o.Resource = "" }, true},
		{"resource with fragment", func(o *JWTOptions) { o.Resource = testResource + "#x" }, true},
		{"alg none", func(o *JWTOptions) { o.Algorithms = []string{"none"} }, true},
		{"alg HS256", func(o *JWTOptions) { o.Algorithms = []string{"ES256", "HS256"} }, true},
		{"empty algorithms", func(o *JWTOptions) { o.Algorithms = []string{} }, true},
		{"several asymmetric algorithms", func(o *JWTOptions) { o.Algorithms = []string{"ES256", "RS256", "EdDSA", "PS256"} }, false},
		{"negative skew", func(o *JWTOptions) { o.ClockSkew = -time.Second }, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := base
			tt.mod(&o)
			_, err := NewJWTVerifier(o)
			if (err != nil) != tt.wantErr {
				t.Errorf("NewJWTVerifier(%+v) error = %v, want error: %v", o, err, tt.wantErr)
			}
		})
	}
}

func TestJWTVerifyRS256Allowed(t *testing.T) {
	a := newTestAS(t)
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	k := &signingKey{kid: "rsa-1", alg: "RS256", priv: rsaKey}
	a.publish(k)
	v := newVerifier(t, a, newClock(), func(o *JWTOptions) { o.Algorithms = []string{"ES256", "RS256"} })
	tok := sign(t, header(k), a.claims(), k)
	if _, err := v.Verify(t.Context(), tok); err != nil {
		t.Errorf("Verify(%q) = %v, want nil", short(tok), err)
	}
	// An ES256 header on the RSA key's kid: the key names RS256.
	es := a.keys[0]
	tok = sign(t, map[string]any{"alg": "ES256", "kid": "rsa-1", "typ": "at+jwt"}, a.claims(), es)
	if _, err := v.Verify(t.Context(), tok); !errors.Is(err, ErrAlgorithm) {
		t.Errorf("Verify(%q) = %v, want %v", short(tok), err, ErrAlgorithm)
	}
}

// TestJWKSRefetchBounded checks that unknown kids cause at most one JWKS
// fetch per MinRefreshInterval, however many arrive, and that a fetch in
// flight is shared.
func TestJWKSRefetchBounded(t *testing.T) {
	a := newTestAS(t)
	c := newClock()
	v := newVerifier(t, a, c, func(o *JWTOptions) { o.MinRefreshInterval = 10 * time.Second })
	k := a.keys[0]
	ctx := t.Context()
	if _, err := v.Verify(ctx, a.token(nil)); err != nil {
		t.Fatalf("Verify(valid) = %v, want nil", err)
	}
	if got, want := a.jwksFetches.Load(), int64(1); got != want {
		t.Fatalf("JWKS fetches after the first token = %d, want %d", got, want)
	}
	bogus := func(i int) string {
		return sign(t, map[string]any{"alg": "ES256", "kid": fmt.Sprintf("bogus-%d", i), "typ": "at+jwt"}, a.claims(), k)
	}
	flood := func(n int) {
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				if _, err := v.Verify(ctx, bogus(i)); !errors.Is(err, ErrUnknownKey) {
					t.Errorf("Verify(bogus kid) = %v, want %v", err, ErrUnknownKey)
				}
			})
		}
		wg.Wait()
	}
	flood(200)
	if got, want := a.jwksFetches.Load(), int64(1); got != want {
		t.Errorf("JWKS fetches after 200 unknown kids within the interval = %d, want %d", got, want)
	}
	c.Advance(10 * time.Second)
	flood(200)
	if got, want := a.jwksFetches.Load(), int64(2); got != want {
		t.Errorf("JWKS fetches after 200 unknown kids in the next interval = %d, want %d", got, want)
	}

	// A real rotation inside the interval waits for the next one.
	k2 := newECKey(t, "key-2")
	a.publish(k2)
	tok2 := sign(t, header(k2), a.claims(), k2)
	if _, err := v.Verify(ctx, tok2); !errors.Is(err, ErrUnknownKey) {
		t.Errorf("Verify(new kid, rate-limited) = %v, want %v", err, ErrUnknownKey)
	}
	c.Advance(10 * time.Second)
	if _, err := v.Verify(ctx, tok2); err != nil {
		t.Errorf("Verify(new kid, next interval) = %v, want nil", err)
	}
	if got, want := a.jwksFetches.Load(), int64(3); got != want {
		t.Errorf("JWKS fetches after the rotation = %d, want %d", got, want)
	}
	if got, want := a.metaFetches.Load(), int64(1); got != want {
		t.Errorf("metadata fetches = %d, want %d (jwks_uri is discovered once)", got, want)
	}
}

// TestJWKSBackgroundRefresh checks that keys older than MaxKeyAge keep
// working while a refetch runs, and that a key removed from the JWKS stops
// working after it.
func TestJWKSBackgroundRefresh(t *testing.T) {
	a := newTestAS(t)
	c := newClock()
	v := newVerifier(t, a, c, func(o *JWTOptions) { o.MaxKeyAge = time.Minute })
	ctx := t.Context()
	old := a.keys[0]
	tok := a.token(func(m map[string]any) { m["exp"] = t0.Add(time.Hour).Unix() })
	if _, err := v.Verify(ctx, tok); err != nil {
		t.Fatalf("Verify = %v", err)
	}
	// Rotate: the AS drops key-1.
	a.mu.Lock()
	a.keys = []*signingKey{newECKey(t, "key-2")}
	a.mu.Unlock()
	c.Advance(time.Minute)
	if _, err := v.Verify(ctx, tok); err != nil {
		t.Fatalf("Verify with stale keys = %v, want nil (served while refreshing)", err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for v.keys.keys.Load().lookup(old.kid) != nil {
		if time.Now().After(deadline) {
			t.Fatal("background refresh did not replace the keys")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if _, err := v.Verify(ctx, tok); !errors.Is(err, ErrUnknownKey) {
		t.Errorf("Verify(removed key) = %v, want %v", err, ErrUnknownKey)
	}
}

// TestJWTVerifyUnavailable checks that an unreachable authorization server
// is ErrUnavailable, not an invalid token, and is not retried per request.
func TestJWTVerifyUnavailable(t *testing.T) {
	a := newTestAS(t)
	tok := a.token(nil)
	var hits atomic.Int64
	down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		http.Error(w, "down", http.StatusBadGateway)
	}))
	defer down.Close()
	c := newClock()
	v, err := NewJWTVerifier(JWTOptions{Issuer: a.issuer, Resource: testResource, JWKSURL: down.URL + "/jwks", Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	for range 5 {
		_, err := v.Verify(t.Context(), tok)
		if !errors.Is(err, ErrUnavailable) || errors.Is(err, ErrInvalidToken) {
			t.Errorf("Verify(%q) with the JWKS down = %v, want %v only", short(tok), err, ErrUnavailable)
		}
	}
	if got := hits.Load(); got != 1 {
		t.Errorf("JWKS requests = %d, want 1", got)
	}
}

func TestParseKeys(t *testing.T) {
	ec := newECKey(t, "ec")
	jwk := func(k any, kid, alg, use string) json.RawMessage {
		b, err := jose.JSONWebKey{Key: k, KeyID: kid, Algorithm: alg, Use: use}.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	dupA, dupB := newECKey(t, "dup"), newECKey(t, "dup")
	raw := []json.RawMessage{
		jwk(ec.priv.Public(), "ec", "ES256", "sig"),
		jwk([]byte("0123456789abcdef0123456789abcdef"), "oct", "HS256", "sig"),
		jwk(ec.priv.Public(), "enc", "", "enc"),
		jwk(small.Public(), "rsa-small", "RS256", "sig"),
		jwk(ec.priv.Public(), "es384-named", "ES384", "sig"),
		jwk(ec.priv, "private", "ES256", "sig"),
		jwk(dupA.priv.Public(), "dup", "ES256", "sig"),
		jwk(dupB.priv.Public(), "dup", "ES256", "sig"),
		json.RawMessage(`{"kty":"weird","kid":"x"}`),
	}
	snap, err := parseKeys(raw, map[string]bool{"ES256": true})
	if err != nil {
		t.Fatal(err)
	}
	var kids []string
	for _, k := range snap.all {
		kids = append(kids, k.kid)
	}
	if diff := cmp.Diff([]string{"ec"}, kids); diff != "" {
		t.Errorf("parseKeys kept kids (-want +got):\n%s", diff)
	}
	if _, err := parseKeys(raw[1:2], map[string]bool{"ES256": true}); err == nil {
		t.Error("parseKeys(only an oct key) = nil error, want error")
	}
}

func TestDiscovery(t *testing.T) {
	var paths []string
	var mu sync.Mutex
	var issuer string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		paths = append(paths, r.URL.Path)
		mu.Unlock()
		switch r.URL.Path {
		case "/.well-known/openid-configuration/tenant":
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprintf(w, `{"issuer":%q,"jwks_uri":"https://as.example.com/jwks"}`, issuer)
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	issuer = srv.URL + "/tenant"
	m, err := discover(t.Context(), srv.Client(), issuer, func(*oauth.ServerMetadata) error { return nil })
	if err != nil {
		t.Fatalf("discover(%q) = %v", issuer, err)
	}
	if m.JWKSURI != "https://as.example.com/jwks" {
		t.Errorf("discover(%q).JWKSURI = %q", issuer, m.JWKSURI)
	}
	want := []string{"/.well-known/oauth-authorization-server/tenant", "/.well-known/openid-configuration/tenant"}
	if diff := cmp.Diff(want, paths); diff != "" {
		t.Errorf("discovery order (-want +got):\n%s", diff)
	}
	// An issuer mismatch is never accepted.
	if _, err := discover(t.Context(), srv.Client(), srv.URL+"/tenant/", func(*oauth.ServerMetadata) error { return nil }); err == nil {
		t.Error("discover(issuer with trailing slash) = nil error, want issuer mismatch")
	}
}

// TestDiscoverMemberTypes: a member rs does not read, of another type
// than RFC 8414 gives it, does not make the document unusable; a member it
// reads does.
func TestDiscoverMemberTypes(t *testing.T) {
	var doc string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, doc)
	}))
	defer srv.Close()
	issuer := srv.URL
	tests := []struct {
		name    string
		doc     string
		wantErr bool
	}{
		{"scopes_supported a string", `{"scopes_supported":"a b","issuer":%q,"jwks_uri":"https://as.example.com/jwks"}`, false},
		{"a flag a string", `{"issuer":%q,"authorization_response_iss_parameter_supported":"true","jwks_uri":"https://as.example.com/jwks"}`, false},
		{"jwks_uri a number", `{"issuer":%q,"jwks_uri":7}`, true},
		{"issuer an array", `{"scopes_supported":"a b","issuer":[%q],"jwks_uri":"https://as.example.com/jwks"}`, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc = fmt.Sprintf(tt.doc, issuer)
			m, err := discover(t.Context(), srv.Client(), issuer, func(m *oauth.ServerMetadata) error {
				if m.JWKSURI == "" {
					return errors.New("no jwks_uri")
				}
				return nil
			})
			if (err != nil) != tt.wantErr {
				t.Fatalf("discover(%s) = %v, want error %v", doc, err, tt.wantErr)
			}
			if err == nil && m.JWKSURI != "https://as.example.com/jwks" {
				t.Errorf("discover(%s).JWKSURI = %q", doc, m.JWKSURI)
			}
		})
	}
}

func TestMetadataURLs(t *testing.T) {
	tests := []struct {
		issuer string
		want   []string
	}{
		{"https://as.example.com", []string{"https://as.example.com/.well-known/oauth-authorization-server", "https://as.example.com/.well-known/openid-configuration"}},
		{"https://as.example.com/t1", []string{
			"https://as.example.com/.well-known/oauth-authorization-server/t1",
			"https://as.example.com/.well-known/openid-configuration/t1",
			"https://as.example.com/t1/.well-known/openid-configuration",
		}},
	}
	for _, tt := range tests {
		got, err := metadataURLs(tt.issuer)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("metadataURLs(%q) (-want +got):\n%s", tt.issuer, diff)
		}
	}
}

func TestCanonicalResource(t *testing.T) {
	tests := []struct {
		in, want string
		wantErr  bool
	}{
		{"https://mcp.example.com/mcp", "https://mcp.example.com/mcp", false},
		{"HTTPS://MCP.Example.com/mcp", "https://mcp.example.com/mcp", false},
		{"https://mcp.example.com", "https://mcp.example.com", false},
		{"https://mcp.example.com/", "https://mcp.example.com", false},
		{"https://mcp.example.com:443/mcp", "https://mcp.example.com/mcp", false},
		{"http://127.0.0.1:80/mcp", "http://127.0.0.1/mcp", false},
		{"http://127.0.0.1:8081/mcp", "http://127.0.0.1:8081/mcp", false},
		{"http://[::1]:80/", "http://[::1]", false},
		{"https://mcp.example.com/mcp/", "https://mcp.example.com/mcp/", false},
		{"https://mcp.example.com/MCP", "https://mcp.example.com/MCP", false},
		{"https://mcp.example.com/mcp#frag", "", true},
		{"ftp://mcp.example.com/", "", true},
		{"/mcp", "", true},
		{"https://user@mcp.example.com/", "", true},
	}
	for _, tt := range tests {
		got, err := CanonicalResource(tt.in)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("CanonicalResource(%q) = %q, %v, want %q (error %v)", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestJWTVerifyContextCanceled(t *testing.T) {
	block := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-block }))
	defer srv.Close()
	defer close(block)
	a := newTestAS(t)
	v, err := NewJWTVerifier(JWTOptions{Issuer: a.issuer, Resource: testResource, JWKSURL: srv.URL, Now: newClock().Now})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	if _, err := v.Verify(ctx, a.token(nil)); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Verify with a hanging JWKS and a 50ms deadline = %v, want %v", err, context.DeadlineExceeded)
	}
}

// TestJWTVerifiedCache checks that a remembered token is still checked
// against the clock and the current JWKS, and that refusals are not
// remembered.
func TestJWTVerifiedCache(t *testing.T) {
	a := newTestAS(t)
	c := newClock()
	v := newVerifier(t, a, c, func(o *JWTOptions) { o.MaxKeyAge = time.Minute })
	ctx := t.Context()
	tok := a.token(func(m map[string]any) { m["exp"] = t0.Add(90 * time.Second).Unix() })
	first, err := v.Verify(ctx, tok)
	if err != nil {
		t.Fatal(err)
	}
	second, err := v.Verify(ctx, tok)
	if err != nil {
		t.Fatalf("Verify(%q) again = %v", short(tok), err)
	}
	if first == second {
		t.Error("Verify returned the same *TokenInfo twice; callers must get their own copy")
	}
	if diff := cmp.Diff(first, second); diff != "" {
		t.Errorf("remembered TokenInfo differs (-first +second):\n%s", diff)
	}
	if n := len(v.verified); n != 1 {
		t.Errorf("cache holds %d tokens, want 1", n)
	}
	// Refused tokens are not remembered.
	v.Verify(ctx, tamperPayload(tok, a.claims()))
	v.Verify(ctx, "a.b.c")
	if n := len(v.verified); n != 1 {
		t.Errorf("cache holds %d tokens after refusals, want 1", n)
	}
	// The key leaves the JWKS: after the refresh the token is refused.
	a.mu.Lock()
	a.keys = []*signingKey{newECKey(t, "key-2")}
	a.mu.Unlock()
	c.Advance(time.Minute)
	v.Verify(ctx, tok) // stale keys: starts the background refresh
	deadline := time.Now().Add(5 * time.Second)
	for v.keys.keys.Load().lookup("key-1") != nil && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if _, err := v.Verify(ctx, tok); !errors.Is(err, ErrUnknownKey) {
		t.Errorf("Verify(remembered token, key withdrawn) = %v, want %v", err, ErrUnknownKey)
	}
}

func TestJWTVerifiedCacheExpiry(t *testing.T) {
	a := newTestAS(t)
	c := newClock()
	v := newVerifier(t, a, c, nil)
	tok := a.token(nil)
	if _, err := v.Verify(t.Context(), tok); err != nil {
		t.Fatal(err)
	}
	c.Advance(5 * time.Minute)
	if _, err := v.Verify(t.Context(), tok); !errors.Is(err, ErrExpired) {
		t.Errorf("Verify(remembered token after exp) = %v, want %v", err, ErrExpired)
	}
	// Disabled cache.
	v = newVerifier(t, a, newClock(), func(o *JWTOptions) { o.VerifiedCacheSize = -1 })
	for range 2 {
		if _, err := v.Verify(t.Context(), tok); err != nil {
			t.Errorf("Verify without cache = %v", err)
		}
	}
	if v.verified != nil {
		t.Error("VerifiedCacheSize -1 left a cache")
	}
}
