// Command oauth2client is an example OAuth client of Gatehouse, in two modes.
//
// With --call TOOL it is a newcomer's first tool call: it signs in through
// the browser (it prints the URL, and opens it where it can) and calls one
// tool of an MCP server, discovering everything from the server's URL. It
// prints the access token's claims (never the token) and the tool result:
//
//	gatehouse dev &
//	go run github.com/gatehouse-mcp/gatehouse/examples/oauth2client@latest --call list_notes
//	... --call read_note --args '{"id":"1"}'
//
// Without --call it runs the authorization-code flow with PKCE, then a
// refresh, against a Gatehouse issuer using golang.org/x/oauth2 as the
// client. It plays the browser itself (it fills the login and consent
// forms), so it needs no window: it is the smoke test of `gatehouse dev`.
//
//	go run ./cmd/gatehouse dev &
//	go run ./examples/oauth2client
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"html"
	"io"
	"log"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"regexp"
	"strings"
	"time"

	"golang.org/x/oauth2"
)

func main() {
	issuer := flag.String("issuer", "http://127.0.0.1:8080", "issuer URL")
	clientID := flag.String("client-id", "gatehouse-demo", "public client id")
	user := flag.String("user", "demo", "username")
	pwFile := flag.String("password-file", "./gatehouse-data/demo-password", "file with the password (gatehouse dev writes it)")
	resource := flag.String("resource", "", "resource indicator (default: the AS's single resource)")
	call := flag.String("call", "", "sign in through the browser and call this tool of the MCP server --mcp (e.g. list_notes)")
	mcpURL := flag.String("mcp", "http://127.0.0.1:8081/mcp", "with --call: the MCP server's URL (gatehouse dev's demo by default)")
	args := flag.String("args", "", "with --call: the tool's arguments, a JSON object such as '{\"id\":\"1\"}'")
	open := flag.Bool("open", true, "with --call: open the sign-in URL in the desktop's browser (it is printed either way)")
	flag.Parse()
	if *call != "" {
		// With --call a client is registered (RFC 7591) unless
		// --client-id names one: the smoke test's default is not used.
		id := ""
		flag.Visit(func(f *flag.Flag) {
			if f.Name == "client-id" {
				id = *clientID
			}
		})
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		if err := runCall(ctx, callOptions{mcpURL: *mcpURL, tool: *call, args: *args, clientID: id, open: *open}, os.Stdout); err != nil {
			log.Fatal(err)
		}
		return
	}
	pw, err := os.ReadFile(*pwFile)
	if err != nil {
		log.Fatal(err)
	}
	if err := run(context.Background(), *issuer, *clientID, *user, strings.TrimSpace(string(pw)), *resource, os.Stdout); err != nil {
		log.Fatal(err)
	}
}

func run(ctx context.Context, issuer, clientID, user, password, resource string, out io.Writer) error {
	cfg := &oauth2.Config{
		ClientID:    clientID,
		RedirectURL: "http://127.0.0.1:53682/callback", // never listened on: the flow stops at the redirect
		Endpoint:    oauth2.Endpoint{AuthURL: issuer + "/authorize", TokenURL: issuer + "/token", AuthStyle: oauth2.AuthStyleInParams},
	}
	verifier := oauth2.GenerateVerifier()
	state := oauth2.GenerateVerifier()[:16]
	var extra []oauth2.AuthCodeOption
	if resource != "" {
		extra = append(extra, oauth2.SetAuthURLParam("resource", resource))
	}
	authURL := cfg.AuthCodeURL(state, append([]oauth2.AuthCodeOption{oauth2.S256ChallengeOption(verifier)}, extra...)...)

	code, err := browse(authURL, cfg.RedirectURL, user, password, state, issuer)
	if err != nil {
		return err
	}
	fmt.Fprintln(out, "authorization code received (state and iss checked)")
	tok, err := cfg.Exchange(ctx, code, append([]oauth2.AuthCodeOption{oauth2.VerifierOption(verifier)}, extra...)...)
	if err != nil {
		return fmt.Errorf("exchange: %w", err)
	}
	fmt.Fprintf(out, "access token: %d bytes, type %s, expires in %s, scope %v\n", len(tok.AccessToken), tok.TokenType, time.Until(tok.Expiry).Round(time.Second), tok.Extra("scope"))
	if tok.RefreshToken == "" {
		return errors.New("no refresh token issued")
	}
	tok.Expiry = time.Now().Add(-time.Second) // force a refresh
	next, err := cfg.TokenSource(ctx, tok).Token()
	if err != nil {
		return fmt.Errorf("refresh: %w", err)
	}
	if next.RefreshToken == tok.RefreshToken || next.AccessToken == tok.AccessToken {
		return errors.New("refresh did not rotate the tokens")
	}
	fmt.Fprintln(out, "refreshed: new access token and rotated refresh token")
	fmt.Fprintln(out, "OK: code + PKCE -> token -> refresh")
	return nil
}

var (
	hiddenRE = regexp.MustCompile(`<input type="hidden" name="([a-z_]+)" value="([^"]*)">`)
	actionRE = regexp.MustCompile(`<form id="(login-form|consent-form)" method="post" action="([^"]*)"`)
)

// browse follows the authorization request like a browser: it submits the
// login form, allows on the consent page, and stops at the redirect to
// redirectURI, returning the code after checking state and iss (RFC 9207).
func browse(authURL, redirectURI, user, password, state, issuer string) (string, error) {
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, Timeout: 30 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	origin, _ := url.Parse(issuer)
	resp, err := c.Get(authURL)
	for step := 0; step < 5; step++ {
		if err != nil {
			return "", err
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if loc := resp.Header.Get("Location"); loc != "" {
			if !strings.HasPrefix(loc, redirectURI) {
				resp, err = c.Get(loc)
				continue
			}
			u, err := url.Parse(loc)
			if err != nil {
				return "", err
			}
			q := u.Query()
			if e := q.Get("error"); e != "" {
				return "", fmt.Errorf("authorization error %s: %s", e, q.Get("error_description"))
			}
			if q.Get("state") != state || q.Get("iss") != issuer {
				return "", fmt.Errorf("redirect has state %q iss %q, want %q and %q", q.Get("state"), q.Get("iss"), state, issuer)
			}
			return q.Get("code"), nil
		}
		m := actionRE.FindStringSubmatch(string(body))
		if m == nil {
			return "", fmt.Errorf("unexpected page (status %d)", resp.StatusCode)
		}
		form := url.Values{}
		for _, h := range hiddenRE.FindAllStringSubmatch(string(body), -1) {
			form.Set(h[1], html.UnescapeString(h[2]))
		}
		if m[1] == "login-form" {
			if strings.Contains(string(body), `id="login-error"`) {
				return "", errors.New("login refused: wrong username or password")
			}
			form.Set("username", user)
			form.Set("password", password)
		} else {
			form.Set("decision", "allow")
		}
		action := (&url.URL{Scheme: origin.Scheme, Host: origin.Host}).String() + html.UnescapeString(m[2])
		resp, err = c.PostForm(action, form)
	}
	return "", errors.New("too many steps without reaching the redirect URI")
}
