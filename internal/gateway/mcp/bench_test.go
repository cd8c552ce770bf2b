package mcp

import (
	"context"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/portcullis-ai/portcullis/internal/store/memory"
	"github.com/portcullis-ai/portcullis/internal/store/sqlite"
)

// BenchmarkToolsCall measures one tools/call end to end — agent client → (gateway →) upstream
// server — over in-memory pipes, with every gateway feature on: API-key authentication,
// inspection of parameters and result, policy, definition pin check, log relaying (the calls
// are tracked for attribution; the agent sets no level), and the ledger on SQLite
// (durable: each decision and each result record is committed before the call proceeds).
// "direct" is the same client calling the same upstream server without the gateway.
// It reports p50 and p99 latency per call, throughput and the CPU time per call.
//
// The closed-loop runs (each client calls again as soon as it has an answer) saturate the two
// cores at 64 clients, so their latency is mostly queueing and their throughput is the
// saturation throughput. The paced runs hold 64 clients to a fixed total rate well below
// saturation — the added latency of the gateway itself with 64 clients in flight — and time each
// call from when it was due, not from when it was sent, so a stall is not hidden.
func BenchmarkToolsCall(b *testing.B) {
	for _, load := range []struct {
		clients int
		rate    float64 // calls/s for all clients together; 0: closed loop
	}{{1, 0}, {64, 0}, {64, pacedRate}} {
		clients, rate := load.clients, load.rate
		suffix := "clients=" + strconv.Itoa(clients)
		if rate > 0 {
			suffix += ",paced=" + strconv.Itoa(int(rate)) + "/s"
		}
		b.Run("direct/"+suffix, func(b *testing.B) {
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
			runCalls(b, sessions, "echo", rate)
		})
		for _, durable := range []bool{true, false} {
			name := "gateway-sqlite-ledger/" + suffix
			if !durable {
				name = "gateway-memory-ledger/" + suffix
			}
			b.Run(name, func(b *testing.B) { benchGateway(b, clients, durable, rate) })
		}
	}
}

// pacedRate is the total rate of the paced runs: about a third of the gateway's saturation
// throughput with the durable ledger on this 2-core machine.
const pacedRate = 1000

func benchGateway(b *testing.B, clients int, durable bool, rate float64) {
	{
		{
			var h *harness
			if durable {
				h = newBenchHarness(b)
			} else {
				h = newHarnessWith(b, 0, 10*time.Second, memory.New(), benchConfig)
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
			runCalls(b, sessions, "up__echo", rate)
		}
	}
}

func newBenchHarness(b *testing.B) *harness {
	store, err := sqlite.OpenLedger(filepath.Join(b.TempDir(), "ledger.db"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = store.Close() })
	return newHarnessWith(b, 0, 10*time.Second, store, benchConfig)
}

// benchConfig is the configuration's default: log relaying on (each call is tracked for it).
var benchConfig = harnessConfig{gateway: func(o *Options) { o.RelayLogs = true }}

func runCalls(b *testing.B, sessions []*sdk.ClientSession, tool string, rate float64) {
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
	// Paced: client i's k-th call is due at start + (i/clients + k) * interval.
	interval := time.Duration(0)
	if rate > 0 {
		interval = time.Duration(float64(len(sessions)) / rate * float64(time.Second))
	}
	for i, cs := range sessions {
		wg.Add(1)
		go func() {
			defer wg.Done()
			due := start.Add(interval * time.Duration(i) / time.Duration(len(sessions)))
			for next.Add(1) <= int64(b.N) {
				t0 := time.Now()
				if interval > 0 {
					time.Sleep(time.Until(due))
					t0, due = due, due.Add(interval)
				}
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

// BenchmarkToolsCallAllocs counts the allocations (and time) of one tools/call through the
// gateway, one client, the ledger in memory: the decision path's own work on the parameters and
// the result (reading, inspecting, recording, forwarding) beside the SDK's on both legs.
func BenchmarkToolsCallAllocs(b *testing.B) {
	h := newHarnessWith(b, 0, 10*time.Second, memory.New(), harnessConfig{})
	ctx := context.Background()
	args := map[string]any{"text": "quarterly report for the north region, 2026"}
	b.ReportAllocs()
	for b.Loop() {
		r, err := h.cs.CallTool(ctx, &sdk.CallToolParams{Name: "up__echo", Arguments: args})
		if err != nil || r.IsError {
			b.Fatalf("call: %v %+v", err, r)
		}
	}
}
