// Package dpop checks DPoP proofs (RFC 9449): the JWT a client signs with
// its own key for each request, so that a token bound to that key (cnf.jkt)
// is useless to whoever steals it without the key. The authorization
// server (internal/as) checks proofs at the token endpoint, package rs at
// the resource.
//
// Check does the stateless checks of RFC 9449 §4.3. What needs state is
// the caller's: a nonce it issued (§8, §9) and the jti replay check
// (§11.1), since only the caller knows where such state can live (the
// authorization server's database, shared by its replicas; an rs
// [ReplayCache]).
//
// The package imports only the standard library and go-jose, as package rs
// promises of itself and of what it imports.
package dpop

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// Error codes of RFC 9449 (§7.1, §8, §12.2).
const (
	// CodeInvalidProof is invalid_dpop_proof: the proof is missing
	// something, malformed, or does not match the request.
	CodeInvalidProof = "invalid_dpop_proof"
	// CodeUseNonce is use_dpop_nonce: the server requires a nonce it
	// issued, sent in the DPoP-Nonce header of the same answer.
	CodeUseNonce = "use_dpop_nonce"
)

// JWTType is the typ header of a DPoP proof (RFC 9449 §4.2).
const JWTType = "dpop+jwt"

// DefaultAlgs are the signing algorithms accepted when [Request.Algs] is
// nil, in the order servers advertise them (dpop_signing_alg_values_supported).
// ES256 first: it is what MCP clients and oauth4webapi use by default.
var DefaultAlgs = []string{"ES256", "EdDSA", "RS256"}

// Defaults for the iat window (RFC 9449 §11.1 leaves it to the server).
const (
	// DefaultMaxAge is how old a proof's iat may be.
	DefaultMaxAge = 60 * time.Second
	// DefaultMaxSkew is how far in the future a proof's iat may be: the
	// client's clock may be ahead of the server's.
	DefaultMaxSkew = 10 * time.Second
)

// MaxProofBytes bounds a proof before it is parsed: a proof is a header
// with one public key and a handful of short claims. An RSA 4096 key with
// a nonce fits with room to spare.
const MaxProofBytes = 8 << 10

// maxJTIBytes bounds the jti, which the caller stores.
const maxJTIBytes = 256

// Error is a refused proof. Description is safe to send to the client.
type Error struct {
	Code        string
	Description string
}

// Error returns the code and the description.
func (e *Error) Error() string { return "dpop: " + e.Code + ": " + e.Description }

func invalid(format string, args ...any) error {
	return &Error{Code: CodeInvalidProof, Description: fmt.Sprintf(format, args...)}
}

// Request is what a proof must match.
type Request struct {
	// Method is the HTTP method of the request (htm).
	Method string
	// URL is the request's URL as the client addresses it (htu), compared
	// without query and fragment after RFC 3986 §6.2.2 and §6.2.3
	// normalisation. Behind a proxy it is the public URL, not the one the
	// server listens on.
	URL string
	// AccessToken, when not empty, must be what the proof's ath hashes
	// (§4.3 item 11): required at a resource, empty at the token endpoint.
	AccessToken string
	// Now is the server's current time.
	Now time.Time
	// MaxAge and MaxSkew bound iat: no older than MaxAge, no further in the
	// future than MaxSkew. Zero means DefaultMaxAge, DefaultMaxSkew.
	MaxAge, MaxSkew time.Duration
	// Algs are the accepted signing algorithms; nil means DefaultAlgs.
	// "none" and HMAC algorithms are never accepted, whatever is listed.
	Algs []string
}

// Proof is a proof that passed [Check].
type Proof struct {
	// JKT is the JWK SHA-256 thumbprint (RFC 7638) of the proof's key:
	// what cnf.jkt of a bound token holds.
	JKT string
	// JTI is the proof's unique identifier, for the caller's replay check.
	JTI string
	// IssuedAt is the proof's iat.
	IssuedAt time.Time
	// Nonce is the proof's nonce claim, "" if none; the caller checks it.
	Nonce string
}

// ReplayKey is the key under which a caller records the proof's jti: the
// jti is unique per key (RFC 9449 §4.2), so two clients choosing the same
// jti do not collide. It is a hash, so its size does not depend on the
// client.
func (p Proof) ReplayKey() string {
	h := sha256.Sum256([]byte(p.JKT + "\x00" + p.JTI))
	return "dpop:" + base64.RawURLEncoding.EncodeToString(h[:])
}

// ReplayUntil is how long the jti must be remembered: past it, the iat
// check refuses the proof anyway.
func (r Request) ReplayUntil(p Proof) time.Time {
	maxAge, _ := r.window()
	return p.IssuedAt.Add(maxAge).Add(time.Second)
}

func (r Request) window() (maxAge, maxSkew time.Duration) {
	maxAge, maxSkew = r.MaxAge, r.MaxSkew
	if maxAge <= 0 {
		maxAge = DefaultMaxAge
	}
	if maxSkew <= 0 {
		maxSkew = DefaultMaxSkew
	}
	return maxAge, maxSkew
}

// header is the protected header, read before go-jose parses the proof so
// that each refusal can say what is wrong.
type header struct {
	Typ string
	Alg string
	JWK map[string]json.RawMessage
	// members holds the names of every header member, for the fast path,
	// which takes only headers it fully understands.
	members []string
}

type claims struct {
	JTI   string   `json:"jti"`
	HTM   string   `json:"htm"`
	HTU   string   `json:"htu"`
	IAT   *float64 `json:"iat"`
	ATH   string   `json:"ath"`
	Nonce string   `json:"nonce"`
}

// privateMembers are JWK members only a private or symmetric key has
// (RFC 7518 §6.2.2, §6.3.2, §6.4; RFC 8037 §2).
var privateMembers = []string{"d", "p", "q", "dp", "dq", "qi", "oth", "k"}

// Check verifies proof against req: RFC 9449 §4.3 items 2 to 9, 11 and the
// ath half of 12. The caller checks that there was one DPoP header (item
// 1), the nonce (item 10), the key against a bound token's cnf.jkt (item
// 12) and the jti (§11.1). Errors are *Error with code invalid_dpop_proof.
func Check(proof string, req Request) (Proof, error) {
	if proof == "" {
		return Proof{}, invalid("the DPoP header is empty")
	}
	if len(proof) > MaxProofBytes {
		return Proof{}, invalid("the DPoP proof is longer than %d bytes", MaxProofBytes)
	}
	algs := req.Algs
	if algs == nil {
		algs = DefaultAlgs
	}
	// §4.3 items 2, 4, 5, 7: one JWT, typ dpop+jwt, an allowed asymmetric
	// alg, a public jwk (§4.2: the jwk is required).
	seg, _, ok := strings.Cut(proof, ".")
	if !ok {
		return Proof{}, invalid("the DPoP proof is not a JWS in compact serialization")
	}
	hb, err := base64.RawURLEncoding.DecodeString(seg)
	// Members by their exact names: encoding/json would fill a struct
	// field from "TYP" as well.
	var all map[string]json.RawMessage
	if err != nil || json.Unmarshal(hb, &all) != nil {
		return Proof{}, invalid("the DPoP proof's header is not base64url-encoded JSON")
	}
	var h header
	for k, v := range all {
		h.members = append(h.members, k)
		var dst any
		switch k {
		case "typ":
			dst = &h.Typ
		case "alg":
			dst = &h.Alg
		case "jwk":
			dst = &h.JWK
		default:
			continue
		}
		if json.Unmarshal(v, dst) != nil {
			return Proof{}, invalid("the DPoP proof's header member %q has the wrong type", k)
		}
	}
	if h.Typ != JWTType {
		return Proof{}, invalid("the DPoP proof's typ is %q, want %q (RFC 9449 section 4.2)", clip(h.Typ), JWTType)
	}
	if h.Alg == "none" || strings.HasPrefix(h.Alg, "HS") || !slices.Contains(algs, h.Alg) {
		return Proof{}, invalid("the DPoP proof's alg %q is not accepted; accepted: %s", clip(h.Alg), strings.Join(algs, ", "))
	}
	if h.JWK == nil {
		return Proof{}, invalid("the DPoP proof's header has no jwk")
	}
	for _, m := range privateMembers {
		if _, ok := h.JWK[m]; ok {
			return Proof{}, invalid("the DPoP proof's jwk has the private member %q: it must be the public key only (RFC 9449 section 4.3 item 7)", m)
		}
	}
	// §4.3 items 6 (the signature, with the key in the header) and 7.
	var payload []byte
	var jkt string
	if h.Alg == "ES256" && fastES256(h) {
		payload, jkt, err = verifyES256(proof, h)
	} else {
		payload, jkt, err = verifyJOSE(proof, h.Alg, algs)
	}
	if err != nil {
		return Proof{}, err
	}
	var c claims
	if err := json.Unmarshal(payload, &c); err != nil {
		return Proof{}, invalid("the DPoP proof's claims are not a JSON object of the right types")
	}
	// §4.3 item 3: the required claims.
	switch {
	case c.JTI == "":
		return Proof{}, invalid("the DPoP proof has no jti")
	case len(c.JTI) > maxJTIBytes:
		return Proof{}, invalid("the DPoP proof's jti is longer than %d bytes", maxJTIBytes)
	case c.HTM == "":
		return Proof{}, invalid("the DPoP proof has no htm")
	case c.HTU == "":
		return Proof{}, invalid("the DPoP proof has no htu")
	case c.IAT == nil || math.IsNaN(*c.IAT) || math.IsInf(*c.IAT, 0):
		return Proof{}, invalid("the DPoP proof has no iat")
	}
	// §4.3 item 8: htm is the request's method.
	if c.HTM != req.Method {
		return Proof{}, invalid("the DPoP proof is for the method %q, this request is %s (htm, RFC 9449 section 4.3)", clip(c.HTM), req.Method)
	}
	// §4.3 item 9: htu is the request's URL, without query and fragment.
	want, err := NormalizeURL(req.URL)
	if err != nil {
		return Proof{}, fmt.Errorf("dpop: the request URL %q: %w", req.URL, err)
	}
	if got, err := NormalizeURL(c.HTU); err != nil || got != want {
		return Proof{}, invalid("the DPoP proof is for the URL %q, this request is for %q (htu, RFC 9449 section 4.3)", clip(c.HTU), want)
	}
	// §4.3 item 11: iat within the window.
	if *c.IAT > math.MaxInt64/float64(time.Second) || *c.IAT < 0 {
		return Proof{}, invalid("the DPoP proof's iat is out of range")
	}
	iat := time.Unix(0, int64(*c.IAT*float64(time.Second))).UTC()
	maxAge, maxSkew := req.window()
	if iat.Before(req.Now.Add(-maxAge)) {
		return Proof{}, invalid("the DPoP proof was issued at %s, more than %s ago: make a new proof for each request (iat, RFC 9449 section 4.3 item 11, section 11.1)", iat.Format(time.RFC3339), maxAge)
	}
	if iat.After(req.Now.Add(maxSkew)) {
		return Proof{}, invalid("the DPoP proof was issued at %s, more than %s in the future: check the client's clock (iat, RFC 9449 section 4.3 item 11, section 11.1)", iat.Format(time.RFC3339), maxSkew)
	}
	// §4.3 item 12 (with an access token): ath. The other half of item 12,
	// the key against the token's cnf.jkt, is the caller's.
	if req.AccessToken != "" {
		sum := sha256.Sum256([]byte(req.AccessToken))
		if c.ATH != base64.RawURLEncoding.EncodeToString(sum[:]) {
			if c.ATH == "" {
				return Proof{}, invalid("the DPoP proof has no ath: a proof sent with an access token must carry its hash (RFC 9449 section 4.2, section 4.3 item 12)")
			}
			return Proof{}, invalid("the DPoP proof's ath is not the hash of this access token (RFC 9449 section 4.3 item 12)")
		}
	}
	return Proof{
		JKT:      jkt,
		JTI:      c.JTI,
		IssuedAt: iat,
		Nonce:    c.Nonce,
	}, nil
}

// verifyJOSE verifies proof with the key of its jwk header through
// go-jose and returns the payload and the key's thumbprint.
func verifyJOSE(proof, alg string, algs []string) (payload []byte, jkt string, err error) {
	joseAlgs := make([]jose.SignatureAlgorithm, len(algs))
	for i, a := range algs {
		joseAlgs[i] = jose.SignatureAlgorithm(a)
	}
	jws, err := jose.ParseSignedCompact(proof, joseAlgs)
	if err != nil || len(jws.Signatures) != 1 {
		return nil, "", invalid("the DPoP proof is not a valid JWS: %s", describe(err))
	}
	jwk := jws.Signatures[0].Protected.JSONWebKey
	if jwk == nil || !jwk.Valid() || !jwk.IsPublic() {
		return nil, "", invalid("the DPoP proof's jwk is not a valid public key")
	}
	if err := checkKey(alg, jwk.Key); err != nil {
		return nil, "", err
	}
	if payload, err = jws.Verify(jwk.Key); err != nil {
		return nil, "", invalid("the DPoP proof's signature does not verify with its jwk")
	}
	tp, err := jwk.Thumbprint(crypto.SHA256)
	if err != nil {
		return nil, "", invalid("the DPoP proof's jwk has no thumbprint: %s", describe(err))
	}
	return payload, base64.RawURLEncoding.EncodeToString(tp), nil
}

// checkKey refuses a key that does not fit alg, and RSA keys shorter than
// 2048 bits (RFC 7518 §3.3).
func checkKey(alg string, key any) error {
	ok := false
	switch k := key.(type) {
	case *ecdsa.PublicKey:
		ok = alg == "ES256" && k.Curve.Params().BitSize == 256
	case ed25519.PublicKey:
		ok = alg == "EdDSA"
	case *rsa.PublicKey:
		if strings.HasPrefix(alg, "RS") || strings.HasPrefix(alg, "PS") {
			if k.N.BitLen() < 2048 {
				return invalid("the DPoP proof's RSA key has %d bits; at least 2048 are required", k.N.BitLen())
			}
			ok = true
		}
	}
	if !ok {
		return invalid("the DPoP proof's jwk is not a key for %s", alg)
	}
	return nil
}

// NormalizeURL returns u without query and fragment, with scheme and host
// in lower case and the scheme's default port removed (RFC 3986 §6.2.2,
// §6.2.3), for comparing htu. Only absolute http and https URLs are
// accepted.
func NormalizeURL(u string) (string, error) {
	p, err := url.Parse(u)
	if err != nil {
		return "", err
	}
	scheme := strings.ToLower(p.Scheme)
	if (scheme != "https" && scheme != "http") || p.Host == "" || p.Opaque != "" {
		return "", errors.New("not an absolute http(s) URL")
	}
	host := strings.ToLower(p.Host)
	if scheme == "https" {
		host = strings.TrimSuffix(host, ":443")
	} else {
		host = strings.TrimSuffix(host, ":80")
	}
	path := p.EscapedPath()
	if path == "" {
		path = "/"
	}
	return scheme + "://" + host + path, nil
}

// clip shortens a client's value for an error description.
func clip(s string) string {
	if len(s) > 100 {
		return s[:100] + "…"
	}
	return s
}

// describe turns a go-jose error into text without its package prefix.
func describe(err error) string {
	if err == nil {
		return "more than one signature"
	}
	return strings.TrimPrefix(err.Error(), "go-jose/go-jose: ")
}
