package web

import (
	"net/http"
	"strings"
	"testing"
)

func TestCheckLogoURL(t *testing.T) {
	tests := []struct {
		name, url, wantOrigin, wantErr string
	}{
		{"https", "https://cdn.acme.example/brand/logo.svg", "https://cdn.acme.example", ""},
		{"https with port and query", "https://CDN.acme.example:8443/logo.png?v=3", "https://cdn.acme.example:8443", ""},
		{"https IPv4", "https://192.0.2.7/logo.png", "https://192.0.2.7", ""},
		{"data png", testLogo, "", ""},
		{"data svg", "data:image/svg+xml;base64,PHN2ZyB4bWxucz0iaHR0cDovL3d3dy53My5vcmcvMjAwMC9zdmciLz4=", "", ""},
		{"data upper case", "DATA:IMAGE/PNG;base64,iVBORw0KGgo=", "", ""},
		{"http", "http://cdn.acme.example/logo.png", "", "must be an https URL"},
		{"relative", "/static/logo.png", "", "must be an https URL"},
		{"scheme-relative", "//cdn.acme.example/logo.png", "", "must be an https URL"},
		{"javascript", "javascript:alert(1)", "", "must be an https URL"},
		{"userinfo", "https://user:pw@cdn.acme.example/logo.png", "", "user name or password"},
		{"fragment", "https://cdn.acme.example/logo.png#x", "", "fragment"},
		{"IPv6", "https://[2001:db8::1]/logo.png", "", "DNS name or an IPv4 address"},
		{"CSP injection in host", "https://cdn.acme.example;script-src/logo.png", "", "DNS name or an IPv4 address"},
		{"CSP source list in host", "https://cdn.acme.example%20*/logo.png", "", "is not a URL"},
		{"data html", "data:text/html;base64,PHNjcmlwdD4=", "", "must be one of image/png"},
		{"data not base64", "data:image/svg+xml,<svg onload=alert(1)>", "", "must be base64"},
		{"data bad base64", "data:image/png;base64,%%%", "", "does not decode"},
		{"too long", "data:image/png;base64," + strings.Repeat("A", MaxLogoURLBytes), "", "the limit is"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			origin, err := CheckLogoURL(tt.url)
			switch {
			case tt.wantErr == "":
				if err != nil || origin != tt.wantOrigin {
					t.Errorf("CheckLogoURL(%q) = %q, %v; want %q, nil", tt.url, origin, err, tt.wantOrigin)
				}
			case err == nil || !strings.Contains(err.Error(), tt.wantErr):
				t.Errorf("CheckLogoURL(%q) = %q, %v; want an error containing %q", tt.url, origin, err, tt.wantErr)
			}
		})
	}
}

// TestPagesLogoCSP: a remote logo adds exactly its origin to img-src of
// the pages' policy and nothing else; a data: logo or none leaves the
// policy as it is; and the logo URL reaches the page as given.
func TestPagesLogoCSP(t *testing.T) {
	tests := []struct {
		name, logo, wantCSP, wantImg string
	}{
		{"none", "", ContentSecurityPolicy, ""},
		{"data", testLogo, ContentSecurityPolicy, `<img class="logo" src="` + strings.ReplaceAll(testLogo, "+", "&#43;") + `"`}, // html/template escapes + in attributes
		{"https", "https://cdn.acme.example/logo.svg?v=2&amp=1",
			"default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'self'; img-src 'self' data: https://cdn.acme.example; frame-ancestors 'none'; base-uri 'none'",
			`<img class="logo" src="https://cdn.acme.example/logo.svg?v=2&amp;amp=1"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newBrandedPages(t, tt.logo)
			for _, page := range []func(w http.ResponseWriter, r *http.Request){
				func(w http.ResponseWriter, r *http.Request) { p.Login(w, r, 0, loginData) },
				func(w http.ResponseWriter, r *http.Request) { p.Consent(w, r, consentData) },
				func(w http.ResponseWriter, r *http.Request) { p.Error(w, r, 400, ErrorData{}) },
			} {
				w := render(t, page)
				if got := w.Header().Get("Content-Security-Policy"); got != tt.wantCSP {
					t.Errorf("Content-Security-Policy = %q, want %q", got, tt.wantCSP)
				}
				body := w.Body.String()
				if tt.wantImg == "" && strings.Contains(body, "<img") {
					t.Errorf("page has an image without a logo:\n%s", body)
				}
				if tt.wantImg != "" && !strings.Contains(body, tt.wantImg) {
					t.Errorf("page does not contain %q:\n%s", tt.wantImg, body)
				}
			}
		})
	}
	// SecureHeaders, for routes that render no page, keeps the strict policy.
	if ContentSecurityPolicy != contentSecurityPolicy("") {
		t.Errorf("contentSecurityPolicy(\"\") = %q, want %q", contentSecurityPolicy(""), ContentSecurityPolicy)
	}
}

// TestLoginNamesServer: the sign-in page says which server and which
// organisation the password goes to.
func TestLoginNamesServer(t *testing.T) {
	tests := []struct {
		name string
		p    *Pages
		want []string
		not  []string
	}{
		{"branded", newBrandedPages(t, ""), []string{
			"<title>Sign in · Acme Corp</title>",
			"<h1>Sign in to Acme Corp</h1>",
			`You are signing in at <strong>auth.acme.example</strong>.`,
		}, nil},
		{"unbranded", newPages(t, false), []string{"<h1>Sign in</h1>"}, []string{"Sign in to", "You are signing in at"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := render(t, func(w http.ResponseWriter, r *http.Request) { tt.p.Login(w, r, 0, loginData) }).Body.String()
			for _, want := range tt.want {
				if !strings.Contains(body, want) {
					t.Errorf("sign-in page does not contain %q", want)
				}
			}
			for _, not := range tt.not {
				if strings.Contains(body, not) {
					t.Errorf("sign-in page contains %q", not)
				}
			}
		})
	}
}
