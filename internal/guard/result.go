package guard

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/portcullis-ai/portcullis/internal/identity"
	"github.com/portcullis-ai/portcullis/internal/inspect"
	"github.com/portcullis-ai/portcullis/internal/ledger"
	"github.com/portcullis-ai/portcullis/internal/threat"
)

// ResultAction is what happens to a tool's result on its way back to the agent.
type ResultAction string

const (
	ResultPass   ResultAction = "pass"   // forwarded unchanged
	ResultRedact ResultAction = "redact" // forwarded with flagged values replaced
	ResultBlock  ResultAction = "block"  // withheld: the agent gets an error instead
	// ResultHold: a tool definition withheld until an operator approves it (HoldDefinition).
	ResultHold ResultAction = "hold"
)

// ResultPolicy says how results are treated: block at or above BlockLevel, else redact secrets
// and PII when Redact is set; a result larger than MaxBytes is blocked uninspected.
type ResultPolicy struct {
	BlockLevel threat.Level
	Redact     bool
	// MaxBytes caps the JSON of a result that is inspected (limits.max_outcome_result_bytes); a
	// larger one is withheld with CodeResultTooLarge. Zero means DefaultMaxResultBytes.
	MaxBytes int
	// DefinitionHold (mcp.definition_hold_level) holds a tool definition scoring at or above it
	// — or at or above BlockLevel, when that is lower — for an operator's approval instead of
	// blocking it for good (CheckDefinition, HoldDefinition). None: definitions are blocked at
	// BlockLevel, without an approval.
	DefinitionHold threat.Level
}

// DefaultMaxResultBytes is the result cap when ResultPolicy.MaxBytes is zero.
const DefaultMaxResultBytes = 4 << 20

// CodeResultTooLarge is the stable code of a result withheld for its size: it was not inspected,
// so nothing is known of it — distinct from result_blocked, a result whose inspection found a
// threat.
const CodeResultTooLarge = "result_too_large"

// CodeResultBlocked is the stable code of a result withheld for what its inspection found.
const CodeResultBlocked = "result_blocked"

// Outcome is a transport's report of what happened after an allowed decision: whether the tool
// ran, how it went and (optionally) what it returned.
type Outcome struct {
	DecisionID  string
	Source      string
	Credentials identity.Credentials
	// Agent, when set, is the agent already authenticated for this decision by the transport in
	// the same exchange (the MCP and LLM gateways); Credentials are then not verified again.
	Agent *identity.Agent
	// Token is the decision's outcome token (Decision.OutcomeToken); an outcome without a
	// genuine, unexpired token for this decision and agent is refused.
	Token      string
	Tool       string
	Ran        bool
	Success    bool
	Error      string
	DurationMS int64
	// Result is the tool's result as JSON (an object, array or string); nil when not reported.
	Result json.RawMessage
	// Session, when set, must be the session the decision was made in (the result's labels go
	// to that session whatever the report says).
	Session string
	// Unredacted: the result is forwarded as it is or withheld, never redacted — it is what a
	// user typed into its requester's own form (an MCP elicitation's answer), which must reach
	// it as typed. It is still inspected and blocked at the block level, and the record is
	// redacted like any other.
	Unredacted bool
}

// ResultDecision is the answer to an Outcome.
type ResultDecision struct {
	Action   ResultAction
	Result   json.RawMessage // the result to forward (redacted when Action is ResultRedact)
	Level    threat.Level
	Findings []inspect.Finding
	Code     string
	Err      error
	Seq      uint64
	// Redacted counts the values or spans replaced in Result when Action is ResultRedact, so that
	// a transport can tell the agent something was taken out.
	Redacted int
}

// ErrUnknownDecision is returned when an outcome names a decision this agent did not get
// (CodeUnknownDecision).
var ErrUnknownDecision = errors.New("unknown decision")

// ErrOutcomeReported is returned for a second outcome of one decision (CodeOutcomeReported).
var ErrOutcomeReported = errors.New("outcome already reported")

// CodeOutcomeReported is the stable code of a second outcome for one decision.
const CodeOutcomeReported = "outcome_already_reported"

// CheckResult inspects a tool's result in the response direction (indirect prompt injection
// arrives here), decides pass, redact or block, and records a tool_result record under the
// decision's ID, under the result policy in force. Any failure blocks: a result that cannot be
// inspected or recorded never reaches the agent.
func (g *Guard) CheckResult(ctx context.Context, o Outcome) (rd *ResultDecision) {
	rd = &ResultDecision{Action: ResultBlock}
	rp := g.resultPolicy()
	if o.Unredacted {
		rp.Redact = false
	}
	// A reported tool name is checked like a called one, and never recorded whole when invalid.
	nameErr := error(nil)
	tool := o.Tool
	if o.Tool != "" {
		if nameErr = ValidToolName(o.Tool); nameErr != nil {
			tool = RecordedToolName(o.Tool)
		}
	}
	rec := &ledger.Record{Kind: ledger.KindToolResult, Time: g.now(), DecisionID: o.DecisionID, Source: o.Source, Tool: tool,
		Outcome: &ledger.Outcome{Ran: o.Ran, Success: o.Success, Error: o.Error, DurationMS: o.DurationMS}}
	var sh *shield // what of the result may be shown, once inspected
	fail := func(code string, err error) *ResultDecision {
		err = sh.scrubErr(err)
		rd.Action, rd.Code, rd.Err, rd.Result = ResultBlock, code, err, nil
		rec.Decision, rec.Reason = string(ResultBlock), code+": "+err.Error()
		if seq, lerr := g.appendRecord(ctx, rec); lerr == nil {
			rd.Seq = seq
		} else {
			rd.Err = errors.Join(err, fmt.Errorf("ledger append: %w", lerr))
		}
		return rd
	}
	defer func() {
		if p := recover(); p != nil {
			fail(CodeInternal, fmt.Errorf("guard: panic: %v", p))
		}
	}()

	agent := o.Agent
	if agent == nil {
		a, err := g.auth.Verify(ctx, o.Credentials)
		if err != nil {
			return fail(identity.Code(err), fmt.Errorf("authenticate agent: %w", err))
		}
		agent = a
	}
	rec.Agent = agentPrincipal(agent)
	if nameErr != nil {
		return fail(CodeInvalidToolName, nameErr)
	}
	// Scoped identities: an agent reports only on its own, recent, allowed calls, once each —
	// at whichever replica, as its outcome token proves.
	made, code, err := g.claimOutcome(ctx, o, agent.ID, rec.Time)
	if err != nil {
		return fail(code, err)
	}
	tool = made.tool
	o.Tool, rec.Tool = tool, tool

	if len(o.Result) == 0 {
		rd.Action = ResultPass
		rec.Decision = string(ResultPass)
		// Unseen is not clean: a tool that ran brings its declared labels.
		if o.Ran {
			if err := g.addResultLabels(ctx, rd, rec, agent.ID, made, o.Tool); err != nil {
				return fail(CodeSession, err)
			}
		}
		return g.recordResult(ctx, rd, rec)
	}
	// Too large to inspect is not "inspected and found harmful": withheld with its own code and
	// the sizes, so an operator knows which setting to raise.
	maxBytes := rp.MaxBytes
	if maxBytes <= 0 {
		maxBytes = DefaultMaxResultBytes
	}
	if len(o.Result) > maxBytes {
		rec.ParamsSize = len(o.Result)
		return fail(CodeResultTooLarge, fmt.Errorf("result too large to inspect: %d bytes > %d", len(o.Result), maxBytes))
	}
	res, err := g.inspector.Inspect(ctx, o.Tool, inspect.Response, o.Result)
	rd.Level, rd.Findings = res.Level, res.Findings
	rec.ThreatLevel, rec.Findings = res.Level, ledgerFindings(res.Findings)
	rec.Secrets = whole(secretsOf(res.Findings))
	if err != nil {
		return fail(CodeInspection, fmt.Errorf("inspect result: %w", err))
	}
	// The result itself goes into the record like parameters do: redacted before hashing.
	rec.Params, rec.ParamsSize = o.Result, len(o.Result)
	sh = g.shieldFor(ctx, o.Tool, inspect.Response, o.Result, nil, res.Findings)
	rec.Secrets = sh.secrets

	switch {
	case res.Level >= rp.BlockLevel && rp.BlockLevel > threat.None:
		rd.Action = ResultBlock
		rd.Code = CodeResultBlocked
	case rp.Redact && len(sh.secrets) > 0:
		if sh.shown == nil {
			return fail(CodeInspection, fmt.Errorf("redact result: %w", ledger.ErrNotRedactable))
		}
		rd.Action, rd.Result = ResultRedact, sh.shown
		for _, sec := range sh.secrets {
			rd.Redacted += max(len(sec.Spans), 1)
		}
	default:
		rd.Action, rd.Result = ResultPass, o.Result
	}
	rec.Decision = string(rd.Action)
	if len(rd.Findings) > 0 {
		rec.Reason = "result findings: " + strings.Join(findingKinds(rd.Findings), ",")
	}
	// What the agent is about to see joins its session before it sees it.
	if err := g.addResultLabels(ctx, rd, rec, agent.ID, made, o.Tool); err != nil {
		return fail(CodeSession, err)
	}
	return g.recordResult(ctx, rd, rec)
}

// CodeOutcomeClaims is the stable code of an outcome that could not be claimed because the
// claim store did not answer: the gateway cannot know it is the first report, so it is refused.
const CodeOutcomeClaims = "outcome_claims_unavailable"

// claimOutcome checks o's token for o.DecisionID and agent, and claims the decision's one
// outcome. It returns the decided tool, or the stable code and cause of a refusal. A token for
// another agent, or an outcome naming another tool, does not spend the claim.
func (g *Guard) claimOutcome(ctx context.Context, o Outcome, agent string, now time.Time) (made tokenClaims, code string, err error) {
	c, err := g.outcomes.verify(o.DecisionID, o.Token)
	switch {
	case err != nil:
		return c, CodeOutcomeToken, err
	case o.Session != "" && o.Session != c.session:
		// The result belongs to the decision's session; a report naming another is refused.
		return c, CodeSessionInvalid, errors.New("the outcome names another session than its decision's")
	case c.agent != agent:
		return c, CodeUnknownDecision, fmt.Errorf("%w %q for agent %s (its token names another agent)", ErrUnknownDecision, o.DecisionID, agent)
	case o.Tool != "" && o.Tool != c.tool:
		return c, CodeUnknownDecision, fmt.Errorf("%w %q for agent %s and tool %q", ErrUnknownDecision, o.DecisionID, agent, o.Tool)
	case !now.Before(c.expires):
		return c, CodeOutcomeTokenExpired, fmt.Errorf("%w: decision %q expired at %s", ErrOutcomeTokenExpired, o.DecisionID, c.expires.UTC().Format(time.RFC3339))
	}
	rctx, cancel := g.recordContext(ctx)
	defer cancel()
	fresh, err := g.outcomes.claim(rctx, o.DecisionID, c.expires, now)
	switch {
	case err != nil:
		return c, CodeOutcomeClaims, fmt.Errorf("claim outcome of %q: %w", o.DecisionID, err)
	case !fresh:
		return c, CodeOutcomeReported, fmt.Errorf("%w: %q", ErrOutcomeReported, o.DecisionID)
	}
	return c, "", nil
}

func (g *Guard) recordResult(ctx context.Context, rd *ResultDecision, rec *ledger.Record) *ResultDecision {
	seq, err := g.appendRecord(ctx, rec)
	if err != nil {
		rd.Action, rd.Code, rd.Result, rd.Err = ResultBlock, CodeLedger, nil, fmt.Errorf("ledger append: %w", err)
		return rd
	}
	rd.Seq = seq
	return rd
}
