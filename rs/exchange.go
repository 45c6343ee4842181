package rs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Token exchange vocabulary ([RFC 8693 §2.1], §3).
//
// [RFC 8693 §2.1]: https://www.rfc-editor.org/rfc/rfc8693#section-2.1
const (
	grantTypeTokenExchange = "urn:ietf:params:oauth:grant-type:token-exchange"
	tokenTypeAccessToken   = "urn:ietf:params:oauth:token-type:access_token"
)

// maxExchangeResponse bounds the token endpoint's answer: a token
// response is a few kilobytes.
const maxExchangeResponse = 1 << 20

// exchangeHTTPClient is the default client of an [Exchanger]: a 10 s
// timeout, and no redirects, which would resend the client's credentials
// and the user's token somewhere the operator did not configure.
var exchangeHTTPClient = &http.Client{
	Timeout:       defaultHTTPTimeout,
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

// Exchanger calls an authorization server's token endpoint for RFC 8693 token exchange.
//
// A resource server that calls another API on its user's behalf (an MCP
// server, the Gatehouse gateway) trades the access token it received for
// a short-lived token for that API: its audience the API, its subject
// the same user, its act claim naming the exchanging client. The
// authorization server decides what may be exchanged (Gatehouse:
// token_exchange in its configuration, docs/token-exchange.md).
//
// An Exchanger is safe for concurrent use; it caches nothing (callers
// that call often should cache the [ExchangedToken] per user and scope
// set until shortly before its Expiry).
type Exchanger struct {
	// TokenURL is the token endpoint (token_endpoint of the
	// authorization server's metadata). Required; https, or http on a
	// loopback host (tests, a sidecar), because the client secret and
	// the user's token travel to it.
	TokenURL string
	// ClientID is this resource server's client id at the authorization
	// server. Required.
	ClientID string
	// ClientSecret authenticates the client with client_secret_basic
	// (RFC 6749 §2.3.1: id and secret form-encoded, then Basic). Empty
	// means a public client, which sends only client_id (and which
	// Gatehouse refuses: exchange needs client authentication).
	ClientSecret string
	// HTTPClient sends the request. Nil means a client with a 10 s
	// timeout that follows no redirects.
	HTTPClient *http.Client
	// Now returns the current time, for [ExchangedToken.Expiry]. Nil
	// means time.Now.
	Now func() time.Time
}

// ExchangedToken is a token the authorization server issued by exchange
// (RFC 8693 §2.2.1).
type ExchangedToken struct {
	// AccessToken is the issued token: send it as a Bearer token to the
	// resource it was issued for. Never log it.
	AccessToken string
	// TokenType (token_type) is "Bearer".
	TokenType string
	// IssuedTokenType (issued_token_type) is the kind of token issued,
	// urn:ietf:params:oauth:token-type:access_token with Gatehouse.
	IssuedTokenType string
	// Scopes (scope) are the granted scopes: the response's scope, or the
	// requested ones when the response omits it (RFC 8693 §2.2.1: scope
	// may be left out when it is what was asked for).
	Scopes []string
	// Expiry is when the token expires (Now plus expires_in); zero when
	// the response did not say.
	Expiry time.Time
}

// ExchangeError is an OAuth error response from the token endpoint.
type ExchangeError struct {
	// Status is the HTTP status code.
	Status int
	// Code (error) is the OAuth error code, such as invalid_target,
	// invalid_scope, invalid_grant or unauthorized_client; empty when the
	// response was not an OAuth error.
	Code string
	// Description (error_description) is the server's explanation. It
	// never contains the subject token: one the server echoed is cut out.
	Description string
}

// Error describes e as "rs: token exchange: code: description (HTTP status)".
func (e *ExchangeError) Error() string {
	code := e.Code
	if code == "" {
		code = "not an OAuth error response"
	}
	if e.Description == "" {
		return fmt.Sprintf("rs: token exchange: %s (HTTP %d)", code, e.Status)
	}
	return fmt.Sprintf("rs: token exchange: %s: %s (HTTP %d)", code, e.Description, e.Status)
}

// Exchange trades subjectToken, an access token this resource server
// received, for a token for resource (the target API's resource
// identifier) with scopes (none: the authorization server's default).
// A refusal is an [*ExchangeError]; other errors are transport or
// response-format problems. No error contains subjectToken.
func (e *Exchanger) Exchange(ctx context.Context, subjectToken, resource string, scopes []string) (*ExchangedToken, error) {
	if err := e.check(subjectToken, resource); err != nil {
		return nil, err
	}
	form := url.Values{
		"grant_type":         {grantTypeTokenExchange},
		"subject_token":      {subjectToken},
		"subject_token_type": {tokenTypeAccessToken},
		"resource":           {resource},
	}
	if len(scopes) > 0 {
		form.Set("scope", strings.Join(scopes, " "))
	}
	if e.ClientSecret == "" {
		form.Set("client_id", e.ClientID)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.TokenURL, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, fmt.Errorf("rs: token exchange: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	if e.ClientSecret != "" {
		req.SetBasicAuth(url.QueryEscape(e.ClientID), url.QueryEscape(e.ClientSecret))
	}
	hc := e.HTTPClient
	if hc == nil {
		hc = exchangeHTTPClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		// A *url.Error names the method and URL, never the body.
		return nil, fmt.Errorf("rs: token exchange: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxExchangeResponse+1))
	if err != nil {
		return nil, fmt.Errorf("rs: token exchange: reading the response: %w", err)
	}
	if len(body) > maxExchangeResponse {
		return nil, fmt.Errorf("rs: token exchange: the response is larger than %d bytes", maxExchangeResponse)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, exchangeError(resp, body, subjectToken)
	}
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt != "application/json" {
		return nil, fmt.Errorf("rs: token exchange: the token endpoint answered 200 with Content-Type %q, not application/json", truncateText(resp.Header.Get("Content-Type"), 60))
	}
	var r struct {
		AccessToken     string  `json:"access_token"`
		IssuedTokenType string  `json:"issued_token_type"`
		TokenType       string  `json:"token_type"`
		ExpiresIn       int64   `json:"expires_in"`
		Scope           *string `json:"scope"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, errors.New("rs: token exchange: the token response is not a JSON object of the expected members")
	}
	switch {
	case r.AccessToken == "":
		return nil, errors.New("rs: token exchange: the token response has no access_token")
	case !strings.EqualFold(r.TokenType, "Bearer"):
		return nil, fmt.Errorf("rs: token exchange: the token_type is %q; only Bearer is supported", truncateText(r.TokenType, 40))
	case r.ExpiresIn < 0:
		return nil, errors.New("rs: token exchange: the token response has a negative expires_in")
	}
	t := &ExchangedToken{AccessToken: r.AccessToken, TokenType: r.TokenType, IssuedTokenType: r.IssuedTokenType, Scopes: scopes}
	if r.Scope != nil {
		t.Scopes = strings.Fields(*r.Scope)
	}
	if r.ExpiresIn > 0 {
		now := e.Now
		if now == nil {
			now = time.Now
		}
		t.Expiry = now().Add(time.Duration(r.ExpiresIn) * time.Second)
	}
	return t, nil
}

// check refuses a request that could only fail, or would send the
// client's secret and the user's token over plain HTTP to another host.
func (e *Exchanger) check(subjectToken, resource string) error {
	switch {
	case e.ClientID == "":
		return errors.New("rs: token exchange: Exchanger.ClientID is required")
	case subjectToken == "":
		return errors.New("rs: token exchange: the subject token is empty")
	case resource == "":
		return errors.New("rs: token exchange: the resource (the target API's identifier) is required")
	}
	u, err := url.Parse(e.TokenURL)
	if err != nil || u.Host == "" {
		return fmt.Errorf("rs: token exchange: Exchanger.TokenURL %q is not an absolute URL", truncateText(e.TokenURL, 200))
	}
	switch u.Scheme {
	case "https":
	case "http":
		if !loopbackHost(u.Hostname()) {
			return fmt.Errorf("rs: token exchange: Exchanger.TokenURL %q must use https (http only on a loopback host)", truncateText(e.TokenURL, 200))
		}
	default:
		return fmt.Errorf("rs: token exchange: Exchanger.TokenURL %q must use https", truncateText(e.TokenURL, 200))
	}
	return nil
}

// loopbackHost reports whether host is localhost or a loopback address.
func loopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// exchangeError reads an OAuth error response (RFC 6749 §5.2). A body
// that is not one gives an ExchangeError without Code, and none of the
// body: it could be anything, the token included.
func exchangeError(resp *http.Response, body []byte, subjectToken string) *ExchangeError {
	e := &ExchangeError{Status: resp.StatusCode}
	var r struct {
		Error            string `json:"error"`
		ErrorDescription string `json:"error_description"`
	}
	if json.Unmarshal(body, &r) != nil || r.Error == "" {
		e.Description = "the token endpoint answered without an OAuth error (Content-Type " + truncateText(resp.Header.Get("Content-Type"), 60) + ")"
		return e
	}
	e.Code = truncateText(strings.ReplaceAll(r.Error, subjectToken, "[subject token]"), 100)
	e.Description = truncateText(strings.ReplaceAll(r.ErrorDescription, subjectToken, "[subject token]"), 500)
	return e
}

// truncateText bounds text from a server before it goes into an error.
func truncateText(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
