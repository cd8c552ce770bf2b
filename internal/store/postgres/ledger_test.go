package postgres

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/portcullis-ai/portcullis/internal/ledger"
	"github.com/portcullis-ai/portcullis/internal/store/postgres/pgtest"
	"github.com/portcullis-ai/portcullis/internal/store/storetest"
)

func TestLedgerStoreContract(t *testing.T) {
	storetest.RunLedgerStore(t, func(t *testing.T) ledger.Store {
		s, err := NewLedger(context.Background(), pgtest.NewPool(t))
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

func TestLedgerRecovery(t *testing.T) {
	storetest.RunLedgerRecovery(t, func(t *testing.T) ledger.Store {
		s, err := NewLedger(context.Background(), pgtest.NewPool(t))
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

// Two handles on one schema, each with its own pool: two replicas.
func TestSharedStoreContract(t *testing.T) {
	storetest.RunSharedStore(t, replicaPair)
}

// Two ledgers appending at once to one PostgreSQL ledger, each through its own pool.
func TestReplicas(t *testing.T) {
	storetest.RunReplicas(t, replicaPair)
}

func replicaPair(t *testing.T) (ledger.SharedStore, ledger.SharedStore) {
	dsn, schema := pgtest.Schema(t)
	a, err := NewLedger(context.Background(), pgtest.Pool(t, dsn, schema))
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewLedger(context.Background(), pgtest.Pool(t, dsn, schema))
	if err != nil {
		t.Fatal(err)
	}
	return a, b
}

// The ledger itself on PostgreSQL: concurrent appends, a clean close, an intact verification.
func TestLedgerOnPostgres(t *testing.T) {
	st, err := NewLedger(context.Background(), pgtest.NewPool(t))
	if err != nil {
		t.Fatal(err)
	}
	keys, err := ledger.GenerateKeys(t.TempDir(), ledger.NewOrigin())
	if err != nil {
		t.Fatal(err)
	}
	vs, _, _ := keys.Verifiers()
	l, err := ledger.Open(context.Background(), ledger.Options{Store: st, Signer: keys.Signer, Verifiers: vs, CheckpointRecords: 50})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 20 {
				if _, err := l.Append(context.Background(), &ledger.Record{Kind: ledger.KindDecision, Decision: "allow", DecisionID: fmt.Sprintf("%d-%d", g, i)}); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if err := l.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	rep, err := ledger.Verify(context.Background(), st, ledger.VerifyOptions{Keys: keys.Public})
	if err != nil || !rep.Intact || rep.RecordsChecked != 322 {
		t.Errorf("verify = %+v, %v; want intact with 322 records", rep, err)
	}
}

// An attacker with write access to the database but not the key deletes checkpoints through
// SQL (and rewrites the tail they covered): verify reports it and the gateway, whose witness
// holds the latest checkpoint it signed, refuses to start on that store.
func TestTamperedLedgerOnPostgres(t *testing.T) {
	for _, tc := range []struct {
		name    string
		sql     string
		problem string
	}{
		{"all checkpoints deleted", `DELETE FROM ledger_checkpoints`, ledger.ProblemNoCheckpoint},
		{"last checkpoint deleted", `DELETE FROM ledger_checkpoints WHERE id = (SELECT max(id) FROM ledger_checkpoints)`, ledger.ProblemUnsignedTail},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			pool := pgtest.NewPool(t)
			st, err := NewLedger(ctx, pool)
			if err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			keys, err := ledger.GenerateKeys(dir, ledger.NewOrigin())
			if err != nil {
				t.Fatal(err)
			}
			vs, _, _ := keys.Verifiers()
			opts := ledger.Options{Store: st, Signer: keys.Signer, Verifiers: vs, CheckpointRecords: 10,
				WitnessFile: filepath.Join(dir, ledger.WitnessFile)}
			l, err := ledger.Open(ctx, opts)
			if err != nil {
				t.Fatal(err)
			}
			for i := range 25 {
				if _, err := l.Append(ctx, &ledger.Record{Kind: ledger.KindDecision, Decision: "allow", DecisionID: fmt.Sprint(i)}); err != nil {
					t.Fatal(err)
				}
			}
			if err := l.Close(ctx); err != nil {
				t.Fatal(err)
			}
			if _, err := pool.Exec(ctx, tc.sql); err != nil {
				t.Fatal(err)
			}
			rep, err := ledger.Verify(ctx, st, ledger.VerifyOptions{Keys: keys.Public, CheckpointRecords: 10})
			if err != nil || rep.Intact || rep.Problem != tc.problem {
				t.Errorf("verify = %+v, %v; want %s", rep, err, tc.problem)
			}
			if _, err := ledger.Open(ctx, opts); !errors.Is(err, ledger.ErrInconsistent) || !strings.Contains(err.Error(), ledger.WitnessFile) {
				t.Errorf("open on the tampered store = %v, want ErrInconsistent naming the witness", err)
			}
		})
	}
}

// Two replicas' retention at once, each into its own directory: one archiver at a time.
func TestArchiveLock(t *testing.T) {
	storetest.RunArchiveLock(t, func(t *testing.T) (ledger.Store, ledger.Store) {
		a, b := replicaPair(t)
		return a, b
	})
}

// The archive lock's session is set apart from the pool: a small pool (max_conns: 1 is valid)
// still serves the ledger, the approvals and the archiver's own queries while it is held.
func TestArchiveLockLeavesThePool(t *testing.T) {
	dsn, schema := pgtest.Schema(t)
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	cfg.ConnConfig.RuntimeParams["search_path"] = schema
	cfg.MaxConns = 1
	pool, err := pgxpool.NewWithConfig(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	st, err := NewLedger(t.Context(), pool)
	if err != nil {
		t.Fatal(err)
	}
	release, err := st.TryLockArchive(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	released := false
	defer func() { // before pool.Close, which waits for every connection to come back
		if !released {
			release()
		}
	}()
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
	defer cancel()
	if _, err := st.Size(ctx); err != nil {
		t.Fatalf("the ledger with the archive lock held: %v", err)
	}
	release()
	released = true
	again, err := st.TryLockArchive(t.Context())
	if err != nil {
		t.Fatalf("the lock was not released: %v", err)
	}
	again()
}
