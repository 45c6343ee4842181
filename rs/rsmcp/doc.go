// Package rsmcp connects package rs to the official MCP Go SDK
// (github.com/modelcontextprotocol/go-sdk): it turns an [rs.Verifier] into
// the SDK's [auth.TokenVerifier], and protects an SDK handler such as
// [github.com/modelcontextprotocol/go-sdk/mcp.NewStreamableHTTPHandler] with [rs.RequireBearer] while giving the
// SDK the [auth.TokenInfo] it expects.
//
// The SDK reads TokenInfo.UserID to bind a session to the user who opened
// it (a request for a session with another user's token is refused), and
// hands TokenInfo to tool handlers in mcp.RequestExtra. The adapters fill
// UserID with the token's subject, Scopes, Expiration, and Extra with
// "client_id", "issuer" and "jti".
//
// This package may import the SDK; package rs must not.
package rsmcp
