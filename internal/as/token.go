package as

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gatehouse-mcp/gatehouse/internal/oauth"
	"github.com/gatehouse-mcp/gatehouse/internal/storage"
	"github.com/gatehouse-mcp/gatehouse/internal/token"
)

// tokenResponse is the successful token response (RFC 6749 §5.1).
type tokenResponse struct {
	AccessToken  string `json:"access_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int64  `json:"expires_in"`
	Scope        string `json:"scope,omitempty"`
	RefreshToken string `json:"refresh_token,omitempty"`
}

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }

// handleToken is the token endpoint dispatcher. The phases every grant
// shares run here, in this order, so no grant can skip one: strict form
// parsing, client authentication, the client's permission for the grant
// type. Each grant then checks what is its own and returns the response.
func (s *Server) handleToken(w http.ResponseWriter, r *http.Request) error {
	f, err := parseForm(w, r, "resource", "audience")
	if err != nil {
		return err
	}
	gt := f.get("grant_type")
	if gt == "" {
		return oauth.New(oauth.InvalidRequest, "grant_type is required")
	}
	var grant func(context.Context, *http.Request, form, storage.Client) ([]byte, error)
	switch gt {
	case "authorization_code":
		grant = s.grantAuthorizationCode
	case "refresh_token":
		grant = s.grantRefreshToken
	case gtClientCredentials:
		grant = s.grantClientCredentials
	case gtTokenExchange:
		if s.exchange == nil {
			return oauth.New(oauth.UnsupportedGrantType, "token exchange is not enabled on this server; its operator can enable it with token_exchange.clients")
		}
		grant = s.grantTokenExchange
	default:
		return oauth.New(oauth.UnsupportedGrantType, "the grant type %q is not supported; supported: %s", truncate(gt, 80), strings.Join(s.grantTypes(), ", "))
	}
	err = s.runGrant(w, r, f, gt, grant)
	if s.opts.OnGrant != nil {
		outcome := "success"
		if err != nil {
			outcome = string(oauth.As(err).Code)
		}
		s.opts.OnGrant(gt, outcome)
	}
	return err
}

// runGrant authenticates the client, checks its permission for the grant
// type, and runs the grant.
func (s *Server) runGrant(w http.ResponseWriter, r *http.Request, f form, gt string, grant func(context.Context, *http.Request, form, storage.Client) ([]byte, error)) error {
	ctx := r.Context()
	c, err := s.authenticateClient(ctx, r, f)
	if err != nil {
		return err
	}
	if err := s.grantAllowed(c, gt); err != nil {
		if gt == gtTokenExchange {
			s.auditExchange(ctx, r, exchangeEvent{clientID: c.ID}, err)
		}
		return err
	}
	if dpopGrants[gt] {
		if ctx, err = s.checkDPoP(w, r, c); err != nil {
			s.audit(r.Context(), r, storage.AuditEvent{Type: "token.refused", ClientID: c.ID, Outcome: "failure", Detail: gt + ": " + string(oauth.As(err).Code)})
			return err
		}
	}
	body, err := grant(ctx, r, f, c)
	if err != nil {
		// A token exchange audits its own refusals (token.exchange),
		// with what it knows of the request.
		if oe := oauth.As(err); oe.Code != oauth.ServerError && gt != gtTokenExchange {
			s.audit(ctx, r, storage.AuditEvent{Type: "token.refused", ClientID: c.ID, Outcome: "failure", Detail: gt + ": " + string(oe.Code)})
		}
		return err
	}
	s.touchClient(ctx, c)
	writeTokenJSON(w, body)
	return nil
}

// grantAllowed is the dispatcher's permission check: the client must be
// registered for the grant type, and a dynamic client (RFC 7591 or a
// metadata document: nobody vetted it) may use client_credentials only
// where the operator opted in. The second rule holds here, not only at
// registration, because metadata documents and clients registered before
// it could list the grant.
func (s *Server) grantAllowed(c storage.Client, gt string) error {
	if gt == gtTokenExchange {
		// Its permission is the exchange policy, not the client's
		// registered grant types: token_exchange.clients.
		return s.exchangeAllowed(c)
	}
	if gt == gtClientCredentials && dynamicClient(c) && !s.opts.Registration.AllowClientCredentials {
		return errDynamicClientCredentials(oauth.UnauthorizedClient)
	}
	if !slices.Contains(c.GrantTypes, gt) {
		return oauth.New(oauth.UnauthorizedClient, "the client is not registered for the %s grant", gt)
	}
	return nil
}

// checkGrantUser refuses a grant whose user can no longer hold it: the
// user was deleted or disabled, or everything they held was revoked
// (password change, `gatehouse user revoke`) since the grant was made.
// ResetUser revokes the grants that exist when it commits; this catches a
// grant that a request racing it wrote just after (issue 20 F2). Machine
// grants (no user) pass.
func (s *Server) checkGrantUser(ctx context.Context, g storage.Grant) error {
	if g.UserID == "" {
		return nil
	}
	u, err := s.opts.Store.GetUser(ctx, g.UserID)
	switch {
	case errors.Is(err, storage.ErrNotFound):
		return oauth.New(oauth.InvalidGrant, "the user of this authorization no longer exists")
	case err != nil:
		return oauth.Internal(err)
	case !u.DisabledAt.IsZero() || u.Epoch != g.UserEpoch:
		return oauth.New(oauth.InvalidGrant, "the user's access was revoked (a password change, a revocation or a disabled account); sign in again")
	}
	return nil
}

// dynamicClient reports whether c registered itself (RFC 7591) or is a
// client ID metadata document: anyone may have created it.
func dynamicClient(c storage.Client) bool {
	return c.Origin == storage.OriginDCR || c.Origin == storage.OriginCIMD
}

// writeTokenJSON writes a token response with the headers of RFC 6749 §5.1.
func writeTokenJSON(w http.ResponseWriter, body []byte) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("Pragma", "no-cache")
	w.Write(body)
}

// touchClient records client activity at most once a minute per client, so
// the client-credentials hot path does not write on every request.
func (s *Server) touchClient(ctx context.Context, c storage.Client) {
	now := s.now()
	if now.Sub(c.LastUsedAt) < time.Minute {
		return
	}
	if err := s.opts.Store.TouchClient(ctx, c.ID, now); err != nil {
		s.log.ErrorContext(ctx, "touch client", "cause", err)
	}
	// The cached row must know, or every request until it expires would
	// touch again.
	s.clients.update(c.ID, func(old storage.Client) storage.Client { old.LastUsedAt = now; return old })
}

// accessToken describes an access token to mint.
type accessToken struct {
	// machine marks a token without a user (client_credentials): its
	// subject is the client id (RFC 9068 §2.2), and subject must be empty.
	machine bool
	// subject is the user's id.
	subject  string
	clientID string
	grantID  string
	resource string
	scopes   []string
	authTime time.Time
	// expiresAt, if not zero, is the token's exp; zero means
	// AccessTokenTTL from now.
	expiresAt time.Time
	// act is the act claim (RFC 8693 §4.1) of an exchanged token.
	act *token.Actor
	// jkt binds the token to a DPoP key (cnf.jkt, RFC 9449 §6.1); "" for
	// a bearer token.
	jkt string
}

// mintAccess signs an RFC 9068 access token and returns it with its
// lifetime. A token without a user has sub equal to client_id and no
// auth_time: that is how resource servers tell it from a user's
// (rs.TokenInfo.Machine). So a user's token must never have a subject equal
// to its client id, or it would pass for a machine's, and the other way
// round.
func (s *Server) mintAccess(ctx context.Context, a accessToken) (string, error) {
	switch {
	case a.machine && a.subject == "":
		a.subject, a.authTime = a.clientID, time.Time{}
	case a.machine || a.subject == "":
		return "", oauth.Internal(fmt.Errorf("access token for client %q: machine %v with user %q", a.clientID, a.machine, a.subject))
	case a.subject == a.clientID:
		return "", oauth.Internal(fmt.Errorf("user %q has the id of the client the token is for", a.subject))
	}
	jti, err := s.newID()
	if err != nil {
		return "", oauth.Internal(err)
	}
	now := s.now()
	exp := a.expiresAt
	if exp.IsZero() {
		exp = now.Add(s.opts.AccessTokenTTL)
	}
	tok, err := s.opts.Keyring.Sign(ctx, token.AccessClaims{
		Issuer:    s.opts.Issuer,
		Subject:   a.subject,
		Audience:  a.resource,
		ClientID:  a.clientID,
		Scope:     oauth.JoinScope(a.scopes),
		JTI:       jti,
		GrantID:   a.grantID,
		IssuedAt:  now,
		NotBefore: now,
		ExpiresAt: exp,
		AuthTime:  a.authTime,
		Act:       a.act,
		JKT:       a.jkt,
	})
	if err != nil {
		return "", oauth.Internal(err)
	}
	return tok, nil
}

// encodeTokenResponse builds the JSON body of a token response; jkt is the
// DPoP key the access token is bound to, "" for a bearer token.
func (s *Server) encodeTokenResponse(access string, scopes []string, refresh, jkt string) ([]byte, error) {
	b, err := json.Marshal(tokenResponse{
		AccessToken:  access,
		TokenType:    tokenType(jkt),
		ExpiresIn:    int64(s.opts.AccessTokenTTL / time.Second),
		Scope:        oauth.JoinScope(scopes),
		RefreshToken: refresh,
	})
	if err != nil {
		return nil, oauth.Internal(err)
	}
	return append(b, '\n'), nil
}

// checkTokenResource checks the optional resource parameter of a token
// request against the resource the grant was made for: it may repeat it,
// never change it (RFC 8707 §2.2 allows narrowing, and a grant here has
// exactly one resource).
func checkTokenResource(f form, granted string) error {
	vals := f["resource"]
	switch len(vals) {
	case 0:
		return nil
	case 1:
	default:
		return oauth.New(oauth.InvalidTarget, "only one resource parameter is supported per request")
	}
	canon, err := CanonicalResource(vals[0])
	if err != nil {
		return oauth.New(oauth.InvalidTarget, "%s", err.Error())
	}
	if canon != granted {
		return oauth.New(oauth.InvalidTarget, "the resource %q is not the resource this grant was issued for", truncate(vals[0], 200))
	}
	return nil
}

// issuesRefreshTokens reports whether c gets refresh tokens. The policy
// (SEP-2207): a client registered for the refresh_token grant gets one
// with every authorization-code exchange, whether or not it asked for
// offline_access, because real MCP clients expect one without asking.
func issuesRefreshTokens(c storage.Client) bool {
	return slices.Contains(c.GrantTypes, "refresh_token")
}

// retryAfter formats seconds for a Retry-After header.
func retryAfter(d time.Duration) string {
	return strconv.Itoa(int(d.Seconds()) + 1)
}
