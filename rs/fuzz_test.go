package rs

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"reflect"
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
	f.Add(signPayload(f, header(k), []byte(`{"iss":"`+a.issuer+`","sub":"user-1","aud":"`+testResource+`","AUD":"x","exp":1785585900,"iat":1785585600,"jti":"j","client_id":"client-1"}`), k))
	f.Add(signPayload(f, header(k), []byte(`{"iss":"`+a.issuer+`","sub":"user-1","aud":"`+testResource+`","exp":1785585900,"exp":1785585901,"iat":1785585600,"jti":"j","client_id":"client-1"}`), k))
	f.Add(signRaw(f, []byte(`{"alg":"ES256","kid":"`+k.kid+`","kid":"`+k.kid+`","typ":"at+jwt"}`), []byte(`{}`), k))
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
// tools/list filter in small writes: no panics, a stream comes out byte
// for byte when every tool is allowed unless it holds a list response
// (those are re-encoded from what was checked), data that is not JSON-RPC
// (replaced by an error) or a leading byte order mark (dropped), and no
// event a case-insensitive reader takes for a list response naming a
// denied tool survives, whatever its id (review finding F2).
func FuzzFilterEvents(f *testing.F) {
	f.Add([]byte("event: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"tools\":[{\"name\":\"add_note\"}]}}\n\n"))
	f.Add([]byte("id: S_1\ndata: {\"jsonrpc\":\"2.0\",\"id\":\"x\",\"result\":{\"tools\":[{\"name\":\"add_note\"}],\"cacheScope\":\"public\"}}\n\n"))
	f.Add([]byte("\ufeffdata: {\"jsonrpc\":\"2.0\",\"id\":1,\"ID\":2,\"result\":{\"tools\":[{\"name\":\"add_note\"}]}}\n\n"))
	f.Add([]byte("data: x\r\n\r\ndata: y\r\rdata: z\n\n"))
	run := func(stream []byte, allowed func(string) bool) []byte {
		w := &recorder{header: map[string][]string{"Content-Type": {"text/event-stream"}}}
		fw := &filterWriter{ResponseWriter: w, allowed: allowed}
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
		if got := run(stream, func(string) bool { return true }); string(got) != string(stream) && !filterMustChange(stream) {
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
					Result struct {
						Tools []struct {
							Name string `json:"name"`
						} `json:"tools"`
					} `json:"result"`
				}
				if json.Unmarshal([]byte(data), &r) != nil {
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

// filterMustChange reports whether stream starts with a byte order mark
// or an event of stream holds a list response (alone or in a batch) or
// data that is not JSON-RPC: the filter drops the first, re-encodes the
// second even when every tool is allowed, and replaces the third.
func filterMustChange(stream []byte) bool {
	if bytes.HasPrefix(stream, []byte("\ufeff")) {
		return true
	}
	for _, ev := range regexp.MustCompile(`(\r\n|\r|\n){2}`).Split(string(stream), -1) {
		var data []string
		for _, l := range strings.FieldsFunc(ev, func(r rune) bool { return r == '\n' || r == '\r' }) {
			if v, ok := strings.CutPrefix(l, "data:"); ok {
				data = append(data, strings.TrimPrefix(v, " "))
			} else if l == "data" {
				data = append(data, "")
			}
		}
		if len(data) == 0 {
			continue
		}
		msg := []byte(strings.Join(data, "\n"))
		if _, changed, err := mcpauthz.FilterMessages(msg, func(m []byte) ([]byte, bool) {
			return mcpauthz.FilterList(m, "tools", "name", func(string) bool { return true })
		}); changed || err != nil {
			return true
		}
	}
	return false
}

// FuzzParseClaims holds the strict claims reader to a reference built on
// encoding/json's tokenizer: it refuses everything that is not one JSON
// object, every object with a top-level member name twice or a case
// variant of a claim rs reads, and otherwise decodes exactly what
// encoding/json decodes for each exact name (refusing exactly when one of
// those values does not decode).
func FuzzParseClaims(f *testing.F) {
	f.Add([]byte(`{"iss":"a","sub":"b","aud":["x","y"],"exp":1.5,"nbf":null,"gid":{"x":[1,{"y":"}"}]}}`))
	f.Add([]byte(`{"aud":"x","AUD":"y"}`))
	f.Add([]byte(`{"aud":"x","a\u0075d":"y"}`))
	f.Add([]byte(`{"\u017fub":"x"}`))
	f.Add([]byte(`{"exp":"soon"}`))
	f.Add([]byte(` {"a" : 1 , "b":[ ] } `))
	f.Add([]byte(`{"a":1} {}`))
	f.Add([]byte(`{"\ud800":1,"\udfff":2}`))
	f.Add([]byte("{\"\xff\":1,\"\xfe\":2}"))
	f.Fuzz(func(t *testing.T, p []byte) {
		var got jwtClaims
		err := parseClaims(p, &got)
		names, object := refMembers(p)
		if !object {
			if err == nil {
				t.Fatalf("parseClaims(%q) = nil, want an error (not one JSON object)", p)
			}
			return
		}
		seen := map[string]bool{}
		for _, n := range names {
			variant := false
			for _, c := range []string{"iss", "sub", "aud", "exp", "nbf", "iat", "auth_time", "jti", "client_id", "scope"} {
				variant = variant || n != c && strings.EqualFold(n, c)
			}
			if seen[n] || variant {
				if err == nil {
					t.Fatalf("parseClaims(%q) = nil, want an error (member %q repeated or a case variant)", p, n)
				}
				return
			}
			seen[n] = true
		}
		var m map[string]json.RawMessage
		if json.Unmarshal(p, &m) != nil {
			t.Fatalf("encoding/json refuses %q, which its tokenizer read as an object", p)
		}
		var want jwtClaims
		var wantErr error
		for n, raw := range m {
			if dst := want.field([]byte(n)); dst != nil {
				if e := json.Unmarshal(raw, dst); e != nil {
					wantErr = e
				}
			}
		}
		switch {
		case (err == nil) != (wantErr == nil):
			t.Fatalf("parseClaims(%q) = %v, but decoding its claims by name gives %v", p, err, wantErr)
		case err == nil && !reflect.DeepEqual(got, want):
			t.Fatalf("parseClaims(%q) = %+v, encoding/json by name %+v", p, got, want)
		}
	})
}

// refMembers returns the top-level member names of p as encoding/json's
// tokenizer reads them; object is false unless p is exactly one JSON
// object.
func refMembers(p []byte) (names []string, object bool) {
	dec := json.NewDecoder(bytes.NewReader(p))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, false
	}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, false
		}
		names = append(names, tok.(string))
		var skip json.RawMessage
		if dec.Decode(&skip) != nil {
			return nil, false
		}
	}
	if tok, err := dec.Token(); err != nil || tok != json.Delim('}') {
		return nil, false
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, false
	}
	return names, true
}
