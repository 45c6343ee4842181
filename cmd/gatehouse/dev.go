package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gatehouse-mcp/gatehouse/internal/as"
	"github.com/gatehouse-mcp/gatehouse/internal/config"
	"github.com/gatehouse-mcp/gatehouse/internal/demo"
	"github.com/gatehouse-mcp/gatehouse/internal/password"
	"github.com/gatehouse-mcp/gatehouse/internal/storage"
	"github.com/gatehouse-mcp/gatehouse/rs"
)

// Names of what dev mode registers.
const (
	devClientID     = "gatehouse-demo"
	devResourceName = "Gatehouse demo notes"
	devUserDefault  = "demo"
	// devPasswordEnv is the environment variable with the demo user's
	// password (when --password-file is not given).
	devPasswordEnv = "GATEHOUSE_DEV_PASSWORD"
)

func runDev(ctx context.Context, args []string, out io.Writer) error {
	fs := newFlags("dev", "Run the authorization server with zero configuration: SQLite and keys in the data directory, a demo user, a demo client and a demo resource, issuer on loopback http.", out)
	data := fs.String("data", defaultDataDir, "data directory (created if missing)")
	listen := fs.String("listen", "127.0.0.1:8080", "listen address of the authorization server; the issuer is http://<listen>")
	mcpListen := fs.String("mcp-listen", "", "listen address of the demo MCP server (default: the port after --listen)")
	user := fs.String("user", devUserDefault, "name of the demo user")
	pwFile := fs.String("password-file", "", "file whose first line is the demo user's password (default: env "+devPasswordEnv+", else a generated one kept in the data directory)")
	dpopNonce := fs.Bool("dpop-require-nonce", false, "require server nonces in DPoP proofs at the token endpoint and the demo MCP server (dpop.require_nonce; RFC 9449 §8, §9), to watch DPoP clients retry")
	accessTTL := fs.Duration("access-token-ttl", 0, "access-token lifetime (default: the configuration default, 10m); a short one lets you watch clients refresh")
	gatewayFile := fs.String("gateway", "", "config file whose gateway section is served too (MCP servers without auth behind OAuth, on gateway.listen; see docs/gateway.md)")
	brandName := fs.String("branding-name", "", "display name of the server or organisation on the sign-in, consent and error pages (branding.name)")
	brandLogo := fs.String("branding-logo-url", "", "logo on those pages: an https URL or a base64 data:image/… URL (branding.logo_url)")
	delegateFlag := fs.String("delegate", "", "ID,LOGIN_URL,PUBLIC_KEY_FILE: delegated login to a SaaS's own login page (identity.delegate; see examples/saaslogin); the demo user's password sign-in stays")
	var cimdAllow listFlag
	fs.Var(&cimdAllow, "cimd-allow-host", "host whose client metadata documents may be fetched although it resolves to a loopback or private address (repeatable; registration.cimd.allow_hosts), for testing CIMD clients locally. TLS is still verified against the system roots (SSL_CERT_FILE replaces them)")
	var idpFlags listFlag
	fs.Var(&idpFlags, "idp", "ISSUER,CLIENT_ID,SECRET_FILE: offer sign-in at this OpenID Connect provider too (\"Continue with <host>\" on the sign-in page, beside the demo user). The issuer may be http on 127.0.0.1 or localhost; the banner prints the redirect URI to register at the provider")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := checkDevUserName(*user); err != nil {
		return err
	}
	var idp *config.IdentityProvider
	switch len(idpFlags) {
	case 0:
	case 1:
		p, err := parseDevIDP(idpFlags[0])
		if err != nil {
			return err
		}
		idp = &p
	default:
		return fmt.Errorf("%s is given %d times: dev offers one provider; for more, use `gatehouse serve` with identity.providers", devIDPUsage, len(idpFlags))
	}
	host, port, err := net.SplitHostPort(*listen)
	if err != nil {
		return fmt.Errorf("--listen %q: %w", *listen, err)
	}
	if *mcpListen == "" {
		p, err := strconv.Atoi(port)
		if err != nil || p == 0 {
			return fmt.Errorf("--listen %q needs a fixed port (the MCP server takes the next one)", *listen)
		}
		*mcpListen = net.JoinHostPort(host, strconv.Itoa(p+1))
	}
	// Listen first: a port in use fails here, before the data directory
	// is created, the store opened or a line of the banner printed.
	asLn, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("--listen %q: %w", *listen, err)
	}
	defer asLn.Close()
	mcpLn, err := net.Listen("tcp", *mcpListen)
	if err != nil {
		return fmt.Errorf("--mcp-listen %q: %w", *mcpListen, err)
	}
	defer mcpLn.Close()
	c, err := devConfig(*data, *listen, true)
	if err != nil {
		return err
	}
	if *accessTTL != 0 {
		c.Tokens.AccessTokenTTL = config.Duration(*accessTTL)
	}
	if len(cimdAllow) > 0 {
		c.Registration.CIMD.AllowHosts = cimdAllow
	}
	c.DPoP.RequireNonce = *dpopNonce
	devPasskeys(&c, host, port)
	c.Branding.Name, c.Branding.LogoURL = *brandName, *brandLogo
	if idp != nil {
		c.Identity.Providers = []config.IdentityProvider{*idp}
	}
	if *delegateFlag != "" {
		if c.Identity.Delegate, err = parseDelegateFlag(*delegateFlag); err != nil {
			return err
		}
	}
	if err := c.Validate(true); err != nil {
		return fmt.Errorf("invalid dev configuration:\n%w", err)
	}
	pw, pwSource, err := devPassword(*data, *pwFile, os.LookupEnv)
	if err != nil {
		return err
	}
	log := newLogger(c)
	st, err := openStore(ctx, c, true)
	if err != nil {
		return schemaAdvice(err, "--data "+*data)
	}
	defer st.Close()
	if err := upsertUser(ctx, st, *user, pw); err != nil {
		return err
	}
	username := *user
	resourceURL := "http://" + *mcpListen + "/mcp"
	if err := ensureDevResource(ctx, st, resourceURL); err != nil {
		return err
	}
	if err := ensureDevClient(ctx, st); err != nil {
		return err
	}
	var gw config.Gateway
	if *gatewayFile != "" {
		if gw, err = loadGatewayFile(*gatewayFile); err != nil {
			return err
		}
		c.TokenExchange.Clients = append(c.TokenExchange.Clients, gatewayExchangeClients(gw)...)
	}
	srv, err := newServer(ctx, c, st, log, true, true)
	if err != nil {
		return err
	}
	srv.ln = asLn
	srv.handler = requestLog(log, "as", srv.handler)
	if err := warnResources(ctx, st, log); err != nil {
		return err
	}
	// The gateway's lines belong in the banner, printed once everything
	// listens.
	var gatewayLines strings.Builder
	if *gatewayFile != "" {
		if err := attachGateway(ctx, srv, gw, srv.metrics.Registerer(), &gatewayLines); err != nil {
			return err
		}
	}
	// The demo MCP server: a listener of its own, served once the
	// authorization server listens (it fetches the JWKS from it on the
	// first request) and shut down with it.
	var nonces rs.DPoPNonces
	if *dpopNonce {
		// One process: a secret of its own is enough.
		secret := make([]byte, 32)
		if _, err := rand.Read(secret); err != nil {
			return err
		}
		if nonces, err = rs.NewDPoPNonces(secret, 0, nil); err != nil {
			return err
		}
	}
	mcpHandler, err := demo.NewHandler(demo.Options{
		Issuer:     c.Issuer,
		Resource:   resourceURL,
		Name:       devResourceName,
		ToolScopes: devToolScopes(),
		DPoPNonces: nonces,
		Logger:     log.With("server", "demo-mcp"),
		ToolCalled: demoToolAudit(st, log),
	})
	if err != nil {
		return fmt.Errorf("demo MCP server: %w", err)
	}
	mcpSrv := httpServer(requestLog(log, "demo-mcp", mcpHandler), log)
	// Streamable HTTP keeps server-sent event streams open as long as a
	// session lives: a write timeout would cut them.
	mcpSrv.WriteTimeout = 0
	srv.extra = append(srv.extra, mcpSrv)
	return srv.run(ctx, func(addr string) {
		go func() {
			if err := mcpSrv.Serve(mcpLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Error("demo MCP server stopped", "cause", err)
			}
		}()
		fmt.Fprintf(out, "Gatehouse dev is running.\n\n")
		fmt.Fprintf(out, "  Issuer:          %s\n", c.Issuer)
		fmt.Fprintf(out, "  Metadata:        %s/.well-known/oauth-authorization-server\n", c.Issuer)
		fmt.Fprintf(out, "  Demo resource:   %s (scopes notes:read notes:write)\n", resourceURL)
		fmt.Fprintf(out, "  Demo MCP server: %s (Streamable HTTP; list_notes, read_note need notes:read; add_note, delete_note need notes:write)\n", resourceURL)
		fmt.Fprintf(out, "  Demo client:     %s (public; redirect http://127.0.0.1/callback or http://localhost/callback, any port, and MCP Inspector's /oauth/callback)\n", devClientID)
		if pwSource == "" {
			fmt.Fprintf(out, "  Demo user:       %s / %s  (generated; kept in %s)\n", username, pw, filepath.Join(*data, devPasswordFile))
		} else {
			fmt.Fprintf(out, "  Demo user:       %s  (password from %s)\n", username, pwSource)
		}
		if idp != nil {
			fmt.Fprintf(out, "  Identity provider: %s (\"Continue with %s\" on the sign-in page; client id %s)\n", idp.Issuer, idp.DisplayName, idp.ClientID)
			fmt.Fprintf(out, "    Register this redirect URI at the provider: %s\n", as.UpstreamRedirectURI(c.Issuer, idp.Name))
			fmt.Fprintf(out, "    Its people become users named oidc:%s:<subject> at their first sign-in.\n", idp.Name)
		}
		if c.Passkeys.RPID != "" {
			fmt.Fprintf(out, "  Account page:    %s/account (passkeys work here: WebAuthn refuses an IP address such as 127.0.0.1)\n", c.Passkeys.Origins[0])
		} else {
			fmt.Fprintf(out, "  Account page:    %s/account\n", c.Issuer)
		}
		fmt.Fprintf(out, "  Data directory:  %s\n", *data)
		fmt.Fprintf(out, "%s\n", gatewayLines.String())
		fmt.Fprintf(out, "Connect with MCP Inspector (2.x):\n")
		fmt.Fprintf(out, "  npx @modelcontextprotocol/inspector --transport http --server-url %s\n", resourceURL)
		fmt.Fprintf(out, "  then Connect, and sign in as %s. Tools lists all four tools. Inspector asks for every scope the server lists\n", username)
		fmt.Fprintf(out, "  at its first sign-in; to see step-up instead, set its OAuth scope to notes:read: add_note then asks you to\n")
		fmt.Fprintf(out, "  sign in again for notes:write.\n")
		fmt.Fprintf(out, "  (If it cannot register itself, enter Client ID %s under Authentication.)\n\n", devClientID)
		fmt.Fprintf(out, "First tool call (signs in through your browser, prints the token's claims and the tool's result):\n")
		fmt.Fprintf(out, "  %s\n\n", firstCallCommand(resourceURL))
		dataFlag := devDataFlag(*data)
		fmt.Fprintf(out, "Next steps:\n")
		fmt.Fprintf(out, "  curl %s/.well-known/oauth-authorization-server\n", c.Issuer)
		fmt.Fprintf(out, "  curl -i %s   (the 401 challenge that starts discovery)\n", resourceURL)
		fmt.Fprintf(out, "  gatehouse audit tail%s   (what happened: sign-ins, tokens, refusals)\n", dataFlag)
		fmt.Fprintf(out, "  gatehouse client create%s --name my-agent --redirect-uri http://127.0.0.1/callback\n", dataFlag)
		fmt.Fprintf(out, "  gatehouse client create%s --name my-service --confidential --grant-type client_credentials\n", dataFlag)
		fmt.Fprintf(out, "    (tokens without a user: only for resources added with --accept-client-credentials; the demo accepts users only)\n")
		fmt.Fprintf(out, "Requests are logged below, one line each (standard error). Press Ctrl-C to stop.\n")
	})
}

// firstCallCommand is the command the banner offers for a first tool call
// of the demo MCP server at mcpURL: examples/oauth2client --call, with
// --mcp when the server is not at the client's default URL.
func firstCallCommand(mcpURL string) string {
	cmd := "go run github.com/gatehouse-mcp/gatehouse/examples/oauth2client@latest --call list_notes"
	if mcpURL != defaultDevMCPURL {
		cmd += " --mcp " + shellQuote(mcpURL)
	}
	return cmd
}

// defaultDevMCPURL is the demo MCP server's URL with the default flags,
// the default of examples/oauth2client's --mcp.
const defaultDevMCPURL = "http://127.0.0.1:8081/mcp"

// devDataFlag is the --data flag the banner's admin commands need to find
// this data directory: none for the default, which they find alone.
func devDataFlag(dir string) string {
	if filepath.Clean(dir) == filepath.Clean(defaultDataDir) {
		return ""
	}
	return " --data " + shellQuote(dir)
}

// shellQuote quotes s for a POSIX shell when it holds anything but
// characters that are safe unquoted.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./:=@+,") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// devPasswordFile is the file in the data directory that keeps the
// generated password of the demo user.
const devPasswordFile = "demo-password"

// checkDevUserName refuses --user NAME:PASSWORD, the old form: a password
// in a flag is readable by every local user in /proc/PID/cmdline and stays
// in shell history.
func checkDevUserName(name string) error {
	switch {
	case strings.Contains(name, ":"):
		return fmt.Errorf("--user takes only the user name, not NAME:PASSWORD (a password in a flag shows in the process list and shell history): "+
			"give the password with --password-file FILE or the environment variable %s, or neither for a generated one kept in the data directory", devPasswordEnv)
	case name == "":
		return errors.New("--user must name the demo user")
	}
	return nil
}

// devPassword returns the demo user's password and where it came from:
// the first line of file, else the environment variable devPasswordEnv
// (through lookup), else ("" source) the one kept in dir, generated on
// first start.
func devPassword(dir, file string, lookup func(string) (string, bool)) (pw, source string, err error) {
	if file != "" {
		pw, err := readPassword(file, nil)
		if err != nil {
			return "", "", fmt.Errorf("--password-file: %w", err)
		}
		return pw, "--password-file " + file, nil
	}
	if pw, ok := lookup(devPasswordEnv); ok && pw != "" {
		if err := checkPassword(pw); err != nil {
			return "", "", fmt.Errorf("%s: %w", devPasswordEnv, err)
		}
		return pw, devPasswordEnv, nil
	}
	path := filepath.Join(dir, devPasswordFile)
	b, err := os.ReadFile(path)
	if err == nil {
		pw = strings.TrimSpace(string(b))
	}
	switch {
	case err == nil && pw != "":
	case err == nil || errors.Is(err, fs.ErrNotExist):
		// Missing, or empty (a crash while writing it, or a touch):
		// an empty password would be accepted, so make a new one.
		raw := make([]byte, 12)
		if _, err := rand.Read(raw); err != nil {
			return "", "", err
		}
		pw = base64.RawURLEncoding.EncodeToString(raw)
		if err := os.WriteFile(path, []byte(pw+"\n"), 0o600); err != nil {
			return "", "", err
		}
	default:
		return "", "", err
	}
	return pw, "", nil
}

// upsertUser creates the user or sets their password. An unchanged
// password is left as it is (one hash computed, to verify it, not two).
func upsertUser(ctx context.Context, st storage.Store, name, pw string) error {
	now := time.Now()
	u, err := st.GetUserByName(ctx, name)
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		return err
	}
	if err == nil {
		if ok, _ := password.Verify(pw, u.PasswordHash); ok {
			return nil
		}
	}
	hash, herr := password.Hash(pw, rand.Reader)
	if herr != nil {
		return herr
	}
	if err == nil {
		return setPassword(ctx, st, u.ID, hash, now)
	}
	id, err := randomID()
	if err != nil {
		return err
	}
	return st.CreateUser(ctx, storage.User{ID: id, Username: name, PasswordHash: hash, CreatedAt: now, UpdatedAt: now})
}

// setPassword stores a new password hash for the user and ends everything
// they held (storage.ResetUser): whoever knew the old password loses their
// sessions and tokens too.
func setPassword(ctx context.Context, st storage.Store, userID, hash string, now time.Time) error {
	_, err := storage.SetPassword(ctx, st, userID, hash, now)
	return err
}

// demoToolAudit records the demo MCP server's tool calls in the audit log
// (demo.tool_call, as the gateway records gateway.tool_call), so that the
// account page lists a client's last tool calls in dev too.
func demoToolAudit(st storage.Audit, log *slog.Logger) func(context.Context, demo.ToolCall) {
	return func(ctx context.Context, c demo.ToolCall) {
		e := storage.AuditEvent{Time: c.Time.UTC(), Type: as.AuditDemoToolCall, UserID: c.Subject, ClientID: c.ClientID, Resource: c.Resource, Outcome: c.Outcome, Detail: "tool=" + strconv.Quote(c.Tool)}
		if err := st.AppendAudit(ctx, e); err != nil {
			log.ErrorContext(ctx, "audit demo tool call", "cause", err)
		}
	}
}

// devScopes are the demo resource's scopes and the tools they unlock.
var devScopes = []storage.Scope{
	{Name: "notes:read", Description: "Read your notes", Tools: []string{"list_notes", "read_note"}},
	{Name: "notes:write", Description: "Create and delete your notes", Tools: []string{"add_note", "delete_note"}},
}

// devToolScopes returns tool → scopes from devScopes, so the demo MCP
// server enforces exactly what the resource registration advertises.
func devToolScopes() map[string][]string {
	m := map[string][]string{}
	for _, sc := range devScopes {
		for _, tool := range sc.Tools {
			m[tool] = append(m[tool], sc.Name)
		}
	}
	return m
}

// ensureDevResource registers the demo MCP server as the only demo
// resource, replacing one left from a run on another port, so a request
// without a resource parameter still finds exactly one.
func ensureDevResource(ctx context.Context, st storage.Store, url string) error {
	rs, err := st.ListResources(ctx)
	if err != nil {
		return err
	}
	for _, r := range rs {
		if r.Name == devResourceName && r.URL != url {
			if err := st.DeleteResource(ctx, r.URL); err != nil {
				return err
			}
		}
	}
	now := time.Now()
	return st.PutResource(ctx, storage.Resource{
		URL: url, Name: devResourceName, Scopes: devScopes,
		DefaultScopes: []string{"notes:read"}, CreatedAt: now, UpdatedAt: now,
	})
}

// devRedirectURIs are the demo client's redirect URIs (loopback: any
// port): a generic /callback, and MCP Inspector's OAuth callbacks.
var devRedirectURIs = []string{
	"http://127.0.0.1/callback", "http://localhost/callback",
	"http://localhost/oauth/callback", "http://localhost/oauth/callback/debug",
	"http://127.0.0.1/oauth/callback", "http://127.0.0.1/oauth/callback/debug",
}

// ensureDevClient registers the demo public client, adding the redirect
// URIs a data directory from an older version lacks.
func ensureDevClient(ctx context.Context, st storage.Store) error {
	cl, err := st.GetClient(ctx, devClientID)
	if err == nil {
		if !slices.ContainsFunc(devRedirectURIs, func(u string) bool { return !slices.Contains(cl.RedirectURIs, u) }) {
			return nil
		}
		_, err := st.UpdateClient(ctx, devClientID, func(c storage.Client) (storage.Client, error) {
			for _, u := range devRedirectURIs {
				if !slices.Contains(c.RedirectURIs, u) {
					c.RedirectURIs = append(c.RedirectURIs, u)
				}
			}
			c.UpdatedAt = time.Now()
			return c, nil
		})
		return err
	}
	if !errors.Is(err, storage.ErrNotFound) {
		return err
	}
	now := time.Now()
	return st.CreateClient(ctx, storage.Client{
		ID: devClientID, Name: "Gatehouse demo client",
		RedirectURIs:            slices.Clone(devRedirectURIs),
		GrantTypes:              []string{"authorization_code", "refresh_token"},
		ResponseTypes:           []string{"code"},
		TokenEndpointAuthMethod: "none", ApplicationType: "native",
		Origin: storage.OriginStatic, Metadata: "{}", CreatedAt: now, UpdatedAt: now,
	})
}

// randomID returns a random identifier for users and clients.
func randomID() (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// devPasskeys makes dev's passkeys work on a loopback IP listener: a
// browser refuses an IP address as the WebAuthn relying party ID, so the
// relying party is localhost, on the listener's port, and the pages
// offer passkeys when reached at http://localhost:<port> (SECOND-WAVE:
// dev offers passkeys on a localhost origin). Other listeners keep the
// defaults (the issuer's host and origin).
func devPasskeys(c *config.Config, host, port string) {
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		c.Passkeys.RPID = "localhost"
		c.Passkeys.Origins = []string{"http://" + net.JoinHostPort("localhost", port)}
	}
}
