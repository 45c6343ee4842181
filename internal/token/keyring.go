package token

import (
	"cmp"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/gatehouse-mcp/gatehouse/internal/boundmap"
	"github.com/gatehouse-mcp/gatehouse/internal/storage"
)

// Defaults of [KeyringOptions].
const (
	// DefaultRefreshInterval is how often a keyring re-reads storage unless
	// told otherwise: short enough that a rotation reaches every replica
	// within seconds, long enough that storage sees one query per replica
	// per interval.
	DefaultRefreshInterval = 30 * time.Second
	// DefaultRetireFor is how long a retired key stays published unless
	// told otherwise: far longer than any sensible access-token lifetime,
	// so rotation never cuts a token short.
	DefaultRetireFor = 24 * time.Hour
	// DefaultVerifiedCacheSize is how many verified tokens Verify
	// remembers unless told otherwise: about 5 MB when full.
	DefaultVerifiedCacheSize = 10000
)

// maxTokenSize bounds what Verify parses. Our tokens are well under 2 KiB;
// the bound keeps a hostile introspection request from making us decode
// megabytes.
const maxTokenSize = 8 << 10

// forcedReloadEvery limits reloads triggered by an unknown kid, so that
// tokens with made-up kids cannot turn into one storage query each.
const forcedReloadEvery = time.Second

// verifyAlgs are the algorithms Verify lets the parser accept; the
// per-key check then narrows it to the algorithm of the key the token
// names. Never "none" or HS*.
var verifyAlgs = []jose.SignatureAlgorithm{jose.ES256, jose.RS256, jose.EdDSA}

// KeyringOptions configure [NewKeyring].
type KeyringOptions struct {
	// Keys is where signing keys live, shared by every replica. Required.
	Keys storage.Keys
	// EncryptionKey is the 32-byte master key that private keys are
	// encrypted with at rest ([Seal], additional data = kid). Required.
	EncryptionKey []byte
	// Algorithm is the JOSE algorithm of keys this keyring generates: ES256
	// (the default when empty), RS256 or EdDSA. Changing it takes effect at
	// the next [Keyring.Rotate]; existing keys keep their algorithm, and
	// tokens are verified with the algorithm of the key that signed them.
	Algorithm string
	// Now is the clock. Required: nothing outside cmd/ reads the wall
	// clock directly.
	Now func() time.Time
	// Rand is the source for nonces and (on toolchains that honour it) key
	// generation. Nil means crypto/rand.Reader.
	Rand io.Reader
	// RefreshInterval is how often the keyring re-reads keys from storage
	// to pick up rotations done by other replicas. Zero means
	// DefaultRefreshInterval (30s).
	RefreshInterval time.Duration
	// RetireFor is how long a retired key stays published and verifiable.
	// It must exceed the longest access-token lifetime plus
	// RefreshInterval (a replica may sign with a just-retired key until
	// its next refresh). Zero means DefaultRetireFor (24h).
	RetireFor time.Duration
	// ActivationDelay is how long a new key is published before it signs.
	// Every replica must have reloaded it (RefreshInterval) and every
	// resource server's cached JWKS must have expired before a token
	// signed with it appears, or a resource server whose JWKS came from a
	// replica that had not seen the key yet rejects a valid token. Until
	// then the previous key keeps signing. Zero (the default) activates a
	// new key at once; the first key of an empty store always signs at once.
	ActivationDelay time.Duration
	// Leeway is the clock skew Verify tolerates on exp and nbf, for
	// replicas whose clocks differ slightly. Zero (the default) compares
	// strictly.
	Leeway time.Duration
	// VerifiedCacheSize is how many verified tokens Verify remembers, by
	// the SHA-256 of the token, so that verifying the same token again
	// (a resource server introspecting it on every request) skips the
	// parse and the signature check. A remembered token is still checked
	// against the clock (exp, nbf) and against the current key set: it
	// verifies only while the key that signed it is published. Only
	// tokens that verified are remembered, so made-up tokens cannot fill
	// it. Zero means DefaultVerifiedCacheSize; negative disables it.
	VerifiedCacheSize int
}

// KeyInfo describes a signing key, for listing.
type KeyInfo struct {
	ID          string // kid
	Algorithm   string
	CreatedAt   time.Time
	RetiredAt   time.Time // zero for the active key
	RemoveAfter time.Time // zero for the active key
	// WithdrawnAt is when the key was withdrawn ([Keyring.Withdraw]), zero
	// if it was not. A withdrawn key is neither active nor published.
	WithdrawnAt time.Time
	// Active reports whether this keyring signs new tokens with the key.
	Active bool
	// Published reports whether the key is in the JWKS and verifies
	// tokens: active, or retired and before RemoveAfter, and not withdrawn.
	Published bool
}

// Keyring signs and verifies access tokens with keys kept in storage. It
// is safe for concurrent use and designed for several replicas sharing
// one database: every replica reads the same keys, and all state in memory
// is a cache of storage.
//
// The signing path reads an immutable snapshot through an atomic pointer:
// no lock and no storage access, except that one caller every
// RefreshInterval reloads the snapshot (others carry on with the old one).
type Keyring struct {
	keys      storage.Keys
	encKey    []byte
	alg       string
	now       func() time.Time
	rand      io.Reader
	refresh   time.Duration
	retireFor time.Duration
	leeway    time.Duration
	activate  time.Duration

	set         atomic.Pointer[keySet]
	jwks        atomic.Pointer[jwksDoc]
	loadedAt    atomic.Int64 // UnixNano of the last successful reload
	nextRefresh atomic.Int64 // UnixNano of the next periodic reload
	lastForced  atomic.Int64 // UnixNano of the last reload for an unknown kid

	// mu serializes reloads and rotations and guards cache.
	mu sync.Mutex
	// cache holds decrypted keys by kid, so a reload decrypts only rows it
	// has not seen.
	cache map[string]*signingKey

	// verified remembers tokens that verified (see
	// KeyringOptions.VerifiedCacheSize); nil when disabled.
	verifiedMu   sync.RWMutex
	verified     map[[sha256.Size]byte]verifiedToken
	verifiedSize int
}

// verifiedToken is a remembered verification: the claims, and the key
// that verified them, as loaded then.
type verifiedToken struct {
	claims AccessClaims
	kid    string
	key    *signingKey
}

// keySet is one immutable snapshot of the keys in storage.
type keySet struct {
	active  *loadedKey // nil if storage lists no active key
	byKID   map[string]*loadedKey
	ordered []*loadedKey // newest first
	// withdrawn holds the tombstones of withdrawn keys by kid: never
	// published, never used; kept to list them and to say why a token
	// naming one is refused.
	withdrawn map[string]storage.SigningKey
}

// sameAs reports whether s and o hold the same keys with the same
// metadata. A reload that finds nothing new keeps the old snapshot, so
// the encoded JWKS (and any ETag a handler derives from it) stays stable.
func (s *keySet) sameAs(o *keySet) bool {
	if o == nil || s.activeKID() != o.activeKID() || len(s.ordered) != len(o.ordered) {
		return false
	}
	for i, a := range s.ordered {
		b := o.ordered[i]
		if a.signingKey != b.signingKey || !a.created.Equal(b.created) ||
			!a.retired.Equal(b.retired) || !a.removeAfter.Equal(b.removeAfter) {
			return false
		}
	}
	if len(s.withdrawn) != len(o.withdrawn) {
		return false
	}
	for kid, a := range s.withdrawn {
		if b, ok := o.withdrawn[kid]; !ok || !a.WithdrawnAt.Equal(b.WithdrawnAt) || !a.RemoveAfter.Equal(b.RemoveAfter) {
			return false
		}
	}
	return true
}

func (s *keySet) activeKID() string {
	if s.active == nil {
		return ""
	}
	return s.active.kid
}

type loadedKey struct {
	*signingKey
	keyTimes
}

// keyTimes are the times of a stored key (not withdrawn) that decide
// whether it signs and whether it is published.
type keyTimes struct {
	created, retired, removeAfter time.Time
}

// published reports whether k is in the JWKS at now. A retired key with
// no RemoveAfter is kept: refusing tokens is worse than publishing a key
// a little long.
func (k keyTimes) published(now time.Time) bool {
	return k.removeAfter.IsZero() || now.Before(k.removeAfter)
}

// newestFirst orders keys by creation, newest first, ties broken by kid,
// so every replica orders (and picks the signer) the same way whatever
// order the backend returned.
func newestFirst(aCreated, bCreated time.Time, aKID, bKID string) int {
	return cmp.Or(bCreated.Compare(aCreated), strings.Compare(bKID, aKID))
}

// chooseSigner returns the index of the key that signs at now among keys
// (newest first, see newestFirst; withdrawn keys left out), -1 if none,
// and the earliest time after now at which a published key waiting for
// the activation delay becomes due to sign (zero if none waits). The
// keyring signs with its choice and [KeyStates] lists from it: one rule.
//
// The signer is the newest key that has been published for at least the
// activation delay — normally the one storage lists as active (and if a
// racing write left two, the newest wins, on every replica alike). A
// younger key is published but waits (so does a young key already
// rotated out again); meanwhile the key the oldest waiting key replaced
// signs, though storage already marks that one retired. Only that key: a
// rotation retires the active key at the new key's creation, so the
// replaced key is one retired at or after it. If that key was withdrawn,
// an older retired key does not take over (it may be about to leave the
// JWKS, and was not signing); the young key signs at once instead.
func chooseSigner(keys []keyTimes, now time.Time, activate time.Duration) (signer int, due time.Time) {
	signer = -1
	cutoff := now.Add(-activate)
	oldestYoung := -1          // index of the oldest key younger than the delay
	var pendingSince time.Time // its creation
	for i, k := range keys {
		if !k.published(now) {
			continue
		}
		if oldestYoung >= 0 && !k.retired.IsZero() && k.retired.Before(pendingSince) {
			// Retired before the oldest waiting key was made: not the key
			// it replaced (that one was withdrawn), and not signing.
			break
		}
		if k.created.After(cutoff) {
			// Published for less than the delay: it waits, retired or
			// not. A key rotated in and out again within the delay
			// (two rotations in a row) must not sign early either:
			// resource servers may not have it yet.
			oldestYoung, pendingSince = i, k.created
			if at := k.created.Add(activate); due.IsZero() || at.Before(due) {
				due = at
			}
			continue
		}
		if k.retired.IsZero() {
			signer = i
			break
		}
		if oldestYoung >= 0 {
			signer = i // the key the oldest waiting one replaced
			break
		}
	}
	if signer < 0 && oldestYoung >= 0 {
		// The oldest waiting key replaced no key that can sign (a
		// store's first key, or its predecessor was withdrawn): it
		// signed at once then, and goes on signing until its successor
		// is due.
		return oldestYoung, due
	}
	if signer < 0 {
		// No key younger than the delay and none unretired (clocks
		// apart): the newest unretired one signs rather than nothing.
		for i, k := range keys {
			if k.retired.IsZero() {
				return i, due
			}
		}
	}
	return signer, due
}

type jwksDoc struct {
	set   *keySet
	until time.Time // the first RemoveAfter among the published keys
	body  []byte
}

// NewKeyring loads the signing keys from storage and, when none is active,
// generates and stores one.
//
// Replicas starting together on an empty database may each create a key.
// That is safe: storing a key retires every active one, so the last writer
// wins, and each replica reloads after storing and signs with whatever
// storage then lists as active. A key that lost the race stays published
// for RetireFor, so anything signed with it before the next refresh still
// verifies.
func NewKeyring(ctx context.Context, opts KeyringOptions) (*Keyring, error) {
	k := &Keyring{
		keys:      opts.Keys,
		encKey:    opts.EncryptionKey,
		alg:       cmp.Or(opts.Algorithm, ES256),
		now:       opts.Now,
		rand:      cmp.Or[io.Reader](opts.Rand, rand.Reader),
		refresh:   cmp.Or(opts.RefreshInterval, DefaultRefreshInterval),
		activate:  opts.ActivationDelay,
		retireFor: cmp.Or(opts.RetireFor, DefaultRetireFor),
		leeway:    opts.Leeway,
		cache:     map[string]*signingKey{},
	}
	if opts.VerifiedCacheSize >= 0 {
		k.verifiedSize = cmp.Or(opts.VerifiedCacheSize, DefaultVerifiedCacheSize)
		k.verified = make(map[[sha256.Size]byte]verifiedToken)
	}
	switch {
	case k.keys == nil:
		return nil, errors.New("token: KeyringOptions.Keys is required")
	case len(k.encKey) != KeySize:
		return nil, fmt.Errorf("token: KeyringOptions.EncryptionKey is %d bytes, want %d", len(k.encKey), KeySize)
	case k.now == nil:
		return nil, errors.New("token: KeyringOptions.Now is required")
	case k.alg != ES256 && k.alg != RS256 && k.alg != EdDSA:
		return nil, fmt.Errorf("token: KeyringOptions.Algorithm %q is not one of ES256, RS256, EdDSA", k.alg)
	case k.refresh < 0 || k.retireFor < 0 || k.leeway < 0 || k.activate < 0:
		return nil, errors.New("token: KeyringOptions durations must not be negative")
	case k.retireFor <= k.refresh:
		return nil, fmt.Errorf("token: KeyringOptions.RetireFor (%v) must exceed RefreshInterval (%v)", k.retireFor, k.refresh)
	}
	if err := k.Reload(ctx); err != nil {
		return nil, err
	}
	if k.set.Load().active != nil {
		return k, nil
	}
	if _, err := k.Rotate(ctx); err != nil {
		// A replica racing us may have stored its key in a way our write
		// conflicts with; if a key is active now, use it.
		if rerr := k.Reload(ctx); rerr != nil || k.set.Load().active == nil {
			return nil, fmt.Errorf("token: create first signing key: %w", err)
		}
	}
	return k, nil
}

// Reload re-reads the keys from storage now. The keyring also reloads by
// itself every RefreshInterval; call Reload after changing keys behind its
// back. On error the previous snapshot stays in use.
func (k *Keyring) Reload(ctx context.Context) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.reloadLocked(ctx)
}

func (k *Keyring) reloadLocked(ctx context.Context) error {
	now := k.now()
	rows, err := k.keys.ListSigningKeys(ctx)
	if err != nil {
		return fmt.Errorf("token: list signing keys: %w", err)
	}
	set := &keySet{byKID: make(map[string]*loadedKey, len(rows)), withdrawn: map[string]storage.SigningKey{}}
	cache := make(map[string]*signingKey, len(rows))
	for _, row := range rows {
		_, dup := set.byKID[row.ID]
		if _, dup2 := set.withdrawn[row.ID]; dup || dup2 {
			return fmt.Errorf("token: signing key %s listed twice", row.ID)
		}
		if !row.WithdrawnAt.IsZero() {
			// A tombstone: nothing to open (its private key is gone),
			// nothing to publish or verify with.
			row.PrivateKey = nil
			set.withdrawn[row.ID] = row
			continue
		}
		sk := k.cache[row.ID]
		if sk == nil || !sk.unchanged(row) {
			// A row that fails to open means a wrong master key or
			// tampering. Fail loudly rather than skip it: skipping the
			// active key would silently sign with another one.
			if sk, err = openSigningKey(k.encKey, row); err != nil {
				return err
			}
		}
		cache[row.ID] = sk
		lk := &loadedKey{signingKey: sk, keyTimes: keyTimes{created: row.CreatedAt, retired: row.RetiredAt, removeAfter: row.RemoveAfter}}
		set.byKID[row.ID] = lk
		set.ordered = append(set.ordered, lk)
	}
	slices.SortStableFunc(set.ordered, func(a, b *loadedKey) int {
		return newestFirst(a.created, b.created, a.kid, b.kid)
	})
	times := make([]keyTimes, len(set.ordered))
	for i, lk := range set.ordered {
		times[i] = lk.keyTimes
	}
	next := now.Add(k.refresh)
	signer, due := chooseSigner(times, now, k.activate)
	if signer >= 0 {
		set.active = set.ordered[signer]
	}
	if !due.IsZero() && due.Before(next) {
		next = due // reload when a waiting key becomes due to sign
	}
	k.cache = cache
	if !set.sameAs(k.set.Load()) {
		k.set.Store(set)
	}
	k.loadedAt.Store(now.UnixNano())
	k.nextRefresh.Store(next.UnixNano())
	return nil
}

// maybeRefresh reloads the snapshot when it is due. Exactly one caller
// does the reload while the others go on with the current snapshot, so a
// slow database delays one request per interval, not all of them. A
// failed reload is retried a second later; meanwhile the old keys stay in
// use (see the staleness bound in Sign).
func (k *Keyring) maybeRefresh(ctx context.Context) {
	if k.now().UnixNano() < k.nextRefresh.Load() || !k.mu.TryLock() {
		return
	}
	defer k.mu.Unlock()
	if k.now().UnixNano() < k.nextRefresh.Load() {
		return // someone else reloaded while we took the lock
	}
	if err := k.reloadLocked(ctx); err != nil {
		k.nextRefresh.Store(k.now().Add(min(time.Second, k.refresh)).UnixNano())
	}
}

// Sign returns c as a signed JWT access token (RFC 9068) with the active
// key: header {"alg", "kid", "typ":"at+jwt"}.
//
// Sign refuses a token that would outlive the guaranteed publication of
// its key. The active key was active when the snapshot was loaded, so it
// stays published at least RetireFor past that moment; a token expiring
// later could stop verifying before it expires. With sane settings
// (RetireFor of hours, tokens of minutes) this only fires when storage has
// been unreachable for about RetireFor, or RetireFor is shorter than the
// token lifetime.
func (k *Keyring) Sign(ctx context.Context, c AccessClaims) (string, error) {
	k.maybeRefresh(ctx)
	if err := c.validate(); err != nil {
		return "", err
	}
	// Read loadedAt before the set: a reload stores the set first, so the
	// bound below is computed from a load no newer than the set's, which
	// can only make it stricter.
	loadedAt := time.Unix(0, k.loadedAt.Load())
	set := k.set.Load()
	if set.active == nil {
		return "", ErrNoActiveKey
	}
	if limit := loadedAt.Add(k.retireFor); c.ExpiresAt.After(limit) {
		return "", fmt.Errorf("token: exp %s is past %s, when key %s may stop being published (keys last loaded %s; is storage reachable, and does RetireFor exceed the token lifetime?)",
			c.ExpiresAt.UTC().Format(time.RFC3339), limit.UTC().Format(time.RFC3339), set.active.kid, loadedAt.UTC().Format(time.RFC3339))
	}
	payload, err := json.Marshal(c.wire())
	if err != nil {
		return "", fmt.Errorf("token: encode claims: %w", err)
	}
	tok, err := set.active.sign(payload)
	if err != nil {
		return "", fmt.Errorf("token: sign with key %s: %w", set.active.kid, err)
	}
	return tok, nil
}

// Verify checks an access token issued by this server, for introspection
// (RFC 7662): compact JWS, "typ" at+jwt, a "kid" naming a published key,
// "alg" equal to that key's algorithm (so never "none" or HMAC), a valid
// signature, the claims RFC 9068 requires, and exp and nbf against the
// keyring's clock. It does not check iss or aud: the caller knows which
// values it accepts. Every error wraps one of ErrMalformed, ErrAlgorithm,
// ErrType, ErrUnknownKey, ErrSignature, ErrExpired or ErrNotYetValid.
//
// A token that verified is remembered (KeyringOptions.VerifiedCacheSize):
// verifying it again costs a hash and a map lookup, plus the checks that
// can change — its key still published and the same, exp and nbf against
// the clock. Anything else, such as revocation, is the caller's to check
// on every request, as before.
func (k *Keyring) Verify(ctx context.Context, token string) (AccessClaims, error) {
	k.maybeRefresh(ctx)
	if len(token) > maxTokenSize {
		return AccessClaims{}, fmt.Errorf("%w: longer than %d bytes", ErrMalformed, maxTokenSize)
	}
	if k.verified == nil {
		c, _, err := k.verify(ctx, token)
		return c, err
	}
	sum := sha256.Sum256([]byte(token))
	k.verifiedMu.RLock()
	v, ok := k.verified[sum]
	k.verifiedMu.RUnlock()
	now := k.now()
	if ok {
		// The key must still be published, and be the very key that
		// verified the token. Otherwise verify afresh, which gives the
		// error (or a reload for a kid another replica rotated in).
		if key := k.set.Load().byKID[v.kid]; key != nil && key.signingKey == v.key && key.published(now) {
			if err := k.checkTimes(v.claims, now); err != nil {
				return AccessClaims{}, err
			}
			return v.claims, nil
		}
	}
	c, key, err := k.verify(ctx, token)
	if err == nil {
		k.remember(sum, verifiedToken{claims: c, kid: key.kid, key: key.signingKey}, now)
	}
	return c, err
}

// verify is Verify without the cache. It returns the key that verified
// the token.
func (k *Keyring) verify(ctx context.Context, token string) (AccessClaims, *loadedKey, error) {
	jws, err := jose.ParseSignedCompact(token, verifyAlgs)
	if err != nil {
		if _, ok := errors.AsType[*jose.ErrUnexpectedSignatureAlgorithm](err); ok {
			return AccessClaims{}, nil, ErrAlgorithm
		}
		return AccessClaims{}, nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	h := jws.Signatures[0].Header
	if typ, _ := h.ExtraHeaders[jose.HeaderType].(string); !isAccessTokenType(typ) {
		return AccessClaims{}, nil, ErrType
	}
	now := k.now()
	key, err := k.lookup(ctx, h.KeyID, now)
	if err != nil {
		return AccessClaims{}, nil, err
	}
	if h.Algorithm != string(key.alg) {
		return AccessClaims{}, nil, fmt.Errorf("%w: key %s is %s", ErrAlgorithm, key.kid, key.alg)
	}
	payload, err := jws.Verify(key.public.Key)
	if err != nil {
		return AccessClaims{}, nil, ErrSignature
	}
	var w wireAccess
	if err := json.Unmarshal(payload, &w); err != nil {
		return AccessClaims{}, nil, fmt.Errorf("%w: claims: %v", ErrMalformed, err)
	}
	c := w.claims()
	if err := c.validate(); err != nil {
		return AccessClaims{}, nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if err := k.checkTimes(c, now); err != nil {
		return AccessClaims{}, nil, err
	}
	return c, key, nil
}

// checkTimes checks exp and nbf against now, within the leeway.
func (k *Keyring) checkTimes(c AccessClaims, now time.Time) error {
	if !now.Before(c.ExpiresAt.Add(k.leeway)) {
		return fmt.Errorf("%w at %s", ErrExpired, c.ExpiresAt.Format(time.RFC3339))
	}
	if !c.NotBefore.IsZero() && now.Add(k.leeway).Before(c.NotBefore) {
		return fmt.Errorf("%w until %s", ErrNotYetValid, c.NotBefore.Format(time.RFC3339))
	}
	return nil
}

// remember stores a verification; a full cache drops expired tokens
// first (boundmap.Put).
func (k *Keyring) remember(sum [sha256.Size]byte, v verifiedToken, now time.Time) {
	k.verifiedMu.Lock()
	defer k.verifiedMu.Unlock()
	boundmap.Put(k.verified, k.verifiedSize, sum, v, func(old verifiedToken) bool {
		return !now.Before(old.claims.ExpiresAt.Add(k.leeway))
	})
}

// isAccessTokenType accepts both forms RFC 9068 §4 allows; media types
// are case-insensitive.
func isAccessTokenType(typ string) bool {
	return strings.EqualFold(typ, accessTokenType) || strings.EqualFold(typ, "application/"+accessTokenType)
}

// lookup returns the published key kid. An unknown kid may belong to a key
// another replica just rotated in, so it triggers one reload, at most once
// per forcedReloadEvery.
func (k *Keyring) lookup(ctx context.Context, kid string, now time.Time) (*loadedKey, error) {
	if kid == "" {
		return nil, fmt.Errorf("%w: no kid", ErrUnknownKey)
	}
	set := k.set.Load()
	if key := set.byKID[kid]; key != nil {
		if !key.published(now) {
			return nil, fmt.Errorf("%w: key %s was removed at %s", ErrUnknownKey, kid, key.removeAfter.UTC().Format(time.RFC3339))
		}
		return key, nil
	}
	if w, ok := set.withdrawn[kid]; ok {
		// No reload: a withdrawal is final.
		return nil, fmt.Errorf("%w: key %s was withdrawn at %s", ErrUnknownKey, kid, w.WithdrawnAt.UTC().Format(time.RFC3339))
	}
	last := k.lastForced.Load()
	if now.UnixNano()-last < int64(forcedReloadEvery) || !k.lastForced.CompareAndSwap(last, now.UnixNano()) {
		return nil, ErrUnknownKey
	}
	if err := k.Reload(ctx); err != nil {
		return nil, fmt.Errorf("%w; reloading keys: %w", ErrUnknownKey, err)
	}
	set = k.set.Load()
	if key := set.byKID[kid]; key != nil && key.published(now) {
		return key, nil
	}
	if w, ok := set.withdrawn[kid]; ok {
		return nil, fmt.Errorf("%w: key %s was withdrawn at %s", ErrUnknownKey, kid, w.WithdrawnAt.UTC().Format(time.RFC3339))
	}
	return nil, ErrUnknownKey
}

// Rotate generates a key with the configured algorithm, stores it as the
// active key and reloads. Every previously active key is retired and
// stays published for RetireFor, so tokens it signed keep verifying until
// they expire. It returns the new kid; when only the reload after storing
// fails it returns the kid and the error (the key is stored and other
// replicas will pick it up).
func (k *Keyring) Rotate(ctx context.Context) (kid string, err error) {
	priv, err := generateKey(k.alg, k.rand)
	if err != nil {
		return "", fmt.Errorf("token: generate key: %w", err)
	}
	sk, err := newSigningKey(k.alg, priv)
	if err != nil {
		return "", err
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	now := k.now()
	row, err := sk.seal(k.encKey, now, k.rand)
	if err != nil {
		return "", err
	}
	if err := k.keys.RotateSigningKey(ctx, row, now.Add(k.retireFor).UTC()); err != nil {
		return "", fmt.Errorf("token: store signing key: %w", err)
	}
	k.cache[sk.kid] = sk // no need to decrypt what we just encrypted
	if err := k.reloadLocked(ctx); err != nil {
		return sk.kid, fmt.Errorf("token: reload after rotation: %w", err)
	}
	return sk.kid, nil
}

// JWKS returns the JSON Web Key Set ({"keys":[...]}) of the published
// keys, public parts only, active key first. The bytes are encoded once
// and shared until the key set changes (a reload that sees a different
// set, or a retired key reaching RemoveAfter); the caller must not modify
// them.
func (k *Keyring) JWKS(ctx context.Context) ([]byte, error) {
	k.maybeRefresh(ctx)
	set, now := k.set.Load(), k.now()
	if doc := k.jwks.Load(); doc != nil && doc.set == set && now.Before(doc.until) {
		return doc.body, nil
	}
	doc := &jwksDoc{set: set, until: time.Unix(1<<62, 0)}
	keys := make([]jose.JSONWebKey, 0, len(set.ordered))
	if set.active != nil {
		keys = append(keys, set.active.public)
	}
	for _, lk := range set.ordered {
		if lk == set.active || !lk.published(now) {
			continue
		}
		keys = append(keys, lk.public)
		if !lk.removeAfter.IsZero() && lk.removeAfter.Before(doc.until) {
			doc.until = lk.removeAfter
		}
	}
	body, err := json.Marshal(jose.JSONWebKeySet{Keys: keys})
	if err != nil {
		return nil, fmt.Errorf("token: encode JWKS: %w", err)
	}
	doc.body = body
	k.jwks.Store(doc)
	return body, nil
}

// Keys reloads from storage and describes every key, newest first,
// including retired keys past RemoveAfter and withdrawn keys that garbage
// collection has not deleted yet (Published false).
func (k *Keyring) Keys(ctx context.Context) ([]KeyInfo, error) {
	if err := k.Reload(ctx); err != nil {
		return nil, err
	}
	set, now := k.set.Load(), k.now()
	infos := make([]KeyInfo, 0, len(set.ordered)+len(set.withdrawn))
	for _, lk := range set.ordered {
		infos = append(infos, KeyInfo{
			ID:          lk.kid,
			Algorithm:   string(lk.alg),
			CreatedAt:   lk.created,
			RetiredAt:   lk.retired,
			RemoveAfter: lk.removeAfter,
			Active:      lk == set.active,
			Published:   lk == set.active || lk.published(now),
		})
	}
	for _, row := range set.withdrawn {
		infos = append(infos, tombstoneInfo(row))
	}
	slices.SortStableFunc(infos, func(a, b KeyInfo) int {
		return newestFirst(a.CreatedAt, b.CreatedAt, a.ID, b.ID)
	})
	return infos, nil
}

func tombstoneInfo(row storage.SigningKey) KeyInfo {
	return KeyInfo{
		ID:          row.ID,
		Algorithm:   row.Algorithm,
		CreatedAt:   row.CreatedAt,
		RetiredAt:   row.RetiredAt,
		RemoveAfter: row.RemoveAfter,
		WithdrawnAt: row.WithdrawnAt,
	}
}

// Withdrawal is what [Keyring.Withdraw] did.
type Withdrawal struct {
	// Key is the withdrawn key as stored now: a tombstone.
	Key KeyInfo
	// Replacement is the kid of the key Withdraw rotated in because the
	// withdrawn key was not retired yet (it signed, or was about to);
	// empty when no rotation was needed.
	Replacement string
	// Already reports that the key had been withdrawn before (at
	// Key.WithdrawnAt): nothing changed.
	Already bool
}

// Withdraw removes key kid at once, for when its private key leaked or
// may have: it is deleted from storage (the row stays as a tombstone with
// the public part and the time of withdrawal), leaves the JWKS, and no
// token it signed verifies any longer. This keyring stops using it on
// return; other replicas at their next reload (RefreshInterval), and
// resource servers when their cached JWKS expires.
//
// A key that is not retired yet — the active key, or a rotated-in key
// still waiting for its activation delay — is first replaced by a new key
// ([Keyring.Rotate]), so something always signs; withdrawing the only key
// does the same. After a withdrawal no activation delay applies to the
// newest key: the key it would have waited for is gone, so it signs at
// once. An unknown kid is an error wrapping storage.ErrNotFound; a key
// withdrawn before is reported with Already set.
func (k *Keyring) Withdraw(ctx context.Context, kid string) (Withdrawal, error) {
	if err := k.Reload(ctx); err != nil {
		return Withdrawal{}, err
	}
	var w Withdrawal
	if lk := k.set.Load().byKID[kid]; lk != nil && lk.retired.IsZero() {
		var err error
		if w.Replacement, err = k.Rotate(ctx); err != nil {
			return Withdrawal{}, fmt.Errorf("token: rotate before withdrawing key %s: %w", kid, err)
		}
	}
	row, err := k.keys.WithdrawSigningKey(ctx, kid, k.now().UTC())
	switch {
	case errors.Is(err, storage.ErrWithdrawn):
		w.Already = true
	case err != nil:
		return w, fmt.Errorf("token: withdraw signing key %s: %w", kid, err)
	}
	w.Key = tombstoneInfo(row)
	if err := k.Reload(ctx); err != nil {
		return w, fmt.Errorf("token: reload after withdrawing key %s: %w", kid, err)
	}
	return w, nil
}
