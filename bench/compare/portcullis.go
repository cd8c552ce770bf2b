package compare

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/portcullis-ai/portcullis/internal/jsonx"
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

// Prepare builds the request in the Go form the gateway hands the engine: the parameters as JSON,
// decoded the way the gateway decodes them (jsonx.DecodeObject: numbers stay exact json.Number
// text), into a policy.Request. The issue's targets are stated "for a compiled policy and a
// request already in its Go form".
func (p *Portcullis) Prepare(req Request) (any, error) {
	raw, err := json.Marshal(req.Params)
	if err != nil {
		return nil, fmt.Errorf("portcullis: encode params: %w", err)
	}
	params, err := jsonx.DecodeObject(raw)
	if err != nil {
		return nil, fmt.Errorf("portcullis: decode params: %w", err)
	}
	return &policy.Request{Agent: policy.Agent{ID: p.agent}, Tool: req.Tool, Params: params, Time: req.Time}, nil
}

// Decide implements Engine with what the gateway's policy step runs for every call: the decision
// (Set.Decide) and then the conditions its decision record quotes, with their details
// (Verdict.Conditions) — not the bare evaluator, so the figures are the ones a deployment gets.
func (p *Portcullis) Decide(_ context.Context, input any) (Action, error) {
	req, ok := input.(*policy.Request)
	if !ok {
		return Deny, ErrBadInput
	}
	v := p.set.Decide(req)
	v.Conditions(req, func(policy.RecordedCondition) {}) // the details are built before the call
	switch v.Action {
	case policy.Allow:
		return Allow, nil
	case policy.Deny:
		return Deny, nil
	default:
		return Deny, fmt.Errorf("portcullis: unexpected decision %s", v.Action)
	}
}
