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

// MayDecide reports whether the approver's scopes let them vote on r: its agent and tool, and
// for a tool definition (DefinitionRule) every agent. A request may be visible (Covers) to an
// approver who may not decide it.
func (a Approver) MayDecide(r Request) bool {
	return a.mayApprove(&r) == nil
}
