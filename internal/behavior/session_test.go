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

func TestMemoryProposalsContract(t *testing.T) {
	behaviortest.RunProposals(t, behavior.NewMemoryProposals(0, time.Hour))
}

func TestMemoryLinksContract(t *testing.T) {
	behaviortest.RunLinks(t, behavior.NewMemoryLinks(0, time.Hour))
}

// Links end after the idle lifetime, and past the bound the least recently used goes first.
func TestMemoryLinksBounds(t *testing.T) {
	ctx := context.Background()
	l := behavior.NewMemoryLinks(2, time.Hour)
	now := time.Unix(1_000_000, 0)
	for _, a := range []string{"r1", "r2"} {
		if err := l.LinkSession(ctx, "a", a, "s-"+a, now); err != nil {
			t.Fatal(err)
		}
	}
	if _, ok, _ := l.LinkedSession(ctx, "a", "r1", now); !ok { // r1 used: r2 is now the oldest
		t.Fatal("r1 lost")
	}
	if err := l.LinkSession(ctx, "a", "r3", "s-r3", now); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := l.LinkedSession(ctx, "a", "r2", now); ok {
		t.Error("the least recently used link was kept past the bound")
	}
	if _, ok, _ := l.LinkedSession(ctx, "a", "r1", now.Add(time.Hour)); !ok {
		t.Error("a link used within its lifetime ended")
	}
	if _, ok, _ := l.LinkedSession(ctx, "a", "r3", now.Add(time.Hour+time.Second)); ok {
		t.Error("an idle link outlived its lifetime")
	}
}

// Past the bound a new proposal is refused (its call is then refused); expired ones make room.
func TestMemoryProposalsBounded(t *testing.T) {
	ctx := context.Background()
	p := behavior.NewMemoryProposals(2, time.Hour)
	now := time.Unix(1_000_000, 0)
	k := behavior.SessionKey{Agent: "a"}
	for _, call := range []string{"a", "b"} {
		if err := p.Propose(ctx, k, call, now); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Propose(ctx, k, "c", now); !errors.Is(err, behavior.ErrCapacity) {
		t.Fatalf("past the bound: %v", err)
	}
	if ok, _ := p.UseProposal(ctx, k, "c", time.Minute, now); ok {
		t.Fatal("a proposal refused past the bound was kept")
	}
	later := now.Add(2 * time.Hour)
	if err := p.Propose(ctx, k, "c", later); err != nil {
		t.Fatalf("expired proposals did not make room: %v", err)
	}
	if ok, _ := p.UseProposal(ctx, k, "c", time.Minute, later); !ok {
		t.Fatal("the proposal made room for was not kept")
	}
}
