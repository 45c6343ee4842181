package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io"
	"net"
	"net/http"
	"net/url"
	"os/exec"
	"runtime"
	"strings"
	"time"

	"github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/modelcontextprotocol/go-sdk/oauthex"
)

// callOptions are the flags of --call.
type callOptions struct {
	mcpURL   string // the MCP server
	tool     string // the tool to call
	args     string // its arguments, a JSON object
	clientID string // a registered public client; "" registers one (RFC 7591)
	open     bool   // try to open the authorization URL in a browser
}

// runCall signs in through the browser and calls one tool of the MCP
// server, as an MCP client would: the MCP Go SDK's OAuth handler discovers
// the authorization server from the server's 401 (protected resource
// metadata, RFC 9728, then RFC 8414 metadata), registers a client unless
// one is given, and runs the authorization-code flow with PKCE; this
// function supplies the browser part, a loopback redirect listener (RFC
// 8252 §7.3). It prints the access token's claims, never the token.
func runCall(ctx context.Context, o callOptions, out io.Writer) error {
	var args map[string]any
	if o.args != "" {
		if err := json.Unmarshal([]byte(o.args), &args); err != nil || args == nil {
			return fmt.Errorf("--args must be a JSON object such as '{\"id\":\"1\"}': %q", o.args)
		}
	}
	// The listener is opened first: its port is part of the redirect URI.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("loopback redirect listener: %w", err)
	}
	defer ln.Close()
	redirectURL := fmt.Sprintf("http://%s/callback", ln.Addr())
	results := make(chan url.Values, 1)
	srv := &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: callbackHandler(results)}
	go srv.Serve(ln)
	defer srv.Close()

	cfg := &auth.AuthorizationCodeHandlerConfig{
		RedirectURL: redirectURL,
		AuthorizationCodeFetcher: func(ctx context.Context, a *auth.AuthorizationArgs) (*auth.AuthorizationResult, error) {
			fmt.Fprintf(out, "Sign in: open this URL in your browser (waiting for the redirect to %s):\n\n  %s\n\n", redirectURL, a.URL)
			if o.open {
				openBrowser(a.URL)
			}
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case q := <-results:
				if e := q.Get("error"); e != "" {
					return nil, fmt.Errorf("authorization refused: %s: %s", e, q.Get("error_description"))
				}
				return &auth.AuthorizationResult{Code: q.Get("code"), State: q.Get("state"), Iss: q.Get("iss")}, nil
			}
		},
	}
	if o.clientID != "" {
		cfg.PreregisteredClient = &oauthex.ClientCredentials{ClientID: o.clientID}
	} else {
		cfg.DynamicClientRegistrationConfig = &auth.DynamicClientRegistrationConfig{Metadata: &oauthex.ClientRegistrationMetadata{
			ClientName:              "Gatehouse example client (examples/oauth2client)",
			RedirectURIs:            []string{redirectURL},
			GrantTypes:              []string{"authorization_code", "refresh_token"},
			ResponseTypes:           []string{"code"},
			TokenEndpointAuthMethod: "none",
		}}
	}
	handler, err := auth.NewAuthorizationCodeHandler(cfg)
	if err != nil {
		return err
	}
	client := mcp.NewClient(&mcp.Implementation{Name: "gatehouse-oauth2client", Version: "1"}, nil)
	cs, err := client.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: o.mcpURL, OAuthHandler: handler}, nil)
	if err != nil {
		return fmt.Errorf("connect to %s: %w", o.mcpURL, err)
	}
	defer cs.Close()
	first, err := printClaims(ctx, handler, out, "")
	if err != nil {
		return err
	}
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: o.tool, Arguments: args})
	if err != nil {
		return fmt.Errorf("call %s: %w", o.tool, err)
	}
	// A tool that needs a larger scope made the SDK sign in again
	// (403 insufficient_scope): show the token that made the call.
	if _, err := printClaims(ctx, handler, out, first); err != nil {
		return err
	}
	printResult(out, o.tool, res)
	if res.IsError {
		return fmt.Errorf("the tool %s reported an error", o.tool)
	}
	return nil
}

// callbackHandler receives the authorization response at /callback and
// hands its query to results (once; later requests are told so).
func callbackHandler(results chan<- url.Values) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /callback", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		select {
		case results <- q:
		default:
			http.Error(w, "This sign-in was already completed.", http.StatusConflict)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		msg := "Signed in. You can close this tab and return to the terminal."
		if e := q.Get("error"); e != "" {
			msg = "Sign-in failed: " + e + ". See the terminal."
		}
		fmt.Fprintf(w, "<!doctype html><title>Gatehouse example client</title><p>%s</p>\n", html.EscapeString(msg))
	})
	return mux
}

// printClaims prints the access token's payload, decoded, unless the
// token is still unchanged; it returns the token to compare with next
// time. The token itself is a credential and is never printed.
func printClaims(ctx context.Context, h *auth.AuthorizationCodeHandler, out io.Writer, unchanged string) (string, error) {
	ts, err := h.TokenSource(ctx)
	if err != nil || ts == nil {
		return "", fmt.Errorf("no token after sign-in: %v", err)
	}
	tok, err := ts.Token()
	if err != nil {
		return "", err
	}
	if tok.AccessToken == unchanged {
		return unchanged, nil
	}
	claims, err := decodeClaims(tok.AccessToken)
	if err != nil {
		return "", err
	}
	what := "Signed in. The access token's claims"
	if unchanged != "" {
		what = "Signed in again for a larger scope. The new access token's claims"
	}
	fmt.Fprintf(out, "%s (the token itself is not shown):\n%s\n\n", what, claims)
	return tok.AccessToken, nil
}

// decodeClaims returns the payload of a JWT, indented. It does not verify
// the signature: the MCP server does that; this is for reading.
func decodeClaims(jwt string) (string, error) {
	parts := strings.Split(jwt, ".")
	if len(parts) != 3 {
		return "", errors.New("the access token is not a JWT")
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return "", fmt.Errorf("the access token's payload: %w", err)
	}
	var claims map[string]any
	if err := json.Unmarshal(raw, &claims); err != nil {
		return "", fmt.Errorf("the access token's payload: %w", err)
	}
	b, err := json.MarshalIndent(claims, "  ", "  ")
	if err != nil {
		return "", err
	}
	return "  " + string(b), nil
}

// printResult prints a tool result: its text content as text, anything
// else as JSON.
func printResult(out io.Writer, tool string, res *mcp.CallToolResult) {
	fmt.Fprintf(out, "Result of %s:\n", tool)
	for _, c := range res.Content {
		if t, ok := c.(*mcp.TextContent); ok {
			fmt.Fprintf(out, "%s\n", t.Text)
			continue
		}
		b, _ := json.Marshal(c)
		fmt.Fprintf(out, "%s\n", b)
	}
	if res.StructuredContent != nil && len(res.Content) == 0 {
		b, _ := json.MarshalIndent(res.StructuredContent, "", "  ")
		fmt.Fprintf(out, "%s\n", b)
	}
}

// openBrowser tries to open u in the desktop's browser; the URL is printed
// anyway, so a failure (no desktop, no opener) is silent.
func openBrowser(u string) {
	var cmd *exec.Cmd
	switch runtime.GOOS {
	case "darwin":
		cmd = exec.Command("open", u)
	case "windows":
		cmd = exec.Command("rundll32", "url.dll,FileProtocolHandler", u)
	default:
		if _, err := exec.LookPath("xdg-open"); err != nil {
			return
		}
		cmd = exec.Command("xdg-open", u)
	}
	if cmd.Start() == nil {
		go cmd.Wait()
	}
}
