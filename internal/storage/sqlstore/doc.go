// Package sqlstore implements storage.Store once, on database/sql, for every
// SQL backend (sqlite, postgres).
//
// Why one implementation: SQLite (3.35+) and PostgreSQL both support
// INSERT … ON CONFLICT … DO UPDATE … WHERE and UPDATE … RETURNING, which is
// all the atomic verbs need (single-use codes, refresh rotation, replay,
// throttle windows). So every query is written once, with ? placeholders,
// and a small [Dialect] covers what really differs: placeholder syntax,
// row locks (SELECT … FOR UPDATE on Postgres; SQLite's BEGIN IMMEDIATE
// already serialises writers), table locks, and mapping driver errors to
// the storage sentinels. No regex translation of SQL (dex's approach).
//
// Encoding at rest, identical for both dialects:
//   - times are BIGINT unix microseconds, UTC; the zero time.Time is 0, and
//     an expiry of 0 means "never expires" everywhere (Seen, GarbageCollect,
//     UseOnce). Values read back are UTC and equal to the input truncated
//     to microseconds.
//   - string lists and resource scopes are JSON text; a nil slice is stored
//     as null and an empty one as [], so both round-trip exactly.
//   - byte fields are BLOB/BYTEA; empty is stored as NULL and read as nil.
//
// Behaviour the storage interface leaves open, pinned down by storagetest:
//   - Delete* of a missing row is storage.ErrNotFound (ResetFailures is
//     not: forgetting an unknown key is fine).
//   - Creating a row that references a missing client, user or grant is
//     storage.ErrNotFound (foreign keys). DeleteClient and DeleteUser
//     delete dependents explicitly as well, in one transaction.
//   - RotateRefreshToken cannot return the old token (its result is only
//     an error): after storage.ErrTokenReused the caller reads it with
//     GetRefreshToken(oldHash), which shows the winning rotation's
//     RotatedAt, Retry and RetryKey.
//   - Update closures run inside the write transaction with the row
//     locked; they must not call the Store, and a closure error leaves the
//     row unchanged. They are not retried on storage.ErrConflict (their
//     side effects are unknown); the atomic verbs are.
//
// Statements: with [Dialect.Prepare] (SQLite, whose driver parses the SQL
// on every unprepared call) the Store prepares each query once per pool
// and closes the statements in [Store.Close]. Transactions never prepare
// on the pool (the SQLite writer connection is theirs); they bind an
// already prepared statement with Tx.StmtContext, or run the query plain.
//
// Schema changes are numbered per-dialect .sql files that each backend
// embeds and hands to the Store ([Store.Migrate], [Store.MigrationStatus]).
//
// This package imports no driver; backends (internal/storage/sqlite,
// internal/storage/postgres) import their driver and build a [Dialect].
package sqlstore
