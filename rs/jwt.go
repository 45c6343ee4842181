package rs

import (
	"cmp"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/gatehouse-mcp/gatehouse/internal/boundmap"
	"github.com/gatehouse-mcp/gatehouse/internal/oauth"
	jose "github.com/go-jose/go-jose/v4"
)

// DefaultMaxTokenBytes is the longest access token accepted when an
// option leaves the limit at zero. Gatehouse's ES256 tokens are about
// 600 bytes; the limit only has to stop a client from making the server
// parse megabytes.
const DefaultMaxTokenBytes = 8 << 10

// Defaults of [JWTOptions].
const (
	// DefaultMinRefreshInterval is the least time between two JWKS fetches.
	DefaultMinRefreshInterval = 10 * time.Second
	// DefaultMaxKeyAge is how long fetched keys are used before they are
	// refetched in the background.
	DefaultMaxKeyAge = 10 * time.Minute
	// DefaultVerifiedCacheSize is how many verified tokens are remembered.
	DefaultVerifiedCacheSize = 10000
)

// asymmetricAlgs are the JWS algorithms [JWTOptions.Algorithms] may name:
// asymmetric signatures only. "none" and the HMAC family are refused by
// construction: with a symmetric algorithm, anyone holding the published
// key could mint tokens.
var asymmetricAlgs = map[string]bool{
	"ES256": true, "ES384": true, "ES512": true,
	"RS256": true, "RS384": true, "RS512": true,
	"PS256": true, "PS384": true, "PS512": true,
	"EdDSA": true,
}

// JWTOptions configures a [JWTVerifier].
type JWTOptions struct {
	// Issuer is the authorization server's issuer identifier. Required.
	// Tokens must carry exactly this "iss"; it also locates the metadata
	// (RFC 8414 §3, then OpenID Connect Discovery) that names the JWKS.
	Issuer string
	// Resource is this server's resource URI — for an MCP server, the URL
	// clients connect to, such as "https://mcp.example.com/mcp". Required.
	// A token's "aud" must name it; comparison follows [CanonicalResource]
	// (case of scheme and host, default port and a root "/" do not matter).
	Resource string
	// JWKSURL is the authorization server's jwks_uri. Empty (the default)
	// discovers it from the issuer's metadata on first use.
	JWKSURL string
	// Algorithms lists the JWS "alg" values accepted. Nil means ES256 only.
	// Asymmetric algorithms only: ES256/384/512, RS256/384/512,
	// PS256/384/512, EdDSA; "none" or an HMAC algorithm is an error.
	Algorithms []string
	// ClockSkew is the tolerance when comparing "exp" and "nbf" with the
	// current time. Zero (the default) compares strictly.
	ClockSkew time.Duration
	// MaxTokenBytes refuses longer tokens before any parsing. Zero means
	// [DefaultMaxTokenBytes].
	MaxTokenBytes int
	// HTTPClient fetches metadata and keys. Nil means a client with a
	// 10-second timeout. Supply one with an egress policy where the issuer
	// is not trusted to be on a public address.
	HTTPClient *http.Client
	// MinRefreshInterval is the least time between two JWKS fetches: a
	// token with an unknown "kid" triggers a refetch only if the last one
	// started longer ago, so made-up kids cannot turn into a flood of
	// requests to the authorization server. Zero means
	// [DefaultMinRefreshInterval].
	MinRefreshInterval time.Duration
	// MaxKeyAge is how long fetched keys are used before a background
	// refetch. The JWKS response's Cache-Control max-age wins when it is
	// shorter (Gatehouse sends 60 s), though never below
	// MinRefreshInterval. A key removed from the JWKS (retired, or
	// withdrawn after a leak) stops verifying when the refetch that
	// follows completes. Zero means [DefaultMaxKeyAge].
	MaxKeyAge time.Duration
	// VerifiedCacheSize is how many verified tokens are remembered, by the
	// SHA-256 of the token, so that a client's next request with the same
	// token skips parsing and the signature check. A remembered token is
	// still checked against the current time ("exp", "nbf") and the current
	// JWKS (it is forgotten when its key is no longer published). Only
	// tokens that verified are remembered, so made-up tokens cannot fill
	// it. Zero means [DefaultVerifiedCacheSize]; negative disables it.
	VerifiedCacheSize int
	// Now returns the current time. Nil means time.Now.
	Now func() time.Time
	// Logger receives JWKS fetch failures. Nil means no logging.
	Logger *slog.Logger
}

// JWTVerifier verifies JWT access tokens ([RFC 9068]) with the
// authorization server's published keys. It is a [Verifier].
//
// A token is accepted when all of these hold:
//   - it is at most MaxTokenBytes long and a compact JWS;
//   - its "alg" is allowed and, when the key names one, equals the key's;
//   - its "typ" is "at+jwt" or "application/at+jwt" (RFC 9068 §2.1);
//   - its "kid" names a key of the JWKS (a token without "kid" only when
//     the JWKS has exactly one usable key), and the signature verifies;
//   - its header and claims are JSON objects read with exact member
//     names, none of them twice: a repeated member, or a claim this
//     verifier reads spelled in another case ("AUD", "Exp"), is refused
//     rather than folded or last-wins;
//   - it has "iss", "sub", "aud", "exp", "iat", "jti" and "client_id"
//     (RFC 9068 §2.2), "iss" equals Issuer and "aud" names Resource;
//   - "exp" has not passed and "nbf", if present, has, within ClockSkew.
//
// Header parameters that point at keys — "jku", "x5u", "x5c" and an
// embedded "jwk" — are ignored: keys only ever come from the issuer's
// JWKS. A token that verified is remembered (see
// [JWTOptions.VerifiedCacheSize]), so a client's following requests cost a
// hash and a map lookup instead of a signature check. The claims are read from "scope" (a space-separated string); the
// "scp" array some servers use is not supported.
//
// [RFC 9068]: https://www.rfc-editor.org/rfc/rfc9068
type JWTVerifier struct {
	issuer    string
	resource  string // as configured
	canonical string // CanonicalResource(resource)
	algs      []jose.SignatureAlgorithm
	skew      time.Duration
	maxBytes  int
	now       func() time.Time
	keys      *keyCache

	cacheSize int
	mu        sync.RWMutex
	verified  map[[32]byte]verifiedToken
}

// verifiedToken is a remembered verification.
type verifiedToken struct {
	info *TokenInfo
	key  *verificationKey // the key that verified it, as published then
	kid  string
}

// NewJWTVerifier returns a verifier for opts. It does not contact the
// authorization server: the keys are fetched on first use, so the
// resource server may start before the authorization server.
func NewJWTVerifier(opts JWTOptions) (*JWTVerifier, error) {
	if opts.Issuer == "" {
		return nil, errors.New("rs: JWTOptions.Issuer is required")
	}
	if _, err := metadataURLs(opts.Issuer); err != nil {
		return nil, fmt.Errorf("rs: JWTOptions.Issuer: %w", err)
	}
	if opts.Resource == "" {
		return nil, errors.New("rs: JWTOptions.Resource is required")
	}
	canon, err := CanonicalResource(opts.Resource)
	if err != nil {
		return nil, err
	}
	if opts.ClockSkew < 0 || opts.MaxTokenBytes < 0 || opts.MinRefreshInterval < 0 || opts.MaxKeyAge < 0 {
		return nil, errors.New("rs: JWTOptions durations and sizes must not be negative")
	}
	names := opts.Algorithms
	if names == nil {
		names = []string{"ES256"}
	}
	if len(names) == 0 {
		return nil, errors.New("rs: JWTOptions.Algorithms is empty")
	}
	allowed := map[string]bool{}
	var algs []jose.SignatureAlgorithm
	for _, a := range names {
		if !asymmetricAlgs[a] {
			return nil, fmt.Errorf("rs: algorithm %q is not allowed: asymmetric JWS algorithms only (ES256, ES384, ES512, RS256, RS384, RS512, PS256, PS384, PS512, EdDSA)", a)
		}
		if !allowed[a] {
			allowed[a] = true
			algs = append(algs, jose.SignatureAlgorithm(a))
		}
	}
	v := &JWTVerifier{
		issuer:    opts.Issuer,
		resource:  opts.Resource,
		canonical: canon,
		algs:      algs,
		skew:      opts.ClockSkew,
		maxBytes:  cmp.Or(opts.MaxTokenBytes, DefaultMaxTokenBytes),
		now:       opts.Now,
		cacheSize: cmp.Or(opts.VerifiedCacheSize, DefaultVerifiedCacheSize),
	}
	if v.cacheSize > 0 {
		v.verified = make(map[[32]byte]verifiedToken)
	}
	if v.now == nil {
		v.now = time.Now
	}
	client := opts.HTTPClient
	if client == nil {
		client = defaultClient
	}
	v.keys = &keyCache{
		client:      client,
		issuer:      opts.Issuer,
		jwksURL:     opts.JWKSURL,
		algs:        allowed,
		minInterval: cmp.Or(opts.MinRefreshInterval, DefaultMinRefreshInterval),
		maxAge:      cmp.Or(opts.MaxKeyAge, DefaultMaxKeyAge),
		now:         v.now,
		log:         opts.Logger,
	}
	return v, nil
}

// Verify checks token as described at [JWTVerifier] and returns its
// claims. Errors wrap [ErrInvalidToken] and a reason ([ErrExpired],
// [ErrAudience], …), or [ErrUnavailable] when no keys could be fetched, or
// the context's error.
func (v *JWTVerifier) Verify(ctx context.Context, token string) (*TokenInfo, error) {
	if len(token) > v.maxBytes {
		return nil, invalid(ErrTooLarge, "%d bytes, limit %d", len(token), v.maxBytes)
	}
	if strings.Count(token, ".") != 2 {
		return nil, invalid(ErrMalformed, "not a compact JWS")
	}
	var sum [32]byte
	if v.verified != nil {
		sum = sha256.Sum256([]byte(token))
		v.mu.RLock()
		e, ok := v.verified[sum]
		v.mu.RUnlock()
		if ok {
			if info, err := v.reuse(e); err != errReverify {
				return info, err
			}
		}
	}
	if h, input, payload, sig, ok := parseES256(token); ok && slices.Contains(v.algs, jose.ES256) {
		return v.finish(ctx, sum, h.Typ, h.Kid, h.Alg, payload, func(key any) bool { return verifyES256(key, input, sig) })
	}
	jws, err := jose.ParseSignedCompact(token, v.algs)
	if err != nil {
		if e, ok := errors.AsType[*jose.ErrUnexpectedSignatureAlgorithm](err); ok {
			return nil, invalid(ErrAlgorithm, "%.20q", string(e.Got))
		}
		return nil, invalid(ErrMalformed, "%v", err)
	}
	if len(jws.Signatures) != 1 {
		return nil, invalid(ErrMalformed, "not exactly one signature")
	}
	h := jws.Signatures[0].Protected
	typ, _ := h.ExtraHeaders[jose.HeaderType].(string)
	var payload []byte
	return v.finish(ctx, sum, typ, h.KeyID, h.Algorithm, nil, func(key any) bool {
		p, err := jws.Verify(key)
		payload = p
		return err == nil
	}, &payload)
}

// finish completes a verification once the header is read: the typ, the
// key for kid and its algorithm, the signature (verify), the claims. The
// payload is given, or (general path) filled in by verify through out.
func (v *JWTVerifier) finish(ctx context.Context, sum [32]byte, typ, kid, alg string, payload []byte, verify func(key any) bool, out ...*[]byte) (*TokenInfo, error) {
	if !isAccessTokenType(typ) {
		return nil, invalid(ErrType, "typ %.40q", typ)
	}
	key, err := v.keys.key(ctx, kid)
	if err != nil {
		return nil, err
	}
	if key.alg != "" && key.alg != alg {
		return nil, invalid(ErrAlgorithm, "token alg %s, key %s is %s", alg, key.kid, key.alg)
	}
	if !verify(key.key) {
		return nil, invalid(ErrSignature, "")
	}
	if len(out) > 0 {
		payload = *out[0]
	}
	var c jwtClaims
	if err := parseClaims(payload, &c); err != nil {
		return nil, invalid(ErrMalformed, "claims: %v", err)
	}
	info, err := v.check(&c)
	if err != nil {
		return nil, err
	}
	if v.verified != nil {
		v.remember(sum, verifiedToken{info: info, key: key, kid: kid})
		cp := *info
		return &cp, nil
	}
	return info, nil
}

// errReverify tells Verify that a remembered verification no longer
// holds and the token must be verified afresh.
var errReverify = errors.New("verify again")

// reuse answers from a remembered verification if its key is still the
// published one, and returns errReverify otherwise.
func (v *JWTVerifier) reuse(e verifiedToken) (*TokenInfo, error) {
	snap := v.keys.keys.Load()
	if snap.lookup(e.kid) != e.key {
		return nil, errReverify
	}
	now := v.now()
	if snap.stale(now) {
		v.keys.startFetch()
	}
	if err := v.checkTimes(e.info, now); err != nil {
		return nil, err
	}
	cp := *e.info
	return &cp, nil
}

// remember stores a verification; a full cache drops expired tokens
// first (boundmap.Put).
func (v *JWTVerifier) remember(sum [32]byte, e verifiedToken) {
	v.mu.Lock()
	defer v.mu.Unlock()
	now := v.now()
	boundmap.Put(v.verified, v.cacheSize, sum, e, func(old verifiedToken) bool {
		return !now.Before(old.info.Expiry.Add(v.skew))
	})
}

// checkTimes checks exp and nbf against now.
func (v *JWTVerifier) checkTimes(info *TokenInfo, now time.Time) error {
	if !now.Before(info.Expiry.Add(v.skew)) {
		return invalid(ErrExpired, "exp %s", info.Expiry.UTC().Format(time.RFC3339))
	}
	if !info.NotBefore.IsZero() && now.Add(v.skew).Before(info.NotBefore) {
		return invalid(ErrNotYetValid, "nbf %s", info.NotBefore.UTC().Format(time.RFC3339))
	}
	return nil
}

// check validates decoded claims and builds the TokenInfo.
func (v *JWTVerifier) check(c *jwtClaims) (*TokenInfo, error) {
	switch {
	case c.Iss == "":
		return nil, invalid(ErrMissingClaim, "iss")
	case c.Sub == "":
		return nil, invalid(ErrMissingClaim, "sub")
	case len(c.Aud) == 0:
		return nil, invalid(ErrMissingClaim, "aud")
	case c.Exp.IsZero():
		return nil, invalid(ErrMissingClaim, "exp")
	case c.Iat.IsZero():
		return nil, invalid(ErrMissingClaim, "iat")
	case c.JTI == "":
		return nil, invalid(ErrMissingClaim, "jti")
	case c.ClientID == "":
		return nil, invalid(ErrMissingClaim, "client_id")
	}
	if c.Iss != v.issuer {
		return nil, invalid(ErrIssuer, "iss %.100q", c.Iss)
	}
	ok := false
	for _, a := range c.Aud {
		if sameResource(a, v.resource, v.canonical) {
			ok = true
			break
		}
	}
	if !ok {
		return nil, invalid(ErrAudience, "aud %.200q", c.Aud)
	}
	info := &TokenInfo{
		Subject:   c.Sub,
		ClientID:  c.ClientID,
		Scopes:    splitScope(c.Scope),
		Issuer:    c.Iss,
		Audience:  c.Aud,
		Expiry:    c.Exp.Time(),
		IssuedAt:  c.Iat.Time(),
		NotBefore: c.Nbf.Time(),
		AuthTime:  c.AuthTime.Time(),
		ID:        c.JTI,
		JKT:       c.Cnf.JKT,
	}
	if err := v.checkTimes(info, v.now()); err != nil {
		return nil, err
	}
	return info, nil
}

// isAccessTokenType accepts both forms RFC 9068 §4 allows; media types
// are case-insensitive.
func isAccessTokenType(typ string) bool {
	return strings.EqualFold(typ, "at+jwt") || strings.EqualFold(typ, "application/at+jwt")
}

// jwtClaims are the claims of an RFC 9068 access token that rs reads.
// parseClaims fills them, by the exact names jwtClaims.field maps; they
// have no json tags on purpose: encoding/json would match those without
// regard to case.
type jwtClaims struct {
	Iss      string
	Sub      string
	Aud      oauth.Audience
	Exp      oauth.NumericDate
	Nbf      oauth.NumericDate
	Iat      oauth.NumericDate
	AuthTime oauth.NumericDate
	JTI      string
	ClientID string
	Scope    string
	Cnf      confirmation
}

// splitScope splits a scope claim at spaces, dropping empty tokens.
func splitScope(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Fields(s)
}
