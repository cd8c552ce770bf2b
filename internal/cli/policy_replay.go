package cli

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	segjson "github.com/segmentio/encoding/json"

	"github.com/portcullis-ai/portcullis/internal/ledger"
	"github.com/portcullis-ai/portcullis/internal/policy"
)

func init() {
	registerPolicySub("replay", "re-decide recorded decisions under candidate policies: --policy DIR [--since 30d] (exit 1 on --fail-on)", runPolicyReplay)
}

// replayExamples is how many decision ids each transition keeps as examples.
const replayExamples = 5

// replayCount is a count with a few example decision ids.
type replayCount struct {
	Count    int      `json:"count"`
	Examples []string `json:"examples,omitempty"`
}

func (c *replayCount) add(id string) {
	c.Count++
	if len(c.Examples) < replayExamples && id != "" {
		c.Examples = append(c.Examples, strings.Clone(id)) // id may point into a reused buffer
	}
}

// bump counts one under k, copying k when it is new: it may point into a reused buffer.
func bump(m map[string]int, k string) {
	if _, ok := m[k]; !ok {
		k = strings.Clone(k)
	}
	m[k]++
}

// replayTransition is one kind of change (e.g. ALLOW→DENY) broken down by agent, tool and rule.
type replayTransition struct {
	From    string         `json:"from"`
	To      string         `json:"to"`
	Count   int            `json:"count"`
	ByAgent map[string]int `json:"by_agent"`
	ByTool  map[string]int `json:"by_tool"`
	// ByRule counts by the rule that decides under the candidate policies ("(default)": none).
	ByRule   map[string]int `json:"by_rule"`
	Examples []string       `json:"examples,omitempty"`
}

// replayReport is what `policy replay` prints.
type replayReport struct {
	PolicyVersion string `json:"policy_version"`
	Scanned       uint64 `json:"records_scanned"`
	// NotByPolicy counts decision records the policy did not decide (inspection blocks,
	// malformed calls, LLM content): there is nothing to replay.
	NotByPolicy int `json:"not_decided_by_policy"`
	Replayed    int `json:"decisions_replayed"`
	Unchanged   int `json:"unchanged"`
	Changed     int `json:"changed"`
	// Undecidable decisions read an input the record does not hold (a redacted parameter, the
	// agent's roles, the user's attributes, behaviour counts): never guessed, never a transition.
	Undecidable      int                     `json:"undecidable"`
	UndecidableWhy   map[string]*replayCount `json:"undecidable_reasons"`
	Transitions      []*replayTransition     `json:"transitions"`
	RulesNewlyFiring map[string]*replayCount `json:"rules_newly_firing"`
	RulesNoLonger    map[string]*replayCount `json:"rules_no_longer_firing"`
	FailedOn         []string                `json:"failed_on,omitempty"`
}

// replayNeed is one condition of a considered rule that reads an input a record may not hold.
type replayNeed struct {
	kind policy.ConditionKind
	path string // parameter path ("" when the condition reads no parameter)
	attr string // the invoking user's attribute it reads ("" none)
	rule string
	// windows are the call-count windows (minutes) a time_context condition reads; unusual is
	// whether it reads unusual_hour.
	windows []int
	unusual bool
	unknown bool // the condition is not in the candidate's files: never guess
}

// replayNeeds is what the rules covering one agent's calls to one tool read.
type replayNeeds struct {
	list   []replayNeed
	params bool // some condition reads a parameter: decode the recorded ones
}

// replayer re-decides records under a candidate set.
type replayer struct {
	set   *policy.Set
	conds map[string]*policy.Condition // by position, from the set's files
	needs map[string]*replayNeeds      // by agent "\x00" tool
	rep   *replayReport
	trans map[string]*replayTransition
	// history, when set, gives each record the agent's earlier calls, so call-count conditions
	// (time_context without unusual_hour) can be re-decided from it rather than from the record.
	history func(*ledger.Record) policy.History
	zones   map[int]*time.Location // the recorded clock offsets, by seconds east of UTC
	// params and findings are reused from record to record (Decide keeps neither).
	params   map[string]any
	findings []string
	// names holds one copy of each agent id and tool name: a record's may point into a reused
	// buffer, and the policy set remembers the tool names it has seen.
	names map[string]string
}

// intern returns the replayer's own copy of s.
func (rp *replayer) intern(s string) string {
	if c, ok := rp.names[s]; ok {
		return c
	}
	if rp.names == nil {
		rp.names = map[string]string{}
	}
	c := strings.Clone(s)
	rp.names[c] = c
	return c
}

// worker is a replayer deciding records beside rp: the same candidate set and conditions, its
// own caches and scratch space, no report of its own (its outcomes are counted by rp).
func (rp *replayer) worker() *replayer {
	return &replayer{set: rp.set, conds: rp.conds, needs: map[string]*replayNeeds{}, zones: map[int]*time.Location{}, history: rp.history}
}

func newReplayer(set *policy.Set) *replayer {
	rp := &replayer{set: set, conds: map[string]*policy.Condition{}, needs: map[string]*replayNeeds{}, trans: map[string]*replayTransition{},
		rep: &replayReport{PolicyVersion: set.Version(), UndecidableWhy: map[string]*replayCount{}, Transitions: []*replayTransition{},
			RulesNewlyFiring: map[string]*replayCount{}, RulesNoLonger: map[string]*replayCount{}},
		zones: map[int]*time.Location{}}
	for _, f := range set.Files() {
		for _, p := range f.Policies {
			for _, r := range p.Rules {
				for _, c := range r.Conditions {
					rp.conds[c.Pos.String()] = c
				}
			}
		}
	}
	return rp
}

// needsFor lists the conditions of agent's non-dry-run rules covering tool that read an input a
// record may lack, computed once per agent and tool.
func (rp *replayer) needsFor(agent, tool string) *replayNeeds {
	key := agent + "\x00" + tool
	if n, ok := rp.needs[key]; ok {
		return n
	}
	var out []replayNeed
	params := false
	ex := rp.set.Explain(&policy.Request{Agent: policy.Agent{ID: agent}, Tool: tool, Time: time.Unix(0, 0)})
	for _, tr := range ex.Rules {
		if tr.DryRun {
			continue
		}
		for _, ct := range tr.Conditions {
			c := rp.conds[ct.Pos]
			if c == nil {
				out = append(out, replayNeed{rule: tr.Rule, unknown: true})
				continue
			}
			n := replayNeed{kind: c.Kind, rule: tr.Rule}
			params = params || c.Kind == policy.KindParameter || c.Kind == policy.KindUserAttribute || c.Kind == policy.KindExpr
			switch c.Kind {
			case policy.KindParameter:
				n.path = c.Parameter.Path
			case policy.KindUserAttribute:
				n.path, n.attr = c.UserAttribute.Parameter, c.UserAttribute.Attribute
			case policy.KindDataClassification:
				n.attr = "clearance"
			case policy.KindUserPermission, policy.KindAgentRole, policy.KindExpr:
			case policy.KindTimeContext:
				tc := c.TimeContext
				n.unusual = tc.UnusualHour != nil
				for _, cc := range []*policy.CallCount{tc.OrCallCountExceeds, tc.CallCountExceeds} {
					if cc != nil {
						n.windows = append(n.windows, cc.WindowMinutes)
					}
				}
			default:
				continue // time of day, threat score, findings, session labels: every record holds them
			}
			out = append(out, n)
		}
	}
	ns := &replayNeeds{list: out, params: params}
	rp.needs[key] = ns
	return ns
}

// noInputs are a record's inputs when it holds none (a version 2 record: the evaluation read none).
var noInputs ledger.Inputs

// undecidable says why r cannot be re-decided under the candidate set ("" when it can). A
// version 1 record holds none of the evaluation's inputs beyond its time, parameters, threat,
// findings and session; a version 2 record holds them (Record.Inputs), values redacted aside.
func (rp *replayer) undecidable(r *ledger.Record, ns *replayNeeds) string {
	if r.Time.IsZero() {
		return "the record holds no time" // Decide would read the clock: never guess
	}
	hasInputs := r.V >= 2
	in := r.Inputs
	if in == nil {
		in = &noInputs
	}
	var redacted []string
	if ns.params && len(r.Redacted) > 0 {
		redacted = redactedPaths(r.Redacted)
	}
	for _, n := range ns.list {
		switch {
		case n.unknown:
			return "a condition not found in the candidate's files (rule " + n.rule + ")"
		case n.kind == policy.KindAgentRole && !hasInputs:
			return "agent_role: the record holds no agent roles (rule " + n.rule + ")"
		case n.kind == policy.KindTimeContext:
			if rp.history != nil && !n.unusual {
				continue // call counts only: the history holds them
			}
			if !hasInputs {
				return "time_context: the record holds no behaviour counts or hour baseline (rule " + n.rule + ")"
			}
			if in.Baseline == "" {
				continue // no behaviour tracking at the gateway: no earlier calls, no baseline, as decided
			}
			for _, w := range n.windows {
				if _, ok := in.Calls[strconv.Itoa(w)]; !ok {
					return "time_context: the record holds no count of calls in " + strconv.Itoa(w) + " minutes (rule " + n.rule + ")"
				}
			}
		case n.kind == policy.KindExpr:
			if !hasInputs {
				return "expression: the record may not hold what it reads (rule " + n.rule + ")"
			}
			if r.ParamsDropped != "" || len(r.Redacted) > 0 || len(in.RedactedAttributes) > 0 {
				return "expression: it may read a redacted value (rule " + n.rule + ")"
			}
		case n.kind == policy.KindUserPermission, n.kind == policy.KindDataClassification, n.kind == policy.KindUserAttribute:
			if r.User != nil && !hasInputs {
				return n.kind.String() + ": the record holds no user permissions or attributes (rule " + n.rule + ")"
			}
			if n.attr != "" && slices.Contains(in.RedactedAttributes, n.attr) {
				return "invoking_user_attribute " + n.attr + " is redacted (rule " + n.rule + ")"
			}
		}
		if n.path != "" {
			if r.ParamsDropped != "" {
				return "parameters withheld from the record (rule " + n.rule + ")"
			}
			for _, p := range redacted {
				if p == "" || p == n.path || strings.HasPrefix(p, n.path+".") || strings.HasPrefix(n.path, p+".") {
					return "parameter " + n.path + " is redacted (rule " + n.rule + ")"
				}
			}
		}
	}
	return ""
}

// recordedHistory answers the policy's behaviour questions from a version 2 record: the counts
// of the windows the gateway counted (undecidable already rules out any other) and the hour
// baseline's verdict, as they were at decision time — never recomputed.
type recordedHistory struct{ in *ledger.Inputs }

func (h recordedHistory) CallCount(_ string, window time.Duration, _ time.Time) int {
	return h.in.Calls[strconv.FormatInt(int64(window/time.Minute), 10)]
}

func (h recordedHistory) UnusualHour(time.Time) (unusual, learned bool) {
	return h.in.Baseline == ledger.BaselineUnusual, h.in.Baseline != ledger.BaselineLearning
}

// recountedHistory is a recount of the agent's calls (policy suggest's windows, which the
// gateway may not have counted) with the record's hour baseline, which no recount rebuilds.
type recountedHistory struct {
	counts policy.History
	rec    recordedHistory
}

func (h recountedHistory) CallCount(tool string, window time.Duration, at time.Time) int {
	return h.counts.CallCount(tool, window, at)
}

func (h recountedHistory) UnusualHour(t time.Time) (unusual, learned bool) {
	return h.rec.UnusualHour(t)
}

// zone is the recorded clock offset's location, one per offset.
func (rp *replayer) zone(offset int) *time.Location {
	z := rp.zones[offset]
	if z == nil {
		z = time.FixedZone("", offset)
		rp.zones[offset] = z
	}
	return z
}

// redactedPaths turns the record's redacted JSON paths ($.a.b[0], $["x y"]) into the dotted
// form policy conditions use, array indexes dropped (a condition tests every element).
func redactedPaths(in []string) []string {
	out := make([]string, 0, len(in))
	for _, p := range in {
		p = strings.TrimPrefix(p, "$")
		var b strings.Builder
		for p != "" {
			switch {
			case p[0] == '.':
				i := strings.IndexAny(p[1:], ".[")
				if i < 0 {
					i = len(p) - 1
				}
				b.WriteString("." + p[1:1+i])
				p = p[1+i:]
			case strings.HasPrefix(p, `["`):
				s, err := strconv.QuotedPrefix(p[1:])
				if err != nil {
					p = "" // unreadable: treat the rest as the whole value
					break
				}
				k, _ := strconv.Unquote(s)
				b.WriteString("." + k)
				p = strings.TrimPrefix(p[1+len(s):], "]")
			case p[0] == '[':
				i := strings.IndexByte(p, ']')
				if i < 0 {
					p = ""
					break
				}
				p = p[i+1:]
			default:
				p = ""
			}
		}
		out = append(out, strings.TrimPrefix(b.String(), "."))
	}
	return out
}

// replayOutcome is what re-deciding one record found. Workers decide records in parallel;
// the report counts their outcomes in ledger order, so it does not depend on the workers.
type replayOutcome struct {
	skip        bool   // not a selected tool-call decision
	notByPolicy bool   // a decision the policy did not make: nothing to replay
	undecidable string // why it cannot be re-decided ("" it was)
	agent, tool string
	id          string
	from, to    string // the recorded and the candidate's decision (upper case)
	oldRule     string
	newRule     string // the candidate's deciding rule; "" its default action
	why         string // the candidate's reason when its default action decided
}

// decisionName is a recorded decision's name as a transition names it.
func decisionName(d string) string {
	switch d {
	case "allow":
		return "ALLOW"
	case "deny":
		return "DENY"
	case "constrain":
		return "CONSTRAIN"
	case "log":
		return "LOG"
	}
	return strings.ToUpper(d)
}

// replay re-decides one record (a tool-call decision) and counts the result.
func (rp *replayer) replay(r *ledger.Record) {
	var o replayOutcome
	rp.decide(r, &o)
	rp.count(&o)
}

// decide re-decides r under the candidate set into o. It reads only the replayer's set and
// caches: each worker has its own replayer (worker).
func (rp *replayer) decide(r *ledger.Record, o *replayOutcome) {
	agent, tool := rp.intern(r.Agent.ID), rp.intern(r.Tool)
	*o = replayOutcome{agent: agent, tool: tool, id: r.DecisionID}
	ns := rp.needsFor(agent, tool)
	if o.undecidable = rp.undecidable(r, ns); o.undecidable != "" {
		return
	}
	req := policy.Request{Agent: policy.Agent{ID: agent}, Tool: tool, Time: r.Time, Threat: r.ThreatLevel, Findings: rp.findings[:0]}
	if r.User != nil {
		req.User = &policy.User{ID: r.User.ID}
	}
	if in := r.Inputs; in != nil {
		req.Agent.Roles, req.Agent.Permissions, req.Agent.RolePermissions = in.Roles, in.Permissions, in.RolePermissions
		if req.User != nil {
			req.User.Permissions, req.User.Attributes = in.UserPermissions, in.UserAttributes
		}
		req.ToolClassification = in.ToolClassification
		if in.Baseline != "" {
			req.History = recordedHistory{in}
		}
		if in.ZoneOffset != 0 {
			req.Time = r.Time.In(rp.zone(in.ZoneOffset))
		}
	}
	if r.Session != nil {
		// The labels the call was decided under: session conditions read them, as at the gateway.
		req.Session = &policy.Session{ID: r.Session.ID, Labels: r.Session.Labels}
	}
	if rp.history != nil {
		h := rp.history(r)
		if in := r.Inputs; in != nil && in.Baseline != "" {
			h = recountedHistory{h, recordedHistory{in}}
		}
		req.History = h
	}
	// The finding kinds the gateway's policy read: inspection's and the behaviour anomalies'.
	for _, f := range r.Findings {
		req.Findings = append(req.Findings, f.Kind)
	}
	for _, a := range r.Anomalies {
		req.Findings = append(req.Findings, a.Signal)
	}
	rp.findings = req.Findings
	if ns.params && len(r.Params) > 0 {
		// Not an object: no parameters (conditions on them do not hold). Numbers stay exact.
		// The map is the replayer's, emptied for each record: Decide does not keep it.
		if rp.params == nil {
			rp.params = map[string]any{}
		}
		clear(rp.params)
		req.Params = rp.params
		if _, err := segjson.Parse(r.Params, &req.Params, segjson.UseNumber); err != nil {
			req.Params = nil
		}
	}
	v := rp.set.Decide(&req)
	to := v.Action
	if v.Shadowed && v.WouldHave.Action.StricterThan(to) && to == policy.Allow {
		to = policy.Log // as the gateway does: an ALLOW a dry-run rule would stop is flagged
	}
	// The policy's own decision: a CONSTRAIN whose approval was then redeemed or refused is
	// recorded with the approval's outcome.
	o.from, o.to = decisionName(r.Decision), to.String()
	if r.Approval != nil {
		o.from = policy.Constrain.String()
	}
	o.newRule = v.Rule
	if r.Policy != nil {
		o.oldRule = r.Policy.Rule
	}
	if o.newRule == "" {
		o.why = v.Reason
	}
}

// count adds one outcome to the report. The outcome's strings may point into the batch's
// buffer: whatever the report keeps of them is copied.
func (rp *replayer) count(o *replayOutcome) {
	rep := rp.rep
	switch {
	case o.skip:
		return
	case o.notByPolicy:
		rep.NotByPolicy++
		return
	}
	rep.Replayed++
	if o.undecidable != "" {
		rep.Undecidable++
		c := rep.UndecidableWhy[o.undecidable]
		if c == nil {
			c = &replayCount{}
			rep.UndecidableWhy[o.undecidable] = c
		}
		c.add(o.id)
		return
	}
	from, to, oldRule, newRule := o.from, o.to, o.oldRule, o.newRule
	if from == to && oldRule == newRule {
		rep.Unchanged++
		return
	}
	if oldRule != newRule {
		if newRule != "" {
			countRule(rep.RulesNewlyFiring, o.agent+"/"+newRule, o.id)
		}
		if oldRule != "" {
			countRule(rep.RulesNoLonger, o.agent+"/"+oldRule, o.id)
		}
	}
	if from == to {
		rep.Unchanged++ // same decision, another rule
		return
	}
	rep.Changed++
	t := rp.trans[from+"→"+to]
	if t == nil {
		t = &replayTransition{From: strings.Clone(from), To: to, ByAgent: map[string]int{}, ByTool: map[string]int{}, ByRule: map[string]int{}}
		rp.trans[from+"→"+to] = t
		rep.Transitions = append(rep.Transitions, t)
	}
	t.Count++
	bump(t.ByAgent, o.agent)
	bump(t.ByTool, o.tool)
	if newRule == "" {
		newRule = "(" + o.why + ")"
	}
	bump(t.ByRule, newRule)
	if len(t.Examples) < replayExamples && o.id != "" {
		t.Examples = append(t.Examples, strings.Clone(o.id))
	}
}

func countRule(m map[string]*replayCount, key, id string) {
	c := m[key]
	if c == nil {
		c = &replayCount{}
		m[key] = c
	}
	c.add(id)
}

// replayActions are the decisions a transition names in --fail-on.
var replayActions = []string{"allow", "deny", "constrain", "log"}

// parseFailOn checks --fail-on: FROM-to-TO, new-allow (anything becoming ALLOW), any-change,
// undecidable.
func parseFailOn(v string) ([]string, error) {
	var out []string
	for _, f := range strings.Split(v, ",") {
		f = strings.ToLower(strings.TrimSpace(f))
		if f == "" {
			continue
		}
		if from, to, ok := strings.Cut(f, "-to-"); ok && slices.Contains(replayActions, from) && slices.Contains(replayActions, to) && from != to {
			out = append(out, f)
			continue
		}
		if f != "new-allow" && f != "any-change" && f != "undecidable" {
			return nil, fmt.Errorf("unknown --fail-on %q", f)
		}
		out = append(out, f)
	}
	return out, nil
}

// failed returns the --fail-on items that occurred.
func (rep *replayReport) failed(on []string) []string {
	var hit []string
	for _, f := range on {
		ok := false
		switch f {
		case "any-change":
			ok = rep.Changed > 0
		case "undecidable":
			ok = rep.Undecidable > 0
		case "new-allow":
			ok = slices.ContainsFunc(rep.Transitions, func(t *replayTransition) bool { return t.To == "ALLOW" })
		default:
			from, to, _ := strings.Cut(f, "-to-")
			ok = slices.ContainsFunc(rep.Transitions, func(t *replayTransition) bool {
				return strings.EqualFold(t.From, from) && strings.EqualFold(t.To, to)
			})
		}
		if ok {
			hit = append(hit, f)
		}
	}
	return hit
}

// parseReplayTime reads --since/--until: RFC 3339, or an age such as 30d, 12h or 90m.
func parseReplayTime(v string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, v); err == nil {
		return t, nil
	}
	if n, ok := strings.CutSuffix(v, "d"); ok {
		if d, err := strconv.Atoi(n); err == nil && d >= 0 && d < 100000 {
			return now.Add(-time.Duration(d) * 24 * time.Hour), nil
		}
	}
	if d, err := time.ParseDuration(v); err == nil && d >= 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, fmt.Errorf("%q is neither RFC 3339 nor an age such as 30d or 12h", v)
}

// parseReplayWindow reads --since and --until (either may be empty: no bound).
func parseReplayWindow(since, until string, now time.Time) (after, before time.Time, err error) {
	if since != "" {
		if after, err = parseReplayTime(since, now); err != nil {
			return after, before, err
		}
	}
	if until != "" {
		before, err = parseReplayTime(until, now)
	}
	return after, before, err
}

// parseReplayRecord decodes a record for replay with the faster decoder: replay reads, it does
// not verify (that is 'audit verify'), but a record that is not one is still an error.
func parseReplayRecord(data []byte) (*ledger.Record, error) {
	var r ledger.Record
	rest, err := segjson.Parse(data, &r, 0)
	if err := checkParsed(data, rest, err, r.V, r.Kind); err != nil {
		return nil, err
	}
	return &r, nil
}

// checkParsed is the check of a record read by the fast decoder: the parse (err, rest) whole
// and clean, the version (v) one this build reads, the kind (k) known. What it refuses is read
// again by the strict parser, which names the problem.
func checkParsed(data, rest []byte, err error, v int, k ledger.Kind) error {
	if err != nil || len(bytes.TrimSpace(rest)) != 0 || v < ledger.MinFormatVersion || v > ledger.FormatVersion || !k.Valid() {
		if _, perr := ledger.ParseRecord(data); perr != nil {
			return perr
		}
		return fmt.Errorf("%w: %v", ledger.ErrMalformedRecord, err)
	}
	return nil
}

// decisionFilter selects tool-call decision records: of one agent and one tool when set, at
// or after after and before before when set.
type decisionFilter struct {
	agent, tool   string
	after, before time.Time
}

// scanToolDecisions streams the ledger read-only and calls fn with each tool-call decision
// record the filter selects, in ledger order; it returns how many records it read. Records are
// never held beyond fn, so a ledger of any size is read in constant memory.
func scanToolDecisions(ctx context.Context, st ledger.Store, f decisionFilter, fn func(*ledger.Record)) (uint64, error) {
	var scanned uint64
	err := st.Scan(ctx, 0, func(e ledger.Entry) error {
		scanned++
		if !bytes.Contains(e.Data, []byte(`"kind":"decision"`)) {
			return nil // cheap skip; ParseRecord decides for the rest
		}
		r, err := parseReplayRecord(e.Data)
		if err != nil {
			return fmt.Errorf("record %d: %w", e.Seq, err)
		}
		if f.selects(r) {
			fn(r)
		}
		return nil
	})
	return scanned, err
}

func runPolicyReplay(ctx context.Context, std Stdio, args []string) int {
	fs, loc := auditFlags(std, "replay")
	fs.Init("portcullis policy replay", flag.ContinueOnError)
	var pols multiFlag
	fs.Var(&pols, "policy", "candidate policy file or directory (repeatable)")
	since := fs.String("since", "", "decisions at or after: RFC 3339 or an age (30d, 12h)")
	until := fs.String("until", "", "decisions before: RFC 3339 or an age")
	agent := fs.String("agent", "", "only this agent's decisions")
	tool := fs.String("tool", "", "only calls to this tool")
	format := formatFlag(fs)
	failOn := fs.String("fail-on", "", "exit 1 when any occurs: FROM-to-TO (allow-to-deny, constrain-to-allow, ...), new-allow, any-change, undecidable")
	if code, done := parseCmdFlags(std, fs, args); done {
		return code
	}
	table, ok := tableOutput(std, "policy replay", *format)
	if !ok {
		return exitUsage
	}
	if len(pols) == 0 {
		problem(std.Err, "policy replay: no --policy given", "portcullis policy replay --policy policies/ --since 30d")
		return exitUsage
	}
	on, err := parseFailOn(*failOn)
	if err != nil {
		problem(std.Err, "policy replay: "+err.Error(), "e.g. --fail-on allow-to-deny,new-allow")
		return exitUsage
	}
	after, before, err := parseReplayWindow(*since, *until, time.Now())
	if err != nil {
		problem(std.Err, "policy replay: "+err.Error(), "e.g. --since 30d or --since 2026-11-25T10:00:00Z")
		return exitUsage
	}
	set, err := policy.Load(pols...)
	if err != nil {
		problem(std.Err, "policy replay: the candidate policies do not load: "+err.Error(), "run 'portcullis policy check' on them")
		return exitUsage
	}
	st, _, ok := openStore(ctx, std, loc)
	if !ok {
		return exitUsage
	}
	defer st.Close()
	rp := newReplayer(set)
	rp.rep.Scanned, err = replayLedger(ctx, st, decisionFilter{agent: *agent, tool: *tool, after: after, before: before}, rp)
	if err != nil {
		problem(std.Err, "policy replay: "+err.Error(), "run 'portcullis audit verify' to check the log")
		return exitUsage
	}
	rep := rp.rep
	rep.FailedOn = rep.failed(on)
	if table {
		printReplay(std.Out, rep)
	} else {
		writeJSON(std.Out, rep)
	}
	if len(rep.FailedOn) > 0 {
		fmt.Fprintf(std.Err, "policy replay: --fail-on %s occurred\n", strings.Join(rep.FailedOn, ","))
		return exitFail
	}
	return exitOK
}

func printReplay(w io.Writer, rep *replayReport) {
	fmt.Fprintf(w, "candidate policy version %s\n", rep.PolicyVersion)
	fmt.Fprintf(w, "%d records scanned, %d not decided by policy, %d decisions replayed: %d unchanged, %d changed, %d undecidable\n",
		rep.Scanned, rep.NotByPolicy, rep.Replayed, rep.Unchanged, rep.Changed, rep.Undecidable)
	for _, t := range rep.Transitions {
		fmt.Fprintf(w, "\n%s→%s  %d  (e.g. %s)\n", t.From, t.To, t.Count, strings.Join(t.Examples, " "))
		for _, g := range []struct {
			name string
			m    map[string]int
		}{{"agent", t.ByAgent}, {"tool", t.ByTool}, {"rule", t.ByRule}} {
			for _, k := range slices.Sorted(maps.Keys(g.m)) {
				fmt.Fprintf(w, "  %-6s %-40s %d\n", g.name, k, g.m[k])
			}
		}
	}
	for _, g := range []struct {
		name string
		m    map[string]*replayCount
	}{{"rules newly firing", rep.RulesNewlyFiring}, {"rules no longer firing", rep.RulesNoLonger}, {"undecidable", rep.UndecidableWhy}} {
		if len(g.m) == 0 {
			continue
		}
		fmt.Fprintf(w, "\n%s:\n", g.name)
		for _, k := range slices.Sorted(maps.Keys(g.m)) {
			fmt.Fprintf(w, "  %-60s %d  (e.g. %s)\n", k, g.m[k].Count, strings.Join(g.m[k].Examples, " "))
		}
	}
}
