package as

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	jose "github.com/go-jose/go-jose/v4"
)

// jwksRefetchInterval bounds how often an upstream provider's JWKS is
// fetched again because an ID token's key is not in the keys at hand.
// go-oidc's RemoteKeySet fetches again for every such token (one fetch at
// a time); an ID token signed with a key the provider does not publish
// (a misconfigured provider, or a forged token) would then cost a fetch
// per sign-in attempt.
const jwksRefetchInterval = 10 * time.Second

// upstreamKeySet is the oidc.KeySet of a provider's ID-token verifier:
// the provider's JWKS, fetched on first use and again when an ID token
// is signed with none of its keys (a key rotation), but at most once per
// jwksRefetchInterval; a token arriving sooner is refused with the
// reason. Signatures are verified by go-oidc (oidc.StaticKeySet) with
// keys go-jose parsed: no JOSE of our own.
type upstreamKeySet struct {
	jwksURL string
	client  *http.Client
	now     func() time.Time

	mu      sync.Mutex // held across a fetch: one fetch at a time
	keys    *oidc.StaticKeySet
	fetched time.Time // of the last fetch, failed or not; zero: never
}

// VerifySignature verifies jwt with the keys at hand, fetching them again
// when none verifies it and the last fetch is jwksRefetchInterval old.
func (k *upstreamKeySet) VerifySignature(ctx context.Context, jwt string) ([]byte, error) {
	k.mu.Lock()
	keys := k.keys
	k.mu.Unlock()
	if keys != nil {
		if payload, err := keys.VerifySignature(ctx, jwt); err == nil {
			return payload, nil
		}
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.keys != keys {
		// Another sign-in fetched meanwhile: its keys first.
		if payload, err := k.keys.VerifySignature(ctx, jwt); err == nil {
			return payload, nil
		}
	}
	now := k.now()
	if !k.fetched.IsZero() && now.Sub(k.fetched) < jwksRefetchInterval {
		return nil, fmt.Errorf("no key of the provider's JWKS verifies the signature, and the JWKS was fetched %s ago (at most once per %s)",
			now.Sub(k.fetched).Round(time.Second), jwksRefetchInterval)
	}
	k.fetched = now
	fresh, err := k.fetch(ctx)
	if err != nil {
		return nil, fmt.Errorf("fetching the provider's JWKS: %w", err)
	}
	k.keys = fresh
	payload, err := fresh.VerifySignature(ctx, jwt)
	if err != nil {
		return nil, fmt.Errorf("no key of the provider's JWKS verifies the signature (fetched just now): %w", err)
	}
	return payload, nil
}

// maxJWKSBytes bounds a provider's JWKS document.
const maxJWKSBytes = 1 << 20

// fetch reads the provider's JWKS, keeping the signature keys of types
// oidc.StaticKeySet verifies with (others, such as encryption keys, are
// left out rather than failing the set).
func (k *upstreamKeySet) fetch(ctx context.Context) (*oidc.StaticKeySet, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, k.jwksURL, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := k.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s answered %s", k.jwksURL, resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKSBytes+1))
	if err != nil {
		return nil, err
	}
	if len(body) > maxJWKSBytes {
		return nil, fmt.Errorf("%s is larger than %d bytes", k.jwksURL, maxJWKSBytes)
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(body, &set); err != nil {
		return nil, fmt.Errorf("%s is not a JWK Set: %w", k.jwksURL, err)
	}
	out := &oidc.StaticKeySet{}
	for _, key := range set.Keys {
		if key.Use != "" && key.Use != "sig" {
			continue
		}
		switch key.Key.(type) {
		case *rsa.PublicKey, *ecdsa.PublicKey, ed25519.PublicKey:
			out.PublicKeys = append(out.PublicKeys, key.Key)
		}
	}
	return out, nil
}
