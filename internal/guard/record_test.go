package guard

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/portcullis-ai/portcullis/internal/approval"
	"github.com/portcullis-ai/portcullis/internal/ledger"
	"github.com/portcullis-ai/portcullis/internal/policy"
)

// slowCommits is a ledger store whose commits take delay (a slow fsync) when stall reports
// true for the batch; a commit cut short by its context stores nothing.
type slowCommits struct {
	ledger.Store
	delay time.Duration
	stall func([]ledger.Entry) bool // nil: every commit
	// deaf: the commit takes delay whatever its context says (an fsync cannot be interrupted).
	deaf bool
}

func (s slowCommits) Commit(ctx context.Context, recs []ledger.Entry, cp *ledger.StoredCheckpoint) error {
	if s.deaf {
		time.Sleep(s.delay)
	} else if s.stall == nil || s.stall(recs) {
		select {
		case <-time.After(s.delay):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return s.Store.Commit(ctx, recs, cp)
}

// decisionsOf returns the decision recorded for each decision ID.
func (h *harness) decisionsOf(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, data := range h.records(t) {
		r, err := ledger.ParseRecord([]byte(data))
		if err != nil {
			t.Fatal(err)
		}
		if r.Kind == ledger.KindDecision {
			out[r.DecisionID] = r.Decision
		}
	}
	return out
}

// The answer an agent gets is the decision the ledger holds, even when the caller's deadline is
// shorter than a commit: the record is the guard's obligation, written on its own bounded
// context, and the answer follows the record.
func TestAnswerMatchesLedgerUnderSlowCommit(t *testing.T) {
	h := newHarnessWith(t, harnessOptions{wrapStore: func(s ledger.Store) ledger.Store {
		return slowCommits{Store: s, delay: 30 * time.Millisecond, deaf: true}
	}})
	const calls = 20
	ds := make([]*Decision, calls)
	var wg sync.WaitGroup
	for i := range ds {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
			defer cancel()
			ds[i] = h.g.Check(ctx, h.call("fetch_sales_data", `{"query_type":"monthly"}`))
		}()
	}
	wg.Wait()
	recorded := h.decisionsOf(t)
	allowed := 0
	for _, d := range ds {
		got := recorded[d.ID]
		switch {
		case d.Action == policy.Allow && got != "allow":
			t.Errorf("%s: answered ALLOW, ledger holds %q", d.ID, got)
		case d.Action != policy.Allow && got == "allow":
			t.Errorf("%s: answered %v (%s), ledger holds allow", d.ID, d.Action, d.Code)
		case d.Code == CodeLedger && got != "":
			t.Errorf("%s: answered ledger_unavailable, ledger holds %q", d.ID, got)
		}
		if d.Action == policy.Allow {
			allowed++
		}
	}
	// The guard's own bound (the decision timeout) is far above a 30 ms commit: every call is
	// recorded and allowed, whatever the caller's deadline.
	if allowed != calls {
		t.Errorf("%d of %d calls allowed, want all", allowed, calls)
	}
}

// An approved grant is redeemed in the same step as the decision record: when the record cannot
// be written (its commit stalls past the guard's bound), the call is denied, the grant is not
// consumed, and a retry redeems it.
func TestGrantSurvivesUnwrittenRecord(t *testing.T) {
	for name, byID := range map[string]bool{"approval id": true, "matched by call": false} {
		t.Run(name, func(t *testing.T) { grantSurvivesUnwrittenRecord(t, byID) })
	}
}

func grantSurvivesUnwrittenRecord(t *testing.T, byID bool) {
	var stall atomic.Bool
	h := newHarnessWith(t, harnessOptions{
		wrapStore: func(s ledger.Store) ledger.Store {
			return slowCommits{Store: s, delay: time.Second, stall: func(recs []ledger.Entry) bool {
				if !stall.Load() {
					return false
				}
				for _, e := range recs {
					if r, err := ledger.ParseRecord(e.Data); err == nil && r.Kind == ledger.KindDecision && r.Decision == "allow" {
						return true
					}
				}
				return false
			}}
		},
		guard: func(o *Options) { o.RecordTimeout = 100 * time.Millisecond },
	})
	ctx := context.Background()
	req := h.call("wire_money", `{"amount":10,"to":"acct-1"}`)
	d := h.g.Check(ctx, req)
	if d.Action != policy.Constrain {
		t.Fatalf("first call: %v", d.Action)
	}
	boss := approval.Approver{ID: "alice", Kind: approval.Human, Scopes: []approval.Scope{{Agents: []string{".*"}, Tools: []string{".*"}}}}
	if _, err := h.appr.Approve(ctx, d.ApprovalID, boss, "ok"); err != nil {
		t.Fatal(err)
	}
	if byID {
		req.ApprovalID = d.ApprovalID
	} else {
		req.MatchApproval = true // the LLM path: the identical call redeems the grant
	}
	stall.Store(true)
	short, cancel := context.WithTimeout(ctx, 10*time.Millisecond)
	first := h.g.Check(short, req)
	cancel()
	stall.Store(false)
	if first.Action == policy.Allow {
		t.Fatalf("first redemption allowed although its record could not be written")
	}
	if got := h.decisionsOf(t)[first.ID]; got == "allow" {
		t.Fatalf("first redemption answered %v but the ledger holds allow", first.Action)
	}
	retry := h.g.Check(ctx, req)
	if retry.Action != policy.Allow {
		t.Fatalf("retry of an approved call: %v code %q err %v, want ALLOW (the grant was lost)", retry.Action, retry.Code, retry.Err)
	}
	if got := h.decisionsOf(t)[retry.ID]; got != "allow" {
		t.Fatalf("retry allowed but the ledger holds %q", got)
	}
}

// failCommit is an approval store whose Update runs the change (and so its hook, which records
// the event) and then fails to commit it, like a failed COMMIT.
type failCommit struct {
	approval.Store
	fail atomic.Bool
}

func (f *failCommit) Update(ctx context.Context, id string, fn func(*approval.Request) error) (approval.Request, error) {
	if !f.fail.Load() {
		return f.Store.Update(ctx, id, fn)
	}
	r, err := f.Store.Get(ctx, id)
	if err != nil {
		return approval.Request{}, err
	}
	if err := fn(&r); err != nil {
		return approval.Request{}, err
	}
	return approval.Request{}, errors.New("commit: disk I/O error")
}

// A vote whose store change does not commit leaves no uncompensated approval on the record: the
// ledger event written before the COMMIT is followed by one saying it did not take effect.
func TestApprovalEventCompensatedWhenStoreCommitFails(t *testing.T) {
	fc := &failCommit{}
	h := newHarnessWith(t, harnessOptions{wrapApprov: func(s approval.Store) approval.Store { fc.Store = s; return fc }})
	ctx := context.Background()
	d := h.g.Check(ctx, h.call("wire_money", `{"amount":10,"to":"acct-1"}`))
	if d.Action != policy.Constrain {
		t.Fatalf("first call: %v", d.Action)
	}
	boss := approval.Approver{ID: "alice", Kind: approval.Human, Scopes: []approval.Scope{{Agents: []string{".*"}, Tools: []string{".*"}}}}
	fc.fail.Store(true)
	if _, err := h.appr.Approve(ctx, d.ApprovalID, boss, "ok"); err == nil {
		t.Fatal("approve succeeded although the store did not commit")
	}
	fc.fail.Store(false)
	if r, err := h.appr.Get(ctx, d.ApprovalID); err != nil || r.State != approval.Pending {
		t.Fatalf("request after the failed commit: %v %v, want pending", r.State, err)
	}
	approved, aborted := -1, -1
	for i, data := range h.records(t) {
		r, err := ledger.ParseRecord([]byte(data))
		if err != nil {
			t.Fatal(err)
		}
		if r.Approval == nil || r.Approval.ID != d.ApprovalID {
			continue
		}
		switch r.Event() {
		case ledger.KindApprovalResolved:
			if r.Approval.Result == string(approval.Approved) {
				approved = i
			}
		case ledger.KindApprovalAborted:
			aborted = i
		}
	}
	if approved >= 0 && aborted < approved {
		t.Fatalf("the ledger says approved (record %d) for a vote that never committed, with no compensating record after it (aborted at %d)", approved, aborted)
	}
}

// The ledger reads as an audit trail of one held call: the CONSTRAIN decision, then the request
// it opened, the approval, the redeeming call's decision, then the grant's consumption — in seq
// order and in time order, each event under its own kind, the agent named as the requester and
// never as an approver.
func TestApprovalTrailReadsInOrder(t *testing.T) {
	for name, byID := range map[string]bool{"approval id": true, "matched by call": false} {
		t.Run(name, func(t *testing.T) {
			h := newHarness(t, nil)
			ctx := context.Background()
			req := h.call("wire_money", `{"amount":10,"to":"acct-1"}`)
			req.MatchApproval = !byID
			held := h.g.Check(ctx, req)
			if held.Action != policy.Constrain {
				t.Fatalf("first call: %v %v", held.Action, held.Err)
			}
			boss := approval.Approver{ID: "alice", Kind: approval.Human, Scopes: []approval.Scope{{Agents: []string{".*"}, Tools: []string{".*"}}}}
			if _, err := h.appr.Approve(ctx, held.ApprovalID, boss, "ok"); err != nil {
				t.Fatal(err)
			}
			if byID {
				req.ApprovalID = held.ApprovalID
			}
			run := h.g.Check(ctx, req)
			if run.Action != policy.Allow {
				t.Fatalf("approved call: %v %v", run.Action, run.Err)
			}
			type line struct{ kind, decision, id, requestedBy, approver, result, reason string }
			var got []line
			var last time.Time
			for _, data := range h.records(t) {
				r, err := ledger.ParseRecord([]byte(data))
				if err != nil {
					t.Fatal(err)
				}
				if r.DecisionID != held.ID && r.DecisionID != run.ID {
					continue
				}
				if r.Time.Before(last) {
					t.Errorf("seq %d (%s) at %s, before the record ahead of it (%s)", r.Seq, r.Kind, r.Time, last)
				}
				last = r.Time
				l := line{kind: string(r.Kind), decision: r.Decision, id: r.DecisionID, reason: r.Reason}
				if r.Approval != nil {
					l.requestedBy, l.approver, l.result = r.Approval.RequestedBy, r.Approval.Approver, r.Approval.Result
				}
				got = append(got, l)
			}
			reason := "approval consumed"
			if !byID {
				reason += " (matched by call)"
			}
			want := []line{
				{"decision", "constrain", held.ID, "", "", "pending", ""},
				{"approval_requested", "constrain", held.ID, "report-generator-v1", "", "pending", ""},
				{"approval_resolved", "constrain", held.ID, "report-generator-v1", "alice", "approved", ""},
				{"decision", "allow", run.ID, "", "alice", "consumed", reason},
				{"approval_consumed", "constrain", held.ID, "report-generator-v1", "", "consumed", ""},
			}
			if d := cmp.Diff(want, got, cmp.AllowUnexported(line{})); d != "" {
				t.Errorf("the held call's trail (-want +got):\n%s", d)
			}
		})
	}
}

// Ledgers written before each approval event had a kind of its own filed votes, consumptions
// and aborts under approval_resolved with the event's name in reason: they still parse, and read
// under today's kinds.
func TestOlderApprovalSpellingsRead(t *testing.T) {
	for old, want := range map[string]ledger.Kind{
		`"kind":"approval_resolved","decision_id":"dec_1","reason":"approval_consumed"`:   ledger.KindApprovalConsumed,
		`"kind":"approval_resolved","decision_id":"dec_1","reason":"approval_vote"`:       ledger.KindApprovalVote,
		`"kind":"approval_resolved","decision_id":"dec_1","reason":"approval_aborted"`:    ledger.KindApprovalAborted,
		`"kind":"approval_resolved","decision_id":"dec_1","reason":"approval_resolved"`:   ledger.KindApprovalResolved,
		`"kind":"approval_requested","decision_id":"dec_1","reason":"approval_requested"`: ledger.KindApprovalRequested,
	} {
		data := `{"v":1,"seq":0,"prev":"","time":"2026-01-01T00:00:00Z",` + old + `}`
		r, err := ledger.ParseRecord([]byte(data))
		if err != nil {
			t.Fatalf("%s: %v", data, err)
		}
		if r.Event() != want {
			t.Errorf("%s: read as %s, want %s", old, r.Event(), want)
		}
	}
}
