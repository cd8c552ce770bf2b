package export_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/portcullis-ai/portcullis/internal/export"
	"github.com/portcullis-ai/portcullis/internal/ledger"
	"github.com/portcullis-ai/portcullis/internal/ledger/ledgertest"
	"github.com/portcullis-ai/portcullis/internal/store/memory"
)

const secret = "hunter2-s3cr3t"

// testLedger is a real ledger over a memory store, as the gateway writes it.
func testLedger(t *testing.T) (*ledger.Ledger, *memory.Store) {
	t.Helper()
	st := memory.New()
	return ledgertest.Open(t, st, nil, ledger.Options{}), st
}

// decide appends n decision records whose params carry a secret, returning their seqs.
func decide(t *testing.T, led *ledger.Ledger, n int) []uint64 {
	t.Helper()
	var seqs []uint64
	for i := range n {
		seq, err := led.Append(context.Background(), &ledger.Record{Kind: ledger.KindDecision, Tool: "fetch", Decision: "allow",
			DecisionID: "d" + string(rune('a'+i)), Agent: &ledger.Principal{ID: "agent-1"},
			Params: json.RawMessage(`{"password":"` + secret + `","n":` + string(rune('0'+i%10)) + `}`)})
		if err != nil {
			t.Fatal(err)
		}
		seqs = append(seqs, seq)
	}
	return seqs
}

// recorder is a sink that keeps what it was sent and fails while fail > 0.
type recorder struct {
	mu    sync.Mutex
	fail  int
	items []export.Item
	got   chan struct{}
}

func (r *recorder) Send(_ context.Context, items []export.Item) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail > 0 {
		r.fail--
		return errors.New("receiver down")
	}
	r.items = append(r.items, items...)
	if r.got != nil {
		select {
		case r.got <- struct{}{}:
		default:
		}
	}
	return nil
}

func (r *recorder) Close() error { return nil }

func (r *recorder) seqs() []uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]uint64, len(r.items))
	for i, it := range r.items {
		out[i] = it.Seq
	}
	return out
}

func newTailer(t *testing.T, st ledger.View, state string, sink export.Sink, edit func(*export.Options)) *export.Tailer {
	t.Helper()
	o := export.Options{Name: "test", Store: st, StateFile: state, Sink: sink, Kinds: []ledger.Kind{ledger.KindDecision}, Batch: 3}
	if edit != nil {
		edit(&o)
	}
	tl, err := export.New(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	return tl
}

// drain steps until the tailer has caught up with the store.
func drain(t *testing.T, tl *export.Tailer) error {
	t.Helper()
	for range 1000 {
		n, err := tl.Step(context.Background())
		if err != nil {
			return err
		}
		if n == 0 {
			return nil
		}
	}
	t.Fatal("the tailer never caught up")
	return nil
}

func TestTailerResumesAfterRestartWithoutLossOrDuplicates(t *testing.T) {
	led, st := testLedger(t)
	state := filepath.Join(t.TempDir(), "sink.seq")
	first := &recorder{}
	tl := newTailer(t, st, state, first, nil)
	want := decide(t, led, 7)
	if err := drain(t, tl); err != nil {
		t.Fatal(err)
	}
	if got := first.seqs(); !slices.Equal(got, want) {
		t.Fatalf("exported %v, want %v", got, want)
	}
	for _, it := range first.items {
		var stored []byte
		_ = st.Scan(context.Background(), it.Seq, func(e ledger.Entry) error { stored = bytes.Clone(e.Data); return errors.New("one") })
		if !bytes.Equal(it.Data, stored) {
			t.Fatalf("seq %d: exported bytes differ from the ledger's", it.Seq)
		}
		if bytes.Contains(it.Data, []byte(secret)) {
			t.Fatalf("seq %d: the secret was exported: %s", it.Seq, it.Data)
		}
	}

	// A restart: a new tailer on the same state file sends only what came after.
	second := &recorder{}
	tl2 := newTailer(t, st, state, second, nil)
	if tl2.Next() != tl.Next() {
		t.Fatalf("restart resumed at %d, want %d", tl2.Next(), tl.Next())
	}
	more := decide(t, led, 4)
	if err := drain(t, tl2); err != nil {
		t.Fatal(err)
	}
	if got := second.seqs(); !slices.Equal(got, more) {
		t.Fatalf("after restart exported %v, want %v", got, more)
	}
}

func TestTailerNewSinkStartsAtTheLedgersEnd(t *testing.T) {
	led, st := testLedger(t)
	decide(t, led, 3)
	rec := &recorder{}
	tl := newTailer(t, st, filepath.Join(t.TempDir(), "s.seq"), rec, nil)
	want := decide(t, led, 2)
	if err := drain(t, tl); err != nil {
		t.Fatal(err)
	}
	if got := rec.seqs(); !slices.Equal(got, want) {
		t.Fatalf("exported %v, want only the records after the sink's first start %v", got, want)
	}
}

func TestTailerKindsSelectRecords(t *testing.T) {
	led, st := testLedger(t)
	state := filepath.Join(t.TempDir(), "s.seq")
	if err := os.WriteFile(state, []byte("0\n"), 0o600); err != nil { // from the startup record on
		t.Fatal(err)
	}
	allState := filepath.Join(t.TempDir(), "all.seq")
	if err := os.WriteFile(allState, []byte("0\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	dec := &recorder{}
	all := &recorder{}
	tlDec := newTailer(t, st, state, dec, nil)
	tlAll := newTailer(t, st, allState, all, func(o *export.Options) { o.Kinds = nil })
	want := decide(t, led, 2)
	for _, tl := range []*export.Tailer{tlDec, tlAll} {
		if err := drain(t, tl); err != nil {
			t.Fatal(err)
		}
	}
	if got := dec.seqs(); !slices.Equal(got, want) {
		t.Fatalf("decision sink got %v, want %v (the startup record is not a decision)", got, want)
	}
	if got := all.seqs(); !slices.Equal(got, append([]uint64{0}, want...)) || all.items[0].Record.Kind != ledger.KindStartup {
		t.Fatalf("the all-kinds sink got %v, want the startup record and %v", got, want)
	}
	if dec.items[0].Record.Agent.ID != "agent-1" {
		t.Fatalf("decoded record lost its agent: %+v", dec.items[0].Record)
	}
}

func TestTailerSinkFailsThenRecoversWithoutLoss(t *testing.T) {
	led, st := testLedger(t)
	state := filepath.Join(t.TempDir(), "s.seq")
	rec := &recorder{fail: 3}
	tl := newTailer(t, st, state, rec, nil)
	want := decide(t, led, 8)
	start := tl.Next()
	for range 3 {
		if _, err := tl.Step(context.Background()); err == nil {
			t.Fatal("a failing sink's step reported success")
		}
		if tl.Next() != start {
			t.Fatalf("the position moved past an undelivered batch: %d, want %d", tl.Next(), start)
		}
		if s := tl.Stats(); !s.Failing || s.Lag != 8 {
			t.Fatalf("stats while failing = %+v, want failing with lag 8", s)
		}
	}
	// A restart while the sink was down resumes from the undelivered batch.
	tl = newTailer(t, st, state, rec, nil)
	if err := drain(t, tl); err != nil {
		t.Fatal(err)
	}
	if got := rec.seqs(); !slices.Equal(got, want) {
		t.Fatalf("exported %v, want each of %v once, in order", got, want)
	}
	if s := tl.Stats(); s.Failing || s.Lag != 0 || s.Dropped != 0 || s.Exported != 8 {
		t.Fatalf("stats after recovery = %+v", s)
	}
}

func TestTailerBacklogIsBounded(t *testing.T) {
	led, st := testLedger(t)
	rec := &recorder{fail: 1}
	tl := newTailer(t, st, filepath.Join(t.TempDir(), "s.seq"), rec, func(o *export.Options) { o.MaxLag = 4 })
	seqs := decide(t, led, 10)
	if _, err := tl.Step(context.Background()); err == nil {
		t.Fatal("want the sink's failure")
	}
	if s := tl.Stats(); s.Dropped != 6 || s.Lag != 4 {
		t.Fatalf("stats = %+v, want 6 dropped and a lag of 4", s)
	}
	if err := drain(t, tl); err != nil {
		t.Fatal(err)
	}
	if got := rec.seqs(); !slices.Equal(got, seqs[6:]) {
		t.Fatalf("exported %v, want the newest 4 %v", got, seqs[6:])
	}
}

func TestTailerPermanentRefusalDropsTheBatch(t *testing.T) {
	led, st := testLedger(t)
	var calls int
	sink := sinkFunc(func(items []export.Item) error {
		calls++
		if calls == 1 {
			return export.Permanent(errors.New("400 Bad Request"))
		}
		return nil
	})
	tl := newTailer(t, st, filepath.Join(t.TempDir(), "s.seq"), sink, nil)
	decide(t, led, 5)
	if err := drain(t, tl); err != nil {
		t.Fatal(err)
	}
	if s := tl.Stats(); s.Dropped != 3 || s.Exported != 2 || s.Lag != 0 {
		t.Fatalf("stats = %+v, want the refused batch of 3 dropped and 2 exported", s)
	}
}

type sinkFunc func([]export.Item) error

func (f sinkFunc) Send(_ context.Context, items []export.Item) error { return f(items) }
func (f sinkFunc) Close() error                                      { return nil }

func TestTailerRefusesACorruptStateFile(t *testing.T) {
	_, st := testLedger(t)
	state := filepath.Join(t.TempDir(), "s.seq")
	for _, bad := range []string{"", "-1", "12abc", "\xff\xfe", strings.Repeat("9", 30)} {
		if err := os.WriteFile(state, []byte(bad), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := export.New(context.Background(), export.Options{Name: "x", Store: st, StateFile: state, Sink: &recorder{}})
		if err == nil || !strings.Contains(err.Error(), "export state") {
			t.Errorf("state %q: err = %v, want an export state error", bad, err)
		}
	}
}

func TestTailerStateAheadOfTheLedgerFollowsTheLedger(t *testing.T) {
	led, st := testLedger(t)
	state := filepath.Join(t.TempDir(), "s.seq")
	if err := os.WriteFile(state, []byte("1000\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	tl := newTailer(t, st, state, rec, nil)
	want := decide(t, led, 2)
	if err := drain(t, tl); err != nil {
		t.Fatal(err)
	}
	if got := rec.seqs(); !slices.Equal(got, want) {
		t.Fatalf("exported %v, want %v", got, want)
	}
}

func TestRunRetriesUntilTheSinkRecovers(t *testing.T) {
	led, st := testLedger(t)
	rec := &recorder{fail: 2, got: make(chan struct{}, 1)}
	tl := newTailer(t, st, filepath.Join(t.TempDir(), "s.seq"), rec, func(o *export.Options) {
		o.Poll, o.MaxBackoff = time.Millisecond, 5*time.Millisecond
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); tl.Run(ctx) }()
	want := decide(t, led, 2)
	for !slices.Equal(rec.seqs(), want) {
		select {
		case <-rec.got:
		case <-time.After(30 * time.Second):
			t.Fatalf("exported %v, want %v", rec.seqs(), want)
		}
	}
	cancel()
	<-done
}

// pruned is a store whose records before cut were archived and pruned by retention.
type pruned struct {
	ledger.View
	cut uint64
}

func (p pruned) Scan(ctx context.Context, from uint64, fn func(ledger.Entry) error) error {
	return p.View.Scan(ctx, max(from, p.cut), fn)
}

// Base is where the pruned log begins, as a pruned store reports it.
func (p pruned) Base(context.Context) (uint64, []byte, bool, error) {
	return p.cut, nil, p.cut > 0, nil
}

func TestTailerSkipsRecordsPrunedBeforeExport(t *testing.T) {
	led, st := testLedger(t)
	rec := &recorder{fail: 1}
	view := &pruned{View: st}
	tl := newTailer(t, view, filepath.Join(t.TempDir(), "s.seq"), rec, nil)
	seqs := decide(t, led, 5)
	if _, err := tl.Step(context.Background()); err == nil {
		t.Fatal("want the sink's failure")
	}
	view.cut = seqs[2] // retention ran while the sink was down
	if err := drain(t, tl); err != nil {
		t.Fatal(err)
	}
	if got := rec.seqs(); !slices.Equal(got, seqs[2:]) {
		t.Fatalf("exported %v, want what is left, %v", got, seqs[2:])
	}
	if s := tl.Stats(); s.Dropped != 2 {
		t.Fatalf("stats = %+v, want the 2 pruned records counted as dropped", s)
	}
}

// Retention that pruned everything the sink had not reached leaves nothing to scan: the tailer
// counts the gap and moves to the live log's base instead of waiting there for ever.
func TestTailerMovesPastAWhollyPrunedBacklog(t *testing.T) {
	led, st := testLedger(t)
	rec := &recorder{fail: 1}
	view := &pruned{View: st}
	tl := newTailer(t, view, filepath.Join(t.TempDir(), "s.seq"), rec, nil)
	decide(t, led, 5)
	if _, err := tl.Step(context.Background()); err == nil {
		t.Fatal("want the sink's failure")
	}
	size, err := st.Size(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	from := tl.Next()
	view.cut = size // retention archived and pruned the whole log while the sink was down
	if err := drain(t, tl); err != nil {
		t.Fatal(err)
	}
	if s := tl.Stats(); tl.Next() != size || s.Lag != 0 || s.Dropped != size-from {
		t.Fatalf("next %d, stats %+v; want next %d, no lag, %d dropped", tl.Next(), s, size, size-from)
	}
	seqs := decide(t, led, 2)
	if err := drain(t, tl); err != nil {
		t.Fatal(err)
	}
	if got := rec.seqs(); !slices.Equal(got, seqs) {
		t.Fatalf("exported %v after the gap, want %v", got, seqs)
	}
}

// syncBuffer is a log destination the tailer's goroutine and the test share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Records pruned before they were exported are reported even while the sink's failures are
// being retried (each warning is limited to once a minute on its own, not one for both).
func TestRunWarnsOfPrunedRecordsWhileRetrying(t *testing.T) {
	led, st := testLedger(t)
	rec := &recorder{fail: 1, got: make(chan struct{}, 1)}
	view := &pruned{View: st}
	var logs syncBuffer
	tl := newTailer(t, view, filepath.Join(t.TempDir(), "s.seq"), rec, func(o *export.Options) {
		o.Poll, o.MaxBackoff = time.Millisecond, 5*time.Millisecond
		o.Log = slog.New(slog.NewTextHandler(&logs, nil))
	})
	seqs := decide(t, led, 5)
	view.cut = seqs[2] // retention pruned two records the sink had not reached
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); tl.Run(ctx) }()
	for !slices.Equal(rec.seqs(), seqs[2:]) {
		select {
		case <-rec.got:
		case <-time.After(30 * time.Second):
			t.Fatalf("exported %v, want %v", rec.seqs(), seqs[2:])
		}
	}
	cancel()
	<-done
	for _, want := range []string{"records pruned by retention before they were exported", "export failed; retrying"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("no %q warning in:\n%s", want, logs.String())
		}
	}
}

// A tailer following the ledger through memory (ledger.Follow) sends every decision once, in
// order: its own process's records from memory, a replica's from the store, the records that
// overflowed the bounded memory from the store, and after a restart (a new process, an empty
// memory) from where its state file says.
func TestTailerFollowingMissesAndRepeatsNothing(t *testing.T) {
	ctx := context.Background()
	st := memory.NewShared()
	keys := ledgertest.Keys(t)
	open := func(recent *ledger.Recent) *ledger.Ledger {
		return ledgertest.Open(t, st, keys, ledger.Options{Recent: recent})
	}
	state := filepath.Join(t.TempDir(), "sink.seq")
	got := &recorder{}
	recent := ledger.NewRecent(5, 1<<20)
	a, replica := open(recent), open(nil)
	defer func() { _ = replica.Close(ctx) }()
	f := ledger.Follow(st, recent)
	tl := newTailer(t, f, state, got, nil)
	var want []uint64
	for range 3 {
		want = append(want, decide(t, a, 2)...)
		want = append(want, decide(t, replica, 1)...)
		if err := drain(t, tl); err != nil {
			t.Fatal(err)
		}
	}
	want = append(want, decide(t, a, 9)...) // more than memory holds, before the tailer reads
	if err := drain(t, tl); err != nil {
		t.Fatal(err)
	}
	if f.Stats().Memory == 0 {
		t.Fatal("no record came from memory")
	}
	// A restart: new process, new memory, the same state file; records committed while the
	// tailer was down are read from the store.
	if err := a.Close(ctx); err != nil {
		t.Fatal(err)
	}
	want = append(want, decide(t, replica, 2)...)
	recent = ledger.NewRecent(5, 1<<20)
	a = open(recent)
	defer func() { _ = a.Close(ctx) }()
	tl = newTailer(t, ledger.Follow(st, recent), state, got, nil)
	want = append(want, decide(t, a, 4)...)
	if err := drain(t, tl); err != nil {
		t.Fatal(err)
	}
	if s := got.seqs(); !slices.Equal(s, want) {
		t.Fatalf("exported %v, want %v", s, want)
	}
	for _, it := range got.items {
		var stored []byte
		_ = st.Scan(ctx, it.Seq, func(e ledger.Entry) error { stored = bytes.Clone(e.Data); return errors.New("one") })
		if !bytes.Equal(it.Data, stored) {
			t.Fatalf("seq %d: exported bytes differ from the ledger's", it.Seq)
		}
	}
}

// A tailer that read less than a full batch has caught up: it waits a poll before reading again
// (under load, each step then takes what a poll brought), and goes on at once only after a
// full batch.
func TestRunCaughtUpWaitsAPoll(t *testing.T) {
	led, st := testLedger(t)
	decide(t, led, 6) // with the startup record, 7 records: batches of 3, 3 and 1
	size, err := st.Size(context.Background())
	if err != nil || size != 7 {
		t.Fatalf("ledger size %d (%v), want 7", size, err)
	}
	state := filepath.Join(t.TempDir(), "s.seq")
	if err := os.WriteFile(state, []byte("0\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	synctest.Test(t, func(t *testing.T) {
		v := &ledgertest.SizeCounter{View: st}
		rec := &recorder{}
		tl := newTailer(t, v, state, rec, func(o *export.Options) { o.Poll = time.Minute; o.Kinds = nil })
		v.Sizes.Store(0)
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		go tl.Run(ctx)
		synctest.Wait()
		if got := len(rec.seqs()); got != 7 {
			t.Fatalf("exported %d records, want 7", got)
		}
		if n := v.Sizes.Load(); n != 3 {
			t.Fatalf("%d steps before the first poll, want 3 (two full batches, then the last record)", n)
		}
		time.Sleep(time.Minute)
		synctest.Wait()
		if n := v.Sizes.Load(); n != 4 {
			t.Fatalf("%d steps after a poll, want 4", n)
		}
	})
}
