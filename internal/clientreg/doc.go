// Package clientreg holds client-registration policy: redirect-URI
// validation at registration time and matching at authorization time.
//
// It imports only the standard library and storage types.
package clientreg
