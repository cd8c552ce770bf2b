package console

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/portcullis-ai/portcullis/internal/approval"
	"github.com/portcullis-ai/portcullis/internal/auditindex"
	"github.com/portcullis-ai/portcullis/internal/ledger"
	"github.com/portcullis-ai/portcullis/internal/ledger/ledgertest"
	"github.com/portcullis-ai/portcullis/internal/store/postgres"
	"github.com/portcullis-ai/portcullis/internal/store/postgres/pgtest"
	"github.com/portcullis-ai/portcullis/internal/store/sqlite"
)

// t0 is the first mixed record's time; each record is a second after the one before.
var t0 = time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)

// appendMixed appends n records that vary every field a search filters on, records at times
// from t0 on (one a second, from the ledger's clock).
func appendMixed(t testing.TB, keys *ledger.Keys, st ledger.Store, from, n int) {
	t.Helper()
	ctx := context.Background()
	var clock atomic.Int64
	clock.Store(int64(from))
	// Appended by many goroutines, the records' times are not quite in seq order, as a busy
	// gateway's are not.
	led := ledgertest.Open(t, st, keys, ledger.Options{Now: func() time.Time { return t0.Add(time.Duration(clock.Add(1)) * time.Second) }})
	decisions := []string{"allow", "deny", "ALLOW", "constrain"}
	var wg sync.WaitGroup
	const workers = 32
	for w := range workers {
		wg.Go(func() {
			for i := from + w; i < from+n; i += workers {
				if _, err := led.Append(ctx, mixed(i, decisions)); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if err := led.Close(ctx); err != nil {
		t.Fatal(err)
	}
}

// mixed is the mixed ledger's record i.
func mixed(i int, decisions []string) *ledger.Record {
	r := &ledger.Record{Kind: ledger.KindDecision, DecisionID: fmt.Sprintf("dec_%d", i/2), Tool: []string{"fetch", "export", "send_email"}[i%3],
		Agent: &ledger.Principal{ID: fmt.Sprintf("agent-%d", i%7)}, Decision: decisions[i%4], Params: json.RawMessage(fmt.Sprintf(`{"n":%d,"note":"row %d"}`, i, i%11))}
	if i%5 == 0 {
		r.User = &ledger.Principal{ID: fmt.Sprintf("user-%d", i%3)}
	}
	if i%4 != 0 {
		r.Policy = &ledger.Policy{Rule: fmt.Sprintf("rule-%d", i%6)}
	}
	if i%9 == 0 {
		r.Session = &ledger.Session{ID: fmt.Sprintf("ses-%d", i%4)}
	}
	if i%13 == 0 {
		r.Kind, r.Decision, r.Policy = ledger.KindToolResult, "", nil
	}
	if i == 777 {
		r.Agent.ID = "agent-rare"
	}
	return r
}

// mixedFilters are searches of the mixed ledger: single fields, conjunctions, time ranges,
// text with a field, and filters that match nothing.
func mixedFilters() []auditFilter {
	fs := []auditFilter{
		{Agent: "agent-3"}, {Agent: "agent-rare"}, {Agent: "nobody"}, {Tool: "export"}, {Decision: "allow"}, {Decision: "Deny"},
		{Kind: string(ledger.KindToolResult)}, {Rule: "rule-5"}, {User: "user-1"}, {Session: "ses-2"}, {DecisionID: "dec_100"},
		{Agent: "agent-2", Tool: "fetch", Decision: "allow"}, {Agent: "agent-1", Decision: "constrain", User: "user-0"},
		{Tool: "export", Text: "row 7"}, {Agent: "agent-4", Tool: "nothing"},
		{since: t0.Add(1000 * time.Second), until: t0.Add(1500 * time.Second)},
		{Agent: "agent-5", since: t0.Add(6000 * time.Second)}, {until: t0.Add(90 * time.Second), Tool: "fetch"},
		{since: t0.Add(time.Hour * 1000)},
	}
	return fs
}

// allPages follows the search's cursor to the end and returns every match's seq.
func allPages(t *testing.T, c *Console, p Principal, f auditFilter, limit, budget int) []uint64 {
	t.Helper()
	var out []uint64
	for range 100_000 {
		rows, next, err := c.search(context.Background(), p, f, limit, budget)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rows {
			out = append(out, r.Seq)
		}
		if next == 0 {
			return out
		}
		if len(out) > 0 && next > out[len(out)-1] || f.Before != 0 && next >= f.Before {
			t.Fatalf("%+v: the cursor went from %d to %d", f, f.Before, next)
		}
		f.Before = next
	}
	t.Fatal("no end")
	return nil
}

func newIndexed(t testing.TB, st ledger.Store, ix auditindex.Reader) *Console {
	t.Helper()
	eng, err := approval.New(approval.NewMemory(), approval.RecorderFunc(func(context.Context, approval.Event) error { return nil }))
	if err != nil {
		t.Fatal(err)
	}
	vs := ledgertest.Verifiers(t, ledgertest.Keys(t))
	c, err := New(Options{Path: "/console", Queue: eng, Auth: &fakeAuth{}, Ledger: st, Index: ix, Verifiers: vs})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// catchUp runs the indexer until it has read every record.
func catchUp(t testing.TB, ix *auditindex.Indexer) {
	t.Helper()
	for range 10_000 {
		n, err := ix.Step(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			return
		}
	}
	t.Fatal("the indexer never caught up")
}

// sameAsScan checks every mixed filter finds the same records, page after page, through the
// index as through the scan, for a person who reads everything and one who sees one agent.
func sameAsScan(t *testing.T, st ledger.Store, ix auditindex.Reader) {
	t.Helper()
	scan, indexed := newIndexed(t, st, nil), newIndexed(t, st, ix)
	one := human("ann", "approver", approval.Scope{Agents: []string{"agent-2"}, Tools: []string{".*"}})
	for _, p := range []Principal{human("audrey", "auditor"), one} {
		for i, f := range mixedFilters() {
			if p.Approver.ID == one.Approver.ID && i%4 != 0 {
				continue // a few filters suffice for the narrower view
			}
			want := allPages(t, scan, p, f, 400, 1<<30)
			for _, budget := range []int{1 << 30, 700} {
				if got := allPages(t, indexed, p, f, 400, budget); !slices.Equal(got, want) {
					t.Errorf("%s %+v budget %d: the index found %d records %v…, the scan %d %v…", p.Approver.ID, f, budget, len(got), head(got), len(want), head(want))
				}
			}
		}
	}
}

func tempLedger(t *testing.T) (string, *sqlite.Ledger) {
	t.Helper()
	dir := t.TempDir()
	st, err := sqlite.OpenLedger(filepath.Join(dir, "ledger.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return dir, st
}

func head(s []uint64) []uint64 { return s[:min(len(s), 8)] }

func openIndex(t testing.TB, st *sqlite.Ledger, dir string) (*sqlite.AuditIndex, *auditindex.Indexer) {
	t.Helper()
	x, err := sqlite.OpenAuditIndex(filepath.Join(dir, "index.db"), st)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { x.Close() })
	return x, auditindex.New(auditindex.Options{Ledger: st, Index: x, Batch: 1000, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
}

func TestIndexedSearchEqualsScan(t *testing.T) {
	dir, st := tempLedger(t)
	keys := ledgertest.Keys(t)
	appendMixed(t, keys, st, 0, 9000)
	t.Log("appended")
	x, ix := openIndex(t, st, dir)
	catchUp(t, ix)
	t.Log("indexed")
	// Records after the watermark: the search scans them.
	appendMixed(t, keys, st, 9000, 1500)
	t.Log("appended")
	sameAsScan(t, st, x)
	t.Log("compared")
	catchUp(t, ix)
	sameAsScan(t, st, x)
	size, err := st.Size(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if s := ix.Stats(); s.Skipped != 0 || s.Watermark != size {
		t.Fatalf("stats %+v", s)
	}
}

// someFilters are a few of mixedFilters, for the tests whose point is elsewhere.
func someFilters() []auditFilter {
	fs := mixedFilters()
	return []auditFilter{fs[0], fs[1], fs[5], fs[11], fs[15]}
}

func sameAsScanSome(t *testing.T, st ledger.Store, ix auditindex.Reader) {
	t.Helper()
	scan, indexed := newIndexed(t, st, nil), newIndexed(t, st, ix)
	p := human("audrey", "auditor")
	for _, f := range someFilters() {
		want := allPages(t, scan, p, f, 400, 1<<30)
		if got := allPages(t, indexed, p, f, 400, 1<<30); !slices.Equal(got, want) {
			t.Errorf("%+v: the index found %d records %v…, the scan %d %v…", f, len(got), head(got), len(want), head(want))
		}
	}
}

// A restarted gateway's indexer resumes from the watermark its predecessor committed.
func TestIndexResumesFromWatermark(t *testing.T) {
	dir, st := tempLedger(t)
	appendMixed(t, ledgertest.Keys(t), st, 0, 6000)
	x, ix := openIndex(t, st, dir)
	for range 3 {
		if _, err := ix.Step(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	if err := x.Close(); err != nil {
		t.Fatal(err)
	}
	x2, ix2 := openIndex(t, st, dir)
	s, err := x2.State(t.Context())
	if err != nil || s.Next != 3000 {
		t.Fatalf("reopened at %+v, %v; want 3000", s, err)
	}
	catchUp(t, ix2)
	size, _ := st.Size(t.Context())
	if got := ix2.Stats(); got.Indexed != size-3000 || got.Watermark != size {
		t.Fatalf("the restarted indexer: %+v, want %d indexed up to %d", got, size-3000, size)
	}
	sameAsScanSome(t, st, x2)
}

// Retention prunes records the index holds: their rows go, and a search never offers them.
func TestIndexAfterPruning(t *testing.T) {
	dir, st := tempLedger(t)
	keys := ledgertest.Keys(t)
	appendMixed(t, keys, st, 0, 9000)
	x, ix := openIndex(t, st, dir)
	catchUp(t, ix)
	var to uint64
	if err := st.Checkpoints(t.Context(), func(cp ledger.StoredCheckpoint) error {
		if cp.Size > auditindex.BlockSize && cp.Size < 2*auditindex.BlockSize {
			to = cp.Size
		}
		return nil
	}); err != nil || to == 0 {
		t.Fatalf("no checkpoint in the second block: %v", err)
	}
	if _, err := ledger.ApplyRetention(t.Context(), st, filepath.Join(dir, "archive"), ledger.Retention{}, to, to, time.Now(), ledger.VerifyOptions{Keys: keys.Public}); err != nil {
		t.Fatal(err)
	}
	if _, err := ix.Step(t.Context()); err != nil {
		t.Fatal(err)
	}
	ps, err := x.Postings(t.Context(), auditindex.Term{Field: auditindex.FieldTool, Value: "fetch"}, 0, 10)
	if err != nil || len(ps) != 0 {
		t.Fatalf("block 0's postings after pruning: %d, %v", len(ps), err)
	}
	sameAsScanSome(t, st, x)
	// An index built after the prune starts at the log's base.
	x2, ix2 := openIndex(t, st, t.TempDir())
	catchUp(t, ix2)
	if s := ix2.Stats(); s.Indexed != s.Watermark-to {
		t.Fatalf("an index of the pruned log: %+v, want from %d", s, to)
	}
	sameAsScanSome(t, st, x2)
	rows, _, err := newIndexed(t, st, x).search(t.Context(), human("audrey", "auditor"), auditFilter{Agent: "agent-rare"}, 50, 1<<30)
	if err != nil || len(rows) != 0 {
		t.Fatalf("a pruned record found: %d rows, %v", len(rows), err)
	}
}

// A record that cannot be decoded is skipped and counted; the records after it are indexed.
func TestIndexSkipsUndecodableRecord(t *testing.T) {
	dir, st := tempLedger(t)
	appendMixed(t, ledgertest.Keys(t), st, 0, 100)
	size, _ := st.Size(t.Context())
	if err := st.Commit(t.Context(), []ledger.Entry{{Seq: size, Data: []byte(`{"kind":"decision","tool":`)},
		{Seq: size + 1, Data: []byte(`{"kind":"decision","tool":"after"}`)}}, nil); err != nil {
		t.Fatal(err)
	}
	x, ix := openIndex(t, st, dir)
	catchUp(t, ix)
	s, err := x.State(t.Context())
	if err != nil || s.Next != size+2 || s.Skipped != 1 || ix.Stats().Skipped != 1 {
		t.Fatalf("state %+v, stats %+v, %v", s, ix.Stats(), err)
	}
	ps, err := x.Postings(t.Context(), auditindex.Term{Field: auditindex.FieldTool, Value: "after"}, 1<<40, 10)
	if err != nil || len(ps) != 1 {
		t.Fatalf("the record after the undecodable one: %d postings, %v", len(ps), err)
	}
}

// On PostgreSQL, two replicas' indexers share the index: each batch is written once, and the
// search through it equals the scan.
func TestIndexedSearchEqualsScanPostgres(t *testing.T) {
	dsn, schema := pgtest.Schema(t)
	pool := pgtest.Pool(t, dsn, schema)
	st, err := postgres.NewLedger(t.Context(), pool)
	if err != nil {
		t.Fatal(err)
	}
	appendMixed(t, ledgertest.Keys(t), st, 0, 9000)
	x, err := postgres.NewAuditIndex(t.Context(), pool, st)
	if err != nil {
		t.Fatal(err)
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	var ixs [2]*auditindex.Indexer
	var wg sync.WaitGroup
	for i := range ixs {
		ixs[i] = auditindex.New(auditindex.Options{Ledger: st, Index: x, Batch: 700, Logger: quiet})
		wg.Go(func() { catchUp(t, ixs[i]) })
	}
	wg.Wait()
	size, _ := st.Size(t.Context())
	s, err := x.State(t.Context())
	if err != nil || s.Next != size {
		t.Fatalf("state %+v, %v; want %d", s, err, size)
	}
	if a, b := ixs[0].Stats(), ixs[1].Stats(); a.Indexed+b.Indexed != size {
		t.Fatalf("the replicas indexed %d and %d records of %d", a.Indexed, b.Indexed, size)
	}
	sameAsScan(t, st, x)
}

// An index whose last record is not the ledger's any more (a ledger restored from a backup, a
// torn tail cut and written again) is rebuilt, not trusted.
func TestIndexRebuiltWhenRecordReplaced(t *testing.T) {
	_, a := tempLedger(t)
	dir, b := tempLedger(t)
	keys := ledgertest.Keys(t)
	appendMixed(t, keys, a, 0, 300)
	appendMixed(t, keys, b, 1000, 400)
	x, ix := openIndex(t, a, dir)
	catchUp(t, ix)
	if err := x.Close(); err != nil {
		t.Fatal(err)
	}
	x, ix = openIndex(t, b, dir) // the same index file, another ledger of more records
	catchUp(t, ix)
	size, _ := b.Size(t.Context())
	if s, err := x.State(t.Context()); err != nil || s.Next != size {
		t.Fatalf("state %+v, %v; want %d", s, err, size)
	}
	sameAsScanSome(t, b, x)
}

// A value the PostgreSQL index cannot hold as it is — a NUL (TEXT refuses it) or one longer than
// its primary key's entry may be — is indexed by its digest, so the record neither stops the
// indexer for ever nor drops out of indexed search.
func TestIndexHoldsUnstorableValuesPostgres(t *testing.T) {
	dsn, schema := pgtest.Schema(t)
	pool := pgtest.Pool(t, dsn, schema)
	st, err := postgres.NewLedger(t.Context(), pool)
	if err != nil {
		t.Fatal(err)
	}
	led := ledgertest.Open(t, st, nil, ledger.Options{})
	nul, long := "mallory\x00admin", strings.Repeat("t", 4000)
	for _, r := range []*ledger.Record{
		{Kind: ledger.KindDecision, Tool: "fetch", Agent: &ledger.Principal{ID: "agent-1"}, User: &ledger.Principal{ID: nul}, Decision: "allow"},
		{Kind: ledger.KindDecision, Tool: long, Agent: &ledger.Principal{ID: "agent-1"}, Decision: "deny"},
		{Kind: ledger.KindDecision, Tool: "fetch", Agent: &ledger.Principal{ID: "agent-2"}, Decision: "allow"},
	} {
		if _, err := led.Append(t.Context(), r); err != nil {
			t.Fatal(err)
		}
	}
	if err := led.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	x, err := postgres.NewAuditIndex(t.Context(), pool, st)
	if err != nil {
		t.Fatal(err)
	}
	catchUp(t, auditindex.New(auditindex.Options{Ledger: st, Index: x, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}))
	indexed, scan := newIndexed(t, st, x), newIndexed(t, st, nil)
	for _, f := range []auditFilter{{User: nul}, {Tool: long}, {Agent: "agent-2"}} {
		p := human("audrey", "auditor")
		got, want := allPages(t, indexed, p, f, 50, 1<<30), allPages(t, scan, p, f, 50, 1<<30)
		if len(want) != 1 || !slices.Equal(got, want) {
			t.Errorf("filter %.40q: the index found %v, the scan %v", fmt.Sprint(f), got, want)
		}
	}
}

// A posting row that cannot be read fails the index's answer, not the search: until the
// indexer rebuilds the index, the search is the bounded scan, and finds what the scan finds.
func TestSearchScansPastADamagedPosting(t *testing.T) {
	dir, st := tempLedger(t)
	appendMixed(t, ledgertest.Keys(t), st, 0, 600)
	x, ix := openIndex(t, st, dir)
	catchUp(t, ix)
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "index.db"))
	if err != nil {
		t.Fatal(err)
	}
	res, err := db.Exec("UPDATE index_postings SET seqs = ? WHERE field = ? AND term = ?", []byte{7}, int(auditindex.FieldAgent), "agent-3")
	db.Close()
	if n, _ := res.RowsAffected(); err != nil || n != 1 {
		t.Fatalf("damaging agent-3's row: %v", err)
	}
	p := human("audrey", "auditor")
	want := allPages(t, newIndexed(t, st, nil), p, auditFilter{Agent: "agent-3"}, 50, 1<<30)
	if got := allPages(t, newIndexed(t, st, x), p, auditFilter{Agent: "agent-3"}, 50, 1<<30); len(want) == 0 || !slices.Equal(got, want) {
		t.Fatalf("with agent-3's row damaged the search found %d records %v…, the scan %d", len(got), head(got), len(want))
	}
}

// countingStore counts the records a search reads.
type countingStore struct {
	ledger.Store
	read *atomic.Int64
}

func (c countingStore) Scan(ctx context.Context, from uint64, fn func(e ledger.Entry) error) error {
	return c.Store.Scan(ctx, from, func(e ledger.Entry) error {
		c.read.Add(1)
		return fn(e)
	})
}

// A search whose index fails falls back to the scan of what lies below the watermark only: the
// records above it were read already, and reading them again took the page past its budget.
func TestSearchFallbackReadsEachRecordOnce(t *testing.T) {
	dir, st := tempLedger(t)
	keys := ledgertest.Keys(t)
	appendMixed(t, keys, st, 0, 600)
	x, ix := openIndex(t, st, dir)
	catchUp(t, ix)
	appendMixed(t, keys, st, 600, 300) // above the watermark
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "index.db"))
	if err != nil {
		t.Fatal(err)
	}
	res, err := db.Exec("UPDATE index_postings SET seqs = ? WHERE field = ? AND term = ?", []byte{7}, int(auditindex.FieldAgent), "agent-3")
	db.Close()
	if n, _ := res.RowsAffected(); err != nil || n != 1 {
		t.Fatalf("damaging agent-3's row: %v", err)
	}
	var read atomic.Int64
	c := newIndexed(t, countingStore{st, &read}, x)
	p := human("audrey", "auditor")
	got, _, err := c.search(context.Background(), p, auditFilter{Agent: "agent-3"}, 1000, 1<<30)
	if err != nil || len(got) == 0 {
		t.Fatalf("search: %d rows, %v", len(got), err)
	}
	want := allPages(t, newIndexed(t, st, nil), p, auditFilter{Agent: "agent-3"}, 1000, 1<<30)
	if !slices.Equal(rowSeqs(got), want) {
		t.Fatalf("the fallback found %v…, the scan %v…", head(rowSeqs(got)), head(want))
	}
	if n := read.Load(); n > 900+16 { // each record once, and one past the end of each chunk read
		t.Fatalf("the search read %d records of a 900-record ledger: some twice", n)
	}
}

func rowSeqs(rows []row) []uint64 {
	out := make([]uint64, len(rows))
	for i, r := range rows {
		out[i] = r.Seq
	}
	return out
}
