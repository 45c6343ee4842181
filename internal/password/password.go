package password

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"golang.org/x/crypto/argon2"
)

// Params are the argon2id cost parameters of a hash. They are encoded in
// every hash, so changing the policy never invalidates stored hashes;
// [NeedsRehash] tells when a stored hash should be upgraded at the next
// successful login.
type Params struct {
	// Memory is the memory cost m in KiB.
	Memory uint32
	// Time is the number of passes t over the memory.
	Time uint32
	// Parallelism is the number of lanes p. It changes the result, so it
	// is part of the hash, not a tuning knob of the verifying machine.
	Parallelism uint8
	// SaltLength is the length of the random salt in bytes.
	SaltLength uint32
	// KeyLength is the length of the derived key in bytes.
	KeyLength uint32
}

// DefaultParams are the parameters [Hash] uses: RFC 9106 §4's second
// recommended option (64 MiB, 3 passes) with 2 lanes instead of 4 to
// match the 2-core machines Gatehouse is sized for, a 16-byte salt and a
// 32-byte key. One hash holds 64 MiB for its duration and took 60–150 ms
// on the 2-core development machine (BenchmarkHash): that is the price of
// a login, and it bounds logins to roughly ten per second per two cores.
var DefaultParams = Params{
	Memory:      64 * 1024,
	Time:        3,
	Parallelism: 2,
	SaltLength:  16,
	KeyLength:   32,
}

// Bounds a hash must respect, on creation and on parse. They are far above
// any sane policy and exist so that a corrupted or hostile row (say,
// m=4294967295) cannot make one login allocate gigabytes or run for
// minutes.
const (
	maxMemory      = 256 * 1024 // KiB, so 256 MiB
	maxTime        = 10
	maxParallelism = 16
	minSaltLength  = 8 // RFC 9106 §3.1 allows 8; 16 is recommended
	maxSaltLength  = 64
	minKeyLength   = 16
	maxKeyLength   = 64
	// maxEncodedLength bounds the input Verify is willing to parse; the
	// longest valid hash is well under it.
	maxEncodedLength = 256
)

var (
	// ErrInvalidHash means an encoded hash is not a well-formed argon2id
	// PHC string with parameters inside the package bounds.
	ErrInvalidHash = errors.New("password: invalid hash")
	// ErrInvalidParams means Params are outside the package bounds.
	ErrInvalidParams = errors.New("password: invalid params")
)

// b64 is the PHC string encoding: standard alphabet, no padding. Strict
// refuses non-zero trailing bits, so every hash has exactly one encoding.
var b64 = base64.RawStdEncoding.Strict()

// slots bounds how many hashes run at once. Each one holds Params.Memory
// for its whole duration and keeps Params.Parallelism processors busy, so
// running more hashes than GOMAXPROCS/Parallelism (of [DefaultParams])
// only adds memory, not throughput: on two cores, one hash with the
// default two lanes already uses both, and a second would just wait for
// CPU while holding another 64 MiB.
//
// Cancellation caveat: Hash and Verify take no context, so a caller
// waiting for a slot cannot give up, and a hash once started runs to the
// end. A burst of logins queues, each about one hash time (60–160 ms
// here) behind the previous one, and a queued login still runs after its
// client has gone. A caller that needs a bound on the wait must refuse
// work before calling in; the login handler's throttle limits repeated
// failures per user and address, not a burst of distinct logins.
var slots = make(chan struct{}, max(1, runtime.GOMAXPROCS(0)/int(DefaultParams.Parallelism)))

// Memory. A finished hash leaves its Params.Memory block as garbage, and
// the Go runtime neither collects it nor returns it to the operating
// system until a GC cycle and the scavenger's pacing get to it; an idle
// server may not collect for two minutes, so one login kept the process
// 64 MiB larger, and back-to-back logins allocated a fresh block each
// (with the page faults: a hash on fresh memory took 160 ms, one on
// reused memory 60 ms, on the 2-core development machine). So:
//   - a big hash that finds the block of an earlier one uncollected runs a
//     GC first, and reuses that memory instead of growing the heap;
//   - after the last big hash in flight (none running or waiting) and
//     releaseDelay without another, a goroutine returns the memory to the
//     operating system (debug.FreeOSMemory), at most once per
//     releaseEvery: a login during the wait cancels it, and logins that
//     keep coming keep their warm memory.
const releaseMinMemory = 8 << 10 // KiB: smaller hashes are left to the GC

// Release timing, and the release itself; tests change them, holding
// release.mu.
var (
	releaseDelay = time.Second
	releaseEvery = 10 * time.Second
	freeOSMemory = debug.FreeOSMemory
)

var release struct {
	mu       sync.Mutex
	inFlight int         // big hashes waiting for a slot or running
	garbage  bool        // a big hash finished since the last collection
	timer    *time.Timer // pending release, nil if none
	last     time.Time   // when the last release ran
}

// enterBig records a big hash waiting for its slot, and cancels a pending
// release.
func enterBig() {
	release.mu.Lock()
	defer release.mu.Unlock()
	release.inFlight++
	if release.timer != nil {
		release.timer.Stop()
		release.timer = nil
	}
}

// collectBefore runs a GC if an earlier big hash left its block behind.
// The caller holds a slot, so the block it is about to allocate can take
// the pages of the collected one.
func collectBefore() {
	release.mu.Lock()
	gc := release.garbage
	release.garbage = false
	release.mu.Unlock()
	if gc {
		runtime.GC()
	}
}

// leaveBig records a big hash finished; after the last one it schedules a
// release.
func leaveBig() {
	release.mu.Lock()
	defer release.mu.Unlock()
	release.inFlight--
	release.garbage = true
	if release.inFlight > 0 {
		return
	}
	delay := max(releaseDelay, time.Until(release.last.Add(releaseEvery)))
	var t *time.Timer
	t = time.AfterFunc(delay, func() {
		release.mu.Lock()
		run := release.timer == t && release.inFlight == 0
		free := freeOSMemory
		if run {
			release.timer = nil
			release.garbage = false
			release.last = time.Now()
		}
		release.mu.Unlock()
		if run {
			free()
		}
	})
	release.timer = t
}

// Validate reports whether p is inside the bounds the package accepts. The
// lower bounds are argon2's own (m ≥ 8p) plus minimum salt and key
// lengths; they are not a security floor, so that tests can use cheap
// parameters. Production code should use [DefaultParams] or stronger.
func (p Params) Validate() error {
	switch {
	case p.Parallelism < 1 || p.Parallelism > maxParallelism:
		return fmt.Errorf("%w: parallelism %d not in [1, %d]", ErrInvalidParams, p.Parallelism, maxParallelism)
	case p.Memory < 8*uint32(p.Parallelism) || p.Memory > maxMemory:
		return fmt.Errorf("%w: memory %d KiB not in [%d, %d]", ErrInvalidParams, p.Memory, 8*uint32(p.Parallelism), maxMemory)
	case p.Time < 1 || p.Time > maxTime:
		return fmt.Errorf("%w: time %d not in [1, %d]", ErrInvalidParams, p.Time, maxTime)
	case p.SaltLength < minSaltLength || p.SaltLength > maxSaltLength:
		return fmt.Errorf("%w: salt length %d not in [%d, %d]", ErrInvalidParams, p.SaltLength, minSaltLength, maxSaltLength)
	case p.KeyLength < minKeyLength || p.KeyLength > maxKeyLength:
		return fmt.Errorf("%w: key length %d not in [%d, %d]", ErrInvalidParams, p.KeyLength, minKeyLength, maxKeyLength)
	}
	return nil
}

// Hash hashes password with [DefaultParams] and a salt read from r, and
// returns the PHC string. A nil r means crypto/rand.Reader.
func Hash(password string, r io.Reader) (string, error) {
	return HashWithParams(password, DefaultParams, r)
}

// HashWithParams is [Hash] with explicit parameters, which must pass
// [Params.Validate].
func HashWithParams(password string, p Params, r io.Reader) (string, error) {
	if err := p.Validate(); err != nil {
		return "", err
	}
	if r == nil {
		r = rand.Reader
	}
	salt := make([]byte, p.SaltLength)
	if _, err := io.ReadFull(r, salt); err != nil {
		return "", fmt.Errorf("password: read salt: %w", err)
	}
	return encode(p, salt, derive(password, salt, p)), nil
}

// Verify reports whether password matches the PHC string encoded. It
// returns false and nil for a wrong password, and an error wrapping
// [ErrInvalidHash] when encoded cannot be parsed or its parameters are out
// of bounds; the caller should treat that as a failed login and log it,
// since it means a corrupted row.
func Verify(password, encoded string) (ok bool, err error) {
	p, salt, want, err := parse(encoded)
	if err != nil {
		return false, err
	}
	got := derive(password, salt, p)
	return subtle.ConstantTimeCompare(got, want) == 1, nil
}

// VerifyDummy does the work of a [Verify] against a hash made with
// [DefaultParams] and discards the result. Call it when the user does not
// exist, so that a login for an unknown name takes as long as one with a
// wrong password and response times do not reveal which names exist.
func VerifyDummy(password string) {
	VerifyDummyWithParams(password, DefaultParams)
}

// VerifyDummyWithParams is [VerifyDummy] for a deployment that hashes with
// p instead of [DefaultParams]. Invalid p falls back to DefaultParams.
func VerifyDummyWithParams(password string, p Params) {
	// Go through the same parse, derive and compare as a real Verify so the
	// two take the same time.
	_, _ = Verify(password, dummyHash(p))
}

// dummyHash is the hash VerifyDummyWithParams checks against: made with
// p, or DefaultParams when p is invalid, with an all-zero salt and an
// all-zero key, which matches no password.
func dummyHash(p Params) string {
	if p.Validate() != nil {
		p = DefaultParams
	}
	return encode(p, make([]byte, p.SaltLength), make([]byte, p.KeyLength))
}

// NeedsRehash reports whether encoded was made with parameters other than
// p (or cannot be parsed), so the caller should replace it with a fresh
// hash the next time it learns the password, on a successful login.
func NeedsRehash(encoded string, p Params) bool {
	got, _, _, err := parse(encoded)
	return err != nil || got != p
}

// derive runs argon2id, waiting for a free slot first, and returns the
// memory of big hashes to the operating system once none is in flight.
func derive(password string, salt []byte, p Params) []byte {
	big := p.Memory >= releaseMinMemory
	if big {
		enterBig()
		defer leaveBig()
	}
	slots <- struct{}{}
	defer func() { <-slots }()
	if big {
		collectBefore()
	}
	return argon2.IDKey([]byte(password), salt, p.Time, p.Memory, p.Parallelism, p.KeyLength)
}

func encode(p Params, salt, key []byte) string {
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s",
		argon2.Version, p.Memory, p.Time, p.Parallelism,
		b64.EncodeToString(salt), b64.EncodeToString(key))
}

// parse reads a PHC string strictly: exactly the form encode writes, with
// the parameters in the order m, t, p, and no optional fields. Accepting
// variants would only give a corrupted row more ways to be misread.
func parse(encoded string) (p Params, salt, key []byte, err error) {
	if len(encoded) > maxEncodedLength {
		return Params{}, nil, nil, fmt.Errorf("%w: longer than %d bytes", ErrInvalidHash, maxEncodedLength)
	}
	fields := strings.Split(encoded, "$")
	if len(fields) != 6 || fields[0] != "" {
		return Params{}, nil, nil, fmt.Errorf("%w: want 5 $-separated fields", ErrInvalidHash)
	}
	if fields[1] != "argon2id" {
		return Params{}, nil, nil, fmt.Errorf("%w: algorithm is not argon2id", ErrInvalidHash)
	}
	if fields[2] != "v="+strconv.Itoa(argon2.Version) {
		return Params{}, nil, nil, fmt.Errorf("%w: version is not %d", ErrInvalidHash, argon2.Version)
	}
	params := strings.Split(fields[3], ",")
	if len(params) != 3 {
		return Params{}, nil, nil, fmt.Errorf("%w: want parameters m,t,p", ErrInvalidHash)
	}
	var vals [3]uint32
	for i, name := range []string{"m=", "t=", "p="} {
		v, ok := strings.CutPrefix(params[i], name)
		if !ok {
			return Params{}, nil, nil, fmt.Errorf("%w: want parameters m,t,p", ErrInvalidHash)
		}
		if vals[i], ok = parseDecimal(v); !ok {
			return Params{}, nil, nil, fmt.Errorf("%w: parameter %s is not a canonical 32-bit decimal", ErrInvalidHash, name[:1])
		}
	}
	if vals[2] > maxParallelism {
		return Params{}, nil, nil, fmt.Errorf("%w: parallelism %d above %d", ErrInvalidHash, vals[2], maxParallelism)
	}
	if salt, err = b64.DecodeString(fields[4]); err != nil {
		return Params{}, nil, nil, fmt.Errorf("%w: salt: %v", ErrInvalidHash, err)
	}
	if key, err = b64.DecodeString(fields[5]); err != nil {
		return Params{}, nil, nil, fmt.Errorf("%w: key: %v", ErrInvalidHash, err)
	}
	p = Params{
		Memory:      vals[0],
		Time:        vals[1],
		Parallelism: uint8(vals[2]),
		SaltLength:  uint32(len(salt)),
		KeyLength:   uint32(len(key)),
	}
	if err := p.Validate(); err != nil {
		return Params{}, nil, nil, fmt.Errorf("%w: %w", ErrInvalidHash, err)
	}
	return p, salt, key, nil
}

// parseDecimal parses a canonical unsigned 32-bit decimal: digits only,
// no sign, no leading zeros.
func parseDecimal(s string) (uint32, bool) {
	if s == "" || len(s) > 10 || (len(s) > 1 && s[0] == '0') {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	v, err := strconv.ParseUint(s, 10, 32)
	return uint32(v), err == nil
}

// Rules states the rule [CheckNew] enforces on a new user password, for
// prompts, forms and errors to quote.
const Rules = "at least 8 characters"

// CheckNew enforces [Rules] on a new user password: `gatehouse user add`
// and `user passwd`, and the account page's password change. It counts
// characters, as the rule says, not bytes: "pässwörd" is 8 of them, and
// four two-byte characters are not 8.
func CheckNew(pw string) error {
	if utf8.RuneCountInString(pw) < 8 {
		return errors.New("the password must be " + Rules)
	}
	return nil
}
