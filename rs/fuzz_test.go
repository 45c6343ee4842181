package rs

import (
	"encoding/json"
	"errors"
	"regexp"
	"strings"
	"testing"

	"github.com/gatehouse-mcp/gatehouse/internal/mcpauthz"
)

// FuzzJWTVerify feeds arbitrary tokens to the verifier with its keys
// loaded: it must never panic, every refusal must be an invalid token (the
// keys are there, so nothing may look like an outage), and an accepted
// token can only be one the fake authorization server signed.
func FuzzJWTVerify(f *testing.F) {
	a := newTestAS(f)
	c := newClock()
	v := newVerifier(f, a, c, nil)
	k := a.keys[0]
	valid := a.token(nil)
	if _, err := v.Verify(f.Context(), valid); err != nil {
		f.Fatal(err)
	}
	f.Add(valid)
	f.Add(tamperPayload(valid, map[string]any{"sub": "admin"}))
	f.Add(unsigned(map[string]any{"alg": "none", "typ": "at+jwt"}, a.claims()))
	f.Add(signHS256(map[string]any{"alg": "HS256", "kid": k.kid, "typ": "at+jwt"}, a.claims(), publicPEM(f, k)))
	f.Add(sign(f, map[string]any{"alg": "ES256", "kid": "x", "typ": "at+jwt", "crit": []string{"b64"}, "b64": false}, a.claims(), k))
	f.Add("e30.e30.e30")
	f.Add("..")
	f.Add(strings.Repeat(".", 3))
	f.Fuzz(func(t *testing.T, tok string) {
		info, err := v.Verify(t.Context(), tok)
		if err != nil {
			if !errors.Is(err, ErrInvalidToken) {
				t.Fatalf("Verify(%q) = %v, want an error wrapping ErrInvalidToken", short(tok), err)
			}
			if ErrorDescription(err) == "" {
				t.Fatalf("ErrorDescription(%v) is empty", err)
			}
			return
		}
		if info.Subject != "user-1" || info.ClientID != "client-1" || info.Issuer != a.issuer {
			t.Fatalf("Verify(%q) accepted a token the AS did not sign: %+v", short(tok), info)
		}
	})
}

// FuzzFilterEvents feeds arbitrary server-sent event streams through the
// tools/list filter in small writes, filtering the response to id 1 (a
// POST's stream) or every response (a GET stream): no panics, a stream
// comes out byte for byte when every tool is allowed unless it holds a
// list response (those are re-encoded from what was checked), and no
// event a case-insensitive reader takes for a list response naming a
// denied tool survives.
func FuzzFilterEvents(f *testing.F) {
	f.Add([]byte("event: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"tools\":[{\"name\":\"add_note\"}]}}\n\n"))
	f.Add([]byte("id: S_1\ndata: {\"jsonrpc\":\"2.0\",\"id\":\"x\",\"result\":{\"tools\":[{\"name\":\"add_note\"}],\"cacheScope\":\"public\"}}\n\n"))
	f.Add([]byte("data: x\r\n\r\ndata: y\r\rdata: z\n\n"))
	run := func(stream []byte, allowed func(string) bool, anyID bool) []byte {
		w := &recorder{header: map[string][]string{"Content-Type": {"text/event-stream"}}}
		fw := &filterWriter{ResponseWriter: w, ids: map[string]bool{"n1": true}, anyID: anyID, allowed: allowed}
		fw.WriteHeader(200)
		for len(stream) > 0 {
			n := min(len(stream), 7)
			fw.Write(stream[:n])
			stream = stream[n:]
		}
		fw.finish()
		return w.body
	}
	f.Fuzz(func(t *testing.T, stream []byte) {
		for _, anyID := range []bool{false, true} {
			if got := run(stream, func(string) bool { return true }, anyID); string(got) != string(stream) && !filterMustChange(stream, anyID) {
				t.Fatalf("stream %q (anyID %v) with every tool allowed came out as %q", stream, anyID, got)
			}
			got := run(stream, func(name string) bool { return name != "add_note" }, anyID)
			for _, ev := range strings.Split(string(got), "\n\n") {
				for _, l := range strings.Split(ev, "\n") {
					data, ok := strings.CutPrefix(l, "data: ")
					if !ok {
						continue
					}
					var r struct {
						ID     json.RawMessage `json:"id"`
						Result struct {
							Tools []struct {
								Name string `json:"name"`
							} `json:"tools"`
						} `json:"result"`
					}
					if json.Unmarshal([]byte(data), &r) != nil || !anyID && mcpauthz.IDKey(r.ID) != "n1" {
						continue
					}
					for _, tool := range r.Result.Tools {
						if tool.Name == "add_note" {
							t.Fatalf("stream %q (anyID %v): add_note survived filtering: %q", stream, anyID, got)
						}
					}
				}
			}
		}
	})
}

// filterMustChange reports whether an event of stream holds a list
// response to id 1 (any response, with anyID; alone or in a batch): the
// filter re-encodes those even when every tool is allowed.
func filterMustChange(stream []byte, anyID bool) bool {
	for _, ev := range regexp.MustCompile(`(\r\n|\r|\n){2}`).Split(string(stream), -1) {
		var data []string
		for _, l := range strings.FieldsFunc(ev, func(r rune) bool { return r == '\n' || r == '\r' }) {
			if v, ok := strings.CutPrefix(l, "data:"); ok {
				data = append(data, strings.TrimPrefix(v, " "))
			}
		}
		msg := []byte(strings.Join(data, "\n"))
		var msgs []json.RawMessage
		if json.Unmarshal(msg, &msgs) != nil {
			msgs = []json.RawMessage{msg}
		}
		for _, m := range msgs {
			if !anyID && mcpauthz.ResponseID(m) != "n1" {
				continue
			}
			if _, ok := mcpauthz.FilterList(m, "tools", "name", func(string) bool { return true }); ok {
				return true
			}
		}
	}
	return false
}
