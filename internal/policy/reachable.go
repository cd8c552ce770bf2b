package policy

import "time"

// MayAllow reports whether any call of tool by agentID could ever be let through (ALLOW, LOG or
// CONSTRAIN) under this set, whatever its parameters, time or user. Transports use it to show an
// agent only the tools it could call (an MCP tools/list is filtered with it): least privilege —
// a model cannot misuse what it never sees.
//
// It is conservative in the agent's favour of seeing a tool only when some path exists:
//   - an unknown agent may call nothing;
//   - an unconditional DENY rule (no conditions, not reading threat signals) matching the tool
//     closes it, because the strictest matching rule wins;
//   - otherwise a non-DENY rule that does not read threat signals and whose tool patterns match
//     (and not_tool patterns do not) opens it, whatever its conditions;
//   - otherwise the default action decides.
//
// Threat-reading rules only tighten a decision, so they never open a tool.
func (s *Set) MayAllow(agentID, tool string) bool {
	if s == nil {
		return false
	}
	p := s.agents[agentID]
	if p == nil {
		return false
	}
	opened := false
	for i := range p.rules {
		r := &p.rules[i]
		if r.threat || !r.matchesTool(tool) {
			continue
		}
		if r.action == Deny {
			if len(r.conds) == 0 {
				return false
			}
			continue
		}
		opened = true
	}
	return opened || p.def != Deny
}

// MayAllowWith is MayAllow for a call whose parameters are known in part: params (a listed
// resource's {"server", "uri"}, a prompt's {"server", "name"}). A rule's parameter conditions on
// a top-level key present in params are evaluated against it; every other condition (other
// parameters, time, user, rates) counts as possibly holding. So a non-DENY rule whose evaluated
// conditions hold opens; a DENY rule closes only when all its conditions were evaluated and hold.
func (s *Set) MayAllowWith(agentID, tool string, params map[string]any) bool {
	if s == nil {
		return false
	}
	p := s.agents[agentID]
	if p == nil {
		return false
	}
	req := &Request{Params: params}
	opened := false
	for i := range p.rules {
		r := &p.rules[i]
		if r.threat || !r.matchesTool(tool) {
			continue
		}
		known, hold := true, true
		for j := range r.conds {
			cc := &r.conds[j]
			if cc.kind != KindParameter || len(cc.path) == 0 {
				known = false
				continue
			}
			if _, ok := params[cc.path[0]]; !ok {
				known = false
				continue
			}
			if ok, _ := p.cond(cc, req, time.Time{}); !ok {
				hold = false
			}
		}
		if r.action == Deny {
			if known && hold {
				return false
			}
			continue
		}
		if hold {
			opened = true
		}
	}
	return opened || p.def != Deny
}
