package approval

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/portcullis-ai/portcullis/internal/inspect"
	"github.com/portcullis-ai/portcullis/internal/threat"
)

// events is a Recorder that keeps what it is given and can be told to fail.
type events struct {
	mu   sync.Mutex
	got  []Event
	fail error
}

func (r *events) RecordApproval(_ context.Context, e Event) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail != nil {
		return r.fail
	}
	r.got = append(r.got, e)
	return nil
}

func (r *events) setFail(err error) {
	r.mu.Lock()
	r.fail = err
	r.mu.Unlock()
}

// kinds summarises the recorded events as "kind:from>to:actor".
func (r *events) kinds() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, e := range r.got {
		out = append(out, fmt.Sprintf("%s:%s>%s:%s", e.Kind, e.From, e.To, e.Actor))
	}
	return out
}

func newTestEngine(t *testing.T, opts ...Option) (*Engine, *events, *Memory) {
	t.Helper()
	st := NewMemory()
	rec := &events{}
	e, err := New(st, rec, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return e, rec, st
}

var (
	everything = []Scope{{Agents: []string{".*"}, Tools: []string{".*"}}}
	alice      = Approver{ID: "alice@example.com", Kind: Human, Scopes: everything}
	bob        = Approver{ID: "bob@example.com", Kind: Human, Scopes: everything}
	carol      = Approver{ID: "carol@example.com", Kind: Human, Scopes: everything}
)

const transferParams = `{"amount": 1000, "to": "acct-1", "memo": "rent"}`

func transferInput() Input {
	return Input{
		DecisionID:     "dec-1",
		Agent:          "payments-agent",
		User:           "dave@example.com",
		UserVerified:   true,
		Tool:           "transfer_funds",
		Params:         json.RawMessage(transferParams),
		RedactedParams: json.RawMessage(`{"amount": 1000, "to": "acct-1", "memo": "[REDACTED]"}`),
		Rule:           "large_transfers_need_approval",
		Conditions:     []Condition{{Text: "parameter amount min_value 500", Result: true}},
		ThreatLevel:    threat.Low,
		Findings:       []inspect.Finding{{Kind: "pii.iban", Severity: threat.Low, Path: "$.to", Evidence: "acct-*", Score: 0.4}},
		Signals:        []Signal{{Name: "unusual_hour", Score: 1}},
		PolicyVersion:  "v7",
	}
}

func mustDigest(t *testing.T, params string) string {
	t.Helper()
	d, err := Digest([]byte(params))
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// keyFor is the key of a call identical to the one that created r.
func keyFor(t *testing.T, r Request) Key {
	return Key{
		Agent: r.Agent, User: r.User, UserVerified: r.UserVerified, Tool: r.Tool,
		ParamsDigest: mustDigest(t, transferParams), PolicyVersion: r.PolicyVersion,
		Rule: r.Rule, Required: r.Required,
	}
}

func mustRequest(t *testing.T, e *Engine, in Input) Request {
	t.Helper()
	r, err := e.Request(context.Background(), in)
	if err != nil {
		t.Fatalf("Request: %v", err)
	}
	return r
}

func TestRequestHoldsWhatApproversNeed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e, rec, _ := newTestEngine(t)
		start := time.Now()
		r := mustRequest(t, e, transferInput())
		got, err := e.Get(context.Background(), r.ID)
		if err != nil {
			t.Fatal(err)
		}
		want := Request{
			ID: r.ID, DecisionID: "dec-1", Agent: "payments-agent", User: "dave@example.com",
			UserVerified: true, Tool: "transfer_funds",
			Params:        json.RawMessage(`{"amount":1000,"memo":"[REDACTED]","to":"acct-1"}`),
			ParamsDigest:  mustDigest(t, transferParams),
			Rule:          "large_transfers_need_approval",
			Conditions:    []Condition{{Text: "parameter amount min_value 500", Result: true}},
			ThreatLevel:   threat.Low,
			Findings:      []inspect.Finding{{Kind: "pii.iban", Severity: threat.Low, Path: "$.to", Evidence: "acct-*", Score: 0.4}},
			Signals:       []Signal{{Name: "unusual_hour", Score: 1}},
			PolicyVersion: "v7", Required: 1, GrantTTL: DefaultGrantTTL,
			CreatedAt: start, ExpiresAt: start.Add(DefaultExpiry), State: Pending,
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("stored request (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff([]string{"approval_requested:>pending:payments-agent"}, rec.kinds()); diff != "" {
			t.Errorf("events (-want +got):\n%s", diff)
		}
		if rec.got[0].PolicyVersion != "v7" || rec.got[0].Request.ID != r.ID {
			t.Errorf("requested event = %+v", rec.got[0])
		}
	})
}

func TestRequestValidation(t *testing.T) {
	tests := []struct {
		name   string
		modify func(*Input)
		want   error
	}{
		{"malformed params", func(in *Input) { in.Params = json.RawMessage(`{"a":`) }, ErrCanonical},
		{"duplicate keys in params", func(in *Input) { in.Params = json.RawMessage(`{"a":1,"a":2}`) }, ErrCanonical},
		{"no redacted params", func(in *Input) { in.RedactedParams = nil }, ErrInvalid},
		{"malformed redacted params", func(in *Input) { in.RedactedParams = json.RawMessage(`[`) }, ErrCanonical},
		{"digest disagrees with params", func(in *Input) { in.ParamsDigest = "sha256:" + fmt.Sprintf("%064x", 1) }, ErrInvalid},
		{"no params nor digest", func(in *Input) { in.Params = nil }, ErrInvalid},
		{"too many approvers", func(in *Input) { in.Required = MaxRequired + 1 }, ErrInvalid},
		{"negative approvers", func(in *Input) { in.Required = -1 }, ErrInvalid},
		{"negative expiry", func(in *Input) { in.Expiry = -time.Minute }, ErrInvalid},
		{"negative grant ttl", func(in *Input) { in.GrantTTL = -time.Minute }, ErrInvalid},
		{"no agent", func(in *Input) { in.Agent = "" }, ErrInvalid},
		{"no tool", func(in *Input) { in.Tool = "" }, ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, rec, st := newTestEngine(t)
			in := transferInput()
			tt.modify(&in)
			if _, err := e.Request(context.Background(), in); !errors.Is(err, tt.want) {
				t.Fatalf("Request: err = %v, want %v", err, tt.want)
			}
			if all, _ := st.List(context.Background(), Filter{}); len(all) != 0 || len(rec.kinds()) != 0 {
				t.Errorf("refused request left %d stored, %d events", len(all), len(rec.kinds()))
			}
		})
	}
}

func TestRequestWithDigestOnly(t *testing.T) {
	e, _, _ := newTestEngine(t)
	in := transferInput()
	in.Params, in.ParamsDigest = nil, mustDigest(t, transferParams)
	r := mustRequest(t, e, in)
	if _, err := e.Approve(context.Background(), r.ID, alice, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Redeem(context.Background(), r.ID, keyFor(t, r)); err != nil {
		t.Fatalf("Redeem: %v", err)
	}
}

func TestApproveThenExactlyOneExecution(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		e, rec, _ := newTestEngine(t)
		r := mustRequest(t, e, transferInput())
		time.Sleep(3 * time.Minute)
		got, err := e.Approve(ctx, r.ID, alice, "looks right")
		if err != nil {
			t.Fatalf("Approve: %v", err)
		}
		if got.State != Approved || got.ResolvedBy != alice.ID || got.Comment != "looks right" ||
			!got.GrantExpiresAt.Equal(time.Now().Add(DefaultGrantTTL)) {
			t.Errorf("after approve: %+v", got)
		}
		used, err := e.Redeem(ctx, r.ID, keyFor(t, r))
		if err != nil {
			t.Fatalf("first Redeem: %v", err)
		}
		if used.State != Consumed || used.ConsumedPolicyVersion != "v7" {
			t.Errorf("after redeem: state %s, version %q", used.State, used.ConsumedPolicyVersion)
		}
		if _, err := e.Redeem(ctx, r.ID, keyFor(t, r)); !errors.Is(err, ErrConsumed) {
			t.Errorf("second Redeem: err = %v, want ErrConsumed", err)
		}
		want := []string{
			"approval_requested:>pending:payments-agent",
			"approval_resolved:pending>approved:alice@example.com",
			"approval_consumed:approved>consumed:payments-agent",
		}
		if diff := cmp.Diff(want, rec.kinds()); diff != "" {
			t.Errorf("events (-want +got):\n%s", diff)
		}
		resolved := rec.got[1]
		if resolved.TimeToResolution != 3*time.Minute || resolved.Comment != "looks right" ||
			!resolved.At.Equal(time.Now()) {
			t.Errorf("resolved event: ttr %v comment %q at %v", resolved.TimeToResolution, resolved.Comment, resolved.At)
		}
	})
}

func TestDenyIsFinal(t *testing.T) {
	ctx := context.Background()
	e, rec, _ := newTestEngine(t)
	r := mustRequest(t, e, transferInput())
	got, err := e.Deny(ctx, r.ID, alice, "not this month")
	if err != nil {
		t.Fatalf("Deny: %v", err)
	}
	if got.State != Denied || got.ResolvedBy != alice.ID || got.Comment != "not this month" {
		t.Errorf("after deny: %+v", got)
	}
	if _, err := e.Redeem(ctx, r.ID, keyFor(t, r)); !errors.Is(err, ErrDenied) {
		t.Errorf("Redeem after deny: err = %v, want ErrDenied", err)
	}
	_, err = e.Approve(ctx, r.ID, bob, "")
	if !errors.Is(err, ErrFinal) || !errors.Is(err, ErrDenied) {
		t.Errorf("Approve after deny: err = %v, want ErrFinal and ErrDenied", err)
	}
	if diff := cmp.Diff([]string{
		"approval_requested:>pending:payments-agent",
		"approval_resolved:pending>denied:alice@example.com",
	}, rec.kinds()); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
}

func TestRedeemPendingRefused(t *testing.T) {
	e, _, _ := newTestEngine(t)
	r := mustRequest(t, e, transferInput())
	if _, err := e.Redeem(context.Background(), r.ID, keyFor(t, r)); !errors.Is(err, ErrPending) {
		t.Fatalf("Redeem pending: err = %v, want ErrPending", err)
	}
	if _, err := e.Redeem(context.Background(), "apr_nope", keyFor(t, r)); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Redeem unknown: err = %v, want ErrNotFound", err)
	}
}

func TestRedeemBinding(t *testing.T) {
	tests := []struct {
		name      string
		modify    func(t *testing.T, k *Key)
		wantField string // "" means the call matches
	}{
		{"identical call", func(t *testing.T, k *Key) {}, ""},
		{"same params, other layout and key order", func(t *testing.T, k *Key) {
			k.ParamsDigest = mustDigest(t, "{\"to\":\"acct-1\",\"memo\":\"rent\",\n\"amount\":1000}")
		}, ""},
		{"one byte of params changed", func(t *testing.T, k *Key) {
			k.ParamsDigest = mustDigest(t, `{"amount": 1001, "to": "acct-1", "memo": "rent"}`)
		}, "params_digest"},
		{"redacted value changed", func(t *testing.T, k *Key) {
			k.ParamsDigest = mustDigest(t, `{"amount": 1000, "to": "acct-1", "memo": "rend"}`)
		}, "params_digest"},
		{"number re-worded", func(t *testing.T, k *Key) {
			k.ParamsDigest = mustDigest(t, `{"amount": 1000.0, "to": "acct-1", "memo": "rent"}`)
		}, "params_digest"},
		{"extra parameter", func(t *testing.T, k *Key) {
			k.ParamsDigest = mustDigest(t, `{"amount": 1000, "to": "acct-1", "memo": "rent", "cc": "x"}`)
		}, "params_digest"},
		{"other agent", func(t *testing.T, k *Key) { k.Agent = "other-agent" }, "agent"},
		{"other user", func(t *testing.T, k *Key) { k.User = "eve@example.com" }, "user"},
		{"user only asserted now", func(t *testing.T, k *Key) { k.UserVerified = false }, "user_verified"},
		{"other tool", func(t *testing.T, k *Key) { k.Tool = "transfer_funds_v2" }, "tool"},
		{"constrained by another rule now", func(t *testing.T, k *Key) { k.Rule = "all_transfers" }, "rule"},
		{"rule now needs two approvers", func(t *testing.T, k *Key) { k.Required = 2 }, "required_approvals"},
		{"policy version changed", func(t *testing.T, k *Key) { k.PolicyVersion = "v8" }, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			e, _, _ := newTestEngine(t)
			r := mustRequest(t, e, transferInput())
			if _, err := e.Approve(ctx, r.ID, alice, ""); err != nil {
				t.Fatal(err)
			}
			k := keyFor(t, r)
			tt.modify(t, &k)
			_, err := e.Redeem(ctx, r.ID, k)
			if tt.wantField == "" {
				if err != nil {
					t.Fatalf("Redeem: %v", err)
				}
				return
			}
			var m *MismatchError
			if !errors.As(err, &m) || !errors.Is(err, ErrMismatch) {
				t.Fatalf("Redeem: err = %v, want a MismatchError", err)
			}
			if m.Field != tt.wantField {
				t.Errorf("mismatch on %q, want %q", m.Field, tt.wantField)
			}
			// A mismatch never burns the grant: the approved call itself may still run once.
			if _, err := e.Redeem(ctx, r.ID, keyFor(t, r)); err != nil {
				t.Errorf("Redeem of the approved call after a mismatch: %v", err)
			}
		})
	}
}

func TestStrictPolicyVersion(t *testing.T) {
	ctx := context.Background()
	e, _, _ := newTestEngine(t, WithStrictPolicyVersion(true))
	r := mustRequest(t, e, transferInput())
	if _, err := e.Approve(ctx, r.ID, alice, ""); err != nil {
		t.Fatal(err)
	}
	k := keyFor(t, r)
	k.PolicyVersion = "v8"
	var m *MismatchError
	if _, err := e.Redeem(ctx, r.ID, k); !errors.As(err, &m) || m.Field != "policy_version" {
		t.Fatalf("Redeem under v8: err = %v, want policy_version mismatch", err)
	}
	if _, err := e.Redeem(ctx, r.ID, keyFor(t, r)); err != nil {
		t.Fatalf("Redeem under v7: %v", err)
	}
}

// TestPolicyChangedToDeny: the policy changes to DENY between request and approval. The guard
// then denies the retry without redeeming (guard's TestPolicyTurnedDenyBeforeApproval), so the grant stays
// approved, expires unused and the ledger says so; changing the policy back afterwards does not
// resurrect it.
func TestPolicyChangedToDeny(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		e, rec, _ := newTestEngine(t)
		r := mustRequest(t, e, transferInput()) // decided CONSTRAIN under v7
		if _, err := e.Approve(ctx, r.ID, alice, "ok"); err != nil {
			t.Fatal(err)
		}
		if got, _ := e.Get(ctx, r.ID); got.State != Approved {
			t.Fatalf("approved request: %s", got.State)
		}
		time.Sleep(DefaultGrantTTL) // v8 denies the call: nothing redeems the grant
		k := keyFor(t, r)
		k.PolicyVersion = "v9" // back to CONSTRAIN, too late
		if _, err := e.Redeem(ctx, r.ID, k); !errors.Is(err, ErrExpired) {
			t.Fatalf("Redeem after grant expiry: %v", err)
		}
		if diff := cmp.Diff([]string{
			"approval_requested:>pending:payments-agent",
			"approval_resolved:pending>approved:alice@example.com",
			"approval_consumed:approved>expired:",
		}, rec.kinds()); diff != "" {
			t.Errorf("events (-want +got):\n%s", diff)
		}
	})
}

var errRegistry = errors.New("registry unavailable")

func TestApproverRules(t *testing.T) {
	agentLookup := func(_ context.Context, id string) (bool, error) {
		switch id {
		case "reporting-agent":
			return true, nil
		case "broken":
			return false, fmt.Errorf("lookup %s: %w", id, errRegistry)
		}
		return false, nil
	}
	tests := []struct {
		name     string
		approver Approver
		want     error
	}{
		{"human in scope", alice, nil},
		{"invoking user approves own request", Approver{ID: "dave@example.com", Kind: Human, Scopes: everything}, ErrSelfApproval},
		{"invoking user, other case", Approver{ID: "DAVE@example.com", Kind: Human, Scopes: everything}, ErrSelfApproval},
		{"invoking user, fullwidth", Approver{ID: "\uff44\uff41\uff56\uff45@example.com", Kind: Human, Scopes: everything}, ErrSelfApproval},
		{"invoking user, spaces and a zero-width space", Approver{ID: " dave\u200b@example.com\u3000", Kind: Human, Scopes: everything}, ErrSelfApproval},
		{"invoking user, qualified by issuer", Approver{ID: "https://login.example.com/#dave@example.com", Name: "dave@example.com", Kind: Human, Scopes: everything}, ErrSelfApproval},
		{"another person, qualified by issuer", Approver{ID: "https://login.example.com/#frank", Name: "frank", Kind: Human, Scopes: everything}, nil},
		{"the requesting agent, qualified", Approver{ID: "https://login.example.com/#Payments-Agent", Name: "Payments-Agent", Kind: Human, Scopes: everything}, ErrAgentApprover},
		{"registered agent, qualified", Approver{ID: "https://login.example.com/#reporting-agent", Name: "reporting-agent", Kind: Human, Scopes: everything}, ErrAgentApprover},
		{"agent credential", Approver{ID: "ops-bot", Kind: Agent, Scopes: everything}, ErrAgentApprover},
		{"no kind at all", Approver{ID: "ghost", Scopes: everything}, ErrAgentApprover},
		{"the requesting agent as human", Approver{ID: "payments-agent", Kind: Human, Scopes: everything}, ErrAgentApprover},
		{"registered agent posing as human", Approver{ID: "reporting-agent", Kind: Human, Scopes: everything}, ErrAgentApprover},
		{"registry lookup fails", Approver{ID: "broken", Kind: Human, Scopes: everything}, errRegistry},
		{"empty id", Approver{Kind: Human, Scopes: everything}, ErrInvalid},
		{"no scopes", Approver{ID: "frank", Kind: Human}, ErrOutOfScope},
		{"other agents only", Approver{ID: "frank", Kind: Human, Scopes: []Scope{{Agents: []string{"reporting-.*"}, Tools: []string{".*"}}}}, ErrOutOfScope},
		{"other tools only", Approver{ID: "frank", Kind: Human, Scopes: []Scope{{Agents: []string{".*"}, Tools: []string{"read_.*"}}}}, ErrOutOfScope},
		{"pattern must match whole name", Approver{ID: "frank", Kind: Human, Scopes: []Scope{{Agents: []string{"payments"}, Tools: []string{"transfer"}}}}, ErrOutOfScope},
		{"agents and tools from different scopes", Approver{ID: "frank", Kind: Human, Scopes: []Scope{
			{Agents: []string{"payments-agent"}, Tools: []string{"read_.*"}},
			{Agents: []string{"reporting-.*"}, Tools: []string{"transfer_funds"}},
		}}, ErrOutOfScope},
		{"second scope fits", Approver{ID: "frank", Kind: Human, Scopes: []Scope{
			{Agents: []string{"reporting-.*"}, Tools: []string{".*"}},
			{Agents: []string{"payments-agent", "billing-agent"}, Tools: []string{"transfer_.*"}},
		}}, nil},
		{"invalid pattern", Approver{ID: "frank", Kind: Human, Scopes: []Scope{{Agents: []string{"("}, Tools: []string{".*"}}}}, ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			e, rec, _ := newTestEngine(t, WithAgentLookup(agentLookup))
			r := mustRequest(t, e, transferInput())
			got, err := e.Approve(ctx, r.ID, tt.approver, "")
			if tt.want == nil {
				if err != nil || got.State != Approved {
					t.Fatalf("Approve: state %s, err %v", got.State, err)
				}
				return
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("Approve: err = %v, want %v", err, tt.want)
			}
			// Refused approvals change nothing and record nothing; a deny by the same
			// principal is refused just the same.
			if _, err := e.Deny(ctx, r.ID, tt.approver, ""); err == nil {
				t.Errorf("Deny by a refused approver succeeded")
			}
			if now, _ := e.Get(ctx, r.ID); now.State != Pending || len(now.Votes) != 0 {
				t.Errorf("after refused approval: state %s, votes %v", now.State, now.Votes)
			}
			if n := len(rec.kinds()); n != 1 {
				t.Errorf("refused approval recorded %d events, want only the request", n)
			}
		})
	}
}

func TestTwoPersonRule(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		e, rec, _ := newTestEngine(t)
		in := transferInput()
		in.Required = 2
		r := mustRequest(t, e, in)

		got, err := e.Approve(ctx, r.ID, alice, "first")
		if err != nil || got.State != Pending || got.Approvals() != 1 {
			t.Fatalf("first approval: state %s approvals %d err %v", got.State, got.Approvals(), err)
		}
		if _, err := e.Redeem(ctx, r.ID, keyFor(t, r)); !errors.Is(err, ErrPending) {
			t.Errorf("redeem with 1 of 2: err = %v, want ErrPending", err)
		}
		if _, err := e.Approve(ctx, r.ID, alice, "again"); !errors.Is(err, ErrDuplicateVote) {
			t.Errorf("same approver twice: err = %v, want ErrDuplicateVote", err)
		}
		// Approver IDs are compared case-insensitively, as for self-approval.
		if _, err := e.Approve(ctx, r.ID, Approver{ID: "ALICE@example.com", Kind: Human, Scopes: everything}, ""); !errors.Is(err, ErrDuplicateVote) {
			t.Errorf("same approver, other case: err = %v, want ErrDuplicateVote", err)
		}
		time.Sleep(time.Minute)
		got, err = e.Approve(ctx, r.ID, bob, "second")
		if err != nil || got.State != Approved || !got.GrantExpiresAt.Equal(time.Now().Add(DefaultGrantTTL)) {
			t.Fatalf("second approval: state %s, grant expiry %v, err %v", got.State, got.GrantExpiresAt, err)
		}
		if _, err := e.Redeem(ctx, r.ID, keyFor(t, r)); err != nil {
			t.Fatalf("redeem 2 of 2: %v", err)
		}
		if kinds := rec.kinds(); kinds[1] != "approval_vote:pending>pending:alice@example.com" {
			t.Errorf("first vote event = %q", kinds[1])
		}
	})
}

func TestTwoPersonStrict(t *testing.T) {
	ctx := context.Background()
	e, rec, _ := newTestEngine(t)
	in := transferInput()
	in.Required = 2
	r := mustRequest(t, e, in)
	if _, err := e.Approve(ctx, r.ID, alice, "first"); err != nil {
		t.Fatal(err)
	}
	got, err := e.Approve(ctx, r.ID, bob, "second")
	if err != nil || got.State != Approved || got.ResolvedBy != bob.ID {
		t.Fatalf("second approval: state %s by %s, err %v", got.State, got.ResolvedBy, err)
	}
	if diff := cmp.Diff([]Vote{
		{Approver: alice.ID, Approve: true, Comment: "first", At: got.Votes[0].At},
		{Approver: bob.ID, Approve: true, Comment: "second", At: got.Votes[1].At},
	}, got.Votes); diff != "" {
		t.Errorf("votes (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{
		"approval_requested:>pending:payments-agent",
		"approval_vote:pending>pending:alice@example.com",
		"approval_resolved:pending>approved:bob@example.com",
	}, rec.kinds()); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
}

func TestOneDenyVetoes(t *testing.T) {
	tests := []struct {
		name  string
		votes []func(e *Engine, id string) error
	}{
		{"approve then deny by another", []func(*Engine, string) error{
			func(e *Engine, id string) error { _, err := e.Approve(context.Background(), id, alice, ""); return err },
			func(e *Engine, id string) error { _, err := e.Deny(context.Background(), id, bob, "no"); return err },
		}},
		{"approver changes their mind", []func(*Engine, string) error{
			func(e *Engine, id string) error { _, err := e.Approve(context.Background(), id, alice, ""); return err },
			func(e *Engine, id string) error {
				_, err := e.Deny(context.Background(), id, alice, "wait, no")
				return err
			},
		}},
		{"deny first", []func(*Engine, string) error{
			func(e *Engine, id string) error { _, err := e.Deny(context.Background(), id, carol, "no"); return err },
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, _, _ := newTestEngine(t)
			in := transferInput()
			in.Required = 3
			r := mustRequest(t, e, in)
			for i, v := range tt.votes {
				if err := v(e, r.ID); err != nil {
					t.Fatalf("vote %d: %v", i, err)
				}
			}
			got, _ := e.Get(context.Background(), r.ID)
			if got.State != Denied {
				t.Fatalf("state %s, want denied", got.State)
			}
			if _, err := e.Approve(context.Background(), r.ID, carol, ""); !errors.Is(err, ErrFinal) {
				t.Errorf("approve after veto: err = %v, want ErrFinal", err)
			}
		})
	}
}

func TestPendingExpiry(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		e, rec, _ := newTestEngine(t)
		r := mustRequest(t, e, transferInput())
		time.Sleep(DefaultExpiry - time.Nanosecond)
		if got, err := e.Get(ctx, r.ID); err != nil || got.State != Pending {
			t.Fatalf("1ns before expiry: state %s err %v", got.State, err)
		}
		time.Sleep(time.Nanosecond)
		got, err := e.Get(ctx, r.ID)
		if err != nil || got.State != Expired || !got.ResolvedAt.Equal(r.ExpiresAt) {
			t.Fatalf("at expiry: %+v, err %v", got, err)
		}
		_, err = e.Approve(ctx, r.ID, alice, "too late")
		if !errors.Is(err, ErrFinal) || !errors.Is(err, ErrExpired) {
			t.Errorf("approve after expiry: err = %v, want ErrFinal and ErrExpired", err)
		}
		if _, err := e.Redeem(ctx, r.ID, keyFor(t, r)); !errors.Is(err, ErrExpired) {
			t.Errorf("redeem after expiry: err = %v, want ErrExpired", err)
		}
		if diff := cmp.Diff([]string{
			"approval_requested:>pending:payments-agent",
			"approval_resolved:pending>expired:",
		}, rec.kinds()); diff != "" {
			t.Errorf("events (-want +got):\n%s", diff)
		}
		if ttr := rec.got[1].TimeToResolution; ttr != DefaultExpiry {
			t.Errorf("time to resolution %v, want %v", ttr, DefaultExpiry)
		}
	})
}

func TestApproveAtExpiryIsRefused(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		e, rec, _ := newTestEngine(t)
		in := transferInput()
		in.Expiry = time.Hour // per-rule expiry
		r := mustRequest(t, e, in)
		time.Sleep(time.Hour)
		// No Get in between: the vote itself notices the deadline, records the expiry and refuses.
		got, err := e.Approve(ctx, r.ID, alice, "")
		if !errors.Is(err, ErrExpired) || got.State != Expired {
			t.Fatalf("approve at expiry: state %s err %v", got.State, err)
		}
		if n := len(rec.kinds()); n != 2 {
			t.Errorf("%d events, want requested and expired", n)
		}
	})
}

func TestGrantExpiry(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		e, _, _ := newTestEngine(t)
		in := transferInput()
		in.GrantTTL = 5 * time.Minute
		r := mustRequest(t, e, in)
		time.Sleep(14 * time.Minute) // approved just before the request would expire
		if _, err := e.Approve(ctx, r.ID, alice, ""); err != nil {
			t.Fatal(err)
		}
		time.Sleep(5 * time.Minute)
		got, err := e.Redeem(ctx, r.ID, keyFor(t, r))
		if !errors.Is(err, ErrExpired) || got.State != Expired {
			t.Fatalf("redeem after grant ttl: state %s err %v", got.State, err)
		}
		if _, err := e.Redeem(ctx, r.ID, keyFor(t, r)); !errors.Is(err, ErrExpired) {
			t.Errorf("second redeem: err = %v, want ErrExpired", err)
		}
	})
}

func TestExpireDueAndRun(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		e, _, _ := newTestEngine(t)
		short := transferInput()
		short.Expiry = time.Minute
		a := mustRequest(t, e, short)
		b := mustRequest(t, e, short)
		long := transferInput()
		long.Expiry = time.Hour
		c := mustRequest(t, e, long)
		granted := mustRequest(t, e, long)
		if _, err := e.Approve(ctx, granted.ID, alice, ""); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Minute)
		n, err := e.ExpireDue(ctx)
		if err != nil || n != 2 {
			t.Fatalf("ExpireDue = %d, %v; want 2", n, err)
		}
		states := func() []State {
			var out []State
			for _, id := range []string{a.ID, b.ID, c.ID, granted.ID} {
				r, _ := e.store.Get(ctx, id) // the store's view, without lazy expiry
				out = append(out, r.State)
			}
			return out
		}
		if diff := cmp.Diff([]State{Expired, Expired, Pending, Approved}, states()); diff != "" {
			t.Errorf("states (-want +got):\n%s", diff)
		}
		// The background sweeper expires the rest when their time comes.
		runCtx, stop := context.WithCancel(ctx)
		done := make(chan error)
		go func() { done <- e.Run(runCtx, 10*time.Second, func(err error) { t.Errorf("sweep: %v", err) }) }()
		time.Sleep(time.Hour)
		synctest.Wait()
		if diff := cmp.Diff([]State{Expired, Expired, Expired, Expired}, states()); diff != "" {
			t.Errorf("states after sweeping (-want +got):\n%s", diff)
		}
		stop()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("Run = %v", err)
		}
	})
}

func TestWait(t *testing.T) {
	t.Run("returns on approval", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			ctx := context.Background()
			e, _, _ := newTestEngine(t)
			r := mustRequest(t, e, transferInput())
			go func() {
				time.Sleep(2 * time.Minute)
				if _, err := e.Approve(ctx, r.ID, alice, ""); err != nil {
					t.Errorf("Approve: %v", err)
				}
			}()
			start := time.Now()
			got, err := e.Wait(ctx, r.ID)
			if err != nil || got.State != Approved {
				t.Fatalf("Wait: state %s err %v", got.State, err)
			}
			if waited := time.Since(start); waited != 2*time.Minute {
				t.Errorf("waited %v, want 2m", waited)
			}
		})
	})
	t.Run("bounded by the caller's timeout", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			e, _, _ := newTestEngine(t)
			r := mustRequest(t, e, transferInput())
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			got, err := e.Wait(ctx, r.ID)
			if !errors.Is(err, context.DeadlineExceeded) || got.State != Pending || got.ID != r.ID {
				t.Fatalf("Wait: state %s err %v", got.State, err)
			}
			if n := e.notify.(*Hub).subscribers(r.ID); n != 0 {
				t.Errorf("%d subscriptions left behind", n)
			}
		})
	})
	t.Run("returns at expiry", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			e, rec, _ := newTestEngine(t)
			in := transferInput()
			in.Expiry = 10 * time.Minute
			r := mustRequest(t, e, in)
			got, err := e.Wait(context.Background(), r.ID)
			if err != nil || got.State != Expired || !time.Now().Equal(r.ExpiresAt) {
				t.Fatalf("Wait: state %s at %v err %v", got.State, time.Now(), err)
			}
			if n := len(rec.kinds()); n != 2 {
				t.Errorf("%d events, want requested and expired", n)
			}
		})
	})
	t.Run("already resolved", func(t *testing.T) {
		e, _, _ := newTestEngine(t)
		r := mustRequest(t, e, transferInput())
		if _, err := e.Deny(context.Background(), r.ID, alice, ""); err != nil {
			t.Fatal(err)
		}
		got, err := e.Wait(context.Background(), r.ID)
		if err != nil || got.State != Denied {
			t.Fatalf("Wait: state %s err %v", got.State, err)
		}
	})
	t.Run("unknown id", func(t *testing.T) {
		e, _, _ := newTestEngine(t)
		if _, err := e.Wait(context.Background(), "apr_missing"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("Wait: err = %v, want ErrNotFound", err)
		}
	})
	t.Run("many waiters all wake", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			ctx := context.Background()
			e, _, _ := newTestEngine(t)
			in := transferInput()
			in.Required = 2
			r := mustRequest(t, e, in)
			var wg sync.WaitGroup
			for range 20 {
				wg.Go(func() {
					got, err := e.Wait(ctx, r.ID)
					if err != nil || got.State != Approved {
						t.Errorf("waiter: state %s err %v", got.State, err)
					}
				})
			}
			synctest.Wait()
			// The first vote notifies but leaves the request pending: waiters keep waiting.
			if _, err := e.Approve(ctx, r.ID, alice, ""); err != nil {
				t.Fatal(err)
			}
			synctest.Wait()
			if _, err := e.Approve(ctx, r.ID, bob, ""); err != nil {
				t.Fatal(err)
			}
			wg.Wait()
		})
	})
}

func TestConcurrentApproveAndDeny(t *testing.T) {
	ctx := context.Background()
	for round := range 20 {
		e, rec, _ := newTestEngine(t)
		r := mustRequest(t, e, transferInput())
		const each = 25
		var wg sync.WaitGroup
		var mu sync.Mutex
		var wins []string
		losers := 0
		start := make(chan struct{})
		for i := range 2 * each {
			approve := i%2 == 0
			a := Approver{ID: fmt.Sprintf("approver-%d", i), Kind: Human, Scopes: everything}
			wg.Go(func() {
				<-start
				var err error
				if approve {
					_, err = e.Approve(ctx, r.ID, a, "")
				} else {
					_, err = e.Deny(ctx, r.ID, a, "")
				}
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil:
					wins = append(wins, a.ID)
				case errors.Is(err, ErrFinal):
					losers++
				default:
					t.Errorf("unexpected error: %v", err)
				}
			})
		}
		close(start)
		wg.Wait()
		if len(wins) != 1 || losers != 2*each-1 {
			t.Fatalf("round %d: %d winners %v, %d losers", round, len(wins), wins, losers)
		}
		got, _ := e.Get(ctx, r.ID)
		if got.ResolvedBy != wins[0] || len(got.Votes) != 1 {
			t.Errorf("round %d: resolved by %q with %d votes; winner %q", round, got.ResolvedBy, len(got.Votes), wins[0])
		}
		kinds := rec.kinds()
		if len(kinds) != 2 || kinds[1] != fmt.Sprintf("approval_resolved:pending>%s:%s", got.State, wins[0]) {
			t.Errorf("round %d: events %v", round, kinds)
		}
	}
}

func TestConcurrentRedeem(t *testing.T) {
	ctx := context.Background()
	e, rec, _ := newTestEngine(t)
	r := mustRequest(t, e, transferInput())
	if _, err := e.Approve(ctx, r.ID, alice, ""); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	ran, refused := 0, 0
	for range 64 {
		wg.Go(func() {
			_, err := e.Redeem(ctx, r.ID, keyFor(t, r))
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				ran++
			case errors.Is(err, ErrConsumed):
				refused++
			default:
				t.Errorf("unexpected error: %v", err)
			}
		})
	}
	wg.Wait()
	if ran != 1 || refused != 63 {
		t.Fatalf("%d redemptions succeeded, %d refused; want 1 and 63", ran, refused)
	}
	if n := len(rec.kinds()); n != 3 {
		t.Errorf("%d events, want 3", n)
	}
}

// TestRecordFailureIsNotAcknowledged: when the ledger cannot take the event, the change does
// not happen and the caller gets ErrRecord; once the ledger is back the same change works.
func TestRecordFailureIsNotAcknowledged(t *testing.T) {
	ctx := context.Background()
	e, rec, st := newTestEngine(t)
	disk := errors.New("disk full")

	rec.setFail(disk)
	if _, err := e.Request(ctx, transferInput()); !errors.Is(err, ErrRecord) || !errors.Is(err, disk) {
		t.Fatalf("Request: err = %v, want ErrRecord wrapping the cause", err)
	}
	if all, _ := st.List(ctx, Filter{}); len(all) != 0 {
		t.Fatalf("unrecorded request was stored: %v", all)
	}

	rec.setFail(nil)
	r := mustRequest(t, e, transferInput())
	rec.setFail(disk)
	if _, err := e.Approve(ctx, r.ID, alice, ""); !errors.Is(err, ErrRecord) {
		t.Fatalf("Approve: err = %v, want ErrRecord", err)
	}
	if got, _ := st.Get(ctx, r.ID); got.State != Pending || len(got.Votes) != 0 || got.Revision != 0 {
		t.Fatalf("unrecorded approval changed the request: %+v", got)
	}

	rec.setFail(nil)
	if _, err := e.Approve(ctx, r.ID, alice, ""); err != nil {
		t.Fatal(err)
	}
	rec.setFail(disk)
	if _, err := e.Redeem(ctx, r.ID, keyFor(t, r)); !errors.Is(err, ErrRecord) {
		t.Fatalf("Redeem: err = %v, want ErrRecord", err)
	}
	if got, _ := st.Get(ctx, r.ID); got.State != Approved {
		t.Fatalf("unrecorded redemption consumed the grant: %s", got.State)
	}
	rec.setFail(nil)
	if _, err := e.Redeem(ctx, r.ID, keyFor(t, r)); err != nil {
		t.Fatalf("Redeem once the ledger is back: %v", err)
	}
}

func TestExpiryRecordFailureKeepsRequestUnusable(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		e, rec, _ := newTestEngine(t)
		r := mustRequest(t, e, transferInput())
		time.Sleep(DefaultExpiry)
		rec.setFail(errors.New("ledger down"))
		if _, err := e.Get(ctx, r.ID); !errors.Is(err, ErrRecord) {
			t.Errorf("Get: err = %v, want ErrRecord", err)
		}
		if _, err := e.Approve(ctx, r.ID, alice, ""); !errors.Is(err, ErrRecord) {
			t.Errorf("Approve of an overdue request while the ledger is down: err = %v, want ErrRecord", err)
		}
		rec.setFail(nil)
		if got, err := e.Get(ctx, r.ID); err != nil || got.State != Expired {
			t.Errorf("Get once the ledger is back: state %s err %v", got.State, err)
		}
	})
}

func TestCode(t *testing.T) {
	tests := []struct {
		err  error
		want string
	}{
		{nil, ""},
		{fmt.Errorf("x: %w", ErrSelfApproval), "self_approval"},
		{&MismatchError{Field: "tool"}, "mismatch"},
		{finalError(Denied), "already_resolved"},
		{fmt.Errorf("redeem: %w", ErrConsumed), "consumed"},
		{fmt.Errorf("request: %w", ErrCanonical), "invalid"},
		{errors.New("boom"), "internal"},
	}
	for _, tt := range tests {
		if got := Code(tt.err); got != tt.want {
			t.Errorf("Code(%v) = %q, want %q", tt.err, got, tt.want)
		}
	}
}

func TestNewID(t *testing.T) {
	seen := map[string]bool{}
	for range 1000 {
		id, err := NewID()
		if err != nil {
			t.Fatal(err)
		}
		if len(id) != 30 || id[:4] != "apr_" || seen[id] {
			t.Fatalf("bad or repeated id %q", id)
		}
		seen[id] = true
	}
}

func TestCommentBounds(t *testing.T) {
	e, _, _ := newTestEngine(t)
	r := mustRequest(t, e, transferInput())
	for name, c := range map[string]string{
		"too long":     strings.Repeat("x", MaxComment+1),
		"invalid utf8": "ok\xff",
	} {
		if _, err := e.Approve(context.Background(), r.ID, alice, c); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s comment: err = %v, want ErrInvalid", name, err)
		}
	}
	if _, err := e.Approve(context.Background(), r.ID, alice, strings.Repeat("x", MaxComment)); err != nil {
		t.Errorf("comment at the limit: %v", err)
	}
}
