package policy

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// Explain decides req like Evaluate and also reports every rule considered (those whose tool
// patterns cover the tool) with each condition's result. It allocates; call it for the audit
// record or a human, not on the agent's path. Its Decision always equals Evaluate's.
func (s *Set) Explain(req *Request) (ex Explanation) {
	defer func() {
		if r := recover(); r != nil {
			ex = Explanation{Decision: unknownAgent, Reason: fmt.Sprintf("internal_error: %v", r), Rules: []RuleTrace{}}
		}
	}()
	if s == nil || req == nil {
		return Explanation{Decision: unknownAgent, Reason: "unknown_agent", Rules: []RuleTrace{}}
	}
	p := s.agents[req.Agent.ID]
	if p == nil {
		return Explanation{Decision: unknownAgent, Reason: "unknown_agent", Rules: []RuleTrace{}}
	}
	now := req.Time
	if now.IsZero() {
		now = time.Now()
	}
	c := p.candidates(req.Tool)
	ex.Rules = []RuleTrace{}
	type hit struct {
		idx    int32
		action Action
		threat bool
		dryRun bool
	}
	var hits []hit
	for _, i := range c.idx {
		r := &p.rules[i]
		tr := RuleTrace{Rule: r.name, Pos: r.posStr, Action: r.action, Threat: r.threat, DryRun: r.dryRun, Conditions: []ConditionTrace{}}
		tr.Applies = p.applies(r, req, now, &tr)
		ex.Rules = append(ex.Rules, tr)
		if tr.Applies {
			hits = append(hits, hit{i, r.action, r.threat, r.dryRun})
		}
	}
	// combine applies the combining rule to the applicable rules, with or without the dry-run ones.
	combine := func(withDryRun bool) (Action, int32) {
		base, baseIdx := p.def, int32(-1)
		for _, h := range hits {
			if h.threat || (h.dryRun && !withDryRun) {
				continue
			}
			if baseIdx < 0 || h.action.StricterThan(base) {
				base, baseIdx = h.action, h.idx
			}
		}
		cur, curIdx := base, baseIdx
		if cur != Deny {
			for _, h := range hits {
				if !h.threat || (h.dryRun && !withDryRun) {
					continue
				}
				if h.action.StricterThan(cur) || (h.action == cur && curIdx >= 0 && h.idx < curIdx) {
					cur, curIdx = h.action, h.idx
				}
			}
		}
		return cur, curIdx
	}
	cur, curIdx := combine(false)
	if wa, wi := combine(true); wa != cur || wi != curIdx {
		w := p.decision(wa, wi)
		ex.WouldHave = &w
	}
	ex.Decision = p.decision(cur, curIdx)
	switch {
	case curIdx >= 0:
		ex.Reason = "rule"
	default:
		ex.Reason = "default_action"
	}
	return ex
}

func (p *cpolicy) traceCond(cc *ccond, req *Request, now time.Time, ok, errored bool) ConditionTrace {
	t := ConditionTrace{Kind: cc.kind.String(), Pos: cc.posStr, Result: ok}
	if errored {
		t.Error = "could not be evaluated; counted as holding for a restricting rule, not holding for an ALLOW rule"
		if cc.kind == KindExpr {
			act := &celActivation{req: req, now: now, rank: int(req.Threat), findings: req.Findings}
			if _, err := evalExpr(cc.expr, act); err != nil {
				t.Error = err.Error() + " (" + t.Error + ")"
			}
		}
	}
	t.Detail = p.detail(cc, req, now)
	return t
}

func (p *cpolicy) detail(cc *ccond, req *Request, now time.Time) string {
	switch cc.kind {
	case KindParameter:
		// The common kinds are written into one buffer: a record quotes them on every decision.
		var buf [128]byte
		b := append(buf[:0], "parameter "...)
		b = append(b, cc.src.Parameter.Path...)
		v, found := lookup(req.Params, cc.path)
		if !found {
			return string(append(b, " is missing"...))
		}
		return string(appendShort(append(b, " = "...), shown(req, cc.path, v)))
	case KindTimeOfDay:
		var buf [128]byte
		l := now.In(cc.loc)
		b := append(buf[:0], "local time "...)
		b = append(b, l.Weekday().String()[:3]...)
		b = appendClock(append(b, ' '), l.Hour()*60+l.Minute())
		b = append(b, " in "...)
		b = append(b, cc.loc.String()...)
		b = appendClock(append(b, "; window ["...), int(cc.start))
		b = appendClock(append(b, ", "...), int(cc.end))
		return string(append(b, ')'))
	case KindThreatScore:
		return "threat level " + req.Threat.String() + ", needs at least " + cc.level.String()
	case KindUserPermission:
		return fmt.Sprintf("user has %s: %v, must_have: %v", cc.perm, req.User != nil && hasString(req.User.Permissions, cc.perm), cc.mustHave)
	case KindTimeContext:
		var parts []string
		if cc.hasUnusual {
			parts = append(parts, fmt.Sprintf("unusual hour: %v", p.unusualHour(req, now)))
		}
		if cc.orCC != nil {
			parts = append(parts, fmt.Sprintf("or calls in %dm: %d (exceeds when > %d)", cc.orCC.WindowMinutes, callCount(req, cc.orCC, now), cc.orCC.Threshold))
		}
		if cc.andCC != nil {
			parts = append(parts, fmt.Sprintf("and calls in %dm: %d (exceeds when > %d)", cc.andCC.WindowMinutes, callCount(req, cc.andCC, now), cc.andCC.Threshold))
		}
		return strings.Join(parts, "; ")
	case KindAgentRole:
		return fmt.Sprintf("agent roles %v, needs %s%s", req.Agent.Roles, cc.role, ifStr(cc.perm != "", " with permission "+cc.perm))
	case KindUserAttribute:
		var attr []string
		if req.User != nil {
			attr = req.User.Attributes[cc.attr]
		}
		v, _ := lookup(req.Params, cc.path)
		return fmt.Sprintf("user %s %v, parameter %s = %s", cc.attr, attr, strings.Join(cc.path, "."), short(shown(req, cc.path, v)))
	case KindDataClassification:
		lvl := cc.src.DataClassification.Level
		if cc.class < 0 {
			lvl = "tool's level"
			if i := p.toolLevel(req); i >= 0 && i < len(p.levelNames()) {
				lvl = p.levelNames()[i]
			}
		}
		var cl []string
		if req.User != nil {
			cl = req.User.Attributes["clearance"]
		}
		return fmt.Sprintf("classification %s, user clearance %v", lvl, cl)
	case KindExpr:
		return "expr: " + cc.src.Expr.Source
	case KindFindings:
		return fmt.Sprintf("findings %v, any of %v", req.Findings, cc.findings)
	case KindSession:
		return sessionDetail(req.Session, cc)
	case KindToolSink:
		sink := "undeclared"
		if d := p.src.Tools[req.Tool]; d != nil && d.Sink != "" {
			sink = d.Sink
		}
		return fmt.Sprintf("tool %s sink %s, needs %s", req.Tool, sink, cc.sink)
	}
	return ""
}

// shown is what an explanation may quote of the parameter at path whose value is v: the
// request's Display of it when set (a secret in a parameter must not reach the record through
// the explanation), else v.
func shown(req *Request, path []string, v any) any {
	if req.Display == nil {
		return v
	}
	return req.Display(path)
}

func (p *cpolicy) levelNames() []string {
	out := make([]string, len(p.levels))
	for n, i := range p.levels {
		out[i] = n
	}
	return out
}

func ifStr(c bool, s string) string {
	if c {
		return s
	}
	return ""
}

func short(v any) string {
	var s string
	if b, err := json.Marshal(v); err == nil {
		s = string(b)
	} else {
		s = fmt.Sprintf("%v", v)
	}
	if r := []rune(s); len(r) > 80 {
		return string(r[:80]) + "…"
	}
	return s
}

// sessionDetail says what the session has seen and which results brought each label.
func sessionDetail(s *Session, cc *ccond) string {
	var b strings.Builder
	if s == nil || len(s.Labels) == 0 {
		b.WriteString("session has seen nothing")
	} else {
		b.WriteString("session")
		if s.ID != "" {
			id := s.ID
			if r := []rune(id); len(r) > 64 {
				id = string(r[:64]) + "…"
			}
			fmt.Fprintf(&b, " %q", id)
		}
		b.WriteString(" has seen ")
		for i, l := range s.Labels {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(l)
			if i < len(s.Sources) && s.Sources[i] != "" {
				fmt.Fprintf(&b, " (from %s)", s.Sources[i])
			}
		}
	}
	if len(cc.hasSeen) > 0 {
		fmt.Fprintf(&b, "; needs all of %v", cc.hasSeen)
	}
	if cc.src.Session.MaxClassificationSeen != "" {
		fmt.Fprintf(&b, "; needs classification %s or above", cc.src.Session.MaxClassificationSeen)
	}
	return b.String()
}
