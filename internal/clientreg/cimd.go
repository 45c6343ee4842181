package clientreg

import (
	"errors"
	"net/netip"
	"net/url"
	"strings"

	"golang.org/x/net/publicsuffix"
)

// IsClientIDURL reports whether a client_id names a client metadata
// document: it starts with "https://" and has a path other than "/"
// (SPEC-CHECKLIST §4.1). Whether the URL is otherwise acceptable is
// [CheckClientIDURL]'s job, so that a malformed document URL gets a
// precise error instead of "unknown client".
func IsClientIDURL(s string) bool {
	if !strings.HasPrefix(s, "https://") {
		return false
	}
	rest := s[len("https://"):]
	i := strings.IndexAny(rest, "/?#")
	if i < 0 || rest[i] != '/' {
		return false
	}
	path := rest[i:]
	if j := strings.IndexAny(path, "?#"); j >= 0 {
		path = path[:j]
	}
	return path != "/"
}

// CheckClientIDURL checks a metadata-document client_id against
// CIMD §3: https, a host, a path, no fragment, no user information, no
// "." or ".." path segments. A query is allowed (the draft says SHOULD
// NOT, which binds the client). Its length is capped at 2048 bytes. It
// must be ASCII, as a URI is (RFC 3986 §2; an IDN host in its xn-- form):
// the id becomes a client row, audit events and consent pages, and a
// bidi override, zero-width character, line separator or C1 control in
// it would reach the operator's terminal and the user's screen.
func CheckClientIDURL(s string) error {
	if len(s) > maxURILen {
		return errors.New("the URL is longer than 2048 bytes")
	}
	if strings.ContainsAny(s, "#") {
		return errors.New("the URL must not contain a fragment")
	}
	if hasSpaceOrControl(s) {
		return errors.New("the URL must not contain spaces or control characters")
	}
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return errors.New("the URL must be ASCII: percent-encode other characters (RFC 3986 §2.1) and write an internationalised host name in its xn-- form")
		}
	}
	u, err := url.Parse(s)
	if err != nil || u.Scheme != "https" || u.Host == "" || u.Opaque != "" {
		return errors.New("the URL must be an absolute https URL")
	}
	if u.User != nil {
		return errors.New("the URL must not contain user information")
	}
	if u.Path == "" || u.Path == "/" {
		return errors.New("the URL must have a path")
	}
	for _, seg := range strings.Split(u.EscapedPath(), "/") {
		if seg == "." || seg == ".." || strings.EqualFold(seg, "%2e") || strings.EqualFold(seg, "%2e%2e") ||
			strings.EqualFold(seg, ".%2e") || strings.EqualFold(seg, "%2e.") {
			return errors.New(`the URL must not contain "." or ".." path segments`)
		}
	}
	return nil
}

// DocumentHost returns the lower-cased host name (without port) of a
// metadata-document client_id, the domain shown as the verified
// publisher on the consent page; "" if s does not parse.
func DocumentHost(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return ""
	}
	return strings.ToLower(u.Hostname())
}

// DocumentSite returns what the limits on metadata documents count per
// (new clients and fetches per host): the registrable domain of the
// document URL's host, lower-cased ("a.example.co.uk" and
// "b.example.co.uk" are "example.co.uk"), so that wildcard DNS gives an
// attacker no fresh budget per subdomain. Hosts under a public suffix
// that is shared by many owners (github.io, ...) stay apart. An IP
// address, or a name with no registrable domain, is its own site; "" if
// s does not parse. A query string never matters.
func DocumentSite(s string) string {
	host := strings.TrimSuffix(DocumentHost(s), ".")
	if host == "" {
		return ""
	}
	if _, err := netip.ParseAddr(host); err == nil {
		return host
	}
	if site, err := publicsuffix.EffectiveTLDPlusOne(host); err == nil {
		return site
	}
	return host
}

// BlockCovers reports whether an operator's block of target covers the
// client id URL id: target is that URL, or, with host set, the host of id
// or a domain it is under (`gatehouse client block --host`).
func BlockCovers(target string, host bool, id string) bool {
	if host {
		return HostMatchesDomain(DocumentHost(id), target)
	}
	return id == target
}

// HostMatchesDomain reports whether host equals domain or is a subdomain
// of it, case-insensitively. A leading dot on domain is ignored.
func HostMatchesDomain(host, domain string) bool {
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	domain = strings.ToLower(strings.TrimSuffix(strings.TrimPrefix(domain, "."), "."))
	if domain == "" {
		return false
	}
	return host == domain || strings.HasSuffix(host, "."+domain)
}
