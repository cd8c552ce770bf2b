package policy

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"

	"github.com/portcullis-ai/portcullis/internal/yamlx"

	// Time zone data is embedded so that time conditions work on machines without tzdata.
	_ "time/tzdata"
)

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
	f := &File{Name: name, sum: sha256.Sum256(data), src: bytes.Clone(data)}
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

// PolicyKeys are the top-level keys of a policy document.
var PolicyKeys = []string{"agent_id", "default_action", "rules", "enforcement", "description", "version",
	"timezone", "business_hours", "classification_levels", "tool_classifications",
	"tools", "labels", "require_proposal"}

// DefaultClassificationLevels is the scale data_classification uses when a policy sets none.
var DefaultClassificationLevels = []string{"public", "internal", "confidential", "restricted"}

func (p *parser) policy(n *yaml.Node) *Policy {
	before := len(p.errs)
	fs, _ := p.fields(n, "", PolicyKeys)
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
	fs, _ := p.fields(n, path, BusinessHourKeys)
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
		fs, _ := p.fields(item, ip, EnforcementKeys)
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

// RuleKeys are the keys of a rule.
var RuleKeys = []string{"name", "tool", "not_tool", "action", "conditions", "enforcement", "approval", "dry_run"}

// ApprovalKeys are the keys of a rule's approval terms.
var ApprovalKeys = []string{"required", "expiry", "grant_ttl"}

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
	fs, _ := p.fields(n, path, RuleKeys)
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
	fs, _ := p.fields(n, path, ApprovalKeys)
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
