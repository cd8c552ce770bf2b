package policy

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"path/filepath"
	"regexp"
	"regexp/syntax"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/portcullis-ai/portcullis/internal/threat"
)

// Set is a compiled, immutable policy set: one policy per agent, indexed for evaluation.
// It is safe for concurrent use; a reload builds a new Set and swaps it atomically.
type Set struct {
	files   []*File
	agents  map[string]*cpolicy
	rules   int
	version string
}

// Load parses and compiles the policy files and directories named.
func Load(paths ...string) (*Set, error) {
	files, err := ParseFiles(paths...)
	if err != nil {
		return nil, err
	}
	return Compile(files...)
}

// LoadSources parses and compiles files already read (see ReadSources) into one immutable Set.
func LoadSources(srcs []Source) (*Set, error) {
	files, err := ParseSources(srcs)
	if err != nil {
		return nil, err
	}
	return Compile(files...)
}

// Files returns the parsed files the set was compiled from (for lint and tooling). Do not modify.
func (s *Set) Files() []*File { return s.files }

// Agents returns the agent IDs the set governs.
func (s *Set) Agents() []string {
	out := make([]string, 0, len(s.agents))
	for id := range s.agents {
		out = append(out, id)
	}
	return out
}

// RuleCount is the number of rules in the set.
func (s *Set) RuleCount() int { return s.rules }

// maxCachedTools bounds the per-policy memo of "tool name → candidate rules" for names that are
// not written literally in any rule, so random tool names cannot grow memory without bound.
const maxCachedTools = 1024

// maxPrematch bounds compile-time matching of pattern rules against literal tool names.
const maxPrematch = 4_000_000

type cpolicy struct {
	src     *Policy
	def     Action
	enforce [4]string
	rules   []crule
	// exact maps every tool name written literally in some rule to the rules covering it, in
	// file order (nil when that table would be too large to precompute).
	exact map[string]*cands
	// exactRules maps a literal name to the exact-only rules listing it, in file order.
	exactRules map[string][]int32
	// dynamic lists the rules whose tool patterns are not all literal names, in file order.
	dynamic []int32
	// byPrefix indexes dynamic rules by the literal prefix of their patterns, so a name not yet
	// seen is matched only against rules whose prefix it starts with; prefixLens holds the
	// prefix lengths in use and noPrefix the dynamic rules with an empty prefix (e.g. ".*").
	byPrefix   map[string][]int32
	prefixLens []int
	noPrefix   []int32
	cacheMu    sync.Mutex
	cache      atomic.Pointer[map[string]*cands]

	bhStart, bhEnd Clock
	bhDays         uint8
	bhLoc          *time.Location
	bhZone         *zoneClock
	levels         map[string]int
	toolClass      map[string]int
	// hasDryRun: some rule is a dry run, so Decide also combines with the dry-run rules.
	hasDryRun bool
}

// cands is the rules whose tool patterns (and not_tool patterns) cover one tool name, in file order.
type cands struct {
	idx []int32
	// windows are the distinct call-count windows these rules' conditions read, ascending.
	windows []time.Duration
}

type matchKind uint8

const (
	matchExact    matchKind = iota
	matchPrefix             // literal prefix then anything without a newline ((?-s) patterns)
	matchPrefixNL           // literal prefix then anything
	matchAll                // any name without a newline ((?-s) patterns)
	matchAllNL              // any name at all
	matchRegex
)

type matcher struct {
	kind   matchKind
	lit    string
	re     *regexp.Regexp
	prefix string // literal prefix of re, a cheap pre-filter
}

func (m *matcher) match(s string) bool {
	switch m.kind {
	case matchExact:
		return s == m.lit
	case matchPrefix:
		return len(s) >= len(m.lit) && s[:len(m.lit)] == m.lit && strings.IndexByte(s[len(m.lit):], '\n') < 0
	case matchPrefixNL:
		return strings.HasPrefix(s, m.lit)
	case matchAll:
		return strings.IndexByte(s, '\n') < 0
	case matchAllNL:
		return true
	}
	if len(s) < len(m.prefix) || s[:len(m.prefix)] != m.prefix {
		return false
	}
	return m.re.MatchString(s)
}

// toolFlags parse tool patterns: RE2's Perl syntax with the s flag, so that `.` matches every
// character. The contract says `.*` matches every tool; without s a name with a newline would slip
// past every `.*` rule, threat rules included. A pattern may still opt out with (?-s).
const toolFlags = syntax.Perl | syntax.DotNL

// anchored compiles src so that it must match a whole name. It wraps the canonical form of the
// parsed pattern, not the text: wrapping the text would let "\\Q" (quote to the end) or "a)|(b"
// swallow or escape the anchors. The canonical form spells the s flag out where it matters.
func anchored(src string) (*regexp.Regexp, error) {
	tree, err := syntax.Parse(src, toolFlags)
	if err != nil {
		return nil, err
	}
	return regexp.Compile(`^(?:` + tree.String() + `)$`)
}

// compileToolPattern turns a whole-name RE2 pattern into matchers; simple shapes (a literal, an
// alternation of literals, literal+".*", ".*") avoid the regexp engine entirely. Every shape
// means what the anchored regexp means (FuzzToolPattern).
func compileToolPattern(src string) ([]matcher, error) {
	if plainName(src) {
		return []matcher{{kind: matchExact, lit: src}}, nil
	}
	re, err := syntax.Parse(src, toolFlags)
	if err != nil {
		return nil, err
	}
	re = re.Simplify()
	lit := func(r *syntax.Regexp) (string, bool) {
		if r.Op == syntax.OpLiteral && r.Flags&syntax.FoldCase == 0 {
			return string(r.Rune), true
		}
		if r.Op == syntax.OpEmptyMatch {
			return "", true
		}
		return "", false
	}
	if s, ok := lit(re); ok {
		return []matcher{{kind: matchExact, lit: s}}, nil
	}
	if re.Op == syntax.OpAlternate {
		var out []matcher
		for _, sub := range re.Sub {
			s, ok := lit(sub)
			if !ok {
				out = nil
				break
			}
			out = append(out, matcher{kind: matchExact, lit: s})
		}
		if out != nil {
			return out, nil
		}
	}
	isAny := func(r *syntax.Regexp) (matchKind, bool) {
		if r.Op == syntax.OpStar && len(r.Sub) == 1 {
			switch r.Sub[0].Op {
			case syntax.OpAnyCharNotNL:
				return matchAll, true
			case syntax.OpAnyChar:
				return matchAllNL, true
			}
		}
		return 0, false
	}
	if k, ok := isAny(re); ok {
		return []matcher{{kind: k}}, nil
	}
	if re.Op == syntax.OpConcat && len(re.Sub) == 2 {
		if s, ok := lit(re.Sub[0]); ok {
			if k, ok := isAny(re.Sub[1]); ok {
				kind := matchPrefixNL
				if k == matchAll {
					kind = matchPrefix
				}
				return []matcher{{kind: kind, lit: s}}, nil
			}
		}
	}
	cre, err := anchored(src)
	if err != nil {
		return nil, err
	}
	prefix, _ := cre.LiteralPrefix()
	return []matcher{{kind: matchRegex, re: cre, prefix: prefix}}, nil
}

type crule struct {
	name        string
	action      Action
	threat      bool
	dryRun      bool
	approval    ApprovalSettings
	enforcement string
	pos         Pos
	posStr      string // pos.String(), for traces
	tools       []matcher
	not         []matcher
	exactOnly   bool
	conds       []ccond
}

func (r *crule) matchesTool(tool string) bool {
	hit := false
	for i := range r.tools {
		if r.tools[i].match(tool) {
			hit = true
			break
		}
	}
	if !hit {
		return false
	}
	for i := range r.not {
		if r.not[i].match(tool) {
			return false
		}
	}
	return true
}

type ccond struct {
	kind ConditionKind
	pos  Pos
	src  *Condition
	// posStr is pos.String() and ref "rule/kind@pos", the condition's name in decision records:
	// built once here, not per decision.
	posStr, ref string

	// parameter and user attribute
	path     []string
	match    *strMatcher
	notMatch *strMatcher
	maxV     Number
	minV     Number
	hasMax   bool
	hasMin   bool
	maxLen   int
	hasLen   bool
	oneOf    []any
	equals   any
	hasEq    bool

	// time of day
	start, end Clock
	days       uint8 // bit per weekday; 0 = every day
	loc        *time.Location
	zone       *zoneClock

	level threat.Level

	perm     string
	mustHave bool

	hasUnusual  bool
	wantUnusual bool
	orCC, andCC *CallCount

	role string
	attr string

	class int // index on the scale; -1 = the tool's declared level

	expr     *compiledExpr
	findings []string

	// session: hasSeen labels, all needed; minClass the classification rank (-1: not tested)
	hasSeen  []string
	minClass int
	sink     string
}

// Compile builds an immutable Set from parsed files. It checks what spans files (one policy
// per agent, the rule limit) and never returns a partial set.
func Compile(files ...*File) (*Set, error) {
	if errs := checkSet(files); len(errs) > 0 {
		return nil, errs
	}
	s := &Set{files: files, agents: map[string]*cpolicy{}}
	var errs ErrorList
	for _, f := range files {
		for _, p := range f.Policies {
			cp, err := compilePolicy(p)
			if err != nil {
				var l ErrorList
				if errors.As(err, &l) {
					errs = append(errs, l...)
					continue
				}
				return nil, err
			}
			s.agents[p.AgentID] = cp
			s.rules += len(p.Rules)
		}
	}
	if len(errs) > 0 {
		return nil, errs
	}
	s.version = version(files)
	return s, nil
}

// Version identifies the set by the bytes of its files, and nothing else: it changes exactly
// when a file's bytes change or a file is added, removed or renamed — a blank line or a comment
// is a change, but a new Portcullis release, another directory or a restart is not. It is
// "sha256:" and the first 16 hex digits of the SHA-256 of the files' `sha256sum` listing
// (the hex digest of each file, two spaces, its base name, a newline) in byte order of the
// lines' names, so an auditor recomputes it from the files with standard tools:
//
//	cd policies && sha256sum *.yaml | LC_ALL=C sort -k2 | sha256sum | cut -c1-16
func (s *Set) Version() string { return s.version }

func version(files []*File) string {
	type entry struct{ name, sum string }
	list := make([]entry, len(files))
	for i, f := range files {
		list[i] = entry{filepath.Base(f.Name), hex.EncodeToString(f.sum[:])}
	}
	slices.SortFunc(list, func(a, b entry) int { return cmp.Or(strings.Compare(a.name, b.name), strings.Compare(a.sum, b.sum)) })
	h := sha256.New()
	for _, e := range list {
		fmt.Fprintf(h, "%s  %s\n", e.sum, e.name)
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil))[:16]
}

func loadLoc(name, fallback string) (*time.Location, error) {
	if name == "" {
		name = fallback
	}
	if name == "" {
		return time.UTC, nil
	}
	return time.LoadLocation(name)
}

func dayMask(days []time.Weekday) uint8 {
	var m uint8
	for _, d := range days {
		m |= 1 << uint(d)
	}
	return m
}

func compilePolicy(p *Policy) (*cpolicy, error) {
	var errs ErrorList
	bad := func(pos Pos, key, format string, args ...any) {
		errs = append(errs, &Error{Pos: pos, Key: key, Msg: fmt.Sprintf(format, args...), Hint: "build policies with Parse, which validates every value"})
	}
	cp := &cpolicy{src: p, def: Deny, enforce: DefaultEnforcement}
	if p.HasDefault {
		cp.def = p.DefaultAction
	}
	for _, e := range p.Enforcement {
		cp.enforce[e.Decision] = e.Action
	}
	loc, err := loadLoc(p.Timezone, "")
	if err != nil {
		bad(p.Pos, "timezone", "unknown time zone %q", p.Timezone)
	}
	cp.bhStart, cp.bhEnd, cp.bhDays, cp.bhLoc = 8*60, 18*60, dayMask([]time.Weekday{1, 2, 3, 4, 5}), loc
	if bh := p.BusinessHours; bh != nil {
		cp.bhStart, cp.bhEnd, cp.bhDays = bh.Start, bh.End, dayMask(bh.Days)
		if cp.bhLoc, err = loadLoc(bh.Timezone, p.Timezone); err != nil {
			bad(bh.Pos, "business_hours.timezone", "unknown time zone %q", bh.Timezone)
		}
	}
	cp.bhZone = newZoneClock(cp.bhLoc)
	levels := p.ClassificationLevels
	if levels == nil {
		levels = DefaultClassificationLevels
	}
	cp.levels = make(map[string]int, len(levels))
	for i, l := range levels {
		cp.levels[l] = i
	}
	cp.toolClass = map[string]int{}
	for t, l := range p.ToolClassifications {
		i, ok := cp.levels[l]
		if !ok {
			bad(p.Pos, "tool_classifications."+t, "unknown classification level %q", l)
		}
		cp.toolClass[t] = i
	}

	cp.rules = make([]crule, len(p.Rules))
	for i, r := range p.Rules {
		cr := &cp.rules[i]
		cr.name, cr.action, cr.threat, cr.enforcement, cr.pos = r.Name, r.Action, r.Threat, r.Enforcement, r.Pos
		cr.dryRun = r.DryRun
		cr.posStr = r.Pos.String()
		cp.hasDryRun = cp.hasDryRun || r.DryRun
		if r.Approval != nil {
			cr.approval = *r.Approval
		}
		cr.exactOnly = len(r.NotTools) == 0
		for _, pt := range r.Tools {
			ms, err := compileToolPattern(pt.Source)
			if err != nil {
				bad(pt.Pos, "tool", "invalid regular expression %q: %v", pt.Source, err)
				continue
			}
			for _, m := range ms {
				if m.kind != matchExact {
					cr.exactOnly = false
				}
			}
			cr.tools = append(cr.tools, ms...)
		}
		for _, pt := range r.NotTools {
			ms, err := compileToolPattern(pt.Source)
			if err != nil {
				bad(pt.Pos, "not_tool", "invalid regular expression %q: %v", pt.Source, err)
				continue
			}
			cr.not = append(cr.not, ms...)
		}
		cr.conds = make([]ccond, len(r.Conditions))
		for j, c := range r.Conditions {
			cc := &cr.conds[j]
			if err := compileCond(cc, c, p, cp); err != nil {
				bad(c.Pos, fmt.Sprintf("rules[%d].conditions[%d]", i, j), "%v", err)
			}
			cc.posStr = c.Pos.String()
			cc.ref = r.Name + "/" + c.Kind.String() + "@" + cc.posStr
		}
	}
	if len(errs) > 0 {
		return nil, errs
	}
	cp.buildIndex()
	empty := map[string]*cands{}
	cp.cache.Store(&empty)
	return cp, nil
}

func (cp *cpolicy) buildIndex() {
	// Literal names: each exact-only rule is appended to the lists of the names it lists, in
	// file order — linear in the number of patterns.
	cp.exactRules = map[string][]int32{}
	for i := range cp.rules {
		r := &cp.rules[i]
		if !r.exactOnly {
			cp.dynamic = append(cp.dynamic, int32(i))
			continue
		}
		for _, m := range r.tools {
			l := cp.exactRules[m.lit]
			if len(l) == 0 || l[len(l)-1] != int32(i) {
				cp.exactRules[m.lit] = append(l, int32(i))
			}
		}
	}
	cp.byPrefix = map[string][]int32{}
	lens := map[int]bool{}
	for _, i := range cp.dynamic {
		r := &cp.rules[i]
		var prefixes []string
		for _, m := range r.tools {
			var pre string
			switch m.kind {
			case matchExact, matchPrefix:
				pre = m.lit
			case matchRegex:
				pre = m.prefix
			}
			if pre == "" {
				prefixes = nil
				break
			}
			prefixes = append(prefixes, pre)
		}
		if len(prefixes) == 0 {
			cp.noPrefix = append(cp.noPrefix, i)
			continue
		}
		for _, pre := range prefixes {
			l := cp.byPrefix[pre]
			if len(l) == 0 || l[len(l)-1] != i {
				cp.byPrefix[pre] = append(l, i)
			}
			lens[len(pre)] = true
		}
	}
	for n := range lens {
		cp.prefixLens = append(cp.prefixLens, n)
	}
	sort.Ints(cp.prefixLens)
	// Pattern rules are matched against every literal name at compile time when that is cheap;
	// otherwise the merge happens on first use of a name (and is memoised in the bounded cache).
	if len(cp.exactRules)*len(cp.dynamic) > maxPrematch {
		return
	}
	cp.exact = make(map[string]*cands, len(cp.exactRules))
	for name := range cp.exactRules {
		cp.exact[name] = cp.compute(name)
	}
}

// compute merges, in file order, the exact-only rules listing tool with the pattern rules matching it.
func (cp *cpolicy) compute(tool string) *cands {
	ex := cp.exactRules[tool]
	c := &cands{idx: make([]int32, 0, len(ex))}
	dyn := cp.noPrefix
	if len(cp.byPrefix) > 0 {
		dyn = append([]int32(nil), cp.noPrefix...)
		for _, n := range cp.prefixLens {
			if n > len(tool) {
				break
			}
			dyn = append(dyn, cp.byPrefix[tool[:n]]...)
		}
		slices.Sort(dyn)
		dyn = slices.Compact(dyn)
	}
	j := 0
	for _, i := range dyn {
		if !cp.rules[i].matchesTool(tool) {
			continue
		}
		for j < len(ex) && ex[j] < i {
			c.idx = append(c.idx, ex[j])
			j++
		}
		c.idx = append(c.idx, i)
	}
	c.idx = append(c.idx, ex[j:]...)
	for _, i := range c.idx {
		for k := range cp.rules[i].conds {
			for _, w := range cp.rules[i].conds[k].callCounts() {
				c.addWindow(time.Duration(w.WindowMinutes) * time.Minute)
			}
		}
	}
	return c
}

// candidates returns the rules whose tool patterns cover tool, in file order.
func (cp *cpolicy) candidates(tool string) *cands {
	if c, ok := cp.exact[tool]; ok {
		return c
	}
	m := *cp.cache.Load()
	if c, ok := m[tool]; ok {
		return c
	}
	c := cp.compute(tool)
	cp.remember(tool, c)
	return c
}

// remember adds a computed candidate list to the copy-on-write memo, up to maxCachedTools names.
func (cp *cpolicy) remember(tool string, c *cands) {
	if len(tool) > 256 {
		return
	}
	cp.cacheMu.Lock()
	defer cp.cacheMu.Unlock()
	old := *cp.cache.Load()
	if len(old) >= maxCachedTools {
		return
	}
	if _, ok := old[tool]; ok {
		return
	}
	next := make(map[string]*cands, len(old)+1)
	for k, v := range old {
		next[k] = v
	}
	next[tool] = c
	cp.cache.Store(&next)
}

func compileCond(cc *ccond, c *Condition, p *Policy, cp *cpolicy) error {
	cc.kind, cc.pos, cc.src = c.Kind, c.Pos, c
	switch c.Kind {
	case KindParameter:
		pc := c.Parameter
		cc.path = strings.Split(pc.Path, ".")
		if pc.Match != nil {
			re, err := newStrMatcher(pc.Match.Source)
			if err != nil {
				return fmt.Errorf("match: %w", err)
			}
			cc.match = re
		}
		if pc.NotMatch != nil {
			re, err := newStrMatcher(pc.NotMatch.Source)
			if err != nil {
				return fmt.Errorf("not_match: %w", err)
			}
			cc.notMatch = re
		}
		if pc.MaxValue != nil {
			cc.maxV, cc.hasMax = *pc.MaxValue, true
		}
		if pc.MinValue != nil {
			cc.minV, cc.hasMin = *pc.MinValue, true
		}
		if pc.MaxLength != nil {
			cc.maxLen, cc.hasLen = *pc.MaxLength, true
		}
		cc.oneOf = pc.OneOf
		cc.equals, cc.hasEq = pc.Equals, pc.HasEquals
	case KindTimeOfDay:
		t := c.TimeOfDay
		loc, err := loadLoc(t.Timezone, p.Timezone)
		if err != nil {
			return fmt.Errorf("time_of_day.timezone: %w", err)
		}
		cc.start, cc.end, cc.days, cc.loc, cc.zone = t.Start, t.End, dayMask(t.Days), loc, newZoneClock(loc)
	case KindThreatScore:
		cc.level = *c.ThreatScore
	case KindUserPermission:
		cc.perm, cc.mustHave = c.UserPermission.Permission, c.UserPermission.MustHave
	case KindTimeContext:
		tc := c.TimeContext
		if tc.UnusualHour != nil {
			cc.hasUnusual, cc.wantUnusual = true, *tc.UnusualHour
		}
		cc.orCC, cc.andCC = tc.OrCallCountExceeds, tc.CallCountExceeds
	case KindAgentRole:
		cc.role, cc.perm = c.AgentRole.Role, c.AgentRole.Permission
	case KindUserAttribute:
		cc.attr = c.UserAttribute.Attribute
		cc.path = strings.Split(c.UserAttribute.Parameter, ".")
	case KindDataClassification:
		if c.DataClassification.Level == "tool" {
			cc.class = -1
		} else {
			i, ok := cp.levels[c.DataClassification.Level]
			if !ok {
				return fmt.Errorf("unknown classification level %q", c.DataClassification.Level)
			}
			cc.class = i
		}
	case KindExpr:
		if c.Expr == nil || c.Expr.compiled == nil {
			return fmt.Errorf("expr was not type-checked")
		}
		cc.expr = c.Expr.compiled
	case KindFindings:
		cc.findings = c.Findings
	case KindSession:
		cc.hasSeen, cc.minClass = c.Session.HasSeen, -1
		if l := c.Session.MaxClassificationSeen; l != "" {
			i, ok := cp.levels[l]
			if !ok {
				return fmt.Errorf("unknown classification level %q", l)
			}
			cc.minClass = i
		}
	case KindToolSink:
		cc.sink = c.ToolSink
	default:
		return fmt.Errorf("unknown condition kind %d", c.Kind)
	}
	return nil
}

// Tool returns the declaration agent's policy makes of tool (its `tools:` entry), if any.
func (s *Set) Tool(agent, tool string) (ToolDecl, bool) {
	if s == nil {
		return ToolDecl{}, false
	}
	p := s.agents[agent]
	if p == nil {
		return ToolDecl{}, false
	}
	d := p.src.Tools[tool]
	if d == nil {
		return ToolDecl{}, false
	}
	return *d, true
}

// RequireProposal is agent's policy's require_proposal window (0: not required).
func (s *Set) RequireProposal(agent string) time.Duration {
	if s == nil {
		return 0
	}
	if p := s.agents[agent]; p != nil {
		return p.src.RequireProposal
	}
	return 0
}
