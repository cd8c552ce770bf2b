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
// (RunSweeper), so an idle gateway frees its nonces too. About 20–40 bytes per nonce
// (BenchmarkNonceStoreBytes), whatever the nonce's length.
//
// A digest collision can only make a fresh nonce look used (the request is refused); a replay
// has the same key, hence the same digest, and is always caught. The seeds are secret to the
// process, so collisions cannot be aimed.
type MemoryNonceStore struct {
	now   func() time.Time
	seeds [2]maphash.Seed

	mu      sync.Mutex
	buckets []nonceBucket // ascending end; every end is a multiple of width
	count   int
	maxSize int
	width   time.Duration
}

type nonceDigest [2]uint64

type nonceBucket struct {
	end int64 // unix nanoseconds; the bucket holds expiries in [end-width, end)
	set map[nonceDigest]struct{}
}

var _ NonceStore = (*MemoryNonceStore)(nil)

// DefaultMaxNonces bounds the in-memory store. At 5,000 signed requests/s and a 5½-minute
// window that is 1.65 M entries; beyond the bound new nonces are refused (fail closed) rather
// than old ones forgotten early (which would reopen the replay window).
const DefaultMaxNonces = 4 << 20

// NonceBucketWidth is the granularity of expiry: a nonce is remembered until the end of the
// NonceBucketWidth-wide slot its expiry falls in. Wider buckets mean fewer sets to probe per
// Use and a longer over-retention; 15 s gives 23 sets for the 5½-minute signature window.
const NonceBucketWidth = 15 * time.Second

// NewMemoryNonceStore returns a store using now for expiry (time.Now if nil).
func NewMemoryNonceStore(now func() time.Time) *MemoryNonceStore {
	if now == nil {
		now = time.Now
	}
	return &MemoryNonceStore{now: now, seeds: [2]maphash.Seed{maphash.MakeSeed(), maphash.MakeSeed()},
		maxSize: DefaultMaxNonces, width: NonceBucketWidth}
}

func (m *MemoryNonceStore) digest(key string) nonceDigest {
	return nonceDigest{maphash.String(m.seeds[0], key), maphash.String(m.seeds[1], key)}
}

func (m *MemoryNonceStore) Use(_ context.Context, key string, ttl time.Duration) (bool, error) {
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
	return true, nil
}

// has reports whether d is in a live bucket (newest first: a replay is usually recent). Called
// with m.mu held, after sweep.
func (m *MemoryNonceStore) has(d nonceDigest) bool {
	for i := len(m.buckets) - 1; i >= 0; i-- {
		if _, ok := m.buckets[i].set[d]; ok {
			return true
		}
	}
	return false
}

// add puts d in the bucket of exp. Called with m.mu held.
func (m *MemoryNonceStore) add(d nonceDigest, exp time.Time) {
	w := int64(m.width)
	end := (exp.UnixNano()/w + 1) * w
	i := len(m.buckets)
	for i > 0 && m.buckets[i-1].end > end {
		i--
	}
	if i == 0 || m.buckets[i-1].end != end {
		m.buckets = append(m.buckets, nonceBucket{})
		copy(m.buckets[i+1:], m.buckets[i:])
		m.buckets[i] = nonceBucket{end: end, set: map[nonceDigest]struct{}{}}
	} else {
		i--
	}
	m.buckets[i].set[d] = struct{}{}
	m.count++
}

// restore remembers key until exp, as loaded from a journal at start.
func (m *MemoryNonceStore) restore(key string, exp time.Time) {
	d := m.digest(key)
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.has(d) {
		return // an entry of a later bucket remembers it at least as long
	}
	m.add(d, exp)
}

// sweep drops the buckets whose end has passed. Called with m.mu held; O(buckets).
func (m *MemoryNonceStore) sweep(now time.Time) {
	t := now.UnixNano()
	n := 0
	for n < len(m.buckets) && m.buckets[n].end <= t {
		m.count -= len(m.buckets[n].set)
		m.buckets[n] = nonceBucket{}
		n++
	}
	if n > 0 {
		m.buckets = append(m.buckets[:0], m.buckets[n:]...)
	}
}

// Sweep frees the nonces whose bucket has expired.
func (m *MemoryNonceStore) Sweep() {
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	m.sweep(now)
}

// RunSweeper calls Sweep every interval until ctx is done.
func (m *MemoryNonceStore) RunSweeper(ctx context.Context, interval time.Duration) {
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

// Len is the number of remembered nonces (for metrics and tests).
func (m *MemoryNonceStore) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.count
}
