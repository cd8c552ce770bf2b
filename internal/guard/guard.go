// Package guard is the one door to a decision. Every transport — the HTTP decision API, the MCP
// proxy, the LLM gateway, the Go SDK — turns what it receives into a Request and calls Check,
// which runs the steps of docs/ARCHITECTURE.md top to bottom:
//
//  1. a decision ID;
//  2. authenticate the agent and the invoking user;
//  3. inspect the parameters;
//  4. behaviour signals (rates, hours, anomalies);
//  5. evaluate the current policy;
//  6. CONSTRAIN: hold for approval (or redeem an approved grant);
//  7. append the decision to the ledger, durably;
//  8. return the decision — the tool may run only after step 7.
//
// Any error or panic on the way denies, and is recorded where a record can be written.
// guard imports the engines; nothing imports guard but transports, the server and app.
package guard

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/portcullis-ai/portcullis/internal/approval"
	"github.com/portcullis-ai/portcullis/internal/behavior"
	"github.com/portcullis-ai/portcullis/internal/identity"
	"github.com/portcullis-ai/portcullis/internal/inspect"
	"github.com/portcullis-ai/portcullis/internal/jsonx"
	"github.com/portcullis-ai/portcullis/internal/ledger"
	"github.com/portcullis-ai/portcullis/internal/policy"
	"github.com/portcullis-ai/portcullis/internal/threat"
)

// Authenticator proves who the agent and the invoking user are (identity.Verifier).
type Authenticator interface {
	Verify(ctx context.Context, creds identity.Credentials) (*identity.Agent, error)
	User(ctx context.Context, agent *identity.Agent, token string, asserted *identity.AssertedUser) (*identity.User, error)
}

// Inspector finds threats in parameters and results (inspect.Engine).
type Inspector interface {
	Inspect(ctx context.Context, tool string, dir inspect.Direction, raw json.RawMessage) (inspect.Result, error)
	// InspectParams inspects a call's parameters (raw) as the guard's one strict parse decoded
	// them (params), without parsing raw again.
	InspectParams(ctx context.Context, tool string, raw json.RawMessage, params map[string]any) (inspect.Result, error)
}

// Behavior records the call and returns what continuous verification knows about it. windows
// are the call-count windows the policy reads for the call (policy.Set.Windows): they are
// counted in the same atomic store call that records this one, on the clock of at.
type Behavior interface {
	Observe(ctx context.Context, agent, tool string, paramsSize int, at time.Time, windows []time.Duration) (Signals, error)
}

// Signals is the behaviour step's output: the history the policy's time_context conditions read
// and anomalies, as findings that raise the threat level.
type Signals struct {
	History   policy.History
	Anomalies []inspect.Finding
	// Err, when set, reports a failure the History met while the policy read it: the decision
	// made on such a history is void.
	Err func() error
}

// Policies serves the policy set current at this moment (policy.Watcher).
type Policies interface {
	Current() *policy.Set
}

// Approvals holds CONSTRAIN decisions for a human and redeems approved grants (approval.Engine).
type Approvals interface {
	Request(ctx context.Context, in approval.Input) (approval.Request, error)
	Redeem(ctx context.Context, id string, k approval.Key) (approval.Request, error)
	// RequestMatching redeems the grant of, joins, or opens the request for an identical call
	// (approval.Engine.RequestMatching), for transports that cannot carry an approval ID; a
	// redemption runs then as RedeemWith does.
	RequestMatching(ctx context.Context, in approval.Input, k approval.Key, then func(approval.Request) error) (approval.Request, approval.MatchResult, error)
	// RedeemWith redeems and runs then inside the redemption, before it commits; an error from
	// then aborts it and the grant stays usable.
	RedeemWith(ctx context.Context, id string, k approval.Key, then func(approval.Request) error) (approval.Request, error)
	Get(ctx context.Context, id string) (approval.Request, error)
	// Wait blocks until the request is resolved or ctx ends (Request.Hold).
	Wait(ctx context.Context, id string) (approval.Request, error)
}

// Ledger appends records durably (ledger.Ledger).
type Ledger interface {
	Append(ctx context.Context, r *ledger.Record, secretPaths ...string) (uint64, error)
}

// Guard runs the decision pipeline. Its parts are fixed at construction; the policy set and the
// identity configuration they serve may change underneath (hot reload).
type Guard struct {
	auth      Authenticator
	inspector Inspector
	behavior  Behavior              // may be nil: no behaviour tracking
	sessions  behavior.SessionStore // may be nil: no session tracking
	policies  Policies
	// shadow serves the candidate set decided beside the enforced one, never enforced (nil, or
	// a nil Current: none); shadowCounts counts enforced→candidate transitions by action.
	shadow       Policies
	shadowFailed atomic.Uint64 // candidate decisions that panicked (counted as transition "failed")
	shadowCounts [4][4]atomic.Uint64
	// proposalsLost counts model proposals the proposal store failed to keep (ProposalsLost).
	proposalsLost atomic.Uint64
	approvals     Approvals // may be nil: CONSTRAIN then stays pending-less and denies
	ledger        Ledger
	now           func() time.Time
	// toolClass declares data classifications per tool (data_classification: tool); swapped
	// whole on configuration reload.
	toolClass atomic.Pointer[map[string]string]
	// toolClassFrom, when set, replaces toolClass (Options.ToolClassificationsFrom).
	toolClassFrom func() map[string]string
	// results is how results, notices, content and definitions are treated; swapped whole on
	// reload (SetResultPolicy), or served by resultsFrom (Options.ResultPolicyFrom).
	results     atomic.Pointer[ResultPolicy]
	resultsFrom func() ResultPolicy
	// outcomes binds outcomes to the allowed decisions they report on (outcome tokens).
	outcomes *outcomeTokens
	// proposals are the calls models proposed, for require_proposal.
	proposals behavior.ProposalStore
	// links name sessions by response IDs (may be nil: none).
	links behavior.SessionLinks
	// listings are the narrowed tool lists recorded recently (VisibleTools records each once).
	listings *listings
	// approvalExpiry is the default pending lifetime of approval requests.
	approvalExpiry time.Duration
	// recordTimeout bounds every record the guard writes (recordContext).
	recordTimeout time.Duration
	// requestBlock denies a call whose parameters inspect at or above it (None: never).
	requestBlock threat.Level
}

// DefaultRecordTimeout is RecordTimeout when Options do not set it: the default decision timeout.
const DefaultRecordTimeout = 5 * time.Second

// Options assemble a Guard. Auth, Inspector, Policies and Ledger are required.
type Options struct {
	Auth      Authenticator
	Inspector Inspector
	Behavior  Behavior
	// Sessions keeps what each session has seen (session-aware enforcement); nil: none.
	Sessions behavior.SessionStore
	// Proposals remembers the calls models proposed, for require_proposal; nil: in this
	// process only. Replicas share one (the Redis session store).
	Proposals behavior.ProposalStore
	// Links names sessions by the response IDs the LLM gateway served in them; nil: in this
	// process only, when Sessions is set.
	Links    behavior.SessionLinks
	Policies Policies
	// Shadow, when set and its Current is not nil, is a candidate policy set: every call the
	// enforced set decides is also decided under it, on the same request, and a verdict that
	// differs is recorded (ledger.Record.Shadow) but never enforced.
	Shadow              Policies
	Approvals           Approvals
	Ledger              Ledger
	Now                 func() time.Time
	ToolClassifications map[string]string
	// ToolClassificationsFrom, when set, is asked on every decision instead of
	// ToolClassifications: a caller that swaps its whole run-time configuration as one snapshot
	// serves the classifications from that same snapshot, so they never lag its other parts.
	ToolClassificationsFrom func() map[string]string
	// ResultPolicy says how tool results, notices, conversation content and tool definitions
	// are treated (block level, redaction, size cap).
	ResultPolicy ResultPolicy
	// ResultPolicyFrom, when set, is asked on every result instead of ResultPolicy: the result
	// policy is then part of the caller's hot-reloaded run-time snapshot.
	ResultPolicyFrom func() ResultPolicy
	// ApprovalExpiry is how long a CONSTRAIN request stays pending when its rule does not say
	// (approvals.expiry); zero: the approval engine's default.
	ApprovalExpiry time.Duration
	// RecordTimeout bounds writing a record, on the guard's own context rather than the
	// caller's (0: DefaultRecordTimeout). The application sets it to the decision timeout.
	RecordTimeout time.Duration
	// OutcomeKey signs the outcome tokens of allowed decisions (at least 16 bytes; replicas
	// must share it, see DeriveOutcomeKey). Empty: a random key, good in this process only.
	OutcomeKey []byte
	// OutcomeTTL is how long an allowed decision's outcome may be reported (0: DefaultOutcomeTTL).
	OutcomeTTL time.Duration
	// OutcomeClaims records reported outcomes once (the shared nonce store for replicas);
	// nil: in memory.
	OutcomeClaims OutcomeClaims
	// RequestBlockLevel (inspection.request_block_level) denies a call whose parameters inspect
	// at or above it, whatever the policy says, with reason CodeThreatBlocked. threat.None (the
	// zero value): inspection only informs the policy.
	RequestBlockLevel threat.Level
}

// New checks that every required part is present.
func New(o Options) (*Guard, error) {
	switch {
	case o.Auth == nil:
		return nil, errors.New("guard: no authenticator")
	case o.Inspector == nil:
		return nil, errors.New("guard: no inspector")
	case o.Policies == nil:
		return nil, errors.New("guard: no policies")
	case o.Ledger == nil:
		return nil, errors.New("guard: no ledger")
	}
	now := o.Now
	if now == nil {
		now = time.Now
	}
	outcomes, err := newOutcomeTokens(o.OutcomeKey, o.OutcomeTTL, o.OutcomeClaims, now)
	if err != nil {
		return nil, err
	}
	g := &Guard{auth: o.Auth, inspector: o.Inspector, behavior: o.Behavior, sessions: o.Sessions, policies: o.Policies, shadow: o.Shadow,
		approvals: o.Approvals, ledger: o.Ledger, now: now, outcomes: outcomes,
		proposals: o.Proposals, links: o.Links, listings: newListings(),
		approvalExpiry: o.ApprovalExpiry, toolClassFrom: o.ToolClassificationsFrom, recordTimeout: o.RecordTimeout,
		resultsFrom: o.ResultPolicyFrom, requestBlock: o.RequestBlockLevel}
	if g.recordTimeout <= 0 {
		g.recordTimeout = DefaultRecordTimeout
	}
	if g.proposals == nil {
		g.proposals = behavior.NewMemoryProposals(0, 24*time.Hour)
	}
	if g.links == nil && g.sessions != nil {
		g.links = behavior.NewMemoryLinks(0, 0)
	}
	g.SetToolClassifications(o.ToolClassifications)
	g.SetResultPolicy(o.ResultPolicy)
	return g, nil
}

// recordContext is the context a record is written on: the guard's own, not the caller's. The
// record is the guard's obligation — once the decision is made it is written whether or not the
// caller is still there, and the answer follows the record, never the caller's clock — but it is
// bounded (RecordTimeout, the decision timeout) so that a store that does not answer denies in
// bounded time instead of holding a goroutine for good. Its values (the trace span) are the
// caller's.
func (g *Guard) recordContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), g.recordTimeout)
}

// appendRecord appends rec on the guard's bounded context (recordContext).
func (g *Guard) appendRecord(ctx context.Context, rec *ledger.Record) (uint64, error) {
	rctx, cancel := g.recordContext(ctx)
	defer cancel()
	return g.ledger.Append(rctx, rec)
}

// Authenticate verifies an agent's credentials for a transport that will ask several questions in
// one exchange (filter the tools it offers, then decide each proposed call). A failure is recorded
// as a denial — an attempt with a bad credential is evidence — and the transport refuses the
// exchange.
func (g *Guard) Authenticate(ctx context.Context, source string, creds identity.Credentials) (*identity.Agent, error) {
	agent, err := g.auth.Verify(ctx, creds)
	if err == nil {
		return agent, nil
	}
	d := &Decision{ID: NewDecisionID()}
	rec := &ledger.Record{Kind: ledger.KindDecision, Time: g.now(), DecisionID: d.ID, Source: source,
		Agent: &ledger.Principal{ID: creds.ClaimedAgent, Verified: false}}
	g.deny(ctx, d, rec, nil, CodeUnauthenticated, fmt.Errorf("authenticate agent: %w", err), identity.Code(err))
	return nil, err
}

// Admit authenticates the agent of req before a transport spends anything on it — a
// concurrency slot, a long-poll — and returns the agent for req.Agent, so that the Check that
// follows uses it instead of verifying the credential again (a signed request's nonce is
// single-use: a second verification would be a replay). A failure is the denial Check would
// have returned for the same request, recorded the same way; the caller answers with it.
func (g *Guard) Admit(ctx context.Context, req Request) (*identity.Agent, *Decision) {
	agent, err := g.auth.Verify(ctx, req.Credentials)
	if err == nil {
		return agent, nil
	}
	d := &Decision{ID: NewDecisionID(), Tool: RecordedToolName(req.Tool), Action: policy.Deny, Message: msgUnavailable}
	return nil, g.denyUnauthenticated(ctx, d, g.requestRecord(d, req, g.now()), req, err)
}

// requestRecord starts the decision record of req. The tool is d.Tool: the name as it may be
// recorded (RecordedToolName), never an invalid name whole.
func (g *Guard) requestRecord(d *Decision, req Request, at time.Time) *ledger.Record {
	return &ledger.Record{Kind: ledger.KindDecision, Time: at, DecisionID: d.ID, RequestID: req.RequestID,
		Source: req.Source, Tool: d.Tool, Params: req.Params, ParamsSize: len(req.Params)}
}

// denyUnauthenticated denies a request whose agent could not be authenticated. The record names
// the agent the request claimed to be, unverified.
func (g *Guard) denyUnauthenticated(ctx context.Context, d *Decision, rec *ledger.Record, req Request, err error) *Decision {
	rec.Agent = &ledger.Principal{ID: req.Credentials.ClaimedAgent, Verified: false}
	// Nothing inspected the parameters, so nothing knows which of them are secrets (an agent
	// whose key just expired still sends real ones): they are withheld, their hash kept.
	rec.ParamsDropped = "caller not authenticated: parameters not inspected, withheld"
	return g.deny(ctx, d, rec, nil, CodeUnauthenticated, fmt.Errorf("authenticate agent: %w", err), identity.Code(err))
}

// SetToolClassifications replaces the per-tool data classifications (configuration reload).
func (g *Guard) SetToolClassifications(m map[string]string) {
	if m == nil {
		m = map[string]string{}
	}
	g.toolClass.Store(&m)
}

// SetResultPolicy replaces the result policy (configuration reload).
func (g *Guard) SetResultPolicy(rp ResultPolicy) { g.results.Store(&rp) }

// resultPolicy is the result policy in force.
func (g *Guard) resultPolicy() ResultPolicy {
	if g.resultsFrom != nil {
		return g.resultsFrom()
	}
	return *g.results.Load()
}

func (g *Guard) toolClassifications() map[string]string {
	if g.toolClassFrom != nil {
		return g.toolClassFrom()
	}
	return *g.toolClass.Load()
}

// Request is one tool call as a transport received it.
type Request struct {
	// RequestID is the transport's own identifier (a JSON-RPC id, an HTTP request id), for correlation.
	RequestID string
	// Source names the transport: "http", "mcp", "llm", "sdk".
	Source      string
	Credentials identity.Credentials
	// Agent, when set, is the agent this transport already authenticated for the same exchange
	// with Authenticate (an LLM response proposing several tool calls is one signed request:
	// verifying its signature again would be a replay). Credentials are then not verified again.
	Agent        *identity.Agent
	UserToken    string
	AssertedUser *identity.AssertedUser
	Tool         string
	// Params are the call's arguments exactly as received (a JSON object).
	Params json.RawMessage
	// ParamsValue, when not nil, is Params as jsonx.DecodeObject reads them, read by a transport
	// that decoded the whole request in one pass (jsonx.DecodeFields): the guard then decides on
	// it without parsing Params again. It must be exactly that reading of Params — the policy
	// decides on it while the tool runs on Params — and the guard takes it over (a step may change
	// it). It serves one pass of the pipeline: a call held (Hold) and decided again is parsed
	// again from Params.
	ParamsValue map[string]any
	// ApprovalArg, when set, names a member of Params that carries the approval ID of a retry
	// (the MCP gateway's _portcullis_approval_id): the one strict parse of the parameters takes
	// it out — it is never decided, digested, recorded or forwarded — and it overrides
	// ApprovalID. A value that is not a string is malformed.
	ApprovalArg string
	// ApprovalID resumes a call that an earlier CONSTRAIN held: if the grant is approved and still
	// binds this exact call, it runs once.
	ApprovalID string
	// MatchApproval, for a transport whose caller cannot carry an approval ID (the LLM gateway:
	// the model only re-proposes the call), finds the approval by the call itself: a CONSTRAIN
	// without ApprovalID redeems an approved grant for the identical call (same agent, user, tool
	// and canonical parameters digest), or joins its pending request, before opening a new one.
	// Transports that can carry the ID (HTTP, MCP, SDK) leave it false and pass ApprovalID.
	MatchApproval bool
	// Session is the session the call belongs to (an MCP session, an LLM conversation, the
	// decision API's session_id); "" is the agent's default session. What the session has seen
	// is read before the policy decides, and the record names it.
	Session string
	// Hold, for a transport that keeps its caller waiting (the MCP gateway), holds a CONSTRAIN
	// up to this long for the approval: approved in time, the call is decided again with the
	// approval ID and runs once; denied or expired, that refusal is decided and recorded. Zero
	// answers CONSTRAIN at once.
	Hold time.Duration
}

// Decision is what Check returns. Message is the only text meant for the agent: it never names
// rules or conditions ("from the agent's perspective, the policy is invisible").
type Decision struct {
	ID     string
	Tool   string
	Action policy.Action
	// Code is a stable machine-readable reason for a denial the transport reports (e.g.
	// "credential_expired", "ledger_unavailable"); "" for policy decisions.
	Code       string
	Message    string
	ApprovalID string
	// OutcomeToken, for an allowed decision, is what the outcome of the call must present: it
	// binds the outcome to this decision, its agent and tool, at any replica, until it expires.
	OutcomeToken string
	Agent        *identity.Agent
	User         *identity.User
	// Rule and Enforcement are for operators and the ledger, never for the agent.
	Rule        string
	Enforcement string
	Level       threat.Level
	Findings    []inspect.Finding
	// Seq is the ledger sequence number of the decision record.
	Seq uint64
	// Params are the parameters the tool may run on: as received, or, when the approval
	// argument (Request.ApprovalArg) was taken out, the canonical encoding of the rest (numbers
	// as written); nil when they could not be read.
	Params json.RawMessage
	// Err is the internal cause of a denial that was not the policy's; never shown to the agent.
	Err error
	// Steps times each step of the pipeline, for metrics.
	Steps Steps
}

// Steps are the durations of the pipeline's steps for one decision (zero for steps not reached).
type Steps struct {
	Auth, Inspect, Behavior, Policy, Approval, Ledger time.Duration
}

// Allowed reports whether the tool may run: ALLOW and LOG.
func (d *Decision) Allowed() bool { return d.Action == policy.Allow || d.Action == policy.Log }

// Pending reports a call held for approval: CONSTRAIN with the approval request to retry with.
func (d *Decision) Pending() bool { return d.Action == policy.Constrain && d.ApprovalID != "" }

// Stable codes for denials that are not the policy's own.
const (
	CodeUnauthenticated = "unauthenticated"
	CodeUserInvalid     = "user_invalid"
	CodeMalformed       = "malformed_params"
	// CodeDuplicateKey: the parameters name an object member twice (exactly or up to case).
	CodeDuplicateKey   = "duplicate_key"
	CodeInspection     = "inspection_failed"
	CodeBehavior       = "behavior_unavailable"
	CodeSessionInvalid = "invalid_session"
	CodeNoPolicy       = "policy_unavailable"
	CodeApproval       = "approval_unavailable"
	CodeTooManyPending = approval.CodeTooManyPending
	CodeLedger         = "ledger_unavailable"
	CodeInternal       = "internal_error"
	// CodeThreatBlocked is the recorded reason of a call denied because its parameters inspect
	// at or above inspection.request_block_level. It is not part of the agent's answer, which
	// is a policy denial's ("the tool is unavailable").
	CodeThreatBlocked = "threat_blocked"
	// CodeInvalidToolName: the tool name is empty, longer than MaxToolNameLen, not UTF-8, or holds
	// a character that is not printable (see ValidToolName).
	CodeInvalidToolName = "invalid_tool_name"
)

// Messages shown to agents. They reveal nothing of the policy.
const (
	msgUnavailable = "the tool is unavailable"
	msgPending     = "the call is waiting for human approval"
)

// Check decides one tool call. It never returns a nil Decision; on any failure the decision is
// DENY with Code and Err set. The caller may run the tool only when d.Allowed(). With req.Hold, a
// CONSTRAIN waits for its approval and is decided again once resolved.
func (g *Guard) Check(ctx context.Context, req Request) *Decision {
	d := g.decide(ctx, req)
	if req.Hold <= 0 || !d.Pending() || g.approvals == nil {
		return d
	}
	wctx, cancel := context.WithTimeout(ctx, req.Hold)
	_, err := g.approvals.Wait(wctx, d.ApprovalID)
	cancel()
	if err != nil || ctx.Err() != nil {
		// Not resolved in time, or the caller went away: nothing runs, the request stays pending.
		return d
	}
	// Resolved in time. Deciding again with the approval ID redeems an approved grant (the call
	// runs once) or records the refusal of a denied or expired one. The first pass owned the
	// parsed parameters (it may have changed them): this one parses Params afresh.
	req.ApprovalID, req.ParamsValue = d.ApprovalID, nil
	return g.decide(ctx, req)
}

// decide is one pass of the pipeline for req.
func (g *Guard) decide(ctx context.Context, req Request) (d *Decision) {
	start := g.now()
	// The name is checked before anything uses it: a name that is not a tool name never reaches
	// a span, a record, a log line or a metric label whole, whoever sent it.
	nameErr := ValidToolName(req.Tool)
	tool := req.Tool
	if nameErr != nil {
		tool = RecordedToolName(req.Tool)
	}
	d = &Decision{ID: NewDecisionID(), Tool: tool, Action: policy.Deny, Message: msgUnavailable}
	ctx, span := tracer.Start(ctx, "guard.Check", trace.WithAttributes(attribute.String("portcullis.decision_id", d.ID),
		attribute.String("portcullis.tool", tool), attribute.String("portcullis.source", req.Source)))
	defer func() { endSpan(span, d) }()
	rec := g.requestRecord(d, req, start)
	// sh says what of the parameters may be shown, once inspection has found their secrets; until
	// then (and when inspection fails) flagged values are redacted whole.
	var sh *shield

	defer func() {
		if p := recover(); p != nil {
			d.Action, d.Code, d.Message = policy.Deny, CodeInternal, msgUnavailable
			d.Err = fmt.Errorf("guard: panic: %v", p)
			d.Err = sh.scrubErr(d.Err)
			rec.Decision, rec.Reason = "deny", d.Err.Error()
			// The record may not be writable (the panic may have come from the ledger); the
			// decision is a denial either way.
			if seq, err := g.appendRecord(ctx, rec); err == nil {
				d.Seq = seq
			}
		}
	}()

	// 2. Authenticate the agent, then the invoking user.
	mark := start
	step := func(dst *time.Duration) {
		t := g.now()
		*dst, mark = t.Sub(mark), t
	}
	agent, err := req.Agent, error(nil)
	if agent == nil {
		agent, err = g.auth.Verify(ctx, req.Credentials)
	}
	if err != nil {
		return g.denyUnauthenticated(ctx, d, rec, req, err)
	}
	d.Agent = agent
	rec.Agent = agentPrincipal(agent)
	// Refused after the agent is known, so the record says who sent it.
	if nameErr != nil {
		return g.deny(ctx, d, rec, sh, CodeInvalidToolName, nameErr, "")
	}
	user, err := g.auth.User(ctx, agent, req.UserToken, req.AssertedUser)
	if err != nil {
		return g.deny(ctx, d, rec, sh, CodeUserInvalid, fmt.Errorf("authenticate user: %w", err), identity.Code(err))
	}
	d.User = user
	rec.User = userPrincipal(user)
	step(&d.Steps.Auth)

	// 3. Read, then inspect the parameters. Parameters that readers could read two ways — a
	// repeated key, exactly or up to case; invalid UTF-8 — are refused before anything reads
	// them: the policy would decide on one reading and the tool might run on the other.
	params := new(callParams)
	if req.ParamsValue != nil {
		// Already read strictly, in the transport's one pass over its request.
		*params = callParams{raw: req.Params, obj: req.ParamsValue}
	} else if err := params.parse(req.Params); err != nil {
		rec.ParamsDropped = "malformed" // withheld by the ledger, their hash kept
		code := CodeMalformed
		if errors.Is(err, jsonx.ErrDuplicateKey) {
			code = CodeDuplicateKey
		}
		return g.deny(ctx, d, rec, sh, code, err, "")
	}
	if req.ApprovalArg != "" {
		if req, err = takeApprovalArg(req, params); err != nil {
			rec.ParamsDropped = "malformed" // withheld by the ledger, their hash kept
			return g.deny(ctx, d, rec, sh, CodeMalformed, err, "")
		}
		rec.Params, rec.ParamsSize = req.Params, len(req.Params)
	}
	d.Params = req.Params
	rec.ParamsValue = params.obj
	res, err := g.inspector.InspectParams(ctx, req.Tool, req.Params, params.obj)
	d.Level, d.Findings = res.Level, res.Findings
	rec.Secrets = whole(secretsOf(res.Findings))
	rec.ThreatLevel, rec.Findings = res.Level, ledgerFindings(res.Findings)
	if err != nil {
		code := CodeInspection
		if errors.Is(err, inspect.ErrMalformed) {
			code = CodeMalformed
			// Malformed parameters are stored as a digest only: they may not even be JSON.
			rec.ParamsDropped = "malformed" // withheld by the ledger, their hash kept
		}
		return g.deny(ctx, d, rec, sh, code, fmt.Errorf("inspect params: %w", err), "")
	}
	sh = g.shieldFor(ctx, req.Tool, inspect.Request, req.Params, params.obj, res.Findings)
	rec.Secrets = sh.secrets
	step(&d.Steps.Inspect)
	// Inspection decides alone at the block level: such a call is denied before any policy
	// could allow it. The agent is told what a policy denial tells it; the record says why.
	if g.requestBlock > threat.None && res.Level >= g.requestBlock {
		d.Err = sh.scrubErr(fmt.Errorf("request threat level %s at or above inspection.request_block_level %s (findings: %s)",
			res.Level, g.requestBlock, strings.Join(findingKinds(res.Findings), ",")))
		rec.Reason = CodeThreatBlocked + ": " + d.Err.Error()
		_ = g.record(ctx, d, rec) // d.Action is DENY; a record that cannot be written: DENY ledger_unavailable
		return d
	}

	// The policy set current at this moment: its windows are counted in step 4, and it decides
	// in step 5.
	set := g.policies.Current()
	if set == nil {
		return g.deny(ctx, d, rec, sh, CodeNoPolicy, policy.ErrNoSet, "")
	}

	// 4. Behaviour: count the call and every window the policy reads (one atomic store call),
	// read the baseline, raise anomalies.
	var sig Signals
	var windows []time.Duration // read only with tracking: the record's counts come from it
	if g.behavior != nil {
		windows = set.Windows(agent.ID, req.Tool)
		sig, err = g.behavior.Observe(ctx, agent.ID, req.Tool, len(req.Params), start, windows)
		if err != nil {
			return g.deny(ctx, d, rec, sh, CodeBehavior, fmt.Errorf("behaviour: %w", err), "")
		}
		if len(sig.Anomalies) > 0 {
			d.Findings = append(d.Findings, sig.Anomalies...)
			d.Level = inspect.LevelOf(d.Findings)
			rec.ThreatLevel = d.Level
			for _, a := range sig.Anomalies {
				rec.Anomalies = append(rec.Anomalies, ledger.Anomaly{Signal: a.Kind, Score: a.Score})
			}
		}
	}

	// What the session has seen, per agent and invoking user.
	var sess *policy.Session
	if g.sessions != nil {
		if len(req.Session) > MaxSessionIDBytes {
			return g.deny(ctx, d, rec, sh, CodeSessionInvalid, fmt.Errorf("session id longer than %d bytes", MaxSessionIDBytes), "")
		}
		if sess, err = g.sessionState(ctx, sessionKey(agent.ID, userID(user), req.Session), start); err != nil {
			return g.deny(ctx, d, rec, sh, CodeSession, fmt.Errorf("session: %w", err), "")
		}
		rec.Session = &ledger.Session{ID: req.Session, Labels: sess.Labels}
	}
	// require_proposal: a call from another transport than the LLM gateway runs only as a model
	// in its session proposed it. A retry with an approval ID was checked when it was held.
	if w := set.RequireProposal(agent.ID); w > 0 && req.Source != SourceLLM && req.ApprovalID == "" {
		call, err := proposedCall(req, params)
		if err != nil {
			return g.deny(ctx, d, rec, sh, CodeMalformed, err, "")
		}
		ok, err := g.proposals.UseProposal(ctx, sessionKey(agent.ID, userID(user), req.Session), call, w, start)
		if err != nil {
			return g.deny(ctx, d, rec, sh, CodeSession, fmt.Errorf("proposals: %w", err), "")
		}
		if !ok {
			return g.deny(ctx, d, rec, sh, CodeNotProposed, fmt.Errorf("no model response in session %q proposed this call within %s", clipSession(req.Session), w), "")
		}
	}

	step(&d.Steps.Behavior)

	// 5. Evaluate the policy.
	version := Version(set)
	rec.PolicyVersion = version
	preq := &policy.Request{
		Agent:              policy.Agent{ID: agent.ID, Roles: agent.Roles, Permissions: agent.Permissions, RolePermissions: agent.RolePermissions},
		User:               policyUser(user),
		Tool:               req.Tool,
		Params:             params.obj,
		Time:               start,
		Threat:             d.Level,
		Findings:           findingKinds(d.Findings),
		ToolClassification: g.toolClassifications()[req.Tool],
		History:            sig.History,
		Session:            sess,
		Display:            sh.display(),
	}
	// The decision comes from the engine's allocation-free path; the record's conditions (those
	// of the deciding and the dry-run rules) are quoted after it, only for the record.
	v := set.Decide(preq)
	pd := v.Decision
	// The record's inputs read the same history: read before its error is checked, so that a
	// window it could not count denies rather than being recorded as a count of 0.
	inputs := evalInputs(preq, windows)
	if sig.Err != nil {
		if err := sig.Err(); err != nil {
			return g.deny(ctx, d, rec, sh, CodeBehavior, fmt.Errorf("behaviour history: %w", err), "")
		}
	}
	d.Action, d.Rule, d.Enforcement = pd.Action, pd.Rule, pd.Enforcement
	var conds []approval.Condition
	rec.Policy, conds = ledgerPolicy(version, &v, preq, sh)
	rec.Inputs = inputs
	rec.Enforcement = pd.Enforcement
	if w := &v.WouldHave; v.Shadowed && w.Action.StricterThan(pd.Action) {
		// Shadow mode: a dry-run rule would have tightened this call. It is not enforced, but it
		// is on the record, and an ALLOW it would have stopped is flagged as LOG.
		rec.Reason = fmt.Sprintf("dry run: rule %q would have decided %s", w.Rule, w.Action)
		if pd.Action == policy.Allow {
			pd.Action, pd.Enforcement = policy.Log, set.Enforcement(agent.ID, policy.Log)
			d.Action, d.Enforcement = pd.Action, pd.Enforcement
			rec.Enforcement = pd.Enforcement
		}
	}
	g.decideShadow(rec, preq, &v)
	step(&d.Steps.Policy)

	// 6. CONSTRAIN: redeem an approved grant for this exact call, or open an approval request.
	if pd.Action == policy.Constrain {
		if g.approvals == nil {
			return g.deny(ctx, d, rec, sh, CodeApproval, errors.New("no approval queue configured"), "")
		}
		recorded, err := g.constrain(ctx, d, rec, req, params, agent, user, pd, conds, version, sh)
		switch {
		case errors.Is(err, errRecordAfterRedeem):
			// The decision record (allow, or constrain for a new request) was written, then the
			// approval change did not commit: the approval engine compensated on the record. The
			// call must not run — a grant is still usable and would run it twice — and no second
			// decision record may contradict the first.
			d.Action, d.Code, d.Message, d.Err = policy.Deny, CodeApproval, msgUnavailable, sh.scrubErr(err)
			return d
		case errors.Is(err, errRedeemRecord):
			// The decision record could not be written, so the change was aborted: a grant
			// stays usable (a retry may redeem it), a new request was never opened.
			return g.deny(ctx, d, rec, sh, CodeLedger, err, "")
		case err != nil:
			code := CodeApproval
			if errors.Is(err, approval.ErrTooManyPending) {
				// Not an outage: this agent has as many calls waiting as it may have.
				code = CodeTooManyPending
			}
			return g.deny(ctx, d, rec, sh, code, err, "")
		case recorded:
			// Recorded with the approval change, in the same step.
			step(&d.Steps.Approval)
			if d.Allowed() {
				d.OutcomeToken = g.outcomes.issue(d.ID, tokenClaims{agent: agent.ID, tool: req.Tool, user: userID(user), session: req.Session}, start)
			}
			return d
		}
	}

	step(&d.Steps.Approval)

	// 7. Record durably; only then may the tool run.
	if err := g.record(ctx, d, rec); err != nil {
		step(&d.Steps.Ledger)
		return d
	}
	step(&d.Steps.Ledger)
	if d.Allowed() {
		d.OutcomeToken = g.outcomes.issue(d.ID, tokenClaims{agent: agent.ID, tool: req.Tool, user: userID(user), session: req.Session}, start)
		if req.Source == SourceLLM && set.RequireProposal(agent.ID) > 0 {
			// A proposal the store could not keep is not remembered: its call from another
			// transport is then refused (fail closed), and the model's own call stands.
			if call, err := proposedCall(req, params); err == nil {
				if err := g.proposals.Propose(ctx, sessionKey(agent.ID, userID(user), req.Session), call, start); err != nil {
					g.proposalLost(ctx, req, agent, err)
				}
			}
		}
	}
	return d
}

// record writes the decision record of d on the guard's own bounded context and sets the
// answer from it: the answer is what the ledger holds. When the caller's context ended meanwhile
// the record stands and the answer is still the decision; the transport, which sees its own
// context end, reports it as not delivered. A record that could not be written is not in the
// log (Ledger.Append answers for the record, not for the caller's patience), and the answer is
// DENY ledger_unavailable.
func (g *Guard) record(ctx context.Context, d *Decision, rec *ledger.Record) error {
	switch d.Action {
	case policy.Allow, policy.Log:
		d.Message = ""
	case policy.Constrain:
		d.Message = msgPending
	default:
		d.Message = msgUnavailable
	}
	rec.Decision = actionName(d.Action)
	seq, err := g.appendRecord(ctx, rec)
	if err != nil {
		d.Action, d.Code, d.Message, d.Err = policy.Deny, CodeLedger, msgUnavailable, fmt.Errorf("ledger append: %w", err)
		return err
	}
	d.Seq = seq
	return nil
}

// Errors of an approval change (a grant's consumption, a new request) whose decision record is
// written inside it (constrain).
var (
	// errRedeemRecord: the decision record could not be written; the change was aborted.
	errRedeemRecord = errors.New("decision record not written")
	// errRecordAfterRedeem: the decision record was written but the change did not commit.
	errRecordAfterRedeem = errors.New("approval change not committed after its decision record was written")
)

// constrain handles a CONSTRAIN decision: with an approval ID it tries to redeem the grant; a call
// that the grant does not bind, or no approval ID at all, opens a new approval request.
//
// redemption is what recordRedemption's hook did: whether the decision record was written, or
// why it could not be.
type redemption struct {
	written bool
	err     error
	opening bool // the hook was recordOpening's: a failed one leaves no request behind
}

// recordRedemption is the hook a redemption runs before the grant's consumption is recorded and
// commits: the call was approved exactly as it is, so it runs once, and the record that says so
// is written first — a record that cannot be written aborts the redemption and never costs the
// grant.
func (g *Guard) recordRedemption(ctx context.Context, d *Decision, rec *ledger.Record, reason string, out *redemption) func(approval.Request) error {
	return func(granted approval.Request) error {
		d.Action, d.ApprovalID = policy.Allow, granted.ID
		rec.Approval = approvalDetails(granted)
		rec.Reason = reason
		if out.err = g.record(ctx, d, rec); out.err != nil {
			return out.err
		}
		out.written = true
		return nil
	}
}

// recordOpening is the hook a new approval request runs before its approval_requested event is
// recorded and it commits: the CONSTRAIN decision that opens the request is on the record first,
// then the request. A decision record that cannot be written aborts the request.
func (g *Guard) recordOpening(ctx context.Context, d *Decision, rec *ledger.Record, out *redemption) func(approval.Request) error {
	return func(created approval.Request) error {
		out.opening = true
		d.ApprovalID = created.ID
		at := created.CreatedAt
		rec.Approval = &ledger.Approval{ID: created.ID, Result: "pending", RequestedAt: &at}
		if out.err = g.record(ctx, d, rec); out.err != nil {
			return out.err
		}
		out.written = true
		return nil
	}
}

// A grant is redeemed, and a new request opened, in the same step as the decision record: the
// record is written inside the approval change, before its event is recorded and it commits
// (recorded is then true), so the decision precedes the approval event it causes. A record that
// cannot be written aborts the change: the grant stays usable for a retry, no request is opened.
func (g *Guard) constrain(ctx context.Context, d *Decision, rec *ledger.Record, req Request, params *callParams,
	agent *identity.Agent, user *identity.User, pd policy.Decision, conds []approval.Condition, version string, sh *shield) (recorded bool, _ error) {
	digest, err := params.paramsDigest()
	if err != nil {
		return false, err
	}
	userID, verified := "", false
	if user != nil {
		userID, verified = user.ID, user.Verified
	}
	key := approval.Key{Agent: agent.ID, User: userID, UserVerified: verified,
		Tool: req.Tool, ParamsDigest: digest, PolicyVersion: version, Rule: pd.Rule, Required: pd.Approval.Required}
	if req.ApprovalID != "" {
		var red redemption
		_, err := g.approvals.RedeemWith(ctx, req.ApprovalID, key, g.recordRedemption(ctx, d, rec, "approval consumed", &red))
		written, recErr := red.written, red.err
		switch {
		case err == nil:
			return true, nil
		case written:
			return false, fmt.Errorf("redeem approval %s: %w: %w", req.ApprovalID, errRecordAfterRedeem, err)
		case recErr != nil:
			// g.record set the answer to DENY ledger_unavailable; deny records that, if it can.
			d.ApprovalID = req.ApprovalID
			rec.Approval = &ledger.Approval{ID: req.ApprovalID, Result: "not_consumed"}
			return false, fmt.Errorf("redeem approval %s: %w: %w", req.ApprovalID, errRedeemRecord, recErr)
		case errors.Is(err, approval.ErrPending):
			d.ApprovalID = req.ApprovalID
			rec.Approval = &ledger.Approval{ID: req.ApprovalID, Result: "pending"}
			return false, nil
		case isFinal(err):
			// Denied, expired or already used: final. The call is denied, not re-queued, so an
			// agent cannot wear down approvers by retrying a refused call.
			d.Action, d.ApprovalID = policy.Deny, req.ApprovalID
			rec.Approval = &ledger.Approval{ID: req.ApprovalID, Result: approval.Code(err)}
			rec.Reason = "approval " + approval.Code(err)
			return false, nil
		case isMismatch(err):
			// The grant binds another call (parameters changed by even one byte): a new approval.
		default:
			return false, fmt.Errorf("redeem approval %s: %w", req.ApprovalID, err)
		}
	}
	// The digest is the one computed from the parse above: the engine is given it, not the
	// parameters to digest again.
	in := approval.Input{DecisionID: d.ID, Agent: agent.ID, User: userID, UserVerified: verified, Tool: req.Tool,
		ParamsDigest: digest, RedactedParams: sh.paramsForApprovers(),
		Rule: pd.Rule, Conditions: conds, ThreatLevel: d.Level, Findings: d.Findings,
		PolicyVersion: version, Labels: map[string]string{"source": req.Source},
		Required: pd.Approval.Required, Expiry: pd.Approval.Expiry, GrantTTL: pd.Approval.GrantTTL}
	if req.Session != "" {
		// The console links the request to its session's flow: what the agent had seen.
		in.Labels["session"] = req.Session
	}
	if in.Expiry == 0 {
		in.Expiry = g.approvalExpiry
	}
	for _, a := range d.Findings {
		if isAnomaly(a.Kind) {
			in.Signals = append(in.Signals, approval.Signal{Name: a.Kind, Score: a.Score, Detail: a.Evidence})
		}
	}
	var red redemption
	in.Opened = g.recordOpening(ctx, d, rec, &red)
	if req.ApprovalID == "" && req.MatchApproval {
		ar, how, err := g.approvals.RequestMatching(ctx, in, key, g.recordRedemption(ctx, d, rec, "approval consumed (matched by call)", &red))
		written, recErr := red.written, red.err
		switch {
		case err == nil:
		case written:
			return false, fmt.Errorf("redeem matched approval: %w: %w", errRecordAfterRedeem, err)
		case recErr != nil && red.opening:
			d.ApprovalID, rec.Approval = "", nil
			return false, fmt.Errorf("open approval request: %w: %w", errRedeemRecord, recErr)
		case recErr != nil:
			rec.Approval = &ledger.Approval{ID: d.ApprovalID, Result: "not_consumed"}
			return false, fmt.Errorf("redeem matched approval: %w: %w", errRedeemRecord, recErr)
		default:
			return false, fmt.Errorf("match or open approval request: %w", err)
		}
		d.ApprovalID = ar.ID
		switch how {
		case approval.Redeemed, approval.Opened:
			// Recorded inside the change: the consumption's or the new request's.
			return true, nil
		case approval.Joined:
			// The same call is already waiting: answer with that request, open nothing.
			rec.Approval = &ledger.Approval{ID: ar.ID, Result: "pending", RequestedAt: &ar.CreatedAt}
			rec.Reason = "joined pending approval (matched by call)"
		}
		return false, nil
	}
	_, err = g.approvals.Request(ctx, in)
	switch {
	case err == nil:
		return true, nil
	case red.written:
		return false, fmt.Errorf("open approval request: %w: %w", errRecordAfterRedeem, err)
	case red.err != nil:
		// The request was never opened: the deny record names none.
		d.ApprovalID, rec.Approval = "", nil
		return false, fmt.Errorf("open approval request: %w: %w", errRedeemRecord, red.err)
	}
	return false, fmt.Errorf("open approval request: %w", err)
}

// deny finishes a decision that failed before the policy could decide, or that the policy could
// not be trusted to decide. The record is written if the ledger allows; the answer is DENY either way.
//
// The cause is scrubbed of the parameters' secrets (an error may quote a value) before it is
// recorded or handed back for the transport's log.
func (g *Guard) deny(ctx context.Context, d *Decision, rec *ledger.Record, sh *shield, code string, cause error, detail string) *Decision {
	cause = sh.scrubErr(cause)
	d.Action, d.Code, d.Message, d.Err = policy.Deny, code, msgUnavailable, cause
	if detail != "" && detail != code {
		d.Code = detail
	}
	rec.Decision = "deny"
	rec.Reason = d.Code + ": " + cause.Error()
	seq, err := g.appendRecord(ctx, rec)
	if err == nil {
		d.Seq = seq
	} else {
		d.Err = errors.Join(cause, fmt.Errorf("ledger append: %w", err))
	}
	return d
}

// tracer reports each decision as an OpenTelemetry span when a tracer provider is configured
// (app installs one from configuration); otherwise it is the no-op provider, at no cost.
var tracer = otel.Tracer("github.com/portcullis-ai/portcullis/internal/guard")

// endSpan records the decision on the span: the step timings as attributes, denials with a code
// as errors.
func endSpan(span trace.Span, d *Decision) {
	if !span.IsRecording() {
		span.End()
		return
	}
	span.SetAttributes(attribute.String("portcullis.decision", d.Action.String()), attribute.String("portcullis.rule", d.Rule),
		attribute.String("portcullis.threat_level", d.Level.String()), attribute.Int64("portcullis.ledger_seq", int64(d.Seq)),
		attribute.Int64("portcullis.step.auth_us", d.Steps.Auth.Microseconds()),
		attribute.Int64("portcullis.step.inspect_us", d.Steps.Inspect.Microseconds()),
		attribute.Int64("portcullis.step.behavior_us", d.Steps.Behavior.Microseconds()),
		attribute.Int64("portcullis.step.policy_us", d.Steps.Policy.Microseconds()),
		attribute.Int64("portcullis.step.approval_us", d.Steps.Approval.Microseconds()),
		attribute.Int64("portcullis.step.ledger_us", d.Steps.Ledger.Microseconds()))
	if d.Agent != nil {
		span.SetAttributes(attribute.String("portcullis.agent", d.Agent.ID))
	}
	if d.Code != "" {
		span.SetStatus(codes.Error, d.Code)
	}
	span.End()
}

// NewDecisionID returns a fresh decision identifier: "dec_" and 128 random bits in hex.
func NewDecisionID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on supported platforms (Go 1.24+)
	return "dec_" + hex.EncodeToString(b[:])
}

func actionName(a policy.Action) string {
	switch a {
	case policy.Allow:
		return "allow"
	case policy.Log:
		return "log"
	case policy.Constrain:
		return "constrain"
	default:
		return "deny"
	}
}

// decideShadow decides preq under the candidate set, if one is loaded: on the allocation-free
// path, on the request the enforced set read (nothing is inspected twice). The candidate's own
// dry-run rules are not consulted: the candidate is itself the dry run. Only a verdict that
// differs from the enforced one (decision or deciding rule) is recorded, to keep the ledger small;
// every one is counted.
func (g *Guard) decideShadow(rec *ledger.Record, preq *policy.Request, v *policy.Verdict) {
	if g.shadow == nil {
		return
	}
	// The candidate is never enforced: whatever it does, a panic included, leaves the enforced
	// decision alone and is only counted.
	defer func() {
		if recover() != nil {
			rec.Shadow = nil
			g.shadowFailed.Add(1)
		}
	}()
	cand := g.shadow.Current()
	if cand == nil {
		return
	}
	sv := cand.Decide(preq)
	from, to := v.Decision.Action, sv.Decision.Action
	if int(from) < len(g.shadowCounts) && int(to) < len(g.shadowCounts[0]) {
		g.shadowCounts[from][to].Add(1)
	}
	if from != to || v.Decision.Rule != sv.Decision.Rule {
		rec.Shadow = &ledger.Shadow{Version: Version(cand), Decision: actionName(to), Rule: sv.Decision.Rule}
	}
}

// CodeProposalLost is the reason of the record that a model's proposed call was allowed but
// its proposal could not be kept for require_proposal (the store failed): the call from another
// transport is then refused not_proposed, and this record says why.
const CodeProposalLost = "proposal_not_kept"

// proposalLost counts a proposal the store could not keep and records it, with the store's
// error, beside the allowed call's decision (already written). The proposal stays unkept: the
// proposed call, made elsewhere, is refused (fail closed); a record that cannot be written
// either is still counted.
func (g *Guard) proposalLost(ctx context.Context, req Request, agent *identity.Agent, err error) {
	g.proposalsLost.Add(1)
	_ = g.RecordEvent(ctx, Event{Source: req.Source, RequestID: req.RequestID, Agent: agent, Tool: req.Tool,
		Decision: EventLog, Reason: CodeProposalLost + ": " + err.Error(), Message: "session " + clipSession(req.Session)})
}

// ProposalsLost counts the proposals of allowed model calls that the proposal store could not
// keep (require_proposal): each makes the same call from another transport refused not_proposed.
func (g *Guard) ProposalsLost() uint64 { return g.proposalsLost.Load() }

// ShadowTransitions counts the calls decided under the candidate set by transition, "ALLOW→DENY"
// (enforced decision, then the candidate's); "ALLOW→ALLOW" counts agreement.
func (g *Guard) ShadowTransitions() map[string]uint64 {
	out := map[string]uint64{}
	if n := g.shadowFailed.Load(); n > 0 {
		out["failed"] = n
	}
	for from := range g.shadowCounts {
		for to := range g.shadowCounts[from] {
			if n := g.shadowCounts[from][to].Load(); n > 0 {
				out[policy.Action(from).String()+"→"+policy.Action(to).String()] = n
			}
		}
	}
	return out
}
