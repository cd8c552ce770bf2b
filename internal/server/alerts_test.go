package server

import (
	"bytes"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"go.yaml.in/yaml/v3"

	"github.com/portcullis-ai/portcullis/internal/auditindex"
)

var (
	fqNameRE = regexp.MustCompile(`fqName: "([^"]+)"`)
	metricRE = regexp.MustCompile(`\bportcullis_[a-z0-9_]+`)
)

// ownMetricNames lists every metric the gateway's own collectors can serve.
func ownMetricNames(t *testing.T) map[string]bool {
	t.Helper()
	m := NewMetrics(func() float64 { return 0 })
	m.MCPLogs(func() map[string]uint64 { return nil })
	m.Export(func() map[string]ExportStats { return nil })
	m.AuditIndex(func() auditindex.Stats { return auditindex.Stats{} })
	names := map[string]bool{}
	ch := make(chan *prometheus.Desc, 64)
	for _, c := range m.own {
		c.Describe(ch)
	}
	close(ch)
	for d := range ch {
		mm := fqNameRE.FindStringSubmatch(d.String())
		if mm == nil {
			t.Fatalf("cannot read the name of %s", d)
		}
		names[mm[1]] = true
	}
	if len(names) < 14 {
		t.Fatalf("found only %v", names)
	}
	return names
}

// The example alerting rules use only metrics the gateway serves, so they cannot drift.
func TestExampleAlertsUseServedMetrics(t *testing.T) {
	raw, err := os.ReadFile("../../examples/prometheus/alerts.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var file struct {
		Groups []struct {
			Name  string `yaml:"name"`
			Rules []struct {
				Alert       string            `yaml:"alert"`
				Expr        string            `yaml:"expr"`
				For         string            `yaml:"for"`
				Labels      map[string]string `yaml:"labels"`
				Annotations map[string]string `yaml:"annotations"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true) // the rule file's own keys, misspelt ones refused
	if err := dec.Decode(&file); err != nil {
		t.Fatal(err)
	}
	served := ownMetricNames(t)
	used := map[string]bool{}
	rules := 0
	for _, g := range file.Groups {
		for _, r := range g.Rules {
			rules++
			if r.Alert == "" || strings.TrimSpace(r.Expr) == "" || r.Labels["severity"] == "" || r.Annotations["summary"] == "" {
				t.Errorf("group %s: rule %q lacks alert, expr, severity or summary", g.Name, r.Alert)
			}
			names := metricRE.FindAllString(r.Expr, -1)
			if len(names) == 0 {
				t.Errorf("rule %s uses no portcullis metric", r.Alert)
			}
			for _, n := range names {
				base := n
				for _, suf := range []string{"_bucket", "_sum", "_count"} {
					if b, ok := strings.CutSuffix(n, suf); ok && served[b] {
						base = b
					}
				}
				if !served[base] {
					t.Errorf("rule %s uses %s, which the gateway does not serve", r.Alert, n)
				}
				used[base] = true
			}
		}
	}
	if rules < 8 {
		t.Fatalf("only %d rules", rules)
	}
	for _, must := range []string{"portcullis_decisions_total", "portcullis_ledger_queue_depth", "portcullis_export_lag_records", "portcullis_export_dropped_total"} {
		if !used[must] {
			t.Errorf("no rule uses %s", must)
		}
	}
}
