package gateway

import (
	"slices"
	"testing"

	"github.com/gatehouse-mcp/gatehouse/internal/storage"
)

// TestAuditClientIP (issue 20 F5): a tool call's audit event carries the
// peer address, or with TrustProxyHeaders the address the proxy appended
// to X-Forwarded-For; text that is not an IP address is never the ip.
func TestAuditClientIP(t *testing.T) {
	for _, tt := range []struct {
		name  string
		trust bool
		want  []string // for X-Forwarded-For 198.51.100.7, then for garbage
	}{
		{"headers not trusted", false, []string{"127.0.0.1", "127.0.0.1"}},
		{"one trusted hop", true, []string{"198.51.100.7", "127.0.0.1"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			up, _ := newUpstream(t, true)
			tg := newTestGateway(t, []Route{httpRoute(up.URL)}, func(o *Options) { o.TrustProxyHeaders = tt.trust })
			c := newRawClient(t, tg.base+"/up/mcp", "alice-read")
			c.initialize()
			for _, xff := range []string{"192.0.2.1, 198.51.100.7", "\u202egarbage"} {
				resp, _ := c.post(`{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"echo","arguments":{"message":"a"}}}`, "X-Forwarded-For", xff)
				if resp.StatusCode != 200 {
					t.Fatalf("tools/call with X-Forwarded-For %q: status %d", xff, resp.StatusCode)
				}
			}
			tg.Close()
			events, err := tg.store.QueryAudit(t.Context(), storage.AuditQuery{Type: AuditToolCall})
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, e := range events {
				got = append(got, e.IP)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("audit ips = %q, want %q", got, tt.want)
			}
		})
	}
}
