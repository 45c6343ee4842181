package clientreg

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Fetch defaults (CIMD §6.5/§6.6 and the MCP security best practices).
const (
	DefaultConnectTimeout = 2 * time.Second
	DefaultFetchTimeout   = 5 * time.Second
	// DefaultMaxDocumentBytes is the 5 KB cap CIMD recommends.
	DefaultMaxDocumentBytes = 5 << 10
)

// FetchOptions configures a [Fetcher]. Zero values take the defaults.
type FetchOptions struct {
	// AllowHosts names hosts (host names or IP literals, compared
	// case-insensitively, without port) whose addresses are not checked
	// against the special-use ranges. It exists for `gatehouse dev` and
	// tests that serve documents on loopback; production configurations
	// must leave it empty.
	AllowHosts []string
	// RootCAs verifies the servers' certificates; nil means the system pool.
	RootCAs *x509.CertPool
	// LookupNetIP resolves host names; nil means net.DefaultResolver. Tests
	// inject a resolver here to make a name resolve to a special-use
	// address. Resolved addresses are still checked when each connection
	// is made, so a resolver cannot smuggle one through.
	LookupNetIP func(ctx context.Context, network, host string) ([]netip.Addr, error)
	// ConnectTimeout bounds each TCP connect; default 2s.
	ConnectTimeout time.Duration
	// Timeout bounds the whole request, body included; default 5s.
	Timeout time.Duration
	// MaxBytes caps the response body; default 5 KiB.
	MaxBytes int64
}

// Fetcher makes SSRF-safe GET requests for client metadata documents:
//   - https only, no user information in the URL, no proxy;
//   - every connection is checked at connect time (net.Dialer
//     ControlContext) against the special-use ranges of [SpecialUse], so
//     neither DNS rebinding nor a name that resolves to 127.0.0.1 helps;
//   - redirects are never followed: a 3xx is an error, as is any status
//     other than 200;
//   - the body is capped, connects and the whole request time out;
//   - keep-alives are off, so every request gets a freshly checked
//     connection.
type Fetcher struct {
	client   *http.Client
	allow    map[string]bool
	lookup   func(ctx context.Context, network, host string) ([]netip.Addr, error)
	connect  time.Duration
	maxBytes int64
}

// NewFetcher returns a Fetcher for o.
func NewFetcher(o FetchOptions) *Fetcher {
	f := &Fetcher{
		allow:    map[string]bool{},
		lookup:   o.LookupNetIP,
		connect:  o.ConnectTimeout,
		maxBytes: o.MaxBytes,
	}
	for _, h := range o.AllowHosts {
		f.allow[strings.ToLower(strings.Trim(h, "[]"))] = true
	}
	if f.connect <= 0 {
		f.connect = DefaultConnectTimeout
	}
	if f.maxBytes <= 0 {
		f.maxBytes = DefaultMaxDocumentBytes
	}
	timeout := o.Timeout
	if timeout <= 0 {
		timeout = DefaultFetchTimeout
	}
	tr := &http.Transport{
		Proxy:                  nil, // an environment proxy would make the dial check see the proxy, not the target
		DialContext:            f.dial,
		TLSClientConfig:        &tls.Config{RootCAs: o.RootCAs, MinVersion: tls.VersionTLS12},
		TLSHandshakeTimeout:    timeout,
		ResponseHeaderTimeout:  timeout,
		MaxResponseHeaderBytes: 16 << 10,
		DisableKeepAlives:      true,
		DisableCompression:     true,
	}
	f.client = &http.Client{
		Transport: tr,
		Timeout:   timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
	return f
}

// FetchResult is a fetched document and what its Cache-Control said.
type FetchResult struct {
	Body []byte
	// MaxAge is the Cache-Control max-age; HasMaxAge says whether one was sent.
	MaxAge    time.Duration
	HasMaxAge bool
	// NoStore is true for Cache-Control no-store or no-cache.
	NoStore bool
}

// RefusedError is returned when a connection would reach a special-use
// address. Its message names the address and its range.
type RefusedError struct {
	Host string
	Addr netip.Addr
	Why  string
}

func (e *RefusedError) Error() string {
	if !e.Addr.IsValid() {
		return fmt.Sprintf("the address of %s is %s: refused to prevent server-side request forgery", e.Host, e.Why)
	}
	if a, err := netip.ParseAddr(e.Host); err == nil && a == e.Addr {
		return fmt.Sprintf("%s is a %s address: refused to prevent server-side request forgery", e.Addr, e.Why)
	}
	return fmt.Sprintf("%s resolves to %s, a %s address: refused to prevent server-side request forgery", e.Host, e.Addr, e.Why)
}

// Fetch GETs rawURL with the rules of [Fetcher]. Errors say plainly what
// was refused or failed, with the addresses, statuses and transport
// errors involved (never a response body): they are for the server's log.
// Passed on to whoever named the URL, they would tell internal DNS
// answers, closed ports and other services apart, for any host.
func (f *Fetcher) Fetch(ctx context.Context, rawURL string) (FetchResult, error) {
	return f.FetchLimit(ctx, rawURL, f.maxBytes)
}

// FetchLimit is [Fetcher.Fetch] with another body cap (e.g. for a JWK
// Set, which can exceed 5 KiB with RSA keys).
func (f *Fetcher) FetchLimit(ctx context.Context, rawURL string, maxBytes int64) (FetchResult, error) {
	u, err := url.Parse(rawURL)
	if err != nil || u.Host == "" {
		return FetchResult{}, fmt.Errorf("%q is not an absolute URL", rawURL)
	}
	if u.Scheme != "https" {
		return FetchResult{}, fmt.Errorf("%q is not an https URL", rawURL)
	}
	if u.User != nil {
		return FetchResult{}, fmt.Errorf("%q contains user information", rawURL)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return FetchResult{}, fmt.Errorf("%q cannot be requested", rawURL)
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "Gatehouse-CIMD-Fetcher/1")
	resp, err := f.client.Do(req)
	if err != nil {
		return FetchResult{}, describeFetchError(rawURL, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 && resp.StatusCode < 400 {
		return FetchResult{}, fmt.Errorf("%s answered with a redirect (status %d to %q); redirects are not followed", rawURL, resp.StatusCode, truncate(resp.Header.Get("Location"), 200))
	}
	if resp.StatusCode != http.StatusOK {
		return FetchResult{}, fmt.Errorf("%s answered with status %d; only 200 is accepted", rawURL, resp.StatusCode)
	}
	if resp.ContentLength > maxBytes {
		return FetchResult{}, fmt.Errorf("%s is larger than %d bytes", rawURL, maxBytes)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBytes+1))
	if err != nil {
		return FetchResult{}, describeFetchError(rawURL, err)
	}
	if int64(len(body)) > maxBytes {
		return FetchResult{}, fmt.Errorf("%s is larger than %d bytes", rawURL, maxBytes)
	}
	res := FetchResult{Body: body}
	res.MaxAge, res.HasMaxAge, res.NoStore = parseCacheControl(resp.Header.Values("Cache-Control"))
	return res, nil
}

// describeFetchError turns a transport error into a message that says
// what happened first, then the transport's own error for the log.
func describeFetchError(rawURL string, err error) error {
	var re *RefusedError
	if errors.As(err, &re) {
		return fmt.Errorf("fetch %s: %w", rawURL, re)
	}
	var ne net.Error
	if errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) {
		return fmt.Errorf("fetch %s: timed out: %w", rawURL, err)
	}
	var ce *tls.CertificateVerificationError
	if errors.As(err, &ce) {
		return fmt.Errorf("fetch %s: the server's TLS certificate is not valid for it: %w", rawURL, err)
	}
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) {
		return fmt.Errorf("fetch %s: the host name could not be resolved: %w", rawURL, err)
	}
	var opErr *net.OpError
	if errors.As(err, &opErr) && opErr.Op == "dial" {
		return fmt.Errorf("fetch %s: could not connect to the server: %w", rawURL, err)
	}
	// Anything else: TLS alerts, malformed responses, resets.
	return fmt.Errorf("fetch %s: the request failed: %w", rawURL, err)
}

// dial connects to addr, refusing special-use addresses at connect time.
func (f *Fetcher) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	port, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil {
		return nil, fmt.Errorf("bad port %q", portStr)
	}
	allowed := f.allow[strings.ToLower(host)]
	d := &net.Dialer{
		Timeout: f.connect,
		ControlContext: func(_ context.Context, _, address string, _ syscall.RawConn) error {
			if allowed {
				return nil
			}
			ap, err := netip.ParseAddrPort(address)
			if err != nil {
				return &RefusedError{Host: host, Why: "unparseable"}
			}
			if why, bad := SpecialUse(ap.Addr()); bad {
				return &RefusedError{Host: host, Addr: ap.Addr(), Why: why}
			}
			return nil
		},
	}
	// An IP literal, or no resolver hook: the dialer resolves, and the
	// control function checks each address it tries.
	if _, err := netip.ParseAddr(host); err == nil || f.lookup == nil {
		return d.DialContext(ctx, network, addr)
	}
	ips, err := f.lookup(ctx, "ip", host)
	if err != nil {
		return nil, &net.DNSError{Err: err.Error(), Name: host}
	}
	if len(ips) == 0 {
		return nil, &net.DNSError{Err: "no addresses", Name: host, IsNotFound: true}
	}
	var first error
	for _, ip := range ips {
		c, err := d.DialContext(ctx, network, netip.AddrPortFrom(ip, uint16(port)).String())
		if err == nil {
			return c, nil
		}
		if first == nil {
			first = err
		}
	}
	return nil, first
}

// parseCacheControl reads max-age, no-store and no-cache from
// Cache-Control header values.
func parseCacheControl(values []string) (maxAge time.Duration, has, noStore bool) {
	for _, v := range values {
		for _, d := range strings.Split(v, ",") {
			name, val, _ := strings.Cut(strings.TrimSpace(d), "=")
			switch strings.ToLower(name) {
			case "no-store", "no-cache":
				noStore = true
			case "max-age":
				n, err := strconv.ParseInt(strings.Trim(val, `"`), 10, 64)
				if err == nil && n >= 0 && !has {
					if n > 1<<31 {
						n = 1 << 31
					}
					maxAge, has = time.Duration(n)*time.Second, true
				}
			}
		}
	}
	return maxAge, has, noStore
}

// truncate shortens s for an error message.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
