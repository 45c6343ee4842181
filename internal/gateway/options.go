package gateway

import (
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gatehouse-mcp/gatehouse/internal/mcpauthz"
	"github.com/gatehouse-mcp/gatehouse/internal/storage"
	"github.com/gatehouse-mcp/gatehouse/rs"
)

// Defaults used where a field of [Route] is zero.
const (
	DefaultMaxSessions     = 100
	DefaultSessionIdle     = 15 * time.Minute
	DefaultRequestTimeout  = 2 * time.Minute
	DefaultConnectTimeout  = 5 * time.Second
	DefaultMaxBodyBytes    = 4 << 20
	DefaultMaxMessageBytes = 16 << 20
	// DefaultMaxBatchMessages bounds the messages of one JSON-RPC batch.
	// MCP has had no batches since the 2025-06-18 revision, and clients of
	// 2025-03-26 batch a handful at most.
	DefaultMaxBatchMessages = rs.DefaultMaxBatchMessages
	// DefaultAuditBuffer is how many audit events may wait to be written
	// before tool calls are refused for want of their record.
	DefaultAuditBuffer = 4096
)

// Options configures [New].
type Options struct {
	// Issuer is the authorization server whose access tokens the gateway
	// accepts: each route's protected resource metadata names it, and the
	// default verifier fetches its JWKS. Required.
	Issuer string
	// Routes are the protected MCP endpoints. Their URL paths must differ.
	Routes []Route
	// NewVerifier returns the token verifier of a route's resource URL.
	// Nil means an [rs.JWTVerifier] for Issuer and the resource, with
	// HTTPClient and ClockSkew.
	NewVerifier func(resource string) (rs.Verifier, error)
	// HTTPClient fetches the authorization server's metadata and keys for
	// the default verifier. Nil means rs's default.
	HTTPClient *http.Client
	// ClockSkew is the default verifier's tolerance for exp and nbf. Zero
	// compares strictly.
	ClockSkew time.Duration
	// Audit receives the audit log: an event per tool call ([AuditToolCall]),
	// committed before or as the call is forwarded and before anything of
	// the upstream's answer reaches the client (before a refusal by
	// policy is answered), and one per forwarded call's outcome
	// ([AuditToolResult]), written after it. Events are written in
	// batches, one transaction per flush. A call whose event cannot be
	// queued, or must be committed first and cannot be, is not forwarded:
	// it gets the JSON-RPC error [CodeAuditUnavailable] (HTTP 503). The
	// comment at the top of audit.go has the rule exactly. Nil means no
	// audit log.
	Audit storage.Audit
	// AuditBeforeForward commits every tool call's record before the call
	// is forwarded, always, instead of while it is forwarded once the
	// store has proven itself. It closes the one window in which a
	// forwarded call can lack its record (the gateway dying within the
	// commit, well under a millisecond), at the cost of the commit's time
	// on every call's latency (docs/performance.md). Default false.
	AuditBeforeForward bool
	// AuditBuffer is how many audit events (outcomes included) may wait
	// to be written; a call whose event does not fit is refused, not
	// forwarded. An empty queue takes a batch of any size. Zero means
	// [DefaultAuditBuffer].
	AuditBuffer int
	// Registerer receives the gateway's Prometheus collectors. Nil means
	// they are not registered anywhere.
	Registerer prometheus.Registerer
	// Logger receives the gateway's log, upstream stderr included. Nil
	// means no logging.
	Logger *slog.Logger
	// Now returns the current time. Nil means time.Now.
	Now func() time.Time
	// Rand is the source of session ids. Nil means crypto/rand.
	Rand io.Reader
	// TrustProxyHeaders makes the client IP of audit events come from
	// X-Forwarded-For, read from the right, as the authorization server
	// does (package clientip): an entry that is not an IP address means
	// the peer address. Only behind a proxy that appends to the header.
	// Default false: the peer address.
	TrustProxyHeaders bool
	// TrustedProxies are the proxies whose X-Forwarded-For entries are
	// believed. Empty trusts one hop, the peer.
	TrustedProxies []netip.Prefix
}

// Route is one protected MCP endpoint in front of one upstream MCP server.
type Route struct {
	// Name identifies the route in logs, metrics and audit events.
	// Required, unique.
	Name string
	// URL is the route's public URL: the resource identifier (the
	// audience tokens must carry, and "resource" of its metadata). Its
	// path is where the route is served. Required.
	URL string
	// Title is the metadata's resource_name and the resource's name on
	// the consent page. Empty means [DefaultTitle] of Name.
	Title string
	// Upstream is the MCP server behind the route. Required.
	Upstream Upstream

	// AcceptClientCredentials lets machine tokens (client_credentials, no
	// user: [rs.TokenInfo.Machine]) call the route, and registers its
	// resource as accepting them. False, the default, refuses them: the
	// upstream runs with the gateway's own credential, which no party
	// should reach without a user.
	AcceptClientCredentials bool

	// Scopes are needed for every request: the baseline of 401
	// challenges, listed first in the metadata's scopes_supported (which
	// lists every scope of the route). Nil needs none.
	Scopes []string
	// ImpliedScopes is a scope hierarchy: a scope satisfies the scopes it
	// lists, transitively.
	ImpliedScopes map[string][]string
	// Tools maps tool names to the scopes tools/call of them needs on top
	// of Scopes; tools/list is filtered as ListTools says.
	// Unmatched tools need only Scopes.
	Tools Rules
	// DenyUnlistedTools refuses (and hides) tools no key of Tools matches.
	DenyUnlistedTools bool
	// ListTools says which tools tools/list shows a token: empty or
	// [mcpauthz.ListGrantable], every tool but those DenyUnlistedTools
	// refuses (a tool needing scopes the token lacks is listed, and its
	// call gets the step-up challenge); [mcpauthz.ListGranted], only those
	// the token may call now; [mcpauthz.ListAll], every tool the upstream
	// lists, refused ones included. Prompts and resources lists always
	// show only what the token may use.
	ListTools mcpauthz.ListMode
	// Resources does for resources/read (by URI) and resources/list what
	// Tools does for tools.
	Resources Rules
	// DenyUnlistedResources refuses (and hides) unmatched resources.
	DenyUnlistedResources bool
	// Prompts does for prompts/get (by name) and prompts/list what Tools
	// does for tools.
	Prompts Rules
	// DenyUnlistedPrompts refuses (and hides) unmatched prompts.
	DenyUnlistedPrompts bool

	// AllowedOrigins are browser origins allowed to call cross-origin
	// ("*" for any); the route's own origin always is. Others get 403.
	AllowedOrigins []string
	// AllowedHosts are the accepted Host header values. Nil means the
	// host of URL only (DNS rebinding protection).
	AllowedHosts []string

	// MaxSessions caps concurrent MCP sessions (for a stdio upstream, its
	// processes). Zero means [DefaultMaxSessions].
	MaxSessions int
	// MaxSessionsPerUser caps one token subject's concurrent sessions, so
	// that no user can take every session of the route. Zero means no cap
	// of its own: clients that never end their sessions (most SDKs do not
	// send DELETE) hold them until SessionIdleTimeout, and a default cap
	// would lock such users out.
	MaxSessionsPerUser int
	// SessionIdleTimeout ends a session after this long without a
	// request. Zero means [DefaultSessionIdle].
	SessionIdleTimeout time.Duration
	// RequestTimeout bounds the wait for the upstream's answer to a
	// request. Zero means [DefaultRequestTimeout].
	RequestTimeout time.Duration
	// MaxBodyBytes caps request bodies (413 beyond). Zero means
	// [DefaultMaxBodyBytes].
	MaxBodyBytes int64
	// MaxMessageBytes caps one upstream message: a stdout line, a JSON
	// response or an SSE event. Zero means [DefaultMaxMessageBytes].
	MaxMessageBytes int64
	// MaxBatchMessages caps the messages of one JSON-RPC batch: a longer
	// batch is refused with 400 before anything is forwarded. Every tool
	// call of a batch is forwarded and audited, so without a cap one
	// request of MaxBodyBytes carries tens of thousands. Zero means
	// [DefaultMaxBatchMessages].
	MaxBatchMessages int
}

// Upstream is a Streamable HTTP MCP server (URL), a stdio one (Command)
// or an HTTP API whose OpenAPI operations the gateway serves as tools
// (API); exactly one is set.
type Upstream struct {
	// API is an HTTP API described by an OpenAPI document: the gateway is
	// its MCP server. Its tools' scopes are the route's tool rules.
	API *API

	// URL is the upstream's Streamable HTTP endpoint.
	URL string
	// Header is added to every request to an HTTP upstream: the gateway's
	// own credential for it. The client's Authorization and Cookie
	// headers are never forwarded.
	Header http.Header
	// ConnectTimeout bounds connecting to an HTTP upstream. Zero means
	// [DefaultConnectTimeout].
	ConnectTimeout time.Duration
	// Transport sends requests to an HTTP upstream. Nil means a transport
	// of the gateway's own (no proxy from the environment).
	Transport http.RoundTripper

	// Command is the program of a stdio upstream, started once per MCP
	// session. It speaks newline-delimited JSON-RPC on its standard input
	// and output; its standard error goes to the log.
	Command string
	// Args are the command's arguments.
	Args []string
	// Dir is the process's working directory; empty means the gateway's.
	Dir string
	// Env is the process's whole environment ("NAME=value"): nothing of
	// the gateway's own environment is inherited unless listed here.
	Env []string
}
