//go:build !unix

package gateway

import (
	"os"
	"os/exec"
)

// setProcessGroup does nothing where process groups are not available.
func setProcessGroup(cmd *exec.Cmd) {}

// killProcessGroup kills the process pid (there is no gentler signal).
func killProcessGroup(pid int, force bool) {
	if p, err := os.FindProcess(pid); err == nil {
		_ = p.Kill()
	}
}
