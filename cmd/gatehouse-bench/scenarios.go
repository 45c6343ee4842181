package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"time"
)

// endpoints are a server's paths and URLs.
type endpoints struct {
	token      string // path on public
	authorize  string // path on public
	jwks       string // path on public
	discovery  string // path on public
	introspect string // absolute URL (Hydra: the admin API)
}

// credentials of one confidential client.
type clientCreds struct {
	id, secret string
}

func (c clientCreds) basic() string {
	return "Authorization: Basic " + base64.StdEncoding.EncodeToString([]byte(url.QueryEscape(c.id)+":"+url.QueryEscape(c.secret)))
}

// bench holds what every scenario needs.
type bench struct {
	flavor    string // "gatehouse" or "hydra"
	public    string // base URL of the public listener, no trailing slash
	admin     string // Hydra admin API base URL
	ep        endpoints
	timeout   time.Duration
	cc        clientCreds // client_credentials, JWT access tokens
	ccOpaque  clientCreds // Hydra: client_credentials with opaque tokens
	intro     clientCreds // Gatehouse: the client that authenticates to /introspect
	pub       string      // public client for the code flow (JWT access tokens)
	pubOpaque string      // Hydra: public client with opaque access tokens
	redirect  string
	resource  string // Gatehouse resource indicator / Hydra audience
	scope     string // scope for client_credentials and the code flow ("" = default)
	username  string // Gatehouse login
	password  string
	poolSize  int

	// Token exchange (gatehouse): the exchanging client and the target.
	exchange      clientCreds
	exchangeRes   string
	exchangeScope string

	rsURL       string
	rsTool      string
	rsArgs      string
	rsProto     string
	rsToken     string
	rsResource  string // resource the rs token is for; default rsURL
	rsScopeFlag string

	// gatehouse: one browser session shared by all workers, set up once.
	sessionOnce sync.Once
	sessionErr  error
	session     cookieJar
}

func (b *bench) scenarios() map[string]scenario {
	return map[string]scenario{
		"discovery": {name: "discovery", unit: "req", desc: "GET the authorization server metadata",
			newWorker: b.getWorker(b.ep.discovery)},
		"jwks": {name: "jwks", unit: "req", desc: "GET the JWKS",
			newWorker: b.getWorker(b.ep.jwks)},
		"client_credentials": {name: "client_credentials", unit: "req", desc: "client_credentials grant, JWT access token, client_secret_basic",
			newWorker: b.ccWorker(func() clientCreds { return b.cc })},
		"client_credentials_opaque": {name: "client_credentials_opaque", unit: "req", desc: "client_credentials grant, opaque access token (Hydra only)",
			newWorker: b.ccWorker(func() clientCreds { return b.ccOpaque })},
		"introspect": {name: "introspect", unit: "req", desc: "RFC 7662 introspection of an active access token (pool of tokens)",
			newWorker: b.introspectWorker()},
		"code_flow": {name: "code_flow", unit: "flow", desc: "authorize (session and consent present) → code → token with refresh token",
			newWorker: b.codeFlowWorker(func() string { return b.pub })},
		"code_flow_opaque": {name: "code_flow_opaque", unit: "flow", desc: "code_flow with opaque access tokens (Hydra only)",
			newWorker: b.codeFlowWorker(func() string { return b.pubOpaque })},
		"refresh": {name: "refresh", unit: "req", desc: "refresh_token grant with rotation, one token family per worker",
			newWorker: b.refreshWorker(func() string { return b.pub })},
		"refresh_opaque": {name: "refresh_opaque", unit: "req", desc: "refresh with opaque access tokens (Hydra only)",
			newWorker: b.refreshWorker(func() string { return b.pubOpaque })},
		"exchange": {name: "exchange", unit: "req", desc: "RFC 8693 token exchange of a user's access token (one code flow per worker) for --exchange-resource",
			newWorker: b.exchangeWorker()},
		"rs_tools_call": {name: "rs_tools_call", unit: "req", desc: "MCP tools/call with a Bearer token through the rs middleware or the gateway (--rs-url)",
			newWorker: b.rsWorker()},
	}
}

var scenarioOrder = []string{"discovery", "jwks", "client_credentials", "client_credentials_opaque", "introspect",
	"code_flow", "code_flow_opaque", "refresh", "refresh_opaque", "exchange", "rs_tools_call"}

func (b *bench) conn() (*conn, error) { return newConn(b.public, b.timeout) }

func expect(resp response, err error, status int, what string) error {
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if resp.Status != status {
		body := resp.Body
		if len(body) > 300 {
			body = body[:300]
		}
		return fmt.Errorf("%s: HTTP %d, want %d: %s", what, resp.Status, status, bytes.TrimSpace(body))
	}
	return nil
}

const formCT = "Content-Type: application/x-www-form-urlencoded"

func (b *bench) getWorker(path string) func(context.Context, int, int) (op, func(), error) {
	return func(context.Context, int, int) (op, func(), error) {
		c, err := b.conn()
		if err != nil {
			return nil, nil, err
		}
		hdr := []string{"Accept: application/json"}
		return func() (int, error) {
			resp, err := c.do("GET", path, hdr, nil)
			return 1, expect(resp, err, 200, "GET "+path)
		}, c.close, nil
	}
}

func (b *bench) ccForm() string {
	v := url.Values{"grant_type": {"client_credentials"}}
	if b.scope != "" {
		v.Set("scope", b.scope)
	}
	if b.resource != "" {
		if b.flavor == "hydra" {
			v.Set("audience", b.resource)
		} else {
			v.Set("resource", b.resource)
		}
	}
	return v.Encode()
}

func (b *bench) ccWorker(creds func() clientCreds) func(context.Context, int, int) (op, func(), error) {
	return func(context.Context, int, int) (op, func(), error) {
		cr := creds()
		if cr.id == "" {
			return nil, nil, errSkip
		}
		c, err := b.conn()
		if err != nil {
			return nil, nil, err
		}
		hdr := []string{cr.basic(), formCT, "Accept: application/json"}
		body := []byte(b.ccForm())
		return func() (int, error) {
			resp, err := c.do("POST", b.ep.token, hdr, body)
			if err := expect(resp, err, 200, "client_credentials"); err != nil {
				return 1, err
			}
			if !bytes.Contains(resp.Body, []byte(`"access_token"`)) {
				return 1, errors.New("client_credentials: no access_token in the response")
			}
			return 1, nil
		}, c.close, nil
	}
}

// exchangeWorker exchanges a user's access token, got by one code flow
// at the worker's start, for a token for b.exchangeRes, again and again:
// the gateway's path toward an API when its cache misses.
func (b *bench) exchangeWorker() func(context.Context, int, int) (op, func(), error) {
	return func(context.Context, int, int) (op, func(), error) {
		if b.flavor == "hydra" || b.exchange.id == "" || b.exchangeRes == "" {
			return nil, nil, errSkip
		}
		w, err := b.newFlowWorker(b.pub)
		if err != nil {
			return nil, nil, err
		}
		if _, err := w.setupFlow(); err != nil {
			w.close()
			return nil, nil, err
		}
		v := url.Values{
			"grant_type":         {"urn:ietf:params:oauth:grant-type:token-exchange"},
			"subject_token":      {w.access},
			"subject_token_type": {"urn:ietf:params:oauth:token-type:access_token"},
			"resource":           {b.exchangeRes},
		}
		if b.exchangeScope != "" {
			v.Set("scope", b.exchangeScope)
		}
		body := []byte(v.Encode())
		hdr := []string{b.exchange.basic(), formCT, "Accept: application/json"}
		return func() (int, error) {
			resp, err := w.pub.do("POST", b.ep.token, hdr, body)
			if err := expect(resp, err, 200, "token exchange"); err != nil {
				return 1, err
			}
			if !bytes.Contains(resp.Body, []byte(`"issued_token_type"`)) {
				return 1, errors.New("token exchange: no issued_token_type in the response")
			}
			return 1, nil
		}, w.close, nil
	}
}

// errSkip marks a scenario the target does not have.
var errSkip = errors.New("not available for this target")

// mintCC gets one client_credentials access token.
func (b *bench) mintCC(c *conn, cr clientCreds, form string) (string, error) {
	resp, err := c.do("POST", b.ep.token, []string{cr.basic(), formCT}, []byte(form))
	if err := expect(resp, err, 200, "client_credentials"); err != nil {
		return "", err
	}
	var t struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.Unmarshal(resp.Body, &t); err != nil || t.AccessToken == "" {
		return "", fmt.Errorf("client_credentials: no access_token: %s", resp.Body)
	}
	return t.AccessToken, nil
}

// introspectWorker introspects tokens from a pool minted once per run.
// Gatehouse issues JWT access tokens; Hydra's pool comes from its opaque
// client (its default strategy) when one is configured.
func (b *bench) introspectWorker() func(context.Context, int, int) (op, func(), error) {
	var (
		once sync.Once
		pool []string
		perr error
	)
	return func(_ context.Context, i, _ int) (op, func(), error) {
		once.Do(func() {
			c, err := b.conn()
			if err != nil {
				perr = err
				return
			}
			defer c.close()
			cr := b.cc
			if b.flavor == "hydra" && b.ccOpaque.id != "" {
				cr = b.ccOpaque
			}
			for range b.poolSize {
				t, err := b.mintCC(c, cr, b.ccForm())
				if err != nil {
					perr = err
					return
				}
				pool = append(pool, t)
			}
		})
		if perr != nil {
			return nil, nil, perr
		}
		c, err := newConn(b.ep.introspect, b.timeout)
		if err != nil {
			return nil, nil, err
		}
		path, err := requestTarget(b.ep.introspect)
		if err != nil {
			return nil, nil, err
		}
		hdr := []string{formCT, "Accept: application/json"}
		if b.flavor != "hydra" { // Hydra's admin API takes no client authentication
			hdr = append(hdr, b.intro.basic())
		}
		bodies := make([][]byte, len(pool))
		for j, t := range pool {
			bodies[j] = []byte(url.Values{"token": {t}}.Encode())
		}
		k := i
		return func() (int, error) {
			k = (k + 1) % len(bodies)
			resp, err := c.do("POST", path, hdr, bodies[k])
			if err := expect(resp, err, 200, "introspect"); err != nil {
				return 1, err
			}
			if !bytes.Contains(resp.Body, []byte(`"active":true`)) {
				return 1, fmt.Errorf("introspect: token not active: %s", resp.Body)
			}
			return 1, nil
		}, c.close, nil
	}
}

// pkce returns a fresh verifier and its S256 challenge.
func pkce() (verifier, challenge string) {
	verifier = rand.Text() + rand.Text() // 52 chars of base32: valid verifier characters
	sum := sha256.Sum256([]byte(verifier))
	return verifier, base64.RawURLEncoding.EncodeToString(sum[:])
}

// flowWorker holds a worker's connections and cookies for the browser part.
type flowWorker struct {
	b      *bench
	client string
	pub    *conn
	adm    *conn // Hydra admin API
	jar    cookieJar
	access string // the access token of the last flow
}

func (b *bench) newFlowWorker(client string) (*flowWorker, error) {
	if client == "" {
		return nil, errSkip
	}
	c, err := b.conn()
	if err != nil {
		return nil, err
	}
	w := &flowWorker{b: b, client: client, pub: c, jar: cookieJar{}}
	if b.flavor == "hydra" {
		if w.adm, err = newConn(b.admin, b.timeout); err != nil {
			return nil, err
		}
	} else {
		if err := b.gatehouseSession(); err != nil {
			return nil, err
		}
		for k, v := range b.session {
			w.jar[k] = v
		}
	}
	return w, nil
}

func (w *flowWorker) close() {
	w.pub.close()
	if w.adm != nil {
		w.adm.close()
	}
}

func (b *bench) authorizeURL(client, challenge string) string {
	v := url.Values{
		"response_type":         {"code"},
		"client_id":             {client},
		"redirect_uri":          {b.redirect},
		"state":                 {"bench-state-0123"},
		"code_challenge":        {challenge},
		"code_challenge_method": {"S256"},
	}
	if b.flavor == "hydra" {
		v.Set("scope", strings.TrimSpace("openid offline_access "+b.scope))
		if b.resource != "" {
			v.Set("audience", b.resource)
		}
	} else {
		if b.scope != "" {
			v.Set("scope", b.scope)
		}
		if b.resource != "" {
			v.Set("resource", b.resource)
		}
	}
	return b.ep.authorize + "?" + v.Encode()
}

// codeFromLocation extracts the code of a redirect to the client.
func (b *bench) codeFromLocation(loc string) (string, error) {
	if !strings.HasPrefix(loc, b.redirect) {
		return "", fmt.Errorf("redirected to %q, not to the client", loc)
	}
	u, err := url.Parse(loc)
	if err != nil {
		return "", err
	}
	q := u.Query()
	if e := q.Get("error"); e != "" {
		return "", fmt.Errorf("authorization error %s: %s", e, q.Get("error_description"))
	}
	code := q.Get("code")
	if code == "" {
		return "", fmt.Errorf("no code in %q", loc)
	}
	return code, nil
}

// authorize runs the browser part of a code flow with the worker's
// session and returns the code and the number of HTTP requests made.
func (w *flowWorker) authorize(challenge string) (string, int, error) {
	b := w.b
	hdr := []string{"Accept: text/html"}
	if ck := w.jar.header(); ck != "" {
		hdr = append(hdr, ck)
	}
	resp, err := w.pub.do("GET", b.authorizeURL(w.client, challenge), hdr, nil)
	if err := expect(resp, err, 302, "authorize"); err != nil {
		return "", 1, err
	}
	w.jar.update(resp.SetCookies)
	if b.flavor != "hydra" {
		code, err := b.codeFromLocation(resp.Location)
		return code, 1, err
	}
	return w.hydraLoginConsent(resp.Location)
}

// token redeems a code and returns the refresh token.
func (w *flowWorker) token(code, verifier string) (string, error) {
	v := url.Values{
		"grant_type":    {"authorization_code"},
		"code":          {code},
		"redirect_uri":  {w.b.redirect},
		"client_id":     {w.client},
		"code_verifier": {verifier},
	}
	resp, err := w.pub.do("POST", w.b.ep.token, []string{formCT, "Accept: application/json"}, []byte(v.Encode()))
	if err := expect(resp, err, 200, "token (authorization_code)"); err != nil {
		return "", err
	}
	var t struct {
		AccessToken  string `json:"access_token"`
		RefreshToken string `json:"refresh_token"`
	}
	if err := json.Unmarshal(resp.Body, &t); err != nil || t.AccessToken == "" {
		return "", fmt.Errorf("token (authorization_code): no access_token: %s", resp.Body)
	}
	if t.RefreshToken == "" {
		return "", errors.New("token (authorization_code): no refresh_token")
	}
	w.access = t.AccessToken
	return t.RefreshToken, nil
}

// setupFlow runs a flow for a worker's setup, retrying a few times: Hydra
// on its in-memory SQLite refuses concurrent flows now and then ("unable
// to serialize access"), which the measurement counts but setup must not
// fail on.
func (w *flowWorker) setupFlow() (string, error) {
	var err error
	for attempt := 0; attempt < 8; attempt++ {
		var rt string
		if rt, _, err = w.flow(); err == nil {
			return rt, nil
		}
		time.Sleep(time.Duration(attempt+1) * 50 * time.Millisecond)
	}
	return "", err
}

// flow runs one whole code flow and returns the refresh token.
func (w *flowWorker) flow() (string, int, error) {
	verifier, challenge := pkce()
	code, n, err := w.authorize(challenge)
	if err != nil {
		return "", n, err
	}
	rt, err := w.token(code, verifier)
	return rt, n + 1, err
}

func (b *bench) codeFlowWorker(client func() string) func(context.Context, int, int) (op, func(), error) {
	return func(context.Context, int, int) (op, func(), error) {
		w, err := b.newFlowWorker(client())
		if err != nil {
			return nil, nil, err
		}
		// One flow in setup: Hydra's first flow per browser logs in and
		// consents; afterwards session and consent are remembered.
		if _, err := w.setupFlow(); err != nil {
			w.close()
			return nil, nil, err
		}
		return func() (int, error) {
			_, n, err := w.flow()
			return n, err
		}, w.close, nil
	}
}

func (b *bench) refreshWorker(client func() string) func(context.Context, int, int) (op, func(), error) {
	return func(context.Context, int, int) (op, func(), error) {
		w, err := b.newFlowWorker(client())
		if err != nil {
			return nil, nil, err
		}
		rt, err := w.setupFlow()
		if err != nil {
			w.close()
			return nil, nil, err
		}
		hdr := []string{formCT, "Accept: application/json"}
		return func() (int, error) {
			extra := 0
			if rt == "" { // the family broke on an earlier error: start a new one
				var n int
				if rt, n, err = w.flow(); err != nil {
					return n, err
				}
				extra = n
			}
			body := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}, "client_id": {w.client}}.Encode()
			resp, err := w.pub.do("POST", b.ep.token, hdr, []byte(body))
			if err := expect(resp, err, 200, "refresh"); err != nil {
				rt = ""
				return extra + 1, err
			}
			var t struct {
				RefreshToken string `json:"refresh_token"`
			}
			if err := json.Unmarshal(resp.Body, &t); err != nil || t.RefreshToken == "" {
				rt = ""
				return extra + 1, fmt.Errorf("refresh: no refresh_token: %s", resp.Body)
			}
			rt = t.RefreshToken
			return extra + 1, nil
		}, w.close, nil
	}
}
