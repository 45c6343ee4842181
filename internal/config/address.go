package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"regexp"
	"strconv"
	"strings"
)

// hostName is a DNS host name: dot-separated labels of letters, digits
// and hyphens.
var hostName = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$`)

// CheckListen checks a listen address as net.Listen("tcp", addr) takes
// it: host:port, where host is empty (every interface), an IP address
// (IPv6 in brackets) or a host name, and port is a number from 0 to 65535
// (0 picks a free one) or a service name known without the network
// (/etc/services, such as "https"). It resolves nothing.
func CheckListen(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		var ae *net.AddrError
		if errors.As(err, &ae) {
			err = errors.New(ae.Err)
		}
		return fmt.Errorf("must be host:port, such as 127.0.0.1:8080 or [::1]:8080 (%v)", err)
	}
	if host != "" && net.ParseIP(strings.SplitN(host, "%", 2)[0]) == nil && !hostName.MatchString(host) {
		return fmt.Errorf("host %q is not an IP address or a host name", host)
	}
	return checkPort(port)
}

// checkPort checks a listen port: 0–65535 or a service name.
func checkPort(port string) error {
	if port == "" {
		return errors.New("the port is missing (such as :8080)")
	}
	if strings.Trim(port, "0123456789") == "" {
		if n, err := strconv.Atoi(port); err != nil || n > 65535 {
			return fmt.Errorf("port %s is out of range (0 to 65535)", port)
		}
		return nil
	}
	if _, err := net.LookupPort("tcp", port); err != nil {
		return fmt.Errorf("port %q is not a number from 0 to 65535 or a known service name", port)
	}
	return nil
}

// urlPortProblem is what is wrong with an http(s) URL's host or port, or
// "". url.Parse accepts any digits as a port, and an empty host name
// before one.
func urlPortProblem(u *url.URL) string {
	if u.Hostname() == "" {
		return "the URL has no host name"
	}
	p := u.Port()
	if p == "" {
		return ""
	}
	if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
		return fmt.Sprintf("port %s is out of range (1 to 65535)", p)
	}
	return ""
}
