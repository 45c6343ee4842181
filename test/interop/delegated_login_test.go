package interop

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// TestDelegatedLogin runs examples/saaslogin, a SaaS with its own users
// and login form, as a separate process next to `gatehouse dev --delegate`
// (issue 14 item 2): a person signs in on the SaaS's page, Gatehouse
// provisions them once, the demo client gets a token and calls list_notes
// with it through the MCP Go SDK; a second sign-in is the same user; and
// a replayed, an expired, a forged and a wrong-challenge assertion are
// each refused.
func TestDelegatedLogin(t *testing.T) {
	root := findModuleRoot(t)
	dir := t.TempDir()
	saasBin := filepath.Join(dir, "saaslogin")
	build := exec.Command("go", "build", "-o", saasBin, "./examples/saaslogin")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./examples/saaslogin: %v\n%s", err, out)
	}
	keyFile, pubFile := filepath.Join(dir, "saas.key"), filepath.Join(dir, "saas.pub")
	if out, err := exec.Command(saasBin, "genkey", "-key", keyFile, "-pub", pubFile).CombinedOutput(); err != nil {
		t.Fatalf("saaslogin genkey: %v\n%s", err, out)
	}
	saasAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	d := startMCPDev(t, "demo", "demo-interop-pw", "--delegate", "saas,http://"+saasAddr+"/login,"+pubFile)
	saas := startProc(t, "saaslogin", exec.Command(saasBin, "serve", "-listen", saasAddr, "-key", keyFile, "-gatehouse", d.Issuer, "-id", "saas"))
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	if _, err := saas.waitLine(ctx, regexp.MustCompile(`saaslogin: listening`)); err != nil {
		t.Fatalf("saaslogin did not start: %v\n%s", err, saas.output())
	}
	const redirectURI = "http://127.0.0.1:53682/callback"

	// The sign-in: Gatehouse's page → the SaaS's page → back with the
	// assertion → consent → code → token → tools/call.
	b := newJarBrowser(t)
	verifier := rand.Text() + rand.Text()
	toSaaS := b.startAt(d, redirectURI, verifier)
	callback := b.saasLogin(toSaaS, "alice", "alice-password", nil)
	st, loc, body := b.do(http.MethodGet, callback.String(), nil)
	if st != http.StatusOK {
		t.Fatalf("Gatehouse's answer to the SaaS's assertion: %d %s", st, body)
	}
	code := b.consent(body, loc, redirectURI)
	accessToken := exchangeCode(t, d, code, redirectURI, verifier)
	callListNotes(ctx, t, d, accessToken)

	// The assertion again, in the same browser: refused (single use).
	if st, _, body := b.do(http.MethodGet, callback.String(), nil); st != http.StatusBadRequest || !strings.Contains(body, "already used") {
		t.Errorf("replayed assertion: %d, want 400 saying it was already used:\n%s", st, pageText([]byte(body)))
	}

	// A second sign-in in a fresh browser is the same user, and the
	// remembered consent lets the code through at once.
	b2 := newJarBrowser(t)
	callback = b2.saasLogin(b2.startAt(d, redirectURI, verifier), "alice", "alice-password", nil)
	if st, loc, _ := b2.do(http.MethodGet, callback.String(), nil); st/100 != 3 || loc.Query().Get("code") == "" {
		t.Errorf("second sign-in: %d %v, want a redirect with a code", st, loc)
	}

	// Forgery and expiry, played by someone holding the browser's
	// challenge: an assertion signed with another key under the SaaS's
	// kid, and one signed with the SaaS's own key but expired.
	realKey := readECKey(t, keyFile)
	kid := thumbprint(t, &realKey.PublicKey)
	forger, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	for _, tt := range []struct {
		name string
		key  *ecdsa.PrivateKey
		age  time.Duration
		want string
	}{
		{"forged signature", forger, 0, "signature does not verify"},
		{"expired", realKey, 10 * time.Minute, "the assertion has expired"},
	} {
		bx := newJarBrowser(t)
		ch := bx.startAt(d, redirectURI, verifier).Query().Get("login_challenge")
		now := time.Now().Add(-tt.age)
		a := signES256(t, tt.key, kid, map[string]any{"iss": "saas", "aud": d.Issuer, "login_challenge": ch, "sub": "u-1001",
			"iat": now.Unix(), "exp": now.Add(2 * time.Minute).Unix()})
		st, _, body := bx.do(http.MethodGet, d.Issuer+"/login/delegate/callback?assertion="+url.QueryEscape(a), nil)
		if st != http.StatusBadRequest || !strings.Contains(body, tt.want) {
			t.Errorf("%s: %d, want 400 saying %q:\n%s", tt.name, st, tt.want, pageText([]byte(body)))
		}
	}
	// The SaaS asked to sign in for another challenge than the browser's
	// (its form tampered with): refused.
	bw := newJarBrowser(t)
	callback = bw.saasLogin(bw.startAt(d, redirectURI, verifier), "bob", "bob-password", func(v url.Values) { v.Set("login_challenge", rand.Text()) })
	if st, _, body := bw.do(http.MethodGet, callback.String(), nil); st != http.StatusBadRequest || !strings.Contains(body, "does not belong to a sign-in started in this browser") {
		t.Errorf("wrong challenge: %d, want 400:\n%s", st, pageText([]byte(body)))
	}

	// One user for alice, none for bob (whose sign-in was refused).
	users := d.run(t, "user", "list")
	if n := strings.Count(users, "oidc:delegate:saas:"); n != 1 || !strings.Contains(users, "oidc:delegate:saas:u-1001") {
		t.Errorf("gatehouse user list shows %d users of the SaaS, want alice's (u-1001) alone:\n%s", n, users)
	}
	if out := d.Output(); strings.Contains(out, "alice-password") {
		t.Errorf("gatehouse dev logged the SaaS user's password")
	}
}

// jarBrowser is a cookie-keeping HTTP client that does not follow
// redirects.
type jarBrowser struct {
	t *testing.T
	c *http.Client
}

func newJarBrowser(t *testing.T) *jarBrowser {
	jar, _ := cookiejar.New(nil)
	c := noProxyClient()
	c.Jar = jar
	return &jarBrowser{t: t, c: c}
}

// do sends a GET (form nil) or a POSTed form and returns the status, the
// resolved Location (or the request URL) and the body.
func (b *jarBrowser) do(method, target string, form url.Values) (int, *url.URL, string) {
	b.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, target, body)
	if err != nil {
		b.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatalf("%s %s: %v", method, target, err)
	}
	defer resp.Body.Close()
	page, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	loc := req.URL
	if l := resp.Header.Get("Location"); l != "" {
		if loc, err = req.URL.Parse(l); err != nil {
			b.t.Fatalf("bad Location %q", l)
		}
	}
	return resp.StatusCode, loc, string(page)
}

// submit posts the form id of page (at pageURL) with edit applied.
func (b *jarBrowser) submit(page string, pageURL *url.URL, id string, edit func(url.Values)) (int, *url.URL, string) {
	b.t.Helper()
	forms, err := parseForms([]byte(page))
	if err != nil || forms[id] == nil {
		b.t.Fatalf("no form %q on %s: %v\n%s", id, pageURL, err, pageText([]byte(page)))
	}
	f := forms[id]
	if edit != nil {
		edit(f.values)
	}
	action, err := formAction(pageURL, f.action)
	if err != nil {
		b.t.Fatal(err)
	}
	return b.do(http.MethodPost, action, f.values)
}

// startAt starts an authorization request of the demo client and presses
// "Continue with saas": it returns the SaaS login URL Gatehouse sent the
// browser to.
func (b *jarBrowser) startAt(d *mcpDev, redirectURI, verifier string) *url.URL {
	b.t.Helper()
	sum := sha256.Sum256([]byte(verifier))
	q := url.Values{"response_type": {"code"}, "client_id": {"gatehouse-demo"}, "redirect_uri": {redirectURI}, "scope": {"notes:read"},
		"resource": {d.MCPURL}, "state": {"st-1"}, "code_challenge": {base64.RawURLEncoding.EncodeToString(sum[:])}, "code_challenge_method": {"S256"}}
	st, u, page := b.do(http.MethodGet, d.Issuer+"/authorize?"+q.Encode(), nil)
	if st != http.StatusOK {
		b.t.Fatalf("/authorize: %d %s", st, pageText([]byte(page)))
	}
	st, toSaaS, page := b.submit(page, u, "delegate-login", nil)
	if st != http.StatusSeeOther || toSaaS.Query().Get("login_challenge") == "" {
		b.t.Fatalf("Continue with saas: %d to %v, want 303 to the SaaS with a login_challenge: %s", st, toSaaS, pageText([]byte(page)))
	}
	return toSaaS
}

// saasLogin signs in on the SaaS's own form (edit may change its fields)
// and returns where the SaaS sends the browser: Gatehouse's callback.
func (b *jarBrowser) saasLogin(toSaaS *url.URL, user, password string, edit func(url.Values)) *url.URL {
	b.t.Helper()
	st, u, page := b.do(http.MethodGet, toSaaS.String(), nil)
	if st != http.StatusOK {
		b.t.Fatalf("the SaaS's login page: %d %s", st, page)
	}
	st, back, page := b.submit(page, u, "saas-login", func(v url.Values) {
		v.Set("username", user)
		v.Set("password", password)
		if edit != nil {
			edit(v)
		}
	})
	if st != http.StatusSeeOther || !strings.Contains(back.Path, "/login/delegate/callback") {
		b.t.Fatalf("SaaS sign-in: %d to %v, want 303 to Gatehouse's callback: %s", st, back, page)
	}
	return back
}

// consent allows on the consent page and returns the code.
func (b *jarBrowser) consent(page string, pageURL *url.URL, redirectURI string) string {
	b.t.Helper()
	st, loc, body := b.submit(page, pageURL, "consent-form", func(v url.Values) { v.Set("decision", "allow") })
	if st/100 != 3 || !strings.HasPrefix(loc.String(), redirectURI) || loc.Query().Get("code") == "" {
		b.t.Fatalf("consent: %d to %v, want the code at %s: %s", st, loc, redirectURI, pageText([]byte(body)))
	}
	return loc.Query().Get("code")
}

// exchangeCode redeems code at the token endpoint.
func exchangeCode(t *testing.T, d *mcpDev, code, redirectURI, verifier string) string {
	t.Helper()
	resp, err := noProxyClient().PostForm(d.Issuer+"/token", url.Values{"grant_type": {"authorization_code"}, "code": {code},
		"redirect_uri": {redirectURI}, "client_id": {"gatehouse-demo"}, "code_verifier": {verifier}, "resource": {d.MCPURL}})
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var tr struct {
		AccessToken string `json:"access_token"`
	}
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || json.Unmarshal(raw, &tr) != nil || tr.AccessToken == "" {
		t.Fatalf("token request: %d %s", resp.StatusCode, raw)
	}
	return tr.AccessToken
}

// bearer adds an access token to every request.
type bearer struct {
	base  http.RoundTripper
	token string
}

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return b.base.RoundTrip(r)
}

// callListNotes calls the demo MCP server's list_notes with the token.
func callListNotes(ctx context.Context, t *testing.T, d *mcpDev, accessToken string) {
	t.Helper()
	client := mcp.NewClient(&mcp.Implementation{Name: "gatehouse-interop-delegated", Version: "1"}, nil)
	cs, err := client.Connect(ctx, &mcp.StreamableClientTransport{
		Endpoint:   d.MCPURL,
		HTTPClient: &http.Client{Transport: bearer{base: noProxyClient().Transport, token: accessToken}},
	}, nil)
	if err != nil {
		t.Fatalf("Connect(%s) with the delegated sign-in's token = %v", d.MCPURL, err)
	}
	defer cs.Close()
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "list_notes"})
	if err != nil || res.IsError {
		t.Fatalf("tools/call list_notes = %+v, %v", res, err)
	}
}

func readECKey(t *testing.T, path string) *ecdsa.PrivateKey {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return k.(*ecdsa.PrivateKey)
}

func thumbprint(t *testing.T, pub *ecdsa.PublicKey) string {
	t.Helper()
	sum, err := (&jose.JSONWebKey{Key: pub}).Thumbprint(crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(sum)
}

func signES256(t *testing.T, key *ecdsa.PrivateKey, kid string, claims map[string]any) string {
	t.Helper()
	sig, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: jose.JSONWebKey{Key: key, KeyID: kid}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(claims)
	jws, err := sig.Sign(b)
	if err != nil {
		t.Fatal(err)
	}
	s, err := jws.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return s
}
