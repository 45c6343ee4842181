package mcpauthz

import (
	"bytes"
	"encoding/json"
	"errors"
)

// JSON-RPC error codes.
const (
	CodeParseError     = -32700
	CodeInvalidRequest = -32600
	CodeInvalidParams  = -32602
	CodeInternal       = -32603
	// CodeUpstreamClosed is what the MCP SDKs use for a closed connection.
	CodeUpstreamClosed = -32000
	// CodeTimeout is the MCP SDKs' request timeout code.
	CodeTimeout = -32001
	// CodeForbidden is from the range JSON-RPC 2.0 §5.1 reserves for
	// implementation-defined server errors; MCP defines no code for
	// authorization failures.
	CodeForbidden = -32003
	// CodeUnsupportedProtocolVersion is SEP-2575's code.
	CodeUnsupportedProtocolVersion = -32022
)

// Error is a JSON-RPC error response.
type Error struct {
	JSONRPC string          `json:"jsonrpc"`
	ID      json.RawMessage `json:"id"`
	Error   ErrorBody       `json:"error"`
}

// ErrorBody is the error member of a JSON-RPC error response.
type ErrorBody struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
	Data    any    `json:"data,omitempty"`
}

// ErrorResponse encodes a JSON-RPC error response to id (null when id is
// nil).
func ErrorResponse(id json.RawMessage, code int, msg string, data any) []byte {
	b, _ := json.Marshal(Error{JSONRPC: "2.0", ID: RawID(id), Error: ErrorBody{Code: code, Message: msg, Data: data}})
	return b
}

// InspectRefusal is the JSON-RPC error response (id null) to a body
// Inspect refused with err: Invalid Request for a batch reusing an id,
// Parse error for anything else.
func InspectRefusal(err error) []byte {
	if errors.Is(err, ErrDuplicateID) {
		return ErrorResponse(nil, CodeInvalidRequest, "Invalid Request: two requests in the batch have the same id", nil)
	}
	return ErrorResponse(nil, CodeParseError, "Parse error", nil)
}

// RawID returns the JSON form of a message's id for a response: the id as
// sent, or null.
func RawID(id json.RawMessage) json.RawMessage {
	if len(id) == 0 {
		return json.RawMessage("null")
	}
	return id
}

// CancelNotification encodes notifications/cancelled for a request id.
func CancelNotification(id json.RawMessage, reason string) []byte {
	b, _ := json.Marshal(map[string]any{
		"jsonrpc": "2.0",
		"method":  MethodCancelled,
		"params":  map[string]any{"requestId": id, "reason": reason},
	})
	return b
}

// FilterList removes from a list response (tools/list, prompts/list,
// resources/list) every entry of result.<member> whose <key> member is not
// a string that allowed accepts, keeping every other member of the
// response, and marks a cacheScope "private". It returns the rewritten
// response and true, or false when nothing changed or msg is not such a
// response.
//
// An entry without a usable key is removed: the filter fails closed. The
// server is trusted about its own messages; these are read only to filter
// them.
func FilterList(msg []byte, member, key string, allowed func(name string) bool) ([]byte, bool) {
	var top map[string]json.RawMessage
	if json.Unmarshal(msg, &top) != nil || top["result"] == nil {
		return nil, false
	}
	var result map[string]json.RawMessage
	if json.Unmarshal(top["result"], &result) != nil || result[member] == nil {
		return nil, false
	}
	var items []json.RawMessage
	if json.Unmarshal(result[member], &items) != nil {
		return nil, false
	}
	kept := items[:0]
	for _, it := range items {
		var entry map[string]json.RawMessage
		var name string
		if json.Unmarshal(it, &entry) == nil && isString(entry[key]) && json.Unmarshal(entry[key], &name) == nil && allowed(name) {
			kept = append(kept, it)
		}
	}
	// The filtered list depends on the token: a result that says it may be
	// cached for everyone (cacheScope "public", 2026-07-28) must say
	// "private" instead (RS-18), or a shared cache could hand one user's
	// list to another.
	private := json.RawMessage(`"private"`)
	scopeChanged := result["cacheScope"] != nil && !bytes.Equal(bytes.TrimSpace(result["cacheScope"]), private)
	if len(kept) == len(items) && !scopeChanged {
		return nil, false
	}
	if scopeChanged {
		result["cacheScope"] = private
	}
	var err error
	if result[member], err = json.Marshal(kept); err != nil {
		return nil, false
	}
	if top["result"], err = json.Marshal(result); err != nil {
		return nil, false
	}
	out, err := json.Marshal(top)
	if err != nil {
		return nil, false
	}
	return out, true
}

// isString reports whether raw is a JSON string (not null, not absent).
func isString(raw json.RawMessage) bool {
	raw = bytes.TrimSpace(raw)
	return len(raw) > 0 && raw[0] == '"'
}
