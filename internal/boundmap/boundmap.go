// Package boundmap keeps a map used as a cache within a size bound. The
// token verification caches of the authorization server and of package rs
// share it; it imports only the standard library.
package boundmap

// Put stores v under k in m. When m already holds max entries it first
// drops the entries expired reports true for, then arbitrary ones down to
// 90% of max, so a full map is swept once per tenth of its size rather
// than on every insert.
func Put[K comparable, V any](m map[K]V, max int, k K, v V, expired func(V) bool) {
	if len(m) >= max {
		for key, old := range m {
			if expired(old) {
				delete(m, key)
			}
		}
		for key := range m {
			if len(m) < max*9/10 {
				break
			}
			delete(m, key)
		}
	}
	m[k] = v
}
