package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"sync"
	"time"

	"github.com/portcullis-ai/portcullis/internal/identity"
)

// nonceSchema keeps each accepted signature nonce until it expires (unix nanoseconds). The key
// ("keyid\x00nonce") is a BLOB: compared byte for byte, NUL included. WITHOUT ROWID: the key is
// the row.
const nonceSchema = `
CREATE TABLE IF NOT EXISTS signature_nonces (
	key        BLOB PRIMARY KEY,
	expires_at INTEGER NOT NULL
) STRICT, WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS signature_nonces_expiry ON signature_nonces (expires_at);
`

// nonceSweepEvery is how often Use also deletes expired nonces; sweepBatch bounds one sweep so
// that a request never pays for a long backlog at once.
const (
	nonceSweepEvery = time.Minute
	nonceSweepBatch = 10_000
)

// Nonces is an identity.NonceStore in a SQLite database: the nonces of accepted signed requests
// survive a restart, so a request signed before it cannot be replayed after it (an in-memory
// store forgets every nonce when the process ends, while the signatures stay fresh for max_age).
//
// Use is one INSERT … ON CONFLICT DO UPDATE … WHERE expired statement: SQLite runs it under its
// write lock, so check and record are one atomic step, between goroutines and between processes
// on the same file. Commits are synchronous=NORMAL: in WAL mode a committed nonce is in the
// log file before the request it protects is decided, so it survives the process being killed
// or restarted; only a power loss or kernel crash in the moments after the commit can lose it.
// FULL would add an fsync to every signed request, serialised under SQLite's write lock, which
// caps signed decisions at the disk's sync rate (a few thousand a second at best); the window
// it would close needs an attacker who captured a signed request and a host power loss within
// the signature's max_age.
type Nonces struct {
	db    *sql.DB
	owned bool
	now   func() time.Time

	mu        sync.Mutex // guards lastSweep
	lastSweep time.Time
}

var _ identity.NonceStore = (*Nonces)(nil)

// OpenNonces opens (creating if needed) the SQLite database at path with WAL (synchronous=NORMAL,
// see Nonces), and prepares the nonce table. now is the clock for expiry (time.Now if nil).
func OpenNonces(ctx context.Context, path string, now func() time.Time) (*Nonces, error) {
	if path == "" {
		return nil, fmt.Errorf("open nonces: empty database path")
	}
	db, err := sql.Open("sqlite", dsn(path, nil, "busy_timeout(10000)", "journal_mode(WAL)", "synchronous(NORMAL)"))
	if err != nil {
		return nil, fmt.Errorf("open nonces %s: %w", path, err)
	}
	bound(db, nonceConns)
	n, err := NewNonces(ctx, db, now)
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("open nonces %s: %w", path, err)
	}
	n.owned = true
	return n, nil
}

// NewNonces prepares the nonce table in an already open database. Close does not close a shared
// handle.
func NewNonces(ctx context.Context, db *sql.DB, now func() time.Time) (*Nonces, error) {
	if now == nil {
		now = time.Now
	}
	if _, err := db.ExecContext(ctx, nonceSchema); err != nil {
		return nil, fmt.Errorf("create nonce table: %w", err)
	}
	return &Nonces{db: db, now: now}, nil
}

// Use implements identity.NonceStore: it records key until now+ttl and reports whether it was
// fresh (absent, or present but expired).
func (n *Nonces) Use(ctx context.Context, key string, ttl time.Duration) (bool, error) {
	now := n.now()
	n.sweep(ctx, now)
	res, err := n.db.ExecContext(ctx,
		`INSERT INTO signature_nonces (key, expires_at) VALUES (?, ?)
		 ON CONFLICT (key) DO UPDATE SET expires_at = excluded.expires_at
		 WHERE signature_nonces.expires_at <= ?`,
		[]byte(key), now.Add(ttl).UnixNano(), now.UnixNano())
	if err != nil {
		return false, fmt.Errorf("use nonce: %w", err)
	}
	changed, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("use nonce: %w", err)
	}
	// 1: inserted, or an expired entry renewed; 0: a live entry — a replay.
	return changed == 1, nil
}

// sweep deletes expired nonces at most once per nonceSweepEvery. A failed sweep is not a failed
// Use: expired rows only cost space, and never make a replay fresh (Use compares expiries).
func (n *Nonces) sweep(ctx context.Context, now time.Time) {
	n.mu.Lock()
	due := now.Sub(n.lastSweep) >= nonceSweepEvery
	if due {
		n.lastSweep = now
	}
	n.mu.Unlock()
	if !due {
		return
	}
	_, _ = n.db.ExecContext(ctx,
		`DELETE FROM signature_nonces WHERE key IN
		 (SELECT key FROM signature_nonces WHERE expires_at <= ? ORDER BY expires_at LIMIT ?)`,
		now.UnixNano(), nonceSweepBatch)
}

// Len is the number of remembered nonces, expired ones not yet swept included (for tests).
func (n *Nonces) Len(ctx context.Context) (int, error) {
	var c int
	if err := n.db.QueryRowContext(ctx, `SELECT count(*) FROM signature_nonces`).Scan(&c); err != nil {
		return 0, fmt.Errorf("count nonces: %w", err)
	}
	return c, nil
}

// Close closes the database if OpenNonces opened it.
func (n *Nonces) Close() error {
	if !n.owned {
		return nil
	}
	if err := n.db.Close(); err != nil {
		return fmt.Errorf("close nonces: %w", err)
	}
	return nil
}
