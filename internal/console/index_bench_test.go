package console

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-ai/portcullis/internal/auditindex"
	"github.com/portcullis-ai/portcullis/internal/ledger"
	"github.com/portcullis-ai/portcullis/internal/store/postgres"
	"github.com/portcullis-ai/portcullis/internal/store/postgres/pgtest"
	"github.com/portcullis-ai/portcullis/internal/store/sqlite"
)

// BenchmarkAuditSearchIndexed measures one page (50 records) of the audit explorer through the
// index over a ledger of PORTCULLIS_CONSOLE_BENCH_RECORDS records (default 1,000,000), on
// SQLite and, with PORTCULLIS_TEST_POSTGRES set, on PostgreSQL: a filter that matches nothing,
// a rare agent (one record in 10,000), a common decision (allow, 9 in 10), a one-hour time
// range in the middle of the ledger, and an agent and a decision each common but never together. The records are committed to the store directly (the
// search reads them, it does not verify their chain), then indexed; both are timed in the log.
//
//	go test -run '^$' -bench AuditSearchIndexed -benchtime 20x -timeout 60m ./internal/console/
func BenchmarkAuditSearchIndexed(b *testing.B) {
	n := 1_000_000
	if s := os.Getenv("PORTCULLIS_CONSOLE_BENCH_RECORDS"); s != "" {
		n, _ = strconv.Atoi(s)
	}
	b.Run("sqlite", func(b *testing.B) {
		dir := b.TempDir()
		st, err := sqlite.OpenLedger(filepath.Join(dir, "ledger.db"))
		if err != nil {
			b.Fatal(err)
		}
		defer st.Close()
		x, err := sqlite.OpenAuditIndex(filepath.Join(dir, "index.db"), st)
		if err != nil {
			b.Fatal(err)
		}
		defer x.Close()
		benchIndexed(b, st, x, n)
	})
	b.Run("postgres", func(b *testing.B) {
		dsn, schema := pgtest.Schema(b)
		pool := pgtest.Pool(b, dsn, schema)
		st, err := postgres.NewLedger(b.Context(), pool)
		if err != nil {
			b.Fatal(err)
		}
		x, err := postgres.NewAuditIndex(b.Context(), pool, st)
		if err != nil {
			b.Fatal(err)
		}
		benchIndexed(b, st, x, n)
	})
}

// benchRecords commits n records to st in batches: 100 agents (and agent-rare every 10,000th
// record), three tools, allow 9 in 10, 10 ms apart from t0.
func benchRecords(b *testing.B, st ledger.Store, n int) {
	ctx := context.Background()
	prev := strings.Repeat("ab", 32)
	const batch = 2000
	for lo := 0; lo < n; lo += batch {
		recs := make([]ledger.Entry, 0, batch)
		for i := lo; i < min(n, lo+batch); i++ {
			r := ledger.Record{V: ledger.FormatVersion, Seq: uint64(i), Prev: prev, Time: t0.Add(time.Duration(i) * 10 * time.Millisecond),
				Kind: ledger.KindDecision, DecisionID: fmt.Sprintf("dec_%d", i), Agent: &ledger.Principal{ID: fmt.Sprintf("agent-%d", i%100), Verified: true},
				Tool: []string{"fetch", "export", "send_email"}[i%3], Decision: "allow", Params: json.RawMessage(`{"limit":10}`)}
			if i == 0 {
				r.Prev = ""
			}
			if i%10 == 9 {
				r.Decision = "deny"
			}
			if i%10_000 == 5_000 {
				r.Agent.ID = "agent-rare"
			}
			data, err := json.Marshal(&r)
			if err != nil {
				b.Fatal(err)
			}
			recs = append(recs, ledger.Entry{Seq: uint64(i), Data: data})
		}
		if err := st.Commit(ctx, recs, nil); err != nil {
			b.Fatal(err)
		}
	}
}

func benchIndexed(b *testing.B, st ledger.Store, x auditindex.Store, n int) {
	start := time.Now()
	benchRecords(b, st, n)
	b.Logf("%d records committed in %v", n, time.Since(start).Round(time.Millisecond))
	start = time.Now()
	ix := auditindex.New(auditindex.Options{Ledger: st, Index: x, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	catchUp(b, ix)
	b.Logf("indexed in %v (%.0f records/s)", time.Since(start).Round(time.Millisecond), float64(n)/time.Since(start).Seconds())
	c := newIndexed(b, st, x)
	p := human("audrey", "auditor")
	mid := t0.Add(time.Duration(n/2) * 10 * time.Millisecond)
	for _, tc := range []struct {
		name string
		f    auditFilter
		want int
	}{
		{"none", auditFilter{Tool: "nothing"}, 0},
		{"rare_agent", auditFilter{Agent: "agent-rare"}, min(pageSize, n/10_000)},
		{"common_decision", auditFilter{Decision: "allow"}, pageSize},
		{"time_range", auditFilter{since: mid, until: mid.Add(time.Hour)}, pageSize},
		{"agent_and_decision_none", auditFilter{Agent: "agent-7", Decision: "deny"}, 0}, // both common, never together
	} {
		b.Run(tc.name, func(b *testing.B) {
			for b.Loop() {
				rows, _, err := c.search(context.Background(), p, tc.f, pageSize, scanBudget)
				if err != nil || len(rows) != tc.want {
					b.Fatalf("%d rows, want %d: %v", len(rows), tc.want, err)
				}
			}
		})
	}
}
