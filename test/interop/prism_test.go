package interop

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// This file holds the harness of the OpenAPI route tests (issue 15): Prism
// (`prism mock`, @stoplight/prism-cli pinned in package.json) serving an
// OpenAPI document as the API behind the gateway, and the tests that show
// what the harness and Prism do on their own, without a gateway.
//
// Prism validates every request against the document. How it answers an
// invalid one depends on the operation (observed with prism 5.16.0, see
// testdata/openapi/README.md):
//   - the document defines a 400: that 400 and its example, with an
//     sl-violations header listing the violations;
//   - it defines a default response: a 422 with default's example and an
//     sl-violations header;
//   - neither: Prism's own 422, application/problem+json, the violations in
//     its "validation" array and no sl-violations header;
//   - no Authorization: Bearer for an OAuth2-secured operation: 401, made
//     from default (with sl-violations) as above, else Prism's own 401
//     problem+json;
//   - a path or method the document does not have: 404 or 405
//     application/problem+json.
//
// Prism's own log cannot tell these apart reliably: both its single-process
// and its -m (multiprocess) mode turn its pino JSON lines into human text
// (there is no JSON output), the text names the method and the path but not
// the query, and the lines of concurrent requests interleave. So the
// harness puts a recording reverse proxy in front of Prism: it sees the
// exact request-target each request carried and Prism's verdict in each
// answer (status, sl-violations, problem+json), one record per request.
// Prism's log is still kept, for failure output and for what Prism made of
// a path (it logs the path after resolving dot segments).

// prismViolation is one entry of Prism's sl-violations header or of the
// "validation" array of its problem+json answer.
type prismViolation struct {
	Location []string `json:"location"`
	Severity string   `json:"severity"`
	Code     any      `json:"code"` // a keyword ("type", "required") or a status (401)
	Message  string   `json:"message"`
}

func (v prismViolation) String() string {
	return fmt.Sprintf("%s: %s", strings.Join(v.Location, "."), v.Message)
}

// prismRequest is one request that reached Prism, with Prism's verdict.
type prismRequest struct {
	Method string
	// URI is the request-target sent to Prism (escaped path and raw query),
	// exactly as the client sent it to the harness.
	URI string
	// Header is the request's header as Prism received it.
	Header http.Header
	Status int
	// Violations are Prism's objections to the request: the request
	// entries of sl-violations, the "validation" array of its 422, or its
	// 404/405 problem (no such path or method in the document).
	Violations []prismViolation
	// ResponseViolations are sl-violations entries about Prism's own answer:
	// the document's example does not match its schema. Prism still
	// answers (we run it without --errors), so they say nothing about the
	// request.
	ResponseViolations []prismViolation
	// Err is set when the proxy could not reach Prism.
	Err string
}

// Invalid reports whether Prism found the request invalid.
func (r prismRequest) Invalid() bool { return len(r.Violations) > 0 }

func (r prismRequest) String() string {
	s := fmt.Sprintf("%s %s -> %d", r.Method, r.URI, r.Status)
	if r.Err != "" {
		s += " (" + r.Err + ")"
	}
	for _, v := range r.Violations {
		s += "\n    " + v.String()
	}
	return s
}

// prism is a running `prism mock` behind a recording proxy.
type prism struct {
	doc       string
	proc      *proc
	direct    string // Prism itself: http://127.0.0.1:PORT
	proxy     *httptest.Server
	startTime time.Duration

	mu   sync.Mutex
	reqs []prismRequest
}

// startPrism serves the OpenAPI document at docPath with `prism mock` on a
// free loopback port and returns it once it listens; it is stopped when the
// test ends and its log is printed if the test failed. It runs with
// --dynamic=false (answers are the document's examples, the same every
// time) and --errors=false: invalid requests are refused either way (mock
// mode always validates requests), while --errors would turn every answer
// whose example does not match its schema into a 500, and GitHub's document
// has such examples (GET /repos/{owner}/{repo} among them). Response
// violations are recorded instead (prismRequest.ResponseViolations).
//
// Prism starts in about 1 s on a small document and in 11 to 17 s on
// GitHub's (Node 22, this 2-core machine): start one per document and share
// it across subtests.
func startPrism(t testing.TB, docPath string) *prism {
	t.Helper()
	node := nodeBin(t)
	bin := npmPackageBin(t, interopDir(t), "@stoplight/prism-cli", "prism")
	abs, err := filepath.Abs(docPath)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(abs); err != nil {
		t.Fatalf("OpenAPI document for Prism: %v", err)
	}
	p := &prism{doc: abs}
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	// The port is free when chosen but another process may take it before
	// Prism binds: try a few ports.
	for attempt := 1; ; attempt++ {
		port := freePort(t)
		cmd := exec.Command(node, bin, "mock", "-h", "127.0.0.1", "-p", strconv.Itoa(port),
			"--dynamic=false", "--errors=false", abs)
		// A measurement of a real process, not logic: wall-clock time is
		// what it is about.
		start := time.Now()
		pr := startProc(t, "prism mock "+filepath.Base(abs), cmd)
		_, err := pr.waitLine(ctx, regexp.MustCompile(`Prism is listening on http://127\.0\.0\.1:`+strconv.Itoa(port)+`\b`))
		if err == nil {
			p.proc, p.startTime = pr, time.Since(start)
			p.direct = fmt.Sprintf("http://127.0.0.1:%d", port)
			break
		}
		if attempt < 3 && strings.Contains(pr.output(), "EADDRINUSE") {
			pr.stop(5 * time.Second)
			continue
		}
		t.Fatalf("prism mock %s did not start: %v\n%s", abs, err, pr.output())
	}
	t.Logf("prism mock %s: listening after %v", filepath.Base(abs), p.startTime.Round(10*time.Millisecond))

	target := strings.TrimPrefix(p.direct, "http://")
	rp := &httputil.ReverseProxy{
		// The outgoing request keeps the incoming URL as it was received
		// (Path and RawPath, so %2F and dot segments pass unchanged) and
		// its end-to-end headers. Rewrite removes the client's
		// X-Forwarded-* headers: put them back, so the record shows what
		// the client (the gateway) sent.
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL.Scheme, pr.Out.URL.Host, pr.Out.Host = "http", target, target
			for _, k := range []string{"X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto"} {
				if v, ok := pr.In.Header[k]; ok {
					pr.Out.Header[k] = v
				}
			}
		},
		ModifyResponse: func(resp *http.Response) error {
			p.record(resp.Request, resp)
			return nil
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			p.mu.Lock()
			p.reqs = append(p.reqs, prismRequest{Method: r.Method, URI: r.URL.RequestURI(), Header: r.Header.Clone(), Status: http.StatusBadGateway, Err: err.Error()})
			p.mu.Unlock()
			http.Error(w, "prism harness: "+err.Error(), http.StatusBadGateway)
		},
	}
	p.proxy = httptest.NewServer(rp)
	t.Cleanup(p.proxy.Close)
	return p
}

// record classifies Prism's answer to out (the request as sent to Prism).
func (p *prism) record(out *http.Request, resp *http.Response) {
	rec := prismRequest{Method: out.Method, URI: out.URL.RequestURI(), Header: out.Header.Clone(), Status: resp.StatusCode}
	if h := resp.Header.Get("sl-violations"); h != "" {
		var vs []prismViolation
		if err := json.Unmarshal([]byte(h), &vs); err != nil {
			rec.Violations = append(rec.Violations, prismViolation{Location: []string{"request"}, Severity: "Error", Message: "unparseable sl-violations header: " + h})
		}
		for _, v := range vs {
			if len(v.Location) > 0 && v.Location[0] == "response" {
				rec.ResponseViolations = append(rec.ResponseViolations, v)
			} else {
				rec.Violations = append(rec.Violations, v)
			}
		}
	}
	// Prism's own errors are problem+json with a type under its errors
	// URL; a document's own error answers are not (pets.yaml's are
	// application/json). Only the body of those is read.
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt == "application/problem+json" && len(rec.Violations) == 0 {
		body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
		resp.Body = io.NopCloser(bytes.NewReader(body))
		var problem struct {
			Type       string           `json:"type"`
			Title      string           `json:"title"`
			Detail     string           `json:"detail"`
			Validation []prismViolation `json:"validation"`
		}
		if err == nil && json.Unmarshal(body, &problem) == nil {
			if kind, ok := strings.CutPrefix(problem.Type, "https://stoplight.io/prism/errors#"); ok {
				switch {
				case len(problem.Validation) > 0:
					// Its 422: the locations are relative to the
					// request (["query"], ["path","petid"]).
					for _, v := range problem.Validation {
						v.Location = append([]string{"request"}, v.Location...)
						rec.Violations = append(rec.Violations, v)
					}
				default:
					// NO_PATH_MATCHED_ERROR, NO_METHOD_MATCHED_ERROR, …
					rec.Violations = append(rec.Violations, prismViolation{Location: []string{"request"}, Severity: "Error", Code: kind, Message: problem.Title + ": " + problem.Detail})
				}
			}
		}
	}
	p.mu.Lock()
	p.reqs = append(p.reqs, rec)
	p.mu.Unlock()
}

// URL is the base URL of the API (the recording proxy in front of Prism),
// without a trailing slash. Prism serves the document's paths at the root:
// it ignores the path of the document's servers.
func (p *prism) URL() string { return p.proxy.URL }

// Requests returns every request that reached Prism so far, in order.
func (p *prism) Requests() []prismRequest {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.reqs)
}

// ValidationErrors returns the requests Prism found invalid so far: those
// answered with violations in sl-violations (the document's 400, a 422 built
// from default, a 401 for a missing credential) or with Prism's own 422,
// 404 or 405 problem.
func (p *prism) ValidationErrors() []prismRequest {
	var bad []prismRequest
	for _, r := range p.Requests() {
		if r.Invalid() {
			bad = append(bad, r)
		}
	}
	return bad
}

// StartTime is how long Prism took from exec to listening.
func (p *prism) StartTime() time.Duration { return p.startTime }

// Log is what Prism printed so far (colours removed).
func (p *prism) Log() string { return p.proc.output() }

// prismReceived matches the line Prism logs for each request it receives:
// the method in lower case and the path after dot segments were resolved,
// without the query.
var prismReceived = regexp.MustCompile(`\[HTTP SERVER\] (\S+) (\S+) ℹ\s+info\s+Request received$`)

// waitLogged waits until Prism has logged n received requests and returns
// them as "METHOD path" in the order logged.
func (p *prism) waitLogged(ctx context.Context, n int) ([]string, error) {
	for {
		p.proc.mu.Lock()
		var got []string
		for _, l := range p.proc.lines {
			if m := prismReceived.FindStringSubmatch(l); m != nil {
				got = append(got, strings.ToUpper(m[1])+" "+m[2])
			}
		}
		grew := p.proc.grew
		p.proc.mu.Unlock()
		if len(got) >= n {
			return got, nil
		}
		select {
		case <-grew:
		case <-p.proc.done:
			return got, fmt.Errorf("prism exited after logging %d of %d requests", len(got), n)
		case <-ctx.Done():
			return got, fmt.Errorf("prism logged %d of %d requests: %w", len(got), n, ctx.Err())
		}
	}
}

// petsDoc is the path of a fixture document in testdata/openapi.
func petsDoc(t testing.TB, name string) string {
	t.Helper()
	return filepath.Join(interopDir(t), "testdata", "openapi", name)
}

// githubDoc is the path of GitHub's REST API description in the
// @octokit/openapi package (generated/api.github.com.json: $refs kept,
// 13 MB; the .deref.json variant inlines them into 73 MB).
func githubDoc(t testing.TB) string {
	t.Helper()
	p := filepath.Join(interopDir(t), "node_modules", "@octokit", "openapi", "generated", "api.github.com.json")
	if _, err := os.Stat(p); err != nil {
		skipOrFatal(t, "GitHub's OpenAPI document (npm @octokit/openapi) is not installed at %s: run `npm ci --prefix test/interop --no-audit --no-fund` (or scripts/test.sh)", p)
	}
	return p
}

// prismDo sends one request to the API behind p (target is the
// request-target, escaped as it is to be sent) with a Bearer credential
// unless noAuth, and returns the status, the answer's header and body.
func prismDo(t *testing.T, p *prism, method, target, body string, noAuth bool) (int, http.Header, string) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, p.URL()+target, rd)
	if err != nil {
		t.Fatal(err)
	}
	if got := req.URL.RequestURI(); got != target {
		t.Fatalf("net/url would send %q for %q", got, target)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("X-Forwarded-For", "192.0.2.1")
	if !noAuth {
		req.Header.Set("Authorization", "Bearer prism-harness-token")
	}
	resp, err := noProxyClient().Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, target, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, string(b)
}

// lastRequest is the last request Prism saw, failing when it saw fewer
// than want in all.
func lastRequest(t *testing.T, p *prism, want int) prismRequest {
	t.Helper()
	rs := p.Requests()
	if len(rs) != want {
		t.Fatalf("Prism saw %d requests, want %d: %v", len(rs), want, rs)
	}
	return rs[len(rs)-1]
}

// TestPrismHarnessPets serves pets.yaml (OpenAPI 3.1) and pets-3.0.yaml with
// one Prism each and shows, without a gateway, that valid requests get the
// documents' examples and no validation error, that each kind of invalid
// request Prism answers (the document's 400, a 422 from default, Prism's
// own 422, a 401 without credential) is counted as a validation error, and
// what Prism does with dot segments and encoded slashes in a path.
func TestPrismHarnessPets(t *testing.T) {
	if testing.Short() {
		t.Skip("interop test: runs Prism (Node)")
	}
	for _, doc := range []string{"pets.yaml", "pets-3.0.yaml"} {
		t.Run(doc, func(t *testing.T) {
			p := startPrism(t, petsDoc(t, doc))
			seen := 0 // requests Prism saw before the running subtest
			t.Run("valid requests get the examples and no validation error", func(t *testing.T) {
				cases := []struct {
					method, target, body string
					status               int
					answer               string // a piece of the example
				}{
					{"GET", "/pets?limit=2&tags=dog&tags=cat", "", 200, `[{"id":1,"name":"Rex"`},
					{"GET", "/pets/1", "", 200, `"parent":{"id":1,"name":"Animals"}`},
					{"POST", "/pets", `{"name":"Kitty","tag":null,"category":{"id":3,"name":"Cats","parent":{"id":1,"name":"Animals"}}}`, 201, `"name":"Kitty"`},
					{"DELETE", "/pets/1", "", 204, ""},
					{"GET", "/stores/main/inventory?sku=bone-01", "", 200, `"available":12`},
				}
				for _, c := range cases {
					status, h, body := prismDo(t, p, c.method, c.target, c.body, false)
					seen++
					if status != c.status || !strings.Contains(body, c.answer) || h.Get("sl-violations") != "" {
						t.Errorf("%s %s: %d %q, sl-violations %q; want %d with %q and no violation", c.method, c.target, status, body, h.Get("sl-violations"), c.status, c.answer)
					}
					r := lastRequest(t, p, seen)
					if r.Method != c.method || r.URI != c.target || r.Status != c.status || r.Invalid() || len(r.ResponseViolations) > 0 {
						t.Errorf("recorded %v (response violations %v), want %s %s -> %d, valid", r, r.ResponseViolations, c.method, c.target, c.status)
					}
					if got, fwd := r.Header.Get("Authorization"), r.Header.Get("X-Forwarded-For"); got != "Bearer prism-harness-token" || fwd != "192.0.2.1" {
						t.Errorf("recorded Authorization %q, X-Forwarded-For %q, want the ones sent", got, fwd)
					}
				}
				if bad := p.ValidationErrors(); len(bad) != 0 {
					t.Errorf("validation errors for valid requests: %v", bad)
				}
			})
			t.Run("invalid requests are counted", func(t *testing.T) {
				cases := []struct {
					name, method, target, body string
					status                     int
					header                     bool   // sl-violations present
					violation                  string // in the recorded violations
				}{
					// The document's own 400 (createPet is the only
					// operation that declares one).
					{"wrong body type: the document's 400", "POST", "/pets", `{"name":5}`, 400, true, "request.body.name: Request body property name must be string"},
					{"missing required body field: the document's 400", "POST", "/pets", `{"tag":"cat"}`, 400, true, "request.body: Request body must have required property 'name'"},
					// listPets has a default response: Prism makes
					// its 422 from it.
					{"wrong query type: 422 from default", "GET", "/pets?limit=abc", "", 422, true, "request.query.limit: Request query parameter limit must be integer"},
					// No 400, no default: Prism's own problem+json.
					{"missing required parameter: Prism's 422", "GET", "/stores/main/inventory", "", 422, false, "request.query: Request query must have required property 'sku'"},
					{"wrong path parameter type: Prism's 422", "GET", "/pets/abc", "", 422, false, "request.path.petid: Request path parameter petid must be integer"},
					{"no such method: Prism's 405", "PUT", "/pets", `{}`, 405, false, "NO_METHOD_MATCHED_ERROR"},
				}
				for _, c := range cases {
					status, h, _ := prismDo(t, p, c.method, c.target, c.body, false)
					seen++
					if status != c.status || (h.Get("sl-violations") != "") != c.header {
						t.Errorf("%s: %d, sl-violations %q; want %d, header present %v", c.name, status, h.Get("sl-violations"), c.status, c.header)
					}
					r := lastRequest(t, p, seen)
					if !r.Invalid() || !strings.Contains(fmt.Sprint(r.Violations, r.Violations[0].Code), c.violation) {
						t.Errorf("%s: recorded %v, want a violation %q", c.name, r, c.violation)
					}
				}
				// Without a credential: a 401 made from default (with
				// sl-violations) where the operation has a default,
				// otherwise Prism's own 401 problem.
				for _, c := range []struct {
					target string
					header bool
				}{{"/pets", true}, {"/pets/1", false}} {
					status, h, _ := prismDo(t, p, "GET", c.target, "", true)
					seen++
					r := lastRequest(t, p, seen)
					if status != 401 || (h.Get("sl-violations") != "") != c.header || !r.Invalid() || !strings.Contains(r.Violations[0].Message, "Invalid security scheme used") {
						t.Errorf("GET %s without credential: %d, sl-violations %q, recorded %v; want 401 (header present %v) and the violation recorded", c.target, status, h.Get("sl-violations"), r, c.header)
					}
				}
				if n := len(p.ValidationErrors()); n != 8 {
					t.Errorf("ValidationErrors() counts %d, want the 8 invalid requests", n)
				}
			})
			t.Run("dot segments and encoded slashes", func(t *testing.T) {
				// What Prism (the API the gateway must protect) does with
				// a path, as observed with prism 5.16.0:
				//   - it resolves dot segments before routing, plain or
				//     percent-encoded: /pets/1/../2 is getPet 2, and
				//     /pets/%2E%2E/pets/1 is getPet 1. A path parameter
				//     that is "." or ".." (however escaped) therefore
				//     changes the operation: the gateway must refuse it.
				//   - %2F stays inside its segment: /stores/..%2Fpets/
				//     inventory is the inventory of store "..%2Fpets";
				//     %3F (?) likewise. A percent-encoded parameter value
				//     stays one segment.
				// The proxy forwards the request-target unchanged (its
				// record shows it); Prism's log shows the path it routed.
				cases := []struct {
					target string
					status int
					logged string // the path Prism logged
				}{
					{"/pets/1/../2", 200, "GET /pets/2"},
					{"/pets/%2E%2E/pets/1", 200, "GET /pets/1"},
					{"/stores/..%2Fpets/inventory?sku=x", 200, "GET /stores/..%2Fpets/inventory"},
					{"/stores/..%2F..%2Fpets%2F1/inventory?sku=x", 200, "GET /stores/..%2F..%2Fpets%2F1/inventory"},
					{"/stores/x%3Fsku=y/inventory?sku=x", 200, "GET /stores/x%3Fsku=y/inventory"},
					{"/stores/http:%2F%2Fevil.example/inventory?sku=x", 200, "GET /stores/http:%2F%2Fevil.example/inventory"},
					{"/stores/%2E%2E/inventory?sku=x", 404, "GET /inventory"},
					{"/stores/%2E/inventory?sku=x", 404, "GET /stores/inventory"},
				}
				before := seen
				for _, c := range cases {
					status, _, body := prismDo(t, p, "GET", c.target, "", false)
					seen++
					r := lastRequest(t, p, seen)
					if r.URI != c.target {
						t.Errorf("proxy forwarded %q, want %q unchanged", r.URI, c.target)
					}
					if status != c.status {
						t.Errorf("GET %s: %d %s, want %d", c.target, status, body, c.status)
					}
					// A path that leaves the document is a validation
					// error for the harness (NO_PATH_MATCHED_ERROR).
					if r.Invalid() != (c.status == 404) {
						t.Errorf("GET %s: recorded %v, want invalid only for the 404", c.target, r)
					}
				}
				ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
				defer cancel()
				logged, err := p.waitLogged(ctx, seen)
				if err != nil {
					t.Fatal(err)
				}
				for i, c := range cases {
					if got := logged[before+i]; got != c.logged {
						t.Errorf("GET %s: Prism logged %q, want %q", c.target, got, c.logged)
					}
				}
			})
		})
	}
}

// TestPrismHarnessGitHub serves GitHub's REST API description (the large
// real document of issue 15) and calls GET /repos/{owner}/{repo} with valid
// parameters: no validation error, and an invalid one: counted.
func TestPrismHarnessGitHub(t *testing.T) {
	if testing.Short() {
		t.Skip("interop test: runs Prism (Node) on GitHub's OpenAPI document")
	}
	p := startPrism(t, githubDoc(t)) // logs how long Prism took to start
	status, _, body := prismDo(t, p, "GET", "/repos/octocat/hello-world", "", false)
	if status != 200 || !strings.Contains(body, `"full_name":"octocat/Hello-World"`) {
		t.Errorf("GET /repos/octocat/hello-world: %d %.300s, want 200 with the example repository", status, body)
	}
	status, _, _ = prismDo(t, p, "GET", "/repos/octocat/hello-world/issues?state=open&per_page=5", "", false)
	if status != 200 {
		t.Errorf("GET /repos/octocat/hello-world/issues: %d, want 200", status)
	}
	if bad := p.ValidationErrors(); len(bad) != 0 {
		t.Errorf("validation errors for valid requests: %v", bad)
	}
	// GitHub's examples do not all match its schemas (this repository
	// example lacks "language"): Prism answers them anyway and says so.
	for _, r := range p.Requests() {
		if len(r.ResponseViolations) > 0 {
			t.Logf("%s %s: GitHub's example violates its schema: %v", r.Method, r.URI, r.ResponseViolations)
		}
	}
	// An invalid request to this document is counted too (GitHub
	// declares a 422 for this operation: Prism answers with it).
	status, h, _ := prismDo(t, p, "GET", "/repos/octocat/hello-world/issues?state=bogus", "", false)
	if status != 422 || h.Get("sl-violations") == "" || len(p.ValidationErrors()) != 1 {
		t.Errorf("state=bogus: %d, sl-violations %q, %d validation errors; want 422 with a violation, counted", status, h.Get("sl-violations"), len(p.ValidationErrors()))
	}
}
