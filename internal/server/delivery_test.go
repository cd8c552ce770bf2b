package server

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-ai/portcullis/internal/ledger"
)

// deafCommits is a ledger store whose every commit takes delay whatever its context says (an
// fsync cannot be interrupted).
type deafCommits struct {
	ledger.Store
	delay time.Duration
}

func (d deafCommits) Commit(ctx context.Context, recs []ledger.Entry, cp *ledger.StoredCheckpoint) error {
	time.Sleep(d.delay)
	return d.Store.Commit(ctx, recs, cp)
}

// Through the real handler: a decision timeout shorter than the ledger's commit does not turn a
// recorded ALLOW into 503 ledger_unavailable. The answer is the ledger's decision for that ID,
// and the server counts the decision as not delivered in time.
func TestDecideAnswerMatchesLedgerWhenCommitOutlastsDeadline(t *testing.T) {
	r := newRigWith(t, Limits{DecisionTimeout: 10 * time.Millisecond}, func(s ledger.Store) ledger.Store {
		return deafCommits{Store: s, delay: 30 * time.Millisecond}
	})
	for i := range 5 {
		a, err := r.post(t, http.DefaultClient, "/v1/decide", r.victimKey, `{"tool":"fetch_customer_names","params":{}}`)
		if err != nil {
			t.Fatal(err)
		}
		var recorded string
		for _, rec := range r.records(t) {
			if rec.DecisionID == a.DecisionID {
				recorded = rec.Decision
			}
		}
		if a.Decision != "ALLOW" || recorded != "allow" {
			t.Fatalf("call %d: answered %s (%s), ledger holds %q; want ALLOW and allow", i, a.Decision, a.code(), recorded)
		}
	}
	resp, err := http.Get(r.srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), `portcullis_decisions_undelivered_total{decision="ALLOW"} 5`) {
		t.Errorf("undelivered decisions not counted:\n%s", grepLines(string(body), "undelivered"))
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
