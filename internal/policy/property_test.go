package policy

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/portcullis-ai/portcullis/internal/threat"
)

var (
	propTools    = []string{"a", "b", "c", "fetch_x", "fetch_y", "zzz"}
	propPatterns = []string{"a", "b", "c", "fetch_x", ".*", "fetch_.*", "(a|b)", "[bc]", "[a-z]+_y", "fetch_[xy]", "b.*", "fe(tch_x|ed)"}
	propFindings = []string{"f1", "f2", "f3"}
	propActions  = []string{"ALLOW", "DENY", "CONSTRAIN", "LOG"}
	propLevels   = []string{"none", "low", "medium", "high", "critical"}
	propConds    = []func(r *rand.Rand) string{
		func(r *rand.Rand) string { return "- threat_score: " + propLevels[r.IntN(5)] },
		func(r *rand.Rand) string {
			return "- findings: [" + propFindings[r.IntN(3)] + ", " + propFindings[r.IntN(3)] + "]"
		},
		func(r *rand.Rand) string { return fmt.Sprintf("- parameter: x\n  max_value: %d", r.IntN(10)) },
		func(r *rand.Rand) string { return fmt.Sprintf("- parameter: x\n  min_value: %d", r.IntN(10)) },
		func(r *rand.Rand) string { return "- user_permission: p\n  must_have: " + fmt.Sprint(r.IntN(2) == 0) },
		func(r *rand.Rand) string {
			return fmt.Sprintf("- time_context:\n    call_count_exceeds: {window_minutes: 60, threshold: %d}", r.IntN(3))
		},
		func(r *rand.Rand) string {
			return []string{
				`- expr: "threat.rank < 2"`, `- expr: "threat.rank >= 3"`, `- expr: "'f1' in threat.findings"`,
				`- expr: "!('f2' in threat.findings)"`, `- expr: "threat.level == 'medium'"`, `- expr: "params.x > 5"`,
				`- expr: "params.nope == 1"`, `- expr: "size(threat.findings) == 1 && params.x < 3"`,
			}[r.IntN(8)]
		},
	}
)

func randomPolicy(r *rand.Rand) string {
	var b strings.Builder
	fmt.Fprintf(&b, "agent_id: agent\ndefault_action: %s\nrules:\n", propActions[r.IntN(4)])
	for i := range 1 + r.IntN(8) {
		fmt.Fprintf(&b, "  - name: r%d\n", i)
		if r.IntN(4) == 0 {
			fmt.Fprintf(&b, "    tool: [%q, %q]\n", propPatterns[r.IntN(len(propPatterns))], propPatterns[r.IntN(len(propPatterns))])
		} else {
			fmt.Fprintf(&b, "    tool: %q\n", propPatterns[r.IntN(len(propPatterns))])
		}
		if r.IntN(5) == 0 {
			fmt.Fprintf(&b, "    not_tool: %q\n", propPatterns[r.IntN(len(propPatterns))])
		}
		fmt.Fprintf(&b, "    action: %s\n    conditions:\n", propActions[r.IntN(4)])
		for range r.IntN(3) {
			c := propConds[r.IntN(len(propConds))](r)
			b.WriteString("      " + strings.ReplaceAll(c, "\n", "\n      ") + "\n")
		}
	}
	return b.String()
}

func randomRequest(r *rand.Rand) *Request {
	now := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
	req := &Request{Agent: Agent{ID: "agent"}, Tool: propTools[r.IntN(len(propTools))], Time: now, Params: map[string]any{}}
	if r.IntN(4) != 0 {
		req.Params["x"] = float64(r.IntN(10))
	}
	if r.IntN(2) == 0 {
		req.User = &User{ID: "u"}
		if r.IntN(2) == 0 {
			req.User.Permissions = []string{"p"}
		}
	}
	if n := r.IntN(4); n > 0 {
		ago := make([]int, n)
		for i := range ago {
			ago[i] = r.IntN(90)
		}
		req.History = calls(req.Tool, now, ago...)
	}
	return req
}

// referenceDecision is the combining rule written as plainly as possible, over every rule
// without the tool index: it checks the index and the short-cuts of Evaluate.
func referenceDecision(s *Set, req *Request) Decision {
	p := s.agents[req.Agent.ID]
	if p == nil {
		return unknownAgent
	}
	base, baseIdx := p.def, int32(-1)
	for i := range p.rules {
		r := &p.rules[i]
		if !r.threat && r.matchesTool(req.Tool) && p.applies(r, req, req.Time, nil) {
			if baseIdx < 0 || r.action < base {
				base, baseIdx = r.action, int32(i)
			}
		}
	}
	if base == Deny {
		return p.decision(base, baseIdx)
	}
	cur, curIdx := base, baseIdx
	for i := range p.rules {
		r := &p.rules[i]
		if r.threat && r.matchesTool(req.Tool) && p.applies(r, req, req.Time, nil) {
			if r.action < cur || (r.action == cur && curIdx >= 0 && int32(i) < curIdx) {
				cur, curIdx = r.action, int32(i)
			}
		}
	}
	return p.decision(cur, curIdx)
}

func withThreat(req *Request, lvl int, mask int) *Request {
	c := *req
	c.Threat = threat.Level(lvl)
	c.Findings = nil
	for i, f := range propFindings {
		if mask&(1<<i) != 0 {
			c.Findings = append(c.Findings, f)
		}
	}
	return &c
}

// TestPropertyThreatOnlyTightens: on random policies and requests, raising the threat level or
// adding findings never makes a decision less restrictive; Evaluate, Explain and a plain
// reference implementation of the combining rule agree.
func TestPropertyThreatOnlyTightens(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	policies, checks := 0, 0
	for policies < 100 {
		src := randomPolicy(r)
		f, err := Parse("rand.yaml", []byte(src))
		if err != nil {
			t.Fatalf("generated policy does not parse: %v\n%s", err, src)
		}
		set, err := Compile(f)
		if err != nil {
			t.Fatal(err)
		}
		policies++
		for range 15 {
			req := randomRequest(r)
			var dec [5][8]Decision
			for lvl := range 5 {
				for mask := range 8 {
					q := withThreat(req, lvl, mask)
					d := set.Evaluate(q)
					dec[lvl][mask] = d
					if diff := cmp.Diff(referenceDecision(set, q), d); diff != "" {
						t.Fatalf("Evaluate differs from the reference (-ref +got):\n%s\npolicy:\n%s\nrequest %+v", diff, src, q)
					}
					if diff := cmp.Diff(d, set.Explain(q).Decision); diff != "" {
						t.Fatalf("Explain differs from Evaluate:\n%s\npolicy:\n%s", diff, src)
					}
				}
			}
			for lvl := range 5 {
				for mask := range 8 {
					d := dec[lvl][mask].Action
					if lvl < 4 && d.StricterThan(dec[lvl+1][mask].Action) {
						t.Fatalf("raising threat %s→%s loosened %s to %s\npolicy:\n%s\nrequest %+v findings mask %b",
							threat.Level(lvl), threat.Level(lvl+1), d, dec[lvl+1][mask].Action, src, req, mask)
					}
					for i := range 3 {
						if mask&(1<<i) == 0 && d.StricterThan(dec[lvl][mask|1<<i].Action) {
							t.Fatalf("adding finding %s loosened %s to %s\npolicy:\n%s\nrequest %+v level %d mask %b",
								propFindings[i], d, dec[lvl][mask|1<<i].Action, src, req, lvl, mask)
						}
					}
					checks++
				}
			}
		}
	}
	t.Logf("%d policies, %d request variants checked", policies, checks)
}
