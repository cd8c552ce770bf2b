package identity

import (
	"context"
	"math/rand/v2"
	"runtime"
	"strconv"
	"testing"
	"time"
)

// A digest set agrees with a map on every member and non-member through its growth, including digests
// that share their low bits (one probe chain) and the largest value; wordDigest never yields the
// empty marker.
func TestDigestSet(t *testing.T) {
	s := newDigestSet(func(d uint64) uint64 { return d })
	ref := map[uint64]bool{}
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 20_000 {
		d := wordDigest(r.Uint64())
		if i%7 == 0 {
			d = wordDigest(1<<63 | uint64(i)) // high bits alike: one long chain, wrapping at the end
		}
		if ref[d] {
			continue
		}
		if s.has(d) {
			t.Fatalf("%x present before it was added", d)
		}
		s.add(d)
		ref[d] = true
	}
	s.add(^uint64(0))
	ref[^uint64(0)] = true
	if s.len() != len(ref) {
		t.Fatalf("len %d, want %d", s.len(), len(ref))
	}
	for d := range ref {
		if !s.has(d) {
			t.Fatalf("%x lost", d)
		}
	}
	for range 20_000 {
		if d := wordDigest(r.Uint64()); !ref[d] && s.has(d) {
			t.Fatalf("%x present, never added", d)
		}
	}
	if (s.len()+1)*4 > len(s.slots)*3 {
		t.Errorf("%d entries in %d slots: over three quarters full", s.len(), len(s.slots))
	}
	// Compacted, the table holds the same members in fewer slots, still at most three quarters
	// full; and it takes more after.
	slots := len(s.slots)
	s.compact()
	if len(s.slots) >= slots || (s.len()+1)*4 > len(s.slots)*3+4 {
		t.Errorf("compacted: %d entries in %d slots (was %d)", s.len(), len(s.slots), slots)
	}
	for d := range ref {
		if !s.has(d) {
			t.Fatalf("%x lost in compaction", d)
		}
	}
	for range 5_000 {
		if d := wordDigest(r.Uint64()); !ref[d] {
			s.add(d)
			ref[d] = true
		}
	}
	for d := range ref {
		if !s.has(d) {
			t.Fatalf("%x lost after compaction", d)
		}
	}
	if wordDigest(0) == 0 {
		t.Error("wordDigest(0) is the empty marker")
	}
}

// At a steady rate, past one signature window, a remembered nonce costs at most 30 bytes of heap:
// its 16-byte digest in a table sized to its bucket (a Go map of the same digests held ≈ 56).
func TestNonceStoreSteadyBytes(t *testing.T) {
	if testing.Short() {
		t.Skip("fills 200,000 nonces")
	}
	steadyBytes(t, func(now func() time.Time) digestMemory { return NewMemoryNonceStore(now) }, 330*time.Second, 400, 30)
}

// At a steady rate, past one outcome TTL (the default hour), a remembered claim costs at most 14
// bytes of heap: its 8-byte digest in a table of words sized to its minute's bucket.
func TestClaimStoreSteadyBytes(t *testing.T) {
	if testing.Short() {
		t.Skip("fills 1.9 M claims")
	}
	steadyBytes(t, func(now func() time.Time) digestMemory { return NewMemoryClaimStore(now) }, time.Hour, 3800, 14)
}

// steadyBytes feeds a new store 500 keys a second, each to live ttl, for the given seconds of a
// fake clock, and requires the heap it holds at the end to be at most limit bytes per live key.
func steadyBytes(t *testing.T, open func(now func() time.Time) digestMemory, ttl time.Duration, seconds int, limit float64) {
	clock := time.Unix(1_000_000, 0)
	s := open(func() time.Time { return clock })
	ctx := context.Background()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	n := 0
	for range seconds { // the lifetime filled, and turned over
		for range 500 {
			k := "agent-key-1\x00" + strconv.FormatUint(uint64(n)*0x9e3779b97f4a7c15, 36)
			n++
			if fresh, err := s.Use(ctx, k, ttl); !fresh || err != nil {
				t.Fatalf("Use: %v %v", fresh, err)
			}
		}
		clock = clock.Add(time.Second)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	per := float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)) / float64(s.Len())
	t.Logf("%d live, %.1f B each", s.Len(), per)
	if per > limit {
		t.Errorf("%.1f B of heap per entry at a steady rate, want at most %v", per, limit)
	}
	runtime.KeepAlive(s)
}
