package token

import (
	"errors"
	"fmt"
	"time"
)

// accessTokenType is the JOSE "typ" of an access token (RFC 9068 §2.1). It
// keeps an access token from being accepted where another kind of JWT
// signed by the same key is expected, and the reverse.
const accessTokenType = "at+jwt"

// AccessClaims are the claims of a JWT access token ([RFC 9068 §2.2]).
// Times travel as whole seconds (NumericDate), so [Keyring.Verify] returns
// them truncated to the second, in UTC.
//
// [RFC 9068 §2.2]: https://www.rfc-editor.org/rfc/rfc9068#section-2.2
type AccessClaims struct {
	// Issuer (iss) is the authorization server's issuer identifier. Required.
	Issuer string
	// Subject (sub) is the user id, or the client id for a client
	// credentials grant. Required.
	Subject string
	// Audience (aud) is the resource URI (RFC 8707) the token is for. It is
	// a single string on the wire: one token, one resource. Required.
	Audience string
	// ClientID (client_id) is the client the token was issued to. Required.
	ClientID string
	// Scope (scope) is the space-separated granted scopes; omitted when
	// empty.
	Scope string
	// JTI (jti) is a unique token id, for revocation lists. Required.
	JTI string
	// GrantID (gid, a private claim) names the grant — the refresh-token
	// family — the token descends from, so revoking the grant can revoke
	// the token at introspection. Omitted when empty.
	GrantID string
	// IssuedAt (iat) is when the token was issued. Required.
	IssuedAt time.Time
	// NotBefore (nbf) is when the token becomes valid; omitted when zero.
	NotBefore time.Time
	// ExpiresAt (exp) is when the token stops being valid. Required, and
	// after IssuedAt.
	ExpiresAt time.Time
	// AuthTime (auth_time) is when the user last authenticated; omitted
	// when zero (client credentials).
	AuthTime time.Time
	// Act (act, [RFC 8693 §4.1]) is the party acting for the subject: set
	// on tokens issued by token exchange, nil otherwise. The outermost
	// actor is the current one; Act.Act are the ones before it.
	//
	// [RFC 8693 §4.1]: https://www.rfc-editor.org/rfc/rfc8693#section-4.1
	Act *Actor
	// MayAct (may_act, [RFC 8693 §4.4]) names the one party allowed to
	// exchange the token while acting for its subject; nil allows any
	// party the exchange policy allows.
	//
	// [RFC 8693 §4.4]: https://www.rfc-editor.org/rfc/rfc8693#section-4.4
	MayAct *Actor
	// JKT (cnf.jkt, [RFC 9449 §6.1]) is the JWK SHA-256 thumbprint of the
	// DPoP key the token is bound to; "" for a bearer token. A resource
	// server must then require a DPoP proof signed by that key.
	//
	// [RFC 9449 §6.1]: https://www.rfc-editor.org/rfc/rfc9449#section-6.1
	JKT string
}

// confirmation is the cnf claim (RFC 7800 §3.1) of a DPoP-bound token.
type confirmation struct {
	JKT string `json:"jkt,omitempty"`
}

// Actor is the value of an act or may_act claim (RFC 8693 §4.1, §4.4): a
// party identified by its subject, with the actors before it nested in
// Act. Treat a verified token's actors as read-only: the keyring's
// verification cache shares them.
type Actor struct {
	// Subject (sub) identifies the actor: a client id.
	Subject string `json:"sub"`
	// Act (act) is the actor before this one, nil if none.
	Act *Actor `json:"act,omitempty"`
}

// Depth returns the number of actors in the chain a heads: 0 for nil.
func (a *Actor) Depth() int {
	n := 0
	for ; a != nil; a = a.Act {
		n++
	}
	return n
}

// wireAccess is the JSON form of AccessClaims. Field order is the order
// on the wire.
type wireAccess struct {
	Iss      string        `json:"iss"`
	Sub      string        `json:"sub"`
	Aud      string        `json:"aud"`
	Exp      int64         `json:"exp"`
	Nbf      int64         `json:"nbf,omitempty"`
	Iat      int64         `json:"iat"`
	AuthTime int64         `json:"auth_time,omitempty"`
	JTI      string        `json:"jti"`
	ClientID string        `json:"client_id"`
	Scope    string        `json:"scope,omitempty"`
	GID      string        `json:"gid,omitempty"`
	Act      *Actor        `json:"act,omitempty"`
	MayAct   *Actor        `json:"may_act,omitempty"`
	Cnf      *confirmation `json:"cnf,omitempty"`
}

func (c AccessClaims) wire() wireAccess {
	return wireAccess{
		Iss:      c.Issuer,
		Sub:      c.Subject,
		Aud:      c.Audience,
		Exp:      c.ExpiresAt.Unix(),
		Nbf:      unixOrZero(c.NotBefore),
		Iat:      c.IssuedAt.Unix(),
		AuthTime: unixOrZero(c.AuthTime),
		JTI:      c.JTI,
		ClientID: c.ClientID,
		Scope:    c.Scope,
		GID:      c.GrantID,
		Act:      c.Act,
		MayAct:   c.MayAct,
		Cnf:      cnf(c.JKT),
	}
}

func cnf(jkt string) *confirmation {
	if jkt == "" {
		return nil
	}
	return &confirmation{JKT: jkt}
}

func (w wireAccess) claims() AccessClaims {
	return AccessClaims{
		Issuer:    w.Iss,
		Subject:   w.Sub,
		Audience:  w.Aud,
		ClientID:  w.ClientID,
		Scope:     w.Scope,
		JTI:       w.JTI,
		GrantID:   w.GID,
		IssuedAt:  timeOrZero(w.Iat),
		NotBefore: timeOrZero(w.Nbf),
		ExpiresAt: timeOrZero(w.Exp),
		AuthTime:  timeOrZero(w.AuthTime),
		Act:       w.Act,
		MayAct:    w.MayAct,
		JKT:       w.jkt(),
	}
}

func (w wireAccess) jkt() string {
	if w.Cnf == nil {
		return ""
	}
	return w.Cnf.JKT
}

// validate checks that c has what RFC 9068 §2.2 requires. A token missing
// one of these is a bug in the caller, so Sign refuses it rather than
// issuing a token a resource server will reject.
func (c AccessClaims) validate() error {
	missing := ""
	switch {
	case c.Issuer == "":
		missing = "iss"
	case c.Subject == "":
		missing = "sub"
	case c.Audience == "":
		missing = "aud"
	case c.ClientID == "":
		missing = "client_id"
	case c.JTI == "":
		missing = "jti"
	case c.IssuedAt.IsZero():
		missing = "iat"
	case c.ExpiresAt.IsZero():
		missing = "exp"
	}
	if missing != "" {
		return fmt.Errorf("token: access claims: missing %s", missing)
	}
	if err := checkActor("act", c.Act); err != nil {
		return err
	}
	if err := checkActor("may_act", c.MayAct); err != nil {
		return err
	}
	if !c.ExpiresAt.After(c.IssuedAt) {
		return errors.New("token: access claims: exp is not after iat")
	}
	if !c.NotBefore.IsZero() && !c.NotBefore.Before(c.ExpiresAt) {
		return errors.New("token: access claims: nbf is not before exp")
	}
	return nil
}

func unixOrZero(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.Unix()
}

func timeOrZero(s int64) time.Time {
	if s == 0 {
		return time.Time{}
	}
	return time.Unix(s, 0).UTC()
}

// MaxActorDepth bounds an act chain: each exchange adds one actor, and a
// chain this long is a loop, not a delegation anyone designed.
const MaxActorDepth = 8

// checkActor refuses an actor without a subject, or a chain longer than
// MaxActorDepth.
func checkActor(claim string, a *Actor) error {
	for i := 0; a != nil; i, a = i+1, a.Act {
		if i == MaxActorDepth {
			return fmt.Errorf("token: access claims: %s is nested more than %d deep", claim, MaxActorDepth)
		}
		if a.Subject == "" {
			return fmt.Errorf("token: access claims: %s without sub", claim)
		}
	}
	return nil
}
