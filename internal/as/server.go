package as

import (
	"context"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"github.com/go-webauthn/webauthn/webauthn"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/gatehouse-mcp/gatehouse/internal/clientip"
	"github.com/gatehouse-mcp/gatehouse/internal/oauth"
	"github.com/gatehouse-mcp/gatehouse/internal/storage"
	"github.com/gatehouse-mcp/gatehouse/internal/token"
	"github.com/gatehouse-mcp/gatehouse/internal/web"
)

// Options configures a Server. Zero durations take the documented defaults.
type Options struct {
	// Issuer is the issuer identifier (RFC 8414 §2): an https URL (http only
	// for loopback in dev mode) with no query or fragment and no trailing
	// slash. Required. Metadata repeats it byte for byte.
	Issuer string
	// Store keeps all state. Required.
	Store storage.Store
	// Keyring signs access tokens. Required.
	Keyring *token.Keyring
	// Pages renders the browser pages. Required.
	Pages *web.Pages
	// Logger receives one line per error with its cause; nil discards.
	Logger *slog.Logger
	// Now is the clock. Required: nothing outside cmd/ reads the wall clock.
	Now func() time.Time
	// Rand is the source of every secret; nil means crypto/rand.
	Rand io.Reader
	// Secret is the server's own secret, the same on every replica, from
	// which it derives the key that makes self-registered client ids
	// unguessable (and the same for identical registrations on every
	// replica) and the key that seals pending authorization requests into
	// the login and consent forms (so any replica can finish them). At
	// least 32 random bytes; nil means a random secret for this process,
	// which only suits a single process (dev, tests).
	Secret []byte

	// AccessTokenTTL is the access-token lifetime; default 10 minutes.
	AccessTokenTTL time.Duration
	// RefreshTokenTTL is how long an unused refresh token stays valid;
	// default 30 days. Each rotation starts a new period.
	RefreshTokenTTL time.Duration
	// GrantTTL is the absolute lifetime of a grant (refresh family); default 90 days.
	GrantTTL time.Duration
	// CodeTTL is the authorization-code lifetime; default 60 seconds.
	CodeTTL time.Duration
	// AuthRequestTTL is how long a user has to log in and consent; default 15 minutes.
	AuthRequestTTL time.Duration
	// SessionTTL is the browser session lifetime; default 12 hours.
	SessionTTL time.Duration
	// RefreshRetryWindow is how long after a rotation an identical replay of
	// the same refresh request gets the same answer instead of revoking the
	// family (agents retry); default 30 seconds. Negative disables it.
	RefreshRetryWindow time.Duration
	// LoginMaxFailures is how many failed logins per account or per IP are
	// allowed in LoginWindow before further attempts are refused with
	// Retry-After; default 5 per account, 4× that per IP.
	LoginMaxFailures int
	// LoginWindow is the failure-counting window; default 15 minutes.
	LoginWindow time.Duration
	// ClientAuthMaxFailures bounds failed client authentications per client
	// in LoginWindow; default 20.
	ClientAuthMaxFailures int
	// TrustProxyHeaders makes the client IP (of rate limits, login
	// throttling and the audit log) come from X-Forwarded-For, read from
	// the right: the entries at the left came from the client and can be
	// forged. Only set it behind a proxy that appends to or overwrites the
	// header. An entry that is not an IP address means the peer address.
	TrustProxyHeaders bool
	// TrustedProxies are the proxies whose X-Forwarded-For entries are
	// believed (see [clientip.Resolver]). Empty trusts one hop, the peer:
	// the last entry is the client.
	TrustedProxies []netip.Prefix
	// OnGrant, if set, is called once per token request with the grant type
	// and the outcome ("success" or the OAuth error code), for metrics.
	OnGrant func(grantType, outcome string)
	// AllowHTTPIssuer accepts an http issuer: dev mode on loopback, or an
	// operator's explicit override behind a TLS-terminating proxy.
	// Default false: https only.
	AllowHTTPIssuer bool
	// Upstreams are the upstream OpenID Connect providers the sign-in page
	// offers ("Continue with …"); see [Upstream]. Nil offers none.
	Upstreams []Upstream
	// Delegate is a SaaS that signs its own users in on its own login
	// page (delegated login, see [Delegate]). Nil means none.
	Delegate *Delegate
	// DisableLocalLogin hides the username and password form and refuses
	// password sign-ins: only Upstreams and the Delegate sign people in;
	// with the Delegate alone, /authorize sends the browser straight to
	// its login page. Default false.
	DisableLocalLogin bool
	// Registration configures dynamic client registration (RFC 7591/7592)
	// and client ID metadata documents; see [Registration]. The zero
	// value disables both.
	Registration Registration
	// TokenExchange configures the RFC 8693 token exchange grant; see
	// [TokenExchange]. The zero value (no clients) disables the grant.
	TokenExchange TokenExchange
	// DPoP configures sender-constrained tokens (RFC 9449); see [DPoP].
	// The zero value accepts proofs without a nonce.
	DPoP DPoP
	// Passkeys configures sign-in with passkeys (WebAuthn); see
	// [Passkeys]. The zero value derives the relying party from the
	// issuer, and turns passkeys off when its host is an IP address.
	Passkeys Passkeys
}

// Server is the authorization server.
type Server struct {
	opts     Options
	issuer   *url.URL
	base     string // issuer path without trailing slash, "" for a root issuer
	log      *slog.Logger
	now      func() time.Time
	rand     io.Reader
	secure   bool
	metadata atomic.Pointer[cachedMetadata]

	// Caches of what every token request reads (cache.go), and the audit
	// log's group commit (audit.go).
	clients    *ttlCache[string, storage.Client]
	resources  *ttlCache[string, storage.Resource]
	oneRes     *ttlCache[struct{}, []storage.Resource]
	unlocked   *ttlCache[string, struct{}] // clients with no failed authentications
	auditLog   *groupCommit
	mux        *http.ServeMux
	reg        *registry // registration state (register.go)
	dedupKey   []byte    // keys derived client ids (slotID), from Options.Secret
	pendingKey []byte    // seals pending authorization requests (pending.go), upstream sign-ins (upstream.go) and delegated ones (delegate.go)
	upstreams  map[string]*upstream
	delegate   *delegate                   // nil: no delegated login (delegate.go)
	exchange   map[string][]exchangePolicy // by client id; nil: no token exchange (token_exchange.go)
	nonceKey   []byte                      // makes DPoP nonces (dpop.go), from Options.Secret
	webauthn   *webauthn.WebAuthn          // nil: passkeys off (passkey.go)
}

// Endpoint paths, relative to the issuer.
const (
	pathAuthorize  = "/authorize"
	pathLogin      = "/login"
	pathConsent    = "/consent"
	pathToken      = "/token"
	pathRevoke     = "/revoke"
	pathIntrospect = "/introspect"
	pathJWKS       = "/jwks"
	pathConsents   = "/account/consents"
	pathLogout     = "/logout"
	pathStatic     = "/static/"
)

// New returns a Server for opts.
func New(opts Options) (*Server, error) {
	if opts.Store == nil || opts.Keyring == nil || opts.Pages == nil || opts.Now == nil {
		return nil, errors.New("as: Store, Keyring, Pages and Now are required")
	}
	iss, err := ParseIssuer(opts.Issuer, opts.AllowHTTPIssuer)
	if err != nil {
		return nil, err
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&opts.AccessTokenTTL, 10*time.Minute)
	def(&opts.RefreshTokenTTL, 30*24*time.Hour)
	def(&opts.GrantTTL, 90*24*time.Hour)
	def(&opts.CodeTTL, 60*time.Second)
	def(&opts.AuthRequestTTL, 15*time.Minute)
	def(&opts.SessionTTL, 12*time.Hour)
	def(&opts.RefreshRetryWindow, 30*time.Second)
	def(&opts.LoginWindow, 15*time.Minute)
	if opts.LoginMaxFailures == 0 {
		opts.LoginMaxFailures = 5
	}
	if opts.ClientAuthMaxFailures == 0 {
		opts.ClientAuthMaxFailures = 20
	}
	s := &Server{
		opts:   opts,
		issuer: iss,
		base:   strings.TrimSuffix(iss.Path, "/"),
		log:    opts.Logger,
		now:    opts.Now,
		rand:   opts.Rand,
		secure: iss.Scheme == "https",
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.clients = newTTLCache[string, storage.Client](s.now)
	s.resources = newTTLCache[string, storage.Resource](s.now)
	s.oneRes = newTTLCache[struct{}, []storage.Resource](s.now)
	s.unlocked = newTTLCache[string, struct{}](s.now)
	s.auditLog = &groupCommit{store: opts.Store}
	if s.rand == nil {
		s.rand = rand.Reader
	}
	secret := opts.Secret
	switch {
	case len(secret) == 0:
		secret = make([]byte, 32)
		if _, err := io.ReadFull(s.rand, secret); err != nil {
			return nil, fmt.Errorf("as: random secret: %w", err)
		}
	case len(secret) < 32:
		return nil, errors.New("as: Secret must be at least 32 bytes")
	}
	if s.dedupKey, err = hkdf.Key(sha256.New, secret, nil, "gatehouse dcr client ids v2", 32); err != nil {
		return nil, err
	}
	if s.nonceKey, err = hkdf.Key(sha256.New, secret, nil, "gatehouse dpop nonces v1", 32); err != nil {
		return nil, err
	}
	if s.pendingKey, err = hkdf.Key(sha256.New, secret, nil, "gatehouse pending authorization requests v1", token.KeySize); err != nil {
		return nil, err
	}
	if opts.DisableLocalLogin && len(opts.Upstreams) == 0 && opts.Delegate == nil {
		return nil, errors.New("as: DisableLocalLogin needs at least one of Upstreams, or a Delegate")
	}
	if s.delegate, err = newDelegate(opts.Delegate); err != nil {
		return nil, err
	}
	if s.upstreams, err = newUpstreams(opts.Upstreams); err != nil {
		return nil, err
	}
	if s.reg, err = newRegistry(&s.opts.Registration); err != nil {
		return nil, err
	}
	if s.exchange, err = newExchangePolicies(&s.opts.TokenExchange); err != nil {
		return nil, err
	}
	if s.webauthn, err = newWebAuthn(opts.Passkeys, iss); err != nil {
		return nil, err
	}
	b, err := s.buildMetadata(context.Background())
	if err != nil {
		return nil, fmt.Errorf("build metadata: %w", err)
	}
	s.metadata.Store(&cachedMetadata{body: b, built: s.now()})
	s.routes()
	return s, nil
}

// ParseIssuer checks an issuer identifier against RFC 8414 §2: an https URL
// with no query or fragment (http is accepted when allowHTTP is set: dev
// mode on loopback, or an operator's explicit override). A trailing slash is refused because the
// metadata issuer must equal the configured one byte for byte and clients
// build well-known URLs from it.
func ParseIssuer(s string, allowHTTP bool) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("issuer %q is not an absolute URL", s)
	}
	if u.RawQuery != "" || u.Fragment != "" || strings.Contains(s, "#") {
		return nil, fmt.Errorf("issuer %q must not have a query or fragment", s)
	}
	if strings.HasSuffix(u.Path, "/") {
		return nil, fmt.Errorf("issuer %q must not end with a slash", s)
	}
	switch u.Scheme {
	case "https":
	case "http":
		if !allowHTTP {
			return nil, fmt.Errorf("issuer %q must use https (http only in dev mode or with allow_insecure_issuer)", s)
		}
	default:
		return nil, fmt.Errorf("issuer %q must use https", s)
	}
	if u.User != nil {
		return nil, fmt.Errorf("issuer %q must not contain user information", s)
	}
	return u, nil
}

// Issuer returns the issuer identifier.
func (s *Server) Issuer() string { return s.opts.Issuer }

// endpoint returns the absolute URL of an endpoint path.
func (s *Server) endpoint(p string) string { return s.opts.Issuer + p }

// ServeHTTP implements http.Handler. Every response starts with safe
// defaults — no sniffing, no framing, no active content — which the
// browser pages replace with their own fuller policy; this covers the
// responses no route writes, such as the mux's path-cleaning redirects.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'; base-uri 'none'")
	h.Set("Referrer-Policy", "no-referrer")
	s.mux.ServeHTTP(w, r)
}

func (s *Server) routes() {
	mux := http.NewServeMux()
	b := s.base
	// Discovery: RFC 8414 path insertion, OIDC path insertion and the OIDC
	// path append form, so every client's try order finds the same bytes
	// (SPEC-CHECKLIST §3.3).
	meta := cors(http.HandlerFunc(s.handleMetadata))
	mux.Handle("/.well-known/oauth-authorization-server"+b, meta)
	mux.Handle("/.well-known/openid-configuration"+b, meta)
	if b != "" {
		mux.Handle(b+"/.well-known/openid-configuration", meta)
		mux.Handle(b+"/.well-known/oauth-authorization-server", meta)
	}
	mux.Handle(b+pathJWKS, cors(http.HandlerFunc(s.handleJWKS)))

	api := func(h func(http.ResponseWriter, *http.Request) error) http.Handler {
		return cors(s.apiHandler(h))
	}
	mux.Handle(b+pathToken, api(s.handleToken))
	mux.Handle(b+pathRevoke, api(s.handleRevoke))
	mux.Handle(b+pathIntrospect, api(s.handleIntrospect))
	mux.Handle(b+pathRegister, api(s.handleRegister))
	mux.Handle(b+pathRegister+"/", regCORS(s.apiHandler(s.handleClientConfig)))

	browser := func(h http.HandlerFunc) http.Handler { return web.SecureHeaders(h) }
	mux.Handle(b+pathAuthorize, browser(s.handleAuthorize))
	mux.Handle(b+pathLogin, browser(s.handleLogin))
	mux.Handle(b+pathUpstream+"{provider}", browser(s.handleUpstreamStart))
	mux.Handle(b+pathUpstream+"{provider}/callback", browser(s.handleUpstreamCallback))
	mux.Handle(b+pathDelegate, browser(s.handleDelegateStart))
	mux.Handle(b+pathDelegateCallback, browser(s.handleDelegateCallback))
	mux.Handle(b+pathConsent, browser(s.handleConsent))
	mux.Handle(b+pathConsents, browser(s.handleConsents))
	mux.Handle(b+pathAccount, browser(s.handleAccount))
	mux.Handle(b+pathAccountLogin, browser(s.handleAccountLogin))
	mux.Handle(b+pathAccountRevoke, browser(s.handleAccountRevoke))
	mux.Handle(b+pathAccountPassword, browser(s.handleAccountPassword))
	mux.Handle(b+pathAccountSessions, browser(s.handleAccountSessions))
	mux.Handle(b+pathAccountPasskeyOptions, browser(s.handlePasskeyRegisterOptions))
	mux.Handle(b+pathAccountPasskeyAdd, browser(s.handlePasskeyAdd))
	mux.Handle(b+pathAccountPasskeyRename, browser(s.handlePasskeyRename))
	mux.Handle(b+pathAccountPasskeyRemove, browser(s.handlePasskeyRemove))
	mux.Handle(b+pathPasskeyOptions, browser(s.handlePasskeyLoginOptions))
	mux.Handle(b+pathPasskeyLogin, browser(s.handlePasskeyLogin))
	mux.Handle(b+pathLogout, browser(s.handleLogout))
	mux.Handle(b+pathStatic, http.StripPrefix(b, s.opts.Pages.StaticHandler()))
	mux.Handle("/", browser(s.handleNotFound))
	s.mux = mux
}

// apiHandler adapts a handler that returns an error: *oauth.Error values are
// written as JSON with their status; anything else becomes server_error and
// is logged with its cause, never sent.
func (s *Server) apiHandler(h func(http.ResponseWriter, *http.Request) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		err := h(w, r)
		if err == nil {
			return
		}
		oe := oauth.As(err)
		noteError(r.Context(), oe.Code)
		if oe.Code == oauth.ServerError || oe.Cause != nil {
			s.log.LogAttrs(r.Context(), levelFor(oe), "request failed",
				slog.String("path", r.URL.Path), slog.String("error", string(oe.Code)),
				slog.String("description", oe.Description), slog.Any("cause", oe.Cause))
		}
		oauth.WriteJSON(w, oe)
	})
}

func levelFor(oe *oauth.Error) slog.Level {
	if oe.HTTPStatus() >= 500 {
		return slog.LevelError
	}
	return slog.LevelInfo
}

// cors opens a route to browser clients (MCP Inspector and other web
// clients read metadata and call /token from a page). No credentials are
// allowed, so a page gains nothing it could not do from a server. A page's
// DPoP client sends the DPoP header and must read DPoP-Nonce (RFC 9449 §8).
func cors(next http.Handler) http.Handler {
	return corsAllowing("GET, POST, OPTIONS", "Authorization, Content-Type, MCP-Protocol-Version, DPoP", next)
}

// regCORS opens the client configuration endpoint to browser clients
// (MCP Inspector registers from a page); like cors, but its preflight
// allows PUT and DELETE.
func regCORS(next http.Handler) http.Handler {
	return corsAllowing("GET, PUT, DELETE, OPTIONS", "Authorization, Content-Type", next)
}

// corsAllowing answers preflights with methods and headers and lets any
// origin read next's responses (without credentials).
func corsAllowing(methods, headers string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Access-Control-Allow-Origin", "*")
		h.Set("Access-Control-Expose-Headers", "DPoP-Nonce")
		h.Set("X-Content-Type-Options", "nosniff")
		if r.Method == http.MethodOptions {
			h.Set("Access-Control-Allow-Methods", methods)
			h.Set("Access-Control-Allow-Headers", headers)
			h.Set("Access-Control-Max-Age", "86400")
			w.WriteHeader(http.StatusNoContent)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func (s *Server) handleNotFound(w http.ResponseWriter, r *http.Request) {
	s.opts.Pages.Error(w, r, http.StatusNotFound, web.ErrorData{
		Title:       "Page not found",
		Description: "There is nothing at this address. If an app sent you here, go back to it and sign in again.",
	})
}

// clientIP returns the caller's IP for throttling and the audit log: an
// IP address in normal form, never text from a header that is not one.
func (s *Server) clientIP(r *http.Request) string {
	return clientip.Resolver{TrustHeaders: s.opts.TrustProxyHeaders, TrustedProxies: s.opts.TrustedProxies}.ClientIP(r)
}

// audit appends an event to the audit log, committed before it returns.
// A failure is logged and does not fail the request: this is for events
// that hand nothing out (refusals, failed logins, revocations, consent).
// An event recording what the response hands out uses auditIssued.
func (s *Server) audit(ctx context.Context, r *http.Request, e storage.AuditEvent) {
	if err := s.appendAudit(ctx, r, e); err != nil {
		s.log.ErrorContext(ctx, "audit append failed", slog.String("type", e.Type), slog.Any("cause", err))
	}
}

// auditIssued appends an event recording what the response hands out (a
// token, a code, a client's credentials), committed before it returns.
// If it cannot be written, the response must not be sent: the error is
// server_error (500), so nothing is handed out that the audit log does
// not show (issue 20 F1).
func (s *Server) auditIssued(ctx context.Context, r *http.Request, e storage.AuditEvent) error {
	if err := s.appendAudit(ctx, r, e); err != nil {
		return oauth.Internal(fmt.Errorf("audit %s: %w", e.Type, err))
	}
	return nil
}

// appendAudit stamps e and commits it, in a batch with concurrent
// requests' events.
func (s *Server) appendAudit(ctx context.Context, r *http.Request, e storage.AuditEvent) error {
	e.Time = s.now().UTC()
	noteClient(ctx, e.ClientID)
	if r != nil && e.IP == "" {
		e.IP = s.clientIP(r)
	}
	return s.auditLog.append(ctx, e)
}

// newSecret returns a fresh 256-bit secret.
func (s *Server) newSecret() (string, error) { return token.NewSecret(s.rand) }

// newID returns a random identifier for rows that are not secrets
// (auth requests, grants, jti).
func (s *Server) newID() (string, error) {
	id, err := token.NewSecret(s.rand)
	if err != nil {
		return "", err
	}
	return id[:22], nil // 132 bits: plenty for an identifier
}
