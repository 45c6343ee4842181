package as

import (
	"context"
	"net/http"
	"slices"
	"strings"

	"github.com/gatehouse-mcp/gatehouse/internal/oauth"
	"github.com/gatehouse-mcp/gatehouse/internal/storage"
)

// gtClientCredentials is the grant_type of a client acting on its own
// behalf.
const gtClientCredentials = "client_credentials"

// grantClientCredentials issues a token to a confidential client acting on
// its own behalf (OAuth 2.1 §4.2; the MCP oauth-client-credentials
// extension): a machine token, with no user. Only for a resource whose
// operator accepts such tokens, and, for a dynamic client the operator
// allowed the grant (see grantAllowed), only its client_credentials
// scopes. No refresh token: the client can always ask again.
func (s *Server) grantClientCredentials(ctx context.Context, r *http.Request, f form, c storage.Client) ([]byte, error) {
	if c.TokenEndpointAuthMethod == authNone {
		return nil, oauth.New(oauth.UnauthorizedClient, "public clients cannot use the client_credentials grant")
	}
	res, err := s.resolveResource(ctx, f["resource"])
	if err != nil {
		return nil, err
	}
	if !res.AcceptClientCredentials {
		return nil, oauth.New(oauth.InvalidTarget, "the resource %s does not accept client_credentials tokens (tokens without a user); its operator can allow them with accept_client_credentials", res.URL)
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
	// A token without a user has no group and no claim: a scope a policy
	// restricts is refused when asked for and left out of the defaults.
	scopes, withheld := applyPolicies(res, scopes, subjectAttrs{})
	if len(withheld) > 0 && len(requested) > 0 {
		return nil, oauth.New(oauth.InvalidScope, "the scope %s, and a token without a user (client_credentials) has no group or claim", truncate(withheld[0].String(), 200))
	}
	if dynamicClient(c) {
		if scopes, err = s.machineScopes(requested, scopes); err != nil {
			return nil, err
		}
	}
	jkt := proofJKT(ctx)
	access, err := s.mintAccess(ctx, accessToken{machine: true, clientID: c.ID, resource: res.URL, scopes: scopes, jkt: jkt})
	if err != nil {
		return nil, err
	}
	if err := s.auditIssued(ctx, r, storage.AuditEvent{Type: "token.issued", ClientID: c.ID, Resource: res.URL, Outcome: "success", Detail: "client_credentials"}); err != nil {
		return nil, err
	}
	return s.encodeTokenResponse(access, scopes, "", jkt)
}

// machineScopes holds a dynamic client's client_credentials token to
// registration.client_credentials_scopes: a requested scope beyond them is
// refused, a default one is dropped, and a token with none of them is
// refused rather than issued empty.
func (s *Server) machineScopes(requested, scopes []string) ([]string, error) {
	allowed := s.opts.Registration.ClientCredentialsScopes
	var out []string
	for _, sc := range scopes {
		if slices.Contains(allowed, sc) {
			out = append(out, sc)
		} else if len(requested) > 0 {
			return nil, oauth.New(oauth.InvalidScope, "the scope %q is not available to self-registered clients with client_credentials; available: %s", truncate(sc, 100), strings.Join(allowed, " "))
		}
	}
	if len(out) == 0 {
		return nil, oauth.New(oauth.InvalidScope, "no scope of this resource is available to self-registered clients with client_credentials; available: %s", strings.Join(allowed, " "))
	}
	return out, nil
}
