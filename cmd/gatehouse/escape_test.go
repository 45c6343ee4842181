package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-mcp/gatehouse/internal/safetext"
	"github.com/gatehouse-mcp/gatehouse/internal/storage"
)

// hostile is text an outsider can get stored (a client name, a metadata
// document URL, a username from an upstream provider, an audit detail):
// a bidi override, a zero-width joiner, a line separator, C1 controls, an
// ANSI escape sequence, DEL, a newline and a tab.
const hostile = "Evil\u202eedoC\u200d\u2028second line\u0085\u009b2J\x1b[31mred\x7f\nthird\tline\\"

// escapedHostile is hostile as the CLI must print it.
const escapedHostile = `Evil\u202eedoC\u200d\u2028second line\u0085\u009b2J\u001b[31mred\u007f\u000athird\u0009line\\`

// TestCLIEscapesStoredText (issue 20 F6): `client list`, `client show`,
// `audit query`, `user list` and `resource list` print stored text that
// outsiders influence escaped, one record per line: nothing reaches the
// terminal that moves the cursor, starts a line, reorders or hides text.
func TestCLIEscapesStoredText(t *testing.T) {
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	data := newDevData(t)
	c, err := devConfig(data, "127.0.0.1:8080", true)
	must(err)
	st, err := openStore(t.Context(), c, false)
	must(err)
	now := time.Now()
	id := "https://evil.example/\u202ecimd"
	must(st.CreateClient(t.Context(), storage.Client{
		ID: id, Name: hostile, RedirectURIs: []string{"https://evil.example/cb\u2066"}, GrantTypes: []string{"authorization_code"},
		ResponseTypes: []string{"code"}, TokenEndpointAuthMethod: "none", ApplicationType: "native", Origin: storage.OriginCIMD,
		Metadata: "{}", CreatedAt: now, UpdatedAt: now,
	}))
	must(st.CreateUser(t.Context(), storage.User{ID: "u1", Username: hostile, PasswordHash: "x", CreatedAt: now, UpdatedAt: now}))
	must(st.PutResource(t.Context(), storage.Resource{URL: "https://mcp.example.com", Name: hostile, CreatedAt: now, UpdatedAt: now}))
	must(st.AppendAudit(t.Context(), storage.AuditEvent{
		Time: now, Type: "client.cimd_registered", UserID: "u1 outcome=success", ClientID: id, Resource: "https://mcp.example.com",
		IP: "203.0.113.9\u2028forged", Outcome: "success", Detail: hostile,
	}))
	st.Close()

	run1 := func(args ...string) string {
		t.Helper()
		var out bytes.Buffer
		if err := run(t.Context(), append(args, "--data", data), &out); err != nil {
			t.Fatalf("gatehouse %s: %v\n%s", strings.Join(args, " "), err, out.String())
		}
		for _, r := range out.String() {
			if r != '\n' && !safetext.Shown(r) {
				t.Errorf("gatehouse %s printed %U:\n%s", strings.Join(args, " "), r, out.String())
				break
			}
		}
		return out.String()
	}
	for _, tt := range []struct {
		args  []string
		lines int // header included
		want  []string
	}{
		{[]string{"client", "list"}, 2, []string{`https://evil.example/\u202ecimd`, escapedHostile}},
		{[]string{"user", "list"}, 2, []string{escapedHostile}},
		{[]string{"resource", "list"}, 2, []string{escapedHostile}},
		{[]string{"audit", "query"}, 1, []string{
			`user="u1 outcome=success" client=https://evil.example/\u202ecimd resource=https://mcp.example.com ip=203.0.113.9\u2028forged detail="` + escapedHostile + `"`,
		}},
	} {
		out := run1(tt.args...)
		if n := strings.Count(out, "\n"); n != tt.lines {
			t.Errorf("gatehouse %s printed %d lines, want %d:\n%s", strings.Join(tt.args, " "), n, tt.lines, out)
		}
		for _, w := range tt.want {
			if !strings.Contains(out, w) {
				t.Errorf("gatehouse %s lacks %s:\n%s", strings.Join(tt.args, " "), w, out)
			}
		}
	}

	// client show is JSON: the same characters are JSON escapes, and the
	// values decode to what is stored.
	out := run1("client", "show", id)
	for _, w := range []string{`"client_id": "https://evil.example/\u202ecimd"`, `\u2066`, `Evil\u202eedoC\u200d\u2028second line\u0085\u009b2J\u001b[31mred\u007f\nthird\tline\\`} {
		if !strings.Contains(out, w) {
			t.Errorf("client show lacks %s:\n%s", w, out)
		}
	}
	var v struct {
		ID   string `json:"client_id"`
		Name string `json:"client_name"`
	}
	if err := json.Unmarshal([]byte(out), &v); err != nil || v.ID != id || v.Name != hostile {
		t.Errorf("client show decodes to (%q, %q, %v), want (%q, %q)", v.ID, v.Name, err, id, hostile)
	}
}
