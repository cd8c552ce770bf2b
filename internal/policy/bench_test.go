package policy

import (
	"encoding/json"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"
)

// cpuNanos is the process's user+system CPU time. On a shared machine wall-clock ns/op is
// inflated by waiting for a core; cpu-ns/op (reported beside it) is the work actually done.
func cpuNanos() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}

// loop runs f b.N times and reports cpu-ns/op.
func loop(b *testing.B, f func()) {
	b.ReportAllocs()
	start := cpuNanos()
	n := 0
	for b.Loop() {
		f()
		n++
	}
	if n > 0 {
		b.ReportMetric(float64(cpuNanos()-start)/float64(n), "cpu-ns/op")
	}
}

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
	loop(b, func() { set.Evaluate(req) })
}

// BenchmarkEvaluateJSONNumber is BenchmarkEvaluate with the number as the gateway decodes it
// (json.Number, compared exactly as decimal text).
func BenchmarkEvaluateJSONNumber(b *testing.B) {
	set := seedSet(b)
	tm, _ := time.Parse(time.RFC3339, "2026-03-10T10:00:00-04:00")
	req := &Request{Agent: Agent{ID: "report-generator-v1"}, Tool: "fetch_sales_data",
		Params: map[string]any{"query_type": "monthly", "date_range_days": json.Number("30")}, Time: tm}
	if d := set.Evaluate(req); d.Action != Allow {
		b.Fatalf("decision %v", d)
	}
	loop(b, func() { set.Evaluate(req) })
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
				if !regex {
					loop(b, func() { set.Evaluate(req) })
					return
				}
				b.Run("cached", func(b *testing.B) { loop(b, func() { set.Evaluate(req) }) })
				// The same with the name memo full: every request matches the tool name against
				// all 1,000 patterns (prefilters and compiled regexps; nothing is recompiled).
				b.Run("uncached", func(b *testing.B) {
					p := set.agents["a"]
					for i := 0; len(*p.cache.Load()) < maxCachedTools; i++ {
						set.Evaluate(&Request{Agent: Agent{ID: "a"}, Tool: fmt.Sprintf("filler_%d", i), Time: req.Time})
					}
					r := *req
					r.Tool = fmt.Sprintf("tool_%d_write3", n/2+1)
					if d := set.Evaluate(&r); d.Action != Allow {
						b.Fatalf("decision %v", d)
					}
					if _, cached := (*p.cache.Load())[r.Tool]; cached {
						b.Fatal("the uncached name is cached")
					}
					loop(b, func() { set.Evaluate(&r) })
				})
			})
		}
	}
}

// BenchmarkExplain is the on-demand explanation of the seed's first policy (allocates).
func BenchmarkExplain(b *testing.B) {
	set := seedSet(b)
	req := &Request{Agent: Agent{ID: "report-generator-v1"}, Tool: "fetch_sales_data",
		Params: map[string]any{"query_type": "monthly", "date_range_days": 30.0}, Time: time.Date(2026, 3, 10, 14, 0, 0, 0, time.UTC)}
	loop(b, func() { set.Explain(req) })
}

// BenchmarkDecide is the gateway's policy step on the seed's first policy: the decision (Decide,
// which allocates nothing) and the conditions its record quotes (one string each).
func BenchmarkDecide(b *testing.B) {
	set := seedSet(b)
	req := &Request{Agent: Agent{ID: "report-generator-v1"}, Tool: "fetch_sales_data",
		Params: map[string]any{"query_type": "monthly", "date_range_days": 30.0}, Time: time.Date(2026, 3, 10, 14, 0, 0, 0, time.UTC)}
	b.Run("decision", func(b *testing.B) { loop(b, func() { set.Decide(req) }) })
	b.Run("record", func(b *testing.B) {
		loop(b, func() {
			v := set.Decide(req)
			v.Conditions(req, func(RecordedCondition) {})
		})
	})
}

// BenchmarkEvaluateParallel measures throughput with every core evaluating.
func BenchmarkEvaluateParallel(b *testing.B) {
	set := seedSet(b)
	req := &Request{Agent: Agent{ID: "report-generator-v1"}, Tool: "fetch_sales_data",
		Params: map[string]any{"query_type": "monthly", "date_range_days": 30.0}, Time: time.Date(2026, 3, 10, 14, 0, 0, 0, time.UTC)}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			set.Evaluate(req)
		}
	})
}

// BenchmarkLoad parses and compiles the seed policies.
func BenchmarkLoad(b *testing.B) {
	loop(b, func() {
		if _, err := Load("testdata/seed"); err != nil {
			b.Fatal(err)
		}
	})
}
