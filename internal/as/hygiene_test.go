package as

import (
	"encoding/json"
	"log/slog"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/gatehouse-mcp/gatehouse/internal/syncbuf"
)

// TestNoSecretsInLogs runs a full flow with failures at debug level and
// checks that no code, token, secret, password or cookie value appears in
// any log line (RS-14, AS-16).
func TestNoSecretsInLogs(t *testing.T) {
	var logs syncbuf.Buffer
	ts := newTestServer(t, func(o *Options) {
		o.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	})
	b := newBrowser(t)
	p := b.get(defaultAuth().url(ts.URL))
	p = ts.login(t, b, p, testUser, "wrong-password-"+testPassword)
	p = ts.login(t, b, p, testUser, testPassword)
	loc := location(t, ts.consent(t, b, p, "allow"))
	code := loc.Query().Get("code")
	_, _, body := ts.post(t, "/token", exchange(code), "", "")
	var tr tokenResponse
	must(t, json.Unmarshal([]byte(body), &tr))
	ts.post(t, "/token", exchange(code), "", "") // replay
	ts.post(t, "/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tr.RefreshToken}, "client_id": {publicClient}}, "", "")
	ts.post(t, "/token", url.Values{"grant_type": {"client_credentials"}, "resource": {testResource}}, confClient, "wrong-"+confSecret)
	ts.post(t, "/introspect", url.Values{"token": {tr.AccessToken}}, confClient, confSecret)
	ts.post(t, "/revoke", url.Values{"token": {tr.RefreshToken}, "client_id": {publicClient}}, "", "")

	u, _ := url.Parse(ts.URL)
	secrets := []string{code, tr.AccessToken, tr.RefreshToken, testPassword, confSecret, testVerifier}
	for _, c := range b.client.Jar.Cookies(u) {
		secrets = append(secrets, c.Value)
	}
	// The audit log must be as clean as the process log.
	events, err := ts.Store.QueryAudit(t.Context(), storageQueryAll())
	must(t, err)
	var audit strings.Builder
	for _, e := range events {
		audit.WriteString(e.Type + " " + e.Detail + " " + e.UserID + " " + e.ClientID + "\n")
	}
	for _, s := range secrets {
		if s == "" {
			continue
		}
		if strings.Contains(logs.String(), s) {
			t.Errorf("a secret (%d chars) appears in the log", len(s))
		}
		if strings.Contains(audit.String(), s) {
			t.Errorf("a secret (%d chars) appears in the audit log", len(s))
		}
	}
	if len(events) < 5 {
		t.Errorf("only %d audit events for a full flow", len(events))
	}
	// JWT-looking strings never reach the log at all.
	if regexp.MustCompile(`eyJ[A-Za-z0-9_-]{10,}\.`).MatchString(logs.String()) {
		t.Errorf("a JWT appears in the log")
	}
}
