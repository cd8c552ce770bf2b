package guard

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/portcullis-ai/portcullis/internal/identity"
	"github.com/portcullis-ai/portcullis/internal/inspect"
	"github.com/portcullis-ai/portcullis/internal/ledger"
	"github.com/portcullis-ai/portcullis/internal/policy"
	"github.com/portcullis-ai/portcullis/internal/threat"
)

// Port is the guard as every transport sees it: the MCP gateway, the LLM gateway and the HTTP
// decision API depend on this and on nothing else of the decision path (no policy, inspection,
// approval or ledger). Every method fails closed: an error, a panic or a record that cannot be
// written refuses, never passes.
type Port interface {
	// Authenticate verifies an agent's credentials for an exchange; a failure is recorded.
	Authenticate(ctx context.Context, source string, creds identity.Credentials) (*identity.Agent, error)
	// VisibleTools narrows a list of tool names to those the agent's policy could ever allow;
	// a list the policy narrowed is recorded.
	VisibleTools(ctx context.Context, l Listing) ([]string, error)
	// Check decides one call (the one door); Request.Hold waits for a CONSTRAIN's approval.
	Check(ctx context.Context, req Request) *Decision
	// CheckResult decides an allowed call's result: pass, redact or block, recorded.
	CheckResult(ctx context.Context, o Outcome) *ResultDecision
	// CheckNotice decides untrusted text relayed outside any call (an upstream's log line).
	CheckNotice(ctx context.Context, n Notice) *ResultDecision
	// CheckContent decides conversation text going to a model.
	CheckContent(ctx context.Context, c Content) *ContentDecision
	// CheckDefinition scans a tool's definition as an upstream offers it; nothing is recorded.
	CheckDefinition(ctx context.Context, d Definition) *ResultDecision
	// LinkSession names the agent's session by alias (the LLM gateway's response IDs), and
	// LinkedSession follows such a name; ok is false for a name never linked or whose link ended.
	LinkSession(ctx context.Context, agent *identity.Agent, alias, session string) error
	LinkedSession(ctx context.Context, agent *identity.Agent, alias string) (session string, ok bool, err error)
	// RecordEvent records a decision the transport made on its own knowledge (a tool whose
	// definition changed is blocked; a server request with nowhere to go is refused).
	RecordEvent(ctx context.Context, e Event) error
}

var _ Port = (*Guard)(nil)

// Listing is a list of tools a transport is about to offer an agent.
type Listing struct {
	Source    string
	RequestID string
	// Agent is who the list is for, authenticated by Authenticate.
	Agent *identity.Agent
	// Tools are the names offered, as the agent would call them.
	Tools []string
	// Params, when set, has one entry per name in Tools: what is known of the parameters a
	// call of that item would carry (a listed resource's {"server", "uri"}), judged with
	// policy.Set.MayAllowWith. Labels, when set, name the items (one per name in Tools): the
	// record quotes them, and VisibleTools returns the visible items' labels, not their names.
	Params []map[string]any
	Labels []string
}

// ListTool names a narrowed tool list in the ledger.
const ListTool = "portcullis.tools.list"

// maxHiddenNamed bounds the names a narrowed list's record quotes (it counts them all).
const maxHiddenNamed = 64

// VisibleTools returns the names of l.Tools that the current policy could ever let l.Agent call
// (policy.Set.MayAllow) and that are valid tool names, in their order; an agent is never offered
// a tool the policy would refuse whatever the parameters. A list the policy narrowed is recorded
// as a decision under ListTool, the hidden names in its reason and the policy version that hid
// them: what an agent could see is on the record as the policy decided it. No policy, no agent,
// a record that cannot be written or a panic: an error, and the transport offers nothing.
func (g *Guard) VisibleTools(ctx context.Context, l Listing) (visible []string, err error) {
	defer func() {
		if p := recover(); p != nil {
			visible, err = nil, fmt.Errorf("guard: panic: %v", p)
		}
	}()
	if l.Agent == nil {
		return nil, errors.New("guard: tool list for no authenticated agent")
	}
	set := g.policies.Current()
	if set == nil {
		return nil, policy.ErrNoSet
	}
	visible = make([]string, 0, len(l.Tools))
	var hidden []string
	if (l.Params != nil && len(l.Params) != len(l.Tools)) || (l.Labels != nil && len(l.Labels) != len(l.Tools)) {
		return nil, errors.New("guard: listing with params or labels not one per tool")
	}
	for i, n := range l.Tools {
		label := n
		if l.Labels != nil {
			label = l.Labels[i]
		}
		// A name Check would refuse is not offered either: the agent could never call it.
		may := ValidToolName(n) == nil
		if may && l.Params != nil {
			may = set.MayAllowWith(l.Agent.ID, n, l.Params[i])
		} else if may {
			may = set.MayAllow(l.Agent.ID, n)
		}
		if may {
			visible = append(visible, label)
		} else {
			hidden = append(hidden, label)
		}
	}
	if len(hidden) == 0 {
		return visible, nil
	}
	named := make([]string, 0, min(len(hidden), maxHiddenNamed))
	for _, n := range hidden[:min(len(hidden), maxHiddenNamed)] {
		named = append(named, RecordedToolName(n))
	}
	what := "tools"
	if l.Labels != nil {
		what = "items"
	}
	reason := fmt.Sprintf("%s hidden by policy: %d of %d: %s", what, len(hidden), len(l.Tools), strings.Join(named, ", "))
	if len(hidden) > maxHiddenNamed {
		reason += ", …"
	}
	version := Version(set)
	rec := &ledger.Record{Kind: ledger.KindDecision, Time: g.now(), DecisionID: NewDecisionID(), RequestID: l.RequestID,
		Source: l.Source, Tool: ListTool, Decision: "allow", Reason: reason, PolicyVersion: version,
		Agent: agentPrincipal(l.Agent)}
	if _, err := g.appendRecord(ctx, rec); err != nil {
		return nil, fmt.Errorf("ledger append: %w", err)
	}
	return visible, nil
}

// Definition is a tool's definition as an upstream offers it (its name, description and schemas
// as JSON), before an agent is shown it.
type Definition struct {
	Source string
	// Tool is the name the agent would call it by.
	Tool string
	Data json.RawMessage
}

// CheckDefinition inspects a tool definition in the response direction — a poisoned description
// is indirect prompt injection — and blocks it at or above the result policy's block level; an
// inspection that fails blocks. With no block level set it passes uninspected. Nothing is
// recorded: the transport records a blocked definition once (RecordEvent), not at every list.
func (g *Guard) CheckDefinition(ctx context.Context, d Definition) (rd *ResultDecision) {
	defer func() {
		if p := recover(); p != nil {
			rd = &ResultDecision{Action: ResultBlock, Code: CodeInternal, Err: fmt.Errorf("guard: panic: %v", p)}
		}
	}()
	rp := g.resultPolicy()
	if rp.BlockLevel <= threat.None {
		return &ResultDecision{Action: ResultPass}
	}
	res, err := g.inspector.Inspect(ctx, d.Tool, inspect.Response, d.Data)
	rd = &ResultDecision{Action: ResultPass, Level: res.Level, Findings: res.Findings}
	switch {
	case err != nil:
		rd.Action, rd.Code, rd.Err = ResultBlock, CodeInspection, fmt.Errorf("inspect definition: %w", err)
	case res.Level >= rp.BlockLevel:
		rd.Action, rd.Code = ResultBlock, CodeResultBlocked
	}
	return rd
}

// The decisions an Event may record.
const (
	EventAllow = "allow"
	EventLog   = "log"
	EventDeny  = "deny"
)

// Event is a decision a transport made on its own knowledge, recorded through the guard so that
// it lands in the ledger like every other: with the agent it concerned where that is known.
type Event struct {
	Source    string
	RequestID string
	// Agent, when known, is who the event concerned.
	Agent *identity.Agent
	Tool  string
	// Decision is EventAllow, EventLog or EventDeny.
	Decision string
	// Reason is a stable code, optionally followed by ": " and detail.
	Reason string
	// Message says what the event is about ("definition sha256:…", "upstream fs").
	Message  string
	Level    threat.Level
	Findings []inspect.Finding
}

// RecordEvent writes e as a decision record on the guard's bounded context. The tool is recorded
// as RecordedToolName bounds it; finding evidence is not (it quotes upstream text).
func (g *Guard) RecordEvent(ctx context.Context, e Event) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("guard: panic: %v", p)
		}
	}()
	switch e.Decision {
	case EventAllow, EventLog, EventDeny:
	default:
		return fmt.Errorf("guard: event decision %q is not allow, log or deny", e.Decision)
	}
	rec := &ledger.Record{Kind: ledger.KindDecision, Time: g.now(), DecisionID: NewDecisionID(), RequestID: e.RequestID,
		Source: e.Source, Tool: RecordedToolName(e.Tool), Decision: e.Decision, Reason: e.Reason, Message: e.Message,
		ThreatLevel: e.Level, Agent: agentPrincipal(e.Agent)}
	for _, f := range e.Findings {
		rec.Findings = append(rec.Findings, ledger.Finding{Kind: f.Kind, Severity: f.Severity, Path: f.Path, Score: f.Score})
	}
	if _, err := g.appendRecord(ctx, rec); err != nil {
		return fmt.Errorf("record %s: %w", e.Reason, err)
	}
	return nil
}

// agentPrincipal is the record's principal of an authenticated agent (nil: none).
func agentPrincipal(a *identity.Agent) *ledger.Principal {
	if a == nil {
		return nil
	}
	return &ledger.Principal{ID: a.ID, Verified: true, Method: string(a.Method)}
}
