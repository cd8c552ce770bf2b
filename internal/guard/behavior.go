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

func (b trackerBehavior) Observe(ctx context.Context, agent, tool string, size int, at time.Time) (Signals, error) {
	obs, err := b.t.Observe(ctx, behavior.Call{Agent: agent, Tool: tool, At: at, ParamSize: size}, nil)
	if err != nil {
		return Signals{}, err
	}
	h := &trackedHistory{ctx: ctx, t: b.t, agent: agent, obs: obs}
	return Signals{History: h, Anomalies: obs.Findings, Err: h.error}, nil
}

// trackedHistory answers the policy engine's questions from the tracker. The policy asks for
// windows only its rules know, so counts are read on demand; a store failure cannot be returned
// through policy.History, so it is kept and Check denies after evaluation (fail closed).
type trackedHistory struct {
	ctx   context.Context
	t     *behavior.Tracker
	agent string
	obs   *behavior.Observation

	mu  sync.Mutex
	err error
}

var _ policy.History = (*trackedHistory)(nil)

func (h *trackedHistory) CallCount(tool string, window time.Duration, _ time.Time) int {
	n, ok := h.obs.CallCount(window)
	if !ok {
		var err error
		n, err = h.t.Count(h.ctx, h.agent, tool, window)
		if err != nil {
			h.mu.Lock()
			h.err = fmt.Errorf("count calls in %v: %w", window, err)
			h.mu.Unlock()
			return 0
		}
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
