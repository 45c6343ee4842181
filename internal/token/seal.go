package token

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
)

// KeySize is the size of a [Seal] key: AES-256.
const KeySize = 32

// ErrOpen means sealed data could not be opened: wrong key, wrong
// additional data, or the data was altered. The cases are deliberately
// indistinguishable.
var ErrOpen = errors.New("token: cannot open sealed data")

// retryInfo is the HKDF info for [SealWithSecret]. The version lets a
// future format derive a different key from the same secret.
const retryInfo = "gatehouse refresh retry v1"

// Seal encrypts and authenticates plaintext with AES-256-GCM under key,
// binding additionalData (which is authenticated, not encrypted: pass the
// row's identity, so a sealed value cannot be moved to another row). The
// result is a 12-byte random nonce read from r followed by the ciphertext
// and tag. A nil r means crypto/rand.Reader.
//
// Random 96-bit nonces are safe for up to about 2^32 messages per key;
// Seal protects a handful of signing keys and one retry answer per
// refresh-token secret, far below that.
func Seal(key, plaintext, additionalData []byte, r io.Reader) ([]byte, error) {
	aead, err := newGCM(key)
	if err != nil {
		return nil, err
	}
	if r == nil {
		r = rand.Reader
	}
	out := make([]byte, aead.NonceSize(), aead.NonceSize()+len(plaintext)+aead.Overhead())
	if _, err := io.ReadFull(r, out); err != nil {
		return nil, fmt.Errorf("token: read nonce: %w", err)
	}
	return aead.Seal(out, out, plaintext, additionalData), nil
}

// Open reverses [Seal]. It returns [ErrOpen] when the key or
// additionalData differ from sealing or the ciphertext was altered.
func Open(key, ciphertext, additionalData []byte) ([]byte, error) {
	aead, err := newGCM(key)
	if err != nil {
		return nil, err
	}
	if len(ciphertext) < aead.NonceSize()+aead.Overhead() {
		return nil, ErrOpen
	}
	nonce, sealed := ciphertext[:aead.NonceSize()], ciphertext[aead.NonceSize():]
	plain, err := aead.Open(nil, nonce, sealed, additionalData)
	if err != nil {
		return nil, ErrOpen
	}
	return plain, nil
}

// SealWithSecret seals plaintext under a key derived from secret with
// HKDF-SHA256 (info "gatehouse refresh retry v1"). It keeps the answer to
// a refresh-token rotation so that only the holder of the old refresh
// token can read it back on a retry: the server stores only the token's
// hash, and the hash does not give the key.
func SealWithSecret(secret string, plaintext []byte, r io.Reader) ([]byte, error) {
	key, err := secretKey(secret)
	if err != nil {
		return nil, err
	}
	return Seal(key, plaintext, nil, r)
}

// OpenWithSecret reverses [SealWithSecret]; [ErrOpen] means secret is not
// the one the data was sealed with.
func OpenWithSecret(secret string, ciphertext []byte) ([]byte, error) {
	key, err := secretKey(secret)
	if err != nil {
		return nil, err
	}
	return Open(key, ciphertext, nil)
}

func secretKey(secret string) ([]byte, error) {
	if secret == "" {
		return nil, errors.New("token: empty secret")
	}
	// No salt: the secret already has 256 bits of entropy, and the derived
	// key must be reproducible from the secret alone.
	key, err := hkdf.Key(sha256.New, []byte(secret), nil, retryInfo, KeySize)
	if err != nil {
		return nil, fmt.Errorf("token: derive key: %w", err)
	}
	return key, nil
}

func newGCM(key []byte) (cipher.AEAD, error) {
	if len(key) != KeySize {
		return nil, fmt.Errorf("token: seal key is %d bytes, want %d", len(key), KeySize)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("token: %w", err)
	}
	return cipher.NewGCM(block)
}
