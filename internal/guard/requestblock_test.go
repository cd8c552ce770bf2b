package guard

import (
	"context"
	"strings"
	"testing"

	"github.com/portcullis-ai/portcullis/internal/ledger"
	"github.com/portcullis-ai/portcullis/internal/policy"
	"github.com/portcullis-ai/portcullis/internal/threat"
)

// TestRequestBlockLevel: a call whose parameters inspect at or above
// inspection.request_block_level is denied even where the policy allows it, answered as a policy
// denial and recorded with the reason code threat_blocked; below the level, or with the level
// none, the policy decides as before.
func TestRequestBlockLevel(t *testing.T) {
	ctx := context.Background()
	// save_note is allowed without conditions; the catch-all CONSTRAIN holds calls at high threat.
	metadata := `{"text":"see http://169.254.169.254/latest/meta-data/iam/security-credentials/"}`
	injected := `{"text":"x' UNION SELECT password FROM users --"}`
	for _, tc := range []struct {
		name   string
		level  threat.Level
		params string
		want   policy.Action
	}{
		{"critical blocked at critical", threat.Critical, metadata, policy.Deny},
		{"high not blocked at critical", threat.Critical, injected, policy.Constrain},
		{"clean allowed at critical", threat.Critical, `{"text":"hello"}`, policy.Allow},
		{"critical only advised at none", threat.None, metadata, policy.Constrain},
		{"high blocked at high", threat.High, injected, policy.Deny},
		{"clean allowed at low", threat.Low, `{"text":"hello"}`, policy.Allow},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarnessWith(t, harnessOptions{guard: func(o *Options) { o.RequestBlockLevel = tc.level }})
			d := h.g.Check(ctx, h.call("save_note", tc.params))
			if d.Action != tc.want {
				t.Fatalf("%s: %v (level %v, code %q, %v)", tc.params, d.Action, d.Level, d.Code, d.Err)
			}
			rec := h.recordOf(t, d.ID, string(ledger.KindDecision))
			blocked := strings.HasPrefix(rec.Reason, CodeThreatBlocked+": ")
			if blocked != (tc.want == policy.Deny) {
				t.Errorf("record reason %q", rec.Reason)
			}
			if tc.want != policy.Deny {
				return
			}
			if d.Code != "" || d.Message != msgUnavailable || d.OutcomeToken != "" || d.ApprovalID != "" {
				t.Errorf("answer %+v: want a plain policy denial", d)
			}
			if rec.Decision != "deny" || rec.ThreatLevel < tc.level || len(rec.Findings) == 0 {
				t.Errorf("record %q level %v findings %v", rec.Decision, rec.ThreatLevel, rec.Findings)
			}
		})
	}
}
