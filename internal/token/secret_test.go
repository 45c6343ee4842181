package token

import (
	"bytes"
	"encoding/base64"
	"testing"
)

func TestNewSecret(t *testing.T) {
	s, err := NewSecret(bytes.NewReader(bytes.Repeat([]byte{0xff}, SecretBytes)))
	if err != nil {
		t.Fatal(err)
	}
	if want := "__________________________________________8"; s != want {
		t.Errorf("NewSecret(0xff...) = %q, want %q", s, want)
	}

	a, err := NewSecret(nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewSecret(nil)
	if err != nil {
		t.Fatal(err)
	}
	if a == b {
		t.Errorf("NewSecret(nil) returned %q twice", a)
	}
	raw, err := base64.RawURLEncoding.DecodeString(a)
	if err != nil || len(raw) != 32 {
		t.Errorf("NewSecret(nil) = %q: decodes to %d bytes, %v; want 32 bytes of base64url", a, len(raw), err)
	}

	if s, err := NewSecret(bytes.NewReader(make([]byte, 31))); err == nil {
		t.Errorf("NewSecret(31-byte reader) = %q, nil, want error", s)
	}
}

func TestHash(t *testing.T) {
	tests := []struct{ in, want string }{
		// SHA-256 test vectors (FIPS 180-2), base64url without padding.
		{"", "47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU"},
		{"abc", "ungWv48Bz-pBQUDeXa4iI7ADYaOWF3qctBD_YfIAFa0"},
	}
	for _, tt := range tests {
		if got := Hash(tt.in); got != tt.want {
			t.Errorf("Hash(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestEqual(t *testing.T) {
	tests := []struct {
		a, b string
		want bool
	}{
		{"", "", true},
		{"abc", "abc", true},
		{"abc", "abd", false},
		{"abc", "ab", false},
		{"abc", "", false},
	}
	for _, tt := range tests {
		if got := Equal(tt.a, tt.b); got != tt.want {
			t.Errorf("Equal(%q, %q) = %v, want %v", tt.a, tt.b, got, tt.want)
		}
	}
}
