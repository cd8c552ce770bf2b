package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/portcullis-ai/portcullis/internal/app"
	"github.com/portcullis-ai/portcullis/internal/ledger"
)

// replayBenchRecords is the generated ledger's size (PORTCULLIS_REPLAY_BENCH_RECORDS overrides).
const replayBenchRecords = 100_000

// BenchmarkPolicyReplay replays a generated ledger of decision records (the default agent's
// tools, mixed decisions, a redacted parameter in one in ten) under a tightened default policy,
// through the command, and reports records/s.
func BenchmarkPolicyReplay(b *testing.B) {
	n := replayBenchRecords
	if v := os.Getenv("PORTCULLIS_REPLAY_BENCH_RECORDS"); v != "" {
		fmt.Sscan(v, &n)
	}
	ctx := context.Background()
	dir := benchDecisionLedger(b, n)
	pol, err := os.ReadFile(filepath.Join(dir, "policies", app.DemoAgent+".yaml"))
	if err != nil {
		b.Fatal(err)
	}
	cand := b.TempDir()
	tight := strings.Replace(string(pol), "max_value: 1000", "max_value: 100", 1)
	if err := os.WriteFile(filepath.Join(cand, "p.yaml"), []byte(tight), 0o600); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	cpu0 := cpuTime()
	for b.Loop() {
		if code := Main(ctx, []string{"policy", "replay", "--data", dir, "--policy", cand, "--format", "json"}, strings.NewReader(""), io.Discard, io.Discard); code != exitOK {
			b.Fatalf("exit %d", code)
		}
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "records/s")
	// The process's CPU time per replay (every core's, the collector's included): on a shared
	// machine the wall time says as much about the neighbours as about replay.
	b.ReportMetric((cpuTime()-cpu0).Seconds()/float64(b.N), "cpu-s/op")
}

// cpuTime is the process's user and system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// benchDecisionLedger writes a data directory whose ledger holds n decision records of the
// default agent's tools (mixed decisions, a redacted parameter in one in ten), one a second from
// 2026-11-01.
func benchDecisionLedger(b *testing.B, n int) string {
	b.Helper()
	ctx := context.Background()
	dir := b.TempDir()
	// PORTCULLIS_REPLAY_BENCH_DIR keeps the generated data directory there and reuses it, so
	// that runs (of two builds, side by side) replay the same ledger without writing it again.
	if d := os.Getenv("PORTCULLIS_REPLAY_BENCH_DIR"); d != "" {
		if _, err := os.Stat(filepath.Join(d, LedgerDBFile)); err == nil {
			return d
		}
		dir = d
	}
	if _, _, err := app.Init(ctx, dir); err != nil {
		b.Fatal(err)
	}
	if code := Main(ctx, []string{"audit", "keygen", "--data", dir}, strings.NewReader(""), io.Discard, io.Discard); code != exitOK {
		b.Fatalf("keygen: exit %d", code)
	}
	l, st := openDataLedger(b, dir, 0)
	tools := []struct{ tool, params, dec, rule string }{
		{"fetch_customer_names", `{"limit":%d}`, "allow", "read_customer_list"},
		{"fetch_customer_names", `{"limit":%d,"password":"x"}`, "allow", "read_customer_list"},
		{"save_report", `{"file_path":"/reports/r%d.pdf","file_size_bytes":100}`, "allow", "write_report"},
		{"delete_file", `{"path":"/tmp/%d"}`, "deny", "delete_operations"},
		{"fetch_sales_data", `{"query_type":"monthly","date_range_days":%d}`, "deny", ""},
	}
	start := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	var wg sync.WaitGroup
	const workers = 32
	for w := range workers {
		wg.Go(func() {
			for i := w; i < n; i += workers {
				tc := tools[i%len(tools)]
				if i%10 != 1 && strings.Contains(tc.params, "password") {
					tc = tools[0]
				}
				_, err := l.Append(ctx, &ledger.Record{Kind: ledger.KindDecision, Time: start.Add(time.Duration(i) * time.Second),
					DecisionID: fmt.Sprintf("dec-%d", i), Source: "http", Agent: &ledger.Principal{ID: app.DemoAgent, Verified: true, Method: "api_key"},
					Tool: tc.tool, Params: json.RawMessage(fmt.Sprintf(tc.params, i%2000)), Decision: tc.dec,
					Policy: &ledger.Policy{Version: "sha256:bench", Rule: tc.rule}})
				if err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if err := l.Close(ctx); err != nil {
		b.Fatal(err)
	}
	st.Close()
	return dir
}
