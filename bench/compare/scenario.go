// Package compare benchmarks the Portcullis policy engine against OPA (Rego, prepared query) and
// cedar-go on equivalent policies. It is a nested module so that OPA and cedar-go never enter the
// product's go.mod; nothing in the product may import it.
//
// A Scenario is a small engine-neutral description of a policy (rules over tool patterns and
// parameter / time conditions). From it the package renders the same policy as Portcullis YAML,
// Rego and Cedar, and evaluates it directly (the oracle) so that every engine's decisions can be
// checked against the same reference before anything is timed.
package compare

import (
	"fmt"
	"regexp"
	"strings"
)

// Action is a rule's effect. The comparison uses only ALLOW and DENY: Cedar has no notion of
// CONSTRAIN or LOG, so scenarios stay inside what all three engines can express.
type Action string

// Actions used by the scenarios.
const (
	Allow Action = "ALLOW"
	Deny  Action = "DENY"
)

// CondKind says which kind of condition a Cond is.
type CondKind int

// Condition kinds. Each has a direct form in every engine except Regex in Cedar, which has no
// regular expressions (see Cond.Pattern).
const (
	// Enum: the string parameter is one of Values (Portcullis: match "^(a|b)$").
	Enum CondKind = iota
	// Regex: the string parameter matches Pattern (RE2, unanchored as written).
	Regex
	// Max: the numeric parameter is ≤ Max.
	Max
	// Window: the request time, in TZ, is in [Start, End) minutes after midnight.
	Window
)

// Cond is one condition of a rule.
type Cond struct {
	Kind    CondKind
	Param   string
	Values  []string // Enum
	Pattern string   // Regex
	Max     int64    // Max
	// Window
	TZ         string
	Start, End int // minutes after midnight
	re         *regexp.Regexp
}

// Rule is one rule: it applies when Tool (an RE2 pattern matched against the whole tool name)
// matches and every condition holds.
type Rule struct {
	Name   string
	Tool   string
	Exact  bool     // Tool is a plain name (no regex metacharacters)
	Globs  []string // Cedar `like` patterns equivalent to Tool when !Exact
	Action Action
	Conds  []Cond
	toolRE *regexp.Regexp
}

// Scenario is a policy with default DENY and a generator of requests that exercise it.
type Scenario struct {
	Name  string
	Agent string
	Rules []Rule
	// Gen makes the i-th random request (deterministic in its *rand.Rand).
	gen func(r *randSource) Request
	// The oracle's index: rules by exact tool name, and the indices of pattern rules.
	byTool   map[string][]int
	patterns []int
}

// compile prepares the oracle's regular expressions.
func (s *Scenario) compile() {
	s.byTool = map[string][]int{}
	for i := range s.Rules {
		r := &s.Rules[i]
		r.toolRE = regexp.MustCompile(`^(?:` + r.Tool + `)$`)
		if r.Exact {
			s.byTool[r.Tool] = append(s.byTool[r.Tool], i)
		} else {
			s.patterns = append(s.patterns, i)
		}
		for j := range r.Conds {
			c := &r.Conds[j]
			switch c.Kind {
			case Regex:
				c.re = regexp.MustCompile(c.Pattern)
			case Enum:
				c.re = regexp.MustCompile(enumPattern(c.Values))
			}
		}
	}
}

func enumPattern(vals []string) string {
	q := make([]string, len(vals))
	for i, v := range vals {
		q[i] = regexp.QuoteMeta(v)
	}
	return "^(" + strings.Join(q, "|") + ")$"
}

// Seed is the seed document's first policy (report-generator-v1) without its threat-score rule:
// the comparison engines have no CONSTRAIN, and the threat rule never applies at threat level none.
func Seed() *Scenario {
	s := &Scenario{
		Name:  "seed",
		Agent: "report-generator-v1",
		Rules: []Rule{
			{Name: "read_sales_data", Tool: "fetch_sales_data", Exact: true, Action: Allow, Conds: []Cond{
				{Kind: Enum, Param: "query_type", Values: []string{"monthly", "quarterly", "annual"}},
				{Kind: Max, Param: "date_range_days", Max: 90},
				{Kind: Window, TZ: "America/New_York", Start: 9 * 60, End: 17 * 60},
			}},
			{Name: "read_customer_list", Tool: "fetch_customer_names", Exact: true, Action: Allow, Conds: []Cond{
				{Kind: Max, Param: "limit", Max: 1000},
			}},
			{Name: "write_report", Tool: "save_report", Exact: true, Action: Allow, Conds: []Cond{
				{Kind: Regex, Param: "file_path", Pattern: `^/reports/[a-z0-9_-]+\.pdf$`},
				{Kind: Max, Param: "file_size_bytes", Max: 10485760},
			}},
			{Name: "delete_operations", Tool: "delete_file", Exact: true, Action: Deny},
		},
		gen: genSeed,
	}
	s.compile()
	return s
}

// Exact is n rules over exact tool names: nine in ten are ALLOW rules with a numeric limit, every
// tenth is a DENY rule on the previous rule's tool that applies for some regions, so DENY really
// overrides ALLOW.
func Exact(n int) *Scenario {
	s := &Scenario{Name: fmt.Sprintf("exact-%d", n), Agent: "bench-agent"}
	for i := range n {
		if i%10 == 9 {
			s.Rules = append(s.Rules, Rule{
				Name: fmt.Sprintf("deny_%05d", i), Tool: exactTool(i - 1), Exact: true, Action: Deny,
				Conds: []Cond{{Kind: Enum, Param: "region", Values: []string{"eu", "apac"}}},
			})
			continue
		}
		s.Rules = append(s.Rules, Rule{
			Name: fmt.Sprintf("allow_%05d", i), Tool: exactTool(i), Exact: true, Action: Allow,
			Conds: []Cond{{Kind: Max, Param: "limit", Max: int64(i*7%100 + 1)}},
		})
	}
	s.gen = func(r *randSource) Request { return genExact(r, n) }
	s.compile()
	return s
}

func exactTool(i int) string { return fmt.Sprintf("tool_%05d", i) }

// RegexTools is n rules whose tool patterns are regular expressions: ALLOW rules for
// "nsNNN_(read|list|get)_.*" with a numeric limit, and every tenth a DENY rule "nsNNN_.*_admin"
// overlapping them. Each pattern has an exact Cedar equivalent as a disjunction of `like` globs.
func RegexTools(n int) *Scenario {
	s := &Scenario{Name: fmt.Sprintf("regex-%d", n), Agent: "bench-agent"}
	for i := range n {
		ns := fmt.Sprintf("ns%03d", i)
		if i%10 == 9 {
			ns = fmt.Sprintf("ns%03d", i-1)
			s.Rules = append(s.Rules, Rule{
				Name: fmt.Sprintf("deny_admin_%04d", i), Tool: ns + `_.*_admin`,
				Globs: []string{ns + "_*_admin"}, Action: Deny,
			})
			continue
		}
		s.Rules = append(s.Rules, Rule{
			Name: fmt.Sprintf("allow_%04d", i), Tool: ns + `_(read|list|get)_.*`,
			Globs:  []string{ns + "_read_*", ns + "_list_*", ns + "_get_*"},
			Action: Allow,
			Conds:  []Cond{{Kind: Max, Param: "limit", Max: int64(i*13%200 + 1)}},
		})
	}
	s.gen = func(r *randSource) Request { return genRegex(r, n) }
	s.compile()
	return s
}

// Scenarios is every scenario of the comparison, in the order the docs list them.
func Scenarios() []*Scenario {
	return []*Scenario{Seed(), Exact(10), Exact(100), Exact(1000), Exact(10000), RegexTools(1000)}
}
