package guard

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"

	"github.com/portcullis-ai/portcullis/internal/approval"
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
	// HoldDefinition opens, joins or redeems an operator's approval of a definition that
	// CheckDefinition held.
	HoldDefinition(ctx context.Context, h DefinitionHold) (HeldDefinition, error)
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
	version := Version(set)
	at := g.now()
	key := listingKey(l, version, hidden)
	if g.listings.seen(key, at) {
		// This agent was shown this very narrowing under this policy a moment ago, and it is on
		// the record: a model call that offers the same tools again adds nothing to it (and,
		// checked first, costs no record reason: this is every tools/list after the first).
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
	rec := &ledger.Record{Kind: ledger.KindDecision, Time: at, DecisionID: NewDecisionID(), RequestID: l.RequestID,
		Source: l.Source, Tool: ListTool, Decision: "allow", Reason: reason, PolicyVersion: version,
		Agent: agentPrincipal(l.Agent)}
	if _, err := g.appendRecord(ctx, rec); err != nil {
		return nil, fmt.Errorf("ledger append: %w", err)
	}
	// Remembered only once it is durable: a narrowing whose record failed is recorded next time.
	g.listings.add(key, at)
	return visible, nil
}

// Narrowed lists are recorded once per agent, source, policy version and hidden set within
// listingWindow; at most listingKeys of them are remembered (least recently used forgotten
// first, and then recorded again when seen).
const (
	listingKeys   = 4096
	listingWindow = time.Hour
)

// listingKey identifies a narrowing: who was shown it, through which transport, under which
// policy, and what it hid out of how many (a digest: the key's size does not grow with the list).
func listingKey(l Listing, version string, hidden []string) [sha256.Size]byte {
	h := sha256.New()
	for _, s := range []string{l.Agent.ID, l.Source, version, strconv.Itoa(len(l.Tools)), strconv.FormatBool(l.Labels != nil)} {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	for _, n := range hidden {
		h.Write([]byte(strconv.Itoa(len(n))))
		h.Write([]byte{':'})
		h.Write([]byte(n))
	}
	var k [sha256.Size]byte
	h.Sum(k[:0])
	return k
}

// listings remembers the narrowings recorded recently (VisibleTools), bounded.
type listings struct {
	recent *lru.Cache[[sha256.Size]byte, time.Time]
}

func newListings() *listings {
	c, err := lru.New[[sha256.Size]byte, time.Time](listingKeys)
	if err != nil { // only for a size below one
		panic(err)
	}
	return &listings{recent: c}
}

// seen reports a narrowing recorded within listingWindow before at.
func (ls *listings) seen(k [sha256.Size]byte, at time.Time) bool {
	if ls == nil {
		return false
	}
	t, ok := ls.recent.Get(k)
	return ok && at.Sub(t) < listingWindow && !at.Before(t)
}

// add remembers a narrowing recorded at at.
func (ls *listings) add(k [sha256.Size]byte, at time.Time) {
	if ls != nil {
		ls.recent.Add(k, at)
	}
}

// Definition is a tool's definition as an upstream offers it (its name, description and schemas
// as JSON), before an agent is shown it.
type Definition struct {
	Source string
	// Tool is the name the agent would call it by.
	Tool string
	Data json.RawMessage
}

// CheckDefinition inspects a tool definition (inspect.Definition: read like a result, since a
// poisoned description is indirect prompt injection, and by the tool-poisoning rules besides).
// At or above the result policy's hold level (or its block level, when lower) it answers
// ResultHold: the transport withholds the tool until an operator approves that definition
// (HoldDefinition). With no hold level, it blocks at the block level. An inspection that fails
// blocks; with neither level set the definition passes uninspected. Nothing is recorded: the
// transport records a held or blocked definition once (RecordEvent), not at every list.
func (g *Guard) CheckDefinition(ctx context.Context, d Definition) (rd *ResultDecision) {
	defer func() {
		if p := recover(); p != nil {
			rd = &ResultDecision{Action: ResultBlock, Code: CodeInternal, Err: fmt.Errorf("guard: panic: %v", p)}
		}
	}()
	rp := g.resultPolicy()
	if rp.BlockLevel <= threat.None && rp.DefinitionHold <= threat.None {
		return &ResultDecision{Action: ResultPass}
	}
	res, err := g.inspector.Inspect(ctx, d.Tool, inspect.Definition, d.Data)
	rd = &ResultDecision{Action: ResultPass, Level: res.Level, Findings: res.Findings}
	hold := rp.DefinitionHold
	if hold > threat.None && rp.BlockLevel > threat.None {
		hold = min(hold, rp.BlockLevel)
	}
	switch {
	case err != nil:
		rd.Action, rd.Code, rd.Err = ResultBlock, CodeInspection, fmt.Errorf("inspect definition: %w", err)
	case hold > threat.None && res.Level >= hold:
		rd.Action, rd.Code = ResultHold, CodeDefinitionHeld
	case rp.BlockLevel > threat.None && res.Level >= rp.BlockLevel:
		rd.Action, rd.Code = ResultBlock, CodeResultBlocked
	}
	return rd
}

// CodeDefinitionHeld is the stable code of a tool definition withheld until an operator
// approves it.
const CodeDefinitionHeld = "tool_definition_held"

// DefinitionRule is the rule an approval of a held tool definition names, in the product's own
// namespace: a grant binds its rule, tool and parameters, and a definition's parameters are the
// definition itself, so a call's approval and a definition's are never taken for each other.
// The approval engine lets only an approver whose scope covers every agent decide it: the
// definition it admits is the tool's, shown to every agent of the upstream.
const DefinitionRule = approval.DefinitionRule

// DefinitionHold asks for an operator's approval of one exact tool definition, held because
// CheckDefinition answered ResultHold.
type DefinitionHold struct {
	Source    string
	RequestID string
	// Agent is the agent whose listing met the definition: the approval request is opened in
	// its name, but only an approver whose scope covers every agent may decide it (the
	// definition, once approved, is admitted for all of them).
	Agent *identity.Agent
	// Tool is the name the agent would call the tool by.
	Tool string
	// Data is the definition (as CheckDefinition read it): approvers are shown it (redacted
	// where a secret was found) and the grant binds its digest, which the guard computes.
	// Digest, the transport's own hash of it, is shown beside it as a label and binds nothing.
	Data   json.RawMessage
	Digest string
	// Scan is CheckDefinition's answer: its level and findings go to the approvers.
	Scan *ResultDecision
}

// HeldDefinition is where a held definition's approval stands.
type HeldDefinition struct {
	// ApprovalID is the approval request for the definition.
	ApprovalID string
	// Approved: an operator approved this exact definition, and the grant was consumed now;
	// the transport may admit the definition (and pins it). Otherwise it is pending.
	Approved bool
	// Opened: the request was opened by this call (the transport records the hold once).
	Opened bool
}

// HoldDefinition opens, joins or redeems the approval of one held definition. The approval's
// parameters are the definition itself, so the grant binds its digest: a definition that changes
// by one byte needs an approval of its own. The approval's events go to the ledger through the
// approval engine's recorder. No approval engine, no agent, or any error: an error, and the
// definition stays held.
func (g *Guard) HoldDefinition(ctx context.Context, h DefinitionHold) (held HeldDefinition, err error) {
	defer func() {
		if p := recover(); p != nil {
			held, err = HeldDefinition{}, fmt.Errorf("guard: panic: %v", p)
		}
	}()
	switch {
	case g.approvals == nil:
		return HeldDefinition{}, errors.New("guard: no approval engine to hold a tool definition for")
	case h.Agent == nil:
		return HeldDefinition{}, errors.New("guard: tool definition held for no authenticated agent")
	}
	if err := ValidToolName(h.Tool); err != nil {
		return HeldDefinition{}, err
	}
	// The one digest of the definition: what the grant binds and the request is matched by,
	// computed here from the bytes approvers are shown (below), never taken from the transport
	// (h.Digest is its own hash, of its own bytes: a label) nor computed again by the engine
	// (the input carries the digest, not the definition).
	digest, err := approval.Digest(h.Data)
	if err != nil {
		return HeldDefinition{}, fmt.Errorf("digest tool definition: %w", err)
	}
	version := ""
	if set := g.policies.Current(); set != nil {
		version = Version(set)
	}
	in := approval.Input{DecisionID: NewDecisionID(), Agent: h.Agent.ID, Tool: h.Tool, ParamsDigest: digest,
		Rule: DefinitionRule, PolicyVersion: version, Expiry: g.approvalExpiry,
		Labels: map[string]string{"source": h.Source, "kind": "tool_definition", "definition": h.Digest}}
	if h.Scan != nil {
		in.ThreatLevel, in.Findings = h.Scan.Level, h.Scan.Findings
	}
	// Approvers see the definition as the ledger would show it: a secret in it is redacted.
	in.RedactedParams = g.shieldFor(ctx, h.Tool, inspect.Definition, h.Data, nil, in.Findings).paramsForApprovers()
	key := approval.Key{Agent: h.Agent.ID, Tool: h.Tool, ParamsDigest: digest, PolicyVersion: version, Rule: DefinitionRule}
	ar, how, err := g.approvals.RequestMatching(ctx, in, key, nil)
	if err != nil {
		return HeldDefinition{}, fmt.Errorf("hold tool definition: %w", err)
	}
	return HeldDefinition{ApprovalID: ar.ID, Approved: how == approval.Redeemed, Opened: how == approval.Opened}, nil
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
