package as

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	jose "github.com/go-jose/go-jose/v4"
	"golang.org/x/oauth2"

	"github.com/gatehouse-mcp/gatehouse/internal/oauth"
	"github.com/gatehouse-mcp/gatehouse/internal/storage"
	"github.com/gatehouse-mcp/gatehouse/internal/token"
	"github.com/gatehouse-mcp/gatehouse/internal/web"
)

// Upstream is an upstream OpenID Connect provider people can sign in with
// (issue 14 item 1). Gatehouse is its confidential client: authorization
// code with PKCE (S256), state and nonce; its redirect URI is
// <issuer>/login/oidc/<Name>/callback.
type Upstream struct {
	// Name identifies the provider in URLs, audit events and the user
	// names of the people it signs in. Required, unique.
	Name string
	// DisplayName is shown on the button ("Continue with …") and the
	// error pages. Empty means Name.
	DisplayName string
	// Issuer is the provider's issuer identifier; its metadata is read
	// from Issuer + "/.well-known/openid-configuration" on first use (and
	// again after a failure), and must name the same issuer.
	Issuer string
	// ClientID is Gatehouse's client id at the provider. Required.
	ClientID string
	// ClientSecret is Gatehouse's client secret at the provider, sent
	// as PostSecret says. Exactly one of ClientSecret and ClientKey is
	// required.
	ClientSecret string
	// ClientKey, when set, authenticates Gatehouse at the provider's
	// token endpoint with private_key_jwt (OpenID Connect Core §9, RFC
	// 7523 §2.2) instead of a secret: each token request carries a fresh
	// JWT signed with it, iss and sub the client id, aud the provider's
	// token endpoint, a random jti, valid for [clientAssertionTTL]. An
	// *ecdsa.PrivateKey on P-256 signs with ES256, an *rsa.PrivateKey of
	// at least 2048 bits with RS256; any other key is refused by [New].
	ClientKey crypto.Signer
	// ClientKeyID is the kid header of the client assertions: the key's
	// id in the JWK Set registered at the provider. Empty sends no kid.
	ClientKeyID string
	// Scopes are requested; nil means openid email profile.
	Scopes []string
	// SubjectClaim, EmailClaim, NameClaim and GroupsClaim name the claims
	// read from the ID token, or from the userinfo response when the ID
	// token lacks one of them. Empty means sub, email, name and groups.
	// (provider, subject) is the identity: the same subject is the same
	// user at every sign-in; the email never identifies anyone. The
	// groups claim (a list of strings, or one string) replaces, at each
	// sign-in, the groups this provider gave the user before
	// ([storage.UserGroups.SetUpstreamGroups]); scope policies see them
	// with the groups an operator added.
	SubjectClaim, EmailClaim, NameClaim, GroupsClaim string
	// PolicyClaims names the claims whose values are kept at each sign-in
	// for the claim conditions of scope policies (storage.ScopePolicy.Claims,
	// [storage.UserClaims.SetUpstreamClaims]): each a string, a boolean
	// ("true" or "false"), a number, or a list of those; an absent claim
	// keeps no value. Only these are kept: a policy naming another claim is
	// never met by this provider's users. The values are the provider's
	// word, so name only claims the provider vouches for (not, say, an
	// email that may be unverified).
	PolicyClaims []string
	// PostSecret sends the client secret in the token request's body
	// (client_secret_post); false sends it with HTTP Basic
	// (client_secret_basic), the OpenID Connect default.
	PostSecret bool
	// AllowedEmailDomains, if set, admits only people whose email claim
	// is at one of these domains (exact, case-insensitive) and not marked
	// email_verified false.
	AllowedEmailDomains []string
	// RequiredClaims admits only people whose claims hold these values:
	// a string equal to it, a boolean equal to "true" or "false", or a
	// list containing it.
	RequiredClaims map[string]string
	// LinkByVerifiedEmail links the first sign-in of a person of this
	// provider to an existing local user instead of provisioning one,
	// when the email claim is an address with email_verified true (the
	// JSON boolean), exactly one local user's name equals that address
	// (ignoring case; local users have no email field: their user name
	// is the address), and that user has no identity at this provider
	// yet. Every link is audited as user.linked. false (the default)
	// never links: the person gets a new user.
	LinkByVerifiedEmail bool
	// HTTPClient makes every request to the provider; nil means one with
	// a 10-second timeout.
	HTTPClient *http.Client
}

// upstream is a configured provider and its metadata, read once.
type upstream struct {
	cfg    Upstream
	keyAlg jose.SignatureAlgorithm // of cfg.ClientKey; "" without one

	mu       sync.Mutex
	provider *oidc.Provider
	verifier *oidc.IDTokenVerifier
	issParam bool // authorization_response_iss_parameter_supported (RFC 9207 §3)
}

// Paths of an upstream sign-in, under the issuer: the login page's button
// posts to pathUpstream+name, the provider sends the browser back to
// pathUpstream+name+"/callback".
const pathUpstream = "/login/oidc/"

// upstreamFlightTTL bounds how long a person has at the provider.
const upstreamFlightTTL = 10 * time.Minute

// upstreamUserPrefix starts the user name of every user an upstream
// provider provisioned: "oidc:<provider>:<subject>". `gatehouse user add`
// refuses such names, so a local user never takes one.
const upstreamUserPrefix = "oidc:"

// UpstreamUsername is the user name of the person subject of provider.
func UpstreamUsername(provider, subject string) string {
	return upstreamUserPrefix + provider + ":" + subject
}

// IsUpstreamUsername reports whether name has the form of
// [UpstreamUsername]: local users may not take it.
func IsUpstreamUsername(name string) bool { return strings.HasPrefix(name, upstreamUserPrefix) }

// newUpstreams checks the providers and indexes them by name.
func newUpstreams(ups []Upstream) (map[string]*upstream, error) {
	m := map[string]*upstream{}
	for _, u := range ups {
		switch {
		case u.Name == "" || strings.ContainsAny(u.Name, "/:?#% "):
			return nil, fmt.Errorf("as: upstream name %q must be a non-empty URL path segment without ':'", u.Name)
		case m[u.Name] != nil:
			return nil, fmt.Errorf("as: upstream name %q is used twice", u.Name)
		case u.Issuer == "" || u.ClientID == "" || (u.ClientSecret == "") == (u.ClientKey == nil):
			return nil, fmt.Errorf("as: upstream %q needs Issuer, ClientID and one of ClientSecret and ClientKey", u.Name)
		}
		var alg jose.SignatureAlgorithm
		if u.ClientKey != nil {
			var err error
			if alg, err = ClientKeyAlgorithm(u.ClientKey); err != nil {
				return nil, fmt.Errorf("as: upstream %q: %w", u.Name, err)
			}
		}
		if u.DisplayName == "" {
			u.DisplayName = u.Name
		}
		if len(u.Scopes) == 0 {
			u.Scopes = []string{oidc.ScopeOpenID, "email", "profile"}
		}
		for _, c := range []struct {
			f   *string
			def string
		}{{&u.SubjectClaim, "sub"}, {&u.EmailClaim, "email"}, {&u.NameClaim, "name"}, {&u.GroupsClaim, "groups"}} {
			if *c.f == "" {
				*c.f = c.def
			}
		}
		if u.HTTPClient == nil {
			u.HTTPClient = &http.Client{Timeout: 10 * time.Second}
		}
		m[u.Name] = &upstream{cfg: u, keyAlg: alg}
	}
	return m, nil
}

// discover returns the provider's metadata and ID-token verifier, reading
// the metadata on first use. A failure is not kept: the next sign-in
// tries again. The verifier's key set (upstreamKeySet) fetches the JWKS
// again when an ID token is signed with a key it does not have (one
// fetch at a time, at most once per jwksRefetchInterval), so a
// provider's key rotation needs no restart.
func (u *upstream) discover(ctx context.Context, now func() time.Time) (*oidc.Provider, *oidc.IDTokenVerifier, bool, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.provider != nil {
		return u.provider, u.verifier, u.issParam, nil
	}
	// The key set keeps this context for its fetches (go-oidc uses it as
	// a bag of values, not for cancellation): it carries the HTTP client.
	dctx := oidc.ClientContext(context.WithoutCancel(ctx), u.cfg.HTTPClient)
	p, err := oidc.NewProvider(dctx, u.cfg.Issuer)
	if err != nil {
		return nil, nil, false, err
	}
	var meta struct {
		IssParam bool     `json:"authorization_response_iss_parameter_supported"`
		JWKSURL  string   `json:"jwks_uri"`
		Algs     []string `json:"id_token_signing_alg_values_supported"`
	}
	if err := p.Claims(&meta); err != nil {
		return nil, nil, false, err
	}
	if meta.JWKSURL == "" {
		return nil, nil, false, errors.New("the provider's metadata has no jwks_uri")
	}
	u.provider, u.issParam = p, meta.IssParam
	keys := &upstreamKeySet{jwksURL: meta.JWKSURL, client: u.cfg.HTTPClient, now: now}
	// As p.Verifier would: the asymmetric algorithms the provider says it
	// signs ID tokens with (go-oidc's default, RS256, when it says none).
	algs := slices.DeleteFunc(meta.Algs, func(a string) bool { return !slices.Contains(upstreamAlgs, a) })
	u.verifier = oidc.NewVerifier(u.cfg.Issuer, keys, &oidc.Config{ClientID: u.cfg.ClientID, Now: now, SupportedSigningAlgs: algs})
	return u.provider, u.verifier, u.issParam, nil
}

// upstreamAlgs are the ID-token signature algorithms accepted from a
// provider: go-oidc's supported (asymmetric) ones.
var upstreamAlgs = []string{oidc.RS256, oidc.RS384, oidc.RS512, oidc.ES256, oidc.ES384, oidc.ES512, oidc.PS256, oidc.PS384, oidc.PS512, oidc.EdDSA}

// oauth2Config is the provider as an OAuth client configuration.
func (u *upstream) oauth2Config(p *oidc.Provider, redirectURI string) *oauth2.Config {
	ep := p.Endpoint()
	ep.AuthStyle = oauth2.AuthStyleInHeader
	if u.cfg.PostSecret || u.cfg.ClientKey != nil {
		// With a client key ClientSecret is empty: x/oauth2 then puts
		// only client_id in the body, and the assertion goes with it
		// (exchangeOptions).
		ep.AuthStyle = oauth2.AuthStyleInParams
	}
	return &oauth2.Config{ClientID: u.cfg.ClientID, ClientSecret: u.cfg.ClientSecret, Endpoint: ep, RedirectURL: redirectURI, Scopes: u.cfg.Scopes}
}

// clientAssertionTTL is how long a client assertion is valid: one token
// request, with room for clock skew at the provider.
const clientAssertionTTL = 2 * time.Minute

// clientAssertionType is the client_assertion_type of a JWT client
// assertion (RFC 7523 §2.2).
const clientAssertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

// ClientKeyAlgorithm is the JWS algorithm Gatehouse signs client
// assertions with using key: ES256 for an ECDSA P-256 key, RS256 for an
// RSA key of at least 2048 bits. Any other key is an error: ES256 and
// RS256 are the algorithms providers take for private_key_jwt (RS256 is
// the one every OpenID provider must support).
func ClientKeyAlgorithm(key crypto.Signer) (jose.SignatureAlgorithm, error) {
	switch k := key.(type) {
	case *ecdsa.PrivateKey:
		if k.Curve != elliptic.P256() {
			return "", fmt.Errorf("the client key is an ECDSA key on %s; only P-256 (ES256) is supported", k.Curve.Params().Name)
		}
		return jose.ES256, nil
	case *rsa.PrivateKey:
		if k.N.BitLen() < 2048 {
			return "", fmt.Errorf("the client key is a %d-bit RSA key; at least 2048 bits are needed", k.N.BitLen())
		}
		return jose.RS256, nil
	}
	return "", fmt.Errorf("the client key is a %T; only ECDSA P-256 (ES256) and RSA (RS256) keys are supported", key)
}

// exchangeOptions are the extra parameters of the token request: with a
// client key, a fresh client assertion (RFC 7523 §2.2) for the token
// endpoint tokenURL. Its aud is the token endpoint URL, as OpenID Connect
// Core §9 says it should be and RFC 7523 §3 allows; jti is random, so a
// provider that remembers jti values can refuse a replayed one.
func (s *Server) exchangeOptions(up *upstream, tokenURL string) ([]oauth2.AuthCodeOption, error) {
	if up.cfg.ClientKey == nil {
		return nil, nil
	}
	jti, err := s.newSecret()
	if err != nil {
		return nil, err
	}
	now := s.now()
	claims := map[string]any{
		"iss": up.cfg.ClientID, "sub": up.cfg.ClientID, "aud": tokenURL, "jti": jti,
		"iat": now.Unix(), "exp": now.Add(clientAssertionTTL).Unix(),
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		return nil, err
	}
	opts := (&jose.SignerOptions{}).WithType("JWT")
	if up.cfg.ClientKeyID != "" {
		opts = opts.WithHeader(jose.HeaderKey("kid"), up.cfg.ClientKeyID)
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: up.keyAlg, Key: up.cfg.ClientKey}, opts)
	if err != nil {
		return nil, fmt.Errorf("client assertion signer: %w", err)
	}
	jws, err := signer.Sign(payload)
	if err != nil {
		return nil, fmt.Errorf("sign client assertion: %w", err)
	}
	compact, err := jws.CompactSerialize()
	if err != nil {
		return nil, err
	}
	return []oauth2.AuthCodeOption{
		oauth2.SetAuthURLParam("client_assertion_type", clientAssertionType),
		oauth2.SetAuthURLParam("client_assertion", compact),
	}, nil
}

// upstreamFlight is a sign-in in progress at a provider. It travels
// sealed in a short-lived cookie of the browser that started it, named
// after its state (so sign-ins in two tabs do not overwrite each other):
// a response from the provider counts only in that browser, with that
// state, once. It carries the pending authorization request as the forms
// do (pending.go), so nothing is stored until the sign-in ends.
type upstreamFlight struct {
	Provider  string    `json:"provider"`
	State     string    `json:"state"`
	Nonce     string    `json:"nonce"`
	Verifier  string    `json:"verifier"`
	Request   string    `json:"request"` // the sealed pending request, as in the forms
	MaxAge    int64     `json:"max_age"` // -1: none asked
	ExpiresAt time.Time `json:"expires_at"`
}

// flightAAD binds sealed flights to their purpose.
var flightAAD = []byte("gatehouse upstream sign-in v1")

// flightCookie is the name of the cookie of the flight with state.
func flightCookie(state string) string { return "gh_oidc_" + token.Hash(state)[:16] }

// upstreamFailure is why an upstream sign-in failed: shown on the error
// page (naming the provider), and audited as login.upstream_failed.
type upstreamFailure struct {
	status int
	reason string // for the person, and the audit log
	detail string // for the developer; never a secret
	cause  error  // logged only
	// unaudited: a response that belongs to no sign-in of this browser
	// (anyone can send one, any number of times): it is logged, not
	// written to the audit log, so that a stranger cannot fill it.
	unaudited bool
}

// handleUpstreamStart starts a sign-in at a provider: the login page's
// "Continue with …" button posts here, with the CSRF token and the sealed
// pending request; the browser is sent to the provider's authorization
// endpoint with PKCE (S256), state and nonce, and prompt=login and
// max_age when the client asked for them.
func (s *Server) handleUpstreamStart(w http.ResponseWriter, r *http.Request) {
	up := s.upstreams[r.PathValue("provider")]
	if up == nil {
		s.handleNotFound(w, r)
		return
	}
	if !s.parseBrowserForm(w, r) {
		return
	}
	p, ok := s.loadPendingRequest(w, r)
	if !ok {
		return
	}
	ctx := r.Context()
	prov, _, _, err := up.discover(ctx, s.now)
	if err != nil {
		s.upstreamFailed(w, r, up, p.ClientID, upstreamFailure{status: http.StatusBadGateway,
			reason: "Gatehouse could not reach " + up.cfg.DisplayName + ".", detail: "reading the provider's OpenID Connect metadata failed", cause: err})
		return
	}
	var f upstreamFlight
	for _, v := range []*string{&f.State, &f.Nonce, &f.Verifier} {
		if *v, err = s.newSecret(); err != nil {
			s.serverErrorPage(w, r, err)
			return
		}
	}
	f.Provider, f.Request, f.MaxAge = up.cfg.Name, r.PostForm.Get("request"), -1
	f.ExpiresAt = s.now().Add(upstreamFlightTTL)
	if p.ExpiresAt.Before(f.ExpiresAt) {
		f.ExpiresAt = p.ExpiresAt
	}
	opts := []oauth2.AuthCodeOption{oauth2.S256ChallengeOption(f.Verifier), oidc.Nonce(f.Nonce)}
	if slices.Contains(strings.Fields(p.Prompt), "login") {
		opts = append(opts, oauth2.SetAuthURLParam("prompt", "login"))
	}
	if p.MaxAge != "" {
		f.MaxAge, _ = strconv.ParseInt(p.MaxAge, 10, 64)
		opts = append(opts, oauth2.SetAuthURLParam("max_age", p.MaxAge))
	}
	if err := s.setFlightCookie(w, flightCookie(f.State), flightAAD, f, f.ExpiresAt.Sub(s.now())); err != nil {
		s.serverErrorPage(w, r, err)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, up.oauth2Config(prov, s.upstreamRedirectURI(up)).AuthCodeURL(f.State, opts...), http.StatusSeeOther)
}

// upstreamRedirectURI is Gatehouse's redirect URI at the provider.
func (s *Server) upstreamRedirectURI(up *upstream) string {
	return UpstreamRedirectURI(s.opts.Issuer, up.cfg.Name)
}

// UpstreamRedirectURI is the redirect URI the server with issuer uses at
// the upstream provider named provider: the one to register there.
func UpstreamRedirectURI(issuer, provider string) string {
	return issuer + pathUpstream + provider + "/callback"
}

// takeFlight returns the flight the callback's state names, from this
// browser's cookie, and marks it used; false if there is none (no state,
// no cookie: another browser, or a state swapped for another), it does
// not open, is for another provider, has expired or was used before.
func (s *Server) takeFlight(w http.ResponseWriter, r *http.Request, provider, state string) (upstreamFlight, bool) {
	if state == "" || len(state) > maxStateBytes {
		return upstreamFlight{}, false
	}
	var f upstreamFlight
	if !s.openFlightCookie(w, r, flightCookie(state), flightAAD, &f) ||
		f.Provider != provider || !token.Equal(f.State, state) || !s.now().Before(f.ExpiresAt) {
		return upstreamFlight{}, false
	}
	// Once: a copied cookie and callback URL cannot sign in twice.
	if !s.useFlight(r.Context(), "upstream", state, f.ExpiresAt) {
		return upstreamFlight{}, false
	}
	return f, true
}

// handleUpstreamCallback ends a sign-in at a provider: it checks the
// state against this browser's flight, the provider's error if any, iss
// (RFC 9207) when sent or promised, exchanges the code (with the PKCE
// verifier), verifies the ID token (signature, iss, aud, exp by go-oidc;
// the nonce here), reads userinfo when a configured claim is missing,
// applies the provider's rules, and then finds or provisions the user and
// continues as a password sign-in does (consent, code). Every failure is
// a page naming the provider and the reason, is audited as
// login.upstream_failed, and creates no user, session or grant.
func (s *Server) handleUpstreamCallback(w http.ResponseWriter, r *http.Request) {
	up := s.upstreams[r.PathValue("provider")]
	if up == nil {
		s.handleNotFound(w, r)
		return
	}
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", "GET")
		s.startAgainPage(w, r, http.StatusMethodNotAllowed, "the provider's response must come back as a GET")
		return
	}
	ctx := r.Context()
	q := r.URL.Query()
	f, ok := s.takeFlight(w, r, up.cfg.Name, q.Get("state"))
	if !ok {
		s.upstreamFailed(w, r, up, "", upstreamFailure{status: http.StatusBadRequest,
			reason: "This response from " + up.cfg.DisplayName + " does not belong to a sign-in started in this browser, or was already used.",
			detail: "the state parameter matches no unexpired, unused sign-in cookie of this browser", unaudited: true})
		return
	}
	p, err := s.openPending(ctx, f.Request)
	if errors.Is(err, errPendingInvalid) {
		s.startAgainPage(w, r, http.StatusBadRequest, msgRequestGone)
		return
	}
	if err != nil {
		s.serverErrorPage(w, r, err)
		return
	}
	fail := func(uf upstreamFailure) { s.upstreamFailed(w, r, up, p.ClientID, uf) }
	if e := q.Get("error"); e != "" {
		uf := upstreamFailure{status: http.StatusForbidden, reason: up.cfg.DisplayName + " did not sign you in.",
			detail: "the provider answered error=" + truncate(e, 64)}
		if d := q.Get("error_description"); d != "" {
			uf.detail += ": " + oauth.SafeText(truncate(d, 200))
		}
		if e == string(oauth.AccessDenied) {
			uf.reason = "Sign-in with " + up.cfg.DisplayName + " was cancelled or refused."
		}
		fail(uf)
		return
	}
	prov, verifier, issParam, err := up.discover(ctx, s.now)
	if err != nil {
		fail(upstreamFailure{status: http.StatusBadGateway, reason: "Gatehouse could not reach " + up.cfg.DisplayName + ".",
			detail: "reading the provider's OpenID Connect metadata failed", cause: err})
		return
	}
	// RFC 9207 §2.4: an iss that is not the provider's means the response
	// came from another provider (a mix-up attack); a provider that
	// promises iss must send it.
	if iss, sent := q["iss"]; (sent && (len(iss) != 1 || iss[0] != up.cfg.Issuer)) || (!sent && issParam) {
		fail(upstreamFailure{status: http.StatusBadRequest, reason: "The response did not come from " + up.cfg.DisplayName + ".",
			detail: "the iss parameter of the authorization response is missing or is not the provider's issuer"})
		return
	}
	code := q.Get("code")
	if code == "" {
		fail(upstreamFailure{status: http.StatusBadRequest, reason: up.cfg.DisplayName + " sent no authorization code.", detail: "the response has neither code nor error"})
		return
	}
	hctx := context.WithValue(ctx, oauth2.HTTPClient, up.cfg.HTTPClient)
	xopts, err := s.exchangeOptions(up, prov.Endpoint().TokenURL)
	if err != nil {
		s.serverErrorPage(w, r, err)
		return
	}
	tok, err := up.oauth2Config(prov, s.upstreamRedirectURI(up)).Exchange(hctx, code, append(xopts, oauth2.VerifierOption(f.Verifier))...)
	if err != nil {
		uf := upstreamFailure{status: http.StatusBadGateway, reason: "Gatehouse could not complete the sign-in with " + up.cfg.DisplayName + ".",
			detail: "the token request to the provider failed", cause: err}
		var re *oauth2.RetrieveError
		if errors.As(err, &re) && re.ErrorCode != "" {
			uf.detail = "the provider's token endpoint answered " + truncate(re.ErrorCode, 64)
		}
		fail(uf)
		return
	}
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		fail(upstreamFailure{status: http.StatusBadGateway, reason: up.cfg.DisplayName + " did not send an ID token.", detail: "the token response has no id_token"})
		return
	}
	idt, err := verifier.Verify(oidc.ClientContext(ctx, up.cfg.HTTPClient), raw)
	if err != nil {
		uf := upstreamFailure{status: http.StatusBadGateway, reason: "The sign-in from " + up.cfg.DisplayName + " could not be verified.",
			detail: "the ID token was refused: " + err.Error(), cause: err}
		var exp *oidc.TokenExpiredError
		if errors.As(err, &exp) {
			uf.detail = "the ID token has expired"
		}
		fail(uf)
		return
	}
	if !token.Equal(idt.Nonce, f.Nonce) {
		fail(upstreamFailure{status: http.StatusBadGateway, reason: "The sign-in from " + up.cfg.DisplayName + " could not be verified.",
			detail: "the ID token's nonce is not the one this sign-in sent"})
		return
	}
	claims := map[string]any{}
	if err := idt.Claims(&claims); err != nil {
		fail(upstreamFailure{status: http.StatusBadGateway, reason: "The sign-in from " + up.cfg.DisplayName + " could not be read.", detail: "the ID token's claims are not a JSON object", cause: err})
		return
	}
	if uf := s.checkMaxAge(up, f, claims); uf != nil {
		fail(*uf)
		return
	}
	if up.needsUserinfo(claims) && prov.UserInfoEndpoint() != "" {
		if uf := up.mergeUserinfo(hctx, prov, tok, idt.Subject, claims); uf != nil {
			fail(*uf)
			return
		}
	}
	subject, _ := claims[up.cfg.SubjectClaim].(string)
	if subject == "" || len(subject) > 255 {
		fail(upstreamFailure{status: http.StatusForbidden, reason: up.cfg.DisplayName + " did not say who you are.",
			detail: "the subject claim " + up.cfg.SubjectClaim + " is missing, not a string, empty or longer than 255 bytes"})
		return
	}
	if uf := up.checkRules(claims); uf != nil {
		fail(*uf)
		return
	}
	groups, uf := up.groups(claims)
	if uf != nil {
		fail(*uf)
		return
	}
	kept, uf := up.policyClaims(claims)
	if uf != nil {
		fail(*uf)
		return
	}
	var link func(context.Context) (storage.User, bool, error)
	if up.cfg.LinkByVerifiedEmail {
		link = func(ctx context.Context) (storage.User, bool, error) { return s.linkCandidate(ctx, up, claims) }
	}
	u, how, err := s.upstreamUser(ctx, up.cfg.Name, subject, link)
	if err != nil {
		s.serverErrorPage(w, r, err)
		return
	}
	switch how {
	case userProvisioned:
		s.audit(ctx, r, storage.AuditEvent{Type: "user.provisioned", UserID: u.ID, ClientID: p.ClientID, Outcome: "success", Detail: "provider=" + up.cfg.Name})
	case userLinked:
		s.audit(ctx, r, storage.AuditEvent{Type: "user.linked", UserID: u.ID, ClientID: p.ClientID, Outcome: "success",
			Detail: truncate("provider="+up.cfg.Name+" user="+u.Username+": linked by verified email", 500)})
	}
	if !u.DisabledAt.IsZero() {
		s.audit(ctx, r, storage.AuditEvent{Type: "login.disabled", UserID: u.ID, ClientID: p.ClientID, Outcome: "denied", Detail: "provider=" + up.cfg.Name})
		s.opts.Pages.Error(w, r, http.StatusForbidden, web.ErrorData{Title: "Sign-in with " + up.cfg.DisplayName + " failed", Description: msgDisabled})
		return
	}
	// The provider's groups claim is the provider's word on the person's
	// groups now: it replaces what it said at the last sign-in (a group
	// taken away there is gone here), and leaves the groups an operator
	// added alone. A refresh reads the stored groups again, so a client
	// holding a token from before loses a scope at its next refresh.
	if err := s.opts.Store.SetUpstreamGroups(ctx, u.ID, up.cfg.Name, groups, s.now()); err != nil {
		s.serverErrorPage(w, r, err)
		return
	}
	// Likewise the claims scope policies may need: this sign-in's values
	// replace the last one's.
	if err := s.opts.Store.SetUpstreamClaims(ctx, u.ID, up.cfg.Name, kept, s.now()); err != nil {
		s.serverErrorPage(w, r, err)
		return
	}
	sess, err := s.startSession(w, r, u)
	if err != nil {
		s.serverErrorPage(w, r, err)
		return
	}
	s.audit(ctx, r, storage.AuditEvent{Type: "login.success", UserID: u.ID, ClientID: p.ClientID, Outcome: "success", Detail: "provider=" + up.cfg.Name})
	if p.Account { // the account page's sign-in: no authorization to continue
		http.Redirect(w, r, s.base+pathAccount, http.StatusSeeOther)
		return
	}
	s.continueAuthorization(w, r, p, sess, u, true)
}

// upstreamFailed shows why an upstream sign-in failed, naming the
// provider, and audits it as login.upstream_failed (unless f.unaudited).
func (s *Server) upstreamFailed(w http.ResponseWriter, r *http.Request, up *upstream, clientID string, f upstreamFailure) {
	ctx := r.Context()
	switch {
	case f.unaudited:
		s.log.InfoContext(ctx, "upstream sign-in response refused", "provider", up.cfg.Name, "detail", f.detail)
	case f.cause != nil:
		s.log.InfoContext(ctx, "upstream sign-in failed", "provider", up.cfg.Name, "detail", f.detail, "cause", f.cause)
	}
	if !f.unaudited {
		s.audit(ctx, r, storage.AuditEvent{Type: "login.upstream_failed", ClientID: clientID, Outcome: "failure",
			Detail: truncate("provider="+up.cfg.Name+": "+f.detail, 500)})
	}
	noteError(ctx, oauth.AccessDenied)
	s.opts.Pages.Error(w, r, f.status, web.ErrorData{
		Title:       "Sign-in with " + up.cfg.DisplayName + " failed",
		Description: f.reason + " Go back to the app and sign in again; if this keeps happening, contact the administrator of this server.",
		Detail:      f.detail,
		Code:        string(oauth.AccessDenied),
	})
}

// checkMaxAge refuses an ID token older than the max_age the client asked
// for: OpenID Connect Core §3.1.2.1 makes auth_time required then.
func (s *Server) checkMaxAge(up *upstream, f upstreamFlight, claims map[string]any) *upstreamFailure {
	if f.MaxAge < 0 {
		return nil
	}
	at, ok := claims["auth_time"].(float64)
	if ok && s.now().Sub(time.Unix(int64(at), 0)) <= time.Duration(f.MaxAge)*time.Second+time.Minute {
		return nil
	}
	return &upstreamFailure{status: http.StatusForbidden, reason: up.cfg.DisplayName + " did not sign you in again as the app asked.",
		detail: "max_age was sent, and the ID token's auth_time is missing or older than it"}
}

// needsUserinfo reports whether a configured claim (or a required one) is
// missing from the ID token's claims.
func (u *upstream) needsUserinfo(claims map[string]any) bool {
	names := append([]string{u.cfg.SubjectClaim, u.cfg.EmailClaim, u.cfg.NameClaim, u.cfg.GroupsClaim}, u.cfg.PolicyClaims...)
	for c := range u.cfg.RequiredClaims {
		names = append(names, c)
	}
	return slices.ContainsFunc(names, func(c string) bool { _, ok := claims[c]; return !ok })
}

// mergeUserinfo adds the userinfo response's claims that the ID token
// lacks. Its sub must be the ID token's (OpenID Connect Core §5.3.4):
// otherwise the response is about someone else.
func (u *upstream) mergeUserinfo(ctx context.Context, p *oidc.Provider, tok *oauth2.Token, sub string, claims map[string]any) *upstreamFailure {
	ui, err := p.UserInfo(ctx, oauth2.StaticTokenSource(tok))
	if err != nil {
		return &upstreamFailure{status: http.StatusBadGateway, reason: "Gatehouse could not read your profile at " + u.cfg.DisplayName + ".", detail: "the userinfo request failed", cause: err}
	}
	if ui.Subject != sub {
		return &upstreamFailure{status: http.StatusBadGateway, reason: "The profile from " + u.cfg.DisplayName + " is about someone else.", detail: "the userinfo sub is not the ID token's sub"}
	}
	extra := map[string]any{}
	if err := ui.Claims(&extra); err != nil {
		return &upstreamFailure{status: http.StatusBadGateway, reason: "Gatehouse could not read your profile at " + u.cfg.DisplayName + ".", detail: "the userinfo response is not a JSON object", cause: err}
	}
	for k, v := range extra {
		if _, ok := claims[k]; !ok {
			claims[k] = v
		}
	}
	return nil
}

// checkRules applies the provider's allowed email domains and required
// claims.
func (u *upstream) checkRules(claims map[string]any) *upstreamFailure {
	if len(u.cfg.AllowedEmailDomains) > 0 {
		email, _ := claims[u.cfg.EmailClaim].(string)
		at := strings.LastIndexByte(email, '@')
		domain := strings.ToLower(email[at+1:])
		verified, hasVerified := claims["email_verified"].(bool)
		switch {
		case at < 0:
			return &upstreamFailure{status: http.StatusForbidden, reason: u.cfg.DisplayName + " did not share your email address, which this server needs to admit you.",
				detail: "the claim " + u.cfg.EmailClaim + " is missing or not an email address, and allowed_email_domains is set"}
		case hasVerified && !verified:
			return &upstreamFailure{status: http.StatusForbidden, reason: "Your email address at " + u.cfg.DisplayName + " is not verified.", detail: "email_verified is false"}
		case !slices.Contains(u.cfg.AllowedEmailDomains, domain):
			return &upstreamFailure{status: http.StatusForbidden, reason: "Accounts at " + domain + " may not sign in to this server.",
				detail: "the email domain " + truncate(domain, 100) + " is not in allowed_email_domains"}
		}
	}
	names := make([]string, 0, len(u.cfg.RequiredClaims))
	for c := range u.cfg.RequiredClaims {
		names = append(names, c)
	}
	slices.Sort(names)
	for _, c := range names {
		if !claimHas(claims[c], u.cfg.RequiredClaims[c]) {
			return &upstreamFailure{status: http.StatusForbidden, reason: "Your account at " + u.cfg.DisplayName + " is not allowed to sign in to this server.",
				detail: fmt.Sprintf("the claim %s does not hold the required value %q", c, u.cfg.RequiredClaims[c])}
		}
	}
	return nil
}

// Bounds on a groups claim: a person in more groups than this, or a
// group name longer, is refused rather than cut (cutting would drop a
// group a policy may need, silently).
const (
	maxUpstreamGroups    = 500
	maxUpstreamGroupName = 255
)

// groups reads the person's groups from the provider's groups claim: a
// list of strings, or one string for a single group. An absent claim (in
// the ID token and userinfo) is no group. Anything else is refused: a
// claim of another shape means the configuration names the wrong claim,
// and guessing could hand out a scope.
func (u *upstream) groups(claims map[string]any) ([]string, *upstreamFailure) {
	bad := func(why string) *upstreamFailure {
		return &upstreamFailure{status: http.StatusBadGateway, reason: "Gatehouse could not read your groups at " + u.cfg.DisplayName + ".",
			detail: "the groups claim " + u.cfg.GroupsClaim + " " + why}
	}
	var out []string
	switch v := claims[u.cfg.GroupsClaim].(type) {
	case nil:
		return nil, nil
	case string:
		out = []string{v}
	case []any:
		if len(v) > maxUpstreamGroups {
			return nil, bad(fmt.Sprintf("has more than %d members", maxUpstreamGroups))
		}
		for _, e := range v {
			g, ok := e.(string)
			if !ok {
				return nil, bad("holds a member that is not a string")
			}
			out = append(out, g)
		}
	default:
		return nil, bad("is neither a string nor a list of strings")
	}
	for _, g := range out {
		if g == "" || len(g) > maxUpstreamGroupName {
			return nil, bad(fmt.Sprintf("holds an empty group name or one longer than %d bytes", maxUpstreamGroupName))
		}
	}
	return out, nil
}

// policyClaims reads the values of the claims kept for scope policies
// (PolicyClaims): a string, a boolean or a number each give one value, a
// list of those gives its members; an absent claim gives none. A claim of
// another shape (an object, a list holding one) is refused, as a groups
// claim is: it means the configuration names the wrong claim.
func (u *upstream) policyClaims(claims map[string]any) (map[string][]string, *upstreamFailure) {
	bad := func(c, why string) *upstreamFailure {
		return &upstreamFailure{status: http.StatusBadGateway, reason: "Gatehouse could not read your account's details at " + u.cfg.DisplayName + ".",
			detail: "the claim " + c + " " + why}
	}
	scalar := func(v any) (string, bool) {
		switch v := v.(type) {
		case string:
			return v, true
		case bool:
			return strconv.FormatBool(v), true
		case float64:
			return strconv.FormatFloat(v, 'f', -1, 64), true
		}
		return "", false
	}
	out := map[string][]string{}
	for _, c := range u.cfg.PolicyClaims {
		var vals []string
		switch v := claims[c].(type) {
		case nil:
			continue
		case []any:
			if len(v) > maxUpstreamGroups {
				return nil, bad(c, fmt.Sprintf("has more than %d members", maxUpstreamGroups))
			}
			for _, e := range v {
				s, ok := scalar(e)
				if !ok {
					return nil, bad(c, "holds a member that is not a string, boolean or number")
				}
				vals = append(vals, s)
			}
		default:
			s, ok := scalar(v)
			if !ok {
				return nil, bad(c, "is not a string, boolean, number or a list of them")
			}
			vals = []string{s}
		}
		for _, s := range vals {
			if len(s) > maxUpstreamGroupName {
				return nil, bad(c, fmt.Sprintf("holds a value longer than %d bytes", maxUpstreamGroupName))
			}
		}
		out[c] = vals
	}
	return out, nil
}

// claimHas reports whether a claim's value is want: a string equal to it,
// a boolean written as it, or a list with such a member.
func claimHas(v any, want string) bool {
	switch v := v.(type) {
	case string:
		return v == want
	case bool:
		return strconv.FormatBool(v) == want
	case []any:
		return slices.ContainsFunc(v, func(e any) bool {
			switch e.(type) {
			case string, bool:
				return claimHas(e, want)
			}
			return false
		})
	}
	return false
}

// How upstreamUser found the user.
const (
	userFound       = iota // the identity was known
	userProvisioned        // a new user was made for it
	userLinked             // it was linked to an existing local user
)

// upstreamUser returns the user of (provider, subject), and how: a known
// identity's user, on a first sign-in the existing user link names
// (link_by_verified_email: [Server.linkCandidate]; nil links nobody), or
// a new user. The new user's name cannot be a local user's
// ([IsUpstreamUsername]); without a link rule an email address never
// links to anyone.
func (s *Server) upstreamUser(ctx context.Context, provider, subject string, link func(context.Context) (storage.User, bool, error)) (storage.User, int, error) {
	tryLink := link != nil
	for range 3 {
		id, err := s.opts.Store.GetUpstreamIdentity(ctx, provider, subject)
		if err == nil {
			u, err := s.opts.Store.GetUser(ctx, id.UserID)
			return u, userFound, err
		}
		if !errors.Is(err, storage.ErrNotFound) {
			return storage.User{}, 0, err
		}
		now := s.now()
		if tryLink {
			tryLink = false
			u, ok, err := link(ctx)
			if err != nil {
				return storage.User{}, 0, err
			}
			if ok {
				err := s.opts.Store.LinkUpstreamIdentity(ctx, storage.UpstreamIdentity{Provider: provider, Subject: subject, UserID: u.ID, CreatedAt: now})
				if err == nil {
					return u, userLinked, nil
				}
				if !errors.Is(err, storage.ErrAlreadyExists) && !errors.Is(err, storage.ErrNotFound) {
					return storage.User{}, 0, err
				}
				// The user has an identity at this provider already (or
				// is gone, or a concurrent sign-in of this person made the
				// identity): no link; read the identity again, or
				// provision.
				s.log.InfoContext(ctx, "upstream identity not linked", "provider", provider, "user", u.ID, "cause", err)
				continue
			}
		}
		uid, err := s.newID()
		if err != nil {
			return storage.User{}, 0, err
		}
		u := storage.User{ID: uid, Username: UpstreamUsername(provider, subject), CreatedAt: now, UpdatedAt: now}
		err = s.opts.Store.CreateUpstreamUser(ctx, u, storage.UpstreamIdentity{Provider: provider, Subject: subject, UserID: uid, CreatedAt: now})
		if err == nil {
			return u, userProvisioned, nil
		}
		if !errors.Is(err, storage.ErrAlreadyExists) {
			return storage.User{}, 0, err
		}
		// A concurrent first sign-in of the same person made the
		// identity: read it (once more round the loop).
	}
	return storage.User{}, 0, fmt.Errorf("provision upstream user %s:%s: the user name is taken by a user without this identity", provider, subject)
}

// linkCandidate returns the local user a first sign-in with these claims
// links to under link_by_verified_email, and true; false when the rule
// does not apply: the email claim is not an address, email_verified is
// not the boolean true (false, absent, or a string), no local user's name
// equals the address (ignoring case), or more than one does (the link
// would be a guess). Users provisioned by a provider or a delegate are
// never candidates. Whether the candidate already has an identity at
// this provider is checked when linking, in the same transaction.
func (s *Server) linkCandidate(ctx context.Context, up *upstream, claims map[string]any) (storage.User, bool, error) {
	email, _ := claims[up.cfg.EmailClaim].(string)
	at := strings.IndexByte(email, '@')
	if verified, _ := claims["email_verified"].(bool); !verified || at <= 0 || at == len(email)-1 {
		return storage.User{}, false, nil
	}
	users, err := s.opts.Store.ListUsers(ctx)
	if err != nil {
		return storage.User{}, false, err
	}
	var found []storage.User
	for _, u := range users {
		if !IsUpstreamUsername(u.Username) && strings.EqualFold(u.Username, email) {
			found = append(found, u)
		}
	}
	if len(found) != 1 {
		if len(found) > 1 {
			s.log.InfoContext(ctx, "upstream identity not linked: several local users have the email address as their name", "provider", up.cfg.Name, "candidates", len(found))
		}
		return storage.User{}, false, nil
	}
	return found[0], true, nil
}
