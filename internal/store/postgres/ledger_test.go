package postgres

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"sync"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"testing"

	"github.com/portcullis-ai/portcullis/internal/ledger"
	"github.com/portcullis-ai/portcullis/internal/store/storetest"
)

// ledgerTestPool connects to PORTCULLIS_TEST_POSTGRES with a fresh schema as search_path,
// dropped at cleanup, so every test has its own ledger tables.
func ledgerTestPool(t *testing.T) *pgxpool.Pool {
	t.Helper()
	url := os.Getenv("PORTCULLIS_TEST_POSTGRES")
	if url == "" {
		t.Skip("PORTCULLIS_TEST_POSTGRES not set")
	}
	ctx := context.Background()
	var b [6]byte
	_, _ = rand.Read(b[:])
	schema := pgx.Identifier{"portcullis_ledger_test_" + hex.EncodeToString(b[:])}.Sanitize()
	admin, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer admin.Close(ctx)
	if _, err := admin.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatalf("create schema: %v", err)
	}
	t.Cleanup(func() {
		c, err := pgx.Connect(context.Background(), url)
		if err != nil {
			t.Errorf("cleanup connect: %v", err)
			return
		}
		defer c.Close(context.Background())
		if _, err := c.Exec(context.Background(), "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			t.Errorf("drop schema: %v", err)
		}
	})
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	cfg.ConnConfig.RuntimeParams["search_path"] = "portcullis_ledger_test_" + hex.EncodeToString(b[:])
	cfg.MaxConns = 8
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}

func TestLedgerStoreContract(t *testing.T) {
	storetest.RunLedgerStore(t, func(t *testing.T) ledger.Store {
		s, err := NewLedger(context.Background(), ledgerTestPool(t))
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

// The ledger itself on PostgreSQL: concurrent appends, a clean close, an intact verification.
func TestLedgerOnPostgres(t *testing.T) {
	st, err := NewLedger(context.Background(), ledgerTestPool(t))
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
