package as

import (
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"testing"
)

func fetch(t *testing.T, u string) (*http.Response, string) {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// TestMetadataEveryVariant: identical bytes at every well-known URL a
// client may try, for issuers with and without a path (AS-2, AS-3, AS-4,
// AS-8, SPEC-CHECKLIST §3.3).
func TestMetadataEveryVariant(t *testing.T) {
	for _, tt := range []struct {
		name, path string
		variants   []string
	}{
		{"root issuer", "", []string{"/.well-known/oauth-authorization-server", "/.well-known/openid-configuration"}},
		{"path issuer", "/tenant1", []string{"/.well-known/oauth-authorization-server/tenant1", "/.well-known/openid-configuration/tenant1", "/tenant1/.well-known/openid-configuration", "/tenant1/.well-known/oauth-authorization-server"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ts := newTestServerPath(t, tt.path, nil)
			var first string
			for _, v := range tt.variants {
				resp, body := fetch(t, ts.origin()+v)
				if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" || resp.Header.Get("Access-Control-Allow-Origin") != "*" {
					t.Errorf("GET %s = %d %q CORS %q, want 200 application/json with CORS *", v, resp.StatusCode, resp.Header.Get("Content-Type"), resp.Header.Get("Access-Control-Allow-Origin"))
				}
				if first == "" {
					first = body
				} else if body != first {
					t.Errorf("GET %s differs from %s", v, tt.variants[0])
				}
			}
			var m map[string]any
			must(t, json.Unmarshal([]byte(first), &m))
			if m["issuer"] != ts.URL {
				t.Errorf("issuer = %q, want byte-identical %q", m["issuer"], ts.URL)
			}
			golden(t, ts, "metadata"+map[string]string{"": "", "/tenant1": "_path"}[tt.path], first)
			// The root variant must not exist for a path issuer: a client
			// that uses it would get another issuer's metadata.
			if tt.path != "" {
				if resp, _ := fetch(t, ts.origin()+"/.well-known/oauth-authorization-server"); resp.StatusCode == 200 {
					t.Errorf("root metadata served for a path issuer")
				}
			}
		})
	}
}

// TestJWKSShape: public keys only, with kid, alg and use (golden with the
// key material masked).
func TestJWKSShape(t *testing.T) {
	ts := newTestServer(t, nil)
	resp, body := fetch(t, ts.URL+"/jwks")
	if resp.StatusCode != 200 || resp.Header.Get("Access-Control-Allow-Origin") != "*" {
		t.Fatalf("GET /jwks = %d CORS %q", resp.StatusCode, resp.Header.Get("Access-Control-Allow-Origin"))
	}
	var doc struct {
		Keys []map[string]any `json:"keys"`
	}
	must(t, json.Unmarshal([]byte(body), &doc))
	for _, k := range doc.Keys {
		if _, ok := k["d"]; ok {
			t.Fatalf("JWKS contains a private key part")
		}
	}
	masked := regexp.MustCompile(`"(kid|x|y)":"[^"]+"`).ReplaceAllString(body, `"$1":"…"`)
	golden(t, ts, "jwks", masked)
}
