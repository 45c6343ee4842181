// Package token makes and checks everything the authorization server hands
// out or keeps secret:
//
//   - opaque secrets (authorization codes, refresh tokens, client secrets,
//     session ids): [NewSecret] makes 256-bit random values and [Hash]
//     turns them into the SHA-256 form storage keys them by, so the server
//     never stores a bearer secret in clear;
//   - sealed data: [Seal] and [Open] encrypt signing keys at rest under the
//     configured master key; [SealWithSecret] and [OpenWithSecret] encrypt a
//     refresh-rotation response under the old refresh token itself, so only
//     its holder can read the stored retry answer;
//   - JWT access tokens ([RFC 9068]): a [Keyring] signs them with keys kept
//     encrypted in storage, rotates keys (and withdraws a leaked one at
//     once), publishes the JWKS and verifies tokens for introspection;
//   - client assertions ([RFC 7523] private_key_jwt):
//     [VerifyClientAssertion].
//
// All JOSE parsing and verification goes through go-jose; the package
// never accepts "none" or a MAC algorithm for a signature. Only the output
// side of access-token signing is built directly — a fixed per-key header,
// two base64 strings and one signature — because that keeps signing at the
// cost of the signature itself; tests check it against go-jose byte for
// byte.
//
// Time and randomness are injected (KeyringOptions.Now, io.Reader
// arguments). This package must not import HTTP, web or protocol packages,
// and must not import a storage backend: it sees only the storage.Keys
// interface.
//
// [RFC 9068]: https://www.rfc-editor.org/rfc/rfc9068
// [RFC 7523]: https://www.rfc-editor.org/rfc/rfc7523
package token
