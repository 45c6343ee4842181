package as

import (
	"errors"
	"io"
	"mime"
	"net/http"
	"net/url"
	"unicode/utf8"

	"github.com/gatehouse-mcp/gatehouse/internal/oauth"
)

// maxFormBytes bounds request bodies of the form endpoints. Real token
// requests are well under 4 KiB; a client assertion JWT fits easily.
const maxFormBytes = 64 << 10

// form is a parsed application/x-www-form-urlencoded body.
type form url.Values

// get returns the single value of key or "".
func (f form) get(key string) string {
	if v := f[key]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// has reports whether key is present (even empty).
func (f form) has(key string) bool { _, ok := f[key]; return ok }

// parseForm reads a POST form body strictly: the method must be POST, the
// content type application/x-www-form-urlencoded, the body at most
// maxFormBytes, and no parameter may appear twice (RFC 6749 §3.1) except
// those listed in multi (e.g. resource, RFC 8707 §2). Query parameters are
// ignored: credentials never travel in URLs.
func parseForm(w http.ResponseWriter, r *http.Request, multi ...string) (form, error) {
	if r.Method != http.MethodPost {
		return nil, oauth.New(oauth.InvalidRequest, "this endpoint accepts only POST").WithStatus(http.StatusMethodNotAllowed).WithHeader("Allow", "POST")
	}
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/x-www-form-urlencoded" {
		return nil, oauth.New(oauth.InvalidRequest, "the request body must be application/x-www-form-urlencoded")
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxFormBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, oauth.New(oauth.InvalidRequest, "the request body is larger than %d bytes", maxFormBytes).WithStatus(http.StatusRequestEntityTooLarge)
		}
		return nil, oauth.New(oauth.InvalidRequest, "the request body could not be read")
	}
	return decodeForm(string(body), multi...)
}

// decodeForm parses an urlencoded string with the rules of parseForm.
func decodeForm(body string, multi ...string) (form, error) {
	v, err := url.ParseQuery(body)
	if err != nil {
		return nil, oauth.New(oauth.InvalidRequest, "the request body is not valid form encoding")
	}
	for k, vs := range v {
		if len(vs) > 1 && !contains(multi, k) {
			return nil, oauth.New(oauth.InvalidRequest, "the parameter %q is repeated; each parameter may appear only once", truncate(k, 64))
		}
	}
	if err := checkParams(v); err != nil {
		return nil, err
	}
	return form(v), nil
}

// checkParams refuses parameter names and values that are not valid UTF-8
// or contain control characters (NUL, CR, LF, …): OAuth parameters are
// printable text, and such bytes only ever arrive to confuse a parser, a
// log or a database further down.
func checkParams(v url.Values) *oauth.Error {
	bad := func(s string) bool {
		if !utf8.ValidString(s) {
			return true
		}
		for _, r := range s {
			if r < 0x20 && r != '\t' || r == 0x7f {
				return true
			}
		}
		return false
	}
	for k, vs := range v {
		if bad(k) {
			return oauth.New(oauth.InvalidRequest, "a parameter name is not valid UTF-8 text")
		}
		for _, x := range vs {
			if bad(x) {
				return oauth.New(oauth.InvalidRequest, "the parameter %q is not valid UTF-8 text or contains control characters", truncate(k, 64))
			}
		}
	}
	return nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
