package storagetest

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/gatehouse-mcp/gatehouse/internal/storage"
)

// t0 is the suite's reference time: exact to the microsecond (what backends
// keep) and UTC (what they return), so values round-trip unchanged.
var t0 = time.Date(2025, 3, 14, 15, 9, 26, 535897000, time.UTC)

// at returns t0 + d.
func at(d time.Duration) time.Time { return t0.Add(d) }

// Clock-independent expiries for Replay.UseOnce, whose "now" is the store's
// own clock.
var (
	longAgo    = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)
	farFuture  = time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC)
	errFromFn  = errors.New("storagetest: error from update closure")
	equateNone = cmpopts.EquateEmpty()
)

// RunTests runs one subtest per aggregate against stores from open, which
// must return a fresh, empty store on every call (see the package doc).
func RunTests(t *testing.T, open func(t *testing.T) storage.Store) {
	t.Helper()
	for _, tc := range []struct {
		name string
		fn   func(t *testing.T, s storage.Store)
	}{
		{"ClientsCRUD", testClients},
		{"ClientCascadeDelete", testClientCascade},
		{"ClientBlocks", testClientBlocks},
		{"ClientResetAndConsents", testClientReset},
		{"ClientCounts", testClientCounts},
		{"Users", testUsers},
		{"UserCascadeDelete", testUserCascade},
		{"UserReset", testUserReset},
		{"UserGroups", testUserGroups},
		{"UpstreamGroups", testUpstreamGroups},
		{"UpstreamClaims", testUpstreamClaims},
		{"UpstreamIdentities", testUpstreamIdentities},
		{"Passkeys", testPasskeys},
		{"Resources", testResources},
		{"Sessions", testSessions},
		{"UserSessions", testUserSessions},
		{"UserGrants", testUserGrants},
		{"AuthCodes", testAuthCodes},
		{"GrantsAndRefreshTokens", testGrantsAndRefreshTokens},
		{"Consents", testConsents},
		{"KeysRotation", testKeys},
		{"KeysWithdraw", testKeysWithdraw},
		{"Replay", testReplay},
		{"Throttle", testThrottle},
		{"Audit", testAudit},
		{"AuditRetention", testAuditRetention},
		{"AuditText", testAuditText},
		{"AuditBatch", testAuditBatch},
		{"GarbageCollect", testGarbageCollect},
		{"TimezoneRoundTrip", testTimezoneRoundTrip},
		{"Ping", testPing},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, open(t)) })
	}
}

// testUpstreamIdentities checks the users provisioned by an upstream
// sign-in (issue 14 item 1): user and identity are created together or
// not at all, the same (provider, subject) is the same user, and deleting
// the user deletes the identity.
func testUpstreamIdentities(t *testing.T, s storage.Store) {
	ctx := t.Context()
	u := newUser("up1")
	u.Username, u.PasswordHash, u.Epoch, u.DisabledAt = "oidc:acme:sub-1", "", 0, time.Time{}
	id := storage.UpstreamIdentity{Provider: "acme", Subject: "sub-1", UserID: "up1", CreatedAt: at(time.Minute)}
	wantErr(t, "CreateUpstreamUser(up1)", s.CreateUpstreamUser(ctx, u, id), nil)
	got, err := s.GetUpstreamIdentity(ctx, "acme", "sub-1")
	wantErr(t, `GetUpstreamIdentity("acme", "sub-1")`, err, nil)
	diff(t, `GetUpstreamIdentity("acme", "sub-1")`, got, id)
	gotUser, err := s.GetUser(ctx, "up1")
	wantErr(t, `GetUser("up1")`, err, nil)
	diff(t, `GetUser("up1")`, gotUser, u)

	// The subject is matched exactly, and per provider.
	for _, k := range [][2]string{{"acme", "SUB-1"}, {"other", "sub-1"}, {"acme", "sub-1 "}} {
		_, err := s.GetUpstreamIdentity(ctx, k[0], k[1])
		wantErr(t, fmt.Sprintf("GetUpstreamIdentity(%q, %q)", k[0], k[1]), err, storage.ErrNotFound)
	}

	// The same identity again: refused, and no second user is left behind.
	u2 := newUser("up2")
	u2.Username = "oidc:acme:sub-1-again"
	id2 := id
	id2.UserID = "up2"
	wantErr(t, "CreateUpstreamUser(up2) with up1's identity", s.CreateUpstreamUser(ctx, u2, id2), storage.ErrAlreadyExists)
	_, err = s.GetUser(ctx, "up2")
	wantErr(t, `GetUser("up2") after the refused create`, err, storage.ErrNotFound)

	// A taken username: refused, and no identity is left behind.
	local := mustCreateUser(t, s, "local")
	u3 := newUser("up3")
	u3.Username = local.Username
	id3 := storage.UpstreamIdentity{Provider: "acme", Subject: "sub-3", UserID: "up3", CreatedAt: t0}
	wantErr(t, "CreateUpstreamUser(up3) with a local user's name", s.CreateUpstreamUser(ctx, u3, id3), storage.ErrAlreadyExists)
	_, err = s.GetUpstreamIdentity(ctx, "acme", "sub-3")
	wantErr(t, `GetUpstreamIdentity("acme", "sub-3") after the refused create`, err, storage.ErrNotFound)

	// An identity must name its user.
	id4 := storage.UpstreamIdentity{Provider: "acme", Subject: "sub-4", UserID: "someone-else"}
	if err := s.CreateUpstreamUser(ctx, newUser("up4"), id4); err == nil {
		t.Errorf("CreateUpstreamUser(up4) with an identity naming another user = nil, want an error")
	}

	id5 := storage.UpstreamIdentity{Provider: "a-first", Subject: "zz", UserID: "up5", CreatedAt: t0}
	u5 := newUser("up5")
	u5.Username = "oidc:a-first:zz"
	wantErr(t, "CreateUpstreamUser(up5)", s.CreateUpstreamUser(ctx, u5, id5), nil)
	list, err := s.ListUpstreamIdentities(ctx)
	wantErr(t, "ListUpstreamIdentities()", err, nil)
	diff(t, "ListUpstreamIdentities()", list, []storage.UpstreamIdentity{id5, id})

	// Linking an identity to an existing (local) user: once per provider
	// per user, never an identity taken, never a user who does not exist.
	link := storage.UpstreamIdentity{Provider: "acme", Subject: "sub-local", UserID: local.ID, CreatedAt: t0}
	wantErr(t, "LinkUpstreamIdentity(acme, local)", s.LinkUpstreamIdentity(ctx, link), nil)
	got, err = s.GetUpstreamIdentity(ctx, "acme", "sub-local")
	wantErr(t, `GetUpstreamIdentity("acme", "sub-local")`, err, nil)
	diff(t, `GetUpstreamIdentity("acme", "sub-local")`, got, link)
	again := link
	again.Subject = "sub-local-2"
	wantErr(t, "LinkUpstreamIdentity(acme, local) a second identity", s.LinkUpstreamIdentity(ctx, again), storage.ErrAlreadyExists)
	taken := storage.UpstreamIdentity{Provider: "acme", Subject: "sub-1", UserID: local.ID, CreatedAt: t0}
	wantErr(t, "LinkUpstreamIdentity(acme, sub-1) taken by up1", s.LinkUpstreamIdentity(ctx, taken), storage.ErrAlreadyExists)
	other := link
	other.Provider = "other"
	wantErr(t, "LinkUpstreamIdentity(other, local)", s.LinkUpstreamIdentity(ctx, other), nil)
	wantErr(t, "LinkUpstreamIdentity to nobody", s.LinkUpstreamIdentity(ctx, storage.UpstreamIdentity{Provider: "acme", Subject: "x", UserID: "nobody"}), storage.ErrNotFound)
	wantErr(t, `DeleteUser(local)`, s.DeleteUser(ctx, local.ID), nil)
	_, err = s.GetUpstreamIdentity(ctx, "acme", "sub-local")
	wantErr(t, `GetUpstreamIdentity("acme", "sub-local") after DeleteUser`, err, storage.ErrNotFound)

	wantErr(t, `DeleteUser("up1")`, s.DeleteUser(ctx, "up1"), nil)
	_, err = s.GetUpstreamIdentity(ctx, "acme", "sub-1")
	wantErr(t, `GetUpstreamIdentity("acme", "sub-1") after DeleteUser`, err, storage.ErrNotFound)
	// The next sign-in of that person provisions a new user.
	wantErr(t, "CreateUpstreamUser(up2) after up1 was deleted", s.CreateUpstreamUser(ctx, u2, id2), nil)
}

// ---- fixtures -------------------------------------------------------------

func newClient(id string) storage.Client {
	return storage.Client{
		ID:                      id,
		SecretHash:              "secret-hash-" + id,
		SecretExpiresAt:         at(720 * time.Hour),
		Name:                    "Client " + id,
		RedirectURIs:            []string{"https://" + id + ".example/cb", "http://127.0.0.1/cb"},
		GrantTypes:              []string{"authorization_code", "refresh_token"},
		ResponseTypes:           []string{"code"},
		TokenEndpointAuthMethod: "client_secret_basic",
		Scopes:                  []string{"read", "write"},
		ApplicationType:         "web",
		DPoPBound:               true,
		JWKS:                    `{"keys":[]}`,
		JWKSURI:                 "https://" + id + ".example/jwks",
		Origin:                  storage.OriginDCR,
		RegistrationTokenHash:   "reg-hash-" + id,
		Metadata:                `{"client_name":"Client ` + id + `","x-unknown":1}`,
		CreatedAt:               t0,
		UpdatedAt:               at(time.Minute),
		LastUsedAt:              at(2 * time.Minute),
		TokenCount:              7,
		ResetAt:                 at(30 * time.Second),
	}
}

func newUser(id string) storage.User {
	return storage.User{
		ID:           id,
		Username:     "name-" + id,
		PasswordHash: "$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA",
		Epoch:        3,
		DisabledAt:   at(-time.Hour),
		CreatedAt:    t0,
		UpdatedAt:    at(time.Second),
	}
}

func newAuthCode(hash, clientID, userID string) storage.AuthCode {
	return storage.AuthCode{
		Hash:                hash,
		ClientID:            clientID,
		UserID:              userID,
		RedirectURI:         "https://" + clientID + ".example/cb",
		Scopes:              []string{"read", "write"},
		Resource:            "https://mcp.example/",
		CodeChallenge:       "challenge-" + hash,
		CodeChallengeMethod: "S256",
		Nonce:               "nonce-" + hash,
		GrantID:             "grant-for-" + hash,
		AuthTime:            at(-time.Minute),
		CreatedAt:           t0,
		ExpiresAt:           at(time.Minute),
	}
}

func newGrant(id, clientID, userID string) storage.Grant {
	return storage.Grant{
		ID:        id,
		ClientID:  clientID,
		UserID:    userID,
		UserEpoch: 2,
		Resource:  "https://mcp.example/",
		Scopes:    []string{"read"},
		AuthTime:  at(-time.Minute),
		CreatedAt: t0,
		ExpiresAt: at(30 * 24 * time.Hour),
	}
}

func newRefreshToken(hash string, g storage.Grant) storage.RefreshToken {
	return storage.RefreshToken{
		Hash:      hash,
		GrantID:   g.ID,
		ClientID:  g.ClientID,
		UserID:    g.UserID,
		Scopes:    g.Scopes,
		Resource:  g.Resource,
		CreatedAt: t0,
		ExpiresAt: at(24 * time.Hour),
	}
}

func newConsent(userID, clientID, resource string) storage.Consent {
	return storage.Consent{
		UserID:    userID,
		ClientID:  clientID,
		UserEpoch: 3,
		Resource:  resource,
		Scopes:    []string{"read"},
		CreatedAt: t0,
		UpdatedAt: t0,
	}
}

func newKey(id string, created time.Time) storage.SigningKey {
	return storage.SigningKey{
		ID:         id,
		Algorithm:  "ES256",
		PrivateKey: []byte("sealed-private-key-" + id),
		PublicJWK:  `{"kty":"EC","kid":"` + id + `"}`,
		CreatedAt:  created,
	}
}

func mustCreateClient(t *testing.T, s storage.Store, id string) storage.Client {
	t.Helper()
	c := newClient(id)
	if err := s.CreateClient(t.Context(), c); err != nil {
		t.Fatalf("CreateClient(%q) = %v, want nil", id, err)
	}
	return c
}

func mustCreateUser(t *testing.T, s storage.Store, id string) storage.User {
	t.Helper()
	u := newUser(id)
	if err := s.CreateUser(t.Context(), u); err != nil {
		t.Fatalf("CreateUser(%q) = %v, want nil", id, err)
	}
	return u
}

func mustCreateGrant(t *testing.T, s storage.Store, g storage.Grant) {
	t.Helper()
	if err := s.CreateGrant(t.Context(), g); err != nil {
		t.Fatalf("CreateGrant(%q) = %v, want nil", g.ID, err)
	}
}

func mustCreateRefreshToken(t *testing.T, s storage.Store, rt storage.RefreshToken) {
	t.Helper()
	if err := s.CreateRefreshToken(t.Context(), rt); err != nil {
		t.Fatalf("CreateRefreshToken(%q) = %v, want nil", rt.Hash, err)
	}
}

func mustCreateAuthCode(t *testing.T, s storage.Store, c storage.AuthCode) {
	t.Helper()
	if err := s.CreateAuthCode(t.Context(), c); err != nil {
		t.Fatalf("CreateAuthCode(%q) = %v, want nil", c.Hash, err)
	}
}

func mustPutConsent(t *testing.T, s storage.Store, c storage.Consent) {
	t.Helper()
	if err := s.PutConsent(t.Context(), c); err != nil {
		t.Fatalf("PutConsent(%q, %q, %q) = %v, want nil", c.UserID, c.ClientID, c.Resource, err)
	}
}

func mustCreateSession(t *testing.T, s storage.Store, ss storage.Session) {
	t.Helper()
	if err := s.CreateSession(t.Context(), ss); err != nil {
		t.Fatalf("CreateSession(%q) = %v, want nil", ss.IDHash, err)
	}
}

// wantErr fails unless err matches want: nil means no error, anything
// else errors.Is.
func wantErr(t *testing.T, call string, err, want error) {
	t.Helper()
	switch {
	case want == nil && err != nil:
		t.Errorf("%s = %v, want nil", call, err)
	case want != nil && !errors.Is(err, want):
		t.Errorf("%s = %v, want %v", call, err, want)
	}
}

// wantFound checks that a Get-style call found (want true) or did not
// find the row.
func wantFound(t *testing.T, call string, err error, want bool) {
	t.Helper()
	if want {
		wantErr(t, call, err, nil)
	} else {
		wantErr(t, call, err, storage.ErrNotFound)
	}
}

// diff fails the test when got differs from want.
func diff(t *testing.T, call string, got, want any, opts ...cmp.Option) {
	t.Helper()
	if d := cmp.Diff(want, got, opts...); d != "" {
		t.Errorf("%s mismatch (-want +got):\n%s", call, d)
	}
}

// ---- clients --------------------------------------------------------------

func testClients(t *testing.T, s storage.Store) {
	ctx := t.Context()
	c := mustCreateClient(t, s, "c1")

	got, err := s.GetClient(ctx, "c1")
	wantErr(t, `GetClient("c1")`, err, nil)
	diff(t, `GetClient("c1")`, got, c)

	dup := newClient("c1")
	dup.Name = "other"
	wantErr(t, `CreateClient("c1") again`, s.CreateClient(ctx, dup), storage.ErrAlreadyExists)
	got, _ = s.GetClient(ctx, "c1")
	diff(t, `GetClient("c1") after duplicate create`, got, c)

	_, err = s.GetClient(ctx, "nope")
	wantErr(t, `GetClient("nope")`, err, storage.ErrNotFound)

	// A minimal client: empty lists and zero times come back empty/zero.
	minimal := storage.Client{ID: "c0", Origin: storage.OriginStatic}
	wantErr(t, `CreateClient("c0")`, s.CreateClient(ctx, minimal), nil)
	got, err = s.GetClient(ctx, "c0")
	wantErr(t, `GetClient("c0")`, err, nil)
	diff(t, `GetClient("c0")`, got, minimal, equateNone)
	if !got.LastUsedAt.IsZero() || !got.SecretExpiresAt.IsZero() {
		t.Errorf("GetClient(%q) times = %v, %v, want zero", "c0", got.LastUsedAt, got.SecretExpiresAt)
	}

	c2 := mustCreateClient(t, s, "c2")
	list, err := s.ListClients(ctx)
	wantErr(t, "ListClients()", err, nil)
	diff(t, "ListClients()", list, []storage.Client{minimal, c, c2}, equateNone)

	// Update through a closure.
	updated, err := s.UpdateClient(ctx, "c1", func(old storage.Client) (storage.Client, error) {
		diff(t, "UpdateClient closure argument", old, c)
		old.Name = "renamed"
		old.Scopes = []string{"read"}
		old.RedirectURIs = append(old.RedirectURIs, "https://c1.example/cb2")
		old.UpdatedAt = at(time.Hour)
		return old, nil
	})
	wantErr(t, `UpdateClient("c1")`, err, nil)
	want := c
	want.Name = "renamed"
	want.Scopes = []string{"read"}
	want.RedirectURIs = []string{"https://c1.example/cb", "http://127.0.0.1/cb", "https://c1.example/cb2"}
	want.UpdatedAt = at(time.Hour)
	diff(t, `UpdateClient("c1") result`, updated, want)
	got, _ = s.GetClient(ctx, "c1")
	diff(t, `GetClient("c1") after update`, got, want)

	// A failing closure leaves the row unchanged and its error visible.
	_, err = s.UpdateClient(ctx, "c1", func(old storage.Client) (storage.Client, error) {
		old.Name = "must not be stored"
		return old, errFromFn
	})
	wantErr(t, `UpdateClient("c1") with failing closure`, err, errFromFn)
	got, _ = s.GetClient(ctx, "c1")
	diff(t, `GetClient("c1") after failed update`, got, want)

	// The ID cannot change.
	_, err = s.UpdateClient(ctx, "c1", func(old storage.Client) (storage.Client, error) {
		old.ID = "c9"
		return old, nil
	})
	if err == nil {
		t.Errorf(`UpdateClient("c1") changing the ID = nil, want an error`)
	}
	_, err = s.GetClient(ctx, "c9")
	wantErr(t, `GetClient("c9") after ID change attempt`, err, storage.ErrNotFound)

	_, err = s.UpdateClient(ctx, "nope", func(old storage.Client) (storage.Client, error) {
		t.Errorf("UpdateClient(%q) called the closure", "nope")
		return old, nil
	})
	wantErr(t, `UpdateClient("nope")`, err, storage.ErrNotFound)

	// TouchClient counts tokens and never moves LastUsedAt back.
	wantErr(t, `TouchClient("c2", +1h)`, s.TouchClient(ctx, "c2", at(time.Hour)), nil)
	wantErr(t, `TouchClient("c2", +30m)`, s.TouchClient(ctx, "c2", at(30*time.Minute)), nil)
	got, _ = s.GetClient(ctx, "c2")
	if got.TokenCount != c2.TokenCount+2 || !got.LastUsedAt.Equal(at(time.Hour)) {
		t.Errorf("after two TouchClient: TokenCount, LastUsedAt = %d, %v, want %d, %v",
			got.TokenCount, got.LastUsedAt, c2.TokenCount+2, at(time.Hour))
	}
	wantErr(t, `TouchClient("nope")`, s.TouchClient(ctx, "nope", t0), storage.ErrNotFound)

	// DeleteClientIf deletes nothing when its check fails.
	mustCreateClient(t, s, "c3")
	wantErr(t, `DeleteClientIf("c3") failing`, s.DeleteClientIf(ctx, "c3", func(got storage.Client) error {
		if got.ID != "c3" {
			t.Errorf("DeleteClientIf check got client %q, want c3", got.ID)
		}
		return errFromFn
	}), errFromFn)
	_, err = s.GetClient(ctx, "c3")
	wantErr(t, `GetClient("c3") after a failed DeleteClientIf`, err, nil)
	wantErr(t, `DeleteClientIf("c3")`, s.DeleteClientIf(ctx, "c3", func(storage.Client) error { return nil }), nil)
	_, err = s.GetClient(ctx, "c3")
	wantErr(t, `GetClient("c3") after DeleteClientIf`, err, storage.ErrNotFound)
	wantErr(t, `DeleteClientIf("c3") again`, s.DeleteClientIf(ctx, "c3", func(storage.Client) error { return nil }), storage.ErrNotFound)

	wantErr(t, `DeleteClient("c2")`, s.DeleteClient(ctx, "c2"), nil)
	_, err = s.GetClient(ctx, "c2")
	wantErr(t, `GetClient("c2") after delete`, err, storage.ErrNotFound)
	wantErr(t, `DeleteClient("c2") again`, s.DeleteClient(ctx, "c2"), storage.ErrNotFound)
}

// issued is everything issued to one (client, user) pair, for cascade tests.
type issued struct {
	code    string
	grant   string
	refresh string
	cc      string // client-credentials grant (no user)
	session string
	consent [3]string
}

func issueAll(t *testing.T, s storage.Store, clientID, userID string) issued {
	t.Helper()
	p := clientID + "-" + userID
	is := issued{
		code:    "code-" + p,
		grant:   "grant-" + p,
		refresh: "rt-" + p,
		cc:      "cc-" + p,
		session: "sess-" + p,
		consent: [3]string{userID, clientID, "https://mcp.example/"},
	}
	mustCreateAuthCode(t, s, newAuthCode(is.code, clientID, userID))
	g := newGrant(is.grant, clientID, userID)
	mustCreateGrant(t, s, g)
	mustCreateRefreshToken(t, s, newRefreshToken(is.refresh, g))
	mustCreateGrant(t, s, newGrant(is.cc, clientID, ""))
	mustPutConsent(t, s, newConsent(userID, clientID, "https://mcp.example/"))
	mustCreateSession(t, s, storage.Session{IDHash: is.session, UserID: userID, UserEpoch: 2, AuthTime: t0, CreatedAt: t0, ExpiresAt: at(time.Hour)})
	return is
}

// checkIssued checks which of is still exist. Sessions belong to users
// only, so they are checked separately through sessionWant.
func checkIssued(t *testing.T, s storage.Store, is issued, want, sessionWant bool) {
	t.Helper()
	ctx := t.Context()
	_, err := s.ConsumeAuthCode(ctx, is.code, at(time.Second))
	if want {
		// Consumed now; a later check sees ErrConsumed, still "found".
		if err != nil && !errors.Is(err, storage.ErrConsumed) {
			t.Errorf("ConsumeAuthCode(%q) = %v, want nil or ErrConsumed", is.code, err)
		}
	} else {
		wantErr(t, fmt.Sprintf("ConsumeAuthCode(%q)", is.code), err, storage.ErrNotFound)
	}
	_, err = s.GetGrant(ctx, is.grant)
	wantFound(t, fmt.Sprintf("GetGrant(%q)", is.grant), err, want)
	_, err = s.GetRefreshToken(ctx, is.refresh)
	wantFound(t, fmt.Sprintf("GetRefreshToken(%q)", is.refresh), err, want)
	_, err = s.GetConsent(ctx, is.consent[0], is.consent[1], is.consent[2])
	wantFound(t, fmt.Sprintf("GetConsent(%q, %q, %q)", is.consent[0], is.consent[1], is.consent[2]), err, want)
	_, err = s.GetSession(ctx, is.session)
	wantFound(t, fmt.Sprintf("GetSession(%q)", is.session), err, sessionWant)
}

func testClientCascade(t *testing.T, s storage.Store) {
	ctx := t.Context()
	mustCreateClient(t, s, "gone")
	mustCreateClient(t, s, "kept")
	mustCreateUser(t, s, "u1")
	a := issueAll(t, s, "gone", "u1")
	b := issueAll(t, s, "kept", "u1")

	wantErr(t, `DeleteClient("gone")`, s.DeleteClient(ctx, "gone"), nil)
	_, err := s.GetGrant(ctx, a.cc)
	wantFound(t, fmt.Sprintf("GetGrant(%q) (client credentials)", a.cc), err, false)
	// The client's things are gone; the user's session is not the
	// client's and stays.
	checkIssued(t, s, a, false, true)
	checkIssued(t, s, b, true, true)
	_, err = s.GetUser(ctx, "u1")
	wantFound(t, `GetUser("u1")`, err, true)
}

// testClientReset: ResetClient keeps the client and deletes what was issued
// to it, in one step; UpdateClient deletes only the consents, and only when
// the redirect URIs change.
func testClientReset(t *testing.T, s storage.Store) {
	ctx := t.Context()
	mustCreateUser(t, s, "u1")
	for _, id := range []string{"reset", "moved", "renamed", "kept"} {
		mustCreateClient(t, s, id)
	}
	reset := issueAll(t, s, "reset", "u1")
	kept := issueAll(t, s, "kept", "u1")

	// A failing closure deletes nothing.
	_, err := s.ResetClient(ctx, "reset", at(time.Hour), func(c storage.Client) (storage.Client, error) { return c, errFromFn })
	wantErr(t, `ResetClient("reset") with failing closure`, err, errFromFn)
	checkIssued(t, s, reset, true, true)
	mustCreateUser(t, s, "u2")
	reset = issueAll(t, s, "reset", "u2") // fresh ones: checkIssued consumed the code

	got, err := s.ResetClient(ctx, "reset", at(2*time.Hour), func(c storage.Client) (storage.Client, error) {
		c.RedirectURIs = []string{"https://elsewhere.example/cb"}
		return c, nil
	})
	wantErr(t, `ResetClient("reset")`, err, nil)
	if stored, _ := s.GetClient(ctx, "reset"); !slices.Equal(stored.RedirectURIs, []string{"https://elsewhere.example/cb"}) || !slices.Equal(got.RedirectURIs, stored.RedirectURIs) ||
		!stored.ResetAt.Equal(at(2*time.Hour)) || !got.ResetAt.Equal(stored.ResetAt) {
		t.Errorf(`ResetClient("reset") stored redirect URIs %v ResetAt %v, returned %v %v`, stored.RedirectURIs, stored.ResetAt, got.RedirectURIs, got.ResetAt)
	}
	// UpdateClient keeps ResetAt, whatever its closure returns.
	if u, _ := s.UpdateClient(ctx, "reset", func(c storage.Client) (storage.Client, error) { c.ResetAt = time.Time{}; return c, nil }); !u.ResetAt.Equal(at(2 * time.Hour)) {
		t.Errorf("UpdateClient zeroing ResetAt returned %v, want it kept", u.ResetAt)
	}
	checkIssued(t, s, reset, false, true)
	_, err = s.GetGrant(ctx, reset.cc)
	wantFound(t, fmt.Sprintf("GetGrant(%q) (client credentials) after ResetClient", reset.cc), err, false)
	checkIssued(t, s, kept, true, true)
	_, err = s.ResetClient(ctx, "nope", at(time.Hour), func(c storage.Client) (storage.Client, error) { return c, nil })
	wantErr(t, `ResetClient("nope")`, err, storage.ErrNotFound)

	// UpdateClient: a redirect URI change forgets the consents (nothing
	// else); a name change keeps them.
	mustPutConsent(t, s, newConsent("u1", "moved", "https://mcp.example/"))
	mustPutConsent(t, s, newConsent("u1", "renamed", "https://mcp.example/"))
	g := newGrant("moved-grant", "moved", "u1")
	mustCreateGrant(t, s, g)
	_, err = s.UpdateClient(ctx, "moved", func(c storage.Client) (storage.Client, error) {
		c.RedirectURIs = append(c.RedirectURIs, "https://attacker.example/cb")
		return c, nil
	})
	wantErr(t, `UpdateClient("moved") adding a redirect URI`, err, nil)
	_, err = s.GetConsent(ctx, "u1", "moved", "https://mcp.example/")
	wantErr(t, `GetConsent(u1, "moved") after a redirect URI change`, err, storage.ErrNotFound)
	_, err = s.GetGrant(ctx, g.ID)
	wantFound(t, fmt.Sprintf("GetGrant(%q) after a redirect URI change", g.ID), err, true)
	_, err = s.UpdateClient(ctx, "renamed", func(c storage.Client) (storage.Client, error) {
		c.Name = "New name"
		return c, nil
	})
	wantErr(t, `UpdateClient("renamed")`, err, nil)
	_, err = s.GetConsent(ctx, "u1", "renamed", "https://mcp.example/")
	wantFound(t, `GetConsent(u1, "renamed") after a rename`, err, true)
}

// wantCounts checks CountClients for every origin against want (a missing
// origin means 0).
func wantCounts(t *testing.T, s storage.Store, when string, want map[storage.ClientOrigin]int) {
	t.Helper()
	for _, o := range []storage.ClientOrigin{storage.OriginStatic, storage.OriginDCR, storage.OriginCIMD, "other"} {
		n, err := s.CountClients(t.Context(), o)
		if err != nil || n != want[o] {
			t.Errorf("%s: CountClients(%q) = %d, %v; want %d, nil", when, o, n, err, want[o])
		}
	}
}

// testClientCounts: CountClients follows every way a client comes and
// goes, and nothing else.
func testClientCounts(t *testing.T, s storage.Store) {
	ctx := t.Context()
	wantCounts(t, s, "empty store", nil)
	create := func(id string, o storage.ClientOrigin) {
		t.Helper()
		c := newClient(id)
		c.Origin = o
		if err := s.CreateClient(ctx, c); err != nil {
			t.Fatalf("CreateClient(%q) = %v, want nil", id, err)
		}
	}
	create("s1", storage.OriginStatic)
	create("d1", storage.OriginDCR)
	create("d2", storage.OriginDCR)
	create("d3", storage.OriginDCR)
	create("m1", storage.OriginCIMD)
	create("m2", storage.OriginCIMD)
	wantCounts(t, s, "after creates", map[storage.ClientOrigin]int{storage.OriginStatic: 1, storage.OriginDCR: 3, storage.OriginCIMD: 2})

	// A refused duplicate, a failed or plain update, a touch and garbage
	// collection change no count.
	dup := newClient("d1")
	dup.Origin = storage.OriginCIMD
	wantErr(t, `CreateClient("d1") again`, s.CreateClient(ctx, dup), storage.ErrAlreadyExists)
	_, err := s.UpdateClient(ctx, "d1", func(c storage.Client) (storage.Client, error) {
		c.Origin = storage.OriginCIMD
		return c, errFromFn
	})
	wantErr(t, `UpdateClient("d1") with failing closure`, err, errFromFn)
	_, err = s.UpdateClient(ctx, "d2", func(c storage.Client) (storage.Client, error) { c.Name = "renamed"; return c, nil })
	wantErr(t, `UpdateClient("d2")`, err, nil)
	wantErr(t, `TouchClient("d3")`, s.TouchClient(ctx, "d3", at(time.Hour)), nil)
	_, err = s.GarbageCollect(ctx, at(1000*time.Hour))
	wantErr(t, "GarbageCollect", err, nil)
	wantCounts(t, s, "after duplicate, updates, touch and GC", map[storage.ClientOrigin]int{storage.OriginStatic: 1, storage.OriginDCR: 3, storage.OriginCIMD: 2})

	// DeleteClient, also of a client with codes, grants and consents (the
	// reaper's path); deleting an unknown client changes nothing.
	mustCreateUser(t, s, "u1")
	issueAll(t, s, "d1", "u1")
	wantErr(t, `DeleteClient("d1")`, s.DeleteClient(ctx, "d1"), nil)
	wantErr(t, `DeleteClient("m1")`, s.DeleteClient(ctx, "m1"), nil)
	wantErr(t, `DeleteClient("d1") again`, s.DeleteClient(ctx, "d1"), storage.ErrNotFound)
	wantErr(t, `DeleteClient("nope")`, s.DeleteClient(ctx, "nope"), storage.ErrNotFound)
	wantCounts(t, s, "after deletes", map[storage.ClientOrigin]int{storage.OriginStatic: 1, storage.OriginDCR: 2, storage.OriginCIMD: 1})

	// Re-creating under the same id (a reaped client registered again,
	// a metadata document whose keys changed) counts once.
	wantErr(t, `DeleteClient("d2")`, s.DeleteClient(ctx, "d2"), nil)
	create("d2", storage.OriginDCR)
	wantCounts(t, s, "after re-create", map[storage.ClientOrigin]int{storage.OriginStatic: 1, storage.OriginDCR: 2, storage.OriginCIMD: 1})

	// An update that changes the origin moves the client between counts.
	_, err = s.UpdateClient(ctx, "d3", func(c storage.Client) (storage.Client, error) { c.Origin = "other"; return c, nil })
	wantErr(t, `UpdateClient("d3") changing the origin`, err, nil)
	wantCounts(t, s, "after an origin change", map[storage.ClientOrigin]int{storage.OriginStatic: 1, storage.OriginDCR: 1, storage.OriginCIMD: 1, "other": 1})

	// Down to zero, and up again.
	for _, id := range []string{"s1", "d2", "m2", "d3"} {
		wantErr(t, fmt.Sprintf("DeleteClient(%q)", id), s.DeleteClient(ctx, id), nil)
	}
	wantCounts(t, s, "after deleting all", nil)
	create("m3", storage.OriginCIMD)
	wantCounts(t, s, "after one more create", map[storage.ClientOrigin]int{storage.OriginCIMD: 1})
	list, err := s.ListClients(ctx)
	if err != nil || len(list) != 1 {
		t.Errorf("ListClients() = %d clients, %v; want 1", len(list), err)
	}
}

// testClientBlocks: blocks are created, replaced, listed in order and
// lifted; lifting an unknown one is ErrNotFound.
func testClientBlocks(t *testing.T, s storage.Store) {
	ctx := t.Context()
	list, err := s.ListClientBlocks(ctx)
	if err != nil || len(list) != 0 {
		t.Fatalf("ListClientBlocks() on an empty store = %v, %v; want none", list, err)
	}
	url := storage.ClientBlock{Target: "https://evil.example/client.json", Reason: "phishing", CreatedAt: t0}
	host := storage.ClientBlock{Target: "bad.example", Host: true, CreatedAt: at(time.Minute)}
	wantErr(t, "PutClientBlock(url)", s.PutClientBlock(ctx, url), nil)
	wantErr(t, "PutClientBlock(host)", s.PutClientBlock(ctx, host), nil)
	url.Reason = "phishing, confirmed"
	wantErr(t, "PutClientBlock(url) replacing", s.PutClientBlock(ctx, url), nil)
	list, err = s.ListClientBlocks(ctx)
	wantErr(t, "ListClientBlocks()", err, nil)
	diff(t, "ListClientBlocks()", list, []storage.ClientBlock{host, url})
	wantErr(t, "DeleteClientBlock(host)", s.DeleteClientBlock(ctx, host.Target), nil)
	wantErr(t, "DeleteClientBlock(host) again", s.DeleteClientBlock(ctx, host.Target), storage.ErrNotFound)
	list, _ = s.ListClientBlocks(ctx)
	diff(t, "ListClientBlocks() after a delete", list, []storage.ClientBlock{url})
}

// ---- users ----------------------------------------------------------------

func testUsers(t *testing.T, s storage.Store) {
	ctx := t.Context()
	u := mustCreateUser(t, s, "u1")
	got, err := s.GetUser(ctx, "u1")
	wantErr(t, `GetUser("u1")`, err, nil)
	diff(t, `GetUser("u1")`, got, u)

	got, err = s.GetUserByName(ctx, "name-u1")
	wantErr(t, `GetUserByName("name-u1")`, err, nil)
	diff(t, `GetUserByName("name-u1")`, got, u)
	_, err = s.GetUserByName(ctx, "NAME-U1")
	wantErr(t, `GetUserByName("NAME-U1")`, err, storage.ErrNotFound)
	_, err = s.GetUser(ctx, "nope")
	wantErr(t, `GetUser("nope")`, err, storage.ErrNotFound)

	wantErr(t, `CreateUser("u1") again`, s.CreateUser(ctx, newUser("u1")), storage.ErrAlreadyExists)
	sameName := newUser("u2")
	sameName.Username = u.Username
	wantErr(t, `CreateUser("u2") with u1's username`, s.CreateUser(ctx, sameName), storage.ErrAlreadyExists)

	// "a-user" sorts before "name-u1" by username, after it by ID.
	u3 := newUser("u3")
	u3.Username = "a-user"
	if err := s.CreateUser(ctx, u3); err != nil {
		t.Fatalf("CreateUser(%q) = %v", "u3", err)
	}
	list, err := s.ListUsers(ctx)
	wantErr(t, "ListUsers()", err, nil)
	diff(t, "ListUsers()", list, []storage.User{u3, u})

	updated, err := s.UpdateUser(ctx, "u1", func(old storage.User) (storage.User, error) {
		old.Username = "renamed"
		old.PasswordHash = "new-hash"
		old.UpdatedAt = at(time.Hour)
		return old, nil
	})
	wantErr(t, `UpdateUser("u1")`, err, nil)
	want := u
	want.Username, want.PasswordHash, want.UpdatedAt = "renamed", "new-hash", at(time.Hour)
	diff(t, `UpdateUser("u1") result`, updated, want)
	got, _ = s.GetUserByName(ctx, "renamed")
	diff(t, `GetUserByName("renamed")`, got, want)

	_, err = s.UpdateUser(ctx, "u1", func(old storage.User) (storage.User, error) {
		old.Username = "a-user"
		return old, nil
	})
	wantErr(t, `UpdateUser("u1") to a taken username`, err, storage.ErrAlreadyExists)
	_, err = s.UpdateUser(ctx, "u1", func(old storage.User) (storage.User, error) {
		old.PasswordHash = "must not be stored"
		return old, errFromFn
	})
	wantErr(t, `UpdateUser("u1") with failing closure`, err, errFromFn)
	got, _ = s.GetUser(ctx, "u1")
	diff(t, `GetUser("u1") after failed updates`, got, want)

	_, err = s.UpdateUser(ctx, "nope", func(old storage.User) (storage.User, error) { return old, nil })
	wantErr(t, `UpdateUser("nope")`, err, storage.ErrNotFound)

	wantErr(t, `DeleteUser("u3")`, s.DeleteUser(ctx, "u3"), nil)
	_, err = s.GetUser(ctx, "u3")
	wantErr(t, `GetUser("u3") after delete`, err, storage.ErrNotFound)
	wantErr(t, `DeleteUser("u3") again`, s.DeleteUser(ctx, "u3"), storage.ErrNotFound)
}

func testUserCascade(t *testing.T, s storage.Store) {
	ctx := t.Context()
	mustCreateClient(t, s, "c1")
	mustCreateUser(t, s, "gone")
	mustCreateUser(t, s, "kept")
	a := issueAll(t, s, "c1", "gone")
	b := issueAll(t, s, "c1", "kept")

	wantErr(t, `DeleteUser("gone")`, s.DeleteUser(ctx, "gone"), nil)
	// Client-credentials grants belong to the client: they stay.
	_, err := s.GetGrant(ctx, a.cc)
	wantFound(t, fmt.Sprintf("GetGrant(%q) (client credentials)", a.cc), err, true)
	_, err = s.ConsumeAuthCode(ctx, a.code, at(time.Second))
	wantErr(t, fmt.Sprintf("ConsumeAuthCode(%q)", a.code), err, storage.ErrNotFound)
	for _, check := range []struct {
		call string
		err  error
	}{
		{fmt.Sprintf("GetGrant(%q)", a.grant), second(s.GetGrant(ctx, a.grant))},
		{fmt.Sprintf("GetRefreshToken(%q)", a.refresh), second(s.GetRefreshToken(ctx, a.refresh))},
		{fmt.Sprintf("GetConsent(%q)", a.consent), second(s.GetConsent(ctx, a.consent[0], a.consent[1], a.consent[2]))},
		{fmt.Sprintf("GetSession(%q)", a.session), second(s.GetSession(ctx, a.session))},
	} {
		wantErr(t, check.call, check.err, storage.ErrNotFound)
	}
	checkIssued(t, s, b, true, true)
	_, err = s.GetClient(ctx, "c1")
	wantFound(t, `GetClient("c1")`, err, true)
}

// second returns the error of a two-result call.
func second[T any](_ T, err error) error { return err }

// testUserReset: ResetUser applies its closure, advances the epoch and ends
// what the user holds, in one step: sessions, consents and codes go, grants
// are revoked; another user's things stay.
func testUserReset(t *testing.T, s storage.Store) {
	ctx := t.Context()
	mustCreateClient(t, s, "c1")
	u := mustCreateUser(t, s, "u1")
	mustCreateUser(t, s, "u2")
	a := issueAll(t, s, "c1", "u1")
	b := issueAll(t, s, "c1", "u2")

	_, err := s.ResetUser(ctx, "u1", at(time.Hour), func(u storage.User) (storage.User, error) { return u, errFromFn })
	wantErr(t, `ResetUser("u1") with failing closure`, err, errFromFn)
	if got, _ := s.GetUser(ctx, "u1"); got.Epoch != u.Epoch {
		t.Errorf("epoch after a failed ResetUser = %d, want %d", got.Epoch, u.Epoch)
	}
	_, err = s.GetSession(ctx, a.session)
	wantFound(t, "GetSession after a failed ResetUser", err, true)

	got, err := s.ResetUser(ctx, "u1", at(time.Hour), func(u storage.User) (storage.User, error) {
		u.PasswordHash = "new-hash"
		return u, nil
	})
	wantErr(t, `ResetUser("u1")`, err, nil)
	stored, _ := s.GetUser(ctx, "u1")
	if got.Epoch != u.Epoch+1 || stored.Epoch != u.Epoch+1 || stored.PasswordHash != "new-hash" {
		t.Errorf("after ResetUser: returned epoch %d, stored epoch %d hash %q; want epoch %d and the new hash", got.Epoch, stored.Epoch, stored.PasswordHash, u.Epoch+1)
	}
	_, err = s.GetSession(ctx, a.session)
	wantFound(t, fmt.Sprintf("GetSession(%q) after ResetUser", a.session), err, false)
	_, err = s.GetConsent(ctx, a.consent[0], a.consent[1], a.consent[2])
	wantFound(t, "GetConsent after ResetUser", err, false)
	_, err = s.ConsumeAuthCode(ctx, a.code, at(time.Second))
	wantErr(t, fmt.Sprintf("ConsumeAuthCode(%q) after ResetUser", a.code), err, storage.ErrNotFound)
	if g, err := s.GetGrant(ctx, a.grant); err != nil || !g.RevokedAt.Equal(at(time.Hour)) {
		t.Errorf("GetGrant(%q) after ResetUser = %+v, %v; want revoked at +1h", a.grant, g, err)
	}
	// The client-credentials grant is the client's, not the user's.
	if g, err := s.GetGrant(ctx, a.cc); err != nil || !g.RevokedAt.IsZero() {
		t.Errorf("GetGrant(%q) (client credentials) after ResetUser = %+v, %v; want unrevoked", a.cc, g, err)
	}
	checkIssued(t, s, b, true, true)
	_, err = s.ResetUser(ctx, "nope", at(time.Hour), func(u storage.User) (storage.User, error) { return u, nil })
	wantErr(t, `ResetUser("nope")`, err, storage.ErrNotFound)
}

// testUserGroups: groups are added once, listed in name order per user
// and for all users, removed one at a time; they survive a reset (a
// password change is no change of groups) and go with the user.
func testUserGroups(t *testing.T, s storage.Store) {
	ctx := t.Context()
	mustCreateUser(t, s, "u1")
	mustCreateUser(t, s, "u2")
	for _, g := range []string{"editors", "admins"} {
		wantErr(t, fmt.Sprintf("AddUserGroup(u1, %q)", g), s.AddUserGroup(ctx, "u1", g, t0), nil)
	}
	wantErr(t, "AddUserGroup(u2, editors)", s.AddUserGroup(ctx, "u2", "editors", t0), nil)
	wantErr(t, "AddUserGroup(u1, editors) again", s.AddUserGroup(ctx, "u1", "editors", t0), storage.ErrAlreadyExists)
	wantErr(t, "AddUserGroup(nope, editors)", s.AddUserGroup(ctx, "nope", "editors", t0), storage.ErrNotFound)
	// Group names are exact: case matters.
	wantErr(t, "AddUserGroup(u1, Editors)", s.AddUserGroup(ctx, "u1", "Editors", t0), nil)

	got, err := s.ListUserGroups(ctx, "u1")
	wantErr(t, "ListUserGroups(u1)", err, nil)
	diff(t, "ListUserGroups(u1)", got, []string{"Editors", "admins", "editors"})
	got, err = s.ListUserGroups(ctx, "nope")
	wantErr(t, "ListUserGroups(nope)", err, nil)
	diff(t, "ListUserGroups(nope)", got, []string(nil), equateNone)
	all, err := s.ListAllUserGroups(ctx)
	wantErr(t, "ListAllUserGroups()", err, nil)
	diff(t, "ListAllUserGroups()", all, map[string][]string{"u1": {"Editors", "admins", "editors"}, "u2": {"editors"}})

	wantErr(t, "RemoveUserGroup(u1, Editors)", s.RemoveUserGroup(ctx, "u1", "Editors"), nil)
	wantErr(t, "RemoveUserGroup(u1, Editors) again", s.RemoveUserGroup(ctx, "u1", "Editors"), storage.ErrNotFound)
	wantErr(t, "RemoveUserGroup(u2, admins)", s.RemoveUserGroup(ctx, "u2", "admins"), storage.ErrNotFound)
	got, _ = s.ListUserGroups(ctx, "u1")
	diff(t, "ListUserGroups(u1) after a removal", got, []string{"admins", "editors"})

	if _, err := s.ResetUser(ctx, "u1", at(time.Hour), func(u storage.User) (storage.User, error) { return u, nil }); err != nil {
		t.Fatalf("ResetUser(u1) = %v", err)
	}
	got, _ = s.ListUserGroups(ctx, "u1")
	diff(t, "ListUserGroups(u1) after ResetUser", got, []string{"admins", "editors"})

	wantErr(t, "DeleteUser(u1)", s.DeleteUser(ctx, "u1"), nil)
	got, _ = s.ListUserGroups(ctx, "u1")
	diff(t, "ListUserGroups(u1) after DeleteUser", got, []string(nil), equateNone)
	// A new user with the deleted one's id does not inherit the groups.
	mustCreateUser(t, s, "u1")
	got, _ = s.ListUserGroups(ctx, "u1")
	diff(t, "ListUserGroups(u1) of a new user with the id", got, []string(nil), equateNone)
	all, _ = s.ListAllUserGroups(ctx)
	diff(t, "ListAllUserGroups() after DeleteUser", all, map[string][]string{"u2": {"editors"}})
}

// testUpstreamGroups: a provider's groups replace that provider's groups
// only, never an operator's or another provider's; the user's groups are
// the union of all, each once; a reset keeps them, deleting the user
// takes them.
func testUpstreamGroups(t *testing.T, s storage.Store) {
	ctx := t.Context()
	mustCreateUser(t, s, "u1")
	mustCreateUser(t, s, "u2")
	wantErr(t, "AddUserGroup(u1, editors)", s.AddUserGroup(ctx, "u1", "editors", t0), nil)
	wantErr(t, "SetUpstreamGroups(u1, acme)", s.SetUpstreamGroups(ctx, "u1", "acme", []string{"staff", "editors", "staff"}, t0), nil)
	wantErr(t, "SetUpstreamGroups(u1, other)", s.SetUpstreamGroups(ctx, "u1", "other", []string{"admins"}, t0), nil)
	wantErr(t, "SetUpstreamGroups(u2, acme)", s.SetUpstreamGroups(ctx, "u2", "acme", []string{"readers"}, t0), nil)
	wantErr(t, "SetUpstreamGroups(nope, acme)", s.SetUpstreamGroups(ctx, "nope", "acme", []string{"staff"}, t0), storage.ErrNotFound)
	wantErr(t, "SetUpstreamGroups(nope, acme, none)", s.SetUpstreamGroups(ctx, "nope", "acme", nil, t0), storage.ErrNotFound)

	got, err := s.ListUserGroups(ctx, "u1")
	wantErr(t, "ListUserGroups(u1)", err, nil)
	diff(t, "ListUserGroups(u1) (operator's and both providers', editors once)", got, []string{"admins", "editors", "staff"})
	up, err := s.ListUpstreamGroups(ctx, "u1")
	wantErr(t, "ListUpstreamGroups(u1)", err, nil)
	diff(t, "ListUpstreamGroups(u1)", up, map[string][]string{"acme": {"editors", "staff"}, "other": {"admins"}})
	all, err := s.ListAllUserGroups(ctx)
	wantErr(t, "ListAllUserGroups()", err, nil)
	diff(t, "ListAllUserGroups()", all, map[string][]string{"u1": {"admins", "editors", "staff"}, "u2": {"readers"}})

	// The next sign-in at acme without editors: acme's editors goes, the
	// operator's stays; other's groups are untouched.
	wantErr(t, "SetUpstreamGroups(u1, acme) again", s.SetUpstreamGroups(ctx, "u1", "acme", []string{"staff"}, at(time.Hour)), nil)
	got, _ = s.ListUserGroups(ctx, "u1")
	diff(t, "ListUserGroups(u1) after acme dropped editors", got, []string{"admins", "editors", "staff"})
	// The operator removes editors: it is gone, acme no longer gives it.
	wantErr(t, "RemoveUserGroup(u1, editors)", s.RemoveUserGroup(ctx, "u1", "editors"), nil)
	got, _ = s.ListUserGroups(ctx, "u1")
	diff(t, "ListUserGroups(u1) after the operator's removal", got, []string{"admins", "staff"})
	// A group only a provider gave is not the operator's to remove.
	wantErr(t, "RemoveUserGroup(u1, staff)", s.RemoveUserGroup(ctx, "u1", "staff"), storage.ErrNotFound)
	// acme now gives nothing.
	wantErr(t, "SetUpstreamGroups(u1, acme, none)", s.SetUpstreamGroups(ctx, "u1", "acme", nil, at(time.Hour)), nil)
	up, _ = s.ListUpstreamGroups(ctx, "u1")
	diff(t, "ListUpstreamGroups(u1) after acme gave none", up, map[string][]string{"other": {"admins"}})

	if _, err := s.ResetUser(ctx, "u1", at(2*time.Hour), func(u storage.User) (storage.User, error) { return u, nil }); err != nil {
		t.Fatalf("ResetUser(u1) = %v", err)
	}
	got, _ = s.ListUserGroups(ctx, "u1")
	diff(t, "ListUserGroups(u1) after ResetUser", got, []string{"admins"})

	wantErr(t, "DeleteUser(u1)", s.DeleteUser(ctx, "u1"), nil)
	mustCreateUser(t, s, "u1")
	got, _ = s.ListUserGroups(ctx, "u1")
	diff(t, "ListUserGroups(u1) of a new user with the deleted one's id", got, []string(nil), equateNone)
	up, _ = s.ListUpstreamGroups(ctx, "u1")
	diff(t, "ListUpstreamGroups(u1) of a new user with the deleted one's id", up, map[string][]string{}, equateNone)
}

// testUpstreamClaims: a provider's claims replace that provider's claims
// only; a user's claims are every provider's values, each once; a reset
// keeps them, deleting the user takes them.
func testUpstreamClaims(t *testing.T, s storage.Store) {
	ctx := t.Context()
	mustCreateUser(t, s, "u1")
	mustCreateUser(t, s, "u2")
	wantErr(t, "SetUpstreamClaims(u1, acme)", s.SetUpstreamClaims(ctx, "u1", "acme",
		map[string][]string{"department": {"research", "engineering", "research"}, "level": {"3"}}, t0), nil)
	wantErr(t, "SetUpstreamClaims(u1, other)", s.SetUpstreamClaims(ctx, "u1", "other", map[string][]string{"department": {"engineering", "sales"}}, t0), nil)
	wantErr(t, "SetUpstreamClaims(u2, acme)", s.SetUpstreamClaims(ctx, "u2", "acme", map[string][]string{"department": {"sales"}}, t0), nil)
	wantErr(t, "SetUpstreamClaims(nope, acme)", s.SetUpstreamClaims(ctx, "nope", "acme", map[string][]string{"level": {"1"}}, t0), storage.ErrNotFound)
	wantErr(t, "SetUpstreamClaims(nope, acme, none)", s.SetUpstreamClaims(ctx, "nope", "acme", nil, t0), storage.ErrNotFound)

	got, err := s.ListUserClaims(ctx, "u1")
	wantErr(t, "ListUserClaims(u1)", err, nil)
	diff(t, "ListUserClaims(u1) (both providers', engineering once)", got,
		map[string][]string{"department": {"engineering", "research", "sales"}, "level": {"3"}})
	got, err = s.ListUserClaims(ctx, "nope")
	wantErr(t, "ListUserClaims(nope)", err, nil)
	diff(t, "ListUserClaims(nope)", got, map[string][]string{}, equateNone)

	// The next sign-in at acme says another department and no level:
	// acme's old values go, other's stay.
	wantErr(t, "SetUpstreamClaims(u1, acme) again", s.SetUpstreamClaims(ctx, "u1", "acme", map[string][]string{"department": {"legal"}}, at(time.Hour)), nil)
	got, _ = s.ListUserClaims(ctx, "u1")
	diff(t, "ListUserClaims(u1) after acme's next sign-in", got, map[string][]string{"department": {"engineering", "legal", "sales"}})
	wantErr(t, "SetUpstreamClaims(u1, other, none)", s.SetUpstreamClaims(ctx, "u1", "other", nil, at(time.Hour)), nil)
	got, _ = s.ListUserClaims(ctx, "u1")
	diff(t, "ListUserClaims(u1) after other gave none", got, map[string][]string{"department": {"legal"}})
	got, _ = s.ListUserClaims(ctx, "u2")
	diff(t, "ListUserClaims(u2) untouched", got, map[string][]string{"department": {"sales"}})

	if _, err := s.ResetUser(ctx, "u1", at(2*time.Hour), func(u storage.User) (storage.User, error) { return u, nil }); err != nil {
		t.Fatalf("ResetUser(u1) = %v", err)
	}
	got, _ = s.ListUserClaims(ctx, "u1")
	diff(t, "ListUserClaims(u1) after ResetUser", got, map[string][]string{"department": {"legal"}})

	wantErr(t, "DeleteUser(u1)", s.DeleteUser(ctx, "u1"), nil)
	mustCreateUser(t, s, "u1")
	got, _ = s.ListUserClaims(ctx, "u1")
	diff(t, "ListUserClaims(u1) of a new user with the deleted one's id", got, map[string][]string{}, equateNone)
}

// ---- resources ------------------------------------------------------------

func testResources(t *testing.T, s storage.Store) {
	ctx := t.Context()
	r := storage.Resource{
		URL:  "https://mcp.example/",
		Name: "MCP",
		Scopes: []storage.Scope{
			{Name: "read", Description: "Read things", Tools: []string{"list", "get"}},
			{Name: "write"},
		},
		DefaultScopes:           []string{"read"},
		AcceptClientCredentials: true,
		ScopePolicies: map[string]storage.ScopePolicy{
			"write": {Groups: []string{"editors", "admins"}},
			"admin": {Claims: map[string][]string{"department": {"engineering", "research"}}},
		},
		CreatedAt: t0,
		UpdatedAt: t0,
	}
	wantErr(t, "PutResource()", s.PutResource(ctx, r), nil)
	got, err := s.GetResource(ctx, r.URL)
	wantErr(t, fmt.Sprintf("GetResource(%q)", r.URL), err, nil)
	diff(t, fmt.Sprintf("GetResource(%q)", r.URL), got, r)

	r.Name = "MCP v2"
	r.Scopes = r.Scopes[:1]
	r.DefaultScopes = nil
	r.AcceptClientCredentials = false // a replace can withdraw the opt-in
	r.ScopePolicies = nil             // and the policies
	r.UpdatedAt = at(time.Hour)
	wantErr(t, "PutResource() replacing", s.PutResource(ctx, r), nil)
	got, _ = s.GetResource(ctx, r.URL)
	diff(t, fmt.Sprintf("GetResource(%q) after replace", r.URL), got, r, equateNone)

	a := storage.Resource{URL: "https://a.example/mcp", Name: "A", CreatedAt: t0, UpdatedAt: t0}
	wantErr(t, "PutResource(a)", s.PutResource(ctx, a), nil)
	list, err := s.ListResources(ctx)
	wantErr(t, "ListResources()", err, nil)
	diff(t, "ListResources()", list, []storage.Resource{a, r}, equateNone)

	_, err = s.GetResource(ctx, "https://nope.example/")
	wantErr(t, "GetResource(unknown)", err, storage.ErrNotFound)
	wantErr(t, "DeleteResource(a)", s.DeleteResource(ctx, a.URL), nil)
	_, err = s.GetResource(ctx, a.URL)
	wantErr(t, "GetResource(a) after delete", err, storage.ErrNotFound)
	wantErr(t, "DeleteResource(a) again", s.DeleteResource(ctx, a.URL), storage.ErrNotFound)
}

// ---- sessions and auth requests -------------------------------------------

func testSessions(t *testing.T, s storage.Store) {
	ctx := t.Context()
	mustCreateUser(t, s, "u1")
	ss := storage.Session{IDHash: "sess1", UserID: "u1", UserEpoch: 4, AuthTime: at(-time.Minute), CreatedAt: t0, ExpiresAt: at(8 * time.Hour)}
	mustCreateSession(t, s, ss)
	got, err := s.GetSession(ctx, "sess1")
	wantErr(t, `GetSession("sess1")`, err, nil)
	diff(t, `GetSession("sess1")`, got, ss)

	wantErr(t, `CreateSession("sess1") again`, s.CreateSession(ctx, ss), storage.ErrAlreadyExists)
	orphan := ss
	orphan.IDHash, orphan.UserID = "sess2", "nope"
	wantErr(t, "CreateSession() for an unknown user", s.CreateSession(ctx, orphan), storage.ErrNotFound)

	_, err = s.GetSession(ctx, "nope")
	wantErr(t, `GetSession("nope")`, err, storage.ErrNotFound)
	wantErr(t, `DeleteSession("sess1")`, s.DeleteSession(ctx, "sess1"), nil)
	_, err = s.GetSession(ctx, "sess1")
	wantErr(t, `GetSession("sess1") after delete`, err, storage.ErrNotFound)
	wantErr(t, `DeleteSession("sess1") again`, s.DeleteSession(ctx, "sess1"), storage.ErrNotFound)
}

func testAuthCodes(t *testing.T, s storage.Store) {
	ctx := t.Context()
	mustCreateClient(t, s, "c1")
	mustCreateUser(t, s, "u1")
	c := newAuthCode("code1", "c1", "u1")
	mustCreateAuthCode(t, s, c)
	wantErr(t, `CreateAuthCode("code1") again`, s.CreateAuthCode(ctx, c), storage.ErrAlreadyExists)
	wantErr(t, "CreateAuthCode() for an unknown client",
		s.CreateAuthCode(ctx, newAuthCode("code2", "nope", "u1")), storage.ErrNotFound)

	first := at(5 * time.Second)
	got, err := s.ConsumeAuthCode(ctx, "code1", first)
	wantErr(t, `ConsumeAuthCode("code1")`, err, nil)
	want := c
	want.ConsumedAt = first
	diff(t, `ConsumeAuthCode("code1")`, got, want)

	// A replay gets the stored code (so the caller can revoke
	// want.GrantID) and ErrConsumed; the first consumption time stays.
	got, err = s.ConsumeAuthCode(ctx, "code1", at(10*time.Second))
	wantErr(t, `ConsumeAuthCode("code1") again`, err, storage.ErrConsumed)
	diff(t, `ConsumeAuthCode("code1") again`, got, want)

	_, err = s.ConsumeAuthCode(ctx, "nope", first)
	wantErr(t, `ConsumeAuthCode("nope")`, err, storage.ErrNotFound)
	if errors.Is(err, storage.ErrConsumed) {
		t.Errorf(`ConsumeAuthCode("nope") = %v, want not ErrConsumed`, err)
	}
}

// ---- grants and refresh tokens --------------------------------------------

func testGrantsAndRefreshTokens(t *testing.T, s storage.Store) {
	ctx := t.Context()
	mustCreateClient(t, s, "c1")
	mustCreateUser(t, s, "u1")
	g := newGrant("g1", "c1", "u1")
	mustCreateGrant(t, s, g)
	got, err := s.GetGrant(ctx, "g1")
	wantErr(t, `GetGrant("g1")`, err, nil)
	diff(t, `GetGrant("g1")`, got, g)
	wantErr(t, `CreateGrant("g1") again`, s.CreateGrant(ctx, g), storage.ErrAlreadyExists)
	_, err = s.GetGrant(ctx, "nope")
	wantErr(t, `GetGrant("nope")`, err, storage.ErrNotFound)

	cc := newGrant("cc1", "c1", "")
	cc.ExpiresAt = time.Time{} // no absolute lifetime
	mustCreateGrant(t, s, cc)
	got, _ = s.GetGrant(ctx, "cc1")
	diff(t, `GetGrant("cc1")`, got, cc)

	// Revocation: the first time stays recorded.
	wantErr(t, `RevokeGrant("cc1")`, s.RevokeGrant(ctx, "cc1", at(time.Hour)), nil)
	wantErr(t, `RevokeGrant("cc1") again`, s.RevokeGrant(ctx, "cc1", at(2*time.Hour)), nil)
	got, _ = s.GetGrant(ctx, "cc1")
	if !got.RevokedAt.Equal(at(time.Hour)) {
		t.Errorf(`GetGrant("cc1").RevokedAt = %v, want %v`, got.RevokedAt, at(time.Hour))
	}
	wantErr(t, `RevokeGrant("nope")`, s.RevokeGrant(ctx, "nope", t0), storage.ErrNotFound)

	// RevokeGrants ends exactly the active grants of one user × client ×
	// resource: not other users', clients' or resources', and not twice.
	mustCreateUser(t, s, "u2")
	mustCreateClient(t, s, "c2")
	same1, same2 := newGrant("bulk1", "c1", "u1"), newGrant("bulk2", "c1", "u1")
	otherUser, otherClient, otherRes := newGrant("bulk3", "c1", "u2"), newGrant("bulk4", "c2", "u1"), newGrant("bulk5", "c1", "u1")
	otherRes.Resource = "https://elsewhere.example.com/mcp"
	for _, bg := range []storage.Grant{same1, same2, otherUser, otherClient, otherRes} {
		mustCreateGrant(t, s, bg)
	}
	n, err := s.RevokeGrants(ctx, "u1", "c1", same1.Resource, at(3*time.Hour))
	wantErr(t, "RevokeGrants()", err, nil)
	// g1 (created above for u1, c1 at the same resource) is revoked too.
	if n != 3 {
		t.Errorf("RevokeGrants() = %d, want 3 (g1, bulk1, bulk2)", n)
	}
	for id, revoked := range map[string]bool{"g1": true, "bulk1": true, "bulk2": true, "bulk3": false, "bulk4": false, "bulk5": false} {
		got, _ := s.GetGrant(ctx, id)
		if got.RevokedAt.IsZero() == revoked {
			t.Errorf("after RevokeGrants(), grant %s revoked = %v, want %v", id, !got.RevokedAt.IsZero(), revoked)
		}
	}
	if n, _ := s.RevokeGrants(ctx, "u1", "c1", same1.Resource, at(4*time.Hour)); n != 0 {
		t.Errorf("RevokeGrants() again = %d, want 0", n)
	}
	if got, _ := s.GetGrant(ctx, "g1"); !got.RevokedAt.Equal(at(3 * time.Hour)) {
		t.Errorf("RevokeGrants() again moved RevokedAt to %v", got.RevokedAt)
	}

	rt1 := newRefreshToken("rt1", g)
	mustCreateRefreshToken(t, s, rt1)
	gotRT, err := s.GetRefreshToken(ctx, "rt1")
	wantErr(t, `GetRefreshToken("rt1")`, err, nil)
	diff(t, `GetRefreshToken("rt1")`, gotRT, rt1)
	wantErr(t, `CreateRefreshToken("rt1") again`, s.CreateRefreshToken(ctx, rt1), storage.ErrAlreadyExists)
	orphan := newRefreshToken("rt-orphan", newGrant("nope", "c1", "u1"))
	wantErr(t, "CreateRefreshToken() for an unknown grant", s.CreateRefreshToken(ctx, orphan), storage.ErrNotFound)
	_, err = s.GetRefreshToken(ctx, "nope")
	wantErr(t, `GetRefreshToken("nope")`, err, storage.ErrNotFound)

	// Rotation.
	rt2 := newRefreshToken("rt2", g)
	rt2.CreatedAt, rt2.ExpiresAt = at(time.Hour), at(25*time.Hour)
	// A DPoP-bound token (RFC 9449 §5) keeps its key's thumbprint.
	rt2.JKT = "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"
	retry := []byte("sealed response 1")
	wantErr(t, `RotateRefreshToken("rt1", "rt2")`, s.RotateRefreshToken(ctx, "rt1", rt2, retry, "key1"), nil)
	wantRT1 := rt1
	wantRT1.RotatedAt, wantRT1.Retry, wantRT1.RetryKey = rt2.CreatedAt, retry, "key1"
	gotRT, _ = s.GetRefreshToken(ctx, "rt1")
	diff(t, `GetRefreshToken("rt1") after rotation`, gotRT, wantRT1)
	gotRT, err = s.GetRefreshToken(ctx, "rt2")
	wantErr(t, `GetRefreshToken("rt2")`, err, nil)
	diff(t, `GetRefreshToken("rt2")`, gotRT, rt2)

	// Reuse: nothing inserted, the winner's retry data stays readable.
	rt3 := newRefreshToken("rt3", g)
	rt3.CreatedAt = at(2 * time.Hour)
	err = s.RotateRefreshToken(ctx, "rt1", rt3, []byte("sealed response 2"), "key2")
	wantErr(t, `RotateRefreshToken("rt1", "rt3")`, err, storage.ErrTokenReused)
	_, err = s.GetRefreshToken(ctx, "rt3")
	wantErr(t, `GetRefreshToken("rt3") after reuse`, err, storage.ErrNotFound)
	gotRT, _ = s.GetRefreshToken(ctx, "rt1")
	diff(t, `GetRefreshToken("rt1") after reuse`, gotRT, wantRT1)

	wantErr(t, `RotateRefreshToken("nope", "rt3")`,
		s.RotateRefreshToken(ctx, "nope", rt3, nil, ""), storage.ErrNotFound)

	// A next token whose hash exists rotates nothing.
	err = s.RotateRefreshToken(ctx, "rt2", rt1, []byte("x"), "key3")
	wantErr(t, `RotateRefreshToken("rt2", "rt1")`, err, storage.ErrAlreadyExists)
	gotRT, _ = s.GetRefreshToken(ctx, "rt2")
	diff(t, `GetRefreshToken("rt2") after failed rotation`, gotRT, rt2)

	// Rotating with empty retry data stores none.
	wantErr(t, `RotateRefreshToken("rt2", "rt3")`, s.RotateRefreshToken(ctx, "rt2", rt3, nil, ""), nil)
	gotRT, _ = s.GetRefreshToken(ctx, "rt2")
	if len(gotRT.Retry) != 0 || gotRT.RetryKey != "" || !gotRT.RotatedAt.Equal(rt3.CreatedAt) {
		t.Errorf(`GetRefreshToken("rt2") = Retry %q, RetryKey %q, RotatedAt %v; want empty, empty, %v`,
			gotRT.Retry, gotRT.RetryKey, gotRT.RotatedAt, rt3.CreatedAt)
	}
}

// ---- consents -------------------------------------------------------------

func testConsents(t *testing.T, s storage.Store) {
	ctx := t.Context()
	mustCreateUser(t, s, "u1")
	mustCreateUser(t, s, "u2")
	mustCreateClient(t, s, "c1")
	mustCreateClient(t, s, "c2")

	c := newConsent("u1", "c2", "https://mcp.example/")
	mustPutConsent(t, s, c)
	got, err := s.GetConsent(ctx, "u1", "c2", "https://mcp.example/")
	wantErr(t, "GetConsent()", err, nil)
	diff(t, "GetConsent()", got, c)

	c.Scopes = []string{"read", "write"}
	c.UpdatedAt = at(time.Hour)
	mustPutConsent(t, s, c)
	got, _ = s.GetConsent(ctx, "u1", "c2", "https://mcp.example/")
	diff(t, "GetConsent() after replace", got, c)

	b := newConsent("u1", "c1", "https://b.example/")
	a := newConsent("u1", "c1", "https://a.example/")
	other := newConsent("u2", "c1", "https://a.example/")
	for _, x := range []storage.Consent{b, a, other} {
		mustPutConsent(t, s, x)
	}
	list, err := s.ListConsents(ctx, "u1")
	wantErr(t, `ListConsents("u1")`, err, nil)
	diff(t, `ListConsents("u1")`, list, []storage.Consent{a, b, c})
	list, err = s.ListConsents(ctx, "nope")
	wantErr(t, `ListConsents("nope")`, err, nil)
	if len(list) != 0 {
		t.Errorf(`ListConsents("nope") = %v, want empty`, list)
	}

	wantErr(t, "PutConsent() for an unknown user",
		s.PutConsent(ctx, newConsent("nope", "c1", "https://a.example/")), storage.ErrNotFound)
	_, err = s.GetConsent(ctx, "u1", "c1", "https://nope.example/")
	wantErr(t, "GetConsent(unknown)", err, storage.ErrNotFound)
	wantErr(t, "DeleteConsent(a)", s.DeleteConsent(ctx, "u1", "c1", "https://a.example/"), nil)
	_, err = s.GetConsent(ctx, "u1", "c1", "https://a.example/")
	wantErr(t, "GetConsent(a) after delete", err, storage.ErrNotFound)
	got, _ = s.GetConsent(ctx, "u2", "c1", "https://a.example/")
	diff(t, "GetConsent(other user) after delete", got, other)
	wantErr(t, "DeleteConsent(a) again", s.DeleteConsent(ctx, "u1", "c1", "https://a.example/"), storage.ErrNotFound)
}

// ---- signing keys ---------------------------------------------------------

func testKeys(t *testing.T, s storage.Store) {
	ctx := t.Context()
	list, err := s.ListSigningKeys(ctx)
	wantErr(t, "ListSigningKeys() on an empty store", err, nil)
	if len(list) != 0 {
		t.Errorf("ListSigningKeys() on an empty store = %v, want empty", list)
	}

	k1 := newKey("k1", t0)
	wantErr(t, `RotateSigningKey("k1")`, s.RotateSigningKey(ctx, k1, at(time.Hour)), nil)
	list, _ = s.ListSigningKeys(ctx)
	diff(t, "ListSigningKeys() after first rotation", list, []storage.SigningKey{k1})

	k2 := newKey("k2", at(24*time.Hour))
	wantErr(t, `RotateSigningKey("k2")`, s.RotateSigningKey(ctx, k2, at(48*time.Hour)), nil)
	k1.RetiredAt, k1.RemoveAfter = k2.CreatedAt, at(48*time.Hour)
	list, _ = s.ListSigningKeys(ctx)
	diff(t, "ListSigningKeys() after second rotation", list, []storage.SigningKey{k2, k1})

	k3 := newKey("k3", at(72*time.Hour))
	wantErr(t, `RotateSigningKey("k3")`, s.RotateSigningKey(ctx, k3, at(96*time.Hour)), nil)
	// Only the active key is retired; k1 keeps its own dates.
	k2.RetiredAt, k2.RemoveAfter = k3.CreatedAt, at(96*time.Hour)
	list, _ = s.ListSigningKeys(ctx)
	diff(t, "ListSigningKeys() after third rotation", list, []storage.SigningKey{k3, k2, k1})

	// A failing rotation changes nothing: k3 stays active.
	dup := newKey("k2", at(100*time.Hour))
	wantErr(t, `RotateSigningKey("k2") again`, s.RotateSigningKey(ctx, dup, at(120*time.Hour)), storage.ErrAlreadyExists)
	list, _ = s.ListSigningKeys(ctx)
	diff(t, "ListSigningKeys() after failed rotation", list, []storage.SigningKey{k3, k2, k1})

	// Resealing replaces every private key and nothing else; a failure on
	// any key leaves all of them as they were.
	n, err := s.ResealSigningKeys(ctx, func(k storage.SigningKey) ([]byte, error) {
		return append([]byte("resealed:"), k.PrivateKey...), nil
	})
	if err != nil || n != 3 {
		t.Fatalf("ResealSigningKeys() = %d, %v; want 3, nil", n, err)
	}
	for _, k := range []*storage.SigningKey{&k1, &k2, &k3} {
		k.PrivateKey = append([]byte("resealed:"), k.PrivateKey...)
	}
	list, _ = s.ListSigningKeys(ctx)
	diff(t, "ListSigningKeys() after resealing", list, []storage.SigningKey{k3, k2, k1})
	boom := errors.New("boom")
	_, err = s.ResealSigningKeys(ctx, func(k storage.SigningKey) ([]byte, error) {
		if k.ID == "k3" {
			return nil, boom
		}
		return []byte("half"), nil
	})
	wantErr(t, "ResealSigningKeys() failing on k3", err, boom)
	list, _ = s.ListSigningKeys(ctx)
	diff(t, "ListSigningKeys() after a failed reseal", list, []storage.SigningKey{k3, k2, k1})
}

// testKeysWithdraw: a withdrawn key becomes a tombstone (private key
// deleted, WithdrawnAt set, everything else kept) in one step; the key
// that signs cannot be withdrawn; withdrawing twice changes nothing; a
// tombstone is neither resealed nor retired again, and garbage collection
// removes it when it would have stopped being published.
func testKeysWithdraw(t *testing.T, s storage.Store) {
	ctx := t.Context()
	k1, k2, k3 := newKey("k1", t0), newKey("k2", at(time.Hour)), newKey("k3", at(2*time.Hour))
	for _, k := range []storage.SigningKey{k1, k2} {
		if err := s.RotateSigningKey(ctx, k, at(48*time.Hour)); err != nil {
			t.Fatalf("RotateSigningKey(%q) = %v", k.ID, err)
		}
	}
	k1.RetiredAt, k1.RemoveAfter = k2.CreatedAt, at(48*time.Hour)

	_, err := s.WithdrawSigningKey(ctx, "nope", at(3*time.Hour))
	wantErr(t, `WithdrawSigningKey("nope")`, err, storage.ErrNotFound)
	_, err = s.WithdrawSigningKey(ctx, "k2", at(3*time.Hour))
	wantErr(t, `WithdrawSigningKey("k2") while it is active`, err, storage.ErrConflict)
	list, _ := s.ListSigningKeys(ctx)
	diff(t, "ListSigningKeys() after refused withdrawals", list, []storage.SigningKey{k2, k1})

	got, err := s.WithdrawSigningKey(ctx, "k1", at(3*time.Hour))
	wantErr(t, `WithdrawSigningKey("k1")`, err, nil)
	tomb1 := k1
	tomb1.PrivateKey, tomb1.WithdrawnAt = nil, at(3*time.Hour)
	diff(t, `WithdrawSigningKey("k1")`, got, tomb1)
	list, _ = s.ListSigningKeys(ctx)
	diff(t, `ListSigningKeys() after WithdrawSigningKey("k1")`, list, []storage.SigningKey{k2, tomb1})

	// Twice: the first withdrawal stands.
	got, err = s.WithdrawSigningKey(ctx, "k1", at(4*time.Hour))
	wantErr(t, `WithdrawSigningKey("k1") again`, err, storage.ErrWithdrawn)
	diff(t, `WithdrawSigningKey("k1") again`, got, tomb1)

	// The active key, once a rotation retired it.
	if err := s.RotateSigningKey(ctx, k3, at(50*time.Hour)); err != nil {
		t.Fatalf(`RotateSigningKey("k3") = %v`, err)
	}
	k2.RetiredAt, k2.RemoveAfter = k3.CreatedAt, at(50*time.Hour)
	got, err = s.WithdrawSigningKey(ctx, "k2", at(5*time.Hour))
	wantErr(t, `WithdrawSigningKey("k2") after the rotation`, err, nil)
	tomb2 := k2
	tomb2.PrivateKey, tomb2.WithdrawnAt = nil, at(5*time.Hour)
	diff(t, `WithdrawSigningKey("k2")`, got, tomb2)

	// Reseal skips tombstones: there is nothing to re-encrypt.
	var resealed []string
	n, err := s.ResealSigningKeys(ctx, func(k storage.SigningKey) ([]byte, error) {
		resealed = append(resealed, k.ID)
		return []byte("resealed"), nil
	})
	if err != nil || n != 1 {
		t.Errorf("ResealSigningKeys() = %d, %v; want 1, nil", n, err)
	}
	diff(t, "keys ResealSigningKeys() saw", resealed, []string{"k3"})
	k3.PrivateKey = []byte("resealed")

	// A rotation leaves tombstones as they are.
	k4 := newKey("k4", at(6*time.Hour))
	if err := s.RotateSigningKey(ctx, k4, at(60*time.Hour)); err != nil {
		t.Fatalf(`RotateSigningKey("k4") = %v`, err)
	}
	k3.RetiredAt, k3.RemoveAfter = k4.CreatedAt, at(60*time.Hour)
	list, _ = s.ListSigningKeys(ctx)
	diff(t, "ListSigningKeys() after rotating past tombstones", list, []storage.SigningKey{k4, k3, tomb2, tomb1})
	bad := newKey("k5", at(7*time.Hour))
	bad.WithdrawnAt = at(7 * time.Hour)
	if err := s.RotateSigningKey(ctx, bad, at(70*time.Hour)); err == nil {
		t.Errorf("RotateSigningKey(a withdrawn key) = nil, want an error")
	}

	// GC removes a tombstone at its RemoveAfter, like any retired key.
	r, err := s.GarbageCollect(ctx, at(49*time.Hour))
	wantErr(t, "GarbageCollect(+49h)", err, nil)
	if r.Keys != 1 {
		t.Errorf("GarbageCollect(+49h).Keys = %d, want 1 (the tombstone of k1)", r.Keys)
	}
	list, _ = s.ListSigningKeys(ctx)
	diff(t, "ListSigningKeys() after GC", list, []storage.SigningKey{k4, k3, tomb2})
}

// ---- replay ---------------------------------------------------------------

func testReplay(t *testing.T, s storage.Store) {
	ctx := t.Context()
	wantErr(t, `UseOnce("jti1")`, s.UseOnce(ctx, "jti1", farFuture), nil)
	wantErr(t, `UseOnce("jti1") again`, s.UseOnce(ctx, "jti1", farFuture), storage.ErrAlreadyExists)
	wantErr(t, `UseOnce("jti2")`, s.UseOnce(ctx, "jti2", farFuture), nil)

	for _, tt := range []struct {
		key  string
		now  time.Time
		want bool
	}{
		{"jti1", t0, true},
		{"jti1", farFuture.Add(-time.Microsecond), true},
		{"jti1", farFuture, false}, // expired at its expiry instant
		{"nope", t0, false},
	} {
		got, err := s.Seen(ctx, tt.key, tt.now)
		if err != nil || got != tt.want {
			t.Errorf("Seen(%q, %v) = %v, %v; want %v, nil", tt.key, tt.now, got, err, tt.want)
		}
	}

	// An expired entry (by the store's clock) can be used again.
	wantErr(t, `UseOnce("old")`, s.UseOnce(ctx, "old", longAgo), nil)
	wantErr(t, `UseOnce("old") after expiry`, s.UseOnce(ctx, "old", farFuture), nil)
	wantErr(t, `UseOnce("old") a third time`, s.UseOnce(ctx, "old", farFuture), storage.ErrAlreadyExists)
	if seen, err := s.Seen(ctx, "old", t0); err != nil || !seen {
		t.Errorf(`Seen("old", %v) = %v, %v; want true, nil`, t0, seen, err)
	}

	// A zero expiry never expires.
	wantErr(t, `UseOnce("forever")`, s.UseOnce(ctx, "forever", time.Time{}), nil)
	wantErr(t, `UseOnce("forever") again`, s.UseOnce(ctx, "forever", farFuture), storage.ErrAlreadyExists)
	if seen, err := s.Seen(ctx, "forever", farFuture); err != nil || !seen {
		t.Errorf(`Seen("forever", %v) = %v, %v; want true, nil`, farFuture, seen, err)
	}
}

// ---- throttle -------------------------------------------------------------

func testThrottle(t *testing.T, s storage.Store) {
	ctx := t.Context()
	const window = time.Minute
	type result struct {
		Count   int
		ResetAt time.Time
	}
	add := func(key string, now time.Time) result {
		t.Helper()
		n, reset, err := s.AddFailure(ctx, key, now, window)
		if err != nil {
			t.Fatalf("AddFailure(%q, %v) = %v", key, now, err)
		}
		return result{n, reset}
	}
	failures := func(key string, now time.Time) result {
		t.Helper()
		n, reset, err := s.Failures(ctx, key, now)
		if err != nil {
			t.Fatalf("Failures(%q, %v) = %v", key, now, err)
		}
		return result{n, reset}
	}

	diff(t, "AddFailure(k, t0)", add("k", t0), result{1, at(window)})
	diff(t, "AddFailure(k, t0+10s)", add("k", at(10*time.Second)), result{2, at(window)})
	diff(t, "AddFailure(other, t0+20s)", add("other", at(20*time.Second)), result{1, at(20*time.Second + window)})
	diff(t, "Failures(k, t0+30s)", failures("k", at(30*time.Second)), result{2, at(window)})
	diff(t, "Failures(k, t0+window-1µs)", failures("k", at(window-time.Microsecond)), result{2, at(window)})
	// The window ends at resetAt.
	diff(t, "Failures(k, t0+window)", failures("k", at(window)), result{})
	diff(t, "AddFailure(k, t0+window)", add("k", at(window)), result{1, at(2 * window)})
	diff(t, "Failures(nope, t0)", failures("nope", t0), result{})

	wantErr(t, `ResetFailures("k")`, s.ResetFailures(ctx, "k"), nil)
	diff(t, "Failures(k) after reset", failures("k", at(window)), result{})
	diff(t, "Failures(other) after resetting k", failures("other", at(30*time.Second)), result{1, at(20*time.Second + window)})
	wantErr(t, `ResetFailures("nope")`, s.ResetFailures(ctx, "nope"), nil)

	// RemoveFailure refunds one count, never below zero, and keeps the window.
	diff(t, "AddFailure(r, t0)", add("r", t0), result{1, at(window)})
	diff(t, "AddFailure(r, t0+1s)", add("r", at(time.Second)), result{2, at(window)})
	wantErr(t, `RemoveFailure("r")`, s.RemoveFailure(ctx, "r"), nil)
	diff(t, "Failures(r) after one refund", failures("r", at(2*time.Second)), result{1, at(window)})
	wantErr(t, `RemoveFailure("r")`, s.RemoveFailure(ctx, "r"), nil)
	wantErr(t, `RemoveFailure("r") at zero`, s.RemoveFailure(ctx, "r"), nil)
	if got := failures("r", at(2*time.Second)); got.Count != 0 {
		t.Errorf("Failures(r) after refunds past zero = %d, want 0", got.Count)
	}
	diff(t, "AddFailure(r) after refunds", add("r", at(3*time.Second)), result{1, at(window)})
	wantErr(t, `RemoveFailure("nope")`, s.RemoveFailure(ctx, "nope"), nil)
}

// ---- audit ----------------------------------------------------------------

// testUserSessions: "sign out other sessions" deletes every session of
// the user but the one kept, and no other user's.
func testUserSessions(t *testing.T, s storage.Store) {
	ctx := t.Context()
	mustCreateUser(t, s, "u1")
	mustCreateUser(t, s, "u2")
	for _, ss := range []storage.Session{
		{IDHash: "a", UserID: "u1"}, {IDHash: "b", UserID: "u1"}, {IDHash: "c", UserID: "u1"}, {IDHash: "d", UserID: "u2"},
	} {
		ss.CreatedAt, ss.ExpiresAt = t0, at(time.Hour)
		mustCreateSession(t, s, ss)
	}
	n, err := s.DeleteUserSessions(ctx, "u1", "b")
	if err != nil || n != 2 {
		t.Fatalf(`DeleteUserSessions("u1", except "b") = %d, %v; want 2, nil`, n, err)
	}
	for hash, want := range map[string]bool{"a": false, "b": true, "c": false, "d": true} {
		_, err := s.GetSession(ctx, hash)
		wantFound(t, fmt.Sprintf("GetSession(%q) after DeleteUserSessions", hash), err, want)
	}
	n, err = s.DeleteUserSessions(ctx, "u2", "")
	if err != nil || n != 1 {
		t.Errorf(`DeleteUserSessions("u2", "") = %d, %v; want 1, nil`, n, err)
	}
}

// testUserGrants: ListUserGrants returns the user's live grants only
// (not revoked, not expired, not another user's), ordered by client,
// resource and id, each with the creation time of its newest refresh
// token.
func testUserGrants(t *testing.T, s storage.Store) {
	ctx := t.Context()
	mustCreateClient(t, s, "c1")
	mustCreateClient(t, s, "c2")
	mustCreateUser(t, s, "u1")
	mustCreateUser(t, s, "u2")
	g := func(id, client, user, resource string) storage.Grant {
		gr := newGrant(id, client, user)
		gr.Resource = resource
		return gr
	}
	live1 := g("g1", "c2", "u1", "https://a.example/")
	live2 := g("g2", "c1", "u1", "https://b.example/")
	live3 := g("g3", "c1", "u1", "https://a.example/")
	live3.ExpiresAt = time.Time{} // never expires
	revoked := g("g4", "c1", "u1", "https://a.example/")
	expired := g("g5", "c1", "u1", "https://a.example/")
	expired.ExpiresAt = at(time.Minute)
	other := g("g6", "c1", "u2", "https://a.example/")
	for _, gr := range []storage.Grant{live1, live2, live3, revoked, expired, other} {
		mustCreateGrant(t, s, gr)
	}
	wantErr(t, `RevokeGrant("g4")`, s.RevokeGrant(ctx, "g4", at(time.Second)), nil)
	// g1: two refresh tokens, the second (a rotation) newer; g2: none.
	rt := newRefreshToken("rt1", live1)
	mustCreateRefreshToken(t, s, rt)
	next := newRefreshToken("rt2", live1)
	next.CreatedAt = at(10 * time.Minute)
	wantErr(t, "RotateRefreshToken(rt1)", s.RotateRefreshToken(ctx, "rt1", next, nil, ""), nil)
	rt3 := newRefreshToken("rt3", live3)
	rt3.CreatedAt = at(5 * time.Minute)
	mustCreateRefreshToken(t, s, rt3)

	got, err := s.ListUserGrants(ctx, "u1", at(2*time.Minute))
	wantErr(t, `ListUserGrants("u1")`, err, nil)
	want := []storage.GrantUse{{Grant: live3, LastUsed: at(5 * time.Minute)}, {Grant: live2}, {Grant: live1, LastUsed: at(10 * time.Minute)}}
	diff(t, `ListUserGrants("u1")`, got, want, equateNone)
	got, err = s.ListUserGrants(ctx, "nobody", t0)
	if err != nil || len(got) != 0 {
		t.Errorf(`ListUserGrants("nobody") = %v, %v; want none`, got, err)
	}
}

func testAudit(t *testing.T, s storage.Store) {
	ctx := t.Context()
	events := []storage.AuditEvent{
		{Time: t0, Type: "login.success", UserID: "u1", IP: "192.0.2.1", Outcome: "success"},
		{Time: at(time.Minute), Type: "login.failure", UserID: "u2", IP: "192.0.2.2", Outcome: "failure", Detail: "bad password"},
		{Time: at(2 * time.Minute), Type: "token.issued", UserID: "u1", ClientID: "c1", Resource: "https://mcp.example/", Outcome: "success"},
		{Time: at(3 * time.Minute), Type: "loginx.other", UserID: "u1", Outcome: "success"},
		{Time: at(4 * time.Minute), Type: "Login.success", UserID: "u1", Outcome: "success"},
		{Time: at(5 * time.Minute), Type: "refresh.reuse", UserID: "u1", ClientID: "c2", Outcome: "denied"},
		{Time: at(6 * time.Minute), Type: "login", UserID: "u1", Outcome: "success"},
	}
	// The first three one by one, the rest as one batch (group commit):
	// both keep the order and assign ascending IDs.
	for i, e := range events[:3] {
		e.ID = 9999 // ignored: the store assigns IDs
		if err := s.AppendAudit(ctx, e); err != nil {
			t.Fatalf("AppendAudit(#%d) = %v", i, err)
		}
	}
	wantErr(t, "AppendAudits(nil)", s.AppendAudits(ctx, nil), nil)
	wantErr(t, "AppendAudits(rest)", s.AppendAudits(ctx, events[3:]), nil)
	all, err := s.QueryAudit(ctx, storage.AuditQuery{})
	wantErr(t, "QueryAudit({})", err, nil)
	if len(all) != len(events) {
		t.Fatalf("QueryAudit({}) returned %d events, want %d", len(all), len(events))
	}
	for i := range all {
		if i > 0 && all[i].ID <= all[i-1].ID {
			t.Errorf("QueryAudit({}) IDs %d, %d not ascending", all[i-1].ID, all[i].ID)
		}
		want := events[i]
		want.ID = all[i].ID
		diff(t, fmt.Sprintf("QueryAudit({})[%d]", i), all[i], want)
	}

	// pick returns the events at idx, with their stored IDs.
	pick := func(idx ...int) []storage.AuditEvent {
		var out []storage.AuditEvent
		for _, i := range idx {
			out = append(out, all[i])
		}
		return out
	}
	for _, tt := range []struct {
		name string
		q    storage.AuditQuery
		want []storage.AuditEvent
	}{
		{"exact type", storage.AuditQuery{Type: "login.success"}, pick(0)},
		{"type without dot is exact", storage.AuditQuery{Type: "login"}, pick(6)},
		{"prefix", storage.AuditQuery{Type: "login."}, pick(0, 1)},
		{"unknown type", storage.AuditQuery{Type: "nope"}, nil},
		{"user", storage.AuditQuery{UserID: "u2"}, pick(1)},
		{"client", storage.AuditQuery{ClientID: "c1"}, pick(2)},
		{"user and prefix", storage.AuditQuery{UserID: "u1", Type: "login."}, pick(0)},
		{"since inclusive", storage.AuditQuery{Since: at(5 * time.Minute)}, pick(5, 6)},
		{"until exclusive", storage.AuditQuery{Until: at(time.Minute)}, pick(0)},
		{"since and until", storage.AuditQuery{Since: at(time.Minute), Until: at(3 * time.Minute)}, pick(1, 2)},
		{"after id", storage.AuditQuery{AfterID: all[4].ID}, pick(5, 6)},
		{"limit", storage.AuditQuery{Limit: 2}, pick(0, 1)},
		{"after id and limit", storage.AuditQuery{AfterID: all[0].ID, Limit: 2}, pick(1, 2)},
		{"newest", storage.AuditQuery{Newest: true, Limit: 2}, pick(6, 5)},
		{"newest of a user and type", storage.AuditQuery{Newest: true, UserID: "u1", Type: "login."}, pick(0)},
		{"newest before id (next page)", storage.AuditQuery{Newest: true, BeforeID: all[5].ID, Limit: 2}, pick(4, 3)},
		{"before id ascending", storage.AuditQuery{BeforeID: all[2].ID}, pick(0, 1)},
	} {
		got, err := s.QueryAudit(ctx, tt.q)
		if err != nil {
			t.Errorf("QueryAudit(%s: %+v) = %v", tt.name, tt.q, err)
			continue
		}
		diff(t, fmt.Sprintf("QueryAudit(%s: %+v)", tt.name, tt.q), got, tt.want, equateNone)
	}

	// Limit 0 means 100.
	for i := range 110 {
		if err := s.AppendAudit(ctx, storage.AuditEvent{Time: at(time.Hour), Type: "bulk.event", Detail: fmt.Sprint(i)}); err != nil {
			t.Fatalf("AppendAudit(bulk #%d) = %v", i, err)
		}
	}
	got, err := s.QueryAudit(ctx, storage.AuditQuery{Type: "bulk."})
	if err != nil || len(got) != 100 || got[0].Detail != "0" {
		t.Errorf(`QueryAudit({Type: "bulk."}) = %d events (first %+v), %v; want 100 starting at "0", nil`, len(got), first(got), err)
	}
}

// testAuditText: invalid UTF-8 and NUL (which PostgreSQL refuses in text)
// are stored as U+FFFD, so one event carrying what a caller sent cannot
// fail a batch of other requests' events.
func testAuditText(t *testing.T, s storage.Store) {
	ctx := t.Context()
	const odd, clean = "a\x00b\xffc", "a\uFFFDb\uFFFDc"
	batch := []storage.AuditEvent{
		{Time: t0, Type: "test.clean", Outcome: "success"},
		{Time: t0, Type: "test.odd" + odd, UserID: odd, ClientID: odd, Resource: odd, IP: odd, Outcome: odd, Detail: odd},
	}
	wantErr(t, "AppendAudits(NUL and invalid UTF-8)", s.AppendAudits(ctx, batch), nil)
	got, err := s.QueryAudit(ctx, storage.AuditQuery{})
	wantErr(t, "QueryAudit({})", err, nil)
	want := []storage.AuditEvent{
		batch[0],
		{Time: t0, Type: "test.odd" + clean, UserID: clean, ClientID: clean, Resource: clean, IP: clean, Outcome: clean, Detail: clean},
	}
	for i := range min(len(got), len(want)) {
		want[i].ID = got[i].ID
	}
	diff(t, "QueryAudit({}) after odd text", got, want)
}

// testAuditBatch: a batch of events larger than what one statement
// carries (SQL backends insert them several rows to a statement) is
// stored whole and in order, with ascending IDs, after earlier events.
func testAuditBatch(t *testing.T, s storage.Store) {
	ctx := t.Context()
	wantErr(t, "AppendAudit(first)", s.AppendAudit(ctx, storage.AuditEvent{Time: t0, Type: "batch.first"}), nil)
	for _, n := range []int{1, 3, 100, 200} {
		var batch []storage.AuditEvent
		for i := range n {
			batch = append(batch, storage.AuditEvent{Time: at(time.Duration(i) * time.Second), Type: fmt.Sprintf("batch.%d", n),
				UserID: fmt.Sprint("u", i%7), ClientID: fmt.Sprint("c", i%3), Resource: "https://mcp.example/", IP: "192.0.2.1",
				Outcome: "success", Detail: fmt.Sprint(i)})
		}
		wantErr(t, fmt.Sprintf("AppendAudits(%d events)", n), s.AppendAudits(ctx, batch), nil)
		all, err := s.QueryAudit(ctx, storage.AuditQuery{Limit: 1000})
		wantErr(t, "QueryAudit({Limit: 1000})", err, nil)
		if len(all) < n+1 {
			t.Fatalf("QueryAudit({Limit: 1000}) after a batch of %d = %d events, want at least %d", n, len(all), n+1)
		}
		for i := 1; i < len(all); i++ {
			if all[i].ID <= all[i-1].ID {
				t.Fatalf("QueryAudit({Limit: 1000}) IDs %d, %d not ascending", all[i-1].ID, all[i].ID)
			}
		}
		got := all[len(all)-n:]
		for i := range batch {
			batch[i].ID = got[i].ID
		}
		diff(t, fmt.Sprintf("the last %d events after a batch of %d", n, n), got, batch)
	}
}

// testAuditRetention: DeleteAuditBefore deletes only events before the
// cutoff (one at the cutoff stays), at most limit per call, and leaves
// the rest and the ID sequence as they were.
func testAuditRetention(t *testing.T, s storage.Store) {
	ctx := t.Context()
	var events []storage.AuditEvent
	for i := range 5 {
		events = append(events, storage.AuditEvent{Time: at(time.Duration(i) * time.Minute), Type: "token.issued", Detail: fmt.Sprint(i)})
	}
	wantErr(t, "AppendAudits", s.AppendAudits(ctx, events), nil)
	all, err := s.QueryAudit(ctx, storage.AuditQuery{})
	wantErr(t, "QueryAudit({})", err, nil)
	if len(all) != len(events) {
		t.Fatalf("QueryAudit({}) returned %d events, want %d", len(all), len(events))
	}
	cutoff := at(3 * time.Minute) // events 0, 1 and 2 are before it
	for _, limit := range []int{0, -1} {
		if n, err := s.DeleteAuditBefore(ctx, cutoff, limit); err == nil || n != 0 {
			t.Errorf("DeleteAuditBefore(cutoff, %d) = %d, %v; want an error", limit, n, err)
		}
	}
	for _, step := range []struct {
		limit int
		want  int64
	}{{2, 2}, {2, 1}, {2, 0}} {
		n, err := s.DeleteAuditBefore(ctx, cutoff, step.limit)
		if err != nil || n != step.want {
			t.Errorf("DeleteAuditBefore(cutoff, %d) = %d, %v; want %d, nil", step.limit, n, err, step.want)
		}
	}
	left, err := s.QueryAudit(ctx, storage.AuditQuery{})
	wantErr(t, "QueryAudit({}) after deletion", err, nil)
	diff(t, "QueryAudit({}) after deletion", left, all[3:])

	// New events still get higher IDs than any before.
	wantErr(t, "AppendAudit", s.AppendAudit(ctx, storage.AuditEvent{Time: at(time.Hour), Type: "token.issued"}), nil)
	last, err := s.QueryAudit(ctx, storage.AuditQuery{AfterID: all[4].ID})
	if err != nil || len(last) != 1 {
		t.Errorf("QueryAudit(after the last ID) = %d events, %v; want the new one", len(last), err)
	}
	if n, err := s.DeleteAuditBefore(ctx, farFuture, 100); err != nil || n != 3 {
		t.Errorf("DeleteAuditBefore(far future, 100) = %d, %v; want 3, nil", n, err)
	}
}

func first[T any](s []T) any {
	if len(s) == 0 {
		return nil
	}
	return s[0]
}

// ---- garbage collection ---------------------------------------------------

func testGarbageCollect(t *testing.T, s storage.Store) {
	ctx := t.Context()
	now := at(time.Hour)
	past, future := at(30*time.Minute), at(2*time.Hour)
	mustCreateClient(t, s, "c1")
	mustCreateUser(t, s, "u1")

	// One of each with an expiry in the past, at now (expired at its
	// instant), in the future and zero (never).
	exp := []time.Time{past, now, future, {}}
	wantGone := []bool{true, true, false, false}

	for i, e := range exp {
		c := newAuthCode(fmt.Sprint("code", i), "c1", "u1")
		c.ExpiresAt = e
		mustCreateAuthCode(t, s, c)
		mustCreateSession(t, s, storage.Session{IDHash: fmt.Sprint("sess", i), UserID: "u1", CreatedAt: t0, ExpiresAt: e})
		// Each grant has an unexpired token, which goes with an expired
		// grant.
		g := newGrant(fmt.Sprint("grant", i), "c1", "u1")
		g.ExpiresAt = e
		mustCreateGrant(t, s, g)
		rt := newRefreshToken(fmt.Sprint("rt-live", i), g)
		rt.ExpiresAt = future
		mustCreateRefreshToken(t, s, rt)
		if err := s.UseOnce(ctx, fmt.Sprint("jti", i), e); err != nil {
			t.Fatalf("UseOnce(jti%d) = %v", i, err)
		}
	}
	// Tokens with each expiry, in the everlasting grant3.
	for i, e := range exp {
		rt := newRefreshToken(fmt.Sprint("rt", i), newGrant("grant3", "c1", "u1"))
		rt.ExpiresAt = e
		mustCreateRefreshToken(t, s, rt)
	}
	// A revoked but unexpired grant stays, so reuse of its tokens is
	// still recognised.
	revoked := newGrant("revoked", "c1", "u1")
	revoked.ExpiresAt = future
	mustCreateGrant(t, s, revoked)
	wantErr(t, `RevokeGrant("revoked")`, s.RevokeGrant(ctx, "revoked", t0), nil)

	// Throttle windows ending before, at and after now.
	for i, start := range []time.Time{at(-time.Hour), at(0), at(30 * time.Minute)} {
		if _, _, err := s.AddFailure(ctx, fmt.Sprint("thr", i), start, time.Hour); err != nil {
			t.Fatalf("AddFailure(thr%d) = %v", i, err)
		}
	}
	// Keys: k1 is retired by k2 until past (removable), k2 by k3 until
	// future (kept), k3 is active (kept).
	for _, k := range []struct {
		key         storage.SigningKey
		removeAfter time.Time
	}{
		{newKey("k1", at(-3*time.Hour)), time.Time{}}, // nothing to retire yet
		{newKey("k2", at(-2*time.Hour)), past},
		{newKey("k3", at(-time.Hour)), future},
	} {
		if err := s.RotateSigningKey(ctx, k.key, k.removeAfter); err != nil {
			t.Fatalf("RotateSigningKey(%q) = %v", k.key.ID, err)
		}
	}

	got, err := s.GarbageCollect(ctx, now)
	wantErr(t, "GarbageCollect(now)", err, nil)
	want := storage.GCResult{
		AuthCodes: 2,
		Sessions:  2,
		// rt0, rt1 by expiry; rt-live0, rt-live1 with their grants.
		RefreshTokens: 4,
		Grants:        2,
		Replay:        2,
		Throttle:      2,
		Keys:          1,
	}
	diff(t, "GarbageCollect(now)", got, want)

	for i := range exp {
		gone := wantGone[i]
		_, err := s.GetSession(ctx, fmt.Sprint("sess", i))
		wantFound(t, fmt.Sprintf("GetSession(sess%d)", i), err, !gone)
		_, err = s.GetGrant(ctx, fmt.Sprint("grant", i))
		wantFound(t, fmt.Sprintf("GetGrant(grant%d)", i), err, !gone)
		_, err = s.GetRefreshToken(ctx, fmt.Sprint("rt", i))
		wantFound(t, fmt.Sprintf("GetRefreshToken(rt%d)", i), err, !gone)
		_, err = s.GetRefreshToken(ctx, fmt.Sprint("rt-live", i))
		wantFound(t, fmt.Sprintf("GetRefreshToken(rt-live%d)", i), err, !gone)
		_, err = s.ConsumeAuthCode(ctx, fmt.Sprint("code", i), now)
		wantFound(t, fmt.Sprintf("ConsumeAuthCode(code%d)", i), err, !gone)
	}
	_, err = s.GetGrant(ctx, "revoked")
	wantFound(t, `GetGrant("revoked")`, err, true)
	if seen, _ := s.Seen(ctx, "jti2", t0); !seen {
		t.Errorf(`Seen("jti2") after GC = false, want true`)
	}
	if n, _, _ := s.Failures(ctx, "thr2", now); n != 1 {
		t.Errorf(`Failures("thr2") after GC = %d, want 1`, n)
	}
	keys, _ := s.ListSigningKeys(ctx)
	var ids []string
	for _, k := range keys {
		ids = append(ids, k.ID)
	}
	diff(t, "ListSigningKeys() IDs after GC", ids, []string{"k3", "k2"})

	got, err = s.GarbageCollect(ctx, now)
	wantErr(t, "GarbageCollect(now) again", err, nil)
	diff(t, "GarbageCollect(now) again", got, storage.GCResult{})
}

// ---- time zones -----------------------------------------------------------

func testTimezoneRoundTrip(t *testing.T, s storage.Store) {
	ctx := t.Context()
	// Odd offsets and sub-microsecond digits: what comes back must be
	// UTC and equal to the input truncated to microseconds.
	zones := []*time.Location{
		time.FixedZone("UTC+05:45", 5*3600+45*60),
		time.FixedZone("UTC-09:30", -(9*3600 + 30*60)),
	}
	in := []time.Time{
		time.Date(2025, 6, 30, 23, 59, 59, 999999999, zones[0]),
		time.Date(2024, 2, 29, 0, 0, 0, 123456789, zones[1]),
		time.Date(2031, 12, 31, 12, 0, 0, 1, zones[0]),
	}
	want := func(tm time.Time) time.Time { return tm.Truncate(time.Microsecond).UTC() }
	check := func(call string, got, sent time.Time) {
		t.Helper()
		if got.Location() != time.UTC || !got.Equal(want(sent)) {
			t.Errorf("%s = %v (%v), want %v (UTC)", call, got, got.Location(), want(sent))
		}
	}

	c := storage.Client{ID: "tz", CreatedAt: in[0], UpdatedAt: in[1], LastUsedAt: in[2], SecretExpiresAt: in[0]}
	wantErr(t, `CreateClient("tz")`, s.CreateClient(ctx, c), nil)
	gotC, err := s.GetClient(ctx, "tz")
	wantErr(t, `GetClient("tz")`, err, nil)
	check("GetClient().CreatedAt", gotC.CreatedAt, in[0])
	check("GetClient().UpdatedAt", gotC.UpdatedAt, in[1])
	check("GetClient().LastUsedAt", gotC.LastUsedAt, in[2])

	u := storage.User{ID: "tz", Username: "tz", CreatedAt: in[1]}
	wantErr(t, `CreateUser("tz")`, s.CreateUser(ctx, u), nil)
	gotU, _ := s.GetUser(ctx, "tz")
	check("GetUser().CreatedAt", gotU.CreatedAt, in[1])
	if !gotU.UpdatedAt.IsZero() {
		t.Errorf("GetUser().UpdatedAt = %v, want the zero time", gotU.UpdatedAt)
	}

	ss := storage.Session{IDHash: "tz", UserID: "tz", AuthTime: in[0], CreatedAt: in[1], ExpiresAt: in[2]}
	mustCreateSession(t, s, ss)
	gotS, _ := s.GetSession(ctx, "tz")
	check("GetSession().AuthTime", gotS.AuthTime, in[0])
	check("GetSession().ExpiresAt", gotS.ExpiresAt, in[2])

	code := newAuthCode("tz", "tz", "tz")
	code.CreatedAt, code.ExpiresAt = in[0], in[1]
	mustCreateAuthCode(t, s, code)
	gotCode, err := s.ConsumeAuthCode(ctx, "tz", in[2])
	wantErr(t, `ConsumeAuthCode("tz")`, err, nil)
	check("ConsumeAuthCode().ConsumedAt", gotCode.ConsumedAt, in[2])
	check("ConsumeAuthCode().ExpiresAt", gotCode.ExpiresAt, in[1])

	if err := s.AppendAudit(ctx, storage.AuditEvent{Time: in[0], Type: "tz"}); err != nil {
		t.Fatalf("AppendAudit() = %v", err)
	}
	// Query bounds in another zone select the same instant.
	evs, err := s.QueryAudit(ctx, storage.AuditQuery{Since: in[0].In(zones[1]).Truncate(time.Microsecond), Type: "tz"})
	if err != nil || len(evs) != 1 {
		t.Fatalf("QueryAudit(Since in another zone) = %d events, %v; want 1, nil", len(evs), err)
	}
	check("QueryAudit()[0].Time", evs[0].Time, in[0])

	k := newKey("tz", in[1])
	wantErr(t, `RotateSigningKey("tz")`, s.RotateSigningKey(ctx, k, in[2]), nil)
	k2 := newKey("tz2", in[2])
	wantErr(t, `RotateSigningKey("tz2")`, s.RotateSigningKey(ctx, k2, in[0]), nil)
	keys, _ := s.ListSigningKeys(ctx)
	if len(keys) != 2 {
		t.Fatalf("ListSigningKeys() = %d keys, want 2", len(keys))
	}
	check("ListSigningKeys()[1].RetiredAt", keys[1].RetiredAt, in[2])
	check("ListSigningKeys()[1].RemoveAfter", keys[1].RemoveAfter, in[0])

	n, reset, err := s.AddFailure(ctx, "tz", in[0], time.Hour)
	if err != nil || n != 1 {
		t.Fatalf("AddFailure() = %d, %v, want 1, nil", n, err)
	}
	check("AddFailure() resetAt", reset, in[0].Add(time.Hour))
}

func testPing(t *testing.T, s storage.Store) {
	wantErr(t, "Ping()", s.Ping(t.Context()), nil)
}

// testPasskeys: passkeys round-trip, are listed per user oldest first,
// an ID is unique across users, a user can rename and delete only their
// own, a reset keeps them and deleting the user deletes them.
func testPasskeys(t *testing.T, s storage.Store) {
	ctx := t.Context()
	mustCreateUser(t, s, "u1")
	mustCreateUser(t, s, "u2")
	p1 := storage.Passkey{
		ID: "cred-1", UserID: "u1", PublicKey: []byte{0xa5, 0x01, 0x02}, SignCount: 7,
		Transports: []string{"internal", "hybrid"}, AAGUID: make([]byte, 16),
		BackupEligible: true, BackupState: false, Name: "Laptop", CreatedAt: at(time.Minute),
	}
	p1.AAGUID[0] = 0xad
	p2 := storage.Passkey{ID: "cred-2", UserID: "u1", PublicKey: []byte{1}, CreatedAt: t0}
	p3 := storage.Passkey{ID: "cred-3", UserID: "u2", PublicKey: []byte{2}, CreatedAt: t0}
	for _, p := range []storage.Passkey{p1, p2, p3} {
		wantErr(t, "CreatePasskey("+p.ID+")", s.CreatePasskey(ctx, p), nil)
	}
	wantErr(t, "CreatePasskey(cred-1) for u2", s.CreatePasskey(ctx, storage.Passkey{ID: "cred-1", UserID: "u2", PublicKey: []byte{3}}), storage.ErrAlreadyExists)
	wantErr(t, "CreatePasskey(cred-9) for nope", s.CreatePasskey(ctx, storage.Passkey{ID: "cred-9", UserID: "nope", PublicKey: []byte{3}}), storage.ErrNotFound)

	got, err := s.GetPasskey(ctx, "cred-1")
	wantErr(t, "GetPasskey(cred-1)", err, nil)
	diff(t, "GetPasskey(cred-1)", got, p1)
	_, err = s.GetPasskey(ctx, "cred-9")
	wantErr(t, "GetPasskey(cred-9)", err, storage.ErrNotFound)
	list, err := s.ListPasskeys(ctx, "u1")
	wantErr(t, "ListPasskeys(u1)", err, nil)
	diff(t, "ListPasskeys(u1)", list, []storage.Passkey{p2, p1})

	wantErr(t, "UsePasskey(cred-1)", s.UsePasskey(ctx, "cred-1", 8, true, at(time.Hour)), nil)
	wantErr(t, "UsePasskey(cred-9)", s.UsePasskey(ctx, "cred-9", 1, false, at(time.Hour)), storage.ErrNotFound)
	p1.SignCount, p1.BackupState, p1.LastUsedAt = 8, true, at(time.Hour)
	got, _ = s.GetPasskey(ctx, "cred-1")
	diff(t, "GetPasskey(cred-1) after UsePasskey", got, p1)

	// Another user's passkey is neither renamed nor deleted.
	wantErr(t, "RenamePasskey(u2, cred-1)", s.RenamePasskey(ctx, "u2", "cred-1", "mine"), storage.ErrNotFound)
	wantErr(t, "DeletePasskey(u2, cred-1)", s.DeletePasskey(ctx, "u2", "cred-1"), storage.ErrNotFound)
	wantErr(t, "RenamePasskey(u1, cred-1)", s.RenamePasskey(ctx, "u1", "cred-1", "Phone"), nil)
	p1.Name = "Phone"
	got, _ = s.GetPasskey(ctx, "cred-1")
	diff(t, "GetPasskey(cred-1) after RenamePasskey", got, p1)

	if _, err := s.ResetUser(ctx, "u1", at(2*time.Hour), func(u storage.User) (storage.User, error) { return u, nil }); err != nil {
		t.Fatalf("ResetUser(u1) = %v", err)
	}
	list, _ = s.ListPasskeys(ctx, "u1")
	diff(t, "ListPasskeys(u1) after ResetUser", list, []storage.Passkey{p2, p1})

	wantErr(t, "DeletePasskey(u1, cred-2)", s.DeletePasskey(ctx, "u1", "cred-2"), nil)
	wantErr(t, "DeletePasskey(u1, cred-2) again", s.DeletePasskey(ctx, "u1", "cred-2"), storage.ErrNotFound)
	wantErr(t, "DeleteUser(u1)", s.DeleteUser(ctx, "u1"), nil)
	_, err = s.GetPasskey(ctx, "cred-1")
	wantErr(t, "GetPasskey(cred-1) after DeleteUser(u1)", err, storage.ErrNotFound)
	list, _ = s.ListPasskeys(ctx, "u2")
	diff(t, "ListPasskeys(u2)", list, []storage.Passkey{p3})
}
