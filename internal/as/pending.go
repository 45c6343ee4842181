package as

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"time"

	"github.com/gatehouse-mcp/gatehouse/internal/oauth"
	"github.com/gatehouse-mcp/gatehouse/internal/storage"
	"github.com/gatehouse-mcp/gatehouse/internal/token"
)

// pending is an authorization request that passed validation and waits
// for the user to sign in and consent. It is not stored: it travels
// sealed (encrypted and authenticated with a key derived from
// Options.Secret, so any replica can open it) in the hidden "request"
// field of the login and consent forms. Anyone can send /authorize
// requests, and a request the server had to keep would let them fill its
// database (issue 11 F4); the only row a pending request ever causes is
// the mark of its completion, written once a signed-in user ends it.
type pending struct {
	ID                  string   `json:"id"`
	ClientID            string   `json:"client_id"`
	RedirectURI         string   `json:"redirect_uri"`
	State               string   `json:"state,omitempty"`
	Scopes              []string `json:"scopes,omitempty"`
	Resource            string   `json:"resource"`
	CodeChallenge       string   `json:"code_challenge"`
	CodeChallengeMethod string   `json:"code_challenge_method"`
	Nonce               string   `json:"nonce,omitempty"`
	Prompt              string   `json:"prompt,omitempty"`
	// MaxAge is the client's max_age (decimal seconds), passed on to an
	// upstream provider; empty when none was sent.
	MaxAge string `json:"max_age,omitempty"`
	// Dynamic marks a self-registered client (DCR or a metadata
	// document): its errors go to its redirect URI only once the user
	// has signed in.
	Dynamic bool `json:"dynamic,omitempty"`
	// Defaulted marks a request that named no scope and got the
	// resource's default scopes: those the user may not have are just
	// left out (policyGate).
	Defaulted bool `json:"defaulted,omitempty"`
	// Session is the hash of the session the consent page was shown to,
	// empty in the login form: only that session may answer the consent
	// form, so the login form's request posted to /consent does not skip
	// the sign-in prompt=login asked for, and another browser cannot
	// answer a page it was not shown.
	Session string `json:"session,omitempty"`
	// Account marks the account page's sign-in (/account/login), which
	// has no authorization request: an upstream sign-in carrying it
	// lands on /account. The authorization flow's forms refuse it
	// (loadAuthorization).
	Account   bool      `json:"account,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	ExpiresAt time.Time `json:"expires_at"`
}

// Bounds of what an anonymous caller can put into a pending request.
const (
	// maxStateBytes caps state and nonce: generous for real clients
	// (a random value, or a small encoded object) and small enough that
	// a sealed request fits easily in a form.
	maxStateBytes = 1024
	// maxSealedBytes bounds the sealed form field the server will try
	// to open.
	maxSealedBytes = 16 << 10
)

// pendingAAD binds sealed values to their purpose: a value sealed for
// anything else never opens as a pending request.
var pendingAAD = []byte("gatehouse pending authorization request v1")

// errPendingInvalid means a sealed request could not be used: tampered
// with, sealed under another secret, expired, or already completed.
var errPendingInvalid = errors.New("pending request invalid")

// sealPending returns p as the value of the forms' "request" field.
func (s *Server) sealPending(p pending) (string, error) {
	b, err := json.Marshal(p)
	if err != nil {
		return "", err
	}
	sealed, err := token.Seal(s.pendingKey, b, pendingAAD, s.rand)
	if err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(sealed), nil
}

// openPending reads a "request" field: the request it seals, if it opens,
// has not expired and was not completed before. Anything else is
// errPendingInvalid; storage failures are returned as they are.
func (s *Server) openPending(ctx context.Context, v string) (pending, error) {
	if v == "" || len(v) > maxSealedBytes {
		return pending{}, errPendingInvalid
	}
	sealed, err := base64.RawURLEncoding.DecodeString(v)
	if err != nil {
		return pending{}, errPendingInvalid
	}
	b, err := token.Open(s.pendingKey, sealed, pendingAAD)
	if err != nil {
		return pending{}, errPendingInvalid
	}
	var p pending
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil || p.ID == "" {
		return pending{}, errPendingInvalid
	}
	if !s.now().Before(p.ExpiresAt) {
		return pending{}, errPendingInvalid
	}
	done, err := s.opts.Store.Seen(ctx, completedKey(p.ID), s.now())
	if err != nil {
		return pending{}, err
	}
	if done {
		return pending{}, errPendingInvalid
	}
	return p, nil
}

// complete marks p completed, once: of two concurrent completions (a
// consent form sent twice) exactly one may issue a code or an error.
func (s *Server) complete(ctx context.Context, p pending) error {
	// Kept an hour past the request's expiry: a replica whose clock is
	// behind must not find the mark gone while the request still opens.
	err := s.opts.Store.UseOnce(ctx, completedKey(p.ID), p.ExpiresAt.Add(time.Hour))
	if errors.Is(err, storage.ErrAlreadyExists) {
		return errPendingInvalid
	}
	return err
}

// completedKey is the replay-store key marking a pending request done.
func completedKey(id string) string { return "authreq:" + id }

// checkStateLengths refuses a state or nonce longer than maxStateBytes:
// they are echoed to the client and sealed into the forms, and an
// anonymous caller chooses them.
func checkStateLengths(state, nonce string) *oauth.Error {
	for _, p := range []struct{ name, v string }{{"state", state}, {"nonce", nonce}} {
		if len(p.v) > maxStateBytes {
			return oauth.New(oauth.InvalidRequest, "%s is %d bytes long; at most %d are accepted", p.name, len(p.v), maxStateBytes)
		}
	}
	return nil
}
