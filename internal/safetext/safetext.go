// Package safetext makes stored text that outsiders can influence (client
// names, redirect URIs, client ids, audit fields) safe to show an operator
// in a terminal: every character that could end a line, move the cursor,
// start an escape sequence, reorder text (bidi controls) or hide it
// (zero-width and other invisible characters) is written as an escape, so
// one record stays one line and what is shown is what is stored. Printable
// text, non-ASCII letters included, stays as it is. It imports only the
// standard library.
package safetext

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
)

// Escape returns s with a backslash written as \\, every character
// [Shown] refuses as \uXXXX (\UXXXXXXXX beyond U+FFFF), and every byte
// that is not UTF-8 as \xNN. The result is printable, has no line
// breaks, and maps back to s without ambiguity.
func Escape(s string) string {
	if clean(s) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case r == '\\':
			b.WriteString(`\\`)
		case !Shown(r):
			if r > 0xFFFF {
				fmt.Fprintf(&b, `\U%08x`, r)
			} else {
				fmt.Fprintf(&b, `\u%04x`, r)
			}
		default:
			b.WriteString(s[i : i+n])
		}
		i += n
	}
	return b.String()
}

// clean reports whether s needs no escaping, the common case.
func clean(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < ' ' || c >= 0x7f || c == '\\' {
			return false
		}
	}
	return true
}

// Shown reports whether r may be shown as itself: a printable character
// (letters, marks, numbers, punctuation, symbols and the ASCII space),
// and not one that renders as nothing. It refuses C0 and C1 controls, DEL,
// format characters (Unicode category Cf: bidi embeddings, overrides and
// isolates, zero-width space and joiners, the BOM, soft hyphen, tags),
// line and paragraph separators (U+2028, U+2029), spaces other than
// U+0020, private-use and unassigned code points, variation selectors
// and the other default-ignorable characters (Hangul fillers and the
// like), which display as nothing and can smuggle text.
func Shown(r rune) bool {
	return unicode.IsPrint(r) &&
		!unicode.Is(unicode.Variation_Selector, r) &&
		!unicode.Is(unicode.Other_Default_Ignorable_Code_Point, r)
}

// EscapeJSON returns the JSON text b (as encoding/json writes it: valid
// UTF-8, control characters inside strings already escaped) with every
// other character [Shown] refuses written as a JSON \uXXXX escape
// (a surrogate pair beyond U+FFFF). The JSON means the same; only its
// bytes are safe to print. encoding/json leaves DEL, C1 controls, bidi
// and zero-width characters as they are.
func EscapeJSON(b []byte) []byte {
	out := make([]byte, 0, len(b))
	for i := 0; i < len(b); {
		r, n := utf8.DecodeRune(b[i:])
		switch {
		case r < ' ' && n == 1:
			// Whitespace between tokens (indentation); inside strings
			// encoding/json has escaped these already.
			out = append(out, b[i])
		case r == utf8.RuneError && n == 1:
			out = append(out, `\ufffd`...)
		case !Shown(r):
			if r > 0xFFFF {
				r1, r2 := utf16.EncodeRune(r)
				out = fmt.Appendf(out, `\u%04x\u%04x`, r1, r2)
			} else {
				out = fmt.Appendf(out, `\u%04x`, r)
			}
		default:
			out = append(out, b[i:i+n]...)
		}
		i += n
	}
	return out
}
