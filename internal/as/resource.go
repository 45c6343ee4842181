package as

import (
	"context"
	"errors"
	"net/url"
	"slices"
	"strings"

	"github.com/gatehouse-mcp/gatehouse/internal/oauth"
	"github.com/gatehouse-mcp/gatehouse/internal/storage"
	"github.com/gatehouse-mcp/gatehouse/rs"
)

// scopeOfflineAccess asks for a refresh token (SEP-2207). It is accepted
// in requests but never appears in access tokens: it is about the grant,
// not about what the resource may allow.
const scopeOfflineAccess = "offline_access"

// scopeOpenID asks for an ID token (OpenID Connect Core §3.1.2.1), which
// this server does not issue: a request for it is refused with a
// description saying so, unless a resource defines a scope of that name.
const scopeOpenID = "openid"

// CanonicalResource normalises a resource indicator (RFC 8707 §2) for
// comparison: scheme and host are lower-cased, a default port is dropped
// (http and https: exactly as rs.CanonicalResource, which resource servers
// use), and the slash of a root path is removed, because JavaScript's URL turns
// "https://mcp.example.com" into "https://mcp.example.com/" (SPEC-CHECKLIST
// §3.4). Anything else — path case, query, a non-root trailing slash — is
// kept exactly. It refuses relative URIs, fragments and user information.
func CanonicalResource(s string) (string, error) {
	if strings.Contains(s, "#") {
		return "", errors.New("a resource indicator must not contain a fragment")
	}
	u, err := url.Parse(s)
	if err != nil || !u.IsAbs() || u.Host == "" || u.Opaque != "" {
		return "", errors.New("a resource indicator must be an absolute URI")
	}
	if u.User != nil {
		return "", errors.New("a resource indicator must not contain user information")
	}
	scheme := strings.ToLower(u.Scheme)
	if scheme == "http" || scheme == "https" {
		// The canonical form resource servers compare audiences with
		// (package rs, the gateway): one implementation, so the AS and
		// they cannot disagree about a resource.
		canon, err := rs.CanonicalResource(s)
		if err != nil {
			return "", errors.New("a resource indicator must be an absolute URI")
		}
		return canon, nil
	}
	host := strings.ToLower(u.Host)
	path := u.EscapedPath()
	if path == "/" {
		path = ""
	}
	out := scheme + "://" + host + path
	if u.RawQuery != "" || u.ForceQuery {
		out += "?" + u.RawQuery
	}
	return out, nil
}

// resolveResource finds the resource a request is for. values are the
// request's resource parameters. With none, the single registered resource
// is the audience (documented default for 2025-03-26-era clients that send
// no resource); with several registered resources, a resource is required.
func (s *Server) resolveResource(ctx context.Context, values []string) (storage.Resource, error) {
	switch len(values) {
	case 0:
		rs, ok := s.oneRes.get(struct{}{})
		if !ok {
			var err error
			if rs, err = s.opts.Store.ListResources(ctx); err != nil {
				return storage.Resource{}, oauth.Internal(err)
			}
			s.oneRes.put(struct{}{}, rs)
		}
		if len(rs) == 1 {
			return rs[0], nil
		}
		if len(rs) == 0 {
			return storage.Resource{}, oauth.New(oauth.InvalidTarget, "no protected resource is registered with this authorization server")
		}
		return storage.Resource{}, oauth.New(oauth.InvalidTarget, "the resource parameter is required: this authorization server protects more than one resource")
	case 1:
	default:
		return storage.Resource{}, oauth.New(oauth.InvalidTarget, "only one resource parameter is supported per request")
	}
	canon, err := CanonicalResource(values[0])
	if err != nil {
		return storage.Resource{}, oauth.New(oauth.InvalidTarget, "%s", err.Error())
	}
	if r, ok := s.resources.get(canon); ok {
		return r, nil
	}
	r, err := s.opts.Store.GetResource(ctx, canon)
	if err == nil {
		s.resources.put(canon, r)
	}
	if errors.Is(err, storage.ErrNotFound) {
		return storage.Resource{}, oauth.New(oauth.InvalidTarget, "the resource %q is not registered with this authorization server", truncate(values[0], 200))
	}
	if err != nil {
		return storage.Resource{}, oauth.Internal(err)
	}
	return r, nil
}

// resolveScopes checks the requested scopes against the resource and the
// client. An empty request takes the resource's default scopes (narrowed to
// what the client may have). offline_access is accepted and reported
// separately.
func (s *Server) resolveScopes(requested []string, res storage.Resource, c storage.Client) (scopes []string, offline bool, err error) {
	if len(requested) == 0 {
		for _, sc := range res.DefaultScopes {
			if s.clientMay(c, sc) {
				scopes = append(scopes, sc)
			}
		}
		return scopes, false, nil
	}
	for _, sc := range requested {
		if sc == scopeOfflineAccess {
			offline = true
			continue
		}
		if sc == scopeOpenID && !resourceHasScope(res, sc) {
			return nil, false, oauth.New(oauth.InvalidScope, "this server is not an OpenID Provider: it issues no ID tokens, so the scope openid cannot be granted; request the resource's scopes without it")
		}
		if !resourceHasScope(res, sc) {
			return nil, false, oauth.New(oauth.InvalidScope, "the scope %q is not defined for the resource %s", truncate(sc, 100), res.URL)
		}
		if !s.clientMay(c, sc) {
			return nil, false, oauth.New(oauth.InvalidScope, "the client is not allowed the scope %q", truncate(sc, 100))
		}
		scopes = append(scopes, sc)
	}
	return scopes, offline, nil
}

func resourceHasScope(r storage.Resource, name string) bool {
	return slices.ContainsFunc(r.Scopes, func(s storage.Scope) bool { return s.Name == name })
}

// clientMay reports whether the client may be granted the scope name. An
// administrator-registered client is held to its scope allowlist (empty:
// every scope of the resource). A dynamically registered client (RFC 7591
// or a metadata document) chose its own "scope", so it is no limit worth
// enforcing; worse, MCP clients register with the scope of the first
// challenge and must step up beyond it later (RS-7, CL-8). Such a client
// is held to registration.allowed_scopes instead, the administrator's
// limit for every dynamic client.
func (s *Server) clientMay(c storage.Client, name string) bool {
	if dynamicClient(c) {
		allowed := s.opts.Registration.AllowedScopes
		return len(allowed) == 0 || slices.Contains(allowed, name)
	}
	return len(c.Scopes) == 0 || slices.Contains(c.Scopes, name)
}

// subset reports whether every element of a is in b.
func subset(a, b []string) bool {
	for _, x := range a {
		if !slices.Contains(b, x) {
			return false
		}
	}
	return true
}

// truncate shortens client-supplied text before it is echoed in an error.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
