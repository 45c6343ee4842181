package as

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/gatehouse-mcp/gatehouse/internal/clientreg"
	"github.com/gatehouse-mcp/gatehouse/internal/oauth"
	"github.com/gatehouse-mcp/gatehouse/internal/storage"
	"github.com/gatehouse-mcp/gatehouse/internal/token"
	"github.com/gatehouse-mcp/gatehouse/internal/web"
)

// redirectError is an authorization error that may be sent to the
// client's redirect URI because client and redirect URI are verified.
type redirectError struct {
	redirectURI, state string
	err                *oauth.Error
	// dynamic marks a client that registered itself (DCR or a metadata
	// document): anyone may have chosen its redirect URIs.
	dynamic bool
}

// handleAuthorize is the authorization endpoint (OAuth 2.1 §4.1.1). Until
// client_id and redirect_uri are verified every error is an HTML page and
// never a redirect (RFC 9700 §4.11: no open redirector); after that, errors
// go back to the client with state and iss (RFC 9207), except that a
// self-registered client's errors are an HTML page too until the user has
// signed in.
func (s *Server) handleAuthorize(w http.ResponseWriter, r *http.Request) {
	var q url.Values
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		q = r.URL.Query()
	case http.MethodPost:
		r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
		if err := r.ParseForm(); err != nil {
			s.errorPage(w, r, http.StatusBadRequest, oauth.New(oauth.InvalidRequest, "the authorization request could not be read"))
			return
		}
		q = r.PostForm
	default:
		w.Header().Set("Allow", "GET, POST")
		s.errorPage(w, r, http.StatusMethodNotAllowed, oauth.New(oauth.InvalidRequest, "the authorization endpoint accepts GET and POST"))
		return
	}
	ar, rerr, perr := s.validateAuthorize(r.Context(), q)
	if perr != nil {
		s.errorPage(w, r, http.StatusBadRequest, perr)
		return
	}
	if rerr != nil {
		// A self-registered client's redirect URI may be an attacker's:
		// an erroneous request on purpose would turn this server into
		// an open redirector that lends it its name. Its errors are
		// redirected only to a signed-in user (or for prompt=none, the
		// silent exception), RFC 9700 §4.11.2 / OAuth 2.1 §7.12.2 (AS-13).
		if rerr.dynamic && s.currentSession(r) == nil && !slices.Contains(strings.Fields(q.Get("prompt")), "none") {
			s.errorPage(w, r, http.StatusBadRequest, rerr.err)
			return
		}
		s.redirectWithError(w, r, *rerr)
		return
	}
	sess := s.currentSession(r)
	if now, err := s.answersAtOnce(r.Context(), ar, sess); err != nil {
		s.serverErrorPage(w, r, err)
		return
	} else if now {
		// Signed in and consented: the code is issued in this response,
		// so the pending request is never stored.
		s.issueCode(w, r, ar, sess, false)
		return
	}
	if err := s.opts.Store.CreateAuthRequest(r.Context(), ar); err != nil {
		s.serverErrorPage(w, r, err)
		return
	}
	s.continueAuthorization(w, r, ar, sess)
}

// answersAtOnce reports whether continueAuthorization would issue the code
// straight away: a session that need not log in again and a remembered
// consent that covers the request, with no prompt asking for either.
func (s *Server) answersAtOnce(ctx context.Context, ar storage.AuthRequest, sess *storage.Session) (bool, error) {
	prompts := strings.Fields(ar.Prompt)
	if sess == nil || slices.Contains(prompts, "login") || slices.Contains(prompts, "consent") {
		return false, nil
	}
	return s.hasConsent(ctx, sess.UserID, ar)
}

// validateAuthorize checks an authorization request. It returns a pending
// request, or a redirectable error, or an error for the HTML page.
func (s *Server) validateAuthorize(ctx context.Context, q url.Values) (storage.AuthRequest, *redirectError, *oauth.Error) {
	for k, v := range q {
		if len(v) > 1 && k != "resource" {
			return storage.AuthRequest{}, nil, oauth.New(oauth.InvalidRequest, "the parameter %q is repeated; each parameter may appear only once", truncate(k, 64))
		}
	}
	if e := checkParams(q); e != nil {
		return storage.AuthRequest{}, nil, e
	}
	get := func(k string) string { return q.Get(k) }
	clientID := get("client_id")
	if clientID == "" {
		return storage.AuthRequest{}, nil, oauth.New(oauth.InvalidRequest, "client_id is missing from the authorization request")
	}
	c, err := s.lookupClient(ctx, clientID)
	if errors.Is(err, storage.ErrNotFound) {
		return storage.AuthRequest{}, nil, oauth.New(oauth.InvalidClient, "the client %q is not registered with this authorization server", truncate(clientID, 200))
	}
	if err != nil {
		return storage.AuthRequest{}, nil, oauth.As(err)
	}
	redirectURI := get("redirect_uri")
	if redirectURI == "" {
		return storage.AuthRequest{}, nil, oauth.New(oauth.InvalidRequest, "redirect_uri is missing from the authorization request")
	}
	if !clientreg.MatchRedirectURI(redirectURI, c.RedirectURIs) {
		return storage.AuthRequest{}, nil, oauth.New(oauth.InvalidRequest, "redirect_uri %q is not registered for this client", truncate(redirectURI, 200))
	}

	// From here on the redirect URI is trusted.
	state := get("state")
	dynamic := dynamicClient(c)
	fail := func(e *oauth.Error) (storage.AuthRequest, *redirectError, *oauth.Error) {
		return storage.AuthRequest{}, &redirectError{redirectURI: redirectURI, state: state, err: e, dynamic: dynamic}, nil
	}
	if rt := get("response_type"); rt != "code" {
		if rt == "" {
			return fail(oauth.New(oauth.InvalidRequest, "response_type is required and must be code"))
		}
		return fail(oauth.New(oauth.UnsupportedResponseType, "only response_type=code is supported"))
	}
	if !slices.Contains(c.GrantTypes, "authorization_code") {
		return fail(oauth.New(oauth.UnauthorizedClient, "the client is not registered for the authorization_code grant"))
	}
	if q.Has("request") || q.Has("request_uri") {
		return fail(oauth.New(oauth.InvalidRequest, "request objects (request, request_uri) are not supported"))
	}
	challenge, method := get("code_challenge"), get("code_challenge_method")
	if challenge == "" {
		return fail(oauth.New(oauth.InvalidRequest, "code_challenge is required: this server requires PKCE with S256"))
	}
	if method != "S256" {
		if method == "" || method == "plain" {
			return fail(oauth.New(oauth.InvalidRequest, "code_challenge_method must be S256; plain PKCE is not accepted"))
		}
		return fail(oauth.New(oauth.InvalidRequest, "code_challenge_method %q is not supported; use S256", truncate(method, 40)))
	}
	if !validChallenge(challenge) {
		return fail(oauth.New(oauth.InvalidRequest, "code_challenge must be the 43-character base64url S256 hash of the verifier"))
	}
	prompt := get("prompt")
	for _, p := range strings.Fields(prompt) {
		switch p {
		case "none", "login", "consent":
		default:
			return fail(oauth.New(oauth.InvalidRequest, "prompt %q is not supported; use none, login or consent", truncate(p, 40)))
		}
	}
	if strings.Contains(prompt, "none") && len(strings.Fields(prompt)) > 1 {
		return fail(oauth.New(oauth.InvalidRequest, "prompt=none cannot be combined with other prompt values"))
	}
	res, err := s.resolveResource(ctx, q["resource"])
	if err != nil {
		return fail(oauth.As(err))
	}
	requested, err := oauth.ParseScope(get("scope"))
	if err != nil {
		return fail(oauth.New(oauth.InvalidScope, "%s", err.Error()))
	}
	scopes, offline, err := s.resolveScopes(requested, res, c)
	if err != nil {
		return fail(oauth.As(err))
	}
	if offline {
		scopes = append(scopes, scopeOfflineAccess)
	}
	id, err := s.newID()
	if err != nil {
		return storage.AuthRequest{}, nil, oauth.Internal(err)
	}
	now := s.now()
	return storage.AuthRequest{
		ID: id, ClientID: c.ID, RedirectURI: redirectURI, State: state,
		Scopes: scopes, Resource: res.URL,
		CodeChallenge: challenge, CodeChallengeMethod: method,
		Nonce: get("nonce"), Prompt: prompt,
		CreatedAt: now, ExpiresAt: now.Add(s.opts.AuthRequestTTL),
	}, nil, nil
}

// continueAuthorization decides the next step of a validated request:
// log in, consent, or issue the code.
func (s *Server) continueAuthorization(w http.ResponseWriter, r *http.Request, ar storage.AuthRequest, sess *storage.Session) {
	ctx := r.Context()
	prompts := strings.Fields(ar.Prompt)
	if sess == nil || (slices.Contains(prompts, "login") && sess.AuthTime.Before(ar.CreatedAt)) {
		if slices.Contains(prompts, "none") {
			s.finishWithError(w, r, ar, oauth.New(oauth.LoginRequired, "the user is not signed in and prompt=none forbids asking"))
			return
		}
		s.showLogin(w, r, ar, http.StatusOK, "", "")
		return
	}
	c, err := s.opts.Store.GetClient(ctx, ar.ClientID)
	if err != nil {
		s.serverErrorPage(w, r, err)
		return
	}
	consented, err := s.hasConsent(ctx, sess.UserID, ar)
	if err != nil {
		s.serverErrorPage(w, r, err)
		return
	}
	if consented && !slices.Contains(prompts, "consent") {
		s.issueCode(w, r, ar, sess, true)
		return
	}
	if slices.Contains(prompts, "none") {
		s.finishWithError(w, r, ar, oauth.New(oauth.ConsentRequired, "the user has not consented and prompt=none forbids asking"))
		return
	}
	s.showConsent(w, r, ar, c, sess)
}

// hasConsent reports whether the user's remembered consent covers the
// request's scopes at its resource.
func (s *Server) hasConsent(ctx context.Context, userID string, ar storage.AuthRequest) (bool, error) {
	cons, err := s.opts.Store.GetConsent(ctx, userID, ar.ClientID, ar.Resource)
	if errors.Is(err, storage.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return subset(ar.Scopes, cons.Scopes), nil
}

// issueCode creates the grant and a single-use code, deletes the pending
// request if it was stored, and sends the browser back to the client.
func (s *Server) issueCode(w http.ResponseWriter, r *http.Request, ar storage.AuthRequest, sess *storage.Session, stored bool) {
	ctx := r.Context()
	code, err := s.newSecret()
	if err != nil {
		s.serverErrorPage(w, r, err)
		return
	}
	grantID, err := s.newID()
	if err != nil {
		s.serverErrorPage(w, r, err)
		return
	}
	now := s.now()
	scopes := slices.DeleteFunc(slices.Clone(ar.Scopes), func(s string) bool { return s == scopeOfflineAccess })
	// The grant exists from the moment the code does, so a replayed code
	// can always revoke what its first redemption issued, however the two
	// redemptions interleave.
	err = s.opts.Store.CreateGrant(ctx, storage.Grant{
		ID: grantID, ClientID: ar.ClientID, UserID: sess.UserID, Resource: ar.Resource,
		Scopes: scopes, AuthTime: sess.AuthTime, CreatedAt: now, ExpiresAt: now.Add(s.opts.GrantTTL),
	})
	if err != nil {
		s.serverErrorPage(w, r, err)
		return
	}
	err = s.opts.Store.CreateAuthCode(ctx, storage.AuthCode{
		Hash: token.Hash(code), ClientID: ar.ClientID, UserID: sess.UserID,
		RedirectURI: ar.RedirectURI, Scopes: scopes, Resource: ar.Resource,
		CodeChallenge: ar.CodeChallenge, CodeChallengeMethod: ar.CodeChallengeMethod,
		Nonce: ar.Nonce, GrantID: grantID, AuthTime: sess.AuthTime,
		CreatedAt: now, ExpiresAt: now.Add(s.opts.CodeTTL),
	})
	if err != nil {
		s.serverErrorPage(w, r, err)
		return
	}
	if stored {
		if err := s.opts.Store.DeleteAuthRequest(ctx, ar.ID); err != nil && !errors.Is(err, storage.ErrNotFound) {
			s.log.ErrorContext(ctx, "delete auth request", "cause", err)
		}
	}
	if err := s.auditIssued(ctx, r, storage.AuditEvent{Type: "authorize.code_issued", UserID: sess.UserID, ClientID: ar.ClientID, Resource: ar.Resource, Outcome: "success", Detail: oauth.JoinScope(scopes)}); err != nil {
		s.serverErrorPage(w, r, err)
		return
	}
	s.redirect(w, r, ar.RedirectURI, url.Values{"code": {code}, "state": {ar.State}})
}

// finishWithError ends a pending request with an error sent to the client.
func (s *Server) finishWithError(w http.ResponseWriter, r *http.Request, ar storage.AuthRequest, e *oauth.Error) {
	if err := s.opts.Store.DeleteAuthRequest(r.Context(), ar.ID); err != nil && !errors.Is(err, storage.ErrNotFound) {
		s.log.ErrorContext(r.Context(), "delete auth request", "cause", err)
	}
	s.redirectWithError(w, r, redirectError{redirectURI: ar.RedirectURI, state: ar.State, err: e})
}

func (s *Server) redirectWithError(w http.ResponseWriter, r *http.Request, e redirectError) {
	v := url.Values{"error": {string(e.err.Code)}, "state": {e.state}}
	if e.err.Description != "" {
		v.Set("error_description", oauth.SafeText(e.err.Description)) // RFC 6749 §4.1.2.1
	}
	s.redirect(w, r, e.redirectURI, v)
}

// redirect sends the browser to the client's redirect URI with params and
// iss (RFC 9207 §2: in every authorization response, errors included).
// Existing query parameters of the redirect URI are kept (OAuth 2.1 §4.1.2).
func (s *Server) redirect(w http.ResponseWriter, r *http.Request, redirectURI string, params url.Values) {
	u, err := url.Parse(redirectURI)
	if err != nil {
		s.serverErrorPage(w, r, err)
		return
	}
	q := u.Query()
	for k, vs := range params {
		if len(vs) == 1 && vs[0] == "" && k == "state" {
			continue // no state was sent: none is returned
		}
		q[k] = vs
	}
	q.Set("iss", s.opts.Issuer)
	u.RawQuery = q.Encode()
	status := http.StatusFound
	if r.Method == http.MethodPost {
		status = http.StatusSeeOther
	}
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, u.String(), status)
}

// errorPage shows an authorization error that must not be redirected.
func (s *Server) errorPage(w http.ResponseWriter, r *http.Request, status int, e *oauth.Error) {
	if e.Code == oauth.ServerError {
		s.serverErrorPage(w, r, e.Cause)
		return
	}
	s.opts.Pages.Error(w, r, status, web.ErrorData{
		Title:       "This sign-in request cannot be completed",
		Description: e.Description,
		Code:        string(e.Code),
	})
}

func (s *Server) serverErrorPage(w http.ResponseWriter, r *http.Request, cause error) {
	s.log.ErrorContext(r.Context(), "browser request failed", "path", r.URL.Path, "cause", cause)
	s.opts.Pages.Error(w, r, http.StatusInternalServerError, web.ErrorData{
		Title:       "Something went wrong",
		Description: "The server hit an internal error. Return to the application and try again.",
		Code:        string(oauth.ServerError),
	})
}
