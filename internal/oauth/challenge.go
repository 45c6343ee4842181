package oauth

import "strings"

// Param is one auth-param of a WWW-Authenticate challenge.
type Param struct {
	Name, Value string
}

// Challenge formats a WWW-Authenticate challenge (RFC 9110 §11.6.1) with
// every value as a quoted string, e.g.
//
//	Bearer resource_metadata="https://mcp.example.com/.well-known/oauth-protected-resource/mcp", scope="notes:read"
//
// Parameters with an empty value are left out.
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
		b.WriteString(quote(p.Value))
		b.WriteByte('"')
	}
	return b.String()
}

// quote escapes a value for a quoted-string: backslash and double quote
// are escaped, control characters dropped.
func quote(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r < 0x20 || r == 0x7f:
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}
