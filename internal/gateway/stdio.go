package gateway

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/gatehouse-mcp/gatehouse/internal/mcpauthz"
	"github.com/gatehouse-mcp/gatehouse/rs"
)

// The gateway speaks MCP to a stdio upstream as a raw JSON-RPC pipe: one
// process per MCP session, newline-delimited messages on its standard
// input and output, passed through unchanged (so the upstream's
// capabilities, custom methods and protocol version reach the client as
// they are). The gateway adds the Streamable HTTP side: its own session
// ids, response routing by request id, the standalone GET stream, and
// timeouts.

// stopGrace is how long a process has to exit after its standard input
// is closed, and again after SIGTERM, before it is killed.
var stopGrace = 2 * time.Second

// maxQueued is how many server messages with no stream to go to are kept
// for the session's next GET stream.
const maxQueued = 256

// maxInvalidLines is how many non-JSON lines a process may write to its
// standard output before it loses its session.
const maxInvalidLines = 10

// legacyVersions are the MCP protocol versions of sessions: what a stdio
// route offers a client that asks for the stateless protocol.
var legacyVersions = []string{"2025-11-25", "2025-06-18", "2025-03-26"}

// errStopped is returned for writes to a process that is stopping.
var errStopped = errors.New("gateway: upstream process stopped")

// process is a stdio upstream's process, serving one session.
type process struct {
	rt      *route
	subject string // whose session it serves: its slot is theirs
	cmd     *exec.Cmd
	pid     int
	stdin   *os.File
	writes  chan []byte

	stopOnce sync.Once
	stopping chan struct{} // closed when the process is being stopped or has exited
	exited   chan struct{} // closed once the process has exited and was reaped

	// bridge is set for a process serving a subject's stateless
	// requests (see stateless.go); nil for a session's process.
	bridge *bridge

	mu       sync.Mutex
	reason   string // why it stopped, for the client
	sess     *session
	pending  map[string]*pendingCall // by request id key
	progress map[string]*stream      // by progress token key
	sse      []*stream               // event-stream POSTs waiting for responses, latest last
	get      *stream                 // the standalone GET stream
	queue    [][]byte                // server messages waiting for a GET stream
	dead     bool

	// holds keeps the process's requests and notifications from the
	// client while a record of a call sent to it is not yet written.
	holds recordHolds
}

// pendingCall is a request waiting for its response.
type pendingCall struct {
	st    *stream
	token string
	upID  json.RawMessage // the id the process knows the request by
	// orig is the client's id of a request forwarded under another
	// (upID; stateless requests, see stateless.go): the response goes
	// back under it. nil when the ids are the same.
	orig json.RawMessage
}

// stream is where messages for one HTTP response go.
type stream struct {
	ch      chan []byte
	done    chan struct{} // closed when its handler has returned
	sse     bool
	waiting int // calls of this stream not yet answered (guarded by process.mu)
}

func newStream(sse bool) *stream {
	return &stream{ch: make(chan []byte, 16), done: make(chan struct{}), sse: sse}
}

// spawn starts the upstream command for a new session of subject (b
// non-nil: for subject's stateless requests). The caller's reserved slot
// passes to the process, which gives it back once it has exited.
func (u *stdioUpstream) spawn(subject string, b *bridge) (*process, error) {
	rt := u.rt
	cmd := exec.Command(u.spec.Command, u.spec.Args...)
	cmd.Dir = u.spec.Dir
	// A nil Env would inherit the gateway's environment.
	cmd.Env = append([]string{}, u.spec.Env...)
	setProcessGroup(cmd)
	inR, inW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		inR.Close()
		inW.Close()
		return nil, err
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		inR.Close()
		inW.Close()
		outR.Close()
		outW.Close()
		return nil, err
	}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = inR, outW, errW
	err = cmd.Start()
	inR.Close()
	outW.Close()
	errW.Close()
	if err != nil {
		inW.Close()
		outR.Close()
		errR.Close()
		return nil, err
	}
	p := &process{
		rt: rt, subject: subject, cmd: cmd, pid: cmd.Process.Pid, stdin: inW, bridge: b,
		writes:   make(chan []byte),
		stopping: make(chan struct{}),
		exited:   make(chan struct{}),
		pending:  map[string]*pendingCall{},
		progress: map[string]*stream{},
	}
	go p.readStdout(outR)
	go p.readStderr(errR)
	go p.writeLoop()
	go p.wait()
	rt.g.log.Debug("gateway: upstream process started", "route", rt.name, "pid", p.pid)
	return p, nil
}

// start spawns a process for subject in the slot reserved for it (see
// spawn); when it cannot, the slot is given back and the failure logged.
func (u *stdioUpstream) start(subject string, b *bridge) (*process, error) {
	p, err := u.spawn(subject, b)
	if err != nil {
		rt := u.rt
		rt.release(subject)
		rt.g.metrics.refused.WithLabelValues(rt.name, "start_failed").Inc()
		rt.g.log.Error("gateway: cannot start the upstream MCP server", "route", rt.name, "command", u.spec.Command, "cause", err)
	}
	return p, err
}

// attach makes s the session p serves; a process that exited meanwhile
// ends it.
func (p *process) attach(s *session) {
	p.mu.Lock()
	p.sess = s
	dead := p.dead
	p.mu.Unlock()
	if dead {
		s.close("exited")
	}
}

// wait reaps the process, fails what waits for it, ends its session and
// gives its slot back.
func (p *process) wait() {
	err := p.cmd.Wait()
	// Children the process left behind in its group go too.
	killProcessGroup(p.pid, true)
	status := "exited"
	if err != nil {
		status = err.Error()
	}
	p.mu.Lock()
	p.dead = true
	expected := p.reason != ""
	sess := p.sess
	p.mu.Unlock()
	if !expected {
		p.rt.g.metrics.upstreamErrs.WithLabelValues(p.rt.name, "exited").Inc()
		p.rt.g.log.Warn("gateway: upstream process exited", "route", p.rt.name, "pid", p.pid, "status", status)
	} else {
		p.rt.g.log.Debug("gateway: upstream process stopped", "route", p.rt.name, "pid", p.pid, "status", status)
	}
	p.stop("the upstream MCP server exited (" + status + "); this session has ended")
	if sess != nil {
		sess.close("exited")
	}
	p.rt.release(p.subject)
	close(p.exited)
}

// stop stops the process once: its standard input is closed (the MCP
// stdio shutdown), then SIGTERM and SIGKILL follow if it does not exit.
// reason is what requests still waiting are told.
func (p *process) stop(reason string) {
	p.stopOnce.Do(func() {
		p.mu.Lock()
		if p.reason == "" {
			p.reason = reason
		}
		p.mu.Unlock()
		close(p.stopping)
		p.stdin.Close()
		go func() {
			select {
			case <-p.exited:
				return
			case <-time.After(stopGrace):
			}
			killProcessGroup(p.pid, false)
			select {
			case <-p.exited:
				return
			case <-time.After(stopGrace):
			}
			killProcessGroup(p.pid, true)
		}()
	})
}

// stopReason is what waiting requests are told.
func (p *process) stopReason() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.reason == "" {
		return "the session has ended"
	}
	return p.reason
}

// fatal stops the process for a protocol violation.
func (p *process) fatal(kind, text string) {
	p.rt.g.metrics.upstreamErrs.WithLabelValues(p.rt.name, kind).Inc()
	p.rt.g.log.Warn("gateway: upstream process misbehaved; session ended", "route", p.rt.name, "pid", p.pid, "problem", text)
	p.stop("the upstream MCP server " + text + "; this session has ended")
}

// writeLoop writes queued lines to the process's standard input.
func (p *process) writeLoop() {
	for {
		select {
		case b := <-p.writes:
			if _, err := p.stdin.Write(b); err != nil {
				p.stop("the upstream MCP server stopped reading its input; this session has ended")
				return
			}
		case <-p.stopping:
			return
		}
	}
}

// write sends one message to the process as a line.
func (p *process) write(ctx context.Context, msg []byte) error {
	var b bytes.Buffer
	b.Grow(len(msg) + 1)
	if err := json.Compact(&b, msg); err != nil {
		return err
	}
	b.WriteByte('\n')
	select {
	case p.writes <- b.Bytes():
		return nil
	case <-p.stopping:
		return errStopped
	case <-ctx.Done():
		return ctx.Err()
	}
}

// readStdout reads the process's messages and routes them.
func (p *process) readStdout(f *os.File) {
	defer f.Close()
	br := bufio.NewReaderSize(f, 64<<10)
	invalid := 0
	for {
		line, err := readLine(br, p.rt.maxMsg)
		if errors.Is(err, errTooLarge) {
			p.fatal("too_large", fmt.Sprintf("wrote a message larger than %d bytes", p.rt.maxMsg))
			return
		}
		if line = bytes.TrimSpace(line); len(line) > 0 {
			if !json.Valid(line) {
				invalid++
				p.rt.g.metrics.upstreamErrs.WithLabelValues(p.rt.name, "invalid_json").Inc()
				p.rt.g.log.Warn("gateway: upstream wrote a line that is not JSON", "route", p.rt.name, "pid", p.pid, "line", clipLine(line))
				if invalid > maxInvalidLines {
					p.fatal("invalid_json", "wrote output that is not JSON-RPC")
					return
				}
			} else {
				p.route(line)
			}
		}
		if err != nil {
			return
		}
	}
}

// readStderr logs the process's standard error, a line per entry, at
// most 50 lines a second.
func (p *process) readStderr(f *os.File) {
	defer f.Close()
	br := bufio.NewReaderSize(f, 16<<10)
	var window time.Time
	n, dropped := 0, 0
	for {
		line, err := readLine(br, 64<<10)
		if errors.Is(err, errTooLarge) {
			line, err = []byte("(line longer than 64 KiB dropped)"), nil
			// Skip the rest of the long line.
			for {
				if _, e := br.ReadSlice('\n'); e != bufio.ErrBufferFull {
					break
				}
			}
		}
		if line = bytes.TrimRight(line, "\r\n"); len(line) > 0 {
			now := p.rt.g.now()
			if now.Sub(window) > time.Second {
				if dropped > 0 {
					p.rt.g.log.Warn("gateway: upstream stderr lines dropped", "route", p.rt.name, "pid", p.pid, "dropped", dropped)
				}
				window, n, dropped = now, 0, 0
			}
			if n++; n <= 50 {
				p.rt.g.log.Info("upstream stderr", "route", p.rt.name, "pid", p.pid, "line", clipLine(line))
			} else {
				dropped++
			}
		}
		if err != nil {
			return
		}
	}
}

// clipLine shortens a line for the log.
func clipLine(b []byte) string {
	const n = 2048
	if len(b) > n {
		return string(b[:n]) + "..."
	}
	return string(b)
}

// route delivers one message from the process: a response to the stream
// of its request; a request or notification from the server to the
// stream of the request it reports progress on, else the latest
// event-stream POST, else the GET stream, else the queue for the next
// GET stream.
func (p *process) route(line []byte) {
	if line[0] == '[' {
		var batch []json.RawMessage
		if json.Unmarshal(line, &batch) == nil {
			for _, m := range batch {
				if len(m) > 0 {
					p.route(m)
				}
			}
		}
		return
	}
	var m upstreamMessage
	if json.Unmarshal(line, &m) != nil {
		return
	}
	// A request or notification may belong to a call whose record is
	// not written yet. A response goes to its own call's exchange, which
	// holds it until that call's record is written.
	if m.Method != nil && !p.holds.wait(p.stopping) {
		return
	}
	if p.bridge != nil && m.Method != nil && mcpauthz.IDKey(m.ID) != "" {
		// A stateless client cannot be asked anything (SEP-2575):
		// the gateway answers the process's request itself.
		go p.answerServerRequest(*m.Method, m.ID)
		return
	}
	var target *stream
	p.mu.Lock()
	if m.Method != nil && p.bridge != nil && len(m.Params.Meta.SubscriptionID) > 0 {
		// A notification of a subscriptions/listen stream names the
		// listen request: it goes to that request's stream, under the
		// client's id.
		if pc := p.pending[mcpauthz.IDKey(m.Params.Meta.SubscriptionID)]; pc != nil {
			target = pc.st
			if pc.orig != nil {
				line = withSubscriptionID(line, pc.orig)
			}
		}
	}
	switch {
	case target != nil:
		// routed above
	case m.Method == nil:
		key := mcpauthz.IDKey(m.ID)
		pc := p.pending[key]
		if pc == nil {
			p.mu.Unlock()
			p.rt.g.log.Debug("gateway: upstream response to no waiting request dropped", "route", p.rt.name, "pid", p.pid)
			return
		}
		delete(p.pending, key)
		if pc.token != "" && p.progress[pc.token] == pc.st {
			delete(p.progress, pc.token)
		}
		target = pc.st
		if pc.orig != nil {
			line = withID(line, pc.orig)
		}
		if target.waiting--; target.waiting == 0 {
			p.sse = slices.DeleteFunc(p.sse, func(s *stream) bool { return s == target })
		}
	default:
		if *m.Method == mcpauthz.MethodProgress {
			if st := p.progress[mcpauthz.IDKey(m.Params.ProgressToken)]; st != nil && st.sse {
				target = st
			}
		}
		if target == nil && len(p.sse) > 0 {
			target = p.sse[len(p.sse)-1]
		}
		if target == nil {
			target = p.get
		}
		if target == nil && p.bridge != nil {
			// No stream of a stateless client will ever ask for it.
			p.mu.Unlock()
			p.rt.g.log.Debug("gateway: upstream notification for no waiting request dropped", "route", p.rt.name, "pid", p.pid)
			return
		}
		if target == nil {
			if len(p.queue) >= maxQueued {
				p.queue = p.queue[1:]
				p.rt.g.log.Warn("gateway: upstream message dropped: no stream to send it on", "route", p.rt.name, "pid", p.pid)
			}
			p.queue = append(p.queue, slices.Clone(line))
			p.mu.Unlock()
			return
		}
	}
	p.mu.Unlock()
	select {
	case target.ch <- slices.Clone(line):
	case <-target.done:
	case <-p.stopping:
	}
}

// register makes st the destination of x's calls. It fails for a dead
// process or a request id already in flight in the session.
func (p *process) register(st *stream, x *exchange) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.dead || p.reason != "" {
		return errStopped
	}
	for key := range x.calls {
		if p.pending[x.upKey(key)] != nil {
			return fmt.Errorf("request id %s is already in flight in this session", strings.TrimPrefix(strings.TrimPrefix(key, "s"), "n"))
		}
	}
	for key, c := range x.calls {
		pc := &pendingCall{st: st, token: c.msg.Progress, upID: c.msg.ID}
		if up := x.upIDs[key]; up != nil {
			pc.upID, pc.orig = up, c.msg.ID
		}
		p.pending[x.upKey(key)] = pc
		if c.msg.Progress != "" {
			p.progress[c.msg.Progress] = st
		}
		st.waiting++
	}
	if st.sse && st.waiting > 0 {
		p.sse = append(p.sse, st)
	}
	return nil
}

// unregister forgets st; calls still waiting are cancelled upstream.
func (p *process) unregister(st *stream, x *exchange, reason string) {
	p.mu.Lock()
	var cancelled []json.RawMessage
	for key, pc := range p.pending {
		if pc.st == st {
			delete(p.pending, key)
			cancelled = append(cancelled, pc.upID)
		}
	}
	for tok, s := range p.progress {
		if s == st {
			delete(p.progress, tok)
		}
	}
	p.sse = slices.DeleteFunc(p.sse, func(s *stream) bool { return s == st })
	p.mu.Unlock()
	close(st.done)
	if reason == "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	for _, id := range cancelled {
		p.write(ctx, mcpauthz.CancelNotification(id, reason))
	}
}

// post serves a checked POST on a stdio route.
func (u *stdioUpstream) post(w http.ResponseWriter, r *http.Request, x *exchange, _ []byte, msgs []mcpauthz.Message, batch bool) {
	rt := u.rt
	s, ok := rt.lookup(w, r, x.ti)
	if !ok {
		return
	}
	if s == nil && wantsStateless(r, msgs) {
		u.stateless(w, r, x, msgs, batch)
		return
	}
	if s == nil {
		init := findMethod(msgs, mcpauthz.MethodInitialize)
		switch {
		case init == nil && len(msgs) == 1 && msgs[0].Method == mcpauthz.MethodDiscover:
			// A client of the stateless protocol (2026-07-28) probes
			// first; this route keeps sessions, so it offers the session
			// versions, and the client falls back to initialize.
			data, _ := json.Marshal(map[string]any{"supported": legacyVersions, "requested": r.Header.Get(headerProtocolVersion)})
			mcpauthz.WriteJSON(w, http.StatusBadRequest, mcpauthz.ErrorResponse(msgs[0].ID, mcpauthz.CodeUnsupportedProtocolVersion,
				"this MCP server keeps sessions: use initialize", json.RawMessage(data)))
		case init == nil:
			mcpauthz.WriteJSON(w, http.StatusBadRequest, mcpauthz.ErrorResponse(firstID(msgs), mcpauthz.CodeInvalidRequest, "Bad Request: no Mcp-Session-Id header; start a session with initialize", nil))
		case batch || len(msgs) != 1:
			mcpauthz.WriteJSON(w, http.StatusBadRequest, mcpauthz.ErrorResponse(nil, mcpauthz.CodeInvalidRequest, "initialize must be sent alone", nil))
		default:
			u.initialize(w, r, x, init)
		}
		return
	}
	if !s.begin() {
		mcpauthz.WriteJSON(w, http.StatusNotFound, mcpauthz.ErrorResponse(nil, mcpauthz.CodeUpstreamClosed, "session not found: start a new session with initialize", nil))
		return
	}
	defer s.end()
	if accepts(r, "text/event-stream") {
		rt.stdioSSE(w, r, x, s.proc, msgs, false)
		return
	}
	responses, status := rt.stdioCollect(r.Context(), x, s.proc, msgs)
	rt.writeResponses(w, status, x, responses)
}

// firstID is the id of the first message that has one.
func firstID(msgs []mcpauthz.Message) json.RawMessage {
	for _, m := range msgs {
		if m.ID != nil {
			return m.ID
		}
	}
	return nil
}

// accepts reports whether the request's Accept header lists media type mt.
func accepts(r *http.Request, mt string) bool {
	for _, v := range r.Header.Values("Accept") {
		for _, part := range strings.Split(v, ",") {
			t, _, _ := strings.Cut(part, ";")
			if strings.EqualFold(strings.TrimSpace(t), mt) {
				return true
			}
		}
	}
	return false
}

// initialize starts a process for a new session and initializes it;
// the session exists only if the upstream answers initialize with a
// result.
func (u *stdioUpstream) initialize(w http.ResponseWriter, r *http.Request, x *exchange, init *mcpauthz.Message) {
	rt := u.rt
	if why := rt.reserve(x.ti.Subject); why != "" {
		rt.refuseSession(w, init, why)
		return
	}
	p, err := u.start(x.ti.Subject, nil)
	if err != nil {
		rt.writeFailure(w, x, http.StatusBadGateway, mcpauthz.CodeUpstreamClosed, "gateway: cannot start the upstream MCP server")
		return
	}
	responses, status := rt.stdioCollect(r.Context(), x, p, []mcpauthz.Message{*init})
	ok := len(responses) == 1 && status == http.StatusOK && isResult(responses[0])
	if !ok {
		p.stop("initialize failed")
		// 404 means the process stopped before initialize reached it
		// (one that dies at start can beat stdioCollect's register):
		// with no session yet, that is the upstream failing, not a
		// session the client should start again.
		if status == http.StatusOK || status == http.StatusNotFound {
			status = http.StatusBadGateway
		}
		rt.writeResponses(w, status, x, responses)
		return
	}
	s, err := rt.newSession(x.ti, "", p)
	if err != nil {
		p.stop("the gateway could not create a session")
		rt.writeFailure(w, x, http.StatusInternalServerError, mcpauthz.CodeInternal, "gateway: cannot create a session")
		return
	}
	p.attach(s)
	rt.g.log.Debug("gateway: session started", "route", rt.name, "session", short(s.id), "pid", p.pid)
	w.Header().Set(headerSessionID, s.id)
	if accepts(r, "text/event-stream") && !accepts(r, "application/json") {
		h := w.Header()
		h.Set("Content-Type", "text/event-stream")
		h.Set("Cache-Control", "no-cache")
		w.WriteHeader(http.StatusOK)
		w.Write(sseEvent(responses[0]))
		return
	}
	mcpauthz.WriteJSON(w, http.StatusOK, responses[0])
}

// isResult reports whether msg is a JSON-RPC response with a result.
func isResult(msg []byte) bool {
	var r struct {
		Result json.RawMessage `json:"result"`
	}
	return json.Unmarshal(msg, &r) == nil && len(r.Result) > 0 && !bytes.Equal(r.Result, []byte("null"))
}

// stdioCollect sends msgs to p and waits for the responses to their
// calls, which it returns (handed to x) with the HTTP status to answer
// with: 202 when there are no calls, 200 otherwise — failures become
// JSON-RPC errors, with 502 or 504 when nothing was answered, and 503
// when nothing was sent because the audit records could not be written.
func (rt *route) stdioCollect(ctx context.Context, x *exchange, p *process, msgs []mcpauthz.Message) ([][]byte, int) {
	st := newStream(false)
	if err := p.register(st, x); err != nil {
		close(st.done)
		if errors.Is(err, errStopped) {
			return x.fail(mcpauthz.CodeUpstreamClosed, "gateway: "+p.stopReason()), http.StatusNotFound
		}
		return x.fail(mcpauthz.CodeInvalidRequest, err.Error()), http.StatusBadRequest
	}
	reason := "the client went away"
	defer func() { p.unregister(st, x, reason) }()
	timer := time.NewTimer(rt.timeout)
	defer timer.Stop()
	wctx, cancel := context.WithTimeout(ctx, rt.timeout)
	defer cancel()
	// Nothing is written before its audit record is admitted, and
	// nothing answered before it is written.
	if err := x.admit(wctx); err != nil {
		reason = ""
		return x.refusal(err), http.StatusServiceUnavailable
	}
	p.holds.add(x.ahead)
	werr := writeAll(wctx, p, msgs)
	if withheld, gone, ok := x.settleOrAnswer(wctx, ctx); !ok {
		if gone {
			return nil, http.StatusOK
		}
		reason = auditCancelReason
		return withheld, http.StatusServiceUnavailable
	}
	if werr != nil {
		rt.g.metrics.upstreamErrs.WithLabelValues(rt.name, "timeout").Inc()
		reason = "timeout"
		return x.fail(mcpauthz.CodeTimeout, fmt.Sprintf("gateway: the upstream MCP server did not read its input within %s", rt.timeout)), http.StatusGatewayTimeout
	}
	if x.done() {
		reason = ""
		return nil, http.StatusAccepted
	}
	var out [][]byte
	answered := 0
	for !x.done() {
		select {
		case msg := <-st.ch:
			m := x.respond(msg)
			out = append(out, m)
			answered++
		case <-timer.C:
			rt.g.metrics.upstreamErrs.WithLabelValues(rt.name, "timeout").Inc()
			rt.g.log.Warn("gateway: upstream did not answer in time", "route", rt.name, "pid", p.pid, "timeout", rt.timeout)
			reason = "timeout"
			out = append(out, x.fail(mcpauthz.CodeTimeout, fmt.Sprintf("gateway: the upstream MCP server did not answer within %s", rt.timeout))...)
			if answered == 0 {
				return out, http.StatusGatewayTimeout
			}
			return out, http.StatusOK
		case <-p.stopping:
			out = append(out, drain(st, x)...)
			if x.done() {
				break
			}
			reason = ""
			out = append(out, x.fail(mcpauthz.CodeUpstreamClosed, "gateway: "+p.stopReason())...)
			if answered == 0 {
				return out, http.StatusBadGateway
			}
			return out, http.StatusOK
		case <-ctx.Done():
			x.fail(mcpauthz.CodeUpstreamClosed, "client went away")
			return nil, http.StatusOK
		}
	}
	reason = ""
	return out, http.StatusOK
}

// auditCancelReason is the reason of the cancellation a stdio upstream
// gets for calls whose responses are withheld.
const auditCancelReason = "the gateway could not write the call's audit record"

// writeAll writes msgs to p, stopping at the first that p does not take
// before ctx ends; a process that stopped is no error here (its calls
// are answered when the stop is seen).
func writeAll(ctx context.Context, p *process, msgs []mcpauthz.Message) error {
	for i := range msgs {
		if err := p.write(ctx, msgs[i].Raw); err != nil && !errors.Is(err, errStopped) {
			return err
		}
	}
	return nil
}

// drain takes what is already queued on st.
func drain(st *stream, x *exchange) [][]byte {
	var out [][]byte
	for {
		select {
		case msg := <-st.ch:
			m := x.respond(msg)
			out = append(out, m)
		default:
			return out
		}
	}
}

// writeResponses writes collected responses as JSON: one object for a
// single call, an array otherwise.
func (rt *route) writeResponses(w http.ResponseWriter, status int, x *exchange, responses [][]byte) {
	switch {
	case status == http.StatusAccepted:
		w.WriteHeader(http.StatusAccepted)
	case len(responses) == 0:
		// The client went away; nobody reads this.
		w.WriteHeader(status)
	default:
		if status == http.StatusServiceUnavailable {
			// stdioCollect's audit refusal, or withheld responses.
			w.Header().Set("Retry-After", auditRetryAfter)
		}
		writeMessages(w, status, responses, x.batch)
	}
}

// stdioSSE sends msgs to p and streams what comes back for them: their
// responses, and server messages sent meanwhile, an event each, flushed.
// With stateless, the stream starts only with a message before the
// response: a response that comes first is answered as JSON, with the
// HTTP status SEP-2575 gives its error.
func (rt *route) stdioSSE(w http.ResponseWriter, r *http.Request, x *exchange, p *process, msgs []mcpauthz.Message, stateless bool) {
	st := newStream(true)
	if err := p.register(st, x); err != nil {
		close(st.done)
		if errors.Is(err, errStopped) {
			mcpauthz.WriteJSON(w, http.StatusNotFound, mcpauthz.ErrorResponse(nil, mcpauthz.CodeUpstreamClosed, "session not found: start a new session with initialize", nil))
			return
		}
		rt.writeFailure(w, x, http.StatusBadRequest, mcpauthz.CodeInvalidRequest, err.Error())
		return
	}
	reason := "the client went away"
	defer func() { p.unregister(st, x, reason) }()
	wctx, cancel := context.WithTimeout(r.Context(), rt.timeout)
	defer cancel()
	// Nothing is written before its audit record is admitted, and
	// nothing answered before it is written.
	if err := x.admit(wctx); err != nil {
		reason = ""
		rt.refuseUnaudited(w, x, err)
		return
	}
	p.holds.add(x.ahead)
	werr := writeAll(wctx, p, msgs)
	if withheld, gone, ok := x.settleOrAnswer(wctx, r.Context()); !ok {
		if !gone {
			reason = auditCancelReason
			rt.writeErrors(w, x, http.StatusServiceUnavailable, auditRetryAfter, CodeAuditUnavailable, withheldText, withheld)
		}
		return
	}
	if werr != nil {
		rt.g.metrics.upstreamErrs.WithLabelValues(rt.name, "timeout").Inc()
		reason = "timeout"
		rt.writeFailure(w, x, http.StatusGatewayTimeout, mcpauthz.CodeTimeout, fmt.Sprintf("gateway: the upstream MCP server did not read its input within %s", rt.timeout))
		return
	}
	if x.done() {
		reason = ""
		w.WriteHeader(http.StatusAccepted)
		return
	}
	rc := http.NewResponseController(w)
	started := false
	start := func() {
		h := w.Header()
		h.Set("Content-Type", "text/event-stream")
		h.Set("Cache-Control", "no-cache")
		w.WriteHeader(http.StatusOK)
		rc.Flush()
		started = true
	}
	if !stateless {
		start()
	}
	send := func(msg []byte) bool {
		if !started {
			start()
		}
		rc.SetWriteDeadline(time.Now().Add(30 * time.Second))
		if _, err := w.Write(sseEvent(msg)); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	timer := time.NewTimer(rt.timeout)
	defer timer.Stop()
	for !x.done() {
		select {
		case msg := <-st.ch:
			m := x.respond(msg)
			if !started && x.done() {
				mcpauthz.WriteJSON(w, statelessStatus(m), m)
				reason = ""
				return
			}
			if !send(m) {
				x.fail(mcpauthz.CodeUpstreamClosed, "client went away")
				return
			}
		case <-timer.C:
			rt.g.metrics.upstreamErrs.WithLabelValues(rt.name, "timeout").Inc()
			rt.g.log.Warn("gateway: upstream did not answer in time", "route", rt.name, "pid", p.pid, "timeout", rt.timeout)
			reason = "timeout"
			for _, e := range x.fail(mcpauthz.CodeTimeout, fmt.Sprintf("gateway: the upstream MCP server did not answer within %s", rt.timeout)) {
				send(e)
			}
			return
		case <-p.stopping:
			for _, m := range drain(st, x) {
				send(m)
			}
			reason = ""
			for _, e := range x.fail(mcpauthz.CodeUpstreamClosed, "gateway: "+p.stopReason()) {
				send(e)
			}
			return
		case <-r.Context().Done():
			x.fail(mcpauthz.CodeUpstreamClosed, "client went away")
			return
		}
	}
	reason = ""
}

// keepAlive is how often an idle GET stream gets a comment, so dead
// clients are noticed and proxies keep the connection.
var keepAlive = 25 * time.Second

// get serves a session's standalone event stream: server messages
// that belong to no request.
func (u *stdioUpstream) get(w http.ResponseWriter, r *http.Request, ti *rs.TokenInfo) {
	rt := u.rt
	if !accepts(r, "text/event-stream") {
		mcpauthz.WriteJSON(w, http.StatusNotAcceptable, mcpauthz.ErrorResponse(nil, mcpauthz.CodeInvalidRequest, "GET needs Accept: text/event-stream", nil))
		return
	}
	if r.Header.Get(headerSessionID) == "" {
		mcpauthz.WriteJSON(w, http.StatusBadRequest, mcpauthz.ErrorResponse(nil, mcpauthz.CodeInvalidRequest, "GET needs an Mcp-Session-Id header", nil))
		return
	}
	s, ok := rt.lookup(w, r, ti)
	if !ok {
		return
	}
	p := s.proc
	st := newStream(true)
	p.mu.Lock()
	switch {
	case p.dead || p.reason != "":
		p.mu.Unlock()
		mcpauthz.WriteJSON(w, http.StatusNotFound, mcpauthz.ErrorResponse(nil, mcpauthz.CodeUpstreamClosed, "session not found: start a new session with initialize", nil))
		return
	case p.get != nil:
		p.mu.Unlock()
		mcpauthz.WriteJSON(w, http.StatusConflict, mcpauthz.ErrorResponse(nil, mcpauthz.CodeInvalidRequest, "this session already has a GET stream open", nil))
		return
	}
	p.get = st
	queued := p.queue
	p.queue = nil
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		if p.get == st {
			p.get = nil
		}
		// Keep what was routed here but not sent for the next stream.
		for {
			select {
			case m := <-st.ch:
				if len(p.queue) < maxQueued {
					p.queue = append(p.queue, m)
				}
				continue
			default:
			}
			break
		}
		p.mu.Unlock()
		close(st.done)
	}()
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	write := func(b []byte) bool {
		rc.SetWriteDeadline(time.Now().Add(30 * time.Second))
		if _, err := w.Write(b); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	if !write([]byte(": stream open\n\n")) {
		return
	}
	for _, m := range queued {
		if !write(sseEvent(m)) {
			return
		}
	}
	tick := time.NewTicker(keepAlive)
	defer tick.Stop()
	for {
		select {
		case m := <-st.ch:
			if !write(sseEvent(m)) {
				return
			}
		case <-tick.C:
			if !write([]byte(": keepalive\n\n")) {
				return
			}
		case <-s.done:
			return
		case <-p.stopping:
			return
		case <-r.Context().Done():
			return
		}
	}
}

// readLine reads one line (with its newline; without at EOF) of at most
// max bytes. The stdio transport delimits messages with LF alone.
func readLine(br *bufio.Reader, max int64) ([]byte, error) {
	var line []byte
	for {
		frag, err := br.ReadSlice('\n')
		if int64(len(line)+len(frag)) > max {
			return nil, errTooLarge
		}
		line = append(line, frag...)
		if err != bufio.ErrBufferFull {
			return line, err
		}
	}
}
