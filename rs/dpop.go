package rs

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/gatehouse-mcp/gatehouse/internal/dpop"
	"github.com/gatehouse-mcp/gatehouse/internal/mcpauthz"
	"github.com/gatehouse-mcp/gatehouse/internal/oauth"
)

// DPoPOptions configures how [RequireBearer] checks DPoP proofs ([RFC
// 9449]). DPoP needs no switch: a token bound to a key (cnf.jkt,
// [TokenInfo.JKT]) is accepted only as "Authorization: DPoP <token>" with
// a valid proof signed by that key, and bearer tokens keep working as
// before. The zero value works for a single process.
//
// A proof's htu must be the origin of [Options.ResourceMetadataURL] and
// the request's path, so that a proxy in front (which changes the Host
// and scheme the server sees) does not matter; without a
// ResourceMetadataURL, the request's Host and whether it came over TLS.
//
// [RFC 9449]: https://www.rfc-editor.org/rfc/rfc9449
type DPoPOptions struct {
	// Algorithms are the proof signing algorithms accepted, sent as algs
	// in DPoP challenges. Nil means ES256, EdDSA and RS256. "none" and
	// HMAC algorithms are never accepted.
	Algorithms []string
	// MaxAge is how old a proof's iat may be; MaxSkew how far in the
	// future (the client's clock may be ahead). Zero means 60 seconds and
	// 10 seconds.
	MaxAge, MaxSkew time.Duration
	// Replay remembers the jti of each accepted proof until its iat window
	// has closed, so a proof is used once (RFC 9449 §11.1). Nil means an
	// in-memory cache of [DefaultDPoPReplayCacheSize] entries for this
	// process ([NewMemoryReplayCache]). Several replicas behind one load
	// balancer need a shared one (a database or Redis table with expiry),
	// or a proof captured at one replica can be replayed at another within
	// MaxAge.
	Replay ReplayCache
	// Nonces, if set, makes every proof carry a nonce it issued (RFC 9449
	// §9): a proof without one, or with one it no longer accepts, is
	// answered 401 use_dpop_nonce with a fresh nonce in the DPoP-Nonce
	// header, and the client retries with it. Nil requires no nonce. See
	// [NewDPoPNonces].
	Nonces DPoPNonces
	// Now returns the current time. Nil means time.Now.
	Now func() time.Time
}

// ReplayCache records the proofs a resource server has accepted.
type ReplayCache interface {
	// Use records key until expiresAt and reports whether it was new:
	// false if key is recorded and has not expired. An error means the
	// cache could not decide; the request is answered 503.
	Use(ctx context.Context, key string, expiresAt time.Time) (bool, error)
}

// DPoPNonces issues and checks server nonces for DPoP proofs.
type DPoPNonces interface {
	// Nonce returns the nonce to hand clients now.
	Nonce() string
	// Valid reports whether a proof's nonce claim is acceptable now.
	Valid(nonce string) bool
}

// DefaultDPoPReplayCacheSize is the size of the in-memory replay cache
// when [DPoPOptions.Replay] is nil: at the default MaxAge of a minute it
// holds the proofs of about 3,000 DPoP requests a second.
const DefaultDPoPReplayCacheSize = 200_000

// errReplayFull is the memory cache's answer when it is full of unexpired
// proofs.
var errReplayFull = errors.New("rs: DPoP replay cache full")

// memoryReplay is the in-memory ReplayCache.
type memoryReplay struct {
	mu   sync.Mutex
	max  int
	seen map[string]time.Time
	now  func() time.Time
}

// NewMemoryReplayCache returns a [ReplayCache] in this process's memory
// holding at most max proofs (zero or less: [DefaultDPoPReplayCacheSize]);
// now is its clock (nil: time.Now). When it is full of proofs whose window
// is still open it refuses new ones (503) rather than forget one early,
// which would let that proof be replayed.
func NewMemoryReplayCache(max int, now func() time.Time) ReplayCache {
	if max <= 0 {
		max = DefaultDPoPReplayCacheSize
	}
	if now == nil {
		now = time.Now
	}
	return &memoryReplay{max: max, seen: map[string]time.Time{}, now: now}
}

func (c *memoryReplay) Use(_ context.Context, key string, expiresAt time.Time) (bool, error) {
	now := c.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if exp, ok := c.seen[key]; ok && now.Before(exp) {
		return false, nil
	}
	if len(c.seen) >= c.max {
		for k, exp := range c.seen {
			if !now.Before(exp) {
				delete(c.seen, k)
			}
		}
		if len(c.seen) >= c.max {
			return false, errReplayFull
		}
	}
	c.seen[key] = expiresAt
	return true, nil
}

// hmacNonces is the stateless DPoPNonces of NewDPoPNonces.
type hmacNonces struct {
	key    []byte
	window time.Duration
	now    func() time.Time
}

// NewDPoPNonces returns [DPoPNonces] that need no storage: a nonce is the
// number of the current period of length window (zero: 5 minutes) with an
// HMAC under secret (at least 32 random bytes), and one is accepted during
// its period and the next. Replicas given the same secret issue and accept
// the same nonces. now is the clock (nil: time.Now).
func NewDPoPNonces(secret []byte, window time.Duration, now func() time.Time) (DPoPNonces, error) {
	if len(secret) < 32 {
		return nil, errors.New("rs: NewDPoPNonces: the secret must be at least 32 bytes")
	}
	if window <= 0 {
		window = 5 * time.Minute
	}
	if now == nil {
		now = time.Now
	}
	return &hmacNonces{key: secret, window: window, now: now}, nil
}

func (n *hmacNonces) period() int64 { return n.now().UnixNano() / int64(n.window) }

func (n *hmacNonces) make(p int64) string {
	var b [8 + 16]byte
	binary.BigEndian.PutUint64(b[:8], uint64(p))
	m := hmac.New(sha256.New, n.key)
	m.Write(b[:8])
	copy(b[8:], m.Sum(nil))
	return base64.RawURLEncoding.EncodeToString(b[:])
}

func (n *hmacNonces) Nonce() string { return n.make(n.period()) }

func (n *hmacNonces) Valid(nonce string) bool {
	p := n.period()
	return nonce != "" && (hmac.Equal([]byte(nonce), []byte(n.make(p))) || hmac.Equal([]byte(nonce), []byte(n.make(p-1))))
}

// dpopChecker is the compiled DPoPOptions.
type dpopChecker struct {
	algs            []string
	algsParam       string
	maxAge, maxSkew time.Duration
	replay          ReplayCache
	nonces          DPoPNonces
	now             func() time.Time
	origin          string // scheme://host of the resource, "" to take the request's
}

func newDPoPChecker(o DPoPOptions, metadataURL string) *dpopChecker {
	c := &dpopChecker{algs: o.Algorithms, maxAge: o.MaxAge, maxSkew: o.MaxSkew, replay: o.Replay, nonces: o.Nonces, now: o.Now}
	if c.algs == nil {
		c.algs = dpop.DefaultAlgs
	}
	c.algsParam = strings.Join(c.algs, " ")
	if c.now == nil {
		c.now = time.Now
	}
	if c.replay == nil {
		c.replay = NewMemoryReplayCache(0, c.now)
	}
	if u, err := url.Parse(metadataURL); err == nil && u.Scheme != "" && u.Host != "" {
		c.origin = u.Scheme + "://" + u.Host
	}
	return c
}

// requestURL is the URL a proof's htu must name: the resource's public
// origin (from ResourceMetadataURL, so a proxy in front does not matter)
// and the request's path.
func (c *dpopChecker) requestURL(r *http.Request) string {
	origin := c.origin
	if origin == "" {
		scheme := "http"
		if r.TLS != nil {
			scheme = "https"
		}
		origin = scheme + "://" + r.Host
	}
	return origin + r.URL.EscapedPath()
}

// dpopRefusal is why a DPoP request was refused: the challenge's error
// code and description, and whether a fresh nonce goes with it.
type dpopRefusal struct {
	code, description string
	nonce             bool
	err               error // not the client's fault: 503
}

// check checks the DPoP side of a request whose token verified as info:
// RFC 9449 §7.1 (the DPoP scheme for a bound token, a proof by its key)
// and §4.3 (the proof).
func (c *dpopChecker) check(r *http.Request, token string, info *TokenInfo, dpopScheme bool) *dpopRefusal {
	switch {
	case info.JKT == "" && !dpopScheme:
		return nil // a bearer token, as ever
	case info.JKT == "":
		return &dpopRefusal{code: "invalid_token", description: "the access token is not DPoP-bound: send it with the Bearer scheme"}
	case !dpopScheme:
		return &dpopRefusal{code: "invalid_token", description: "the access token is DPoP-bound: send it as Authorization: DPoP, with a DPoP proof (RFC 9449 section 7.1)"}
	}
	proofs := r.Header.Values("DPoP")
	switch len(proofs) {
	case 0:
		return &dpopRefusal{code: dpop.CodeInvalidProof, description: "the request has no DPoP header: a DPoP-bound token needs a proof signed by its key"}
	case 1:
	default:
		return &dpopRefusal{code: dpop.CodeInvalidProof, description: "the request has more than one DPoP header"}
	}
	req := dpop.Request{Method: r.Method, URL: c.requestURL(r), AccessToken: token, Now: c.now(), MaxAge: c.maxAge, MaxSkew: c.maxSkew, Algs: c.algs}
	p, err := dpop.Check(proofs[0], req)
	if err != nil {
		var e *dpop.Error
		if errors.As(err, &e) {
			return &dpopRefusal{code: e.Code, description: e.Description}
		}
		return &dpopRefusal{err: err}
	}
	// §4.3 item 12: the proof's key is the one the token is bound to.
	if p.JKT != info.JKT {
		return &dpopRefusal{code: dpop.CodeInvalidProof, description: "the DPoP proof is signed by another key than the one the access token is bound to"}
	}
	if c.nonces != nil && !c.nonces.Valid(p.Nonce) {
		return &dpopRefusal{code: dpop.CodeUseNonce, description: "this resource requires a nonce in DPoP proofs: make a new proof with the nonce of the DPoP-Nonce header", nonce: true}
	}
	// Last, so a refused proof is not remembered.
	fresh, err := c.replay.Use(r.Context(), p.ReplayKey(), req.ReplayUntil(p))
	switch {
	case err != nil:
		return &dpopRefusal{err: err}
	case !fresh:
		return &dpopRefusal{code: dpop.CodeInvalidProof, description: "the DPoP proof was already used: make a new proof for each request"}
	}
	return nil
}

// refuseDPoP answers a DPoP refusal: 401 with a DPoP challenge naming the
// algorithms (RFC 9449 §7.1), and a nonce with use_dpop_nonce (§9); 503
// when the replay cache could not decide.
func (m *middleware) refuseDPoP(w http.ResponseWriter, r *http.Request, f *dpopRefusal) {
	if f.err != nil {
		m.unavailable(w, r, unavailable(f.err))
		return
	}
	if m.log != nil {
		m.log.Debug("rs: DPoP request refused", "error", f.code, "description", f.description, "path", r.URL.Path)
	}
	if f.nonce || (m.dpop.nonces != nil && f.code == dpop.CodeInvalidProof) {
		w.Header().Set("DPoP-Nonce", m.dpop.nonces.Nonce())
	}
	description := oauth.SafeText(f.description)
	w.Header().Set("WWW-Authenticate", oauth.Challenge("DPoP",
		oauth.Param{Name: "error", Value: f.code}, oauth.Param{Name: "error_description", Value: description},
		oauth.Param{Name: "algs", Value: m.dpop.algsParam}, oauth.Param{Name: "resource_metadata", Value: m.metadataURL}))
	mcpauthz.WriteJSON(w, http.StatusUnauthorized, mcpauthz.OAuthError(f.code, description))
}
