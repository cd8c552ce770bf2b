package compare

import (
	"context"
	"fmt"

	"github.com/portcullis-ai/portcullis/internal/policy"
)

// Portcullis is the product's engine: the scenario's YAML parsed and compiled into a policy.Set.
type Portcullis struct {
	set   *policy.Set
	agent string
}

var _ Engine = (*Portcullis)(nil)

// NewPortcullis parses and compiles the scenario's YAML with the Portcullis engine.
func NewPortcullis(s *Scenario) (*Portcullis, error) {
	f, err := policy.Parse(s.Name+".yaml", []byte(s.YAML()))
	if err != nil {
		return nil, fmt.Errorf("parse portcullis policy for %s: %w", s.Name, err)
	}
	set, err := policy.Compile(f)
	if err != nil {
		return nil, fmt.Errorf("compile portcullis policy for %s: %w", s.Name, err)
	}
	return &Portcullis{set: set, agent: s.Agent}, nil
}

// Name implements Engine.
func (*Portcullis) Name() string { return "portcullis" }

// Prepare builds the request in its Go form (policy.Request), which is what the engine's hot path
// takes: the targets are stated "for a compiled policy and a request already in its Go form".
func (p *Portcullis) Prepare(req Request) (any, error) {
	params := make(map[string]any, len(req.Params))
	for k, v := range req.Params {
		params[k] = v
	}
	return &policy.Request{Agent: policy.Agent{ID: p.agent}, Tool: req.Tool, Params: params, Time: req.Time}, nil
}

// Decide implements Engine.
func (p *Portcullis) Decide(_ context.Context, input any) (Action, error) {
	req, ok := input.(*policy.Request)
	if !ok {
		return Deny, ErrBadInput
	}
	switch d := p.set.Evaluate(req); d.Action {
	case policy.Allow:
		return Allow, nil
	case policy.Deny:
		return Deny, nil
	default:
		return Deny, fmt.Errorf("portcullis: unexpected decision %s", d.Action)
	}
}
