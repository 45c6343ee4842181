package as

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/gatehouse-mcp/gatehouse/internal/clientreg"
	"github.com/gatehouse-mcp/gatehouse/internal/oauth"
	"github.com/gatehouse-mcp/gatehouse/internal/storage"
	"github.com/gatehouse-mcp/gatehouse/internal/token"
)

// Client authentication methods (RFC 7591 §2, RFC 7523 §2.2).
const (
	authNone       = "none"
	authBasic      = "client_secret_basic"
	authPost       = "client_secret_post"
	authPrivateJWT = "private_key_jwt"

	assertionTypeJWT = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
)

// maxAssertionLifetime bounds how far in the future a client assertion's
// exp may lie, so a leaked assertion is useful only briefly and the jti
// replay cache stays small.
const maxAssertionLifetime = 10 * time.Minute

// authenticateClient identifies and authenticates the client of a token,
// revocation or introspection request. Exactly one method may be used;
// the one used must be the client's registered method. Failures are
// invalid_client with 401, plus WWW-Authenticate: Basic when the client
// tried Basic (RFC 6749 §5.2).
func (s *Server) authenticateClient(ctx context.Context, r *http.Request, f form) (storage.Client, error) {
	var (
		method         string
		id, secret     string
		altID, altSec  string // raw (not form-decoded) Basic credentials
		assertion      string
		usedBasic      bool
		methodsPresent int
	)
	if h := r.Header.Get("Authorization"); h != "" {
		scheme, rest, _ := strings.Cut(h, " ")
		if !strings.EqualFold(scheme, "Basic") {
			return storage.Client{}, oauth.New(oauth.InvalidClient, "the Authorization header must use the Basic scheme for client authentication").WithStatus(http.StatusUnauthorized)
		}
		usedBasic = true
		var ok bool
		id, secret, altID, altSec, ok = parseBasic(strings.TrimSpace(rest))
		if !ok {
			return storage.Client{}, basicFailure("the Basic credentials are malformed")
		}
		method = authBasic
		methodsPresent++
	}
	if f.has("client_secret") {
		method = authPost
		methodsPresent++
		id, secret = f.get("client_id"), f.get("client_secret")
	}
	if f.has("client_assertion") || f.has("client_assertion_type") {
		if f.get("client_assertion_type") != assertionTypeJWT {
			return storage.Client{}, oauth.New(oauth.InvalidClient, "client_assertion_type must be %s", assertionTypeJWT).WithStatus(http.StatusUnauthorized)
		}
		assertion = f.get("client_assertion")
		if assertion == "" {
			return storage.Client{}, oauth.New(oauth.InvalidClient, "client_assertion is empty").WithStatus(http.StatusUnauthorized)
		}
		method = authPrivateJWT
		methodsPresent++
		sub, err := unverifiedSubject(assertion)
		if err != nil {
			return storage.Client{}, oauth.New(oauth.InvalidClient, "client_assertion is not a well-formed JWT").WithStatus(http.StatusUnauthorized)
		}
		id = sub
		if cid := f.get("client_id"); cid != "" && cid != sub {
			return storage.Client{}, oauth.New(oauth.InvalidClient, "client_id does not match the subject of client_assertion").WithStatus(http.StatusUnauthorized)
		}
	}
	if methodsPresent > 1 {
		return storage.Client{}, oauth.New(oauth.InvalidRequest, "the client used more than one authentication method; use exactly one")
	}
	if methodsPresent == 0 {
		method = authNone
		id = f.get("client_id")
		if id == "" {
			return storage.Client{}, oauth.New(oauth.InvalidClient, "client authentication is required: send client_id (public clients) or client credentials").WithStatus(http.StatusUnauthorized)
		}
	}
	if usedBasic && f.has("client_id") && f.get("client_id") != id && f.get("client_id") != altID {
		return storage.Client{}, basicFailure("client_id in the body does not match the Basic credentials")
	}

	c, err := s.lookupClient(ctx, id, s.clientIP(r))
	if errors.Is(err, storage.ErrNotFound) && altID != "" && altID != id {
		id = altID
		c, err = s.lookupClient(ctx, id, s.clientIP(r))
	}
	fail := func(desc string) error {
		if usedBasic {
			return basicFailure(desc)
		}
		return oauth.New(oauth.InvalidClient, "%s", desc).WithStatus(http.StatusUnauthorized)
	}
	if errors.Is(err, storage.ErrNotFound) {
		return storage.Client{}, fail("the client is unknown or its credentials are wrong")
	}
	if err != nil {
		return storage.Client{}, oauth.As(err)
	}
	if c.TokenEndpointAuthMethod != method {
		return storage.Client{}, fail(fmt.Sprintf("the client is registered for %s authentication but used %s", c.TokenEndpointAuthMethod, method))
	}
	if err := s.checkClientThrottle(ctx, c.ID); err != nil {
		return storage.Client{}, err
	}
	switch method {
	case authNone:
		return c, nil
	case authBasic, authPost:
		if c.SecretHash == "" {
			return storage.Client{}, fail("the client has no secret")
		}
		ok := token.Equal(token.Hash(secret), c.SecretHash)
		if !ok && usedBasic && altSec != secret {
			ok = token.Equal(token.Hash(altSec), c.SecretHash)
		}
		if !ok {
			if err := s.recordClientFailure(ctx, r, c.ID); err != nil {
				return storage.Client{}, err
			}
			return storage.Client{}, fail("the client is unknown or its credentials are wrong")
		}
		if !c.SecretExpiresAt.IsZero() && !s.now().Before(c.SecretExpiresAt) {
			return storage.Client{}, fail("the client secret has expired")
		}
		return c, nil
	case authPrivateJWT:
		if err := s.verifyAssertion(ctx, c, assertion); err != nil {
			if terr := s.recordClientFailure(ctx, r, c.ID); terr != nil {
				return storage.Client{}, terr
			}
			return storage.Client{}, err
		}
		return c, nil
	}
	return storage.Client{}, fail("unsupported client authentication method")
}

// verifyAssertion checks a private_key_jwt client assertion (RFC 7523 §3)
// and records its jti so it cannot be replayed.
func (s *Server) verifyAssertion(ctx context.Context, c storage.Client, assertion string) error {
	if c.JWKS == "" {
		return oauth.New(oauth.InvalidClient, "the client has no registered keys (jwks) to verify client_assertion").WithStatus(http.StatusUnauthorized)
	}
	verify := func(jwks string) (token.AssertionClaims, error) {
		return token.VerifyClientAssertion(assertion, []byte(jwks), token.AssertionOptions{
			ClientID:    c.ID,
			Audiences:   []string{s.endpoint(pathToken), s.opts.Issuer, s.endpoint(pathRevoke), s.endpoint(pathIntrospect)},
			Now:         s.now(),
			MaxLifetime: maxAssertionLifetime,
			Leeway:      30 * time.Second,
		})
	}
	claims, err := verify(c.JWKS)
	// Only while metadata documents are on and this one is still allowed:
	// a client stored before the operator turned them off (or narrowed
	// cimd.allow_domains) must not make the server fetch on its behalf.
	if errors.Is(err, token.ErrNoMatchingKey) && c.Origin == storage.OriginCIMD && c.JWKSURI != "" &&
		s.opts.Registration.CIMD.Enabled && s.cimdTrusted(c.ID) {
		// The client may have rotated its keys since its jwks_uri was
		// last fetched: fetch it again, once, within the limits.
		if jwks, ok := s.refreshClientJWKS(ctx, c); ok {
			claims, err = verify(jwks)
		}
	}
	if err != nil {
		return oauth.New(oauth.InvalidClient, "client_assertion was rejected: %s", err.Error()).WithStatus(http.StatusUnauthorized)
	}
	err = s.opts.Store.UseOnce(ctx, "jti:"+c.ID+":"+claims.JTI, claims.ExpiresAt.Add(30*time.Second))
	if errors.Is(err, storage.ErrAlreadyExists) {
		return oauth.New(oauth.InvalidClient, "client_assertion was already used (jti replay)").WithStatus(http.StatusUnauthorized)
	}
	if err != nil {
		return oauth.Internal(err)
	}
	return nil
}

// checkClientThrottle refuses authentication for a client whose secret was
// guessed wrongly too often in the window.
func (s *Server) checkClientThrottle(ctx context.Context, clientID string) error {
	if _, ok := s.unlocked.get(clientID); ok {
		return nil
	}
	n, reset, err := s.opts.Store.Failures(ctx, "client:"+clientID, s.now())
	if err != nil {
		return oauth.Internal(err)
	}
	if n >= s.opts.ClientAuthMaxFailures {
		return s.clientThrottled(reset)
	}
	if n == 0 {
		// Only a clean record is cached, and a failure here forgets it; a
		// failure at another replica is seen within cacheTTL.
		s.unlocked.put(clientID, struct{}{})
	}
	return nil
}

func (s *Server) clientThrottled(reset time.Time) *oauth.Error {
	retry := int(reset.Sub(s.now()).Seconds()) + 1
	return oauth.New(oauth.InvalidClient, "too many failed authentication attempts for this client; retry after %d seconds", retry).
		WithStatus(http.StatusTooManyRequests).WithHeader("Retry-After", strconv.Itoa(retry))
}

// recordClientFailure counts a failed authentication. Unlike logins, the
// attempt is counted after the check: client secrets are 256-bit random,
// so guessing is hopeless and the throttle is defence in depth, and the
// client-credentials hot path should not pay two writes per request. A
// failure that takes the count past the limit is answered 429 like the
// attempts after it, so parallel guesses see the limit too.
func (s *Server) recordClientFailure(ctx context.Context, r *http.Request, clientID string) error {
	s.unlocked.del(clientID)
	s.audit(ctx, r, storage.AuditEvent{Type: "client.auth_failure", ClientID: clientID, Outcome: "failure"})
	n, reset, err := s.opts.Store.AddFailure(ctx, "client:"+clientID, s.now(), s.opts.LoginWindow)
	if err != nil {
		s.log.ErrorContext(ctx, "record client failure", "cause", err)
		return nil
	}
	if n > s.opts.ClientAuthMaxFailures {
		return s.clientThrottled(reset)
	}
	return nil
}

func basicFailure(desc string) *oauth.Error {
	return oauth.New(oauth.InvalidClient, "%s", desc).WithStatus(http.StatusUnauthorized).
		WithHeader("WWW-Authenticate", `Basic realm="token", charset="UTF-8"`)
}

// parseBasic decodes Basic credentials. RFC 6749 §2.3.1 says id and secret
// are form-encoded before base64; some clients (the MCP TypeScript SDK)
// send them raw. It returns the form-decoded pair and the raw pair; the
// caller tries both.
func parseBasic(b64 string) (id, secret, rawID, rawSecret string, ok bool) {
	dec, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return "", "", "", "", false
	}
	if checkParams(url.Values{"": {string(dec)}}) != nil {
		return "", "", "", "", false // not UTF-8 text, or control characters
	}
	rawID, rawSecret, found := strings.Cut(string(dec), ":")
	if !found || rawID == "" {
		return "", "", "", "", false
	}
	id, err1 := url.QueryUnescape(rawID)
	secret, err2 := url.QueryUnescape(rawSecret)
	if err1 != nil || err2 != nil || checkParams(url.Values{"": {id, secret}}) != nil {
		// Not valid form encoding: the raw values are all there is.
		return rawID, rawSecret, rawID, rawSecret, true
	}
	return id, secret, rawID, rawSecret, true
}

// unverifiedSubject reads the sub claim of a JWT without verifying it, only
// to find which client's keys verify it.
func unverifiedSubject(jwt string) (string, error) {
	parts := strings.Split(jwt, ".")
	if len(parts) != 3 {
		return "", errors.New("not a compact JWS")
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return "", err
	}
	var claims struct {
		Sub string `json:"sub"`
	}
	if err := jsonUnmarshal(payload, &claims); err != nil || claims.Sub == "" {
		return "", errors.New("no sub claim")
	}
	return claims.Sub, nil
}

// lookupClient finds the client a request names; ip is the caller's
// address (s.clientIP), which a new metadata-document client counts
// against. A client_id that is a metadata-document URL (CIMD enabled)
// resolves through the document, unless the operator registered a client
// with that id. It returns storage.ErrNotFound for an unknown ordinary
// id, and *oauth.Error when a document cannot be used (invalid_client,
// 401) or a limit refuses a new one (temporarily_unavailable, 429 or 503).
// The client found is the request's client in its RequestNote.
func (s *Server) lookupClient(ctx context.Context, id, ip string) (storage.Client, error) {
	c, err := s.findClient(ctx, id, ip)
	if err == nil {
		noteClient(ctx, c.ID)
	}
	return c, err
}

// findClient is lookupClient without the note.
func (s *Server) findClient(ctx context.Context, id, ip string) (storage.Client, error) {
	if !s.opts.Registration.CIMD.Enabled || !clientreg.IsClientIDURL(id) {
		if c, ok := s.clients.get(id); ok {
			return c, nil
		}
		c, err := s.opts.Store.GetClient(ctx, id)
		if err == nil {
			s.clients.put(id, c)
		}
		return c, err
	}
	c, err := s.opts.Store.GetClient(ctx, id)
	if err == nil && c.Origin != storage.OriginCIMD {
		return c, nil // pre-registered by the operator (CIMD -01 §8)
	}
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		return storage.Client{}, err
	}
	var stored *storage.Client
	if err == nil {
		stored = &c
	}
	return s.resolveCIMD(ctx, id, ip, stored)
}
