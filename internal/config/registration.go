package config

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/gatehouse-mcp/gatehouse/internal/clientreg"
)

// Registration configures how clients come to exist without an operator:
// RFC 7591 dynamic client registration (with RFC 7592 management) and
// client ID metadata documents (CIMD).
type Registration struct {
	// Mode (mode) is who may register at /register: open (anyone, within
	// the rate limit and the cap), token (only with an initial access token
	// from `gatehouse client token create`) or closed (no registration
	// endpoint). Empty means open under `gatehouse dev` and token under
	// `gatehouse serve`; see [Registration.EffectiveMode].
	Mode string `json:"mode"`
	// RateLimit (rate_limit) is how many registration requests one client
	// IP may make per rate_window. Default 60; negative means unlimited.
	RateLimit int `json:"rate_limit"`
	// RateWindow (rate_window). Default 1h.
	RateWindow Duration `json:"rate_window"`
	// MaxClients (max_clients) caps registered (RFC 7591) clients.
	// Default 10000; negative means no cap. Metadata-document clients
	// have their own cap, cimd.max_clients.
	MaxClients int `json:"max_clients"`
	// AllowedScopes (allowed_scopes) are the scopes a dynamic client may
	// register for; empty means any scope of any resource.
	AllowedScopes []string `json:"allowed_scopes"`
	// AllowClientCredentials (allow_client_credentials) lets dynamic
	// clients (registered or metadata-document ones) use the
	// client_credentials grant, i.e. obtain tokens without a user. Default
	// false: such tokens go only to clients the operator creates. Needs
	// client_credentials_scopes.
	AllowClientCredentials bool `json:"allow_client_credentials"`
	// ClientCredentialsScopes (client_credentials_scopes) are the only
	// scopes a dynamic client may obtain with client_credentials; required
	// with allow_client_credentials.
	ClientCredentialsScopes []string `json:"client_credentials_scopes"`
	// UnusedTTL (unused_ttl): a dynamic client that never obtained a token
	// is deleted this long after it registered. Default 24h; negative
	// keeps such clients forever.
	UnusedTTL Duration `json:"unused_ttl"`
	// IdleTTL (idle_ttl): a dynamic client is deleted this long after it
	// last obtained a token. Default 2160h (90 days); negative keeps them
	// forever. Keep it above tokens.refresh_token_ttl.
	IdleTTL Duration `json:"idle_ttl"`
	// PrivateUseSchemes (private_use_schemes) are private-use redirect URI
	// schemes native clients may register besides reverse-domain ones.
	// Default: claude, cursor, vscode, vscode-insiders, windsurf. An empty
	// list allows none.
	PrivateUseSchemes []string `json:"private_use_schemes"`
	// ReverseDomainSchemes (reverse_domain_schemes) lets native clients
	// register private-use schemes that contain a dot
	// (com.example.app:/callback, RFC 8252 §7.1). Default true.
	ReverseDomainSchemes bool `json:"reverse_domain_schemes"`

	CIMD CIMD `json:"cimd"`
}

// CIMD configures client ID metadata documents: a client_id that is an
// https URL with a path names a JSON document that Gatehouse fetches.
type CIMD struct {
	// Mode (mode): open (any document URL), allowlist (only allow_domains
	// and allow_urls) or off. Default open.
	Mode string `json:"mode"`
	// AllowDomains (allow_domains): with mode allowlist, document URLs on
	// these domains or their subdomains are accepted.
	AllowDomains []string `json:"allow_domains"`
	// AllowURLs (allow_urls): with mode allowlist, these exact document
	// URLs are accepted.
	AllowURLs []string `json:"allow_urls"`
	// MinTTL (min_ttl) and MaxTTL (max_ttl) bound how long a document is
	// cached whatever its Cache-Control says. Defaults 5m and 24h.
	MinTTL Duration `json:"min_ttl"`
	MaxTTL Duration `json:"max_ttl"`
	// FailureTTL (failure_ttl) is how long a document that could not be
	// fetched or is invalid is remembered, so that presenting it again
	// does not fetch it again. Default 1m; 1s to 1h (0s would fetch a
	// failing document on every request).
	FailureTTL Duration `json:"failure_ttl"`
	// MaxClients (max_clients) caps metadata-document clients, apart
	// from registration.max_clients. Default 10000; negative means no
	// cap.
	MaxClients int `json:"max_clients"`
	// RateLimit (rate_limit) is how many new metadata-document clients
	// one client IP may bring in per registration.rate_window (each
	// unknown document URL counts, before it is fetched). Default 60;
	// negative means unlimited.
	RateLimit int `json:"rate_limit"`
	// HostRateLimit (host_rate_limit) is how many new metadata-document
	// clients the documents of one host may create per
	// registration.rate_window, from any address. A host counts with its
	// registrable domain (a.example.com and b.example.com share
	// example.com's budget), and a query string does not make a new host.
	// Default 60; negative means unlimited.
	HostRateLimit int `json:"host_rate_limit"`
	// FetchRateLimit (fetch_rate_limit) is how many documents and JWK
	// Sets may be fetched from one host (as host_rate_limit counts it)
	// per minute. Beyond it a new client of that host is refused with 503
	// and a known one keeps its stored document. Default 60; negative
	// means unlimited.
	FetchRateLimit int `json:"fetch_rate_limit"`
	// AllowHosts (allow_hosts) are host names whose documents may be
	// fetched from loopback or private addresses. Only for `gatehouse
	// dev` and tests; refused by `gatehouse serve`.
	AllowHosts []string `json:"allow_hosts"`
}

// DefaultRegistration returns the registration defaults.
func DefaultRegistration() Registration {
	return Registration{
		RateLimit:            60,
		RateWindow:           Duration(time.Hour),
		MaxClients:           10000,
		UnusedTTL:            Duration(24 * time.Hour),
		IdleTTL:              Duration(90 * 24 * time.Hour),
		PrivateUseSchemes:    slices.Clone(clientreg.DefaultPrivateUseSchemes),
		ReverseDomainSchemes: true,
		CIMD: CIMD{Mode: "open", MinTTL: Duration(5 * time.Minute), MaxTTL: Duration(24 * time.Hour), FailureTTL: Duration(time.Minute),
			MaxClients: 10000, RateLimit: 60, HostRateLimit: 60, FetchRateLimit: 60},
	}
}

// EffectiveMode is the registration mode in force: Mode, or when it is
// empty, open in dev mode (so MCP clients just work) and token otherwise
// (an operator opts in to open registration deliberately).
func (r Registration) EffectiveMode(dev bool) string {
	switch {
	case r.Mode != "":
		return r.Mode
	case dev:
		return "open"
	}
	return "token"
}

// validate reports every problem with the registration section. dev
// allows cimd.allow_hosts.
func (r Registration) validate(dev bool) []error {
	var errs []error
	bad := func(cond bool, path, format string, args ...any) {
		if cond {
			errs = append(errs, keyErrorf(path, format, args...))
		}
	}
	const at = "registration."
	switch r.Mode {
	case "", "open", "token", "closed":
	default:
		errs = append(errs, keyErrorf(at+"mode", "registration.mode %q must be open, token or closed", r.Mode))
	}
	bad(r.RateWindow < 0, at+"rate_window", "registration.rate_window must not be negative")
	for i, sc := range r.AllowedScopes {
		bad(sc == "" || strings.ContainsAny(sc, " \t\"\\"), fmt.Sprintf(at+"allowed_scopes[%d]", i), "registration.allowed_scopes: %q is not a scope value", sc)
	}
	for i, sc := range r.ClientCredentialsScopes {
		bad(!validScope(sc), fmt.Sprintf(at+"client_credentials_scopes[%d]", i), "registration.client_credentials_scopes: %q is not a scope value", sc)
	}
	bad(r.AllowClientCredentials && len(r.ClientCredentialsScopes) == 0, at+"allow_client_credentials",
		"registration.allow_client_credentials needs registration.client_credentials_scopes: the scopes a self-registered client may obtain without a user")
	bad(!r.AllowClientCredentials && len(r.ClientCredentialsScopes) > 0, at+"client_credentials_scopes",
		"registration.client_credentials_scopes only applies with registration.allow_client_credentials: true")
	for i, sch := range r.PrivateUseSchemes {
		path := fmt.Sprintf(at+"private_use_schemes[%d]", i)
		switch {
		case !validScheme(sch):
			errs = append(errs, keyErrorf(path, "registration.private_use_schemes: %q is not a URI scheme (letters, digits, +, -, .; starting with a letter)", sch))
		case slices.Contains([]string{"http", "https", "javascript", "data", "file", "vbscript", "blob", "about"}, strings.ToLower(sch)):
			errs = append(errs, keyErrorf(path, "registration.private_use_schemes: %q cannot be a private-use scheme", sch))
		}
	}
	c := r.CIMD
	const cat = at + "cimd."
	switch c.Mode {
	case "", "open", "off":
		bad(len(c.AllowDomains)+len(c.AllowURLs) > 0, cat+"mode", "registration.cimd.allow_domains and allow_urls only apply with registration.cimd.mode allowlist (mode is %q)", c.Mode)
	case "allowlist":
		bad(len(c.AllowDomains)+len(c.AllowURLs) == 0, cat+"mode", "registration.cimd.mode allowlist needs allow_domains or allow_urls")
	default:
		errs = append(errs, keyErrorf(cat+"mode", "registration.cimd.mode %q must be open, allowlist or off", c.Mode))
	}
	for i, d := range c.AllowDomains {
		bad(d == "" || strings.ContainsAny(d, "/:@ *"), fmt.Sprintf(cat+"allow_domains[%d]", i), "registration.cimd.allow_domains: %q must be a bare domain such as example.com", d)
	}
	for i, u := range c.AllowURLs {
		if err := clientreg.CheckClientIDURL(u); err != nil {
			errs = append(errs, keyErrorf(fmt.Sprintf(cat+"allow_urls[%d]", i), "registration.cimd.allow_urls: %q: %v", u, err))
		}
	}
	bad(c.MinTTL < 0 || c.MaxTTL < 0, cat+"min_ttl", "registration.cimd.min_ttl and max_ttl must not be negative")
	bad(c.MinTTL > 0 && c.MaxTTL > 0 && c.MaxTTL < c.MinTTL, cat+"max_ttl", "registration.cimd.max_ttl (%s) must be at least min_ttl (%s)", time.Duration(c.MaxTTL), time.Duration(c.MinTTL))
	bad(c.MaxTTL > Duration(7*24*time.Hour), cat+"max_ttl", "registration.cimd.max_ttl must be at most 168h: a client's changed document must take effect within a week")
	bad(c.FailureTTL < Duration(time.Second) || c.FailureTTL > Duration(time.Hour), cat+"failure_ttl", "registration.cimd.failure_ttl (%s) must be between 1s and 1h: failures must be remembered to stop repeated fetches, and a fixed document must work again within the hour", time.Duration(c.FailureTTL))
	def := DefaultRegistration().CIMD
	for _, l := range []struct {
		key    string
		v, def int
	}{
		{"max_clients", c.MaxClients, def.MaxClients},
		{"rate_limit", c.RateLimit, def.RateLimit},
		{"host_rate_limit", c.HostRateLimit, def.HostRateLimit},
		{"fetch_rate_limit", c.FetchRateLimit, def.FetchRateLimit},
	} {
		// 0 could mean "none" or "no limit"; it is neither.
		bad(l.v == 0, cat+l.key, "registration.cimd.%s must not be 0: leave it out for the default (%d), or make it negative for no limit", l.key, l.def)
	}
	bad(!dev && len(c.AllowHosts) > 0, cat+"allow_hosts", "registration.cimd.allow_hosts lets documents be fetched from loopback and private addresses; it is only accepted by `gatehouse dev`")
	return errs
}

// validScheme reports whether s is a URI scheme (RFC 3986 §3.1).
func validScheme(s string) bool {
	if s == "" {
		return false
	}
	for i, c := range s {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z':
		case i > 0 && (c >= '0' && c <= '9' || c == '+' || c == '-' || c == '.'):
		default:
			return false
		}
	}
	return true
}
