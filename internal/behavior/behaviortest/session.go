package behaviortest

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/portcullis-ai/portcullis/internal/behavior"
)

func labelNames(ls []behavior.Label) []string {
	out := make([]string, len(ls))
	for i, l := range ls {
		out[i] = l.Name
	}
	return out
}

// RunSessions is the contract every behavior.SessionStore must pass: the in-memory store and
// the Redis store run the same suite. Each subtest gets a fresh store made with opt (TTL one
// hour, at most 3 labels per session, 4 sessions per agent, 2 agents); agent names are unique
// per run so that shared backends (one Redis) do not interfere.
func RunSessions(t *testing.T, newStore func(t *testing.T, opt behavior.SessionOptions) behavior.SessionStore) {
	ctx := context.Background()
	uniq := fmt.Sprintf("%d", time.Now().UnixNano())
	agent := func(name string) string { return name + "-" + uniq }
	opt := behavior.SessionOptions{TTL: time.Hour, MaxLabels: 3, MaxSessionsPerAgent: 4, MaxAgents: 2}
	must := func(t *testing.T, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}

	t.Run("labels accumulate with their first source, per session", func(t *testing.T) {
		m := newStore(t, opt)
		now := T0
		k := behavior.SessionKey{Agent: agent("a1"), User: "u", ID: "s1"}
		if ls, err := m.SessionLabels(ctx, k, now); err != nil || len(ls) != 0 {
			t.Fatalf("new session: %v, %v", ls, err)
		}
		must(t, m.AddSessionLabels(ctx, k, []behavior.Label{{Name: "untrusted", Tool: "fetch", DecisionID: "d1"}}, now))
		must(t, m.AddSessionLabels(ctx, k, []behavior.Label{{Name: "untrusted", Tool: "mail", DecisionID: "d2"}, {Name: "private", Tool: "read", DecisionID: "d3"}}, now))
		ls, err := m.SessionLabels(ctx, k, now)
		must(t, err)
		got := map[string]string{}
		for _, l := range ls {
			got[l.Name] = l.Tool + "/" + l.DecisionID
		}
		if len(ls) != 2 || got["untrusted"] != "fetch/d1" || got["private"] != "read/d3" {
			t.Fatalf("labels %+v: want untrusted from fetch/d1, private from read/d3", ls)
		}
		for _, o := range []behavior.SessionKey{{Agent: k.Agent, User: "v", ID: "s1"}, {Agent: k.Agent, User: "u", ID: "s2"}, {Agent: agent("other"), User: "u", ID: "s1"}} {
			if ls, _ := m.SessionLabels(ctx, o, now); len(ls) != 0 {
				t.Errorf("%+v sees %v", o, ls)
			}
		}
		// Bounded labels: past the cap the add fails (the caller fails closed); nothing is dropped.
		must(t, m.AddSessionLabels(ctx, k, []behavior.Label{{Name: "c1"}}, now))
		if err := m.AddSessionLabels(ctx, k, []behavior.Label{{Name: "c2"}}, now); !errors.Is(err, behavior.ErrCapacity) {
			t.Fatalf("label past the cap: %v", err)
		}
		if ls, _ := m.SessionLabels(ctx, k, now); len(ls) != 3 {
			t.Errorf("labels after the refused add: %v", labelNames(ls))
		}
		// Hostile names and keys are refused.
		if err := m.AddSessionLabels(ctx, k, []behavior.Label{{Name: "Bad Label"}}, now); !errors.Is(err, behavior.ErrSession) {
			t.Errorf("bad label: %v", err)
		}
		if _, err := m.SessionLabels(ctx, behavior.SessionKey{ID: "x"}, now); !errors.Is(err, behavior.ErrSession) {
			t.Errorf("no agent: %v", err)
		}
		long := behavior.SessionKey{Agent: k.Agent, ID: string(make([]byte, behavior.MaxSessionIDBytes+1))}
		if err := m.AddSessionLabels(ctx, long, nil, now); !errors.Is(err, behavior.ErrSession) {
			t.Errorf("long session id: %v", err)
		}
		// A session in use stays; an idle one ends after its lifetime.
		if ls, _ := m.SessionLabels(ctx, k, now.Add(50*time.Minute)); len(ls) != 3 {
			t.Errorf("session in use lost labels: %v", labelNames(ls))
		}
		if ls, _ := m.SessionLabels(ctx, k, now.Add(100*time.Minute)); len(ls) != 3 {
			t.Errorf("reading a session did not renew it: %v", labelNames(ls))
		}
		if ls, _ := m.SessionLabels(ctx, k, now.Add(4*time.Hour)); len(ls) != 0 {
			t.Errorf("expired session still has %v", labelNames(ls))
		}
	})

	// An agent that mints session ids to push a tainted session out of the store does not
	// launder it: the evicted session's labels stay on every session of that agent and user.
	t.Run("eviction keeps labels", func(t *testing.T) {
		m := newStore(t, opt)
		now := T0
		a := agent("a2")
		tainted := behavior.SessionKey{Agent: a, User: "u", ID: "tainted"}
		must(t, m.AddSessionLabels(ctx, tainted, []behavior.Label{{Name: "untrusted", Tool: "fetch", DecisionID: "d1"}}, now))
		for i := range 10 {
			now = now.Add(time.Second)
			must(t, m.AddSessionLabels(ctx, behavior.SessionKey{Agent: a, User: "u", ID: fmt.Sprint("minted", i)}, nil, now))
		}
		ls, _ := m.SessionLabels(ctx, tainted, now)
		if len(ls) != 1 || ls[0].Name != "untrusted" || ls[0].DecisionID != "d1" {
			t.Fatalf("evicted session laundered: %+v", ls)
		}
		if ls, _ := m.SessionLabels(ctx, behavior.SessionKey{Agent: a, User: "v", ID: "tainted"}, now); len(ls) != 0 {
			t.Errorf("other user sees %v", ls)
		}
	})
}
