package sqlstore_test

// Benchmarks of the storage operations on the token hot paths, on SQLite
// and (when GATEHOUSE_TEST_POSTGRES_DSN is set) PostgreSQL:
//
//	go test -run '^$' -bench . -count 6 ./internal/storage/sqlstore | tee new.txt
//	benchstat old.txt new.txt
//
// Besides ns/op each reports cpu-ns/op, the process CPU time per
// operation, which is what matters on a machine shared with other work.

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"os"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	_ "github.com/jackc/pgx/v5/stdlib"

	"github.com/gatehouse-mcp/gatehouse/internal/storage"
	"github.com/gatehouse-mcp/gatehouse/internal/storage/postgres"
	"github.com/gatehouse-mcp/gatehouse/internal/storage/sqlite"
)

type benchStore struct {
	storage.Store
	path string // SQLite file, "" for PostgreSQL
	now  time.Time
}

func benchBackends(b *testing.B, f func(b *testing.B, s *benchStore)) {
	b.Run("sqlite", func(b *testing.B) {
		path := b.TempDir() + "/gatehouse.db"
		st, err := sqlite.Open(b.Context(), sqlite.Options{Path: path})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { st.Close() })
		f(b, seedBench(b, &benchStore{Store: st, path: path}))
	})
	b.Run("postgres", func(b *testing.B) {
		dsn := os.Getenv("GATEHOUSE_TEST_POSTGRES_DSN")
		if dsn == "" {
			b.Skip("GATEHOUSE_TEST_POSTGRES_DSN is unset; start a server with scripts/pg-test-start.sh")
		}
		var rnd [8]byte
		rand.Read(rnd[:])
		schema := "gatehouse_bench_" + hex.EncodeToString(rnd[:])
		st, err := postgres.Open(context.Background(), postgres.Options{DSN: dsn, Schema: schema, AutoMigrate: true})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() {
			st.Close()
			if db, err := sql.Open("pgx", dsn); err == nil {
				db.Exec("DROP SCHEMA IF EXISTS " + pgx.Identifier{schema}.Sanitize() + " CASCADE")
				db.Close()
			}
		})
		f(b, seedBench(b, &benchStore{Store: st}))
	})
}

const (
	benchClient   = "bench-client"
	benchResource = "http://127.0.0.1:18081/mcp"
	benchUser     = "bench-user"
)

func seedBench(b *testing.B, s *benchStore) *benchStore {
	ctx := b.Context()
	s.now = time.Now()
	must := func(err error) {
		if err != nil {
			b.Helper()
			b.Fatal(err)
		}
	}
	must(s.PutResource(ctx, storage.Resource{URL: benchResource, Name: "Notes",
		Scopes: []storage.Scope{{Name: "notes:read"}}, DefaultScopes: []string{"notes:read"}, CreatedAt: s.now, UpdatedAt: s.now}))
	must(s.CreateClient(ctx, storage.Client{ID: benchClient, Name: "bench", SecretHash: "0123456789abcdef0123456789abcdef0123456789a",
		RedirectURIs: []string{"http://127.0.0.1/callback"}, GrantTypes: []string{"authorization_code", "refresh_token", "client_credentials"},
		ResponseTypes: []string{"code"}, TokenEndpointAuthMethod: "client_secret_basic", ApplicationType: "web",
		Origin: storage.OriginStatic, Metadata: "{}", CreatedAt: s.now, UpdatedAt: s.now}))
	must(s.CreateUser(ctx, storage.User{ID: benchUser, Username: "bench", PasswordHash: "x", CreatedAt: s.now, UpdatedAt: s.now}))
	return s
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func loop(b *testing.B, f func(i int)) {
	c0 := cpuTime()
	i := 0
	for b.Loop() {
		f(i)
		i++
	}
	b.ReportMetric(float64(cpuTime()-c0)/float64(b.N), "cpu-ns/op")
}

func parallel(b *testing.B, f func(i int64)) {
	var n atomic.Int64
	b.SetParallelism(16)
	c0 := cpuTime()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			f(n.Add(1))
		}
	})
	b.ReportMetric(float64(cpuTime()-c0)/float64(b.N), "cpu-ns/op")
}

func check(b *testing.B, err error) {
	if err != nil {
		b.Helper()
		b.Fatal(err)
	}
}

var prefix atomic.Int64

// unique returns keys that do not collide across sub-benchmark runs on
// the same store.
func unique(kind string, i int64) string {
	return fmt.Sprintf("%s-%d-%d", kind, prefix.Add(0), i)
}

func init() { prefix.Store(time.Now().UnixNano()) }

// BenchmarkGetClient is the client lookup of every authenticated request.
func BenchmarkGetClient(b *testing.B) {
	benchBackends(b, func(b *testing.B, s *benchStore) {
		ctx := b.Context()
		loop(b, func(int) { _, err := s.GetClient(ctx, benchClient); check(b, err) })
	})
}

// BenchmarkFailures is the client-authentication throttle check.
func BenchmarkFailures(b *testing.B) {
	benchBackends(b, func(b *testing.B, s *benchStore) {
		ctx := b.Context()
		loop(b, func(int) { _, _, err := s.Failures(ctx, "client:"+benchClient, time.Now()); check(b, err) })
	})
}

// BenchmarkGetResource is the resource lookup of a token request with a
// resource parameter.
func BenchmarkGetResource(b *testing.B) {
	benchBackends(b, func(b *testing.B, s *benchStore) {
		ctx := b.Context()
		loop(b, func(int) { _, err := s.GetResource(ctx, benchResource); check(b, err) })
	})
}

// BenchmarkSeen is the revoked-jti lookup of introspection.
func BenchmarkSeen(b *testing.B) {
	benchBackends(b, func(b *testing.B, s *benchStore) {
		ctx := b.Context()
		loop(b, func(int) { _, err := s.Seen(ctx, "revoked:nothing", time.Now()); check(b, err) })
	})
}

func auditEvent() storage.AuditEvent {
	return storage.AuditEvent{Time: time.Now(), Type: "token.issued", ClientID: benchClient, Resource: benchResource,
		IP: "127.0.0.1", Outcome: "success", Detail: "client_credentials"}
}

// BenchmarkAppendAudit is the audit row every token response writes.
func BenchmarkAppendAudit(b *testing.B) {
	benchBackends(b, func(b *testing.B, s *benchStore) {
		ctx := b.Context()
		e := auditEvent()
		loop(b, func(int) { check(b, s.AppendAudit(ctx, e)) })
	})
}

// BenchmarkAppendAudits is one transaction of n events, as group commit
// writes them: what a row costs apart from the commit.
func BenchmarkAppendAudits(b *testing.B) {
	for _, n := range []int{1, 2, 8, 64} {
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			benchBackends(b, func(b *testing.B, s *benchStore) {
				ctx := b.Context()
				es := make([]storage.AuditEvent, n)
				for i := range es {
					es[i] = auditEvent()
				}
				loop(b, func(int) { check(b, s.AppendAudits(ctx, es)) })
			})
		})
	}
}

// BenchmarkAppendAuditParallel is the same from 16 goroutines per CPU:
// on SQLite every one waits for the single writer connection.
func BenchmarkAppendAuditParallel(b *testing.B) {
	benchBackends(b, func(b *testing.B, s *benchStore) {
		ctx := b.Context()
		e := auditEvent()
		parallel(b, func(int64) { check(b, s.AppendAudit(ctx, e)) })
	})
}

func (s *benchStore) newGrant(b *testing.B, id string) storage.Grant {
	g := storage.Grant{ID: id, ClientID: benchClient, UserID: benchUser, Resource: benchResource,
		Scopes: []string{"notes:read"}, AuthTime: s.now, CreatedAt: time.Now(), ExpiresAt: time.Now().Add(24 * time.Hour)}
	check(b, s.CreateGrant(b.Context(), g))
	return g
}

func (s *benchStore) newCode(b *testing.B, id string, g storage.Grant) string {
	hash := "code-" + id
	check(b, s.CreateAuthCode(b.Context(), storage.AuthCode{Hash: hash, ClientID: benchClient, UserID: benchUser,
		RedirectURI: "http://127.0.0.1/callback", Scopes: g.Scopes, Resource: benchResource,
		CodeChallenge: "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM", CodeChallengeMethod: "S256",
		GrantID: g.ID, AuthTime: s.now, CreatedAt: time.Now(), ExpiresAt: time.Now().Add(time.Minute)}))
	return hash
}

// BenchmarkIssueCode is what /authorize writes for a consented user: the
// grant and the code (two statements, two commits).
func BenchmarkIssueCode(b *testing.B) {
	benchBackends(b, func(b *testing.B, s *benchStore) {
		loop(b, func(i int) {
			id := unique("issue", int64(i))
			s.newCode(b, id, s.newGrant(b, id))
		})
	})
}

// BenchmarkConsumeAuthCode is the single-use redemption of a code (one
// write transaction). Codes are created outside the timer.
func BenchmarkConsumeAuthCode(b *testing.B) {
	benchBackends(b, func(b *testing.B, s *benchStore) {
		ctx := b.Context()
		codes := make([]string, b.N)
		for i := range codes {
			id := unique("consume", int64(i))
			codes[i] = s.newCode(b, id, s.newGrant(b, id))
		}
		b.ResetTimer()
		c0 := cpuTime()
		for i := 0; i < b.N; i++ {
			_, err := s.ConsumeAuthCode(ctx, codes[i], time.Now())
			check(b, err)
		}
		b.ReportMetric(float64(cpuTime()-c0)/float64(b.N), "cpu-ns/op")
	})
}

func (s *benchStore) refreshToken(hash, grant string) storage.RefreshToken {
	now := time.Now()
	return storage.RefreshToken{Hash: hash, GrantID: grant, ClientID: benchClient, UserID: benchUser,
		Scopes: []string{"notes:read"}, Resource: benchResource, CreatedAt: now, ExpiresAt: now.Add(time.Hour)}
}

// BenchmarkRefreshRotation is the storage side of one refresh: read the
// token and its grant, then rotate (conditional UPDATE + INSERT in one
// transaction), as grantRefreshToken does.
func BenchmarkRefreshRotation(b *testing.B) {
	benchBackends(b, func(b *testing.B, s *benchStore) {
		ctx := b.Context()
		g := s.newGrant(b, unique("rot", 0))
		cur := unique("rt", 0)
		check(b, s.CreateRefreshToken(ctx, s.refreshToken(cur, g.ID)))
		retry := make([]byte, 700) // a sealed token response is about this size
		loop(b, func(i int) {
			_, err := s.GetRefreshToken(ctx, cur)
			check(b, err)
			_, err = s.GetGrant(ctx, g.ID)
			check(b, err)
			next := unique("rt", int64(i+1))
			check(b, s.RotateRefreshToken(ctx, cur, s.refreshToken(next, g.ID), retry, "retry-key"))
			cur = next
		})
	})
}

// BenchmarkRefreshRotationParallel rotates 16 families per CPU at once.
func BenchmarkRefreshRotationParallel(b *testing.B) {
	benchBackends(b, func(b *testing.B, s *benchStore) {
		ctx := b.Context()
		var fam atomic.Int64
		retry := make([]byte, 700)
		b.SetParallelism(16)
		c0 := cpuTime()
		b.RunParallel(func(pb *testing.PB) {
			f := fam.Add(1)
			g := s.newGrant(b, unique("prot"+strconv.FormatInt(f, 10), 0))
			cur := unique("prt"+strconv.FormatInt(f, 10), 0)
			check(b, s.CreateRefreshToken(ctx, s.refreshToken(cur, g.ID)))
			for i := int64(1); pb.Next(); i++ {
				_, err := s.GetRefreshToken(ctx, cur)
				check(b, err)
				_, err = s.GetGrant(ctx, g.ID)
				check(b, err)
				next := unique("prt"+strconv.FormatInt(f, 10), i)
				check(b, s.RotateRefreshToken(ctx, cur, s.refreshToken(next, g.ID), retry, "retry-key"))
				cur = next
			}
		})
		b.ReportMetric(float64(cpuTime()-c0)/float64(b.N), "cpu-ns/op")
	})
}

// BenchmarkSQLitePrepare shows what statement preparation costs on the
// SQLite driver: the same client lookup through database/sql as the store
// does it (prepared anew on every call) and through a *sql.Stmt prepared
// once (database/sql then keeps one prepared statement per connection).
func BenchmarkSQLitePrepare(b *testing.B) {
	path := b.TempDir() + "/gatehouse.db"
	st, err := sqlite.Open(b.Context(), sqlite.Options{Path: path})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	s := seedBench(b, &benchStore{Store: st, path: path})
	db, err := sql.Open("sqlite", s.path+"?_pragma=busy_timeout(5000)&_pragma=query_only(1)")
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(4)
	db.SetMaxIdleConns(4)
	const q = `SELECT id, secret_hash, secret_expires_at, name, redirect_uris, grant_types, response_types,
		token_endpoint_auth_method, scopes, application_type, jwks, jwks_uri, origin, registration_token_hash,
		metadata, created_at, updated_at, last_used_at, token_count FROM clients WHERE id = ?`
	scan := func(r *sql.Row) {
		var (
			s1, s2, s3, s4, s5, s6, s7, s8, s9, s10, s11, s12, s13, s14 string
			i1, i2, i3, i4, i5                                          int64
		)
		check(b, r.Scan(&s1, &s2, &i1, &s3, &s4, &s5, &s6, &s7, &s8, &s9, &s10, &s11, &s12, &s13, &s14, &i2, &i3, &i4, &i5))
	}
	ctx := b.Context()
	b.Run("unprepared", func(b *testing.B) {
		loop(b, func(int) { scan(db.QueryRowContext(ctx, q, benchClient)) })
	})
	b.Run("prepared", func(b *testing.B) {
		stmt, err := db.PrepareContext(ctx, q)
		check(b, err)
		defer stmt.Close()
		loop(b, func(int) { scan(stmt.QueryRowContext(ctx, benchClient)) })
	})
}
