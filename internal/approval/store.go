package approval

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"sync"
	"time"
)

// Store keeps approval requests durably. Implementations: Memory (tests, single process),
// internal/store/sqlite (the embedded default); internal/store/storetest holds the contract
// suite every implementation must pass.
//
// Create and Update are transactions with a hook: the hook runs after the row is read (and
// locked) and before the change commits, and an error from it aborts the change. The engine
// writes the ledger event from the hook, so a change that was not recorded is never committed
// and never acknowledged.
type Store interface {
	// Create inserts r (ErrExists if its ID is taken), calling before(r) inside the transaction.
	Create(ctx context.Context, r Request, before func(Request) error) error
	// Get returns the request with id, or ErrNotFound.
	Get(ctx context.Context, id string) (Request, error)
	// List returns the requests matching f, oldest first.
	List(ctx context.Context, f Filter) ([]Request, error)
	// Update reads the request with id under an exclusive lock, lets fn change it and, if fn
	// returns nil, stores the result with Revision+1 — compare-and-set on the revision read, so
	// two updates can never both win. An error from fn (or ErrNotFound) aborts with nothing stored.
	Update(ctx context.Context, id string, fn func(*Request) error) (Request, error)
}

// Filter selects requests for List. Zero fields select everything.
type Filter struct {
	States []State
	Agent  string
	Tool   string
	// DueBy, when set, selects requests whose current deadline is at or before it: ExpiresAt
	// for pending requests, GrantExpiresAt for approved ones (the expiry sweeper uses it).
	DueBy time.Time
	// Visible, when set, selects only requests it accepts (an approver's scope: Approver.Covers).
	// Stores apply it before Limit, so that requests an approver may not see cannot crowd the
	// ones they may out of a page. It is Go code (scopes are RE2 patterns, which no SQL dialect
	// matches the same way), so stores stream rows in order and stop after Limit visible ones.
	Visible func(agent, tool string) bool
	Limit   int
}

// Match reports whether r passes f (ignoring Limit). Stores may use it after a coarse query.
func (f Filter) Match(r *Request) bool {
	if len(f.States) > 0 {
		ok := false
		for _, s := range f.States {
			if r.State == s {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	if f.Agent != "" && r.Agent != f.Agent {
		return false
	}
	if f.Tool != "" && r.Tool != f.Tool {
		return false
	}
	if !f.DueBy.IsZero() {
		d, ok := r.Deadline()
		if !ok || d.After(f.DueBy) {
			return false
		}
	}
	if f.Visible != nil && !f.Visible(r.Agent, r.Tool) {
		return false
	}
	return true
}

// Deadline returns when r expires in its current state: ExpiresAt while pending,
// GrantExpiresAt while approved; final states have none.
func (r *Request) Deadline() (time.Time, bool) {
	switch r.State {
	case Pending:
		return r.ExpiresAt, true
	case Approved:
		return r.GrantExpiresAt, true
	}
	return time.Time{}, false
}

// Memory is an in-process Store. It is safe for concurrent use; one mutex serialises writes,
// which is ample for human-rate approvals.
type Memory struct {
	mu   sync.Mutex
	reqs map[string]Request
}

var _ Store = (*Memory)(nil)

// NewMemory returns an empty in-memory store.
func NewMemory() *Memory { return &Memory{reqs: make(map[string]Request)} }

// Create implements Store.
func (m *Memory) Create(ctx context.Context, r Request, before func(Request) error) error {
	if err := r.Validate(); err != nil {
		return fmt.Errorf("create approval %s: %w", r.ID, err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("create approval %s: %w", r.ID, err)
	}
	if _, ok := m.reqs[r.ID]; ok {
		return fmt.Errorf("create approval %s: %w", r.ID, ErrExists)
	}
	r = r.Clone()
	if before != nil {
		if err := before(r.Clone()); err != nil {
			return err
		}
	}
	m.reqs[r.ID] = r
	return nil
}

// Get implements Store.
func (m *Memory) Get(ctx context.Context, id string) (Request, error) {
	if err := ctx.Err(); err != nil {
		return Request{}, fmt.Errorf("get approval %s: %w", id, err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	r, ok := m.reqs[id]
	if !ok {
		return Request{}, fmt.Errorf("get approval %s: %w", id, ErrNotFound)
	}
	return r.Clone(), nil
}

// List implements Store.
func (m *Memory) List(ctx context.Context, f Filter) ([]Request, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("list approvals: %w", err)
	}
	m.mu.Lock()
	out := make([]Request, 0)
	for _, r := range m.reqs {
		if f.Match(&r) {
			out = append(out, r.Clone())
		}
	}
	m.mu.Unlock()
	sort.Slice(out, func(i, j int) bool {
		if !out[i].CreatedAt.Equal(out[j].CreatedAt) {
			return out[i].CreatedAt.Before(out[j].CreatedAt)
		}
		return out[i].ID < out[j].ID
	})
	if f.Limit > 0 && len(out) > f.Limit {
		out = out[:f.Limit]
	}
	return out, nil
}

// Update implements Store.
func (m *Memory) Update(ctx context.Context, id string, fn func(*Request) error) (Request, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return Request{}, fmt.Errorf("update approval %s: %w", id, err)
	}
	cur, ok := m.reqs[id]
	if !ok {
		return Request{}, fmt.Errorf("update approval %s: %w", id, ErrNotFound)
	}
	next := cur.Clone()
	if err := fn(&next); err != nil {
		return Request{}, err
	}
	next.ID = cur.ID
	next.Revision = cur.Revision + 1
	if err := next.Validate(); err != nil {
		return Request{}, fmt.Errorf("update approval %s: %w", id, err)
	}
	m.reqs[id] = next
	return next.Clone(), nil
}

// EncodeRequest is the stored form of a request for stores that keep it as a document: JSON
// without HTML escaping, so the redacted parameters come back byte for byte (json.Marshal would
// rewrite '<' inside them as \u003c).
func EncodeRequest(r *Request) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(r); err != nil {
		return nil, fmt.Errorf("encode approval %s: %w", r.ID, err)
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

// DecodeRequest reads what EncodeRequest wrote and checks it is a valid request, so a corrupt
// row is an error rather than a request in an impossible state.
func DecodeRequest(body []byte) (Request, error) {
	var r Request
	if err := json.Unmarshal(body, &r); err != nil {
		return Request{}, fmt.Errorf("decode approval: %w", err)
	}
	if err := r.Validate(); err != nil {
		return Request{}, fmt.Errorf("decode approval %s: %w", r.ID, err)
	}
	if r.Params != nil {
		r.Params = append(json.RawMessage(nil), r.Params...)
	}
	for _, t := range []*time.Time{&r.CreatedAt, &r.ExpiresAt, &r.ResolvedAt, &r.GrantExpiresAt, &r.ConsumedAt} {
		if !t.IsZero() {
			*t = t.UTC()
		}
	}
	return r, nil
}
