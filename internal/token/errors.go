package token

import "errors"

// Errors of [Keyring.Verify]. Every error Verify returns wraps exactly one
// of them, so introspection can answer active=false for all of them and
// still log which check failed; the messages never contain the token.
var (
	// ErrMalformed means the input is not a compact JWS with the claims an
	// access token must have.
	ErrMalformed = errors.New("token: malformed access token")
	// ErrAlgorithm means the "alg" header is not the algorithm of the key
	// the token names (never "none", never a MAC).
	ErrAlgorithm = errors.New("token: signature algorithm not allowed")
	// ErrType means the "typ" header is not at+jwt: some other kind of JWT.
	ErrType = errors.New("token: not an access token (typ is not at+jwt)")
	// ErrUnknownKey means no published key has the token's "kid": a forged
	// token, one signed by a key removed after its retirement period, or
	// one signed by a withdrawn key ([Keyring.Withdraw]).
	ErrUnknownKey = errors.New("token: unknown signing key")
	// ErrSignature means the signature does not verify.
	ErrSignature = errors.New("token: invalid signature")
	// ErrExpired means the current time is at or after "exp".
	ErrExpired = errors.New("token: expired")
	// ErrNotYetValid means the current time is before "nbf".
	ErrNotYetValid = errors.New("token: not yet valid")
)

// ErrNoActiveKey means storage lists no active signing key, so nothing can
// be signed until a key is rotated in.
var ErrNoActiveKey = errors.New("token: no active signing key")

// ErrInvalidAssertion is wrapped by every error [VerifyClientAssertion]
// returns for a bad assertion; the message says which check failed but
// never repeats the assertion.
var ErrInvalidAssertion = errors.New("token: invalid client assertion")

// ErrNoMatchingKey is wrapped (with [ErrInvalidAssertion]) when no key of
// the client's JWK Set fits the assertion's kid and algorithm: the one
// failure a fresher copy of a jwks_uri can cure, after a key rotation.
var ErrNoMatchingKey = errors.New("no key in the client's JWKS matches the assertion's kid and algorithm")
