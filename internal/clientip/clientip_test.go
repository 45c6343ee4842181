package clientip

import (
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// The table of header values and chosen addresses is TestClientIP in
// internal/as, through the server's options; here are the properties
// that must hold for any header and the configuration parser.

// FuzzClientIP: whatever X-Forwarded-For holds, the chosen address is the
// peer or parses as an IP address in normal form, and untrusted headers
// never count.
func FuzzClientIP(f *testing.F) {
	for _, s := range []string{"198.51.100.7", "garbage", "198.51.100.7, 10.0.0.1", "[2001:db8::1]:443", "::ffff:192.0.2.1", "fe80::1%eth0", "\u202e1.2.3.4", ", ,", "1.2.3.4:99999"} {
		f.Add(s, "10.0.0.1:5555")
	}
	proxies, err := ParseProxies([]string{"10.0.0.0/8", "2001:db8::/32"})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, xff, remote string) {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = remote
		r.Header.Set("X-Forwarded-For", xff)
		peer := Resolver{}.ClientIP(r)
		for _, res := range []Resolver{{TrustHeaders: true}, {TrustHeaders: true, TrustedProxies: proxies}} {
			got := res.ClientIP(r)
			if got == peer {
				continue
			}
			a, err := netip.ParseAddr(got)
			if err != nil || a.String() != got || a.Is4In6() || a.Zone() != "" {
				t.Fatalf("%+v: X-Forwarded-For %q from %q gave %q: not an address in normal form", res, xff, remote, got)
			}
			if p, err := netip.ParseAddr(peer); len(res.TrustedProxies) > 0 && (err != nil || !res.trusted(p)) {
				t.Fatalf("%+v: X-Forwarded-For %q counted from %q, not a trusted proxy", res, xff, remote)
			}
		}
		if _, err := netip.ParseAddrPort(remote); err == nil {
			if a, _ := netip.ParseAddr(peer); !a.IsValid() {
				t.Fatalf("peer %q gave %q", remote, peer)
			}
		}
	})
}

func TestParseProxies(t *testing.T) {
	got, err := ParseProxies([]string{"10.1.2.3/8", "192.0.2.7", "2001:db8::/32", "2001:db8::1"})
	if err != nil {
		t.Fatal(err)
	}
	want := []netip.Prefix{
		netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("192.0.2.7/32"),
		netip.MustParsePrefix("2001:db8::/32"), netip.MustParsePrefix("2001:db8::1/128"),
	}
	if diff := cmp.Diff(want, got, cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })); diff != "" {
		t.Errorf("ParseProxies mismatch (-want +got):\n%s", diff)
	}
	for _, tt := range []struct{ in, want string }{
		{"10.0.0.0/33", "not a CIDR range"},
		{"proxy.example", "not a CIDR range"},
		{"", "not a CIDR range"},
		{"fe80::1%eth0", "not a CIDR range"},
		{"::ffff:10.0.0.0/104", "write it as IPv4"},
	} {
		_, err := ParseProxies([]string{"10.0.0.0/8", tt.in})
		if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), tt.in) {
			t.Errorf("ParseProxies(%q) = %v, want an error naming it with %q", tt.in, err, tt.want)
		}
	}
}

// BenchmarkClientIP: the cost on every login, registration and audited
// request behind a chain of two trusted proxies.
func BenchmarkClientIP(b *testing.B) {
	proxies, err := ParseProxies([]string{"10.0.0.0/8"})
	if err != nil {
		b.Fatal(err)
	}
	res := Resolver{TrustHeaders: true, TrustedProxies: proxies}
	r := httptest.NewRequest("GET", "/", nil)
	r.RemoteAddr = "10.0.0.1:5555"
	r.Header.Set("X-Forwarded-For", "192.0.2.1, 198.51.100.7, 10.0.0.9")
	for b.Loop() {
		if res.ClientIP(r) != "198.51.100.7" {
			b.Fatal("wrong address")
		}
	}
}

// TestBucket: an IPv6 /64 is one rate-limit bucket; IPv4 addresses are
// their own.
func TestBucket(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"192.0.2.1", "192.0.2.1"},
		{"2001:db8:1:2::1", "2001:db8:1:2::/64"},
		{"2001:db8:1:2:ffff:ffff:ffff:ffff", "2001:db8:1:2::/64"},
		{"2001:db8:1:3::1", "2001:db8:1:3::/64"},
		{"::1", "::/64"},
		{"::ffff:192.0.2.1", "::ffff:192.0.2.1"},
		{"not an ip", "not an ip"},
	} {
		if got := Bucket(tt.in); got != tt.want {
			t.Errorf("Bucket(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
