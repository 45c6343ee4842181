package as

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/gatehouse-mcp/gatehouse/rs"
)

// TestExchangerAgainstAS: rs.Exchanger, the helper resource servers and
// the gateway use, against the real token endpoint: a token for the API
// with the requested scope and the AS's expiry; refusals come back as
// rs.ExchangeError with the OAuth code.
func TestExchangerAgainstAS(t *testing.T) {
	ts := newExchangeServer(t)
	subject := ts.userToken(t, "notes:read notes:write")
	e := &rs.Exchanger{TokenURL: ts.URL + "/token", ClientID: exGateway, ClientSecret: exGatewaySec, Now: ts.Clock.Now}
	tok, err := e.Exchange(t.Context(), subject, exAPI, []string{"notes:write"})
	if err != nil {
		t.Fatal(err)
	}
	if tok.TokenType != "Bearer" || tok.IssuedTokenType != tokenTypeAccess || !slices.Equal(tok.Scopes, []string{"notes:write"}) || !tok.Expiry.Equal(ts.Clock.Now().Add(5*time.Minute)) {
		t.Errorf("Exchange = %+v", tok)
	}
	c, err := ts.opts.Keyring.Verify(t.Context(), tok.AccessToken)
	if err != nil || c.Audience != exAPI || c.Subject != ts.userID || c.Scope != "notes:write" {
		t.Errorf("issued token: %+v, %v", c, err)
	}
	for _, tt := range []struct {
		e        *rs.Exchanger
		resource string
		scopes   []string
		code     string
		status   int
	}{
		{e, testResource2, nil, "invalid_target", 400},
		{e, exAPI, []string{"admin"}, "invalid_scope", 400},
		{&rs.Exchanger{TokenURL: ts.URL + "/token", ClientID: confClient, ClientSecret: confSecret}, exAPI, nil, "unauthorized_client", 400},
		{&rs.Exchanger{TokenURL: ts.URL + "/token", ClientID: publicClient}, exAPI, nil, "unauthorized_client", 400},
		{&rs.Exchanger{TokenURL: ts.URL + "/token", ClientID: exGateway, ClientSecret: "wrong"}, exAPI, nil, "invalid_client", 401},
	} {
		_, err := tt.e.Exchange(t.Context(), subject, tt.resource, tt.scopes)
		var xe *rs.ExchangeError
		if !errors.As(err, &xe) || xe.Code != tt.code || xe.Status != tt.status || xe.Description == "" {
			t.Errorf("Exchange as %s for %s %v = %v, want ExchangeError %s %d with a description", tt.e.ClientID, tt.resource, tt.scopes, err, tt.code, tt.status)
		}
	}
}
