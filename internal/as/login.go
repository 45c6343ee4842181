package as

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/gatehouse-mcp/gatehouse/internal/clientip"
	"github.com/gatehouse-mcp/gatehouse/internal/clientreg"
	"github.com/gatehouse-mcp/gatehouse/internal/oauth"
	"github.com/gatehouse-mcp/gatehouse/internal/password"
	"github.com/gatehouse-mcp/gatehouse/internal/storage"
	"github.com/gatehouse-mcp/gatehouse/internal/token"
	"github.com/gatehouse-mcp/gatehouse/internal/web"
)

const sessionCookie = "gh_session"

// Messages shown on the login page. The failure message never says which
// field was wrong, so it reveals nothing about which accounts exist.
const (
	msgBadLogin     = "The username or password is incorrect."
	msgTooManyTries = "Too many failed sign-in attempts. Try again in %s."
	msgDisabled     = "This account is disabled. Ask the administrator of this server."
	msgNoPasswords  = "Sign-in with a password is turned off on this server. Use one of the buttons below."
)

// currentSession returns the browser's valid session and its user, or
// nil and the zero User. A session is valid until it expires, unless its
// user was disabled or everything they held was revoked since they signed
// in (a password change, `gatehouse user revoke`): the user's epoch moved
// on. The user is read on every call, so a revocation on one replica ends
// the session on all; the pages that name the user use this read.
func (s *Server) currentSession(r *http.Request) (*storage.Session, storage.User) {
	ck, err := r.Cookie(s.opts.Pages.CookieName(sessionCookie))
	if err != nil || ck.Value == "" {
		return nil, storage.User{}
	}
	ctx := r.Context()
	sess, err := s.opts.Store.GetSession(ctx, token.Hash(ck.Value))
	if err != nil {
		return nil, storage.User{}
	}
	if !s.now().Before(sess.ExpiresAt) {
		return nil, storage.User{}
	}
	u, err := s.opts.Store.GetUser(ctx, sess.UserID)
	if err != nil || !u.DisabledAt.IsZero() || u.Epoch != sess.UserEpoch {
		return nil, storage.User{}
	}
	return &sess, u
}

// Why a form cannot continue, for the "For developers" section of the
// page that sends the user back to the app (startAgainPage).
const (
	msgRequestGone    = "the request field holds a pending authorization request that has expired or was already completed"
	msgNoRequest      = "the form has no request field"
	msgFormsOnly      = "this address accepts only POSTed forms"
	msgFormUnreadable = "the form body could not be read"
	msgFormExpired    = "the csrf_token field does not match the browser's CSRF cookie: the form expired, or was posted from another page or browser"
	msgOtherSession   = "this consent form was shown to another sign-in session than the browser's current one"
	msgClientChanged  = "the client is no longer registered with the redirect_uri of this request"
	msgNoDecision     = "the decision field must be allow or deny"
)

// loadPendingRequest opens the hidden "request" field's sealed pending
// authorization request, or shows why it cannot continue.
func (s *Server) loadPendingRequest(w http.ResponseWriter, r *http.Request) (pending, bool) {
	v := r.PostForm.Get("request")
	if v == "" {
		s.startAgainPage(w, r, http.StatusBadRequest, msgNoRequest)
		return pending{}, false
	}
	p, err := s.openPending(r.Context(), v)
	if errors.Is(err, errPendingInvalid) {
		s.startAgainPage(w, r, http.StatusBadRequest, msgRequestGone)
		return pending{}, false
	}
	if err != nil {
		s.serverErrorPage(w, r, err)
		return pending{}, false
	}
	return p, true
}

// msgAccountRequest: an account-page sign-in's request field posted to a
// form of the authorization flow.
const msgAccountRequest = "the request field is the account page's sign-in, not an authorization request"

// loadAuthorization is loadPendingRequest for the authorization flow's
// forms: the account page's sign-in request (pending.Account), which
// names no client, is refused.
func (s *Server) loadAuthorization(w http.ResponseWriter, r *http.Request) (pending, bool) {
	p, ok := s.loadPendingRequest(w, r)
	if ok && p.Account {
		s.startAgainPage(w, r, http.StatusBadRequest, msgAccountRequest)
		return pending{}, false
	}
	return p, ok
}

// sealedField is p sealed for a form's "request" field; on failure it
// shows the server error page and returns false.
func (s *Server) sealedField(w http.ResponseWriter, r *http.Request, p pending) (string, bool) {
	v, err := s.sealPending(p)
	if err != nil {
		s.serverErrorPage(w, r, err)
		return "", false
	}
	return v, true
}

// parseBrowserForm reads a POSTed browser form and checks its CSRF token.
func (s *Server) parseBrowserForm(w http.ResponseWriter, r *http.Request) bool {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		s.startAgainPage(w, r, http.StatusMethodNotAllowed, msgFormsOnly)
		return false
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		s.startAgainPage(w, r, http.StatusBadRequest, msgFormUnreadable)
		return false
	}
	if e := checkParams(r.PostForm); e != nil {
		s.startAgainPage(w, r, http.StatusBadRequest, e.Description)
		return false
	}
	if !s.opts.Pages.CheckCSRF(r) {
		s.startAgainPage(w, r, http.StatusForbidden, msgFormExpired)
		return false
	}
	return true
}

func (s *Server) clientName(ctx context.Context, clientID string) string {
	c, err := s.opts.Store.GetClient(ctx, clientID)
	if err != nil || c.Name == "" {
		return clientID
	}
	return c.Name
}

func (s *Server) showLogin(w http.ResponseWriter, r *http.Request, p pending, status int, username, msg string) {
	if s.delegateOnly() && msg == "" {
		// Nothing to choose on this page: straight to the SaaS.
		s.startDelegate(w, r, p)
		return
	}
	p.Session = ""
	sealed, ok := s.sealedField(w, r, p)
	if !ok {
		return
	}
	d := web.LoginData{
		Action:     s.base + pathLogin,
		CSRF:       s.opts.Pages.CSRFToken(w, r),
		Request:    sealed,
		Username:   username,
		Error:      msg,
		ClientName: s.clientName(r.Context(), p.ClientID),
		NoPassword: s.opts.DisableLocalLogin,
	}
	for _, u := range s.opts.Upstreams { // in configuration order
		d.Providers = append(d.Providers, web.LoginProvider{ID: u.Name, Name: s.upstreams[u.Name].cfg.DisplayName, Action: s.base + pathUpstream + u.Name})
	}
	if s.delegate != nil {
		d.Providers = append(d.Providers, s.delegateLoginProvider())
	}
	s.offerPasskey(r, &d)
	s.opts.Pages.Login(w, r, status, d)
}

// handleLogin checks a username and password (checkLogin) for a pending
// authorization request and continues it.
func (s *Server) handleLogin(w http.ResponseWriter, r *http.Request) {
	if !s.parseBrowserForm(w, r) {
		return
	}
	p, ok := s.loadAuthorization(w, r)
	if !ok {
		return
	}
	if s.opts.DisableLocalLogin {
		s.showLogin(w, r, p, http.StatusForbidden, "", msgNoPasswords)
		return
	}
	ctx := r.Context()
	username := strings.TrimSpace(r.PostForm.Get("username"))
	u, refused, err := s.checkLogin(w, r, username, r.PostForm.Get("password"), p.ClientID)
	if err != nil {
		s.serverErrorPage(w, r, err)
		return
	}
	if refused != nil {
		s.showLogin(w, r, p, refused.status, username, refused.msg)
		return
	}
	sess, err := s.startSession(w, r, u)
	if err != nil {
		s.serverErrorPage(w, r, err)
		return
	}
	s.audit(ctx, r, storage.AuditEvent{Type: "login.success", UserID: u.ID, ClientID: p.ClientID, Outcome: "success"})
	s.continueAuthorization(w, r, p, sess, u, true)
}

// loginRefusal is why checkLogin refused a sign-in: the status and the
// message for the sign-in page.
type loginRefusal struct {
	status int
	msg    string
}

// checkLogin checks a username and password for a sign-in page (the
// authorization flow's or the account page's; clientID is the client the
// sign-in is for, empty for the account page). Failures are counted per
// account and per client IP; past the limit further attempts are refused
// until the window ends (with Retry-After set on w), without checking the
// password at all. Every outcome but success is audited here; the caller
// audits login.success once the session exists.
func (s *Server) checkLogin(w http.ResponseWriter, r *http.Request, username, pw, clientID string) (storage.User, *loginRefusal, error) {
	ctx := r.Context()
	now := s.now()
	ip := s.clientIP(r)
	acctKey, ipKey := "login:user:"+strings.ToLower(username), "login:ip:"+clientip.Bucket(ip)
	// Each attempt is counted before its password is checked, so parallel
	// guesses cannot all slip under the limit between a check and a
	// count; a successful login refunds its count. The IP is counted
	// first: past its limit an anonymous caller cannot make a counter row
	// per made-up account name either (issue 11 F4).
	var reserved []string
	refund := func() {
		for _, k := range reserved {
			if err := s.opts.Store.RemoveFailure(ctx, k); err != nil {
				s.log.ErrorContext(ctx, "refund login attempt", "cause", err)
			}
		}
	}
	for _, lim := range []struct {
		key, what string
		max       int
	}{{ipKey, "ip", 4 * s.opts.LoginMaxFailures}, {acctKey, "account", s.opts.LoginMaxFailures}} {
		n, reset, err := s.opts.Store.AddFailure(ctx, lim.key, now, s.opts.LoginWindow)
		if err != nil {
			refund()
			return storage.User{}, nil, err
		}
		reserved = append(reserved, lim.key)
		if n > lim.max {
			refund()
			wait := reset.Sub(now)
			w.Header().Set("Retry-After", retryAfter(wait))
			s.audit(ctx, r, storage.AuditEvent{Type: "login.throttled", ClientID: clientID, Outcome: "denied", Detail: "too many failures for this " + lim.what})
			return storage.User{}, &loginRefusal{http.StatusTooManyRequests, fmt.Sprintf(msgTooManyTries, humanDuration(wait))}, nil
		}
	}
	u, err := s.opts.Store.GetUserByName(ctx, username)
	var valid bool
	switch {
	case errors.Is(err, storage.ErrNotFound):
		password.VerifyDummy(pw) // same cost as a real check: no user enumeration by timing
	case err != nil:
		refund()
		return storage.User{}, nil, err
	default:
		valid, err = password.Verify(pw, u.PasswordHash)
		if err != nil {
			s.log.ErrorContext(ctx, "stored password hash unreadable", "user_id", u.ID, "cause", err)
			valid = false
		}
	}
	if valid && !u.DisabledAt.IsZero() {
		// Only someone who knows the password learns that the account
		// is disabled; the attempt stays counted.
		s.audit(ctx, r, storage.AuditEvent{Type: "login.disabled", UserID: u.ID, ClientID: clientID, Outcome: "denied"})
		return storage.User{}, &loginRefusal{http.StatusForbidden, msgDisabled}, nil
	}
	if !valid {
		// The attempt was counted above: it stays counted.
		s.audit(ctx, r, storage.AuditEvent{Type: "login.failure", UserID: u.ID, ClientID: clientID, Outcome: "failure"})
		return storage.User{}, &loginRefusal{http.StatusUnauthorized, msgBadLogin}, nil
	}
	if err := s.opts.Store.ResetFailures(ctx, acctKey); err != nil {
		s.log.ErrorContext(ctx, "reset login failures", "cause", err)
	}
	reserved = []string{ipKey}
	refund()
	return u, nil, nil
}

// startSession creates a new session for u. The session id is always new,
// and any previous session of this browser is deleted: an id planted
// before login is never promoted (session fixation). It belongs to u's
// epoch as read when the password was checked: a revocation that happened
// since voids it at once.
func (s *Server) startSession(w http.ResponseWriter, r *http.Request, u storage.User) (*storage.Session, error) {
	name := s.opts.Pages.CookieName(sessionCookie)
	if ck, err := r.Cookie(name); err == nil && ck.Value != "" {
		if err := s.opts.Store.DeleteSession(r.Context(), token.Hash(ck.Value)); err != nil && !errors.Is(err, storage.ErrNotFound) {
			return nil, err
		}
	}
	id, err := s.newSecret()
	if err != nil {
		return nil, err
	}
	now := s.now()
	sess := storage.Session{IDHash: token.Hash(id), UserID: u.ID, UserEpoch: u.Epoch, AuthTime: now, CreatedAt: now, ExpiresAt: now.Add(s.opts.SessionTTL)}
	if err := s.opts.Store.CreateSession(r.Context(), sess); err != nil {
		return nil, err
	}
	s.opts.Pages.SetCookie(w, name, id, s.opts.SessionTTL)
	return &sess, nil
}

// showConsent shows the consent page for p to sess, whose user is u,
// with the requested scopes withheld from them (policyGate) listed as not
// available, and why.
func (s *Server) showConsent(w http.ResponseWriter, r *http.Request, p pending, c storage.Client, sess *storage.Session, u storage.User, withheld []withheldScope) {
	ctx := r.Context()
	p.Session = sess.IDHash
	sealed, ok := s.sealedField(w, r, p)
	if !ok {
		return
	}
	res, err := s.opts.Store.GetResource(ctx, p.Resource)
	if err != nil {
		s.serverErrorPage(w, r, err)
		return
	}
	var items []web.ScopeItem
	for _, name := range p.Scopes {
		item := web.ScopeItem{Name: name}
		if name == scopeOfflineAccess {
			item.Description = "Stay connected: keep access when you are not using the application, until you revoke it."
		}
		for _, sc := range res.Scopes {
			if sc.Name == name {
				item.Description, item.Tools = sc.Description, sc.Tools
			}
		}
		items = append(items, item)
	}
	var unavailable []web.UnavailableScope
	for _, ws := range withheld {
		unavailable = append(unavailable, web.UnavailableScope{Name: ws.scope, Reason: ws.String()})
	}
	publisher, clientURI, warnings := s.consentDetails(c)
	loopbackOnly := len(c.RedirectURIs) > 0 && !slices.ContainsFunc(c.RedirectURIs, func(uri string) bool { return !clientreg.IsLoopbackRedirect(uri) })
	s.opts.Pages.Consent(w, r, web.ConsentData{
		Action:       s.base + pathConsent,
		CSRF:         s.opts.Pages.CSRFToken(w, r),
		Request:      sealed,
		Username:     u.Username,
		ClientName:   orDefault(c.Name, c.ID),
		ClientID:     c.ID,
		RedirectURI:  p.RedirectURI, // the page names its host, or the app of a private-use scheme
		LoopbackOnly: loopbackOnly,
		Resource:     res.URL,
		ResourceName: orDefault(res.Name, res.URL),
		Scopes:       items,
		Unavailable:  unavailable,
		Publisher:    publisher,
		ClientURI:    clientURI,
		Warnings:     warnings,
	})
}

// handleConsent records the user's decision on the consent page.
func (s *Server) handleConsent(w http.ResponseWriter, r *http.Request) {
	if !s.parseBrowserForm(w, r) {
		return
	}
	p, ok := s.loadAuthorization(w, r)
	if !ok {
		return
	}
	ctx := r.Context()
	sess, _ := s.currentSession(r)
	if sess == nil {
		s.showLogin(w, r, p, http.StatusOK, "", "Your session ended. Please sign in again.")
		return
	}
	// The answer counts only from the session the page was shown to (one
	// that passed prompt=login's sign-in, if asked), and only while the
	// client still has the redirect URI the code would go to.
	if !token.Equal(p.Session, sess.IDHash) {
		s.startAgainPage(w, r, http.StatusBadRequest, msgOtherSession)
		return
	}
	if c, err := s.lookupClient(ctx, p.ClientID, s.clientIP(r)); err != nil || !clientreg.MatchRedirectURI(p.RedirectURI, c.RedirectURIs) {
		s.startAgainPage(w, r, http.StatusBadRequest, msgClientChanged)
		return
	}
	switch r.PostForm.Get("decision") {
	case "allow":
	case "deny":
		s.audit(ctx, r, storage.AuditEvent{Type: "consent.denied", UserID: sess.UserID, ClientID: p.ClientID, Resource: p.Resource, Outcome: "denied"})
		s.finishWithError(w, r, p, sess, true, oauth.New(oauth.AccessDenied, "the user declined the request"))
		return
	default:
		s.startAgainPage(w, r, http.StatusBadRequest, msgNoDecision)
		return
	}
	now := s.now()
	scopes := slices.Clone(p.Scopes)
	prev, err := s.opts.Store.GetConsent(ctx, sess.UserID, p.ClientID, p.Resource)
	created := now
	if err == nil && prev.UserEpoch == sess.UserEpoch { // an earlier epoch's consent is void
		created = prev.CreatedAt
		for _, sc := range prev.Scopes {
			if !slices.Contains(scopes, sc) {
				scopes = append(scopes, sc)
			}
		}
	} else if !errors.Is(err, storage.ErrNotFound) {
		s.serverErrorPage(w, r, err)
		return
	}
	slices.Sort(scopes)
	err = s.opts.Store.PutConsent(ctx, storage.Consent{UserID: sess.UserID, UserEpoch: sess.UserEpoch, ClientID: p.ClientID, Resource: p.Resource, Scopes: scopes, CreatedAt: created, UpdatedAt: now})
	if err != nil {
		s.serverErrorPage(w, r, err)
		return
	}
	s.audit(ctx, r, storage.AuditEvent{Type: "consent.given", UserID: sess.UserID, ClientID: p.ClientID, Resource: p.Resource, Outcome: "success", Detail: oauth.JoinScope(p.Scopes)})
	s.issueCode(w, r, p, sess, true)
}

// handleConsents is the old address of the consents list, kept so that
// old links and forms work: a GET goes to the account page, and a POST
// (the old per-resource revoke form) still revokes that one consent and
// its grants, then goes there too.
func (s *Server) handleConsents(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		http.Redirect(w, r, s.base+pathAccount, http.StatusSeeOther)
		return
	}
	if !s.parseBrowserForm(w, r) {
		return
	}
	sess, _, ok := s.accountSession(w, r)
	if !ok {
		return
	}
	// Only a consent or grant the user holds is revoked (and audited):
	// the form's fields name what to revoke, never whose.
	clientID, resource := r.PostForm.Get("client_id"), r.PostForm.Get("resource")
	held, err := s.heldResources(r.Context(), sess.UserID, clientID)
	if err != nil {
		s.serverErrorPage(w, r, err)
		return
	}
	if clientID == "" || !slices.Contains(held, resource) {
		s.nothingToRevoke(w, r)
		return
	}
	if err := s.revokeConsent(r.Context(), r, sess.UserID, clientID, resource); err != nil {
		s.serverErrorPage(w, r, err)
		return
	}
	http.Redirect(w, r, s.base+pathAccount+"?done=revoked", http.StatusSeeOther)
}

// handleLogout ends the browser session (POST with a CSRF token).
func (s *Server) handleLogout(w http.ResponseWriter, r *http.Request) {
	if !s.parseBrowserForm(w, r) {
		return
	}
	name := s.opts.Pages.CookieName(sessionCookie)
	if ck, err := r.Cookie(name); err == nil && ck.Value != "" {
		if err := s.opts.Store.DeleteSession(r.Context(), token.Hash(ck.Value)); err != nil && !errors.Is(err, storage.ErrNotFound) {
			s.serverErrorPage(w, r, err)
			return
		}
	}
	s.opts.Pages.ClearCookie(w, name)
	s.opts.Pages.Message(w, r, http.StatusOK, web.MessageData{Title: "Signed out", Body: "You are signed out."})
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// humanDuration formats a wait for people: "3 minutes", "40 seconds".
func humanDuration(d time.Duration) string {
	switch {
	case d >= 2*time.Minute:
		return fmt.Sprintf("%d minutes", int(d.Minutes()+0.5))
	case d > time.Second:
		return fmt.Sprintf("%d seconds", int(d.Seconds()+0.5))
	}
	return "a moment"
}

// consentDetails returns what the consent page says about where a client
// comes from (web.ConsentData Publisher, ClientURI, Warnings):
//   - a metadata-document client: its document's domain as the verified
//     publisher (CIMD proves control of that domain; AS-19), and its
//     client_uri when it is on that domain;
//   - a dynamically registered client: its self-declared client_uri and
//     a warning that nothing about it was verified;
//   - a static client: nothing.
//
// Whether the redirect goes to this computer (LoopbackOnly) is decided by
// showConsent from the redirect URIs, for every kind of client.
func (s *Server) consentDetails(c storage.Client) (publisher, clientURI string, warnings []string) {
	uri, _ := clientreg.DecodeFields(c.Metadata)["client_uri"].(string)
	switch c.Origin {
	case storage.OriginCIMD:
		publisher = clientreg.DocumentHost(c.ID)
		if u, err := url.Parse(uri); err == nil && uri != "" && clientreg.HostMatchesDomain(u.Hostname(), publisher) {
			clientURI = uri
		}
	case storage.OriginDCR:
		clientURI = uri
		warnings = append(warnings, "This application registered itself with this server automatically: its name and web address were not verified.")
	}
	return publisher, clientURI, warnings
}
