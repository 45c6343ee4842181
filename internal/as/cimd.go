package as

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/gatehouse-mcp/gatehouse/internal/clientip"
	"github.com/gatehouse-mcp/gatehouse/internal/clientreg"
	"github.com/gatehouse-mcp/gatehouse/internal/oauth"
	"github.com/gatehouse-mcp/gatehouse/internal/storage"
)

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

// cimdFetchWindow is the window of CIMD.FetchRateLimit.
const cimdFetchWindow = time.Minute

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
		jwks, err := s.fetchJWKS(ctx, md.JWKSURI)
		if err != nil {
			return unusable(fmt.Sprintf("the JWK Set at the jwks_uri of the client metadata document %q could not be fetched, or is not a valid set of public keys", q), fmt.Errorf("jwks_uri %s: %w", md.JWKSURI, err))
		}
		c.JWKS = jwks
	}
	ttl := cfg.MinTTL
	if res.HasMaxAge && !res.NoStore {
		ttl = min(max(res.MaxAge, cfg.MinTTL), cfg.MaxTTL)
	}
	return c, ttl, nil
}

// fetchJWKS fetches the JWK Set at a client's jwks_uri (at most 16 KiB)
// and checks it holds only usable public keys. The caller has charged the
// fetch to the host's budget (spendFetch).
func (s *Server) fetchJWKS(ctx context.Context, uri string) (string, error) {
	res, err := s.reg.fetcher.FetchLimit(ctx, uri, 16<<10)
	if err != nil {
		return "", err
	}
	return clientreg.CheckJWKSDocument(res.Body)
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
	// Charged to the document's site as well as the jwks_uri's: documents
	// on a site of the attacker's own can name a popular host's jwks_uri,
	// and each of their clients may refresh once a window; counting the
	// refreshes against their own site bounds what they spend of that
	// host's budget (and so of its real clients' registrations).
	if clientreg.DocumentSite(c.ID) != clientreg.DocumentSite(c.JWKSURI) {
		if err := s.spendFetch(ctx, c.ID); err != nil {
			return fail("the document site's fetch budget is used up", err)
		}
	}
	if err := s.spendFetch(ctx, c.JWKSURI); err != nil {
		return fail("the host's fetch budget is used up", err)
	}
	jwks, err = s.fetchJWKS(ctx, c.JWKSURI)
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
