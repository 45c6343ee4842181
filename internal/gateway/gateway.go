package gateway

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gatehouse-mcp/gatehouse/internal/clientip"
	"github.com/gatehouse-mcp/gatehouse/internal/mcpauthz"
	asmetrics "github.com/gatehouse-mcp/gatehouse/internal/metrics"
	"github.com/gatehouse-mcp/gatehouse/internal/storage"
	"github.com/gatehouse-mcp/gatehouse/rs"
)

// Headers of the MCP Streamable HTTP transport.
const (
	headerSessionID       = "Mcp-Session-Id"
	headerProtocolVersion = mcpauthz.HeaderProtocolVersion
	headerLastEventID     = "Last-Event-ID"
	headerMethod          = mcpauthz.HeaderMethod
	headerName            = mcpauthz.HeaderName
)

// AuditToolCall is the audit event type of a tool call through the
// gateway.
const AuditToolCall = "gateway.tool_call"

// Gateway is an http.Handler serving its routes: each an OAuth-protected
// MCP endpoint (Streamable HTTP) in front of an upstream MCP server, with
// its protected resource metadata. Create it with [New]; stop it with
// [Gateway.Shutdown] or [Gateway.Close].
type Gateway struct {
	routes  []*route
	mux     *http.ServeMux
	log     *slog.Logger
	now     func() time.Time
	rand    io.Reader
	metrics *metrics
	audit   *auditLog // nil: no audit log
	issuer  string
	ip      clientip.Resolver // the client address of audit events

	// Calls are named in the audit log by callPrefix (random per
	// gateway) and a sequence number: call=<prefix>.<n> pairs a call's
	// record with its outcome's.
	callPrefix string
	callSeq    atomic.Uint64

	mu       sync.Mutex
	draining bool
	inflight int
	idle     chan struct{} // closed when draining and inflight reaches zero
	closed   bool
}

// New returns a gateway serving opts.Routes. It checks the options and
// registers the metrics; it starts no process and opens no connection.
func New(opts Options) (*Gateway, error) {
	if opts.Issuer == "" {
		return nil, errors.New("gateway: Issuer is required")
	}
	if len(opts.Routes) == 0 {
		return nil, errors.New("gateway: no routes")
	}
	g := &Gateway{
		mux:     http.NewServeMux(),
		log:     opts.Logger,
		now:     opts.Now,
		rand:    opts.Rand,
		metrics: newMetrics(),
		issuer:  opts.Issuer,
		ip:      clientip.Resolver{TrustHeaders: opts.TrustProxyHeaders, TrustedProxies: opts.TrustedProxies},
		idle:    make(chan struct{}),
	}
	if g.log == nil {
		g.log = slog.New(slog.DiscardHandler)
	}
	if g.now == nil {
		g.now = time.Now
	}
	if g.rand == nil {
		g.rand = rand.Reader
	}
	if opts.Registerer != nil {
		for _, c := range g.metrics.collectors() {
			if err := opts.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("gateway: register metrics: %w", err)
			}
		}
	}
	newVerifier := opts.NewVerifier
	if newVerifier == nil {
		newVerifier = func(resource string) (rs.Verifier, error) {
			return rs.NewJWTVerifier(rs.JWTOptions{
				Issuer:     opts.Issuer,
				Resource:   resource,
				HTTPClient: opts.HTTPClient,
				ClockSkew:  opts.ClockSkew,
				Logger:     g.log,
				Now:        g.now,
			})
		}
	}
	paths := map[string]string{}
	for i := range opts.Routes {
		rt, err := newRoute(g, opts.Routes[i], newVerifier)
		if err != nil {
			return nil, err
		}
		if other, dup := paths[rt.path]; dup {
			return nil, fmt.Errorf("gateway: routes %q and %q have the same path %s", other, rt.name, rt.path)
		}
		paths[rt.path] = rt.name
		g.routes = append(g.routes, rt)
	}
	for _, rt := range g.routes {
		if err := rt.mount(g.mux, len(g.routes) == 1); err != nil {
			return nil, err
		}
	}
	if opts.Audit != nil {
		size := opts.AuditBuffer
		if size <= 0 {
			size = DefaultAuditBuffer
		}
		prefix := make([]byte, 6)
		if _, err := io.ReadFull(g.rand, prefix); err != nil {
			return nil, fmt.Errorf("gateway: %w", err)
		}
		g.callPrefix = hex.EncodeToString(prefix)
		g.audit = newAuditLog(opts.Audit, size, opts.AuditBeforeForward, g.metrics, g.log, g.now)
	}
	return g, nil
}

// ServeHTTP serves the routes and their metadata; other paths get 404.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	g.mux.ServeHTTP(w, r)
}

// Resources returns the protected resource of every route, as the
// authorization server must know it to issue tokens for the route: its
// URL, its name, every scope its policy uses (with the tools each
// unlocks) and its baseline scopes as the default scopes. Times are left
// zero. descriptions, keyed by route name then scope, describe scopes on
// the consent page; nil is fine.
func (g *Gateway) Resources(descriptions map[string]map[string]string) []storage.Resource {
	var out []storage.Resource
	for _, rt := range g.routes {
		scopes := rt.scopes(descriptions[rt.name])
		out = append(out, storage.Resource{
			URL:                     rt.canonical,
			Name:                    rt.title,
			Scopes:                  scopes,
			DefaultScopes:           slices.Clone(rt.pol.Baseline()),
			AcceptClientCredentials: rt.spec.AcceptClientCredentials,
		})
		// An OpenAPI route's API is the audience of the tokens exchanged
		// for its calls: a resource with the route's scopes, which bound
		// what an exchange can ask for.
		if api := rt.spec.Upstream.API; api != nil && api.Exchange != nil {
			if canon, err := rs.CanonicalResource(api.Exchange.Resource); err == nil {
				apiScopes := make([]storage.Scope, len(scopes))
				for i, s := range scopes {
					apiScopes[i] = storage.Scope{Name: s.Name, Description: s.Description}
				}
				out = append(out, storage.Resource{URL: canon, Name: rt.title + " (API)", Scopes: apiScopes})
			}
		}
	}
	return out
}

// scopes returns every scope the route's policy uses, each with the tools
// it unlocks and its description: the baseline first, then those of the
// tool, resource and prompt rules, then those of the hierarchy.
func (rt *route) scopes(descriptions map[string]string) []storage.Scope {
	var scopes []storage.Scope
	index := map[string]int{}
	add := func(name, tool string) {
		i, ok := index[name]
		if !ok {
			i = len(scopes)
			index[name] = i
			scopes = append(scopes, storage.Scope{Name: name, Description: descriptions[name]})
		}
		if tool != "" && !strings.Contains(tool, "*") && !slices.Contains(scopes[i].Tools, tool) {
			scopes[i].Tools = append(scopes[i].Tools, tool)
		}
	}
	for _, s := range rt.pol.Baseline() {
		add(s, "")
	}
	for _, k := range sortedKeys(rt.spec.Tools) {
		for _, s := range rt.spec.Tools[k] {
			add(s, k)
		}
	}
	for _, rules := range []Rules{rt.spec.Resources, rt.spec.Prompts} {
		for _, k := range sortedKeys(rules) {
			for _, s := range rules[k] {
				add(s, "")
			}
		}
	}
	for _, k := range sortedKeys(rt.spec.ImpliedScopes) {
		add(k, "")
		for _, s := range rt.spec.ImpliedScopes[k] {
			add(s, "")
		}
	}
	return scopes
}

// DefaultTitle is the title of a route named name that sets none: "the
// NAME MCP server". The title is the resource's name on the consent page,
// "Allow Claude to access <title>?", where a bare name such as "everything"
// or "files" would read as far more than one MCP server.
func DefaultTitle(name string) string { return "the " + name + " MCP server" }

// sortedKeys returns m's keys in order.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// Sessions returns the number of open sessions of the named route (for a
// stdio upstream, counting processes until they have exited), or -1 for an
// unknown route.
func (g *Gateway) Sessions(route string) int {
	for _, rt := range g.routes {
		if rt.name == route {
			rt.mu.Lock()
			defer rt.mu.Unlock()
			return rt.slots
		}
	}
	return -1
}

// Shutdown drains the gateway: new requests get 503, requests in flight
// may finish until ctx ends; then every session is closed (upstream
// processes are stopped, open streams end) and the audit queue is
// written. Call it before (or while) shutting down the http.Server, whose
// Shutdown otherwise waits for open event streams.
func (g *Gateway) Shutdown(ctx context.Context) error {
	g.mu.Lock()
	if !g.draining {
		g.draining = true
		if g.inflight == 0 {
			close(g.idle)
		}
	}
	g.mu.Unlock()
	var err error
	select {
	case <-g.idle:
	case <-ctx.Done():
		err = ctx.Err()
	}
	g.closeAll(ctx, "shutdown")
	return err
}

// Close closes every session at once (upstream processes are killed) and
// writes the audit queue.
func (g *Gateway) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	g.mu.Lock()
	if !g.draining {
		g.draining = true
		if g.inflight == 0 {
			close(g.idle)
		}
	}
	g.mu.Unlock()
	g.closeAll(ctx, "shutdown")
	return nil
}

// closeAll ends every session, waits (until ctx ends) for upstream
// processes to exit, and flushes the audit log.
func (g *Gateway) closeAll(ctx context.Context, reason string) {
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		return
	}
	g.closed = true
	g.mu.Unlock()
	var procs []*process
	for _, rt := range g.routes {
		rt.mu.Lock()
		ss := make([]*session, 0, len(rt.sessions))
		for _, s := range rt.sessions {
			ss = append(ss, s)
		}
		rt.mu.Unlock()
		for _, s := range ss {
			if s.proc != nil {
				procs = append(procs, s.proc)
			}
			s.close(reason)
		}
	}
	for _, p := range procs {
		select {
		case <-p.exited:
		case <-ctx.Done():
		}
	}
	if g.audit != nil {
		g.audit.close(ctx)
	}
}

// enter counts a request in flight; false means the gateway is draining.
func (g *Gateway) enter() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.draining {
		return false
	}
	g.inflight++
	return true
}

// leave ends a request counted by enter.
func (g *Gateway) leave() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.inflight--
	if g.inflight == 0 && g.draining {
		close(g.idle)
	}
}

// newSessionID returns a session id of 256 random bits.
func (g *Gateway) newSessionID() (string, error) {
	b := make([]byte, 32)
	if _, err := io.ReadFull(g.rand, b); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// route is one compiled Route.
type route struct {
	g           *Gateway
	spec        Route
	name        string
	title       string
	url         string // as configured
	canonical   string // rs.CanonicalResource(url)
	path        string
	metadataURL string
	hosts       map[string]bool
	scheme      string
	pol         *mcpauthz.Policy
	upstream    upstream
	maxSessions int
	idle        time.Duration
	timeout     time.Duration
	maxBody     int64
	maxMsg      int64
	maxBatch    int
	verifier    rs.Verifier

	maxPerUser int

	mu       sync.Mutex
	sessions map[string]*session
	// bridged is each subject's stdio process for stateless requests,
	// bridging the process being started (stateless.go).
	bridged  map[string]*session
	bridging map[string]*bridgeStart
	slots    int            // sessions reserved or open (stdio: processes not yet exited)
	perUser  map[string]int // slots by token subject
}

func newRoute(g *Gateway, spec Route, newVerifier func(string) (rs.Verifier, error)) (*route, error) {
	fail := func(format string, args ...any) (*route, error) {
		return nil, fmt.Errorf("gateway: route %q: %s", spec.Name, fmt.Sprintf(format, args...))
	}
	if spec.Name == "" {
		return nil, errors.New("gateway: a route has no name")
	}
	canon, err := rs.CanonicalResource(spec.URL)
	if err != nil {
		return fail("%v", err)
	}
	u, _ := url.Parse(spec.URL)
	if u.Path == "" || u.Path == "/" {
		return fail("url %q needs a path", spec.URL)
	}
	metaURL, err := rs.MetadataURL(spec.URL)
	if err != nil {
		return fail("%v", err)
	}
	rt := &route{
		g: g, spec: spec, name: spec.Name, title: spec.Title, url: spec.URL, canonical: canon,
		path: u.Path, metadataURL: metaURL, scheme: strings.ToLower(u.Scheme),
		maxSessions: spec.MaxSessions, idle: spec.SessionIdleTimeout,
		timeout: spec.RequestTimeout, maxBody: spec.MaxBodyBytes, maxMsg: spec.MaxMessageBytes,
		maxBatch: spec.MaxBatchMessages,
		sessions: map[string]*session{}, perUser: map[string]int{}, maxPerUser: spec.MaxSessionsPerUser,
		bridged: map[string]*session{}, bridging: map[string]*bridgeStart{},
	}
	if rt.title == "" {
		rt.title = DefaultTitle(spec.Name)
	}
	if rt.maxSessions <= 0 {
		rt.maxSessions = DefaultMaxSessions
	}
	if rt.idle <= 0 {
		rt.idle = DefaultSessionIdle
	}
	if rt.timeout <= 0 {
		rt.timeout = DefaultRequestTimeout
	}
	if rt.maxBody <= 0 {
		rt.maxBody = DefaultMaxBodyBytes
	}
	if rt.maxMsg <= 0 {
		rt.maxMsg = DefaultMaxMessageBytes
	}
	if rt.maxBatch <= 0 {
		rt.maxBatch = DefaultMaxBatchMessages
	}
	rt.hosts = map[string]bool{}
	hosts := spec.AllowedHosts
	if len(hosts) == 0 {
		hosts = []string{u.Host}
	}
	for _, h := range hosts {
		rt.hosts[rt.normHost(h)] = true
	}
	for _, s := range spec.Scopes {
		if !mcpauthz.ValidScope(s) {
			return fail("scopes: %q is not a scope token", s)
		}
	}
	if api := spec.Upstream.API; api != nil {
		// Each operation's scopes are its tool's rule; the document and
		// the route's openapi scope rules say them, not tools rules.
		if len(spec.Tools) > 0 {
			return fail("tools rules do not apply to an OpenAPI route: give operations their scopes in its openapi scope rules")
		}
		spec.Tools = Rules{}
		for _, t := range api.Tools {
			spec.Tools[t.Name] = slices.Clone(t.Scopes)
		}
		spec.DenyUnlistedTools = true
		rt.spec = spec
	}
	rt.pol, err = mcpauthz.NewPolicy(mcpauthz.PolicyOptions{
		Baseline:              spec.Scopes,
		Implied:               spec.ImpliedScopes,
		Tools:                 spec.Tools,
		Prompts:               spec.Prompts,
		Resources:             spec.Resources,
		DenyUnlistedTools:     spec.DenyUnlistedTools,
		DenyUnlistedPrompts:   spec.DenyUnlistedPrompts,
		DenyUnlistedResources: spec.DenyUnlistedResources,
		ListTools:             spec.ListTools,
	})
	if err != nil {
		return fail("%v", err)
	}
	if rt.upstream, err = compileUpstream(rt, spec.Upstream); err != nil {
		return fail("%v", err)
	}
	if rt.verifier, err = newVerifier(spec.URL); err != nil {
		return fail("verifier: %v", err)
	}
	return rt, nil
}

// normHost lower-cases a host[:port] and drops the scheme's default port.
func (rt *route) normHost(h string) string {
	h = strings.TrimSuffix(strings.ToLower(h), ".")
	if host, port, err := net.SplitHostPort(h); err == nil {
		if (rt.scheme == "http" && port == "80") || (rt.scheme == "https" && port == "443") {
			if strings.Contains(host, ":") {
				return "[" + host + "]"
			}
			return host
		}
	}
	return h
}

// mount registers the route's endpoint and metadata on mux; root also
// registers the metadata at the root well-known URL (only one route can
// have it).
func (rt *route) mount(mux *http.ServeMux, root bool) error {
	// Every scope of the route, so that a client knows what a step-up
	// may ask for; the 401 challenge asks for the baseline only.
	var supported []string
	for _, s := range rt.scopes(nil) {
		supported = append(supported, s.Name)
	}
	meta, err := rs.MetadataHandler(rs.ResourceMetadata{
		Resource:             rt.url,
		AuthorizationServers: []string{rt.g.issuer},
		ScopesSupported:      supported,
		ResourceName:         rt.title,
	})
	if err != nil {
		return fmt.Errorf("gateway: route %q: %w", rt.name, err)
	}
	metaPath, err := rs.MetadataPath(rt.url)
	if err != nil {
		return fmt.Errorf("gateway: route %q: %w", rt.name, err)
	}
	mux.Handle(metaPath, rt.checkHost(meta))
	if root && metaPath != "/.well-known/oauth-protected-resource" {
		mux.Handle("/.well-known/oauth-protected-resource", rt.checkHost(meta))
	}
	protected := rs.RequireBearer(rt.verifier, &rs.Options{
		ResourceMetadataURL:     rt.metadataURL,
		AcceptClientCredentials: rt.spec.AcceptClientCredentials,
		Scopes:                  rt.pol.Baseline(),
		ImpliedScopes:           rt.spec.ImpliedScopes,
		AllowedOrigins:          rt.spec.AllowedOrigins,
		// checkHost has validated Host already, with the route's own list
		// and default-port normalisation.
		AllowedHosts: []string{"*"},
		Logger:       rt.g.log,
	})(http.HandlerFunc(rt.serve))
	mux.Handle(rt.path, rt.count(rt.checkHost(protected)))
	return nil
}

// checkHost refuses requests for a host the route does not answer to, so
// a DNS-rebinding page cannot pass as the route's own origin.
func (rt *route) checkHost(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !rt.hosts[rt.normHost(r.Host)] {
			mcpauthz.WriteJSON(w, http.StatusMisdirectedRequest, mcpauthz.OAuthError("invalid_request", "this gateway route does not answer to host "+mcpauthz.Clip(r.Host)))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// count records the request in the metrics.
func (rt *route) count(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sw := &asmetrics.StatusWriter{ResponseWriter: w, Code: http.StatusOK}
		next.ServeHTTP(sw, r)
		rt.g.metrics.requests.WithLabelValues(rt.name, asmetrics.MethodLabel(r.Method), strconv.Itoa(sw.Code)).Inc()
	})
}

// serve handles a request that rs.RequireBearer let through.
func (rt *route) serve(w http.ResponseWriter, r *http.Request) {
	ti := rs.TokenInfoFromContext(r.Context())
	if ti == nil {
		mcpauthz.WriteJSON(w, http.StatusInternalServerError, mcpauthz.OAuthError("server_error", ""))
		return
	}
	switch r.Method {
	case http.MethodPost:
		if !rt.g.enter() {
			rt.draining(w)
			return
		}
		defer rt.g.leave()
		rt.servePOST(w, r, ti)
	case http.MethodGet:
		if !rt.g.enter() {
			rt.draining(w)
			return
		}
		// A GET stream lasts as long as its session: it is not waited for
		// when draining, but ended when sessions close.
		rt.g.leave()
		rt.upstream.get(w, r, ti)
	case http.MethodDelete:
		if !rt.g.enter() {
			rt.draining(w)
			return
		}
		defer rt.g.leave()
		rt.serveDELETE(w, r, ti)
	default:
		w.Header().Set("Allow", "GET, POST, DELETE")
		mcpauthz.WriteJSON(w, http.StatusMethodNotAllowed, mcpauthz.OAuthError("invalid_request", "method not allowed"))
	}
}

// draining answers a request that arrives during shutdown.
func (rt *route) draining(w http.ResponseWriter) {
	w.Header().Set("Retry-After", "5")
	mcpauthz.WriteJSON(w, http.StatusServiceUnavailable, mcpauthz.ErrorResponse(nil, mcpauthz.CodeUpstreamClosed, "gateway: shutting down; retry shortly", nil))
}

// servePOST checks a POST's JSON-RPC messages against the policy and
// hands it to the upstream.
func (rt *route) servePOST(w http.ResponseWriter, r *http.Request, ti *rs.TokenInfo) {
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/json" {
		mcpauthz.WriteJSON(w, http.StatusUnsupportedMediaType, mcpauthz.ErrorResponse(nil, mcpauthz.CodeInvalidRequest, "Content-Type must be application/json", nil))
		return
	}
	if r.Header.Get(headerLastEventID) != "" {
		mcpauthz.WriteJSON(w, http.StatusBadRequest, mcpauthz.ErrorResponse(nil, mcpauthz.CodeInvalidRequest, "Last-Event-ID is not allowed on POST", nil))
		return
	}
	// A compressed body is never inflated: a small gzip bomb inflates past
	// any cap, and the policy must read what the upstream would.
	if ce := r.Header.Get("Content-Encoding"); ce != "" && !strings.EqualFold(ce, "identity") {
		mcpauthz.WriteJSON(w, http.StatusUnsupportedMediaType, mcpauthz.ErrorResponse(nil, mcpauthz.CodeInvalidRequest,
			"Content-Encoding "+strconv.Quote(mcpauthz.Clip(ce))+" is not supported: send the request body uncompressed", nil))
		return
	}
	body, ok := mcpauthz.ReadBody(w, r, rt.maxBody)
	if !ok {
		return
	}
	msgs, batch, err := mcpauthz.Inspect(body, rt.maxBatch)
	if err != nil {
		mcpauthz.WriteJSON(w, http.StatusBadRequest, mcpauthz.InspectRefusal(err))
		return
	}
	// SEP-2243 request headers must agree with the body (and be there
	// from 2026-07-28 on), or the upstream, or whatever routes in front of
	// it, could act on a method or tool the policy did not check.
	if p := mcpauthz.CheckHeaders(r.Header, msgs, batch); p != "" {
		mcpauthz.WriteHeaderMismatch(w, msgs, batch, p)
		return
	}

	// Resource rules match URIs as text: a URI an upstream would read as
	// another could slip past them (see uriProblem).
	if rt.pol.HasResourceRules() {
		for i := range msgs {
			if m := &msgs[i]; m.IsRequest && mcpauthz.NamesResource(m) {
				if p := uriProblem(m.URI); p != "" {
					mcpauthz.WriteJSON(w, http.StatusBadRequest, mcpauthz.ErrorResponse(m.ID, mcpauthz.CodeInvalidParams,
						"the resource URI "+strconv.Quote(mcpauthz.Clip(m.URI))+" is not in normal form: "+p, nil))
					return
				}
			}
		}
	}

	x := rt.newExchange(r, ti)
	x.batch = batch
	// Every message is decided once; the tool calls refused are recorded:
	// the denied ones when any message is denied, else those needing a
	// step-up.
	decisions := make([]mcpauthz.Decision, len(msgs))
	v := rt.pol.Check(ti.Scopes, msgs, decisions)
	var deniedTools, stepUpTools []*mcpauthz.Message
	for i := range msgs {
		m := &msgs[i]
		if !m.IsRequest {
			continue
		}
		d := decisions[i]
		if kind, _ := mcpauthz.Subject(m); kind != "" {
			rt.g.metrics.decisions.WithLabelValues(rt.name, kind, d.String()).Inc()
		}
		if m.Method != mcpauthz.MethodCallTool {
			continue
		}
		switch d {
		case mcpauthz.Deny:
			deniedTools = append(deniedTools, m)
		case mcpauthz.StepUp:
			stepUpTools = append(stepUpTools, m)
		}
	}
	deniedMsg, stepUpMsg := v.Denied, v.StepUp
	if deniedMsg != nil || stepUpMsg != nil {
		refused, outcome := deniedTools, "denied"
		if deniedMsg == nil {
			refused, outcome = stepUpTools, "step_up"
		}
		if !x.recordRefused(w, r, msgs, refused, outcome) {
			return
		}
		if deniedMsg != nil {
			rt.denied(w, deniedMsg, batch)
		} else {
			rt.forbidden(w, v.Need, stepUpMsg, batch, msgs)
		}
		return
	}
	for i := range msgs {
		x.track(&msgs[i])
	}
	rt.upstream.post(w, r, x, body, msgs, batch)
}

// serveDELETE ends a session.
func (rt *route) serveDELETE(w http.ResponseWriter, r *http.Request, ti *rs.TokenInfo) {
	if r.Header.Get(headerSessionID) == "" {
		mcpauthz.WriteJSON(w, http.StatusBadRequest, mcpauthz.ErrorResponse(nil, mcpauthz.CodeInvalidRequest, "DELETE needs an Mcp-Session-Id header", nil))
		return
	}
	s, ok := rt.lookup(w, r, ti)
	if !ok {
		return
	}
	rt.upstream.end(s)
	s.close("deleted")
	w.WriteHeader(http.StatusNoContent)
}

// denied answers a request the policy refuses whatever the scopes: a
// JSON-RPC error for a single request (the call fails, the connection
// lives), 403 for a batch.
func (rt *route) denied(w http.ResponseWriter, m *mcpauthz.Message, batch bool) {
	what := "method " + mcpauthz.Clip(m.Method)
	if kind, name := mcpauthz.Subject(m); kind != "" {
		what = kind + " " + strconv.Quote(mcpauthz.Clip(name))
	}
	desc := what + " is not allowed through this gateway"
	if batch || !m.IsCall() {
		mcpauthz.WriteJSON(w, http.StatusForbidden, mcpauthz.OAuthError("access_denied", desc))
		return
	}
	mcpauthz.WriteJSON(w, http.StatusOK, mcpauthz.ErrorResponse(m.ID, mcpauthz.CodeForbidden, desc, map[string]string{"error": "access_denied"}))
}

// forbidden answers 403 with a step-up challenge for need, the same as
// package rs's (see mcpauthz.WriteStepUp).
func (rt *route) forbidden(w http.ResponseWriter, need []string, denied *mcpauthz.Message, batch bool, msgs []mcpauthz.Message) {
	mcpauthz.WriteStepUp(w, rt.metadataURL, need, denied, batch, msgs)
}
