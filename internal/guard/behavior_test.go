package guard

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/portcullis-ai/portcullis/internal/behavior"
	"github.com/portcullis-ai/portcullis/internal/ledger"
	"github.com/portcullis-ai/portcullis/internal/policy"
)

const ratePolicy = `
agent_id: report-generator-v1
rules:
  - name: export
    tool: export_customer_data
    action: ALLOW
  - name: bulk_exports_need_approval
    tool: export_customer_data
    action: CONSTRAIN
    conditions:
      - time_context:
          call_count_exceeds: {window_minutes: 60, threshold: 5}
  - name: many_exports_denied
    tool: export_customer_data
    action: DENY
    conditions:
      - time_context:
          unusual_hour: false
          or_call_count_exceeds: {window_minutes: 1, threshold: 7}
          call_count_exceeds: {window_minutes: 60, threshold: 7}
`

// countingStore is a behaviour store that remembers what the guard asked of it.
type countingStore struct {
	behavior.Store
	mu      sync.Mutex
	counts  int
	queries []behavior.Query
}

func (s *countingStore) Record(ctx context.Context, c behavior.Call, q behavior.Query) (behavior.Snapshot, error) {
	s.mu.Lock()
	s.queries = append(s.queries, behavior.Query{Windows: slices.Clone(q.Windows), BurstWindow: q.BurstWindow})
	s.mu.Unlock()
	return s.Store.Record(ctx, c, q)
}

func (s *countingStore) Count(ctx context.Context, agent, tool string, window time.Duration, now time.Time) (int, error) {
	s.mu.Lock()
	s.counts++
	s.mu.Unlock()
	return s.Store.Count(ctx, agent, tool, window, now)
}

// compiledSet parses and compiles one policy file.
func compiledSet(t *testing.T, src string) *policy.Set {
	t.Helper()
	f, err := policy.Parse("rate.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	set, err := policy.Compile(f)
	if err != nil {
		t.Fatal(err)
	}
	return set
}

func rateHarness(t *testing.T, now func() time.Time) (*harness, *countingStore) {
	t.Helper()
	h := newHarness(t, nil)
	st := &countingStore{Store: behavior.NewMemoryStore(behavior.MemoryOptions{})}
	h.g.policies = staticPolicies{compiledSet(t, ratePolicy)}
	h.g.behavior = Tracked(behavior.NewTracker(st, behavior.DefaultConfig()))
	if now != nil {
		h.g.now = now
	}
	return h, st
}

// A guard with an injected clock (a replayed or simulated time, a test) counts calls on that
// clock: the rate limit fires on the 6th call in the hour, and the 8th is denied.
func TestRateLimitOnInjectedClock(t *testing.T) {
	var mu sync.Mutex
	at := time.Date(2025, 1, 6, 10, 0, 0, 0, time.UTC) // long before the wall clock
	h, _ := rateHarness(t, func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		at = at.Add(time.Second)
		return at
	})
	for i := 1; i <= 8; i++ {
		d := h.g.Check(context.Background(), h.call("export_customer_data", `{"rows":10}`))
		want := policy.Allow
		switch {
		case i == 8:
			want = policy.Deny // more than 7 in the hour
		case i >= 6:
			want = policy.Constrain // the 6th call in 60 minutes exceeds 5
		}
		if d.Action != want {
			t.Fatalf("call %d: %v, want %v (%v)", i, d.Action, want, d.Err)
		}
	}
}

// The windows the policy reads are counted in the one call that records the call: no condition
// costs a store round trip of its own, and every window comes back atomically with the record.
func TestWindowsCountedWithTheRecord(t *testing.T) {
	h, st := rateHarness(t, nil)
	for range 3 {
		if d := h.g.Check(context.Background(), h.call("export_customer_data", `{}`)); d.Action != policy.Allow {
			t.Fatalf("%v (%v)", d.Action, d.Err)
		}
	}
	if st.counts != 0 {
		t.Errorf("%d separate Count round trips; want 0", st.counts)
	}
	want := []time.Duration{time.Minute, time.Hour}
	if len(st.queries) != 3 {
		t.Fatalf("%d records, want 3", len(st.queries))
	}
	for _, q := range st.queries {
		if !slices.Equal(q.Windows, want) {
			t.Errorf("recorded with windows %v, want %v", q.Windows, want)
		}
	}
}

// A window the behaviour step did not count is not read as zero: the decision made on it is void.
func TestUncountedWindowDenies(t *testing.T) {
	h := &trackedHistory{obs: &behavior.Observation{Counts: map[time.Duration]int{time.Hour: 3}}}
	if n := h.CallCount("t", time.Hour, time.Time{}); n != 2 || h.error() != nil {
		t.Fatalf("counted window: %d, %v", n, h.error())
	}
	if h.CallCount("t", time.Minute, time.Time{}); h.error() == nil {
		t.Fatal("an uncounted window was answered without an error")
	}
}

// The record quotes the deciding rule's conditions, not those of every rule considered; a
// decision by the default action quotes every considered rule's, which say why none applied.
func TestRecordQuotesDecidingConditions(t *testing.T) {
	h := newHarness(t, nil)
	d := h.g.Check(context.Background(), h.call("fetch_sales_data", `{"query_type":"monthly"}`))
	if d.Action != policy.Allow {
		t.Fatalf("%v (%v)", d.Action, d.Err)
	}
	rec := h.recordOf(t, d.ID, "decision")
	if rec.Policy == nil || rec.Policy.Rule != "read_sales_data" || len(rec.Policy.Conditions) != 1 ||
		rec.Policy.Conditions[0].Expr != "read_sales_data/parameter@test.yaml:9:9" || !rec.Policy.Conditions[0].Result ||
		rec.Policy.Conditions[0].Detail != `parameter query_type = "monthly"` {
		t.Errorf("allowed call's policy section: %+v", rec.Policy)
	}
	d = h.g.Check(context.Background(), h.call("transfer_funds", `{}`))
	rec = h.recordOf(t, d.ID, "decision")
	if rec.Policy == nil || rec.Policy.NoMatch != "default_action" || len(rec.Policy.Conditions) != 1 ||
		rec.Policy.Conditions[0].Expr != "high_risk_api_call/threat_score@test.yaml:25:9" || rec.Policy.Conditions[0].Result {
		t.Errorf("default denial's policy section: %+v", rec.Policy)
	}
}

// The policy version recorded with decisions and bound into grants is the digest of the files'
// bytes: replicas that mount the same files at different paths agree on it (a strict-version
// grant approved on one runs on the other), and anyone can recompute it with sha256sum.
func TestVersionIsTheFilesDigest(t *testing.T) {
	data := []byte(testPolicy)
	var versions []string
	for _, dir := range []string{t.TempDir(), t.TempDir()} {
		p := filepath.Join(dir, "agents.yaml")
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		set, err := policy.Load(dir)
		if err != nil {
			t.Fatal(err)
		}
		versions = append(versions, Version(set))
	}
	sum := sha256.Sum256(data)
	list := sha256.Sum256([]byte(hex.EncodeToString(sum[:]) + "  agents.yaml\n"))
	want := "sha256:" + hex.EncodeToString(list[:])[:16]
	if versions[0] != want || versions[1] != want {
		t.Errorf("versions %v, want %s for both", versions, want)
	}
}

// A window longer than the store keeps (the language allows a week, the memory store 24 hours)
// cannot be counted, so the calls whose rules read it are denied — and only those: the agent's
// other tools keep working.
func TestUncountableWindowDeniesOnlyItsTools(t *testing.T) {
	h, _ := rateHarness(t, nil)
	h.g.policies = staticPolicies{compiledSet(t, `
agent_id: report-generator-v1
rules:
  - name: tools
    tool: ".*"
    action: ALLOW
  - name: weekly_archive_limit
    tool: "archive_.*"
    action: DENY
    conditions:
      - time_context:
          call_count_exceeds: {window_minutes: 10080, threshold: 50}
`)}
	if d := h.g.Check(context.Background(), h.call("export_customer_data", `{}`)); d.Action != policy.Allow {
		t.Errorf("a tool without the long window: %v %s (%v)", d.Action, d.Code, d.Err)
	}
	if d := h.g.Check(context.Background(), h.call("archive_reports", `{}`)); d.Action != policy.Deny || d.Code != CodeBehavior {
		t.Errorf("a tool whose rule reads an uncountable window: %v %q, want DENY %s", d.Action, d.Code, CodeBehavior)
	}
}

// A decision records what its evaluation read of the behaviour tracker — the earlier calls in
// every window the policy counts, the hour baseline's verdict — and the clock's zone offset, so
// that a replay decides from the record instead of recounting.
func TestDecisionRecordsBehaviourInputs(t *testing.T) {
	at := time.Date(2025, 1, 6, 10, 0, 0, 0, time.FixedZone("CET", 3600))
	h, _ := rateHarness(t, func() time.Time {
		at = at.Add(time.Second)
		return at
	})
	var last *Decision
	for range 3 {
		last = h.g.Check(context.Background(), h.call("export_customer_data", `{"rows":10}`))
	}
	r := h.recordOf(t, last.ID, "decision")
	want := &ledger.Inputs{Calls: map[string]int{"1": 2, "60": 2}, Baseline: ledger.BaselineLearning, ZoneOffset: 3600}
	if d := cmp.Diff(want, r.Inputs); d != "" {
		t.Errorf("inputs (-want +got):\n%s", d)
	}
}
