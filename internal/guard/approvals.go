package guard

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/portcullis-ai/portcullis/internal/approval"
	"github.com/portcullis-ai/portcullis/internal/ledger"
)

// ApprovalRecorder writes every approval state change to the ledger before the approval store
// commits it (the approval engine aborts the change when this fails): what an approver saw and
// did is on the record, or it did not happen.
//
// Each event is a record of its own kind (approval_requested, approval_vote, approval_resolved,
// approval_consumed, approval_aborted); approval.requested_by names the agent whose call is held,
// approval.approver only an approver who acted.
func ApprovalRecorder(l Ledger) approval.Recorder {
	return approval.RecorderFunc(func(ctx context.Context, e approval.Event) error {
		kind := ledger.Kind(e.Kind)
		switch kind {
		case ledger.KindApprovalRequested, ledger.KindApprovalVote, ledger.KindApprovalResolved,
			ledger.KindApprovalConsumed, ledger.KindApprovalAborted:
		default:
			return fmt.Errorf("record %s for %s: unknown approval event", e.Kind, e.ApprovalID)
		}
		r := e.Request
		rec := &ledger.Record{Kind: kind, Time: e.At, DecisionID: e.DecisionID, Source: r.Labels["source"],
			Agent: &ledger.Principal{ID: r.Agent, Verified: true}, Tool: r.Tool,
			PolicyVersion: e.PolicyVersion, Decision: "constrain",
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
		a := &ledger.Approval{ID: e.ApprovalID, RequestedBy: r.Agent, Result: string(e.To), Comment: e.Comment,
			WaitMS: e.TimeToResolution.Milliseconds()}
		if byApprover(e) {
			a.Approver = e.Actor
		}
		created := r.CreatedAt
		a.RequestedAt = &created
		if kind != ledger.KindApprovalRequested {
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

// byApprover reports whether e's actor is an approver: a vote or a resolution (empty for
// expiry), or the abort of one. The actor of a request or a consumption is the agent.
func byApprover(e approval.Event) bool {
	switch e.Kind {
	case approval.KindVote, approval.KindResolved:
		return true
	case approval.KindAborted:
		return strings.HasPrefix(e.Comment, approval.KindVote+" ") || strings.HasPrefix(e.Comment, approval.KindResolved+" ")
	}
	return false
}
