package rs

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"math/big"
	"strings"
)

// es256Header is the protected header of the ES256 fast path. Members it
// does not read (jku, x5u, jwk, …) are ignored, as the go-jose path
// ignores them when a key is given; crit and b64 change how the token must
// be read, so a header that has them takes the general path.
type es256Header struct {
	Alg, Kid, Typ string
}

// errSlowPath tells parseHeader's member loop to leave the header to the
// general path.
var errSlowPath = errors.New("not for the fast path")

// parseHeader decodes a protected header as go-jose does: exact
// (case-sensitive) member names — encoding/json alone would let "KID" set
// Kid — and no member twice (go-jose refuses a duplicate, so the fast
// path must not take one). ok is false for anything the fast path does
// not take.
func parseHeader(b []byte) (h es256Header, ok bool) {
	err := eachMember(b, func(name, value []byte) error {
		var dst *string
		switch string(name) {
		case "crit", "b64":
			return errSlowPath
		case "alg":
			dst = &h.Alg
		case "kid":
			dst = &h.Kid
		case "typ":
			dst = &h.Typ
		default:
			return nil
		}
		return json.Unmarshal(value, dst)
	})
	return h, err == nil && h.Alg == "ES256"
}

// parseES256 reads a compact JWS whose header says ES256, without
// verifying it. ok is false when the token is not such a token, or uses a
// header member only the general (go-jose) path handles: the caller then
// takes that path, which decides the token's fate alone.
//
// Why a fast path at all: Gatehouse signs ES256 by default, and go-jose's
// general parser costs about a quarter of a first-sight verification on
// top of the signature check itself (rs/bench_test.go). This path does
// only what ES256 compact JWS needs (RFC 7515 §5.2, RFC 7518 §3.4), and
// FuzzES256Differential holds it to go-jose's verdicts.
func parseES256(token string) (h es256Header, signingInput string, payload, sig []byte, ok bool) {
	i := strings.IndexByte(token, '.')
	j := strings.LastIndexByte(token, '.')
	if i <= 0 || j <= i {
		return h, "", nil, nil, false
	}
	hb, err := base64.RawURLEncoding.Strict().DecodeString(token[:i])
	if err != nil {
		return h, "", nil, nil, false
	}
	if h, ok = parseHeader(hb); !ok {
		return h, "", nil, nil, false
	}
	payload, err = base64.RawURLEncoding.Strict().DecodeString(token[i+1 : j])
	if err != nil {
		return h, "", nil, nil, false
	}
	sig, err = base64.RawURLEncoding.Strict().DecodeString(token[j+1:])
	if err != nil {
		return h, "", nil, nil, false
	}
	return h, token[:j], payload, sig, true
}

// verifyES256 checks an ES256 signature: r || s, 32 bytes each, over
// SHA-256 of the signing input, with a P-256 key.
func verifyES256(key any, signingInput string, sig []byte) bool {
	pub, ok := key.(*ecdsa.PublicKey)
	if !ok || pub.Curve != elliptic.P256() || len(sig) != 64 {
		return false
	}
	sum := sha256.Sum256([]byte(signingInput))
	r := new(big.Int).SetBytes(sig[:32])
	s := new(big.Int).SetBytes(sig[32:])
	return ecdsa.Verify(pub, sum[:], r, s)
}
