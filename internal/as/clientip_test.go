package as

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"

	"github.com/gatehouse-mcp/gatehouse/internal/storage"
)

// TestClientIP: the address rate limits, login throttling and the audit
// log see, for X-Forwarded-For values, without trusted proxy headers, with
// one trusted hop (the default), and with trusted proxy ranges. Only an
// entry that parses as an IP address is ever taken; anything else means
// the peer address.
func TestClientIP(t *testing.T) {
	servers := map[string]*testServer{
		"off":     newTestServer(t, nil),
		"one hop": newTestServer(t, func(o *Options) { o.TrustProxyHeaders = true }),
		"ranges": newTestServer(t, func(o *Options) {
			o.TrustProxyHeaders = true
			o.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("2001:db8:f::/48")}
		}),
	}
	const proxy = "10.0.0.1:5555" // a trusted proxy in "ranges"
	tests := []struct {
		name   string
		remote string
		xff    []string // header lines
		off    string   // want without trust_proxy_headers
		oneHop string   // want with it and no trusted_proxies
		ranges string   // want with trusted_proxies
	}{
		{"no header", proxy, nil, "10.0.0.1", "10.0.0.1", "10.0.0.1"},
		{"one entry", proxy, []string{"198.51.100.7"}, "10.0.0.1", "198.51.100.7", "198.51.100.7"},
		{"forged entry at the left", proxy, []string{"192.0.2.1, 198.51.100.7"}, "10.0.0.1", "198.51.100.7", "198.51.100.7"},
		{"chain of trusted proxies", proxy, []string{"198.51.100.7, 10.0.0.9"}, "10.0.0.1", "10.0.0.9", "198.51.100.7"},
		{"every entry a trusted proxy", proxy, []string{"10.0.0.8, 10.0.0.9"}, "10.0.0.1", "10.0.0.9", "10.0.0.8"},
		{"two header lines are one list", proxy, []string{"198.51.100.7", "10.0.0.9"}, "10.0.0.1", "10.0.0.9", "198.51.100.7"},
		{"peer not a trusted proxy", "203.0.113.5:1234", []string{"198.51.100.7"}, "203.0.113.5", "198.51.100.7", "203.0.113.5"},
		{"garbage", proxy, []string{"garbage"}, "10.0.0.1", "10.0.0.1", "10.0.0.1"},
		{"garbage at the right", proxy, []string{"198.51.100.7, garbage"}, "10.0.0.1", "10.0.0.1", "10.0.0.1"},
		{"garbage at the left is never read", proxy, []string{"garbage, 198.51.100.7"}, "10.0.0.1", "198.51.100.7", "198.51.100.7"},
		{"garbage behind a trusted proxy", proxy, []string{"198.51.100.7, garbage, 10.0.0.9"}, "10.0.0.1", "10.0.0.9", "10.0.0.1"},
		{"bidi override", proxy, []string{"\u202e198.51.100.7"}, "10.0.0.1", "10.0.0.1", "10.0.0.1"},
		{"C1 control", proxy, []string{"198.51.100.7\u0085"}, "10.0.0.1", "10.0.0.1", "10.0.0.1"},
		{"empty entry", proxy, []string{"198.51.100.7,"}, "10.0.0.1", "10.0.0.1", "10.0.0.1"},
		{"empty header", proxy, []string{""}, "10.0.0.1", "10.0.0.1", "10.0.0.1"},
		{"spaces and tabs around", proxy, []string{" 192.0.2.1 ,\t198.51.100.7 "}, "10.0.0.1", "198.51.100.7", "198.51.100.7"},
		{"IPv4 with port", proxy, []string{"198.51.100.7:4711"}, "10.0.0.1", "198.51.100.7", "198.51.100.7"},
		{"IPv4 with a port out of range", proxy, []string{"198.51.100.7:99999"}, "10.0.0.1", "10.0.0.1", "10.0.0.1"},
		{"IPv4 in brackets", proxy, []string{"[198.51.100.7]"}, "10.0.0.1", "10.0.0.1", "10.0.0.1"},
		{"IPv4 with leading zeros", proxy, []string{"198.051.100.7"}, "10.0.0.1", "10.0.0.1", "10.0.0.1"},
		{"IPv4 and a name", proxy, []string{"198.51.100.7 proxy"}, "10.0.0.1", "10.0.0.1", "10.0.0.1"},
		{"IPv6", proxy, []string{"2001:DB8::7"}, "10.0.0.1", "2001:db8::7", "2001:db8::7"},
		{"IPv6 in brackets", proxy, []string{"[2001:db8::7]"}, "10.0.0.1", "2001:db8::7", "2001:db8::7"},
		{"IPv6 with port", proxy, []string{"[2001:db8::7]:4711"}, "10.0.0.1", "2001:db8::7", "2001:db8::7"},
		{"IPv6 with zone", proxy, []string{"fe80::7%eth0"}, "10.0.0.1", "fe80::7", "fe80::7"},
		{"IPv6 with an unclosed bracket", proxy, []string{"[2001:db8::7"}, "10.0.0.1", "10.0.0.1", "10.0.0.1"},
		{"IPv4-mapped IPv6 is IPv4", proxy, []string{"::ffff:198.51.100.7"}, "10.0.0.1", "198.51.100.7", "198.51.100.7"},
		{"IPv4-mapped peer", "[::ffff:10.0.0.1]:5555", []string{"198.51.100.7"}, "10.0.0.1", "198.51.100.7", "198.51.100.7"},
		{"IPv6 proxy", "[2001:db8:f::1]:443", []string{"198.51.100.7, 2001:db8:f::2"}, "2001:db8:f::1", "2001:db8:f::2", "198.51.100.7"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodPost, "/register", nil)
			r.RemoteAddr = tt.remote
			for _, v := range tt.xff {
				r.Header.Add("X-Forwarded-For", v)
			}
			for name, want := range map[string]string{"off": tt.off, "one hop": tt.oneHop, "ranges": tt.ranges} {
				if got := servers[name].clientIP(r); got != want {
					t.Errorf("%s: clientIP(from %s, X-Forwarded-For %q) = %q, want %q", name, tt.remote, tt.xff, got, want)
				}
			}
		})
	}
}

// TestAdversarialForwardedForGarbage (issue 20 F5): with trusted proxy
// headers, 70 registrations each with another X-Forwarded-For string
// against a limit of 60 are limited: text that is not an IP address is no
// rate-limit key (nor an audit ip), so it cannot open a fresh bucket per
// request. With trusted proxy ranges, a peer outside them cannot open
// buckets with real addresses either.
func TestAdversarialForwardedForGarbage(t *testing.T) {
	for _, tt := range []struct {
		name    string
		proxies []netip.Prefix
		xff     func(i int) string
	}{
		{"garbage, one trusted hop", nil, func(i int) string {
			return fmt.Sprintf([]string{"garbage-%d", "\u202e%d.example", "198.51.100.%d x", "<script>%d", "::g%d"}[i%5], i)
		}},
		{"addresses, peer not a trusted proxy", []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}, func(i int) string {
			return fmt.Sprintf("198.51.100.%d", i)
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ts := newTestServer(t, func(o *Options) {
				openRegistration(func(r *Registration) { r.RateLimit = 60 })(o)
				o.TrustProxyHeaders, o.TrustedProxies = true, tt.proxies
			})
			register := func(i int) regResp {
				body := fmt.Sprintf(`{"client_name":"c%d","redirect_uris":["https://a.example/cb"]}`, i)
				req, err := http.NewRequest(http.MethodPost, ts.URL+"/register", strings.NewReader(body))
				must(t, err)
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("X-Forwarded-For", tt.xff(i))
				resp, err := http.DefaultClient.Do(req)
				must(t, err)
				defer resp.Body.Close()
				b, err := io.ReadAll(resp.Body)
				must(t, err)
				return regResp{status: resp.StatusCode, header: resp.Header, body: string(b)}
			}
			for i := range 60 {
				if r := register(i); r.status != http.StatusCreated {
					t.Fatalf("registration %d = %d %s, want 201", i, r.status, r.body)
				}
			}
			before := ts.snapshot(t)
			for i := 60; i < 70; i++ {
				r := register(i)
				assertOAuthError(t, r.status, r.body, http.StatusTooManyRequests, "temporarily_unavailable")
				assertDescription(t, r.body, "too many registrations from this address")
			}
			assertUnchanged(t, ts, before)
			es, err := ts.Store.QueryAudit(t.Context(), storage.AuditQuery{Type: "client.registered", Limit: 1000})
			must(t, err)
			if len(es) != 60 {
				t.Errorf("%d client.registered events, want 60", len(es))
			}
			for _, e := range es {
				if e.IP != "127.0.0.1" {
					t.Fatalf("audit ip %q, want the peer 127.0.0.1", e.IP)
				}
			}
		})
	}
}
