package rs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/gatehouse-mcp/gatehouse/internal/oauth"
)

// maxDocumentBytes bounds every JSON document fetched from the
// authorization server (metadata, JWKS, introspection responses).
const maxDocumentBytes = 1 << 20

// defaultHTTPTimeout bounds each request to the authorization server when
// the caller supplies no client.
const defaultHTTPTimeout = 10 * time.Second

// defaultClient is used when an option leaves HTTPClient nil.
var defaultClient = &http.Client{Timeout: defaultHTTPTimeout}

// metadataURLs returns the discovery URLs to try for issuer, in the order
// the MCP specification gives (2025-11-25 and later): RFC 8414 with path
// insertion, OpenID Connect with path insertion, then OpenID Connect with
// the suffix appended.
func metadataURLs(issuer string) ([]string, error) {
	u, err := url.Parse(issuer)
	if err != nil {
		return nil, fmt.Errorf("issuer %q: %w", issuer, err)
	}
	if u.Scheme != "https" && u.Scheme != "http" || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("issuer %q must be an http(s) URL without query or fragment (RFC 8414 §2)", issuer)
	}
	origin := u.Scheme + "://" + u.Host
	path := strings.TrimSuffix(u.EscapedPath(), "/")
	if path == "" {
		return []string{
			origin + "/.well-known/oauth-authorization-server",
			origin + "/.well-known/openid-configuration",
		}, nil
	}
	return []string{
		origin + "/.well-known/oauth-authorization-server" + path,
		origin + "/.well-known/openid-configuration" + path,
		origin + path + "/.well-known/openid-configuration",
	}, nil
}

// discover fetches the authorization server's metadata, trying each
// well-known location in turn, and returns the first document whose issuer
// is exactly issuer (RFC 8414 §3.3). want checks the fields the caller
// needs; a document failing it counts as not found.
func discover(ctx context.Context, c *http.Client, issuer string, want func(*oauth.ServerMetadata) error) (*oauth.ServerMetadata, error) {
	urls, err := metadataURLs(issuer)
	if err != nil {
		return nil, err
	}
	var errs []error
	for _, u := range urls {
		var m oauth.ServerMetadata
		if err := getJSON(ctx, c, u, &m); err != nil && !unusedMemberTypeError(err) {
			errs = append(errs, err)
			continue
		}
		if m.Issuer != issuer {
			errs = append(errs, fmt.Errorf("%s: issuer %q, want %q", u, m.Issuer, issuer))
			continue
		}
		if err := want(&m); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", u, err))
			continue
		}
		return &m, nil
	}
	return nil, fmt.Errorf("discover authorization server %s: %w", issuer, errors.Join(errs...))
}

// unusedMemberTypeError reports whether err says only that a metadata
// member rs does not read has another type than RFC 8414 gives it. Such a
// document is still used, as it was when rs decoded only its members:
// encoding/json fills every member it can and reports the first mismatch,
// so the members rs reads are then as the document has them, and checked
// (issuer, want) as usual.
func unusedMemberTypeError(err error) bool {
	var te *json.UnmarshalTypeError
	if !errors.As(err, &te) {
		return false
	}
	switch te.Field {
	case "issuer", "jwks_uri", "introspection_endpoint":
		return false
	}
	return true
}

// getJSON GETs u and decodes a JSON body of at most maxDocumentBytes.
func getJSON(ctx context.Context, c *http.Client, u string, v any) error {
	_, err := getJSONHeader(ctx, c, u, v)
	return err
}

// getJSONHeader is getJSON that also returns the response's header.
func getJSONHeader(ctx context.Context, c *http.Client, u string, v any) (http.Header, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	return resp.Header, decodeJSONResponse(resp, u, v)
}

// decodeJSONResponse checks for 200 and a JSON media type and decodes the
// body, reading at most maxDocumentBytes.
func decodeJSONResponse(resp *http.Response, u string, v any) error {
	if resp.StatusCode != http.StatusOK {
		io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
		return fmt.Errorf("%s: status %d", u, resp.StatusCode)
	}
	if mt, _, err := mime.ParseMediaType(resp.Header.Get("Content-Type")); err != nil || !isJSONMediaType(mt) {
		return fmt.Errorf("%s: content type %q is not JSON", u, resp.Header.Get("Content-Type"))
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxDocumentBytes+1))
	if err != nil {
		return fmt.Errorf("%s: %w", u, err)
	}
	if len(body) > maxDocumentBytes {
		return fmt.Errorf("%s: document larger than %d bytes", u, maxDocumentBytes)
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("%s: %w", u, err)
	}
	return nil
}

// isJSONMediaType accepts application/json and application/*+json (such
// as application/jwk-set+json).
func isJSONMediaType(mt string) bool {
	return mt == "application/json" || strings.HasPrefix(mt, "application/") && strings.HasSuffix(mt, "+json")
}
