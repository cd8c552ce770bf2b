package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/portcullis-ai/portcullis/internal/approval"
	"github.com/portcullis-ai/portcullis/internal/store/postgres/pgtest"
	"github.com/portcullis-ai/portcullis/internal/store/storetest"
)

// TestApprovalsSurviveRestart: pending requests outlive the process that created them.
func TestApprovalsSurviveRestart(t *testing.T) {
	ctx := context.Background()
	dsn, schema := pgtest.Schema(t)
	params := json.RawMessage(`{"rows":20000}`)
	in := approval.Input{Agent: "reporting-agent", User: "dave", Tool: "export_customer_data",
		Params: params, RedactedParams: params, Rule: "bulk_export", PolicyVersion: "v1"}

	first := pgtest.Pool(t, dsn, schema)
	s1, err := NewApprovals(ctx, first)
	if err != nil {
		t.Fatal(err)
	}
	e1, _ := approval.New(s1, approvalNopRecorder{})
	r, err := e1.Request(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	first.Close()

	second := pgtest.Pool(t, dsn, schema)
	s2, err := NewApprovals(ctx, second) // creating the schema again is a no-op
	if err != nil {
		t.Fatal(err)
	}
	e2, _ := approval.New(s2, approvalNopRecorder{})
	approver := approval.Approver{ID: "alice", Kind: approval.Human, Scopes: []approval.Scope{{Agents: []string{".*"}, Tools: []string{".*"}}}}
	if _, err := e2.Approve(ctx, r.ID, approver, ""); err != nil {
		t.Fatalf("Approve after restart: %v", err)
	}
	digest, _ := approval.Digest(params)
	key := approval.Key{Agent: in.Agent, User: in.User, Tool: in.Tool, ParamsDigest: digest, PolicyVersion: "v2", Rule: in.Rule}
	if _, err := e2.Redeem(ctx, r.ID, key); err != nil {
		t.Fatalf("Redeem after restart: %v", err)
	}
	if _, err := e2.Redeem(ctx, r.ID, key); !errors.Is(err, approval.ErrConsumed) {
		t.Fatalf("second Redeem: %v", err)
	}
}

func TestApprovalStoreContract(t *testing.T) {
	storetest.RunApprovalStore(t, func(t *testing.T) approval.Store {
		s, err := NewApprovals(context.Background(), pgtest.NewPool(t))
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

type approvalNopRecorder struct{}

func (approvalNopRecorder) RecordApproval(context.Context, approval.Event) error { return nil }

// TestApprovalWaitAcrossReplicas: an agent long-polls on one replica while a human approves on
// another; the LISTEN/NOTIFY notifier wakes the waiter.
func TestApprovalWaitAcrossReplicas(t *testing.T) {
	pool := pgtest.NewPool(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	replica := func() (*approval.Engine, *ApprovalNotifier) {
		s, err := NewApprovals(ctx, pool)
		if err != nil {
			t.Fatal(err)
		}
		n := NewApprovalNotifier(pool, func(err error) { t.Logf("notifier: %v", err) })
		e, err := approval.New(s, approvalNopRecorder{}, approval.WithNotifier(n))
		if err != nil {
			t.Fatal(err)
		}
		return e, n
	}
	a, na := replica()
	b, nb := replica()
	baseline := goleak.IgnoreCurrent() // the pool's own goroutines, closed at cleanup
	runCtx, stop := context.WithCancel(ctx)
	var running sync.WaitGroup
	defer func() {
		stop()
		running.Wait() // the listeners end with their context
		goleak.VerifyNone(t, baseline)
	}()
	for _, n := range []*ApprovalNotifier{na, nb} {
		running.Go(func() { n.Run(runCtx) })
		select {
		case <-n.Ready():
		case <-ctx.Done():
			t.Fatal("notifier never listened")
		}
	}

	params := json.RawMessage(`{"q":"select 1"}`)
	r, err := a.Request(ctx, approval.Input{
		Agent: "reporting-agent", User: "dave", Tool: "run_query", Params: params,
		RedactedParams: params, Rule: "queries_need_approval", PolicyVersion: "v1", Expiry: time.Hour,
	})
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan approval.Request, 1)
	go func() {
		w, err := a.Wait(ctx, r.ID)
		if err != nil {
			t.Errorf("Wait: %v", err)
		}
		got <- w
	}()
	// Give the waiter a moment to subscribe; correctness does not depend on it (Wait re-reads
	// the store after subscribing), only the path exercised does.
	time.Sleep(100 * time.Millisecond)
	approver := approval.Approver{ID: "alice", Kind: approval.Human, Scopes: []approval.Scope{{Agents: []string{".*"}, Tools: []string{".*"}}}}
	if _, err := b.Approve(ctx, r.ID, approver, "fine"); err != nil {
		t.Fatal(err)
	}
	select {
	case w := <-got:
		if w.State != approval.Approved {
			t.Fatalf("waiter saw %s", w.State)
		}
	case <-ctx.Done():
		t.Fatal("waiter on replica A never woke after approval on replica B")
	}
}
