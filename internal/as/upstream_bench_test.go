package as

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// BenchmarkUpstreamLogin measures one whole browser sign-in through an
// upstream OpenID provider (issue 14: "at most 5 ms of Gatehouse CPU per
// login beyond the upstream's own time"), against the password sign-in of
// the same flow as the baseline:
//
//	go test -run '^$' -bench BenchmarkUpstreamLogin -benchtime 300x -count 6 ./internal/as | tee upstream.txt
//	benchstat -col /login upstream.txt
//
// Every login is a new browser (cookie jar) over HTTP on loopback, with
// prompt=consent so that each one shows and answers the consent page:
//
//   - login=password: GET /authorize (the login page), POST /login with
//     the password (the consent page), POST /consent (302 with the code),
//     POST /token (the code for an access and a refresh token).
//   - login=upstream: GET /authorize, POST /login/oidc/acme ("Continue
//     with Acme SSO": 303 to the provider), the provider's /authorize
//     (302 back with its code), GET /login/oidc/acme/callback (Gatehouse
//     exchanges the code at the provider's /token, verifies the ES256 ID
//     token, finds the user: the consent page), POST /consent, POST
//     /token. The person was provisioned before the timer starts.
//   - login=upstream-first: the same, but the provider names a new
//     subject every time, so each login provisions a user.
//
// The password is hashed with the tests' cheap argon2id parameters (64
// KiB, one pass), so the baseline is the flow without the cost of the
// credential check; a production hash adds tens of milliseconds to it.
//
// Separating Gatehouse's CPU from the fake provider's: the Gatehouse
// server runs in a child process (this test binary again, running
// TestUpstreamBenchServer), and the browser and the fake provider
// (internal/as upstream_test.go) run here. The child reports its own
// getrusage(RUSAGE_SELF) user+system time when asked on its stdin, before
// and after the timed loop: gatehouse-cpu-ns/op is everything the server
// process spends per login, its net/http and sockets, SQLite,
// signing and verification, audit writes and garbage collection included,
// and nothing of the provider or the browser. client-idp-cpu-ns/op is
// this process's (browser and provider). ns/op is the wall time of the
// whole login, the provider's time included. All clocks are the tests'
// fixed clock (testEpoch): nothing expires during a run.
func BenchmarkUpstreamLogin(b *testing.B) {
	for _, login := range []string{"password", "upstream", "upstream-first"} {
		b.Run("login="+login, func(b *testing.B) {
			idp := newFakeIdP(b)
			idp.now = (&clock{t: testEpoch}).Now
			gh := startBenchServer(b, idp.URL)
			n := 0
			one := func() {
				if login == "upstream-first" {
					n++
					idp.set(func(f *fakeIdP) { f.subject = "first-" + strconv.Itoa(n) })
				}
				gh.login(b, login != "password")
			}
			// Warm up: the provider's metadata and keys, prepared
			// statements, templates, connections.
			for range 20 {
				one()
			}
			g0, p0 := gh.cpu(b), procCPU()
			for b.Loop() {
				one()
			}
			b.ReportMetric(float64(gh.cpu(b)-g0)/float64(b.N), "gatehouse-cpu-ns/op")
			b.ReportMetric(float64(procCPU()-p0)/float64(b.N), "client-idp-cpu-ns/op")
		})
	}
}

// benchServerEnv names the fake provider's URL for the child process of
// BenchmarkUpstreamLogin.
const benchServerEnv = "GATEHOUSE_BENCH_UPSTREAM_IDP"

// TestUpstreamBenchServer is the Gatehouse server of
// BenchmarkUpstreamLogin, in a child process: a test server with the
// provider "acme" at the URL in $GATEHOUSE_BENCH_UPSTREAM_IDP. It prints
// its issuer, then answers each line on its stdin with its own CPU time,
// until stdin closes.
func TestUpstreamBenchServer(t *testing.T) {
	idp := os.Getenv(benchServerEnv)
	if idp == "" {
		t.Skip("the server process of BenchmarkUpstreamLogin: runs only in the child process the benchmark starts")
	}
	ts := newTestServer(t, func(o *Options) { o.Upstreams = []Upstream{acmeUpstream(idp)} })
	fmt.Printf("gatehouse-bench-issuer %s\n", ts.URL)
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		fmt.Printf("gatehouse-bench-cpu %d\n", procCPU())
	}
}

// procCPU is this process's user+system CPU time so far.
func procCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// benchServer is the child process running TestUpstreamBenchServer.
type benchServer struct {
	URL string // its issuer
	in  io.WriteCloser
	out *bufio.Scanner
}

// startBenchServer starts the Gatehouse server process, its provider at
// idpURL, and stops it when b ends.
func startBenchServer(b *testing.B, idpURL string) *benchServer {
	b.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestUpstreamBenchServer$", "-test.count=1", "-test.timeout=0")
	cmd.Env = append(os.Environ(), benchServerEnv+"="+idpURL)
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	must(b, err)
	out, err := cmd.StdoutPipe()
	must(b, err)
	must(b, cmd.Start())
	s := &benchServer{in: in, out: bufio.NewScanner(out)}
	b.Cleanup(func() {
		in.Close() // the child's test returns, its cleanups run, it exits
		done := make(chan struct{})
		go func() { io.Copy(io.Discard, out); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
		}
		cmd.Wait()
	})
	s.URL = s.expect(b, "gatehouse-bench-issuer ")
	return s
}

// expect reads the child's output up to the line starting with prefix
// and returns the rest of that line.
func (s *benchServer) expect(b *testing.B, prefix string) string {
	b.Helper()
	var other []string
	for s.out.Scan() {
		if rest, ok := strings.CutPrefix(s.out.Text(), prefix); ok {
			return rest
		}
		other = append(other, s.out.Text())
	}
	b.Fatalf("the Gatehouse server process ended before printing %q:\n%s", prefix, strings.Join(other, "\n"))
	return ""
}

// cpu is the Gatehouse server process's CPU time so far.
func (s *benchServer) cpu(b *testing.B) time.Duration {
	b.Helper()
	if _, err := io.WriteString(s.in, "cpu\n"); err != nil {
		b.Fatal(err)
	}
	ns, err := strconv.ParseInt(s.expect(b, "gatehouse-bench-cpu "), 10, 64)
	must(b, err)
	return time.Duration(ns)
}

// login runs one sign-in in a new browser, with the password of alice or
// at the provider "acme", through consent to the token response.
func (s *benchServer) login(b *testing.B, upstream bool) {
	br := newBrowser(b)
	a := defaultAuth()
	a.prompt = "consent"
	p := br.get(a.url(s.URL))
	if upstream {
		action, v := p.form(b, "oidc-acme")
		toIdP := location(b, br.post(s.URL+action, v))
		p = br.get(location(b, br.get(toIdP.String())).String())
	} else {
		action, v := p.form(b, "login-form")
		v.Set("username", testUser)
		v.Set("password", testPassword)
		p = br.post(s.URL+action, v)
	}
	action, v := p.form(b, "consent-form")
	v.Set("decision", "allow")
	code := location(b, br.post(s.URL+action, v)).Query().Get("code")
	p = br.post(s.URL+"/token", exchange(code))
	var tr tokenResponse
	if p.status != http.StatusOK || json.Unmarshal([]byte(p.body), &tr) != nil || tr.AccessToken == "" || tr.RefreshToken == "" {
		b.Fatalf("token response: %d %s", p.status, p.body)
	}
}
