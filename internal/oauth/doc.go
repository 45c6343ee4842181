// Package oauth holds the protocol vocabulary shared by the authorization
// server's endpoints: error codes (RFC 6749 §5.2, RFC 6750 §3.1, RFC 7591
// §3.2.2, RFC 8707 §2), the *Error type, and the writers that turn an error
// into a response.
//
// It imports only the standard library. The rule it enforces: the client
// sees the code and description, the log sees the cause.
package oauth
