package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// conn is a minimal HTTP/1.1 client connection with keep-alive, used by
// one worker at a time. It is deliberately small: the load generator runs
// on the same two cores as the server it measures, so every microsecond
// it spends per request is a microsecond the server does not get. It
// writes pre-formatted requests and reads responses with Content-Length,
// chunked or close-delimited bodies; it remembers the few response headers
// the scenarios need. net/http's client costs several times more CPU per
// request; setup steps that need its generality (HTML forms, admin APIs)
// use net/http instead.
type conn struct {
	addr    string // host:port
	host    string // Host header value
	timeout time.Duration
	c       net.Conn
	r       *bufio.Reader
	w       *bufio.Writer
	body    []byte // reused response body buffer
}

// response is what a scenario needs from an HTTP response. Body aliases
// the connection's buffer: valid until the next request on the connection.
type response struct {
	Status       int
	Location     string
	ContentType  string
	MCPSessionID string
	SetCookies   []string
	Body         []byte
}

func newConn(rawURL string, timeout time.Duration) (*conn, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, err
	}
	if u.Scheme != "http" {
		return nil, fmt.Errorf("%s: only http:// on loopback is supported", rawURL)
	}
	addr := u.Host
	if u.Port() == "" {
		addr += ":80"
	}
	return &conn{addr: addr, host: u.Host, timeout: timeout}, nil
}

func (c *conn) close() {
	if c.c != nil {
		c.c.Close()
		c.c = nil
	}
}

func (c *conn) dial() error {
	nc, err := net.DialTimeout("tcp", c.addr, c.timeout)
	if err != nil {
		return err
	}
	if tc, ok := nc.(*net.TCPConn); ok {
		tc.SetNoDelay(true)
	}
	c.c = nc
	if c.r == nil {
		c.r = bufio.NewReaderSize(nc, 32<<10)
		c.w = bufio.NewWriterSize(nc, 8<<10)
	} else {
		c.r.Reset(nc)
		c.w.Reset(nc)
	}
	return nil
}

// do sends one request and reads the response. headers are complete header
// lines without CRLF ("Authorization: Basic …"). A request on a reused
// connection that fails before any response byte arrived is retried once
// on a fresh connection (the server may have closed an idle connection).
func (c *conn) do(method, target string, headers []string, body []byte) (response, error) {
	for attempt := 0; ; attempt++ {
		fresh := c.c == nil
		if fresh {
			if err := c.dial(); err != nil {
				return response{}, err
			}
		}
		resp, sent, err := c.roundTrip(method, target, headers, body)
		if err == nil {
			return resp, nil
		}
		c.close()
		if fresh || sent || attempt > 0 {
			return response{}, err
		}
	}
}

// roundTrip reports whether any response byte was read, so do knows
// whether retrying is safe.
func (c *conn) roundTrip(method, target string, headers []string, body []byte) (resp response, gotBytes bool, err error) {
	deadline := time.Now().Add(c.timeout)
	c.c.SetDeadline(deadline)
	w := c.w
	w.WriteString(method)
	w.WriteByte(' ')
	w.WriteString(target)
	w.WriteString(" HTTP/1.1\r\nHost: ")
	w.WriteString(c.host)
	w.WriteString("\r\nUser-Agent: gatehouse-bench\r\n")
	for _, h := range headers {
		w.WriteString(h)
		w.WriteString("\r\n")
	}
	if body != nil || method == "POST" || method == "PUT" {
		w.WriteString("Content-Length: ")
		w.WriteString(strconv.Itoa(len(body)))
		w.WriteString("\r\n")
	}
	w.WriteString("\r\n")
	w.Write(body)
	if err := w.Flush(); err != nil {
		return response{}, false, err
	}

	var (
		contentLength = -1
		chunked       bool
		closeAfter    bool
	)
	for {
		line, err := c.readLine()
		if err != nil {
			return response{}, gotBytes, err
		}
		gotBytes = true
		// "HTTP/1.1 200 OK"
		if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) {
			return response{}, true, fmt.Errorf("malformed status line %q", line)
		}
		resp.Status, err = strconv.Atoi(string(line[9:12]))
		if err != nil {
			return response{}, true, fmt.Errorf("malformed status line %q", line)
		}
		if line[7] == '0' {
			closeAfter = true // HTTP/1.0
		}
		resp.SetCookies = resp.SetCookies[:0]
		for {
			h, err := c.readLine()
			if err != nil {
				return response{}, true, err
			}
			if len(h) == 0 {
				break
			}
			i := bytes.IndexByte(h, ':')
			if i <= 0 {
				continue
			}
			name, val := h[:i], string(bytes.TrimSpace(h[i+1:]))
			switch {
			case asciiEqualFold(name, "content-length"):
				contentLength, err = strconv.Atoi(val)
				if err != nil || contentLength < 0 {
					return response{}, true, fmt.Errorf("bad Content-Length %q", val)
				}
			case asciiEqualFold(name, "transfer-encoding"):
				chunked = strings.Contains(strings.ToLower(val), "chunked")
			case asciiEqualFold(name, "connection"):
				if strings.EqualFold(val, "close") {
					closeAfter = true
				}
			case asciiEqualFold(name, "location"):
				resp.Location = val
			case asciiEqualFold(name, "content-type"):
				resp.ContentType = val
			case asciiEqualFold(name, "mcp-session-id"):
				resp.MCPSessionID = val
			case asciiEqualFold(name, "set-cookie"):
				resp.SetCookies = append(resp.SetCookies, val)
			}
		}
		if resp.Status >= 100 && resp.Status < 200 {
			continue // 100 Continue and friends: the real response follows
		}
		break
	}
	c.body = c.body[:0]
	switch {
	case method == "HEAD" || resp.Status == 204 || resp.Status == 304:
	case chunked:
		if err := c.readChunked(); err != nil {
			return response{}, true, err
		}
	case contentLength >= 0:
		if cap(c.body) < contentLength {
			c.body = make([]byte, contentLength)
		}
		c.body = c.body[:contentLength]
		if _, err := io.ReadFull(c.r, c.body); err != nil {
			return response{}, true, err
		}
	default:
		b, err := io.ReadAll(c.r)
		if err != nil {
			return response{}, true, err
		}
		c.body = append(c.body, b...)
		closeAfter = true
	}
	resp.Body = c.body
	if closeAfter {
		c.close()
	}
	return resp, true, nil
}

func (c *conn) readLine() ([]byte, error) {
	line, err := c.r.ReadSlice('\n')
	if err != nil {
		if errors.Is(err, bufio.ErrBufferFull) {
			return nil, errors.New("header line too long")
		}
		return nil, err
	}
	return bytes.TrimRight(line, "\r\n"), nil
}

func (c *conn) readChunked() error {
	for {
		line, err := c.readLine()
		if err != nil {
			return err
		}
		if i := bytes.IndexByte(line, ';'); i >= 0 {
			line = line[:i]
		}
		n, err := strconv.ParseInt(string(bytes.TrimSpace(line)), 16, 64)
		if err != nil || n < 0 || n > 64<<20 {
			return fmt.Errorf("bad chunk size %q", line)
		}
		if n == 0 {
			for { // trailers
				t, err := c.readLine()
				if err != nil {
					return err
				}
				if len(t) == 0 {
					return nil
				}
			}
		}
		start := len(c.body)
		c.body = append(c.body, make([]byte, n)...)
		if _, err := io.ReadFull(c.r, c.body[start:]); err != nil {
			return err
		}
		if _, err := c.readLine(); err != nil { // CRLF after the chunk
			return err
		}
	}
}

func asciiEqualFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := 0; i < len(b); i++ {
		x := b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if x != s[i] {
			return false
		}
	}
	return true
}

// cookieJar is a per-worker jar for one origin: name → value. Attributes
// other than expiry are ignored; everything the servers set is for "/" on
// the one host the worker talks to.
type cookieJar map[string]string

func (j cookieJar) update(setCookies []string) {
	for _, sc := range setCookies {
		first, attrs, _ := strings.Cut(sc, ";")
		name, val, ok := strings.Cut(first, "=")
		if !ok {
			continue
		}
		name = strings.TrimSpace(name)
		expired := val == ""
		for _, a := range strings.Split(attrs, ";") {
			k, v, _ := strings.Cut(strings.TrimSpace(a), "=")
			if strings.EqualFold(k, "max-age") {
				if n, err := strconv.Atoi(v); err == nil && n <= 0 {
					expired = true
				}
			}
			if strings.EqualFold(k, "expires") {
				if t, err := time.Parse(time.RFC1123, v); err == nil && t.Before(time.Now()) {
					expired = true
				}
			}
		}
		if expired {
			delete(j, name)
		} else {
			j[name] = val
		}
	}
}

// header returns a "Cookie: …" header line, or "" when the jar is empty.
func (j cookieJar) header() string {
	if len(j) == 0 {
		return ""
	}
	var b strings.Builder
	b.WriteString("Cookie: ")
	first := true
	for k, v := range j {
		if !first {
			b.WriteString("; ")
		}
		first = false
		b.WriteString(k)
		b.WriteByte('=')
		b.WriteString(v)
	}
	return b.String()
}

// requestTarget returns the path and query of an absolute or relative URL.
func requestTarget(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", err
	}
	t := u.EscapedPath()
	if t == "" {
		t = "/"
	}
	if u.RawQuery != "" {
		t += "?" + u.RawQuery
	}
	return t, nil
}
