package mcpauthz

import (
	"bytes"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// split feeds stream to an EventSplitter n bytes at a time and returns the
// events it returns and what is left.
func split(stream []byte, n int) (events []string, rest string) {
	var s EventSplitter
	for len(stream) > 0 {
		k := min(n, len(stream))
		s.Write(stream[:k])
		stream = stream[k:]
		for {
			ev, ok := s.Next()
			if !ok {
				break
			}
			events = append(events, string(ev))
		}
	}
	return events, string(s.Rest())
}

func TestEventSplitter(t *testing.T) {
	for _, tt := range []struct {
		name   string
		stream string
		events []string
		rest   string
	}{
		{"LF", "data: a\n\ndata: b\n\n", []string{"data: a\n\n", "data: b\n\n"}, ""},
		{"CRLF", "data: a\r\n\r\ndata: b\r\n\r\n", []string{"data: a\r\n\r\n", "data: b\r\n\r\n"}, ""},
		{"CR", "data: a\r\rdata: b\r\r", []string{"data: a\r\r", "data: b\r\r"}, ""},
		{"mixed in one event", "id: 1\rdata: a\r\ndata: b\n\r\n", []string{"id: 1\rdata: a\r\ndata: b\n\r\n"}, ""},
		{"CRLF is one line ending, not a blank line", "data: a\r\ndata: b\r\n\r\n", []string{"data: a\r\ndata: b\r\n\r\n"}, ""},
		{"a blank line alone is an event", "\n\ndata: a\n\n", []string{"\n", "\n", "data: a\n\n"}, ""},
		{"an unterminated event is left", "data: a\n\ndata: b\n", []string{"data: a\n\n"}, "data: b\n"},
		{"a CR ends a line at once", "data: a\r\n\r", []string{"data: a\r\n\r"}, ""},
		{"comments", ": keepalive\n\n", []string{": keepalive\n\n"}, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			events, rest := split([]byte(tt.stream), len(tt.stream))
			if events == nil {
				events = []string{}
			}
			if diff := cmp.Diff(tt.events, events); diff != "" || rest != tt.rest {
				t.Errorf("split(%q): events (-want +got):\n%s\nrest %q, want %q", tt.stream, diff, rest, tt.rest)
			}
			// In small writes a CRLF can be cut in two: the LF then
			// starts the next event's bytes. The data is the same.
			for _, n := range []int{1, 2, 3} {
				small, smallRest := split([]byte(tt.stream), n)
				if got, want := eventsData(small), eventsData(events); !cmp.Equal(got, want) || strings.Join(small, "")+smallRest != tt.stream {
					t.Errorf("split(%q) in writes of %d = %q + %q: data %q, want %q", tt.stream, n, small, smallRest, got, want)
				}
			}
		})
	}
}

// eventsData returns the data of the events that have some.
func eventsData(events []string) []string {
	var out []string
	for _, ev := range events {
		if d, ok := EventData([]byte(ev)); ok {
			out = append(out, string(d))
		}
	}
	return out
}

func TestEventSplitterCRThenLF(t *testing.T) {
	var s EventSplitter
	var got []string
	for _, piece := range []string{"data: a\r\r", "\ndata: b\n\n"} {
		s.Write([]byte(piece))
		for {
			ev, ok := s.Next()
			if !ok {
				break
			}
			d, _ := EventData(ev)
			got = append(got, string(ev), string(d))
		}
	}
	if want := []string{"data: a\r\r", "a", "\ndata: b\n\n", "b"}; !cmp.Equal(got, want) {
		t.Errorf("events and their data = %q, want %q", got, want)
	}
}

func TestEventSplitterDiscard(t *testing.T) {
	var s EventSplitter
	s.Write([]byte("data: {\"tools\":[{\"name\":\"a\"},"))
	if _, ok := s.Next(); ok {
		t.Fatal("Next returned an incomplete event")
	}
	s.Discard()
	s.Write([]byte("{\"name\":\"secret\"}]}\r"))
	s.Next()
	s.Write([]byte("\ndata: more\r\n\r\ndata: next\n\n"))
	var got []string
	for {
		ev, ok := s.Next()
		if !ok {
			break
		}
		got = append(got, string(ev))
	}
	if want := []string{"data: next\n\n"}; !cmp.Equal(got, want) || s.Len() != 0 {
		t.Errorf("after Discard: events %q (%d bytes held), want %q: the rest of the discarded event must go", got, s.Len(), want)
	}
}

func TestRewriteEvent(t *testing.T) {
	upper := func(data []byte) ([]byte, bool) {
		if bytes.Equal(data, []byte("keep")) {
			return data, false
		}
		return bytes.ToUpper(data), true
	}
	for _, tt := range []struct {
		name, event, want string
	}{
		{"LF", "event: message\ndata: a\n\n", "event: message\ndata: A\n\n"},
		{"CR, data on two lines", "id: 1\rdata: a\rdata: b\r\r", "id: 1\ndata: A\nB\n\n"},
		{"CRLF", "data: a\r\n: c\r\n\r\n", ": c\ndata: A\n\n"},
		{"data without a space", "data:a\n\n", "data: A\n\n"},
		{"only one space is taken off", "data:  a\n\n", "data:  A\n\n"},
		{"the line data alone is an empty line of data", "data\ndata: a\n\n", "data: \nA\n\n"},
		{"another field is not data", "datax: a\n\n", "datax: a\n\n"},
		{"no data", ": comment\n\n", ": comment\n\n"},
		{"unchanged data", "data: keep\r\r", "data: keep\r\r"},
		{"unterminated, with a line ending", "data: a\r", "data: A\n"},
		{"unterminated", "data: a", "data: A"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := string(RewriteEvent([]byte(tt.event), upper)); got != tt.want {
				t.Errorf("RewriteEvent(%q) = %q, want %q", tt.event, got, tt.want)
			}
		})
	}
}

// whatwgEvents reads a stream as the WHATWG HTML standard (§9.2.6) says a
// client does, written independently of EventSplitter: the data of each
// event with data, in order. A stream ending in the middle of an event
// does not dispatch it.
func whatwgEvents(stream string) []string {
	stream = strings.TrimPrefix(stream, "\uFEFF")
	lines := regexp.MustCompile(`\r\n|\r|\n`).Split(stream, -1)
	lines = lines[:len(lines)-1] // after the last line ending: no line yet
	var out []string
	var buf strings.Builder
	has := false
	for _, line := range lines {
		switch field, value, colon := strings.Cut(line, ":"); {
		case line == "":
			if has {
				out = append(out, strings.TrimSuffix(buf.String(), "\n"))
			}
			buf.Reset()
			has = false
		case field == "data":
			if colon {
				value = strings.TrimPrefix(value, " ")
			}
			buf.WriteString(value + "\n")
			has = true
		}
	}
	return out
}

// FuzzEventSplitter holds EventSplitter and EventData to a client's
// reading of the stream (whatwgEvents): in writes of any size, the events
// come out byte for byte (with the rest, the stream itself), and their
// data is exactly the data a client dispatches; and RewriteEvent's output
// is read by a client as the rewritten data, with the event's ending.
func FuzzEventSplitter(f *testing.F) {
	f.Add([]byte("event: message\ndata: {\"a\":1}\n\n"), uint8(3))
	f.Add([]byte("data: x\r\n\r\ndata: y\r\rdata: z\n\n"), uint8(1))
	f.Add([]byte("data\rdata:\r\n: c\rid: 1\n\n\r\r\n"), uint8(2))
	f.Fuzz(func(t *testing.T, stream []byte, n uint8) {
		if strings.HasPrefix(string(stream), "\uFEFF") {
			return // a byte order mark is the transport's; MCP sends none
		}
		events, rest := split(stream, int(n)+1)
		if got := strings.Join(events, "") + rest; got != string(stream) {
			t.Fatalf("split(%q, %d): events %q + rest %q do not make the stream", stream, n+1, events, rest)
		}
		var data []string
		for _, ev := range events {
			if d, ok := EventData([]byte(ev)); ok {
				data = append(data, string(d))
			}
			if eventEnding([]byte(ev)) != 2 && strings.Trim(ev, "\r\n") != "" {
				t.Fatalf("split(%q): event %q does not end in a blank line", stream, ev)
			}
			rewritten := RewriteEvent([]byte(ev), func(d []byte) ([]byte, bool) { return []byte(`"x"`), true })
			if d, ok := EventData([]byte(ev)); ok {
				if got := whatwgEvents(string(rewritten)); !cmp.Equal(got, []string{`"x"`}) {
					t.Fatalf("RewriteEvent(%q) = %q, read by a client as %q", ev, rewritten, got)
				}
			} else if string(rewritten) != ev {
				t.Fatalf("RewriteEvent(%q) without data (%q) changed it to %q", ev, d, rewritten)
			}
		}
		if want := whatwgEvents(string(stream)); !cmp.Equal(data, want) {
			t.Fatalf("stream %q: data %q, a client reads %q", stream, data, want)
		}
	})
}
