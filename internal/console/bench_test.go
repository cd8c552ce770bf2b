package console

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/portcullis-ai/portcullis/internal/approval"
	"github.com/portcullis-ai/portcullis/internal/ledger"
	"github.com/portcullis-ai/portcullis/internal/store/sqlite"
)

// BenchmarkAuditSearch measures one page of the audit explorer over a SQLite ledger of
// PORTCULLIS_CONSOLE_BENCH_RECORDS records (default 200,000): a filter that matches every tenth
// record, and one that matches nothing (the page then reads its whole budget and stops); and the
// statistics pages' scan (overview, agents, policies), which parses every record of its window up
// to its 200,000-record budget.
//
//	PORTCULLIS_CONSOLE_BENCH_RECORDS=200000 go test -run '^$' -bench AuditSearch -benchtime 5x ./internal/console/
func BenchmarkAuditSearch(b *testing.B) {
	n := 200_000
	if s := os.Getenv("PORTCULLIS_CONSOLE_BENCH_RECORDS"); s != "" {
		n, _ = strconv.Atoi(s)
	}
	ctx := context.Background()
	st, err := sqlite.OpenLedger(filepath.Join(b.TempDir(), "ledger.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	keys, err := ledger.GenerateKeys(b.TempDir(), "portcullis.test/bench")
	if err != nil {
		b.Fatal(err)
	}
	vs, _, _ := keys.Verifiers()
	led, err := ledger.Open(ctx, ledger.Options{Store: st, Signer: keys.Signer, Verifiers: vs, HashKey: keys.HashKey})
	if err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	var wg sync.WaitGroup
	const workers = 256
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += workers {
				tool := "fetch"
				if i%10 == 0 {
					tool = "export"
				}
				if _, err := led.Append(ctx, &ledger.Record{Kind: ledger.KindDecision, DecisionID: fmt.Sprintf("dec_%d", i),
					Agent: &ledger.Principal{ID: "agent-a"}, Tool: tool, Decision: "allow", Params: json.RawMessage(`{"limit":10}`)}); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if err := led.Close(ctx); err != nil {
		b.Fatal(err)
	}
	b.Logf("%d records written in %v", n, time.Since(start).Round(time.Millisecond))
	eng, err := approval.New(approval.NewMemory(), approval.RecorderFunc(func(context.Context, approval.Event) error { return nil }))
	if err != nil {
		b.Fatal(err)
	}
	c, err := New(Options{Path: "/console", Queue: eng, Auth: &fakeAuth{}, Ledger: st, Verifiers: vs})
	if err != nil {
		b.Fatal(err)
	}
	p := human("audrey", "auditor")
	b.Run("stats", func(b *testing.B) {
		for b.Loop() {
			n := 0
			if _, err := c.scanBack(ctx, time.Time{}, statsBudget, func(uint64, *stat) { n++ }); err != nil || n == 0 {
				b.Fatal(n, err)
			}
		}
	})
	for _, tc := range []struct {
		name string
		f    auditFilter
	}{{"tenth", auditFilter{Tool: "export"}}, {"none", auditFilter{Tool: "nothing"}}} {
		b.Run(tc.name, func(b *testing.B) {
			for b.Loop() {
				if _, _, err := c.search(ctx, p, tc.f, pageSize, scanBudget); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
