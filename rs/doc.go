// Package rs makes an HTTP server — typically an MCP server — an OAuth 2.1
// resource server: it verifies bearer access tokens, checks their audience
// and scopes, answers with the challenges MCP clients understand, and serves
// the protected resource metadata those clients discover the authorization
// server from.
//
// The pieces, each usable on its own:
//
//   - [JWTVerifier] verifies JWT access tokens ([RFC 9068]) locally with the
//     authorization server's JWKS, discovered from its metadata ([RFC 8414],
//     then OpenID Connect Discovery) and cached.
//   - [IntrospectionVerifier] asks the authorization server instead
//     ([RFC 7662]), for opaque tokens or immediate revocation.
//   - [RequireBearer] is net/http middleware: 401 and 403 with
//     [RFC 6750] WWW-Authenticate challenges carrying the [RFC 9728]
//     resource_metadata URL, per-tool scopes for MCP tools/call with
//     step-up challenges, tools/list as [Options.ListTools] says, CORS, and the
//     verified identity in the request context ([TokenInfoFromContext]).
//     When it reads the body for the scopes, it also refuses Mcp-Method
//     and Mcp-Name headers that disagree with it (SEP-2243; 400, JSON-RPC
//     -32020), so the policy and the MCP server act on the same call.
//     A DPoP-bound token ([RFC 9449], cnf.jkt) is accepted only as
//     "Authorization: DPoP" with a proof signed by its key, for this method
//     and URL, with the token's hash (ath), fresh (iat) and not seen before
//     (jti); as a bearer token it is refused with a DPoP challenge. See
//     [DPoPOptions] for the replay cache (in memory unless you plug in a
//     shared one) and nonces.
//   - [MetadataHandler] and [HandleMetadata] serve the protected resource
//     metadata ([RFC 9728]).
//   - [Exchanger] calls the authorization server's token endpoint for
//     token exchange ([RFC 8693]): a resource server that calls another
//     API on its user's behalf trades the token it received for one whose
//     audience is that API.
//
// A minimal protected MCP server:
//
//	v, err := rs.NewJWTVerifier(rs.JWTOptions{Issuer: issuer, Resource: "https://mcp.example.com/mcp"})
//	...
//	opts := &rs.Options{
//		Scopes:     []string{"notes:read"},                           // the 401 challenge's scope
//		ToolScopes: map[string][]string{"add_note": {"notes:write"}}, // by step-up
//	}
//	mux := http.NewServeMux()
//	opts.ResourceMetadataURL, err = rs.HandleMetadata(mux, rs.ResourceMetadata{
//		Resource:             "https://mcp.example.com/mcp",
//		AuthorizationServers: []string{issuer},
//		ScopesSupported:      opts.AllScopes(), // notes:read notes:write
//	})
//	...
//	mux.Handle("/mcp", rs.RequireBearer(v, opts)(mcpHandler))
//
// The package github.com/gatehouse-mcp/gatehouse/rs/rsmcp adapts it to the
// official MCP Go SDK.
//
// What the package follows: the MCP authorization specification
// (2026-07-28 and the older revisions clients still use), OAuth 2.1
// §5.2–5.3, RFC 6750, RFC 7662, RFC 8707, RFC 9068, RFC 9449 and RFC 9728.
//
// Not supported: mTLS-bound tokens, tokens in a form
// body or the query string (RFC 6750 §2.2, §2.3; OAuth 2.1 forbids the
// query), encrypted (JWE) access tokens, and signed resource metadata
// (RFC 9728 §2.2).
//
// Dependencies: rs imports the standard library,
// github.com/go-jose/go-jose/v4 and four packages of this module it shares
// with the gateway and the authorization server (internal/mcpauthz,
// internal/oauth, internal/boundmap, internal/dpop), which are held to the
// same rule; no
// type of go-jose appears in its API, so rs can be used in any MCP server.
// It must not import any other package of this module (TestDependencies).
//
// [RFC 6750]: https://www.rfc-editor.org/rfc/rfc6750
// [RFC 7662]: https://www.rfc-editor.org/rfc/rfc7662
// [RFC 8414]: https://www.rfc-editor.org/rfc/rfc8414
// [RFC 8693]: https://www.rfc-editor.org/rfc/rfc8693
// [RFC 9068]: https://www.rfc-editor.org/rfc/rfc9068
// [RFC 9449]: https://www.rfc-editor.org/rfc/rfc9449
// [RFC 9728]: https://www.rfc-editor.org/rfc/rfc9728
package rs
