package behavior_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/portcullis-ai/portcullis/internal/behavior"
	"github.com/portcullis-ai/portcullis/internal/behavior/behaviortest"
)

func TestMemorySessionsContract(t *testing.T) {
	behaviortest.RunSessions(t, func(_ *testing.T, opt behavior.SessionOptions) behavior.SessionStore {
		return behavior.NewMemorySessions(opt)
	})
}

func TestMemorySessionsAgentCap(t *testing.T) {
	ctx := context.Background()
	m := behavior.NewMemorySessions(behavior.SessionOptions{TTL: time.Hour, MaxAgents: 2})
	now := time.Unix(1_000_000, 0)
	for _, a := range []string{"a", "b"} {
		if err := m.AddSessionLabels(ctx, behavior.SessionKey{Agent: a}, []behavior.Label{{Name: "private"}}, now); err != nil {
			t.Fatal(err)
		}
	}
	if err := m.AddSessionLabels(ctx, behavior.SessionKey{Agent: "c"}, nil, now); !errors.Is(err, behavior.ErrCapacity) {
		t.Fatalf("third agent: %v", err)
	}
	// Once the others expired, there is room again.
	if err := m.AddSessionLabels(ctx, behavior.SessionKey{Agent: "c"}, nil, now.Add(2*time.Hour)); err != nil {
		t.Fatal(err)
	}
}

func BenchmarkMemorySessionLabels(b *testing.B) {
	ctx := context.Background()
	m := behavior.NewMemorySessions(behavior.SessionOptions{})
	now := time.Unix(1_000_000, 0)
	k := behavior.SessionKey{Agent: "a", User: "u", ID: "s"}
	_ = m.AddSessionLabels(ctx, k, []behavior.Label{{Name: "untrusted"}, {Name: "private"}}, now)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := m.SessionLabels(ctx, k, now); err != nil {
			b.Fatal(err)
		}
	}
}
