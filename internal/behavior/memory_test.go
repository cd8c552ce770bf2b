package behavior_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/portcullis-ai/portcullis/internal/behavior"
	"github.com/portcullis-ai/portcullis/internal/behavior/behaviortest"
)

func TestMemoryStoreContract(t *testing.T) {
	behaviortest.Run(t, func(*testing.T) behavior.Store { return behavior.NewMemoryStore(behavior.MemoryOptions{}) })
}

func TestMemoryStoreBounds(t *testing.T) {
	ctx := context.Background()
	q := behavior.Query{BurstWindow: time.Minute}
	s := behavior.NewMemoryStore(behavior.MemoryOptions{MaxAgents: 2, MaxToolsPerAgent: 2, IdleTTL: time.Hour})
	t0 := behaviortest.T0
	for _, c := range []behavior.Call{{Agent: "a", Tool: "1", At: t0}, {Agent: "a", Tool: "2", At: t0}, {Agent: "b", Tool: "1", At: t0}} {
		if _, err := s.Record(ctx, c, q); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Record(ctx, behavior.Call{Agent: "a", Tool: "3", At: t0}, q); !errors.Is(err, behavior.ErrCapacity) {
		t.Errorf("third tool: %v, want ErrCapacity", err)
	}
	if _, err := s.Record(ctx, behavior.Call{Agent: "c", Tool: "1", At: t0}, q); !errors.Is(err, behavior.ErrCapacity) {
		t.Errorf("third agent: %v, want ErrCapacity", err)
	}
	// Two hours later both idle agents are forgotten and there is room again.
	snap, err := s.Record(ctx, behavior.Call{Agent: "c", Tool: "1", At: t0.Add(2 * time.Hour)}, q)
	if err != nil || snap.AgentCalls != 0 {
		t.Fatalf("after idle eviction: %+v %v", snap, err)
	}
	if n := s.Agents(); n != 1 {
		t.Errorf("agents = %d, want 1", n)
	}
}
