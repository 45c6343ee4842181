package oauth

import (
	"fmt"
	"slices"
	"strings"
)

// ParseScope splits a scope parameter (RFC 6749 §3.3: space-delimited,
// case-sensitive scope-tokens of %x21 / %x23-5B / %x5D-7E) into its unique
// tokens in order of first appearance. An empty string gives nil.
func ParseScope(s string) ([]string, error) {
	if s == "" {
		return nil, nil
	}
	var out []string
	for _, tok := range strings.Split(s, " ") {
		if tok == "" {
			// Several spaces in a row: tolerated, as real clients send them.
			continue
		}
		for i := 0; i < len(tok); i++ {
			c := tok[i]
			if c < 0x21 || c == 0x22 || c == 0x5c || c > 0x7e {
				return nil, fmt.Errorf("scope %q contains a character not allowed by RFC 6749 §3.3", truncate(tok, 64))
			}
		}
		if !slices.Contains(out, tok) {
			out = append(out, tok)
		}
	}
	return out, nil
}

// JoinScope is the inverse of ParseScope.
func JoinScope(scopes []string) string { return strings.Join(scopes, " ") }

// truncate shortens s for an error message.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
