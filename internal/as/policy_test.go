package as

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/gatehouse-mcp/gatehouse/internal/storage"
)

// restrictWrite puts the policy notes:write → group editors on the test
// resource.
func (ts *testServer) restrictWrite(t *testing.T) {
	t.Helper()
	res, err := ts.Store.GetResource(t.Context(), testResource)
	must(t, err)
	res.ScopePolicies = map[string]storage.ScopePolicy{"notes:write": {Groups: []string{"editors"}}}
	must(t, ts.Store.PutResource(t.Context(), res))
}

// tokenGrant is a token endpoint answer and its access token's scope.
type tokenGrant struct {
	Scope        string `json:"scope"`
	RefreshToken string `json:"refresh_token"`
	AccessToken  string `json:"access_token"`
	claimed      string
}

// tokenFor posts form to the token endpoint and wants a token.
func (ts *testServer) tokenFor(t *testing.T, form url.Values) tokenGrant {
	t.Helper()
	status, _, body := ts.post(t, "/token", form, "", "")
	if status != http.StatusOK {
		t.Fatalf("token endpoint = %d %s, want 200", status, body)
	}
	var g tokenGrant
	must(t, json.Unmarshal([]byte(body), &g))
	claims, err := ts.opts.Keyring.Verify(t.Context(), g.AccessToken)
	must(t, err)
	g.claimed = claims.Scope
	return g
}

func refresh(rt string) url.Values {
	return url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}, "client_id": {publicClient}}
}

// between returns the text of s after from and before to (or the end).
func between(s, from, to string) string {
	_, after, _ := strings.Cut(s, from)
	before, _, _ := strings.Cut(after, to)
	return before
}

// TestScopePolicyGroups (issue 14 item 3): a scope restricted to a group
// is offered only to its members. A user without the group sees it as not
// available (and why) on the consent page, gets a token with the rest,
// and a step-up to it ends on a page that says why, remembered consent
// notwithstanding; added to the group and signed in again, they get it;
// taken out, they lose it at the next refresh. Each withholding is
// audited.
func TestScopePolicyGroups(t *testing.T) {
	ts := newTestServer(t, nil)
	ts.restrictWrite(t)
	ctx := t.Context()
	b := newBrowser(t)
	a := defaultAuth()
	a.scope = "notes:read notes:write offline_access"

	p := ts.login(t, b, b.get(a.url(ts.URL)), testUser, testPassword)
	if !strings.Contains(p.body, `id="consent-form"`) {
		t.Fatalf("after login: status %d, want the consent page; body:\n%s", p.status, p.body)
	}
	offered := between(p.body, `id="scopes-heading"`, `id="unavailable-heading"`)
	if !strings.Contains(offered, "notes:read") || strings.Contains(offered, "notes:write") {
		t.Errorf("consent page offers %q, want notes:read and not notes:write", offered)
	}
	if un := between(p.body, `id="unavailable-heading"`, `</ul>`); !strings.Contains(un, "notes:write needs group editors") {
		t.Errorf("consent page's unavailable scopes = %q, want notes:write needs group editors", un)
	}
	code := location(t, ts.consent(t, b, p, "allow")).Query().Get("code")
	g := ts.tokenFor(t, exchange(code))
	if g.Scope != "notes:read" || g.claimed != "notes:read" {
		t.Errorf("token without the group: response scope %q, claim %q; want notes:read", g.Scope, g.claimed)
	}

	// The step-up (what rs's 403 asks for: every scope the call needs),
	// and a request for the unavailable scope alone: a page that says
	// why, no code, no redirect.
	for _, scope := range []string{"notes:read notes:write", "notes:write"} {
		a.scope = scope
		p = b.get(a.url(ts.URL))
		if p.status != http.StatusForbidden || p.header.Get("Location") != "" || !strings.Contains(p.body, "notes:write needs group editors") {
			t.Errorf("step-up to %q without the group = %d (Location %q), want 403 naming the group; body:\n%s", scope, p.status, p.header.Get("Location"), p.body)
		}
	}
	events, err := ts.Store.QueryAudit(ctx, storage.AuditQuery{Type: "scope.withheld", UserID: ts.userID})
	must(t, err)
	if len(events) != 3 || events[0].Detail != "notes:write needs group editors" || events[0].Outcome != "denied" {
		t.Errorf("scope.withheld events = %+v, want 3 naming notes:write and editors", events)
	}

	// In the group, signed in again: notes:write is offered and granted.
	must(t, ts.Store.AddUserGroup(ctx, ts.userID, "editors", ts.Clock.Now()))
	a.scope = "notes:read notes:write offline_access"
	p = b.get(a.url(ts.URL))
	if offered := between(p.body, `id="scopes-heading"`, `</ul>`); !strings.Contains(offered, "notes:write") || strings.Contains(p.body, "Not available to you") {
		t.Fatalf("consent page in the group offers %q, want notes:write and nothing unavailable; status %d", offered, p.status)
	}
	code = location(t, ts.consent(t, b, p, "allow")).Query().Get("code")
	g = ts.tokenFor(t, exchange(code))
	if g.Scope != "notes:read notes:write" || g.claimed != "notes:read notes:write" {
		t.Errorf("token in the group: response scope %q, claim %q; want notes:read notes:write", g.Scope, g.claimed)
	}

	// Out of the group: the next refresh narrows the token, and the
	// family stays narrowed.
	must(t, ts.Store.RemoveUserGroup(ctx, ts.userID, "editors"))
	g = ts.tokenFor(t, refresh(g.RefreshToken))
	if g.Scope != "notes:read" || g.claimed != "notes:read" {
		t.Errorf("refresh after leaving the group: response scope %q, claim %q; want notes:read", g.Scope, g.claimed)
	}
	must(t, ts.Store.AddUserGroup(ctx, ts.userID, "editors", ts.Clock.Now()))
	g = ts.tokenFor(t, refresh(g.RefreshToken))
	if g.Scope != "notes:read" {
		t.Errorf("refresh after rejoining the group: response scope %q, want notes:read (a new sign-in grants it again)", g.Scope)
	}
	must(t, ts.Store.RemoveUserGroup(ctx, ts.userID, "editors"))

	// The remembered consent covers notes:write now: it does not pass it on.
	a.scope = "notes:read notes:write"
	if p = b.get(a.url(ts.URL)); p.status != http.StatusForbidden {
		t.Errorf("request with a remembered consent for notes:write, out of the group = %d, want the 403 page; body:\n%s", p.status, p.body)
	}
}

// TestScopePolicyRefreshOnlyRestricted: a refresh whose every granted
// scope is withheld fails (invalid_grant, naming why) rather than
// answering with a token whose missing scope reads as "all you asked
// for".
func TestScopePolicyRefreshOnlyRestricted(t *testing.T) {
	ts := newTestServer(t, nil)
	ts.restrictWrite(t)
	ctx := t.Context()
	must(t, ts.Store.AddUserGroup(ctx, ts.userID, "editors", ts.Clock.Now()))
	a := defaultAuth()
	a.scope = "notes:write offline_access"
	g := ts.tokenFor(t, exchange(ts.code(t, a)))
	if g.Scope != "notes:write" {
		t.Fatalf("token in the group: scope %q, want notes:write", g.Scope)
	}
	must(t, ts.Store.RemoveUserGroup(ctx, ts.userID, "editors"))
	status, _, body := ts.post(t, "/token", refresh(g.RefreshToken), "", "")
	assertOAuthError(t, status, body, http.StatusBadRequest, "invalid_grant")
	if !strings.Contains(body, "notes:write needs group editors") {
		t.Errorf("refresh body %s does not say why", body)
	}
}

// TestScopePolicyDefaultsAndMachines: a request naming no scope gets the
// default scopes the user may have, with no page; a client_credentials
// token has no group, so a restricted scope is refused when asked for.
func TestScopePolicyDefaultsAndMachines(t *testing.T) {
	ts := newTestServer(t, nil)
	ctx := t.Context()
	res, err := ts.Store.GetResource(ctx, testResource)
	must(t, err)
	res.DefaultScopes = []string{"notes:read", "notes:write"}
	res.ScopePolicies = map[string]storage.ScopePolicy{"notes:write": {Groups: []string{"editors", "admins"}}}
	must(t, ts.Store.PutResource(ctx, res))

	a := defaultAuth()
	a.scope = ""
	g := ts.tokenFor(t, exchange(ts.code(t, a)))
	if g.Scope != "notes:read" {
		t.Errorf("default scopes without the group: %q, want notes:read", g.Scope)
	}
	status, _, body := ts.post(t, "/token", url.Values{"grant_type": {"client_credentials"}, "resource": {testResource}, "scope": {"notes:write"}}, confClient, confSecret)
	assertOAuthError(t, status, body, http.StatusBadRequest, "invalid_scope")
	if !strings.Contains(body, "notes:write needs one of the groups editors, admins") {
		t.Errorf("client_credentials refusal %s does not say why", body)
	}
	status, _, body = ts.post(t, "/token", url.Values{"grant_type": {"client_credentials"}, "resource": {testResource}}, confClient, confSecret)
	if status != http.StatusOK || !strings.Contains(body, `"scope":"notes:read"`) {
		t.Errorf("client_credentials with the defaults = %d %s, want notes:read only", status, body)
	}
}

// TestScopePolicyCombination: a policy holds when its groups condition
// and every claim condition hold; the reason names only the conditions
// that do not.
func TestScopePolicyCombination(t *testing.T) {
	res := storage.Resource{ScopePolicies: map[string]storage.ScopePolicy{"w": {
		Groups: []string{"editors"},
		Claims: map[string][]string{"department": {"engineering", "research"}, "level": {"3"}},
	}}}
	for _, tc := range []struct {
		name string
		a    subjectAttrs
		want string // reason; empty: granted
	}{
		{"all hold", subjectAttrs{groups: []string{"editors"}, claims: map[string][]string{"department": {"sales", "research"}, "level": {"3"}}}, ""},
		{"group missing", subjectAttrs{claims: map[string][]string{"department": {"research"}, "level": {"3"}}}, "w needs group editors"},
		{"one claim wrong", subjectAttrs{groups: []string{"editors"}, claims: map[string][]string{"department": {"sales"}, "level": {"3"}}}, "w needs department engineering or research"},
		{"nothing (a local user without groups)", subjectAttrs{}, "w needs group editors and department engineering or research and level 3"},
	} {
		kept, withheld := applyPolicies(res, []string{"w"}, tc.a)
		if got := reasons(withheld); got != tc.want || (tc.want == "") != (len(kept) == 1) {
			t.Errorf("%s: kept %v, reason %q; want reason %q", tc.name, kept, got, tc.want)
		}
	}
}
