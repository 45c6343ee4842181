package gateway

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
)

// inprocTransport is an [http.RoundTripper] that serves each request with
// an [http.Handler] of this process: the MCP server of an OpenAPI route
// (apiup.go), which has no listener of its own. The route reaches it as it
// reaches any Streamable HTTP upstream, so sessions, the policy, auditing
// and every protocol revision work the same, and no port is opened that a
// local process could call without a token.
//
// The response streams: RoundTrip returns once the handler has written
// its header (or returned), and the body is a pipe the handler keeps
// writing to, so an SSE stream works. Closing the body cancels the
// handler's context, as a client hanging up cancels a server's.
type inprocTransport struct {
	h http.Handler
}

// RoundTrip serves req with the handler.
func (t inprocTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx, cancel := context.WithCancel(req.Context())
	sreq := req.Clone(ctx)
	if sreq.Body == nil {
		sreq.Body = http.NoBody
	}
	sreq.RequestURI = sreq.URL.RequestURI()
	sreq.RemoteAddr = "in-process"
	pr, pw := io.Pipe()
	rw := &pipeResponse{header: http.Header{}, pw: pw, ready: make(chan struct{})}
	go func() {
		defer func() {
			if p := recover(); p != nil {
				// A handler panic must not take the gateway down; the
				// client sees a broken response, as from a crashed server.
				rw.fail(fmt.Errorf("gateway: the in-process MCP server failed: %v", p))
				return
			}
			rw.WriteHeader(http.StatusOK) // a handler that wrote nothing
			pw.Close()
		}()
		t.h.ServeHTTP(rw, sreq)
	}()
	select {
	case <-rw.ready:
	case <-ctx.Done():
		pr.CloseWithError(ctx.Err())
		cancel()
		return nil, ctx.Err()
	}
	if rw.err != nil {
		cancel()
		return nil, rw.err
	}
	return &http.Response{
		Status:        strconv.Itoa(rw.status) + " " + http.StatusText(rw.status),
		StatusCode:    rw.status,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        rw.sent,
		Body:          &inprocBody{pr: pr, cancel: cancel},
		ContentLength: -1,
		Request:       req,
	}, nil
}

// pipeResponse is the handler's [http.ResponseWriter]: its header and
// status are handed to RoundTrip once, its body goes into the pipe.
type pipeResponse struct {
	header http.Header
	pw     *io.PipeWriter
	once   sync.Once
	ready  chan struct{}
	status int
	sent   http.Header // the header as it was at WriteHeader
	err    error       // set before ready closes when the handler panicked first
}

// Header is the header the handler sets before writing.
func (p *pipeResponse) Header() http.Header { return p.header }

// WriteHeader sends the status and header; later calls do nothing.
func (p *pipeResponse) WriteHeader(code int) {
	p.once.Do(func() {
		p.status = code
		p.sent = p.header.Clone()
		close(p.ready)
	})
}

// Write sends b to the reader of the response body, blocking until it is
// read (or the body is closed: then it fails, and the handler stops).
func (p *pipeResponse) Write(b []byte) (int, error) {
	p.WriteHeader(http.StatusOK)
	return p.pw.Write(b)
}

// Flush does nothing: every Write has reached the reader when it returns.
func (p *pipeResponse) Flush() {}

// fail ends the response with err: RoundTrip returns it when nothing was
// sent yet, the body's reader gets it otherwise.
func (p *pipeResponse) fail(err error) {
	p.once.Do(func() {
		p.err = err
		close(p.ready)
	})
	p.pw.CloseWithError(err)
}

// inprocBody is a response body read from the handler's pipe; closing it
// cancels the handler.
type inprocBody struct {
	pr     *io.PipeReader
	cancel context.CancelFunc
}

func (b *inprocBody) Read(p []byte) (int, error) { return b.pr.Read(p) }

func (b *inprocBody) Close() error {
	b.cancel()
	return b.pr.Close()
}
