package alert

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/portcullis-ai/portcullis/internal/export"
	"github.com/portcullis-ai/portcullis/internal/ledger"
)

var t0 = time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)

func decision(at time.Time, agent, tool, decision string) *ledger.Record {
	return &ledger.Record{Time: at, Kind: ledger.KindDecision, Agent: &ledger.Principal{ID: agent}, Tool: tool, Decision: decision}
}

// feed observes records in order and returns every alert raised.
func feed(e *Engine, recs ...*ledger.Record) []Alert {
	var out []Alert
	for i, r := range recs {
		out = append(out, e.Observe(uint64(i), r)...)
	}
	return out
}

func rules(as []Alert) []string {
	var out []string
	for _, a := range as {
		out = append(out, fmt.Sprintf("%s/%s/%s×%d", a.Rule, a.Agent, a.Tool, a.Count))
	}
	return out
}

// steady is an hour of an agent's ordinary traffic: a call a minute, a denial every 10 minutes.
func steady(agent string, from time.Time) []*ledger.Record {
	var recs []*ledger.Record
	for i := range 60 {
		d := "allow"
		if i%10 == 0 {
			d = "deny"
		}
		recs = append(recs, decision(from.Add(time.Duration(i)*time.Minute), agent, "read_file", d))
	}
	return recs
}

func TestBenignTrafficRaisesNothing(t *testing.T) {
	e := New(Config{})
	recs := steady("a1", t0)
	recs = append(recs, steady("a1", t0.Add(time.Hour))...)
	recs = append(recs, steady("a2", t0.Add(2*time.Hour))...)
	if got := feed(e, recs...); len(got) != 0 {
		t.Fatalf("benign traffic raised %v", rules(got))
	}
}

func TestDenialSpike(t *testing.T) {
	e := New(Config{})
	recs := steady("a1", t0)
	// Then 30 denials within a minute.
	for i := range 30 {
		recs = append(recs, decision(t0.Add(time.Hour+time.Duration(i)*time.Second), "a1", "read_file", "deny"))
	}
	got := feed(e, recs...)
	if len(got) != 1 || got[0].Rule != RuleDenialSpike || got[0].Agent != "a1" {
		t.Fatalf("alerts %v, want one denial_spike for a1", rules(got))
	}
	if !strings.Contains(got[0].Message, "10 denials") {
		t.Errorf("message %q: want the count at the floor that raised it", got[0].Message)
	}
	r := got[0].Record()
	if r.Kind != ledger.KindAlert || r.Alert.Rule != "denial_spike" || r.Agent.ID != "a1" || r.Alert.Seq != 69 {
		t.Errorf("record %+v %+v", r, r.Alert)
	}
}

func TestDenialsUnderTheFloorAreNoSpike(t *testing.T) {
	e := New(Config{})
	var recs []*ledger.Record
	for i := range 9 { // an agent with no history denied 9 times: over any factor, under the floor
		recs = append(recs, decision(t0.Add(time.Duration(i)*time.Second), "a1", "x", "deny"))
	}
	if got := feed(e, recs...); len(got) != 0 {
		t.Fatalf("alerts %v", rules(got))
	}
}

func TestFindingSpike(t *testing.T) {
	e := New(Config{SpikeFloor: 5})
	var recs []*ledger.Record
	for i := range 5 {
		r := decision(t0.Add(time.Duration(i)*time.Second), "a1", "x", "allow")
		// A behaviour anomaly is no threat finding: only the injection counts.
		r.Findings = []ledger.Finding{{Kind: "prompt_injection"}, {Kind: "anomaly.burst"}}
		recs = append(recs, r)
	}
	got := feed(e, recs...)
	if len(got) != 1 || got[0].Rule != RuleFindingSpike {
		t.Fatalf("alerts %v, want one finding_spike", rules(got))
	}
}

func TestNewTool(t *testing.T) {
	e := New(Config{NewToolAfter: 5})
	var recs []*ledger.Record
	for i := range 5 { // warm-up: the first tools are all new
		recs = append(recs, decision(t0.Add(time.Duration(i)*time.Minute), "a1", fmt.Sprint("t", i%2), "allow"))
	}
	recs = append(recs, decision(t0.Add(10*time.Minute), "a1", "t1", "allow"), decision(t0.Add(11*time.Minute), "a1", "delete_all", "allow"))
	got := feed(e, recs...)
	if len(got) != 1 || got[0].Rule != RuleNewTool || got[0].Tool != "delete_all" {
		t.Fatalf("alerts %v, want new_tool delete_all", rules(got))
	}
}

func TestUnusualHourFromAnomalies(t *testing.T) {
	e := New(Config{})
	r := decision(t0, "a1", "x", "allow")
	r.Anomalies = []ledger.Anomaly{{Signal: "anomaly.unusual_hour", Score: 0.9}}
	got := feed(e, decision(t0, "a1", "x", "allow"), r)
	if len(got) != 1 || got[0].Rule != RuleUnusualHour {
		t.Fatalf("alerts %v", rules(got))
	}
}

func TestErrorRate(t *testing.T) {
	e := New(Config{})
	var recs []*ledger.Record
	for i := range 40 {
		recs = append(recs, &ledger.Record{Time: t0.Add(time.Duration(i) * time.Second), Kind: ledger.KindToolResult,
			Agent: &ledger.Principal{ID: "a1"}, Outcome: &ledger.Outcome{Ran: true, Success: i%4 != 0}})
	}
	if got := feed(e, recs...); len(got) != 0 {
		t.Fatalf("a 25%% error rate raised %v", rules(got))
	}
	recs = recs[:0]
	for i := range 12 {
		recs = append(recs, &ledger.Record{Time: t0.Add(time.Minute + time.Duration(i)*time.Second), Kind: ledger.KindToolResult,
			Agent: &ledger.Principal{ID: "a1"}, Outcome: &ledger.Outcome{Ran: true, Success: false, Error: "boom"}})
	}
	// In the window: 40 + 12 results, 10 + 12 failed: 22 ≥ 0.5 × 52 is false; 0.5 × 52 = 26.
	if got := feed(e, recs...); len(got) != 0 {
		t.Fatalf("alerts %v", rules(got))
	}
	recs = recs[:0]
	for i := range 10 {
		recs = append(recs, &ledger.Record{Time: t0.Add(2*time.Minute + time.Duration(i)*time.Second), Kind: ledger.KindToolResult,
			Agent: &ledger.Principal{ID: "a1"}, Outcome: &ledger.Outcome{Ran: true, Success: false}})
	}
	got := feed(e, recs...)
	if len(got) != 1 || got[0].Rule != RuleErrorRate {
		t.Fatalf("alerts %v, want one error_rate", rules(got))
	}
}

func approvalRec(at time.Time, kind ledger.Kind, id, result string) *ledger.Record {
	return &ledger.Record{Time: at, Kind: kind, Approval: &ledger.Approval{ID: id, Result: result}}
}

func TestApprovalBacklogCount(t *testing.T) {
	e := New(Config{BacklogPending: 3})
	got := feed(e,
		approvalRec(t0, ledger.KindApprovalRequested, "r1", "pending"),
		approvalRec(t0, ledger.KindApprovalRequested, "r2", "pending"),
		approvalRec(t0, ledger.KindApprovalResolved, "r1", "approved"),
		approvalRec(t0, ledger.KindApprovalRequested, "r3", "pending"))
	if len(got) != 0 {
		t.Fatalf("2 pending raised %v", rules(got))
	}
	got = feed(e, approvalRec(t0, ledger.KindApprovalRequested, "r4", "pending"))
	if len(got) != 1 || got[0].Rule != RuleApprovalBacklog {
		t.Fatalf("alerts %v", rules(got))
	}
}

// The approval backlog's age and the open alerts' cooldown are time alone: a synctest bubble
// runs the runner's ticker on the fake clock.
func TestApprovalAgeingAndCooldown(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var c collector
		got := c.got
		r := NewRunner(New(Config{BacklogAge: 30 * time.Minute, Cooldown: 10 * time.Minute}), c.deliver)
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		go r.Run(ctx, RunOptions{Tick: time.Minute})
		start := time.Now()
		if err := r.Send(ctx, []export.Item{{Seq: 7, Record: approvalRec(start, ledger.KindApprovalRequested, "r1", "pending")}}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(29*time.Minute + 30*time.Second) // between two ticks
		synctest.Wait()
		if len(got()) != 0 {
			t.Fatalf("after 29m: %v", rules(got()))
		}
		time.Sleep(2 * time.Minute)
		synctest.Wait()
		if len(got()) != 1 || got()[0].Rule != RuleApprovalBacklog || !strings.Contains(got()[0].Message, "r1") {
			t.Fatalf("after 31m: %v", rules(got()))
		}
		// Still pending: the alert stays open, no repeat however long it lasts.
		time.Sleep(time.Hour)
		synctest.Wait()
		if len(got()) != 1 {
			t.Fatalf("repeated while open: %v", rules(got()))
		}
		// Resolved: the alert clears after the cooldown; a new ageing request raises again.
		if err := r.Send(ctx, []export.Item{{Seq: 8, Record: approvalRec(time.Now(), ledger.KindApprovalResolved, "r1", "denied")},
			{Seq: 9, Record: approvalRec(time.Now(), ledger.KindApprovalRequested, "r2", "pending")}}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(31 * time.Minute)
		synctest.Wait()
		if len(got()) != 2 || !strings.Contains(got()[1].Message, "r2") {
			t.Fatalf("after the cooldown: %v", rules(got()))
		}
	})
}

func TestDedupeOnePerAgentUntilCooldown(t *testing.T) {
	e := New(Config{SpikeFloor: 2, Cooldown: 10 * time.Minute})
	var recs []*ledger.Record
	for i := range 50 { // a denial every 10 s for 500 s: one spike alert, repeats swallowed
		recs = append(recs, decision(t0.Add(time.Duration(i)*10*time.Second), "a1", "x", "deny"))
	}
	if got := feed(e, recs...); len(got) != 1 {
		t.Fatalf("alerts %v, want one", rules(got))
	}
	// Another agent has its own alert.
	if got := feed(e, decision(t0.Add(500*time.Second), "a2", "x", "deny"), decision(t0.Add(501*time.Second), "a2", "x", "deny")); len(got) != 1 || got[0].Agent != "a2" {
		t.Fatalf("alerts %v, want one for a2", rules(got))
	}
	// Quiet past the cooldown, then a burst: raised again.
	later := t0.Add(3 * time.Hour) // past the cooldown and out of the baseline the flood made
	if got := feed(e, decision(later, "a1", "x", "deny"), decision(later.Add(time.Second), "a1", "x", "deny")); len(got) != 1 {
		t.Fatalf("after the cooldown: %v", rules(got))
	}
}

func TestRateLimitFoldsAFlood(t *testing.T) {
	e := New(Config{NewToolAfter: 1, MaxPerWindow: 3})
	recs := []*ledger.Record{decision(t0, "a1", "first", "allow")}
	for i := range 100 { // a hundred new tools in a minute: a hundred distinct alerts
		recs = append(recs, decision(t0.Add(time.Duration(i)*100*time.Millisecond), "a1", fmt.Sprint("tool", i), "allow"))
	}
	got := feed(e, recs...)
	if len(got) != 3 {
		t.Fatalf("%d alerts raised in one window, want 3", len(got))
	}
	got = e.Tick(t0.Add(5 * time.Minute))
	if len(got) != 1 || got[0].Rule != RuleFlood || got[0].Count != 97 {
		t.Fatalf("next window: %v, want one alert_flood×97", rules(got))
	}
	if got := e.Tick(t0.Add(10 * time.Minute)); len(got) != 0 {
		t.Fatalf("flood raised twice: %v", rules(got))
	}
}

func TestKeyRotationAndVerification(t *testing.T) {
	e := New(Config{})
	got := feed(e, &ledger.Record{Time: t0, Kind: ledger.KindKeyRotation, KeyRotation: &ledger.KeyRotation{NewKey: "k2"}})
	if len(got) != 1 || got[0].Rule != RuleKeyRotation || !strings.Contains(got[0].Message, "k2") {
		t.Fatalf("alerts %v", rules(got))
	}
	got = e.Verification(t0, errors.New("record 12: hash mismatch"))
	if len(got) != 1 || got[0].Severity != SeverityCritical || !strings.Contains(got[0].Message, "hash mismatch") {
		t.Fatalf("alerts %v", rules(got))
	}
}

func TestDisabledRuleAndAlertRecordsIgnored(t *testing.T) {
	e := New(Config{Disabled: []Rule{RuleKeyRotation}})
	got := feed(e, &ledger.Record{Time: t0, Kind: ledger.KindKeyRotation},
		&ledger.Record{Time: t0, Kind: ledger.KindAlert, Alert: &ledger.Alert{Rule: "denial_spike"}})
	if len(got) != 0 {
		t.Fatalf("alerts %v", rules(got))
	}
}

// A batch the tailer retries after a failed delivery is not counted twice, and the alerts it
// raised are delivered once it succeeds.
func TestRunnerRetriesDeliveryWithoutRecounting(t *testing.T) {
	fail := true
	var got []Alert
	r := NewRunner(New(Config{SpikeFloor: 3}), func(_ context.Context, as []Alert) (int, error) {
		if fail {
			return 0, errors.New("ledger closed")
		}
		got = append(got, as...)
		return len(as), nil
	})
	var items []export.Item
	for i := range 3 {
		items = append(items, export.Item{Seq: uint64(10 + i), Record: decision(t0, "a1", "x", "deny")})
	}
	if err := r.Send(t.Context(), items); err == nil {
		t.Fatal("delivery failure not returned")
	}
	fail = false
	if err := r.Send(t.Context(), items); err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Seq != 12 {
		t.Fatalf("alerts %v", rules(got))
	}
	if err := r.Send(t.Context(), items); err != nil || len(got) != 1 {
		t.Fatalf("replayed batch raised again: %v %v", err, rules(got))
	}
}

// The runner verifies the ledger on its schedule; a failure is one critical alert.
func TestRunnerVerifiesOnSchedule(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var (
			c    collector
			mu   sync.Mutex
			runs int
		)
		r := NewRunner(New(Config{}), c.deliver)
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		go r.Run(ctx, RunOptions{Tick: time.Minute, VerifyEvery: time.Hour, Verify: func(context.Context) error {
			mu.Lock()
			defer mu.Unlock()
			runs++
			if runs == 2 {
				return errors.New("record 41: prev hash mismatch")
			}
			return nil
		}})
		time.Sleep(90 * time.Minute)
		synctest.Wait()
		mu.Lock()
		if runs != 1 || len(c.got()) != 0 {
			t.Fatalf("after 90m: %d verifications, alerts %v", runs, rules(c.got()))
		}
		mu.Unlock()
		time.Sleep(time.Hour)
		synctest.Wait()
		mu.Lock()
		defer mu.Unlock()
		if seen := c.got(); runs != 2 || len(seen) != 1 || seen[0].Rule != RuleVerification || !strings.Contains(seen[0].Message, "prev hash mismatch") {
			t.Fatalf("after 150m: %d verifications, alerts %v", runs, rules(seen))
		}
	})
}

// collector keeps what a runner delivers, for a test goroutine to read while the runner's clock
// goroutine writes.
type collector struct {
	mu   sync.Mutex
	seen []Alert
}

func (c *collector) deliver(_ context.Context, as []Alert) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seen = append(c.seen, as...)
	return len(as), nil
}

func (c *collector) got() []Alert {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.seen)
}

func TestNewParameter(t *testing.T) {
	e := New(Config{NewToolAfter: 3})
	call := func(at time.Duration, params string) *ledger.Record {
		r := decision(t0.Add(at), "a1", "query", "allow")
		r.Params = json.RawMessage(params)
		return r
	}
	got := feed(e, call(0, `{"sql":"[REDACTED]","limit":5}`), call(time.Minute, `{"sql":"x"}`), call(2*time.Minute, `{"limit":1,"sql":"y"}`),
		call(3*time.Minute, `{"sql":"z","limit":2}`))
	if len(got) != 0 {
		t.Fatalf("known parameters raised %v", rules(got))
	}
	got = feed(e, call(4*time.Minute, `{"sql":"z","exfil_url":"https://x"}`))
	if len(got) != 1 || got[0].Rule != RuleNewParameter || !strings.Contains(got[0].Message, "exfil_url") {
		t.Fatalf("alerts %v, want new_parameter naming exfil_url", rules(got))
	}
}

// Callers can claim any number of agent IDs: the engine remembers a bounded number, forgetting
// the least recently seen.
func TestAgentsBounded(t *testing.T) {
	e := New(Config{})
	for i := range maxAgents + 50 {
		e.Observe(uint64(i), decision(t0.Add(time.Duration(i)*time.Millisecond), fmt.Sprint("claimed-", i), "x", "deny"))
	}
	if len(e.agents) != maxAgents {
		t.Fatalf("%d agents remembered, want %d", len(e.agents), maxAgents)
	}
	if e.agents["claimed-0"] != nil || e.agents[fmt.Sprint("claimed-", maxAgents+49)] == nil {
		t.Fatal("not the least recently seen forgotten")
	}
}

// The notification is Slack's "text" and the machine-readable event.
func TestWebhookPayload(t *testing.T) {
	a := Alert{Rule: RuleDenialSpike, Severity: SeverityCritical, Agent: "a1", Message: "agent <!channel>: 40 denials", Count: 3, First: t0, Last: t0.Add(time.Minute)}
	b, err := a.WebhookPayload(42, "https://pc.example/console/alerts")
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Text       string       `json:"text"`
		Portcullis WebhookEvent `json:"portcullis"`
	}
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if got.Text != "Portcullis alert [critical] denial_spike: agent &lt;!channel&gt;: 40 denials (×3) — https://pc.example/console/alerts" {
		t.Errorf("text %q", got.Text)
	}
	if ev := got.Portcullis; ev.Event != "alert" || ev.Seq != 42 || ev.Agent != "a1" || ev.Count != 3 || !ev.Last.Equal(t0.Add(time.Minute)) {
		t.Errorf("event %+v", ev)
	}
}

// paramNames reads a record's top-level parameter names as encoding/json would: the same names
// (escapes decoded, a repeated name once), and none for what is not an object.
func TestParamNamesMatchStdlib(t *testing.T) {
	stdlib := func(raw json.RawMessage) []string {
		var m map[string]any
		if err := json.Unmarshal(raw, &m); err != nil {
			return nil
		}
		return slices.AppendSeq([]string{}, maps.Keys(m))
	}
	for _, in := range []string{``, `{}`, `null`, `[1,2]`, `"x"`, `{"b":1,"a":{"z":[1]},"c":null}`,
		`{"a":1,"a":2}`, `{"\u00e9\n":true,"A":1,"a":2}`, `{"a":1`, `{"a":1}x`, `{"a":"\xff"}`, "{\"\xff\":1}"} {
		got, want := paramNames(json.RawMessage(in)), stdlib(json.RawMessage(in))
		slices.Sort(want)
		if !slices.Equal(got, want) || (got == nil) != (want == nil) {
			t.Errorf("paramNames(%q) = %q, encoding/json reads %q", in, got, want)
		}
	}
}

// BenchmarkParamNames is the new_parameter rule's read of one decision's parameters (1 KiB).
//
//	go test ./internal/alert -run '^$' -bench ParamNames -benchmem -count 5
func BenchmarkParamNames(b *testing.B) {
	raw := json.RawMessage(`{"fields":["name","country","renewal_date"],"limit":250,"notes":"` +
		strings.Repeat("Quarterly review list for the customer success team. ", 17) + `","sort":{"by":"renewal_date"}}`)
	b.ReportAllocs()
	for b.Loop() {
		if len(paramNames(raw)) != 4 {
			b.Fatal("names")
		}
	}
}
