package gateway

import (
	"fmt"
	"strings"
	"testing"
)

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

// FuzzURIProblem: uriProblem never panics, and whatever it accepts is a
// fixed point of an independent normaliser (lower-case scheme and host,
// unreserved characters and "/" decoded, upper-case hex, dot and empty
// segments resolved, file://localhost/ as file:///): an upstream that
// normalises URIs reads the text the rules matched.
func FuzzURIProblem(f *testing.F) {
	for _, s := range []string{
		"file:///secret/key", "FILE:///secret/key", "file://localhost/secret/key", "file:/secret/key",
		"file:///public/../secret/key", "file:///a/%2e%2E/b", "https://Example.COM:443/a/./b?x#y", "notes://1/a//b",
		"urn:isbn:0451450523", "file:///my%20notes", "file:///%7e", "mem:a/../b",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if uriProblem(s) != "" {
			return
		}
		if n := normaliseURI(s); n != s {
			t.Fatalf("uriProblem accepted %q, which normalises to %q", s, n)
		}
	})
}

// normaliseURI is the test's own normaliser, written from RFC 3986 §5.2.4
// and §6.2.2 without package url.
func normaliseURI(s string) string {
	colon := strings.IndexByte(s, ':')
	if colon <= 0 {
		return "?"
	}
	scheme, rest := strings.ToLower(s[:colon]), s[colon+1:]
	// Percent-encodings: upper-case hex; decode unreserved and "/".
	var b strings.Builder
	for i := 0; i < len(rest); i++ {
		c := rest[i]
		if c == '%' && i+2 < len(rest) {
			h := strings.ToUpper(rest[i+1 : i+3])
			var v byte
			if _, err := fmt.Sscanf(h, "%02X", &v); err == nil {
				if unreserved(v) || v == '/' {
					b.WriteByte(v)
				} else {
					b.WriteString("%" + h)
				}
				i += 2
				continue
			}
		}
		b.WriteByte(c)
	}
	rest = b.String()
	// Split off query and fragment.
	tail := ""
	if i := strings.IndexAny(rest, "?#"); i >= 0 {
		rest, tail = rest[:i], rest[i:]
	}
	authority, hasAuthority := "", strings.HasPrefix(rest, "//")
	path := rest
	if hasAuthority {
		rest = rest[2:]
		i := strings.IndexByte(rest, '/')
		if i < 0 {
			i = len(rest)
		}
		authority, path = lowerOutsideEscapes(rest[:i]), rest[i:]
		if scheme == "file" && authority == "localhost" {
			authority = ""
		}
		switch scheme {
		case "https":
			authority = strings.TrimSuffix(authority, ":443")
		case "http":
			authority = strings.TrimSuffix(authority, ":80")
		}
		authority = strings.TrimSuffix(authority, ".")
	} else if scheme == "file" {
		hasAuthority = true // file:/x is file:///x
	}
	// Resolve dot segments and collapse empty ones (file systems do).
	var out []string
	segs := strings.Split(path, "/")
	for i, seg := range segs {
		switch {
		case seg == ".":
		case seg == "..":
			if len(out) > 1 {
				out = out[:len(out)-1]
			}
		case seg == "" && i > 0 && i < len(segs)-1:
		default:
			out = append(out, seg)
		}
	}
	path = strings.Join(out, "/")
	if hasAuthority {
		return scheme + "://" + authority + path + tail
	}
	return scheme + ":" + path + tail
}

// lowerOutsideEscapes lowers s except the hex digits of percent-encodings,
// which stay upper case (RFC 3986 §2.1).
func lowerOutsideEscapes(s string) string {
	b := []byte(s)
	for i := 0; i < len(b); i++ {
		if b[i] == '%' {
			i += 2
			continue
		}
		if 'A' <= b[i] && b[i] <= 'Z' {
			b[i] += 'a' - 'A'
		}
	}
	return string(b)
}
