package policy

import (
	"encoding/json"
	"math"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"
)

// Verdict is Decide's answer: the decision, what the dry-run rules would have decided, and which
// rules decided — what the gateway's decision record needs, found without allocating. The
// conditions the record quotes are built afterwards, on demand (Conditions).
type Verdict struct {
	Decision
	// Reason is "rule", "default_action", "unknown_agent" or "internal_error".
	Reason string
	// WouldHave is the decision had the dry-run rules been enforced; meaningful when Shadowed,
	// which is set only when it differs from Decision.
	WouldHave Decision
	Shadowed  bool

	p          *cpolicy
	c          *cands
	idx, wIdx  int32
	now        time.Time
	incomplete bool // Decide panicked: Conditions reports nothing
}

// Decide decides req exactly as Evaluate does — the same combining rule on the same fast path,
// without allocating — and also finds what the dry-run rules would have decided. It is what the
// gateway calls for every tool call; Explain is for people and tools (`policy eval`).
func (s *Set) Decide(req *Request) (v Verdict) {
	defer func() {
		if recover() != nil {
			v = Verdict{Decision: unknownAgent, Reason: "internal_error", incomplete: true}
		}
	}()
	if s == nil || req == nil {
		return Verdict{Decision: unknownAgent, Reason: "unknown_agent"}
	}
	p := s.agents[req.Agent.ID]
	if p == nil {
		return Verdict{Decision: unknownAgent, Reason: "unknown_agent"}
	}
	now := req.Time
	if now.IsZero() {
		now = time.Now()
	}
	c := p.candidates(req.Tool)
	a, i := p.combine(c, req, now, false)
	v = Verdict{Decision: p.decision(a, i), Reason: "default_action", p: p, c: c, idx: i, wIdx: i, now: now}
	if i >= 0 {
		v.Reason = "rule"
	}
	if p.hasDryRun {
		if wa, wi := p.combine(c, req, now, true); wa != a || wi != i {
			v.WouldHave, v.Shadowed, v.wIdx = p.decision(wa, wi), true, wi
		}
	}
	return v
}

// combine applies the combining rule to the candidate rules c (with the dry-run rules when
// withDryRun), evaluating only the rules that could still change the decision. It returns the
// action and the deciding rule's index (-1: the default action).
func (p *cpolicy) combine(c *cands, req *Request, now time.Time, withDryRun bool) (Action, int32) {
	// Step 1: the base decision from rules that do not read threat signals.
	base, baseIdx := p.def, int32(-1)
	for _, i := range c.idx {
		r := &p.rules[i]
		if r.threat || (r.dryRun && !withDryRun) {
			continue
		}
		if baseIdx >= 0 && !r.action.StricterThan(base) {
			continue // cannot change the decision; ties go to the earlier rule
		}
		if p.applies(r, req, now, nil) {
			base, baseIdx = r.action, i
			if base == Deny {
				break
			}
		}
	}
	// Step 2: threat rules can only tighten, and never touch a DENY.
	cur, curIdx := base, baseIdx
	if cur != Deny {
		for _, i := range c.idx {
			r := &p.rules[i]
			if !r.threat || (r.dryRun && !withDryRun) {
				continue
			}
			stricter := r.action.StricterThan(cur)
			earlierTie := r.action == cur && curIdx >= 0 && i < curIdx
			if !stricter && !earlierTie {
				continue
			}
			if p.applies(r, req, now, nil) {
				cur, curIdx = r.action, i
				if cur == Deny {
					break
				}
			}
		}
	}
	return cur, curIdx
}

// RecordedCondition is one evaluated condition as a decision record quotes it.
type RecordedCondition struct {
	// Rule is the rule's name; Ref names the condition stably: "rule/kind@file:line:col".
	Rule, Ref string
	ConditionTrace
}

// Conditions calls f, in file order, for every condition the decision record of v quotes, with
// its result and detail: the conditions of the deciding rule and of the dry-run rule that would
// have decided otherwise; when the default action decided, those of every rule considered (they
// say why none applied). req must be the request v was decided for.
func (v *Verdict) Conditions(req *Request, f func(RecordedCondition)) {
	if v.p == nil || v.c == nil || v.incomplete {
		return
	}
	var rc RecordedCondition
	for _, i := range v.c.idx {
		if v.idx >= 0 && i != v.idx && i != v.wIdx {
			continue
		}
		r := &v.p.rules[i]
		rc.Rule = r.name
		for j := range r.conds {
			cc := &r.conds[j]
			ok, errored := v.p.cond(cc, req, v.now)
			if errored {
				ok = r.action != Allow
			}
			rc.Ref, rc.ConditionTrace = cc.ref, v.p.traceCond(cc, req, v.now, ok, errored)
			f(rc)
		}
	}
}

// Windows returns the call-count windows (time_context call_count_exceeds and
// or_call_count_exceeds) that the rules of agentID's policy covering tool read, distinct and
// ascending: what the behaviour step counts atomically with recording the call, so that no
// condition needs a count of its own. Do not modify the result.
func (s *Set) Windows(agentID, tool string) []time.Duration {
	if s == nil {
		return nil
	}
	if p := s.agents[agentID]; p != nil {
		return p.candidates(tool).windows
	}
	return nil
}

func (cc *ccond) callCounts() []*CallCount {
	var out []*CallCount
	for _, x := range []*CallCount{cc.orCC, cc.andCC} {
		if x != nil {
			out = append(out, x)
		}
	}
	return out
}

func (c *cands) addWindow(w time.Duration) {
	i, found := slices.BinarySearch(c.windows, w)
	if !found {
		c.windows = slices.Insert(c.windows, i, w)
	}
}

// appendClock appends c as HH:MM.
func appendClock(b []byte, minutes int) []byte {
	h, m := minutes/60, minutes%60
	return append(b, byte('0'+h/10), byte('0'+h%10), ':', byte('0'+m/10), byte('0'+m%10))
}

// appendShort appends what short(v) returns, without encoding/json for the values parameters
// usually hold (strings of plain ASCII, JSON numbers, booleans, null); anything else takes short.
func appendShort(b []byte, v any) []byte {
	switch x := v.(type) {
	case nil:
		return append(b, "null"...)
	case bool:
		return strconv.AppendBool(b, x)
	case int:
		return strconv.AppendInt(b, int64(x), 10)
	case int64:
		return strconv.AppendInt(b, x, 10)
	case float64:
		// encoding/json's format for this range: the shortest decimal, no exponent.
		if a := math.Abs(x); a == 0 || a >= 1e-6 && a < 1e21 {
			return strconv.AppendFloat(b, x, 'f', -1, 64)
		}
	case json.Number:
		if len(x) <= 80 && plainNumber(string(x)) {
			return append(b, x...)
		}
	case string:
		if len(x) <= 78 && plainJSONString(x) {
			b = append(b, '"')
			b = append(b, x...)
			return append(b, '"')
		}
	}
	return append(b, short(v)...)
}

// plainNumber reports whether s is a JSON number (as decoding produced it), which encoding/json
// writes as it is.
func plainNumber(s string) bool {
	i := 0
	if i < len(s) && s[i] == '-' {
		i++
	}
	digits := func() bool {
		start := i
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		return i > start
	}
	if !digits() || s[0] == '0' && i > 1 || len(s) > 1 && s[0] == '-' && s[1] == '0' && i > 2 {
		return false
	}
	if i < len(s) && s[i] == '.' {
		i++
		if !digits() {
			return false
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		if !digits() {
			return false
		}
	}
	return i == len(s)
}

// plainJSONString reports whether encoding/json writes s as its bytes between quotes: printable
// ASCII without the characters it escapes.
func plainJSONString(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c >= utf8.RuneSelf || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			return false
		}
	}
	return true
}
