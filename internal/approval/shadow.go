package approval

import (
	"fmt"
	"strings"
)

// Verdict is a policy decision name as the policy language writes it. The policy engine owns
// its own decision type; this one exists so the dry-run helper stays a pure function that does
// not import the policy engine.
type Verdict string

const (
	Allow     Verdict = "ALLOW"
	Log       Verdict = "LOG"
	Constrain Verdict = "CONSTRAIN"
	Deny      Verdict = "DENY"
)

// ParseVerdict reads a decision name, case-insensitively.
func ParseVerdict(s string) (Verdict, error) {
	v := Verdict(strings.ToUpper(strings.TrimSpace(s)))
	if v.rank() < 0 {
		return "", fmt.Errorf("%w: unknown decision %q (want ALLOW, LOG, CONSTRAIN or DENY)", ErrInvalid, s)
	}
	return v, nil
}

// rank orders verdicts by restrictiveness: ALLOW < LOG < CONSTRAIN < DENY; -1 if unknown.
func (v Verdict) rank() int {
	switch v {
	case Allow:
		return 0
	case Log:
		return 1
	case Constrain:
		return 2
	case Deny:
		return 3
	}
	return -1
}

// Shadowed is a decision after dry-run (shadow) rules are taken into account.
type Shadowed struct {
	// Action is what is enforced.
	Action Verdict `json:"action"`
	// WouldHave is the decision the dry-run rules would have produced, when it differs from
	// Action; "" otherwise. The ledger records it as would_have.
	WouldHave Verdict `json:"would_have,omitempty"`
}

// Shadow applies per-rule dry run. enforced is the decision computed without the rules marked
// dry_run (exactly what the gateway did before those rules were added); withDryRun is the
// decision computed with them, as if they were enforced.
//
//   - Same decision: nothing to report.
//   - withDryRun is stricter (a new CONSTRAIN or DENY rule applies): the call proceeds as
//     enforced, but at least LOG so it is flagged, and WouldHave records the stricter verdict —
//     "LOG, would_have: CONSTRAIN" is what a team watches before turning the rule on.
//   - withDryRun is looser (a new ALLOW rule in dry run would have opened a denied call): the
//     enforced decision stands and WouldHave records what the rule would have allowed.
//
// So dry-run rules can never make a decision less restrictive than the enforced one, nor make
// anything stricter than LOG. Unknown verdicts are an error; the caller must then DENY.
func Shadow(enforced, withDryRun Verdict) (Shadowed, error) {
	if enforced.rank() < 0 || withDryRun.rank() < 0 {
		return Shadowed{}, fmt.Errorf("shadow decision: %w: unknown verdict in (%q, %q)", ErrInvalid, enforced, withDryRun)
	}
	switch {
	case withDryRun == enforced:
		return Shadowed{Action: enforced}, nil
	case withDryRun.rank() > enforced.rank():
		action := enforced
		if action.rank() < Log.rank() {
			action = Log
		}
		return Shadowed{Action: action, WouldHave: withDryRun}, nil
	default:
		return Shadowed{Action: enforced, WouldHave: withDryRun}, nil
	}
}

// ShadowPolicy applies per-policy dry run ("LOG instead of enforcing"): every call the policy
// decides is let through as LOG and the policy's own decision is recorded as WouldHave. This is
// monitor mode for the whole agent — it turns the policy's DENYs into LOGs too — so the policy
// engine should warn when a policy is loaded with it, and teams should prefer per-rule dry run.
// It must never be applied to the DENY the pipeline returns for errors or for agents without a
// policy: those are not the policy's decisions.
func ShadowPolicy(decision Verdict) (Shadowed, error) {
	if decision.rank() < 0 {
		return Shadowed{}, fmt.Errorf("shadow policy decision: %w: unknown verdict %q", ErrInvalid, decision)
	}
	if decision == Log {
		return Shadowed{Action: Log}, nil
	}
	return Shadowed{Action: Log, WouldHave: decision}, nil
}
