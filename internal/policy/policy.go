// Package policy owns the Portcullis policy language: strict YAML parsing with file:line:col
// positions (files.go reads and bounds the files, parse.go parses policies and rules with the
// YAML node helpers of nodes.go, conditions.go their conditions), compilation into an immutable, indexed *Set (compile.go), the
// allocation-free decision path (eval.go) and the gateway's form of it with the conditions its
// record quotes (decide.go), on-demand explanations (explain.go), CEL `expr` conditions (cel.go)
// and hot reload of a policy set from disk (reload.go).
//
// The contract is docs/policy-language.md. In short: a request from an agent is checked against
// that agent's policy; the most restrictive applicable rule wins (DENY > CONSTRAIN > LOG > ALLOW);
// rules that read runtime threat signals can only tighten a decision, never loosen it; an agent
// without a policy is denied.
//
// policy is an engine: it must not import transports (HTTP, MCP), stores, the ledger, the guard
// or the inspection engine. It reads inspection output only as threat.Level and finding kinds, and
// behaviour signals only through the History interface it declares.
package policy

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/portcullis-ai/portcullis/internal/threat"
	"github.com/portcullis-ai/portcullis/internal/yamlx"
)

// Action is a decision (or a rule's action). Values are ordered from the most to the least
// restrictive so that the zero value is DENY: a Decision nobody filled in denies.
type Action uint8

const (
	Deny      Action = iota // the tool does not run; the agent learns only that it is unavailable
	Constrain               // the call is held for a human's approval
	Log                     // the tool runs and the record is flagged
	Allow                   // the tool runs
)

var actionNames = [...]string{"DENY", "CONSTRAIN", "LOG", "ALLOW"}

// String returns the upper-case wire name.
func (a Action) String() string {
	if int(a) < len(actionNames) {
		return actionNames[a]
	}
	return fmt.Sprintf("Action(%d)", uint8(a))
}

// StricterThan reports whether a is more restrictive than b.
func (a Action) StricterThan(b Action) bool { return a < b }

// ParseAction reads a decision name, case-insensitively.
func ParseAction(s string) (Action, error) {
	for i, n := range actionNames {
		if strings.EqualFold(s, n) {
			return Action(i), nil
		}
	}
	return Deny, fmt.Errorf("unknown decision %q (want one of ALLOW, DENY, CONSTRAIN, LOG)", s)
}

// MarshalText implements encoding.TextMarshaler.
func (a Action) MarshalText() ([]byte, error) { return []byte(a.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (a *Action) UnmarshalText(b []byte) error {
	v, err := ParseAction(string(b))
	if err != nil {
		return err
	}
	*a = v
	return nil
}

// Enforcement actions a policy's `enforcement:` mapping may name, and rule-level refinements.
const (
	EnforceExecute       = "execute_tool"
	EnforceQueueApproval = "log_and_queue_for_approval"
	EnforceReturnError   = "log_and_return_error"
	EnforceRecordAllow   = "record_but_allow"

	RuleRequireApproval       = "require_human_approval"
	RuleRequireApprovalAndLog = "require_human_approval_and_log"
)

// Pos is a position in a policy file. Line and Col are 1-based; zero means unknown.
type Pos struct {
	File string
	Line int
	Col  int
}

// String formats the position as file:line:col.
func (p Pos) String() string {
	f := p.File
	if f == "" {
		f = "<input>"
	}
	return fmt.Sprintf("%s:%d:%d", f, p.Line, p.Col)
}

// ErrInvalid is what every load error matches with errors.Is: the policy (set) was rejected whole.
var ErrInvalid = errors.New("invalid policy")

// Error is one problem in a policy file.
type Error struct {
	Pos  Pos
	Key  string // the offending key or dotted key path, e.g. "rules[2].conditions[0].match"
	Msg  string
	Hint string
}

func (e *Error) Error() string {
	if e.Key != "" {
		return fmt.Sprintf("%s: %s: %s", e.Pos, e.Key, e.Msg)
	}
	return fmt.Sprintf("%s: %s", e.Pos, e.Msg)
}

// Is makes every *Error match ErrInvalid.
func (e *Error) Is(target error) bool { return target == ErrInvalid }

// ErrorList is every problem found while loading; a set with any error is never loaded.
type ErrorList []*Error

func (l ErrorList) Error() string { return yamlx.Lines(l) }

// Is makes an ErrorList match ErrInvalid.
func (l ErrorList) Is(target error) bool { return target == ErrInvalid }

// Unwrap returns the individual errors.
func (l ErrorList) Unwrap() []error { return yamlx.Errors(l) }

// ---------------------------------------------------------------------------------------------
// The parsed form (AST). Every node carries the position of its first token so that tools such
// as `portcullis policy lint` can report file:line:col. The AST is plain data; Compile turns it
// into the immutable evaluation form.

// File is one parsed policy file; it may hold several policies (YAML documents).
type File struct {
	Name     string
	Policies []*Policy
	sum      [32]byte // SHA-256 of the file's bytes (Parse); the set's Version is built from it
	src      []byte   // the file's bytes as parsed (Source)
}

// Source is the file's text exactly as it was parsed: the bytes the set's version digests, so a
// reader shown them sees what is in force, not what is on disk now.
func (f *File) Source() []byte { return f.src }

// Policy governs one agent.
type Policy struct {
	Pos           Pos
	AgentID       string
	DefaultAction Action // Deny when absent
	HasDefault    bool   // default_action was written
	Description   string
	Version       string
	Timezone      string // IANA name; "" means UTC
	// BusinessHours defines the "usual" hours for time_context.unusual_hour; nil means the default
	// Mon–Fri 08:00–18:00 in the policy's time zone.
	BusinessHours *BusinessHours
	// ClassificationLevels is the ordered scale (lowest first); nil means
	// public < internal < confidential < restricted.
	ClassificationLevels []string
	// ToolClassifications declares a classification per tool name, read by
	// `data_classification: tool` (extension; a Request may override it).
	ToolClassifications map[string]string
	// Tools declares what tools are, for session-aware enforcement: which send data out (sink),
	// which return untrusted or private content, and the labels their results bring.
	Tools map[string]*ToolDecl
	// Labels are the custom session labels the policy declares (besides untrusted and private).
	Labels []string
	// RequireProposal, when set, accepts a call that does not come from the LLM gateway only if
	// a model response in the same session proposed it (same tool, same arguments) within it.
	RequireProposal time.Duration
	Rules           []*Rule
	Enforcement     []*EnforcementEntry
}

// BusinessHours is the policy's working week.
type BusinessHours struct {
	Pos      Pos
	Start    Clock
	End      Clock
	Days     []time.Weekday
	Timezone string // "" means the policy's time zone
}

// ToolDecl is one entry of a policy's `tools:` block.
type ToolDecl struct {
	Pos Pos
	// Sink is "external" when the tool can send data out of the organisation (mail, HTTP
	// requests, writes outside configured roots), "internal" when declared not to; "" undeclared.
	Sink string
	// Returns are the labels the tool's results bring to the session (untrusted, private or a
	// declared custom label).
	Returns []string
	// Classification is the level of the data the tool returns ("" none).
	Classification string
}

// Session labels every policy knows.
const (
	LabelUntrusted = "untrusted"
	LabelPrivate   = "private"
	// ClassificationLabel prefixes a classification seen: "classification:confidential".
	ClassificationLabel = "classification:"
	SinkExternal        = "external"
	SinkInternal        = "internal"
)

// EnforcementEntry maps a decision to what the gateway does with it.
type EnforcementEntry struct {
	Pos      Pos
	Decision Action
	Action   string
}

// Rule is one rule of a policy.
type Rule struct {
	Pos         Pos
	Name        string
	Tools       []Pattern // whole-name RE2 patterns; a tool matches when any matches
	NotTools    []Pattern // extension: tools the rule does not cover
	Action      Action
	Conditions  []*Condition
	Enforcement string // rule-level refinement of CONSTRAIN, e.g. require_human_approval
	// Approval tunes the human approval a CONSTRAIN rule asks for (extension); nil: the defaults.
	Approval *ApprovalSettings
	// DryRun (extension) makes the rule a shadow: it is evaluated and reported — the decision it
	// would have made is recorded — but it never changes what is enforced.
	DryRun bool
	// Threat is true when a condition reads runtime threat signals (threat_score, findings, or an
	// expr that reads `threat`); such a rule can only tighten a decision. Set by Parse.
	Threat bool
}

// ApprovalSettings are a CONSTRAIN rule's approval terms: how many distinct approvers (N of
// N-of-M), how long the request stays pending and how long an approved grant stays redeemable.
// Zero values take the gateway's defaults.
type ApprovalSettings struct {
	Required int
	Expiry   time.Duration
	GrantTTL time.Duration
}

// Pattern is a regular expression as written, with its position.
type Pattern struct {
	Pos    Pos
	Source string
}

// ConditionKind names the nine condition kinds.
type ConditionKind uint8

const (
	KindParameter ConditionKind = iota + 1
	KindTimeOfDay
	KindThreatScore
	KindUserPermission
	KindTimeContext
	KindAgentRole
	KindUserAttribute
	KindDataClassification
	KindExpr
	KindFindings
	KindSession
	KindToolSink
)

var kindNames = [...]string{"", "parameter", "time_of_day", "threat_score", "user_permission",
	"time_context", "agent_role", "invoking_user_attribute", "data_classification", "expr", "findings",
	"session", "tool_sink"}

// String returns the key that introduces the kind.
func (k ConditionKind) String() string {
	if int(k) < len(kindNames) && k != 0 {
		return kindNames[k]
	}
	return fmt.Sprintf("ConditionKind(%d)", uint8(k))
}

// Condition is one item of a rule's conditions list. Exactly one of the kind fields is set,
// the one Kind names.
type Condition struct {
	Pos  Pos
	Kind ConditionKind

	Parameter          *ParameterCond
	TimeOfDay          *TimeOfDayCond
	ThreatScore        *threat.Level
	UserPermission     *UserPermissionCond
	TimeContext        *TimeContextCond
	AgentRole          *AgentRoleCond
	UserAttribute      *UserAttributeCond
	DataClassification *DataClassificationCond
	Expr               *ExprCond
	Findings           []string
	Session            *SessionCond
	ToolSink           string
}

// SessionCond tests what the call's session has seen: every label of HasSeen, and a
// classification at or above MaxClassificationSeen. Both given: both must hold.
type SessionCond struct {
	HasSeen               []string
	MaxClassificationSeen string
}

// ParameterCond tests one parameter. All operators given must hold.
type ParameterCond struct {
	Path      string   // as written, e.g. "filter.region"
	Match     *Pattern // RE2, unanchored as written
	NotMatch  *Pattern
	MaxValue  *Number // inclusive, compared exactly
	MinValue  *Number // inclusive, compared exactly
	OneOf     []any   // scalars: string, Number, bool
	MaxLength *int    // in characters (Unicode code points)
	Equals    any     // scalar; nil when absent
	HasEquals bool
}

// Clock is a time of day in minutes since midnight (0..1440; 1440 is "24:00", an end only).
type Clock int

// String formats the clock as HH:MM.
func (c Clock) String() string { return fmt.Sprintf("%02d:%02d", int(c)/60, int(c)%60) }

// TimeOfDayCond holds when the request time, in Timezone, is in [Start, End) on one of Days.
type TimeOfDayCond struct {
	Start, End Clock
	Timezone   string         // "" means the policy's time zone
	Days       []time.Weekday // nil means every day
}

// UserPermissionCond holds when "the invoking user has Permission" equals MustHave.
type UserPermissionCond struct {
	Permission string
	MustHave   bool
}

// CallCount is a sliding-window call counter threshold: holds when count > Threshold.
type CallCount struct {
	WindowMinutes int
	Threshold     int
}

// TimeContextCond is (UnusualHour OR OrCallCountExceeds) AND CallCountExceeds, absent parts omitted.
type TimeContextCond struct {
	UnusualHour        *bool
	OrCallCountExceeds *CallCount
	CallCountExceeds   *CallCount
}

// AgentRoleCond holds when the agent has Role and, if Permission is set, that permission
// through the role or directly.
type AgentRoleCond struct {
	Role       string
	Permission string
}

// UserAttributeCond holds when the user's Attribute contains the value of parameter Parameter.
type UserAttributeCond struct {
	Attribute string
	Parameter string
}

// DataClassificationCond holds when Level (or the tool's declared level when Level is "tool") is
// at or below the invoking user's clearance.
type DataClassificationCond struct {
	Level   string
	Against string // always "user_clearance"
}

// ExprCond is a CEL expression; ReadsThreat is set when it reads the `threat` variable.
type ExprCond struct {
	Source      string
	ReadsThreat bool
	compiled    *compiledExpr
}

// ---------------------------------------------------------------------------------------------
// Requests and decisions.

// Request is one tool call in its Go form. The evaluator only reads it.
type Request struct {
	Agent Agent
	User  *User // nil: no invoking user (has no permissions, attributes or clearance)
	Tool  string
	// Params are the call's arguments as decoded from JSON: map[string]any, []any, string,
	// json.Number (decode with UseNumber: a float64 has already rounded a large integer),
	// float64, bool, nil (int, int64, uint64 and []string are accepted too).
	Params map[string]any
	Time   time.Time // zero means now
	// Threat is the inspection engine's level for this call; Findings the finding kinds it reported.
	Threat   threat.Level
	Findings []string
	// ToolClassification overrides the policy's declared classification of the tool ("" = none).
	ToolClassification string
	// Session is what the call's session has seen (nil: nothing).
	Session *Session
	// History supplies call counts and the hour baseline; nil means no earlier calls, no baseline.
	History History
	// Display, when set, gives the value Explain quotes for the parameter at path instead of the
	// one in Params: the parameters as records and approvers may see them, with secrets and
	// personal data replaced. Conditions always test Params; only the explanation's text changes.
	Display func(path []string) any
}

// Session is what a call's session has seen before it: label names (ClassificationLabel and a
// level for a classification) and, per label, where it came from (Sources[i] for Labels[i], for
// explanations; may be shorter).
type Session struct {
	ID      string
	Labels  []string
	Sources []string
}

// Agent is the authenticated agent.
type Agent struct {
	ID          string
	Roles       []string
	Permissions []string
	// RolePermissions lists what each role grants (filled by the identity layer); agent_role's
	// has_permission holds through it or through Permissions.
	RolePermissions map[string][]string
}

// User is the invoking user.
type User struct {
	ID          string
	Permissions []string
	// Attributes are strings or lists of strings; "clearance" is read by data_classification.
	Attributes map[string][]string
}

// History is what the policy engine needs from behaviour tracking. The behaviour package
// implements it; the CLI implements it over a request's `calls` list.
type History interface {
	// CallCount returns how many EARLIER calls this agent made to tool in the window
	// (now-window, now]; the engine adds one for the call being decided.
	CallCount(tool string, window time.Duration, now time.Time) int
	// UnusualHour reports whether the agent has a learned baseline of the hours it acts in and,
	// if so, whether t is an hour it rarely acts in. What "learned" and "rarely" mean belongs to
	// the implementation: the gateway's behaviour tracker (docs/behavior.md) or, for policy eval,
	// CallList (BaselineMinCalls and RareHourShare).
	UnusualHour(t time.Time) (unusual, learned bool)
}

// CallList's learned-baseline rule for "unusual hour": once the list holds at least
// BaselineMinCalls calls the baseline is learned, and an hour of day (UTC) holding less than
// RareHourShare of them is rare.
const (
	BaselineMinCalls = 200
	RareHourShare    = 0.01
)

// Decision is the result of the hot path: the decision, the deciding rule and what to do.
type Decision struct {
	Action Action
	// Rule is the deciding rule's name; "" when the default action or the unknown-agent rule decided.
	Rule string
	// Enforcement is the policy's enforcement action for Action (e.g. log_and_queue_for_approval).
	Enforcement string
	// RuleEnforcement is the deciding rule's refinement (e.g. require_human_approval), if any.
	RuleEnforcement string
	// Approval is the deciding CONSTRAIN rule's approval terms (zero: defaults).
	Approval ApprovalSettings
}

// Explanation is a decision with every rule considered (its tool matched) and each condition's
// result. It is for the audit record and for people, never for the agent.
type Explanation struct {
	Decision
	Reason string      // "rule", "default_action", "unknown_agent"
	Rules  []RuleTrace `json:"rules"`
	// WouldHave is the decision had the dry-run rules been enforced, when it differs from Decision.
	WouldHave *Decision `json:"would_have,omitempty"`
}

// RuleTrace is one considered rule.
type RuleTrace struct {
	Rule       string           `json:"rule"`
	Pos        string           `json:"pos"`
	Action     Action           `json:"action"`
	Threat     bool             `json:"threat,omitempty"`
	DryRun     bool             `json:"dry_run,omitempty"`
	Applies    bool             `json:"applies"`
	Conditions []ConditionTrace `json:"conditions"`
}

// ConditionTrace is one condition's result.
type ConditionTrace struct {
	Kind   string `json:"kind"`
	Pos    string `json:"pos"`
	Result bool   `json:"result"`
	Detail string `json:"detail,omitempty"`
	Error  string `json:"error,omitempty"`
}
