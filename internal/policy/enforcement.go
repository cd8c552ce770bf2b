package policy

// Enforcement returns what agentID's policy does for a decision of action a (its enforcement
// mapping): for callers that adjust a decision after evaluation, such as shadow mode turning an
// ALLOW into a LOG. An unknown agent gets the default mapping.
func (s *Set) Enforcement(agentID string, a Action) string {
	if s != nil {
		if p := s.agents[agentID]; p != nil {
			return p.enforce[a]
		}
	}
	return DefaultEnforcement[a]
}
