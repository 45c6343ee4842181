package mcpauthz

import (
	"errors"
	"fmt"
	"io"
	"net/http"
)

// ReadBody reads the body of a POST to an MCP endpoint, at most max bytes,
// for [Inspect]. When it cannot, it has answered and returns ok false: 413
// for a body longer than max (naming the limit), 400 for one that could
// not be read. rs and the gateway both read bodies here, so a client gets
// the same answer from either.
//
// The answer is a JSON-RPC error response with id null (Invalid Request),
// not an OAuth error: the token was accepted, and what is refused is the
// MCP message. The MCP transport says so for input a server cannot accept
// (Streamable HTTP, "Sending Messages to the Server"): "it MUST return an
// HTTP error status code (e.g., 400 Bad Request). The HTTP response body
// MAY comprise a JSON-RPC error response that has no id."
//
// The body is read through [http.MaxBytesReader], which also has the
// server close the connection rather than read the rest of a body too
// long.
func ReadBody(w http.ResponseWriter, r *http.Request, max int64) (body []byte, ok bool) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, max))
	if err == nil {
		return body, true
	}
	if mbe := (*http.MaxBytesError)(nil); errors.As(err, &mbe) {
		WriteJSON(w, http.StatusRequestEntityTooLarge, ErrorResponse(nil, CodeInvalidRequest, fmt.Sprintf("request body exceeds %d bytes", max), nil))
		return nil, false
	}
	WriteJSON(w, http.StatusBadRequest, ErrorResponse(nil, CodeInvalidRequest, "could not read the request body", nil))
	return nil, false
}
