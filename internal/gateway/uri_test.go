package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/gatehouse-mcp/gatehouse/internal/mcpauthz"
)

func TestURIProblem(t *testing.T) {
	for _, ok := range []string{
		"file:///secret/key", "file:///dir/", "file://server/share/x", "file:///my%20notes/a%2Bb",
		"https://example.com/a/b?q=1#f", "https://example.com:8443/", "notes://123", "urn:isbn:0451450523",
		"postgres://db/table/row", "mem:abc/def",
	} {
		if p := uriProblem(ok); p != "" {
			t.Errorf("uriProblem(%q) = %q, want none", ok, p)
		}
	}
	// Each reads as file:///secret/key (or its like) to a normalising
	// upstream while its text misses a "file:///secret/*" rule.
	for _, bad := range []string{
		"FILE:///secret/key", "File:///secret/key", "HTTPS://example.com/x", "Notes://1", "file://localhost/secret/key", "file:/secret/key", "file:secret/key",
		"file:///public/../secret/key", "file:///./secret/key", "file:///public/%2E%2E/secret/key", "file:///public/%2e%2e/secret/key",
		"file:////secret/key", "file:///secret//key", "file:///%73ecret/key", "file:///secret%2Fkey", "file:///secret%5Ckey",
		"file:///secret\\key", "file:///se cret", "file:///sécret", "file:///secret/key\n", "https://EXAMPLE.com/x",
		"https://example.com./x", "https://example.com:443/x", "http://example.com:80/x", "https://example.com:/x",
		"https://user@example.com/x", "secret/key", "/secret/key", "%zz", "file:///secret/%4",
	} {
		if p := uriProblem(bad); p == "" {
			t.Errorf("uriProblem(%q) = none, want a problem", bad)
		}
	}
}

// FuzzURIProblem: uriProblem never panics, and whatever it accepts is a
// fixed point of an independent normaliser (lower-case scheme and host,
// unreserved characters and "/" decoded, upper-case hex, dot and empty
// segments resolved, file://localhost/ as file:///): an upstream that
// normalises URIs reads the text the rules matched.
func FuzzURIProblem(f *testing.F) {
	for _, s := range []string{
		"file:///secret/key", "FILE:///secret/key", "file://localhost/secret/key", "file:/secret/key",
		"file:///public/../secret/key", "file:///a/%2e%2E/b", "https://Example.COM:443/a/./b?x#y", "notes://1/a//b",
		"urn:isbn:0451450523", "file:///my%20notes", "file:///%7e", "mem:a/../b",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if uriProblem(s) != "" {
			return
		}
		if n := normaliseURI(s); n != s {
			t.Fatalf("uriProblem accepted %q, which normalises to %q", s, n)
		}
	})
}

// normaliseURI is the test's own normaliser, written from RFC 3986 §5.2.4
// and §6.2.2 without package url.
func normaliseURI(s string) string {
	colon := strings.IndexByte(s, ':')
	if colon <= 0 {
		return "?"
	}
	scheme, rest := strings.ToLower(s[:colon]), s[colon+1:]
	// Percent-encodings: upper-case hex; decode unreserved and "/".
	var b strings.Builder
	for i := 0; i < len(rest); i++ {
		c := rest[i]
		if c == '%' && i+2 < len(rest) {
			h := strings.ToUpper(rest[i+1 : i+3])
			var v byte
			if _, err := fmt.Sscanf(h, "%02X", &v); err == nil {
				if unreserved(v) || v == '/' {
					b.WriteByte(v)
				} else {
					b.WriteString("%" + h)
				}
				i += 2
				continue
			}
		}
		b.WriteByte(c)
	}
	rest = b.String()
	// Split off query and fragment.
	tail := ""
	if i := strings.IndexAny(rest, "?#"); i >= 0 {
		rest, tail = rest[:i], rest[i:]
	}
	authority, hasAuthority := "", strings.HasPrefix(rest, "//")
	path := rest
	if hasAuthority {
		rest = rest[2:]
		i := strings.IndexByte(rest, '/')
		if i < 0 {
			i = len(rest)
		}
		authority, path = lowerOutsideEscapes(rest[:i]), rest[i:]
		if scheme == "file" && authority == "localhost" {
			authority = ""
		}
		switch scheme {
		case "https":
			authority = strings.TrimSuffix(authority, ":443")
		case "http":
			authority = strings.TrimSuffix(authority, ":80")
		}
		authority = strings.TrimSuffix(authority, ".")
	} else if scheme == "file" {
		hasAuthority = true // file:/x is file:///x
	}
	// Resolve dot segments and collapse empty ones (file systems do).
	var out []string
	segs := strings.Split(path, "/")
	for i, seg := range segs {
		switch {
		case seg == ".":
		case seg == "..":
			if len(out) > 1 {
				out = out[:len(out)-1]
			}
		case seg == "" && i > 0 && i < len(segs)-1:
		default:
			out = append(out, seg)
		}
	}
	path = strings.Join(out, "/")
	if hasAuthority {
		return scheme + "://" + authority + path + tail
	}
	return scheme + ":" + path + tail
}

// lowerOutsideEscapes lowers s except the hex digits of percent-encodings,
// which stay upper case (RFC 3986 §2.1).
func lowerOutsideEscapes(s string) string {
	b := []byte(s)
	for i := 0; i < len(b); i++ {
		if b[i] == '%' {
			i += 2
			continue
		}
		if 'A' <= b[i] && b[i] <= 'Z' {
			b[i] += 'a' - 'A'
		}
	}
	return string(b)
}

// fileUpstream is a Go SDK MCP server over Streamable HTTP serving uris
// the way a file server does: by path, ignoring query and fragment and a
// trailing slash. It counts the reads, subscriptions and completions each
// URI gets.
func fileUpstream(t *testing.T, uris []string) (*httptest.Server, func(uri string) int) {
	t.Helper()
	var mu sync.Mutex
	hits := map[string]int{}
	hit := func(uri string) {
		mu.Lock()
		hits[uri]++
		mu.Unlock()
	}
	s := mcp.NewServer(&mcp.Implementation{Name: "files", Version: "1"}, &mcp.ServerOptions{
		SubscribeHandler:   func(_ context.Context, req *mcp.SubscribeRequest) error { hit(req.Params.URI); return nil },
		UnsubscribeHandler: func(_ context.Context, req *mcp.UnsubscribeRequest) error { hit(req.Params.URI); return nil },
		CompletionHandler: func(_ context.Context, req *mcp.CompleteRequest) (*mcp.CompleteResult, error) {
			hit(req.Params.Ref.URI)
			return &mcp.CompleteResult{Completion: mcp.CompletionResultDetails{Values: []string{"key"}}}, nil
		},
	})
	for _, uri := range uris {
		s.AddResource(&mcp.Resource{URI: uri, Name: uri}, func(_ context.Context, req *mcp.ReadResourceRequest) (*mcp.ReadResourceResult, error) {
			hit(req.Params.URI)
			u, err := url.Parse(req.Params.URI)
			if err != nil {
				return nil, err
			}
			path := strings.TrimSuffix(u.Path, "/")
			return &mcp.ReadResourceResult{Contents: []*mcp.ResourceContents{{URI: req.Params.URI, Text: "contents of " + path}}}, nil
		})
	}
	srv := httptest.NewServer(mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return s }, nil))
	t.Cleanup(srv.Close)
	return srv, func(uri string) int {
		mu.Lock()
		defer mu.Unlock()
		return hits[uri]
	}
}

// TestResourceRuleQueryFragmentSlash checks that an exact resource rule
// holds for the spellings of its URI that a file server reads as the same
// file: with "?x", "#x" or a trailing "/" appended (issue 11, item 8a).
// Each needs the rule's scopes for resources/read, subscribe, unsubscribe
// and completions, is refused untouched without them, and is hidden from
// resources/list; on a route that refuses unlisted resources, a URI whose
// canonical form is refused is refused too.
func TestResourceRuleQueryFragmentSlash(t *testing.T) {
	const secret = "file:///secret/key"
	variants := []string{secret, secret + "?x", secret + "#x", secret + "/", secret + "/?x#y"}
	up, hits := fileUpstream(t, append([]string{"file:///public/a", "file:///doc", "file:///doc?v=1"}, variants...))
	tg := newTestGateway(t, []Route{{
		Name:      "files",
		URL:       "/files/mcp",
		Upstream:  Upstream{URL: up.URL + "/"},
		Scopes:    []string{"fake:read"},
		Resources: Rules{secret: {"fake:admin"}},
	}, {
		Name:                  "listed",
		URL:                   "/listed/mcp",
		Upstream:              Upstream{URL: up.URL + "/"},
		Scopes:                []string{"fake:read"},
		Resources:             Rules{"file:///doc?v=1": nil},
		DenyUnlistedResources: true,
	}}, nil)

	reader := newRawClient(t, tg.base+"/files/mcp", "alice-read")
	reader.initialize()
	admin := newRawClient(t, tg.base+"/files/mcp", "alice-admin")
	admin.initialize()
	calls := []struct {
		method string
		params func(uri string) map[string]any
	}{
		{"resources/read", func(uri string) map[string]any { return map[string]any{"uri": uri} }},
		{"resources/subscribe", func(uri string) map[string]any { return map[string]any{"uri": uri} }},
		{"resources/unsubscribe", func(uri string) map[string]any { return map[string]any{"uri": uri} }},
		{"completion/complete", func(uri string) map[string]any {
			return map[string]any{"ref": map[string]any{"type": "ref/resource", "uri": uri}, "argument": map[string]any{"name": "n", "value": "k"}}
		}},
	}
	const wantScope = "fake:read fake:admin"
	for _, uri := range variants {
		for _, c := range calls {
			t.Run(c.method+" "+uri, func(t *testing.T) {
				before := hits(uri)
				body, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": 9, "method": c.method, "params": c.params(uri)})
				resp, msgs := reader.post(string(body))
				wantDesc := "resource " + uri + " needs scope " + wantScope
				if resp.StatusCode != http.StatusForbidden {
					t.Fatalf("%s %s with fake:read: status %d, want 403", c.method, uri, resp.StatusCode)
				}
				if got, want := resp.Header.Get("WWW-Authenticate"), `Bearer error="insufficient_scope", scope="`+wantScope+`"`; !strings.HasPrefix(got, want) ||
					!strings.Contains(got, `error_description="`+wantDesc+`"`) {
					t.Errorf("%s %s: WWW-Authenticate = %q, want insufficient_scope for %q with %q", c.method, uri, got, wantScope, wantDesc)
				}
				if len(msgs) != 1 || msgs[0].Error == nil || msgs[0].Error.Code != mcpauthz.CodeForbidden || msgs[0].Error.Message != "insufficient_scope: "+wantDesc {
					t.Errorf("%s %s: body = %+v, want JSON-RPC error %d %q", c.method, uri, msgs, mcpauthz.CodeForbidden, "insufficient_scope: "+wantDesc)
				}
				if n := hits(uri); n != before {
					t.Errorf("%s %s refused, but the upstream saw it (%d → %d)", c.method, uri, before, n)
				}
				status, res := admin.call(c.method, c.params(uri))
				if status != http.StatusOK || res.Error != nil || res.Result == nil {
					t.Errorf("%s %s with fake:admin = %d %+v, want a result", c.method, uri, status, res)
				}
			})
		}
	}

	uris := func(r rpcResult) []string {
		var res struct {
			Resources []struct {
				URI string `json:"uri"`
			} `json:"resources"`
		}
		if err := json.Unmarshal(r.Result, &res); err != nil {
			t.Fatalf("resources/list result %s: %v", r.Result, err)
		}
		var out []string
		for _, r := range res.Resources {
			out = append(out, r.URI)
		}
		return out
	}
	t.Run("resources/list", func(t *testing.T) {
		_, res := reader.call("resources/list", map[string]any{})
		if got, want := uris(res), []string{"file:///public/a", "file:///doc", "file:///doc?v=1"}; !cmp.Equal(got, want, cmpopts.SortSlices(func(a, b string) bool { return a < b })) {
			t.Errorf("resources/list with fake:read = %v, want %v", got, want)
		}
		_, res = admin.call("resources/list", map[string]any{})
		if got := uris(res); len(got) != 3+len(variants) {
			t.Errorf("resources/list with fake:admin = %v, want all %d", got, 3+len(variants))
		}
	})

	// file:///doc is unlisted, so refused; file:///doc?v=1, listed, reads
	// the same file and is refused with it.
	t.Run("deny unlisted canonical form", func(t *testing.T) {
		c := newRawClient(t, tg.base+"/listed/mcp", "alice-admin")
		c.initialize()
		for _, uri := range []string{"file:///doc", "file:///doc?v=1"} {
			before := hits(uri)
			status, res := c.call("resources/read", map[string]any{"uri": uri})
			want := "resource " + strconv.Quote(uri) + " is not allowed through this gateway"
			if status != http.StatusOK || res.Error == nil || res.Error.Code != mcpauthz.CodeForbidden || res.Error.Message != want {
				t.Errorf("resources/read %s = %d %+v, want JSON-RPC error %d %q", uri, status, res.Error, mcpauthz.CodeForbidden, want)
			}
			if n := hits(uri); n != before {
				t.Errorf("resources/read %s refused, but the upstream saw it", uri)
			}
		}
	})
}
