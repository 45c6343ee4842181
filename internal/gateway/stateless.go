package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/gatehouse-mcp/gatehouse/internal/mcpauthz"
	"github.com/gatehouse-mcp/gatehouse/rs"
)

// Stateless MCP (2026-07-28: SEP-2575, no initialize, no session) on stdio
// routes. A stdio upstream is a process that keeps state for one client,
// so the gateway keeps one process per subject for that subject's
// stateless requests and forwards each request to it under an id of its
// own (two requests of one subject may carry the same id). The process
// is counted as a session of the subject (max_sessions,
// max_sessions_per_user) and stopped when idle like one.
//
// When the process starts, the gateway asks it server/discover. A server
// that speaks 2026-07-28 itself answers, and gets every request as the
// client sent it ("native": per-request _meta, input-required results,
// subscriptions/listen). A server that does not is initialized by the
// gateway at the newest session revision, declaring no client
// capabilities ("bridged"): server/discover is then answered from its
// initialize result, and what a bridge cannot carry (subscriptions/listen,
// and requests from the server, which a stateless client cannot answer)
// is refused or answered by the gateway. What only the HTTP layer can
// check (the MCP-Protocol-Version header against _meta, removed methods,
// the HTTP status of an error) the gateway checks for both.

// statelessRevisions are the MCP revisions without sessions the gateway
// serves on stdio routes.
var statelessRevisions = []string{"2026-07-28"}

// firstStatelessRevision is the first MCP revision without sessions.
const firstStatelessRevision = "2026-07-28"

// The SEP-2575 _meta members of a request.
const (
	metaProtocolVersion    = "io.modelcontextprotocol/protocolVersion"
	metaClientCapabilities = "io.modelcontextprotocol/clientCapabilities"
	metaClientInfo         = "io.modelcontextprotocol/clientInfo"
	metaServerInfo         = "io.modelcontextprotocol/serverInfo"
	metaSubscriptionID     = "io.modelcontextprotocol/subscriptionId"
)

// JSON-RPC error codes of MCP 2026-07-28.
const (
	codeMethodNotFound     = -32601
	codeMissingCapability  = -32021
	codeHeaderMismatch     = -32020
	methodSubscriptionsLsn = "subscriptions/listen"
)

// removedMethods are the methods MCP 2026-07-28 removed: asked without a
// session, they are answered 404 with Method not found, as the revision's
// transport says for a method a server does not implement.
var removedMethods = map[string]bool{
	"initialize":            true,
	"ping":                  true,
	"logging/setLevel":      true,
	"resources/subscribe":   true,
	"resources/unsubscribe": true,
}

// probeTimeout bounds the server/discover a new stateless process is
// asked: a server of an older revision that does not answer a request
// before initialize costs its first request this much.
var probeTimeout = 10 * time.Second

// gatewayClientInfo is the client the gateway is to a stdio upstream it
// initializes or probes itself.
var gatewayClientInfo = map[string]string{"name": "gatehouse-gateway", "version": "1"}

// bridge is what a stateless process's requests need to know about it.
type bridge struct {
	native bool            // the process speaks 2026-07-28 itself
	init   json.RawMessage // bridged: the process's initialize result
	nextID uint64          // guarded by process.mu
}

// bridgeStart is a stateless process being started for a subject, which
// the subject's other first requests wait for.
type bridgeStart struct {
	done chan struct{}
	s    *session
	fail func(http.ResponseWriter, *mcpauthz.Message)
}

// wantsStateless reports whether a POST without a session id is of the
// stateless protocol: its MCP-Protocol-Version header or a request's
// _meta names 2026-07-28 or later.
func wantsStateless(r *http.Request, msgs []mcpauthz.Message) bool {
	if r.Header.Get(headerProtocolVersion) >= firstStatelessRevision {
		return true
	}
	for i := range msgs {
		if metaString(&msgs[i], metaProtocolVersion) >= firstStatelessRevision {
			return true
		}
	}
	return false
}

// requestMeta is params._meta of a request, as far as the gateway reads it.
type requestMeta map[string]json.RawMessage

// meta returns params._meta of m (nil when it has none).
func meta(m *mcpauthz.Message) requestMeta {
	var v struct {
		Params struct {
			Meta requestMeta `json:"_meta"`
		} `json:"params"`
	}
	if json.Unmarshal(m.Raw, &v) != nil {
		return nil
	}
	return v.Params.Meta
}

// metaString returns the string member key of m's params._meta, or "".
func metaString(m *mcpauthz.Message, key string) string {
	return meta(m).str(key)
}

// str returns the string member key of md, or "".
func (md requestMeta) str(key string) string {
	var s string
	if raw := md[key]; raw != nil && json.Unmarshal(raw, &s) == nil {
		return s
	}
	return ""
}

// stateless serves a POST of the stateless protocol on a stdio route.
func (u *stdioUpstream) stateless(w http.ResponseWriter, r *http.Request, x *exchange, msgs []mcpauthz.Message, batch bool) {
	rt := u.rt
	if batch || len(msgs) != 1 {
		mcpauthz.WriteJSON(w, http.StatusBadRequest, mcpauthz.ErrorResponse(nil, mcpauthz.CodeInvalidRequest,
			"Invalid Request: MCP "+firstStatelessRevision+" requests are sent one per POST, not in a batch", nil))
		return
	}
	m := &msgs[0]
	if !m.IsCall() {
		// A notification without a session belongs to nothing the
		// gateway could deliver it to (a stateless client cancels by
		// closing its request).
		w.WriteHeader(http.StatusAccepted)
		return
	}
	if status, resp := checkStateless(r, m); resp != nil {
		mcpauthz.WriteJSON(w, status, resp)
		return
	}
	s, fail := u.statelessSession(x.ti)
	if fail != nil {
		fail(w, m)
		return
	}
	defer s.end()
	p := s.proc
	if !p.bridge.native {
		switch m.Method {
		case mcpauthz.MethodDiscover:
			mcpauthz.WriteJSON(w, http.StatusOK, discoverAnswer(m.ID, p.bridge.init))
			return
		case methodSubscriptionsLsn:
			mcpauthz.WriteJSON(w, http.StatusNotFound, mcpauthz.ErrorResponse(m.ID, codeMethodNotFound,
				"Method not found: subscriptions/listen is not available on this route (its MCP server speaks an older revision, bridged by the gateway)", nil))
			return
		}
	}
	up := *m
	p.mu.Lock()
	p.bridge.nextID++
	n := p.bridge.nextID
	p.mu.Unlock()
	up.ID = json.RawMessage(strconv.Quote("gatehouse-" + strconv.FormatUint(n, 10)))
	up.Raw = withID(m.Raw, up.ID)
	x.upIDs = map[string]json.RawMessage{m.IDKey: up.ID}
	out := []mcpauthz.Message{up}
	if accepts(r, "text/event-stream") {
		rt.stdioSSE(w, r, x, p, out, true)
		return
	}
	responses, status := rt.stdioCollect(r.Context(), x, p, out)
	if status == http.StatusOK && len(responses) == 1 {
		status = statelessStatus(responses[0])
	}
	rt.writeResponses(w, status, x, responses)
}

// checkStateless checks what only the HTTP layer can of a stateless
// request m (SEP-2575): the MCP-Protocol-Version header must be there and
// name the revision m's _meta names, which the gateway must serve, m must
// carry its client capabilities, and its method must not be one the
// revision removed. It returns the error answer, or a nil response.
func checkStateless(r *http.Request, m *mcpauthz.Message) (int, []byte) {
	header := r.Header.Get(headerProtocolVersion)
	md := meta(m)
	version := md.str(metaProtocolVersion)
	bad := func(status, code int, text string, data any) (int, []byte) {
		return status, mcpauthz.ErrorResponse(m.ID, code, text, data)
	}
	switch {
	case header == "":
		return bad(http.StatusBadRequest, codeHeaderMismatch,
			"the MCP-Protocol-Version header is required: it must name the revision in params._meta "+strconv.Quote(metaProtocolVersion), nil)
	case version == "":
		return bad(http.StatusBadRequest, mcpauthz.CodeInvalidParams,
			"Invalid params: missing _meta "+strconv.Quote(metaProtocolVersion)+": a request without a session carries its protocol version, client capabilities and client info in params._meta", nil)
	case header != version:
		return bad(http.StatusBadRequest, codeHeaderMismatch,
			"the MCP-Protocol-Version header "+strconv.Quote(mcpauthz.Clip(header))+" does not match _meta "+strconv.Quote(metaProtocolVersion)+" "+strconv.Quote(mcpauthz.Clip(version)), nil)
	case !slices.Contains(statelessRevisions, version):
		return bad(http.StatusBadRequest, mcpauthz.CodeUnsupportedProtocolVersion, "Unsupported protocol version",
			map[string]any{"supported": statelessRevisions, "requested": version})
	case removedMethods[m.Method]:
		return bad(http.StatusNotFound, codeMethodNotFound,
			"Method not found: "+strconv.Quote(mcpauthz.Clip(m.Method))+" is not part of MCP "+version+" (there is no session to initialize, ping or set up)", nil)
	}
	var caps map[string]json.RawMessage
	if raw := md[metaClientCapabilities]; raw == nil || json.Unmarshal(raw, &caps) != nil || caps == nil {
		return bad(http.StatusBadRequest, mcpauthz.CodeInvalidParams,
			"Invalid params: missing or invalid _meta "+strconv.Quote(metaClientCapabilities)+" (an object; {} declares none)", nil)
	}
	return 0, nil
}

// statelessStatus is the HTTP status of a stateless answer msg, as
// SEP-2575 gives it for errors: 404 for Method not found, 400 for invalid
// params, an unsupported revision or a missing client capability, 200
// otherwise.
func statelessStatus(msg []byte) int {
	var e struct {
		Error *struct {
			Code int `json:"code"`
		} `json:"error"`
	}
	if json.Unmarshal(msg, &e) != nil || e.Error == nil {
		return http.StatusOK
	}
	switch e.Error.Code {
	case codeMethodNotFound:
		return http.StatusNotFound
	case mcpauthz.CodeInvalidParams, mcpauthz.CodeUnsupportedProtocolVersion, codeMissingCapability:
		return http.StatusBadRequest
	}
	return http.StatusOK
}

// discoverAnswer is the server/discover result of a bridged process,
// from its initialize result: the capabilities a bridge cannot carry
// (list-changed and resource subscriptions, which need
// subscriptions/listen) are left out.
func discoverAnswer(id json.RawMessage, init json.RawMessage) []byte {
	var ir struct {
		Capabilities map[string]json.RawMessage `json:"capabilities"`
		ServerInfo   json.RawMessage            `json:"serverInfo"`
		Instructions string                     `json:"instructions,omitempty"`
	}
	json.Unmarshal(init, &ir)
	caps := map[string]any{}
	for k, v := range ir.Capabilities {
		var c map[string]any
		if json.Unmarshal(v, &c) == nil && c != nil {
			delete(c, "listChanged")
			delete(c, "subscribe")
			caps[k] = c
			continue
		}
		caps[k] = v
	}
	result := map[string]any{
		"supportedVersions": statelessRevisions,
		"capabilities":      caps,
		"resultType":        "complete",
		"ttlMs":             0,
		"cacheScope":        "private",
	}
	if ir.Instructions != "" {
		result["instructions"] = ir.Instructions
	}
	if len(ir.ServerInfo) > 0 {
		result["_meta"] = map[string]json.RawMessage{metaServerInfo: ir.ServerInfo}
	}
	b, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": mcpauthz.RawID(id), "result": result})
	return b
}

// statelessSession returns the subject's stateless process as a session
// with the request counted (end it), starting one if there is none. fail
// answers a request that cannot have one.
func (u *stdioUpstream) statelessSession(ti *rs.TokenInfo) (*session, func(http.ResponseWriter, *mcpauthz.Message)) {
	rt := u.rt
	for {
		rt.mu.Lock()
		s := rt.bridged[ti.Subject]
		start := rt.bridging[ti.Subject]
		if s == nil && start == nil {
			start = &bridgeStart{done: make(chan struct{})}
			rt.bridging[ti.Subject] = start
			rt.mu.Unlock()
			start.s, start.fail = u.startStateless(ti)
			rt.mu.Lock()
			delete(rt.bridging, ti.Subject)
			if start.s != nil {
				rt.bridged[ti.Subject] = start.s
			}
			rt.mu.Unlock()
			close(start.done)
			if start.fail != nil {
				return nil, start.fail
			}
			// begin before anyone else can idle it out: startStateless
			// returned it counted.
			return start.s, nil
		}
		rt.mu.Unlock()
		if s != nil {
			if s.begin() {
				return s, nil
			}
			// Ended meanwhile: close forgets it; start another.
			rt.mu.Lock()
			if rt.bridged[ti.Subject] == s {
				delete(rt.bridged, ti.Subject)
			}
			rt.mu.Unlock()
			continue
		}
		<-start.done
		if start.fail != nil {
			return nil, start.fail
		}
	}
}

// startStateless starts a stateless process for the holder of ti, asks it
// server/discover, and initializes it if it is of an older revision. The
// session it returns has the caller's request counted.
func (u *stdioUpstream) startStateless(ti *rs.TokenInfo) (*session, func(http.ResponseWriter, *mcpauthz.Message)) {
	rt := u.rt
	if why := rt.reserve(ti.Subject); why != "" {
		return nil, func(w http.ResponseWriter, m *mcpauthz.Message) { rt.refuseSession(w, m, why) }
	}
	b := &bridge{}
	p, err := u.start(ti.Subject, b)
	if err != nil {
		return nil, upstreamFailed("gateway: cannot start the upstream MCP server")
	}
	ctx, cancel := context.WithTimeout(context.Background(), rt.timeout)
	defer cancel()
	if err := b.prepare(ctx, p); err != nil {
		p.stop("the gateway could not prepare the upstream MCP server")
		rt.g.metrics.refused.WithLabelValues(rt.name, "start_failed").Inc()
		rt.g.log.Warn("gateway: upstream MCP server not ready for stateless requests", "route", rt.name, "pid", p.pid, "cause", err)
		return nil, upstreamFailed("gateway: the upstream MCP server did not start: " + err.Error())
	}
	s, err := rt.newSession(ti, "", p)
	if err != nil {
		p.stop("the gateway could not create a session")
		return nil, upstreamFailed("gateway: cannot start the upstream MCP server")
	}
	s.begin()
	p.attach(s)
	mode := "bridged"
	if b.native {
		mode = "native"
	}
	rt.g.log.Debug("gateway: stateless upstream process started", "route", rt.name, "pid", p.pid, "mode", mode)
	return s, nil
}

// upstreamFailed answers 502 with a JSON-RPC error.
func upstreamFailed(text string) func(http.ResponseWriter, *mcpauthz.Message) {
	return func(w http.ResponseWriter, m *mcpauthz.Message) {
		mcpauthz.WriteJSON(w, http.StatusBadGateway, mcpauthz.ErrorResponse(m.ID, mcpauthz.CodeUpstreamClosed, text, nil))
	}
}

// prepare asks p server/discover; a process that does not answer it
// with 2026-07-28 among its versions is initialized at the newest session
// revision, declaring no client capabilities (so that it sends no
// requests the client could not answer).
func (b *bridge) prepare(ctx context.Context, p *process) error {
	pctx, cancel := context.WithTimeout(ctx, probeTimeout)
	res, rpcErr, err := p.call(pctx, "gatehouse-discover", mcpauthz.MethodDiscover, map[string]any{
		"_meta": map[string]any{
			metaProtocolVersion:    firstStatelessRevision,
			metaClientCapabilities: map[string]any{},
			metaClientInfo:         gatewayClientInfo,
		},
	})
	cancel()
	if errors.Is(err, errStopped) {
		return errors.New("it exited")
	}
	if err == nil && rpcErr == nil {
		var d struct {
			SupportedVersions []string `json:"supportedVersions"`
		}
		if json.Unmarshal(res, &d) == nil && slices.Contains(d.SupportedVersions, firstStatelessRevision) {
			b.native = true
			return nil
		}
	}
	res, rpcErr, err = p.call(ctx, "gatehouse-initialize", mcpauthz.MethodInitialize, map[string]any{
		"protocolVersion": legacyVersions[0],
		"capabilities":    map[string]any{},
		"clientInfo":      gatewayClientInfo,
	})
	switch {
	case errors.Is(err, errStopped):
		return errors.New("it exited")
	case err != nil:
		return fmt.Errorf("it did not answer initialize within %s", p.rt.timeout)
	case rpcErr != nil:
		return fmt.Errorf("it refused initialize: %s", mcpauthz.Clip(rpcErr.Message))
	}
	var ir struct {
		ProtocolVersion string `json:"protocolVersion"`
	}
	if json.Unmarshal(res, &ir) != nil || !slices.Contains(legacyVersions, ir.ProtocolVersion) {
		return fmt.Errorf("it answered initialize with protocol version %q, which the gateway does not speak", mcpauthz.Clip(ir.ProtocolVersion))
	}
	b.init = res
	return p.write(ctx, []byte(`{"jsonrpc":"2.0","method":"notifications/initialized"}`))
}

// rpcError is a JSON-RPC error a process answered the gateway's own
// request with.
type rpcError struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
}

// call sends the gateway's own request to p and waits for its answer.
func (p *process) call(ctx context.Context, id, method string, params any) (json.RawMessage, *rpcError, error) {
	rawID := json.RawMessage(strconv.Quote(id))
	msg, err := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": rawID, "method": method, "params": params})
	if err != nil {
		return nil, nil, err
	}
	st := newStream(false)
	key := mcpauthz.IDKey(rawID)
	p.mu.Lock()
	if p.dead || p.reason != "" {
		p.mu.Unlock()
		return nil, nil, errStopped
	}
	p.pending[key] = &pendingCall{st: st, upID: rawID}
	st.waiting = 1
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		delete(p.pending, key)
		p.mu.Unlock()
		close(st.done)
	}()
	if err := p.write(ctx, msg); err != nil {
		return nil, nil, err
	}
	select {
	case line := <-st.ch:
		var r struct {
			Result json.RawMessage `json:"result"`
			Error  *rpcError       `json:"error"`
		}
		if err := json.Unmarshal(line, &r); err != nil {
			return nil, nil, err
		}
		if r.Error != nil {
			return nil, r.Error, nil
		}
		return r.Result, nil, nil
	case <-p.stopping:
		return nil, nil, errStopped
	case <-ctx.Done():
		return nil, nil, ctx.Err()
	}
}

// answerServerRequest answers a request a stateless process sent: ping
// with an empty result, anything else with Method not found, since its
// client cannot be asked (a 2026-07-28 server asks for input with an
// input-required result instead, SEP-2322).
func (p *process) answerServerRequest(method string, id json.RawMessage) {
	var msg []byte
	if method == "ping" {
		msg, _ = json.Marshal(map[string]any{"jsonrpc": "2.0", "id": id, "result": map[string]any{}})
	} else {
		msg = mcpauthz.ErrorResponse(id, codeMethodNotFound,
			"the gateway's client speaks MCP "+firstStatelessRevision+" without a session and cannot be sent "+strconv.Quote(mcpauthz.Clip(method))+"; return an input-required result instead", nil)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	p.write(ctx, msg)
}

// withID returns the JSON-RPC message msg with its id replaced by id.
func withID(msg []byte, id json.RawMessage) []byte {
	var m map[string]json.RawMessage
	if json.Unmarshal(msg, &m) != nil {
		return msg
	}
	m["id"] = id
	b, err := json.Marshal(m)
	if err != nil {
		return msg
	}
	return b
}

// withSubscriptionID returns the notification msg with its
// params._meta subscription id replaced by id.
func withSubscriptionID(msg []byte, id json.RawMessage) []byte {
	var m map[string]json.RawMessage
	if json.Unmarshal(msg, &m) != nil {
		return msg
	}
	var params map[string]json.RawMessage
	if json.Unmarshal(m["params"], &params) != nil {
		return msg
	}
	var md map[string]json.RawMessage
	if json.Unmarshal(params["_meta"], &md) != nil {
		return msg
	}
	md[metaSubscriptionID] = id
	var err error
	if params["_meta"], err = json.Marshal(md); err != nil {
		return msg
	}
	if m["params"], err = json.Marshal(params); err != nil {
		return msg
	}
	b, err := json.Marshal(m)
	if err != nil {
		return msg
	}
	return b
}
