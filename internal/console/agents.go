package console

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/portcullis-ai/portcullis/internal/ledger"
)

// AgentDirectory lists the agents the gateway declares (identity.agents) with their credentials'
// metadata. It must never return a secret: no key, no key hash.
type AgentDirectory interface {
	ConsoleAgents(ctx context.Context) ([]DeclaredAgent, error)
}

// DeclaredAgent is one declared agent.
type DeclaredAgent struct {
	ID                string
	Roles             []string
	TrustAssertedUser bool
	Credentials       []Credential
}

// Credential is what the console shows of one of an agent's credentials.
type Credential struct {
	Kind    string // "api key" or "signing key"
	ID      string
	Label   string
	Created time.Time // zero: not known
	Expires time.Time // zero: never
	Status  string    // active, expired, revoked
}

// agentWindow is the span the agents pages count over; agentRecent bounds the lists of recent
// decisions, anomalies and denials on an agent's page.
const (
	agentWindow = 24 * time.Hour
	agentRecent = 20
)

// agentStats is one agent's activity in the window.
type agentStats struct {
	ID       string
	Declared *DeclaredAgent
	Counts   map[string]int // decisions by outcome
	Calls    int            // decisions of every outcome
	LastSeen time.Time
	// PerHour counts decisions per hour back from now: PerHour[0] is the last 60 minutes.
	PerHour   [24]int
	Tools     map[string]int
	TopTools  []toolCount
	Anomalies int // decisions with behaviour anomalies
	Findings  int // decisions with threat findings
	// Verified: a credential proved the agent on at least one of its decisions. An ID only ever
	// claimed by refused callers is anyone's to write.
	Verified bool
}

func newAgentStats(id string) *agentStats {
	return &agentStats{ID: id, Counts: map[string]int{}, Tools: map[string]int{}}
}

// LastHour is the decisions of the last 60 minutes.
func (a *agentStats) LastHour() int { return a.PerHour[0] }

// Baseline is the agent's mean decisions per hour over the 23 hours before the last one.
func (a *agentStats) Baseline() float64 {
	n := 0
	for _, v := range a.PerHour[1:] {
		n += v
	}
	return float64(n) / float64(len(a.PerHour)-1)
}

// Trend compares the last hour with the baseline: "above" at more than twice it (and more than
// a handful of calls), "below" when the agent went quiet after being busy, else "usual".
func (a *agentStats) Trend() string {
	b, h := a.Baseline(), float64(a.LastHour())
	switch {
	case h > 2*b && h >= 5:
		return "above"
	case b >= 5 && h < b/2:
		return "below"
	}
	return "usual"
}

func (a *agentStats) add(r *stat, now time.Time) {
	a.Calls++
	a.Verified = a.Verified || r.Agent.Verified
	a.Counts[r.Decision]++
	a.Tools[r.Tool]++
	if r.Time.After(a.LastSeen) {
		a.LastSeen = r.Time
	}
	if h := int(now.Sub(r.Time) / time.Hour); h >= 0 && h < len(a.PerHour) {
		a.PerHour[h]++
	}
	if len(r.Anomalies) > 0 {
		a.Anomalies++
	}
	if len(r.Findings) > 0 {
		a.Findings++
	}
}

// topCounts is the n largest counts of m, largest first, ties by name.
func topCounts(m map[string]int, n int) []toolCount {
	out := make([]toolCount, 0, len(m))
	for t, c := range m {
		out = append(out, toolCount{t, c})
	}
	slices.SortFunc(out, func(a, b toolCount) int {
		if a.Count != b.Count {
			return b.Count - a.Count
		}
		return strings.Compare(a.Tool, b.Tool)
	})
	if len(out) > n {
		out = out[:n]
	}
	return out
}

// declared is the directory's agents by ID; an unreadable directory is logged and the pages go
// on with what the ledger saw.
func (c *Console) declared(ctx context.Context) map[string]*DeclaredAgent {
	out := map[string]*DeclaredAgent{}
	if c.o.Agents == nil {
		return out
	}
	list, err := c.o.Agents.ConsoleAgents(ctx)
	if err != nil {
		c.log.LogAttrs(ctx, slog.LevelError, "console: agent directory", slog.Any("error", err))
		return out
	}
	for i := range list {
		out[list[i].ID] = &list[i]
	}
	return out
}

type agentsData struct {
	Agents    []*agentStats
	Since     time.Time
	Truncated bool
	Hidden    int // agents past maxAgentRows, not listed
}

// maxAgentRows bounds the agents page: callers that were refused can claim any agent ID, and
// each would otherwise be a row. Declared agents come first, then the busiest.
const maxAgentRows = 500

// agentsPage lists every agent, declared or seen in the ledger in the window, with its counts.
func (c *Console) agentsPage(w http.ResponseWriter, r *http.Request, s *session, p Principal) {
	if !c.allowRole(w, r, p.readsAll()) {
		return
	}
	now := c.o.Now()
	d := agentsData{Since: now.Add(-agentWindow)}
	byID := map[string]*agentStats{}
	for id, a := range c.declared(r.Context()) {
		st := newAgentStats(id)
		st.Declared = a
		byID[id] = st
	}
	truncated, err := c.scanBack(r.Context(), d.Since, statsBudget, func(_ uint64, rec *stat) {
		id := rec.Agent.ID
		if rec.Kind != ledger.KindDecision || id == "" || !p.sees(id, rec.Tool) {
			return
		}
		st := byID[id]
		if st == nil {
			st = newAgentStats(id)
			byID[id] = st
		}
		st.add(rec, now)
	})
	if err != nil {
		c.log.LogAttrs(r.Context(), slog.LevelError, "console: agents", slog.Any("error", err))
		c.fail(w, r, http.StatusServiceUnavailable, "The ledger cannot be read right now.")
		return
	}
	d.Truncated = truncated
	for _, st := range byID {
		st.TopTools = topCounts(st.Tools, 3)
		d.Agents = append(d.Agents, st)
	}
	slices.SortFunc(d.Agents, func(a, b *agentStats) int {
		if (a.Declared != nil) != (b.Declared != nil) {
			if a.Declared != nil {
				return -1
			}
			return 1
		}
		if a.Calls != b.Calls {
			return b.Calls - a.Calls
		}
		return strings.Compare(a.ID, b.ID)
	})
	if len(d.Agents) > maxAgentRows {
		d.Hidden, d.Agents = len(d.Agents)-maxAgentRows, d.Agents[:maxAgentRows]
	}
	c.render(w, r, http.StatusOK, "agents", view{Title: "Agents", Nav: "agents", P: &p, CSRF: s.csrf, Data: d})
}

type agentData struct {
	A         *agentStats
	Recent    []row
	Anomalous []row
	Denied    []row
	Bars      []bar
	BaselineY int
	Since     time.Time
	Truncated bool
	AuditURL  string
}

// newest keeps the n highest seqs: they arrive newest chunk first but oldest first within a
// chunk, so the list is cut only once it is twice as long as needed.
func newest(seqs []uint64, seq uint64, n int) []uint64 {
	seqs = append(seqs, seq)
	if len(seqs) >= 2*n {
		seqs = settle(seqs, n)
	}
	return seqs
}

// settle is the n highest of seqs, highest first.
func settle(seqs []uint64, n int) []uint64 {
	slices.SortFunc(seqs, func(a, b uint64) int { return cmp.Compare(b, a) })
	return seqs[:min(len(seqs), n)]
}

// agentPage is one agent: its credentials, calls per hour against its baseline, top tools,
// and its recent decisions, anomalies and denials.
func (c *Console) agentPage(w http.ResponseWriter, r *http.Request, s *session, p Principal) {
	if !c.allowRole(w, r, p.readsAll()) {
		return
	}
	id := r.PathValue("id")
	now := c.o.Now()
	st := newAgentStats(id)
	st.Declared = c.declared(r.Context())[id]
	d := agentData{A: st, Since: now.Add(-agentWindow), AuditURL: "?" + url.Values{"agent": {id}}.Encode()}
	var recent, anomalous, denied []uint64
	truncated, err := c.scanBack(r.Context(), d.Since, statsBudget, func(seq uint64, rec *stat) {
		if rec.Kind != ledger.KindDecision || rec.Agent.ID != id || !p.sees(id, rec.Tool) {
			return
		}
		st.add(rec, now)
		recent = newest(recent, seq, agentRecent)
		if len(rec.Anomalies) > 0 {
			anomalous = newest(anomalous, seq, agentRecent)
		}
		if rec.Decision == "deny" {
			denied = newest(denied, seq, agentRecent)
		}
	})
	if err == nil {
		d.Recent, err = c.rowsAt(r.Context(), p, settle(recent, agentRecent))
	}
	if err == nil {
		d.Anomalous, err = c.rowsAt(r.Context(), p, settle(anomalous, agentRecent))
	}
	if err == nil {
		d.Denied, err = c.rowsAt(r.Context(), p, settle(denied, agentRecent))
	}
	if err != nil {
		c.log.LogAttrs(r.Context(), slog.LevelError, "console: agent", slog.Any("error", err))
		c.fail(w, r, http.StatusServiceUnavailable, "The ledger cannot be read right now.")
		return
	}
	if st.Declared == nil && st.Calls == 0 {
		c.fail(w, r, http.StatusNotFound, "No such agent: it is not declared and made no call in the last 24 hours.")
		return
	}
	d.Truncated = truncated
	st.TopTools = topCounts(st.Tools, 10)
	d.Bars, d.BaselineY = hourBars(st)
	c.render(w, r, http.StatusOK, "agent", view{Title: "Agent " + id, Nav: "agents", P: &p, CSRF: s.csrf, Data: d})
}

// hourBars draws the agent's decisions per hour, oldest hour on the left, in 600×160 units, and
// the y of its baseline.
func hourBars(a *agentStats) ([]bar, int) {
	const width, height, gap = 600, 160, 2
	n := len(a.PerHour)
	top := 1
	for _, v := range a.PerHour {
		top = max(top, v)
	}
	b := a.Baseline()
	colW := width/n - gap
	var out []bar
	for i := range n {
		v := a.PerHour[n-1-i]
		if v == 0 {
			continue
		}
		h := max(1, v*height/top)
		label := fmt.Sprintf("%d to %d hours ago: %d decisions", n-i, n-1-i, v)
		if i == n-1 {
			label = fmt.Sprintf("the last hour: %d decisions", v)
		}
		out = append(out, bar{X: i * (colW + gap), Y: height - h, W: colW, H: h, Class: "calls", Label: label})
	}
	return out, height - int(b*height/float64(top))
}

// allowRole answers 403 unless ok: the agents and policies pages are for some roles only.
func (c *Console) allowRole(w http.ResponseWriter, r *http.Request, ok bool) bool {
	if !ok {
		c.fail(w, r, http.StatusForbidden, "Your role does not open this page.")
	}
	return ok
}
