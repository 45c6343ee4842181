package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"sigs.k8s.io/yaml"

	"github.com/gatehouse-mcp/gatehouse/internal/as"
	"github.com/gatehouse-mcp/gatehouse/internal/clientip"
	"github.com/gatehouse-mcp/gatehouse/internal/clientreg"
	"github.com/gatehouse-mcp/gatehouse/internal/safetext"
	"github.com/gatehouse-mcp/gatehouse/internal/web"
)

// Duration is a time.Duration that reads and writes as a Go duration
// string ("10m", "720h") in config files and the environment.
type Duration time.Duration

// MarshalJSON implements json.Marshaler.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON implements json.Unmarshaler.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("a duration must be a string such as \"10m\"")
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// Config is the whole configuration. Its json tags are the names used in
// the config file; environment variables are GATEHOUSE_<SECTION>_<FIELD>
// in upper case (e.g. GATEHOUSE_TOKENS_ACCESS_TOKEN_TTL).
type Config struct {
	// Issuer (issuer) is the issuer identifier: the public https URL of the
	// authorization server, no trailing slash. Required.
	Issuer string `json:"issuer"`
	// Listen (listen) is the address the server listens on. Default 127.0.0.1:8080.
	Listen string `json:"listen"`
	// AdminListen (admin_listen) serves /metrics and /healthz; empty disables it.
	// Default 127.0.0.1:9090.
	AdminListen string `json:"admin_listen"`
	// AllowInsecureIssuer (allow_insecure_issuer) permits an http issuer on
	// a non-loopback host. Only for a TLS-terminating proxy in front of a
	// private network; default false.
	AllowInsecureIssuer bool `json:"allow_insecure_issuer"`
	// TrustProxyHeaders (trust_proxy_headers) takes the client IP (of rate
	// limits, login throttling and audit events, of the authorization
	// server and the gateway) from X-Forwarded-For, read from the right.
	// Only behind a proxy that appends to it; default false.
	TrustProxyHeaders bool `json:"trust_proxy_headers"`
	// TrustedProxies (trusted_proxies) are the CIDR ranges or addresses of
	// the proxies whose X-Forwarded-For entries are believed: the header
	// counts only from them, and the client is the rightmost entry outside
	// them. Empty (the default) trusts one hop, the peer: the last entry
	// is the client. Needs trust_proxy_headers.
	TrustedProxies []string `json:"trusted_proxies"`

	Storage Storage `json:"storage"`
	Keys    Keys    `json:"keys"`
	Tokens  Tokens  `json:"tokens"`
	Login   Login   `json:"login"`
	Log     Log     `json:"log"`
	Audit   Audit   `json:"audit"`

	// Identity (identity) is who can sign in: local users and upstream
	// OpenID Connect providers.
	Identity     Identity     `json:"identity"`
	Registration Registration `json:"registration"`
	// TokenExchange (token_exchange) is the RFC 8693 token exchange
	// grant's policy; by default no client may exchange.
	TokenExchange TokenExchange `json:"token_exchange"`
	// DPoP (dpop) configures DPoP-bound tokens (RFC 9449) at the token
	// endpoint.
	DPoP DPoP `json:"dpop"`
	// Passkeys (passkeys) configures sign-in with passkeys (WebAuthn) on
	// the account and sign-in pages.
	Passkeys Passkeys `json:"passkeys"`
	Gateway  Gateway  `json:"gateway"`
	// Branding (branding) is what the browser pages show of who runs
	// this server.
	Branding Branding `json:"branding"`

	// src is where each value came from, for placing problems; set by
	// Load, shared with Gateway.src.
	src *sources
}

// DPoP configures DPoP (RFC 9449) at the token endpoint. Proofs are always
// accepted and bind the tokens issued with them.
type DPoP struct {
	// RequireNonce (require_nonce) makes every proof carry a nonce the
	// server issued (RFC 9449 §8): a proof without one is answered
	// use_dpop_nonce with the nonce, and the client retries. Default
	// false: one more round trip per token request for every DPoP client,
	// against proofs made in advance by someone who had the key briefly.
	RequireNonce bool `json:"require_nonce"`
}

// Passkeys configures passkeys (WebAuthn). By default they are on, with
// the issuer's host as the relying party ID and its origin as the only
// origin; on an issuer whose host is an IP address they are off unless
// rp_id names a domain (browsers refuse an IP address).
type Passkeys struct {
	// Disabled (disabled) turns passkeys off. Default false.
	Disabled bool `json:"disabled"`
	// RPID (rp_id) is the WebAuthn relying party ID: the issuer's host or
	// a registrable suffix of it. Default: the issuer's host. A passkey
	// works only under the RP ID it was made for: changing it strands
	// every registered passkey.
	RPID string `json:"rp_id"`
	// Origins (origins) are the origins (scheme://host[:port]) the pages
	// are reached on, each on the RP ID or a subdomain. Default: the
	// issuer's origin.
	Origins []string `json:"origins"`
}

// Storage selects and configures the storage backend.
type Storage struct {
	// Driver (driver) is sqlite or postgres. Default sqlite.
	Driver string `json:"driver"`
	// SQLitePath (sqlite_path) is the SQLite database file. Default ./gatehouse-data/gatehouse.db.
	SQLitePath string `json:"sqlite_path"`
	// PostgresDSNFile (postgres_dsn_file) is a file holding the PostgreSQL
	// connection string. The env var GATEHOUSE_STORAGE_POSTGRES_DSN may hold it directly.
	PostgresDSNFile string `json:"postgres_dsn_file"`
	// PostgresDSN is the resolved DSN (from the file or the environment);
	// never read from the config file and redacted when printed.
	PostgresDSN string `json:"-"`
	// GCInterval (gc_interval) is how often expired rows are deleted. Default 10m.
	GCInterval Duration `json:"gc_interval"`
}

// Keys configures signing keys.
type Keys struct {
	// EncryptionKeyFile (encryption_key_file) holds the 32-byte key (hex or
	// base64) that encrypts signing keys at rest. Required outside dev mode.
	EncryptionKeyFile string `json:"encryption_key_file"`
	// EncryptionKey is the decoded key; never printed.
	EncryptionKey []byte `json:"-"`
	// Algorithm (algorithm) signs access tokens: ES256 (default), RS256 or EdDSA.
	Algorithm string `json:"algorithm"`
	// RetireFor (retire_for) is how long a rotated-out key stays published.
	// Must exceed tokens.access_token_ttl. Default 24h.
	RetireFor Duration `json:"retire_for"`
	// RefreshInterval (refresh_interval) is how often a server re-reads the
	// signing keys from storage, so a rotation made by another replica or
	// the CLI is served (JWKS) and used (signing) within it. Default 30s.
	RefreshInterval Duration `json:"refresh_interval"`
	// ActivationDelay (activation_delay) is how long a rotated-in key is
	// published before it signs: long enough for every replica to reload
	// it and for resource servers' cached JWKS (max-age 60s) to expire.
	// Default 90s.
	ActivationDelay Duration `json:"activation_delay"`
}

// Tokens configures lifetimes.
type Tokens struct {
	// AccessTokenTTL (access_token_ttl). Default 10m.
	AccessTokenTTL Duration `json:"access_token_ttl"`
	// RefreshTokenTTL (refresh_token_ttl): idle lifetime of a refresh token. Default 720h.
	RefreshTokenTTL Duration `json:"refresh_token_ttl"`
	// GrantTTL (grant_ttl): absolute lifetime of a refresh-token family. Default 2160h.
	GrantTTL Duration `json:"grant_ttl"`
	// CodeTTL (code_ttl): authorization-code lifetime. Default 60s.
	CodeTTL Duration `json:"code_ttl"`
	// RefreshRetryWindow (refresh_retry_window): how long an identical
	// replay of a refresh request gets the same answer. Default 30s; "0s" uses the default, a negative value disables it.
	RefreshRetryWindow Duration `json:"refresh_retry_window"`
}

// Login configures browser sign-in.
type Login struct {
	// SessionTTL (session_ttl). Default 12h.
	SessionTTL Duration `json:"session_ttl"`
	// MaxFailures (max_failures) per account within Window (4× per IP). Default 5.
	MaxFailures int `json:"max_failures"`
	// Window (window) for counting failures. Default 15m.
	Window Duration `json:"window"`
}

// Branding is what the sign-in, consent and error pages show of who runs
// this server, besides the issuer's host, which they always show.
type Branding struct {
	// Name (name) is the display name of the server or organisation, e.g.
	// "Acme Corp": shown in the page header and window title, and on the
	// sign-in page as "Sign in to Acme Corp". At most 80 characters.
	// Default empty: the header says "Gatehouse" and the sign-in page
	// names only the host.
	Name string `json:"name"`
	// LogoURL (logo_url) is an image shown before the name in the page
	// header: an https URL, whose origin (and only that) is then added to
	// img-src of the pages' Content-Security-Policy, or a base64
	// data:image/png, jpeg, gif, webp or svg+xml URL of at most 32 KiB,
	// which needs no change to the policy and no request to another host.
	// Default empty: no logo.
	LogoURL string `json:"logo_url"`
}

// validate reports the problems of the branding section.
func (b Branding) validate() []error {
	var errs []error
	if n := utf8.RuneCountInString(b.Name); n > maxBrandingName {
		errs = append(errs, keyErrorf("branding.name", "branding.name is %d characters; the limit is %d", n, maxBrandingName))
	}
	if i := strings.IndexFunc(b.Name, func(r rune) bool { return !safetext.Shown(r) }); i >= 0 {
		errs = append(errs, keyErrorf("branding.name", "branding.name %q contains a control or invisible character at byte %d", b.Name, i))
	}
	if b.LogoURL != "" {
		if _, err := web.CheckLogoURL(b.LogoURL); err != nil {
			errs = append(errs, keyErrorf("branding.logo_url", "branding.logo_url %w", err))
		}
	}
	return errs
}

// maxBrandingName bounds branding.name: it is a heading on every page.
const maxBrandingName = 80

// Audit configures the audit log.
type Audit struct {
	// Retention (retention) is how long audit events are kept: the
	// periodic garbage collection of `gatehouse serve` deletes older ones.
	// Default 2160h (90 days); a negative value keeps them forever.
	Retention Duration `json:"retention"`
}

// Log configures logging.
type Log struct {
	// Level (level): debug, info, warn or error. Default info.
	Level string `json:"level"`
	// Format (format): text or json. Default text.
	Format string `json:"format"`
}

// Default returns the defaults.
func Default() Config {
	return Config{
		Listen:      "127.0.0.1:8080",
		AdminListen: "127.0.0.1:9090",
		Storage:     Storage{Driver: "sqlite", SQLitePath: "./gatehouse-data/gatehouse.db", GCInterval: Duration(10 * time.Minute)},
		Keys:        Keys{Algorithm: "ES256", RetireFor: Duration(24 * time.Hour), RefreshInterval: Duration(30 * time.Second), ActivationDelay: Duration(90 * time.Second)},
		Tokens: Tokens{
			AccessTokenTTL:     Duration(10 * time.Minute),
			RefreshTokenTTL:    Duration(720 * time.Hour),
			GrantTTL:           Duration(2160 * time.Hour),
			CodeTTL:            Duration(60 * time.Second),
			RefreshRetryWindow: Duration(30 * time.Second),
		},
		Login:         Login{SessionTTL: Duration(12 * time.Hour), MaxFailures: 5, Window: Duration(15 * time.Minute)},
		Log:           Log{Level: "info", Format: "text"},
		Audit:         Audit{Retention: Duration(2160 * time.Hour)},
		Identity:      Identity{Local: true},
		Registration:  DefaultRegistration(),
		TokenExchange: DefaultTokenExchange(),
	}
}

// Load builds the configuration from the defaults, the file at path (if
// not empty) and the environment lookup env (os.LookupEnv in production).
// Flags are applied by the caller afterwards (with [Config.SetFrom]), then
// Resolve and Validate.
//
// Its error is [Problems]: every unknown key, value of the wrong type and
// bad environment variable at once, each with its line or variable. A
// refused value keeps its default, so the Config returned is still worth
// validating unless [Problems.Fatal] (the file could not be read or
// parsed at all).
func Load(path string, env func(string) (string, bool)) (Config, error) {
	c := Default()
	c.src = &sources{file: path}
	c.Gateway.src = c.src
	var ps Problems
	if path != "" {
		raw, err := os.ReadFile(path)
		if err != nil {
			return c, Problems{{Source: path, Message: "cannot read the config file: " + readError(err), fatal: true}}
		}
		ps = decodeFile(path, raw, &c, c.src)
		if ps.Fatal() {
			return c, ps
		}
		c.Gateway.src = c.src // decoding replaced c.Gateway
	}
	ps = append(ps, applyEnv(reflect.ValueOf(&c).Elem(), "GATEHOUSE", "", env, c.src)...)
	return c, ps.err()
}

// readError is err from os.ReadFile without the path, which the Problem
// already names.
func readError(err error) string {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}

// applyEnv sets each field from GATEHOUSE_<PATH>, walking the json names,
// and returns a Problem for each variable that does not fit its field.
func applyEnv(v reflect.Value, prefix, path string, env func(string) (string, bool), src *sources) Problems {
	var ps Problems
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if !f.IsExported() || name == "" || name == "-" {
			continue
		}
		key := prefix + "_" + strings.ToUpper(name)
		kp := joinPath(path, name)
		fv := v.Field(i)
		if f.Type.Kind() == reflect.Struct {
			ps = append(ps, applyEnv(fv, key, kp, env, src)...)
			continue
		}
		s, ok := env(key)
		if !ok {
			continue
		}
		by := "environment variable " + key
		if err := setFromString(fv, s); err != nil {
			ps = append(ps, Problem{Source: by, Path: kp, Message: kp + ": " + err.Error(), refused: true})
			continue
		}
		if src.from == nil {
			src.from = map[string]string{}
		}
		src.from[kp] = by
	}
	return ps
}

// setFromString sets v from an environment variable's text, with the
// same words for a bad value as a bad line of the file.
func setFromString(v reflect.Value, s string) error {
	if v.Type() == durationType {
		d, err := time.ParseDuration(s)
		if err != nil {
			return fmt.Errorf("%q is not a duration: give a number and a unit, such as \"90s\", \"10m\" or \"720h\"", s)
		}
		v.SetInt(int64(d))
		return nil
	}
	switch v.Kind() {
	case reflect.String:
		v.SetString(s)
	case reflect.Bool:
		b, err := strconv.ParseBool(s)
		if err != nil {
			return fmt.Errorf("must be true or false, not %q", s)
		}
		v.SetBool(b)
	case reflect.Int, reflect.Int64:
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || v.OverflowInt(n) {
			return fmt.Errorf("must be a whole number, not %q", s)
		}
		v.SetInt(n)
	default:
		return fmt.Errorf("a %s cannot be set from the environment: set it in the config file", v.Type())
	}
	return nil
}

// Resolve reads the secrets the configuration points at: the encryption
// key file, each identity provider's client secret and the Postgres DSN (GATEHOUSE_STORAGE_POSTGRES_DSN, or
// GATEHOUSE_STORAGE_POSTGRES_DSN_FILE / postgres_dsn_file). Its error is
// [Problems], each at the line of the key that names the file.
func (c *Config) Resolve(env func(string) (string, bool)) error {
	var errs []error
	if dsn, ok := env("GATEHOUSE_STORAGE_POSTGRES_DSN"); ok {
		c.Storage.PostgresDSN = dsn
	} else if p := secretRefProblem("storage.postgres_dsn_file", c.Storage.PostgresDSNFile); p != "" {
		errs = append(errs, keyErrorf("storage.postgres_dsn_file", "%s", p))
	} else if c.Storage.PostgresDSNFile != "" {
		b, err := os.ReadFile(c.Storage.PostgresDSNFile)
		if err != nil {
			errs = append(errs, keyErrorf("storage.postgres_dsn_file", "storage.postgres_dsn_file: %w", err))
		}
		c.Storage.PostgresDSN = strings.TrimSpace(string(b))
	}
	if p := secretRefProblem("keys.encryption_key_file", c.Keys.EncryptionKeyFile); p != "" {
		errs = append(errs, keyErrorf("keys.encryption_key_file", "%s", p))
	} else if c.Keys.EncryptionKeyFile != "" {
		k, err := ReadKeyFile(c.Keys.EncryptionKeyFile)
		if err != nil {
			errs = append(errs, keyErrorf("keys.encryption_key_file", "keys.encryption_key_file: %w", err))
		}
		c.Keys.EncryptionKey = k
	}
	errs = append(errs, c.Identity.resolveSecrets(env)...)
	return c.src.locate(errs, true).err()
}

// Validate reports every problem with the configuration at once, as
// [Problems] placed at the line (or environment variable, or flag) of the
// key each is about. dev relaxes the rules that only make sense in
// production (an https issuer, an encryption key file).
func (c *Config) Validate(dev bool) error {
	var errs []error
	bad := func(cond bool, path, format string, args ...any) {
		if cond {
			errs = append(errs, keyErrorf(path, format, args...))
		}
	}
	u, err := url.Parse(c.Issuer)
	switch {
	case c.Issuer == "":
		errs = append(errs, keyErrorf("issuer", "issuer is required (the public https URL of this server)"))
	case err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http"):
		errs = append(errs, keyErrorf("issuer", "issuer %q must be an absolute https URL", c.Issuer))
	case urlPortProblem(u) != "":
		errs = append(errs, keyErrorf("issuer", "issuer %q: %s", c.Issuer, urlPortProblem(u)))
	default:
		bad(strings.HasSuffix(c.Issuer, "/"), "issuer", "issuer %q must not end with a slash", c.Issuer)
		bad(u.RawQuery != "" || u.Fragment != "", "issuer", "issuer %q must not have a query or fragment", c.Issuer)
		loop := clientreg.IsLoopbackHost(u.Hostname())
		bad(u.Scheme == "http" && !loop && !c.AllowInsecureIssuer, "issuer",
			"issuer %q uses http on a non-loopback host: use https, or set allow_insecure_issuer behind a TLS-terminating proxy", c.Issuer)
		bad(u.Scheme == "http" && loop && !dev && !c.AllowInsecureIssuer, "issuer",
			"issuer %q uses http: outside `gatehouse dev` the issuer must be https (or set allow_insecure_issuer)", c.Issuer)
	}
	bad(c.Listen == "", "listen", "listen is required")
	if c.Listen != "" {
		if err := CheckListen(c.Listen); err != nil {
			errs = append(errs, keyErrorf("listen", "listen %q: %v", c.Listen, err))
		}
	}
	if c.AdminListen != "" {
		if err := CheckListen(c.AdminListen); err != nil {
			errs = append(errs, keyErrorf("admin_listen", "admin_listen %q: %v", c.AdminListen, err))
		}
	}
	if _, err := clientip.ParseProxies(c.TrustedProxies); err != nil {
		errs = append(errs, keyErrorf("trusted_proxies", "trusted_proxies: %w", err))
	}
	bad(len(c.TrustedProxies) > 0 && !c.TrustProxyHeaders, "trusted_proxies", "trusted_proxies is set but trust_proxy_headers is false, so X-Forwarded-For is ignored: set trust_proxy_headers: true, or remove trusted_proxies")
	switch c.Storage.Driver {
	case "sqlite":
		bad(c.Storage.SQLitePath == "", "storage.sqlite_path", "storage.sqlite_path is required for the sqlite driver")
	case "postgres":
		bad(c.Storage.PostgresDSN == "", "storage.postgres_dsn_file", "storage: the postgres driver needs a DSN: set GATEHOUSE_STORAGE_POSTGRES_DSN or storage.postgres_dsn_file")
	default:
		errs = append(errs, keyErrorf("storage.driver", "storage.driver %q must be sqlite or postgres", c.Storage.Driver))
	}
	bad(c.Storage.GCInterval <= 0, "storage.gc_interval", "storage.gc_interval must be positive")
	bad(c.Audit.Retention == 0, "audit.retention", "audit.retention must not be 0s, which would delete every event: give a duration such as 2160h, or a negative one to keep events forever")
	bad(!dev && len(c.Keys.EncryptionKey) == 0, "keys.encryption_key_file", "keys.encryption_key_file is required: a 32-byte key (hex or base64) that encrypts signing keys at rest; create one with `gatehouse keys gen-kek`")
	bad(len(c.Keys.EncryptionKey) != 0 && len(c.Keys.EncryptionKey) != 32, "keys.encryption_key_file", "keys.encryption_key_file must hold exactly 32 bytes (got %d)", len(c.Keys.EncryptionKey))
	switch c.Keys.Algorithm {
	case "ES256", "RS256", "EdDSA":
	default:
		errs = append(errs, keyErrorf("keys.algorithm", "keys.algorithm %q must be ES256, RS256 or EdDSA", c.Keys.Algorithm))
	}
	bad(c.Tokens.AccessTokenTTL <= 0, "tokens.access_token_ttl", "tokens.access_token_ttl must be positive")
	bad(c.Tokens.AccessTokenTTL > Duration(24*time.Hour), "tokens.access_token_ttl", "tokens.access_token_ttl %s is too long: access tokens cannot be revoked at resource servers that verify locally; keep it under 24h", time.Duration(c.Tokens.AccessTokenTTL))
	bad(c.Keys.RetireFor <= c.Tokens.AccessTokenTTL+c.Keys.RefreshInterval+c.Keys.ActivationDelay, "keys.retire_for",
		"keys.retire_for (%s) must exceed tokens.access_token_ttl (%s) + keys.refresh_interval (%s) + keys.activation_delay (%s), or tokens signed by a rotated key stop verifying early",
		time.Duration(c.Keys.RetireFor), time.Duration(c.Tokens.AccessTokenTTL), time.Duration(c.Keys.RefreshInterval), time.Duration(c.Keys.ActivationDelay))
	bad(c.Keys.ActivationDelay < 0 || c.Keys.ActivationDelay > Duration(time.Hour), "keys.activation_delay", "keys.activation_delay must be between 0s and 1h")
	bad(c.Keys.RefreshInterval <= 0 || c.Keys.RefreshInterval > Duration(10*time.Minute), "keys.refresh_interval", "keys.refresh_interval must be between 1s and 10m")
	bad(c.Tokens.RefreshTokenTTL <= 0, "tokens.refresh_token_ttl", "tokens.refresh_token_ttl must be positive")
	bad(c.Tokens.GrantTTL < c.Tokens.RefreshTokenTTL, "tokens.grant_ttl", "tokens.grant_ttl must be at least tokens.refresh_token_ttl")
	bad(c.Tokens.CodeTTL <= 0 || c.Tokens.CodeTTL > Duration(10*time.Minute), "tokens.code_ttl", "tokens.code_ttl must be between 1s and 10m (OAuth 2.1 §4.1.2)")
	bad(c.Tokens.RefreshRetryWindow > Duration(5*time.Minute), "tokens.refresh_retry_window", "tokens.refresh_retry_window must be at most 5m: a longer window is a longer theft window")
	bad(c.Login.SessionTTL <= 0, "login.session_ttl", "login.session_ttl must be positive")
	bad(c.Login.MaxFailures <= 0, "login.max_failures", "login.max_failures must be positive")
	bad(c.Login.Window <= 0, "login.window", "login.window must be positive")
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		errs = append(errs, keyErrorf("log.level", "log.level %q must be debug, info, warn or error", c.Log.Level))
	}
	bad(c.Log.Format != "text" && c.Log.Format != "json", "log.format", "log.format %q must be text or json", c.Log.Format)
	errs = append(errs, c.Registration.validate(dev)...)
	errs = append(errs, c.TokenExchange.validate()...)
	errs = append(errs, c.Gateway.validate(c.Issuer, true)...)
	errs = append(errs, c.Branding.validate()...)
	if c.Issuer != "" {
		if err := as.CheckPasskeys(c.Issuer, c.PasskeyOptions()); err != nil {
			errs = append(errs, keyErrorf("passkeys", "passkeys: %v", strings.TrimPrefix(err.Error(), "as: passkeys ")))
		}
	}
	errs = append(errs, c.Identity.validate(dev || c.AllowInsecureIssuer)...)
	bad(c.Registration.IdleTTL != 0 && c.Registration.IdleTTL < c.Tokens.RefreshTokenTTL, "registration.idle_ttl",
		"registration.idle_ttl (%s) must be at least tokens.refresh_token_ttl (%s), or clients are reaped while their refresh tokens are still valid",
		time.Duration(c.Registration.IdleTTL), time.Duration(c.Tokens.RefreshTokenTTL))
	return Collect(c.src.locate(errs, false)).err()
}

// Redacted returns the configuration as YAML with secrets replaced.
func (c Config) Redacted() string {
	b, _ := json.Marshal(c)
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	st := m["storage"].(map[string]any)
	if c.Storage.PostgresDSN != "" {
		st["postgres_dsn"] = "<redacted>"
	}
	if len(c.Keys.EncryptionKey) > 0 {
		m["keys"].(map[string]any)["encryption_key"] = "<redacted: 32 bytes loaded>"
	}
	// A file or variable key holding what looks like the secret itself.
	redactSecretRef(st, "postgres_dsn_file", c.Storage.PostgresDSNFile)
	redactSecretRef(m["keys"].(map[string]any), "encryption_key_file", c.Keys.EncryptionKeyFile)
	if id, ok := m["identity"].(map[string]any); ok {
		ps, _ := id["providers"].([]any)
		for i, p := range ps {
			pm, _ := p.(map[string]any)
			if pm == nil || i >= len(c.Identity.Providers) {
				continue
			}
			redactSecretRef(pm, "client_secret_file", c.Identity.Providers[i].ClientSecretFile)
			redactSecretRef(pm, "client_secret_env", c.Identity.Providers[i].ClientSecretEnv)
		}
	}
	// An upstream URL may carry credentials in its userinfo or query.
	if gw, ok := m["gateway"].(map[string]any); ok {
		routes, _ := gw["routes"].([]any)
		for i, r := range routes {
			up, _ := r.(map[string]any)["upstream"].(map[string]any)
			if up == nil || i >= len(c.Gateway.Routes) {
				continue
			}
			u := c.Gateway.Routes[i].Upstream
			if u.URL != "" {
				up["url"] = redactURL(u.URL)
			}
			redactSecretRef(up, "header_value_file", u.HeaderValueFile)
			redactSecretRef(up, "header_value_env", u.HeaderValueEnv)
			envs, _ := up["env"].([]any)
			for j, e := range envs {
				em, _ := e.(map[string]any)
				if em == nil || j >= len(u.Env) {
					continue
				}
				redactSecretRef(em, "value_file", u.Env[j].ValueFile)
				redactSecretRef(em, "value_env", u.Env[j].ValueEnv)
			}
		}
	}
	y, _ := yaml.Marshal(m)
	return string(y)
}

// redactSecretRef replaces m[key], whose value v is that of a *_file or
// *_env key pointing at a secret, when v looks like the secret itself
// (secretRefProblem).
func redactSecretRef(m map[string]any, key, v string) {
	switch {
	case secretRefProblem(key, v) == "":
	case strings.HasSuffix(key, "_env"):
		m[key] = "<redacted: not a variable name>"
	default:
		m[key] = "<redacted: not a file path>"
	}
}

// notAPath reports whether v, the value of a key that names a file
// holding a secret (postgres_dsn_file, a header_value_file), looks like
// the secret itself: a URL with credentials, a DSN with spaces, a header
// such as "Bearer …". Such a value is never quoted in a message or in
// the printed configuration.
func notAPath(v string) bool {
	return strings.Contains(v, "://") || strings.ContainsAny(v, "@ \t\r\n")
}

// envNameRE is what an environment variable name is: a value of a *_env
// key that is not one is likely the secret itself.
var envNameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// secretRefProblem is the problem with the value v of key, a *_file or
// *_env key that points at a secret, when v looks like the secret itself;
// "" when it is a plausible path or variable name. It never quotes v.
func secretRefProblem(key, v string) string {
	if strings.HasSuffix(key, "_env") {
		if v != "" && !envNameRE.MatchString(v) {
			return key + " must name an environment variable (letters, digits and _), and this value is not one: it looks like the secret itself, which is not shown; put it in the environment and name the variable here"
		}
		return ""
	}
	if v != "" && notAPath(v) {
		return key + " must be the path of a file holding the secret, and this value looks like the secret itself, which is not shown; put it in a file and name the file here"
	}
	return ""
}

// redactURL hides a URL's userinfo and query, which may hold credentials.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "<redacted: not a URL>"
	}
	if u.User != nil {
		u.User = url.User("redacted")
	}
	if u.RawQuery != "" {
		u.RawQuery = "redacted"
	}
	return u.String()
}

// PasskeyOptions is c.Passkeys as the authorization server takes them.
func (c *Config) PasskeyOptions() as.Passkeys {
	return as.Passkeys{Disabled: c.Passkeys.Disabled, RPID: c.Passkeys.RPID, Origins: c.Passkeys.Origins}
}
