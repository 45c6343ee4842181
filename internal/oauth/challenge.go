package oauth

import (
	"strings"
	"unicode/utf8"
)

// Param is one auth-param of a WWW-Authenticate challenge.
type Param struct {
	Name, Value string
}

// Challenge formats a WWW-Authenticate challenge (RFC 9110 §11.6.1) with
// every value as a quoted string, e.g.
//
//	Bearer resource_metadata="https://mcp.example.com/.well-known/oauth-protected-resource/mcp", scope="notes:read"
//
// Values pass through SafeText, so a value that came from a request (a
// tool name in a description) can neither end the quoted string nor the
// header, and error, error_description and scope keep to the characters
// RFC 6750 §3 allows them. Parameters with an empty value are left out.
func Challenge(scheme string, params ...Param) string {
	var b strings.Builder
	b.WriteString(scheme)
	first := true
	for _, p := range params {
		if p.Value == "" {
			continue
		}
		if first {
			b.WriteByte(' ')
			first = false
		} else {
			b.WriteString(", ")
		}
		b.WriteString(p.Name)
		b.WriteString(`="`)
		b.WriteString(SafeText(p.Value))
		b.WriteByte('"')
	}
	return b.String()
}

// SafeText returns s restricted to the characters RFC 6749 §5.2 and RFC
// 6750 §3 allow in an error_description (%x20-21 / %x23-5B / %x5D-7E:
// printable ASCII without '"' and '\'): a double quote becomes a single
// quote, and every other character outside the set (a backslash, a
// control character, anything non-ASCII, a byte of invalid UTF-8) a '?'.
func SafeText(s string) string {
	ok := true
	for i := 0; i < len(s); i++ {
		if !safeByte(s[i]) {
			ok = false
			break
		}
	}
	if ok {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case safeByte(c):
			b.WriteByte(c)
			i++
		case c == '"':
			b.WriteByte('\'')
			i++
		case c < utf8.RuneSelf:
			b.WriteByte('?')
			i++
		default:
			_, n := utf8.DecodeRuneInString(s[i:])
			b.WriteByte('?')
			i += n
		}
	}
	return b.String()
}

// safeByte reports whether c may appear in an error_description as is.
func safeByte(c byte) bool {
	return c >= 0x20 && c <= 0x7e && c != '"' && c != '\\'
}
