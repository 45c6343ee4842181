package rs

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"
)

const exSubject = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ1c2VyLTEifQ.c2lnbmF0dXJlLXNlY3JldC10b2tlbg"

// fakeTokenEndpoint answers token exchange requests with answer, after
// recording the request's form and Basic credentials.
func fakeTokenEndpoint(t *testing.T, answer func(w http.ResponseWriter, f url.Values)) (*httptest.Server, *http.Request) {
	t.Helper()
	var seen http.Request
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		f, err := url.ParseQuery(string(b))
		if err != nil || r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/x-www-form-urlencoded" {
			t.Errorf("request: %s %q %v", r.Method, r.Header.Get("Content-Type"), err)
		}
		seen = *r
		seen.PostForm = f
		answer(w, f)
	}))
	t.Cleanup(srv.Close)
	return srv, &seen
}

func jsonAnswer(status int, body string) func(http.ResponseWriter, url.Values) {
	return func(w http.ResponseWriter, _ url.Values) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		io.WriteString(w, body)
	}
}

// TestExchanger: the request is RFC 8693 token exchange with
// client_secret_basic (id and secret form-encoded first, RFC 6749
// §2.3.1), and the response becomes an ExchangedToken with its expiry
// from the injected clock.
func TestExchanger(t *testing.T) {
	srv, seen := fakeTokenEndpoint(t, jsonAnswer(200, `{"access_token":"new-token","issued_token_type":"urn:ietf:params:oauth:token-type:access_token","token_type":"Bearer","expires_in":300,"scope":"notes:read"}`))
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	e := &Exchanger{TokenURL: srv.URL + "/token", ClientID: "gate way", ClientSecret: "s:e/cret", Now: func() time.Time { return now }}
	tok, err := e.Exchange(t.Context(), exSubject, "https://api.example.com", []string{"notes:read", "notes:write"})
	if err != nil {
		t.Fatal(err)
	}
	if tok.AccessToken != "new-token" || tok.TokenType != "Bearer" || tok.IssuedTokenType != "urn:ietf:params:oauth:token-type:access_token" ||
		!slices.Equal(tok.Scopes, []string{"notes:read"}) || !tok.Expiry.Equal(now.Add(5*time.Minute)) {
		t.Errorf("Exchange = %+v", tok)
	}
	f := seen.PostForm
	if f.Get("grant_type") != grantTypeTokenExchange || f.Get("subject_token") != exSubject || f.Get("subject_token_type") != tokenTypeAccessToken ||
		f.Get("resource") != "https://api.example.com" || f.Get("scope") != "notes:read notes:write" || f.Has("client_id") || f.Has("client_secret") {
		t.Errorf("form = %v", f)
	}
	id, secret, ok := seen.BasicAuth()
	if !ok || id != url.QueryEscape("gate way") || secret != url.QueryEscape("s:e/cret") {
		t.Errorf("Basic credentials = %q, %q, %v; want both form-encoded", id, secret, ok)
	}

	// No scope in the response: the requested ones (RFC 8693 §2.2.1).
	srv2, _ := fakeTokenEndpoint(t, jsonAnswer(200, `{"access_token":"t","token_type":"bearer","expires_in":60}`))
	e2 := &Exchanger{TokenURL: srv2.URL, ClientID: "public"}
	tok, err = e2.Exchange(t.Context(), exSubject, "https://api.example.com", []string{"a"})
	if err != nil || !slices.Equal(tok.Scopes, []string{"a"}) {
		t.Errorf("without scope in the response: %+v, %v", tok, err)
	}
}

// TestExchangerPublicClient: without a secret the client id goes in the
// form and no Authorization header is sent.
func TestExchangerPublicClient(t *testing.T) {
	srv, seen := fakeTokenEndpoint(t, jsonAnswer(400, `{"error":"unauthorized_client","error_description":"public clients cannot exchange tokens"}`))
	_, err := (&Exchanger{TokenURL: srv.URL, ClientID: "pub"}).Exchange(t.Context(), exSubject, "https://api.example.com", nil)
	if seen.PostForm.Get("client_id") != "pub" || seen.Header.Get("Authorization") != "" || seen.PostForm.Has("scope") {
		t.Errorf("public request: form %v, Authorization %q", seen.PostForm, seen.Header.Get("Authorization"))
	}
	var xe *ExchangeError
	if !errors.As(err, &xe) || xe.Code != "unauthorized_client" || xe.Status != 400 {
		t.Errorf("error = %v, want an ExchangeError unauthorized_client 400", err)
	}
}

// TestExchangerErrors: refusals are ExchangeErrors with the OAuth code;
// malformed answers, redirects and bad settings are errors; none of them
// contains the subject token.
func TestExchangerErrors(t *testing.T) {
	tests := []struct {
		name     string
		answer   func(http.ResponseWriter, url.Values)
		wantCode string // "" with wantStatus 0: not an ExchangeError
		status   int
	}{
		{"invalid_target", jsonAnswer(400, `{"error":"invalid_target","error_description":"the client may not exchange tokens for https://api.example.com"}`), "invalid_target", 400},
		{"invalid_scope", jsonAnswer(400, `{"error":"invalid_scope","error_description":"wider"}`), "invalid_scope", 400},
		{"echoes the token", jsonAnswer(400, `{"error":"invalid_grant","error_description":"bad token `+exSubject+`"}`), "invalid_grant", 400},
		{"invalid_client", jsonAnswer(401, `{"error":"invalid_client"}`), "invalid_client", 401},
		{"not OAuth", func(w http.ResponseWriter, _ url.Values) {
			w.Header().Set("Content-Type", "text/html")
			w.WriteHeader(502)
			io.WriteString(w, "<h1>bad gateway "+exSubject+"</h1>")
		}, "", 502},
		{"redirect", func(w http.ResponseWriter, _ url.Values) {
			w.Header().Set("Location", "https://elsewhere.example.com/token")
			w.WriteHeader(307)
		}, "", 307},
		{"no access_token", jsonAnswer(200, `{"token_type":"Bearer"}`), "", 0},
		{"not Bearer", jsonAnswer(200, `{"access_token":"x","token_type":"DPoP"}`), "", 0},
		{"not JSON", func(w http.ResponseWriter, _ url.Values) {
			w.Header().Set("Content-Type", "text/plain")
			io.WriteString(w, exSubject)
		}, "", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, _ := fakeTokenEndpoint(t, tt.answer)
			_, err := (&Exchanger{TokenURL: srv.URL, ClientID: "gw", ClientSecret: "s"}).Exchange(t.Context(), exSubject, "https://api.example.com", nil)
			if err == nil {
				t.Fatal("Exchange succeeded")
			}
			var xe *ExchangeError
			isX := errors.As(err, &xe)
			if tt.status != 0 && (!isX || xe.Code != tt.wantCode || xe.Status != tt.status) {
				t.Errorf("error = %v, want ExchangeError %q %d", err, tt.wantCode, tt.status)
			}
			if tt.status == 0 && isX {
				t.Errorf("error = %v, want a non-OAuth error", err)
			}
			if strings.Contains(err.Error(), exSubject) || strings.Contains(err.Error(), "c2lnbmF0dXJl") {
				t.Errorf("error contains the subject token: %v", err)
			}
		})
	}
}

// TestExchangerSettings: requests that could only fail, or would send
// secrets over plain HTTP to another host, are refused before sending.
func TestExchangerSettings(t *testing.T) {
	ctx := context.Background()
	for _, tt := range []struct {
		e        Exchanger
		subject  string
		resource string
	}{
		{Exchanger{TokenURL: "http://as.example.com/token", ClientID: "gw"}, exSubject, "https://api.example.com"},
		{Exchanger{TokenURL: "ftp://as.example.com/token", ClientID: "gw"}, exSubject, "https://api.example.com"},
		{Exchanger{TokenURL: "/token", ClientID: "gw"}, exSubject, "https://api.example.com"},
		{Exchanger{TokenURL: "https://as.example.com/token"}, exSubject, "https://api.example.com"},
		{Exchanger{TokenURL: "https://as.example.com/token", ClientID: "gw"}, "", "https://api.example.com"},
		{Exchanger{TokenURL: "https://as.example.com/token", ClientID: "gw"}, exSubject, ""},
	} {
		sent := false
		tt.e.HTTPClient = &http.Client{Transport: roundTripFunc(func(*http.Request) (*http.Response, error) {
			sent = true
			return nil, errors.New("no network in this test")
		})}
		if _, err := tt.e.Exchange(ctx, tt.subject, tt.resource, nil); err == nil || sent || strings.Contains(err.Error(), exSubject) {
			t.Errorf("Exchange with TokenURL %q, client %q, subject %t, resource %q = %v (sent: %v); want an error before sending, without the token", tt.e.TokenURL, tt.e.ClientID, tt.subject != "", tt.resource, err, sent)
		}
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
