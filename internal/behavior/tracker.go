package behavior

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"time"

	"github.com/portcullis-ai/portcullis/internal/inspect"
	"github.com/portcullis-ai/portcullis/internal/threat"
)

// Anomaly finding kinds. Policies name them in `findings:` conditions; never rename one.
const (
	KindBurst       = "anomaly.burst"
	KindFirstUse    = "anomaly.first_use"
	KindLargeParams = "anomaly.large_params"
	KindUnusualHour = "anomaly.unusual_hour"
)

// Config holds the thresholds; docs/behavior.md explains each. Zero values take the defaults.
type Config struct {
	// Learned: an agent's baseline is learned once it has made at least LearnMinCalls calls
	// spread over at least LearnMinSpan (first call to this one). Defaults 200 and 7 days.
	LearnMinCalls int64
	LearnMinSpan  time.Duration
	// RareFraction: with a learned baseline, an hour-of-week bucket is rare when it holds fewer
	// than RareFraction × (the agent's calls / 168) calls — less than a fifth of what an agent
	// acting evenly around the clock would have there. Default 0.2.
	RareFraction float64

	// Burst: the agent's calls (all tools) within BurstWindow, this one included, reach at least
	// BurstMinCalls and at least BurstFactor times its normal rate for such a window. The normal
	// rate is calls per active minute (minutes in which it made any call), so it measures how
	// intensely the agent works when it works. Needs a learned baseline. Defaults 1m, 30, 10.
	BurstWindow   time.Duration
	BurstMinCalls int
	BurstFactor   float64

	// First use: an agent with at least FirstUseMinHistory earlier calls calls a tool it has
	// never called. Default 20 (a brand-new agent's first tools are not news).
	FirstUseMinHistory int64

	// Large parameters: after LargeMinSamples calls of (agent, tool), a call whose parameter size
	// is at least LargeMinBytes, at least LargeMinRatio times the mean, and at least LargeZ standard
	// deviations above the mean. The deviation is floored at 10% of the mean (and 16 bytes), so a tool that
	// always receives the same size does not flag a few extra bytes. Defaults 30, 1024, 2, 4.
	LargeMinSamples int64
	LargeMinBytes   int
	LargeMinRatio   float64
	LargeZ          float64

	// Severities of the findings (the threat level each raises a call to).
	// Defaults: burst high, large params medium, unusual hour medium, first use low.
	SeverityBurst, SeverityLargeParams, SeverityUnusualHour, SeverityFirstUse threat.Level
}

// DefaultConfig returns the documented defaults.
func DefaultConfig() Config {
	return Config{
		LearnMinCalls: 200, LearnMinSpan: 7 * 24 * time.Hour, RareFraction: 0.2,
		BurstWindow: time.Minute, BurstMinCalls: 30, BurstFactor: 10,
		FirstUseMinHistory: 20,
		LargeMinSamples:    30, LargeMinBytes: 1024, LargeMinRatio: 2, LargeZ: 4,
		SeverityBurst: threat.High, SeverityLargeParams: threat.Medium, SeverityUnusualHour: threat.Medium, SeverityFirstUse: threat.Low,
	}
}

func (c Config) withDefaults() Config {
	d := DefaultConfig()
	orDefault(&c.LearnMinCalls, d.LearnMinCalls)
	orDefault(&c.LearnMinSpan, d.LearnMinSpan)
	orDefault(&c.RareFraction, d.RareFraction)
	orDefault(&c.BurstWindow, d.BurstWindow)
	orDefault(&c.BurstMinCalls, d.BurstMinCalls)
	orDefault(&c.BurstFactor, d.BurstFactor)
	orDefault(&c.FirstUseMinHistory, d.FirstUseMinHistory)
	orDefault(&c.LargeMinSamples, d.LargeMinSamples)
	orDefault(&c.LargeMinBytes, d.LargeMinBytes)
	orDefault(&c.LargeMinRatio, d.LargeMinRatio)
	orDefault(&c.LargeZ, d.LargeZ)
	orDefault(&c.SeverityBurst, d.SeverityBurst)
	orDefault(&c.SeverityLargeParams, d.SeverityLargeParams)
	orDefault(&c.SeverityUnusualHour, d.SeverityUnusualHour)
	orDefault(&c.SeverityFirstUse, d.SeverityFirstUse)
	return c
}

// orDefault replaces a zero (or, for numbers, negative) setting with its default.
func orDefault[T cmp.Ordered](v *T, d T) {
	var zero T
	if *v <= zero {
		*v = d
	}
}

// minDeviation (bytes) floors the standard deviation of parameter sizes, so that a tool whose
// calls are always empty still has a finite z-score.
const minDeviation = 16

// Tracker turns calls into behaviour signals. It is safe for concurrent use.
type Tracker struct {
	store Store
	cfg   Config
}

// NewTracker returns a tracker over store with cfg (zero fields take the defaults).
func NewTracker(store Store, cfg Config) *Tracker {
	return &Tracker{store: store, cfg: cfg.withDefaults()}
}

// Observation is what behaviour says about one call.
type Observation struct {
	// Counts maps each requested window to the calls this agent made to this tool within it,
	// this call included.
	Counts map[time.Duration]int
	// AgentRecent is the calls this agent made to any tool within Config.BurstWindow, this one included.
	AgentRecent int
	// Learned reports whether the agent has a learned hour-of-week baseline.
	Learned bool
	// UnusualHour: the baseline is learned and this call's hour-of-week is rare for the agent.
	// (The policy's business-hours half of `unusual_hour` is the policy engine's.)
	UnusualHour bool
	// Findings are the anomalies, as inspection findings; Level is their highest severity.
	Findings []inspect.Finding
	Level    threat.Level
}

// CallCount returns the count for window, and false when window was not requested.
func (o *Observation) CallCount(window time.Duration) (int, bool) {
	n, ok := o.Counts[window]
	return n, ok
}

// Observe records c and returns its signals. windows are the call-count windows the current
// policy uses for this agent. Any store error is returned: the caller must deny.
func (t *Tracker) Observe(ctx context.Context, c Call, windows []time.Duration) (*Observation, error) {
	if c.At.IsZero() {
		c.At = time.Now()
	}
	if c.ParamSize < 0 {
		return nil, fmt.Errorf("behavior: observe: negative parameter size")
	}
	snap, err := t.store.Record(ctx, c, Query{Windows: windows, BurstWindow: t.cfg.BurstWindow})
	if err != nil {
		return nil, fmt.Errorf("behavior: observe %s/%s: %w", c.Agent, c.Tool, err)
	}
	if len(snap.WindowCounts) != len(windows) {
		return nil, fmt.Errorf("behavior: observe %s/%s: store returned %d counts for %d windows", c.Agent, c.Tool, len(snap.WindowCounts), len(windows))
	}
	o := &Observation{Counts: make(map[time.Duration]int, len(windows)), AgentRecent: snap.AgentBurst}
	for i, w := range windows {
		o.Counts[w] = snap.WindowCounts[i]
	}
	o.Learned = snap.AgentCalls >= t.cfg.LearnMinCalls && !snap.AgentFirstSeen.IsZero() && c.At.Sub(snap.AgentFirstSeen) >= t.cfg.LearnMinSpan
	add := func(kind string, sev threat.Level, score float64, evidence string) {
		o.Findings = append(o.Findings, inspect.Finding{Kind: kind, Severity: sev, Path: "$", Evidence: evidence, Score: clamp01(score)})
		o.Level = max(o.Level, sev)
	}

	if o.Learned {
		total := snap.AgentCalls
		threshold := t.cfg.RareFraction * float64(total) / HoursPerWeek
		if n := float64(snap.HourCalls); n < threshold {
			o.UnusualHour = true
			add(KindUnusualHour, t.cfg.SeverityUnusualHour, 1-n/threshold,
				fmt.Sprintf("%d of %d calls in this hour of the week (%s %02d:00 UTC); rare below %.1f", snap.HourCalls, total, c.At.UTC().Weekday(), c.At.UTC().Hour(), threshold))
		}
		if snap.AgentActiveMinutes > 0 {
			perMinute := float64(snap.AgentCalls) / float64(snap.AgentActiveMinutes)
			expected := perMinute * t.cfg.BurstWindow.Minutes()
			limit := math.Max(float64(t.cfg.BurstMinCalls), t.cfg.BurstFactor*expected)
			if float64(snap.AgentBurst) >= limit {
				add(KindBurst, t.cfg.SeverityBurst, 0.5+0.5*(1-limit/float64(snap.AgentBurst)),
					fmt.Sprintf("%d calls in %s; normal %.1f", snap.AgentBurst, t.cfg.BurstWindow, expected))
			}
		}
	}
	if snap.ToolCalls == 0 && snap.AgentCalls >= t.cfg.FirstUseMinHistory {
		add(KindFirstUse, t.cfg.SeverityFirstUse, 1, fmt.Sprintf("first call to %s after %d calls to other tools", c.Tool, snap.AgentCalls))
	}
	if snap.ParamN >= t.cfg.LargeMinSamples && c.ParamSize >= t.cfg.LargeMinBytes {
		n := float64(snap.ParamN)
		mean := snap.ParamSum / n
		variance := math.Max(0, snap.ParamSumSq/n-mean*mean)
		sd := math.Max(math.Sqrt(variance), math.Max(0.1*mean, minDeviation))
		size := float64(c.ParamSize)
		z := (size - mean) / sd
		if z >= t.cfg.LargeZ && size >= t.cfg.LargeMinRatio*mean {
			add(KindLargeParams, t.cfg.SeverityLargeParams, z/(2*t.cfg.LargeZ),
				fmt.Sprintf("%d bytes of parameters; usual %.0f ± %.0f (z=%.1f)", c.ParamSize, mean, sd, z))
		}
	}
	return o, nil
}

func clamp01(x float64) float64 {
	if math.IsNaN(x) || x < 0 {
		return 0
	}
	return math.Min(x, 1)
}
