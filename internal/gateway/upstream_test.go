package gateway

import (
	"fmt"
	"strings"
	"testing"
)

// TestRouteUpstream checks that New gives each route the upstream its
// configuration names (HTTP for URL, stdio for Command) and refuses one
// that names both, neither, or a URL that is not absolute http(s), naming
// the route and the fault.
func TestRouteUpstream(t *testing.T) {
	for _, tt := range []struct {
		name    string
		up      Upstream
		want    string // the upstream's type, or the error's text
		wantErr bool
	}{
		{"HTTP", Upstream{URL: "http://127.0.0.1:1/mcp"}, "*gateway.httpUpstream", false},
		{"stdio", Upstream{Command: "/bin/true"}, "*gateway.stdioUpstream", false},
		{"both", Upstream{URL: "http://127.0.0.1:1/mcp", Command: "/bin/true"}, `gateway: route "r": upstream has both URL and Command`, true},
		{"neither", Upstream{}, `gateway: route "r": upstream needs a URL, a Command or an API`, true},
		{"another scheme", Upstream{URL: "ftp://example.com/mcp"}, `gateway: route "r": upstream URL "ftp://example.com/mcp" must be an absolute http(s) URL`, true},
		{"relative", Upstream{URL: "/mcp"}, `gateway: route "r": upstream URL "/mcp" must be an absolute http(s) URL`, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			g, err := New(Options{
				Issuer:      "https://as.example.com",
				Routes:      []Route{{Name: "r", URL: "https://gw.example.com/r/mcp", Upstream: tt.up, Scopes: []string{"s"}}},
				NewVerifier: testVerifier,
			})
			if tt.wantErr {
				if err == nil || err.Error() != tt.want {
					t.Errorf("New with upstream %+v = %v, want error %q", tt.up, err, tt.want)
				}
				return
			}
			if err != nil {
				t.Fatalf("New with upstream %+v: %v", tt.up, err)
			}
			defer g.Close()
			if got := fmt.Sprintf("%T", g.routes[0].upstream); got != tt.want || !strings.HasPrefix(got, "*gateway.") {
				t.Errorf("New with upstream %+v: the route's upstream is %s, want %s", tt.up, got, tt.want)
			}
		})
	}
}
