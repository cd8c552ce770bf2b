package approval

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

// An agent holds at most WithMaxPendingPerAgent requests pending; resolved and overdue requests
// free their places, other agents are not counted, and concurrent requests never overshoot.
func TestMaxPendingPerAgent(t *testing.T) {
	now := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	e, _, _ := newTestEngine(t, WithMaxPendingPerAgent(2), WithClock(clock))
	ctx := context.Background()
	first := mustRequest(t, e, transferInput())
	mustRequest(t, e, transferInput())
	if _, err := e.Request(ctx, transferInput()); !errors.Is(err, ErrTooManyPending) || Code(err) != "too_many_pending_approvals" {
		t.Fatalf("third pending request: %v (code %q), want ErrTooManyPending", err, Code(err))
	}
	other := transferInput()
	other.Agent = "reporting-agent"
	mustRequest(t, e, other)
	if _, err := e.Deny(ctx, first.ID, alice, "no"); err != nil {
		t.Fatal(err)
	}
	mustRequest(t, e, transferInput()) // the denied request freed its place

	// Overdue requests the sweeper has not expired yet are not counted.
	now = now.Add(DefaultExpiry + time.Second)
	mustRequest(t, e, transferInput())

	// Concurrent requests: exactly the free places are taken.
	e2, _, st := newTestEngine(t, WithMaxPendingPerAgent(5))
	var wg sync.WaitGroup
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, _ = e2.Request(ctx, transferInput())
		}()
	}
	wg.Wait()
	rs, err := st.List(ctx, Filter{States: []State{Pending}})
	if err != nil || len(rs) != 5 {
		t.Errorf("concurrent requests left %d pending (%v), want 5", len(rs), err)
	}
}
