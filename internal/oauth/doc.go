// Package oauth holds the protocol vocabulary shared by the authorization
// server's endpoints: error codes (RFC 6749 §5.2, RFC 6750 §3.1, RFC 7591
// §3.2.2, RFC 8707 §2), the *Error type, and the writers that turn an error
// into a response. It also holds the wire types the authorization server
// writes and rs reads: the RFC 8414 metadata document (ServerMetadata) and
// the RFC 7662 introspection response (Introspection), with their JWT
// members (Audience, NumericDate), so both ends read and write one
// definition. rs is public and may import this package (rs/deps_test.go);
// nothing here is part of rs's API.
//
// It imports only the standard library. The rule it enforces: the client
// sees the code and description, the log sees the cause.
package oauth
