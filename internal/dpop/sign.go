package dpop

import (
	"crypto"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// Signer makes DPoP proofs with one key: the client side, for tests, the
// benchmark and Gatehouse's own clients.
type Signer struct {
	signer jose.Signer
	jkt    string
}

// NewSigner returns a Signer for key (an *ecdsa.PrivateKey for ES256, an
// ed25519.PrivateKey for EdDSA, an *rsa.PrivateKey for RS256).
func NewSigner(alg string, key crypto.Signer) (*Signer, error) {
	opts := (&jose.SignerOptions{EmbedJWK: true}).WithType(JWTType)
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.SignatureAlgorithm(alg), Key: key}, opts)
	if err != nil {
		return nil, fmt.Errorf("dpop: signer: %w", err)
	}
	pub := jose.JSONWebKey{Key: key.Public()}
	tp, err := pub.Thumbprint(crypto.SHA256)
	if err != nil {
		return nil, fmt.Errorf("dpop: thumbprint: %w", err)
	}
	return &Signer{signer: s, jkt: base64.RawURLEncoding.EncodeToString(tp)}, nil
}

// JKT returns the key's JWK SHA-256 thumbprint: the cnf.jkt of the tokens
// it gets bound.
func (s *Signer) JKT() string { return s.jkt }

// ProofClaims are the claims of one proof.
type ProofClaims struct {
	Method, URL string
	// AccessToken, if not empty, is hashed into ath.
	AccessToken string
	Nonce       string
	IssuedAt    time.Time
	// JTI is the proof's id; empty means a random one.
	JTI string
}

// Proof signs a proof for c.
func (s *Signer) Proof(c ProofClaims) (string, error) {
	if c.JTI == "" {
		var b [16]byte
		rand.Read(b[:])
		c.JTI = base64.RawURLEncoding.EncodeToString(b[:])
	}
	m := map[string]any{"jti": c.JTI, "htm": c.Method, "htu": c.URL, "iat": c.IssuedAt.Unix()}
	if c.AccessToken != "" {
		sum := sha256.Sum256([]byte(c.AccessToken))
		m["ath"] = base64.RawURLEncoding.EncodeToString(sum[:])
	}
	if c.Nonce != "" {
		m["nonce"] = c.Nonce
	}
	payload, err := json.Marshal(m)
	if err != nil {
		return "", err
	}
	obj, err := s.signer.Sign(payload)
	if err != nil {
		return "", fmt.Errorf("dpop: sign: %w", err)
	}
	return obj.CompactSerialize()
}
