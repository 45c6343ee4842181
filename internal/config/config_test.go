package config

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func env(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func TestLoadLayers(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "gatehouse.yaml")
	must(t, os.WriteFile(path, []byte("issuer: https://auth.example.com\ntokens:\n  access_token_ttl: 5m\nlogin:\n  max_failures: 7\n"), 0o600))
	c, err := Load(path, env(map[string]string{"GATEHOUSE_LOGIN_MAX_FAILURES": "9", "GATEHOUSE_STORAGE_DRIVER": "postgres"}))
	if err != nil {
		t.Fatal(err)
	}
	if c.Issuer != "https://auth.example.com" || time.Duration(c.Tokens.AccessTokenTTL) != 5*time.Minute {
		t.Errorf("file values not applied: %+v", c)
	}
	if c.Login.MaxFailures != 9 || c.Storage.Driver != "postgres" {
		t.Errorf("env did not override the file: max_failures=%d driver=%q", c.Login.MaxFailures, c.Storage.Driver)
	}
	if time.Duration(c.Tokens.CodeTTL) != time.Minute {
		t.Errorf("default code_ttl lost: %v", time.Duration(c.Tokens.CodeTTL))
	}
}

// TestAuditRetentionConfig: audit.retention defaults to 90 days, is read
// from the file and GATEHOUSE_AUDIT_RETENTION, may be negative (forever)
// and is refused at 0s (which would delete the whole log).
func TestAuditRetentionConfig(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.yaml")
	must(t, os.WriteFile(path, []byte("issuer: https://auth.example.com\naudit:\n  retention: 720h\n"), 0o600))
	for _, tt := range []struct {
		name    string
		path    string
		env     map[string]string
		want    time.Duration
		wantErr string
	}{
		{"default", "", nil, 2160 * time.Hour, ""},
		{"file", path, nil, 720 * time.Hour, ""},
		{"env over file", path, map[string]string{"GATEHOUSE_AUDIT_RETENTION": "48h"}, 48 * time.Hour, ""},
		{"negative keeps forever", "", map[string]string{"GATEHOUSE_AUDIT_RETENTION": "-1s"}, -time.Second, ""},
		{"zero refused", "", map[string]string{"GATEHOUSE_AUDIT_RETENTION": "0s"}, 0, "audit.retention must not be 0s"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Load(tt.path, env(tt.env))
			if err != nil {
				t.Fatal(err)
			}
			if got := time.Duration(c.Audit.Retention); got != tt.want {
				t.Errorf("audit.retention = %v, want %v", got, tt.want)
			}
			c.Issuer = "https://auth.example.com"
			c.Keys.EncryptionKey = make([]byte, 32)
			err = c.Validate(false)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("Validate = %v, want nil", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("Validate = %v, want %q", err, tt.wantErr)
			}
		})
	}
}

func TestLoadRejectsUnknownKeys(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.yaml")
	must(t, os.WriteFile(path, []byte("issuer: https://a.example\ntokens:\n  acess_token_ttl: 5m\n"), 0o600))
	_, err := Load(path, env(nil))
	if err == nil || !strings.Contains(err.Error(), "acess_token_ttl") {
		t.Errorf("Load with a misspelt key = %v, want an error naming it", err)
	}
}

func TestValidateReportsEverything(t *testing.T) {
	c := Default()
	c.Issuer = "http://auth.example.com/"
	c.Storage.Driver = "postgres"
	c.Keys.Algorithm = "HS256"
	c.Tokens.CodeTTL = Duration(time.Hour)
	c.Log.Level = "loud"
	err := c.Validate(false)
	if err == nil {
		t.Fatal("Validate = nil, want errors")
	}
	for _, want := range []string{
		"must not end with a slash", "non-loopback host", "needs a DSN", "keys.encryption_key_file is required",
		`keys.algorithm "HS256"`, "tokens.code_ttl", `log.level "loud"`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Validate error lacks %q:\n%v", want, err)
		}
	}
}

func TestValidateDevAndProduction(t *testing.T) {
	c := Default()
	c.Issuer = "http://127.0.0.1:8080"
	if err := c.Validate(true); err != nil {
		t.Errorf("dev config: %v", err)
	}
	if err := c.Validate(false); err == nil || !strings.Contains(err.Error(), "outside `gatehouse dev`") {
		t.Errorf("http loopback issuer in production = %v, want refused", err)
	}
	c.Issuer = "https://auth.example.com"
	c.Keys.EncryptionKey = make([]byte, 32)
	if err := c.Validate(false); err != nil {
		t.Errorf("production config: %v", err)
	}
}

// TestIssuerLoopback (issue 11, item 8e): an http issuer is accepted in
// dev mode only on a loopback host, parsed as an address: a DNS name that
// merely starts with "127." is not one.
func TestIssuerLoopback(t *testing.T) {
	for _, tt := range []struct {
		host     string
		loopback bool
	}{
		{"127.0.0.1", true},
		{"127.1.2.3", true},
		{"[::1]", true},
		{"localhost", true},
		{"127.example.com", false},
		{"127.0.0.1.nip.io", false},
		{"0177.0.0.1", false},
	} {
		c := Default()
		c.Issuer = "http://" + tt.host + ":8080"
		err := c.Validate(true)
		want := fmt.Sprintf("issuer %q uses http on a non-loopback host", c.Issuer)
		switch {
		case tt.loopback && err != nil:
			t.Errorf("Validate(dev) with issuer %s = %v, want nil", c.Issuer, err)
		case !tt.loopback && (err == nil || !strings.Contains(err.Error(), want)):
			t.Errorf("Validate(dev) with issuer %s = %v, want %q", c.Issuer, err, want)
		}
	}
}

func TestRedactedHidesSecrets(t *testing.T) {
	c := Default()
	c.Storage.PostgresDSN = "postgres://u:hunter2@db/x"
	c.Keys.EncryptionKey = []byte(strings.Repeat("k", 32))
	c.Gateway.Routes = []GatewayRoute{{Name: "r", URL: "https://gw.example/r/mcp",
		Upstream: GatewayUpstream{URL: "https://svc:sekrit@up.example/mcp?api_key=topsecret"}}}
	out := c.Redacted()
	if strings.Contains(out, "hunter2") || strings.Contains(out, "kkkk") || strings.Contains(out, "sekrit") || strings.Contains(out, "topsecret") {
		t.Errorf("Redacted leaks a secret:\n%s", out)
	}
	if !strings.Contains(out, "<redacted") {
		t.Errorf("Redacted does not mark redactions:\n%s", out)
	}
}

func TestDecodeKey(t *testing.T) {
	for _, s := range []string{strings.Repeat("ab", 32), "q83vEjRWeJq83vEjRWeJq83vEjRWeJq83vEjRWeJq80="} {
		if k, err := DecodeKey(s); err != nil || len(k) != 32 {
			t.Errorf("DecodeKey(%q) = %d bytes, %v", s, len(k), err)
		}
	}
	if _, err := DecodeKey("short"); err == nil {
		t.Errorf("DecodeKey(short) = nil error")
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestTrustedProxiesConfig: trusted_proxies is read from the file as CIDR
// ranges or addresses; an entry that is neither, or the list without
// trust_proxy_headers, is refused with a message naming it.
func TestTrustedProxiesConfig(t *testing.T) {
	for _, tt := range []struct {
		name    string
		yaml    string
		wantErr string
	}{
		{"ranges and addresses", "trust_proxy_headers: true\ntrusted_proxies: [10.0.0.0/8, 192.0.2.7, \"2001:db8::/32\"]\n", ""},
		{"one hop", "trust_proxy_headers: true\n", ""},
		{"not a range", "trust_proxy_headers: true\ntrusted_proxies: [10.0.0.0/8, proxy.internal]\n", `trusted_proxies: "proxy.internal" is not a CIDR range`},
		{"prefix too long", "trust_proxy_headers: true\ntrusted_proxies: [10.0.0.0/33]\n", `"10.0.0.0/33" is not a CIDR range`},
		{"IPv4-mapped range", "trust_proxy_headers: true\ntrusted_proxies: [\"::ffff:10.0.0.0/104\"]\n", "write it as IPv4"},
		{"without trust_proxy_headers", "trusted_proxies: [10.0.0.0/8]\n", "trusted_proxies is set but trust_proxy_headers is false"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "c.yaml")
			must(t, os.WriteFile(path, []byte("issuer: https://auth.example.com\n"+tt.yaml), 0o600))
			c, err := Load(path, env(nil))
			if err != nil {
				t.Fatal(err)
			}
			c.Keys.EncryptionKey = make([]byte, 32)
			err = c.Validate(false)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("Validate = %v, want nil", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("Validate = %v, want %q", err, tt.wantErr)
			}
		})
	}
}

// TestBrandingConfig: branding.name and branding.logo_url are read from
// the file and from GATEHOUSE_BRANDING_NAME / GATEHOUSE_BRANDING_LOGO_URL,
// default to empty, and a logo that is not https or a data:image URL, or
// a name with invisible characters, is refused naming the key.
func TestBrandingConfig(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.yaml")
	must(t, os.WriteFile(path, []byte("issuer: https://auth.example.com\nbranding:\n  name: Acme Corp\n  logo_url: https://cdn.acme.example/logo.svg\n"), 0o600))
	for _, tt := range []struct {
		name, path       string
		env              map[string]string
		wantName, wantLU string
		wantErr          string
	}{
		{"default", "", nil, "", "", ""},
		{"file", path, nil, "Acme Corp", "https://cdn.acme.example/logo.svg", ""},
		{"env over file", path, map[string]string{"GATEHOUSE_BRANDING_NAME": "Acme Research", "GATEHOUSE_BRANDING_LOGO_URL": "data:image/png;base64,iVBORw0KGgo="},
			"Acme Research", "data:image/png;base64,iVBORw0KGgo=", ""},
		{"http logo", "", map[string]string{"GATEHOUSE_BRANDING_LOGO_URL": "http://cdn.acme.example/logo.png"}, "", "http://cdn.acme.example/logo.png", "branding.logo_url must be an https URL"},
		{"html data logo", "", map[string]string{"GATEHOUSE_BRANDING_LOGO_URL": "data:text/html;base64,PGI+"}, "", "data:text/html;base64,PGI+", "branding.logo_url a data: logo must be one of"},
		{"bidi name", "", map[string]string{"GATEHOUSE_BRANDING_NAME": "Acme\u202eCorp"}, "Acme\u202eCorp", "", `branding.name "Acme\u202eCorp" contains a control or invisible character`},
		{"long name", "", map[string]string{"GATEHOUSE_BRANDING_NAME": strings.Repeat("A", 81)}, strings.Repeat("A", 81), "", "branding.name is 81 characters; the limit is 80"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Load(tt.path, env(tt.env))
			if err != nil {
				t.Fatal(err)
			}
			if c.Branding.Name != tt.wantName || c.Branding.LogoURL != tt.wantLU {
				t.Errorf("branding = %+v, want name %q, logo_url %q", c.Branding, tt.wantName, tt.wantLU)
			}
			c.Issuer = "https://auth.example.com"
			c.Keys.EncryptionKey = make([]byte, 32)
			err = c.Validate(false)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("Validate = %v, want nil", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("Validate = %v, want %q", err, tt.wantErr)
			}
		})
	}
}

// TestSecretsInWrongPlacesNotEchoed (review finding): a secret put where a
// file path, a variable name or a mapping belongs is named as a problem
// but never quoted, neither in the problem nor in the printed
// configuration; an upstream URL's credentials stay out of its problems.
func TestSecretsInWrongPlacesNotEchoed(t *testing.T) {
	const secret = "HUNTER2pw"
	dir := t.TempDir()
	for _, tt := range []struct {
		name, yaml, want string
	}{
		{"DSN as the DSN file", "storage:\n  driver: postgres\n  postgres_dsn_file: postgres://admin:" + secret + "@db/gh\n", "storage.postgres_dsn_file must be the path of a file holding the secret"},
		{"key as the key file", "keys:\n  encryption_key_file: \"" + secret + " " + secret + "\"\n", "keys.encryption_key_file must be the path of a file holding the secret"},
		{"DSN as the storage mapping", "storage: postgres://admin:" + secret + "@db/gh\n", "storage: must be a mapping of keys"},
		{"header value as its variable", "gateway:\n  routes:\n    - name: r\n      url: https://gw.example.com/r/mcp\n      upstream:\n        url: https://up.example.com/mcp\n        header_value_env: \"Bearer sk-" + secret + "\"\n", "header_value_env must name an environment variable"},
		{"client secret inline", "identity:\n  providers:\n    - name: acme\n      issuer: https://idp.example.com\n      client_id: gh\n      client_secret: " + secret + "\n", "the client secret is never read from the config file: set client_secret_file or client_secret_env"},
		{"client secret as its variable", "identity:\n  providers:\n    - name: acme\n      issuer: https://idp.example.com\n      client_id: gh\n      client_secret_env: \"" + secret + " x\"\n", "identity.providers[0].client_secret_env must name an environment variable"},
		{"credentials in a bad upstream URL", "gateway:\n  routes:\n    - name: r\n      url: https://gw.example.com/r/mcp\n      upstream:\n        url: ftp://svc:" + secret + "@up.example.com/mcp?key=" + secret + "\n", "upstream.url"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(tt.name, " ", "_")+".yaml")
			if err := os.WriteFile(path, []byte("issuer: https://auth.example.com\n"+tt.yaml), 0o600); err != nil {
				t.Fatal(err)
			}
			env := func(string) (string, bool) { return "", false }
			c, err := Load(path, env)
			var all []string
			if err != nil {
				all = append(all, err.Error())
			}
			if !Collect(err).Fatal() {
				if rerr := c.Resolve(env); rerr != nil {
					all = append(all, rerr.Error())
				}
				if gerr := c.Gateway.Resolve(env); gerr != nil {
					all = append(all, gerr.Error())
				}
				if verr := c.Validate(false); verr != nil {
					all = append(all, verr.Error())
				}
				all = append(all, c.Redacted())
			}
			text := strings.Join(all, "\n")
			if !strings.Contains(text, tt.want) {
				t.Errorf("problems do not say %q:\n%s", tt.want, text)
			}
			if strings.Contains(text, secret) {
				t.Errorf("the secret appears in the problems or the printed configuration:\n%s", text)
			}
		})
	}
}

// TestDPoPConfig: dpop.require_nonce defaults to false and is read from
// the file and from GATEHOUSE_DPOP_REQUIRE_NONCE.
func TestDPoPConfig(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.yaml")
	must(t, os.WriteFile(path, []byte("issuer: https://auth.example.com\n"), 0o600))
	c, err := Load(path, env(nil))
	if err != nil || c.DPoP.RequireNonce {
		t.Fatalf("default: require_nonce %v, %v; want false", c.DPoP.RequireNonce, err)
	}
	must(t, os.WriteFile(path, []byte("issuer: https://auth.example.com\ndpop:\n  require_nonce: true\n"), 0o600))
	if c, err = Load(path, env(nil)); err != nil || !c.DPoP.RequireNonce {
		t.Errorf("from the file: require_nonce %v, %v; want true", c.DPoP.RequireNonce, err)
	}
	must(t, os.WriteFile(path, []byte("issuer: https://auth.example.com\n"), 0o600))
	if c, err = Load(path, env(map[string]string{"GATEHOUSE_DPOP_REQUIRE_NONCE": "true"})); err != nil || !c.DPoP.RequireNonce {
		t.Errorf("from the environment: require_nonce %v, %v; want true", c.DPoP.RequireNonce, err)
	}
}

// TestPasskeysConfig: passkeys.rp_id and passkeys.origins are read from
// the file; an IP-address rp_id and an origin off the rp_id are problems
// named by their key.
func TestPasskeysConfig(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.yaml")
	must(t, os.WriteFile(path, []byte("issuer: https://auth.example.com\npasskeys:\n  rp_id: example.com\n  origins: [https://auth.example.com, https://login.example.com]\n"), 0o600))
	c, err := Load(path, env(nil))
	if err != nil || c.Passkeys.RPID != "example.com" || len(c.Passkeys.Origins) != 2 {
		t.Fatalf("passkeys = %+v, %v; want rp_id example.com and two origins", c.Passkeys, err)
	}
	for _, tc := range []struct{ yaml, want string }{
		{"passkeys:\n  rp_id: 10.0.0.1\n", `passkeys: rp_id "10.0.0.1" is an IP address`},
		{"passkeys:\n  origins: [https://evil.example.net]\n", `passkeys: origin "https://evil.example.net" is not on the rp_id "auth.example.com"`},
	} {
		must(t, os.WriteFile(path, []byte("issuer: https://auth.example.com\n"+tc.yaml), 0o600))
		c, err := Load(path, env(nil))
		must(t, err)
		if err := c.Validate(false); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Validate() of %q = %v, want an error containing %q", tc.yaml, err, tc.want)
		}
	}
}
