package app

import (
	"strings"
	"testing"

	"github.com/portcullis-ai/portcullis/internal/config"
	"github.com/portcullis-ai/portcullis/internal/guard"
	"github.com/portcullis-ai/portcullis/internal/ledger"
)

// The embedded default denies a call whose parameters inspect critical (a cloud-metadata URL)
// even where its policy would only hold it for approval, and records why; with
// inspection.request_block_level none the policy decides (CONSTRAIN, its high-threat rule).
func TestRequestBlockLevelDefault(t *testing.T) {
	call := []byte(`{"tool":"fetch_customer_names","params":{"limit":5,"filter":"http://169.254.169.254/latest/meta-data/iam/security-credentials/"}}`)
	for _, tc := range []struct {
		level, want string
	}{
		{"", "DENY"}, // the default: critical
		{"none", "CONSTRAIN"},
	} {
		g := newGatewayWith(t, func(c *config.Config) {
			if tc.level != "" {
				c.Inspection.RequestBlockLevel = tc.level
			}
		})
		status, d := g.post("/v1/decide", g.key, call)
		if status != 200 || d.Decision != tc.want || d.Error != nil || d.ApprovalID != "" && tc.want == "DENY" {
			t.Fatalf("level %q: %d %+v", tc.level, status, d)
		}
		var reason string
		g.scanLedger(func(r ledger.Record) {
			if r.DecisionID == d.DecisionID {
				reason = r.Reason
			}
		})
		if blocked := strings.HasPrefix(reason, guard.CodeThreatBlocked+": "); blocked != (tc.want == "DENY") {
			t.Errorf("level %q: recorded reason %q", tc.level, reason)
		}
	}
}
