package as

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/gatehouse-mcp/gatehouse/internal/oauth"
	"github.com/gatehouse-mcp/gatehouse/internal/storage"
	"github.com/gatehouse-mcp/gatehouse/internal/token"
)

// Token exchange vocabulary (RFC 8693 §2.1, §3).
const (
	gtTokenExchange     = "urn:ietf:params:oauth:grant-type:token-exchange"
	tokenTypeAccess     = "urn:ietf:params:oauth:token-type:access_token"
	tokenTypeJWT        = "urn:ietf:params:oauth:token-type:jwt"
	supportedTokenTypes = tokenTypeAccess + " or " + tokenTypeJWT
)

// TokenExchange configures the RFC 8693 token exchange grant: a client
// that serves a resource (an MCP server, the gateway) trades a user's
// access token for that resource for a short-lived token for another
// registered resource (the API it calls), on the same user's behalf.
type TokenExchange struct {
	// Lifetime is the longest an exchanged token lives; default 5 minutes.
	// It never outlives the subject token: its exp is the earlier of the
	// two.
	Lifetime time.Duration
	// Clients are the clients that may exchange, each with what it may
	// exchange. A client not listed is refused (unauthorized_client).
	// Empty disables the grant.
	Clients []ExchangeClient
}

// ExchangeClient is the exchange policy of one client.
type ExchangeClient struct {
	// ClientID is the client's id: an operator-created confidential
	// client. Public and self-registered clients are refused whatever the
	// policy says.
	ClientID string
	// SubjectAudiences are the resources whose tokens the client may
	// exchange: the subject token's aud must be one of them, i.e. a
	// resource the client serves. Required.
	SubjectAudiences []string
	// Audiences are the resources the client may obtain tokens for. Each
	// must be a registered resource when a request names it. Required.
	Audiences []string
	// Scopes bounds the scopes of exchanged tokens; empty means any
	// scope the target resource defines. Whatever it says, a token never
	// gets a scope its subject token does not have.
	Scopes []string
}

// exchangePolicy is an ExchangeClient with canonical resource identifiers.
type exchangePolicy struct {
	subjectAudiences []string
	audiences        []string
	scopes           []string
	lifetime         time.Duration
}

// newExchangePolicies checks o, fills its default lifetime and indexes the
// policies by client id; nil when no client may exchange. A client may
// have several entries (one gateway serving several OpenAPI routes): each
// pairs its subject audiences with its audiences, and an exchange must
// fit one entry, so a token of one route is never exchanged for another
// route's API.
func newExchangePolicies(o *TokenExchange) (map[string][]exchangePolicy, error) {
	if o.Lifetime == 0 {
		o.Lifetime = 5 * time.Minute
	}
	if o.Lifetime < time.Second {
		return nil, fmt.Errorf("as: TokenExchange.Lifetime %s must be at least 1s", o.Lifetime)
	}
	if len(o.Clients) == 0 {
		return nil, nil
	}
	canon := func(id, what string, in []string) ([]string, error) {
		if len(in) == 0 {
			return nil, fmt.Errorf("as: token exchange policy of client %q: %s is empty", id, what)
		}
		out := make([]string, len(in))
		for i, v := range in {
			c, err := CanonicalResource(v)
			if err != nil {
				return nil, fmt.Errorf("as: token exchange policy of client %q: %s %q: %v", id, what, v, err)
			}
			out[i] = c
		}
		return out, nil
	}
	m := make(map[string][]exchangePolicy, len(o.Clients))
	for _, c := range o.Clients {
		if c.ClientID == "" {
			return nil, errors.New("as: a token exchange policy has no client id")
		}
		subj, err := canon(c.ClientID, "SubjectAudiences", c.SubjectAudiences)
		if err != nil {
			return nil, err
		}
		aud, err := canon(c.ClientID, "Audiences", c.Audiences)
		if err != nil {
			return nil, err
		}
		m[c.ClientID] = append(m[c.ClientID], exchangePolicy{subjectAudiences: subj, audiences: aud, scopes: slices.Clone(c.Scopes), lifetime: o.Lifetime})
	}
	return m, nil
}

// exchangeAllowed is the dispatcher's permission check for token
// exchange: an authenticated confidential client, created by the
// operator, with an exchange policy.
func (s *Server) exchangeAllowed(c storage.Client) error {
	switch {
	case c.TokenEndpointAuthMethod == authNone:
		return oauth.New(oauth.UnauthorizedClient, "public clients cannot exchange tokens: token exchange requires client authentication")
	case dynamicClient(c):
		return oauth.New(oauth.UnauthorizedClient, "self-registered clients cannot exchange tokens; only clients the operator created and named in token_exchange.clients can")
	}
	if _, ok := s.exchange[c.ID]; !ok {
		return oauth.New(oauth.UnauthorizedClient, "the client %q is not allowed to exchange tokens (it is not in token_exchange.clients)", truncate(c.ID, 100))
	}
	return nil
}

// exchangeEvent is what the audit log records of a token exchange: who,
// for whom, toward what. Never a token.
type exchangeEvent struct {
	clientID      string
	userID        string
	subjectClient string
	subjectAud    string
	resource      string
	scopes        []string
}

// auditExchange records a token exchange refusal (err not nil) as a
// token.exchange event with outcome failure. A success is recorded by
// the grant with auditIssued, which must not fail.
func (s *Server) auditExchange(ctx context.Context, r *http.Request, e exchangeEvent, err error) {
	oe := oauth.As(err)
	if oe.Code == oauth.ServerError {
		return
	}
	s.audit(ctx, r, e.event("failure", string(oe.Code)+": "+oe.Description))
}

func (e exchangeEvent) event(outcome, detail string) storage.AuditEvent {
	var b strings.Builder
	b.WriteString(detail)
	add := func(k, v string) {
		if v != "" {
			fmt.Fprintf(&b, "; %s=%s", k, v)
		}
	}
	add("subject_client", e.subjectClient)
	add("subject_aud", e.subjectAud)
	add("scope", oauth.JoinScope(e.scopes))
	return storage.AuditEvent{Type: "token.exchange", UserID: e.userID, ClientID: e.clientID, Resource: e.resource, Outcome: outcome, Detail: b.String()}
}

// exchangeResponse is the token exchange response (RFC 8693 §2.2.1). No
// refresh token: the client exchanges again.
type exchangeResponse struct {
	AccessToken     string `json:"access_token"`
	IssuedTokenType string `json:"issued_token_type"`
	TokenType       string `json:"token_type"`
	ExpiresIn       int64  `json:"expires_in"`
	Scope           string `json:"scope,omitempty"`
}

// grantTokenExchange is RFC 8693 token exchange, in the impersonation-
// free delegation form: the issued token's sub is the subject token's
// user and its act names the exchanging client (and, nested, the actors
// before it). Every outcome is audited as token.exchange.
func (s *Server) grantTokenExchange(ctx context.Context, r *http.Request, f form, c storage.Client) ([]byte, error) {
	e := exchangeEvent{clientID: c.ID}
	body, err := s.exchangeToken(ctx, r, f, c, &e)
	if err != nil {
		s.auditExchange(ctx, r, e, err)
		return nil, err
	}
	return body, nil
}

func (s *Server) exchangeToken(ctx context.Context, r *http.Request, f form, c storage.Client, e *exchangeEvent) ([]byte, error) {
	pols := s.exchange[c.ID] // exchangeAllowed made sure there is one

	// The request (RFC 8693 §2.1).
	if f.has("actor_token") || f.has("actor_token_type") {
		return nil, oauth.New(oauth.InvalidRequest, "actor_token is not supported: the authenticated client is the actor, and the issued token's act claim names it")
	}
	subjectToken := f.get("subject_token")
	if subjectToken == "" {
		return nil, oauth.New(oauth.InvalidRequest, "subject_token is required: the access token to exchange")
	}
	switch stt := f.get("subject_token_type"); stt {
	case tokenTypeAccess, tokenTypeJWT:
	case "":
		return nil, oauth.New(oauth.InvalidRequest, "subject_token_type is required; supported: %s", supportedTokenTypes)
	default:
		return nil, oauth.New(oauth.InvalidRequest, "the subject_token_type %q is not supported; supported: %s", truncate(stt, 100), supportedTokenTypes)
	}
	issuedType := tokenTypeAccess
	switch rtt := f.get("requested_token_type"); rtt {
	case "", tokenTypeAccess:
	case tokenTypeJWT:
		issuedType = tokenTypeJWT
	default:
		return nil, oauth.New(oauth.InvalidRequest, "the requested_token_type %q is not supported; supported: %s", truncate(rtt, 100), supportedTokenTypes)
	}
	target, err := exchangeTarget(f)
	if err != nil {
		return nil, err
	}
	requested, err := oauth.ParseScope(f.get("scope"))
	if err != nil {
		return nil, oauth.New(oauth.InvalidScope, "%s", err.Error())
	}

	// The subject token: ours, valid, not revoked, for a resource the
	// client serves, and not reserved for another actor.
	sub, err := s.checkSubjectToken(ctx, subjectToken)
	if err != nil {
		return nil, err
	}
	e.userID, e.subjectClient, e.subjectAud = userOf(sub), sub.ClientID, sub.Audience
	var fits []exchangePolicy // the client's entries for this subject token
	for _, p := range pols {
		if slices.Contains(p.subjectAudiences, sub.Audience) {
			fits = append(fits, p)
		}
	}
	if len(fits) == 0 {
		return nil, oauth.New(oauth.InvalidGrant, "the subject_token was issued for %s, which is not a resource this client may exchange tokens of (token_exchange.clients[].subject_audiences): a client exchanges only tokens issued to resources it serves", truncate(sub.Audience, 200))
	}
	if sub.MayAct != nil && sub.MayAct.Subject != c.ID {
		return nil, oauth.New(oauth.InvalidGrant, "the subject_token's may_act claim names another party: this client may not act for its subject")
	}
	if 1+max(sub.Act.Depth(), 1) > token.MaxActorDepth {
		return nil, oauth.New(oauth.InvalidGrant, "the subject_token has already been exchanged %d times; at most %d actors may be chained", sub.Act.Depth(), token.MaxActorDepth)
	}

	// The target: a registered resource the policy allows.
	canon, err := CanonicalResource(target)
	if err != nil {
		return nil, oauth.New(oauth.InvalidTarget, "the target %q is not a resource identifier: %s", truncate(target, 200), err.Error())
	}
	e.resource = canon
	var pol exchangePolicy
	found := false
	for _, p := range fits {
		if slices.Contains(p.audiences, canon) {
			pol, found = p, true
			break
		}
	}
	if !found {
		return nil, oauth.New(oauth.InvalidTarget, "the client may not exchange tokens for %s (not in the audiences of its token_exchange.clients entry for tokens of %s)", truncate(canon, 200), truncate(sub.Audience, 200))
	}
	res, err := s.resolveResource(ctx, []string{canon})
	if err != nil {
		return nil, err
	}
	machine := sub.Subject == sub.ClientID
	if machine && !res.AcceptClientCredentials {
		return nil, oauth.New(oauth.InvalidTarget, "the subject_token has no user (client_credentials) and the resource %s does not accept tokens without a user; its operator can allow them with accept_client_credentials", res.URL)
	}

	scopes, err := s.exchangeScopes(ctx, requested, strings.Fields(sub.Scope), pol, res, userOf(sub))
	if err != nil {
		return nil, err
	}
	e.scopes = scopes

	// Never past the subject token: a token it begot must not outlive
	// it. Times are whole seconds on the wire; less than one left is none.
	// This also refuses a subject token that expired within the clock
	// leeway Verify grants resource servers: minting from an expired
	// token is not a matter of clock skew.
	now := s.now()
	exp := now.Add(pol.lifetime)
	if sub.ExpiresAt.Before(exp) {
		exp = sub.ExpiresAt
	}
	if exp.Sub(now) < time.Second {
		return nil, oauth.New(oauth.InvalidGrant, "the subject_token has expired")
	}
	// RFC 8693 §4.1: the outermost act is the current actor; the ones
	// before it nest. A subject token that was not exchanged was acted on
	// by the client it was issued to.
	prior := sub.Act
	if prior == nil {
		prior = &token.Actor{Subject: sub.ClientID}
	}
	at := accessToken{
		subject: sub.Subject, clientID: c.ID, grantID: sub.GrantID, resource: res.URL,
		scopes: scopes, authTime: sub.AuthTime, expiresAt: exp,
		act: &token.Actor{Subject: c.ID, Act: prior},
	}
	if machine {
		// No user: a machine token of the exchanging client (sub equals
		// client_id, how resource servers tell a machine), the subject's
		// client in act.
		at.machine, at.subject, at.authTime = true, "", time.Time{}
	}
	access, err := s.mintAccess(ctx, at)
	if err != nil {
		return nil, err
	}
	b, err := json.Marshal(exchangeResponse{
		AccessToken: access, IssuedTokenType: issuedType, TokenType: "Bearer",
		ExpiresIn: int64(exp.Sub(now) / time.Second), Scope: oauth.JoinScope(scopes),
	})
	if err != nil {
		return nil, oauth.Internal(err)
	}
	if err := s.auditIssued(ctx, r, e.event("success", "issued")); err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// exchangeTarget returns the one resource a token exchange is for, from
// resource and/or audience (RFC 8693 §2.1): each at most once, and the
// same resource when both are given.
func exchangeTarget(f form) (string, error) {
	res, aud := f["resource"], f["audience"]
	if len(res) > 1 || len(aud) > 1 {
		return "", oauth.New(oauth.InvalidTarget, "only one target is supported per request: give one resource (or one audience)")
	}
	switch {
	case len(res) == 1 && len(aud) == 1:
		a, errA := CanonicalResource(aud[0])
		b, errB := CanonicalResource(res[0])
		if errA != nil || errB != nil || a != b {
			return "", oauth.New(oauth.InvalidTarget, "resource and audience name different targets; give one of them, the identifier of the resource the token is for")
		}
		return res[0], nil
	case len(res) == 1:
		return res[0], nil
	case len(aud) == 1:
		return aud[0], nil
	}
	return "", oauth.New(oauth.InvalidRequest, "resource (or audience) is required: the identifier of the resource the exchanged token is for")
}

// checkSubjectToken verifies a subject token: signed by this server's
// keys, issued by this issuer, not expired, and neither it, its
// authorization nor its user revoked — what introspection checks, and
// the user's epoch as a refresh checks it.
func (s *Server) checkSubjectToken(ctx context.Context, tok string) (token.AccessClaims, error) {
	claims, err := s.opts.Keyring.Verify(ctx, tok)
	switch {
	case errors.Is(err, token.ErrExpired):
		return claims, oauth.New(oauth.InvalidGrant, "the subject_token has expired")
	case errors.Is(err, token.ErrNotYetValid):
		return claims, oauth.New(oauth.InvalidGrant, "the subject_token is not valid yet (nbf)")
	case errors.Is(err, token.ErrUnknownKey):
		return claims, oauth.New(oauth.InvalidGrant, "the subject_token was not signed by a key of this authorization server")
	case errors.Is(err, token.ErrSignature), errors.Is(err, token.ErrAlgorithm):
		return claims, oauth.New(oauth.InvalidGrant, "the subject_token's signature does not verify")
	case errors.Is(err, token.ErrType):
		return claims, oauth.New(oauth.InvalidGrant, "the subject_token is not an access token (its typ is not at+jwt)")
	case err != nil:
		return claims, oauth.New(oauth.InvalidGrant, "the subject_token is not an access token issued by this authorization server")
	}
	if claims.Issuer != s.opts.Issuer {
		return claims, oauth.New(oauth.InvalidGrant, "the subject_token was issued by %q, not by this authorization server", truncate(claims.Issuer, 200))
	}
	revoked, err := s.opts.Store.Seen(ctx, revokedJTIKey(claims.JTI), s.now())
	if err != nil {
		return claims, oauth.Internal(err)
	}
	if revoked {
		return claims, oauth.New(oauth.InvalidGrant, "the subject_token has been revoked")
	}
	if userOf(claims) == "" {
		// A machine token lives as long as its client (as introspection
		// sees it).
		live, err := s.clientIssued(ctx, claims.ClientID, claims.IssuedAt)
		if err != nil {
			return claims, oauth.Internal(err)
		}
		if !live {
			return claims, oauth.New(oauth.InvalidGrant, "the client the subject_token was issued to was deleted or reset since")
		}
		return claims, nil
	}
	if claims.GrantID == "" {
		return claims, oauth.New(oauth.InvalidGrant, "the subject_token names no authorization (gid), so its revocation cannot be checked")
	}
	g, err := s.opts.Store.GetGrant(ctx, claims.GrantID)
	switch {
	case errors.Is(err, storage.ErrNotFound):
		return claims, oauth.New(oauth.InvalidGrant, "the authorization the subject_token was issued under no longer exists")
	case err != nil:
		return claims, oauth.Internal(err)
	case !g.RevokedAt.IsZero():
		return claims, oauth.New(oauth.InvalidGrant, "the authorization the subject_token was issued under has been revoked")
	case g.UserID != claims.Subject:
		return claims, oauth.Internal(fmt.Errorf("token %s names grant %s of another user", claims.JTI, g.ID))
	}
	if err := s.checkGrantUser(ctx, g); err != nil {
		return claims, err
	}
	return claims, nil
}

// exchangeScopes decides the scopes of an exchanged token. Each must be
// in the subject token (never wider than what the user granted), defined
// by the target resource, within the client's policy, and allowed to the
// user by the resource's scope policies. A request names them (each
// checked, any failure refuses); without one, the token gets every scope
// that passes.
func (s *Server) exchangeScopes(ctx context.Context, requested, subject []string, pol exchangePolicy, res storage.Resource, userID string) ([]string, error) {
	var scopes []string
	if len(requested) > 0 {
		for _, sc := range requested {
			switch {
			case !slices.Contains(subject, sc):
				return nil, oauth.New(oauth.InvalidScope, "the scope %q is wider than the subject_token's grant (%s): an exchanged token never has a scope its subject token lacks", truncate(sc, 100), oauth.JoinScope(subject))
			case !resourceHasScope(res, sc):
				return nil, oauth.New(oauth.InvalidScope, "the scope %q is not defined for the resource %s", truncate(sc, 100), res.URL)
			case len(pol.scopes) > 0 && !slices.Contains(pol.scopes, sc):
				return nil, oauth.New(oauth.InvalidScope, "the client may not exchange for the scope %q (its token_exchange.clients[].scopes: %s)", truncate(sc, 100), strings.Join(pol.scopes, " "))
			}
			if !slices.Contains(scopes, sc) {
				scopes = append(scopes, sc)
			}
		}
	} else {
		for _, sc := range subject {
			if resourceHasScope(res, sc) && (len(pol.scopes) == 0 || slices.Contains(pol.scopes, sc)) {
				scopes = append(scopes, sc)
			}
		}
	}
	var attrs subjectAttrs
	if userID != "" {
		var err error
		if attrs, err = s.userAttrs(ctx, userID, res, scopes); err != nil {
			return nil, oauth.Internal(err)
		}
	}
	scopes, withheld := applyPolicies(res, scopes, attrs)
	if len(withheld) > 0 && len(requested) > 0 {
		return nil, oauth.New(oauth.InvalidScope, "not available to the subject at %s: %s", res.URL, truncate(reasons(withheld), 300))
	}
	if len(scopes) == 0 {
		return nil, oauth.New(oauth.InvalidScope, "no scope is left to grant: the subject_token's scopes (%s) and the scopes of %s that this client may exchange for have none in common", oauth.JoinScope(subject), res.URL)
	}
	return scopes, nil
}
