package boundmap

import "testing"

func TestPut(t *testing.T) {
	m := map[int]int{}
	expired := func(v int) bool { return v < 0 }
	for i := range 10 {
		Put(m, 10, i, i, expired)
	}
	if len(m) != 10 {
		t.Fatalf("below the bound: %d entries, want 10", len(m))
	}
	// Full: an insert sweeps down to under 90% before adding.
	Put(m, 10, 100, 100, expired)
	if len(m) != 9 || m[100] != 100 {
		t.Errorf("after an insert into a full map: %d entries (100 present: %v), want 9", len(m), m[100] == 100)
	}
	// Expired entries go first, and are enough on their own.
	m = map[int]int{}
	for i := range 10 {
		v := i
		if i < 5 {
			v = -1
		}
		m[i] = v
	}
	Put(m, 10, 100, 100, expired)
	for k, v := range m {
		if v < 0 {
			t.Errorf("expired entry %d survived", k)
		}
	}
	if len(m) != 6 {
		t.Errorf("%d entries after dropping 5 expired and adding 1, want 6", len(m))
	}
}
