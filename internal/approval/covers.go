package approval

// Covers reports whether the approver's scopes cover requests of agent for tool: what the
// approvals API lets this approver see. An invalid pattern covers nothing.
func (a Approver) Covers(agent, tool string) bool {
	for _, s := range a.Scopes {
		agentOK, err := matchAny(s.Agents, agent)
		if err != nil {
			continue
		}
		toolOK, err := matchAny(s.Tools, tool)
		if err == nil && agentOK && toolOK {
			return true
		}
	}
	return false
}
