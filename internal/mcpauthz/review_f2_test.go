package mcpauthz

import (
	"strings"
	"testing"
)

// Review finding F2: what the list filter reads of an MCP server's
// response, read as leniently as any client reads it.

func TestReviewF2ResponseKind(t *testing.T) {
	for _, tt := range []struct {
		ct   string
		want BodyKind
	}{
		{"application/json", BodyJSON},
		{"application/json; charset=utf-8", BodyJSON},
		{"Application/JSON", BodyJSON},
		{"text/event-stream", BodySSE},
		{"text/event-stream; charset=utf-8", BodySSE},
		{"application/json, text/plain", BodyOther},
		{"text/plain, application/json", BodyOther},
		{"application/json garbage", BodyOther},
		{"application/json;", BodyJSON},
		{"application/jsonx", BodyOther},
		{"text/plain", BodyOther},
		{"", BodyOther},
	} {
		if got := ResponseKind(tt.ct); got != tt.want {
			t.Errorf("ResponseKind(%q) = %v, want %v", tt.ct, got, tt.want)
		}
	}
}

func TestReviewF2FilterMessages(t *testing.T) {
	const list = `"result":{"tools":[{"name":"ok"},{"name":"secret"}]}}`
	fn := func(m []byte) ([]byte, bool) {
		return FilterList(m, "tools", "name", func(n string) bool { return n == "ok" })
	}
	for _, tt := range []struct {
		name, in string
		err      bool
	}{
		{"ID twin", `{"jsonrpc":"2.0","id":7,"ID":8,` + list, false},
		{"string id", `{"jsonrpc":"2.0","id":"7",` + list, false},
		{"Method member", `{"jsonrpc":"2.0","id":7,"Method":"x",` + list, false},
		{"BOM", "\ufeff" + `{"jsonrpc":"2.0","id":7,` + list, false},
		{"BOM batch", "\ufeff [" + `{"jsonrpc":"2.0","id":7,` + list + `]`, false},
		{"two BOMs", "\ufeff\ufeff" + `{"jsonrpc":"2.0","id":7,` + list, true},
		{"trailing data", `{"jsonrpc":"2.0","id":7,` + list + `{}`, true},
		{"not JSON", `secret`, true},
		{"string", `"secret"`, true},
		{"batch of a string", `["secret"]`, true},
		{"broken batch", `[{"jsonrpc":"2.0","id":7,` + list, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			out, _, err := FilterMessages([]byte(tt.in), fn)
			if (err != nil) != tt.err {
				t.Fatalf("FilterMessages(%q) error = %v, want error %v", tt.in, err, tt.err)
			}
			if strings.Contains(string(out), "secret") {
				t.Errorf("FilterMessages(%q) = %q: the denied tool is left", tt.in, out)
			}
		})
	}
	for _, in := range []string{"", " \r\n"} {
		if out, changed, err := FilterMessages([]byte(in), fn); string(out) != in || changed || err != nil {
			t.Errorf("FilterMessages(%q) = %q, %v, %v; want it as it is", in, out, changed, err)
		}
	}
}

func TestReviewF2ResponseHead(t *testing.T) {
	for _, tt := range []struct {
		in        string
		idKey     string
		isRequest bool
	}{
		{`{"id":7,"ID":8,"result":{}}`, "n7", false},
		{`{"ID":8,"result":{}}`, "", false},
		{`{"id":7,"id":9,"result":{}}`, "n9", false}, // the last, as in JavaScript
		{`{"id":7,"Method":"x","result":{}}`, "n7", false},
		{`{"id":7,"method":"x"}`, "n7", true},
		{"\ufeff" + `{"id":"7"}`, "s7", false},
	} {
		h, ok := ResponseHead([]byte(tt.in))
		if !ok || h.IDKey != tt.idKey || h.IsRequest != tt.isRequest {
			t.Errorf("ResponseHead(%q) = %+v, %v; want id %q, request %v", tt.in, h, ok, tt.idKey, tt.isRequest)
		}
	}
}

// TestReviewF2EventStreamBOM: a byte order mark that starts a stream is
// dropped, however the stream is cut, and the first event is filtered.
func TestReviewF2EventStreamBOM(t *testing.T) {
	stream := "\ufeffdata: {\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"tools\":[{\"name\":\"ok\"},{\"name\":\"secret\"}]}}\n\ndata: {}\n\n"
	fn := func(m []byte) ([]byte, bool) {
		return FilterList(m, "tools", "name", func(n string) bool { return n == "ok" })
	}
	for cut := 1; cut < 8; cut++ {
		var s EventSplitter
		var out strings.Builder
		for rest := stream; len(rest) > 0; {
			n := min(cut, len(rest))
			s.Write([]byte(rest[:n]))
			rest = rest[n:]
			for {
				ev, ok := s.Next()
				if !ok {
					break
				}
				out.Write(FilterEvent(ev, fn))
			}
		}
		want := "data: {\"id\":1,\"jsonrpc\":\"2.0\",\"result\":{\"cacheScope\":\"private\",\"tools\":[{\"name\":\"ok\"}]}}\n\ndata: {}\n\n"
		if out.String() != want {
			t.Errorf("stream %q in pieces of %d filtered to %q, want %q", stream, cut, out.String(), want)
		}
	}
}

// TestReviewF2FilterEvent: event data that is not JSON-RPC is replaced by
// a JSON-RPC error; data that is only white space (a priming event) is
// not.
func TestReviewF2FilterEvent(t *testing.T) {
	fn := func(m []byte) ([]byte, bool) { return nil, false }
	for _, tt := range []struct{ in, want string }{
		{"id: 1\ndata:\n\n", "id: 1\ndata:\n\n"},
		{"data: {\"id\":1}\n\n", "data: {\"id\":1}\n\n"},
		{"event: message\ndata: {\"id\":1,\n\n", "event: message\ndata: " + string(ErrorResponse(nil, CodeInternal, UnfilterableText, nil)) + "\n\n"},
	} {
		if got := FilterEvent([]byte(tt.in), fn); string(got) != tt.want {
			t.Errorf("FilterEvent(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
