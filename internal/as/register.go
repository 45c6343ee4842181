package as

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gatehouse-mcp/gatehouse/internal/clientip"
	"github.com/gatehouse-mcp/gatehouse/internal/clientreg"
	"github.com/gatehouse-mcp/gatehouse/internal/oauth"
	"github.com/gatehouse-mcp/gatehouse/internal/storage"
	"github.com/gatehouse-mcp/gatehouse/internal/token"
)

// pathRegister is the RFC 7591 registration endpoint; a client's RFC 7592
// configuration endpoint (registration_client_uri) is pathRegister/<id>.
const pathRegister = "/register"

// RegistrationMode says who may use the registration endpoint.
type RegistrationMode string

// Registration modes.
const (
	// RegistrationClosed (also the zero value "") refuses every
	// registration with 403 and leaves registration_endpoint out of the
	// metadata. Clients registered before keep working, and RFC 7592
	// management of them still works.
	RegistrationClosed RegistrationMode = "closed"
	// RegistrationOpen lets anyone register (the MCP default), within the
	// per-IP rate limit and the cap on dynamic clients.
	RegistrationOpen RegistrationMode = "open"
	// RegistrationToken requires an initial access token (RFC 7591 §3)
	// created with `gatehouse client token create`, sent as a Bearer token.
	RegistrationToken RegistrationMode = "token"
)

// Registration configures dynamic client registration (RFC 7591 and
// RFC 7592) and client ID metadata documents. The zero value disables
// both; zero numbers and durations take the documented defaults.
type Registration struct {
	// Mode is closed (zero), open or token.
	Mode RegistrationMode
	// RateLimit is how many registration requests one client IP may make
	// per RateWindow; default 60, negative means unlimited.
	RateLimit int
	// RateWindow is the rate-limit window; default 1 hour.
	RateWindow time.Duration
	// MaxClients caps the number of registered (RFC 7591) clients;
	// default 10000, negative means no cap. At the cap, registration
	// answers 503 until reaping frees room. Metadata-document clients
	// have their own cap (CIMD.MaxClients), so neither kind can crowd out
	// the other.
	MaxClients int
	// AllowedScopes are the scopes a dynamic client may register for; a
	// registration asking for others is refused, and one asking for none
	// gets these. Empty means any scope of any resource.
	AllowedScopes []string
	// AllowClientCredentials lets dynamic clients (RFC 7591 and metadata
	// documents) use the client_credentials grant: tokens with no user
	// behind them. Default false, because nobody vetted such a client and
	// a machine token acts without anyone's consent: self-registration
	// asking for the grant is refused, and so is the grant at /token.
	// Even when true, a dynamic client gets only ClientCredentialsScopes,
	// and only for resources that accept client credentials.
	AllowClientCredentials bool
	// ClientCredentialsScopes are the scopes a dynamic client may obtain
	// with client_credentials when AllowClientCredentials is set (and
	// AllowedScopes allows them too). Empty means none.
	ClientCredentialsScopes []string
	// UnusedTTL is how long a dynamic client that never obtained a token
	// is kept after its (last) registration; default 24 hours, negative
	// means forever.
	UnusedTTL time.Duration
	// IdleTTL is how long a dynamic client is kept after it last obtained
	// a token; default 90 days, negative means forever. Keep it above the
	// refresh-token lifetime, or reaping ends sessions that are still valid.
	IdleTTL time.Duration
	// Redirect is the redirect URI policy for dynamic clients and
	// metadata documents.
	Redirect clientreg.RedirectPolicy
	// CIMD configures client ID metadata documents.
	CIMD CIMD
}

// CIMD configures client ID metadata documents
// (draft-ietf-oauth-client-id-metadata-document): a client_id that is an
// https URL with a path names a JSON document the server fetches.
type CIMD struct {
	// Enabled turns CIMD on and advertises
	// client_id_metadata_document_supported. Default false.
	Enabled bool
	// AllowDomains and AllowURLs are the trust policy: when both are
	// empty any document URL is accepted (open); otherwise only URLs on
	// one of AllowDomains (or their subdomains) or listed exactly in
	// AllowURLs.
	AllowDomains []string
	AllowURLs    []string
	// MinTTL and MaxTTL bound how long a document is cached, whatever its
	// Cache-Control max-age says; defaults 5 minutes and 24 hours. A
	// document without max-age (or with no-store/no-cache) is cached for
	// MinTTL.
	MinTTL time.Duration
	MaxTTL time.Duration
	// FailureTTL is how long a document that could not be fetched or is
	// invalid is remembered, so that asking again does not fetch again;
	// default 1 minute, negative means not at all.
	FailureTTL time.Duration
	// MaxClients caps the number of metadata-document clients; default
	// 10000, negative means no cap. At the cap a new document client is
	// refused with 503 until reaping frees room.
	MaxClients int
	// RateLimit is how many new metadata-document clients one client IP
	// may bring in per Registration.RateWindow (counted when an unknown
	// document URL is presented, before it is fetched); default 60,
	// negative means unlimited.
	RateLimit int
	// HostRateLimit is how many new metadata-document clients the
	// documents of one host may create per Registration.RateWindow,
	// whoever presents them; default 60, negative means unlimited. A host
	// counts with its registrable domain ([clientreg.DocumentSite]), and
	// a query string makes a new client ID on the same host.
	HostRateLimit int
	// FetchRateLimit is how many documents and JWK Sets may be fetched
	// from one host per minute; default 60, negative means unlimited.
	// Beyond it a new client ID on that host is refused with 503, while a
	// client already stored keeps its last validated document.
	FetchRateLimit int
	// Fetch configures the SSRF-safe fetcher (timeouts, body cap; tests
	// inject RootCAs, AllowHosts and a resolver).
	Fetch clientreg.FetchOptions
}

// Defaults of Registration.
const (
	defaultRegRateLimit  = 60
	defaultRegRateWindow = time.Hour
	defaultMaxClients    = 10000
	defaultUnusedTTL     = 24 * time.Hour
	defaultIdleTTL       = 90 * 24 * time.Hour
	defaultCIMDMinTTL    = 5 * time.Minute
	defaultCIMDMaxTTL    = 24 * time.Hour
	defaultCIMDFailTTL   = time.Minute
	defaultCIMDRateLimit = 60 // per client IP and per host, per RateWindow: as registration
	defaultCIMDFetches   = 60 // per host, per cimdFetchWindow
)

// cimdFetchWindow is the window of CIMD.FetchRateLimit.
const cimdFetchWindow = time.Minute

// dedupSlots is how many derived client ids one public client's metadata
// may occupy before registration falls back to random ids.
const dedupSlots = 8

// registry is the server's registration state: the CIMD fetcher and its
// document cache.
type registry struct {
	fetcher *clientreg.Fetcher
	cache   *clientreg.Cache[storage.Client]
}

// newRegistry applies the defaults to r and builds the fetcher.
func newRegistry(r *Registration) (*registry, error) {
	switch r.Mode {
	case "":
		r.Mode = RegistrationClosed
	case RegistrationClosed, RegistrationOpen, RegistrationToken:
	default:
		return nil, fmt.Errorf("as: registration mode %q must be open, token or closed", r.Mode)
	}
	if r.RateLimit == 0 {
		r.RateLimit = defaultRegRateLimit
	}
	if r.RateWindow <= 0 {
		r.RateWindow = defaultRegRateWindow
	}
	if r.MaxClients == 0 {
		r.MaxClients = defaultMaxClients
	}
	if r.UnusedTTL == 0 {
		r.UnusedTTL = defaultUnusedTTL
	}
	if r.IdleTTL == 0 {
		r.IdleTTL = defaultIdleTTL
	}
	if r.CIMD.MinTTL <= 0 {
		r.CIMD.MinTTL = defaultCIMDMinTTL
	}
	if r.CIMD.MaxTTL <= 0 {
		r.CIMD.MaxTTL = defaultCIMDMaxTTL
	}
	if r.CIMD.MaxTTL < r.CIMD.MinTTL {
		r.CIMD.MaxTTL = r.CIMD.MinTTL
	}
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	def(&r.CIMD.MaxClients, defaultMaxClients)
	def(&r.CIMD.RateLimit, defaultCIMDRateLimit)
	def(&r.CIMD.HostRateLimit, defaultCIMDRateLimit)
	def(&r.CIMD.FetchRateLimit, defaultCIMDFetches)
	if r.CIMD.FailureTTL == 0 {
		r.CIMD.FailureTTL = defaultCIMDFailTTL
	}
	return &registry{
		fetcher: clientreg.NewFetcher(r.CIMD.Fetch),
		cache:   clientreg.NewCache[storage.Client](0),
	}, nil
}

// registrationEndpoint is the metadata's registration_endpoint: empty
// (left out) when registration is closed (AS-6: advertise only if offered).
func (s *Server) registrationEndpoint() string {
	if m := s.opts.Registration.Mode; m == RegistrationOpen || m == RegistrationToken {
		return s.endpoint(pathRegister)
	}
	return ""
}

// handleRegister is the registration endpoint (RFC 7591 §3). A request
// identical to an earlier registration whose client never obtained a
// token gets that client back instead of a new one (see registerClient).
func (s *Server) handleRegister(w http.ResponseWriter, r *http.Request) error {
	defer s.clients.clear() // registration writes clients: no stale cache entry survives it
	if r.Method != http.MethodPost {
		return oauth.New(oauth.InvalidRequest, "the registration endpoint accepts only POST").WithStatus(http.StatusMethodNotAllowed).WithHeader("Allow", "POST")
	}
	ctx := r.Context()
	reg := &s.opts.Registration
	var iat string
	switch reg.Mode {
	case RegistrationOpen:
	case RegistrationToken:
		iat = bearerToken(r)
		if iat == "" {
			return missingIAT(r)
		}
		if err := clientreg.UseInitialAccessToken(ctx, s.opts.Store, iat, s.now(), false); err != nil {
			return s.iatError(err)
		}
	default:
		desc := "dynamic client registration is disabled on this server; ask its operator for a client_id"
		if reg.CIMD.Enabled {
			desc += ", or use a client ID metadata document URL as client_id"
		}
		return oauth.New(oauth.AccessDenied, "%s", desc).WithStatus(http.StatusForbidden)
	}
	if err := s.checkRegistrationRate(ctx, r); err != nil {
		return err
	}
	body, err := readJSONBody(w, r)
	if err != nil {
		return err
	}
	md, err := clientreg.Parse(body, clientreg.Options{Kind: clientreg.Register, Redirect: reg.Redirect})
	if err != nil {
		return registrationError(err)
	}
	if err := s.checkGrantPolicy(md); err != nil {
		return err
	}
	if err := s.applyScopePolicy(ctx, md, true); err != nil {
		return err
	}
	if iat != "" {
		// A single-use token is consumed only by a request that passed
		// validation, so a client can fix its metadata and retry.
		if err := clientreg.UseInitialAccessToken(ctx, s.opts.Store, iat, s.now(), true); err != nil {
			return s.iatError(err)
		}
	}
	info, c, shared, err := s.registerClient(ctx, md)
	if err != nil {
		return err
	}
	detail := "new"
	if shared {
		detail = "identical unused public client returned (shared: no registration access token)"
	}
	if err := s.auditIssued(ctx, r, storage.AuditEvent{Type: "client.registered", ClientID: c.ID, Outcome: "success", Detail: detail}); err != nil {
		return err
	}
	writeRegistration(w, http.StatusCreated, info)
	return nil
}

// registerClient stores md as a new dynamic client, or, for a public
// client, returns an identical unused one (shared true).
//
// De-duplication (MCP clients register on every connect): a public
// client's id is derived from its canonical metadata (every field, unknown
// ones included, after defaults) with a key only this server knows, so
// identical registrations meet at the same row, the database's unique key
// makes concurrent ones agree, and nobody can compute an id offline. When
// that row's client has obtained a token it is left alone and the next
// derived id is tried, up to dedupSlots, then a random id.
//
// A shared client belongs to nobody: its registration access token is
// withdrawn at the first re-registration and none is issued again, so no
// party can change or delete what another registered (issue 11 F2), and a
// public client has no secret to replace. A confidential client is never
// shared: each registration gets its own id and secret, and no
// registration can invalidate another's credentials.
func (s *Server) registerClient(ctx context.Context, md *clientreg.Metadata) (info map[string]any, c storage.Client, shared bool, err error) {
	canon := md.JSON()
	if md.TokenEndpointAuthMethod == authNone {
		for k := range dedupSlots {
			info, c, shared, ok, err := s.tryRegisterSlot(ctx, s.slotID(canon, k), md, canon)
			if err != nil || ok {
				return info, c, shared, err
			}
		}
	}
	id, err := s.newID()
	if err != nil {
		return nil, storage.Client{}, false, oauth.Internal(err)
	}
	info, c, shared, ok, err := s.tryRegisterSlot(ctx, "dcr_"+id, md, canon)
	if err == nil && !ok {
		err = oauth.Internal(errors.New("random client id collided"))
	}
	return info, c, shared, err
}

// errSlotTaken means a derived client id holds a client that cannot be
// shared (it obtained a token, or its metadata was changed).
var errSlotTaken = errors.New("registration slot taken")

// tryRegisterSlot creates the client at id or shares the unused identical
// public one there. ok is false when the slot is taken by another client.
func (s *Server) tryRegisterSlot(ctx context.Context, id string, md *clientreg.Metadata, canon string) (info map[string]any, c storage.Client, shared, ok bool, err error) {
	for range 3 {
		cur, err := s.opts.Store.GetClient(ctx, id)
		if errors.Is(err, storage.ErrNotFound) {
			if err := s.checkClientCap(ctx); err != nil {
				return nil, storage.Client{}, false, false, err
			}
			c, rat, secret, err := s.newDynamicClient(id, md, canon)
			if err != nil {
				return nil, storage.Client{}, false, false, err
			}
			err = s.opts.Store.CreateClient(ctx, c)
			if errors.Is(err, storage.ErrAlreadyExists) {
				continue // a concurrent identical registration won: share it
			}
			if err != nil {
				return nil, storage.Client{}, false, false, oauth.Internal(err)
			}
			return s.clientInfo(c, rat, secret), c, false, true, nil
		}
		if err != nil {
			return nil, storage.Client{}, false, false, oauth.Internal(err)
		}
		if !shareable(cur, canon) {
			return nil, storage.Client{}, false, false, nil
		}
		now := s.now()
		updated, err := s.opts.Store.UpdateClient(ctx, id, func(old storage.Client) (storage.Client, error) {
			if !shareable(old, canon) {
				return old, errSlotTaken
			}
			// Nobody may manage a client several parties hold.
			old.RegistrationTokenHash = ""
			old.UpdatedAt = now
			return old, nil
		})
		switch {
		case errors.Is(err, errSlotTaken):
			return nil, storage.Client{}, false, false, nil
		case errors.Is(err, storage.ErrNotFound):
			continue // reaped meanwhile
		case err != nil:
			return nil, storage.Client{}, false, false, oauth.Internal(err)
		}
		return s.clientInfo(updated, "", ""), updated, true, true, nil
	}
	return nil, storage.Client{}, false, false, oauth.New(oauth.TemporarilyUnavailable, "the registration conflicted with concurrent ones; try again").WithStatus(http.StatusServiceUnavailable)
}

// shareable reports whether c is a public dynamic client with exactly the
// metadata canon that never obtained a token.
func shareable(c storage.Client, canon string) bool {
	return c.Origin == storage.OriginDCR && c.TokenEndpointAuthMethod == authNone && c.Metadata == canon &&
		c.LastUsedAt.IsZero() && c.TokenCount == 0
}

// slotID derives the k-th client id for canonical metadata, keyed with the
// server's secret so that nobody can compute another party's client id
// from public metadata. The prefix keeps registered ids apart from static
// ones and never starts with https:// (CIMD -01: an AS issuing its own ids
// must not).
func (s *Server) slotID(canon string, k int) string {
	h := hmac.New(sha256.New, s.dedupKey)
	fmt.Fprintf(h, "gatehouse/dcr/v2\x00%s\x00%d\x00", s.opts.Issuer, k)
	io.WriteString(h, canon)
	return "dcr_" + base64.RawURLEncoding.EncodeToString(h.Sum(nil)[:16])
}

// newDynamicClient builds a registered client with fresh credentials.
func (s *Server) newDynamicClient(id string, md *clientreg.Metadata, canon string) (c storage.Client, rat, secret string, err error) {
	if rat, err = s.newSecret(); err != nil {
		return c, "", "", oauth.Internal(err)
	}
	if md.Confidential() {
		if secret, err = s.newSecret(); err != nil {
			return c, "", "", oauth.Internal(err)
		}
	}
	now := s.now()
	c = clientFromMetadata(id, md, storage.OriginDCR)
	c.Metadata = canon
	c.RegistrationTokenHash = token.Hash(rat)
	if secret != "" {
		c.SecretHash = token.Hash(secret)
	}
	c.CreatedAt, c.UpdatedAt = now, now
	return c, rat, secret, nil
}

// clientFromMetadata maps validated metadata onto a storage.Client
// (without timestamps and credentials).
func clientFromMetadata(id string, md *clientreg.Metadata, origin storage.ClientOrigin) storage.Client {
	var scopes []string
	for _, sc := range md.Scope {
		if sc != scopeOfflineAccess {
			scopes = append(scopes, sc)
		}
	}
	return storage.Client{
		ID:                      id,
		Name:                    md.ClientName,
		RedirectURIs:            md.RedirectURIs,
		GrantTypes:              md.GrantTypes,
		ResponseTypes:           md.ResponseTypes,
		TokenEndpointAuthMethod: md.TokenEndpointAuthMethod,
		Scopes:                  scopes,
		ApplicationType:         md.ApplicationType,
		JWKS:                    md.JWKS,
		JWKSURI:                 md.JWKSURI,
		Origin:                  origin,
		Metadata:                md.JSON(),
	}
}

// errDynamicClientCredentials is the refusal of the client_credentials
// grant to a dynamic client, at registration and at /token (the
// description names the rule and the way out).
func errDynamicClientCredentials(code oauth.Code) *oauth.Error {
	return oauth.New(code, "self-registered and metadata-document clients cannot use the client_credentials grant on this server: "+
		"tokens without a user are issued only to clients its operator creates (gatehouse client create --grant-type client_credentials); "+
		"the operator can allow it with registration.allow_client_credentials")
}

// checkGrantPolicy refuses a registration or update asking for a grant
// dynamic clients may not have: client_credentials, unless the operator
// opted in (issue 11 F1: nobody may get a token without a user just by
// registering).
func (s *Server) checkGrantPolicy(md *clientreg.Metadata) error {
	if slices.Contains(md.GrantTypes, gtClientCredentials) && !s.opts.Registration.AllowClientCredentials {
		return errDynamicClientCredentials(oauth.InvalidClientMetadata)
	}
	return nil
}

// applyScopePolicy narrows md's scope to what dynamic clients may have.
// Scope values no registered resource defines (openid, profile, ...) are
// dropped rather than refused: clients copy them from elsewhere, and
// keeping them would only turn the client's allowlist into nothing
// usable. With AllowedScopes configured, any other requested scope is
// refused (strict, for registration requests) or dropped (for metadata
// documents, which are written for many servers), and a client asking for
// none gets AllowedScopes. The response echoes the result.
func (s *Server) applyScopePolicy(ctx context.Context, md *clientreg.Metadata, strict bool) error {
	known, err := s.allScopes(ctx)
	if err != nil {
		return oauth.Internal(err)
	}
	allowed := s.opts.Registration.AllowedScopes
	var kept []string
	for _, sc := range md.Scope {
		if !slices.Contains(known, sc) {
			continue
		}
		if len(allowed) > 0 && sc != scopeOfflineAccess && !slices.Contains(allowed, sc) {
			if strict {
				return oauth.New(oauth.InvalidClientMetadata, "the scope %q is not available to dynamically registered clients; available: %s", truncate(sc, 80), strings.Join(allowed, " "))
			}
			continue
		}
		kept = append(kept, sc)
	}
	if len(allowed) > 0 && !slices.ContainsFunc(kept, func(sc string) bool { return sc != scopeOfflineAccess }) {
		kept = append(slices.Clone(allowed), kept...)
	}
	md.SetScope(kept)
	return nil
}

// clientInfo is the client information response (RFC 7591 §3.2.1,
// RFC 7592 §3): the stored metadata, unknown members included, plus what
// the server issued. rat and secret are included when not empty; without
// rat the client cannot be managed, so registration_client_uri is left out
// too (RFC 7592 §3 pairs them).
func (s *Server) clientInfo(c storage.Client, rat, secret string) map[string]any {
	m := clientreg.DecodeFields(c.Metadata)
	m["client_id"] = c.ID
	m["client_id_issued_at"] = c.CreatedAt.Unix()
	if rat != "" {
		m["registration_client_uri"] = s.endpoint(pathRegister + "/" + url.PathEscape(c.ID))
		m["registration_access_token"] = rat
	}
	if secret != "" {
		m["client_secret"] = secret
		var exp int64
		if !c.SecretExpiresAt.IsZero() {
			exp = c.SecretExpiresAt.Unix()
		}
		m["client_secret_expires_at"] = exp
	}
	return m
}

// writeRegistration writes a client information response; credentials
// inside mean it must never be cached.
func writeRegistration(w http.ResponseWriter, status int, info map[string]any) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("Pragma", "no-cache")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.Encode(info)
}

// readJSONBody reads a registration or update body: application/json, at
// most clientreg.MaxRegistrationBytes.
func readJSONBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/json" {
		return nil, oauth.New(oauth.InvalidClientMetadata, "the request body must be application/json").WithStatus(http.StatusUnsupportedMediaType)
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, clientreg.MaxRegistrationBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, oauth.New(oauth.InvalidClientMetadata, "the request body is larger than %d bytes", clientreg.MaxRegistrationBytes).WithStatus(http.StatusRequestEntityTooLarge)
		}
		return nil, oauth.New(oauth.InvalidClientMetadata, "the request body could not be read")
	}
	return body, nil
}

// registrationError turns a clientreg error into an OAuth error.
func registrationError(err error) error {
	var ce *clientreg.Error
	if errors.As(err, &ce) {
		return oauth.New(oauth.Code(ce.Code), "%s", ce.Description)
	}
	return oauth.Internal(err)
}

// bearerToken returns the Bearer token of the Authorization header, or "".
func bearerToken(r *http.Request) string {
	scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return ""
	}
	return strings.TrimSpace(tok)
}

// invalidToken is the 401 for a missing or wrong Bearer token (RFC 6750 §3.1).
func invalidToken(desc string) *oauth.Error {
	return oauth.New(oauth.InvalidToken, "%s", desc).WithStatus(http.StatusUnauthorized).
		WithHeader("WWW-Authenticate", `Bearer error="invalid_token"`)
}

// missingIAT is the 401 for a registration request that carries no
// initial access token: it says that, rather than that the token is
// unknown, so a client (or its developer) learns what to send.
func missingIAT(r *http.Request) *oauth.Error {
	const how = "registration on this server needs an initial access token from its operator (gatehouse client token create), sent as Authorization: Bearer TOKEN"
	if r.Header.Get("Authorization") == "" {
		// RFC 6750 §3.1: a request with no credentials at all gets a
		// challenge without an error code (the body still has one, as
		// RFC 7591 §3.2.2 errors do).
		return oauth.New(oauth.InvalidToken, "missing initial access token: %s", how).WithStatus(http.StatusUnauthorized).
			WithHeader("WWW-Authenticate", "Bearer")
	}
	return invalidToken("the Authorization header holds no Bearer token: " + how)
}

func (s *Server) iatError(err error) error {
	if errors.Is(err, clientreg.ErrInvalidInitialAccessToken) {
		return invalidToken("registration requires a valid initial access token from the operator (gatehouse client token create), sent as Authorization: Bearer; " + err.Error())
	}
	return oauth.Internal(err)
}

// checkRegistrationRate counts the request against the client IP's
// budget and refuses it beyond RateLimit per RateWindow.
func (s *Server) checkRegistrationRate(ctx context.Context, r *http.Request) error {
	return s.countCreation(ctx, "register:ip:"+clientip.Bucket(s.clientIP(r)), s.opts.Registration.RateLimit, "registrations from this address")
}

// countCreation counts one client creation (a registration request, a new
// metadata-document client) against key's budget of limit per
// Registration.RateWindow (negative: unlimited) and refuses it beyond,
// with 429: "too many <what>". Counting before the check, atomically in
// storage, keeps parallel requests from all passing it.
func (s *Server) countCreation(ctx context.Context, key string, limit int, what string) error {
	if limit < 0 {
		return nil
	}
	now := s.now()
	n, reset, err := s.opts.Store.AddFailure(ctx, key, now, s.opts.Registration.RateWindow)
	if err != nil {
		return oauth.Internal(err)
	}
	if n > limit {
		return tooMany(what, reset.Sub(now))
	}
	return nil
}

// tooMany is the 429 of the client creation limits: "too many <what>",
// with the wait in the text and in Retry-After.
func tooMany(what string, wait time.Duration) *oauth.Error {
	retry := int(wait.Seconds()) + 1
	return oauth.New(oauth.TemporarilyUnavailable, "too many %s; retry after %d seconds", what, retry).
		WithStatus(http.StatusTooManyRequests).WithHeader("Retry-After", strconv.Itoa(retry))
}

// checkClientCap refuses a new registered (RFC 7591) client at
// MaxClients. Metadata-document clients are capped apart
// (checkCIMDClientCap): they are created by anyone who can serve a
// document, and must not be able to fill the registrations' room.
func (s *Server) checkClientCap(ctx context.Context) error {
	return s.checkCap(ctx, storage.OriginDCR, s.opts.Registration.MaxClients, "dynamically registered clients")
}

// checkCIMDClientCap refuses a new metadata-document client at
// CIMD.MaxClients.
func (s *Server) checkCIMDClientCap(ctx context.Context) error {
	return s.checkCap(ctx, storage.OriginCIMD, s.opts.Registration.CIMD.MaxClients, "clients identified by a metadata document")
}

// checkCap refuses one more client of origin at limit (negative: no cap).
// CountClients reads a counter, so the check costs the same with 100 or
// 100,000 clients. Concurrent creations may overshoot the cap by a few:
// it bounds storage, it is not a quota to the unit.
func (s *Server) checkCap(ctx context.Context, origin storage.ClientOrigin, limit int, what string) error {
	if limit < 0 {
		return nil
	}
	n, err := s.opts.Store.CountClients(ctx, origin)
	if err != nil {
		return oauth.Internal(err)
	}
	if n >= limit {
		return oauth.New(oauth.TemporarilyUnavailable, "this server has reached its limit of %d %s; try again later or ask its operator", limit, what).
			WithStatus(http.StatusServiceUnavailable)
	}
	return nil
}

// handleClientConfig is a client configuration endpoint (RFC 7592 §2):
// GET reads, PUT replaces and DELETE removes the registration, each
// authenticated by the registration access token as a Bearer token.
// Changes are conditional on the client being as it was read, token
// included, in the transaction that makes them: a client shared by
// identical registrations meanwhile (which withdraws the token), changed
// by a concurrent update, or deleted, is never changed or brought back.
func (s *Server) handleClientConfig(w http.ResponseWriter, r *http.Request) error {
	defer s.clients.clear() // RFC 7592 updates and deletes write clients
	switch r.Method {
	case http.MethodGet, http.MethodPut, http.MethodDelete:
	default:
		return oauth.New(oauth.InvalidRequest, "the client configuration endpoint accepts GET, PUT and DELETE").WithStatus(http.StatusMethodNotAllowed).WithHeader("Allow", "GET, PUT, DELETE")
	}
	ctx := r.Context()
	id := strings.TrimPrefix(r.URL.Path, s.base+pathRegister+"/")
	rat := bearerToken(r)
	if rat == "" {
		return invalidToken("the registration access token is missing: send it as Authorization: Bearer")
	}
	c, err := s.opts.Store.GetClient(ctx, id)
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		return oauth.Internal(err)
	}
	// Unknown client, a client without a registration access token (one
	// that identical registrations share belongs to nobody) and a wrong
	// token look the same (RFC 7592 §2: 401 for all).
	if err != nil || !holdsToken(c, rat) {
		return errNoRegistrationToken()
	}
	noteClient(ctx, c.ID)
	switch r.Method {
	case http.MethodGet:
		// The presented token is echoed: RFC 7592 §3 requires it in the
		// response, and only its hash is stored.
		writeRegistration(w, http.StatusOK, s.clientInfo(c, rat, ""))
		return nil
	case http.MethodDelete:
		return s.deleteRegistration(w, r, c, rat)
	}
	return s.updateRegistration(w, r, c, rat)
}

// deleteRegistration handles an RFC 7592 §2.3 delete of c (as read when
// rat was checked): the client goes, with everything issued to it, only if
// rat still manages it.
func (s *Server) deleteRegistration(w http.ResponseWriter, r *http.Request, c storage.Client, rat string) error {
	ctx := r.Context()
	err := s.opts.Store.DeleteClientIf(ctx, c.ID, func(cur storage.Client) error {
		if !holdsToken(cur, rat) {
			return errNoRegistrationToken()
		}
		return nil
	})
	if errors.Is(err, storage.ErrNotFound) {
		return errNoRegistrationToken()
	}
	if err != nil {
		return registrationStorageError(err)
	}
	s.audit(ctx, r, storage.AuditEvent{Type: "client.deleted", ClientID: c.ID, Outcome: "success", Detail: "RFC 7592 delete"})
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// holdsToken reports whether rat is c's registration access token: c is
// a self-registered client that has one, and it matches.
func holdsToken(c storage.Client, rat string) bool {
	return c.Origin == storage.OriginDCR && c.RegistrationTokenHash != "" && token.Equal(token.Hash(rat), c.RegistrationTokenHash)
}

// errNoRegistrationToken is the 401 for a registration access token that
// does not manage the client.
func errNoRegistrationToken() *oauth.Error {
	return invalidToken("the registration access token is not valid for this client (a public client that identical registrations share has none)")
}

// errClientChanged is the refusal (409) of an update decided on a stale
// read.
func errClientChanged() *oauth.Error {
	return oauth.New(oauth.InvalidRequest, "the client was changed by another request since this one read it; read it again (GET) and retry").WithStatus(http.StatusConflict)
}

// registrationStorageError passes an *oauth.Error from an update or delete
// closure through, and makes anything else a server error.
func registrationStorageError(err error) error {
	var oe *oauth.Error
	if errors.As(err, &oe) {
		return oe
	}
	return oauth.Internal(err)
}

// updateRegistration handles an RFC 7592 §2.2 update: the body replaces
// the metadata (omitted fields are dropped, defaults reapplied). The
// secret is kept while the client stays confidential; a client becoming
// confidential gets one, returned once. A change to redirect URIs, grant
// types, authentication method, keys or scope also deletes everything
// issued to the client — tokens, codes and consents (storage.ResetClient)
// — in the same transaction: a remembered consent must not carry over to a
// new redirect URI (issue 11 F2).
func (s *Server) updateRegistration(w http.ResponseWriter, r *http.Request, c storage.Client, rat string) error {
	ctx := r.Context()
	body, err := readJSONBody(w, r)
	if err != nil {
		return err
	}
	md, err := clientreg.Parse(body, clientreg.Options{Kind: clientreg.Update, ClientID: c.ID, Redirect: s.opts.Registration.Redirect})
	if err != nil {
		return registrationError(err)
	}
	if md.ClientSecret != "" && (c.SecretHash == "" || !token.Equal(token.Hash(md.ClientSecret), c.SecretHash)) {
		return oauth.New(oauth.InvalidClientMetadata, "client_secret does not match the client's current secret; a client cannot choose its secret (RFC 7592 §2.2)")
	}
	if err := s.checkGrantPolicy(md); err != nil {
		return err
	}
	if err := s.applyScopePolicy(ctx, md, true); err != nil {
		return err
	}
	next := clientFromMetadata(c.ID, md, storage.OriginDCR)
	next.RegistrationTokenHash = c.RegistrationTokenHash
	next.CreatedAt, next.UpdatedAt = c.CreatedAt, s.now()
	var secret string
	if md.Confidential() {
		if c.SecretHash != "" {
			next.SecretHash, next.SecretExpiresAt = c.SecretHash, c.SecretExpiresAt
		} else {
			if secret, err = s.newSecret(); err != nil {
				return oauth.Internal(err)
			}
			next.SecretHash = token.Hash(secret)
		}
	}
	update, detail := s.opts.Store.UpdateClient, "metadata updated"
	if securityChanged(c, next) {
		// A reset voids its machine tokens too (introspection).
		update = func(ctx context.Context, id string, fn func(storage.Client) (storage.Client, error)) (storage.Client, error) {
			return s.opts.Store.ResetClient(ctx, id, next.UpdatedAt, fn)
		}
		detail = "security-relevant change: tokens, codes and consents revoked"
	}
	next, err = update(ctx, c.ID, func(cur storage.Client) (storage.Client, error) {
		switch {
		case !holdsToken(cur, rat):
			return cur, errNoRegistrationToken()
		case cur.Metadata != c.Metadata || cur.SecretHash != c.SecretHash || !cur.UpdatedAt.Equal(c.UpdatedAt):
			return cur, errClientChanged()
		}
		next.LastUsedAt, next.TokenCount = cur.LastUsedAt, cur.TokenCount
		return next, nil
	})
	if errors.Is(err, storage.ErrNotFound) {
		return errNoRegistrationToken()
	}
	if err != nil {
		return registrationStorageError(err)
	}
	if err := s.auditIssued(ctx, r, storage.AuditEvent{Type: "client.updated", ClientID: c.ID, Outcome: "success", Detail: detail}); err != nil {
		return err
	}
	writeRegistration(w, http.StatusOK, s.clientInfo(next, rat, secret))
	return nil
}

// securityChanged reports whether b differs from a in anything that
// decides where codes go or who can redeem them. New keys at an unchanged
// jwks_uri are not such a change: publishing keys at a URL is how a
// client rotates them (RFC 7591 §2), and revoking every user's tokens at
// each rotation would punish the client for doing it right.
func securityChanged(a, b storage.Client) bool {
	return !slices.Equal(a.RedirectURIs, b.RedirectURIs) || !slices.Equal(a.GrantTypes, b.GrantTypes) ||
		a.TokenEndpointAuthMethod != b.TokenEndpointAuthMethod || a.JWKSURI != b.JWKSURI || (a.JWKSURI == "" && a.JWKS != b.JWKS) ||
		!slices.Equal(a.Scopes, b.Scopes) || (a.SecretHash == "") != (b.SecretHash == "")
}

// Reap deletes dynamic clients (registered and metadata-document ones)
// that never obtained a token within UnusedTTL of their last
// registration, or whose last token is older than IdleTTL. It deletes
// through DeleteClient, which removes their codes, grants, refresh tokens
// and consents, so nothing they held keeps working. A client that
// obtained a token within IdleTTL is never reaped. The server's GC loop
// calls it; it returns how many clients it deleted.
func (s *Server) Reap(ctx context.Context, now time.Time) (int, error) {
	defer s.clients.clear()
	cs, err := s.opts.Store.ListClients(ctx)
	if err != nil {
		return 0, fmt.Errorf("reap clients: %w", err)
	}
	n := 0
	for _, c := range cs {
		why := s.reapReason(c, now)
		if why == "" {
			continue
		}
		if err := s.opts.Store.DeleteClient(ctx, c.ID); err != nil && !errors.Is(err, storage.ErrNotFound) {
			return n, fmt.Errorf("reap client %s: %w", c.ID, err)
		}
		s.reg.cache.Forget(c.ID)
		s.audit(ctx, nil, storage.AuditEvent{Type: "client.reaped", ClientID: c.ID, Outcome: "success", Detail: why})
		n++
	}
	return n, nil
}

// reapReason says why c should be reaped at now, or "" to keep it.
func (s *Server) reapReason(c storage.Client, now time.Time) string {
	if c.Origin != storage.OriginDCR && c.Origin != storage.OriginCIMD {
		return ""
	}
	reg := &s.opts.Registration
	if c.LastUsedAt.IsZero() && c.TokenCount == 0 {
		since := c.CreatedAt
		if c.UpdatedAt.After(since) {
			since = c.UpdatedAt
		}
		if reg.UnusedTTL > 0 && !now.Before(since.Add(reg.UnusedTTL)) {
			return "never obtained a token within " + reg.UnusedTTL.String()
		}
		return ""
	}
	if reg.IdleTTL > 0 && !now.Before(c.LastUsedAt.Add(reg.IdleTTL)) {
		return "no token for " + reg.IdleTTL.String()
	}
	return ""
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

// cimdError is the error for a metadata document that cannot be used.
func cimdError(format string, args ...any) *oauth.Error {
	return oauth.New(oauth.InvalidClient, format, args...).WithStatus(http.StatusUnauthorized)
}

// cimdUnusable is a document that could not be fetched or cannot be
// used, as fetchCIMD returns it and the document cache remembers it for
// FailureTTL. desc is all the caller is told: nothing about the network
// (addresses, ports, TLS, statuses), which would make this server an
// oracle for any host; fetchCIMD logged the cause.
type cimdUnusable struct{ desc string }

func (e *cimdUnusable) Error() string { return e.desc }

// cimdBusy is a fetch refused because its host's FetchRateLimit is used
// up. It is not remembered: the budget comes back within a minute.
type cimdBusy struct {
	site  string
	limit int
	reset time.Time
}

func (e *cimdBusy) Error() string { return "the fetch budget of " + e.site + " is used up" }

// resolveCIMD returns the client of a metadata-document URL: from the
// cache while fresh, else fetched and validated (one fetch for all
// concurrent requests), and kept in storage as an Origin cimd client so
// codes, tokens, consents and `gatehouse client list` work as for any
// client. The stored row follows the document: cosmetic changes update
// it, a change to redirect URIs, grant types, authentication or keys
// resets it, revoking its tokens and consents (CIMD §4.2 item 7).
// stored is the client's row, nil if there is none.
//
// A metadata document creates a client, as a registration does, so the
// same kind of limits apply (any URL with a query string is a new
// client_id):
//   - a URL without a stored client counts against the caller's address
//     (CIMD.RateLimit per RateWindow), and its host must be under
//     CIMD.HostRateLimit, both before anything is fetched; storing the
//     client then counts against the host and needs room under
//     CIMD.MaxClients (syncCIMDClient);
//   - every fetch counts against its host's CIMD.FetchRateLimit per
//     minute (fetchCIMD); beyond it a stored client is used as stored,
//     a new one is refused;
//   - a document that cannot be used is remembered for FailureTTL.
func (s *Server) resolveCIMD(ctx context.Context, id, ip string, stored *storage.Client) (storage.Client, error) {
	cfg := &s.opts.Registration.CIMD
	if err := clientreg.CheckClientIDURL(id); err != nil {
		return storage.Client{}, cimdError("the client_id %q is not a valid client metadata document URL: %s", truncate(id, 200), err.Error())
	}
	if !s.cimdTrusted(id) {
		return storage.Client{}, cimdError("this server does not accept client metadata documents from %s", clientreg.DocumentHost(id))
	}
	if err := s.checkCIMDBlocks(ctx, id); err != nil {
		return storage.Client{}, err
	}
	if stored == nil {
		if err := s.countCreation(ctx, "cimd:ip:"+clientip.Bucket(ip), cfg.RateLimit, "new client metadata documents from this address"); err != nil {
			return storage.Client{}, err
		}
		if err := s.checkCIMDHost(ctx, clientreg.DocumentSite(id)); err != nil {
			return storage.Client{}, err
		}
	}
	want, err := s.reg.cache.Do(ctx, id, s.now, func(ctx context.Context) (storage.Client, time.Duration, error) {
		return s.fetchCIMD(ctx, id)
	})
	var unusable *cimdUnusable
	var busy *cimdBusy
	switch {
	case errors.As(err, &unusable):
		return storage.Client{}, cimdError("%s", unusable.desc)
	case errors.As(err, &busy) && stored != nil:
		s.log.LogAttrs(ctx, slog.LevelInfo, "client metadata document not refetched: its host's fetch budget is used up; the stored client is used",
			slog.String("client_id", id))
		return *stored, nil
	case errors.As(err, &busy):
		retry := int(busy.reset.Sub(s.now()).Seconds()) + 1
		return storage.Client{}, oauth.New(oauth.TemporarilyUnavailable, "this server fetches at most %d client metadata documents per minute from %s, and has for now; retry after %d seconds", busy.limit, busy.site, retry).
			WithStatus(http.StatusServiceUnavailable).WithHeader("Retry-After", strconv.Itoa(retry))
	case err != nil:
		return storage.Client{}, oauth.Internal(err)
	}
	return s.syncCIMDClient(ctx, want, stored)
}

// checkCIMDHost refuses a new client from site's documents once the site
// has used up its HostRateLimit, before its document is fetched; the
// count itself is taken when a client is stored (syncCIMDClient), so
// documents that fail do not use up their host's budget.
func (s *Server) checkCIMDHost(ctx context.Context, site string) error {
	limit := s.opts.Registration.CIMD.HostRateLimit
	if limit < 0 {
		return nil
	}
	now := s.now()
	n, reset, err := s.opts.Store.Failures(ctx, "cimd:host:"+site, now)
	if err != nil {
		return oauth.Internal(err)
	}
	if n >= limit {
		return tooMany("new clients from client metadata documents on "+site, reset.Sub(now))
	}
	return nil
}

// spendFetch counts one fetch of rawURL against its host's FetchRateLimit
// per minute. The counter lives in storage, so replicas share the budget.
func (s *Server) spendFetch(ctx context.Context, rawURL string) error {
	limit := s.opts.Registration.CIMD.FetchRateLimit
	if limit < 0 {
		return nil
	}
	site := clientreg.DocumentSite(rawURL)
	n, reset, err := s.opts.Store.AddFailure(ctx, "cimd:fetch:"+site, s.now(), cimdFetchWindow)
	if err != nil {
		return err
	}
	if n > limit {
		return &cimdBusy{site: site, limit: limit, reset: reset}
	}
	return nil
}

// fetchCIMD fetches and validates a document (and its jwks_uri) and
// returns the client it describes with its cache lifetime. A document
// that cannot be used is a *cimdUnusable, remembered for FailureTTL; what
// went wrong is logged with the client_id, and the caller gets a
// description that says nothing about the network: the same for a name
// resolving to a private address, a closed port, a service without TLS, a
// 404 or a body that is not a document for this URL. Only a document that
// claims this URL (its client_id is the URL) is described in detail: its
// author wrote it for this purpose. A used-up fetch budget is a
// *cimdBusy.
func (s *Server) fetchCIMD(ctx context.Context, id string) (storage.Client, time.Duration, error) {
	cfg := &s.opts.Registration.CIMD
	unusable := func(desc string, cause error) (storage.Client, time.Duration, error) {
		s.log.LogAttrs(ctx, slog.LevelWarn, "client metadata document refused",
			slog.String("client_id", id), slog.String("cause", cause.Error()))
		return storage.Client{}, cfg.FailureTTL, &cimdUnusable{desc: desc}
	}
	q := truncate(id, 200)
	if err := s.spendFetch(ctx, id); err != nil {
		return storage.Client{}, 0, err
	}
	res, err := s.reg.fetcher.Fetch(ctx, id)
	if err != nil {
		return unusable(fmt.Sprintf(cimdGeneric, q), err)
	}
	md, err := clientreg.Parse(res.Body, clientreg.Options{Kind: clientreg.Document, ClientID: id, Redirect: s.opts.Registration.Redirect})
	if err != nil {
		var ce *clientreg.Error
		if !errors.As(err, &ce) {
			return storage.Client{}, 0, err
		}
		if !claimsURL(res.Body, id) {
			return unusable(fmt.Sprintf(cimdGeneric, q), err)
		}
		return unusable(fmt.Sprintf("the client metadata document %q is invalid: %s", q, ce.Description), err)
	}
	if err := s.applyScopePolicy(ctx, md, false); err != nil {
		return storage.Client{}, 0, err
	}
	c := clientFromMetadata(id, md, storage.OriginCIMD)
	if md.JWKSURI != "" {
		// The document's author chose the jwks_uri, which can name any
		// host: its failures get no detail either.
		if err := s.spendFetch(ctx, md.JWKSURI); err != nil {
			return storage.Client{}, 0, err
		}
		jr, err := s.reg.fetcher.FetchLimit(ctx, md.JWKSURI, 16<<10)
		if err == nil {
			c.JWKS, err = clientreg.CheckJWKSDocument(jr.Body)
		}
		if err != nil {
			return unusable(fmt.Sprintf("the JWK Set at the jwks_uri of the client metadata document %q could not be fetched, or is not a valid set of public keys", q), fmt.Errorf("jwks_uri %s: %w", md.JWKSURI, err))
		}
	}
	ttl := cfg.MinTTL
	if res.HasMaxAge && !res.NoStore {
		ttl = min(max(res.MaxAge, cfg.MinTTL), cfg.MaxTTL)
	}
	return c, ttl, nil
}

// cimdGeneric is what the caller learns about a document URL that did not
// give a usable document, whatever happened (%q is the URL).
const cimdGeneric = "the client metadata document %q could not be fetched, or is not a client metadata document for that URL (a JSON object whose client_id is the URL)"

// claimsURL reports whether body is a JSON object whose client_id is
// exactly id: a document written for this URL, whose author may be told
// what is wrong with it. Anything else gets cimdGeneric, so no part of a
// response that is not a document for this URL reaches the caller.
func claimsURL(body []byte, id string) bool {
	var doc map[string]any
	return json.Unmarshal(body, &doc) == nil && doc["client_id"] == id
}

// syncCIMDClient makes the stored row of a document client match want.
// Storing a new client needs room under CIMD.MaxClients and counts
// against its host's HostRateLimit; a changed document updates the row in
// place (storage.ResetClient for a security-relevant change), so the
// client never disappears between two requests. stored is the row as
// lookupClient read it (nil: none), used on the first attempt; a retry,
// after a concurrent change, reads it again.
func (s *Server) syncCIMDClient(ctx context.Context, want storage.Client, stored *storage.Client) (storage.Client, error) {
	for attempt := range 3 {
		var cur storage.Client
		var err error
		switch {
		case attempt > 0:
			cur, err = s.opts.Store.GetClient(ctx, want.ID)
		case stored != nil:
			cur = *stored
		default:
			err = storage.ErrNotFound
		}
		if errors.Is(err, storage.ErrNotFound) {
			if err := s.checkCIMDClientCap(ctx); err != nil {
				return storage.Client{}, err
			}
			site := clientreg.DocumentSite(want.ID)
			if err := s.countCreation(ctx, "cimd:host:"+site, s.opts.Registration.CIMD.HostRateLimit, "new clients from client metadata documents on "+site); err != nil {
				return storage.Client{}, err
			}
			c := want
			c.CreatedAt, c.UpdatedAt = s.now(), s.now()
			err := s.opts.Store.CreateClient(ctx, c)
			if errors.Is(err, storage.ErrAlreadyExists) {
				continue
			}
			if err != nil {
				return storage.Client{}, oauth.Internal(err)
			}
			s.audit(ctx, nil, storage.AuditEvent{Type: "client.cimd_registered", ClientID: c.ID, Outcome: "success"})
			return c, nil
		}
		if err != nil {
			return storage.Client{}, oauth.Internal(err)
		}
		if cur.Origin != storage.OriginCIMD {
			return cur, nil
		}
		if cur.Metadata == want.Metadata && cur.JWKS == want.JWKS {
			return cur, nil
		}
		now := s.now()
		// A change to where codes go or who can redeem them revokes what
		// the client held, in the transaction that makes it (CIMD §4.2
		// item 7); a cosmetic one only follows the document.
		reset := securityChanged(cur, want)
		apply := func(old storage.Client) (storage.Client, error) {
			next := old
			if reset {
				next = want
				next.CreatedAt, next.LastUsedAt, next.TokenCount = old.CreatedAt, old.LastUsedAt, old.TokenCount
			} else {
				next.Name, next.Metadata, next.ApplicationType, next.ResponseTypes = want.Name, want.Metadata, want.ApplicationType, want.ResponseTypes
				next.JWKS = want.JWKS // rotated at the same jwks_uri (securityChanged)
			}
			next.UpdatedAt = now
			return next, nil
		}
		var c storage.Client
		if reset {
			c, err = s.opts.Store.ResetClient(ctx, cur.ID, now, apply)
		} else {
			c, err = s.opts.Store.UpdateClient(ctx, cur.ID, apply)
		}
		if errors.Is(err, storage.ErrNotFound) {
			continue
		}
		if err != nil {
			return storage.Client{}, oauth.Internal(err)
		}
		if reset {
			s.audit(ctx, nil, storage.AuditEvent{Type: "client.cimd_changed", ClientID: cur.ID, Outcome: "success", Detail: "security-relevant change: tokens, codes and consents revoked"})
		}
		return c, nil
	}
	return storage.Client{}, oauth.New(oauth.TemporarilyUnavailable, "the client's metadata changed concurrently; try again").WithStatus(http.StatusServiceUnavailable)
}

// checkCIMDBlocks refuses a document URL the operator blocked, by URL or
// by host (`gatehouse client block`): before anything is fetched, and
// also when a client of it is stored, so a block holds even where the
// client's deletion has not been noticed yet. The blocks are read from
// storage on every lookup: a block made on any replica or the CLI counts
// at once everywhere (issue 20 F9).
func (s *Server) checkCIMDBlocks(ctx context.Context, id string) error {
	blocks, err := s.opts.Store.ListClientBlocks(ctx)
	if err != nil {
		return oauth.Internal(err)
	}
	for _, b := range blocks {
		if clientreg.BlockCovers(b.Target, b.Host, id) {
			return cimdError("the operator of this server has blocked this application (%s); contact them if you think this is a mistake", truncate(id, 200))
		}
	}
	return nil
}

// cimdTrusted applies the CIMD trust policy to a document URL.
func (s *Server) cimdTrusted(id string) bool {
	cfg := &s.opts.Registration.CIMD
	if len(cfg.AllowDomains) == 0 && len(cfg.AllowURLs) == 0 {
		return true
	}
	if slices.Contains(cfg.AllowURLs, id) {
		return true
	}
	host := clientreg.DocumentHost(id)
	return slices.ContainsFunc(cfg.AllowDomains, func(d string) bool { return clientreg.HostMatchesDomain(host, d) })
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

// jwksRefreshWindow is the window in which a metadata-document client's
// jwks_uri is fetched again at most once for an assertion with an
// unknown kid (refreshClientJWKS).
const jwksRefreshWindow = time.Minute

// refreshClientJWKS fetches the jwks_uri of the metadata-document client c
// again, for an assertion signed with a key its stored set does not have:
// the client rotated its keys (RFC 7591 §2: jwks_uri "allows for key
// rotation"; OpenID Connect Core §10.1.1: a verifier fetches the set
// again on an unknown kid). An unknown kid is free to send, so the fetch
// is limited twice: once per client per jwksRefreshWindow, and against
// its host's FetchRateLimit like every document fetch. The new set
// replaces the stored one in place (the document, which names the
// jwks_uri, did not change, so nothing is revoked), and in the cached
// document, so the next lookup does not put the old keys back. ok is false when nothing was fetched or the set is unusable; the
// caller then refuses the assertion as before, and the cause is logged.
func (s *Server) refreshClientJWKS(ctx context.Context, c storage.Client) (jwks string, ok bool) {
	fail := func(why string, err error) (string, bool) {
		attrs := []slog.Attr{slog.String("client_id", c.ID), slog.String("reason", why)}
		if err != nil {
			attrs = append(attrs, slog.String("cause", err.Error()))
		}
		s.log.LogAttrs(ctx, slog.LevelWarn, "jwks_uri not refreshed for an unknown kid", attrs...)
		return "", false
	}
	n, _, err := s.opts.Store.AddFailure(ctx, "jwks:refresh:"+c.ID, s.now(), jwksRefreshWindow)
	if err != nil {
		return fail("storage", err)
	}
	if n > 1 {
		return fail("already refreshed within "+jwksRefreshWindow.String(), nil)
	}
	if err := s.spendFetch(ctx, c.JWKSURI); err != nil {
		return fail("the host's fetch budget is used up", err)
	}
	jr, err := s.reg.fetcher.FetchLimit(ctx, c.JWKSURI, 16<<10)
	if err == nil {
		jwks, err = clientreg.CheckJWKSDocument(jr.Body)
	}
	if err != nil {
		return fail("fetch or validation failed", err)
	}
	if jwks == c.JWKS {
		return fail("the set is unchanged", nil)
	}
	now := s.now()
	_, err = s.opts.Store.UpdateClient(ctx, c.ID, func(old storage.Client) (storage.Client, error) {
		if old.JWKSURI != c.JWKSURI {
			return old, errors.New("the client's jwks_uri changed meanwhile")
		}
		old.JWKS, old.UpdatedAt = jwks, now
		return old, nil
	})
	if err != nil {
		return fail("storing the new set failed", err)
	}
	s.reg.cache.Update(c.ID, func(v storage.Client) storage.Client {
		if v.JWKSURI == c.JWKSURI {
			v.JWKS = jwks
		}
		return v
	})
	s.audit(ctx, nil, storage.AuditEvent{Type: "client.jwks_refreshed", ClientID: c.ID, Outcome: "success", Detail: "jwks_uri fetched again for an unknown kid"})
	return jwks, true
}
