package as

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strconv"
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
// self-registered client's errors — prompt=none's login_required among
// them — are an HTML page too until the user has signed in. Nothing is
// stored for a request until a signed-in user completes it: the pending
// request travels sealed in the forms (pending.go).
func (s *Server) handleAuthorize(w http.ResponseWriter, r *http.Request) {
	var q url.Values
	switch r.Method {
	case http.MethodGet:
		q = r.URL.Query()
	case http.MethodPost:
		r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
		if err := r.ParseForm(); err != nil {
			s.errorPage(w, r, http.StatusBadRequest, oauth.New(oauth.InvalidRequest, "the authorization request could not be read"))
			return
		}
		q = r.PostForm
	default:
		// HEAD included: a HEAD that issued a code (GET's side effect)
		// would hand it to whoever sent it without a body to show it in.
		w.Header().Set("Allow", "GET, POST")
		s.errorPage(w, r, http.StatusMethodNotAllowed, oauth.New(oauth.InvalidRequest, "the authorization endpoint accepts GET and POST"))
		return
	}
	sess, u := s.currentSession(r)
	p, rerr, perr := s.validateAuthorize(r.Context(), s.clientIP(r), q)
	if perr != nil {
		s.errorPage(w, r, http.StatusBadRequest, perr)
		return
	}
	if rerr != nil {
		s.failAuthorization(w, r, *rerr, sess)
		return
	}
	s.continueAuthorization(w, r, p, sess, u, false)
}

// failAuthorization ends an authorization request with an error, sent to
// the client's redirect URI, except for a self-registered client (DCR or a
// metadata document) whose user has not signed in: its redirect URI may be
// an attacker's, and an erroneous request on purpose would make this
// server an open redirector that lends it its name (RFC 9700 §4.11.2,
// OAuth 2.1 §7.12.2, AS-13). That holds for prompt=none too (issue 11
// F3): its errors are a page like any other.
func (s *Server) failAuthorization(w http.ResponseWriter, r *http.Request, e redirectError, sess *storage.Session) {
	if e.dynamic && sess == nil {
		s.errorPage(w, r, http.StatusBadRequest, e.err)
		return
	}
	s.redirectWithError(w, r, e)
}

// validateAuthorize checks an authorization request from the address ip.
// It returns a pending request, or a redirectable error, or an error for
// the HTML page.
func (s *Server) validateAuthorize(ctx context.Context, ip string, q url.Values) (pending, *redirectError, *oauth.Error) {
	for k, v := range q {
		if len(v) > 1 && k != "resource" {
			return pending{}, nil, oauth.New(oauth.InvalidRequest, "the parameter %q is repeated; each parameter may appear only once", truncate(k, 64))
		}
	}
	if e := checkParams(q); e != nil {
		return pending{}, nil, e
	}
	get := func(k string) string { return q.Get(k) }
	if e := checkStateLengths(get("state"), get("nonce")); e != nil {
		return pending{}, nil, e
	}
	clientID := get("client_id")
	if clientID == "" {
		return pending{}, nil, oauth.New(oauth.InvalidRequest, "client_id is missing from the authorization request")
	}
	c, err := s.lookupClient(ctx, clientID, ip)
	if errors.Is(err, storage.ErrNotFound) {
		return pending{}, nil, oauth.New(oauth.InvalidClient, "the client %q is not registered with this authorization server", truncate(clientID, 200))
	}
	if err != nil {
		return pending{}, nil, oauth.As(err)
	}
	redirectURI := get("redirect_uri")
	if redirectURI == "" {
		return pending{}, nil, oauth.New(oauth.InvalidRequest, "redirect_uri is missing from the authorization request")
	}
	if !clientreg.MatchRedirectURI(redirectURI, c.RedirectURIs) {
		return pending{}, nil, oauth.New(oauth.InvalidRequest, "redirect_uri %q is not registered for this client", truncate(redirectURI, 200))
	}

	// From here on the redirect URI is trusted.
	state := get("state")
	dynamic := dynamicClient(c)
	fail := func(e *oauth.Error) (pending, *redirectError, *oauth.Error) {
		return pending{}, &redirectError{redirectURI: redirectURI, state: state, err: e, dynamic: dynamic}, nil
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
	maxAge := get("max_age")
	if _, err := strconv.ParseUint(maxAge, 10, 31); maxAge != "" && err != nil {
		return fail(oauth.New(oauth.InvalidRequest, "max_age must be a number of seconds"))
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
		return pending{}, nil, oauth.Internal(err)
	}
	now := s.now()
	return pending{
		ID: id, ClientID: c.ID, RedirectURI: redirectURI, State: state,
		Scopes: scopes, Resource: res.URL,
		CodeChallenge: challenge, CodeChallengeMethod: method,
		Nonce: get("nonce"), Prompt: prompt, MaxAge: maxAge, Dynamic: dynamic, Defaulted: len(requested) == 0,
		CreatedAt: now, ExpiresAt: now.Add(s.opts.AuthRequestTTL),
	}, nil, nil
}

// continueAuthorization decides the next step of a validated request:
// log in, consent, or issue the code. sealed says p came back from a form
// (login, consent) rather than straight from /authorize: ending it then
// marks it completed. u is sess's user (zero without a session), named on
// the consent page. Signed in and consented, the code is issued in this
// response; the client row is read only for the consent page (a client
// whose row is gone has no consents either: they are deleted with it).
func (s *Server) continueAuthorization(w http.ResponseWriter, r *http.Request, p pending, sess *storage.Session, u storage.User, sealed bool) {
	ctx := r.Context()
	prompts := strings.Fields(p.Prompt)
	if sess == nil || (slices.Contains(prompts, "login") && sess.AuthTime.Before(p.CreatedAt)) {
		if slices.Contains(prompts, "none") {
			s.finishWithError(w, r, p, sess, sealed, oauth.New(oauth.LoginRequired, "the user is not signed in and prompt=none forbids asking"))
			return
		}
		s.showLogin(w, r, p, http.StatusOK, "", "")
		return
	}
	// Scopes the user may not have are withheld before anything else
	// looks at them: neither a remembered consent nor the consent page
	// can pass one on.
	p, withheld, ok := s.policyGate(w, r, p, sess, sealed)
	if !ok {
		return
	}
	consented, err := s.hasConsent(ctx, sess, p)
	if err != nil {
		s.serverErrorPage(w, r, err)
		return
	}
	if consented && !slices.Contains(prompts, "consent") {
		s.issueCode(w, r, p, sess, sealed)
		return
	}
	if slices.Contains(prompts, "none") {
		s.finishWithError(w, r, p, sess, sealed, oauth.New(oauth.ConsentRequired, "the user has not consented and prompt=none forbids asking"))
		return
	}
	c, err := s.opts.Store.GetClient(ctx, p.ClientID)
	if err != nil {
		s.serverErrorPage(w, r, err)
		return
	}
	s.showConsent(w, r, p, c, sess, u, withheld)
}

// hasConsent reports whether the session's user's remembered consent
// covers the request's scopes at its resource. A consent given in an
// earlier epoch of the user (one a request racing a revocation wrote after
// it) does not count.
func (s *Server) hasConsent(ctx context.Context, sess *storage.Session, p pending) (bool, error) {
	cons, err := s.opts.Store.GetConsent(ctx, sess.UserID, p.ClientID, p.Resource)
	if errors.Is(err, storage.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return cons.UserEpoch == sess.UserEpoch && subset(p.Scopes, cons.Scopes), nil
}

// issueCode creates the grant and a single-use code and sends the browser
// back to the client. A request that came back sealed from a form is
// marked completed first, so the form cannot be sent again for a second
// code.
func (s *Server) issueCode(w http.ResponseWriter, r *http.Request, p pending, sess *storage.Session, sealed bool) {
	ctx := r.Context()
	if sealed && !s.markCompleted(w, r, p) {
		return
	}
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
	// The scope policies once more, at the last moment: a group taken
	// away while the consent page was open counts.
	scopes, withheld, err := s.userScopes(ctx, sess.UserID, p.Resource, p.Scopes)
	if err != nil {
		s.serverErrorPage(w, r, err)
		return
	}
	if len(withheld) > 0 {
		s.audit(ctx, r, storage.AuditEvent{Type: "scope.withheld", UserID: sess.UserID, ClientID: p.ClientID, Resource: p.Resource, Outcome: "denied", Detail: reasons(withheld)})
	}
	now := s.now()
	scopes = slices.DeleteFunc(scopes, func(s string) bool { return s == scopeOfflineAccess })
	// The grant exists from the moment the code does, so a replayed code
	// can always revoke what its first redemption issued, however the two
	// redemptions interleave.
	err = s.opts.Store.CreateGrant(ctx, storage.Grant{
		ID: grantID, ClientID: p.ClientID, UserID: sess.UserID, UserEpoch: sess.UserEpoch, Resource: p.Resource,
		Scopes: scopes, AuthTime: sess.AuthTime, CreatedAt: now, ExpiresAt: now.Add(s.opts.GrantTTL),
	})
	if err != nil {
		s.serverErrorPage(w, r, err)
		return
	}
	err = s.opts.Store.CreateAuthCode(ctx, storage.AuthCode{
		Hash: token.Hash(code), ClientID: p.ClientID, UserID: sess.UserID,
		RedirectURI: p.RedirectURI, Scopes: scopes, Resource: p.Resource,
		CodeChallenge: p.CodeChallenge, CodeChallengeMethod: p.CodeChallengeMethod,
		Nonce: p.Nonce, GrantID: grantID, AuthTime: sess.AuthTime,
		CreatedAt: now, ExpiresAt: now.Add(s.opts.CodeTTL),
	})
	if err != nil {
		s.serverErrorPage(w, r, err)
		return
	}
	if err := s.auditIssued(ctx, r, storage.AuditEvent{Type: "authorize.code_issued", UserID: sess.UserID, ClientID: p.ClientID, Resource: p.Resource, Outcome: "success", Detail: oauth.JoinScope(scopes)}); err != nil {
		s.serverErrorPage(w, r, err)
		return
	}
	s.redirect(w, r, p.RedirectURI, url.Values{"code": {code}, "state": {p.State}})
}

// markCompleted marks a sealed request completed, or shows why it cannot
// be (already completed) and returns false.
func (s *Server) markCompleted(w http.ResponseWriter, r *http.Request, p pending) bool {
	switch err := s.complete(r.Context(), p); {
	case errors.Is(err, errPendingInvalid):
		s.startAgainPage(w, r, http.StatusBadRequest, msgRequestGone)
		return false
	case err != nil:
		s.serverErrorPage(w, r, err)
		return false
	}
	return true
}

// finishWithError ends a request with an error for the client (see
// failAuthorization for when that is a page instead).
func (s *Server) finishWithError(w http.ResponseWriter, r *http.Request, p pending, sess *storage.Session, sealed bool, e *oauth.Error) {
	if sealed && !s.markCompleted(w, r, p) {
		return
	}
	s.failAuthorization(w, r, redirectError{redirectURI: p.RedirectURI, state: p.State, err: e, dynamic: p.Dynamic}, sess)
}

func (s *Server) redirectWithError(w http.ResponseWriter, r *http.Request, e redirectError) {
	noteError(r.Context(), e.err.Code)
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

// What the error pages tell the user to do. The technical reason goes
// under "For developers" (web.ErrorData.Detail).
const (
	titleRefused     = "The app's sign-in request was refused"
	nextStepRefused  = "Go back to the app and try again. If you see this page again, contact the app's developer: the details below tell them what to fix."
	titleStartAgain  = "This sign-in page can no longer be used"
	nextStepAgain    = "Go back to the app and sign in again. A sign-in page works only once, for a few minutes, in the browser that opened it."
	titleServerError = "Something went wrong"
	nextStepServer   = "This server could not finish your request. Go back to the app and try again in a moment. If it keeps happening, contact the administrator of this server."
)

// errorPage shows an authorization error that must not be redirected: the
// app sent a request this server refuses, so the user is sent back to the
// app, or to its developer, with e's description kept for the developer.
func (s *Server) errorPage(w http.ResponseWriter, r *http.Request, status int, e *oauth.Error) {
	noteError(r.Context(), e.Code)
	if e.Code == oauth.ServerError {
		s.serverErrorPage(w, r, e.Cause)
		return
	}
	s.opts.Pages.Error(w, r, status, web.ErrorData{
		Title:       titleRefused,
		Description: nextStepRefused,
		Detail:      e.Description,
		Code:        string(e.Code),
	})
}

// startAgainPage shows that a sign-in or consent form cannot continue
// (expired, already used, posted from elsewhere): nothing is wrong with
// the app, and the user starts again from it. detail says, for the
// developer, which check failed.
func (s *Server) startAgainPage(w http.ResponseWriter, r *http.Request, status int, detail string) {
	s.opts.Pages.Error(w, r, status, web.ErrorData{
		Title:       titleStartAgain,
		Description: nextStepAgain,
		Detail:      detail,
		Code:        string(oauth.InvalidRequest),
	})
}

// serverErrorPage logs cause and shows a page that reveals nothing of it.
func (s *Server) serverErrorPage(w http.ResponseWriter, r *http.Request, cause error) {
	noteError(r.Context(), oauth.ServerError)
	s.log.ErrorContext(r.Context(), "browser request failed", "path", r.URL.Path, "cause", cause)
	s.opts.Pages.Error(w, r, http.StatusInternalServerError, web.ErrorData{
		Title:       titleServerError,
		Description: nextStepServer,
		Code:        string(oauth.ServerError),
	})
}
