package behavior

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"
)

func names(ls []Label) []string {
	out := make([]string, len(ls))
	for i, l := range ls {
		out[i] = l.Name
	}
	return out
}

func TestMemorySessionsLabels(t *testing.T) {
	ctx := context.Background()
	m := NewMemorySessions(SessionOptions{TTL: time.Hour, MaxLabels: 3})
	now := time.Unix(1_000_000, 0)
	k := SessionKey{Agent: "a", User: "u", ID: "s1"}
	if ls, err := m.SessionLabels(ctx, k, now); err != nil || len(ls) != 0 {
		t.Fatalf("new session: %v, %v", ls, err)
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(m.AddSessionLabels(ctx, k, []Label{{Name: "untrusted", Tool: "fetch", DecisionID: "d1"}}, now))
	must(m.AddSessionLabels(ctx, k, []Label{{Name: "untrusted", Tool: "mail", DecisionID: "d2"}, {Name: "private", Tool: "read", DecisionID: "d3"}}, now))
	ls, err := m.SessionLabels(ctx, k, now)
	must(err)
	if fmt.Sprint(names(ls)) != "[untrusted private]" || ls[0].DecisionID != "d1" {
		t.Fatalf("labels %+v: want untrusted (first source d1), private", ls)
	}
	// Other users' and other sessions' labels are their own.
	for _, o := range []SessionKey{{Agent: "a", User: "v", ID: "s1"}, {Agent: "a", User: "u", ID: "s2"}, {Agent: "b", User: "u", ID: "s1"}} {
		if ls, _ := m.SessionLabels(ctx, o, now); len(ls) != 0 {
			t.Errorf("%+v sees %v", o, ls)
		}
	}
	// Bounded labels: past the cap the add fails (the caller fails closed), nothing is dropped.
	must(m.AddSessionLabels(ctx, k, []Label{{Name: "c1"}}, now))
	if err := m.AddSessionLabels(ctx, k, []Label{{Name: "c2"}}, now); !errors.Is(err, ErrCapacity) {
		t.Fatalf("label past the cap: %v", err)
	}
	// Hostile names and keys are refused.
	if err := m.AddSessionLabels(ctx, k, []Label{{Name: "Bad Label"}}, now); !errors.Is(err, ErrSession) {
		t.Errorf("bad label: %v", err)
	}
	if _, err := m.SessionLabels(ctx, SessionKey{ID: "x"}, now); !errors.Is(err, ErrSession) {
		t.Errorf("no agent: %v", err)
	}
	long := SessionKey{Agent: "a", ID: string(make([]byte, MaxSessionIDBytes+1))}
	if err := m.AddSessionLabels(ctx, long, nil, now); !errors.Is(err, ErrSession) {
		t.Errorf("long session id: %v", err)
	}
	// The session ends after its idle lifetime.
	if ls, _ := m.SessionLabels(ctx, k, now.Add(2*time.Hour)); len(ls) != 0 {
		t.Errorf("expired session still has %v", ls)
	}
}

// An agent that mints session ids to push a tainted session out of the store does not launder
// it: the evicted session's labels stay on every session of that agent and user.
func TestMemorySessionsEvictionKeepsLabels(t *testing.T) {
	ctx := context.Background()
	m := NewMemorySessions(SessionOptions{TTL: time.Hour, MaxSessionsPerAgent: 4})
	now := time.Unix(1_000_000, 0)
	tainted := SessionKey{Agent: "a", User: "u", ID: "tainted"}
	if err := m.AddSessionLabels(ctx, tainted, []Label{{Name: "untrusted", Tool: "fetch", DecisionID: "d1"}}, now); err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		now = now.Add(time.Second)
		if err := m.AddSessionLabels(ctx, SessionKey{Agent: "a", User: "u", ID: fmt.Sprint("minted", i)}, nil, now); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(m.agents["a"].sessions); n > 4 {
		t.Fatalf("%d sessions held, cap 4", n)
	}
	ls, _ := m.SessionLabels(ctx, tainted, now)
	if fmt.Sprint(names(ls)) != "[untrusted]" || ls[0].DecisionID != "d1" {
		t.Fatalf("evicted session laundered: %+v", ls)
	}
	// Another user of the same agent is not tainted by it.
	if ls, _ := m.SessionLabels(ctx, SessionKey{Agent: "a", User: "v", ID: "tainted"}, now); len(ls) != 0 {
		t.Errorf("other user sees %v", ls)
	}
}

func TestMemorySessionsAgentCap(t *testing.T) {
	ctx := context.Background()
	m := NewMemorySessions(SessionOptions{TTL: time.Hour, MaxAgents: 2})
	now := time.Unix(1_000_000, 0)
	for _, a := range []string{"a", "b"} {
		if err := m.AddSessionLabels(ctx, SessionKey{Agent: a}, []Label{{Name: "private"}}, now); err != nil {
			t.Fatal(err)
		}
	}
	if err := m.AddSessionLabels(ctx, SessionKey{Agent: "c"}, nil, now); !errors.Is(err, ErrCapacity) {
		t.Fatalf("third agent: %v", err)
	}
	// Once the others expired, there is room again.
	if err := m.AddSessionLabels(ctx, SessionKey{Agent: "c"}, nil, now.Add(2*time.Hour)); err != nil {
		t.Fatal(err)
	}
}

func BenchmarkMemorySessionLabels(b *testing.B) {
	ctx := context.Background()
	m := NewMemorySessions(SessionOptions{})
	now := time.Unix(1_000_000, 0)
	k := SessionKey{Agent: "a", User: "u", ID: "s"}
	_ = m.AddSessionLabels(ctx, k, []Label{{Name: "untrusted"}, {Name: "private"}}, now)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := m.SessionLabels(ctx, k, now); err != nil {
			b.Fatal(err)
		}
	}
}
