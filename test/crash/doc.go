// Package crash checks that `gatehouse serve` keeps its promises across a
// SIGKILL: every token a client received still works or was validly
// revoked, no code is redeemable twice, and the database is intact. Its
// non-test code is the process harness (build the binary, configure a
// deployment through the CLI, start, kill and restart `serve`, play the
// browser and the OAuth clients) that test/replicas reuses.
//
// Everything runs on loopback, with bounded load and timeouts. PostgreSQL
// comes from GATEHOUSE_TEST_POSTGRES_DSN or is started with
// scripts/pg-test-start.sh; when neither works the PostgreSQL tests skip
// locally and fail under CI=true.
//
// It imports the test-only drivers and the testing package, so nothing but
// tests may import it.
package crash
