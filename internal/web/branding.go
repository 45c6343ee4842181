package web

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// MaxLogoURLBytes bounds Options.LogoURL. A data: logo is inlined in every
// page, so it must stay small; an https URL is far below it.
const MaxLogoURLBytes = 32 << 10

// logoTypes are the image types a data: logo may have. SVG is safe in an
// <img>: browsers run no script and load nothing from an image document.
var logoTypes = []string{"image/png", "image/jpeg", "image/gif", "image/webp", "image/svg+xml"}

// CheckLogoURL reports whether s may be the logo of the pages, and
// returns the origin the Content-Security-Policy must allow for it. s is
// either an https URL with a DNS name or IPv4 address, no user
// information and no fragment (the origin is returned: "https://host" or
// "https://host:port"), or a base64 data: URL of a PNG, JPEG, GIF, WebP or
// SVG image (no origin: data: images are allowed already). Anything else
// is refused, so that the logo can never be a script, a page or a
// credential-bearing URL, and the origin added to img-src is exactly one
// host.
func CheckLogoURL(s string) (origin string, err error) {
	if len(s) > MaxLogoURLBytes {
		return "", fmt.Errorf("is %d bytes; the limit is %d (host a large image and give its https URL)", len(s), MaxLogoURLBytes)
	}
	if rest, ok := cutPrefixFold(s, "data:"); ok {
		mediaType, data, ok := strings.Cut(rest, ";base64,")
		if !ok {
			return "", errors.New(`a data: logo must be base64, such as "data:image/png;base64,iVBOR…"`)
		}
		if !containsFold(logoTypes, mediaType) {
			return "", fmt.Errorf("a data: logo must be one of %s, not %q", strings.Join(logoTypes, ", "), mediaType)
		}
		if _, err := base64.StdEncoding.DecodeString(data); err != nil {
			return "", errors.New("the data: logo's base64 does not decode")
		}
		return "", nil
	}
	u, err := url.Parse(s)
	switch {
	case err != nil:
		return "", errors.New("is not a URL")
	case u.Scheme != "https" || u.Opaque != "" || u.Host == "":
		return "", errors.New("must be an https URL or a base64 data:image/… URL")
	case u.User != nil:
		return "", errors.New("must not contain a user name or password")
	case u.Fragment != "" || strings.Contains(s, "#"):
		return "", errors.New("must not have a fragment")
	case !plainHost(u.Hostname()) || !digits(u.Port()):
		return "", fmt.Errorf("host %q must be a DNS name or an IPv4 address", u.Host)
	}
	return "https://" + strings.ToLower(u.Host), nil
}

// plainHost reports a DNS name or IPv4 address: letters, digits, dots
// and hyphens, nothing that could end or extend a Content-Security-Policy
// source expression. (CSP has no syntax for IPv6 literals.)
func plainHost(h string) bool {
	if h == "" {
		return false
	}
	for _, r := range h {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.', r == '-':
		default:
			return false
		}
	}
	return true
}

func digits(s string) bool {
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

func cutPrefixFold(s, prefix string) (string, bool) {
	if len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix) {
		return s[len(prefix):], true
	}
	return s, false
}

func containsFold(list []string, s string) bool {
	for _, v := range list {
		if strings.EqualFold(v, s) {
			return true
		}
	}
	return false
}

// contentSecurityPolicy is [ContentSecurityPolicy] with imgOrigin, if not
// empty, added to img-src: the one origin a remote logo is loaded from.
func contentSecurityPolicy(imgOrigin string) string {
	if imgOrigin == "" {
		return ContentSecurityPolicy
	}
	return strings.Replace(ContentSecurityPolicy, "img-src 'self' data:", "img-src 'self' data: "+imgOrigin, 1)
}
