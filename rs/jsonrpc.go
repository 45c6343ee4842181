package rs

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strconv"
	"strings"
)

// MCP methods the middleware looks into.
const (
	methodCallTool  = "tools/call"
	methodListTools = "tools/list"
)

// rpcMessage is what the middleware needs from one JSON-RPC message of a
// request body.
type rpcMessage struct {
	method    string // "" for a response (or a request with method null)
	isRequest bool   // the message has a "method" member
	id        string // normalised id (see idKey); "" when absent or null
	tool      string // params.name of a tools/call
}

// errRPCParse is returned for a body the middleware refuses to forward
// because it cannot be sure how the MCP server would read it.
var errRPCParse = errors.New("rs: request body is not a JSON-RPC message the middleware can inspect")

// inspectBody reads the JSON-RPC message or batch in body.
//
// Member names match exactly, as in the MCP Go SDK, and the body is
// refused where any reader could disagree about which tool is called: a
// duplicated "method", "params", "id" or params "name", a member that is a
// case variant of one of them ("Name"), a non-string method or tool name,
// params that are not an object, or anything after the first JSON value. A refused body is never
// forwarded, so a crafted body cannot make the scope check and the server
// see different tools.
func inspectBody(body []byte) (msgs []rpcMessage, batch bool, err error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil {
		return nil, false, errRPCParse
	}
	switch tok {
	case json.Delim('['):
		batch = true
		for dec.More() {
			m, err := readMessage(dec)
			if err != nil {
				return nil, true, err
			}
			msgs = append(msgs, m)
		}
		if tok, err := dec.Token(); err != nil || tok != json.Delim(']') {
			return nil, true, errRPCParse
		}
		if len(msgs) == 0 {
			return nil, true, errRPCParse
		}
	case json.Delim('{'):
		m, err := readMembers(dec)
		if err != nil {
			return nil, false, err
		}
		msgs = []rpcMessage{m}
	default:
		return nil, false, errRPCParse
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, batch, errRPCParse
	}
	return msgs, batch, nil
}

// readMessage reads one JSON-RPC message object.
func readMessage(dec *json.Decoder) (rpcMessage, error) {
	tok, err := dec.Token()
	if err != nil || tok != json.Delim('{') {
		return rpcMessage{}, errRPCParse
	}
	return readMembers(dec)
}

// readMembers reads the members of a message object whose '{' has been
// read, through its '}'.
func readMembers(dec *json.Decoder) (rpcMessage, error) {
	var m rpcMessage
	var params json.RawMessage
	var seenMethod, seenParams, seenID bool
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return m, errRPCParse
		}
		name, _ := tok.(string)
		if foldsToMember(name, "method", "params", "id") {
			return m, errRPCParse
		}
		switch name {
		case "method":
			if seenMethod {
				return m, errRPCParse
			}
			seenMethod = true
			m.isRequest = true
			v, err := dec.Token()
			if err != nil {
				return m, errRPCParse
			}
			switch v := v.(type) {
			case string:
				m.method = v
			case nil:
			default:
				return m, errRPCParse
			}
		case "id":
			if seenID {
				return m, errRPCParse
			}
			seenID = true
			v, err := dec.Token()
			if err != nil {
				return m, errRPCParse
			}
			switch v := v.(type) {
			case string:
				m.id = "s" + v
			case json.Number:
				m.id = numberKey(v)
			case nil:
			default:
				return m, errRPCParse
			}
		case "params":
			if seenParams {
				return m, errRPCParse
			}
			seenParams = true
			if err := dec.Decode(&params); err != nil {
				return m, errRPCParse
			}
		default:
			var skip json.RawMessage
			if err := dec.Decode(&skip); err != nil {
				return m, errRPCParse
			}
		}
	}
	if tok, err := dec.Token(); err != nil || tok != json.Delim('}') {
		return m, errRPCParse
	}
	if m.method == methodCallTool {
		tool, err := toolName(params)
		if err != nil {
			return m, err
		}
		m.tool = tool
	}
	return m, nil
}

// foldsToMember reports whether key is a case variant of one of names
// without being it, such as "Name" or "paramſ" (long s) for "params".
// Decoders that match member names case-insensitively (Go's encoding/json,
// among others) would take it for the member, so the middleware refuses
// it rather than risk checking one tool while the server calls another.
func foldsToMember(key string, names ...string) bool {
	for _, n := range names {
		if key != n && strings.EqualFold(key, n) {
			return true
		}
	}
	return false
}

// toolName returns params.name of a tools/call ("" when params or name is
// absent or null).
func toolName(params json.RawMessage) (string, error) {
	if len(params) == 0 || string(params) == "null" {
		return "", nil
	}
	dec := json.NewDecoder(bytes.NewReader(params))
	tok, err := dec.Token()
	if err != nil || tok != json.Delim('{') {
		return "", errRPCParse
	}
	name, seen := "", false
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return "", errRPCParse
		}
		k, _ := tok.(string)
		if foldsToMember(k, "name") {
			return "", errRPCParse
		}
		if k == "name" {
			if seen {
				return "", errRPCParse
			}
			seen = true
			v, err := dec.Token()
			if err != nil {
				return "", errRPCParse
			}
			switch v := v.(type) {
			case string:
				name = v
			case nil:
			default:
				return "", errRPCParse
			}
			continue
		}
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return "", errRPCParse
		}
	}
	return name, nil
}

// numberKey normalises a numeric id so that 1, 1.0 and 1e0 are the same
// id, as they are to a JSON-RPC implementation that reads numbers as
// float64.
func numberKey(n json.Number) string {
	if f, err := strconv.ParseFloat(string(n), 64); err == nil {
		return "n" + strconv.FormatFloat(f, 'g', -1, 64)
	}
	return "n" + string(n)
}

// idKey normalises a raw JSON id of a response for comparison with
// rpcMessage.id.
func idKey(raw json.RawMessage) string {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return ""
	}
	switch raw[0] {
	case '"':
		var s string
		if json.Unmarshal(raw, &s) != nil {
			return ""
		}
		return "s" + s
	case 'n':
		return ""
	}
	return numberKey(json.Number(raw))
}

// rpcError is a JSON-RPC error response.
type rpcError struct {
	JSONRPC string          `json:"jsonrpc"`
	ID      json.RawMessage `json:"id"`
	Error   rpcErrorBody    `json:"error"`
}

type rpcErrorBody struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
	Data    any    `json:"data,omitempty"`
}

// JSON-RPC error codes the middleware sends.
const (
	codeParseError = -32700
	// codeForbidden is from the range JSON-RPC 2.0 §5.1 reserves for
	// implementation-defined server errors; MCP defines no code for
	// authorization failures.
	codeForbidden = -32003
)

// rawID returns the JSON form of a normalised id for a response.
func rawID(key string) json.RawMessage {
	if key == "" {
		return json.RawMessage("null")
	}
	if key[0] == 's' {
		b, _ := json.Marshal(key[1:])
		return b
	}
	return json.RawMessage(key[1:])
}

// filterToolsResult removes from a tools/list result the tools allowed
// rejects, keeping every other member, and marks a cacheScope private. It
// returns the rewritten response and true, or false when nothing changed
// (or msg is not a response with a result.tools array).
func filterToolsResult(msg []byte, allowed func(tool string) bool) ([]byte, bool) {
	var top map[string]json.RawMessage
	if json.Unmarshal(msg, &top) != nil || top["result"] == nil {
		return nil, false
	}
	var result map[string]json.RawMessage
	if json.Unmarshal(top["result"], &result) != nil || result["tools"] == nil {
		return nil, false
	}
	var tools []json.RawMessage
	if json.Unmarshal(result["tools"], &tools) != nil {
		return nil, false
	}
	kept := tools[:0]
	for _, t := range tools {
		var tool struct {
			Name string `json:"name"`
		}
		if json.Unmarshal(t, &tool) == nil && allowed(tool.Name) {
			kept = append(kept, t)
		}
	}
	// The filtered list depends on the token: a result that says it may be
	// cached for everyone (cacheScope "public", 2026-07-28) must say
	// "private" instead (RS-18), or a shared cache could hand one user's
	// list to another.
	private := json.RawMessage(`"private"`)
	scopeChanged := result["cacheScope"] != nil && !bytes.Equal(bytes.TrimSpace(result["cacheScope"]), private)
	if len(kept) == len(tools) && !scopeChanged {
		return nil, false
	}
	if scopeChanged {
		result["cacheScope"] = private
	}
	var err error
	if result["tools"], err = json.Marshal(kept); err != nil {
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

// responseID returns the normalised id of a JSON-RPC response.
func responseID(msg []byte) string {
	var r struct {
		ID json.RawMessage `json:"id"`
	}
	if json.Unmarshal(msg, &r) != nil {
		return ""
	}
	return idKey(r.ID)
}
