package gateway

import (
	"net/http"
	"strings"
	"testing"

	"github.com/gatehouse-mcp/gatehouse/internal/mcpauthz"
)

// TestRequestWithoutIDRefused (review of issue 20 F1): a tools/call without
// an id, or with "id": null, is a JSON-RPC notification that an upstream
// may still run, with no answer and so no outcome: it is refused (400,
// -32600) before anything is forwarded, alone or in a batch, on HTTP and
// stdio routes, and the audit log stays equal to what the upstream ran.
func TestRequestWithoutIDRefused(t *testing.T) {
	for _, route := range []string{"up", "fake"} {
		for _, body := range []string{
			`{"jsonrpc":"2.0","method":"tools/call","params":{"name":"echo","arguments":{"message":"no-id"}}}`,
			`{"jsonrpc":"2.0","id":null,"method":"tools/call","params":{"name":"echo","arguments":{"message":"null-id"}}}`,
			`[{"jsonrpc":"2.0","method":"tools/call","params":{"name":"echo","arguments":{"message":"batch-no-id"}}}]`,
		} {
			routes, ran := auditRoutes(t)
			tg := newTestGateway(t, routes, nil)
			c := newRawClient(t, tg.base+"/"+route+"/mcp", "alice-read")
			c.initialize()
			resp, msgs := c.post(body)
			if resp.StatusCode != http.StatusBadRequest || len(msgs) != 1 || msgs[0].Error == nil || msgs[0].Error.Code != mcpauthz.CodeInvalidRequest ||
				!strings.Contains(msgs[0].Error.Message, "a request needs an id") {
				t.Errorf("%s %s = %d %+v, want 400 and -32600 saying a request needs an id", route, body, resp.StatusCode, msgs)
			}
			c.callTool("echo", map[string]any{"message": "with-id"}) // one that runs
			tg.Close()
			got := ran[route].list(t)
			calls, _ := auditedCalls(t, tg, route)
			if len(got) != 1 || calls != 1 {
				t.Errorf("%s %s: the upstream ran %q and the audit log has %d records, want only the call with an id in both", route, body, got, calls)
			}
		}
	}
}
