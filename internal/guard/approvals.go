package guard

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/portcullis-ai/portcullis/internal/approval"
	"github.com/portcullis-ai/portcullis/internal/ledger"
)

// ApprovalRecorder writes every approval state change to the ledger before the approval store
// commits it (the approval engine aborts the change when this fails): what an approver saw and
// did is on the record, or it did not happen.
//
// The ledger knows two approval kinds, as the contract lists them: approval_requested, and
// approval_resolved for everything after (votes, approval, denial, expiry, the grant's use), with
// the event's own kind in the record's reason.
func ApprovalRecorder(l Ledger) approval.Recorder {
	return approval.RecorderFunc(func(ctx context.Context, e approval.Event) error {
		kind := ledger.KindApprovalResolved
		if e.Kind == approval.KindRequested {
			kind = ledger.KindApprovalRequested
		}
		r := e.Request
		rec := &ledger.Record{Kind: kind, Time: e.At, DecisionID: e.DecisionID, Source: r.Labels["source"],
			Agent: &ledger.Principal{ID: r.Agent, Verified: true}, Tool: r.Tool,
			PolicyVersion: e.PolicyVersion, Reason: e.Kind, Decision: "constrain",
			ThreatLevel: r.ThreatLevel, Findings: ledgerFindings(r.Findings)}
		if r.User != "" {
			method := "token"
			if !r.UserVerified {
				method = "asserted"
			}
			rec.User = &ledger.Principal{ID: r.User, Verified: r.UserVerified, Method: method}
		}
		if kind == ledger.KindApprovalRequested {
			// The approver-facing copy of the parameters is already redacted.
			rec.Params = json.RawMessage(r.Params)
			rec.ParamsHash = r.ParamsDigest
			rec.Policy = &ledger.Policy{Version: r.PolicyVersion, Rule: r.Rule}
			for _, c := range r.Conditions {
				rec.Policy.Conditions = append(rec.Policy.Conditions, ledger.Condition{Expr: c.Text, Result: c.Result})
			}
			for _, s := range r.Signals {
				rec.Anomalies = append(rec.Anomalies, ledger.Anomaly{Signal: s.Name, Score: s.Score})
			}
		}
		a := &ledger.Approval{ID: e.ApprovalID, Result: string(e.To), Approver: e.Actor, Comment: e.Comment,
			WaitMS: e.TimeToResolution.Milliseconds()}
		created := r.CreatedAt
		a.RequestedAt = &created
		if kind == ledger.KindApprovalResolved {
			at := e.At
			a.ResolvedAt = &at
		}
		rec.Approval = a
		if _, err := l.Append(ctx, rec); err != nil {
			return fmt.Errorf("record %s for %s: %w", e.Kind, e.ApprovalID, err)
		}
		return nil
	})
}
