package postgres

// This file is the audit ledger's store on PostgreSQL, for gateway replicas that share one
// ledger. Records keep their exact hashed bytes (bytea). A commit is one transaction; with the
// server's default synchronous_commit=on it is durable when Commit returns.

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
`

// Ledger is a ledger.Store in PostgreSQL (tables in the pool's search_path schema).
type Ledger struct {
	pool *pgxpool.Pool
}

var _ ledger.Store = (*Ledger)(nil)

// NewLedger creates the ledger tables if needed and returns the store.
func NewLedger(ctx context.Context, pool *pgxpool.Pool) (*Ledger, error) {
	if err := migrate(ctx, pool, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, ledgerSchema)
		return err
	}); err != nil {
		return nil, fmt.Errorf("postgres ledger store: create schema: %w", err)
	}
	return &Ledger{pool: pool}, nil
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
	return &Ledger{pool: pool}, nil
}

// Commit implements ledger.Store. Two writers racing for the same seq meet on the primary
// key: the loser's whole transaction fails with ledger.ErrConflict.
func (s *Ledger) Commit(ctx context.Context, recs []ledger.Entry, cp *ledger.StoredCheckpoint) error {
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var next int64
		if err := tx.QueryRow(ctx, "SELECT COALESCE(MAX(seq)+1, 0) FROM ledger_records").Scan(&next); err != nil {
			return err
		}
		seqs := make([]int64, len(recs))
		datas := make([][]byte, len(recs))
		for i, r := range recs {
			if r.Seq != uint64(next)+uint64(i) {
				return fmt.Errorf("record %d at size %d: %w", r.Seq, next+int64(i), ledger.ErrConflict)
			}
			seqs[i], datas[i] = int64(r.Seq), r.Data
		}
		if len(recs) > 0 {
			if _, err := tx.Exec(ctx, "INSERT INTO ledger_records(seq, data) SELECT * FROM unnest($1::bigint[], $2::bytea[])", seqs, datas); err != nil {
				return err
			}
		}
		if cp != nil {
			if cp.Size > uint64(next)+uint64(len(recs)) {
				return fmt.Errorf("checkpoint of size %d beyond %d records", cp.Size, uint64(next)+uint64(len(recs)))
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
	})
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "23505" { // unique_violation: another writer took the seq
		return fmt.Errorf("postgres ledger commit: %w: %v", ledger.ErrConflict, err)
	}
	if err != nil {
		return fmt.Errorf("postgres ledger commit: %w", err)
	}
	return nil
}

// Size implements ledger.Store.
func (s *Ledger) Size(ctx context.Context) (uint64, error) {
	var n int64
	if err := s.pool.QueryRow(ctx, "SELECT COALESCE(MAX(seq)+1, 0) FROM ledger_records").Scan(&n); err != nil {
		return 0, fmt.Errorf("postgres ledger size: %w", err)
	}
	return uint64(n), nil
}

const scanPage = 8192

// Scan implements ledger.Store, a page at a time.
func (s *Ledger) Scan(ctx context.Context, from uint64, fn func(ledger.Entry) error) error {
	for {
		rows, err := s.pool.Query(ctx, "SELECT seq, data FROM ledger_records WHERE seq >= $1 ORDER BY seq LIMIT $2", int64(from), scanPage)
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
	var c ledger.StoredCheckpoint
	var size int64
	err := s.pool.QueryRow(ctx, "SELECT size, note, frontier FROM ledger_checkpoints ORDER BY id DESC LIMIT 1").Scan(&size, &c.Note, &c.Frontier)
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

// Close implements ledger.Store. The pool belongs to the caller and stays open.
func (s *Ledger) Close() error { return nil }
