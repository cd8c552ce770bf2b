// Command soak runs a real `portcullis serve` at a steady rate of mixed traffic for a bounded
// time and samples what a long-running gateway must keep flat: resident memory, Go heap,
// goroutines, open files, and the ledger's database and WAL on disk. The traffic: RFC 9421
// signed decisions (each with a fresh nonce), API-key decisions, calls held for approval
// (CONSTRAIN), batches, and outcomes whose results are inspected.
//
//	go run ./bench/soak -duration 30m -rate 2000 -interval 1m     # by hand
//	go test ./bench/soak                                          # the 60-second check
//
// It prints one row per sample, and a verdict: goroutines and open files after warm-up must not
// grow (they are the resources a leak grows without bound); with -rss-margin, resident memory
// must not either. Each is compared like with like between the first and the last quarter of the
// samples after warm-up: goroutines and files by their floor, resident memory by its upper
// envelope (the quarter's highest sample), since a sample lands anywhere in the collector's
// cycle. -env passes settings to the gateway's environment (GOGC=200, GOMEMLIMIT=512MiB) so that
// runs differing in one setting can be compared; each row gives the gateway's CPU time per
// request sent since the previous one, the heap live at the last collection (what a leak in the
// Go heap raises) and the memory the Go runtime holds from the OS (RSS less that is the binary's
// pages and memory outside the Go heap). -svg draws the samples as the chart in docs/benchmarks.md.
// The machine's load average is sampled with the rest: on a shared machine a rate the gateway
// did not reach, or a CPU time per request, is read beside it.
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
	flag.DurationVar(&c.warmup, "warmup", 0, "time before the first sample that growth is measured from (0: the longest lifetime of what the gateway remembers, see longestLifetime)")
	flag.DurationVar(&c.outcomeTTL, "outcome-ttl", 5*time.Minute, "the gateway's limits.outcome_ttl: how long an outcome may be reported, and its claim remembered")
	flag.StringVar(&c.heapProfiles, "heap-profiles", "", "directory: the gateway writes a heap profile there at each sample after warm-up (heap.1, heap.2, …; diff two with go tool pprof -base)")
	flag.IntVar(&c.rate, "rate", 2000, "requests per second")
	flag.StringVar(&c.bin, "bin", "", "the portcullis binary (default: built from this checkout)")
	flag.StringVar(&c.keep, "keep", "", "move the gateway's data directory here after the run (to measure its ledger, e.g. with audit archive)")
	flag.Float64Var(&c.rssMargin, "rss-margin", 0, "fail when resident memory after warm-up rises more than this fraction above its first post-warm-up sample (0: report only)")
	flag.Func("env", "`NAME=VALUE` added to the gateway's environment (repeatable), e.g. GOGC=200", func(v string) error {
		if name, _, ok := strings.Cut(v, "="); !ok || name == "" {
			return fmt.Errorf("%q is not NAME=VALUE", v)
		}
		c.env = append(c.env, v)
		return nil
	})
	svg := flag.String("svg", "", "draw the samples as an SVG chart in this file")
	flag.Parse()
	if c.warmup == 0 {
		c.warmup = longestLifetime(c.outcomeTTL)
	} else if l := longestLifetime(c.outcomeTTL); c.warmup < l {
		fmt.Fprintf(os.Stderr, "soak: warning: the warm-up %v is shorter than the longest lifetime of what the gateway remembers (%v): memory will still be filling when growth is measured\n", c.warmup, l)
	}
	samples, err := run(context.Background(), c, os.Stdout)
	if *svg != "" && len(samples) > 0 {
		// Drawn even when the run stopped early: the samples taken so far are the evidence.
		if werr := os.WriteFile(*svg, chart(samples, c), 0o644); werr != nil {
			fmt.Fprintln(os.Stderr, "soak:", werr)
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "soak:", err)
		os.Exit(1)
	}
	after := trimWarmup(samples, c.warmup)
	fmt.Println(verdict(after))
	if err := check(after, c.rssMargin); err != nil {
		fmt.Fprintln(os.Stderr, "soak:", err)
		os.Exit(1)
	}
}

type config struct {
	duration, interval, warmup time.Duration
	rate                       int
	bin                        string
	keep                       string
	rssMargin                  float64
	env                        []string // NAME=VALUE added to the gateway's environment
	// outcomeTTL is the gateway's limits.outcome_ttl (0: its default).
	outcomeTTL time.Duration
	// heapProfiles, when set, is where the gateway writes a heap profile at each sample after
	// warm-up.
	heapProfiles string
}

// Lifetimes of what the gateway remembers per request, beyond the outcome claims': a signature
// nonce lives for the signature window (5 minutes of skew and age, plus 30 seconds) and up to one
// expiry bucket (15 s) more. An outcome claim lives for the outcome TTL and a minute, and up to
// one claim bucket (a minute) more.
const (
	nonceLifetime      = 5*time.Minute + 30*time.Second + 15*time.Second
	claimExtraLifetime = 2 * time.Minute
)

// longestLifetime is the warm-up a soak needs before memory can be flat: until the first things
// remembered are forgotten, every store only fills, and growth measured then is that filling.
func longestLifetime(outcomeTTL time.Duration) time.Duration {
	if outcomeTTL == 0 {
		outcomeTTL = time.Hour // the gateway's default
	}
	return max(nonceLifetime, outcomeTTL+claimExtraLifetime) + time.Minute
}

// sample is what the gateway looked like at one moment.
type sample struct {
	at                    time.Duration
	requests, errors      int64
	dropped               int64   // requests the generator did not send: the gateway had 256 in flight
	load                  float64 // the machine's one-minute load average
	rss, heap             float64 // bytes
	goHeld                float64 // bytes the Go runtime holds from the OS (heap not yet returned, stacks, metadata)
	cpu                   float64 // the gateway's CPU seconds (user and system) since it started
	gogc, memLimit        float64 // the collector's settings in force (GOGC percent, memory limit in bytes)
	live                  float64 // the heap live at the last collection, in bytes: its next target over 1+GOGC/100
	goroutines, openFiles float64
	ledger, wal           int64 // bytes on disk
}

// run returns every sample, warm-up included.
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
	cfgPath, apiKey, priv, err := proc.InitGateway(ctx, dataDir, "soak-key")
	if err != nil {
		return nil, err
	}
	if c.outcomeTTL > 0 {
		// limits is the configuration's last section (proc.InitGateway).
		if err := appendFile(cfgPath, fmt.Sprintf("  outcome_ttl: %s\n", c.outcomeTTL)); err != nil {
			return nil, err
		}
	}
	args := []string{"serve", "--data", dataDir, "--listen", "127.0.0.1:0"}
	if c.heapProfiles != "" {
		if err := os.MkdirAll(c.heapProfiles, 0o755); err != nil {
			return nil, err
		}
		args = append(args, "--heapprofile", filepath.Join(c.heapProfiles, "heap"))
	}
	srv := exec.Command(bin, args...)
	stdout, _ := srv.StdoutPipe()
	srv.Stderr = io.Discard
	srv.Env = append(os.Environ(), c.env...)
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
	// The pool's connections are capped as an orchestrator's would be: a request the gateway is
	// slow to answer waits for a connection rather than opening one more, so the gateway's open
	// files and goroutines measure the gateway, not how slow a busy machine made it (uncapped, up
	// to 256 requests in flight opened up to 256 connections and read as growth).
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: soakConns, MaxConnsPerHost: soakConns}}
	var requests, failures, dropped atomic.Int64
	var firstErr firstError
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
			firstErr.keep(err)
			return
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusTooManyRequests {
			failures.Add(1)
			firstErr.keep(fmt.Errorf("%s: %d %s", path, resp.StatusCode, raw))
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
					firstErr.keep(err)
					return
				}
				ob, _ = io.ReadAll(r.Body)
				r.Body.Close()
				if r.StatusCode != http.StatusOK {
					failures.Add(1)
					firstErr.keep(fmt.Errorf("/v1/outcome: %d %s", r.StatusCode, ob))
				}
			}
		}
	}

	// Paced by the clock, not by ticks: every millisecond the generator sends what the rate owes
	// since the start. A ticker at 1/rate loses the ticks a busy machine does not deliver in time,
	// and the rate offered falls below the one asked without a trace. Each request runs on its own
	// goroutine, at most 256 in flight; beyond that a request is dropped and counted, not queued.
	runCtx, stop := context.WithTimeout(ctx, c.duration)
	defer stop()
	var wg sync.WaitGroup
	sem := make(chan struct{}, 256)
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		begin := time.Now()
		for i := int64(0); ; {
			select {
			case <-runCtx.Done():
				return
			case <-tick.C:
			}
			for due := int64(time.Since(begin).Seconds() * float64(c.rate)); i < due; i++ {
				select {
				case sem <- struct{}{}:
					wg.Add(1)
					go func(i int64) {
						defer wg.Done()
						defer func() { <-sem }()
						send(i)
					}(i)
				default:
					dropped.Add(1)
				}
			}
		}
	}()

	fmt.Fprintf(out, "# Portcullis soak: %d requests/s for %s, a sample every %s", c.rate, c.duration, c.interval)
	if len(c.env) > 0 {
		fmt.Fprintf(out, "; gateway environment %s", strings.Join(c.env, " "))
	}
	ttl := "the default (1h)"
	if c.outcomeTTL > 0 {
		ttl = c.outcomeTTL.String()
	}
	fmt.Fprintf(out, "; outcome TTL %s; growth measured after a warm-up of %s", ttl, c.warmup)
	fmt.Fprintln(out)
	profiles := 0
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
		if done && len(samples) > 0 && time.Since(start)-samples[len(samples)-1].at < c.interval/4 {
			break // the last tick's sample is the end's
		}
		s, err := probe(base, dataDir)
		if err != nil {
			return samples, err
		}
		s.at, s.requests, s.errors, s.dropped, s.load = time.Since(start), requests.Load(), failures.Load(), dropped.Load(), loadAverage()
		var prev sample
		if len(samples) > 0 {
			prev = samples[len(samples)-1]
		}
		if len(samples) == 0 {
			// The settings in force, read back from the gateway: what -env asked is confirmed.
			fmt.Fprintf(out, "\ngateway: GOGC %.0f, memory limit %.0f MiB\n\n", s.gogc, s.memLimit/(1<<20))
			fmt.Fprintf(out, "| minute | requests | sent/s | errors | dropped | RSS MB | heap MB | live heap MB | Go held MB | CPU µs/req | goroutines | open files | ledger MB | WAL MB | load |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
		}
		samples = append(samples, s)
		if c.heapProfiles != "" && s.at >= c.warmup {
			// Written by the gateway after a collection; stderr says when, beside the table.
			if err := srv.Process.Signal(syscall.SIGUSR1); err == nil {
				profiles++
				fmt.Fprintf(os.Stderr, "soak: heap profile %s.%d at minute %.1f\n", filepath.Join(c.heapProfiles, "heap"), profiles, s.at.Minutes())
			}
		}
		fmt.Fprintf(out, "| %.1f | %d | %.0f | %d | %d | %.1f | %.1f | %.1f | %.1f | %.0f | %.0f | %.0f | %.1f | %.1f | %.1f |\n", s.at.Minutes(), s.requests,
			float64(s.requests-prev.requests)/(s.at-prev.at).Seconds(), s.errors, s.dropped,
			s.rss/1e6, s.heap/1e6, s.live/1e6, s.goHeld/1e6, cpuPerRequest(prev, s), s.goroutines, s.openFiles, float64(s.ledger)/1e6, float64(s.wal)/1e6, s.load)
	}
	stop()
	wg.Wait()
	if e := firstErr.get(); e != nil {
		fmt.Fprintf(out, "\nfirst error: %v\n", e)
	}
	return samples, nil
}

// firstError keeps the first error of many goroutines. An atomic.Value would not do: it panics
// when a second error of another concrete type is offered, which ended runs at their first
// mix of a transport error and an HTTP one.
type firstError struct{ p atomic.Pointer[error] }

func (f *firstError) keep(err error) { f.p.CompareAndSwap(nil, &err) }

func (f *firstError) get() error {
	if p := f.p.Load(); p != nil {
		return *p
	}
	return nil
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
	var goSys, released, nextGC float64
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
		case "process_cpu_seconds_total":
			s.cpu = v
		case "go_memstats_sys_bytes":
			goSys = v
		case "go_memstats_heap_released_bytes":
			released = v
		case "go_memstats_next_gc_bytes":
			nextGC = v
		case "go_gc_gogc_percent":
			s.gogc = v
		case "go_gc_gomemlimit_bytes":
			s.memLimit = v
		}
	}
	if s.goroutines == 0 || s.openFiles == 0 {
		return s, errors.New("metrics without go_goroutines or process_open_fds")
	}
	s.goHeld = goSys - released
	if s.gogc > 0 {
		// Near the memory limit the target is lower than GOGC's, and so is this estimate.
		s.live = nextGC / (1 + s.gogc/100)
	}
	s.ledger = fileSize(filepath.Join(dataDir, app.LedgerFile))
	s.wal = fileSize(filepath.Join(dataDir, app.LedgerFile+"-wal"))
	return s, nil
}

// loadAverage is the machine's one-minute load average (Linux), 0 where it cannot be read.
func loadAverage() float64 {
	raw, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0
	}
	f, _, _ := strings.Cut(string(raw), " ")
	v, _ := strconv.ParseFloat(f, 64)
	return v
}

// cpuPerRequest is the gateway's CPU time per request sent between two samples, in µs.
func cpuPerRequest(a, b sample) float64 {
	if b.requests <= a.requests {
		return 0
	}
	return (b.cpu - a.cpu) / float64(b.requests-a.requests) * 1e6
}

// appendFile appends text to the file at path.
func appendFile(path, text string) error {
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	if _, err := f.WriteString(text); err != nil {
		f.Close()
		return err
	}
	return f.Close()
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
// in-flight request holds a goroutine and a connection), a leak grows past any constant. The
// generator's pool (soakConns) is the most connections, each a file and a goroutine of the
// gateway's, that a burst of slowness can leave open until they idle out: a file margin of the
// pool and a little more, so that a slow minute on a busy machine is not read as a leak.
const (
	soakConns      = 32
	goroutineSlack = 64
	fileSlack      = soakConns + 16
)

// check fails when goroutines or open files grew, from the first quarter of the samples after
// warm-up to the last quarter, by more than the slack; when resident memory's upper envelope rose
// by more than rssMargin (a fraction; 0 leaves it unchecked); or when more than 1% of requests
// failed or were dropped. Goroutines and files are compared floor to floor (each quarter's
// lowest sample): at thousands of requests a second the requests in flight at the moment of a
// sample swing them by hundreds, while a leak raises the floor. Resident memory is compared peak
// to peak (each quarter's highest sample): it rises with the heap between collections and falls
// only as the runtime returns memory, so one sample may be taken at a trough and the next at a
// peak; the peaks are what a growth raises, and what a memory limit must hold.
func check(s []sample, rssMargin float64) error {
	if len(s) < 2 {
		return fmt.Errorf("%d samples after warm-up; need two", len(s))
	}
	last := s[len(s)-1]
	var errs []error
	if a, b := quarterFloors(s, goroutines); b > a+goroutineSlack {
		errs = append(errs, fmt.Errorf("goroutines grew from %.0f to %.0f", a, b))
	}
	if a, b := quarterFloors(s, openFiles); b > a+fileSlack {
		errs = append(errs, fmt.Errorf("open files grew from %.0f to %.0f", a, b))
	}
	if a, b := quarterPeaks(s, rssMB); rssMargin > 0 && b > a*(1+rssMargin) {
		errs = append(errs, fmt.Errorf("resident memory's peak grew from %.1f MB in the first quarter to %.1f MB in the last (more than %.0f%%)", a, b, rssMargin*100))
	}
	if last.requests == 0 || float64(last.errors+last.dropped) > 0.01*float64(last.requests+last.dropped) {
		errs = append(errs, fmt.Errorf("%d errors and %d dropped in %d requests", last.errors, last.dropped, last.requests+last.dropped))
	}
	return errors.Join(errs...)
}

func goroutines(x sample) float64 { return x.goroutines }
func openFiles(x sample) float64  { return x.openFiles }
func rssMB(x sample) float64      { return x.rss / 1e6 }

// quarter is the k-th (0–3) of four consecutive runs of s, as equal as can be and each of at
// least one sample (with fewer than four samples, neighbouring quarters share one).
func quarter(s []sample, k int) []sample {
	lo, hi := k*len(s)/4, (k+1)*len(s)/4
	return s[lo:max(hi, lo+1)]
}

// quarterFloors is f's lowest value in the first quarter of s and in the last.
func quarterFloors(s []sample, f func(sample) float64) (first, last float64) {
	lowest := func(s []sample) float64 {
		lo := f(s[0])
		for _, x := range s[1:] {
			lo = min(lo, f(x))
		}
		return lo
	}
	return lowest(quarter(s, 0)), lowest(quarter(s, 3))
}

// quarterPeaks is f's highest value in the first quarter of s and in the last.
func quarterPeaks(s []sample, f func(sample) float64) (first, last float64) {
	p := peaks(s, f)
	return p[0], p[3]
}

// peaks is f's highest value in each quarter of s: its upper envelope.
func peaks(s []sample, f func(sample) float64) [4]float64 {
	var p [4]float64
	for k := range p {
		q := quarter(s, k)
		p[k] = f(q[0])
		for _, x := range q[1:] {
			p[k] = max(p[k], f(x))
		}
	}
	return p
}

// verdict says, in one line, how the samples after warm-up moved: the rate the generator kept,
// the gateway's CPU time per request, resident memory's peak in each quarter, and each
// resource's first, lowest, highest and last value.
func verdict(s []sample) string {
	if len(s) < 2 {
		return "verdict: too few samples after warm-up"
	}
	first, last := s[0], s[len(s)-1]
	span := func(name string, f func(sample) float64, unit string) string {
		lo, hi := f(first), f(first)
		for _, x := range s {
			lo, hi = min(lo, f(x)), max(hi, f(x))
		}
		change := "" // a first sample of 0 (an empty WAL) has no relative change
		if f(first) > 0 {
			change = fmt.Sprintf(", %+.1f%%", 100*(f(last)-f(first))/f(first))
		}
		return fmt.Sprintf("%s %.1f→%.1f%s (%.1f–%.1f%s)", name, f(first), f(last), unit, lo, hi, change)
	}
	env := peaks(s, rssMB)
	return fmt.Sprintf("verdict after warm-up (%.1f–%.1f min): %.0f requests/s sent, %d errors, %d dropped, gateway CPU %.0f µs/request; "+
		"RSS peak per quarter %.1f / %.1f / %.1f / %.1f MB (%+.1f%% first to last); ",
		first.at.Minutes(), last.at.Minutes(), float64(last.requests-first.requests)/(last.at-first.at).Seconds(),
		last.errors-first.errors, last.dropped-first.dropped, cpuPerRequest(first, last),
		env[0], env[1], env[2], env[3], 100*(env[3]-env[0])/env[0]) +
		strings.Join([]string{
			span("RSS", rssMB, " MB"),
			span("heap", func(x sample) float64 { return x.heap / 1e6 }, " MB"),
			span("goroutines", func(x sample) float64 { return x.goroutines }, ""),
			span("open files", func(x sample) float64 { return x.openFiles }, ""),
			span("WAL", func(x sample) float64 { return float64(x.wal) / 1e6 }, " MB"),
		}, "; ")
}
