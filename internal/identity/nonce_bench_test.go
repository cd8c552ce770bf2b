package identity

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"runtime"
	"testing"
	"time"
)

// BenchmarkNonceStoreBytes measures the heap a remembered nonce costs: 1,000,000 nonces of the
// verifier's shape (key ID, NUL, 22 base64url characters, built per call as the verifier does)
// in one replay window, live heap after a collection divided by their count. Reported as
// B/nonce.
func BenchmarkNonceStoreBytes(b *testing.B) {
	keys := make([]string, 1_000_000)
	var raw [16]byte
	for i := range keys {
		binary.LittleEndian.PutUint64(raw[:], uint64(i)*0x9e3779b97f4a7c15)
		binary.LittleEndian.PutUint64(raw[8:], uint64(i))
		keys[i] = "agent-key-1\x00" + base64.RawURLEncoding.EncodeToString(raw[:])
	}
	benchStoreBytes(b, keys, 330*time.Second, func() NonceStore { return NewMemoryNonceStore(nil) }, "B/nonce")
}

// BenchmarkClaimStoreBytes is BenchmarkNonceStoreBytes for outcome claims (MemoryClaimStore):
// 1,000,000 claims of the guard's key shape ("\x00outcome\x00" and a decision ID) in one hour.
// Reported as B/claim.
func BenchmarkClaimStoreBytes(b *testing.B) {
	keys := make([]string, 1_000_000)
	for i := range keys {
		keys[i] = fmt.Sprintf("\x00outcome\x00%016x-0000-4000-8000-000000000000", uint64(i)*0x9e3779b97f4a7c15)
	}
	benchStoreBytes(b, keys, time.Hour+time.Minute, func() NonceStore { return NewMemoryClaimStore(nil) }, "B/claim")
}

// benchStoreBytes uses every key once in a new store and reports the live heap it grew by, per
// key, as unit.
func benchStoreBytes(b *testing.B, keys []string, ttl time.Duration, newStore func() NonceStore, unit string) {
	ctx := context.Background()
	var per float64
	for b.Loop() {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		s := newStore()
		for _, k := range keys {
			if fresh, err := s.Use(ctx, k, ttl); err != nil || !fresh {
				b.Fatalf("Use: %v %v", fresh, err)
			}
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		per = float64(after.HeapAlloc-before.HeapAlloc) / float64(len(keys))
		runtime.KeepAlive(s)
	}
	runtime.KeepAlive(keys)
	b.ReportMetric(per, unit)
}
