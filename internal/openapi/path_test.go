package openapi

import (
	"net/url"
	"strings"
	"testing"
)

func TestExpandPath(t *testing.T) {
	tests := []struct {
		name     string
		template string
		params   map[string]string
		want     string
	}{
		{"plain", "/repos/{owner}/{repo}/pulls", map[string]string{"owner": "octo", "repo": "hello-world"}, "/repos/octo/hello-world/pulls"},
		{"slash encoded", "/files/{path}", map[string]string{"path": "a/b"}, "/files/a%2Fb"},
		{"traversal stays one segment", "/files/{path}", map[string]string{"path": "../../admin"}, "/files/..%2F..%2Fadmin"},
		{"encoded slash re-encoded", "/files/{path}", map[string]string{"path": "%2F"}, "/files/%252F"},
		{"query and fragment encoded", "/items/{id}", map[string]string{"id": "1?admin=1#x"}, "/items/1%3Fadmin%3D1%23x"},
		{"full URL one segment", "/items/{id}", map[string]string{"id": "https://evil.example/x"}, "/items/https%3A%2F%2Fevil.example%2Fx"},
		{"backslash and space", "/items/{id}", map[string]string{"id": `a\b c`}, "/items/a%5Cb%20c"},
		{"sub-delims encoded", "/items/{id}", map[string]string{"id": ";x=1,@:"}, "/items/%3Bx%3D1%2C%40%3A"},
		{"unreserved kept", "/items/{id}", map[string]string{"id": "A-z_0.9~"}, "/items/A-z_0.9~"},
		{"three dots allowed", "/items/{id}", map[string]string{"id": "..."}, "/items/..."},
		{"UTF-8 bytes encoded", "/items/{id}", map[string]string{"id": "é"}, "/items/%C3%A9"},
		{"placeholder inside segment", "/items/{id}.json", map[string]string{"id": "7"}, "/items/7.json"},
		{"same name twice", "/{a}/{a}", map[string]string{"a": "x"}, "/x/x"},
		{"extra params ignored", "/x", map[string]string{"a": "x"}, "/x"},
		{"trailing slash kept", "/users/", nil, "/users/"},
		{"literal percent-encoding kept", "/a%20b/{id}", map[string]string{"id": "1"}, "/a%20b/1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ExpandPath(tt.template, tt.params)
			if err != nil {
				t.Fatalf("ExpandPath(%q) error: %v", tt.template, err)
			}
			if got != tt.want {
				t.Errorf("ExpandPath(%q) = %q, want %q", tt.template, got, tt.want)
			}
		})
	}
}

func TestExpandPathRefuses(t *testing.T) {
	tests := []struct {
		name     string
		template string
		params   map[string]string
		wantErr  string // a part of the message that must be there
	}{
		{"dot-dot value", "/repos/{owner}/x", map[string]string{"owner": ".."}, `path parameter "owner" is ".."`},
		{"dot value", "/repos/{owner}/x", map[string]string{"owner": "."}, `path parameter "owner" is "."`},
		{"empty value", "/repos/{owner}/x", map[string]string{"owner": ""}, `path parameter "owner" is empty`},
		{"missing", "/repos/{owner}/{repo}", map[string]string{"owner": "o"}, `path parameter "repo" is missing`},
		{"unclosed at end", "/repos/{owner", map[string]string{"owner": "o"}, "not closed"},
		{"unclosed before slash", "/repos/{owner/x}", map[string]string{"owner/x": "o"}, "not closed"},
		{"nested open", "/repos/{a{b}}", map[string]string{"a{b": "o"}, "not closed"},
		{"stray close", "/repos/owner}", nil, "closes no placeholder"},
		{"empty placeholder", "/repos/{}", map[string]string{"": "o"}, "empty placeholder"},
		{"relative template", "repos/{id}", map[string]string{"id": "1"}, "does not start with '/'"},
		{"scheme-relative template", "//evil.example/{id}", map[string]string{"id": "1"}, "empty segment"},
		{"dot-dot in template", "/a/../{id}", map[string]string{"id": "1"}, `".." segment`},
		{"encoded dot-dot in template", "/a/%2e%2E/{id}", map[string]string{"id": "1"}, `".." segment`},
		{"dot segment from template and value", "/a/.{id}", map[string]string{"id": "."}, `path parameter "id" is "."`},
		{"query in template", "/a?x=1", nil, "does not belong in a path"},
		{"bad percent in template", "/a%zz", nil, "percent-encoded"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ExpandPath(tt.template, tt.params)
			if err == nil {
				t.Fatalf("ExpandPath(%q, %q) = %q, want an error", tt.template, tt.params, got)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("ExpandPath(%q) error %q, want it to contain %q", tt.template, err, tt.wantErr)
			}
		})
	}
}

const fuzzBase = "https://api.example.com/v1/"

// checkJoined asserts the safety property of an expanded path: joined to
// fuzzBase the request keeps scheme and host, carries no query, fragment or
// user, stays under /v1/ even after dot segments are resolved, and has as
// many segments as the template.
func checkJoined(t *testing.T, template, expanded string) {
	t.Helper()
	joined := fuzzBase + strings.TrimPrefix(expanded, "/")
	u, err := url.Parse(joined)
	if err != nil {
		t.Fatalf("ExpandPath(%q) = %q, which does not parse joined to the base: %v", template, expanded, err)
	}
	if u.Scheme != "https" || u.Host != "api.example.com" || u.User != nil {
		t.Fatalf("ExpandPath(%q) = %q moved the request to %s://%v@%s", template, expanded, u.Scheme, u.User, u.Host)
	}
	if u.RawQuery != "" || u.ForceQuery || u.Fragment != "" {
		t.Fatalf("ExpandPath(%q) = %q added a query or fragment: %q", template, expanded, joined)
	}
	escaped := u.EscapedPath()
	if !strings.HasPrefix(escaped, "/v1/") {
		t.Fatalf("ExpandPath(%q) = %q left /v1/: %q", template, expanded, escaped)
	}
	if resolved := u.ResolveReference(&url.URL{}); !strings.HasPrefix(resolved.EscapedPath(), "/v1/") {
		t.Fatalf("ExpandPath(%q) = %q resolves outside /v1/: %q", template, expanded, resolved.EscapedPath())
	}
	segs := strings.Split(strings.TrimPrefix(escaped, "/v1/"), "/")
	if want := strings.Count(template, "/"); len(segs) != want {
		t.Fatalf("ExpandPath(%q) = %q has %d segments, the template %d", template, expanded, len(segs), want)
	}
	for _, s := range segs {
		// Servers decode before resolving dot segments: check decoded too.
		if dec, err := url.PathUnescape(s); err == nil && (dec == "." || dec == "..") {
			t.Fatalf("ExpandPath(%q) = %q has a dot segment %q", template, expanded, s)
		}
	}
}

func TestExpandPathJoinedStaysUnderBase(t *testing.T) {
	for _, v := range []string{"../../admin", "%2e%2e", "..%2F", "?", "#", "//evil.example", "https://evil.example/", `\..\`, "a b", ".../"} {
		tmpl := "/repos/{owner}/{repo}"
		got, err := ExpandPath(tmpl, map[string]string{"owner": v, "repo": v})
		if err != nil {
			t.Fatalf("ExpandPath(%q): %v", v, err)
		}
		checkJoined(t, tmpl, got)
	}
}

func FuzzExpandPath(f *testing.F) {
	f.Add("/repos/{a}/{b}/pulls", "octo", "hello")
	f.Add("/files/{a}", "../../etc/passwd", "x")
	f.Add("/files/{a}{b}", ".", ".")
	f.Add("/files/{a}.json", "%2E%2E", "")
	f.Add("/{a}/", "?x=1#y", `\\evil`)
	f.Add("//{a}", "https://evil.example", "@")
	f.Add("/a/%2e%2e/{b}", "x", "y")
	f.Fuzz(func(t *testing.T, template, a, b string) {
		params := map[string]string{"a": a, "b": b}
		got, err := ExpandPath(template, params)
		if err == nil {
			checkJoined(t, template, got)
		}
		// Whatever the template, a value alone in a segment decodes back to
		// itself or is refused.
		one, err := ExpandPath("/x/{a}/y", params)
		if err != nil {
			if a != "" && a != "." && a != ".." {
				t.Fatalf("ExpandPath refused value %q: %v", a, err)
			}
			return
		}
		checkJoined(t, "/x/{a}/y", one)
		seg := strings.TrimSuffix(strings.TrimPrefix(one, "/x/"), "/y")
		if dec, err := url.PathUnescape(seg); err != nil || dec != a {
			t.Fatalf("value %q came back as %q (%v)", a, dec, err)
		}
	})
}
