// Package approval owns CONSTRAIN's human approval: the durable approval request, the approver
// rules (scope, no self-approval, no agent approvers, N-of-M), expiry, the single-use grant that
// lets exactly one re-evaluated call run, long-polling for a resolution, the events the caller
// writes to the ledger, the signed webhook that announces new requests, and the dry-run
// (shadow) helper for decisions.
//
// It declares the interfaces it consumes — Store, Recorder, Notifier, Announcer — and the
// caller (the guard pipeline, the composition root) supplies them. It must not import HTTP
// servers, MCP, SQL drivers, the policy engine or the ledger; it may import net/http only as a
// webhook client. Stores live in internal/store/..., pointing inward at Store.
package approval

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/portcullis-ai/portcullis/internal/inspect"
	"github.com/portcullis-ai/portcullis/internal/threat"
)

// State is where an approval request is in its lifecycle:
//
//	pending ──► approved ──► consumed
//	   │            │
//	   ├──► denied  └──► expired (grant unused in time)
//	   └──► expired
//
// denied, expired and consumed are final.
type State string

const (
	Pending  State = "pending"
	Approved State = "approved"
	Denied   State = "denied"
	Expired  State = "expired"
	Consumed State = "consumed"
)

// Final reports whether no transition leaves s.
func (s State) Final() bool { return s == Denied || s == Expired || s == Consumed }

// Valid reports whether s is one of the five states.
func (s State) Valid() bool {
	switch s {
	case Pending, Approved, Denied, Expired, Consumed:
		return true
	}
	return false
}

// Defaults and bounds for per-rule settings.
const (
	DefaultExpiry   = 15 * time.Minute // how long a request may stay pending
	DefaultGrantTTL = 15 * time.Minute // how long an approved grant may wait to be redeemed
	MaxRequired     = 10               // upper bound on N in N-of-M
	MaxComment      = 4096             // bytes of an approver's comment
)

// Sentinel errors callers branch on. The HTTP layer maps them to status codes and stable codes
// (see Code).
var (
	ErrNotFound      = errors.New("approval: request not found")
	ErrExists        = errors.New("approval: request already exists")
	ErrInvalid       = errors.New("approval: invalid request")
	ErrConflict      = errors.New("approval: request changed concurrently")
	ErrFinal         = errors.New("approval: request already resolved") // approve/deny on a non-pending request
	ErrPending       = errors.New("approval: request still pending")
	ErrDenied        = errors.New("approval: request denied")
	ErrExpired       = errors.New("approval: request expired")
	ErrConsumed      = errors.New("approval: grant already used")
	ErrMismatch      = errors.New("approval: call does not match the grant")
	ErrSelfApproval  = errors.New("approval: approver invoked the request")
	ErrAgentApprover = errors.New("approval: agent identities cannot approve")
	ErrOutOfScope    = errors.New("approval: approver not scoped for this agent or tool")
	ErrDuplicateVote = errors.New("approval: approver already voted")
	ErrRecord        = errors.New("approval: recording the event failed")
	// ErrTooManyPending refuses a new request from an agent that already has the most pending
	// requests it may have (WithMaxPendingPerAgent).
	ErrTooManyPending = errors.New("approval: too many pending requests for this agent")
)

// CodeTooManyPending is Code(ErrTooManyPending); the guard denies the call with it too.
const CodeTooManyPending = "too_many_pending_approvals"

// Code returns a stable string code for err, for API responses and ledger records.
func Code(err error) string {
	for _, c := range []struct {
		err  error
		code string
	}{
		{ErrNotFound, "not_found"}, {ErrExists, "exists"}, {ErrInvalid, "invalid"}, {ErrCanonical, "invalid"},
		{ErrConflict, "conflict"}, {ErrFinal, "already_resolved"}, {ErrPending, "pending"},
		{ErrDenied, "denied"}, {ErrExpired, "expired"}, {ErrConsumed, "consumed"},
		{ErrMismatch, "mismatch"}, {ErrSelfApproval, "self_approval"},
		{ErrAgentApprover, "agent_approver"}, {ErrOutOfScope, "out_of_scope"},
		{ErrDuplicateVote, "duplicate_vote"}, {ErrRecord, "record_failed"},
		{ErrTooManyPending, CodeTooManyPending},
	} {
		if errors.Is(err, c.err) {
			return c.code
		}
	}
	if err == nil {
		return ""
	}
	return "internal"
}

// Condition is one condition of the constraining rule and its result, as the policy engine
// explained it. Text is the condition as written (or a rendering of it).
type Condition struct {
	Text   string `json:"text"`
	Result bool   `json:"result"`
}

// Signal is one behaviour signal (anomaly) that contributed to the decision.
type Signal struct {
	Name   string  `json:"name"`
	Score  float64 `json:"score"`
	Detail string  `json:"detail,omitempty"`
}

// Vote is one approver's approval or denial.
type Vote struct {
	Approver string    `json:"approver"`
	Approve  bool      `json:"approve"`
	Comment  string    `json:"comment,omitempty"`
	At       time.Time `json:"at"`
}

// Request is a durable approval request: everything an approver needs to decide, the binding
// of the grant, and the lifecycle state.
type Request struct {
	ID         string `json:"id"`
	DecisionID string `json:"decision_id"`

	Agent        string `json:"agent"`
	User         string `json:"user,omitempty"`
	UserVerified bool   `json:"user_verified"` // false: the agent asserted the user; true: a credential proved it
	Tool         string `json:"tool"`

	// Params is the redacted parameters, canonical JSON, for approvers' eyes. ParamsDigest is the
	// digest of the real parameters' canonical form (see Digest); the grant binds the latter.
	Params       json.RawMessage `json:"params"`
	ParamsDigest string          `json:"params_digest"`

	Rule          string            `json:"rule"`
	Conditions    []Condition       `json:"conditions,omitempty"`
	ThreatLevel   threat.Level      `json:"threat_level"`
	Findings      []inspect.Finding `json:"findings,omitempty"`
	Signals       []Signal          `json:"signals,omitempty"`
	PolicyVersion string            `json:"policy_version"`
	Required      int               `json:"required_approvals"` // N of N-of-M
	GrantTTL      time.Duration     `json:"grant_ttl"`
	Labels        map[string]string `json:"labels,omitempty"` // free-form context (originating system, session)

	CreatedAt time.Time `json:"created_at"`
	ExpiresAt time.Time `json:"expires_at"` // a pending request expires here

	State State  `json:"state"`
	Votes []Vote `json:"votes,omitempty"`
	// ResolvedAt/ResolvedBy/Comment describe the transition out of pending (approved, denied,
	// expired); ResolvedBy is "" for expiry.
	ResolvedAt     time.Time `json:"resolved_at,omitzero"`
	ResolvedBy     string    `json:"resolved_by,omitempty"`
	Comment        string    `json:"comment,omitempty"`
	GrantExpiresAt time.Time `json:"grant_expires_at,omitzero"` // set on approval
	ConsumedAt     time.Time `json:"consumed_at,omitzero"`
	// ConsumedPolicyVersion is the policy version under which the grant was redeemed.
	ConsumedPolicyVersion string `json:"consumed_policy_version,omitempty"`

	// Revision counts committed changes; stores use it for compare-and-set.
	Revision int64 `json:"revision"`
}

// Approvals counts the approving votes.
func (r *Request) Approvals() int {
	n := 0
	for _, v := range r.Votes {
		if v.Approve {
			n++
		}
	}
	return n
}

// Clone returns a deep copy, so a stored value can never be changed through a returned one.
func (r Request) Clone() Request {
	c := r
	c.Params = append(json.RawMessage(nil), r.Params...)
	c.Conditions = append([]Condition(nil), r.Conditions...)
	c.Findings = append([]inspect.Finding(nil), r.Findings...)
	c.Signals = append([]Signal(nil), r.Signals...)
	c.Votes = append([]Vote(nil), r.Votes...)
	if r.Labels != nil {
		c.Labels = make(map[string]string, len(r.Labels))
		for k, v := range r.Labels {
			c.Labels[k] = v
		}
	}
	return c
}

// Validate checks the invariants every stored request satisfies; stores call it before writing.
func (r *Request) Validate() error {
	switch {
	case r.ID == "":
		return fmt.Errorf("%w: empty id", ErrInvalid)
	case r.Agent == "":
		return fmt.Errorf("%w: empty agent", ErrInvalid)
	case r.Tool == "":
		return fmt.Errorf("%w: empty tool", ErrInvalid)
	case len(r.Params) == 0:
		return fmt.Errorf("%w: no parameters to show approvers", ErrInvalid)
	case len(r.ParamsDigest) != len(DigestPrefix)+64 || r.ParamsDigest[:len(DigestPrefix)] != DigestPrefix:
		return fmt.Errorf("%w: malformed params digest %q", ErrInvalid, r.ParamsDigest)
	case r.Required < 1 || r.Required > MaxRequired:
		return fmt.Errorf("%w: required approvals %d outside 1..%d", ErrInvalid, r.Required, MaxRequired)
	case !r.State.Valid():
		return fmt.Errorf("%w: state %q", ErrInvalid, r.State)
	case !r.ExpiresAt.After(r.CreatedAt):
		return fmt.Errorf("%w: expiry %v not after creation %v", ErrInvalid, r.ExpiresAt, r.CreatedAt)
	case r.GrantTTL <= 0:
		return fmt.Errorf("%w: grant ttl %v", ErrInvalid, r.GrantTTL)
	case r.State == Approved && r.GrantExpiresAt.IsZero():
		return fmt.Errorf("%w: approved without a grant expiry", ErrInvalid)
	case r.State == Consumed && r.ConsumedAt.IsZero():
		return fmt.Errorf("%w: consumed without a time", ErrInvalid)
	}
	return nil
}
