package as

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/gatehouse-mcp/gatehouse/internal/oauth"
	"github.com/gatehouse-mcp/gatehouse/internal/storage"
	"github.com/gatehouse-mcp/gatehouse/internal/token"
	"github.com/gatehouse-mcp/gatehouse/internal/web"
)

// Delegate is a SaaS that keeps its own login page and user database and
// signs its users in to Gatehouse (issue 14 item 2). Gatehouse sends the
// browser to LoginURL with a one-time login_challenge, bound to the
// pending authorization request and to a short-lived cookie of that
// browser; the SaaS signs its user in its own way and sends the browser
// back to <issuer>/login/delegate/callback?assertion=<JWS>, a compact JWS
// signed with one of Keys whose claims are iss (ID), aud (Gatehouse's
// issuer), login_challenge, sub, iat and exp (at most 5 minutes apart),
// and optionally name, email, groups and auth_time. docs/identity.md
// says why this mechanism and not a back-channel accept call.
type Delegate struct {
	// ID identifies the SaaS: the iss of its assertions, and with
	// "delegate:" the provider of its users' identities (so the same sub
	// is the same Gatehouse user at every sign-in). Required: a URL path
	// segment without ':'.
	ID string
	// DisplayName is shown on the button ("Continue with …") and on the
	// error pages. Empty means ID.
	DisplayName string
	// LoginURL is the SaaS's login page; Gatehouse adds login_challenge
	// to its query (and prompt=login and max_age when the client asked
	// for them). Required: an absolute http(s) URL.
	LoginURL string
	// Keys verify the assertions: public keys with their algorithm
	// (ES256 or EdDSA) pinned and a kid, as [token.ParsePublicKeys]
	// returns them. Several allow a rotation. Required.
	Keys []jose.JSONWebKey
}

// Paths of a delegated sign-in, under the issuer.
const (
	pathDelegate         = "/login/delegate"
	pathDelegateCallback = "/login/delegate/callback"
)

// Bounds of a delegated sign-in.
const (
	// delegateFlightTTL bounds how long a person has at the SaaS.
	delegateFlightTTL = 10 * time.Minute
	// delegateMaxLifetime bounds exp - iat of an assertion: it is made
	// for one redirect, just before it.
	delegateMaxLifetime = 5 * time.Minute
	// delegateLeeway is the clock skew tolerated between the SaaS and
	// Gatehouse on exp, iat and nbf.
	delegateLeeway = 30 * time.Second
	// maxAssertionBytes bounds the assertion Gatehouse will parse.
	maxAssertionBytes = 8 << 10
)

// delegateProvider is the provider name of the identities the delegate id
// vouches for: upstream provider names cannot contain ':', so it never
// meets one of theirs.
func delegateProvider(id string) string { return "delegate:" + id }

// delegate is the configured SaaS, checked.
type delegate struct {
	cfg  Delegate
	algs []jose.SignatureAlgorithm // those of Keys: nothing else is parsed
}

// newDelegate checks d; nil d is no delegate.
func newDelegate(d *Delegate) (*delegate, error) {
	if d == nil {
		return nil, nil
	}
	u, err := url.Parse(d.LoginURL)
	switch {
	case d.ID == "" || strings.ContainsAny(d.ID, "/:?#% "):
		return nil, fmt.Errorf("as: delegate id %q must be a non-empty URL path segment without ':'", d.ID)
	case err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") || u.Fragment != "":
		return nil, fmt.Errorf("as: delegate login URL %q must be an absolute http(s) URL without a fragment", d.LoginURL)
	case len(d.Keys) == 0:
		return nil, errors.New("as: delegate needs at least one key")
	}
	out := &delegate{cfg: *d}
	if out.cfg.DisplayName == "" {
		out.cfg.DisplayName = d.ID
	}
	for _, k := range d.Keys {
		alg := jose.SignatureAlgorithm(k.Algorithm)
		if (alg != jose.ES256 && alg != jose.EdDSA) || !k.IsPublic() || k.KeyID == "" {
			return nil, fmt.Errorf("as: delegate key %q must be a public ES256 or EdDSA key with a kid (token.ParsePublicKeys)", k.KeyID)
		}
		if !slices.Contains(out.algs, alg) {
			out.algs = append(out.algs, alg)
		}
	}
	return out, nil
}

// delegateFlight is a delegated sign-in in progress. Like an upstream
// flight it travels sealed in a short-lived cookie of the browser that
// started it, named after its challenge: an assertion counts only in that
// browser, for that challenge, once, before ExpiresAt.
type delegateFlight struct {
	Challenge string    `json:"challenge"`
	Request   string    `json:"request"` // the sealed pending request, as in the forms
	MaxAge    int64     `json:"max_age"` // -1: none asked
	Fresh     bool      `json:"fresh"`   // prompt=login: the SaaS must sign the person in now
	StartedAt time.Time `json:"started_at"`
	ExpiresAt time.Time `json:"expires_at"`
}

// delegateAAD binds sealed delegate flights to their purpose.
var delegateAAD = []byte("gatehouse delegated sign-in v1")

// delegateCookie is the name of the cookie of the flight with challenge.
func delegateCookie(challenge string) string { return "gh_dlg_" + token.Hash(challenge)[:16] }

// delegateLoginProvider is the delegate's button on the login page. Its
// form id is delegate-login (not oidc-…: an upstream may be named like
// the delegate).
func (s *Server) delegateLoginProvider() web.LoginProvider {
	return web.LoginProvider{ID: s.delegate.cfg.ID, FormID: "delegate-login", Name: s.delegate.cfg.DisplayName, Action: s.base + pathDelegate}
}

// delegateOnly reports whether the delegate is the only way to sign in:
// then /authorize sends the browser to it without showing a page.
func (s *Server) delegateOnly() bool {
	return s.delegate != nil && s.opts.DisableLocalLogin && len(s.upstreams) == 0
}

// handleDelegateStart is the login page's "Continue with …" button of the
// delegate: a POSTed form with the CSRF token and the sealed request.
func (s *Server) handleDelegateStart(w http.ResponseWriter, r *http.Request) {
	if s.delegate == nil {
		s.handleNotFound(w, r)
		return
	}
	if !s.parseBrowserForm(w, r) {
		return
	}
	p, ok := s.loadAuthorization(w, r)
	if !ok {
		return
	}
	s.startDelegate(w, r, p)
}

// startDelegate sends the browser to the SaaS's login page with a new
// login challenge, and keeps the sign-in in a sealed cookie.
func (s *Server) startDelegate(w http.ResponseWriter, r *http.Request, p pending) {
	p.Session = ""
	sealedReq, ok := s.sealedField(w, r, p)
	if !ok {
		return
	}
	challenge, err := s.newSecret()
	if err != nil {
		s.serverErrorPage(w, r, err)
		return
	}
	now := s.now()
	f := delegateFlight{Challenge: challenge, Request: sealedReq, MaxAge: -1, StartedAt: now, ExpiresAt: now.Add(delegateFlightTTL)}
	if p.ExpiresAt.Before(f.ExpiresAt) {
		f.ExpiresAt = p.ExpiresAt
	}
	login, _ := url.Parse(s.delegate.cfg.LoginURL) // checked by newDelegate
	q := login.Query()
	q.Set("login_challenge", challenge)
	if slices.Contains(strings.Fields(p.Prompt), "login") {
		f.Fresh = true
		q.Set("prompt", "login")
	}
	if p.MaxAge != "" {
		f.MaxAge, _ = strconv.ParseInt(p.MaxAge, 10, 64)
		q.Set("max_age", p.MaxAge)
	}
	login.RawQuery = q.Encode()
	if err := s.setFlightCookie(w, delegateCookie(challenge), delegateAAD, f, f.ExpiresAt.Sub(now)); err != nil {
		s.serverErrorPage(w, r, err)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, login.String(), http.StatusSeeOther)
}

// Why a browser's flight for a challenge cannot be used.
var (
	errNoFlight      = errors.New("no sign-in of this browser has this login_challenge, or it was already used")
	errFlightExpired = errors.New("the sign-in with this login_challenge has expired")
)

// takeDelegateFlight returns this browser's flight for challenge and marks
// it used (whatever comes of the assertion): errNoFlight if the browser
// has none (another browser, a wrong challenge, a cookie already cleared)
// or it was used before, errFlightExpired if it has expired.
func (s *Server) takeDelegateFlight(w http.ResponseWriter, r *http.Request, challenge string) (delegateFlight, error) {
	if challenge == "" || len(challenge) > maxStateBytes {
		return delegateFlight{}, errNoFlight
	}
	var f delegateFlight
	if !s.openFlightCookie(w, r, delegateCookie(challenge), delegateAAD, &f) || !token.Equal(f.Challenge, challenge) {
		return delegateFlight{}, errNoFlight
	}
	if !s.now().Before(f.ExpiresAt) {
		return delegateFlight{}, errFlightExpired
	}
	// Once: a copied cookie and assertion cannot sign in twice.
	if !s.useFlight(r.Context(), "delegate", challenge, f.ExpiresAt) {
		return delegateFlight{}, errNoFlight
	}
	return f, nil
}

// delegateClaims are the claims of an assertion besides the registered
// ones (jwt.Claims).
type delegateClaims struct {
	Challenge string   `json:"login_challenge"`
	Name      string   `json:"name"`
	Email     string   `json:"email"`
	Groups    []string `json:"groups"`
	AuthTime  *int64   `json:"auth_time"`
}

// handleDelegateCallback ends a delegated sign-in: the SaaS sent the
// browser back with ?assertion=<JWS>. The assertion must be signed with a
// registered key (its kid, the key's pinned algorithm), have iss the
// delegate's id, aud Gatehouse's issuer, iat and exp at most 5 minutes
// apart and not expired, a sub, and a login_challenge that is this
// browser's unexpired, unused sign-in. Then the person is found or
// provisioned by (delegate:<id>, sub) and the authorization continues as
// after a password sign-in (consent, code). Every failure is a page saying
// why, audited as login.delegate_failed (unless nothing ties it to a
// sign-in or to the SaaS: see delegateFailure.unaudited), and creates no
// user, session or grant.
func (s *Server) handleDelegateCallback(w http.ResponseWriter, r *http.Request) {
	d := s.delegate
	if d == nil {
		s.handleNotFound(w, r)
		return
	}
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", "GET")
		s.startAgainPage(w, r, http.StatusMethodNotAllowed, "the SaaS must send the browser back with a GET (a redirect)")
		return
	}
	ctx := r.Context()
	raw := r.URL.Query().Get("assertion")
	if raw == "" || len(raw) > maxAssertionBytes {
		s.delegateFailed(w, r, "", delegateFailure{status: http.StatusBadRequest, reason: "Gatehouse received no sign-in from " + d.cfg.DisplayName + ".",
			detail: fmt.Sprintf("the assertion parameter is missing or longer than %d bytes", maxAssertionBytes), unaudited: true})
		return
	}
	tok, err := jwt.ParseSigned(raw, d.algs)
	if err != nil {
		detail := "the assertion is not a compact JWS"
		if e, ok := errors.AsType[*jose.ErrUnexpectedSignatureAlgorithm](err); ok {
			detail = fmt.Sprintf("the assertion's algorithm %.20q is not that of a registered key (%s)", string(e.Got), algNames(d.algs))
		}
		s.delegateFailed(w, r, "", delegateFailure{status: http.StatusBadRequest, reason: "The sign-in from " + d.cfg.DisplayName + " could not be verified.",
			detail: detail, unaudited: true})
		return
	}
	// The challenge is read before the signature is checked only to find
	// the browser's sign-in; nothing else of the unverified claims is used.
	var unverified delegateClaims
	_ = tok.UnsafeClaimsWithoutVerification(&unverified)
	f, flightErr := s.takeDelegateFlight(w, r, unverified.Challenge)
	// A failure that belongs to no sign-in of this browser and is not
	// vouched for by the SaaS's key is anyone's to send, any number of
	// times: it is logged, not audited, so that strangers cannot fill the
	// audit log. Once the signature verifies, it is the SaaS's and audited.
	clientID := ""
	var p pending
	if flightErr == nil {
		p, err = s.openPending(ctx, f.Request)
		if errors.Is(err, errPendingInvalid) {
			s.startAgainPage(w, r, http.StatusBadRequest, msgRequestGone)
			return
		}
		if err != nil {
			s.serverErrorPage(w, r, err)
			return
		}
		clientID = p.ClientID
	}
	fail := func(df delegateFailure) { s.delegateFailed(w, r, clientID, df) }
	notVerified := "The sign-in from " + d.cfg.DisplayName + " could not be verified."
	h := tok.Headers[0]
	var key *jose.JSONWebKey
	switch {
	case h.KeyID != "":
		if i := slices.IndexFunc(d.cfg.Keys, func(k jose.JSONWebKey) bool { return k.KeyID == h.KeyID }); i >= 0 {
			key = &d.cfg.Keys[i]
		}
	case len(d.cfg.Keys) == 1:
		key = &d.cfg.Keys[0]
	}
	if key == nil {
		fail(delegateFailure{status: http.StatusBadRequest, reason: notVerified, unaudited: flightErr != nil,
			detail: fmt.Sprintf("the assertion's key id %.64q is not a registered key of %s (an unknown key, or no kid while several keys are registered)", h.KeyID, d.cfg.ID)})
		return
	}
	if h.Algorithm != key.Algorithm {
		fail(delegateFailure{status: http.StatusBadRequest, reason: notVerified, unaudited: flightErr != nil,
			detail: fmt.Sprintf("the assertion's algorithm %.20q is not %s, the algorithm of key %s", h.Algorithm, key.Algorithm, key.KeyID)})
		return
	}
	var std jwt.Claims
	var c delegateClaims
	if err := tok.Claims(key.Key, &std, &c); err != nil {
		fail(delegateFailure{status: http.StatusBadRequest, reason: notVerified, unaudited: flightErr != nil,
			detail: "the assertion's signature does not verify with key " + key.KeyID})
		return
	}
	// Signed by the SaaS from here on: every failure is audited.
	now := s.now()
	if df := d.checkClaims(std, c, s.Issuer(), now); df != nil {
		fail(*df)
		return
	}
	switch {
	case errors.Is(flightErr, errFlightExpired):
		fail(delegateFailure{status: http.StatusBadRequest, reason: "This sign-in took too long.", detail: flightErr.Error()})
		return
	case flightErr != nil:
		fail(delegateFailure{status: http.StatusBadRequest,
			reason: "This sign-in from " + d.cfg.DisplayName + " does not belong to a sign-in started in this browser, or was already used.",
			detail: "the login_challenge matches no unexpired, unused sign-in of this browser (a wrong challenge, another browser, or a replay)"})
		return
	}
	if df := d.checkAuthTime(f, c, now); df != nil {
		fail(*df)
		return
	}
	provider := delegateProvider(d.cfg.ID)
	u, how, err := s.upstreamUser(ctx, provider, std.Subject, nil)
	if err != nil {
		s.serverErrorPage(w, r, err)
		return
	}
	if how == userProvisioned {
		s.audit(ctx, r, storage.AuditEvent{Type: "user.provisioned", UserID: u.ID, ClientID: p.ClientID, Outcome: "success", Detail: "provider=" + provider})
	}
	if !u.DisabledAt.IsZero() {
		s.audit(ctx, r, storage.AuditEvent{Type: "login.disabled", UserID: u.ID, ClientID: p.ClientID, Outcome: "denied", Detail: "provider=" + provider})
		s.opts.Pages.Error(w, r, http.StatusForbidden, web.ErrorData{Title: "Sign-in with " + d.cfg.DisplayName + " failed", Description: msgDisabled})
		return
	}
	sess, err := s.startSession(w, r, u)
	if err != nil {
		s.serverErrorPage(w, r, err)
		return
	}
	s.audit(ctx, r, storage.AuditEvent{Type: "login.success", UserID: u.ID, ClientID: p.ClientID, Outcome: "success", Detail: "provider=" + provider})
	s.continueAuthorization(w, r, p, sess, u, true)
}

// checkClaims checks a verified assertion's claims: iss, aud, sub, and
// times (exp and iat required, at most delegateMaxLifetime apart).
func (d *delegate) checkClaims(std jwt.Claims, c delegateClaims, issuer string, now time.Time) *delegateFailure {
	bad := func(reason, detail string) *delegateFailure {
		return &delegateFailure{status: http.StatusBadRequest, reason: reason, detail: detail}
	}
	notFor := "The sign-in from " + d.cfg.DisplayName + " was not made for this server."
	switch {
	case std.Issuer != d.cfg.ID:
		return bad(notFor, fmt.Sprintf("the assertion's iss %.64q is not %q", std.Issuer, d.cfg.ID))
	case !std.Audience.Contains(issuer):
		return bad(notFor, fmt.Sprintf("the assertion's aud does not contain this server's issuer %s", issuer))
	case std.Expiry == nil || std.IssuedAt == nil:
		return bad("The sign-in from "+d.cfg.DisplayName+" could not be verified.", "the assertion must have exp and iat")
	case std.Expiry.Time().Sub(std.IssuedAt.Time()) > delegateMaxLifetime:
		return bad("The sign-in from "+d.cfg.DisplayName+" could not be verified.", fmt.Sprintf("the assertion's exp is more than %s after its iat", delegateMaxLifetime))
	}
	if err := std.ValidateWithLeeway(jwt.Expected{Time: now}, delegateLeeway); err != nil {
		detail := "the assertion's times are wrong: " + err.Error()
		if errors.Is(err, jwt.ErrExpired) {
			detail = "the assertion has expired (exp is past)"
		}
		return bad("The sign-in from "+d.cfg.DisplayName+" has expired or is not valid yet.", detail)
	}
	if std.Subject == "" || len(std.Subject) > 255 {
		return &delegateFailure{status: http.StatusForbidden, reason: d.cfg.DisplayName + " did not say who you are.", detail: "the assertion's sub is missing, empty or longer than 255 bytes"}
	}
	return nil
}

// checkAuthTime refuses an assertion for a sign-in whose client asked for
// a fresh one (prompt=login) or a recent one (max_age) unless auth_time
// shows it: the SaaS was told, in the login URL's query.
func (d *delegate) checkAuthTime(f delegateFlight, c delegateClaims, now time.Time) *delegateFailure {
	if !f.Fresh && f.MaxAge < 0 {
		return nil
	}
	df := &delegateFailure{status: http.StatusForbidden, reason: d.cfg.DisplayName + " did not sign you in again as the app asked.",
		detail: "prompt=login or max_age was sent, and the assertion's auth_time is missing or too old"}
	if c.AuthTime == nil {
		return df
	}
	at := time.Unix(*c.AuthTime, 0)
	if f.Fresh && at.Before(f.StartedAt.Add(-delegateLeeway)) {
		return df
	}
	if f.MaxAge >= 0 && now.Sub(at) > time.Duration(f.MaxAge)*time.Second+delegateLeeway {
		return df
	}
	return nil
}

// delegateFailure is why a delegated sign-in failed: shown on the error
// page (naming the SaaS), and audited as login.delegate_failed.
type delegateFailure struct {
	status int
	reason string // for the person
	detail string // for the developer and the audit log; never a secret
	// unaudited: nothing ties the request to a sign-in of this browser
	// or to the SaaS's key; it is logged instead (see the callback).
	unaudited bool
}

// delegateFailed shows why a delegated sign-in failed and audits it.
func (s *Server) delegateFailed(w http.ResponseWriter, r *http.Request, clientID string, f delegateFailure) {
	ctx := r.Context()
	d := s.delegate
	if f.unaudited {
		s.log.InfoContext(ctx, "delegated sign-in response refused", "delegate", d.cfg.ID, "detail", f.detail)
	} else {
		s.audit(ctx, r, storage.AuditEvent{Type: "login.delegate_failed", ClientID: clientID, Outcome: "failure",
			Detail: truncate("delegate="+d.cfg.ID+": "+f.detail, 500)})
	}
	noteError(ctx, oauth.AccessDenied)
	s.opts.Pages.Error(w, r, f.status, web.ErrorData{
		Title:       "Sign-in with " + d.cfg.DisplayName + " failed",
		Description: f.reason + " Go back to the app and sign in again; if this keeps happening, contact the administrator of this server.",
		Detail:      f.detail,
		Code:        string(oauth.AccessDenied),
	})
}

// algNames lists algorithms for messages.
func algNames(algs []jose.SignatureAlgorithm) string {
	names := make([]string, len(algs))
	for i, a := range algs {
		names[i] = string(a)
	}
	return strings.Join(names, ", ")
}
