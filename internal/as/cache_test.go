package as

import (
	"net/url"
	"sync"
	"testing"

	"github.com/gatehouse-mcp/gatehouse/internal/storage"
)

// TestClientCacheBound: a client deleted by another process (the CLI, a
// replica) stops authenticating within cacheTTL, however warm the cache.
func TestClientCacheBound(t *testing.T) {
	ts := newTestServer(t, nil)
	cc := url.Values{"grant_type": {"client_credentials"}, "resource": {testResource}}
	if s, _, b := ts.post(t, "/token", cc, confClient, confSecret); s != 200 {
		t.Fatalf("token = %d %s", s, b)
	}
	must(t, ts.Store.DeleteClient(t.Context(), confClient))
	ts.Clock.Advance(cacheTTL)
	s, _, b := ts.post(t, "/token", cc, confClient, confSecret)
	assertOAuthError(t, s, b, 401, "invalid_client")
}

// TestAuditGroupCommit: concurrent requests' audit events are all
// committed (in shared batches), none lost.
func TestAuditGroupCommit(t *testing.T) {
	ts := newTestServer(t, nil)
	cc := url.Values{"grant_type": {"client_credentials"}, "resource": {testResource}}
	const n = 24
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			if s, _, b := ts.post(t, "/token", cc, confClient, confSecret); s != 200 {
				t.Errorf("token = %d %s", s, b)
			}
		})
	}
	wg.Wait()
	events, err := ts.Store.QueryAudit(t.Context(), storage.AuditQuery{Type: "token.issued", Limit: 1000})
	must(t, err)
	if len(events) != n {
		t.Errorf("%d token.issued audit events for %d concurrent tokens", len(events), n)
	}
}
