package gateway

import (
	"bufio"
	"io"
	"net/http"
	"strings"
	"testing"
)

// TestInprocTransportStreams: the response of the in-process transport
// streams (an SSE event is read while the handler still runs) and closing
// the body cancels the handler, as a client hanging up does.
func TestInprocTransportStreams(t *testing.T) {
	ended := make(chan error, 1)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(http.StatusAccepted)
		io.WriteString(w, "data: one\n\n")
		w.(http.Flusher).Flush()
		<-r.Context().Done()
		ended <- r.Context().Err()
	})
	c := &http.Client{Transport: inprocTransport{h: h}}
	resp, err := c.Get("http://inproc.invalid/mcp")
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusAccepted || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("status %d, Content-Type %q; want 202 and text/event-stream", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	line, err := bufio.NewReader(resp.Body).ReadString('\n')
	if err != nil || line != "data: one\n" {
		t.Fatalf("first line %q, %v; want the event while the handler runs", line, err)
	}
	resp.Body.Close()
	if err := <-ended; err == nil {
		t.Fatal("the handler's context was not cancelled when the body closed")
	}
}

// TestInprocTransportEnds: a handler that writes nothing answers 200 with
// an empty body; one that panics before writing fails the round trip
// instead of crashing the gateway; the request's body and header reach
// the handler.
func TestInprocTransportEnds(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("/empty", func(http.ResponseWriter, *http.Request) {})
	mux.HandleFunc("/panic", func(http.ResponseWriter, *http.Request) { panic("boom") })
	mux.HandleFunc("/echo", func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.Header().Set("X-Got", r.Header.Get("X-Send"))
		w.Write(b)
	})
	c := &http.Client{Transport: inprocTransport{h: mux}}

	resp, err := c.Get("http://inproc.invalid/empty")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || len(b) != 0 {
		t.Fatalf("empty handler: %d %q; want 200 and no body", resp.StatusCode, b)
	}

	if resp, err := c.Get("http://inproc.invalid/panic"); err == nil {
		resp.Body.Close()
		t.Fatal("a panicking handler answered; want an error")
	} else if !strings.Contains(err.Error(), "boom") {
		t.Fatalf("error %v; want the panic named", err)
	}

	req, _ := http.NewRequest(http.MethodPost, "http://inproc.invalid/echo", strings.NewReader(`{"a":1}`))
	req.Header.Set("X-Send", "v")
	resp, err = c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != `{"a":1}` || resp.Header.Get("X-Got") != "v" {
		t.Fatalf("echo: %q, X-Got %q", b, resp.Header.Get("X-Got"))
	}
}
