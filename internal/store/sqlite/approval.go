// Package sqlite is the embedded default store: one SQLite file (modernc.org/sqlite, pure Go,
// WAL) implementing the engines' store interfaces, each in its own file with its own tables.
// It points inward at the interfaces it implements and must not be imported by the engines.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/portcullis-ai/portcullis/internal/approval"

	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver
)

// approvalSchema is created on open. Each request is stored whole as JSON (body) plus the
// columns queries filter on. deadline is the unix-nanosecond time the request expires in its
// current state (ExpiresAt while pending, GrantExpiresAt while approved), NULL when final.
const approvalSchema = `
CREATE TABLE IF NOT EXISTS approval_requests (
	id         TEXT PRIMARY KEY,
	state      TEXT NOT NULL,
	agent      TEXT NOT NULL,
	tool       TEXT NOT NULL,
	created_at INTEGER NOT NULL,
	deadline   INTEGER,
	revision   INTEGER NOT NULL,
	body       BLOB NOT NULL
) STRICT;
CREATE INDEX IF NOT EXISTS approval_requests_state_deadline ON approval_requests (state, deadline);
CREATE INDEX IF NOT EXISTS approval_requests_created ON approval_requests (created_at, id);
`

// Approvals is an approval.Store in a SQLite database.
//
// Writes run in BEGIN IMMEDIATE transactions on a dedicated connection, so the row read by
// Update cannot change before the write (SQLite's write lock), and the UPDATE also checks the
// revision it read (compare-and-set) so a logic error can never silently overwrite. An
// in-process mutex queues this process's writers instead of letting them spin on SQLITE_BUSY.
type Approvals struct {
	db    *sql.DB
	owned bool
	mu    sync.Mutex
}

var _ approval.Store = (*Approvals)(nil)

// OpenApprovals opens (creating if needed) the SQLite database at path with WAL and full
// fsync on commit, and prepares the approval tables.
func OpenApprovals(ctx context.Context, path string) (*Approvals, error) {
	if path == "" {
		return nil, fmt.Errorf("open approvals: empty database path")
	}
	db, err := sql.Open("sqlite", dsn(path, nil, "busy_timeout(10000)", "journal_mode(WAL)", "synchronous(FULL)"))
	if err != nil {
		return nil, fmt.Errorf("open approvals %s: %w", path, err)
	}
	bound(db, approvalConns)
	a, err := NewApprovals(ctx, db)
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("open approvals %s: %w", path, err)
	}
	a.owned = true
	return a, nil
}

// NewApprovals prepares the approval tables in an already open database and returns a store on
// it. Close does not close a shared handle.
//
// Create and Update hold SQLite's write lock while the engine records the event, so the
// Recorder must not write to this same database file from another connection (it would wait
// for the lock until busy_timeout and fail, closed). Keep the ledger in its own file.
func NewApprovals(ctx context.Context, db *sql.DB) (*Approvals, error) {
	if _, err := db.ExecContext(ctx, approvalSchema); err != nil {
		return nil, fmt.Errorf("create approval tables: %w", err)
	}
	return &Approvals{db: db}, nil
}

// Close closes the database if OpenApprovals opened it.
func (a *Approvals) Close() error {
	if !a.owned {
		return nil
	}
	if err := a.db.Close(); err != nil {
		return fmt.Errorf("close approvals: %w", err)
	}
	return nil
}

// Create implements approval.Store.
func (a *Approvals) Create(ctx context.Context, r approval.Request, before func(approval.Request) error) error {
	if err := r.Validate(); err != nil {
		return fmt.Errorf("create approval %s: %w", r.ID, err)
	}
	body, err := approval.EncodeRequest(&r)
	if err != nil {
		return fmt.Errorf("create approval %s: %w", r.ID, err)
	}
	return a.inTx(ctx, func(c *sql.Conn) error {
		var one int
		err := c.QueryRowContext(ctx, `SELECT 1 FROM approval_requests WHERE id = ?`, r.ID).Scan(&one)
		switch {
		case err == nil:
			return fmt.Errorf("create approval %s: %w", r.ID, approval.ErrExists)
		case !errors.Is(err, sql.ErrNoRows):
			return fmt.Errorf("create approval %s: %w", r.ID, err)
		}
		if _, err := c.ExecContext(ctx,
			`INSERT INTO approval_requests (id, state, agent, tool, created_at, deadline, revision, body)
			 VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
			r.ID, string(r.State), r.Agent, r.Tool, r.CreatedAt.UnixNano(), approvalDeadline(&r), r.Revision, body,
		); err != nil {
			return fmt.Errorf("create approval %s: %w", r.ID, err)
		}
		if before != nil {
			if err := before(r.Clone()); err != nil {
				return err
			}
		}
		return nil
	})
}

// Get implements approval.Store.
func (a *Approvals) Get(ctx context.Context, id string) (approval.Request, error) {
	var body []byte
	err := a.db.QueryRowContext(ctx, `SELECT body FROM approval_requests WHERE id = ?`, id).Scan(&body)
	if errors.Is(err, sql.ErrNoRows) {
		return approval.Request{}, fmt.Errorf("get approval %s: %w", id, approval.ErrNotFound)
	}
	if err != nil {
		return approval.Request{}, fmt.Errorf("get approval %s: %w", id, err)
	}
	r, err := approval.DecodeRequest(body)
	if err != nil {
		return approval.Request{}, fmt.Errorf("get approval %s: %w", id, err)
	}
	return r, nil
}

// List implements approval.Store.
func (a *Approvals) List(ctx context.Context, f approval.Filter) ([]approval.Request, error) {
	var where []string
	var args []any
	if len(f.States) > 0 {
		where = append(where, "state IN (?"+strings.Repeat(", ?", len(f.States)-1)+")")
		for _, s := range f.States {
			args = append(args, string(s))
		}
	}
	if f.Agent != "" {
		where = append(where, "agent = ?")
		args = append(args, f.Agent)
	}
	if f.Tool != "" {
		where = append(where, "tool = ?")
		args = append(args, f.Tool)
	}
	if !f.DueBy.IsZero() {
		where = append(where, "deadline IS NOT NULL AND deadline <= ?")
		args = append(args, f.DueBy.UnixNano())
	}
	q := `SELECT agent, tool, body FROM approval_requests`
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += " ORDER BY created_at, id"
	// With a visibility filter the limit counts visible requests only: the rows are read in
	// order and reading stops after Limit of them (the filter cannot be said in SQL).
	if f.Limit > 0 && f.Visible == nil {
		q += " LIMIT ?"
		args = append(args, f.Limit)
	}
	rows, err := a.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list approvals: %w", err)
	}
	defer rows.Close()
	out := []approval.Request{}
	for rows.Next() {
		var agent, tool string
		var body []byte
		if err := rows.Scan(&agent, &tool, &body); err != nil {
			return nil, fmt.Errorf("list approvals: %w", err)
		}
		if f.Visible != nil && !f.Visible(agent, tool) {
			continue
		}
		r, err := approval.DecodeRequest(body)
		if err != nil {
			return nil, fmt.Errorf("list approvals: %w", err)
		}
		if r.Agent != agent || r.Tool != tool {
			// The columns the filter read disagree with the body returned: refuse rather than
			// show a request outside the approver's scope.
			return nil, fmt.Errorf("list approvals: request %s: columns disagree with its body", r.ID)
		}
		out = append(out, r)
		if f.Limit > 0 && len(out) >= f.Limit {
			break
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list approvals: %w", err)
	}
	return out, nil
}

// Update implements approval.Store.
func (a *Approvals) Update(ctx context.Context, id string, fn func(*approval.Request) error) (approval.Request, error) {
	var next approval.Request
	err := a.inTx(ctx, func(c *sql.Conn) error {
		var body []byte
		err := c.QueryRowContext(ctx, `SELECT body FROM approval_requests WHERE id = ?`, id).Scan(&body)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("update approval %s: %w", id, approval.ErrNotFound)
		}
		if err != nil {
			return fmt.Errorf("update approval %s: %w", id, err)
		}
		cur, err := approval.DecodeRequest(body)
		if err != nil {
			return fmt.Errorf("update approval %s: %w", id, err)
		}
		next = cur.Clone()
		if err := fn(&next); err != nil {
			return err
		}
		next.ID, next.Revision = cur.ID, cur.Revision+1
		if err := next.Validate(); err != nil {
			return fmt.Errorf("update approval %s: %w", id, err)
		}
		nb, err := approval.EncodeRequest(&next)
		if err != nil {
			return fmt.Errorf("update approval %s: %w", id, err)
		}
		res, err := c.ExecContext(ctx,
			`UPDATE approval_requests SET state = ?, agent = ?, tool = ?, deadline = ?, revision = ?, body = ?
			 WHERE id = ? AND revision = ?`,
			string(next.State), next.Agent, next.Tool, approvalDeadline(&next), next.Revision, nb, id, cur.Revision)
		if err != nil {
			return fmt.Errorf("update approval %s: %w", id, err)
		}
		if n, err := res.RowsAffected(); err != nil || n != 1 {
			return fmt.Errorf("update approval %s: %w (rows %d, %v)", id, approval.ErrConflict, n, err)
		}
		return nil
	})
	if err != nil {
		return approval.Request{}, err
	}
	return next, nil
}

// inTx runs fn inside BEGIN IMMEDIATE … COMMIT on one connection, rolling back on any error.
// A COMMIT that fails is reported: the caller then acknowledges nothing.
func (a *Approvals) inTx(ctx context.Context, fn func(*sql.Conn) error) (err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	c, err := a.db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("approval store connection: %w", err)
	}
	defer c.Close()
	if _, err := c.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		return fmt.Errorf("approval store begin: %w", err)
	}
	defer func() {
		if err != nil {
			// Roll back even when ctx is cancelled: the connection must go back to the pool clean.
			if _, rbErr := c.ExecContext(context.Background(), "ROLLBACK"); rbErr != nil {
				err = errors.Join(err, fmt.Errorf("approval store rollback: %w", rbErr))
			}
		}
	}()
	if err := fn(c); err != nil {
		return err
	}
	if _, err := c.ExecContext(ctx, "COMMIT"); err != nil {
		return fmt.Errorf("approval store commit: %w", err)
	}
	return nil
}

func approvalDeadline(r *approval.Request) any {
	if d, ok := r.Deadline(); ok {
		return d.UnixNano()
	}
	return nil
}
