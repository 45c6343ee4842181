package as

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gatehouse-mcp/gatehouse/internal/password"
	"github.com/gatehouse-mcp/gatehouse/internal/storage"
	"github.com/gatehouse-mcp/gatehouse/internal/web"
)

// The account pages (issue 16 item 2): a user signs in at pathAccountLogin
// and manages, at pathAccount, the clients connected to their account,
// their password and their sessions. Every page works only on the
// signed-in session's own user: no form names a user, so no request can
// reach another user's data. Every POST carries the CSRF token.
const (
	pathAccount         = "/account"
	pathAccountLogin    = "/account/login"
	pathAccountRevoke   = "/account/revoke"
	pathAccountPassword = "/account/password"
	pathAccountSessions = "/account/sessions"
)

// AuditDemoToolCall is the audit event type of a tool call to the demo
// MCP server of `gatehouse dev`, which records them like the gateway.
const AuditDemoToolCall = "demo.tool_call"

// ToolCallEvents are the audit event types of tool calls the account page
// lists as a client's last tool calls: the gateway's (gateway.
// AuditToolCall; a test in cmd/gatehouse keeps them equal, so that this
// package need not import the gateway) and the demo MCP server's. A
// server protected only by the rs library reports nothing to the
// authorization server.
var ToolCallEvents = []string{"gateway.tool_call", AuditDemoToolCall}

// maxToolCalls is how many of a client's newest tool calls the page shows.
const maxToolCalls = 5

// Notices after a successful POST, chosen by a fixed key in the redirect
// (?done=…), so that nothing a request carries is echoed on the page.
var accountNotices = map[string]string{
	"revoked":         "Access was revoked. The application has to ask you again to connect.",
	"password":        "Your password was changed. You were signed out everywhere else, and every connected application was revoked.",
	"sessions":        "You were signed out of every other session.",
	"passkey-added":   "Your passkey was added. You can sign in with it instead of your password.",
	"passkey-renamed": "Your passkey was renamed.",
	"passkey-removed": "Your passkey was removed. It cannot sign in to this account any more.",
}

// Messages of the password form.
const (
	msgWrongCurrent    = "Your current password is incorrect."
	msgPasswordsDiffer = "The two new passwords are not the same."
)

// handleAccountLogin shows the account sign-in page (GET) and checks a
// username and password (POST) like the authorization flow's sign-in:
// the same throttle, audit events and session cookie. It then lands on
// the account page.
func (s *Server) handleAccountLogin(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		if sess, _ := s.currentSession(r); sess != nil {
			http.Redirect(w, r, s.base+pathAccount, http.StatusSeeOther)
			return
		}
		s.showAccountLogin(w, r, http.StatusOK, "", "")
		return
	}
	if !s.parseBrowserForm(w, r) {
		return
	}
	if s.opts.DisableLocalLogin {
		s.showAccountLogin(w, r, http.StatusForbidden, "", msgNoPasswords)
		return
	}
	ctx := r.Context()
	username := strings.TrimSpace(r.PostForm.Get("username"))
	u, refused, err := s.checkLogin(w, r, username, r.PostForm.Get("password"), "")
	if err != nil {
		s.serverErrorPage(w, r, err)
		return
	}
	if refused != nil {
		s.showAccountLogin(w, r, refused.status, username, refused.msg)
		return
	}
	if _, err := s.startSession(w, r, u); err != nil {
		s.serverErrorPage(w, r, err)
		return
	}
	s.audit(ctx, r, storage.AuditEvent{Type: "login.success", UserID: u.ID, Outcome: "success", Detail: "account page"})
	http.Redirect(w, r, s.base+pathAccount, http.StatusSeeOther)
}

// showAccountLogin writes the account sign-in page: the password form
// and the upstream OpenID providers' buttons, whose request field is a
// sealed pending request marked Account, so that the provider's callback
// lands on /account. Delegated login is not offered: the SaaS's page
// answers an authorization request.
func (s *Server) showAccountLogin(w http.ResponseWriter, r *http.Request, status int, username, msg string) {
	d := web.LoginData{
		Action:     s.base + pathAccountLogin,
		CSRF:       s.opts.Pages.CSRFToken(w, r),
		Username:   username,
		Error:      msg,
		NoPassword: s.opts.DisableLocalLogin,
	}
	if len(s.opts.Upstreams) > 0 {
		id, err := s.newID()
		if err != nil {
			s.serverErrorPage(w, r, err)
			return
		}
		now := s.now()
		sealed, ok := s.sealedField(w, r, pending{ID: id, Account: true, CreatedAt: now, ExpiresAt: now.Add(s.opts.AuthRequestTTL)})
		if !ok {
			return
		}
		d.Request = sealed
		for _, u := range s.opts.Upstreams { // in configuration order
			d.Providers = append(d.Providers, web.LoginProvider{ID: u.Name, Name: s.upstreams[u.Name].cfg.DisplayName, Action: s.base + pathUpstream + u.Name})
		}
	}
	s.offerPasskey(r, &d)
	if d.NoPassword && len(d.Providers) == 0 && d.PasskeyAction == "" && d.Error == "" {
		d.Error = "Sign-in with a password is turned off on this server, and the account page has no other sign-in."
	}
	s.opts.Pages.Login(w, r, status, d)
}

// accountSession returns the signed-in session and its user, or sends a
// browser without one to the account sign-in page: a GET by redirect, a
// POST with 401 and the sign-in page (its form is gone with the session).
func (s *Server) accountSession(w http.ResponseWriter, r *http.Request) (*storage.Session, storage.User, bool) {
	sess, u := s.currentSession(r)
	if sess != nil {
		return sess, u, true
	}
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		http.Redirect(w, r, s.base+pathAccountLogin, http.StatusSeeOther)
	} else {
		s.showAccountLogin(w, r, http.StatusUnauthorized, "", "Your session ended. Please sign in again.")
	}
	return nil, storage.User{}, false
}

// handleAccount shows the account page.
func (s *Server) handleAccount(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		s.startAgainPage(w, r, http.StatusMethodNotAllowed, "this address accepts only GET; its forms post to their own addresses")
		return
	}
	sess, u, ok := s.accountSession(w, r)
	if !ok {
		return
	}
	s.showAccount(w, r, sess, u, http.StatusOK, accountNotices[r.URL.Query().Get("done")], "")
}

func (s *Server) showAccount(w http.ResponseWriter, r *http.Request, sess *storage.Session, u storage.User, status int, notice, errMsg string) {
	s.showAccountPage(w, r, sess, u, status, notice, errMsg, "")
}

// showAccountPage is showAccount with an error for the Passkeys section.
func (s *Server) showAccountPage(w http.ResponseWriter, r *http.Request, sess *storage.Session, u storage.User, status int, notice, errMsg, passkeyErr string) {
	agents, err := s.connectedAgents(r.Context(), sess.UserID, u.Epoch)
	if err != nil {
		s.serverErrorPage(w, r, err)
		return
	}
	d := web.AccountData{
		CSRF:           s.opts.Pages.CSRFToken(w, r),
		Username:       u.Username,
		Notice:         notice,
		Error:          errMsg,
		RevokeAction:   s.base + pathAccountRevoke,
		PasswordAction: s.base + pathAccountPassword,
		SessionsAction: s.base + pathAccountSessions,
		SignOutAction:  s.base + pathLogout,
		PasswordRules:  password.Rules,
		NoPassword:     s.opts.DisableLocalLogin || u.PasswordHash == "",
		AccessTokenTTL: humanDuration(s.opts.AccessTokenTTL),
		Agents:         agents,
		PasskeyError:   passkeyErr,
	}
	if s.passkeyOrigin(r) {
		ps, err := s.opts.Store.ListPasskeys(r.Context(), u.ID)
		if err != nil {
			s.serverErrorPage(w, r, err)
			return
		}
		for _, p := range ps {
			d.Passkeys = append(d.Passkeys, web.PasskeyItem{ID: p.ID, Name: p.Name, Created: p.CreatedAt, LastUsed: p.LastUsedAt})
		}
		d.PasskeyAddAction = s.base + pathAccountPasskeyAdd
		d.PasskeyOptionsAction = s.base + pathAccountPasskeyOptions
		d.PasskeyRenameAction = s.base + pathAccountPasskeyRename
		d.PasskeyRemoveAction = s.base + pathAccountPasskeyRemove
	}
	s.opts.Pages.Account(w, r, status, d)
}

// connectedAgents lists the clients with access to userID's data: one
// entry per client holding a consent of the user's current epoch or a
// live grant of it, ordered by client id.
func (s *Server) connectedAgents(ctx context.Context, userID string, epoch int64) ([]web.AgentItem, error) {
	cons, err := s.opts.Store.ListConsents(ctx, userID)
	if err != nil {
		return nil, err
	}
	grants, err := s.opts.Store.ListUserGrants(ctx, userID, s.now())
	if err != nil {
		return nil, err
	}
	byClient := map[string]*web.AgentItem{}
	var order []string
	agent := func(clientID string) *web.AgentItem {
		a := byClient[clientID]
		if a == nil {
			a = &web.AgentItem{ClientID: clientID}
			byClient[clientID] = a
			order = append(order, clientID)
		}
		return a
	}
	addScopes := func(a *web.AgentItem, resource string, scopes []string) {
		i := slices.IndexFunc(a.Resources, func(r web.AgentResource) bool { return r.Resource == resource })
		if i < 0 {
			a.Resources = append(a.Resources, web.AgentResource{Resource: resource})
			i = len(a.Resources) - 1
		}
		for _, sc := range scopes {
			if !slices.Contains(a.Resources[i].Scopes, sc) {
				a.Resources[i].Scopes = append(a.Resources[i].Scopes, sc)
			}
		}
	}
	earliest := func(t *time.Time, v time.Time) {
		if !v.IsZero() && (t.IsZero() || v.Before(*t)) {
			*t = v
		}
	}
	latest := func(t *time.Time, v time.Time) {
		if v.After(*t) {
			*t = v
		}
	}
	for _, c := range cons {
		if c.UserEpoch != epoch { // void since a password change or revocation
			continue
		}
		a := agent(c.ClientID)
		addScopes(a, c.Resource, c.Scopes)
		earliest(&a.Granted, c.CreatedAt)
		latest(&a.Updated, c.UpdatedAt)
	}
	now := s.now()
	for _, g := range grants {
		if g.UserEpoch != epoch {
			continue
		}
		a := agent(g.ClientID)
		addScopes(a, g.Resource, g.Scopes)
		earliest(&a.Granted, g.CreatedAt)
		latest(&a.Updated, g.CreatedAt)
		latest(&a.LastUsed, g.LastUsed)
		// An access token is issued with the grant and at each refresh
		// (a new refresh token): the newest of them expires last.
		latest(&a.AccessUntil, later(g.CreatedAt, g.LastUsed).Add(s.opts.AccessTokenTTL))
	}
	slices.Sort(order)
	items := make([]web.AgentItem, 0, len(order))
	for _, id := range order {
		a := byClient[id]
		if !a.AccessUntil.After(now) {
			a.AccessUntil = time.Time{}
		}
		for i := range a.Resources {
			slices.Sort(a.Resources[i].Scopes)
			if res, err := s.opts.Store.GetResource(ctx, a.Resources[i].Resource); err == nil {
				a.Resources[i].Name = res.Name
			}
		}
		if c, err := s.opts.Store.GetClient(ctx, id); err == nil {
			a.ClientName = c.Name
			switch c.Origin {
			case storage.OriginCIMD:
				a.Publisher, _, _ = s.consentDetails(c)
			case storage.OriginStatic:
				a.Static = true
			}
		}
		calls, err := s.lastToolCalls(ctx, userID, id)
		if err != nil {
			return nil, err
		}
		a.ToolCalls = calls
		items = append(items, *a)
	}
	return items, nil
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// lastToolCalls returns the newest tool calls of userID through clientID
// from the audit log, newest first: the newest few of each ToolCallEvents
// type (an index read each), merged.
func (s *Server) lastToolCalls(ctx context.Context, userID, clientID string) ([]web.ToolCallItem, error) {
	var events []storage.AuditEvent
	for _, typ := range ToolCallEvents {
		es, err := s.opts.Store.QueryAudit(ctx, storage.AuditQuery{Type: typ, UserID: userID, ClientID: clientID, Newest: true, Limit: maxToolCalls})
		if err != nil {
			return nil, err
		}
		events = append(events, es...)
	}
	slices.SortFunc(events, func(a, b storage.AuditEvent) int { return b.Time.Compare(a.Time) })
	var calls []web.ToolCallItem
	for _, e := range events[:min(len(events), maxToolCalls)] {
		calls = append(calls, web.ToolCallItem{Time: e.Time, Tool: detailField(e.Detail, "tool"), Resource: e.Resource, Outcome: e.Outcome})
	}
	return calls, nil
}

// detailField returns the value of key=value in an audit detail (fields
// separated by spaces; a value may be a Go-quoted string), or "".
func detailField(detail, key string) string {
	i := strings.Index(" "+detail, " "+key+"=")
	if i < 0 {
		return ""
	}
	v := detail[i+len(key)+1:]
	if strings.HasPrefix(v, `"`) {
		if q, err := strconv.QuotedPrefix(v); err == nil {
			if u, err := strconv.Unquote(q); err == nil {
				return u
			}
		}
	}
	if j := strings.IndexByte(v, ' '); j >= 0 {
		v = v[:j]
	}
	return v
}

// handleAccountRevoke ends a client's access to the signed-in user's
// data: for each resource it holds a consent or a live grant for, the
// consent is deleted and the grants revoked (refresh tokens fail with
// invalid_grant, introspection says inactive), each audited as
// consent.revoked. Only the session's own user's rows are read or
// changed: a client_id of another user's agent finds nothing.
func (s *Server) handleAccountRevoke(w http.ResponseWriter, r *http.Request) {
	if !s.parseBrowserForm(w, r) {
		return
	}
	sess, _, ok := s.accountSession(w, r)
	if !ok {
		return
	}
	ctx := r.Context()
	clientID := r.PostForm.Get("client_id")
	if clientID == "" {
		s.startAgainPage(w, r, http.StatusBadRequest, "the form has no client_id field")
		return
	}
	resources, err := s.heldResources(ctx, sess.UserID, clientID)
	if err != nil {
		s.serverErrorPage(w, r, err)
		return
	}
	if len(resources) == 0 {
		s.nothingToRevoke(w, r)
		return
	}
	for _, res := range resources {
		if err := s.revokeConsent(ctx, r, sess.UserID, clientID, res); err != nil {
			s.serverErrorPage(w, r, err)
			return
		}
	}
	http.Redirect(w, r, s.base+pathAccount+"?done=revoked", http.StatusSeeOther)
}

// revokeConsent deletes userID's consent for clientID at resource and
// revokes the grants it allowed, and audits consent.revoked.
func (s *Server) revokeConsent(ctx context.Context, r *http.Request, userID, clientID, resource string) error {
	err := s.opts.Store.DeleteConsent(ctx, userID, clientID, resource)
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		return err
	}
	// Withdrawing consent also ends what it allowed: the client's refresh
	// tokens for this resource stop working at once.
	n, err := s.opts.Store.RevokeGrants(ctx, userID, clientID, resource, s.now())
	if err != nil {
		return err
	}
	s.audit(ctx, r, storage.AuditEvent{Type: "consent.revoked", UserID: userID, ClientID: clientID, Resource: resource, Outcome: "success", Detail: fmt.Sprintf("%d grants revoked", n)})
	return nil
}

// handleAccountPassword changes the signed-in user's password: the
// current one is checked like a sign-in (throttled and audited), the new
// one must follow password.Rules and be typed twice. The change goes
// through storage.SetPassword, as `gatehouse user passwd` does, so it ends
// every session, consent and grant the user held; this browser gets a
// new session of the new epoch.
func (s *Server) handleAccountPassword(w http.ResponseWriter, r *http.Request) {
	if !s.parseBrowserForm(w, r) {
		return
	}
	sess, u, ok := s.accountSession(w, r)
	if !ok {
		return
	}
	ctx := r.Context()
	if s.opts.DisableLocalLogin || u.PasswordHash == "" {
		s.showAccount(w, r, sess, u, http.StatusForbidden, "", "This account has no password to change here.")
		return
	}
	next, again := r.PostForm.Get("new_password"), r.PostForm.Get("new_password2")
	if err := password.CheckNew(next); err != nil {
		s.showAccount(w, r, sess, u, http.StatusBadRequest, "", "The new password is too short: it must be "+password.Rules+".")
		return
	}
	if next != again {
		s.showAccount(w, r, sess, u, http.StatusBadRequest, "", msgPasswordsDiffer)
		return
	}
	checked, refused, err := s.checkLogin(w, r, u.Username, r.PostForm.Get("current_password"), "")
	if err != nil {
		s.serverErrorPage(w, r, err)
		return
	}
	if refused != nil || checked.ID != u.ID {
		status, msg := http.StatusBadRequest, msgWrongCurrent
		if refused != nil && refused.status == http.StatusTooManyRequests {
			status, msg = refused.status, refused.msg
		}
		s.showAccount(w, r, sess, u, status, "", msg)
		return
	}
	hash, err := password.Hash(next, s.rand)
	if err != nil {
		s.serverErrorPage(w, r, err)
		return
	}
	nu, err := storage.SetPassword(ctx, s.opts.Store, u.ID, hash, s.now())
	if err != nil {
		s.serverErrorPage(w, r, err)
		return
	}
	s.audit(ctx, r, storage.AuditEvent{Type: "user.password_changed", UserID: u.ID, Outcome: "success", Detail: "account page: sessions, consents and grants revoked"})
	if _, err := s.startSession(w, r, nu); err != nil {
		s.serverErrorPage(w, r, err)
		return
	}
	http.Redirect(w, r, s.base+pathAccount+"?done=password", http.StatusSeeOther)
}

// handleAccountSessions signs the user out of every session but this one.
func (s *Server) handleAccountSessions(w http.ResponseWriter, r *http.Request) {
	if !s.parseBrowserForm(w, r) {
		return
	}
	sess, _, ok := s.accountSession(w, r)
	if !ok {
		return
	}
	ctx := r.Context()
	n, err := s.opts.Store.DeleteUserSessions(ctx, sess.UserID, sess.IDHash)
	if err != nil {
		s.serverErrorPage(w, r, err)
		return
	}
	s.audit(ctx, r, storage.AuditEvent{Type: "user.sessions_ended", UserID: sess.UserID, Outcome: "success", Detail: fmt.Sprintf("%d sessions ended", n)})
	http.Redirect(w, r, s.base+pathAccount+"?done=sessions", http.StatusSeeOther)
}

// heldResources are the resources at which userID has a consent or a live
// grant for clientID: what a revocation of clientID by userID may touch.
func (s *Server) heldResources(ctx context.Context, userID, clientID string) ([]string, error) {
	cons, err := s.opts.Store.ListConsents(ctx, userID)
	if err != nil {
		return nil, err
	}
	grants, err := s.opts.Store.ListUserGrants(ctx, userID, s.now())
	if err != nil {
		return nil, err
	}
	var resources []string
	for _, c := range cons {
		if c.ClientID == clientID && !slices.Contains(resources, c.Resource) {
			resources = append(resources, c.Resource)
		}
	}
	for _, g := range grants {
		if g.ClientID == clientID && !slices.Contains(resources, g.Resource) {
			resources = append(resources, g.Resource)
		}
	}
	return resources, nil
}

// nothingToRevoke answers a revocation of something the user does not
// hold: 404, and nothing audited.
func (s *Server) nothingToRevoke(w http.ResponseWriter, r *http.Request) {
	s.opts.Pages.Error(w, r, http.StatusNotFound, web.ErrorData{
		Title:       "Nothing to revoke",
		Description: "This application has no access to your account (any more). Go back to your account page.",
		Detail:      "no consent or live grant of the signed-in user for this client_id",
	})
}
