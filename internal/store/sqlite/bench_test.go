package sqlite

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/portcullis-ai/portcullis/internal/ledger"
)

// BenchmarkLedgerCommit measures the store alone: one durable Commit (WAL, synchronous=FULL:
// one fsync) of a batch of decision-sized records, as the ledger's single writer calls it.
// records=1 is a lone caller's commit; records=64 a full group commit. Besides wall-clock
// latency (mostly the fsync) it reports the process's CPU time per commit and per record,
// which is what the store's code costs and is steadier on a shared machine.
func BenchmarkLedgerCommit(b *testing.B) {
	for _, n := range []int{1, 64} {
		b.Run("records="+strconv.Itoa(n), func(b *testing.B) {
			s, err := OpenLedger(filepath.Join(b.TempDir(), "ledger.db"))
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			ctx := context.Background()
			data := make([]byte, 700) // about one decision record
			for i := range data {
				data[i] = byte('a' + i%26)
			}
			batch := make([]ledger.Entry, n)
			lat := make([]time.Duration, 0, b.N)
			var seq uint64
			b.ReportAllocs()
			b.ResetTimer()
			cpu0 := cpuTime()
			for range b.N {
				for i := range batch {
					batch[i] = ledger.Entry{Seq: seq + uint64(i), Data: data}
				}
				// The ledger's writer commits under a 30-second timeout context.
				cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
				t0 := time.Now()
				err := s.Commit(cctx, batch, nil)
				lat = append(lat, time.Since(t0))
				cancel()
				if err != nil {
					b.Fatal(err)
				}
				seq += uint64(n)
			}
			cpu := cpuTime() - cpu0
			b.StopTimer()
			slices.Sort(lat)
			b.ReportMetric(float64(cpu.Nanoseconds())/1e3/float64(b.N), "cpu_us/commit")
			b.ReportMetric(float64(cpu.Nanoseconds())/1e3/float64(b.N*n), "cpu_us/record")
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50_ms")
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99_ms")
		})
	}
}

// cpuTime is the process's user+system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkDiskSync is the floor under every durable commit: one 4 KiB write into a
// preallocated file and its fsync (fdatasync measures the same on ext4 here), on the disk that
// holds b.TempDir() — the ledger's disk when the data directory is on it too. A commit of the
// SQLite ledger is this plus SQLite's own work; an MCP call through the gateway pays two.
func BenchmarkDiskSync(b *testing.B) {
	f, err := os.Create(filepath.Join(b.TempDir(), "sync"))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	const size = 4 << 20
	if err := f.Truncate(size); err != nil {
		b.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		b.Fatal(err)
	}
	page := make([]byte, 4096)
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := range b.N {
		t0 := time.Now()
		if _, err := f.WriteAt(page, int64(i*len(page))%size); err != nil {
			b.Fatal(err)
		}
		if err := f.Sync(); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(t0))
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50_ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99_ms")
}
