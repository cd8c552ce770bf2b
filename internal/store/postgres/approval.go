// Package postgres implements the engines' store interfaces on PostgreSQL (jackc/pgx v5), for
// deployments where several gateway replicas share state. Each store has its own file and
// tables. It points inward at the interfaces it implements and must not be imported by the engines.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/portcullis-ai/portcullis/internal/approval"
)

const approvalSchema = `
CREATE TABLE IF NOT EXISTS approval_requests (
	id         TEXT PRIMARY KEY,
	state      TEXT NOT NULL,
	agent      TEXT NOT NULL,
	tool       TEXT NOT NULL,
	created_at BIGINT NOT NULL,
	deadline   BIGINT,
	revision   BIGINT NOT NULL,
	body       BYTEA NOT NULL
);
CREATE INDEX IF NOT EXISTS approval_requests_state_deadline ON approval_requests (state, deadline);
CREATE INDEX IF NOT EXISTS approval_requests_created ON approval_requests (created_at, id);
`

// Approvals is an approval.Store on PostgreSQL. Update locks the row (SELECT … FOR UPDATE)
// for the length of its transaction, so concurrent replicas serialise on a request, and the
// UPDATE re-checks the revision it read.
type Approvals struct {
	pool *pgxpool.Pool
}

var _ approval.Store = (*Approvals)(nil)

// NewApprovals prepares the approval tables on pool and returns a store on it.
func NewApprovals(ctx context.Context, pool *pgxpool.Pool) (*Approvals, error) {
	err := migrate(ctx, pool, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, approvalSchema)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("create approval tables: %w", err)
	}
	return &Approvals{pool: pool}, nil
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
	return pgx.BeginFunc(ctx, a.pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx,
			`INSERT INTO approval_requests (id, state, agent, tool, created_at, deadline, revision, body)
			 VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (id) DO NOTHING`,
			r.ID, string(r.State), r.Agent, r.Tool, r.CreatedAt.UnixNano(), approvalDeadline(&r), r.Revision, body)
		if err != nil {
			return fmt.Errorf("create approval %s: %w", r.ID, err)
		}
		if tag.RowsAffected() != 1 {
			return fmt.Errorf("create approval %s: %w", r.ID, approval.ErrExists)
		}
		if before != nil {
			return before(r.Clone())
		}
		return nil
	})
}

// Get implements approval.Store.
func (a *Approvals) Get(ctx context.Context, id string) (approval.Request, error) {
	var body []byte
	err := a.pool.QueryRow(ctx, `SELECT body FROM approval_requests WHERE id = $1`, id).Scan(&body)
	if errors.Is(err, pgx.ErrNoRows) {
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
	arg := func(v any) string {
		args = append(args, v)
		return fmt.Sprintf("$%d", len(args))
	}
	if len(f.States) > 0 {
		states := make([]string, len(f.States))
		for i, s := range f.States {
			states[i] = string(s)
		}
		where = append(where, "state = ANY("+arg(states)+")")
	}
	if f.Agent != "" {
		where = append(where, "agent = "+arg(f.Agent))
	}
	if f.Tool != "" {
		where = append(where, "tool = "+arg(f.Tool))
	}
	if !f.DueBy.IsZero() {
		where = append(where, "deadline IS NOT NULL AND deadline <= "+arg(f.DueBy.UnixNano()))
	}
	q := `SELECT agent, tool, body FROM approval_requests`
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += " ORDER BY created_at, id"
	// With a visibility filter the limit counts visible requests only: the rows are read in
	// order and reading stops after Limit of them (the filter cannot be said in SQL).
	if f.Limit > 0 && f.Visible == nil {
		q += " LIMIT " + arg(f.Limit)
	}
	rows, err := a.pool.Query(ctx, q, args...)
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
	err := pgx.BeginFunc(ctx, a.pool, func(tx pgx.Tx) error {
		var body []byte
		err := tx.QueryRow(ctx, `SELECT body FROM approval_requests WHERE id = $1 FOR UPDATE`, id).Scan(&body)
		if errors.Is(err, pgx.ErrNoRows) {
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
		tag, err := tx.Exec(ctx,
			`UPDATE approval_requests SET state = $1, agent = $2, tool = $3, deadline = $4, revision = $5, body = $6
			 WHERE id = $7 AND revision = $8`,
			string(next.State), next.Agent, next.Tool, approvalDeadline(&next), next.Revision, nb, id, cur.Revision)
		if err != nil {
			return fmt.Errorf("update approval %s: %w", id, err)
		}
		if tag.RowsAffected() != 1 {
			return fmt.Errorf("update approval %s: %w", id, approval.ErrConflict)
		}
		return nil
	})
	if err != nil {
		return approval.Request{}, err
	}
	return next, nil
}

func approvalDeadline(r *approval.Request) any {
	if d, ok := r.Deadline(); ok {
		return d.UnixNano()
	}
	return nil
}

// ApprovalChannel is the LISTEN/NOTIFY channel approval changes are announced on.
const ApprovalChannel = "portcullis_approvals"

// ApprovalNotifier is an approval.Notifier for replicas sharing one database: Notify wakes
// local waiters and sends NOTIFY so the other replicas' Run loops wake theirs. A notification
// only says "look again"; waiters always re-read the store.
type ApprovalNotifier struct {
	pool    *pgxpool.Pool
	hub     *approval.Hub
	onError func(error)
	ready   chan struct{}
	once    sync.Once
}

var _ approval.Notifier = (*ApprovalNotifier)(nil)

// NewApprovalNotifier returns a notifier on pool. Call Run to receive other replicas'
// notifications. onError (may be nil) hears about failed NOTIFYs and lost connections.
func NewApprovalNotifier(pool *pgxpool.Pool, onError func(error)) *ApprovalNotifier {
	return &ApprovalNotifier{pool: pool, hub: approval.NewHub(), onError: onError, ready: make(chan struct{})}
}

// Subscribe implements approval.Notifier.
func (n *ApprovalNotifier) Subscribe(id string) (<-chan struct{}, func()) { return n.hub.Subscribe(id) }

// Notify implements approval.Notifier.
func (n *ApprovalNotifier) Notify(id string) {
	n.hub.Notify(id)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := n.pool.Exec(ctx, `SELECT pg_notify($1, $2)`, ApprovalChannel, id); err != nil {
		n.report(fmt.Errorf("notify approval %s: %w", id, err))
	}
}

// Ready is closed once Run is listening for the first time.
func (n *ApprovalNotifier) Ready() <-chan struct{} { return n.ready }

// Run listens for other replicas' notifications until ctx ends. When the connection drops it
// reconnects and wakes every local waiter, since notifications sent meanwhile were lost.
func (n *ApprovalNotifier) Run(ctx context.Context) error {
	delay := 100 * time.Millisecond
	for {
		err := n.listen(ctx)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		n.report(fmt.Errorf("listen for approvals: %w", err))
		n.hub.NotifyAll()
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		delay = min(2*delay, 10*time.Second)
	}
}

func (n *ApprovalNotifier) listen(ctx context.Context) error {
	conn, err := n.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	// The connection is in LISTEN mode: never hand it back to the pool for other queries.
	pc := conn.Hijack()
	defer pc.Close(context.Background())
	if _, err := pc.Exec(ctx, "LISTEN "+pgx.Identifier{ApprovalChannel}.Sanitize()); err != nil {
		return err
	}
	n.once.Do(func() { close(n.ready) })
	for {
		note, err := pc.WaitForNotification(ctx)
		if err != nil {
			return err
		}
		n.hub.Notify(note.Payload)
	}
}

func (n *ApprovalNotifier) report(err error) {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		err = fmt.Errorf("%w (sqlstate %s)", err, pgErr.Code)
	}
	if n.onError != nil {
		n.onError(err)
	}
}
