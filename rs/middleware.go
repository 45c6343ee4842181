package rs

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/gatehouse-mcp/gatehouse/internal/mcpauthz"
	"github.com/gatehouse-mcp/gatehouse/internal/oauth"
)

// DefaultMaxBodyBytes is the largest request body [RequireBearer] reads to
// find the JSON-RPC method and tool when [Options.MaxBodyBytes] is zero.
// It matches the MCP Go SDK's own default limit.
const DefaultMaxBodyBytes = 4 << 20

// DefaultMaxBatchMessages is the most messages [RequireBearer] lets through
// in one JSON-RPC batch when [Options.MaxBatchMessages] is zero. MCP has
// had no batches since the 2025-06-18 revision; older clients batch a
// handful at most.
const DefaultMaxBatchMessages = 100

// Options configures [RequireBearer]. The zero value (or nil) checks the
// token only: no scopes, no JSON-RPC inspection, no cross-origin access.
type Options struct {
	// ResourceMetadataURL is sent as resource_metadata in every challenge
	// (RFC 9728 §5.1), so clients find the authorization server; build it
	// with [MetadataURL]. MCP clients of the 2025-06-18 revision depend on
	// it. Empty leaves the parameter out.
	ResourceMetadataURL string

	// Scopes are needed for every request, and are the scope of the 401
	// challenge (RFC 6750 §3): the baseline a client asks for first. Keep
	// it minimal; more come by step-up (MCP "scope minimization"). Nil
	// needs none and leaves scope out of 401 challenges.
	Scopes []string

	// ToolScopes maps an MCP tool name (params.name of a tools/call) to
	// the scopes calling it needs on top of Scopes. A call without them is
	// answered 403 with an insufficient_scope challenge naming every scope
	// the call needs, before the MCP server sees the request. Tools not
	// listed need only Scopes.
	ToolScopes map[string][]string

	// MethodScopes maps a JSON-RPC method (such as "resources/read") to
	// the scopes it needs on top of Scopes, answered like ToolScopes.
	MethodScopes map[string][]string

	// ImpliedScopes maps a scope to the scopes it includes, for servers
	// with a scope hierarchy (the MCP specification requires honouring
	// one): with {"notes:admin": {"notes:write"}, "notes:write":
	// {"notes:read"}}, a token granted notes:admin satisfies all three.
	// The relation is transitive. Nil means scopes only satisfy
	// themselves.
	ImpliedScopes map[string][]string

	// AcceptClientCredentials lets machine tokens through: tokens a client
	// obtained for itself with the client_credentials grant, with no user
	// behind them ([TokenInfo.Machine]). False, the default, refuses them
	// with 401 invalid_token, so a server that treats the token's subject
	// as a person never serves a machine by mistake. Set it only if every
	// tool is safe to call without a user; the authorization server must
	// also be told (Gatehouse: the resource's accept_client_credentials).
	AcceptClientCredentials bool

	// ListTools says which tools tools/list responses show the token.
	// Empty means [ListGrantable]. See [ListMode] for the trade-off.
	ListTools ListMode

	// FilterToolsList is the ListTools of old releases: true with an
	// empty ListTools means [ListGranted].
	//
	// Deprecated: set ListTools to [ListGranted], or leave it empty:
	// hiding every tool the token cannot call yet hides step-up from
	// hosts that only call listed tools.
	FilterToolsList bool

	// MaxBodyBytes bounds how much of a POST body is read to find the
	// JSON-RPC method and tool when ToolScopes or MethodScopes is set or
	// ListTools is [ListGranted]; a longer body is refused with 413 and a
	// JSON-RPC error naming the limit (earlier versions of rs answered
	// with an OAuth invalid_request body). Zero means
	// [DefaultMaxBodyBytes]. Bodies are not read otherwise.
	MaxBodyBytes int64

	// MaxBatchMessages bounds the messages of one JSON-RPC batch when the
	// body is read (as for MaxBodyBytes): a longer batch is refused with
	// 400 and a JSON-RPC Invalid Request error naming the limit, before
	// the server sees it. Every message is checked, and may be work for
	// the server. Zero means [DefaultMaxBatchMessages]; negative, no limit.
	MaxBatchMessages int

	// MaxTokenBytes refuses longer bearer tokens before they reach the
	// verifier. Zero means [DefaultMaxTokenBytes].
	MaxTokenBytes int

	// AllowedOrigins lists the browser origins ("https://app.example.com")
	// allowed to call cross-origin; "*" allows any. Their requests get CORS
	// headers that expose WWW-Authenticate and the MCP headers, and their
	// preflight requests are answered without a token. A request with an
	// Origin header that is neither listed nor the server's own is refused
	// with 403 (the MCP Streamable HTTP transport requires validating
	// Origin). Nil allows same-origin and non-browser requests only.
	AllowedOrigins []string

	// AllowedHosts lists the Host header values ("mcp.example.com",
	// "127.0.0.1:8081") the server answers to; any other is refused with
	// 403 before anything else. This is the DNS-rebinding guard (RS-17): a
	// rebinding page controls both Origin and Host, so an Origin check
	// alone passes it. Nil means the host of ResourceMetadataURL (the
	// resource's own origin); "*" allows any host (only behind a proxy
	// that validates Host itself).
	AllowedHosts []string

	// DPoP configures the checking of DPoP proofs for DPoP-bound tokens
	// (RFC 9449); see [DPoPOptions]. The zero value checks them, with an
	// in-memory replay cache and no nonces.
	DPoP DPoPOptions

	// Logger receives server errors and, at debug level, why tokens were
	// refused (never the tokens). Nil means no logging.
	Logger *slog.Logger
}

// ListMode says which tools a tools/list response shows a token
// ([Options.ListTools]).
//
// RequireBearer has no rule refusing a tool whatever the scopes: every
// scope in ToolScopes is one of the resource's scopes, and which of them
// the authorization server grants a given user or client is its policy,
// not visible here. So in package rs [ListGrantable] and [ListAll] list
// the same tools (the server's whole list, untouched), and only
// [ListGranted] filters. A tool the authorization server will never grant
// this user stays listed; calling it gets the step-up challenge, and the
// authorization server then refuses the scope.
type ListMode string

// The list modes.
const (
	// ListGrantable lists every tool a step-up can make callable: a
	// listed tool that needs more scope answers its call with a 403
	// insufficient_scope challenge naming every scope it needs, so hosts
	// that only call listed tools (MCP Inspector, Claude Desktop through
	// mcp-remote) reach step-up. The default.
	ListGrantable ListMode = "grantable"
	// ListGranted lists only the tools the token may call now: least
	// disclosure (a token sees nothing of the tools it lacks scopes for),
	// but hosts that only call listed tools never step up.
	ListGranted ListMode = "granted"
	// ListAll lists every tool the server lists. In package rs the same
	// as ListGrantable.
	ListAll ListMode = "all"
)

// AllScopes returns every scope o names: Scopes first, then the others of
// ToolScopes, MethodScopes and ImpliedScopes, sorted. It is what
// [ResourceMetadata.ScopesSupported] should list, so that clients learn
// every scope a step-up may ask for; the 401 challenge still asks for
// Scopes only.
func (o *Options) AllScopes() []string {
	var more []string
	for _, m := range []map[string][]string{o.ToolScopes, o.MethodScopes} {
		for _, scopes := range m {
			more = append(more, scopes...)
		}
	}
	for s, implied := range o.ImpliedScopes {
		more = append(append(more, s), implied...)
	}
	slices.Sort(more)
	return mcpauthz.Dedup(append(slices.Clone(o.Scopes), more...))
}

// CORS header values of the MCP endpoint.
const (
	corsAllowMethods  = "GET, POST, DELETE, OPTIONS"
	corsAllowHeaders  = "Authorization, DPoP, Content-Type, Accept, Mcp-Session-Id, Mcp-Protocol-Version, Last-Event-ID, Mcp-Method, Mcp-Name"
	corsExposeHeaders = "WWW-Authenticate, DPoP-Nonce, Mcp-Session-Id, Mcp-Protocol-Version"
)

// RequireBearer returns middleware that lets a request through only with a
// valid bearer token that has the scopes the request needs, with the
// token's [TokenInfo] in the request context ([TokenInfoFromContext]). It
// plays the role of the MCP Go SDK's auth.RequireBearerToken, with RFC 6750
// error codes and per-tool scopes.
//
// Answers, each with a JSON body and Cache-Control: no-store:
//   - no bearer token in the Authorization header: 401,
//     WWW-Authenticate: Bearer resource_metadata="…", scope="<Scopes>".
//     A token in the query string (access_token) or a form body is not
//     looked at (OAuth 2.1 §5.1.1).
//   - a token the verifier refuses ([ErrInvalidToken]), or a machine
//     token ([TokenInfo.Machine]) without [Options.AcceptClientCredentials]:
//     401 with the same challenge plus error="invalid_token" and
//     error_description.
//   - scopes missing: 403, WWW-Authenticate: Bearer
//     error="insufficient_scope", scope="<every scope the request
//     needs>", resource_metadata="…", error_description="…" (RFC 6750
//     §3.1; MCP step-up authorization). For a single JSON-RPC request the
//     body is a JSON-RPC error response with the request's id, so a client
//     that cannot step up fails that call, not its connection; otherwise
//     it is {"error", "error_description"}.
//   - several Authorization headers: 400 invalid_request.
//   - a body that cannot be inspected: 400 with a JSON-RPC parse error;
//     too long: 413 with a JSON-RPC Invalid Request error (id null)
//     naming the limit, as the gateway answers. Neither reaches the next
//     handler.
//   - when the body is read (as for MaxBodyBytes), an Mcp-Method or
//     Mcp-Name header that does not match it, or one missing from a
//     request of protocol version 2026-07-28 or later (SEP-2243): 400
//     with a JSON-RPC HeaderMismatch error (-32020) and the request's id,
//     before the scopes are checked and before the next handler runs.
//   - the verifier cannot decide ([ErrUnavailable]): 503.
//
// RequireBearer panics if v is nil, a configured scope is not a valid
// scope token (RFC 6749 §3.3) or ListTools is not a [ListMode].
func RequireBearer(v Verifier, opts *Options) func(http.Handler) http.Handler {
	if v == nil {
		panic("rs: RequireBearer: nil Verifier")
	}
	m := newMiddleware(v, opts)
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			m.serve(w, r, next)
		})
	}
}

// middleware is RequireBearer's compiled configuration.
type middleware struct {
	verifier    Verifier
	metadataURL string
	machines    bool // AcceptClientCredentials
	baseline    []string
	pol         *mcpauthz.Policy // ToolScopes, MethodScopes, ImpliedScopes on top of baseline
	inspect     bool
	filter      bool // tools/list responses are rewritten (ListGranted)
	maxBody     int64
	maxBatch    int
	maxToken    int
	anyOrigin   bool
	origins     map[string]bool
	anyHost     bool
	hosts       map[string]bool
	dpop        *dpopChecker
	log         *slog.Logger
}

func newMiddleware(v Verifier, opts *Options) *middleware {
	if opts == nil {
		opts = &Options{}
	}
	m := &middleware{
		verifier:    v,
		metadataURL: opts.ResourceMetadataURL,
		machines:    opts.AcceptClientCredentials,
		baseline:    mcpauthz.Dedup(opts.Scopes),
		maxBody:     opts.MaxBodyBytes,
		maxBatch:    opts.MaxBatchMessages,
		maxToken:    opts.MaxTokenBytes,
		origins:     map[string]bool{},
		log:         opts.Logger,
		dpop:        newDPoPChecker(opts.DPoP, opts.ResourceMetadataURL),
	}
	if m.maxBody <= 0 {
		m.maxBody = DefaultMaxBodyBytes
	}
	if m.maxBatch == 0 {
		m.maxBatch = DefaultMaxBatchMessages
	}
	if m.maxToken <= 0 {
		m.maxToken = DefaultMaxTokenBytes
	}
	m.hosts = map[string]bool{}
	hosts := opts.AllowedHosts
	if hosts == nil {
		if u, err := url.Parse(opts.ResourceMetadataURL); err == nil && u.Host != "" {
			hosts = []string{u.Host}
		} else {
			hosts = []string{"*"} // nothing to derive from: documented on the field
		}
	}
	for _, h := range hosts {
		if h == "*" {
			m.anyHost = true
		}
		m.hosts[strings.ToLower(h)] = true
	}
	for _, o := range opts.AllowedOrigins {
		if o == "*" {
			m.anyOrigin = true
		}
		m.origins[strings.ToLower(strings.TrimSuffix(o, "/"))] = true
	}
	check := func(scopes []string) {
		for _, s := range scopes {
			if !mcpauthz.ValidScope(s) {
				panic(fmt.Sprintf("rs: RequireBearer: %q is not a valid scope token (RFC 6749 §3.3)", s))
			}
		}
	}
	check(m.baseline)
	for _, scopes := range opts.ToolScopes {
		check(scopes)
	}
	for _, scopes := range opts.MethodScopes {
		check(scopes)
	}
	list := opts.ListTools
	if list == "" && opts.FilterToolsList {
		list = ListGranted
	}
	mode, err := mcpauthz.ParseListMode(string(list))
	if err != nil {
		panic("rs: RequireBearer: Options." + strings.Replace(err.Error(), "list_tools", "ListTools", 1))
	}
	tools := make(mcpauthz.Rules, len(opts.ToolScopes))
	for name, scopes := range opts.ToolScopes {
		tools[name] = scopes
	}
	pol, err := mcpauthz.NewPolicy(mcpauthz.PolicyOptions{
		Baseline:     m.baseline,
		Implied:      opts.ImpliedScopes,
		Methods:      opts.MethodScopes,
		Tools:        tools,
		LiteralNames: true, // ToolScopes keys are tool names, "*" included
		ListTools:    mode,
	})
	if err != nil {
		panic("rs: RequireBearer: " + err.Error()) // the scopes were checked above
	}
	m.pol = pol
	// Without a rule that refuses a tool whatever the scopes, only
	// ListGranted hides anything.
	m.filter = pol.FiltersTools()
	m.inspect = len(opts.ToolScopes) > 0 || len(opts.MethodScopes) > 0 || m.filter
	return m
}

func (m *middleware) serve(w http.ResponseWriter, r *http.Request, next http.Handler) {
	if !m.anyHost && !m.hosts[strings.ToLower(r.Host)] {
		mcpauthz.WriteJSON(w, http.StatusForbidden, mcpauthz.OAuthError("invalid_request", "host not allowed"))
		return
	}
	if origin := r.Header.Get("Origin"); origin != "" {
		if !m.corsAllowed(w, r, origin) {
			mcpauthz.WriteJSON(w, http.StatusForbidden, mcpauthz.OAuthError("invalid_request", "origin not allowed"))
			return
		}
		if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
			h := w.Header()
			h.Set("Access-Control-Allow-Methods", corsAllowMethods)
			h.Set("Access-Control-Allow-Headers", corsAllowHeaders)
			h.Set("Access-Control-Max-Age", "600")
			w.WriteHeader(http.StatusNoContent)
			return
		}
	}

	auth := r.Header.Values("Authorization")
	if len(auth) > 1 {
		mcpauthz.WriteJSON(w, http.StatusBadRequest, mcpauthz.OAuthError("invalid_request", "more than one Authorization header"))
		return
	}
	token, sent, dpopScheme := "", false, false
	if len(auth) == 1 {
		scheme, rest, _ := strings.Cut(auth[0], " ")
		// RFC 9449 §7.1: a DPoP-bound token comes with the DPoP scheme.
		if dpopScheme = strings.EqualFold(scheme, "DPoP"); dpopScheme || strings.EqualFold(scheme, "Bearer") {
			sent = true
			token = strings.Trim(rest, " ")
		}
	}
	if !sent {
		m.unauthorized(w, "", "no access token")
		return
	}
	if len(token) > m.maxToken {
		m.unauthorized(w, "invalid_token", ErrTooLarge.Error())
		return
	}
	if !validB64Token(token) {
		m.unauthorized(w, "invalid_token", ErrMalformed.Error())
		return
	}
	info, err := m.verifier.Verify(r.Context(), token)
	switch {
	case err == nil && info == nil:
		err = errors.New("verifier returned neither TokenInfo nor error")
		fallthrough
	case err != nil && !errors.Is(err, ErrInvalidToken):
		m.unavailable(w, r, err)
		return
	case err != nil:
		if m.log != nil {
			m.log.Debug("rs: token refused", "cause", err, "path", r.URL.Path)
		}
		m.unauthorized(w, "invalid_token", ErrorDescription(err))
		return
	}
	if f := m.dpop.check(r, token, info, dpopScheme); f != nil {
		m.refuseDPoP(w, r, f)
		return
	}
	if info.Machine() && !m.machines {
		if m.log != nil {
			m.log.Debug("rs: machine token refused", "client_id", info.ClientID, "path", r.URL.Path)
		}
		m.unauthorized(w, "invalid_token", "this resource does not accept tokens issued without a user (client_credentials); sign in as a user")
		return
	}

	var calls []json.RawMessage
	var batch bool
	if m.inspect && r.Method == http.MethodPost && r.Body != nil {
		body, ok := mcpauthz.ReadBody(w, r, m.maxBody)
		r.Body.Close()
		if !ok {
			return
		}
		msgs, isBatch, err := mcpauthz.Inspect(body, m.maxBatch)
		if err != nil {
			mcpauthz.WriteJSON(w, http.StatusBadRequest, json.RawMessage(mcpauthz.InspectRefusal(err)))
			return
		}
		// Mcp-Method and Mcp-Name (SEP-2243) must name what the policy
		// checks below: a router in front, or the MCP server, acting on
		// the headers would otherwise act on something else.
		if p := mcpauthz.CheckHeaders(r.Header, msgs, isBatch); p != "" {
			mcpauthz.WriteHeaderMismatch(w, msgs, isBatch, p)
			return
		}
		// rs has no rule that denies whatever the scopes: only step-up.
		if v := m.pol.Check(info.Scopes, msgs, nil); v.StepUp != nil {
			m.forbidden(w, v.Need, v.StepUp, isBatch, msgs)
			return
		}
		batch = isBatch
		for _, msg := range msgs {
			if msg.IsCall() {
				calls = append(calls, msg.ID)
			}
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		r.ContentLength = int64(len(body))
	} else if m.pol.Check(info.Scopes, nil, nil).StepUp != nil {
		m.forbidden(w, m.baseline, nil, false, nil)
		return
	}

	r = r.WithContext(withTokenInfo(r.Context(), info))
	// Every response to a POST or GET is filtered, not only those to a
	// tools/list: a client takes a list for the answer to its tools/list
	// by an id it reads its own way, on any POST's response or on a GET
	// stream (which replays an earlier POST's events on resumption), so
	// the filter cannot rely on matching ids (review finding F2).
	if m.filter && (r.Method == http.MethodPost || r.Method == http.MethodGet) {
		fw := &filterWriter{ResponseWriter: w, allowed: m.pol.Listed(mcpauthz.MethodListTools, info.Scopes), calls: calls, batch: batch}
		next.ServeHTTP(fw, r)
		fw.finish()
		return
	}
	next.ServeHTTP(w, r)
}

// unauthorized answers 401 with the baseline challenge; code and
// description are left out of the header when code is empty.
func (m *middleware) unauthorized(w http.ResponseWriter, code, description string) {
	description = oauth.SafeText(description)
	params := []oauth.Param{{Name: "resource_metadata", Value: m.metadataURL}, {Name: "scope", Value: strings.Join(m.baseline, " ")}}
	if code != "" {
		params = append(params, oauth.Param{Name: "error", Value: code}, oauth.Param{Name: "error_description", Value: description})
	} else {
		code = "invalid_token"
	}
	w.Header().Set("WWW-Authenticate", oauth.Challenge("Bearer", params...))
	mcpauthz.WriteJSON(w, http.StatusUnauthorized, mcpauthz.OAuthError(code, description))
}

// forbidden answers 403 with a step-up challenge for need (see
// mcpauthz.WriteStepUp).
func (m *middleware) forbidden(w http.ResponseWriter, need []string, denied *mcpauthz.Message, batch bool, msgs []mcpauthz.Message) {
	mcpauthz.WriteStepUp(w, m.metadataURL, need, denied, batch, msgs)
}

// unavailable answers a verifier failure that is not the token's fault.
func (m *middleware) unavailable(w http.ResponseWriter, r *http.Request, err error) {
	if m.log != nil {
		m.log.Error("rs: cannot verify access token", "cause", err, "path", r.URL.Path)
	}
	if r.Context().Err() != nil || errors.Is(err, ErrUnavailable) {
		w.Header().Set("Retry-After", "5")
		mcpauthz.WriteJSON(w, http.StatusServiceUnavailable, mcpauthz.OAuthError("temporarily_unavailable", "the access token cannot be verified right now"))
		return
	}
	mcpauthz.WriteJSON(w, http.StatusInternalServerError, mcpauthz.OAuthError("server_error", ""))
}

// corsAllowed sets the CORS response headers for an allowed origin and
// reports whether origin may call: an allowed origin, or the server's own.
func (m *middleware) corsAllowed(w http.ResponseWriter, r *http.Request, origin string) bool {
	norm := strings.ToLower(origin)
	if m.anyOrigin || m.origins[norm] {
		h := w.Header()
		if m.anyOrigin {
			h.Set("Access-Control-Allow-Origin", "*")
		} else {
			h.Set("Access-Control-Allow-Origin", origin)
			h.Add("Vary", "Origin")
		}
		h.Set("Access-Control-Expose-Headers", corsExposeHeaders)
		return true
	}
	u, err := url.Parse(origin)
	return err == nil && u.Host != "" && strings.EqualFold(u.Host, r.Host)
}

// validB64Token reports whether s matches b64token of RFC 6750 §2.1:
// 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"=".
func validB64Token(s string) bool {
	i := 0
	for ; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
			c == '-' || c == '.' || c == '_' || c == '~' || c == '+' || c == '/') {
			break
		}
	}
	if i == 0 {
		return false
	}
	for ; i < len(s); i++ {
		if s[i] != '=' {
			return false
		}
	}
	return true
}
