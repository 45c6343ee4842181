package clientreg

import "testing"

func TestMatchRedirectURI(t *testing.T) {
	tests := []struct {
		name       string
		requested  string
		registered []string
		want       bool
	}{
		{"exact https", "https://app.example.com/cb", []string{"https://app.example.com/cb"}, true},
		{"https suffix", "https://app.example.com/cb/x", []string{"https://app.example.com/cb"}, false},
		{"https path traversal", "https://app.example.com/cb/../evil", []string{"https://app.example.com/cb"}, false},
		{"https userinfo", "https://app.example.com@evil.com/cb", []string{"https://app.example.com/cb"}, false},
		{"https port added", "https://app.example.com:8443/cb", []string{"https://app.example.com/cb"}, false},
		{"https case differs", "https://APP.example.com/cb", []string{"https://app.example.com/cb"}, false},
		{"https percent-encoding differs", "https://app.example.com/%63b", []string{"https://app.example.com/cb"}, false},
		{"https query added", "https://app.example.com/cb?x=1", []string{"https://app.example.com/cb"}, false},
		{"fragment never", "https://app.example.com/cb#x", []string{"https://app.example.com/cb#x"}, false},
		{"private scheme exact", "cursor://anysphere.cursor-mcp/oauth/callback", []string{"cursor://anysphere.cursor-mcp/oauth/callback"}, true},
		{"loopback ip any port", "http://127.0.0.1:49152/callback", []string{"http://127.0.0.1/callback"}, true},
		{"loopback ip other port", "http://127.0.0.1:3000/callback", []string{"http://127.0.0.1:8080/callback"}, true},
		{"loopback localhost any port", "http://localhost:5173/callback", []string{"http://localhost/callback"}, true},
		{"loopback v6 any port", "http://[::1]:5173/callback", []string{"http://[::1]/callback"}, true},
		{"localhost is not 127.0.0.1", "http://localhost:5173/callback", []string{"http://127.0.0.1/callback"}, false},
		{"127.0.0.1 is not localhost", "http://127.0.0.1:5173/callback", []string{"http://localhost/callback"}, false},
		{"loopback path differs", "http://127.0.0.1:5173/callback2", []string{"http://127.0.0.1/callback"}, false},
		{"loopback query differs", "http://127.0.0.1:5173/callback?a=b", []string{"http://127.0.0.1/callback"}, false},
		{"loopback userinfo", "http://evil@127.0.0.1:5173/callback", []string{"http://127.0.0.1/callback"}, false},
		{"loopback bad port", "http://127.0.0.1:99999/callback", []string{"http://127.0.0.1/callback"}, false},
		{"loopback https is not loopback exception", "https://127.0.0.1:5173/callback", []string{"https://127.0.0.1/callback"}, false},
		{"loopback other 127 address", "http://127.0.0.2:5173/callback", []string{"http://127.0.0.1/callback"}, false},
		{"non-loopback http port", "http://example.com:8080/callback", []string{"http://example.com/callback"}, false},
		{"nothing registered", "https://a/cb", nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := MatchRedirectURI(tt.requested, tt.registered); got != tt.want {
				t.Errorf("MatchRedirectURI(%q, %q) = %v, want %v", tt.requested, tt.registered, got, tt.want)
			}
		})
	}
}

func FuzzMatchRedirectURI(f *testing.F) {
	f.Add("http://127.0.0.1:5000/cb", "http://127.0.0.1/cb")
	f.Add("https://a.example/cb", "https://a.example/cb")
	f.Add("http://localhost:1/x?y", "http://localhost/x?y")
	f.Fuzz(func(t *testing.T, requested, registered string) {
		got := MatchRedirectURI(requested, []string{registered})
		if !got {
			return
		}
		// A match is either the exact string or a loopback URI on the same
		// host with the same path and query.
		if requested == registered {
			return
		}
		a, okA := parseLoopback(requested)
		b, okB := parseLoopback(registered)
		if !okA || !okB || a != b {
			t.Fatalf("MatchRedirectURI(%q, %q) = true for a non-loopback, non-exact pair", requested, registered)
		}
	})
}

// TestIsLoopbackHost (issue 11, item 8e): loopback is localhost or a parsed
// address in 127.0.0.0/8 or ::1, never a DNS name that starts with "127.".
func TestIsLoopbackHost(t *testing.T) {
	for _, tt := range []struct {
		host string
		want bool
	}{
		{"127.0.0.1", true},
		{"127.1.2.3", true},
		{"127.255.255.255", true},
		{"::1", true},
		{"[::1]", true},
		{"localhost", true},
		{"LocalHost", true},
		{"127.example.com", false},
		{"127.0.0.1.nip.io", false},
		{"127.evil.example.com", false},
		{"0177.0.0.1", false},
		{"127.1", false},
		{"2130706433", false},
		{"128.0.0.1", false},
		{"::2", false},
		{"[::1", false},
		{"::1%lo", false},
		{"localhost.", false},
		{"localhost.example.com", false},
		{"", false},
	} {
		if got := IsLoopbackHost(tt.host); got != tt.want {
			t.Errorf("IsLoopbackHost(%q) = %v, want %v", tt.host, got, tt.want)
		}
	}
}
