package policy

import (
	"encoding/json"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestPropertyDecideAgreesWithExplain: on random policies (some rules dry runs) and requests,
// Decide — the gateway's path — gives Explain's decision, reason and would-have decision, and the
// conditions it quotes for the record are Explain's for the rules the record names.
func TestPropertyDecideAgreesWithExplain(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	shadowed, defaults := 0, 0
	for range 150 {
		src := randomPolicy(r)
		// Make some rules dry runs.
		src = strings.ReplaceAll(src, "    action: ", "    dry_run: DRY\n    action: ")
		for strings.Contains(src, "DRY") {
			src = strings.Replace(src, "DRY", []string{"true", "false"}[r.IntN(2)], 1)
		}
		set := mustSet(t, src)
		for range 10 {
			req := randomRequest(r)
			for lvl := range 5 {
				for mask := range 8 {
					q := withThreat(req, lvl, mask)
					v, ex := set.Decide(q), set.Explain(q)
					if diff := cmp.Diff(ex.Decision, v.Decision); diff != "" {
						t.Fatalf("Decide differs from Explain (-explain +decide):\n%s\npolicy:\n%s", diff, src)
					}
					if v.Decision != set.Evaluate(q) {
						t.Fatalf("Decide %+v != Evaluate %+v\npolicy:\n%s", v.Decision, set.Evaluate(q), src)
					}
					if v.Reason != ex.Reason {
						t.Fatalf("reason %q, Explain %q", v.Reason, ex.Reason)
					}
					if v.Shadowed != (ex.WouldHave != nil) || v.Shadowed && v.WouldHave != *ex.WouldHave {
						t.Fatalf("would have %+v (shadowed %v), Explain %+v\npolicy:\n%s", v.WouldHave, v.Shadowed, ex.WouldHave, src)
					}
					if v.Shadowed {
						shadowed++
					}
					// The record's conditions: Explain's, for the deciding and would-have rules, or
					// for every rule considered when the default decided.
					var want []ConditionTrace
					var wantRefs []string
					for _, rt := range ex.Rules {
						if v.Rule != "" && rt.Rule != v.Rule && !(v.Shadowed && rt.Rule == v.WouldHave.Rule) {
							continue
						}
						for _, c := range rt.Conditions {
							want = append(want, c)
							wantRefs = append(wantRefs, rt.Rule+"/"+c.Kind+"@"+c.Pos)
						}
					}
					if v.Rule == "" {
						defaults++
					}
					var got []ConditionTrace
					var refs []string
					v.Conditions(q, func(c RecordedCondition) {
						got = append(got, c.ConditionTrace)
						refs = append(refs, c.Ref)
					})
					if diff := cmp.Diff(want, got); diff != "" {
						t.Fatalf("recorded conditions differ from Explain's (-explain +decide):\n%s\npolicy:\n%s", diff, src)
					}
					if !slices.Equal(wantRefs, refs) {
						t.Fatalf("refs %q, want %q", refs, wantRefs)
					}
				}
			}
		}
	}
	if shadowed == 0 || defaults == 0 {
		t.Fatalf("the generator produced %d shadowed and %d default decisions: both must be exercised", shadowed, defaults)
	}
}

// TestDecideDoesNotAllocate: the gateway's decision path allocates nothing on the seed policy.
func TestDecideDoesNotAllocate(t *testing.T) {
	set := seedSet(t)
	req := &Request{Agent: Agent{ID: "report-generator-v1"}, Tool: "fetch_sales_data",
		Params: map[string]any{"query_type": "monthly", "date_range_days": 30.0}, Time: time.Date(2026, 3, 10, 14, 0, 0, 0, time.UTC)}
	if v := set.Decide(req); v.Action != Allow || v.Rule != "read_sales_data" {
		t.Fatalf("decision %+v", v.Decision)
	}
	if n := testing.AllocsPerRun(200, func() { set.Decide(req) }); n != 0 {
		t.Fatalf("Decide allocates %v times per call", n)
	}
	// The record's conditions: one string per condition, nothing else.
	n := testing.AllocsPerRun(200, func() { v := set.Decide(req); v.Conditions(req, func(RecordedCondition) {}) })
	if n > 3 {
		t.Fatalf("Decide and the record's three conditions allocate %v times", n)
	}
}

// TestWindowsCompiled: the call-count windows the rules covering a tool read are compiled once,
// distinct and ascending, from both call-count forms; other tools' windows are not counted.
func TestWindowsCompiled(t *testing.T) {
	set := mustSet(t, `agent_id: a
rules:
  - name: burst
    tool: ".*"
    action: CONSTRAIN
    conditions:
      - time_context:
          unusual_hour: true
          or_call_count_exceeds: {window_minutes: 1, threshold: 100}
          call_count_exceeds: {window_minutes: 1, threshold: 10}
  - name: slow
    tool: send
    action: DENY
    conditions:
      - time_context:
          call_count_exceeds: {window_minutes: 60, threshold: 500}
  - name: weekly
    tool: "archive_.*"
    action: DENY
    conditions:
      - time_context:
          or_call_count_exceeds: {window_minutes: 10080, threshold: 5}
`)
	for tool, want := range map[string][]time.Duration{
		"send":        {time.Minute, time.Hour},
		"read":        {time.Minute},
		"archive_old": {time.Minute, 7 * 24 * time.Hour},
	} {
		if got := set.Windows("a", tool); !slices.Equal(got, want) {
			t.Errorf("Windows(a, %s) = %v, want %v", tool, got, want)
		}
	}
	if got := set.Windows("nobody", "send"); got != nil {
		t.Errorf("Windows(nobody) = %v", got)
	}
}

// TestDecideRecoversToDeny: a panic inside evaluation denies, and the record then quotes nothing.
func TestDecideRecoversToDeny(t *testing.T) {
	req := &Request{Agent: Agent{ID: "report-generator-v1"}, Tool: "fetch_sales_data",
		Params: map[string]any{"query_type": "monthly"}, History: panicHistory{}, Time: time.Date(2026, 3, 10, 14, 0, 0, 0, time.UTC)}
	set := mustSet(t, "agent_id: report-generator-v1\ndefault_action: ALLOW\nrules:\n  - name: r\n    tool: fetch_sales_data\n    action: DENY\n    conditions:\n      - time_context:\n          call_count_exceeds: {window_minutes: 1, threshold: 1}\n")
	v := set.Decide(req)
	if v.Action != Deny || v.Reason != "internal_error" {
		t.Fatalf("Decide after a panic = %+v, %q", v.Decision, v.Reason)
	}
	v.Conditions(req, func(RecordedCondition) { t.Fatal("a verdict that panicked quotes conditions") })
}

type panicHistory struct{}

func (panicHistory) CallCount(string, time.Duration, time.Time) int { panic("history broke") }
func (panicHistory) UnusualHour(time.Time) (bool, bool)             { return false, false }

// TestAppendShortMatchesShort: the record's fast quoting of parameter values writes exactly what
// encoding/json (short) writes.
func TestAppendShortMatchesShort(t *testing.T) {
	values := []any{nil, true, false, 0, -7, int64(1) << 62, 0.0, 30.0, -1.5, 1e-7, 1e21, 123456789.125, 1e20,
		json.Number("30"), json.Number("-0.5e+10"), json.Number("01"), json.Number("-01"), json.Number("1."), json.Number("x"), json.Number(""),
		json.Number("-0"), json.Number("0.5"), json.Number("1E5"), json.Number(strings.Repeat("9", 90)),
		"monthly", "", "a<b", "q\"", `back\slash`, "tab\t", "ünï", strings.Repeat("x", 78), strings.Repeat("x", 79), strings.Repeat("x", 200),
		[]any{"a", 1.0}, map[string]any{"k": "v"}}
	for _, v := range values {
		if got, want := string(appendShort(nil, v)), short(v); got != want {
			t.Errorf("appendShort(%#v) = %s, short = %s", v, got, want)
		}
	}
}
