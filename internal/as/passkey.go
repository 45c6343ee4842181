package as

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"

	"github.com/gatehouse-mcp/gatehouse/internal/clientip"
	"github.com/gatehouse-mcp/gatehouse/internal/storage"
	"github.com/gatehouse-mcp/gatehouse/internal/web"
)

// Passkeys (issue 16 item 3): a signed-in user registers passkeys on the
// account page, and signs in with one instead of a password on both
// sign-in pages. Only discoverable credentials (the browser finds the
// account: no username is typed) with user verification are made and
// accepted. Each ceremony's WebAuthn session data travels sealed in a
// short-lived cookie of the browser that began it (any replica can finish
// it), and its challenge counts once (storage.Replay): a finished
// ceremony's answer cannot be replayed.
const (
	pathAccountPasskeyOptions = "/account/passkeys/options"
	pathAccountPasskeyAdd     = "/account/passkeys/add"
	pathAccountPasskeyRename  = "/account/passkeys/rename"
	pathAccountPasskeyRemove  = "/account/passkeys/remove"
	pathPasskeyOptions        = "/passkey/options"
	pathPasskeyLogin          = "/passkey/login"
)

// Passkeys configures passkeys. The relying party ID must be the issuer's
// host or a registrable suffix of it, and every origin the pages are
// served on must be listed: a browser refuses a passkey for an IP address
// (WebAuthn needs a domain), so on an issuer like http://127.0.0.1:9000
// they are off unless RPID names a domain the pages are reached on.
type Passkeys struct {
	// Disabled turns passkeys off: no buttons, the endpoints answer 404.
	Disabled bool
	// RPID is the relying party ID; empty means the issuer's host.
	RPID string
	// Origins are the origins (scheme://host[:port]) the browser may run
	// the ceremonies on; empty means the issuer's origin.
	Origins []string
	// DisplayName is the relying party's name an authenticator may show;
	// empty means "Gatehouse".
	DisplayName string
}

// passkeyCeremonyTTL bounds a ceremony from its options to its answer.
const passkeyCeremonyTTL = 5 * time.Minute

// Cookie names and sealing contexts of the two ceremonies.
const (
	passkeyRegisterCookie = "gh_passkey_reg"
	passkeyLoginCookie    = "gh_passkey_login"
	passkeyRegisterAAD    = "gatehouse passkey registration v1\x00"
	passkeyLoginAAD       = "gatehouse passkey sign-in v1"
	maxPasskeyNameLen     = 64
)

// Messages of the passkey forms.
const (
	msgPasskeyRefused   = "The passkey was not accepted. Try again, or sign in another way."
	msgPasskeyExpired   = "The passkey sign-in took too long or was already used. Try again."
	msgPasskeyNotAdded  = "The passkey could not be added: %s. Try again."
	msgPasskeyNameLong  = "A passkey name can have at most 64 characters."
	msgPasskeyNoneFound = "You have no such passkey (any more)."
)

// selection is what every registration asks of an authenticator: a
// discoverable credential (a passkey) and user verification.
var selection = protocol.AuthenticatorSelection{
	ResidentKey:        protocol.ResidentKeyRequirementRequired,
	RequireResidentKey: protocol.ResidentKeyRequired(),
	UserVerification:   protocol.VerificationRequired,
}

// CheckPasskeys reports what is wrong with o for issuer (an absolute
// URL), as New would: an IP-address RP ID, an origin that is not one or
// not on the RP ID.
func CheckPasskeys(issuer string, o Passkeys) error {
	iss, err := url.Parse(issuer)
	if err != nil {
		return err
	}
	_, err = newWebAuthn(o, iss)
	return err
}

// newWebAuthn returns the relying party of o for issuer iss, nil when
// passkeys are off.
func newWebAuthn(o Passkeys, iss *url.URL) (*webauthn.WebAuthn, error) {
	if o.Disabled {
		return nil, nil
	}
	rpID := o.RPID
	if rpID == "" {
		rpID = iss.Hostname()
		if net.ParseIP(rpID) != nil {
			return nil, nil // browsers refuse an IP address as RP ID
		}
	}
	if net.ParseIP(rpID) != nil {
		return nil, fmt.Errorf("as: passkeys rp_id %q is an IP address: WebAuthn needs a domain name (e.g. localhost)", rpID)
	}
	origins := o.Origins
	if len(origins) == 0 {
		origins = []string{iss.Scheme + "://" + iss.Host}
	}
	for _, o := range origins {
		u, err := url.Parse(o)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.Path != "" || u.RawQuery != "" {
			return nil, fmt.Errorf("as: passkeys origin %q is not an origin (scheme://host[:port])", o)
		}
		if h := u.Hostname(); h != rpID && !strings.HasSuffix(h, "."+rpID) {
			return nil, fmt.Errorf("as: passkeys origin %q is not on the rp_id %q or a subdomain of it", o, rpID)
		}
	}
	name := o.DisplayName
	if name == "" {
		name = "Gatehouse"
	}
	w, err := webauthn.New(&webauthn.Config{
		RPID:                   rpID,
		RPDisplayName:          name,
		RPOrigins:              origins,
		AttestationPreference:  protocol.PreferNoAttestation,
		AuthenticatorSelection: selection,
	})
	if err != nil {
		return nil, fmt.Errorf("as: passkeys: %w", err)
	}
	return w, nil
}

// offerPasskey adds "Sign in with a passkey" to a sign-in page reached
// on one of the passkey origins: on another (`gatehouse dev`'s
// 127.0.0.1 beside its localhost origin) the browser would refuse the
// ceremony anyway.
func (s *Server) offerPasskey(r *http.Request, d *web.LoginData) {
	if s.passkeyOrigin(r) {
		d.PasskeyAction, d.PasskeyOptions = s.base+pathPasskeyLogin, s.base+pathPasskeyOptions
	}
}

// passkeyOrigin reports whether passkeys are on and r came to one of
// their origins (the issuer's scheme, r's Host).
func (s *Server) passkeyOrigin(r *http.Request) bool {
	return s.webauthn != nil && slices.Contains(s.webauthn.Config.RPOrigins, s.issuer.Scheme+"://"+r.Host)
}

// PasskeysEnabled reports whether the server offers passkeys.
func (s *Server) PasskeysEnabled() bool { return s.webauthn != nil }

// passkeyUser is a user with their passkeys, as the WebAuthn library
// sees them. The user handle is the user's ID.
type passkeyUser struct {
	u     storage.User
	creds []webauthn.Credential
}

func (p passkeyUser) WebAuthnID() []byte                         { return []byte(p.u.ID) }
func (p passkeyUser) WebAuthnName() string                       { return p.u.Username }
func (p passkeyUser) WebAuthnDisplayName() string                { return p.u.Username }
func (p passkeyUser) WebAuthnCredentials() []webauthn.Credential { return p.creds }

// credentialOf is the library's record of a stored passkey.
func credentialOf(p storage.Passkey) webauthn.Credential {
	id, _ := base64.RawURLEncoding.DecodeString(p.ID)
	c := webauthn.Credential{
		ID:            id,
		PublicKey:     p.PublicKey,
		Flags:         webauthn.CredentialFlags{UserPresent: true, UserVerified: true, BackupEligible: p.BackupEligible, BackupState: p.BackupState},
		Authenticator: webauthn.Authenticator{AAGUID: p.AAGUID, SignCount: p.SignCount},
	}
	for _, t := range p.Transports {
		c.Transport = append(c.Transport, protocol.AuthenticatorTransport(t))
	}
	return c
}

// passkeyFlight is a ceremony in progress, sealed in its cookie.
type passkeyFlight struct {
	Session webauthn.SessionData `json:"session"`
	Expires time.Time            `json:"expires"`
}

// beginFlight seals session into cookie (with aad) and writes options as
// the JSON answer for the page's script.
func (s *Server) beginFlight(w http.ResponseWriter, r *http.Request, cookie, aad string, session *webauthn.SessionData, options any) {
	session.Expires = time.Time{} // the library's check reads the wall clock; Expires below is checked on s.now
	f := passkeyFlight{Session: *session, Expires: s.now().Add(passkeyCeremonyTTL)}
	if err := s.setFlightCookie(w, cookie, []byte(aad), f, passkeyCeremonyTTL); err != nil {
		s.serverErrorPage(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	if err := json.NewEncoder(w).Encode(options); err != nil {
		s.log.ErrorContext(r.Context(), "write passkey options", "cause", err)
	}
}

// finishFlight opens this browser's ceremony cookie and marks its
// challenge used: false when there is none, it expired, or it was used.
func (s *Server) finishFlight(w http.ResponseWriter, r *http.Request, cookie, aad string) (webauthn.SessionData, bool) {
	var f passkeyFlight
	if !s.openFlightCookie(w, r, cookie, []byte(aad), &f) || !s.now().Before(f.Expires) || f.Session.Challenge == "" {
		return webauthn.SessionData{}, false
	}
	if !s.useFlight(r.Context(), "passkey", f.Session.Challenge, f.Expires) {
		return webauthn.SessionData{}, false
	}
	return f.Session, true
}

// passkeysOff answers a passkey endpoint of a server without passkeys.
func (s *Server) passkeysOff(w http.ResponseWriter, r *http.Request) bool {
	if s.webauthn != nil {
		return false
	}
	s.handleNotFound(w, r)
	return true
}

// handlePasskeyRegisterOptions begins adding a passkey to the signed-in
// user: a POST with the CSRF token, answered with the creation options
// (JSON) for navigator.credentials.create. The user's passkeys are
// excluded, so an authenticator does not make a second one for them.
func (s *Server) handlePasskeyRegisterOptions(w http.ResponseWriter, r *http.Request) {
	if s.passkeysOff(w, r) || !s.parseBrowserForm(w, r) {
		return
	}
	_, u, ok := s.accountSession(w, r)
	if !ok {
		return
	}
	pu, err := s.passkeyUser(r.Context(), u)
	if err != nil {
		s.serverErrorPage(w, r, err)
		return
	}
	creation, session, err := s.webauthn.BeginRegistration(pu,
		webauthn.WithAuthenticatorSelection(selection),
		webauthn.WithExclusions(webauthn.Credentials(pu.creds).CredentialDescriptors()),
		webauthn.WithConveyancePreference(protocol.PreferNoAttestation))
	if err != nil {
		s.serverErrorPage(w, r, err)
		return
	}
	s.beginFlight(w, r, passkeyRegisterCookie, passkeyRegisterAAD+u.ID, session, creation)
}

func (s *Server) passkeyUser(ctx context.Context, u storage.User) (passkeyUser, error) {
	ps, err := s.opts.Store.ListPasskeys(ctx, u.ID)
	if err != nil {
		return passkeyUser{}, err
	}
	pu := passkeyUser{u: u}
	for _, p := range ps {
		pu.creds = append(pu.creds, credentialOf(p))
	}
	return pu, nil
}

// handlePasskeyAdd finishes adding a passkey: the form carries the
// browser's answer (field credential, the PublicKeyCredential as JSON)
// and the name the user gave it. The answer must be for this browser's
// ceremony of this user, from an allowed origin, for the RP ID, with the
// user verified.
func (s *Server) handlePasskeyAdd(w http.ResponseWriter, r *http.Request) {
	if s.passkeysOff(w, r) || !s.parseBrowserForm(w, r) {
		return
	}
	sess, u, ok := s.accountSession(w, r)
	if !ok {
		return
	}
	ctx := r.Context()
	name := strings.TrimSpace(r.PostForm.Get("name"))
	if len([]rune(name)) > maxPasskeyNameLen {
		s.showAccountPage(w, r, sess, u, http.StatusBadRequest, "", "", msgPasskeyNameLong)
		return
	}
	session, ok := s.finishFlight(w, r, passkeyRegisterCookie, passkeyRegisterAAD+u.ID)
	if !ok {
		s.showAccountPage(w, r, sess, u, http.StatusBadRequest, "", "", fmt.Sprintf(msgPasskeyNotAdded, "it took too long, or was already used"))
		return
	}
	refuse := func(reason string, cause error) {
		s.audit(ctx, r, storage.AuditEvent{Type: "passkey.add_failed", UserID: u.ID, Outcome: "failure", Detail: reason + ": " + protocolReason(cause)})
		s.showAccountPage(w, r, sess, u, http.StatusBadRequest, "", "", fmt.Sprintf(msgPasskeyNotAdded, reason))
	}
	parsed, err := protocol.ParseCredentialCreationResponseBytes([]byte(r.PostForm.Get("credential")))
	if err != nil {
		refuse("the browser's answer is unreadable", err)
		return
	}
	pu, err := s.passkeyUser(ctx, u)
	if err != nil {
		s.serverErrorPage(w, r, err)
		return
	}
	cred, err := s.webauthn.CreateCredential(pu, session, parsed)
	if err != nil {
		refuse("the browser's answer was refused", err)
		return
	}
	if name == "" {
		name = "Passkey added " + s.now().UTC().Format("2 Jan 2006")
	}
	p := storage.Passkey{
		ID:             base64.RawURLEncoding.EncodeToString(cred.ID),
		UserID:         u.ID,
		PublicKey:      cred.PublicKey,
		SignCount:      cred.Authenticator.SignCount,
		AAGUID:         cred.Authenticator.AAGUID,
		BackupEligible: cred.Flags.BackupEligible,
		BackupState:    cred.Flags.BackupState,
		Name:           name,
		CreatedAt:      s.now(),
	}
	for _, t := range cred.Transport {
		p.Transports = append(p.Transports, string(t))
	}
	if err := s.opts.Store.CreatePasskey(ctx, p); err != nil {
		if errors.Is(err, storage.ErrAlreadyExists) {
			refuse("this passkey is registered already", err)
			return
		}
		s.serverErrorPage(w, r, err)
		return
	}
	s.audit(ctx, r, storage.AuditEvent{Type: "passkey.added", UserID: u.ID, Outcome: "success", Detail: fmt.Sprintf("credential=%s name=%q", p.ID, name)})
	http.Redirect(w, r, s.base+pathAccount+"?done=passkey-added", http.StatusSeeOther)
}

// protocolReason is the library's detail of a refusal, for the audit log.
func protocolReason(err error) string {
	var pe *protocol.Error
	if errors.As(err, &pe) && pe.DevInfo != "" {
		return pe.Details + " (" + pe.DevInfo + ")"
	}
	if err == nil {
		return ""
	}
	return err.Error()
}

// handlePasskeyRename renames one of the signed-in user's passkeys.
func (s *Server) handlePasskeyRename(w http.ResponseWriter, r *http.Request) {
	if s.passkeysOff(w, r) || !s.parseBrowserForm(w, r) {
		return
	}
	sess, u, ok := s.accountSession(w, r)
	if !ok {
		return
	}
	name := strings.TrimSpace(r.PostForm.Get("name"))
	if name == "" || len([]rune(name)) > maxPasskeyNameLen {
		s.showAccountPage(w, r, sess, u, http.StatusBadRequest, "", "", "A passkey name must have 1 to 64 characters.")
		return
	}
	err := s.opts.Store.RenamePasskey(r.Context(), u.ID, r.PostForm.Get("id"), name)
	if !s.passkeyChanged(w, r, err) {
		return
	}
	http.Redirect(w, r, s.base+pathAccount+"?done=passkey-renamed", http.StatusSeeOther)
}

// handlePasskeyRemove deletes one of the signed-in user's passkeys; the id
// of another user's passkey finds nothing.
func (s *Server) handlePasskeyRemove(w http.ResponseWriter, r *http.Request) {
	if s.passkeysOff(w, r) || !s.parseBrowserForm(w, r) {
		return
	}
	_, u, ok := s.accountSession(w, r)
	if !ok {
		return
	}
	id := r.PostForm.Get("id")
	if !s.passkeyChanged(w, r, s.opts.Store.DeletePasskey(r.Context(), u.ID, id)) {
		return
	}
	s.audit(r.Context(), r, storage.AuditEvent{Type: "passkey.removed", UserID: u.ID, Outcome: "success", Detail: "credential=" + id})
	http.Redirect(w, r, s.base+pathAccount+"?done=passkey-removed", http.StatusSeeOther)
}

// passkeyChanged shows why a rename or removal failed; true if it did not.
func (s *Server) passkeyChanged(w http.ResponseWriter, r *http.Request, err error) bool {
	switch {
	case err == nil:
		return true
	case errors.Is(err, storage.ErrNotFound):
		s.opts.Pages.Error(w, r, http.StatusNotFound, web.ErrorData{Title: "No such passkey", Description: msgPasskeyNoneFound + " Go back to your account page.", Detail: "no passkey of the signed-in user has this id"})
	default:
		s.serverErrorPage(w, r, err)
	}
	return false
}

// handlePasskeyLoginOptions begins a sign-in with a passkey: a POST with
// the CSRF token, answered with the request options (JSON) for
// navigator.credentials.get. No credentials are listed: the browser
// offers the passkeys it holds for the RP ID.
func (s *Server) handlePasskeyLoginOptions(w http.ResponseWriter, r *http.Request) {
	if s.passkeysOff(w, r) || !s.parseBrowserForm(w, r) {
		return
	}
	assertion, session, err := s.webauthn.BeginDiscoverableLogin(webauthn.WithUserVerification(protocol.VerificationRequired))
	if err != nil {
		s.serverErrorPage(w, r, err)
		return
	}
	s.beginFlight(w, r, passkeyLoginCookie, passkeyLoginAAD, session, assertion)
}

// handlePasskeyLogin finishes a sign-in with a passkey, from either
// sign-in page: the form carries the browser's answer (field credential)
// and, from the authorization flow's page, the request field. It is
// throttled and audited like a password sign-in (per client IP: there is
// no username to count against before the signature is checked), starts
// a new session the same way, and continues the authorization request or
// lands on the account page.
func (s *Server) handlePasskeyLogin(w http.ResponseWriter, r *http.Request) {
	if s.passkeysOff(w, r) || !s.parseBrowserForm(w, r) {
		return
	}
	var (
		p     pending
		authz bool
	)
	if r.PostForm.Get("request") != "" {
		var ok bool
		if p, ok = s.loadPendingRequest(w, r); !ok {
			return
		}
		authz = !p.Account
	}
	refuse := func(status int, msg string) {
		if authz {
			s.showLogin(w, r, p, status, "", msg)
		} else {
			s.showAccountLogin(w, r, status, "", msg)
		}
	}
	ctx := r.Context()
	now := s.now()
	ipKey := "login:ip:" + clientip.Bucket(s.clientIP(r))
	n, reset, err := s.opts.Store.AddFailure(ctx, ipKey, now, s.opts.LoginWindow)
	if err != nil {
		s.serverErrorPage(w, r, err)
		return
	}
	if n > 4*s.opts.LoginMaxFailures {
		if err := s.opts.Store.RemoveFailure(ctx, ipKey); err != nil {
			s.log.ErrorContext(ctx, "refund login attempt", "cause", err)
		}
		wait := reset.Sub(now)
		w.Header().Set("Retry-After", retryAfter(wait))
		s.audit(ctx, r, storage.AuditEvent{Type: "login.throttled", ClientID: p.ClientID, Outcome: "denied", Detail: "too many failures for this ip"})
		refuse(http.StatusTooManyRequests, fmt.Sprintf(msgTooManyTries, humanDuration(wait)))
		return
	}
	// From here every refusal stays counted against the IP.
	failed := func(userID, why string, cause error) {
		s.audit(ctx, r, storage.AuditEvent{Type: "login.failure", UserID: userID, ClientID: p.ClientID, Outcome: "failure", Detail: "passkey: " + why + " " + protocolReason(cause)})
	}
	session, ok := s.finishFlight(w, r, passkeyLoginCookie, passkeyLoginAAD)
	if !ok {
		failed("", "no ceremony in progress, expired or already used", nil)
		refuse(http.StatusBadRequest, msgPasskeyExpired)
		return
	}
	parsed, err := protocol.ParseCredentialRequestResponseBytes([]byte(r.PostForm.Get("credential")))
	if err != nil {
		failed("", "unreadable answer", err)
		refuse(http.StatusBadRequest, msgPasskeyRefused)
		return
	}
	var stored storage.Passkey
	var user storage.User
	handler := func(rawID, userHandle []byte) (webauthn.User, error) {
		pk, err := s.opts.Store.GetPasskey(ctx, base64.RawURLEncoding.EncodeToString(rawID))
		if err != nil {
			return nil, fmt.Errorf("unknown credential: %w", err)
		}
		if pk.UserID != string(userHandle) {
			return nil, errors.New("the user handle is not the credential's user")
		}
		u, err := s.opts.Store.GetUser(ctx, pk.UserID)
		if err != nil {
			return nil, err
		}
		stored, user = pk, u
		return passkeyUser{u: u, creds: []webauthn.Credential{credentialOf(pk)}}, nil
	}
	cred, err := s.webauthn.ValidateDiscoverableLogin(handler, session, parsed)
	if err == nil && cred.Authenticator.CloneWarning {
		err = errors.New("the signature counter went back: a cloned authenticator?")
	}
	if err != nil {
		failed(user.ID, "refused", err)
		refuse(http.StatusUnauthorized, msgPasskeyRefused)
		return
	}
	if !user.DisabledAt.IsZero() {
		s.audit(ctx, r, storage.AuditEvent{Type: "login.disabled", UserID: user.ID, ClientID: p.ClientID, Outcome: "denied", Detail: "passkey"})
		refuse(http.StatusForbidden, msgDisabled)
		return
	}
	if err := s.opts.Store.UsePasskey(ctx, stored.ID, cred.Authenticator.SignCount, cred.Flags.BackupState, now); err != nil {
		s.serverErrorPage(w, r, err)
		return
	}
	if err := s.opts.Store.RemoveFailure(ctx, ipKey); err != nil {
		s.log.ErrorContext(ctx, "refund login attempt", "cause", err)
	}
	sess, err := s.startSession(w, r, user)
	if err != nil {
		s.serverErrorPage(w, r, err)
		return
	}
	detail := "passkey credential=" + stored.ID
	if !authz {
		detail = "account page, " + detail
	}
	s.audit(ctx, r, storage.AuditEvent{Type: "login.success", UserID: user.ID, ClientID: p.ClientID, Outcome: "success", Detail: detail})
	if authz {
		s.continueAuthorization(w, r, p, sess, user, true)
		return
	}
	http.Redirect(w, r, s.base+pathAccount, http.StatusSeeOther)
}
