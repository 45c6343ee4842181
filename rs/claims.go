package rs

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"unicode/utf8"
)

// claimNames are the claims rs reads, by their exact (case-sensitive)
// names; see jwtClaims.field.
var claimNames = [...]string{"iss", "sub", "aud", "exp", "nbf", "iat", "auth_time", "jti", "client_id", "scope", "cnf"}

// maxFoldedClaimName bounds the length of a member name that can case-fold
// to one of claimNames: 9 characters ("client_id", "auth_time"), each at
// most 3 bytes in UTF-8 (the Kelvin sign folds to "k").
const maxFoldedClaimName = 9 * 3

// field returns where the claim called exactly name goes, or nil for a
// claim rs does not read.
func (c *jwtClaims) field(name []byte) any {
	switch string(name) { // no allocation: the compiler compares in place
	case "iss":
		return &c.Iss
	case "sub":
		return &c.Sub
	case "aud":
		return &c.Aud
	case "exp":
		return &c.Exp
	case "nbf":
		return &c.Nbf
	case "iat":
		return &c.Iat
	case "auth_time":
		return &c.AuthTime
	case "jti":
		return &c.JTI
	case "client_id":
		return &c.ClientID
	case "scope":
		return &c.Scope
	case "cnf":
		return &c.Cnf
	}
	return nil
}

// confirmation is the cnf claim (RFC 7800 §3.1); rs reads its jkt member
// (RFC 9449 §6.1) as strictly as the claims: by its exact name, once.
type confirmation struct {
	JKT string
}

// UnmarshalJSON reads a cnf object.
func (c *confirmation) UnmarshalJSON(b []byte) error {
	return eachMember(b, func(name, value []byte) error {
		switch {
		case string(name) == "jkt":
			return json.Unmarshal(value, &c.JKT)
		case bytes.EqualFold(name, []byte("jkt")):
			return fmt.Errorf("member %.40q is not \"jkt\": claim names are case-sensitive", name)
		}
		return nil
	})
}

// parseClaims decodes a JWT claims set strictly. encoding/json alone
// matches member names without regard to case and lets the last of two
// equal names win, so a signed {"aud":"…","AUD":"…"} or {"exp":1,"exp":2}
// means one thing here and maybe another to the next reader. Here:
//
//   - the payload is one JSON object and nothing else;
//   - a member name appears once (RFC 7519 §4: "The Claim Names within a
//     JWT Claims Set MUST be unique; JWT parsers MUST either reject JWTs
//     with duplicate Claim Names or use a JSON parser that returns only
//     the lexically last duplicate member name"), compared after
//     unescaping, so "a\u0075d" repeats "aud";
//   - a claim rs reads is taken by its exact name, and a member whose name
//     is only a case variant of one ("AUD", "Exp", "ſub") is refused, not
//     ignored: a case-insensitive reader downstream would take it.
//
// Members of nested values are not looked at: rs reads none of them. The
// errors name the rule and the member (quoted, at most 40 bytes).
func parseClaims(p []byte, c *jwtClaims) error {
	return eachMember(p, func(name, value []byte) error {
		if dst := c.field(name); dst != nil {
			if err := json.Unmarshal(value, dst); err != nil {
				return fmt.Errorf("claim %q: %v", name, err)
			}
			return nil
		}
		if len(name) <= maxFoldedClaimName {
			for _, n := range claimNames {
				if bytes.EqualFold(name, []byte(n)) {
					return fmt.Errorf("member %.40q is not %q: claim names are case-sensitive", name, n)
				}
			}
		}
		return nil
	})
}

// errNotObject is eachMember's error for valid JSON that is not an object.
var errNotObject = errors.New("not a JSON object")

// eachMember calls fn with the name (unescaped) and the raw value of each
// member of the JSON object p, in order. It fails, before calling fn,
// unless p is valid JSON (encoding/json's grammar) and an object, and when
// a member name repeats; fn's error stops it.
func eachMember(p []byte, fn func(name, value []byte) error) error {
	if !json.Valid(p) {
		return errors.New("not valid JSON")
	}
	// p is valid JSON: the scan below only has to find where strings and
	// values end, and never runs past p (a malformed p would be a bug, met
	// with an error rather than a panic).
	i := skipSpace(p, 0)
	if i >= len(p) || p[i] != '{' {
		return errNotObject
	}
	var seen [16][]byte // member names so far; most claims sets fit
	names := seen[:0]
	i = skipSpace(p, i+1)
	if i < len(p) && p[i] == '}' {
		return nil
	}
	for i < len(p) {
		end := stringEnd(p, i)
		if end < 0 {
			return errors.New("malformed member name")
		}
		name, err := unquote(p[i:end])
		if err != nil {
			return err
		}
		if slices.ContainsFunc(names, func(n []byte) bool { return bytes.Equal(n, name) }) {
			return fmt.Errorf("member %.40q appears twice", name)
		}
		names = append(names, name)
		i = skipSpace(p, end)
		if i >= len(p) || p[i] != ':' {
			return errors.New("malformed member")
		}
		i = skipSpace(p, i+1)
		vend := valueEnd(p, i)
		if vend < 0 {
			return errors.New("malformed member value")
		}
		if err := fn(name, p[i:vend]); err != nil {
			return err
		}
		i = skipSpace(p, vend)
		if i < len(p) && p[i] == '}' {
			return nil
		}
		if i >= len(p) || p[i] != ',' {
			return errors.New("malformed object")
		}
		i = skipSpace(p, i+1)
	}
	return errors.New("malformed object")
}

func skipSpace(p []byte, i int) int {
	for i < len(p) && (p[i] == ' ' || p[i] == '\t' || p[i] == '\n' || p[i] == '\r') {
		i++
	}
	return i
}

// stringEnd returns the index just past the string starting at p[i], or
// -1. Inside a string, a backslash escapes the next byte; in valid JSON
// that is all it takes to find the closing quote.
func stringEnd(p []byte, i int) int {
	if i >= len(p) || p[i] != '"' {
		return -1
	}
	for j := i + 1; j < len(p); j++ {
		switch p[j] {
		case '\\':
			j++
		case '"':
			return j + 1
		}
	}
	return -1
}

// valueEnd returns the index just past the value starting at p[i], or -1.
func valueEnd(p []byte, i int) int {
	if i >= len(p) {
		return -1
	}
	switch p[i] {
	case '"':
		return stringEnd(p, i)
	case '{', '[':
		depth := 0
		for j := i; j < len(p); j++ {
			switch p[j] {
			case '"':
				end := stringEnd(p, j)
				if end < 0 {
					return -1
				}
				j = end - 1
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return j + 1
				}
			}
		}
		return -1
	}
	for j := i; j < len(p); j++ { // a number, true, false or null
		switch p[j] {
		case ',', '}', ']', ' ', '\t', '\n', '\r':
			return j
		}
	}
	return len(p)
}

// unquote returns the value of the JSON string s (quotes included). The
// common case — no escapes, valid UTF-8 — is a sub-slice of s.
func unquote(s []byte) ([]byte, error) {
	inner := s[1 : len(s)-1]
	if bytes.IndexByte(inner, '\\') < 0 && utf8.Valid(inner) {
		return inner, nil
	}
	var v string
	if err := json.Unmarshal(s, &v); err != nil {
		return nil, fmt.Errorf("member name: %v", err)
	}
	return []byte(v), nil
}
