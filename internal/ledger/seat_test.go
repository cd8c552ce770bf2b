package ledger_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
	"golang.org/x/mod/sumdb/note"

	"github.com/portcullis-ai/portcullis/internal/ledger"
	"github.com/portcullis-ai/portcullis/internal/store/memory"
)

// panicOnce panics the first time it is armed and then called, then behaves.
type panicOnce struct{ armed atomic.Bool }

func (p *panicOnce) maybe(what string) {
	if p.armed.CompareAndSwap(true, false) {
		panic(what + " exploded")
	}
}

// panickySigner is a checkpoint signer (a KMS or HSM client, say) that panics once when armed.
type panickySigner struct {
	note.Signer
	*panicOnce
}

func (s panickySigner) Sign(msg []byte) ([]byte, error) {
	s.maybe("signer")
	return s.Signer.Sign(msg)
}

// appendBounded appends r and fails the test if Append panics or does not return within a
// bound: a wedged ledger hangs its callers.
func appendBounded(t *testing.T, l *ledger.Ledger, r *ledger.Record) error {
	t.Helper()
	type out struct {
		err      error
		panicked any
	}
	ch := make(chan out, 1)
	go func() {
		defer func() {
			if p := recover(); p != nil {
				ch <- out{panicked: p}
			}
		}()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err := l.Append(ctx, r)
		ch <- out{err: err}
	}()
	select {
	case o := <-ch:
		if o.panicked != nil {
			t.Fatalf("Append panicked on the caller's goroutine: %v", o.panicked)
		}
		return o.err
	case <-time.After(10 * time.Second):
		t.Fatal("Append hung: the ledger is wedged")
		return nil
	}
}

// A panic while a caller holds the commit seat — in the checkpoint signer, or while the batch is
// encoded — fails that batch only: its callers are denied, the seat is given back, later appends
// commit, the log verifies and no goroutine is left hanging.
func TestPanicInBatchFailsBatchOnly(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	for _, where := range []string{"signer", "encode"} {
		t.Run(where, func(t *testing.T) {
			e := newEnv(t, memory.New())
			p := &panicOnce{}
			base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
			l := e.open(t, func(o *ledger.Options) {
				o.CheckpointRecords = 1 // every batch signs a checkpoint
				o.CheckpointInterval = time.Hour
				o.Signer = panickySigner{Signer: o.Signer, panicOnce: p}
				if where == "encode" {
					// The clock is read while the batch is encoded (for the checkpoint's time).
					o.Now = func() time.Time { p.maybe("clock"); return base }
				}
			})
			rec := func(i int) *ledger.Record { r := decision(i); r.Time = base; return r }
			if err := appendBounded(t, l, rec(1)); err != nil {
				t.Fatalf("append before the panic: %v", err)
			}
			p.armed.Store(true)
			if err := appendBounded(t, l, rec(2)); !errors.Is(err, ledger.ErrNotDurable) {
				t.Fatalf("append whose batch panicked: %v, want ErrNotDurable", err)
			}
			for i := 3; i < 8; i++ {
				if err := appendBounded(t, l, rec(i)); err != nil {
					t.Fatalf("append %d after the panic: %v", i, err)
				}
			}
			// Concurrent appends too: the writer goroutine and the seat both still work.
			var wg sync.WaitGroup
			errs := make(chan error, 16)
			for i := range 16 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
					defer cancel()
					if _, err := l.Append(ctx, rec(100+i)); err != nil {
						errs <- fmt.Errorf("concurrent append %d: %w", i, err)
					}
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Error(err)
			}
			if err := l.Close(context.Background()); err != nil {
				t.Fatalf("close: %v", err)
			}
			// startup, record 1, records 3..7, 16 concurrent, shutdown: record 2 was never stored.
			if rep := e.verify(t); !rep.Intact || rep.Records != 1+1+5+16+1 {
				t.Fatalf("verify: intact=%v records=%d, want intact with 24", rep.Intact, rep.Records)
			}
		})
	}
}

// slowStore is a store whose commits take 30 ms (a slow fsync) and honour their context: a
// commit cut short stores nothing.
type slowStore struct {
	ledger.Store
	delay time.Duration
}

func (s slowStore) Commit(ctx context.Context, recs []ledger.Entry, cp *ledger.StoredCheckpoint) error {
	select {
	case <-time.After(s.delay):
	case <-ctx.Done():
		return ctx.Err()
	}
	return s.Store.Commit(ctx, recs, cp)
}

// What Append answers is what the store holds: nil only for a stored record, an error only for
// a record that is not stored — also when the caller's deadline ends while its record is being
// committed.
func TestAppendAnswerMatchesStore(t *testing.T) {
	mem := memory.New()
	e := newEnv(t, slowStore{Store: mem, delay: 30 * time.Millisecond})
	l := e.open(t, nil)
	defer l.Close(context.Background())
	var wg sync.WaitGroup
	got := make([]error, 20)
	for i := range got {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
			defer cancel()
			_, got[i] = l.Append(ctx, decision(i))
		}()
	}
	wg.Wait()
	// Give any commit still in flight time to land before reading the store.
	time.Sleep(100 * time.Millisecond)
	stored := map[string]bool{}
	if err := mem.Scan(context.Background(), 0, func(en ledger.Entry) error {
		r, err := ledger.ParseRecord(en.Data)
		if err != nil {
			return err
		}
		stored[r.DecisionID] = true
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for i, err := range got {
		id := decision(i).DecisionID
		if (err == nil) != stored[id] {
			t.Errorf("%s: Append answered %v but stored=%v", id, err, stored[id])
		}
	}
}
