package clientreg

import (
	"context"
	"sync"
	"time"
)

// Cache keeps values (validated metadata documents) per key until their
// expiry, and makes concurrent loads of one key share a single call: a
// burst of authorization requests for one client ID fetches its document
// once. A failed load is kept too, for the ttl its load returned (a
// document that cannot be fetched is not fetched again on every request);
// a failure with no ttl is not kept. It is safe for concurrent use.
type Cache[V any] struct {
	max int

	mu      sync.Mutex
	entries map[string]cacheEntry[V]
	flights map[string]*flight[V]
}

type cacheEntry[V any] struct {
	val     V
	err     error // a remembered failure; val is then the zero value
	expires time.Time
}

// flight is one load in progress; done closes when val and err are set.
type flight[V any] struct {
	done chan struct{}
	val  V
	ttl  time.Duration
	err  error
}

// NewCache returns a cache holding at most max entries (0 means 1000).
func NewCache[V any](max int) *Cache[V] {
	if max <= 0 {
		max = 1000
	}
	return &Cache[V]{max: max, entries: map[string]cacheEntry[V]{}, flights: map[string]*flight[V]{}}
}

// Get returns the unexpired value for key at now; a remembered failure
// is not a value.
func (c *Cache[V]) Get(key string, now time.Time) (V, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[key]
	if !ok || e.err != nil || !now.Before(e.expires) {
		var zero V
		return zero, false
	}
	return e.val, true
}

// Update replaces the value of key's entry with f's result, keeping its
// expiry, when the entry holds a value (not a remembered failure). It is
// for a part of a cached value that is refreshed on its own, such as the
// keys of a document's jwks_uri.
func (c *Cache[V]) Update(key string, f func(V) V) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.entries[key]; ok && e.err == nil {
		e.val = f(e.val)
		c.entries[key] = e
	}
}

// Forget removes key.
func (c *Cache[V]) Forget(key string) {
	c.mu.Lock()
	delete(c.entries, key)
	c.mu.Unlock()
}

// Do returns the cached value (or remembered failure) for key, or calls
// load once for all concurrent callers and caches its result, value or
// error, for the returned ttl (ttl <= 0 caches nothing). A remembered
// error is returned as is to every caller until it expires, so it must
// not be mutated. load runs with a context that is not cancelled when the
// first caller goes away, so the callers still waiting get a result; load
// must bound its own duration. A caller whose ctx ends stops waiting.
func (c *Cache[V]) Do(ctx context.Context, key string, now func() time.Time, load func(context.Context) (V, time.Duration, error)) (V, error) {
	c.mu.Lock()
	if e, ok := c.entries[key]; ok && now().Before(e.expires) {
		c.mu.Unlock()
		return e.val, e.err
	}
	if f, ok := c.flights[key]; ok {
		c.mu.Unlock()
		select {
		case <-f.done:
			return f.val, f.err
		case <-ctx.Done():
			var zero V
			return zero, ctx.Err()
		}
	}
	f := &flight[V]{done: make(chan struct{})}
	c.flights[key] = f
	c.mu.Unlock()

	c.load(ctx, key, f, now, load)
	return f.val, f.err
}

// load runs load for flight f and publishes its result. The deferred
// part runs even if load panics, so waiters are released (with an error)
// and the panic still reaches the caller.
func (c *Cache[V]) load(ctx context.Context, key string, f *flight[V], now func() time.Time, load func(context.Context) (V, time.Duration, error)) {
	finished := false
	defer func() {
		if !finished {
			f.err = errPanic
		}
		c.mu.Lock()
		delete(c.flights, key)
		if f.err != nil {
			var zero V
			f.val = zero // a failure has no value, for any caller
		}
		if f.ttl > 0 { // zero after a panic: load never returned
			c.evictLocked(now())
			c.entries[key] = cacheEntry[V]{val: f.val, err: f.err, expires: now().Add(f.ttl)}
		}
		c.mu.Unlock()
		close(f.done)
	}()
	f.val, f.ttl, f.err = load(context.WithoutCancel(ctx))
	finished = true
}

// evictLocked makes room for one entry: expired entries go first, then
// remembered failures (anyone can make those, by sending client IDs that
// do not work; they must not push out the documents that do), then
// arbitrary ones (map order) until the cache is below its bound.
func (c *Cache[V]) evictLocked(now time.Time) {
	if len(c.entries) < c.max {
		return
	}
	for k, e := range c.entries {
		if !now.Before(e.expires) {
			delete(c.entries, k)
		}
	}
	for k, e := range c.entries {
		if len(c.entries) < c.max {
			return
		}
		if e.err != nil {
			delete(c.entries, k)
		}
	}
	for k := range c.entries {
		if len(c.entries) < c.max {
			return
		}
		delete(c.entries, k)
	}
}

type panicError struct{}

func (panicError) Error() string { return "clientreg: cache load panicked" }

var errPanic error = panicError{}
