package compare

import (
	"testing"
	"time"
)

func TestHistogramBuckets(t *testing.T) {
	for _, ns := range []uint64{0, 1, 15, 16, 17, 31, 32, 100, 299, 300, 1000, 12345, 1 << 40} {
		i := bucketOf(ns)
		lo := lowerBound(i)
		if lo > ns {
			t.Errorf("bucket %d of %d starts at %d, above the value", i, ns, lo)
		}
		if hi := lowerBound(i + 1); hi <= ns {
			t.Errorf("bucket %d of %d ends at %d, not above the value", i, ns, hi)
		}
		if ns >= 16 && float64(ns-lo)/float64(ns) > 1.0/16 {
			t.Errorf("value %d rounds down to %d: more than 1/16 error", ns, lo)
		}
	}
}

func TestHistogramQuantile(t *testing.T) {
	var h histogram
	for i := 1; i <= 1000; i++ {
		h.record(time.Duration(i) * time.Microsecond)
	}
	for _, c := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 500 * time.Microsecond}, {0.99, 990 * time.Microsecond}} {
		got := time.Duration(h.quantile(c.q))
		if got > c.want || float64(c.want-got)/float64(c.want) > 1.0/16 {
			t.Errorf("quantile(%v) = %v, want within 1/16 below %v", c.q, got, c.want)
		}
	}
	var empty histogram
	if empty.quantile(0.99) != 0 {
		t.Error("quantile of an empty histogram is not 0")
	}
}
