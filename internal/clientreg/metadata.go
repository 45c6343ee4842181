package clientreg

import (
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/gatehouse-mcp/gatehouse/internal/safetext"
)

// Registration error codes (RFC 7591 §3.2.2).
const (
	CodeInvalidRedirectURI    = "invalid_redirect_uri"
	CodeInvalidClientMetadata = "invalid_client_metadata"
)

// Error is a registration error: Code is an RFC 7591 §3.2.2 error code
// and Description says exactly which field or value is wrong. It never
// contains anything the client did not send.
type Error struct {
	Code        string
	Description string
}

func (e *Error) Error() string { return e.Code + ": " + e.Description }

func metadataError(format string, args ...any) *Error {
	return &Error{Code: CodeInvalidClientMetadata, Description: fmt.Sprintf(format, args...)}
}

// Limits on registration metadata. They are generous for real clients
// and keep one registration from costing more than a few KiB to store.
const (
	// MaxRegistrationBytes caps a registration or update request body.
	MaxRegistrationBytes = 32 << 10
	maxFields            = 64
	maxFieldNameLen      = 100
	maxRedirectURIs      = 20
	maxURILen            = 2048
	maxNameLen           = 200
	maxShortLen          = 256
	maxScopeLen          = 2048
	maxContacts          = 10
	maxKeys              = 10
	maxJWKSBytes         = 16 << 10
)

// Client authentication methods and grant types the server supports.
var (
	authMethods = []string{"none", "client_secret_basic", "client_secret_post", "private_key_jwt"}
	grantTypes  = []string{"authorization_code", "refresh_token", "client_credentials"}
)

// Kind says what a metadata object is being parsed for.
type Kind int

// Kinds of metadata object.
const (
	// Register is an RFC 7591 registration request: the server assigns
	// client_id and client_secret, token_endpoint_auth_method defaults to
	// client_secret_basic.
	Register Kind = iota
	// Update is an RFC 7592 §2.2 update request: client_id must be sent
	// and match, client_secret may be sent (the caller compares it).
	Update
	// Document is a client ID metadata document (CIMD): client_id must
	// equal the document URL, client_name and redirect_uris are required,
	// shared secrets are forbidden, token_endpoint_auth_method defaults
	// to none, and jwks_uri is allowed.
	Document
)

// Options says how to parse metadata.
type Options struct {
	Kind Kind
	// ClientID is the document URL (Document) or the client's current
	// client_id (Update).
	ClientID string
	// Redirect is the redirect URI policy.
	Redirect RedirectPolicy
}

// Metadata is validated, normalised client metadata (RFC 7591 §2).
// Defaults are applied: grant_types ["authorization_code"],
// response_types ["code"], token_endpoint_auth_method client_secret_basic
// (none for documents), application_type inferred from the redirect URIs
// when absent ([InferApplicationType]).
type Metadata struct {
	RedirectURIs            []string
	TokenEndpointAuthMethod string
	GrantTypes              []string
	ResponseTypes           []string
	ApplicationType         string
	ClientName              string
	ClientURI               string
	LogoURI                 string
	Scope                   []string
	JWKS                    string // JSON text, "" if absent
	JWKSURI                 string
	SoftwareID              string
	// DPoPBound is dpop_bound_access_tokens (RFC 9449 §5.2): the client
	// always uses DPoP, and a token request without a proof is refused.
	DPoPBound bool
	// ClientSecret is the client_secret of an update request, to be
	// compared with the stored hash; never stored in Fields.
	ClientSecret string
	// Fields is every accepted member in wire form, defaults applied and
	// unknown members kept, without client_id and client_secret. It is
	// what is stored and echoed.
	Fields map[string]any
}

// JSON returns Fields as canonical JSON (sorted keys): equal metadata
// gives equal bytes, which is what de-duplication compares.
func (m *Metadata) JSON() string { return canonicalJSON(m.Fields) }

// SetScope replaces the scope (e.g. after the server's scope policy
// dropped or narrowed values) in both Scope and Fields.
func (m *Metadata) SetScope(scopes []string) {
	m.Scope = scopes
	if len(scopes) == 0 {
		delete(m.Fields, "scope")
		return
	}
	m.Fields["scope"] = strings.Join(scopes, " ")
}

// Confidential reports whether the client authenticates with a shared
// secret, i.e. gets a client_secret.
func (m *Metadata) Confidential() bool {
	return m.TokenEndpointAuthMethod == "client_secret_basic" || m.TokenEndpointAuthMethod == "client_secret_post"
}

// serverFields are issued by the server and never accepted from a client.
var serverFields = []string{"registration_access_token", "registration_client_uri", "client_id_issued_at", "client_secret_expires_at"}

// Parse validates a registration request, update request or metadata
// document (o.Kind) and returns the normalised metadata. Errors are
// [*Error]: invalid_redirect_uri for anything about redirect URIs,
// invalid_client_metadata for everything else, each naming the field.
// Members are matched case-sensitively and checked in a fixed order, so
// a request with several problems always gets the same error.
func Parse(body []byte, o Options) (*Metadata, error) {
	raw, err := decodeObject(body)
	if err != nil {
		return nil, metadataError("%s", err.Error())
	}
	if len(raw) > maxFields {
		return nil, metadataError("the metadata has %d members; at most %d are accepted", len(raw), maxFields)
	}
	p := parser{raw: raw}
	m := &Metadata{Fields: map[string]any{}}

	// Identity and server-issued members.
	switch o.Kind {
	case Register:
		for _, k := range append([]string{"client_id", "client_secret"}, serverFields...) {
			if _, ok := raw[k]; ok {
				return nil, metadataError("%s is issued by the server and must not be sent in a registration request", k)
			}
		}
	case Update:
		id, ok, err := p.str("client_id", maxURILen)
		if err != nil {
			return nil, err
		}
		if !ok || id != o.ClientID {
			return nil, metadataError("client_id must be sent in an update request and equal the client's client_id (RFC 7592 §2.2)")
		}
		for _, k := range serverFields {
			if _, ok := raw[k]; ok {
				return nil, metadataError("%s must not be sent in an update request (RFC 7592 §2.2)", k)
			}
		}
		if m.ClientSecret, _, err = p.str("client_secret", maxShortLen); err != nil {
			return nil, err
		}
	case Document:
		id, ok, err := p.str("client_id", maxURILen)
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, metadataError("the document has no client_id")
		}
		if id != o.ClientID {
			return nil, metadataError("the document's client_id %q does not equal its URL %q", truncate(id, 200), truncate(o.ClientID, 200))
		}
		for _, k := range []string{"client_secret", "client_secret_expires_at"} {
			if _, ok := raw[k]; ok {
				return nil, metadataError("a client metadata document must not contain %s", k)
			}
		}
	}
	p.done("client_id", "client_secret")
	if o.Kind != Document {
		// Software statements are not supported; RFC 7591 §2.3 lets the
		// server ignore them. It is not stored, so it is not echoed.
		p.done("software_statement")
	}

	// Redirect URIs and application type.
	redirects, _, err := p.strs("redirect_uris", maxRedirectURIs, 4*maxURILen, CodeInvalidRedirectURI) // RedirectPolicy.Check names a URI over maxURILen
	if err != nil {
		return nil, err
	}
	appType, hasAppType, err := p.str("application_type", maxShortLen)
	if err != nil {
		return nil, err
	}
	if hasAppType && appType != AppWeb && appType != AppNative {
		return nil, metadataError("application_type %q is not supported; use web or native", truncate(appType, 40))
	}
	if !hasAppType {
		appType = InferApplicationType(redirects)
	}
	m.ApplicationType = appType
	var uniq []string
	for _, r := range redirects {
		if err := o.Redirect.Check(r, appType); err != nil {
			return nil, err
		}
		if !slices.Contains(uniq, r) {
			uniq = append(uniq, r)
		}
	}
	m.RedirectURIs = uniq

	// Authentication method.
	method, hasMethod, err := p.str("token_endpoint_auth_method", maxShortLen)
	if err != nil {
		return nil, err
	}
	if !hasMethod {
		method = "client_secret_basic" // RFC 7591 §2
		if o.Kind == Document {
			method = "none" // CIMD: public unless private_key_jwt
		}
	}
	switch {
	case method == "client_secret_jwt":
		return nil, metadataError("token_endpoint_auth_method client_secret_jwt is not supported; use private_key_jwt, client_secret_basic, client_secret_post or none")
	case !slices.Contains(authMethods, method):
		return nil, metadataError("token_endpoint_auth_method %q is not supported; use none, client_secret_basic, client_secret_post or private_key_jwt", truncate(method, 60))
	case o.Kind == Document && method != "none" && method != "private_key_jwt":
		return nil, metadataError("a client metadata document must not use token_endpoint_auth_method %s: shared secrets cannot be published; use none or private_key_jwt", method)
	}
	m.TokenEndpointAuthMethod = method

	// Grant and response types.
	grants, hasGrants, err := p.strs("grant_types", 10, maxShortLen, CodeInvalidClientMetadata)
	if err != nil {
		return nil, err
	}
	if !hasGrants || len(grants) == 0 {
		grants = []string{"authorization_code"} // RFC 7591 §2
	}
	var gts []string
	for _, g := range grants {
		if !slices.Contains(grantTypes, g) {
			if o.Kind == Document {
				// A document serves every server the client talks to
				// (VS Code's lists the device grant): use what this
				// server supports, ignore the rest.
				continue
			}
			return nil, metadataError("grant type %q is not allowed; this server allows authorization_code, refresh_token and client_credentials", truncate(g, 80))
		}
		if !slices.Contains(gts, g) {
			gts = append(gts, g)
		}
	}
	if len(gts) == 0 {
		return nil, metadataError("the document lists no grant type this server supports (authorization_code, refresh_token, client_credentials)")
	}
	if slices.Contains(gts, "refresh_token") && !slices.Contains(gts, "authorization_code") {
		return nil, metadataError("grant type refresh_token needs authorization_code: refresh tokens are only issued with authorization codes")
	}
	if slices.Contains(gts, "client_credentials") && method == "none" {
		return nil, metadataError("grant type client_credentials needs a confidential client; token_endpoint_auth_method none cannot be used with it")
	}
	m.GrantTypes = gts
	responses, hasResponses, err := p.strs("response_types", 10, maxShortLen, CodeInvalidClientMetadata)
	if err != nil {
		return nil, err
	}
	if !hasResponses {
		responses = []string{"code"} // RFC 7591 §2: omitted means code
	}
	for _, r := range responses {
		if r != "code" && o.Kind != Document {
			return nil, metadataError("response type %q is not supported; only code is", truncate(r, 80))
		}
	}
	m.ResponseTypes = []string{"code"}
	if len(responses) == 0 && !slices.Contains(gts, "authorization_code") {
		// An explicit empty list is the client saying it uses no
		// response type at all (a client_credentials-only client):
		// registered and echoed as sent (RFC 7591 §2, §3.2.1), not
		// replaced with the default. With authorization_code the empty
		// list contradicts the grant, and code is registered instead
		// (RFC 7591 §2.1 lets the server make the two consistent).
		m.ResponseTypes = []string{}
	}
	if slices.Contains(gts, "authorization_code") && len(m.RedirectURIs) == 0 {
		if o.Kind == Document {
			return nil, redirectError("the document has no redirect_uris")
		}
		return nil, redirectError("redirect_uris is required for the authorization_code grant")
	}
	if o.Kind == Document && len(m.RedirectURIs) == 0 {
		return nil, redirectError("the document has no redirect_uris")
	}

	// Names and URIs shown to people.
	if m.ClientName, _, err = p.str("client_name", maxNameLen); err != nil {
		return nil, err
	}
	if o.Kind == Document && strings.TrimSpace(m.ClientName) == "" {
		return nil, metadataError("the document has no client_name")
	}
	for _, k := range []string{"client_uri", "logo_uri", "tos_uri", "policy_uri"} {
		v, ok, err := p.str(k, maxURILen)
		if err != nil {
			return nil, err
		}
		if ok {
			if err := checkWebURL(k, v); err != nil {
				return nil, err
			}
			m.Fields[k] = v
		}
	}
	m.ClientURI, _ = m.Fields["client_uri"].(string)
	m.LogoURI, _ = m.Fields["logo_uri"].(string)
	contacts, hasContacts, err := p.strs("contacts", maxContacts, maxShortLen, CodeInvalidClientMetadata)
	if err != nil {
		return nil, err
	}
	if hasContacts && len(contacts) > 0 {
		m.Fields["contacts"] = contacts
	}
	if m.SoftwareID, _, err = p.str("software_id", maxShortLen); err != nil {
		return nil, err
	}
	softwareVersion, _, err := p.str("software_version", maxShortLen)
	if err != nil {
		return nil, err
	}

	// Scope (syntax only; the server's scope policy narrows it).
	scope, _, err := p.str("scope", maxScopeLen)
	if err != nil {
		return nil, err
	}
	for _, sc := range strings.Fields(scope) {
		if !validScopeToken(sc) {
			return nil, metadataError("scope contains the invalid value %q", truncate(sc, 80))
		}
		if !slices.Contains(m.Scope, sc) {
			m.Scope = append(m.Scope, sc)
		}
	}
	if strings.ContainsAny(scope, "\t\r\n") {
		return nil, metadataError("scope values must be separated by single spaces")
	}

	// Keys.
	jwksURI, hasJWKSURI, err := p.str("jwks_uri", maxURILen)
	if err != nil {
		return nil, err
	}
	jwksRaw, hasJWKS := raw["jwks"]
	p.done("jwks")
	if hasJWKS && hasJWKSURI {
		return nil, metadataError("jwks and jwks_uri must not both be present (RFC 7591 §2)")
	}
	if hasJWKS {
		js, err := checkJWKS(jwksRaw)
		if err != nil {
			return nil, err
		}
		m.JWKS = js
		m.Fields["jwks"] = jwksRaw
	}
	if hasJWKSURI {
		if o.Kind != Document {
			return nil, metadataError("jwks_uri is not supported for registered clients: send the public keys in jwks")
		}
		if u, err := url.Parse(jwksURI); err != nil || u.Scheme != "https" || u.Host == "" || u.User != nil || strings.Contains(jwksURI, "#") {
			return nil, metadataError("jwks_uri %q must be an absolute https URL", truncate(jwksURI, 200))
		}
		m.JWKSURI = jwksURI
	}
	if method == "private_key_jwt" && m.JWKS == "" && m.JWKSURI == "" {
		if o.Kind == Document {
			return nil, metadataError("token_endpoint_auth_method private_key_jwt needs the client's public keys in jwks or jwks_uri")
		}
		return nil, metadataError("token_endpoint_auth_method private_key_jwt needs the client's public keys in jwks")
	}

	// DPoP (RFC 9449 §5.2): a boolean, false when absent.
	if v, ok := raw["dpop_bound_access_tokens"]; ok {
		b, isBool := v.(bool)
		if !isBool {
			return nil, metadataError("dpop_bound_access_tokens must be true or false (RFC 9449 §5.2)")
		}
		m.DPoPBound = b
		m.Fields["dpop_bound_access_tokens"] = b
		p.done("dpop_bound_access_tokens")
	}

	// Everything else is kept as sent.
	for _, k := range p.rest() {
		if len(k) > maxFieldNameLen || k == "" || !utf8.ValidString(k) {
			return nil, metadataError("the member name %q is empty or longer than %d bytes", truncate(k, 40), maxFieldNameLen)
		}
		m.Fields[k] = raw[k]
	}

	// The accepted, normalised values.
	f := m.Fields
	f["redirect_uris"] = nonNil(m.RedirectURIs)
	f["token_endpoint_auth_method"] = m.TokenEndpointAuthMethod
	f["grant_types"] = m.GrantTypes
	f["response_types"] = m.ResponseTypes
	f["application_type"] = m.ApplicationType
	setIf(f, "client_name", m.ClientName)
	setIf(f, "software_id", m.SoftwareID)
	setIf(f, "software_version", softwareVersion)
	setIf(f, "jwks_uri", m.JWKSURI)
	m.SetScope(m.Scope)
	return m, nil
}

// parser reads typed members of a decoded object and remembers which it
// has handled, so the rest can be kept as unknown members.
type parser struct {
	raw     map[string]any
	handled map[string]bool
}

func (p *parser) done(keys ...string) {
	if p.handled == nil {
		p.handled = map[string]bool{}
	}
	for _, k := range keys {
		p.handled[k] = true
	}
}

// rest returns the members not handled, sorted.
func (p *parser) rest() []string {
	var ks []string
	for k := range p.raw {
		if !p.handled[k] {
			ks = append(ks, k)
		}
	}
	sort.Strings(ks)
	return ks
}

// str reads an optional string member of at most max bytes. JSON null
// counts as absent (RFC 7592 §2.2: null means "delete").
func (p *parser) str(key string, max int) (string, bool, error) {
	p.done(key)
	v, ok := p.raw[key]
	if !ok || v == nil {
		return "", false, nil
	}
	s, isStr := v.(string)
	if !isStr {
		return "", false, metadataError("%s must be a string", key)
	}
	if len(s) > max {
		return "", false, metadataError("%s is longer than %d bytes", key, max)
	}
	if key == "client_name" && hasControl(s) {
		return "", false, metadataError("client_name must not contain control characters")
	}
	if key != "client_secret" { // never described, even by a code point
		if err := checkFormatChars(key, s, CodeInvalidClientMetadata); err != nil {
			return "", false, err
		}
	}
	return s, true, nil
}

// strs reads an optional array of strings with at most maxN elements of
// at most maxLen bytes each; code is the error code for a bad value.
func (p *parser) strs(key string, maxN, maxLen int, code string) ([]string, bool, error) {
	p.done(key)
	v, ok := p.raw[key]
	if !ok || v == nil {
		return nil, false, nil
	}
	fail := func(format string, args ...any) error {
		return &Error{Code: code, Description: fmt.Sprintf(format, args...)}
	}
	arr, isArr := v.([]any)
	if !isArr {
		return nil, false, fail("%s must be an array of strings", key)
	}
	if len(arr) > maxN {
		return nil, false, fail("%s has %d entries; at most %d are accepted", key, len(arr), maxN)
	}
	out := make([]string, 0, len(arr))
	for _, e := range arr {
		s, isStr := e.(string)
		if !isStr {
			return nil, false, fail("%s must be an array of strings", key)
		}
		if len(s) > maxLen {
			return nil, false, fail("an entry of %s is longer than %d bytes", key, maxLen)
		}
		if err := checkFormatChars(key, s, code); err != nil {
			return nil, false, err
		}
		out = append(out, s)
	}
	return out, true, nil
}

// checkWebURL checks a URL shown to people (client_uri, logo_uri, ...):
// absolute http or https, no user information.
func checkWebURL(key, v string) error {
	u, err := url.Parse(v)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil || hasSpaceOrControl(v) {
		return metadataError("%s %q must be an absolute https URL", key, truncate(v, 200))
	}
	return nil
}

// checkJWKS checks a jwks member: an object with 1 to maxKeys public keys,
// each with a kty. Private and symmetric keys are refused: a client that
// sends one has leaked it, and a symmetric key would be a shared secret.
func checkJWKS(v any) (string, error) {
	obj, ok := v.(map[string]any)
	if !ok {
		return "", metadataError("jwks must be a JSON Web Key Set object")
	}
	keys, ok := obj["keys"].([]any)
	if !ok || len(keys) == 0 {
		return "", metadataError("jwks must have a non-empty keys array")
	}
	if len(keys) > maxKeys {
		return "", metadataError("jwks has %d keys; at most %d are accepted", len(keys), maxKeys)
	}
	for i, k := range keys {
		key, ok := k.(map[string]any)
		if !ok {
			return "", metadataError("jwks key %d is not an object", i)
		}
		kty, _ := key["kty"].(string)
		switch kty {
		case "EC", "RSA", "OKP":
		case "oct":
			return "", metadataError("jwks key %d is a symmetric (oct) key; only public keys are accepted", i)
		default:
			return "", metadataError("jwks key %d has no supported kty (EC, RSA or OKP)", i)
		}
		for _, priv := range []string{"d", "p", "q", "dp", "dq", "qi", "k"} {
			if _, ok := key[priv]; ok {
				return "", metadataError("jwks key %d contains the private member %q; send public keys only", i, priv)
			}
		}
	}
	s := canonicalJSON(obj)
	if len(s) > maxJWKSBytes {
		return "", metadataError("jwks is larger than %d bytes", maxJWKSBytes)
	}
	return s, nil
}

// CheckJWKSDocument validates a JWK Set fetched from a jwks_uri with the
// rules of the jwks member and returns it as canonical JSON.
func CheckJWKSDocument(body []byte) (string, error) {
	obj, err := decodeObject(body)
	if err != nil {
		return "", metadataError("the JWK Set: %s", err.Error())
	}
	return checkJWKS(obj)
}

// validScopeToken reports whether s is a scope-token (RFC 6749 §3.3).
func validScopeToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x21 || c == 0x22 || c == 0x5c || c > 0x7e {
			return false
		}
	}
	return true
}

// InvisibleChar returns the first character of s that does not show as
// itself (safetext.Shown): format characters (Unicode category Cf: bidi
// controls — U+202E shows "Evil\u202egnp.exe" as "Evilexe.png" — zero-width
// spaces and joiners, the byte order mark), spaces other than U+0020,
// fillers and other default-ignorable characters, controls. In a name or
// address shown to a person they only serve to disguise it. The same rule
// decides what the pages strip and what the CLI escapes.
func InvisibleChar(s string) (rune, bool) {
	for _, r := range s {
		if !safetext.Shown(r) {
			return r, true
		}
	}
	return 0, false
}

// CodePoint writes r as U+XXXX, how an error names a character that
// cannot be shown.
func CodePoint(r rune) string { return fmt.Sprintf("U+%04X", r) }

// checkFormatChars refuses a format character in the member key (Parse
// applies it to every string member except client_secret: client_name,
// client_uri, logo_uri, tos_uri, policy_uri, contacts, software_id,
// redirect_uris, ... are all shown to people by someone), naming the
// member and the code point.
func checkFormatChars(key, s, code string) error {
	r, ok := InvisibleChar(s)
	if !ok {
		return nil
	}
	return &Error{Code: code, Description: fmt.Sprintf("%s contains the invisible character %s; characters that show as nothing or reorder text (bidi overrides, zero-width spaces, fillers, spaces other than U+0020) can make a name or address look like another and are not accepted", key, CodePoint(r))}
}

func hasControl(s string) bool {
	for _, r := range s {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return true
		}
	}
	return false
}

func setIf(m map[string]any, k, v string) {
	if v != "" {
		m[k] = v
	} else {
		delete(m, k)
	}
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// DecodeFields decodes stored metadata JSON (Client.Metadata) for echoing;
// an empty or unreadable value gives an empty map.
func DecodeFields(s string) map[string]any {
	m := map[string]any{}
	if s == "" {
		return m
	}
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil || m == nil {
		return map[string]any{}
	}
	return m
}
