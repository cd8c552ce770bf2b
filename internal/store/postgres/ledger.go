package postgres

// This file is the audit ledger's store on PostgreSQL, for gateway replicas that share one
// ledger. Records keep their exact hashed bytes (bytea). A commit is one transaction; with the
// server's default synchronous_commit=on it is durable when Commit returns. Replicas commit
// through CommitExclusive (ledger.SharedStore), serialised by a transaction-level advisory
// lock on the ledger's table.

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/portcullis-ai/portcullis/internal/ledger"
)

const ledgerSchema = `
CREATE TABLE IF NOT EXISTS ledger_records (
	seq  BIGINT PRIMARY KEY CHECK (seq >= 0),
	data BYTEA NOT NULL
);
CREATE TABLE IF NOT EXISTS ledger_checkpoints (
	id       BIGSERIAL PRIMARY KEY,
	size     BIGINT NOT NULL,
	note     BYTEA NOT NULL,
	frontier BYTEA NOT NULL
);
CREATE TABLE IF NOT EXISTS ledger_base (
	id   INT PRIMARY KEY CHECK (id = 1),
	size BIGINT NOT NULL,
	base BYTEA NOT NULL
);
`

// Ledger is a ledger.SharedStore in PostgreSQL (tables in the pool's search_path schema).
type Ledger struct {
	pool *pgxpool.Pool
	lock int64 // the writer lock's advisory key: this ledger's table, so two schemas never contend
	// noBase: tables made before ledger_base existed, opened by a reader (never pruned).
	noBase bool
}

var _ ledger.SharedStore = (*Ledger)(nil)

// writerLockSpace is the high half of writer lock keys; the low half is the table's oid.
const writerLockSpace = 0x706f7274 // "port"

// querier is what reads need: a pool, or the transaction of CommitExclusive.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

func newLedger(ctx context.Context, pool *pgxpool.Pool) (*Ledger, error) {
	var oid uint32
	var hasBase bool
	if err := pool.QueryRow(ctx, "SELECT 'ledger_records'::regclass::oid, to_regclass('ledger_base') IS NOT NULL").Scan(&oid, &hasBase); err != nil {
		return nil, fmt.Errorf("postgres ledger store: %w", err)
	}
	return &Ledger{pool: pool, lock: writerLockSpace<<32 | int64(oid), noBase: !hasBase}, nil
}

// NewLedger creates the ledger tables if needed and returns the store.
func NewLedger(ctx context.Context, pool *pgxpool.Pool) (*Ledger, error) {
	if err := migrate(ctx, pool, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, ledgerSchema)
		return err
	}); err != nil {
		return nil, fmt.Errorf("postgres ledger store: create schema: %w", err)
	}
	return newLedger(ctx, pool)
}

// OpenLedger returns the store on tables that already exist (for readers such as
// `portcullis audit`, which must not create an empty ledger where they expected one).
func OpenLedger(ctx context.Context, pool *pgxpool.Pool) (*Ledger, error) {
	var exists bool
	if err := pool.QueryRow(ctx, "SELECT to_regclass('ledger_records') IS NOT NULL AND to_regclass('ledger_checkpoints') IS NOT NULL").Scan(&exists); err != nil {
		return nil, fmt.Errorf("postgres ledger store: %w", err)
	}
	if !exists {
		return nil, errors.New("postgres ledger store: no ledger tables in the schema searched (check the connection string and store.postgres.schema)")
	}
	return newLedger(ctx, pool)
}

// Commit implements ledger.Store. Two writers racing for the same seq meet on the primary
// key: the loser's whole transaction fails with ledger.ErrConflict.
func (s *Ledger) Commit(ctx context.Context, recs []ledger.Entry, cp *ledger.StoredCheckpoint) error {
	return commitErr(pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error { return insert(ctx, tx, recs, cp) }))
}

// CommitExclusive implements ledger.SharedStore: the transaction first takes the writer lock
// (pg_advisory_xact_lock, released when it commits or rolls back); under READ COMMITTED every
// later statement sees what the previous holders committed.
func (s *Ledger) CommitExclusive(ctx context.Context, fn func(ledger.View) ([]ledger.Entry, *ledger.StoredCheckpoint, error)) error {
	return commitErr(pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", s.lock); err != nil {
			return err
		}
		recs, cp, err := fn(view{tx})
		if err != nil {
			return err
		}
		if len(recs) == 0 && cp == nil {
			return nil
		}
		return insert(ctx, tx, recs, cp)
	}))
}

func commitErr(err error) error {
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "23505" { // unique_violation: another writer took the seq
		return fmt.Errorf("postgres ledger commit: %w: %v", ledger.ErrConflict, err)
	}
	if err != nil {
		return fmt.Errorf("postgres ledger commit: %w", err)
	}
	return nil
}

// insert appends recs (which must start at the current size) and cp in tx.
func insert(ctx context.Context, tx pgx.Tx, recs []ledger.Entry, cp *ledger.StoredCheckpoint) error {
	next, err := logSize(ctx, tx, false)
	if err != nil {
		return err
	}
	seqs := make([]int64, len(recs))
	datas := make([][]byte, len(recs))
	for i, r := range recs {
		if r.Seq != next+uint64(i) {
			return fmt.Errorf("record %d at size %d: %w", r.Seq, next+uint64(i), ledger.ErrConflict)
		}
		seqs[i], datas[i] = int64(r.Seq), r.Data
	}
	if len(recs) > 0 {
		if _, err := tx.Exec(ctx, "INSERT INTO ledger_records(seq, data) SELECT * FROM unnest($1::bigint[], $2::bytea[])", seqs, datas); err != nil {
			return err
		}
	}
	if cp != nil {
		if cp.Size > next+uint64(len(recs)) {
			return fmt.Errorf("checkpoint of size %d beyond %d records", cp.Size, next+uint64(len(recs)))
		}
		frontier := cp.Frontier
		if frontier == nil {
			frontier = []byte{}
		}
		if _, err := tx.Exec(ctx, "INSERT INTO ledger_checkpoints(size, note, frontier) VALUES ($1, $2, $3)", int64(cp.Size), cp.Note, frontier); err != nil {
			return err
		}
	}
	return nil
}

// view reads the log inside CommitExclusive's transaction.
type view struct{ tx pgx.Tx }

func (v view) Size(ctx context.Context) (uint64, error) {
	n, err := logSize(ctx, v.tx, false)
	if err != nil {
		return 0, fmt.Errorf("postgres ledger size: %w", err)
	}
	return n, nil
}

func (v view) Scan(ctx context.Context, from uint64, fn func(ledger.Entry) error) error {
	return scan(ctx, v.tx, from, fn)
}

func (v view) LatestCheckpoint(ctx context.Context) (ledger.StoredCheckpoint, bool, error) {
	return latestCheckpoint(ctx, v.tx)
}

// logSize is the next seq: one past the highest record, or the base of a log pruned to it.
func logSize(ctx context.Context, q querier, noBase bool) (uint64, error) {
	sql := "SELECT GREATEST(COALESCE((SELECT MAX(seq)+1 FROM ledger_records), 0), COALESCE((SELECT size FROM ledger_base WHERE id = 1), 0))"
	if noBase {
		sql = "SELECT COALESCE(MAX(seq)+1, 0) FROM ledger_records"
	}
	var n int64
	if err := q.QueryRow(ctx, sql).Scan(&n); err != nil {
		return 0, err
	}
	return uint64(n), nil
}

// Size implements ledger.Store.
func (s *Ledger) Size(ctx context.Context) (uint64, error) {
	n, err := logSize(ctx, s.pool, s.noBase)
	if err != nil {
		return 0, fmt.Errorf("postgres ledger size: %w", err)
	}
	return n, nil
}

const scanPage = 8192

// Scan implements ledger.Store, a page at a time.
func (s *Ledger) Scan(ctx context.Context, from uint64, fn func(ledger.Entry) error) error {
	return scan(ctx, s.pool, from, fn)
}

func scan(ctx context.Context, q querier, from uint64, fn func(ledger.Entry) error) error {
	for {
		rows, err := q.Query(ctx, "SELECT seq, data FROM ledger_records WHERE seq >= $1 ORDER BY seq LIMIT $2", int64(from), scanPage)
		if err != nil {
			return fmt.Errorf("postgres ledger scan: %w", err)
		}
		n := 0
		for rows.Next() {
			raw := rows.RawValues()
			var seq int64
			if err := rows.Scan(&seq, nil); err != nil {
				rows.Close()
				return fmt.Errorf("postgres ledger scan: %w", err)
			}
			n++
			from = uint64(seq) + 1
			if err := fn(ledger.Entry{Seq: uint64(seq), Data: raw[1]}); err != nil {
				rows.Close()
				return err
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("postgres ledger scan: %w", err)
		}
		if n < scanPage {
			return nil
		}
	}
}

// Checkpoints implements ledger.Store.
func (s *Ledger) Checkpoints(ctx context.Context, fn func(ledger.StoredCheckpoint) error) error {
	rows, err := s.pool.Query(ctx, "SELECT size, note, frontier FROM ledger_checkpoints ORDER BY id")
	if err != nil {
		return fmt.Errorf("postgres ledger checkpoints: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var c ledger.StoredCheckpoint
		var size int64
		if err := rows.Scan(&size, &c.Note, &c.Frontier); err != nil {
			return fmt.Errorf("postgres ledger checkpoints: %w", err)
		}
		c.Size = uint64(size)
		if err := fn(c); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("postgres ledger checkpoints: %w", err)
	}
	return nil
}

// LatestCheckpoint implements ledger.Store.
func (s *Ledger) LatestCheckpoint(ctx context.Context) (ledger.StoredCheckpoint, bool, error) {
	return latestCheckpoint(ctx, s.pool)
}

func latestCheckpoint(ctx context.Context, q querier) (ledger.StoredCheckpoint, bool, error) {
	var c ledger.StoredCheckpoint
	var size int64
	err := q.QueryRow(ctx, "SELECT size, note, frontier FROM ledger_checkpoints ORDER BY id DESC LIMIT 1").Scan(&size, &c.Note, &c.Frontier)
	if errors.Is(err, pgx.ErrNoRows) {
		return c, false, nil
	}
	if err != nil {
		return c, false, fmt.Errorf("postgres ledger latest checkpoint: %w", err)
	}
	c.Size = uint64(size)
	return c, true, nil
}

// Trim implements ledger.Store.
func (s *Ledger) Trim(ctx context.Context, from uint64) error {
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var covered int64
		if err := tx.QueryRow(ctx, "SELECT COALESCE(MAX(size), 0) FROM ledger_checkpoints").Scan(&covered); err != nil {
			return err
		}
		if uint64(covered) > from {
			return fmt.Errorf("from %d (checkpoint covers %d): %w", from, covered, ledger.ErrTrimCheckpointed)
		}
		_, err := tx.Exec(ctx, "DELETE FROM ledger_records WHERE seq >= $1", int64(from))
		return err
	})
	if err != nil {
		return fmt.Errorf("postgres ledger trim: %w", err)
	}
	return nil
}

var _ ledger.Pruner = (*Ledger)(nil)

// Prune implements ledger.Pruner in one transaction under the writer lock, so no replica
// commits or catches up half-way through it.
func (s *Ledger) Prune(ctx context.Context, size uint64, base []byte) error {
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", s.lock); err != nil {
			return err
		}
		var cur int64
		if err := tx.QueryRow(ctx, "SELECT COALESCE((SELECT size FROM ledger_base WHERE id = 1), 0)").Scan(&cur); err != nil {
			return err
		}
		if size <= uint64(cur) {
			return nil
		}
		n, err := logSize(ctx, tx, false)
		if err != nil {
			return err
		}
		var cps int
		if err := tx.QueryRow(ctx, "SELECT COUNT(*) FROM ledger_checkpoints WHERE size = $1", int64(size)).Scan(&cps); err != nil {
			return err
		}
		if size > n || cps == 0 {
			return fmt.Errorf("to %d: %w", size, ledger.ErrPruneNoCheckpoint)
		}
		for _, q := range []string{"DELETE FROM ledger_records WHERE seq < $1", "DELETE FROM ledger_checkpoints WHERE size < $1"} {
			if _, err := tx.Exec(ctx, q, int64(size)); err != nil {
				return err
			}
		}
		_, err = tx.Exec(ctx, "INSERT INTO ledger_base(id, size, base) VALUES (1, $1, $2) ON CONFLICT (id) DO UPDATE SET size = EXCLUDED.size, base = EXCLUDED.base", int64(size), base)
		return err
	})
	if err != nil {
		return fmt.Errorf("postgres ledger prune: %w", err)
	}
	return nil
}

// Base implements ledger.Pruner.
func (s *Ledger) Base(ctx context.Context) (uint64, []byte, bool, error) {
	if s.noBase {
		return 0, nil, false, nil
	}
	var size int64
	var b []byte
	err := s.pool.QueryRow(ctx, "SELECT size, base FROM ledger_base WHERE id = 1").Scan(&size, &b)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil, false, nil
	}
	if err != nil {
		return 0, nil, false, fmt.Errorf("postgres ledger base: %w", err)
	}
	return uint64(size), b, true, nil
}

// Close implements ledger.Store. The pool belongs to the caller and stays open.
func (s *Ledger) Close() error { return nil }
