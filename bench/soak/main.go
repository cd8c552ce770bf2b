// Command soak runs a real `portcullis serve` at a steady rate of mixed traffic for a bounded
// time and samples what a long-running gateway must keep flat: resident memory, Go heap,
// goroutines, open files, and the ledger's database and WAL on disk. The traffic: RFC 9421
// signed decisions (each with a fresh nonce), API-key decisions, calls held for approval
// (CONSTRAIN), batches, and outcomes whose results are inspected.
//
//	go run ./bench/soak -duration 30m -rate 2000 -interval 1m     # by hand
//	go test ./bench/soak                                          # the 60-second check
//
// It prints one row per sample, and a verdict: goroutines and open files after warm-up must stay
// within a small margin of their first post-warm-up sample (they are the resources a leak grows
// without bound); memory and disk are reported for the chart in docs/benchmarks.md.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/portcullis-ai/portcullis/bench/internal/proc"
	"github.com/portcullis-ai/portcullis/internal/app"
	"github.com/portcullis-ai/portcullis/sdk/httpsig"
)

func main() {
	var c config
	flag.DurationVar(&c.duration, "duration", 30*time.Minute, "how long to run")
	flag.DurationVar(&c.interval, "interval", time.Minute, "time between samples")
	flag.DurationVar(&c.warmup, "warmup", 2*time.Minute, "time before the first sample that growth is measured from")
	flag.IntVar(&c.rate, "rate", 2000, "requests per second")
	flag.StringVar(&c.bin, "bin", "", "the portcullis binary (default: built from this checkout)")
	flag.StringVar(&c.keep, "keep", "", "move the gateway's data directory here after the run (to measure its ledger, e.g. with audit archive)")
	flag.Parse()
	samples, err := run(context.Background(), c, os.Stdout)
	if err != nil {
		fmt.Fprintln(os.Stderr, "soak:", err)
		os.Exit(1)
	}
	if err := check(samples); err != nil {
		fmt.Fprintln(os.Stderr, "soak:", err)
		os.Exit(1)
	}
}

type config struct {
	duration, interval, warmup time.Duration
	rate                       int
	bin                        string
	keep                       string
}

// sample is what the gateway looked like at one moment.
type sample struct {
	at                    time.Duration
	requests, errors      int64
	rss, heap             float64 // bytes
	goroutines, openFiles float64
	ledger, wal           int64 // bytes on disk
}

func run(ctx context.Context, c config, out io.Writer) ([]sample, error) {
	tmp, err := os.MkdirTemp("", "portcullis-soak-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	if c.keep != "" {
		// Deferred before the gateway's stop, so it runs after it: the ledger is closed.
		defer func() {
			if err := os.Rename(filepath.Join(tmp, "data"), c.keep); err != nil {
				fmt.Fprintln(os.Stderr, "keep the data directory:", err)
			}
		}()
	}
	bin := c.bin
	if bin == "" {
		bin = filepath.Join(tmp, "portcullis")
		if o, err := exec.Command("go", "build", "-o", bin, "github.com/portcullis-ai/portcullis/cmd/portcullis").CombinedOutput(); err != nil {
			return nil, fmt.Errorf("build: %v\n%s", err, o)
		}
	}
	dataDir := filepath.Join(tmp, "data")
	_, apiKey, priv, err := proc.InitGateway(ctx, dataDir, "soak-key")
	if err != nil {
		return nil, err
	}
	srv := exec.Command(bin, "serve", "--data", dataDir, "--listen", "127.0.0.1:0")
	stdout, _ := srv.StdoutPipe()
	srv.Stderr = io.Discard
	if err := srv.Start(); err != nil {
		return nil, err
	}
	defer func() {
		_ = srv.Process.Signal(syscall.SIGTERM)
		_ = srv.Wait()
	}()
	base, err := proc.WaitListening(stdout, 30*time.Second)
	if err != nil {
		return nil, err
	}

	signer := &httpsig.Signer{KeyID: "soak-key", Key: priv}
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	var requests, failures atomic.Int64
	var firstErr atomic.Value
	send := func(i int64) {
		path, body, signed := traffic(i)
		req, _ := http.NewRequest(http.MethodPost, base+path, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		if signed {
			if err := signer.Sign(req, body); err != nil {
				failures.Add(1)
				return
			}
		} else {
			req.Header.Set("Authorization", "Bearer "+apiKey)
		}
		resp, err := client.Do(req)
		requests.Add(1)
		if err != nil {
			failures.Add(1)
			firstErr.CompareAndSwap(nil, err)
			return
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusTooManyRequests {
			failures.Add(1)
			firstErr.CompareAndSwap(nil, fmt.Errorf("%s: %d %s", path, resp.StatusCode, raw))
			return
		}
		if path == "/v1/decide" && !signed && i%4 == 1 {
			// An allowed API-key call reports its outcome with a result to inspect.
			var d struct {
				DecisionID   string `json:"decision_id"`
				OutcomeToken string `json:"outcome_token"`
			}
			if json.Unmarshal(raw, &d) == nil && d.DecisionID != "" {
				ob, _ := json.Marshal(map[string]any{"decision_id": d.DecisionID, "outcome_token": d.OutcomeToken, "ran": true, "success": true,
					"result": map[string]any{"rows": []string{"Acme Corp", "Globex", "Initech"}}})
				oreq, _ := http.NewRequest(http.MethodPost, base+"/v1/outcome", bytes.NewReader(ob))
				oreq.Header.Set("Content-Type", "application/json")
				oreq.Header.Set("Authorization", "Bearer "+apiKey)
				r, err := client.Do(oreq)
				if err != nil {
					failures.Add(1)
					firstErr.CompareAndSwap(nil, err)
					return
				}
				ob, _ = io.ReadAll(r.Body)
				r.Body.Close()
				if r.StatusCode != http.StatusOK {
					failures.Add(1)
					firstErr.CompareAndSwap(nil, fmt.Errorf("/v1/outcome: %d %s", r.StatusCode, ob))
				}
			}
		}
	}

	// Paced: one request every 1/rate, each on its own goroutine, at most 256 in flight.
	runCtx, stop := context.WithTimeout(ctx, c.duration)
	defer stop()
	var wg sync.WaitGroup
	sem := make(chan struct{}, 256)
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(time.Second / time.Duration(max(c.rate, 1)))
		defer tick.Stop()
		for i := int64(0); ; i++ {
			select {
			case <-runCtx.Done():
				return
			case <-tick.C:
			}
			select {
			case sem <- struct{}{}:
				wg.Add(1)
				go func() {
					defer wg.Done()
					defer func() { <-sem }()
					send(i)
				}()
			default:
				failures.Add(1) // the gateway is not keeping up: counted, not queued
			}
		}
	}()

	fmt.Fprintf(out, "# Portcullis soak: %d requests/s for %s, a sample every %s\n\n", c.rate, c.duration, c.interval)
	fmt.Fprintf(out, "| minute | requests | errors | RSS MB | heap MB | goroutines | open files | ledger MB | WAL MB |\n|---|---|---|---|---|---|---|---|---|\n")
	var samples []sample
	start := time.Now()
	tick := time.NewTicker(c.interval)
	defer tick.Stop()
	for done := false; !done; {
		select {
		case <-runCtx.Done():
			done = true
		case <-tick.C:
		}
		s, err := probe(base, dataDir)
		if err != nil {
			return samples, err
		}
		s.at, s.requests, s.errors = time.Since(start), requests.Load(), failures.Load()
		samples = append(samples, s)
		fmt.Fprintf(out, "| %.1f | %d | %d | %.1f | %.1f | %.0f | %.0f | %.1f | %.1f |\n", s.at.Minutes(), s.requests, s.errors,
			s.rss/1e6, s.heap/1e6, s.goroutines, s.openFiles, float64(s.ledger)/1e6, float64(s.wal)/1e6)
	}
	stop()
	wg.Wait()
	if e, ok := firstErr.Load().(error); ok {
		fmt.Fprintf(out, "\nfirst error: %v\n", e)
	}
	return trimWarmup(samples, c.warmup), nil
}

// traffic is request i of the mix: half signed decisions, then API-key decisions of which some
// are held for approval, and batches.
func traffic(i int64) (path string, body []byte, signed bool) {
	switch i % 8 {
	case 0, 2, 4, 6:
		return "/v1/decide", []byte(`{"tool":"fetch_customer_names","params":{"limit":` + strconv.FormatInt(i%900+1, 10) + `}}`), true
	case 1, 5:
		return "/v1/decide", []byte(`{"tool":"fetch_customer_names","params":{"limit":50}}`), false
	case 3:
		// A high threat score: held for approval (pending requests are bounded per agent;
		// beyond the bound the call is denied, as documented).
		return "/v1/decide", []byte(`{"tool":"fetch_customer_names","params":{"limit":5,"filter":"x' UNION SELECT password FROM users --` + strconv.FormatInt(i, 10) + `"}}`), false
	default:
		return "/v1/decide/batch", []byte(`{"calls":[{"tool":"fetch_customer_names","params":{"limit":1}},{"tool":"delete_file","params":{"path":"/reports/a"}},{"tool":"fetch_customer_names","params":{"limit":2}}]}`), false
	}
}

// probe reads the gateway's own metrics and the ledger's files.
func probe(base, dataDir string) (sample, error) {
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		return sample{}, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return sample{}, err
	}
	var s sample
	for _, line := range strings.Split(string(raw), "\n") {
		name, val, ok := strings.Cut(line, " ")
		if !ok || strings.HasPrefix(line, "#") {
			continue
		}
		v, err := strconv.ParseFloat(val, 64)
		if err != nil {
			continue
		}
		switch name {
		case "process_resident_memory_bytes":
			s.rss = v
		case "go_memstats_heap_inuse_bytes":
			s.heap = v
		case "go_goroutines":
			s.goroutines = v
		case "process_open_fds":
			s.openFiles = v
		}
	}
	if s.goroutines == 0 || s.openFiles == 0 {
		return s, errors.New("metrics without go_goroutines or process_open_fds")
	}
	s.ledger = fileSize(filepath.Join(dataDir, app.LedgerFile))
	s.wal = fileSize(filepath.Join(dataDir, app.LedgerFile+"-wal"))
	return s, nil
}

func fileSize(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.Size()
}

// trimWarmup drops the samples taken before warmup, keeping at least two.
func trimWarmup(s []sample, warmup time.Duration) []sample {
	for len(s) > 2 && s[0].at < warmup {
		s = s[1:]
	}
	return s
}

// Margins of the growth check: a few goroutines and files come and go with the traffic (an
// in-flight request holds a goroutine and a connection), a leak grows past any constant.
const (
	goroutineSlack = 64
	fileSlack      = 32
)

// check fails when goroutines or open files grew, from the first sample after warm-up to the
// last ones, by more than the slack; or when more than 1% of requests failed.
func check(s []sample) error {
	if len(s) < 2 {
		return fmt.Errorf("%d samples after warm-up; need two", len(s))
	}
	first, last := s[0], s[len(s)-1]
	var errs []error
	if last.goroutines > first.goroutines+goroutineSlack {
		errs = append(errs, fmt.Errorf("goroutines grew from %.0f to %.0f", first.goroutines, last.goroutines))
	}
	if last.openFiles > first.openFiles+fileSlack {
		errs = append(errs, fmt.Errorf("open files grew from %.0f to %.0f", first.openFiles, last.openFiles))
	}
	if last.requests == 0 || float64(last.errors) > 0.01*float64(last.requests) {
		errs = append(errs, fmt.Errorf("%d errors in %d requests", last.errors, last.requests))
	}
	return errors.Join(errs...)
}
