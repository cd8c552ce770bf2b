package guard

import (
	"sync"
	"time"
)

// recentDecisions remembers which agent got which allowed decision, so that an outcome is
// accepted only from the agent the decision was made for, about the tool it named. It is bounded:
// the oldest entries go first (FIFO), and entries older than ttl are refused.
type recentDecisions struct {
	mu    sync.Mutex
	ttl   time.Duration
	max   int
	byID  map[string]recentDecision
	order []string // ring of IDs in insertion order
	next  int
}

type recentDecision struct {
	agent, tool string
	at          time.Time
	reported    bool // an outcome was accepted: the next one is refused
}

func newRecentDecisions(max int, ttl time.Duration) *recentDecisions {
	return &recentDecisions{ttl: ttl, max: max, byID: make(map[string]recentDecision, max), order: make([]string, max)}
}

func (r *recentDecisions) add(id, agent, tool string, at time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if old := r.order[r.next]; old != "" {
		delete(r.byID, old)
	}
	r.order[r.next] = id
	r.next = (r.next + 1) % r.max
	r.byID[id] = recentDecision{agent: agent, tool: tool, at: at}
}

// claim returns the tool of id's allowed decision if it was made for agent within the last ttl
// (and, when tool is not empty, for that tool), and marks its outcome reported: one outcome per
// decision. A report naming another tool is unknown and does not spend the claim. A second report of the same decision
// finds it reported (already = true) — otherwise every report would be inspected and recorded
// again, a free oracle for the result detectors and a way to bury the real outcome in the ledger.
// The decision lives only in the process that made it, so on any other replica an outcome is
// unknown_decision, and the claim holds across replicas too.
func (r *recentDecisions) claim(id, agent, tool string, now time.Time) (decided string, ok, already bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	d, found := r.byID[id]
	if !found || d.agent != agent || now.Sub(d.at) > r.ttl || (tool != "" && tool != d.tool) {
		return "", false, false
	}
	if d.reported {
		return d.tool, false, true
	}
	d.reported = true
	r.byID[id] = d
	return d.tool, true, false
}
