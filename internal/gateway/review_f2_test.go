package gateway

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gatehouse-mcp/gatehouse/internal/mcpauthz"
	"github.com/gatehouse-mcp/gatehouse/internal/mcpauthz/mcphttptest"
)

// TestReviewF2ListSmuggle: review finding F2. A tools/list answer that a
// client takes for the answer (exact "id", Number(id), a leading BOM
// stripped, a Content-Type that includes application/json, on another
// POST's response) but the gateway did not recognise never reaches the
// client with a tool the token may not call: the list is filtered or the
// response replaced by a JSON-RPC error.
func TestReviewF2ListSmuggle(t *testing.T) {
	for _, tt := range mcphttptest.SmuggledLists("echo", "admin_reset") {
		t.Run(tt.Name, func(t *testing.T) {
			up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				io.ReadAll(r.Body)
				w.Header().Set("Content-Type", tt.ContentType)
				w.WriteHeader(tt.Status)
				w.Write([]byte(tt.Body))
			}))
			defer up.Close()
			route := httpRoute(up.URL)
			route.ListTools = mcpauthz.ListGranted
			tg := newTestGateway(t, []Route{route}, nil)
			req, _ := http.NewRequest(http.MethodPost, tg.base+"/up/mcp", strings.NewReader(tt.Request))
			req.Header.Set("Authorization", "Bearer alice-read")
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Accept", "application/json, text/event-stream")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if tt.Refused {
				if resp.StatusCode != http.StatusBadGateway || !strings.Contains(string(body), `"id":7,"error":{"code":-32603,"message":"gateway: `+mcpauthz.UnfilterableText) {
					t.Errorf("POST answered %s = %d %q, want 502 and a JSON-RPC error -32603 for id 7", tt.ContentType, resp.StatusCode, body)
				}
			} else if !strings.Contains(string(body), `"echo"`) {
				t.Errorf("POST answered %s %q = %d %q, want the list with echo", tt.ContentType, tt.Body, resp.StatusCode, body)
			}
			if strings.Contains(string(body), "admin_reset") {
				t.Errorf("POST %s answered %s %q = %d %q: the denied tool admin_reset reached the client", tt.Request, tt.ContentType, tt.Body, resp.StatusCode, body)
			}
		})
	}
}
