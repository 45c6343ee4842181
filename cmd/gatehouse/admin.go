package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"golang.org/x/term"

	"github.com/gatehouse-mcp/gatehouse/internal/as"
	"github.com/gatehouse-mcp/gatehouse/internal/clientreg"
	"github.com/gatehouse-mcp/gatehouse/internal/config"
	"github.com/gatehouse-mcp/gatehouse/internal/gateway"
	"github.com/gatehouse-mcp/gatehouse/internal/password"
	"github.com/gatehouse-mcp/gatehouse/internal/safetext"
	"github.com/gatehouse-mcp/gatehouse/internal/storage"
	"github.com/gatehouse-mcp/gatehouse/internal/storage/postgres"
	"github.com/gatehouse-mcp/gatehouse/internal/storage/sqlite"
	"github.com/gatehouse-mcp/gatehouse/internal/storage/sqlstore"
	"github.com/gatehouse-mcp/gatehouse/internal/token"
)

// listFlag collects a repeatable string flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

// withStore parses flags, opens the store, and runs f.
func withStore(ctx context.Context, fs *flag.FlagSet, sf *storeFlags, args []string, f func(storage.Store) error) error {
	return withConfigStore(ctx, fs, sf, args, func(_ config.Config, st storage.Store) error { return f(st) })
}

// withConfigStore is withStore for commands that need the configuration
// too (the keys commands open the keyring with it).
func withConfigStore(ctx context.Context, fs *flag.FlagSet, sf *storeFlags, args []string, f func(config.Config, storage.Store) error) error {
	sf.register(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	c, _, err := sf.load()
	if err != nil {
		return err
	}
	st, err := openExistingStore(ctx, c)
	if err != nil {
		return schemaAdvice(err, sf.how())
	}
	defer st.Close()
	return f(c, st)
}

func runClient(ctx context.Context, args []string, out io.Writer) error {
	return subcommands(ctx, "client", args, out, map[string]func(context.Context, []string, io.Writer) error{
		"create": clientCreate, "list": clientList, "show": clientShow, "delete": clientDelete, "token": clientToken,
		"block": clientBlock, "unblock": clientUnblock, "blocks": clientBlocks, "rotate-secret": clientRotateSecret,
	})
}

func clientCreate(ctx context.Context, args []string, out io.Writer) error {
	fs := newFlags("client create", "Register a client. A confidential client's secret is printed once and stored only as a hash.", out)
	var sf storeFlags
	id := fs.String("id", "", "client id (default: random)")
	name := fs.String("name", "", "client name shown on the consent page")
	confidential := fs.Bool("confidential", false, "a confidential client with a generated secret (client_secret_basic unless --auth-method says otherwise)")
	method := fs.String("auth-method", "", "token endpoint auth method: none, client_secret_basic, client_secret_post, private_key_jwt")
	jwksFile := fs.String("jwks-file", "", "JWK Set file with the client's public keys (for private_key_jwt)")
	appType := fs.String("application-type", "", "native or web (default: native for public clients, web for confidential)")
	var redirects, grants, scopes listFlag
	fs.Var(&redirects, "redirect-uri", "redirect URI (repeatable); loopback http URIs match any port")
	fs.Var(&grants, "grant-type", "grant type (repeatable; default authorization_code and refresh_token, or client_credentials for a confidential client without redirect URIs)")
	fs.Var(&scopes, "scope", "scope the client may be granted (repeatable; default: any scope of the resource); it must be a scope of a registered resource")
	unknownOK := fs.Bool("allow-unknown-scope", false, "accept a --scope no registered resource offers yet (say, of a gateway route not started yet)")
	dpopBound := fs.Bool("dpop-bound", false, "the client always uses DPoP (RFC 9449 dpop_bound_access_tokens): a token request without a DPoP proof is refused, so it never holds a bearer token")
	return withStore(ctx, fs, &sf, args, func(st storage.Store) error {
		if !*unknownOK {
			if err := checkClientScopes(ctx, st, scopes); err != nil {
				return err
			}
		}
		m := *method
		if m == "" {
			m = "none"
			if *confidential {
				m = "client_secret_basic"
			}
		}
		if !slices.Contains([]string{"none", "client_secret_basic", "client_secret_post", "private_key_jwt"}, m) {
			return fmt.Errorf("--auth-method %q is not one of none, client_secret_basic, client_secret_post, private_key_jwt", m)
		}
		if len(grants) == 0 {
			if m != "none" && len(redirects) == 0 {
				grants = listFlag{"client_credentials"}
			} else {
				grants = listFlag{"authorization_code", "refresh_token"}
			}
		}
		for _, g := range grants {
			if !slices.Contains([]string{"authorization_code", "refresh_token", "client_credentials"}, g) {
				return fmt.Errorf("--grant-type %q is not supported", g)
			}
		}
		if slices.Contains(grants, "authorization_code") && len(redirects) == 0 {
			return errors.New("the authorization_code grant needs at least one --redirect-uri")
		}
		if slices.Contains(grants, "client_credentials") && m == "none" {
			return errors.New("client_credentials needs a confidential client: add --confidential")
		}
		for _, u := range redirects {
			if err := clientreg.CheckRedirectURI(u); err != nil {
				return err
			}
		}
		at := *appType
		if at == "" {
			at = "native"
			if m != "none" {
				at = "web"
			}
		}
		cid := *id
		if cid == "" {
			var err error
			if cid, err = randomID(); err != nil {
				return err
			}
		}
		var jwks string
		if m == "private_key_jwt" {
			if *jwksFile == "" {
				return errors.New("private_key_jwt needs --jwks-file")
			}
			b, err := os.ReadFile(*jwksFile)
			if err != nil {
				return err
			}
			if !json.Valid(b) {
				return fmt.Errorf("%s is not JSON", *jwksFile)
			}
			jwks = string(b)
		}
		now := time.Now()
		c := storage.Client{
			ID: cid, Name: *name, RedirectURIs: redirects, GrantTypes: grants, ResponseTypes: []string{"code"},
			TokenEndpointAuthMethod: m, Scopes: scopes, ApplicationType: at, JWKS: jwks,
			Origin: storage.OriginStatic, Metadata: "{}", CreatedAt: now, UpdatedAt: now,
			DPoPBound: *dpopBound,
		}
		var secret string
		if m == "client_secret_basic" || m == "client_secret_post" {
			var err error
			if secret, err = token.NewSecret(rand.Reader); err != nil {
				return err
			}
			c.SecretHash = token.Hash(secret)
		}
		if err := st.CreateClient(ctx, c); err != nil {
			if errors.Is(err, storage.ErrAlreadyExists) {
				return fmt.Errorf("a client with id %q already exists", cid)
			}
			return err
		}
		auditCLI(ctx, st, storage.AuditEvent{Type: "client.registered", ClientID: cid, Outcome: "success", Detail: "static, " + m})
		fmt.Fprintf(out, "client_id:     %s\n", cid)
		if secret != "" {
			fmt.Fprintf(out, "client_secret: %s\n(shown once: store it now; only its hash is kept)\n", secret)
		}
		return nil
	})
}

// checkClientScopes refuses a client scope allowlist naming a scope no
// registered resource offers: a typo would leave the client allowed
// nothing it asks for (every request would get invalid_scope), and
// nothing would say why.
func checkClientScopes(ctx context.Context, st storage.Store, scopes []string) error {
	if len(scopes) == 0 {
		return nil
	}
	known, err := as.KnownScopes(ctx, st)
	if err != nil {
		return err
	}
	var unknown []string
	for _, sc := range scopes {
		if !slices.Contains(known, sc) {
			unknown = append(unknown, strconv.Quote(sc)) // escapes what the terminal would act on
		}
	}
	if len(unknown) == 0 {
		return nil
	}
	// offline_access (a refresh token of any resource) first.
	known = append([]string{"offline_access"}, slices.DeleteFunc(known, func(sc string) bool { return sc == "offline_access" })...)
	return fmt.Errorf("--scope %s: no registered resource offers it; the scopes of the registered resources are %s (gatehouse resource list shows them). "+
		"Register the resource first (gatehouse resource add), or pass --allow-unknown-scope if it comes later",
		strings.Join(unknown, ", "), strings.Join(known, " "))
}

func clientList(ctx context.Context, args []string, out io.Writer) error {
	fs := newFlags("client list", "List clients.", out)
	var sf storeFlags
	return withStore(ctx, fs, &sf, args, func(st storage.Store) error {
		cs, err := st.ListClients(ctx)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "CLIENT ID\tNAME\tORIGIN\tAUTH\tCREATED\tLAST USED\tTOKENS")
		for _, c := range cs {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%d\n", esc(c.ID), esc(c.Name), c.Origin, esc(c.TokenEndpointAuthMethod), fmtTime(c.CreatedAt), fmtTime(c.LastUsedAt), c.TokenCount)
		}
		return tw.Flush()
	})
}

func clientShow(ctx context.Context, args []string, out io.Writer) error {
	fs := newFlags("client show", "Show one client: gatehouse client show [flags] CLIENT_ID", out)
	var sf storeFlags
	return withStore(ctx, fs, &sf, args, func(st storage.Store) error {
		if fs.NArg() != 1 {
			return errors.New("usage: gatehouse client show CLIENT_ID")
		}
		c, err := st.GetClient(ctx, fs.Arg(0))
		if err != nil {
			return notFound(err, "client", fs.Arg(0))
		}
		v := map[string]any{
			"client_id": c.ID, "client_name": c.Name, "redirect_uris": c.RedirectURIs, "grant_types": c.GrantTypes,
			"token_endpoint_auth_method": c.TokenEndpointAuthMethod, "scopes": c.Scopes, "application_type": c.ApplicationType,
			"origin": c.Origin, "created_at": fmtTime(c.CreatedAt), "last_used_at": fmtTime(c.LastUsedAt),
			"token_count": c.TokenCount, "has_secret": c.SecretHash != "",
			"dpop_bound_access_tokens": c.DPoPBound,
		}
		b, _ := json.MarshalIndent(v, "", "  ")
		fmt.Fprintln(out, string(safetext.EscapeJSON(b)))
		return nil
	})
}

func clientDelete(ctx context.Context, args []string, out io.Writer) error {
	fs := newFlags("client delete", "Delete a client and everything issued to it: gatehouse client delete [flags] CLIENT_ID", out)
	var sf storeFlags
	return withStore(ctx, fs, &sf, args, func(st storage.Store) error {
		if fs.NArg() != 1 {
			return errors.New("usage: gatehouse client delete CLIENT_ID")
		}
		if err := st.DeleteClient(ctx, fs.Arg(0)); err != nil {
			return notFound(err, "client", fs.Arg(0))
		}
		auditCLI(ctx, st, storage.AuditEvent{Type: "client.deleted", ClientID: fs.Arg(0), Outcome: "success"})
		fmt.Fprintf(out, "deleted client %s\n", fs.Arg(0))
		return nil
	})
}

func runUser(ctx context.Context, args []string, out io.Writer) error {
	return subcommands(ctx, "user", args, out, map[string]func(context.Context, []string, io.Writer) error{
		"add": userAdd, "list": userList, "passwd": userPasswd, "delete": userDelete,
		"revoke": userRevoke, "disable": userDisable, "enable": userEnable,
		"show": userShow, "group": runUserGroup,
	})
}

func runUserGroup(ctx context.Context, args []string, out io.Writer) error {
	return subcommands(ctx, "user group", args, out, map[string]func(context.Context, []string, io.Writer) error{
		"add": userGroupAdd, "remove": userGroupRemove,
	})
}

// checkGroupName refuses a group name that could not be typed back or
// shown safely (config.CheckGroupName: a gateway route's scope_policies
// follow the same rule).
func checkGroupName(g string) error { return config.CheckGroupName(g) }

// userGroupChange runs `gatehouse user group add|remove USERNAME GROUP`.
// A change takes effect at the user's next authorization and their
// clients' next refresh; it ends nothing at once.
func userGroupChange(ctx context.Context, args []string, out io.Writer, name, help string, change func(st storage.Store, userID, group string) error) error {
	fs := newFlags("user group "+name, help, out)
	var sf storeFlags
	return withStore(ctx, fs, &sf, args, func(st storage.Store) error {
		if fs.NArg() != 2 {
			return fmt.Errorf("usage: gatehouse user group %s USERNAME GROUP", name)
		}
		username, group := fs.Arg(0), fs.Arg(1)
		if err := checkGroupName(group); err != nil {
			return err
		}
		u, err := st.GetUserByName(ctx, username)
		if err != nil {
			return notFound(err, "user", username)
		}
		if err := change(st, u.ID, group); err != nil {
			return err
		}
		verb := map[string]string{"add": "added to", "remove": "removed from"}[name]
		auditCLI(ctx, st, storage.AuditEvent{Type: "user.group_" + map[string]string{"add": "added", "remove": "removed"}[name], UserID: u.ID, Outcome: "success", Detail: username + ": " + group})
		fmt.Fprintf(out, "%s %s group %s; takes effect at their next sign-in and their apps' next token refresh\n", esc(username), verb, esc(group))
		return nil
	})
}

func userGroupAdd(ctx context.Context, args []string, out io.Writer) error {
	return userGroupChange(ctx, args, out, "add", "Put a user in a group: gatehouse user group add [flags] USERNAME GROUP. A resource's scope policy can require a group for a scope (gatehouse resource add --scope-group).",
		func(st storage.Store, userID, group string) error {
			err := st.AddUserGroup(ctx, userID, group, time.Now())
			if errors.Is(err, storage.ErrAlreadyExists) {
				return fmt.Errorf("user is already in group %q", group)
			}
			return err
		})
}

func userGroupRemove(ctx context.Context, args []string, out io.Writer) error {
	return userGroupChange(ctx, args, out, "remove", "Take a user out of a group: gatehouse user group remove [flags] USERNAME GROUP. Scopes that need the group are withheld from their next authorization and their apps' next token refresh. Groups an identity provider gives are not removed here: the provider's groups claim replaces them at each sign-in there.",
		func(st storage.Store, userID, group string) error {
			err := st.RemoveUserGroup(ctx, userID, group)
			if errors.Is(err, storage.ErrNotFound) {
				// A group an identity provider gives is the provider's:
				// say so, rather than "not in group" of a group user show
				// lists.
				if from := providersGiving(ctx, st, userID, group); len(from) > 0 {
					return fmt.Errorf("user is in group %q because identity provider %s gives it; it goes when the provider stops giving it, at their next sign-in there", group, strings.Join(from, ", "))
				}
				return fmt.Errorf("user is not in group %q", group)
			}
			return err
		})
}

func userShow(ctx context.Context, args []string, out io.Writer) error {
	fs := newFlags("user show", "Show a local user: gatehouse user show [flags] USERNAME", out)
	var sf storeFlags
	return withStore(ctx, fs, &sf, args, func(st storage.Store) error {
		if fs.NArg() != 1 {
			return errors.New("usage: gatehouse user show USERNAME")
		}
		u, err := st.GetUserByName(ctx, fs.Arg(0))
		if err != nil {
			return notFound(err, "user", fs.Arg(0))
		}
		groups, err := st.ListUserGroups(ctx, u.ID)
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "username: %s\nid:       %s\ncreated:  %s\nstatus:   %s\ngroups:   %s\n",
			esc(u.Username), esc(u.ID), fmtTime(u.CreatedAt), userStatus(u), groupList(groups))
		// Which of them a provider gave (replaced at each sign-in there,
		// not removable here).
		byProvider, err := st.ListUpstreamGroups(ctx, u.ID)
		if err != nil {
			return err
		}
		for _, p := range slices.Sorted(maps.Keys(byProvider)) {
			fmt.Fprintf(out, "  from %s: %s\n", esc(p), groupList(byProvider[p]))
		}
		return nil
	})
}

// providersGiving returns the identity providers whose last sign-in gave
// userID group, in name order (none on a read error: the caller is
// already reporting one).
func providersGiving(ctx context.Context, st storage.Store, userID, group string) []string {
	byProvider, err := st.ListUpstreamGroups(ctx, userID)
	if err != nil {
		return nil
	}
	var out []string
	for p, gs := range byProvider {
		if slices.Contains(gs, group) {
			out = append(out, esc(p))
		}
	}
	slices.Sort(out)
	return out
}

// userStatus is the STATUS column of user list.
func userStatus(u storage.User) string {
	if !u.DisabledAt.IsZero() {
		return "disabled since " + fmtTime(u.DisabledAt)
	}
	return "active"
}

// groupList shows groups escaped, comma-separated, or "-" for none.
func groupList(groups []string) string {
	if len(groups) == 0 {
		return "-"
	}
	out := make([]string, len(groups))
	for i, g := range groups {
		out[i] = esc(g)
	}
	return strings.Join(out, ",")
}

// passwordRules states the rule checkPassword enforces on a new
// password; prompts and errors quote it. The account page's password
// change enforces the same rule (package password).
const passwordRules = password.Rules

// checkPassword enforces passwordRules on a new user password
// (password.CheckNew).
func checkPassword(pw string) error { return password.CheckNew(pw) }

// readPassword takes the password from the first line of file, or of in
// when file is empty, never from a flag value. Only the first line is
// read, so a script's pipe that stays open does not hang the command.
func readPassword(file string, in io.Reader) (string, error) {
	var line string
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return "", err
		}
		line, _, _ = strings.Cut(string(b), "\n")
	} else {
		l, err := bufio.NewReader(io.LimitReader(in, 4096)).ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return "", err
		}
		line = strings.TrimSuffix(l, "\n")
	}
	pw := strings.TrimRight(line, "\r")
	if err := checkPassword(pw); err != nil {
		return "", err
	}
	return pw, nil
}

// newPassword reads a new password for user: from file if given; asked
// for twice without echo when in is a terminal, the prompts (stating
// passwordRules) written to tty; else the first line of in, with no
// prompt, for scripts.
func newPassword(ctx context.Context, file string, in *os.File, tty io.Writer, user string) (string, error) {
	if file != "" || !term.IsTerminal(int(in.Fd())) {
		return readPassword(file, in)
	}
	pw, err := readHidden(ctx, in, tty, fmt.Sprintf("New password for %s (%s): ", esc(user), passwordRules))
	if err != nil {
		return "", err
	}
	if err := checkPassword(pw); err != nil {
		return "", err
	}
	again, err := readHidden(ctx, in, tty, "Repeat the password: ")
	if err != nil {
		return "", err
	}
	if again != pw {
		return "", errors.New("the two passwords differ; nothing was changed")
	}
	return pw, nil
}

// readHidden shows prompt on tty and reads a line from the terminal in
// with echo off, from before the prompt appears until the line is read.
// main catches SIGINT to cancel ctx, so Ctrl-C does not end the process:
// on ctx's end the terminal is restored here and the read abandoned.
func readHidden(ctx context.Context, in *os.File, tty io.Writer, prompt string) (string, error) {
	fd := int(in.Fd())
	state, err := term.GetState(fd)
	if err != nil {
		return "", err
	}
	defer term.Restore(fd, state)
	if err := echoOff(fd); err != nil {
		return "", err
	}
	fmt.Fprint(tty, prompt)
	type result struct {
		b   []byte
		err error
	}
	c := make(chan result, 1)
	go func() {
		b, err := term.ReadPassword(fd)
		c <- result{b, err}
	}()
	select {
	case r := <-c:
		fmt.Fprintln(tty) // the Enter that was not echoed
		return string(r.b), r.err
	case <-ctx.Done():
		fmt.Fprintln(tty)
		return "", errors.New("interrupted; nothing was changed")
	}
}

func userAdd(ctx context.Context, args []string, out io.Writer) error {
	fs := newFlags("user add", "Add a local user: gatehouse user add [flags] USERNAME. The password ("+passwordRules+") is asked for at a terminal, or read from the first line of standard input or --password-file", out)
	var sf storeFlags
	pwFile := fs.String("password-file", "", "file whose first line is the password (default: asked for twice at a terminal, else the first line of standard input); "+passwordRules)
	return withStore(ctx, fs, &sf, args, func(st storage.Store) error {
		if fs.NArg() != 1 {
			return errors.New("usage: gatehouse user add USERNAME")
		}
		if as.IsUpstreamUsername(fs.Arg(0)) {
			return fmt.Errorf("user names starting with oidc: belong to people of identity providers (oidc:<provider>:<subject>); choose another name")
		}
		if _, err := st.GetUserByName(ctx, fs.Arg(0)); err == nil {
			return fmt.Errorf("user %q already exists; use `gatehouse user passwd`", fs.Arg(0))
		}
		pw, err := newPassword(ctx, *pwFile, os.Stdin, os.Stderr, fs.Arg(0))
		if err != nil {
			return err
		}
		if err := upsertUser(ctx, st, fs.Arg(0), pw); err != nil {
			return err
		}
		// The event names the user by id, as every other user event does.
		u, err := st.GetUserByName(ctx, fs.Arg(0))
		if err != nil {
			return err
		}
		auditCLI(ctx, st, storage.AuditEvent{Type: "user.added", UserID: u.ID, Outcome: "success", Detail: fs.Arg(0)})
		fmt.Fprintf(out, "added user %s\n", fs.Arg(0))
		return nil
	})
}

func userPasswd(ctx context.Context, args []string, out io.Writer) error {
	fs := newFlags("user passwd", "Set a user's password: gatehouse user passwd [flags] USERNAME. The password ("+passwordRules+") is asked for at a terminal, or read from the first line of standard input or --password-file", out)
	var sf storeFlags
	pwFile := fs.String("password-file", "", "file whose first line is the password (default: asked for twice at a terminal, else the first line of standard input); "+passwordRules)
	return withStore(ctx, fs, &sf, args, func(st storage.Store) error {
		if fs.NArg() != 1 {
			return errors.New("usage: gatehouse user passwd USERNAME")
		}
		u, err := st.GetUserByName(ctx, fs.Arg(0))
		if err != nil {
			return notFound(err, "user", fs.Arg(0))
		}
		pw, err := newPassword(ctx, *pwFile, os.Stdin, os.Stderr, fs.Arg(0))
		if err != nil {
			return err
		}
		hash, err := password.Hash(pw, rand.Reader)
		if err != nil {
			return err
		}
		if err := setPassword(ctx, st, u.ID, hash, time.Now()); err != nil {
			return err
		}
		auditCLI(ctx, st, storage.AuditEvent{Type: "user.password_changed", UserID: u.ID, Outcome: "success", Detail: fs.Arg(0) + ": sessions, consents and grants revoked"})
		fmt.Fprintf(out, "password updated for %s; %s\n", esc(fs.Arg(0)), revokedNote)
		return nil
	})
}

// revokedNote says what ending a user's access does, and how fast.
const revokedNote = "their sessions, consents and refresh tokens are revoked on every replica now; " +
	"their access tokens are refused at introspection now and by resource servers that verify locally when they expire (tokens.access_token_ttl)"

// userReset runs `gatehouse user revoke|disable`: storage.ResetUser with
// change applied to the user.
func userReset(ctx context.Context, args []string, out io.Writer, name, help, event string, change func(*storage.User, time.Time)) error {
	fs := newFlags("user "+name, help, out)
	var sf storeFlags
	return withStore(ctx, fs, &sf, args, func(st storage.Store) error {
		if fs.NArg() != 1 {
			return fmt.Errorf("usage: gatehouse user %s USERNAME", name)
		}
		u, err := st.GetUserByName(ctx, fs.Arg(0))
		if err != nil {
			return notFound(err, "user", fs.Arg(0))
		}
		now := time.Now()
		if _, err := st.ResetUser(ctx, u.ID, now, func(u storage.User) (storage.User, error) {
			change(&u, now)
			return u, nil
		}); err != nil {
			return err
		}
		auditCLI(ctx, st, storage.AuditEvent{Type: event, UserID: u.ID, Outcome: "success", Detail: fs.Arg(0) + ": sessions, consents and grants revoked"})
		fmt.Fprintf(out, "%s %s: %s\n", name, esc(fs.Arg(0)), revokedNote)
		return nil
	})
}

func userRevoke(ctx context.Context, args []string, out io.Writer) error {
	return userReset(ctx, args, out, "revoke",
		"End everything a user holds: gatehouse user revoke [flags] USERNAME. Their browser sessions, remembered consents, codes and refresh tokens stop working on every replica at once; they can sign in again.",
		"user.revoked", func(*storage.User, time.Time) {})
}

func userDisable(ctx context.Context, args []string, out io.Writer) error {
	return userReset(ctx, args, out, "disable",
		"Disable a user: gatehouse user disable [flags] USERNAME. Like user revoke, and they cannot sign in until `gatehouse user enable`.",
		"user.disabled", func(u *storage.User, now time.Time) { u.DisabledAt, u.UpdatedAt = now, now })
}

func userEnable(ctx context.Context, args []string, out io.Writer) error {
	fs := newFlags("user enable", "Let a disabled user sign in again: gatehouse user enable [flags] USERNAME", out)
	var sf storeFlags
	return withStore(ctx, fs, &sf, args, func(st storage.Store) error {
		if fs.NArg() != 1 {
			return errors.New("usage: gatehouse user enable USERNAME")
		}
		u, err := st.GetUserByName(ctx, fs.Arg(0))
		if err != nil {
			return notFound(err, "user", fs.Arg(0))
		}
		now := time.Now()
		if _, err := st.UpdateUser(ctx, u.ID, func(u storage.User) (storage.User, error) {
			u.DisabledAt, u.UpdatedAt = time.Time{}, now
			return u, nil
		}); err != nil {
			return err
		}
		auditCLI(ctx, st, storage.AuditEvent{Type: "user.enabled", UserID: u.ID, Outcome: "success", Detail: fs.Arg(0)})
		fmt.Fprintf(out, "enabled user %s\n", esc(fs.Arg(0)))
		return nil
	})
}

func userList(ctx context.Context, args []string, out io.Writer) error {
	fs := newFlags("user list", "List users: local ones, and those an identity provider signed in (with the provider and their subject there).", out)
	var sf storeFlags
	return withStore(ctx, fs, &sf, args, func(st storage.Store) error {
		us, err := st.ListUsers(ctx)
		if err != nil {
			return err
		}
		groups, err := st.ListAllUserGroups(ctx)
		if err != nil {
			return err
		}
		ids, err := st.ListUpstreamIdentities(ctx)
		if err != nil {
			return err
		}
		upstream := map[string]storage.UpstreamIdentity{}
		for _, id := range ids {
			upstream[id.UserID] = id
		}
		tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "USERNAME\tID\tCREATED\tSTATUS\tGROUPS\tPROVIDER\tUPSTREAM SUBJECT")
		for _, u := range us {
			provider, subject := "local", "-"
			if id, ok := upstream[u.ID]; ok {
				provider, subject = esc(id.Provider), esc(id.Subject)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", esc(u.Username), esc(u.ID), fmtTime(u.CreatedAt), userStatus(u), groupList(groups[u.ID]), provider, subject)
		}
		return tw.Flush()
	})
}

func userDelete(ctx context.Context, args []string, out io.Writer) error {
	fs := newFlags("user delete", "Delete a user with their sessions, consents and tokens: gatehouse user delete [flags] USERNAME", out)
	var sf storeFlags
	return withStore(ctx, fs, &sf, args, func(st storage.Store) error {
		if fs.NArg() != 1 {
			return errors.New("usage: gatehouse user delete USERNAME")
		}
		u, err := st.GetUserByName(ctx, fs.Arg(0))
		if err != nil {
			return notFound(err, "user", fs.Arg(0))
		}
		if err := st.DeleteUser(ctx, u.ID); err != nil {
			return err
		}
		auditCLI(ctx, st, storage.AuditEvent{Type: "user.deleted", UserID: u.ID, Outcome: "success", Detail: fs.Arg(0)})
		fmt.Fprintf(out, "deleted user %s\n", fs.Arg(0))
		return nil
	})
}

func runResource(ctx context.Context, args []string, out io.Writer) error {
	return subcommands(ctx, "resource", args, out, map[string]func(context.Context, []string, io.Writer) error{
		"add": resourceAdd, "list": resourceList, "delete": resourceDelete,
	})
}

func resourceAdd(ctx context.Context, args []string, out io.Writer) error {
	fs := newFlags("resource add", "Register (or replace) a protected resource: gatehouse resource add [flags] URL", out)
	var sf storeFlags
	name := fs.String("name", "", "display name")
	var scopes, defaults listFlag
	fs.Var(&scopes, "scope", `scope as NAME or "NAME=Description" or "NAME=Description=tool1,tool2" (repeatable)`)
	fs.Var(&defaults, "default-scope", "scope granted when a request names none (repeatable)")
	var scopeGroups listFlag
	fs.Var(&scopeGroups, "scope-group", `"SCOPE=GROUP[,GROUP...]": grant SCOPE only to users in one of the groups (repeatable; gatehouse user group add)`)
	var scopeClaims listFlag
	fs.Var(&scopeClaims, "scope-claim", `"SCOPE=CLAIM=VALUE[,VALUE...]": grant SCOPE only to users whose upstream provider gave CLAIM one of the values at their last sign-in (repeatable; the provider must list CLAIM in policy_claims; local users have no claims). With --scope-group too, all must hold`)
	acceptCC := fs.Bool("accept-client-credentials", false, "also issue tokens without a user (client_credentials) for this resource; only if every tool is safe to call with no user behind it")
	return withStore(ctx, fs, &sf, args, func(st storage.Store) error {
		if fs.NArg() != 1 {
			return errors.New("usage: gatehouse resource add [flags] URL")
		}
		canon, err := as.CanonicalResource(fs.Arg(0))
		if err != nil {
			return fmt.Errorf("resource URL %q: %w", fs.Arg(0), err)
		}
		r := storage.Resource{URL: canon, Name: *name, DefaultScopes: defaults, AcceptClientCredentials: *acceptCC}
		for _, s := range scopes {
			parts := strings.SplitN(s, "=", 3)
			sc := storage.Scope{Name: parts[0]}
			if len(parts) > 1 {
				sc.Description = parts[1]
			}
			if len(parts) > 2 && parts[2] != "" {
				sc.Tools = strings.Split(parts[2], ",")
			}
			r.Scopes = append(r.Scopes, sc)
		}
		for _, d := range defaults {
			if !slices.ContainsFunc(r.Scopes, func(s storage.Scope) bool { return s.Name == d }) {
				return fmt.Errorf("--default-scope %q is not one of the resource's --scope values", d)
			}
		}
		if r.ScopePolicies, err = parseScopeGroups(scopeGroups, r.Scopes); err != nil {
			return err
		}
		if r.ScopePolicies, err = parseScopeClaims(scopeClaims, r.Scopes, r.ScopePolicies); err != nil {
			return err
		}
		now := time.Now()
		r.CreatedAt, r.UpdatedAt = now, now
		_, getErr := st.GetResource(ctx, canon)
		if err := st.PutResource(ctx, r); err != nil {
			return err
		}
		detail := "users only"
		if r.AcceptClientCredentials {
			detail = "accepts client_credentials"
		}
		verb := "registered"
		if getErr == nil {
			verb = "replaced"
		}
		var names []string
		for _, sc := range r.Scopes {
			names = append(names, sc.Name)
		}
		auditCLI(ctx, st, storage.AuditEvent{Type: "resource.registered", Resource: canon, Outcome: "success",
			Detail: fmt.Sprintf("%s; %s; scopes %q, default %q", verb, detail, strings.Join(names, " "), strings.Join(r.DefaultScopes, " ")) + policyDetail(r.ScopePolicies)})
		fmt.Fprintf(out, "%s resource %s (%s)\n", verb, canon, detail)
		if noDefaultScope(r) {
			fmt.Fprintf(out, "warning: %s; pass --default-scope NAME (repeatable) to grant those by default\n", noDefaultScopeWarning)
		}
		return nil
	})
}

// parseScopeGroups reads the --scope-group values: each names a scope of
// the resource and the groups one of which a user needs for it. Naming a
// scope twice adds groups.
func parseScopeGroups(vals []string, scopes []storage.Scope) (map[string]storage.ScopePolicy, error) {
	if len(vals) == 0 {
		return nil, nil
	}
	out := map[string]storage.ScopePolicy{}
	for _, v := range vals {
		scope, groups, ok := strings.Cut(v, "=")
		if !ok || groups == "" {
			return nil, fmt.Errorf("--scope-group %q: want SCOPE=GROUP[,GROUP...]", v)
		}
		if !slices.ContainsFunc(scopes, func(s storage.Scope) bool { return s.Name == scope }) {
			return nil, fmt.Errorf("--scope-group %q: %q is not one of the resource's --scope values", v, scope)
		}
		pol := out[scope]
		for _, g := range strings.Split(groups, ",") {
			if err := checkGroupName(g); err != nil {
				return nil, fmt.Errorf("--scope-group %q: %w", v, err)
			}
			if !slices.Contains(pol.Groups, g) {
				pol.Groups = append(pol.Groups, g)
			}
		}
		out[scope] = pol
	}
	return out, nil
}

// parseScopeClaims reads the --scope-claim values into policies (which it
// may extend, or create): each names a scope of the resource, a claim and
// the values one of which a user's provider must have given. Naming a
// scope's claim twice adds values.
func parseScopeClaims(vals []string, scopes []storage.Scope, policies map[string]storage.ScopePolicy) (map[string]storage.ScopePolicy, error) {
	if len(vals) == 0 {
		return policies, nil
	}
	if policies == nil {
		policies = map[string]storage.ScopePolicy{}
	}
	for _, v := range vals {
		parts := strings.SplitN(v, "=", 3)
		if len(parts) != 3 || parts[2] == "" {
			return nil, fmt.Errorf("--scope-claim %q: want SCOPE=CLAIM=VALUE[,VALUE...]", v)
		}
		scope, claim := parts[0], parts[1]
		if !slices.ContainsFunc(scopes, func(s storage.Scope) bool { return s.Name == scope }) {
			return nil, fmt.Errorf("--scope-claim %q: %q is not one of the resource's --scope values", v, scope)
		}
		if err := config.CheckClaimName(claim); err != nil {
			return nil, fmt.Errorf("--scope-claim %q: %w", v, err)
		}
		pol := policies[scope]
		if pol.Claims == nil {
			pol.Claims = map[string][]string{}
		}
		for _, val := range strings.Split(parts[2], ",") {
			if err := config.CheckClaimValue(val); err != nil {
				return nil, fmt.Errorf("--scope-claim %q: %w", v, err)
			}
			if !slices.Contains(pol.Claims[claim], val) {
				pol.Claims[claim] = append(pol.Claims[claim], val)
			}
		}
		policies[scope] = pol
	}
	return policies, nil
}

// policyDetail is what the resource.registered event adds for scope
// policies: nothing without any.
func policyDetail(p map[string]storage.ScopePolicy) string {
	var out string
	if g := policyText(p); g != "" {
		out += fmt.Sprintf(", groups needed %q", g)
	}
	if c := claimText(p); c != "" {
		out += fmt.Sprintf(", claims needed %q", c)
	}
	return out
}

// policyText shows the groups conditions of scope policies as the
// --scope-group values that make them, in scope order, escaped:
// "notes:write=editors,admins".
func policyText(p map[string]storage.ScopePolicy) string {
	var out []string
	for _, scope := range slices.Sorted(maps.Keys(p)) {
		if len(p[scope].Groups) > 0 {
			out = append(out, esc(scope)+"="+groupList(p[scope].Groups))
		}
	}
	return strings.Join(out, " ")
}

// claimText shows the claim conditions of scope policies as the
// --scope-claim values that make them, in scope and claim order, escaped:
// "notes:write=department=engineering,research".
func claimText(p map[string]storage.ScopePolicy) string {
	var out []string
	for _, scope := range slices.Sorted(maps.Keys(p)) {
		cl := p[scope].Claims
		for _, c := range slices.Sorted(maps.Keys(cl)) {
			out = append(out, esc(scope)+"="+esc(c)+"="+groupList(cl[c]))
		}
	}
	return strings.Join(out, " ")
}

// allPolicyText shows every condition of scope policies: the groups as
// policyText does, then "claims" and the claims as claimText does.
func allPolicyText(p map[string]storage.ScopePolicy) string {
	g, c := policyText(p), claimText(p)
	if c == "" {
		return g
	}
	return strings.TrimSpace(g + " claims " + c)
}

// noDefaultScope reports whether r has scopes but no default scope. A
// request naming no scope (what most MCP clients send first) then gets a
// token with no scope: valid, and what a gateway route whose baseline is
// empty wants (its clients step up), so the server issues it, but an
// operator who forgot --default-scope sees tokens that unlock nothing.
func noDefaultScope(r storage.Resource) bool {
	return len(r.Scopes) > 0 && len(r.DefaultScopes) == 0
}

// noDefaultScopeWarning says what noDefaultScope means.
const noDefaultScopeWarning = "no default scope: a client that asks for no scope (most MCP clients at first) gets a token with no scope, which unlocks only what needs none"

func resourceList(ctx context.Context, args []string, out io.Writer) error {
	fs := newFlags("resource list", "List protected resources.", out)
	var sf storeFlags
	return withStore(ctx, fs, &sf, args, func(st storage.Store) error {
		rs, err := st.ListResources(ctx)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "RESOURCE\tNAME\tSCOPES\tDEFAULT\tTOKENS FOR\tGROUPS NEEDED")
		warn := false
		for _, r := range rs {
			var names []string
			for _, s := range r.Scopes {
				names = append(names, esc(s.Name))
			}
			who := "users"
			if r.AcceptClientCredentials {
				who = "users, clients"
			}
			defaults := esc(strings.Join(r.DefaultScopes, " "))
			if noDefaultScope(r) {
				defaults, warn = "(none!)", true
			}
			policies := allPolicyText(r.ScopePolicies)
			if policies == "" {
				policies = "-"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", esc(r.URL), esc(r.Name), strings.Join(names, " "), defaults, who, policies)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		if warn {
			fmt.Fprintf(out, "(none!) %s; set one with gatehouse resource add URL --scope ... --default-scope NAME\n", noDefaultScopeWarning)
		}
		return nil
	})
}

func resourceDelete(ctx context.Context, args []string, out io.Writer) error {
	fs := newFlags("resource delete", "Delete a protected resource: gatehouse resource delete [flags] URL", out)
	var sf storeFlags
	return withStore(ctx, fs, &sf, args, func(st storage.Store) error {
		if fs.NArg() != 1 {
			return errors.New("usage: gatehouse resource delete URL")
		}
		canon, err := as.CanonicalResource(fs.Arg(0))
		if err != nil {
			return err
		}
		if err := st.DeleteResource(ctx, canon); err != nil {
			return notFound(err, "resource", canon)
		}
		auditCLI(ctx, st, storage.AuditEvent{Type: "resource.deleted", Resource: canon, Outcome: "success"})
		fmt.Fprintf(out, "deleted resource %s\n", canon)
		return nil
	})
}

func runKeys(ctx context.Context, args []string, out io.Writer) error {
	return subcommands(ctx, "keys", args, out, map[string]func(context.Context, []string, io.Writer) error{
		"list": keysList, "rotate": keysRotate, "withdraw": keysWithdraw, "gen-kek": keysGenKEK, "rekey": keysRekey,
	})
}

func keysList(ctx context.Context, args []string, out io.Writer) error {
	fs := newFlags("keys list", "List signing keys (public information only) in the state the signer sees them: next (published, signs after keys.activation_delay), signing, verify-only (published for tokens it signed), expired (out of the JWKS until garbage collection) or withdrawn; and when each state changes.", out)
	var sf storeFlags
	return withConfigStore(ctx, fs, &sf, args, func(c config.Config, st storage.Store) error {
		keys, err := st.ListSigningKeys(ctx)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "KID\tALG\tCREATED\tSTATE\tNEXT CHANGE")
		for _, s := range token.KeyStates(keys, time.Now(), time.Duration(c.Keys.ActivationDelay)) {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", s.Key.ID, s.Key.Algorithm, fmtTime(s.Key.CreatedAt), s.State, keyChange(s))
		}
		return tw.Flush()
	})
}

// keyChange says when and how a key's state next changes, for keys list.
func keyChange(s token.KeyStatus) string {
	switch {
	case s.Next != "":
		return fmt.Sprintf("%s at %s", s.Next, fmtTime(s.Until))
	case s.State == token.StateSigning:
		return "none: signs until the next keys rotate"
	case s.State == token.StateWithdrawn:
		return fmt.Sprintf("none: withdrawn at %s, verifies nothing; deleted by garbage collection after %s", fmtTime(s.Key.WithdrawnAt), fmtTime(s.Key.RemoveAfter))
	}
	return "none: deleted by the next garbage collection"
}

func keysRotate(ctx context.Context, args []string, out io.Writer) error {
	fs := newFlags("keys rotate", "Add a new signing key. It is published at once and signs after keys.activation_delay (so every replica and resource server knows it first); the previous key stays published for keys.retire_for so tokens it signed keep verifying.", out)
	var sf storeFlags
	return withConfigStore(ctx, fs, &sf, args, func(c config.Config, st storage.Store) error {
		kr, err := openKeyring(ctx, c, st)
		if err != nil {
			return err
		}
		kid, err := kr.Rotate(ctx)
		if err != nil {
			return err
		}
		auditCLI(ctx, st, storage.AuditEvent{Type: "key.rotated", Outcome: "success", Detail: "new kid " + kid})
		fmt.Fprintf(out, "new signing key %s: published now, signs from %s (keys.activation_delay %s); the previous key signs until then\n",
			kid, time.Now().Add(time.Duration(c.Keys.ActivationDelay)).UTC().Format(time.RFC3339), time.Duration(c.Keys.ActivationDelay))
		return nil
	})
}

func keysWithdraw(ctx context.Context, args []string, out io.Writer) error {
	fs := newFlags("keys withdraw", "Withdraw signing keys at once, for a leaked key: gatehouse keys withdraw KID... (or --all). A withdrawn key leaves the JWKS and stops verifying on every replica at its next key reload (keys.refresh_interval), and at resource servers when their cached JWKS expires; tokens it signed are refused from then on. Its private key is deleted. The key that signs (or a rotated-in key not signing yet) is first replaced by a new key, which signs at once.", out)
	var sf storeFlags
	all := fs.Bool("all", false, "rotate in a new key and withdraw every other key (after a KEK leak)")
	return withConfigStore(ctx, fs, &sf, args, func(c config.Config, st storage.Store) error {
		if *all == (fs.NArg() > 0) {
			return errors.New("usage: gatehouse keys withdraw KID... | gatehouse keys withdraw --all")
		}
		return withdrawKeys(ctx, c, st, fs.Args(), *all, out)
	})
}

// withdrawKeys withdraws the signing keys kids, or with all every key but
// a new one.
func withdrawKeys(ctx context.Context, c config.Config, st storage.Store, kids []string, all bool, out io.Writer) error {
	kr, err := openKeyring(ctx, c, st)
	if err != nil {
		return err
	}
	if all {
		kid, err := kr.Rotate(ctx)
		if err != nil {
			return err
		}
		auditCLI(ctx, st, storage.AuditEvent{Type: "key.rotated", Outcome: "success", Detail: "new kid " + kid + ", to withdraw every other key"})
		fmt.Fprintf(out, "new signing key %s\n", kid)
		keys, err := kr.Keys(ctx)
		if err != nil {
			return err
		}
		for _, k := range keys {
			if k.ID != kid && k.WithdrawnAt.IsZero() {
				kids = append(kids, k.ID)
			}
		}
	}
	for _, kid := range kids {
		w, err := kr.Withdraw(ctx, kid)
		if w.Replacement != "" {
			auditCLI(ctx, st, storage.AuditEvent{Type: "key.rotated", Outcome: "success", Detail: "new kid " + w.Replacement + ", replacing " + kid + " to withdraw it"})
			fmt.Fprintf(out, "new signing key %s replaces %s and signs now\n", w.Replacement, kid)
		}
		switch {
		case errors.Is(err, storage.ErrNotFound):
			return fmt.Errorf("no signing key %q (gatehouse keys list shows them)", kid)
		case err != nil:
			return err
		case w.Already:
			fmt.Fprintf(out, "signing key %s was already withdrawn at %s\n", kid, fmtTime(w.Key.WithdrawnAt))
			continue
		}
		auditCLI(ctx, st, storage.AuditEvent{Type: "key.withdrawn", Outcome: "success", Detail: "kid " + kid})
		fmt.Fprintf(out, "withdrew signing key %s at %s\n", kid, fmtTime(w.Key.WithdrawnAt))
	}
	fmt.Fprintf(out, "running replicas drop withdrawn keys within keys.refresh_interval (%s); resource servers when their cached JWKS expires (rs: 60 s after that)\n",
		time.Duration(c.Keys.RefreshInterval))
	return nil
}

func keysRekey(ctx context.Context, args []string, out io.Writer) error {
	fs := newFlags("keys rekey", "Re-encrypt every signing key under a new key-encryption key, to rotate the KEK: gatehouse keys rekey --new-key-file FILE (make one with keys gen-kek). Stop every replica first: one still running with the old KEK would seal its next signing key under it. Then point keys.encryption_key_file at FILE. After a KEK leak, also run keys withdraw --all before starting the replicas: rekeying alone leaves the same signing keys, which an old database backup and the leaked KEK still open.", out)
	var sf storeFlags
	sf.register(fs)
	newFile := fs.String("new-key-file", "", "the new key-encryption key (32 bytes, hex or base64), e.g. from keys gen-kek")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *newFile == "" {
		return errors.New("usage: gatehouse keys rekey --new-key-file FILE")
	}
	newKEK, err := config.ReadKeyFile(*newFile)
	if err != nil {
		return fmt.Errorf("read %s: %w", *newFile, err)
	}
	c, _, err := sf.load()
	if err != nil {
		return err
	}
	if len(c.Keys.EncryptionKey) != 32 {
		return errors.New("no current key-encryption key: set keys.encryption_key_file")
	}
	st, err := openExistingStore(ctx, c)
	if err != nil {
		return schemaAdvice(err, sf.how())
	}
	defer st.Close()
	n, err := token.Reseal(ctx, st, c.Keys.EncryptionKey, newKEK, rand.Reader)
	if err != nil {
		return err
	}
	auditCLI(ctx, st, storage.AuditEvent{Type: "key.resealed", Outcome: "success", Detail: fmt.Sprintf("%d signing keys re-encrypted under a new key-encryption key", n)})
	fmt.Fprintf(out, "re-encrypted %d signing keys under %s; set keys.encryption_key_file to it (and keep the old file until every replica runs with the new one), then start the replicas\n", n, *newFile)
	return nil
}

func keysGenKEK(ctx context.Context, args []string, out io.Writer) error {
	fs := newFlags("keys gen-kek", "Write a new random 32-byte key-encryption key (hex) to FILE with mode 0600: gatehouse keys gen-kek FILE", out)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return errors.New("usage: gatehouse keys gen-kek FILE")
	}
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		return err
	}
	f, err := os.OpenFile(fs.Arg(0), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.WriteString(hex.EncodeToString(k) + "\n"); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	fmt.Fprintf(out, "wrote %s\n", fs.Arg(0))
	return nil
}

func runAudit(ctx context.Context, args []string, out io.Writer) error {
	return subcommands(ctx, "audit", args, out, map[string]func(context.Context, []string, io.Writer) error{
		"query": auditQuery, "tail": auditTail,
	})
}

func auditFlags(fs *flag.FlagSet) (*storage.AuditQuery, *string) {
	q := &storage.AuditQuery{}
	since := fs.String("since", "", "only events after this: a duration ago (90m, 2h, 7d), a date (2026-12-01, midnight UTC) or an RFC 3339 time (2026-12-01T15:04:05Z)")
	fs.StringVar(&q.Type, "type", "", "an event type (token.issued) or a category (token, or token.): one of "+strings.Join(auditCategories, ", "))
	fs.StringVar(&q.UserID, "user-id", "", "only this user id")
	fs.StringVar(&q.ClientID, "client", "", "only this client id")
	fs.IntVar(&q.Limit, "limit", 100, "at most this many events")
	return q, since
}

// auditCategories are the categories of audit event types: the part
// before the dot of every type any component writes. TestAuditCategories
// checks the list against the types in the source, so that `--type` can
// refuse a category that matches nothing rather than print nothing.
var auditCategories = []string{
	"authorize", "client", "code", "consent", "demo", "gateway", "key", "login", "passkey", "refresh", "registration", "resource", "scope", "token", "user",
}

// auditType turns the value of --type into the query's Type: a category
// alone ("token") becomes its prefix ("token."), which the storage
// matches as a prefix; a category or type whose category is unknown is
// refused with the known ones, since it would match nothing.
func auditType(s string) (string, error) {
	if s == "" {
		return "", nil
	}
	cat, rest, dot := strings.Cut(s, ".")
	if !slices.Contains(auditCategories, cat) {
		return "", fmt.Errorf("--type %q: no audit event has the category %q; use a type such as token.issued or one of the categories %s", s, cat, strings.Join(auditCategories, ", "))
	}
	if !dot || rest == "" {
		return cat + ".", nil
	}
	return s, nil
}

// sinceHelp says what --since accepts, in its errors.
const sinceHelp = "want a duration ago (90m, 2h, 7d), a date (2026-12-01, midnight UTC) or an RFC 3339 time (2026-12-01T15:04:05Z)"

// parseSince reads --since: a duration before now (Go's units, plus d
// for days of 24 hours: 7d, 1d12h), a date (midnight UTC, as the audit
// log prints UTC), or an RFC 3339 time.
func parseSince(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if d, ok := parseDays(s); ok {
		if d < 0 {
			return time.Time{}, fmt.Errorf("--since %q: a duration must not be negative", s)
		}
		return now.Add(-d), nil
	}
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("--since %q: %s", s, sinceHelp)
}

// parseDays is time.ParseDuration that also takes a leading number of
// days: "7d", "1d12h".
func parseDays(s string) (time.Duration, bool) {
	var days time.Duration
	if n, rest, ok := strings.Cut(s, "d"); ok {
		v, err := strconv.ParseUint(n, 10, 16)
		if err != nil {
			return 0, false
		}
		days, s = time.Duration(v)*24*time.Hour, rest
		if s == "" {
			return days, true
		}
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, false
	}
	return days + d, true
}

// printAudit prints one line per event. Clients, users and proxies put
// text into events (client ids, resources, addresses, details): every
// field is escaped, and the key=value fields quoted when they hold a
// space, '=' or '"', so no event can add a line or pose as another field.
// An empty field is left out ("user= client=" says nothing); the detail is
// a detail= field too, since with fields left out a bare "user=alice" at
// the end of the line could pass for the missing user field.
func printAudit(out io.Writer, es []storage.AuditEvent) {
	for _, e := range es {
		var b strings.Builder
		fmt.Fprintf(&b, "%s %-22s", e.Time.UTC().Format(time.RFC3339), esc(e.Type))
		for _, f := range [...]struct{ k, v string }{
			{"outcome", e.Outcome}, {"user", e.UserID}, {"client", e.ClientID}, {"resource", e.Resource}, {"ip", e.IP}, {"detail", e.Detail},
		} {
			if f.v != "" {
				fmt.Fprintf(&b, " %s=%s", f.k, kv(f.v))
			}
		}
		fmt.Fprintln(out, b.String())
	}
}

// esc escapes stored text for the terminal: see [safetext.Escape].
func esc(s string) string { return safetext.Escape(s) }

// kv is esc for the value of a key=value field: quoted (with '"' as \")
// when it holds a space, '=' or '"'.
func kv(s string) string {
	e := safetext.Escape(s)
	if !strings.ContainsAny(e, ` ="`) {
		return e
	}
	return `"` + strings.ReplaceAll(e, `"`, `\"`) + `"`
}

func auditQuery(ctx context.Context, args []string, out io.Writer) error {
	fs := newFlags("audit query", "Print audit events matching the filters.", out)
	var sf storeFlags
	q, since := auditFlags(fs)
	return withStore(ctx, fs, &sf, args, func(st storage.Store) error {
		t, err := parseSince(*since, time.Now())
		if err != nil {
			return err
		}
		if q.Type, err = auditType(q.Type); err != nil {
			return err
		}
		q.Since = t
		es, err := st.QueryAudit(ctx, *q)
		if err != nil {
			return err
		}
		printAudit(out, es)
		return nil
	})
}

func auditTail(ctx context.Context, args []string, out io.Writer) error {
	fs := newFlags("audit tail", "Print the latest audit events and follow new ones until interrupted.", out)
	var sf storeFlags
	q, since := auditFlags(fs)
	follow := fs.Bool("f", true, "keep following new events")
	return withStore(ctx, fs, &sf, args, func(st storage.Store) error {
		t, err := parseSince(*since, time.Now())
		if err != nil {
			return err
		}
		if q.Type, err = auditType(q.Type); err != nil {
			return err
		}
		if t.IsZero() {
			t = time.Now().Add(-time.Hour)
		}
		q.Since = t
		for {
			es, err := st.QueryAudit(ctx, *q)
			if err != nil {
				return err
			}
			printAudit(out, es)
			if len(es) > 0 {
				q.AfterID = es[len(es)-1].ID
			}
			if !*follow {
				return nil
			}
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(time.Second):
			}
		}
	})
}

func runMigrate(ctx context.Context, args []string, out io.Writer) error {
	fs := newFlags("migrate", "Apply database migrations. SQLite also migrates on start; PostgreSQL only here or with `serve --migrate`.", out)
	var sf storeFlags
	sf.register(fs)
	status := fs.Bool("status", false, "list applied and pending migrations instead of applying them")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	c, _, err := sf.load()
	if err != nil {
		return err
	}
	// The status is read without migrating, so that it lists what a
	// database migrated by a newer gatehouse holds.
	switch {
	case *status && c.Storage.Driver == "postgres":
		st, err := postgres.Open(ctx, postgres.Options{DSN: c.Storage.PostgresDSN, Now: time.Now})
		if err != nil {
			return err
		}
		defer st.Close()
		return printMigrationStatus(ctx, st, out)
	case *status && c.Storage.Driver == "sqlite":
		if !exists(c.Storage.SQLitePath) {
			return fmt.Errorf("no database at %s (storage.sqlite_path): nothing is migrated yet", c.Storage.SQLitePath)
		}
		st, err := sqlite.Open(ctx, sqlite.Options{Path: c.Storage.SQLitePath, Now: time.Now, NoMigrate: true})
		if err != nil {
			return err
		}
		defer st.Close()
		return printMigrationStatus(ctx, st, out)
	}
	st, err := openStore(ctx, c, true)
	if err != nil {
		return schemaAdvice(err, sf.how())
	}
	defer st.Close()
	if *status {
		return printMigrationStatus(ctx, st, out)
	}
	fmt.Fprintf(out, "migrations applied (%s)\n", c.Storage.Driver)
	return nil
}

func runConfig(ctx context.Context, args []string, out io.Writer) error {
	return subcommands(ctx, "config", args, out, map[string]func(context.Context, []string, io.Writer) error{
		"check": configCheck,
	})
}

func configCheck(ctx context.Context, args []string, out io.Writer) error {
	fs := newFlags("config check", "Print the effective configuration with secrets redacted, then every problem with it, one per line "+
		"(file:line:column: key: problem, or the environment variable or flag at fault), and their count. Exits 1 if there is any.", out)
	var sf storeFlags
	sf.register(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	var (
		c    config.Config
		dev  bool
		errs config.Problems
	)
	if sf.config == "" {
		var err error
		if c, dev, err = sf.load(); err != nil {
			return err
		}
		errs = config.Collect(c.Validate(dev))
	} else {
		c, errs = checkedConfig(sf.config, os.LookupEnv, false, nil)
	}
	if !errs.Fatal() {
		fmt.Fprint(out, effectiveConfig(c, dev).Redacted())
	}
	if len(errs) == 0 {
		fmt.Fprintln(out, "# configuration OK")
		return nil
	}
	for _, p := range errs {
		fmt.Fprintln(out, p.Error())
	}
	if len(errs) == 1 {
		return errors.New("1 problem")
	}
	return fmt.Errorf("%d problems", len(errs))
}

// checkedConfig is the configuration of a server: the file at path and
// the environment (config.Load), then set (the flags, nil for none), then
// the secrets it names (Resolve), validated. Its problems are those of
// every step at once, in file order; none means it is fit to serve.
func checkedConfig(path string, env func(string) (string, bool), dev bool, set func(*config.Config)) (config.Config, config.Problems) {
	c, err := config.Load(path, env)
	if ps := config.Collect(err); ps.Fatal() {
		return c, ps
	}
	if set != nil {
		set(&c)
	}
	rerr := c.Resolve(env)
	return c, config.Collect(err, rerr, c.Validate(dev))
}

// effectiveConfig fills in the settings of c that are empty but mean a
// value decided elsewhere (by dev mode, the top-level issuer, the gateway's
// defaults), so that config check prints what the server runs with:
// registration.mode token, not "".
func effectiveConfig(c config.Config, dev bool) config.Config {
	c.Registration.Mode = c.Registration.EffectiveMode(dev)
	if len(c.Gateway.Routes) > 0 {
		g := &c.Gateway
		g.Issuer = g.EffectiveIssuer(c.Issuer)
		g.Listen = g.EffectiveListen()
		register := g.ShouldRegisterResources()
		g.RegisterResources = &register
		g.ShutdownTimeout = config.Duration(g.EffectiveShutdownTimeout())
		g.Routes = slices.Clone(g.Routes)
		for i := range g.Routes {
			if g.Routes[i].Title == "" {
				g.Routes[i].Title = gateway.DefaultTitle(g.Routes[i].Name)
			}
		}
	}
	return c
}

// auditCLI records an admin action taken through the CLI.
func auditCLI(ctx context.Context, st storage.Store, e storage.AuditEvent) {
	e.Time = time.Now().UTC()
	e.IP = "cli"
	_ = st.AppendAudit(ctx, e)
}

func notFound(err error, kind, id string) error {
	if errors.Is(err, storage.ErrNotFound) {
		return fmt.Errorf("no %s %q", kind, id)
	}
	return err
}

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

// migrator is what both SQL backends offer `gatehouse migrate --status`.
type migrator interface {
	MigrationStatus(ctx context.Context) ([]sqlstore.Migration, error)
}

func printMigrationStatus(ctx context.Context, st any, out io.Writer) error {
	m, ok := st.(migrator)
	if !ok {
		return errors.New("this storage backend has no migrations")
	}
	ms, err := m.MigrationStatus(ctx)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "VERSION\tNAME\tSTATE")
	for _, mg := range ms {
		state := "pending"
		if mg.Applied {
			state = "applied " + fmtTime(mg.AppliedAt)
		}
		fmt.Fprintf(tw, "%04d\t%s\t%s\n", mg.Version, mg.Name, state)
	}
	return tw.Flush()
}
