package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"time"

	"github.com/gatehouse-mcp/gatehouse/internal/as"
	"github.com/gatehouse-mcp/gatehouse/internal/clientip"
	"github.com/gatehouse-mcp/gatehouse/internal/config"
	"github.com/gatehouse-mcp/gatehouse/internal/metrics"
	"github.com/gatehouse-mcp/gatehouse/internal/storage"
	"github.com/gatehouse-mcp/gatehouse/internal/web"
)

func runServe(ctx context.Context, args []string, out io.Writer) error {
	fs := newFlags("serve", "Run the authorization server. Configuration: defaults < --config file < GATEHOUSE_* environment < flags.", out)
	cfgPath := fs.String("config", os.Getenv("GATEHOUSE_CONFIG"), "config file (YAML or JSON); env GATEHOUSE_CONFIG")
	listen := fs.String("listen", "", "listen address (overrides listen)")
	issuer := fs.String("issuer", "", "issuer URL (overrides issuer)")
	adminListen := fs.String("admin-listen", "", "admin listener for /metrics and /healthz (overrides admin_listen)")
	migrate := fs.Bool("migrate", false, "apply PostgreSQL migrations before serving (SQLite always migrates)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	c, errs := checkedConfig(*cfgPath, os.LookupEnv, false, func(c *config.Config) {
		if *listen != "" {
			c.Listen = *listen
			c.SetFrom("listen", "flag --listen")
		}
		if *issuer != "" {
			c.Issuer = *issuer
			c.SetFrom("issuer", "flag --issuer")
		}
		if *adminListen != "" {
			c.AdminListen = *adminListen
			c.SetFrom("admin_listen", "flag --admin-listen")
		}
	})
	if len(errs) > 0 {
		return fmt.Errorf("invalid configuration (`gatehouse config check --config FILE` lists the same):\n%w", errs)
	}
	// Listen first: a port in use fails here, before the store is opened
	// or the gateway's routes are printed.
	ln, err := net.Listen("tcp", c.Listen)
	if err != nil {
		return fmt.Errorf("listen %q: %w", c.Listen, err)
	}
	defer ln.Close()
	log := newLogger(c)
	warnKeyFileMode(log, c.Keys.EncryptionKeyFile)
	st, err := openStore(ctx, c, *migrate)
	if err != nil {
		return schemaAdvice(err, configHow(*cfgPath))
	}
	defer st.Close()
	c.TokenExchange.Clients = append(c.TokenExchange.Clients, gatewayExchangeClients(c.Gateway)...)
	srv, err := newServer(ctx, c, st, log, c.AllowInsecureIssuer, false)
	if err != nil {
		return err
	}
	srv.ln = ln
	if err := warnResources(ctx, st, log); err != nil {
		return err
	}
	if err := attachGateway(ctx, srv, c.Gateway, srv.metrics.Registerer(), out); err != nil {
		return err
	}
	return srv.run(ctx, func(addr string) {
		fmt.Fprintf(out, "gatehouse: serving issuer %s on %s\n", c.Issuer, addr)
	})
}

// server is a running authorization server and its admin listener.
type server struct {
	cfg     config.Config
	as      *as.Server
	handler http.Handler
	admin   http.Handler
	store   storage.Store
	log     *slog.Logger
	metrics *metrics.Metrics
	extra   []*http.Server // more listeners started and stopped with this one (dev's MCP server)
	// ln is the public listener when it was opened before the server was
	// built (dev listens first, so a port in use fails before anything
	// else); nil: run listens on cfg.Listen.
	ln net.Listener
}

// newServer wires the authorization server from a validated config.
func newServer(ctx context.Context, c config.Config, st storage.Store, log *slog.Logger, allowHTTP, dev bool) (*server, error) {
	kr, err := openKeyring(ctx, c, st)
	if err != nil {
		return nil, fmt.Errorf("open signing keys: %w", err)
	}
	iss, err := url.Parse(c.Issuer)
	if err != nil {
		return nil, err
	}
	pages, err := web.New(web.Options{
		ProductName:  c.Branding.Name,
		LogoURL:      c.Branding.LogoURL,
		IssuerHost:   iss.Host,
		Secure:       iss.Scheme == "https",
		CSRFKey:      deriveKey(c.Keys.EncryptionKey, "csrf"),
		StaticPrefix: iss.Path + "/static/",
		Logger:       log,
	})
	if err != nil {
		return nil, err
	}
	proxies, err := clientip.ParseProxies(c.TrustedProxies)
	if err != nil {
		return nil, fmt.Errorf("trusted_proxies: %w", err)
	}
	m := metrics.New(time.Now)
	a, err := as.New(as.Options{
		Issuer:             c.Issuer,
		Store:              st,
		Keyring:            kr,
		Pages:              pages,
		Logger:             log,
		Now:                time.Now,
		Secret:             serverSecret(c.Keys.EncryptionKey),
		AccessTokenTTL:     time.Duration(c.Tokens.AccessTokenTTL),
		RefreshTokenTTL:    time.Duration(c.Tokens.RefreshTokenTTL),
		GrantTTL:           time.Duration(c.Tokens.GrantTTL),
		CodeTTL:            time.Duration(c.Tokens.CodeTTL),
		SessionTTL:         time.Duration(c.Login.SessionTTL),
		RefreshRetryWindow: time.Duration(c.Tokens.RefreshRetryWindow),
		LoginMaxFailures:   c.Login.MaxFailures,
		LoginWindow:        time.Duration(c.Login.Window),
		TrustProxyHeaders:  c.TrustProxyHeaders,
		TrustedProxies:     proxies,
		OnGrant:            m.Grant,
		AllowHTTPIssuer:    allowHTTP,
		Registration:       registrationOptions(c.Registration, dev),
		TokenExchange:      tokenExchangeOptions(c.TokenExchange),
		DPoP:               as.DPoP{RequireNonce: c.DPoP.RequireNonce},
		Passkeys:           c.PasskeyOptions(),
		Upstreams:          upstreamOptions(c.Identity),
		Delegate:           delegateOption(c.Identity),
		DisableLocalLogin:  !c.Identity.Local,
	})
	if err != nil {
		return nil, err
	}
	admin := http.NewServeMux()
	admin.Handle("/metrics", m.Handler())
	admin.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		if err := st.Ping(r.Context()); err != nil {
			http.Error(w, "storage unreachable", http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("ok\n"))
	})
	return &server{cfg: c, as: a, handler: m.Middleware(a), admin: admin, store: st, log: log, metrics: m}, nil
}

// warnResources logs a warning for each registered resource with scopes
// but no default scope (see noDefaultScope): the server issues tokens with
// no scope for it, which is rarely what was meant.
func warnResources(ctx context.Context, st storage.Resources, log *slog.Logger) error {
	rs, err := st.ListResources(ctx)
	if err != nil {
		return err
	}
	for _, r := range rs {
		if noDefaultScope(r) {
			log.Warn("resource has "+noDefaultScopeWarning+"; set one with gatehouse resource add --default-scope", "resource", r.URL)
		}
	}
	return nil
}

// httpServer returns an http.Server with the timeouts a public listener
// needs: slow clients cannot hold connections open indefinitely.
func httpServer(h http.Handler, log *slog.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    32 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
}

// run listens, garbage-collects periodically, and shuts down gracefully
// when ctx ends. ready is called with the bound address.
func (s *server) run(ctx context.Context, ready func(addr string)) error {
	ln := s.ln
	if ln == nil {
		var err error
		if ln, err = net.Listen("tcp", s.cfg.Listen); err != nil {
			return err
		}
	}
	pub := httpServer(s.handler, s.log)
	servers := append([]*http.Server{pub}, s.extra...)
	errc := make(chan error, 3)
	go func() { errc <- pub.Serve(ln) }()
	if s.cfg.AdminListen != "" {
		aln, err := net.Listen("tcp", s.cfg.AdminListen)
		if err != nil {
			ln.Close()
			return fmt.Errorf("admin listener: %w", err)
		}
		adm := httpServer(s.admin, s.log)
		servers = append(servers, adm)
		go func() { errc <- adm.Serve(aln) }()
	}
	go s.gcLoop(ctx)
	ready(ln.Addr().String())
	select {
	case <-ctx.Done():
	case err := <-errc:
		if !errors.Is(err, http.ErrServerClosed) {
			return err
		}
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, hs := range servers {
		_ = hs.Shutdown(shutdown)
	}
	return nil
}

// gcLoop deletes expired rows every storage.gc_interval.
func (s *server) gcLoop(ctx context.Context) {
	t := time.NewTicker(time.Duration(s.cfg.Storage.GCInterval))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.collect(ctx, time.Now())
		}
	}
}

// serverSecret derives the authorization server's own secret
// (as.Options.Secret) from the key-encryption key, which every replica
// shares; without one (never in serve or dev) the server makes its own.
func serverSecret(kek []byte) []byte {
	if len(kek) == 0 {
		return nil
	}
	return deriveKey(kek, "authorization server")
}

// auditDeleteBatch is how many audit events one transaction of the
// retention deletes: small enough that appends (which wait for it on
// PostgreSQL) are held up for milliseconds, not for a whole backlog.
const auditDeleteBatch = 1000

// collect is one garbage collection at now: expired rows, audit events
// older than audit.retention, and unused dynamic clients.
func (s *server) collect(ctx context.Context, now time.Time) {
	res, err := s.store.GarbageCollect(ctx, now)
	if err != nil {
		s.log.Error("garbage collection failed", "cause", err)
		return
	}
	s.log.Debug("garbage collected", "result", fmt.Sprintf("%+v", res))
	if keep := time.Duration(s.cfg.Audit.Retention); keep > 0 {
		n, err := deleteAuditBefore(ctx, s.store, now.Add(-keep), auditDeleteBatch)
		if err != nil {
			s.log.Error("deleting old audit events failed", "cause", err, "deleted", n)
		} else if n > 0 {
			s.log.Info("deleted audit events past audit.retention", "count", n, "retention", keep.String())
		}
	}
	if n, err := s.as.Reap(ctx, now); err != nil {
		s.log.Error("reaping dynamic clients failed", "cause", err)
	} else if n > 0 {
		s.log.Info("reaped dynamic clients", "count", n)
	}
}

// deleteAuditBefore deletes every audit event before before, batch events
// per transaction, so that other writers get the table between batches.
func deleteAuditBefore(ctx context.Context, st storage.Audit, before time.Time, batch int) (int64, error) {
	var total int64
	for ctx.Err() == nil {
		n, err := st.DeleteAuditBefore(ctx, before, batch)
		total += n
		if err != nil || n < int64(batch) {
			return total, err
		}
	}
	return total, ctx.Err()
}

// configHow is [storeFlags.how] for commands that take only --config.
func configHow(path string) string {
	if path == "" {
		return ""
	}
	return "--config " + path
}
