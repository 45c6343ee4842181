package as

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"

	"github.com/gatehouse-mcp/gatehouse/internal/clientreg"
	"github.com/gatehouse-mcp/gatehouse/internal/oauth"
	"github.com/gatehouse-mcp/gatehouse/internal/storage"
	"github.com/gatehouse-mcp/gatehouse/internal/token"
)

// handleClientConfig is a client configuration endpoint (RFC 7592 §2):
// GET reads, PUT replaces and DELETE removes the registration, each
// authenticated by the registration access token as a Bearer token.
// Changes are conditional on the client being as it was read, token
// included, in the transaction that makes them: a client shared by
// identical registrations meanwhile (which withdraws the token), changed
// by a concurrent update, or deleted, is never changed or brought back.
func (s *Server) handleClientConfig(w http.ResponseWriter, r *http.Request) error {
	defer s.clients.clear() // RFC 7592 updates and deletes write clients
	switch r.Method {
	case http.MethodGet, http.MethodPut, http.MethodDelete:
	default:
		return oauth.New(oauth.InvalidRequest, "the client configuration endpoint accepts GET, PUT and DELETE").WithStatus(http.StatusMethodNotAllowed).WithHeader("Allow", "GET, PUT, DELETE")
	}
	ctx := r.Context()
	id := strings.TrimPrefix(r.URL.Path, s.base+pathRegister+"/")
	rat := bearerToken(r)
	if rat == "" {
		return invalidToken("the registration access token is missing: send it as Authorization: Bearer")
	}
	c, err := s.opts.Store.GetClient(ctx, id)
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		return oauth.Internal(err)
	}
	// Unknown client, a client without a registration access token (one
	// that identical registrations share belongs to nobody) and a wrong
	// token look the same (RFC 7592 §2: 401 for all).
	if err != nil || !holdsToken(c, rat) {
		return errNoRegistrationToken()
	}
	noteClient(ctx, c.ID)
	switch r.Method {
	case http.MethodGet:
		// The presented token is echoed: RFC 7592 §3 requires it in the
		// response, and only its hash is stored.
		writeRegistration(w, http.StatusOK, s.clientInfo(c, rat, ""))
		return nil
	case http.MethodDelete:
		return s.deleteRegistration(w, r, c, rat)
	}
	return s.updateRegistration(w, r, c, rat)
}

// deleteRegistration handles an RFC 7592 §2.3 delete of c (as read when
// rat was checked): the client goes, with everything issued to it, only if
// rat still manages it.
func (s *Server) deleteRegistration(w http.ResponseWriter, r *http.Request, c storage.Client, rat string) error {
	ctx := r.Context()
	err := s.opts.Store.DeleteClientIf(ctx, c.ID, func(cur storage.Client) error {
		if !holdsToken(cur, rat) {
			return errNoRegistrationToken()
		}
		return nil
	})
	if errors.Is(err, storage.ErrNotFound) {
		return errNoRegistrationToken()
	}
	if err != nil {
		return registrationStorageError(err)
	}
	s.audit(ctx, r, storage.AuditEvent{Type: "client.deleted", ClientID: c.ID, Outcome: "success", Detail: "RFC 7592 delete"})
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// holdsToken reports whether rat is c's registration access token: c is
// a self-registered client that has one, and it matches.
func holdsToken(c storage.Client, rat string) bool {
	return c.Origin == storage.OriginDCR && c.RegistrationTokenHash != "" && token.Equal(token.Hash(rat), c.RegistrationTokenHash)
}

// errNoRegistrationToken is the 401 for a registration access token that
// does not manage the client.
func errNoRegistrationToken() *oauth.Error {
	return invalidToken("the registration access token is not valid for this client (a public client that identical registrations share has none)")
}

// errClientChanged is the refusal (409) of an update decided on a stale
// read.
func errClientChanged() *oauth.Error {
	return oauth.New(oauth.InvalidRequest, "the client was changed by another request since this one read it; read it again (GET) and retry").WithStatus(http.StatusConflict)
}

// registrationStorageError passes an *oauth.Error from an update or delete
// closure through, and makes anything else a server error.
func registrationStorageError(err error) error {
	var oe *oauth.Error
	if errors.As(err, &oe) {
		return oe
	}
	return oauth.Internal(err)
}

// updateRegistration handles an RFC 7592 §2.2 update: the body replaces
// the metadata (omitted fields are dropped, defaults reapplied). The
// secret is kept while the client stays confidential; a client becoming
// confidential gets one, returned once. A change to redirect URIs, grant
// types, authentication method, keys or scope also deletes everything
// issued to the client — tokens, codes and consents (storage.ResetClient)
// — in the same transaction: a remembered consent must not carry over to a
// new redirect URI (issue 11 F2).
func (s *Server) updateRegistration(w http.ResponseWriter, r *http.Request, c storage.Client, rat string) error {
	ctx := r.Context()
	body, err := readJSONBody(w, r)
	if err != nil {
		return err
	}
	md, err := clientreg.Parse(body, clientreg.Options{Kind: clientreg.Update, ClientID: c.ID, Redirect: s.opts.Registration.Redirect})
	if err != nil {
		return registrationError(err)
	}
	if md.ClientSecret != "" && (c.SecretHash == "" || !token.Equal(token.Hash(md.ClientSecret), c.SecretHash)) {
		return oauth.New(oauth.InvalidClientMetadata, "client_secret does not match the client's current secret; a client cannot choose its secret (RFC 7592 §2.2)")
	}
	if err := s.checkGrantPolicy(md); err != nil {
		return err
	}
	if err := s.applyScopePolicy(ctx, md, true); err != nil {
		return err
	}
	next := clientFromMetadata(c.ID, md, storage.OriginDCR)
	next.RegistrationTokenHash = c.RegistrationTokenHash
	next.CreatedAt, next.UpdatedAt = c.CreatedAt, s.now()
	var secret string
	if md.Confidential() {
		if c.SecretHash != "" {
			next.SecretHash, next.SecretExpiresAt = c.SecretHash, c.SecretExpiresAt
		} else {
			if secret, err = s.newSecret(); err != nil {
				return oauth.Internal(err)
			}
			next.SecretHash = token.Hash(secret)
		}
	}
	update, detail := s.opts.Store.UpdateClient, "metadata updated"
	if securityChanged(c, next) {
		// A reset voids its machine tokens too (introspection).
		update = func(ctx context.Context, id string, fn func(storage.Client) (storage.Client, error)) (storage.Client, error) {
			return s.opts.Store.ResetClient(ctx, id, next.UpdatedAt, fn)
		}
		detail = "security-relevant change: tokens, codes and consents revoked"
	}
	next, err = update(ctx, c.ID, func(cur storage.Client) (storage.Client, error) {
		switch {
		case !holdsToken(cur, rat):
			return cur, errNoRegistrationToken()
		case cur.Metadata != c.Metadata || cur.SecretHash != c.SecretHash || !cur.UpdatedAt.Equal(c.UpdatedAt):
			return cur, errClientChanged()
		}
		next.LastUsedAt, next.TokenCount = cur.LastUsedAt, cur.TokenCount
		return next, nil
	})
	if errors.Is(err, storage.ErrNotFound) {
		return errNoRegistrationToken()
	}
	if err != nil {
		return registrationStorageError(err)
	}
	if err := s.auditIssued(ctx, r, storage.AuditEvent{Type: "client.updated", ClientID: c.ID, Outcome: "success", Detail: detail}); err != nil {
		return err
	}
	writeRegistration(w, http.StatusOK, s.clientInfo(next, rat, secret))
	return nil
}

// securityChanged reports whether b differs from a in anything that
// decides where codes go or who can redeem them. New keys at an unchanged
// jwks_uri are not such a change: publishing keys at a URL is how a
// client rotates them (RFC 7591 §2), and revoking every user's tokens at
// each rotation would punish the client for doing it right.
func securityChanged(a, b storage.Client) bool {
	return !slices.Equal(a.RedirectURIs, b.RedirectURIs) || !slices.Equal(a.GrantTypes, b.GrantTypes) ||
		a.TokenEndpointAuthMethod != b.TokenEndpointAuthMethod || a.JWKSURI != b.JWKSURI || (a.JWKSURI == "" && a.JWKS != b.JWKS) ||
		!slices.Equal(a.Scopes, b.Scopes) || (a.SecretHash == "") != (b.SecretHash == "")
}
