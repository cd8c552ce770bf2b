package sqlite

// This file is the audit ledger's store: one SQLite file (modernc.org/sqlite, no cgo) in WAL
// mode with synchronous=FULL, so a commit is on disk when it returns. It implements
// ledger.Store and keeps each record's bytes exactly as they were hashed, as a BLOB.

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"

	_ "modernc.org/sqlite" // the database/sql driver "sqlite"

	"github.com/portcullis-ai/portcullis/internal/ledger"
)

// schemaVersion is kept in ledger_meta.
const schemaVersion = 1

const ledgerSchema = `
CREATE TABLE IF NOT EXISTS ledger_records (
	seq  INTEGER PRIMARY KEY,
	data BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS ledger_meta (
	key   TEXT PRIMARY KEY,
	value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS ledger_checkpoints (
	id       INTEGER PRIMARY KEY AUTOINCREMENT,
	size     INTEGER NOT NULL,
	note     BLOB NOT NULL,
	frontier BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS ledger_base (
	id   INTEGER PRIMARY KEY CHECK (id = 1),
	size INTEGER NOT NULL,
	base BLOB NOT NULL
);
`

// sizeSQL is the next seq: one past the highest record, or the base of a log pruned to its
// base (ledger.Pruner).
const sizeSQL = "SELECT MAX(COALESCE((SELECT MAX(seq)+1 FROM ledger_records), 0), COALESCE((SELECT size FROM ledger_base WHERE id = 1), 0))"

// sizeSQLNoBase is sizeSQL for a ledger written before ledger_base existed, opened read-only.
const sizeSQLNoBase = "SELECT COALESCE(MAX(seq)+1, 0) FROM ledger_records"

// Ledger is a ledger.Store in one SQLite database file.
type Ledger struct {
	db   *sql.DB
	path string

	commits         atomic.Int64
	walBytes        atomic.Int64 // bytes committed since the last WAL checkpoint began (estimated)
	checkpointEvery int64        // commits between WAL checkpoints (checkpointEvery; tests lower it)
	// walMu is held by each commit and by the WAL checkpoint, so the two never overlap: a
	// checkpoint that finishes between two commits has copied every frame, and the next commit
	// then rewrites the WAL from its start (see checkpointWAL).
	walMu         sync.Mutex
	checkpointing atomic.Bool   // one WAL checkpoint at a time
	w             *ledgerWriter // Commit's connection, opened on first use (walMu)
	wg            sync.WaitGroup

	// noBase: a read-only ledger without the ledger_base table (never pruned).
	noBase bool
	// readOnly: opened by OpenLedgerReadOnly; Close then neither checkpoints nor truncates.
	readOnly bool
	// snapshotDir is the private copy a read-only open reads instead of a WAL it must not
	// touch; removed by Close.
	snapshotDir string
}

var _ ledger.Store = (*Ledger)(nil)

// OpenLedger opens (creating if needed) the database at path.
//
// Durability: WAL with synchronous=FULL fsyncs the WAL at every commit, so a committed batch
// survives power loss, not just a process crash; synchronous=NORMAL would not (it defers the
// sync to WAL checkpoints), and the ledger acknowledges a record only as durable.
// The group commit amortises that one fsync over a whole batch.
func OpenLedger(path string) (*Ledger, error) {
	// wal_autocheckpoint(0): the committing connection does not checkpoint inline (that would
	// add a second fsync to some batches); a background checkpointer does (see Commit).
	db, err := sql.Open("sqlite", dsn(path, url.Values{"_txlock": {"immediate"}},
		"busy_timeout(10000)", "journal_mode(WAL)", "synchronous(FULL)", "wal_autocheckpoint(0)", fmt.Sprintf("journal_size_limit(%d)", walSizeLimit)))
	if err != nil {
		return nil, fmt.Errorf("open sqlite ledger store %s: %w", path, err)
	}
	bound(db, ledgerConns)
	s := &Ledger{db: db, path: path, checkpointEvery: checkpointEvery}
	if err := s.migrate(); err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

// OpenLedgerReadOnly opens an existing ledger for reading (the audit commands) and never creates
// or writes a file where it lies — an auditor may hold a copy they cannot write, and reading it
// must not change it. live says a gateway has it open now (it holds the data directory's
// lock): the ledger is then read through that gateway's WAL index (mode=ro), as SQLite readers
// beside a writer do. Otherwise nothing else touches the files:
//   - without a WAL (a gateway that stopped cleanly truncates it), the database file is read as
//     immutable: no locks, no -shm, no -wal;
//   - with one (a copy of a live directory, or a gateway that crashed), its frames hold committed
//     records, but reading a WAL means building its index in a -shm beside it; the database and
//     its WAL are copied into a private temporary directory and read there.
func OpenLedgerReadOnly(path string, live bool) (*Ledger, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("open sqlite ledger store %s: %w", path, err)
	}
	q := url.Values{"mode": {"ro"}}
	s := &Ledger{path: path, readOnly: true}
	open := path
	switch wal, err := os.Stat(path + "-wal"); {
	case live:
	case err == nil && wal.Size() > 0:
		dir, err := snapshotWAL(path)
		if err != nil {
			return nil, fmt.Errorf("open sqlite ledger store %s: copy with its WAL: %w", path, err)
		}
		s.snapshotDir, open = dir, filepath.Join(dir, filepath.Base(path))
	default:
		q.Set("immutable", "1")
	}
	db, err := sql.Open("sqlite", dsn(open, q, "busy_timeout(10000)"))
	if err != nil {
		s.removeSnapshot()
		return nil, fmt.Errorf("open sqlite ledger store %s: %w", path, err)
	}
	bound(db, ledgerConns-1)
	s.db = db
	var v int
	if err := db.QueryRow("SELECT CAST(value AS INTEGER) FROM ledger_meta WHERE key = 'schema_version'").Scan(&v); err != nil {
		_ = s.Close()
		return nil, fmt.Errorf("open sqlite ledger store %s: not a ledger: %w", path, err)
	}
	if v != schemaVersion {
		_ = s.Close()
		return nil, fmt.Errorf("open sqlite ledger store %s: schema version %d, this binary knows %d", path, v, schemaVersion)
	}
	var tables int
	if err := db.QueryRow("SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'ledger_base'").Scan(&tables); err != nil {
		_ = s.Close()
		return nil, fmt.Errorf("open sqlite ledger store %s: %w", path, err)
	}
	s.noBase = tables == 0
	return s, nil
}

// snapshotWAL copies the database at path and its WAL into a new private directory.
func snapshotWAL(path string) (string, error) {
	dir, err := os.MkdirTemp("", "portcullis-audit-")
	if err != nil {
		return "", err
	}
	for _, suffix := range []string{"", "-wal"} {
		if err := copyFile(path+suffix, filepath.Join(dir, filepath.Base(path)+suffix)); err != nil {
			_ = os.RemoveAll(dir)
			return "", err
		}
	}
	return dir, nil
}

func copyFile(from, to string) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

func (s *Ledger) removeSnapshot() {
	if s.snapshotDir != "" {
		_ = os.RemoveAll(s.snapshotDir)
	}
}

func (s *Ledger) migrate() error {
	ctx := context.Background()
	if _, err := s.db.ExecContext(ctx, ledgerSchema); err != nil {
		return fmt.Errorf("open sqlite ledger store %s: create schema: %w", s.path, err)
	}
	// The version lives in the ledger's own table (not PRAGMA user_version), so other stores
	// can share the database file.
	if _, err := s.db.ExecContext(ctx, "INSERT OR IGNORE INTO ledger_meta(key, value) VALUES ('schema_version', ?)", schemaVersion); err != nil {
		return fmt.Errorf("open sqlite ledger store %s: %w", s.path, err)
	}
	var v int
	if err := s.db.QueryRowContext(ctx, "SELECT CAST(value AS INTEGER) FROM ledger_meta WHERE key = 'schema_version'").Scan(&v); err != nil {
		return fmt.Errorf("open sqlite ledger store %s: %w", s.path, err)
	}
	if v != schemaVersion {
		return fmt.Errorf("open sqlite ledger store %s: schema version %d, this binary knows %d", s.path, v, schemaVersion)
	}
	return nil
}

// Commit implements ledger.Store: one IMMEDIATE transaction, one fsync, on the writer
// connection with its prepared statements (ledger_writer.go). A failed commit is rolled back
// before Commit returns, so nothing of it is visible; if even the rollback fails, the
// connection is discarded (closing it rolls back) and the next commit opens another.
func (s *Ledger) Commit(ctx context.Context, recs []ledger.Entry, cp *ledger.StoredCheckpoint) error {
	return s.commit(ctx, recs, cp, false)
}

var _ ledger.RelaxedStore = (*Ledger)(nil)

// CommitRelaxed implements ledger.RelaxedStore: the same transaction under synchronous=NORMAL,
// so its WAL frames are written (in the page cache: a killed process loses nothing) but not
// fsynced until the next FULL commit or Sync.
func (s *Ledger) CommitRelaxed(ctx context.Context, recs []ledger.Entry, cp *ledger.StoredCheckpoint) error {
	return s.commit(ctx, recs, cp, true)
}

// Sync implements ledger.RelaxedStore: a WAL checkpoint, which fsyncs the WAL (every relaxed
// commit in it) before copying it into the database file.
func (s *Ledger) Sync(ctx context.Context) error {
	s.walMu.Lock()
	defer s.walMu.Unlock()
	var busy, logFrames, done int
	if err := s.db.QueryRowContext(ctx, "PRAGMA wal_checkpoint(PASSIVE)").Scan(&busy, &logFrames, &done); err != nil {
		return fmt.Errorf("sqlite ledger sync: %w", err)
	}
	return nil
}

func (s *Ledger) commit(ctx context.Context, recs []ledger.Entry, cp *ledger.StoredCheckpoint, relaxed bool) error {
	s.walMu.Lock()
	defer s.walMu.Unlock()
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("sqlite ledger commit: %w", err)
	}
	if s.w == nil {
		w, err := openLedgerWriter(ctx, s.db)
		if err != nil {
			return fmt.Errorf("sqlite ledger commit: %w", err)
		}
		s.w = w
	}
	w := s.w
	if relaxed {
		if _, err := w.conn.ExecContext(ctx, "PRAGMA synchronous=NORMAL"); err != nil {
			w.close()
			s.w = nil
			return fmt.Errorf("sqlite ledger commit: %w", err)
		}
		defer func() {
			// Back to FULL for every other commit; a connection that cannot be put back is
			// discarded (the next one opens with FULL from its DSN).
			if _, err := w.conn.ExecContext(context.WithoutCancel(ctx), "PRAGMA synchronous=FULL"); err != nil && s.w == w {
				w.close()
				s.w = nil
			}
		}()
	}
	err := w.conn.Raw(func(dc any) error { return w.commitBatch(ctx, dc, recs, cp) })
	if err != nil {
		if w.broken || errors.Is(err, driver.ErrBadConn) || errors.Is(err, sql.ErrConnDone) {
			w.close()
			s.w = nil
		}
		return fmt.Errorf("sqlite ledger commit: %w", err)
	}
	// The WAL grows by about the records' bytes plus a few b-tree pages per commit.
	written := int64(3 * walPage)
	for _, r := range recs {
		written += int64(len(r.Data)) + 16
	}
	if s.commits.Add(1)%s.checkpointEvery == 0 || s.walBytes.Add(written) >= walCheckpointBytes {
		s.walBytes.Store(0)
		s.checkpointWAL()
	}
	return nil
}

// checkpointEvery is how many commits pass between WAL checkpoints. A commit that arrives while
// one runs waits for it (≈ 1 ms per 128 commits' worth of pages on the development disk), and
// the database file's fsync slows the WAL fsyncs right after it; at 1,024 that touches about
// one commit in a thousand, below any p99. Small commits reach it first (≈ 6 MB of WAL for
// one-record commits); batches reach walCheckpointBytes first.
const checkpointEvery = 1024

// WALBound is the most the WAL file holds after any commit (tests check it; docs/ledger.md
// states it): it is checkpointed once walCheckpointBytes were committed since the last
// checkpoint (or every checkpointEvery commits), so it holds at most that much, plus the
// largest batch (1,000 records), plus what commits add while a checkpoint waits for walMu.
const WALBound = 16 << 20

// walCheckpointBytes is how much is committed between two WAL checkpoints at most; walPage is
// SQLite's page size (a WAL frame holds one page).
const (
	walCheckpointBytes = 4 << 20
	walPage            = 4096
)

// walSizeLimit is journal_size_limit: when the WAL restarts after a checkpoint, a file grown
// past it (by a reader that kept a checkpoint from completing, or a prune) is truncated back.
const walSizeLimit = 8 << 20

// checkpointWAL copies the WAL into the database file in the background, after the commit that
// called it has returned (its callers are answered without waiting for it).
//
// It runs between two commits (walMu), not beside them: SQLite rewrites the WAL from its start
// only when a write begins with every frame already copied, and a checkpoint racing with
// commits never gets there, so the WAL grew for as long as records kept coming (≈ 6 KB per
// commit, without bound) and every commit's fsync also had to extend the file — measurably
// slower than rewriting blocks already allocated. A commit that arrives during the checkpoint
// waits for it (PASSIVE: a reader is never waited for; frames a reader still needs are left for
// the next checkpoint).
func (s *Ledger) checkpointWAL() {
	if !s.checkpointing.CompareAndSwap(false, true) {
		return // one is running
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer s.checkpointing.Store(false)
		s.walMu.Lock()
		defer s.walMu.Unlock()
		// A failed checkpoint loses nothing: the frames stay in the WAL for the next one.
		_, _ = s.db.Exec("PRAGMA wal_checkpoint(PASSIVE)")
	}()
}

// Size implements ledger.Store: one past the highest seq.
func (s *Ledger) Size(ctx context.Context) (uint64, error) {
	q := sizeSQL
	if s.noBase {
		q = sizeSQLNoBase
	}
	var n int64
	if err := s.db.QueryRowContext(ctx, q).Scan(&n); err != nil {
		return 0, fmt.Errorf("sqlite ledger size: %w", err)
	}
	return uint64(n), nil
}

var _ ledger.Pruner = (*Ledger)(nil)

// Prune implements ledger.Pruner. The base and the removal of the older checkpoints commit in
// one transaction: from then on the records below the base are gone for every reader (Scan
// starts at the base). The records themselves are then deleted in transactions of
// pruneChunk, each followed by a WAL checkpoint, so the ledger's commits never wait long
// behind the prune (each deletion holds the writer) and the WAL stays within its bound; an
// interrupted prune leaves only invisible rows, which the next Prune deletes. The freed pages are reused by later records; the file does not shrink (VACUUM
// would rewrite it whole).
func (s *Ledger) Prune(ctx context.Context, size uint64, base []byte) error {
	cur, err := s.setBase(ctx, size, base)
	if err != nil {
		return err
	}
	for {
		n, err := s.pruneRows(ctx, cur)
		if err != nil {
			return err
		}
		if n == 0 {
			return nil
		}
	}
}

// pruneChunk is how many records one pruning transaction deletes.
const pruneChunk = 4096

// setBase stores the new base and drops the checkpoints below it; it returns the base's size.
func (s *Ledger) setBase(ctx context.Context, size uint64, base []byte) (cur uint64, err error) {
	s.walMu.Lock() // one writer: never beside a commit of the ledger writer's connection
	defer s.walMu.Unlock()
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("sqlite ledger prune: %w", err)
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback()
		}
	}()
	var c, n int64
	if err := tx.QueryRowContext(ctx, "SELECT COALESCE((SELECT size FROM ledger_base WHERE id = 1), 0)").Scan(&c); err != nil {
		return 0, fmt.Errorf("sqlite ledger prune: %w", err)
	}
	if size <= uint64(c) {
		return uint64(c), tx.Rollback()
	}
	if err := tx.QueryRowContext(ctx, sizeSQL).Scan(&n); err != nil {
		return 0, fmt.Errorf("sqlite ledger prune: %w", err)
	}
	var cps int
	if err := tx.QueryRowContext(ctx, "SELECT COUNT(*) FROM ledger_checkpoints WHERE size = ?", int64(size)).Scan(&cps); err != nil {
		return 0, fmt.Errorf("sqlite ledger prune: %w", err)
	}
	if size > uint64(n) || cps == 0 {
		return 0, fmt.Errorf("sqlite ledger prune to %d: %w", size, ledger.ErrPruneNoCheckpoint)
	}
	if _, err := tx.ExecContext(ctx, "DELETE FROM ledger_checkpoints WHERE size < ?", int64(size)); err != nil {
		return 0, fmt.Errorf("sqlite ledger prune: %w", err)
	}
	if _, err := tx.ExecContext(ctx, "INSERT INTO ledger_base(id, size, base) VALUES (1, ?, ?) ON CONFLICT(id) DO UPDATE SET size = excluded.size, base = excluded.base", int64(size), base); err != nil {
		return 0, fmt.Errorf("sqlite ledger prune: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("sqlite ledger prune: %w", err)
	}
	return size, nil
}

// pruneRows deletes up to pruneChunk records below the base, then checkpoints the WAL.
func (s *Ledger) pruneRows(ctx context.Context, below uint64) (int64, error) {
	s.walMu.Lock()
	defer s.walMu.Unlock()
	res, err := s.db.ExecContext(ctx, "DELETE FROM ledger_records WHERE seq IN (SELECT seq FROM ledger_records WHERE seq < ? ORDER BY seq LIMIT ?)", int64(below), pruneChunk)
	if err != nil {
		return 0, fmt.Errorf("sqlite ledger prune: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("sqlite ledger prune: %w", err)
	}
	if n > 0 {
		// Between two commits, as checkpointWAL: the next write starts the WAL over.
		_, _ = s.db.ExecContext(ctx, "PRAGMA wal_checkpoint(PASSIVE)")
	}
	return n, nil
}

// Base implements ledger.Pruner.
func (s *Ledger) Base(ctx context.Context) (uint64, []byte, bool, error) {
	if s.noBase {
		return 0, nil, false, nil
	}
	var size int64
	var b []byte
	err := s.db.QueryRowContext(ctx, "SELECT size, base FROM ledger_base WHERE id = 1").Scan(&size, &b)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil, false, nil
	}
	if err != nil {
		return 0, nil, false, fmt.Errorf("sqlite ledger base: %w", err)
	}
	return uint64(size), b, true, nil
}

// scanPage bounds one read transaction, so a long verify does not pin the WAL.
const scanPage = 8192

// Scan implements ledger.Store. It starts at the base at the earliest: rows an interrupted
// Prune left below it are not part of the log.
func (s *Ledger) Scan(ctx context.Context, from uint64, fn func(ledger.Entry) error) error {
	if !s.noBase {
		var b int64
		err := s.db.QueryRowContext(ctx, "SELECT COALESCE((SELECT size FROM ledger_base WHERE id = 1), 0)").Scan(&b)
		if err != nil {
			return fmt.Errorf("sqlite ledger scan: %w", err)
		}
		from = max(from, uint64(b))
	}
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
func (s *Ledger) Checkpoints(ctx context.Context, fn func(ledger.StoredCheckpoint) error) error {
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
func (s *Ledger) LatestCheckpoint(ctx context.Context) (ledger.StoredCheckpoint, bool, error) {
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
func (s *Ledger) Trim(ctx context.Context, from uint64) (err error) {
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
func (s *Ledger) DB() *sql.DB { return s.db }

// Close implements ledger.Store.
func (s *Ledger) Close() error {
	s.wg.Wait()
	s.walMu.Lock()
	if s.w != nil {
		s.w.close()
		s.w = nil
	}
	s.walMu.Unlock()
	if s.readOnly {
		defer s.removeSnapshot()
	} else {
		_, _ = s.db.Exec("PRAGMA wal_checkpoint(TRUNCATE)")
	}
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("close sqlite ledger store: %w", err)
	}
	return nil
}
