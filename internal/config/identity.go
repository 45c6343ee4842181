package config

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strings"
	"unicode/utf8"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/gatehouse-mcp/gatehouse/internal/as"
	"github.com/gatehouse-mcp/gatehouse/internal/clientreg"
	"github.com/gatehouse-mcp/gatehouse/internal/safetext"
	"github.com/gatehouse-mcp/gatehouse/internal/token"
)

// Identity configures who can sign in at the authorization server: local
// password users, and people of upstream OpenID Connect providers (issue
// 14 item 1).
type Identity struct {
	// Local (local) offers the username and password form of local users
	// on the sign-in page. Default true. false leaves only the providers'
	// buttons, and needs at least one provider.
	Local bool `json:"local"`
	// Providers (providers) are the upstream OpenID Connect providers the
	// sign-in page offers as "Continue with <display_name>". Default none.
	Providers []IdentityProvider `json:"providers"`
	// Delegate (delegate) is a SaaS that keeps its own login page and
	// users and signs them in to Gatehouse (delegated login, see
	// docs/identity.md). Default none.
	Delegate *IdentityDelegate `json:"delegate,omitempty"`
}

// IdentityDelegate configures delegated login: Gatehouse sends the
// browser to LoginURL with a one-time login_challenge, and the SaaS sends
// it back to <issuer>/login/delegate/callback?assertion=<JWS> signed with
// its private key.
type IdentityDelegate struct {
	// ID (id) names the SaaS: the iss of its assertions, and part of the
	// user names of the people it signs in (oidc:delegate:<id>:<sub>).
	// Required: 1 to 32 lower-case letters, digits and '-'. Renaming it
	// makes its people new users.
	ID string `json:"id"`
	// DisplayName (display_name) is what the sign-in button and error
	// pages say: "Continue with <display_name>". Default the id.
	DisplayName string `json:"display_name,omitempty"`
	// LoginURL (login_url) is the SaaS's login page; Gatehouse adds
	// login_challenge (and prompt, max_age when a client asks) to its
	// query. Required; https (http only on a loopback host, in
	// `gatehouse dev` or with allow_insecure_issuer).
	LoginURL string `json:"login_url"`
	// PublicKeyFiles (public_key_files) are files holding the SaaS's
	// public signing keys: PEM PUBLIC KEY blocks or a JSON Web Key (Set),
	// ECDSA P-256 (ES256) or Ed25519 (EdDSA) only. Several allow a key
	// rotation. Required.
	PublicKeyFiles []string `json:"public_key_files"`
	// Keys are the keys read from PublicKeyFiles; never read from the
	// config file.
	Keys []jose.JSONWebKey `json:"-"`
}

// IdentityProvider is one upstream OpenID Connect provider. Gatehouse is
// its client (a confidential web client, authorization code with PKCE,
// state and nonce); its redirect URI is <issuer>/login/oidc/<name>/callback.
type IdentityProvider struct {
	// Name (name) identifies the provider in URLs, audit events and user
	// names: 1 to 32 lower-case letters, digits and '-', starting with a
	// letter or digit. Required; unique. Renaming it makes its people new
	// users.
	Name string `json:"name"`
	// DisplayName (display_name) is what the button and error pages say:
	// "Continue with <display_name>". Default the name. At most 80
	// characters.
	DisplayName string `json:"display_name,omitempty"`
	// Issuer (issuer) is the provider's issuer identifier; its metadata is
	// read from <issuer>/.well-known/openid-configuration. Required; https
	// (http only on a loopback host, in `gatehouse dev` or with
	// allow_insecure_issuer).
	Issuer string `json:"issuer"`
	// ClientID (client_id) is Gatehouse's client id at the provider.
	// Required.
	ClientID string `json:"client_id"`
	// ClientSecretFile (client_secret_file) is a file holding Gatehouse's
	// client secret at the provider (surrounding white space trimmed).
	// Exactly one of client_secret_file and client_secret_env is required;
	// the secret itself is never written in the config file.
	ClientSecretFile string `json:"client_secret_file,omitempty"`
	// ClientSecretEnv (client_secret_env) is an environment variable
	// holding the client secret.
	ClientSecretEnv string `json:"client_secret_env,omitempty"`
	// ClientSecret is the resolved secret; never read from the config
	// file and never printed.
	ClientSecret string `json:"-"`
	// Scopes (scopes) are requested from the provider; they must include
	// openid. Default [openid, email, profile].
	Scopes []string `json:"scopes,omitempty"`
	// Claims (claims) names the claims Gatehouse reads.
	Claims IdentityClaims `json:"claims"`
	// TokenEndpointAuthMethod (token_endpoint_auth_method) is how
	// Gatehouse authenticates at the provider's token endpoint:
	// client_secret_basic (the default, as in OpenID Connect),
	// client_secret_post, or private_key_jwt (OpenID Connect Core §9, RFC
	// 7523: a JWT signed with PrivateKeyFile; no client secret then).
	TokenEndpointAuthMethod string `json:"token_endpoint_auth_method,omitempty"`
	// PrivateKeyFile (private_key_file) is a PEM file holding the private
	// key of private_key_jwt: an ECDSA P-256 key (signs ES256) or an RSA
	// key of at least 2048 bits (RS256), as a PKCS #8 "PRIVATE KEY",
	// "EC PRIVATE KEY" or "RSA PRIVATE KEY" block. Required with
	// private_key_jwt, and only allowed with it.
	PrivateKeyFile string `json:"private_key_file,omitempty"`
	// KeyID (key_id) is the kid header of the client assertions: the
	// key's id in the JWK Set registered at the provider. Default none.
	// Only with private_key_jwt.
	KeyID string `json:"key_id,omitempty"`
	// PrivateKey is the key read from PrivateKeyFile; never read from the
	// config file and never printed.
	PrivateKey crypto.Signer `json:"-"`
	// AllowedEmailDomains (allowed_email_domains), when set, admits only
	// people whose email claim is at one of these domains (exact match,
	// case-insensitive; a subdomain is not its parent) and is not marked
	// unverified (email_verified false). Default empty: any email, or none.
	AllowedEmailDomains []string `json:"allowed_email_domains,omitempty"`
	// LinkByVerifiedEmail (link_by_verified_email) links the first
	// sign-in of a person of this provider to an existing local user
	// instead of provisioning a new one, when the email claim has
	// email_verified true (the JSON boolean) and exactly one local user's
	// name equals the address (ignoring case: local users have no email
	// field, so only users named by their email address can match), and
	// that user has no identity at this provider yet. Audited as
	// user.linked. Default false: nobody is linked.
	LinkByVerifiedEmail bool `json:"link_by_verified_email,omitempty"`
	// RequiredClaims (required_claims) admits only people whose claims
	// have these values: a string claim equal to the value, a boolean
	// claim equal to "true" or "false", or a list claim (such as groups)
	// containing it. Default none.
	RequiredClaims map[string]string `json:"required_claims,omitempty"`
	// PolicyClaims (policy_claims) names the claims whose values are kept
	// at each sign-in (replacing the last sign-in's) for the claim
	// conditions of scope policies (scope_policies: {s: {claims: {name:
	// [values]}}}): each a string, boolean, number, or a list of them.
	// A policy naming a claim not listed here is never met by this
	// provider's users. List only claims the provider vouches for.
	PolicyClaims []string `json:"policy_claims,omitempty"`
}

// IdentityClaims names the claims of an upstream provider's ID token (or
// userinfo response) that Gatehouse reads. Each defaults to the OpenID
// Connect standard claim.
type IdentityClaims struct {
	// Subject (subject) identifies the person at the provider, with the
	// provider's name: the same value is the same Gatehouse user at every
	// sign-in. Default sub.
	Subject string `json:"subject,omitempty"`
	// Email (email): default email. Never identifies a person by itself.
	Email string `json:"email,omitempty"`
	// Name (name): default name.
	Name string `json:"name,omitempty"`
	// Groups (groups) holds the person's groups, for resources' scope
	// policies: a list of strings, or one string. At each sign-in its
	// values replace the groups this provider gave before (an absent
	// claim: none); groups added with `gatehouse user group add` are kept
	// apart and stay. Default groups.
	Groups string `json:"groups,omitempty"`
}

// Provider defaults.
var (
	// DefaultProviderScopes are the scopes asked of a provider without
	// scopes.
	DefaultProviderScopes = []string{"openid", "email", "profile"}
)

// WithDefaults returns p with every unset optional field at its default.
func (p IdentityProvider) WithDefaults() IdentityProvider {
	if p.DisplayName == "" {
		p.DisplayName = p.Name
	}
	if len(p.Scopes) == 0 {
		p.Scopes = slices.Clone(DefaultProviderScopes)
	}
	if p.TokenEndpointAuthMethod == "" {
		p.TokenEndpointAuthMethod = "client_secret_basic"
	}
	c := &p.Claims
	for _, d := range []struct {
		f   *string
		def string
	}{{&c.Subject, "sub"}, {&c.Email, "email"}, {&c.Name, "name"}, {&c.Groups, "groups"}} {
		if *d.f == "" {
			*d.f = d.def
		}
	}
	return p
}

// providerName is what a provider name may look like: it is a URL path
// segment and part of user names.
var providerName = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,31}$`)

// domainName is a lower-case DNS name of at least two labels.
var domainName = regexp.MustCompile(`^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

// resolveSecrets reads each provider's client secret from its file or
// environment variable.
func (id *Identity) resolveSecrets(env func(string) (string, bool)) []error {
	var errs []error
	if d := id.Delegate; d != nil {
		d.Keys = nil
		for i, f := range d.PublicKeyFiles {
			key := fmt.Sprintf("identity.delegate.public_key_files[%d]", i)
			b, err := os.ReadFile(f)
			if err != nil {
				errs = append(errs, keyErrorf(key, "%s: %w", key, err))
				continue
			}
			keys, err := token.ParsePublicKeys(b)
			if err != nil {
				errs = append(errs, keyErrorf(key, "%s: %s: %w", key, f, err))
				continue
			}
			d.Keys = append(d.Keys, keys...)
		}
	}
	for i := range id.Providers {
		p := &id.Providers[i]
		at := fmt.Sprintf("identity.providers[%d]", i)
		if p.PrivateKeyFile != "" {
			key := at + ".private_key_file"
			p.PrivateKey = nil
			if msg := secretRefProblem(key, p.PrivateKeyFile); msg != "" {
				errs = append(errs, keyErrorf(key, "%s", msg))
			} else if b, err := os.ReadFile(p.PrivateKeyFile); err != nil {
				errs = append(errs, keyErrorf(key, "%s: %w", key, err))
			} else if k, err := parseClientKey(b); err != nil {
				errs = append(errs, keyErrorf(key, "%s: %s: %w", key, p.PrivateKeyFile, err))
			} else {
				p.PrivateKey = k
			}
		}
		bad := false
		for _, k := range []struct{ key, v string }{{at + ".client_secret_file", p.ClientSecretFile}, {at + ".client_secret_env", p.ClientSecretEnv}} {
			if msg := secretRefProblem(k.key, k.v); msg != "" {
				errs = append(errs, keyErrorf(k.key, "%s", msg))
				bad = true
			}
		}
		switch {
		case bad:
		case p.ClientSecretFile != "":
			b, err := os.ReadFile(p.ClientSecretFile)
			if err != nil {
				errs = append(errs, keyErrorf(at+".client_secret_file", "%s.client_secret_file: %w", at, err))
				continue
			}
			p.ClientSecret = strings.TrimSpace(string(b))
			if p.ClientSecret == "" {
				errs = append(errs, keyErrorf(at+".client_secret_file", "%s.client_secret_file: the file %s is empty", at, p.ClientSecretFile))
			}
		case p.ClientSecretEnv != "":
			v, ok := env(p.ClientSecretEnv)
			if !ok || v == "" {
				errs = append(errs, keyErrorf(at+".client_secret_env", "%s.client_secret_env: environment variable %s is not set", at, p.ClientSecretEnv))
			}
			p.ClientSecret = v
		}
	}
	return errs
}

// validate reports the problems of the identity section. insecureOK
// allows an http provider issuer on a loopback host (dev mode, or
// allow_insecure_issuer).
func (id Identity) validate(insecureOK bool) []error {
	var errs []error
	bad := func(cond bool, path, format string, args ...any) {
		if cond {
			errs = append(errs, keyErrorf(path, format, args...))
		}
	}
	bad(!id.Local && len(id.Providers) == 0 && id.Delegate == nil, "identity.local", "identity.local is false and identity.providers and identity.delegate are empty: nobody could sign in; add a provider or a delegate, or set identity.local: true")
	if d := id.Delegate; d != nil {
		if !providerName.MatchString(d.ID) {
			errs = append(errs, keyErrorf("identity.delegate.id", "identity.delegate.id %q must be 1 to 32 lower-case letters, digits and '-', starting with a letter or digit", d.ID))
		}
		if n := utf8.RuneCountInString(d.DisplayName); n > maxBrandingName {
			errs = append(errs, keyErrorf("identity.delegate.display_name", "identity.delegate.display_name is %d characters; the limit is %d", n, maxBrandingName))
		}
		if j := strings.IndexFunc(d.DisplayName, func(r rune) bool { return !safetext.Shown(r) }); j >= 0 {
			errs = append(errs, keyErrorf("identity.delegate.display_name", "identity.delegate.display_name %q contains a control or invisible character at byte %d", d.DisplayName, j))
		}
		if msg := loginURLProblem(d.LoginURL, insecureOK); msg != "" {
			errs = append(errs, keyErrorf("identity.delegate.login_url", "identity.delegate.login_url %s", msg))
		}
		bad(len(d.PublicKeyFiles) == 0, "identity.delegate.public_key_files", "identity.delegate.public_key_files is required: the files of the SaaS's public signing keys (PEM or JWK; ES256 or EdDSA)")
	}
	names := map[string]int{}
	for i, p := range id.Providers {
		at := fmt.Sprintf("identity.providers[%d]", i)
		key := func(k string) string { return at + "." + k }
		switch {
		case p.Name == "":
			errs = append(errs, keyErrorf(key("name"), "%s.name is required (it is part of the redirect URI /login/oidc/<name>/callback)", at))
		case !providerName.MatchString(p.Name):
			errs = append(errs, keyErrorf(key("name"), "%s.name %q must be 1 to 32 lower-case letters, digits and '-', starting with a letter or digit", at, p.Name))
		default:
			if j, dup := names[p.Name]; dup {
				errs = append(errs, keyErrorf(key("name"), "%s.name %q is also the name of identity.providers[%d]: names must be unique", at, p.Name, j))
			}
			names[p.Name] = i
		}
		if n := utf8.RuneCountInString(p.DisplayName); n > maxBrandingName {
			errs = append(errs, keyErrorf(key("display_name"), "%s.display_name is %d characters; the limit is %d", at, n, maxBrandingName))
		}
		if j := strings.IndexFunc(p.DisplayName, func(r rune) bool { return !safetext.Shown(r) }); j >= 0 {
			errs = append(errs, keyErrorf(key("display_name"), "%s.display_name %q contains a control or invisible character at byte %d", at, p.DisplayName, j))
		}
		if msg := providerIssuerProblem(p.Issuer, insecureOK); msg != "" {
			errs = append(errs, keyErrorf(key("issuer"), "%s.issuer %s", at, msg))
		}
		bad(p.ClientID == "", key("client_id"), "%s.client_id is required: Gatehouse's client id at the provider", at)
		if p.TokenEndpointAuthMethod == "private_key_jwt" {
			bad(p.PrivateKeyFile == "", key("private_key_file"), "%s.private_key_file is required with token_endpoint_auth_method private_key_jwt: a PEM file of the private key (ECDSA P-256 or RSA) whose public key is registered at the provider", at)
			bad(p.ClientSecretFile != "", key("client_secret_file"), "%s.client_secret_file is not used with token_endpoint_auth_method private_key_jwt: remove it (the private key authenticates Gatehouse)", at)
			bad(p.ClientSecretEnv != "", key("client_secret_env"), "%s.client_secret_env is not used with token_endpoint_auth_method private_key_jwt: remove it (the private key authenticates Gatehouse)", at)
		} else {
			bad(p.ClientSecretFile == "" && p.ClientSecretEnv == "", key("client_secret_file"), "%s: set client_secret_file or client_secret_env (the client secret is never written in the config file), or use token_endpoint_auth_method: private_key_jwt with private_key_file", at)
			bad(p.ClientSecretFile != "" && p.ClientSecretEnv != "", key("client_secret_env"), "%s: set client_secret_file or client_secret_env, not both", at)
			bad(p.PrivateKeyFile != "", key("private_key_file"), "%s.private_key_file is only used with token_endpoint_auth_method: private_key_jwt", at)
			bad(p.KeyID != "", key("key_id"), "%s.key_id is only used with token_endpoint_auth_method: private_key_jwt", at)
		}
		if len(p.Scopes) > 0 && !slices.Contains(p.Scopes, "openid") {
			errs = append(errs, keyErrorf(key("scopes"), "%s.scopes must include openid (the scopes are sent to the provider as they are)", at))
		}
		for _, s := range p.Scopes {
			bad(!validScope(s), key("scopes"), "%s.scopes: %q is not a valid scope", at, s)
		}
		switch p.TokenEndpointAuthMethod {
		case "", "client_secret_basic", "client_secret_post", "private_key_jwt":
		default:
			errs = append(errs, keyErrorf(key("token_endpoint_auth_method"), "%s.token_endpoint_auth_method %q must be client_secret_basic, client_secret_post or private_key_jwt", at, p.TokenEndpointAuthMethod))
		}
		for _, d := range p.AllowedEmailDomains {
			bad(!domainName.MatchString(d), key("allowed_email_domains"), "%s.allowed_email_domains: %q must be a lower-case domain name such as example.com", at, d)
		}
		for c := range p.RequiredClaims {
			bad(strings.TrimSpace(c) == "", key("required_claims"), "%s.required_claims: a claim name must not be empty", at)
		}
		for i, c := range p.PolicyClaims {
			bad(strings.TrimSpace(c) == "", key("policy_claims"), "%s.policy_claims[%d]: a claim name must not be empty", at, i)
			bad(slices.Contains(p.PolicyClaims[:i], c), key("policy_claims"), "%s.policy_claims: %q is listed twice", at, c)
		}
	}
	return errs
}

// parseClientKey reads the private key of private_key_jwt from PEM: one
// PKCS #8, SEC 1 ("EC PRIVATE KEY") or PKCS #1 ("RSA PRIVATE KEY") block
// of a key Gatehouse signs client assertions with
// ([as.ClientKeyAlgorithm]: ECDSA P-256 or RSA of 2048 bits or more).
func parseClientKey(data []byte) (crypto.Signer, error) {
	b, rest := pem.Decode(data)
	if b == nil {
		return nil, errors.New("no PEM block: the file must hold a PEM private key (-----BEGIN PRIVATE KEY-----)")
	}
	if len(bytes.TrimSpace(rest)) != 0 {
		return nil, errors.New("text after the first PEM block: the file must hold one private key")
	}
	var parsed any
	var err error
	switch b.Type {
	case "PRIVATE KEY":
		parsed, err = x509.ParsePKCS8PrivateKey(b.Bytes)
	case "EC PRIVATE KEY":
		parsed, err = x509.ParseECPrivateKey(b.Bytes)
	case "RSA PRIVATE KEY":
		parsed, err = x509.ParsePKCS1PrivateKey(b.Bytes)
	default:
		return nil, fmt.Errorf("the PEM block %q is not a private key (PRIVATE KEY, EC PRIVATE KEY or RSA PRIVATE KEY)", b.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("the %s block: %w", b.Type, err)
	}
	k, ok := parsed.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("the key is a %T, not a signing key", parsed)
	}
	if _, err := as.ClientKeyAlgorithm(k); err != nil {
		return nil, err
	}
	return k, nil
}

// providerIssuerProblem is what is wrong with an upstream issuer, or "".
func providerIssuerProblem(s string, insecureOK bool) string {
	if s == "" {
		return "is required: the provider's issuer identifier, such as https://accounts.google.com"
	}
	u, err := url.Parse(s)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return fmt.Sprintf("%q must be an absolute https URL", s)
	}
	if u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return fmt.Sprintf("%q must not have a query, fragment or user information", s)
	}
	if u.Scheme == "http" && (!insecureOK || !clientreg.IsLoopbackHost(u.Hostname())) {
		return fmt.Sprintf("%q must use https (http only on a loopback host, in `gatehouse dev` or with allow_insecure_issuer)", s)
	}
	return ""
}

// loginURLProblem is what is wrong with a delegate's login URL, or "".
// Unlike an issuer it may have a query (Gatehouse adds to it).
func loginURLProblem(s string, insecureOK bool) string {
	if s == "" {
		return "is required: the SaaS's login page, such as https://app.example.com/gatehouse/login"
	}
	u, err := url.Parse(s)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return fmt.Sprintf("%q must be an absolute https URL", s)
	}
	if u.Fragment != "" || strings.Contains(s, "#") || u.User != nil {
		return fmt.Sprintf("%q must not have a fragment or user information", s)
	}
	if u.Scheme == "http" && (!insecureOK || !clientreg.IsLoopbackHost(u.Hostname())) {
		return fmt.Sprintf("%q must use https (http only on a loopback host, in `gatehouse dev` or with allow_insecure_issuer)", s)
	}
	return ""
}
