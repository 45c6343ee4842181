// Package storagetest is the conformance suite every storage.Store backend
// must pass: a backend is done when RunTests and RunConcurrencyTests pass
// against it. A backend's test is a few lines:
//
//	func TestSQLite(t *testing.T) {
//		storagetest.RunTests(t, openTestStore)
//		storagetest.RunConcurrencyTests(t, openTestStore)
//	}
//
// open must return a fresh, empty, migrated store for each call and close
// it (and drop what it created) in t.Cleanup. Its clock (used only by
// Replay.UseOnce) must read some time between 2001 and 2099: the suite
// uses 2000 as "expired" and 2100 as "live" for it.
//
// Besides the interface docs the suite pins down what they leave open and
// callers rely on: Delete* of a missing row is storage.ErrNotFound; rows
// that reference a missing client or user are storage.ErrNotFound; a zero
// expiry means "never"; AuditQuery.Since is inclusive and Until exclusive.
//
// It imports only the stdlib, go-cmp and storage, never a backend.
package storagetest
