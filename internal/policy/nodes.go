package policy

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/portcullis-ai/portcullis/internal/yamlx"
)

func (p *parser) pos(n *yaml.Node) Pos { return Pos{File: p.file, Line: n.Line, Col: n.Column} }

func (p *parser) errorf(n *yaml.Node, key, hint, format string, args ...any) {
	if hint == "" {
		hint = "see docs/policy-language.md (or docs/policy.schema.json) for the keys and types allowed here"
	}
	p.errs = append(p.errs, &Error{Pos: p.pos(n), Key: key, Msg: fmt.Sprintf(format, args...), Hint: hint})
}

// checkShape rejects what the policy language never needs and what could make loading
// expensive: aliases and anchors (billion-laughs), custom tags, and deep nesting.
func (p *parser) checkShape(n *yaml.Node, depth int) bool {
	if e := yamlx.CheckShape(n, depth, DefaultLimits.MaxDepth, "policies"); e != nil {
		p.errorf(e.Node, "", e.Hint, "%s", e.Msg)
		return false
	}
	return true
}

type kv struct {
	key   string
	kn, v *yaml.Node
}

// fields returns a mapping's entries, reporting duplicate and unknown keys (allowed nil: any key).
func (p *parser) fields(n *yaml.Node, path string, allowed []string) ([]kv, bool) {
	if n.Kind != yaml.MappingNode {
		p.errorf(n, path, "", "want a mapping (key: value lines), got %s", yamlx.Describe(n))
		return nil, false
	}
	out := make([]kv, 0, len(n.Content)/2)
	var seen map[string]bool // only for large mappings; small ones are checked by a scan of out
	if len(n.Content) > 32 {
		seen = map[string]bool{}
	}
	isDup := func(key string) bool {
		if seen != nil {
			return seen[key]
		}
		for _, e := range out {
			if e.key == key {
				return true
			}
		}
		return false
	}
	ok := true
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			p.errorf(k, path, "keys are plain names", "a key must be a string, got %s", yamlx.Describe(k))
			ok = false
			continue
		}
		key := k.Value
		if isDup(key) {
			p.errorf(k, join(path, key), "remove one of the two; YAML keeps only one and the policy would be ambiguous", "duplicate key %q", key)
			ok = false
			continue
		}
		if seen != nil {
			seen[key] = true
		}
		if allowed != nil && !contains(allowed, key) {
			p.errorf(k, join(path, key), yamlx.UnknownHint(key, allowed), "unknown key %q", key)
			ok = false
			continue
		}
		out = append(out, kv{key, k, v})
	}
	return out, ok
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func (p *parser) str(n *yaml.Node, path string) (string, bool) {
	if n.Kind != yaml.ScalarNode || n.Tag != "!!str" {
		p.errorf(n, path, "quote the value if it looks like a number or boolean", "want a string, got %s", yamlx.Describe(n))
		return "", false
	}
	return n.Value, true
}

// nonEmpty is str that also rejects "".
func (p *parser) nonEmpty(n *yaml.Node, path string) (string, bool) {
	s, ok := p.str(n, path)
	if ok && strings.TrimSpace(s) == "" {
		p.errorf(n, path, "", "must not be empty")
		return "", false
	}
	return s, ok
}

func (p *parser) boolean(n *yaml.Node, path string) (bool, bool) {
	if n.Kind != yaml.ScalarNode || n.Tag != "!!bool" {
		p.errorf(n, path, "write true or false without quotes", "want true or false, got %s", yamlx.Describe(n))
		return false, false
	}
	var b bool
	if err := n.Decode(&b); err != nil {
		p.errorf(n, path, "write true or false", "invalid boolean: %v", err)
		return false, false
	}
	return b, true
}

// number reads a number literal exactly (Number): a limit like 9007199254740993 must not round
// to a neighbouring float64. Decimal text of any size is kept as written; YAML's other integer
// forms (0x1F, 0o17, 1_000) are read by the YAML decoder, which holds them exactly in 64 bits. A
// plain (unquoted) scalar YAML leaves as a string because no float64 holds it, e.g. 1e400, is
// still a decimal number, and is compared exactly too.
func (p *parser) number(n *yaml.Node, path string) (Number, bool) {
	bad := func() (Number, bool) {
		p.errorf(n, path, "write a finite decimal number, e.g. 90", "invalid number %q", yamlx.Clip(n.Value))
		return Number{}, false
	}
	plainStr := n.Kind == yaml.ScalarNode && n.Tag == "!!str" && n.Style == 0
	if plainStr {
		if x, err := ParseNumber(n.Value); err == nil {
			return x, true
		}
	}
	if n.Kind != yaml.ScalarNode || (n.Tag != "!!int" && n.Tag != "!!float") {
		p.errorf(n, path, "write a number without quotes, e.g. 90", "want a number, got %s", yamlx.Describe(n))
		return Number{}, false
	}
	text := strings.ReplaceAll(n.Value, "_", "")
	if d := strings.TrimLeft(text, "+-"); len(d) > 1 && d[0] == '0' && d[1] >= '0' && d[1] <= '9' {
		// YAML 1.1 reads 017 as octal 15, YAML 1.2 as 17: refuse to guess.
		p.errorf(n, path, "write 17 for seventeen, or 0o17 for octal", "ambiguous number %q (leading zero)", yamlx.Clip(n.Value))
		return Number{}, false
	}
	if x, err := ParseNumber(text); err == nil {
		return x, true
	}
	if n.Tag == "!!int" {
		var i int64
		if err := n.Decode(&i); err == nil {
			x, err := ParseNumber(strconv.FormatInt(i, 10))
			return x, err == nil
		}
		var u uint64
		if err := n.Decode(&u); err == nil {
			x, err := ParseNumber(strconv.FormatUint(u, 10))
			return x, err == nil
		}
	}
	return bad() // .inf, .nan, or a form only an explicit tag makes a number
}

func (p *parser) integer(n *yaml.Node, path string, lo, hi int) (int, bool) {
	if n.Kind != yaml.ScalarNode || n.Tag != "!!int" {
		p.errorf(n, path, "write a whole number without quotes", "want an integer, got %s", yamlx.Describe(n))
		return 0, false
	}
	var i int64
	if err := n.Decode(&i); err != nil || i < int64(lo) || i > int64(hi) {
		p.errorf(n, path, fmt.Sprintf("use a whole number from %d to %d", lo, hi), "integer %s out of range", yamlx.Clip(n.Value))
		return 0, false
	}
	return int(i), true
}

// strings reads a string or a list of strings.
func (p *parser) strList(n *yaml.Node, path string) ([]string, bool) {
	if n.Kind == yaml.ScalarNode {
		s, ok := p.nonEmpty(n, path)
		if !ok {
			return nil, false
		}
		return []string{s}, true
	}
	if n.Kind != yaml.SequenceNode || len(n.Content) == 0 {
		p.errorf(n, path, "", "want a string or a non-empty list of strings, got %s", yamlx.Describe(n))
		return nil, false
	}
	out := make([]string, 0, len(n.Content))
	ok := true
	for i, c := range n.Content {
		s, good := p.nonEmpty(c, fmt.Sprintf("%s[%d]", path, i))
		ok = ok && good
		out = append(out, s)
	}
	return out, ok
}

func (p *parser) scalar(n *yaml.Node, path string) (any, bool) {
	if n.Kind != yaml.ScalarNode {
		p.errorf(n, path, "", "want a string, number or boolean, got %s", yamlx.Describe(n))
		return nil, false
	}
	switch n.Tag {
	case "!!str":
		return n.Value, true
	case "!!bool":
		return p.boolean(n, path)
	case "!!int", "!!float":
		return p.number(n, path)
	}
	p.errorf(n, path, "", "want a string, number or boolean, got %s", yamlx.Describe(n))
	return nil, false
}

func (p *parser) action(n *yaml.Node, path string) (Action, bool) {
	s, ok := p.str(n, path)
	if !ok {
		return Deny, false
	}
	a, err := ParseAction(s)
	if err != nil {
		p.errorf(n, path, "use ALLOW, DENY, CONSTRAIN or LOG", "%v", err)
		return Deny, false
	}
	return a, true
}

func (p *parser) pattern(n *yaml.Node, path string, whole bool) (Pattern, bool) {
	s, ok := p.str(n, path)
	if !ok {
		return Pattern{}, false
	}
	if plainName(s) {
		return Pattern{Pos: p.pos(n), Source: s}, true
	}
	// Validate the pattern on its own (wrapped as text, a fragment such as "a)|(.*" would compile
	// and escape the whole-name anchoring), then in its anchored form.
	_, err := regexp.Compile(s)
	if err == nil && whole {
		_, err = anchored(s)
	}
	if err != nil {
		msg := strings.TrimPrefix(err.Error(), "error parsing regexp: ")
		p.errorf(n, path, "patterns are RE2 (no look-around or back-references); escape literal dots as \\\\. inside double quotes", "invalid regular expression %q: %s", yamlx.Clip(s), msg)
		return Pattern{}, false
	}
	return Pattern{Pos: p.pos(n), Source: s}, true
}

// plainName reports whether s is a non-empty run of letters, digits, '_' and '-': a pattern
// that matches only itself, so the regexp machinery can be skipped.
func plainName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

func (p *parser) patterns(n *yaml.Node, path string) ([]Pattern, bool) {
	if n.Kind == yaml.SequenceNode {
		if len(n.Content) == 0 {
			p.errorf(n, path, "name at least one tool pattern", "empty list of tool patterns")
			return nil, false
		}
		out := make([]Pattern, 0, len(n.Content))
		ok := true
		for i, c := range n.Content {
			pt, good := p.pattern(c, fmt.Sprintf("%s[%d]", path, i), true)
			ok = ok && good
			out = append(out, pt)
		}
		return out, ok
	}
	pt, ok := p.pattern(n, path, true)
	return []Pattern{pt}, ok
}

func (p *parser) clock(n *yaml.Node, path string, allow24 bool) (Clock, bool) {
	hint := `write "HH:MM" in quotes, 24-hour clock, e.g. "09:00"`
	if n.Kind != yaml.ScalarNode || (n.Tag != "!!str" && n.Tag != "!!int") {
		p.errorf(n, path, hint, "want a time of day, got %s", yamlx.Describe(n))
		return 0, false
	}
	s := n.Value
	if len(s) != 5 || s[2] != ':' {
		p.errorf(n, path, hint, "invalid time of day %q", yamlx.Clip(s))
		return 0, false
	}
	h, err1 := strconv.Atoi(s[:2])
	m, err2 := strconv.Atoi(s[3:])
	if err1 != nil || err2 != nil || h < 0 || m < 0 || m > 59 || h > 24 || (h == 24 && (m != 0 || !allow24)) {
		p.errorf(n, path, hint, "invalid time of day %q", yamlx.Clip(s))
		return 0, false
	}
	return Clock(h*60 + m), true
}

func (p *parser) timezone(n *yaml.Node, path string) (string, bool) {
	s, ok := p.nonEmpty(n, path)
	if !ok {
		return "", false
	}
	if _, err := time.LoadLocation(s); err != nil || s == "Local" {
		p.errorf(n, path, `use an IANA time zone name such as "America/New_York" or "UTC"`, "unknown time zone %q", yamlx.Clip(s))
		return "", false
	}
	return s, true
}

var dayNames = map[string]time.Weekday{
	"sun": time.Sunday, "mon": time.Monday, "tue": time.Tuesday, "wed": time.Wednesday,
	"thu": time.Thursday, "fri": time.Friday, "sat": time.Saturday,
	"sunday": time.Sunday, "monday": time.Monday, "tuesday": time.Tuesday, "wednesday": time.Wednesday,
	"thursday": time.Thursday, "friday": time.Friday, "saturday": time.Saturday,
}

func (p *parser) days(n *yaml.Node, path string) ([]time.Weekday, bool) {
	names, ok := p.strList(n, path)
	if !ok {
		return nil, false
	}
	var out []time.Weekday
	for i, s := range names {
		d, found := dayNames[strings.ToLower(s)]
		if !found {
			elem := n
			if n.Kind == yaml.SequenceNode && i < len(n.Content) {
				elem = n.Content[i]
			}
			p.errorf(elem, fmt.Sprintf("%s[%d]", path, i), "use mon, tue, wed, thu, fri, sat, sun", "unknown day %q", yamlx.Clip(s))
			return nil, false
		}
		for _, x := range out {
			if x == d {
				p.errorf(n, path, "list each day once", "day %q listed twice", s)
				return nil, false
			}
		}
		out = append(out, d)
	}
	return out, true
}

// duration reads a Go duration ("15m", "2h") within [lo, hi].
func (p *parser) duration(n *yaml.Node, path string, lo, hi time.Duration) time.Duration {
	s, ok := p.str(n, path)
	if !ok {
		return 0
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < lo || d > hi {
		p.errorf(n, path, fmt.Sprintf("write a duration from %v to %v, e.g. \"30m\"", lo, hi), "invalid duration %q", yamlx.Clip(s))
		return 0
	}
	return d
}
