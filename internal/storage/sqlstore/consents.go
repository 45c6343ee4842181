package sqlstore

import (
	"context"
	"fmt"

	"github.com/gatehouse-mcp/gatehouse/internal/storage"
)

var consentCols = []string{"user_id", "client_id", "resource", "scopes", "created_at", "updated_at", "user_epoch"}

var (
	consentSelect = "SELECT " + cols(consentCols) + " FROM consents"
	// consentUpsert replaces the whole consent, as PutConsent promises.
	consentUpsert = insertSQL("consents", consentCols) +
		" ON CONFLICT (user_id, client_id, resource) DO UPDATE SET " + excludedSQL(consentCols[3:])
)

func scanConsent(r rowScanner) (storage.Consent, error) {
	var (
		c                storage.Consent
		scopes           string
		created, updated int64
	)
	err := r.Scan(&c.UserID, &c.ClientID, &c.Resource, &scopes, &created, &updated, &c.UserEpoch)
	if err != nil {
		return storage.Consent{}, err
	}
	c.Scopes = decodeList(scopes, &err)
	c.CreatedAt = fromMicros(created)
	c.UpdatedAt = fromMicros(updated)
	return c, err
}

// PutConsent creates or replaces the consent for (UserID, ClientID,
// Resource); storage.ErrNotFound if the user or client does not exist.
func (s *Store) PutConsent(ctx context.Context, c storage.Consent) error {
	_, err := s.exec(ctx, s.w, consentUpsert, c.UserID, c.ClientID, c.Resource,
		encodeJSON(c.Scopes), micros(c.CreatedAt), micros(c.UpdatedAt), c.UserEpoch)
	if err != nil {
		return fmt.Errorf("put consent: %w", err)
	}
	return nil
}

// GetConsent returns the consent, or storage.ErrNotFound.
func (s *Store) GetConsent(ctx context.Context, userID, clientID, resource string) (storage.Consent, error) {
	c, err := queryRow(ctx, s, s.r, scanConsent,
		consentSelect+" WHERE user_id = ? AND client_id = ? AND resource = ?", userID, clientID, resource)
	if err != nil {
		return storage.Consent{}, fmt.Errorf("get consent: %w", err)
	}
	return c, nil
}

// ListConsents returns the user's consents ordered by client and resource.
func (s *Store) ListConsents(ctx context.Context, userID string) ([]storage.Consent, error) {
	cs, err := queryAll(ctx, s, s.r, scanConsent,
		consentSelect+" WHERE user_id = ? ORDER BY client_id, resource", userID)
	if err != nil {
		return nil, fmt.Errorf("list consents: %w", err)
	}
	return cs, nil
}

// DeleteConsent removes the consent; storage.ErrNotFound if there is none.
func (s *Store) DeleteConsent(ctx context.Context, userID, clientID, resource string) error {
	err := errNotFoundIfZero(s.exec(ctx, s.w,
		"DELETE FROM consents WHERE user_id = ? AND client_id = ? AND resource = ?", userID, clientID, resource))
	if err != nil {
		return fmt.Errorf("delete consent: %w", err)
	}
	return nil
}
