package behavior_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/portcullis-ai/portcullis/internal/behavior"
)

// BenchmarkObserve is Record+Observe for one (agent, tool) with a busy window: one call per
// millisecond of simulated time, counted over the seed's 60-minute window.
func BenchmarkObserve(b *testing.B) {
	tr := behavior.NewTracker(behavior.NewMemoryStore(behavior.MemoryOptions{}), behavior.Config{})
	t0 := time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)
	windows := []time.Duration{time.Hour}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		if _, err := tr.Observe(ctx, behavior.Call{Agent: "a", Tool: "t", ParamSize: 1024, At: t0.Add(time.Duration(i) * time.Millisecond)}, windows); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkObserveParallel spreads calls over 1,000 agents × 10 tools from all cores.
func BenchmarkObserveParallel(b *testing.B) {
	tr := behavior.NewTracker(behavior.NewMemoryStore(behavior.MemoryOptions{}), behavior.Config{})
	t0 := time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)
	windows := []time.Duration{time.Hour, 10 * time.Minute}
	agents := make([]string, 1000)
	tools := make([]string, 10)
	for i := range agents {
		agents[i] = fmt.Sprintf("agent-%d", i)
	}
	for i := range tools {
		tools[i] = fmt.Sprintf("tool-%d", i)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			i++
			c := behavior.Call{Agent: agents[i%len(agents)], Tool: tools[(i/7)%len(tools)], ParamSize: 512, At: t0.Add(time.Duration(i) * time.Millisecond)}
			if _, err := tr.Observe(ctx, c, windows); err != nil {
				b.Fatal(err)
			}
		}
	})
}
