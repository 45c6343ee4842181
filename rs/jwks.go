package rs

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gatehouse-mcp/gatehouse/internal/oauth"
	jose "github.com/go-jose/go-jose/v4"
)

// maxKeys bounds the keys taken from one JWKS document.
const maxKeys = 100

// minRSABits is the smallest RSA modulus accepted (RFC 7518 §3.3).
const minRSABits = 2048

// verificationKey is one usable key of the authorization server's JWKS.
type verificationKey struct {
	kid string
	alg string // the JWK "alg", or "" when the key does not name one
	key any    // *ecdsa.PublicKey, *rsa.PublicKey or ed25519.PublicKey
}

// keySnapshot is an immutable view of the JWKS.
type keySnapshot struct {
	byKID   map[string]*verificationKey
	all     []*verificationKey
	fetched time.Time
	// maxAge is how long the snapshot is used before a background refetch:
	// the cache's maxAge, or the response's shorter Cache-Control max-age.
	maxAge time.Duration
}

// stale reports whether s is due for a refetch at now.
func (s *keySnapshot) stale(now time.Time) bool {
	return now.Sub(s.fetched) >= s.maxAge
}

// lookup returns the key for kid. A token without kid matches only when
// the set has exactly one key, so it is never ambiguous.
func (s *keySnapshot) lookup(kid string) *verificationKey {
	if s == nil {
		return nil
	}
	if kid == "" {
		if len(s.all) == 1 {
			return s.all[0]
		}
		return nil
	}
	return s.byKID[kid]
}

// keyCache holds the JWKS of one authorization server. It refetches the
// set when it is older than maxAge, or than the Cache-Control max-age of
// the JWKS response if shorter (in the background, keeping the old keys
// meanwhile), and when a token names an unknown kid — but starts at most
// one fetch per minInterval, and concurrent callers share a fetch in
// flight, so a flood of tokens with made-up kids costs the authorization
// server at most one request per minInterval. A fetched set replaces the
// previous one whole: a key the authorization server no longer publishes
// (retired past its time, or withdrawn after a leak) stops verifying at
// the first successful refetch.
type keyCache struct {
	client      *http.Client
	issuer      string
	jwksURL     string // configured, or discovered on first fetch
	algs        map[string]bool
	minInterval time.Duration
	maxAge      time.Duration
	now         func() time.Time
	log         *slog.Logger

	keys atomic.Pointer[keySnapshot]

	mu          sync.Mutex
	lastAttempt time.Time  // start of the last fetch, for rate limiting
	lastErr     error      // outcome of the last fetch
	inflight    *fetchCall // the fetch in progress, if any
	discovered  string     // jwks_uri found by discovery

	fetches atomic.Int64 // fetch attempts, for tests and metrics
}

// fetchCall is one fetch shared by every caller that asked while it ran.
type fetchCall struct {
	done chan struct{}
	err  error
}

// key returns the verification key for kid, refetching the JWKS when
// needed and allowed.
func (c *keyCache) key(ctx context.Context, kid string) (*verificationKey, error) {
	snap := c.keys.Load()
	if k := snap.lookup(kid); k != nil {
		if snap.stale(c.now()) {
			c.startFetch() // refresh in the background; the old key serves meanwhile
		}
		return k, nil
	}
	call := c.startFetch()
	if call == nil {
		// Rate limited and nothing in flight.
		if snap == nil {
			c.mu.Lock()
			err := c.lastErr
			c.mu.Unlock()
			if err == nil {
				err = errors.New("no keys fetched yet")
			}
			return nil, unavailable(err)
		}
		return nil, invalid(ErrUnknownKey, "kid %.40q (JWKS refetch rate-limited)", kid)
	}
	select {
	case <-call.done:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	snap = c.keys.Load()
	if k := snap.lookup(kid); k != nil {
		return k, nil
	}
	if snap == nil {
		return nil, unavailable(call.err)
	}
	return nil, invalid(ErrUnknownKey, "kid %.40q", kid)
}

// startFetch starts a fetch unless one is in flight (which it returns) or
// the last one started less than minInterval ago (it returns nil).
func (c *keyCache) startFetch() *fetchCall {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.inflight != nil {
		return c.inflight
	}
	now := c.now()
	if !c.lastAttempt.IsZero() && now.Sub(c.lastAttempt) < c.minInterval {
		return nil
	}
	c.lastAttempt = now
	call := &fetchCall{done: make(chan struct{})}
	c.inflight = call
	// The fetch runs detached from any request: a client that gives up
	// must not cancel the fetch other requests are waiting for.
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*defaultHTTPTimeout)
		defer cancel()
		err := c.fetch(ctx)
		if err != nil && c.log != nil {
			c.log.Warn("rs: JWKS fetch failed", "issuer", c.issuer, "cause", err)
		}
		c.mu.Lock()
		call.err = err
		c.lastErr = err
		c.inflight = nil
		c.mu.Unlock()
		close(call.done)
	}()
	return call
}

// fetch discovers the JWKS URL if needed, downloads the set and installs
// the usable keys. On failure the previous keys stay in place.
func (c *keyCache) fetch(ctx context.Context) error {
	c.fetches.Add(1)
	u := c.jwksURL
	if u == "" {
		c.mu.Lock()
		u = c.discovered
		c.mu.Unlock()
	}
	if u == "" {
		m, err := discover(ctx, c.client, c.issuer, func(m *oauth.ServerMetadata) error {
			if m.JWKSURI == "" {
				return errors.New("no jwks_uri")
			}
			return nil
		})
		if err != nil {
			return err
		}
		u = m.JWKSURI
		c.mu.Lock()
		c.discovered = u
		c.mu.Unlock()
	}
	var doc struct {
		Keys []json.RawMessage `json:"keys"`
	}
	h, err := getJSONHeader(ctx, c.client, u, &doc)
	if err != nil {
		return fmt.Errorf("fetch JWKS: %w", err)
	}
	snap, err := parseKeys(doc.Keys, c.algs)
	if err != nil {
		return fmt.Errorf("JWKS %s: %w", u, err)
	}
	snap.fetched = c.now()
	snap.maxAge = c.maxAge
	if ma, ok := cacheMaxAge(h); ok {
		// Never below minInterval: no-cache or max-age=0 must not turn
		// every request into a fetch attempt.
		snap.maxAge = max(min(ma, c.maxAge), c.minInterval)
	}
	c.keys.Store(snap)
	return nil
}

// cacheMaxAge returns the freshness lifetime a response's Cache-Control
// gives (RFC 9111 §5.2.2): its max-age, or zero for no-cache or no-store;
// ok is false when it says neither. A malformed max-age counts as zero
// (§4.2.1: treat an invalid freshness lifetime as stale).
func cacheMaxAge(h http.Header) (d time.Duration, ok bool) {
	for _, v := range h.Values("Cache-Control") {
		for dir := range strings.SplitSeq(v, ",") {
			name, val, _ := strings.Cut(strings.TrimSpace(dir), "=")
			switch strings.ToLower(name) {
			case "no-cache", "no-store":
				return 0, true
			case "max-age":
				n, err := strconv.ParseInt(strings.Trim(val, `"`), 10, 64)
				if err != nil || n < 0 {
					return 0, true
				}
				d, ok = time.Duration(min(n, int64(math.MaxInt64/time.Second)))*time.Second, true
			}
		}
	}
	return d, ok
}

// parseKeys keeps the keys of a JWKS that can verify an allowed algorithm:
// public signature keys of type EC, RSA (2048 bits or more) or OKP
// (Ed25519). Symmetric ("oct") keys, encryption keys and keys that name
// another algorithm are skipped, as is any key that does not parse, so one
// exotic key does not cost the whole set.
func parseKeys(raw []json.RawMessage, algs map[string]bool) (*keySnapshot, error) {
	snap := &keySnapshot{byKID: map[string]*verificationKey{}}
	for i, r := range raw {
		if i == maxKeys {
			break
		}
		var jwk jose.JSONWebKey
		if err := jwk.UnmarshalJSON(r); err != nil {
			continue
		}
		if !jwk.Valid() || !jwk.IsPublic() || jwk.Use == "enc" {
			continue
		}
		if jwk.Algorithm != "" && !algs[jwk.Algorithm] {
			continue
		}
		switch k := jwk.Key.(type) {
		case *ecdsa.PublicKey:
		case *rsa.PublicKey:
			if k.N.BitLen() < minRSABits {
				continue
			}
		case ed25519.PublicKey:
		default:
			continue
		}
		snap.all = append(snap.all, &verificationKey{kid: jwk.KeyID, alg: jwk.Algorithm, key: jwk.Key})
	}
	// Two keys with one kid: which one a token means is ambiguous, so
	// neither is used.
	dup := map[string]bool{}
	for _, k := range snap.all {
		if k.kid == "" {
			continue
		}
		if _, seen := snap.byKID[k.kid]; seen {
			dup[k.kid] = true
		}
		snap.byKID[k.kid] = k
	}
	if len(dup) > 0 {
		all := snap.all[:0]
		for _, k := range snap.all {
			if dup[k.kid] {
				delete(snap.byKID, k.kid)
				continue
			}
			all = append(all, k)
		}
		snap.all = all
	}
	if len(snap.all) == 0 {
		return nil, errors.New("no usable signature keys")
	}
	return snap, nil
}
