package compare

import "time"

// Decide is the reference semantics of a scenario, written directly in Go: a rule applies when its
// tool pattern matches the whole name and all its conditions hold; a missing parameter or one of
// the wrong type makes a condition false; DENY beats ALLOW; no applicable rule means DENY.
func (s *Scenario) Decide(req Request) Action {
	// Order does not matter with only ALLOW and DENY, so exact-name rules come from an index
	// (the 10,000-rule scenario would otherwise run 10,000 regexes per request).
	allowed := false
	for _, idx := range [2][]int{s.byTool[req.Tool], s.patterns} {
		for _, i := range idx {
			r := &s.Rules[i]
			if !r.toolRE.MatchString(req.Tool) || !s.holds(r.Conds, req) {
				continue
			}
			if r.Action == Deny {
				return Deny
			}
			allowed = true
		}
	}
	if allowed {
		return Allow
	}
	return Deny
}

func (s *Scenario) holds(conds []Cond, req Request) bool {
	for i := range conds {
		c := &conds[i]
		switch c.Kind {
		case Enum, Regex:
			v, ok := req.Params[c.Param].(string)
			if !ok || !c.re.MatchString(v) {
				return false
			}
		case Max:
			v, ok := req.Params[c.Param].(int64)
			if !ok || v > c.Max {
				return false
			}
		case Window:
			loc, err := time.LoadLocation(c.TZ)
			if err != nil {
				return false
			}
			t := req.Time.In(loc)
			m := t.Hour()*60 + t.Minute()
			if m < c.Start || m >= c.End {
				return false
			}
		}
	}
	return true
}
