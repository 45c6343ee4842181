package gateway

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/gatehouse-mcp/gatehouse/internal/storage"
	"github.com/gatehouse-mcp/gatehouse/rs"
)

// machineVerifier accepts the test tokens and "svc", a machine token: a
// client's own (client_credentials), whose subject is the client id.
func machineVerifier(resource string) (rs.Verifier, error) {
	users, _ := testVerifier(resource)
	return rs.VerifierFunc(func(ctx context.Context, token string) (*rs.TokenInfo, error) {
		if token == "svc" {
			return &rs.TokenInfo{Subject: "svc-client", ClientID: "svc-client", Scopes: []string{"fake:read", "fake:admin"}}, nil
		}
		return users.Verify(ctx, token)
	}), nil
}

// TestMachineTokens (issue 11 F1): a route refuses machine tokens unless it
// accepts client credentials, so nobody reaches the upstream (and its
// static credential) without a user; a route that accepts them says so in
// its registered resource, and audits the call as the client's, with no
// user.
func TestMachineTokens(t *testing.T) {
	up, _ := newUpstream(t, true)
	users := httpRoute(up.URL)
	machines := httpRoute(up.URL)
	machines.Name, machines.URL, machines.AcceptClientCredentials = "machines", "/machines/mcp", true
	tg := newTestGateway(t, []Route{users, machines}, func(o *Options) { o.NewVerifier = machineVerifier })

	c := newRawClient(t, tg.base+"/up/mcp", "svc")
	resp, _ := c.post(`{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}`)
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(resp.Header.Get("WWW-Authenticate"), `error="invalid_token"`) ||
		!strings.Contains(resp.Header.Get("WWW-Authenticate"), "does not accept tokens issued without a user") {
		t.Errorf("machine token on a users-only route = %d %q, want 401 invalid_token naming the rule", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
	user := newRawClient(t, tg.base+"/up/mcp", "alice-read")
	user.initialize()
	if s, r := user.callTool("echo", map[string]any{"message": "hi"}); s != http.StatusOK || r.Error != nil {
		t.Errorf("a user's call = %d %+v", s, r.Error)
	}

	m := newRawClient(t, tg.base+"/machines/mcp", "svc")
	m.initialize()
	if s, r := m.callTool("echo", map[string]any{"message": "hi"}); s != http.StatusOK || r.Error != nil {
		t.Fatalf("machine call on a route that accepts them = %d %+v", s, r.Error)
	}
	for _, res := range tg.Resources(nil) {
		if want := strings.HasSuffix(res.URL, "/machines/mcp"); res.AcceptClientCredentials != want {
			t.Errorf("resource %s AcceptClientCredentials = %v, want %v", res.URL, res.AcceptClientCredentials, want)
		}
	}
	tg.Close()
	events, err := tg.store.QueryAudit(t.Context(), storage.AuditQuery{Type: AuditToolCall})
	if err != nil {
		t.Fatal(err)
	}
	var saw bool
	for _, e := range events {
		if e.ClientID != "svc-client" {
			continue
		}
		saw = true
		if e.UserID != "" || !strings.HasPrefix(e.Detail, "principal=client ") {
			t.Errorf("machine call audited as %+v, want no user and detail principal=client", e)
		}
	}
	if !saw {
		t.Errorf("no audit event for the machine call in %+v", events)
	}
}
