// Package password hashes and verifies user passwords with argon2id
// ([RFC 9106]), encoded as PHC strings:
//
//	$argon2id$v=19$m=65536,t=3,p=2$<salt>$<key>
//
// Only user passwords belong here. Server-generated secrets (codes, tokens,
// client secrets) carry 256 bits of entropy and are hashed with SHA-256 by
// package token: a slow hash buys nothing for them and would cost a CPU
// second per token request.
//
// Argon2id is memory-hard on purpose: one hash with [DefaultParams] takes
// 64 MiB. To keep a burst of logins from exhausting memory, the package
// runs at most GOMAXPROCS hashes at a time; further callers wait (hashing
// is CPU-bound, so this costs no throughput).
//
// The package imports only the standard library and
// golang.org/x/crypto/argon2. It must not import storage or HTTP code.
//
// [RFC 9106]: https://www.rfc-editor.org/rfc/rfc9106
package password
