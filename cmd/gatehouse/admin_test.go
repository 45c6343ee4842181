package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/gatehouse-mcp/gatehouse/internal/password"
	"github.com/gatehouse-mcp/gatehouse/internal/storage"
	"github.com/gatehouse-mcp/gatehouse/internal/storage/sqlite"
	"github.com/gatehouse-mcp/gatehouse/internal/token"
)

// adminCLI runs admin commands against one dev data directory and reads
// its store between them.
type adminCLI struct {
	t    *testing.T
	data string
}

func newAdminCLI(t *testing.T) *adminCLI {
	return &adminCLI{t: t, data: newDevData(t)}
}

// run runs `gatehouse ARGS --data DIR` and returns its output and error;
// --data goes before a "--" in ARGS, after which everything is an argument.
func (a *adminCLI) run(args ...string) (string, error) {
	var out bytes.Buffer
	i := slices.Index(args, "--")
	if i < 0 {
		i = len(args)
	}
	full := append(append(slices.Clone(args[:i]), "--data", a.data), args[i:]...)
	err := run(context.Background(), full, &out)
	return out.String(), err
}

// ok runs a command that must succeed.
func (a *adminCLI) ok(args ...string) string {
	a.t.Helper()
	out, err := a.run(args...)
	if err != nil {
		a.t.Fatalf("gatehouse %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// store opens the data directory's store for f (the CLI has closed it).
func (a *adminCLI) store(f func(st storage.Store)) {
	a.t.Helper()
	st, err := sqlite.Open(a.t.Context(), sqlite.Options{Path: filepath.Join(a.data, "gatehouse.db"), Now: time.Now})
	if err != nil {
		a.t.Fatal(err)
	}
	defer st.Close()
	f(st)
}

// passwordFile writes pw to a new file and returns its path.
func (a *adminCLI) passwordFile(pw string) string {
	a.t.Helper()
	p := filepath.Join(a.t.TempDir(), "pw")
	if err := os.WriteFile(p, []byte(pw+"\n"), 0o600); err != nil {
		a.t.Fatal(err)
	}
	return p
}

// auditOf returns the audit events of type typ.
func auditOf(t *testing.T, st storage.Store, typ string) []storage.AuditEvent {
	t.Helper()
	es, err := st.QueryAudit(t.Context(), storage.AuditQuery{Type: typ})
	if err != nil {
		t.Fatal(err)
	}
	return es
}

// wantAudit checks that exactly one event of e.Type was written, by the
// CLI, with e's subject fields.
func wantAudit(t *testing.T, st storage.Store, e storage.AuditEvent) {
	t.Helper()
	es := auditOf(t, st, e.Type)
	if len(es) != 1 {
		t.Errorf("audit %s: %d events %+v, want 1", e.Type, len(es), es)
		return
	}
	got := es[0]
	if got.UserID != e.UserID || got.ClientID != e.ClientID || got.Resource != e.Resource || got.Detail != e.Detail || got.Outcome != "success" || got.IP != "cli" {
		t.Errorf("audit %s = %+v, want user %q client %q resource %q detail %q, outcome success, ip cli", e.Type, got, e.UserID, e.ClientID, e.Resource, e.Detail)
	}
}

// issued is what the authorization server keeps for a user of a client:
// a code, a grant with its refresh token, a consent and a browser session.
type issued struct {
	code, grant, refresh, session string
	userID, clientID, resource    string
}

// seedIssued stores the rows of issued for user and client, with names
// prefixed by tag.
func seedIssued(t *testing.T, st storage.Store, tag, userID, clientID, resource string) issued {
	t.Helper()
	ctx := t.Context()
	now := time.Now().UTC().Truncate(time.Second)
	later := now.Add(time.Hour)
	is := issued{code: tag + "-code", grant: tag + "-grant", refresh: tag + "-rt", session: tag + "-session",
		userID: userID, clientID: clientID, resource: resource}
	for _, err := range []error{
		st.CreateGrant(ctx, storage.Grant{ID: is.grant, ClientID: clientID, UserID: userID, Resource: resource, Scopes: []string{"files:read"}, AuthTime: now, CreatedAt: now, ExpiresAt: later}),
		st.CreateAuthCode(ctx, storage.AuthCode{Hash: is.code, ClientID: clientID, UserID: userID, GrantID: is.grant, RedirectURI: "http://127.0.0.1/callback", Resource: resource, AuthTime: now, CreatedAt: now, ExpiresAt: later}),
		st.CreateRefreshToken(ctx, storage.RefreshToken{Hash: is.refresh, GrantID: is.grant, ClientID: clientID, UserID: userID, Resource: resource, CreatedAt: now, ExpiresAt: later}),
		st.PutConsent(ctx, storage.Consent{UserID: userID, ClientID: clientID, Resource: resource, Scopes: []string{"files:read"}, CreatedAt: now, UpdatedAt: now}),
		st.CreateSession(ctx, storage.Session{IDHash: is.session, UserID: userID, AuthTime: now, CreatedAt: now, ExpiresAt: later}),
	} {
		if err != nil {
			t.Fatalf("seed %s: %v", tag, err)
		}
	}
	return is
}

// check reports which rows of is are still stored: want lists the kinds
// that must be (the others must be gone); kinds are "code", "grant",
// "refresh", "consent", "session".
func (is issued) check(t *testing.T, st storage.Store, who string, want ...string) {
	t.Helper()
	ctx := t.Context()
	_, gErr := st.GetGrant(ctx, is.grant)
	_, rtErr := st.GetRefreshToken(ctx, is.refresh)
	_, cErr := st.GetConsent(ctx, is.userID, is.clientID, is.resource)
	_, sErr := st.GetSession(ctx, is.session)
	// Consuming is the only way to read a code: do it last.
	_, codeErr := st.ConsumeAuthCode(ctx, is.code, time.Now())
	for kind, err := range map[string]error{"grant": gErr, "refresh": rtErr, "consent": cErr, "session": sErr, "code": codeErr} {
		keep := strings.Contains(" "+strings.Join(want, " ")+" ", " "+kind+" ")
		switch {
		case keep && err != nil:
			t.Errorf("%s: the %s is gone (%v), want it kept", who, kind, err)
		case !keep && !errors.Is(err, storage.ErrNotFound):
			t.Errorf("%s: reading the %s = %v, want ErrNotFound (deleted)", who, kind, err)
		}
	}
}

// TestClientDelete: `client delete` removes the client and everything
// issued to it (authorization requests, codes, grants, refresh tokens,
// consents), leaves other clients' alone, and audits the deletion; an
// unknown client is an error.
func TestClientDelete(t *testing.T) {
	a := newAdminCLI(t)
	for _, id := range []string{"victim", "other"} {
		a.ok("client", "create", "--id", id, "--redirect-uri", "http://127.0.0.1/callback")
	}
	a.ok("user", "add", "alice", "--password-file", a.passwordFile("a-long-password"))
	var victim, other issued
	a.store(func(st storage.Store) {
		u, err := st.GetUserByName(t.Context(), "alice")
		if err != nil {
			t.Fatal(err)
		}
		victim = seedIssued(t, st, "victim", u.ID, "victim", "https://mcp.example.com/a")
		other = seedIssued(t, st, "other", u.ID, "other", "https://mcp.example.com/a")
	})

	if out := a.ok("client", "delete", "victim"); out != "deleted client victim\n" {
		t.Errorf("client delete victim printed %q", out)
	}
	a.store(func(st storage.Store) {
		if _, err := st.GetClient(t.Context(), "victim"); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf(`GetClient("victim") after client delete = %v, want ErrNotFound`, err)
		}
		if _, err := st.GetClient(t.Context(), "other"); err != nil {
			t.Errorf(`GetClient("other") after deleting victim = %v`, err)
		}
		// The user's session is not the client's: it stays.
		victim.check(t, st, "client delete victim", "session")
		other.check(t, st, "client delete victim (another client's rows)", "code", "grant", "refresh", "consent", "session")
		wantAudit(t, st, storage.AuditEvent{Type: "client.deleted", ClientID: "victim"})
	})

	if _, err := a.run("client", "delete", "victim"); err == nil || err.Error() != `no client "victim"` {
		t.Errorf("client delete of a deleted client = %v, want %q", err, `no client "victim"`)
	}
	a.store(func(st storage.Store) {
		if n := len(auditOf(t, st, "client.deleted")); n != 1 {
			t.Errorf("a refused client delete wrote an audit event: %d client.deleted events, want 1", n)
		}
	})
}

// TestUserDelete: `user delete` removes the user with their sessions,
// consents, codes, grants and refresh tokens, leaves other users' alone,
// and audits the deletion; an unknown user is an error.
func TestUserDelete(t *testing.T) {
	a := newAdminCLI(t)
	a.ok("client", "create", "--id", "app", "--redirect-uri", "http://127.0.0.1/callback")
	pw := a.passwordFile("a-long-password")
	a.ok("user", "add", "alice", "--password-file", pw)
	a.ok("user", "add", "bob", "--password-file", pw)
	var alice, bob issued
	a.store(func(st storage.Store) {
		ua, err := st.GetUserByName(t.Context(), "alice")
		if err != nil {
			t.Fatal(err)
		}
		ub, err := st.GetUserByName(t.Context(), "bob")
		if err != nil {
			t.Fatal(err)
		}
		alice = seedIssued(t, st, "alice", ua.ID, "app", "https://mcp.example.com/a")
		bob = seedIssued(t, st, "bob", ub.ID, "app", "https://mcp.example.com/a")
	})

	if out := a.ok("user", "delete", "alice"); out != "deleted user alice\n" {
		t.Errorf("user delete alice printed %q", out)
	}
	a.store(func(st storage.Store) {
		if _, err := st.GetUserByName(t.Context(), "alice"); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf(`GetUserByName("alice") after user delete = %v, want ErrNotFound`, err)
		}
		if _, err := st.GetUser(t.Context(), alice.userID); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("GetUser(%q) after user delete = %v, want ErrNotFound", alice.userID, err)
		}
		if _, err := st.GetUserByName(t.Context(), "bob"); err != nil {
			t.Errorf(`GetUserByName("bob") after deleting alice = %v`, err)
		}
		// A pending authorization request has no user yet: it is the
		// client's, and stays.
		alice.check(t, st, "user delete alice")
		bob.check(t, st, "user delete alice (another user's rows)", "code", "grant", "refresh", "consent", "session")
		if _, err := st.GetClient(t.Context(), "app"); err != nil {
			t.Errorf(`GetClient("app") after user delete = %v`, err)
		}
		wantAudit(t, st, storage.AuditEvent{Type: "user.deleted", UserID: alice.userID, Detail: "alice"})
	})

	if _, err := a.run("user", "delete", "alice"); err == nil || err.Error() != `no user "alice"` {
		t.Errorf("user delete of a deleted user = %v, want %q", err, `no user "alice"`)
	}
}

// TestUserPasswd: `user passwd` replaces the stored hash (the old password
// no longer verifies, the new one does), keeps the user's id and other
// users' passwords, and audits the change; an unknown user or a short
// password is refused without a change.
func TestUserPasswd(t *testing.T) {
	a := newAdminCLI(t)
	a.ok("user", "add", "alice", "--password-file", a.passwordFile("old-password-1"))
	a.ok("user", "add", "bob", "--password-file", a.passwordFile("bobs-password-1"))
	user := func(st storage.Store, name string) storage.User {
		t.Helper()
		u, err := st.GetUserByName(t.Context(), name)
		if err != nil {
			t.Fatal(err)
		}
		return u
	}
	var before, bob storage.User
	a.store(func(st storage.Store) { before, bob = user(st, "alice"), user(st, "bob") })
	verify := func(u storage.User, pw string) bool {
		t.Helper()
		ok, err := password.Verify(pw, u.PasswordHash)
		if err != nil {
			t.Fatalf("the stored hash of %s does not parse: %v", u.Username, err)
		}
		return ok
	}

	// What a thief holds with the old password (issue 20 F2).
	a.ok("client", "create", "--id", "app", "--redirect-uri", "http://127.0.0.1/callback")
	var held issued
	a.store(func(st storage.Store) {
		held = seedIssued(t, st, "alice", before.ID, "app", "https://mcp.example.com/mcp")
	})
	if out := a.ok("user", "passwd", "alice", "--password-file", a.passwordFile("new-password-2")); !strings.HasPrefix(out, "password updated for alice; their sessions, consents and refresh tokens are revoked") {
		t.Errorf("user passwd alice printed %q", out)
	}
	a.store(func(st storage.Store) {
		held.check(t, st, "user passwd alice", "grant", "refresh")
		if g, err := st.GetGrant(t.Context(), held.grant); err != nil || g.RevokedAt.IsZero() {
			t.Errorf("alice's grant after user passwd = %+v, %v; want revoked", g, err)
		}
	})
	var after storage.User
	a.store(func(st storage.Store) {
		after = user(st, "alice")
		if verify(after, "old-password-1") {
			t.Error("the old password still verifies after user passwd")
		}
		if !verify(after, "new-password-2") {
			t.Error("the new password does not verify after user passwd")
		}
		if after.ID != before.ID || !after.CreatedAt.Equal(before.CreatedAt) {
			t.Errorf("user passwd replaced the user: %+v, was %+v", after, before)
		}
		if got := user(st, "bob"); got.PasswordHash != bob.PasswordHash {
			t.Error("bob's password hash changed with alice's")
		}
		wantAudit(t, st, storage.AuditEvent{Type: "user.password_changed", UserID: before.ID, Detail: "alice: sessions, consents and grants revoked"})
	})

	for _, tt := range []struct {
		name, user, pw, err string
	}{
		{"unknown user", "carol", "new-password-3", `no user "carol"`},
		{"short password", "alice", "short", "the password must be at least 8 characters"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := a.run("user", "passwd", tt.user, "--password-file", a.passwordFile(tt.pw)); err == nil || err.Error() != tt.err {
				t.Errorf("user passwd %s = %v, want %q", tt.user, err, tt.err)
			}
			a.store(func(st storage.Store) {
				if user(st, "alice").PasswordHash != after.PasswordHash {
					t.Error("a refused user passwd changed alice's password hash")
				}
				if n := len(auditOf(t, st, "user.password_changed")); n != 1 {
					t.Errorf("a refused user passwd wrote an audit event: %d events, want 1", n)
				}
			})
		})
	}
}

// TestResourceDelete: `resource delete` removes the resource (named in
// any spelling that canonicalises to it), leaves the others alone and
// audits the deletion; an unknown resource is an error.
func TestResourceDelete(t *testing.T) {
	a := newAdminCLI(t)
	a.ok("resource", "add", "https://mcp.example.com/a", "--scope", "files:read")
	a.ok("resource", "add", "https://mcp.example.com/b", "--scope", "files:read")
	if out := a.ok("resource", "delete", "HTTPS://MCP.example.com:443/a"); out != "deleted resource https://mcp.example.com/a\n" {
		t.Errorf("resource delete printed %q", out)
	}
	a.store(func(st storage.Store) {
		if _, err := st.GetResource(t.Context(), "https://mcp.example.com/a"); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("GetResource(https://mcp.example.com/a) after resource delete = %v, want ErrNotFound", err)
		}
		if _, err := st.GetResource(t.Context(), "https://mcp.example.com/b"); err != nil {
			t.Errorf("GetResource(https://mcp.example.com/b) after deleting /a = %v", err)
		}
		wantAudit(t, st, storage.AuditEvent{Type: "resource.deleted", Resource: "https://mcp.example.com/a"})
		if es := auditOf(t, st, "resource.registered"); len(es) != 2 || es[0].Resource != "https://mcp.example.com/a" || es[1].Resource != "https://mcp.example.com/b" {
			t.Errorf("audit resource.registered = %+v, want one event for /a and one for /b", es)
		}
	})
	if _, err := a.run("resource", "delete", "https://mcp.example.com/a"); err == nil || err.Error() != `no resource "https://mcp.example.com/a"` {
		t.Errorf("resource delete of a deleted resource = %v, want %q", err, `no resource "https://mcp.example.com/a"`)
	}
}

// TestUserRevokeDisable (issue 20 F2): `user revoke` ends what the user
// holds and keeps their password; `user disable` does that and marks them
// disabled until `user enable`; each is audited.
func TestUserRevokeDisable(t *testing.T) {
	a := newAdminCLI(t)
	a.ok("user", "add", "alice", "--password-file", a.passwordFile("alices-password"))
	a.ok("client", "create", "--id", "app", "--redirect-uri", "http://127.0.0.1/callback")
	var alice storage.User
	var held issued
	a.store(func(st storage.Store) {
		var err error
		if alice, err = st.GetUserByName(t.Context(), "alice"); err != nil {
			t.Fatal(err)
		}
		held = seedIssued(t, st, "r", alice.ID, "app", "https://mcp.example.com/mcp")
	})
	if out := a.ok("user", "revoke", "alice"); !strings.Contains(out, "revoke alice: their sessions") {
		t.Errorf("user revoke printed %q", out)
	}
	a.store(func(st storage.Store) {
		held.check(t, st, "user revoke alice", "grant", "refresh")
		u, _ := st.GetUserByName(t.Context(), "alice")
		if u.Epoch != alice.Epoch+1 || u.PasswordHash != alice.PasswordHash || !u.DisabledAt.IsZero() {
			t.Errorf("after user revoke: epoch %d (was %d), password kept %v, disabled %v", u.Epoch, alice.Epoch, u.PasswordHash == alice.PasswordHash, u.DisabledAt)
		}
		wantAudit(t, st, storage.AuditEvent{Type: "user.revoked", UserID: alice.ID, Detail: "alice: sessions, consents and grants revoked"})
		held = seedIssued(t, st, "d", alice.ID, "app", "https://mcp.example.com/mcp")
	})
	a.ok("user", "disable", "alice")
	if list := a.ok("user", "list"); !strings.Contains(list, "disabled since") {
		t.Errorf("user list after disable:\n%s", list)
	}
	a.store(func(st storage.Store) {
		held.check(t, st, "user disable alice", "grant", "refresh")
		if u, _ := st.GetUserByName(t.Context(), "alice"); u.DisabledAt.IsZero() {
			t.Error("user disable did not disable alice")
		}
		wantAudit(t, st, storage.AuditEvent{Type: "user.disabled", UserID: alice.ID, Detail: "alice: sessions, consents and grants revoked"})
	})
	a.ok("user", "enable", "alice")
	a.store(func(st storage.Store) {
		if u, _ := st.GetUserByName(t.Context(), "alice"); !u.DisabledAt.IsZero() {
			t.Error("user enable did not enable alice")
		}
		wantAudit(t, st, storage.AuditEvent{Type: "user.enabled", UserID: alice.ID, Detail: "alice"})
	})
	if _, err := a.run("user", "revoke", "nobody"); err == nil || !strings.Contains(err.Error(), `no user "nobody"`) {
		t.Errorf("user revoke nobody = %v", err)
	}
}

// TestClientBlock (issue 20 F9): `client block URL` records the block and
// deletes the metadata-document client with what it held; `--host` blocks
// a host and deletes its clients; `client blocks` lists them and `client
// unblock` lifts one; each is audited.
func TestClientBlock(t *testing.T) {
	a := newAdminCLI(t)
	a.ok("client", "create", "--id", "static", "--redirect-uri", "http://127.0.0.1/callback") // makes the store
	const doc, sibling = "https://apps.evil.example/client.json", "https://cdn.evil.example/other.json"
	a.store(func(st storage.Store) {
		for _, id := range []string{doc, sibling, "https://good.example/client.json"} {
			c := storage.Client{ID: id, Origin: storage.OriginCIMD, RedirectURIs: []string{"http://127.0.0.1/cb"}, GrantTypes: []string{"authorization_code"}, CreatedAt: time.Now()}
			if err := st.CreateClient(t.Context(), c); err != nil {
				t.Fatal(err)
			}
		}
	})
	if out := a.ok("client", "block", doc, "--reason", "phishing"); !strings.Contains(out, "deleted 1 client") {
		t.Errorf("client block printed %q", out)
	}
	if out := a.ok("client", "block", "--host", "Evil.Example."); !strings.Contains(out, "deleted 1 client") {
		t.Errorf("client block --host printed %q", out)
	}
	a.store(func(st storage.Store) {
		for id, want := range map[string]bool{doc: false, sibling: false, "https://good.example/client.json": true, "static": true} {
			_, err := st.GetClient(t.Context(), id)
			if (err == nil) != want {
				t.Errorf("GetClient(%q) after the blocks = %v, want kept %v", id, err, want)
			}
		}
		if n := len(auditOf(t, st, "client.blocked")); n != 2 {
			t.Errorf("%d client.blocked audit events, want 2", n)
		}
	})
	list := a.ok("client", "blocks")
	for _, want := range []string{doc, "evil.example", "host", "url", "phishing"} {
		if !strings.Contains(list, want) {
			t.Errorf("client blocks lacks %q:\n%s", want, list)
		}
	}
	a.ok("client", "unblock", "EVIL.example")
	if list := a.ok("client", "blocks"); strings.Contains(list, "host") {
		t.Errorf("client unblock left the host block:\n%s", list)
	}
	for _, args := range [][]string{{"client", "block"}, {"client", "block", "not a url"}, {"client", "block", doc, "--host", "x.example"}, {"client", "unblock", "nope.example"}} {
		if _, err := a.run(args...); err == nil {
			t.Errorf("gatehouse %s succeeded, want an error", strings.Join(args, " "))
		}
	}
}

// TestClientRotateSecret: `client rotate-secret` replaces the secret (the
// old hash is gone, the printed secret's hash is stored), revokes what the
// client held and marks the reset, so its machine tokens die at
// introspection; a client without a secret is refused unchanged.
func TestClientRotateSecret(t *testing.T) {
	a := newAdminCLI(t)
	out := a.ok("client", "create", "--id", "svc", "--confidential", "--grant-type", "client_credentials")
	old := regexp.MustCompile(`client_secret:\s+(\S+)`).FindStringSubmatch(out)[1]
	a.ok("client", "create", "--id", "pub", "--redirect-uri", "http://127.0.0.1/callback")
	a.ok("user", "add", "alice", "--password-file", a.passwordFile("alices-password"))
	var held issued
	a.store(func(st storage.Store) {
		u, _ := st.GetUserByName(t.Context(), "alice")
		held = seedIssued(t, st, "svc", u.ID, "svc", "https://mcp.example.com/mcp")
	})
	out = a.ok("client", "rotate-secret", "svc")
	m := regexp.MustCompile(`client_secret:\s+(\S+)`).FindStringSubmatch(out)
	if m == nil || m[1] == old {
		t.Fatalf("client rotate-secret printed %q", out)
	}
	a.store(func(st storage.Store) {
		c, err := st.GetClient(t.Context(), "svc")
		if err != nil || c.SecretHash != token.Hash(m[1]) || c.ResetAt.IsZero() {
			t.Errorf("after rotate-secret: %+v, %v; want the new secret's hash and ResetAt set", c, err)
		}
		held.check(t, st, "client rotate-secret svc", "session")
		wantAudit(t, st, storage.AuditEvent{Type: "client.secret_rotated", ClientID: "svc", Detail: "old secret refused; tokens, codes and consents revoked"})
	})
	if _, err := a.run("client", "rotate-secret", "pub"); err == nil || !strings.Contains(err.Error(), "has no secret") {
		t.Errorf("rotate-secret of a public client = %v, want refused", err)
	}
}

// TestClientCreateScopes: client create refuses a --scope no registered
// resource offers, naming the ones that are, unless told it comes later.
func TestClientCreateScopes(t *testing.T) {
	a := newAdminCLI(t)
	a.ok("resource", "add", "https://a.example.com/mcp", "--scope", "files:read", "--scope", "files:write", "--default-scope", "files:read")
	a.ok("resource", "add", "https://b.example.com/mcp", "--scope", "notes:read", "--default-scope", "notes:read")
	for _, tt := range []struct {
		name    string
		args    []string
		wantErr string // empty: created, with the scopes of --scope
	}{
		{"known scopes", []string{"--scope", "files:read", "--scope", "notes:read"}, ""},
		{"offline_access", []string{"--scope", "files:read", "--scope", "offline_access"}, ""},
		{"typo", []string{"--scope", "files:read", "--scope", "bogus:scope"},
			`--scope "bogus:scope": no registered resource offers it; the scopes of the registered resources are offline_access files:read files:write notes:read`},
		{"two unknown", []string{"--scope", "a", "--scope", "b\u202e"}, `--scope "a", "b\u202e": no registered resource offers it`},
		{"override", []string{"--scope", "later:read", "--allow-unknown-scope"}, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			id := strings.ReplaceAll(tt.name, " ", "-")
			args := append([]string{"client", "create", "--id", id, "--redirect-uri", "http://127.0.0.1/callback"}, tt.args...)
			_, err := a.run(args...)
			var c storage.Client
			var getErr error
			a.store(func(st storage.Store) { c, getErr = st.GetClient(t.Context(), id) })
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("client create %s = %v, want an error containing %q", strings.Join(tt.args, " "), err, tt.wantErr)
				}
				if !errors.Is(getErr, storage.ErrNotFound) {
					t.Errorf("refused client create %s stored the client: %+v, %v", strings.Join(tt.args, " "), c, getErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("client create %s: %v", strings.Join(tt.args, " "), err)
			}
			var want []string
			for i, arg := range tt.args {
				if arg == "--scope" {
					want = append(want, tt.args[i+1])
				}
			}
			if getErr != nil || strings.Join(c.Scopes, " ") != strings.Join(want, " ") {
				t.Errorf("client create %s stored scopes %q (%v), want %q", strings.Join(tt.args, " "), c.Scopes, getErr, want)
			}
		})
	}
}

// TestClientCreateDPoPBound: --dpop-bound stores a client that gets no
// token without a DPoP proof (RFC 9449 §5.2 dpop_bound_access_tokens), and
// client show says so; without the flag the client is not bound.
func TestClientCreateDPoPBound(t *testing.T) {
	a := newAdminCLI(t)
	a.ok("client", "create", "--id", "bound", "--confidential", "--dpop-bound")
	a.ok("client", "create", "--id", "plain", "--confidential")
	a.store(func(st storage.Store) {
		for id, want := range map[string]bool{"bound": true, "plain": false} {
			if c, err := st.GetClient(t.Context(), id); err != nil || c.DPoPBound != want {
				t.Errorf("client %s: DPoPBound %v, %v; want %v", id, c.DPoPBound, err, want)
			}
		}
	})
	if out := a.ok("client", "show", "bound"); !strings.Contains(out, `"dpop_bound_access_tokens": true`) {
		t.Errorf("client show bound = %s, want dpop_bound_access_tokens true", out)
	}
}

// TestResourceWithoutDefaultScope: a resource with scopes but no default
// scope gets tokens with no scope for a request naming none; resource add
// and resource list say so, and serve logs it at start.
func TestResourceWithoutDefaultScope(t *testing.T) {
	a := newAdminCLI(t)
	const warning = "no default scope: a client that asks for no scope (most MCP clients at first) gets a token with no scope"
	for _, tt := range []struct {
		name string
		args []string
		warn bool
	}{
		{"scopes, no default", []string{"https://bare.example.com/mcp", "--scope", "files:read"}, true},
		{"scopes and a default", []string{"https://ok.example.com/mcp", "--scope", "files:read", "--default-scope", "files:read"}, false},
		{"no scopes", []string{"https://open.example.com/mcp"}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			out := a.ok(append([]string{"resource", "add"}, tt.args...)...)
			if got := strings.Contains(out, "warning: "+warning); got != tt.warn {
				t.Errorf("resource add %s warns %v, want %v:\n%s", strings.Join(tt.args, " "), got, tt.warn, out)
			}
		})
	}
	list := a.ok("resource", "list")
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`(?m)^https://bare\.example\.com/mcp +files:read +\(none!\) +users +-$`),
		regexp.MustCompile(`(?m)^https://ok\.example\.com/mcp +files:read +files:read +users +-$`),
		regexp.MustCompile(`(?m)^\(none!\) ` + regexp.QuoteMeta(warning)),
	} {
		if !want.MatchString(list) {
			t.Errorf("resource list does not match %s:\n%s", want, list)
		}
	}
}

// groupSubcommands returns the subcommands `gatehouse GROUP --help` lists.
func groupSubcommands(t *testing.T, group ...string) []string {
	t.Helper()
	var out bytes.Buffer
	if err := run(t.Context(), append(slices.Clone(group), "--help"), &out); err != nil {
		t.Fatalf("gatehouse %s --help: %v", strings.Join(group, " "), err)
	}
	m := regexp.MustCompile(`^Usage: gatehouse [a-z ]+ <([a-z|-]+)>`).FindStringSubmatch(out.String())
	if m == nil {
		t.Fatalf("gatehouse %s --help printed no usage line with subcommands:\n%s", strings.Join(group, " "), out.String())
	}
	return strings.Split(m[1], "|")
}

// TestAdminMutationsAudited runs every admin command that changes stored
// data and checks that it writes its audit event, from the CLI; the
// commands that change nothing are listed as such, so a new subcommand
// must be put in one list or the other.
func TestAdminMutationsAudited(t *testing.T) {
	a := newAdminCLI(t)
	pw := a.passwordFile("a-long-password")
	newKEK := writeKEK(t)
	readOnly := []string{"audit query", "audit tail", "client blocks", "client list", "client show", "config check",
		"keys gen-kek", "keys list", "resource list", "user list", "user show"}
	var kid, tokenID string
	steps := []struct {
		cmd  string // the subcommand, as listed by --help
		args []string
		want storage.AuditEvent // the last event of want.Type after the command
	}{
		{"resource add", []string{"https://r.example.com/mcp", "--scope", "files:read", "--default-scope", "files:read"},
			storage.AuditEvent{Type: "resource.registered", Resource: "https://r.example.com/mcp", Detail: `registered; users only; scopes "files:read", default "files:read"`}},
		{"resource add", []string{"https://r.example.com/mcp", "--scope", "files:read", "--scope", "files:write", "--accept-client-credentials"},
			storage.AuditEvent{Type: "resource.registered", Resource: "https://r.example.com/mcp", Detail: `replaced; accepts client_credentials; scopes "files:read files:write", default ""`}},
		{"resource add", []string{"https://r.example.com/mcp", "--scope", "files:read", "--scope", "files:write", "--scope-group", "files:write=editors"},
			storage.AuditEvent{Type: "resource.registered", Resource: "https://r.example.com/mcp", Detail: `replaced; users only; scopes "files:read files:write", default "", groups needed "files:write=editors"`}},
		{"client create", []string{"--id", "c1", "--redirect-uri", "http://127.0.0.1/callback"},
			storage.AuditEvent{Type: "client.registered", ClientID: "c1", Detail: "static, none"}},
		{"client create", []string{"--id", "svc", "--confidential"},
			storage.AuditEvent{Type: "client.registered", ClientID: "svc", Detail: "static, client_secret_basic"}},
		{"client rotate-secret", []string{"svc"},
			storage.AuditEvent{Type: "client.secret_rotated", ClientID: "svc", Detail: "old secret refused; tokens, codes and consents revoked"}},
		{"client token create", nil, storage.AuditEvent{Type: "registration.token_created"}},
		{"client token revoke", []string{"TOKEN-ID"}, storage.AuditEvent{Type: "registration.token_revoked"}},
		{"client block", []string{"https://evil.example/cimd"},
			storage.AuditEvent{Type: "client.blocked", ClientID: "https://evil.example/cimd", Detail: `host=false deleted=0 reason=""`}},
		{"client unblock", []string{"https://evil.example/cimd"}, storage.AuditEvent{Type: "client.unblocked", ClientID: "https://evil.example/cimd"}},
		{"client delete", []string{"c1"}, storage.AuditEvent{Type: "client.deleted", ClientID: "c1"}},
		{"user add", []string{"bob", "--password-file", pw}, storage.AuditEvent{Type: "user.added", Detail: "bob"}},
		{"user passwd", []string{"bob", "--password-file", pw}, storage.AuditEvent{Type: "user.password_changed", Detail: "bob: sessions, consents and grants revoked"}},
		{"user revoke", []string{"bob"}, storage.AuditEvent{Type: "user.revoked", Detail: "bob: sessions, consents and grants revoked"}},
		{"user disable", []string{"bob"}, storage.AuditEvent{Type: "user.disabled", Detail: "bob: sessions, consents and grants revoked"}},
		{"user enable", []string{"bob"}, storage.AuditEvent{Type: "user.enabled", Detail: "bob"}},
		{"user group add", []string{"bob", "editors"}, storage.AuditEvent{Type: "user.group_added", Detail: "bob: editors"}},
		{"user group remove", []string{"bob", "editors"}, storage.AuditEvent{Type: "user.group_removed", Detail: "bob: editors"}},
		{"user delete", []string{"bob"}, storage.AuditEvent{Type: "user.deleted", Detail: "bob"}},
		{"keys rotate", nil, storage.AuditEvent{Type: "key.rotated"}},
		{"keys withdraw", []string{"--", "KID"}, storage.AuditEvent{Type: "key.withdrawn"}},
		{"keys rekey", []string{"--new-key-file", newKEK}, storage.AuditEvent{Type: "key.resealed"}},
		{"resource delete", []string{"https://r.example.com/mcp"}, storage.AuditEvent{Type: "resource.deleted", Resource: "https://r.example.com/mcp"}},
	}
	done := map[string]bool{}
	for _, s := range steps {
		args := slices.Clone(s.args)
		for i, arg := range args {
			switch arg {
			case "TOKEN-ID":
				args[i] = tokenID
			case "KID":
				args[i] = kid
			}
		}
		out := a.ok(append(strings.Fields(s.cmd), args...)...)
		done[s.cmd] = true
		switch s.cmd {
		case "client token create":
			tokenID = regexp.MustCompile(`(?m)^id: +(\S+)$`).FindStringSubmatch(out)[1]
			s.want.Detail = "id " + tokenID
		case "keys rotate":
			kid = regexp.MustCompile(`new signing key (\S+):`).FindStringSubmatch(out)[1]
			s.want.Detail = "new kid " + kid
		case "keys withdraw":
			s.want.Detail = "kid " + kid
		case "keys rekey":
			s.want.Detail = "2 signing keys re-encrypted under a new key-encryption key"
		}
		a.store(func(st storage.Store) {
			es := auditOf(t, st, s.want.Type)
			if len(es) == 0 {
				t.Errorf("gatehouse %s wrote no %s event", s.cmd, s.want.Type)
				return
			}
			got, w := es[len(es)-1], s.want
			if strings.HasPrefix(w.Type, "user.") && got.UserID == "" {
				t.Errorf("gatehouse %s: event %s has no user id", s.cmd, w.Type)
			}
			if got.ClientID != w.ClientID || got.Resource != w.Resource || got.Detail != w.Detail || got.Outcome != "success" || got.IP != "cli" {
				t.Errorf("gatehouse %s: last %s event = %+v, want client %q resource %q detail %q, outcome success, ip cli",
					s.cmd, w.Type, got, w.ClientID, w.Resource, w.Detail)
			}
		})
	}
	for _, group := range [][]string{{"client"}, {"client", "token"}, {"user"}, {"user", "group"}, {"resource"}, {"keys"}, {"audit"}, {"config"}} {
		for _, sub := range groupSubcommands(t, group...) {
			cmd := strings.Join(append(slices.Clone(group), sub), " ")
			if cmd != "client token" && cmd != "user group" && !done[cmd] && !slices.Contains(readOnly, cmd) {
				t.Errorf("gatehouse %s is neither run by TestAdminMutationsAudited nor listed as changing nothing", cmd)
			}
		}
	}
}

// TestConfigCheckPrintsEffectiveValues: config check prints the value a
// setting left empty takes (registration.mode open in dev, token in serve;
// a gateway route's issuer and title), not "".
func TestConfigCheckPrintsEffectiveValues(t *testing.T) {
	a := newAdminCLI(t)
	a.ok("client", "list") // creates the dev data directory
	gw := serveConfig(t, "https://as.example.com", `gateway:
  routes:
    - name: everything
      url: https://mcp.example.com/everything/mcp
      upstream:
        url: http://127.0.0.1:9/mcp
`)
	for _, tt := range []struct {
		name string
		args []string
		want map[string]string // dotted path → printed value
	}{
		{"dev", []string{"--data", a.data}, map[string]string{"registration.mode": "open"}},
		{"serve", []string{"--config", serveConfig(t, "https://as.example.com", "")}, map[string]string{"registration.mode": "token"}},
		{"explicit mode", []string{"--config", serveConfig(t, "https://as.example.com", "registration:\n  mode: closed\n")}, map[string]string{"registration.mode": "closed"}},
		{"gateway", []string{"--config", gw}, map[string]string{
			"registration.mode": "token", "gateway.issuer": "https://as.example.com", "gateway.listen": "127.0.0.1:8090",
			"gateway.register_resources": "true", "gateway.routes.0.title": "the everything MCP server",
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			if err := run(t.Context(), append([]string{"config", "check"}, tt.args...), &out); err != nil {
				t.Fatalf("config check %s: %v\n%s", strings.Join(tt.args, " "), err, out.String())
			}
			var m map[string]any
			if err := yaml.Unmarshal(out.Bytes(), &m); err != nil {
				t.Fatalf("config check printed no YAML: %v\n%s", err, out.String())
			}
			for path, want := range tt.want {
				var v any = m
				for _, k := range strings.Split(path, ".") {
					switch c := v.(type) {
					case map[string]any:
						v = c[k]
					case []any:
						i, _ := strconv.Atoi(k)
						v = c[i]
					}
				}
				if got := fmt.Sprint(v); got != want {
					t.Errorf("config check %s prints %s: %q, want %q", tt.name, path, got, want)
				}
			}
		})
	}
}
