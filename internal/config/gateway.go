package config

import (
	"cmp"
	"fmt"
	"maps"
	"net"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/gatehouse-mcp/gatehouse/internal/mcpauthz"
)

// Gateway configures the MCP gateway: OAuth and per-tool policy in front of
// MCP servers that have no authorization of their own. It is the gateway
// section of the configuration file, read by `gatehouse gateway` (the
// gateway alone) and by `gatehouse serve` (the gateway next to the
// authorization server). The zero value is a gateway with no routes, which
// serves nothing.
//
// Secrets (upstream credentials) never appear in the file: they are read
// from files or environment variables named here, by [Gateway.Resolve].
type Gateway struct {
	// Issuer (issuer) is the authorization server whose access tokens the
	// gateway accepts. Empty means the top-level issuer.
	Issuer string `json:"issuer,omitempty"`
	// Listen (listen) is the gateway's own listen address. Default
	// 127.0.0.1:8090 ([DefaultGatewayListen]).
	Listen string `json:"listen,omitempty"`
	// AdminListen (admin_listen) serves /metrics and /healthz for a
	// standalone `gatehouse gateway`. Empty (the default) serves neither;
	// under `gatehouse serve` the gateway's metrics join the server's.
	AdminListen string `json:"admin_listen,omitempty"`
	// RegisterResources (register_resources) makes the gateway create or
	// update each route's protected resource (URL, scopes, default scopes)
	// in storage on start, so the authorization server issues tokens for
	// it. Nil means true.
	RegisterResources *bool `json:"register_resources,omitempty"`
	// ShutdownTimeout (shutdown_timeout) is how long in-flight requests may
	// finish on shutdown before sessions are closed and upstream processes
	// killed. Default 10s.
	ShutdownTimeout Duration `json:"shutdown_timeout,omitempty"`
	// AuditBeforeForward (audit_before_forward) commits each tool call's
	// audit record before the call is forwarded, always. Default false:
	// once the audit store has committed a transaction, a call is
	// forwarded while its record is committed, and nothing of the answer
	// reaches the client before that commit; a gateway that dies within
	// the commit (well under a millisecond) leaves that call without its
	// record. True closes that window for the commit's time on every
	// call (docs/gateway.md, "Audit").
	AuditBeforeForward bool `json:"audit_before_forward,omitempty"`
	// Routes (routes) are the protected MCP endpoints, each one protected
	// resource with its own URL.
	Routes []GatewayRoute `json:"routes,omitempty"`

	// src is where each value came from, for placing problems; set by
	// Load (the Config's own).
	src *sources
}

// DefaultGatewayListen is the gateway's listen address when
// [Gateway.Listen] is empty.
const DefaultGatewayListen = "127.0.0.1:8090"

// DefaultGatewayShutdownTimeout is [Gateway.ShutdownTimeout] when it is
// zero. A route's zero fields take package gateway's defaults.
const DefaultGatewayShutdownTimeout = 10 * time.Second

// DefaultGatewayInheritEnv are the environment variables a stdio upstream
// inherits from the gateway when [GatewayUpstream.InheritEnv] is nil.
// Nothing else is inherited: the gateway's environment may hold its own
// secrets (a database DSN).
var DefaultGatewayInheritEnv = []string{"PATH", "HOME", "USER", "LANG", "LC_ALL", "TZ", "TMPDIR"}

// GatewayRoute is one protected MCP endpoint and the upstream MCP server
// behind it.
type GatewayRoute struct {
	// Name (name) identifies the route in logs, metrics and audit events:
	// letters, digits, '.', '_' and '-'. Required, unique.
	Name string `json:"name"`
	// URL (url) is the route's public URL, such as
	// "https://mcp.example.com/everything/mcp": the resource identifier
	// (access-token audience and protected resource metadata "resource"),
	// and its path is where the gateway serves the route. Required.
	URL string `json:"url"`
	// Title (title) is the resource_name in the protected resource
	// metadata and the resource's name at the authorization server, shown
	// on the consent page: "Allow Claude to access <title>?". Empty means
	// "the <name> MCP server".
	Title string `json:"title,omitempty"`

	// Upstream (upstream) is the MCP server behind the route. Required.
	Upstream GatewayUpstream `json:"upstream"`

	// AcceptClientCredentials (accept_client_credentials) lets tokens
	// without a user (client_credentials) call the route, and registers its
	// resource as accepting them. Default false: the upstream runs with the
	// gateway's credential, which nobody should reach without a user.
	AcceptClientCredentials bool `json:"accept_client_credentials,omitempty"`

	// Scopes (scopes) are needed for every request to the route: the
	// baseline a client asks for first (the 401 challenge's scope and the
	// metadata's scopes_supported), and the default scopes of the
	// registered resource. Keep it minimal; more come by step-up.
	Scopes []string `json:"scopes,omitempty"`
	// ScopeDescriptions (scope_descriptions) describe scopes on the
	// consent page. Optional.
	ScopeDescriptions map[string]string `json:"scope_descriptions,omitempty"`
	// ImpliedScopes (implied_scopes) is a scope hierarchy: a scope
	// satisfies the scopes it lists, transitively.
	ImpliedScopes map[string][]string `json:"implied_scopes,omitempty"`
	// ScopePolicies (scope_policies) restrict scopes of the route to some
	// users: scope → who may be granted it. They are written into the
	// route's registered resource, where the authorization server checks
	// them at every authorization and refresh; the gateway itself only
	// checks the token's scopes. When the key is present (even {}), it is
	// the whole of the resource's policies, replacing any set with
	// `gatehouse resource add --scope-group` at every start; when absent,
	// policies stored for the resource are kept.
	ScopePolicies map[string]ScopePolicy `json:"scope_policies,omitempty"`

	// Tools (tools) maps a tool name to the scopes calling it needs on top
	// of Scopes. A key ending in "*" matches names with that prefix (the
	// longest match wins); the key "*" alone is the default for unlisted
	// tools. Without a matching key a tool needs only Scopes.
	Tools map[string][]string `json:"tools,omitempty"`
	// DenyUnlistedTools (deny_unlisted_tools) refuses tools that no key of
	// Tools matches, and hides them from tools/list. Default false.
	DenyUnlistedTools bool `json:"deny_unlisted_tools,omitempty"`
	// ListTools (list_tools) says which tools tools/list shows a token:
	// "grantable" (the default) every tool but those deny_unlisted_tools
	// refuses, so that a host that only calls listed tools can call one
	// needing more scope and be stepped up; "granted" only the tools the
	// token may call now (least disclosure, no step-up from the list);
	// "all" every tool the upstream lists, refused ones included.
	ListTools string `json:"list_tools,omitempty"`
	// Resources (resources) maps a resource URI (exact, or a prefix ending
	// in "*", or "*") to the scopes resources/read of it needs; resources/list
	// is filtered the same way.
	Resources map[string][]string `json:"resources,omitempty"`
	// DenyUnlistedResources (deny_unlisted_resources) refuses and hides
	// resources no key of Resources matches. Default false.
	DenyUnlistedResources bool `json:"deny_unlisted_resources,omitempty"`
	// Prompts (prompts) maps a prompt name (exact, prefix*, or "*") to the
	// scopes prompts/get of it needs; prompts/list is filtered the same way.
	Prompts map[string][]string `json:"prompts,omitempty"`
	// DenyUnlistedPrompts (deny_unlisted_prompts) refuses and hides prompts
	// no key of Prompts matches. Default false.
	DenyUnlistedPrompts bool `json:"deny_unlisted_prompts,omitempty"`

	// AllowedOrigins (allowed_origins) are browser origins allowed to call
	// the route cross-origin ("*" for any). The route's own origin is
	// always allowed; a request with any other Origin is refused (403).
	AllowedOrigins []string `json:"allowed_origins,omitempty"`
	// AllowedHosts (allowed_hosts) are the Host header values accepted
	// (host or host:port). Default: the host of URL only. Requests for any
	// other host are refused (DNS rebinding protection).
	AllowedHosts []string `json:"allowed_hosts,omitempty"`

	// MaxSessions (max_sessions) caps the route's concurrent MCP sessions
	// — for a stdio upstream, its processes. Beyond it, a new session is
	// refused with 503 and a JSON-RPC error. Default 100.
	MaxSessions int `json:"max_sessions,omitempty"`
	// MaxSessionsPerUser (max_sessions_per_user) caps one token subject's
	// concurrent sessions on the route, so that no user can take them
	// all; beyond it, 429. Default 0: no cap of its own (clients that
	// never end sessions hold them until the idle timeout).
	MaxSessionsPerUser int `json:"max_sessions_per_user,omitempty"`
	// SessionIdleTimeout (session_idle_timeout) ends a session (killing
	// its process) after this long without a request. Default 15m.
	SessionIdleTimeout Duration `json:"session_idle_timeout,omitempty"`
	// RequestTimeout (request_timeout) is the longest a request waits for
	// the upstream's response; then it gets a JSON-RPC error. Default 2m.
	RequestTimeout Duration `json:"request_timeout,omitempty"`
	// MaxBodyBytes (max_body_bytes) caps a request body; larger ones get
	// 413. Default 4 MiB.
	MaxBodyBytes int64 `json:"max_body_bytes,omitempty"`
	// MaxMessageBytes (max_message_bytes) caps one upstream message (a
	// stdout line, a JSON response, an SSE event). A stdio upstream that
	// exceeds it loses its session. Default 16 MiB.
	MaxMessageBytes int64 `json:"max_message_bytes,omitempty"`
	// MaxBatchMessages (max_batch_messages) caps the messages of one
	// JSON-RPC batch; a longer batch gets 400 and nothing of it is
	// forwarded. Default 100.
	MaxBatchMessages int `json:"max_batch_messages,omitempty"`
}

// ScopePolicy restricts who may be granted one scope of a gateway route,
// as storage.ScopePolicy does for any resource. It holds when its groups
// condition (if any) and every claim condition hold; it needs at least
// one condition.
type ScopePolicy struct {
	// Groups (groups): the user must be in at least one of them (groups
	// come from `gatehouse user group add` and identity providers' groups
	// claims).
	Groups []string `json:"groups,omitempty"`
	// Claims (claims) maps a claim name to accepted values: for each, the
	// user's upstream provider must have given one of the values at their
	// last sign-in (the provider keeps the claim only if it is in its
	// identity.providers[].policy_claims). Local users have no claims: a
	// claim condition always withholds the scope from them.
	Claims map[string][]string `json:"claims,omitempty"`
}

// CheckClaimName refuses a claim name of a scope policy that could not be
// typed back with `resource add --scope-claim SCOPE=CLAIM=VALUE`: empty,
// over 100 bytes, or with '=', a space or a control character.
func CheckClaimName(c string) error {
	if c == "" || len(c) > 100 || !utf8.ValidString(c) || strings.ContainsFunc(c, func(r rune) bool {
		return r == '=' || unicode.IsSpace(r) || unicode.IsControl(r)
	}) {
		return fmt.Errorf("claim name %q: use 1 to 100 bytes of UTF-8 without '=', spaces or control characters", c)
	}
	return nil
}

// CheckClaimValue refuses a claim value of a scope policy that no
// sign-in could give or that could not be typed back: empty, over 255
// bytes (longer values are refused at sign-in), or with a comma (the
// separator of `resource add --scope-claim`) or a control character.
func CheckClaimValue(v string) error {
	if v == "" || len(v) > 255 || !utf8.ValidString(v) || strings.ContainsFunc(v, func(r rune) bool {
		return r == ',' || unicode.IsControl(r)
	}) {
		return fmt.Errorf("claim value %q: use 1 to 255 bytes of UTF-8 without commas or control characters", v)
	}
	return nil
}

// CheckGroupName refuses a group name that could not be typed back or
// shown safely: empty, over 100 bytes, or with a space, a comma (the
// separator of `resource add --scope-group`) or a control character. It is
// the rule of `gatehouse user group add`.
func CheckGroupName(g string) error {
	if g == "" || len(g) > 100 || !utf8.ValidString(g) || strings.ContainsFunc(g, func(r rune) bool {
		return r == ',' || unicode.IsSpace(r) || unicode.IsControl(r)
	}) {
		return fmt.Errorf("group name %q: use 1 to 100 bytes of UTF-8 without spaces, commas or control characters", g)
	}
	return nil
}

// GatewayUpstream is the MCP server behind a route: Streamable HTTP (URL)
// or stdio (Command), exactly one.
type GatewayUpstream struct {
	// URL (url) is a Streamable HTTP MCP endpoint, such as
	// "http://127.0.0.1:3001/mcp".
	URL string `json:"url,omitempty"`
	// Header (header) names the request header that carries the upstream
	// credential to an HTTP upstream. Default "Authorization" when a value
	// source is set.
	Header string `json:"header,omitempty"`
	// HeaderValueFile (header_value_file) is a file holding the header's
	// value (such as "Bearer <upstream token>"); surrounding white space is
	// trimmed.
	HeaderValueFile string `json:"header_value_file,omitempty"`
	// HeaderValueEnv (header_value_env) is an environment variable of the
	// gateway holding the header's value.
	HeaderValueEnv string `json:"header_value_env,omitempty"`
	// HeaderValue is the resolved credential; never read from the file and
	// never printed.
	HeaderValue string `json:"-"`
	// ConnectTimeout (connect_timeout) bounds connecting to an HTTP
	// upstream. Default 5s.
	ConnectTimeout Duration `json:"connect_timeout,omitempty"`

	// Command (command) is the program of a stdio upstream, started once
	// per MCP session. A name without a slash is looked up in the
	// gateway's PATH.
	Command string `json:"command,omitempty"`
	// Args (args) are the command's arguments.
	Args []string `json:"args,omitempty"`
	// Dir (dir) is the process's working directory. Empty means the
	// gateway's.
	Dir string `json:"dir,omitempty"`
	// Env (env) are environment variables set for a stdio upstream: a
	// plain value (not for secrets), or one read from a file or from the
	// gateway's environment.
	Env []GatewayEnv `json:"env,omitempty"`
	// InheritEnv (inherit_env) names the gateway's environment variables
	// the process inherits. Nil means [DefaultGatewayInheritEnv]; an empty
	// list inherits nothing.
	InheritEnv []string `json:"inherit_env,omitempty"`

	// OpenAPI (openapi) puts an HTTP API described by an OpenAPI document
	// behind the route instead of an MCP server: the gateway serves the
	// selected operations as MCP tools and calls the API. The header keys
	// above then give the API a static credential.
	OpenAPI *GatewayOpenAPI `json:"openapi,omitempty"`
	// Auth (auth) is how an OpenAPI route authenticates to its API beyond
	// a static header: an API key in the query, or a token exchanged for
	// the caller's (RFC 8693).
	Auth *GatewayAPIAuth `json:"auth,omitempty"`
}

// GatewayOpenAPI is an OpenAPI route's API.
type GatewayOpenAPI struct {
	// Document (document) is the OpenAPI 3.0 or 3.1 document, JSON or
	// YAML: a file, or an https URL fetched once at start (SSRF-safe: no
	// private addresses, no redirects, at most 64 MiB). Required.
	Document string `json:"document"`
	// BaseURL (base_url) is the API's base URL; operation paths are
	// appended to its path. Required (the document's servers are not
	// used: they often name a sandbox or a relative path).
	BaseURL string `json:"base_url"`
	// Include (include) selects operations: an operation is served when it
	// matches every non-empty list. Empty selects all.
	Include GatewayOpenAPISelect `json:"include,omitempty"`
	// Exclude (exclude) removes operations matching any entry.
	Exclude GatewayOpenAPISelect `json:"exclude,omitempty"`
	// Names (names) overrides tool names: operationId or "METHOD /path"
	// to the tool name.
	Names map[string]string `json:"names,omitempty"`
	// Scopes (scopes) says which scopes each operation's tool needs.
	Scopes GatewayOpenAPIScopes `json:"scopes,omitempty"`
	// MaxResponseBytes (max_response_bytes) caps the part of an API
	// response read. Default 1 MiB.
	MaxResponseBytes int64 `json:"max_response_bytes,omitempty"`
	// OutputSchemas (output_schemas) lists each tool's outputSchema (its
	// JSON 2xx response schema). Default true. Clients check
	// structuredContent against it and fail the call on a mismatch, and
	// real APIs often answer other than their documents say: false
	// leaves the schemas out (structuredContent is still sent).
	OutputSchemas *bool `json:"output_schemas,omitempty"`
	// Data is the document's text, read by [Gateway.Resolve] from a
	// file (a URL is fetched by the command that starts the gateway).
	Data []byte `json:"-"`
}

// GatewayOpenAPISelect selects operations by tag, operationId, method and
// path prefix.
type GatewayOpenAPISelect struct {
	Tags         []string `json:"tags,omitempty"`
	Operations   []string `json:"operations,omitempty"`
	Methods      []string `json:"methods,omitempty"`
	PathPrefixes []string `json:"paths,omitempty"`
}

// GatewayOpenAPIScopes are the scope rules of an OpenAPI route's tools,
// most specific first: operations, then the document's own OAuth2 scopes
// (renamed by scope_map), then tags, then the method (read or write).
type GatewayOpenAPIScopes struct {
	// Read (read) are the scopes of GET and HEAD operations.
	Read []string `json:"read,omitempty"`
	// Write (write) are the scopes of every other operation.
	Write []string `json:"write,omitempty"`
	// Tags (tags) maps a tag to the scopes of its operations.
	Tags map[string][]string `json:"tags,omitempty"`
	// Operations (operations) maps an operationId or "METHOD /path" to its
	// scopes.
	Operations map[string][]string `json:"operations,omitempty"`
	// ScopeMap (scope_map) renames the document's OAuth2 scopes to the
	// route's.
	ScopeMap map[string]string `json:"scope_map,omitempty"`
}

// GatewayAPIAuth is an OpenAPI route's credential toward its API beyond a
// static header.
type GatewayAPIAuth struct {
	// QueryParam (query_param) is a query parameter carrying an API key,
	// such as "api_key"; its value comes from query_value_file or
	// query_value_env.
	QueryParam     string `json:"query_param,omitempty"`
	QueryValueFile string `json:"query_value_file,omitempty"`
	QueryValueEnv  string `json:"query_value_env,omitempty"`
	// QueryValue is the resolved key; never printed.
	QueryValue string `json:"-"`
	// TokenExchange (token_exchange) gets each call a short-lived token
	// for the API by exchanging the caller's token (RFC 8693).
	TokenExchange *GatewayTokenExchange `json:"token_exchange,omitempty"`
}

// GatewayTokenExchange is how an OpenAPI route exchanges the caller's
// token for one the API accepts.
type GatewayTokenExchange struct {
	// Resource (resource) is the API's resource identifier: the audience
	// of the exchanged tokens. It must be registered at the authorization
	// server, with an exchange policy naming client_id. Required.
	Resource string `json:"resource"`
	// TokenURL (token_url) is the token endpoint. Default the issuer's
	// /token.
	TokenURL string `json:"token_url,omitempty"`
	// ClientID (client_id) is the gateway's confidential client at the
	// authorization server. Required.
	ClientID string `json:"client_id"`
	// ClientSecretFile (client_secret_file) or ClientSecretEnv
	// (client_secret_env) holds its secret (client_secret_basic).
	ClientSecretFile string `json:"client_secret_file,omitempty"`
	ClientSecretEnv  string `json:"client_secret_env,omitempty"`
	// ClientSecret is the resolved secret; never printed.
	ClientSecret string `json:"-"`
	// Header (header) carries the token to the API. Default Authorization.
	Header string `json:"header,omitempty"`
}

// GatewayEnv is one environment variable of a stdio upstream. Exactly one
// of Value, ValueFile and ValueEnv is set.
type GatewayEnv struct {
	// Name (name) of the variable.
	Name string `json:"name"`
	// Value (value) is a plain value, kept in the configuration file: not
	// for secrets.
	Value string `json:"value,omitempty"`
	// ValueFile (value_file) is a file holding the value (trimmed).
	ValueFile string `json:"value_file,omitempty"`
	// ValueEnv (value_env) is an environment variable of the gateway
	// holding the value.
	ValueEnv string `json:"value_env,omitempty"`
	// Resolved is the value in force after [Gateway.Resolve]; never
	// printed.
	Resolved string `json:"-"`
}

// EffectiveListen is Listen or [DefaultGatewayListen].
func (g Gateway) EffectiveListen() string {
	if g.Listen == "" {
		return DefaultGatewayListen
	}
	return g.Listen
}

// EffectiveIssuer is Issuer, or top when it is empty.
func (g Gateway) EffectiveIssuer(top string) string {
	if g.Issuer == "" {
		return top
	}
	return g.Issuer
}

// ShouldRegisterResources reports RegisterResources (default true).
func (g Gateway) ShouldRegisterResources() bool {
	return g.RegisterResources == nil || *g.RegisterResources
}

// EffectiveShutdownTimeout is ShutdownTimeout or its default.
func (g Gateway) EffectiveShutdownTimeout() time.Duration {
	if g.ShutdownTimeout <= 0 {
		return DefaultGatewayShutdownTimeout
	}
	return time.Duration(g.ShutdownTimeout)
}

// Resolve reads the secrets the gateway section points at: each route's
// header_value_file or header_value_env, and the env values of stdio
// upstreams. It reports every problem at once.
func (g *Gateway) Resolve(env func(string) (string, bool)) error {
	var errs []error
	read := func(what, path, file, envName string) string {
		for _, k := range []struct{ key, v string }{{path + "_file", file}, {path + "_env", envName}} {
			if p := secretRefProblem(k.key, k.v); p != "" {
				errs = append(errs, keyErrorf(k.key, "%s: %s", what, p))
				return ""
			}
		}
		switch {
		case file != "":
			b, err := os.ReadFile(file)
			if err != nil {
				errs = append(errs, keyErrorf(path+"_file", "%s: %w", what, err))
				return ""
			}
			return strings.TrimSpace(string(b))
		case envName != "":
			v, ok := env(envName)
			if !ok {
				errs = append(errs, keyErrorf(path+"_env", "%s: environment variable %s is not set", what, envName))
			}
			return v
		}
		return ""
	}
	for i := range g.Routes {
		r := &g.Routes[i]
		u := &r.Upstream
		up := fmt.Sprintf("gateway.routes[%d].upstream", i)
		if u.HeaderValueFile != "" || u.HeaderValueEnv != "" {
			u.HeaderValue = read(fmt.Sprintf("gateway route %q: upstream header value", r.Name), up+".header_value", u.HeaderValueFile, u.HeaderValueEnv)
			if u.Header == "" {
				u.Header = "Authorization"
			}
		}
		if o := u.OpenAPI; o != nil && o.Document != "" && !strings.HasPrefix(o.Document, "https://") && !strings.HasPrefix(o.Document, "http://") {
			b, err := os.ReadFile(o.Document)
			if err != nil {
				errs = append(errs, keyErrorf(up+".openapi.document", "gateway route %q: openapi document: %w", r.Name, err))
			}
			o.Data = b
		}
		if a := u.Auth; a != nil {
			if a.QueryValueFile != "" || a.QueryValueEnv != "" {
				a.QueryValue = read(fmt.Sprintf("gateway route %q: API key", r.Name), up+".auth.query_value", a.QueryValueFile, a.QueryValueEnv)
			}
			if te := a.TokenExchange; te != nil && (te.ClientSecretFile != "" || te.ClientSecretEnv != "") {
				te.ClientSecret = read(fmt.Sprintf("gateway route %q: token exchange client secret", r.Name), up+".auth.token_exchange.client_secret", te.ClientSecretFile, te.ClientSecretEnv)
			}
		}
		for j := range u.Env {
			e := &u.Env[j]
			if e.ValueFile != "" || e.ValueEnv != "" {
				e.Resolved = read(fmt.Sprintf("gateway route %q: env %s", r.Name, e.Name), fmt.Sprintf("%s.env[%d].value", up, j), e.ValueFile, e.ValueEnv)
			} else {
				e.Resolved = e.Value
			}
		}
	}
	return g.src.locate(errs, true).err()
}

// Validate reports every problem with the gateway section at once, as
// [Problems] placed like [Config.Validate]'s. topIssuer is the
// configuration's issuer, the default of Gateway.Issuer. A gateway
// without routes is valid (unless an address is bad).
func (g Gateway) Validate(topIssuer string) error {
	return Collect(g.src.locate(g.validate(topIssuer, false), false)).err()
}

// routeName is what a route name may look like.
var routeName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// headerName is an HTTP field name (RFC 9110 §5.1 token).
var headerName = regexp.MustCompile("^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")

// envName is a portable environment variable name.
var envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// validate returns the gateway section's problems.
//
// topChecked says that the caller validates topIssuer itself, so that an
// inherited issuer's problem is not reported twice.
func (g Gateway) validate(topIssuer string, topChecked bool) []error {
	var errs []error
	bad := func(cond bool, path, format string, args ...any) {
		if cond {
			errs = append(errs, keyErrorf(path, format, args...))
		}
	}
	for _, l := range []struct{ key, addr string }{{"listen", g.Listen}, {"admin_listen", g.AdminListen}} {
		if l.addr != "" {
			if err := CheckListen(l.addr); err != nil {
				errs = append(errs, keyErrorf("gateway."+l.key, "gateway.%s %q: %v", l.key, l.addr, err))
			}
		}
	}
	if len(g.Routes) == 0 {
		return errs
	}
	iss := g.EffectiveIssuer(topIssuer)
	issPath := "gateway.issuer"
	if g.Issuer == "" {
		issPath = "issuer"
	}
	u, err := url.Parse(iss)
	switch {
	case topChecked && g.Issuer == "":
		// Config.Validate reports the problems of the issuer inherited.
	case iss == "" || err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http"):
		errs = append(errs, keyErrorf(issPath, "gateway.issuer %q must be the authorization server's absolute http(s) issuer URL (or set issuer)", iss))
	case urlPortProblem(u) != "":
		errs = append(errs, keyErrorf(issPath, "gateway.issuer %q: %s", iss, urlPortProblem(u)))
	}
	bad(g.ShutdownTimeout < 0, "gateway.shutdown_timeout", "gateway.shutdown_timeout must not be negative")
	names := map[string]bool{}
	var routeURLs []*url.URL
	for _, r := range g.Routes {
		if ru, err := url.Parse(r.URL); err == nil && ru.Host != "" {
			routeURLs = append(routeURLs, ru)
		}
	}
	issuerURL, _ := url.Parse(iss)
	if issuerURL != nil && issuerURL.Host == "" {
		issuerURL = nil
	}
	endpoints := map[string]string{}
	for i, r := range g.Routes {
		path := fmt.Sprintf("gateway.routes[%d]", i)
		at := func(key string) string { return path + "." + key }
		// where names the route in messages: its index, which locates it,
		// and its name, which is what the reader knows it by.
		where := path
		if routeName.MatchString(r.Name) {
			where = fmt.Sprintf("%s (%s)", path, r.Name)
		}
		switch {
		case r.Name == "":
			errs = append(errs, keyErrorf(path, "%s: name is required", where))
		case !routeName.MatchString(r.Name):
			errs = append(errs, keyErrorf(at("name"), "%s: name %q must be letters, digits, '.', '_' or '-' (at most 64)", where, r.Name))
		case names[r.Name]:
			errs = append(errs, keyErrorf(at("name"), "%s: name is used by another route", where))
		}
		names[r.Name] = true
		u, err := url.Parse(r.URL)
		switch {
		case r.URL == "":
			errs = append(errs, keyErrorf(path, "%s: url is required (the route's public URL, such as https://mcp.example.com/everything/mcp)", where))
		case err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") || u.User != nil:
			errs = append(errs, keyErrorf(at("url"), "%s: url %q must be an absolute http(s) URL", where, r.URL))
		case urlPortProblem(u) != "":
			errs = append(errs, keyErrorf(at("url"), "%s: url %q: %s", where, r.URL, urlPortProblem(u)))
		case u.RawQuery != "" || u.Fragment != "" || strings.Contains(r.URL, "#"):
			errs = append(errs, keyErrorf(at("url"), "%s: url %q must not have a query or fragment", where, r.URL))
		case u.Path == "" || u.Path == "/" || strings.HasPrefix(u.Path, "/.well-known/"):
			errs = append(errs, keyErrorf(at("url"), "%s: url %q needs a path of its own, such as /%s/mcp", where, r.URL, r.Name))
		default:
			// Every route is served on the one gateway listener: paths
			// must differ even between hosts.
			if other, dup := endpoints[u.Path]; dup {
				errs = append(errs, keyErrorf(at("url"), "%s: url %q has the same path as route %q", where, r.URL, other))
			}
			endpoints[u.Path] = r.Name
		}
		up := r.Upstream
		upAt := func(key string) string { return path + ".upstream." + key }
		errs = append(errs, openAPIProblems(up, upAt, where, routeURLs, issuerURL)...)
		switch {
		case up.OpenAPI != nil:
			bad(up.URL != "" || up.Command != "", at("upstream"), "%s: upstream has openapi and url or command; set one", where)
			bad(len(up.Args) > 0 || up.Dir != "" || len(up.Env) > 0 || up.InheritEnv != nil, at("upstream"),
				"%s: upstream args, dir, env and inherit_env apply to a stdio upstream (command), not to openapi", where)
			bad(len(r.Tools) > 0, at("tools"), "%s: tools rules do not apply to an openapi route: give its operations scopes under upstream.openapi.scopes", where)
		case up.Auth != nil:
			errs = append(errs, keyErrorf(upAt("auth"), "%s: upstream.auth applies to an openapi upstream", where))
		case up.URL == "" && up.Command == "":
			errs = append(errs, keyErrorf(at("upstream"), "%s: upstream needs url (Streamable HTTP), command (stdio) or openapi (an HTTP API)", where))
		case up.URL != "" && up.Command != "":
			errs = append(errs, keyErrorf(upAt("command"), "%s: upstream has both url and command; set one", where))
		case up.URL != "":
			if uu, err := url.Parse(up.URL); err != nil || uu.Host == "" || (uu.Scheme != "https" && uu.Scheme != "http") {
				errs = append(errs, keyErrorf(upAt("url"), "%s: upstream.url %q must be an absolute http(s) URL", where, redactURL(up.URL)))
			} else if p := urlPortProblem(uu); p != "" {
				errs = append(errs, keyErrorf(upAt("url"), "%s: upstream.url %q: %s", where, redactURL(up.URL), p))
			}
			bad(len(up.Args) > 0 || up.Dir != "" || len(up.Env) > 0 || up.InheritEnv != nil, at("upstream"),
				"%s: upstream args, dir, env and inherit_env apply to a stdio upstream (command), not to url", where)
		default:
			bad(up.Header != "" || up.HeaderValueFile != "" || up.HeaderValueEnv != "", at("upstream"),
				"%s: upstream header, header_value_file and header_value_env apply to an HTTP upstream (url); give a stdio upstream its credentials in env", where)
			for j, e := range up.Env {
				n := 0
				for _, s := range []string{e.Value, e.ValueFile, e.ValueEnv} {
					if s != "" {
						n++
					}
				}
				ep := fmt.Sprintf("%s[%d]", upAt("env"), j)
				bad(!envName.MatchString(e.Name), ep+".name", "%s: upstream.env: %q is not an environment variable name", where, e.Name)
				bad(n > 1, ep, "%s: upstream.env %s: set only one of value, value_file and value_env", where, e.Name)
			}
			for j, n := range up.InheritEnv {
				bad(!envName.MatchString(n), fmt.Sprintf("%s[%d]", upAt("inherit_env"), j), "%s: upstream.inherit_env: %q is not an environment variable name", where, n)
			}
		}
		bad(up.HeaderValueFile != "" && up.HeaderValueEnv != "", upAt("header_value_env"), "%s: upstream: set header_value_file or header_value_env, not both", where)
		bad(up.Header != "" && up.HeaderValueFile == "" && up.HeaderValueEnv == "", upAt("header"), "%s: upstream.header %q has no value: set header_value_file or header_value_env (never the value itself)", where, up.Header)
		bad(up.Header != "" && !headerName.MatchString(up.Header), upAt("header"), "%s: upstream.header %q is not an HTTP header name", where, up.Header)
		switch strings.ToLower(up.Header) {
		case "host", "cookie", "mcp-session-id", "content-length", "content-type", "transfer-encoding", "connection":
			errs = append(errs, keyErrorf(upAt("header"), "%s: upstream.header cannot be %s", where, up.Header))
		}
		bad(up.ConnectTimeout < 0, upAt("connect_timeout"), "%s: upstream.connect_timeout must not be negative", where)

		checkScopes := func(key, field string, scopes []string) {
			for _, s := range scopes {
				bad(!validScope(s), key, "%s: %s: %q is not a scope token (RFC 6749 §3.3)", where, field, s)
				bad(s == "offline_access", key, "%s: %s: offline_access is about refresh tokens, not a resource's scope", where, field)
			}
		}
		checkScopes(at("scopes"), "scopes", r.Scopes)
		for s := range r.ScopeDescriptions {
			checkScopes(at("scope_descriptions."+s), "scope_descriptions", []string{s})
		}
		for s, implied := range r.ImpliedScopes {
			checkScopes(at("implied_scopes."+s), "implied_scopes", append([]string{s}, implied...))
		}
		for field, m := range map[string]map[string][]string{"tools": r.Tools, "resources": r.Resources, "prompts": r.Prompts} {
			for k, scopes := range m {
				kp := at(field + "." + k)
				bad(k == "", kp, "%s: %s: an empty key matches nothing; use \"*\" for the default", where, field)
				bad(strings.Count(k, "*") > 1 || (strings.Contains(k, "*") && !strings.HasSuffix(k, "*")), kp,
					"%s: %s: %q: \"*\" may only end a key (a prefix)", where, field, k)
				checkScopes(kp, field+"["+k+"]", scopes)
			}
		}
		errs = append(errs, r.scopePolicyProblems(at, where, g.ShouldRegisterResources())...)
		if _, err := mcpauthz.ParseListMode(r.ListTools); err != nil {
			errs = append(errs, keyErrorf(at("list_tools"), "%s: list_tools %q must be grantable (the default), granted or all", where, r.ListTools))
		}
		for j, o := range r.AllowedOrigins {
			if o == "*" {
				continue
			}
			ou, err := url.Parse(o)
			bad(err != nil || ou.Host == "" || (ou.Path != "" && ou.Path != "/") || ou.RawQuery != "", fmt.Sprintf("%s[%d]", at("allowed_origins"), j),
				"%s: allowed_origins: %q must be an origin such as https://app.example.com, or \"*\"", where, o)
		}
		for j, h := range r.AllowedHosts {
			hp := fmt.Sprintf("%s[%d]", at("allowed_hosts"), j)
			if h == "" || strings.ContainsAny(h, "/ @*") {
				errs = append(errs, keyErrorf(hp, "%s: allowed_hosts: %q must be a host or host:port", where, h))
			} else if _, port, err := net.SplitHostPort(h); err == nil {
				if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
					errs = append(errs, keyErrorf(hp, "%s: allowed_hosts: %q: the port must be a number from 1 to 65535", where, h))
				}
			}
		}
		bad(r.MaxSessions < 0, at("max_sessions"), "%s: max_sessions must not be negative", where)
		bad(r.MaxSessionsPerUser < 0, at("max_sessions_per_user"), "%s: max_sessions_per_user must not be negative", where)
		bad(r.SessionIdleTimeout < 0, at("session_idle_timeout"), "%s: session_idle_timeout must not be negative", where)
		bad(r.RequestTimeout < 0, at("request_timeout"), "%s: request_timeout must not be negative", where)
		bad(r.MaxBodyBytes < 0, at("max_body_bytes"), "%s: max_body_bytes must not be negative", where)
		bad(r.MaxMessageBytes < 0, at("max_message_bytes"), "%s: max_message_bytes must not be negative", where)
		bad(r.MaxBatchMessages < 0, at("max_batch_messages"), "%s: max_batch_messages must not be negative", where)
	}
	return errs
}

// scopePolicyProblems checks the route's scope_policies: each names a scope
// the route uses and at least one well-formed group, and nothing of the
// route's scope hierarchy lets a user past a policy. at makes a key path
// of the route's, where names the route in messages; register says that
// the route's resource is registered, which is how policies take effect.
func (r GatewayRoute) scopePolicyProblems(at func(string) string, where string, register bool) []error {
	if len(r.ScopePolicies) == 0 {
		return nil
	}
	var errs []error
	if !register {
		errs = append(errs, keyErrorf(at("scope_policies"), "%s: scope_policies take effect through the route's registered resource, and register_resources is false; "+
			"remove them and set the policies at the authorization server (gatehouse resource add --scope-group)", where))
	}
	// used is every scope the route's rules name: those its resource is
	// registered with.
	used := map[string]bool{}
	for _, s := range r.Scopes {
		used[s] = true
	}
	for _, m := range []map[string][]string{r.Tools, r.Resources, r.Prompts, r.ImpliedScopes} {
		for _, scopes := range m {
			for _, s := range scopes {
				used[s] = true
			}
		}
	}
	for s := range r.ImpliedScopes {
		used[s] = true
	}
	// An OpenAPI route's tools get scopes from its scope rules and from
	// the document, which is not read here: any scope may be the route's.
	openAPI := r.Upstream.OpenAPI != nil
	for _, scope := range slices.Sorted(maps.Keys(r.ScopePolicies)) {
		pol := r.ScopePolicies[scope]
		kp := at("scope_policies." + scope)
		if !used[scope] && !openAPI {
			errs = append(errs, keyErrorf(kp, "%s: scope_policies: %q is not a scope of the route (of scopes, tools, resources, prompts or implied_scopes)", where, scope))
		}
		if len(pol.Groups) == 0 && len(pol.Claims) == 0 {
			errs = append(errs, keyErrorf(kp, "%s: scope_policies[%s]: groups or claims is required (the groups one of which a user needs for the scope, or claims: {name: [values]})", where, scope))
		}
		for j, g := range pol.Groups {
			if err := CheckGroupName(g); err != nil {
				errs = append(errs, keyErrorf(fmt.Sprintf("%s.groups[%d]", kp, j), "%s: scope_policies[%s]: %v", where, scope, err))
			}
		}
		for _, c := range slices.Sorted(maps.Keys(pol.Claims)) {
			kc := kp + ".claims." + c
			if err := CheckClaimName(c); err != nil {
				errs = append(errs, keyErrorf(kc, "%s: scope_policies[%s].claims: %v", where, scope, err))
			}
			if len(pol.Claims[c]) == 0 {
				errs = append(errs, keyErrorf(kc, "%s: scope_policies[%s].claims[%s]: list the values, one of which a user needs", where, scope, c))
			}
			for j, v := range pol.Claims[c] {
				if err := CheckClaimValue(v); err != nil {
					errs = append(errs, keyErrorf(fmt.Sprintf("%s[%d]", kc, j), "%s: scope_policies[%s].claims[%s]: %v", where, scope, c, err))
				}
			}
		}
	}
	// A scope satisfies those it implies (at the gateway), but the
	// authorization server checks each scope's own policy: a scope that
	// implies a restricted one must be restricted to groups that may all
	// have the implied scope, or it would pass the policy by.
	for _, s := range slices.Sorted(maps.Keys(r.ImpliedScopes)) {
		for _, implied := range impliedBy(r.ImpliedScopes, s) {
			need := r.ScopePolicies[implied].Groups
			if len(need) == 0 || slices.ContainsFunc(need, func(g string) bool { return CheckGroupName(g) != nil }) {
				continue // nothing to pass by, or a bad group reported above
			}
			have := r.ScopePolicies[s].Groups
			if len(have) == 0 || slices.ContainsFunc(have, func(g string) bool { return !slices.Contains(need, g) }) {
				errs = append(errs, keyErrorf(at("scope_policies"), "%s: scope_policies: %s implies %s, which needs group %s; give %s a policy whose groups are all among those (a user granted %s has %s at the gateway)",
					where, s, implied, strings.Join(need, " or "), s, s, implied))
			}
		}
		// Likewise each claim condition of an implied scope: s must have
		// the claim condition with values all among the implied one's.
		for _, implied := range impliedBy(r.ImpliedScopes, s) {
			needC := r.ScopePolicies[implied].Claims
			for _, c := range slices.Sorted(maps.Keys(needC)) {
				have := r.ScopePolicies[s].Claims[c]
				if len(have) == 0 || slices.ContainsFunc(have, func(v string) bool { return !slices.Contains(needC[c], v) }) {
					errs = append(errs, keyErrorf(at("scope_policies"), "%s: scope_policies: %s implies %s, which needs %s %s; give %s a claims condition on %s whose values are all among those (a user granted %s has %s at the gateway)",
						where, s, implied, c, strings.Join(needC[c], " or "), s, c, s, implied))
				}
			}
		}
	}
	return errs
}

// impliedBy returns the scopes s implies in the hierarchy h, transitively,
// in name order, without s.
func impliedBy(h map[string][]string, s string) []string {
	seen := map[string]bool{s: true}
	queue := []string{s}
	var out []string
	for len(queue) > 0 {
		cur := queue[0]
		queue = queue[1:]
		for _, n := range h[cur] {
			if !seen[n] {
				seen[n] = true
				out = append(out, n)
				queue = append(queue, n)
			}
		}
	}
	slices.Sort(out)
	return out
}

// validScope reports whether s is a scope-token (RFC 6749 §3.3).
func validScope(s string) bool {
	if s == "" {
		return false
	}
	return !slices.ContainsFunc([]byte(s), func(c byte) bool { return c < 0x21 || c == 0x22 || c == 0x5c || c > 0x7e })
}

// openAPIProblems checks an openapi upstream's keys. routeURLs are every
// route's URL and issuer the authorization server's (nil if unparsable):
// neither may be the API's resource.
func openAPIProblems(up GatewayUpstream, upAt func(string) string, where string, routeURLs []*url.URL, issuer *url.URL) []error {
	o := up.OpenAPI
	if o == nil {
		return nil
	}
	var errs []error
	bad := func(cond bool, path, format string, args ...any) {
		if cond {
			errs = append(errs, keyErrorf(path, format, args...))
		}
	}
	bad(o.Document == "", upAt("openapi.document"), "%s: upstream.openapi.document is required: a file or an https URL of the OpenAPI document", where)
	bad(strings.HasPrefix(o.Document, "http://"), upAt("openapi.document"), "%s: upstream.openapi.document %q: fetch the document over https, or save it to a file", where, redactURL(o.Document))
	if bu, err := url.Parse(o.BaseURL); o.BaseURL == "" || err != nil || bu.Host == "" || (bu.Scheme != "https" && bu.Scheme != "http") || bu.User != nil || bu.RawQuery != "" || bu.Fragment != "" {
		errs = append(errs, keyErrorf(upAt("openapi.base_url"), "%s: upstream.openapi.base_url %q must be the API's absolute http(s) base URL, without user information, query or fragment", where, redactURL(o.BaseURL)))
	} else if bu.Scheme == "http" && !loopbackHost(bu.Hostname()) {
		// Every request carries a credential (a key, a user's exchanged
		// token): never in clear text off this machine.
		errs = append(errs, keyErrorf(upAt("openapi.base_url"), "%s: upstream.openapi.base_url %q: use https (http only on loopback: 127.0.0.1, ::1, localhost); every request carries a credential", where, redactURL(o.BaseURL)))
	}
	bad(o.MaxResponseBytes < 0, upAt("openapi.max_response_bytes"), "%s: upstream.openapi.max_response_bytes must not be negative", where)
	for _, sel := range []struct {
		key string
		s   GatewayOpenAPISelect
	}{{"include", o.Include}, {"exclude", o.Exclude}} {
		for j, m := range sel.s.Methods {
			switch strings.ToUpper(m) {
			case "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE":
			default:
				errs = append(errs, keyErrorf(fmt.Sprintf("%s[%d]", upAt("openapi."+sel.key+".methods"), j), "%s: upstream.openapi.%s.methods: %q is not an HTTP method", where, sel.key, m))
			}
		}
		for j, p := range sel.s.PathPrefixes {
			bad(!strings.HasPrefix(p, "/"), fmt.Sprintf("%s[%d]", upAt("openapi."+sel.key+".paths"), j), "%s: upstream.openapi.%s.paths: %q must start with /", where, sel.key, p)
		}
	}
	sc := o.Scopes
	check := func(key string, scopes []string) {
		for _, s := range scopes {
			bad(!validScope(s), key, "%s: %q is not a scope token (RFC 6749 §3.3)", where, s)
		}
	}
	check(upAt("openapi.scopes.read"), sc.Read)
	check(upAt("openapi.scopes.write"), sc.Write)
	for k, v := range sc.Tags {
		check(upAt("openapi.scopes.tags."+k), v)
	}
	for k, v := range sc.Operations {
		check(upAt("openapi.scopes.operations."+k), v)
	}
	for k, v := range sc.ScopeMap {
		check(upAt("openapi.scopes.scope_map."+k), []string{v})
	}
	if a := up.Auth; a != nil {
		bad(a.QueryParam == "" && (a.QueryValueFile != "" || a.QueryValueEnv != ""), upAt("auth.query_param"), "%s: upstream.auth: query_value_file or query_value_env needs query_param, the parameter's name", where)
		bad(a.QueryParam != "" && a.QueryValueFile == "" && a.QueryValueEnv == "", upAt("auth.query_param"), "%s: upstream.auth.query_param %q has no value: set query_value_file or query_value_env (never the value itself)", where, a.QueryParam)
		bad(a.QueryValueFile != "" && a.QueryValueEnv != "", upAt("auth.query_value_env"), "%s: upstream.auth: set query_value_file or query_value_env, not both", where)
		if te := a.TokenExchange; te != nil {
			tp := upAt("auth.token_exchange")
			if ru, err := url.Parse(te.Resource); te.Resource == "" || err != nil || ru.Host == "" || (ru.Scheme != "https" && ru.Scheme != "http") || ru.Fragment != "" {
				errs = append(errs, keyErrorf(tp+".resource", "%s: upstream.auth.token_exchange.resource %q must be the API's absolute http(s) resource identifier (the audience of its tokens)", where, te.Resource))
			}
			bad(te.ClientID == "", tp+".client_id", "%s: upstream.auth.token_exchange.client_id is required: the gateway's confidential client at the authorization server", where)
			bad(te.ClientSecretFile == "" && te.ClientSecretEnv == "", tp+".client_secret_file", "%s: upstream.auth.token_exchange needs client_secret_file or client_secret_env", where)
			bad(te.ClientSecretFile != "" && te.ClientSecretEnv != "", tp+".client_secret_env", "%s: upstream.auth.token_exchange: set client_secret_file or client_secret_env, not both", where)
			if te.TokenURL != "" {
				if tu, err := url.Parse(te.TokenURL); err != nil || tu.Host == "" || (tu.Scheme != "https" && tu.Scheme != "http") {
					errs = append(errs, keyErrorf(tp+".token_url", "%s: upstream.auth.token_exchange.token_url %q must be an absolute http(s) URL", where, te.TokenURL))
				} else if tu.Scheme == "http" && !loopbackHost(tu.Hostname()) {
					errs = append(errs, keyErrorf(tp+".token_url", "%s: upstream.auth.token_exchange.token_url %q: use https (http only on loopback); the client secret and users' tokens travel to it", where, te.TokenURL))
				}
			}
			bad(te.Header != "" && !headerName.MatchString(te.Header), tp+".header", "%s: upstream.auth.token_exchange.header %q is not an HTTP header name", where, te.Header)
			// Both default to Authorization: compare what is in force.
			exH, staticH := cmp.Or(te.Header, "Authorization"), up.Header
			if staticH == "" && (up.HeaderValueFile != "" || up.HeaderValueEnv != "") {
				staticH = "Authorization"
			}
			bad(staticH != "" && strings.EqualFold(exH, staticH), tp+".header", "%s: upstream.auth.token_exchange.header (%s) and upstream.header carry two credentials in one header; set token_exchange.header to another (such as X-User-Token)", where, exH)
			if ru, err := url.Parse(te.Resource); err == nil {
				for _, other := range routeURLs {
					bad(sameResource(ru, other), tp+".resource", "%s: upstream.auth.token_exchange.resource %q is a gateway route's URL: the API would get tokens it could replay to the route", where, te.Resource)
				}
				bad(issuer != nil && sameResource(ru, issuer), tp+".resource", "%s: upstream.auth.token_exchange.resource %q is the authorization server's issuer", where, te.Resource)
			}
		}
	}
	return errs
}

// loopbackHost reports whether host is a loopback name or address.
func loopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// sameResource reports whether a and b name the same resource: scheme and
// host compared without case, default ports and a trailing "/" ignored.
func sameResource(a, b *url.URL) bool {
	norm := func(u *url.URL) string {
		host := strings.ToLower(u.Host)
		switch {
		case strings.EqualFold(u.Scheme, "https"):
			host = strings.TrimSuffix(host, ":443")
		case strings.EqualFold(u.Scheme, "http"):
			host = strings.TrimSuffix(host, ":80")
		}
		return strings.ToLower(u.Scheme) + "://" + host + strings.TrimSuffix(u.EscapedPath(), "/")
	}
	return norm(a) == norm(b)
}
