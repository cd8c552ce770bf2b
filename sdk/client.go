// Package sdk is the public Go client of the Portcullis decision API, for orchestrators that run
// tools themselves: ask before every tool call (Decide), report what happened (Outcome), and let
// the gateway inspect the result before the model sees it.
//
// It must not import anything under internal/: other modules import it.
package sdk

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/portcullis-ai/portcullis/sdk/httpsig"
)

// Decisions, as the API spells them.
const (
	Allow     = "ALLOW"
	Deny      = "DENY"
	Constrain = "CONSTRAIN"
	Log       = "LOG"
)

// Client talks to one Portcullis gateway as one agent. It is safe for concurrent use.
type Client struct {
	base string
	http *http.Client
	// exactly one of apiKey, bearer and signer authenticates requests
	apiKey string
	bearer string
	signer *httpsig.Signer
	agent  string

	// tokens remembers the outcome tokens of allowed decisions until their outcome is
	// answered, so that Outcome sends them without the caller's help.
	tokens outcomeTokens
}

// maxRememberedTokens bounds the outcome tokens a Client keeps for decisions whose outcome it
// has not reported; past it the oldest are forgotten (pass OutcomeRequest.OutcomeToken then).
const maxRememberedTokens = 10_000

type outcomeTokens struct {
	mu    sync.Mutex
	byID  map[string]string
	order []string
}

func (t *outcomeTokens) remember(id, token string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.byID == nil {
		t.byID = map[string]string{}
	}
	if len(t.order) >= 2*maxRememberedTokens {
		// Most of order was reported and forgotten: keep only what is still remembered.
		live := make([]string, 0, len(t.byID))
		for _, o := range t.order {
			if _, ok := t.byID[o]; ok {
				live = append(live, o)
			}
		}
		t.order = live
	}
	for len(t.order) > 0 && len(t.byID) >= maxRememberedTokens {
		delete(t.byID, t.order[0])
		t.order = t.order[1:]
	}
	if _, ok := t.byID[id]; !ok {
		t.order = append(t.order, id)
	}
	t.byID[id] = token
}

func (t *outcomeTokens) lookup(id string) string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.byID[id]
}

func (t *outcomeTokens) forget(id string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.byID, id) // its place in order goes when it comes first
}

// Option configures a Client.
type Option func(*Client)

// WithAPIKey authenticates with a Portcullis API key (pcl_...).
func WithAPIKey(key string) Option { return func(c *Client) { c.apiKey = key } }

// WithBearerToken authenticates with a JWT from a trusted issuer.
func WithBearerToken(token string) Option { return func(c *Client) { c.bearer = token } }

// WithSigner signs every request (RFC 9421, Ed25519, with Content-Digest).
func WithSigner(s *httpsig.Signer) Option { return func(c *Client) { c.signer = s } }

// WithAgentID sends the agent's ID with each decision; the gateway refuses the request if it is
// not the agent the credential authenticates (a guard against wiring the wrong key).
func WithAgentID(id string) Option { return func(c *Client) { c.agent = id } }

// WithHTTPClient replaces the default HTTP client (30 s timeout).
func WithHTTPClient(h *http.Client) Option { return func(c *Client) { c.http = h } }

// New returns a client for the gateway at baseURL (e.g. "http://127.0.0.1:8080").
func New(baseURL string, opts ...Option) *Client {
	c := &Client{base: strings.TrimRight(baseURL, "/"), http: &http.Client{Timeout: 30 * time.Second}}
	for _, o := range opts {
		o(c)
	}
	return c
}

// User is an invoking user asserted by an agent that the gateway trusts to assert users.
type User struct {
	ID          string              `json:"id"`
	Permissions []string            `json:"permissions,omitempty"`
	Attributes  map[string][]string `json:"attributes,omitempty"`
}

// DecideRequest asks whether a tool call may run.
type DecideRequest struct {
	Tool   string `json:"tool"`
	Params any    `json:"params"`
	// UserToken is the invoking user's token from the organisation's identity provider.
	UserToken string `json:"user_token,omitempty"`
	// User is an asserted user (only for agents trusted to assert users).
	User *User `json:"user,omitempty"`
	// ApprovalID resumes a call that a CONSTRAIN decision held for approval.
	ApprovalID string `json:"approval_id,omitempty"`
	// WaitSeconds, with ApprovalID, waits (bounded by the gateway) for the approval to resolve.
	WaitSeconds int    `json:"wait_seconds,omitempty"`
	RequestID   string `json:"request_id,omitempty"`
	// SessionID names the session (the conversation, the task) the call belongs to: what the
	// agent has seen in it so far is decided on. Empty: the agent's default session.
	SessionID string `json:"session_id,omitempty"`
}

// Decision is the gateway's answer. Run the tool only when Allowed() is true.
type Decision struct {
	Decision   string `json:"decision"`
	DecisionID string `json:"decision_id"`
	Message    string `json:"message,omitempty"`
	ApprovalID string `json:"approval_id,omitempty"`
	// OutcomeToken, on ALLOW and LOG, binds this decision's outcome to it at any replica of the
	// gateway. Outcome sends it by itself when the same Client made the decision; an
	// orchestrator that reports from elsewhere passes it in OutcomeRequest.OutcomeToken.
	OutcomeToken string `json:"outcome_token,omitempty"`
}

// Allowed reports whether the tool may run (ALLOW or LOG).
func (d *Decision) Allowed() bool { return d.Decision == Allow || d.Decision == Log }

// Pending reports whether the call waits for a human's approval.
func (d *Decision) Pending() bool { return d.Decision == Constrain }

// Error is an error answer from the gateway. Every error answer is a denial.
type Error struct {
	Status     int
	Code       string
	Message    string
	DecisionID string
}

func (e *Error) Error() string {
	return fmt.Sprintf("portcullis: %d %s: %s", e.Status, e.Code, e.Message)
}

// Decide asks the gateway about one tool call. A transport failure or an error answer returns an
// error and a nil Decision: treat both as a denial (fail closed).
func (c *Client) Decide(ctx context.Context, req DecideRequest) (*Decision, error) {
	body := struct {
		AgentID string `json:"agent_id,omitempty"`
		DecideRequest
	}{c.agent, req}
	if body.Params == nil {
		body.Params = map[string]any{}
	}
	var d Decision
	if err := c.post(ctx, "/v1/decide", body, &d); err != nil {
		return nil, err
	}
	if d.Allowed() && d.OutcomeToken != "" {
		c.tokens.remember(d.DecisionID, d.OutcomeToken)
	}
	return &d, nil
}

// BatchResult is one call's answer in a batch: a Decision, or the error /v1/decide would have
// answered for that call alone (then Decision is nil: treat it as a denial).
type BatchResult struct {
	Decision *Decision
	Err      error
}

// MaxBatchCalls is the most calls the gateway decides in one batch.
const MaxBatchCalls = 64

// DecideBatch asks the gateway about several tool calls in one authenticated request (parallel
// tool calls of one model turn): each is decided, recorded and answered on its own, in order.
// WaitSeconds is not allowed in a batch. An error (transport, authentication, a malformed batch)
// means no call was decided: treat every call as denied.
func (c *Client) DecideBatch(ctx context.Context, reqs []DecideRequest) ([]BatchResult, error) {
	if len(reqs) == 0 || len(reqs) > MaxBatchCalls {
		return nil, fmt.Errorf("portcullis: a batch holds 1 to %d calls, got %d", MaxBatchCalls, len(reqs))
	}
	type call struct {
		DecideRequest
		WaitSeconds int `json:"wait_seconds,omitempty"`
	}
	calls := make([]call, len(reqs))
	for i, r := range reqs {
		if r.WaitSeconds != 0 {
			return nil, fmt.Errorf("portcullis: call %d: wait_seconds is not allowed in a batch", i)
		}
		if r.Params == nil {
			r.Params = map[string]any{}
		}
		calls[i] = call{DecideRequest: r}
	}
	body := struct {
		AgentID string `json:"agent_id,omitempty"`
		Calls   []call `json:"calls"`
	}{c.agent, calls}
	var resp struct {
		Results []struct {
			Status int `json:"status"`
			Decision
			Error *struct {
				Code    string `json:"code"`
				Message string `json:"message"`
			} `json:"error"`
		} `json:"results"`
	}
	if err := c.post(ctx, "/v1/decide/batch", body, &resp); err != nil {
		return nil, err
	}
	if len(resp.Results) != len(reqs) {
		return nil, fmt.Errorf("portcullis: %d answers for %d calls", len(resp.Results), len(reqs))
	}
	out := make([]BatchResult, len(reqs))
	for i, r := range resp.Results {
		if r.Status != http.StatusOK || r.Error != nil {
			e := &Error{Status: r.Status, DecisionID: r.DecisionID}
			if r.Error != nil {
				e.Code, e.Message = r.Error.Code, r.Error.Message
			}
			out[i].Err = e
			continue
		}
		d := r.Decision
		out[i].Decision = &d
	}
	return out, nil
}

// OutcomeRequest reports what happened after an allowed decision.
type OutcomeRequest struct {
	DecisionID string `json:"decision_id"`
	// OutcomeToken is the decision's Decision.OutcomeToken; when empty, the one this Client
	// received with the decision is sent.
	OutcomeToken string `json:"outcome_token,omitempty"`
	Ran          bool   `json:"ran"`
	Success      bool   `json:"success"`
	Error        string `json:"error,omitempty"`
	DurationMS   int64  `json:"duration_ms,omitempty"`
	// Result, when set, is inspected before the model sees it (indirect prompt injection, secrets, PII).
	Result any `json:"result,omitempty"`
	// SessionID, when set, must be the session of the decision (DecideRequest.SessionID).
	SessionID string `json:"session_id,omitempty"`
}

// OutcomeResult says what to do with the result: "pass" (unchanged), "redact" (use Result) or
// "block" (do not give the result to the model).
type OutcomeResult struct {
	DecisionID string          `json:"decision_id"`
	Action     string          `json:"action"`
	Result     json.RawMessage `json:"result,omitempty"`
}

// Outcome reports a tool's outcome and returns the gateway's verdict on its result.
// The decision's outcome token is sent with it (see OutcomeRequest.OutcomeToken).
func (c *Client) Outcome(ctx context.Context, req OutcomeRequest) (*OutcomeResult, error) {
	if req.OutcomeToken == "" {
		req.OutcomeToken = c.tokens.lookup(req.DecisionID)
	}
	var r OutcomeResult
	err := c.post(ctx, "/v1/outcome", req, &r)
	if err == nil || IsDenied(err) {
		// Answered: a decision has one outcome. After a transport failure the token is kept
		// for a retry.
		c.tokens.forget(req.DecisionID)
	}
	if err != nil {
		return nil, err
	}
	return &r, nil
}

func (c *Client) post(ctx context.Context, path string, in, out any) error {
	body, err := json.Marshal(in)
	if err != nil {
		return fmt.Errorf("portcullis: encode request: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+path, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("portcullis: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	switch {
	case c.apiKey != "":
		req.Header.Set("Authorization", "Bearer "+c.apiKey)
	case c.bearer != "":
		req.Header.Set("Authorization", "Bearer "+c.bearer)
	}
	if c.signer != nil {
		if err := c.signer.Sign(req, body); err != nil {
			return fmt.Errorf("portcullis: sign request: %w", err)
		}
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("portcullis: %w", err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return fmt.Errorf("portcullis: read answer: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			DecisionID string `json:"decision_id"`
			Error      struct {
				Code    string `json:"code"`
				Message string `json:"message"`
			} `json:"error"`
		}
		_ = json.Unmarshal(raw, &e) // a non-JSON error answer keeps its status only
		return &Error{Status: resp.StatusCode, Code: e.Error.Code, Message: e.Error.Message, DecisionID: e.DecisionID}
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return fmt.Errorf("portcullis: decode answer: %w", err)
	}
	return nil
}

// IsDenied reports whether err is an error answer from the gateway (as opposed to a transport
// failure). Either way the call must not run.
func IsDenied(err error) bool {
	var e *Error
	return errors.As(err, &e)
}
