package web

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// browser plays one browser: it gets a CSRF cookie and token from a GET.
func browser(t *testing.T, p *Pages) (*http.Cookie, string) {
	t.Helper()
	w := httptest.NewRecorder()
	tok := p.CSRFToken(w, httptest.NewRequest(http.MethodGet, "/login", nil))
	cookies := w.Result().Cookies()
	if len(cookies) != 1 {
		t.Fatalf("CSRFToken set %d cookies, want 1", len(cookies))
	}
	return cookies[0], tok
}

// postForm builds a form POST carrying cookie (if not nil) and body.
func postForm(t *testing.T, cookie *http.Cookie, body string) *http.Request {
	t.Helper()
	r := httptest.NewRequest(http.MethodPost, "/login", strings.NewReader(body))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if cookie != nil {
		r.AddCookie(&http.Cookie{Name: cookie.Name, Value: cookie.Value})
	}
	return r
}

func TestCSRF(t *testing.T) {
	for _, secure := range []bool{false, true} {
		p := newPages(t, secure)
		a, tokA := browser(t, p)
		b, tokB := browser(t, p)
		if a.Value == b.Value || tokA == tokB {
			t.Fatalf("two browsers got the same cookie or token: %q, %q", a.Value, tokA)
		}
		forged := &http.Cookie{Name: a.Name, Value: strings.Repeat("A", 52)}
		// Another server's key signs a different token for the same cookie.
		other, err := New(Options{CSRFKey: make([]byte, 32), Secure: secure})
		if err != nil {
			t.Fatal(err)
		}
		_, otherTok := browser(t, other)
		otherTokA := other.CSRFToken(httptest.NewRecorder(), postForm(t, a, ""))
		tests := []struct {
			name   string
			cookie *http.Cookie
			body   string
			want   bool
		}{
			{"round trip", a, "csrf_token=" + tokA, true},
			{"round trip, other browser", b, "username=x&csrf_token=" + tokB + "&request=r", true},
			{"token from another browser's cookie", b, "csrf_token=" + tokA, false},
			{"token signed with another key", a, "csrf_token=" + otherTokA, false},
			{"token from another server", a, "csrf_token=" + otherTok, false},
			{"missing token", a, "username=x", false},
			{"empty token", a, "csrf_token=", false},
			{"missing cookie", nil, "csrf_token=" + tokA, false},
			{"planted cookie", forged, "csrf_token=" + tokA, false},
			{"tampered token", a, "csrf_token=" + tokA[:len(tokA)-1] + "x", false},
			{"cookie value as token", a, "csrf_token=" + a.Value, false},
		}
		for _, tt := range tests {
			if got := p.CheckCSRF(postForm(t, tt.cookie, tt.body)); got != tt.want {
				t.Errorf("Secure=%v, %s: CheckCSRF = %v, want %v", secure, tt.name, got, tt.want)
			}
		}
	}
}

// TestCSRFQueryIgnored checks that a token in the URL (which leaks through
// logs and history) does not count.
func TestCSRFQueryIgnored(t *testing.T) {
	p := newPages(t, false)
	c, tok := browser(t, p)
	r := postForm(t, c, "")
	r.URL.RawQuery = url.Values{"csrf_token": {tok}}.Encode()
	if p.CheckCSRF(r) {
		t.Errorf("CheckCSRF with the token in the query = true, want false")
	}
}

// TestCSRFAfterParseForm checks that CheckCSRF works on a request the
// handler already parsed.
func TestCSRFAfterParseForm(t *testing.T) {
	p := newPages(t, false)
	c, tok := browser(t, p)
	r := postForm(t, c, "csrf_token="+tok)
	if err := r.ParseForm(); err != nil {
		t.Fatal(err)
	}
	if !p.CheckCSRF(r) {
		t.Errorf("CheckCSRF after ParseForm = false, want true")
	}
}

func TestCSRFTokenReusesCookie(t *testing.T) {
	p := newPages(t, false)
	c, tok := browser(t, p)
	w := httptest.NewRecorder()
	got := p.CSRFToken(w, postForm(t, c, ""))
	if got != tok {
		t.Errorf("CSRFToken with the cookie set: got %q, want %q", got, tok)
	}
	if sc := w.Header().Values("Set-Cookie"); len(sc) != 0 {
		t.Errorf("CSRFToken with the cookie set sent Set-Cookie %q, want none", sc)
	}

	// A malformed cookie is replaced, not signed.
	w = httptest.NewRecorder()
	short := &http.Cookie{Name: c.Name, Value: "short"}
	got = p.CSRFToken(w, postForm(t, short, ""))
	cookies := w.Result().Cookies()
	if len(cookies) != 1 || cookies[0].Value == "short" {
		t.Fatalf("CSRFToken with a malformed cookie set cookies %v, want one new cookie", cookies)
	}
	if !p.CheckCSRF(postForm(t, cookies[0], "csrf_token="+got)) {
		t.Errorf("CheckCSRF with the replacement cookie = false, want true")
	}
}

func TestCSRFCookieAttributes(t *testing.T) {
	tests := []struct {
		secure bool
		want   string
	}{
		{false, "gh_csrf=VALUE; Path=/; HttpOnly; SameSite=Lax"},
		{true, "__Host-gh_csrf=VALUE; Path=/; HttpOnly; Secure; SameSite=Lax"},
	}
	for _, tt := range tests {
		p := newPages(t, tt.secure)
		w := httptest.NewRecorder()
		p.CSRFToken(w, httptest.NewRequest(http.MethodGet, "/", nil))
		c := w.Result().Cookies()[0]
		got := strings.Replace(w.Header().Get("Set-Cookie"), c.Value, "VALUE", 1)
		if got != tt.want {
			t.Errorf("Secure=%v: Set-Cookie: got %q, want %q", tt.secure, got, tt.want)
		}
		if len(c.Value) < 52 {
			t.Errorf("Secure=%v: cookie value %q has %d characters, want at least 52 (256 bits)", tt.secure, c.Value, len(c.Value))
		}
	}
}

func TestCookieName(t *testing.T) {
	tests := []struct {
		secure     bool
		base, want string
	}{
		{false, "gh_session", "gh_session"},
		{true, "gh_session", "__Host-gh_session"},
		{true, "__Host-gh_session", "__Host-gh_session"},
		{false, "__Host-gh_session", "gh_session"},
	}
	for _, tt := range tests {
		p := newPages(t, tt.secure)
		if got := p.CookieName(tt.base); got != tt.want {
			t.Errorf("Secure=%v: CookieName(%q): got %q, want %q", tt.secure, tt.base, got, tt.want)
		}
	}
}

func TestSetAndClearCookie(t *testing.T) {
	tests := []struct {
		name   string
		secure bool
		f      func(p *Pages, w http.ResponseWriter)
		want   []string
	}{
		{"set", true, func(p *Pages, w http.ResponseWriter) { p.SetCookie(w, "gh_session", "abc", time.Hour) },
			[]string{"__Host-gh_session=abc; Path=/; Max-Age=3600; HttpOnly; Secure; SameSite=Lax"}},
		{"set with prefixed name", true, func(p *Pages, w http.ResponseWriter) { p.SetCookie(w, p.CookieName("gh_session"), "abc", time.Hour) },
			[]string{"__Host-gh_session=abc; Path=/; Max-Age=3600; HttpOnly; Secure; SameSite=Lax"}},
		{"set insecure", false, func(p *Pages, w http.ResponseWriter) { p.SetCookie(w, "gh_session", "abc", time.Hour) },
			[]string{"gh_session=abc; Path=/; Max-Age=3600; HttpOnly; SameSite=Lax"}},
		{"session cookie", false, func(p *Pages, w http.ResponseWriter) { p.SetCookie(w, "gh_session", "abc", 0) },
			[]string{"gh_session=abc; Path=/; HttpOnly; SameSite=Lax"}},
		{"sub-second rounds up", false, func(p *Pages, w http.ResponseWriter) { p.SetCookie(w, "gh_session", "abc", 1500*time.Millisecond) },
			[]string{"gh_session=abc; Path=/; Max-Age=2; HttpOnly; SameSite=Lax"}},
		{"negative deletes", true, func(p *Pages, w http.ResponseWriter) { p.SetCookie(w, "gh_session", "abc", -time.Second) },
			[]string{"__Host-gh_session=abc; Path=/; Max-Age=0; HttpOnly; Secure; SameSite=Lax"}},
		{"clear", true, func(p *Pages, w http.ResponseWriter) { p.ClearCookie(w, "gh_session") },
			[]string{"__Host-gh_session=; Path=/; Max-Age=0; HttpOnly; Secure; SameSite=Lax"}},
		{"clear insecure", false, func(p *Pages, w http.ResponseWriter) { p.ClearCookie(w, "gh_session") },
			[]string{"gh_session=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := httptest.NewRecorder()
			tt.f(newPages(t, tt.secure), w)
			if diff := cmp.Diff(tt.want, w.Header().Values("Set-Cookie")); diff != "" {
				t.Errorf("Set-Cookie mismatch (-want +got):\n%s", diff)
			}
		})
	}
}
