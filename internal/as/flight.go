package as

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/gatehouse-mcp/gatehouse/internal/storage"
	"github.com/gatehouse-mcp/gatehouse/internal/token"
)

// A sign-in elsewhere (at an upstream provider, or a delegated login
// page) travels sealed in a short-lived cookie of the browser that
// started it, named after its state or challenge, and counts once: the
// answer that comes back is bound to this browser and cannot be replayed.

// setFlightCookie seals v (with aad) into the cookie named cookie, living
// ttl.
func (s *Server) setFlightCookie(w http.ResponseWriter, cookie string, aad []byte, v any, ttl time.Duration) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	sealed, err := token.Seal(s.pendingKey, b, aad, s.rand)
	if err != nil {
		return err
	}
	s.opts.Pages.SetCookie(w, cookie, base64.RawURLEncoding.EncodeToString(sealed), ttl)
	return nil
}

// openFlightCookie reads and clears this browser's cookie named cookie
// and opens it (sealed with aad) into v, unknown members refused. false
// when the browser has none or it does not open.
func (s *Server) openFlightCookie(w http.ResponseWriter, r *http.Request, cookie string, aad []byte, v any) bool {
	ck, err := r.Cookie(s.opts.Pages.CookieName(cookie))
	if err != nil || ck.Value == "" || len(ck.Value) > maxSealedBytes {
		return false
	}
	s.opts.Pages.ClearCookie(w, cookie)
	sealed, err := base64.RawURLEncoding.DecodeString(ck.Value)
	if err != nil {
		return false
	}
	b, err := token.Open(s.pendingKey, sealed, aad)
	if err != nil {
		return false
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	return dec.Decode(v) == nil
}

// useFlight marks the flight key (a state or challenge, hashed) used until
// its expiry plus an hour, in storage so that every replica refuses a
// second use. false when it was used before or cannot be marked.
func (s *Server) useFlight(ctx context.Context, kind, key string, expires time.Time) bool {
	err := s.opts.Store.UseOnce(ctx, kind+":"+token.Hash(key), expires.Add(time.Hour))
	if err != nil && !errors.Is(err, storage.ErrAlreadyExists) {
		s.log.ErrorContext(ctx, "mark sign-in used", "kind", kind, "cause", err)
	}
	return err == nil
}
