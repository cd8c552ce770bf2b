package behaviortest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/portcullis-ai/portcullis/internal/behavior"
)

// RunProposals is the contract every behavior.ProposalStore must pass: a proposal is spent
// once per time it was made, only in its own session, only within the window.
func RunProposals(t *testing.T, s behavior.ProposalStore) {
	ctx := context.Background()
	uniq := fmt.Sprintf("%d", time.Now().UnixNano())
	k := behavior.SessionKey{Agent: "a-" + uniq, User: "u", ID: "s1"}
	use := func(k behavior.SessionKey, call string, window time.Duration, now time.Time) bool {
		t.Helper()
		ok, err := s.UseProposal(ctx, k, call, window, now)
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}
	if use(k, "send\x00d1", time.Minute, T0) {
		t.Fatal("a call never proposed was spent")
	}
	for range 2 {
		if err := s.Propose(ctx, k, "send\x00d1", T0); err != nil {
			t.Fatal(err)
		}
	}
	for _, o := range []behavior.SessionKey{{Agent: k.Agent, User: "v", ID: "s1"}, {Agent: k.Agent, User: "u", ID: "s2"}, {Agent: "b-" + uniq, User: "u", ID: "s1"}} {
		if use(o, "send\x00d1", time.Minute, T0) {
			t.Errorf("proposal of %+v spent in %+v", k, o)
		}
	}
	if use(k, "send\x00d2", time.Minute, T0) {
		t.Error("a proposal spent by another call")
	}
	for i := range 2 {
		if !use(k, "send\x00d1", time.Minute, T0.Add(time.Minute)) {
			t.Fatalf("call %d of two proposals refused", i+1)
		}
	}
	if use(k, "send\x00d1", time.Minute, T0.Add(time.Minute)) {
		t.Error("a third call on two proposals")
	}
	if err := s.Propose(ctx, k, "send\x00d3", T0); err != nil {
		t.Fatal(err)
	}
	if use(k, "send\x00d3", time.Minute, T0.Add(time.Minute+time.Second)) {
		t.Error("a proposal older than the window was spent")
	}
}

// RunLinks is the contract every behavior.SessionLinks must pass.
func RunLinks(t *testing.T, s behavior.SessionLinks) {
	ctx := context.Background()
	agent := fmt.Sprintf("a-%d", time.Now().UnixNano())
	if _, ok, err := s.LinkedSession(ctx, agent, "resp_1", T0); err != nil || ok {
		t.Fatalf("unknown alias: %v %v", ok, err)
	}
	if err := s.LinkSession(ctx, agent, "resp_1", "conv-7", T0); err != nil {
		t.Fatal(err)
	}
	if id, ok, err := s.LinkedSession(ctx, agent, "resp_1", T0); err != nil || !ok || id != "conv-7" {
		t.Fatalf("linked: %q %v %v", id, ok, err)
	}
	if _, ok, _ := s.LinkedSession(ctx, agent+"-other", "resp_1", T0); ok {
		t.Error("another agent follows the link")
	}
	// A link to the default session is a link too.
	if err := s.LinkSession(ctx, agent, "resp_2", "", T0); err != nil {
		t.Fatal(err)
	}
	if id, ok, err := s.LinkedSession(ctx, agent, "resp_2", T0); err != nil || !ok || id != "" {
		t.Errorf("link to the default session: %q %v %v", id, ok, err)
	}
	if err := s.LinkSession(ctx, agent, "", "x", T0); err == nil {
		t.Error("empty alias accepted")
	}
	if err := s.LinkSession(ctx, agent, "resp_3", string(make([]byte, behavior.MaxSessionIDBytes+1)), T0); err == nil {
		t.Error("oversized session ID accepted")
	}
}
