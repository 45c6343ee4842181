package web

import (
	"bytes"
	_ "embed"
	"net/http"
	"strings"
	"time"
)

//go:embed static/gatehouse.css
var stylesheet []byte

// script is the pages' one script: the passkey ceremonies.
//
//go:embed static/passkey.js
var script []byte

// StaticHandler serves the embedded stylesheet and script. Mount it at
// Options.StaticPrefix on the browser mux, with or without
// http.StripPrefix. It answers GET and HEAD only:
//
//   - [Pages.StylesheetURL] (the content-hashed name) with a one-year
//     immutable cache, since a new stylesheet gets a new name;
//   - StaticPrefix + "gatehouse.css" (a stable name for other uses) with a
//     one-hour cache;
//   - [Pages.ScriptURL] (the content-hashed name of the passkey script)
//     with a one-year immutable cache;
//   - anything else with 404.
//
// Responses are text/css (or text/javascript) with nosniff and an ETag, so revalidation and
// Range requests work (http.ServeContent).
func (p *Pages) StaticHandler() http.Handler {
	hashed := strings.TrimPrefix(p.stylesheet, p.prefix)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := strings.TrimPrefix(strings.TrimPrefix(r.URL.Path, p.prefix), "/")
		var cache string
		body, ctype, etag := stylesheet, "text/css; charset=utf-8", p.cssETag
		switch name {
		case hashed:
			cache = "public, max-age=31536000, immutable"
		case "gatehouse.css":
			cache = "public, max-age=3600"
		case strings.TrimPrefix(p.script, p.prefix):
			cache = "public, max-age=31536000, immutable"
			body, ctype, etag = script, "text/javascript; charset=utf-8", p.jsETag
		default:
			http.NotFound(w, r)
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, http.StatusText(http.StatusMethodNotAllowed), http.StatusMethodNotAllowed)
			return
		}
		h := w.Header()
		h.Set("Content-Type", ctype)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Cache-Control", cache)
		h.Set("ETag", etag)
		http.ServeContent(w, r, name, time.Time{}, bytes.NewReader(body))
	})
}
