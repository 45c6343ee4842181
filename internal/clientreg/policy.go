package clientreg

import (
	"fmt"
	"net/url"
	"strings"
)

// forbiddenSchemes can run code or read local files in a browser or an
// OS handler: never a redirect target, whatever the policy says.
var forbiddenSchemes = map[string]bool{
	"javascript": true, "data": true, "file": true, "vbscript": true, "blob": true, "about": true,
}

// CheckRedirectURI validates a redirect URI at registration time:
//   - https URIs without fragment, user information or wildcards;
//   - http only on loopback hosts (127.0.0.1, [::1], localhost), which then
//     match any port at authorization time (RFC 8252 §7.3);
//   - private-use schemes (RFC 8252 §7.1) such as cursor:// or claude://
//     for native apps;
//   - never javascript:, data:, file:, vbscript:, blob: or about:.
func CheckRedirectURI(s string) error {
	if s == "" {
		return fmt.Errorf("redirect URI is empty")
	}
	if strings.Contains(s, "#") {
		return fmt.Errorf("redirect URI %q must not contain a fragment", s)
	}
	if strings.Contains(s, "*") {
		return fmt.Errorf("redirect URI %q must not contain a wildcard: redirect URIs are matched exactly", s)
	}
	u, err := url.Parse(s)
	if err != nil || u.Scheme == "" {
		return fmt.Errorf("redirect URI %q is not an absolute URI", s)
	}
	scheme := strings.ToLower(u.Scheme)
	if forbiddenSchemes[scheme] {
		return fmt.Errorf("redirect URI %q uses the %s: scheme, which is never allowed", s, scheme)
	}
	if u.User != nil {
		return fmt.Errorf("redirect URI %q must not contain user information", s)
	}
	switch scheme {
	case "https":
		if u.Host == "" {
			return fmt.Errorf("redirect URI %q has no host", s)
		}
	case "http":
		if !IsLoopbackRedirect(s) {
			return fmt.Errorf("redirect URI %q uses http on a host that is not loopback: use https, or http://127.0.0.1, http://[::1] or http://localhost", s)
		}
	default:
		// A private-use scheme for a native app. Opaque forms ("app:cb")
		// and empty ones are refused: clients use scheme://host/path.
		if u.Opaque != "" {
			return fmt.Errorf("redirect URI %q must have the form scheme://authority/path", s)
		}
	}
	return nil
}

// Application types (OpenID Connect Registration §2, SEP-837).
const (
	AppWeb    = "web"
	AppNative = "native"
)

// DefaultPrivateUseSchemes are the private-use redirect URI schemes of
// well-known MCP clients that do not use reverse-domain schemes: Cursor
// (cursor://anysphere.cursor-mcp/oauth/callback), Claude desktop
// (claude://claude.ai/mcp-auth-callback/sdk), VS Code and its Insiders
// build, and Windsurf. Native clients may register them when
// [RedirectPolicy.PrivateUseSchemes] is nil.
var DefaultPrivateUseSchemes = []string{"claude", "cursor", "vscode", "vscode-insiders", "windsurf"}

// RedirectPolicy decides which redirect URIs a dynamically registered
// client (RFC 7591) or a client metadata document may use. Its zero value
// is the documented default. Whatever it says, these are always refused:
// javascript:, data:, file:, vbscript:, blob: and about: URIs, fragments,
// wildcards, user information, and http on a host that is not loopback.
type RedirectPolicy struct {
	// PrivateUseSchemes lists private-use URI schemes (RFC 8252 §7.1) that
	// native clients may register besides reverse-domain ones, compared
	// case-insensitively. nil means DefaultPrivateUseSchemes; an empty,
	// non-nil list allows none.
	PrivateUseSchemes []string
	// NoReverseDomainSchemes refuses private-use schemes that contain a
	// dot (com.example.app:/callback). By default native clients may use
	// them: RFC 8252 §7.1 recommends exactly that form, and a scheme
	// derived from a domain is unlikely to collide with another app.
	NoReverseDomainSchemes bool
}

func (p RedirectPolicy) schemes() []string {
	if p.PrivateUseSchemes == nil {
		return DefaultPrivateUseSchemes
	}
	return p.PrivateUseSchemes
}

// redirectError is an invalid_redirect_uri error naming the URI.
func redirectError(format string, args ...any) *Error {
	return &Error{Code: CodeInvalidRedirectURI, Description: fmt.Sprintf(format, args...)}
}

// Check validates one redirect URI of a client with the given
// application type (web or native) at registration time:
//   - https: any client, with a host and no fragment, user information
//     or wildcard;
//   - http: only on a loopback host (127.0.0.1, [::1], localhost) and only
//     for native clients; such URIs match any port (RFC 8252 §7.3);
//   - any other scheme: a private-use scheme for native clients, allowed
//     when it contains a dot (unless NoReverseDomainSchemes) or is listed
//     in PrivateUseSchemes, in the form scheme:/path or scheme://host/path.
//
// Errors are [*Error] with code invalid_redirect_uri and name the URI.
func (p RedirectPolicy) Check(s, appType string) error {
	q := truncate(s, 200)
	if s == "" {
		return redirectError("a redirect URI is empty")
	}
	if len(s) > maxURILen {
		return redirectError("the redirect URI %q is longer than %d bytes", q, maxURILen)
	}
	if hasSpaceOrControl(s) {
		return redirectError("the redirect URI %q contains spaces or control characters", q)
	}
	if r, ok := InvisibleChar(s); ok {
		return redirectError("the redirect URI %q contains the invisible character %s", q, CodePoint(r))
	}
	if strings.Contains(s, "#") {
		return redirectError("the redirect URI %q must not contain a fragment", q)
	}
	if strings.Contains(s, "*") {
		return redirectError("the redirect URI %q must not contain a wildcard: redirect URIs are matched exactly", q)
	}
	u, err := url.Parse(s)
	if err != nil || u.Scheme == "" {
		return redirectError("the redirect URI %q is not an absolute URI", q)
	}
	scheme := strings.ToLower(u.Scheme)
	if forbiddenSchemes[scheme] {
		return redirectError("the redirect URI %q uses the %s: scheme, which is never allowed", q, scheme)
	}
	if u.User != nil {
		return redirectError("the redirect URI %q must not contain user information", q)
	}
	switch scheme {
	case "https":
		if u.Host == "" || u.Hostname() == "" {
			return redirectError("the redirect URI %q has no host", q)
		}
		return nil
	case "http":
		if !IsLoopbackRedirect(s) {
			return redirectError("the redirect URI %q uses http on a host that is not loopback: use https, or http://127.0.0.1, http://[::1] or http://localhost for a native app", q)
		}
		if appType != AppNative {
			return redirectError("the redirect URI %q is a loopback URI, which only native apps may use: register with \"application_type\": \"native\"", q)
		}
		return nil
	}
	if appType != AppNative {
		return redirectError("the redirect URI %q uses the private-use scheme %s:, which only native apps may use: register with \"application_type\": \"native\"", q, scheme)
	}
	if u.Opaque != "" {
		return redirectError("the redirect URI %q must have the form %s:/path or %s://host/path", q, scheme, scheme)
	}
	if strings.Contains(scheme, ".") && !p.NoReverseDomainSchemes {
		return nil
	}
	for _, allowed := range p.schemes() {
		if strings.EqualFold(allowed, scheme) {
			return nil
		}
	}
	return redirectError("the redirect URI %q uses the private-use scheme %s:, which this server does not allow; allowed: %s", q, scheme, p.describe())
}

// describe lists the private-use schemes p allows, for error messages.
func (p RedirectPolicy) describe() string {
	var parts []string
	if !p.NoReverseDomainSchemes {
		parts = append(parts, "reverse-domain schemes such as com.example.app")
	}
	if s := p.schemes(); len(s) > 0 {
		parts = append(parts, strings.Join(s, ", "))
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, "; ")
}

// InferApplicationType is the rule for a registration without
// application_type (SEP-837 says clients MUST send it; many do not): a
// client with any loopback http or private-use redirect URI is native,
// any other is web. The chosen type is echoed in the response, so the
// client sees it.
func InferApplicationType(redirectURIs []string) string {
	for _, r := range redirectURIs {
		u, err := url.Parse(r)
		if err != nil {
			continue
		}
		if s := strings.ToLower(u.Scheme); s != "https" {
			return AppNative
		}
	}
	return AppWeb
}

// hasSpaceOrControl reports whether s contains ASCII whitespace or
// control characters, which no URI may contain unencoded.
func hasSpaceOrControl(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c == 0x7f {
			return true
		}
	}
	return false
}
