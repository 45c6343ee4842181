package gateway

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gatehouse-mcp/gatehouse/internal/mcpauthz"
)

// TestReviewF2ListSmuggle: review finding F2. A tools/list answer that a
// client takes for the answer (exact "id", Number(id), a leading BOM
// stripped, a Content-Type that includes application/json, on another
// POST's response) but the gateway did not recognise never reaches the
// client with a tool the token may not call: the list is filtered or the
// response replaced by a JSON-RPC error.
func TestReviewF2ListSmuggle(t *testing.T) {
	const list = `"result":{"tools":[{"name":"echo"},{"name":"admin_reset"}]}}`
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
		{"another POST's response", `{"jsonrpc":"2.0","id":8,"method":"ping"}`, "application/json", 200, `[{"jsonrpc":"2.0","id":8,"result":{}},{"jsonrpc":"2.0","id":7,` + list + `]`, false},
		{"another POST's stream", `{"jsonrpc":"2.0","id":8,"method":"ping"}`, "text/event-stream", 200, `data: {"jsonrpc":"2.0","id":7,` + list + "\n\n", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				io.ReadAll(r.Body)
				w.Header().Set("Content-Type", tt.ct)
				w.WriteHeader(tt.status)
				w.Write([]byte(tt.body))
			}))
			defer up.Close()
			route := httpRoute(up.URL)
			route.ListTools = mcpauthz.ListGranted
			tg := newTestGateway(t, []Route{route}, nil)
			req, _ := http.NewRequest(http.MethodPost, tg.base+"/up/mcp", strings.NewReader(tt.req))
			req.Header.Set("Authorization", "Bearer alice-read")
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Accept", "application/json, text/event-stream")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if tt.refused {
				if resp.StatusCode != http.StatusBadGateway || !strings.Contains(string(body), `"id":7,"error":{"code":-32603,"message":"gateway: `+mcpauthz.UnfilterableText) {
					t.Errorf("POST answered %s = %d %q, want 502 and a JSON-RPC error -32603 for id 7", tt.ct, resp.StatusCode, body)
				}
			} else if !strings.Contains(string(body), `"echo"`) {
				t.Errorf("POST answered %s %q = %d %q, want the list with echo", tt.ct, tt.body, resp.StatusCode, body)
			}
			if strings.Contains(string(body), "admin_reset") {
				t.Errorf("POST %s answered %s %q = %d %q: the denied tool admin_reset reached the client", tt.req, tt.ct, tt.body, resp.StatusCode, body)
			}
		})
	}
}
