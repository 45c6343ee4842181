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
// runs at most GOMAXPROCS/2 hashes at a time (at least one; each of the
// default 2 lanes keeps a processor busy); further callers wait, and
// cannot be cancelled while they do (hashing is CPU-bound, so this costs
// no throughput). Once no hash is in flight, the package hands the memory
// back to the operating system (debug.FreeOSMemory) after a second, at
// most once every 10 seconds.
//
// The package imports only the standard library and
// golang.org/x/crypto/argon2. It must not import storage or HTTP code.
//
// [RFC 9106]: https://www.rfc-editor.org/rfc/rfc9106
package password
