package guard

import (
	"strconv"
	"time"

	"github.com/portcullis-ai/portcullis/internal/ledger"
	"github.com/portcullis-ai/portcullis/internal/policy"
)

// evalInputs is what the policy evaluation of preq read that the record's other fields do not
// hold, so that `policy replay` decides from the record instead of guessing: the agent's roles
// and permissions, the invoking user's permissions and attributes (the ledger redacts these as
// it redacts parameters), the tool's configured classification, the behaviour counts of windows
// (the windows the enforced set read, as History answered them: earlier calls only) and the
// hour baseline, and the clock's UTC offset (an expression's time.getHours() reads it). nil when
// the evaluation read none of them.
func evalInputs(preq *policy.Request, windows []time.Duration) *ledger.Inputs {
	in := ledger.Inputs{Roles: preq.Agent.Roles, Permissions: preq.Agent.Permissions,
		ToolClassification: preq.ToolClassification}
	if len(preq.Agent.Roles) > 0 {
		in.RolePermissions = preq.Agent.RolePermissions
	}
	if u := preq.User; u != nil {
		in.UserPermissions, in.UserAttributes = u.Permissions, u.Attributes
	}
	if h := preq.History; h != nil {
		if len(windows) > 0 {
			in.Calls = make(map[string]int, len(windows))
			for _, w := range windows {
				in.Calls[strconv.FormatInt(int64(w/time.Minute), 10)] = h.CallCount(preq.Tool, w, preq.Time)
			}
		}
		switch unusual, learned := h.UnusualHour(preq.Time); {
		case !learned:
			in.Baseline = ledger.BaselineLearning
		case unusual:
			in.Baseline = ledger.BaselineUnusual
		default:
			in.Baseline = ledger.BaselineUsual
		}
	}
	_, in.ZoneOffset = preq.Time.Zone()
	if in.Roles == nil && in.Permissions == nil && in.ToolClassification == "" && in.UserPermissions == nil &&
		in.UserAttributes == nil && in.Baseline == "" && in.ZoneOffset == 0 {
		return nil
	}
	out := in // only a record with inputs pays for a heap copy
	return &out
}
