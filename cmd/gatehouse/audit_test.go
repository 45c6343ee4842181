package main

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-mcp/gatehouse/internal/as"
	"github.com/gatehouse-mcp/gatehouse/internal/gateway"
	"github.com/gatehouse-mcp/gatehouse/internal/storage"
)

// TestAuditQueryFilters runs `audit query` with the --type and --since
// forms an operator types, against events stored in a dev data directory.
func TestAuditQueryFilters(t *testing.T) {
	a := newAdminCLI(t)
	a.ok("client", "list") // creates the store
	now := time.Now().UTC()
	events := []storage.AuditEvent{
		{Time: now.Add(-72 * time.Hour), Type: "token.issued", ClientID: "old", Outcome: "success", Detail: "authorization_code"},
		{Time: now.Add(-time.Hour), Type: "token.revoked", ClientID: "c1", Outcome: "success"},
		{Time: now.Add(-time.Minute), Type: "login.failure", UserID: "u1", IP: "203.0.113.9", Outcome: "failure"},
		// No user, and a detail that looks like one: with empty fields
		// left out it must not pass for the user field.
		{Time: now.Add(-time.Second), Type: "client.auth_failure", Outcome: "failure", Detail: "user=root"},
	}
	a.store(func(st storage.Store) {
		for _, e := range events {
			if err := st.AppendAudit(t.Context(), e); err != nil {
				t.Fatal(err)
			}
		}
	})
	tomorrow := now.Add(24 * time.Hour).Format(time.DateOnly)
	for _, tt := range []struct {
		name    string
		args    []string
		want    []string // clients or users of the events printed, in order
		wantErr string
	}{
		{"category without dot", []string{"--type", "token"}, []string{"old", "c1"}, ""},
		{"category with dot", []string{"--type", "token."}, []string{"old", "c1"}, ""},
		{"exact type", []string{"--type", "token.revoked"}, []string{"c1"}, ""},
		{"unknown category", []string{"--type", "tokens"}, nil, `--type "tokens": no audit event has the category "tokens"; use a type such as token.issued or one of the categories authorize, client,`},
		{"unknown category of a type", []string{"--type", "tok.issued"}, nil, `no audit event has the category "tok"`},
		{"days", []string{"--since", "2d", "--type", "token"}, []string{"c1"}, ""},
		{"days and hours", []string{"--since", "3d1h", "--type", "token"}, []string{"old", "c1"}, ""},
		{"minutes", []string{"--since", "30m", "--type", "login"}, []string{"u1"}, ""},
		{"minutes, other type", []string{"--since", "30m", "--type", "token"}, nil, ""},
		{"date", []string{"--since", tomorrow}, nil, ""},
		{"old date", []string{"--since", "2000-01-01", "--type", "token"}, []string{"old", "c1"}, ""},
		{"rfc 3339", []string{"--since", now.Add(-2 * time.Hour).Format(time.RFC3339), "--type", "login"}, []string{"u1"}, ""},
		{"word", []string{"--since", "yesterday"}, nil, `--since "yesterday": want a duration ago (90m, 2h, 7d), a date (2026-12-01, midnight UTC) or an RFC 3339 time (2026-12-01T15:04:05Z)`},
		{"negative", []string{"--since", "-2h"}, nil, `--since "-2h": a duration must not be negative`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			out, err := a.run(append([]string{"audit", "query"}, tt.args...)...)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("audit query %s = %v, want an error containing %q", strings.Join(tt.args, " "), err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("audit query %s: %v", strings.Join(tt.args, " "), err)
			}
			var got []string
			for _, m := range regexp.MustCompile(`(?:client|user)=(\S+)`).FindAllStringSubmatch(out, -1) {
				got = append(got, m[1])
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("audit query %s printed %q, want %q:\n%s", strings.Join(tt.args, " "), got, tt.want, out)
			}
		})
	}

	// Empty fields are left out, the detail is a field of its own.
	out := a.ok("audit", "query", "--since", "4d")
	for _, want := range []string{
		" token.issued           outcome=success client=old detail=authorization_code\n",
		" token.revoked          outcome=success client=c1\n",
		" login.failure          outcome=failure user=u1 ip=203.0.113.9\n",
		" client.auth_failure    outcome=failure detail=\"user=root\"\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("audit query lacks the line %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "=\n") || strings.Contains(out, "= ") {
		t.Errorf("audit query prints an empty field:\n%s", out)
	}
}

// auditTypeLiteral finds the audit event types written in the source:
// Type: "category.name" in an AuditEvent literal.
var auditTypeLiteral = regexp.MustCompile(`AuditEvent\{[^}]*Type: *"([a-z_]+)\.[a-z_]+"`)

// TestAccountListsGatewayToolCalls: the account page's "last tool calls"
// reads the type the gateway writes.
func TestAccountListsGatewayToolCalls(t *testing.T) {
	if !slices.Contains(as.ToolCallEvents, gateway.AuditToolCall) {
		t.Errorf("as.ToolCallEvents = %q, want it to contain gateway.AuditToolCall %q", as.ToolCallEvents, gateway.AuditToolCall)
	}
}

// TestAuditCategories checks auditCategories, which `audit query --type`
// accepts, against the event types the code writes: a new category must be
// added there, or --type would refuse it.
func TestAuditCategories(t *testing.T) {
	found := map[string]bool{}
	for _, c := range []string{gateway.AuditToolCall, gateway.AuditToolResult, as.AuditDemoToolCall} {
		cat, _, _ := strings.Cut(c, ".")
		found[cat] = true
	}
	for _, dir := range []string{"../../internal", "."} {
		err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") || strings.Contains(path, "storagetest") {
				return err
			}
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			for _, m := range auditTypeLiteral.FindAllStringSubmatch(string(b), -1) {
				found[m[1]] = true
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	var cats []string
	for c := range found {
		cats = append(cats, c)
	}
	slices.Sort(cats)
	if len(cats) < 10 {
		t.Fatalf("found only the categories %q in the source: the pattern no longer matches how events are written", cats)
	}
	if !slices.Equal(cats, auditCategories) {
		t.Errorf("audit event categories in the source = %q, auditCategories = %q", cats, auditCategories)
	}
}
