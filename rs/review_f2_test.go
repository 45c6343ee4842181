package rs

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gatehouse-mcp/gatehouse/internal/mcpauthz"
)

// TestReviewF2ListSmuggle: review finding F2. A tools/list answer that a
// client takes for the answer (exact "id", Number(id), a leading BOM
// stripped, a Content-Type that includes application/json, any 2xx, or
// on another POST's response) never reaches it with a tool the token may
// not call: the list is filtered or the response replaced by a JSON-RPC
// error.
func TestReviewF2ListSmuggle(t *testing.T) {
	const list = `"result":{"tools":[{"name":"list_notes"},{"name":"delete_note"}]}}`
	const listReq = `{"jsonrpc":"2.0","id":7,"method":"tools/list"}`
	for _, tt := range []struct {
		name, req, ct string
		status        int
		body          string
		refused       bool // answered with the JSON-RPC error, not filtered
	}{
		{"ID twin", listReq, "application/json", 200, `{"jsonrpc":"2.0","id":7,"ID":8,` + list, false},
		{"string id", listReq, "application/json", 200, `{"jsonrpc":"2.0","id":"7",` + list, false},
		{"Method member", listReq, "application/json", 200, `{"jsonrpc":"2.0","id":7,"Method":"x",` + list, false},
		{"BOM json", listReq, "application/json", 200, "\ufeff" + `{"jsonrpc":"2.0","id":7,` + list, false},
		{"BOM sse", listReq, "text/event-stream", 200, "\ufeffdata: " + `{"jsonrpc":"2.0","id":7,` + list + "\n\n", false},
		{"sse ID twin", listReq, "text/event-stream", 200, `data: {"jsonrpc":"2.0","id":7,"ID":8,` + list + "\n\n", false},
		{"ct list", listReq, "application/json, text/plain", 200, `{"jsonrpc":"2.0","id":7,` + list, true},
		{"ct garbage", listReq, "application/json garbage", 200, `{"jsonrpc":"2.0","id":7,` + list, true},
		{"status 201", listReq, "application/json", 201, `{"jsonrpc":"2.0","id":7,` + list, false},
		{"status 201 sse", listReq, "text/event-stream", 201, `data: {"jsonrpc":"2.0","id":7,` + list + "\n\n", false},
		{"another POST's response", `{"jsonrpc":"2.0","id":8,"method":"ping"}`, "application/json", 200, `[{"jsonrpc":"2.0","id":8,"result":{}},{"jsonrpc":"2.0","id":7,` + list + `]`, false},
		{"another POST's stream", `{"jsonrpc":"2.0","id":8,"method":"ping"}`, "text/event-stream", 200, `data: {"jsonrpc":"2.0","id":7,` + list + "\n\n", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			a := newTestAS(t)
			v := newVerifier(t, a, newClock(), nil)
			mcp := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", tt.ct)
				w.WriteHeader(tt.status)
				w.Write([]byte(tt.body))
			})
			srv := httptest.NewServer(RequireBearer(v, testOptions())(mcp))
			defer srv.Close()
			code, _, body := post(t, srv, a.token(nil), tt.req)
			if tt.refused {
				want := `{"jsonrpc":"2.0","id":7,"error":{"code":-32603,"message":"` + mcpauthz.UnfilterableText + `"}}` + "\n"
				if code != http.StatusInternalServerError || body != want {
					t.Errorf("POST answered %s = %d %q, want 500 %q", tt.ct, code, body, want)
				}
			} else if !strings.Contains(body, "list_notes") {
				t.Errorf("POST answered %s %q = %d %q, want the list with list_notes", tt.ct, tt.body, code, body)
			}
			if strings.Contains(body, "delete_note") {
				t.Errorf("POST %s answered %s %q = %d %q: the denied tool delete_note reached the client", tt.req, tt.ct, tt.body, code, body)
			}
		})
	}
}
