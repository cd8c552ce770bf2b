package behavior

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// MemoryOptions bound a MemoryStore.
type MemoryOptions struct {
	// MaxWindow is the longest window that can be counted; history older than it is dropped.
	// Default 24h.
	MaxWindow time.Duration
	// IdleTTL: an agent with no call for this long is forgotten, baseline and all. Default 30 days.
	IdleTTL time.Duration
	// MaxAgents and MaxToolsPerAgent bound memory. Past them Record fails with ErrCapacity (the
	// call is denied) rather than forgetting another tool's counts, which would let an attacker
	// reset a rate limit by calling many tools. Defaults 100,000 and 1,000.
	MaxAgents        int
	MaxToolsPerAgent int
}

func (o MemoryOptions) withDefaults() MemoryOptions {
	if o.MaxWindow <= 0 {
		o.MaxWindow = 24 * time.Hour
	}
	if o.IdleTTL <= 0 {
		o.IdleTTL = 30 * 24 * time.Hour
	}
	if o.MaxAgents <= 0 {
		o.MaxAgents = 100_000
	}
	if o.MaxToolsPerAgent <= 0 {
		o.MaxToolsPerAgent = 1_000
	}
	return o
}

// MemoryStore is the embedded Store. Each agent has its own lock, so calls of different agents
// do not contend; per call the work is O(log n) in the number of distinct seconds in the window.
// Memory per (agent, tool) is at most one 16-byte entry per second of MaxWindow with calls in it.
type MemoryStore struct {
	opt MemoryOptions

	mu        sync.RWMutex
	agents    map[string]*agentState
	lastSweep atomic.Int64 // unix seconds of the last idle sweep
}

var _ Store = (*MemoryStore)(nil)

// NewMemoryStore returns an empty store.
func NewMemoryStore(opt MemoryOptions) *MemoryStore {
	return &MemoryStore{opt: opt.withDefaults(), agents: map[string]*agentState{}}
}

type agentState struct {
	mu            sync.Mutex
	lastSeen      time.Time
	calls         int64
	activeMinutes int64
	lastMinute    int64
	firstSeen     time.Time
	hours         [HoursPerWeek]int64
	recent        secWindow
	tools         map[string]*toolState
	evicted       bool
}

type toolState struct {
	calls      int64
	paramN     int64
	sum, sumSq float64
	win        secWindow
}

// secWindow is a sliding window of call counts at one-second resolution: entries of (second,
// running total) in time order, so a window count is one binary search.
type secWindow struct {
	secs []int64
	cum  []int64
	head int   // first live entry
	base int64 // running total before the first live entry
}

func (w *secWindow) add(sec int64) {
	n := len(w.secs)
	total := w.base
	if n > w.head {
		total = w.cum[n-1]
		if sec <= w.secs[n-1] {
			// Same second (or a clock step back): count it in the latest second.
			w.cum[n-1]++
			return
		}
	}
	w.secs = append(w.secs, sec)
	w.cum = append(w.cum, total+1)
}

// prune drops entries at or before cutoff.
func (w *secWindow) prune(cutoff int64) {
	for w.head < len(w.secs) && w.secs[w.head] <= cutoff {
		w.base = w.cum[w.head]
		w.head++
	}
	if w.head > 64 && w.head > len(w.secs)/2 {
		w.secs = append(w.secs[:0:0], w.secs[w.head:]...)
		w.cum = append(w.cum[:0:0], w.cum[w.head:]...)
		w.head = 0
	}
}

// count returns the calls in seconds (now-window, now].
func (w *secWindow) count(now, window int64) int {
	live := w.secs[w.head:]
	if len(live) == 0 {
		return 0
	}
	cutoff := now - window
	i := sort.Search(len(live), func(i int) bool { return live[i] > cutoff })
	before := w.base
	if i > 0 {
		before = w.cum[w.head+i-1]
	}
	// Entries after now (a caller's clock ahead of ours) still count: they happened.
	return int(w.cum[len(w.cum)-1] - before)
}

func (m *MemoryStore) checkWindow(w time.Duration) error {
	if w <= 0 || w > m.opt.MaxWindow {
		return fmt.Errorf("%w: %s (maximum %s)", ErrWindow, w, m.opt.MaxWindow)
	}
	return nil
}

// agent returns the state of id, creating it when create is set. The common case — a known
// agent — takes only the read lock, so agents on different cores do not serialise here.
func (m *MemoryStore) agent(id string, now time.Time, create bool) (*agentState, error) {
	if sec := now.Unix(); sec-m.lastSweep.Load() >= 60 {
		m.mu.Lock()
		if sec-m.lastSweep.Load() >= 60 {
			m.lastSweep.Store(sec)
			m.sweepLocked(now)
		}
		m.mu.Unlock()
	}
	m.mu.RLock()
	a := m.agents[id]
	m.mu.RUnlock()
	if a != nil || !create {
		return a, nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if a = m.agents[id]; a != nil {
		return a, nil
	}
	if len(m.agents) >= m.opt.MaxAgents {
		return nil, fmt.Errorf("%w: %d agents", ErrCapacity, len(m.agents))
	}
	a = &agentState{tools: map[string]*toolState{}, lastMinute: -1}
	m.agents[id] = a
	return a, nil
}

// sweepLocked forgets agents idle for longer than IdleTTL. It runs at most once a minute, so its
// O(agents) cost is spread over every call of that minute.
func (m *MemoryStore) sweepLocked(now time.Time) {
	for id, a := range m.agents {
		a.mu.Lock()
		if now.Sub(a.lastSeen) > m.opt.IdleTTL {
			a.evicted = true
			delete(m.agents, id)
		}
		a.mu.Unlock()
	}
}

// Agents is the number of agents held (for metrics and tests).
func (m *MemoryStore) Agents() int {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return len(m.agents)
}

func (m *MemoryStore) Record(_ context.Context, c Call, q Query) (Snapshot, error) {
	if c.Agent == "" || c.Tool == "" {
		return Snapshot{}, ErrInvalid
	}
	for _, w := range q.Windows {
		if err := m.checkWindow(w); err != nil {
			return Snapshot{}, err
		}
	}
	if err := m.checkWindow(q.BurstWindow); err != nil {
		return Snapshot{}, fmt.Errorf("burst window: %w", err)
	}
	for {
		a, err := m.agent(c.Agent, c.At, true)
		if err != nil {
			return Snapshot{}, err
		}
		a.mu.Lock()
		if a.evicted { // lost a race with the sweeper: take the fresh state
			a.mu.Unlock()
			continue
		}
		snap, err := m.recordLocked(a, c, q)
		a.mu.Unlock()
		return snap, err
	}
}

func (m *MemoryStore) recordLocked(a *agentState, c Call, q Query) (Snapshot, error) {
	t := a.tools[c.Tool]
	if t == nil {
		if len(a.tools) >= m.opt.MaxToolsPerAgent {
			return Snapshot{}, fmt.Errorf("%w: agent %s has %d tools", ErrCapacity, c.Agent, len(a.tools))
		}
		t = &toolState{}
		a.tools[c.Tool] = t
	}
	snap := Snapshot{
		AgentCalls: a.calls, AgentActiveMinutes: a.activeMinutes, AgentFirstSeen: a.firstSeen, HourCalls: a.hours[HourOfWeek(c.At)],
		ToolCalls: t.calls, ParamN: t.paramN, ParamSum: t.sum, ParamSumSq: t.sumSq,
	}
	now := c.At.Unix()
	maxW := int64(m.opt.MaxWindow / time.Second)
	a.recent.prune(now - maxW)
	t.win.prune(now - maxW)
	a.recent.add(now)
	t.win.add(now)

	a.calls++
	if minute := now / 60; minute != a.lastMinute {
		a.activeMinutes++
		a.lastMinute = minute
	}
	if a.firstSeen.IsZero() {
		a.firstSeen = c.At
	}
	a.hours[HourOfWeek(c.At)]++
	a.lastSeen = c.At
	t.calls++
	size := float64(c.ParamSize)
	t.paramN++
	t.sum += size
	t.sumSq += size * size

	snap.WindowCounts = make([]int, len(q.Windows))
	for i, w := range q.Windows {
		snap.WindowCounts[i] = t.win.count(now, int64(w/time.Second))
	}
	snap.AgentBurst = a.recent.count(now, int64(q.BurstWindow/time.Second))
	return snap, nil
}

func (m *MemoryStore) Count(_ context.Context, agent, tool string, window time.Duration, now time.Time) (int, error) {
	if err := m.checkWindow(window); err != nil {
		return 0, err
	}
	a, err := m.agent(agent, now, false)
	if err != nil || a == nil {
		return 0, err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	t := a.tools[tool]
	if t == nil {
		return 0, nil
	}
	return t.win.count(now.Unix(), int64(window/time.Second)), nil
}
