package guard

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/portcullis-ai/portcullis/internal/behavior"
	"github.com/portcullis-ai/portcullis/internal/policy"
)

// Tracked adapts a behavior.Tracker to the pipeline's Behavior step.
func Tracked(t *behavior.Tracker) Behavior { return trackerBehavior{t} }

type trackerBehavior struct{ t *behavior.Tracker }

func (b trackerBehavior) Observe(ctx context.Context, agent, tool string, size int, at time.Time, windows []time.Duration) (Signals, error) {
	obs, err := b.t.Observe(ctx, behavior.Call{Agent: agent, Tool: tool, At: at, ParamSize: size}, windows)
	if err != nil {
		return Signals{}, err
	}
	h := &trackedHistory{obs: obs}
	return Signals{History: h, Anomalies: obs.Findings, Err: h.error}, nil
}

// trackedHistory answers the policy engine's questions from one observation: the store counted
// every window the policy reads (Policies' Windows) in the same atomic call that recorded this
// one, on the guard's clock. A window it did not count cannot be answered — the policy set and
// its windows come from the same snapshot, so that is a defect — and it is kept as an error:
// Check denies after evaluation (fail closed), since policy.History cannot return one.
type trackedHistory struct {
	obs *behavior.Observation

	mu  sync.Mutex
	err error
}

var _ policy.History = (*trackedHistory)(nil)

func (h *trackedHistory) CallCount(_ string, window time.Duration, _ time.Time) int {
	n, ok := h.obs.CallCount(window)
	if !ok {
		h.mu.Lock()
		h.err = fmt.Errorf("calls in %v were not counted with the call", window)
		h.mu.Unlock()
		return 0
	}
	// The tracker's counts include the call being decided; the policy adds it itself.
	if n > 0 {
		n--
	}
	return n
}

// UnusualHour is the behaviour baseline's verdict: learned and rare by the thresholds of
// behavior.Config (docs/behavior.md), the one place they are set.
func (h *trackedHistory) UnusualHour(time.Time) (unusual, learned bool) {
	return h.obs.UnusualHour, h.obs.Learned
}

func (h *trackedHistory) error() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.err
}
