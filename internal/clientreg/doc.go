// Package clientreg holds client-registration policy: redirect-URI
// validation at registration time and matching at authorization time,
// RFC 7591 metadata parsing (strict JSON, limits, defaults), client ID
// metadata documents (CIMD: URL rules, the SSRF-safe fetcher and its
// cache), and initial access tokens.
//
// It imports only the standard library, storage types and
// golang.org/x/net/publicsuffix (for [DocumentSite]): no HTTP handlers, no
// OAuth error types (its [Error] carries the RFC 7591 code as a string
// for internal/as to translate).
package clientreg
