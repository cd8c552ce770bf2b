package approval

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestShadow(t *testing.T) {
	tests := []struct {
		enforced, withDryRun Verdict
		want                 Shadowed
	}{
		// The use case: a new CONSTRAIN rule in dry run over a call that is allowed today.
		{Allow, Constrain, Shadowed{Action: Log, WouldHave: Constrain}},
		{Allow, Deny, Shadowed{Action: Log, WouldHave: Deny}},
		{Log, Constrain, Shadowed{Action: Log, WouldHave: Constrain}},
		{Constrain, Deny, Shadowed{Action: Constrain, WouldHave: Deny}},
		{Allow, Log, Shadowed{Action: Log, WouldHave: Log}},
		// Dry-run rules never loosen what is enforced.
		{Deny, Allow, Shadowed{Action: Deny, WouldHave: Allow}},
		{Constrain, Log, Shadowed{Action: Constrain, WouldHave: Log}},
		// No difference, nothing to report.
		{Allow, Allow, Shadowed{Action: Allow}},
		{Deny, Deny, Shadowed{Action: Deny}},
		{Constrain, Constrain, Shadowed{Action: Constrain}},
	}
	for _, tt := range tests {
		got, err := Shadow(tt.enforced, tt.withDryRun)
		if err != nil {
			t.Fatalf("Shadow(%s, %s): %v", tt.enforced, tt.withDryRun, err)
		}
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("Shadow(%s, %s) (-want +got):\n%s", tt.enforced, tt.withDryRun, diff)
		}
	}
}

// TestShadowProperties checks every pair: the enforced action is never less restrictive than
// the decision without dry-run rules, never stricter than max(that, LOG), and a difference is
// always reported.
func TestShadowProperties(t *testing.T) {
	all := []Verdict{Allow, Log, Constrain, Deny}
	for _, e := range all {
		for _, d := range all {
			got, err := Shadow(e, d)
			if err != nil {
				t.Fatal(err)
			}
			if got.Action.rank() < e.rank() {
				t.Errorf("Shadow(%s, %s) loosened to %s", e, d, got.Action)
			}
			if got.Action != e && got.Action != Log {
				t.Errorf("Shadow(%s, %s) enforced %s", e, d, got.Action)
			}
			if (d != e) != (got.WouldHave == d) {
				t.Errorf("Shadow(%s, %s) would_have %q", e, d, got.WouldHave)
			}
		}
	}
}

func TestShadowPolicy(t *testing.T) {
	tests := []struct {
		in   Verdict
		want Shadowed
	}{
		{Allow, Shadowed{Action: Log, WouldHave: Allow}},
		{Log, Shadowed{Action: Log}},
		{Constrain, Shadowed{Action: Log, WouldHave: Constrain}},
		{Deny, Shadowed{Action: Log, WouldHave: Deny}},
	}
	for _, tt := range tests {
		got, err := ShadowPolicy(tt.in)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("ShadowPolicy(%s) (-want +got):\n%s", tt.in, diff)
		}
	}
}

func TestShadowRejectsUnknown(t *testing.T) {
	if _, err := Shadow("allow", Deny); !errors.Is(err, ErrInvalid) {
		t.Errorf("lower-case verdict accepted unparsed: %v", err)
	}
	if _, err := Shadow(Allow, "PERMIT"); !errors.Is(err, ErrInvalid) {
		t.Errorf("unknown verdict: %v", err)
	}
	if _, err := ShadowPolicy(""); !errors.Is(err, ErrInvalid) {
		t.Errorf("empty verdict: %v", err)
	}
}

func TestParseVerdict(t *testing.T) {
	for in, want := range map[string]Verdict{"allow": Allow, " Constrain ": Constrain, "DENY": Deny, "log": Log} {
		got, err := ParseVerdict(in)
		if err != nil || got != want {
			t.Errorf("ParseVerdict(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := ParseVerdict("maybe"); !errors.Is(err, ErrInvalid) {
		t.Errorf("ParseVerdict(maybe): %v", err)
	}
}
