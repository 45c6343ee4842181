package rs

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"strings"
	"testing"

	"github.com/go-jose/go-jose/v4"
)

// es256Key is a fixed key for the differential fuzz target.
var es256Key = func() *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(err)
	}
	return k
}()

func signES256(t testing.TB, header, payload string) string {
	t.Helper()
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: es256Key}, (&jose.SignerOptions{}).WithType("at+jwt").WithHeader("kid", "k1"))
	if err != nil {
		t.Fatal(err)
	}
	obj, err := s.Sign([]byte(payload))
	if err != nil {
		t.Fatal(err)
	}
	tok, err := obj.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	if header != "" {
		// Re-sign with a hand-made header.
		input := base64.RawURLEncoding.EncodeToString([]byte(header)) + "." + strings.Split(tok, ".")[1]
		sig := rawSign(t, input)
		return input + "." + sig
	}
	return tok
}

func rawSign(t testing.TB, input string) string {
	r, s, err := ecdsa.Sign(rand.Reader, es256Key, sha256Sum(input))
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 64)
	r.FillBytes(b[:32])
	s.FillBytes(b[32:])
	return base64.RawURLEncoding.EncodeToString(b)
}

// FuzzES256Differential holds the ES256 fast path to go-jose's verdicts:
// whenever the fast path takes a token, it accepts exactly when go-jose's
// parser and verifier accept it with the same key, with the same payload
// and header values; tokens it does not take go to go-jose anyway.
func FuzzES256Differential(f *testing.F) {
	f.Add(signES256(f, "", `{"sub":"u"}`))
	f.Add(signES256(f, `{"alg":"ES256","kid":"k1","typ":"at+jwt","jku":"https://evil"}`, `{"a":1}`))
	f.Add(signES256(f, `{"alg":"ES256","KID":"x","kid":"k1"}`, `{}`))
	f.Add(signES256(f, `{"alg":"ES256","kid":"k1","kid":"k1"}`, `{}`))
	f.Add(signES256(f, `{"alg":"ES256","kid":"k1","k\u0069d":"k1"}`, `{}`))
	f.Add(signES256(f, `{"alg":"ES256","crit":["exp"],"exp":1}`, `{}`))
	f.Add(signES256(f, `{"alg":"ES256","b64":false,"crit":["b64"]}`, `{}`))
	f.Add(signES256(f, `{"alg":"none"}`, `{}`))
	f.Add("e30.e30.")
	f.Fuzz(func(t *testing.T, token string) {
		h, input, payload, sig, ok := parseES256(token)
		if !ok {
			return
		}
		fast := verifyES256(&es256Key.PublicKey, input, sig)
		jws, err := jose.ParseSignedCompact(token, []jose.SignatureAlgorithm{jose.ES256})
		var slow bool
		var slowPayload []byte
		if err == nil && len(jws.Signatures) == 1 {
			slowPayload, err = jws.Verify(&es256Key.PublicKey)
			slow = err == nil
		}
		if fast != slow {
			t.Fatalf("token %q: fast path accepts = %v, go-jose accepts = %v (%v)", token, fast, slow, err)
		}
		if !fast {
			return
		}
		if string(payload) != string(slowPayload) {
			t.Fatalf("token %q: payload %q, go-jose %q", token, payload, slowPayload)
		}
		ph := jws.Signatures[0].Protected
		typ, _ := ph.ExtraHeaders[jose.HeaderType].(string)
		if h.Kid != ph.KeyID || h.Alg != ph.Algorithm || h.Typ != typ {
			t.Fatalf("token %q: header (%q %q %q), go-jose (%q %q %q)", token, h.Alg, h.Kid, h.Typ, ph.Algorithm, ph.KeyID, typ)
		}
	})
}

// TestES256FastPathTakesGatehouseTokens: the tokens Gatehouse issues take
// the fast path (or the benchmark would measure the general one).
func TestES256FastPathTakesGatehouseTokens(t *testing.T) {
	tok := signES256(t, "", `{"iss":"x"}`)
	if _, input, _, sig, ok := parseES256(tok); !ok || !verifyES256(&es256Key.PublicKey, input, sig) {
		t.Fatalf("parseES256 did not take or verify a go-jose ES256 token")
	}
	for _, h := range []string{`{"alg":"ES256","crit":["x"]}`, `{"alg":"ES256","b64":false}`, `{"alg":"RS256"}`, `{"alg":"ES256","kid":5}`} {
		if _, _, _, _, ok := parseES256(signES256(t, h, `{}`)); ok {
			t.Errorf("parseES256 took a token with header %s; it must go to go-jose", h)
		}
	}
}

func sha256Sum(s string) []byte {
	sum := sha256.Sum256([]byte(s))
	return sum[:]
}
