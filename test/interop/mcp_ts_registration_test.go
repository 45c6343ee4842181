package interop

import (
	"bufio"
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// regStep is one step mcp_ts_register.mjs reports.
type regStep struct {
	Name         string `json:"name"`
	OK           bool   `json:"ok"`
	Error        string `json:"error"`
	Registration *struct {
		ClientID                string   `json:"client_id"`
		Issuer                  string   `json:"issuer"`
		TokenEndpointAuthMethod string   `json:"token_endpoint_auth_method"`
		HasSecret               bool     `json:"has_secret"`
		RedirectURIs            []string `json:"redirect_uris"`
	} `json:"registration"`
	AuthorizeClientID string `json:"authorizeClientId"`
	Resource          string `json:"resource"`
	Method            string `json:"method"`
	Consent           *struct {
		App               string   `json:"app"`
		ClientID          string   `json:"clientId"`
		Publisher         string   `json:"publisher"`
		PublisherVerified bool     `json:"publisherVerified"`
		Website           string   `json:"website"`
		Warnings          []string `json:"warnings"`
	} `json:"consent"`
	Raw json.RawMessage `json:"-"`
}

// TestMCPTypeScriptRegistration runs the MCP TypeScript SDK client
// (@modelcontextprotocol/sdk, pinned in test/interop/package.json) headless
// with no pre-registered client, so that it registers itself:
//
//   - dcr: through RFC 7591 dynamic registration at `gatehouse dev`'s
//     /register, twice with the same metadata (the first connection is
//     abandoned before sign-in, the second completes the code flow,
//     tools/list and tools/call); `gatehouse client list` then shows
//     exactly one dcr client, the one both registrations returned.
//   - cimd: through a client ID metadata document served over https by
//     the test; the authorization server fetches it, the consent page
//     names its domain as the verified publisher, and the SDK completes
//     the code flow with the document URL as client_id.
func TestMCPTypeScriptRegistration(t *testing.T) {
	node := nodeBin(t)
	dir := interopDir(t)
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "@modelcontextprotocol", "sdk", "package.json")); err != nil {
		skipOrFatal(t, "npm package @modelcontextprotocol/sdk is not installed in %s: run `npm ci --prefix %s --no-audit --no-fund` (or scripts/test.sh)", dir, dir)
	}
	t.Run("dcr", func(t *testing.T) { testTSRegistrationDCR(t, node, dir) })
	t.Run("cimd", func(t *testing.T) { testTSRegistrationCIMD(t, node, dir) })
}

func testTSRegistrationDCR(t *testing.T, node, dir string) {
	d := startMCPDev(t, "carol", "carol-interop-pw")
	var meta struct {
		RegistrationEndpoint string `json:"registration_endpoint"`
	}
	resp, err := noProxyClient().Get(d.Issuer + "/.well-known/oauth-authorization-server")
	if err != nil {
		t.Fatal(err)
	}
	json.NewDecoder(resp.Body).Decode(&meta)
	resp.Body.Close()
	if meta.RegistrationEndpoint != d.Issuer+"/register" {
		t.Fatalf("gatehouse dev advertises registration_endpoint %q, want %s/register", meta.RegistrationEndpoint, d.Issuer)
	}

	const redirectURI = "http://127.0.0.1:53685/callback"
	steps := runTSRegister(t, node, dir, d.Output, "dcr", d.MCPURL, d.Username, d.Password, redirectURI)
	requireSteps(t, steps, "first registration", "second registration and authorization", "same client id", "tools/list", "tools/call list_notes")
	if t.Failed() {
		return
	}
	first, second := steps["first registration"], steps["second registration and authorization"]
	id := first.Registration.ClientID
	reg := second.Registration
	switch {
	case reg.Issuer != d.Issuer:
		t.Errorf("saved client information has issuer %q, want %s (the SDK stamps it)", reg.Issuer, d.Issuer)
	case reg.TokenEndpointAuthMethod != "none" || reg.HasSecret:
		t.Errorf("registration: token_endpoint_auth_method %q, secret %v; want a public client (none, no secret)", reg.TokenEndpointAuthMethod, reg.HasSecret)
	case !slices.Equal(reg.RedirectURIs, []string{redirectURI}):
		t.Errorf("registered redirect_uris %v, want [%s]", reg.RedirectURIs, redirectURI)
	}
	if second.AuthorizeClientID != id || second.Resource != d.MCPURL || second.Method != "S256" {
		t.Errorf("authorization request: client_id %q resource %q method %q; want %s, %s, S256", second.AuthorizeClientID, second.Resource, second.Method, id, d.MCPURL)
	}
	if c := second.Consent; c == nil || c.Publisher != "" || !slices.ContainsFunc(c.Warnings, func(w string) bool { return strings.Contains(w, "registered itself") }) {
		t.Errorf("consent page for a dynamically registered client: %+v; want no publisher and the self-registration warning", c)
	}

	// `gatehouse client list`: the two identical registrations left one
	// dcr client, which obtained tokens.
	rows := clientListRows(t, d.gatehouse)
	var dcr []map[string]string
	for _, r := range rows {
		if r["ORIGIN"] == "dcr" {
			dcr = append(dcr, r)
		}
	}
	if len(dcr) != 1 || dcr[0]["CLIENT ID"] != id {
		t.Fatalf("client list has dcr clients %v, want exactly %s\n%s", dcr, id, d.run(t, "client", "list"))
	}
	if dcr[0]["TOKENS"] == "0" || dcr[0]["AUTH"] != "none" {
		t.Errorf("client list row %v: want auth none and a token count above 0", dcr[0])
	}
	var show struct {
		Origin       string   `json:"origin"`
		RedirectURIs []string `json:"redirect_uris"`
		HasSecret    bool     `json:"has_secret"`
	}
	if err := json.Unmarshal([]byte(d.run(t, "client", "show", id)), &show); err != nil {
		t.Fatalf("client show %s: %v", id, err)
	}
	if show.Origin != "dcr" || show.HasSecret || !slices.Equal(show.RedirectURIs, []string{redirectURI}) {
		t.Errorf("client show %s: %+v", id, show)
	}
}

func testTSRegistrationCIMD(t *testing.T, node, dir string) {
	// The metadata document, on https at 127.0.0.1 with httptest's
	// certificate (valid for 127.0.0.1).
	const docPath = "/gatehouse-interop/client-metadata.json"
	var fetches atomic.Int32
	var doc []byte
	docSrv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != docPath {
			http.NotFound(w, r)
			return
		}
		fetches.Add(1)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "max-age=300")
		w.Write(doc)
	}))
	docSrv.StartTLS()
	t.Cleanup(docSrv.Close)
	docURL := docSrv.URL + docPath
	doc, _ = json.Marshal(map[string]any{
		"client_id":                  docURL,
		"client_name":                "Gatehouse interop (TypeScript SDK, CIMD)",
		"client_uri":                 docSrv.URL + "/gatehouse-interop/",
		"redirect_uris":              []string{"http://127.0.0.1/callback", "http://localhost/callback"},
		"token_endpoint_auth_method": "none",
		"grant_types":                []string{"authorization_code", "refresh_token"},
		"response_types":             []string{"code"},
	})
	docHost := docSrv.Listener.Addr().(*net.TCPAddr).IP.String()

	srv := startCIMDServer(t, "dave", "dave-interop-pw", docHost, docSrv.Certificate())
	var meta struct {
		CIMD bool `json:"client_id_metadata_document_supported"`
	}
	resp, err := noProxyClient().Get(srv.Issuer + "/.well-known/oauth-authorization-server")
	if err != nil {
		t.Fatal(err)
	}
	json.NewDecoder(resp.Body).Decode(&meta)
	resp.Body.Close()
	if !meta.CIMD {
		t.Fatalf("%s does not advertise client_id_metadata_document_supported", srv.Issuer)
	}

	// The port differs from the document's loopback redirect URIs: any
	// port must match (RFC 8252 §7.3).
	const redirectURI = "http://127.0.0.1:53686/callback"
	steps := runTSRegister(t, node, dir, srv.Output, "cimd", srv.MCPURL, srv.Username, srv.Password, redirectURI, docURL)
	requireSteps(t, steps, "cimd authorization", "tools/list", "tools/call list_notes")
	if t.Failed() {
		return
	}
	a := steps["cimd authorization"]
	if a.Registration == nil || a.Registration.ClientID != docURL || a.Registration.Issuer != srv.Issuer {
		t.Errorf("saved client information %+v; want client_id %s stamped with issuer %s", a.Registration, docURL, srv.Issuer)
	}
	if a.AuthorizeClientID != docURL || a.Resource != srv.MCPURL || a.Method != "S256" {
		t.Errorf("authorization request: client_id %q resource %q method %q; want %s, %s, S256", a.AuthorizeClientID, a.Resource, a.Method, docURL, srv.MCPURL)
	}
	switch c := a.Consent; {
	case c == nil:
		t.Errorf("no consent page was shown")
	case c.Publisher != docHost || !c.PublisherVerified:
		t.Errorf("consent page publisher %q (verified badge %v), want %s as the verified domain", c.Publisher, c.PublisherVerified, docHost)
	case c.App != "Gatehouse interop (TypeScript SDK, CIMD)" || c.ClientID != docURL:
		t.Errorf("consent page shows app %q, client id %q", c.App, c.ClientID)
	case c.Website != docSrv.URL+"/gatehouse-interop/":
		t.Errorf("consent page website %q, want the document's client_uri (same domain)", c.Website)
	case slices.ContainsFunc(c.Warnings, func(w string) bool { return strings.Contains(w, "registered itself") }):
		t.Errorf("consent page warns a CIMD client registered itself: %v", c.Warnings)
	}
	if n := fetches.Load(); n < 1 {
		t.Errorf("the authorization server never fetched %s", docURL)
	}
	rows := clientListRows(t, srv.g)
	i := slices.IndexFunc(rows, func(r map[string]string) bool { return r["CLIENT ID"] == docURL })
	if i < 0 || rows[i]["ORIGIN"] != "cimd" || rows[i]["TOKENS"] == "0" {
		t.Errorf("client list: want a cimd client %s with tokens\n%s", docURL, srv.g.run(t, "client", "list"))
	}
	if slices.ContainsFunc(rows, func(r map[string]string) bool { return r["ORIGIN"] == "dcr" }) {
		t.Errorf("the CIMD run registered a dcr client too\n%s", srv.g.run(t, "client", "list"))
	}
}

// runTSRegister runs mcp_ts_register.mjs and returns its steps by name.
func runTSRegister(t *testing.T, node, dir string, serverOutput func() string, args ...string) map[string]regStep {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, append([]string{filepath.Join(dir, "mcp_ts_register.mjs")}, args...)...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "NO_PROXY=127.0.0.1,localhost", "no_proxy=127.0.0.1,localhost")
	p := startProc(t, "mcp_ts_register.mjs "+args[0], cmd)
	m, err := p.waitLine(ctx, regexp.MustCompile(`^RESULT (.*)$`))
	if err != nil {
		t.Fatalf("TypeScript client: %v\n%s\n--- authorization server ---\n%s", err, p.output(), serverOutput())
	}
	var result struct {
		OK    bool              `json:"ok"`
		Steps []json.RawMessage `json:"steps"`
	}
	if err := json.Unmarshal([]byte(m[1]), &result); err != nil {
		t.Fatalf("RESULT line %q: %v", m[1], err)
	}
	steps := map[string]regStep{}
	for _, raw := range result.Steps {
		var s regStep
		json.Unmarshal(raw, &s)
		s.Raw = raw
		steps[s.Name] = s
		t.Logf("%s", raw)
	}
	if !result.OK {
		sc := bufio.NewScanner(strings.NewReader(p.output()))
		for sc.Scan() {
			if !strings.HasPrefix(sc.Text(), "STEP ") && !strings.HasPrefix(sc.Text(), "RESULT ") {
				t.Log(sc.Text())
			}
		}
		t.Errorf("the TypeScript client failed\n--- authorization server ---\n%s", serverOutput())
	}
	return steps
}

// requireSteps fails the test for each named step that did not run or
// did not pass.
func requireSteps(t *testing.T, steps map[string]regStep, names ...string) {
	t.Helper()
	for _, name := range names {
		s, ok := steps[name]
		switch {
		case !ok:
			t.Errorf("step %q did not run", name)
		case !s.OK:
			t.Errorf("step %q failed: %s", name, s.Raw)
		case name == "first registration" && (s.Registration == nil || s.Registration.ClientID == ""):
			t.Errorf("step %q saved no client id: %s", name, s.Raw)
		case name == "second registration and authorization" && s.Registration == nil:
			t.Errorf("step %q saved no client information: %s", name, s.Raw)
		}
	}
}

// clientListRows runs `gatehouse client list` and returns its rows as
// column name → cell. The columns are aligned (tabwriter), so each cell
// is cut at its header's offset.
func clientListRows(t *testing.T, g *gatehouse) []map[string]string {
	t.Helper()
	out := g.run(t, "client", "list")
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	header := lines[0]
	cols := []string{"CLIENT ID", "NAME", "ORIGIN", "AUTH", "CREATED", "LAST USED", "TOKENS"}
	offs := make([]int, len(cols))
	for i, c := range cols {
		if offs[i] = strings.Index(header, c); offs[i] < 0 || (i > 0 && offs[i] <= offs[i-1]) {
			t.Fatalf("client list header %q lacks column %q", header, c)
		}
	}
	var rows []map[string]string
	for _, l := range lines[1:] {
		r := map[string]string{}
		for i, c := range cols {
			end := len(l)
			if i+1 < len(cols) {
				end = min(offs[i+1], len(l))
			}
			if offs[i] < end {
				r[c] = strings.TrimSpace(l[offs[i]:end])
			}
		}
		rows = append(rows, r)
	}
	return rows
}

// ---------------------------------------------------------------------------
// The authorization server for the CIMD run.

// cimdServer is an authorization server with the demo MCP server, allowed
// to fetch metadata documents from the test's loopback https server and
// trusting its certificate.
type cimdServer struct {
	g                  *gatehouse // its data directory, for `gatehouse client list`
	Issuer, MCPURL     string
	Username, Password string
	Output             func() string
}

// startCIMDServer starts `gatehouse dev` allowed to fetch metadata
// documents from host (--cimd-allow-host) and trusting the test
// certificate through SSL_CERT_FILE, which Go's system root pool reads on
// Linux (the fetcher verifies TLS against that pool).
func startCIMDServer(t *testing.T, username, pw, host string, cert *x509.Certificate) *cimdServer {
	t.Helper()
	g := newGatehouse(t)
	pemFile := filepath.Join(t.TempDir(), "cimd-test-ca.pem")
	if err := os.WriteFile(pemFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	d := startMCPDevEnv(t, g, username, pw, []string{"SSL_CERT_FILE=" + pemFile}, "--cimd-allow-host", host)
	return &cimdServer{g: g, Issuer: d.Issuer, MCPURL: d.MCPURL, Username: username, Password: pw, Output: d.Output}
}

// startMCPDevEnv is startMCPDev with extra environment for the process.
func startMCPDevEnv(t *testing.T, g *gatehouse, username, pw string, env []string, extra ...string) *devServer {
	t.Helper()
	var port, mcpPort int
	for {
		port, mcpPort = freePort(t), freePort(t)
		if port != mcpPort {
			break
		}
	}
	cmd := exec.Command(g.Bin, append([]string{"dev",
		"--data", g.Data,
		"--listen", fmt.Sprintf("127.0.0.1:%d", port),
		"--mcp-listen", fmt.Sprintf("127.0.0.1:%d", mcpPort),
		"--user", username}, extra...)...)
	cmd.Env = append(append(os.Environ(), "GATEHOUSE_DEV_PASSWORD="+pw), env...)
	p := startProc(t, "gatehouse dev", cmd)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	m, err := p.waitLine(ctx, regexp.MustCompile(`^\s*Issuer:\s+(\S+)\s*$`))
	if err != nil {
		t.Fatalf("gatehouse dev did not start: %v\n%s", err, p.output())
	}
	d := &devServer{gatehouse: g, Issuer: m[1], Username: username, Password: pw, proc: p}
	if m, err = p.waitLine(ctx, regexp.MustCompile(`^\s*Demo MCP server:\s+(\S+)`)); err != nil {
		t.Fatalf("gatehouse dev printed no demo MCP server: %v\n%s", err, p.output())
	}
	d.MCPURL = m[1]
	waitHTTPOK(t, ctx, strings.Replace(d.MCPURL, "/mcp", "/.well-known/oauth-protected-resource/mcp", 1), p.output)
	return d
}

// waitHTTPOK polls url until it answers 200.
func waitHTTPOK(t *testing.T, ctx context.Context, url string, output func() string) {
	t.Helper()
	for {
		resp, err := noProxyClient().Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s never answered 200: %v\n%s", url, err, output())
		case <-time.After(100 * time.Millisecond):
		}
	}
}
