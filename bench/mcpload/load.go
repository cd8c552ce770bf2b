package main

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/portcullis-ai/portcullis/bench/internal/proc"
)

// result is one measured run of one workload on one path.
type result struct {
	calls, errors int
	p50, p99, max time.Duration
	elapsed       time.Duration
	// CPU time used during the run by the gateway (none on the direct path: pid 0 has no /proc
	// entry), the echo server, and
	// this process (the clients).
	gatewayCPU, upstreamCPU, clientCPU time.Duration
}

func (r result) rate() float64 { return float64(r.calls) / r.elapsed.Seconds() }

func (r result) perCall(cpu time.Duration) time.Duration {
	if r.calls == 0 {
		return 0
	}
	return cpu / time.Duration(r.calls)
}

// echoText is the argument of every call: the in-process benchmark's.
const echoText = "quarterly report for the sales team"

var echoArgs = map[string]any{"text": echoText}

// callEcho makes one call and checks that the text came back unchanged.
func callEcho(ctx context.Context, cs *mcp.ClientSession) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	r, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "echo", Arguments: echoArgs})
	if err != nil {
		return err
	}
	if r.IsError || len(r.Content) != 1 {
		return fmt.Errorf("%w: %+v", errCall, r)
	}
	if tc, ok := r.Content[0].(*mcp.TextContent); !ok || tc.Text != echoText {
		return fmt.Errorf("%w: %+v", errCall, r.Content[0])
	}
	return nil
}

// measure runs w's load on t for d. Closed loop: each client calls again as soon as it has an
// answer, and a call is timed from when it was sent. Paced: client i's k-th call is due at
// start + (i/clients + k) × clients/rate and is timed from when it was due, not from when it was
// sent, so a stall delays — and shows in — every call due during it. A failed call is counted,
// and the first failure is returned with the result; the run goes on.
func measure(ctx context.Context, t *target, w *workload, d time.Duration) (result, error) {
	sessions := t.sessions[:w.clients]
	interval := time.Duration(0)
	if w.rate > 0 {
		interval = time.Duration(float64(w.clients) / w.rate * float64(time.Second))
	}
	upPID := t.upstream()
	gw0, up0, self0 := proc.CPU(t.gateway), proc.CPU(upPID), proc.SelfCPU()
	var (
		mu       sync.Mutex
		all      []time.Duration
		errs     int
		firstErr error
		wg       sync.WaitGroup
	)
	start := time.Now()
	end := start.Add(d)
	for i, cs := range sessions {
		wg.Add(1)
		go func() {
			defer wg.Done()
			lat := make([]time.Duration, 0, 1024)
			var n int
			var first error
			due := start.Add(interval * time.Duration(i) / time.Duration(len(sessions)))
			for {
				t0 := time.Now()
				if interval > 0 {
					if !due.Before(end) {
						break
					}
					time.Sleep(time.Until(due))
					t0, due = due, due.Add(interval)
				} else if !t0.Before(end) {
					break
				}
				if err := callEcho(ctx, cs); err != nil {
					n++
					if first == nil {
						first = err
					}
					continue
				}
				lat = append(lat, time.Since(t0))
			}
			mu.Lock()
			all = append(all, lat...)
			errs += n
			if firstErr == nil {
				firstErr = first
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	r := result{calls: len(all), errors: errs, elapsed: time.Since(start), gatewayCPU: proc.CPU(t.gateway) - gw0}
	if t.upstream() == upPID {
		r.upstreamCPU = proc.CPU(upPID) - up0
	}
	r.clientCPU = proc.SelfCPU() - self0
	slices.Sort(all)
	if n := len(all); n > 0 {
		r.p50, r.p99, r.max = all[n/2], all[min(n-1, n*99/100)], all[n-1]
	}
	if firstErr != nil {
		return r, fmt.Errorf("%d of %d calls failed (the slowest success took %v); first: %w", errs, errs+len(all), r.max, firstErr)
	}
	return r, nil
}
