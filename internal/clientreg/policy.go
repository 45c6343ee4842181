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
