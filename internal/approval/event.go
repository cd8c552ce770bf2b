package approval

import (
	"context"
	"sync"
	"time"
)

// Event kinds, as the ledger records them.
const (
	// KindRequested: a CONSTRAIN decision created a pending request.
	KindRequested = "approval_requested"
	// KindVote: one approval of an N-of-M request (N > 1) that is still short of N.
	KindVote = "approval_vote"
	// KindResolved: the request left pending — approved, denied or expired.
	KindResolved = "approval_resolved"
	// KindConsumed: the grant was redeemed by the one call it allows (or expired unused).
	KindConsumed = "approval_consumed"
	// KindAborted: an event recorded before its change committed, whose change did not commit
	// (a failed COMMIT, an aborted transaction). It names the event in its comment; To is the
	// state that stands.
	KindAborted = "approval_aborted"
)

// Event is one state change of a request, handed to the Recorder before the change commits.
type Event struct {
	Kind       string    `json:"kind"`
	ApprovalID string    `json:"approval_id"`
	DecisionID string    `json:"decision_id"`
	From       State     `json:"from,omitempty"`
	To         State     `json:"to"`
	Actor      string    `json:"actor,omitempty"` // approver ID; the agent for a redemption; "" for expiry
	Comment    string    `json:"comment,omitempty"`
	At         time.Time `json:"at"`
	// TimeToResolution is At minus the request's creation, for resolutions and votes.
	TimeToResolution time.Duration `json:"time_to_resolution,omitempty"`
	// PolicyVersion is the version current at the event: the request's for approval_requested,
	// the redeeming call's for approval_consumed.
	PolicyVersion string `json:"policy_version,omitempty"`
	// Request is the request as it will be after the change.
	Request Request `json:"request"`
}

// Recorder receives every state change before it is committed (see Store). The guard pipeline
// implements it by appending the event to the ledger durably; an error aborts the change.
type Recorder interface {
	RecordApproval(ctx context.Context, e Event) error
}

// RecorderFunc adapts a function to Recorder.
type RecorderFunc func(ctx context.Context, e Event) error

// RecordApproval implements Recorder.
func (f RecorderFunc) RecordApproval(ctx context.Context, e Event) error { return f(ctx, e) }

// Notifier wakes long-pollers when a request changes. Hub is the in-process implementation; a
// multi-replica deployment plugs in one that also listens to the others (PostgreSQL
// LISTEN/NOTIFY, or polling the store) and calls Notify locally. A notification only says "look
// again": Wait always re-reads the store, so a lost or spurious notification costs latency, never
// correctness.
type Notifier interface {
	// Subscribe returns a channel that receives (without blocking the sender, coalesced) when id
	// changes, and a function that ends the subscription.
	Subscribe(id string) (<-chan struct{}, func())
	// Notify tells subscribers of id that it changed.
	Notify(id string)
}

// Announcer is told about every new pending request after it has committed, e.g. to send the
// webhook. It must not block: Announce is called on the request path.
type Announcer interface {
	Announce(r Request)
}

// Hub is an in-process Notifier.
type Hub struct {
	mu   sync.Mutex
	subs map[string]map[chan struct{}]struct{}
}

var _ Notifier = (*Hub)(nil)

// NewHub returns an empty hub.
func NewHub() *Hub { return &Hub{subs: make(map[string]map[chan struct{}]struct{})} }

// Subscribe implements Notifier.
func (h *Hub) Subscribe(id string) (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	h.mu.Lock()
	set := h.subs[id]
	if set == nil {
		set = make(map[chan struct{}]struct{})
		h.subs[id] = set
	}
	set[ch] = struct{}{}
	h.mu.Unlock()
	var once sync.Once
	return ch, func() {
		once.Do(func() {
			h.mu.Lock()
			delete(h.subs[id], ch)
			if len(h.subs[id]) == 0 {
				delete(h.subs, id)
			}
			h.mu.Unlock()
		})
	}
}

// Notify implements Notifier.
func (h *Hub) Notify(id string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for ch := range h.subs[id] {
		select {
		case ch <- struct{}{}:
		default: // one pending wake-up is enough
		}
	}
}

// NotifyAll wakes every subscriber of every request. A cross-process notifier calls it after
// it may have missed notifications (a dropped LISTEN connection): waiters re-read the store.
func (h *Hub) NotifyAll() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, set := range h.subs {
		for ch := range set {
			select {
			case ch <- struct{}{}:
			default:
			}
		}
	}
}

// subscribers reports how many subscriptions id has (for tests of leak-freedom).
func (h *Hub) subscribers(id string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.subs[id])
}
