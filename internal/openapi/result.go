package openapi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"unicode/utf8"
)

// Result is an API response as MCP tool result content.
type Result struct {
	// Text is the text content: the body (JSON as the API sent it), or
	// for an error the status and an excerpt of the body.
	Text string
	// Structured is the structuredContent: always a JSON object, nil when
	// the response has none to give (see the package documentation).
	Structured map[string]any
	// IsError is set for a response outside 2xx.
	IsError bool
}

// maxErrorExcerpt bounds the body excerpt of an error result: enough for
// an API's error message, not a whole HTML error page.
const maxErrorExcerpt = 1024

// Result reads resp (closing its body) and returns the tool result. At
// most maxBytes of the body are read (no limit when maxBytes <= 0); a
// longer body is cut and the text says so, and cut JSON gives no
// structured content. A 2xx JSON object becomes Text and Structured; a JSON
// array becomes Text, and Structured {"items": [...]} when the tool's
// OutputSchema wraps one; any other 2xx body is Text. A non-2xx response
// is IsError with "HTTP <status>: <excerpt of the body>". The error is
// only for a body that cannot be read.
func (t *Tool) Result(resp *http.Response, maxBytes int64) (*Result, error) {
	defer resp.Body.Close()
	var r io.Reader = resp.Body
	if maxBytes > 0 {
		r = io.LimitReader(resp.Body, maxBytes+1)
	}
	body, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("openapi: reading the response of %s: %w", t.Name, err)
	}
	truncated := maxBytes > 0 && int64(len(body)) > maxBytes
	if truncated {
		body = body[:maxBytes]
	}
	status := fmt.Sprintf("HTTP %d %s", resp.StatusCode, http.StatusText(resp.StatusCode))

	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		text := status
		if excerpt := strings.TrimSpace(validText(body)); excerpt != "" {
			cut := truncate(excerpt, maxErrorExcerpt)
			if truncated && cut == excerpt {
				cut += "…"
			}
			text += ": " + cut
		}
		return &Result{Text: text, IsError: true}, nil
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return &Result{Text: status}, nil
	}
	if truncated {
		return &Result{Text: validText(body) + fmt.Sprintf("\n[response truncated at %d bytes]", maxBytes)}, nil
	}
	res := &Result{Text: validText(body)}
	if !isJSONMediaType(resp.Header.Get("Content-Type")) {
		return res, nil
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber() // a large integer keeps its digits
	var v any
	if dec.Decode(&v) != nil || dec.More() {
		return res, nil // not the JSON it claims: text only
	}
	switch v := v.(type) {
	case map[string]any:
		res.Structured = v
	case []any:
		if t.wrapItems {
			res.Structured = map[string]any{"items": v}
		}
	}
	return res, nil
}

// validText returns b as a string with invalid UTF-8 replaced, since MCP
// text content is a JSON string.
func validText(b []byte) string {
	if utf8.Valid(b) {
		return string(b)
	}
	return strings.ToValidUTF8(string(b), "\uFFFD")
}
