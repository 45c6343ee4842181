package rs

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gatehouse-mcp/gatehouse/internal/mcpauthz"
	"github.com/gatehouse-mcp/gatehouse/internal/mcpauthz/mcphttptest"
)

// TestReviewF2ListSmuggle: review finding F2. A tools/list answer that a
// client takes for the answer (exact "id", Number(id), a leading BOM
// stripped, a Content-Type that includes application/json, any 2xx, or
// on another POST's response) never reaches it with a tool the token may
// not call: the list is filtered or the response replaced by a JSON-RPC
// error.
func TestReviewF2ListSmuggle(t *testing.T) {
	for _, tt := range mcphttptest.SmuggledLists("list_notes", "delete_note") {
		t.Run(tt.Name, func(t *testing.T) {
			a := newTestAS(t)
			v := newVerifier(t, a, newClock(), nil)
			mcp := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", tt.ContentType)
				w.WriteHeader(tt.Status)
				w.Write([]byte(tt.Body))
			})
			srv := httptest.NewServer(RequireBearer(v, testOptions())(mcp))
			defer srv.Close()
			code, _, body := post(t, srv, a.token(nil), tt.Request)
			if tt.Refused {
				want := `{"jsonrpc":"2.0","id":7,"error":{"code":-32603,"message":"` + mcpauthz.UnfilterableText + `"}}` + "\n"
				if code != http.StatusInternalServerError || body != want {
					t.Errorf("POST answered %s = %d %q, want 500 %q", tt.ContentType, code, body, want)
				}
			} else if !strings.Contains(body, "list_notes") {
				t.Errorf("POST answered %s %q = %d %q, want the list with list_notes", tt.ContentType, tt.Body, code, body)
			}
			if strings.Contains(body, "delete_note") {
				t.Errorf("POST %s answered %s %q = %d %q: the denied tool delete_note reached the client", tt.Request, tt.ContentType, tt.Body, code, body)
			}
		})
	}
}
