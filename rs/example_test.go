package rs_test

import (
	"fmt"
	"log"
	"net/http"

	"github.com/gatehouse-mcp/gatehouse/rs"
)

// A protected MCP endpoint: tokens from the authorization server at
// issuer, notes:read for everything, notes:write to add notes, and the
// protected resource metadata at both well-known locations, listing both
// scopes. The 401 challenge asks for notes:read; a notes:read token still
// sees add_note in tools/list (ListTools defaults to ListGrantable), and
// calling it gets the 403 step-up challenge for notes:write.
func Example() {
	const issuer = "https://auth.example.com"
	const resource = "https://mcp.example.com/mcp"

	v, err := rs.NewJWTVerifier(rs.JWTOptions{Issuer: issuer, Resource: resource})
	if err != nil {
		log.Fatal(err)
	}
	opts := &rs.Options{
		Scopes:     []string{"notes:read"},
		ToolScopes: map[string][]string{"add_note": {"notes:write"}},
	}
	mux := http.NewServeMux()
	metadataURL, err := rs.HandleMetadata(mux, rs.ResourceMetadata{
		Resource:             resource,
		AuthorizationServers: []string{issuer},
		ScopesSupported:      opts.AllScopes(),
		ResourceName:         "Notes",
	})
	if err != nil {
		log.Fatal(err)
	}
	opts.ResourceMetadataURL = metadataURL
	var mcpHandler http.Handler = http.NotFoundHandler() // the MCP server
	mux.Handle("/mcp", rs.RequireBearer(v, opts)(mcpHandler))
	fmt.Println(metadataURL)
	fmt.Println(opts.AllScopes())
	// Output:
	// https://mcp.example.com/.well-known/oauth-protected-resource/mcp
	// [notes:read notes:write]
}
