package main

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-mcp/gatehouse/internal/syncbuf"
)

// TestDevRequestLog (issue 12, item 7): `gatehouse dev` logs one line per
// request, of the authorization server and the demo MCP server, with the
// method, path, status, client and OAuth error code; and no code, token,
// password, PKCE verifier, state or cookie value of a whole flow (with
// failures) appears in its log, as TestNoSecretsInLogs (internal/as)
// checks for the server's own log lines.
func TestDevRequestLog(t *testing.T) {
	var logs syncbuf.Buffer
	old := logOutput
	logOutput = &logs
	t.Cleanup(func() { logOutput = old })
	const pw = "request-log-password"
	t.Setenv(devPasswordEnv, pw)
	issuer, mcpURL := startDev(t, filepath.Join(t.TempDir(), "data"))

	const (
		verifier = "request-log-verifier-0123456789-0123456789-0123456789"
		state    = "request-log-state-42"
		badCode  = "request-log-unknown-code-0123456789"
	)
	sum := sha256.Sum256([]byte(verifier))
	redirect := "http://127.0.0.1:5999/callback"
	authURL := issuer + "/authorize?" + url.Values{
		"response_type": {"code"}, "client_id": {devClientID}, "redirect_uri": {redirect},
		"code_challenge": {base64.RawURLEncoding.EncodeToString(sum[:])}, "code_challenge_method": {"S256"},
		"state": {state}, "resource": {mcpURL},
	}.Encode()
	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	code := signIn(t, browser, issuer, authURL, devUserDefault, pw, redirect)
	tok := tokenRequest(t, issuer, url.Values{"grant_type": {"authorization_code"}, "code": {code}, "client_id": {devClientID},
		"redirect_uri": {redirect}, "code_verifier": {verifier}, "resource": {mcpURL}})
	tokenRequest(t, issuer, url.Values{"grant_type": {"authorization_code"}, "code": {badCode}, "client_id": {devClientID},
		"redirect_uri": {redirect}, "code_verifier": {verifier}})
	next := tokenRequest(t, issuer, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok["refresh_token"].(string)}, "client_id": {devClientID}})
	get(t, issuer+"/authorize?client_id=nobody&"+url.Values{"state": {state}}.Encode(), "")
	get(t, mcpURL, "")
	get(t, mcpURL, "not-a-token-"+badCode)
	mcpCall(t, mcpURL, next["access_token"].(string))
	// Dynamic registration (open in dev), then reading the client
	// with its registration access token.
	resp, err := http.Post(issuer+"/register", "application/json", strings.NewReader(
		`{"client_name":"log test","redirect_uris":["http://127.0.0.1/cb"],"token_endpoint_auth_method":"none","grant_types":["authorization_code","refresh_token"]}`))
	if err != nil {
		t.Fatal(err)
	}
	var reg map[string]any
	json.NewDecoder(resp.Body).Decode(&reg)
	resp.Body.Close()
	rat, _ := reg["registration_access_token"].(string)
	regURI, _ := reg["registration_client_uri"].(string)
	if rat == "" || regURI == "" {
		t.Fatalf("registration = %d %v, want a registration access token and URI", resp.StatusCode, reg)
	}
	if st := get(t, regURI, rat); st != http.StatusOK {
		t.Fatalf("GET %s with the registration access token = %d, want 200", regURI, st)
	}

	tests := []struct {
		name string
		want string // a regexp matching a whole log line
	}{
		{"authorize with the demo client", `server=as method=GET path=/authorize status=200 client=gatehouse-demo$`},
		{"sign-in", `server=as method=POST path=/login status=\d+ client=gatehouse-demo$`},
		{"consent redirects with a code", `server=as method=POST path=/consent status=30\d client=gatehouse-demo$`},
		{"token issued", `server=as method=POST path=/token status=200 client=gatehouse-demo$`},
		{"unknown code", `server=as method=POST path=/token status=400 client=gatehouse-demo error=invalid_grant$`},
		{"unknown client", `server=as method=GET path=/authorize status=400 error=invalid_client$`},
		{"MCP without a token", `server=demo-mcp method=GET path=/mcp status=401$`},
		{"MCP with a bad token", `server=demo-mcp method=GET path=/mcp status=401 error=invalid_token$`},
		{"MCP call", `server=demo-mcp method=POST path=/mcp status=200$`},
		{"registration", `server=as method=POST path=/register status=201 client=dcr_\S+$`},
		{"registration read", `server=as method=GET path=/register/dcr_\S+ status=200 client=dcr_\S+$`},
	}
	lines := strings.Split(logs.String(), "\n")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			re := regexp.MustCompile(`msg=request ` + tt.want)
			for _, l := range lines {
				if re.MatchString(l) {
					return
				}
			}
			t.Errorf("no log line matches %q; request lines:\n%s", tt.want, requestLines(lines))
		})
	}

	secrets := map[string]string{
		"code": code, "unknown code": badCode, "access token": tok["access_token"].(string),
		"refresh token": tok["refresh_token"].(string), "refreshed access token": next["access_token"].(string),
		"refreshed refresh token": next["refresh_token"].(string), "password": pw, "verifier": verifier, "state": state,
		"registration access token": rat,
	}
	u, _ := url.Parse(issuer)
	for _, c := range jar.Cookies(u) {
		secrets["cookie "+c.Name] = c.Value
	}
	for name, s := range secrets {
		if s != "" && strings.Contains(logs.String(), s) {
			t.Errorf("the %s appears in the log", name)
		}
	}
	if regexp.MustCompile(`eyJ[A-Za-z0-9_-]{10,}\.`).MatchString(logs.String()) {
		t.Errorf("a JWT appears in the log")
	}
}

// requestLines returns the request log lines of lines, for a failure message.
func requestLines(lines []string) string {
	var b strings.Builder
	for _, l := range lines {
		if strings.Contains(l, "msg=request ") {
			b.WriteString(l + "\n")
		}
	}
	return b.String()
}

var (
	hiddenInputRE = regexp.MustCompile(`<input type="hidden" name="([a-z_]+)" value="([^"]*)">`)
	formActionRE  = regexp.MustCompile(`<form id="(login-form|consent-form)" method="post" action="([^"]*)"`)
)

// signIn plays the browser from authURL: it signs in, allows, and returns
// the code of the redirect to redirect.
func signIn(t *testing.T, c *http.Client, issuer, authURL, user, pw, redirect string) string {
	t.Helper()
	resp, err := c.Get(authURL)
	for range 6 {
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if loc := resp.Header.Get("Location"); loc != "" {
			if strings.HasPrefix(loc, redirect) {
				u, err := url.Parse(loc)
				if err != nil || u.Query().Get("code") == "" {
					t.Fatalf("redirect %q carries no code", loc)
				}
				return u.Query().Get("code")
			}
			resp, err = c.Get(loc)
			continue
		}
		m := formActionRE.FindStringSubmatch(string(body))
		if m == nil {
			t.Fatalf("unexpected page (status %d):\n%s", resp.StatusCode, body)
		}
		form := url.Values{}
		for _, h := range hiddenInputRE.FindAllStringSubmatch(string(body), -1) {
			form.Set(h[1], html.UnescapeString(h[2]))
		}
		if m[1] == "login-form" {
			form.Set("username", user)
			form.Set("password", pw)
		} else {
			form.Set("decision", "allow")
		}
		resp, err = c.PostForm(issuer+html.UnescapeString(m[2]), form)
	}
	t.Fatal("no redirect to the client after 6 steps")
	return ""
}

// tokenRequest POSTs form to the token endpoint and returns the decoded
// response.
func tokenRequest(t *testing.T, issuer string, form url.Values) map[string]any {
	t.Helper()
	resp, err := http.PostForm(issuer+"/token", form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
		t.Fatalf("token response (%d): %v", resp.StatusCode, err)
	}
	return m
}

// get GETs u, with a bearer token if given, and returns the status.
func get(t *testing.T, u, bearer string) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// mcpCall sends an MCP initialize request with the access token and wants
// it answered.
func mcpCall(t *testing.T, mcpURL, accessToken string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	body := `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}`
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, mcpURL, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+accessToken)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("MCP initialize = %d %s, want 200", resp.StatusCode, strconv.Quote(string(b)))
	}
}
