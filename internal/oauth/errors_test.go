package oauth

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestWriteJSON(t *testing.T) {
	for _, tt := range []struct {
		name       string
		err        error
		status     int
		body       string
		header     string // Retry-After
		cacheStore string
	}{
		{"description restricted to RFC 6749 §5.2 characters", New(InvalidScope, "the scope %q is not defined; caf\u00e9\n", "a\\b"), 400,
			`{"error":"invalid_scope","error_description":"the scope 'a??b' is not defined; caf??"}`, "", "no-store"},
		{"status and headers", New(SlowDown, "wait").WithStatus(http.StatusTooManyRequests).WithHeader("Retry-After", "7"), 429,
			`{"error":"slow_down","error_description":"wait"}`, "7", "no-store"},
		{"anything else hides its text", errors.New("db password=hunter2 refused"), 500,
			`{"error":"server_error","error_description":"the server hit an internal error; try again later"}`, "", "no-store"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			WriteJSON(rec, tt.err)
			if rec.Code != tt.status {
				t.Errorf("status = %d, want %d", rec.Code, tt.status)
			}
			var got, want any
			if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
				t.Fatalf("body %q: %v", rec.Body, err)
			}
			json.Unmarshal([]byte(tt.body), &want)
			gb, _ := json.Marshal(got)
			wb, _ := json.Marshal(want)
			if string(gb) != string(wb) {
				t.Errorf("body = %s, want %s", gb, wb)
			}
			if h := rec.Header(); h.Get("Retry-After") != tt.header || h.Get("Cache-Control") != tt.cacheStore || h.Get("Content-Type") != "application/json" {
				t.Errorf("headers = %v", h)
			}
		})
	}
}
