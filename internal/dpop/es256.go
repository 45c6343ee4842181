package dpop

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"strings"
)

// The ES256 fast path. Why: a DPoP proof is verified on every request to
// a resource, and go-jose's general parser (a second header parse, key
// import, and a thumbprint through JSON marshalling) costs about half an
// ECDSA verification on top of it (rs BenchmarkDPoPCall). ES256 is what
// MCP clients and oauth4webapi use. This path does what an ES256 compact
// JWS with an embedded P-256 key needs (RFC 7515 §5.2, RFC 7518 §3.4,
// RFC 7638 §3.2) and nothing else; a header with any member it does not
// know (crit, b64, kid, …) takes the go-jose path, which decides alone.
// TestES256FastPathAgrees holds the two paths to the same verdicts.

// fastES256 reports whether the fast path takes a header: only typ, alg
// and jwk, and a jwk of exactly kty, crv, x and y (plus the harmless use,
// alg and kid members clients add).
func fastES256(h header) bool {
	for _, m := range h.members {
		if m != "typ" && m != "alg" && m != "jwk" {
			return false
		}
	}
	for k := range h.JWK {
		switch k {
		case "kty", "crv", "x", "y", "use", "alg", "kid":
		default:
			return false
		}
	}
	return true
}

// verifyES256 verifies an ES256 compact JWS with the P-256 key of its jwk
// header, and returns its payload and the key's RFC 7638 thumbprint.
func verifyES256(proof string, h header) (payload []byte, jkt string, err error) {
	parts := strings.Split(proof, ".")
	if len(parts) != 3 {
		return nil, "", invalid("the DPoP proof is not a valid JWS: compact JWS format must have three parts")
	}
	str := func(k string) (string, bool) {
		var v string
		raw, ok := h.JWK[k]
		return v, ok && json.Unmarshal(raw, &v) == nil
	}
	kty, ok1 := str("kty")
	crv, ok2 := str("crv")
	x, ok3 := str("x")
	y, ok4 := str("y")
	if !ok1 || !ok2 || !ok3 || !ok4 || kty != "EC" {
		return nil, "", invalid("the DPoP proof's jwk is not a valid public key")
	}
	if crv != "P-256" {
		return nil, "", invalid("the DPoP proof's jwk is not a key for ES256")
	}
	strict := base64.RawURLEncoding.Strict()
	xb, errX := strict.DecodeString(x)
	yb, errY := strict.DecodeString(y)
	if errX != nil || errY != nil || len(xb) != 32 || len(yb) != 32 {
		return nil, "", invalid("the DPoP proof's jwk is not a valid public key")
	}
	pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), append(append([]byte{4}, xb...), yb...))
	if err != nil {
		return nil, "", invalid("the DPoP proof's jwk is not a valid public key")
	}
	sig, err := strict.DecodeString(parts[2])
	if err != nil || len(sig) != 64 {
		return nil, "", invalid("the DPoP proof's signature does not verify with its jwk")
	}
	sum := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if !ecdsa.Verify(pub, sum[:], new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])) {
		return nil, "", invalid("the DPoP proof's signature does not verify with its jwk")
	}
	if payload, err = strict.DecodeString(parts[1]); err != nil {
		return nil, "", invalid("the DPoP proof is not a valid JWS: the payload is not base64url")
	}
	// RFC 7638 §3.2: the required members in lexicographic order, no
	// whitespace; x and y as the canonical base64url of their bytes.
	tp := sha256.Sum256([]byte(`{"crv":"P-256","kty":"EC","x":"` + base64.RawURLEncoding.EncodeToString(xb) + `","y":"` + base64.RawURLEncoding.EncodeToString(yb) + `"}`))
	return payload, base64.RawURLEncoding.EncodeToString(tp[:]), nil
}
