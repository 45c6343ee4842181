package config

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// writeKey writes a P-256 key's public half (or, with private, the key
// itself) as PEM and returns the file.
func writeKey(t *testing.T, dir, name string, private bool) string {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	must(t, err)
	var b *pem.Block
	if private {
		der, err := x509.MarshalPKCS8PrivateKey(k)
		must(t, err)
		b = &pem.Block{Type: "PRIVATE KEY", Bytes: der}
	} else {
		der, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
		must(t, err)
		b = &pem.Block{Type: "PUBLIC KEY", Bytes: der}
	}
	path := filepath.Join(dir, name)
	must(t, os.WriteFile(path, pem.EncodeToMemory(b), 0o600))
	return path
}

// TestIdentityDelegateConfig reads identity.delegate with its public keys
// from files, and reports each thing wrong with it (issue 14 item 2).
func TestIdentityDelegateConfig(t *testing.T) {
	dir := t.TempDir()
	pub1, pub2 := writeKey(t, dir, "saas1.pub", false), writeKey(t, dir, "saas2.pub", false)
	load := func(t *testing.T, delegate string) (Config, error) {
		t.Helper()
		path := filepath.Join(t.TempDir(), "c.yaml")
		must(t, os.WriteFile(path, []byte("issuer: https://auth.example.com\nidentity:\n  local: false\n  delegate:\n"+delegate), 0o600))
		c, err := Load(path, env(nil))
		if err != nil {
			return c, err
		}
		if err := c.Resolve(env(nil)); err != nil {
			return c, err
		}
		c.Keys.EncryptionKey = make([]byte, 32)
		return c, c.Validate(false)
	}
	c, err := load(t, "    id: acme-notes\n    display_name: Acme Notes\n    login_url: https://app.acme.example/gatehouse/login?tenant=1\n    public_key_files: ["+pub1+", "+pub2+"]\n")
	if err != nil {
		t.Fatal(err)
	}
	d := c.Identity.Delegate
	if d == nil || d.ID != "acme-notes" || len(d.Keys) != 2 || d.Keys[0].Algorithm != "ES256" || d.Keys[0].KeyID == "" || d.Keys[0].KeyID == d.Keys[1].KeyID {
		t.Errorf("identity.delegate = %+v, want two ES256 keys with their thumbprints as kid", d)
	}
	for _, tt := range []struct{ name, delegate, want string }{
		{"no id", "    login_url: https://app.example\n    public_key_files: [" + pub1 + "]\n", "identity.delegate.id"},
		{"http login URL", "    id: a\n    login_url: http://app.example/login\n    public_key_files: [" + pub1 + "]\n", "must use https"},
		{"no login URL", "    id: a\n    public_key_files: [" + pub1 + "]\n", "identity.delegate.login_url is required"},
		{"no keys", "    id: a\n    login_url: https://app.example/login\n", "identity.delegate.public_key_files is required"},
		{"private key", "    id: a\n    login_url: https://app.example/login\n    public_key_files: [" + writeKey(t, dir, "saas.key", true) + "]\n", "give Gatehouse the public key only"},
		{"missing key file", "    id: a\n    login_url: https://app.example/login\n    public_key_files: [" + filepath.Join(dir, "nope.pub") + "]\n", "no such file"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := load(t, tt.delegate)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error = %v, want one naming %q", err, tt.want)
			}
		})
	}
}
