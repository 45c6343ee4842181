package clientreg

import (
	"net/netip"
	"net/url"
	"strings"
)

// MatchRedirectURI reports whether requested matches one of registered.
//
// Matching is exact string comparison (OAuth 2.1 §4.1.1, RFC 9700 §4.1.3),
// with one exception from RFC 8252 §7.3: when the registered URI is an http
// loopback URI (host 127.0.0.1, [::1] or localhost), the port of the
// requested URI may differ, because native apps listen on an ephemeral
// port. Scheme, host, path and query must still match exactly, and
// localhost never matches 127.0.0.1 (they can be different listeners, and
// clients compare origins as strings).
func MatchRedirectURI(requested string, registered []string) bool {
	for _, r := range registered {
		if requested == r {
			return !strings.Contains(requested, "#")
		}
	}
	req, ok := parseLoopback(requested)
	if !ok {
		return false
	}
	for _, r := range registered {
		reg, ok := parseLoopback(r)
		if !ok {
			continue
		}
		if req.host == reg.host && req.rest == reg.rest {
			return true
		}
	}
	return false
}

// loopbackURI is an http loopback URI split into the parts that must match.
type loopbackURI struct {
	host string // lower-cased host without port
	rest string // raw path, query
}

// parseLoopback splits an http loopback URI. It refuses anything with
// user information or a fragment and any port that is not 1-65535 digits,
// so "http://localhost:80@evil" and similar tricks never match.
func parseLoopback(s string) (loopbackURI, bool) {
	const prefix = "http://"
	if len(s) < len(prefix) || !strings.EqualFold(s[:len(prefix)], prefix) {
		return loopbackURI{}, false
	}
	if strings.ContainsAny(s, "#@\\") {
		return loopbackURI{}, false
	}
	u, err := url.Parse(s)
	if err != nil || u.User != nil || u.Opaque != "" {
		return loopbackURI{}, false
	}
	host := strings.ToLower(u.Hostname())
	switch host {
	case "127.0.0.1", "::1", "localhost":
	default:
		return loopbackURI{}, false
	}
	if p := u.Port(); p != "" {
		if len(p) > 5 || strings.Trim(p, "0123456789") != "" || strings.TrimLeft(p, "0") == "" {
			return loopbackURI{}, false
		}
		n := 0
		for _, c := range p {
			n = n*10 + int(c-'0')
		}
		if n > 65535 {
			return loopbackURI{}, false
		}
	}
	// The part after the authority, raw, so percent-encoding differences
	// do not match.
	rest := s[len(prefix):]
	if i := strings.IndexAny(rest, "/?"); i >= 0 {
		rest = rest[i:]
	} else {
		rest = ""
	}
	if rest == "" {
		rest = "/"
	}
	return loopbackURI{host: host, rest: rest}, true
}

// IsLoopbackRedirect reports whether s is an http loopback redirect URI.
func IsLoopbackRedirect(s string) bool {
	_, ok := parseLoopback(s)
	return ok
}

// IsLoopbackHost reports whether host (without port; an IPv6 address may
// be in brackets) is localhost, an address in 127.0.0.0/8 or ::1. Addresses
// are parsed, not matched by prefix: 127.example.com and 127.0.0.1.nip.io
// are DNS names anyone can point anywhere, and 0177.0.0.1 (octal to some
// resolvers) is not an address in the standard dotted-decimal form.
func IsLoopbackHost(host string) bool {
	h := host
	if strings.HasPrefix(h, "[") && strings.HasSuffix(h, "]") {
		h = h[1 : len(h)-1]
	}
	if strings.EqualFold(h, "localhost") {
		return true
	}
	a, err := netip.ParseAddr(h)
	return err == nil && a.Zone() == "" && a.IsLoopback()
}
