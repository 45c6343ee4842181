package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"time"
)

// setupClient is net/http for the steps that are not measured: it keeps
// cookies and never follows redirects.
func setupClient(timeout time.Duration) *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{
		Jar:     jar,
		Timeout: timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}

var (
	formRe   = regexp.MustCompile(`(?s)<form[^>]*id="(login-form|consent-form)"[^>]*>.*?</form>`)
	actionRe = regexp.MustCompile(`action="([^"]*)"`)
	hiddenRe = regexp.MustCompile(`<input[^>]*type="hidden"[^>]*>`)
	nameRe   = regexp.MustCompile(`name="([^"]*)"`)
	valueRe  = regexp.MustCompile(`value="([^"]*)"`)
)

// parseForm finds the login or consent form of a Gatehouse page: its id,
// action and hidden fields.
func parseHTMLForm(page []byte) (id, action string, fields url.Values, err error) {
	m := formRe.FindSubmatch(page)
	if m == nil {
		return "", "", nil, errors.New("no #login-form or #consent-form in the page")
	}
	form := m[0]
	id = string(m[1])
	if a := actionRe.FindSubmatch(form); a != nil {
		action = html.UnescapeString(string(a[1]))
	}
	fields = url.Values{}
	for _, in := range hiddenRe.FindAll(form, -1) {
		n, v := nameRe.FindSubmatch(in), valueRe.FindSubmatch(in)
		if n != nil && v != nil {
			fields.Set(html.UnescapeString(string(n[1])), html.UnescapeString(string(v[1])))
		}
	}
	return id, action, fields, nil
}

// gatehouseSession logs the bench user in and consents once, through the
// real login and consent pages, and keeps the browser's cookies for every
// worker: from then on /authorize answers with a code straight away.
func (b *bench) gatehouseSession() error {
	b.sessionOnce.Do(func() { b.sessionErr = b.loginAndConsent() })
	return b.sessionErr
}

func (b *bench) loginAndConsent() error {
	if b.username == "" || b.password == "" {
		return errors.New("the code flow needs --username and --password (a user registered on the server)")
	}
	hc := setupClient(30 * time.Second)
	base, _ := url.Parse(b.public)
	_, challenge := pkce()
	resp, err := hc.Get(b.public + b.authorizeURL(b.pub, challenge))
	if err != nil {
		return err
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for step := 0; step < 4; step++ {
		if resp.StatusCode == http.StatusFound || resp.StatusCode == http.StatusSeeOther {
			if _, err := b.codeFromLocation(resp.Header.Get("Location")); err != nil {
				return fmt.Errorf("login: %w", err)
			}
			b.session = cookieJar{}
			for _, c := range hc.Jar.Cookies(base) {
				b.session[c.Name] = c.Value
			}
			return nil
		}
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("login: HTTP %d: %.300s", resp.StatusCode, page)
		}
		id, action, fields, err := parseHTMLForm(page)
		if err != nil {
			return fmt.Errorf("login: %w", err)
		}
		switch id {
		case "login-form":
			fields.Set("username", b.username)
			fields.Set("password", b.password)
		case "consent-form":
			fields.Set("decision", "allow")
		}
		target, err := base.Parse(action)
		if err != nil {
			return err
		}
		resp, err = hc.PostForm(target.String(), fields)
		if err != nil {
			return err
		}
		page, _ = io.ReadAll(resp.Body)
		resp.Body.Close()
	}
	return errors.New("login: no code after login and consent")
}

// hydraLoginConsent plays Hydra's login and consent app for one flow, the
// way a real one does: read the login request, accept it (with the
// remembered subject when Hydra says skip), follow the browser redirect,
// read and accept the consent request, follow again to the code.
func (w *flowWorker) hydraLoginConsent(loginURL string) (string, int, error) {
	n := 1
	lc, err := queryParam(loginURL, "login_challenge")
	if err != nil {
		return "", n, err
	}
	var login struct {
		Skip    bool   `json:"skip"`
		Subject string `json:"subject"`
	}
	n++
	if err := w.adminJSON("GET", "/admin/oauth2/auth/requests/login?login_challenge="+url.QueryEscape(lc), nil, &login); err != nil {
		return "", n, err
	}
	subject := "bench-user"
	if login.Skip {
		subject = login.Subject
	}
	var redirect struct {
		RedirectTo string `json:"redirect_to"`
	}
	n++
	if err := w.adminJSON("PUT", "/admin/oauth2/auth/requests/login/accept?login_challenge="+url.QueryEscape(lc),
		map[string]any{"subject": subject, "remember": true, "remember_for": 0}, &redirect); err != nil {
		return "", n, err
	}
	n++
	consentURL, err := w.follow(redirect.RedirectTo)
	if err != nil {
		return "", n, err
	}
	cc, err := queryParam(consentURL, "consent_challenge")
	if err != nil {
		return "", n, err
	}
	var consent struct {
		Skip     bool     `json:"skip"`
		Scope    []string `json:"requested_scope"`
		Audience []string `json:"requested_access_token_audience"`
	}
	n++
	if err := w.adminJSON("GET", "/admin/oauth2/auth/requests/consent?consent_challenge="+url.QueryEscape(cc), nil, &consent); err != nil {
		return "", n, err
	}
	n++
	if err := w.adminJSON("PUT", "/admin/oauth2/auth/requests/consent/accept?consent_challenge="+url.QueryEscape(cc),
		map[string]any{"grant_scope": consent.Scope, "grant_access_token_audience": consent.Audience, "remember": true, "remember_for": 0},
		&redirect); err != nil {
		return "", n, err
	}
	n++
	final, err := w.follow(redirect.RedirectTo)
	if err != nil {
		return "", n, err
	}
	code, err := w.b.codeFromLocation(final)
	return code, n, err
}

// follow GETs a URL on the public listener with the worker's cookies and
// returns the Location it redirects to.
func (w *flowWorker) follow(raw string) (string, error) {
	target, err := requestTarget(raw)
	if err != nil {
		return "", err
	}
	hdr := []string{"Accept: text/html"}
	if ck := w.jar.header(); ck != "" {
		hdr = append(hdr, ck)
	}
	resp, err := w.pub.do("GET", target, hdr, nil)
	if err == nil && resp.Status == 303 {
		resp.Status = 302
	}
	if err := expect(resp, err, 302, "GET "+truncate(target, 60)); err != nil {
		return "", err
	}
	w.jar.update(resp.SetCookies)
	return resp.Location, nil
}

func (w *flowWorker) adminJSON(method, target string, in, out any) error {
	var (
		body []byte
		hdr  = []string{"Accept: application/json"}
	)
	if in != nil {
		body, _ = json.Marshal(in)
		hdr = append(hdr, "Content-Type: application/json")
	}
	resp, err := w.adm.do(method, target, hdr, body)
	if err := expect(resp, err, 200, method+" "+truncate(target, 60)); err != nil {
		return err
	}
	return json.Unmarshal(resp.Body, out)
}

func queryParam(raw, name string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", err
	}
	v := u.Query().Get(name)
	if v == "" {
		if e := u.Query().Get("error"); e != "" {
			return "", fmt.Errorf("%s: %s", e, u.Query().Get("error_description"))
		}
		return "", fmt.Errorf("no %s in %q", name, truncate(raw, 200))
	}
	return v, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// hydraSetup registers the equivalent clients through Hydra's admin API:
// client_credentials with JWT and with opaque access tokens (client_secret_basic),
// and public code-flow clients (PKCE, refresh tokens) with each strategy.
func (b *bench) hydraSetup(ctx context.Context) error {
	hc := setupClient(30 * time.Second)
	create := func(m map[string]any) (clientCreds, error) {
		body, _ := json.Marshal(m)
		req, _ := http.NewRequestWithContext(ctx, "POST", b.admin+"/admin/clients", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		resp, err := hc.Do(req)
		if err != nil {
			return clientCreds{}, err
		}
		defer resp.Body.Close()
		rb, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusOK {
			return clientCreds{}, fmt.Errorf("hydra: create client: HTTP %d: %s", resp.StatusCode, rb)
		}
		var c struct {
			ID     string `json:"client_id"`
			Secret string `json:"client_secret"`
		}
		if err := json.Unmarshal(rb, &c); err != nil {
			return clientCreds{}, err
		}
		return clientCreds{c.ID, c.Secret}, nil
	}
	aud := []string{}
	if b.resource != "" {
		aud = []string{b.resource}
	}
	scope := strings.TrimSpace(b.scope)
	var err error
	for _, s := range []struct {
		dst      *clientCreds
		strategy string
	}{{&b.cc, "jwt"}, {&b.ccOpaque, "opaque"}} {
		if s.dst.id != "" {
			continue
		}
		*s.dst, err = create(map[string]any{
			"client_name": "bench-cc-" + s.strategy, "grant_types": []string{"client_credentials"},
			"token_endpoint_auth_method": "client_secret_basic", "scope": scope, "audience": aud,
			"access_token_strategy": s.strategy,
		})
		if err != nil {
			return err
		}
	}
	for _, s := range []struct {
		dst      *string
		strategy string
	}{{&b.pub, "jwt"}, {&b.pubOpaque, "opaque"}} {
		if *s.dst != "" {
			continue
		}
		c, err := create(map[string]any{
			"client_name": "bench-pub-" + s.strategy, "grant_types": []string{"authorization_code", "refresh_token"},
			"response_types": []string{"code"}, "token_endpoint_auth_method": "none",
			"redirect_uris": []string{b.redirect}, "scope": strings.TrimSpace("openid offline_access " + scope),
			"audience": aud, "access_token_strategy": s.strategy,
		})
		if err != nil {
			return err
		}
		*s.dst = c.id
	}
	// Hydra generates its RSA-4096 signing keys on first use, which takes
	// seconds: do that here, not in a measurement.
	for _, u := range []string{b.public + b.ep.jwks} {
		if resp, err := hc.Get(u); err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	}
	c, err := b.conn()
	if err != nil {
		return err
	}
	defer c.close()
	if _, err := b.mintCC(c, b.cc, b.ccForm()); err != nil {
		return fmt.Errorf("hydra: warm-up token: %w", err)
	}
	return nil
}
