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

// lookup returns the tool of id's allowed decision if it was made for agent within the last ttl.
func (r *recentDecisions) lookup(id, agent string, now time.Time) (tool string, ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	d, found := r.byID[id]
	if !found || d.agent != agent || now.Sub(d.at) > r.ttl {
		return "", false
	}
	return d.tool, true
}
