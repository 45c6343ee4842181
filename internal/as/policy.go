package as

import (
	"context"
	"errors"
	"maps"
	"net/http"
	"slices"
	"strings"

	"github.com/gatehouse-mcp/gatehouse/internal/oauth"
	"github.com/gatehouse-mcp/gatehouse/internal/storage"
	"github.com/gatehouse-mcp/gatehouse/internal/web"
)

// Scope policies (issue 14 item 3): a resource can restrict a scope to
// users with a group, or with given values of upstream claims
// (storage.ScopePolicy): a scope's policy holds when its groups condition
// (if any) and every one of its claim conditions hold. The rule is applied
// where a scope is about to be handed out, after the user is known — at
// the consent step (so remembered consent cannot pass a scope on), again
// when the code is issued, at every refresh (a user taken out of a group,
// or whose provider now says another value of a claim, loses the scope at
// the next refresh), and to client_credentials tokens, which have no user
// and so no group and no claim. Claims come only from an upstream
// provider's sign-in (storage.UserClaims): a local user has none, so a
// claim condition always withholds the scope from them.

// subjectAttrs is what a scope policy sees of a subject: its groups and
// its upstream claims' values. The zero value is a machine's (or a local
// user's without groups).
type subjectAttrs struct {
	groups []string
	claims map[string][]string
}

// withheldScope is a requested scope the subject may not have, and why:
// the conditions of its policy that do not hold.
type withheldScope struct {
	scope  string
	groups []string            // groups, one of which is needed (nil: that condition holds)
	claims map[string][]string // claims whose condition does not hold, with the values accepted
}

// String says why, in words the consent page and the error page show:
// "notes:write needs group editors", "notes:write needs department
// engineering or research", the failing conditions joined by "and".
func (w withheldScope) String() string {
	var needs []string
	switch len(w.groups) {
	case 0:
	case 1:
		needs = append(needs, "group "+w.groups[0])
	default:
		needs = append(needs, "one of the groups "+strings.Join(w.groups, ", "))
	}
	for _, c := range slices.Sorted(maps.Keys(w.claims)) {
		vals := w.claims[c]
		switch len(vals) {
		case 1:
			needs = append(needs, c+" "+vals[0])
		default:
			needs = append(needs, c+" "+strings.Join(vals[:len(vals)-1], ", ")+" or "+vals[len(vals)-1])
		}
	}
	return w.scope + " needs " + strings.Join(needs, " and ")
}

// reasons joins the reasons of ws for audit details and error
// descriptions.
func reasons(ws []withheldScope) string {
	out := make([]string, len(ws))
	for i, w := range ws {
		out[i] = w.String()
	}
	return strings.Join(out, "; ")
}

// restrictsAny reports whether res has a policy for any of scopes: only
// then are the subject's groups and claims read.
func restrictsAny(res storage.Resource, scopes []string) bool {
	for _, sc := range scopes {
		if res.ScopePolicies[sc].Restricts() {
			return true
		}
	}
	return false
}

// check returns the conditions of pol that a does not meet; none (ok)
// when the policy holds: the groups condition, if any, and every claim
// condition.
func check(sc string, pol storage.ScopePolicy, a subjectAttrs) (withheldScope, bool) {
	w := withheldScope{scope: sc}
	if len(pol.Groups) > 0 && !slices.ContainsFunc(pol.Groups, func(g string) bool { return slices.Contains(a.groups, g) }) {
		w.groups = pol.Groups
	}
	for c, want := range pol.Claims {
		if !slices.ContainsFunc(want, func(v string) bool { return slices.Contains(a.claims[c], v) }) {
			if w.claims == nil {
				w.claims = map[string][]string{}
			}
			w.claims[c] = want
		}
	}
	return w, w.groups == nil && w.claims == nil
}

// applyPolicies splits scopes into those a subject with attributes a may
// have and those withheld. A machine (no user) has no groups and no
// claims. offline_access is about the grant, not the resource: it is
// never withheld.
func applyPolicies(res storage.Resource, scopes []string, a subjectAttrs) (kept []string, withheld []withheldScope) {
	for _, sc := range scopes {
		pol := res.ScopePolicies[sc]
		if sc == scopeOfflineAccess || !pol.Restricts() {
			kept = append(kept, sc)
			continue
		}
		if w, ok := check(sc, pol, a); !ok {
			withheld = append(withheld, w)
			continue
		}
		kept = append(kept, sc)
	}
	return kept, withheld
}

// userAttrs returns the groups and claims of userID when res restricts
// any of scopes, nothing otherwise (no read needed).
func (s *Server) userAttrs(ctx context.Context, userID string, res storage.Resource, scopes []string) (subjectAttrs, error) {
	if !restrictsAny(res, scopes) {
		return subjectAttrs{}, nil
	}
	groups, err := s.opts.Store.ListUserGroups(ctx, userID)
	if err != nil {
		return subjectAttrs{}, err
	}
	claims, err := s.opts.Store.ListUserClaims(ctx, userID)
	if err != nil {
		return subjectAttrs{}, err
	}
	return subjectAttrs{groups: groups, claims: claims}, nil
}

// userScopes is applyPolicies for the user userID at the resource url.
// A resource that is no longer registered has no policy left to apply.
func (s *Server) userScopes(ctx context.Context, userID, url string, scopes []string) ([]string, []withheldScope, error) {
	res, err := s.resolveResource(ctx, []string{url})
	if err != nil {
		if e := (*oauth.Error)(nil); errors.As(err, &e) && e.Code == oauth.InvalidTarget {
			return scopes, nil, nil
		}
		return nil, nil, err
	}
	attrs, err := s.userAttrs(ctx, userID, res, scopes)
	if err != nil {
		return nil, nil, err
	}
	kept, withheld := applyPolicies(res, scopes, attrs)
	return kept, withheld, nil
}

// Words of the page that ends a request for scopes the user may not have.
const (
	titleUnavailable    = "You cannot give this app the access it asks for"
	nextStepUnavailable = "Nothing was shared with the app. If you need this access, ask an administrator of this server for what it needs (a group, or a claim at your sign-in provider), then sign in again from the app. Otherwise close this window."
)

// policyGate withholds from p the scopes the signed-in user may not have
// and audits it (scope.withheld). It returns the narrowed request and the
// withheld scopes for the consent page, or false when it ended the
// request: a request that named its scopes and would bring the client
// nothing the user may grant beyond what they already allowed it — only
// unavailable scopes, or a step-up (previous scopes plus the new one)
// to a scope the user cannot have — ends on a page that says why. A
// token with the rest would send the client back to the same step-up,
// over and over; an error at its redirect URI would tell the user
// nothing. A request that asked for the resource's default scopes just
// gets the rest.
func (s *Server) policyGate(w http.ResponseWriter, r *http.Request, p pending, sess *storage.Session, sealed bool) (pending, []withheldScope, bool) {
	ctx := r.Context()
	kept, withheld, err := s.userScopes(ctx, sess.UserID, p.Resource, p.Scopes)
	if err != nil {
		s.serverErrorPage(w, r, err)
		return p, nil, false
	}
	if len(withheld) == 0 {
		return p, nil, true
	}
	why := reasons(withheld)
	s.audit(ctx, r, storage.AuditEvent{Type: "scope.withheld", UserID: sess.UserID, ClientID: p.ClientID, Resource: p.Resource, Outcome: "denied", Detail: why})
	p.Scopes = kept
	if p.Defaulted {
		return p, withheld, true
	}
	nothingNew := !slices.ContainsFunc(kept, func(sc string) bool { return sc != scopeOfflineAccess })
	if !nothingNew {
		cons, err := s.opts.Store.GetConsent(ctx, sess.UserID, p.ClientID, p.Resource)
		if err == nil && cons.UserEpoch == sess.UserEpoch {
			nothingNew = subset(kept, append(slices.Clone(cons.Scopes), scopeOfflineAccess))
		}
	}
	if !nothingNew {
		return p, withheld, true
	}
	if slices.Contains(strings.Fields(p.Prompt), "none") {
		s.finishWithError(w, r, p, sess, sealed, oauth.New(oauth.AccessDenied, "the requested scopes are not available to the user: %s", why))
		return p, nil, false
	}
	if sealed && !s.markCompleted(w, r, p) {
		return p, nil, false
	}
	noteError(ctx, oauth.AccessDenied)
	s.opts.Pages.Error(w, r, http.StatusForbidden, web.ErrorData{
		Title:       titleUnavailable,
		Description: "Not available to you: " + why + ". " + nextStepUnavailable,
		Detail:      "the requested scopes are not available to the signed-in user (" + why + "); no code was issued. Request only scopes the user may have, or have the user given what the policy needs.",
		Code:        string(oauth.AccessDenied),
	})
	return p, nil, false
}
