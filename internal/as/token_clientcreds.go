package as

import (
	"context"
	"net/http"

	"github.com/gatehouse-mcp/gatehouse/internal/oauth"
	"github.com/gatehouse-mcp/gatehouse/internal/storage"
)

// grantClientCredentials issues a token to a confidential client acting on
// its own behalf (OAuth 2.1 §4.2; the MCP oauth-client-credentials
// extension). No refresh token: the client can always ask again.
func (s *Server) grantClientCredentials(ctx context.Context, r *http.Request, f form, c storage.Client) ([]byte, error) {
	if c.TokenEndpointAuthMethod == authNone {
		return nil, oauth.New(oauth.UnauthorizedClient, "public clients cannot use the client_credentials grant")
	}
	res, err := s.resolveResource(ctx, f["resource"])
	if err != nil {
		return nil, err
	}
	requested, err := oauth.ParseScope(f.get("scope"))
	if err != nil {
		return nil, oauth.New(oauth.InvalidScope, "%s", err.Error())
	}
	scopes, offline, err := s.resolveScopes(requested, res, c)
	if err != nil {
		return nil, err
	}
	if offline {
		return nil, oauth.New(oauth.InvalidScope, "offline_access is not available with client_credentials")
	}
	access, err := s.mintAccess(ctx, accessToken{subject: c.ID, clientID: c.ID, resource: res.URL, scopes: scopes})
	if err != nil {
		return nil, err
	}
	s.audit(ctx, r, storage.AuditEvent{Type: "token.issued", ClientID: c.ID, Resource: res.URL, Outcome: "success", Detail: "client_credentials"})
	return s.encodeTokenResponse(access, scopes, "")
}
