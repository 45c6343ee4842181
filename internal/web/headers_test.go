package web

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestSecureHeaders(t *testing.T) {
	h := SecureHeaders(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("ok"))
	}))
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/authorize", nil))
	want := http.Header{
		"Content-Security-Policy":    {"default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'"},
		"X-Frame-Options":            {"DENY"},
		"X-Content-Type-Options":     {"nosniff"},
		"Referrer-Policy":            {"no-referrer"},
		"Cross-Origin-Opener-Policy": {"same-origin"},
		"Cache-Control":              {"no-store"},
		"Content-Type":               {"text/plain; charset=utf-8"},
	}
	if diff := cmp.Diff(want, w.Header()); diff != "" {
		t.Errorf("headers mismatch (-want +got):\n%s", diff)
	}
	// form-action would make Chromium block the redirect to the client
	// after the consent POST; see ContentSecurityPolicy.
	if csp := w.Header().Get("Content-Security-Policy"); strings.Contains(csp, "form-action") {
		t.Errorf("Content-Security-Policy %q has form-action", csp)
	}
}

func TestStaticHandler(t *testing.T) {
	p := newPages(t, true)
	hashed := p.StylesheetURL()
	mux := http.NewServeMux()
	mux.Handle("/static/", SecureHeaders(p.StaticHandler()))
	stripped := http.StripPrefix("/static/", p.StaticHandler())

	tests := []struct {
		name      string
		h         http.Handler
		method    string
		path      string
		wantCode  int
		wantCache string
		wantBody  bool
	}{
		{"hashed", mux, http.MethodGet, hashed, http.StatusOK, "public, max-age=31536000, immutable", true},
		{"hashed HEAD", mux, http.MethodHead, hashed, http.StatusOK, "public, max-age=31536000, immutable", false},
		{"stable name", mux, http.MethodGet, "/static/gatehouse.css", http.StatusOK, "public, max-age=3600", true},
		{"behind StripPrefix", stripped, http.MethodGet, hashed, http.StatusOK, "public, max-age=31536000, immutable", true},
		{"old hash", mux, http.MethodGet, "/static/gatehouse.000000000000.css", http.StatusNotFound, "no-store", false},
		{"other file", mux, http.MethodGet, "/static/app.js", http.StatusNotFound, "no-store", false},
		{"POST", mux, http.MethodPost, hashed, http.StatusMethodNotAllowed, "no-store", false},
		{"script", mux, http.MethodGet, p.ScriptURL(), http.StatusOK, "public, max-age=31536000, immutable", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := httptest.NewRecorder()
			tt.h.ServeHTTP(w, httptest.NewRequest(tt.method, tt.path, nil))
			if w.Code != tt.wantCode {
				t.Errorf("%s %s: status got %d, want %d", tt.method, tt.path, w.Code, tt.wantCode)
			}
			if got := w.Header().Get("Cache-Control"); tt.h == mux && got != tt.wantCache {
				t.Errorf("%s %s: Cache-Control got %q, want %q", tt.method, tt.path, got, tt.wantCache)
			}
			if got, want := w.Header().Get("X-Content-Type-Options"), "nosniff"; got != want {
				t.Errorf("%s %s: X-Content-Type-Options got %q, want %q", tt.method, tt.path, got, want)
			}
			if tt.wantCode != http.StatusOK {
				return
			}
			wantType, wantBody := "text/css; charset=utf-8", stylesheet
			if tt.path == p.ScriptURL() {
				wantType, wantBody = "text/javascript; charset=utf-8", script
			}
			if got, want := w.Header().Get("Content-Type"), wantType; got != want {
				t.Errorf("%s %s: Content-Type got %q, want %q", tt.method, tt.path, got, want)
			}
			if got := w.Header().Get("ETag"); got == "" {
				t.Errorf("%s %s: no ETag", tt.method, tt.path)
			}
			if tt.wantBody && !bytes.Equal(w.Body.Bytes(), wantBody) {
				t.Errorf("%s %s: body is not the embedded file", tt.method, tt.path)
			}
			if !tt.wantBody && w.Body.Len() != 0 {
				t.Errorf("%s %s: got a %d-byte body, want none", tt.method, tt.path, w.Body.Len())
			}
		})
	}

	// Revalidation with the ETag gets 304.
	w := httptest.NewRecorder()
	mux.ServeHTTP(w, httptest.NewRequest(http.MethodGet, hashed, nil))
	r := httptest.NewRequest(http.MethodGet, hashed, nil)
	r.Header.Set("If-None-Match", w.Header().Get("ETag"))
	w = httptest.NewRecorder()
	mux.ServeHTTP(w, r)
	if w.Code != http.StatusNotModified {
		t.Errorf("GET with If-None-Match: status got %d, want %d", w.Code, http.StatusNotModified)
	}
}

// TestStylesheetCSPSafe checks that the stylesheet loads nothing the CSP
// would block: no imports, web fonts or remote images.
func TestStylesheetCSPSafe(t *testing.T) {
	css := strings.ToLower(string(stylesheet))
	for _, bad := range []string{"@import", "@font-face", "url(", "expression("} {
		if strings.Contains(css, bad) {
			t.Errorf("stylesheet contains %q", bad)
		}
	}
}
