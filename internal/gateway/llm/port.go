package llm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/portcullis-ai/portcullis/internal/guard"
	"github.com/portcullis-ai/portcullis/internal/identity"
)

// UserTokenHeader carries the invoking user's token on model calls through the LLM gateway (the
// provider formats have no place for it).
const UserTokenHeader = "X-Portcullis-User-Token"

// SessionHeader names the session a model call belongs to (docs/sessions.md): the tool calls the
// model proposes are decided under what that session has seen. An agent that also works through
// the MCP gateway passes its MCP session ID here, so both gateways serve one session. It is
// never forwarded to the provider.
const SessionHeader = "Portcullis-Session"

// Guarded is the Checker of a gateway in front of the guard's port: every question goes to the
// guard — authentication (a failure recorded), the tools offered (narrowed by the policy, and
// recorded when narrowed), each proposed call (guard.Check, its approval matched by the call
// itself, as the model cannot carry an approval ID) and each piece of conversation text
// (guard.CheckContent under the guard's result policy). trusted reports the roles whose text the
// operator wrote (llm.trusted_roles); nil trusts none. obs is told what was decided, for the
// metrics and logs the decision API keeps of its own decisions.
func Guarded(p guard.Port, trusted func(role string) bool, obs Observers) Checker {
	if trusted == nil {
		trusted = func(string) bool { return false }
	}
	return &portChecker{p: p, trusted: trusted, obs: obs}
}

// Observers are told what the guard decided on the LLM path; nil fields are not called.
type Observers struct {
	// Decision is each proposed tool call's decision and the time it took.
	Decision func(ctx context.Context, d *guard.Decision, elapsed time.Duration)
	// Content is the action taken on each piece of conversation text (pass, redact, block).
	Content func(action string)
}

type portChecker struct {
	p       guard.Port
	trusted func(role string) bool
	obs     Observers
}

// principal is the Caller's Principal: the agent the guard authenticated and the user's token.
type principal struct {
	agent     *identity.Agent
	userToken string
}

var errNoPrincipal = errors.New("llm: caller was not authenticated by this checker")

func principalOf(c Caller) (*principal, error) {
	p, ok := c.Principal.(*principal)
	if !ok || p == nil || p.agent == nil {
		return nil, errNoPrincipal
	}
	return p, nil
}

func (c *portChecker) Authenticate(r *http.Request) (Caller, error) {
	var body []byte
	if r.Header.Get("Signature-Input") != "" {
		// A signed request binds its body (Content-Digest): read it to verify, then hand the
		// same bytes on to the gateway.
		b, err := io.ReadAll(io.LimitReader(r.Body, DefaultMaxRequestBytes+1))
		if err != nil {
			return Caller{}, fmt.Errorf("read body: %w", err)
		}
		body = b
		r.Body = io.NopCloser(bytes.NewReader(b))
	}
	agent, err := c.p.Authenticate(r.Context(), "llm", identity.CredentialsFromRequest(r, body))
	if errors.Is(err, identity.ErrAmbiguous) {
		return Caller{}, fmt.Errorf("%w: %w", ErrAmbiguousCredentials, err)
	}
	if err != nil {
		return Caller{}, err
	}
	return Caller{AgentID: agent.ID, Session: r.Header.Get(SessionHeader), Principal: &principal{agent: agent, userToken: r.Header.Get(UserTokenHeader)}}, nil
}

// AllowedTools offers the model only the tools the agent's policy could ever let it call.
func (c *portChecker) AllowedTools(ctx context.Context, caller Caller, names []string) ([]string, error) {
	p, err := principalOf(caller)
	if err != nil {
		return nil, err
	}
	return c.p.VisibleTools(ctx, guard.Listing{Source: "llm", Agent: p.agent, Tools: names})
}

func (c *portChecker) CheckToolCall(ctx context.Context, caller Caller, call ToolCall) (Verdict, error) {
	p, err := principalOf(caller)
	if err != nil {
		return Verdict{}, err
	}
	start := time.Now()
	d := c.p.Check(ctx, guard.Request{RequestID: call.ModelCallID + "/" + call.CallID, Source: "llm", Agent: p.agent,
		UserToken: p.userToken, Tool: call.Name, Params: call.Arguments, Session: caller.Session,
		// The model cannot carry an approval ID: its identical re-proposal is matched to the
		// approval by the call itself (joins the pending request; redeems the grant once).
		MatchApproval: true})
	if c.obs.Decision != nil {
		c.obs.Decision(ctx, d, time.Since(start))
	}
	// Arguments the guard refused as unreadable (a repeated key: the model's JSON could be read
	// two ways) are denied, and the agent is told the arguments were malformed.
	v := Verdict{DecisionID: d.ID, ApprovalID: d.ApprovalID, Message: d.Message,
		Malformed: d.Code == guard.CodeDuplicateKey || d.Code == guard.CodeMalformed}
	switch {
	case d.Allowed():
		v.Action = Allow
	case d.Pending():
		v.Action = Constrain
	default:
		v.Action = Deny
	}
	return v, nil
}

func (c *portChecker) InspectContent(ctx context.Context, caller Caller, content Content) (ContentVerdict, error) {
	p, err := principalOf(caller)
	if err != nil {
		return ContentVerdict{}, err
	}
	// The record names the tool call a result answers, so it links to that call's own record
	// (whose request ID is "<model call>/<tool call id>").
	rid := content.ModelCallID
	if content.ToolCallID != "" {
		rid += "/" + content.ToolCallID
	}
	cd := c.p.CheckContent(ctx, guard.Content{Source: "llm", Agent: p.agent, Role: content.Role, Text: content.Text,
		Trusted: c.trusted(content.Role), RequestID: rid, Record: content.New && content.Role == "tool",
		Session: caller.Session, UserToken: p.userToken})
	if cd.Err != nil {
		return ContentVerdict{}, cd.Err
	}
	if c.obs.Content != nil {
		c.obs.Content(string(cd.Action))
	}
	switch cd.Action {
	case guard.ResultPass:
		return ContentVerdict{Action: Pass}, nil
	case guard.ResultRedact:
		return ContentVerdict{Action: Redact, Text: cd.Text, DecisionID: cd.ID}, nil
	default:
		return ContentVerdict{Action: Block, DecisionID: cd.ID, Message: "the conversation carries content the gateway does not forward"}, nil
	}
}

var _ Conversations = (*portChecker)(nil)

// LinkResponse implements Conversations.
func (c *portChecker) LinkResponse(ctx context.Context, caller Caller, responseID string) error {
	p, err := principalOf(caller)
	if err != nil {
		return err
	}
	return c.p.LinkSession(ctx, p.agent, responseID, caller.Session)
}

// ContinuedSession implements Conversations.
func (c *portChecker) ContinuedSession(ctx context.Context, caller Caller, responseID string) (string, bool, error) {
	p, err := principalOf(caller)
	if err != nil {
		return "", false, err
	}
	return c.p.LinkedSession(ctx, p.agent, responseID)
}
