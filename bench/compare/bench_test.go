package compare

import (
	"context"
	"math/bits"
	"runtime"
	"sync"
	"testing"
	"time"
)

// benchRequests is how many distinct prepared requests a benchmark cycles through, so that no
// engine is measured on one request its caches have memorised.
const benchRequests = 1024

// BenchmarkDecide measures one decision per op for every engine × scenario: ns/op, B/op,
// allocs/op. Inputs are prepared outside the timed loop (see Engine.Prepare). It also reports
// cpu-ns/op, the CPU time the benchmark's (locked) thread spent per op: on a machine shared with
// other busy processes, ns/op includes time the thread waited for a core, cpu-ns/op does not
// (nor the work of GC threads, which only flatters the engines that allocate).
func BenchmarkDecide(b *testing.B) {
	ctx := context.Background()
	for _, s := range Scenarios() {
		b.Run("policy="+s.Name, func(b *testing.B) {
			reqs := s.Requests(benchRequests, 42)
			for _, e := range engines(b, s) {
				inputs := prepareAll(b, s, e, reqs)
				b.Run("engine="+e.Name(), func(b *testing.B) {
					b.ReportAllocs()
					runtime.LockOSThread()
					defer runtime.UnlockOSThread()
					cpu0, cpuOK := threadCPU()
					i := 0
					for b.Loop() {
						if _, err := e.Decide(ctx, inputs[i&(benchRequests-1)]); err != nil {
							b.Fatal(err)
						}
						i++
					}
					if cpu1, ok := threadCPU(); ok && cpuOK && b.N > 0 {
						b.ReportMetric(float64(cpu1-cpu0)/float64(b.N), "cpu-ns/op")
					}
				})
			}
		})
	}
}

// BenchmarkDecideParallel runs decisions from GOMAXPROCS goroutines at once and reports the
// latency distribution of single decisions (p50-ns, p99-ns) under that load. Each op is timed
// with two time.Now calls (~50 ns together on this machine), included in the percentiles.
func BenchmarkDecideParallel(b *testing.B) {
	ctx := context.Background()
	for _, s := range Scenarios() {
		b.Run("policy="+s.Name, func(b *testing.B) {
			reqs := s.Requests(benchRequests, 43)
			for _, e := range engines(b, s) {
				inputs := prepareAll(b, s, e, reqs)
				b.Run("engine="+e.Name(), func(b *testing.B) {
					b.ReportAllocs()
					var mu sync.Mutex
					var total histogram
					b.RunParallel(func(pb *testing.PB) {
						var h histogram
						i := 0
						for pb.Next() {
							t0 := time.Now()
							if _, err := e.Decide(ctx, inputs[i&(benchRequests-1)]); err != nil {
								b.Error(err)
								return
							}
							h.record(time.Since(t0))
							i++
						}
						mu.Lock()
						total.merge(&h)
						mu.Unlock()
					})
					b.ReportMetric(float64(total.quantile(0.50)), "p50-ns")
					b.ReportMetric(float64(total.quantile(0.99)), "p99-ns")
				})
			}
		})
	}
}

// benchVerify is how many of the benchmark's own requests each engine must decide as the oracle
// does before it is timed (TestEquivalence checks thousands; this guards the timed inputs).
const benchVerify = 128

func prepareAll(b *testing.B, s *Scenario, e Engine, reqs []Request) []any {
	b.Helper()
	out := make([]any, len(reqs))
	for i, r := range reqs {
		in, err := e.Prepare(r)
		if err != nil {
			b.Fatal(err)
		}
		out[i] = in
	}
	for i, r := range reqs[:benchVerify] {
		got, err := e.Decide(context.Background(), out[i])
		if err != nil {
			b.Fatalf("%s on %s: %v", e.Name(), s.Name, err)
		}
		if want := s.Decide(r); got != want {
			b.Fatalf("%s on %s: request %+v: got %s, oracle says %s", e.Name(), s.Name, r, got, want)
		}
	}
	return out
}

// histogram is a log-linear latency histogram: 64 power-of-two ranges of nanoseconds, each split
// into 16 linear sub-buckets (≤ 6.25% relative error), fixed size so recording never allocates.
type histogram struct {
	n      uint64
	counts [64 * subBuckets]uint64
}

const subBits = 4
const subBuckets = 1 << subBits

func bucketOf(ns uint64) int {
	if ns < subBuckets {
		return int(ns)
	}
	exp := bits.Len64(ns) - 1 // ≥ subBits
	sub := (ns >> (exp - subBits)) & (subBuckets - 1)
	return (exp-subBits+1)*subBuckets + int(sub)
}

// lowerBound is the smallest latency that falls into bucket i.
func lowerBound(i int) uint64 {
	if i < subBuckets {
		return uint64(i)
	}
	exp := i/subBuckets + subBits - 1
	sub := uint64(i % subBuckets)
	return (1 << exp) | sub<<(exp-subBits)
}

func (h *histogram) record(d time.Duration) {
	if d < 0 {
		d = 0
	}
	h.counts[bucketOf(uint64(d))]++
	h.n++
}

func (h *histogram) merge(o *histogram) {
	h.n += o.n
	for i, c := range o.counts {
		h.counts[i] += c
	}
}

// quantile returns the lower bound of the bucket holding the q-th fraction of samples.
func (h *histogram) quantile(q float64) uint64 {
	if h.n == 0 {
		return 0
	}
	rank := uint64(q*float64(h.n-1)) + 1
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			return lowerBound(i)
		}
	}
	return lowerBound(len(h.counts) - 1)
}
