package compliance

import (
	"encoding/json"
	"io/fs"
	"slices"
	"sort"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	packs "github.com/portcullis-ai/portcullis/examples/compliance"
	"github.com/portcullis-ai/portcullis/internal/policy"
)

type packCase struct {
	Name    string         `yaml:"name"`
	Request map[string]any `yaml:"request"`
	Want    string         `yaml:"want"`
	Rule    *string        `yaml:"rule"`
}

func packRules(t *testing.T, f *Framework) []string {
	t.Helper()
	name, data, err := f.PackSource()
	if err != nil {
		t.Fatal(err)
	}
	pf, err := policy.Parse(name, data)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, p := range pf.Policies {
		for _, r := range p.Rules {
			out = append(out, r.Name)
		}
	}
	return out
}

// TestPackCases decides each case of each pack's *_test.yaml through Set.Decide (the gateway's
// entry point), and asks every rule of the pack to decide at least one case and every pack to
// hold cases that no rule permits.
func TestPackCases(t *testing.T) {
	m, err := Mapping()
	if err != nil {
		t.Fatal(err)
	}
	if len(m) != 5 {
		t.Fatalf("%d frameworks, want the five packs", len(m))
	}
	for id, f := range m {
		t.Run(id, func(t *testing.T) {
			set, err := f.Set()
			if err != nil {
				t.Fatalf("pack does not load: %v", err)
			}
			data, err := fs.ReadFile(packs.FS, strings.TrimSuffix(f.Pack, ".yaml")+"_test.yaml")
			if err != nil {
				t.Fatal(err)
			}
			var doc struct {
				Cases []packCase `yaml:"cases"`
			}
			if err := yaml.Unmarshal(data, &doc); err != nil {
				t.Fatal(err)
			}
			decided := map[string]int{}
			for _, c := range doc.Cases {
				if c.Rule == nil {
					t.Errorf("%s: a case must name the deciding rule (\"\" for the default)", c.Name)
					continue
				}
				raw, err := json.Marshal(c.Request)
				if err != nil {
					t.Fatal(err)
				}
				req, hasThreat, err := policy.DecodeRequest(raw)
				if err != nil || !hasThreat {
					t.Fatalf("%s: %v (threat stated: %v; cases state threat_level so inspection cannot change them)", c.Name, err, hasThreat)
				}
				v := set.Decide(req)
				if got := v.Decision.Action.String(); got != c.Want || v.Decision.Rule != *c.Rule {
					t.Errorf("%s: %s by %q, want %s by %q", c.Name, got, v.Decision.Rule, c.Want, *c.Rule)
				}
				decided[v.Decision.Rule]++
			}
			for _, r := range packRules(t, f) {
				if decided[r] == 0 {
					t.Errorf("rule %s decides no case: add one that should match", r)
				}
			}
			if decided[""] < 2 {
				t.Errorf("only %d cases fall to the default DENY: add cases that should not match", decided[""])
			}
		})
	}
}

// TestMappingCoversRules: every rule of a pack has control identifiers, and every rule the
// mapping names is in the pack.
func TestMappingCoversRules(t *testing.T) {
	m, err := Mapping()
	if err != nil {
		t.Fatal(err)
	}
	for id, f := range m {
		rules := packRules(t, f)
		sort.Strings(rules)
		var mapped []string
		for r := range f.Rules {
			mapped = append(mapped, r)
		}
		sort.Strings(mapped)
		if !slices.Equal(rules, mapped) {
			t.Errorf("%s: pack rules %v, mapped rules %v", id, rules, mapped)
		}
		for _, c := range f.Controls() {
			if len(c.Rules)+len(c.Features) == 0 {
				t.Errorf("%s: control %s maps nothing", id, c.ID)
			}
		}
	}
}

func TestMappingRejectsGaps(t *testing.T) {
	ok := "frameworks:\n  x: {name: X, pack: x.yaml, rules: {a: [\"1\"]}, features: {ledger_integrity: [\"1\"], signed_checkpoints: [\"1\"], approvals: [\"1\"], key_rotation: [\"1\"], access_control: [\"1\"], retention_archive: [\"1\"]}, titles: {\"1\": One}}\n"
	if _, err := parseMapping([]byte(ok)); err != nil {
		t.Fatalf("a complete mapping: %v", err)
	}
	for name, doc := range map[string]string{
		"unknown key":      "frameworks:\n  x: {name: X, pack: x.yaml, rules: {a: [\"1\"]}, feature: {}}\n",
		"missing feature":  "frameworks:\n  x: {name: X, pack: x.yaml, rules: {a: [\"1\"]}, features: {ledger_integrity: [\"1\"]}}\n",
		"rule without ids": "frameworks:\n  x:\n    name: X\n    pack: x.yaml\n    rules: {a: []}\n",
		"duplicate rule":   "frameworks:\n  x:\n    name: X\n    pack: x.yaml\n    rules:\n      a: [\"1\"]\n      a: [\"2\"]\n",
		"empty":            "frameworks: {}\n",
		"untitled control": "frameworks:\n  x: {name: X, pack: x.yaml, rules: {a: [\"1\"]}, features: {ledger_integrity: [\"1\"], signed_checkpoints: [\"1\"], approvals: [\"1\"], key_rotation: [\"1\"], access_control: [\"1\"], retention_archive: [\"2\"]}, titles: {\"1\": One}}\n",
		"stray title":      "frameworks:\n  x: {name: X, pack: x.yaml, rules: {a: [\"1\"]}, features: {ledger_integrity: [\"1\"], signed_checkpoints: [\"1\"], approvals: [\"1\"], key_rotation: [\"1\"], access_control: [\"1\"], retention_archive: [\"1\"]}, titles: {\"1\": One, \"9\": Nine}}\n",
	} {
		if _, err := parseMapping([]byte(doc)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
