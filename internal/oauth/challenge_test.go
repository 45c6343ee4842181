package oauth

import (
	"strings"
	"testing"
)

func TestSafeText(t *testing.T) {
	for in, want := range map[string]string{
		"plain text: 1-2_3~":           "plain text: 1-2_3~",
		`the scope "admin" is unknown`: `the scope 'admin' is unknown`,
		`a\b`:                          "a?b",
		"line\r\nbreak\ttab\x00\x7f":   "line??break?tab??",
		"caf\u00e9 \u2603":             "caf? ?",
		"bad \xff\xfe utf-8":           "bad ?? utf-8",
		"":                             "",
	} {
		got := SafeText(in)
		if got != want {
			t.Errorf("SafeText(%q) = %q, want %q", in, got, want)
		}
		for i := 0; i < len(got); i++ {
			if c := got[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' {
				t.Errorf("SafeText(%q) = %q keeps byte %#x, outside %%x20-21 / %%x23-5B / %%x5D-7E", in, got, c)
			}
		}
	}
}

func TestChallenge(t *testing.T) {
	got := Challenge("Bearer",
		Param{"error", "invalid_token"},
		Param{"error_description", "a \"quoted\" \\ value\r\nX-Injected: 1"},
		Param{"scope", ""},
		Param{"resource_metadata", "https://mcp.example.com/.well-known/oauth-protected-resource/mcp"},
	)
	want := `Bearer error="invalid_token", error_description="a 'quoted' ? value??X-Injected: 1", resource_metadata="https://mcp.example.com/.well-known/oauth-protected-resource/mcp"`
	if got != want {
		t.Errorf("Challenge = %s\nwant        %s", got, want)
	}
	if strings.ContainsAny(got, "\r\n") {
		t.Error("Challenge kept a line break")
	}
	if got := Challenge("Basic"); got != "Basic" {
		t.Errorf("Challenge(Basic) = %q, want Basic", got)
	}
}
