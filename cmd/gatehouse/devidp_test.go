package main

import (
	"bytes"
	"encoding/json"
	"html"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// fakeDevIdP is an OpenID provider's metadata on loopback http, as a
// provider run locally for a try would serve it.
func fakeDevIdP(t *testing.T) *httptest.Server {
	t.Helper()
	var srv *httptest.Server
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/.well-known/openid-configuration" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{
			"issuer": srv.URL, "authorization_endpoint": srv.URL + "/authorize", "token_endpoint": srv.URL + "/token",
			"jwks_uri": srv.URL + "/jwks", "id_token_signing_alg_values_supported": []string{"RS256"},
		})
	}))
	t.Cleanup(srv.Close)
	return srv
}

// writeSecret writes a client secret file and returns its path.
func writeSecret(t *testing.T, secret string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "idp-secret")
	if err := os.WriteFile(p, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestDevIDP (issue 14 item 4): `gatehouse dev --idp` with an http
// provider on loopback starts, prints the redirect URI to register, and
// the sign-in page offers the provider's button beside the demo user's
// form; pressing it sends the browser to the provider with that redirect
// URI and the client id.
func TestDevIDP(t *testing.T) {
	idp := fakeDevIdP(t)
	issuer, mcpURL, banner := startDevArgs(t, filepath.Join(t.TempDir(), "data"), "--idp", idp.URL+",gatehouse-dev,"+writeSecret(t, "s3cret-value"))
	host := strings.TrimPrefix(idp.URL, "http://")
	redirectURI := issuer + "/login/oidc/idp/callback"
	for _, want := range []string{
		"  Identity provider: " + idp.URL + ` ("Continue with ` + host + `" on the sign-in page; client id gatehouse-dev)`,
		"    Register this redirect URI at the provider: " + redirectURI + "\n",
	} {
		if !strings.Contains(banner, want) {
			t.Errorf("dev banner lacks %q:\n%s", want, banner)
		}
	}
	if strings.Contains(banner, "s3cret-value") {
		t.Errorf("dev banner shows the client secret:\n%s", banner)
	}

	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	q := url.Values{"response_type": {"code"}, "client_id": {devClientID}, "redirect_uri": {"http://127.0.0.1/callback"},
		"code_challenge": {"E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"}, "code_challenge_method": {"S256"}, "resource": {mcpURL}}
	resp, err := c.Get(issuer + "/authorize?" + q.Encode())
	if err != nil {
		t.Fatal(err)
	}
	var body bytes.Buffer
	_, _ = body.ReadFrom(resp.Body)
	resp.Body.Close()
	page := body.String()
	if !strings.Contains(page, `<form id="oidc-idp" method="post" action="/login/oidc/idp"`) || !strings.Contains(page, "Continue with "+host) || !strings.Contains(page, `id="login-form"`) {
		t.Fatalf("dev sign-in page with --idp (status %d), want the provider's button and the password form:\n%s", resp.StatusCode, page)
	}
	form := url.Values{}
	button := page[strings.Index(page, `<form id="oidc-idp"`):]
	for _, m := range regexp.MustCompile(`name="([a-z_]+)" value="([^"]*)"`).FindAllStringSubmatch(button[:strings.Index(button, "</form>")], -1) {
		form.Set(m[1], html.UnescapeString(m[2]))
	}
	resp, err = c.PostForm(issuer+"/login/oidc/idp", form)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(loc.String(), idp.URL+"/authorize?") {
		t.Fatalf("pressing the provider's button = %d, Location %q; want 303 to the provider's authorization endpoint", resp.StatusCode, resp.Header.Get("Location"))
	}
	if got := loc.Query(); got.Get("redirect_uri") != redirectURI || got.Get("client_id") != "gatehouse-dev" || got.Get("code_challenge_method") != "S256" {
		t.Errorf("authorization request at the provider = %v; want redirect_uri %s, client_id gatehouse-dev, S256", got, redirectURI)
	}
}

// TestDevIDPRefused: bad --idp values fail before dev listens or makes
// its data directory, with an error that names --idp and what is wrong
// (never the value of a secret-file part that names no file: it may be
// the secret itself).
func TestDevIDPRefused(t *testing.T) {
	secret := writeSecret(t, "s3cret-value")
	empty := filepath.Join(t.TempDir(), "empty")
	if err := os.WriteFile(empty, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	unreadable := t.TempDir() // a directory: it exists, and reading it fails
	for _, tt := range []struct {
		name, idp, want string
	}{
		{"one part", "http://127.0.0.1:5556", "--idp ISSUER,CLIENT_ID,SECRET_FILE: want three non-empty parts separated by commas (the provider's issuer URL, Gatehouse's client id there, and a file holding its client secret), got 1 part(s)"},
		{"empty client id", "http://127.0.0.1:5556,," + secret, "got 3 part(s); empty: CLIENT_ID"},
		{"four parts", "http://127.0.0.1:5556,gh," + secret + ",x", "got 4 part(s)"},
		{"not a URL", "idp.example.com,gh," + secret, `--idp ISSUER,CLIENT_ID,SECRET_FILE: the issuer "idp.example.com" is not an absolute https URL`},
		{"other scheme", "ftp://idp.example.com,gh," + secret, `the issuer "ftp://idp.example.com" is not an absolute https URL`},
		{"http not on loopback", "http://idp.example.com,gh," + secret, `--idp ISSUER,CLIENT_ID,SECRET_FILE: the issuer "http://idp.example.com" uses http on a host that is not loopback: use https`},
		{"no such secret file", "https://idp.example.com,gh,hunter2-the-secret", "--idp ISSUER,CLIENT_ID,SECRET_FILE: SECRET_FILE names no file: give the path of a file holding the client secret, not the secret itself (the value is not shown)"},
		{"unreadable secret file", "https://idp.example.com,gh," + unreadable, "--idp ISSUER,CLIENT_ID,SECRET_FILE: cannot read the client secret file: read " + unreadable},
		{"empty secret file", "https://idp.example.com,gh," + empty, "--idp ISSUER,CLIENT_ID,SECRET_FILE: the client secret file " + empty + " is empty"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			data := filepath.Join(t.TempDir(), "data")
			var out bytes.Buffer
			err := run(t.Context(), []string{"dev", "--data", data, "--listen", "127.0.0.1:0", "--mcp-listen", "127.0.0.1:0", "--idp", tt.idp}, &out)
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "--idp") {
				t.Errorf("dev --idp %q = %v, want an error with %q", tt.idp, err, tt.want)
			}
			if err != nil && strings.Contains(err.Error(), "hunter2") {
				t.Errorf("dev --idp error shows the secret-file part that names no file: %v", err)
			}
			if _, err := os.Stat(data); !os.IsNotExist(err) {
				t.Errorf("dev --idp %q made its data directory before failing", tt.idp)
			}
		})
	}
	var out bytes.Buffer
	err := run(t.Context(), []string{"dev", "--listen", "127.0.0.1:0", "--idp", "https://a.example,gh," + secret, "--idp", "https://b.example,gh," + secret}, &out)
	if err == nil || !strings.Contains(err.Error(), "--idp ISSUER,CLIENT_ID,SECRET_FILE is given 2 times") {
		t.Errorf("dev with two --idp = %v, want refused", err)
	}
}
