package main

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gatehouse-mcp/gatehouse/internal/config"
)

// TestAdminMetrics: the admin handler serves Prometheus metrics that count
// public requests by route and token requests by grant type and outcome,
// and a health check; the public handler serves neither.
func TestAdminMetrics(t *testing.T) {
	ctx := t.Context()
	c := config.Default()
	c.Issuer = "https://as.example.com"
	c.Storage.SQLitePath = filepath.Join(t.TempDir(), "gatehouse.db")
	c.Keys.EncryptionKey = make([]byte, 32)
	st, err := openStore(ctx, c, false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	srv, err := newServer(ctx, c, st, slog.New(slog.DiscardHandler), false, false)
	if err != nil {
		t.Fatal(err)
	}
	do := func(h http.Handler, method, target, body string) (int, string) {
		req := httptest.NewRequest(method, target, strings.NewReader(body))
		if body != "" {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		b, _ := io.ReadAll(rec.Result().Body)
		return rec.Code, string(b)
	}
	do(srv.handler, "GET", "/.well-known/oauth-authorization-server", "")
	do(srv.handler, "POST", "/token", "grant_type=client_credentials&client_id=nobody")
	// Made-up methods share one label value: a client cannot add series.
	do(srv.handler, "EVIL-1", "/token", "")
	do(srv.handler, "EVIL-2", "/token", "")
	code, body := do(srv.admin, "GET", "/metrics", "")
	if code != 200 {
		t.Fatalf("GET /metrics = %d", code)
	}
	for _, want := range []string{
		`gatehouse_http_requests_total{code="200",method="GET",route="/.well-known/oauth-authorization-server"} 1`,
		`gatehouse_token_requests_total{grant_type="client_credentials",outcome="invalid_client"} 1`,
		`gatehouse_http_request_duration_seconds_bucket`,
		`process_resident_memory_bytes`,
		`gatehouse_http_requests_total{code="405",method="other",route="/token"} 2`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if strings.Contains(body, "EVIL") {
		t.Error("/metrics has a series for a made-up method")
	}
	if code, body := do(srv.admin, "GET", "/healthz", ""); code != 200 || body != "ok\n" {
		t.Errorf("GET /healthz = %d %q", code, body)
	}
	if code, _ := do(srv.handler, "GET", "/metrics", ""); code == 200 {
		t.Errorf("the public listener serves /metrics")
	}
}
