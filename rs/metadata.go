package rs

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"

	"github.com/gatehouse-mcp/gatehouse/internal/mcpauthz"
)

// ResourceMetadata is an OAuth 2.0 Protected Resource Metadata document
// ([RFC 9728 §2]): what an MCP client reads to find the authorization
// server of this resource.
//
// Not supported: signed metadata (signed_metadata, §2.2), jwks_uri and the
// other members about resource-signed responses, and mTLS.
//
// [RFC 9728 §2]: https://www.rfc-editor.org/rfc/rfc9728#section-2
type ResourceMetadata struct {
	// Resource (resource) is the resource identifier: for an MCP server,
	// exactly the URL clients are given, such as
	// "https://mcp.example.com/mcp". Required. Clients compare it with the
	// URL they connected to (RFC 9728 §3.3) and send it as the RFC 8707
	// resource parameter, so it must also be what tokens carry in "aud".
	Resource string `json:"resource"`
	// AuthorizationServers (authorization_servers) are the issuer
	// identifiers of the authorization servers that issue tokens for this
	// resource. The MCP specification requires at least one.
	AuthorizationServers []string `json:"authorization_servers"`
	// ScopesSupported (scopes_supported) are the scopes clients may
	// request: list every scope of the resource ([Options.AllScopes]),
	// never offline_access. MCP clients ask first for the scope of the 401
	// challenge (the baseline, [Options.Scopes]) and read this list only
	// without one; a client that never sees a scope here cannot know a
	// step-up may ask for it. Nil leaves it out.
	ScopesSupported []string `json:"scopes_supported,omitempty"`
	// BearerMethodsSupported (bearer_methods_supported) says how tokens
	// may be sent. Nil means ["header"], the only method [RequireBearer]
	// accepts.
	BearerMethodsSupported []string `json:"bearer_methods_supported,omitempty"`
	// ResourceName (resource_name) is a human-readable name, which RFC
	// 9728 recommends. Empty leaves it out.
	ResourceName string `json:"resource_name,omitempty"`
	// ResourceDocumentation (resource_documentation) is a URL of developer
	// documentation. Empty leaves it out.
	ResourceDocumentation string `json:"resource_documentation,omitempty"`
	// ResourcePolicyURI (resource_policy_uri) is a URL of the data-use
	// policy. Empty leaves it out.
	ResourcePolicyURI string `json:"resource_policy_uri,omitempty"`
	// ResourceTOSURI (resource_tos_uri) is a URL of the terms of service.
	// Empty leaves it out.
	ResourceTOSURI string `json:"resource_tos_uri,omitempty"`
	// DPoPSigningAlgValuesSupported (dpop_signing_alg_values_supported,
	// RFC 9728 §2) are the DPoP proof algorithms [RequireBearer] accepts
	// ([DPoPOptions.Algorithms]). Nil leaves it out.
	DPoPSigningAlgValuesSupported []string `json:"dpop_signing_alg_values_supported,omitempty"`
}

// validate checks m and fills defaults.
func (m *ResourceMetadata) validate() error {
	if m.Resource == "" {
		return errors.New("rs: ResourceMetadata.Resource is required")
	}
	if _, err := CanonicalResource(m.Resource); err != nil {
		return err
	}
	if len(m.AuthorizationServers) == 0 {
		return errors.New("rs: ResourceMetadata.AuthorizationServers needs at least one issuer (MCP authorization)")
	}
	for _, as := range m.AuthorizationServers {
		if _, err := metadataURLs(as); err != nil {
			return fmt.Errorf("rs: ResourceMetadata.AuthorizationServers: %w", err)
		}
	}
	for _, s := range m.ScopesSupported {
		if !mcpauthz.ValidScope(s) {
			return fmt.Errorf("rs: ResourceMetadata.ScopesSupported: %q is not a scope token", s)
		}
	}
	for _, u := range []string{m.ResourceDocumentation, m.ResourcePolicyURI, m.ResourceTOSURI} {
		if u == "" {
			continue
		}
		if p, err := url.Parse(u); err != nil || (p.Scheme != "https" && p.Scheme != "http") {
			return fmt.Errorf("rs: ResourceMetadata: %q is not an http(s) URL", u)
		}
	}
	if m.BearerMethodsSupported == nil {
		m.BearerMethodsSupported = []string{"header"}
	}
	return nil
}

// MetadataHandler returns a handler serving m as JSON (RFC 9728 §3.2) to
// GET and HEAD, with "Access-Control-Allow-Origin: *" — the document is
// public and browser-based clients must read it — and answering CORS
// preflight requests. Mount it at [MetadataPath] of the resource and, for
// clients that only try the root, at /.well-known/oauth-protected-resource
// ([HandleMetadata] does both). It returns an error when m lacks Resource or
// AuthorizationServers or has a malformed URL.
func MetadataHandler(m ResourceMetadata) (http.Handler, error) {
	if err := m.validate(); err != nil {
		return nil, err
	}
	body, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, err
	}
	body = append(body, '\n')
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Access-Control-Allow-Origin", "*")
		switch r.Method {
		case http.MethodGet, http.MethodHead:
		case http.MethodOptions:
			h.Set("Access-Control-Allow-Methods", "GET, HEAD, OPTIONS")
			h.Set("Access-Control-Allow-Headers", "Content-Type, Mcp-Protocol-Version")
			h.Set("Access-Control-Max-Age", "86400")
			w.WriteHeader(http.StatusNoContent)
			return
		default:
			h.Set("Allow", "GET, HEAD, OPTIONS")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		h.Set("Content-Type", "application/json")
		h.Set("Cache-Control", "public, max-age=300")
		h.Set("X-Content-Type-Options", "nosniff")
		if r.Method == http.MethodHead {
			return
		}
		w.Write(body)
	}), nil
}

// HandleMetadata registers [MetadataHandler] for m on mux at the metadata
// path of m.Resource ("/.well-known/oauth-protected-resource/mcp" for
// ".../mcp") and at the root form "/.well-known/oauth-protected-resource",
// which clients try next (MCP 2025-11-25 discovery). It returns the
// metadata URL for [Options.ResourceMetadataURL]. Like
// [http.ServeMux.Handle], it panics if a pattern is already registered.
func HandleMetadata(mux *http.ServeMux, m ResourceMetadata) (metadataURL string, err error) {
	h, err := MetadataHandler(m)
	if err != nil {
		return "", err
	}
	path, err := MetadataPath(m.Resource)
	if err != nil {
		return "", err
	}
	u, err := MetadataURL(m.Resource)
	if err != nil {
		return "", err
	}
	mux.Handle(path, h)
	if path != wellKnownPRM {
		mux.Handle(wellKnownPRM, h)
	}
	return u, nil
}
