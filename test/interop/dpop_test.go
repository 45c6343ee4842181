package interop

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestDPoP (issue 18 item 1): openid-client 6.8.9 with its oauth4webapi,
// as a real DPoP peer (realclients/dpop_client.mjs), against `gatehouse dev
// --dpop-require-nonce`: it registers with dpop_bound_access_tokens, gets a
// DPoP-bound token after the token endpoint's use_dpop_nonce retry (RFC
// 9449 §8), calls the demo MCP server with proofs after its nonce retry
// (§9), is refused as a bearer token with the DPoP challenge (§7.1), is
// refused a refresh without a proof, and refreshes with one. Each step is
// a subtest.
func TestDPoP(t *testing.T) {
	node := nodeBin(t)
	script := filepath.Join(realClientsDir(t), "dpop_client.mjs")
	for _, pkg := range []string{"openid-client", "oauth4webapi"} {
		if _, err := os.Stat(filepath.Join(realClientsDir(t), "node_modules", pkg, "package.json")); err != nil {
			skipOrFatal(t, "npm package %s is not installed in %s: run `npm ci --prefix test/interop/realclients --no-audit --no-fund` (or scripts/test.sh)", pkg, realClientsDir(t))
		}
	}
	d := startMCPDev(t, "alice", "correct horse battery staple", "--dpop-require-nonce")
	redirect := fmt.Sprintf("http://127.0.0.1:%d/callback", freePort(t))

	cmd := exec.Command(node, script, d.Issuer, d.MCPURL, redirect)
	cmd.Dir = realClientsDir(t)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, w := watchOutput(t, "dpop_client.mjs")
	cmd.Stdout, cmd.Stderr = w, w
	if err := cmd.Start(); err != nil {
		t.Fatalf("start dpop_client.mjs: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait(); w.Close() }()
	t.Cleanup(func() { _ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) })

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	line := regexp.MustCompile(`^(STEP|AUTHORIZE|RESULT) (.*)$`)
	for seen := 0; ; {
		m, next, err := out.waitLineAfter(ctx, seen, line)
		if err != nil {
			t.Fatalf("dpop_client.mjs: %v", err)
		}
		seen = next
		switch m[1] {
		case "AUTHORIZE":
			cb, _, err := playBrowser(ctx, m[2], d.Username, d.Password, redirect)
			if err != nil {
				t.Fatalf("browser, authorization URL of openid-client: %v", err)
			}
			io.WriteString(stdin, cb.String()+"\n")
		case "STEP":
			var s struct {
				Name  string `json:"name"`
				OK    bool   `json:"ok"`
				Error string `json:"error"`
			}
			if err := json.Unmarshal([]byte(m[2]), &s); err != nil {
				t.Fatalf("step line %q: %v", m[2], err)
			}
			step(t, s.Name, func(t *testing.T) {
				if !s.OK {
					t.Fatal(strings.ReplaceAll(s.Error, `\n`, "\n"))
				}
				t.Log(m[2])
			})
		case "RESULT":
			if err := <-exited; err != nil {
				t.Fatalf("dpop_client.mjs exited: %v", err)
			}
			return
		}
	}
}
