package interop

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"golang.org/x/crypto/bcrypt"
)

// dexEnv names the Dex v2.45.1 binary the tests start.
const dexEnv = "GATEHOUSE_TEST_DEX"

// dexBinary returns the Dex binary of GATEHOUSE_TEST_DEX: skip locally,
// fail under CI, when there is none.
func dexBinary(t *testing.T) string {
	t.Helper()
	p := os.Getenv(dexEnv)
	if p == "" {
		skipOrFatal(t, "Dex v2.45.1 is not built: %s is not set (build it with `scripts/dex/build.sh DIR` and set %s to the path it prints; scripts/test.sh does both)", dexEnv, dexEnv)
	}
	if fi, err := os.Stat(p); err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
		skipOrFatal(t, "%s=%s is not an executable file (%v): build Dex with scripts/dex/build.sh", dexEnv, p, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, p, "version").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "Dex Version: v2.45.1") {
		t.Fatalf("%s version = %v, %q; want Dex v2.45.1", p, err, out)
	}
	t.Logf("peer: Dex v2.45.1 (%s)", p)
	return p
}

// dexUser is a static password of Dex (its password database, the
// "local" connector). Dex puts Groups in the ID token's groups claim
// when the client asks for the groups scope.
type dexUser struct {
	Email, Password, Name, UserID string
	Groups                        []string
}

// Subject is the sub claim Dex gives the user: its IDTokenSubject
// protobuf (1: user id, 2: connector id) in unpadded base64url, so
// Gatehouse's username for the user is oidc:dex:<Subject>.
func (u dexUser) Subject() string {
	b := []byte{0x0a, byte(len(u.UserID))}
	b = append(b, u.UserID...)
	b = append(b, 0x12, byte(len("local")))
	b = append(b, "local"...)
	return base64.RawURLEncoding.EncodeToString(b)
}

// dex is a running `dex serve`.
type dex struct {
	Issuer, URL string
	proc        *proc
}

// startDex runs Dex with in-memory storage on a loopback port: its
// password database holds users, and Gatehouse (redirectURI) is a static
// client with clientID and secret. Dex asks for no approval: Gatehouse's
// consent page is the one that counts.
func startDex(t *testing.T, bin, clientID, secret, redirectURI string, users ...dexUser) *dex {
	t.Helper()
	dir := t.TempDir()
	port := freePort(t)
	d := &dex{URL: fmt.Sprintf("http://127.0.0.1:%d", port)}
	d.Issuer = d.URL + "/dex"
	type password struct {
		Email    string   `json:"email"`
		Hash     string   `json:"hash"`
		Username string   `json:"username"`
		Name     string   `json:"name"`
		UserID   string   `json:"userID"`
		Groups   []string `json:"groups"`
	}
	var passwords []password
	for _, u := range users {
		// Dex refuses a bcrypt cost under 10.
		h, err := bcrypt.GenerateFromPassword([]byte(u.Password), 10)
		if err != nil {
			t.Fatal(err)
		}
		passwords = append(passwords, password{Email: u.Email, Hash: string(h), Username: u.Name, Name: u.Name, UserID: u.UserID, Groups: u.Groups})
	}
	// JSON is YAML: no quoting to get wrong.
	cfg, err := json.Marshal(map[string]any{
		"issuer":           d.Issuer,
		"storage":          map[string]any{"type": "memory"},
		"web":              map[string]any{"http": fmt.Sprintf("127.0.0.1:%d", port)},
		"logger":           map[string]any{"level": "warn"},
		"oauth2":           map[string]any{"skipApprovalScreen": true},
		"enablePasswordDB": true,
		"staticPasswords":  passwords,
		"staticClients": []map[string]any{{
			"id": clientID, "secret": secret, "name": "Gatehouse", "redirectURIs": []string{redirectURI},
		}},
	})
	if err != nil {
		t.Fatal(err)
	}
	cfgFile := filepath.Join(dir, "dex.yaml")
	if err := os.WriteFile(cfgFile, cfg, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "serve", cfgFile)
	// A clean environment: Dex expands $VARIABLES in its configuration.
	cmd.Env = []string{"PATH=/usr/bin:/bin", "HOME=" + dir}
	cmd.Dir = dir
	d.proc = startProc(t, "dex", cmd)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	waitHTTPOK(t, ctx, d.Issuer+"/.well-known/openid-configuration", d.proc.output)
	return d
}

// upstreamCodeScope redeems the MCP client's code of an authorizeURL request
// at Gatehouse's token endpoint and returns the granted scope.
func upstreamCodeScope(t *testing.T, issuer, redirectURI, resource, landed string) string {
	t.Helper()
	u, err := url.Parse(landed)
	if err != nil {
		t.Fatal(err)
	}
	code := u.Query().Get("code")
	if code == "" {
		t.Fatalf("the browser landed on %s: no code", landed)
	}
	resp, err := noProxyClient().PostForm(issuer+"/token", url.Values{
		"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {redirectURI},
		"client_id": {upstreamClientID}, "code_verifier": {authorizeVerifier}, "resource": {resource},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	var tok struct {
		AccessToken string `json:"access_token"`
		Scope       string `json:"scope"`
	}
	if resp.StatusCode != http.StatusOK || json.Unmarshal(b, &tok) != nil || tok.AccessToken == "" {
		t.Fatalf("token request = HTTP %d: %s", resp.StatusCode, b)
	}
	return tok.Scope
}

// testUpstreamDex signs people in to Gatehouse through Dex v2.45.1, built
// from the Go module proxy by scripts/dex/build.sh and named by
// GATEHOUSE_TEST_DEX. Dex's own login page (its password database) is
// filled in by Chromium; Gatehouse asks Dex for the groups scope, and the
// demo resource grants notes:write only to the group notes-editors.
// alice, in that group at Dex, is provisioned once, `gatehouse user show`
// lists the group as Dex's, and her token carries notes:write; bob, in no
// group, gets notes:read alone.
func testUpstreamDex(t *testing.T) {
	bin := dexBinary(t)
	interopChromium(t)
	alice := dexUser{Email: "alice@example.com", Password: "alice-at-dex", Name: "Alice Example", UserID: "dex-user-alice-5b1e", Groups: []string{"notes-editors"}}
	bob := dexUser{Email: "bob@example.com", Password: "bob-at-dex", Name: "Bob Example", UserID: "dex-user-bob-0c47"}

	// Gatehouse's issuer must be known before Dex starts (its redirect URI).
	port := freePort(t)
	issuer := fmt.Sprintf("http://127.0.0.1:%d", port)
	secret := "gatehouse-at-dex-" + rand.Text()
	dx := startDex(t, bin, "gatehouse", secret, issuer+"/login/oidc/dex/callback", alice, bob)
	secretFile := filepath.Join(t.TempDir(), "dex-secret")
	if err := os.WriteFile(secretFile, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	providers := fmt.Sprintf(`    - {name: dex, display_name: Dex, issuer: %q, client_id: gatehouse, client_secret_file: %q, scopes: [openid, email, profile, groups]}
`, dx.Issuer, secretFile)
	g := startUpstreamGatehouse(t, port, providers, "--scope-group", "notes:write=notes-editors")
	callback := startCallback(t)
	dexLogin := upstreamLogin{Name: "dex", LoginURL: dx.Issuer, PeerURL: dx.Issuer,
		Form: "#submit-login", Username: "#login", Password: "#password", Submit: "#submit-login", Refused: "#login-error"}
	aliceName := "oidc:dex:" + alice.Subject()
	wantPages := []string{"gatehouse-login", "dex-login", "gatehouse-consent"}

	// The session lives until the whole test ends: the next step uses it.
	var cs *mcp.ClientSession
	t.Cleanup(func() {
		if cs != nil {
			cs.Close()
		}
	})
	step(t, "MCP client authorizes through Dex in Chromium", func(t *testing.T) {
		var trip upstreamTrip
		cs, trip = connectThroughUpstream(t, g, newBrowser(t), callback, dexLogin, "dex", alice.Email, alice.Password)
		if !strings.Contains(trip.LoginText, "Continue with Dex") {
			t.Errorf("Gatehouse's login page = %q, want a Continue with Dex button", trip.LoginText)
		}
		if strings.Join(trip.Pages, " ") != strings.Join(wantPages, " ") {
			t.Errorf("pages = %v, want %v", trip.Pages, wantPages)
		}
	})
	step(t, "MCP client calls list_notes", func(t *testing.T) {
		res, err := cs.CallTool(t.Context(), &mcp.CallToolParams{Name: "list_notes"})
		if err != nil || res.IsError {
			t.Fatalf("tools/call list_notes = %+v, %v", res, err)
		}
	})
	step(t, "Gatehouse provisioned the Dex user once", func(t *testing.T) {
		rows := g.users(t)
		if len(rows) != 1 || rows[0].Username != aliceName || rows[0].Provider != "dex" || rows[0].Subject != alice.Subject() {
			t.Fatalf("gatehouse user list = %+v, want one user %s with provider dex and subject %s", rows, aliceName, alice.Subject())
		}
		if got := g.audit(t, "user.provisioned"); len(got) != 1 || !strings.Contains(got[0], `detail="provider=dex"`) {
			t.Errorf("user.provisioned events = %q, want one naming provider=dex", got)
		}
	})
	step(t, "user show lists Dex's group", func(t *testing.T) {
		out := g.cli(t, "user", "show", "--config", g.Config, aliceName)
		if !strings.Contains(out, "from dex: notes-editors") {
			t.Errorf("gatehouse user show %s =\n%s\nwant the group notes-editors from dex", aliceName, out)
		}
	})

	// The scope policy: notes:write needs notes-editors, which only
	// Dex's groups claim gives. Each asks for both scopes in a new browser.
	both := "notes:read notes:write"
	scopeFor := func(t *testing.T, u dexUser) string {
		t.Helper()
		trip, err := signInThroughUpstream(newBrowser(t), authorizeURL(g.Issuer, upstreamClientID, callback, g.MCPURL, both), g.Issuer, dexLogin, callback, "dex", u.Email, u.Password)
		if err != nil {
			t.Fatal(err)
		}
		if trip.Landed == "" {
			t.Fatalf("the authorization ended on an error page (pages %v): %s: %s", trip.Pages, trip.ErrorTitle, trip.ErrorText)
		}
		return upstreamCodeScope(t, g.Issuer, callback, g.MCPURL, trip.Landed)
	}
	step(t, "scope policy grants notes:write to Dex's group", func(t *testing.T) {
		if got := strings.Fields(scopeFor(t, alice)); !slices.Contains(got, "notes:write") || !slices.Contains(got, "notes:read") {
			t.Errorf("alice's token scope = %q, want notes:read and notes:write", got)
		}
		if rows := g.users(t); len(rows) != 1 {
			t.Errorf("gatehouse user list after alice's second sign-in = %+v, want still one user", rows)
		}
	})
	step(t, "scope policy withholds notes:write outside the group", func(t *testing.T) {
		if got := strings.Fields(scopeFor(t, bob)); !slices.Equal(got, []string{"notes:read"}) {
			t.Errorf("bob's token scope = %q, want notes:read alone", got)
		}
		out := g.cli(t, "user", "show", "--config", g.Config, "oidc:dex:"+bob.Subject())
		if strings.Contains(out, "notes-editors") {
			t.Errorf("gatehouse user show for bob =\n%s\nwant no notes-editors", out)
		}
		if got := g.audit(t, "scope.withheld"); len(got) != 1 || !strings.Contains(got[0], "notes:write") {
			t.Errorf("scope.withheld events = %q, want one for bob's notes:write", got)
		}
	})
}
