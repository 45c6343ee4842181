// Command gatehouse is the OAuth 2.1 authorization layer for MCP servers:
// an authorization server, its admin CLI, and a zero-configuration dev mode.
//
// Run `gatehouse help` for the commands.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"sort"
	"strings"
	"syscall"
)

// command is one subcommand.
type command struct {
	name    string
	summary string
	run     func(ctx context.Context, args []string, out io.Writer) error
}

// commands lists the subcommands; groups (client, user, ...) dispatch again.
func commands() []command {
	return []command{
		{"dev", "run the authorization server with zero configuration (SQLite in ./gatehouse-data)", runDev},
		{"serve", "run the authorization server from a config file, the environment and flags", runServe},
		{"gateway", "run the MCP gateway: OAuth and per-tool policy in front of MCP servers (routes from --config)", runGateway},
		{"migrate", "apply database migrations (or --status to list them)", runMigrate},
		{"config", "config check: print the effective configuration (secrets redacted) and every error", runConfig},
		{"client", "manage OAuth clients: create | list | show | delete | rotate-secret | block | unblock | blocks | token (initial access tokens)", runClient},
		{"user", "manage local users: add | list | show | passwd | revoke | disable | enable | delete | group add|remove", runUser},
		{"resource", "manage protected resources: add | list | delete", runResource},
		{"keys", "manage signing keys: list | rotate | withdraw | rekey | gen-kek", runKeys},
		{"audit", "read the audit log: tail | query", runAudit},
	}
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := exitCode(run(ctx, os.Args[1:], os.Stdout), os.Stderr)
	stop()
	os.Exit(code)
}

// usageError is a command line gatehouse cannot make sense of: the usage
// goes to standard error with it, and the exit status is 2, as for a flag
// the flag package refuses.
type usageError struct {
	msg   string
	usage string // the usage to print, if not the top-level one
}

func (e usageError) Error() string { return e.msg }

// exitCode reports err, the result of run, on stderr and returns the
// process's exit status: 0 for success and for --help, 2 for a usage
// error, 1 for anything else.
func exitCode(err error, stderr io.Writer) int {
	var ue usageError
	switch {
	case err == nil || errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &ue):
		if ue.usage != "" {
			fmt.Fprint(stderr, ue.usage)
		} else {
			usage(stderr)
		}
		fmt.Fprintln(stderr, "\ngatehouse:", err)
		return 2
	}
	fmt.Fprintln(stderr, "gatehouse:", err)
	return 1
}

func run(ctx context.Context, args []string, out io.Writer) error {
	if len(args) == 0 {
		return usageError{msg: "no command given"}
	}
	switch args[0] {
	case "help", "-h", "-help", "--help":
		usage(out)
		return nil
	case "version", "-version", "--version":
		fmt.Fprintln(out, version(debug.ReadBuildInfo()))
		return nil
	}
	for _, c := range commands() {
		if c.name == args[0] {
			return c.run(ctx, args[1:], out)
		}
	}
	return usageError{msg: fmt.Sprintf("unknown command %q", args[0])}
}

// version describes the binary from its build information: the module
// version (a tag with go install …@version, "(devel)" in a checkout) and
// the VCS revision, time and whether the tree was modified, which go build
// stamps in a checkout.
func version(bi *debug.BuildInfo, ok bool) string {
	if !ok {
		return "gatehouse (no build information) " + runtime.Version()
	}
	v := bi.Main.Version
	if v == "" {
		v = "(devel)"
	}
	var rev, at, modified string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.time":
			at = s.Value
		case "vcs.modified":
			modified = s.Value
		}
	}
	out := "gatehouse " + v
	if rev != "" {
		out += " commit " + rev
		if at != "" {
			out += " (" + at + ")"
		}
		if modified == "true" {
			out += " with local changes"
		}
	}
	return out + " " + bi.GoVersion
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "Gatehouse: the OAuth 2.1 authorization layer for MCP servers.")
	fmt.Fprintln(w, "\nUsage: gatehouse <command> [flags]\n\nCommands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-9s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\nRun `gatehouse <command> --help` for a command's flags, `gatehouse --version` for the version.")
}

// subcommands dispatches a command group such as `gatehouse client create`.
func subcommands(ctx context.Context, group string, args []string, out io.Writer, subs map[string]func(context.Context, []string, io.Writer) error) error {
	names := make([]string, 0, len(subs))
	for n := range subs {
		names = append(names, n)
	}
	sort.Strings(names)
	groupUsage := fmt.Sprintf("Usage: gatehouse %s <%s> [flags]\n", group, strings.Join(names, "|"))
	if len(args) == 0 {
		// Like a bare gatehouse: a usage error, on standard error.
		return usageError{fmt.Sprintf("gatehouse %s needs one of %s", group, strings.Join(names, ", ")), groupUsage}
	}
	if args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(out, groupUsage)
		return nil
	}
	f, ok := subs[args[0]]
	if !ok {
		return usageError{fmt.Sprintf("unknown command %q for %s; use one of %s", args[0], group, strings.Join(names, ", ")), groupUsage}
	}
	return f(ctx, args[1:], out)
}

// newFlags returns a FlagSet whose usage names the command.
func newFlags(name, summary string, out io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(out)
	fs.Usage = func() {
		fmt.Fprintf(out, "Usage: gatehouse %s [flags]\n\n%s\n\nFlags:\n", name, summary)
		fs.PrintDefaults()
	}
	return fs
}

// parseFlags parses args allowing flags after positional arguments
// (`gatehouse resource add URL --scope s`), which the flag package alone
// stops at. Everything after a literal "--" is positional.
func parseFlags(fs *flag.FlagSet, args []string) error {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if strings.HasPrefix(err.Error(), "flag provided but not defined: ") {
				// A key id is base64url and may start with "-".
				return fmt.Errorf("%w (an argument that starts with - but is not a flag, such as a key id, goes after --: gatehouse %s [flags] -- ARG)", err, fs.Name())
			}
			return err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			break
		}
		if len(args) > 0 && len(rest) < len(args) && args[len(args)-len(rest)-1] == "--" {
			pos = append(pos, rest...)
			break
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
	return fs.Parse(append([]string{"--"}, pos...))
}
