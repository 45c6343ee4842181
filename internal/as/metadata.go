package as

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"time"

	"github.com/gatehouse-mcp/gatehouse/internal/dpop"
	"github.com/gatehouse-mcp/gatehouse/internal/oauth"
	"github.com/gatehouse-mcp/gatehouse/internal/storage"
)

// Grant types, response types and client authentication methods the server
// supports.
var (
	grantTypesSupported  = []string{"authorization_code", "refresh_token", "client_credentials"}
	authMethodsSupported = []string{"none", "client_secret_basic", "client_secret_post", "private_key_jwt"}
	assertionAlgs        = []string{"ES256", "ES384", "ES512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "EdDSA"}
)

// grantTypes lists the grant types of grant_types_supported: token
// exchange only where a policy lets some client use it.
func (s *Server) grantTypes() []string {
	if s.exchange == nil {
		return grantTypesSupported
	}
	return append(slices.Clone(grantTypesSupported), gtTokenExchange)
}

// buildMetadata encodes the metadata once: it only changes with the
// configuration and the registered resources' scopes, and serving
// pre-encoded bytes keeps discovery off the CPU.
func (s *Server) buildMetadata(ctx context.Context) ([]byte, error) {
	scopes, err := s.allScopes(ctx)
	if err != nil {
		return nil, err
	}
	m := oauth.ServerMetadata{
		Issuer:                                 s.opts.Issuer,
		AuthorizationEndpoint:                  s.endpoint(pathAuthorize),
		TokenEndpoint:                          s.endpoint(pathToken),
		JWKSURI:                                s.endpoint(pathJWKS),
		RegistrationEndpoint:                   s.registrationEndpoint(),
		ScopesSupported:                        scopes,
		ResponseTypesSupported:                 []string{"code"},
		ResponseModesSupported:                 []string{"query"},
		GrantTypesSupported:                    s.grantTypes(),
		TokenEndpointAuthMethodsSupported:      authMethodsSupported,
		TokenEndpointAuthSigningAlgValues:      assertionAlgs,
		RevocationEndpoint:                     s.endpoint(pathRevoke),
		RevocationEndpointAuthMethodsSupported: authMethodsSupported,
		IntrospectionEndpoint:                  s.endpoint(pathIntrospect),
		// Introspection reveals token contents: public clients may not call it.
		IntrospectionEndpointAuthMethodsSupported: []string{"client_secret_basic", "client_secret_post", "private_key_jwt"},
		CodeChallengeMethodsSupported:             []string{"S256"},
		AuthorizationResponseISSParameter:         true,
		ClientIDMetadataDocumentSupported:         s.opts.Registration.CIMD.Enabled,
		PromptValuesSupported:                     []string{"none", "login", "consent"},
		// Gatehouse is not an OpenID Provider: it issues no ID token and
		// has no userinfo endpoint, and scope=openid is refused. The
		// document is served at the openid-configuration URLs as well
		// because MCP clients look there (MCP authorization, "Authorization
		// Server Metadata Discovery"), and the MCP TypeScript SDK's
		// OpenIdProviderMetadataSchema rejects a document there without
		// these two members, so they stay: sub is public, and the empty
		// list says no ID token is signed with any algorithm.
		SubjectTypesSupported:            []string{"public"},
		IDTokenSigningAlgValuesSupported: []string{},
		ResourceIndicatorsSupported:      true,
		DPoPSigningAlgValuesSupported:    dpop.DefaultAlgs,
	}
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// allScopes is [KnownScopes] of the server's store.
func (s *Server) allScopes(ctx context.Context) ([]string, error) {
	return KnownScopes(ctx, s.opts.Store)
}

// KnownScopes returns every scope a client may be granted: each scope of
// every resource in st, plus offline_access, sorted, each once. It is the
// scopes_supported of the metadata, and what a client's scope may name.
func KnownScopes(ctx context.Context, st storage.Resources) ([]string, error) {
	rs, err := st.ListResources(ctx)
	if err != nil {
		return nil, err
	}
	out := []string{scopeOfflineAccess}
	for _, r := range rs {
		for _, sc := range r.Scopes {
			if !slices.Contains(out, sc.Name) {
				out = append(out, sc.Name)
			}
		}
	}
	slices.Sort(out)
	return out, nil
}

// metadataTTL bounds how stale scopes_supported may be after a resource is
// added by another process (the CLI, another replica).
const metadataTTL = 30 * time.Second

// cachedMetadata is an encoded metadata document and when it was built.
type cachedMetadata struct {
	body  []byte
	built time.Time
}

// metadataBytes returns the encoded metadata, rebuilding it when older
// than metadataTTL. A failed rebuild keeps serving the previous document.
func (s *Server) metadataBytes(ctx context.Context) []byte {
	now := s.now()
	c := s.metadata.Load()
	if c != nil && now.Sub(c.built) < metadataTTL {
		return c.body
	}
	b, err := s.buildMetadata(ctx)
	if err != nil {
		s.log.ErrorContext(ctx, "rebuild metadata failed", "cause", err)
		if c != nil {
			return c.body
		}
		return nil
	}
	s.metadata.Store(&cachedMetadata{body: b, built: now})
	return b
}

func (s *Server) handleMetadata(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		methodNotAllowed(w, "GET, HEAD")
		return
	}
	b := s.metadataBytes(r.Context())
	if b == nil {
		http.Error(w, `{"error":"server_error"}`, http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "public, max-age=300")
	w.Write(b)
}

func (s *Server) handleJWKS(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		methodNotAllowed(w, "GET, HEAD")
		return
	}
	b, err := s.opts.Keyring.JWKS(r.Context())
	if err != nil {
		s.log.ErrorContext(r.Context(), "jwks failed", "cause", err)
		http.Error(w, `{"error":"server_error"}`, http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/jwk-set+json")
	// Short: resource servers must see a rotated key soon, and they refetch
	// on an unknown kid anyway.
	h.Set("Cache-Control", "public, max-age=60")
	w.Write(b)
}

func methodNotAllowed(w http.ResponseWriter, allow string) {
	w.Header().Set("Allow", allow)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusMethodNotAllowed)
	w.Write([]byte(`{"error":"invalid_request","error_description":"method not allowed"}` + "\n"))
}
