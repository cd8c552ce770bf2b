package policy

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
