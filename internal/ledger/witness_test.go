package ledger_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-ai/portcullis/internal/ledger"
	"github.com/portcullis-ai/portcullis/internal/store/memory"
)

// rewriteTail rewrites every record from seq from on as someone without the key would: each
// decision turned into a deny, the seq/prev chain recomputed so that it stays consistent.
func rewriteTail(t testing.TB, recs [][]byte, from int) {
	t.Helper()
	for i := from; i < len(recs); i++ {
		r, err := ledger.ParseRecord(recs[i])
		if err != nil {
			t.Fatal(err)
		}
		if r.Kind == ledger.KindDecision {
			r.Decision = "deny"
		}
		if i > 0 {
			r.Prev = hexLeaf(recs[i-1])
		}
		if recs[i], err = ledger.Encode(r); err != nil {
			t.Fatal(err)
		}
	}
}

// Whoever can write the store but does not hold the key removes checkpoints and rewrites the
// records they covered, keeping the prev chain consistent: verify must not call that intact.
func TestVerifyDetectsRemovedCheckpoints(t *testing.T) {
	later := func() time.Time { return time.Now().Add(time.Minute) }
	tests := []struct {
		name   string
		tamper func(t *testing.T, recs *[][]byte, cps *[]ledger.StoredCheckpoint)
		// now is verify's clock (nil: the real one).
		now     func() time.Time
		problem string
	}{
		{"all checkpoints deleted", func(t *testing.T, recs *[][]byte, cps *[]ledger.StoredCheckpoint) {
			*cps = nil
		}, nil, ledger.ProblemNoCheckpoint},
		{"all checkpoints deleted and every record rewritten", func(t *testing.T, recs *[][]byte, cps *[]ledger.StoredCheckpoint) {
			*cps = nil
			rewriteTail(t, *recs, 0)
		}, nil, ledger.ProblemNoCheckpoint},
		{"last checkpoint deleted and the tail rewritten with a consistent prev chain", func(t *testing.T, recs *[][]byte, cps *[]ledger.StoredCheckpoint) {
			*cps = (*cps)[:len(*cps)-1]
			rewriteTail(t, *recs, int((*cps)[len(*cps)-1].Size))
		}, nil, ledger.ProblemUnsignedTail},
		{"last two checkpoints and the shutdown record deleted, the tail rewritten (a crash look-alike, verified a minute later)", func(t *testing.T, recs *[][]byte, cps *[]ledger.StoredCheckpoint) {
			*cps = (*cps)[:len(*cps)-2]
			*recs = (*recs)[:len(*recs)-1]
			rewriteTail(t, *recs, int((*cps)[len(*cps)-1].Size))
		}, later, ledger.ProblemUnsignedTail},
		{"three checkpoints deleted: more records unsigned than the cadence allows", func(t *testing.T, recs *[][]byte, cps *[]ledger.StoredCheckpoint) {
			*cps = (*cps)[:len(*cps)-3]
			rewriteTail(t, *recs, int((*cps)[len(*cps)-1].Size))
		}, nil, ledger.ProblemUnsignedTail},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e, ms := cleanLog(t, 40)
			recs, cps := ms.Raw()
			tc.tamper(t, recs, cps)
			want := uint64(0)
			if len(*cps) > 0 {
				want = (*cps)[len(*cps)-1].Size // trust ends at the newest checkpoint left
			}
			rep, err := ledger.Verify(context.Background(), e.st, ledger.VerifyOptions{Keys: e.keys.Public, CheckpointRecords: 10, Now: tc.now})
			if err != nil {
				t.Fatal(err)
			}
			if rep.Intact || rep.FirstBadSeq == nil {
				t.Fatalf("tampered log reported intact: %+v", rep)
			}
			if rep.Problem != tc.problem || *rep.FirstBadSeq != want {
				t.Errorf("problem %s at %d (%s), want %s at %d", rep.Problem, *rep.FirstBadSeq, rep.Reason, tc.problem, want)
			}
		})
	}
}

// A gateway's own log, verified again and again while it appends and while it idles, is
// intact every time: the unsigned tail of a live ledger stays within the cadence.
func TestVerifyLiveLedgerDoesNotFlap(t *testing.T) {
	e := newEnv(t, nil)
	const interval = 20 * time.Millisecond
	l := e.open(t, func(o *ledger.Options) { o.CheckpointInterval = interval; o.CheckpointRecords = 50 })
	defer mustClose(t, l)
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			r := decision(i)
			r.Time = time.Time{}
			if _, err := l.Append(context.Background(), r); err != nil {
				t.Error(err)
				return
			}
			if i%100 == 99 {
				time.Sleep(50 * time.Millisecond) // now and then idle, so the ticker signs
			}
		}
	}()
	opts := ledger.VerifyOptions{Keys: e.keys.Public, CheckpointInterval: interval, CheckpointRecords: 50}
	n := 0
	for deadline := time.Now().Add(time.Second); time.Now().Before(deadline); n++ {
		rep, err := ledger.Verify(context.Background(), e.st, opts)
		if err != nil || !rep.Intact {
			close(stop)
			<-done
			t.Fatalf("verify #%d of a live ledger: %+v, %v", n, rep, err)
		}
	}
	close(stop)
	<-done
	t.Logf("%d verifications", n)
}

// witnessEnv is a ledger on a memory store that keeps its witness in its key directory.
func witnessOptions(o *ledger.Options, dir string) {
	o.WitnessFile = filepath.Join(dir, ledger.WitnessFile)
	o.CheckpointRecords = 10
}

func openErr(t *testing.T, e *env) error {
	t.Helper()
	o := e.options(t)
	witnessOptions(&o, e.dir)
	l, err := ledger.Open(context.Background(), o)
	if err == nil {
		mustClose(t, l)
	}
	return err
}

// The gateway keeps its latest checkpoint outside the store and refuses a store that is behind
// it: records and checkpoints removed together (a clean rollback, which verify alone cannot
// see), or only checkpoints removed.
func TestWitnessRefusesStoreBehind(t *testing.T) {
	tests := map[string]func(recs *[][]byte, cps *[]ledger.StoredCheckpoint){
		"rolled back (records and checkpoints removed)": func(recs *[][]byte, cps *[]ledger.StoredCheckpoint) {
			*cps = (*cps)[:2]
			*recs = (*recs)[:(*cps)[1].Size]
		},
		"all checkpoints removed": func(_ *[][]byte, cps *[]ledger.StoredCheckpoint) { *cps = nil },
		"last checkpoint and the shutdown record removed (a crash look-alike)": func(recs *[][]byte, cps *[]ledger.StoredCheckpoint) {
			*cps = (*cps)[:len(*cps)-1]
			*recs = (*recs)[:len(*recs)-1] // the shutdown record too: it looks like a crash
		},
		"an empty store": func(recs *[][]byte, cps *[]ledger.StoredCheckpoint) { *recs, *cps = nil, nil },
	}
	for name, tamper := range tests {
		t.Run(name, func(t *testing.T) {
			ms := memory.New()
			e := newEnv(t, ms)
			l := e.open(t, func(o *ledger.Options) { witnessOptions(o, e.dir) })
			for i := range 25 {
				mustAppend(t, l, decision(i))
			}
			mustClose(t, l)
			w, err := os.ReadFile(filepath.Join(e.dir, ledger.WitnessFile))
			if err != nil {
				t.Fatalf("no witness after a clean close: %v", err)
			}
			if !bytes.Equal(w, latestNote(t, ms)) {
				t.Fatalf("witness is not the store's latest checkpoint:\n%s\n%s", w, latestNote(t, ms))
			}
			tamper(ms.Raw())
			err = openErr(t, e)
			if !errors.Is(err, ledger.ErrInconsistent) || !strings.Contains(err.Error(), ledger.WitnessFile) {
				t.Fatalf("open on a store behind the witness = %v, want ErrInconsistent naming the witness", err)
			}
		})
	}
}

// A store rolled back and then continued differently (a restored backup written to since, with
// the witness put back) grows past the witness but does not contain it: refused.
func TestWitnessRefusesDisagreeingStore(t *testing.T) {
	ms := memory.New()
	e := newEnv(t, ms)
	wpath := filepath.Join(e.dir, ledger.WitnessFile)
	l := e.open(t, func(o *ledger.Options) { witnessOptions(o, e.dir) })
	for i := range 25 {
		mustAppend(t, l, decision(i))
	}
	mustClose(t, l)
	w, _ := os.ReadFile(wpath)
	wsize := checkpointOf(t, w).Size

	recs, cps := ms.Raw()
	*cps = (*cps)[:2]
	*recs = (*recs)[:(*cps)[1].Size]
	os.Remove(wpath)
	l = e.open(t, func(o *ledger.Options) { witnessOptions(o, e.dir) })
	for i := range 40 {
		r := decision(i)
		r.Decision = "deny"
		mustAppend(t, l, r)
	}
	mustClose(t, l)
	if n, _ := ms.Size(context.Background()); n <= wsize {
		t.Fatalf("the continued store has %d records, want more than the witness's %d", n, wsize)
	}
	if err := os.WriteFile(wpath, w, 0o644); err != nil {
		t.Fatal(err)
	}
	err := openErr(t, e)
	if !errors.Is(err, ledger.ErrInconsistent) || !strings.Contains(err.Error(), ledger.WitnessFile) {
		t.Fatalf("open on a store that disagrees with the witness = %v, want ErrInconsistent naming the witness", err)
	}
}

// The witness does not get in the way of what is legitimate: a clean restart, a crash (the
// witness may lag the store), a store grown by a writer without this witness (a replica), and
// a first start with no witness yet.
func TestWitnessAcceptsConsistentStore(t *testing.T) {
	ms := memory.New()
	e := newEnv(t, ms)
	wpath := filepath.Join(e.dir, ledger.WitnessFile)
	l := e.open(t, func(o *ledger.Options) { witnessOptions(o, e.dir) })
	for i := range 15 {
		mustAppend(t, l, decision(i))
	}
	mustClose(t, l)
	if err := openErr(t, e); err != nil {
		t.Fatalf("clean restart: %v", err)
	}
	// Another writer (no witness of its own here) grows the log by several checkpoints.
	l = e.open(t, func(o *ledger.Options) { o.CheckpointRecords = 10 })
	for i := range 35 {
		mustAppend(t, l, decision(i))
	}
	mustClose(t, l)
	if err := openErr(t, e); err != nil {
		t.Fatalf("store grown past the witness: %v", err)
	}
	// A crash: records after the last checkpoint, never closed.
	l = e.open(t, func(o *ledger.Options) { witnessOptions(o, e.dir); o.CheckpointInterval = time.Hour })
	for i := range 5 {
		mustAppend(t, l, decision(i))
	}
	if err := openErr(t, e); err != nil {
		t.Fatalf("restart after a crash: %v", err)
	}
	var kinds []ledger.Kind
	for _, r := range records(t, ms) {
		kinds = append(kinds, r.Kind)
	}
	if !slices.Contains(kinds, ledger.KindRecovery) {
		t.Errorf("no recovery record after the crash: %v", kinds)
	}
	os.Remove(wpath)
	if err := openErr(t, e); err != nil {
		t.Fatalf("start without a witness: %v", err)
	}
	if rep := e.verify(t); !rep.Intact {
		t.Errorf("verify: %+v", rep)
	}
}

// The gateway does not sign over records it cannot account for: more records after the latest
// checkpoint than the cadence ever leaves unsigned refuse the start, with what to do.
func TestOpenRefusesUnsignedTailBeyondCadence(t *testing.T) {
	ms := memory.New()
	e := newEnv(t, ms)
	l := e.open(t, func(o *ledger.Options) { o.CheckpointRecords = 10 })
	for i := range 40 {
		mustAppend(t, l, decision(i))
	}
	mustClose(t, l)
	_, cps := ms.Raw()
	*cps = (*cps)[:2] // no witness here: only the cadence can tell
	_, err := ledger.Open(context.Background(), func() ledger.Options {
		o := e.options(t)
		o.CheckpointRecords = 10
		return o
	}())
	if !errors.Is(err, ledger.ErrInconsistent) || !strings.Contains(err.Error(), "audit export") {
		t.Fatalf("open with %d unsigned records = %v, want ErrInconsistent telling what to do", 42-(*cps)[1].Size, err)
	}
	*cps = nil
	_, err = ledger.Open(context.Background(), e.options(t))
	if !errors.Is(err, ledger.ErrInconsistent) {
		t.Fatalf("open on records without any checkpoint = %v, want ErrInconsistent", err)
	}
}
