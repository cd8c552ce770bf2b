package postgres

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/goleak"

	"github.com/portcullis-ai/portcullis/internal/approval"
	"github.com/portcullis-ai/portcullis/internal/store/storetest"
)

// approvalTestPool connects to PORTCULLIS_TEST_POSTGRES with a fresh schema as search_path,
// dropped at cleanup, so tests are isolated from each other and from other packages' tables.
func approvalTestPool(t *testing.T) *pgxpool.Pool {
	t.Helper()
	return approvalPoolOn(t, approvalTestSchema(t))
}

// approvalTestSchema creates a schema for one test, dropped at cleanup, and returns its name.
func approvalTestSchema(t *testing.T) string {
	t.Helper()
	url := os.Getenv("PORTCULLIS_TEST_POSTGRES")
	if url == "" {
		t.Skip("PORTCULLIS_TEST_POSTGRES not set")
	}
	ctx := context.Background()
	var b [6]byte
	_, _ = rand.Read(b[:])
	schema := "portcullis_test_" + hex.EncodeToString(b[:])
	admin, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer admin.Close(ctx)
	if _, err := admin.Exec(ctx, "CREATE SCHEMA "+pgx.Identifier{schema}.Sanitize()); err != nil {
		t.Fatalf("create schema: %v", err)
	}
	t.Cleanup(func() {
		c, err := pgx.Connect(context.Background(), url)
		if err != nil {
			t.Errorf("cleanup connect: %v", err)
			return
		}
		defer c.Close(context.Background())
		if _, err := c.Exec(context.Background(), "DROP SCHEMA "+pgx.Identifier{schema}.Sanitize()+" CASCADE"); err != nil {
			t.Errorf("drop schema: %v", err)
		}
	})
	return schema
}

// approvalPoolOn opens a pool whose connections use schema; it is closed at cleanup.
func approvalPoolOn(t *testing.T, schema string) *pgxpool.Pool {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(os.Getenv("PORTCULLIS_TEST_POSTGRES"))
	if err != nil {
		t.Fatal(err)
	}
	cfg.ConnConfig.RuntimeParams["search_path"] = schema
	cfg.MaxConns = 8
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// TestApprovalsSurviveRestart: pending requests outlive the process that created them.
func TestApprovalsSurviveRestart(t *testing.T) {
	ctx := context.Background()
	schema := approvalTestSchema(t)
	params := json.RawMessage(`{"rows":20000}`)
	in := approval.Input{Agent: "reporting-agent", User: "dave", Tool: "export_customer_data",
		Params: params, RedactedParams: params, Rule: "bulk_export", PolicyVersion: "v1"}

	first := approvalPoolOn(t, schema)
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

	second := approvalPoolOn(t, schema)
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
		s, err := NewApprovals(context.Background(), approvalTestPool(t))
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
	pool := approvalTestPool(t)
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
