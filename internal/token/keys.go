package token

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/gatehouse-mcp/gatehouse/internal/storage"
)

// Signing algorithms a [Keyring] can use for access tokens.
const (
	// ES256 is ECDSA on P-256 with SHA-256: the default, with small keys,
	// small tokens and the fastest signing of the three.
	ES256 = "ES256"
	// RS256 is RSASSA-PKCS1-v1_5 with SHA-256 and a 2048-bit key, for
	// resource servers that only understand RSA.
	RS256 = "RS256"
	// EdDSA is Ed25519 (RFC 8037).
	EdDSA = "EdDSA"
)

// rsaKeyBits is the size of generated RSA keys, and the minimum accepted
// for RSA keys anywhere in this package (NIST SP 800-57: 2048 bits is
// acceptable through 2030).
const rsaKeyBits = 2048

// signingKey is one decrypted access-token signing key.
type signingKey struct {
	kid    string
	alg    jose.SignatureAlgorithm
	priv   crypto.Signer
	public jose.JSONWebKey // public part only, with kid, alg and use
	// header is the encoded protected header of every token this key
	// signs, computed once: {"alg":…,"kid":…,"typ":"at+jwt"}.
	header string
	// sealed and publicJWK are the storage row's bytes, so a reload can
	// tell an unchanged row from a changed one without decrypting.
	sealed    []byte
	publicJWK string
}

// generateKey makes a new private key for alg. Since Go 1.26 the standard
// library always draws key material from its own secure source; r is
// passed on for older toolchains and GODEBUG=cryptocustomrand=1.
func generateKey(alg string, r io.Reader) (crypto.Signer, error) {
	switch alg {
	case ES256:
		return ecdsa.GenerateKey(elliptic.P256(), r)
	case RS256:
		return rsa.GenerateKey(r, rsaKeyBits)
	case EdDSA:
		_, priv, err := ed25519.GenerateKey(r)
		return priv, err
	}
	return nil, fmt.Errorf("token: unsupported signing algorithm %q", alg)
}

// newSigningKey wraps priv for alg. The kid is the key's RFC 7638
// thumbprint: derived from the key itself, so it cannot collide between
// replicas that generate keys at the same moment, and a row whose kid does
// not match its key is detectably corrupt.
func newSigningKey(alg string, priv crypto.Signer) (*signingKey, error) {
	if !keyFitsAlg(jose.SignatureAlgorithm(alg), priv.Public()) {
		return nil, fmt.Errorf("token: %T does not fit algorithm %s", priv, alg)
	}
	pub := jose.JSONWebKey{Key: priv.Public(), Algorithm: alg, Use: "sig"}
	tp, err := pub.Thumbprint(crypto.SHA256)
	if err != nil {
		return nil, fmt.Errorf("token: key thumbprint: %w", err)
	}
	pub.KeyID = base64.RawURLEncoding.EncodeToString(tp)
	header, err := json.Marshal(struct {
		Alg string `json:"alg"`
		Kid string `json:"kid"`
		Typ string `json:"typ"`
	}{alg, pub.KeyID, accessTokenType})
	if err != nil {
		return nil, fmt.Errorf("token: encode header: %w", err)
	}
	return &signingKey{
		kid:    pub.KeyID,
		alg:    jose.SignatureAlgorithm(alg),
		priv:   priv,
		public: pub,
		header: base64.RawURLEncoding.EncodeToString(header),
	}, nil
}

// sign returns the compact JWS (RFC 7515 §7.1) of payload under k's
// fixed header.
//
// This is the one piece of JOSE the package does itself, and only for
// the output side: with the header fixed per key, a JWS is two base64
// strings and one signature, and building it directly makes ES256 signing
// cost about one ecdsa.Sign, where going through go-jose adds roughly 20%
// (it re-encodes the header map three times per token; see BenchmarkSign
// and BenchmarkRawECDSASign). Everything that parses or verifies a JWS —
// where the well-known JOSE pitfalls are — goes through go-jose, and the
// tests check this output against go-jose byte for byte.
func (k *signingKey) sign(payload []byte) (string, error) {
	enc := base64.RawURLEncoding
	buf := make([]byte, 0, len(k.header)+1+enc.EncodedLen(len(payload))+1+enc.EncodedLen(512))
	buf = append(buf, k.header...)
	buf = append(buf, '.')
	buf = enc.AppendEncode(buf, payload)
	var sig []byte
	switch priv := k.priv.(type) {
	case *ecdsa.PrivateKey:
		// RFC 7518 §3.4: R and S as fixed-width big-endian integers, not
		// the ASN.1 form crypto/ecdsa produces by default.
		h := sha256.Sum256(buf)
		r, s, err := ecdsa.Sign(rand.Reader, priv, h[:])
		if err != nil {
			return "", err
		}
		sig = make([]byte, 64)
		r.FillBytes(sig[:32])
		s.FillBytes(sig[32:])
	case *rsa.PrivateKey:
		h := sha256.Sum256(buf)
		var err error
		if sig, err = rsa.SignPKCS1v15(nil, priv, crypto.SHA256, h[:]); err != nil {
			return "", err
		}
	case ed25519.PrivateKey:
		sig = ed25519.Sign(priv, buf)
	default:
		return "", fmt.Errorf("token: cannot sign with %T", k.priv)
	}
	buf = append(buf, '.')
	buf = enc.AppendEncode(buf, sig)
	return string(buf), nil
}

// seal returns the storage row for k, its private key encrypted under
// encKey with the kid as additional data, so an encrypted key cannot be
// moved to another row.
func (k *signingKey) seal(encKey []byte, created time.Time, r io.Reader) (storage.SigningKey, error) {
	der, err := x509.MarshalPKCS8PrivateKey(k.priv)
	if err != nil {
		return storage.SigningKey{}, fmt.Errorf("token: marshal private key: %w", err)
	}
	sealed, err := Seal(encKey, der, []byte(k.kid), r)
	clear(der)
	if err != nil {
		return storage.SigningKey{}, err
	}
	pub, err := json.Marshal(k.public)
	if err != nil {
		return storage.SigningKey{}, fmt.Errorf("token: marshal public key: %w", err)
	}
	k.sealed, k.publicJWK = sealed, string(pub)
	return storage.SigningKey{
		ID:         k.kid,
		Algorithm:  string(k.alg),
		PrivateKey: sealed,
		PublicJWK:  string(pub),
		CreatedAt:  created.UTC(),
	}, nil
}

// Reseal re-encrypts every signing key in keys from the master key oldKey
// to newKey (to rotate the key-encryption key), in one transaction, and
// returns how many keys it re-encrypted. A key oldKey cannot open stops
// it with nothing changed. A keyring still holding oldKey would seal its
// next rotated key under it: stop every replica first, and start them
// with newKey.
func Reseal(ctx context.Context, keys storage.Keys, oldKey, newKey []byte, r io.Reader) (int, error) {
	if len(newKey) != 32 {
		return 0, errors.New("token: the new master key must be 32 bytes")
	}
	if bytes.Equal(oldKey, newKey) {
		return 0, errors.New("token: the new master key is the current one")
	}
	return keys.ResealSigningKeys(ctx, func(row storage.SigningKey) ([]byte, error) {
		der, err := Open(oldKey, row.PrivateKey, []byte(row.ID))
		if err != nil {
			return nil, fmt.Errorf("token: signing key %s: %w (wrong master key, or the row was altered)", row.ID, err)
		}
		defer clear(der)
		return Seal(newKey, der, []byte(row.ID), r)
	})
}

// openSigningKey decrypts and checks a storage row. Everything published
// is derived from the decrypted private key, never from the row's
// PublicJWK: someone who can write to the database but does not hold the
// master key cannot slip in a key of their own.
func openSigningKey(encKey []byte, row storage.SigningKey) (*signingKey, error) {
	switch row.Algorithm {
	case ES256, RS256, EdDSA:
	default:
		return nil, fmt.Errorf("token: signing key %s: unsupported algorithm %q", row.ID, row.Algorithm)
	}
	der, err := Open(encKey, row.PrivateKey, []byte(row.ID))
	if err != nil {
		return nil, fmt.Errorf("token: signing key %s: %w (wrong master key, or the row was altered)", row.ID, err)
	}
	parsed, err := x509.ParsePKCS8PrivateKey(der)
	clear(der)
	if err != nil {
		return nil, fmt.Errorf("token: signing key %s: parse private key: %w", row.ID, err)
	}
	priv, ok := parsed.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("token: signing key %s: %T is not a signing key", row.ID, parsed)
	}
	k, err := newSigningKey(row.Algorithm, priv)
	if err != nil {
		return nil, fmt.Errorf("token: signing key %s: %w", row.ID, err)
	}
	if k.kid != row.ID {
		return nil, fmt.Errorf("token: signing key %s: id does not match the key's thumbprint %s", row.ID, k.kid)
	}
	var stored jose.JSONWebKey
	if err := stored.UnmarshalJSON([]byte(row.PublicJWK)); err != nil {
		return nil, fmt.Errorf("token: signing key %s: parse public JWK: %w", row.ID, err)
	}
	if !stored.IsPublic() || stored.KeyID != k.kid || !sameThumbprint(&stored, &k.public) {
		return nil, fmt.Errorf("token: signing key %s: public JWK does not match the private key", row.ID)
	}
	k.sealed, k.publicJWK = row.PrivateKey, row.PublicJWK
	return k, nil
}

// unchanged reports whether row is the row k was opened from.
func (k *signingKey) unchanged(row storage.SigningKey) bool {
	return k.kid == row.ID && string(k.alg) == row.Algorithm &&
		bytes.Equal(k.sealed, row.PrivateKey) && k.publicJWK == row.PublicJWK
}

func sameThumbprint(a, b *jose.JSONWebKey) bool {
	ta, err := a.Thumbprint(crypto.SHA256)
	if err != nil {
		return false
	}
	tb, err := b.Thumbprint(crypto.SHA256)
	if err != nil {
		return false
	}
	return bytes.Equal(ta, tb)
}

// keyFitsAlg reports whether pub is a key alg can verify with, with the
// curve alg names and RSA keys of at least rsaKeyBits. go-jose checks the
// curve too; checking here as well lets callers skip unfit keys of a JWKS
// before trying them and gives a clearer error.
func keyFitsAlg(alg jose.SignatureAlgorithm, pub crypto.PublicKey) bool {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		switch alg {
		case jose.ES256:
			return k.Curve == elliptic.P256()
		case jose.ES384:
			return k.Curve == elliptic.P384()
		case jose.ES512:
			return k.Curve == elliptic.P521()
		}
	case *rsa.PublicKey:
		switch alg {
		case jose.RS256, jose.RS384, jose.RS512, jose.PS256, jose.PS384, jose.PS512:
			return k.N.BitLen() >= rsaKeyBits
		}
	case ed25519.PublicKey:
		return alg == jose.EdDSA && len(k) == ed25519.PublicKeySize
	}
	return false
}
