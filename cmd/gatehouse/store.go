package main

import (
	"context"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/gatehouse-mcp/gatehouse/internal/config"
	"github.com/gatehouse-mcp/gatehouse/internal/storage"
	"github.com/gatehouse-mcp/gatehouse/internal/storage/postgres"
	"github.com/gatehouse-mcp/gatehouse/internal/storage/sqlite"
	"github.com/gatehouse-mcp/gatehouse/internal/storage/sqlstore"
	"github.com/gatehouse-mcp/gatehouse/internal/token"
)

// defaultDataDir is where `gatehouse dev` keeps its state.
const defaultDataDir = "./gatehouse-data"

// storeFlags are the flags every admin command uses to find the store:
// a config file (production) or a dev data directory.
type storeFlags struct {
	config  string
	data    string
	dataSet bool // --data was given
}

func (s *storeFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&s.config, "config", os.Getenv("GATEHOUSE_CONFIG"), "config file (YAML or JSON); env GATEHOUSE_CONFIG. Without it, the dev data directory is used")
	s.data = defaultDataDir
	fs.Func("data", "dev data `DIR`, used when no --config is given (default "+defaultDataDir+", which must then hold the data of a gatehouse dev)", func(v string) error {
		s.data, s.dataSet = v, true
		return nil
	})
}

// how names the store as these flags did, for messages that say what to
// run next: "--config FILE", "--data DIR", or empty for a configuration
// from the environment alone (never, as load refuses it).
func (s *storeFlags) how() string {
	switch {
	case s.config != "":
		return "--config " + s.config
	case s.dataSet:
		return "--data " + s.data
	}
	return ""
}

// load returns the effective configuration: from the config file and the
// environment, or the dev layout of the data directory. It never creates
// anything: only `gatehouse dev` makes a data directory and its
// key-encryption key. A key made here would seal nothing the database
// holds (so the command fails with "cannot open sealed data"), and a
// store made here would let an operator who forgot --config (say,
// rotating keys after a compromise) succeed on the wrong database.
func (s *storeFlags) load() (config.Config, bool, error) {
	if s.config == "" {
		if err := checkDevData(s.data, s.dataSet); err != nil {
			return config.Config{}, true, err
		}
		c, err := devConfig(s.data, "127.0.0.1:8080", false)
		return c, true, err
	}
	c, err := config.Load(s.config, os.LookupEnv)
	if err != nil {
		return c, false, err
	}
	if err := c.Resolve(os.LookupEnv); err != nil {
		return c, false, err
	}
	return c, false, nil
}

// Files of a dev data directory.
const (
	devDatabase = "gatehouse.db"
	devKEK      = "kek"
	// devMarker is the file `gatehouse dev` writes into its data
	// directory. A `gatehouse serve` keeps its SQLite database at the
	// same default path (./gatehouse-data/gatehouse.db), so a database
	// alone does not make a dev directory: admin commands given no
	// --config act only where this mark is.
	devMarker = "gatehouse-dev"
)

// devMarkerText is the content of devMarker, for whoever opens it.
const devMarkerText = "This directory holds the data of `gatehouse dev` (SQLite database, key-encryption key).\n" +
	"Admin commands given --data DIR (or neither --data nor --config, for ./gatehouse-data) act on it.\n"

// checkDevData returns nil if dir holds the data of a `gatehouse dev`,
// else an error saying what the directory holds and which flag to pass.
// given reports whether --data named dir.
func checkDevData(dir string, given bool) error {
	db, kek, marker := filepath.Join(dir, devDatabase), filepath.Join(dir, devKEK), filepath.Join(dir, devMarker)
	switch {
	case !exists(db) && !given:
		return fmt.Errorf("no --config (or GATEHOUSE_CONFIG) and no `gatehouse dev` data in %s: pass --config FILE for a server, or --data DIR for a dev data directory (run `gatehouse dev` first)", dir)
	case !exists(db):
		return fmt.Errorf("--data %s: no `gatehouse dev` data there (no %s); only `gatehouse dev --data %s` creates it. For a server, pass --config FILE instead", dir, devDatabase, dir)
	case !exists(kek):
		return fmt.Errorf("%s is not a `gatehouse dev` database: there is no key-encryption key (%s) next to it, so `gatehouse serve` made it (storage.sqlite_path defaults to ./gatehouse-data/gatehouse.db). "+
			"Pass --config FILE with that server's configuration (its storage and keys.encryption_key_file); nothing was written", db, kek)
	case !exists(marker):
		return fmt.Errorf("%s holds a database and a key-encryption key but not the mark `gatehouse dev` leaves (%s): if a `gatehouse serve` uses them, pass --config FILE with its configuration; "+
			"if an older `gatehouse dev` made them, start `gatehouse dev --data %s` once to mark the directory", dir, marker, dir)
	}
	return nil
}

// exists reports whether path exists; an error other than "does not
// exist" counts as existing, so that opening it reports the error.
func exists(path string) bool {
	_, err := os.Stat(path)
	return !errors.Is(err, fs.ErrNotExist)
}

// devConfig is the configuration of `gatehouse dev` for a data directory:
// SQLite and a key-encryption key inside it. With create (`gatehouse dev`
// only) the directory, the key and the mark are made when missing;
// without, they must exist ([checkDevData]).
func devConfig(dir, listen string, create bool) (config.Config, error) {
	c := config.Default()
	c.Listen = listen
	c.AdminListen = ""
	c.Issuer = "http://" + listen
	c.Storage.SQLitePath = filepath.Join(dir, devDatabase)
	kekPath := filepath.Join(dir, devKEK)
	var kek []byte
	var err error
	if create {
		kek, err = initDevData(dir)
	} else {
		kek, err = config.ReadKeyFile(kekPath)
		if err != nil {
			err = fmt.Errorf("read %s: %w", kekPath, err)
		}
	}
	if err != nil {
		return c, err
	}
	c.Keys.EncryptionKey = kek
	c.Keys.EncryptionKeyFile = kekPath
	return c, nil
}

// initDevData makes dir a dev data directory: the directory, its
// key-encryption key and its mark, each unless it exists. It returns the
// key. A database without a key next to it is refused: it is a serve's
// (sealed under a key kept elsewhere), and a new key would seal nothing
// it holds.
func initDevData(dir string) ([]byte, error) {
	db, kekPath := filepath.Join(dir, devDatabase), filepath.Join(dir, devKEK)
	if exists(db) && !exists(kekPath) {
		return nil, fmt.Errorf("%s has no key-encryption key (%s) next to it: `gatehouse serve` made it, not `gatehouse dev` (storage.sqlite_path defaults to ./gatehouse-data/gatehouse.db); "+
			"give dev another --data DIR, or run the server with `gatehouse serve --config FILE`", db, kekPath)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create data directory: %w", err)
	}
	kek, err := loadOrCreateKey(kekPath)
	if err != nil {
		return nil, err
	}
	marker := filepath.Join(dir, devMarker)
	if !exists(marker) {
		if err := os.WriteFile(marker, []byte(devMarkerText), 0o600); err != nil {
			return nil, fmt.Errorf("write %s: %w", marker, err)
		}
	}
	return kek, nil
}

// loadOrCreateKey reads a 32-byte key file, creating it (mode 0600) with a
// random key when it does not exist. The key is written to a temporary
// file and linked into place, which fails if the file appeared meanwhile:
// two processes starting at once agree on one key, and nobody reads a
// half-written file.
func loadOrCreateKey(path string) ([]byte, error) {
	k, err := config.ReadKeyFile(path)
	if err == nil {
		return k, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	k = make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		return nil, err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".kek-*")
	if err != nil {
		return nil, fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.WriteString(hex.EncodeToString(k) + "\n"); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return nil, fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Link(tmp.Name(), path); errors.Is(err, fs.ErrExist) {
		return config.ReadKeyFile(path) // another process won the race
	} else if err != nil {
		return nil, fmt.Errorf("write %s: %w", path, err)
	}
	return k, nil
}

// openStore opens the configured backend. SQLite migrates itself on open;
// PostgreSQL migrates only when migrate is set (`gatehouse migrate`, or
// `serve --migrate`), because several replicas share one database.
func openStore(ctx context.Context, c config.Config, migrate bool) (storage.Store, error) {
	switch c.Storage.Driver {
	case "sqlite":
		if err := os.MkdirAll(filepath.Dir(c.Storage.SQLitePath), 0o700); err != nil {
			return nil, fmt.Errorf("create database directory: %w", err)
		}
		st, err := sqlite.Open(ctx, sqlite.Options{Path: c.Storage.SQLitePath, Now: time.Now})
		if err != nil {
			return nil, err
		}
		// The database holds password hashes, the audit log and the
		// sealed signing keys: owner only, whatever the umask or a
		// directory made beforehand. SQLite gives its -wal and -shm
		// files the database file's mode.
		for _, suffix := range []string{"", "-wal", "-shm"} {
			if err := os.Chmod(c.Storage.SQLitePath+suffix, 0o600); err != nil && !errors.Is(err, fs.ErrNotExist) {
				st.Close()
				return nil, fmt.Errorf("restrict %s: %w", c.Storage.SQLitePath+suffix, err)
			}
		}
		return st, nil
	case "postgres":
		st, err := postgres.Open(ctx, postgres.Options{DSN: c.Storage.PostgresDSN, Now: time.Now, AutoMigrate: migrate})
		if err != nil {
			return nil, err
		}
		// Unmigrated, the first query would fail with "relation … does
		// not exist"; migrated by a newer binary, queries could run
		// against tables they were not written for.
		if !migrate {
			if err := st.CheckSchema(ctx); err != nil {
				st.Close()
				return nil, err
			}
		}
		return st, nil
	}
	return nil, fmt.Errorf("unknown storage driver %q", c.Storage.Driver)
}

// openExistingStore opens the store of an admin command: one a server
// already made. Unlike openStore it never creates or migrates a SQLite
// database. A relative storage.sqlite_path resolves against the working
// directory, so an admin command run from elsewhere would otherwise make
// an empty database there and report success on it (a key rotated or a
// client blocked where no server looks).
func openExistingStore(ctx context.Context, c config.Config) (storage.Store, error) {
	if c.Storage.Driver != "sqlite" {
		return openStore(ctx, c, false)
	}
	path := c.Storage.SQLitePath
	if _, err := os.Stat(path); err != nil {
		abs, _ := filepath.Abs(path)
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("no database at storage.sqlite_path %s (%s): admin commands act on the database a server made, and a relative path is taken from the working directory; run them where that server runs, or create the database first with gatehouse migrate and the same --config", path, abs)
		}
		return nil, fmt.Errorf("storage.sqlite_path %s: %w", path, err)
	}
	st, err := sqlite.Open(ctx, sqlite.Options{Path: path, Now: time.Now, NoMigrate: true})
	if err != nil {
		return nil, err
	}
	if err := st.CheckSchema(ctx); err != nil {
		st.Close()
		return nil, err
	}
	return st, nil
}

// schemaAdvice turns a [*sqlstore.SchemaError] from [openStore] into what
// to run about it; other errors pass unchanged. how names the store's
// flags as the command was given them ("--config FILE", "--data DIR"),
// empty for a configuration from the environment alone.
func schemaAdvice(err error, how string) error {
	var se *sqlstore.SchemaError
	if !errors.As(err, &se) {
		return err
	}
	with := "gatehouse migrate"
	if how != "" {
		with += " " + how
	}
	if se.Newer() {
		return fmt.Errorf("%w: a newer gatehouse migrated it; run that version (`%s --status` lists the versions)", se, with)
	}
	return fmt.Errorf("%w: run `%s` (or `gatehouse serve --migrate`) with the same configuration", se, with)
}

// warnKeyFileMode warns when the key-encryption key file can be read by
// anyone but its owner: whoever reads it and the database can sign tokens.
// It is a warning, not a refusal, because secret volumes (Kubernetes'
// among them) are often mounted 0644 in containers of one user.
func warnKeyFileMode(log *slog.Logger, path string) {
	if path == "" {
		return
	}
	if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o077 != 0 {
		log.Warn("the key-encryption key file is readable by group or others; chmod 600 it", "path", path, "mode", fmt.Sprintf("%04o", fi.Mode().Perm()))
	}
}

// openKeyring opens the signing keys, creating the first key if none exists.
func openKeyring(ctx context.Context, c config.Config, st storage.Store) (*token.Keyring, error) {
	if len(c.Keys.EncryptionKey) != 32 {
		return nil, errors.New("no key-encryption key: set keys.encryption_key_file")
	}
	return token.NewKeyring(ctx, token.KeyringOptions{
		Keys:            st,
		EncryptionKey:   c.Keys.EncryptionKey,
		Algorithm:       c.Keys.Algorithm,
		Now:             time.Now,
		RetireFor:       time.Duration(c.Keys.RetireFor),
		RefreshInterval: time.Duration(c.Keys.RefreshInterval),
		ActivationDelay: time.Duration(c.Keys.ActivationDelay),
	})
}

// deriveKey derives a purpose-specific key from the key-encryption key, so
// every replica gets the same CSRF key without another secret to deploy.
func deriveKey(kek []byte, purpose string) []byte {
	k, err := hkdf.Key(sha256.New, kek, nil, "gatehouse "+purpose, 32)
	if err != nil {
		panic(err) // only for lengths HKDF cannot produce
	}
	return k
}

// logOutput is where the process logs: standard error, or in a test what
// it reads the warnings of a running server from.
var logOutput io.Writer = os.Stderr

// newLogger builds the process logger from the log config.
func newLogger(c config.Config) *slog.Logger {
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(c.Log.Level))
	opts := &slog.HandlerOptions{Level: lvl}
	if c.Log.Format == "json" {
		return slog.New(slog.NewJSONHandler(logOutput, opts))
	}
	return slog.New(slog.NewTextHandler(logOutput, opts))
}
