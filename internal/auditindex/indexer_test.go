package auditindex_test

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/portcullis-ai/portcullis/internal/auditindex"
	"github.com/portcullis-ai/portcullis/internal/ledger"
	"github.com/portcullis-ai/portcullis/internal/ledger/ledgertest"
	"github.com/portcullis-ai/portcullis/internal/store/postgres"
	"github.com/portcullis-ai/portcullis/internal/store/postgres/pgtest"
	"github.com/portcullis-ai/portcullis/internal/store/sqlite"
)

// backend is an index store, and a way to damage one of its posting rows behind its back.
type backend struct {
	name string
	open func(t *testing.T) (x auditindex.Store, damage func(t *testing.T, term auditindex.Term, block uint64))
}

var backends = []backend{
	{"sqlite", func(t *testing.T) (auditindex.Store, func(*testing.T, auditindex.Term, uint64)) {
		dir := t.TempDir()
		led := sqliteLedger(t, dir)
		path := filepath.Join(dir, "index.db")
		x, err := sqlite.OpenAuditIndex(path, led)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { x.Close() })
		return x, func(t *testing.T, term auditindex.Term, block uint64) {
			db, err := sql.Open("sqlite", "file:"+path)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			damage(t, func(q string, args ...any) (int64, error) {
				res, err := db.Exec(q, args...)
				if err != nil {
					return 0, err
				}
				return res.RowsAffected()
			}, "UPDATE index_postings SET seqs = ? WHERE field = ? AND term = ? AND block = ?", term, block)
		}
	}},
	{"postgres", func(t *testing.T) (auditindex.Store, func(*testing.T, auditindex.Term, uint64)) {
		dsn, schema := pgtest.Schema(t)
		pool := pgtest.Pool(t, dsn, schema)
		led, err := postgres.NewLedger(t.Context(), pool)
		if err != nil {
			t.Fatal(err)
		}
		x, err := postgres.NewAuditIndex(t.Context(), pool, led)
		if err != nil {
			t.Fatal(err)
		}
		return x, func(t *testing.T, term auditindex.Term, block uint64) {
			damage(t, func(q string, args ...any) (int64, error) {
				tag, err := pool.Exec(context.Background(), q, args...)
				return tag.RowsAffected(), err
			}, "UPDATE ledger_index_postings SET seqs = $1 WHERE field = $2 AND term = $3 AND block = $4", term, block)
		}
	}},
}

// damage overwrites term's row of block with a blob Decode refuses (a form that does not exist).
func damage(t *testing.T, exec func(q string, args ...any) (int64, error), q string, term auditindex.Term, block uint64) {
	t.Helper()
	n, err := exec(q, []byte{7, 1, 2}, int16(term.Field), term.Value, int64(block))
	if err != nil || n != 1 {
		t.Fatalf("damaging the row of %v: %d rows, %v", term, n, err)
	}
}

func sqliteLedger(t *testing.T, dir string) *sqlite.Ledger {
	t.Helper()
	led, err := sqlite.OpenLedger(filepath.Join(dir, "ledger.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { led.Close() })
	return led
}

// commit appends records from..to-1 to led, each of agent(i): the indexer reads the stored
// bytes, so they need no chain.
func commit(t *testing.T, led *sqlite.Ledger, from, to int, agent func(i int) string) {
	t.Helper()
	var es []ledger.Entry
	for i := from; i < to; i++ {
		es = append(es, ledger.Entry{Seq: uint64(i), Data: fmt.Appendf(nil, `{"kind":"decision","agent":{"id":%q},"tool":"fetch","decision":"allow"}`, agent(i))})
	}
	if err := led.Commit(t.Context(), es, nil); err != nil {
		t.Fatal(err)
	}
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// offsets returns the offsets the index holds for term in block.
func offsets(t *testing.T, x auditindex.Reader, term auditindex.Term, block uint64) []uint16 {
	t.Helper()
	ps, err := x.Postings(t.Context(), term, block, 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(ps) == 0 || ps[0].Block != block {
		return nil
	}
	offs, err := auditindex.Decode(nil, ps[0].Seqs)
	if err != nil {
		t.Fatalf("the row of %v: %v", term, err)
	}
	return offs
}

// A posting row that cannot be read would fail every batch into its block for ever: the
// indexer rebuilds the index instead, logs it and counts it, and the rebuilt index is whole.
func TestDamagedPostingRebuildsTheIndex(t *testing.T) {
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			x, damageRow := be.open(t)
			led := sqliteLedger(t, t.TempDir())
			agent := func(i int) string { return fmt.Sprintf("agent-%d", i%3) }
			commit(t, led, 0, 1000, agent)
			ix := auditindex.New(auditindex.Options{Ledger: led, Index: x, Batch: 1000, Logger: quiet()})
			if n, err := ix.Step(t.Context()); err != nil || n != 1000 {
				t.Fatalf("first batch: %d, %v", n, err)
			}
			term := auditindex.Term{Field: auditindex.FieldAgent, Value: "agent-1"}
			damageRow(t, term, 0)
			commit(t, led, 1000, 1500, agent)
			// A restarted indexer looks every row of the block up; this one knows which exist.
			size := 1500
			for _, ix := range []*auditindex.Indexer{ix, auditindex.New(auditindex.Options{Ledger: led, Index: x, Batch: 1000, Logger: quiet()})} {
				for range 3 {
					if _, err := ix.Step(t.Context()); err != nil {
						t.Fatalf("a batch after a row was damaged: %v", err)
					}
				}
				if s := ix.Stats(); s.Rebuilds != 1 || s.Watermark != uint64(size) {
					t.Fatalf("stats %+v: want one rebuild, watermark %d", s, size)
				}
				if got := offsets(t, x, term, 0); len(got) != size/3 {
					t.Fatalf("agent-1 holds %d records of block 0 after the rebuild, want %d", len(got), size/3)
				}
				damageRow(t, term, 0)
				commit(t, led, size, size+600, agent)
				size += 600
			}
		})
	}
}

// view is a ledger that can be replaced under the indexers reading it: a torn tail trimmed and
// written again, which every replica sees at once.
type view struct{ p atomic.Pointer[sqlite.Ledger] }

func (v *view) Size(ctx context.Context) (uint64, error) { return v.p.Load().Size(ctx) }
func (v *view) Scan(ctx context.Context, from uint64, fn func(ledger.Entry) error) error {
	return v.p.Load().Scan(ctx, from, fn)
}
func (v *view) LatestCheckpoint(ctx context.Context) (ledger.StoredCheckpoint, bool, error) {
	return v.p.Load().LatestCheckpoint(ctx)
}

// After one replica rebuilt the index up to the watermark another replica last wrote, that
// replica's knowledge of which rows its block holds is of the index before: it must not trust
// it (the generation moved), or its next batch overwrites rows it thinks absent and records
// drop out of the search.
func TestIndexerSeesAnotherReplicasRebuild(t *testing.T) {
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			x, _ := be.open(t)
			old, now := sqliteLedger(t, t.TempDir()), sqliteLedger(t, t.TempDir())
			commit(t, old, 0, 1000, func(int) string { return "agent-old" })
			// The same log from record 900 on written again, by another agent, and longer.
			commit(t, now, 0, 900, func(int) string { return "agent-old" })
			commit(t, now, 900, 2000, func(int) string { return "agent-new" })
			var v view
			v.p.Store(old)
			a := auditindex.New(auditindex.Options{Ledger: &v, Index: x, Batch: 1000, Logger: quiet()})
			b := auditindex.New(auditindex.Options{Ledger: &v, Index: x, Batch: 1000, Logger: quiet()})
			if n, err := a.Step(t.Context()); err != nil || n != 1000 {
				t.Fatalf("replica a's first batch: %d, %v", n, err)
			}
			v.p.Store(now)
			if n, err := b.Step(t.Context()); err != nil || n != 1000 || b.Stats().Rebuilds != 1 {
				t.Fatalf("replica b's batch over the replaced tail: %d, %v, %+v; want a rebuild up to 1000", n, err, b.Stats())
			}
			if n, err := a.Step(t.Context()); err != nil || n != 1000 {
				t.Fatalf("replica a's batch after b's rebuild: %d, %v", n, err)
			}
			if got := offsets(t, x, auditindex.Term{Field: auditindex.FieldAgent, Value: "agent-new"}, 0); len(got) != 1100 {
				t.Fatalf("agent-new holds %d records of block 0, want 1100 (900..1999): replica a overwrote the row b rebuilt", len(got))
			}
			if got := offsets(t, x, auditindex.Term{Field: auditindex.FieldAgent, Value: "agent-old"}, 0); len(got) != 900 {
				t.Fatalf("agent-old holds %d records of block 0, want 900", len(got))
			}
		})
	}
}

// An index file made before the generation was kept opens, at generation 0, and a reset moves
// it on.
func TestSQLiteIndexOfAnEarlierVersionOpens(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "index.db")
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`CREATE TABLE index_state (id INTEGER PRIMARY KEY CHECK (id = 1), next INTEGER NOT NULL, last BLOB, skipped INTEGER NOT NULL);
		INSERT INTO index_state(id, next, last, skipped) VALUES (1, 42, NULL, 1)`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	x, err := sqlite.OpenAuditIndex(path, sqliteLedger(t, dir))
	if err != nil {
		t.Fatal(err)
	}
	defer x.Close()
	if st, err := x.State(t.Context()); err != nil || st.Next != 42 || st.Skipped != 1 || st.Generation != 0 {
		t.Fatalf("state of the earlier index: %+v, %v", st, err)
	}
	if err := x.Reset(t.Context()); err != nil {
		t.Fatal(err)
	}
	if st, err := x.State(t.Context()); err != nil || st.Next != 0 || st.Generation != 1 {
		t.Fatalf("state after a reset: %+v, %v", st, err)
	}
}

// Run goes on at once while records it knows of wait — after a full batch, and after a batch
// that ended at a block's end — and once it has caught up waits an interval, so that under
// steady load a batch takes what an interval brought.
func TestRunWaitsAnIntervalOnceCaughtUp(t *testing.T) {
	dir := t.TempDir()
	led := sqliteLedger(t, dir)
	x, err := sqlite.OpenAuditIndex(filepath.Join(dir, "index.db"), led)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { x.Close() })
	total := auditindex.BlockSize + auditindex.BlockSize/2
	commit(t, led, 0, total, func(int) string { return "a" })
	batch := auditindex.BlockSize - 10 // batches end at batch, at the block's end, then at the log's end
	synctest.Test(t, func(t *testing.T) {
		v := &ledgertest.SizeCounter{View: led}
		ix := auditindex.New(auditindex.Options{Ledger: v, Index: x, Batch: batch, Interval: time.Minute, Logger: quiet()})
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		go ix.Run(ctx)
		synctest.Wait()
		if s := ix.Stats(); s.Watermark != uint64(total) {
			t.Fatalf("watermark %d, want %d", s.Watermark, total)
		}
		if n := v.Sizes.Load(); n != 3 {
			t.Fatalf("%d steps before the first interval, want 3 (to the batch limit, to the block's end, to the log's end)", n)
		}
		time.Sleep(time.Minute)
		synctest.Wait()
		if n := v.Sizes.Load(); n != 4 {
			t.Fatalf("%d steps after an interval, want 4", n)
		}
	})
}
