package policy

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

func seedSet(b testing.TB) *Set {
	b.Helper()
	set, err := Load("testdata/seed/01_deny_by_default.yaml")
	if err != nil {
		b.Fatal(err)
	}
	return set
}

// BenchmarkEvaluate measures the hot path on the seed's first policy (target: ≤ 300 ns, 0 allocs).
func BenchmarkEvaluate(b *testing.B) {
	set := seedSet(b)
	tm, _ := time.Parse(time.RFC3339, "2026-03-10T10:00:00-04:00")
	req := &Request{Agent: Agent{ID: "report-generator-v1"}, Tool: "fetch_sales_data",
		Params: map[string]any{"query_type": "monthly", "date_range_days": 30.0}, Time: tm}
	if d := set.Evaluate(req); d.Action != Allow {
		b.Fatalf("decision %v", d)
	}
	b.ReportAllocs()
	for b.Loop() {
		set.Evaluate(req)
	}
}

func manyRulesPolicy(n int, regex bool) string {
	var sb strings.Builder
	sb.WriteString("agent_id: a\nrules:\n")
	for i := range n {
		tool := fmt.Sprintf("tool_%d", i)
		if regex {
			tool = fmt.Sprintf("tool_%d_(read|write)[0-9]*", i)
		}
		fmt.Fprintf(&sb, "  - name: r%d\n    tool: %q\n    action: ALLOW\n    conditions:\n      - parameter: limit\n        max_value: 100\n", i, tool)
	}
	return sb.String()
}

func BenchmarkEvaluateRules(b *testing.B) {
	for _, regex := range []bool{false, true} {
		for _, n := range []int{10, 100, 1000, 10000} {
			if regex && n > 1000 {
				continue
			}
			name := fmt.Sprintf("exact/%d", n)
			if regex {
				name = fmt.Sprintf("regex/%d", n)
			}
			b.Run(name, func(b *testing.B) {
				f, err := Parse("bench.yaml", []byte(manyRulesPolicy(n, regex)))
				if err != nil {
					b.Fatal(err)
				}
				set, err := Compile(f)
				if err != nil {
					b.Fatal(err)
				}
				tool := fmt.Sprintf("tool_%d", n/2)
				if regex {
					tool = fmt.Sprintf("tool_%d_read7", n/2)
				}
				req := &Request{Agent: Agent{ID: "a"}, Tool: tool, Params: map[string]any{"limit": 5.0}, Time: time.Unix(1e9, 0)}
				if d := set.Evaluate(req); d.Action != Allow {
					b.Fatalf("decision %v", d)
				}
				b.ReportAllocs()
				for b.Loop() {
					set.Evaluate(req)
				}
			})
		}
	}
}
