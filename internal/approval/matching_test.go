package approval

import (
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"
)

// RequestMatching finds the approval by the call: join while pending, redeem once when
// approved, open anew after the grant is used, after a denial, after expiry, and for any call
// the grant does not bind.
func TestRequestMatching(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	e, _, st := newTestEngine(t, WithClock(func() time.Time { return now }))
	in := transferInput()
	in.Expiry, in.GrantTTL = time.Minute, time.Minute
	k := Key{Agent: in.Agent, User: in.User, UserVerified: true, Tool: in.Tool,
		ParamsDigest: mustDigest(t, transferParams), PolicyVersion: in.PolicyVersion, Rule: in.Rule, Required: 1}
	call := func(in Input, k Key) (Request, MatchResult) {
		t.Helper()
		r, how, err := e.RequestMatching(ctx, in, k, nil)
		if err != nil {
			t.Fatalf("RequestMatching: %v", err)
		}
		return r, how
	}
	pending := func() int {
		rs, err := st.List(ctx, Filter{States: []State{Pending}})
		if err != nil {
			t.Fatal(err)
		}
		return len(rs)
	}

	first, how := call(in, k)
	if how != Opened || first.State != Pending {
		t.Fatalf("first call: %v %s, want a new pending request", how, first.State)
	}
	for range 3 {
		if r, how := call(in, k); how != Joined || r.ID != first.ID {
			t.Fatalf("re-proposal while pending: %v %s, want joined %s", how, r.ID, first.ID)
		}
	}
	if n := pending(); n != 1 {
		t.Fatalf("%d pending requests, want 1", n)
	}

	// Another user, other parameters or another rule never join or redeem this request.
	other := k
	other.User = "mallory@example.com"
	inOther := in
	inOther.User = other.User
	if r, how := call(inOther, other); how != Opened || r.ID == first.ID {
		t.Errorf("another user's identical call: %v %s, want a new request", how, r.ID)
	}
	changed := k
	changed.ParamsDigest = mustDigest(t, `{"amount": 1001, "to": "acct-1", "memo": "rent"}`)
	inChanged := in
	inChanged.Params = json.RawMessage(`{"amount": 1001, "to": "acct-1", "memo": "rent"}`)
	if r, how := call(inChanged, changed); how != Opened || r.ID == first.ID {
		t.Errorf("other parameters: %v %s, want a new request", how, r.ID)
	}

	if _, err := e.Approve(ctx, first.ID, alice, ""); err != nil {
		t.Fatal(err)
	}
	ruled := k
	ruled.Rule = "another_rule"
	ruledReq, how := call(in, ruled)
	if how != Opened || ruledReq.ID == first.ID {
		t.Errorf("a call constrained by another rule: %v %s, want a new request, the grant untouched", how, ruledReq.ID)
	}
	if r, how := call(in, k); how != Redeemed || r.ID != first.ID || r.State != Consumed {
		t.Fatalf("re-proposal after approval: %v %s %s, want %s redeemed", how, r.ID, r.State, first.ID)
	}
	// The grant is used: the next identical call asks again (here it joins the request the
	// other rule's call opened for the same call).
	second, how := call(in, k)
	if how != Joined || second.ID != ruledReq.ID {
		t.Fatalf("after the grant was used: %v %s, want to join %s", how, second.ID, ruledReq.ID)
	}

	// A denial is final: the next identical call opens a new request.
	if _, err := e.Deny(ctx, second.ID, alice, "no"); err != nil {
		t.Fatal(err)
	}
	third, how := call(in, k)
	if how != Opened || third.ID == second.ID {
		t.Fatalf("after a denial: %v %s, want a new request", how, third.ID)
	}

	// Expired, though not yet swept: neither a pending request nor a grant is matched.
	now = now.Add(2 * time.Minute)
	if r, how := call(in, k); how != Opened || r.ID == third.ID {
		t.Fatalf("after the pending request expired: %v %s, want a new request", how, r.ID)
	} else {
		if _, err := e.Approve(ctx, r.ID, alice, ""); err != nil {
			t.Fatal(err)
		}
		now = now.Add(2 * time.Minute)
		if r2, how := call(in, k); how != Opened || r2.ID == r.ID {
			t.Fatalf("after the grant expired: %v %s, want a new request", how, r2.ID)
		}
	}
}

// Concurrent identical proposals open one request; once it is approved, exactly one of many
// concurrent re-proposals runs, one opens the next request and the rest join it.
func TestRequestMatchingConcurrent(t *testing.T) {
	ctx := context.Background()
	e, _, _ := newTestEngine(t)
	in := transferInput()
	k := Key{Agent: in.Agent, User: in.User, UserVerified: true, Tool: in.Tool,
		ParamsDigest: mustDigest(t, transferParams), PolicyVersion: in.PolicyVersion, Rule: in.Rule, Required: 1}
	burst := func() map[MatchResult]int {
		var mu sync.Mutex
		var wg sync.WaitGroup
		got := map[MatchResult]int{}
		for range 32 {
			wg.Go(func() {
				_, how, err := e.RequestMatching(ctx, in, k, nil)
				if err != nil {
					t.Errorf("RequestMatching: %v", err)
				}
				mu.Lock()
				got[how]++
				mu.Unlock()
			})
		}
		wg.Wait()
		return got
	}
	if got := burst(); got[Opened] != 1 || got[Joined] != 31 {
		t.Fatalf("concurrent first proposals: %v, want 1 opened and 31 joined", got)
	}
	rs, err := e.List(ctx, Filter{States: []State{Pending}})
	if err != nil || len(rs) != 1 {
		t.Fatalf("pending: %d %v", len(rs), err)
	}
	if _, err := e.Approve(ctx, rs[0].ID, alice, ""); err != nil {
		t.Fatal(err)
	}
	if got := burst(); got[Redeemed] != 1 || got[Opened] != 1 || got[Joined] != 30 {
		t.Fatalf("concurrent re-proposals after approval: %v, want 1 redeemed, 1 opened, 30 joined", got)
	}
}
