package web

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"strings"
	"time"
)

// CSRFField is the name of the form field that carries the CSRF token.
const CSRFField = "csrf_token"

// csrfCookie is the base name of the per-browser CSRF cookie; see
// [Pages.CookieName] for the name actually sent.
const csrfCookie = "gh_csrf"

// hostPrefix makes a browser accept a cookie only if it is Secure, has
// Path=/ and no Domain, so that a sibling subdomain cannot set or shadow it.
const hostPrefix = "__Host-"

// CSRFToken returns the CSRF token to put in the csrf_token field of a
// form rendered for this browser. The scheme is a signed double submit:
// the browser holds a random cookie (__Host-gh_csrf when Secure, else
// gh_csrf), and the token is HMAC-SHA256(CSRFKey, cookie value), base64url
// without padding. A page on another site can neither read the cookie nor
// compute the HMAC, and a cookie planted by a sibling subdomain (possible
// without the __Host- prefix) is useless without the key.
//
// If the request has no well-formed cookie, CSRFToken sets a new one on w
// (HttpOnly, SameSite=Lax, Path=/, a browser-session cookie), so call it
// before the response is written and once per response.
func (p *Pages) CSRFToken(w http.ResponseWriter, r *http.Request) string {
	v := p.csrfCookieValue(r)
	if v == "" {
		v = rand.Text() + rand.Text() // 2 × 128 bits, base32
		p.SetCookie(w, csrfCookie, v, 0)
	}
	return p.csrfSign(v)
}

// CheckCSRF reports whether the request's csrf_token field (from the POST
// body only, never the URL query) is the token for the request's CSRF
// cookie. It is false when either is missing, so a handler must call it on
// every state-changing browser request and reject the request when it is
// false. It parses the form if the handler has not.
func (p *Pages) CheckCSRF(r *http.Request) bool {
	v := p.csrfCookieValue(r)
	if v == "" {
		return false
	}
	got := r.PostFormValue(CSRFField)
	if got == "" {
		return false
	}
	return hmac.Equal([]byte(got), []byte(p.csrfSign(v)))
}

// csrfCookieValue returns the CSRF cookie's value, or "" when it is absent
// or not what CSRFToken would have set.
func (p *Pages) csrfCookieValue(r *http.Request) string {
	c, err := r.Cookie(p.CookieName(csrfCookie))
	if err != nil || len(c.Value) < 32 || len(c.Value) > 128 {
		return ""
	}
	return c.Value
}

func (p *Pages) csrfSign(v string) string {
	m := hmac.New(sha256.New, p.csrfKey)
	m.Write([]byte(v))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// CookieName returns the name a cookie is sent under: "__Host-"+base when
// Options.Secure is set, else base (browsers reject __Host- cookies
// without Secure). A base that already has the prefix is normalized, so
// CookieName(CookieName(b)) == CookieName(b).
func (p *Pages) CookieName(base string) string {
	base = strings.TrimPrefix(base, hostPrefix)
	if p.secure {
		return hostPrefix + base
	}
	return base
}

// SetCookie sets a cookie on w named [Pages.CookieName](name), with
// HttpOnly, SameSite=Lax, Path=/, and Secure when Options.Secure is set.
// SameSite=Lax, not Strict: the browser must send the cookie on the
// top-level GET that a client's redirect to /authorize makes.
//
// maxAge zero makes a browser-session cookie; a positive maxAge is rounded
// up to whole seconds; a negative one deletes the cookie, like
// [Pages.ClearCookie].
func (p *Pages) SetCookie(w http.ResponseWriter, name, value string, maxAge time.Duration) {
	c := p.cookie(name, value)
	switch {
	case maxAge < 0:
		c.MaxAge = -1
	case maxAge > 0:
		c.MaxAge = int((maxAge + time.Second - 1) / time.Second)
	}
	http.SetCookie(w, c)
}

// ClearCookie tells the browser to delete the cookie named
// [Pages.CookieName](name). It sends the same attributes SetCookie does,
// which browsers require to match a __Host- cookie.
func (p *Pages) ClearCookie(w http.ResponseWriter, name string) {
	c := p.cookie(name, "")
	c.MaxAge = -1
	http.SetCookie(w, c)
}

func (p *Pages) cookie(name, value string) *http.Cookie {
	return &http.Cookie{
		Name:     p.CookieName(name),
		Value:    value,
		Path:     "/",
		Secure:   p.secure,
		HttpOnly: true,
		SameSite: http.SameSiteLaxMode,
	}
}
