package rs

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// testResource is the resource the tests protect.
const testResource = "https://mcp.example.com/mcp"

// testMetadataURL is its metadata URL.
const testMetadataURL = "https://mcp.example.com/.well-known/oauth-protected-resource/mcp"

// t0 is the tests' fixed "now".
var t0 = time.Date(2026, 8, 1, 12, 0, 0, 0, time.UTC)

// clock is a settable time source.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *clock { return &clock{now: t0} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// signingKey is a key of the fake authorization server.
type signingKey struct {
	kid  string
	alg  string
	priv crypto.Signer
}

// testAS is a fake authorization server: RFC 8414 metadata and a JWKS,
// counting requests.
type testAS struct {
	t      testing.TB
	srv    *httptest.Server
	issuer string

	mu        sync.Mutex
	keys      []*signingKey // published
	extraJWKS []json.RawMessage

	// cacheControl is the JWKS response's Cache-Control; empty sends none.
	cacheControl string

	jwksFetches atomic.Int64
	metaFetches atomic.Int64
	introspect  func(w http.ResponseWriter, r *http.Request)
}

// newTestAS starts a fake authorization server with one ES256 key.
func newTestAS(t testing.TB) *testAS {
	t.Helper()
	a := &testAS{t: t}
	a.keys = []*signingKey{newECKey(t, "key-1")}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/oauth-authorization-server", func(w http.ResponseWriter, r *http.Request) {
		a.metaFetches.Add(1)
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{
			"issuer":                 a.issuer,
			"jwks_uri":               a.issuer + "/jwks",
			"introspection_endpoint": a.issuer + "/introspect",
		})
	})
	mux.HandleFunc("GET /jwks", func(w http.ResponseWriter, r *http.Request) {
		a.jwksFetches.Add(1)
		w.Header().Set("Content-Type", "application/jwk-set+json")
		a.mu.Lock()
		if a.cacheControl != "" {
			w.Header().Set("Cache-Control", a.cacheControl)
		}
		a.mu.Unlock()
		w.Write(a.jwks())
	})
	mux.HandleFunc("POST /introspect", func(w http.ResponseWriter, r *http.Request) {
		if a.introspect == nil {
			http.NotFound(w, r)
			return
		}
		a.introspect(w, r)
	})
	a.srv = httptest.NewServer(mux)
	t.Cleanup(a.srv.Close)
	a.issuer = a.srv.URL
	return a
}

func newECKey(t testing.TB, kid string) *signingKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return &signingKey{kid: kid, alg: "ES256", priv: k}
}

// jwks returns the published JWKS.
func (a *testAS) jwks() []byte {
	a.mu.Lock()
	defer a.mu.Unlock()
	var keys []json.RawMessage
	for _, k := range a.keys {
		b, err := jose.JSONWebKey{Key: k.priv.Public(), KeyID: k.kid, Algorithm: k.alg, Use: "sig"}.MarshalJSON()
		if err != nil {
			a.t.Fatal(err)
		}
		keys = append(keys, b)
	}
	keys = append(keys, a.extraJWKS...)
	b, _ := json.Marshal(map[string]any{"keys": keys})
	return b
}

// publish adds a key to the JWKS.
func (a *testAS) publish(k *signingKey) {
	a.mu.Lock()
	a.keys = append(a.keys, k)
	a.mu.Unlock()
}

// claims returns valid claims for testResource at t0.
func (a *testAS) claims() map[string]any {
	return map[string]any{
		"iss":       a.issuer,
		"sub":       "user-1",
		"aud":       testResource,
		"exp":       t0.Add(5 * time.Minute).Unix(),
		"iat":       t0.Unix(),
		"nbf":       t0.Unix(),
		"jti":       "jti-1",
		"client_id": "client-1",
		"scope":     "notes:read",
		"gid":       "grant-1",
	}
}

// header returns the header a Gatehouse token has for key k.
func header(k *signingKey) map[string]any {
	return map[string]any{"alg": k.alg, "kid": k.kid, "typ": "at+jwt"}
}

// token signs claims with the first published key and the usual header.
func (a *testAS) token(mod func(c map[string]any)) string {
	c := a.claims()
	if mod != nil {
		mod(c)
	}
	k := a.keys[0]
	return sign(a.t, header(k), c, k)
}

var b64 = base64.RawURLEncoding

// sign builds a compact JWS of hdr and claims signed by k (ES256 or RS256).
func sign(t testing.TB, hdr, claims map[string]any, k *signingKey) string {
	t.Helper()
	p, _ := json.Marshal(claims)
	return signPayload(t, hdr, p, k)
}

// signPayload builds a compact JWS of hdr and an arbitrary payload.
func signPayload(t testing.TB, hdr map[string]any, p []byte, k *signingKey) string {
	t.Helper()
	h, _ := json.Marshal(hdr)
	return signRaw(t, h, p, k)
}

// signRaw builds a compact JWS of an arbitrary header and payload (ES256,
// RS256 or EdDSA by k's key).
func signRaw(t testing.TB, h, p []byte, k *signingKey) string {
	t.Helper()
	input := b64.EncodeToString(h) + "." + b64.EncodeToString(p)
	sum := sha256.Sum256([]byte(input))
	var sig []byte
	switch priv := k.priv.(type) {
	case *ecdsa.PrivateKey:
		r, s, err := ecdsa.Sign(rand.Reader, priv, sum[:])
		if err != nil {
			t.Fatal(err)
		}
		sig = make([]byte, 64)
		r.FillBytes(sig[:32])
		s.FillBytes(sig[32:])
	case *rsa.PrivateKey:
		var err error
		sig, err = rsa.SignPKCS1v15(rand.Reader, priv, crypto.SHA256, sum[:])
		if err != nil {
			t.Fatal(err)
		}
	case ed25519.PrivateKey:
		sig = ed25519.Sign(priv, []byte(input))
	default:
		t.Fatalf("sign: %T", k.priv)
	}
	return input + "." + b64.EncodeToString(sig)
}

// signHS256 builds an HS256 token keyed with secret: the "algorithm
// confusion" attack when secret is the server's public key.
func signHS256(hdr, claims map[string]any, secret []byte) string {
	h, _ := json.Marshal(hdr)
	p, _ := json.Marshal(claims)
	input := b64.EncodeToString(h) + "." + b64.EncodeToString(p)
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(input))
	return input + "." + b64.EncodeToString(m.Sum(nil))
}

// publicPEM is the PEM form of k's public key.
func publicPEM(t testing.TB, k *signingKey) []byte {
	der, err := x509.MarshalPKIXPublicKey(k.priv.Public())
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

// unsigned builds an alg "none" token.
func unsigned(hdr, claims map[string]any) string {
	h, _ := json.Marshal(hdr)
	p, _ := json.Marshal(claims)
	return b64.EncodeToString(h) + "." + b64.EncodeToString(p) + "."
}

// newVerifier returns a JWT verifier for a with clock c.
func newVerifier(t testing.TB, a *testAS, c *clock, mod func(*JWTOptions)) *JWTVerifier {
	t.Helper()
	opts := JWTOptions{Issuer: a.issuer, Resource: testResource, Now: c.Now, HTTPClient: a.srv.Client()}
	if mod != nil {
		mod(&opts)
	}
	v, err := NewJWTVerifier(opts)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// short abbreviates a token for messages.
func short(tok string) string {
	if len(tok) <= 40 {
		return tok
	}
	return tok[:20] + "…" + tok[len(tok)-12:]
}

// tamperPayload replaces the payload of a compact JWS with claims,
// keeping header and signature.
func tamperPayload(tok string, claims map[string]any) string {
	parts := strings.Split(tok, ".")
	p, _ := json.Marshal(claims)
	return parts[0] + "." + b64.EncodeToString(p) + "." + parts[2]
}

// recorder is a minimal http.ResponseWriter.
type recorder struct {
	header http.Header
	body   []byte
	code   int
}

func (r *recorder) Header() http.Header         { return r.header }
func (r *recorder) WriteHeader(code int)        { r.code = code }
func (r *recorder) Write(p []byte) (int, error) { r.body = append(r.body, p...); return len(p), nil }
