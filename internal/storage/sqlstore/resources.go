package sqlstore

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/gatehouse-mcp/gatehouse/internal/storage"
)

var resourceCols = []string{"url", "name", "scopes", "default_scopes", "accept_client_credentials", "created_at", "updated_at", "scope_policies"}

var (
	resourceSelect = "SELECT " + cols(resourceCols) + " FROM resources"
	// resourceUpsert replaces every column, CreatedAt included: PutResource
	// stores exactly what it is given.
	resourceUpsert = insertSQL("resources", resourceCols) +
		" ON CONFLICT (url) DO UPDATE SET " + excludedSQL(resourceCols[1:])
)

func scanResource(r rowScanner) (storage.Resource, error) {
	var (
		res                        storage.Resource
		scopes, defaults, policies string
		acceptCC                   int64
		created, updated           int64
	)
	err := r.Scan(&res.URL, &res.Name, &scopes, &defaults, &acceptCC, &created, &updated, &policies)
	if err != nil {
		return storage.Resource{}, err
	}
	if scopes != "" && scopes != "null" {
		if err := json.Unmarshal([]byte(scopes), &res.Scopes); err != nil {
			return storage.Resource{}, fmt.Errorf("decode scopes of %q: %w", res.URL, err)
		}
	}
	if policies != "" && policies != "null" {
		if err := json.Unmarshal([]byte(policies), &res.ScopePolicies); err != nil {
			return storage.Resource{}, fmt.Errorf("decode scope policies of %q: %w", res.URL, err)
		}
	}
	res.DefaultScopes = decodeList(defaults, &err)
	res.AcceptClientCredentials = acceptCC != 0
	res.CreatedAt = fromMicros(created)
	res.UpdatedAt = fromMicros(updated)
	return res, err
}

// PutResource creates or replaces the resource with r.URL.
func (s *Store) PutResource(ctx context.Context, r storage.Resource) error {
	_, err := s.exec(ctx, s.w, resourceUpsert, r.URL, r.Name, encodeJSON(r.Scopes),
		encodeJSON(r.DefaultScopes), boolInt(r.AcceptClientCredentials), micros(r.CreatedAt), micros(r.UpdatedAt),
		encodePolicies(r.ScopePolicies))
	if err != nil {
		return fmt.Errorf("put resource: %w", err)
	}
	return nil
}

// GetResource returns the resource with url, or storage.ErrNotFound.
func (s *Store) GetResource(ctx context.Context, url string) (storage.Resource, error) {
	r, err := queryRow(ctx, s, s.r, scanResource, resourceSelect+" WHERE url = ?", url)
	if err != nil {
		return storage.Resource{}, fmt.Errorf("get resource: %w", err)
	}
	return r, nil
}

// ListResources returns every resource ordered by URL.
func (s *Store) ListResources(ctx context.Context) ([]storage.Resource, error) {
	rs, err := queryAll(ctx, s, s.r, scanResource, resourceSelect+" ORDER BY url")
	if err != nil {
		return nil, fmt.Errorf("list resources: %w", err)
	}
	return rs, nil
}

// DeleteResource removes the resource; storage.ErrNotFound if there is
// none. Grants and consents naming it are kept: they expire on their own,
// and the authorization server refuses unknown resources anyway.
func (s *Store) DeleteResource(ctx context.Context, url string) error {
	err := errNotFoundIfZero(s.exec(ctx, s.w, "DELETE FROM resources WHERE url = ?", url))
	if err != nil {
		return fmt.Errorf("delete resource: %w", err)
	}
	return nil
}

// boolInt stores a boolean as 0 or 1: one column type (INTEGER, BIGINT)
// that both dialects read back the same way.
func boolInt(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

// encodePolicies stores no policy as null, so a resource without one reads
// back with a nil map whichever way it was written.
func encodePolicies(p map[string]storage.ScopePolicy) string {
	if len(p) == 0 {
		return "null"
	}
	return encodeJSON(p)
}
