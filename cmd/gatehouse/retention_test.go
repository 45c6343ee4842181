package main

import (
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-mcp/gatehouse/internal/config"
	"github.com/gatehouse-mcp/gatehouse/internal/storage"
	"github.com/gatehouse-mcp/gatehouse/internal/syncbuf"
)

// TestAuditRetentionGC (issue 11, item 8d): serve's garbage collection
// deletes audit events older than audit.retention, a backlog larger than
// one batch included, and keeps the rest; a negative retention keeps
// everything.
func TestAuditRetentionGC(t *testing.T) {
	now := time.Now().UTC().Truncate(time.Second)
	const old = 2*auditDeleteBatch + 500 // three batches
	for _, tt := range []struct {
		name      string
		retention time.Duration
		wantOld   int
		wantLog   string
	}{
		{"90 days", 2160 * time.Hour, 0, `msg="deleted audit events past audit.retention" count=2500 `},
		{"forever", -1, old, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ctx := t.Context()
			c := config.Default()
			c.Issuer = "https://as.example.com"
			c.Storage.SQLitePath = filepath.Join(t.TempDir(), "gatehouse.db")
			c.Keys.EncryptionKey = make([]byte, 32)
			c.Audit.Retention = config.Duration(tt.retention)
			if err := c.Validate(false); err != nil {
				t.Fatal(err)
			}
			st, err := openStore(ctx, c, false)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { st.Close() })
			logs := &syncbuf.Buffer{}
			srv, err := newServer(ctx, c, st, slog.New(slog.NewTextHandler(logs, nil)), false, false)
			if err != nil {
				t.Fatal(err)
			}
			cutoff := now.Add(-2160 * time.Hour)
			var es []storage.AuditEvent
			for range old {
				es = append(es, storage.AuditEvent{Time: cutoff.Add(-time.Hour), Type: "test.old", Outcome: "success"})
			}
			es = append(es,
				storage.AuditEvent{Time: cutoff, Type: "test.kept", Outcome: "success", Detail: "at the cutoff"},
				storage.AuditEvent{Time: now.Add(-time.Minute), Type: "test.kept", Outcome: "success", Detail: "recent"})
			if err := st.AppendAudits(ctx, es); err != nil {
				t.Fatal(err)
			}

			srv.collect(ctx, now)

			count := func(typ string) int {
				got, err := st.QueryAudit(ctx, storage.AuditQuery{Type: typ, Limit: 10 * old})
				if err != nil {
					t.Fatal(err)
				}
				return len(got)
			}
			if n := count("test.old"); n != tt.wantOld {
				t.Errorf("after GC with retention %v: %d old events, want %d", tt.retention, n, tt.wantOld)
			}
			if n := count("test.kept"); n != 2 {
				t.Errorf("after GC with retention %v: %d events at or after the cutoff, want 2", tt.retention, n)
			}
			if tt.wantLog != "" && !strings.Contains(logs.String(), tt.wantLog) {
				t.Errorf("log lacks %q:\n%s", tt.wantLog, logs.String())
			}
			if tt.wantLog == "" && strings.Contains(logs.String(), "deleted audit events") {
				t.Errorf("log reports a deletion with retention %v:\n%s", tt.retention, logs.String())
			}
		})
	}
}
