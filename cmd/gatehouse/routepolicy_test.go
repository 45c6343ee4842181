package main

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/gatehouse-mcp/gatehouse/internal/storage"
	"github.com/gatehouse-mcp/gatehouse/internal/storage/sqlite"
)

// TestGatewayRouteScopePolicy: under `gatehouse serve`, a gateway route's
// scope_policies reach its registered resource, replacing a policy set
// earlier with `resource add --scope-group` (the config is their source of
// truth, and serve says so in its log), and the authorization server
// enforces them: a user without the group is offered only the rest and
// gets a token without the scope; a user in the group gets it.
func TestGatewayRouteScopePolicy(t *testing.T) {
	asPort, gwPort := freePort(t), freePort(t)
	issuer := "http://127.0.0.1:" + strconv.Itoa(asPort)
	routeURL := fmt.Sprintf("http://127.0.0.1:%d/notes/mcp", gwPort)
	cfg := serveConfig(t, issuer, fmt.Sprintf(`allow_insecure_issuer: true
gateway:
  listen: 127.0.0.1:%d
  routes:
    - name: notes
      url: %s
      upstream: {url: "http://127.0.0.1:9/mcp"}
      scopes: [notes:read]
      tools: {add_note: [notes:write]}
      scope_policies:
        notes:write: {groups: [editors]}
`, gwPort, routeURL))
	pw := filepath.Join(t.TempDir(), "pw")
	must(t, os.WriteFile(pw, []byte("a-long-password\n"), 0o600))
	for _, args := range [][]string{
		{"user", "add", "alice", "--password-file", pw},
		{"user", "add", "bob", "--password-file", pw},
		{"user", "group", "add", "bob", "editors"},
		{"client", "create", "--id", "cli", "--redirect-uri", "http://127.0.0.1/callback"},
		// An operator's earlier policy on the route's resource: the
		// route's scope_policies replace it.
		{"resource", "add", routeURL, "--scope", "notes:read", "--scope", "notes:write", "--default-scope", "notes:read", "--scope-group", "notes:write=admins"},
	} {
		if err := run(t.Context(), append(args, "--config", cfg), io.Discard); err != nil {
			t.Fatalf("gatehouse %s: %v", strings.Join(args, " "), err)
		}
	}
	logs := captureLog(t)
	startServe(t, "--config", cfg, "--listen", "127.0.0.1:"+strconv.Itoa(asPort))

	if !strings.Contains(logs.String(), "replace the scope policies stored for its resource") || !strings.Contains(logs.String(), `stored="notes:write=admins" config="notes:write=editors"`) {
		t.Errorf("serve did not log that the route's scope_policies replace the stored ones:\n%s", logs.String())
	}
	st, err := sqlite.Open(t.Context(), sqlite.Options{Path: filepath.Join(filepath.Dir(cfg), "gatehouse.db"), Now: time.Now})
	must(t, err)
	res, err := st.GetResource(t.Context(), routeURL)
	st.Close()
	must(t, err)
	if diff := cmp.Diff(map[string]storage.ScopePolicy{"notes:write": {Groups: []string{"editors"}}}, res.ScopePolicies); diff != "" {
		t.Errorf("registered resource's scope policies (-want +got):\n%s", diff)
	}

	// alice, in no group: the consent page offers notes:read and says why
	// notes:write is not available; her token has notes:read only.
	p := signInToConsent(t, issuer, "alice", routeURL, "notes:read notes:write")
	if !strings.Contains(p.body, "Not available to you") || !strings.Contains(p.body, "needs group editors") {
		t.Errorf("alice's consent page does not withhold notes:write for want of group editors:\n%s", p.body)
	}
	if scope := consentAndExchange(t, issuer, p); scope != "notes:read" {
		t.Errorf("alice's token scope = %q, want notes:read (notes:write needs group editors)", scope)
	}
	// bob, in editors: both.
	p = signInToConsent(t, issuer, "bob", routeURL, "notes:read notes:write")
	if strings.Contains(p.body, "Not available to you") {
		t.Errorf("bob's consent page withholds a scope:\n%s", p.body)
	}
	if scope := consentAndExchange(t, issuer, p); scope != "notes:read notes:write" {
		t.Errorf("bob's token scope = %q, want notes:read notes:write", scope)
	}
}

// flowBrowser is one browser's sign-in: its cookies, and a client that
// shows every redirect instead of following it.
type flowBrowser struct {
	client *http.Client
}

// flowPage is a fetched page, with the browser that fetched it.
type flowPage struct {
	b      *flowBrowser
	status int
	header http.Header
	body   string
}

func (b *flowBrowser) do(t *testing.T, method, u string, form url.Values) flowPage {
	t.Helper()
	req, err := http.NewRequest(method, u, strings.NewReader(form.Encode()))
	must(t, err)
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := b.client.Do(req)
	must(t, err)
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return flowPage{b: b, status: resp.StatusCode, header: resp.Header, body: string(body)}
}

var (
	flowHiddenRE = regexp.MustCompile(`<input type="hidden" name="([a-z_]+)" value="([^"]*)">`)
	flowActionRE = regexp.MustCompile(`<form id="([a-z-]+)" method="post" action="([^"]*)"`)
)

// submit posts the page's form with id, its hidden fields and set.
func (p flowPage) submit(t *testing.T, issuer, id string, set url.Values) flowPage {
	t.Helper()
	action := ""
	for _, m := range flowActionRE.FindAllStringSubmatch(p.body, -1) {
		if m[1] == id {
			action = html.UnescapeString(m[2])
		}
	}
	if action == "" {
		t.Fatalf("no form %q in the page (status %d):\n%s", id, p.status, p.body)
	}
	v := url.Values{}
	for _, m := range flowHiddenRE.FindAllStringSubmatch(p.body, -1) {
		v.Set(m[1], html.UnescapeString(m[2]))
	}
	for k, vals := range set {
		v[k] = vals
	}
	return p.b.do(t, http.MethodPost, issuer+action, v)
}

const flowVerifier = "route-policy-test-verifier-0123456789-abcdefghijklmnop"

// signInToConsent starts the public client cli's authorization request for
// resource and scope in a new browser and signs in as user; it returns
// the consent page.
func signInToConsent(t *testing.T, issuer, user, resource, scope string) flowPage {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	b := &flowBrowser{client: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
	sum := sha256.Sum256([]byte(flowVerifier))
	q := url.Values{"response_type": {"code"}, "client_id": {"cli"}, "redirect_uri": {"http://127.0.0.1/callback"},
		"code_challenge": {base64.RawURLEncoding.EncodeToString(sum[:])}, "code_challenge_method": {"S256"},
		"resource": {resource}, "scope": {scope}, "state": {"st"}}
	p := b.do(t, http.MethodGet, issuer+"/authorize?"+q.Encode(), nil)
	p = p.submit(t, issuer, "login-form", url.Values{"username": {user}, "password": {"a-long-password"}})
	if p.status != http.StatusOK || !strings.Contains(p.body, `id="consent-form"`) {
		t.Fatalf("%s's sign-in = %d, want the consent page:\n%s", user, p.status, p.body)
	}
	return p
}

// consentAndExchange allows on the consent page p, exchanges the code
// and returns the token response's scope.
func consentAndExchange(t *testing.T, issuer string, p flowPage) string {
	t.Helper()
	scope, _ := consentAndToken(t, issuer, p)
	return scope
}

// consentAndToken is consentAndExchange that also returns the access
// token.
func consentAndToken(t *testing.T, issuer string, p flowPage) (scope, accessToken string) {
	t.Helper()
	p = p.submit(t, issuer, "consent-form", url.Values{"decision": {"allow"}})
	loc, err := url.Parse(p.header.Get("Location"))
	if err != nil || loc.Query().Get("code") == "" {
		t.Fatalf("consent = %d, Location %q, want a redirect with a code:\n%s", p.status, p.header.Get("Location"), p.body)
	}
	resp, err := http.PostForm(issuer+"/token", url.Values{"grant_type": {"authorization_code"}, "code": {loc.Query().Get("code")},
		"redirect_uri": {"http://127.0.0.1/callback"}, "client_id": {"cli"}, "code_verifier": {flowVerifier}})
	must(t, err)
	defer resp.Body.Close()
	var tok struct {
		AccessToken string `json:"access_token"`
		Scope       string `json:"scope"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&tok); err != nil || resp.StatusCode != http.StatusOK || tok.AccessToken == "" {
		t.Fatalf("token exchange = %d, %v", resp.StatusCode, err)
	}
	return strings.Join(slices.Sorted(slices.Values(strings.Fields(tok.Scope))), " "), tok.AccessToken
}
