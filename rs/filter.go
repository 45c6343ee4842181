package rs

import (
	"bytes"
	"encoding/json"
	"net/http"

	"github.com/gatehouse-mcp/gatehouse/internal/mcpauthz"
)

// maxFilteredBytes bounds how much of a JSON response (or of one
// server-sent event) is held in memory for rewriting. A larger response is
// replaced by a JSON-RPC error and a larger event dropped (to its end):
// passing it on unfiltered would list tools the token may not call.
const maxFilteredBytes = 16 << 20

// filterWriter rewrites every response of the MCP server that reaches a
// client while tools/list is filtered, dropping from each tools list the
// tools the token may not call, whichever request the list claims to
// answer (see package mcpauthz, filter.go, for why). A JSON response is
// held until the handler returns; a server-sent event stream is rewritten
// event by event as it passes, keeping its flushes; anything else with a
// body is replaced by a JSON-RPC error, as is JSON that cannot be read.
type filterWriter struct {
	http.ResponseWriter
	allowed func(tool string) bool
	calls   []json.RawMessage // ids of the request's calls, answered when the response is replaced
	batch   bool              // the request was a batch

	mode   int // modeUndecided, modeJSON, modeSSE, modeOther
	status int
	buf    bytes.Buffer           // modeJSON: the response
	events mcpauthz.EventSplitter // modeSSE: the event being received
	tooBig bool
	other  bool // modeOther: the handler wrote a body
}

const (
	modeUndecided = iota
	modeJSON
	modeSSE
	modeOther
)

// Unwrap lets http.ResponseController reach the underlying writer.
func (f *filterWriter) Unwrap() http.ResponseWriter { return f.ResponseWriter }

func (f *filterWriter) WriteHeader(status int) {
	if f.mode != modeUndecided {
		return
	}
	f.status = status
	switch mcpauthz.ResponseKind(f.Header().Get("Content-Type")) {
	case mcpauthz.BodyJSON:
		f.mode = modeJSON
	case mcpauthz.BodySSE:
		f.mode = modeSSE
		f.Header().Del("Content-Length")
		f.ResponseWriter.WriteHeader(status)
	default:
		f.mode = modeOther
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
			if _, err := f.ResponseWriter.Write(mcpauthz.FilterEvent(ev, f.rewrite)); err != nil {
				return 0, err
			}
		}
		if f.events.Len() > maxFilteredBytes {
			// Too large to rewrite: the event is dropped, to its end.
			f.events.Discard()
		}
		return len(p), nil
	}
	f.other = f.other || len(p) > 0
	return len(p), nil
}

// Flush sends what can be sent: complete events of a stream.
func (f *filterWriter) Flush() {
	if f.mode != modeSSE {
		return
	}
	if fl, ok := f.ResponseWriter.(http.Flusher); ok {
		fl.Flush()
	}
}

// rewrite filters the tools list of one JSON-RPC message, whatever its id.
func (f *filterWriter) rewrite(m []byte) (out []byte, changed bool) {
	return mcpauthz.FilterList(m, "tools", "name", f.allowed)
}

// finish writes a held response, rewritten, or the JSON-RPC error that
// replaces it.
func (f *filterWriter) finish() {
	switch f.mode {
	case modeUndecided:
		// Nothing was written: net/http answers 200 with no body.
	case modeJSON:
		body := f.buf.Bytes()
		if f.tooBig {
			f.fail("tools/list response too large to filter")
			return
		}
		out, changed, err := mcpauthz.FilterMessages(body, f.rewrite)
		if err != nil {
			f.fail(mcpauthz.UnfilterableText)
			return
		}
		if changed {
			body = out
		}
		f.Header().Del("Content-Length")
		f.ResponseWriter.WriteHeader(f.status)
		f.ResponseWriter.Write(body)
	case modeSSE:
		// An unterminated last event is not dispatched by clients, but it
		// is filtered all the same.
		if rest := f.events.Rest(); len(rest) > 0 {
			f.ResponseWriter.Write(mcpauthz.FilterEvent(rest, f.rewrite))
		}
	case modeOther:
		if f.other {
			f.fail(mcpauthz.UnfilterableText)
			return
		}
		f.ResponseWriter.WriteHeader(f.status)
	}
}

// fail replaces the response with a JSON-RPC error (CodeInternal) for
// every call of the request, or one with a null id when it has none. The
// status stays when it is an error already and is 500 otherwise: the
// server's response, not the client's request, is at fault.
func (f *filterWriter) fail(text string) {
	status := f.status
	if status < 400 {
		status = http.StatusInternalServerError
	}
	h := f.Header()
	h.Del("Content-Length")
	h.Del("Content-Encoding")
	if len(f.calls) == 0 {
		mcpauthz.WriteJSON(f.ResponseWriter, status, json.RawMessage(mcpauthz.ErrorResponse(nil, mcpauthz.CodeInternal, text, nil)))
		return
	}
	msgs := make([]json.RawMessage, len(f.calls))
	for i, id := range f.calls {
		msgs[i] = mcpauthz.ErrorResponse(id, mcpauthz.CodeInternal, text, nil)
	}
	if len(msgs) == 1 && !f.batch {
		mcpauthz.WriteJSON(f.ResponseWriter, status, msgs[0])
		return
	}
	mcpauthz.WriteJSON(f.ResponseWriter, status, msgs)
}
