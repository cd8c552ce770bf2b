package compare

import (
	"context"
	"testing"
	"time"

	"github.com/portcullis-ai/portcullis/internal/policy"
)

// engines builds every engine for s. Portcullis's own engine is added by portcullisEngine.
func engines(t testing.TB, s *Scenario) []Engine {
	t.Helper()
	ctx := context.Background()
	o, err := NewOPA(ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	c, err := NewCedar(s)
	if err != nil {
		t.Fatal(err)
	}
	p, err := NewPortcullis(s)
	if err != nil {
		t.Fatal(err)
	}
	return []Engine{p, o, c}
}

// TestEquivalence checks that every engine gives the oracle's decision on a few thousand random
// requests per scenario before anything is timed; a benchmark of engines that disagree is worthless.
func TestEquivalence(t *testing.T) {
	ctx := context.Background()
	for _, s := range Scenarios() {
		t.Run(s.Name, func(t *testing.T) {
			n := 3000
			if testing.Short() {
				n = 500
			}
			reqs := s.Requests(n, 1)
			count := map[Action]int{}
			want := make([]Action, len(reqs))
			for i, req := range reqs {
				want[i] = s.Decide(req)
				count[want[i]]++
			}
			// The generator must exercise both outcomes, or agreement proves little.
			if count[Allow] < n/20 || count[Deny] < n/20 {
				t.Fatalf("generator is lopsided for %s: %v", s.Name, count)
			}
			for _, e := range engines(t, s) {
				start := time.Now()
				bad, m := 0, n
				if e.Name() != "portcullis" && (len(s.Rules) >= 10000 || s.Name == "regex-1000") {
					// cedar-go scans every policy (10k rules: ~15 ms a decision) and OPA evaluates
					// every regex rule (~15 ms): a subset keeps CI's run under a minute.
					m = min(n, 500)
				}
				for i, req := range reqs[:m] {
					in, err := e.Prepare(req)
					if err != nil {
						t.Fatalf("%s prepare request %d: %v", e.Name(), i, err)
					}
					got, err := e.Decide(ctx, in)
					if err != nil {
						t.Fatalf("%s decide request %d: %v", e.Name(), i, err)
					}
					if got != want[i] {
						bad++
						if bad <= 5 {
							t.Errorf("%s: request %d %+v: got %s, oracle says %s", e.Name(), i, req, got, want[i])
						}
					}
				}
				if bad > 0 {
					t.Errorf("%s disagrees with the oracle on %d of %d requests", e.Name(), bad, m)
				}
				t.Logf("%s: %d requests agree (%v)", e.Name(), m-bad, time.Since(start).Round(time.Millisecond))
			}
			t.Logf("%s: %d requests, %v", s.Name, n, count)
		})
	}
}

// TestSeedScenarioIsTheSeed checks that the generated seed scenario decides as the seed's own first
// policy (the verbatim file the policy package's golden tests load) on the random requests: the
// only difference is the seed's threat rule, which never applies at threat level none.
func TestSeedScenarioIsTheSeed(t *testing.T) {
	set, err := policy.Load("../../internal/policy/testdata/seed/01_deny_by_default.yaml")
	if err != nil {
		t.Fatal(err)
	}
	s := Seed()
	p, err := NewPortcullis(s)
	if err != nil {
		t.Fatal(err)
	}
	for i, req := range s.Requests(3000, 7) {
		in, err := p.Prepare(req)
		if err != nil {
			t.Fatal(err)
		}
		pr := in.(*policy.Request)
		if got, want := set.Evaluate(pr).Action, p.set.Evaluate(pr).Action; got != want {
			t.Fatalf("request %d %+v: seed file says %s, generated policy says %s", i, req, got, want)
		}
	}
}
