package token

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"io"
)

// SecretBytes is the number of random bytes in a secret from [NewSecret]:
// 256 bits, so guessing is hopeless and a fast hash is enough at rest.
const SecretBytes = 32

// NewSecret returns SecretBytes bytes read from r, encoded base64url
// without padding (43 characters). A nil r means crypto/rand.Reader.
func NewSecret(r io.Reader) (string, error) {
	if r == nil {
		r = rand.Reader
	}
	var b [SecretBytes]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return "", fmt.Errorf("token: read random: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b[:]), nil
}

// Hash returns the SHA-256 of secret, encoded base64url without padding.
// This is the form storage keys codes, refresh tokens, client secrets and
// session ids by. SHA-256 (not a slow password hash) is right here because
// the input has 256 bits of entropy: there is no dictionary to attack, and
// a lookup by hash must be fast.
func Hash(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// Equal reports whether a and b are equal in time that depends only on
// their lengths, for comparing a presented secret or hash with a stored
// one.
func Equal(a, b string) bool {
	return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}
