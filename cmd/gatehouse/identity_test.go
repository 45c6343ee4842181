package main

import (
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-mcp/gatehouse/internal/config"
	"github.com/gatehouse-mcp/gatehouse/internal/storage"
)

// TestUserListUpstream: `user list` names the provider and upstream
// subject of a user an identity provider signed in, and "local" for the
// others; `user add` refuses the oidc: names such users have (issue 14
// item 1).
func TestUserListUpstream(t *testing.T) {
	a := newAdminCLI(t)
	a.ok("user", "add", "alice", "--password-file", a.passwordFile("alices-password"))
	a.store(func(st storage.Store) {
		now := time.Now()
		u := storage.User{ID: "u-jane", Username: "oidc:acme:248289761001", CreatedAt: now, UpdatedAt: now}
		if err := st.CreateUpstreamUser(t.Context(), u, storage.UpstreamIdentity{Provider: "acme", Subject: "248289761001", UserID: u.ID, CreatedAt: now}); err != nil {
			t.Fatal(err)
		}
	})
	list := a.ok("user", "list")
	lines := strings.Split(strings.TrimSpace(list), "\n")
	if len(lines) != 3 || !strings.Contains(lines[0], "PROVIDER") || !strings.Contains(lines[0], "UPSTREAM SUBJECT") {
		t.Fatalf("user list:\n%s", list)
	}
	for _, want := range [][]string{{"alice", "local", "-"}, {"oidc:acme:248289761001", "u-jane", "acme", "248289761001"}} {
		var found bool
		for _, l := range lines[1:] {
			f := strings.Fields(l)
			if f[0] == want[0] && strings.Join(f[len(f)-2:], " ") == strings.Join(want[len(want)-2:], " ") {
				found = true
			}
		}
		if !found {
			t.Errorf("user list has no row %v:\n%s", want, list)
		}
	}
	if out, err := a.run("user", "add", "oidc:acme:someone", "--password-file", a.passwordFile("a-long-password")); err == nil || !strings.Contains(err.Error(), "belong to people of identity providers") {
		t.Errorf("user add oidc:acme:someone = %v, %q; want refused", err, out)
	}
}

// TestUpstreamOptions: identity.providers become the server's upstreams
// with the documented defaults.
func TestUpstreamOptions(t *testing.T) {
	ups := upstreamOptions(config.Identity{Providers: []config.IdentityProvider{
		{Name: "acme", Issuer: "https://idp.acme.example", ClientID: "gh", ClientSecret: "s"},
		{Name: "corp", DisplayName: "Corp", Issuer: "https://login.corp.example", ClientID: "gh2", ClientSecret: "s2",
			TokenEndpointAuthMethod: "client_secret_post", Claims: config.IdentityClaims{Subject: "oid"}, LinkByVerifiedEmail: true},
	}})
	if len(ups) != 2 {
		t.Fatalf("upstreamOptions = %+v", ups)
	}
	a, c := ups[0], ups[1]
	if a.DisplayName != "acme" || a.PostSecret || a.SubjectClaim != "sub" || a.GroupsClaim != "groups" || strings.Join(a.Scopes, " ") != "openid email profile" || a.ClientSecret != "s" {
		t.Errorf("acme = %+v", a)
	}
	if !c.PostSecret || c.SubjectClaim != "oid" || c.EmailClaim != "email" || c.DisplayName != "Corp" || !c.LinkByVerifiedEmail || a.LinkByVerifiedEmail {
		t.Errorf("corp = %+v", c)
	}
}

// TestServeIdentityProviders: identity.providers of the config file reach
// the sign-in page of `gatehouse serve` (the button; no password form with
// identity.local false), the secret coming from the environment; an
// inline client_secret stops serve with the hint where it belongs.
func TestServeIdentityProviders(t *testing.T) {
	t.Setenv("GH_TEST_ACME_SECRET", "from-the-environment")
	cfg := serveConfig(t, "https://auth.acme.example", "allow_insecure_issuer: true\nidentity:\n  local: false\n  providers:\n    - name: acme\n      display_name: Acme SSO\n      issuer: https://idp.acme.example\n      client_id: gh\n      client_secret_env: GH_TEST_ACME_SECRET\n")
	for _, args := range [][]string{
		{"client", "create", "--id", "cli", "--redirect-uri", "http://127.0.0.1/callback"},
		{"resource", "add", "https://mcp.acme.example/mcp", "--scope", "notes:read", "--default-scope", "notes:read"},
	} {
		if err := run(t.Context(), append(args, "--config", cfg), io.Discard); err != nil {
			t.Fatalf("gatehouse %v: %v", args, err)
		}
	}
	addr := startServe(t, "--config", cfg)
	q := url.Values{"response_type": {"code"}, "client_id": {"cli"}, "redirect_uri": {"http://127.0.0.1/callback"},
		"code_challenge": {"E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"}, "code_challenge_method": {"S256"}, "resource": {"https://mcp.acme.example/mcp"}}
	resp, err := http.Get("http://" + addr + "/authorize?" + q.Encode())
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if !strings.Contains(string(body), `<form id="oidc-acme" method="post" action="/login/oidc/acme"`) || !strings.Contains(string(body), "Continue with Acme SSO") || strings.Contains(string(body), `id="login-form"`) {
		t.Errorf("sign-in page of serve with identity.providers:\n%s", body)
	}

	good, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(bad, []byte(strings.Replace(string(good), "client_secret_env: GH_TEST_ACME_SECRET", "client_secret: hunter2", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	err = run(t.Context(), []string{"serve", "--config", bad}, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "set client_secret_file or client_secret_env") || strings.Contains(err.Error(), "hunter2") {
		t.Errorf("serve with an inline client_secret = %v, want refused with the hint and without the secret", err)
	}
}
