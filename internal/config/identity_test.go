package config

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestIdentityProvidersConfig reads identity.providers from a file, with
// the client secret from a file or the environment, and fills in the
// documented defaults (issue 14 item 1).
func TestIdentityProvidersConfig(t *testing.T) {
	dir := t.TempDir()
	secretFile := filepath.Join(dir, "acme.secret")
	must(t, os.WriteFile(secretFile, []byte("  file-secret\n"), 0o600))
	path := filepath.Join(dir, "c.yaml")
	must(t, os.WriteFile(path, []byte(`issuer: https://auth.example.com
identity:
  local: false
  providers:
    - name: acme
      display_name: Acme SSO
      issuer: https://idp.acme.example
      client_id: gatehouse
      client_secret_file: `+secretFile+`
      allowed_email_domains: [acme.example]
      required_claims: {groups: mcp-users}
      policy_claims: [department, level]
      link_by_verified_email: true
    - name: other
      issuer: https://login.other.example/v2
      client_id: gh2
      client_secret_env: OTHER_SECRET
      scopes: [openid, email]
      token_endpoint_auth_method: client_secret_post
      claims: {subject: oid, groups: roles}
`), 0o600))
	env := env(map[string]string{"OTHER_SECRET": "env-secret"})
	c, err := Load(path, env)
	if err != nil {
		t.Fatal(err)
	}
	must(t, c.Resolve(env))
	c.Keys.EncryptionKey = make([]byte, 32)
	must(t, c.Validate(false))
	if c.Identity.Local {
		t.Errorf("identity.local = true, want false from the file")
	}
	ps := c.Identity.Providers
	if len(ps) != 2 {
		t.Fatalf("providers = %+v, want 2", ps)
	}
	if ps[0].ClientSecret != "file-secret" || ps[1].ClientSecret != "env-secret" {
		t.Errorf("client secrets = %q, %q; want file-secret (trimmed), env-secret", ps[0].ClientSecret, ps[1].ClientSecret)
	}
	a, o := ps[0].WithDefaults(), ps[1].WithDefaults()
	if !slices.Equal(a.Scopes, []string{"openid", "email", "profile"}) || a.TokenEndpointAuthMethod != "client_secret_basic" ||
		a.Claims != (IdentityClaims{Subject: "sub", Email: "email", Name: "name", Groups: "groups"}) || a.DisplayName != "Acme SSO" {
		t.Errorf("acme with defaults = %+v", a)
	}
	if o.DisplayName != "other" || o.TokenEndpointAuthMethod != "client_secret_post" || o.Claims != (IdentityClaims{Subject: "oid", Email: "email", Name: "name", Groups: "roles"}) {
		t.Errorf("other with defaults = %+v", o)
	}
	if !a.LinkByVerifiedEmail || o.LinkByVerifiedEmail {
		t.Errorf("link_by_verified_email = %v, %v; want true from the file, false by default", a.LinkByVerifiedEmail, o.LinkByVerifiedEmail)
	}
	if !slices.Equal(a.PolicyClaims, []string{"department", "level"}) {
		t.Errorf("acme policy_claims = %v, want department, level", a.PolicyClaims)
	}
	if a.RequiredClaims["groups"] != "mcp-users" || !slices.Equal(a.AllowedEmailDomains, []string{"acme.example"}) {
		t.Errorf("acme rules = %v, %v", a.RequiredClaims, a.AllowedEmailDomains)
	}
	if red := c.Redacted(); strings.Contains(red, "file-secret") || strings.Contains(red, "env-secret") {
		t.Errorf("Redacted() shows a client secret:\n%s", red)
	}
	if !Default().Identity.Local {
		t.Errorf("Default().Identity.Local = false, want true")
	}
}

// TestIdentityValidate reports each problem of a provider at its key.
func TestIdentityValidate(t *testing.T) {
	good := func() IdentityProvider {
		return IdentityProvider{Name: "acme", Issuer: "https://idp.acme.example", ClientID: "gh", ClientSecretEnv: "S"}
	}
	for _, tt := range []struct {
		name       string
		mod        func(*Identity)
		insecureOK bool
		wantKey    string
		want       string
	}{
		{"no way to sign in", func(id *Identity) { id.Local, id.Providers = false, nil }, false, "identity.local", "nobody could sign in"},
		{"no name", func(id *Identity) { id.Providers[0].Name = "" }, false, "identity.providers[0].name", "name is required"},
		{"bad name", func(id *Identity) { id.Providers[0].Name = "Acme/x" }, false, "identity.providers[0].name", "lower-case letters"},
		{"duplicate name", func(id *Identity) { id.Providers = append(id.Providers, good()) }, false, "identity.providers[1].name", "names must be unique"},
		{"no issuer", func(id *Identity) { id.Providers[0].Issuer = "" }, false, "identity.providers[0].issuer", "is required"},
		{"http issuer", func(id *Identity) { id.Providers[0].Issuer = "http://idp.acme.example" }, true, "identity.providers[0].issuer", "must use https"},
		{"http loopback outside dev", func(id *Identity) { id.Providers[0].Issuer = "http://127.0.0.1:5556" }, false, "identity.providers[0].issuer", "must use https"},
		{"issuer with query", func(id *Identity) { id.Providers[0].Issuer = "https://idp.acme.example?x=1" }, false, "identity.providers[0].issuer", "query"},
		{"no client id", func(id *Identity) { id.Providers[0].ClientID = "" }, false, "identity.providers[0].client_id", "client_id is required"},
		{"no secret", func(id *Identity) { id.Providers[0].ClientSecretEnv = "" }, false, "identity.providers[0].client_secret_file", "set client_secret_file or client_secret_env"},
		{"two secrets", func(id *Identity) { id.Providers[0].ClientSecretFile = "/s" }, false, "identity.providers[0].client_secret_env", "not both"},
		{"no openid scope", func(id *Identity) { id.Providers[0].Scopes = []string{"email"} }, false, "identity.providers[0].scopes", "must include openid"},
		{"bad auth method", func(id *Identity) { id.Providers[0].TokenEndpointAuthMethod = "client_secret_jwt" }, false, "identity.providers[0].token_endpoint_auth_method", "client_secret_basic, client_secret_post or private_key_jwt"},
		{"private_key_jwt without a key", func(id *Identity) {
			id.Providers[0].TokenEndpointAuthMethod, id.Providers[0].ClientSecretEnv = "private_key_jwt", ""
		}, false, "identity.providers[0].private_key_file", "private_key_file is required with token_endpoint_auth_method private_key_jwt"},
		{"private_key_jwt with a secret", func(id *Identity) {
			id.Providers[0].TokenEndpointAuthMethod, id.Providers[0].PrivateKeyFile = "private_key_jwt", "/k.pem"
		}, false, "identity.providers[0].client_secret_env", "client_secret_env is not used with token_endpoint_auth_method private_key_jwt"},
		{"key file without private_key_jwt", func(id *Identity) { id.Providers[0].PrivateKeyFile = "/k.pem" }, false, "identity.providers[0].private_key_file", "only used with token_endpoint_auth_method: private_key_jwt"},
		{"key id without private_key_jwt", func(id *Identity) { id.Providers[0].KeyID = "k1" }, false, "identity.providers[0].key_id", "only used with token_endpoint_auth_method: private_key_jwt"},
		{"bad domain", func(id *Identity) { id.Providers[0].AllowedEmailDomains = []string{"@Acme.example"} }, false, "identity.providers[0].allowed_email_domains", "lower-case domain name"},
		{"empty required claim", func(id *Identity) { id.Providers[0].RequiredClaims = map[string]string{"": "x"} }, false, "identity.providers[0].required_claims", "must not be empty"},
		{"empty policy claim", func(id *Identity) { id.Providers[0].PolicyClaims = []string{"department", " "} }, false, "identity.providers[0].policy_claims", "policy_claims[1]: a claim name must not be empty"},
		{"policy claim twice", func(id *Identity) { id.Providers[0].PolicyClaims = []string{"department", "department"} }, false, "identity.providers[0].policy_claims", `"department" is listed twice`},
		{"bidi display name", func(id *Identity) { id.Providers[0].DisplayName = "Acme\u202e" }, false, "identity.providers[0].display_name", "invisible character"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			id := Identity{Local: true, Providers: []IdentityProvider{good()}}
			tt.mod(&id)
			errs := id.validate(tt.insecureOK)
			var found bool
			for _, err := range errs {
				if ke, ok := err.(*keyError); ok && ke.path == tt.wantKey && strings.Contains(err.Error(), tt.want) {
					found = true
				}
			}
			if !found {
				t.Errorf("validate() = %v, want %q at %s", errs, tt.want, tt.wantKey)
			}
		})
	}
	id := Identity{Local: true, Providers: []IdentityProvider{{Name: "acme", Issuer: "https://idp.acme.example", ClientID: "gh", TokenEndpointAuthMethod: "private_key_jwt", PrivateKeyFile: "/k.pem", KeyID: "k1"}}}
	if errs := id.validate(false); len(errs) != 0 {
		t.Errorf("private_key_jwt with a key file and no secret: validate() = %v, want nil", errs)
	}
	id = Identity{Local: true, Providers: []IdentityProvider{good()}}
	id.Providers[0].Issuer = "http://127.0.0.1:5556/dex"
	if errs := id.validate(true); len(errs) != 0 {
		t.Errorf("an http loopback issuer in dev: validate() = %v, want nil", errs)
	}
	if errs := (Identity{Local: true}).validate(false); len(errs) != 0 {
		t.Errorf("the default identity: validate() = %v, want nil", errs)
	}
}

// TestIdentitySecretEnvUnset names the variable that is not set.
func TestIdentitySecretEnvUnset(t *testing.T) {
	c := Default()
	c.src = &sources{}
	c.Identity.Providers = []IdentityProvider{{Name: "acme", Issuer: "https://idp.acme.example", ClientID: "gh", ClientSecretEnv: "ACME_SECRET"}}
	err := c.Resolve(env(nil))
	if err == nil || !strings.Contains(err.Error(), "identity.providers[0].client_secret_env: environment variable ACME_SECRET is not set") {
		t.Errorf("Resolve() = %v, want the unset variable named", err)
	}
}

// TestIdentityPrivateKeyFile reads private_key_jwt's key (issue 14 item
// 1): an ECDSA P-256 key (PKCS #8 or SEC 1) or an RSA key (PKCS #8 or
// PKCS #1) of 2048 bits or more; any other key, a public key, or no PEM
// is refused at identity.providers[0].private_key_file, saying why.
func TestIdentityPrivateKeyFile(t *testing.T) {
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	must(t, err)
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	must(t, err)
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	must(t, err)
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	must(t, err)
	_, ed, err := ed25519.GenerateKey(rand.Reader)
	must(t, err)
	pemOf := func(typ string) func([]byte, error) []byte {
		return func(der []byte, err error) []byte {
			must(t, err)
			return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
		}
	}
	pkcs8 := func(k any) []byte { return pemOf("PRIVATE KEY")(x509.MarshalPKCS8PrivateKey(k)) }
	for _, tt := range []struct {
		name string
		file []byte
		want string // "" means accepted
	}{
		{"EC PKCS #8", pkcs8(ec), ""},
		{"EC SEC 1", pemOf("EC PRIVATE KEY")(x509.MarshalECPrivateKey(ec)), ""},
		{"RSA PKCS #8", pkcs8(rsaKey), ""},
		{"RSA PKCS #1", pemOf("RSA PRIVATE KEY")(x509.MarshalPKCS1PrivateKey(rsaKey), nil), ""},
		{"P-384", pkcs8(p384), "only P-256"},
		{"RSA 1024", pkcs8(small), "at least 2048 bits"},
		{"Ed25519", pkcs8(ed), "only ECDSA P-256 (ES256) and RSA (RS256)"},
		{"public key", pemOf("PUBLIC KEY")(x509.MarshalPKIXPublicKey(&ec.PublicKey)), `"PUBLIC KEY" is not a private key`},
		{"not PEM", []byte("secret"), "no PEM block"},
		{"two keys", append(pkcs8(ec), pkcs8(ec)...), "one private key"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := filepath.Join(t.TempDir(), "key.pem")
			must(t, os.WriteFile(f, tt.file, 0o600))
			c := Default()
			c.src = &sources{}
			c.Identity.Providers = []IdentityProvider{{Name: "acme", Issuer: "https://idp.acme.example", ClientID: "gh",
				TokenEndpointAuthMethod: "private_key_jwt", PrivateKeyFile: f, KeyID: "k1"}}
			err := c.Resolve(env(nil))
			if tt.want == "" {
				if err != nil || c.Identity.Providers[0].PrivateKey == nil {
					t.Fatalf("Resolve() = %v, key %v; want the key read", err, c.Identity.Providers[0].PrivateKey)
				}
				if red := c.Redacted(); strings.Contains(red, "PRIVATE") || !strings.Contains(red, "private_key_file") {
					t.Errorf("Redacted() shows the key, or not its file:\n%s", red)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), "identity.providers[0].private_key_file") || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Resolve() = %v, want %q at identity.providers[0].private_key_file", err, tt.want)
			}
		})
	}
}
