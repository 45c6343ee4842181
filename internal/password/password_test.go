package password

import (
	"bytes"
	"errors"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// cheap are valid parameters that hash in well under a millisecond, for
// tests that exercise encoding rather than cost.
var cheap = Params{Memory: 64, Time: 1, Parallelism: 1, SaltLength: 16, KeyLength: 32}

// zeroReader yields zero bytes, for a reproducible salt.
type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

func TestHashFormat(t *testing.T) {
	got, err := Hash("correct horse", zeroReader{})
	if err != nil {
		t.Fatalf("Hash() error = %v", err)
	}
	const prefix = "$argon2id$v=19$m=65536,t=3,p=2$AAAAAAAAAAAAAAAAAAAAAA$"
	if !strings.HasPrefix(got, prefix) {
		t.Errorf("Hash() = %q, want prefix %q", got, prefix)
	}
	// 32-byte key in unpadded base64 is 43 characters.
	if key := strings.TrimPrefix(got, prefix); len(key) != 43 {
		t.Errorf("Hash() key part = %q (%d chars), want 43 chars", key, len(key))
	}
	ok, err := Verify("correct horse", got)
	if err != nil || !ok {
		t.Errorf("Verify(right password, %q) = %v, %v, want true, nil", got, ok, err)
	}
	ok, err = Verify("correct horse.", got)
	if err != nil || ok {
		t.Errorf("Verify(wrong password, %q) = %v, %v, want false, nil", got, ok, err)
	}
}

func TestHashUsesFreshSalt(t *testing.T) {
	a, err := HashWithParams("pw", cheap, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := HashWithParams("pw", cheap, nil)
	if err != nil {
		t.Fatal(err)
	}
	if a == b {
		t.Errorf("two hashes of one password are equal (%q): salt is not random", a)
	}
}

func TestHashShortRandom(t *testing.T) {
	_, err := HashWithParams("pw", cheap, bytes.NewReader(make([]byte, 3)))
	if err == nil {
		t.Error("HashWithParams with a 3-byte random source succeeded, want error")
	}
}

// TestVerifyReference checks interoperability with the reference
// implementation: these are phc-winner-argon2's own test vectors
// (src/test.c), so a hash from any conforming library verifies here.
func TestVerifyReference(t *testing.T) {
	tests := []struct {
		password, encoded string
		want              bool
	}{
		{"password", "$argon2id$v=19$m=256,t=2,p=1$c29tZXNhbHQ$nf65EOgLrQMR/uIPnA4rEsF5h7TKyQwu9U1bMCHGi/4", true},
		{"password", "$argon2id$v=19$m=65536,t=2,p=1$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc", true},
		{"passwore", "$argon2id$v=19$m=256,t=2,p=1$c29tZXNhbHQ$nf65EOgLrQMR/uIPnA4rEsF5h7TKyQwu9U1bMCHGi/4", false},
	}
	for _, tt := range tests {
		got, err := Verify(tt.password, tt.encoded)
		if err != nil || got != tt.want {
			t.Errorf("Verify(%q, %q) = %v, %v, want %v, nil", tt.password, tt.encoded, got, err, tt.want)
		}
	}
}

func TestVerifyMalformed(t *testing.T) {
	valid, err := HashWithParams("pw", cheap, zeroReader{})
	if err != nil {
		t.Fatal(err)
	}
	salt := "AAAAAAAAAAAAAAAAAAAAAA"
	key := valid[strings.LastIndex(valid, "$")+1:]
	tests := []struct {
		name, encoded string
	}{
		{"empty", ""},
		{"garbage", "not a hash"},
		{"argon2i", "$argon2i$v=19$m=64,t=1,p=1$" + salt + "$" + key},
		{"argon2d", "$argon2d$v=19$m=64,t=1,p=1$" + salt + "$" + key},
		{"bcrypt", "$2a$10$abcdefghijklmnopqrstuuABCDEFGHIJKLMNOPQRSTUVWXYZ012"},
		{"old version", "$argon2id$v=16$m=64,t=1,p=1$" + salt + "$" + key},
		{"no version", "$argon2id$m=64,t=1,p=1$" + salt + "$" + key},
		{"params out of order", "$argon2id$v=19$t=1,m=64,p=1$" + salt + "$" + key},
		{"extra param", "$argon2id$v=19$m=64,t=1,p=1,keyid=x$" + salt + "$" + key},
		{"leading zero", "$argon2id$v=19$m=064,t=1,p=1$" + salt + "$" + key},
		{"sign", "$argon2id$v=19$m=+64,t=1,p=1$" + salt + "$" + key},
		{"overflow", "$argon2id$v=19$m=4294967296,t=1,p=1$" + salt + "$" + key},
		{"memory too large", "$argon2id$v=19$m=4294967295,t=1,p=1$" + salt + "$" + key},
		{"time too large", "$argon2id$v=19$m=64,t=1000000,p=1$" + salt + "$" + key},
		{"time zero", "$argon2id$v=19$m=64,t=0,p=1$" + salt + "$" + key},
		{"parallelism too large", "$argon2id$v=19$m=65536,t=1,p=255$" + salt + "$" + key},
		{"parallelism overflows uint8", "$argon2id$v=19$m=65536,t=1,p=257$" + salt + "$" + key},
		{"memory below 8p", "$argon2id$v=19$m=8,t=1,p=2$" + salt + "$" + key},
		{"padded salt", "$argon2id$v=19$m=64,t=1,p=1$" + salt + "==$" + key},
		{"url alphabet", "$argon2id$v=19$m=64,t=1,p=1$AAAAAAAAAAAAAAAAAAAA-_$" + key},
		{"non-canonical base64", "$argon2id$v=19$m=64,t=1,p=1$AAAAAAAAAAAAAAAAAAAAAB$" + key},
		{"short salt", "$argon2id$v=19$m=64,t=1,p=1$AAAA$" + key},
		{"short key", "$argon2id$v=19$m=64,t=1,p=1$" + salt + "$AAAA"},
		{"missing key", "$argon2id$v=19$m=64,t=1,p=1$" + salt},
		{"trailing field", valid + "$"},
		{"too long", valid + strings.Repeat("A", 300)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ok, err := Verify("pw", tt.encoded)
			if ok || !errors.Is(err, ErrInvalidHash) {
				t.Errorf("Verify(%q) = %v, %v, want false, ErrInvalidHash", tt.encoded, ok, err)
			}
		})
	}
}

func TestParamsValidate(t *testing.T) {
	tests := []struct {
		name string
		p    Params
		ok   bool
	}{
		{"default", DefaultParams, true},
		{"cheap", cheap, true},
		{"zero", Params{}, false},
		{"memory too large", Params{Memory: 1 << 30, Time: 1, Parallelism: 1, SaltLength: 16, KeyLength: 32}, false},
		{"memory below 8p", Params{Memory: 15, Time: 1, Parallelism: 2, SaltLength: 16, KeyLength: 32}, false},
		{"time too large", Params{Memory: 64, Time: 11, Parallelism: 1, SaltLength: 16, KeyLength: 32}, false},
		{"short salt", Params{Memory: 64, Time: 1, Parallelism: 1, SaltLength: 4, KeyLength: 32}, false},
		{"long key", Params{Memory: 64, Time: 1, Parallelism: 1, SaltLength: 16, KeyLength: 65}, false},
	}
	for _, tt := range tests {
		err := tt.p.Validate()
		if (err == nil) != tt.ok || (err != nil && !errors.Is(err, ErrInvalidParams)) {
			t.Errorf("%s: %+v.Validate() = %v, want ok=%v", tt.name, tt.p, err, tt.ok)
		}
		if _, err := HashWithParams("pw", tt.p, zeroReader{}); (err == nil) != tt.ok {
			t.Errorf("%s: HashWithParams(%+v) error = %v, want ok=%v", tt.name, tt.p, err, tt.ok)
		}
	}
}

func TestNeedsRehash(t *testing.T) {
	stored, err := HashWithParams("pw", cheap, nil)
	if err != nil {
		t.Fatal(err)
	}
	stronger := cheap
	stronger.Time = 2
	longerKey := cheap
	longerKey.KeyLength = 64
	tests := []struct {
		encoded string
		p       Params
		want    bool
	}{
		{stored, cheap, false},
		{stored, stronger, true},
		{stored, longerKey, true},
		{stored, DefaultParams, true},
		{"garbage", cheap, true},
	}
	for _, tt := range tests {
		if got := NeedsRehash(tt.encoded, tt.p); got != tt.want {
			t.Errorf("NeedsRehash(%q, %+v) = %v, want %v", tt.encoded, tt.p, got, tt.want)
		}
	}
}

// TestVerifyDummyWithInvalidParams: invalid parameters fall back to
// DefaultParams, so that a login for an unknown user still costs a real
// check: the dummy hash parses (a Verify that fails to parse does no work)
// with the parameters in force, matches no password, and
// VerifyDummyWithParams runs a hash of DefaultParams' size.
func TestVerifyDummyWithInvalidParams(t *testing.T) {
	for _, tt := range []struct {
		name string
		p    Params
		want Params
	}{
		{"zero", Params{}, DefaultParams},
		{"memory too large", Params{Memory: 1 << 30, Time: 1, Parallelism: 1, SaltLength: 16, KeyLength: 32}, DefaultParams},
		{"short salt", Params{Memory: 64, Time: 1, Parallelism: 1, SaltLength: 4, KeyLength: 32}, DefaultParams},
		{"valid", cheap, cheap},
		{"default", DefaultParams, DefaultParams},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := dummyHash(tt.p)
			got, _, _, err := parse(h)
			if err != nil || got != tt.want {
				t.Errorf("dummyHash(%+v) = %q, parsed as %+v, %v; want parameters %+v", tt.p, h, got, err, tt.want)
			}
			if got != cheap {
				return // a default-sized Verify costs a login's time; one is enough, below
			}
			for _, pw := range []string{"", "pw", "correct horse"} {
				if ok, err := Verify(pw, h); ok || err != nil {
					t.Errorf("Verify(%q, dummyHash) = %v, %v; want false, nil", pw, ok, err)
				}
			}
		})
	}
	// The dummy check runs a big hash: the memory release after big
	// hashes is what shows it (small ones never schedule one).
	n := countReleases(t, time.Millisecond, 0)
	VerifyDummyWithParams("pw", Params{})
	if !waitFor(func() bool { return n.Load() == 1 }) {
		t.Errorf("VerifyDummyWithParams with zero Params ran no hash of %d KiB or more (%d releases); want the fallback to DefaultParams (%d KiB)",
			releaseMinMemory, n.Load(), DefaultParams.Memory)
	}
}

func BenchmarkHash(b *testing.B) {
	for b.Loop() {
		if _, err := Hash("correct horse battery staple", nil); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerify(b *testing.B) {
	stored, err := Hash("correct horse battery staple", nil)
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if ok, err := Verify("correct horse battery staple", stored); !ok || err != nil {
			b.Fatalf("Verify() = %v, %v", ok, err)
		}
	}
}

// FuzzVerify checks the PHC parser on arbitrary input: no panic, and no
// acceptance of anything outside the bounds.
func FuzzVerify(f *testing.F) {
	f.Add("$argon2id$v=19$m=256,t=2,p=1$c29tZXNhbHQ$nf65EOgLrQMR/uIPnA4rEsF5h7TKyQwu9U1bMCHGi/4")
	f.Add("$argon2id$v=19$m=64,t=1,p=1$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAA")
	f.Add("")
	f.Fuzz(func(t *testing.T, encoded string) {
		p, _, _, err := parse(encoded)
		if err != nil {
			return
		}
		if verr := p.Validate(); verr != nil {
			t.Fatalf("parse(%q) accepted %+v: %v", encoded, p, verr)
		}
		if p.Memory > 4096 || p.Time > 2 {
			return // keep each fuzz run cheap
		}
		if _, err := Verify("pw", encoded); err != nil {
			t.Errorf("Verify(%q) error = %v after a successful parse", encoded, err)
		}
	})
}

func TestSlots(t *testing.T) {
	want := max(1, runtime.GOMAXPROCS(0)/int(DefaultParams.Parallelism))
	if cap(slots) != want {
		t.Errorf("%d hashes may run at once, want %d (GOMAXPROCS %d, %d lanes each)", cap(slots), want, runtime.GOMAXPROCS(0), DefaultParams.Parallelism)
	}
}

// big is the cheapest hash that counts as big for the memory release.
var big = Params{Memory: releaseMinMemory, Time: 1, Parallelism: 1, SaltLength: 16, KeyLength: 32}

// countReleases makes releases count instead of collecting, with the given
// timing, until the test ends.
func countReleases(t *testing.T, delay, every time.Duration) *atomic.Int32 {
	t.Helper()
	n := new(atomic.Int32)
	release.mu.Lock()
	oldDelay, oldEvery, oldFree := releaseDelay, releaseEvery, freeOSMemory
	releaseDelay, releaseEvery, freeOSMemory = delay, every, func() { n.Add(1) }
	release.last = time.Time{}
	release.mu.Unlock()
	t.Cleanup(func() {
		release.mu.Lock()
		defer release.mu.Unlock()
		if release.timer != nil {
			release.timer.Stop()
			release.timer = nil
		}
		releaseDelay, releaseEvery, freeOSMemory = oldDelay, oldEvery, oldFree
		release.last = time.Time{}
	})
	return n
}

func hashConcurrently(t *testing.T, n int, p Params) {
	t.Helper()
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			if _, err := HashWithParams("pw", p, nil); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
}

// waitFor polls cond for up to 5 seconds.
func waitFor(cond func() bool) bool {
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if cond() {
			return true
		}
	}
	return cond()
}

func TestMemoryRelease(t *testing.T) {
	t.Run("once after the last hash of a burst", func(t *testing.T) {
		n := countReleases(t, time.Second, 0)
		hashConcurrently(t, 4, big)
		if got := n.Load(); got != 0 {
			t.Errorf("%d releases right after the burst, want none before the delay", got)
		}
		if !waitFor(func() bool { return n.Load() == 1 }) {
			t.Fatalf("%d releases after the delay, want 1", n.Load())
		}
		time.Sleep(time.Second)
		if got := n.Load(); got != 1 {
			t.Errorf("%d releases, want exactly 1", got)
		}
	})
	t.Run("a hash during the delay cancels it", func(t *testing.T) {
		n := countReleases(t, 300*time.Millisecond, 0)
		hashConcurrently(t, 1, big)
		enterBig() // another hash, waiting for its slot
		time.Sleep(500 * time.Millisecond)
		if got := n.Load(); got != 0 {
			t.Errorf("%d releases while a hash was in flight, want 0", got)
		}
		leaveBig()
		if !waitFor(func() bool { return n.Load() == 1 }) {
			t.Errorf("%d releases after the last hash, want 1", n.Load())
		}
	})
	t.Run("rate limited", func(t *testing.T) {
		n := countReleases(t, 10*time.Millisecond, time.Hour)
		hashConcurrently(t, 1, big)
		if !waitFor(func() bool { return n.Load() == 1 }) {
			t.Fatalf("%d releases, want 1", n.Load())
		}
		hashConcurrently(t, 1, big)
		time.Sleep(200 * time.Millisecond)
		if got := n.Load(); got != 1 {
			t.Errorf("%d releases within releaseEvery, want 1", got)
		}
	})
	t.Run("small hashes never", func(t *testing.T) {
		n := countReleases(t, time.Millisecond, 0)
		hashConcurrently(t, 4, cheap)
		time.Sleep(100 * time.Millisecond)
		if got := n.Load(); got != 0 {
			t.Errorf("%d releases after small hashes, want 0", got)
		}
	})
}
