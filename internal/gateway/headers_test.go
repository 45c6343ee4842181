package gateway

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/gatehouse-mcp/gatehouse/internal/mcpauthz"
)

// TestHeaderMismatch (issue 13 item 2, SEP-2243): on an HTTP route, a
// POST whose Mcp-Method or Mcp-Name disagrees with its body, or a
// 2026-07-28 request without them, is answered 400 with a JSON-RPC
// HeaderMismatch error (-32020) for the request's id, before the policy
// and before anything reaches the upstream (which forwards these headers,
// and could route by them); a matching request, and an older one without
// the headers, reach the upstream. The upstream here checks nothing
// itself, so every refusal seen is the gateway's.
func TestHeaderMismatch(t *testing.T) {
	var mu sync.Mutex
	var seen []string // the bodies the upstream received
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		seen = append(seen, string(body))
		mu.Unlock()
		var msg struct {
			ID json.RawMessage `json:"id"`
		}
		json.Unmarshal(body, &msg)
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"jsonrpc":"2.0","id":%s,"result":{"content":[{"type":"text","text":"ran"}]}}`, msg.ID)
	}))
	t.Cleanup(up.Close)
	tg := newTestGateway(t, []Route{httpRoute(up.URL)}, nil)
	url := tg.base + "/up/mcp"

	const modern = "2026-07-28"
	call := func(id int, tool string) string {
		return fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":%q,"arguments":{}}}`, id, tool)
	}
	for _, tt := range []struct {
		name    string
		token   string
		id      int
		body    string
		headers []string // name, value pairs, added in order
		pass    bool     // reaches the upstream; else refused with -32020
	}{
		{"Mcp-Name names another tool", "alice-admin", 1, call(1, "echo"),
			[]string{headerProtocolVersion, modern, headerMethod, "tools/call", headerName, "admin_reset"}, false},
		{"Mcp-Method names another method", "alice-admin", 2, call(2, "echo"),
			[]string{headerProtocolVersion, modern, headerMethod, "tools/list", headerName, "echo"}, false},
		{"2026-07-28 without the headers", "alice-admin", 3, call(3, "echo"),
			[]string{headerProtocolVersion, modern}, false},
		{"2026-07-28 without Mcp-Name", "alice-admin", 4, call(4, "echo"),
			[]string{headerProtocolVersion, modern, headerMethod, "tools/call"}, false},
		{"2026-07-28 without Mcp-Method", "alice-admin", 5, `{"jsonrpc":"2.0","id":5,"method":"tools/list"}`,
			[]string{headerProtocolVersion, modern}, false},
		// Before the policy: a token without fake:admin gets the header
		// error, not a step-up for the tool in the body or the header.
		{"a mismatch is not a step-up", "alice-read", 6, call(6, "admin_reset"),
			[]string{headerProtocolVersion, modern, headerMethod, "tools/call", headerName, "echo"}, false},
		{"Mcp-Name sent twice", "alice-admin", 7, call(7, "echo"),
			[]string{headerProtocolVersion, modern, headerMethod, "tools/call", headerName, "echo", headerName, "admin_reset"}, false},
		{"an older version's mismatch", "alice-admin", 8, call(8, "echo"),
			[]string{headerProtocolVersion, "2025-06-18", headerName, "admin_reset"}, false},
		{"2026-07-28 with matching headers", "alice-read", 9, call(9, "echo"),
			[]string{headerProtocolVersion, modern, headerMethod, "tools/call", headerName, "echo"}, true},
		{"an encoded Mcp-Name", "alice-read", 10, call(10, "echo"),
			[]string{headerProtocolVersion, modern, headerMethod, "tools/call", headerName, "=?base64?ZWNobw==?="}, true},
		{"an older version without the headers", "alice-read", 11, call(11, "echo"),
			[]string{headerProtocolVersion, "2025-06-18"}, true},
		{"no version, no headers", "alice-read", 12, call(12, "echo"), nil, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			mu.Lock()
			before := len(seen)
			mu.Unlock()
			req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(tt.body))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Accept", "application/json, text/event-stream")
			req.Header.Set("Authorization", "Bearer "+tt.token)
			for i := 0; i+1 < len(tt.headers); i += 2 {
				req.Header.Add(tt.headers[i], tt.headers[i+1])
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			msgs := readMessages(t, resp)
			mu.Lock()
			reached := len(seen) - before
			mu.Unlock()
			if tt.pass {
				if resp.StatusCode != http.StatusOK || len(msgs) != 1 || msgs[0].Error != nil || reached != 1 {
					t.Errorf("POST = %d %s, upstream reached %d times; want 200, a result, one upstream request", resp.StatusCode, describe(msgs), reached)
				}
				return
			}
			if resp.StatusCode != http.StatusBadRequest || len(msgs) != 1 || msgs[0].Error == nil ||
				msgs[0].Error.Code != mcpauthz.CodeHeaderMismatch || string(msgs[0].ID) != fmt.Sprint(tt.id) ||
				!strings.HasPrefix(msgs[0].Error.Message, "Header mismatch: ") || reached != 0 {
				t.Errorf("POST = %d %s, upstream reached %d times; want 400, JSON-RPC error %d for id %d, nothing forwarded",
					resp.StatusCode, describe(msgs), reached, mcpauthz.CodeHeaderMismatch, tt.id)
			}
		})
	}
}

// describe shows JSON-RPC responses for a test failure.
func describe(msgs []rpcResult) string {
	var out []string
	for _, m := range msgs {
		if m.Error != nil {
			out = append(out, fmt.Sprintf("{id %s error %d %q}", m.ID, m.Error.Code, m.Error.Message))
		} else {
			out = append(out, fmt.Sprintf("{id %s result %s}", m.ID, m.Result))
		}
	}
	return "[" + strings.Join(out, " ") + "]"
}
