package rs

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
)

// wellKnownPRM is the well-known URI suffix of RFC 9728 §3.
const wellKnownPRM = "/.well-known/oauth-protected-resource"

// CanonicalResource returns the canonical form of a resource URI (RFC 8707
// §2, the MCP "canonical server URI") for comparison: scheme and host in
// lower case, a default port (80 for http, 443 for https) removed, and a
// path of just "/" removed, because JavaScript's URL turns
// "https://mcp.example.com" into "https://mcp.example.com/". Other paths,
// the query and percent-encoding are kept as they are: "/mcp/" and "/mcp"
// are different resources. The URI must be absolute http or https without
// a fragment or user information.
func CanonicalResource(resource string) (string, error) {
	u, err := url.Parse(resource)
	if err != nil {
		return "", fmt.Errorf("rs: resource %q: %w", resource, err)
	}
	scheme := strings.ToLower(u.Scheme)
	switch {
	case scheme != "http" && scheme != "https":
		return "", fmt.Errorf("rs: resource %q: scheme must be http or https", resource)
	case u.Host == "":
		return "", fmt.Errorf("rs: resource %q: no host", resource)
	case u.User != nil:
		return "", fmt.Errorf("rs: resource %q: user information is not allowed", resource)
	case u.Fragment != "" || strings.Contains(resource, "#"):
		return "", fmt.Errorf("rs: resource %q: a fragment is not allowed (RFC 8707 §2)", resource)
	}
	host := strings.ToLower(u.Host)
	if h, port, err := net.SplitHostPort(host); err == nil {
		if (scheme == "http" && port == "80") || (scheme == "https" && port == "443") {
			host = h
			if strings.Contains(h, ":") {
				host = "[" + h + "]"
			}
		}
	}
	path := u.EscapedPath()
	if path == "/" {
		path = ""
	}
	out := scheme + "://" + host + path
	if u.RawQuery != "" || u.ForceQuery {
		out += "?" + u.RawQuery
	}
	return out, nil
}

// MetadataURL returns where the protected resource metadata of resource is
// served (RFC 9728 §3.1): the well-known suffix inserted between host and
// path, so "https://mcp.example.com/mcp" has
// "https://mcp.example.com/.well-known/oauth-protected-resource/mcp". It is
// the resource_metadata URL to put in challenges ([Options.ResourceMetadataURL]).
func MetadataURL(resource string) (string, error) {
	u, err := parseResource(resource)
	if err != nil {
		return "", err
	}
	path := strings.TrimSuffix(u.EscapedPath(), "/")
	return u.Scheme + "://" + u.Host + wellKnownPRM + path, nil
}

// MetadataPath is the path part of [MetadataURL]: what to register on a
// ServeMux.
func MetadataPath(resource string) (string, error) {
	u, err := parseResource(resource)
	if err != nil {
		return "", err
	}
	return wellKnownPRM + strings.TrimSuffix(u.Path, "/"), nil
}

// parseResource parses and checks a configured resource URI.
func parseResource(resource string) (*url.URL, error) {
	if _, err := CanonicalResource(resource); err != nil {
		return nil, err
	}
	u, err := url.Parse(resource)
	if err != nil {
		return nil, err
	}
	if u.RawQuery != "" {
		return nil, errors.New("rs: a resource with a query has no well-known metadata location (RFC 9728 §3.1)")
	}
	return u, nil
}

// sameResource reports whether aud names the resource whose configured
// form is raw and canonical form canon, allocating only when a cheap
// comparison fails.
func sameResource(aud, raw, canon string) bool {
	if aud == raw || aud == canon {
		return true
	}
	c, err := CanonicalResource(aud)
	return err == nil && c == canon
}
