package gateway

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strconv"
	"strings"
)

// MCP methods the gateway looks into.
const (
	methodInitialize    = "initialize"
	methodDiscover      = "server/discover"
	methodCallTool      = "tools/call"
	methodListTools     = "tools/list"
	methodGetPrompt     = "prompts/get"
	methodListPrompts   = "prompts/list"
	methodReadResource  = "resources/read"
	methodListResources = "resources/list"
	methodProgress      = "notifications/progress"
	methodCancelled     = "notifications/cancelled"
)

// JSON-RPC error codes the gateway sends.
const (
	codeParseError     = -32700
	codeInvalidRequest = -32600
	codeInternal       = -32603
	// codeUpstreamClosed is what the MCP SDKs use for a closed connection.
	codeUpstreamClosed = -32000
	// codeTimeout is the MCP SDKs' request timeout code.
	codeTimeout = -32001
	// codeForbidden matches package rs: an implementation-defined server
	// error (JSON-RPC 2.0 §5.1); MCP defines no authorization code.
	codeForbidden = -32003
	// codeUnsupportedProtocolVersion is SEP-2575's code, sent to
	// server/discover on stdio routes, which keep sessions.
	codeUnsupportedProtocolVersion = -32022
)

// message is what the gateway needs from one JSON-RPC message of a request
// body.
type message struct {
	raw       json.RawMessage // the message as sent
	method    string          // "" for a response
	isRequest bool            // has a "method" member
	id        json.RawMessage // raw id; nil when absent or null
	idKey     string          // normalised id (see idKey); "" when absent or null
	name      string          // params.name of tools/call and prompts/get
	uri       string          // params.uri of resources/read
	progress  string          // normalised params._meta.progressToken, "" if none
}

// isCall reports whether m is a request that expects a response.
func (m *message) isCall() bool { return m.isRequest && m.idKey != "" }

// errParse is returned for a body the gateway refuses to forward because
// it cannot be sure how the upstream would read it.
var errParse = errors.New("gateway: request body is not a JSON-RPC message the gateway can inspect")

// inspect reads the JSON-RPC message or batch in body.
//
// As in package rs, member names match exactly (as in the MCP SDKs) and
// the body is refused where two readers could disagree about what is
// called: a duplicated "method", "params" or "id", a duplicated params
// "name" or "uri", a member that is a case variant of one of them, a
// non-string method, name or uri, params that are not an object, or
// anything after the first JSON value. The upstream receives exactly what
// was checked.
func inspect(body []byte) (msgs []message, batch bool, err error) {
	trimmed := bytes.TrimLeft(body, " \t\r\n")
	if len(trimmed) == 0 {
		return nil, false, errParse
	}
	if trimmed[0] == '[' {
		var raws []json.RawMessage
		dec := json.NewDecoder(bytes.NewReader(body))
		if err := dec.Decode(&raws); err != nil || len(raws) == 0 {
			return nil, true, errParse
		}
		if _, err := dec.Token(); err != io.EOF {
			return nil, true, errParse
		}
		for _, raw := range raws {
			m, err := inspectOne(raw)
			if err != nil {
				return nil, true, err
			}
			msgs = append(msgs, m)
		}
		return msgs, true, nil
	}
	m, err := inspectOne(body)
	if err != nil {
		return nil, false, err
	}
	return []message{m}, false, nil
}

// inspectOne reads one message object; raw must hold exactly one JSON
// value.
func inspectOne(raw []byte) (message, error) {
	m := message{raw: raw}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil || tok != json.Delim('{') {
		return m, errParse
	}
	var params json.RawMessage
	var seenMethod, seenParams, seenID bool
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return m, errParse
		}
		key, _ := tok.(string)
		if foldsTo(key, "method", "params", "id") {
			return m, errParse
		}
		switch key {
		case "method":
			if seenMethod {
				return m, errParse
			}
			seenMethod, m.isRequest = true, true
			v, err := dec.Token()
			if err != nil {
				return m, errParse
			}
			s, ok := v.(string)
			if !ok {
				return m, errParse
			}
			m.method = s
		case "id":
			if seenID {
				return m, errParse
			}
			seenID = true
			var v json.RawMessage
			if err := dec.Decode(&v); err != nil {
				return m, errParse
			}
			switch k := idKey(v); {
			case k == "" && !bytes.Equal(bytes.TrimSpace(v), []byte("null")):
				return m, errParse // an object, array or boolean id
			case k != "":
				m.id, m.idKey = v, k
			}
		case "params":
			if seenParams {
				return m, errParse
			}
			seenParams = true
			if err := dec.Decode(&params); err != nil {
				return m, errParse
			}
		default:
			var skip json.RawMessage
			if err := dec.Decode(&skip); err != nil {
				return m, errParse
			}
		}
	}
	if tok, err := dec.Token(); err != nil || tok != json.Delim('}') {
		return m, errParse
	}
	if _, err := dec.Token(); err != io.EOF {
		return m, errParse
	}
	if !m.isRequest {
		return m, nil
	}
	if len(params) > 0 && !bytes.Equal(params, []byte("null")) {
		p, err := readParams(params)
		if err != nil {
			return m, err
		}
		switch m.method {
		case methodCallTool, methodGetPrompt:
			m.name = p.name
		case methodReadResource:
			m.uri = p.uri
		}
		m.progress = p.progress
	}
	return m, nil
}

// paramsInfo is what the gateway reads from params.
type paramsInfo struct {
	name, uri, progress string
}

// readParams reads params.name, params.uri and params._meta.progressToken
// strictly: duplicates, case variants and non-string values of name and
// uri are refused; a progress token is read loosely (it only routes
// notifications).
func readParams(params json.RawMessage) (paramsInfo, error) {
	var p paramsInfo
	dec := json.NewDecoder(bytes.NewReader(params))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil || tok != json.Delim('{') {
		return p, errParse
	}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return p, errParse
		}
		key, _ := tok.(string)
		if foldsTo(key, "name", "uri") {
			return p, errParse
		}
		switch key {
		case "name", "uri":
			if seen[key] {
				return p, errParse
			}
			seen[key] = true
			v, err := dec.Token()
			if err != nil {
				return p, errParse
			}
			s, ok := v.(string)
			if !ok {
				return p, errParse
			}
			if key == "name" {
				p.name = s
			} else {
				p.uri = s
			}
		case "_meta":
			var meta struct {
				ProgressToken json.RawMessage `json:"progressToken"`
			}
			var raw json.RawMessage
			if err := dec.Decode(&raw); err != nil {
				return p, errParse
			}
			if json.Unmarshal(raw, &meta) == nil {
				p.progress = idKey(meta.ProgressToken)
			}
		default:
			var skip json.RawMessage
			if err := dec.Decode(&skip); err != nil {
				return p, errParse
			}
		}
	}
	if tok, err := dec.Token(); err != nil || tok != json.Delim('}') {
		return p, errParse
	}
	return p, nil
}

// foldsTo reports whether key is a case variant of one of names without
// being it ("Name", or "paramſ" with a long s): decoders that match member
// names case-insensitively would take it for the member.
func foldsTo(key string, names ...string) bool {
	for _, n := range names {
		if key != n && strings.EqualFold(key, n) {
			return true
		}
	}
	return false
}

// idKey normalises a raw JSON id (or progress token) for comparison: "s"
// plus a string, "n" plus a number (so 1, 1.0 and 1e0 are the same, as to
// an implementation that reads numbers as float64), or "" for null,
// absent or anything else.
func idKey(raw json.RawMessage) string {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return ""
	}
	switch c := raw[0]; {
	case c == '"':
		var s string
		if json.Unmarshal(raw, &s) != nil {
			return ""
		}
		return "s" + s
	case c == '-' || (c >= '0' && c <= '9'):
		if f, err := strconv.ParseFloat(string(raw), 64); err == nil {
			return "n" + strconv.FormatFloat(f, 'g', -1, 64)
		}
	}
	return ""
}

// rawID returns the JSON form of a message's id for a response: the id
// as sent, or null.
func rawID(id json.RawMessage) json.RawMessage {
	if len(id) == 0 {
		return json.RawMessage("null")
	}
	return id
}

// upstreamMessage is what the gateway reads from a message an upstream
// sends. The upstream is trusted about its own messages; these are read
// only to route them and to filter list results.
type upstreamMessage struct {
	ID     json.RawMessage `json:"id"`
	Method *string         `json:"method"`
	Params struct {
		ProgressToken json.RawMessage `json:"progressToken"`
	} `json:"params"`
}

// rpcError is a JSON-RPC error response.
type rpcError struct {
	JSONRPC string          `json:"jsonrpc"`
	ID      json.RawMessage `json:"id"`
	Error   rpcErrorBody    `json:"error"`
}

// rpcErrorBody is the error member of a JSON-RPC error response.
type rpcErrorBody struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
	Data    any    `json:"data,omitempty"`
}

// errorResponse encodes a JSON-RPC error response to id.
func errorResponse(id json.RawMessage, code int, msg string, data any) []byte {
	b, _ := json.Marshal(rpcError{JSONRPC: "2.0", ID: rawID(id), Error: rpcErrorBody{Code: code, Message: msg, Data: data}})
	return b
}

// cancelNotification encodes notifications/cancelled for a request id.
func cancelNotification(id json.RawMessage, reason string) []byte {
	b, _ := json.Marshal(map[string]any{
		"jsonrpc": "2.0",
		"method":  methodCancelled,
		"params":  map[string]any{"requestId": id, "reason": reason},
	})
	return b
}

// clip shortens a client-supplied name for an error description or log.
func clip(s string) string {
	const n = 64
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
