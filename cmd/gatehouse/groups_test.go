package main

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/gatehouse-mcp/gatehouse/internal/storage"
)

// TestUserGroups: `user group add|remove` change a user's groups, audit
// each change, and are shown by `user list` and `user show`, escaped;
// adding twice, removing what is not there, an unknown user and a bad
// group name are errors that change nothing.
func TestUserGroups(t *testing.T) {
	a := newAdminCLI(t)
	a.ok("user", "add", "alice", "--password-file", a.passwordFile("a-long-password"))
	a.ok("user", "add", "bob", "--password-file", a.passwordFile("a-long-password"))
	if out := a.ok("user", "group", "add", "alice", "editors"); !strings.HasPrefix(out, "alice added to group editors;") {
		t.Errorf("user group add printed %q", out)
	}
	a.ok("user", "group", "add", "alice", "admins")
	for _, tt := range []struct {
		args []string
		err  string
	}{
		{[]string{"add", "alice", "editors"}, `user is already in group "editors"`},
		{[]string{"remove", "bob", "editors"}, `user is not in group "editors"`},
		{[]string{"add", "carol", "editors"}, `no user "carol"`},
		{[]string{"add", "alice", "two words"}, `group name "two words": use 1 to 100 bytes of UTF-8 without spaces, commas or control characters`},
		{[]string{"add", "alice", "a,b"}, `group name "a,b": use 1 to 100 bytes of UTF-8 without spaces, commas or control characters`},
		{[]string{"add", "alice", "x\x1b[31m"}, `group name "x\x1b[31m": use 1 to 100 bytes of UTF-8 without spaces, commas or control characters`},
		{[]string{"add", "alice"}, "usage: gatehouse user group add USERNAME GROUP"},
	} {
		if _, err := a.run(append([]string{"user", "group"}, tt.args...)...); err == nil || err.Error() != tt.err {
			t.Errorf("user group %q = %v, want %q", tt.args, err, tt.err)
		}
	}
	if out := a.ok("user", "list"); !strings.Contains(out, "GROUPS") || !strings.Contains(out, "admins,editors") {
		t.Errorf("user list does not show alice's groups:\n%s", out)
	}
	if out := a.ok("user", "show", "alice"); !strings.Contains(out, "groups:   admins,editors\n") {
		t.Errorf("user show alice =\n%s", out)
	}
	a.ok("user", "group", "remove", "alice", "admins")
	if out := a.ok("user", "show", "bob"); !strings.Contains(out, "groups:   -\n") {
		t.Errorf("user show bob =\n%s", out)
	}
	a.store(func(st storage.Store) {
		u, err := st.GetUserByName(t.Context(), "alice")
		must(t, err)
		got, err := st.ListUserGroups(t.Context(), u.ID)
		must(t, err)
		if diff := cmp.Diff([]string{"editors"}, got); diff != "" {
			t.Errorf("alice's groups (-want +got):\n%s", diff)
		}
		if es := auditOf(t, st, "user.group_added"); len(es) != 2 || es[0].UserID != u.ID || es[0].Detail != "alice: editors" || es[0].IP != "cli" {
			t.Errorf("user.group_added events = %+v, want 2, the first for alice: editors", es)
		}
		wantAudit(t, st, storage.AuditEvent{Type: "user.group_removed", UserID: u.ID, Detail: "alice: admins"})
	})
}

// TestResourceScopeGroup: `resource add --scope-group` stores the policy
// (several groups, repeated scopes merged), `resource list` shows it, and
// a policy for a scope the resource lacks or a bad group is refused.
func TestResourceScopeGroup(t *testing.T) {
	a := newAdminCLI(t)
	const url = "https://mcp.example.com/notes"
	a.ok("resource", "add", url, "--scope", "notes:read", "--scope", "notes:write", "--default-scope", "notes:read",
		"--scope-group", "notes:write=editors,admins", "--scope-group", "notes:write=owners")
	a.store(func(st storage.Store) {
		r, err := st.GetResource(t.Context(), url)
		must(t, err)
		want := map[string]storage.ScopePolicy{"notes:write": {Groups: []string{"editors", "admins", "owners"}}}
		if diff := cmp.Diff(want, r.ScopePolicies); diff != "" {
			t.Errorf("scope policies (-want +got):\n%s", diff)
		}
		if es := auditOf(t, st, "resource.registered"); len(es) != 1 || !strings.Contains(es[0].Detail, `groups needed "notes:write=editors,admins,owners"`) {
			t.Errorf("resource.registered events = %+v, want one naming the policy", es)
		}
	})
	if out := a.ok("resource", "list"); !strings.Contains(out, "GROUPS NEEDED") || !strings.Contains(out, "notes:write=editors,admins,owners") {
		t.Errorf("resource list does not show the policy:\n%s", out)
	}
	for _, tt := range []struct {
		flag, err string
	}{
		{"notes:delete=editors", `--scope-group "notes:delete=editors": "notes:delete" is not one of the resource's --scope values`},
		{"notes:write", `--scope-group "notes:write": want SCOPE=GROUP[,GROUP...]`},
		{"notes:write=a b", `--scope-group "notes:write=a b": group name "a b": use 1 to 100 bytes of UTF-8 without spaces, commas or control characters`},
	} {
		if _, err := a.run("resource", "add", url, "--scope", "notes:read", "--scope", "notes:write", "--scope-group", tt.flag); err == nil || err.Error() != tt.err {
			t.Errorf("resource add --scope-group %q = %v, want %q", tt.flag, err, tt.err)
		}
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestUserGroupsFromProvider: `user show` says which groups an identity
// provider gave, and `user group remove` of such a group says that it is
// the provider's, not that the user is not in it; a group both gave is
// removed as the operator's and stays as the provider's.
func TestUserGroupsFromProvider(t *testing.T) {
	a := newAdminCLI(t)
	a.ok("user", "add", "alice", "--password-file", a.passwordFile("a-long-password"))
	a.ok("user", "group", "add", "alice", "editors")
	a.store(func(st storage.Store) {
		u, err := st.GetUserByName(t.Context(), "alice")
		must(t, err)
		must(t, st.SetUpstreamGroups(t.Context(), u.ID, "acme", []string{"staff", "editors"}, time.Now()))
	})
	if out := a.ok("user", "show", "alice"); !strings.Contains(out, "groups:   editors,staff\n  from acme: editors,staff\n") {
		t.Errorf("user show alice =\n%s", out)
	}
	want := `user is in group "staff" because identity provider acme gives it; it goes when the provider stops giving it, at their next sign-in there`
	if _, err := a.run("user", "group", "remove", "alice", "staff"); err == nil || err.Error() != want {
		t.Errorf("user group remove alice staff = %v, want %q", err, want)
	}
	a.ok("user", "group", "remove", "alice", "editors")
	if out := a.ok("user", "show", "alice"); !strings.Contains(out, "groups:   editors,staff\n") {
		t.Errorf("user show alice after removing the operator's editors =\n%s", out)
	}
}

// TestResourceScopeClaim: `resource add --scope-claim` stores claim
// conditions (repeated claims merged, with --scope-group on the same
// scope), the audit event and `resource list` show them, and a bad
// value is refused.
func TestResourceScopeClaim(t *testing.T) {
	a := newAdminCLI(t)
	const url = "https://mcp.example.com/notes"
	a.ok("resource", "add", url, "--scope", "notes:read", "--scope", "notes:write", "--default-scope", "notes:read",
		"--scope-group", "notes:write=editors", "--scope-claim", "notes:write=department=engineering", "--scope-claim", "notes:write=department=research,engineering")
	a.store(func(st storage.Store) {
		r, err := st.GetResource(t.Context(), url)
		must(t, err)
		want := map[string]storage.ScopePolicy{"notes:write": {Groups: []string{"editors"}, Claims: map[string][]string{"department": {"engineering", "research"}}}}
		if diff := cmp.Diff(want, r.ScopePolicies); diff != "" {
			t.Errorf("scope policies (-want +got):\n%s", diff)
		}
		if es := auditOf(t, st, "resource.registered"); len(es) != 1 || !strings.Contains(es[0].Detail, `groups needed "notes:write=editors", claims needed "notes:write=department=engineering,research"`) {
			t.Errorf("resource.registered events = %+v, want one naming the policy", es)
		}
	})
	if out := a.ok("resource", "list"); !strings.Contains(out, "notes:write=editors claims notes:write=department=engineering,research") {
		t.Errorf("resource list does not show the policy:\n%s", out)
	}
	for _, tt := range []struct {
		flag, err string
	}{
		{"notes:delete=department=x", `--scope-claim "notes:delete=department=x": "notes:delete" is not one of the resource's --scope values`},
		{"notes:write=department", `--scope-claim "notes:write=department": want SCOPE=CLAIM=VALUE[,VALUE...]`},
		{"notes:write=department=a,,b", `--scope-claim "notes:write=department=a,,b": claim value "": use 1 to 255 bytes of UTF-8 without commas or control characters`},
	} {
		if _, err := a.run("resource", "add", url, "--scope", "notes:read", "--scope", "notes:write", "--scope-claim", tt.flag); err == nil || err.Error() != tt.err {
			t.Errorf("resource add --scope-claim %q = %v, want %q", tt.flag, err, tt.err)
		}
	}
}
