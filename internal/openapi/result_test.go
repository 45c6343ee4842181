package openapi

import (
	"encoding/json"
	"io"
	"net/http"
	"reflect"
	"strings"
	"testing"
)

func response(status int, contentType, body string) *http.Response {
	h := make(http.Header)
	if contentType != "" {
		h.Set("Content-Type", contentType)
	}
	return &http.Response{StatusCode: status, Header: h, Body: io.NopCloser(strings.NewReader(body))}
}

func TestResult(t *testing.T) {
	tools, _ := toolsOf(t, loadFixture(t, fixtures[0]), Options{})
	list, one := tools["listPets"], tools["get_pets_petId"]
	del := tools["deletePet"]
	long := strings.Repeat("x", 3000)
	tests := []struct {
		name           string
		tool           *Tool
		resp           *http.Response
		max            int64
		wantText       string
		wantStructured map[string]any
		wantError      bool
	}{
		{"object", one, response(200, "application/json", `{"id":"1","name":"Rex","n":12345678901234567890}`), 1 << 20,
			`{"id":"1","name":"Rex","n":12345678901234567890}`, map[string]any{"id": "1", "name": "Rex", "n": json.Number("12345678901234567890")}, false},
		{"array wrapped when the output schema says so", list, response(200, "application/json; charset=utf-8", `[{"id":"1"}]`), 1 << 20,
			`[{"id":"1"}]`, map[string]any{"items": []any{map[string]any{"id": "1"}}}, false},
		{"array not wrapped otherwise", one, response(200, "application/json", `[1,2]`), 1 << 20, `[1,2]`, nil, false},
		{"scalar", one, response(200, "application/json", `"ok"`), 1 << 20, `"ok"`, nil, false},
		{"vendor JSON type", one, response(200, "application/vnd.github+json", `{"a":1}`), 1 << 20, `{"a":1}`, map[string]any{"a": json.Number("1")}, false},
		{"JSON body without a JSON type is text", one, response(200, "text/plain", `{"a":1}`), 1 << 20, `{"a":1}`, nil, false},
		{"invalid JSON is text", one, response(200, "application/json", `{"a":`), 1 << 20, `{"a":`, nil, false},
		{"empty body", del, response(204, "", ``), 1 << 20, "HTTP 204 No Content", nil, false},
		{"truncated", one, response(200, "application/json", `{"a":"0123456789"}`), 8, "{\"a\":\"01\n[response truncated at 8 bytes]", nil, false},
		{"not found", one, response(404, "application/json", `{"message":"Not Found"}`), 1 << 20, `HTTP 404 Not Found: {"message":"Not Found"}`, nil, true},
		{"error without body", one, response(500, "", ""), 1 << 20, "HTTP 500 Internal Server Error", nil, true},
		{"redirect is an error", one, response(302, "", ""), 1 << 20, "HTTP 302 Found", nil, true},
		{"error excerpt bounded", one, response(502, "text/html", long), 1 << 20, "HTTP 502 Bad Gateway: " + long[:maxErrorExcerpt] + "…", nil, true},
		{"invalid UTF-8 replaced", one, response(200, "text/plain", "a\xffb"), 1 << 20, "a\uFFFDb", nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.tool.Result(tt.resp, tt.max)
			if err != nil {
				t.Fatal(err)
			}
			if got.Text != tt.wantText || got.IsError != tt.wantError || !reflect.DeepEqual(got.Structured, tt.wantStructured) {
				t.Errorf("Result = {%q, %#v, %v}, want {%q, %#v, %v}", got.Text, got.Structured, got.IsError, tt.wantText, tt.wantStructured, tt.wantError)
			}
		})
	}
}
