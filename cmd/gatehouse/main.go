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
		{"user", "manage local users: add | list | passwd | revoke | disable | enable | delete", runUser},
		{"resource", "manage protected resources: add | list | delete", runResource},
		{"keys", "manage signing keys: list | rotate | withdraw | rekey | gen-kek", runKeys},
		{"audit", "read the audit log: tail | query", runAudit},
	}
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout)
	stop()
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "gatehouse:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, out io.Writer) error {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		usage(out)
		return nil
	}
	for _, c := range commands() {
		if c.name == args[0] {
			return c.run(ctx, args[1:], out)
		}
	}
	usage(os.Stderr)
	return fmt.Errorf("unknown command %q", args[0])
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "Gatehouse: the OAuth 2.1 authorization layer for MCP servers.")
	fmt.Fprintln(w, "\nUsage: gatehouse <command> [flags]\n\nCommands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-9s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\nRun `gatehouse <command> --help` for a command's flags.")
}

// subcommands dispatches a command group such as `gatehouse client create`.
func subcommands(ctx context.Context, group string, args []string, out io.Writer, subs map[string]func(context.Context, []string, io.Writer) error) error {
	names := make([]string, 0, len(subs))
	for n := range subs {
		names = append(names, n)
	}
	sort.Strings(names)
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprintf(out, "Usage: gatehouse %s <%s> [flags]\n", group, strings.Join(names, "|"))
		return nil
	}
	f, ok := subs[args[0]]
	if !ok {
		return fmt.Errorf("unknown command %q for %s; use one of %s", args[0], group, strings.Join(names, ", "))
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
