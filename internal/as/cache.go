package as

import (
	"sync"
	"time"
)

// cacheTTL bounds how stale a cached client, resource or throttle state
// may be. Several replicas share one database and the CLI writes to it
// directly, so a change made elsewhere (a deleted client, a new secret, a
// lockout) takes effect here within this time; changes made by this
// process are applied to the cache at once.
const cacheTTL = 2 * time.Second

// cacheMax bounds each cache; past it, the cache is emptied rather than
// evicting one by one (a flood of distinct keys costs a reset, no more).
const cacheMax = 10000

// ttlCache is a small map with per-entry expiry, for the rows every token
// request reads (docs/performance.md: reading the client row was 22% of a
// client_credentials request). It is a cache only: nothing depends on an
// entry being there.
type ttlCache[K comparable, V any] struct {
	mu  sync.Mutex
	m   map[K]ttlEntry[V]
	now func() time.Time
}

type ttlEntry[V any] struct {
	v       V
	expires time.Time
}

func newTTLCache[K comparable, V any](now func() time.Time) *ttlCache[K, V] {
	return &ttlCache[K, V]{m: map[K]ttlEntry[V]{}, now: now}
}

func (c *ttlCache[K, V]) get(k K) (V, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[k]
	if !ok || !c.now().Before(e.expires) {
		var zero V
		return zero, false
	}
	return e.v, true
}

func (c *ttlCache[K, V]) put(k K, v V) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= cacheMax {
		clear(c.m)
	}
	c.m[k] = ttlEntry[V]{v: v, expires: c.now().Add(cacheTTL)}
}

// update changes a cached entry in place (keeping its expiry), if present.
func (c *ttlCache[K, V]) update(k K, fn func(V) V) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.m[k]; ok {
		e.v = fn(e.v)
		c.m[k] = e
	}
}

func (c *ttlCache[K, V]) del(k K) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.m, k)
}

func (c *ttlCache[K, V]) clear() {
	c.mu.Lock()
	defer c.mu.Unlock()
	clear(c.m)
}
