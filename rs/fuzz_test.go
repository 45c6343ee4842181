package rs

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
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

// FuzzInspectBody feeds arbitrary request bodies to the JSON-RPC
// inspection: no panics, and whatever it accepts, a plain exact-key decode
// agrees on the method and tool of every message.
func FuzzInspectBody(f *testing.F) {
	for _, s := range []string{
		rpcBody(1, "add_note"),
		`[` + rpcBody(1, "list_notes") + `,` + rpcBody(2, "add_note") + `]`,
		`{"jsonrpc":"2.0","id":"x","method":"tools/list"}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a","Name":"b"}}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools\/call","params":{"n\u0061me":"add_note"}}`,
		`{"jsonrpc":"2.0","id":1,"result":{}}`,
		`{"method":null}`,
		`[]`, `{}`, `"x"`, `{"a":[[[[{}]]]]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		msgs, batch, err := inspectBody(body)
		if err != nil {
			return
		}
		if !json.Valid(body) {
			t.Fatalf("inspectBody accepted invalid JSON %q", body)
		}
		var raws []json.RawMessage
		if batch {
			if err := json.Unmarshal(body, &raws); err != nil {
				t.Fatalf("batch %q: %v", body, err)
			}
		} else {
			raws = []json.RawMessage{body}
		}
		if len(raws) != len(msgs) {
			t.Fatalf("inspectBody(%q) found %d messages, decode finds %d", body, len(msgs), len(raws))
		}
		for i, raw := range raws {
			var m map[string]json.RawMessage
			if err := json.Unmarshal(raw, &m); err != nil {
				t.Fatalf("message %q: %v", raw, err)
			}
			var method string
			if r, ok := m["method"]; ok {
				json.Unmarshal(r, &method)
			}
			if method != msgs[i].method {
				t.Fatalf("inspectBody(%q) method %q, decode %q", body, msgs[i].method, method)
			}
			if method != methodCallTool {
				continue
			}
			var params map[string]json.RawMessage
			json.Unmarshal(m["params"], &params)
			var name string
			if r, ok := params["name"]; ok {
				json.Unmarshal(r, &name)
			}
			if name != msgs[i].tool {
				t.Fatalf("inspectBody(%q) tool %q, decode %q", body, msgs[i].tool, name)
			}
		}
	})
}

// FuzzFilterEvents feeds arbitrary server-sent event streams through the
// tools/list filter in small writes: no panics, a stream comes out byte for
// byte when every tool is allowed, and no event naming a denied tool in a
// tools/list response survives.
func FuzzFilterEvents(f *testing.F) {
	f.Add([]byte("event: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"tools\":[{\"name\":\"add_note\"}]}}\n\n"))
	f.Add([]byte("data: x\r\n\r\ndata: y\r\rdata: z\n\n"))
	run := func(stream []byte, allowed func(string) bool) []byte {
		w := &recorder{header: map[string][]string{"Content-Type": {"text/event-stream"}}}
		fw := &filterWriter{ResponseWriter: w, ids: map[string]bool{"n1": true}, allowed: allowed}
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
		if got := run(stream, func(string) bool { return true }); string(got) != string(stream) {
			t.Fatalf("stream %q with every tool allowed came out as %q", stream, got)
		}
		got := run(stream, func(name string) bool { return name != "add_note" })
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
				if json.Unmarshal([]byte(data), &r) != nil || idKey(r.ID) != "n1" {
					continue
				}
				for _, tool := range r.Result.Tools {
					if tool.Name == "add_note" {
						t.Fatalf("stream %q: add_note survived filtering: %q", stream, got)
					}
				}
			}
		}
	})
}
