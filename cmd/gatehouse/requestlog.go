package main

import (
	"log/slog"
	"net/http"
	"regexp"
	"strings"
	"unicode/utf8"

	"github.com/gatehouse-mcp/gatehouse/internal/as"
	"github.com/gatehouse-mcp/gatehouse/internal/metrics"
)

// maxLoggedPath bounds the path a request line shows: the path is the
// caller's text, and a log line should stay one short line.
const maxLoggedPath = 120

// requestLog logs one line per request at info level, for the console of
// `gatehouse dev`: method, path, status, and when known the client and the
// OAuth error code (from the authorization server's as.RequestNote, or for
// a resource server the error of its WWW-Authenticate challenge). It never
// logs a query string, header, cookie or body, where codes, tokens, state
// and passwords travel; the path is truncated, and the logger quotes what
// it prints. server names the listener ("as" or "demo-mcp").
func requestLog(log *slog.Logger, server string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, note := as.WithRequestNote(r.Context())
		sw := &statusWriter{ResponseWriter: w, Code: http.StatusOK}
		next.ServeHTTP(sw, r.WithContext(ctx))
		attrs := []slog.Attr{
			slog.String("server", server),
			slog.String("method", metrics.MethodLabel(r.Method)),
			slog.String("path", loggedPath(r.URL.Path)),
			slog.Int("status", sw.Code),
		}
		if id := note.ClientID(); id != "" {
			attrs = append(attrs, slog.String("client", truncateUTF8(id, maxLoggedPath)))
		}
		code := note.Error()
		if code == "" {
			code = challengeError(sw.Header().Values("WWW-Authenticate"))
		}
		if code != "" {
			attrs = append(attrs, slog.String("error", code))
		}
		log.LogAttrs(r.Context(), slog.LevelInfo, "request", attrs...)
	})
}

// statusWriter remembers the status code written. Unlike
// metrics.StatusWriter it is an http.Flusher: the MCP server's event
// streams assert that interface on the writer they get, and without it a
// client waits for response headers that never come.
type statusWriter struct {
	http.ResponseWriter
	Code int
}

// WriteHeader records code and writes it.
func (w *statusWriter) WriteHeader(code int) {
	w.Code = code
	w.ResponseWriter.WriteHeader(code)
}

// Flush flushes the underlying writer, if it can.
func (w *statusWriter) Flush() {
	_ = http.NewResponseController(w.ResponseWriter).Flush()
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// challengeErrorRE finds the error parameter of a Bearer challenge: its
// value is an RFC 6750 error code (a token of ASCII letters and "_").
var challengeErrorRE = regexp.MustCompile(`(?:^|[ ,])error="?([a-z_]+)`)

// challengeError returns the error code of a WWW-Authenticate challenge, ""
// if it has none (a challenge without a token names no error).
func challengeError(challenges []string) string {
	for _, c := range challenges {
		if m := challengeErrorRE.FindStringSubmatch(c); m != nil {
			return m[1]
		}
	}
	return ""
}

// loggedPath is the path as the request line shows it.
func loggedPath(p string) string {
	if len(p) > maxLoggedPath {
		return truncateUTF8(p, maxLoggedPath) + "…"
	}
	return p
}

// truncateUTF8 cuts s to at most n bytes without splitting a character.
func truncateUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	s = s[:n]
	for len(s) > 0 && !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return strings.ToValidUTF8(s, "")
}
