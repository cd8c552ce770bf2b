package compliance

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/portcullis-ai/portcullis/internal/ledger"
	"github.com/portcullis-ai/portcullis/internal/threat"
)

// Report is the evidence for one framework over a period. Every figure comes from the ledger
// records in [From, To); the ledger's verification covers the whole log the period is part of.
type Report struct {
	Framework   string    `json:"framework"`
	Name        string    `json:"name"`
	Pack        string    `json:"pack"`
	From        time.Time `json:"from"`
	To          time.Time `json:"to"`
	GeneratedAt time.Time `json:"generated_at"`

	Ledger         LedgerEvidence    `json:"ledger"`
	PolicyVersions []PolicyVersion   `json:"policy_versions"`
	Decisions      map[string]int    `json:"decisions"` // allow, deny, constrain, log
	Days           []Day             `json:"days"`
	Rules          []RuleEvidence    `json:"rules"`
	Approvals      ApprovalEvidence  `json:"approvals"`
	KeyRotations   []KeyRotation     `json:"key_rotations"`
	Anomalies      AnomalyEvidence   `json:"anomalies"`
	Controls       []ControlEvidence `json:"controls"`
}

// LedgerEvidence is the ledger's verification and where the period lies in it.
type LedgerEvidence struct {
	Verification  ledger.Report `json:"verification"`
	PeriodRecords uint64        `json:"period_records"`
	FirstSeq      *uint64       `json:"first_seq,omitempty"`
	LastSeq       *uint64       `json:"last_seq,omitempty"`
	// Signed: every record of the period is covered by the latest signed checkpoint.
	Signed bool `json:"signed"`
	// Archives verified with the live log, and the seq the archived history ends before.
	Archives   int    `json:"archives,omitempty"`
	ArchivedTo uint64 `json:"archived_to,omitempty"`
}

// PolicyVersion is a policy set version in force during the period: when its first and last
// decision in the period were made.
type PolicyVersion struct {
	Version   string    `json:"version"`
	First     time.Time `json:"first"`
	Last      time.Time `json:"last"`
	Decisions int       `json:"decisions"`
}

// Day counts one UTC day's decisions.
type Day struct {
	Date      string `json:"date"`
	Allow     int    `json:"allow"`
	Deny      int    `json:"deny"`
	Constrain int    `json:"constrain"`
	Log       int    `json:"log"`
}

// RuleEvidence counts the decisions a pack rule made (in any agent's policy that uses it).
type RuleEvidence struct {
	Rule      string         `json:"rule"`
	Controls  []string       `json:"controls"`
	Decisions map[string]int `json:"decisions"`
	Total     int            `json:"total"`
}

// ApprovalEvidence summarises held calls.
type ApprovalEvidence struct {
	Requested int `json:"requested"`
	Approved  int `json:"approved"`
	Denied    int `json:"denied"`
	Expired   int `json:"expired"`
	Pending   int `json:"pending"`
	Consumed  int `json:"consumed"`
	// Time to decision of approved and denied requests, in milliseconds.
	WaitMedianMS int64      `json:"wait_median_ms"`
	WaitP90MS    int64      `json:"wait_p90_ms"`
	WaitMaxMS    int64      `json:"wait_max_ms"`
	Approvers    []Approver `json:"approvers"`
	ExpiredCalls []HeldCall `json:"expired_calls"`
}

// Approver is one person's approval activity.
type Approver struct {
	Name         string `json:"name"`
	Approved     int    `json:"approved"`
	Denied       int    `json:"denied"`
	WaitMedianMS int64  `json:"wait_median_ms"`
}

// HeldCall is a held call that expired without a decision.
type HeldCall struct {
	ApprovalID  string    `json:"approval_id"`
	DecisionID  string    `json:"decision_id"`
	Agent       string    `json:"agent"`
	Tool        string    `json:"tool"`
	Rule        string    `json:"rule,omitempty"`
	RequestedAt time.Time `json:"requested_at"`
	ExpiredAt   time.Time `json:"expired_at"`
}

// KeyRotation is a rotation of the checkpoint signing key.
type KeyRotation struct {
	Seq    uint64    `json:"seq"`
	Time   time.Time `json:"time"`
	OldKey string    `json:"old_key"`
	NewKey string    `json:"new_key"`
}

// AnomalyEvidence counts behavioural signals, inspection findings and unclean restarts.
type AnomalyEvidence struct {
	Decisions  int            `json:"decisions"` // decisions with a behavioural signal
	Signals    map[string]int `json:"signals"`
	Findings   map[string]int `json:"findings"`
	Threat     map[string]int `json:"threat_levels"` // decisions by threat level above none
	Recoveries int            `json:"recoveries"`
	// Alerts counts the alert engine's alert records by rule (an alert folding a flood of
	// matches counts once).
	Alerts map[string]int `json:"alerts"`
}

// ControlEvidence is what the report shows for one control identifier.
type ControlEvidence struct {
	Control
	Evidence []string `json:"evidence"`
}

type approvalState struct {
	held      HeldCall
	result    string
	approvers []string
	waitMS    int64
	consumed  bool
}

// Collector builds a Report from ledger records fed in order. It keeps counts, the approvals
// of the period and one entry per policy version and day, never the records themselves.
type Collector struct {
	f        *Framework
	from, to time.Time
	rep      Report
	versions map[string]*PolicyVersion
	days     map[string]*Day
	rules    map[string]*RuleEvidence
	appr     map[string]*approvalState
	order    []string
}

// NewCollector starts a report for f over [from, to).
func NewCollector(f *Framework, from, to time.Time) *Collector {
	c := &Collector{f: f, from: from, to: to, versions: map[string]*PolicyVersion{}, days: map[string]*Day{},
		rules: map[string]*RuleEvidence{}, appr: map[string]*approvalState{}}
	c.rep = Report{Framework: f.ID, Name: f.Name, Pack: f.Pack, From: from, To: to,
		Decisions:    map[string]int{"allow": 0, "deny": 0, "constrain": 0, "log": 0},
		Anomalies:    AnomalyEvidence{Signals: map[string]int{}, Findings: map[string]int{}, Threat: map[string]int{}, Alerts: map[string]int{}},
		KeyRotations: []KeyRotation{}}
	for r, cs := range f.Rules {
		c.rules[r] = &RuleEvidence{Rule: r, Controls: cs, Decisions: map[string]int{}}
	}
	return c
}

// Add takes the next record of the ledger.
func (c *Collector) Add(r *ledger.Record) {
	if r.Time.Before(c.from) || !r.Time.Before(c.to) {
		return
	}
	c.rep.Ledger.PeriodRecords++
	seq := r.Seq
	if c.rep.Ledger.FirstSeq == nil {
		c.rep.Ledger.FirstSeq = &seq
	}
	c.rep.Ledger.LastSeq = &seq
	switch r.Event() {
	case ledger.KindDecision:
		c.decision(r)
	case ledger.KindApprovalRequested, ledger.KindApprovalVote, ledger.KindApprovalResolved,
		ledger.KindApprovalConsumed, ledger.KindApprovalAborted:
		c.approval(r)
	case ledger.KindKeyRotation:
		if k := r.KeyRotation; k != nil {
			c.rep.KeyRotations = append(c.rep.KeyRotations, KeyRotation{Seq: r.Seq, Time: r.Time, OldKey: k.OldKey, NewKey: k.NewKey})
		}
	case ledger.KindRecovery:
		c.rep.Anomalies.Recoveries++
	case ledger.KindAlert:
		if a := r.Alert; a != nil {
			c.rep.Anomalies.Alerts[a.Rule]++
		}
	}
}

func (c *Collector) decision(r *ledger.Record) {
	d := strings.ToLower(r.Decision)
	if _, ok := c.rep.Decisions[d]; !ok {
		return // not a policy decision (an LLM redaction record)
	}
	c.rep.Decisions[d]++
	day := r.Time.UTC().Format(time.DateOnly)
	dd := c.days[day]
	if dd == nil {
		dd = &Day{Date: day}
		c.days[day] = dd
	}
	switch d {
	case "allow":
		dd.Allow++
	case "deny":
		dd.Deny++
	case "constrain":
		dd.Constrain++
	case "log":
		dd.Log++
	}
	if v := r.PolicyVersion; v != "" {
		pv := c.versions[v]
		if pv == nil {
			pv = &PolicyVersion{Version: v, First: r.Time}
			c.versions[v] = pv
		}
		pv.Last = r.Time
		pv.Decisions++
	}
	if r.Policy != nil {
		if re := c.rules[r.Policy.Rule]; re != nil {
			re.Decisions[d]++
			re.Total++
		}
	}
	if len(r.Anomalies) > 0 {
		c.rep.Anomalies.Decisions++
		for _, a := range r.Anomalies {
			c.rep.Anomalies.Signals[a.Signal]++
		}
	}
	for _, f := range r.Findings {
		c.rep.Anomalies.Findings[f.Kind]++
	}
	if r.ThreatLevel > threat.None {
		c.rep.Anomalies.Threat[r.ThreatLevel.String()]++
	}
}

func (c *Collector) approval(r *ledger.Record) {
	a := r.Approval
	if a == nil || a.ID == "" {
		return
	}
	st := c.appr[a.ID]
	if st == nil {
		st = &approvalState{held: HeldCall{ApprovalID: a.ID, DecisionID: r.DecisionID, Tool: r.Tool}}
		if r.Agent != nil {
			st.held.Agent = r.Agent.ID
		}
		if a.RequestedAt != nil {
			st.held.RequestedAt = *a.RequestedAt
		}
		c.appr[a.ID] = st
		c.order = append(c.order, a.ID)
	}
	switch r.Event() {
	case ledger.KindApprovalRequested:
		if r.Policy != nil {
			st.held.Rule = r.Policy.Rule
		}
		st.result = "pending"
	case ledger.KindApprovalVote:
		if a.Approver != "" && !slices.Contains(st.approvers, a.Approver) {
			st.approvers = append(st.approvers, a.Approver)
		}
	case ledger.KindApprovalResolved:
		st.result = a.Result
		st.waitMS = a.WaitMS
		if a.ResolvedAt != nil {
			st.held.ExpiredAt = *a.ResolvedAt
		}
		if a.Approver != "" && !slices.Contains(st.approvers, a.Approver) {
			st.approvers = append(st.approvers, a.Approver)
		}
	case ledger.KindApprovalConsumed:
		st.consumed = true
	case ledger.KindApprovalAborted:
		// A change the approval store could not commit: the request is back where it was.
		st.result = a.Result
	}
}

// Archives says that n archives, holding the records before seq to, were verified with the
// live log and fed to Add.
func (c *Collector) Archives(n int, to uint64) {
	c.rep.Ledger.Archives, c.rep.Ledger.ArchivedTo = n, to
}

// Finish completes the report with the ledger's verification (of the whole log, which covers
// the period) and the evidence per control.
func (c *Collector) Finish(v ledger.Report, now time.Time) *Report {
	rep := &c.rep
	rep.GeneratedAt = now
	rep.Ledger.Verification = v
	rep.Ledger.Signed = v.Intact && (rep.Ledger.LastSeq == nil ||
		(v.LatestCheckpoint != nil && *rep.Ledger.LastSeq < v.LatestCheckpoint.Size))

	rep.PolicyVersions = make([]PolicyVersion, 0, len(c.versions))
	for _, pv := range c.versions {
		rep.PolicyVersions = append(rep.PolicyVersions, *pv)
	}
	sort.Slice(rep.PolicyVersions, func(i, j int) bool { return rep.PolicyVersions[i].First.Before(rep.PolicyVersions[j].First) })
	rep.Days = make([]Day, 0, len(c.days))
	for _, d := range c.days {
		rep.Days = append(rep.Days, *d)
	}
	sort.Slice(rep.Days, func(i, j int) bool { return rep.Days[i].Date < rep.Days[j].Date })
	rep.Rules = make([]RuleEvidence, 0, len(c.rules))
	for _, re := range c.rules {
		rep.Rules = append(rep.Rules, *re)
	}
	sort.Slice(rep.Rules, func(i, j int) bool { return rep.Rules[i].Rule < rep.Rules[j].Rule })

	ap := &rep.Approvals
	ap.Approvers, ap.ExpiredCalls = []Approver{}, []HeldCall{}
	var waits []int64
	per := map[string]*Approver{}
	perWaits := map[string][]int64{}
	for _, id := range c.order {
		st := c.appr[id]
		if !st.held.RequestedAt.IsZero() && !st.held.RequestedAt.Before(c.from) {
			ap.Requested++
		}
		if st.consumed {
			ap.Consumed++
		}
		switch st.result {
		case "approved", "consumed":
			ap.Approved++
		case "denied":
			ap.Denied++
		case "expired":
			ap.Expired++
			ap.ExpiredCalls = append(ap.ExpiredCalls, st.held)
			continue
		default:
			ap.Pending++
			continue
		}
		waits = append(waits, st.waitMS)
		for _, name := range st.approvers {
			p := per[name]
			if p == nil {
				p = &Approver{Name: name}
				per[name] = p
			}
			if st.result == "denied" {
				p.Denied++
			} else {
				p.Approved++
			}
			perWaits[name] = append(perWaits[name], st.waitMS)
		}
	}
	ap.WaitMedianMS, ap.WaitP90MS, ap.WaitMaxMS = quantile(waits, 0.5), quantile(waits, 0.9), quantile(waits, 1)
	for name, p := range per {
		p.WaitMedianMS = quantile(perWaits[name], 0.5)
		ap.Approvers = append(ap.Approvers, *p)
	}
	sort.Slice(ap.Approvers, func(i, j int) bool { return ap.Approvers[i].Name < ap.Approvers[j].Name })

	rep.Controls = c.controls()
	return rep
}

// quantile is the nearest-rank q-quantile of xs (0 for none); it sorts xs.
func quantile(xs []int64, q float64) int64 {
	if len(xs) == 0 {
		return 0
	}
	slices.Sort(xs)
	i := int(q*float64(len(xs))+0.999999) - 1
	return xs[max(0, min(i, len(xs)-1))]
}

func (c *Collector) controls() []ControlEvidence {
	var out []ControlEvidence
	for _, ctl := range c.f.Controls() {
		ce := ControlEvidence{Control: ctl}
		for _, r := range ctl.Rules {
			re := c.rules[r]
			ce.Evidence = append(ce.Evidence, fmt.Sprintf("rule %s decided %d calls (%s)", r, re.Total, countList(re.Decisions)))
		}
		for _, ft := range ctl.Features {
			ce.Evidence = append(ce.Evidence, c.feature(ft))
		}
		out = append(out, ce)
	}
	return out
}

func (c *Collector) feature(ft string) string {
	rep := &c.rep
	v := rep.Ledger.Verification
	switch ft {
	case "ledger_integrity":
		if !v.Intact {
			at := uint64(0)
			if v.FirstBadSeq != nil {
				at = *v.FirstBadSeq
			}
			return fmt.Sprintf("ledger verification FAILED at seq %d: %s (%s)", at, v.Problem, v.Reason)
		}
		return fmt.Sprintf("ledger intact: %d records verified, %d in the period", v.RecordsChecked, rep.Ledger.PeriodRecords)
	case "signed_checkpoints":
		size := uint64(0)
		if v.LatestCheckpoint != nil {
			size = v.LatestCheckpoint.Size
		}
		if rep.Ledger.Signed {
			return fmt.Sprintf("%d signed checkpoints checked; the latest covers %d records, every record of the period", v.CheckpointsChecked, size)
		}
		return fmt.Sprintf("%d signed checkpoints checked; the latest covers %d records, NOT every record of the period (%d unsigned)", v.CheckpointsChecked, size, v.UnsignedRecords)
	case "approvals":
		a := rep.Approvals
		return fmt.Sprintf("%d held calls: %d approved, %d denied, %d expired, %d pending; median time to decision %s",
			a.Requested, a.Approved, a.Denied, a.Expired, a.Pending, time.Duration(a.WaitMedianMS)*time.Millisecond)
	case "key_rotation":
		return fmt.Sprintf("%d signing key rotations in the period", len(rep.KeyRotations))
	case "access_control":
		return fmt.Sprintf("%d decisions: %s; %d policy versions in force", rep.Decisions["allow"]+rep.Decisions["deny"]+rep.Decisions["constrain"]+rep.Decisions["log"],
			countList(rep.Decisions), len(rep.PolicyVersions))
	case "retention_archive":
		if l := rep.Ledger; l.Archives > 0 {
			return fmt.Sprintf("%d archives of the records before seq %d verified with the live log", l.Archives, l.ArchivedTo)
		}
		if v.ArchivedRecords > 0 {
			return fmt.Sprintf("%d records archived and pruned; the live log starts from their signed checkpoint", v.ArchivedRecords)
		}
		return "no records archived: the whole history is in the live log"
	}
	return ft
}

func countList(m map[string]int) string {
	var parts []string
	for _, k := range []string{"allow", "log", "constrain", "deny"} {
		if m[k] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", m[k], k))
		}
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}
