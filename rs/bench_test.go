package rs

import (
	"crypto/ecdsa"
	"crypto/sha256"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// The benchmarks compare the cost of accepting a token with the cost of
// the one operation no verifier can avoid: an ECDSA P-256 signature check.
// The goal is JWT verification at ≥ 85% of the raw throughput.

// BenchmarkRawECDSAVerify is the floor: SHA-256 of the signing input and
// ecdsa.Verify of a Gatehouse-shaped token.
func BenchmarkRawECDSAVerify(b *testing.B) {
	a := newTestAS(b)
	tok := a.token(nil)
	pub := a.keys[0].priv.Public().(*ecdsa.PublicKey)
	dot := strings.LastIndexByte(tok, '.')
	input := []byte(tok[:dot])
	sig, err := b64.DecodeString(tok[dot+1:])
	if err != nil {
		b.Fatal(err)
	}
	r, s := new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])
	b.ReportAllocs()
	for b.Loop() {
		h := sha256.Sum256(input)
		if !ecdsa.Verify(pub, h[:], r, s) {
			b.Fatal("signature does not verify")
		}
	}
}

// BenchmarkJWTVerify is JWTVerifier.Verify with the keys fetched: "full"
// verifies every time (VerifiedCacheSize -1: parse, signature, claims), as
// for a token seen for the first time; "remembered" is the same token
// again, as on a client's following requests.
func BenchmarkJWTVerify(b *testing.B) {
	a := newTestAS(b)
	tok := a.token(nil)
	for _, bc := range []struct {
		name  string
		cache int
	}{{"full", -1}, {"remembered", 0}} {
		b.Run(bc.name, func(b *testing.B) {
			v := newVerifier(b, a, newClock(), func(o *JWTOptions) { o.VerifiedCacheSize = bc.cache })
			ctx := b.Context()
			if _, err := v.Verify(ctx, tok); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := v.Verify(ctx, tok); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkRequireBearer is the middleware around a no-op handler: a
// tools/call POST with per-tool scopes (the body is inspected and
// restored) and a GET that needs no inspection, each with full token
// verification on every request ("full", the remembered-token cache off)
// and with the token remembered ("remembered"). The httptest request and
// recorder are part of the cost.
func BenchmarkRequireBearer(b *testing.B) {
	a := newTestAS(b)
	tok := a.token(func(c map[string]any) { c["scope"] = "notes:read notes:write" })
	body := `{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"add_note","arguments":{"title":"t","text":"hello"}}}`
	for _, verify := range []struct {
		name  string
		cache int
	}{{"full", -1}, {"remembered", 0}} {
		v := newVerifier(b, a, newClock(), func(o *JWTOptions) { o.VerifiedCacheSize = verify.cache })
		if _, err := v.Verify(b.Context(), tok); err != nil {
			b.Fatal(err)
		}
		h := RequireBearer(v, &Options{
			ResourceMetadataURL: testMetadataURL,
			Scopes:              []string{"notes:read"},
			ToolScopes:          map[string][]string{"add_note": {"notes:write"}},
			ListTools:           ListGranted,
		})(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
		for _, bc := range []struct{ name, method, body string }{
			{"tools_call", http.MethodPost, body},
			{"get", http.MethodGet, ""},
		} {
			b.Run(bc.name+"_"+verify.name, func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					var req *http.Request
					if bc.body != "" {
						req = httptest.NewRequest(bc.method, testResource, strings.NewReader(bc.body))
					} else {
						req = httptest.NewRequest(bc.method, testResource, nil)
					}
					req.Header.Set("Authorization", "Bearer "+tok)
					w := httptest.NewRecorder()
					h.ServeHTTP(w, req)
					if w.Code != http.StatusOK {
						b.Fatalf("status %d: %s", w.Code, w.Body)
					}
				}
			})
		}
	}
}
