package mcp

import (
	"encoding/json"
	"fmt"
	"io"
	"regexp"
	"sort"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
)

// Risk ranks a tool for the starter policy.
type Risk int

const (
	RiskLow      Risk = iota // read-only
	RiskMedium               // writes, but declares itself non-destructive and closed-world
	RiskHigh                 // may destroy data, or writes to an open world
	RiskCritical             // destructive and open-world, or runs commands / deletes by its name
)

func (r Risk) String() string {
	return [...]string{"low", "medium", "high", "critical"}[r]
}

// Hints are a tool's annotations with the protocol's defaults applied: a tool that says nothing
// is assumed to write, to be destructive, not idempotent and to reach an open world.
type Hints struct {
	ReadOnly, Destructive, Idempotent, OpenWorld bool
}

// HintsOf applies the MCP defaults to t's annotations.
func HintsOf(t *sdk.Tool) Hints {
	h := Hints{Destructive: true, OpenWorld: true}
	if a := t.Annotations; a != nil {
		h.ReadOnly, h.Idempotent = a.ReadOnlyHint, a.IdempotentHint
		if a.DestructiveHint != nil {
			h.Destructive = *a.DestructiveHint
		}
		if a.OpenWorldHint != nil {
			h.OpenWorld = *a.OpenWorldHint
		}
	}
	if h.ReadOnly {
		h.Destructive = false // the hint is meaningful only for tools that write
	}
	return h
}

// dangerousName flags tools whose names say they run code or delete, whatever they declare:
// annotations are the server's claims, not facts.
var dangerousName = regexp.MustCompile(`(?i)(^|[_.-])(exec|execute|shell|bash|run|eval|delete|remove|rm|drop|kill|destroy|purge|wipe)($|[_.-])`)

// RiskOf ranks one tool.
func RiskOf(t *sdk.Tool) Risk {
	r, _ := Assess(t)
	return r
}

// Words in a tool's name, description or input schema that say more than its annotations do.
// The annotations are the server's claims: a tool annotated read-only that dumps the environment
// or runs a command is ranked by what it says it does.
var (
	// secretName: a name that reads secrets or the environment (get-env, printEnv, read_secret).
	secretName = regexp.MustCompile(`(?i)(^|[_.-])(env|environ|environment|envvars?|secrets?|credentials?|creds|passwords?|passwd|token|apikeys?|api_keys?|private_keys?|ssh|cookies?|keychain|vault)($|[_.-])`)
	// secretText: a description or schema that speaks of them.
	secretText = regexp.MustCompile(`(?i)\b(environment variables?|env vars?|secrets?|credentials?|passwords?|api[ _-]?keys?|private keys?|access tokens?|auth(entication)? tokens?|bearer tokens?|ssh keys?|session cookies?)\b`)
	// execText: a description that says the tool runs commands or code.
	execText = regexp.MustCompile(`(?i)\b(execut(e|es|ing)|runs?|running|evaluat(e|es|ing)|spawn(s|ing)?)\b[^.]{0,40}\b(commands?|shell|scripts?|code|processes|programs?)\b|\barbitrary (code|commands?)\b`)
	// execSchema: an input property that is a command or a script.
	execSchema = regexp.MustCompile(`(?i)"(command|cmd|commandline|command_line|script|shell)"\s*:`)
	// writeName: a name that says it changes something.
	writeName = regexp.MustCompile(`(?i)(^|[_.-])(write|update|create|set|put|post|send|move|rename|upload|edit|modify|insert|patch|transfer|pay|grant|revoke|add|append|replace|reset|install)($|[_.-])`)
	// camelBoundary splits camelCase names into words for the name patterns.
	camelBoundary = regexp.MustCompile(`([a-z0-9])([A-Z])`)
)

// Assess ranks one tool and says what, beyond its annotations, raised the rank ("" when nothing
// did). The annotations set a floor only when nothing in the name, description or input schema
// says the tool is riskier: a read-only claim never lowers a tool that says it runs commands,
// reads secrets or writes.
func Assess(t *sdk.Tool) (Risk, string) {
	h := HintsOf(t)
	name := camelBoundary.ReplaceAllString(t.Name, "${1}_${2}")
	schema := ""
	if t.InputSchema != nil {
		if b, err := json.Marshal(t.InputSchema); err == nil {
			schema = string(b)
		}
	}
	text := t.Description + " " + schema
	switch {
	case dangerousName.MatchString(name):
		return RiskCritical, "name says it runs code or deletes"
	case execText.MatchString(text) || execSchema.MatchString(schema):
		return RiskCritical, "description or input says it runs commands or code"
	}
	var r Risk
	switch {
	case h.ReadOnly:
		r = RiskLow
	case h.Destructive && h.OpenWorld:
		r = RiskCritical
	case h.Destructive || h.OpenWorld:
		r = RiskHigh
	default:
		r = RiskMedium
	}
	if r >= RiskHigh {
		return r, ""
	}
	switch {
	case secretName.MatchString(name):
		return RiskHigh, "name says it reads secrets or the environment"
	case secretText.MatchString(text):
		return RiskHigh, "description or input speaks of secrets or the environment"
	case h.ReadOnly && writeName.MatchString(name):
		return RiskHigh, "name says it writes, though annotated read-only"
	}
	return r, ""
}

// InventoryItem is one tool, ranked.
type InventoryItem struct {
	Tool  *sdk.Tool
	Name  string // as the policy names it (namespaced when a prefix is given)
	Hints Hints
	Risk  Risk
	// Why says what beyond the annotations set Risk ("" when they alone did).
	Why string
}

// Inventory ranks tools, riskiest first (then by name).
func Inventory(tools []*sdk.Tool, prefix string) []InventoryItem {
	out := make([]InventoryItem, 0, len(tools))
	for _, t := range tools {
		r, why := Assess(t)
		out = append(out, InventoryItem{Tool: t, Name: prefix + t.Name, Hints: HintsOf(t), Risk: r, Why: why})
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Risk != out[j].Risk {
			return out[i].Risk > out[j].Risk
		}
		return out[i].Name < out[j].Name
	})
	return out
}

// WriteTable prints the inventory as an aligned table.
func WriteTable(w io.Writer, items []InventoryItem) {
	fmt.Fprintf(w, "%-9s %-40s %-9s %-12s %-11s %-10s\n", "RISK", "TOOL", "READONLY", "DESTRUCTIVE", "IDEMPOTENT", "OPENWORLD")
	for _, it := range items {
		fmt.Fprintf(w, "%-9s %-40s %-9t %-12t %-11t %-10t\n", it.Risk, it.Name, it.Hints.ReadOnly, it.Hints.Destructive, it.Hints.Idempotent, it.Hints.OpenWorld)
	}
}

// WritePolicy writes a starter deny-by-default policy for agentID: read-only tools ALLOW (with a
// TODO to add parameter conditions), writing tools CONSTRAIN (human approval), critical tools
// DENY, and a threat rule that holds any high-threat call. `portcullis policy check` accepts it.
func WritePolicy(w io.Writer, agentID, source string, items []InventoryItem, now time.Time) error {
	var b strings.Builder
	fmt.Fprintf(&b, "# Starter policy written by `portcullis inventory` on %s\n", now.UTC().Format(time.RFC3339))
	fmt.Fprintf(&b, "# for: %s\n", oneLine(source))
	b.WriteString("# Deny by default. Review every TODO before use: annotations are the server's own claims.\n")
	fmt.Fprintf(&b, "agent_id: %s\ndefault_action: DENY\nrules:\n", yamlQuote(agentID))
	for _, it := range items {
		if !usableName(it.Name) {
			// Not a name the policy can write exactly: leave it to the default (DENY).
			fmt.Fprintf(&b, "  # skipped a tool whose name is not plain printable UTF-8 (%q): denied by default\n", oneLine(it.Name))
			continue
		}
		q := sq(regexp.QuoteMeta(it.Name))
		if it.Why != "" {
			fmt.Fprintf(&b, "  # %s risk (%s): %s\n", it.Risk, it.Why, oneLine(it.Tool.Description))
		} else {
			fmt.Fprintf(&b, "  # %s risk: %s\n", it.Risk, oneLine(it.Tool.Description))
		}
		switch it.Risk {
		case RiskLow:
			fmt.Fprintf(&b, "  - name: %s\n    tool: %s\n    action: ALLOW\n", sq("read_"+it.Name), q)
			b.WriteString("    # TODO: narrow with parameter conditions, e.g.\n")
			b.WriteString("    # conditions:\n    #   - parameter: path\n    #     match: \"^/allowed/dir/\"\n")
		case RiskMedium, RiskHigh:
			fmt.Fprintf(&b, "  - name: %s\n    tool: %s\n    action: CONSTRAIN\n    enforcement: require_human_approval\n", sq("approve_"+it.Name), q)
			b.WriteString("    # TODO: ALLOW narrow, well-understood parameter shapes in a rule of their own\n")
		default:
			fmt.Fprintf(&b, "  - name: %s\n    tool: %s\n    action: DENY\n", sq("deny_"+it.Name), q)
		}
	}
	b.WriteString(`  # Any call the inspection engine rates high is held for a human, whatever allowed it.
  - name: high_threat_needs_approval
    tool: ".*"
    action: CONSTRAIN
    conditions:
      - threat_score: high
    enforcement: require_human_approval
`)
	_, err := io.WriteString(w, b.String())
	return err
}

// usableName: the policy can name the tool exactly in a single-quoted YAML scalar.
func usableName(s string) bool {
	if s == "" || len(s) > 256 || !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if !yamlPrintable(r) || unicode.IsControl(r) || unicode.IsSpace(r) && r != ' ' {
			return false
		}
	}
	return true
}

// sq single-quotes s for YAML exactly.
func sq(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// yamlQuote single-quotes s for YAML (no escapes are processed inside; ' is doubled).
func yamlQuote(s string) string { return "'" + strings.ReplaceAll(oneLine(s), "'", "''") + "'" }

// oneLine makes s safe for a YAML comment: one line, printable characters only, bounded.
func oneLine(s string) string {
	s = strings.Join(strings.Fields(strings.ToValidUTF8(s, "?")), " ")
	if len(s) > 120 {
		s = strings.ToValidUTF8(s[:120], "") + "..."
	}
	return strings.Map(func(r rune) rune {
		if !yamlPrintable(r) {
			return '?'
		}
		return r
	}, s)
}

// yamlPrintable is YAML 1.2's printable character set (c-printable), minus the line breaks.
func yamlPrintable(r rune) bool {
	switch {
	case r == '\t', r >= 0x20 && r <= 0x7E, r == 0x85, r >= 0xA0 && r <= 0xD7FF, r >= 0xE000 && r <= 0xFFFD && r != 0xFEFF, r >= 0x10000 && r <= 0x10FFFF:
		return true
	}
	return false
}
