package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/gatehouse-mcp/gatehouse/internal/as"
	"github.com/gatehouse-mcp/gatehouse/internal/clientreg"
	"github.com/gatehouse-mcp/gatehouse/internal/config"
	"github.com/gatehouse-mcp/gatehouse/internal/storage"
	"github.com/gatehouse-mcp/gatehouse/internal/token"
)

// clientToken dispatches `gatehouse client token create|revoke`: initial
// access tokens for registration.mode token (RFC 7591 §3).
func clientToken(ctx context.Context, args []string, out io.Writer) error {
	return subcommands(ctx, "client token", args, out, map[string]func(context.Context, []string, io.Writer) error{
		"create": clientTokenCreate, "revoke": clientTokenRevoke,
	})
}

func clientTokenCreate(ctx context.Context, args []string, out io.Writer) error {
	fs := newFlags("client token create", "Create an initial access token: with registration.mode token, a client registers at /register by sending it as Authorization: Bearer. It is printed once and stored only as a hash.", out)
	var sf storeFlags
	ttl := fs.Duration("ttl", 30*24*time.Hour, "how long the token is valid; 0 means until revoked")
	once := fs.Bool("single-use", false, "the token registers one client only")
	return withStore(ctx, fs, &sf, args, func(st storage.Store) error {
		if *ttl < 0 {
			return errors.New("--ttl must not be negative")
		}
		now := time.Now()
		tok, id, err := clientreg.CreateInitialAccessToken(ctx, st, nil, now, *ttl, *once)
		if err != nil {
			return err
		}
		auditCLI(ctx, st, storage.AuditEvent{Type: "registration.token_created", Outcome: "success", Detail: "id " + id})
		fmt.Fprintf(out, "initial_access_token: %s\n", tok)
		fmt.Fprintf(out, "id:                   %s\n", id)
		if *ttl > 0 {
			fmt.Fprintf(out, "expires:              %s\n", fmtTime(now.Add(*ttl)))
		} else {
			fmt.Fprintf(out, "expires:              never (revoke with `gatehouse client token revoke ID`)\n")
		}
		if *once {
			fmt.Fprintln(out, "single use:           yes")
		}
		fmt.Fprintln(out, "(shown once: store it now; only its hash is kept)")
		return nil
	})
}

func clientTokenRevoke(ctx context.Context, args []string, out io.Writer) error {
	fs := newFlags("client token revoke", "Revoke an initial access token: gatehouse client token revoke [flags] ID|TOKEN", out)
	var sf storeFlags
	return withStore(ctx, fs, &sf, args, func(st storage.Store) error {
		if fs.NArg() != 1 {
			return errors.New("usage: gatehouse client token revoke ID|TOKEN")
		}
		if err := clientreg.RevokeInitialAccessToken(ctx, st, time.Now(), fs.Arg(0)); err != nil {
			return err
		}
		auditCLI(ctx, st, storage.AuditEvent{Type: "registration.token_revoked", Outcome: "success"})
		fmt.Fprintln(out, "revoked")
		return nil
	})
}

// tokenExchangeOptions maps the token_exchange section of the
// configuration onto the server's options.
func tokenExchangeOptions(x config.TokenExchange) as.TokenExchange {
	o := as.TokenExchange{Lifetime: time.Duration(x.Lifetime)}
	for _, c := range x.Clients {
		o.Clients = append(o.Clients, as.ExchangeClient{ClientID: c.ClientID, SubjectAudiences: c.SubjectAudiences, Audiences: c.Audiences, Scopes: c.Scopes})
	}
	return o
}

// registrationOptions maps the registration section of the configuration
// onto the server's options. dev selects the default mode (open in dev,
// token otherwise) and is what allows cimd.allow_hosts (Validate refuses
// it outside dev).
func registrationOptions(r config.Registration, dev bool) as.Registration {
	o := as.Registration{
		Mode:          as.RegistrationMode(r.EffectiveMode(dev)),
		RateLimit:     r.RateLimit,
		RateWindow:    time.Duration(r.RateWindow),
		MaxClients:    r.MaxClients,
		AllowedScopes: r.AllowedScopes,

		AllowClientCredentials:  r.AllowClientCredentials,
		ClientCredentialsScopes: r.ClientCredentialsScopes,
		UnusedTTL:               time.Duration(r.UnusedTTL),
		IdleTTL:                 time.Duration(r.IdleTTL),
		Redirect: clientreg.RedirectPolicy{
			PrivateUseSchemes:      r.PrivateUseSchemes,
			NoReverseDomainSchemes: !r.ReverseDomainSchemes,
		},
		CIMD: as.CIMD{
			Enabled:        r.CIMD.Mode != "off",
			MinTTL:         time.Duration(r.CIMD.MinTTL),
			MaxTTL:         time.Duration(r.CIMD.MaxTTL),
			FailureTTL:     time.Duration(r.CIMD.FailureTTL),
			MaxClients:     r.CIMD.MaxClients,
			RateLimit:      r.CIMD.RateLimit,
			HostRateLimit:  r.CIMD.HostRateLimit,
			FetchRateLimit: r.CIMD.FetchRateLimit,
		},
	}
	if r.CIMD.Mode == "allowlist" {
		o.CIMD.AllowDomains, o.CIMD.AllowURLs = r.CIMD.AllowDomains, r.CIMD.AllowURLs
	}
	if dev {
		o.CIMD.Fetch.AllowHosts = r.CIMD.AllowHosts
	}
	return o
}

// clientBlock runs `gatehouse client block URL|--host HOST`: metadata
// documents at the URL (or on the host and its subdomains) are never used
// again, and the clients made from them are deleted with everything they
// held. Deleting alone is not a ban: the next request would fetch the
// document again (issue 20 F9).
func clientBlock(ctx context.Context, args []string, out io.Writer) error {
	fs := newFlags("client block", "Block client ID metadata documents: gatehouse client block [flags] CLIENT_ID_URL, or --host HOST for every document on HOST and its subdomains. Their clients are deleted with everything issued to them, and their users get an error page.", out)
	var sf storeFlags
	host := fs.String("host", "", "block every client metadata document on this host and its subdomains")
	reason := fs.String("reason", "", "a note for `gatehouse client blocks`")
	return withStore(ctx, fs, &sf, args, func(st storage.Store) error {
		b := storage.ClientBlock{Reason: *reason, CreatedAt: time.Now()}
		switch {
		case *host != "" && fs.NArg() == 0:
			if strings.ContainsAny(*host, "/:@ *") {
				return fmt.Errorf("--host %q must be a host name such as evil.example", *host)
			}
			b.Target, b.Host = blockTarget(*host), true
		case *host == "" && fs.NArg() == 1:
			if err := clientreg.CheckClientIDURL(fs.Arg(0)); err != nil {
				return fmt.Errorf("%q is not a client metadata document URL: %v", fs.Arg(0), err)
			}
			b.Target = fs.Arg(0)
		default:
			return errors.New("usage: gatehouse client block CLIENT_ID_URL, or gatehouse client block --host HOST")
		}
		if err := st.PutClientBlock(ctx, b); err != nil {
			return err
		}
		cs, err := st.ListClients(ctx)
		if err != nil {
			return err
		}
		var deleted []string
		for _, c := range cs {
			if c.Origin != storage.OriginCIMD {
				continue
			}
			if clientreg.BlockCovers(b.Target, b.Host, c.ID) {
				if err := st.DeleteClient(ctx, c.ID); err != nil && !errors.Is(err, storage.ErrNotFound) {
					return err
				}
				deleted = append(deleted, c.ID)
				auditCLI(ctx, st, storage.AuditEvent{Type: "client.deleted", ClientID: c.ID, Outcome: "success", Detail: "blocked"})
			}
		}
		auditCLI(ctx, st, storage.AuditEvent{Type: "client.blocked", ClientID: b.Target, Outcome: "success", Detail: fmt.Sprintf("host=%v deleted=%d reason=%q", b.Host, len(deleted), b.Reason)})
		fmt.Fprintf(out, "blocked %s; deleted %d client(s) made from its documents, with everything issued to them\n", esc(b.Target), len(deleted))
		for _, id := range deleted {
			fmt.Fprintf(out, "  %s\n", esc(id))
		}
		return nil
	})
}

// blockTarget is the stored form of a blocked host: lower case, without a
// trailing dot.
func blockTarget(host string) string { return strings.ToLower(strings.TrimSuffix(host, ".")) }

// clientUnblock runs `gatehouse client unblock URL|HOST`.
func clientUnblock(ctx context.Context, args []string, out io.Writer) error {
	fs := newFlags("client unblock", "Lift a block: gatehouse client unblock [flags] CLIENT_ID_URL|HOST", out)
	var sf storeFlags
	return withStore(ctx, fs, &sf, args, func(st storage.Store) error {
		if fs.NArg() != 1 {
			return errors.New("usage: gatehouse client unblock CLIENT_ID_URL|HOST")
		}
		target := fs.Arg(0)
		if !clientreg.IsClientIDURL(target) {
			target = blockTarget(target) // a host, as block --host stored it
		}
		if err := st.DeleteClientBlock(ctx, target); err != nil {
			return notFound(err, "block of", fs.Arg(0))
		}
		auditCLI(ctx, st, storage.AuditEvent{Type: "client.unblocked", ClientID: fs.Arg(0), Outcome: "success"})
		fmt.Fprintf(out, "unblocked %s\n", esc(fs.Arg(0)))
		return nil
	})
}

// clientBlocks runs `gatehouse client blocks`: the blocks in force.
func clientBlocks(ctx context.Context, args []string, out io.Writer) error {
	fs := newFlags("client blocks", "List blocked client metadata document URLs and hosts.", out)
	var sf storeFlags
	return withStore(ctx, fs, &sf, args, func(st storage.Store) error {
		bs, err := st.ListClientBlocks(ctx)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "BLOCKED\tKIND\tSINCE\tREASON")
		for _, b := range bs {
			kind := "url"
			if b.Host {
				kind = "host"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", esc(b.Target), kind, fmtTime(b.CreatedAt), esc(b.Reason))
		}
		return tw.Flush()
	})
}

// clientRotateSecret runs `gatehouse client rotate-secret ID`, what an
// operator does about a leaked client secret: a new secret (printed once)
// replaces the old one, and everything issued to the client is revoked in
// the same transaction (storage.ResetClient): its users' grants and
// refresh tokens, and its machine tokens at introspection.
func clientRotateSecret(ctx context.Context, args []string, out io.Writer) error {
	fs := newFlags("client rotate-secret", "Replace a confidential client's secret and revoke everything issued to it: gatehouse client rotate-secret [flags] CLIENT_ID. The new secret is printed once.", out)
	var sf storeFlags
	return withStore(ctx, fs, &sf, args, func(st storage.Store) error {
		if fs.NArg() != 1 {
			return errors.New("usage: gatehouse client rotate-secret CLIENT_ID")
		}
		secret, err := token.NewSecret(rand.Reader)
		if err != nil {
			return err
		}
		now := time.Now()
		_, err = st.ResetClient(ctx, fs.Arg(0), now, func(c storage.Client) (storage.Client, error) {
			if c.SecretHash == "" {
				return c, fmt.Errorf("client %q has no secret (token_endpoint_auth_method %s)", fs.Arg(0), c.TokenEndpointAuthMethod)
			}
			c.SecretHash, c.SecretExpiresAt = token.Hash(secret), time.Time{}
			c.UpdatedAt = now
			return c, nil
		})
		if err != nil {
			return notFound(err, "client", fs.Arg(0))
		}
		auditCLI(ctx, st, storage.AuditEvent{Type: "client.secret_rotated", ClientID: fs.Arg(0), Outcome: "success", Detail: "old secret refused; tokens, codes and consents revoked"})
		fmt.Fprintf(out, "client_id:     %s\nclient_secret: %s\n(shown once: store it now; the old secret no longer works, and everything issued to the client is revoked)\n", esc(fs.Arg(0)), secret)
		return nil
	})
}
