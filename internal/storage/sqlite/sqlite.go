package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"runtime"
	"strings"
	"sync"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/gatehouse-mcp/gatehouse/internal/storage"
	"github.com/gatehouse-mcp/gatehouse/internal/storage/sqlstore"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// busyTimeoutMS is how long a connection waits for a lock held by another
// connection or process before giving up with SQLITE_BUSY.
const busyTimeoutMS = 5000

// Background checkpoints. SQLite checkpoints from whichever commit takes
// the WAL past 1,000 pages, inside that commit: it copies the pages into
// the database file and fsyncs both, 5–50 ms on a virtio disk added to one
// write in every few hundred (a token request, or a gateway tool call whose
// response waits for its audit record's commit; docs/performance.md). The
// store also checkpoints on a connection of its own (PASSIVE: it neither
// waits for nor blocks the writer and readers), checkpointBusy after its
// last pass while there are writes, so that the writer's own checkpoint
// finds little left to copy and fsync. It cannot replace that one: only a
// writer that finds the WAL wholly copied starts it over, so without it
// the WAL would grow without bound under steady writes. Without writes the
// passes slow down to one per checkpointIdle.
//
// The writer starts the WAL over only at a moment when no reader still
// reads from it; with readers always overlapping (a busy server, or one
// starved of CPU) that moment may never come, and the WAL grew by every
// write. So once it holds walTruncateFrames pages, the checkpointer
// checkpoints with TRUNCATE, between two writes on the writer's own
// connection: it copies what is left, waits (busy_timeout at most) for the
// readers still on old frames — new ones read the database file — and
// empties the WAL file. Writes wait for that moment; reads do not.
const (
	checkpointBusy    = 10 * time.Millisecond
	checkpointIdle    = time.Second
	walTruncateFrames = 2000 // about 8 MB of 4 KiB pages; twice the autocheckpoint
)

// Options configures [Open].
type Options struct {
	// Path is the database file, created if missing. Required; ":memory:"
	// is refused because the writer and the read pool would each get their
	// own empty database.
	Path string
	// Now is the clock for operations whose interface takes no time
	// (Replay.UseOnce, migration timestamps). Nil means time.Now.
	Now func() time.Time
	// NoMigrate leaves the schema as it is, for `gatehouse migrate
	// --status`, which must list the versions of a database migrated by a
	// newer binary (which Open refuses to migrate). Other queries may
	// then fail.
	NoMigrate bool
}

// Store is the SQLite backend. Besides storage.Store it has Migrate and
// MigrationStatus (from sqlstore.Store) for `gatehouse migrate`.
type Store struct {
	*sqlstore.Store
	w         *sql.DB       // the writer connection (sqlstore's), for TRUNCATE
	ck        *sql.DB       // the checkpointer's connection
	stop      chan struct{} // closed by Close
	done      chan struct{} // closed when checkpoints has returned
	closeOnce sync.Once
	closeErr  error
}

var _ storage.Store = (*Store)(nil)

// Dialect is the SQLite flavour of the shared queries.
var Dialect = sqlstore.Dialect{
	Name: "sqlite",
	// The driver parses the SQL on every unprepared call, 15–20% of a
	// token request (docs/performance.md): keep statements prepared.
	Prepare:     true,
	TableExists: "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?",
	// Writers are serialised by BEGIN IMMEDIATE on the single writer
	// connection (_txlock=immediate in the DSN), so ForUpdate, LockTable
	// and MigrationLock stay empty.
	MapError: mapError,
}

// Open opens (creating if needed) the database at opts.Path and applies
// pending migrations (unless opts.NoMigrate).
func Open(ctx context.Context, opts Options) (*Store, error) {
	if opts.Path == "" || opts.Path == ":memory:" || strings.HasPrefix(opts.Path, "file:") {
		return nil, fmt.Errorf("sqlite: Path must be a file path, got %q", opts.Path)
	}
	if strings.ContainsAny(opts.Path, "?#") {
		return nil, fmt.Errorf("sqlite: Path must not contain ? or #, got %q", opts.Path)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}

	common := url.Values{}
	common.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", busyTimeoutMS))
	common.Add("_pragma", "foreign_keys(1)")
	common.Add("_pragma", "synchronous(NORMAL)")

	wq := cloneValues(common)
	// journal_mode is persistent in the file; setting it on the writer,
	// which connects first, is enough.
	wq.Add("_pragma", "journal_mode(WAL)")
	wq.Set("_txlock", "immediate")
	w, err := sql.Open("sqlite", opts.Path+"?"+wq.Encode())
	if err != nil {
		return nil, fmt.Errorf("sqlite: open writer: %w", err)
	}
	// One writer connection: SQLite admits one writer at a time anyway, and
	// queueing in the pool is cheaper than spinning on SQLITE_BUSY.
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	w.SetConnMaxIdleTime(0)
	if err := w.PingContext(ctx); err != nil {
		w.Close()
		return nil, fmt.Errorf("sqlite: open %s: %w", opts.Path, err)
	}

	rq := cloneValues(common)
	// query_only makes a write through the read pool fail loudly instead
	// of competing with the writer connection for the lock.
	rq.Add("_pragma", "query_only(1)")
	r, err := sql.Open("sqlite", opts.Path+"?"+rq.Encode())
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("sqlite: open reader: %w", err)
	}
	// Keep every reader open: database/sql keeps 2 idle connections by
	// default, so under load the other readers were closed and reopened
	// (with their pragmas) and their statements prepared again, over and
	// over: a fifth of a token exchange's CPU (issue 15 item 3).
	readers := max(4, runtime.GOMAXPROCS(0))
	r.SetMaxOpenConns(readers)
	r.SetMaxIdleConns(readers)
	r.SetConnMaxIdleTime(0)

	migrations, err := fs.Sub(migrationFiles, "migrations")
	if err != nil {
		r.Close()
		w.Close()
		return nil, fmt.Errorf("sqlite: %w", err)
	}
	s, err := sqlstore.New(sqlstore.Config{Writer: w, Reader: r, Dialect: Dialect, Migrations: migrations, Now: opts.Now})
	if err != nil {
		r.Close()
		w.Close()
		return nil, fmt.Errorf("sqlite: %w", err)
	}
	if !opts.NoMigrate {
		if _, err := s.Migrate(ctx); err != nil {
			s.Close()
			return nil, fmt.Errorf("sqlite: %w", err)
		}
	}
	ck, err := sql.Open("sqlite", opts.Path+"?"+common.Encode())
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("sqlite: open checkpointer: %w", err)
	}
	ck.SetMaxOpenConns(1)
	ck.SetMaxIdleConns(1)
	ck.SetConnMaxLifetime(0)
	ck.SetConnMaxIdleTime(0)
	st := &Store{Store: s, w: w, ck: ck, stop: make(chan struct{}), done: make(chan struct{})}
	go st.checkpoints()
	return st, nil
}

// checkpoints runs the background checkpoints (see checkpointBusy) until
// Close. A failed pass (the disk, a CLI process holding the checkpoint
// lock) is retried the same way; the writer's own checkpoints go on.
func (s *Store) checkpoints() {
	defer close(s.done)
	wait := checkpointBusy
	var last [2]int64 // the WAL's frames and those copied, after the last pass
	t := time.NewTimer(wait)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		var busy int
		var now [2]int64
		err := s.ck.QueryRowContext(ctx, "PRAGMA wal_checkpoint(PASSIVE)").Scan(&busy, &now[0], &now[1])
		if err == nil && now[0] >= walTruncateFrames {
			// On the writer connection: it waits its turn among the
			// writes instead of polling for the lock between them, which
			// under a stream of writes took long enough for the WAL to
			// quadruple meanwhile.
			err = s.w.QueryRowContext(ctx, "PRAGMA wal_checkpoint(TRUNCATE)").Scan(&busy, &now[0], &now[1])
		}
		cancel()
		switch {
		case err == nil && now[0] < 0:
			// -1: another checkpoint (the writer's own) was running, so
			// there are writes: not a reason to slow down. (Counting it
			// as "nothing written" once let the passes back off to one a
			// second under steady writes, and the WAL grow meanwhile.)
			wait = checkpointBusy
		case err != nil || now == last:
			wait = min(2*wait, checkpointIdle) // nothing was written, or it failed
		default:
			wait = checkpointBusy
		}
		if now[0] >= 0 {
			last = now
		}
		t.Reset(wait)
	}
}

// Close stops the checkpoints and closes the database; the last
// connection to close checkpoints what is left.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		close(s.stop)
		<-s.done
		s.closeErr = errors.Join(s.ck.Close(), s.Store.Close())
	})
	return s.closeErr
}

func cloneValues(v url.Values) url.Values {
	c := make(url.Values, len(v))
	for k, vs := range v {
		c[k] = append([]string(nil), vs...)
	}
	return c
}

// mapError maps SQLite result codes to the storage sentinels, keeping the
// driver error in the chain.
func mapError(err error) error {
	var se *sqlite.Error
	if !errors.As(err, &se) {
		return err
	}
	switch se.Code() {
	case sqlite3.SQLITE_CONSTRAINT_UNIQUE, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY:
		return fmt.Errorf("%w: %w", storage.ErrAlreadyExists, err)
	case sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY:
		return fmt.Errorf("%w (referenced row): %w", storage.ErrNotFound, err)
	}
	// Primary codes live in the low byte of extended codes
	// (SQLITE_BUSY_SNAPSHOT, SQLITE_LOCKED_SHAREDCACHE, …).
	switch se.Code() & 0xff {
	case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED:
		return fmt.Errorf("%w: %w", storage.ErrConflict, err)
	}
	return err
}
