package identity

import (
	"context"
	"hash/maphash"
	"sync"
	"time"
)

// NonceStore remembers the nonces of accepted signed requests for as long as their signatures
// could be replayed. Implementations must be safe for concurrent use; an error means the
// caller cannot know whether the nonce is fresh, so the request is denied.
type NonceStore interface {
	// Use records key and reports whether it was fresh (not seen within ttl). Check and record
	// are one atomic step: of two concurrent requests with one nonce, exactly one is fresh.
	Use(ctx context.Context, key string, ttl time.Duration) (fresh bool, err error)
}

// MemoryNonceStore is a NonceStore in memory, laid out for size: a nonce is kept as a 16-byte
// keyed digest (two 64-bit maphash values under seeds drawn at start), in the set of the
// expiry bucket its expiry falls in (buckets NonceBucketWidth wide). A nonce is remembered
// until the end of its bucket — at least its ttl, at most NonceBucketWidth longer — and a
// bucket whose end has passed is dropped whole, by the next Use or by Sweep on a timer
// (RunSweeper), so an idle gateway frees its nonces too ("passed" by a horizon that a forward step
// of the wall clock does not carry along at once: see horizon). Each bucket's set is an open-addressed
// table (digestSet) sized to its nonces once the next bucket opens: ≈ 22 bytes per nonce at a
// steady rate (TestNonceStoreSteadyBytes), up to 43 in the bucket still filling
// (BenchmarkNonceStoreBytes, one bucket: 34), whatever the nonce's length.
//
// A digest collision can only make a fresh nonce look used (the request is refused); a replay
// has the same key, hence the same digest, and is always caught. The seeds are secret to the
// process, so collisions cannot be aimed. Sixteen bytes, not eight: a nonce is chosen by the
// client, who may send as many as the rate limits allow.
type MemoryNonceStore struct{ digestStore[nonceDigest] }

// MemoryClaimStore is MemoryNonceStore for outcome claims (the once-only record that a
// decision's outcome was reported), with 8-byte keyed digests in buckets ClaimBucketWidth wide,
// each an open-addressed table of words (digestSet), compacted once the next bucket opens: ≈ 11
// bytes per claim at a steady rate (TestClaimStoreSteadyBytes: 11.0 B), up to 21 in the
// bucket still filling (BenchmarkClaimStoreBytes, one bucket: 17). Claims live for the outcome TTL (an
// hour by default), twelve times a signature nonce's window, so they are most of what the
// once-only stores hold, and their size is what the gateway's steady memory is made of.
//
// Why 64 bits are enough: a collision can only refuse a genuine first report of an outcome
// (fail closed, recorded), never accept a second one — a second report of one decision has the
// same key, hence the same digest. A claim is only looked up after its outcome token's MAC has
// been verified, so its key is the ID of a decision this gateway made, not a value a client
// can choose freely, and the digests are keyed by seeds secret to the process and never leave
// it, so no one can search for a collision. With N claims live, a fresh one collides with
// probability at most N/2^64: at the store's bound of DefaultMaxClaims (2^24) that is 2^-40,
// under one wrongly refused outcome in a trillion; at 500 outcomes/s for an hour (1.8 M live)
// one in ten trillion.
type MemoryClaimStore struct{ digestStore[uint64] }

// digestStore is the store both are: keyed digests of D in expiry buckets.
type digestStore[D comparable] struct {
	now    func() time.Time
	mono   func() time.Duration // time run since start, immune to clock steps; nil with an injected now
	digest func(key string) D
	first  func(D) uint64 // the word of a digest that places it in a bucket's table

	mu      sync.Mutex
	buckets []digestBucket[D] // ascending end; every end is a multiple of width
	count   int
	maxSize int
	width   time.Duration
	maxTTL  time.Duration // the longest lifetime added, for how long a clock step is held back

	// The forgetting horizon and the clock step guard (see horizon); guarded by mu.
	forgot    int64         // unix nanoseconds: the step guard's horizon, which may be ahead of a clock set back
	swept     int64         // the horizon of the last sweep, min(forgot, wall clock): what was forgotten
	sweptMono time.Duration // mono at the last sweep (0: none yet)
	stepMono  time.Duration // mono when the last forward step was seen (0: none held)
}

type nonceDigest [2]uint64

type digestBucket[D comparable] struct {
	end int64 // unix nanoseconds; the bucket holds expiries in [end-width, end)
	set *digestSet[D]
}

var (
	_ NonceStore = (*MemoryNonceStore)(nil)
	_ NonceStore = (*MemoryClaimStore)(nil)
)

// DefaultMaxNonces bounds the in-memory store. At 5,000 signed requests/s and a 5½-minute
// window that is 1.65 M entries; beyond the bound new nonces are refused (fail closed) rather
// than old ones forgotten early (which would reopen the replay window).
const DefaultMaxNonces = 4 << 20

// DefaultMaxClaims bounds the claim store likewise (limits.max_outcome_claims sets another):
// 16 M claims (≈ 180 MB at a steady rate, up to twice that while buckets fill) is 4,500
// outcomes/s for the default hour but only 194/s at the longest outcome TTL, a day; beyond it an
// outcome is refused, not an old claim forgotten.
const DefaultMaxClaims = 16 << 20

// NonceBucketWidth is the granularity of expiry: a nonce is remembered until the end of the
// NonceBucketWidth-wide slot its expiry falls in. Wider buckets mean fewer sets to probe per
// Use and a longer over-retention; 15 s gives 23 sets for the 5½-minute signature window.
const NonceBucketWidth = 15 * time.Second

// ClaimBucketWidth is NonceBucketWidth for outcome claims: 62 sets for the default hour and a
// minute (a claim is looked up once per reported outcome, so the probes cost little), and at
// most a minute of over-retention.
const ClaimBucketWidth = time.Minute

// NewMemoryNonceStore returns a store using now for expiry (time.Now if nil).
func NewMemoryNonceStore(now func() time.Time) *MemoryNonceStore {
	seeds := [2]maphash.Seed{maphash.MakeSeed(), maphash.MakeSeed()}
	return &MemoryNonceStore{newDigestStore(now, NonceBucketWidth, DefaultMaxNonces, func(key string) nonceDigest {
		return nonceDigest{wordDigest(maphash.String(seeds[0], key)), maphash.String(seeds[1], key)}
	}, func(d nonceDigest) uint64 { return d[0] })}
}

// NewMemoryClaimStore returns a claim store using now for expiry (time.Now if nil).
func NewMemoryClaimStore(now func() time.Time) *MemoryClaimStore {
	return NewMemoryClaimStoreMax(now, 0)
}

// NewMemoryClaimStoreMax is NewMemoryClaimStore holding at most maxClaims (0: DefaultMaxClaims).
func NewMemoryClaimStoreMax(now func() time.Time, maxClaims int) *MemoryClaimStore {
	if maxClaims <= 0 {
		maxClaims = DefaultMaxClaims
	}
	seed := maphash.MakeSeed()
	return &MemoryClaimStore{newDigestStore(now, ClaimBucketWidth, maxClaims, func(key string) uint64 {
		return wordDigest(maphash.String(seed, key))
	}, func(d uint64) uint64 { return d })}
}

func newDigestStore[D comparable](now func() time.Time, width time.Duration, maxSize int, digest func(string) D, first func(D) uint64) digestStore[D] {
	var mono func() time.Duration
	if now == nil {
		now = time.Now
		start := time.Now()
		mono = func() time.Duration { return time.Since(start) } // monotonic: time.Now carries it
	}
	return digestStore[D]{now: now, mono: mono, digest: digest, first: first, maxSize: maxSize, width: width}
}

// clockStepMargin is how far the wall clock may run ahead of the monotonic clock between two
// sweeps before it counts as stepped forward: well above NTP's slewing (at most 0.5 ms a second)
// and the small steps it makes at start, well under any lifetime the stores hold.
const clockStepMargin = 2 * time.Second

func (m *digestStore[D]) Use(_ context.Context, key string, ttl time.Duration) (bool, error) {
	d := m.digest(key)
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	m.sweep(now)
	if m.has(d) {
		return false, nil
	}
	if m.count >= m.maxSize {
		return false, ErrUnavailable
	}
	m.add(d, now.Add(ttl))
	m.maxTTL = max(m.maxTTL, ttl)
	return true, nil
}

// has reports whether d is in a live bucket (newest first: a replay is usually recent). Called
// with m.mu held, after sweep.
func (m *digestStore[D]) has(d D) bool {
	for i := len(m.buckets) - 1; i >= 0; i-- {
		if m.buckets[i].set.has(d) {
			return true
		}
	}
	return false
}

// add puts d in the bucket of exp. Called with m.mu held.
func (m *digestStore[D]) add(d D, exp time.Time) {
	end := m.bucketEnd(exp)
	i := len(m.buckets)
	for i > 0 && m.buckets[i-1].end > end {
		i--
	}
	if i == 0 || m.buckets[i-1].end != end {
		m.buckets = append(m.buckets, digestBucket[D]{})
		copy(m.buckets[i+1:], m.buckets[i:])
		m.buckets[i] = digestBucket[D]{end: end, set: newDigestSet(m.first)}
		if i > 0 && i == len(m.buckets)-1 {
			// The newest bucket before this one has (mostly) stopped filling: its table can be
			// sized to what it holds (once a bucket width).
			m.buckets[i-1].set.compact()
		}
	} else {
		i--
	}
	m.buckets[i].set.add(d)
	m.count++
}

// restore remembers key until exp, as loaded from a journal at start. Only the bucket of exp is
// checked for the digest: a digest found in another bucket may be another key's (a collision
// under this process's seeds) that is forgotten sooner, and skipping key for it would let key be
// used again once that bucket is dropped. A key in two buckets costs an entry, not a second use.
func (m *digestStore[D]) restore(key string, exp time.Time) {
	d := m.digest(key)
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	m.maxTTL = max(m.maxTTL, exp.Sub(now))
	if b := m.bucketOf(exp); b != nil && b.set.has(d) {
		return // the journal holds key twice (adopted again): remembered as long already
	}
	m.add(d, exp)
}

// bucketOf is the bucket exp falls in, nil if there is none. Called with m.mu held.
func (m *digestStore[D]) bucketOf(exp time.Time) *digestBucket[D] {
	end := m.bucketEnd(exp)
	for i := len(m.buckets) - 1; i >= 0; i-- {
		if m.buckets[i].end == end {
			return &m.buckets[i]
		}
	}
	return nil
}

// bucketEnd is the end of the bucket exp falls in.
func (m *digestStore[D]) bucketEnd(exp time.Time) int64 {
	w := int64(m.width)
	return (exp.UnixNano()/w + 1) * w
}

// sweep drops the buckets whose end has passed the horizon. Called with m.mu held; O(buckets).
func (m *digestStore[D]) sweep(now time.Time) {
	t := m.horizon(now)
	n := 0
	for n < len(m.buckets) && m.buckets[n].end <= t {
		m.count -= m.buckets[n].set.len()
		m.buckets[n] = digestBucket[D]{}
		n++
	}
	if n > 0 {
		m.buckets = append(m.buckets[:0], m.buckets[n:]...)
	}
}

// horizon moves and returns the time before which expiries may be forgotten: now, unless the
// wall clock has stepped forward — run further than the monotonic clock since the last sweep,
// by more than clockStepMargin. A step forward that is set back later (a wrong time source,
// an operator's mistake) would otherwise drop every entry it passed, and once the clock is right
// again their tokens are valid and their second use fresh. So after a step the horizon advances
// with the monotonic clock only, for the longest lifetime held plus a bucket: by then every
// entry recorded before the step has expired by the clock that recorded it, and the horizon
// joins the wall clock again (a step that was a correction costs that much memory once). A wall
// clock set back to where the horizon is ends the hold at once.
//
// The horizon returned is never ahead of the wall clock: after a clock is set back, an entry
// recorded since expires by that clock, so forgetting by the guard's later horizon would drop it
// at once and accept its second use. Held or not, nothing is forgotten that the wall clock alone
// would keep. Called with m.mu held.
func (m *digestStore[D]) horizon(now time.Time) int64 {
	t := now.UnixNano()
	m.swept = min(m.guard(t), t)
	return m.swept
}

// guard moves the step guard's horizon to wall clock t and returns it (see horizon).
func (m *digestStore[D]) guard(t int64) int64 {
	if m.mono == nil {
		m.forgot = max(m.forgot, t) // an injected clock: its steps are the caller's
		return m.forgot
	}
	mono := m.mono()
	ran := int64(mono - m.sweptMono)
	m.sweptMono = mono
	switch {
	case m.forgot == 0 || t <= m.forgot+ran+int64(clockStepMargin):
		// No step (or too small to matter): the wall clock is the horizon, unless it went back.
		m.stepMono = 0
		m.forgot = max(m.forgot, t)
	case m.stepMono != 0 && mono-m.stepMono > m.maxTTL+m.width:
		m.stepMono = 0 // held long enough: all that the step passed has expired
		m.forgot = t
	default:
		if m.stepMono == 0 {
			m.stepMono = max(mono, 1)
		}
		m.forgot += ran
	}
	return m.forgot
}

// forgottenBefore is the horizon of the last sweep: entries expiring before it are forgotten,
// and a journal file may be deleted once its bucket ends before it.
func (m *digestStore[D]) forgottenBefore() int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.swept
}

// Sweep frees the entries whose bucket has expired.
func (m *digestStore[D]) Sweep() {
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	m.sweep(now)
}

// RunSweeper calls Sweep every interval until ctx is done.
func (m *digestStore[D]) RunSweeper(ctx context.Context, interval time.Duration) {
	every(ctx, interval, m.Sweep)
}

// every calls f every interval until ctx is done.
func every(ctx context.Context, interval time.Duration, f func()) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			f()
		}
	}
}

// Len is the number of remembered entries (for metrics and tests).
func (m *digestStore[D]) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.count
}
