package as

import (
	"encoding/base64"
	"strings"
	"testing"

	"github.com/gatehouse-mcp/gatehouse/internal/oauth"
)

func FuzzParseScope(f *testing.F) {
	for _, s := range []string{"", "notes:read", "a  b", "a\tb", `a"b`, "offline_access notes:write"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		scopes, err := oauth.ParseScope(s)
		if err != nil {
			return
		}
		// Every token is non-empty, unique and made of allowed characters,
		// and joining and re-parsing is stable.
		seen := map[string]bool{}
		for _, sc := range scopes {
			if sc == "" || seen[sc] || strings.ContainsAny(sc, " \"\\") {
				t.Fatalf("ParseScope(%q) gave bad token %q", s, sc)
			}
			seen[sc] = true
		}
		again, err := oauth.ParseScope(oauth.JoinScope(scopes))
		if err != nil || len(again) != len(scopes) {
			t.Fatalf("ParseScope(JoinScope(%q)) = %q, %v", scopes, again, err)
		}
	})
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
