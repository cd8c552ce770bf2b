package compare

import (
	"context"
	"errors"
)

// Portcullis is the product's engine. Placeholder until the policy package lands.
type Portcullis struct{ s *Scenario }

// NewPortcullis compiles the scenario's YAML with the Portcullis engine.
func NewPortcullis(s *Scenario) (*Portcullis, error) { return nil, errors.New("not yet") }

// Name implements Engine.
func (*Portcullis) Name() string { return "portcullis" }

// Prepare implements Engine.
func (*Portcullis) Prepare(req Request) (any, error) { return req, nil }

// Decide implements Engine.
func (*Portcullis) Decide(context.Context, any) (Action, error) { return Deny, nil }
