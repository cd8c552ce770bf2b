package compare

import (
	"fmt"
	"strconv"
	"strings"
)

// YAML renders the scenario as a Portcullis policy document.
func (s *Scenario) YAML() string {
	var b strings.Builder
	fmt.Fprintf(&b, "agent_id: %s\ndefault_action: DENY\nrules:\n", s.Agent)
	for _, r := range s.Rules {
		fmt.Fprintf(&b, "  - name: %s\n    tool: %s\n    action: %s\n", strconv.Quote(r.Name), strconv.Quote(r.Tool), r.Action)
		if len(r.Conds) == 0 {
			b.WriteString("    conditions: []\n")
			continue
		}
		b.WriteString("    conditions:\n")
		for _, c := range r.Conds {
			switch c.Kind {
			case Enum:
				fmt.Fprintf(&b, "      - parameter: %s\n        match: %s\n", c.Param, strconv.Quote(enumPattern(c.Values)))
			case Regex:
				fmt.Fprintf(&b, "      - parameter: %s\n        match: %s\n", c.Param, strconv.Quote(c.Pattern))
			case Max:
				fmt.Fprintf(&b, "      - parameter: %s\n        max_value: %d\n", c.Param, c.Max)
			case Window:
				fmt.Fprintf(&b, "      - time_of_day:\n          start: %q\n          end: %q\n          timezone: %q\n",
					hhmm(c.Start), hhmm(c.End), c.TZ)
			}
		}
	}
	return b.String()
}

func hhmm(m int) string { return fmt.Sprintf("%02d:%02d", m/60, m%60) }

// Rego renders the scenario as a Rego v1 module whose data.portcullis.decision is "ALLOW" or
// "DENY". It is written the way an OPA user would: one `allow`/`deny` rule body per policy rule,
// tool equality first so OPA's rule index can skip rules for other tools.
func (s *Scenario) Rego() string {
	var b strings.Builder
	b.WriteString("package portcullis\n\ndefault decision := \"DENY\"\n\ndecision := \"ALLOW\" if {\n\tallow\n\tnot deny\n}\n")
	for _, r := range s.Rules {
		head := "allow"
		if r.Action == Deny {
			head = "deny"
		}
		fmt.Fprintf(&b, "\n# %s\n%s if {\n", r.Name, head)
		if r.Exact {
			fmt.Fprintf(&b, "\tinput.tool == %s\n", strconv.Quote(r.Tool))
		} else {
			fmt.Fprintf(&b, "\tregex.match(%s, input.tool)\n", strconv.Quote(`^(?:`+r.Tool+`)$`))
		}
		for _, c := range r.Conds {
			ref := "input.params." + c.Param
			switch c.Kind {
			case Enum:
				fmt.Fprintf(&b, "\tis_string(%s)\n\tregex.match(%s, %s)\n", ref, strconv.Quote(enumPattern(c.Values)), ref)
			case Regex:
				fmt.Fprintf(&b, "\tis_string(%s)\n\tregex.match(%s, %s)\n", ref, strconv.Quote(c.Pattern), ref)
			case Max:
				fmt.Fprintf(&b, "\tis_number(%s)\n\t%s <= %d\n", ref, ref, c.Max)
			case Window:
				fmt.Fprintf(&b, "\t[h, m, _] := time.clock([input.time_ns, %s])\n\th*60 + m >= %d\n\th*60 + m < %d\n",
					strconv.Quote(c.TZ), c.Start, c.End)
			}
		}
		b.WriteString("}\n")
	}
	return b.String()
}

// Cedar renders the scenario as Cedar policies over principal Agent, action Action::"call" and
// resource Tool. Cedar has neither regular expressions nor time zones, so two things are computed
// by the harness while it builds the request (outside the timed loop, which flatters Cedar):
// context.local_minute (minutes after midnight in the scenario's zone) and, for each Regex
// condition, a boolean context.re<k>. Tool regexes are exact `like` disjunctions.
func (s *Scenario) Cedar() string {
	var b strings.Builder
	k := 0
	for _, r := range s.Rules {
		effect := "permit"
		if r.Action == Deny {
			effect = "forbid"
		}
		var when []string
		resource := "resource"
		if r.Exact {
			resource = fmt.Sprintf("resource == Tool::%s", strconv.Quote(r.Tool))
		} else {
			likes := make([]string, len(r.Globs))
			for i, g := range r.Globs {
				likes[i] = fmt.Sprintf("context.tool like %s", strconv.Quote(g))
			}
			when = append(when, "("+strings.Join(likes, " || ")+")")
		}
		for _, c := range r.Conds {
			ref := "context.params." + c.Param
			switch c.Kind {
			case Enum:
				eq := make([]string, len(c.Values))
				for i, v := range c.Values {
					eq[i] = fmt.Sprintf("%s == %s", ref, strconv.Quote(v))
				}
				when = append(when, fmt.Sprintf("context.params has %s && (%s)", c.Param, strings.Join(eq, " || ")))
			case Regex:
				when = append(when, fmt.Sprintf("context.re%d", k))
				k++
			case Max:
				when = append(when, fmt.Sprintf("context.params has %s && %s <= %d", c.Param, ref, c.Max))
			case Window:
				when = append(when, fmt.Sprintf("context.local_minute >= %d && context.local_minute < %d", c.Start, c.End))
			}
		}
		fmt.Fprintf(&b, "@id(%s)\n%s (principal, action, %s)", strconv.Quote(r.Name), effect, resource)
		for _, w := range when {
			fmt.Fprintf(&b, "\nwhen { %s }", w)
		}
		b.WriteString(";\n\n")
	}
	return b.String()
}
