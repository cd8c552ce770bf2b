package server

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-ai/portcullis/internal/approval"
	"github.com/portcullis-ai/portcullis/internal/guard"
	"github.com/portcullis-ai/portcullis/internal/identity"
	"github.com/portcullis-ai/portcullis/internal/jsonx"
	"github.com/portcullis-ai/portcullis/internal/policy"
)

// blockingDecider holds every Check until release is closed.
type blockingDecider struct {
	entered chan struct{}
	release chan struct{}
}

func (b *blockingDecider) Admit(_ context.Context, req guard.Request) (*identity.Agent, *guard.Decision) {
	id, err := identity.APIKeyID(req.Credentials.APIKey)
	if err != nil {
		return nil, &guard.Decision{ID: "dec_test", Action: policy.Deny, Code: guard.CodeUnauthenticated}
	}
	return &identity.Agent{ID: id}, nil
}

func (b *blockingDecider) Check(ctx context.Context, req guard.Request) *guard.Decision {
	b.entered <- struct{}{}
	<-b.release
	return &guard.Decision{ID: "dec_test", Action: policy.Allow}
}

func (b *blockingDecider) CheckResult(context.Context, guard.Outcome) *guard.ResultDecision {
	return &guard.ResultDecision{Action: guard.ResultPass}
}

func TestPerAgentConcurrencyLimit(t *testing.T) {
	d := &blockingDecider{entered: make(chan struct{}, 4), release: make(chan struct{})}
	s := New(Options{Decider: d, Limits: Limits{MaxBodyBytes: 1 << 20, MaxDepth: 64, MaxParams: 100, MaxConcurrencyPerAgent: 1}})
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	post := func(key string) int {
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/v1/decide", strings.NewReader(`{"tool":"t","params":{}}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Error(err)
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	keyA, _, _ := identity.NewAPIKey("agent-a", "", time.Now(), 0)
	keyB, _, _ := identity.NewAPIKey("agent-b", "", time.Now(), 0)
	entered := func() {
		t.Helper()
		select {
		case <-d.entered:
		case <-time.After(10 * time.Second):
			t.Fatal("the call never reached the decider")
		}
	}
	first := make(chan int)
	go func() { first <- post(keyA) }()
	entered() // agent A's first call holds its only slot
	if got := post(keyA); got != http.StatusTooManyRequests {
		t.Errorf("second concurrent call of the same agent: %d, want 429", got)
	}
	second := make(chan int)
	go func() { second <- post(keyB) }() // another agent is not affected
	entered()
	close(d.release)
	if got := <-first; got != http.StatusOK {
		t.Errorf("first call: %d", got)
	}
	if got := <-second; got != http.StatusOK {
		t.Errorf("other agent: %d", got)
	}
	if got := post(keyA); got != http.StatusOK {
		t.Errorf("after the slot was released: %d", got)
	}
}

func TestMaxDepthAndCount(t *testing.T) {
	tests := []struct {
		in           string
		depth, count int
	}{
		{`{}`, 1, 1},
		{`{"a":[1,2,{"b":"[{]}"}]}`, 3, 6},
		{`"just a string with { and ["`, 0, 1},
		{`{"a":"\"{"}`, 1, 2},
	}
	for _, tc := range tests {
		if d := jsonx.Depth([]byte(tc.in)); d != tc.depth {
			t.Errorf("Depth(%s) = %d, want %d", tc.in, d, tc.depth)
		}
		if c := jsonx.CountValues([]byte(tc.in)); c != tc.count {
			t.Errorf("CountValues(%s) = %d, want %d", tc.in, c, tc.count)
		}
	}
}

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
		// An approval carries a time.Duration, which segmentio's encoder writes as text
		// ("1h0m0s") where encoding/json writes nanoseconds: the CLI could not read it.
		approval.Request{ID: "apr_1", GrantTTL: time.Hour},
		map[string]any{"approvals": []approval.Request{{ID: "apr_2", GrantTTL: time.Minute}}},
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

// The latency and step histograms keep their series apart, whatever label values they share: a
// step's time never lands in the latency histogram of a decision of the same name.
func TestSeriesOfOneValueStayInTheirVectors(t *testing.T) {
	m := NewMetrics(nil)
	m.latencySeries.get("auth").Observe(1)
	m.stepSeries.get("auth").Observe(1)
	m.stepSeries.get("auth").Observe(1)
	if got := gathered(t, m, "portcullis_pipeline_step_duration_seconds", "auth"); got != 2 {
		t.Errorf("step auth observed %v times, want 2", got)
	}
	if got := gathered(t, m, "portcullis_decision_duration_seconds", "auth"); got != 1 {
		t.Errorf("latency auth observed %v times, want 1", got)
	}
}
