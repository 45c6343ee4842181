package web

import "net/http"

// ContentSecurityPolicy is the policy [SecureHeaders] sends: nothing may
// load but the same-origin stylesheet, script (the passkey script, a
// static file: no inline script) and data: images, a script may fetch
// from this origin only, no page may frame ours, and <base> may not
// rebase relative URLs. The pages send it too,
// with one more img-src origin when Options.LogoURL is an https URL.
//
// There is deliberately no form-action directive. Chromium applies
// form-action to the whole chain of redirects that follows a form
// submission, so after the consent POST it would block the 303 to the
// client's redirect_uri, which is on another origin (a loopback port, a
// private-use scheme, another site). The forms post only to Action URLs
// this server renders, and html/template rejects javascript: URLs there.
const ContentSecurityPolicy = "default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'"

// SecureHeaders wraps a browser route and sets, before calling next:
//
//   - Content-Security-Policy: [ContentSecurityPolicy]
//   - X-Frame-Options: DENY (frame-ancestors for older browsers)
//   - X-Content-Type-Options: nosniff
//   - Referrer-Policy: no-referrer, so that the request id, code or state in
//     a URL never leaks to another site
//   - Cross-Origin-Opener-Policy: same-origin
//   - Cache-Control: no-store, since pages carry CSRF tokens and personal
//     data; a handler serving a cacheable asset ([Pages.StaticHandler])
//     replaces it.
//
// API routes (JSON) do not use it; they have their own headers.
func SecureHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		setSecurityHeaders(w.Header())
		next.ServeHTTP(w, r)
	})
}

func setSecurityHeaders(h http.Header) {
	h.Set("Content-Security-Policy", ContentSecurityPolicy)
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	h.Set("Cache-Control", "no-store")
}
