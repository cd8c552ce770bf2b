package policy

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"

	"github.com/portcullis-ai/portcullis/internal/threat"
	"github.com/portcullis-ai/portcullis/internal/yamlx"

	// Time zone data is embedded so that time conditions work on machines without tzdata.
	_ "time/tzdata"
)

// Limits bound what the loader accepts, so that a hostile or broken file yields a clear error
// instead of exhausting memory or time.
type Limits struct {
	MaxFileBytes int64 // per file
	MaxRules     int   // per set
	MaxDepth     int   // YAML nesting depth
	MaxExprBytes int   // per CEL expression
	MaxFiles     int   // per set
}

// DefaultLimits are the limits Parse, ParseFiles and Load apply.
var DefaultLimits = Limits{
	MaxFileBytes: 8 << 20,
	MaxRules:     100_000,
	MaxDepth:     32,
	MaxExprBytes: 4096,
	MaxFiles:     10_000,
}

// TestFileSuffixes name files that hold `portcullis policy test` cases; loading a directory skips them.
var TestFileSuffixes = []string{"_test.yaml", "_test.yml"}

// IsTestFile reports whether name is a policy test file rather than a policy file.
func IsTestFile(name string) bool {
	for _, s := range TestFileSuffixes {
		if strings.HasSuffix(name, s) {
			return true
		}
	}
	return false
}

// ParseFiles reads and parses every path: a file is read as is; a directory contributes its
// *.yaml and *.yml files (not recursively, test files skipped) in name order. All errors of all
// files are returned together as an ErrorList.
func ParseFiles(paths ...string) ([]*File, error) {
	srcs, err := ReadSources(paths...)
	if err != nil {
		return nil, err
	}
	return ParseSources(srcs)
}

// Source is one policy file as read: its name and its exact bytes. A hot reload parses the bytes
// it has checked for stability, never a second read of the file.
type Source struct {
	Name string
	Data []byte
}

// ReadSources reads the policy files paths name (see ExpandPaths), each within the size limit.
// Unreadable or oversized files are reported together as an ErrorList.
func ReadSources(paths ...string) ([]Source, error) {
	names, err := ExpandPaths(paths...)
	if err != nil {
		return nil, err
	}
	if len(names) > DefaultLimits.MaxFiles {
		return nil, ErrorList{{Pos: Pos{File: paths[0]}, Msg: fmt.Sprintf("%d policy files, more than the limit of %d", len(names), DefaultLimits.MaxFiles)}}
	}
	srcs := make([]Source, 0, len(names))
	var errs ErrorList
	for _, name := range names {
		data, err := readLimited(name, DefaultLimits.MaxFileBytes)
		if err != nil {
			errs = append(errs, &Error{Pos: Pos{File: name, Line: 1, Col: 1}, Msg: err.Error(), Hint: "policy files must be readable and at most " + humanBytes(DefaultLimits.MaxFileBytes)})
			continue
		}
		srcs = append(srcs, Source{Name: name, Data: data})
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return srcs, nil
}

// ParseSources parses files already read, as one set: all errors of all files come back together.
func ParseSources(srcs []Source) ([]*File, error) {
	if len(srcs) > DefaultLimits.MaxFiles {
		return nil, ErrorList{{Pos: Pos{File: srcs[0].Name}, Msg: fmt.Sprintf("%d policy files, more than the limit of %d", len(srcs), DefaultLimits.MaxFiles)}}
	}
	var files []*File
	var errs ErrorList
	for _, src := range srcs {
		if int64(len(src.Data)) > DefaultLimits.MaxFileBytes {
			errs = append(errs, &Error{Pos: Pos{File: src.Name, Line: 1, Col: 1}, Msg: "file is larger than the " + humanBytes(DefaultLimits.MaxFileBytes) + " limit",
				Hint: "policy files must be readable and at most " + humanBytes(DefaultLimits.MaxFileBytes)})
			continue
		}
		f, err := Parse(src.Name, src.Data)
		if err != nil {
			var l ErrorList
			if errors.As(err, &l) {
				errs = append(errs, l...)
				continue
			}
			return nil, err
		}
		files = append(files, f)
	}
	errs = append(errs, checkSet(files)...)
	if len(errs) > 0 {
		return nil, errs
	}
	return files, nil
}

// ExpandPaths turns files and directories into the list of policy files they name.
func ExpandPaths(paths ...string) ([]string, error) {
	if len(paths) == 0 {
		return nil, fmt.Errorf("load policy: no path given")
	}
	var out []string
	for _, p := range paths {
		st, err := os.Stat(p)
		if err != nil {
			return nil, fmt.Errorf("load policy: %w", err)
		}
		if !st.IsDir() {
			out = append(out, p)
			continue
		}
		ents, err := os.ReadDir(p)
		if err != nil {
			return nil, fmt.Errorf("load policy: %w", err)
		}
		for _, e := range ents {
			n := e.Name()
			if e.IsDir() || strings.HasPrefix(n, ".") || IsTestFile(n) {
				continue
			}
			if strings.HasSuffix(n, ".yaml") || strings.HasSuffix(n, ".yml") {
				out = append(out, filepath.Join(p, n))
			}
		}
	}
	return out, nil
}

func readLimited(name string, max int64) ([]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, fmt.Errorf("read policy: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, fmt.Errorf("read policy: %w", err)
	}
	if int64(len(data)) > max {
		return nil, fmt.Errorf("file is larger than the %s limit", humanBytes(max))
	}
	return data, nil
}

func humanBytes(n int64) string {
	if n >= 1<<20 && n%(1<<20) == 0 {
		return fmt.Sprintf("%d MiB", n>>20)
	}
	return fmt.Sprintf("%d bytes", n)
}

// checkSet finds problems that span files: two policies for one agent.
func checkSet(files []*File) ErrorList {
	var errs ErrorList
	seen := map[string]Pos{}
	rules := 0
	for _, f := range files {
		for _, p := range f.Policies {
			rules += len(p.Rules)
			if first, dup := seen[p.AgentID]; dup {
				errs = append(errs, &Error{Pos: p.Pos, Key: "agent_id", Msg: fmt.Sprintf("second policy for agent %q (the first is at %s)", p.AgentID, first),
					Hint: "each agent has exactly one policy in a set; merge the rules into one policy"})
				continue
			}
			seen[p.AgentID] = p.Pos
		}
	}
	if rules > DefaultLimits.MaxRules && len(files) > 0 {
		errs = append(errs, &Error{Pos: Pos{File: files[0].Name, Line: 1, Col: 1}, Msg: fmt.Sprintf("the set has %d rules, more than the limit of %d", rules, DefaultLimits.MaxRules),
			Hint: "split the agents' policies across gateways, or use tool patterns instead of one rule per tool"})
	}
	return errs
}

// Parse parses one policy file (possibly several YAML documents). It never returns a partial
// File: any problem yields an ErrorList naming file:line:col and the key.
func Parse(name string, data []byte) (*File, error) {
	p := &parser{file: name}
	if int64(len(data)) > DefaultLimits.MaxFileBytes {
		p.errs = append(p.errs, &Error{Pos: Pos{File: name, Line: 1, Col: 1}, Msg: fmt.Sprintf("file is %d bytes, larger than the %s limit", len(data), humanBytes(DefaultLimits.MaxFileBytes)),
			Hint: "split the policy set into several files"})
		return nil, p.errs
	}
	if !utf8.Valid(data) {
		p.errs = append(p.errs, &Error{Pos: Pos{File: name, Line: 1, Col: 1}, Msg: "file is not valid UTF-8", Hint: "save the file as UTF-8"})
		return nil, p.errs
	}
	f := &File{Name: name, sum: sha256.Sum256(data)}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	seenAgents := map[string]Pos{}
	for {
		var doc yaml.Node
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			p.errs = append(p.errs, p.syntaxError(err))
			break
		}
		if doc.Kind == 0 || len(doc.Content) == 0 {
			continue
		}
		root := doc.Content[0]
		if root.Kind == yaml.ScalarNode && root.Tag == "!!null" {
			continue // an empty document, e.g. after a trailing ---
		}
		if !p.checkShape(root, 1) {
			continue
		}
		pol := p.policy(root)
		if pol == nil {
			continue
		}
		if first, dup := seenAgents[pol.AgentID]; dup {
			p.errs = append(p.errs, &Error{Pos: pol.Pos, Key: "agent_id", Msg: fmt.Sprintf("second policy for agent %q (the first is at %s)", pol.AgentID, first),
				Hint: "each agent has exactly one policy in a set; merge the rules into one policy"})
			continue
		}
		seenAgents[pol.AgentID] = pol.Pos
		f.Policies = append(f.Policies, pol)
	}
	if len(p.errs) > 0 {
		return nil, p.errs
	}
	if len(f.Policies) == 0 {
		return nil, ErrorList{{Pos: Pos{File: name, Line: 1, Col: 1}, Msg: "no policy in file", Hint: "a policy file holds one or more YAML documents, each with agent_id and rules"}}
	}
	return f, nil
}

func (p *parser) syntaxError(err error) *Error {
	line, col, msg := yamlx.SyntaxError(err)
	return &Error{Pos: Pos{File: p.file, Line: line, Col: col}, Msg: "YAML syntax error: " + msg, Hint: "check the indentation and quoting on this line and the one before"}
}

type parser struct {
	file string
	errs ErrorList
	// labels are the session labels the policy being parsed knows (built-in and declared).
	labels []string
}

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

var policyKeys = []string{"agent_id", "default_action", "rules", "enforcement", "description", "version",
	"timezone", "business_hours", "classification_levels", "tool_classifications",
	"tools", "labels", "require_proposal"}

// DefaultClassificationLevels is the scale data_classification uses when a policy sets none.
var DefaultClassificationLevels = []string{"public", "internal", "confidential", "restricted"}

func (p *parser) policy(n *yaml.Node) *Policy {
	before := len(p.errs)
	fs, _ := p.fields(n, "", policyKeys)
	pol := &Policy{Pos: p.pos(n)}
	var rulesNode, tcNode, toolsNode *yaml.Node
	for _, f := range fs {
		switch f.key {
		case "tools":
			toolsNode = f.v
		case "labels":
			pol.Labels = p.customLabels(f.v, f.key)
		case "require_proposal":
			pol.RequireProposal = p.duration(f.v, f.key, time.Second, 24*time.Hour)
		case "agent_id":
			pol.AgentID, _ = p.nonEmpty(f.v, f.key)
		case "default_action":
			pol.DefaultAction, _ = p.action(f.v, f.key)
			pol.HasDefault = true
		case "description":
			pol.Description, _ = p.str(f.v, f.key)
		case "version":
			if f.v.Kind != yaml.ScalarNode || f.v.Tag == "!!null" {
				p.errorf(f.v, f.key, `e.g. version: "1.2"`, "want a version string, got %s", yamlx.Describe(f.v))
			} else {
				pol.Version = f.v.Value
			}
		case "timezone":
			pol.Timezone, _ = p.timezone(f.v, f.key)
		case "business_hours":
			pol.BusinessHours = p.businessHours(f.v, f.key)
		case "classification_levels":
			levels, ok := p.strList(f.v, f.key)
			if ok && f.v.Kind != yaml.SequenceNode {
				p.errorf(f.v, f.key, "list the levels lowest first, e.g. [public, internal, confidential, restricted]", "want a list of levels")
			} else if ok {
				for i, l := range levels {
					if contains(levels[:i], l) {
						p.errorf(f.v.Content[i], fmt.Sprintf("%s[%d]", f.key, i), "list each level once", "level %q listed twice", l)
					}
					if l == "tool" {
						p.errorf(f.v.Content[i], fmt.Sprintf("%s[%d]", f.key, i), "choose another name", `"tool" is reserved (data_classification: tool)`)
					}
				}
				pol.ClassificationLevels = levels
			}
		case "tool_classifications":
			tcNode = f.v
		case "rules":
			rulesNode = f.v
		case "enforcement":
			pol.Enforcement = p.enforcement(f.v, f.key)
		}
	}
	if pol.AgentID == "" && len(p.errs) == before {
		p.errorf(n, "agent_id", "every policy names the agent it governs: agent_id: my-agent", "missing required key agent_id")
	}
	levels := pol.ClassificationLevels
	if levels == nil {
		levels = DefaultClassificationLevels
	}
	if tcNode != nil {
		tfs, _ := p.fields(tcNode, "tool_classifications", nil)
		pol.ToolClassifications = map[string]string{}
		for _, f := range tfs {
			lv, ok := p.str(f.v, "tool_classifications."+f.key)
			if ok && !contains(levels, lv) {
				p.errorf(f.v, "tool_classifications."+f.key, "levels: "+strings.Join(levels, ", "), "unknown classification level %q", yamlx.Clip(lv))
			}
			pol.ToolClassifications[f.key] = lv
		}
	}
	p.labels = append([]string{LabelUntrusted, LabelPrivate}, pol.Labels...)
	if toolsNode != nil {
		pol.Tools = p.toolDecls(toolsNode, "tools", levels)
	}
	if rulesNode != nil {
		pol.Rules = p.rules(rulesNode, levels)
	}
	if len(p.errs) > before {
		return nil
	}
	return pol
}

func (p *parser) businessHours(n *yaml.Node, path string) *BusinessHours {
	fs, _ := p.fields(n, path, []string{"start", "end", "days", "timezone"})
	bh := &BusinessHours{Pos: p.pos(n), Start: 8 * 60, End: 18 * 60, Days: []time.Weekday{time.Monday, time.Tuesday, time.Wednesday, time.Thursday, time.Friday}}
	for _, f := range fs {
		switch f.key {
		case "start":
			bh.Start, _ = p.clock(f.v, join(path, f.key), false)
		case "end":
			bh.End, _ = p.clock(f.v, join(path, f.key), true)
		case "days":
			bh.Days, _ = p.days(f.v, join(path, f.key))
		case "timezone":
			bh.Timezone, _ = p.timezone(f.v, join(path, f.key))
		}
	}
	if bh.Start == bh.End {
		p.errorf(n, path, "business hours need start before end, e.g. 08:00 to 18:00", "empty business hours (start equals end)")
	}
	return bh
}

var enforcementStrength = map[string]Action{
	EnforceExecute:       Allow,
	EnforceRecordAllow:   Log,
	EnforceQueueApproval: Constrain,
	EnforceReturnError:   Deny,
}

// DefaultEnforcement is the seed's mapping, used for decisions a policy does not map.
var DefaultEnforcement = [4]string{
	Deny:      EnforceReturnError,
	Constrain: EnforceQueueApproval,
	Log:       EnforceRecordAllow,
	Allow:     EnforceExecute,
}

func (p *parser) enforcement(n *yaml.Node, path string) []*EnforcementEntry {
	if n.Kind != yaml.SequenceNode {
		p.errorf(n, path, "write a list of {decision: ALLOW, action: execute_tool} items", "want a list, got %s", yamlx.Describe(n))
		return nil
	}
	var out []*EnforcementEntry
	seen := map[Action]bool{}
	for i, item := range n.Content {
		ip := fmt.Sprintf("%s[%d]", path, i)
		fs, _ := p.fields(item, ip, []string{"decision", "action"})
		e := &EnforcementEntry{Pos: p.pos(item)}
		var hasD, hasA bool
		var actNode *yaml.Node
		for _, f := range fs {
			switch f.key {
			case "decision":
				var ok bool
				e.Decision, ok = p.action(f.v, ip+".decision")
				hasD = ok
			case "action":
				s, ok := p.str(f.v, ip+".action")
				if ok {
					if _, known := enforcementStrength[s]; !known {
						p.errorf(f.v, ip+".action", "known actions: execute_tool, record_but_allow, log_and_queue_for_approval, log_and_return_error", "unknown enforcement action %q", yamlx.Clip(s))
					} else {
						e.Action, hasA, actNode = s, true, f.v
					}
				}
			}
		}
		if item.Kind == yaml.MappingNode && (len(fs) < 2) && len(fs) == len(item.Content)/2 {
			p.errorf(item, ip, "each item needs both decision and action", "incomplete enforcement entry")
			continue
		}
		if hasD && seen[e.Decision] {
			p.errorf(item, ip+".decision", "map each decision once", "decision %s mapped twice", e.Decision)
		}
		if hasD && hasA {
			seen[e.Decision] = true
			if s := enforcementStrength[e.Action]; e.Decision.StricterThan(s) {
				p.errorf(actNode, ip+".action", fmt.Sprintf("map %s to %s or something stricter", e.Decision, DefaultEnforcement[e.Decision]),
					"action %s would let a %s decision through (fail-open)", e.Action, e.Decision)
			}
			out = append(out, e)
		}
	}
	return out
}

var ruleKeys = []string{"name", "tool", "not_tool", "action", "conditions", "enforcement", "approval", "dry_run"}

// approvalKeys are the keys of a rule's approval terms.
var approvalKeys = []string{"required", "expiry", "grant_ttl"}

func (p *parser) rules(n *yaml.Node, levels []string) []*Rule {
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return nil
	}
	if n.Kind != yaml.SequenceNode {
		p.errorf(n, "rules", "rules is a list: each rule starts with '- name: ...'", "want a list, got %s", yamlx.Describe(n))
		return nil
	}
	if len(n.Content) > DefaultLimits.MaxRules {
		p.errorf(n, "rules", "split the rules or use tool patterns", "%d rules, more than the limit of %d", len(n.Content), DefaultLimits.MaxRules)
		return nil
	}
	out := make([]*Rule, 0, len(n.Content))
	names := map[string]Pos{}
	for i, item := range n.Content {
		r := p.rule(item, "rules["+strconv.Itoa(i)+"]", levels)
		if r == nil {
			continue
		}
		if first, dup := names[r.Name]; dup {
			p.errorf(item, fmt.Sprintf("rules[%d].name", i), "rule names are unique within a policy: they identify the deciding rule in decisions and the audit record",
				"duplicate rule name %q (first at %s)", r.Name, first)
			continue
		}
		names[r.Name] = r.Pos
		out = append(out, r)
	}
	return out
}

func (p *parser) rule(n *yaml.Node, path string, levels []string) *Rule {
	before := len(p.errs)
	fs, _ := p.fields(n, path, ruleKeys)
	r := &Rule{Pos: p.pos(n)}
	var hasName, hasTool, hasAction bool
	var enfNode, apprNode *yaml.Node
	for _, f := range fs {
		kp := join(path, f.key)
		switch f.key {
		case "approval":
			r.Approval, apprNode = p.approvalSettings(f.v, kp), f.v
		case "dry_run":
			r.DryRun, _ = p.boolean(f.v, kp)
		case "name":
			r.Name, hasName = p.nonEmpty(f.v, kp)
		case "tool":
			r.Tools, hasTool = p.patterns(f.v, kp)
		case "not_tool":
			r.NotTools, _ = p.patterns(f.v, kp)
		case "action":
			r.Action, hasAction = p.action(f.v, kp)
		case "enforcement":
			s, ok := p.str(f.v, kp)
			if ok && s != RuleRequireApproval && s != RuleRequireApprovalAndLog {
				p.errorf(f.v, kp, "known rule enforcements: require_human_approval, require_human_approval_and_log", "unknown rule enforcement %q", yamlx.Clip(s))
			}
			r.Enforcement, enfNode = s, f.v
		case "conditions":
			r.Conditions = p.conditions(f.v, kp, levels)
		}
	}
	if len(p.errs) == before {
		for _, miss := range []struct {
			ok  bool
			key string
		}{{hasName, "name"}, {hasTool, "tool"}, {hasAction, "action"}} {
			if !miss.ok {
				p.errorf(n, join(path, miss.key), "a rule needs name, tool and action", "missing required key %s", miss.key)
			}
		}
	}
	if enfNode != nil && hasAction && r.Action != Constrain && len(p.errs) == before {
		p.errorf(enfNode, join(path, "enforcement"), "rule-level enforcement refines CONSTRAIN; remove it or make the action CONSTRAIN",
			"rule enforcement %q on a %s rule has no effect", r.Enforcement, r.Action)
	}
	if apprNode != nil && hasAction && r.Action != Constrain && len(p.errs) == before {
		p.errorf(apprNode, join(path, "approval"), "approval terms apply to CONSTRAIN rules; remove them or make the action CONSTRAIN",
			"approval terms on a %s rule have no effect", r.Action)
	}
	for _, c := range r.Conditions {
		switch {
		case c.Kind == KindThreatScore, c.Kind == KindFindings, c.Kind == KindSession:
			r.Threat = true
		case c.Kind == KindExpr && c.Expr.ReadsThreat:
			r.Threat = true
		}
	}
	if len(p.errs) > before {
		return nil
	}
	return r
}

// approvalSettings reads `approval: {required: N, expiry: 30m, grant_ttl: 10m}`.
func (p *parser) approvalSettings(n *yaml.Node, path string) *ApprovalSettings {
	fs, _ := p.fields(n, path, approvalKeys)
	a := &ApprovalSettings{}
	for _, f := range fs {
		kp := join(path, f.key)
		switch f.key {
		case "required":
			a.Required, _ = p.integer(f.v, kp, 1, 10)
		case "expiry":
			a.Expiry = p.duration(f.v, kp, time.Minute, 30*24*time.Hour)
		case "grant_ttl":
			a.GrantTTL = p.duration(f.v, kp, time.Minute, 24*time.Hour)
		}
	}
	return a
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

var condKinds = map[string]ConditionKind{
	"parameter": KindParameter, "time_of_day": KindTimeOfDay, "threat_score": KindThreatScore,
	"user_permission": KindUserPermission, "time_context": KindTimeContext, "agent_role": KindAgentRole,
	"invoking_user_attribute": KindUserAttribute, "data_classification": KindDataClassification,
	"expr": KindExpr, "findings": KindFindings, "session": KindSession, "tool_sink": KindToolSink,
}

// ConditionKeys lists, per kind, every key a condition item of that kind may hold (its kind key first).
var ConditionKeys = map[ConditionKind][]string{
	KindParameter:          {"parameter", "match", "not_match", "max_value", "min_value", "one_of", "max_length", "equals"},
	KindTimeOfDay:          {"time_of_day"},
	KindThreatScore:        {"threat_score"},
	KindUserPermission:     {"user_permission", "must_have"},
	KindTimeContext:        {"time_context"},
	KindAgentRole:          {"agent_role", "has_permission"},
	KindUserAttribute:      {"invoking_user_attribute", "matches_parameter"},
	KindDataClassification: {"data_classification", "is_less_than_or_equal"},
	KindExpr:               {"expr"},
	KindFindings:           {"findings"},
	KindSession:            {"session"},
	KindToolSink:           {"tool_sink"},
}

// Nested keys accepted inside the kind key's mapping value.
var (
	TimeOfDayKeys   = []string{"start", "end", "timezone", "days"}
	TimeContextKeys = []string{"unusual_hour", "or_call_count_exceeds", "call_count_exceeds"}
	SessionKeys     = []string{"has_seen", "max_classification_seen"}
	ToolDeclKeys    = []string{"sink", "returns", "classification"}
	CallCountKeys   = []string{"window_minutes", "threshold"}
	BusinessHourKey = []string{"start", "end", "days", "timezone"}
	PolicyKeys      = policyKeys
	RuleKeys        = ruleKeys
	EnforcementKeys = []string{"decision", "action"}
)

func kindList() string {
	ks := make([]string, 0, len(condKinds))
	for k := range condKinds {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return strings.Join(ks, ", ")
}

func (p *parser) conditions(n *yaml.Node, path string, levels []string) []*Condition {
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return nil
	}
	if n.Kind != yaml.SequenceNode {
		p.errorf(n, path, "conditions is a list; each condition starts with '- '", "want a list, got %s", yamlx.Describe(n))
		return nil
	}
	out := make([]*Condition, 0, len(n.Content))
	for i, item := range n.Content {
		if c := p.condition(item, fmt.Sprintf("%s[%d]", path, i), levels); c != nil {
			out = append(out, c)
		}
	}
	return out
}

func (p *parser) condition(n *yaml.Node, path string, levels []string) *Condition {
	if n.Kind != yaml.MappingNode {
		p.errorf(n, path, "a condition is a mapping such as '- parameter: limit' with 'max_value: 1000' under it", "want a condition mapping, got %s", yamlx.Describe(n))
		return nil
	}
	var kind ConditionKind
	var kindKey string
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := n.Content[i].Value
		if ck, ok := condKinds[k]; ok {
			if kind != 0 {
				p.errorf(n.Content[i], join(path, k), "put each condition in its own list item (start it with '- ')", "condition mixes kinds %s and %s", kindKey, k)
				return nil
			}
			kind, kindKey = ck, k
		}
	}
	if kind == 0 {
		first := ""
		if len(n.Content) > 0 {
			first = n.Content[0].Value
		}
		p.errorf(n, join(path, first), yamlx.UnknownHint(first, sortedKinds()), "condition has no kind key (want one of %s)", kindList())
		return nil
	}
	before := len(p.errs)
	fs, _ := p.fields(n, path, ConditionKeys[kind])
	c := &Condition{Pos: p.pos(n), Kind: kind}
	get := func(key string) *yaml.Node {
		for _, f := range fs {
			if f.key == key {
				return f.v
			}
		}
		return nil
	}
	kp := join(path, kindKey)
	kv := get(kindKey)
	if kv == nil {
		return nil
	}
	switch kind {
	case KindParameter:
		c.Parameter = p.paramCond(n, kv, path, get)
	case KindTimeOfDay:
		c.TimeOfDay = p.timeOfDay(kv, kp)
	case KindThreatScore:
		if s, ok := p.str(kv, kp); ok {
			l, err := threat.ParseLevel(s)
			if err != nil {
				p.errorf(kv, kp, "levels: none, low, medium, high, critical", "%v", err)
			}
			c.ThreatScore = &l
		}
	case KindUserPermission:
		up := &UserPermissionCond{MustHave: true}
		up.Permission, _ = p.nonEmpty(kv, kp)
		if v := get("must_have"); v != nil {
			up.MustHave, _ = p.boolean(v, join(path, "must_have"))
		}
		c.UserPermission = up
	case KindTimeContext:
		c.TimeContext = p.timeContext(kv, kp)
	case KindAgentRole:
		ar := &AgentRoleCond{}
		ar.Role, _ = p.nonEmpty(kv, kp)
		if v := get("has_permission"); v != nil {
			ar.Permission, _ = p.nonEmpty(v, join(path, "has_permission"))
		}
		c.AgentRole = ar
	case KindUserAttribute:
		ua := &UserAttributeCond{}
		ua.Attribute, _ = p.nonEmpty(kv, kp)
		v := get("matches_parameter")
		if v == nil {
			p.errorf(n, join(path, "matches_parameter"), "name the parameter whose value the attribute must contain", "missing required key matches_parameter")
		} else if s, ok := p.nonEmpty(v, join(path, "matches_parameter")); ok {
			if validPath(s) {
				ua.Parameter = s
			} else {
				p.errorf(v, join(path, "matches_parameter"), "a parameter name or a dotted path such as filter.region", "invalid parameter path %q", yamlx.Clip(s))
			}
		}
		c.UserAttribute = ua
	case KindDataClassification:
		dc := &DataClassificationCond{Against: "user_clearance"}
		if s, ok := p.nonEmpty(kv, kp); ok {
			if s != "tool" && !contains(levels, s) {
				p.errorf(kv, kp, "levels (lowest first): "+strings.Join(levels, ", ")+"; or tool", "unknown classification level %q", yamlx.Clip(s))
			}
			dc.Level = s
		}
		if v := get("is_less_than_or_equal"); v != nil {
			if s, ok := p.str(v, join(path, "is_less_than_or_equal")); ok && s != "user_clearance" {
				p.errorf(v, join(path, "is_less_than_or_equal"), `the only comparison is against "user_clearance"`, "unknown comparison target %q", yamlx.Clip(s))
			}
		}
		c.DataClassification = dc
	case KindExpr:
		if s, ok := p.nonEmpty(kv, kp); ok {
			c.Expr = p.expr(kv, kp, s)
		}
	case KindFindings:
		if kv.Kind != yaml.SequenceNode {
			p.errorf(kv, kp, "e.g. findings: [sql_injection, pii.credit_card]", "want a list of finding kinds, got %s", yamlx.Describe(kv))
		} else if kinds, ok := p.strList(kv, kp); ok {
			c.Findings = kinds
		}
	case KindSession:
		c.Session = p.sessionCond(kv, kp, levels)
	case KindToolSink:
		if s, ok := p.str(kv, kp); ok {
			if s != SinkExternal && s != SinkInternal {
				p.errorf(kv, kp, "tool_sink: external (or internal)", "unknown sink %q", yamlx.Clip(s))
			}
			c.ToolSink = s
		}
	}
	if len(p.errs) > before {
		return nil
	}
	return c
}

func sortedKinds() []string {
	ks := make([]string, 0, len(condKinds))
	for k := range condKinds {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

var pathRE = regexp.MustCompile(`^[^.\s]+(\.[^.\s]+)*$`)

func validPath(s string) bool { return len(s) <= 1024 && pathRE.MatchString(s) }

func (p *parser) paramCond(n, kv *yaml.Node, path string, get func(string) *yaml.Node) *ParameterCond {
	pc := &ParameterCond{}
	if s, ok := p.nonEmpty(kv, join(path, "parameter")); ok {
		if !validPath(s) {
			p.errorf(kv, join(path, "parameter"), "a parameter name or a dotted path such as filter.region", "invalid parameter path %q", yamlx.Clip(s))
		}
		pc.Path = s
	}
	ops := 0
	if v := get("match"); v != nil {
		ops++
		if pt, ok := p.pattern(v, join(path, "match"), false); ok {
			pc.Match = &pt
		}
	}
	if v := get("not_match"); v != nil {
		ops++
		if pt, ok := p.pattern(v, join(path, "not_match"), false); ok {
			pc.NotMatch = &pt
		}
	}
	if v := get("max_value"); v != nil {
		ops++
		if f, ok := p.number(v, join(path, "max_value")); ok {
			pc.MaxValue = &f
		}
	}
	if v := get("min_value"); v != nil {
		ops++
		if f, ok := p.number(v, join(path, "min_value")); ok {
			pc.MinValue = &f
		}
	}
	if v := get("max_length"); v != nil {
		ops++
		if i, ok := p.integer(v, join(path, "max_length"), 0, math.MaxInt32); ok {
			pc.MaxLength = &i
		}
	}
	if v := get("equals"); v != nil {
		ops++
		if x, ok := p.scalar(v, join(path, "equals")); ok {
			pc.Equals, pc.HasEquals = x, true
		}
	}
	if v := get("one_of"); v != nil {
		ops++
		if v.Kind != yaml.SequenceNode || len(v.Content) == 0 {
			p.errorf(v, join(path, "one_of"), "e.g. one_of: [monthly, quarterly]", "want a non-empty list, got %s", yamlx.Describe(v))
		} else {
			for i, c := range v.Content {
				if x, ok := p.scalar(c, fmt.Sprintf("%s.one_of[%d]", path, i)); ok {
					pc.OneOf = append(pc.OneOf, x)
				}
			}
		}
	}
	if ops == 0 {
		p.errorf(n, join(path, "parameter"), "add match, not_match, max_value, min_value, one_of, max_length or equals", "parameter condition has no test")
	}
	return pc
}

func (p *parser) timeOfDay(n *yaml.Node, path string) *TimeOfDayCond {
	fs, _ := p.fields(n, path, TimeOfDayKeys)
	t := &TimeOfDayCond{}
	var hasStart, hasEnd bool
	for _, f := range fs {
		kp := join(path, f.key)
		switch f.key {
		case "start":
			t.Start, hasStart = p.clock(f.v, kp, false)
		case "end":
			t.End, hasEnd = p.clock(f.v, kp, true)
		case "timezone":
			t.Timezone, _ = p.timezone(f.v, kp)
		case "days":
			t.Days, _ = p.days(f.v, kp)
		}
	}
	if n.Kind == yaml.MappingNode && (!hasStart || !hasEnd) && len(fs) == len(n.Content)/2 {
		p.errorf(n, path, `write start: "09:00" and end: "17:00"`, "time_of_day needs start and end")
	}
	return t
}

func (p *parser) timeContext(n *yaml.Node, path string) *TimeContextCond {
	fs, _ := p.fields(n, path, TimeContextKeys)
	tc := &TimeContextCond{}
	for _, f := range fs {
		kp := join(path, f.key)
		switch f.key {
		case "unusual_hour":
			if b, ok := p.boolean(f.v, kp); ok {
				tc.UnusualHour = &b
			}
		case "or_call_count_exceeds":
			tc.OrCallCountExceeds = p.callCount(f.v, kp)
		case "call_count_exceeds":
			tc.CallCountExceeds = p.callCount(f.v, kp)
		}
	}
	if len(fs) == 0 && n.Kind == yaml.MappingNode {
		p.errorf(n, path, "add unusual_hour: true and/or or_call_count_exceeds / call_count_exceeds", "empty time_context")
	}
	return tc
}

func (p *parser) callCount(n *yaml.Node, path string) *CallCount {
	fs, _ := p.fields(n, path, CallCountKeys)
	cc := &CallCount{}
	var hasW, hasT bool
	for _, f := range fs {
		switch f.key {
		case "window_minutes":
			cc.WindowMinutes, hasW = p.integer(f.v, join(path, f.key), 1, 7*24*60)
		case "threshold":
			cc.Threshold, hasT = p.integer(f.v, join(path, f.key), 0, 1_000_000_000)
		}
	}
	if n.Kind == yaml.MappingNode && (!hasW || !hasT) && len(fs) == len(n.Content)/2 {
		p.errorf(n, path, "write window_minutes: 60 and threshold: 5", "call count needs window_minutes and threshold")
	}
	return cc
}

// labelRE is the form of a custom session label.
var labelRE = regexp.MustCompile(`^[a-z][a-z0-9_.-]{0,62}$`)

// customLabels reads `labels: [customer_data, …]`: the custom session labels a policy declares.
func (p *parser) customLabels(n *yaml.Node, path string) []string {
	ls, ok := p.strList(n, path)
	if !ok {
		return nil
	}
	if n.Kind != yaml.SequenceNode {
		p.errorf(n, path, "e.g. labels: [customer_data]", "want a list of labels")
		return nil
	}
	for i, l := range ls {
		kp := fmt.Sprintf("%s[%d]", path, i)
		switch {
		case !labelRE.MatchString(l):
			p.errorf(n.Content[i], kp, "a label is lower case: a letter, then letters, digits, _ . or - (at most 63)", "invalid label %q", yamlx.Clip(l))
		case l == LabelUntrusted || l == LabelPrivate:
			p.errorf(n.Content[i], kp, "untrusted and private are built in; declare only custom labels", "label %q is built in", l)
		case contains(ls[:i], l):
			p.errorf(n.Content[i], kp, "list each label once", "label %q listed twice", l)
		}
	}
	return ls
}

// label checks one label name against those the policy knows.
func (p *parser) label(n *yaml.Node, path, l string) {
	if !contains(p.labels, l) {
		p.errorf(n, path, "known labels: "+strings.Join(p.labels, ", ")+" (declare custom ones under labels:)", "unknown label %q", yamlx.Clip(l))
	}
}

// labelList reads a list of known labels (non-empty when nonEmpty is set).
func (p *parser) labelList(n *yaml.Node, path, hint string, nonEmpty bool) []string {
	ls, ok := p.strList(n, path)
	if !ok {
		return nil
	}
	if n.Kind != yaml.SequenceNode || (nonEmpty && len(ls) == 0) {
		p.errorf(n, path, hint, "want a non-empty list of labels")
		return nil
	}
	for i, l := range ls {
		p.label(n.Content[i], fmt.Sprintf("%s[%d]", path, i), l)
	}
	return ls
}

// level reads a classification level on the policy's scale.
func (p *parser) level(n *yaml.Node, path string, levels []string) string {
	s, ok := p.str(n, path)
	if ok && !contains(levels, s) {
		p.errorf(n, path, "levels: "+strings.Join(levels, ", "), "unknown classification level %q", yamlx.Clip(s))
	}
	return s
}

// toolDecls reads `tools: {send_email: {sink: external}, fetch_url: {returns: [untrusted]}}`.
func (p *parser) toolDecls(n *yaml.Node, path string, levels []string) map[string]*ToolDecl {
	fs, _ := p.fields(n, path, nil)
	out := make(map[string]*ToolDecl, len(fs))
	for _, f := range fs {
		tp := path + "." + f.key
		if f.key == "" || len(f.key) > 256 {
			p.errorf(f.v, tp, "name the tool exactly as agents call it", "invalid tool name")
			continue
		}
		d := &ToolDecl{Pos: p.pos(f.v)}
		dfs, _ := p.fields(f.v, tp, ToolDeclKeys)
		for _, df := range dfs {
			kp := join(tp, df.key)
			switch df.key {
			case "sink":
				if s, ok := p.str(df.v, kp); ok {
					if s != SinkExternal && s != SinkInternal {
						p.errorf(df.v, kp, "sink: external (the tool can send data out) or internal", "unknown sink %q", yamlx.Clip(s))
					}
					d.Sink = s
				}
			case "returns":
				d.Returns = p.labelList(df.v, kp, "e.g. returns: [untrusted]", false)
			case "classification":
				d.Classification = p.level(df.v, kp, levels)
			}
		}
		out[f.key] = d
	}
	return out
}

// sessionCond reads `session: {has_seen: [untrusted, private], max_classification_seen: confidential}`.
func (p *parser) sessionCond(n *yaml.Node, path string, levels []string) *SessionCond {
	fs, _ := p.fields(n, path, SessionKeys)
	sc := &SessionCond{}
	for _, f := range fs {
		kp := join(path, f.key)
		switch f.key {
		case "has_seen":
			sc.HasSeen = p.labelList(f.v, kp, "e.g. has_seen: [untrusted, private]", true)
		case "max_classification_seen":
			sc.MaxClassificationSeen = p.level(f.v, kp, levels)
		}
	}
	if sc.HasSeen == nil && sc.MaxClassificationSeen == "" && len(fs) == 0 {
		p.errorf(n, path, "e.g. session: {has_seen: [untrusted, private]}", "session needs has_seen or max_classification_seen")
	}
	return sc
}
