package rs

import (
	"bytes"
	"mime"
	"net/http"

	"github.com/gatehouse-mcp/gatehouse/internal/mcpauthz"
)

// maxFilteredBytes bounds how much of a JSON response (or of one
// server-sent event) is held in memory for rewriting. A larger response is
// replaced by a JSON-RPC error and a larger event dropped (to its end):
// passing it on unfiltered would list tools the token may not call.
const maxFilteredBytes = 16 << 20

// filterWriter rewrites the responses to the tools/list requests of one
// POST (or, with anyID, every tools/list-shaped response of a GET
// stream), dropping the tools the token may not call. A JSON response is
// held until the handler returns; a server-sent event stream is rewritten
// event by event as it passes, keeping its flushes.
type filterWriter struct {
	http.ResponseWriter
	ids     map[string]bool // normalised ids of the tools/list requests
	anyID   bool            // filter a response with any id
	allowed func(tool string) bool

	mode   int // modeUndecided, modeJSON, modeSSE, modePass
	status int
	buf    bytes.Buffer           // modeJSON: the response
	events mcpauthz.EventSplitter // modeSSE: the event being received
	tooBig bool
}

const (
	modeUndecided = iota
	modeJSON
	modeSSE
	modePass
)

// Unwrap lets http.ResponseController reach the underlying writer.
func (f *filterWriter) Unwrap() http.ResponseWriter { return f.ResponseWriter }

func (f *filterWriter) WriteHeader(status int) {
	if f.mode != modeUndecided {
		return
	}
	f.status = status
	mt, _, _ := mime.ParseMediaType(f.Header().Get("Content-Type"))
	switch {
	case status == http.StatusOK && mt == "application/json":
		f.mode = modeJSON
	case status == http.StatusOK && mt == "text/event-stream":
		f.mode = modeSSE
		f.Header().Del("Content-Length")
		f.ResponseWriter.WriteHeader(status)
	default:
		f.mode = modePass
		f.ResponseWriter.WriteHeader(status)
	}
}

func (f *filterWriter) Write(p []byte) (int, error) {
	if f.mode == modeUndecided {
		f.WriteHeader(http.StatusOK)
	}
	switch f.mode {
	case modeJSON:
		if f.buf.Len()+len(p) > maxFilteredBytes {
			// Too large to rewrite: fail closed rather than leak the
			// unfiltered list.
			f.tooBig = true
			return len(p), nil
		}
		return f.buf.Write(p)
	case modeSSE:
		f.events.Write(p)
		for {
			ev, ok := f.events.Next()
			if !ok {
				break
			}
			if _, err := f.ResponseWriter.Write(mcpauthz.RewriteEvent(ev, f.rewrite)); err != nil {
				return 0, err
			}
		}
		if f.events.Len() > maxFilteredBytes {
			// Too large to rewrite: the event is dropped, to its end.
			f.events.Discard()
		}
		return len(p), nil
	}
	return f.ResponseWriter.Write(p)
}

// Flush sends what can be sent: complete events of a stream.
func (f *filterWriter) Flush() {
	if f.mode == modeJSON {
		return
	}
	if fl, ok := f.ResponseWriter.(http.Flusher); ok {
		fl.Flush()
	}
}

// rewrite filters a JSON-RPC response or batch of responses; changed is
// false when nothing in it answers a tools/list of this request.
func (f *filterWriter) rewrite(msg []byte) (out []byte, changed bool) {
	return mcpauthz.RewriteMessages(msg, func(m []byte) ([]byte, bool) {
		if !f.anyID && !f.ids[mcpauthz.ResponseID(m)] {
			return nil, false
		}
		return mcpauthz.FilterList(m, "tools", "name", f.allowed)
	})
}

// finish writes a held JSON response, rewritten.
func (f *filterWriter) finish() {
	switch f.mode {
	case modeJSON:
		body := f.buf.Bytes()
		if f.tooBig {
			body = []byte(`{"jsonrpc":"2.0","id":null,"error":{"code":-32603,"message":"tools/list response too large to filter"}}`)
		} else if out, changed := f.rewrite(body); changed {
			body = out
		}
		f.Header().Del("Content-Length")
		f.ResponseWriter.WriteHeader(f.status)
		f.ResponseWriter.Write(body)
	case modeSSE:
		// An unterminated last event is not dispatched by clients, but it
		// is filtered all the same.
		if rest := f.events.Rest(); len(rest) > 0 {
			f.ResponseWriter.Write(mcpauthz.RewriteEvent(rest, f.rewrite))
		}
	}
}
