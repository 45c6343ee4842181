package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/gatehouse-mcp/gatehouse/internal/clientip"
	"github.com/gatehouse-mcp/gatehouse/internal/clientreg"
	"github.com/gatehouse-mcp/gatehouse/internal/config"
	"github.com/gatehouse-mcp/gatehouse/internal/gateway"
	"github.com/gatehouse-mcp/gatehouse/internal/mcpauthz"
	"github.com/gatehouse-mcp/gatehouse/internal/openapi"
	"github.com/gatehouse-mcp/gatehouse/internal/storage"
	"github.com/gatehouse-mcp/gatehouse/rs"
)

// gatewayClockSkew is the gateway's tolerance for exp and nbf: it and
// the authorization server may run on different machines.
const gatewayClockSkew = 5 * time.Second

func runGateway(ctx context.Context, args []string, out io.Writer) error {
	fs := newFlags("gateway", "Run the MCP gateway: OAuth and per-tool policy in front of MCP servers without auth of their own. "+
		"It reads the gateway section of the config file (and storage and log, for the audit log it shares with the authorization server).", out)
	cfgPath := fs.String("config", os.Getenv("GATEHOUSE_CONFIG"), "config file (YAML or JSON) with a gateway section; env GATEHOUSE_CONFIG")
	listen := fs.String("listen", "", "listen address (overrides gateway.listen)")
	adminListen := fs.String("admin-listen", "", "admin listener for /metrics and /healthz (overrides gateway.admin_listen)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *cfgPath == "" {
		return errors.New("gateway: --config FILE is required (a config file with a gateway section)")
	}
	c, gw, err := loadGatewayConfig(*cfgPath, os.LookupEnv)
	if err != nil {
		return err
	}
	if *listen != "" {
		gw.Listen = *listen
		c.SetFrom("gateway.listen", "flag --listen")
	}
	if *adminListen != "" {
		gw.AdminListen = *adminListen
		c.SetFrom("gateway.admin_listen", "flag --admin-listen")
	}
	if err := gw.Validate(c.Issuer); err != nil {
		return fmt.Errorf("invalid gateway configuration:\n%w", err)
	}
	if len(gw.Routes) == 0 {
		return fmt.Errorf("%s: the gateway section has no routes", *cfgPath)
	}
	log := newLogger(c)
	for _, r := range gw.Routes {
		if len(r.ScopePolicies) > 0 {
			// The gateway checks only the scopes a token carries; who may
			// get a scope is the authorization server's decision, which
			// sees the policies only if it reads this gateway's storage.
			fmt.Fprintf(out, "warning: gateway route %s: scope_policies are written into its resource in this gateway's storage and enforced only by an authorization server that uses the same storage (gatehouse serve); this gateway itself checks only token scopes\n", r.Name)
		}
	}
	st, err := openStore(ctx, c, false)
	if err != nil {
		return schemaAdvice(err, configHow(*cfgPath))
	}
	defer st.Close()
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	g, err := startGateway(ctx, c, gw, st, log, reg, out)
	if err != nil {
		return err
	}
	errc := make(chan error, 2)
	if gw.AdminListen != "" {
		admin := http.NewServeMux()
		admin.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
		admin.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
			if err := st.Ping(r.Context()); err != nil {
				http.Error(w, "storage unreachable", http.StatusServiceUnavailable)
				return
			}
			w.Write([]byte("ok\n"))
		})
		aln, err := net.Listen("tcp", gw.AdminListen)
		if err != nil {
			g.close()
			return fmt.Errorf("gateway admin listener: %w", err)
		}
		adm := httpServer(admin, log)
		defer adm.Close()
		go func() { errc <- adm.Serve(aln) }()
		fmt.Fprintf(out, "  Metrics:         http://%s/metrics\n", aln.Addr())
	}
	go func() { errc <- g.serve() }()
	fmt.Fprintf(out, "Gatehouse gateway is running (issuer %s). Press Ctrl-C to stop.\n", gw.EffectiveIssuer(c.Issuer))
	select {
	case <-ctx.Done():
	case err := <-errc:
		if !errors.Is(err, http.ErrServerClosed) {
			g.close()
			return err
		}
	}
	g.shutdown()
	return nil
}

// runningGateway is a gateway with its own listener.
type runningGateway struct {
	gw    *gateway.Gateway
	hs    *http.Server
	ln    net.Listener
	drain time.Duration
	log   *slog.Logger
}

// startGateway builds the gateway of gw, registers its routes as
// protected resources (unless configured not to), binds its listener and
// prints its routes to out. It does not serve yet.
func startGateway(ctx context.Context, c config.Config, gw config.Gateway, st storage.Store, log *slog.Logger, reg prometheus.Registerer, out io.Writer) (*runningGateway, error) {
	if err := gw.Resolve(os.LookupEnv); err != nil {
		return nil, fmt.Errorf("gateway secrets:\n%w", err)
	}
	if err := fetchOpenAPIDocuments(ctx, gw); err != nil {
		return nil, err
	}
	opts, err := gatewayOptions(c, gw, st, log, reg)
	if err != nil {
		return nil, err
	}
	g, err := gateway.New(opts)
	if err != nil {
		return nil, err
	}
	if gw.ShouldRegisterResources() {
		if err := registerGatewayResources(ctx, st, g, gw, log); err != nil {
			g.Close()
			return nil, err
		}
	}
	ln, err := net.Listen("tcp", gw.EffectiveListen())
	if err != nil {
		g.Close()
		return nil, fmt.Errorf("gateway listener: %w", err)
	}
	hs := httpServer(g, log)
	// Event streams stay open as long as a session lives: a write timeout
	// would cut them.
	hs.WriteTimeout = 0
	fmt.Fprintf(out, "  Gateway:         listening on %s\n", ln.Addr())
	for _, r := range gw.Routes {
		up := r.Upstream.URL
		if o := r.Upstream.OpenAPI; o != nil {
			// A document URL's query could hold a key: not printed.
			doc, _, _ := strings.Cut(o.Document, "?")
			up = "openapi: " + o.BaseURL + " (" + doc + ")"
		} else if r.Upstream.Command != "" {
			up = "stdio: " + strings.Join(append([]string{r.Upstream.Command}, r.Upstream.Args...), " ")
		}
		fmt.Fprintf(out, "  Gateway route:   %s %s -> %s (scopes %s)\n", r.Name, r.URL, up, strings.Join(r.Scopes, " "))
	}
	return &runningGateway{gw: g, hs: hs, ln: ln, drain: gw.EffectiveShutdownTimeout(), log: log}, nil
}

// serve serves until the gateway is shut down.
func (r *runningGateway) serve() error {
	return r.hs.Serve(r.ln)
}

// shutdown drains the gateway: requests in flight may finish for the
// configured time, then sessions close (processes stop) and the listener
// closes.
func (r *runningGateway) shutdown() {
	ctx, cancel := context.WithTimeout(context.Background(), r.drain+5*time.Second)
	defer cancel()
	drained := make(chan struct{})
	go func() {
		dctx, dcancel := context.WithTimeout(ctx, r.drain)
		defer dcancel()
		if err := r.gw.Shutdown(dctx); err != nil {
			r.log.Warn("gateway: requests still in flight at the end of the drain", "cause", err)
		}
		close(drained)
	}()
	_ = r.hs.Shutdown(ctx)
	<-drained
}

// close stops the gateway at once.
func (r *runningGateway) close() {
	r.gw.Close()
	r.hs.Close()
}

// attachGateway serves the routes of the gateway section gw next to the
// authorization server srv (`gatehouse serve`, `gatehouse dev`), on the
// gateway's own listener (gateway.listen): it is bound and served now, and
// drained and stopped when srv shuts down. reg receives the gateway's
// metrics (nil: none). It does nothing when gw has no routes.
func attachGateway(ctx context.Context, srv *server, gw config.Gateway, reg prometheus.Registerer, out io.Writer) error {
	if len(gw.Routes) == 0 {
		return nil
	}
	if err := gw.Validate(srv.cfg.Issuer); err != nil {
		return fmt.Errorf("invalid gateway configuration:\n%w", err)
	}
	log := srv.log.With("component", "gateway")
	g, err := startGateway(ctx, srv.cfg, gw, srv.store, log, reg, out)
	if err != nil {
		return err
	}
	g.hs.RegisterOnShutdown(func() {
		ctx, cancel := context.WithTimeout(context.Background(), g.drain)
		defer cancel()
		if err := g.gw.Shutdown(ctx); err != nil {
			log.Warn("gateway: requests still in flight at the end of the drain", "cause", err)
		}
	})
	srv.extra = append(srv.extra, g.hs)
	go func() {
		if err := g.serve(); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("gateway stopped", "cause", err)
		}
	}()
	return nil
}

// gatewayOptions converts the (resolved) gateway section to the options
// of package gateway.
func gatewayOptions(c config.Config, gw config.Gateway, st storage.Store, log *slog.Logger, reg prometheus.Registerer) (gateway.Options, error) {
	proxies, err := clientip.ParseProxies(c.TrustedProxies)
	if err != nil {
		return gateway.Options{}, fmt.Errorf("trusted_proxies: %w", err)
	}
	opts := gateway.Options{
		Issuer:            gw.EffectiveIssuer(c.Issuer),
		ClockSkew:         gatewayClockSkew,
		Audit:             st,
		Registerer:        reg,
		Logger:            log,
		Now:               time.Now,
		TrustProxyHeaders: c.TrustProxyHeaders,
		TrustedProxies:    proxies,

		AuditBeforeForward: gw.AuditBeforeForward,
	}
	for _, r := range gw.Routes {
		route := gateway.Route{
			Name:                    r.Name,
			URL:                     r.URL,
			Title:                   r.Title,
			AcceptClientCredentials: r.AcceptClientCredentials,
			Scopes:                  r.Scopes,
			ImpliedScopes:           r.ImpliedScopes,
			Tools:                   r.Tools,
			Resources:               r.Resources,
			Prompts:                 r.Prompts,
			DenyUnlistedTools:       r.DenyUnlistedTools,
			DenyUnlistedResources:   r.DenyUnlistedResources,
			DenyUnlistedPrompts:     r.DenyUnlistedPrompts,
			ListTools:               mcpauthz.ListMode(r.ListTools),
			AllowedOrigins:          r.AllowedOrigins,
			AllowedHosts:            r.AllowedHosts,
			MaxSessions:             r.MaxSessions,
			MaxSessionsPerUser:      r.MaxSessionsPerUser,
			SessionIdleTimeout:      time.Duration(r.SessionIdleTimeout),
			RequestTimeout:          time.Duration(r.RequestTimeout),
			MaxBodyBytes:            r.MaxBodyBytes,
			MaxMessageBytes:         r.MaxMessageBytes,
			MaxBatchMessages:        r.MaxBatchMessages,
		}
		u := r.Upstream
		if u.OpenAPI != nil {
			api, err := openAPIUpstream(opts.Issuer, r, log)
			if err != nil {
				return gateway.Options{}, err
			}
			route.Upstream = gateway.Upstream{API: api}
		} else if u.URL != "" {
			route.Upstream = gateway.Upstream{URL: u.URL, ConnectTimeout: time.Duration(u.ConnectTimeout)}
			if u.Header != "" {
				route.Upstream.Header = http.Header{http.CanonicalHeaderKey(u.Header): {u.HeaderValue}}
			}
		} else {
			route.Upstream = gateway.Upstream{Command: u.Command, Args: u.Args, Dir: u.Dir, Env: stdioEnv(u)}
		}
		opts.Routes = append(opts.Routes, route)
	}
	return opts, nil
}

// gatewayExchangeClients are the token exchange policies the OpenAPI
// routes of gw need when the gateway runs in the authorization server's
// process (`gatehouse serve`, `gatehouse dev --gateway`): each route's
// client may exchange tokens issued for the route for tokens for its API.
// The scopes are bounded by the API's resource, which the gateway
// registers with the route's scopes, and by the subject token. A
// standalone `gatehouse gateway` needs the same entry in its authorization
// server's token_exchange section.
func gatewayExchangeClients(gw config.Gateway) []config.ExchangeClient {
	var out []config.ExchangeClient
	for _, r := range gw.Routes {
		if a := r.Upstream.Auth; r.Upstream.OpenAPI != nil && a != nil && a.TokenExchange != nil {
			out = append(out, config.ExchangeClient{
				ClientID:         a.TokenExchange.ClientID,
				SubjectAudiences: []string{r.URL},
				Audiences:        []string{a.TokenExchange.Resource},
			})
		}
	}
	return out
}

// maxOpenAPIDocumentBytes caps an OpenAPI document fetched at start:
// GitHub's REST description, one of the largest, is about 12 MB.
const maxOpenAPIDocumentBytes = 64 << 20

// fetchOpenAPIDocuments fetches the OpenAPI documents of gw's routes that
// are https URLs (a file was read by Resolve), once, with the SSRF-safe
// fetcher of client metadata documents: no private addresses, no
// redirects.
func fetchOpenAPIDocuments(ctx context.Context, gw config.Gateway) error {
	var f *clientreg.Fetcher
	for i := range gw.Routes {
		o := gw.Routes[i].Upstream.OpenAPI
		if o == nil || !strings.HasPrefix(o.Document, "https://") {
			continue
		}
		if f == nil {
			f = clientreg.NewFetcher(clientreg.FetchOptions{Timeout: time.Minute, MaxBytes: maxOpenAPIDocumentBytes})
		}
		res, err := f.Fetch(ctx, o.Document)
		if err != nil {
			// The URL's query could hold a key: the message names the
			// document without it.
			doc, _, _ := strings.Cut(o.Document, "?")
			msg := err.Error()
			var ue *url.Error
			if errors.As(err, &ue) {
				msg = ue.Err.Error()
			}
			return fmt.Errorf("gateway route %q: openapi document %s: %s", gw.Routes[i].Name, doc, strings.ReplaceAll(msg, o.Document, doc))
		}
		o.Data = res.Body
	}
	return nil
}

// openAPIUpstream converts an OpenAPI route's document and keys to the
// gateway's API: the selected operations as tools, and the credential.
func openAPIUpstream(issuer string, r config.GatewayRoute, log *slog.Logger) (*gateway.API, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	u := r.Upstream
	o := u.OpenAPI
	// A document URL's query could hold a key: never printed.
	docName, _, _ := strings.Cut(o.Document, "?")
	fail := func(err error) (*gateway.API, error) {
		return nil, fmt.Errorf("gateway route %q: openapi document %s: %w", r.Name, docName, err)
	}
	doc, err := openapi.Load(o.Data)
	if err != nil {
		return fail(err)
	}
	sel := func(in, ex config.GatewayOpenAPISelect) openapi.Selection {
		return openapi.Selection{
			Tags: in.Tags, OperationIDs: in.Operations, Methods: in.Methods, PathPrefixes: in.PathPrefixes,
			ExcludeTags: ex.Tags, ExcludeOperationIDs: ex.Operations, ExcludeMethods: ex.Methods, ExcludePathPrefixes: ex.PathPrefixes,
		}
	}
	tools, skipped, err := doc.Tools(openapi.Options{
		Selection: sel(o.Include, o.Exclude),
		Names:     o.Names,
		Scopes: openapi.ScopeRules{
			Read: o.Scopes.Read, Write: o.Scopes.Write, Tags: o.Scopes.Tags,
			Operations: o.Scopes.Operations, ScopeMap: o.Scopes.ScopeMap,
		},
	})
	if err != nil {
		return fail(err)
	}
	for _, sk := range skipped {
		log.Warn("gateway: openapi operation not served", "route", r.Name, "method", sk.Method, "path", sk.Path, "operation_id", sk.OperationID, "reason", sk.Reason)
	}
	log.Info("gateway: openapi route", "route", r.Name, "tools", len(tools), "skipped", len(skipped))
	api := &gateway.API{Tools: tools, BaseURL: o.BaseURL, MaxResponseBytes: o.MaxResponseBytes,
		NoOutputSchemas: o.OutputSchemas != nil && !*o.OutputSchemas}
	if u.Header != "" {
		api.Header = http.Header{http.CanonicalHeaderKey(u.Header): {u.HeaderValue}}
	}
	if a := u.Auth; a != nil {
		if a.QueryParam != "" {
			api.Query = url.Values{a.QueryParam: {a.QueryValue}}
		}
		if te := a.TokenExchange; te != nil {
			tokenURL := te.TokenURL
			if tokenURL == "" {
				tokenURL = strings.TrimSuffix(issuer, "/") + "/token"
			}
			api.Exchange = &gateway.Exchange{
				Exchanger: &rs.Exchanger{TokenURL: tokenURL, ClientID: te.ClientID, ClientSecret: te.ClientSecret},
				Resource:  te.Resource,
				Header:    te.Header,
			}
		}
	}
	return api, nil
}

// stdioEnv is the whole environment of a stdio upstream: the inherited
// variables, then the configured ones.
func stdioEnv(u config.GatewayUpstream) []string {
	inherit := u.InheritEnv
	if inherit == nil {
		inherit = config.DefaultGatewayInheritEnv
	}
	env := []string{}
	for _, name := range inherit {
		if v, ok := os.LookupEnv(name); ok {
			env = append(env, name+"="+v)
		}
	}
	for _, e := range u.Env {
		env = append(env, e.Name+"="+e.Resolved)
	}
	return env
}

// registerGatewayResources creates or updates each route's protected
// resource, so the authorization server issues tokens for it. A route's
// scope_policies, when its config has the key, are the resource's whole
// policies: the config is the source of truth for a route it declares,
// and a policy set on the resource with `gatehouse resource add
// --scope-group` is replaced (with a warning when they differed). Without
// the key the stored policies are kept, so that re-registering never lifts
// a restriction nobody asked to lift.
func registerGatewayResources(ctx context.Context, st storage.Store, g *gateway.Gateway, gw config.Gateway, log *slog.Logger) error {
	desc := map[string]map[string]string{}
	policies := map[string]map[string]storage.ScopePolicy{}
	for _, r := range gw.Routes {
		desc[r.Name] = r.ScopeDescriptions
		if r.ScopePolicies == nil {
			continue
		}
		canon, err := rs.CanonicalResource(r.URL)
		if err != nil {
			return fmt.Errorf("gateway: route %s: %w", r.Name, err)
		}
		p := map[string]storage.ScopePolicy{}
		for scope, pol := range r.ScopePolicies {
			p[scope] = storage.ScopePolicy{Groups: slices.Clone(pol.Groups), Claims: maps.Clone(pol.Claims)}
		}
		policies[canon] = p
		// An OpenAPI route's API is a resource too (its tokens come by
		// exchange): the route's policies restrict it the same way, or a
		// user the route refuses a scope could get it for the API.
		if a := r.Upstream.Auth; r.Upstream.OpenAPI != nil && a != nil && a.TokenExchange != nil {
			if apiCanon, err := rs.CanonicalResource(a.TokenExchange.Resource); err == nil {
				policies[apiCanon] = p
			}
		}
	}
	now := time.Now()
	for _, res := range g.Resources(desc) {
		fromConfig, inConfig := policies[res.URL]
		if inConfig && len(fromConfig) > 0 {
			res.ScopePolicies = fromConfig
		}
		if old, err := st.GetResource(ctx, res.URL); err == nil {
			res.CreatedAt = old.CreatedAt
			switch {
			case !inConfig:
				res.ScopePolicies = old.ScopePolicies
			case len(old.ScopePolicies) > 0 && !samePolicies(old.ScopePolicies, fromConfig):
				log.Warn("gateway: the route's scope_policies replace the scope policies stored for its resource (set with gatehouse resource add --scope-group or --scope-claim?); the config is the source of truth for its routes",
					"resource", res.URL, "stored", allPolicyText(old.ScopePolicies), "config", allPolicyText(fromConfig))
			}
		} else if !errors.Is(err, storage.ErrNotFound) {
			return fmt.Errorf("gateway: read resource %s: %w", res.URL, err)
		} else {
			res.CreatedAt = now
		}
		res.UpdatedAt = now
		if err := st.PutResource(ctx, res); err != nil {
			return fmt.Errorf("gateway: register resource %s: %w", res.URL, err)
		}
	}
	return nil
}

// samePolicies reports whether a and b restrict the same scopes to the
// same groups and claim values, in any order.
func samePolicies(a, b map[string]storage.ScopePolicy) bool {
	sameSet := func(x, y []string) bool {
		return len(x) == len(y) && !slices.ContainsFunc(x, func(g string) bool { return !slices.Contains(y, g) })
	}
	return maps.EqualFunc(a, b, func(x, y storage.ScopePolicy) bool {
		return sameSet(x.Groups, y.Groups) && maps.EqualFunc(x.Claims, y.Claims, sameSet)
	})
}

// loadGatewayConfig reads a config file for `gatehouse gateway` as
// config.Load reads it (defaults < file < environment), with the storage
// and gateway secrets resolved. The key-encryption key is not read: the
// gateway signs nothing.
func loadGatewayConfig(path string, env func(string) (string, bool)) (config.Config, config.Gateway, error) {
	c, err := config.Load(path, env)
	if err != nil {
		return c, c.Gateway, err
	}
	c.Keys.EncryptionKeyFile = ""
	if err := c.Resolve(env); err != nil {
		return c, c.Gateway, err
	}
	return c, c.Gateway, nil
}

// loadGatewayFile reads the gateway section of a config file, for
// `gatehouse dev --gateway FILE`.
func loadGatewayFile(path string) (config.Gateway, error) {
	c, err := config.Load(path, os.LookupEnv)
	if err != nil {
		return c.Gateway, err
	}
	if len(c.Gateway.Routes) == 0 {
		return c.Gateway, fmt.Errorf("%s has no gateway routes", path)
	}
	return c.Gateway, nil
}
