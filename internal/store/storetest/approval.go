// Package storetest holds the contract suites every store implementation must pass: one suite
// per store interface, run against memory, SQLite and PostgreSQL implementations alike.
// It imports the engines' interfaces and testing; it must not import a concrete store.
package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/portcullis-ai/portcullis/internal/approval"
	"github.com/portcullis-ai/portcullis/internal/inspect"
	"github.com/portcullis-ai/portcullis/internal/threat"
)

// approvalTimeEqual compares instants, ignoring location and monotonic readings (stores keep neither).
var approvalTimeEqual = cmp.Comparer(func(a, b time.Time) bool { return a.Equal(b) })

var approvalBase = time.Date(2026, 3, 2, 9, 30, 0, 123456789, time.UTC)

// sampleApproval returns a valid pending request with every field set.
func sampleApproval(n int) approval.Request {
	created := approvalBase.Add(time.Duration(n) * time.Second)
	return approval.Request{
		ID:           fmt.Sprintf("apr_%04d", n),
		DecisionID:   fmt.Sprintf("dec_%04d", n),
		Agent:        "payments-agent",
		User:         "dave@example.com",
		UserVerified: true,
		Tool:         "transfer_funds",
		// HTML-significant and non-ASCII characters must come back byte for byte.
		Params:       json.RawMessage(`{"amount":1000,"memo":"<b>rent</b> & ü","to":"acct-1"}`),
		ParamsDigest: "sha256:" + fmt.Sprintf("%064x", n),
		Rule:         "large_transfers",
		Conditions:   []approval.Condition{{Text: "amount >= 500", Result: true}, {Text: "unusual_hour", Result: false}},
		ThreatLevel:  threat.Medium,
		Findings: []inspect.Finding{
			{Kind: "pii.iban", Severity: threat.Low, Path: "$.to", Evidence: "acct-*", Score: 0.5},
		},
		Signals:       []approval.Signal{{Name: "rate", Score: 2.5, Detail: "6 calls in 60m"}},
		PolicyVersion: "v7",
		Required:      2,
		GrantTTL:      5 * time.Minute,
		Labels:        map[string]string{"origin": "slack-bot"},
		CreatedAt:     created,
		ExpiresAt:     created.Add(15 * time.Minute),
		State:         approval.Pending,
	}
}

// RunApprovalStore runs the approval.Store contract against stores made by newStore; each
// subtest gets a fresh, empty store.
func RunApprovalStore(t *testing.T, newStore func(t *testing.T) approval.Store) {
	ctx := context.Background()

	t.Run("create and get round trip", func(t *testing.T) {
		s := newStore(t)
		want := sampleApproval(1)
		var hooked approval.Request
		if err := s.Create(ctx, want, func(r approval.Request) error { hooked = r; return nil }); err != nil {
			t.Fatalf("Create: %v", err)
		}
		if diff := cmp.Diff(want, hooked, approvalTimeEqual); diff != "" {
			t.Errorf("hook saw (-want +got):\n%s", diff)
		}
		got, err := s.Get(ctx, want.ID)
		if err != nil {
			t.Fatalf("Get: %v", err)
		}
		if diff := cmp.Diff(want, got, approvalTimeEqual); diff != "" {
			t.Errorf("Get (-want +got):\n%s", diff)
		}
	})

	t.Run("nil hook", func(t *testing.T) {
		s := newStore(t)
		if err := s.Create(ctx, sampleApproval(1), nil); err != nil {
			t.Fatalf("Create: %v", err)
		}
	})

	t.Run("duplicate id", func(t *testing.T) {
		s := newStore(t)
		mustCreateApproval(t, s, sampleApproval(1))
		again := sampleApproval(1)
		again.Agent = "someone-else"
		called := false
		err := s.Create(ctx, again, func(approval.Request) error { called = true; return nil })
		if !errors.Is(err, approval.ErrExists) {
			t.Fatalf("second Create: err = %v, want ErrExists", err)
		}
		if called {
			t.Error("hook called for a refused create")
		}
		if got, _ := s.Get(ctx, again.ID); got.Agent != "payments-agent" {
			t.Errorf("duplicate create overwrote the request: agent %q", got.Agent)
		}
	})

	t.Run("hook error aborts create", func(t *testing.T) {
		s := newStore(t)
		boom := errors.New("ledger down")
		if err := s.Create(ctx, sampleApproval(1), func(approval.Request) error { return boom }); !errors.Is(err, boom) {
			t.Fatalf("Create: err = %v, want the hook's error", err)
		}
		if _, err := s.Get(ctx, sampleApproval(1).ID); !errors.Is(err, approval.ErrNotFound) {
			t.Fatalf("Get after aborted create: err = %v, want ErrNotFound", err)
		}
		// The ID is still free.
		mustCreateApproval(t, s, sampleApproval(1))
	})

	t.Run("invalid request refused", func(t *testing.T) {
		s := newStore(t)
		bad := sampleApproval(1)
		bad.State = "bogus"
		if err := s.Create(ctx, bad, nil); !errors.Is(err, approval.ErrInvalid) {
			t.Fatalf("Create: err = %v, want ErrInvalid", err)
		}
	})

	t.Run("get missing", func(t *testing.T) {
		s := newStore(t)
		if _, err := s.Get(ctx, "apr_missing"); !errors.Is(err, approval.ErrNotFound) {
			t.Fatalf("Get: err = %v, want ErrNotFound", err)
		}
	})

	t.Run("update commits and bumps revision", func(t *testing.T) {
		s := newStore(t)
		r := sampleApproval(1)
		mustCreateApproval(t, s, r)
		at := approvalBase.Add(time.Minute)
		got, err := s.Update(ctx, r.ID, func(cur *approval.Request) error {
			cur.Votes = append(cur.Votes, approval.Vote{Approver: "alice", Approve: true, Comment: "ok", At: at})
			cur.ID = "apr_hijack" // ignored: Update never moves a request
			return nil
		})
		if err != nil {
			t.Fatalf("Update: %v", err)
		}
		want := r
		want.Votes = []approval.Vote{{Approver: "alice", Approve: true, Comment: "ok", At: at}}
		want.Revision = 1
		if diff := cmp.Diff(want, got, approvalTimeEqual); diff != "" {
			t.Errorf("Update returned (-want +got):\n%s", diff)
		}
		stored, err := s.Get(ctx, r.ID)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want, stored, approvalTimeEqual); diff != "" {
			t.Errorf("Get after Update (-want +got):\n%s", diff)
		}
		if _, err := s.Get(ctx, "apr_hijack"); !errors.Is(err, approval.ErrNotFound) {
			t.Errorf("Update created a request under a new id: %v", err)
		}
	})

	t.Run("update error aborts", func(t *testing.T) {
		s := newStore(t)
		r := sampleApproval(1)
		mustCreateApproval(t, s, r)
		boom := errors.New("refused")
		_, err := s.Update(ctx, r.ID, func(cur *approval.Request) error {
			cur.State = approval.Denied
			return boom
		})
		if !errors.Is(err, boom) {
			t.Fatalf("Update: err = %v, want the fn's error", err)
		}
		got, _ := s.Get(ctx, r.ID)
		if got.State != approval.Pending || got.Revision != 0 {
			t.Errorf("aborted update changed the request: state %s revision %d", got.State, got.Revision)
		}
	})

	t.Run("update to an invalid request refused", func(t *testing.T) {
		s := newStore(t)
		r := sampleApproval(1)
		mustCreateApproval(t, s, r)
		_, err := s.Update(ctx, r.ID, func(cur *approval.Request) error {
			cur.State = approval.Approved // without a grant expiry
			return nil
		})
		if !errors.Is(err, approval.ErrInvalid) {
			t.Fatalf("Update: err = %v, want ErrInvalid", err)
		}
		if got, _ := s.Get(ctx, r.ID); got.State != approval.Pending {
			t.Errorf("invalid update stored state %s", got.State)
		}
	})

	t.Run("update missing", func(t *testing.T) {
		s := newStore(t)
		called := false
		_, err := s.Update(ctx, "apr_missing", func(*approval.Request) error { called = true; return nil })
		if !errors.Is(err, approval.ErrNotFound) || called {
			t.Fatalf("Update: err = %v, fn called %v; want ErrNotFound without calling fn", err, called)
		}
	})

	t.Run("cancelled context changes nothing", func(t *testing.T) {
		s := newStore(t)
		r := sampleApproval(1)
		mustCreateApproval(t, s, r)
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		_, err := s.Update(cctx, r.ID, func(cur *approval.Request) error { cur.State = approval.Denied; return nil })
		if err == nil {
			t.Fatal("Update with a cancelled context succeeded")
		}
		if got, _ := s.Get(ctx, r.ID); got.State != approval.Pending {
			t.Errorf("state %s after cancelled update", got.State)
		}
		if err := s.Create(cctx, sampleApproval(2), nil); err == nil {
			t.Error("Create with a cancelled context succeeded")
		}
	})

	t.Run("returned values are copies", func(t *testing.T) {
		s := newStore(t)
		r := sampleApproval(1)
		mustCreateApproval(t, s, r)
		got, _ := s.Get(ctx, r.ID)
		got.Params[0] = 'X'
		got.Labels["origin"] = "tampered"
		got.Conditions[0].Result = false
		again, _ := s.Get(ctx, r.ID)
		if diff := cmp.Diff(r, again, approvalTimeEqual); diff != "" {
			t.Errorf("mutating a returned request changed the store (-want +got):\n%s", diff)
		}
	})

	t.Run("concurrent updates lose nothing", func(t *testing.T) {
		s := newStore(t)
		r := sampleApproval(1)
		r.Required = approval.MaxRequired
		mustCreateApproval(t, s, r)
		const n = 40
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				_, err := s.Update(ctx, r.ID, func(cur *approval.Request) error {
					cur.Votes = append(cur.Votes, approval.Vote{Approver: fmt.Sprintf("a%d", i), Approve: true, At: approvalBase})
					return nil
				})
				if err != nil {
					t.Errorf("Update %d: %v", i, err)
				}
			})
		}
		wg.Wait()
		got, _ := s.Get(ctx, r.ID)
		if len(got.Votes) != n || got.Revision != n {
			t.Errorf("%d votes, revision %d; want %d and %d", len(got.Votes), got.Revision, n, n)
		}
	})

	t.Run("compare and set: exactly one resolves", func(t *testing.T) {
		s := newStore(t)
		r := sampleApproval(1)
		mustCreateApproval(t, s, r)
		errLost := errors.New("lost")
		var wg sync.WaitGroup
		var mu sync.Mutex
		var winners []int
		for i := range 40 {
			wg.Go(func() {
				_, err := s.Update(ctx, r.ID, func(cur *approval.Request) error {
					if cur.State != approval.Pending {
						return errLost
					}
					cur.State, cur.ResolvedBy = approval.Denied, fmt.Sprint(i)
					return nil
				})
				if err == nil {
					mu.Lock()
					winners = append(winners, i)
					mu.Unlock()
				} else if !errors.Is(err, errLost) {
					t.Errorf("Update %d: %v", i, err)
				}
			})
		}
		wg.Wait()
		got, _ := s.Get(ctx, r.ID)
		if len(winners) != 1 || got.ResolvedBy != fmt.Sprint(winners[0]) || got.Revision != 1 {
			t.Errorf("winners %v, stored resolver %q revision %d", winners, got.ResolvedBy, got.Revision)
		}
	})

	t.Run("list filters and order", func(t *testing.T) {
		s := newStore(t)
		// Created out of order; List returns oldest first.
		for _, n := range []int{3, 1, 4, 2, 5} {
			r := sampleApproval(n)
			switch n {
			case 2:
				r.Agent = "reporting-agent"
			case 4:
				r.Tool = "delete_file"
			case 5:
				r.State, r.GrantExpiresAt = approval.Approved, r.CreatedAt.Add(time.Minute)
			}
			mustCreateApproval(t, s, r)
		}
		ids := func(f approval.Filter) []string {
			t.Helper()
			rs, err := s.List(ctx, f)
			if err != nil {
				t.Fatalf("List(%+v): %v", f, err)
			}
			out := []string{}
			for _, r := range rs {
				out = append(out, r.ID)
			}
			return out
		}
		tests := []struct {
			name string
			f    approval.Filter
			want []string
		}{
			{"all", approval.Filter{}, []string{"apr_0001", "apr_0002", "apr_0003", "apr_0004", "apr_0005"}},
			{"pending", approval.Filter{States: []approval.State{approval.Pending}}, []string{"apr_0001", "apr_0002", "apr_0003", "apr_0004"}},
			{"approved or denied", approval.Filter{States: []approval.State{approval.Approved, approval.Denied}}, []string{"apr_0005"}},
			{"agent", approval.Filter{Agent: "reporting-agent"}, []string{"apr_0002"}},
			{"tool", approval.Filter{Tool: "delete_file"}, []string{"apr_0004"}},
			{"limit", approval.Filter{Limit: 2}, []string{"apr_0001", "apr_0002"}},
			{"no match", approval.Filter{Agent: "nobody"}, []string{}},
			// The visibility filter (an approver's scope) applies before the limit: requests it
			// hides never take a place in the page.
			{"visible before limit", approval.Filter{Limit: 1, Visible: onlyAgent("reporting-agent")}, []string{"apr_0002"}},
			{"visible with states and limit", approval.Filter{States: []approval.State{approval.Pending}, Limit: 2,
				Visible: func(_, tool string) bool { return tool != "delete_file" }}, []string{"apr_0001", "apr_0002"}},
			{"visible, none", approval.Filter{Limit: 3, Visible: onlyAgent("nobody")}, []string{}},
			// Pending requests are due at ExpiresAt (created + 15m), approved ones at their
			// grant expiry (created + 1m).
			{"due: only the grant", approval.Filter{DueBy: approvalBase.Add(10 * time.Minute)}, []string{"apr_0005"}},
			{"due: boundary inclusive", approval.Filter{DueBy: approvalBase.Add(15*time.Minute + 2*time.Second)}, []string{"apr_0001", "apr_0002", "apr_0005"}},
		}
		for _, tt := range tests {
			if diff := cmp.Diff(tt.want, ids(tt.f)); diff != "" {
				t.Errorf("%s (-want +got):\n%s", tt.name, diff)
			}
		}
	})

	t.Run("list after resolution", func(t *testing.T) {
		s := newStore(t)
		r := sampleApproval(1)
		mustCreateApproval(t, s, r)
		if _, err := s.Update(ctx, r.ID, func(cur *approval.Request) error {
			cur.State, cur.ResolvedAt = approval.Expired, cur.ExpiresAt
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		for _, f := range []approval.Filter{
			{States: []approval.State{approval.Pending}},
			{DueBy: approvalBase.Add(time.Hour)}, // final requests are never due
		} {
			if rs, err := s.List(ctx, f); err != nil || len(rs) != 0 {
				t.Errorf("List(%+v) = %d requests, %v; want none", f, len(rs), err)
			}
		}
		if rs, _ := s.List(ctx, approval.Filter{States: []approval.State{approval.Expired}}); len(rs) != 1 {
			t.Errorf("expired listed %d times, want once", len(rs))
		}
	})
}

func mustCreateApproval(t *testing.T, s approval.Store, r approval.Request) {
	t.Helper()
	if err := s.Create(context.Background(), r, nil); err != nil {
		t.Fatalf("Create %s: %v", r.ID, err)
	}
}

// onlyAgent is a visibility filter for one agent's requests.
func onlyAgent(agent string) func(string, string) bool {
	return func(a, _ string) bool { return a == agent }
}
