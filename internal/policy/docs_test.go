package policy

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"go.yaml.in/yaml/v3"
)

type docBlock struct {
	lang, body string
	line       int
}

func docBlocks(t *testing.T, path string) []docBlock {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []docBlock
	var cur *docBlock
	for i, l := range strings.Split(string(data), "\n") {
		switch {
		case cur == nil && strings.HasPrefix(l, "```") && len(l) > 3:
			cur = &docBlock{lang: strings.TrimPrefix(l, "```"), line: i + 2}
		case cur != nil && l == "```":
			out = append(out, *cur)
			cur = nil
		case cur != nil:
			cur.body += l + "\n"
		}
	}
	return out
}

// TestDocExamples loads every YAML policy in docs/policy-language.md and checks each request of
// the jsonl block that follows it against the decision written there.
func TestDocExamples(t *testing.T) {
	const doc = "../../docs/policy-language.md"
	var set *Set
	policies, requests := 0, 0
	for _, b := range docBlocks(t, doc) {
		where := fmt.Sprintf("%s:%d", doc, b.line)
		switch b.lang {
		case "yaml":
			if strings.HasPrefix(b.body, "# policies/") { // a policy test file example
				var v struct {
					Cases []map[string]any `yaml:"cases"`
				}
				if err := yaml.Unmarshal([]byte(b.body), &v); err != nil || len(v.Cases) == 0 {
					t.Errorf("%s: test file example: %v", where, err)
				}
				continue
			}
			f, err := Parse(where, []byte(b.body))
			if err != nil {
				t.Fatalf("%s: example does not load: %v", where, err)
			}
			if set, err = Compile(f); err != nil {
				t.Fatalf("%s: %v", where, err)
			}
			if err := validateSchema(t, f.Name, b.body); err != nil {
				t.Errorf("%s: example does not validate against the schema: %v", where, err)
			}
			policies++
		case "jsonl":
			if set == nil {
				t.Fatalf("%s: requests before any policy", where)
			}
			for i, line := range strings.Split(strings.TrimSpace(b.body), "\n") {
				var c struct {
					Want    string          `json:"want"`
					Rule    string          `json:"rule"`
					Request json.RawMessage `json:"request"`
				}
				if err := json.Unmarshal([]byte(line), &c); err != nil {
					t.Fatalf("%s line %d: %v", where, i+1, err)
				}
				req, _, err := DecodeRequest(c.Request)
				if err != nil {
					t.Fatalf("%s line %d: %v", where, i+1, err)
				}
				d := set.Evaluate(req)
				if d.Action.String() != c.Want || d.Rule != c.Rule {
					t.Errorf("%s line %d: got %s (rule %q), the doc says %s (rule %q)\n%+v", where, i+1, d.Action, d.Rule, c.Want, c.Rule, set.Explain(req).Rules)
				}
				requests++
			}
		}
	}
	if policies < 6 || requests < 20 {
		t.Errorf("found only %d policies and %d requests in the doc", policies, requests)
	}
}

// ---------------------------------------------------------------------------------------------
// The JSON Schema: a small validator for the subset of draft 2020-12 the schema uses, so that the
// seed examples are validated structurally, and a check that the schema and the parser accept
// exactly the same keys.

func loadSchema(t *testing.T) map[string]any {
	t.Helper()
	data, err := os.ReadFile("../../docs/policy.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	var s map[string]any
	if err := json.Unmarshal(data, &s); err != nil {
		t.Fatalf("schema is not JSON: %v", err)
	}
	return s
}

type schemaValidator struct{ root map[string]any }

func (v *schemaValidator) resolve(s map[string]any) map[string]any {
	for {
		ref, ok := s["$ref"].(string)
		if !ok {
			return s
		}
		name := strings.TrimPrefix(ref, "#/$defs/")
		s = v.root["$defs"].(map[string]any)[name].(map[string]any)
	}
}

func jsonType(x any) string {
	switch n := x.(type) {
	case nil:
		return "null"
	case bool:
		return "boolean"
	case string:
		return "string"
	case float64:
		if n == float64(int64(n)) {
			return "integer"
		}
		return "number"
	case []any:
		return "array"
	case map[string]any:
		return "object"
	}
	return fmt.Sprintf("%T", x)
}

func (v *schemaValidator) validate(s map[string]any, x any, path string) error {
	s = v.resolve(s)
	if t, ok := s["type"]; ok {
		types := []any{t}
		if l, ok := t.([]any); ok {
			types = l
		}
		got, match := jsonType(x), false
		for _, want := range types {
			if want == got || (want == "number" && got == "integer") {
				match = true
			}
		}
		if !match {
			return fmt.Errorf("%s: type %s, want %v", path, got, t)
		}
	}
	if e, ok := s["enum"].([]any); ok {
		found := false
		for _, c := range e {
			if c == x {
				found = true
			}
		}
		if !found {
			return fmt.Errorf("%s: %v not in enum", path, x)
		}
	}
	if str, ok := x.(string); ok {
		if p, ok := s["pattern"].(string); ok && !regexp.MustCompile(p).MatchString(str) {
			return fmt.Errorf("%s: %q does not match %s", path, str, p)
		}
		if m, ok := s["minLength"].(float64); ok && float64(len(str)) < m {
			return fmt.Errorf("%s: too short", path)
		}
	}
	if n, ok := x.(float64); ok {
		if m, ok := s["minimum"].(float64); ok && n < m {
			return fmt.Errorf("%s: below minimum", path)
		}
	}
	if one, ok := s["oneOf"].([]any); ok {
		matches := 0
		var errs []string
		for _, alt := range one {
			if err := v.validate(alt.(map[string]any), x, path); err == nil {
				matches++
			} else {
				errs = append(errs, err.Error())
			}
		}
		if matches != 1 {
			return fmt.Errorf("%s: matches %d of oneOf (%s)", path, matches, strings.Join(errs, "; "))
		}
	}
	if arr, ok := x.([]any); ok {
		if m, ok := s["minItems"].(float64); ok && float64(len(arr)) < m {
			return fmt.Errorf("%s: fewer than %v items", path, m)
		}
		if items, ok := s["items"].(map[string]any); ok {
			for i, e := range arr {
				if err := v.validate(items, e, fmt.Sprintf("%s[%d]", path, i)); err != nil {
					return err
				}
			}
		}
	}
	if obj, ok := x.(map[string]any); ok {
		props, _ := s["properties"].(map[string]any)
		for _, r := range asList(s["required"]) {
			if _, ok := obj[r]; !ok {
				return fmt.Errorf("%s: missing %s", path, r)
			}
		}
		for k, val := range obj {
			if ps, ok := props[k].(map[string]any); ok {
				if err := v.validate(ps, val, path+"."+k); err != nil {
					return err
				}
				continue
			}
			switch ap := s["additionalProperties"].(type) {
			case bool:
				if !ap {
					return fmt.Errorf("%s: property %q not allowed", path, k)
				}
			case map[string]any:
				if err := v.validate(ap, val, path+"."+k); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

func asList(x any) []string {
	l, _ := x.([]any)
	out := make([]string, 0, len(l))
	for _, e := range l {
		out = append(out, e.(string))
	}
	return out
}

// validateSchema checks every YAML document of src against docs/policy.schema.json.
func validateSchema(t *testing.T, name, src string) error {
	t.Helper()
	v := &schemaValidator{root: loadSchema(t)}
	dec := yaml.NewDecoder(strings.NewReader(src))
	for {
		var doc any
		if err := dec.Decode(&doc); err != nil {
			if err.Error() == "EOF" {
				return nil
			}
			return err
		}
		// Round-trip through JSON so values have JSON types.
		data, err := json.Marshal(doc)
		if err != nil {
			return err
		}
		var x any
		if err := json.Unmarshal(data, &x); err != nil {
			return err
		}
		if err := v.validate(v.root, x, name); err != nil {
			return err
		}
	}
}

func TestSchemaValidatesSeedExamples(t *testing.T) {
	for _, f := range []string{"01_deny_by_default.yaml", "02_context_aware.yaml", "03_abac.yaml", "04_prose.yaml"} {
		data, err := os.ReadFile("testdata/seed/" + f)
		if err != nil {
			t.Fatal(err)
		}
		if err := validateSchema(t, f, string(data)); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
	// The shipped examples and compliance packs are what users copy into schema-checked editors.
	examples, err := filepath.Glob("../../examples/*/*.yaml")
	if err != nil || len(examples) < 6 {
		t.Fatalf("examples: %v %v", examples, err)
	}
	for _, f := range examples {
		if strings.HasSuffix(f, "_test.yaml") || strings.Contains(f, "prometheus") {
			continue
		}
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := validateSchema(t, f, string(data)); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
	// The validator is not a rubber stamp.
	for _, bad := range []string{
		"agent_id: a\nrulez: []\n",
		"agent_id: a\nrules: [{name: r, tool: t, action: PERMIT}]\n",
		"agent_id: a\nrules: [{name: r, tool: t, action: ALLOW, conditions: [{parameter: x, threat_score: high}]}]\n",
		"agent_id: a\nrules: [{name: r, tool: t, action: ALLOW, conditions: [{time_of_day: {start: \"9am\", end: \"17:00\"}}]}]\n",
		"rules: []\n",
	} {
		if err := validateSchema(t, "bad.yaml", bad); err == nil {
			t.Errorf("schema accepted %q", bad)
		}
	}
}

func propKeys(s map[string]any) []string {
	props, _ := s["properties"].(map[string]any)
	var out []string
	for k := range props {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func sorted(l []string) []string {
	out := append([]string(nil), l...)
	sort.Strings(out)
	return out
}

// TestSchemaKeysMatchParser: docs/policy.schema.json and the parser accept exactly the same keys,
// both ways, in every mapping of a policy. Every object of the schema that refuses other keys
// (additionalProperties: false) is found by walking the schema, and each must be paired below
// with the key list the parser refuses other keys with: a closed object added to the schema
// without a list, a list whose object left the schema, or one key more or less on either side
// fails.
func TestSchemaKeysMatchParser(t *testing.T) {
	parser := map[string][]string{
		"":                                      PolicyKeys,
		"properties/business_hours":             BusinessHourKeys,
		"properties/enforcement/items":          EnforcementKeys,
		"properties/tools/additionalProperties": ToolDeclKeys,
		"$defs/rule":                            RuleKeys,
		"$defs/rule/properties/approval":        ApprovalKeys,
		"$defs/callCount":                       CallCountKeys,
		"$defs/condition/oneOf/time_of_day/properties/time_of_day":   TimeOfDayKeys,
		"$defs/condition/oneOf/time_context/properties/time_context": TimeContextKeys,
		"$defs/condition/oneOf/session/properties/session":           SessionKeys,
	}
	for kind, keys := range ConditionKeys {
		parser["$defs/condition/oneOf/"+keys[0]] = keys
		if k := kind.String(); k != keys[0] {
			t.Errorf("condition kind %s: its first key is %q, not its name", k, keys[0])
		}
	}
	closed := map[string][]string{}
	schemaObjects(loadSchema(t), "", closed)
	for where, keys := range closed {
		want, ok := parser[where]
		if !ok {
			t.Errorf("schema object %q refuses keys the parser has no list for: %v", where, keys)
			continue
		}
		if diff := cmp.Diff(sorted(want), keys); diff != "" {
			t.Errorf("%q keys (-parser +schema):\n%s", where, diff)
		}
	}
	for where := range parser {
		if _, ok := closed[where]; !ok {
			t.Errorf("parser key list for %q has no closed object in the schema", where)
		}
	}
}

// schemaObjects collects, under their path in the schema (a oneOf branch named by its required
// key), the sorted property names of every object schema that refuses other keys.
func schemaObjects(s map[string]any, at string, out map[string][]string) {
	join := func(parts ...string) string {
		return strings.TrimPrefix(strings.Join(append([]string{at}, parts...), "/"), "/")
	}
	if s["additionalProperties"] == false {
		out[at] = propKeys(s)
	}
	for _, group := range []string{"properties", "$defs"} {
		m, _ := s[group].(map[string]any)
		for k, v := range m {
			if sub, ok := v.(map[string]any); ok {
				schemaObjects(sub, join(group, k), out)
			}
		}
	}
	for _, k := range []string{"items", "additionalProperties"} {
		if sub, ok := s[k].(map[string]any); ok {
			schemaObjects(sub, join(k), out)
		}
	}
	branches, _ := s["oneOf"].([]any)
	for i, b := range branches {
		sub, ok := b.(map[string]any)
		if !ok {
			continue
		}
		name := fmt.Sprint(i)
		if req := asList(sub["required"]); len(req) > 0 {
			name = req[0]
		}
		schemaObjects(sub, join("oneOf", name), out)
	}
}
