package gateway

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/gatehouse-mcp/gatehouse/internal/mcpauthz"
	"github.com/gatehouse-mcp/gatehouse/rs"
)

// TestEventLineEndingsAgree sends a tools/list answered by an event
// stream whose lines end in LF, CRLF, CR or a mix (all three are line
// endings: WHATWG HTML §9.2.6) through rs.RequireBearer and through the
// gateway, each with the same policy: both pass the list on filtered, the
// same, as a client reads it. The gateway used to split lines on LF only,
// and so never saw a CR-separated event end.
func TestEventLineEndingsAgree(t *testing.T) {
	for _, tt := range []struct{ name, eol string }{
		{"LF", "\n"}, {"CRLF", "\r\n"}, {"CR", "\r"}, {"mixed", "\r\n|\r|\n"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			eols := strings.Split(tt.eol, "|")
			upstream := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				body, _ := io.ReadAll(r.Body)
				var req struct {
					ID json.RawMessage `json:"id"`
				}
				json.Unmarshal(body, &req)
				lines := []string{
					": a comment", "",
					"event: message",
					`data: {"jsonrpc":"2.0","id":` + string(req.ID) + `,`,
					`data: "result":{"tools":[{"name":"echo"},{"name":"admin_reset"}]}}`,
					"", "",
				}
				var b strings.Builder
				for i, l := range lines {
					b.WriteString(l)
					b.WriteString(eols[i%len(eols)])
				}
				w.Header().Set("Content-Type", "text/event-stream")
				w.Write([]byte(b.String()))
			})
			up := httptest.NewServer(upstream)
			defer up.Close()
			v, _ := testVerifier("")
			direct := httptest.NewServer(rs.RequireBearer(v, &rs.Options{
				Scopes:     []string{"fake:read"},
				ToolScopes: map[string][]string{"admin_reset": {"fake:admin"}},
				ListTools:  rs.ListGranted,
			})(upstream))
			defer direct.Close()
			// Both filter (granted): the filtering is under test.
			route := httpRoute(up.URL)
			route.ListTools = mcpauthz.ListGranted
			tg := newTestGateway(t, []Route{route}, nil)

			got := map[string][]string{}
			for place, url := range map[string]string{"rs": direct.URL, "gateway": tg.base + "/up/mcp"} {
				req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(`{"jsonrpc":"2.0","id":7,"method":"tools/list"}`))
				req.Header.Set("Authorization", "Bearer alice-read")
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("Accept", "application/json, text/event-stream")
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				for _, data := range eventData(string(body)) {
					var m rpcResult
					if err := json.Unmarshal([]byte(data), &m); err != nil || string(m.ID) != "7" || m.Result == nil {
						t.Errorf("%s: event data %q is not the tools/list response (%v)", place, data, err)
						continue
					}
					got[place] = append(got[place], names(t, m, "tools", "name")...)
				}
			}
			want := map[string][]string{"rs": {"echo"}, "gateway": {"echo"}}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("tools listed to alice-read through rs and the gateway (-want +got):\n%s", diff)
			}
		})
	}
}

// eventData reads an event stream as a client does (WHATWG HTML §9.2.6,
// written here independently of mcpauthz): the data of every event that
// has some, in order.
func eventData(stream string) []string {
	var out []string
	var data []string
	has := false
	for _, line := range regexp.MustCompile(`\r\n|\r|\n`).Split(stream, -1) {
		field, value, colon := strings.Cut(line, ":")
		switch {
		case line == "":
			if has {
				out = append(out, strings.Join(data, "\n"))
			}
			data, has = nil, false
		case field == "data":
			if colon {
				value = strings.TrimPrefix(value, " ")
			}
			data, has = append(data, value), true
		}
	}
	return out
}

// TestEventTooLarge checks that an upstream event over MaxMessageBytes
// ends the stream with a JSON-RPC error for the call, whatever its line
// endings, and that nothing of the event reaches the client.
func TestEventTooLarge(t *testing.T) {
	for _, eol := range []string{"\n", "\r"} {
		up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/event-stream")
			w.Write([]byte("data: {\"jsonrpc\":\"2.0\",\"id\":7,\"result\":{\"tools\":[{\"name\":\"admin_" + strings.Repeat("x", 2000) + "\"}]}}" + eol + eol))
		}))
		route := httpRoute(up.URL)
		route.MaxMessageBytes = 1000
		tg := newTestGateway(t, []Route{route}, nil)
		req, _ := http.NewRequest(http.MethodPost, tg.base+"/up/mcp", strings.NewReader(`{"jsonrpc":"2.0","id":7,"method":"tools/list"}`))
		req.Header.Set("Authorization", "Bearer alice-read")
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		up.Close()
		data := eventData(string(body))
		if len(data) != 1 || strings.Contains(string(body), "admin_") || mcpauthz.ResponseID([]byte(data[0])) != "n7" || !strings.Contains(data[0], `"code":-32000`) {
			t.Errorf("eol %q: an event over MaxMessageBytes came out as %q, want only a JSON-RPC error for id 7", eol, body)
		}
	}
}
