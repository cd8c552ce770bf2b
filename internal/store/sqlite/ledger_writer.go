package sqlite

// This file is the ledger store's write path: one connection kept for Commit, its statements
// prepared once and run through the driver directly. Measured with BenchmarkLedgerCommit (see
// docs/benchmarks.md): through database/sql's BeginTx/Exec/Commit a one-record commit spent
// more CPU re-parsing BEGIN, SELECT, INSERT and COMMIT, and starting and waking the driver's
// cancellation watcher goroutine for each of them, than on anything but the fsync itself.

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"strings"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/portcullis-ai/portcullis/internal/ledger"
)

// maxInsertLog2: the largest INSERT carries 1<<maxInsertLog2 records (512 parameters).
const maxInsertLog2 = 8

// lockTimeout bounds how long a commit waits for another connection's write lock, as
// busy_timeout does for the store's other connections.
const lockTimeout = 10 * time.Second

// ledgerWriter is the connection Commit writes on, taken from the pool for the store's life so
// that its statements stay prepared. Only Commit uses it, under walMu, and only inside
// conn.Raw: the statements are the driver's own, without database/sql's per-call argument
// conversion, locking and result wrapping (≈ 16% of a one-record commit's instructions
// outside the kernel).
//
// Its busy_timeout is 0: BEGIN IMMEDIATE fails at once when another connection holds the write
// lock, and beginImmediate waits and retries itself, watching ctx. Handing ctx to the driver
// instead makes it start (and wake) a watcher goroutine for every statement run with a
// cancellable context, ≈ 20–30 µs of CPU per commit here. The statements after BEGIN wait for no
// lock (the transaction holds the write lock; COMMIT in WAL mode takes no other lock, and the
// store never checkpoints on commit), so they run without ctx, which is checked again right
// before COMMIT.
type ledgerWriter struct {
	conn                                            *sql.Conn
	begin, size, insertCheckpoint, commit, rollback driver.Stmt
	// inserts[k] inserts 1<<k records in one statement, prepared on first use; a batch is
	// inserted as the binary decomposition of its length (45 = 32+8+4+1). A multi-row
	// statement per chunk costs ≈ 28% fewer instructions per 64-record commit than one
	// execution per record.
	inserts [maxInsertLog2 + 1]driver.Stmt
	args    []driver.NamedValue
	dest    [1]driver.Value
	// broken: a failed commit could not be rolled back; the connection must be discarded.
	broken bool
}

func openLedgerWriter(ctx context.Context, db *sql.DB) (*ledgerWriter, error) {
	conn, err := db.Conn(ctx)
	if err != nil {
		return nil, err
	}
	w := &ledgerWriter{conn: conn}
	err = conn.Raw(func(dc any) error {
		for _, p := range []struct {
			st  *driver.Stmt
			sql string
		}{
			{&w.begin, "BEGIN IMMEDIATE"},
			{&w.size, sizeSQL},
			{&w.insertCheckpoint, "INSERT INTO ledger_checkpoints(size, note, frontier) VALUES (?,?,?)"},
			{&w.commit, "COMMIT"},
			{&w.rollback, "ROLLBACK"},
		} {
			var err error
			if *p.st, err = prepare(ctx, dc, p.sql); err != nil {
				return err
			}
		}
		// Only BEGIN waits for a lock, and beginImmediate does the waiting.
		st, err := prepare(ctx, dc, "PRAGMA busy_timeout = 0")
		if err != nil {
			return err
		}
		_, err = exec(st)
		return errors.Join(err, st.Close())
	})
	if err != nil {
		w.close()
		return nil, err
	}
	return w, nil
}

func prepare(ctx context.Context, dc any, query string) (driver.Stmt, error) {
	pc, ok := dc.(driver.ConnPrepareContext)
	if !ok {
		return nil, fmt.Errorf("sqlite driver connection %T cannot prepare with a context", dc)
	}
	st, err := pc.PrepareContext(ctx, query)
	if err != nil {
		return nil, fmt.Errorf("prepare %.60q: %w", query, err)
	}
	if _, ok := st.(driver.StmtExecContext); !ok {
		st.Close()
		return nil, fmt.Errorf("sqlite driver statement %T cannot execute with a context", st)
	}
	return st, nil
}

// exec runs st to completion. No context: see ledgerWriter.
func exec(st driver.Stmt, args ...driver.NamedValue) (driver.Result, error) {
	return st.(driver.StmtExecContext).ExecContext(context.Background(), args)
}

// close finalizes the statements and discards the connection (closing it rolls back a
// transaction it still had open); it never goes back to the pool with busy_timeout 0.
func (w *ledgerWriter) close() {
	_ = w.conn.Raw(func(any) error {
		for _, st := range append([]driver.Stmt{w.begin, w.size, w.insertCheckpoint, w.commit, w.rollback}, w.inserts[:]...) {
			if st != nil {
				st.Close()
			}
		}
		return driver.ErrBadConn
	})
}

// commitBatch is Commit's transaction; it runs inside conn.Raw (dc). On error the
// transaction is rolled back, or broken is set.
func (w *ledgerWriter) commitBatch(ctx context.Context, dc any, recs []ledger.Entry, cp *ledger.StoredCheckpoint) (err error) {
	if err := w.beginImmediate(ctx); err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer func() {
		if err != nil {
			if _, rerr := exec(w.rollback); rerr != nil {
				w.broken = true
			}
		}
	}()
	next, err := w.nextSeq()
	if err != nil {
		return err
	}
	for i, r := range recs {
		if r.Seq != next+uint64(i) {
			return fmt.Errorf("record %d at size %d: %w", r.Seq, next+uint64(i), ledger.ErrConflict)
		}
	}
	if err := w.insertRecords(ctx, dc, recs); err != nil {
		return fmt.Errorf("insert records: %w", err)
	}
	if cp != nil {
		if cp.Size > next+uint64(len(recs)) {
			return fmt.Errorf("checkpoint of size %d beyond %d records", cp.Size, next+uint64(len(recs)))
		}
		frontier := cp.Frontier
		if frontier == nil {
			frontier = []byte{}
		}
		if _, err := exec(w.insertCheckpoint, driver.NamedValue{Ordinal: 1, Value: int64(cp.Size)},
			driver.NamedValue{Ordinal: 2, Value: cp.Note}, driver.NamedValue{Ordinal: 3, Value: frontier}); err != nil {
			return fmt.Errorf("insert checkpoint: %w", err)
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	_, err = exec(w.commit)
	return err
}

// beginImmediate starts the write transaction, waiting (with a back-off like SQLite's, at most
// lockTimeout) while another connection holds the write lock, and giving up when ctx ends.
func (w *ledgerWriter) beginImmediate(ctx context.Context) error {
	deadline := time.Now().Add(lockTimeout)
	for delay := time.Millisecond; ; delay = min(2*delay, 50*time.Millisecond) {
		_, err := exec(w.begin)
		if err == nil || !isBusy(err) || time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(delay): // unreferenced timers are collected (Go 1.23)
		}
	}
}

func isBusy(err error) bool {
	var e *sqlite.Error
	return errors.As(err, &e) && e.Code()&0xff == sqlite3.SQLITE_BUSY
}

// nextSeq reads the store's size inside the transaction. It is not cached: another connection
// (Trim, a tool on the same file) may have written since the last commit.
func (w *ledgerWriter) nextSeq() (uint64, error) {
	rows, err := w.size.(driver.StmtQueryContext).QueryContext(context.Background(), nil)
	if err != nil {
		return 0, err
	}
	err = rows.Next(w.dest[:])
	if cerr := rows.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return 0, err
	}
	n, ok := w.dest[0].(int64)
	if !ok || n < 0 {
		return 0, fmt.Errorf("store size is %v (%T)", w.dest[0], w.dest[0])
	}
	return uint64(n), nil
}

// insertRecords inserts recs, largest chunks first.
func (w *ledgerWriter) insertRecords(ctx context.Context, dc any, recs []ledger.Entry) error {
	for len(recs) > 0 {
		k := maxInsertLog2
		for len(recs) < 1<<k {
			k--
		}
		if w.inserts[k] == nil {
			var b strings.Builder
			b.WriteString("INSERT INTO ledger_records(seq, data) VALUES (?,?)")
			for range 1<<k - 1 {
				b.WriteString(",(?,?)")
			}
			st, err := prepare(ctx, dc, b.String())
			if err != nil {
				return err
			}
			w.inserts[k] = st
		}
		chunk := recs[:1<<k]
		args := w.args[:0]
		for _, r := range chunk {
			args = append(args, driver.NamedValue{Ordinal: len(args) + 1, Value: int64(r.Seq)},
				driver.NamedValue{Ordinal: len(args) + 2, Value: r.Data})
		}
		_, err := exec(w.inserts[k], args...)
		clear(args) // the driver copied the bytes; keep no caller's buffer past the commit
		w.args = args[:0]
		if err != nil {
			return err
		}
		recs = recs[len(chunk):]
	}
	return nil
}
