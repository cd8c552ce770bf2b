package sqlite

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/portcullis-ai/portcullis/internal/approval"
	"github.com/portcullis-ai/portcullis/internal/store/storetest"
)

func openTestApprovals(t *testing.T, path string) *Approvals {
	t.Helper()
	s, err := OpenApprovals(context.Background(), path)
	if err != nil {
		t.Fatalf("OpenApprovals: %v", err)
	}
	return s
}

func TestApprovalStoreContract(t *testing.T) {
	storetest.RunApprovalStore(t, func(t *testing.T) approval.Store {
		s := openTestApprovals(t, filepath.Join(t.TempDir(), "portcullis.db"))
		t.Cleanup(func() { s.Close() })
		return s
	})
}

// approvalEvents is a Recorder standing in for the ledger.
type approvalEvents struct {
	mu    sync.Mutex
	kinds []string
}

func (l *approvalEvents) RecordApproval(_ context.Context, e approval.Event) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.kinds = append(l.kinds, e.Kind+":"+string(e.To))
	return nil
}

// TestApprovalsSurviveRestart: pending requests created before a restart are still there after
// it, can be approved, and their grants redeem exactly once.
func TestApprovalsSurviveRestart(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "portcullis.db")
	params := json.RawMessage(`{"path":"/srv/reports/q3.csv","rows":20000}`)
	in := approval.Input{
		DecisionID: "dec-1", Agent: "reporting-agent", User: "dave", UserVerified: true,
		Tool: "export_customer_data", Params: params, RedactedParams: params,
		Rule: "bulk_export_requires_approval", PolicyVersion: "v1",
	}
	rec := &approvalEvents{}

	s1 := openTestApprovals(t, path)
	e1, err := approval.New(s1, rec)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for range 3 {
		r, err := e1.Request(ctx, in)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, r.ID)
	}
	before, _ := e1.Get(ctx, ids[0])
	if err := s1.Close(); err != nil {
		t.Fatal(err)
	}

	// "Restart": a new store and engine on the same file.
	s2 := openTestApprovals(t, path)
	defer s2.Close()
	e2, err := approval.New(s2, rec)
	if err != nil {
		t.Fatal(err)
	}
	pending, err := e2.List(ctx, approval.Filter{States: []approval.State{approval.Pending}})
	if err != nil || len(pending) != 3 {
		t.Fatalf("after restart: %d pending, %v", len(pending), err)
	}
	after, _ := e2.Get(ctx, ids[0])
	if diff := cmp.Diff(before, after, cmp.Comparer(func(a, b time.Time) bool { return a.Equal(b) })); diff != "" {
		t.Errorf("request changed across restart (-before +after):\n%s", diff)
	}

	approver := approval.Approver{ID: "alice", Kind: approval.Human, Scopes: []approval.Scope{{Agents: []string{".*"}, Tools: []string{".*"}}}}
	if _, err := e2.Approve(ctx, ids[0], approver, "ok"); err != nil {
		t.Fatalf("Approve after restart: %v", err)
	}
	if _, err := e2.Deny(ctx, ids[1], approver, "no"); err != nil {
		t.Fatalf("Deny after restart: %v", err)
	}
	digest, _ := approval.Digest(params)
	key := approval.Key{Agent: in.Agent, User: in.User, UserVerified: true, Tool: in.Tool,
		ParamsDigest: digest, PolicyVersion: "v1", Rule: in.Rule, Required: 1}
	if _, err := e2.Redeem(ctx, ids[0], key); err != nil {
		t.Fatalf("Redeem after restart: %v", err)
	}
	if _, err := e2.Redeem(ctx, ids[0], key); !errors.Is(err, approval.ErrConsumed) {
		t.Fatalf("second Redeem: err = %v, want ErrConsumed", err)
	}
	if _, err := e2.Redeem(ctx, ids[1], key); !errors.Is(err, approval.ErrDenied) {
		t.Fatalf("Redeem of denied: err = %v, want ErrDenied", err)
	}
	if err := s2.Close(); err != nil {
		t.Fatal(err)
	}

	// And the outcome survives another restart.
	s3 := openTestApprovals(t, path)
	defer s3.Close()
	var states []approval.State
	for _, id := range ids {
		r, err := s3.Get(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		states = append(states, r.State)
	}
	if diff := cmp.Diff([]approval.State{approval.Consumed, approval.Denied, approval.Pending}, states); diff != "" {
		t.Errorf("states after second restart (-want +got):\n%s", diff)
	}
	want := []string{
		"approval_requested:pending", "approval_requested:pending", "approval_requested:pending",
		"approval_resolved:approved", "approval_resolved:denied", "approval_consumed:consumed",
	}
	if diff := cmp.Diff(want, rec.kinds); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
}

// TestApprovalsConcurrentApproveAndDeny: on SQLite too, exactly one of many concurrent approvers and
// deniers wins, and only the winner is recorded.
func TestApprovalsConcurrentApproveAndDeny(t *testing.T) {
	ctx := context.Background()
	s := openTestApprovals(t, filepath.Join(t.TempDir(), "p.db"))
	defer s.Close()
	rec := &approvalEvents{}
	e, err := approval.New(s, rec)
	if err != nil {
		t.Fatal(err)
	}
	params := json.RawMessage(`{"id":42}`)
	for round := range 5 {
		rec.kinds = nil
		r, err := e.Request(ctx, approval.Input{Agent: "a", User: "u", Tool: "delete_record",
			Params: params, RedactedParams: params, Rule: "deletes", PolicyVersion: "v1"})
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		var mu sync.Mutex
		wins, losses := 0, 0
		for i := range 40 {
			wg.Go(func() {
				ap := approval.Approver{ID: fmt.Sprintf("human-%d", i), Kind: approval.Human,
					Scopes: []approval.Scope{{Agents: []string{".*"}, Tools: []string{".*"}}}}
				var err error
				if i%2 == 0 {
					_, err = e.Approve(ctx, r.ID, ap, "")
				} else {
					_, err = e.Deny(ctx, r.ID, ap, "")
				}
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil:
					wins++
				case errors.Is(err, approval.ErrFinal):
					losses++
				default:
					t.Errorf("round %d: %v", round, err)
				}
			})
		}
		wg.Wait()
		if wins != 1 || losses != 39 || len(rec.kinds) != 2 {
			t.Fatalf("round %d: %d wins, %d losses, events %v", round, wins, losses, rec.kinds)
		}
	}
}

func TestApprovalsSharedHandle(t *testing.T) {
	ctx := context.Background()
	owner := openTestApprovals(t, filepath.Join(t.TempDir(), "p.db"))
	defer owner.Close()
	shared, err := NewApprovals(ctx, owner.db)
	if err != nil {
		t.Fatal(err)
	}
	if err := shared.Close(); err != nil {
		t.Fatal(err)
	}
	// Closing the non-owning store left the handle open.
	if err := owner.db.PingContext(ctx); err != nil {
		t.Fatalf("shared handle closed: %v", err)
	}
}

func TestOpenApprovalsErrors(t *testing.T) {
	if _, err := OpenApprovals(context.Background(), ""); err == nil {
		t.Error("empty path accepted")
	}
	if _, err := OpenApprovals(context.Background(), filepath.Join(t.TempDir(), "missing", "dir", "p.db")); err == nil {
		t.Error("unopenable path accepted")
	}
}

func TestApprovalsCorruptBody(t *testing.T) {
	ctx := context.Background()
	s := openTestApprovals(t, filepath.Join(t.TempDir(), "p.db"))
	defer s.Close()
	if _, err := s.db.ExecContext(ctx,
		`INSERT INTO approval_requests (id, state, agent, tool, created_at, deadline, revision, body)
		 VALUES ('apr_x', 'pending', 'a', 't', 0, 1, 0, CAST('{not json' AS BLOB))`); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, "apr_x"); err == nil {
		t.Error("corrupt body decoded")
	}
	if _, err := s.Update(ctx, "apr_x", func(*approval.Request) error { return nil }); err == nil {
		t.Error("corrupt body updated")
	}
	if _, err := s.List(ctx, approval.Filter{}); err == nil {
		t.Error("corrupt body listed")
	}
}

// BenchmarkApprovalLifecycle is one whole approval on SQLite (three fsync'd transactions): request,
// approve, redeem.
func BenchmarkApprovalLifecycle(b *testing.B) {
	ctx := context.Background()
	s, err := OpenApprovals(ctx, filepath.Join(b.TempDir(), "bench.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	e, err := approval.New(s, approval.RecorderFunc(func(context.Context, approval.Event) error { return nil }))
	if err != nil {
		b.Fatal(err)
	}
	params := json.RawMessage(`{"table":"customers","limit":10000,"columns":["id","email","region"]}`)
	digest, _ := approval.Digest(params)
	in := approval.Input{Agent: "reporting-agent", User: "dave", UserVerified: true, Tool: "export_customer_data",
		Params: params, RedactedParams: params, Rule: "bulk_export", PolicyVersion: "v1"}
	key := approval.Key{Agent: in.Agent, User: in.User, UserVerified: true, Tool: in.Tool, ParamsDigest: digest,
		PolicyVersion: "v1", Rule: in.Rule, Required: 1}
	approver := approval.Approver{ID: "alice", Kind: approval.Human, Scopes: []approval.Scope{{Agents: []string{".*"}, Tools: []string{".*"}}}}
	b.ReportAllocs()
	for b.Loop() {
		r, err := e.Request(ctx, in)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := e.Approve(ctx, r.ID, approver, "ok"); err != nil {
			b.Fatal(err)
		}
		if _, err := e.Redeem(ctx, r.ID, key); err != nil {
			b.Fatal(err)
		}
	}
}
