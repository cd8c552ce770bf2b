package policy

// Static analysis of parsed policies (`portcullis policy lint`). Every check is syntactic or
// decides over finite sets, so it never guesses: a finding is always true of the policy, but a
// clean result does not prove the absence of every dead or redundant rule (regular-expression
// inclusion in general is not checked). docs/policy-lint.md lists the codes.

import (
	"fmt"
	"regexp"
	"regexp/syntax"
	"slices"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/portcullis-ai/portcullis/internal/threat"
)

// LintSeverity ranks a lint finding.
type LintSeverity uint8

// Severities, from the least to the most serious. Only warnings and errors fail `policy lint`.
const (
	LintInfo    LintSeverity = iota // harmless but pointless; worth knowing
	LintWarning                     // a rule that cannot do what its author meant
	LintError                       // a rule that opens a door deny-by-default meant to keep shut
)

var lintSeverityNames = [...]string{"info", "warning", "error"}

// String returns the lower-case name.
func (s LintSeverity) String() string {
	if int(s) < len(lintSeverityNames) {
		return lintSeverityNames[s]
	}
	return fmt.Sprintf("LintSeverity(%d)", uint8(s))
}

// ParseLintSeverity reads a severity name.
func ParseLintSeverity(s string) (LintSeverity, error) {
	for i, n := range lintSeverityNames {
		if strings.EqualFold(s, n) {
			return LintSeverity(i), nil
		}
	}
	return LintInfo, fmt.Errorf("unknown severity %q (want info, warning or error)", s)
}

// Lint codes. They are stable: scripts and suppressions refer to them.
const (
	LintMinAboveMax   = "PL001" // min_value above max_value on one parameter
	LintEmptyWindow   = "PL002" // time_of_day with start equal to end, or an empty days list
	LintMaxLength     = "PL003" // max_length negative, or shorter than every allowed value
	LintUnsatisfiable = "PL004" // string tests no value satisfies
	LintTypeConflict  = "PL005" // string tests and number tests on one parameter
	LintShadowed      = "PL006" // another rule decides every request this one would
	LintAllowAll      = "PL007" // ALLOW every tool without conditions
	LintPointlessDeny = "PL008" // DENY rule that can never change a decision under default DENY
	LintNoThreatRule  = "PL009" // ALLOW with no threat rule while inspection.request_block_level is none
)

// LintOptions tell lint what of the gateway's configuration the policies rely on.
type LintOptions struct {
	// RequestBlockLevel is the gateway's inspection.request_block_level. At threat.None no call
	// is denied for its inspection alone, so a policy that allows calls and has no rule reading
	// the threat level lets every attack the detectors find through (PL009).
	RequestBlockLevel threat.Level
}

// DefaultLintOptions are the gateway's defaults (request_block_level: critical).
var DefaultLintOptions = LintOptions{RequestBlockLevel: threat.Critical}

// LintFinding is one problem lint found.
type LintFinding struct {
	Pos      Pos
	Code     string
	Severity LintSeverity
	Agent    string
	Rule     string
	Message  string
	Hint     string
}

// String formats the finding as "file:line:col: CODE severity: message".
func (f LintFinding) String() string {
	return fmt.Sprintf("%s: %s %s: %s", f.Pos, f.Code, f.Severity, f.Message)
}

// Lint analyses parsed policy files under DefaultLintOptions and returns its findings ordered by
// position.
func Lint(files ...*File) []LintFinding { return LintWith(DefaultLintOptions, files...) }

// LintWith analyses parsed policy files for a gateway configured as o.
func LintWith(o LintOptions, files ...*File) []LintFinding {
	var out []LintFinding
	for _, f := range files {
		for _, p := range f.Policies {
			out = append(out, lintPolicy(p)...)
			if o.RequestBlockLevel == threat.None {
				out = append(out, lintNoThreatRule(p)...)
			}
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		a, b := out[i].Pos, out[j].Pos
		if a.File != b.File {
			return a.File < b.File
		}
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		if a.Col != b.Col {
			return a.Col < b.Col
		}
		return out[i].Code < out[j].Code
	})
	return out
}

// linter holds per-policy state: compiled whole-name tool patterns, by source.
type linter struct {
	p     *Policy
	out   []LintFinding
	whole map[string]*regexp.Regexp
	part  map[string]*regexp.Regexp
}

func lintPolicy(p *Policy) []LintFinding {
	l := &linter{p: p, whole: map[string]*regexp.Regexp{}, part: map[string]*regexp.Regexp{}}
	dead := make([]bool, len(p.Rules))
	for i, r := range p.Rules {
		dead[i] = l.neverApplies(r)
	}
	for i, r := range p.Rules {
		if !dead[i] {
			l.shadowed(i, dead)
		}
		l.allowAll(r)
		if !dead[i] {
			l.pointlessDeny(i)
		}
	}
	return l.out
}

func (l *linter) add(pos Pos, code string, sev LintSeverity, r *Rule, hint, format string, args ...any) {
	name := ""
	if r != nil {
		name = r.Name
	}
	l.out = append(l.out, LintFinding{Pos: pos, Code: code, Severity: sev, Agent: l.p.AgentID, Rule: name,
		Message: fmt.Sprintf(format, args...), Hint: hint})
}

// ---------------------------------------------------------------------------------------------
// PL001–PL005: rules that can never apply.

// neverApplies reports (and returns) whether some condition, or a combination of conditions on
// one parameter, can never hold, so the rule can never apply.
func (l *linter) neverApplies(r *Rule) bool {
	dead := false
	byPath := map[string][]*Condition{}
	var paths []string
	for _, c := range r.Conditions {
		switch c.Kind {
		case KindTimeOfDay:
			if t := c.TimeOfDay; t != nil {
				if t.Start == t.End {
					l.add(c.Pos, LintEmptyWindow, LintWarning, r, "a window is [start, end): make end later than start, or start > end to wrap past midnight",
						"rule %q never applies: time_of_day %s–%s is empty", r.Name, t.Start, t.End)
					dead = true
				} else if t.Days != nil && len(t.Days) == 0 {
					l.add(c.Pos, LintEmptyWindow, LintWarning, r, "list at least one day, or drop days for every day",
						"rule %q never applies: time_of_day has an empty days list", r.Name)
					dead = true
				}
			}
		case KindParameter:
			if pc := c.Parameter; pc != nil {
				if _, seen := byPath[pc.Path]; !seen {
					paths = append(paths, pc.Path)
				}
				byPath[pc.Path] = append(byPath[pc.Path], c)
			}
		}
	}
	for _, path := range paths {
		if l.paramNeverHolds(r, path, byPath[path]) {
			dead = true
		}
	}
	if !dead && l.windowsDisjoint(r) {
		dead = true
	}
	return dead
}

// windowsDisjoint finds two time_of_day conditions of one rule, in the same zone and neither
// wrapping past midnight, that no instant satisfies together: their [start, end) ranges do not
// meet, or both list days and share none.
func (l *linter) windowsDisjoint(r *Rule) bool {
	var seen []*Condition
	for _, c := range r.Conditions {
		t := c.TimeOfDay
		if c.Kind != KindTimeOfDay || t == nil || t.Start >= t.End {
			continue
		}
		for _, o := range seen {
			u := o.TimeOfDay
			if u.Timezone != t.Timezone {
				continue
			}
			hoursMiss := max(t.Start, u.Start) >= min(t.End, u.End)
			daysMiss := t.Days != nil && u.Days != nil && !slices.ContainsFunc(t.Days, func(d time.Weekday) bool { return slices.Contains(u.Days, d) })
			if hoursMiss || daysMiss {
				what := fmt.Sprintf("%s–%s and %s–%s do not overlap", u.Start, u.End, t.Start, t.End)
				if !hoursMiss {
					what = "their days do not overlap"
				}
				l.add(c.Pos, LintEmptyWindow, LintWarning, r, "all conditions must hold at once: merge the windows into one, or split the rule in two",
					"rule %q never applies: two time_of_day windows (lines %d and %d): %s", r.Name, o.Pos.Line, c.Pos.Line, what)
				return true
			}
		}
		seen = append(seen, c)
	}
	return false
}

// paramNeverHolds checks the conditions of one rule that test one parameter path. A value (or,
// for an array, each element) must pass every operator of every such condition, so their
// constraints combine.
func (l *linter) paramNeverHolds(r *Rule, path string, conds []*Condition) bool {
	var (
		lo, hi         *Number // nil: unbounded
		loPos, hiPos   Pos
		strTest        *Condition
		numTest        *Condition
		matches        []*Condition
		notMatches     = map[string]bool{}
		last           = conds[len(conds)-1]
		finite         []any // nil: unconstrained; candidates otherwise
		finiteSet      bool
		finiteFrom     string
		negativeLength *Condition
	)
	intersect := func(vals []any, from string) {
		if !finiteSet {
			finite, finiteSet, finiteFrom = slices.Clone(vals), true, from
			return
		}
		finite = slices.DeleteFunc(finite, func(v any) bool {
			return !slices.ContainsFunc(vals, func(w any) bool { return scalarEqual(v, w) })
		})
		finiteFrom += " and " + from
	}
	for _, c := range conds {
		pc := c.Parameter
		if pc.MinValue != nil && (lo == nil || pc.MinValue.Cmp(*lo) > 0) {
			lo, loPos = pc.MinValue, c.Pos
		}
		if pc.MaxValue != nil && (hi == nil || pc.MaxValue.Cmp(*hi) < 0) {
			hi, hiPos = pc.MaxValue, c.Pos
		}
		if pc.MinValue != nil || pc.MaxValue != nil {
			numTest = c
		}
		if pc.Match != nil || pc.NotMatch != nil || pc.MaxLength != nil {
			strTest = c
		}
		if pc.MaxLength != nil && *pc.MaxLength < 0 {
			negativeLength = c
		}
		if pc.NotMatch != nil {
			notMatches[pc.NotMatch.Source] = true
		}
		if pc.Match != nil {
			matches = append(matches, c)
			if lang, ok := finiteLanguage(pc.Match.Source); ok {
				vals := make([]any, len(lang))
				for i, s := range lang {
					vals[i] = s
				}
				intersect(vals, fmt.Sprintf("match %q", pc.Match.Source))
			}
		}
		if pc.OneOf != nil {
			intersect(pc.OneOf, "one_of")
		}
		if pc.HasEquals {
			intersect([]any{pc.Equals}, "equals")
		}
	}
	switch {
	case lo != nil && hi != nil && lo.Cmp(*hi) > 0:
		pos := loPos
		if hiPos.Line > pos.Line || (hiPos.Line == pos.Line && hiPos.Col > pos.Col) {
			pos = hiPos
		}
		l.add(pos, LintMinAboveMax, LintWarning, r, "bounds are inclusive: make min_value ≤ max_value",
			"rule %q never applies: parameter %s needs min_value %s > max_value %s", r.Name, path, lo, hi)
		return true
	case negativeLength != nil:
		l.add(negativeLength.Pos, LintMaxLength, LintWarning, r, "max_length counts characters and must be ≥ 0",
			"rule %q never applies: parameter %s has a negative max_length", r.Name, path)
		return true
	case strTest != nil && numTest != nil:
		l.add(last.Pos, LintTypeConflict, LintWarning, r, "match, not_match and max_length test strings; min_value and max_value test numbers: split them by parameter",
			"rule %q never applies: parameter %s must be a string (condition at %d:%d) and a number (condition at %d:%d)",
			r.Name, path, strTest.Pos.Line, strTest.Pos.Col, numTest.Pos.Line, numTest.Pos.Col)
		return true
	}
	for _, c := range matches {
		if notMatches[c.Parameter.Match.Source] {
			l.add(last.Pos, LintUnsatisfiable, LintWarning, r, "no string matches a pattern and fails to match it: remove one of them",
				"rule %q never applies: parameter %s has match and not_match both %q", r.Name, path, c.Parameter.Match.Source)
			return true
		}
	}
	if !finiteSet {
		return false
	}
	// Every value the parameter may take is in finite: test each against every condition, first
	// without max_length and the number bounds, so the finding can name the cause.
	pass := func(withLen, withNum bool) bool {
		for _, v := range finite {
			if l.allHold(conds, v, withLen, withNum) {
				return true
			}
		}
		return false
	}
	switch {
	case !pass(false, false):
		l.add(last.Pos, LintUnsatisfiable, LintWarning, r, "the allowed values and patterns exclude each other: check spelling and anchors",
			"rule %q never applies: no value of parameter %s satisfies %s together with its other tests", r.Name, path, finiteFrom)
		return true
	case !pass(true, false):
		l.add(last.Pos, LintMaxLength, LintWarning, r, "raise max_length or shorten the allowed values",
			"rule %q never applies: every value %s allows for parameter %s is longer than max_length", r.Name, finiteFrom, path)
		return true
	case !pass(true, true):
		l.add(last.Pos, LintMinAboveMax, LintWarning, r, "the number bounds exclude every allowed value",
			"rule %q never applies: no value %s allows for parameter %s is within its number bounds", r.Name, finiteFrom, path)
		return true
	}
	return false
}

// allHold mirrors the evaluator's per-scalar test (ccond.scalarOK) for every condition.
func (l *linter) allHold(conds []*Condition, v any, withLen, withNum bool) bool {
	for _, c := range conds {
		pc := c.Parameter
		if pc.Match != nil || pc.NotMatch != nil || (withLen && pc.MaxLength != nil) {
			s, ok := v.(string)
			if !ok {
				return false
			}
			if pc.Match != nil && !l.partial(pc.Match.Source).MatchString(s) {
				return false
			}
			if pc.NotMatch != nil && l.partial(pc.NotMatch.Source).MatchString(s) {
				return false
			}
			if withLen && pc.MaxLength != nil && utf8.RuneCountInString(s) > *pc.MaxLength {
				return false
			}
		}
		if withNum && (pc.MaxValue != nil || pc.MinValue != nil) {
			if pc.MaxValue != nil {
				if c, ok := cmpNumber(v, pc.MaxValue); !ok || c > 0 {
					return false
				}
			}
			if pc.MinValue != nil {
				if c, ok := cmpNumber(v, pc.MinValue); !ok || c < 0 {
					return false
				}
			}
		}
		if pc.HasEquals && !scalarEqual(v, pc.Equals) {
			return false
		}
		if pc.OneOf != nil && !slices.ContainsFunc(pc.OneOf, func(o any) bool { return scalarEqual(v, o) }) {
			return false
		}
	}
	return true
}

// maxLanguage bounds the strings finiteLanguage enumerates.
const maxLanguage = 256

// finiteLanguage returns every string the pattern can match as a whole, when the pattern is
// anchored at both ends (^…$, \A…\z) and its language is finite and small — literal alternations
// such as ^(monthly|quarterly|annual)$. ok is false otherwise.
func finiteLanguage(src string) ([]string, bool) {
	re, err := syntax.Parse(src, syntax.Perl)
	if err != nil || re.Op != syntax.OpConcat || len(re.Sub) < 2 {
		return nil, false
	}
	first, lastOp := re.Sub[0].Op, re.Sub[len(re.Sub)-1].Op
	if first != syntax.OpBeginText || lastOp != syntax.OpEndText {
		return nil, false
	}
	mid := &syntax.Regexp{Op: syntax.OpConcat, Sub: re.Sub[1 : len(re.Sub)-1]}
	return language(mid)
}

func language(re *syntax.Regexp) ([]string, bool) {
	switch re.Op {
	case syntax.OpEmptyMatch:
		return []string{""}, true
	case syntax.OpLiteral:
		if re.Flags&syntax.FoldCase != 0 {
			return nil, false
		}
		return []string{string(re.Rune)}, true
	case syntax.OpCharClass:
		var out []string
		for i := 0; i+1 < len(re.Rune); i += 2 {
			for c := re.Rune[i]; c <= re.Rune[i+1]; c++ {
				if len(out) >= maxLanguage {
					return nil, false
				}
				out = append(out, string(c))
			}
		}
		return out, true
	case syntax.OpCapture:
		return language(re.Sub[0])
	case syntax.OpQuest:
		sub, ok := language(re.Sub[0])
		if !ok {
			return nil, false
		}
		return append([]string{""}, sub...), true
	case syntax.OpAlternate:
		var out []string
		for _, s := range re.Sub {
			sub, ok := language(s)
			if !ok || len(out)+len(sub) > maxLanguage {
				return nil, false
			}
			out = append(out, sub...)
		}
		return out, true
	case syntax.OpConcat:
		out := []string{""}
		for _, s := range re.Sub {
			sub, ok := language(s)
			if !ok || len(out)*len(sub) > maxLanguage {
				return nil, false
			}
			next := make([]string, 0, len(out)*len(sub))
			for _, a := range out {
				for _, b := range sub {
					next = append(next, a+b)
				}
			}
			out = next
		}
		return out, true
	case syntax.OpRepeat:
		if re.Max < 0 || re.Max > 16 {
			return nil, false
		}
		sub, ok := language(re.Sub[0])
		if !ok {
			return nil, false
		}
		var out []string
		cur := []string{""}
		for n := 0; n <= re.Max; n++ {
			if n >= re.Min {
				out = append(out, cur...)
			}
			if len(out) > maxLanguage || len(cur)*len(sub) > maxLanguage {
				return nil, false
			}
			next := make([]string, 0, len(cur)*len(sub))
			for _, a := range cur {
				for _, b := range sub {
					next = append(next, a+b)
				}
			}
			cur = next
		}
		return out, true
	}
	return nil, false
}

// ---------------------------------------------------------------------------------------------
// PL006: shadowed rules.
//
// Rule S shadows rule R when, for every request R applies to, S applies too and S's action is at
// least as restrictive; R then never decides anything (when S is earlier or stricter — ties go to
// the earlier rule). This holds whether or not either reads threat signals: threat rules only
// tighten the base decision, and S's contribution already covers R's. Decided syntactically:
// S's tool patterns cover R's (S matches every tool, the same pattern, or R names a tool S's
// pattern matches, with S's not_tool excluding nothing R covers) and each of S's conditions is
// implied by one of R's (equal, or a tighter bound / narrower window / higher threat level).

func (l *linter) shadowed(i int, dead []bool) {
	r := l.p.Rules[i]
	for j, s := range l.p.Rules {
		if j == i || dead[j] {
			continue
		}
		stricter := s.Action.StricterThan(r.Action)
		if !stricter && !(s.Action == r.Action && j < i) {
			continue
		}
		if !l.coversTools(s, r) || !l.condsImplied(s, r) {
			continue
		}
		how := "an earlier rule with the same action"
		if stricter {
			how = "a more restrictive rule"
		}
		l.add(r.Pos, LintShadowed, LintWarning, r,
			fmt.Sprintf("rule %q (%s) covers every request this rule covers; remove this rule, or narrow %q", s.Name, s.Pos, s.Name),
			"rule %q (%s) is shadowed by %s, %q (%s)", r.Name, r.Action, how, s.Name, s.Action)
		return
	}
}

// coversTools reports whether every tool r covers is covered by s.
func (l *linter) coversTools(s, r *Rule) bool {
	for _, pr := range r.Tools {
		if name, ok := literalName(pr.Source); ok {
			if !l.ruleMatchesTool(s, name) {
				return false
			}
			continue
		}
		covered := false
		for _, ps := range s.Tools {
			if ps.Source == pr.Source || matchesEverything(ps.Source) {
				covered = true
				break
			}
		}
		if !covered {
			return false
		}
		// s's exclusions must be exclusions of r too, or r covers a tool s does not.
		for _, ns := range s.NotTools {
			if !slices.ContainsFunc(r.NotTools, func(nr Pattern) bool { return nr.Source == ns.Source }) {
				return false
			}
		}
	}
	return true
}

// ruleMatchesTool reports whether rule s covers the tool name.
func (l *linter) ruleMatchesTool(s *Rule, name string) bool {
	hit := false
	for _, p := range s.Tools {
		if l.wholeRE(p.Source).MatchString(name) {
			hit = true
			break
		}
	}
	if !hit {
		return false
	}
	for _, p := range s.NotTools {
		if l.wholeRE(p.Source).MatchString(name) {
			return false
		}
	}
	return true
}

// condsImplied reports whether each of s's conditions is implied by one of r's.
func (l *linter) condsImplied(s, r *Rule) bool {
	for _, cs := range s.Conditions {
		if !slices.ContainsFunc(r.Conditions, func(cr *Condition) bool { return implies(cr, cs) }) {
			return false
		}
	}
	return true
}

// implies reports whether condition a holding guarantees condition b holds.
func implies(a, b *Condition) bool {
	if a.Kind != b.Kind {
		return false
	}
	switch a.Kind {
	case KindParameter:
		return paramImplies(a.Parameter, b.Parameter)
	case KindTimeOfDay:
		x, y := a.TimeOfDay, b.TimeOfDay
		if x.Timezone != y.Timezone {
			return false
		}
		if y.Days != nil && (x.Days == nil || slices.ContainsFunc(x.Days, func(d time.Weekday) bool { return !slices.Contains(y.Days, d) })) {
			return false
		}
		if x.Start == y.Start && x.End == y.End {
			return true
		}
		// Only non-wrapping windows are compared by containment.
		return x.Start < x.End && y.Start < y.End && y.Start <= x.Start && x.End <= y.End
	case KindThreatScore:
		return a.ThreatScore != nil && b.ThreatScore != nil && *a.ThreatScore >= *b.ThreatScore
	case KindFindings:
		// a holds when any of its kinds was reported; each must be one b also accepts.
		return len(a.Findings) > 0 && !slices.ContainsFunc(a.Findings, func(k string) bool { return !slices.Contains(b.Findings, k) })
	case KindUserPermission:
		return *a.UserPermission == *b.UserPermission
	case KindTimeContext:
		return fmt.Sprint(deref(a.TimeContext.UnusualHour), deref(a.TimeContext.OrCallCountExceeds), deref(a.TimeContext.CallCountExceeds)) ==
			fmt.Sprint(deref(b.TimeContext.UnusualHour), deref(b.TimeContext.OrCallCountExceeds), deref(b.TimeContext.CallCountExceeds))
	case KindAgentRole:
		return *a.AgentRole == *b.AgentRole || (a.AgentRole.Role == b.AgentRole.Role && b.AgentRole.Permission == "")
	case KindUserAttribute:
		return *a.UserAttribute == *b.UserAttribute
	case KindDataClassification:
		return *a.DataClassification == *b.DataClassification
	case KindExpr:
		return a.Expr.Source == b.Expr.Source
	}
	return false
}

func deref[T any](p *T) any {
	if p == nil {
		return nil
	}
	return *p
}

// paramImplies: a value passing every operator of a passes every operator of b.
func paramImplies(a, b *ParameterCond) bool {
	if a.Path != b.Path {
		return false
	}
	samePattern := func(x, y *Pattern) bool { return y == nil || (x != nil && x.Source == y.Source) }
	if !samePattern(a.Match, b.Match) || !samePattern(a.NotMatch, b.NotMatch) {
		return false
	}
	if b.MaxValue != nil && (a.MaxValue == nil || a.MaxValue.Cmp(*b.MaxValue) > 0) {
		return false
	}
	if b.MinValue != nil && (a.MinValue == nil || a.MinValue.Cmp(*b.MinValue) < 0) {
		return false
	}
	if b.MaxLength != nil && (a.MaxLength == nil || *a.MaxLength > *b.MaxLength) {
		return false
	}
	if b.HasEquals && !(a.HasEquals && scalarEqual(a.Equals, b.Equals)) {
		return false
	}
	if b.OneOf != nil {
		in := func(v any) bool { return slices.ContainsFunc(b.OneOf, func(o any) bool { return scalarEqual(v, o) }) }
		switch {
		case a.HasEquals && in(a.Equals):
		case a.OneOf != nil && !slices.ContainsFunc(a.OneOf, func(v any) bool { return !in(v) }):
		default:
			return false
		}
	}
	return true
}

// ---------------------------------------------------------------------------------------------
// PL007: ALLOW for every tool with no conditions.

func (l *linter) allowAll(r *Rule) {
	if r.Action != Allow || len(r.Conditions) > 0 || len(r.NotTools) > 0 {
		return
	}
	for _, p := range r.Tools {
		if matchesEverything(p.Source) {
			l.add(r.Pos, LintAllowAll, LintError, r,
				"name the tools this agent needs, or add conditions: an unconditional ALLOW of every tool turns deny-by-default off",
				"rule %q allows every tool (%q) with no conditions", r.Name, p.Source)
			return
		}
	}
}

// matchesEverything reports whether a whole-name tool pattern matches every tool name: .* or .+
// (tool names are never empty), optionally grouped, with or without (?s).
func matchesEverything(src string) bool {
	re, err := syntax.Parse(src, syntax.Perl)
	if err != nil {
		return false
	}
	re = re.Simplify()
	for re.Op == syntax.OpCapture {
		re = re.Sub[0]
	}
	if re.Op == syntax.OpConcat && len(re.Sub) == 3 && re.Sub[0].Op == syntax.OpBeginText && re.Sub[2].Op == syntax.OpEndText {
		re = re.Sub[1]
		for re.Op == syntax.OpCapture {
			re = re.Sub[0]
		}
	}
	if re.Op != syntax.OpStar && re.Op != syntax.OpPlus {
		return false
	}
	sub := re.Sub[0]
	return sub.Op == syntax.OpAnyChar || sub.Op == syntax.OpAnyCharNotNL
}

// literalName returns the tool name a pattern matches when it matches exactly one plain name.
func literalName(src string) (string, bool) {
	re, err := syntax.Parse(src, syntax.Perl)
	if err != nil {
		return "", false
	}
	if re.Op == syntax.OpLiteral && re.Flags&syntax.FoldCase == 0 {
		return string(re.Rune), true
	}
	if re.Op == syntax.OpEmptyMatch {
		return "", true
	}
	return "", false
}

// ---------------------------------------------------------------------------------------------
// PL008: DENY rules that can never change a decision.
//
// Under default_action DENY, a DENY rule changes a decision only when, without it, some rule that
// is less restrictive (ALLOW, LOG or CONSTRAIN) and does not read threat signals would decide the
// base decision for a tool the DENY rule covers. (Threat rules only tighten a base that is not
// DENY, so they cannot lower a DENY either.) When no such rule can cover any of its tools, the
// rule is pointless — harmless, reported as info so it does not fail the lint.

func (l *linter) pointlessDeny(i int) {
	r := l.p.Rules[i]
	if r.Action != Deny || l.p.DefaultAction != Deny {
		return
	}
	for j, o := range l.p.Rules {
		if j == i || o.Action == Deny || o.Threat {
			continue
		}
		if l.mayOverlap(r, o) {
			return
		}
	}
	hint := "default_action is DENY and no ALLOW, LOG or CONSTRAIN rule covers these tools; keep it as documentation or remove it"
	l.add(r.Pos, LintPointlessDeny, LintInfo, r, hint,
		"DENY rule %q never changes a decision: the default already denies its tools", r.Name)
}

// mayOverlap reports whether some tool could be covered by both rules. Two non-literal patterns
// are assumed to overlap (regular-expression intersection is not decided here), which only
// makes PL008 report less.
func (l *linter) mayOverlap(a, b *Rule) bool {
	for _, pa := range a.Tools {
		na, la := literalName(pa.Source)
		for _, pb := range b.Tools {
			nb, lb := literalName(pb.Source)
			switch {
			case la && lb:
				if na == nb && l.ruleMatchesTool(a, na) && l.ruleMatchesTool(b, na) {
					return true
				}
			case la:
				if l.ruleMatchesTool(b, na) && l.ruleMatchesTool(a, na) {
					return true
				}
			case lb:
				if l.ruleMatchesTool(a, nb) && l.ruleMatchesTool(b, nb) {
					return true
				}
			default:
				return true
			}
		}
	}
	return false
}

// ---------------------------------------------------------------------------------------------

func (l *linter) wholeRE(src string) *regexp.Regexp {
	if re, ok := l.whole[src]; ok {
		return re
	}
	// The engine's own anchoring and flags, so the linter reasons about the tools the engine matches.
	re, err := anchored(src)
	if err != nil {
		re = regexp.MustCompile(`[^\x00-\x{10FFFF}]`) // never matches; the parser rejects such patterns anyway
	}
	l.whole[src] = re
	return re
}

func (l *linter) partial(src string) *regexp.Regexp {
	if re, ok := l.part[src]; ok {
		return re
	}
	re, err := regexp.Compile(src)
	if err != nil {
		re = regexp.MustCompile(`[^\x00-\x{10FFFF}]`)
	}
	l.part[src] = re
	return re
}

// ---------------------------------------------------------------------------------------------
// PL009: inspection that nothing reads.

// lintNoThreatRule reports a policy that can allow calls (an ALLOW or LOG rule, or
// default_action ALLOW) but has no enforced rule that tightens on the threat level or findings
// (threat_score, findings, an expr reading threat). With inspection.request_block_level none,
// inspection is then advisory only: a call carrying SQL injection or a cloud-metadata URL runs
// whenever its rule allows it.
func lintNoThreatRule(p *Policy) []LintFinding {
	var allow *Rule
	for _, r := range p.Rules {
		if r.DryRun {
			continue
		}
		if r.Threat && (r.Action == Deny || r.Action == Constrain) {
			return nil
		}
		if allow == nil && (r.Action == Allow || r.Action == Log) {
			allow = r
		}
	}
	pos, name := p.Pos, ""
	switch {
	case allow != nil:
		pos, name = allow.Pos, allow.Name
	case p.DefaultAction != Allow && p.DefaultAction != Log:
		return nil // nothing is ever allowed
	}
	return []LintFinding{{Pos: pos, Code: LintNoThreatRule, Severity: LintWarning, Agent: p.AgentID, Rule: name,
		Message: fmt.Sprintf("policy for %q allows calls but no rule reads the threat level, and inspection.request_block_level is none: inspection findings never stop a call", p.AgentID),
		Hint:    `add a rule such as {name: high_threat, tool: ".*", action: CONSTRAIN, conditions: [{threat_score: high}]}, or set inspection.request_block_level (default critical)`}}
}
