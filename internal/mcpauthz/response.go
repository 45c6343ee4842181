package mcpauthz

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
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
	// CodeHeaderMismatch is SEP-2243's HeaderMismatch (MCP 2026-07-28,
	// Streamable HTTP): the Mcp-Method or Mcp-Name header is missing or
	// does not match the body (see [CheckHeaders]).
	CodeHeaderMismatch = -32020
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
// Inspect refused with err: Invalid Request for a batch reusing an id or
// too large (naming the limit, also as data.max_batch_messages), Parse
// error for anything else.
func InspectRefusal(err error) []byte {
	if errors.Is(err, ErrDuplicateID) {
		return ErrorResponse(nil, CodeInvalidRequest, "Invalid Request: two requests in the batch have the same id", nil)
	}
	if errors.Is(err, ErrRequestWithoutID) {
		return ErrorResponse(nil, CodeInvalidRequest, "Invalid Request: a request needs an id (a string or a number); only notifications/* may be sent without one", nil)
	}
	var tooLarge *BatchTooLargeError
	if errors.As(err, &tooLarge) {
		return ErrorResponse(nil, CodeInvalidRequest,
			fmt.Sprintf("Invalid Request: the batch has %d messages; at most %d are allowed in one batch (max_batch_messages)", tooLarge.Len, tooLarge.Max),
			map[string]int{"max_batch_messages": tooLarge.Max})
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

// RewriteMessages hands fn the JSON-RPC message in data, or each message
// of a batch, and returns data with the messages fn rewrote (a batch
// re-encoded) and true, or data and false when fn rewrote none. fn
// reports whether it rewrote its message. A batch that is not a JSON
// array of values is returned as it is.
func RewriteMessages(data []byte, fn func(msg []byte) ([]byte, bool)) ([]byte, bool) {
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) == 0 || trimmed[0] != '[' {
		if out, ok := fn(trimmed); ok {
			return out, true
		}
		return data, false
	}
	var batch []json.RawMessage
	if json.Unmarshal(trimmed, &batch) != nil {
		return data, false
	}
	changed := false
	for i, m := range batch {
		if out, ok := fn(m); ok {
			batch[i], changed = out, true
		}
	}
	if !changed {
		return data, false
	}
	b, err := json.Marshal(batch)
	if err != nil {
		return data, false
	}
	return b, true
}

// FilterList removes from a list response (tools/list, prompts/list,
// resources/list) every entry of result.<member> whose <key> member is not
// a string that allowed accepts, keeping every other member of the
// response, and marks a cacheScope "private". It returns the rewritten
// response and true, or false when msg is not such a response.
//
// Clients differ in how they read JSON (exact or case-insensitive member
// names, first or last of duplicated members), and the filter must leave
// nothing any of them would read as a denied entry. So members are found
// case-insensitively ("Result", "TOOLS", "nAme" count), an entry whose key
// is absent, not a string or given twice in different cases is removed
// (the filter fails closed), and a list response is always re-encoded from
// what was checked, which also drops duplicated members. The server is
// trusted about its own messages; they are read only to filter them.
func FilterList(msg []byte, member, key string, allowed func(name string) bool) ([]byte, bool) {
	// Most answers are no list: skip decoding one whose text cannot hold
	// the member's name in any case. A JSON name spells its letters as
	// they are or as \u escapes, and the only other characters that fold
	// to ASCII letters are U+017F (to s) and U+212A (to k), which Go's
	// decoder matches too; without any of them, no member decodes to it.
	if !containsFold(msg, member) && !bytes.Contains(msg, []byte(`\u`)) &&
		!bytes.Contains(msg, []byte("\u017f")) && !bytes.Contains(msg, []byte("\u212a")) {
		return nil, false
	}
	var top map[string]json.RawMessage
	if json.Unmarshal(msg, &top) != nil {
		return nil, false
	}
	found := false
	for k, raw := range top {
		if !strings.EqualFold(k, "result") {
			continue
		}
		if out, ok := filterResult(raw, member, key, allowed); ok {
			top[k], found = out, true
		}
	}
	if !found {
		return nil, false
	}
	out, err := json.Marshal(top)
	if err != nil {
		return nil, false
	}
	return out, true
}

// filterResult filters the result object of a list response; ok is false
// when raw is not an object with a <member> array.
func filterResult(raw json.RawMessage, member, key string, allowed func(string) bool) (json.RawMessage, bool) {
	var result map[string]json.RawMessage
	if json.Unmarshal(raw, &result) != nil {
		return nil, false
	}
	found := false
	for k, v := range result {
		if !strings.EqualFold(k, member) {
			continue
		}
		var items []json.RawMessage
		if json.Unmarshal(v, &items) != nil {
			continue
		}
		kept := make([]json.RawMessage, 0, len(items))
		for _, it := range items {
			var entry map[string]json.RawMessage
			if json.Unmarshal(it, &entry) != nil {
				continue
			}
			if name, ok := entryName(entry, key); ok && allowed(name) {
				b, err := json.Marshal(entry)
				if err != nil {
					continue
				}
				kept = append(kept, b)
			}
		}
		b, err := json.Marshal(kept)
		if err != nil {
			return nil, false
		}
		result[k], found = b, true
	}
	if !found {
		return nil, false
	}
	// The filtered list depends on the token: a result that says it may be
	// cached for everyone (cacheScope "public", 2026-07-28) must say
	// "private" instead (RS-18), or a shared cache could hand one user's
	// list to another. An absent cacheScope means "public", so it is
	// added (older revisions ignore the member).
	scoped := false
	for k := range result {
		if strings.EqualFold(k, "cacheScope") {
			result[k], scoped = json.RawMessage(`"private"`), true
		}
	}
	if !scoped {
		result["cacheScope"] = json.RawMessage(`"private"`)
	}
	b, err := json.Marshal(result)
	if err != nil {
		return nil, false
	}
	return b, true
}

// entryName returns the string value of the entry's member key, found
// case-insensitively; ok is false when there is none, more than one, or it
// is not a string.
func entryName(entry map[string]json.RawMessage, key string) (name string, ok bool) {
	n := 0
	var raw json.RawMessage
	for k, v := range entry {
		if strings.EqualFold(k, key) {
			n, raw = n+1, v
		}
	}
	if n != 1 || !isString(raw) || json.Unmarshal(raw, &name) != nil {
		return "", false
	}
	return name, true
}

// isString reports whether raw is a JSON string (not null, not absent).
func isString(raw json.RawMessage) bool {
	raw = bytes.TrimSpace(raw)
	return len(raw) > 0 && raw[0] == '"'
}

// containsFold reports whether b contains word, ASCII letters compared
// without case (word is lower case).
func containsFold(b []byte, word string) bool {
	n := len(word)
	for i := 0; i+n <= len(b); i++ {
		j := 0
		for ; j < n; j++ {
			c := b[i+j]
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			if c != word[j] {
				break
			}
		}
		if j == n {
			return true
		}
	}
	return false
}
