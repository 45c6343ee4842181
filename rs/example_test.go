package rs_test

import (
	"fmt"
	"log"
	"net/http"

	"github.com/gatehouse-mcp/gatehouse/rs"
)

// A protected MCP endpoint: tokens from the authorization server at
// issuer, notes:read for everything, notes:write to add notes, and the
// protected resource metadata at both well-known locations.
func Example() {
	const issuer = "https://auth.example.com"
	const resource = "https://mcp.example.com/mcp"

	v, err := rs.NewJWTVerifier(rs.JWTOptions{Issuer: issuer, Resource: resource})
	if err != nil {
		log.Fatal(err)
	}
	mux := http.NewServeMux()
	metadataURL, err := rs.HandleMetadata(mux, rs.ResourceMetadata{
		Resource:             resource,
		AuthorizationServers: []string{issuer},
		ScopesSupported:      []string{"notes:read"},
		ResourceName:         "Notes",
	})
	if err != nil {
		log.Fatal(err)
	}
	var mcpHandler http.Handler = http.NotFoundHandler() // the MCP server
	mux.Handle("/mcp", rs.RequireBearer(v, &rs.Options{
		ResourceMetadataURL: metadataURL,
		Scopes:              []string{"notes:read"},
		ToolScopes:          map[string][]string{"add_note": {"notes:write"}},
		FilterToolsList:     true,
	})(mcpHandler))
	fmt.Println(metadataURL)
	// Output: https://mcp.example.com/.well-known/oauth-protected-resource/mcp
}
