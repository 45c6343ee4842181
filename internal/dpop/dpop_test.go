package dpop

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
)

var (
	now      = time.Date(2026, 12, 8, 1, 0, 0, 0, time.UTC)
	endpoint = "https://as.example.com/token"
)

func newKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func publicJWK(t *testing.T, k crypto.Signer) map[string]any {
	t.Helper()
	b, err := json.Marshal(jose.JSONWebKey{Key: k.Public()})
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	json.Unmarshal(b, &m)
	return m
}

// rawProof builds a proof from a header and claims as given, signed ES256
// with k unless the header's alg says otherwise: for the proofs a Signer
// will not make.
func rawProof(t *testing.T, k *ecdsa.PrivateKey, hdr, claims map[string]any) string {
	t.Helper()
	hb, _ := json.Marshal(hdr)
	cb, _ := json.Marshal(claims)
	input := b64(hb) + "." + b64(cb)
	switch hdr["alg"] {
	case "none":
		return input + "."
	case "HS256":
		m := hmac.New(sha256.New, []byte("a shared secret of thirty-two by"))
		m.Write([]byte(input))
		return input + "." + b64(m.Sum(nil))
	}
	sum := sha256.Sum256([]byte(input))
	r, s, err := ecdsa.Sign(rand.Reader, k, sum[:])
	if err != nil {
		t.Fatal(err)
	}
	sig := make([]byte, 64)
	r.FillBytes(sig[:32])
	s.FillBytes(sig[32:])
	return input + "." + b64(sig)
}

func goodClaims() map[string]any {
	return map[string]any{"jti": "j1", "htm": "POST", "htu": endpoint, "iat": now.Unix()}
}

func goodHeader(t *testing.T, k *ecdsa.PrivateKey) map[string]any {
	return map[string]any{"typ": "dpop+jwt", "alg": "ES256", "jwk": publicJWK(t, k)}
}

// TestCheckAccepts: a proof made by Signer passes, with the thumbprint of
// its key (RFC 9449 §6.1, RFC 7638) and a query-less htu matching a
// request URL with a query (§4.3 item 9).
func TestCheckAccepts(t *testing.T) {
	k := newKey(t)
	s, err := NewSigner("ES256", k)
	if err != nil {
		t.Fatal(err)
	}
	proof, err := s.Proof(ProofClaims{Method: "GET", URL: "https://rs.example.com/mcp", AccessToken: "tok", IssuedAt: now, Nonce: "n1"})
	if err != nil {
		t.Fatal(err)
	}
	p, err := Check(proof, Request{Method: "GET", URL: "HTTPS://RS.example.com:443/mcp?x=1#f", AccessToken: "tok", Now: now})
	if err != nil {
		t.Fatalf("Check() = %v", err)
	}
	if p.JKT != s.JKT() || p.Nonce != "n1" || p.JTI == "" || !p.IssuedAt.Equal(now) {
		t.Errorf("Check() = %+v, want jkt %s, nonce n1, iat %v", p, s.JKT(), now)
	}
}

// TestCheckRefuses is the negative table of RFC 9449 §4.3: each proof is
// refused with invalid_dpop_proof and a description naming what is wrong.
func TestCheckRefuses(t *testing.T) {
	k, other := newKey(t), newKey(t)
	rsaKey, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	with := func(edit func(h, c map[string]any)) string {
		h, c := goodHeader(t, k), goodClaims()
		edit(h, c)
		return rawProof(t, k, h, c)
	}
	privateJWK := func() map[string]any {
		b, _ := json.Marshal(jose.JSONWebKey{Key: k})
		var m map[string]any
		json.Unmarshal(b, &m)
		return m
	}()
	rsaJWK := publicJWK(t, rsaKey)
	tests := []struct {
		name, proof string
		req         Request
		want        string
	}{
		{"not a JWS", "abc", Request{}, "not a JWS"},
		{"typ missing (§4.3 item 4)", with(func(h, c map[string]any) { delete(h, "typ") }), Request{}, "typ"},
		{"typ JWT (§4.3 item 4)", with(func(h, c map[string]any) { h["typ"] = "JWT" }), Request{}, "typ"},
		{"alg none (§4.3 item 5)", with(func(h, c map[string]any) { h["alg"] = "none" }), Request{}, `alg "none"`},
		{"alg HS256 (§4.3 item 5)", with(func(h, c map[string]any) { h["alg"] = "HS256" }), Request{}, `alg "HS256"`},
		{"alg not accepted (§4.3 item 5)", with(func(h, c map[string]any) {}), Request{Algs: []string{"EdDSA"}}, `alg "ES256"`},
		{"no jwk (§4.2, §4.3 item 3)", with(func(h, c map[string]any) { delete(h, "jwk") }), Request{}, "no jwk"},
		{"private key in jwk (§4.3 item 7)", with(func(h, c map[string]any) { h["jwk"] = privateJWK }), Request{}, `private member "d"`},
		{"jwk of another key type (§4.3 item 5)", with(func(h, c map[string]any) { h["jwk"] = rsaJWK }), Request{}, "not a key for ES256"},
		{"signed by another key (§4.3 item 6)", with(func(h, c map[string]any) { h["jwk"] = publicJWK(t, other) }), Request{}, "signature does not verify"},
		{"no jti (§4.3 item 3)", with(func(h, c map[string]any) { delete(c, "jti") }), Request{}, "no jti"},
		{"jti too long", with(func(h, c map[string]any) { c["jti"] = strings.Repeat("j", 257) }), Request{}, "jti is longer"},
		{"no iat (§4.3 item 3)", with(func(h, c map[string]any) { delete(c, "iat") }), Request{}, "no iat"},
		{"iat a string", with(func(h, c map[string]any) { c["iat"] = "now" }), Request{}, "right types"},
		{"another method (§4.3 item 8)", with(func(h, c map[string]any) { c["htm"] = "GET" }), Request{}, `method "GET"`},
		{"method case (§4.3 item 8)", with(func(h, c map[string]any) { c["htm"] = "post" }), Request{}, `method "post"`},
		{"another URL (§4.3 item 9)", with(func(h, c map[string]any) { c["htu"] = "https://as.example.com/register" }), Request{}, "for the URL"},
		{"another host (§4.3 item 9)", with(func(h, c map[string]any) { c["htu"] = "https://evil.example.com/token" }), Request{}, "for the URL"},
		{"http for https (§4.3 item 9)", with(func(h, c map[string]any) { c["htu"] = "http://as.example.com/token" }), Request{}, "for the URL"},
		{"stale iat (§4.3 item 11, §11.1)", with(func(h, c map[string]any) { c["iat"] = now.Add(-61 * time.Second).Unix() }), Request{}, "ago"},
		{"future iat (§4.3 item 11, §11.1)", with(func(h, c map[string]any) { c["iat"] = now.Add(11 * time.Second).Unix() }), Request{}, "in the future"},
		{"no ath with a token (§4.3 item 12)", with(func(h, c map[string]any) {}), Request{AccessToken: "tok"}, "no ath"},
		{"wrong ath (§4.3 item 12)", with(func(h, c map[string]any) {
			sum := sha256.Sum256([]byte("another token"))
			c["ath"] = b64(sum[:])
		}), Request{AccessToken: "tok"}, "ath is not the hash"},
		{"too long", strings.Repeat("a", MaxProofBytes+1), Request{}, "longer than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := tt.req
			req.Method, req.URL, req.Now = "POST", endpoint, now
			_, err := Check(tt.proof, req)
			var e *Error
			if !errors.As(err, &e) || e.Code != CodeInvalidProof || !strings.Contains(e.Description, tt.want) {
				t.Fatalf("Check() = %v, want invalid_dpop_proof containing %q", err, tt.want)
			}
		})
	}
	t.Run("short RSA key", func(t *testing.T) {
		s, err := NewSigner("RS256", rsaKey)
		if err != nil {
			t.Fatal(err)
		}
		proof, _ := s.Proof(ProofClaims{Method: "POST", URL: endpoint, IssuedAt: now})
		if _, err := Check(proof, Request{Method: "POST", URL: endpoint, Now: now}); err == nil || !strings.Contains(err.Error(), "2048") {
			t.Fatalf("Check() = %v, want the 2048-bit minimum", err)
		}
	})
}

// TestReplayKey: the replay key is per key and jti (RFC 9449 §11.1), and
// the jti is remembered until the iat window has closed.
func TestReplayKey(t *testing.T) {
	a, b := Proof{JKT: "k1", JTI: "j"}, Proof{JKT: "k2", JTI: "j"}
	if a.ReplayKey() == b.ReplayKey() {
		t.Error("two keys' proofs with one jti share a replay key")
	}
	p := Proof{IssuedAt: now}
	if got := (Request{}).ReplayUntil(p); got.Before(now.Add(DefaultMaxAge)) {
		t.Errorf("ReplayUntil() = %v, before the window closes at %v", got, now.Add(DefaultMaxAge))
	}
}

// TestES256FastPathAgrees holds the ES256 fast path to go-jose's verdicts:
// for valid proofs and mutations of them (signature, payload, key, point
// off the curve, padding, non-canonical base64, segments), both accept
// with the same payload and thumbprint, or both refuse.
func TestES256FastPathAgrees(t *testing.T) {
	k, other := newKey(t), newKey(t)
	good := rawProof(t, k, goodHeader(t, k), goodClaims())
	parts := strings.Split(good, ".")
	flip := func(s string, i int) string {
		b := []byte(s)
		if b[i] == 'A' {
			b[i] = 'B'
		} else {
			b[i] = 'A'
		}
		return string(b)
	}
	withJWK := func(edit func(m map[string]any)) string {
		h := goodHeader(t, k)
		jwk := h["jwk"].(map[string]any)
		edit(jwk)
		return rawProof(t, k, h, goodClaims())
	}
	inputs := map[string]string{
		"valid":                  good,
		"signature flipped":      parts[0] + "." + parts[1] + "." + flip(parts[2], 5),
		"payload flipped":        parts[0] + "." + flip(parts[1], 3) + "." + parts[2],
		"signature short":        parts[0] + "." + parts[1] + "." + parts[2][:84],
		"signature padded":       good + "==",
		"four segments":          good + ".x",
		"two segments":           parts[0] + "." + parts[1],
		"another key in the jwk": withJWK(func(m map[string]any) { m["x"], m["y"] = publicJWK(t, other)["x"], publicJWK(t, other)["y"] }),
		"x not on the curve":     withJWK(func(m map[string]any) { m["x"] = b64(make([]byte, 32)) }),
		"x padded":               withJWK(func(m map[string]any) { m["x"] = m["x"].(string) + "=" }),
		"x 31 bytes":             withJWK(func(m map[string]any) { m["x"] = b64(make([]byte, 31)) }),
		"crv P-384":              withJWK(func(m map[string]any) { m["crv"] = "P-384" }),
		"kty RSA":                withJWK(func(m map[string]any) { m["kty"] = "RSA" }),
		"y missing":              withJWK(func(m map[string]any) { delete(m, "y") }),
		"with kid and use":       withJWK(func(m map[string]any) { m["kid"], m["use"] = "k1", "sig" }),
	}
	for name, proof := range inputs {
		t.Run(name, func(t *testing.T) {
			hb, _ := base64.RawURLEncoding.DecodeString(strings.Split(proof, ".")[0])
			var all map[string]json.RawMessage
			json.Unmarshal(hb, &all)
			h := header{Alg: "ES256"}
			json.Unmarshal(all["jwk"], &h.JWK)
			for k := range all {
				h.members = append(h.members, k)
			}
			if !fastES256(h) {
				t.Fatal("the fast path does not take this header")
			}
			fp, fj, ferr := verifyES256(proof, h)
			jp, jj, jerr := verifyJOSE(proof, "ES256", DefaultAlgs)
			if (ferr == nil) != (jerr == nil) || string(fp) != string(jp) || fj != jj {
				t.Errorf("fast path = (%q, %s, %v), go-jose = (%q, %s, %v)", fp, fj, ferr, jp, jj, jerr)
			}
			if name == "valid" && ferr != nil {
				t.Errorf("a valid proof refused: %v", ferr)
			}
		})
	}
}

// TestCheckOtherAlgs: EdDSA (Ed25519) and RS256 proofs with a 2048-bit key,
// the other algorithms of DefaultAlgs, pass with their key's thumbprint;
// a request that accepts only ES256 refuses them (§4.3 item 5).
func TestCheckOtherAlgs(t *testing.T) {
	_, ed, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	for alg, key := range map[string]crypto.Signer{"EdDSA": ed, "RS256": rk} {
		s, err := NewSigner(alg, key)
		if err != nil {
			t.Fatal(err)
		}
		proof, err := s.Proof(ProofClaims{Method: "POST", URL: endpoint, IssuedAt: now})
		if err != nil {
			t.Fatal(err)
		}
		if p, err := Check(proof, Request{Method: "POST", URL: endpoint, Now: now}); err != nil || p.JKT != s.JKT() {
			t.Errorf("%s: Check() = %+v, %v; want the key's thumbprint %s", alg, p, err, s.JKT())
		}
		if _, err := Check(proof, Request{Method: "POST", URL: endpoint, Now: now, Algs: []string{"ES256"}}); err == nil {
			t.Errorf("%s proof accepted where only ES256 is", alg)
		}
	}
}
