package as

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/go-jose/go-jose/v4"
	"github.com/golang-jwt/jwt/v5"
)

// TestTokenExchangeVerifiedByAPI (issue 15, "an API that checks the
// exchanged token itself"): the API side validates the exchanged token
// with github.com/golang-jwt/jwt/v5, a library Gatehouse does not use,
// against the AS's JWKS (fetched over HTTP), and finds its own aud, the
// user's sub, the gateway and the MCP client in act, and the scope.
func TestTokenExchangeVerifiedByAPI(t *testing.T) {
	ts := newExchangeServer(t)
	subject := ts.userToken(t, "notes:read notes:write")
	r, _ := ts.exchangeOK(t, exForm(subject, exAPI, "notes:read"), exGateway, exGatewaySec)

	resp, err := http.Get(ts.URL + "/jwks")
	must(t, err)
	var set jose.JSONWebKeySet
	must(t, json.Unmarshal([]byte(readAll(resp)), &set))
	keyfunc := func(tok *jwt.Token) (any, error) {
		kid, _ := tok.Header["kid"].(string)
		keys := set.Key(kid)
		if len(keys) != 1 {
			return nil, jwt.ErrTokenUnverifiable
		}
		return keys[0].Key, nil
	}
	type claims struct {
		jwt.RegisteredClaims
		Scope    string `json:"scope"`
		ClientID string `json:"client_id"`
		Act      *struct {
			Sub string `json:"sub"`
			Act *struct {
				Sub string `json:"sub"`
			} `json:"act"`
		} `json:"act"`
	}
	parse := func(tok, aud string) (*claims, error) {
		var c claims
		_, err := jwt.ParseWithClaims(tok, &c, keyfunc,
			jwt.WithValidMethods([]string{"ES256"}), jwt.WithIssuer(ts.URL), jwt.WithAudience(aud),
			jwt.WithExpirationRequired(), jwt.WithTimeFunc(ts.Clock.Now))
		return &c, err
	}
	c, err := parse(r.AccessToken, exAPI)
	if err != nil {
		t.Fatalf("golang-jwt refuses the exchanged token: %v", err)
	}
	if c.Subject != ts.userID || c.Scope != "notes:read" || c.ClientID != exGateway || c.Act == nil || c.Act.Sub != exGateway || c.Act.Act == nil || c.Act.Act.Sub != publicClient {
		t.Errorf("claims: sub %q scope %q client_id %q act %+v; want %s, notes:read, %s, act %s then %s", c.Subject, c.Scope, c.ClientID, c.Act, ts.userID, exGateway, exGateway, publicClient)
	}
	// The client's own token is for the MCP resource: the API refuses it.
	if _, err := parse(subject, exAPI); err == nil {
		t.Errorf("golang-jwt accepted the subject token (aud %s) at the API", testResource)
	}
}
