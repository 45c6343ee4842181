// Package as is the authorization server: an http.Handler serving the
// discovery documents (RFC 8414 and OpenID Connect Discovery at every
// well-known variant), the JWKS, /authorize with login and consent, /token
// (authorization_code with PKCE S256, refresh_token with rotation and a retry
// window, client_credentials), /revoke (RFC 7009) and /introspect (RFC 7662).
//
// It sees storage only through the storage interfaces and keeps nothing in
// process memory that correctness depends on, so any number of processes can
// share one database.
//
// DPoP (RFC 9449, dpop.go) binds the tokens of the three grants above to
// the key of the request's proof (cnf.jkt, and the refresh token's family).
// The proof is checked by the dispatcher, after client authentication and
// before the grant, so a refused proof consumes no code; its jti goes to
// the database's replay table and its nonces are stateless, so replicas
// agree on both.
//
// Shared security phases — client authentication, exact redirect matching,
// PKCE, resource-to-audience and scope policy — live in the dispatchers
// (authorize.go, token.go), not in the individual grants, so a grant cannot
// forget one. Grants are one file each (token_*.go) in this package rather
// than a grant/ subpackage: they share the minting and audit helpers of
// Server, and a subpackage would only move those behind an interface.
//
// Clients are split the same way, by concern: RFC 7591 registration and its
// limits (register.go), RFC 7592 client configuration (clientconfig.go),
// client ID metadata documents (cimd.go), reaping unused clients (reap.go),
// and finding and authenticating the client a request names (clientauth.go).
//
// People sign in with a local password (login.go) or at an upstream OpenID
// Connect provider (upstream.go, with go-oidc and x/oauth2: no JOSE of our
// own on that path). An upstream sign-in in progress travels sealed in a
// cookie of the browser that started it, like the pending request in the
// forms, and its state is marked used in storage, so any replica can take
// the provider's answer, once. The provider's metadata is cached per
// process; it is only a cache.
//
// Users manage their own account at /account (account.go): its own
// sign-in, the clients connected to them (consents and live grants, with
// the last tool calls from the audit log) and revoking them, a password
// change, passkeys and signing out other sessions. Every account form
// works on the session's user alone and carries the CSRF token.
//
// Passkeys (passkey.go, with go-webauthn): a user adds discoverable
// credentials with user verification on /account and signs in with one on
// either sign-in page, throttled, audited and given a new session like a
// password sign-in. A ceremony's WebAuthn session data travels sealed in a
// short-lived cookie and its challenge is marked used in storage, so any
// replica finishes it, once. The relying party ID and origins come from
// the issuer unless configured ([Passkeys]).
package as
