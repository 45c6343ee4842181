package storage

import (
	"context"
	"errors"
	"time"
)

// Sentinel errors. Backends return these (possibly wrapped) so callers can
// use errors.Is without knowing the driver.
var (
	// ErrNotFound means no row matched the key.
	ErrNotFound = errors.New("storage: not found")
	// ErrAlreadyExists means a row with the same key exists.
	ErrAlreadyExists = errors.New("storage: already exists")
	// ErrConflict means a concurrent writer won; the operation may be retried.
	ErrConflict = errors.New("storage: conflict")
	// ErrConsumed means a single-use authorization code was already redeemed.
	// ConsumeAuthCode returns it together with the stored code, so the caller
	// can revoke the grant that the first redemption created.
	ErrConsumed = errors.New("storage: already consumed")
	// ErrTokenReused means a refresh token that was already rotated was
	// presented again. RotateRefreshToken returns it; the caller reads the
	// stored token (GetRefreshToken) to apply the retry window or revoke
	// the family.
	ErrTokenReused = errors.New("storage: refresh token reused")
)

// ClientOrigin says how a client came to exist.
type ClientOrigin string

// Client origins.
const (
	OriginStatic ClientOrigin = "static" // created by an operator (CLI or config)
	OriginDCR    ClientOrigin = "dcr"    // RFC 7591 dynamic registration
	OriginCIMD   ClientOrigin = "cimd"   // client ID metadata document
)

// Client is an OAuth client.
type Client struct {
	ID string
	// SecretHash is the SHA-256 of the client secret; empty for clients that
	// do not authenticate with a shared secret.
	SecretHash string
	// SecretExpiresAt is zero when the secret does not expire.
	SecretExpiresAt time.Time
	Name            string
	RedirectURIs    []string
	GrantTypes      []string
	ResponseTypes   []string
	// TokenEndpointAuthMethod is one of none, client_secret_basic,
	// client_secret_post, private_key_jwt.
	TokenEndpointAuthMethod string
	// Scopes the client may be granted; empty means any scope of the resource.
	Scopes          []string
	ApplicationType string // "web" or "native"
	// JWKS is a JSON Web Key Set document (RFC 7517) for private_key_jwt.
	JWKS    string
	JWKSURI string
	Origin  ClientOrigin
	// RegistrationTokenHash is the SHA-256 of the RFC 7592 registration
	// access token of a dynamic client.
	RegistrationTokenHash string
	// Metadata holds the client's registration metadata as JSON, including
	// fields the server does not interpret (kept, not rejected).
	Metadata   string
	CreatedAt  time.Time
	UpdatedAt  time.Time
	LastUsedAt time.Time // zero until the client first obtained a token
	TokenCount int64
	// ResetAt is when everything issued to the client was last revoked
	// (ResetClient sets it); zero if never. Access tokens issued
	// before it, or before CreatedAt, are void: the client they were
	// issued to is not this one any more.
	ResetAt time.Time
	// DPoPBound (dpop_bound_access_tokens, RFC 9449 §5.2) means the
	// client's token requests must carry a DPoP proof: it never gets a
	// bearer token.
	DPoPBound bool
}

// Clients stores OAuth clients.
type Clients interface {
	CreateClient(ctx context.Context, c Client) error
	GetClient(ctx context.Context, id string) (Client, error)
	ListClients(ctx context.Context) ([]Client, error)
	// CountClients returns how many clients of origin exist. Its cost does
	// not grow with the number of clients (the database keeps a count per
	// origin, updated with every insert and delete), so the registration
	// endpoints can check their caps on every new client.
	CountClients(ctx context.Context, origin ClientOrigin) (int, error)
	// UpdateClient loads the client, applies fn and stores the result in one
	// transaction. The ID cannot change. When the redirect URIs change, the
	// client's remembered consents are deleted in the same transaction: a
	// consent given while codes went to one place must not send them to
	// another without asking the user again.
	UpdateClient(ctx context.Context, id string, fn func(Client) (Client, error)) (Client, error)
	// ResetClient is UpdateClient that also deletes, in the same
	// transaction, everything issued to the client — codes, grants with
	// their refresh tokens, consents — as DeleteClient does, keeping the
	// client, and sets its ResetAt to t: for a change to where its codes go
	// or who can redeem them. (UpdateClient keeps ResetAt whatever fn
	// returns.)
	ResetClient(ctx context.Context, id string, t time.Time, fn func(Client) (Client, error)) (Client, error)
	// DeleteClient removes the client and everything issued to it
	// (codes, refresh tokens, consents).
	DeleteClient(ctx context.Context, id string) error
	// DeleteClientIf is DeleteClient that first runs check on the client,
	// in the same transaction, and deletes nothing when it fails (returning
	// its error): a delete decided on what was read earlier cannot remove
	// a client that changed meanwhile.
	DeleteClientIf(ctx context.Context, id string, check func(Client) error) error
	// TouchClient records that the client obtained a token at t.
	TouchClient(ctx context.Context, id string, t time.Time) error
}

// ClientBlock is an operator's ban on client ID metadata documents: one
// client id URL, or every document on a host and its subdomains. A blocked
// document is never fetched or used, so deleting its client is not undone
// by the client's next request.
type ClientBlock struct {
	// Target is a client id URL, or a host name when Host is set.
	Target string
	Host   bool
	// Reason is the operator's note, shown in `gatehouse client blocks`.
	Reason    string
	CreatedAt time.Time
}

// ClientBlocks stores operator bans of metadata-document clients.
type ClientBlocks interface {
	// PutClientBlock creates or replaces the block of b.Target.
	PutClientBlock(ctx context.Context, b ClientBlock) error
	// DeleteClientBlock lifts the block of target; ErrNotFound if none.
	DeleteClientBlock(ctx context.Context, target string) error
	// ListClientBlocks returns every block ordered by target.
	ListClientBlocks(ctx context.Context) ([]ClientBlock, error)
}

// User is a local user who can log in.
type User struct {
	ID           string
	Username     string
	PasswordHash string // PHC-formatted argon2id hash
	// Epoch counts the times everything the user held was revoked
	// (ResetUser: a password change, a revocation, disabling). A session
	// started in an earlier epoch is void, even one a sign-in racing the
	// revocation created after it.
	Epoch int64
	// DisabledAt is when the user was disabled; zero while enabled. A
	// disabled user cannot sign in.
	DisabledAt time.Time
	CreatedAt  time.Time
	UpdatedAt  time.Time
}

// Users stores local users.
type Users interface {
	CreateUser(ctx context.Context, u User) error
	GetUser(ctx context.Context, id string) (User, error)
	GetUserByName(ctx context.Context, username string) (User, error)
	ListUsers(ctx context.Context) ([]User, error)
	UpdateUser(ctx context.Context, id string, fn func(User) (User, error)) (User, error)
	// ResetUser applies fn like UpdateUser, advances the user's Epoch and,
	// in the same transaction, ends everything the user holds: sessions,
	// consents and codes are deleted, and every grant is revoked at t, so
	// refresh tokens stop working and access tokens introspect inactive.
	ResetUser(ctx context.Context, id string, t time.Time, fn func(User) (User, error)) (User, error)
	// DeleteUser removes the user with their sessions, consents, codes,
	// refresh tokens, groups, upstream claims, upstream identities and
	// passkeys.
	DeleteUser(ctx context.Context, id string) error
}

// SetPassword stores hash as the user's password and ends everything
// they held (ResetUser): whoever knew the old password loses their
// sessions, consents and grants too. `gatehouse user passwd` and the
// account page's password change both go through it. It returns the
// user as stored, with the new Epoch.
func SetPassword(ctx context.Context, users Users, userID, hash string, now time.Time) (User, error) {
	return users.ResetUser(ctx, userID, now, func(u User) (User, error) {
		u.PasswordHash, u.UpdatedAt = hash, now
		return u, nil
	})
}

// UserGroups stores the groups of users: plain names, which a resource's
// ScopePolicies may require for a scope. They come from two sources kept
// apart, so that neither erases the other: an operator adds and removes
// groups one at a time (`gatehouse user group add`), and an upstream
// OpenID provider's groups claim replaces the groups that provider gave
// at each sign-in there (SetUpstreamGroups). A user's groups are the
// union of both. Deleting a user deletes their groups of both sources; a
// reset (ResetUser) keeps them.
type UserGroups interface {
	// AddUserGroup puts the user userID in group at t. ErrAlreadyExists
	// if they are in it, ErrNotFound if there is no such user.
	AddUserGroup(ctx context.Context, userID, group string, t time.Time) error
	// RemoveUserGroup takes the user out of group, as AddUserGroup put
	// them in it; ErrNotFound if they were not (a group only a provider
	// gave is not removed: its next sign-in decides).
	RemoveUserGroup(ctx context.Context, userID, group string) error
	// SetUpstreamGroups replaces the groups provider gave the user userID
	// with groups (none: the provider gives none now), at t, in one
	// transaction; groups from other providers and from AddUserGroup are
	// untouched. Duplicates count once. ErrNotFound if there is no such
	// user.
	SetUpstreamGroups(ctx context.Context, userID, provider string, groups []string, t time.Time) error
	// ListUpstreamGroups returns the groups each provider gave the user,
	// by provider, each in name order; providers that gave none are
	// absent.
	ListUpstreamGroups(ctx context.Context, userID string) (map[string][]string, error)
	// ListUserGroups returns the user's groups from both sources, each
	// once, in name order (none for an unknown user): the groups a scope
	// policy sees.
	ListUserGroups(ctx context.Context, userID string) ([]string, error)
	// ListAllUserGroups returns every user's groups as ListUserGroups
	// does, by user id; users without a group are absent.
	ListAllUserGroups(ctx context.Context) (map[string][]string, error)
}

// UserClaims stores the claim values an upstream OpenID provider gave a
// user at their last sign-in there, for the claim conditions of scope
// policies (ScopePolicy.Claims): only the claims the provider is
// configured to keep, each as a list of strings. Each sign-in replaces
// what that provider gave before; other providers' values are untouched.
// Deleting a user deletes them; a reset (ResetUser) keeps them.
type UserClaims interface {
	// SetUpstreamClaims replaces the claims provider gave the user userID
	// with claims (name to values; none: the provider gives none now), at
	// t, in one transaction. Duplicate values count once. ErrNotFound if
	// there is no such user.
	SetUpstreamClaims(ctx context.Context, userID, provider string, claims map[string][]string, t time.Time) error
	// ListUserClaims returns the values every provider gave the user, by
	// claim name, each value once and in order (none for an unknown or
	// local user): the claims a scope policy sees.
	ListUserClaims(ctx context.Context, userID string) (map[string][]string, error)
}

// Passkey is a user's WebAuthn credential (issue 16 item 3): a
// discoverable credential ("passkey") the user signs in with instead of a
// password. DeleteUser deletes it with the user; a reset (ResetUser)
// keeps it, as a password change keeps the user's authenticator.
type Passkey struct {
	// ID is the credential ID, base64url without padding: what an
	// assertion's id field carries.
	ID     string
	UserID string
	// PublicKey is the credential's COSE-encoded public key.
	PublicKey []byte
	// SignCount is the authenticator's signature counter at the last
	// sign-in (0 for authenticators that keep none, as most passkeys).
	SignCount  uint32
	Transports []string
	AAGUID     []byte
	// BackupEligible and BackupState are the authenticator data's BE and
	// BS flags: BE never changes for a credential, BS may.
	BackupEligible bool
	BackupState    bool
	// Name is the user's label for it.
	Name       string
	CreatedAt  time.Time
	LastUsedAt time.Time // zero until first used to sign in
}

// Passkeys stores users' passkeys.
type Passkeys interface {
	// CreatePasskey stores p. ErrAlreadyExists if its ID is taken (by any
	// user), ErrNotFound if there is no user p.UserID.
	CreatePasskey(ctx context.Context, p Passkey) error
	// GetPasskey returns the passkey with credential ID id, whoever's it is.
	GetPasskey(ctx context.Context, id string) (Passkey, error)
	// ListPasskeys returns userID's passkeys, oldest first (none for an
	// unknown user).
	ListPasskeys(ctx context.Context, userID string) ([]Passkey, error)
	// UsePasskey records a sign-in with passkey id at t with the
	// authenticator's new signature counter and backup state.
	UsePasskey(ctx context.Context, id string, signCount uint32, backupState bool, t time.Time) error
	// RenamePasskey sets the name of userID's passkey id; ErrNotFound if
	// userID has no passkey id (another user's is not found either).
	RenamePasskey(ctx context.Context, userID, id, name string) error
	// DeletePasskey deletes userID's passkey id; ErrNotFound if userID has
	// no passkey id (another user's passkey is never deleted).
	DeletePasskey(ctx context.Context, userID, id string) error
}

// UpstreamIdentity ties an account at an upstream OpenID provider to a
// Gatehouse user: the provider's name (identity.providers[].name) and the
// provider's subject identify the person, never an email address (an
// email can be reassigned, or be unverified). DeleteUser deletes it with
// the user.
type UpstreamIdentity struct {
	Provider  string
	Subject   string
	UserID    string
	CreatedAt time.Time
}

// UpstreamIdentities stores the upstream identities of users provisioned
// by a sign-in at an upstream OpenID provider, and of local users an
// identity was linked to (link_by_verified_email).
type UpstreamIdentities interface {
	// CreateUpstreamUser creates u and the identity id (whose UserID is
	// u.ID) in one transaction: both or neither. ErrAlreadyExists if the
	// identity (Provider, Subject) is taken, or u's ID or username is:
	// a concurrent first sign-in of the same person then reads the
	// identity the other one made.
	CreateUpstreamUser(ctx context.Context, u User, id UpstreamIdentity) error
	// LinkUpstreamIdentity ties the identity id to the existing user
	// id.UserID (link_by_verified_email). ErrAlreadyExists if (Provider,
	// Subject) is taken or the user already has an identity at Provider,
	// checked in the same transaction as the insert; ErrNotFound if the
	// user does not exist.
	LinkUpstreamIdentity(ctx context.Context, id UpstreamIdentity) error
	// GetUpstreamIdentity returns the identity (provider, subject), or
	// ErrNotFound.
	GetUpstreamIdentity(ctx context.Context, provider, subject string) (UpstreamIdentity, error)
	// ListUpstreamIdentities returns every identity ordered by provider
	// and subject.
	ListUpstreamIdentities(ctx context.Context) ([]UpstreamIdentity, error)
}

// Scope describes one scope of a resource.
type Scope struct {
	Name        string   `json:"name"`
	Description string   `json:"description,omitempty"`
	Tools       []string `json:"tools,omitempty"` // MCP tools this scope unlocks
}

// ScopePolicy restricts who may be granted one scope of a resource. The
// zero policy restricts nothing. A policy is satisfied when its groups
// condition (if it has one) and every one of its claim conditions hold.
type ScopePolicy struct {
	// Groups (groups): the user must be in at least one of them. A token
	// without a user (client_credentials) is never in a group, so it never
	// gets a scope whose policy names groups.
	Groups []string `json:"groups,omitempty"`
	// Claims (claims) maps a claim name to its accepted values: for each
	// claim, the user's upstream provider must have given at least one of
	// the values at their last sign-in there (UserClaims). Local users,
	// and tokens without a user, have no claims, so a claim condition
	// always withholds the scope from them.
	Claims map[string][]string `json:"claims,omitempty"`
}

// Restricts reports whether the policy has any condition.
func (p ScopePolicy) Restricts() bool { return len(p.Groups) > 0 || len(p.Claims) > 0 }

// Resource is a protected resource (an MCP server) tokens can be issued for.
type Resource struct {
	// URL is the canonical resource URI (RFC 8707), the access-token audience.
	URL           string
	Name          string
	Scopes        []Scope
	DefaultScopes []string
	// AcceptClientCredentials says whether tokens without a user
	// (client_credentials) may be issued for the resource. False, the
	// default, means only a user's sign-in yields a token for it: a tool
	// that trusts the token's subject as a person never sees a machine.
	AcceptClientCredentials bool
	// ScopePolicies maps a scope name to who may be granted it; a scope
	// without an entry may be granted to anyone the client may get it for.
	// The authorization server checks it at every authorization and
	// every refresh.
	ScopePolicies map[string]ScopePolicy
	CreatedAt     time.Time
	UpdatedAt     time.Time
}

// Resources stores protected resources.
type Resources interface {
	// PutResource creates or replaces the resource with r.URL.
	PutResource(ctx context.Context, r Resource) error
	GetResource(ctx context.Context, url string) (Resource, error)
	ListResources(ctx context.Context) ([]Resource, error)
	DeleteResource(ctx context.Context, url string) error
}

// Session is a browser login session.
type Session struct {
	IDHash string // SHA-256 of the cookie value
	UserID string
	// UserEpoch is the user's Epoch when they signed in: the session is
	// void once the user's epoch moves on.
	UserEpoch int64
	AuthTime  time.Time
	CreatedAt time.Time
	ExpiresAt time.Time
}

// Sessions stores browser sessions.
type Sessions interface {
	CreateSession(ctx context.Context, s Session) error
	GetSession(ctx context.Context, idHash string) (Session, error)
	DeleteSession(ctx context.Context, idHash string) error
	// DeleteUserSessions deletes every session of userID except the one
	// whose IDHash is except ("" keeps none), and returns how many it
	// deleted: "sign out other sessions" on the account page.
	DeleteUserSessions(ctx context.Context, userID, except string) (int64, error)
}

// AuthCode is an issued authorization code.
type AuthCode struct {
	Hash                string // SHA-256 of the code
	ClientID            string
	UserID              string
	RedirectURI         string
	Scopes              []string
	Resource            string
	CodeChallenge       string
	CodeChallengeMethod string
	Nonce               string
	// GrantID names the grant (refresh-token family) that redeeming the code
	// creates, so a replay can revoke what the first redemption issued.
	GrantID    string
	AuthTime   time.Time
	CreatedAt  time.Time
	ExpiresAt  time.Time
	ConsumedAt time.Time // zero while unused
}

// AuthCodes stores authorization codes.
type AuthCodes interface {
	CreateAuthCode(ctx context.Context, c AuthCode) error
	// ConsumeAuthCode atomically marks the code used at now and returns it.
	// It returns ErrNotFound for an unknown code, and the stored code with
	// ErrConsumed when it was used before: exactly one of any number of
	// concurrent callers succeeds.
	ConsumeAuthCode(ctx context.Context, hash string, now time.Time) (AuthCode, error)
}

// Grant is what a user (or a client, for client credentials) granted a
// client: the family every refresh token and access token of one
// authorization descends from. Revoking it revokes all of them.
type Grant struct {
	ID       string
	ClientID string
	UserID   string // empty for client credentials
	// UserEpoch is the user's Epoch when the grant was made: once the
	// user's epoch moves on (ResetUser), the grant is void, even one made
	// by a request that raced the reset and committed after it.
	UserEpoch int64
	Resource  string
	Scopes    []string
	AuthTime  time.Time
	CreatedAt time.Time
	ExpiresAt time.Time // absolute lifetime of the family
	RevokedAt time.Time // zero while active
}

// RefreshToken is one member of a grant's rotation chain.
type RefreshToken struct {
	Hash      string // SHA-256 of the token
	GrantID   string
	ClientID  string
	UserID    string
	Scopes    []string
	Resource  string
	CreatedAt time.Time
	ExpiresAt time.Time
	// RotatedAt is zero while this is the family's current token.
	RotatedAt time.Time
	// Retry holds the response that rotating this token produced, sealed
	// with a key only the holder of this token can derive, so an identical
	// retry inside the window gets the identical answer without the server
	// keeping any token in clear.
	Retry []byte
	// RetryKey fingerprints the rotating request (client, scope, resource):
	// only an identical request is answered from Retry.
	RetryKey string
	// JKT is the JWK SHA-256 thumbprint (RFC 7638) of the DPoP key the
	// token is bound to (RFC 9449 §5), or "" for a token that is not
	// bound: a refresh needs a proof signed by that key.
	JKT string
}

// Grants stores grants and their refresh tokens.
type Grants interface {
	CreateGrant(ctx context.Context, g Grant) error
	GetGrant(ctx context.Context, id string) (Grant, error)
	// RevokeGrant marks the grant revoked at t. Revoking twice is not an
	// error; the first time stays recorded.
	RevokeGrant(ctx context.Context, id string, t time.Time) error
	// RevokeGrants revokes at t every active grant of userID to clientID at
	// resource (what withdrawing a consent must end) and returns how many
	// it revoked.
	RevokeGrants(ctx context.Context, userID, clientID, resource string, t time.Time) (int64, error)
	CreateRefreshToken(ctx context.Context, t RefreshToken) error
	GetRefreshToken(ctx context.Context, hash string) (RefreshToken, error)
	// RotateRefreshToken atomically marks the token oldHash rotated at
	// next.CreatedAt, stores retry and retryKey on it, and inserts next.
	// When oldHash was already rotated it changes nothing and returns
	// ErrTokenReused (the caller reads the rotated token with
	// GetRefreshToken); exactly one of any number of concurrent callers
	// succeeds. ErrNotFound for an unknown hash.
	RotateRefreshToken(ctx context.Context, oldHash string, next RefreshToken, retry []byte, retryKey string) error
	// ListUserGrants returns userID's grants that are neither revoked nor
	// expired at now, ordered by client, resource and id, each with when
	// it was last used. One user's live grants are few (one per client ×
	// resource × authorization kept), so the list is not paginated.
	ListUserGrants(ctx context.Context, userID string, now time.Time) ([]GrantUse, error)
}

// GrantUse is a grant and when its client last used it.
type GrantUse struct {
	Grant
	// LastUsed is the CreatedAt of the grant's newest refresh token: a
	// refresh token is made when the grant is and at each refresh, so
	// this is the last time the client redeemed the grant (its code or a
	// refresh token). Access-token use at resources is not recorded
	// here. Zero when the grant has no refresh token (no offline_access).
	LastUsed time.Time
}

// Consent records that a user allowed a client scopes at a resource.
type Consent struct {
	UserID   string
	ClientID string
	// UserEpoch is the user's Epoch when the consent was given; a consent
	// of an earlier epoch does not count.
	UserEpoch int64
	Resource  string
	Scopes    []string
	CreatedAt time.Time
	UpdatedAt time.Time
}

// Consents stores remembered consents, one per user × client × resource.
type Consents interface {
	// PutConsent creates or replaces the consent for (UserID, ClientID, Resource).
	PutConsent(ctx context.Context, c Consent) error
	GetConsent(ctx context.Context, userID, clientID, resource string) (Consent, error)
	ListConsents(ctx context.Context, userID string) ([]Consent, error)
	DeleteConsent(ctx context.Context, userID, clientID, resource string) error
}

// SigningKey is an access-token signing key.
type SigningKey struct {
	ID        string // kid
	Algorithm string // JOSE alg, e.g. ES256
	// PrivateKey is the private key, encrypted at rest by the token package.
	PrivateKey []byte
	// PublicJWK is the public key as a JSON Web Key.
	PublicJWK string
	CreatedAt time.Time
	// RetiredAt is zero for the active key. A retired key signs nothing but
	// stays published until RemoveAfter.
	RetiredAt   time.Time
	RemoveAfter time.Time
	// WithdrawnAt is when the key was withdrawn (Keys.WithdrawSigningKey),
	// zero if it was not. A withdrawn key is a tombstone: no PrivateKey,
	// never published, never used to sign or verify.
	WithdrawnAt time.Time
}

// ErrWithdrawn means the signing key was withdrawn already.
// WithdrawSigningKey returns it together with the stored tombstone.
var ErrWithdrawn = errors.New("storage: signing key already withdrawn")

// Keys stores signing keys.
type Keys interface {
	// ListSigningKeys returns every key, newest first.
	ListSigningKeys(ctx context.Context) ([]SigningKey, error)
	// RotateSigningKey retires every active key at next.CreatedAt (keeping
	// it published until removeAfter) and makes next the active key, in one
	// transaction.
	RotateSigningKey(ctx context.Context, next SigningKey, removeAfter time.Time) error
	// ResealSigningKeys replaces the PrivateKey of every key not withdrawn
	// with what reseal returns for it (the same key encrypted anew, under
	// another master key), in one transaction that no rotation can
	// interleave with, and returns how many keys it replaced. If reseal
	// fails for any key, nothing changes.
	ResealSigningKeys(ctx context.Context, reseal func(SigningKey) ([]byte, error)) (int, error)
	// WithdrawSigningKey withdraws key id at the time at, in one
	// transaction: the row becomes a tombstone with WithdrawnAt set and
	// its PrivateKey deleted, and keeps its other fields (so garbage
	// collection removes it at RemoveAfter, like any retired key). It
	// returns the tombstone. Only a retired key can be withdrawn: one that
	// is not retired signs (or is about to), and another key must take
	// over first, so it fails with an error wrapping ErrConflict. An
	// unknown id is ErrNotFound; a key withdrawn before is returned
	// unchanged with ErrWithdrawn.
	WithdrawSigningKey(ctx context.Context, id string, at time.Time) (SigningKey, error)
}

// Replay guards against reuse of one-time values such as the jti of a
// private_key_jwt client assertion or of a revoked access token.
type Replay interface {
	// UseOnce records key until expiresAt. It returns ErrAlreadyExists if
	// key was recorded before and has not expired.
	UseOnce(ctx context.Context, key string, expiresAt time.Time) error
	// Seen reports whether key is recorded and unexpired at now.
	Seen(ctx context.Context, key string, now time.Time) (bool, error)
}

// Throttle counts failures (logins, client authentication) per key.
type Throttle interface {
	// AddFailure counts a failure for key at now within a window that
	// starts at the first failure and lasts window; it returns the count in
	// the current window and when that window ends.
	AddFailure(ctx context.Context, key string, now time.Time, window time.Duration) (count int, resetAt time.Time, err error)
	// Failures returns the count for key in its window at now.
	Failures(ctx context.Context, key string, now time.Time) (count int, resetAt time.Time, err error)
	// ResetFailures forgets key.
	ResetFailures(ctx context.Context, key string) error
	// RemoveFailure takes one count back from key's current window (never
	// below zero): callers that count an attempt before checking it, so
	// parallel attempts cannot all pass the check, refund it on success.
	RemoveFailure(ctx context.Context, key string) error
}

// AuditEvent is one security-relevant event. It never contains a secret.
type AuditEvent struct {
	ID       int64 // assigned by the store
	Time     time.Time
	Type     string // e.g. login.success, token.issued, refresh.reuse
	UserID   string
	ClientID string
	Resource string
	IP       string
	Outcome  string // success, failure, denied, ...
	Detail   string
}

// AuditQuery filters audit events. Zero fields match everything.
type AuditQuery struct {
	Since    time.Time
	Until    time.Time
	Type     string // exact type, or a prefix ending in "." (e.g. "login.")
	UserID   string
	ClientID string
	AfterID  int64 // only events with ID > AfterID (for tailing)
	BeforeID int64 // only events with ID < BeforeID (keyset paging with Newest); 0 means no bound
	Limit    int   // 0 means 100
	// Newest returns the newest matching events, in descending ID order,
	// instead of the oldest in ascending order.
	Newest bool
}

// Audit stores the audit log.
type Audit interface {
	AppendAudit(ctx context.Context, e AuditEvent) error
	// AppendAudits appends events in one transaction, in order: all or
	// none. The server batches concurrent requests' events into one
	// commit (group commit) instead of one commit each. Text that is not
	// valid UTF-8, and NUL bytes, are stored as U+FFFD: an event never
	// fails for what a caller sent, which would fail its whole batch.
	AppendAudits(ctx context.Context, es []AuditEvent) error
	// QueryAudit returns matching events in ascending ID order, or the
	// newest first when q.Newest is set.
	QueryAudit(ctx context.Context, q AuditQuery) ([]AuditEvent, error)
	// DeleteAuditBefore deletes at most limit (> 0) events whose Time is
	// before before, in one transaction, and returns how many it deleted.
	// The limit bounds how long a deletion holds its locks: a caller with
	// a backlog calls it until it deletes fewer than limit.
	DeleteAuditBefore(ctx context.Context, before time.Time, limit int) (int64, error)
}

// GCResult counts what GarbageCollect removed.
type GCResult struct {
	AuthCodes     int64
	Sessions      int64
	RefreshTokens int64
	Grants        int64
	Replay        int64
	Throttle      int64
	Keys          int64
}

// Store is everything the authorization server keeps.
type Store interface {
	Clients
	ClientBlocks
	Users
	UserGroups
	UserClaims
	UpstreamIdentities
	Passkeys
	Resources
	Sessions
	AuthCodes
	Grants
	Consents
	Keys
	Replay
	Throttle
	Audit
	// GarbageCollect deletes rows that expired before now: codes, sessions, refresh tokens and grants past their expiry, replay
	// and throttle entries, and retired keys past RemoveAfter.
	GarbageCollect(ctx context.Context, now time.Time) (GCResult, error)
	// Ping checks that the store is reachable.
	Ping(ctx context.Context) error
	Close() error
}
