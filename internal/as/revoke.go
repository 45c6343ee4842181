package as

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/gatehouse-mcp/gatehouse/internal/oauth"
	"github.com/gatehouse-mcp/gatehouse/internal/storage"
	"github.com/gatehouse-mcp/gatehouse/internal/token"
)

// handleRevoke is the revocation endpoint (RFC 7009). Revoking a refresh
// token revokes its whole grant; revoking an access token records its jti
// until it expires, so introspection reports it inactive. Unknown tokens,
// and tokens of other clients, get the same 200 as a success (§2.2): the
// answer must not reveal whether a token exists.
func (s *Server) handleRevoke(w http.ResponseWriter, r *http.Request) error {
	f, err := parseForm(w, r)
	if err != nil {
		return err
	}
	ctx := r.Context()
	c, err := s.authenticateClient(ctx, r, f)
	if err != nil {
		return err
	}
	tok := f.get("token")
	if tok == "" {
		return oauth.New(oauth.InvalidRequest, "token is required")
	}
	hint := f.get("token_type_hint")
	switch hint {
	case "", "access_token", "refresh_token":
	default:
		return oauth.New(oauth.UnsupportedTokenType, "token_type_hint %q is not supported; use access_token or refresh_token", truncate(hint, 40))
	}
	if looksLikeJWT(tok) {
		err = s.revokeAccessToken(ctx, r, c, tok)
	} else {
		err = s.revokeRefreshToken(ctx, r, c, tok)
	}
	if err != nil {
		return err
	}
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	return nil
}

func (s *Server) revokeRefreshToken(ctx context.Context, r *http.Request, c storage.Client, tok string) error {
	rt, err := s.opts.Store.GetRefreshToken(ctx, token.Hash(tok))
	if errors.Is(err, storage.ErrNotFound) {
		return nil
	}
	if err != nil {
		return oauth.Internal(err)
	}
	if rt.ClientID != c.ID {
		return nil
	}
	if err := s.opts.Store.RevokeGrant(ctx, rt.GrantID, s.now()); err != nil && !errors.Is(err, storage.ErrNotFound) {
		return oauth.Internal(err)
	}
	s.audit(ctx, r, storage.AuditEvent{Type: "token.revoked", UserID: rt.UserID, ClientID: c.ID, Resource: rt.Resource, Outcome: "success", Detail: "refresh_token: grant revoked"})
	return nil
}

func (s *Server) revokeAccessToken(ctx context.Context, r *http.Request, c storage.Client, tok string) error {
	claims, err := s.opts.Keyring.Verify(ctx, tok)
	if err != nil || claims.ClientID != c.ID {
		return nil // expired, foreign or not ours: nothing to revoke
	}
	err = s.opts.Store.UseOnce(ctx, revokedJTIKey(claims.JTI), claims.ExpiresAt)
	if err != nil && !errors.Is(err, storage.ErrAlreadyExists) {
		return oauth.Internal(err)
	}
	s.audit(ctx, r, storage.AuditEvent{Type: "token.revoked", UserID: userOf(claims), ClientID: c.ID, Resource: claims.Audience, Outcome: "success", Detail: "access_token"})
	return nil
}

func revokedJTIKey(jti string) string { return "revoked:" + jti }

// userOf returns the user of an access token: empty for client credentials,
// where the subject is the client.
func userOf(c token.AccessClaims) string {
	if c.Subject == c.ClientID {
		return ""
	}
	return c.Subject
}

// looksLikeJWT tells access tokens (JWS compact) from refresh tokens
// (43-character base64url secrets without dots).
func looksLikeJWT(s string) bool { return strings.Count(s, ".") == 2 }

// handleIntrospect is the introspection endpoint (RFC 7662). The caller
// must authenticate as a confidential client: any such client (a resource
// server is registered as one) may introspect access tokens, and a client
// may introspect its own refresh tokens. A token that is unknown, expired,
// revoked or belongs to a grant that was revoked is {"active":false}.
func (s *Server) handleIntrospect(w http.ResponseWriter, r *http.Request) error {
	f, err := parseForm(w, r)
	if err != nil {
		return err
	}
	ctx := r.Context()
	c, err := s.authenticateClient(ctx, r, f)
	if err != nil {
		return err
	}
	if c.TokenEndpointAuthMethod == authNone {
		return oauth.New(oauth.InvalidClient, "introspection requires client authentication; public clients may not introspect").WithStatus(http.StatusUnauthorized)
	}
	tok := f.get("token")
	if tok == "" {
		return oauth.New(oauth.InvalidRequest, "token is required")
	}
	var resp oauth.Introspection
	if looksLikeJWT(tok) {
		resp, err = s.introspectAccess(ctx, tok)
	} else {
		resp, err = s.introspectRefresh(ctx, c, tok)
	}
	if err != nil {
		return err
	}
	b, err := json.Marshal(resp)
	if err != nil {
		return oauth.Internal(err)
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	w.Write(append(b, '\n'))
	return nil
}

func (s *Server) introspectAccess(ctx context.Context, tok string) (oauth.Introspection, error) {
	claims, err := s.opts.Keyring.Verify(ctx, tok)
	if err != nil {
		return oauth.Introspection{}, nil
	}
	revoked, err := s.opts.Store.Seen(ctx, revokedJTIKey(claims.JTI), s.now())
	if err != nil {
		return oauth.Introspection{}, oauth.Internal(err)
	}
	if revoked {
		return oauth.Introspection{}, nil
	}
	if claims.GrantID != "" {
		g, err := s.opts.Store.GetGrant(ctx, claims.GrantID)
		if errors.Is(err, storage.ErrNotFound) || (err == nil && !g.RevokedAt.IsZero()) {
			return oauth.Introspection{}, nil
		}
		if err != nil {
			return oauth.Introspection{}, oauth.Internal(err)
		}
	} else {
		// A machine token has no grant to revoke: it lives as long as
		// its client, read from storage (not the cache) so a delete on
		// any replica counts at once (issue 20 F4).
		live, err := s.clientIssued(ctx, claims.ClientID, claims.IssuedAt)
		if err != nil {
			return oauth.Introspection{}, oauth.Internal(err)
		}
		if !live {
			return oauth.Introspection{}, nil
		}
	}
	// RFC 9449 §6.2: a bound token's introspection says so (token_type
	// DPoP and cnf.jkt), so an introspecting resource server checks proofs.
	var cnf *oauth.Confirmation
	if claims.JKT != "" {
		cnf = &oauth.Confirmation{JKT: claims.JKT}
	}
	return oauth.Introspection{
		Active: true, Scope: claims.Scope, ClientID: claims.ClientID, TokenType: tokenType(claims.JKT),
		Exp: oauth.NewNumericDate(claims.ExpiresAt), Iat: oauth.NewNumericDate(claims.IssuedAt), Nbf: oauth.NewNumericDate(claims.NotBefore),
		Sub: claims.Subject, Aud: oauth.OneAudience(claims.Audience), Iss: claims.Issuer, JTI: claims.JTI, Cnf: cnf,
	}, nil
}

func (s *Server) introspectRefresh(ctx context.Context, c storage.Client, tok string) (oauth.Introspection, error) {
	rt, err := s.opts.Store.GetRefreshToken(ctx, token.Hash(tok))
	if errors.Is(err, storage.ErrNotFound) {
		return oauth.Introspection{}, nil
	}
	if err != nil {
		return oauth.Introspection{}, oauth.Internal(err)
	}
	now := s.now()
	if rt.ClientID != c.ID || !rt.RotatedAt.IsZero() || !now.Before(rt.ExpiresAt) {
		return oauth.Introspection{}, nil
	}
	g, err := s.opts.Store.GetGrant(ctx, rt.GrantID)
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		return oauth.Introspection{}, oauth.Internal(err)
	}
	if err != nil || !g.RevokedAt.IsZero() || !now.Before(g.ExpiresAt) {
		return oauth.Introspection{}, nil
	}
	return oauth.Introspection{
		Active: true, Scope: oauth.JoinScope(rt.Scopes), ClientID: rt.ClientID, TokenType: "refresh_token",
		Exp: oauth.NewNumericDate(rt.ExpiresAt), Iat: oauth.NewNumericDate(rt.CreatedAt), Sub: rt.UserID, Aud: oauth.OneAudience(rt.Resource), Iss: s.opts.Issuer,
	}, nil
}

// clientIssued reports whether the client clientID exists and is the one
// that issued a token at iat: not deleted, not re-created since, and not
// reset (everything it held revoked) since. iat has whole seconds: a token
// of the second the client was created counts (its first tokens often
// are), one of the second it was reset does not (a reset is an operator's
// answer to a leak, where refusing a fresh token now and then is right).
func (s *Server) clientIssued(ctx context.Context, clientID string, iat time.Time) (bool, error) {
	c, err := s.opts.Store.GetClient(ctx, clientID)
	if errors.Is(err, storage.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if !c.ResetAt.IsZero() && !iat.After(c.ResetAt.Truncate(time.Second)) {
		return false, nil
	}
	return !iat.Before(c.CreatedAt.Truncate(time.Second)), nil
}
