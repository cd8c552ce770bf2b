package console

import (
	"bytes"
	"log/slog"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/portcullis-ai/portcullis/internal/ledger"
	"github.com/portcullis-ai/portcullis/internal/policy"
)

// PolicyState is the policy set in force and how the gateway's configuration lints it.
type PolicyState struct {
	Set  *policy.Set
	Lint policy.LintOptions
	// Shadow is the candidate set decided beside Set, never enforced (nil: none), and
	// ShadowTransitions the calls decided under it by transition ("ALLOW→DENY") since start.
	Shadow            *policy.Set
	ShadowTransitions map[string]uint64
}

// policyWindows are the spans the policies page counts rule hits over; the first is the default.
var policyWindows = []struct {
	Name string
	D    time.Duration
}{{"7d", 7 * 24 * time.Hour}, {"24h", 24 * time.Hour}, {"30d", 30 * 24 * time.Hour}}

type ruleRow struct {
	Agent  string
	Name   string
	Action policy.Action
	Pos    string
	File   string
	Line   int
	DryRun bool
	Threat bool
	// Hits are the decisions the rule made in the window; for a dry-run rule, the calls it would
	// have decided more strictly than the rule that did.
	Hits    int
	LastHit time.Time
}

type policyFile struct {
	Name   string
	Agents []string
	Rules  int
}

type shadowTransition struct {
	Name  string
	Calls uint64
	Same  bool
}

// shadowTransitions orders the counts: disagreements first, then by count and name.
func shadowTransitions(m map[string]uint64) []shadowTransition {
	out := make([]shadowTransition, 0, len(m))
	for name, n := range m {
		from, to, _ := strings.Cut(name, "→")
		out = append(out, shadowTransition{Name: name, Calls: n, Same: from == to})
	}
	slices.SortFunc(out, func(a, b shadowTransition) int {
		switch {
		case a.Same != b.Same:
			if a.Same {
				return 1
			}
			return -1
		case a.Calls != b.Calls:
			if a.Calls > b.Calls {
				return -1
			}
			return 1
		}
		return strings.Compare(a.Name, b.Name)
	})
	return out
}

// versionRow is one policy version as the ledger saw it decide: the reload history.
type versionRow struct {
	Version     string
	First, Last time.Time
	Decisions   int
}

type policiesData struct {
	Version string
	// Shadow is the candidate set's version ("" none) and its transition counts, disagreements
	// first.
	Shadow      string
	Transitions []shadowTransition
	Versions    []*versionRow
	Files       []policyFile
	Rules       []*ruleRow
	Unfired     int
	DryRuns     []*ruleRow
	Lint        []policy.LintFinding
	Window      string
	Windows     []string
	Since       time.Time
	Truncated   bool
}

// maxVersionRows bounds the reload history the page keeps (versions come from records, which a
// flood of reloads could multiply).
const maxVersionRows = 200

// dryRunReason is the reason the guard records when a dry-run rule would have decided a call
// more strictly than the rule that did (guard: "dry run: rule %q would have decided %s").
var dryRunReason = regexp.MustCompile(`^dry run: rule "((?:[^"\\]|\\.)*)" would have decided `)

// policiesPage shows the policy set in force: its version, files, rules with their hits in the
// window (and those that never fired), what the dry-run rules would have changed, and the lint
// findings. Read-only; admins only.
func (c *Console) policiesPage(w http.ResponseWriter, r *http.Request, s *session, p Principal) {
	st, ok := c.policyState(w, r, p)
	if !ok {
		return
	}
	d := policiesData{Version: st.Set.Version(), Window: policyWindows[0].Name}
	if st.Shadow != nil {
		d.Shadow, d.Transitions = st.Shadow.Version(), shadowTransitions(st.ShadowTransitions)
	}
	span := policyWindows[0].D
	for _, pw := range policyWindows {
		d.Windows = append(d.Windows, pw.Name)
		if r.URL.Query().Get("window") == pw.Name {
			d.Window, span = pw.Name, pw.D
		}
	}
	d.Since = c.o.Now().Add(-span)
	type key struct{ agent, rule string }
	rules := map[key]*ruleRow{}
	for _, f := range st.Set.Files() {
		pf := policyFile{Name: f.Name}
		for _, pol := range f.Policies {
			pf.Agents = append(pf.Agents, pol.AgentID)
			pf.Rules += len(pol.Rules)
			for _, ru := range pol.Rules {
				x := &ruleRow{Agent: pol.AgentID, Name: ru.Name, Action: ru.Action, Pos: ru.Pos.String(), File: f.Name, Line: ru.Pos.Line,
					DryRun: ru.DryRun, Threat: ru.Threat}
				rules[key{pol.AgentID, ru.Name}] = x
				if ru.DryRun {
					d.DryRuns = append(d.DryRuns, x)
				} else {
					d.Rules = append(d.Rules, x)
				}
			}
		}
		d.Files = append(d.Files, pf)
	}
	hit := func(x *ruleRow, at time.Time) {
		x.Hits++
		if at.After(x.LastHit) {
			x.LastHit = at
		}
	}
	versions := map[string]*versionRow{}
	truncated, err := c.scanBack(r.Context(), d.Since, statsBudget, func(_ uint64, rec *stat) {
		if rec.Kind != ledger.KindDecision {
			return
		}
		if v := rec.PolicyVersion; v != "" {
			vr := versions[v]
			if vr == nil {
				if len(versions) >= maxVersionRows {
					return
				}
				vr = &versionRow{Version: v, First: rec.Time, Last: rec.Time}
				versions[v] = vr
			}
			vr.Decisions++
			if rec.Time.Before(vr.First) {
				vr.First = rec.Time
			}
			if rec.Time.After(vr.Last) {
				vr.Last = rec.Time
			}
		}
		agent := rec.Agent.ID
		if x := rules[key{agent, rec.Policy.Rule}]; x != nil && !x.DryRun {
			hit(x, rec.Time)
		}
		if m := dryRunReason.FindStringSubmatch(rec.Reason); m != nil {
			name, err := strconv.Unquote(`"` + m[1] + `"`)
			if x := rules[key{agent, name}]; err == nil && x != nil && x.DryRun {
				hit(x, rec.Time)
			}
		}
	})
	if err != nil {
		c.log.LogAttrs(r.Context(), slog.LevelError, "console: policies", slog.Any("error", err))
		c.fail(w, r, http.StatusServiceUnavailable, "The ledger cannot be read right now.")
		return
	}
	d.Truncated = truncated
	for _, vr := range versions {
		d.Versions = append(d.Versions, vr)
	}
	slices.SortFunc(d.Versions, func(a, b *versionRow) int { return b.Last.Compare(a.Last) })
	for _, x := range d.Rules {
		if x.Hits == 0 {
			d.Unfired++
		}
	}
	d.Lint = policy.LintWith(st.Lint, st.Set.Files()...)
	c.render(w, r, http.StatusOK, "policies", view{Title: "Policies", Nav: "policies", P: &p, CSRF: s.csrf, Data: d})
}

// sourceLine is one line of a policy file on its source page.
type sourceLine struct {
	N    int
	Text string
	Mark bool // part of the rule asked for
}

type sourceData struct {
	Version string
	File    string
	Agent   string
	Rule    string
	Lines   []sourceLine
}

// policySource shows one file of the set in force, exactly as it was parsed, with the lines of
// the rule asked for (agent and rule) marked. Only files of the loaded set can be named: the page
// reads nothing from disk. Admins only, like the policies page.
func (c *Console) policySource(w http.ResponseWriter, r *http.Request, s *session, p Principal) {
	st, ok := c.policyState(w, r, p)
	if !ok {
		return
	}
	q := r.URL.Query()
	d := sourceData{Version: st.Set.Version(), File: q.Get("file"), Agent: q.Get("agent"), Rule: q.Get("rule")}
	var file *policy.File
	for _, f := range st.Set.Files() {
		if f.Name == d.File {
			file = f
		}
	}
	if file == nil {
		c.fail(w, r, http.StatusNotFound, "No such file in the policy set in force.")
		return
	}
	from, to := ruleLines(file, d.Agent, d.Rule)
	for i, text := range strings.Split(strings.TrimSuffix(string(file.Source()), "\n"), "\n") {
		n := i + 1
		d.Lines = append(d.Lines, sourceLine{N: n, Text: strings.TrimSuffix(text, "\r"), Mark: n >= from && n <= to})
	}
	c.render(w, r, http.StatusOK, "policysource", view{Title: "Policy " + d.File, Nav: "policies", P: &p, CSRF: s.csrf, Data: d})
}

// ruleLines is the span of lines agent's rule takes in f: from its first line to the line before
// the next rule or top-level key, trailing blank and comment lines left out (0, -1: not found).
func ruleLines(f *policy.File, agent, rule string) (from, to int) {
	var starts []int
	for _, pol := range f.Policies {
		for _, ru := range pol.Rules {
			starts = append(starts, ru.Pos.Line)
			if pol.AgentID == agent && ru.Name == rule && from == 0 {
				from = ru.Pos.Line
			}
		}
	}
	if from == 0 {
		return 0, -1
	}
	lines := bytes.Split(f.Source(), []byte("\n"))
	to = len(lines)
	for _, l := range starts {
		if l > from && l-1 < to {
			to = l - 1
		}
	}
	for n := from + 1; n <= to; n++ {
		if l := lines[n-1]; len(l) > 0 && l[0] != ' ' && l[0] != '\t' && l[0] != '#' && l[0] != '-' {
			to = n - 1 // a top-level key ends the rules
			break
		}
	}
	for to > from {
		t := bytes.TrimSpace(lines[to-1])
		if len(t) != 0 && t[0] != '#' {
			break
		}
		to--
	}
	return from, to
}

// policyState is the policy set in force, for admins only; ok is false (and the page answered)
// for anyone else or when no set is loaded.
func (c *Console) policyState(w http.ResponseWriter, r *http.Request, p Principal) (st PolicyState, ok bool) {
	if !c.allowRole(w, r, p.Role == RoleAdmin) {
		return st, false
	}
	if c.o.Policies != nil {
		st = c.o.Policies()
	}
	if st.Set == nil {
		c.fail(w, r, http.StatusServiceUnavailable, "No policy set is loaded.")
		return st, false
	}
	return st, true
}
