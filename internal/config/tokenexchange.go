package config

import (
	"fmt"
	"net/url"
	"strings"
	"time"
)

// TokenExchange configures the RFC 8693 token exchange grant at the
// token endpoint (docs/token-exchange.md): which clients may trade a
// user's access token for a resource they serve for a token for another
// registered resource. No clients (the default) disables the grant.
type TokenExchange struct {
	// Lifetime (lifetime) is the longest an exchanged token lives; it
	// never outlives the token it was exchanged from. Default 5m; at most
	// 1h.
	Lifetime Duration `json:"lifetime"`
	// Clients (clients) are the clients allowed to exchange. A client may
	// have several entries; an exchange must fit one. Default none.
	Clients []ExchangeClient `json:"clients"`
}

// ExchangeClient is one client's token exchange policy.
type ExchangeClient struct {
	// ClientID (client_id) is a confidential client created with
	// `gatehouse client create`; public and self-registered clients are
	// refused whatever the policy says. Required.
	ClientID string `json:"client_id"`
	// SubjectAudiences (subject_audiences) are the resources whose
	// tokens the client may exchange: the subject token's aud must be one
	// of them, i.e. a resource the client serves. Required.
	SubjectAudiences []string `json:"subject_audiences"`
	// Audiences (audiences) are the resources the client may obtain
	// tokens for; each must also be registered (`gatehouse resource
	// add`), or requests for it are refused with invalid_target. Required.
	Audiences []string `json:"audiences"`
	// Scopes (scopes) bounds the scopes of exchanged tokens; empty means
	// any scope the target resource defines. A token never gets a scope
	// the subject token lacks.
	Scopes []string `json:"scopes"`
}

// DefaultTokenExchange returns the defaults: no client may exchange.
func DefaultTokenExchange() TokenExchange {
	return TokenExchange{Lifetime: Duration(5 * time.Minute)}
}

// validate reports every problem with the token_exchange section.
func (x TokenExchange) validate() []error {
	var errs []error
	bad := func(cond bool, path, format string, args ...any) {
		if cond {
			errs = append(errs, keyErrorf(path, format, args...))
		}
	}
	const at = "token_exchange."
	bad(x.Lifetime < Duration(time.Second) || x.Lifetime > Duration(time.Hour), at+"lifetime",
		"token_exchange.lifetime (%s) must be between 1s and 1h: an exchanged token is for one call to an API, and cannot be revoked where the API verifies it locally", time.Duration(x.Lifetime))
	// A client may have several entries: each pairs subject audiences
	// with audiences (a gateway serving several OpenAPI routes).
	for i, c := range x.Clients {
		p := fmt.Sprintf(at+"clients[%d].", i)
		bad(c.ClientID == "", p+"client_id", "token_exchange.clients[%d].client_id is required", i)
		for _, l := range []struct {
			key  string
			vals []string
		}{{"subject_audiences", c.SubjectAudiences}, {"audiences", c.Audiences}} {
			bad(len(l.vals) == 0, p+l.key, "token_exchange.clients[%d].%s is required: %s", i, l.key, map[string]string{
				"subject_audiences": "the resources whose tokens this client may exchange (those it serves)",
				"audiences":         "the registered resources this client may obtain tokens for",
			}[l.key])
			for j, v := range l.vals {
				u, err := url.Parse(v)
				bad(err != nil || !u.IsAbs() || u.Host == "" || strings.Contains(v, "#"), fmt.Sprintf("%s%s[%d]", p, l.key, j),
					"token_exchange.clients[%d].%s: %q is not a resource identifier (an absolute URI without a fragment, as registered with `gatehouse resource add`)", i, l.key, v)
			}
		}
		for j, sc := range c.Scopes {
			bad(!validScope(sc), fmt.Sprintf("%sscopes[%d]", p, j), "token_exchange.clients[%d].scopes: %q is not a scope value", i, sc)
		}
	}
	return errs
}
