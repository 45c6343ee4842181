package mcpauthz

import "slices"

// Closure returns the transitive closure of an implies relation: for each
// scope, every scope it implies directly or through others, never itself.
// Cycles are allowed and end where they close.
func Closure(in map[string][]string) map[string][]string {
	if len(in) == 0 {
		return nil
	}
	out := make(map[string][]string, len(in))
	for s := range in {
		var reach []string
		stack := slices.Clone(in[s])
		for len(stack) > 0 {
			x := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			if x == s || slices.Contains(reach, x) {
				continue
			}
			reach = append(reach, x)
			stack = append(stack, in[x]...)
		}
		out[s] = reach
	}
	return out
}

// Dedup returns s without repeated elements, in order of first appearance.
func Dedup(s []string) []string {
	var out []string
	for _, x := range s {
		if !slices.Contains(out, x) {
			out = append(out, x)
		}
	}
	return out
}

// ValidScope reports whether s is a scope-token (RFC 6749 §3.3):
// non-empty, printable ASCII without space, '"' or '\'.
func ValidScope(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x21 || c == 0x22 || c == 0x5c || c > 0x7e {
			return false
		}
	}
	return true
}
