//go:build linux

package readme

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"html"
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

	"github.com/gatehouse-mcp/gatehouse/internal/ptytest"
)

// The module path the README's commands install and run from.
const (
	installLine    = "go install github.com/gatehouse-mcp/gatehouse/cmd/gatehouse@latest"
	firstCallGoRun = "go run github.com/gatehouse-mcp/gatehouse/examples/oauth2client@latest"
)

// TestReadmeAsAScript (issue 12, "Must show"): a fresh directory, the
// README's install line, `gatehouse dev`, the first tool call (this test
// is the browser: it follows the printed URL, signs in and allows),
// `gatehouse serve` with the README's SQLite configuration, `config check`
// on that file with five mistakes (five problems, each with its line), and
// `user add` at a terminal (a pty: prompted twice, nothing echoed) and from
// a pipe.
// Where the README says `@latest` the test builds from this module instead,
// offline (GOPROXY=off): it tests this checkout, not the last release.
func TestReadmeAsAScript(t *testing.T) {
	top := t // the processes that outlive a step end with the test
	root := moduleRoot(t)
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	doc := string(readme)
	work := t.TempDir()
	gobin := filepath.Join(work, "bin")
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()

	t.Run("install", func(t *testing.T) {
		block := codeBlock(t, doc, "## Install", "sh")
		if strings.TrimSpace(block) != installLine {
			t.Fatalf("README's install block = %q, want %q", block, installLine)
		}
		// The same packages from this checkout: the gatehouse binary
		// and the example client the first tool call runs.
		cmd := exec.CommandContext(ctx, "go", "install", "./cmd/gatehouse", "./examples/oauth2client")
		cmd.Dir = root
		cmd.Env = append(childEnv(), "GOBIN="+gobin, "GOPROXY=off", "GOFLAGS="+strings.TrimSpace(os.Getenv("GOFLAGS")+" -mod=readonly"))
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("GOBIN=%s go install ./cmd/gatehouse ./examples/oauth2client: %v\n%s", gobin, err, out)
		}
	})
	gatehouse := filepath.Join(gobin, "gatehouse")
	if _, err := os.Stat(gatehouse); err != nil {
		t.Fatalf("no gatehouse binary after the install step: %v", err)
	}

	var dev *proc
	var mcpURL, callCommand string
	t.Run("gatehouse dev", func(t *testing.T) {
		if block := codeBlock(t, doc, "## The two commands", "sh"); strings.TrimSpace(block) != "gatehouse dev" {
			t.Fatalf("README's dev block = %q, want %q", block, "gatehouse dev")
		}
		// The README's command with a data directory and ports of its
		// own, so that it runs beside anything else on the machine.
		listen, mcpListen := freeAddr(t), freeAddr(t)
		dev = start(top, work, gatehouse, "dev", "--data", filepath.Join(work, "dev-data"), "--listen", listen, "--mcp-listen", mcpListen)
		dev.waitLine(ctx, t, regexp.MustCompile(`Press Ctrl-C`))
		mcpURL = "http://" + mcpListen + "/mcp"
		m := dev.waitLine(ctx, t, regexp.MustCompile(`^  (`+regexp.QuoteMeta(firstCallGoRun)+` .*)$`))
		callCommand = m[1]
		if want := firstCallGoRun + " --call list_notes --mcp " + mcpURL; callCommand != want {
			t.Errorf("banner's first tool call = %q, want %q", callCommand, want)
		}
		if m := dev.waitLine(ctx, t, regexp.MustCompile(`^  (gatehouse audit tail.*?)   `)); !strings.Contains(m[1], "--data "+filepath.Join(work, "dev-data")) {
			t.Errorf("banner's %q lacks the --data of this run", m[1])
		}
	})
	if dev == nil || callCommand == "" {
		t.Fatal("gatehouse dev did not start")
	}

	t.Run("first tool call", func(t *testing.T) {
		block := strings.TrimSpace(codeBlock(t, doc, "## Your first tool call", "sh"))
		// The README's command is the banner's for the default URL.
		if want := strings.TrimSuffix(callCommand, " --mcp "+mcpURL); block != want {
			t.Fatalf("README's first tool call = %q, want the banner's %q", block, want)
		}
		// The banner's command, with the example built above for `go run
		// …@latest`, and no desktop browser: this test is the browser.
		args := shellFields(t, strings.TrimPrefix(callCommand, firstCallGoRun))
		call := callTool(ctx, t, filepath.Join(gobin, "oauth2client"), work, dev, append(args, "--open=false")...)
		out := call
		t.Logf("the first tool call printed:\n%s", out)
		for _, want := range []string{
			`"aud": "` + mcpURL + `"`,
			`"scope": "notes:read"`,
			`"sub": "`,
			"Result of list_notes:\n{\"notes\":",
		} {
			if !strings.Contains(out, want) {
				t.Errorf("the first tool call's output lacks %q:\n%s", want, out)
			}
		}
		if regexp.MustCompile(`eyJ[A-Za-z0-9_-]{10,}\.`).MatchString(out) {
			t.Errorf("the first tool call printed a JWT:\n%s", out)
		}
		// The README's other examples: arguments, and a tool that needs
		// a larger scope (a second sign-in).
		add := readmeCommand(t, doc, "## Your first tool call", "--call add_note")
		args = append(shellFields(t, strings.TrimPrefix(add, firstCallGoRun)), "--mcp", mcpURL, "--open=false")
		out = callTool(ctx, t, filepath.Join(gobin, "oauth2client"), work, dev, args...)
		// The SDK asks for the union of the scopes, in either order.
		if !regexp.MustCompile(`"scope": "(notes:read notes:write|notes:write notes:read)"`).MatchString(out) {
			t.Errorf("%s: the output shows no token with notes:read and notes:write:\n%s", add, out)
		}
		for _, want := range []string{"Result of add_note:\n{", `"title":"first note"`} {
			if !strings.Contains(out, want) {
				t.Errorf("%s: the output lacks %q:\n%s", add, want, out)
			}
		}
		// --client-id: the demo client instead of a registration.
		out = callTool(ctx, t, filepath.Join(gobin, "oauth2client"), work, dev, "--call", "list_notes", "--mcp", mcpURL, "--client-id", "gatehouse-demo", "--open=false")
		if want := `"client_id": "gatehouse-demo"`; !strings.Contains(out, want) {
			t.Errorf("--client-id gatehouse-demo: the output lacks %q:\n%s", want, out)
		}
		// gatehouse dev logged the tool call, one line per request.
		if !strings.Contains(dev.output(), "msg=request server=demo-mcp method=POST path=/mcp status=200") {
			t.Errorf("gatehouse dev logged no line for the tool call:\n%s", dev.output())
		}
	})
	if err := dev.stop(ctx); err != nil {
		t.Errorf("gatehouse dev did not stop cleanly: %v\n%s", err, dev.output())
	}

	// The README's paths, moved into this test's directory.
	moved := strings.NewReplacer("/etc/gatehouse", filepath.Join(work, "etc"), "/var/lib/gatehouse", filepath.Join(work, "var"))
	var configFile string
	t.Run("gatehouse serve with SQLite", func(t *testing.T) {
		script := codeBlock(t, doc, "## `gatehouse serve`", "sh")
		config := codeBlock(t, doc, "## `gatehouse serve`", "yaml")
		first, _, _ := strings.Cut(config, "\n")
		configFile = moved.Replace(strings.TrimSpace(strings.TrimPrefix(first, "#")))
		if err := os.MkdirAll(filepath.Dir(configFile), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(configFile, []byte(moved.Replace(config)), 0o600); err != nil {
			t.Fatal(err)
		}
		// Ports of this test's own, through the documented environment
		// variables, which override the file.
		listen, admin := freeAddr(t), freeAddr(t)
		env := []string{"GATEHOUSE_LISTEN=" + listen, "GATEHOUSE_ADMIN_LISTEN=" + admin}
		var serve *proc
		for _, line := range strings.Split(strings.TrimSpace(script), "\n") {
			args := strings.Fields(moved.Replace(line))
			switch {
			case args[0] == "mkdir":
				run(ctx, t, work, nil, "mkdir", args[1:]...)
			case args[0] == "gatehouse" && len(args) > 1 && args[1] == "serve":
				serve = start(t, work, gatehouse, args[1:]...)
				serve.cmd.Env = append(serve.cmd.Env, env...)
			case args[0] == "gatehouse":
				run(ctx, t, work, env, gatehouse, args[1:]...)
			default:
				t.Fatalf("README's serve block has a line this test cannot play: %q", line)
			}
		}
		if serve == nil {
			t.Fatal("README's serve block does not run gatehouse serve")
		}
		serve.waitLine(ctx, t, regexp.MustCompile(`^gatehouse: serving issuer https://auth\.example\.com on `))
		var meta struct {
			Issuer string `json:"issuer"`
		}
		getJSON(ctx, t, "http://"+listen+"/.well-known/oauth-authorization-server", &meta)
		if meta.Issuer != "https://auth.example.com" {
			t.Errorf("serve's metadata issuer = %q, want %q", meta.Issuer, "https://auth.example.com")
		}
		if _, err := os.Stat(filepath.Join(work, "var", "gatehouse.db")); err != nil {
			t.Errorf("serve did not create the documented SQLite file: %v", err)
		}
		if err := serve.stop(ctx); err != nil {
			t.Errorf("gatehouse serve did not stop cleanly: %v\n%s", err, serve.output())
		}
	})

	t.Run("config check", func(t *testing.T) {
		if configFile == "" {
			t.Fatal("no configuration: the serve step failed")
		}
		// The documented configuration checks clean...
		out := run(ctx, t, work, nil, gatehouse, "config", "check", "--config", configFile)
		if !strings.Contains(out, "# configuration OK") {
			t.Errorf("config check of the README's configuration:\n%s", out)
		}
		// ...and the same file with five mistakes gets five problems,
		// each with its line, then their count and exit status 1.
		good, err := os.ReadFile(configFile)
		if err != nil {
			t.Fatal(err)
		}
		bad := string(good) + `tokens:
  access_token_ttl: 10
registration:
  idel_ttl: 720h
log:
  level: loud
audit:
  retention: forever
`
		bad = strings.Replace(bad, "\nlisten: ", "\nlisten: 127.0.0.1:notaport\n# listen: ", 1)
		badFile := filepath.Join(work, "bad.yaml")
		if err := os.WriteFile(badFile, []byte(bad), 0o600); err != nil {
			t.Fatal(err)
		}
		cmd := exec.CommandContext(ctx, gatehouse, "config", "check", "--config", badFile)
		cmd.Dir, cmd.Env = work, childEnv()
		var stdout, stderr strings.Builder
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err = cmd.Run()
		if code := cmd.ProcessState.ExitCode(); code != 1 || !strings.Contains(stderr.String(), "problems") {
			t.Errorf("config check of a file with mistakes = %v (exit %d), stderr %q; want exit 1 and the count", err, code, stderr.String())
		}
		problem := regexp.MustCompile(`^` + regexp.QuoteMeta(badFile) + `:\d+:\d+: \S`)
		var problems []string
		for _, line := range strings.Split(stdout.String(), "\n") {
			if problem.MatchString(line) {
				problems = append(problems, line)
			}
		}
		want := []string{"listen", "tokens.access_token_ttl", "registration.idel_ttl", "log.level", "audit.retention"}
		for _, w := range want {
			found := false
			for _, p := range problems {
				found = found || strings.Contains(p, w)
			}
			if !found {
				t.Errorf("config check does not report %s; its problems:\n%s", w, strings.Join(problems, "\n"))
			}
		}
		if len(problems) != 5 || !strings.Contains(stderr.String(), "5 problems") {
			t.Errorf("config check printed %d problems and said %q, want 5 and %q:\n%s", len(problems), stderr.String(), "5 problems", stdout.String())
		}
	})
	t.Run("user add", func(t *testing.T) {
		if configFile == "" {
			t.Fatal("no configuration: the serve step failed")
		}
		// At a terminal: prompted twice, stating the rule, no echo.
		const pw = "readme-alice-password"
		cmd := exec.CommandContext(ctx, gatehouse, "user", "add", "alice", "--config", configFile)
		cmd.Dir, cmd.Env = work, childEnv()
		shown, err := ptytest.Run(t, cmd, []string{"New password for alice (at least 8 characters): ", "Repeat the password: "}, []string{pw + "\r", pw + "\r"})
		if err != nil || !strings.Contains(shown, "added user alice") {
			t.Fatalf("gatehouse user add alice at a terminal: %v; the terminal shows:\n%s", err, shown)
		}
		if strings.Contains(shown, pw) {
			t.Errorf("the terminal echoed the password:\n%s", shown)
		}
		// From a pipe, for scripts: one line, no prompt.
		cmd = exec.CommandContext(ctx, gatehouse, "user", "add", "bob", "--config", configFile)
		cmd.Dir, cmd.Env = work, childEnv()
		cmd.Stdin = strings.NewReader("readme-bob-password\n")
		if out, err := cmd.CombinedOutput(); err != nil || strings.Contains(string(out), "password for") {
			t.Fatalf("gatehouse user add bob from a pipe: %v\n%s", err, out)
		}
		out := run(ctx, t, work, nil, gatehouse, "user", "list", "--config", configFile)
		if !strings.Contains(out, "alice") || !strings.Contains(out, "bob") {
			t.Errorf("gatehouse user list after user add alice and bob:\n%s", out)
		}
	})
}

// callTool runs the example client with args and is its browser for every
// sign-in URL it prints (one, or more when a tool needs a larger scope);
// it returns the client's output once it exited successfully.
func callTool(ctx context.Context, t *testing.T, bin, dir string, dev *proc, args ...string) string {
	t.Helper()
	call := start(t, dir, bin, args...)
	urlRE := regexp.MustCompile(`^  (http://\S+/authorize\?\S+)$`)
	for i := 0; ; i++ {
		m := call.nthLine(ctx, t, urlRE, i)
		if m == nil {
			break
		}
		if err := signIn(ctx, m[1], "demo", devPassword(t, dev)); err != nil {
			t.Fatalf("signing in at %s: %v\n--- client:\n%s\n--- gatehouse dev:\n%s", m[1], err, call.output(), dev.output())
		}
	}
	if err := call.wait(ctx); err != nil {
		t.Fatalf("oauth2client %s: %v\n%s", strings.Join(args, " "), err, call.output())
	}
	return call.output()
}

// readmeCommand returns the line of the section's sh-quoted text (inline
// code in the prose) that holds the examples/oauth2client command with
// flag: the README's `go run …@latest --call … --args '…'` example.
func readmeCommand(t *testing.T, doc, heading, flag string) string {
	t.Helper()
	i := strings.Index(doc, "\n"+heading+"\n")
	if i < 0 {
		t.Fatalf("README has no section %q", heading)
	}
	re := regexp.MustCompile("`(" + regexp.QuoteMeta(firstCallGoRun+" "+flag) + "[^`]*)`")
	m := re.FindStringSubmatch(doc[i:])
	if m == nil {
		t.Fatalf("README's section %q shows no `%s %s …`", heading, firstCallGoRun, flag)
	}
	return m[1]
}

// shellFields splits a command line as a POSIX shell does for the forms
// the README uses: words separated by spaces, '…' quoting literally.
func shellFields(t *testing.T, line string) []string {
	t.Helper()
	var words []string
	var word strings.Builder
	inWord, quoted := false, false
	for _, r := range line {
		switch {
		case quoted && r == '\'':
			quoted = false
		case quoted:
			word.WriteRune(r)
		case r == '\'':
			quoted, inWord = true, true
		case r == ' ' || r == '\t':
			if inWord {
				words = append(words, word.String())
				word.Reset()
				inWord = false
			}
		case r == '"' || r == '\\' || r == '$' || r == '`':
			t.Fatalf("shellFields(%q): %q outside single quotes is not supported", line, r)
		default:
			word.WriteRune(r)
			inWord = true
		}
	}
	if quoted {
		t.Fatalf("shellFields(%q): unterminated quote", line)
	}
	if inWord {
		words = append(words, word.String())
	}
	return words
}

// codeBlock returns the first fenced block of lang in the README's section
// that starts with the heading line.
func codeBlock(t *testing.T, doc, heading, lang string) string {
	t.Helper()
	i := strings.Index(doc, "\n"+heading+"\n")
	if i < 0 {
		t.Fatalf("README has no section %q", heading)
	}
	section := doc[i+1:]
	if j := strings.Index(section[len(heading):], "\n## "); j >= 0 {
		section = section[:len(heading)+j]
	}
	start := strings.Index(section, "\n```"+lang+"\n")
	if start < 0 {
		t.Fatalf("README's section %q has no ```%s block", heading, lang)
	}
	body := section[start+len("\n```"+lang+"\n"):]
	end := strings.Index(body, "\n```")
	if end < 0 {
		t.Fatalf("README's section %q: unterminated ```%s block", heading, lang)
	}
	return body[:end+1]
}

// moduleRoot is the directory of go.mod, above this package's directory.
func moduleRoot(t *testing.T) string {
	t.Helper()
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
			t.Fatal("no go.mod above the test's directory")
		}
		dir = parent
	}
}

// childEnv is this process's environment without GATEHOUSE_* variables, so
// the commands see only what the README and the test give them.
func childEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "GATEHOUSE_") {
			env = append(env, kv)
		}
	}
	return env
}

// freeAddr returns a loopback address whose port was free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// run runs a command to completion in dir and returns its output; a
// failure fails the test.
func run(ctx context.Context, t *testing.T, dir string, env []string, name string, args ...string) string {
	t.Helper()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir, cmd.Env = dir, append(childEnv(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", filepath.Base(name), strings.Join(args, " "), err, out)
	}
	return string(out)
}

// proc is a running command whose output (standard output and error) is
// collected line by line.
type proc struct {
	cmd   *exec.Cmd
	mu    sync.Mutex
	lines []string
	grew  chan struct{} // closed and replaced when a line arrives
	done  chan error    // the command's exit, once
	err   error
	ended bool
}

// start prepares name to run in dir; it is killed when t ends if still
// running. It starts at its first waitLine, so that the caller can still
// add to its environment.
func start(t *testing.T, dir, name string, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir, cmd.Env = dir, childEnv()
	p := &proc{cmd: cmd, grew: make(chan struct{}), done: make(chan error, 1)}
	t.Cleanup(func() {
		if cmd.Process != nil && !p.exited() {
			cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

// launch starts the command on first use.
func (p *proc) launch(t *testing.T) {
	t.Helper()
	if p.cmd.Process != nil {
		return
	}
	pr, pw := io.Pipe()
	p.cmd.Stdout, p.cmd.Stderr = pw, pw
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", p.cmd.Path, err)
	}
	go func() {
		s := bufio.NewScanner(pr)
		s.Buffer(make([]byte, 64<<10), 1<<20)
		for s.Scan() {
			p.mu.Lock()
			p.lines = append(p.lines, s.Text())
			close(p.grew)
			p.grew = make(chan struct{})
			p.mu.Unlock()
		}
	}()
	go func() {
		err := p.cmd.Wait()
		pw.Close()
		p.mu.Lock()
		p.ended, p.err = true, err
		close(p.grew)
		p.grew = make(chan struct{})
		p.mu.Unlock()
		p.done <- err
		close(p.done)
	}()
}

func (p *proc) exited() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.ended
}

// output is everything the command printed so far.
func (p *proc) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.lines, "\n")
}

// waitLine waits for a line matching re and returns its submatches; the
// command exiting first, or ctx ending, fails the test.
func (p *proc) waitLine(ctx context.Context, t *testing.T, re *regexp.Regexp) []string {
	t.Helper()
	m := p.nthLine(ctx, t, re, 0)
	if m == nil {
		t.Fatalf("%s exited (%v) before printing a line matching %q:\n%s", filepath.Base(p.cmd.Path), p.cmd.ProcessState, re, p.output())
	}
	return m
}

// nthLine waits for the (n+1)th line matching re and returns its
// submatches, or nil if the command exits first; ctx ending fails the test.
func (p *proc) nthLine(ctx context.Context, t *testing.T, re *regexp.Regexp, n int) []string {
	t.Helper()
	p.launch(t)
	for {
		p.mu.Lock()
		seen := 0
		for _, l := range p.lines {
			if m := re.FindStringSubmatch(l); m != nil {
				if seen == n {
					p.mu.Unlock()
					return m
				}
				seen++
			}
		}
		grew, ended := p.grew, p.ended
		p.mu.Unlock()
		if ended {
			return nil
		}
		select {
		case <-grew:
		case <-ctx.Done():
			t.Fatalf("%s printed no line matching %q: %v\n%s", filepath.Base(p.cmd.Path), re, ctx.Err(), p.output())
		}
	}
}

// wait waits for the command to exit and returns its error.
func (p *proc) wait(ctx context.Context) error {
	select {
	case err := <-p.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// stop interrupts the command, as Ctrl-C does, and waits for it to exit.
func (p *proc) stop(ctx context.Context) error {
	if p.cmd.Process == nil || p.exited() {
		return fmt.Errorf("%s is not running", filepath.Base(p.cmd.Path))
	}
	if err := p.cmd.Process.Signal(syscall.SIGINT); err != nil {
		return err
	}
	return p.wait(ctx)
}

// devPassword is the demo user's password as the dev banner prints it.
func devPassword(t *testing.T, dev *proc) string {
	t.Helper()
	m := regexp.MustCompile(`(?m)^  Demo user:\s+demo / (\S+)`).FindStringSubmatch(dev.output())
	if m == nil {
		t.Fatalf("the dev banner shows no generated password:\n%s", dev.output())
	}
	return m[1]
}

// httpClient talks to loopback only: no proxy, and redirects are followed
// by hand.
func httpClient(jar http.CookieJar) *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy = nil
	return &http.Client{Transport: tr, Jar: jar, Timeout: 30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

func getJSON(ctx context.Context, t *testing.T, u string, v any) {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	resp, err := httpClient(nil).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s = %d", u, resp.StatusCode)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
}

var (
	hiddenInputRE = regexp.MustCompile(`<input type="hidden" name="([a-z_]+)" value="([^"]*)">`)
	formActionRE  = regexp.MustCompile(`<form id="(login-form|consent-form)" method="post" action="([^"]*)"`)
)

// signIn is the browser: it opens authURL, signs in, allows, and follows
// the redirect to the client's loopback listener, whose page it reads.
func signIn(ctx context.Context, authURL, user, password string) error {
	jar, _ := cookiejar.New(nil)
	c := httpClient(jar)
	origin, err := url.Parse(authURL)
	if err != nil {
		return err
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, authURL, nil)
	resp, err := c.Do(req)
	for range 8 {
		if err != nil {
			return err
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if loc := resp.Header.Get("Location"); loc != "" {
			next, perr := resp.Request.URL.Parse(loc)
			if perr != nil {
				return perr
			}
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, next.String(), nil)
			resp, err = c.Do(req)
			continue
		}
		if resp.Request.URL.Host != origin.Host {
			// The client's redirect listener answered: the flow is done.
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("the client's redirect listener answered %d: %s", resp.StatusCode, body)
			}
			return nil
		}
		m := formActionRE.FindStringSubmatch(string(body))
		if m == nil {
			return fmt.Errorf("unexpected page (status %d):\n%s", resp.StatusCode, body)
		}
		form := url.Values{}
		for _, h := range hiddenInputRE.FindAllStringSubmatch(string(body), -1) {
			form.Set(h[1], html.UnescapeString(h[2]))
		}
		if m[1] == "login-form" {
			form.Set("username", user)
			form.Set("password", password)
		} else {
			form.Set("decision", "allow")
		}
		action, perr := origin.Parse(html.UnescapeString(m[2]))
		if perr != nil {
			return perr
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, action.String(), strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		resp, err = c.Do(req)
	}
	return fmt.Errorf("no redirect to the client after 8 steps")
}
