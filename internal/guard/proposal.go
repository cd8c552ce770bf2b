package guard

import (
	"context"
	"fmt"

	"github.com/portcullis-ai/portcullis/internal/identity"
)

// CodeNotProposed is the stable code of a call refused under require_proposal: no model response
// in its session proposed it (or its proposal was used, or is too old).
const CodeNotProposed = "not_proposed"

// SourceLLM is the Source of calls a model proposed through the LLM gateway.
const SourceLLM = "llm"

// proposedCall names one call for the proposal store: the tool and the digest of its
// arguments (canonical: key order and spacing do not matter).
func proposedCall(req Request, p *callParams) (string, error) {
	digest, err := p.paramsDigest()
	if err != nil {
		return "", err
	}
	return req.Tool + "\x00" + digest, nil
}

// LinkSession names the agent's session by alias (a Responses response ID), so that a later
// model call naming only the alias is decided in that session. Without a session store it does
// nothing.
func (g *Guard) LinkSession(ctx context.Context, agent *identity.Agent, alias, session string) error {
	if g.links == nil {
		return nil
	}
	if agent == nil {
		return fmt.Errorf("guard: session link for no authenticated agent")
	}
	return g.links.LinkSession(ctx, agent.ID, alias, session, g.now())
}

// LinkedSession returns the session alias names for the agent; ok is false when none does.
func (g *Guard) LinkedSession(ctx context.Context, agent *identity.Agent, alias string) (session string, ok bool, err error) {
	if g.links == nil {
		return "", false, nil
	}
	if agent == nil {
		return "", false, fmt.Errorf("guard: session link for no authenticated agent")
	}
	return g.links.LinkedSession(ctx, agent.ID, alias, g.now())
}
