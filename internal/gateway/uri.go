package gateway

import (
	"net/url"
	"strings"
)

// uriProblem says why a resource URI is not in the normal form the
// gateway's resource rules are matched against, or returns "" when it is.
//
// The rules compare the URI as text, while upstreams read it as a URI:
// the Python SDK, for one, normalises FILE:///secret/key,
// file://localhost/secret/key, file:/secret/key and
// file:///public/../secret/key all to file:///secret/key. A URI that any
// such normalisation (RFC 3986 §6.2.2 syntax-based and the usual
// scheme-based steps, plus what file systems do with empty and dot
// segments) would change could reach a resource its text does not match,
// so it is refused rather than guessed at. Refused: characters outside
// printable ASCII, a backslash, an upper-case scheme or host, userinfo, an
// explicit default port, file URIs without "//" or with host localhost,
// empty, "." and ".." path segments, and percent-encodings with lower-case
// hex digits or of a character that needs none (unreserved, "/").
func uriProblem(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= 0x20 || c >= 0x7f || c == '\\' {
			return "it contains a space, a control character, a backslash or a non-ASCII character (percent-encode it)"
		}
	}
	for i := 0; i < len(s); i++ {
		if s[i] != '%' {
			continue
		}
		if i+2 >= len(s) || !upperHex(s[i+1]) || !upperHex(s[i+2]) {
			return "a percent-encoding is not two upper-case hex digits"
		}
		if c := unhex(s[i+1])<<4 | unhex(s[i+2]); unreserved(c) || c == '/' || c == '\\' {
			return "it percent-encodes a character that needs no encoding"
		}
	}
	u, err := url.Parse(s)
	if err != nil {
		return "it is not a URI"
	}
	switch {
	case u.Scheme == "":
		return "it is not absolute (no scheme)"
	case !strings.HasPrefix(s, u.Scheme+":"): // url.Parse lowers the scheme
		return "its scheme is not lower case"
	case u.User != nil:
		return "it has userinfo"
	case u.Host != strings.ToLower(u.Host) || strings.HasSuffix(u.Hostname(), "."):
		return "its host is not in lower case without a trailing dot"
	}
	switch port := u.Port(); {
	case port == "" && strings.HasSuffix(u.Host, ":"):
		return "it has an empty port"
	case (u.Scheme == "http" && port == "80") || (u.Scheme == "https" && port == "443"):
		return "it names the scheme's default port"
	}
	if u.Scheme == "file" {
		switch {
		case u.Opaque != "" || !strings.HasPrefix(s, "file://"):
			return `a file URI must start with "file://"`
		case u.Host == "localhost":
			return `a file URI names the local host as "file:///", not "file://localhost/"`
		}
	}
	path := u.EscapedPath()
	if u.Opaque != "" {
		path = u.Opaque
	}
	segs := strings.Split(path, "/")
	for i, seg := range segs {
		switch {
		case seg == "." || seg == "..":
			return `its path has a "." or ".." segment`
		case seg == "" && i > 0 && i < len(segs)-1:
			return "its path has an empty segment (//)"
		}
	}
	return ""
}

func upperHex(c byte) bool { return '0' <= c && c <= '9' || 'A' <= c && c <= 'F' }

func unhex(c byte) byte {
	if c <= '9' {
		return c - '0'
	}
	return c - 'A' + 10
}

// unreserved reports whether c is an RFC 3986 unreserved character.
func unreserved(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~'
}
