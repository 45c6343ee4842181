package interop

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// serverScenarioDir matches the CLI's server-mode result directories:
// server-<scenario>-<ISO time with : and . replaced by ->.
var serverScenarioDir = regexp.MustCompile(`^server-(.+)-\d{4}-\d{2}-\d{2}T[\d-]+Z$`)

// scenarioPassed is the CLI's verdict with --expected-failures (no FAILURE
// and no WARNING), made strict: at least one check succeeded.
func scenarioPassed(checks []conformanceCheck) bool {
	succeeded := false
	for _, c := range checks {
		switch c.Status {
		case "FAILURE", "WARNING":
			return false
		case "SUCCESS":
			succeeded = true
		}
	}
	return succeeded
}

// authFailure reports whether a check saw the server refuse the token: a
// failure that mentions it, or any check whose request got a 401. A check
// passed on a 401 (dns-rebinding-protection takes any 4xx) proves nothing.
func authFailure(c conformanceCheck) bool {
	var d struct {
		StatusCode int `json:"statusCode"`
	}
	if json.Unmarshal(c.Details, &d) == nil && d.StatusCode == http.StatusUnauthorized {
		return true
	}
	if c.Status != "FAILURE" && c.Status != "WARNING" {
		return false
	}
	return refusedMarker.MatchString(c.ErrorMessage + " " + string(c.Details))
}

// refusedMarker matches what a refused token leaves in a check's message or
// details: an HTTP 401 or 403 status (not any 401, such as a JSON-RPC id),
// or the RFC 6750 vocabulary.
var refusedMarker = regexp.MustCompile(`(?i)\bHTTP 40[13]\b|"(?:status|statusCode|responseStatus|httpStatus)":\s*40[13]\b|\bUnauthorized\b|\bForbidden\b|invalid_token|insufficient_scope|WWW-Authenticate`)

// readServerBaseline reads the expected-failures file: YAML with a list
// `server`, one scenario per line, each with its reason in a trailing
// comment (`  - tools-call-image  # the demo has no test_image_content`).
// An entry without a reason is an error.
func readServerBaseline(t *testing.T, path string) map[string]string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Server []string `json:"server"`
	}
	if err := yaml.UnmarshalStrict(b, &doc); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	entry := regexp.MustCompile(`^\s*-\s*([A-Za-z0-9_./-]+)\s*(?:#\s*(.*?))?\s*$`)
	reasons := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if m := entry.FindStringSubmatch(sc.Text()); m != nil {
			reasons[m[1]] = m[2]
		}
	}
	out := map[string]string{}
	for _, name := range doc.Server {
		reason, ok := reasons[name]
		switch {
		case !ok:
			t.Fatalf("%s: write %s as `  - %s  # reason` on a line of its own", path, name, name)
		case reason == "":
			t.Fatalf("%s: %s has no reason: add `# why the placement cannot pass it`", path, name)
		case out[name] != "":
			t.Fatalf("%s: %s is listed twice", path, name)
		}
		out[name] = reason
	}
	if len(out) != len(reasons) {
		t.Fatalf("%s: %d list lines but %d entries under server", path, len(reasons), len(out))
	}
	return out
}

// readServerChecks reads every checks.json below dir, by scenario.
func readServerChecks(t *testing.T, dir string) map[string][]conformanceCheck {
	t.Helper()
	res := map[string][]conformanceCheck{}
	for name, checks := range readConformanceChecks(t, dir) {
		if m := serverScenarioDir.FindStringSubmatch(name); m != nil {
			name = m[1]
		}
		res[name] = append(res[name], checks...)
	}
	return res
}

// demoToken obtains an access token for the demo MCP server through the
// real flow: authorization code with PKCE (S256) for the pre-registered
// public client gatehouse-demo, resource = the MCP URL, login and consent
// played by playBrowser, then the code exchanged at the token endpoint.
func demoToken(ctx context.Context, t *testing.T, d *devServer, scope string) string {
	t.Helper()
	c := noProxyClient()
	var meta struct {
		Issuer                string `json:"issuer"`
		AuthorizationEndpoint string `json:"authorization_endpoint"`
		TokenEndpoint         string `json:"token_endpoint"`
	}
	getJSON(ctx, t, c, d.Issuer+"/.well-known/oauth-authorization-server", &meta)
	if meta.Issuer != d.Issuer || meta.AuthorizationEndpoint == "" || meta.TokenEndpoint == "" {
		t.Fatalf("authorization server metadata %+v", meta)
	}

	// The demo client's loopback redirect URI matches any port (RFC 8252
	// §7.3); nothing listens on it.
	redirectURI := fmt.Sprintf("http://127.0.0.1:%d/callback", freePort(t))
	verifier := rand.Text() + rand.Text()
	sum := sha256.Sum256([]byte(verifier))
	state := rand.Text()
	q := url.Values{
		"response_type":         {"code"},
		"client_id":             {"gatehouse-demo"},
		"redirect_uri":          {redirectURI},
		"scope":                 {scope},
		"state":                 {state},
		"code_challenge":        {base64.RawURLEncoding.EncodeToString(sum[:])},
		"code_challenge_method": {"S256"},
		"resource":              {d.MCPURL},
	}
	loc, steps, err := playBrowser(ctx, meta.AuthorizationEndpoint+"?"+q.Encode(), d.Username, d.Password, redirectURI)
	if err != nil {
		t.Fatalf("browser: %v", err)
	}
	for _, s := range steps {
		t.Logf("browser: %s %s -> %d %s", s.Method, s.URL, s.Status, s.Location)
	}
	got := loc.Query()
	if e := got.Get("error"); e != "" {
		t.Fatalf("authorization error %s: %s", e, got.Get("error_description"))
	}
	if got.Get("state") != state || got.Get("iss") != d.Issuer || got.Get("code") == "" {
		t.Fatalf("authorization response %s: want state %q, iss %q and a code", loc, state, d.Issuer)
	}

	form := url.Values{
		"grant_type":    {"authorization_code"},
		"code":          {got.Get("code")},
		"redirect_uri":  {redirectURI},
		"client_id":     {"gatehouse-demo"},
		"code_verifier": {verifier},
		"resource":      {d.MCPURL},
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, meta.TokenEndpoint, strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	var tok struct {
		AccessToken string `json:"access_token"`
		TokenType   string `json:"token_type"`
		Scope       string `json:"scope"`
		ExpiresIn   int    `json:"expires_in"`
	}
	if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &tok) != nil || tok.AccessToken == "" || !strings.EqualFold(tok.TokenType, "Bearer") {
		t.Fatalf("POST %s = %d %s", meta.TokenEndpoint, resp.StatusCode, body)
	}
	granted := strings.Fields(tok.Scope)
	for _, s := range strings.Fields(scope) {
		if tok.Scope != "" && !slices.Contains(granted, s) {
			t.Fatalf("token response scope %q lacks %s", tok.Scope, s)
		}
	}
	t.Logf("access token: scope %q, expires in %ds", tok.Scope, tok.ExpiresIn)
	return tok.AccessToken
}

// getJSON GETs u and decodes its JSON body into v.
func getJSON(ctx context.Context, t *testing.T, c *http.Client, u string, v any) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s = %d %s", u, resp.StatusCode, body)
	}
	if err := json.Unmarshal(body, v); err != nil {
		t.Fatalf("GET %s: %v: %s", u, err, body)
	}
}
