package as

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/gatehouse-mcp/gatehouse/internal/storage"
	"github.com/gatehouse-mcp/gatehouse/internal/syncbuf"
)

// failingAudit is the test store with an audit log that fails while fail
// is set.
type failingAudit struct {
	storage.Store
	fail atomic.Bool
}

var errAuditDown = errors.New("audit store down")

func (f *failingAudit) AppendAudit(ctx context.Context, e storage.AuditEvent) error {
	return f.AppendAudits(ctx, []storage.AuditEvent{e})
}

func (f *failingAudit) AppendAudits(ctx context.Context, es []storage.AuditEvent) error {
	if f.fail.Load() {
		return errAuditDown
	}
	return f.Store.AppendAudits(ctx, es)
}

// TestAdversarialUnauditedIssuance (issue 20 F1): what a response hands
// out — a token, a code, a registered client's credentials — is handed
// out only once the audit log has it. With the audit log failing, each is
// refused with server_error (500) and its secret is not in the response;
// the refresh token rotated meanwhile is answered on the client's retry,
// audited then. Events that hand nothing out (a failed login) still do
// not fail their request, and are logged.
func TestAdversarialUnauditedIssuance(t *testing.T) {
	var store *failingAudit
	logs := &syncbuf.Buffer{}
	ts := newTestServer(t, func(o *Options) {
		store = &failingAudit{Store: o.Store}
		o.Store = store
		o.Logger = slog.New(slog.NewTextHandler(logs, nil))
		openRegistration(nil)(o)
	})
	refused := func(t *testing.T, what string, status int, body string, secrets ...string) {
		t.Helper()
		assertOAuthError(t, status, body, http.StatusInternalServerError, "server_error")
		for _, s := range secrets {
			if strings.Contains(body, s) {
				t.Errorf("%s with the audit log down = %d: the response hands out %s", what, status, s)
			}
		}
	}

	t.Run("client_credentials", func(t *testing.T) {
		store.fail.Store(true)
		defer store.fail.Store(false)
		status, _, body := ts.post(t, "/token", url.Values{"grant_type": {"client_credentials"}, "resource": {testResource}}, confClient, confSecret)
		refused(t, "client_credentials", status, body, "access_token")
	})
	t.Run("authorization_code", func(t *testing.T) {
		code := ts.code(t, defaultAuth())
		store.fail.Store(true)
		defer store.fail.Store(false)
		status, _, body := ts.post(t, "/token", exchange(code), "", "")
		refused(t, "the code exchange", status, body, "access_token", "refresh_token")
	})
	t.Run("refresh_token", func(t *testing.T) {
		rt := ts.refreshToken(t)
		form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}, "client_id": {publicClient}}
		store.fail.Store(true)
		status, _, body := ts.post(t, "/token", form, "", "")
		refused(t, "a refresh", status, body, "access_token", "refresh_token")
		store.fail.Store(false)
		// The rotation happened; the client's retry gets its answer now.
		if status, _, body := ts.post(t, "/token", form, "", ""); status != http.StatusOK || !strings.Contains(body, "refresh_token") {
			t.Errorf("the retry after the audit log is back = %d %s, want 200 with the tokens", status, body)
		}
		events, err := ts.Store.QueryAudit(t.Context(), storage.AuditQuery{Type: "refresh.retry"})
		if err != nil || len(events) != 1 {
			t.Errorf("refresh.retry events = %+v, %v; want the retry recorded", events, err)
		}
	})
	t.Run("code issued", func(t *testing.T) {
		store.fail.Store(true)
		defer store.fail.Store(false)
		b := newBrowser(t)
		p := ts.login(t, b, b.get(defaultAuth().url(ts.URL)), testUser, testPassword)
		if strings.Contains(p.body, `id="consent-form"`) {
			p = ts.consent(t, b, p, "allow")
		}
		if p.status != http.StatusInternalServerError || strings.Contains(p.header.Get("Location"), "code=") {
			t.Errorf("authorization with the audit log down = %d, Location %q; want 500 and no code", p.status, p.header.Get("Location"))
		}
	})
	t.Run("registration", func(t *testing.T) {
		store.fail.Store(true)
		defer store.fail.Store(false)
		r := ts.register(t, `{"redirect_uris":["https://app.example.com/cb"],"client_name":"Unaudited"}`)
		refused(t, "a registration", r.status, r.body, "client_id", "client_secret", "registration_access_token")
	})
	t.Run("failed login", func(t *testing.T) {
		store.fail.Store(true)
		defer store.fail.Store(false)
		b := newBrowser(t)
		p := ts.login(t, b, b.get(defaultAuth().url(ts.URL)), testUser, "wrong password")
		if p.status == http.StatusInternalServerError || !strings.Contains(p.body, `id="login-form"`) {
			t.Errorf("a failed login with the audit log down = %d, want the login form again", p.status)
		}
		if !strings.Contains(logs.String(), `msg="audit append failed" type=login.failure`) {
			t.Errorf("the log does not record the unaudited login failure:\n%s", logs.String())
		}
	})
}
