package web

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/gatehouse-mcp/gatehouse/internal/safetext"
)

//go:embed templates/*.html
var templateFS embed.FS

// pageNames lists the templates under templates/, one per page; each is
// parsed together with layout.html into its own template set, because
// every page defines the same "title" and "content" blocks.
var pageNames = []string{"login", "consent", "error", "message", "account"}

// Options configures [New]. The zero value of every field except CSRFKey
// is a documented default.
type Options struct {
	// ProductName is the display name of the server or organisation (the
	// branding.name setting), shown in the page header, the window title
	// and the sign-in page ("Sign in to <ProductName>"). Empty means
	// "Gatehouse" in the header and title, and no name on the sign-in page.
	ProductName string
	// LogoURL is an image shown before ProductName in the page header (the
	// branding.logo_url setting): an https URL, whose origin is then added
	// to the img-src of the pages' Content-Security-Policy and nothing
	// else, or a base64 data:image/… URL. [CheckLogoURL] states the rules;
	// New refuses a URL that breaks them. Empty means no logo.
	LogoURL string
	// IssuerHost is the host (and port) of the issuer, shown in the page
	// header and on the sign-in page so that users can see which server
	// asks for their password. Empty shows none.
	IssuerHost string
	// Secure is true when the issuer is https. Cookies then get the Secure
	// attribute and the __Host- name prefix. Leave it false only for plain
	// http development on localhost, where browsers reject both.
	Secure bool
	// CSRFKey is the HMAC-SHA256 key that signs CSRF tokens. Required: at
	// least 32 bytes, from crypto/rand, the same on every replica so that a
	// form rendered by one replica can be posted to another. New copies it.
	CSRFKey []byte
	// StaticPrefix is the URL path prefix the stylesheet is served under;
	// mount [Pages.StaticHandler] there. It must start with "/"; a missing
	// trailing "/" is added. Empty means "/static/".
	StaticPrefix string
	// Logger receives template execution errors. Nil means slog.Default().
	Logger *slog.Logger
}

// Pages renders the browser pages and issues and checks CSRF tokens.
// Create one with [New]; it is safe for concurrent use.
type Pages struct {
	product    string
	named      bool         // the operator set ProductName
	logo       template.URL // checked by CheckLogoURL
	host       string
	csp        string
	secure     bool
	csrfKey    []byte
	prefix     string
	stylesheet string // full URL path of the content-hashed stylesheet
	cssETag    string
	script     string // full URL path of the content-hashed passkey script
	jsETag     string
	log        *slog.Logger
	tmpl       map[string]*template.Template
}

// New checks opts, fills in defaults and parses the embedded templates.
func New(opts Options) (*Pages, error) {
	if len(opts.CSRFKey) < 32 {
		return nil, errors.New("web: CSRFKey must be at least 32 bytes")
	}
	p := &Pages{
		product: Visible(strings.TrimSpace(opts.ProductName)),
		named:   strings.TrimSpace(opts.ProductName) != "",
		host:    opts.IssuerHost,
		secure:  opts.Secure,
		csrfKey: bytes.Clone(opts.CSRFKey),
		prefix:  opts.StaticPrefix,
		log:     opts.Logger,
		tmpl:    make(map[string]*template.Template, len(pageNames)),
	}
	if p.product == "" {
		p.product = "Gatehouse"
	}
	origin, err := "", error(nil)
	if opts.LogoURL != "" {
		if origin, err = CheckLogoURL(opts.LogoURL); err != nil {
			return nil, fmt.Errorf("web: LogoURL %w", err)
		}
		// Checked above: an https URL or a base64 data:image URL, which
		// html/template would otherwise replace (it trusts only http,
		// https and mailto).
		p.logo = template.URL(opts.LogoURL)
	}
	p.csp = contentSecurityPolicy(origin)
	if p.prefix == "" {
		p.prefix = "/static/"
	}
	if !strings.HasPrefix(p.prefix, "/") {
		return nil, errors.New(`web: StaticPrefix must start with "/"`)
	}
	if !strings.HasSuffix(p.prefix, "/") {
		p.prefix += "/"
	}
	if p.log == nil {
		p.log = slog.Default()
	}
	sum := sha256.Sum256(stylesheet)
	hash := hex.EncodeToString(sum[:6])
	p.stylesheet = p.prefix + "gatehouse." + hash + ".css"
	p.cssETag = `"` + hash + `"`
	jsSum := sha256.Sum256(script)
	jsHash := hex.EncodeToString(jsSum[:6])
	p.script = p.prefix + "passkey." + jsHash + ".js"
	p.jsETag = `"` + jsHash + `"`

	funcs := template.FuncMap{
		"join":       strings.Join,
		"formatTime": formatTime,
		"rfc3339":    func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
		"visible":    Visible,
	}
	for _, name := range pageNames {
		t, err := template.New(name).Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/"+name+".html")
		if err != nil {
			return nil, err
		}
		p.tmpl[name] = t
	}
	return p, nil
}

// StylesheetURL returns the URL path the pages link their stylesheet
// from: StaticPrefix plus a file name carrying a hash of its content, so it
// can be cached for a year and still change with each release.
func (p *Pages) StylesheetURL() string { return p.stylesheet }

// ScriptURL returns the URL path of the passkey script, content-hashed
// like [Pages.StylesheetURL]. Only pages that offer passkeys load it.
func (p *Pages) ScriptURL() string { return p.script }

// LoginData is what the sign-in page shows.
type LoginData struct {
	// Action is the URL the form posts to.
	Action string
	// CSRF is the csrf_token field. Empty means Login calls
	// [Pages.CSRFToken] itself.
	CSRF string
	// Request is the hidden "request" field: the id of the pending
	// authorization request, or empty when signing in for the account pages.
	Request string
	// Username pre-fills the username field, e.g. after a failed attempt.
	// The password is never sent back.
	Username string
	// Error is shown above the form, e.g. "Wrong username or password."
	Error string
	// ClientName, when set, adds "to continue to <ClientName>".
	ClientName string
	// Providers are the upstream OpenID Connect providers offered as
	// "Continue with <Name>" buttons, each a form posting the same
	// csrf_token and request fields to its Action.
	Providers []LoginProvider
	// NoPassword hides the username and password form: local sign-in is
	// turned off (identity.local: false).
	NoPassword bool
	// PasskeyAction, when set, adds "Sign in with a passkey": a form
	// posting csrf_token, request and the browser's answer (credential)
	// to it, after the script fetched the options from PasskeyOptions.
	PasskeyAction, PasskeyOptions string
}

// LoginProvider is one "Continue with …" button of the sign-in page.
type LoginProvider struct {
	// ID is the provider's name, used in the form's id (oidc-<ID>).
	ID string
	// FormID, when set, is the form's id instead of oidc-<ID>.
	FormID string
	// Name is the display name on the button.
	Name string
	// Action is the URL the button's form posts to.
	Action string
}

// ConsentData is what the consent page shows.
type ConsentData struct {
	// Action is the URL the form posts to.
	Action string
	// CSRF is the csrf_token field. Empty means Consent calls
	// [Pages.CSRFToken] itself.
	CSRF string
	// Request is the hidden "request" field: the pending authorization
	// request id.
	Request string
	// Username is who is signed in.
	Username string
	// ClientName is the client's display name. Empty means ClientID.
	ClientName string
	// ClientID is the client_id, shown in full.
	ClientID string
	// ClientURI is the client's home page, optional. It is shown as text,
	// not as a link, so that the consent page never sends the user to a
	// site the client chose.
	ClientURI string
	// Publisher is the verified domain of a client identified by a
	// metadata document URL (CIMD), optional.
	Publisher string
	// RedirectURI is where the browser goes after the decision.
	RedirectURI string
	// RedirectHost is shown big and bold: "After you allow, you will be
	// sent to <host>". Empty means the host (with port) of an http or
	// https RedirectURI, and "the app <scheme>" for a private-use scheme:
	// com.evil.app://github.com/cb opens the app com.evil.app, whatever
	// host it names, so it must not read as "github.com".
	RedirectHost string
	// LoopbackOnly shows a warning that the redirect goes to this computer,
	// where any local program could be receiving it.
	LoopbackOnly bool
	// Resource is the RFC 8707 resource the token is for.
	Resource string
	// ResourceName is a display name for Resource, optional.
	ResourceName string
	// Scopes are the requested scopes, in the order to show them.
	Scopes []ScopeItem
	// Unavailable are requested scopes the user may not grant (a
	// resource's scope policy), each with why; shown under "Not available
	// to you". Optional.
	Unavailable []UnavailableScope
	// Warnings are shown at the top, one item each, e.g. "This app was
	// registered a minute ago."
	Warnings []string
}

// UnavailableScope is a requested scope the user may not grant.
type UnavailableScope struct {
	// Name is the scope value.
	Name string
	// Reason says why, e.g. "notes:write needs group editors".
	Reason string
}

// ScopeItem is one requested scope on the consent page.
type ScopeItem struct {
	// Name is the scope value, e.g. "files:read".
	Name string
	// Description says in plain words what the scope allows. Optional.
	Description string
	// Tools lists the MCP tools the scope unlocks, shown as
	// "Unlocks tools: a, b". Optional.
	Tools []string
}

// ErrorData is what the error page shows: first, in plain words, what the
// user should do; then, folded away under "For developers", what exactly
// was wrong. No field may contain secrets or internal error text: it all
// reaches the browser.
type ErrorData struct {
	// Title is the heading. Empty means the HTTP status text.
	Title string
	// Description tells the user what to do next, in plain words ("Go
	// back to the app and try again."). Optional.
	Description string
	// Detail is the technical reason, for the developer of the app, e.g.
	// the OAuth error_description. It is shown in a collapsed "For
	// developers" section. Optional.
	Detail string
	// Code is the OAuth error code, e.g. "invalid_request", shown with
	// Detail. Optional.
	Code string
}

// MessageData is what a plain message page shows, e.g. "You declined",
// "Consent revoked" or "Signed out".
type MessageData struct {
	// Title is the heading.
	Title string
	// Body is one paragraph under it. Optional.
	Body string
}

// AccountData is what the account page (/account) shows the signed-in
// user: the clients connected to their account, each with a revoke form,
// and the forms to change the password, sign out other sessions and sign
// out. Every form posts the csrf_token field.
type AccountData struct {
	// CSRF is the csrf_token field. Empty means Account calls
	// [Pages.CSRFToken] itself.
	CSRF string
	// Username is who is signed in.
	Username string
	// Notice is a confirmation shown at the top (role status), e.g.
	// "Access for Claude was revoked." Optional.
	Notice string
	// Error is shown above the password form (role alert) when a
	// password change was refused. Optional.
	Error string
	// RevokeAction, PasswordAction, SessionsAction and SignOutAction are
	// the URLs the forms post to.
	RevokeAction, PasswordAction, SessionsAction, SignOutAction string
	// PasswordRules describes what a new password must be, e.g. "at least
	// 8 characters".
	PasswordRules string
	// NoPassword hides the password form: the user has no local password
	// (they sign in through an identity provider) or local sign-in is off.
	NoPassword bool
	// AccessTokenTTL is the access-token lifetime in force, in words
	// ("10 minutes"): how long a token already issued stays valid at a
	// resource that checks it locally after a revocation.
	AccessTokenTTL string
	// Agents are the connected clients, in the order to show them.
	Agents []AgentItem
	// PasskeyAddAction, when set, shows the Passkeys section: the user's
	// Passkeys with rename (PasskeyRenameAction) and remove
	// (PasskeyRemoveAction) forms, and "Add a passkey", whose script
	// fetches the options from PasskeyOptionsAction.
	PasskeyAddAction, PasskeyOptionsAction, PasskeyRenameAction, PasskeyRemoveAction string
	Passkeys                                                                         []PasskeyItem
	// PasskeyError is shown in the Passkeys section (role alert) when
	// adding or renaming a passkey was refused. Optional.
	PasskeyError string
}

// PasskeyItem is one of the user's passkeys on the account page.
type PasskeyItem struct {
	// ID is the credential ID (base64url), the forms' id field.
	ID string
	// Name is the user's label for it; format characters are removed.
	Name     string
	Created  time.Time
	LastUsed time.Time // zero: never used
}

// AgentItem is one client connected to the user's account.
type AgentItem struct {
	// ClientName is the client's display name. Empty means ClientID.
	ClientName string
	// ClientID is the client_id, posted back by the revoke form.
	ClientID string
	// Publisher is the verified domain of a metadata-document (CIMD)
	// client. When empty, Static says whether an administrator registered
	// the client; otherwise it is shown as "unverified".
	Publisher string
	// Static is true for a client an administrator registered.
	Static bool
	// Resources are the resources it may access, each with its scopes.
	Resources []AgentResource
	// Granted is when the user first allowed it; Updated when they last
	// did (or it last got a new authorization). Zero shows "unknown".
	Granted, Updated time.Time
	// LastUsed is when it last redeemed an authorization (a code or a
	// refresh token). Zero shows "not recorded".
	LastUsed time.Time
	// AccessUntil is when the last access token issued to it expires, if
	// that is in the future: the latest a resource that checks tokens
	// locally still accepts one after a revocation. Zero: none left.
	AccessUntil time.Time
	// ToolCalls are its newest tool calls, newest first (at most 5).
	ToolCalls []ToolCallItem
}

// AgentResource is a resource a connected client may access.
type AgentResource struct {
	// Resource is the resource URL.
	Resource string
	// Name is a display name for Resource, optional.
	Name string
	// Scopes are the scopes allowed there.
	Scopes []string
}

// ToolCallItem is one tool call from the audit log.
type ToolCallItem struct {
	// Time is when the call was made.
	Time time.Time
	// Tool is the tool's name.
	Tool string
	// Resource is the MCP server's resource URL.
	Resource string
	// Outcome is the audit outcome, e.g. "allowed", "denied", "ok".
	Outcome string
}

// view is what the layout template receives.
type view struct {
	Product    string
	Named      bool // Product was set by the operator
	Logo       template.URL
	Host       string
	Stylesheet string
	Script     string // the passkey script's URL
	Page       any
}

// Login writes the sign-in page with the given status; 0 means 200. Use
// 401 to show it again after a failed attempt. Format characters are
// removed from ClientName (see [Visible]).
func (p *Pages) Login(w http.ResponseWriter, r *http.Request, status int, d LoginData) {
	if d.CSRF == "" {
		d.CSRF = p.CSRFToken(w, r)
	}
	d.ClientName = Visible(d.ClientName)
	p.render(w, r, orStatus(status, http.StatusOK), "login", d)
}

// Consent writes the consent page with status 200. Format characters are
// removed from everything the client chose (see [Visible]).
func (p *Pages) Consent(w http.ResponseWriter, r *http.Request, d ConsentData) {
	if d.CSRF == "" {
		d.CSRF = p.CSRFToken(w, r)
	}
	if d.ClientName == "" {
		d.ClientName = d.ClientID
	}
	if d.RedirectHost == "" {
		d.RedirectHost = redirectHost(d.RedirectURI)
	}
	for _, f := range []*string{&d.ClientName, &d.ClientID, &d.ClientURI, &d.Publisher, &d.RedirectURI, &d.RedirectHost} {
		*f = Visible(*f)
	}
	p.render(w, r, http.StatusOK, "consent", d)
}

// Error writes the error page with the given status; 0 means 500. Format
// characters are removed from Description and Detail, which may quote
// what a client sent (see [Visible]).
func (p *Pages) Error(w http.ResponseWriter, r *http.Request, status int, d ErrorData) {
	status = orStatus(status, http.StatusInternalServerError)
	if d.Title == "" {
		d.Title = http.StatusText(status)
	}
	d.Description = Visible(d.Description)
	d.Detail = Visible(d.Detail)
	p.render(w, r, status, "error", d)
}

// Visible removes Unicode format characters (category Cf: bidi controls
// such as U+202E, zero-width spaces and joiners) from s. Registration
// refuses them in client metadata; the pages remove them again from any
// client-supplied text they show, for clients stored before that rule or
// created by other means, because on a page they can only disguise a name
// or an address.
func Visible(s string) string {
	if !strings.ContainsFunc(s, isFormat) {
		return s
	}
	return strings.Map(func(r rune) rune {
		if isFormat(r) {
			return -1
		}
		return r
	}, s)
}

// isFormat reports a character a page must not show: one that does not
// show as itself (safetext.Shown, the rule registration refuses by).
func isFormat(r rune) bool { return !safetext.Shown(r) }

// Message writes a page with a heading and one paragraph, with the given
// status; 0 means 200.
func (p *Pages) Message(w http.ResponseWriter, r *http.Request, status int, d MessageData) {
	p.render(w, r, orStatus(status, http.StatusOK), "message", d)
}

// Account writes the account page with the given status; 0 means 200
// (use 400 to show a refused password change). Format characters are
// removed from everything a client chose (see [Visible]); ClientID is
// posted back unchanged and shown through visible.
func (p *Pages) Account(w http.ResponseWriter, r *http.Request, status int, d AccountData) {
	if d.CSRF == "" {
		d.CSRF = p.CSRFToken(w, r)
	}
	agents := make([]AgentItem, len(d.Agents))
	for i, a := range d.Agents {
		if a.ClientName == "" {
			a.ClientName = a.ClientID
		}
		a.ClientName, a.Publisher = Visible(a.ClientName), Visible(a.Publisher)
		calls := make([]ToolCallItem, len(a.ToolCalls))
		for j, c := range a.ToolCalls {
			c.Tool = Visible(c.Tool)
			calls[j] = c
		}
		a.ToolCalls = calls
		agents[i] = a
	}
	d.Agents = agents
	passkeys := make([]PasskeyItem, len(d.Passkeys))
	for i, k := range d.Passkeys {
		k.Name = Visible(k.Name)
		passkeys[i] = k
	}
	d.Passkeys = passkeys
	p.render(w, r, orStatus(status, http.StatusOK), "account", d)
}

// render executes a page into a buffer first, so that a template error
// becomes a clean 500 instead of half a page, then writes it with the
// security headers, so that a page is protected even on a route someone
// forgot to wrap in SecureHeaders.
func (p *Pages) render(w http.ResponseWriter, r *http.Request, status int, page string, data any) {
	var buf bytes.Buffer
	err := p.tmpl[page].ExecuteTemplate(&buf, "layout", view{Product: p.product, Named: p.named, Logo: p.logo, Host: p.host, Stylesheet: p.stylesheet, Script: p.script, Page: data})
	h := w.Header()
	setSecurityHeaders(h)
	h.Set("Content-Security-Policy", p.csp)
	if err != nil {
		p.log.ErrorContext(r.Context(), "web: render page", "page", page, "err", err)
		http.Error(w, http.StatusText(http.StatusInternalServerError), http.StatusInternalServerError)
		return
	}
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Length", strconv.Itoa(buf.Len()))
	w.WriteHeader(status)
	// An error here means the client went away; there is no one to tell.
	_, _ = w.Write(buf.Bytes())
}

func orStatus(status, def int) int {
	if status == 0 {
		return def
	}
	return status
}

// redirectHost is what the consent page names as the destination: the
// host (with port) of an http or https redirect URI, or "the app
// <scheme>" for any other scheme. A private-use scheme opens whichever
// app claimed it, so the host it may name (com.evil.app://github.com/cb)
// says nothing about where the code goes.
func redirectHost(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return raw
	}
	switch scheme := strings.ToLower(u.Scheme); {
	case (scheme == "http" || scheme == "https") && u.Host != "":
		return u.Host
	case scheme != "" && scheme != "http" && scheme != "https":
		return "the app " + u.Scheme
	}
	return raw
}

func formatTime(t time.Time) string {
	return t.UTC().Format("2 Jan 2006 15:04 UTC")
}
