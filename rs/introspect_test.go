package rs

import (
	"encoding/json"
	"errors"
	"net/http"
	"sync/atomic"
	"testing"
	"time"
)

func TestIntrospectionVerifier(t *testing.T) {
	a := newTestAS(t)
	var calls atomic.Int64
	answers := map[string]map[string]any{
		"good": {"active": true, "sub": "user-1", "client_id": "client-1", "scope": "notes:read notes:write",
			"aud": testResource, "iss": "", "exp": t0.Add(time.Minute).Unix(), "iat": t0.Unix(), "jti": "j"},
		"inactive":      {"active": false},
		"other-aud":     {"active": true, "sub": "user-1", "aud": "https://other.example.com/mcp", "exp": t0.Add(time.Minute).Unix()},
		"no-aud":        {"active": true, "sub": "user-1", "exp": t0.Add(time.Minute).Unix()},
		"other-iss":     {"active": true, "sub": "user-1", "aud": testResource, "iss": "https://evil.example.com"},
		"expired":       {"active": true, "sub": "user-1", "aud": []string{testResource}, "exp": t0.Add(-time.Second).Unix()},
		"short-expiry":  {"active": true, "sub": "user-1", "aud": testResource, "exp": t0.Add(10 * time.Second).Unix()},
		"no-sub":        {"active": true, "aud": testResource},
		"server-broken": nil,
		// RFC 9449 §6.2: a bound token's introspection carries cnf.jkt.
		"bound": {"active": true, "sub": "user-1", "aud": testResource, "token_type": "DPoP", "cnf": map[string]any{"jkt": "thumb"}},
	}
	answers["good"]["iss"] = a.issuer
	a.introspect = func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		id, secret, ok := r.BasicAuth()
		if !ok || id != "rs%2Fdemo" || secret != "s%3Acret" {
			http.Error(w, `{"error":"invalid_client"}`, http.StatusUnauthorized)
			return
		}
		if r.FormValue("token_type_hint") != "access_token" {
			t.Errorf("token_type_hint = %q", r.FormValue("token_type_hint"))
		}
		ans, ok := answers[r.FormValue("token")]
		if !ok || ans == nil {
			http.Error(w, "boom", http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(ans)
	}
	c := newClock()
	v, err := NewIntrospectionVerifier(IntrospectionOptions{
		Issuer: a.issuer, Resource: testResource, ClientID: "rs/demo", ClientSecret: "s:cret",
		HTTPClient: a.srv.Client(), Now: c.Now,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	tests := []struct {
		token string
		want  error
	}{
		{"good", nil},
		{"inactive", ErrInactive},
		{"other-aud", ErrAudience},
		{"no-aud", ErrMissingClaim},
		{"other-iss", ErrIssuer},
		{"expired", ErrExpired},
		{"no-sub", ErrMissingClaim},
		{"server-broken", ErrUnavailable},
	}
	for _, tt := range tests {
		info, err := v.Verify(ctx, tt.token)
		if tt.want == nil {
			if err != nil || info.Subject != "user-1" || !info.HasScope("notes:write") || info.ClientID != "client-1" {
				t.Errorf("Verify(%q) = %+v, %v, want user-1 with notes:write", tt.token, info, err)
			}
			continue
		}
		if !errors.Is(err, tt.want) {
			t.Errorf("Verify(%q) = %v, want %v", tt.token, err, tt.want)
		}
	}
	if info, err := v.Verify(ctx, "bound"); err != nil || info.JKT != "thumb" {
		t.Errorf("Verify(bound) = %+v, %v; want JKT thumb (RFC 9449 §6.2)", info, err)
	}
	if info, _ := v.Verify(ctx, "good"); info == nil || info.JKT != "" {
		t.Errorf("Verify(good) = %+v, want no JKT", info)
	}
	// Cached: asking again costs nothing, except for the server error.
	before := calls.Load()
	for _, tt := range tests {
		v.Verify(ctx, tt.token)
	}
	if got, want := calls.Load()-before, int64(1); got != want {
		t.Errorf("introspection calls on the second round = %d, want %d (only the server error is retried)", got, want)
	}
	// A cached answer does not outlive the token.
	if _, err := v.Verify(ctx, "short-expiry"); err != nil {
		t.Fatalf("Verify(short-expiry) = %v", err)
	}
	c.Advance(10 * time.Second)
	if _, err := v.Verify(ctx, "short-expiry"); !errors.Is(err, ErrExpired) {
		t.Errorf("Verify(short-expiry) after exp = %v, want %v", err, ErrExpired)
	}
	// After the TTL the endpoint is asked again.
	c.Advance(DefaultIntrospectionCacheTTL)
	before = calls.Load()
	v.Verify(ctx, "good")
	if calls.Load() == before {
		t.Error("Verify(good) after the cache TTL did not introspect again")
	}
}

func TestIntrospectionCacheBounded(t *testing.T) {
	a := newTestAS(t)
	a.introspect = func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"active":false}`))
	}
	v, err := NewIntrospectionVerifier(IntrospectionOptions{
		Issuer: a.issuer, Resource: testResource, ClientID: "c", ClientSecret: "s",
		HTTPClient: a.srv.Client(), Now: newClock().Now, CacheSize: 50,
	})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 500 {
		v.Verify(t.Context(), "tok-"+string(rune('a'+i%26))+string(rune('a'+i/26)))
	}
	if n := len(v.cache); n > 50 {
		t.Errorf("cache holds %d entries, want at most 50", n)
	}
}
