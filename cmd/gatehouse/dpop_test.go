package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-mcp/gatehouse/internal/dpop"
)

// dpopDo sends a request with a fresh DPoP proof for it (and for tok, when
// given) and returns the status, headers and body.
func dpopDo(t *testing.T, s *dpop.Signer, method, u, auth, tok, contentType, body string) (int, http.Header, string) {
	t.Helper()
	proof, err := s.Proof(dpop.ProofClaims{Method: method, URL: u, AccessToken: tok, IssuedAt: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, method, u, strings.NewReader(body))
	req.Header.Set("Content-Type", contentType)
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("DPoP", proof)
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

// TestDevDPoPEndToEnd: through `gatehouse dev`, its real constructors and
// its demo MCP server (protected by rs), a client with a DPoP key signs in
// the demo user, gets a DPoP-bound token and refresh token (RFC 9449 §5),
// refreshes with a proof, and calls the MCP server with Authorization:
// DPoP and a proof (§7.1). The same token sent as a bearer token is
// refused with the DPoP challenge.
func TestDevDPoPEndToEnd(t *testing.T) {
	const pw = "dpop-end-to-end-password"
	t.Setenv(devPasswordEnv, pw)
	issuer, mcpURL := startDev(t, filepath.Join(t.TempDir(), "data"))
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := dpop.NewSigner("ES256", key)
	if err != nil {
		t.Fatal(err)
	}

	const verifier = "dpop-end-to-end-verifier-0123456789-0123456789-0123"
	sum := sha256.Sum256([]byte(verifier))
	redirect := "http://127.0.0.1:5999/callback"
	authURL := issuer + "/authorize?" + url.Values{
		"response_type": {"code"}, "client_id": {devClientID}, "redirect_uri": {redirect},
		"code_challenge": {base64.RawURLEncoding.EncodeToString(sum[:])}, "code_challenge_method": {"S256"},
		"state": {"s"}, "resource": {mcpURL},
	}.Encode()
	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	code := signIn(t, browser, issuer, authURL, devUserDefault, pw, redirect)

	form := "application/x-www-form-urlencoded"
	token := func(step string, f url.Values) (access, refresh string) {
		t.Helper()
		s, _, b := dpopDo(t, signer, http.MethodPost, issuer+"/token", "", "", form, f.Encode())
		var tr struct {
			AccessToken  string `json:"access_token"`
			TokenType    string `json:"token_type"`
			RefreshToken string `json:"refresh_token"`
		}
		if err := json.Unmarshal([]byte(b), &tr); err != nil || s != 200 || tr.TokenType != "DPoP" || tr.RefreshToken == "" {
			t.Fatalf("%s = %d %s, want 200 with token_type DPoP and a refresh token", step, s, b)
		}
		return tr.AccessToken, tr.RefreshToken
	}
	_, rt := token("code exchange with a proof", url.Values{"grant_type": {"authorization_code"}, "code": {code}, "client_id": {devClientID},
		"redirect_uri": {redirect}, "code_verifier": {verifier}, "resource": {mcpURL}})
	at, _ := token("refresh with a proof", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}, "client_id": {devClientID}})

	initialize := `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}`
	if s, _, b := dpopDo(t, signer, http.MethodPost, mcpURL, "DPoP "+at, at, "application/json", initialize); s != 200 {
		t.Fatalf("MCP initialize with the DPoP-bound token and a proof = %d %s, want 200", s, b)
	}
	s, h, b := dpopDo(t, signer, http.MethodPost, mcpURL, "Bearer "+at, at, "application/json", initialize)
	if ch := h.Get("WWW-Authenticate"); s != 401 || !strings.HasPrefix(ch, `DPoP error="invalid_token"`) || !strings.Contains(ch, `algs="ES256 EdDSA RS256"`) {
		t.Errorf("the bound token as Bearer = %d, WWW-Authenticate %q (%s); want 401 with the DPoP challenge", s, ch, b)
	}
}
