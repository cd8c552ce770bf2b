package app

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"

	"github.com/portcullis-ai/portcullis/internal/config"
	"github.com/portcullis-ai/portcullis/internal/gateway/llm"
	"github.com/portcullis-ai/portcullis/internal/guard"
	"github.com/portcullis-ai/portcullis/internal/identity"
	"github.com/portcullis-ai/portcullis/internal/policy"
)

// UserTokenHeader carries the invoking user's token on model calls through the LLM gateway (the
// provider formats have no place for it).
const UserTokenHeader = "X-Portcullis-User-Token"

// llmRoutes mounts the LLM gateway's endpoints when upstreams are configured.
func (a *App) llmRoutes(cfg config.LLMConfig) (func(*http.ServeMux), error) {
	if len(cfg.Upstreams) == 0 {
		return nil, nil
	}
	ups := map[llm.Format]llm.Upstream{}
	for name, u := range cfg.Upstreams {
		ups[llm.Format(name)] = llm.Upstream{BaseURL: u.BaseURL, APIKey: os.Getenv(u.APIKeyEnv), Headers: u.Headers}
	}
	gw, err := llm.New(llm.Config{Upstreams: ups, Timeout: cfg.Timeout, StreamIdleTimeout: cfg.StreamIdleTimeout,
		MaxRequestBytes: cfg.MaxRequestBytes}, &llmChecker{a: a})
	if err != nil {
		return nil, fmt.Errorf("llm gateway: %w", err)
	}
	return func(mux *http.ServeMux) {
		for _, p := range []string{"/v1/chat/completions", "/v1/responses", "/v1/messages"} {
			mux.Handle("POST "+p, gw)
		}
	}, nil
}

// llmChecker answers the LLM gateway's questions with the decision pipeline.
type llmChecker struct{ a *App }

var _ llm.Checker = (*llmChecker)(nil)

type llmPrincipal struct {
	agent     *identity.Agent
	userToken string
}

var errNoPrincipal = errors.New("llm: caller was not authenticated by this checker")

func principal(c llm.Caller) (*llmPrincipal, error) {
	p, ok := c.Principal.(*llmPrincipal)
	if !ok || p == nil || p.agent == nil {
		return nil, errNoPrincipal
	}
	return p, nil
}

func (c *llmChecker) Authenticate(r *http.Request) (llm.Caller, error) {
	var body []byte
	if r.Header.Get("Signature-Input") != "" {
		// A signed request binds its body (Content-Digest): read it to verify, then hand the
		// same bytes on to the gateway.
		b, err := io.ReadAll(io.LimitReader(r.Body, llm.DefaultMaxRequestBytes+1))
		if err != nil {
			return llm.Caller{}, fmt.Errorf("read body: %w", err)
		}
		body = b
		r.Body = io.NopCloser(bytes.NewReader(b))
	}
	agent, err := c.a.guard.Authenticate(r.Context(), "llm", identity.CredentialsFromRequest(r, body))
	if errors.Is(err, identity.ErrAmbiguous) {
		return llm.Caller{}, fmt.Errorf("%w: %w", llm.ErrAmbiguousCredentials, err)
	}
	if err != nil {
		return llm.Caller{}, err
	}
	return llm.Caller{AgentID: agent.ID, Principal: &llmPrincipal{agent: agent, userToken: r.Header.Get(UserTokenHeader)}}, nil
}

// AllowedTools offers the model only the tools the agent's policy could ever let it call.
func (c *llmChecker) AllowedTools(_ context.Context, caller llm.Caller, names []string) ([]string, error) {
	set := c.a.policies.Current()
	if set == nil {
		return nil, policy.ErrNoSet
	}
	out := names[:0:0]
	for _, n := range names {
		// A name guard.Check would refuse is not offered: the model could never call it.
		if guard.ValidToolName(n) == nil && set.MayAllow(caller.AgentID, n) {
			out = append(out, n)
		}
	}
	return out, nil
}

func (c *llmChecker) CheckToolCall(ctx context.Context, caller llm.Caller, call llm.ToolCall) (llm.Verdict, error) {
	p, err := principal(caller)
	if err != nil {
		return llm.Verdict{}, err
	}
	d := c.a.guard.Check(ctx, guard.Request{RequestID: call.ModelCallID + "/" + call.CallID, Source: "llm", Agent: p.agent,
		UserToken: p.userToken, Tool: call.Name, Params: call.Arguments,
		// The model cannot carry an approval ID: its identical re-proposal is matched to the
		// approval by the call itself (joins the pending request; redeems the grant once).
		MatchApproval: true})
	// Arguments the guard refused as unreadable (a repeated key: the model's JSON could be read
	// two ways) are denied, and the agent is told the arguments were malformed.
	v := llm.Verdict{DecisionID: d.ID, ApprovalID: d.ApprovalID, Message: d.Message,
		Malformed: d.Code == guard.CodeDuplicateKey || d.Code == guard.CodeMalformed}
	switch d.Action {
	case policy.Allow, policy.Log:
		v.Action = llm.Allow
	case policy.Constrain:
		v.Action = llm.Constrain
	default:
		v.Action = llm.Deny
	}
	return v, nil
}

func (c *llmChecker) InspectContent(ctx context.Context, caller llm.Caller, content llm.Content) (llm.ContentVerdict, error) {
	p, err := principal(caller)
	if err != nil {
		return llm.ContentVerdict{}, err
	}
	cd := c.a.guard.CheckContent(ctx, guard.Content{Source: "llm", Agent: p.agent, Role: content.Role, Text: content.Text,
		Trusted: c.a.cfg.LLMTrusted(content.Role), RequestID: content.ModelCallID}, c.a.resultPolicy())
	if cd.Err != nil {
		return llm.ContentVerdict{}, cd.Err
	}
	switch cd.Action {
	case guard.ResultPass:
		return llm.ContentVerdict{Action: llm.Pass}, nil
	case guard.ResultRedact:
		return llm.ContentVerdict{Action: llm.Redact, Text: cd.Text, DecisionID: cd.ID}, nil
	default:
		return llm.ContentVerdict{Action: llm.Block, DecisionID: cd.ID, Message: "the conversation carries content the gateway does not forward"}, nil
	}
}
