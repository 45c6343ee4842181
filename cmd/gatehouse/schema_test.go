package main

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// postgresConfig writes a serve config file for a fresh PostgreSQL schema
// (dropped when the test ends) and returns its path. It skips the test
// without GATEHOUSE_TEST_POSTGRES_DSN, except in CI.
func postgresConfig(t *testing.T) string {
	t.Helper()
	dsn := os.Getenv("GATEHOUSE_TEST_POSTGRES_DSN")
	if dsn == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("GATEHOUSE_TEST_POSTGRES_DSN is unset in CI; start a server with scripts/pg-test-start.sh")
		}
		t.Skip("GATEHOUSE_TEST_POSTGRES_DSN is unset; start a server with scripts/pg-test-start.sh")
	}
	b := make([]byte, 8)
	rand.Read(b)
	schema := "gatehouse_cmd_" + hex.EncodeToString(b)
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if _, err := db.Exec("DROP SCHEMA IF EXISTS " + pgx.Identifier{schema}.Sanitize() + " CASCADE"); err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
		}
		db.Close()
	})
	if _, err := db.Exec("CREATE SCHEMA " + pgx.Identifier{schema}.Sanitize()); err != nil {
		t.Fatal(err)
	}
	sep := "?"
	if strings.Contains(dsn, "?") {
		sep = "&"
	}
	cfg := serveConfig(t, "https://as.example.com", "")
	dsnFile := filepath.Join(filepath.Dir(cfg), "dsn")
	if err := os.WriteFile(dsnFile, []byte(dsn+sep+"search_path="+schema+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	y, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	y = regexp.MustCompile(`(?m)^storage:\n.*\n`).ReplaceAll(y, fmt.Appendf(nil, "storage:\n  driver: postgres\n  postgres_dsn_file: %q\n", dsnFile))
	if err := os.WriteFile(cfg, y, 0o600); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// TestSchemaAdvice: serve and the admin commands on a database never
// migrated, or migrated by a newer gatehouse, stop before any query with
// the schema version and what to run, and serve --migrate fixes the first.
func TestSchemaAdvice(t *testing.T) {
	behind := func(cfg string) *regexp.Regexp {
		return regexp.MustCompile(`^database schema is at version 0, this gatehouse needs [1-9][0-9]*: run ` +
			regexp.QuoteMeta("`gatehouse migrate --config "+cfg+"` (or `gatehouse serve --migrate`)"))
	}
	newer := func(cfg string) *regexp.Regexp {
		return regexp.MustCompile(`^database schema is at version 9999, newer than this gatehouse \(version [1-9][0-9]*\): a newer gatehouse migrated it; run that version ` +
			regexp.QuoteMeta("(`gatehouse migrate --config "+cfg+" --status` lists the versions)"))
	}
	check := func(t *testing.T, args []string, want *regexp.Regexp) {
		t.Helper()
		// A serve that does start stops here instead of hanging the test.
		ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
		defer cancel()
		var out strings.Builder
		err := run(ctx, args, &out)
		if err == nil || !want.MatchString(err.Error()) {
			t.Errorf("gatehouse %s = %v, want an error matching %q", strings.Join(args, " "), err, want)
		}
		if strings.Contains(out.String(), "serving issuer") {
			t.Errorf("gatehouse %s started:\n%s", strings.Join(args, " "), out.String())
		}
	}
	future := func(t *testing.T, cfg string) {
		t.Helper()
		var out strings.Builder
		if err := run(t.Context(), []string{"migrate", "--config", cfg}, &out); err != nil {
			t.Fatalf("migrate: %v", err)
		}
		c, _, err := (&storeFlags{config: cfg}).load()
		if err != nil {
			t.Fatal(err)
		}
		st, err := openStore(t.Context(), c, false)
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		if _, err := st.(interface{ DB() *sql.DB }).DB().ExecContext(t.Context(), "INSERT INTO schema_migrations (version, applied_at) VALUES (9999, 0)"); err != nil {
			t.Fatal(err)
		}
	}

	// status runs the `migrate --status` the advice names: it lists the
	// version this binary does not know.
	status := func(t *testing.T, cfg string) {
		t.Helper()
		var out strings.Builder
		if err := run(t.Context(), []string{"migrate", "--config", cfg, "--status"}, &out); err != nil || !regexp.MustCompile(`(?m)^9999 +applied `).MatchString(out.String()) {
			t.Errorf("migrate --status on a newer database = %v, want version 9999 listed as applied:\n%s", err, out.String())
		}
	}
	t.Run("postgres unmigrated", func(t *testing.T) {
		cfg := postgresConfig(t)
		check(t, []string{"serve", "--config", cfg}, behind(cfg))
		check(t, []string{"user", "list", "--config", cfg}, behind(cfg))
		check(t, []string{"keys", "list", "--config", cfg}, behind(cfg))
		startServe(t, "--config", cfg, "--migrate")
	})
	t.Run("postgres newer", func(t *testing.T) {
		cfg := postgresConfig(t)
		future(t, cfg)
		check(t, []string{"serve", "--config", cfg}, newer(cfg))
		check(t, []string{"serve", "--config", cfg, "--migrate"}, newer(cfg))
		check(t, []string{"client", "list", "--config", cfg}, newer(cfg))
		check(t, []string{"migrate", "--config", cfg}, newer(cfg))
		status(t, cfg)
	})
	t.Run("sqlite newer", func(t *testing.T) {
		cfg := serveConfig(t, "https://as.example.com", "")
		future(t, cfg)
		check(t, []string{"serve", "--config", cfg}, newer(cfg))
		check(t, []string{"client", "list", "--config", cfg}, newer(cfg))
		check(t, []string{"migrate", "--config", cfg}, newer(cfg))
		status(t, cfg)
	})
}
