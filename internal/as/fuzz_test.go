package as

import (
	"encoding/base64"
	"slices"
	"strings"
	"testing"

	"github.com/gatehouse-mcp/gatehouse/internal/oauth"
)

// FuzzParseScope checks oauth.ParseScope against a model of RFC 6749
// §3.3 (scope = scope-token *( SP scope-token ), scope-token = 1*( %x21 /
// %x23-5B / %x5D-7E ), runs of spaces tolerated): it accepts exactly the
// inputs whose every space-separated field is empty or a scope-token, and
// then returns those tokens, deduplicated in order of first appearance, so
// that every byte of every token is in the allowed set; JoinScope and
// ParseScope round-trip them unchanged.
func FuzzParseScope(f *testing.F) {
	for _, s := range []string{"", "notes:read", "a  b", "a\tb", `a"b`, "offline_access notes:write", "a\x7fb", "caf\u00e9", "a\xffb"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		scopes, err := oauth.ParseScope(s)
		want, ok := modelParseScope(s)
		if (err == nil) != ok {
			t.Fatalf("ParseScope(%q) = %q, %v; the RFC 6749 §3.3 model says valid = %v", s, scopes, err, ok)
		}
		if err != nil {
			if scopes != nil {
				t.Fatalf("ParseScope(%q) = %q with error %v, want nil", s, scopes, err)
			}
			return
		}
		if !slices.Equal(scopes, want) {
			t.Fatalf("ParseScope(%q) = %q, want %q", s, scopes, want)
		}
		for _, sc := range scopes {
			if !isScopeToken(sc) {
				t.Fatalf("ParseScope(%q) gave %q, not a scope-token", s, sc)
			}
		}
		again, err := oauth.ParseScope(oauth.JoinScope(scopes))
		if err != nil || !slices.Equal(again, scopes) {
			t.Fatalf("ParseScope(JoinScope(%q)) = %q, %v; want the same tokens", scopes, again, err)
		}
	})
}

// modelParseScope is ParseScope written from the grammar, for the fuzz
// target to compare with.
func modelParseScope(s string) ([]string, bool) {
	var out []string
	for _, field := range strings.Split(s, " ") {
		switch {
		case field == "":
		case !isScopeToken(field):
			return nil, false
		case !slices.Contains(out, field):
			out = append(out, field)
		}
	}
	return out, true
}

// isScopeToken reports whether s is 1*( %x21 / %x23-5B / %x5D-7E ).
func isScopeToken(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c == 0x21 || (c >= 0x23 && c <= 0x5b) || (c >= 0x5d && c <= 0x7e)) {
			return false
		}
	}
	return s != ""
}

func FuzzParseBasic(f *testing.F) {
	for _, s := range []string{"a:b", "a%3Ab:c", "id:sec:ret", ":x", "x", "a%zz:b"} {
		f.Add(base64.StdEncoding.EncodeToString([]byte(s)))
	}
	f.Add("not base64!")
	f.Fuzz(func(t *testing.T, h string) {
		id, secret, rawID, rawSecret, ok := parseBasic(h)
		if !ok {
			return
		}
		if rawID == "" || id == "" {
			t.Fatalf("parseBasic(%q) accepted an empty id", h)
		}
		dec, _ := base64.StdEncoding.DecodeString(h)
		if string(dec) != rawID+":"+rawSecret {
			t.Fatalf("parseBasic(%q): raw parts %q:%q do not rebuild %q", h, rawID, rawSecret, dec)
		}
		_ = secret
	})
}

func FuzzDecodeForm(f *testing.F) {
	for _, s := range []string{"grant_type=client_credentials", "a=1&a=2", "resource=x&resource=y", "%zz", "a=%20&b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		fm, err := decodeForm(body, "resource")
		if err != nil {
			if oe := oauth.As(err); oe.Code != oauth.InvalidRequest {
				t.Fatalf("decodeForm(%q) error code %q, want invalid_request", body, oe.Code)
			}
			return
		}
		for k, vs := range fm {
			if len(vs) > 1 && k != "resource" {
				t.Fatalf("decodeForm(%q) accepted a repeated %q", body, k)
			}
		}
	})
}
