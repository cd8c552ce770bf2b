package policy

import (
	"testing"
	"time"

	"github.com/portcullis-ai/portcullis/internal/threat"
)

func TestSmokeSeed(t *testing.T) {
	set, err := Load("testdata/seed")
	if err != nil {
		t.Fatal(err)
	}
	tm, _ := time.Parse(time.RFC3339, "2026-03-10T10:00:00-04:00")
	req := &Request{Agent: Agent{ID: "report-generator-v1"}, Tool: "fetch_sales_data", Params: map[string]any{"query_type": "monthly", "date_range_days": 90.0}, Time: tm}
	if d := set.Evaluate(req); d.Action != Allow || d.Rule != "read_sales_data" {
		t.Errorf("got %+v", d)
	}
	req.Threat = threat.High
	if d := set.Evaluate(req); d.Action != Constrain {
		t.Errorf("got %+v", d)
	}
	t.Logf("%+v", set.Explain(req))
}
