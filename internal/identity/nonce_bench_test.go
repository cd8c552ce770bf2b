package identity

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"runtime"
	"testing"
	"time"
)

// BenchmarkNonceStoreBytes measures the heap a remembered nonce costs: 1,000,000 nonces of the
// verifier's shape (key ID, NUL, 22 base64url characters, built per call as the verifier does)
// in one replay window, live heap after a collection divided by their count. Reported as
// B/nonce.
func BenchmarkNonceStoreBytes(b *testing.B) {
	const n = 1_000_000
	keys := make([]string, n)
	var raw [16]byte
	for i := range keys {
		binary.LittleEndian.PutUint64(raw[:], uint64(i)*0x9e3779b97f4a7c15)
		binary.LittleEndian.PutUint64(raw[8:], uint64(i))
		keys[i] = base64.RawURLEncoding.EncodeToString(raw[:])
	}
	ctx := context.Background()
	var perNonce float64
	for b.Loop() {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		s := NewMemoryNonceStore(nil)
		for _, k := range keys {
			if fresh, err := s.Use(ctx, "agent-key-1\x00"+k, 330*time.Second); err != nil || !fresh {
				b.Fatalf("Use: %v %v", fresh, err)
			}
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		perNonce = float64(after.HeapAlloc-before.HeapAlloc) / n
		runtime.KeepAlive(s)
	}
	runtime.KeepAlive(keys)
	b.ReportMetric(perNonce, "B/nonce")
}
