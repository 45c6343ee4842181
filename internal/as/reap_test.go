package as

import (
	"encoding/json"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-mcp/gatehouse/internal/storage"
)

// TestReap: unused dynamic clients go after UnusedTTL, idle ones after
// IdleTTL, taking their tokens with them; clients in use and static
// clients stay.
func TestReap(t *testing.T) {
	ts := newTestServer(t, openRegistration(func(r *Registration) {
		r.UnusedTTL, r.IdleTTL = 24*time.Hour, 48*time.Hour
	}))
	ctx := t.Context()
	unused := ts.mustRegister(t, cursorMetadata).str("client_id")
	reregistered := ts.mustRegister(t, `{"client_name":"Again","redirect_uris":["http://127.0.0.1/cb"],"token_endpoint_auth_method":"none"}`).str("client_id")
	used := ts.mustRegister(t, sdkMetadata).str("client_id")
	a := defaultAuth()
	a.clientID = used
	form := exchange(ts.code(t, a))
	form.Set("client_id", used)
	s, _, body := ts.post(t, "/token", form, "", "")
	if s != 200 {
		t.Fatal(body)
	}
	var tr tokenResponse
	must(t, json.Unmarshal([]byte(body), &tr))
	refresh := func() (int, string) {
		s, _, b := ts.post(t, "/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tr.RefreshToken}, "client_id": {used}}, "", "")
		if s == 200 {
			must(t, json.Unmarshal([]byte(b), &tr))
		}
		return s, b
	}
	exists := func(id string) bool {
		_, err := ts.Store.GetClient(ctx, id)
		return err == nil
	}

	ts.Clock.Advance(23 * time.Hour)
	ts.mustRegister(t, `{"client_name":"Again","redirect_uris":["http://127.0.0.1/cb"],"token_endpoint_auth_method":"none"}`)
	ts.Clock.Advance(2 * time.Hour) // t = 25h
	n, err := ts.Reap(ctx, ts.Clock.Now())
	must(t, err)
	if n != 1 || exists(unused) || !exists(reregistered) || !exists(used) {
		t.Fatalf("reap at 25h deleted %d; unused=%v reregistered=%v used=%v; want only the unused client gone", n, exists(unused), exists(reregistered), exists(used))
	}
	if s, b := refresh(); s != 200 { // in use at 25h
		t.Fatalf("refresh = %d %s", s, b)
	}
	ts.Clock.Advance(47 * time.Hour) // 47h after its last token
	n, err = ts.Reap(ctx, ts.Clock.Now())
	must(t, err)
	if !exists(used) || exists(reregistered) || n != 1 {
		t.Fatalf("reap at 72h: deleted %d, used=%v reregistered=%v", n, exists(used), exists(reregistered))
	}
	ts.Clock.Advance(2 * time.Hour) // 49h idle
	if n, err = ts.Reap(ctx, ts.Clock.Now()); err != nil || n != 1 || exists(used) {
		t.Fatalf("reap at 74h: %d, %v; the idle client should be gone", n, err)
	}
	if s, b := refresh(); s != 401 || !strings.Contains(b, "invalid_client") {
		t.Fatalf("refresh with a reaped client's token = %d %s, want 401 invalid_client", s, b)
	}
	for _, id := range []string{publicClient, confClient, webClient} {
		if !exists(id) {
			t.Errorf("static client %s was reaped", id)
		}
	}
	events, err := ts.Store.QueryAudit(ctx, storage.AuditQuery{Type: "client.reaped"})
	must(t, err)
	if len(events) != 3 {
		t.Errorf("%d client.reaped audit events, want 3", len(events))
	}
}
