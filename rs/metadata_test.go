package rs

import (
	"flag"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

// golden compares got with testdata/name, rewriting it with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if diff := cmp.Diff(string(want), string(got)); diff != "" {
		t.Errorf("%s mismatch (-want +got):\n%s", path, diff)
	}
}

func TestHandleMetadata(t *testing.T) {
	mux := http.NewServeMux()
	u, err := HandleMetadata(mux, ResourceMetadata{
		Resource:             "http://127.0.0.1:8081/mcp",
		AuthorizationServers: []string{"http://127.0.0.1:8080"},
		ScopesSupported:      []string{"notes:read", "notes:write"},
		ResourceName:         "Gatehouse demo notes",
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := "http://127.0.0.1:8081/.well-known/oauth-protected-resource/mcp"; u != want {
		t.Errorf("HandleMetadata(...) URL = %q, want %q", u, want)
	}
	for _, path := range []string{"/.well-known/oauth-protected-resource/mcp", "/.well-known/oauth-protected-resource"} {
		t.Run(path, func(t *testing.T) {
			w := httptest.NewRecorder()
			mux.ServeHTTP(w, httptest.NewRequest(http.MethodGet, path, nil))
			if w.Code != http.StatusOK {
				t.Fatalf("GET %s = %d", path, w.Code)
			}
			for k, want := range map[string]string{
				"Content-Type":                "application/json",
				"Access-Control-Allow-Origin": "*",
			} {
				if got := w.Header().Get(k); got != want {
					t.Errorf("GET %s: %s = %q, want %q", path, k, got, want)
				}
			}
			body, _ := io.ReadAll(w.Body)
			golden(t, "prm.golden", body)
		})
	}
	// Preflight and methods.
	w := httptest.NewRecorder()
	r := httptest.NewRequest(http.MethodOptions, "/.well-known/oauth-protected-resource/mcp", nil)
	r.Header.Set("Origin", "http://localhost:6274")
	r.Header.Set("Access-Control-Request-Method", "GET")
	mux.ServeHTTP(w, r)
	if w.Code != http.StatusNoContent || w.Header().Get("Access-Control-Allow-Origin") != "*" {
		t.Errorf("OPTIONS = %d %v", w.Code, w.Header())
	}
	w = httptest.NewRecorder()
	mux.ServeHTTP(w, httptest.NewRequest(http.MethodPost, "/.well-known/oauth-protected-resource", nil))
	if w.Code != http.StatusMethodNotAllowed {
		t.Errorf("POST = %d, want 405", w.Code)
	}
}

func TestMetadataHandlerValidation(t *testing.T) {
	tests := []struct {
		name string
		m    ResourceMetadata
	}{
		{"no resource", ResourceMetadata{AuthorizationServers: []string{"https://as.example.com"}}},
		{"no authorization server", ResourceMetadata{Resource: testResource}},
		{"relative resource", ResourceMetadata{Resource: "/mcp", AuthorizationServers: []string{"https://as.example.com"}}},
		{"bad issuer", ResourceMetadata{Resource: testResource, AuthorizationServers: []string{"javascript:alert(1)"}}},
		{"bad scope", ResourceMetadata{Resource: testResource, AuthorizationServers: []string{"https://as.example.com"}, ScopesSupported: []string{"a b"}}},
	}
	for _, tt := range tests {
		if _, err := MetadataHandler(tt.m); err == nil {
			t.Errorf("MetadataHandler(%s) = nil error, want error", tt.name)
		}
	}
}

func TestMetadataURL(t *testing.T) {
	tests := []struct{ resource, url, path string }{
		{"https://mcp.example.com/mcp", "https://mcp.example.com/.well-known/oauth-protected-resource/mcp", "/.well-known/oauth-protected-resource/mcp"},
		{"https://mcp.example.com/public/mcp", "https://mcp.example.com/.well-known/oauth-protected-resource/public/mcp", "/.well-known/oauth-protected-resource/public/mcp"},
		{"https://mcp.example.com", "https://mcp.example.com/.well-known/oauth-protected-resource", "/.well-known/oauth-protected-resource"},
		{"https://mcp.example.com/", "https://mcp.example.com/.well-known/oauth-protected-resource", "/.well-known/oauth-protected-resource"},
	}
	for _, tt := range tests {
		u, err := MetadataURL(tt.resource)
		if err != nil || u != tt.url {
			t.Errorf("MetadataURL(%q) = %q, %v, want %q", tt.resource, u, err, tt.url)
		}
		p, err := MetadataPath(tt.resource)
		if err != nil || p != tt.path {
			t.Errorf("MetadataPath(%q) = %q, %v, want %q", tt.resource, p, err, tt.path)
		}
	}
}
