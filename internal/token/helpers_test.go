package token

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/gatehouse-mcp/gatehouse/internal/storage"
)

// fakeKeys is an in-memory storage.Keys with the contract of the real
// backends: newest first, RotateSigningKey atomic. It can be told to fail,
// and counts list calls so tests can see whether a path touches storage.
type fakeKeys struct {
	mu        sync.Mutex
	rows      []storage.SigningKey
	lists     int
	listErr   error
	rotateErr error
	// hideNext makes the next n ListSigningKeys calls return nothing, to
	// stage two replicas that both saw an empty table.
	hideNext int
}

func (f *fakeKeys) ListSigningKeys(ctx context.Context) ([]storage.SigningKey, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lists++
	if f.listErr != nil {
		return nil, f.listErr
	}
	if f.hideNext > 0 {
		f.hideNext--
		return nil, nil
	}
	out := slices.Clone(f.rows)
	slices.SortStableFunc(out, func(a, b storage.SigningKey) int { return b.CreatedAt.Compare(a.CreatedAt) })
	return out, nil
}

func (f *fakeKeys) RotateSigningKey(ctx context.Context, next storage.SigningKey, removeAfter time.Time) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.rotateErr != nil {
		return f.rotateErr
	}
	for i := range f.rows {
		if f.rows[i].ID == next.ID {
			return storage.ErrAlreadyExists
		}
	}
	for i := range f.rows {
		if f.rows[i].RetiredAt.IsZero() {
			f.rows[i].RetiredAt = next.CreatedAt
			f.rows[i].RemoveAfter = removeAfter
		}
	}
	f.rows = append(f.rows, next)
	return nil
}

func (f *fakeKeys) ResealSigningKeys(ctx context.Context, reseal func(storage.SigningKey) ([]byte, error)) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	next := slices.Clone(f.rows)
	n := 0
	for i := range next {
		if !next[i].WithdrawnAt.IsZero() {
			continue
		}
		sealed, err := reseal(next[i])
		if err != nil {
			return 0, err
		}
		next[i].PrivateKey = sealed
		n++
	}
	f.rows = next
	return n, nil
}

func (f *fakeKeys) WithdrawSigningKey(ctx context.Context, id string, at time.Time) (storage.SigningKey, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := range f.rows {
		r := &f.rows[i]
		switch {
		case r.ID != id:
			continue
		case !r.WithdrawnAt.IsZero():
			return *r, storage.ErrWithdrawn
		case r.RetiredAt.IsZero():
			return storage.SigningKey{}, storage.ErrConflict
		}
		r.WithdrawnAt, r.PrivateKey = at, nil
		return *r, nil
	}
	return storage.SigningKey{}, storage.ErrNotFound
}

func (f *fakeKeys) listCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.lists
}

func (f *fakeKeys) setListErr(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.listErr = err
}

func (f *fakeKeys) row(kid string) storage.SigningKey {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, r := range f.rows {
		if r.ID == kid {
			return r
		}
	}
	return storage.SigningKey{}
}

var _ storage.Keys = (*fakeKeys)(nil)

// clock is a settable clock, shared by keyrings of one test.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock {
	return &clock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

var testEncKey = []byte("0123456789abcdef0123456789abcdef")

type keyringFixture struct {
	k     *Keyring
	store *fakeKeys
	clock *clock
}

func newTestKeyring(t testing.TB, alg string) keyringFixture {
	t.Helper()
	store, clk := &fakeKeys{}, newClock()
	k, err := NewKeyring(t.Context(), KeyringOptions{
		Keys:          store,
		EncryptionKey: testEncKey,
		Algorithm:     alg,
		Now:           clk.Now,
		RetireFor:     time.Hour,
	})
	if err != nil {
		t.Fatalf("NewKeyring(%s) error = %v", alg, err)
	}
	return keyringFixture{k: k, store: store, clock: clk}
}

func testClaims(now time.Time) AccessClaims {
	return AccessClaims{
		Issuer:    "https://as.example.com",
		Subject:   "user-1",
		Audience:  "https://mcp.example.com/mcp",
		ClientID:  "client-1",
		Scope:     "tools:read tools:write",
		JTI:       "jti-1",
		GrantID:   "grant-1",
		IssuedAt:  now,
		NotBefore: now,
		ExpiresAt: now.Add(5 * time.Minute),
		AuthTime:  now.Add(-time.Minute),
	}
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// signJWS signs payload with key under alg with exactly the given extra
// protected headers (kid, typ, ...), bypassing the keyring, to build
// tokens the keyring itself would never make.
func signJWS(t testing.TB, alg jose.SignatureAlgorithm, key any, headers map[jose.HeaderKey]any, payload []byte) string {
	t.Helper()
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: key}, &jose.SignerOptions{ExtraHeaders: headers})
	if err != nil {
		t.Fatalf("NewSigner(%s) error = %v", alg, err)
	}
	jws, err := signer.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	s, err := jws.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// unsignedJWS builds a compact JWS with the given header and, for "none",
// an empty signature.
func unsignedJWS(t testing.TB, header map[string]any, payload []byte) string {
	t.Helper()
	return b64(mustJSON(t, header)) + "." + b64(payload) + "."
}

// hmacJWS builds an HS256 JWS keyed with key: the algorithm-confusion
// attack, where key is something public such as the server's public key.
func hmacJWS(t testing.TB, header map[string]any, payload, key []byte) string {
	t.Helper()
	input := b64(mustJSON(t, header)) + "." + b64(payload)
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(input))
	return input + "." + b64(mac.Sum(nil))
}

var errBoom = errors.New("boom")
