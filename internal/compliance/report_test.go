package compliance

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-ai/portcullis/internal/ledger"
)

// TestCollectorApprovals feeds the records the guard's approval recorder writes (one kind per
// event) and checks the counts, the approvers' figures, the expired calls and a compensated
// (aborted) resolution, which must not count as a decision.
func TestCollectorApprovals(t *testing.T) {
	m, err := Mapping()
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC)
	at := func(min int) *time.Time { x := t0.Add(time.Duration(min) * time.Minute); return &x }
	var seq uint64
	rec := func(min int, kind ledger.Kind, id, result, approver string, waitMin int) *ledger.Record {
		seq++
		r := &ledger.Record{Seq: seq, Time: *at(min), Kind: kind, DecisionID: "dec_" + id, Tool: "export_patient_records",
			Agent: &ledger.Principal{ID: "clinical-assistant"}, Decision: "constrain",
			Approval: &ledger.Approval{ID: id, Result: result, Approver: approver, RequestedAt: at(0), WaitMS: int64(waitMin) * 60000}}
		if kind == ledger.KindApprovalRequested {
			r.Policy = &ledger.Policy{Rule: "phi_bulk_export_held"}
		} else {
			r.Approval.ResolvedAt = at(min)
		}
		return r
	}
	c := NewCollector(m["hipaa"], t0, t0.Add(24*time.Hour))
	c.Add(&ledger.Record{Seq: 0, Time: t0.Add(-time.Hour), Kind: ledger.KindDecision, Decision: "deny", PolicyVersion: "sha256:old"})
	for _, r := range []*ledger.Record{
		{Time: t0, Kind: ledger.KindDecision, Decision: "constrain", PolicyVersion: "sha256:aaaa", Tool: "export_patient_records",
			Policy: &ledger.Policy{Rule: "phi_bulk_export_held"}, Anomalies: []ledger.Anomaly{{Signal: "rate_spike", Score: 0.9}}},
		rec(0, ledger.KindApprovalRequested, "a1", "pending", "", 0),
		rec(0, ledger.KindApprovalRequested, "a2", "pending", "", 0),
		rec(0, ledger.KindApprovalRequested, "a3", "pending", "", 0),
		rec(0, ledger.KindApprovalRequested, "a4", "pending", "", 0),
		rec(1, ledger.KindApprovalVote, "a1", "pending", "alice", 0),
		rec(2, ledger.KindApprovalResolved, "a1", "approved", "bob", 2),
		rec(3, ledger.KindApprovalConsumed, "a1", "consumed", "", 0),
		rec(10, ledger.KindApprovalResolved, "a2", "denied", "alice", 10),
		rec(240, ledger.KindApprovalResolved, "a3", "expired", "", 240),
		rec(5, ledger.KindApprovalResolved, "a4", "approved", "carol", 5),
		rec(5, ledger.KindApprovalAborted, "a4", "pending", "carol", 0),
		{Time: t0.Add(time.Hour), Kind: ledger.KindDecision, Decision: "log", PolicyVersion: "sha256:bbbb", Policy: &ledger.Policy{Rule: "phi_access_by_cleared_users"}},
		{Time: t0.Add(2 * time.Hour), Kind: ledger.KindKeyRotation, KeyRotation: &ledger.KeyRotation{OldKey: "oldkey1", NewKey: "newkey2"}},
		{Time: t0.Add(3 * time.Hour), Kind: ledger.KindRecovery},
		{Time: t0.Add(4 * time.Hour), Kind: ledger.KindAlert, Alert: &ledger.Alert{Rule: "denial_spike", Severity: "high", Count: 12}},
	} {
		if r.Seq == 0 {
			seq++
			r.Seq = seq
		}
		c.Add(r)
	}
	c.Add(&ledger.Record{Seq: 99, Time: t0.Add(25 * time.Hour), Kind: ledger.KindDecision, Decision: "allow"})
	rep := c.Finish(ledger.Report{Intact: true, RecordsChecked: 100, CheckpointsChecked: 3, LatestCheckpoint: &ledger.CheckpointInfo{Size: 50}}, t0.Add(48*time.Hour))

	a := rep.Approvals
	if a.Requested != 4 || a.Approved != 1 || a.Denied != 1 || a.Expired != 1 || a.Pending != 1 || a.Consumed != 1 {
		t.Errorf("approvals %+v", a)
	}
	// a1 (approved, 2m) counts for alice and bob; a2 (denied, 10m) for alice; aborted a4 for nobody.
	if len(a.Approvers) != 2 || a.Approvers[0] != (Approver{Name: "alice", Approved: 1, Denied: 1, WaitMedianMS: 120000}) ||
		a.Approvers[1] != (Approver{Name: "bob", Approved: 1, WaitMedianMS: 120000}) {
		t.Errorf("approvers %+v", a.Approvers)
	}
	if a.WaitMedianMS != 120000 || a.WaitMaxMS != 600000 {
		t.Errorf("waits: median %d max %d", a.WaitMedianMS, a.WaitMaxMS)
	}
	if len(a.ExpiredCalls) != 1 || a.ExpiredCalls[0].ApprovalID != "a3" || a.ExpiredCalls[0].Rule != "phi_bulk_export_held" ||
		!a.ExpiredCalls[0].ExpiredAt.Equal(*at(240)) {
		t.Errorf("expired %+v", a.ExpiredCalls)
	}
	if len(rep.PolicyVersions) != 2 || rep.PolicyVersions[0].Version != "sha256:aaaa" || rep.PolicyVersions[1].Version != "sha256:bbbb" {
		t.Errorf("versions %+v (the record before the period must not count)", rep.PolicyVersions)
	}
	if rep.Decisions["constrain"] != 1 || rep.Decisions["log"] != 1 || rep.Decisions["deny"] != 0 || rep.Decisions["allow"] != 0 {
		t.Errorf("decisions %v", rep.Decisions)
	}
	if len(rep.KeyRotations) != 1 || rep.KeyRotations[0].NewKey != "newkey2" || rep.Anomalies.Recoveries != 1 || rep.Anomalies.Signals["rate_spike"] != 1 || rep.Anomalies.Alerts["denial_spike"] != 1 {
		t.Errorf("rotations %+v anomalies %+v", rep.KeyRotations, rep.Anomalies)
	}
	if !rep.Ledger.Signed || *rep.Ledger.LastSeq >= 50 {
		t.Errorf("ledger %+v", rep.Ledger)
	}
	var rules map[string]int
	for _, r := range rep.Rules {
		if r.Rule == "phi_bulk_export_held" {
			rules = r.Decisions
		}
	}
	if rules["constrain"] != 1 {
		t.Errorf("rule evidence %v", rules)
	}
	var ev string
	for _, ctl := range rep.Controls {
		if ctl.ID == "164.308(a)(4)(ii)(B)" {
			ev = strings.Join(ctl.Evidence, "\n")
		}
	}
	for _, s := range []string{"rule phi_bulk_export_held decided 1 calls (1 constrain)", "4 held calls: 1 approved, 1 denied, 1 expired, 1 pending; median time to decision 2m0s"} {
		if !strings.Contains(ev, s) {
			t.Errorf("control 164.308(a)(4)(ii)(B) evidence lacks %q:\n%s", s, ev)
		}
	}

	// A period whose last record the latest checkpoint does not cover is not "signed".
	rep2 := NewCollector(m["hipaa"], t0, t0.Add(time.Hour)).Finish(ledger.Report{Intact: true}, t0)
	if !rep2.Ledger.Signed {
		t.Errorf("an empty period has nothing unsigned")
	}
	c3 := NewCollector(m["hipaa"], t0, t0.Add(time.Hour))
	c3.Add(&ledger.Record{Seq: 60, Time: t0, Kind: ledger.KindDecision, Decision: "allow"})
	if c3.Finish(ledger.Report{Intact: true, LatestCheckpoint: &ledger.CheckpointInfo{Size: 60}}, t0).Ledger.Signed {
		t.Errorf("seq 60 is not covered by a checkpoint of size 60")
	}

	var buf bytes.Buffer
	if err := WriteHTML(&buf, rep); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"dec_a3", "newkey2", "rate_spike", "alert denial_spike", "<rect class=\"constrain\"", "alice"} {
		if !strings.Contains(buf.String(), s) {
			t.Errorf("HTML lacks %q", s)
		}
	}
}

// TestHTMLTampered: a ledger that does not verify is the first thing the page says, with where.
func TestHTMLTampered(t *testing.T) {
	m, err := Mapping()
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC)
	c := NewCollector(m["pci-dss"], t0, t0.Add(time.Hour))
	c.Add(&ledger.Record{Seq: 7, Time: t0, Kind: ledger.KindDecision, Decision: "deny"})
	bad := uint64(7)
	rep := c.Finish(ledger.Report{Intact: false, FirstBadSeq: &bad, Problem: ledger.ProblemPrevMismatch, Reason: "prev does not match"}, t0)
	var buf bytes.Buffer
	if err := WriteHTML(&buf, rep); err != nil {
		t.Fatal(err)
	}
	page := buf.String()
	if !strings.Contains(page, `<span class="bad">Tampered:</span> prev_mismatch at seq 7 (prev does not match)`) || strings.Contains(page, "Intact.") {
		t.Errorf("tampered ledger not shown:\n%s", page[:min(len(page), 3000)])
	}
	var ev string
	for _, ctl := range rep.Controls {
		if ctl.ID == "10.3.2" {
			ev = strings.Join(ctl.Evidence, "\n")
		}
	}
	if !strings.Contains(ev, "ledger verification FAILED at seq 7: prev_mismatch") {
		t.Errorf("10.3.2 evidence: %q", ev)
	}
}
