package rs

import (
	"errors"
	"fmt"
)

// ErrInvalidToken is wrapped by every error a [Verifier] returns for a
// token that must not be accepted: missing, malformed, badly signed,
// expired, for another issuer or resource, inactive. [RequireBearer]
// answers it with 401 and error="invalid_token". Errors that do not wrap
// it mean the verifier could not decide (see [ErrUnavailable]).
//
// The errors below say why; each is wrapped together with ErrInvalidToken,
// so errors.Is works for both. Their texts are the error_description the
// middleware sends (see [ErrorDescription]).
var ErrInvalidToken = errors.New("invalid token")

// Reasons a token is invalid; each comes wrapped with [ErrInvalidToken].
var (
	// ErrMalformed: not a compact JWS, bad base64 or JSON, or a wrong type
	// of claim.
	ErrMalformed = errors.New("malformed token")
	// ErrTooLarge: the token is longer than the configured limit; it was
	// refused before any parsing.
	ErrTooLarge = errors.New("token too large")
	// ErrAlgorithm: the JWS "alg" is not in the allowlist ("none" and HMAC
	// never are), or does not match the key.
	ErrAlgorithm = errors.New("signing algorithm not allowed")
	// ErrType: the JOSE header "typ" is not at+jwt (RFC 9068 §2.1).
	ErrType = errors.New("token type is not at+jwt")
	// ErrUnknownKey: no key of the authorization server's JWKS has the
	// token's "kid", even after a refresh.
	ErrUnknownKey = errors.New("unknown signing key")
	// ErrSignature: the signature does not verify.
	ErrSignature = errors.New("invalid signature")
	// ErrMissingClaim: a claim RFC 9068 §2.2 requires is absent or empty.
	ErrMissingClaim = errors.New("required claim missing")
	// ErrIssuer: "iss" is not the configured authorization server.
	ErrIssuer = errors.New("token from another issuer")
	// ErrAudience: "aud" does not name this resource (RFC 8707; the MCP
	// specification forbids accepting tokens issued for other servers).
	ErrAudience = errors.New("token is for another resource")
	// ErrExpired: "exp" has passed (after the configured clock skew).
	ErrExpired = errors.New("token expired")
	// ErrNotYetValid: "nbf" is in the future (beyond the clock skew).
	ErrNotYetValid = errors.New("token not yet valid")
	// ErrInactive: the introspection endpoint answered "active": false.
	ErrInactive = errors.New("token inactive")
)

// ErrUnavailable means the token could not be verified at all: the
// authorization server's metadata, JWKS or introspection endpoint could not
// be reached or gave an unusable answer. It does not wrap
// [ErrInvalidToken]; [RequireBearer] answers 503, because sending the client
// back to the authorization server would not help.
var ErrUnavailable = errors.New("token verification unavailable")

// reasons are the errors whose text may be sent to a client, most specific
// first.
var reasons = []error{
	ErrTooLarge, ErrMalformed, ErrAlgorithm, ErrType, ErrUnknownKey,
	ErrSignature, ErrMissingClaim, ErrIssuer, ErrAudience, ErrExpired,
	ErrNotYetValid, ErrInactive,
}

// ErrorDescription returns the error_description [RequireBearer] sends for
// err: the text of the reason it wraps (such as "token expired"), "invalid
// token" for another error wrapping [ErrInvalidToken], and "" otherwise. It
// never returns the details err carries, which are for logs only.
func ErrorDescription(err error) string {
	for _, r := range reasons {
		if errors.Is(err, r) {
			return r.Error()
		}
	}
	if errors.Is(err, ErrInvalidToken) {
		return ErrInvalidToken.Error()
	}
	return ""
}

// invalid returns an error wrapping ErrInvalidToken and reason, with
// details for logs.
func invalid(reason error, format string, args ...any) error {
	if format == "" {
		return fmt.Errorf("rs: %w: %w", ErrInvalidToken, reason)
	}
	return fmt.Errorf("rs: %w: %w: %s", ErrInvalidToken, reason, fmt.Sprintf(format, args...))
}

// unavailable returns an error wrapping ErrUnavailable and cause.
func unavailable(cause error) error {
	return fmt.Errorf("rs: %w: %w", ErrUnavailable, cause)
}
