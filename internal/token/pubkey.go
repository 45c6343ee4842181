package token

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"

	jose "github.com/go-jose/go-jose/v4"
)

// ParsePublicKeys reads the public signing keys of a party whose signed
// statements Gatehouse verifies (a delegated-login SaaS, issue 14 item
// 2): PEM "PUBLIC KEY" blocks (PKIX), a JSON Web Key, or a JSON Web Key
// Set. Only ECDSA P-256 (ES256) and Ed25519 (EdDSA) keys are accepted:
// asymmetric, so Gatehouse holds nothing that could sign for the party,
// and each key has exactly one algorithm, which is pinned on it
// (Algorithm), so a statement cannot choose how it is verified. A key
// without a kid gets its RFC 7638 thumbprint (base64url SHA-256) as kid.
// A private key is refused: Gatehouse must be given the public half only.
func ParsePublicKeys(data []byte) ([]jose.JSONWebKey, error) {
	text := strings.TrimSpace(string(data))
	var keys []jose.JSONWebKey
	switch {
	case strings.HasPrefix(text, "-----BEGIN"):
		rest := []byte(text)
		for {
			var b *pem.Block
			b, rest = pem.Decode(rest)
			if b == nil {
				break
			}
			if b.Type != "PUBLIC KEY" {
				if strings.Contains(b.Type, "PRIVATE") {
					return nil, fmt.Errorf("the PEM block %q is a private key: give Gatehouse the public key only", b.Type)
				}
				return nil, fmt.Errorf("the PEM block %q is not a PUBLIC KEY", b.Type)
			}
			pub, err := x509.ParsePKIXPublicKey(b.Bytes)
			if err != nil {
				return nil, fmt.Errorf("the PUBLIC KEY block: %w", err)
			}
			keys = append(keys, jose.JSONWebKey{Key: pub})
		}
		if strings.TrimSpace(string(rest)) != "" {
			return nil, errors.New("text after the last PEM block")
		}
	case strings.HasPrefix(text, "{"):
		var probe struct {
			Keys []json.RawMessage `json:"keys"`
		}
		if err := json.Unmarshal([]byte(text), &probe); err != nil {
			return nil, fmt.Errorf("not a JSON Web Key: %w", err)
		}
		raws := probe.Keys
		if raws == nil {
			raws = []json.RawMessage{json.RawMessage(text)}
		}
		for i, raw := range raws {
			var k jose.JSONWebKey
			if err := k.UnmarshalJSON(raw); err != nil {
				return nil, fmt.Errorf("key %d: %w", i, err)
			}
			if !k.IsPublic() {
				return nil, fmt.Errorf("key %d is a private or symmetric key: give Gatehouse the public key only", i)
			}
			if k.Use != "" && k.Use != "sig" {
				return nil, fmt.Errorf("key %d has use %q, not sig", i, k.Use)
			}
			keys = append(keys, k)
		}
	default:
		return nil, errors.New("neither a PEM PUBLIC KEY nor a JSON Web Key (Set)")
	}
	if len(keys) == 0 {
		return nil, errors.New("no key")
	}
	seen := map[string]bool{}
	for i := range keys {
		k := &keys[i]
		alg, err := publicKeyAlg(k.Key)
		if err != nil {
			return nil, fmt.Errorf("key %d: %w", i, err)
		}
		if k.Algorithm != "" && k.Algorithm != string(alg) {
			return nil, fmt.Errorf("key %d says alg %q, but it is a key for %s", i, k.Algorithm, alg)
		}
		k.Algorithm, k.Use = string(alg), "sig"
		if k.KeyID == "" {
			if k.KeyID, err = Thumbprint(k.Key); err != nil {
				return nil, fmt.Errorf("key %d: %w", i, err)
			}
		}
		if seen[k.KeyID] {
			return nil, fmt.Errorf("key %d: the kid %q is used twice", i, k.KeyID)
		}
		seen[k.KeyID] = true
	}
	return keys, nil
}

// Thumbprint is the RFC 7638 thumbprint of a public key (SHA-256,
// base64url): the kid [ParsePublicKeys] gives a key that has none, and
// that a signer can compute from its own key to name it.
func Thumbprint(pub crypto.PublicKey) (string, error) {
	sum, err := (&jose.JSONWebKey{Key: pub}).Thumbprint(crypto.SHA256)
	if err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(sum), nil
}

// publicKeyAlg is the one algorithm a public key verifies.
func publicKeyAlg(pub crypto.PublicKey) (jose.SignatureAlgorithm, error) {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() {
			return "", fmt.Errorf("an ECDSA key on %s: only P-256 (ES256) is accepted", k.Curve.Params().Name)
		}
		return jose.ES256, nil
	case ed25519.PublicKey:
		return jose.EdDSA, nil
	}
	return "", fmt.Errorf("a %T: only ECDSA P-256 (ES256) and Ed25519 (EdDSA) keys are accepted", pub)
}
