package guard

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-ai/portcullis/internal/behavior"
	"github.com/portcullis-ai/portcullis/internal/ledger"
	"github.com/portcullis-ai/portcullis/internal/policy"
)

// require_proposal: a call from the MCP gateway (or the decision API) runs only if a model in the
// same session proposed exactly that call, within the window, once per proposal.
func TestRequireProposal(t *testing.T) {
	now := time.Date(2026, 3, 10, 10, 0, 0, 0, time.UTC)
	h := newHarnessWith(t, harnessOptions{
		policy: strings.Replace(sessionPolicy, "default_action: DENY\n", "default_action: DENY\nrequire_proposal: 5m\n", 1),
		guard:  func(o *Options) { o.Now = func() time.Time { return now } },
	})
	ctx := context.Background()
	call := func(source, session, params string) *Decision {
		r := h.call("search", params)
		r.Source, r.Session = source, session
		return h.g.Check(ctx, r)
	}
	if d := call("mcp", "s1", `{"q":"a"}`); d.Action != policy.Deny || d.Code != CodeNotProposed {
		t.Fatalf("unproposed call: %v %s", d.Action, d.Code)
	}
	if d := call(SourceLLM, "s1", `{"q":"a"}`); d.Action != policy.Allow {
		t.Fatalf("the model's proposal: %v %s", d.Action, d.Code)
	}
	// Another session, other arguments: not proposed.
	if d := call("mcp", "s2", `{"q":"a"}`); d.Code != CodeNotProposed {
		t.Errorf("call in another session: %v %s", d.Action, d.Code)
	}
	if d := call("mcp", "s1", `{"q":"b"}`); d.Code != CodeNotProposed {
		t.Errorf("call with other arguments: %v %s", d.Action, d.Code)
	}
	// The same arguments in another key order are the same call; it runs once.
	if d := call("mcp", "s1", ` { "q" : "a" } `); d.Action != policy.Allow {
		t.Fatalf("the proposed call: %v %s", d.Action, d.Code)
	}
	if d := call("mcp", "s1", `{"q":"a"}`); d.Code != CodeNotProposed {
		t.Errorf("a proposal used twice: %v %s", d.Action, d.Code)
	}
	// A proposal older than the window is not enough.
	call(SourceLLM, "s1", `{"q":"c"}`)
	now = now.Add(6 * time.Minute)
	if d := call("http", "s1", `{"q":"c"}`); d.Code != CodeNotProposed {
		t.Errorf("a stale proposal: %v %s", d.Action, d.Code)
	}
	if r := h.recordOf(t, call("mcp", "s9", `{}`).ID, "decision"); !strings.Contains(r.Reason, CodeNotProposed) && !strings.Contains(r.Reason, "proposed") {
		t.Errorf("record reason: %q", r.Reason)
	}
}

// failingProposals is a proposal store that cannot be reached.
type failingProposals struct{}

func (failingProposals) Propose(context.Context, behavior.SessionKey, string, time.Time) error {
	return errors.New("redis: connection refused")
}

func (failingProposals) UseProposal(context.Context, behavior.SessionKey, string, time.Duration, time.Time) (bool, error) {
	return false, errors.New("redis: connection refused")
}

// A proposal store that cannot be read denies the call (session_unavailable), and the model's
// own call is still decided (its proposal is then not remembered).
func TestRequireProposalStoreFailsClosed(t *testing.T) {
	h := newHarnessWith(t, harnessOptions{
		policy: strings.Replace(sessionPolicy, "default_action: DENY\n", "default_action: DENY\nrequire_proposal: 5m\n", 1),
		guard:  func(o *Options) { o.Proposals = failingProposals{} },
	})
	ctx := context.Background()
	r := h.call("search", `{"q":"a"}`)
	r.Source, r.Session = SourceLLM, "s1"
	if d := h.g.Check(ctx, r); d.Action != policy.Allow {
		t.Fatalf("the model's call: %v %s", d.Action, d.Code)
	}
	// The proposal the store could not keep is counted, and its failure is on the record: the
	// not_proposed refusal that follows has an explanation an operator can find.
	if n := h.g.ProposalsLost(); n != 1 {
		t.Errorf("proposals lost: %d, want 1", n)
	}
	lost := false
	for _, data := range h.records(t) {
		if rec, err := ledger.ParseRecord([]byte(data)); err == nil && rec.Tool == "search" &&
			strings.HasPrefix(rec.Reason, CodeProposalLost+": ") && strings.Contains(rec.Reason, "connection refused") {
			lost = rec.Agent != nil && rec.Decision == EventLog
		}
	}
	if !lost {
		t.Errorf("the lost proposal is not on the record:\n%s", strings.Join(h.records(t), "\n"))
	}
	r.Source = "mcp"
	if d := h.g.Check(ctx, r); d.Action != policy.Deny || d.Code != CodeSession {
		t.Fatalf("with the store down: %v %s, want DENY %s", d.Action, d.Code, CodeSession)
	}
}
