package mcp

import (
	"context"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/portcullis-ai/portcullis/internal/store/sqlite"
)

// BenchmarkToolsCall measures one tools/call end to end — agent client → (gateway →) upstream
// server — over in-memory pipes, with every gateway feature on: API-key authentication,
// inspection of parameters and result, policy, definition pin check, and the ledger on SQLite
// (durable: each decision and each result record is committed before the call proceeds).
// "direct" is the same client calling the same upstream server without the gateway.
// It reports p50 and p99 latency per call, throughput and the CPU time per call.
func BenchmarkToolsCall(b *testing.B) {
	for _, clients := range []int{1, 64} {
		b.Run("direct/clients="+itoa(clients), func(b *testing.B) {
			h := newBenchHarness(b)
			sessions := make([]*sdk.ClientSession, clients)
			for i := range sessions {
				st, ct := sdk.NewInMemoryTransports()
				ss, err := h.up.Connect(context.Background(), st, nil)
				if err != nil {
					b.Fatal(err)
				}
				cs, err := sdk.NewClient(&sdk.Implementation{Name: "direct", Version: "1"}, nil).Connect(context.Background(), ct, nil)
				if err != nil {
					b.Fatal(err)
				}
				sessions[i] = cs
				b.Cleanup(func() { _ = cs.Close(); _ = ss.Wait() })
			}
			runCalls(b, sessions, "echo")
		})
		for _, durable := range []bool{true, false} {
			name := "gateway-sqlite-ledger/clients=" + itoa(clients)
			if !durable {
				name = "gateway-memory-ledger/clients=" + itoa(clients)
			}
			b.Run(name, func(b *testing.B) { benchGateway(b, clients, durable) })
		}
	}
}

func benchGateway(b *testing.B, clients int, durable bool) {
	{
		{
			h := newHarness(b, 0, 10*time.Second)
			if durable {
				h = newBenchHarness(b)
			}
			sessions := make([]*sdk.ClientSession, clients)
			for i := range sessions {
				at, gt := sdk.NewInMemoryTransports()
				gss, err := h.srv.Connect(context.Background(), gt, nil)
				if err != nil {
					b.Fatal(err)
				}
				cs, err := sdk.NewClient(&sdk.Implementation{Name: "agent", Version: "1"}, nil).Connect(context.Background(), at, nil)
				if err != nil {
					b.Fatal(err)
				}
				sessions[i] = cs
				b.Cleanup(func() { _ = cs.Close(); _ = gss.Wait() })
			}
			runCalls(b, sessions, "up__echo")
		}
	}
}

func newBenchHarness(b *testing.B) *harness {
	store, err := sqlite.OpenLedger(filepath.Join(b.TempDir(), "ledger.db"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = store.Close() })
	return newHarnessStore(b, 0, 10*time.Second, store)
}

func runCalls(b *testing.B, sessions []*sdk.ClientSession, tool string) {
	ctx := context.Background()
	args := map[string]any{"text": "quarterly report for the sales team"}
	// Warm up: first calls scan and pin definitions.
	for _, cs := range sessions {
		if r, err := cs.CallTool(ctx, &sdk.CallToolParams{Name: tool, Arguments: args}); err != nil || r.IsError {
			b.Fatalf("warm-up call: %v %+v", err, r)
		}
	}
	var next atomic.Int64
	lat := make([][]time.Duration, len(sessions))
	var wg sync.WaitGroup
	b.ResetTimer()
	start, cpu0 := time.Now(), cpuTime()
	for i, cs := range sessions {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(b.N) {
				t0 := time.Now()
				r, err := cs.CallTool(ctx, &sdk.CallToolParams{Name: tool, Arguments: args})
				lat[i] = append(lat[i], time.Since(t0))
				if err != nil || r.IsError {
					b.Errorf("call: %v", err)
					return
				}
			}
		}()
	}
	wg.Wait()
	elapsed, cpu := time.Since(start), cpuTime()-cpu0
	b.StopTimer()
	all := slices.Concat(lat...)
	slices.Sort(all)
	if len(all) == 0 {
		return
	}
	b.ReportMetric(float64(all[len(all)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(all[min(len(all)-1, len(all)*99/100)].Microseconds())/1000, "p99-ms")
	b.ReportMetric(float64(len(all))/elapsed.Seconds(), "calls/s")
	// CPU time of the whole process (client, gateway and upstream) per call: what the path
	// costs, steadier than wall-clock time on a shared machine.
	b.ReportMetric(float64(cpu.Microseconds())/float64(len(all)), "cpu-µs/call")
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func itoa(n int) string {
	if n == 1 {
		return "1"
	}
	return "64"
}
