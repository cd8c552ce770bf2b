package compare

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cedar-policy/cedar-go"
	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/topdown/cache"
)

// Engine is one policy engine compiled for one scenario. Prepare turns a neutral request into the
// engine's native input, outside any timed loop; Decide is the timed decision.
type Engine interface {
	Name() string
	Prepare(req Request) (any, error)
	Decide(ctx context.Context, input any) (Action, error)
}

// ErrBadInput is returned when Decide is given an input another engine prepared.
var ErrBadInput = errors.New("compare: input was not prepared by this engine")

// OPA evaluates the scenario's Rego with a prepared query (compiled once) and a pre-parsed input.
type OPA struct {
	pq    rego.PreparedEvalQuery
	cache cache.InterQueryValueCache
}

var _ Engine = (*OPA)(nil)

// NewOPA compiles the scenario's Rego module. It gives OPA an inter-query built-in value cache
// large enough for every pattern, as `opa run` does with caching configured: without it OPA's
// global regex cache holds 100 patterns and recompiles on every miss, which would make the
// 1,000-regex scenario measure regexp.Compile rather than OPA.
func NewOPA(ctx context.Context, s *Scenario) (*OPA, error) {
	cfg, err := cache.ParseCachingConfig([]byte(`{"inter_query_builtin_value_cache":{"max_num_entries":100000}}`))
	if err != nil {
		return nil, fmt.Errorf("opa cache config: %w", err)
	}
	pq, err := rego.New(
		rego.Query("data.portcullis.decision"),
		rego.Module(s.Name+".rego", s.Rego()),
	).PrepareForEval(ctx)
	if err != nil {
		return nil, fmt.Errorf("prepare rego for %s: %w", s.Name, err)
	}
	// A prepared query does not keep the cache given to rego.New: it must be passed to each Eval.
	return &OPA{pq: pq, cache: cache.NewInterQueryValueCache(ctx, cfg)}, nil
}

// Name implements Engine.
func (*OPA) Name() string { return "opa" }

// Prepare converts the request into an ast.Value once, so the timed loop does not pay for it.
func (*OPA) Prepare(req Request) (any, error) {
	params := make(map[string]any, len(req.Params))
	for k, v := range req.Params {
		params[k] = v
	}
	v, err := ast.InterfaceToValue(map[string]any{"tool": req.Tool, "params": params, "time_ns": req.Time.UnixNano()})
	if err != nil {
		return nil, fmt.Errorf("opa input: %w", err)
	}
	return v, nil
}

// Decide implements Engine.
func (o *OPA) Decide(ctx context.Context, input any) (Action, error) {
	v, ok := input.(ast.Value)
	if !ok {
		return Deny, ErrBadInput
	}
	rs, err := o.pq.Eval(ctx, rego.EvalParsedInput(v), rego.EvalInterQueryBuiltinValueCache(o.cache))
	if err != nil {
		return Deny, fmt.Errorf("opa eval: %w", err)
	}
	if len(rs) != 1 || len(rs[0].Expressions) != 1 {
		return Deny, fmt.Errorf("opa eval: unexpected result %v", rs)
	}
	switch rs[0].Expressions[0].Value {
	case "ALLOW":
		return Allow, nil
	case "DENY":
		return Deny, nil
	}
	return Deny, fmt.Errorf("opa eval: unexpected decision %v", rs[0].Expressions[0].Value)
}

// Cedar evaluates the scenario's Cedar policies with cedar-go.
type Cedar struct {
	ps    *cedar.PolicySet
	s     *Scenario
	loc   *time.Location
	agent cedar.EntityUID
}

var _ Engine = (*Cedar)(nil)

// NewCedar parses the scenario's Cedar policies.
func NewCedar(s *Scenario) (*Cedar, error) {
	ps, err := cedar.NewPolicySetFromBytes(s.Name+".cedar", []byte(s.Cedar()))
	if err != nil {
		return nil, fmt.Errorf("parse cedar for %s: %w", s.Name, err)
	}
	c := &Cedar{ps: ps, s: s, loc: time.UTC, agent: cedar.NewEntityUID("Agent", cedar.String(s.Agent))}
	for _, r := range s.Rules {
		for _, cd := range r.Conds {
			if cd.Kind == Window {
				if c.loc, err = time.LoadLocation(cd.TZ); err != nil {
					return nil, fmt.Errorf("cedar time zone: %w", err)
				}
			}
		}
	}
	return c, nil
}

// Name implements Engine.
func (*Cedar) Name() string { return "cedar" }

// Prepare builds the cedar.Request, including the two things Cedar cannot compute itself: the
// local minute of day and the result of each regex parameter condition (see Scenario.Cedar).
func (c *Cedar) Prepare(req Request) (any, error) {
	params := cedar.RecordMap{}
	for k, v := range req.Params {
		switch v := v.(type) {
		case int64:
			params[cedar.String(k)] = cedar.Long(v)
		case string:
			params[cedar.String(k)] = cedar.String(v)
		case bool:
			params[cedar.String(k)] = cedar.Boolean(v)
		default:
			return nil, fmt.Errorf("cedar input: parameter %s of type %T", k, v)
		}
	}
	lt := req.Time.In(c.loc)
	ctx := cedar.RecordMap{
		"tool":         cedar.String(req.Tool),
		"params":       cedar.NewRecord(params),
		"local_minute": cedar.Long(lt.Hour()*60 + lt.Minute()),
	}
	k := 0
	for _, r := range c.s.Rules {
		for _, cd := range r.Conds {
			if cd.Kind != Regex {
				continue
			}
			v, ok := req.Params[cd.Param].(string)
			ctx[cedar.String(fmt.Sprintf("re%d", k))] = cedar.Boolean(ok && cd.re.MatchString(v))
			k++
		}
	}
	return &cedar.Request{
		Principal: c.agent,
		Action:    cedar.NewEntityUID("Action", "call"),
		Resource:  cedar.NewEntityUID("Tool", cedar.String(req.Tool)),
		Context:   cedar.NewRecord(ctx),
	}, nil
}

// Decide implements Engine.
func (c *Cedar) Decide(_ context.Context, input any) (Action, error) {
	req, ok := input.(*cedar.Request)
	if !ok {
		return Deny, ErrBadInput
	}
	d, diag := c.ps.IsAuthorized(nil, *req)
	_ = diag // errors in a policy mean "does not apply" in Cedar, the same as a false condition here
	if d == cedar.Allow {
		return Allow, nil
	}
	return Deny, nil
}

// Oracle is the scenario's reference semantics as an Engine, for the equivalence check.
type Oracle struct{ s *Scenario }

var _ Engine = Oracle{}

// Name implements Engine.
func (Oracle) Name() string { return "oracle" }

// Prepare implements Engine.
func (Oracle) Prepare(req Request) (any, error) { return req, nil }

// Decide implements Engine.
func (o Oracle) Decide(_ context.Context, input any) (Action, error) {
	req, ok := input.(Request)
	if !ok {
		return Deny, ErrBadInput
	}
	return o.s.Decide(req), nil
}
