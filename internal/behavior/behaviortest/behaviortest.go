// Package behaviortest is the contract every behavior.Store must pass: the in-memory store and
// the Redis store run the same suite. It is imported only by tests.
package behaviortest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/portcullis-ai/portcullis/internal/behavior"
)

// T0 is a Monday, 09:00 UTC: hour-of-week bucket 9.
var T0 = time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)

// Run runs the contract against stores made by newStore. Each subtest gets a fresh store, and
// agent names are unique per subtest so that shared backends (one Redis) do not interfere.
// Stores must accept windows up to 24h.
func Run(t *testing.T, newStore func(t *testing.T) behavior.Store) {
	ctx := context.Background()
	uniq := fmt.Sprintf("%d", time.Now().UnixNano())
	agent := func(t *testing.T, name string) string { return name + "-" + t.Name() + "-" + uniq }

	t.Run("windows slide at one-second resolution", func(t *testing.T) {
		s := newStore(t)
		a := agent(t, "a")
		q := behavior.Query{Windows: []time.Duration{time.Minute, time.Hour}, BurstWindow: time.Minute}
		type step struct {
			at   time.Duration
			tool string
			want []int
		}
		steps := []step{
			{0, "t", []int{1, 1}},
			{10 * time.Second, "t", []int{2, 2}},
			{30 * time.Second, "other", []int{1, 1}},
			{59 * time.Second, "t", []int{3, 3}},
			{60 * time.Second, "t", []int{3, 4}}, // the call at 0s is now exactly a minute old: out
			{60*time.Second + 999*time.Millisecond, "t", []int{4, 5}},
			{30 * time.Minute, "t", []int{1, 6}},
			{61 * time.Minute, "t", []int{1, 2}}, // everything up to second 60 fell out of the hour
		}
		for i, st := range steps {
			snap, err := s.Record(ctx, behavior.Call{Agent: a, Tool: st.tool, At: T0.Add(st.at)}, q)
			if err != nil {
				t.Fatalf("step %d: %v", i, err)
			}
			if diff := cmp.Diff(st.want, snap.WindowCounts); diff != "" {
				t.Errorf("step %d at %s: counts (-want +got):\n%s", i, st.at, diff)
			}
		}
		n, err := s.Count(ctx, a, "t", 2*time.Hour, T0.Add(61*time.Minute))
		if err != nil || n != 7 {
			t.Errorf("Count(2h) = %d, %v; want 7", n, err)
		}
		n, err = s.Count(ctx, a, "t", time.Minute, T0.Add(3*time.Hour))
		if err != nil || n != 0 {
			t.Errorf("Count long after = %d, %v; want 0", n, err)
		}
		n, err = s.Count(ctx, "nobody-"+uniq, "t", time.Minute, T0)
		if err != nil || n != 0 {
			t.Errorf("Count unknown agent = %d, %v", n, err)
		}
	})

	t.Run("history is reported as it was before the call", func(t *testing.T) {
		s := newStore(t)
		a := agent(t, "a")
		q := behavior.Query{BurstWindow: time.Minute}
		calls := []behavior.Call{
			{Agent: a, Tool: "x", At: T0, ParamSize: 100},
			{Agent: a, Tool: "x", At: T0.Add(30 * time.Second), ParamSize: 300},
			{Agent: a, Tool: "y", At: T0.Add(2 * time.Minute), ParamSize: 7},
			{Agent: a, Tool: "x", At: T0.Add(24 * time.Hour), ParamSize: 0},
			{Agent: a, Tool: "x", At: T0.Add(7*24*time.Hour + 30*time.Minute), ParamSize: 0}, // Monday 09:30 again
		}
		var last behavior.Snapshot
		for _, c := range calls {
			var err error
			if last, err = s.Record(ctx, c, q); err != nil {
				t.Fatal(err)
			}
		}
		// Before the fifth call: four calls in three distinct minutes (the first two share one),
		// three of them in the Monday 09:00 bucket where the fifth lands.
		want := behavior.Snapshot{
			AgentCalls: 4, AgentActiveMinutes: 3, AgentFirstSeen: T0, HourCalls: 3,
			ToolCalls: 3, ParamN: 3, ParamSum: 400, ParamSumSq: 100*100 + 300*300,
			WindowCounts: []int{}, AgentBurst: 1,
		}
		if diff := cmp.Diff(want, last, cmp.Comparer(func(a, b time.Time) bool { return a.Equal(b) })); diff != "" {
			t.Errorf("snapshot (-want +got):\n%s", diff)
		}
	})

	t.Run("burst counts all of the agent's tools", func(t *testing.T) {
		s := newStore(t)
		a, b := agent(t, "a"), agent(t, "b")
		q := behavior.Query{BurstWindow: time.Minute}
		var snap behavior.Snapshot
		for i := range 12 {
			var err error
			snap, err = s.Record(ctx, behavior.Call{Agent: a, Tool: fmt.Sprintf("tool-%d", i%3), At: T0.Add(time.Duration(i) * time.Second)}, q)
			if err != nil {
				t.Fatal(err)
			}
		}
		if snap.AgentBurst != 12 {
			t.Errorf("AgentBurst = %d, want 12", snap.AgentBurst)
		}
		snap, err := s.Record(ctx, behavior.Call{Agent: b, Tool: "tool-0", At: T0.Add(12 * time.Second)}, q)
		if err != nil || snap.AgentBurst != 1 || snap.AgentCalls != 0 {
			t.Errorf("another agent sees %+v, %v", snap, err)
		}
	})

	t.Run("bad input is an error", func(t *testing.T) {
		s := newStore(t)
		a := agent(t, "a")
		for _, tc := range []struct {
			c    behavior.Call
			q    behavior.Query
			want error
		}{
			{behavior.Call{Agent: a, Tool: "t", At: T0}, behavior.Query{Windows: []time.Duration{25 * time.Hour}, BurstWindow: time.Minute}, behavior.ErrWindow},
			{behavior.Call{Agent: a, Tool: "t", At: T0}, behavior.Query{Windows: []time.Duration{0}, BurstWindow: time.Minute}, behavior.ErrWindow},
			{behavior.Call{Agent: a, Tool: "t", At: T0}, behavior.Query{}, behavior.ErrWindow},
			{behavior.Call{Agent: "", Tool: "t", At: T0}, behavior.Query{BurstWindow: time.Minute}, behavior.ErrInvalid},
			{behavior.Call{Agent: a, Tool: "", At: T0}, behavior.Query{BurstWindow: time.Minute}, behavior.ErrInvalid},
		} {
			if _, err := s.Record(ctx, tc.c, tc.q); !errors.Is(err, tc.want) {
				t.Errorf("Record(%+v, %+v) = %v, want %v", tc.c, tc.q, err, tc.want)
			}
		}
		if _, err := s.Count(ctx, a, "t", 48*time.Hour, T0); !errors.Is(err, behavior.ErrWindow) {
			t.Errorf("Count(48h) = %v", err)
		}
	})

	t.Run("concurrent records are atomic", func(t *testing.T) {
		s := newStore(t)
		a := agent(t, "a")
		const workers, each = 8, 25
		q := behavior.Query{Windows: []time.Duration{time.Hour}, BurstWindow: time.Minute}
		var mu sync.Mutex
		seen := map[int64]bool{}
		var wg sync.WaitGroup
		errs := make(chan error, workers)
		for w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range each {
					snap, err := s.Record(ctx, behavior.Call{Agent: a, Tool: "t", At: T0.Add(time.Duration(w*each+i) * time.Millisecond)}, q)
					if err != nil {
						errs <- err
						return
					}
					mu.Lock()
					seen[snap.AgentCalls] = true
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		if len(seen) != workers*each {
			t.Errorf("%d distinct 'calls before' values for %d calls: two calls saw the same history", len(seen), workers*each)
		}
		n, err := s.Count(ctx, a, "t", time.Hour, T0.Add(time.Second))
		if err != nil || n != workers*each {
			t.Errorf("Count = %d, %v; want %d", n, err, workers*each)
		}
	})
}
