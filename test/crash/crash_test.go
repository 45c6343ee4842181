package crash

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"sync"
	"testing"
	"time"
)

func TestMain(m *testing.M) {
	code := m.Run()
	StopPostgres()
	os.Exit(code)
}

// Load shape: bounded in time and in goroutines.
const (
	loadFor          = 2 * time.Second
	clientCredLoops  = 3
	codeFlowLoops    = 3
	refreshLoops     = 2
	retryWindow      = time.Second // tokens.refresh_retry_window
	maxIntrospection = 400         // tokens checked by introspection (all are checked against the JWKS)
)

// codeRec is an authorization code the client obtained.
type codeRec struct {
	code, verifier string
	redeemed       bool // a 200 token response for it was received
	inflight       bool // its redemption was sent and not answered when the server died
	family         *family
}

// family is one refresh-token family, in the order the client received
// its tokens.
type family struct {
	rts      []string
	inflight string // the token presented in a request that was not answered
}

// ledger is everything the load's client side received.
type ledger struct {
	mu       sync.Mutex
	access   []string
	codes    []*codeRec
	families []*family
	errs     []error // answers that are wrong while the server is healthy
}

func (l *ledger) addAccess(tok string) { l.mu.Lock(); l.access = append(l.access, tok); l.mu.Unlock() }

func (l *ledger) fail(err error) { l.mu.Lock(); l.errs = append(l.errs, err); l.mu.Unlock() }

// transport reports whether err is a transport error (the server died),
// as opposed to an answer.
func transport(err error) bool {
	var oe *OAuthError
	return err != nil && !errors.As(err, &oe)
}

// TestCrashRecovery kills `gatehouse serve` with SIGKILL in the middle of
// bounded load (client credentials, code flows through the login and
// consent forms, refresh rotations), restarts it on the same database and
// checks that the server kept every promise it made to its clients.
func TestCrashRecovery(t *testing.T) {
	bin := BuildBinary(t)
	t.Run("sqlite", func(t *testing.T) {
		crashRecovery(t, bin, Backend{Driver: "sqlite"})
	})
	t.Run("postgres", func(t *testing.T) {
		crashRecovery(t, bin, Backend{Driver: "postgres", DSN: PostgresDSN(t)})
	})
}

func crashRecovery(t *testing.T, bin string, b Backend) {
	addr := FreeAddr(t)
	issuer := "http://" + addr
	d := NewDeployment(t, bin, b, issuer, fmt.Sprintf("tokens:\n  refresh_retry_window: %s\n", retryWindow))
	d.Setup()
	proc := d.Start(addr, b.Driver == "postgres")

	var l ledger
	// Two families to rotate, made before the load starts.
	for range refreshLoops {
		c := NewClient(issuer, proc.URL)
		v := Verifier()
		code, err := c.Authorize(v)
		if err != nil {
			t.Fatal(err)
		}
		tr, err := c.Token(ExchangeForm(code, v), "", "")
		if err != nil {
			t.Fatal(err)
		}
		l.addAccess(tr.AccessToken)
		l.families = append(l.families, &family{rts: []string{tr.RefreshToken}})
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	for range clientCredLoops {
		wg.Go(func() {
			c := NewClient(issuer, proc.URL)
			for ctx.Err() == nil {
				tr, err := c.ClientCredentials(d.ServiceSecret)
				if transport(err) {
					return
				}
				if err != nil {
					l.fail(fmt.Errorf("client_credentials: %w", err))
					return
				}
				l.addAccess(tr.AccessToken)
			}
		})
	}
	for range codeFlowLoops {
		wg.Go(func() {
			c := NewClient(issuer, proc.URL)
			for ctx.Err() == nil {
				v := Verifier()
				code, err := c.Authorize(v)
				if err != nil {
					if !transport(err) && ctx.Err() == nil {
						l.fail(fmt.Errorf("authorize: %w", err))
					}
					return
				}
				rec := &codeRec{code: code, verifier: v, inflight: true}
				l.mu.Lock()
				l.codes = append(l.codes, rec)
				l.mu.Unlock()
				tr, err := c.Token(ExchangeForm(code, v), "", "")
				if transport(err) {
					return
				}
				l.mu.Lock()
				rec.inflight = false
				if err == nil {
					rec.redeemed = true
					rec.family = &family{rts: []string{tr.RefreshToken}}
					l.families = append(l.families, rec.family)
					l.access = append(l.access, tr.AccessToken)
				}
				l.mu.Unlock()
				if err != nil {
					l.fail(fmt.Errorf("code exchange: %w", err))
					return
				}
			}
		})
	}
	for i := range refreshLoops {
		f := l.families[i]
		wg.Go(func() {
			c := NewClient(issuer, proc.URL)
			for ctx.Err() == nil {
				l.mu.Lock()
				rt := f.rts[len(f.rts)-1]
				f.inflight = rt
				l.mu.Unlock()
				tr, err := c.Token(RefreshForm(rt), "", "")
				if transport(err) {
					return
				}
				l.mu.Lock()
				f.inflight = ""
				if err == nil {
					f.rts = append(f.rts, tr.RefreshToken)
					l.access = append(l.access, tr.AccessToken)
				}
				l.mu.Unlock()
				if err != nil {
					l.fail(fmt.Errorf("refresh: %w", err))
					return
				}
			}
		})
	}

	time.Sleep(loadFor)
	proc.Kill()
	killedAt := time.Now()
	cancel()
	wg.Wait()
	for _, err := range l.errs {
		t.Errorf("under load, before the kill: %v", err)
	}
	inflight := 0
	for _, f := range l.families {
		if f.inflight != "" {
			inflight++
		}
	}
	for _, c := range l.codes {
		if c.inflight {
			inflight++
		}
	}
	t.Logf("received %d access tokens, %d codes, %d refresh families (%d rotations); %d code/refresh requests in flight at SIGKILL",
		len(l.access), len(l.codes), len(l.families), rotations(l.families), inflight)

	if b.Driver == "sqlite" {
		SQLiteIntegrity(t, d.SQLitePath())
	}
	// Let the refresh retry window pass, so a rotated token presented
	// again is a reuse, not a retry.
	time.Sleep(time.Until(killedAt.Add(retryWindow + 500*time.Millisecond)))
	proc = d.Start(addr, b.Driver == "postgres")
	c := NewClient(issuer, proc.URL)

	checkAccessTokens(t, c, d.ServiceSecret, l.access)
	checkFamilies(t, c, l.families)
	checkCodes(t, c, l.codes)

	proc.Stop()
	if b.Driver == "sqlite" {
		SQLiteIntegrity(t, d.SQLitePath())
	}
}

func rotations(fs []*family) int {
	n := 0
	for _, f := range fs {
		n += len(f.rts) - 1
	}
	return n
}

// checkAccessTokens: every access token received verifies against the
// JWKS served after the restart, and introspection reports it active
// (nothing was revoked before this check).
func checkAccessTokens(t *testing.T, c *Client, secret string, tokens []string) {
	t.Helper()
	set, err := c.JWKS()
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	bad := 0
	for _, tok := range tokens {
		if _, err := VerifyAccessToken(tok, set, c.Issuer, now); err != nil {
			if bad++; bad <= 5 {
				t.Errorf("an access token received before the crash does not verify after it: %v", err)
			}
		}
	}
	step := max(1, len(tokens)/maxIntrospection)
	inactive := 0
	for i := 0; i < len(tokens); i += step {
		active, err := c.Introspect(secret, tokens[i])
		if err != nil {
			t.Fatalf("introspect: %v", err)
		}
		if !active {
			inactive++
		}
	}
	if bad > 0 || inactive > 0 {
		t.Errorf("of %d access tokens received before the crash, %d fail JWKS verification and %d (of those introspected) are inactive; want all valid", len(tokens), bad, inactive)
	}
}

// checkFamilies: the newest refresh token the client received for each
// family works, unless a request presenting it was in flight at the kill
// (then the lost answer may have rotated it, and it is refused); the one
// before it was rotated and is refused, which revokes the family.
func checkFamilies(t *testing.T, c *Client, fams []*family) {
	t.Helper()
	for i, f := range fams {
		newest := f.rts[len(f.rts)-1]
		tr, err := c.Token(RefreshForm(newest), "", "")
		var next string
		switch {
		case err == nil:
			next = tr.RefreshToken
		case IsOAuthError(err, http.StatusBadRequest, "invalid_grant") && f.inflight == newest:
			// The rotation committed but its answer was lost with the process.
		default:
			t.Errorf("family %d: the newest refresh token received (not in flight at the kill) = %v, want it to work", i, err)
		}
		if len(f.rts) < 2 {
			continue
		}
		prev := f.rts[len(f.rts)-2]
		if _, err := c.Token(RefreshForm(prev), "", ""); !IsOAuthError(err, http.StatusBadRequest, "invalid_grant") {
			t.Errorf("family %d: a refresh token rotated before the crash = %v, want 400 invalid_grant", i, err)
		}
		if next != "" {
			if _, err := c.Token(RefreshForm(next), "", ""); !IsOAuthError(err, http.StatusBadRequest, "invalid_grant") {
				t.Errorf("family %d: after the reuse of a rotated token the family's newest token = %v, want 400 invalid_grant (family revoked)", i, err)
			}
		}
	}
}

// checkCodes: no code is redeemable twice. A code redeemed before the kill
// is refused; one whose redemption was lost or never sent redeems at most
// once.
func checkCodes(t *testing.T, c *Client, codes []*codeRec) {
	t.Helper()
	for i, rec := range codes {
		successes := 0
		tries := 2
		if rec.redeemed {
			tries = 1
		}
		for range tries {
			_, err := c.Token(ExchangeForm(rec.code, rec.verifier), "", "")
			switch {
			case err == nil:
				successes++
			case IsOAuthError(err, http.StatusBadRequest, "invalid_grant"):
			default:
				t.Errorf("code %d: redemption after restart = %v", i, err)
			}
		}
		if rec.redeemed && successes > 0 {
			t.Errorf("code %d: redeemed before the crash and again after it", i)
		}
		if successes > 1 {
			t.Errorf("code %d: redeemed %d times after the restart", i, successes)
		}
	}
}
