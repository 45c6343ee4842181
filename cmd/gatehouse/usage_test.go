package main

import (
	"bytes"
	"io"
	"regexp"
	"runtime/debug"
	"slices"
	"strings"
	"testing"
)

// TestExitStatusAndUsage runs the command lines a newcomer tries first
// through run and exitCode, as main does: a bare gatehouse or command
// group, or an unknown command, is a usage error (the usage on standard
// error, status 2); help is not.
func TestExitStatusAndUsage(t *testing.T) {
	for _, tt := range []struct {
		args   []string
		code   int
		stdout string // a regexp, "" for empty
		stderr string // a regexp, "" for empty
	}{
		{nil, 2, "", `(?s)^Gatehouse: .*Usage: gatehouse <command>.*\n\ngatehouse: no command given\n$`},
		{[]string{"nope"}, 2, "", `(?s)^Gatehouse: .*Usage: gatehouse <command>.*\n\ngatehouse: unknown command "nope"\n$`},
		{[]string{"help"}, 0, `(?s)^Gatehouse: .*Usage: gatehouse <command>`, ""},
		{[]string{"-h"}, 0, `(?s)^Gatehouse: .*Usage: gatehouse <command>`, ""},
		{[]string{"--help"}, 0, `(?s)^Gatehouse: .*Usage: gatehouse <command>`, ""},
		{[]string{"--version"}, 0, `^gatehouse \S+.* go1\.\S+\n$`, ""},
		{[]string{"version"}, 0, `^gatehouse \S+.* go1\.\S+\n$`, ""},
		{[]string{"serve", "--help"}, 0, `^Usage: gatehouse serve \[flags\]`, ""},
		{[]string{"keys", "frobnicate"}, 2, "", `^Usage: gatehouse keys <gen-kek\|list\|rekey\|rotate\|withdraw> \[flags\]\n\ngatehouse: unknown command "frobnicate" for keys; use one of gen-kek, list, rekey, rotate, withdraw\n$`},
		{[]string{"client"}, 2, "", `^Usage: gatehouse client <.*> \[flags\]\n\ngatehouse: gatehouse client needs one of block, .*\n$`},
		{[]string{"client", "--help"}, 0, `^Usage: gatehouse client <`, ""},
	} {
		var stdout, stderr bytes.Buffer
		code := exitCode(run(t.Context(), tt.args, &stdout), &stderr)
		if code != tt.code {
			t.Errorf("gatehouse %s exits %d, want %d", strings.Join(tt.args, " "), code, tt.code)
		}
		for _, o := range []struct {
			name, got, want string
		}{{"stdout", stdout.String(), tt.stdout}, {"stderr", stderr.String(), tt.stderr}} {
			if o.want == "" && o.got != "" || o.want != "" && !regexp.MustCompile(o.want).MatchString(o.got) {
				t.Errorf("gatehouse %s printed on %s:\n%s\nwant it to match %s", strings.Join(tt.args, " "), o.name, o.got, o.want)
			}
		}
	}
}

// TestVersion: the version line carries the module version and the VCS
// stamp go build records.
func TestVersion(t *testing.T) {
	for _, tt := range []struct {
		name string
		bi   *debug.BuildInfo
		ok   bool
		want string
	}{
		{"go install of a tag", &debug.BuildInfo{GoVersion: "go1.26.0", Main: debug.Module{Version: "v1.2.3"}}, true, "gatehouse v1.2.3 go1.26.0"},
		{"checkout", &debug.BuildInfo{GoVersion: "go1.26.0", Main: debug.Module{Version: "(devel)"}, Settings: []debug.BuildSetting{
			{Key: "vcs.revision", Value: "0123abcd"}, {Key: "vcs.time", Value: "2026-12-07T19:00:00Z"}, {Key: "vcs.modified", Value: "true"},
		}}, true, "gatehouse (devel) commit 0123abcd (2026-12-07T19:00:00Z) with local changes go1.26.0"},
		{"clean checkout", &debug.BuildInfo{GoVersion: "go1.26.0", Main: debug.Module{Version: "v1.2.4-0.20261207190000-0123abcd"}, Settings: []debug.BuildSetting{
			{Key: "vcs.revision", Value: "0123abcd"}, {Key: "vcs.modified", Value: "false"},
		}}, true, "gatehouse v1.2.4-0.20261207190000-0123abcd commit 0123abcd go1.26.0"},
	} {
		if got := version(tt.bi, tt.ok); got != tt.want {
			t.Errorf("%s: version() = %q, want %q", tt.name, got, tt.want)
		}
	}
}

// TestUsageListsEverySubcommand: the summary of each command group in
// `gatehouse --help` names every subcommand the group dispatches (which its
// own --help lists from the dispatch map), so a new one cannot be left out.
func TestUsageListsEverySubcommand(t *testing.T) {
	var out bytes.Buffer
	if err := run(t.Context(), []string{"--help"}, &out); err != nil {
		t.Fatal(err)
	}
	groups := 0
	for _, c := range commands() {
		var help bytes.Buffer
		_ = run(t.Context(), []string{c.name, "--help"}, &help)
		m := regexp.MustCompile(`^Usage: gatehouse [a-z]+ <([a-z|-]+)>`).FindStringSubmatch(help.String())
		if m == nil {
			continue // not a group
		}
		groups++
		line := regexp.MustCompile(`(?m)^  ` + c.name + ` +(.*)$`).FindStringSubmatch(out.String())
		if line == nil {
			t.Errorf("gatehouse --help has no line for %s:\n%s", c.name, out.String())
			continue
		}
		listed := regexp.MustCompile(`[a-z][a-z-]*`).FindAllString(line[1], -1)
		for _, sub := range strings.Split(m[1], "|") {
			if !slices.Contains(listed, sub) {
				t.Errorf("gatehouse --help says %q for %s, which lacks its subcommand %s", line[1], c.name, sub)
			}
		}
	}
	if groups < 6 {
		t.Errorf("found %d command groups, want at least 6 (config client user resource keys audit)", groups)
	}
}

// TestArgumentLikeAFlag: a key id may start with "-" (base64url); as a
// bare argument it reads as an unknown flag, and the error says to put it
// after --, where it is taken as an argument.
func TestArgumentLikeAFlag(t *testing.T) {
	a := newAdminCLI(t)
	a.ok("keys", "list") // the dev data directory
	const kid = "-5Vm5Od2clQxy7Z8okOyZosMRLA93_X_sbzyyZaEsXo"
	err := run(t.Context(), []string{"keys", "withdraw", kid, "--data", a.data}, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "flag provided but not defined: "+kid) || !strings.Contains(err.Error(), "goes after --") {
		t.Errorf("keys withdraw %s = %v, want the unknown-flag error with the hint to use --", kid, err)
	}
	err = run(t.Context(), []string{"keys", "withdraw", "--data", a.data, "--", kid}, io.Discard)
	if err == nil || strings.Contains(err.Error(), "flag provided") || !strings.Contains(err.Error(), kid) {
		t.Errorf("keys withdraw -- %s = %v, want it taken as a key id (unknown here)", kid, err)
	}
}
