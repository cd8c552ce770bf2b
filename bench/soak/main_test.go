package main

import (
	"bytes"
	"context"
	"encoding/xml"
	"fmt"
	"io"
	"net/url"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// The 60-second soak: a real gateway under steady mixed traffic (signed decisions, approvals,
// batches, inspected outcomes) must not grow its goroutines or open files. The gateway runs with
// GOGC and GOMEMLIMIT in its environment, which must override its own defaults (read back from
// its metrics).
func TestSoak(t *testing.T) {
	if testing.Short() {
		t.Skip("the soak runs for a minute; -short skips it")
	}
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("the go command is not on PATH: cannot build portcullis")
	}
	var out bytes.Buffer
	samples, err := run(context.Background(), config{duration: 60 * time.Second, interval: 5 * time.Second,
		warmup: 15 * time.Second, rate: 100, env: []string{"GOGC=150", "GOMEMLIMIT=700MiB"}, outcomeTTL: time.Minute}, &out)
	t.Log("\n" + out.String())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "outcome TTL 1m0s") {
		t.Error("the heading does not say the outcome TTL the gateway runs with")
	}
	samples = trimWarmup(samples, 15*time.Second)
	if len(samples) < 8 {
		t.Fatalf("%d samples after warm-up, want at least 8", len(samples))
	}
	if err := check(samples, 0); err != nil {
		t.Error(err)
	}
	last := samples[len(samples)-1]
	if last.requests < 4000 {
		t.Errorf("%d requests in a minute at 100/s", last.requests)
	}
	if last.gogc != 150 || last.memLimit != 700<<20 {
		t.Errorf("gateway GOGC %.0f, memory limit %.0f; want 150 and %d from its environment", last.gogc, last.memLimit, 700<<20)
	}
	if last.cpu <= 0 || cpuPerRequest(samples[0], last) <= 0 {
		t.Errorf("gateway CPU %.2f s, %.0f µs per request: not read", last.cpu, cpuPerRequest(samples[0], last))
	}
}

// The check fails on growth of goroutines or open files, and on errors; flat passes.
func TestCheck(t *testing.T) {
	flat := []sample{{goroutines: 40, openFiles: 20, requests: 100}, {goroutines: 60, openFiles: 25, requests: 200}}
	if err := check(flat, 0.1); err != nil {
		t.Errorf("flat: %v", err)
	}
	// Requests in flight swing goroutines and files by hundreds from one sample to the next; the
	// floor stays: flat.
	var swinging, leaking []sample
	for i := range 12 {
		g := float64(300 + 200*(i%2))
		swinging = append(swinging, sample{goroutines: g, openFiles: g / 2, requests: int64(i+1) * 1000})
		leaking = append(leaking, sample{goroutines: g + float64(i*20), openFiles: g / 2, requests: int64(i+1) * 1000})
	}
	if err := check(swinging, 0); err != nil {
		t.Errorf("swinging: %v", err)
	}
	if err := check(leaking, 0); err == nil || !strings.Contains(err.Error(), "goroutines grew") {
		t.Errorf("leaking: %v, want goroutines grew", err)
	}
	// Resident memory rises between collections and falls as memory is returned: a run whose
	// first sample after warm-up is a trough and whose last is a peak did not grow; one whose
	// peaks climb did.
	var sawtooth, climbing []sample
	for i := range 16 {
		rss := float64(100+60*(i%2)) * 1e6
		sawtooth = append(sawtooth, sample{goroutines: 40, openFiles: 20, requests: int64(i+1) * 1000, rss: rss})
		climbing = append(climbing, sample{goroutines: 40, openFiles: 20, requests: int64(i+1) * 1000, rss: rss + float64(i)*3e6})
	}
	if err := check(sawtooth, 0.1); err != nil {
		t.Errorf("sawtooth: %v", err)
	}
	if err := check(climbing, 0.1); err == nil || !strings.Contains(err.Error(), "resident memory") {
		t.Errorf("climbing: %v, want resident memory grew", err)
	}
	if got := peaks(climbing, rssMB); got != [4]float64{169, 181, 193, 205} {
		t.Errorf("climbing: peaks per quarter %v", got)
	}
	for name, c := range map[string]struct {
		s    []sample
		want string
	}{
		"goroutines": {[]sample{{goroutines: 40, openFiles: 20}, {goroutines: 400, openFiles: 20, requests: 10}}, "goroutines grew"},
		"files":      {[]sample{{goroutines: 40, openFiles: 20}, {goroutines: 40, openFiles: 200, requests: 10}}, "open files grew"},
		"errors":     {[]sample{{goroutines: 40, openFiles: 20}, {goroutines: 40, openFiles: 20, requests: 100, errors: 5}}, "errors"},
		"dropped":    {[]sample{{goroutines: 40, openFiles: 20}, {goroutines: 40, openFiles: 20, requests: 100, dropped: 5}}, "5 dropped"},
		"rss":        {[]sample{{goroutines: 40, openFiles: 20, rss: 100e6}, {goroutines: 40, openFiles: 20, requests: 10, rss: 111e6}}, "resident memory's peak grew"},
		"one sample": {[]sample{{goroutines: 40}}, "need two"},
	} {
		if err := check(c.s, 0.1); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", name, err, c.want)
		}
	}
}

// The chart is one well-formed SVG with a line per series, drawn through every sample.
func TestChart(t *testing.T) {
	var s []sample
	for i := 1; i <= 30; i++ {
		s = append(s, sample{at: time.Duration(i) * time.Minute, requests: int64(i) * 120000, rss: 200e6, heap: 80e6,
			goroutines: 90, openFiles: 88, ledger: int64(i) * 150e6, wal: 16e6, load: 12})
	}
	svg := chart(s, config{rate: 2000, duration: 30 * time.Minute, interval: time.Minute, warmup: 6 * time.Minute})
	d := xml.NewDecoder(bytes.NewReader(svg))
	lines := 0
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("not well-formed: %v", err)
		}
		if e, ok := tok.(xml.StartElement); ok && e.Name.Local == "polyline" {
			lines++
			for _, a := range e.Attr {
				if a.Name.Local == "points" && len(strings.Fields(a.Value)) != len(s) {
					t.Errorf("a line of %d points, want %d", len(strings.Fields(a.Value)), len(s))
				}
			}
		}
	}
	if lines != 9 {
		t.Errorf("%d lines, want 9", lines)
	}
	if !strings.Contains(string(svg), "2000 requests/s") {
		t.Error("the title does not give the rate")
	}
}

// The first error is kept whatever the concrete types of the errors that follow it.
func TestFirstErrorMixedTypes(t *testing.T) {
	var f firstError
	if f.get() != nil {
		t.Fatal("an error before any was kept")
	}
	first := fmt.Errorf("/v1/decide: %d", 500)
	f.keep(first)
	f.keep(&url.Error{Op: "Post", URL: "http://x", Err: io.EOF})
	f.keep(io.EOF)
	if f.get() != first {
		t.Fatalf("kept %v, want %v", f.get(), first)
	}
}

// The default warm-up outlasts everything the gateway remembers per request: outcome claims
// (their TTL, the minute of clock slack and a claim bucket) and signature nonces (their window
// and a nonce bucket). Growth measured sooner is a store still filling.
func TestWarmupCoversLifetimes(t *testing.T) {
	for _, ttl := range []time.Duration{0, time.Minute, 5 * time.Minute, 2 * time.Hour} {
		w := longestLifetime(ttl)
		claim := ttl
		if claim == 0 {
			claim = time.Hour
		}
		if w < claim+2*time.Minute || w < 5*time.Minute+30*time.Second+15*time.Second {
			t.Errorf("outcome TTL %v: warm-up %v ends before what the gateway remembers is forgotten", ttl, w)
		}
	}
}
