package sqlstore_test

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"modernc.org/sqlite"

	"github.com/gatehouse-mcp/gatehouse/internal/storage"
	gsqlite "github.com/gatehouse-mcp/gatehouse/internal/storage/sqlite"
	"github.com/gatehouse-mcp/gatehouse/internal/storage/sqlstore"
)

// countingConnector opens SQLite connections that count how often the
// driver is asked to prepare (parse) a statement. Its connections offer
// database/sql no direct Exec or Query, so an unprepared query is
// prepared, run and closed: the count is the number of SQL parses.
type countingConnector struct {
	dsn      string
	prepares *atomic.Int64
}

func (c countingConnector) Connect(context.Context) (driver.Conn, error) {
	conn, err := (&sqlite.Driver{}).Open(c.dsn)
	if err != nil {
		return nil, err
	}
	return &countingConn{inner: conn, prepares: c.prepares}, nil
}

func (c countingConnector) Driver() driver.Driver { return &sqlite.Driver{} }

type countingConn struct {
	inner    driver.Conn
	prepares *atomic.Int64
}

func (c *countingConn) Prepare(query string) (driver.Stmt, error) {
	return c.PrepareContext(context.Background(), query)
}

func (c *countingConn) PrepareContext(ctx context.Context, query string) (driver.Stmt, error) {
	c.prepares.Add(1)
	return c.inner.(driver.ConnPrepareContext).PrepareContext(ctx, query)
}

func (c *countingConn) Begin() (driver.Tx, error) {
	return c.BeginTx(context.Background(), driver.TxOptions{})
}

func (c *countingConn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	return c.inner.(driver.ConnBeginTx).BeginTx(ctx, opts)
}

func (c *countingConn) Close() error { return c.inner.Close() }

// countingStore is a SQLite-backed sqlstore.Store on counting pools laid
// out as the sqlite backend lays them out: one writer connection
// (BEGIN IMMEDIATE), a few readers.
func countingStore(t *testing.T, d sqlstore.Dialect) (*sqlstore.Store, *atomic.Int64) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "gatehouse.db")
	migrated, err := gsqlite.Open(t.Context(), gsqlite.Options{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	migrated.Close()
	prepares := new(atomic.Int64)
	const common = "_pragma=busy_timeout(5000)&_pragma=foreign_keys(1)"
	w := sql.OpenDB(countingConnector{dsn: path + "?" + common + "&_txlock=immediate", prepares: prepares})
	w.SetMaxOpenConns(1)
	r := sql.OpenDB(countingConnector{dsn: path + "?" + common + "&_pragma=query_only(1)", prepares: prepares})
	r.SetMaxOpenConns(3)
	r.SetMaxIdleConns(3)
	st, err := sqlstore.New(sqlstore.Config{Writer: w, Reader: r, Dialect: d, Now: time.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st, prepares
}

// hotPath runs, n times, the reads of an authenticated token request and
// the write transactions of a code redemption and a refresh rotation.
func hotPath(t *testing.T, ctx context.Context, st *sqlstore.Store, tag string, n int) {
	t.Helper()
	now := time.Now()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	g := storage.Grant{ID: "grant-" + tag, ClientID: "c", UserID: "u", Resource: "https://mcp.example/", Scopes: []string{"s"},
		AuthTime: now, CreatedAt: now, ExpiresAt: now.Add(time.Hour)}
	must(st.CreateGrant(ctx, g))
	rt := func(i int) storage.RefreshToken {
		return storage.RefreshToken{Hash: fmt.Sprintf("rt-%s-%d", tag, i), GrantID: g.ID, ClientID: "c", UserID: "u",
			Scopes: []string{"s"}, Resource: g.Resource, CreatedAt: time.Now(), ExpiresAt: now.Add(time.Hour)}
	}
	must(st.CreateRefreshToken(ctx, rt(0)))
	for i := range n {
		_, err := st.GetClient(ctx, "c")
		must(err)
		_, err = st.Seen(ctx, "revoked:nothing", now)
		must(err)
		_, _, err = st.Failures(ctx, "client:c", now)
		must(err)
		code := fmt.Sprintf("code-%s-%d", tag, i)
		must(st.CreateAuthCode(ctx, storage.AuthCode{Hash: code, ClientID: "c", UserID: "u", RedirectURI: "http://127.0.0.1/cb",
			Scopes: []string{"s"}, Resource: g.Resource, GrantID: g.ID, AuthTime: now, CreatedAt: now, ExpiresAt: now.Add(time.Minute)}))
		_, err = st.ConsumeAuthCode(ctx, code, time.Now())
		must(err)
		must(st.RotateRefreshToken(ctx, rt(i).Hash, rt(i+1), []byte("retry"), "key"))
		must(st.AppendAudits(ctx, []storage.AuditEvent{{Time: now, Type: "token.issued", ClientID: "c", Outcome: "success"}}))
	}
}

func seedPrepare(t *testing.T, ctx context.Context, st *sqlstore.Store) {
	t.Helper()
	now := time.Now()
	if err := st.CreateClient(ctx, storage.Client{ID: "c", Name: "c", Origin: storage.OriginStatic, Metadata: "{}", CreatedAt: now, UpdatedAt: now}); err != nil {
		t.Fatal(err)
	}
	if err := st.CreateUser(ctx, storage.User{ID: "u", Username: "u", PasswordHash: "x", CreatedAt: now, UpdatedAt: now}); err != nil {
		t.Fatal(err)
	}
}

// TestPreparedStatements checks that with Dialect.Prepare each hot query
// is parsed about once per connection, in and out of transactions,
// instead of on every call.
func TestPreparedStatements(t *testing.T) {
	const n = 30
	// A round is 8 statements, 4 of them in the 3 transactions of
	// ConsumeAuthCode, RotateRefreshToken (2) and AppendAudits. Prepared,
	// each query was parsed during the warm-up;
	// a few more parses are allowed, should a call land on a reader
	// connection the warm-up did not use.
	for _, tt := range []struct {
		prepare  bool
		min, max int64
	}{
		{false, 8 * n, 1 << 30},
		{true, 0, 10},
	} {
		t.Run(fmt.Sprintf("prepare=%v", tt.prepare), func(t *testing.T) {
			d := gsqlite.Dialect
			d.Prepare = tt.prepare
			st, prepares := countingStore(t, d)
			ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
			defer cancel()
			seedPrepare(t, ctx, st)
			hotPath(t, ctx, st, "warm", 2) // first uses prepare
			before := prepares.Load()
			hotPath(t, ctx, st, "hot", n)
			got := prepares.Load() - before
			t.Logf("%d rounds of the hot path: %d SQL parses", n, got)
			if got < tt.min || got > tt.max {
				t.Errorf("%d rounds of the hot path parsed SQL %d times, want [%d, %d]", n, got, tt.min, tt.max)
			}
		})
	}
}

// TestPreparedStatementsConcurrent starts cold, so that transactions miss
// statements while reads and autocommit writes prepare them on the pools:
// nothing may deadlock on the single writer connection.
func TestPreparedStatementsConcurrent(t *testing.T) {
	st, _ := countingStore(t, gsqlite.Dialect)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	seedPrepare(t, ctx, st)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() { hotPath(t, ctx, st, fmt.Sprint("g", i), 10) })
	}
	wg.Wait()
}

// TestPreparedStatementsAfterClose checks that a closed store answers with
// errors, not panics, whether or not a statement was prepared.
func TestPreparedStatementsAfterClose(t *testing.T) {
	st, _ := countingStore(t, gsqlite.Dialect)
	ctx := t.Context()
	seedPrepare(t, ctx, st)
	if _, err := st.GetClient(ctx, "c"); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatalf("Close() = %v", err)
	}
	if _, err := st.GetClient(ctx, "c"); err == nil {
		t.Error("GetClient after Close = nil error")
	}
	if _, err := st.GetUser(ctx, "u"); err == nil {
		t.Error("GetUser (never prepared) after Close = nil error")
	}
	if _, err := st.ConsumeAuthCode(ctx, "nothing", time.Now()); err == nil {
		t.Error("ConsumeAuthCode after Close = nil error")
	}
}
