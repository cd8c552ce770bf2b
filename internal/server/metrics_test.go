package server

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-ai/portcullis/internal/guard"
	"github.com/portcullis-ai/portcullis/internal/identity"
	"github.com/portcullis-ai/portcullis/internal/policy"
)

// A decision is counted in its agent's, tool's and decision's series, timed in its decision's
// and its steps' histograms, whether its series were resolved before (cached) or not; agent and
// tool values past the bound are counted as "other".
func TestObserveDecisionSeries(t *testing.T) {
	m := NewMetrics(nil)
	d := &guard.Decision{Agent: &identity.Agent{ID: "a1"}, Tool: "read_file", Action: policy.Allow,
		Steps: guard.Steps{Auth: time.Microsecond, Inspect: 2 * time.Microsecond, Ledger: time.Millisecond}}
	for range 3 {
		m.observeDecision(d, time.Millisecond)
	}
	deny := *d
	deny.Action = policy.Deny
	m.observeDecision(&deny, time.Millisecond)
	if got := gathered(t, m, "portcullis_decisions_total", "a1", "ALLOW", "read_file"); got != 3 {
		t.Errorf("ALLOW counted %v times, want 3", got)
	}
	if got := gathered(t, m, "portcullis_decisions_total", "a1", "DENY", "read_file"); got != 1 {
		t.Errorf("DENY counted %v times, want 1", got)
	}
	if got := len(series(t, m, "portcullis_pipeline_step_duration_seconds")); got != 3 {
		t.Errorf("%d step series, want 3 (auth, inspect, ledger: the steps that ran)", got)
	}
	if got := len(series(t, m, "portcullis_decision_duration_seconds")); got != 2 {
		t.Errorf("%d latency series, want 2", got)
	}
	for i := range maxLabelValues + 5 {
		m.observeDecision(&guard.Decision{Agent: &identity.Agent{ID: "a1"}, Tool: fmt.Sprintf("t%d", i), Action: policy.Allow}, 0)
	}
	if got := gathered(t, m, "portcullis_decisions_total", "a1", "ALLOW", "other"); got < 5 {
		t.Errorf("tools past the bound counted %v times as other, want at least 5", got)
	}
	if got := len(series(t, m, "portcullis_decisions_total")); got > maxLabelValues+3 {
		t.Errorf("%d decision series: the label bound did not hold", got)
	}
}

// series are the label values of a metric's series (in the order of the labels' names), joined by
// commas, and each one's value (a counter's count, a histogram's sample count).
func series(t *testing.T, m *Metrics, name string) map[string]float64 {
	t.Helper()
	mfs, err := m.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, s := range mf.GetMetric() {
			var vals []string
			for _, l := range s.GetLabel() {
				vals = append(vals, l.GetValue())
			}
			v := s.GetCounter().GetValue()
			if h := s.GetHistogram(); h != nil {
				v = float64(h.GetSampleCount())
			}
			out[strings.Join(vals, ",")] = v
		}
	}
	return out
}

func gathered(t *testing.T, m *Metrics, name string, labels ...string) float64 {
	t.Helper()
	return series(t, m, name)[strings.Join(labels, ",")]
}

// writeJSON writes what json.NewEncoder(w).Encode writes: HTML characters escaped, map keys
// sorted, a newline after the value.
func TestWriteJSONMatchesStdlib(t *testing.T) {
	for _, v := range []any{
		decideResponse{Decision: "DENY", DecisionID: "dec_<&>", Message: "a\u2028b \"q\" \xff", Error: &errorBody{Code: "x", Message: "<script>"}},
		batchResponse{Results: []batchResult{{Status: 200, decideResponse: decideResponse{Decision: "ALLOW", OutcomeToken: "t"}}, {Status: 413}}},
		map[string]string{"status": "ok", "b": "&", "a": ""},
	} {
		w := httptest.NewRecorder()
		writeJSON(w, 201, v)
		var want bytes.Buffer
		if err := json.NewEncoder(&want).Encode(v); err != nil {
			t.Fatal(err)
		}
		if w.Code != 201 || w.Body.String() != want.String() {
			t.Errorf("writeJSON wrote %d %q, encoding/json writes %q", w.Code, w.Body, want.String())
		}
		if ct := w.Header().Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
			t.Errorf("content type %q", ct)
		}
	}
}

// BenchmarkObserveDecision is what the metrics cost one decision: the decision counted, its
// latency and five steps timed.
//
//	go test ./internal/server -run '^$' -bench ObserveDecision -benchmem -count 5
func BenchmarkObserveDecision(b *testing.B) {
	m := NewMetrics(nil)
	d := &guard.Decision{Agent: &identity.Agent{ID: "agent-1"}, Tool: "fetch_customer_names", Action: policy.Allow,
		Steps: guard.Steps{Auth: time.Microsecond, Inspect: time.Microsecond, Behavior: time.Microsecond, Policy: time.Microsecond, Ledger: time.Microsecond}}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			m.observeDecision(d, time.Millisecond)
		}
	})
}

// BenchmarkWriteJSON is one decision's answer written.
func BenchmarkWriteJSON(b *testing.B) {
	resp := decideResponse{Decision: "ALLOW", DecisionID: "dec_01JEXAMPLE0000000000000000", OutcomeToken: strings.Repeat("t", 120)}
	w := httptest.NewRecorder()
	b.ReportAllocs()
	for b.Loop() {
		w.Body.Reset()
		writeJSON(w, 200, resp)
	}
}
