package ledger_test

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/portcullis-ai/portcullis/internal/ledger"
	"github.com/portcullis-ai/portcullis/internal/store/memory"
)

// singleWriter keeps a store on the plain single-writer commit path, as on SQLite, whatever
// else it implements.
type singleWriter struct{ ledger.Store }

// scanCounter counts the scans that reach the store.
type scanCounter struct {
	ledger.View
	scans atomic.Int64
}

func (s *scanCounter) Scan(ctx context.Context, from uint64, fn func(ledger.Entry) error) error {
	s.scans.Add(1)
	return s.View.Scan(ctx, from, fn)
}

type seqData struct {
	seq  uint64
	data []byte
}

// follow reads everything f holds from from on, as a follower does: Size, then Scan.
func follow(t *testing.T, f ledger.View, from uint64) []seqData {
	t.Helper()
	ctx := context.Background()
	if _, err := f.Size(ctx); err != nil {
		t.Fatal(err)
	}
	var got []seqData
	if err := f.Scan(ctx, from, func(e ledger.Entry) error {
		got = append(got, seqData{e.Seq, bytes.Clone(e.Data)})
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return got
}

// checkSameAsStore fails unless got is every record of st from from on, in order, each once,
// with the store's bytes.
func checkSameAsStore(t *testing.T, st ledger.View, from uint64, got []seqData) {
	t.Helper()
	var want []seqData
	if err := st.Scan(context.Background(), from, func(e ledger.Entry) error {
		want = append(want, seqData{e.Seq, bytes.Clone(e.Data)})
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("followed %d records, the store holds %d from %d", len(got), len(want), from)
	}
	for i := range want {
		if got[i].seq != want[i].seq || !bytes.Equal(got[i].data, want[i].data) {
			t.Fatalf("record %d: followed seq %d (%d bytes), the store has seq %d (%d bytes)",
				i, got[i].seq, len(got[i].data), want[i].seq, len(want[i].data))
		}
	}
}

func appendN(t *testing.T, l *ledger.Ledger, from, n int) {
	t.Helper()
	for i := range n {
		if _, err := l.Append(context.Background(), decision(from+i)); err != nil {
			t.Fatal(err)
		}
	}
}

// A follower takes the records its own process committed from memory: the store is not read.
func TestFollowerReadsOwnCommitsFromMemory(t *testing.T) {
	e := newEnv(t, singleWriter{memory.New()})
	recent := ledger.NewRecent(64, 1<<20)
	l := e.open(t, func(o *ledger.Options) { o.Recent = recent })
	defer l.Close(context.Background())
	start, err := e.st.Size(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	appendN(t, l, 0, 20)
	sc := &scanCounter{View: e.st}
	f := ledger.Follow(sc, recent)
	got := follow(t, f, start)
	checkSameAsStore(t, e.st, start, got)
	if n := sc.scans.Load(); n != 0 {
		t.Fatalf("the store was scanned %d times for records the process committed itself", n)
	}
	if s := f.Stats(); s.Memory != 20 || s.StoreScans != 0 {
		t.Fatalf("stats %+v, want 20 records from memory and no store scan", s)
	}
}

// Recent is bounded in records and in bytes; a follower behind what it holds reads the store,
// and misses nothing.
func TestFollowerBehindTheBoundReadsTheStore(t *testing.T) {
	for _, c := range []struct {
		name              string
		records, maxBytes int
	}{{"records", 8, 1 << 20}, {"bytes", 1000, 4000}} {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t, singleWriter{memory.New()})
			recent := ledger.NewRecent(c.records, c.maxBytes)
			l := e.open(t, func(o *ledger.Options) { o.Recent = recent })
			defer l.Close(context.Background())
			appendN(t, l, 0, 60)
			first, end := recent.Span()
			if held := end - first; held == 0 || held > uint64(c.records) {
				t.Fatalf("holds %d records, want 1 to %d", held, c.records)
			}
			held := 0
			if err := ledger.Follow(e.st, recent).Scan(context.Background(), first, func(e ledger.Entry) error {
				held += len(e.Data)
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			if held > c.maxBytes {
				t.Fatalf("holds %d bytes, more than the bound %d", held, c.maxBytes)
			}
			sc := &scanCounter{View: e.st}
			f := ledger.Follow(sc, recent)
			got := follow(t, f, 0)
			checkSameAsStore(t, e.st, 0, got)
			if sc.scans.Load() != 1 {
				t.Fatalf("store scans %d, want 1 for the records no longer held", sc.scans.Load())
			}
		})
	}
}

// On a shared store a follower sees the other replicas' records too (from the store), each
// once and in order, between its own process's (from memory).
func TestFollowerSeesReplicaRecords(t *testing.T) {
	st := memory.NewShared()
	e := newEnv(t, st)
	recent := ledger.NewRecent(64, 1<<20)
	a := e.open(t, func(o *ledger.Options) { o.Recent = recent })
	defer a.Close(context.Background())
	b := e.open(t, nil) // another replica: its records are not in a's Recent
	defer b.Close(context.Background())
	sc := &scanCounter{View: st}
	f := ledger.Follow(sc, recent)
	start, err := st.Size(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var got []seqData
	next := start
	for i := range 6 {
		appendN(t, a, 10*i, 3)
		appendN(t, b, 10*i+5, 2)
		part := follow(t, f, next) // a follower reads as the log grows
		if len(part) > 0 {
			next = part[len(part)-1].seq + 1
		}
		got = append(got, part...)
	}
	got = append(got, follow(t, f, next)...)
	checkSameAsStore(t, st, start, got)
	if f.Stats().Memory == 0 {
		t.Fatal("no record came from memory")
	}
}

// A follower's scan cut short by its reader (a full batch) returns the reader's error and
// goes no further.
func TestFollowerScanStopsWhenTheReaderDoes(t *testing.T) {
	e := newEnv(t, singleWriter{memory.New()})
	recent := ledger.NewRecent(64, 1<<20)
	l := e.open(t, func(o *ledger.Options) { o.Recent = recent })
	defer l.Close(context.Background())
	appendN(t, l, 0, 10)
	first, _ := recent.Span()
	stop := errors.New("batch full")
	n := 0
	err := ledger.Follow(e.st, recent).Scan(context.Background(), first, func(ledger.Entry) error {
		n++
		if n == 3 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || n != 3 {
		t.Fatalf("scan returned %v after %d records, want the reader's error after 3", err, n)
	}
}

// A follower reading while callers append concurrently (the commit filling Recent, records
// evicted under it) gets every record once, in order, with the store's bytes.
func TestFollowerWhileAppending(t *testing.T) {
	e := newEnv(t, singleWriter{memory.New()})
	recent := ledger.NewRecent(16, 1<<20)
	l := e.open(t, func(o *ledger.Options) { o.Recent = recent })
	defer l.Close(context.Background())
	start, err := e.st.Size(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	f := ledger.Follow(e.st, recent)
	done := make(chan struct{})
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 50 {
				if _, err := l.Append(context.Background(), decision(100*g+i)); err != nil {
					t.Error(err) // not Fatal: this is not the test's goroutine
					return
				}
			}
		})
	}
	go func() { wg.Wait(); close(done) }()
	var got []seqData
	next := start
	for finished := false; !finished; {
		select {
		case <-done:
			finished = true
		default:
		}
		part := follow(t, f, next)
		if len(part) > 0 {
			next = part[len(part)-1].seq + 1
		}
		got = append(got, part...)
	}
	got = append(got, follow(t, f, next)...)
	checkSameAsStore(t, e.st, start, got)
}
