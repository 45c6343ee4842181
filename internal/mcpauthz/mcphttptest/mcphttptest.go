// Package mcphttptest speaks MCP's Streamable HTTP transport by hand, for
// tests that need to see what a protected server (package rs, the gateway)
// sends on the wire: event ids, replayed streams, status codes.
package mcphttptest

import (
	"bufio"
	"net/http"
	"strings"
	"testing"
	"time"
)

// Client sends requests to one MCP endpoint with one bearer token.
type Client struct {
	URL, Token string
	// Session is the Mcp-Session-Id sent with every request; Initialize
	// sets it.
	Session string
}

// Do sends a request (header holds extra name, value pairs) and returns
// the response with its body read up to and including the first event or
// line carrying a JSON-RPC result: a stream stays open after it.
func (c *Client) Do(t testing.TB, method, body string, header ...string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, c.URL, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+c.Token)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("Mcp-Protocol-Version", "2025-11-25")
	if c.Session != "" {
		req.Header.Set("Mcp-Session-Id", c.Session)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b strings.Builder
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		b.WriteString(sc.Text() + "\n")
		if strings.Contains(sc.Text(), `"result"`) {
			break
		}
	}
	return resp, b.String()
}

// Initialize opens a session: initialize, then notifications/initialized.
func (c *Client) Initialize(t testing.TB) {
	t.Helper()
	resp, body := c.Do(t, http.MethodPost, `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"mcphttptest","version":"1"}}}`)
	c.Session = resp.Header.Get("Mcp-Session-Id")
	if c.Session == "" {
		t.Fatalf("initialize = %d without a session id: %s", resp.StatusCode, body)
	}
	c.Do(t, http.MethodPost, `{"jsonrpc":"2.0","method":"notifications/initialized"}`)
}

// Resume opens a GET stream resuming after the event lastEventID, and
// returns it as Do does. The stream being resumed was closed by this side
// (Do stops reading after the result), but the server may not have
// noticed yet and answer 409 Conflict for a moment: Resume retries that
// for up to 5 seconds.
func (c *Client) Resume(t testing.TB, lastEventID string) (*http.Response, string) {
	t.Helper()
	giveUp := time.After(5 * time.Second)
	for {
		resp, body := c.Do(t, http.MethodGet, "", "Last-Event-ID", lastEventID)
		if resp.StatusCode != http.StatusConflict {
			return resp, body
		}
		select {
		case <-giveUp:
			return resp, body
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// FirstEventID returns the id of the first event in an event stream body,
// or "".
func FirstEventID(body string) string {
	for _, l := range strings.Split(body, "\n") {
		if id, ok := strings.CutPrefix(l, "id: "); ok {
			return id
		}
	}
	return ""
}

// SmuggleCase is an answer from a protected server to Request that a
// client would take for a tools/list result (review finding F2): it must
// reach the client filtered, or (Refused) be replaced by a JSON-RPC error.
type SmuggleCase struct {
	Name, Request, ContentType string
	Status                     int
	Body                       string
	Refused                    bool
}

// SmuggledLists returns the answers of review finding F2, each carrying a
// tools list with allowed and denied: a twin "ID" member, a string id, a
// "Method" member, a leading BOM, a Content-Type that only includes
// application/json, a 2xx other than 200, and a list on another POST's
// response or stream. rs and the gateway run the same cases, so that
// they filter alike.
func SmuggledLists(allowed, denied string) []SmuggleCase {
	list := `"result":{"tools":[{"name":"` + allowed + `"},{"name":"` + denied + `"}]}}`
	const listReq = `{"jsonrpc":"2.0","id":7,"method":"tools/list"}`
	const ping = `{"jsonrpc":"2.0","id":8,"method":"ping"}`
	return []SmuggleCase{
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
		{"another POST's response", ping, "application/json", 200, `[{"jsonrpc":"2.0","id":8,"result":{}},{"jsonrpc":"2.0","id":7,` + list + `]`, false},
		{"another POST's stream", ping, "text/event-stream", 200, `data: {"jsonrpc":"2.0","id":7,` + list + "\n\n", false},
	}
}
