package mcpauthz

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestStepUpText(t *testing.T) {
	need := []string{"notes:read", "notes:write"}
	for _, tt := range []struct {
		name   string
		denied *Message
		want   string
	}{
		{"tool", &Message{Method: MethodCallTool, Name: "add_note"}, "tool add_note needs scope notes:read notes:write"},
		{"prompt", &Message{Method: MethodGetPrompt, Name: "summary"}, "prompt summary needs scope notes:read notes:write"},
		{"resource", &Message{Method: MethodReadResource, URI: "file:///a"}, "resource file:///a needs scope notes:read notes:write"},
		{"completion of a prompt", &Message{Method: MethodComplete, Ref: RefPrompt, Name: "p"}, "prompt p needs scope notes:read notes:write"},
		{"completion of a resource template", &Message{Method: MethodComplete, Ref: RefResource, URI: "file:///{x}"}, "resource file:///{x} needs scope notes:read notes:write"},
		{"another method", &Message{Method: MethodInitialize}, "initialize needs scope notes:read notes:write"},
		{"a tool call without a name names the method", &Message{Method: MethodCallTool}, "tools/call needs scope notes:read notes:write"},
		{"no message", nil, "the request needs scope notes:read notes:write"},
		{"an empty message", &Message{}, "the request needs scope notes:read notes:write"},
		{"a name that could break the header", &Message{Method: MethodCallTool, Name: "a\"b\\c\r\nd"}, "tool a'b?c??d needs scope notes:read notes:write"},
		{"a name posing as a challenge parameter", &Message{Method: MethodCallTool, Name: "x resource_metadata=https://evil.example/p, scope=admin"}, "tool x resource_metadata_https://evil.example/p_ scope_admin needs scope notes:read notes:write"},
		{"a long name is clipped", &Message{Method: MethodCallTool, Name: strings.Repeat("x", 100)}, "tool " + strings.Repeat("x", 64) + "... needs scope notes:read notes:write"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := StepUpText(tt.denied, need); got != tt.want {
				t.Errorf("StepUpText(%+v) = %q, want %q", tt.denied, got, tt.want)
			}
		})
	}
}

func TestWriteStepUp(t *testing.T) {
	const meta = "https://mcp.example.com/.well-known/oauth-protected-resource/mcp"
	call := Message{Method: MethodCallTool, Name: "add_note", IsRequest: true, ID: []byte(`7`), IDKey: "n7"}
	note := Message{Method: "notifications/initialized", IsRequest: true}
	need := []string{"notes:read", "notes:write"}
	const challenge = `Bearer error="insufficient_scope", scope="notes:read notes:write", resource_metadata="` + meta +
		`", error_description="tool add_note needs scope notes:read notes:write"`
	for _, tt := range []struct {
		name     string
		batch    bool
		msgs     []Message
		wantBody string
	}{
		{"a single call gets a JSON-RPC error with its id", false, []Message{call},
			`{"jsonrpc":"2.0","id":7,"error":{"code":-32003,"message":"insufficient_scope: tool add_note needs scope notes:read notes:write",` +
				`"data":{"error":"insufficient_scope","error_description":"tool add_note needs scope notes:read notes:write","scope":"notes:read notes:write"}}}`},
		{"a batch of one gets an OAuth body", true, []Message{call},
			`{"error":"insufficient_scope","error_description":"tool add_note needs scope notes:read notes:write"}`},
		{"several messages get an OAuth body", false, []Message{call, note},
			`{"error":"insufficient_scope","error_description":"tool add_note needs scope notes:read notes:write"}`},
		{"a notification gets an OAuth body", false, []Message{note},
			`{"error":"insufficient_scope","error_description":"tool add_note needs scope notes:read notes:write"}`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			w := httptest.NewRecorder()
			w.Header().Set("Content-Length", "99")
			WriteStepUp(w, meta, need, &call, tt.batch, tt.msgs)
			got := struct {
				Status                               int
				Challenge, Type, Cache, Length, Body string
			}{w.Code, w.Header().Get("WWW-Authenticate"), w.Header().Get("Content-Type"), w.Header().Get("Cache-Control"),
				w.Header().Get("Content-Length"), strings.TrimSuffix(w.Body.String(), "\n")}
			want := struct {
				Status                               int
				Challenge, Type, Cache, Length, Body string
			}{http.StatusForbidden, challenge, "application/json", "no-store", "", tt.wantBody}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("WriteStepUp answer (-want +got):\n%s", diff)
			}
		})
	}
}
