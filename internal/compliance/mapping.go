// Package compliance maps the compliance packs' rules and the product's features to the
// control identifiers of each framework, and gathers, from a ledger, the evidence an auditor
// files for those controls.
package compliance

import (
	"bytes"
	"fmt"
	"io/fs"
	"slices"
	"sort"

	"go.yaml.in/yaml/v3"

	packs "github.com/portcullis-ai/portcullis/examples/compliance"
	"github.com/portcullis-ai/portcullis/internal/policy"
)

// Features are the product features every framework's mapping must place, in report order.
var Features = []string{"ledger_integrity", "signed_checkpoints", "approvals", "key_rotation", "access_control", "retention_archive"}

// Framework is one framework's entry of mapping/controls.yaml.
type Framework struct {
	ID       string              `yaml:"-"`
	Name     string              `yaml:"name"`
	Pack     string              `yaml:"pack"`
	Titles   map[string]string   `yaml:"titles"`
	Rules    map[string][]string `yaml:"rules"`
	Features map[string][]string `yaml:"features"`
}

// Control is one control identifier with what is mapped to it.
type Control struct {
	ID       string   `json:"id"`
	Title    string   `json:"title"`
	Rules    []string `json:"rules,omitempty"`
	Features []string `json:"features,omitempty"`
}

// Mapping reads the embedded control mapping. Unknown keys and duplicate keys are errors, and
// every framework must map every feature, so that a typo cannot drop a control from a report.
func Mapping() (map[string]*Framework, error) {
	data, err := fs.ReadFile(packs.FS, "mapping/controls.yaml")
	if err != nil {
		return nil, err
	}
	return parseMapping(data)
}

func parseMapping(data []byte) (map[string]*Framework, error) {
	var doc struct {
		Frameworks map[string]*Framework `yaml:"frameworks"`
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&doc); err != nil {
		return nil, fmt.Errorf("control mapping: %w", err)
	}
	if len(doc.Frameworks) == 0 {
		return nil, fmt.Errorf("control mapping: no frameworks")
	}
	for id, f := range doc.Frameworks {
		if f == nil || f.Pack == "" || f.Name == "" || len(f.Rules) == 0 {
			return nil, fmt.Errorf("control mapping: framework %q needs name, pack and rules", id)
		}
		f.ID = id
		for _, ft := range Features {
			if len(f.Features[ft]) == 0 {
				return nil, fmt.Errorf("control mapping: framework %q does not map feature %q", id, ft)
			}
		}
		for ft := range f.Features {
			if !slices.Contains(Features, ft) {
				return nil, fmt.Errorf("control mapping: framework %q: unknown feature %q (known: %v)", id, ft, Features)
			}
		}
		for r, cs := range f.Rules {
			if len(cs) == 0 {
				return nil, fmt.Errorf("control mapping: framework %q: rule %q maps to no control", id, r)
			}
		}
		used := map[string]bool{}
		for _, c := range f.Controls() {
			used[c.ID] = true
			if c.Title == "" {
				return nil, fmt.Errorf("control mapping: framework %q: control %q has no title", id, c.ID)
			}
		}
		for c := range f.Titles {
			if !used[c] {
				return nil, fmt.Errorf("control mapping: framework %q: title for %q, which nothing maps to", id, c)
			}
		}
	}
	return doc.Frameworks, nil
}

// PackSource returns the pack file's name and bytes.
func (f *Framework) PackSource() (string, []byte, error) {
	data, err := fs.ReadFile(packs.FS, f.Pack)
	return f.Pack, data, err
}

// Set loads the framework's pack as a policy set.
func (f *Framework) Set() (*policy.Set, error) {
	name, data, err := f.PackSource()
	if err != nil {
		return nil, err
	}
	pf, err := policy.Parse(name, data)
	if err != nil {
		return nil, err
	}
	return policy.Compile(pf)
}

// Controls inverts the mapping: every control identifier with the rules and features mapped to
// it, sorted by identifier.
func (f *Framework) Controls() []Control {
	by := map[string]*Control{}
	get := func(id string) *Control {
		if by[id] == nil {
			by[id] = &Control{ID: id, Title: f.Titles[id]}
		}
		return by[id]
	}
	for r, cs := range f.Rules {
		for _, c := range cs {
			get(c).Rules = append(get(c).Rules, r)
		}
	}
	for ft, cs := range f.Features {
		for _, c := range cs {
			get(c).Features = append(get(c).Features, ft)
		}
	}
	out := make([]Control, 0, len(by))
	for _, c := range by {
		sort.Strings(c.Rules)
		sort.Slice(c.Features, func(i, j int) bool {
			return slices.Index(Features, c.Features[i]) < slices.Index(Features, c.Features[j])
		})
		out = append(out, *c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}
