package gateway

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"time"

	"github.com/gatehouse-mcp/gatehouse/internal/mcpauthz"
	"github.com/gatehouse-mcp/gatehouse/rs"
)

// upstream is the MCP server behind a route, as the route uses it once a
// request has passed the token check and the policy: a Streamable HTTP
// server ([httpUpstream]) or a program spoken to over stdio, a process
// per session ([stdioUpstream]). What is common to both (the token, the
// policy decided once per message, session ownership) is the route's; an
// upstream forwards and answers. The audit record of every tool call is
// written by the exchange (session.go): recordRefused for calls the
// policy refused, admit for calls an upstream is about to forward.
type upstream interface {
	// post forwards a POST whose messages the policy allowed (the calls
	// among them tracked in x, body as the client sent it) and answers it.
	post(w http.ResponseWriter, r *http.Request, x *exchange, body []byte, msgs []mcpauthz.Message, batch bool)
	// get serves a GET: a session's stream of server messages.
	get(w http.ResponseWriter, r *http.Request, ti *rs.TokenInfo)
	// end ends the upstream's side of a session the client deleted,
	// before the route closes the session.
	end(s *session)
}

// httpUpstream is a Streamable HTTP MCP server (see httpup.go).
type httpUpstream struct {
	rt     *route
	url    string
	header http.Header // the gateway's own credential, for every request
	client *http.Client
	// inproc marks an OpenAPI route's in-process MCP server (apiup.go):
	// its requests carry the caller, whose token it may exchange.
	inproc bool
}

// stdioUpstream is a program started per session, speaking MCP on its
// standard input and output (see stdio.go).
type stdioUpstream struct {
	rt   *route
	spec Upstream
}

// compileUpstream checks up and returns the upstream of rt.
func compileUpstream(rt *route, up Upstream) (upstream, error) {
	if up.API != nil {
		if up.URL != "" || up.Command != "" {
			return nil, errors.New("upstream has an OpenAPI API and a URL or Command")
		}
		return compileAPI(rt, up.API)
	}
	switch {
	case up.URL != "" && up.Command != "":
		return nil, errors.New("upstream has both URL and Command")
	case up.Command != "":
		return &stdioUpstream{rt: rt, spec: up}, nil
	case up.URL == "":
		return nil, errors.New("upstream needs a URL, a Command or an API")
	}
	uu, err := url.Parse(up.URL)
	if err != nil || uu.Host == "" || (uu.Scheme != "http" && uu.Scheme != "https") {
		return nil, fmt.Errorf("upstream URL %q must be an absolute http(s) URL", up.URL)
	}
	tr := up.Transport
	if tr == nil {
		ct := up.ConnectTimeout
		if ct <= 0 {
			ct = DefaultConnectTimeout
		}
		tr = &http.Transport{
			Proxy:                 nil,
			DialContext:           (&net.Dialer{Timeout: ct, KeepAlive: 30 * time.Second}).DialContext,
			TLSHandshakeTimeout:   ct,
			MaxIdleConns:          256,
			MaxIdleConnsPerHost:   128,
			IdleConnTimeout:       90 * time.Second,
			ExpectContinueTimeout: time.Second,
			ForceAttemptHTTP2:     true,
		}
	}
	return &httpUpstream{rt: rt, url: up.URL, header: up.Header, client: &http.Client{
		Transport: tr,
		// A redirect would carry the upstream credential elsewhere.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}, nil
}

// end asks the HTTP upstream to end its session (best effort).
func (u *httpUpstream) end(s *session) {
	if s.upstreamID != "" {
		u.deleteSession(s.upstreamID, s.subject)
	}
}

// end does nothing: closing the session stops its process.
func (u *stdioUpstream) end(*session) {}
