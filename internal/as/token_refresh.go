package as

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/gatehouse-mcp/gatehouse/internal/oauth"
	"github.com/gatehouse-mcp/gatehouse/internal/storage"
	"github.com/gatehouse-mcp/gatehouse/internal/token"
)

// grantRefreshToken exchanges a refresh token (OAuth 2.1 §4.3) and rotates
// it. A rotated token presented again is theft or a retry:
//   - within RefreshRetryWindow of the rotation, the identical request
//     (same client, scope and resource) gets the identical response, which
//     was sealed with a key only the old token's holder can derive;
//   - anything else revokes the whole grant (RFC 9700 §4.14.2), whatever
//     else is wrong with the request: a thief replaying a stolen token with
//     another client, scope or resource must not get away with an
//     invalid_scope that leaves the family alive (issue 11, F8).
func (s *Server) grantRefreshToken(ctx context.Context, r *http.Request, f form, c storage.Client) ([]byte, error) {
	presented := f.get("refresh_token")
	if presented == "" {
		return nil, oauth.New(oauth.InvalidRequest, "refresh_token is required")
	}
	hash := token.Hash(presented)
	rt, err := s.opts.Store.GetRefreshToken(ctx, hash)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, oauth.New(oauth.InvalidGrant, "the refresh token is invalid")
	}
	if err != nil {
		return nil, oauth.Internal(err)
	}
	// The DPoP binding first, before the retry window or reuse detection
	// can answer: a bound token is worth nothing without its key, so a
	// request without it gets no response, sealed or new, and revokes
	// nothing (RFC 9449 §5; issue 18 item 1).
	jkt := proofJKT(ctx)
	if rt.JKT != "" && jkt != rt.JKT {
		return nil, errBoundRefresh(jkt)
	}
	scopes, reqErr := refreshScopes(f, c, rt)
	if !rt.RotatedAt.IsZero() {
		// Reuse first: only a request that would otherwise be valid can
		// be an identical retry; any other one gets no key to match.
		key := ""
		if reqErr == nil {
			key = retryKey(c.ID, scopes, rt.Resource, jkt)
		}
		return s.refreshReplay(ctx, r, presented, rt, key)
	}
	if reqErr != nil {
		return nil, reqErr
	}
	key := retryKey(c.ID, scopes, rt.Resource, jkt)
	now := s.now()
	g, err := s.opts.Store.GetGrant(ctx, rt.GrantID)
	if err != nil {
		return nil, oauth.Internal(err)
	}
	if !g.RevokedAt.IsZero() {
		return nil, oauth.New(oauth.InvalidGrant, "the refresh token has been revoked")
	}
	if err := s.checkGrantUser(ctx, g); err != nil {
		return nil, err
	}
	if !now.Before(rt.ExpiresAt) || !now.Before(g.ExpiresAt) {
		return nil, oauth.New(oauth.InvalidGrant, "the refresh token has expired")
	}
	// The scope policies again (issue 14 item 3): a user taken out of a
	// group loses its scopes now, for this access token and for the rest
	// of the family (RFC 6749 §6 lets a refresh narrow; the response's
	// scope says what was granted).
	scopes, family, err := s.refreshPolicies(ctx, r, rt, scopes)
	if err != nil {
		return nil, err
	}

	access, err := s.mintAccess(ctx, accessToken{
		subject: rt.UserID, clientID: c.ID, grantID: rt.GrantID,
		resource: rt.Resource, scopes: scopes, authTime: g.AuthTime, jkt: jkt,
	})
	if err != nil {
		return nil, err
	}
	next, err := s.newSecret()
	if err != nil {
		return nil, oauth.Internal(err)
	}
	body, err := s.encodeTokenResponse(access, scopes, next, jkt)
	if err != nil {
		return nil, err
	}
	sealed, err := token.SealWithSecret(presented, body, s.rand)
	if err != nil {
		return nil, oauth.Internal(err)
	}
	err = s.opts.Store.RotateRefreshToken(ctx, hash, storage.RefreshToken{
		Hash: token.Hash(next), GrantID: rt.GrantID, ClientID: c.ID, UserID: rt.UserID,
		Scopes: family, Resource: rt.Resource, CreatedAt: now,
		ExpiresAt: minTime(now.Add(s.opts.RefreshTokenTTL), g.ExpiresAt),
		// A bound family stays bound; an unbound one refreshed with a
		// proof becomes bound to its key, as a refresh token issued to a
		// DPoP request is.
		JKT: jkt,
	}, sealed, key)
	if errors.Is(err, storage.ErrTokenReused) {
		// A concurrent request rotated it first: this one is a replay of it.
		rt, err = s.opts.Store.GetRefreshToken(ctx, hash)
		if err != nil {
			return nil, oauth.Internal(err)
		}
		return s.refreshReplay(ctx, r, presented, rt, key)
	}
	if err != nil {
		return nil, oauth.Internal(err)
	}
	// Rotated but unaudited: the client's retry gets this response
	// (refresh.retry), audited then.
	if err := s.auditIssued(ctx, r, storage.AuditEvent{Type: "token.issued", UserID: rt.UserID, ClientID: c.ID, Resource: rt.Resource, Outcome: "success", Detail: "refresh_token"}); err != nil {
		return nil, err
	}
	return body, nil
}

// refreshPolicies applies the resource's scope policies to a refresh of
// rt for the scopes requested: it returns the access token's scopes and
// the next refresh token's (rt's, narrowed the same way), and audits what
// it withheld. When nothing of a non-empty request is left the refresh
// fails with invalid_grant: a token with no scope would read as "what you
// asked for" to a client that finds no scope in the response (RFC 6749
// §5.1), and a new authorization ends on a page that says why.
func (s *Server) refreshPolicies(ctx context.Context, r *http.Request, rt storage.RefreshToken, scopes []string) (access, family []string, err error) {
	res, err := s.resolveResource(ctx, []string{rt.Resource})
	if err != nil {
		if e := (*oauth.Error)(nil); errors.As(err, &e) && e.Code == oauth.InvalidTarget {
			return scopes, rt.Scopes, nil // no longer registered: no policy left
		}
		return nil, nil, err
	}
	attrs, err := s.userAttrs(ctx, rt.UserID, res, rt.Scopes)
	if err != nil {
		return nil, nil, oauth.Internal(err)
	}
	access, withheld := applyPolicies(res, scopes, attrs)
	family, famWithheld := applyPolicies(res, rt.Scopes, attrs)
	if len(famWithheld) == 0 {
		return access, family, nil
	}
	why := reasons(famWithheld)
	s.audit(ctx, r, storage.AuditEvent{Type: "scope.withheld", UserID: rt.UserID, ClientID: rt.ClientID, Resource: rt.Resource, Outcome: "denied", Detail: "refresh: " + why})
	if len(access) == 0 && len(withheld) > 0 {
		return nil, nil, oauth.New(oauth.InvalidGrant, "the granted scopes are no longer available to the user: %s", reasons(withheld))
	}
	return access, family, nil
}

// refreshScopes checks a refresh request against the token rt: the client
// it was issued to, a scope no wider than granted and the grant's
// resource. It returns the scopes of the new access token.
func refreshScopes(f form, c storage.Client, rt storage.RefreshToken) ([]string, error) {
	if rt.ClientID != c.ID {
		return nil, oauth.New(oauth.InvalidGrant, "the refresh token was issued to another client")
	}
	requested, err := oauth.ParseScope(f.get("scope"))
	if err != nil {
		return nil, oauth.New(oauth.InvalidScope, "%s", err.Error())
	}
	requested = slices.DeleteFunc(requested, func(s string) bool { return s == scopeOfflineAccess })
	scopes := rt.Scopes
	if len(requested) > 0 {
		if !subset(requested, rt.Scopes) {
			return nil, oauth.New(oauth.InvalidScope, "a refresh may only narrow the scope: %q was not granted", oauth.JoinScope(requested))
		}
		scopes = requested
	}
	if err := checkTokenResource(f, rt.Resource); err != nil {
		return nil, err
	}
	return scopes, nil
}

// refreshReplay answers a rotated refresh token presented again. key is
// the request's retryKey, or "" for a request that is invalid anyway.
func (s *Server) refreshReplay(ctx context.Context, r *http.Request, presented string, rt storage.RefreshToken, key string) ([]byte, error) {
	now := s.now()
	inWindow := s.opts.RefreshRetryWindow > 0 && now.Sub(rt.RotatedAt) <= s.opts.RefreshRetryWindow
	if inWindow && key != "" && rt.RetryKey == key && len(rt.Retry) > 0 {
		g, err := s.opts.Store.GetGrant(ctx, rt.GrantID)
		if err != nil {
			return nil, oauth.Internal(err)
		}
		body, err := token.OpenWithSecret(presented, rt.Retry)
		if err != nil {
			return nil, oauth.Internal(err)
		}
		// A retry is only a retry while its answer is unused: once the
		// successor token has itself been rotated, the client evidently
		// got the answer, and this is a copy of the old token.
		successorUnused, err := s.successorUnused(ctx, body)
		if err != nil {
			return nil, err
		}
		if g.RevokedAt.IsZero() && successorUnused {
			if err := s.checkGrantUser(ctx, g); err != nil {
				return nil, err
			}
			if err := s.auditIssued(ctx, r, storage.AuditEvent{Type: "refresh.retry", UserID: rt.UserID, ClientID: rt.ClientID, Resource: rt.Resource, Outcome: "success", Detail: "identical retry inside the window answered with the same response"}); err != nil {
				return nil, err
			}
			return body, nil
		}
	}
	if err := s.opts.Store.RevokeGrant(ctx, rt.GrantID, now); err != nil && !errors.Is(err, storage.ErrNotFound) {
		return nil, oauth.Internal(err)
	}
	s.audit(ctx, r, storage.AuditEvent{Type: "refresh.reuse", UserID: rt.UserID, ClientID: rt.ClientID, Resource: rt.Resource, Outcome: "denied", Detail: "rotated refresh token reused; grant revoked"})
	return nil, oauth.New(oauth.InvalidGrant, "the refresh token was already used; the authorization has been revoked")
}

// successorUnused reports whether the refresh token in a sealed rotation
// response is still the current token of its family.
func (s *Server) successorUnused(ctx context.Context, body []byte) (bool, error) {
	var resp tokenResponse
	if err := json.Unmarshal(body, &resp); err != nil || resp.RefreshToken == "" {
		return false, oauth.Internal(fmt.Errorf("sealed refresh response unreadable: %v", err))
	}
	next, err := s.opts.Store.GetRefreshToken(ctx, token.Hash(resp.RefreshToken))
	if errors.Is(err, storage.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, oauth.Internal(err)
	}
	return next.RotatedAt.IsZero(), nil
}

// retryKey fingerprints a refresh request so only an identical retry is
// answered from the sealed response: same client, scope, resource and DPoP
// key (the sealed access token is bound to it).
func retryKey(clientID string, scopes []string, resource, jkt string) string {
	h := sha256.New()
	for _, p := range []string{clientID, oauth.JoinScope(scopes), resource, jkt} {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	return base64.RawURLEncoding.EncodeToString(h.Sum(nil))
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}
