// Package web renders the authorization server's browser pages (sign-in,
// consent, error and message pages, and the account page with the
// connected agents and passkeys)
// and holds the security plumbing every browser route needs: strict
// response headers ([SecureHeaders]), signed double-submit CSRF tokens
// ([Pages.CSRFToken], [Pages.CheckCSRF]) and cookie helpers that add the
// __Host- prefix and Secure attribute when the issuer is https.
//
// The pages are server-rendered with html/template from an embedded file
// system and need no JavaScript but for passkeys: the
// Content-Security-Policy forbids inline scripts and styles, and the only
// subresources are one same-origin stylesheet and, on pages that offer
// passkeys, one same-origin script (static/passkey.js, [Pages.ScriptURL]),
// both served by [Pages.StaticHandler], and the operator's logo, if any
// (Options.LogoURL: a data: image, or an https URL whose one origin the
// pages' policy then allows in img-src).
//
// This package only renders and protects pages; it decides nothing about
// authorization. The handlers in internal/as parse the forms, call
// [Pages.CheckCSRF] and choose which page to show. Browser routes use this
// package; API routes (token, registration, metadata) are JSON only and
// must not. The package imports only the standard library.
package web
