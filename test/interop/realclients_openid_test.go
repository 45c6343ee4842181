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
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gatehouse-mcp/gatehouse/internal/demo"
)

// testOpenIDClient runs openid-client 6.8.9 (realclients/openid_client.mjs)
// as a strict OAuth client of the demo: discovery with the issuer checked,
// registration, PKCE, RFC 9207 (a callback with a forged or missing iss is
// refused), every access token validated as RFC 9068 says, the step-up
// challenge followed, and a refresh after expiry. Its sign-ins are
// completed by the test's HTTP browser (playBrowser): this client has no
// callback listener, it is handed the redirect URL.
func testOpenIDClient(t *testing.T) {
	node := nodeBin(t)
	script := filepath.Join(realClientsDir(t), "openid_client.mjs")
	for _, pkg := range []string{"openid-client", "oauth4webapi"} {
		if _, err := os.Stat(filepath.Join(realClientsDir(t), "node_modules", pkg, "package.json")); err != nil {
			skipOrFatal(t, "npm package %s is not installed in %s: run `npm ci --prefix test/interop/realclients --no-audit --no-fund` (or scripts/test.sh)", pkg, realClientsDir(t))
		}
	}
	d := startMCPDev(t, "alice", "correct horse battery staple", "--access-token-ttl", realClientTTL.String())
	redirect := fmt.Sprintf("http://127.0.0.1:%d/callback", freePort(t))
	wait := realClientTTL + demo.ClockSkew + 1100*time.Millisecond

	cmd := exec.Command(node, script, d.Issuer, d.MCPURL, redirect, strconv.FormatInt(wait.Milliseconds(), 10))
	cmd.Dir = realClientsDir(t)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, w := watchOutput(t, "openid_client.mjs")
	cmd.Stdout, cmd.Stderr = w, w
	if err := cmd.Start(); err != nil {
		t.Fatalf("start openid_client.mjs: %v", err)
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
			t.Fatalf("openid_client.mjs: %v", err)
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
				Name        string   `json:"name"`
				OK          bool     `json:"ok"`
				Error       string   `json:"error"`
				ToolsListed []string `json:"tools_listed"`
			}
			if err := json.Unmarshal([]byte(m[2]), &s); err != nil {
				t.Fatalf("step line %q: %v", m[2], err)
			}
			if s.ToolsListed != nil {
				t.Run("add_note is listed", func(t *testing.T) {
					if !slices.Contains(s.ToolsListed, "add_note") {
						t.Errorf("tools/list for a notes:read token = %v, want add_note listed: %s", s.ToolsListed, stepUpPending)
					}
				})
			}
			step(t, s.Name, func(t *testing.T) {
				if !s.OK {
					t.Fatal(strings.ReplaceAll(s.Error, `\n`, "\n"))
				}
				t.Log(m[2])
			})
		case "RESULT":
			if err := <-exited; err != nil {
				t.Fatalf("openid_client.mjs exited: %v", err)
			}
			return
		}
	}
}
