package rs

import (
	"errors"
	"net/http"
	"testing"
	"time"
)

// TestJWKSWithdrawnKeyMaxAge: a key the authorization server stops
// publishing (withdrawn after a leak) stops verifying once the JWKS
// response's Cache-Control max-age has passed and the refetch it starts
// has completed — 60 s with Gatehouse, not MaxKeyAge (10 min by default) —
// including for a token that was remembered as verified.
func TestJWKSWithdrawnKeyMaxAge(t *testing.T) {
	a := newTestAS(t)
	a.cacheControl = "public, max-age=60" // what Gatehouse's /jwks sends
	c := newClock()
	v := newVerifier(t, a, c, nil)
	ctx := t.Context()
	tok := a.token(func(m map[string]any) { m["exp"] = t0.Add(time.Hour).Unix() })
	if _, err := v.Verify(ctx, tok); err != nil {
		t.Fatalf("Verify = %v", err)
	}
	a.mu.Lock()
	a.keys = []*signingKey{newECKey(t, "key-2")} // key-1 withdrawn
	a.mu.Unlock()

	c.Advance(59 * time.Second)
	if _, err := v.Verify(ctx, tok); err != nil {
		t.Fatalf("Verify 59 s after the fetch = %v, want nil (JWKS still fresh)", err)
	}
	if n := a.jwksFetches.Load(); n != 1 {
		t.Errorf("JWKS fetches within max-age = %d, want 1", n)
	}
	c.Advance(time.Second)
	v.Verify(ctx, tok) // stale: starts the refetch
	deadline := time.Now().Add(5 * time.Second)
	for v.keys.keys.Load().lookup("key-1") != nil && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if _, err := v.Verify(ctx, tok); !errors.Is(err, ErrUnknownKey) {
		t.Errorf("Verify(token of a withdrawn key) after max-age = %v, want %v", err, ErrUnknownKey)
	}
}

// TestJWKSMaxAgeBounds: the Cache-Control max-age only shortens MaxKeyAge,
// and never below MinRefreshInterval.
func TestJWKSMaxAgeBounds(t *testing.T) {
	for _, tt := range []struct {
		cacheControl string
		want         time.Duration
	}{
		{"", 5 * time.Minute},
		{"public, max-age=60", time.Minute},
		{"max-age=3600", 5 * time.Minute},
		{"max-age=0", 20 * time.Second},
		{"no-store", 20 * time.Second},
		{"No-Cache", 20 * time.Second},
		{"max-age=soon", 20 * time.Second},
		{`max-age="30"`, 30 * time.Second},
		{"max-age=99999999999999999", 5 * time.Minute},
		{"private", 5 * time.Minute},
	} {
		t.Run(tt.cacheControl, func(t *testing.T) {
			a := newTestAS(t)
			a.cacheControl = tt.cacheControl
			v := newVerifier(t, a, newClock(), func(o *JWTOptions) {
				o.MaxKeyAge, o.MinRefreshInterval = 5*time.Minute, 20*time.Second
			})
			if _, err := v.Verify(t.Context(), a.token(nil)); err != nil {
				t.Fatal(err)
			}
			if got := v.keys.keys.Load().maxAge; got != tt.want {
				t.Errorf("Cache-Control %q: keys kept %v, want %v", tt.cacheControl, got, tt.want)
			}
		})
	}
}

func TestCacheMaxAge(t *testing.T) {
	for _, tt := range []struct {
		values []string
		want   time.Duration
		ok     bool
	}{
		{nil, 0, false},
		{[]string{"public, max-age=60"}, time.Minute, true},
		{[]string{"public", "max-age=30"}, 30 * time.Second, true},
		{[]string{"max-age=-1"}, 0, true},
		{[]string{"s-maxage=60"}, 0, false},
	} {
		h := http.Header{"Cache-Control": tt.values}
		if got, ok := cacheMaxAge(h); got != tt.want || ok != tt.ok {
			t.Errorf("cacheMaxAge(%q) = %v, %v; want %v, %v", tt.values, got, ok, tt.want, tt.ok)
		}
	}
}
