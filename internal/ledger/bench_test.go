package ledger_test

import (
	"context"
	"encoding/json"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/portcullis-ai/portcullis/internal/auditindex"
	"github.com/portcullis-ai/portcullis/internal/ledger"
	"github.com/portcullis-ai/portcullis/internal/store/memory"
	"github.com/portcullis-ai/portcullis/internal/store/sqlite"
)

func openSQLite(b *testing.B) *sqlite.Ledger {
	b.Helper()
	st, err := sqlite.OpenLedger(filepath.Join(b.TempDir(), "ledger.db"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	return st
}

// BenchmarkAppendDurable64: 64 concurrent callers append decision records to the SQLite store
// (WAL, synchronous=FULL); each Append returns only after its batch's fsync. Reports
// durable records/s and the p50/p99 latency Append adds to a decision.
func BenchmarkAppendDurable64(b *testing.B) { benchAppendDurable(b, 64, 0) }

// BenchmarkAppendDurable64Index is BenchmarkAppendDurable64 without ("off") and with ("on") the
// console's audit index following the same SQLite ledger in the background, as a gateway runs
// it: its indexer reads what the ledger committed and writes its own file, so appends should
// not notice it. Run with -count to interleave the two:
//
//	go test -run '^$' -bench 'AppendDurable64Index' -benchtime 30000x -count 3 ./internal/ledger/
func BenchmarkAppendDurable64Index(b *testing.B) {
	// Saturated (as fast as the store commits) and paced at 2,000 records/s (a busy gateway's
	// steady state): on two cores a saturated run shares its CPU with the indexer, a paced one
	// shows what an append waits for in production.
	for _, rate := range []float64{0, 2000} {
		name := "saturated"
		if rate > 0 {
			name = "paced2000"
		}
		b.Run(name+"/off", func(b *testing.B) { benchAppendDurable(b, 64, rate) })
		b.Run(name+"/on", func(b *testing.B) {
			st := openSQLite(b)
			x, err := sqlite.OpenAuditIndex(filepath.Join(b.TempDir(), "index.db"), st)
			if err != nil {
				b.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			ix := auditindex.New(auditindex.Options{Ledger: st, Index: x})
			done := make(chan struct{})
			go func() { defer close(done); ix.Run(ctx) }()
			defer func() {
				cancel()
				<-done
				x.Close()
				b.ReportMetric(float64(ix.Stats().Indexed), "indexed")
			}()
			benchAppendDurableOn(b, st, 64, rate)
		})
	}
}

// BenchmarkAppendDurable1: one caller, one record per commit — the latency a single agent's
// decision pays for durability (no batch to amortise the fsync over).
func BenchmarkAppendDurable1(b *testing.B) { benchAppendDurable(b, 1, 0) }

// BenchmarkAppendDurablePaced: 64 callers spread evenly over 2,000 records/s — what the MCP
// gateway appends at 1,000 calls/s (a decision and a tool_result each). Neither idle nor
// saturated: commits often find a record or two queued behind them. Latency counts from when
// a record was due, so a stalled writer shows in every record due meanwhile.
func BenchmarkAppendDurablePaced(b *testing.B) { benchAppendDurable(b, 64, 2000) }

func benchAppendDurable(b *testing.B, callers int, rate float64) {
	benchAppendDurableOn(b, openSQLite(b), callers, rate)
}

func benchAppendDurableOn(b *testing.B, st ledger.Store, callers int, rate float64) {
	e := newEnv(b, st)
	l := e.open(b, nil)
	defer l.Close(context.Background())
	lat := make([][]time.Duration, callers)
	var next atomic.Int64
	b.ReportAllocs()
	b.ResetTimer()
	start, cpu0 := time.Now(), cpuTime()
	var wg sync.WaitGroup
	for c := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			interval := time.Duration(0)
			if rate > 0 {
				interval = time.Duration(float64(callers) / rate * float64(time.Second))
			}
			due := start.Add(interval * time.Duration(c) / time.Duration(callers))
			for {
				i := next.Add(1)
				if i > int64(b.N) {
					return
				}
				r := decision(int(i))
				t0 := time.Now()
				if interval > 0 {
					time.Sleep(time.Until(due))
					t0, due = due, due.Add(interval)
				}
				if _, err := l.Append(context.Background(), r); err != nil {
					b.Error(err)
					return
				}
				lat[c] = append(lat[c], time.Since(t0))
			}
		}()
	}
	wg.Wait()
	el, cpu := time.Since(start), cpuTime()-cpu0
	b.StopTimer()
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu_us/record")
	all := slices.Concat(lat...)
	slices.Sort(all)
	if len(all) > 0 {
		b.ReportMetric(float64(len(all))/el.Seconds(), "records/s")
		b.ReportMetric(float64(all[len(all)/2].Microseconds())/1000, "p50_ms")
		b.ReportMetric(float64(all[len(all)*99/100].Microseconds())/1000, "p99_ms")
		st := l.Stats()
		b.ReportMetric(float64(st.Size)/float64(max(st.Batches, 1)), "records/batch")
	}
}

// benchLog fills a store with n decision records through the ledger.
func benchLog(b *testing.B, st ledger.Store, n int) *env {
	e := newEnv(b, st)
	l := e.open(b, func(o *ledger.Options) { o.QueueSize = 100000 })
	var wg sync.WaitGroup
	for c := range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := c; i < n; i += 64 {
				if _, err := l.Append(context.Background(), decision(i)); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if err := l.Close(context.Background()); err != nil {
		b.Fatal(err)
	}
	return e
}

func benchVerify(b *testing.B, st ledger.Store) {
	const n = 100_000
	e := benchLog(b, st, n)
	runtime.GC()
	b.ResetTimer()
	start, cpu0 := time.Now(), cpuTime()
	for range b.N {
		rep, err := ledger.Verify(context.Background(), e.st, ledger.VerifyOptions{Keys: e.keys.Public})
		if err != nil || !rep.Intact {
			b.Fatalf("verify: %+v %v", rep, err)
		}
	}
	b.ReportMetric(float64(b.N)*n/time.Since(start).Seconds(), "records/s")
	// On a shared machine the wall clock measures the neighbours too; records per CPU-second
	// is what verification itself costs.
	b.ReportMetric(float64(b.N)*n/(cpuTime()-cpu0).Seconds(), "records/cpu-s")
}

// cpuTime is the process's user+system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkVerifySQLite verifies a 100,000-record log read from SQLite.
func BenchmarkVerifySQLite(b *testing.B) { benchVerify(b, openSQLite(b)) }

// BenchmarkVerifyMemory verifies the same log from memory (the verifier's own cost).
func BenchmarkVerifyMemory(b *testing.B) { benchVerify(b, memory.New()) }

// BenchmarkParseRecord reads one decision record's stored bytes (1 KiB of parameters), as the
// alert rules' tailer does for every committed record: ParseRecord beside the encoding/json
// reading it replaced.
//
//	go test ./internal/ledger -run '^$' -bench ParseRecord -benchmem -count 5
func BenchmarkParseRecord(b *testing.B) {
	r := decision(1)
	r.Seq, r.Prev = 1, strings.Repeat("0f", 32)
	r.Params = json.RawMessage(`{"notes":"` + strings.Repeat("Quarterly review list for the customer success team. ", 19) + `","limit":250}`)
	data, err := ledger.Encode(r)
	if err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct {
		name  string
		parse func([]byte) (*ledger.Record, error)
	}{{"stdlib", stdlibParseRecord}, {"ParseRecord", ledger.ParseRecord}} {
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.parse(data); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
