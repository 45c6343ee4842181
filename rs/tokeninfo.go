package rs

import (
	"context"
	"slices"
	"time"
)

// TokenInfo is what a verified access token says. [RequireBearer] stores it
// in the request context, where handlers read it with
// [TokenInfoFromContext]. Treat it as read-only: its slices may be shared
// with other requests that presented the same token.
type TokenInfo struct {
	// Subject (sub) identifies the resource owner: the user, or the client
	// itself for a client credentials grant (see [TokenInfo.Machine]).
	// Never empty. Key per-user state by it (together with Issuer when you
	// trust several authorization servers).
	Subject string
	// ClientID (client_id) is the OAuth client the token was issued to.
	// Never empty for a JWT; may be empty from introspection.
	ClientID string
	// Scopes (scope) are the granted scopes, split at spaces. Nil when the
	// token has none.
	Scopes []string
	// Issuer (iss) is the authorization server that issued the token.
	Issuer string
	// Audience (aud) lists the resources the token is for; it contains this
	// resource.
	Audience []string
	// Expiry (exp) is when the token stops being valid. Zero only when an
	// introspection response omitted exp.
	Expiry time.Time
	// IssuedAt (iat) is when the token was issued; zero if unknown.
	IssuedAt time.Time
	// NotBefore (nbf) is when the token became valid; zero if absent.
	NotBefore time.Time
	// AuthTime (auth_time) is when the user last authenticated; zero if
	// absent (client credentials).
	AuthTime time.Time
	// ID (jti) is the token's unique identifier.
	ID string
	// JKT (cnf.jkt, RFC 9449 §6) is the JWK SHA-256 thumbprint of the
	// DPoP key the token is bound to; "" for a bearer token.
	// [RequireBearer] accepts a bound token only with a DPoP proof signed
	// by that key (see [DPoPOptions]).
	JKT string
}

// Machine reports whether the token was issued to a client acting on its
// own behalf (the client_credentials grant): no user signed in for it. By
// RFC 9068 §2.2 such a token's subject is the client's identifier, which is
// how it is recognised: Subject equals ClientID. Gatehouse never issues a
// user's token whose subject equals its client id, so the two cannot be
// confused. A nil TokenInfo is not a machine token.
func (t *TokenInfo) Machine() bool {
	return t != nil && t.ClientID != "" && t.Subject == t.ClientID
}

// HasScope reports whether scope was granted, by exact comparison; it
// knows nothing of scope hierarchies (see [Options.ImpliedScopes]).
func (t *TokenInfo) HasScope(scope string) bool {
	return t != nil && slices.Contains(t.Scopes, scope)
}

// Verifier checks an access token and says what it grants.
//
// Verify returns an error wrapping [ErrInvalidToken] for a token that must
// be refused, an error wrapping [ErrUnavailable] when it cannot decide, and
// otherwise a non-nil *TokenInfo. Implementations must be safe for
// concurrent use and must not log the token.
type Verifier interface {
	Verify(ctx context.Context, token string) (*TokenInfo, error)
}

// VerifierFunc adapts a function to [Verifier].
type VerifierFunc func(ctx context.Context, token string) (*TokenInfo, error)

// Verify calls f.
func (f VerifierFunc) Verify(ctx context.Context, token string) (*TokenInfo, error) {
	return f(ctx, token)
}

type tokenInfoKey struct{}

// TokenInfoFromContext returns the [TokenInfo] [RequireBearer] stored in
// ctx, or nil if there is none.
func TokenInfoFromContext(ctx context.Context) *TokenInfo {
	ti, _ := ctx.Value(tokenInfoKey{}).(*TokenInfo)
	return ti
}

// withTokenInfo returns ctx carrying ti.
func withTokenInfo(ctx context.Context, ti *TokenInfo) context.Context {
	return context.WithValue(ctx, tokenInfoKey{}, ti)
}
