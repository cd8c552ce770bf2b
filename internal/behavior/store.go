// Package behavior is continuous verification: it remembers what each agent does and turns it
// into the signals policies read — sliding-window call counts per (agent, tool), an hour-of-week
// baseline per agent — and into anomaly findings (a burst far above the agent's normal rate, the
// first use of a tool, parameters far larger than usual, an hour the agent rarely acts in) that
// raise a call's threat level.
//
// It owns Call, Snapshot, the Store interface with its in-memory implementation, and Tracker;
// and the session state (what each session has seen, the calls models proposed in it, the
// links naming it) with its in-memory implementations.
// It imports internal/inspect only for the Finding type and internal/threat for levels; it must
// not import the policy engine, the ledger, guard, transports, HTTP, or database drivers (the
// Redis store lives in internal/store/redis and implements Store).
//
// Behaviour is on the decision path: a store that cannot answer returns an error, and the
// caller denies. Nothing here ever counts zero because it could not count.
package behavior

import (
	"context"
	"errors"
	"time"
)

// Call is one tool call, as behaviour sees it.
type Call struct {
	Agent string
	Tool  string
	// At is when the call was made; Tracker fills in time.Now() when zero.
	At time.Time
	// ParamSize is the size of the call's parameters in bytes (the JSON as received).
	ParamSize int
}

// Query says which windows a Record must count.
type Query struct {
	// Windows are the (agent, tool) call-count windows to report, each at most the store's maximum.
	Windows []time.Duration
	// BurstWindow is the window of the agent-wide count used for burst detection.
	BurstWindow time.Duration
}

// Snapshot is what a store knew just before a call (the history) plus the counts just after
// it (the windows, which include the call itself).
type Snapshot struct {
	// History of the agent before this call.
	AgentCalls         int64     // calls by the agent, all tools
	AgentActiveMinutes int64     // distinct UTC minutes in which the agent made a call
	AgentFirstSeen     time.Time // zero for a new agent
	// HourCalls is the agent's earlier calls in this call's hour-of-week bucket. (The total
	// over all 168 buckets is AgentCalls: every call lands in exactly one.)
	HourCalls int64
	// History of (agent, tool) before this call.
	ToolCalls  int64
	ParamN     int64
	ParamSum   float64
	ParamSumSq float64
	// Counts including this call.
	WindowCounts []int // one per Query.Windows, same order
	AgentBurst   int   // the agent's calls (all tools) within Query.BurstWindow
}

// HoursPerWeek is the number of hour-of-week buckets: Monday 00:00–00:59 UTC is bucket 0.
const HoursPerWeek = 168

// HourOfWeek returns t's bucket, in UTC, Monday first.
func HourOfWeek(t time.Time) int {
	t = t.UTC()
	day := (int(t.Weekday()) + 6) % 7 // Monday = 0
	return day*24 + t.Hour()
}

// Store keeps behaviour state. Record must be atomic per agent: two concurrent calls never see
// the same "before" history or lose a count. Implementations resolve time to whole seconds: a
// call at second s is inside window w at second n when s > n - w.
type Store interface {
	// Record adds c and returns the snapshot for it.
	Record(ctx context.Context, c Call, q Query) (Snapshot, error)
	// Count returns the calls agent made to tool in the window ending at now (without recording).
	Count(ctx context.Context, agent, tool string, window time.Duration, now time.Time) (int, error)
}

// Errors stores return; callers deny on any error.
var (
	ErrWindow   = errors.New("behavior: window is not within (0, the store's maximum window]")
	ErrCapacity = errors.New("behavior: store is full (too many agents or tools per agent)")
	ErrInvalid  = errors.New("behavior: invalid call (empty agent or tool)")
)
