package alert

import (
	"context"
	"sync"
	"time"

	"github.com/portcullis-ai/portcullis/internal/export"
)

// Runner drives an Engine from a ledger tailer: it is the tailer's export.Sink, so the alerts
// follow the ledger's committed records the way an export does, resumable and off the decision
// path. Raised alerts go to Deliver; until it succeeds they are kept and retried with the next
// batch (the tailer retries the batch, which the engine does not count twice); those recorded
// are not delivered again.
type Runner struct {
	// deliver records and announces alerts in order and returns how many it recorded.
	deliver func(ctx context.Context, alerts []Alert) (int, error)

	mu      sync.Mutex
	engine  *Engine
	seen    uint64 // the next seq the engine has not observed
	started bool
	queued  []Alert
}

var _ export.Sink = (*Runner)(nil)

// NewRunner returns a runner of e delivering through deliver.
func NewRunner(e *Engine, deliver func(ctx context.Context, alerts []Alert) (int, error)) *Runner {
	return &Runner{engine: e, deliver: deliver}
}

// Send observes the batch's records (each once, however often the tailer retries the batch)
// and delivers the alerts they raise.
func (r *Runner) Send(ctx context.Context, items []export.Item) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, it := range items {
		if r.started && it.Seq < r.seen {
			continue
		}
		r.started, r.seen = true, it.Seq+1
		r.queued = append(r.queued, r.engine.Observe(it.Seq, it.Record)...)
	}
	return r.flush(ctx)
}

// Close is the sink's Close: nothing to release.
func (r *Runner) Close() error { return nil }

// Tick evaluates the time-driven rules at now and delivers what they raise.
func (r *Runner) Tick(ctx context.Context, now time.Time) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.queued = append(r.queued, r.engine.Tick(now)...)
	return r.flush(ctx)
}

// Verification raises the alert for a failed ledger verification.
func (r *Runner) Verification(ctx context.Context, now time.Time, err error) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.queued = append(r.queued, r.engine.Verification(now, err)...)
	return r.flush(ctx)
}

func (r *Runner) flush(ctx context.Context) error {
	if len(r.queued) == 0 {
		return nil
	}
	n, err := r.deliver(ctx, r.queued)
	r.queued = r.queued[:copy(r.queued, r.queued[n:])]
	return err
}

// RunOptions set what Run does on its clock.
type RunOptions struct {
	// Tick is how often the time-driven rules are evaluated (a failed delivery is retried then).
	Tick time.Duration
	// Verify, when set, verifies the ledger every VerifyEvery; an error raises a
	// ledger_verification alert.
	Verify      func(ctx context.Context) error
	VerifyEvery time.Duration
	// OnError hears about deliveries that failed.
	OnError func(error)
}

// Run evaluates the time-driven rules, and verifies the ledger, on o's schedule until ctx ends.
// A verification runs in line: the ticks it covers are evaluated when it ends.
func (r *Runner) Run(ctx context.Context, o RunOptions) {
	tick := time.NewTicker(o.Tick)
	defer tick.Stop()
	var verify <-chan time.Time
	if o.Verify != nil {
		v := time.NewTicker(o.VerifyEvery)
		defer v.Stop()
		verify = v.C
	}
	for {
		var err error
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			err = r.Tick(ctx, now)
		case <-verify:
			if verr := o.Verify(ctx); verr != nil && ctx.Err() == nil {
				err = r.Verification(ctx, time.Now(), verr)
			}
		}
		if err != nil && ctx.Err() == nil && o.OnError != nil {
			o.OnError(err)
		}
	}
}
