package sqlite

// This file is the audit index's store (auditindex.Store): its own SQLite file beside the
// ledger's, so that indexing never takes the ledger file's write lock — a commit of the ledger
// never waits behind the indexer. The index can be rebuilt from the ledger, so it commits with
// synchronous=NORMAL: a power loss may lose its last batches (the watermark with them; they
// are indexed again), never the ledger's records.

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/portcullis-ai/portcullis/internal/auditindex"
	"github.com/portcullis-ai/portcullis/internal/ledger"
)

const auditIndexSchema = `
CREATE TABLE IF NOT EXISTS index_state (
	id      INTEGER PRIMARY KEY CHECK (id = 1),
	next    INTEGER NOT NULL,
	last    BLOB,
	skipped INTEGER NOT NULL,
	generation INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS index_postings (
	field INTEGER NOT NULL,
	term  TEXT NOT NULL,
	block INTEGER NOT NULL,
	seqs  BLOB NOT NULL,
	PRIMARY KEY (field, term, block)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS index_spans (
	block    INTEGER PRIMARY KEY,
	min_time INTEGER NOT NULL,
	max_time INTEGER NOT NULL
);
INSERT OR IGNORE INTO index_state(id, next, last, skipped) VALUES (1, 0, NULL, 0);
`

// AuditIndex is the audit index of a SQLite ledger, in a file of its own.
type AuditIndex struct {
	db  *sql.DB
	led *Ledger
}

var _ auditindex.Store = (*AuditIndex)(nil)

// OpenAuditIndex opens (creating if needed) the index at path for the ledger led.
func OpenAuditIndex(path string, led *Ledger) (*AuditIndex, error) {
	db, err := sql.Open("sqlite", dsn(path, url.Values{"_txlock": {"immediate"}}, "busy_timeout(10000)", "journal_mode(WAL)", "synchronous(NORMAL)"))
	if err != nil {
		return nil, fmt.Errorf("open audit index %s: %w", path, err)
	}
	bound(db, auditIndexConns)
	if _, err := db.Exec(auditIndexSchema); err != nil {
		db.Close()
		return nil, fmt.Errorf("open audit index %s: %w", path, err)
	}
	// An index file made before the generation was kept gains it (at 0).
	var hasGen bool
	if err := db.QueryRow("SELECT count(*) > 0 FROM pragma_table_info('index_state') WHERE name = 'generation'").Scan(&hasGen); err == nil && !hasGen {
		_, err = db.Exec("ALTER TABLE index_state ADD COLUMN generation INTEGER NOT NULL DEFAULT 0")
		if err != nil {
			db.Close()
			return nil, fmt.Errorf("open audit index %s: add the generation: %w", path, err)
		}
	} else if err != nil {
		db.Close()
		return nil, fmt.Errorf("open audit index %s: %w", path, err)
	}
	return &AuditIndex{db: db, led: led}, nil
}

// Close closes the index's file.
func (x *AuditIndex) Close() error { return x.db.Close() }

// State implements auditindex.Reader.
func (x *AuditIndex) State(ctx context.Context) (auditindex.State, error) {
	var st auditindex.State
	var next, skipped, gen int64
	if err := x.db.QueryRowContext(ctx, "SELECT next, last, skipped, generation FROM index_state WHERE id = 1").Scan(&next, &st.Last, &skipped, &gen); err != nil {
		return st, fmt.Errorf("audit index state: %w", err)
	}
	st.Next, st.Skipped, st.Generation = uint64(next), uint64(skipped), uint64(gen)
	return st, nil
}

// Postings implements auditindex.Reader.
func (x *AuditIndex) Postings(ctx context.Context, t auditindex.Term, maxBlock uint64, limit int) ([]auditindex.Posting, error) {
	rows, err := x.db.QueryContext(ctx, "SELECT block, seqs FROM index_postings WHERE field = ? AND term = ? AND block <= ? ORDER BY block DESC LIMIT ?",
		int(t.Field), t.Value, int64(maxBlock), limit)
	if err != nil {
		return nil, fmt.Errorf("audit index postings: %w", err)
	}
	defer rows.Close()
	var out []auditindex.Posting
	for rows.Next() {
		var p auditindex.Posting
		var b int64
		if err := rows.Scan(&b, &p.Seqs); err != nil {
			return nil, fmt.Errorf("audit index postings: %w", err)
		}
		p.Block = uint64(b)
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("audit index postings: %w", err)
	}
	return out, nil
}

// Spans implements auditindex.Reader.
func (x *AuditIndex) Spans(ctx context.Context, maxBlock uint64, limit int) ([]auditindex.Span, error) {
	rows, err := x.db.QueryContext(ctx, "SELECT block, min_time, max_time FROM index_spans WHERE block <= ? ORDER BY block DESC LIMIT ?", int64(maxBlock), limit)
	if err != nil {
		return nil, fmt.Errorf("audit index spans: %w", err)
	}
	defer rows.Close()
	var out []auditindex.Span
	for rows.Next() {
		var s auditindex.Span
		var b int64
		if err := rows.Scan(&b, &s.Min, &s.Max); err != nil {
			return nil, fmt.Errorf("audit index spans: %w", err)
		}
		s.Block = uint64(b)
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("audit index spans: %w", err)
	}
	return out, nil
}

// Records implements auditindex.Reader: one query for all of seqs, from the ledger's file.
func (x *AuditIndex) Records(ctx context.Context, seqs []uint64, fn func(ledger.Entry) error) error {
	if len(seqs) == 0 {
		return nil
	}
	args := make([]any, 0, len(seqs))
	for _, s := range seqs {
		args = append(args, int64(s))
	}
	q := "SELECT seq, data FROM ledger_records WHERE seq IN (?" + strings.Repeat(",?", len(seqs)-1) + ")"
	if !x.led.noBase {
		q += " AND seq >= COALESCE((SELECT size FROM ledger_base WHERE id = 1), 0)"
	}
	rows, err := x.led.db.QueryContext(ctx, q, args...)
	if err != nil {
		return fmt.Errorf("audit index records: %w", err)
	}
	defer rows.Close()
	got := make(map[uint64][]byte, len(seqs))
	for rows.Next() {
		var seq int64
		var data []byte
		if err := rows.Scan(&seq, &data); err != nil {
			return fmt.Errorf("audit index records: %w", err)
		}
		got[uint64(seq)] = data
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("audit index records: %w", err)
	}
	return auditindex.InOrder(seqs, got, fn)
}

// Write implements auditindex.Store: one transaction, which holds the index file's write lock
// (never the ledger's).
func (x *AuditIndex) Write(ctx context.Context, from uint64, b *auditindex.Batch) (err error) {
	tx, err := x.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("audit index write: %w", err)
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback()
		}
	}()
	var next, gen int64
	if err := tx.QueryRowContext(ctx, "SELECT next, generation FROM index_state WHERE id = 1").Scan(&next, &gen); err != nil {
		return fmt.Errorf("audit index write: %w", err)
	}
	if uint64(next) != from || uint64(gen) != b.State.Generation {
		return auditindex.ErrConflict
	}
	get, err := tx.PrepareContext(ctx, "SELECT seqs FROM index_postings WHERE field = ? AND term = ? AND block = ?")
	if err != nil {
		return fmt.Errorf("audit index write: %w", err)
	}
	defer get.Close()
	put, err := tx.PrepareContext(ctx, "INSERT OR REPLACE INTO index_postings(field, term, block, seqs) VALUES (?, ?, ?, ?)")
	if err != nil {
		return fmt.Errorf("audit index write: %w", err)
	}
	defer put.Close()
	// Only the block the watermark is in can hold rows already (a batch ends at a block's end).
	partial := from % auditindex.BlockSize
	for k, offs := range b.Postings {
		var stored []byte
		if partial != 0 && k.Block == from/auditindex.BlockSize && (b.Stored == nil || b.Stored[k.Term]) {
			if err := get.QueryRowContext(ctx, int(k.Field), k.Value, int64(k.Block)).Scan(&stored); err != nil && !errors.Is(err, sql.ErrNoRows) {
				return fmt.Errorf("audit index write: %w", err)
			}
		}
		blob, err := auditindex.MergeBlob(stored, offs)
		if err != nil {
			return fmt.Errorf("audit index write: %w", err)
		}
		if _, err := put.ExecContext(ctx, int(k.Field), k.Value, int64(k.Block), blob); err != nil {
			return fmt.Errorf("audit index write: %w", err)
		}
	}
	for _, s := range b.Spans {
		if _, err := tx.ExecContext(ctx, `INSERT INTO index_spans(block, min_time, max_time) VALUES (?, ?, ?)
			ON CONFLICT(block) DO UPDATE SET min_time = MIN(min_time, excluded.min_time), max_time = MAX(max_time, excluded.max_time)`,
			int64(s.Block), s.Min, s.Max); err != nil {
			return fmt.Errorf("audit index write: %w", err)
		}
	}
	if _, err := tx.ExecContext(ctx, "UPDATE index_state SET next = ?, last = ?, skipped = ? WHERE id = 1",
		int64(b.State.Next), b.State.Last, int64(b.State.Skipped)); err != nil {
		return fmt.Errorf("audit index write: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("audit index write: %w", err)
	}
	return nil
}

// Reset implements auditindex.Store.
func (x *AuditIndex) Reset(ctx context.Context) error {
	return x.exec(ctx, "audit index reset", []string{"DELETE FROM index_postings", "DELETE FROM index_spans",
		"UPDATE index_state SET next = 0, last = NULL, skipped = 0, generation = generation + 1 WHERE id = 1"})
}

// Drop implements auditindex.Store.
func (x *AuditIndex) Drop(ctx context.Context, block uint64) error {
	return x.exec(ctx, "audit index drop", []string{"DELETE FROM index_postings WHERE block < ?", "DELETE FROM index_spans WHERE block < ?"}, int64(block))
}

// exec runs stmts in one transaction, each with args.
func (x *AuditIndex) exec(ctx context.Context, what string, stmts []string, args ...any) (err error) {
	tx, err := x.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback()
		}
	}()
	for _, q := range stmts {
		if _, err := tx.ExecContext(ctx, q, args...); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}
