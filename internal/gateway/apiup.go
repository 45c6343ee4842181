package gateway

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/gatehouse-mcp/gatehouse/internal/openapi"
	"github.com/gatehouse-mcp/gatehouse/rs"
)

// DefaultMaxAPIResponseBytes is [API.MaxResponseBytes]'s default.
const DefaultMaxAPIResponseBytes = 1 << 20

// DefaultExchangeCacheEntries is [Exchange.CacheEntries]'s default.
const DefaultExchangeCacheEntries = 10000

// exchangeMargin is how long before its expiry a cached exchanged token is
// no longer handed out: a token must not expire on its way to the API.
const exchangeMargin = 30 * time.Second

// API is an HTTP API described by an OpenAPI document, whose operations a
// route serves as MCP tools (issue 15). The gateway is its MCP server: the
// client's token never reaches the API, which gets the credential Auth
// says (a static header or query parameter, a token exchanged for the
// caller, or nothing).
type API struct {
	// Tools are the operations served, as [openapi.Document.Tools] made
	// them. Each tool's Scopes become the route's rule for it.
	Tools []*openapi.Tool
	// BaseURL is the API's base: each operation's path is appended to its
	// path (the document's servers are not used).
	BaseURL string
	// Header is added to every API request: a static credential.
	Header http.Header
	// Query is added to every API request's query: an API key parameter.
	Query url.Values
	// Exchange, when set, authenticates each call with a token exchanged
	// (RFC 8693) for the caller's.
	Exchange *Exchange
	// NoOutputSchemas leaves the tools' output schemas out of tools/list
	// (clients check structuredContent against them and fail a call on
	// a mismatch; real APIs often differ from their documents).
	NoOutputSchemas bool
	// MaxResponseBytes caps the part of an API response that is read.
	// Zero means [DefaultMaxAPIResponseBytes].
	MaxResponseBytes int64
	// Transport sends requests to the API. Nil means a transport of the
	// gateway's own (no proxy from the environment).
	Transport http.RoundTripper
}

// Exchange is how an OpenAPI route gets a token for the API on the
// caller's behalf: the caller's token is exchanged at the authorization
// server's token endpoint for one whose audience is the API, whose
// subject is the user and whose act claim names the client and the
// gateway, carrying only the scopes the tool needs.
type Exchange struct {
	// Exchanger calls the token endpoint as the gateway's client.
	Exchanger *rs.Exchanger
	// Resource is the API's resource identifier (the aud of the tokens).
	Resource string
	// Header carries the token ("Bearer <token>"). Empty means
	// "Authorization".
	Header string
	// CacheEntries caps the exchanged tokens kept (per user, client and
	// scope set). Zero means [DefaultExchangeCacheEntries].
	CacheEntries int
}

// apiServer answers an OpenAPI route's tool calls by calling the API.
type apiServer struct {
	rt       *route
	spec     *API
	base     *url.URL
	client   *http.Client
	maxBytes int64
	cache    *tokenCache
}

// callerKey is the context key of the caller's token on its way from the
// route to the in-process MCP server (see httpUpstream.request).
type callerKey struct{}

// caller is who calls a tool: the verified token and its text, which is
// exchanged and never sent anywhere else.
type caller struct {
	ti    *rs.TokenInfo
	token string
	// ctx is the route's context of the request carrying the call: its
	// deadline is request_timeout, and it ends when the client goes. The
	// SDK runs a stateful session's handlers on a context of their own,
	// so the handler ties the API call to this one.
	ctx context.Context
}

// compileAPI builds the in-process MCP server of an OpenAPI route and the
// upstream that reaches it.
func compileAPI(rt *route, api *API) (upstream, error) {
	base, err := url.Parse(api.BaseURL)
	if err != nil || base.Host == "" || (base.Scheme != "http" && base.Scheme != "https") || base.User != nil {
		return nil, fmt.Errorf("openapi base URL %q must be an absolute http(s) URL without user information", api.BaseURL)
	}
	if base.RawQuery != "" || base.Fragment != "" {
		return nil, fmt.Errorf("openapi base URL %q must not have a query or fragment", api.BaseURL)
	}
	if len(api.Tools) == 0 {
		return nil, errors.New("openapi: no operation selected: the route would serve no tool")
	}
	tr := api.Transport
	if tr == nil {
		tr = &http.Transport{
			Proxy:                 nil,
			DialContext:           (&net.Dialer{Timeout: DefaultConnectTimeout, KeepAlive: 30 * time.Second}).DialContext,
			TLSHandshakeTimeout:   DefaultConnectTimeout,
			MaxIdleConns:          256,
			MaxIdleConnsPerHost:   128,
			IdleConnTimeout:       90 * time.Second,
			ExpectContinueTimeout: time.Second,
			ForceAttemptHTTP2:     true,
		}
	}
	a := &apiServer{
		rt: rt, spec: api, base: base, maxBytes: api.MaxResponseBytes,
		client: &http.Client{
			Transport: tr,
			// Also bounded by the request's context (see handler); this
			// is the backstop should that be lost.
			Timeout: rt.timeout,
			// A redirect would carry the API credential elsewhere; the
			// 3xx is the tool's (error) result.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}
	if a.maxBytes <= 0 {
		a.maxBytes = DefaultMaxAPIResponseBytes
	}
	if ex := api.Exchange; ex != nil {
		if ex.Exchanger == nil || ex.Resource == "" {
			return nil, errors.New("openapi token exchange needs the exchanger (token endpoint and client) and the API's resource identifier")
		}
		n := ex.CacheEntries
		if n <= 0 {
			n = DefaultExchangeCacheEntries
		}
		a.cache = &tokenCache{max: n, m: map[cacheKey]cachedToken{}}
	}
	srv := mcp.NewServer(&mcp.Implementation{Name: "gatehouse-openapi-" + rt.name, Title: rt.title, Version: "1"}, &mcp.ServerOptions{
		Logger: rt.g.log.With("route", rt.name, "component", "openapi"),
	})
	for _, t := range api.Tools {
		mt := mcpTool(t)
		if api.NoOutputSchemas {
			mt.OutputSchema = nil
		}
		srv.AddTool(mt, a.handler(t))
	}
	logger := rt.g.log.With("route", rt.name, "component", "openapi")
	stateful := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return srv }, &mcp.StreamableHTTPOptions{
		JSONResponse: true,
		// A session the route closed without a DELETE reaching here
		// (shutdown) ends on its own.
		SessionTimeout: 2 * rt.idle,
		Logger:         logger,
		// The route in front has checked the origin and host already;
		// the in-process request has neither a peer nor an origin.
		DisableLocalhostProtection: true,
	})
	// MCP 2026-07-28 requests carry no session: a stateless handler
	// answers them, as the demo server does.
	stateless := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return srv }, &mcp.StreamableHTTPOptions{
		JSONResponse:               true,
		Stateless:                  true,
		Logger:                     logger,
		DisableLocalhostProtection: true,
	})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Revisions are dates: they compare as strings.
		if r.Header.Get(headerProtocolVersion) >= statelessRevisions[0] && r.Header.Get(headerSessionID) == "" {
			stateless.ServeHTTP(w, r)
			return
		}
		stateful.ServeHTTP(w, r)
	})
	// The SDK binds each session to the user it started with and hands
	// handlers the caller from its bearer middleware: the verifier reads
	// the caller the route attached to the request's context.
	authed := auth.RequireBearerToken(func(ctx context.Context, _ string, _ *http.Request) (*auth.TokenInfo, error) {
		c, ok := ctx.Value(callerKey{}).(*caller)
		if !ok || c.ti == nil {
			return nil, auth.ErrInvalidToken
		}
		return &auth.TokenInfo{Scopes: c.ti.Scopes, UserID: c.ti.Subject, Extra: map[string]any{"caller": c}}, nil
		// The route checked the token's expiry with the gateway's clock.
	}, &auth.RequireBearerTokenOptions{AllowMissingExpiration: true})(h)
	inner := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Header.Set("Authorization", "Bearer in-process")
		authed.ServeHTTP(w, r)
	})
	return &httpUpstream{rt: rt, url: "http://openapi.invalid/mcp", inproc: true, client: &http.Client{
		Transport:     inprocTransport{h: inner},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}, nil
}

// mcpTool is the MCP tool of an operation.
func mcpTool(t *openapi.Tool) *mcp.Tool {
	mt := &mcp.Tool{
		Name:        t.Name,
		Title:       t.Title,
		Description: t.Description,
		InputSchema: t.InputSchema,
		Annotations: &mcp.ToolAnnotations{ReadOnlyHint: t.ReadOnly, Title: t.Title},
	}
	if t.OutputSchema != nil {
		mt.OutputSchema = t.OutputSchema
	}
	if !t.ReadOnly {
		d := t.Destructive
		mt.Annotations.DestructiveHint = &d
		// HTTP says PUT and DELETE are idempotent (RFC 9110 §9.2.2).
		mt.Annotations.IdempotentHint = t.Method == http.MethodPut || t.Method == http.MethodDelete
	}
	return mt
}

// handler calls the API for one tool.
func (a *apiServer) handler(t *openapi.Tool) mcp.ToolHandler {
	return func(ctx context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		var c *caller
		if ti := req.Extra.TokenInfo; ti != nil {
			c, _ = ti.Extra["caller"].(*caller)
		}
		if c == nil {
			return nil, errors.New("gateway: the tool call arrived without its caller")
		}
		if c.ctx != nil {
			// The route's deadline and the client's going away end the
			// API call too: the answer would go nowhere.
			var cancel context.CancelFunc
			ctx, cancel = context.WithCancel(ctx)
			defer cancel()
			defer context.AfterFunc(c.ctx, cancel)()
		}
		hr, err := t.Request(ctx, a.base, req.Params.Arguments)
		if err != nil {
			var ae *openapi.ArgError
			if errors.As(err, &ae) {
				// A tool execution error, not a protocol one: the model
				// reads it and can correct its arguments (MCP
				// 2025-11-25, SEP-1303). Nothing reached the API.
				return toolError("invalid arguments: " + ae.Error()), nil
			}
			return toolError("the gateway could not build the API request: " + err.Error()), nil
		}
		for k, v := range a.spec.Header {
			hr.Header[http.CanonicalHeaderKey(k)] = slices.Clone(v)
		}
		if len(a.spec.Query) > 0 {
			q := hr.URL.Query()
			for k, v := range a.spec.Query {
				q[k] = slices.Clone(v)
			}
			hr.URL.RawQuery = q.Encode()
		}
		hr.Header.Set("User-Agent", "gatehouse-gateway")
		if a.spec.Exchange != nil {
			tok, err := a.exchanged(ctx, c, t.Scopes)
			if err != nil {
				return toolError(err.Error()), nil
			}
			h := a.spec.Exchange.Header
			if h == "" {
				h = "Authorization"
			}
			hr.Header.Set(h, "Bearer "+tok)
		}
		resp, err := a.client.Do(hr)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return toolError("the API did not answer: " + apiFailure(err)), nil
		}
		defer resp.Body.Close()
		res, err := t.Result(resp, a.maxBytes)
		if err != nil {
			return toolError("the API's answer could not be read: " + apiFailure(err)), nil
		}
		text, structured := res.Text, res.Structured
		// An API that echoes its request (an error quoting the URL or the
		// headers) would show the caller the gateway's credential.
		if scrubbed, found := a.scrub(text, hr); found {
			text, structured = scrubbed, nil
		}
		out := &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: text}}, IsError: res.IsError}
		if structured != nil {
			out.StructuredContent = structured
		}
		return out, nil
	}
}

// scrub replaces in text every credential the gateway sent with hr (the
// static header and query values, the exchanged token) and reports
// whether it found one.
func (a *apiServer) scrub(text string, hr *http.Request) (string, bool) {
	var secrets []string
	for _, vs := range a.spec.Header {
		secrets = append(secrets, vs...)
	}
	for _, vs := range a.spec.Query {
		secrets = append(secrets, vs...)
	}
	if ex := a.spec.Exchange; ex != nil {
		h := ex.Header
		if h == "" {
			h = "Authorization"
		}
		if tok, ok := strings.CutPrefix(hr.Header.Get(h), "Bearer "); ok {
			secrets = append(secrets, tok)
		}
	}
	found := false
	for _, sec := range secrets {
		// A credential may be echoed without its scheme ("Bearer x"),
		// or query-escaped.
		for _, v := range []string{sec, credentialPart(sec)} {
			for _, w := range []string{v, url.QueryEscape(v)} {
				if len(w) >= 8 && strings.Contains(text, w) {
					text, found = strings.ReplaceAll(text, w, "[credential removed]"), true
				}
			}
		}
	}
	return text, found
}

// credentialPart is a header value without its auth scheme.
func credentialPart(v string) string {
	if _, cred, ok := strings.Cut(v, " "); ok {
		return cred
	}
	return v
}

// toolError is a failed tool call's result.
func toolError(text string) *mcp.CallToolResult {
	return &mcp.CallToolResult{IsError: true, Content: []mcp.Content{&mcp.TextContent{Text: text}}}
}

// apiFailure says why a request to the API failed, without its URL (which
// may carry an API key in the query).
func apiFailure(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return "timed out"
	}
	var oe *net.OpError
	if errors.As(err, &oe) {
		return oe.Op + ": " + oe.Err.Error()
	}
	return err.Error()
}

// exchanged returns a token for the API on c's behalf carrying scopes:
// cached per user, client and scope set until shortly before it expires.
func (a *apiServer) exchanged(ctx context.Context, c *caller, scopes []string) (string, error) {
	now := a.rt.g.now()
	// Keyed by the caller's token, not only its user and client: a
	// token exchanged for one authorization (its gid, its auth_time) is
	// never served for another's calls.
	key := cacheKey{token: sha256.Sum256([]byte(c.token)), scopes: strings.Join(scopes, " ")}
	if tok, ok := a.cache.get(key, now); ok {
		return tok, nil
	}
	ex := a.spec.Exchange
	et, err := ex.Exchanger.Exchange(ctx, c.token, ex.Resource, scopes)
	if err != nil {
		var oe *rs.ExchangeError
		if errors.As(err, &oe) {
			return "", fmt.Errorf("the authorization server refused a token for the API (%s): %s", oe.Code, oe.Description)
		}
		return "", fmt.Errorf("the gateway could not get a token for the API: %s", apiFailure(err))
	}
	a.cache.put(key, cachedToken{token: et.AccessToken, expiry: et.Expiry}, now)
	return et.AccessToken, nil
}

// tokenCache keeps exchanged tokens, bounded.
type tokenCache struct {
	mu  sync.Mutex
	max int
	m   map[cacheKey]cachedToken
}

// cacheKey is the caller's token (hashed) and the scope set.
type cacheKey struct {
	token  [sha256.Size]byte
	scopes string
}

type cachedToken struct {
	token  string
	expiry time.Time
}

func (c *tokenCache) get(key cacheKey, now time.Time) (string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	t, ok := c.m[key]
	if !ok || !now.Add(exchangeMargin).Before(t.expiry) {
		return "", false
	}
	return t.token, true
}

func (c *tokenCache) put(key cacheKey, t cachedToken, now time.Time) {
	if !now.Add(exchangeMargin).Before(t.expiry) {
		return // too short-lived to reuse
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= c.max {
		for k, v := range c.m {
			if !now.Before(v.expiry) {
				delete(c.m, k)
			}
		}
		// Still full: drop entries at random (map order) rather than
		// grow; a dropped user exchanges again.
		for k := range c.m {
			if len(c.m) < c.max {
				break
			}
			delete(c.m, k)
		}
	}
	c.m[key] = t
}
