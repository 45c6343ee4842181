package oauth

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"strconv"
	"time"
)

// ServerMetadata is the authorization server metadata document
// ([RFC 8414 §2]), which Gatehouse also serves as its OpenID Provider
// configuration. The authorization server writes it; rs reads the members
// its verifiers need (issuer, jwks_uri, introspection_endpoint) from any
// authorization server, so the members are typed as RFC 8414 defines them.
// Members with omitempty are left out when the server does not offer the
// feature; the others are always written, empty or not.
//
// [RFC 8414 §2]: https://www.rfc-editor.org/rfc/rfc8414#section-2
type ServerMetadata struct {
	// Issuer (issuer) is the issuer identifier, an https URL.
	Issuer string `json:"issuer"`
	// AuthorizationEndpoint (authorization_endpoint).
	AuthorizationEndpoint string `json:"authorization_endpoint"`
	// TokenEndpoint (token_endpoint).
	TokenEndpoint string `json:"token_endpoint"`
	// JWKSURI (jwks_uri) is where the keys that sign access tokens are.
	JWKSURI string `json:"jwks_uri"`
	// RegistrationEndpoint (registration_endpoint) is the RFC 7591
	// endpoint; empty when registration is closed.
	RegistrationEndpoint string `json:"registration_endpoint,omitempty"`
	// ScopesSupported (scopes_supported).
	ScopesSupported []string `json:"scopes_supported"`
	// ResponseTypesSupported (response_types_supported).
	ResponseTypesSupported []string `json:"response_types_supported"`
	// ResponseModesSupported (response_modes_supported).
	ResponseModesSupported []string `json:"response_modes_supported"`
	// GrantTypesSupported (grant_types_supported).
	GrantTypesSupported []string `json:"grant_types_supported"`
	// TokenEndpointAuthMethodsSupported
	// (token_endpoint_auth_methods_supported).
	TokenEndpointAuthMethodsSupported []string `json:"token_endpoint_auth_methods_supported"`
	// TokenEndpointAuthSigningAlgValues
	// (token_endpoint_auth_signing_alg_values_supported) are the
	// private_key_jwt assertion algorithms.
	TokenEndpointAuthSigningAlgValues []string `json:"token_endpoint_auth_signing_alg_values_supported"`
	// RevocationEndpoint (revocation_endpoint) is the RFC 7009 endpoint.
	RevocationEndpoint string `json:"revocation_endpoint"`
	// RevocationEndpointAuthMethodsSupported
	// (revocation_endpoint_auth_methods_supported).
	RevocationEndpointAuthMethodsSupported []string `json:"revocation_endpoint_auth_methods_supported"`
	// IntrospectionEndpoint (introspection_endpoint) is the RFC 7662
	// endpoint.
	IntrospectionEndpoint string `json:"introspection_endpoint"`
	// IntrospectionEndpointAuthMethodsSupported
	// (introspection_endpoint_auth_methods_supported).
	IntrospectionEndpointAuthMethodsSupported []string `json:"introspection_endpoint_auth_methods_supported"`
	// CodeChallengeMethodsSupported (code_challenge_methods_supported).
	CodeChallengeMethodsSupported []string `json:"code_challenge_methods_supported"`
	// AuthorizationResponseISSParameter
	// (authorization_response_iss_parameter_supported, RFC 9207 §3).
	AuthorizationResponseISSParameter bool `json:"authorization_response_iss_parameter_supported"`
	// ClientIDMetadataDocumentSupported
	// (client_id_metadata_document_supported, CIMD draft §5); left out
	// when false.
	ClientIDMetadataDocumentSupported bool `json:"client_id_metadata_document_supported,omitempty"`
	// PromptValuesSupported (prompt_values_supported, OpenID Connect
	// Prompt Create §4).
	PromptValuesSupported []string `json:"prompt_values_supported"`
	// SubjectTypesSupported (subject_types_supported, OpenID Connect
	// Discovery §3).
	SubjectTypesSupported []string `json:"subject_types_supported"`
	// IDTokenSigningAlgValuesSupported
	// (id_token_signing_alg_values_supported, OpenID Connect Discovery §3).
	IDTokenSigningAlgValuesSupported []string `json:"id_token_signing_alg_values_supported"`
	// ResourceIndicatorsSupported (resource_indicators_supported, RFC 8707).
	ResourceIndicatorsSupported bool `json:"resource_indicators_supported"`
	// DPoPSigningAlgValuesSupported (dpop_signing_alg_values_supported,
	// RFC 9449 §5.1): the algorithms of DPoP proofs the token endpoint
	// accepts.
	DPoPSigningAlgValuesSupported []string `json:"dpop_signing_alg_values_supported,omitempty"`
}

// Introspection is an introspection response ([RFC 7662 §2.2]). The
// authorization server writes it, leaving out every member but active for
// an inactive token; rs reads it from any authorization server, so aud may
// be a string or an array and the times may be fractional.
//
// [RFC 7662 §2.2]: https://www.rfc-editor.org/rfc/rfc7662#section-2.2
type Introspection struct {
	// Active (active) is whether the token is valid now. Required.
	Active bool `json:"active"`
	// Scope (scope) is space-delimited.
	Scope string `json:"scope,omitempty"`
	// ClientID (client_id) is the client the token was issued to.
	ClientID string `json:"client_id,omitempty"`
	// TokenType (token_type): Bearer for access tokens, refresh_token for
	// refresh tokens.
	TokenType string `json:"token_type,omitempty"`
	// Exp (exp), Iat (iat) and Nbf (nbf) are the token's times.
	Exp NumericDate `json:"exp,omitzero"`
	Iat NumericDate `json:"iat,omitzero"`
	Nbf NumericDate `json:"nbf,omitzero"`
	// Sub (sub) is the user the token acts for.
	Sub string `json:"sub,omitempty"`
	// Aud (aud) are the resources the token is for.
	Aud Audience `json:"aud,omitempty"`
	// Iss (iss) is the issuer.
	Iss string `json:"iss,omitempty"`
	// JTI (jti) is the token's identifier.
	JTI string `json:"jti,omitempty"`
	// Cnf (cnf, RFC 9449 §6.2) confirms the DPoP key a bound token is
	// bound to.
	Cnf *Confirmation `json:"cnf,omitempty"`
}

// Confirmation is a cnf member (RFC 7800 §3.1) with a JWK SHA-256
// thumbprint (jkt, RFC 9449 §6).
type Confirmation struct {
	JKT string `json:"jkt,omitempty"`
}

// JKT returns cnf.jkt, "" if absent.
func (i *Introspection) JKT() string {
	if i.Cnf == nil {
		return ""
	}
	return i.Cnf.JKT
}

// Audience is the aud member of a JWT or an introspection response: one
// string or an array of strings ([RFC 7519 §4.1.3]). One value is written
// as a string, more as an array.
//
// [RFC 7519 §4.1.3]: https://www.rfc-editor.org/rfc/rfc7519#section-4.1.3
type Audience []string

// OneAudience is the Audience of a single resource; "" gives none, which
// omitempty leaves out.
func OneAudience(s string) Audience {
	if s == "" {
		return nil
	}
	return Audience{s}
}

// MarshalJSON writes one value as a string, as Gatehouse's tokens carry it.
func (a Audience) MarshalJSON() ([]byte, error) {
	if len(a) == 1 {
		return json.Marshal(a[0])
	}
	return json.Marshal([]string(a))
}

// UnmarshalJSON reads a string (an empty one is no audience), an array of
// strings, or null.
func (a *Audience) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	switch {
	case len(b) > 0 && b[0] == '"':
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		if s != "" {
			*a = Audience{s}
		}
		return nil
	case len(b) > 0 && b[0] == '[':
		var ss []string
		if err := json.Unmarshal(b, &ss); err != nil {
			return err
		}
		*a = ss
		return nil
	case bytes.Equal(b, []byte("null")):
		return nil
	}
	return errors.New("aud is neither a string nor an array of strings")
}

// NumericDate is a JWT NumericDate ([RFC 7519 §2]): seconds since the
// epoch, possibly fractional when read, whole when written. The zero value
// is an absent date (omitzero leaves it out), distinct from the epoch.
//
// [RFC 7519 §2]: https://www.rfc-editor.org/rfc/rfc7519#section-2
type NumericDate struct {
	t   time.Time
	set bool
}

// NewNumericDate is the NumericDate of t; the zero time gives an absent
// date.
func NewNumericDate(t time.Time) NumericDate {
	if t.IsZero() {
		return NumericDate{}
	}
	return NumericDate{t: t, set: true}
}

// Time is the date, or the zero time when absent.
func (d NumericDate) Time() time.Time { return d.t }

// IsZero reports whether the date is absent.
func (d NumericDate) IsZero() bool { return !d.set }

// maxNumericDate is the start of year 10000: later dates are refused
// rather than overflowing time arithmetic.
const maxNumericDate = 253402300800

// MarshalJSON writes whole seconds.
func (d NumericDate) MarshalJSON() ([]byte, error) {
	if !d.set {
		return []byte("null"), nil
	}
	return strconv.AppendInt(nil, d.t.Unix(), 10), nil
}

// UnmarshalJSON reads a number of seconds from 0 up to the year 10000,
// or null (absent).
func (d *NumericDate) UnmarshalJSON(b []byte) error {
	if bytes.Equal(b, []byte("null")) {
		return nil
	}
	f, err := strconv.ParseFloat(string(b), 64)
	if err != nil {
		return errors.New("a NumericDate is not a number")
	}
	if f < 0 || f >= maxNumericDate {
		return errors.New("a NumericDate is out of range")
	}
	sec, frac := math.Modf(f)
	d.t = time.Unix(int64(sec), int64(frac*1e9))
	d.set = true
	return nil
}
