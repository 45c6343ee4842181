package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/gatehouse-mcp/gatehouse/internal/as"
	"github.com/gatehouse-mcp/gatehouse/internal/clientreg"
	"github.com/gatehouse-mcp/gatehouse/internal/config"
	"github.com/gatehouse-mcp/gatehouse/internal/storage"
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
