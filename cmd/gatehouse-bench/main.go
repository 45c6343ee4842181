// Command gatehouse-bench is a load generator for OAuth authorization
// servers on loopback: Gatehouse, and Ory Hydra for comparison
// (scripts/hydra-compare.sh runs both).
//
// It runs named scenarios at given concurrencies, each bounded in time and
// in units (requests or flows), and prints per scenario: units per second,
// p50/p90/p99 latency, errors, and — read from /proc of the server process
// — the server's CPU time per unit and its peak RSS. It refuses any URL
// that is not loopback.
//
//	gatehouse-bench --target gatehouse --url http://127.0.0.1:8080 \
//	    --client-id cc --client-secret S --public-client pub --username u --password p \
//	    --resource http://127.0.0.1:8081/mcp --scenarios all --concurrency 32 --duration 5s
//
// Scenarios: discovery, jwks, client_credentials, client_credentials_opaque
// (Hydra), introspect, code_flow, code_flow_opaque (Hydra), refresh,
// refresh_opaque (Hydra), exchange (Gatehouse: RFC 8693 token exchange),
// rs_tools_call. See --help.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := mainErr(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "gatehouse-bench:", err)
		os.Exit(1)
	}
}

func mainErr(ctx context.Context, args []string, out io.Writer) error {
	if len(args) > 0 && args[0] == "compare" {
		return runCompare(args[1:], out)
	}
	fs := flag.NewFlagSet("gatehouse-bench", flag.ContinueOnError)
	fs.SetOutput(out)
	var (
		target      = fs.String("target", "gatehouse", "server kind: gatehouse or hydra (paths, login/consent mechanics)")
		label       = fs.String("label", "", "name printed for the target (default: --target)")
		public      = fs.String("url", "http://127.0.0.1:8080", "public base URL (the issuer), loopback only")
		admin       = fs.String("admin-url", "http://127.0.0.1:4445", "Hydra admin API base URL (hydra only)")
		scenarios   = fs.String("scenarios", "all", "comma-separated scenarios, or all: "+strings.Join(scenarioOrder, ","))
		conc        = fs.String("concurrency", "32", "comma-separated concurrencies; each scenario runs at each")
		duration    = fs.Duration("duration", 5*time.Second, "measured time per scenario and concurrency")
		warmup      = fs.Duration("warmup", 500*time.Millisecond, "unmeasured load before each measurement")
		maxUnits    = fs.Int64("max-requests", 200000, "at most this many units (requests or flows) per measurement; 0 = no bound")
		minUnits    = fs.Int64("min-units", 1, "the measurement goes on past --duration until this many units have finished")
		timeout     = fs.Duration("timeout", 10*time.Second, "per-request timeout")
		pid         = fs.Int("server-pid", 0, "server process for CPU and RSS (default: the process listening on --url's port)")
		ccID        = fs.String("client-id", "", "confidential client_credentials client (JWT access tokens); hydra: created when empty")
		ccSecret    = fs.String("client-secret", "", "its secret (client_secret_basic)")
		opID        = fs.String("opaque-client-id", "", "hydra: client_credentials client with opaque tokens; created when empty")
		opSecret    = fs.String("opaque-client-secret", "", "its secret")
		introID     = fs.String("introspect-client-id", "", "gatehouse: client that authenticates to /introspect (default: --client-id)")
		introSecret = fs.String("introspect-client-secret", "", "its secret (default: --client-secret)")
		pub         = fs.String("public-client", "", "public client for code_flow and refresh; hydra: created when empty")
		redirect    = fs.String("redirect-uri", "http://127.0.0.1/callback", "the public client's redirect URI")
		username    = fs.String("username", "", "gatehouse: user for the one login and consent before code_flow/refresh")
		password    = fs.String("password", "", "gatehouse: that user's password")
		passFile    = fs.String("password-file", "", "gatehouse: read the password from this file")
		resource    = fs.String("resource", "", "resource indicator (gatehouse) or audience (hydra) for tokens")
		scope       = fs.String("scope", "", "scope to request (default: the resource's default scopes; hydra: needs one)")
		poolSize    = fs.Int("introspect-pool", 64, "distinct tokens the introspect scenario cycles through")
		exID        = fs.String("exchange-client-id", "", "gatehouse: confidential client allowed to exchange (token_exchange.clients) for the exchange scenario")
		exSecret    = fs.String("exchange-client-secret", "", "its secret (client_secret_basic)")
		exResource  = fs.String("exchange-resource", "", "gatehouse: the registered resource the exchange scenario asks tokens for")
		exScope     = fs.String("exchange-scope", "", "scope for the exchange scenario (default: the subject token's scopes the target allows)")
		rsURL       = fs.String("rs-url", "", "MCP endpoint behind the rs middleware for rs_tools_call (e.g. http://127.0.0.1:8081/mcp)")
		rsTool      = fs.String("rs-tool", "", "tool to call (default: the first tool of tools/list)")
		rsArgs      = fs.String("rs-args", "{}", "tool arguments, JSON object")
		rsProto     = fs.String("rs-protocol-version", "2025-06-18", "MCP-Protocol-Version header and initialize protocolVersion")
		rsToken     = fs.String("rs-token", "", "Bearer token for the rs (default: client_credentials for --rs-resource)")
		rsResource  = fs.String("rs-resource", "", "resource the rs token is for (default: --rs-url)")
		rsScope     = fs.String("rs-scope", "", "scope for the rs token (default: the resource's defaults)")
		jsonOut     = fs.String("json", "", "append results as JSON lines to this file")
		session     = fs.String("session-cookie", "", "gatehouse: Cookie header value of a signed-in browser that has consented (skips the login)")
		printSess   = fs.Bool("print-session", false, "gatehouse: log in and consent once, print GATEHOUSE_BENCH_SESSION=<cookie> and exit")
		printHydra  = fs.Bool("print-hydra-clients", false, "hydra: register the clients, print them as shell variables (HYDRA_CC_ID=…) and exit")
		pubOpaque   = fs.String("public-client-opaque", "", "hydra: public client with opaque tokens; created when empty")
		idleOnly    = fs.Bool("idle", false, "only record the server's idle RSS (header line of --json) and exit")
	)
	fs.Usage = func() {
		fmt.Fprintln(out, "Usage: gatehouse-bench [flags]\n\nLoad-tests an OAuth authorization server on loopback. Scenarios:")
		b := &bench{}
		all := b.scenarios()
		for _, n := range scenarioOrder {
			fmt.Fprintf(out, "  %-26s %s\n", n, all[n].desc)
		}
		fmt.Fprintln(out, "\nFlags:")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if *target != "gatehouse" && *target != "hydra" {
		return fmt.Errorf("--target must be gatehouse or hydra, not %q", *target)
	}
	if *label == "" {
		*label = *target
	}
	for _, u := range []string{*public, *admin, *rsURL} {
		if u == "" {
			continue
		}
		if err := checkLoopback(u); err != nil {
			return err
		}
	}
	pw := *password
	if *passFile != "" {
		b, err := os.ReadFile(*passFile)
		if err != nil {
			return err
		}
		pw = strings.TrimRight(string(b), "\r\n")
	}
	var concs []int
	for _, s := range strings.Split(*conc, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 || n > 4096 {
			return fmt.Errorf("--concurrency: %q is not a number between 1 and 4096", s)
		}
		concs = append(concs, n)
	}
	b := &bench{
		flavor: *target, public: strings.TrimSuffix(*public, "/"), admin: strings.TrimSuffix(*admin, "/"),
		timeout: *timeout, cc: clientCreds{*ccID, *ccSecret}, ccOpaque: clientCreds{*opID, *opSecret},
		exchange: clientCreds{*exID, *exSecret}, exchangeRes: *exResource, exchangeScope: *exScope,
		intro: clientCreds{*introID, *introSecret}, pub: *pub, pubOpaque: *pubOpaque, redirect: *redirect, resource: *resource,
		scope: *scope, username: *username, password: pw, poolSize: max(1, *poolSize),
		rsURL: *rsURL, rsTool: *rsTool, rsArgs: *rsArgs, rsProto: *rsProto, rsToken: *rsToken,
		rsResource: *rsResource, rsScopeFlag: *rsScope,
	}
	if b.intro.id == "" {
		b.intro = b.cc
	}
	if *session != "" {
		b.session = cookieJar{}
		for _, kv := range strings.Split(*session, ";") {
			if k, v, ok := strings.Cut(strings.TrimSpace(kv), "="); ok {
				b.session[k] = v
			}
		}
		b.sessionOnce.Do(func() {})
	}
	if !json.Valid([]byte(b.rsArgs)) {
		return errors.New("--rs-args is not valid JSON")
	}
	if err := b.discover(ctx); err != nil {
		return err
	}
	if b.flavor == "hydra" && !*idleOnly {
		if err := b.hydraSetup(ctx); err != nil {
			return err
		}
		if *printHydra {
			for _, kv := range [][2]string{{"HYDRA_CC_ID", b.cc.id}, {"HYDRA_CC_SECRET", b.cc.secret},
				{"HYDRA_CC_OPAQUE_ID", b.ccOpaque.id}, {"HYDRA_CC_OPAQUE_SECRET", b.ccOpaque.secret},
				{"HYDRA_PUBLIC_ID", b.pub}, {"HYDRA_PUBLIC_OPAQUE_ID", b.pubOpaque}} {
				fmt.Fprintf(out, "%s='%s'\n", kv[0], strings.ReplaceAll(kv[1], "'", `'\''`))
			}
			return nil
		}
	}
	if *pid == 0 {
		u, _ := url.Parse(b.public)
		port, _ := strconv.Atoi(u.Port())
		if port == 0 {
			port = 80
		}
		p, err := pidListening(port)
		if err != nil {
			fmt.Fprintf(out, "note: server CPU and RSS unavailable: %v (give --server-pid)\n", err)
		}
		*pid = p
	}

	if *printSess {
		if b.flavor != "gatehouse" {
			return errors.New("--print-session is for --target gatehouse")
		}
		before, _, _ := procMem(*pid)
		if err := b.gatehouseSession(); err != nil {
			return err
		}
		after, _, _ := procMem(*pid)
		if *pid > 0 {
			fmt.Fprintf(os.Stderr, "server RSS %.1f MB before the login, %.1f MB after (argon2id)\n", mb(before), mb(after))
		}
		var parts []string
		for k, v := range b.session {
			parts = append(parts, k+"="+v)
		}
		fmt.Fprintf(out, "GATEHOUSE_BENCH_SESSION=%s\n", strings.Join(parts, "; "))
		return nil
	}

	all := b.scenarios()
	var names []string
	if *scenarios == "all" {
		names = scenarioOrder
	} else {
		for _, n := range strings.Split(*scenarios, ",") {
			n = strings.TrimSpace(n)
			if _, ok := all[n]; !ok {
				return fmt.Errorf("unknown scenario %q; known: %s", n, strings.Join(scenarioOrder, ", "))
			}
			names = append(names, n)
		}
	}

	var jf *os.File
	if *jsonOut != "" {
		f, err := os.OpenFile(*jsonOut, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
		if err != nil {
			return err
		}
		defer f.Close()
		jf = f
	}
	idle := -1.0
	if *pid > 0 {
		if rss, _, err := procMem(*pid); err == nil {
			idle = mb(rss)
		}
	}
	fmt.Fprintf(out, "# %s at %s  server pid %d  idle RSS %.1f MB  %d CPUs (GOMAXPROCS %d)  %s per run, at most %d units\n",
		*label, b.public, *pid, idle, runtime.NumCPU(), runtime.GOMAXPROCS(0), *duration, *maxUnits)
	if jf != nil {
		json.NewEncoder(jf).Encode(map[string]any{"target": *label, "idle_rss_mb": idle, "server_pid": *pid, "cpus": runtime.NumCPU()})
	}
	if *idleOnly {
		return nil
	}
	fmt.Fprintf(out, "%-26s %5s %9s %8s %8s %8s %8s %6s %5s %9s %6s %9s %8s\n",
		"scenario", "conc", "units/s", "p50 ms", "p90 ms", "p99 ms", "units", "errors", "req/u",
		"srvCPUµs", "cores", "cliCPUµs", "peakRSS")
	var failed int
	for _, n := range names {
		for _, c := range concs {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			r, err := run(ctx, *label, all[n], limits{duration: *duration, warmup: *warmup, maxUnits: *maxUnits, minUnits: *minUnits, concurrency: c}, *pid)
			switch {
			case errors.Is(err, errSkip):
				r.Skipped = err.Error()
				fmt.Fprintf(out, "%-26s %5d   skipped: %v\n", n, c, err)
			case err != nil:
				failed++
				r.FirstError = err.Error()
				fmt.Fprintf(out, "%-26s %5d   FAILED: %v\n", n, c, err)
			default:
				reqPer := 0.0
				if tot := r.Units + r.Errors; tot > 0 {
					reqPer = float64(r.Requests) / float64(tot)
				}
				fmt.Fprintf(out, "%-26s %5d %9.0f %8.2f %8.2f %8.2f %8d %6d %5.1f %9s %6s %9.0f %8s\n",
					n, c, r.PerSecond, r.P50ms, r.P90ms, r.P99ms, r.Units, r.Errors, reqPer,
					orNA(r.ServerCPUus, "%.0f"), orNA(r.ServerCores, "%.2f"), r.ClientCPUus, orNA(r.PeakRSSMB, "%.1f"))
				if r.Errors > 0 {
					fmt.Fprintf(out, "    %d errors; first: %s\n", r.Errors, truncate(r.FirstError, 200))
				}
			}
			if jf != nil {
				json.NewEncoder(jf).Encode(r)
			}
		}
	}
	if failed > 0 {
		return fmt.Errorf("%d scenario runs failed", failed)
	}
	return nil
}

func orNA(v float64, format string) string {
	if v < 0 {
		return "n/a"
	}
	return fmt.Sprintf(format, v)
}

// checkLoopback refuses anything but http on a loopback address: this
// tool generates load and must not be pointed at someone else's server.
func checkLoopback(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return err
	}
	if u.Scheme != "http" {
		return fmt.Errorf("%s: only http:// loopback URLs are allowed", raw)
	}
	h := u.Hostname()
	if h == "localhost" {
		return nil
	}
	ip := net.ParseIP(h)
	if ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("%s: not a loopback address; gatehouse-bench only loads servers on this machine", raw)
	}
	return nil
}

// discover reads the server's metadata for its endpoint paths.
func (b *bench) discover(ctx context.Context) error {
	b.ep.discovery = "/.well-known/oauth-authorization-server"
	if b.flavor == "hydra" {
		b.ep.discovery = "/.well-known/openid-configuration"
	}
	if u, err := url.Parse(b.public); err == nil && u.Path != "" && u.Path != "/" {
		b.ep.discovery += u.Path // RFC 8414 path insertion
		b.public = u.Scheme + "://" + u.Host
	}
	hc := setupClient(b.timeout)
	var resp *http.Response
	var err error
	for attempt := 0; attempt < 50; attempt++ { // the server may still be starting
		req, _ := http.NewRequestWithContext(ctx, "GET", b.public+b.ep.discovery, nil)
		if resp, err = hc.Do(req); err == nil {
			break
		}
		sleepCtx(ctx, 200*time.Millisecond)
	}
	if err != nil {
		return fmt.Errorf("discovery: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return fmt.Errorf("discovery %s: HTTP %d", b.ep.discovery, resp.StatusCode)
	}
	var m struct {
		Token      string `json:"token_endpoint"`
		Authorize  string `json:"authorization_endpoint"`
		JWKS       string `json:"jwks_uri"`
		Introspect string `json:"introspection_endpoint"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
		return fmt.Errorf("discovery: %w", err)
	}
	for _, p := range []struct {
		dst *string
		src string
	}{{&b.ep.token, m.Token}, {&b.ep.authorize, m.Authorize}, {&b.ep.jwks, m.JWKS}} {
		t, err := requestTarget(p.src)
		if err != nil || p.src == "" {
			return fmt.Errorf("discovery: bad endpoint %q", p.src)
		}
		*p.dst = t
	}
	b.ep.introspect = m.Introspect
	if b.flavor == "hydra" {
		b.ep.introspect = b.admin + "/admin/oauth2/introspect"
	}
	if b.ep.introspect == "" {
		return errors.New("discovery: no introspection_endpoint")
	}
	return checkLoopback(b.ep.introspect)
}
