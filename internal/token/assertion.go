package token

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// DefaultMaxAssertionLifetime is the [AssertionOptions.MaxLifetime] used
// when it is zero. Assertions are single-use and minted per request, so
// ten minutes covers common client libraries (which use one to ten) while
// bounding how long a recorded jti must be kept.
const DefaultMaxAssertionLifetime = 10 * time.Minute

// Limits on untrusted input to VerifyClientAssertion.
const (
	maxAssertionSize = 16 << 10
	// maxKeyTries bounds how many keys of a client's JWKS one assertion
	// without a matching kid can make us try, since each try is a full
	// signature verification.
	maxKeyTries = 8
)

// assertionAlgs are the algorithms accepted for client assertions:
// asymmetric only. "none" is never accepted, and neither is HS*: a MAC
// keyed with something public (the client's JWKS) proves nothing.
var assertionAlgs = []jose.SignatureAlgorithm{
	jose.ES256, jose.ES384, jose.ES512,
	jose.RS256, jose.RS384, jose.RS512,
	jose.PS256, jose.PS384, jose.PS512,
	jose.EdDSA,
}

// AssertionOptions say what [VerifyClientAssertion] accepts.
type AssertionOptions struct {
	// ClientID is the client being authenticated: iss and sub must both
	// equal it (RFC 7523 §3). Required.
	ClientID string
	// Audiences are the acceptable aud values: the token endpoint URL
	// (RFC 7523 §3) and the issuer identifier (RFC 7521 §5.1, and what
	// newer guidance recommends). aud must contain one of them. Required.
	Audiences []string
	// Now is the current time. Required.
	Now time.Time
	// MaxLifetime bounds how far exp may be in the future, so a client
	// cannot mint long-lived assertions that would have to be remembered
	// for replay protection that long. Zero means
	// DefaultMaxAssertionLifetime.
	MaxLifetime time.Duration
	// Leeway is the clock skew tolerated on exp, nbf and iat. Zero (the
	// default) compares strictly.
	Leeway time.Duration
}

// AssertionClaims is what the caller needs from a verified assertion.
type AssertionClaims struct {
	// JTI (jti) must be recorded until ExpiresAt to refuse replays
	// (RFC 7523 §3, item 7): VerifyClientAssertion cannot do that itself.
	JTI string
	// ExpiresAt (exp) is when the assertion expires.
	ExpiresAt time.Time
	// IssuedAt (iat) is zero when the assertion has none.
	IssuedAt time.Time
	// KeyID is the kid of the JWKS key that verified the signature (empty
	// if that key has none), for the audit log.
	KeyID string
}

// VerifyClientAssertion checks a private_key_jwt client assertion
// ([RFC 7523 §3], as used by OpenID Connect Core §9) against jwks, the
// client's JSON Web Key Set: a compact JWS with an asymmetric algorithm,
// signed by a key of the set (the one named by kid, or any that fits when
// there is no kid), iss and sub equal to ClientID, aud containing one of
// Audiences, exp present, in the future and at most MaxLifetime ahead, nbf
// and iat (when present) not in the future, and a jti.
//
// Every error about the assertion wraps [ErrInvalidAssertion]; other errors
// mean bad options or an unusable JWKS. No error contains the assertion.
//
// [RFC 7523 §3]: https://www.rfc-editor.org/rfc/rfc7523#section-3
func VerifyClientAssertion(assertion string, jwks []byte, opts AssertionOptions) (AssertionClaims, error) {
	switch {
	case opts.ClientID == "":
		return AssertionClaims{}, errors.New("token: AssertionOptions.ClientID is required")
	case len(opts.Audiences) == 0:
		return AssertionClaims{}, errors.New("token: AssertionOptions.Audiences is required")
	case opts.Now.IsZero():
		return AssertionClaims{}, errors.New("token: AssertionOptions.Now is required")
	case opts.MaxLifetime < 0 || opts.Leeway < 0:
		return AssertionClaims{}, errors.New("token: AssertionOptions durations must not be negative")
	}
	maxLifetime := opts.MaxLifetime
	if maxLifetime == 0 {
		maxLifetime = DefaultMaxAssertionLifetime
	}
	if len(assertion) > maxAssertionSize {
		return AssertionClaims{}, fmt.Errorf("%w: longer than %d bytes", ErrInvalidAssertion, maxAssertionSize)
	}
	jws, err := jose.ParseSignedCompact(assertion, assertionAlgs)
	if err != nil {
		if e, ok := errors.AsType[*jose.ErrUnexpectedSignatureAlgorithm](err); ok {
			return AssertionClaims{}, fmt.Errorf("%w: algorithm %.20q is not allowed (asymmetric algorithms only)", ErrInvalidAssertion, string(e.Got))
		}
		return AssertionClaims{}, fmt.Errorf("%w: not a compact JWS: %v", ErrInvalidAssertion, err)
	}
	h := jws.Signatures[0].Header
	alg := jose.SignatureAlgorithm(h.Algorithm)

	keys, err := parseJWKS(jwks)
	if err != nil {
		return AssertionClaims{}, err
	}
	var payload []byte
	var usedKID string
	tried := 0
	for _, key := range keys {
		if h.KeyID != "" && key.KeyID != h.KeyID {
			continue
		}
		if key.Algorithm != "" && key.Algorithm != string(alg) {
			continue
		}
		if !keyFitsAlg(alg, key.Key) {
			continue
		}
		if tried++; tried > maxKeyTries {
			break
		}
		if p, err := jws.Verify(key.Key); err == nil {
			payload, usedKID = p, key.KeyID
			break
		}
	}
	switch {
	case payload != nil:
	case tried == 0:
		return AssertionClaims{}, fmt.Errorf("%w: %w %s", ErrInvalidAssertion, ErrNoMatchingKey, alg)
	default:
		return AssertionClaims{}, fmt.Errorf("%w: signature does not verify with the client's keys", ErrInvalidAssertion)
	}

	// Decode into a map, not a struct: encoding/json matches struct fields
	// case-insensitively, and "ISS" must not stand in for "iss".
	var claims map[string]json.RawMessage
	if err := json.Unmarshal(payload, &claims); err != nil {
		return AssertionClaims{}, fmt.Errorf("%w: claims are not a JSON object", ErrInvalidAssertion)
	}
	out := AssertionClaims{KeyID: usedKID}
	invalid := func(format string, args ...any) (AssertionClaims, error) {
		return AssertionClaims{}, fmt.Errorf("%w: "+format, append([]any{ErrInvalidAssertion}, args...)...)
	}

	iss, err := stringClaim(claims, "iss")
	if err != nil {
		return invalid("%v", err)
	}
	sub, err := stringClaim(claims, "sub")
	if err != nil {
		return invalid("%v", err)
	}
	if iss != opts.ClientID {
		return invalid("iss is not the client_id")
	}
	if sub != opts.ClientID {
		return invalid("sub is not the client_id")
	}
	aud, err := audienceClaim(claims)
	if err != nil {
		return invalid("%v", err)
	}
	if !slices.ContainsFunc(aud, func(a string) bool { return slices.Contains(opts.Audiences, a) }) {
		return invalid("aud does not name this server (want one of %q)", opts.Audiences)
	}
	if out.JTI, err = stringClaim(claims, "jti"); err != nil {
		return invalid("%v", err)
	}

	exp, ok, err := timeClaim(claims, "exp")
	switch {
	case err != nil:
		return invalid("%v", err)
	case !ok:
		return invalid("missing exp")
	case !opts.Now.Before(exp.Add(opts.Leeway)):
		return invalid("expired at %s", exp.Format(time.RFC3339))
	case exp.After(opts.Now.Add(maxLifetime + opts.Leeway)):
		return invalid("exp %s is more than %v ahead", exp.Format(time.RFC3339), maxLifetime)
	}
	out.ExpiresAt = exp
	nbf, ok, err := timeClaim(claims, "nbf")
	switch {
	case err != nil:
		return invalid("%v", err)
	case ok && opts.Now.Add(opts.Leeway).Before(nbf):
		return invalid("not valid before %s", nbf.Format(time.RFC3339))
	}
	iat, ok, err := timeClaim(claims, "iat")
	switch {
	case err != nil:
		return invalid("%v", err)
	case ok && opts.Now.Add(opts.Leeway).Before(iat):
		return invalid("issued in the future (%s)", iat.Format(time.RFC3339))
	}
	out.IssuedAt = iat
	return out, nil
}

// parseJWKS reads a client's key set key by key, skipping keys it cannot
// use (unknown types, encryption keys, symmetric keys) instead of failing
// on them: a JWKS may legitimately hold keys for other purposes.
func parseJWKS(jwks []byte) ([]jose.JSONWebKey, error) {
	var doc struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(jwks, &doc); err != nil {
		return nil, fmt.Errorf("token: client JWKS: %w", err)
	}
	keys := make([]jose.JSONWebKey, 0, len(doc.Keys))
	for _, raw := range doc.Keys {
		var k jose.JSONWebKey
		if err := k.UnmarshalJSON(raw); err != nil {
			continue
		}
		if k.Use != "" && k.Use != "sig" {
			continue
		}
		if !k.IsPublic() {
			// A private key in a client's published set is the client's
			// problem, but only its public half is of use here; Public()
			// of a symmetric key has no Key and is skipped below.
			k = k.Public()
		}
		if k.Key == nil {
			continue
		}
		keys = append(keys, k)
	}
	return keys, nil
}

// stringClaim returns a required, non-empty string claim.
func stringClaim(claims map[string]json.RawMessage, name string) (string, error) {
	raw, ok := claims[name]
	if !ok {
		return "", fmt.Errorf("missing %s", name)
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", fmt.Errorf("%s is not a string", name)
	}
	if s == "" {
		return "", fmt.Errorf("%s is empty", name)
	}
	return s, nil
}

// audienceClaim returns aud, which RFC 7519 §4.1.3 allows as a string or
// an array of strings.
func audienceClaim(claims map[string]json.RawMessage) ([]string, error) {
	raw, ok := claims["aud"]
	if !ok {
		return nil, errors.New("missing aud")
	}
	var one string
	if err := json.Unmarshal(raw, &one); err == nil {
		return []string{one}, nil
	}
	var many []string
	if err := json.Unmarshal(raw, &many); err != nil {
		return nil, errors.New("aud is neither a string nor an array of strings")
	}
	return many, nil
}

// timeClaim returns an optional NumericDate claim (RFC 7519 §2): a JSON
// number of seconds, possibly fractional (truncated).
func timeClaim(claims map[string]json.RawMessage, name string) (time.Time, bool, error) {
	raw, ok := claims[name]
	if !ok {
		return time.Time{}, false, nil
	}
	// The raw value is valid JSON (the object parsed), so a leading digit
	// means a JSON number, which ParseFloat reads exactly; a quoted number
	// is refused.
	if len(raw) == 0 || raw[0] < '0' || raw[0] > '9' {
		return time.Time{}, false, fmt.Errorf("%s is not a NumericDate", name)
	}
	f, err := strconv.ParseFloat(string(raw), 64)
	// Bound to years 1970..9999 so the conversion cannot overflow.
	if err != nil || f > 253402300799 {
		return time.Time{}, false, fmt.Errorf("%s is not a NumericDate", name)
	}
	return time.Unix(int64(f), 0).UTC(), true, nil
}
