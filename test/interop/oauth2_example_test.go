package interop

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestOAuth2ExampleAgainstDev runs examples/oauth2client — golang.org/x/oauth2
// as the client — against a real `gatehouse dev`: code + PKCE → token →
// refresh with rotation, state and iss checked (issue 2's "Must show").
func TestOAuth2ExampleAgainstDev(t *testing.T) {
	g := newGatehouse(t)
	d := g.startDev(t, "demo", "example-password-1")
	pw := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pw, []byte(d.Password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "run", "./examples/oauth2client", "--issuer", d.Issuer, "--user", d.Username, "--password-file", pw)
	cmd.Dir = findModuleRoot(t)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("examples/oauth2client: %v\n%s\n--- gatehouse dev:\n%s", err, out, d.Output())
	}
	if !strings.Contains(string(out), "OK: code + PKCE -> token -> refresh") {
		t.Fatalf("examples/oauth2client output:\n%s", out)
	}
	t.Logf("%s", out)
}
