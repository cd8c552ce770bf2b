package policy

import (
	"fmt"
	"math"
	"regexp"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/portcullis-ai/portcullis/internal/threat"
	"github.com/portcullis-ai/portcullis/internal/yamlx"
)

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

// The keys of the other mappings a policy holds: inside a condition kind's value, a tool's
// declaration, business hours, an enforcement entry. The parser refuses any other key with
// these lists, and TestSchemaKeysMatchParser holds docs/policy.schema.json to them.
var (
	TimeOfDayKeys    = []string{"start", "end", "timezone", "days"}
	TimeContextKeys  = []string{"unusual_hour", "or_call_count_exceeds", "call_count_exceeds"}
	SessionKeys      = []string{"has_seen", "max_classification_seen"}
	ToolDeclKeys     = []string{"sink", "returns", "classification"}
	CallCountKeys    = []string{"window_minutes", "threshold"}
	BusinessHourKeys = []string{"start", "end", "days", "timezone"}
	EnforcementKeys  = []string{"decision", "action"}
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
