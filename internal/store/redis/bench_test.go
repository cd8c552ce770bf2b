package redis

import (
	"context"
	"testing"
	"time"

	"github.com/portcullis-ai/portcullis/internal/behavior"
)

// BenchmarkRedisObserve is Record+Observe through the Lua script: one round trip per call.
func BenchmarkRedisObserve(b *testing.B) {
	c := client(b)
	s := NewBehaviorStore(c, BehaviorOptions{Prefix: "pcl:bench:" + time.Now().Format("150405.000000") + ":"})
	tr := behavior.NewTracker(s, behavior.Config{})
	t0 := time.Now()
	windows := []time.Duration{time.Hour}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		if _, err := tr.Observe(context.Background(), behavior.Call{Agent: "a", Tool: "t", ParamSize: 1024, At: t0.Add(time.Duration(i) * time.Millisecond)}, windows); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkRedisNonce(b *testing.B) {
	s := NewNonceStore(client(b), "pcl:bench:nonce:"+time.Now().Format("150405.000000")+":")
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		if _, err := s.Use(context.Background(), time.Duration(i).String(), time.Minute); err != nil {
			b.Fatal(err)
		}
	}
}
