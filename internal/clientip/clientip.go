// Package clientip finds the IP address of the client behind an HTTP
// request, for rate limits, login throttling and the audit log: the peer
// address, or behind trusted reverse proxies the address they recorded in
// X-Forwarded-For. Every address it returns parses as an IP address and is
// in one normal form, so no text a client writes becomes a rate-limit key
// or an audit field. It imports only the standard library.
package clientip

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// Resolver chooses a request's client address. The zero value uses the
// peer address only.
type Resolver struct {
	// TrustHeaders makes X-Forwarded-For count: only behind a reverse proxy
	// that appends the address it received the request from (or replaces
	// the header). Entries are read from the right, the end the proxies
	// wrote; the left end is whatever the client sent. Default false.
	TrustHeaders bool
	// TrustedProxies are the addresses of the proxies whose entries are
	// believed. Empty (with TrustHeaders) trusts exactly one hop, the peer:
	// the last entry is the client. Otherwise the header counts only when
	// the peer is in TrustedProxies, and the client is the rightmost entry
	// that is not (or the leftmost, when every entry is a trusted proxy).
	TrustedProxies []netip.Prefix
}

// ClientIP returns the client address of r in normal form (an IPv4
// address for an IPv4-mapped one, no zone). It falls back to the peer
// address when headers are not trusted, when the peer is not a trusted
// proxy, when there is no X-Forwarded-For, and when an entry it has to
// read is not an IP address (with an optional port): garbage never
// becomes an address.
func (res Resolver) ClientIP(r *http.Request) string {
	peer, ok := parse(r.RemoteAddr)
	if !ok {
		// Not an IP peer (a Unix socket): nothing better to say.
		if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
			return host
		}
		return r.RemoteAddr
	}
	if !res.TrustHeaders || (len(res.TrustedProxies) > 0 && !res.trusted(peer)) {
		return peer.String()
	}
	lines := r.Header.Values("X-Forwarded-For")
	if len(lines) == 0 {
		return peer.String()
	}
	// Several header lines are one list, in order (RFC 9110 §5.3).
	entries := strings.Split(strings.Join(lines, ","), ",")
	client := peer
	for i := len(entries) - 1; i >= 0; i-- {
		a, ok := parse(entries[i])
		if !ok {
			return peer.String()
		}
		client = a
		if len(res.TrustedProxies) == 0 || !res.trusted(a) {
			break
		}
	}
	return client.String()
}

// trusted reports whether a is one of the trusted proxies.
func (res Resolver) trusted(a netip.Addr) bool {
	for _, p := range res.TrustedProxies {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// parse reads one address as a proxy writes it: an IP address, optionally
// with a port ("192.0.2.1:443", "[2001:db8::1]:443") or IPv6 brackets
// ("[2001:db8::1]"), surrounded by optional spaces or tabs. The port and
// any IPv6 zone are dropped and an IPv4-mapped address becomes IPv4, so
// one client has one spelling.
func parse(s string) (netip.Addr, bool) {
	s = strings.Trim(s, " \t")
	a, err := netip.ParseAddr(s)
	if err != nil {
		ap, perr := netip.ParseAddrPort(s)
		switch {
		case perr == nil:
			a = ap.Addr()
		case len(s) > 2 && s[0] == '[' && s[len(s)-1] == ']':
			if a, err = netip.ParseAddr(s[1 : len(s)-1]); err != nil || !a.Is6() {
				return netip.Addr{}, false
			}
		default:
			return netip.Addr{}, false
		}
	}
	return a.WithZone("").Unmap(), true
}

// ParseProxies parses the trusted_proxies setting: CIDR ranges
// ("10.0.0.0/8", "2001:db8::/32") or single addresses. Host bits after
// the prefix length are dropped. IPv4 ranges must be written as IPv4:
// client addresses are compared in that form.
func ParseProxies(list []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	var errs []error
	for _, s := range list {
		var p netip.Prefix
		var err error
		if strings.Contains(s, "/") {
			p, err = netip.ParsePrefix(s)
		} else {
			var a netip.Addr
			if a, err = netip.ParseAddr(s); err == nil {
				if a.Zone() != "" {
					err = errors.New("a zone is not allowed")
				}
				p = netip.PrefixFrom(a, a.BitLen())
			}
		}
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("%q is not a CIDR range (10.0.0.0/8) or an IP address", s))
			continue
		case p.Addr().Is4In6():
			errs = append(errs, fmt.Errorf("%q is an IPv4-mapped IPv6 range: write it as IPv4", s))
			continue
		}
		out = append(out, p.Masked())
	}
	return out, errors.Join(errs...)
}

// Bucket is the rate-limit key of a client address: the address itself
// for IPv4, and its /64 for IPv6, since one host is routinely handed a
// whole /64 and can pick any address in it. Anything that does not parse
// is returned as it is (ClientIP never returns such text).
func Bucket(ip string) string {
	a, err := netip.ParseAddr(ip)
	if err != nil || !a.Is6() || a.Is4In6() {
		return ip
	}
	p, err := a.Prefix(64)
	if err != nil {
		return ip
	}
	return p.String()
}
