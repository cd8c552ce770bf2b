package policy

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/common/types"
	"go.yaml.in/yaml/v3"

	"github.com/portcullis-ai/portcullis/internal/threat"
)

// CEL `expr` conditions see these variables:
//
//	agent   map: id (string), roles, permissions (lists of strings)
//	user    map: id, permissions, attributes (map of string → list of strings); empty map when no user
//	tool    string
//	params  map: the call's parameters as decoded from JSON
//	threat  map: level (string), rank (int, none=0 … critical=4), findings (list of strings)
//	time    timestamp of the request
//
// An expression is compiled and type-checked at load time and must have type bool.
const celCostLimit = 100_000

var celEnvs = sync.OnceValues(func() (*[2]*cel.Env, error) {
	mapT := cel.MapType(cel.StringType, cel.DynType)
	base := []cel.EnvOption{
		cel.Variable("agent", mapT),
		cel.Variable("user", mapT),
		cel.Variable("tool", cel.StringType),
		cel.Variable("params", mapT),
		cel.Variable("time", cel.TimestampType),
		cel.ParserExpressionSizeLimit(DefaultLimits.MaxExprBytes),
		cel.ParserRecursionLimit(64),
	}
	withThreat, err := cel.NewEnv(append(base, cel.Variable("threat", mapT))...)
	if err != nil {
		return nil, fmt.Errorf("build CEL environment: %w", err)
	}
	noThreat, err := cel.NewEnv(base...)
	if err != nil {
		return nil, fmt.Errorf("build CEL environment: %w", err)
	}
	return &[2]*cel.Env{withThreat, noThreat}, nil
})

// compiledExpr is a checked, planned CEL program.
type compiledExpr struct {
	prog cel.Program
}

func (p *parser) expr(n *yaml.Node, path, src string) *ExprCond {
	if len(src) > DefaultLimits.MaxExprBytes {
		p.errorf(n, path, "move the logic into several conditions", "expression is %d bytes, more than the limit of %d", len(src), DefaultLimits.MaxExprBytes)
		return nil
	}
	envs, err := celEnvs()
	if err != nil {
		p.errorf(n, path, "", "%v", err)
		return nil
	}
	ast, iss := envs[0].Compile(src)
	if iss != nil && iss.Err() != nil {
		msg := strings.ReplaceAll(strings.TrimSpace(iss.Err().Error()), "\n", " | ")
		p.errorf(n, path, "variables: agent, user, tool, params, threat, time; see docs/policy-language.md", "CEL expression does not compile: %s", msg)
		return nil
	}
	if !ast.OutputType().IsExactType(cel.BoolType) {
		p.errorf(n, path, "compare explicitly, e.g. params.flag == true or size(params.items) > 3", "CEL expression has type %s, want bool", ast.OutputType())
		return nil
	}
	// An expression that also compiles without the `threat` variable does not read it.
	_, iss2 := envs[1].Compile(src)
	readsThreat := iss2 != nil && iss2.Err() != nil
	prog, err := envs[0].Program(ast, cel.CostLimit(celCostLimit), cel.EvalOptions(cel.OptOptimize))
	if err != nil {
		p.errorf(n, path, "", "CEL expression cannot be planned: %v", err)
		return nil
	}
	return &ExprCond{Source: src, ReadsThreat: readsThreat, compiled: &compiledExpr{prog: prog}}
}

// celActivation resolves the CEL variables lazily from a request, so that a variable the
// expression does not read costs nothing.
type celActivation struct {
	req      *Request
	now      time.Time
	rank     int      // threat rank to present (the monotone closure may lower it)
	findings []string // findings to present
	cache    [6]any   // resolved values
	done     [6]bool
}

var celNames = [...]string{"agent", "user", "tool", "params", "threat", "time"}

func (a *celActivation) Parent() cel.Activation { return nil }

func (a *celActivation) ResolveName(name string) (any, bool) {
	for i, n := range celNames {
		if n != name {
			continue
		}
		if !a.done[i] {
			a.cache[i] = a.resolve(i)
			a.done[i] = true
		}
		return a.cache[i], true
	}
	return nil, false
}

func strs(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func (a *celActivation) resolve(i int) any {
	r := a.req
	switch i {
	case 0:
		return map[string]any{"id": r.Agent.ID, "roles": strs(r.Agent.Roles), "permissions": strs(r.Agent.Permissions)}
	case 1:
		if r.User == nil {
			return map[string]any{}
		}
		attrs := make(map[string]any, len(r.User.Attributes))
		for k, v := range r.User.Attributes {
			attrs[k] = strs(v)
		}
		return map[string]any{"id": r.User.ID, "permissions": strs(r.User.Permissions), "attributes": attrs}
	case 2:
		return r.Tool
	case 3:
		if r.Params == nil {
			return map[string]any{}
		}
		p, _ := celParams(r.Params)
		return p
	case 4:
		lvl := ""
		if a.rank >= 0 && a.rank < len(levelNames) {
			lvl = levelNames[a.rank]
		}
		return map[string]any{"level": lvl, "rank": int64(a.rank), "findings": strs(a.findings)}
	case 5:
		return a.now
	}
	return nil
}

var levelNames = [...]string{"none", "low", "medium", "high", "critical"}

// evalExpr runs the program once. A runtime error (a missing key, a type mismatch, the cost
// limit) is returned to the caller, which applies the fail-closed rule.
func evalExpr(ce *compiledExpr, act *celActivation) (bool, error) {
	out, _, err := ce.prog.Eval(act)
	if err != nil {
		return false, err
	}
	b, ok := out.(types.Bool)
	if !ok {
		return false, fmt.Errorf("expression returned %s, not bool", out.Type())
	}
	return bool(b), nil
}

// maxClosureFindings bounds the monotone closure over finding subsets (2^n evaluations).
const maxClosureFindings = 4

// evalCond evaluates a CEL condition. An expression that does not read `threat` is evaluated
// once. One that does is evaluated as its monotone closure: it holds when it holds (or fails) at
// the call's threat rank and findings or at any lower rank and subset of findings. So a higher
// threat level or more findings can only make it hold more often, which keeps the invariant
// "threat signals only tighten" true for any expression, e.g. `threat.rank < 2`. Beyond
// maxClosureFindings distinct findings the closure is not computed and the condition counts as
// failed to evaluate (errored), which tightens.
func evalCond(cc *ccond, req *Request, now time.Time) (ok, errored bool) {
	top := min(int(req.Threat), int(threat.Critical)) // a level beyond the scale reads as critical
	act := &celActivation{req: req, now: now, rank: top, findings: req.Findings}
	res, err := evalExpr(cc.expr, act)
	if err != nil {
		return false, true
	}
	if res || !cc.src.Expr.ReadsThreat {
		return res, false
	}
	kinds := dedupe(req.Findings)
	if len(kinds) > maxClosureFindings {
		return false, true
	}
	for rank := top; rank >= 0; rank-- {
		for mask := 0; mask < 1<<len(kinds); mask++ {
			if rank == top && mask == 1<<len(kinds)-1 {
				continue // the point already evaluated
			}
			sub := make([]string, 0, len(kinds))
			for i, k := range kinds {
				if mask&(1<<i) != 0 {
					sub = append(sub, k)
				}
			}
			a := &celActivation{req: req, now: now, rank: rank, findings: sub}
			r, err := evalExpr(cc.expr, a)
			if err != nil {
				return false, true
			}
			if r {
				return true, false
			}
		}
	}
	return false, false
}

func dedupe(in []string) []string {
	out := make([]string, 0, len(in))
	for _, s := range in {
		if !hasString(out, s) {
			out = append(out, s)
		}
	}
	return out
}

// celParams is the params as CEL reads them: a json.Number becomes a CEL double, as numbers
// decoded to float64 always were. Maps and lists are copied only when they hold a json.Number, so
// a request without numbers costs nothing. (CEL compares doubles; the exact operators are
// max_value, min_value, equals and one_of.)
func celParams(v any) (any, bool) {
	switch x := v.(type) {
	case json.Number:
		f, err := strconv.ParseFloat(string(x), 64)
		if err != nil && !errors.Is(err, strconv.ErrRange) {
			return string(x), true // not a number: CEL sees the text, and a numeric test errors
		}
		return f, true
	case map[string]any:
		var out map[string]any
		for k, e := range x {
			c, changed := celParams(e)
			if !changed {
				continue
			}
			if out == nil {
				out = maps.Clone(x)
			}
			out[k] = c
		}
		return orig(out, x), out != nil
	case []any:
		var out []any
		for i, e := range x {
			c, changed := celParams(e)
			if !changed {
				continue
			}
			if out == nil {
				out = slices.Clone(x)
			}
			out[i] = c
		}
		return orig(out, x), out != nil
	}
	return v, false
}

func orig[T map[string]any | []any](out, in T) any {
	if out == nil {
		return in
	}
	return out
}
