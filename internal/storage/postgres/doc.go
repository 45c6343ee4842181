// Package postgres is the replicated storage backend: storage.Store on
// PostgreSQL through pgx v5 (database/sql via pgx/v5/stdlib).
//
// Transactions run at READ COMMITTED; the atomic verbs rely on conditional
// UPDATEs (a concurrent updater blocks on the row lock, then re-checks the
// condition against the committed row), update closures lock their row
// with SELECT … FOR UPDATE, and key rotation locks its table. Should a
// serialization failure or deadlock still occur, the atomic verbs retry a
// few times and otherwise return storage.ErrConflict.
//
// Open does not migrate unless Options.AutoMigrate is set: `gatehouse
// migrate` runs [Store.Migrate], which holds a transaction-scoped advisory
// lock per migration so replicas starting together apply each once.
//
// Queries live in internal/storage/sqlstore; this package only connects and
// maps PostgreSQL errors. Only cmd/ imports it.
package postgres
