package as

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"net/http"
	"time"

	"github.com/gatehouse-mcp/gatehouse/internal/dpop"
	"github.com/gatehouse-mcp/gatehouse/internal/oauth"
	"github.com/gatehouse-mcp/gatehouse/internal/storage"
)

// DPoP configures DPoP (RFC 9449) at the token endpoint. Proofs are always
// accepted (dpop_signing_alg_values_supported lists their algorithms): a
// token request with a valid proof gets a token bound to the proof's key
// (cnf.jkt, token_type DPoP), and so does the refresh token issued with
// it. A client registered with dpop_bound_access_tokens gets nothing
// without one.
type DPoP struct {
	// RequireNonce makes the token endpoint require a nonce it issued in
	// every proof (RFC 9449 §8): a proof without one, or with one that
	// has expired, is answered 400 use_dpop_nonce with a fresh nonce in
	// the DPoP-Nonce header, and the client retries with it. Nonces bound
	// how long a proof made in advance (by malware that has the key for a
	// moment) stays usable: about nonceWindow, instead of whatever iat the
	// proof claims. Default false: the iat window (a minute) and the jti
	// replay check bound it already, and every client pays one more round
	// trip per token request with nonces.
	RequireNonce bool
}

// nonceWindow is how long a nonce is issued; one is accepted in its window
// and the next, so for between one and two windows.
const nonceWindow = 5 * time.Minute

// dpopNonce returns the nonce of the window now falls in. Nonces are
// stateless (the window's number, MACed with a key derived from
// Options.Secret), so every replica issues and accepts the same ones
// without sharing a table.
func (s *Server) dpopNonce(now time.Time) string {
	return s.nonceFor(now.Unix() / int64(nonceWindow/time.Second))
}

func (s *Server) nonceFor(window int64) string {
	var b [8 + 16]byte
	binary.BigEndian.PutUint64(b[:8], uint64(window))
	m := hmac.New(sha256.New, s.nonceKey)
	m.Write(b[:8])
	copy(b[8:], m.Sum(nil))
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// validNonce reports whether n is the nonce of now's window or the one
// before.
func (s *Server) validNonce(n string, now time.Time) bool {
	w := now.Unix() / int64(nonceWindow/time.Second)
	return n != "" && (hmac.Equal([]byte(n), []byte(s.nonceFor(w))) || hmac.Equal([]byte(n), []byte(s.nonceFor(w-1))))
}

// dpopGrants are the grants that bind tokens to a proof's key. Token
// exchange does not yet (its tokens are bearer tokens whatever the
// request carries).
var dpopGrants = map[string]bool{"authorization_code": true, "refresh_token": true, gtClientCredentials: true}

// proofKey is the context key of the thumbprint of a token request's
// checked proof.
type proofKey struct{}

// proofJKT returns the JWK thumbprint of the request's DPoP proof, checked
// by checkDPoP, or "" if it had none.
func proofJKT(ctx context.Context) string {
	jkt, _ := ctx.Value(proofKey{}).(string)
	return jkt
}

// checkDPoP checks the DPoP proof of a token request from client c (RFC
// 9449 §5, §4.3), and returns the context the grant runs in: with the
// proof's key thumbprint when there is a proof. The jti is recorded in
// the database (Replay.UseOnce), so a proof is used once across every
// replica; it is recorded last, so a refused proof leaves nothing stored.
func (s *Server) checkDPoP(w http.ResponseWriter, r *http.Request, c storage.Client) (context.Context, error) {
	ctx := r.Context()
	proofs := r.Header.Values("DPoP")
	if len(proofs) == 0 {
		if c.DPoPBound {
			return nil, oauth.New(oauth.InvalidDPoPProof, "this client is registered with dpop_bound_access_tokens: its token requests must carry a DPoP proof (RFC 9449 section 5.2)")
		}
		return ctx, nil
	}
	now := s.now()
	withNonce := func(e *oauth.Error) *oauth.Error {
		if s.opts.DPoP.RequireNonce {
			e.WithHeader("DPoP-Nonce", s.dpopNonce(now))
		}
		return e
	}
	if len(proofs) > 1 {
		return nil, withNonce(oauth.New(oauth.InvalidDPoPProof, "the request has more than one DPoP header (RFC 9449 section 4.3 item 1)"))
	}
	req := dpop.Request{Method: r.Method, URL: s.endpoint(pathToken), Now: now}
	p, err := dpop.Check(proofs[0], req)
	if err != nil {
		var e *dpop.Error
		if errors.As(err, &e) {
			return nil, withNonce(oauth.New(oauth.InvalidDPoPProof, "%s", e.Description))
		}
		return nil, oauth.Internal(err)
	}
	if s.opts.DPoP.RequireNonce {
		if !s.validNonce(p.Nonce, now) {
			why := "this server requires a nonce in DPoP proofs: make a new proof with the nonce of the DPoP-Nonce header (RFC 9449 section 8)"
			if p.Nonce != "" {
				why = "the DPoP proof's nonce is not one this server issued, or has expired: make a new proof with the nonce of the DPoP-Nonce header (RFC 9449 section 8)"
			}
			return nil, withNonce(oauth.New(oauth.UseDPoPNonce, "%s", why))
		}
		// The current nonce with every answer, so a client never needs
		// the extra round trip once it has one (RFC 9449 §8.2).
		w.Header().Set("DPoP-Nonce", s.dpopNonce(now))
	}
	switch err := s.opts.Store.UseOnce(ctx, p.ReplayKey(), req.ReplayUntil(p)); {
	case errors.Is(err, storage.ErrAlreadyExists):
		return nil, withNonce(oauth.New(oauth.InvalidDPoPProof, "the DPoP proof was already used (its jti was seen): make a new proof for each request (RFC 9449 section 11.1)"))
	case err != nil:
		return nil, oauth.Internal(err)
	}
	return context.WithValue(ctx, proofKey{}, p.JKT), nil
}

// errBoundRefresh refuses a refresh of a token bound to a DPoP key without
// a proof by that key (RFC 9449 §5): it does not revoke anything, since
// whoever sent it cannot use the token, and the holder of the key can.
func errBoundRefresh(jkt string) error {
	if jkt == "" {
		return oauth.New(oauth.InvalidDPoPProof, "this refresh token is bound to a DPoP key: the request must carry a DPoP proof signed by it (RFC 9449 section 5)")
	}
	return oauth.New(oauth.InvalidDPoPProof, "this refresh token is bound to another DPoP key than the proof's (RFC 9449 section 5)")
}

// tokenType is the token_type of an access token bound to jkt (RFC 9449
// §5.1: DPoP) or not (Bearer).
func tokenType(jkt string) string {
	if jkt != "" {
		return "DPoP"
	}
	return "Bearer"
}
