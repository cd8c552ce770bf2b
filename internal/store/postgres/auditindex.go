package postgres

// This file is the audit index's store (auditindex.Store) on PostgreSQL, in tables beside the
// ledger's. Replicas sharing the ledger may each run an indexer: a batch is written under a
// row lock on the watermark (SELECT … FOR UPDATE), so one replica's batch waits for another's
// and then finds the watermark moved (auditindex.ErrConflict) instead of writing it twice.

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/portcullis-ai/portcullis/internal/auditindex"
	"github.com/portcullis-ai/portcullis/internal/ledger"
)

const auditIndexSchema = `
CREATE TABLE IF NOT EXISTS ledger_index_state (
	id      INT PRIMARY KEY CHECK (id = 1),
	next    BIGINT NOT NULL,
	last    BYTEA,
	skipped BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS ledger_index_postings (
	field SMALLINT NOT NULL,
	term  TEXT NOT NULL,
	block BIGINT NOT NULL,
	seqs  BYTEA NOT NULL,
	PRIMARY KEY (field, term, block)
);
CREATE TABLE IF NOT EXISTS ledger_index_spans (
	block    BIGINT PRIMARY KEY,
	min_time BIGINT NOT NULL,
	max_time BIGINT NOT NULL
);
ALTER TABLE ledger_index_state ADD COLUMN IF NOT EXISTS generation BIGINT NOT NULL DEFAULT 0;
INSERT INTO ledger_index_state(id, next, last, skipped) VALUES (1, 0, NULL, 0) ON CONFLICT (id) DO NOTHING;
`

// AuditIndex is the audit index of a PostgreSQL ledger.
type AuditIndex struct {
	pool *pgxpool.Pool
	led  *Ledger
}

var _ auditindex.Store = (*AuditIndex)(nil)

// NewAuditIndex creates the index's tables if needed and returns the index of led.
func NewAuditIndex(ctx context.Context, pool *pgxpool.Pool, led *Ledger) (*AuditIndex, error) {
	if err := migrate(ctx, pool, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, auditIndexSchema)
		return err
	}); err != nil {
		return nil, fmt.Errorf("postgres audit index: create schema: %w", err)
	}
	return &AuditIndex{pool: pool, led: led}, nil
}

// State implements auditindex.Reader.
func (x *AuditIndex) State(ctx context.Context) (auditindex.State, error) {
	var st auditindex.State
	var next, skipped, gen int64
	if err := x.pool.QueryRow(ctx, "SELECT next, last, skipped, generation FROM ledger_index_state WHERE id = 1").Scan(&next, &st.Last, &skipped, &gen); err != nil {
		return st, fmt.Errorf("audit index state: %w", err)
	}
	st.Next, st.Skipped, st.Generation = uint64(next), uint64(skipped), uint64(gen)
	return st, nil
}

// Postings implements auditindex.Reader.
func (x *AuditIndex) Postings(ctx context.Context, t auditindex.Term, maxBlock uint64, limit int) ([]auditindex.Posting, error) {
	rows, err := x.pool.Query(ctx, "SELECT block, seqs FROM ledger_index_postings WHERE field = $1 AND term = $2 AND block <= $3 ORDER BY block DESC LIMIT $4",
		int16(t.Field), t.Value, int64(maxBlock), limit)
	if err != nil {
		return nil, fmt.Errorf("audit index postings: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (auditindex.Posting, error) {
		var p auditindex.Posting
		var b int64
		err := r.Scan(&b, &p.Seqs)
		p.Block = uint64(b)
		return p, err
	})
	if err != nil {
		return nil, fmt.Errorf("audit index postings: %w", err)
	}
	return out, nil
}

// Spans implements auditindex.Reader.
func (x *AuditIndex) Spans(ctx context.Context, maxBlock uint64, limit int) ([]auditindex.Span, error) {
	rows, err := x.pool.Query(ctx, "SELECT block, min_time, max_time FROM ledger_index_spans WHERE block <= $1 ORDER BY block DESC LIMIT $2", int64(maxBlock), limit)
	if err != nil {
		return nil, fmt.Errorf("audit index spans: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (auditindex.Span, error) {
		var s auditindex.Span
		var b int64
		err := r.Scan(&b, &s.Min, &s.Max)
		s.Block = uint64(b)
		return s, err
	})
	if err != nil {
		return nil, fmt.Errorf("audit index spans: %w", err)
	}
	return out, nil
}

// Records implements auditindex.Reader: one query for all of seqs.
func (x *AuditIndex) Records(ctx context.Context, seqs []uint64, fn func(ledger.Entry) error) error {
	if len(seqs) == 0 {
		return nil
	}
	arg := make([]int64, len(seqs))
	for i, s := range seqs {
		arg[i] = int64(s)
	}
	q := "SELECT seq, data FROM ledger_records WHERE seq = ANY($1)"
	if !x.led.noBase {
		q += " AND seq >= COALESCE((SELECT size FROM ledger_base WHERE id = 1), 0)"
	}
	rows, err := x.pool.Query(ctx, q, arg)
	if err != nil {
		return fmt.Errorf("audit index records: %w", err)
	}
	got := make(map[uint64][]byte, len(seqs))
	for rows.Next() {
		var seq int64
		var data []byte
		if err := rows.Scan(&seq, &data); err != nil {
			rows.Close()
			return fmt.Errorf("audit index records: %w", err)
		}
		got[uint64(seq)] = data
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("audit index records: %w", err)
	}
	return auditindex.InOrder(seqs, got, fn)
}

// errMoved carries auditindex.ErrConflict out of the transaction (which it rolls back).
var errMoved = auditindex.ErrConflict

// Write implements auditindex.Store.
func (x *AuditIndex) Write(ctx context.Context, from uint64, b *auditindex.Batch) error {
	err := pgx.BeginFunc(ctx, x.pool, func(tx pgx.Tx) error {
		var next, gen int64
		if err := tx.QueryRow(ctx, "SELECT next, generation FROM ledger_index_state WHERE id = 1 FOR UPDATE").Scan(&next, &gen); err != nil {
			return err
		}
		if uint64(next) != from || uint64(gen) != b.State.Generation {
			return errMoved
		}
		n := len(b.Postings)
		fields, terms, blocks, blobs := make([]int16, 0, n), make([]string, 0, n), make([]int64, 0, n), make([][]byte, 0, n)
		for k := range b.Postings {
			fields, terms, blocks = append(fields, int16(k.Field)), append(terms, k.Value), append(blocks, int64(k.Block))
		}
		// Only the block the watermark is in can hold rows already (a batch ends at a block's end).
		stored := map[auditindex.Term][]byte{}
		if from%auditindex.BlockSize != 0 {
			lf, lt := fields, terms
			if b.Stored != nil { // look up only the rows the indexer knows exist
				lf, lt = nil, nil
				for i := range fields {
					if b.Stored[auditindex.Term{Field: auditindex.Field(fields[i]), Value: terms[i]}] {
						lf, lt = append(lf, fields[i]), append(lt, terms[i])
					}
				}
			}
			rows, err := tx.Query(ctx, `SELECT p.field, p.term, p.seqs FROM ledger_index_postings p
				JOIN unnest($1::smallint[], $2::text[]) AS k(field, term) ON p.field = k.field AND p.term = k.term WHERE p.block = $3`,
				lf, lt, int64(from/auditindex.BlockSize))
			if err != nil {
				return err
			}
			for rows.Next() {
				var f int16
				var t string
				var s []byte
				if err := rows.Scan(&f, &t, &s); err != nil {
					rows.Close()
					return err
				}
				stored[auditindex.Term{Field: auditindex.Field(f), Value: t}] = s
			}
			rows.Close()
			if err := rows.Err(); err != nil {
				return err
			}
		}
		for i := range fields {
			k := auditindex.Key{Term: auditindex.Term{Field: auditindex.Field(fields[i]), Value: terms[i]}, Block: uint64(blocks[i])}
			var old []byte
			if k.Block == from/auditindex.BlockSize {
				old = stored[k.Term]
			}
			blob, err := auditindex.MergeBlob(old, b.Postings[k])
			if err != nil {
				return err
			}
			blobs = append(blobs, blob)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO ledger_index_postings(field, term, block, seqs)
			SELECT * FROM unnest($1::smallint[], $2::text[], $3::bigint[], $4::bytea[])
			ON CONFLICT (field, term, block) DO UPDATE SET seqs = EXCLUDED.seqs`, fields, terms, blocks, blobs); err != nil {
			return err
		}
		var sb, smin, smax []int64
		for _, s := range b.Spans {
			sb, smin, smax = append(sb, int64(s.Block)), append(smin, s.Min), append(smax, s.Max)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO ledger_index_spans(block, min_time, max_time)
			SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::bigint[])
			ON CONFLICT (block) DO UPDATE SET min_time = LEAST(ledger_index_spans.min_time, EXCLUDED.min_time),
				max_time = GREATEST(ledger_index_spans.max_time, EXCLUDED.max_time)`, sb, smin, smax); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, "UPDATE ledger_index_state SET next = $1, last = $2, skipped = $3 WHERE id = 1",
			int64(b.State.Next), b.State.Last, int64(b.State.Skipped))
		return err
	})
	switch {
	case errors.Is(err, errMoved):
		return auditindex.ErrConflict
	case err != nil:
		return fmt.Errorf("audit index write: %w", err)
	}
	return nil
}

// Reset implements auditindex.Store.
// The watermark's row lock first, so a reset never interleaves with another replica's batch.
func (x *AuditIndex) Reset(ctx context.Context) error {
	return x.exec(ctx, "audit index reset", nil, "SELECT 1 FROM ledger_index_state WHERE id = 1 FOR UPDATE",
		"DELETE FROM ledger_index_postings", "DELETE FROM ledger_index_spans", "UPDATE ledger_index_state SET next = 0, last = NULL, skipped = 0, generation = generation + 1 WHERE id = 1")
}

// Drop implements auditindex.Store.
func (x *AuditIndex) Drop(ctx context.Context, block uint64) error {
	return x.exec(ctx, "audit index drop", []any{int64(block)}, "DELETE FROM ledger_index_postings WHERE block < $1", "DELETE FROM ledger_index_spans WHERE block < $1")
}

// exec runs stmts in one transaction, each with args.
func (x *AuditIndex) exec(ctx context.Context, what string, args []any, stmts ...string) error {
	err := pgx.BeginFunc(ctx, x.pool, func(tx pgx.Tx) error {
		for _, q := range stmts {
			if _, err := tx.Exec(ctx, q, args...); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}
