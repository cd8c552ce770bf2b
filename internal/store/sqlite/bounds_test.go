package sqlite

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"
)

// Every connection of every embedded store runs with the page cache and mmap bounds, and each
// pool holds a fixed number of connections that it keeps open: SQLite's memory is outside the Go
// heap, so these are the only bounds on it (bounds.go).
func TestConnectionBounds(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()

	led, err := OpenLedger(filepath.Join(dir, "ledger.db"))
	if err != nil {
		t.Fatal(err)
	}
	idx, err := OpenAuditIndex(filepath.Join(dir, "index.db"), led)
	if err != nil {
		t.Fatal(err)
	}
	defer idx.Close()
	apr, err := OpenApprovals(ctx, filepath.Join(dir, "approvals.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer apr.Close()
	non, err := OpenNonces(ctx, filepath.Join(dir, "nonces.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer non.Close()

	checkPool := func(t *testing.T, db *sql.DB, conns int) {
		t.Helper()
		if got := db.Stats().MaxOpenConnections; got != conns {
			t.Fatalf("pool of at most %d connections, want %d", got, conns)
		}
		// Hold every connection the pool may open at once, so that each is checked, not the one
		// a sequential loop would get back every time.
		held := make([]*sql.Conn, conns)
		for i := range held {
			c, err := db.Conn(ctx)
			if err != nil {
				t.Fatal(err)
			}
			held[i] = c
		}
		for i, c := range held {
			var cache, mmap int64
			if err := c.QueryRowContext(ctx, "PRAGMA cache_size").Scan(&cache); err != nil {
				t.Fatal(err)
			}
			if err := c.QueryRowContext(ctx, "PRAGMA mmap_size").Scan(&mmap); err != nil {
				t.Fatal(err)
			}
			if cache != -cacheKiB || mmap != 0 {
				t.Errorf("connection %d: cache_size %d, mmap_size %d; want %d, 0", i, cache, mmap, -cacheKiB)
			}
		}
		for _, c := range held {
			c.Close()
		}
		// Released and used again, none was closed for being idle (and reopened).
		for range 3 * conns {
			if _, err := db.ExecContext(ctx, "SELECT 1"); err != nil {
				t.Fatal(err)
			}
		}
		if st := db.Stats(); st.MaxIdleClosed != 0 || st.MaxIdleTimeClosed != 0 || st.MaxLifetimeClosed != 0 || st.OpenConnections != conns {
			t.Errorf("after release: %d open, %d closed as idle beyond the pool, %d for idle time, %d for lifetime; want %d open, none closed",
				st.OpenConnections, st.MaxIdleClosed, st.MaxIdleTimeClosed, st.MaxLifetimeClosed, conns)
		}
	}
	t.Run("ledger", func(t *testing.T) { checkPool(t, led.db, ledgerConns) })
	t.Run("audit index", func(t *testing.T) { checkPool(t, idx.db, auditIndexConns) })
	t.Run("approvals", func(t *testing.T) { checkPool(t, apr.db, approvalConns) })
	t.Run("nonces", func(t *testing.T) { checkPool(t, non.db, nonceConns) })

	if err := led.Close(); err != nil {
		t.Fatal(err)
	}
	ro, err := OpenLedgerReadOnly(filepath.Join(dir, "ledger.db"), false)
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	t.Run("ledger read-only", func(t *testing.T) { checkPool(t, ro.db, ledgerConns-1) })
}
