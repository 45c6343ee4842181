package safetext

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

func TestEscape(t *testing.T) {
	for _, tt := range []struct{ name, in, want string }{
		{"ASCII", "Claude Code (client-1)", "Claude Code (client-1)"},
		{"letters of other scripts", "Zoë Ångström Ελληνικά 日本語 עברית", "Zoë Ångström Ελληνικά 日本語 עברית"},
		{"emoji", "ok 👍", "ok 👍"},
		{"combining mark", "e\u0301", "e\u0301"},
		{"bidi override", "admin\u202etxt.exe", `admin\u202etxt.exe`},
		{"bidi isolates and marks", "\u2066a\u2069\u200f", `\u2066a\u2069\u200f`},
		{"zero-width joiner and space", "pay\u200dpal\u200b", `pay\u200dpal\u200b`},
		{"byte order mark", "\ufeffx", `\ufeffx`},
		{"soft hyphen", "ad\u00admin", `ad\u00admin`},
		{"line and paragraph separators", "a\u2028b\u2029c", `a\u2028b\u2029c`},
		{"C1 NEL and CSI", "a\u0085b\u009b31m", `a\u0085b\u009b31m`},
		{"ESC sequence", "\x1b[31mred\x1b[0m", `\u001b[31mred\u001b[0m`},
		{"OSC hyperlink", "\x1b]8;;https://evil.example\x07x", `\u001b]8;;https://evil.example\u0007x`},
		{"DEL", "a\x7fb", `a\u007fb`},
		{"tab, newline, carriage return", "a\tb\nc\rd", `a\u0009b\u000ac\u000dd`},
		{"NUL", "a\x00b", `a\u0000b`},
		{"backslash", `C:\path\u202e`, `C:\\path\\u202e`},
		{"no-break and other spaces", "a\u00a0b\u3000c", `a\u00a0b\u3000c`},
		{"Hangul filler", "\u3164", `\u3164`},
		{"variation selector", "x\ufe0f\U000e0100", `x\ufe0f\U000e0100`},
		{"tag characters", "a\U000e0041", `a\U000e0041`},
		{"private use", "\ue000", `\ue000`},
		{"not UTF-8", "a\xffb\xc3", `a\xffb\xc3`},
		{"empty", "", ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := Escape(tt.in); got != tt.want {
				t.Errorf("Escape(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

// FuzzEscape: the result is one line of valid UTF-8 in which every
// character is shown as itself, and distinct inputs stay distinct.
func FuzzEscape(f *testing.F) {
	for _, s := range []string{"a\u202eb", "\\u202e", "\x1b[2J", "a\u2028b", "\xff", "日本"} {
		f.Add(s, s+"\\")
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		ea := Escape(a)
		if !utf8.ValidString(ea) {
			t.Fatalf("Escape(%q) = %q: not UTF-8", a, ea)
		}
		for _, r := range ea {
			if !Shown(r) {
				t.Fatalf("Escape(%q) = %q: holds %U", a, ea, r)
			}
		}
		if a != b && ea == Escape(b) {
			t.Fatalf("Escape(%q) = Escape(%q) = %q", a, b, ea)
		}
	})
}

func TestShown(t *testing.T) {
	// Every rune in categories Cc, Cf, Zl, Zp, Zs but U+0020, Co is refused.
	for _, tab := range []*unicode.RangeTable{unicode.Cc, unicode.Cf, unicode.Zl, unicode.Zp, unicode.Zs, unicode.Co} {
		var ranges []unicode.Range32
		for _, rg := range tab.R16 {
			ranges = append(ranges, unicode.Range32{Lo: uint32(rg.Lo), Hi: uint32(rg.Hi), Stride: uint32(rg.Stride)})
		}
		for _, rg := range append(ranges, tab.R32...) {
			for r := rg.Lo; r <= rg.Hi; r += rg.Stride {
				if Shown(rune(r)) && r != ' ' {
					t.Errorf("Shown(%U) = true", r)
				}
			}
		}
	}
}

// TestEscapeJSON: the JSON means the same after escaping, and holds no
// character that is not shown as itself.
func TestEscapeJSON(t *testing.T) {
	v := map[string]any{
		"client_name":   "Evil\u202e\u200d\u2028\u0085\x7f\x1b[31m\t\"<>&\\ Zoë 日本",
		"redirect_uris": []string{"https://a.example/cb\u2066"},
		"tag":           "\U000e0041",
	}
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	got := EscapeJSON(b)
	for _, r := range string(got) {
		if !Shown(r) && r != '\n' {
			t.Errorf("EscapeJSON left %U in %s", r, got)
		}
	}
	for _, want := range []string{`Evil\u202e\u200d\u2028\u0085\u007f\u001b[31m\t\"\u003c\u003e\u0026\\ Zoë 日本`, `\u2066`, `\udb40\udc41`} {
		if !strings.Contains(string(got), want) {
			t.Errorf("EscapeJSON output lacks %s:\n%s", want, got)
		}
	}
	var back map[string]any
	if err := json.Unmarshal(got, &back); err != nil {
		t.Fatalf("EscapeJSON output is not JSON: %v\n%s", err, got)
	}
	if back["client_name"] != v["client_name"] || back["tag"] != v["tag"] || back["redirect_uris"].([]any)[0] != "https://a.example/cb\u2066" {
		t.Errorf("EscapeJSON changed the values: %q", back)
	}
}

// BenchmarkEscape: the CLI escapes every field it prints; clean text
// (the common case) is returned as it is.
func BenchmarkEscape(b *testing.B) {
	for _, tt := range []struct{ name, s string }{
		{"clean", "https://claude.ai/oauth/claude-code-client-metadata"},
		{"hostile", "Evil\u202eedoC\u200d\u2028second line\x1b[31m"},
	} {
		b.Run(tt.name, func(b *testing.B) {
			for b.Loop() {
				Escape(tt.s)
			}
		})
	}
}
