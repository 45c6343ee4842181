package as

import (
	"strings"
	"testing"

	"github.com/gatehouse-mcp/gatehouse/internal/storage"
)

// TestUpstreamLinkByVerifiedEmail (issue 14 item 1): with
// link_by_verified_email, the first sign-in of a provider identity whose
// verified email is the name of exactly one local user links to that
// user, audited as user.linked; each rule that keeps it from linking
// provisions a new user instead, and without the setting nothing links.
func TestUpstreamLinkByVerifiedEmail(t *testing.T) {
	const email = "jane@acme.example"
	addLocal := func(t *testing.T, ts *testServer, name string) storage.User {
		t.Helper()
		now := ts.Clock.Now()
		u := storage.User{ID: "local-" + name, Username: name, PasswordHash: "unused", CreatedAt: now, UpdatedAt: now}
		must(t, ts.Store.CreateUser(t.Context(), u))
		return u
	}
	// signIn signs the provider's current subject in and returns the
	// user its identity names.
	signIn := func(t *testing.T, ts *testServer, idp *fakeIdP) string {
		t.Helper()
		p := ts.upstreamSignIn(t, newBrowser(t), defaultAuth())
		if !strings.Contains(p.body, `id="consent-form"`) && location(t, p).Query().Get("code") == "" {
			t.Fatalf("sign-in: status %d, want consent or a code:\n%s", p.status, p.body)
		}
		id, err := ts.Store.GetUpstreamIdentity(t.Context(), "acme", idp.subject)
		must(t, err)
		return id.UserID
	}
	events := func(t *testing.T, ts *testServer, typ string) []storage.AuditEvent {
		q := storageQueryAll()
		q.Type = typ
		es, err := ts.Store.QueryAudit(t.Context(), q)
		must(t, err)
		return es
	}
	linking := func(u *Upstream) { u.LinkByVerifiedEmail = true }

	t.Run("links", func(t *testing.T) {
		ts, idp := newUpstreamServer(t, linking)
		idp.set(func(f *fakeIdP) { f.idClaims["email"] = "Jane@ACME.example" }) // case does not matter
		local := addLocal(t, ts, email)
		users, _ := ts.Store.ListUsers(t.Context())
		if got := signIn(t, ts, idp); got != local.ID {
			t.Fatalf("identity's user = %s, want the local user %s", got, local.ID)
		}
		if after, _ := ts.Store.ListUsers(t.Context()); len(after) != len(users) {
			t.Errorf("%d users after a linked sign-in, was %d: a user was provisioned", len(after), len(users))
		}
		es := events(t, ts, "user.linked")
		if len(es) != 1 || es[0].UserID != local.ID || !strings.Contains(es[0].Detail, "provider=acme") || !strings.Contains(es[0].Detail, "user="+email) {
			t.Errorf("user.linked events = %+v, want one naming provider=acme and the user", es)
		}
		if es := events(t, ts, "user.provisioned"); len(es) != 0 {
			t.Errorf("user.provisioned events = %+v, want none", es)
		}
		// The next sign-in finds the identity: no second link.
		if got := signIn(t, ts, idp); got != local.ID || len(events(t, ts, "user.linked")) != 1 {
			t.Errorf("second sign-in: user %s, %d user.linked events; want %s and still 1", got, len(events(t, ts, "user.linked")), local.ID)
		}
	})

	// Each case sets up a local user the email would match, breaks one
	// condition, and wants a new user (no link).
	for _, tt := range []struct {
		name   string
		mod    func(*Upstream)
		idp    func(f *fakeIdP)
		locals []string
	}{
		{"off by default", nil, nil, []string{email}},
		{"email_verified false", linking, func(f *fakeIdP) { f.idClaims["email_verified"] = false }, []string{email}},
		{"email_verified absent", linking, func(f *fakeIdP) { delete(f.idClaims, "email_verified") }, []string{email}},
		{"email_verified a string", linking, func(f *fakeIdP) { f.idClaims["email_verified"] = "true" }, []string{email}},
		{"two candidates", linking, nil, []string{email, "JANE@acme.example"}},
		{"no candidate", linking, nil, []string{"jane"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ts, idp := newUpstreamServer(t, tt.mod)
			if tt.idp != nil {
				idp.set(tt.idp)
			}
			locals := map[string]bool{}
			for _, n := range tt.locals {
				locals[addLocal(t, ts, n).ID] = true
			}
			got := signIn(t, ts, idp)
			if locals[got] {
				t.Fatalf("the identity was linked to local user %s, want a new user", got)
			}
			u, err := ts.Store.GetUser(t.Context(), got)
			must(t, err)
			if u.Username != UpstreamUsername("acme", idp.subject) {
				t.Errorf("user = %q, want the provisioned oidc:acme:%s", u.Username, idp.subject)
			}
			if es := events(t, ts, "user.linked"); len(es) != 0 {
				t.Errorf("user.linked events = %+v, want none", es)
			}
		})
	}

	// A local user already linked to one identity of the provider is not
	// linked to a second one with the same verified email.
	t.Run("already linked at the provider", func(t *testing.T) {
		ts, idp := newUpstreamServer(t, linking)
		local := addLocal(t, ts, email)
		if got := signIn(t, ts, idp); got != local.ID {
			t.Fatalf("first identity's user = %s, want %s", got, local.ID)
		}
		idp.set(func(f *fakeIdP) { f.subject = "another-subject" })
		if got := signIn(t, ts, idp); got == local.ID {
			t.Errorf("a second identity of acme was linked to %s too, want a new user", local.ID)
		}
		if es := events(t, ts, "user.linked"); len(es) != 1 {
			t.Errorf("user.linked events = %+v, want only the first", es)
		}
	})
}
