package policy

import (
	"time"
	"unicode/utf8"
)

// unknownAgent is the decision for an agent the set has no policy for: deny-by-default.
var unknownAgent = Decision{Action: Deny, Enforcement: DefaultEnforcement[Deny]}

// Evaluate decides req. It is the hot path: it does not allocate (unless the policy uses CEL
// expressions or a pattern rule meets a tool name for the first time) and it never fails open:
// an agent without a policy, or a panic inside evaluation, yields DENY.
func (s *Set) Evaluate(req *Request) (d Decision) {
	defer func() {
		if recover() != nil {
			d = unknownAgent
		}
	}()
	if s == nil || req == nil {
		return unknownAgent
	}
	p := s.agents[req.Agent.ID]
	if p == nil {
		return unknownAgent
	}
	now := req.Time
	if now.IsZero() {
		now = time.Now()
	}
	return p.decision(p.combine(p.candidates(req.Tool), req, now, false))
}

func (p *cpolicy) decision(a Action, idx int32) Decision {
	d := Decision{Action: a, Enforcement: p.enforce[a]}
	if idx >= 0 {
		r := &p.rules[idx]
		d.Rule, d.RuleEnforcement = r.name, r.enforcement
		if a == Constrain {
			d.Approval = r.approval
		}
	}
	return d
}

// applies reports whether every condition of r holds. A condition that fails to evaluate (only a
// CEL expression can) counts as holding when the rule restricts (any action but ALLOW) and as
// not holding for an ALLOW rule: errors only ever tighten a decision. When tr is not nil every
// condition is evaluated and recorded.
func (p *cpolicy) applies(r *crule, req *Request, now time.Time, tr *RuleTrace) bool {
	all := true
	for j := range r.conds {
		cc := &r.conds[j]
		ok, errored := p.cond(cc, req, now)
		if errored {
			ok = r.action != Allow
		}
		if tr != nil {
			tr.Conditions = append(tr.Conditions, p.traceCond(cc, req, now, ok, errored))
		}
		if !ok {
			all = false
			if tr == nil {
				return false
			}
		}
	}
	return all
}

// cond evaluates one condition; errored is true when it could not be evaluated.
func (p *cpolicy) cond(cc *ccond, req *Request, now time.Time) (ok, errored bool) {
	switch cc.kind {
	case KindParameter:
		v, found := lookup(req.Params, cc.path)
		if !found {
			return false, false
		}
		return everyElem(v, cc.scalarOK), false
	case KindTimeOfDay:
		return inWindow(cc.zone, now, cc.start, cc.end, cc.days), false
	case KindThreatScore:
		return req.Threat >= cc.level, false
	case KindUserPermission:
		has := req.User != nil && hasString(req.User.Permissions, cc.perm)
		return has == cc.mustHave, false
	case KindTimeContext:
		return p.timeContext(cc, req, now), false
	case KindAgentRole:
		a := &req.Agent
		if !hasString(a.Roles, cc.role) {
			return false, false
		}
		if cc.perm == "" {
			return true, false
		}
		return hasString(a.Permissions, cc.perm) || hasString(a.RolePermissions[cc.role], cc.perm), false
	case KindUserAttribute:
		if req.User == nil {
			return false, false
		}
		attr := req.User.Attributes[cc.attr]
		v, found := lookup(req.Params, cc.path)
		if !found || len(attr) == 0 {
			return false, false
		}
		return everyElem(v, func(x any) bool {
			s, ok := x.(string)
			return ok && hasString(attr, s)
		}), false
	case KindDataClassification:
		return p.classification(cc, req), false
	case KindFindings:
		for _, want := range cc.findings {
			if hasString(req.Findings, want) {
				return true, false
			}
		}
		return false, false
	case KindExpr:
		return evalCond(cc, req, now)
	case KindSession:
		return p.session(cc, req), false
	case KindToolSink:
		d := p.src.Tools[req.Tool]
		return d != nil && d.Sink == cc.sink, false
	}
	return false, true
}

// session tests what the call's session has seen: every label of has_seen, and a classification
// at or above max_classification_seen (a level this policy's scale does not know counts as above
// every level: unknown data is treated as the most sensitive).
func (p *cpolicy) session(cc *ccond, req *Request) bool {
	if req.Session == nil {
		return false
	}
	for _, want := range cc.hasSeen {
		if !hasString(req.Session.Labels, want) {
			return false
		}
	}
	return cc.minClass < 0 || p.maxClassSeen(req.Session) >= cc.minClass
}

// maxClassSeen is the highest classification rank among the session's labels (-1: none).
func (p *cpolicy) maxClassSeen(s *Session) int {
	top := -1
	for _, l := range s.Labels {
		if len(l) <= len(ClassificationLabel) || l[:len(ClassificationLabel)] != ClassificationLabel {
			continue
		}
		i, ok := p.levels[l[len(ClassificationLabel):]]
		if !ok {
			i = len(p.levels)
		}
		top = max(top, i)
	}
	return top
}

func hasString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// lookup follows a dotted path into nested objects.
func lookup(params map[string]any, path []string) (any, bool) {
	var cur any = params
	for _, seg := range path {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = m[seg]; !ok {
			return nil, false
		}
	}
	return cur, true
}

// everyElem applies f to a scalar, or to every element of a non-empty array.
func everyElem(v any, f func(any) bool) bool {
	switch a := v.(type) {
	case []any:
		if len(a) == 0 {
			return false
		}
		for _, x := range a {
			if !f(x) {
				return false
			}
		}
		return true
	case []string:
		if len(a) == 0 {
			return false
		}
		for _, x := range a {
			if !f(x) {
				return false
			}
		}
		return true
	}
	return f(v)
}

// scalarEqual compares a parameter value with a literal of equals or one_of: strings and
// booleans by value, numbers exactly (see Number). Either side may be the literal.
func scalarEqual(a, b any) bool {
	if as, ok := a.(string); ok {
		bs, ok := b.(string)
		return ok && as == bs
	}
	if ab, ok := a.(bool); ok {
		bb, ok := b.(bool)
		return ok && ab == bb
	}
	if bn, ok := b.(Number); ok {
		c, ok := cmpNumber(a, &bn)
		return ok && c == 0
	}
	if an, ok := a.(Number); ok {
		c, ok := cmpNumber(b, &an)
		return ok && c == 0
	}
	return false
}

// scalarOK tests one scalar value against every operator of a parameter condition.
func (cc *ccond) scalarOK(v any) bool {
	if cc.match != nil || cc.notMatch != nil || cc.hasLen {
		s, ok := v.(string)
		if !ok {
			return false
		}
		if cc.match != nil && !cc.match.MatchString(s) {
			return false
		}
		if cc.notMatch != nil && cc.notMatch.MatchString(s) {
			return false
		}
		if cc.hasLen && utf8.RuneCountInString(s) > cc.maxLen {
			return false
		}
	}
	if cc.hasMax || cc.hasMin {
		if cc.hasMax {
			if c, ok := cmpNumber(v, &cc.maxV); !ok || c > 0 {
				return false
			}
		}
		if cc.hasMin {
			if c, ok := cmpNumber(v, &cc.minV); !ok || c < 0 {
				return false
			}
		}
	}
	if cc.hasEq && !scalarEqual(v, cc.equals) {
		return false
	}
	if cc.oneOf != nil {
		hit := false
		for _, o := range cc.oneOf {
			if scalarEqual(v, o) {
				hit = true
				break
			}
		}
		if !hit {
			return false
		}
	}
	return true
}

// inWindow reports whether local time t is in [start, end) on an allowed day. A window with
// start > end wraps past midnight; its after-midnight part belongs to the day it started on.
func inWindow(z *zoneClock, t time.Time, start, end Clock, days uint8) bool {
	min, day := z.local(t)
	switch {
	case start < end:
		if min < start || min >= end {
			return false
		}
	case start > end:
		if min >= end && min < start {
			return false
		}
		if min < end {
			day = (day + 6) % 7
		}
	default:
		return false // empty window
	}
	return days == 0 || days&(1<<uint(day)) != 0
}

// unusualHour: outside the policy's business hours, or — once History has a learned baseline —
// an hour the agent rarely acts in, as History judges it.
func (p *cpolicy) unusualHour(req *Request, now time.Time) bool {
	if !inWindow(p.bhZone, now, p.bhStart, p.bhEnd, p.bhDays) {
		return true
	}
	if req.History != nil {
		if unusual, learned := req.History.UnusualHour(now); learned && unusual {
			return true
		}
	}
	return false
}

func callCount(req *Request, cc *CallCount, now time.Time) int {
	n := 1 // this call
	if req.History != nil {
		n += req.History.CallCount(req.Tool, time.Duration(cc.WindowMinutes)*time.Minute, now)
	}
	return n
}

func (p *cpolicy) timeContext(cc *ccond, req *Request, now time.Time) bool {
	if cc.hasUnusual || cc.orCC != nil {
		or := false
		if cc.hasUnusual && p.unusualHour(req, now) == cc.wantUnusual {
			or = true
		}
		if !or && cc.orCC != nil && callCount(req, cc.orCC, now) > cc.orCC.Threshold {
			or = true
		}
		if !or {
			return false
		}
	}
	if cc.andCC != nil && callCount(req, cc.andCC, now) <= cc.andCC.Threshold {
		return false
	}
	return true
}

// clearance is the lowest scale index among the user's clearance values; -1 when none is known.
func (p *cpolicy) clearance(req *Request) int {
	if req.User == nil {
		return -1
	}
	best := -1
	for _, v := range req.User.Attributes["clearance"] {
		i, ok := p.levels[v]
		if !ok {
			continue
		}
		if best < 0 || i < best {
			best = i
		}
	}
	return best
}

func (p *cpolicy) toolLevel(req *Request) int {
	if req.ToolClassification != "" {
		if i, ok := p.levels[req.ToolClassification]; ok {
			return i
		}
		return len(p.levels) // unknown: above every clearance
	}
	if i, ok := p.toolClass[req.Tool]; ok {
		return i
	}
	return -1
}

func (p *cpolicy) classification(cc *ccond, req *Request) bool {
	level := cc.class
	if level < 0 {
		if level = p.toolLevel(req); level < 0 {
			return false
		}
	}
	c := p.clearance(req)
	return c >= 0 && level <= c
}
