package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/gatehouse-mcp/gatehouse/internal/mcpauthz"
	"github.com/gatehouse-mcp/gatehouse/internal/storage"
	"github.com/gatehouse-mcp/gatehouse/rs"
)

// session is one MCP session through the gateway. Its id is the
// gateway's own, issued to the client and bound to the subject of the
// token that created it; the upstream never sees it.
type session struct {
	id      string
	rt      *route
	subject string

	upstreamID string   // HTTP upstream: the upstream's own session id
	proc       *process // stdio upstream: the session's process

	// holds keeps an HTTP upstream's event streams of the session from
	// the client while a record of a call of the session is not yet
	// written.
	holds recordHolds

	mu     sync.Mutex
	active int // requests in flight (not counting GET streams)
	timer  *time.Timer
	closed bool
	done   chan struct{} // closed when the session ends
}

// reserve takes a session slot for subject. It returns "" or why it
// cannot: "limit" when the route is at its limit, "user_limit" when the
// subject is at its own.
func (rt *route) reserve(subject string) string {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	switch {
	case rt.slots >= rt.maxSessions:
		return "limit"
	case rt.maxPerUser > 0 && rt.perUser[subject] >= rt.maxPerUser:
		return "user_limit"
	}
	rt.slots++
	rt.perUser[subject]++
	rt.g.metrics.sessions.WithLabelValues(rt.name).Set(float64(rt.slots))
	return ""
}

// release gives subject's slot back.
func (rt *route) release(subject string) {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	rt.slots--
	if rt.perUser[subject]--; rt.perUser[subject] <= 0 {
		delete(rt.perUser, subject)
	}
	rt.g.metrics.sessions.WithLabelValues(rt.name).Set(float64(rt.slots))
}

// refuseSession answers a new session the route cannot take (reason from
// reserve): 503 when the route is full, 429 when the user has its share.
func (rt *route) refuseSession(w http.ResponseWriter, m *mcpauthz.Message, reason string) {
	rt.g.metrics.refused.WithLabelValues(rt.name, reason).Inc()
	w.Header().Set("Retry-After", "10")
	var id json.RawMessage
	if m != nil {
		id = m.ID
	}
	if reason == "user_limit" {
		mcpauthz.WriteJSON(w, http.StatusTooManyRequests, mcpauthz.ErrorResponse(id, mcpauthz.CodeUpstreamClosed,
			fmt.Sprintf("gateway: you have %d concurrent sessions on route %s, its limit per user; end one (DELETE) or retry later", rt.maxPerUser, rt.name),
			map[string]any{"route": rt.name, "max_sessions_per_user": rt.maxPerUser}))
		return
	}
	mcpauthz.WriteJSON(w, http.StatusServiceUnavailable, mcpauthz.ErrorResponse(id, mcpauthz.CodeUpstreamClosed,
		fmt.Sprintf("gateway: route %s has reached its limit of %d concurrent sessions; retry later", rt.name, rt.maxSessions),
		map[string]any{"route": rt.name, "max_sessions": rt.maxSessions}))
}

// newSession registers a session for the holder of ti, in a slot already
// reserved.
func (rt *route) newSession(ti *rs.TokenInfo, upstreamID string, p *process) (*session, error) {
	id, err := rt.g.newSessionID()
	if err != nil {
		return nil, err
	}
	s := &session{id: id, rt: rt, subject: ti.Subject, upstreamID: upstreamID, proc: p, done: make(chan struct{})}
	s.timer = time.AfterFunc(rt.idle, func() { s.close("idle") })
	rt.mu.Lock()
	rt.sessions[id] = s
	rt.mu.Unlock()
	return s, nil
}

// lookup finds the session a request names. It answers 404 for an
// unknown (or ended) session, which makes clients start a new one, and
// 403 when the session belongs to another subject (MCP: bind sessions to
// the user; a session id is not a credential). ok false means an answer
// was written. Without an Mcp-Session-Id header it returns nil, true.
func (rt *route) lookup(w http.ResponseWriter, r *http.Request, ti *rs.TokenInfo) (*session, bool) {
	id := r.Header.Get(headerSessionID)
	if id == "" {
		return nil, true
	}
	rt.mu.Lock()
	s := rt.sessions[id]
	rt.mu.Unlock()
	if s == nil || s.bridged() {
		mcpauthz.WriteJSON(w, http.StatusNotFound, mcpauthz.ErrorResponse(nil, mcpauthz.CodeUpstreamClosed, "session not found: start a new session with initialize", nil))
		return nil, false
	}
	if s.subject != ti.Subject {
		rt.g.log.Warn("gateway: session presented by another subject", "route", rt.name, "session", short(id))
		mcpauthz.WriteJSON(w, http.StatusForbidden, mcpauthz.ErrorResponse(nil, mcpauthz.CodeForbidden, "this session belongs to another user", nil))
		return nil, false
	}
	return s, true
}

// bridged reports whether s is a stdio process serving its subject's
// stateless requests (stateless.go): no client knows its id.
func (s *session) bridged() bool { return s.proc != nil && s.proc.bridge != nil }

// begin counts a request on s; false when s has ended.
func (s *session) begin() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	if s.active == 0 {
		s.timer.Stop()
	}
	s.active++
	return true
}

// end ends a request counted by begin; the idle timer restarts when none
// is left.
func (s *session) end() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.active--
	if s.active == 0 && !s.closed {
		s.timer.Reset(s.rt.idle)
	}
}

// close ends the session once: it is forgotten, its streams end, an HTTP
// upstream is told (DELETE) and a process is stopped.
func (s *session) close(reason string) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	s.timer.Stop()
	close(s.done)
	s.mu.Unlock()

	rt := s.rt
	rt.mu.Lock()
	delete(rt.sessions, s.id)
	if s.bridged() && rt.bridged[s.subject] == s {
		delete(rt.bridged, s.subject)
	}
	rt.mu.Unlock()
	rt.g.metrics.sessionsEnded.WithLabelValues(rt.name, reason).Inc()
	rt.g.log.Debug("gateway: session ended", "route", rt.name, "session", short(s.id), "reason", reason)
	if s.proc != nil {
		// The slot is given back when the process has exited.
		s.proc.stop(endText(reason))
		return
	}
	if reason != "lost" && reason != "deleted" {
		// A lost session is gone upstream already; a deleted one was
		// ended there by serveDELETE.
		go rt.upstream.end(s)
	}
	rt.release(s.subject)
}

// endText tells a client still waiting why its session ended.
func endText(reason string) string {
	switch reason {
	case "deleted":
		return "the session was ended by the client"
	case "idle":
		return "the session was idle too long and has ended"
	case "shutdown":
		return "the gateway is shutting down; this session has ended"
	}
	return "this session has ended"
}

// short is a session id shortened for logs.
func short(id string) string {
	if len(id) > 8 {
		return id[:8]
	}
	return id
}

// exchange is one POST on its way through the gateway: the calls it
// carries, for filtering list results and auditing tool calls.
type exchange struct {
	rt      *route
	ti      *rs.TokenInfo
	ip      string
	batch   bool             // the POST was a JSON-RPC batch
	calls   map[string]*call // by id key
	order   []*call          // the calls in the order of the body
	pending int              // calls not yet answered
	// ahead is the commit of the records of x's tool calls when they are
	// forwarded before it (see the top of audit.go): settleOrAnswer waits
	// for it before anything of the upstream's answer reaches the client.
	ahead *auditUnit
	// sess is the session of an HTTP upstream's exchange, if any: its
	// event streams wait for sess.holds.
	sess *session
	// upIDs are the ids a stdio process knows x's calls by when they
	// are not the client's (stateless requests), by the client's id key.
	upIDs map[string]json.RawMessage
}

// upKey is the id key the upstream knows the call of id key key by.
func (x *exchange) upKey(key string) string {
	if up := x.upIDs[key]; up != nil {
		return mcpauthz.IDKey(up)
	}
	return key
}

// call is one request of an exchange.
type call struct {
	msg      *mcpauthz.Message
	start    time.Time
	answered bool
	auditID  string // a tool call whose record is written: its call=…
}

func (rt *route) newExchange(r *http.Request, ti *rs.TokenInfo) *exchange {
	return &exchange{rt: rt, ti: ti, ip: rt.g.ip.ClientIP(r)}
}

// done reports whether every call of x has its response.
func (x *exchange) done() bool { return x.pending == 0 }

// track notes m if it is a request expecting a response.
func (x *exchange) track(m *mcpauthz.Message) {
	if !m.IsCall() {
		return
	}
	if x.calls == nil {
		x.calls = map[string]*call{}
	}
	c := &call{msg: m, start: x.rt.g.now()}
	if old, dup := x.calls[m.IDKey]; dup {
		x.order = slices.DeleteFunc(x.order, func(o *call) bool { return o == old })
	} else {
		x.pending++
	}
	x.calls[m.IDKey] = c
	x.order = append(x.order, c)
}

// admit admits the audit record of every tool call of x ([AuditToolCall],
// outcome "allowed"), written in one transaction, before anything of x is
// forwarded: committed already, or committing as x is forwarded (then
// settleOrAnswer must follow before the answer). An error means nothing
// was written and nothing of x may be forwarded: answer with
// refuseUnaudited.
func (x *exchange) admit(ctx context.Context) error {
	g := x.rt.g
	if g.audit == nil {
		return nil
	}
	var events []storage.AuditEvent
	var admitted []*call
	var ids []string
	for _, c := range x.order {
		if c.answered || c.msg.Method != mcpauthz.MethodCallTool {
			continue
		}
		id := g.callPrefix + "." + strconv.FormatUint(g.callSeq.Add(1), 36)
		events = append(events, x.callEvent(c.msg, "allowed", id))
		admitted, ids = append(admitted, c), append(ids, id)
	}
	u, err := g.audit.ahead(ctx, events)
	if err != nil {
		return err
	}
	x.ahead = u
	now := g.now()
	for i, c := range admitted {
		// The latency is the upstream's, without the wait for the record.
		c.auditID, c.start = ids[i], now
	}
	return nil
}

// settleOrAnswer waits, until ctx ends, for the commit of the records of
// x's calls if admit did not: the forwarding layer calls it once the
// calls are forwarded and before anything of the answer reaches the
// client. ok reports the records committed. If they are not, every call
// of x left is answered. When client (the client's request context) has
// ended, the client left while the records were committing: nothing was
// withheld from it and the store did not fail, so the calls fail and
// gone is true. Otherwise the responses are withheld (see withheld), and
// the caller answers with them, 503 and Retry-After.
func (x *exchange) settleOrAnswer(ctx, client context.Context) (withheld [][]byte, gone, ok bool) {
	u := x.ahead
	if u == nil {
		return nil, false, true
	}
	x.ahead = nil
	if x.rt.g.audit.settle(ctx, u) == nil {
		return nil, false, true
	}
	if client.Err() != nil {
		x.fail(mcpauthz.CodeUpstreamClosed, "client went away")
		return nil, true, false
	}
	return x.withheld(), false, false
}

// withheld answers every call of x left with the audit error for calls
// forwarded whose records were not seen committed: a JSON-RPC error
// [CodeAuditUnavailable] per call saying the call may have run. The
// records stay queued until written; the tool calls' outcome is
// "withheld". It returns the responses.
func (x *exchange) withheld() [][]byte {
	tools := 0
	out := x.answerRest(CodeAuditUnavailable, withheldText, map[string]any{"route": x.rt.name, "forwarded": true}, func(c *call) {
		if c.auditID != "" {
			tools++
			x.outcome(c, "withheld", x.rt.g.now().Sub(c.start))
		}
	})
	x.rt.g.audit.withheldResponses(tools)
	return out
}

// recordRefused writes the audit record of the tool calls the policy
// refused in a POST (outcome "denied" or "step_up"), before the refusal
// is answered, as admit does for forwarded calls. When the record cannot
// be written within the route's timeout, it answers every call of msgs
// with the audit refusal instead (refuseUnaudited) and returns false: a
// refusal is never answered unrecorded.
func (x *exchange) recordRefused(w http.ResponseWriter, r *http.Request, msgs []mcpauthz.Message, refused []*mcpauthz.Message, outcome string) bool {
	a := x.rt.g.audit
	if a == nil {
		return true
	}
	events := make([]storage.AuditEvent, 0, len(refused))
	for _, m := range refused {
		events = append(events, x.callEvent(m, outcome, ""))
	}
	ctx, cancel := context.WithTimeout(r.Context(), x.rt.timeout)
	err := a.record(ctx, events)
	cancel()
	if err == nil {
		return true
	}
	for i := range msgs {
		x.track(&msgs[i])
	}
	x.rt.refuseUnaudited(w, x, err)
	return false
}

// callEvent is the [AuditToolCall] event of the tool call m with
// outcome: the one place its detail is made. id is the call=… of a
// forwarded call, which its [AuditToolResult] event repeats; a refused
// call has none.
func (x *exchange) callEvent(m *mcpauthz.Message, outcome, id string) storage.AuditEvent {
	detail := "route=" + x.rt.name + " tool=" + detailValue(m.Name)
	if id != "" {
		detail += " call=" + id
	}
	return x.event(AuditToolCall, outcome, detail)
}

// refuseUnaudited answers every call of x left with the audit refusal:
// 503, Retry-After, and a JSON-RPC error [CodeAuditUnavailable] per call
// (see refusal). err is why the record could not be written. Nothing of
// x was forwarded.
func (rt *route) refuseUnaudited(w http.ResponseWriter, x *exchange, err error) {
	rt.writeErrors(w, x, http.StatusServiceUnavailable, auditRetryAfter, CodeAuditUnavailable, refusalText(err), x.refusal(err))
}

// refusal answers every call of x left with the audit refusal, and
// counts the tool calls among them as refused. It returns the responses.
func (x *exchange) refusal(err error) [][]byte {
	tools := 0
	out := x.answerRest(CodeAuditUnavailable, refusalText(err), map[string]string{"route": x.rt.name}, func(c *call) {
		if c.msg.Method == mcpauthz.MethodCallTool {
			tools++
		}
	})
	x.rt.g.audit.refused(x.rt.name, refusalReason(err), tools)
	return out
}

// respond handles one message (or batch) from the upstream: a tools/call
// response is audited, and every list result is filtered (see
// respondOne). It returns the message to pass on: data itself, data
// rewritten, or a JSON-RPC error when data cannot be read
// (mcpauthz.FilterMessages).
func (x *exchange) respond(data []byte) []byte {
	out, _, err := mcpauthz.FilterMessages(data, x.respondOne)
	if err != nil {
		return mcpauthz.ErrorResponse(nil, mcpauthz.CodeInternal, mcpauthz.UnfilterableText, map[string]string{"route": x.rt.name})
	}
	return out
}

// respondOne handles one message; ok reports a rewrite. A response to a
// call of x (id and method read exactly, as the MCP SDKs read them)
// answers it, and a tools/call response is audited. Every list result is
// filtered, whatever its id and whether or not it answers a call of x: a
// client matches ids its own way (Number(id) in the TypeScript SDK) and
// takes a response from any stream of the session (review finding F2).
func (x *exchange) respondOne(msg []byte) ([]byte, bool) {
	head, ok := mcpauthz.ResponseHead(msg)
	if !ok {
		return nil, false
	}
	if c := x.calls[head.IDKey]; !head.IsRequest && c != nil && !c.answered {
		c.answered = true
		x.pending--
		if c.msg.Method == mcpauthz.MethodCallTool {
			latency := x.rt.g.now().Sub(c.start)
			x.rt.g.metrics.toolLatency.WithLabelValues(x.rt.name).Observe(latency.Seconds())
			result := "ok"
			if len(head.Error) > 0 && !bytes.Equal(head.Error, []byte("null")) {
				result = "error"
			} else if isToolError(msg) {
				result = "tool_error"
			}
			x.outcome(c, result, latency)
		}
	}
	return x.filterAnyList(msg)
}

// filterAnyList filters every list result of msg (tools, prompts or
// resources), as the response to whichever list request it answers.
func (x *exchange) filterAnyList(msg []byte) ([]byte, bool) {
	changed := false
	for _, method := range []string{mcpauthz.MethodListTools, mcpauthz.MethodListPrompts, mcpauthz.MethodListResources} {
		if out, ok := x.rt.pol.FilterList(method, x.ti.Scopes, msg); ok {
			msg, changed = out, true
		}
	}
	return msg, changed
}

// isToolError reports whether a tools/call result has isError: true.
func isToolError(msg []byte) bool {
	if !bytes.Contains(msg, []byte(`"isError"`)) {
		return false
	}
	var r struct {
		Result struct {
			IsError bool `json:"isError"`
		} `json:"result"`
	}
	return json.Unmarshal(msg, &r) == nil && r.Result.IsError
}

// answerRest answers every call of x not yet answered, in the order of
// the body, with a JSON-RPC error (code, text, data), handing each call
// to each first (for its audit), and returns the error responses.
func (x *exchange) answerRest(code int, text string, data any, each func(c *call)) [][]byte {
	var out [][]byte
	for _, c := range x.order {
		if c.answered {
			continue
		}
		c.answered = true
		x.pending--
		each(c)
		out = append(out, mcpauthz.ErrorResponse(c.msg.ID, code, text, data))
	}
	return out
}

// fail answers every call of x left with a JSON-RPC error, auditing the
// tool calls among them as failed. It returns the error responses.
func (x *exchange) fail(code int, text string) [][]byte {
	return x.answerRest(code, text, map[string]string{"route": x.rt.name}, func(c *call) {
		if c.msg.Method == mcpauthz.MethodCallTool {
			x.outcome(c, "failed", x.rt.g.now().Sub(c.start))
		}
	})
}

// outcome queues the outcome of a recorded tool call ([AuditToolResult]):
// result ok, error, tool_error or failed.
func (x *exchange) outcome(c *call, result string, latency time.Duration) {
	if c.auditID == "" {
		return
	}
	x.rt.g.audit.add(x.event(AuditToolResult, result, "route="+x.rt.name+" tool="+detailValue(c.msg.Name)+
		" call="+c.auditID+" latency_ms="+strconv.FormatInt(latency.Milliseconds(), 10)))
}

// event is an audit event of x's token holder on x's route.
func (x *exchange) event(typ, outcome, detail string) storage.AuditEvent {
	// A machine token's subject is its client, not a person: the event
	// names no user and says so.
	user := x.ti.Subject
	if x.ti.Machine() {
		user, detail = "", "principal=client "+detail
	}
	g := x.rt.g
	return storage.AuditEvent{
		Time:     g.now().UTC(),
		Type:     typ,
		UserID:   user,
		ClientID: x.ti.ClientID,
		Resource: x.rt.url,
		IP:       x.ip,
		Outcome:  outcome,
		Detail:   detail,
	}
}

// detailValue makes a client-supplied name safe for a key=value detail:
// quoted when it holds anything but printable ASCII without spaces.
func detailValue(s string) string {
	s = mcpauthz.Clip(s)
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c > '~' || c == '"' || c == '=' {
			return strconv.Quote(s)
		}
	}
	if s == "" {
		return `""`
	}
	return s
}
