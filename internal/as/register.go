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
		DPoPBound:               md.DPoPBound,
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
