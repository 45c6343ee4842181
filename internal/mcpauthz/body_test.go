package mcpauthz

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// errReader fails every read, as a body cut off by the client does.
type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errors.New("connection reset") }

// TestReadBody pins the one answer rs and the gateway give a body they
// cannot read: a JSON-RPC error response with id null (MCP transport,
// "Sending Messages to the Server"), 413 naming the limit for a body too
// long, 400 for one that could not be read; a body of exactly the limit is
// read whole.
func TestReadBody(t *testing.T) {
	const max = 16
	tests := []struct {
		name       string
		body       io.Reader
		wantOK     bool
		wantStatus int
		wantBody   string
	}{
		{"empty", strings.NewReader(""), true, 0, ""},
		{"at the limit", strings.NewReader(strings.Repeat("x", max)), true, 0, strings.Repeat("x", max)},
		{"one byte over", strings.NewReader(strings.Repeat("x", max+1)), false, http.StatusRequestEntityTooLarge,
			`{"jsonrpc":"2.0","id":null,"error":{"code":-32600,"message":"request body exceeds 16 bytes"}}` + "\n"},
		{"unreadable", errReader{}, false, http.StatusBadRequest,
			`{"jsonrpc":"2.0","id":null,"error":{"code":-32600,"message":"could not read the request body"}}` + "\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := httptest.NewRecorder()
			r := httptest.NewRequest(http.MethodPost, "/mcp", tt.body)
			got, ok := ReadBody(w, r, max)
			if ok != tt.wantOK {
				t.Fatalf("ReadBody(%s) ok = %v, want %v", tt.name, ok, tt.wantOK)
			}
			if ok {
				if string(got) != tt.wantBody {
					t.Errorf("ReadBody(%s) = %q, want %q", tt.name, got, tt.wantBody)
				}
				if w.Body.Len() != 0 {
					t.Errorf("ReadBody(%s) answered %q, want nothing written", tt.name, w.Body)
				}
				return
			}
			if w.Code != tt.wantStatus || w.Body.String() != tt.wantBody || w.Header().Get("Content-Type") != "application/json" {
				t.Errorf("ReadBody(%s) answered %d %q %s, want %d application/json %s", tt.name, w.Code, w.Header().Get("Content-Type"), w.Body, tt.wantStatus, tt.wantBody)
			}
		})
	}
}
