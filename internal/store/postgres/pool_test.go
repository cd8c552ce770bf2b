package postgres

import (
	"context"
	"sync"
	"testing"

	"github.com/portcullis-ai/portcullis/internal/store/postgres/pgtest"
)

// Replicas starting together on an empty database all come up: creating the schema and the
// tables is serialised (concurrent CREATE … IF NOT EXISTS can fail on the catalog's indexes).
func TestReplicasStartTogether(t *testing.T) {
	dsn, schema := pgtest.Name(t)
	const replicas = 6
	var wg sync.WaitGroup
	errc := make(chan error, replicas)
	start := make(chan struct{})
	for range replicas {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			ctx := context.Background()
			pool, err := Connect(ctx, dsn, PoolOptions{Schema: schema, CreateSchema: true, MaxConns: 2})
			if err != nil {
				errc <- err
				return
			}
			defer pool.Close()
			if _, err := NewLedger(ctx, pool); err != nil {
				errc <- err
				return
			}
			if _, err := NewApprovals(ctx, pool); err != nil {
				errc <- err
			}
		}()
	}
	close(start)
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Error(err)
	}
}

// A reader never creates what it expected to find.
func TestOpenLedgerNeedsTables(t *testing.T) {
	dsn, schema := pgtest.Schema(t)
	if _, err := OpenLedger(context.Background(), pgtest.Pool(t, dsn, schema)); err == nil {
		t.Fatal("OpenLedger on an empty schema succeeded")
	}
	if _, err := NewLedger(context.Background(), pgtest.Pool(t, dsn, schema)); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenLedger(context.Background(), pgtest.Pool(t, dsn, schema)); err != nil {
		t.Errorf("OpenLedger after NewLedger: %v", err)
	}
}
