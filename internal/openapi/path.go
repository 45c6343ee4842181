package openapi

import (
	"fmt"
	"net/url"
	"strings"
)

// ExpandPath returns template (an OpenAPI path such as
// "/repos/{owner}/{repo}") with each "{name}" replaced by params[name],
// percent-encoded as one path segment: every byte outside RFC 3986's
// unreserved set (letters, digits, "-", ".", "_", "~") is written as %XX, so
// "/", "?", "#" and "%" in a value can neither add a segment nor end the
// path. Parameters the template does not name are ignored.
//
// It returns an error, naming the parameter, for a missing parameter and for
// the values "", "." and "..", which no encoding makes safe (see the package
// documentation). It also refuses a template that is not a plain absolute
// path: one not starting with "/", with an unclosed "{", a stray "}", an
// empty placeholder, an empty segment before the last ("//"), a dot segment,
// or a character that does not belong in a path (such as "?", "#", "\" or a
// space), because the template is what keeps the request inside the API.
func ExpandPath(template string, params map[string]string) (string, error) {
	if !strings.HasPrefix(template, "/") {
		return "", fmt.Errorf("path template %q does not start with '/'", template)
	}
	var b strings.Builder
	b.Grow(len(template) + 16)
	for i := 0; i < len(template); {
		c := template[i]
		switch {
		case c == '{':
			end := strings.IndexAny(template[i+1:], "{}/")
			if end < 0 || template[i+1+end] != '}' {
				return "", fmt.Errorf("path template %q: placeholder at byte %d is not closed", template, i)
			}
			name := template[i+1 : i+1+end]
			if name == "" {
				return "", fmt.Errorf("path template %q: empty placeholder {} at byte %d", template, i)
			}
			value, ok := params[name]
			if !ok {
				return "", fmt.Errorf("path parameter %q is missing", name)
			}
			switch value {
			case "":
				return "", fmt.Errorf("path parameter %q is empty; an empty path segment is not allowed", name)
			case ".", "..":
				return "", fmt.Errorf("path parameter %q is %q, which servers resolve as a relative path segment even when percent-encoded; it is not allowed", name, value)
			}
			escapeSegment(&b, value)
			i += end + 2
		case c == '}':
			return "", fmt.Errorf("path template %q: '}' at byte %d closes no placeholder", template, i)
		case c == '%':
			if i+2 >= len(template) || !isHex(template[i+1]) || !isHex(template[i+2]) {
				return "", fmt.Errorf("path template %q: '%%' at byte %d does not start a percent-encoded byte", template, i)
			}
			b.WriteString(template[i : i+3])
			i += 3
		case c == '/' || isPchar(c):
			b.WriteByte(c)
			i++
		default:
			return "", fmt.Errorf("path template %q: %q at byte %d does not belong in a path", template, c, i)
		}
	}
	out := b.String()
	// The template's own segments are checked after expansion, where the
	// literal text and the values are joined: a literal "." next to a
	// placeholder is fine ("{id}.json"), a segment that is only dots is
	// not, nor is an empty one other than a trailing slash.
	segments := strings.Split(out[1:], "/")
	for k, seg := range segments {
		if seg == "" && k != len(segments)-1 {
			return "", fmt.Errorf("path template %q has an empty segment", template)
		}
		if dec, err := url.PathUnescape(seg); err == nil && (dec == "." || dec == "..") {
			return "", fmt.Errorf("path template %q has a %q segment", template, dec)
		}
	}
	return out, nil
}

// escapeSegment writes s with every byte outside RFC 3986's unreserved set
// percent-encoded. This is stricter than url.PathEscape, which leaves
// sub-delimiters such as ";" and "=" (matrix parameters to some servers)
// and ":" and "@" as they are.
func escapeSegment(b *strings.Builder, s string) {
	const hexDigits = "0123456789ABCDEF"
	for i := 0; i < len(s); i++ {
		c := s[i]
		if isUnreserved(c) {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hexDigits[c>>4])
		b.WriteByte(hexDigits[c&0x0f])
	}
}

// isUnreserved reports whether c is in RFC 3986's unreserved set.
func isUnreserved(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		c == '-' || c == '.' || c == '_' || c == '~'
}

// isPchar reports whether c may appear as itself in a path segment (RFC 3986
// pchar, without pct-encoded, which ExpandPath checks separately).
func isPchar(c byte) bool {
	return isUnreserved(c) || strings.IndexByte("!$&'()*+,;=:@", c) >= 0
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}
