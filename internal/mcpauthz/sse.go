package mcpauthz

import "bytes"

// An MCP server answers a POST with a server-sent event stream as often as
// with JSON, and list results in it are filtered like any other. The
// filter must cut the stream into events and read their data exactly as a
// client does, or an event it passes on unread could be one a client
// reads as a list naming a denied tool. The rules are those of the WHATWG
// HTML standard, §9.2.6 "Interpreting an event stream": a line ends in
// CRLF, LF or CR (all three, mixed in one stream), a blank line ends an
// event, a line "data: x" or "data:x" adds x to the data, the lines of data
// join with LF, and the line "data" alone adds an empty line.

// EventSplitter cuts a server-sent event stream into events, as it
// arrives in pieces. The zero value is ready to use.
type EventSplitter struct {
	buf     []byte
	start   int  // where the first event not yet returned begins
	pos     int  // where scanning resumes
	inLine  bool // the line being scanned has content (it is not blank)
	afterCR bool // the last line ended in CR: an LF next is part of that line ending
	discard bool // the event being scanned is dropped (see Discard)
	bomSeen bool // the start of the stream was checked for a byte order mark
}

// Write adds the next piece of the stream. Events returned by Next before
// are no longer valid.
func (s *EventSplitter) Write(p []byte) {
	if s.start > 0 {
		n := copy(s.buf, s.buf[s.start:])
		s.buf = s.buf[:n]
		s.pos -= s.start
		s.start = 0
	}
	s.buf = append(s.buf, p...)
}

// Next returns the next complete event: its lines and the blank line that
// ends it, as sent (a blank line alone is an event too). ok is false when
// no event is complete yet. The slice is valid until the next Write.
//
// A CR ends a line at once, as it does for a client; when the next piece
// starts with LF, that LF is the rest of a CRLF line ending, not a blank
// line, and starts the next event's bytes.
//
// A byte order mark at the start of the stream is dropped, as clients
// drop it (§9.2.6): left in, it would hide the first line from the
// filter but not from them.
func (s *EventSplitter) Next() (event []byte, ok bool) {
	if !s.bomSeen {
		head := s.buf[s.start:]
		if len(head) < len(bom) && bytes.HasPrefix(bom, head) {
			return nil, false // too little to tell yet
		}
		if bytes.HasPrefix(head, bom) {
			s.start += len(bom)
			s.pos = max(s.pos, s.start)
		}
		s.bomSeen = true
	}
	for s.pos < len(s.buf) {
		if s.afterCR {
			s.afterCR = false
			if s.buf[s.pos] == '\n' {
				s.pos++
				continue
			}
		}
		i := bytes.IndexAny(s.buf[s.pos:], "\r\n")
		if i < 0 {
			s.inLine, s.pos = true, len(s.buf)
			break
		}
		if i > 0 {
			s.inLine = true
		}
		eol := s.pos + i
		if s.buf[eol] == '\r' {
			if eol+1 == len(s.buf) {
				s.afterCR = true
			} else if s.buf[eol+1] == '\n' {
				eol++
			}
		}
		eol++
		blank := !s.inLine
		s.inLine, s.pos = false, eol
		if !blank {
			continue
		}
		event, s.start = s.buf[s.start:eol], eol
		if s.discard {
			s.discard = false
			continue
		}
		return event, true
	}
	if s.discard {
		s.start = s.pos // nothing of a dropped event is kept
	}
	return nil, false
}

// Len returns how many bytes of the stream are held: the event being
// received, which Next has not returned.
func (s *EventSplitter) Len() int { return len(s.buf) - s.start }

// Rest returns the event being received, incomplete (a stream that ends
// with it ends in the middle of an event, which clients do not dispatch).
func (s *EventSplitter) Rest() []byte {
	if s.discard {
		return nil
	}
	return s.buf[s.start:]
}

// Discard drops the event being received, and the rest of it as it
// arrives, up to the blank line that ends it: for an event too large to
// hold. Passing on its end alone could pass on part of a list unfiltered.
func (s *EventSplitter) Discard() {
	s.discard = true
	s.start = s.pos
}

// EventData returns the data of an event (see EventSplitter.Next): its
// data lines joined with LF, and ok false when it has none.
func EventData(event []byte) (data []byte, ok bool) {
	var parts [][]byte
	forLines(event, func(l []byte) {
		if v, isData := dataValue(l); isData {
			parts = append(parts, v)
		}
	})
	if len(parts) == 0 {
		return nil, false
	}
	if len(parts) == 1 {
		return parts[0], true
	}
	return bytes.Join(parts, []byte("\n")), true
}

// RewriteEvent returns event with its data replaced by what rewrite makes
// of it, or event itself when it has no data or rewrite changes nothing.
// A rewritten event keeps its other lines (event type, id, retry,
// comments) in order, each ending in LF, then the new data in one line;
// it ends like event did: with a blank line, with a line ending, or (at
// the end of a stream) with neither.
func RewriteEvent(event []byte, rewrite func(data []byte) ([]byte, bool)) []byte {
	data, ok := EventData(event)
	if !ok {
		return event
	}
	out, changed := rewrite(data)
	if !changed {
		return event
	}
	b := make([]byte, 0, len(out)+64)
	forLines(event, func(l []byte) {
		if _, isData := dataValue(l); !isData {
			b = append(b, l...)
			b = append(b, '\n')
		}
	})
	b = append(b, "data: "...)
	b = append(b, out...)
	switch eventEnding(event) {
	case 2:
		b = append(b, '\n', '\n')
	case 1:
		b = append(b, '\n')
	}
	return b
}

// forLines calls fn with each line of event that is not blank, without
// its line ending.
func forLines(event []byte, fn func(line []byte)) {
	for len(event) > 0 {
		i := bytes.IndexAny(event, "\r\n")
		if i < 0 {
			fn(event)
			return
		}
		if i > 0 {
			fn(event[:i])
		}
		next := i + 1
		if event[i] == '\r' && next < len(event) && event[next] == '\n' {
			next++
		}
		event = event[next:]
	}
}

// dataValue returns the value of a data line: what follows "data:", less
// one leading space, or "" for the line "data" alone.
func dataValue(line []byte) ([]byte, bool) {
	v, ok := bytes.CutPrefix(line, []byte("data"))
	if !ok {
		return nil, false
	}
	if len(v) == 0 {
		return v, true
	}
	if v[0] != ':' {
		return nil, false // another field ("dataX:"), ignored by clients
	}
	return bytes.TrimPrefix(v[1:], []byte(" ")), true
}

// eventEnding returns how event ends: 2 with a blank line (a complete
// event), 1 with a line ending only, 0 with neither.
func eventEnding(event []byte) int {
	n := 0
	for i := len(event); i > 0 && n < 2; n++ {
		switch {
		case event[i-1] == '\n' && i > 1 && event[i-2] == '\r':
			i -= 2
		case event[i-1] == '\n' || event[i-1] == '\r':
			i--
		default:
			return n
		}
	}
	return n
}
