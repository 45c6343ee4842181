package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/gatehouse-mcp/gatehouse/internal/mcpauthz"
	"github.com/gatehouse-mcp/gatehouse/rs"
)

// forwardedRequestHeaders are the only client headers an HTTP upstream
// sees. Authorization, Cookie and everything else stay at the gateway:
// the client's token is never passed upstream (MCP: token passthrough is
// forbidden), and Mcp-Session-Id is replaced by the upstream's own.
var forwardedRequestHeaders = []string{"Accept", "Content-Type", headerProtocolVersion, headerLastEventID, headerMethod, headerName}

// paramHeaderPrefix starts the (canonical) names of the SEP-2243 headers
// that mirror tool arguments.
const paramHeaderPrefix = "Mcp-Param-"

// returnedResponseHeaders are the only upstream headers the client sees
// (besides Mcp-Session-Id, which is the gateway's own).
var returnedResponseHeaders = []string{"Content-Type", "Cache-Control", headerProtocolVersion, "Retry-After"}

// errTooLarge is returned when an upstream message exceeds the route's
// MaxMessageBytes.
var errTooLarge = errors.New("gateway: upstream message too large")

// request builds a request to the HTTP upstream from the client's
// request r: only the forwarded headers, the upstream session id sid and
// the route's own credential.
func (u *httpUpstream) request(ctx context.Context, method string, r *http.Request, sid string, body []byte) (*http.Request, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	if u.inproc && r != nil {
		// The in-process server of an OpenAPI route may exchange the
		// caller's token; it travels in the context, never in a header.
		ctx = context.WithValue(ctx, callerKey{}, &caller{ti: rs.TokenInfoFromContext(r.Context()), token: bearerToken(r), ctx: ctx})
	}
	req, err := http.NewRequestWithContext(ctx, method, u.url, rd)
	if err != nil {
		return nil, err
	}
	if r != nil {
		for _, h := range forwardedRequestHeaders {
			if v := r.Header.Values(h); len(v) > 0 {
				req.Header[h] = slices.Clone(v)
			}
		}
		// Mcp-Param-* mirror tool arguments (SEP-2243): the upstream
		// checks them against its tools' x-mcp-header annotations, which
		// the gateway does not know, and an intermediary must pass them on.
		for h, v := range r.Header {
			if strings.HasPrefix(h, paramHeaderPrefix) {
				req.Header[h] = slices.Clone(v)
			}
		}
	}
	if sid != "" {
		req.Header.Set(headerSessionID, sid)
	}
	req.Header.Set("User-Agent", "gatehouse-gateway")
	for k, v := range u.header {
		req.Header[http.CanonicalHeaderKey(k)] = slices.Clone(v)
	}
	return req, nil
}

// bearerToken is the token of r's Authorization header, which the route
// has verified.
func bearerToken(r *http.Request) string {
	scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return ""
	}
	return strings.TrimSpace(tok)
}

// post forwards a checked POST to the HTTP upstream and streams the
// answer back, filtering list results and auditing tool calls.
func (u *httpUpstream) post(w http.ResponseWriter, r *http.Request, x *exchange, body []byte, msgs []mcpauthz.Message, _ bool) {
	rt := u.rt
	s, ok := rt.lookup(w, r, x.ti)
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), rt.timeout)
	defer cancel()
	var sid string
	reserved := false
	if s != nil {
		if !s.begin() {
			mcpauthz.WriteJSON(w, http.StatusNotFound, mcpauthz.ErrorResponse(nil, mcpauthz.CodeUpstreamClosed, "session not found: start a new session with initialize", nil))
			return
		}
		defer s.end()
		sid = s.upstreamID
		go func() {
			select {
			case <-s.done:
				cancel()
			case <-ctx.Done():
			}
		}()
	} else if init := findMethod(msgs, mcpauthz.MethodInitialize); init != nil {
		if why := rt.reserve(x.ti.Subject); why != "" {
			rt.refuseSession(w, init, why)
			return
		}
		reserved = true
		defer func() {
			if reserved {
				rt.release(x.ti.Subject)
			}
		}()
	}

	// Nothing is forwarded before its audit record is admitted, and
	// nothing answered before it is written (roundTrip settles).
	if err := x.admit(ctx); err != nil {
		rt.refuseUnaudited(w, x, err)
		return
	}
	if s != nil {
		x.sess = s
		s.holds.add(x.ahead)
	}
	resp, ok := u.roundTrip(w, r, ctx, x, s, http.MethodPost, sid, body)
	if !ok {
		return
	}
	defer resp.Body.Close()
	if reserved && resp.StatusCode/100 == 2 {
		if upID := resp.Header.Get(headerSessionID); upID != "" {
			ns, err := rt.newSession(x.ti, upID, nil)
			if err != nil {
				rt.writeFailure(w, x, http.StatusInternalServerError, mcpauthz.CodeInternal, "gateway: cannot create a session")
				return
			}
			reserved = false
			w.Header().Set(headerSessionID, ns.id)
		}
	}
	rt.relay(w, resp, x)
}

// findMethod returns the first request of msgs calling method.
func findMethod(msgs []mcpauthz.Message, method string) *mcpauthz.Message {
	for i := range msgs {
		if msgs[i].IsRequest && msgs[i].Method == method {
			return &msgs[i]
		}
	}
	return nil
}

// checkStatus answers upstream statuses the client must not see as they
// are; it reports whether the response is to be relayed.
func (rt *route) checkStatus(w http.ResponseWriter, resp *http.Response, x *exchange, s *session) bool {
	switch code := resp.StatusCode; {
	case code == http.StatusUnauthorized || code == http.StatusForbidden:
		// The upstream refused the gateway's own credential. Passing its
		// challenge on would send the client to re-authorize with the
		// wrong authorization server.
		rt.g.metrics.upstreamErrs.WithLabelValues(rt.name, "credentials").Inc()
		rt.g.log.Error("gateway: upstream refused the gateway's credentials", "route", rt.name, "status", code)
		rt.writeFailure(w, x, http.StatusBadGateway, mcpauthz.CodeInternal, "gateway: the upstream MCP server refused the gateway's credentials")
		return false
	case code == http.StatusNotFound && s != nil:
		// The upstream forgot the session: so does the gateway, and the
		// client starts a new one.
		s.close("lost")
		mcpauthz.WriteJSON(w, http.StatusNotFound, mcpauthz.ErrorResponse(nil, mcpauthz.CodeUpstreamClosed, "session not found: start a new session with initialize", nil))
		return false
	case code >= 500:
		rt.g.metrics.upstreamErrs.WithLabelValues(rt.name, "status").Inc()
		snippet, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		rt.g.log.Warn("gateway: upstream error status", "route", rt.name, "status", code, "body", string(snippet))
		rt.writeFailure(w, x, http.StatusBadGateway, mcpauthz.CodeInternal, fmt.Sprintf("gateway: the upstream MCP server failed (HTTP %d)", code))
		return false
	}
	return true
}

// relay copies an upstream response to the client: JSON is read whole and
// rewritten, an event stream is passed on event by event with a flush
// after each. JSON that cannot be read and a body of any other type are
// answered with a JSON-RPC error instead (see unfilterable): a client
// could read a list in them that the filter did not see.
func (rt *route) relay(w http.ResponseWriter, resp *http.Response, x *exchange) {
	h := w.Header()
	for _, k := range returnedResponseHeaders {
		if v := resp.Header.Values(k); len(v) > 0 {
			h[k] = slices.Clone(v)
		}
	}
	kind := mcpauthz.ResponseKind(resp.Header.Get("Content-Type"))
	if kind == mcpauthz.BodySSE {
		rt.pumpSSE(w, resp, x)
		return
	}
	if kind == mcpauthz.BodyOther {
		// Only whether there is a body matters: none passes (a 202, or
		// a 405 to a GET), any is refused unread.
		if n, _ := resp.Body.Read(make([]byte, 1)); n > 0 {
			rt.unfilterable(w, resp, x)
			return
		}
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, rt.maxMsg+1))
	switch {
	case int64(len(data)) > rt.maxMsg:
		rt.g.metrics.upstreamErrs.WithLabelValues(rt.name, "too_large").Inc()
		rt.writeFailure(w, x, http.StatusBadGateway, mcpauthz.CodeInternal, "gateway: the upstream's response is too large")
		return
	case err != nil:
		rt.g.metrics.upstreamErrs.WithLabelValues(rt.name, "unavailable").Inc()
		rt.writeFailure(w, x, http.StatusBadGateway, mcpauthz.CodeUpstreamClosed, "gateway: the upstream closed the connection")
		return
	}
	out := data
	if kind == mcpauthz.BodyJSON {
		out, _, err = mcpauthz.FilterMessages(data, x.respondOne)
	}
	if err != nil || kind == mcpauthz.BodyOther && len(data) > 0 {
		rt.unfilterable(w, resp, x)
		return
	}
	h.Del("Content-Length")
	w.WriteHeader(resp.StatusCode)
	w.Write(out)
}

// unfilterable answers for an upstream response the list filter cannot
// read (mcpauthz.UnfilterableText): a JSON-RPC error (CodeInternal: the
// upstream is at fault, not the client) for every call of x, with the
// upstream's status when it is an error already and 502 otherwise.
func (rt *route) unfilterable(w http.ResponseWriter, resp *http.Response, x *exchange) {
	rt.g.metrics.upstreamErrs.WithLabelValues(rt.name, "unfilterable").Inc()
	rt.g.log.Warn("gateway: upstream response cannot be filtered; replaced by an error", "route", rt.name,
		"status", resp.StatusCode, "content_type", resp.Header.Get("Content-Type"))
	status := resp.StatusCode
	if status < 400 {
		status = http.StatusBadGateway
	}
	w.Header().Del("Content-Encoding")
	rt.writeFailure(w, x, status, mcpauthz.CodeInternal, "gateway: "+mcpauthz.UnfilterableText)
}

// pumpSSE passes an upstream event stream on, flushing after every event.
// Events answering calls of x are handed to x (list results filtered,
// tool calls audited). When the stream ends before every call of x is
// answered, the missing answers are sent as JSON-RPC errors.
func (rt *route) pumpSSE(w http.ResponseWriter, resp *http.Response, x *exchange) {
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Del("Content-Length")
	w.WriteHeader(resp.StatusCode)
	rc := http.NewResponseController(w)
	rc.Flush()
	chunk := make([]byte, 32<<10)
	var events mcpauthz.EventSplitter
	var failure error
read:
	for {
		n, err := resp.Body.Read(chunk)
		events.Write(chunk[:n])
		for {
			ev, ok := events.Next()
			if !ok {
				break
			}
			if int64(len(ev)) > rt.maxMsg {
				failure = errTooLarge
				break read
			}
			// What the upstream sends may belong to another call of the
			// session whose record is not written yet (a GET stream
			// carries no call of its own).
			if x.sess != nil && !x.sess.holds.wait(resp.Request.Context().Done()) {
				failure = resp.Request.Context().Err()
				break read
			}
			out := rewriteEvent(ev, x)
			rc.SetWriteDeadline(time.Now().Add(30 * time.Second))
			if _, err := w.Write(out); err != nil {
				return
			}
			rc.Flush()
		}
		if int64(events.Len()) > rt.maxMsg {
			failure = errTooLarge
			break
		}
		if err != nil {
			if err != io.EOF {
				failure = err
			}
			break
		}
	}
	if failure == errTooLarge {
		rt.g.metrics.upstreamErrs.WithLabelValues(rt.name, "too_large").Inc()
		rt.g.log.Warn("gateway: upstream event too large; stream ended", "route", rt.name, "limit", rt.maxMsg)
	}
	if x.pending > 0 {
		if failure == nil {
			failure = io.ErrUnexpectedEOF
		}
		rt.g.metrics.upstreamErrs.WithLabelValues(rt.name, "unavailable").Inc()
		rt.g.log.Warn("gateway: upstream stream ended before answering", "route", rt.name, "cause", failure)
		for _, e := range x.fail(mcpauthz.CodeUpstreamClosed, "gateway: the upstream ended the stream before responding") {
			w.Write(sseEvent(e))
		}
		rc.Flush()
	}
}

// rewriteEvent hands the data of one event (see mcpauthz.EventSplitter)
// to x, and returns the event with the data x passes on
// (mcpauthz.FilterEvent).
func rewriteEvent(ev []byte, x *exchange) []byte {
	return mcpauthz.FilterEvent(ev, x.respondOne)
}

// sseEvent formats one JSON-RPC message as a server-sent event.
func sseEvent(msg []byte) []byte {
	b := make([]byte, 0, len(msg)+24)
	b = append(b, "event: message\ndata: "...)
	b = append(b, msg...)
	return append(b, '\n', '\n')
}

// get proxies the standalone event stream of a session (or whatever
// the upstream answers to GET). It ends when the session does.
func (u *httpUpstream) get(w http.ResponseWriter, r *http.Request, ti *rs.TokenInfo) {
	rt := u.rt
	s, ok := rt.lookup(w, r, ti)
	if !ok {
		return
	}
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	sid := ""
	if s != nil {
		sid = s.upstreamID
		go func() {
			select {
			case <-s.done:
				cancel()
			case <-ctx.Done():
			}
		}()
	}
	x := rt.newExchange(r, ti)
	x.sess = s
	resp, ok := u.roundTrip(w, r, ctx, x, s, http.MethodGet, sid, nil)
	if !ok {
		return
	}
	defer resp.Body.Close()
	rt.relay(w, resp, x)
}

// roundTrip sends the request to the upstream and checks its status. When
// ok is false the client has its answer (a JSON-RPC error for every call of
// x) and there is no body to close.
func (u *httpUpstream) roundTrip(w http.ResponseWriter, r *http.Request, ctx context.Context, x *exchange, s *session, method, sid string, body []byte) (resp *http.Response, ok bool) {
	rt := u.rt
	req, err := u.request(ctx, method, r, sid, body)
	if err != nil {
		rt.writeFailure(w, x, http.StatusInternalServerError, mcpauthz.CodeInternal, "gateway: cannot build the upstream request")
		return nil, false
	}
	resp, err = u.client.Do(req)
	// The calls are forwarded: nothing of the answer goes back before
	// their records are committed.
	if withheld, gone, ok := x.settleOrAnswer(ctx, r.Context()); !ok {
		if resp != nil {
			resp.Body.Close()
		}
		if !gone {
			rt.writeErrors(w, x, http.StatusServiceUnavailable, auditRetryAfter, CodeAuditUnavailable, withheldText, withheld)
		}
		return nil, false
	}
	if err != nil {
		rt.transportFailure(w, r, ctx, x, err)
		return nil, false
	}
	if !rt.checkStatus(w, resp, x, s) {
		resp.Body.Close()
		return nil, false
	}
	return resp, true
}

// transportFailure answers a request the upstream did not answer at all.
func (rt *route) transportFailure(w http.ResponseWriter, r *http.Request, ctx context.Context, x *exchange, err error) {
	switch {
	case r.Context().Err() != nil:
		x.fail(mcpauthz.CodeUpstreamClosed, "client went away")
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		rt.g.metrics.upstreamErrs.WithLabelValues(rt.name, "timeout").Inc()
		rt.g.log.Warn("gateway: upstream timed out", "route", rt.name, "timeout", rt.timeout)
		rt.writeFailure(w, x, http.StatusGatewayTimeout, mcpauthz.CodeTimeout, fmt.Sprintf("gateway: the upstream MCP server did not answer within %s", rt.timeout))
	case ctx.Err() != nil:
		rt.writeFailure(w, x, http.StatusNotFound, mcpauthz.CodeUpstreamClosed, "gateway: the session ended")
	default:
		rt.g.metrics.upstreamErrs.WithLabelValues(rt.name, "unavailable").Inc()
		rt.g.log.Warn("gateway: upstream unavailable", "route", rt.name, "cause", err)
		rt.writeFailure(w, x, http.StatusBadGateway, mcpauthz.CodeUpstreamClosed, "gateway: the upstream MCP server is unavailable")
	}
}

// writeFailure answers every call of x left with a JSON-RPC error (see
// fail, and writeErrors for the shape).
func (rt *route) writeFailure(w http.ResponseWriter, x *exchange, status, code int, text string) {
	rt.writeErrors(w, x, status, "", code, text, x.fail(code, text))
}

// writeErrors answers with status (and Retry-After unless retryAfter is
// "") and msgs, the JSON-RPC errors answering the calls of x (see
// answerRest): a single response for a single call, an array for
// several; with no call to answer, one error (code, text) with a null
// id.
func (rt *route) writeErrors(w http.ResponseWriter, x *exchange, status int, retryAfter string, code int, text string, msgs [][]byte) {
	if retryAfter != "" {
		w.Header().Set("Retry-After", retryAfter)
	}
	if len(msgs) == 0 {
		mcpauthz.WriteJSON(w, status, mcpauthz.ErrorResponse(nil, code, text, map[string]string{"route": rt.name}))
		return
	}
	writeMessages(w, status, msgs, x.batch)
}

// writeMessages answers with JSON-RPC messages: one alone for a single
// request, an array for a batch (or for several answers).
func writeMessages(w http.ResponseWriter, status int, msgs [][]byte, batch bool) {
	if len(msgs) == 1 && !batch {
		mcpauthz.WriteJSON(w, status, msgs[0])
		return
	}
	raw := make([]json.RawMessage, len(msgs))
	for i, m := range msgs {
		raw[i] = m
	}
	mcpauthz.WriteJSON(w, status, raw)
}

// deleteSession ends the upstream session sid of subject (best effort).
func (u *httpUpstream) deleteSession(sid, subject string) {
	rt := u.rt
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if u.inproc {
		// The in-process server ends only its own user's sessions.
		ctx = context.WithValue(ctx, callerKey{}, &caller{ti: &rs.TokenInfo{Subject: subject}})
	}
	req, err := u.request(ctx, http.MethodDelete, nil, sid, nil)
	if err != nil {
		return
	}
	resp, err := u.client.Do(req)
	if err != nil {
		rt.g.log.Debug("gateway: upstream DELETE failed", "route", rt.name, "cause", err)
		return
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
	resp.Body.Close()
}
