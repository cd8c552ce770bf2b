package main

import (
	"bytes"
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// The 60-second soak: a real gateway under steady mixed traffic (signed decisions, approvals,
// batches, inspected outcomes) must not grow its goroutines or open files.
func TestSoak(t *testing.T) {
	if testing.Short() {
		t.Skip("the soak runs for a minute; -short skips it")
	}
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("the go command is not on PATH: cannot build portcullis")
	}
	var out bytes.Buffer
	samples, err := run(context.Background(), config{duration: 60 * time.Second, interval: 5 * time.Second,
		warmup: 15 * time.Second, rate: 100}, &out)
	t.Log("\n" + out.String())
	if err != nil {
		t.Fatal(err)
	}
	if len(samples) < 8 {
		t.Fatalf("%d samples after warm-up, want at least 8", len(samples))
	}
	if err := check(samples); err != nil {
		t.Error(err)
	}
	if last := samples[len(samples)-1]; last.requests < 4000 {
		t.Errorf("%d requests in a minute at 100/s", last.requests)
	}
}

// The check fails on growth of goroutines or open files, and on errors; flat passes.
func TestCheck(t *testing.T) {
	flat := []sample{{goroutines: 40, openFiles: 20, requests: 100}, {goroutines: 60, openFiles: 25, requests: 200}}
	if err := check(flat); err != nil {
		t.Errorf("flat: %v", err)
	}
	for name, c := range map[string]struct {
		s    []sample
		want string
	}{
		"goroutines": {[]sample{{goroutines: 40, openFiles: 20}, {goroutines: 400, openFiles: 20, requests: 10}}, "goroutines grew"},
		"files":      {[]sample{{goroutines: 40, openFiles: 20}, {goroutines: 40, openFiles: 200, requests: 10}}, "open files grew"},
		"errors":     {[]sample{{goroutines: 40, openFiles: 20}, {goroutines: 40, openFiles: 20, requests: 100, errors: 5}}, "errors"},
		"one sample": {[]sample{{goroutines: 40}}, "need two"},
	} {
		if err := check(c.s); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", name, err, c.want)
		}
	}
}
