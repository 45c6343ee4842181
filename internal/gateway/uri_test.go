package gateway

import "testing"

func TestURIProblem(t *testing.T) {
	for _, ok := range []string{
		"file:///secret/key", "file:///dir/", "file://server/share/x", "file:///my%20notes/a%2Bb",
		"https://example.com/a/b?q=1#f", "https://example.com:8443/", "notes://123", "urn:isbn:0451450523",
		"postgres://db/table/row", "mem:abc/def",
	} {
		if p := uriProblem(ok); p != "" {
			t.Errorf("uriProblem(%q) = %q, want none", ok, p)
		}
	}
	// Each reads as file:///secret/key (or its like) to a normalising
	// upstream while its text misses a "file:///secret/*" rule.
	for _, bad := range []string{
		"FILE:///secret/key", "File:///secret/key", "HTTPS://example.com/x", "Notes://1", "file://localhost/secret/key", "file:/secret/key", "file:secret/key",
		"file:///public/../secret/key", "file:///./secret/key", "file:///public/%2E%2E/secret/key", "file:///public/%2e%2e/secret/key",
		"file:////secret/key", "file:///secret//key", "file:///%73ecret/key", "file:///secret%2Fkey", "file:///secret%5Ckey",
		"file:///secret\\key", "file:///se cret", "file:///sécret", "file:///secret/key\n", "https://EXAMPLE.com/x",
		"https://example.com./x", "https://example.com:443/x", "http://example.com:80/x", "https://example.com:/x",
		"https://user@example.com/x", "secret/key", "/secret/key", "%zz", "file:///secret/%4",
	} {
		if p := uriProblem(bad); p == "" {
			t.Errorf("uriProblem(%q) = none, want a problem", bad)
		}
	}
}
