package approval

import (
	"fmt"
	"regexp"
	"regexp/syntax"
)

// DefinitionRule is the rule of a request that holds no call but a tool definition (an MCP
// tool whose definition was held as suspicious). Its agent is only the one whose list met the
// definition: once approved, the definition is admitted for every agent of its upstream. So it
// is decided only by an approver with a scope whose agents cover every agent (see mayApprove).
const DefinitionRule = "portcullis.tool_definition"

// PrincipalKind says what kind of identity an approver authenticated as.
type PrincipalKind uint8

const (
	// Human is a person who authenticated with their own credential (OIDC, API key issued to a
	// person). The only kind that may approve.
	Human PrincipalKind = iota + 1
	// Agent is an agent's identity. Agents never approve anything, their own requests or others'.
	Agent
)

func (k PrincipalKind) String() string {
	switch k {
	case Human:
		return "human"
	case Agent:
		return "agent"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Scope names what an approver may approve: requests whose agent matches one of Agents and
// whose tool matches one of Tools. Patterns are RE2 regular expressions that must match the
// whole name, as tool patterns in the policy language do (".*" matches everything). An empty
// list matches nothing: scopes are granted, never implied.
type Scope struct {
	Agents []string `json:"agents" yaml:"agents"`
	Tools  []string `json:"tools" yaml:"tools"`
}

// Approver is an authenticated principal acting on approval requests. The caller (the HTTP API)
// builds it from the verified credential; the engine never trusts an approver ID from a body.
type Approver struct {
	// ID is the principal recorded in votes, resolved_by and the ledger: for an approver bound
	// to an identity provider, qualified by it (see QualifiedID).
	ID string
	// Name is the person's ID without its issuer — what the checks against the requesting agent
	// and the invoking user compare (folded, see FoldID). Empty: ID.
	Name   string
	Kind   PrincipalKind
	Scopes []Scope
}

// QualifiedID is the principal of the approver named id by issuer: "issuer#id", or id alone for
// an approver known only to the gateway (approver keys). Issuer identifiers hold no '#'
// (configuration refuses one), so the principal is unambiguous.
func QualifiedID(issuer, id string) string {
	if issuer == "" {
		return id
	}
	return issuer + "#" + id
}

func (a Approver) name() string {
	if a.Name != "" {
		return a.Name
	}
	return a.ID
}

// mayApprove checks the approver's kind and scope for r and refuses self-approval.
// The order of checks is the order of the typed errors' importance: an agent is refused as an
// agent even if it is also out of scope.
func (a Approver) mayApprove(r *Request) error {
	if a.Kind != Human {
		return fmt.Errorf("approver %q (%v): %w", a.ID, a.Kind, ErrAgentApprover)
	}
	if a.ID == "" {
		return fmt.Errorf("%w: approver without an identity", ErrInvalid)
	}
	// Defence in depth: an approver whose ID names the requesting agent is that agent.
	if SamePerson(a.name(), r.Agent) || SamePerson(a.ID, r.Agent) {
		return fmt.Errorf("approver %q is the requesting agent: %w", a.ID, ErrAgentApprover)
	}
	// Folded (trim, NFKC, case fold): an asserted "alice@x " or "ａｌｉｃｅ@x" is alice to any
	// reader, and refusing a legitimate approver costs less than admitting the invoker. The
	// invoking user's ID carries no issuer, so the approver's bare name is what is compared.
	if r.User != "" && (SamePerson(a.name(), r.User) || SamePerson(a.ID, r.User)) {
		return fmt.Errorf("approver %q invoked request %s: %w", a.ID, r.ID, ErrSelfApproval)
	}
	every := r.Rule == DefinitionRule
	for _, s := range a.Scopes {
		var agentOK bool
		var err error
		if every {
			// What is decided is what every agent is shown, not what this agent may do: a
			// scope over some agents would decide for the others too. One over every agent
			// covers this one.
			agentOK, err = matchesEveryAgent(s.Agents)
		} else {
			agentOK, err = matchAny(s.Agents, r.Agent)
		}
		if err != nil {
			return err
		}
		toolOK, err := matchAny(s.Tools, r.Tool)
		if err != nil {
			return err
		}
		if agentOK && toolOK {
			return nil
		}
	}
	if every {
		return fmt.Errorf("approver %q for tool definition %q: no scope covers every agent for the tool (the definition would be admitted for all of them): %w", a.ID, r.Tool, ErrOutOfScope)
	}
	return fmt.Errorf("approver %q for agent %q tool %q: %w", a.ID, r.Agent, r.Tool, ErrOutOfScope)
}

// matchesEveryAgent reports whether one of patterns matches every agent ID (IDs are never
// empty and hold no line break): `.*`, `.+`, `(?s).*` and the like, alone or as one branch of an
// alternation. It reads the pattern's structure, not a sample of IDs, so a pattern that merely
// happens to match today's agents (`agent-.*`) does not count: tomorrow's agent would be covered
// by an approval nobody entitled to decide for it gave.
func matchesEveryAgent(patterns []string) (bool, error) {
	for _, p := range patterns {
		re, err := syntax.Parse(p, syntax.Perl)
		if err != nil {
			return false, fmt.Errorf("%w: approver scope pattern %q: %v", ErrInvalid, p, err)
		}
		if universal(re.Simplify()) {
			return true, nil
		}
	}
	return false, nil
}

// universal reports whether re matches every non-empty string without a line break.
func universal(re *syntax.Regexp) bool {
	switch re.Op {
	case syntax.OpCapture:
		return universal(re.Sub[0])
	case syntax.OpAlternate:
		for _, sub := range re.Sub {
			if universal(sub) {
				return true
			}
		}
	case syntax.OpStar, syntax.OpPlus:
		return anyChar(re.Sub[0])
	}
	return false
}

// anyChar reports whether re is one character of any kind but, at most, a line break.
func anyChar(re *syntax.Regexp) bool {
	switch re.Op {
	case syntax.OpAnyChar, syntax.OpAnyCharNotNL:
		return true
	case syntax.OpCharClass:
		// Ranges are sorted and merged: every rune but '\n' is [0-9] ∪ [11-max], or [0-max].
		r := re.Rune
		full := len(r) == 2 && r[0] == 0 && r[1] == '\U0010FFFF'
		notNL := len(r) == 4 && r[0] == 0 && r[1] == '\n'-1 && r[2] == '\n'+1 && r[3] == '\U0010FFFF'
		return full || notNL
	}
	return false
}

// matchAny reports whether name fully matches one of patterns. An invalid pattern is an error
// (and so a refusal), never a silent non-match that could hide a misconfiguration.
func matchAny(patterns []string, name string) (bool, error) {
	for _, p := range patterns {
		re, err := regexp.Compile(`^(?:` + p + `)$`)
		if err != nil {
			return false, fmt.Errorf("%w: approver scope pattern %q: %v", ErrInvalid, p, err)
		}
		if re.MatchString(name) {
			return true, nil
		}
	}
	return false, nil
}

// ValidateScopes compiles every pattern in scopes, so configuration can be checked at load.
func ValidateScopes(scopes []Scope) error {
	for i, s := range scopes {
		for _, p := range append(append([]string(nil), s.Agents...), s.Tools...) {
			if _, err := regexp.Compile(`^(?:` + p + `)$`); err != nil {
				return fmt.Errorf("scopes[%d]: pattern %q: %w", i, p, err)
			}
		}
	}
	return nil
}
