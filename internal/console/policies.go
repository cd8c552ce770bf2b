package console

import (
	"log/slog"
	"net/http"
	"regexp"
	"strconv"
	"time"

	"github.com/portcullis-ai/portcullis/internal/ledger"
	"github.com/portcullis-ai/portcullis/internal/policy"
)

// PolicyState is the policy set in force and how the gateway's configuration lints it.
type PolicyState struct {
	Set  *policy.Set
	Lint policy.LintOptions
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

type policiesData struct {
	Version   string
	Files     []policyFile
	Rules     []*ruleRow
	Unfired   int
	DryRuns   []*ruleRow
	Lint      []policy.LintFinding
	Window    string
	Windows   []string
	Since     time.Time
	Truncated bool
}

// dryRunReason is the reason the guard records when a dry-run rule would have decided a call
// more strictly than the rule that did (guard: "dry run: rule %q would have decided %s").
var dryRunReason = regexp.MustCompile(`^dry run: rule "((?:[^"\\]|\\.)*)" would have decided `)

// policiesPage shows the policy set in force: its version, files, rules with their hits in the
// window (and those that never fired), what the dry-run rules would have changed, and the lint
// findings. Read-only; admins only.
func (c *Console) policiesPage(w http.ResponseWriter, r *http.Request, s *session, p Principal) {
	if !c.allowRole(w, r, p.Role == RoleAdmin) {
		return
	}
	var st PolicyState
	if c.o.Policies != nil {
		st = c.o.Policies()
	}
	if st.Set == nil {
		c.fail(w, r, http.StatusServiceUnavailable, "No policy set is loaded.")
		return
	}
	d := policiesData{Version: st.Set.Version(), Window: policyWindows[0].Name}
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
				x := &ruleRow{Agent: pol.AgentID, Name: ru.Name, Action: ru.Action, Pos: ru.Pos.String(), DryRun: ru.DryRun, Threat: ru.Threat}
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
	truncated, err := c.scanBack(r.Context(), d.Since, statsBudget, func(_ uint64, rec *stat) {
		if rec.Kind != ledger.KindDecision {
			return
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
	for _, x := range d.Rules {
		if x.Hits == 0 {
			d.Unfired++
		}
	}
	d.Lint = policy.LintWith(st.Lint, st.Set.Files()...)
	c.render(w, r, http.StatusOK, "policies", view{Title: "Policies", Nav: "policies", P: &p, CSRF: s.csrf, Data: d})
}
