package mcpauthz

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
)

// The standard request headers of the MCP Streamable HTTP transport
// (SEP-2243): copies of body fields that intermediaries may route by.
const (
	HeaderProtocolVersion = "Mcp-Protocol-Version"
	HeaderMethod          = "Mcp-Method"
	HeaderName            = "Mcp-Name"
)

// StandardHeadersVersion is the first MCP protocol version whose requests
// must carry Mcp-Method (and Mcp-Name where it applies). Versions are
// dates and compare as text, as the MCP Go SDK compares them.
const StandardHeadersVersion = "2026-07-28"

// CheckHeaders checks the Mcp-Method and Mcp-Name headers of a POST
// against its body (msgs and batch as [Inspect] returned them) and returns
// what is wrong, for [WriteHeaderMismatch], or "" when nothing is.
//
// The headers exist so that a load balancer or gateway can route without
// reading the body; one that disagrees with the body would let the router
// and the MCP server (or the policy checked here and the server) act on
// different methods or tools. So:
//
//   - With Mcp-Protocol-Version 2026-07-28 or later and a body of one
//     request (a message with a method and an id), as the MCP Go SDK
//     v1.8.0 server checks it, Mcp-Method is required
//     and must be the method, and for tools/call, prompts/get and
//     resources/read Mcp-Name is required and must be the tool or prompt
//     name or the resource URI. Notifications and responses need neither:
//     2026-07-28 defines no header for them.
//   - At every version, a header that is sent must match: Mcp-Method the
//     body's method (a response has none), and Mcp-Name the name or URI
//     the policy reads ([Subject]: of tools/call, prompts/get,
//     resources/read, subscribe and unsubscribe, and params.ref of
//     completion/complete). On other methods Mcp-Name names nothing the
//     policy checks, so it is left to the server: the tasks extension
//     (SEP-2663) puts a task id there. A batch may carry neither header,
//     since one header cannot describe several messages. An older client
//     that sends no such header meets none of this.
//   - Either header sent more than once is refused: the gateway forwards
//     every value, and a server reading another than the first could
//     disagree with this check.
//
// An Mcp-Name of the form =?base64?…?= is decoded before it is compared,
// as SEP-2243 requires (clients encode names that are not plain ASCII that
// way); a plain value is compared as it is, so a client that sends a
// non-ASCII name unencoded, as the Go SDK v1.8.0 client does, still
// matches.
//
// Mcp-Param-* headers (a tool's x-mcp-header arguments) are not checked:
// which arguments a tool mirrors is in its input schema, which only the
// MCP server knows (a gateway would have to trust and remember each
// session's tools/list); the server checks them itself, and no policy here
// reads them.
func CheckHeaders(h http.Header, msgs []Message, batch bool) (problem string) {
	for _, name := range []string{HeaderMethod, HeaderName} {
		if n := len(h.Values(name)); n > 1 {
			return "Header mismatch: the " + name + " header is sent " + strconv.Itoa(n) + " times; send it once"
		}
	}
	method, name := h.Get(HeaderMethod), h.Get(HeaderName)
	if batch || len(msgs) != 1 {
		if method != "" || name != "" {
			return "Header mismatch: Mcp-Method and Mcp-Name describe one message; a batch cannot carry them"
		}
		return ""
	}
	m := &msgs[0]
	required := m.IsCall() && h.Get(HeaderProtocolVersion) >= StandardHeadersVersion
	switch {
	case method == "" && required:
		return "Header mismatch: the Mcp-Method header is required from protocol version " + StandardHeadersVersion +
			" on; it must be the request's method " + quote(m.Method)
	case method != "" && method != m.Method:
		return "Header mismatch: Mcp-Method header value " + quote(method) + " does not match body value " + quote(m.Method)
	}
	kind, target := Subject(m)
	switch {
	case name == "":
		if required && namedByHeader(m.Method) {
			return "Header mismatch: the Mcp-Name header is required for " + quote(m.Method) + " from protocol version " +
				StandardHeadersVersion + " on; it must be " + quote(target)
		}
	case kind != "":
		decoded, ok := decodeHeaderValue(name)
		if !ok {
			return "Header mismatch: Mcp-Name header value " + quote(name) + " is not valid =?base64?...?= encoding"
		}
		if decoded != target {
			return "Header mismatch: Mcp-Name header value " + quote(name) + " does not match body value " + quote(target)
		}
	}
	return ""
}

// namedByHeader reports whether a request of method must carry Mcp-Name
// from [StandardHeadersVersion] on.
func namedByHeader(method string) bool {
	switch method {
	case MethodCallTool, MethodGetPrompt, MethodReadResource:
		return true
	}
	return false
}

// The sentinel of a Base64-encoded header value (SEP-2243 "Value
// Encoding"); case-sensitive.
const (
	base64Prefix = "=?base64?"
	base64Suffix = "?="
)

// decodeHeaderValue returns the value v stands for: the decoded bytes of
// =?base64?…?=, or v itself. ok is false for a sentinel whose content is
// not standard Base64.
func decodeHeaderValue(v string) (string, bool) {
	rest, ok := strings.CutPrefix(v, base64Prefix)
	if !ok {
		return v, true
	}
	enc, ok := strings.CutSuffix(rest, base64Suffix)
	if !ok {
		return v, true
	}
	b, err := base64.StdEncoding.DecodeString(enc)
	if err != nil {
		return "", false
	}
	return string(b), true
}

// quote is a client-supplied value as an error message shows it: clipped
// and quoted, with anything unprintable escaped.
func quote(s string) string { return strconv.Quote(Clip(s)) }

// WriteHeaderMismatch answers 400 with a JSON-RPC HeaderMismatch error
// ([CodeHeaderMismatch]) whose message is problem (from [CheckHeaders]),
// to the id of the request: that of a single message, null for a batch
// or a notification.
func WriteHeaderMismatch(w http.ResponseWriter, msgs []Message, batch bool, problem string) {
	var id json.RawMessage
	if !batch && len(msgs) == 1 {
		id = msgs[0].ID
	}
	WriteJSON(w, http.StatusBadRequest, ErrorResponse(id, CodeHeaderMismatch, problem, nil))
}
