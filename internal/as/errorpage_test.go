package as

import (
	"errors"
	"html"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"unicode"
)

// TestErrorPages: every error page says first, in plain words, what the
// user should do, and keeps the technical reason (escaped, without format
// characters) in a collapsed "For developers" section after it.
func TestErrorPages(t *testing.T) {
	ts := newTestServer(t, nil)
	unregistered := authValues(ts, defaultAuth())
	unregistered.Set("redirect_uri", "https://evil.example/cb\u202e<b>")
	tests := []struct {
		name       string
		get        func(b *browser) page
		wantStatus int
		wantTitle  string
		wantNext   string
		wantDetail string // "" means no developer section
	}{
		{"unregistered redirect_uri", func(b *browser) page { return b.get(ts.URL + "/authorize?" + unregistered.Encode()) },
			http.StatusBadRequest, titleRefused, nextStepRefused, `redirect_uri "https://evil.example/cb\u202e<b>" is not registered for this client`}, // %q spells U+202E out
		{"unknown client", func(b *browser) page {
			v := authValues(ts, defaultAuth())
			v.Set("client_id", "nobody")
			return b.get(ts.URL + "/authorize?" + v.Encode())
		}, http.StatusBadRequest, titleRefused, nextStepRefused, `the client "nobody" is not registered with this authorization server`},
		{"expired form", func(b *browser) page {
			p := b.get(defaultAuth().url(ts.URL))
			action, v := p.form(t, "login-form")
			v.Set("csrf_token", "forged")
			v.Set("username", testUser)
			v.Set("password", testPassword)
			return b.post(ts.URL+action, v)
		}, http.StatusForbidden, titleStartAgain, nextStepAgain, msgFormExpired},
		{"login by GET", func(b *browser) page { return b.get(ts.URL + "/login") },
			http.StatusMethodNotAllowed, titleStartAgain, nextStepAgain, msgFormsOnly},
		{"not found", func(b *browser) page { return b.get(ts.URL + "/nothing-here") },
			http.StatusNotFound, "Page not found", "go back to it and sign in again", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := tt.get(newBrowser(t))
			checkErrorPage(t, p, tt.wantStatus, tt.wantTitle, tt.wantNext, tt.wantDetail)
		})
	}
}

// TestServerErrorPage: an internal error is logged, never shown: the page
// gives the next step and the code server_error, and no part of the cause.
func TestServerErrorPage(t *testing.T) {
	ts := newTestServer(t, nil)
	const cause = "open postgres://gatehouse:hunter2@db.internal/gatehouse: connection refused"
	w := httptest.NewRecorder()
	ts.serverErrorPage(w, httptest.NewRequest(http.MethodGet, "/authorize", nil), errors.New(cause))
	p := page{status: w.Code, header: w.Header(), body: w.Body.String()}
	checkErrorPage(t, p, http.StatusInternalServerError, titleServerError, nextStepServer, "")
	for _, secret := range []string{"hunter2", "postgres://", "db.internal", "connection refused"} {
		if strings.Contains(p.body, secret) {
			t.Errorf("server error page shows %q from the cause", secret)
		}
	}
	if !strings.Contains(p.body, "<code>server_error</code>") {
		t.Errorf("server error page does not give the code server_error:\n%s", p.body)
	}
}

// checkErrorPage asserts an error page's status, heading, next step and
// developer section, in that order.
func checkErrorPage(t *testing.T, p page, status int, title, next, detail string) {
	t.Helper()
	body := html.UnescapeString(p.body)
	if p.status != status {
		t.Errorf("status = %d, want %d", p.status, status)
	}
	if want := "<h1>" + title + "</h1>"; !strings.Contains(body, want) {
		t.Errorf("page does not contain %q:\n%s", want, p.body)
	}
	iNext := strings.Index(body, next)
	iDev := strings.Index(body, `<details class="developer">`)
	switch {
	case iNext < 0:
		t.Errorf("page does not tell the user %q:\n%s", next, p.body)
	case detail == "" && iDev >= 0 && !strings.Contains(body, "server_error"):
		t.Errorf("page has a developer section, want none:\n%s", p.body)
	case detail != "" && (iDev < 0 || iDev < iNext):
		t.Errorf("page has no developer section after the next step:\n%s", p.body)
	case detail != "" && !strings.Contains(body[iDev:], detail):
		t.Errorf("developer section does not contain %q:\n%s", detail, p.body)
	}
	if strings.Contains(p.body, "<b>") || strings.ContainsFunc(p.body, func(r rune) bool { return unicode.Is(unicode.Cf, r) }) {
		t.Errorf("page shows an unescaped tag or a format character:\n%q", p.body)
	}
}
