//go:build linux

// Package ptytest runs a command on a pseudo-terminal, as a person at a
// terminal would: it waits for each prompt, types the answer, and returns
// what the terminal showed. The CLI's password prompts are tested with it
// (no echo, the rule stated, the terminal restored), both in the command's
// own tests and in the README played as a script.
package ptytest

import (
	"io"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"
	"golang.org/x/sys/unix"

	"github.com/gatehouse-mcp/gatehouse/internal/syncbuf"
)

// Run runs cmd with a new pty as its controlling terminal, standard input,
// output and error. Each time the output shows the next prompt of prompts
// (a substring, after the previous one), it types the matching entry of
// typed. It returns everything the terminal showed and the command's
// error, and fails the test if the command left the terminal without echo.
func Run(t testing.TB, cmd *exec.Cmd, prompts, typed []string) (string, error) {
	t.Helper()
	tty, dev, err := pty.Open()
	if err != nil {
		t.Fatalf("pty.Open: %v", err)
	}
	defer tty.Close()
	cmd.Stdin, cmd.Stdout, cmd.Stderr = dev, dev, dev
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var shown syncbuf.Buffer
	copied := make(chan struct{})
	go func() {
		io.Copy(&shown, tty) // ends with EIO when the command exits
		close(copied)
	}()
	seen := 0
	for i, p := range prompts {
		// Not a timed assertion: a bound so that a prompt that never
		// comes fails the test instead of hanging it.
		deadline := time.Now().Add(30 * time.Second)
		for {
			if j := strings.Index(shown.String()[seen:], p); j >= 0 {
				seen += j + len(p)
				break
			}
			if time.Now().After(deadline) {
				cmd.Process.Kill()
				t.Fatalf("no prompt %q; the terminal shows:\n%s", p, shown.String())
			}
			time.Sleep(10 * time.Millisecond)
		}
		if _, err := tty.Write([]byte(typed[i])); err != nil {
			t.Fatal(err)
		}
	}
	err = cmd.Wait()
	if tio, err := unix.IoctlGetTermios(int(dev.Fd()), unix.TCGETS); err != nil || tio.Lflag&unix.ECHO == 0 {
		t.Errorf("the command left the terminal without echo (%v)", err)
	}
	dev.Close() // ours: the copy ends once no process holds the terminal
	<-copied
	return shown.String(), err
}
