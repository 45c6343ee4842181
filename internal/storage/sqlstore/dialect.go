package sqlstore

import (
	"context"
	"database/sql"
	"strconv"
	"strings"
	"sync"
)

// Dialect is what differs between the SQL backends. Queries are written once
// with ? placeholders; the dialect adapts them and interprets driver errors.
type Dialect struct {
	// Name identifies the dialect in error messages ("sqlite", "postgres").
	Name string
	// Numbered, when true, rewrites ? placeholders to $1, $2, … (Postgres).
	Numbered bool
	// Prepare, when true, prepares each query once per pool and reuses the
	// statement (database/sql keeps it prepared on every connection that
	// ran it). For drivers that parse the SQL anew on every call (SQLite);
	// pgx already caches prepared statements per connection.
	Prepare bool
	// ForUpdate is appended to the SELECT that loads a row inside an
	// update-closure transaction, to lock it against concurrent writers
	// (" FOR UPDATE" on Postgres). Empty when beginning the write
	// transaction already serialises writers (SQLite BEGIN IMMEDIATE).
	ForUpdate string
	// LockTable returns a statement that serialises writers of table for
	// the rest of the transaction, for invariants no row lock can guard
	// (exactly one active signing key; audit IDs committed in ID order).
	// Nil when beginning the write
	// transaction already does (SQLite).
	LockTable func(table string) string
	// MigrationLock is run first in every migration transaction so that
	// concurrent migrators (several replicas starting at once) apply each
	// migration once. Empty when the write transaction is already
	// exclusive (SQLite).
	MigrationLock string
	// TableExists is a query taking the table name as its single ? argument
	// and returning one row with the number of such tables in the schema
	// the store uses.
	TableExists string
	// BeginWrite starts a transaction that will write. Nil means
	// db.BeginTx(ctx, nil); the SQLite backend gets BEGIN IMMEDIATE that
	// way through its DSN (_txlock=immediate), so a transaction never
	// fails late trying to upgrade a read lock.
	BeginWrite func(ctx context.Context, db *sql.DB) (*sql.Tx, error)
	// MapError maps a driver error to the storage sentinels: unique
	// violations to storage.ErrAlreadyExists, foreign-key violations to
	// storage.ErrNotFound (a referenced row is missing), serialization
	// failures, deadlocks and lock timeouts to storage.ErrConflict. The
	// result must wrap err too, so the driver error stays inspectable.
	// Errors it does not recognise are returned unchanged. Nil means no
	// mapping.
	MapError func(err error) error
}

// rebindCache memoises rebound queries; the set of queries is small and fixed.
var rebindCache sync.Map // string → string

// rebind rewrites ? placeholders for dialects that number them. It leaves
// question marks inside quoted literals and identifiers alone.
func (d *Dialect) rebind(query string) string {
	if !d.Numbered {
		return query
	}
	if q, ok := rebindCache.Load(query); ok {
		return q.(string)
	}
	var b strings.Builder
	b.Grow(len(query) + 16)
	n := 0
	var quote byte
	for i := 0; i < len(query); i++ {
		c := query[i]
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case c == '\'' || c == '"':
			quote = c
		case c == '?':
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			continue
		}
		b.WriteByte(c)
	}
	q := b.String()
	rebindCache.Store(query, q)
	return q
}

func (d *Dialect) mapError(err error) error {
	if err == nil || d.MapError == nil {
		return err
	}
	return d.MapError(err)
}
