package postgres

import (
	"context"
	"crypto/sha256"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/portcullis-ai/portcullis/internal/console"
	"github.com/portcullis-ai/portcullis/internal/store/postgres/pgtest"
	"github.com/portcullis-ai/portcullis/internal/store/storetest"
)

var _ console.SessionStore = (*ConsoleSessions)(nil)

func TestConsoleSessionsContract(t *testing.T) {
	storetest.RunConsoleSessions(t, func(t *testing.T) func() console.SessionStore {
		dsn, schema := pgtest.Schema(t)
		pool := pgtest.Pool(t, dsn, schema)
		return func() console.SessionStore {
			st, err := NewConsoleSessions(context.Background(), pool)
			if err != nil {
				t.Fatal(err)
			}
			return st
		}
	})
}

// queryCounter counts the statements a pool sends.
type queryCounter struct{ n atomic.Int64 }

func (q *queryCounter) TraceQueryStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryStartData) context.Context {
	q.n.Add(1)
	return ctx
}

func (q *queryCounter) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

// Touch is one statement — one round trip — whatever it finds: a live session, an expired one
// (removed in the same statement), or none.
func TestConsoleSessionsTouchIsOneStatement(t *testing.T) {
	ctx := context.Background()
	dsn, schema := pgtest.Schema(t)
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	cfg.ConnConfig.RuntimeParams["search_path"] = schema
	qc := &queryCounter{}
	cfg.ConnConfig.Tracer = qc
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	st, err := NewConsoleSessions(ctx, pool)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	key := sha256.Sum256([]byte("tok"))
	if ok, err := st.Create(ctx, key, []byte("d"), t0, t0.Add(time.Minute), t0.Add(time.Hour), 10); err != nil || !ok {
		t.Fatalf("Create: %v %v", ok, err)
	}
	for _, tc := range []struct {
		name string
		key  [sha256.Size]byte
		at   time.Time
		idle time.Duration
		live bool
	}{
		{"live, idle moved", key, t0.Add(time.Second), time.Minute, true},
		{"live, a look", key, t0.Add(2 * time.Second), 0, true},
		{"none", sha256.Sum256([]byte("other")), t0, time.Minute, false},
		{"none, a look", sha256.Sum256([]byte("other")), t0, 0, false},
		{"expired, removed", key, t0.Add(2 * time.Hour), time.Minute, false},
	} {
		before := qc.n.Load()
		data, err := st.Touch(ctx, tc.key, tc.at, tc.idle)
		if err != nil || (data != nil) != tc.live {
			t.Fatalf("%s: Touch = %q, %v", tc.name, data, err)
		}
		if n := qc.n.Load() - before; n != 1 {
			t.Errorf("%s: Touch sent %d statements, want 1", tc.name, n)
		}
	}
	var left int
	if err := pool.QueryRow(ctx, "SELECT count(*) FROM console_sessions").Scan(&left); err != nil || left != 0 {
		t.Fatalf("the expired session was not removed: %d rows, %v", left, err)
	}
}
