package mcpauthz

import (
	"bytes"
	"encoding/json"
	"errors"
	"mime"
)

// What an MCP server sends back is filtered by rules that leave it no
// message a client could read as a list the filter did not see (review
// finding F2). Clients differ in what they accept: the TypeScript SDK
// takes Number(id), so "7" answers request 7; fetch's .json() and the
// event stream parser (WHATWG HTML §9.2.6) drop a leading byte order
// mark; clients test the Content-Type with "includes"; and a response is
// matched to its request by id, whichever POST's response carries it.
// So the filter does not ask whom a message answers: every list-shaped
// result (a result object with a tools, prompts or resources array) in
// every response is filtered, and a response that cannot be read, or
// whose Content-Type is not exactly JSON or an event stream, is replaced
// by a JSON-RPC error ([UnfilterableText]) rather than passed on unread.

// BodyKind is how a response body is read, by its Content-Type.
type BodyKind int

// Body kinds.
const (
	BodyOther BodyKind = iota // neither: not passed on unread (see UnfilterableText)
	BodyJSON                  // application/json: a message or a batch
	BodySSE                   // text/event-stream: events whose data are messages
)

// ResponseKind returns the kind of a response body with the Content-Type
// contentType: exactly application/json or text/event-stream (in any
// case, with parameters such as charset), or BodyOther for anything else,
// including a list of types or a value that does not parse.
func ResponseKind(contentType string) BodyKind {
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		return BodyOther
	}
	switch mt {
	case "application/json":
		return BodyJSON
	case "text/event-stream":
		return BodySSE
	}
	return BodyOther
}

// UnfilterableText is the message of the JSON-RPC error (code
// CodeInternal, -32603: the server's response, not the client's request,
// is at fault) that replaces a response the list filter cannot read.
const UnfilterableText = "the MCP server's response cannot be checked for list results: it is not JSON-RPC in application/json or text/event-stream"

// ErrUnfilterable is returned for a response body that is not a JSON-RPC
// message or a batch of them.
var ErrUnfilterable = errors.New("mcpauthz: the MCP server's response is not a JSON-RPC message or batch")

var bom = []byte("\ufeff")

// TrimBOM returns b without a leading UTF-8 byte order mark, which
// clients drop before reading JSON or an event stream.
func TrimBOM(b []byte) []byte { return bytes.TrimPrefix(b, bom) }

// FilterMessages hands fn every message of a response body or event data
// (a JSON-RPC message, or a batch of them), after a leading byte order
// mark and white space, and returns the body with the messages fn rewrote
// (see RewriteMessages) and whether it changed. Data that is only white
// space holds no message and is returned as it is. Anything else that is
// not one JSON object or an array of objects is ErrUnfilterable: a client
// could still find a message in it that fn did not see.
func FilterMessages(data []byte, fn func(msg []byte) ([]byte, bool)) ([]byte, bool, error) {
	trimmed := bytes.TrimSpace(TrimBOM(data))
	if len(trimmed) == 0 {
		return data, false, nil
	}
	if trimmed[0] == '[' {
		var batch []json.RawMessage
		if json.Unmarshal(trimmed, &batch) != nil {
			return nil, false, ErrUnfilterable
		}
		for _, m := range batch {
			if !isObject(m) {
				return nil, false, ErrUnfilterable
			}
		}
	} else if !isObject(trimmed) || !json.Valid(trimmed) {
		return nil, false, ErrUnfilterable
	}
	out, changed := RewriteMessages(trimmed, fn)
	if !changed && len(trimmed) != len(data) {
		// The BOM goes: a client that kept it would not read the rest.
		return trimmed, true, nil
	}
	return out, changed, nil
}

func isObject(raw []byte) bool {
	raw = bytes.TrimSpace(raw)
	return len(raw) > 0 && raw[0] == '{'
}

// FilterEvent is RewriteEvent with the rules of FilterMessages for the
// event's data: data that cannot be read is replaced by a JSON-RPC error
// with a null id (the message it replaces has no id to trust).
func FilterEvent(event []byte, fn func(msg []byte) ([]byte, bool)) []byte {
	return RewriteEvent(event, func(data []byte) ([]byte, bool) {
		out, changed, err := FilterMessages(data, fn)
		if err != nil {
			return ErrorResponse(nil, CodeInternal, UnfilterableText, nil), true
		}
		return out, changed
	})
}

// Head is what a response needs to be matched to its request: members
// read exactly, as the MCP SDKs read them (a case variant such as "ID" is
// another member; of a duplicated member the last counts, as in
// JavaScript).
type Head struct {
	IDKey     string          // the normalised id (see IDKey); "" when absent or null
	IsRequest bool            // the message has a "method" member: not a response
	Error     json.RawMessage // the error member; nil when absent
}

// ResponseHead reads the head of one JSON-RPC message; ok is false when
// msg is not a JSON object.
func ResponseHead(msg []byte) (h Head, ok bool) {
	var top map[string]json.RawMessage
	if json.Unmarshal(TrimBOM(msg), &top) != nil || top == nil {
		return h, false
	}
	_, h.IsRequest = top["method"]
	h.IDKey, h.Error = IDKey(top["id"]), top["error"]
	return h, true
}
