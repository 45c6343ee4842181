package mcpauthz

import (
	"encoding/json"
	"net/http"
	"strings"

	"github.com/gatehouse-mcp/gatehouse/internal/oauth"
)

// The kinds of reference of completion/complete (params.ref.type).
const (
	RefPrompt   = "ref/prompt"
	RefResource = "ref/resource"
)

// OAuthBody is the JSON body of an error answer that is not a JSON-RPC
// message (the RFC 6749 §5.2 shape, as RFC 6750 §3 uses it).
type OAuthBody struct {
	Error       string `json:"error"`
	Description string `json:"error_description,omitempty"`
}

// OAuthError returns the OAuthBody of error code with description.
func OAuthError(code, description string) OAuthBody {
	return OAuthBody{Error: code, Description: description}
}

// WriteJSON answers with status and body: JSON bytes as they are (a
// JSON-RPC message built by [ErrorResponse]), or any other value
// marshalled. It sets Content-Type: application/json and Cache-Control:
// no-store (an error about a token must not be cached), drops a
// Content-Length the next handler may have set, and ends the body with a
// newline.
func WriteJSON(w http.ResponseWriter, status int, body any) {
	b, ok := body.([]byte)
	if !ok {
		b, _ = json.Marshal(body)
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Del("Content-Length")
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}

// Subject returns what m asks a policy about: its kind ("tool", "prompt"
// or "resource") and its name or URI; kind is "" for a message no name
// rule applies to.
func Subject(m *Message) (kind, name string) {
	switch {
	case m.Method == MethodCallTool:
		return "tool", m.Name
	case m.Method == MethodGetPrompt, m.Method == MethodComplete && m.Ref == RefPrompt:
		return "prompt", m.Name
	case NamesResource(m):
		return "resource", m.URI
	}
	return "", ""
}

// NamesResource reports whether m names a resource (or resource template)
// by URI: resources/read, subscribe and unsubscribe, and completions of a
// resource template's arguments.
func NamesResource(m *Message) bool {
	switch m.Method {
	case MethodReadResource, MethodSubscribe, MethodUnsubscribe:
		return true
	case MethodComplete:
		return m.Ref == RefResource
	}
	return false
}

// StepUpText is the error_description of a step-up challenge for need,
// caused by denied (nil, or a message without a method, when no one
// message is to blame): "tool add_note needs scope notes:read
// notes:write", with "prompt", "resource" or the method in place of
// "tool", or "the request" when nothing names it. The name comes from
// the request: it is clipped, and the text passes through
// [oauth.SafeText], so the header and the bodies carry the same text.
func StepUpText(denied *Message, need []string) string {
	what := "the request"
	if denied != nil {
		if kind, name := Subject(denied); kind != "" && name != "" {
			what = kind + " " + noParams.Replace(Clip(name))
		} else if denied.Method != "" {
			what = noParams.Replace(Clip(denied.Method))
		}
	}
	return oauth.SafeText(what + " needs scope " + strings.Join(need, " "))
}

// noParams keeps a name from the request from reading as a challenge
// parameter inside error_description: a tool named
// "x resource_metadata=https://evil.example/" would fool a client that
// finds parameters with a regular expression (the MCP TypeScript SDK
// does), though the header itself is well-formed.
var noParams = strings.NewReplacer("=", "_", ",", "_")

// WriteStepUp answers 403 with the step-up challenge of RFC 6750 §3.1 and
// MCP step-up authorization: WWW-Authenticate: Bearer
// error="insufficient_scope", scope="<every scope in need>",
// resource_metadata (when metadataURL is not empty) and
// error_description (see [StepUpText]). For a single JSON-RPC request
// (msgs of one call, not a batch) the body is a JSON-RPC error response
// with the request's id, so a client that cannot step up fails that call,
// not its connection; otherwise it is an [OAuthBody].
func WriteStepUp(w http.ResponseWriter, metadataURL string, need []string, denied *Message, batch bool, msgs []Message) {
	desc := StepUpText(denied, need)
	scope := strings.Join(need, " ")
	w.Header().Set("WWW-Authenticate", oauth.Challenge("Bearer",
		oauth.Param{Name: "error", Value: "insufficient_scope"},
		oauth.Param{Name: "scope", Value: scope},
		oauth.Param{Name: "resource_metadata", Value: metadataURL},
		oauth.Param{Name: "error_description", Value: desc},
	))
	if !batch && len(msgs) == 1 && msgs[0].IsCall() {
		WriteJSON(w, http.StatusForbidden, ErrorResponse(msgs[0].ID, CodeForbidden, "insufficient_scope: "+desc,
			map[string]string{"error": "insufficient_scope", "error_description": desc, "scope": scope}))
		return
	}
	WriteJSON(w, http.StatusForbidden, OAuthError("insufficient_scope", desc))
}
