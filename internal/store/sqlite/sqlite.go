// Package sqlite is the embedded default store: one SQLite file (modernc.org/sqlite, no cgo)
// in WAL mode with synchronous=FULL, so a commit is on disk when it returns. It implements
// ledger.Store and keeps each record's bytes exactly as they were hashed, as a BLOB.
//
// It points inward at the interfaces it implements and must not import transports, the guard
// or the cli.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"strings"

	_ "modernc.org/sqlite" // the database/sql driver "sqlite"

	"github.com/portcullis-ai/portcullis/internal/ledger"
)

// schemaVersion is kept in PRAGMA user_version.
const schemaVersion = 1

const schema = `
CREATE TABLE IF NOT EXISTS ledger_records (
	seq  INTEGER PRIMARY KEY,
	data BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS ledger_checkpoints (
	id       INTEGER PRIMARY KEY AUTOINCREMENT,
	size     INTEGER NOT NULL,
	note     BLOB NOT NULL,
	frontier BLOB NOT NULL
);
`

// Store is a ledger.Store in one SQLite database file.
type Store struct {
	db   *sql.DB
	path string
}

var _ ledger.Store = (*Store)(nil)

// Open opens (creating if needed) the database at path.
//
// Durability: WAL with synchronous=FULL fsyncs the WAL at every commit, so a committed batch
// survives power loss, not just a process crash; synchronous=NORMAL would not (it defers the
// sync to WAL checkpoints), and the ledger acknowledges a record only as durable.
// The group commit amortises that one fsync over a whole batch.
func Open(path string) (*Store, error) {
	q := url.Values{}
	for _, p := range []string{"busy_timeout(10000)", "journal_mode(WAL)", "synchronous(FULL)", "foreign_keys(ON)"} {
		q.Add("_pragma", p)
	}
	q.Set("_txlock", "immediate")
	dsn := "file:" + (&url.URL{Path: path}).EscapedPath() + "?" + q.Encode()
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("open sqlite ledger store %s: %w", path, err)
	}
	db.SetMaxOpenConns(4)
	db.SetMaxIdleConns(4)
	s := &Store{db: db, path: path}
	if err := s.migrate(); err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

func (s *Store) migrate() error {
	ctx := context.Background()
	var v int
	if err := s.db.QueryRowContext(ctx, "PRAGMA user_version").Scan(&v); err != nil {
		return fmt.Errorf("open sqlite ledger store %s: %w", s.path, err)
	}
	if v > schemaVersion {
		return fmt.Errorf("open sqlite ledger store %s: schema version %d is newer than this binary's %d", s.path, v, schemaVersion)
	}
	if _, err := s.db.ExecContext(ctx, schema); err != nil {
		return fmt.Errorf("open sqlite ledger store %s: create schema: %w", s.path, err)
	}
	if _, err := s.db.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", schemaVersion)); err != nil {
		return fmt.Errorf("open sqlite ledger store %s: %w", s.path, err)
	}
	return nil
}

// insertChunk is how many records one INSERT statement carries.
const insertChunk = 200

// Commit implements ledger.Store: one IMMEDIATE transaction, one fsync.
func (s *Store) Commit(ctx context.Context, recs []ledger.Entry, cp *ledger.StoredCheckpoint) (err error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqlite ledger commit: begin: %w", err)
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback()
		}
	}()
	var next int64
	if err := tx.QueryRowContext(ctx, "SELECT COALESCE(MAX(seq)+1, 0) FROM ledger_records").Scan(&next); err != nil {
		return fmt.Errorf("sqlite ledger commit: %w", err)
	}
	for i, r := range recs {
		if r.Seq != uint64(next)+uint64(i) {
			return fmt.Errorf("sqlite ledger commit: record %d at size %d: %w", r.Seq, next+int64(i), ledger.ErrConflict)
		}
	}
	for start := 0; start < len(recs); start += insertChunk {
		chunk := recs[start:min(start+insertChunk, len(recs))]
		var b strings.Builder
		b.WriteString("INSERT INTO ledger_records(seq, data) VALUES ")
		args := make([]any, 0, 2*len(chunk))
		for i, r := range chunk {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString("(?,?)")
			args = append(args, int64(r.Seq), r.Data)
		}
		if _, err := tx.ExecContext(ctx, b.String(), args...); err != nil {
			return fmt.Errorf("sqlite ledger commit: insert records: %w", err)
		}
	}
	if cp != nil {
		if cp.Size > uint64(next)+uint64(len(recs)) {
			return fmt.Errorf("sqlite ledger commit: checkpoint of size %d beyond %d records", cp.Size, uint64(next)+uint64(len(recs)))
		}
		frontier := cp.Frontier
		if frontier == nil {
			frontier = []byte{}
		}
		if _, err := tx.ExecContext(ctx, "INSERT INTO ledger_checkpoints(size, note, frontier) VALUES (?,?,?)",
			int64(cp.Size), cp.Note, frontier); err != nil {
			return fmt.Errorf("sqlite ledger commit: insert checkpoint: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlite ledger commit: %w", err)
	}
	return nil
}

// Size implements ledger.Store: one past the highest seq.
func (s *Store) Size(ctx context.Context) (uint64, error) {
	var n int64
	if err := s.db.QueryRowContext(ctx, "SELECT COALESCE(MAX(seq)+1, 0) FROM ledger_records").Scan(&n); err != nil {
		return 0, fmt.Errorf("sqlite ledger size: %w", err)
	}
	return uint64(n), nil
}

// scanPage bounds one read transaction, so a long verify does not pin the WAL.
const scanPage = 8192

// Scan implements ledger.Store.
func (s *Store) Scan(ctx context.Context, from uint64, fn func(ledger.Entry) error) error {
	for {
		n := 0
		rows, err := s.db.QueryContext(ctx, "SELECT seq, data FROM ledger_records WHERE seq >= ? ORDER BY seq LIMIT ?", int64(from), scanPage)
		if err != nil {
			return fmt.Errorf("sqlite ledger scan: %w", err)
		}
		for rows.Next() {
			var seq int64
			var data sql.RawBytes
			if err := rows.Scan(&seq, &data); err != nil {
				rows.Close()
				return fmt.Errorf("sqlite ledger scan: %w", err)
			}
			n++
			from = uint64(seq) + 1
			if err := fn(ledger.Entry{Seq: uint64(seq), Data: data}); err != nil {
				rows.Close()
				return err
			}
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return fmt.Errorf("sqlite ledger scan: %w", err)
		}
		if n < scanPage {
			return nil
		}
	}
}

// Checkpoints implements ledger.Store.
func (s *Store) Checkpoints(ctx context.Context, fn func(ledger.StoredCheckpoint) error) error {
	rows, err := s.db.QueryContext(ctx, "SELECT size, note, frontier FROM ledger_checkpoints ORDER BY id")
	if err != nil {
		return fmt.Errorf("sqlite ledger checkpoints: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var c ledger.StoredCheckpoint
		var size int64
		if err := rows.Scan(&size, &c.Note, &c.Frontier); err != nil {
			return fmt.Errorf("sqlite ledger checkpoints: %w", err)
		}
		c.Size = uint64(size)
		if err := fn(c); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("sqlite ledger checkpoints: %w", err)
	}
	return nil
}

// LatestCheckpoint implements ledger.Store.
func (s *Store) LatestCheckpoint(ctx context.Context) (ledger.StoredCheckpoint, bool, error) {
	var c ledger.StoredCheckpoint
	var size int64
	err := s.db.QueryRowContext(ctx, "SELECT size, note, frontier FROM ledger_checkpoints ORDER BY id DESC LIMIT 1").Scan(&size, &c.Note, &c.Frontier)
	if errors.Is(err, sql.ErrNoRows) {
		return c, false, nil
	}
	if err != nil {
		return c, false, fmt.Errorf("sqlite ledger latest checkpoint: %w", err)
	}
	c.Size = uint64(size)
	return c, true, nil
}

// Trim implements ledger.Store.
func (s *Store) Trim(ctx context.Context, from uint64) (err error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqlite ledger trim: %w", err)
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback()
		}
	}()
	var covered int64
	if err := tx.QueryRowContext(ctx, "SELECT COALESCE(MAX(size), 0) FROM ledger_checkpoints").Scan(&covered); err != nil {
		return fmt.Errorf("sqlite ledger trim: %w", err)
	}
	if uint64(covered) > from {
		return fmt.Errorf("sqlite ledger trim from %d (checkpoint covers %d): %w", from, covered, ledger.ErrTrimCheckpointed)
	}
	if _, err := tx.ExecContext(ctx, "DELETE FROM ledger_records WHERE seq >= ?", int64(from)); err != nil {
		return fmt.Errorf("sqlite ledger trim: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlite ledger trim: %w", err)
	}
	return nil
}

// DB exposes the database for tests that tamper with it and for read-only tooling.
func (s *Store) DB() *sql.DB { return s.db }

// Close implements ledger.Store.
func (s *Store) Close() error {
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("close sqlite ledger store: %w", err)
	}
	return nil
}
