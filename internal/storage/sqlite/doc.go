// Package sqlite is the embedded storage backend: storage.Store on a single
// SQLite file through modernc.org/sqlite (pure Go, builds with
// CGO_ENABLED=0).
//
// The file runs in WAL mode with one writer connection, whose transactions
// begin IMMEDIATE (they take the write lock up front rather than failing
// late on upgrade), and a separate read-only pool, so reads never queue
// behind a write. A connection of its own copies the WAL into the file in
// the background, so that the writer's own checkpoints (past 1,000 pages)
// find little to copy and fsync. Open migrates the schema. Only one process at a time
// should serve from a file (no replicas); busy_timeout covers the CLI
// touching the file while the server runs.
//
// Queries live in internal/storage/sqlstore; this package only opens the
// file and maps SQLite errors. Only cmd/ imports it.
package sqlite
