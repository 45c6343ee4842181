package rs

import (
	"cmp"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/gatehouse-mcp/gatehouse/internal/boundmap"
	"github.com/gatehouse-mcp/gatehouse/internal/oauth"
)

// Defaults of [IntrospectionOptions].
const (
	// DefaultIntrospectionCacheTTL is how long an introspection answer is
	// reused.
	DefaultIntrospectionCacheTTL = 30 * time.Second
	// DefaultIntrospectionCacheSize is how many answers are kept.
	DefaultIntrospectionCacheSize = 10000
)

// IntrospectionOptions configures an [IntrospectionVerifier].
type IntrospectionOptions struct {
	// Issuer is the authorization server's issuer identifier. Required. An
	// "iss" in the introspection response must equal it, and it locates
	// the metadata naming the introspection endpoint.
	Issuer string
	// Resource is this server's resource URI. Required. The response's
	// "aud" must name it (compared as by [CanonicalResource]); a response
	// without "aud" is refused, because a token that names no audience
	// could have been issued for any server.
	Resource string
	// Endpoint is the introspection_endpoint. Empty (the default) takes it
	// from the issuer's metadata on first use.
	Endpoint string
	// ClientID and ClientSecret authenticate this resource server to the
	// introspection endpoint with HTTP Basic (client_secret_basic, the
	// values form-encoded as RFC 6749 §2.3.1 says). Required: RFC 7662 §2.1
	// has the endpoint refuse anonymous callers.
	ClientID, ClientSecret string
	// HTTPClient calls the authorization server. Nil means a client with a
	// 10-second timeout.
	HTTPClient *http.Client
	// CacheTTL is how long an answer — active or not — is reused for the
	// same token, never past the token's "exp". Caching trades revocation
	// latency for load on the authorization server. Zero means
	// [DefaultIntrospectionCacheTTL]; negative disables the cache.
	CacheTTL time.Duration
	// CacheSize bounds the number of cached answers. Zero means
	// [DefaultIntrospectionCacheSize].
	CacheSize int
	// ClockSkew is the tolerance when comparing "exp" and "nbf" with the
	// current time. Zero (the default) compares strictly.
	ClockSkew time.Duration
	// MaxTokenBytes refuses longer tokens without asking the authorization
	// server. Zero means [DefaultMaxTokenBytes].
	MaxTokenBytes int
	// Now returns the current time. Nil means time.Now.
	Now func() time.Time
}

// IntrospectionVerifier asks the authorization server whether a token is
// active ([RFC 7662]), for opaque tokens or when revocation must take
// effect within seconds. It is a [Verifier]. Answers are cached by the
// SHA-256 of the token (the token itself is never kept).
//
// A token is accepted when the response says "active": true, names this
// resource in "aud", has a non-empty "sub", carries this issuer in "iss"
// if it has one, and its "exp" and "nbf", when present, hold. Scopes come
// from "scope".
//
// [RFC 7662]: https://www.rfc-editor.org/rfc/rfc7662
type IntrospectionVerifier struct {
	opts      IntrospectionOptions
	canonical string
	client    *http.Client
	now       func() time.Time
	ttl       time.Duration
	size      int

	mu       sync.Mutex
	endpoint string
	cache    map[[32]byte]cacheEntry
}

// cacheEntry is one cached answer.
type cacheEntry struct {
	info  *TokenInfo
	err   error
	until time.Time
}

// NewIntrospectionVerifier returns a verifier for opts. It does not
// contact the authorization server.
func NewIntrospectionVerifier(opts IntrospectionOptions) (*IntrospectionVerifier, error) {
	switch {
	case opts.Issuer == "":
		return nil, errors.New("rs: IntrospectionOptions.Issuer is required")
	case opts.Resource == "":
		return nil, errors.New("rs: IntrospectionOptions.Resource is required")
	case opts.ClientID == "" || opts.ClientSecret == "":
		return nil, errors.New("rs: IntrospectionOptions.ClientID and ClientSecret are required")
	case opts.ClockSkew < 0 || opts.MaxTokenBytes < 0 || opts.CacheSize < 0:
		return nil, errors.New("rs: IntrospectionOptions durations and sizes must not be negative")
	}
	if _, err := metadataURLs(opts.Issuer); err != nil {
		return nil, fmt.Errorf("rs: IntrospectionOptions.Issuer: %w", err)
	}
	canon, err := CanonicalResource(opts.Resource)
	if err != nil {
		return nil, err
	}
	if opts.Endpoint != "" {
		if u, err := url.Parse(opts.Endpoint); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return nil, fmt.Errorf("rs: IntrospectionOptions.Endpoint %q is not an http(s) URL", opts.Endpoint)
		}
	}
	v := &IntrospectionVerifier{
		opts:      opts,
		canonical: canon,
		client:    cmp.Or(opts.HTTPClient, defaultClient),
		now:       opts.Now,
		ttl:       cmp.Or(opts.CacheTTL, DefaultIntrospectionCacheTTL),
		size:      cmp.Or(opts.CacheSize, DefaultIntrospectionCacheSize),
		endpoint:  opts.Endpoint,
		cache:     map[[32]byte]cacheEntry{},
	}
	v.opts.MaxTokenBytes = cmp.Or(opts.MaxTokenBytes, DefaultMaxTokenBytes)
	if v.now == nil {
		v.now = time.Now
	}
	return v, nil
}

// Verify asks the introspection endpoint about token (or reuses a cached
// answer). Errors wrap [ErrInvalidToken] and a reason ([ErrInactive],
// [ErrAudience], …), or [ErrUnavailable] when the endpoint could not be
// asked or gave an unusable answer.
func (v *IntrospectionVerifier) Verify(ctx context.Context, token string) (*TokenInfo, error) {
	if len(token) > v.opts.MaxTokenBytes {
		return nil, invalid(ErrTooLarge, "%d bytes, limit %d", len(token), v.opts.MaxTokenBytes)
	}
	if token == "" {
		return nil, invalid(ErrMalformed, "empty token")
	}
	key := sha256.Sum256([]byte(token))
	now := v.now()
	if v.ttl > 0 {
		v.mu.Lock()
		e, ok := v.cache[key]
		v.mu.Unlock()
		if ok && now.Before(e.until) {
			if e.err != nil {
				return nil, e.err
			}
			// Re-check the time claims: the entry may outlive nbf or exp
			// by the clock skew.
			return v.checkTimes(e.info, now)
		}
	}
	info, err := v.introspect(ctx, token)
	if err != nil && !errors.Is(err, ErrInvalidToken) {
		return nil, err // not cached: the next request asks again
	}
	if err == nil {
		info, err = v.checkTimes(info, now)
	}
	if v.ttl > 0 {
		until := now.Add(v.ttl)
		if info != nil && !info.Expiry.IsZero() && info.Expiry.Before(until) {
			until = info.Expiry
		}
		v.store(key, cacheEntry{info: info, err: err, until: until}, now)
	}
	return info, err
}

// store caches e; a full cache drops expired entries first
// (boundmap.Put).
func (v *IntrospectionVerifier) store(key [32]byte, e cacheEntry, now time.Time) {
	v.mu.Lock()
	defer v.mu.Unlock()
	boundmap.Put(v.cache, v.size, key, e, func(old cacheEntry) bool { return !now.Before(old.until) })
}

// checkTimes checks exp and nbf of a cached or fresh answer.
func (v *IntrospectionVerifier) checkTimes(info *TokenInfo, now time.Time) (*TokenInfo, error) {
	skew := v.opts.ClockSkew
	if !info.Expiry.IsZero() && !now.Before(info.Expiry.Add(skew)) {
		return nil, invalid(ErrExpired, "exp %s", info.Expiry.UTC().Format(time.RFC3339))
	}
	if !info.NotBefore.IsZero() && now.Add(skew).Before(info.NotBefore) {
		return nil, invalid(ErrNotYetValid, "nbf %s", info.NotBefore.UTC().Format(time.RFC3339))
	}
	return info, nil
}

// introspect calls the endpoint and checks the answer (except times).
func (v *IntrospectionVerifier) introspect(ctx context.Context, token string) (*TokenInfo, error) {
	endpoint, err := v.introspectionEndpoint(ctx)
	if err != nil {
		return nil, unavailable(err)
	}
	form := url.Values{"token": {token}, "token_type_hint": {"access_token"}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, unavailable(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	req.SetBasicAuth(url.QueryEscape(v.opts.ClientID), url.QueryEscape(v.opts.ClientSecret))
	resp, err := v.client.Do(req)
	if err != nil {
		return nil, unavailable(err)
	}
	defer resp.Body.Close()
	var r oauth.Introspection
	if err := decodeJSONResponse(resp, endpoint, &r); err != nil {
		return nil, unavailable(err)
	}
	if !r.Active {
		return nil, invalid(ErrInactive, "")
	}
	if r.Sub == "" {
		return nil, invalid(ErrMissingClaim, "sub")
	}
	if r.Iss != "" && r.Iss != v.opts.Issuer {
		return nil, invalid(ErrIssuer, "iss %.100q", r.Iss)
	}
	if len(r.Aud) == 0 {
		return nil, invalid(ErrMissingClaim, "aud")
	}
	ok := false
	for _, a := range r.Aud {
		if sameResource(a, v.opts.Resource, v.canonical) {
			ok = true
			break
		}
	}
	if !ok {
		return nil, invalid(ErrAudience, "aud %.200q", r.Aud)
	}
	return &TokenInfo{
		Subject:   r.Sub,
		ClientID:  r.ClientID,
		Scopes:    splitScope(r.Scope),
		Issuer:    cmp.Or(r.Iss, v.opts.Issuer),
		Audience:  r.Aud,
		Expiry:    r.Exp.Time(),
		IssuedAt:  r.Iat.Time(),
		NotBefore: r.Nbf.Time(),
		ID:        r.JTI,
		JKT:       r.JKT(),
	}, nil
}

// introspectionEndpoint returns the configured or discovered endpoint.
func (v *IntrospectionVerifier) introspectionEndpoint(ctx context.Context) (string, error) {
	v.mu.Lock()
	e := v.endpoint
	v.mu.Unlock()
	if e != "" {
		return e, nil
	}
	m, err := discover(ctx, v.client, v.opts.Issuer, func(m *oauth.ServerMetadata) error {
		if m.IntrospectionEndpoint == "" {
			return errors.New("no introspection_endpoint")
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	v.mu.Lock()
	v.endpoint = m.IntrospectionEndpoint
	v.mu.Unlock()
	return m.IntrospectionEndpoint, nil
}

// Compile-time checks that the verifiers implement Verifier.
var (
	_ Verifier = (*JWTVerifier)(nil)
	_ Verifier = (*IntrospectionVerifier)(nil)
	_ Verifier = VerifierFunc(nil)
)
