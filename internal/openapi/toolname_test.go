package openapi

import (
	"strings"
	"testing"
)

func TestToolName(t *testing.T) {
	long := strings.Repeat("a", 70)
	tests := []struct {
		name                    string
		method, path, operation string
		want                    string
	}{
		{"operationId used as is", "GET", "/repos/{owner}/{repo}/pulls", "pulls/list", "pulls_list"},
		{"operationId case kept", "GET", "/x", "listPulls", "listPulls"},
		{"derived from method and path", "GET", "/repos/{owner}/{repo}/pulls", "", "get_repos_owner_repo_pulls"},
		{"derived keeps dot and dash", "post", "/v1.2/user-keys", "", "post_v1.2_user-keys"},
		{"runs of symbols collapse", "DELETE", "/a//{b}/{{c}}", "", "delete_a_b_c"},
		{"non-ASCII becomes underscore", "GET", "/x", "créer élément", "cr_er_l_ment"},
		{"operationId of symbols falls back", "PUT", "/items/{id}", "🙂 / ", "put_items_id"},
		{"underscores trimmed", "GET", "/x", "__a__b__", "a_b"},
		{"exactly 64 kept", "GET", "/x", long[:64], long[:64]},
		{"nothing usable", "", "/{}", "", "operation"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := ToolName(tt.method, tt.path, tt.operation)
			if got != tt.want {
				t.Errorf("ToolName(%q, %q, %q) = %q, want %q", tt.method, tt.path, tt.operation, got, tt.want)
			}
			if err := CheckToolName(got); err != nil {
				t.Errorf("ToolName result breaks the rules: %v", err)
			}
		})
	}
}

func TestToolNameLongIsCutWithStableHash(t *testing.T) {
	a := strings.Repeat("x", 60) + "_first_operation"
	b := strings.Repeat("x", 60) + "_second_operation"
	na, nb := ToolName("GET", "/", a), ToolName("GET", "/", b)
	for _, n := range []string{na, nb} {
		if len(n) != MaxToolNameLen {
			t.Errorf("len(%q) = %d, want %d", n, len(n), MaxToolNameLen)
		}
		if err := CheckToolName(n); err != nil {
			t.Error(err)
		}
		if !strings.HasPrefix(n, strings.Repeat("x", 55)+"_") {
			t.Errorf("%q does not keep the start of the name", n)
		}
	}
	if na == nb {
		t.Errorf("two long names sharing a 60-character prefix both became %q", na)
	}
	if again := ToolName("GET", "/", a); again != na {
		t.Errorf("ToolName is not deterministic: %q then %q", na, again)
	}
	// A fixed expected value, so a change of hash or cut point (which
	// renames tools clients know) is noticed.
	if want := strings.Repeat("x", 55) + "_" + "cb460729"; na != want {
		t.Errorf("ToolName(long) = %q, want %q", na, want)
	}
}

func TestCheckToolName(t *testing.T) {
	for _, ok := range []string{"a", "getUser", "admin.tools.list", "DATA_EXPORT-v2", strings.Repeat("z", 64)} {
		if err := CheckToolName(ok); err != nil {
			t.Errorf("CheckToolName(%q) = %v, want nil", ok, err)
		}
	}
	for _, bad := range []string{"", "has space", "user/profile", "a,b", "é", strings.Repeat("z", 65)} {
		if err := CheckToolName(bad); err == nil {
			t.Errorf("CheckToolName(%q) = nil, want an error", bad)
		}
	}
}

func TestNamerUnique(t *testing.T) {
	var n Namer
	got := []string{
		n.Name("GET", "/a/{b}", ""),
		n.Name("GET", "/a/b", ""),
		n.Name("GET", "/a/{b}/", ""),
		n.Name("GET", "/x", "get_a_b_2"), // an operationId equal to a suffixed name
		n.Name("GET", "/y", "get_a_b"),
	}
	want := []string{"get_a_b", "get_a_b_2", "get_a_b_3", "get_a_b_2_2", "get_a_b_4"}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("name %d = %q, want %q (all: %q)", i, got[i], want[i], got)
		}
	}
}

func TestNamerUniqueLongNamesStayWithinLimit(t *testing.T) {
	var n Namer
	op := strings.Repeat("o", 80)
	seen := map[string]bool{}
	for i := 0; i < 12; i++ {
		name := n.Name("GET", "/", op)
		if err := CheckToolName(name); err != nil {
			t.Fatalf("name %d: %v", i, err)
		}
		if seen[name] {
			t.Fatalf("name %q handed out twice", name)
		}
		seen[name] = true
	}
}

func TestNamerClaim(t *testing.T) {
	var n Namer
	if err := n.Claim("list_pulls"); err != nil {
		t.Fatalf("Claim: %v", err)
	}
	if err := n.Claim("list_pulls"); err == nil || !strings.Contains(err.Error(), "already used") {
		t.Errorf("second Claim = %v, want an 'already used' error", err)
	}
	if err := n.Claim("list pulls"); err == nil {
		t.Error("Claim of a name with a space succeeded")
	}
	if got := n.Name("GET", "/pulls", "list_pulls"); got != "list_pulls_2" {
		t.Errorf("Name after Claim = %q, want list_pulls_2", got)
	}
}
