// Package storage defines what the authorization server keeps: the domain
// types, the per-aggregate interfaces every backend implements, and the
// sentinel errors backends map their driver errors to.
//
// There is no SQL here and no backend is imported; backends live in
// subpackages (sqlite, postgres) and all of them must pass the one
// conformance suite in storagetest.
//
// Secrets never reach this package in clear: codes, refresh tokens, client
// secrets, session ids and registration tokens are stored as SHA-256 hashes
// (see token.Hash); passwords as argon2id hashes; signing keys encrypted.
// All times are UTC.
package storage
