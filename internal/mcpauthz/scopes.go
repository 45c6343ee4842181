package mcpauthz

import "slices"

// Implied maps each scope to every scope it includes, directly or through
// others (a transitive closure, see Closure).
type Implied map[string][]string

// Has reports whether granted satisfies need, directly or through the
// scope hierarchy.
func (im Implied) Has(granted []string, need string) bool {
	for _, g := range granted {
		if g == need || slices.Contains(im[g], need) {
			return true
		}
	}
	return false
}

// HasAll reports whether granted satisfies every scope of needs.
func (im Implied) HasAll(granted, needs []string) bool {
	for _, n := range needs {
		if !im.Has(granted, n) {
			return false
		}
	}
	return true
}

// Closure returns the transitive closure of an implies relation: for each
// scope, every scope it implies directly or through others, never itself.
// Cycles are allowed and end where they close.
func Closure(in map[string][]string) Implied {
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
