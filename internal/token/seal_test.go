package token

import (
	"bytes"
	"crypto/hkdf"
	"crypto/sha256"
	"errors"
	"testing"
)

func TestSealOpen(t *testing.T) {
	key := bytes.Repeat([]byte{1}, KeySize)
	plain := []byte("private key bytes")
	sealed, err := Seal(key, plain, []byte("kid-1"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sealed, plain) {
		t.Error("Seal() output contains the plaintext")
	}
	got, err := Open(key, sealed, []byte("kid-1"))
	if err != nil || !bytes.Equal(got, plain) {
		t.Errorf("Open(Seal(%q)) = %q, %v, want the plaintext", plain, got, err)
	}
	again, err := Seal(key, plain, []byte("kid-1"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(again, sealed) {
		t.Error("Seal() twice gave the same output: nonce is not random")
	}

	flipped := bytes.Clone(sealed)
	flipped[len(flipped)-1] ^= 1
	tests := []struct {
		name       string
		key        []byte
		ciphertext []byte
		ad         []byte
	}{
		{"wrong key", bytes.Repeat([]byte{2}, KeySize), sealed, []byte("kid-1")},
		{"wrong additional data", key, sealed, []byte("kid-2")},
		{"missing additional data", key, sealed, nil},
		{"flipped bit", key, flipped, []byte("kid-1")},
		{"truncated", key, sealed[:len(sealed)-1], []byte("kid-1")},
		{"shorter than a nonce", key, sealed[:5], []byte("kid-1")},
		{"empty", key, nil, []byte("kid-1")},
	}
	for _, tt := range tests {
		if got, err := Open(tt.key, tt.ciphertext, tt.ad); !errors.Is(err, ErrOpen) {
			t.Errorf("%s: Open() = %q, %v, want ErrOpen", tt.name, got, err)
		}
	}
}

func TestSealKeySize(t *testing.T) {
	for _, n := range []int{0, 16, 24, 31, 33} {
		if _, err := Seal(make([]byte, n), []byte("x"), nil, nil); err == nil {
			t.Errorf("Seal(%d-byte key) succeeded, want error", n)
		}
		if _, err := Open(make([]byte, n), make([]byte, 40), nil); err == nil || errors.Is(err, ErrOpen) {
			t.Errorf("Open(%d-byte key) error = %v, want a key-size error", n, err)
		}
	}
}

func TestSealShortRandom(t *testing.T) {
	if _, err := Seal(make([]byte, KeySize), []byte("x"), nil, bytes.NewReader(make([]byte, 4))); err == nil {
		t.Error("Seal() with a 4-byte random source succeeded, want error")
	}
}

func TestSealWithSecret(t *testing.T) {
	secret, err := NewSecret(nil)
	if err != nil {
		t.Fatal(err)
	}
	plain := []byte(`{"access_token":"...","refresh_token":"..."}`)
	sealed, err := SealWithSecret(secret, plain, nil)
	if err != nil {
		t.Fatal(err)
	}
	got, err := OpenWithSecret(secret, sealed)
	if err != nil || !bytes.Equal(got, plain) {
		t.Errorf("OpenWithSecret(SealWithSecret()) = %q, %v, want the plaintext", got, err)
	}

	// The key is HKDF-SHA256(secret, no salt, info) as documented, so
	// another implementation can derive it.
	key, err := hkdf.Key(sha256.New, []byte(secret), nil, "gatehouse refresh retry v1", 32)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := Open(key, sealed, nil); err != nil || !bytes.Equal(got, plain) {
		t.Errorf("Open(HKDF key) = %q, %v, want the plaintext", got, err)
	}

	// Not with the token's hash, which is what the server stores.
	for _, wrong := range []string{Hash(secret), secret + "x", "other"} {
		if got, err := OpenWithSecret(wrong, sealed); !errors.Is(err, ErrOpen) {
			t.Errorf("OpenWithSecret(%q) = %q, %v, want ErrOpen", wrong, got, err)
		}
	}
	if _, err := SealWithSecret("", plain, nil); err == nil {
		t.Error("SealWithSecret(empty secret) succeeded, want error")
	}
}
