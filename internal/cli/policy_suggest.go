package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"maps"
	"math/big"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	segjson "github.com/segmentio/encoding/json"

	"github.com/portcullis-ai/portcullis/internal/ledger"
	"github.com/portcullis-ai/portcullis/internal/policy"
	"github.com/portcullis-ai/portcullis/internal/threat"
)

func init() {
	registerPolicySub("suggest", "write a least-privilege policy from an agent's recorded calls: --agent A [--since 14d] (exit 1 if it would deny an allowed call)", runPolicySuggest)
}

const (
	// suggestEnumMax is the most distinct strings a parameter may take to become an enumeration
	// (one_of); more become a pattern.
	suggestEnumMax = 8
	// suggestTimeMinDays is how many days the observed calls must span before the hours and days
	// the agent worked become a time_of_day condition: a week, so every weekday had its chance.
	suggestTimeMinDays = 7
	// suggestSettle is how many strings fix a pattern's prefix and suffix before the rest are
	// folded in one by one.
	suggestSettle = 64
	// suggestPrefixMax bounds the literal prefix and suffix of a pattern, so it stays readable.
	suggestPrefixMax = 40
	// suggestExamples is how many examples a comment shows.
	suggestExamples = 3
	// suggestDepth is how deep into nested objects parameters get conditions.
	suggestDepth = 4
	// suggestQuantMax is the largest repetition count a pattern writes ({n,m}); RE2 allows 1000.
	suggestQuantMax = 1000
)

// suggestWindows are the call-rate windows (minutes) a suggestion bounds for each tool.
var suggestWindows = []int{1, 60}

// paramStats is what the calls showed of one parameter path.
type paramStats struct {
	present  int // calls in which it held a usable value
	redacted int // calls in which it was redacted
	unusable bool
	why      string // why no condition (when unusable)
	kinds    map[string]bool
	examples []string

	// strings
	strs           map[string]bool // distinct values, up to suggestEnumMax+1
	prefix, suffix string
	pending        []string // values kept until the prefix and suffix settle
	settled        bool
	nstr           int
	classes        charClasses
	minLen, maxLen int // of the values, in runes
	// numbers
	lo, hi *big.Rat
	allInt bool
	// booleans
	bools map[bool]bool
}

// charClasses is the set of characters seen between a pattern's prefix and suffix.
type charClasses struct {
	lower, upper, digit, other, control bool
	punct                               map[rune]bool
}

// toolStats is what the allowed calls to one tool showed.
type toolStats struct {
	calls       int
	paramCalls  int // calls whose parameters the record holds
	withheld    int // calls whose parameters were withheld or wholly redacted
	first, last time.Time
	ids         []string
	params      map[string]*paramStats
	busiest     map[int]int // window minutes → most calls in one window (any decision)
}

// suggester gathers the evidence of one agent's calls.
type suggester struct {
	agent       string
	zone        *time.Location
	margin      float64
	tools       map[string]*toolStats
	hourOfWeek  [7][24]int
	first, last time.Time
	learned     int
	skipped     map[string]int // decisions not learned from, by decision
	recent      map[string]*policy.CallList
}

func newSuggester(agent string, zone *time.Location, margin float64) *suggester {
	return &suggester{agent: agent, zone: zone, margin: margin, tools: map[string]*toolStats{}, skipped: map[string]int{}, recent: map[string]*policy.CallList{}}
}

// allowedDecision reports whether r is a call the policy let run (ALLOW, or LOG: allowed and
// flagged). Denied, held and uninspected calls are never learned from: a suggestion must not
// open what the current policy kept closed.
func allowedDecision(r *ledger.Record) bool {
	d := strings.ToUpper(r.Decision)
	return r.Policy != nil && r.Approval == nil && (d == policy.Allow.String() || d == policy.Log.String())
}

// callCount gives out, for each window, how many calls to r's tool within it end at r (r
// included), the way time_context counts them, then records r in recent. Every decision
// counts, allowed or not, as in the gateway's behaviour store.
func callCount(recent map[string]*policy.CallList, r *ledger.Record, windows []int, out func(w, n int)) {
	l := recent[r.Tool]
	if l == nil {
		l = &policy.CallList{}
		recent[r.Tool] = l
	}
	keep := time.Duration(slices.Max(windows)) * time.Minute
	for _, w := range windows {
		if out != nil {
			out(w, 1+l.CallCount(r.Tool, time.Duration(w)*time.Minute, r.Time))
		}
	}
	// Only calls within the longest window can count again: drop the rest (bounded memory).
	l.Calls = slices.DeleteFunc(l.Calls, func(c policy.Call) bool { return !c.Time.After(r.Time.Add(-keep)) })
	l.Calls = append(l.Calls, policy.Call{Tool: r.Tool, Time: r.Time})
}

func (s *suggester) observe(r *ledger.Record) {
	ts := s.tools[r.Tool]
	allowed := allowedDecision(r)
	if ts == nil && allowed {
		ts = &toolStats{params: map[string]*paramStats{}, busiest: map[int]int{}}
		s.tools[r.Tool] = ts
	}
	callCount(s.recent, r, suggestWindows, func(w, n int) {
		if ts != nil {
			ts.busiest[w] = max(ts.busiest[w], n)
		}
	})
	if !allowed {
		s.skipped[strings.ToUpper(r.Decision)]++
		return
	}
	s.learned++
	if s.first.IsZero() || r.Time.Before(s.first) {
		s.first = r.Time
	}
	if r.Time.After(s.last) {
		s.last = r.Time
	}
	lt := r.Time.In(s.zone)
	s.hourOfWeek[lt.Weekday()][lt.Hour()]++
	ts.calls++
	if ts.first.IsZero() || r.Time.Before(ts.first) {
		ts.first = r.Time
	}
	if r.Time.After(ts.last) {
		ts.last = r.Time
	}
	if len(ts.ids) < suggestExamples && r.DecisionID != "" {
		ts.ids = append(ts.ids, r.DecisionID)
	}
	red := redactedPaths(r.Redacted)
	if r.ParamsDropped != "" || slices.Contains(red, "") {
		ts.withheld++
		return
	}
	var params map[string]any
	if len(r.Params) > 0 {
		if _, err := segjson.Parse(r.Params, &params, segjson.UseNumber); err != nil {
			ts.withheld++
			return
		}
	}
	ts.paramCalls++
	s.walk(ts, "", params, red, 1)
}

// walk records the values of one call's parameters under prefix.
func (s *suggester) walk(ts *toolStats, prefix string, obj map[string]any, red []string, depth int) {
	for k, v := range obj {
		p := ps(ts, prefix+k)
		if k == "" || strings.Contains(k, ".") {
			p.unusable, p.why = true, "a name a dotted path cannot spell"
			continue
		}
		path := prefix + k
		// Redacted values are never turned into patterns: the record holds a placeholder, not
		// what the agent sent, and a pattern of a secret would publish it.
		if slices.ContainsFunc(red, func(r string) bool { return r == path || strings.HasPrefix(path, r+".") }) {
			p.redacted++
			continue
		}
		if m, ok := v.(map[string]any); ok {
			p.present++
			p.kinds["object"] = true
			if depth < suggestDepth {
				s.walk(ts, path+".", m, red, depth+1)
			}
			continue
		}
		if slices.ContainsFunc(red, func(r string) bool { return strings.HasPrefix(r, path+".") }) {
			p.redacted++ // part of the value is redacted
			continue
		}
		p.present++
		vals := []any{v}
		if a, ok := v.([]any); ok {
			if len(a) == 0 {
				p.unusable, p.why = true, "an empty list was sent (a condition on a list needs an element)"
				continue
			}
			vals = a
		}
		for _, x := range vals {
			p.value(x)
		}
	}
}

func ps(ts *toolStats, path string) *paramStats {
	p := ts.params[path]
	if p == nil {
		p = &paramStats{kinds: map[string]bool{}, strs: map[string]bool{}, bools: map[bool]bool{}, allInt: true}
		ts.params[path] = p
	}
	return p
}

func (p *paramStats) example(v any) {
	if len(p.examples) >= suggestExamples {
		return
	}
	b, _ := json.Marshal(v)
	e := string(b)
	if utf8.RuneCountInString(e) > 40 {
		e = string([]rune(e)[:39]) + "…"
	}
	if !slices.Contains(p.examples, e) {
		p.examples = append(p.examples, e)
	}
}

func (p *paramStats) value(x any) {
	switch v := x.(type) {
	case string:
		if !utf8.ValidString(v) {
			// A pattern or a listed value would have to spell bytes YAML and RE2 refuse.
			p.unusable, p.why = true, "a string that is not valid UTF-8"
			return
		}
		p.kinds["string"] = true
		p.example(v)
		if len(p.strs) <= suggestEnumMax {
			p.strs[v] = true
		}
		p.addString(v)
	case json.Number:
		p.kinds["number"] = true
		p.example(v)
		n, ok := new(big.Rat).SetString(v.String())
		if !ok {
			p.unusable, p.why = true, "a number out of reach"
			return
		}
		p.allInt = p.allInt && n.IsInt()
		if p.lo == nil || n.Cmp(p.lo) < 0 {
			p.lo = n
		}
		if p.hi == nil || n.Cmp(p.hi) > 0 {
			p.hi = n
		}
	case bool:
		p.kinds["bool"] = true
		p.example(v)
		p.bools[v] = true
	default:
		p.kinds["other"] = true
	}
}

// addString folds v into the pattern's prefix, suffix, middle characters and lengths. The
// first values are kept until suggestSettle of them fix a prefix and a suffix that do not
// overlap in any of them; after that both only shrink, and what leaves them joins the middle of
// every earlier value (they all shared it), so the middle's characters are exactly those seen
// there, in one pass and bounded memory.
func (p *paramStats) addString(v string) {
	n := utf8.RuneCountInString(v)
	if p.nstr == 0 || n < p.minLen {
		p.minLen = n
	}
	p.maxLen = max(p.maxLen, n)
	p.nstr++
	if !p.settled {
		p.pending = append(p.pending, v)
		if len(p.pending) >= suggestSettle {
			p.settle()
		}
		return
	}
	p.fold(v)
}

// settle fixes the prefix and suffix from the kept values and folds them.
func (p *paramStats) settle() {
	if p.settled || len(p.pending) == 0 {
		return
	}
	p.settled = true
	vals := p.pending
	p.pending = nil
	p.prefix = truncRunes(vals[0], suggestPrefixMax)
	shortest := len(vals[0])
	for _, v := range vals[1:] {
		p.prefix = commonPrefix(p.prefix, v)
		shortest = min(shortest, len(v))
	}
	p.suffix = truncRunesRight(vals[0][len(p.prefix):], suggestPrefixMax)
	for _, v := range vals[1:] {
		p.suffix = commonSuffix(p.suffix, v)
	}
	for len(p.prefix)+len(p.suffix) > shortest {
		_, n := utf8.DecodeRuneInString(p.suffix)
		p.suffix = p.suffix[n:]
	}
	for _, v := range vals {
		p.classes.add(v[len(p.prefix) : len(v)-len(p.suffix)])
	}
}

// fold adds one value once the prefix and suffix are settled.
func (p *paramStats) fold(v string) {
	if np := commonPrefix(p.prefix, v); len(np) < len(p.prefix) {
		p.classes.add(p.prefix[len(np):])
		p.prefix = np
	}
	ns := commonSuffix(p.suffix, v)
	for len(p.prefix)+len(ns) > len(v) {
		_, n := utf8.DecodeRuneInString(ns)
		ns = ns[n:]
	}
	if len(ns) < len(p.suffix) {
		p.classes.add(p.suffix[:len(p.suffix)-len(ns)])
		p.suffix = ns
	}
	p.classes.add(v[len(p.prefix) : len(v)-len(p.suffix)])
}

// middle returns the pattern's suffix, the middle's characters and its length range (runes).
func (p *paramStats) middle() (suf string, cls charClasses, lo, hi int) {
	p.settle()
	n := utf8.RuneCountInString(p.prefix) + utf8.RuneCountInString(p.suffix)
	return p.suffix, p.classes, p.minLen - n, p.maxLen - n
}

func (c *charClasses) any() bool {
	return c.lower || c.upper || c.digit || c.other || c.control || len(c.punct) > 0
}

func (c *charClasses) add(s string) {
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z':
			c.lower = true
		case r >= 'A' && r <= 'Z':
			c.upper = true
		case r >= '0' && r <= '9':
			c.digit = true
		case r >= ' ' && r <= '~':
			if c.punct == nil {
				c.punct = map[rune]bool{}
			}
			c.punct[r] = true
		case unicode.IsControl(r) || r == utf8.RuneError:
			c.control = true
		default:
			c.other = true
		}
	}
}

// pattern is the character class of the middle: named ranges and the punctuation seen, or a
// broader class when the values hold more than a reader could check.
func (c *charClasses) pattern() string {
	switch {
	case c.control:
		return `(?s:.)`
	case c.other:
		return `[^\p{Cc}]`
	case len(c.punct) > 12:
		return `[ -~]`
	}
	var b strings.Builder
	b.WriteString("[")
	for _, x := range []struct {
		on bool
		s  string
	}{{c.lower, "a-z"}, {c.upper, "A-Z"}, {c.digit, "0-9"}} {
		if x.on {
			b.WriteString(x.s)
		}
	}
	for _, r := range slices.Sorted(maps.Keys(c.punct)) {
		if strings.ContainsRune(`\]-^[`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	b.WriteString("]")
	return b.String()
}

func truncRunes(s string, n int) string {
	for i := range s {
		if n == 0 {
			return s[:i]
		}
		n--
	}
	return s
}

func truncRunesRight(s string, n int) string {
	i := len(s)
	for ; i > 0 && n > 0; n-- {
		_, size := utf8.DecodeLastRuneInString(s[:i])
		i -= size
	}
	return s[i:]
}

func commonPrefix(a, b string) string {
	i := 0
	for i < len(a) && i < len(b) && a[i] == b[i] {
		i++
	}
	for i > 0 && i < len(a) && !utf8.RuneStart(a[i]) {
		i--
	}
	return a[:i]
}

// yq quotes s as a YAML double-quoted scalar (a JSON string is one).
func yq(s string) string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s)
	return strings.TrimSuffix(b.String(), "\n")
}

// widen returns n moved away from zero by margin×|n| (down when down), rounded outward: to an
// integer when every observed value was one, else to six decimals.
func widen(n *big.Rat, margin float64, down, integer bool) string {
	// The margin as the decimal the user wrote (0.2, not the binary double nearest to it).
	m, _ := new(big.Rat).SetString(strconv.FormatFloat(margin, 'g', -1, 64))
	d := new(big.Rat).Mul(new(big.Rat).Abs(n), m)
	w := new(big.Rat)
	if down {
		w.Sub(n, d)
	} else {
		w.Add(n, d)
	}
	scale := big.NewInt(1)
	if !integer {
		scale = big.NewInt(1_000_000)
	}
	num := new(big.Int).Mul(w.Num(), scale)
	q, r := new(big.Int).DivMod(num, w.Denom(), new(big.Int)) // floor division
	if !down && r.Sign() != 0 {
		q.Add(q, big.NewInt(1))
	}
	out := new(big.Rat).SetFrac(q, scale)
	if integer {
		return out.Num().String()
	}
	f := strings.TrimRight(out.FloatString(6), "0")
	return strings.TrimSuffix(f, ".")
}

// conditions writes the parameter conditions of a tool's rule and the evidence comments; it
// returns the condition lines and the comment lines.
func (s *suggester) conditions(ts *toolStats) (conds, notes []string) {
	for _, path := range slices.Sorted(maps.Keys(ts.params)) {
		p := ts.params[path]
		kinds := slices.Sorted(maps.Keys(p.kinds))
		ex := ""
		if len(p.examples) > 0 {
			ex = ", e.g. " + strings.Join(p.examples, ", ")
		}
		skip := func(why string) { notes = append(notes, fmt.Sprintf("%s: not constrained: %s%s", path, why, ex)) }
		switch {
		case p.redacted > 0:
			// Redacted values are never turned into patterns (the record holds a placeholder).
			notes = append(notes, fmt.Sprintf("%s: redacted in %d of %d calls: not turned into a pattern (examples elided)", path, p.redacted, ts.paramCalls))
			continue
		case p.unusable:
			skip(p.why)
			continue
		case p.present < ts.paramCalls || ts.withheld > 0:
			skip(fmt.Sprintf("sent in %d of %d calls (a condition would deny the calls without it)", p.present, ts.calls))
			continue
		case len(kinds) != 1:
			skip("values of several types (" + strings.Join(kinds, ", ") + ")")
			continue
		}
		c := "      - parameter: " + yq(path)
		switch kinds[0] {
		case "object":
			continue // its members have their own conditions
		case "string":
			if len(p.strs) <= suggestEnumMax {
				vals := slices.Sorted(maps.Keys(p.strs))
				q := make([]string, len(vals))
				for i, v := range vals {
					q[i] = yq(v)
				}
				conds = append(conds, c, "        one_of: ["+strings.Join(q, ", ")+"]")
				notes = append(notes, fmt.Sprintf("%s: %d distinct strings, all listed", path, len(vals)))
				continue
			}
			suf, cls, mlo, mhi := p.middle()
			ns := utf8.RuneCountInString(suf)
			lo := max(0, int(float64(mlo)*(1-s.margin)))
			hi := mhi + int(float64(mhi)*s.margin+0.999999)
			q := "*"
			switch {
			case hi <= suggestQuantMax && lo == hi:
				q = "{" + strconv.Itoa(lo) + "}"
			case hi <= suggestQuantMax:
				q = "{" + strconv.Itoa(lo) + "," + strconv.Itoa(hi) + "}"
			case lo > 0:
				q = "+"
			}
			mid := cls.pattern() + q
			if !cls.any() {
				mid = "" // every value is its prefix and suffix
			}
			pat := "^" + regexp.QuoteMeta(p.prefix) + mid + regexp.QuoteMeta(suf) + "$"
			conds = append(conds, c, "        match: "+yq(pat))
			if hi > suggestQuantMax {
				conds = append(conds, fmt.Sprintf("        max_length: %d", utf8.RuneCountInString(p.prefix)+hi+ns))
			}
			notes = append(notes, fmt.Sprintf("%s: more than %d distinct strings; between %s and %s %d to %d characters%s", path, suggestEnumMax, yq(p.prefix), yq(suf), mlo, mhi, ex))
		case "number":
			conds = append(conds, c, "        min_value: "+widen(p.lo, s.margin, true, p.allInt), "        max_value: "+widen(p.hi, s.margin, false, p.allInt))
			notes = append(notes, fmt.Sprintf("%s: numbers from %s to %s%s", path, p.lo.RatString(), p.hi.RatString(), ex))
		case "bool":
			if len(p.bools) == 2 {
				skip("both true and false were sent")
				continue
			}
			conds = append(conds, c, fmt.Sprintf("        equals: %t", p.bools[true]))
			notes = append(notes, fmt.Sprintf("%s: always %t", path, p.bools[true]))
		default:
			skip("lists of lists or objects")
		}
	}
	return conds, notes
}

var weekdays = []string{"sun", "mon", "tue", "wed", "thu", "fri", "sat"}

// timeWindow returns the time_of_day condition that covers every hour the agent worked, on the
// days it worked ("" when the calls span less than suggestTimeMinDays days or every hour of
// every day), and its evidence.
func (s *suggester) timeWindow() (cond, note string) {
	span := s.last.Sub(s.first)
	if span < suggestTimeMinDays*24*time.Hour {
		return "", fmt.Sprintf("hours not constrained: the calls span %s, less than the %d days a working pattern needs", span.Round(time.Minute), suggestTimeMinDays)
	}
	var hours [24]int
	for d := range 7 {
		for h := range 24 {
			hours[h] += s.hourOfWeek[d][h]
		}
	}
	// The window is the complement of the longest run of idle hours (it may wrap midnight).
	bestStart, bestLen := 0, 0
	for start := range 24 {
		n := 0
		for n < 24 && hours[(start+n)%24] == 0 {
			n++
		}
		if n > bestLen {
			bestStart, bestLen = start, n
		}
	}
	start, end := 0, 24
	if bestLen > 0 {
		start, end = (bestStart+bestLen)%24, bestStart
	}
	if end == 0 {
		end = 24
	}
	// The part of a window after midnight belongs to the day it started on.
	var days []string
	seen := [7]bool{}
	for d := range 7 {
		for h := range 24 {
			if s.hourOfWeek[d][h] == 0 {
				continue
			}
			day := d
			if start > end && h < end {
				day = (d + 6) % 7
			}
			seen[day] = true
		}
	}
	for d, ok := range seen {
		if ok {
			days = append(days, weekdays[d])
		}
	}
	if bestLen == 0 && len(days) == 7 {
		return "", fmt.Sprintf("hours not constrained: calls came at every hour of every day in %s", s.zone)
	}
	e := fmt.Sprintf("%02d:00", end)
	cond = fmt.Sprintf("      - time_of_day: {start: \"%02d:00\", end: \"%s\"", start, e)
	if len(days) < 7 {
		cond += ", days: [" + strings.Join(days, ", ") + "]"
	}
	cond += "}"
	return cond, fmt.Sprintf("hours worked in %s: %02d:00-%s on %s (over %d days)", s.zone, start, e, strings.Join(days, " "), int(span.Hours()/24))
}

// cm makes s safe inside a one-line YAML comment.
func cm(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return '?'
		}
		return r
	}, s)
}

// threshold is the call-rate bound for a busiest window of n calls: n widened by the margin,
// never below n (time_context counts "exceeds" as more than the threshold).
func (s *suggester) threshold(n int) int {
	return n + int(float64(n)*s.margin+0.999999)
}

// render writes the suggested policy. It is deterministic: the same calls give the same bytes.
func (s *suggester) render(threatRule bool) []byte {
	var b bytes.Buffer
	w := func(format string, a ...any) { fmt.Fprintf(&b, format+"\n", a...) }
	day := func(t time.Time) string { return t.UTC().Format(time.RFC3339) }
	w("# Least-privilege policy for %s, suggested by 'portcullis policy suggest' from %d allowed", cm(s.agent), s.learned)
	w("# calls seen from %s to %s, with a margin of %g%%. It allows what was", day(s.first), day(s.last), s.margin*100)
	w("# observed and denies the rest: review it before use.")
	if len(s.skipped) > 0 {
		var sk []string
		for _, d := range slices.Sorted(maps.Keys(s.skipped)) {
			sk = append(sk, fmt.Sprintf("%s %d", d, s.skipped[d]))
		}
		w("# Not learned from (the policy did not allow them): %s.", strings.Join(sk, ", "))
	}
	timeCond, timeNote := s.timeWindow()
	w("# %s.", timeNote)
	w("agent_id: %s", yq(s.agent))
	w("default_action: DENY")
	w("timezone: %s", yq(s.zone.String()))
	w("rules:")
	if threatRule {
		w("  # inspection.request_block_level is none: hold calls the inspection rates high.")
		w("  - name: high_threat")
		w("    tool: \".*\"")
		w("    action: CONSTRAIN")
		w("    conditions:")
		w("      - threat_score: high")
	}
	for _, tool := range slices.Sorted(maps.Keys(s.tools)) {
		ts := s.tools[tool]
		conds, notes := s.conditions(ts)
		w("  # %s: %d calls, first %s, last %s (e.g. %s)", cm(tool), ts.calls, day(ts.first), day(ts.last), strings.Join(ts.ids, " "))
		if ts.withheld > 0 {
			w("  #   parameters withheld from the record in %d calls: none constrained", ts.withheld)
		}
		for _, n := range notes {
			w("  #   %s", cm(n))
		}
		w("  - name: %s", yq("allow_"+tool))
		w("    tool: %s", yq(regexp.QuoteMeta(tool)))
		w("    action: ALLOW")
		if timeCond != "" {
			conds = append(conds, timeCond)
		}
		if len(conds) == 0 {
			w("    conditions: []")
		} else {
			w("    conditions:")
			for _, c := range conds {
				w("%s", c)
			}
		}
		for _, win := range suggestWindows {
			n := ts.busiest[win]
			w("  # %s: at most %d calls in a %d-minute window seen (calls of any decision)", cm(tool), n, win)
			w("  - name: %s", yq(fmt.Sprintf("rate_%dm_%s", win, tool)))
			w("    tool: %s", yq(regexp.QuoteMeta(tool)))
			w("    action: DENY")
			w("    conditions:")
			w("      - time_context:")
			w("          call_count_exceeds: {window_minutes: %d, threshold: %d}", win, s.threshold(n))
		}
	}
	return b.Bytes()
}

func runPolicySuggest(ctx context.Context, std Stdio, args []string) int {
	fs, loc := auditFlags(std, "suggest")
	fs.Init("portcullis policy suggest", flag.ContinueOnError)
	agent := fs.String("agent", "", "the agent whose allowed calls the policy is learned from (required)")
	since := fs.String("since", "14d", "calls at or after: RFC 3339 or an age (14d, 12h)")
	until := fs.String("until", "", "calls before: RFC 3339 or an age")
	out := fs.String("out", "", "write the policy to this file (default: standard output)")
	margin := fs.Float64("margin", 0.2, "how far numeric bounds, string lengths and call rates are widened beyond what was seen (0.2: 20%)")
	tz := fs.String("timezone", "", "IANA zone of the hours the agent worked (default: the zone of its policy in the gateway's configuration, else UTC)")
	if code, done := parseCmdFlags(std, fs, args); done {
		return code
	}
	if *agent == "" {
		problem(std.Err, "policy suggest: no --agent given", "portcullis policy suggest --agent report-generator --since 14d")
		return exitUsage
	}
	if *margin < 0 || *margin > 10 {
		problem(std.Err, fmt.Sprintf("policy suggest: --margin %g is outside 0-10", *margin), "e.g. --margin 0.2 for 20%")
		return exitUsage
	}
	var zone *time.Location
	if *tz != "" {
		z, err := time.LoadLocation(*tz)
		if err != nil || strings.EqualFold(*tz, "local") {
			problem(std.Err, fmt.Sprintf("policy suggest: --timezone %q is not an IANA zone", *tz), "e.g. --timezone Europe/Berlin")
			return exitUsage
		}
		zone = z
	}
	after, before, err := parseReplayWindow(*since, *until, time.Now())
	if err != nil {
		problem(std.Err, "policy suggest: "+err.Error(), "e.g. --since 14d or --since 2026-11-25T10:00:00Z")
		return exitUsage
	}
	st, _, ok := openStore(ctx, std, loc)
	if !ok {
		return exitUsage
	}
	defer st.Close()
	if zone == nil {
		zone = policyZone(loc.cfg.Policies, *agent)
	}
	win := decisionFilter{agent: *agent, after: after, before: before}
	s := newSuggester(*agent, zone, *margin)
	if _, err := scanToolDecisions(ctx, st, win, s.observe); err != nil {
		problem(std.Err, "policy suggest: "+err.Error(), "run 'portcullis audit verify' to check the log")
		return exitUsage
	}
	if s.learned == 0 {
		problem(std.Err, fmt.Sprintf("policy suggest: no allowed call of agent %q in the window", *agent), "widen --since, or check the agent id with 'portcullis audit query'")
		return exitFail
	}
	opts := policy.DefaultLintOptions
	opts.RequestBlockLevel = loc.cfg.RequestBlock()
	data := s.render(opts.RequestBlockLevel == threat.None)
	set, err := checkSuggestion(data, opts)
	if err != nil {
		problem(std.Err, "policy suggest: "+err.Error(), "this is a defect of the suggestion: please report it with the agent's calls")
		return exitFail
	}
	report := std.Err
	if *out != "" {
		if err := os.WriteFile(*out, data, 0o644); err != nil {
			problem(std.Err, "policy suggest: "+err.Error(), "")
			return exitUsage
		}
		report = std.Out
	} else {
		_, _ = std.Out.Write(data)
	}
	return verifySuggestion(ctx, st, win, set, report, std.Err)
}

// policyZone is the time zone of agent's policy among the configured policies: the zone its
// time conditions already speak in. UTC when there is none, or the policies do not parse (the
// suggestion does not depend on them otherwise).
func policyZone(paths []string, agent string) *time.Location {
	files, err := policy.ParseFiles(paths...)
	if err != nil {
		return time.UTC
	}
	for _, f := range files {
		for _, p := range f.Policies {
			if p.AgentID != agent || p.Timezone == "" {
				continue
			}
			if z, err := time.LoadLocation(p.Timezone); err == nil {
				return z
			}
		}
	}
	return time.UTC
}

// checkSuggestion runs on the suggestion what 'policy check' and 'policy lint' run.
func checkSuggestion(data []byte, opts policy.LintOptions) (*policy.Set, error) {
	f, err := policy.Parse("suggested.yaml", data)
	if err != nil {
		return nil, fmt.Errorf("the suggestion does not pass policy check: %w", err)
	}
	set, err := policy.Compile(f)
	if err != nil {
		return nil, fmt.Errorf("the suggestion does not pass policy check: %w", err)
	}
	for _, l := range policy.LintWith(opts, f) {
		if l.Severity >= policy.LintWarning {
			return nil, fmt.Errorf("the suggestion does not pass policy lint: %s", l)
		}
	}
	return set, nil
}

// verifySuggestion replays the suggestion over the calls it was learned from: an allowed call
// it would deny or hold (or cannot re-decide) fails the command, named by decision id.
func verifySuggestion(ctx context.Context, st ledger.Store, win decisionFilter, set *policy.Set, report, errw io.Writer) int {
	allowed, others := newReplayer(set), newReplayer(set)
	recent := map[string]*policy.CallList{}
	hist := func(r *ledger.Record) policy.History {
		if l := recent[r.Tool]; l != nil {
			return l
		}
		return &policy.CallList{}
	}
	allowed.history, others.history = hist, hist
	_, err := scanToolDecisions(ctx, st, win, func(r *ledger.Record) {
		switch {
		case allowedDecision(r):
			allowed.replay(r)
		case r.Policy != nil && slices.Contains(replayActions, strings.ToLower(r.Decision)):
			others.replay(r)
		}
		callCount(recent, r, suggestWindows, nil) // after the decision: the history is of earlier calls
	})
	if err != nil {
		problem(errw, "policy suggest: verifying: "+err.Error(), "run 'portcullis audit verify' to check the log")
		return exitUsage
	}
	a := allowed.rep
	var bad []string
	closed := countTo(a, policy.Deny, policy.Constrain)
	for _, t := range a.Transitions {
		if t.To == policy.Deny.String() || t.To == policy.Constrain.String() {
			bad = append(bad, fmt.Sprintf("%s→%s %d (e.g. %s)", t.From, t.To, t.Count, strings.Join(t.Examples, " ")))
		}
	}
	for _, why := range slices.Sorted(maps.Keys(a.UndecidableWhy)) {
		c := a.UndecidableWhy[why]
		bad = append(bad, fmt.Sprintf("undecidable %d: %s (e.g. %s)", c.Count, why, strings.Join(c.Examples, " ")))
	}
	newAllow := 0
	var newEx []string
	for _, t := range others.rep.Transitions {
		if t.To == policy.Allow.String() || t.To == policy.Log.String() {
			newAllow += t.Count
			newEx = append(newEx, t.Examples...)
		}
	}
	fmt.Fprintf(report, "replayed the suggestion (policy version %s) over %d allowed decisions: %d would be denied or held, %d undecidable\n",
		set.Version(), a.Replayed, closed, a.Undecidable)
	if newAllow > 0 {
		fmt.Fprintf(report, "%d of %d decisions the policy did not allow would be allowed (e.g. %s)\n", newAllow, others.rep.Replayed, strings.Join(newEx[:min(len(newEx), replayExamples)], " "))
	}
	if len(bad) > 0 {
		fmt.Fprintf(errw, "policy suggest: the suggestion would change allowed decisions:\n  %s\n", strings.Join(bad, "\n  "))
		return exitFail
	}
	return exitOK
}

// countTo counts the changed decisions that become one of to.
func countTo(rep *replayReport, to ...policy.Action) int {
	n := 0
	for _, t := range rep.Transitions {
		for _, a := range to {
			if t.To == a.String() {
				n += t.Count
			}
		}
	}
	return n
}

func commonSuffix(a, b string) string {
	i := 0
	for i < len(a) && i < len(b) && a[len(a)-1-i] == b[len(b)-1-i] {
		i++
	}
	s := a[len(a)-i:]
	for s != "" && !utf8.RuneStart(s[0]) {
		s = s[1:]
	}
	return s
}
