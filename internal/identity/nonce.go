package identity

import (
	"context"
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

// MemoryNonceStore is a NonceStore in memory. Entries expire after their ttl; expired entries
// are swept incrementally, so memory is bounded by the number of requests per replay window.
type MemoryNonceStore struct {
	now func() time.Time

	mu      sync.Mutex
	seen    map[string]time.Time // key → expiry
	queue   []nonceEntry         // insertion order, for sweeping
	head    int
	maxSize int
}

type nonceEntry struct {
	key    string
	expiry time.Time
}

var _ NonceStore = (*MemoryNonceStore)(nil)

// DefaultMaxNonces bounds the in-memory store. At 5,000 signed requests/s and a 5½-minute
// window that is 1.65 M entries; beyond the bound new nonces are refused (fail closed) rather
// than old ones forgotten early (which would reopen the replay window).
const DefaultMaxNonces = 4 << 20

// NewMemoryNonceStore returns a store using now for expiry (time.Now if nil).
func NewMemoryNonceStore(now func() time.Time) *MemoryNonceStore {
	if now == nil {
		now = time.Now
	}
	return &MemoryNonceStore{now: now, seen: map[string]time.Time{}, maxSize: DefaultMaxNonces}
}

func (m *MemoryNonceStore) Use(_ context.Context, key string, ttl time.Duration) (bool, error) {
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	m.sweep(now, 64)
	if exp, ok := m.seen[key]; ok && now.Before(exp) {
		return false, nil
	}
	if len(m.seen) >= m.maxSize {
		m.sweep(now, len(m.queue))
		if len(m.seen) >= m.maxSize {
			return false, ErrUnavailable
		}
	}
	exp := now.Add(ttl)
	m.seen[key] = exp
	m.queue = append(m.queue, nonceEntry{key, exp})
	return true, nil
}

// restore remembers key until exp, as loaded from a journal at start.
func (m *MemoryNonceStore) restore(key string, exp time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if old, ok := m.seen[key]; ok && !exp.After(old) {
		return
	}
	m.seen[key] = exp
	m.queue = append(m.queue, nonceEntry{key, exp})
}

// sweep drops up to n expired entries from the head of the queue. TTLs are equal for one
// verifier, so the queue is in expiry order and the sweep stops at the first live entry.
func (m *MemoryNonceStore) sweep(now time.Time, n int) {
	for ; n > 0 && m.head < len(m.queue); n-- {
		e := m.queue[m.head]
		if now.Before(e.expiry) {
			break
		}
		if exp, ok := m.seen[e.key]; ok && !now.Before(exp) {
			delete(m.seen, e.key)
		}
		m.queue[m.head] = nonceEntry{}
		m.head++
	}
	if m.head > 1024 && m.head > len(m.queue)/2 {
		m.queue = append(m.queue[:0:0], m.queue[m.head:]...)
		m.head = 0
	}
}

// Len is the number of remembered nonces (for metrics and tests).
func (m *MemoryNonceStore) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.seen)
}
