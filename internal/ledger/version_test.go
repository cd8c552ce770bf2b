package ledger_test

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/portcullis-ai/portcullis/internal/ledger"
)

// A log written by a version 1 binary — some of its decisions carrying the shadow field, which
// that version wrote without a version bump — and continued by this one still verifies, and
// every record reads: the old ones as version 1 without inputs, the new ones as version 2 with.
func TestVersion1LogContinuedVerifies(t *testing.T) {
	e := newEnv(t, nil)
	restore := ledger.SetWriteVersion(1)
	l := e.open(t, nil)
	old := decision(1)
	old.Shadow = &ledger.Shadow{Version: "sha256:cand", Decision: "deny", Rule: "r"}
	old.Inputs = &ledger.Inputs{Roles: []string{"reader"}} // a version 1 binary had no such field
	mustAppend(t, l, old)
	mustClose(t, l)
	restore()

	l = e.open(t, nil)
	cur := decision(2)
	cur.Inputs = &ledger.Inputs{Roles: []string{"reader"}, Calls: map[string]int{"5": 2}, Baseline: ledger.BaselineLearning}
	mustAppend(t, l, cur)
	mustClose(t, l)
	rep := e.verify(t)
	if rep.Records == 0 {
		t.Fatalf("verified nothing: %+v", rep)
	}
	var versions []int
	for _, r := range records(t, e.st) {
		versions = append(versions, r.V)
		switch r.DecisionID {
		case old.DecisionID:
			if r.V != 1 || r.Inputs != nil || r.Shadow == nil || r.Shadow.Decision != "deny" {
				t.Errorf("version 1 decision read as v%d inputs %+v shadow %+v", r.V, r.Inputs, r.Shadow)
			}
		case cur.DecisionID:
			if r.V != ledger.FormatVersion || r.Inputs == nil || r.Inputs.Calls["5"] != 2 || r.Inputs.Baseline != ledger.BaselineLearning {
				t.Errorf("version 2 decision read as v%d inputs %+v", r.V, r.Inputs)
			}
		}
	}
	if !slices.Contains(versions, 1) || !slices.Contains(versions, 2) {
		t.Errorf("versions read %v, want both 1 and 2", versions)
	}
}

// The invoking user's attributes are redacted with the parameters' rules: a sensitive name's
// values are replaced (by their HMAC under the hash key) and named; the rest are kept; the
// caller's attributes are not modified.
func TestUserAttributesRedacted(t *testing.T) {
	e := newEnv(t, nil)
	l := e.open(t, nil)
	attrs := map[string][]string{"region": {"eu"}, "API_Key": {"sk-live-1"}, "session": {"s1", "s2"}}
	r := decision(3)
	r.Inputs = &ledger.Inputs{UserAttributes: attrs}
	in := r.Inputs
	mustAppend(t, l, r)
	mustClose(t, l)
	if attrs["API_Key"][0] != "sk-live-1" || in.RedactedAttributes != nil {
		t.Fatalf("the caller's attributes were modified: %v %v", attrs, in.RedactedAttributes)
	}
	var got *ledger.Record
	for _, x := range records(t, e.st) {
		if x.DecisionID == r.DecisionID {
			got = x
		}
	}
	if got == nil || got.Inputs == nil {
		t.Fatal("decision or its inputs not found")
	}
	if d := cmp.Diff([]string{"API_Key", "session"}, got.Inputs.RedactedAttributes); d != "" {
		t.Errorf("redacted attributes (-want +got):\n%s", d)
	}
	want := ledger.HashValue(e.keys.HashKey, "sk-live-1")
	if v := got.Inputs.UserAttributes["API_Key"]; len(v) != 1 || v[0] != want {
		t.Errorf("api key stored as %v, want its HMAC %s", v, want)
	}
	if v := got.Inputs.UserAttributes["session"]; len(v) != 2 || !strings.HasPrefix(v[0], ledger.HashPrefix) || v[0] == v[1] {
		t.Errorf("session stored as %v", v)
	}
	if v := got.Inputs.UserAttributes["region"]; len(v) != 1 || v[0] != "eu" {
		t.Errorf("region stored as %v, want kept", v)
	}
	var raw []byte
	_ = e.st.Scan(context.Background(), 0, func(en ledger.Entry) error {
		if strings.Contains(string(en.Data), r.DecisionID) {
			raw = en.Data
		}
		return nil
	})
	if strings.Contains(string(raw), "sk-live-1") {
		t.Errorf("the secret reached the store: %s", raw)
	}
}
