// Package mcpauthz is the MCP authorization engine package rs and the
// gateway share to authorize MCP requests before an MCP server sees them:
// reading the JSON-RPC messages of a request body strictly enough that the
// check and the server cannot disagree about what is called ([Inspect]),
// the check that the Mcp-Method and Mcp-Name headers agree with that
// body ([CheckHeaders]), the scope policy ([Policy]: exact, prefix and default rules per tool,
// prompt and resource, scopes per method, the scope hierarchy) and its
// decisions, the step-up challenge ([WriteStepUp], one wording for both),
// the filtering of list results in JSON and in server-sent events
// ([Policy.FilterList], [EventSplitter], [RewriteEvent]), the reading of
// a request body within its size limit ([ReadBody]), and the JSON-RPC and
// OAuth error responses both send ([WriteJSON]).
//
// Both places must read a body the same way: a body one of them forwarded
// and the other refused, or a tool name one read differently, would be a
// hole in one of them. So there is one reader, fuzzed once.
package mcpauthz

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// MCP methods the authorization looks into.
const (
	MethodInitialize    = "initialize"
	MethodDiscover      = "server/discover"
	MethodCallTool      = "tools/call"
	MethodListTools     = "tools/list"
	MethodGetPrompt     = "prompts/get"
	MethodListPrompts   = "prompts/list"
	MethodReadResource  = "resources/read"
	MethodSubscribe     = "resources/subscribe"
	MethodUnsubscribe   = "resources/unsubscribe"
	MethodListResources = "resources/list"
	MethodComplete      = "completion/complete"
	MethodProgress      = "notifications/progress"
	MethodCancelled     = "notifications/cancelled"
)

// Message is what the authorization needs from one JSON-RPC message of a
// request body.
type Message struct {
	Raw       json.RawMessage // the message as sent
	Method    string          // "" for a response
	IsRequest bool            // the message has a "method" member
	ID        json.RawMessage // the id as sent; nil when absent or null
	IDKey     string          // the normalised id (see IDKey); "" when absent or null
	Name      string          // params.name of tools/call and prompts/get; params.ref.name of completion/complete
	URI       string          // params.uri of resources/read, subscribe and unsubscribe; params.ref.uri of completion/complete
	Ref       string          // params.ref.type of completion/complete ("ref/prompt", "ref/resource")
	Progress  string          // the normalised params._meta.progressToken; "" if none
}

// IsCall reports whether m is a request that expects a response.
func (m *Message) IsCall() bool { return m.IsRequest && m.IDKey != "" }

// ErrUninspectable is returned for a body that must not be forwarded
// because the check cannot be sure how the MCP server would read it.
var ErrUninspectable = errors.New("mcpauthz: request body is not a JSON-RPC message that can be inspected safely")

// ErrDuplicateID is returned for a batch in which two requests have the
// same id (after normalisation: 1 and 1.0 are the same). MCP forbids
// reusing a request id in a session, and responses are matched to
// requests by id: with two requests under one id, a response could be
// taken for the other's and escape the list filter or the audit log.
var ErrDuplicateID = errors.New("mcpauthz: two requests in the batch have the same id")

// ErrRequestWithoutID is returned for a message with a method other than
// notifications/* and no id (or a null one). MCP requests carry an id;
// without one a tools/call is a JSON-RPC notification that an upstream may
// still run, unanswered, so nothing would record its outcome and the
// gateway's audit log would not see it as a call.
var ErrRequestWithoutID = errors.New("mcpauthz: a request has no id")

// BatchTooLargeError is returned for a batch of more messages than the
// caller allows. Every message of a batch is checked, forwarded and (for
// a tool call) audited, so the count is bounded like the body's size.
type BatchTooLargeError struct {
	Len, Max int
}

func (e *BatchTooLargeError) Error() string {
	return fmt.Sprintf("mcpauthz: the batch has %d messages; at most %d are allowed", e.Len, e.Max)
}

// Inspect reads the JSON-RPC message or batch in body. A batch of more
// than maxBatch messages is refused with a [*BatchTooLargeError] before
// any message is read; maxBatch <= 0 allows any number.
//
// Member names match exactly, as in the MCP SDKs, and the body is refused
// wherever two readers could disagree about what is called: a duplicated
// "method", "params" or "id"; a member that is a case variant of one of
// them ("Method", or "paramſ" with a long s, which Go's encoding/json and
// other case-insensitive decoders take for the member); a method that is
// not a string; an id that is not a string, a number or null; params that
// are not an object or null; for tools/call and prompts/get a duplicated,
// case-variant or non-string params "name", for resources/read, subscribe
// and unsubscribe the same of "uri", and for completion/complete the same
// of "ref" (which must be an object) and of its "type", "name" and "uri";
// or anything after the first JSON value. The server then receives exactly the bytes that were checked. A batch in which two
// requests share an id is refused with ErrDuplicateID, and a message with
// a method other than notifications/* but no id with ErrRequestWithoutID.
func Inspect(body []byte, maxBatch int) (msgs []Message, batch bool, err error) {
	trimmed := bytes.TrimLeft(body, " \t\r\n")
	if len(trimmed) == 0 {
		return nil, false, ErrUninspectable
	}
	if trimmed[0] == '[' {
		var raws []json.RawMessage
		dec := json.NewDecoder(bytes.NewReader(body))
		if err := dec.Decode(&raws); err != nil || len(raws) == 0 {
			return nil, true, ErrUninspectable
		}
		if _, err := dec.Token(); err != io.EOF {
			return nil, true, ErrUninspectable
		}
		if maxBatch > 0 && len(raws) > maxBatch {
			return nil, true, &BatchTooLargeError{Len: len(raws), Max: maxBatch}
		}
		msgs = make([]Message, 0, len(raws))
		ids := make(map[string]bool, len(raws))
		for _, raw := range raws {
			m, err := inspectOne(raw)
			if err != nil {
				return nil, true, err
			}
			if m.IsCall() {
				if ids[m.IDKey] {
					return nil, true, ErrDuplicateID
				}
				ids[m.IDKey] = true
			}
			msgs = append(msgs, m)
		}
		return msgs, true, nil
	}
	m, err := inspectOne(body)
	if err != nil {
		return nil, false, err
	}
	return []Message{m}, false, nil
}

// inspectOne reads one message object (raw must hold exactly one JSON
// value) and refuses a request without an id that is not a notification
// (ErrRequestWithoutID, whose comment says why), in a batch or alone.
func inspectOne(raw []byte) (Message, error) {
	m, err := parseOne(raw)
	if err == nil && m.IsRequest && m.IDKey == "" && !strings.HasPrefix(m.Method, "notifications/") {
		return m, ErrRequestWithoutID
	}
	return m, err
}

// parseOne is inspectOne without the rule about ids.
func parseOne(raw []byte) (Message, error) {
	m := Message{Raw: raw}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil || tok != json.Delim('{') {
		return m, ErrUninspectable
	}
	var params json.RawMessage
	var seenMethod, seenParams, seenID bool
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return m, ErrUninspectable
		}
		key, _ := tok.(string)
		if foldsTo(key, "method", "params", "id") {
			return m, ErrUninspectable
		}
		switch key {
		case "method":
			if seenMethod {
				return m, ErrUninspectable
			}
			seenMethod, m.IsRequest = true, true
			v, err := dec.Token()
			if err != nil {
				return m, ErrUninspectable
			}
			s, ok := v.(string)
			if !ok {
				return m, ErrUninspectable
			}
			m.Method = s
		case "id":
			if seenID {
				return m, ErrUninspectable
			}
			seenID = true
			var v json.RawMessage
			if err := dec.Decode(&v); err != nil {
				return m, ErrUninspectable
			}
			switch k := IDKey(v); {
			case k == "" && !bytes.Equal(bytes.TrimSpace(v), []byte("null")):
				// An object, array or boolean id, or a number no
				// float64 holds.
				return m, ErrUninspectable
			case k != "":
				m.ID, m.IDKey = v, k
			}
		case "params":
			if seenParams {
				return m, ErrUninspectable
			}
			seenParams = true
			if err := dec.Decode(&params); err != nil {
				return m, ErrUninspectable
			}
		default:
			var skip json.RawMessage
			if err := dec.Decode(&skip); err != nil {
				return m, ErrUninspectable
			}
		}
	}
	if tok, err := dec.Token(); err != nil || tok != json.Delim('}') {
		return m, ErrUninspectable
	}
	if _, err := dec.Token(); err != io.EOF {
		return m, ErrUninspectable
	}
	if !m.IsRequest || len(params) == 0 || bytes.Equal(bytes.TrimSpace(params), []byte("null")) {
		return m, nil
	}
	var strict string
	switch m.Method {
	case MethodCallTool, MethodGetPrompt:
		strict = "name"
	case MethodReadResource, MethodSubscribe, MethodUnsubscribe:
		strict = "uri"
	case MethodComplete:
		strict = "ref"
	}
	target, progress, err := readParams(params, strict)
	if err != nil {
		return m, err
	}
	switch strict {
	case "uri":
		m.URI = target
	case "ref":
		ref, err := readStrings([]byte(target), "type", "name", "uri")
		if err != nil {
			return m, err
		}
		m.Ref, m.Name, m.URI = ref["type"], ref["name"], ref["uri"]
	default:
		m.Name = target
	}
	m.Progress = progress
	return m, nil
}

// readParams reads the params object: the member named strict strictly
// (a duplicate, a case variant or a non-string value is refused; an
// absent member is ""; "ref" must be an object, returned as its JSON),
// and _meta.progressToken loosely, since it only routes notifications.
// Params that are not an object are refused.
func readParams(params json.RawMessage, strict string) (target, progress string, err error) {
	dec := json.NewDecoder(bytes.NewReader(params))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil || tok != json.Delim('{') {
		return "", "", ErrUninspectable
	}
	seen := false
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return "", "", ErrUninspectable
		}
		key, _ := tok.(string)
		if strict != "" && foldsTo(key, strict) {
			return "", "", ErrUninspectable
		}
		switch {
		case strict != "" && key == strict:
			if seen {
				return "", "", ErrUninspectable
			}
			seen = true
			if strict == "ref" {
				var raw json.RawMessage
				if err := dec.Decode(&raw); err != nil || !bytes.HasPrefix(bytes.TrimSpace(raw), []byte("{")) {
					return "", "", ErrUninspectable
				}
				target = string(raw)
				continue
			}
			v, err := dec.Token()
			if err != nil {
				return "", "", ErrUninspectable
			}
			s, ok := v.(string)
			if !ok {
				return "", "", ErrUninspectable
			}
			target = s
		case key == "_meta":
			var raw json.RawMessage
			if err := dec.Decode(&raw); err != nil {
				return "", "", ErrUninspectable
			}
			var meta struct {
				ProgressToken json.RawMessage `json:"progressToken"`
			}
			if json.Unmarshal(raw, &meta) == nil {
				progress = IDKey(meta.ProgressToken)
			}
		default:
			var skip json.RawMessage
			if err := dec.Decode(&skip); err != nil {
				return "", "", ErrUninspectable
			}
		}
	}
	if tok, err := dec.Token(); err != nil || tok != json.Delim('}') {
		return "", "", ErrUninspectable
	}
	return target, progress, nil
}

// readStrings reads the JSON object raw strictly for the members names: a
// duplicate, a case variant or a non-string value of one is refused; the
// others are skipped. Absent members are missing from the map.
func readStrings(raw []byte, names ...string) (map[string]string, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	tok, err := dec.Token()
	if err != nil || tok != json.Delim('{') {
		return nil, ErrUninspectable
	}
	out := map[string]string{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, ErrUninspectable
		}
		key, _ := tok.(string)
		if foldsTo(key, names...) {
			return nil, ErrUninspectable
		}
		if !slices.Contains(names, key) {
			var skip json.RawMessage
			if err := dec.Decode(&skip); err != nil {
				return nil, ErrUninspectable
			}
			continue
		}
		if _, dup := out[key]; dup {
			return nil, ErrUninspectable
		}
		v, err := dec.Token()
		if err != nil {
			return nil, ErrUninspectable
		}
		s, ok := v.(string)
		if !ok {
			return nil, ErrUninspectable
		}
		out[key] = s
	}
	if tok, err := dec.Token(); err != nil || tok != json.Delim('}') {
		return nil, ErrUninspectable
	}
	return out, nil
}

// foldsTo reports whether key is a case variant of one of names without
// being it: decoders that match member names case-insensitively would
// take it for the member.
func foldsTo(key string, names ...string) bool {
	for _, n := range names {
		if key != n && strings.EqualFold(key, n) {
			return true
		}
	}
	return false
}

// IDKey normalises a raw JSON id (or progress token) for comparison: "s"
// plus a string, "n" plus a number (so that 1, 1.0 and 1e0 are the same
// id, as they are to an implementation that reads numbers as float64), or
// "" for null, absent, or anything else.
func IDKey(raw json.RawMessage) string {
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

// ResponseID returns the normalised id (see IDKey) of a JSON-RPC message
// an MCP server sent, or "" when it has none. The member "id" is read
// exactly (see ResponseHead).
func ResponseID(msg []byte) string {
	h, _ := ResponseHead(msg)
	return h.IDKey
}

// Clip shortens a client-supplied name for an error description or a log
// line, at a character boundary.
func Clip(s string) string {
	const n = 64
	if len(s) <= n {
		return s
	}
	i := n
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return s[:i] + "..."
}
