package oauth

import (
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestParseScope checks RFC 6749 §3.3, scope-token = 1*( %x21 / %x23-5B
// / %x5D-7E ): every printable ASCII character but '"' and '\' is
// accepted, and a token with anything else — a control character, DEL,
// any byte of a non-ASCII character, invalid UTF-8 — makes the whole
// parameter an error.
func TestParseScope(t *testing.T) {
	var allowed strings.Builder
	for c := byte(0x21); c <= 0x7e; c++ {
		if c != '"' && c != '\\' {
			allowed.WriteByte(c)
		}
	}
	accepted := []struct {
		in   string
		want []string
	}{
		{"", nil},
		{"notes:read", []string{"notes:read"}},
		{"notes:read notes:write", []string{"notes:read", "notes:write"}},
		{"b a b a", []string{"b", "a"}},
		{"  a   b  ", []string{"a", "b"}},
		{"   ", nil},
		{"https://mcp.example.com/scope#x?y=1", []string{"https://mcp.example.com/scope#x?y=1"}},
		{"!#[]~{}|^`", []string{"!#[]~{}|^`"}},
		{allowed.String(), []string{allowed.String()}},
	}
	for _, tt := range accepted {
		got, err := ParseScope(tt.in)
		if err != nil || !cmp.Equal(got, tt.want) {
			t.Errorf("ParseScope(%q) = %q, %v; want %q, nil", tt.in, got, err, tt.want)
		}
	}

	var refused []string
	for c := 0; c < 0x21; c++ {
		if c != ' ' {
			refused = append(refused, fmt.Sprintf("a%cb", c), fmt.Sprintf("ok a%cb", c))
		}
	}
	refused = append(refused,
		"a\x7fb", `a"b`, `a\b`, "ok a\tb", "a\r\nb",
		"caf\u00e9", "a\u00a0b", "a\u2028b", "\u0430dmin", "a\u200bb", "\U0001F600",
		"a\x80b", "a\xffb", "ok \xc3", "a\xc0\xafb",
	)
	for c := 0x80; c <= 0xff; c++ {
		refused = append(refused, string([]byte{'a', byte(c)}))
	}
	for _, in := range refused {
		got, err := ParseScope(in)
		if err == nil || got != nil {
			t.Errorf("ParseScope(%q) = %q, %v; want nil and an error", in, got, err)
			continue
		}
		if !strings.Contains(err.Error(), "not allowed by RFC 6749 §3.3") {
			t.Errorf("ParseScope(%q) error %q does not name RFC 6749 §3.3", in, err)
		}
	}
}

// TestJoinScope checks that JoinScope inverts ParseScope.
func TestJoinScope(t *testing.T) {
	for _, scopes := range [][]string{nil, {"a"}, {"notes:read", "notes:write", "offline_access"}} {
		got, err := ParseScope(JoinScope(scopes))
		if err != nil || !cmp.Equal(got, scopes) {
			t.Errorf("ParseScope(JoinScope(%q)) = %q, %v", scopes, got, err)
		}
	}
}
