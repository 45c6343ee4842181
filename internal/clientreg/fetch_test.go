package clientreg

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// tcpCounter is a listener that counts the connections that reach it: a
// refused fetch must leave it at zero.
type tcpCounter struct {
	ln    net.Listener
	count atomic.Int64
}

func newTCPCounter(t *testing.T, addr string) *tcpCounter {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("cannot listen on %s: %v", addr, err)
	}
	c := &tcpCounter{ln: ln}
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			c.count.Add(1)
			conn.Close()
		}
	}()
	t.Cleanup(func() { ln.Close() })
	return c
}

func (c *tcpCounter) port() string {
	_, p, _ := net.SplitHostPort(c.ln.Addr().String())
	return p
}

// TestFetchSSRF: every special-use target is refused at connect time with
// an error naming the range, and no connection reaches a listener.
func TestFetchSSRF(t *testing.T) {
	v4 := newTCPCounter(t, "127.0.0.1:0")
	p := v4.port()
	var v6 *tcpCounter
	if ln, err := net.Listen("tcp", "[::1]:0"); err == nil {
		ln.Close()
		v6 = newTCPCounter(t, "[::1]:0")
	}
	resolver := func(_ context.Context, _, host string) ([]netip.Addr, error) {
		switch host {
		case "internal.test":
			return []netip.Addr{netip.MustParseAddr("127.0.0.1")}, nil
		case "metadata.test":
			return []netip.Addr{netip.MustParseAddr("169.254.169.254")}, nil
		case "mapped.test":
			return []netip.Addr{netip.MustParseAddr("::ffff:127.0.0.1")}, nil
		}
		return nil, errors.New("no such host")
	}
	tests := []struct {
		name, url, want string
		counter         *tcpCounter
	}{
		{"loopback v4", "https://127.0.0.1:" + p + "/doc", "loopback (127.0.0.0/8)", v4},
		{"loopback v4 other", "https://127.1.2.3:" + p + "/doc", "loopback", nil},
		{"private 10/8", "https://10.0.0.1/doc", "private (10.0.0.0/8)", nil},
		{"private 192.168", "https://192.168.1.1/doc", "private (192.168.0.0/16)", nil},
		{"private 172.16", "https://172.16.0.1/doc", "private (172.16.0.0/12)", nil},
		{"cloud metadata", "https://169.254.169.254/latest/meta-data/", "link-local (169.254.0.0/16", nil},
		{"cgnat", "https://100.64.0.1/doc", "CGNAT", nil},
		{"this network", "https://0.0.0.0:" + p + "/doc", "this-network", v4},
		{"broadcast", "https://255.255.255.255/doc", "broadcast", nil},
		{"multicast", "https://224.0.0.1/doc", "multicast", nil},
		{"documentation", "https://192.0.2.1/doc", "documentation", nil},
		{"ipv4-mapped loopback", "https://[::ffff:127.0.0.1]:" + p + "/doc", "127.0.0.1", v4},
		{"unique local", "https://[fd00::1]/doc", "unique-local (fc00::/7)", nil},
		{"link-local v6", "https://[fe80::1]/doc", "link-local (fe80::/10)", nil},
		{"nat64", "https://[64:ff9b::7f00:1]/doc", "NAT64", nil},
		{"name resolving to loopback", "https://internal.test:" + p + "/doc", "internal.test resolves to 127.0.0.1", v4},
		{"name resolving to metadata", "https://metadata.test/doc", "169.254.169.254", nil},
		{"name resolving to mapped loopback", "https://mapped.test:" + p + "/doc", "mapped.test resolves to", v4},
	}
	if v6 != nil {
		tests = append(tests, struct {
			name, url, want string
			counter         *tcpCounter
		}{"loopback v6", "https://[::1]:" + v6.port() + "/doc", "loopback (::1)", v6})
	}
	f := NewFetcher(FetchOptions{LookupNetIP: resolver})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := int64(0)
			if tt.counter != nil {
				before = tt.counter.count.Load()
			}
			_, err := f.Fetch(t.Context(), tt.url)
			var re *RefusedError
			if !errors.As(err, &re) || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "server-side request forgery") {
				t.Fatalf("Fetch(%s) = %v, want a refusal naming %q", tt.url, err, tt.want)
			}
			if tt.counter != nil {
				time.Sleep(20 * time.Millisecond) // let a stray accept be counted
				if n := tt.counter.count.Load() - before; n != 0 {
					t.Fatalf("Fetch(%s) reached the listener %d times", tt.url, n)
				}
			}
		})
	}

	// localhost through the system resolver.
	t.Run("localhost", func(t *testing.T) {
		before := v4.count.Load()
		_, err := NewFetcher(FetchOptions{}).Fetch(t.Context(), "https://localhost:"+p+"/doc")
		var re *RefusedError
		if !errors.As(err, &re) {
			t.Fatalf("Fetch(localhost) = %v, want a refusal", err)
		}
		time.Sleep(20 * time.Millisecond)
		if v4.count.Load() != before {
			t.Fatal("Fetch(localhost) reached the listener")
		}
	})
}

// tlsDocServer serves handler over TLS on 127.0.0.1 and counts requests.
func tlsDocServer(t *testing.T, h http.HandlerFunc) (*httptest.Server, *atomic.Int64, FetchOptions) {
	t.Helper()
	var n atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		h(w, r)
	}))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // refused handshakes are expected
	srv.StartTLS()
	t.Cleanup(srv.Close)
	pool := x509.NewCertPool()
	pool.AddCert(srv.Certificate())
	return srv, &n, FetchOptions{RootCAs: pool, AllowHosts: []string{"127.0.0.1"}}
}

func TestFetchRules(t *testing.T) {
	internal := newTCPCounter(t, "127.0.0.1:0")
	big := strings.Repeat("x", DefaultMaxDocumentBytes+1)
	// The slow handlers answer only when the test ends: with a deadline
	// of their own (a second) they could answer first on a loaded
	// machine, and /slow answered an empty 200 (seen in CI).
	release := make(chan struct{})
	srv, hits, opts := tlsDocServer(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/ok":
			w.Header().Set("Cache-Control", "public, max-age=600")
			w.Write([]byte(`{"ok":true}`))
		case "/redirect-internal":
			http.Redirect(w, r, "https://127.0.0.1:"+internal.port()+"/doc", http.StatusFound)
		case "/redirect-permanent":
			http.Redirect(w, r, "/ok", http.StatusPermanentRedirect)
		case "/big":
			w.Write([]byte(big))
		case "/big-chunked":
			w.(http.Flusher).Flush() // no Content-Length
			w.Write([]byte(big))
		case "/exact":
			w.Write([]byte(strings.Repeat("x", DefaultMaxDocumentBytes)))
		case "/slow":
			<-release
		case "/slow-body":
			w.Header().Set("Content-Length", "100")
			w.Write([]byte("{"))
			w.(http.Flusher).Flush()
			<-release
		case "/created":
			w.WriteHeader(http.StatusCreated)
			w.Write([]byte(`{}`))
		default:
			http.NotFound(w, r)
		}
	})
	// Runs before the server's own cleanup (LIFO), which waits for its
	// handlers.
	t.Cleanup(func() { close(release) })
	opts.Timeout = 300 * time.Millisecond
	f := NewFetcher(opts)
	ctx := t.Context()

	res, err := f.Fetch(ctx, srv.URL+"/ok")
	if err != nil || string(res.Body) != `{"ok":true}` || !res.HasMaxAge || res.MaxAge != 10*time.Minute {
		t.Fatalf("Fetch(/ok) = %+v, %v; want the body with max-age 10m", res, err)
	}
	if _, err := f.Fetch(ctx, srv.URL+"/exact"); err != nil {
		t.Fatalf("Fetch(/exact) = %v; a body of exactly the cap is fine", err)
	}
	for _, tt := range []struct{ path, want string }{
		{"/redirect-internal", "answered with a redirect (status 302"},
		{"/redirect-permanent", "redirects are not followed"},
		{"/big", "larger than 5120 bytes"},
		{"/big-chunked", "larger than 5120 bytes"},
		{"/slow", "timed out"},
		{"/slow-body", "timed out"},
		{"/created", "status 201; only 200"},
		{"/missing", "status 404; only 200"},
	} {
		t.Run(tt.path, func(t *testing.T) {
			start := time.Now()
			_, err := f.Fetch(ctx, srv.URL+tt.path)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Fetch(%s) = %v, want an error containing %q", tt.path, err, tt.want)
			}
			if d := time.Since(start); d > 2*time.Second {
				t.Errorf("Fetch(%s) took %s; the timeout is 300ms", tt.path, d)
			}
		})
	}
	if n := internal.count.Load(); n != 0 {
		t.Errorf("the redirect target was contacted %d times", n)
	}

	// Scheme and URL rules, before any connection.
	before := hits.Load()
	for _, u := range []string{"http" + strings.TrimPrefix(srv.URL, "https") + "/ok", "https://user:pw@" + strings.TrimPrefix(srv.URL, "https://") + "/ok", "ftp://x/y", "/relative"} {
		if _, err := f.Fetch(ctx, u); err == nil {
			t.Errorf("Fetch(%s) succeeded", u)
		}
	}
	// The same server without the dev allowance: refused, never reached.
	strict := NewFetcher(FetchOptions{RootCAs: opts.RootCAs})
	if _, err := strict.Fetch(ctx, srv.URL+"/ok"); err == nil || !strings.Contains(err.Error(), "loopback") {
		t.Errorf("Fetch without AllowHosts = %v, want a loopback refusal", err)
	}
	// Without the injected CA the certificate does not verify.
	if _, err := NewFetcher(FetchOptions{AllowHosts: opts.AllowHosts}).Fetch(ctx, srv.URL+"/ok"); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("Fetch with the system pool = %v, want a certificate error", err)
	}
	if n := hits.Load() - before; n != 0 {
		t.Errorf("refused fetches reached the server %d times", n)
	}
}

func TestParseCacheControl(t *testing.T) {
	for _, tt := range []struct {
		in      []string
		age     time.Duration
		has, ns bool
	}{
		{nil, 0, false, false},
		{[]string{"max-age=60"}, time.Minute, true, false},
		{[]string{"public, max-age=\"120\""}, 2 * time.Minute, true, false},
		{[]string{"no-store"}, 0, false, true},
		{[]string{"max-age=60, no-cache"}, time.Minute, true, true},
		{[]string{"max-age=-1"}, 0, false, false},
		{[]string{"max-age=x"}, 0, false, false},
	} {
		age, has, ns := parseCacheControl(tt.in)
		if age != tt.age || has != tt.has || ns != tt.ns {
			t.Errorf("parseCacheControl(%q) = %s %v %v, want %s %v %v", tt.in, age, has, ns, tt.age, tt.has, tt.ns)
		}
	}
}

func TestSpecialUse(t *testing.T) {
	for _, tt := range []struct {
		addr    string
		special bool
	}{
		{"127.0.0.1", true}, {"::1", true}, {"10.1.2.3", true}, {"169.254.169.254", true}, {"fd00::1", true},
		{"::ffff:127.0.0.1", true}, {"::ffff:8.8.8.8", true}, {"0.0.0.0", true}, {"100.100.100.100", true},
		{"198.18.0.1", true}, {"240.0.0.1", true}, {"2001:db8::1", true}, {"2002:7f00:1::", true}, {"::", true},
		{"8.8.8.8", false}, {"1.1.1.1", false}, {"2606:4700:4700::1111", false}, {"2001:4860:4860::8888", false},
	} {
		_, got := SpecialUse(netip.MustParseAddr(tt.addr))
		if got != tt.special {
			t.Errorf("SpecialUse(%s) = %v, want %v", tt.addr, got, tt.special)
		}
	}
	if _, got := SpecialUse(netip.MustParseAddr("fe80::1%eth0")); !got {
		t.Error("a zoned address is not special-use")
	}
}

// TestCacheSingleFlight: concurrent loads of one key run once; values
// and failures are kept for their ttl, failures without one not at all.
func TestCacheSingleFlight(t *testing.T) {
	c := NewCache[string](0)
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	var loads atomic.Int64
	release := make(chan struct{})
	load := func(context.Context) (string, time.Duration, error) {
		loads.Add(1)
		<-release
		return "v", time.Minute, nil
	}
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			if v, err := c.Do(t.Context(), "k", clock, load); v != "v" || err != nil {
				t.Errorf("Do = %q, %v", v, err)
			}
		})
	}
	time.Sleep(50 * time.Millisecond)
	close(release)
	wg.Wait()
	if n := loads.Load(); n != 1 {
		t.Fatalf("50 concurrent Do calls loaded %d times, want 1", n)
	}
	if _, err := c.Do(t.Context(), "k", clock, load); err != nil || loads.Load() != 1 {
		t.Fatalf("a cached value was loaded again")
	}
	mu.Lock()
	now = now.Add(time.Minute)
	mu.Unlock()
	if _, ok := c.Get("k", clock()); ok {
		t.Fatal("an expired value is still returned")
	}

	fails := 0
	failTTL := time.Duration(0)
	failing := func(context.Context) (string, time.Duration, error) {
		fails++
		return "partial", failTTL, fmt.Errorf("boom %d", fails)
	}
	for i := 1; i <= 2; i++ {
		if _, err := c.Do(t.Context(), "bad", clock, failing); err == nil || fails != i {
			t.Fatalf("failure %d: err %v, loads %d: a failure without ttl must not be cached", i, err, fails)
		}
	}
	failTTL = time.Minute
	for range 3 {
		if v, err := c.Do(t.Context(), "bad", clock, failing); err == nil || err.Error() != "boom 3" || v != "" || fails != 3 {
			t.Fatalf("Do after a failure with ttl = %q, %v (%d loads); want the remembered error boom 3, no value, 3 loads", v, err, fails)
		}
	}
	if _, ok := c.Get("bad", clock()); ok {
		t.Error("Get returned a remembered failure as a value")
	}
	mu.Lock()
	now = now.Add(time.Minute)
	mu.Unlock()
	if _, err := c.Do(t.Context(), "bad", clock, failing); err == nil || fails != 4 {
		t.Fatalf("after its ttl the failure was not loaded again: %v, %d loads", err, fails)
	}
	// A waiter whose context ends stops waiting; the load still completes.
	block := make(chan struct{})
	go c.Do(t.Context(), "slow", clock, func(context.Context) (string, time.Duration, error) { <-block; return "s", time.Minute, nil })
	time.Sleep(20 * time.Millisecond)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := c.Do(ctx, "slow", clock, load); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled waiter got %v", err)
	}
	close(block)
}

func TestCacheBounded(t *testing.T) {
	c := NewCache[int](3)
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	for i := range 10 {
		c.Do(t.Context(), fmt.Sprint(i), clock, func(context.Context) (int, time.Duration, error) { return i, time.Hour, nil })
	}
	if n := len(c.entries); n > 3 {
		t.Fatalf("cache holds %d entries, bound is 3", n)
	}
	// A flood of failures does not push out the values.
	c = NewCache[int](3)
	c.Do(t.Context(), "good", clock, func(context.Context) (int, time.Duration, error) { return 1, time.Hour, nil })
	for i := range 10 {
		c.Do(t.Context(), fmt.Sprint("bad", i), clock, func(context.Context) (int, time.Duration, error) { return 0, time.Hour, errors.New("bad") })
	}
	if v, ok := c.Get("good", now); !ok || v != 1 || len(c.entries) > 3 {
		t.Errorf("after 10 remembered failures: Get(good) = %d, %v with %d entries; want the value kept, at most 3 entries", v, ok, len(c.entries))
	}
}
