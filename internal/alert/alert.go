// Package alert watches the ledger's record stream for patterns a security team wants to hear
// about — a spike in denials or threat findings, a tool an agent never used, activity at an
// unusual hour, a rising error rate, a growing or ageing approval backlog, a key rotation, a
// failed verification — and raises alerts, de-duplicated and rate-limited. It is fed by a ledger
// tailer (internal/export), never from the decision path; it knows no transport and no store.
//
// The engine's clock is the records' own time (and the time given to Tick), so a replayed or
// synthetic stream raises the same alerts as a live one.
package alert

import (
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	segjson "github.com/segmentio/encoding/json"

	"github.com/portcullis-ai/portcullis/internal/approval"
	"github.com/portcullis-ai/portcullis/internal/jsonx"
	"github.com/portcullis-ai/portcullis/internal/ledger"
)

// Rule names an alert rule. Names are never changed once shipped: receivers filter on them.
type Rule string

// The rules.
const (
	RuleDenialSpike     Rule = "denial_spike"     // an agent's denials in a window far above its baseline
	RuleFindingSpike    Rule = "finding_spike"    // an agent's threat findings in a window far above its baseline
	RuleNewTool         Rule = "new_tool"         // an agent called a tool it never called before
	RuleNewParameter    Rule = "new_parameter"    // an agent sent a tool a parameter it never sent it before
	RuleUnusualHour     Rule = "unusual_hour"     // the behaviour engine flagged a call at an hour unusual for the agent
	RuleErrorRate       Rule = "error_rate"       // an agent's tool errors in a window over the threshold
	RuleApprovalBacklog Rule = "approval_backlog" // too many approval requests pending, or one pending too long
	RuleKeyRotation     Rule = "key_rotation"     // the ledger's signing key changed
	RuleVerification    Rule = "ledger_verification"
	// RuleFlood is the alert that stands for the alerts the rate limit held back.
	RuleFlood Rule = "alert_flood"
)

// Rules lists the configurable rules.
var Rules = []Rule{RuleDenialSpike, RuleFindingSpike, RuleNewTool, RuleNewParameter, RuleUnusualHour, RuleErrorRate,
	RuleApprovalBacklog, RuleKeyRotation, RuleVerification}

// Severities.
const (
	SeverityWarning  = "warning"
	SeverityCritical = "critical"
)

// Config sets the rules' thresholds. Zero values take the defaults named (Defaults).
type Config struct {
	// Disabled rules raise nothing.
	Disabled []Rule
	// Window is the length of a counting window (default 5m).
	Window time.Duration
	// BaselineWindows is how many windows before the current one make an agent's baseline,
	// their mean count (default 12: an hour of 5-minute windows).
	BaselineWindows int
	// SpikeFactor: a window's count is a spike when it exceeds SpikeFactor × the baseline
	// (default 3) and is at least SpikeFloor (default 10), so that a quiet agent's few denials
	// are not a spike.
	SpikeFactor float64
	SpikeFloor  int
	// NewToolAfter is how many decisions of an agent the engine must have seen before a tool new
	// to it is alerted on (default 20): an agent's first calls are all new.
	NewToolAfter int
	// ErrorRate is the share of an agent's tool results in a window that failed above which it
	// alerts (default 0.5), once ErrorMin results (default 10) failed in the window.
	ErrorRate float64
	ErrorMin  int
	// BacklogPending: alert when this many approval requests are pending (default 20).
	// BacklogAge: alert when one has been pending this long (default 1h).
	BacklogPending int
	BacklogAge     time.Duration
	// Cooldown: an alert stays open, swallowing repeats of its rule for the same agent and tool,
	// until this long has passed with no repeat (default 15m).
	Cooldown time.Duration
	// MaxPerWindow caps the alerts raised in one Window (default 20); the alerts over it are
	// counted and raised as one alert_flood alert when the next window opens.
	MaxPerWindow int
}

// Defaults fills c's zero values.
func (c Config) Defaults() Config {
	set := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	seti := func(d *int, v int) {
		if *d <= 0 {
			*d = v
		}
	}
	set(&c.Window, 5*time.Minute)
	set(&c.BacklogAge, time.Hour)
	set(&c.Cooldown, 15*time.Minute)
	seti(&c.BaselineWindows, 12)
	seti(&c.SpikeFloor, 10)
	seti(&c.NewToolAfter, 20)
	seti(&c.ErrorMin, 10)
	seti(&c.BacklogPending, 20)
	seti(&c.MaxPerWindow, 20)
	if c.SpikeFactor <= 0 {
		c.SpikeFactor = 3
	}
	if c.ErrorRate <= 0 {
		c.ErrorRate = 0.5
	}
	return c
}

// Alert is one raised alert.
type Alert struct {
	Rule     Rule
	Severity string
	Agent    string // "" when the alert is not about one agent
	Tool     string
	Message  string
	// Count is the matches this alert stands for: 1, or the repeats a flood folded into it.
	Count       int
	First, Last time.Time
	Seq         uint64 // the record that raised it; 0 for none
	hasSeq      bool
}

// Record is the ledger record of a.
func (a Alert) Record() *ledger.Record {
	// Its time is when it is recorded (the ledger sets it); first and last are the matches' times.
	r := &ledger.Record{Kind: ledger.KindAlert, Tool: a.Tool, Message: a.Message,
		Alert: &ledger.Alert{Rule: string(a.Rule), Severity: a.Severity, Count: a.Count, First: a.First.UTC(), Last: a.Last.UTC()}}
	if a.hasSeq {
		r.Alert.Seq = a.Seq
	}
	if a.Agent != "" {
		r.Agent = &ledger.Principal{ID: a.Agent}
	}
	return r
}

// key identifies an open alert: one per rule, agent and tool.
type key struct {
	rule        Rule
	agent, tool string
}

type open struct {
	last    time.Time // the last match
	repeats int       // matches swallowed since it was raised
}

// counts are one agent's per-window counters: bucket i counts window (epoch - i).
type counts struct {
	epoch   int64
	buckets []int
}

func (c *counts) add(epoch int64, n int, size int) {
	if c.buckets == nil {
		c.buckets = make([]int, size)
		c.epoch = epoch
	}
	if epoch > c.epoch {
		shift := int(min(epoch-c.epoch, int64(size)))
		copy(c.buckets[shift:], c.buckets[:size-shift])
		clear(c.buckets[:shift])
		c.epoch = epoch
	}
	if d := c.epoch - epoch; d >= 0 && d < int64(size) {
		c.buckets[d] += n
	}
}

// current is the count of the window at epoch and the mean of the windows before it.
func (c *counts) current(epoch int64) (now int, baseline float64) {
	if c.buckets == nil || epoch != c.epoch {
		return 0, 0
	}
	sum := 0
	for _, n := range c.buckets[1:] {
		sum += n
	}
	return c.buckets[0], float64(sum) / float64(len(c.buckets)-1)
}

// Bounds on what the engine remembers, whoever the callers claim to be: agents (the least
// recently seen is forgotten past it), tools per agent and parameter names per tool (past them
// nothing new is learnt), open alerts (past it new alerts are held back as by the rate limit).
const (
	maxAgents        = 10_000
	maxToolsPerAgent = 1_000
	maxParamsPerTool = 200
	maxOpen          = 10_000
)

type agentState struct {
	decisions         int
	lastSeen          time.Time
	tools             map[string]*toolState
	denials, findings counts
	results, errors   counts
}

// toolState is what an agent sent one tool: how often, and the top-level parameter names.
type toolState struct {
	calls  int
	params map[string]bool
}

// Engine evaluates the rules over records. It is not safe for concurrent use; Runner serialises.
type Engine struct {
	cfg      Config
	disabled map[Rule]bool
	agents   map[string]*agentState
	open     map[key]*open
	pending  map[string]time.Time // approval ID → requested at
	now      time.Time            // the latest time seen

	windowEpoch int64
	raised      int // alerts raised in windowEpoch
	held        int // alerts the rate limit held back since the last flood alert
	heldFirst   time.Time
}

// New returns an engine with cfg (zero values defaulted).
func New(cfg Config) *Engine {
	cfg = cfg.Defaults()
	e := &Engine{cfg: cfg, disabled: map[Rule]bool{}, agents: map[string]*agentState{}, open: map[key]*open{}, pending: map[string]time.Time{}}
	for _, r := range cfg.Disabled {
		e.disabled[r] = true
	}
	return e
}

func (e *Engine) epoch(t time.Time) int64 { return t.UnixNano() / int64(e.cfg.Window) }

func (e *Engine) agent(id string, t time.Time) *agentState {
	a := e.agents[id]
	if a == nil {
		if len(e.agents) >= maxAgents {
			e.forgetOldestAgent()
		}
		a = &agentState{tools: map[string]*toolState{}}
		e.agents[id] = a
	}
	a.lastSeen = maxTime(a.lastSeen, t)
	return a
}

func (e *Engine) forgetOldestAgent() {
	var oldest string
	var at time.Time
	for id, a := range e.agents {
		if oldest == "" || a.lastSeen.Before(at) {
			oldest, at = id, a.lastSeen
		}
	}
	delete(e.agents, oldest)
}

// paramNames are the top-level names of a record's (redacted) parameters; nil when they are not
// an object or were not stored. It runs for every committed decision, so the names are read
// without decoding the values (jsonx.ObjectKeys); what that strict reading refuses (a repeated
// name, invalid UTF-8, not an object) is read as encoding/json would read it, by segmentio's
// decoder.
func paramNames(raw json.RawMessage) []string {
	if len(raw) == 0 {
		return nil
	}
	if names, err := jsonx.ObjectKeys(raw); err == nil {
		sort.Strings(names)
		return names
	}
	var m map[string]json.RawMessage
	if segjson.Unmarshal(raw, &m) != nil {
		return nil
	}
	names := make([]string, 0, len(m))
	for k := range m {
		names = append(names, k)
	}
	sort.Strings(names)
	return names
}

// Observe feeds one record (seq is its ledger seq) and returns the alerts it raises.
func (e *Engine) Observe(seq uint64, r *ledger.Record) []Alert {
	if r == nil || r.Event() == ledger.KindAlert {
		return nil // an alert never raises another
	}
	t := r.Time
	if t.After(e.now) {
		e.now = t
	}
	var out []Alert
	raise := func(a Alert) {
		a.Seq, a.hasSeq, a.First, a.Last, a.Count = seq, true, t, t, 1
		out = e.emit(out, a)
	}
	agentID := ""
	if r.Agent != nil {
		agentID = r.Agent.ID
	}
	n := e.cfg.BaselineWindows + 1
	ep := e.epoch(t)
	switch r.Event() {
	case ledger.KindDecision:
		if agentID == "" {
			break
		}
		a := e.agent(agentID, t)
		if r.Tool != "" {
			ts := a.tools[r.Tool]
			if ts == nil {
				if a.decisions >= e.cfg.NewToolAfter {
					raise(Alert{Rule: RuleNewTool, Severity: SeverityWarning, Agent: agentID, Tool: r.Tool,
						Message: fmt.Sprintf("agent %s called tool %s for the first time (after %d calls)", agentID, r.Tool, a.decisions)})
				}
				ts = &toolState{params: map[string]bool{}}
				if len(a.tools) < maxToolsPerAgent {
					a.tools[r.Tool] = ts
				}
			}
			var fresh []string
			for _, p := range paramNames(r.Params) {
				if !ts.params[p] {
					fresh = append(fresh, p)
					if len(ts.params) < maxParamsPerTool {
						ts.params[p] = true
					}
				}
			}
			if len(fresh) > 0 && ts.calls >= e.cfg.NewToolAfter {
				raise(Alert{Rule: RuleNewParameter, Severity: SeverityWarning, Agent: agentID, Tool: r.Tool,
					Message: fmt.Sprintf("agent %s sent %s the parameter(s) %s, never sent in its %d calls before", agentID, r.Tool, strings.Join(fresh, ", "), ts.calls)})
			}
			ts.calls++
		}
		a.decisions++
		if r.Decision == "deny" {
			a.denials.add(ep, 1, n)
			if now, base := a.denials.current(ep); e.spike(now, base) {
				raise(Alert{Rule: RuleDenialSpike, Severity: SeverityCritical, Agent: agentID,
					Message: fmt.Sprintf("agent %s: %d denials in %v against a baseline of %.1f", agentID, now, e.cfg.Window, base)})
			}
		}
		if f := threatFindings(r); f > 0 {
			a.findings.add(ep, f, n)
			if now, base := a.findings.current(ep); e.spike(now, base) {
				raise(Alert{Rule: RuleFindingSpike, Severity: SeverityCritical, Agent: agentID,
					Message: fmt.Sprintf("agent %s: %d threat findings in %v against a baseline of %.1f", agentID, now, e.cfg.Window, base)})
			}
		}
		for _, an := range r.Anomalies {
			if an.Signal == "anomaly.unusual_hour" {
				raise(Alert{Rule: RuleUnusualHour, Severity: SeverityWarning, Agent: agentID, Tool: r.Tool,
					Message: fmt.Sprintf("agent %s called %s at %s UTC, an hour unusual for it", agentID, r.Tool, t.UTC().Format("15:04"))})
				break
			}
		}
	case ledger.KindToolResult:
		if agentID == "" || r.Outcome == nil || !r.Outcome.Ran {
			break
		}
		a := e.agent(agentID, t)
		a.results.add(ep, 1, n)
		if !r.Outcome.Success {
			a.errors.add(ep, 1, n)
		}
		total, _ := a.results.current(ep)
		errs, _ := a.errors.current(ep)
		if errs >= e.cfg.ErrorMin && float64(errs) >= e.cfg.ErrorRate*float64(total) {
			raise(Alert{Rule: RuleErrorRate, Severity: SeverityWarning, Agent: agentID,
				Message: fmt.Sprintf("agent %s: %d of %d tool calls failed in %v", agentID, errs, total, e.cfg.Window)})
		}
	case ledger.KindApprovalRequested:
		if r.Approval != nil && r.Approval.ID != "" {
			e.pending[r.Approval.ID] = t
			if len(e.pending) >= e.cfg.BacklogPending {
				raise(Alert{Rule: RuleApprovalBacklog, Severity: SeverityWarning,
					Message: fmt.Sprintf("%d approval requests are pending", len(e.pending))})
			}
		}
	case ledger.KindApprovalResolved, ledger.KindApprovalConsumed, ledger.KindApprovalAborted:
		if r.Approval != nil && r.Approval.Result != "pending" {
			delete(e.pending, r.Approval.ID)
		}
	case ledger.KindKeyRotation:
		msg := "the ledger's checkpoint signing key was rotated"
		if kr := r.KeyRotation; kr != nil {
			msg += ": new key " + kr.NewKey
		}
		raise(Alert{Rule: RuleKeyRotation, Severity: SeverityWarning, Message: msg})
	}
	return e.tick(out, t)
}

// spike: now is over the floor and over factor × baseline.
func (e *Engine) spike(now int, base float64) bool {
	return now >= e.cfg.SpikeFloor && float64(now) > e.cfg.SpikeFactor*base
}

// threatFindings counts r's inspection findings (behaviour signals are anomalies, not threats).
func threatFindings(r *ledger.Record) int {
	n := 0
	for _, f := range r.Findings {
		if len(f.Kind) < 8 || f.Kind[:8] != "anomaly." {
			n++
		}
	}
	return n
}

// Verification raises a ledger_verification alert for a failed verification at time now.
func (e *Engine) Verification(now time.Time, err error) []Alert {
	a := Alert{Rule: RuleVerification, Severity: SeverityCritical, Message: "ledger verification failed: " + err.Error(),
		Count: 1, First: now, Last: now}
	return e.tick(e.emit(nil, a), now)
}

// Tick evaluates what time alone changes — an approval pending too long, the alerts the rate
// limit held back — at now, and returns the alerts raised.
func (e *Engine) Tick(now time.Time) []Alert {
	return e.tick(nil, now)
}

func (e *Engine) tick(out []Alert, now time.Time) []Alert {
	if now.After(e.now) {
		e.now = now
	}
	now = e.now
	// Open alerts whose cooldown passed close: the next match raises again.
	for k, o := range e.open {
		if now.Sub(o.last) >= e.cfg.Cooldown {
			delete(e.open, k)
		}
	}
	if e.epoch(now) != e.windowEpoch {
		e.windowEpoch, e.raised = e.epoch(now), 0
		if e.held > 0 {
			// The flood alert bypasses the limit: it is the one alert the limit owes.
			out = append(out, Alert{Rule: RuleFlood, Severity: SeverityWarning, Count: e.held, First: e.heldFirst, Last: now,
				Message: fmt.Sprintf("%d more alerts were raised and held back by the rate limit (%d a window of %v); see the ledger's records", e.held, e.cfg.MaxPerWindow, e.cfg.Window)})
			e.raised++
			e.held = 0
		}
	}
	var oldest string
	var oldestAt time.Time
	for id, at := range e.pending {
		if oldest == "" || at.Before(oldestAt) || (at.Equal(oldestAt) && id < oldest) {
			oldest, oldestAt = id, at
		}
	}
	if oldest != "" && now.Sub(oldestAt) >= e.cfg.BacklogAge {
		out = e.emit(out, Alert{Rule: RuleApprovalBacklog, Severity: SeverityWarning, Count: 1, First: oldestAt, Last: now,
			Message: fmt.Sprintf("approval request %s has been pending for %v (%d pending)", oldest, now.Sub(oldestAt).Round(time.Second), len(e.pending))})
	}
	return out
}

// emit applies the rule switch, de-duplication and the rate limit to a, appending it to out
// when it is raised.
func (e *Engine) emit(out []Alert, a Alert) []Alert {
	if e.disabled[a.Rule] {
		return out
	}
	k := key{a.Rule, a.Agent, a.Tool}
	if o := e.open[k]; o != nil {
		o.last = maxTime(o.last, a.Last)
		o.repeats++
		return out
	}
	if len(e.open) >= maxOpen {
		// Too many distinct alerts open at once is a flood: counted, not remembered.
		if e.held == 0 {
			e.heldFirst = a.First
		}
		e.held++
		return out
	}
	e.open[k] = &open{last: a.Last}
	if ep := e.epoch(maxTime(e.now, a.Last)); ep != e.windowEpoch && ep > e.windowEpoch {
		out = e.tick(out, maxTime(e.now, a.Last))
	}
	if e.raised >= e.cfg.MaxPerWindow {
		if e.held == 0 {
			e.heldFirst = a.First
		}
		e.held++
		return out
	}
	e.raised++
	return append(out, a)
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// OpenAlerts lists the open alerts' rules, agents and tools, sorted, for tests and status.
func (e *Engine) OpenAlerts() []string {
	out := make([]string, 0, len(e.open))
	for k := range e.open {
		out = append(out, string(k.rule)+"/"+k.agent+"/"+k.tool)
	}
	sort.Strings(out)
	return slices.Clip(out)
}

// WebhookEvent is the machine-readable part of an alert notification.
type WebhookEvent struct {
	Event    string    `json:"event"` // "alert"
	Rule     string    `json:"rule"`
	Severity string    `json:"severity"`
	Agent    string    `json:"agent,omitempty"`
	Tool     string    `json:"tool,omitempty"`
	Message  string    `json:"message"`
	Count    int       `json:"count"`
	First    time.Time `json:"first"`
	Last     time.Time `json:"last"`
	// Seq is the alert's own ledger record.
	Seq uint64 `json:"seq"`
	URL string `json:"url,omitempty"`
}

// WebhookPayload is the notification of a, recorded at ledger seq: Slack incoming webhooks read
// "text"; other receivers read "portcullis". consoleURL, if set, is the console's alerts page.
func (a Alert) WebhookPayload(seq uint64, consoleURL string) ([]byte, error) {
	// The message names agents and tools that callers chose: escaped, so that "<!channel>" in
	// an agent ID is text, not a ping.
	text := fmt.Sprintf("Portcullis alert [%s] %s: %s", a.Severity, a.Rule, approval.SlackEscape(a.Message))
	if a.Count > 1 {
		text += fmt.Sprintf(" (×%d)", a.Count)
	}
	if consoleURL != "" {
		text += " — " + consoleURL
	}
	return json.Marshal(struct {
		Text       string       `json:"text"`
		Portcullis WebhookEvent `json:"portcullis"`
	}{text, WebhookEvent{Event: "alert", Rule: string(a.Rule), Severity: a.Severity, Agent: a.Agent, Tool: a.Tool,
		Message: a.Message, Count: a.Count, First: a.First.UTC(), Last: a.Last.UTC(), Seq: seq, URL: consoleURL}})
}
