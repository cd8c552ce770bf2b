package ledger_test

import (
	"context"
	"encoding/json"
	"math"
	"sort"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/portcullis-ai/portcullis/internal/ledger"
)

func TestEncodeIsCanonicalMarshal(t *testing.T) {
	r := decision(7)
	r.V, r.Seq, r.Prev = ledger.FormatVersion, 7, "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	r.Inputs = &ledger.Inputs{Roles: []string{"reader"}, UserAttributes: map[string][]string{"region": {"eu", "us"}}, Calls: map[string]int{"60": 3, "5": 1}, Baseline: ledger.BaselineUsual}
	got, err := ledger.Encode(r)
	if err != nil {
		t.Fatal(err)
	}
	want, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(string(want), string(got)); diff != "" {
		t.Errorf("Encode differs from json.Marshal (-want +got):\n%s", diff)
	}
	back, err := ledger.ParseRecord(got)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(r, back); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
}

func TestParseRecordRejects(t *testing.T) {
	good, err := ledger.Encode(&ledger.Record{Seq: 0, Kind: ledger.KindStartup, Time: time.Unix(0, 0)})
	if err != nil {
		t.Fatal(err)
	}
	tests := map[string]string{
		"spaces":        `{"v":1, "seq":0,"prev":"","time":"1970-01-01T00:00:00Z","kind":"startup"}`,
		"leading zero":  `{"v":1,"seq":01,"prev":"","time":"1970-01-01T00:00:00Z","kind":"startup"}`,
		"unknown field": `{"v":1,"seq":0,"prev":"","time":"1970-01-01T00:00:00Z","kind":"startup","evil":1}`,
		"unknown kind":  `{"v":1,"seq":0,"prev":"","time":"1970-01-01T00:00:00Z","kind":"party"}`,
		"trailing":      string(good) + `{}`,
		"dup seq":       `{"v":1,"seq":0,"prev":"","time":"1970-01-01T00:00:00Z","kind":"startup","seq":5}`,
		"upper hex":     `{"v":1,"seq":1,"prev":"0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef","time":"1970-01-01T00:00:00Z","kind":"startup"}`,
		"version 3":     `{"v":3,"seq":0,"prev":"","time":"1970-01-01T00:00:00Z","kind":"startup"}`,
		"version 0":     `{"v":0,"seq":0,"prev":"","time":"1970-01-01T00:00:00Z","kind":"startup"}`,
		"version 10":    `{"v":10,"seq":0,"prev":"","time":"1970-01-01T00:00:00Z","kind":"startup"}`,
		"two versions":  `{"v":2,"seq":0,"prev":"","time":"1970-01-01T00:00:00Z","kind":"startup","v":1}`,
		"v1 inputs":     `{"v":1,"seq":0,"prev":"","time":"1970-01-01T00:00:00Z","kind":"decision","inputs":{"roles":["a"]}}`,
		"truncated":     string(good[:len(good)-3]),
	}
	if _, err := ledger.ParseRecord(good); err != nil {
		t.Fatalf("good record rejected: %v", err)
	}
	for name, in := range tests {
		if _, err := ledger.ParseRecord([]byte(in)); err == nil {
			t.Errorf("%s: accepted %s", name, in)
		}
	}
}

func TestAppendConcurrentAndVerify(t *testing.T) {
	e := newEnv(t, nil)
	l := e.open(t, func(o *ledger.Options) { o.CheckpointRecords = 50 })
	const callers, each = 64, 20
	var mu sync.Mutex
	var seqs []uint64
	var wg sync.WaitGroup
	for c := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				seq, err := l.Append(context.Background(), decision(c*each+i))
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				seqs = append(seqs, seq)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	mustClose(t, l)
	sort.Slice(seqs, func(i, j int) bool { return seqs[i] < seqs[j] })
	for i, s := range seqs {
		if s != uint64(i+1) { // seq 0 is the startup record
			t.Fatalf("acknowledged seqs are not contiguous from 1: position %d has %d", i, s)
		}
	}
	rs := records(t, e.st)
	if got, want := len(rs), callers*each+2; got != want {
		t.Fatalf("%d records, want %d (startup + appends + shutdown)", got, want)
	}
	if rs[0].Kind != ledger.KindStartup || rs[len(rs)-1].Kind != ledger.KindShutdown {
		t.Errorf("first/last kinds = %s/%s, want startup/shutdown", rs[0].Kind, rs[len(rs)-1].Kind)
	}
	rep := e.verify(t)
	if !rep.Intact || rep.RecordsChecked != uint64(len(rs)) || rep.UnsignedRecords != 0 {
		t.Errorf("verify = %+v, want intact, all %d checked, none unsigned", rep, len(rs))
	}
	if rep.CheckpointsChecked < (callers*each)/50 {
		t.Errorf("%d checkpoints, want at least one per 50 records", rep.CheckpointsChecked)
	}
}

// TestAppendSeatChangesHands mixes lone callers (who commit their own record), bursts (which
// the writer goroutine takes over and keeps while they last) and forced checkpoints from
// another goroutine, so the seat passes between callers and the writer many times; every
// record must still be acknowledged once, in one contiguous, verifiable log.
func TestAppendSeatChangesHands(t *testing.T) {
	e := newEnv(t, nil)
	l := e.open(t, func(o *ledger.Options) { o.CheckpointRecords = 64 })
	const callers, each = 16, 40
	var mu sync.Mutex
	seen := map[uint64]bool{}
	var wg sync.WaitGroup
	stop, stopped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(stopped)
		for {
			select {
			case <-stop:
				return
			case <-time.After(3 * time.Millisecond):
				if err := l.Checkpoint(context.Background()); err != nil {
					t.Error(err)
				}
			}
		}
	}()
	for c := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				if (c+i)%5 == 0 { // idle now and then, longer than the writer keeps the seat
					time.Sleep(time.Duration(1+(c*7+i)%3) * time.Millisecond)
				}
				seq, err := l.Append(context.Background(), decision(c*each+i))
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				if seen[seq] {
					t.Errorf("seq %d acknowledged twice", seq)
				}
				seen[seq] = true
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	// The checkpointing goroutine must be gone before Close: a Checkpoint that races Close
	// fails with "ledger closed", and one left running outlives the test.
	close(stop)
	<-stopped
	mustClose(t, l)
	for s := uint64(1); s <= callers*each; s++ {
		if !seen[s] {
			t.Fatalf("seq %d never acknowledged (%d acknowledged)", s, len(seen))
		}
	}
	if rep := e.verify(t); !rep.Intact || rep.RecordsChecked != callers*each+2 {
		t.Errorf("verify = %+v, want intact with %d records", rep, callers*each+2)
	}
}

func TestCheckpointEveryRecordsCount(t *testing.T) {
	e := newEnv(t, nil)
	l := e.open(t, func(o *ledger.Options) { o.CheckpointRecords = 10; o.CheckpointInterval = time.Hour })
	for i := range 35 {
		mustAppend(t, l, decision(i))
	}
	var sizes []uint64
	e.st.Checkpoints(context.Background(), func(c ledger.StoredCheckpoint) error {
		sizes = append(sizes, c.Size)
		return nil
	})
	// The startup record is signed at once; then every 10 records from there.
	if diff := cmp.Diff([]uint64{1, 11, 21, 31}, sizes); diff != "" {
		t.Errorf("checkpoint sizes (-want +got):\n%s", diff)
	}
	mustClose(t, l)
}

func TestCheckpointEverySecond(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, nil)
		l := e.open(t, nil)
		mustAppend(t, l, decision(1))
		latest := func() uint64 {
			c, ok, _ := e.st.LatestCheckpoint(context.Background())
			if !ok {
				return 0
			}
			return c.Size
		}
		if got := latest(); got != 1 {
			t.Errorf("checkpoint at %d right after the first appends, want only the startup record's (1)", got)
		}
		time.Sleep(1100 * time.Millisecond)
		synctest.Wait()
		if got := latest(); got != 2 {
			t.Errorf("after a second the latest checkpoint covers %d records, want 2", got)
		}
		mustClose(t, l)
		if got := latest(); got != 3 {
			t.Errorf("after close the latest checkpoint covers %d records, want 3 (with shutdown)", got)
		}
	})
}

func TestAppendAfterCloseFails(t *testing.T) {
	e := newEnv(t, nil)
	l := e.open(t, nil)
	mustClose(t, l)
	if _, err := l.Append(context.Background(), decision(1)); err == nil {
		t.Error("append after close succeeded")
	}
}

func TestQueueFullPushesBack(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, nil)
		gate := &gateStore{Store: e.st, release: make(chan struct{})}
		e.st = gate
		l := e.open(t, func(o *ledger.Options) { o.QueueSize = 2; o.MaxBatch = 1 })
		gate.block.Store(true)
		// One record is held by the writer in a blocked commit and two fill the queue; the next
		// caller must wait (not be dropped) and give up only at its deadline.
		var wg sync.WaitGroup
		for i := range 3 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := l.Append(context.Background(), decision(i)); err != nil {
					t.Errorf("append %d: %v", i, err)
				}
			}()
		}
		synctest.Wait()
		if d := l.QueueDepth(); d != 2 {
			t.Errorf("queue depth = %d, want 2", d)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if _, err := l.Append(ctx, decision(9)); err == nil {
			t.Error("append into a full queue returned without waiting for room")
		}
		gate.block.Store(false)
		close(gate.release)
		wg.Wait()
		mustClose(t, l)
		if got := len(records(t, e.st)); got != 5 {
			t.Errorf("%d records, want 5 (startup, 3, shutdown)", got)
		}
	})
}

func TestUnencodableFieldsStillRecordTheDecision(t *testing.T) {
	e := newEnv(t, nil)
	l := e.open(t, nil)
	r := decision(5)
	r.Anomalies = []ledger.Anomaly{{Signal: "rate", Score: math.NaN()}}
	seq := mustAppend(t, l, r)
	mustClose(t, l)
	got := records(t, e.st)[seq]
	if got.DecisionID != "dec-000005" || got.Decision != "allow" || !strings.Contains(got.Message, "could not be encoded") {
		t.Errorf("record = %+v, want the decision with a note", got)
	}
}
