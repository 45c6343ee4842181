package as

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/http"

	"github.com/gatehouse-mcp/gatehouse/internal/oauth"
	"github.com/gatehouse-mcp/gatehouse/internal/storage"
	"github.com/gatehouse-mcp/gatehouse/internal/token"
)

// grantAuthorizationCode redeems an authorization code (OAuth 2.1 §4.1.3).
// The code is single use: a second redemption is refused and revokes the
// grant the first one created, since one of the two was an attacker
// (RFC 9700 §4.5).
func (s *Server) grantAuthorizationCode(ctx context.Context, r *http.Request, f form, c storage.Client) ([]byte, error) {
	code := f.get("code")
	if code == "" {
		return nil, oauth.New(oauth.InvalidRequest, "code is required")
	}
	verifier := f.get("code_verifier")
	if verifier == "" {
		return nil, oauth.New(oauth.InvalidRequest, "code_verifier is required: this server requires PKCE")
	}
	if !validVerifier(verifier) {
		return nil, oauth.New(oauth.InvalidRequest, "code_verifier must be 43 to 128 characters of [A-Za-z0-9-._~] (RFC 7636 §4.1)")
	}
	now := s.now()
	ac, err := s.opts.Store.ConsumeAuthCode(ctx, token.Hash(code), now)
	switch {
	case errors.Is(err, storage.ErrNotFound):
		return nil, oauth.New(oauth.InvalidGrant, "the authorization code is invalid")
	case errors.Is(err, storage.ErrConsumed):
		if rerr := s.opts.Store.RevokeGrant(ctx, ac.GrantID, now); rerr != nil && !errors.Is(rerr, storage.ErrNotFound) {
			return nil, oauth.Internal(rerr)
		}
		s.audit(ctx, r, storage.AuditEvent{Type: "code.replay", UserID: ac.UserID, ClientID: ac.ClientID, Resource: ac.Resource, Outcome: "denied", Detail: "tokens issued from the code were revoked"})
		return nil, oauth.New(oauth.InvalidGrant, "the authorization code was already used; tokens issued from it have been revoked")
	case err != nil:
		return nil, oauth.Internal(err)
	}
	// The code is consumed from here on: every refusal below leaves it
	// unusable, which is what a failed redemption must do anyway.
	if ac.ClientID != c.ID {
		return nil, oauth.New(oauth.InvalidGrant, "the authorization code was issued to another client")
	}
	if !now.Before(ac.ExpiresAt) {
		return nil, oauth.New(oauth.InvalidGrant, "the authorization code has expired")
	}
	if f.get("redirect_uri") != ac.RedirectURI {
		return nil, oauth.New(oauth.InvalidGrant, "redirect_uri does not match the one used in the authorization request")
	}
	if ac.CodeChallengeMethod != "S256" || !token.Equal(s256(verifier), ac.CodeChallenge) {
		return nil, oauth.New(oauth.InvalidGrant, "code_verifier does not match the code_challenge")
	}
	if err := checkTokenResource(f, ac.Resource); err != nil {
		return nil, err
	}
	g, err := s.opts.Store.GetGrant(ctx, ac.GrantID)
	if err != nil {
		return nil, oauth.Internal(err)
	}
	if !g.RevokedAt.IsZero() {
		return nil, oauth.New(oauth.InvalidGrant, "the authorization has been revoked")
	}
	if err := s.checkGrantUser(ctx, g); err != nil {
		return nil, err
	}
	jkt := proofJKT(ctx)
	access, err := s.mintAccess(ctx, accessToken{
		subject: ac.UserID, clientID: c.ID, grantID: ac.GrantID,
		resource: ac.Resource, scopes: ac.Scopes, authTime: ac.AuthTime, jkt: jkt,
	})
	if err != nil {
		return nil, err
	}
	var refresh string
	if issuesRefreshTokens(c) {
		refresh, err = s.newSecret()
		if err != nil {
			return nil, oauth.Internal(err)
		}
		err = s.opts.Store.CreateRefreshToken(ctx, storage.RefreshToken{
			Hash: token.Hash(refresh), GrantID: ac.GrantID, ClientID: c.ID, UserID: ac.UserID,
			Scopes: ac.Scopes, Resource: ac.Resource, CreatedAt: now,
			ExpiresAt: minTime(now.Add(s.opts.RefreshTokenTTL), g.ExpiresAt),
			JKT:       jkt, // RFC 9449 §5: bound to the key the access token is
		})
		if err != nil {
			return nil, oauth.Internal(err)
		}
	}
	if err := s.auditIssued(ctx, r, storage.AuditEvent{Type: "token.issued", UserID: ac.UserID, ClientID: c.ID, Resource: ac.Resource, Outcome: "success", Detail: "authorization_code"}); err != nil {
		return nil, err
	}
	return s.encodeTokenResponse(access, ac.Scopes, refresh, jkt)
}

// s256 is the PKCE S256 transformation: BASE64URL(SHA256(verifier)).
func s256(verifier string) string {
	sum := sha256.Sum256([]byte(verifier))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// validVerifier checks RFC 7636 §4.1: 43-128 unreserved characters.
func validVerifier(v string) bool {
	if len(v) < 43 || len(v) > 128 {
		return false
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~') {
			return false
		}
	}
	return true
}

// validChallenge checks an S256 code_challenge: the base64url encoding of
// 32 bytes is exactly 43 characters of the base64url alphabet.
func validChallenge(c string) bool {
	if len(c) != 43 {
		return false
	}
	_, err := base64.RawURLEncoding.DecodeString(c)
	return err == nil
}
