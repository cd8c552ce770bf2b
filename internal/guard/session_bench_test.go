package guard

import (
	"context"
	"testing"
	"time"

	"github.com/portcullis-ai/portcullis/internal/behavior"
)

// BenchmarkCheckSession is one whole Check (ledger on the in-memory store) with session tracking
// off and on (the embedded store, a session that has seen two labels): the difference is the
// added cost per call.
func BenchmarkCheckSession(b *testing.B) {
	for _, on := range []bool{false, true} {
		name := "off"
		var store behavior.SessionStore
		if on {
			name = "on"
			store = behavior.NewMemorySessions(behavior.SessionOptions{})
		}
		b.Run(name, func(b *testing.B) {
			h := newHarnessWith(b, harnessOptions{policy: sessionPolicy, guard: func(o *Options) { o.Sessions = store }})
			ctx := context.Background()
			a := h.agent(b)
			if store != nil {
				_ = store.AddSessionLabels(ctx, sessionKey(a.ID, "", "s"), []behavior.Label{{Name: "untrusted"}, {Name: "private"}}, h.g.now())
			}
			req := h.call("search", `{"q":"prices"}`)
			req.Agent, req.Session = a, "s"
			b.ReportAllocs()
			for b.Loop() {
				if d := h.g.Check(ctx, req); !d.Allowed() {
					b.Fatal(d.Action, d.Code, d.Err)
				}
			}
		})
	}
}

// BenchmarkSessionStep is the work session tracking adds to a call, alone: reading the session's
// labels (embedded store) into the policy's form.
func BenchmarkSessionStep(b *testing.B) {
	store := behavior.NewMemorySessions(behavior.SessionOptions{})
	g := &Guard{sessions: store}
	ctx := context.Background()
	k := sessionKey("agent", "user", "session")
	_ = store.AddSessionLabels(ctx, k, []behavior.Label{{Name: "untrusted", Tool: "fetch", DecisionID: "dec_1"}, {Name: "private", Tool: "read", DecisionID: "dec_2"}}, timeZero)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := g.sessionState(ctx, k, timeZero); err != nil {
			b.Fatal(err)
		}
	}
}

var timeZero = time.Unix(1_800_000_000, 0)

// BenchmarkSessionProposal is what require_proposal adds to a pair of calls on the embedded
// store: the model's call remembered (digest of its arguments and Propose), then the matching
// call from another transport spent (digest and UseProposal).
func BenchmarkSessionProposal(b *testing.B) {
	store := behavior.NewMemoryProposals(0, time.Hour)
	ctx := context.Background()
	k := sessionKey("agent", "user", "session")
	req := Request{Tool: "send_email", Params: []byte(`{"to":"bob@example.com","body":"the Q3 report, as discussed"}`)}
	b.ReportAllocs()
	for b.Loop() {
		var p callParams // each call's one parse, as the guard makes it
		if err := p.parse(req.Params); err != nil {
			b.Fatal(err)
		}
		call, err := proposedCall(req, &p)
		if err != nil {
			b.Fatal(err)
		}
		if err := store.Propose(ctx, k, call, timeZero); err != nil {
			b.Fatal(err)
		}
		var q callParams
		if err := q.parse(req.Params); err != nil {
			b.Fatal(err)
		}
		call, _ = proposedCall(req, &q)
		if ok, err := store.UseProposal(ctx, k, call, time.Minute, timeZero); err != nil || !ok {
			b.Fatal(ok, err)
		}
	}
}
