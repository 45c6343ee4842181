package clientreg

import "net/netip"

// specialUse lists the address ranges a server-side fetch must never
// reach (RFC 6890 and its IANA registries, plus the ranges the MCP
// security best practices name): anything loopback, private, link-local,
// shared, reserved, documentation, multicast or translated. Each entry
// carries the name used in refusal messages.
var specialUse = []struct {
	prefix netip.Prefix
	name   string
}{
	{netip.MustParsePrefix("0.0.0.0/8"), "this-network (0.0.0.0/8)"},
	{netip.MustParsePrefix("10.0.0.0/8"), "private (10.0.0.0/8)"},
	{netip.MustParsePrefix("100.64.0.0/10"), "shared address space, CGNAT (100.64.0.0/10)"},
	{netip.MustParsePrefix("127.0.0.0/8"), "loopback (127.0.0.0/8)"},
	{netip.MustParsePrefix("169.254.0.0/16"), "link-local (169.254.0.0/16, cloud metadata)"},
	{netip.MustParsePrefix("172.16.0.0/12"), "private (172.16.0.0/12)"},
	{netip.MustParsePrefix("192.0.0.0/24"), "IETF protocol assignments (192.0.0.0/24)"},
	{netip.MustParsePrefix("192.0.2.0/24"), "documentation (192.0.2.0/24)"},
	{netip.MustParsePrefix("192.31.196.0/24"), "AS112 (192.31.196.0/24)"},
	{netip.MustParsePrefix("192.52.193.0/24"), "AMT (192.52.193.0/24)"},
	{netip.MustParsePrefix("192.88.99.0/24"), "6to4 relay anycast (192.88.99.0/24)"},
	{netip.MustParsePrefix("192.168.0.0/16"), "private (192.168.0.0/16)"},
	{netip.MustParsePrefix("192.175.48.0/24"), "AS112 (192.175.48.0/24)"},
	{netip.MustParsePrefix("198.18.0.0/15"), "benchmarking (198.18.0.0/15)"},
	{netip.MustParsePrefix("198.51.100.0/24"), "documentation (198.51.100.0/24)"},
	{netip.MustParsePrefix("203.0.113.0/24"), "documentation (203.0.113.0/24)"},
	{netip.MustParsePrefix("224.0.0.0/4"), "multicast (224.0.0.0/4)"},
	{netip.MustParsePrefix("240.0.0.0/4"), "reserved or broadcast (240.0.0.0/4)"},

	{netip.MustParsePrefix("::/128"), "unspecified (::)"},
	{netip.MustParsePrefix("::1/128"), "loopback (::1)"},
	{netip.MustParsePrefix("::/96"), "IPv4-compatible IPv6 (::/96)"},
	{netip.MustParsePrefix("::ffff:0:0/96"), "IPv4-mapped IPv6 (::ffff:0:0/96)"},
	{netip.MustParsePrefix("64:ff9b::/96"), "NAT64 (64:ff9b::/96)"},
	{netip.MustParsePrefix("64:ff9b:1::/48"), "local NAT64 (64:ff9b:1::/48)"},
	{netip.MustParsePrefix("100::/64"), "discard-only (100::/64)"},
	{netip.MustParsePrefix("2001::/23"), "IETF protocol assignments, Teredo (2001::/23)"},
	{netip.MustParsePrefix("2001:db8::/32"), "documentation (2001:db8::/32)"},
	{netip.MustParsePrefix("2002::/16"), "6to4 (2002::/16)"},
	{netip.MustParsePrefix("3fff::/20"), "documentation (3fff::/20)"},
	{netip.MustParsePrefix("5f00::/16"), "SRv6 SIDs (5f00::/16)"},
	{netip.MustParsePrefix("fc00::/7"), "unique-local (fc00::/7)"},
	{netip.MustParsePrefix("fe80::/10"), "link-local (fe80::/10)"},
	{netip.MustParsePrefix("fec0::/10"), "site-local (fec0::/10)"},
	{netip.MustParsePrefix("ff00::/8"), "multicast (ff00::/8)"},
}

// SpecialUse reports whether a is a special-use address that a
// server-side fetch must not connect to, and names its range. Invalid
// addresses and addresses with an IPv6 zone count as special-use. An
// IPv4-mapped IPv6 address is refused as such, not unmapped: there is no
// reason for a public server to be reached that way, and unmapping is
// where hand-written checks usually go wrong.
func SpecialUse(a netip.Addr) (name string, special bool) {
	if !a.IsValid() {
		return "invalid address", true
	}
	if a.Zone() != "" {
		return "scoped IPv6 address", true
	}
	for _, r := range specialUse {
		if r.prefix.Contains(a) {
			return r.name, true
		}
	}
	return "", false
}
