// Command load measures the whole decision pipeline of a real `portcullis serve` over HTTP: every
// request is signed (RFC 9421, Ed25519, Content-Digest), carries a 1 KiB argument set that is
// inspected, is evaluated against the seed's policy and is recorded durably in the ledger before
// the answer. It prints throughput, client-side latency percentiles and the server's own per-step
// latencies read from /metrics.
//
//	go run ./bench/load -duration 20s -concurrency 64
//	go run ./bench/load -store shared -replicas 2    # replicas on PostgreSQL and Redis
//	go run ./bench/load -api-key -batch 8            # 8 calls per POST /v1/decide/batch
//	go run ./bench/load -api-key -trivial            # the floor: a trivial Go HTTP server
//
// It starts the gateway itself (built from this checkout) in a temporary data directory and
// sends traffic only to 127.0.0.1. With -store shared, the ledger and approvals live in a fresh
// schema of the PostgreSQL at $PORTCULLIS_TEST_POSTGRES and behaviour and nonces under a fresh
// key prefix of the Redis at $PORTCULLIS_TEST_REDIS, both removed afterwards; -replicas starts
// that many gateways on them, provisioned with one set of ledger keys, and spreads the client
// connections over them.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/portcullis-ai/portcullis/bench/internal/proc"
	"github.com/portcullis-ai/portcullis/sdk/httpsig"
)

func main() {
	duration := flag.Duration("duration", 20*time.Second, "how long to send load")
	warmup := flag.Duration("warmup", 3*time.Second, "load sent before measuring")
	concurrency := flag.Int("concurrency", 64, "concurrent clients")
	keyAuth := flag.Bool("api-key", false, "authenticate with an API key instead of signed requests")
	cpuProfile := flag.String("cpuprofile", "", "write the server's CPU profile (whole run) to this file")
	presign := flag.Int("requests", 0, "requests signed before the run (default: 9,000 per second of warm-up and run)")
	store := flag.String("store", "embedded", "embedded (SQLite, memory) or shared (PostgreSQL from $PORTCULLIS_TEST_POSTGRES, Redis from $PORTCULLIS_TEST_REDIS)")
	replicas := flag.Int("replicas", 1, "gateways to run, the clients spread over them (more than one needs -store shared)")
	batch := flag.Int("batch", 0, "calls per request, sent to /v1/decide/batch (0: one call per /v1/decide)")
	trivial := flag.Bool("trivial", false, "send the same requests to a trivial Go HTTP server (reads the body, answers ALLOW) instead of the gateway: the floor")
	serveTrivial := flag.Bool("serve-trivial", false, "run the trivial server (started by -trivial)")
	flag.Parse()
	if *serveTrivial {
		if err := runTrivial(); err != nil {
			fmt.Fprintln(os.Stderr, "load:", err)
			os.Exit(1)
		}
		return
	}
	if *store != "embedded" && *store != "shared" || *replicas < 1 || *replicas > 1 && *store != "shared" {
		fmt.Fprintln(os.Stderr, "load: -store is embedded or shared; -replicas above 1 needs -store shared")
		os.Exit(2)
	}
	shape = loadShape{batch: *batch, trivial: *trivial}
	if err := run(*duration, *warmup, *concurrency, *keyAuth, *cpuProfile, *presign, *store, *replicas); err != nil {
		fmt.Fprintln(os.Stderr, "load:", err)
		os.Exit(1)
	}
}

func run(duration, warmup time.Duration, concurrency int, keyAuth bool, cpuProfile string, presign int, store string, replicas int) error {
	tmp, err := os.MkdirTemp("", "portcullis-load-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	bin := filepath.Join(tmp, "portcullis")
	if out, err := exec.Command("go", "build", "-o", bin, "./cmd/portcullis").CombinedOutput(); err != nil {
		return fmt.Errorf("build: %v\n%s", err, out)
	}
	dataDir := filepath.Join(tmp, "data")
	cfgPath, apiKey, priv, err := proc.InitGateway(context.Background(), dataDir, "load-key")
	if err != nil {
		return err
	}

	dataDirs := []string{dataDir}
	var env []string
	if store == "shared" {
		sh, err := newShared(cfgPath, bin, dataDir)
		if err != nil {
			return err
		}
		defer sh.remove()
		env = sh.env
		for i := 1; i < replicas; i++ {
			d := filepath.Join(tmp, fmt.Sprintf("data%d", i))
			if err := os.CopyFS(d, os.DirFS(dataDir)); err != nil {
				return err
			}
			dataDirs = append(dataDirs, d)
		}
	}
	var (
		srvs  []*exec.Cmd
		bases []string
	)
	defer func() {
		for _, srv := range srvs {
			_ = srv.Process.Signal(syscall.SIGTERM)
		}
		for _, srv := range srvs {
			_ = srv.Wait()
		}
	}()
	for i, dir := range dataDirs {
		args := []string{"serve", "--data", dir, "--listen", "127.0.0.1:0"}
		if cpuProfile != "" && i == 0 {
			abs, err := filepath.Abs(cpuProfile)
			if err != nil {
				return err
			}
			args = append(args, "--cpuprofile", abs)
		}
		srv := exec.Command(bin, args...)
		if shape.trivial {
			self, err := os.Executable()
			if err != nil {
				return err
			}
			srv = exec.Command(self, "-serve-trivial")
		}
		srv.Env = append(os.Environ(), env...)
		stdout, _ := srv.StdoutPipe()
		srv.Stderr = io.Discard
		if err := srv.Start(); err != nil {
			return err
		}
		srvs = append(srvs, srv)
		base, err := proc.WaitListening(stdout, 30*time.Second)
		if err != nil {
			return err
		}
		bases = append(bases, base)
	}

	body, path := requestBody(), "/v1/decide"
	calls := 1
	if shape.batch > 0 {
		calls = shape.batch
		body, path = batchBody(body, calls), "/v1/decide/batch"
	}
	// Every request names the first gateway's authority: replicas answer for one, as behind a
	// load balancer, so a signed request is good at any of them — once.
	host := strings.TrimPrefix(bases[0], "http://")
	// The generator's own cost is not the gateway's: requests are signed and serialised before
	// the clock starts (created times stay well inside the gateway's 5-minute signature window),
	// and sent as raw HTTP/1.1 over keep-alive connections, so the two shared cores go to the
	// gateway rather than to the client's signing and net/http machinery.
	count := presign
	if count <= 0 {
		count = int((warmup + duration).Seconds() * 9000)
	}
	wire, err := prepare(count/calls+1, body, host+path, keyAuth, apiKey, &httpsig.Signer{KeyID: "load-key", Key: priv})
	if err != nil {
		return err
	}
	var next atomic.Int64
	take := func() ([]byte, bool) {
		i := next.Add(1) - 1
		if keyAuth {
			i %= int64(len(wire)) // API-key requests carry no nonce: they can be sent again
		}
		if int(i) >= len(wire) {
			return nil, false
		}
		return wire[i], true
	}
	conns := make(chan *conn, concurrency)
	for i := range concurrency {
		c, err := dial(strings.TrimPrefix(bases[i%len(bases)], "http://"))
		if err != nil {
			return err
		}
		defer c.Close()
		conns <- c
	}
	send := func() (time.Duration, error) {
		msg, ok := take()
		if !ok {
			return 0, errExhausted
		}
		c := <-conns
		defer func() { conns <- c }()
		start := time.Now()
		status, raw, err := c.roundTrip(msg)
		elapsed := time.Since(start)
		if err != nil {
			return 0, err
		}
		if status != 200 || bytes.Count(raw, []byte(`"decision":"ALLOW"`)) != calls {
			return elapsed, fmt.Errorf("status %d: %s", status, raw)
		}
		return elapsed, nil
	}
	if _, err := send(); err != nil {
		return fmt.Errorf("first request: %w", err)
	}

	// Warm up, then measure.
	blast(send, concurrency, warmup)
	scrapeAll := scrapeAll
	if shape.trivial {
		scrapeAll = func([]string) (metrics, error) { return metrics{}, nil }
	}
	before, err := scrapeAll(bases)
	if err != nil {
		return err
	}
	srvCPU0, genCPU0 := serversCPU(srvs), proc.SelfCPU()
	res := blast(send, concurrency, duration)
	srvCPU, genCPU := serversCPU(srvs)-srvCPU0, proc.SelfCPU()-genCPU0
	if res.exhausted {
		return fmt.Errorf("the %d pre-signed requests ran out before the run ended: raise -requests", len(wire))
	}
	lat, errs, firstErr, elapsed := res.latencies, res.errors, res.firstErr, res.elapsed
	after, err := scrapeAll(bases)
	if err != nil {
		return err
	}

	slices.Sort(lat)
	n := len(lat)
	fmt.Printf("# Portcullis pipeline load test\n\n")
	fmt.Printf("date: %s  machine: %d cores (%s)  go: %s\n", time.Now().UTC().Format(time.RFC3339), runtime.NumCPU(), proc.CPUModel(), runtime.Version())
	auth := "RFC 9421 signed requests (Ed25519, Content-Digest)"
	if keyAuth {
		auth = "API key"
	}
	fmt.Printf("auth: %s; body: %d bytes; concurrency: %d; measured: %s after %s warm-up\n", auth, len(body), concurrency, duration, warmup)
	stores := "embedded (SQLite ledger and approvals, memory behaviour, a nonce journal)"
	if store == "shared" {
		stores = "shared (PostgreSQL ledger and approvals, Redis behaviour and nonces, on this machine)"
	}
	fmt.Printf("gateways: %d; stores: %s\n", replicas, stores)
	switch {
	case shape.trivial:
		fmt.Printf("server: a trivial Go HTTP server (reads the body, answers ALLOW), not the gateway\n")
	case shape.batch > 0:
		fmt.Printf("requests: POST /v1/decide/batch, %d calls each; figures are per decided call\n", shape.batch)
	}
	fmt.Println()
	reqs := n
	n *= calls
	fmt.Printf("| decisions | errors | throughput (decisions/s) | p50 | p90 | p99 | max |\n|---|---|---|---|---|---|---|\n")
	fmt.Printf("| %d (%d requests) | %d | %.0f | %s | %s | %s | %s |\n\n", n, reqs, errs, float64(n)/elapsed.Seconds(),
		pct(lat, 0.50), pct(lat, 0.90), pct(lat, 0.99), lat[reqs-1].Round(time.Microsecond))
	if firstErr != nil {
		fmt.Printf("first error: %v\n\n", firstErr)
	}
	if n > 0 && srvCPU > 0 {
		// CPU time per decision is steadier than wall-clock figures on a shared machine: with
		// 2 cores, 2 s of CPU per second is the ceiling for gateway and generator together.
		uncounted := ""
		if store == "shared" {
			uncounted = "; PostgreSQL's and Redis's CPU not counted"
		}
		fmt.Printf("CPU per decision: gateway %s, load generator %s (ceiling on %d cores: %.0f decisions/s%s)\n\n",
			(srvCPU / time.Duration(n)).Round(time.Microsecond), (genCPU / time.Duration(n)).Round(time.Microsecond),
			runtime.NumCPU(), float64(runtime.NumCPU())*float64(n)/(srvCPU+genCPU).Seconds(), uncounted)
	}
	if shape.trivial {
		return nil
	}
	fmt.Printf("Server-side time per step (from portcullis_pipeline_step_duration_seconds, p50/p99 interpolated in histogram buckets):\n\n")
	fmt.Printf("| step | mean | p50 | p99 |\n|---|---|---|---|\n")
	for _, step := range []string{"auth", "inspect", "behavior", "policy", "approval", "ledger"} {
		h := after.hist("portcullis_pipeline_step_duration_seconds", `step="`+step+`"`).minus(before.hist("portcullis_pipeline_step_duration_seconds", `step="`+step+`"`))
		fmt.Printf("| %s | %s | %s | %s |\n", step, secs(h.mean()), secs(h.quantile(0.5)), secs(h.quantile(0.99)))
	}
	total := after.hist("portcullis_decision_duration_seconds", `decision="ALLOW"`).minus(before.hist("portcullis_decision_duration_seconds", `decision="ALLOW"`))
	fmt.Printf("| whole request (server) | %s | %s | %s |\n", secs(total.mean()), secs(total.quantile(0.5)), secs(total.quantile(0.99)))
	return nil
}

// loadShape is what the requests are and where they go (flags -batch, -trivial).
type loadShape struct {
	batch   int
	trivial bool
}

var shape loadShape

// batchBody is n copies of one call's body in a /v1/decide/batch envelope.
func batchBody(call []byte, n int) []byte {
	b := []byte(`{"calls":[`)
	for i := range n {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, call...)
	}
	return append(b, "]}"...)
}

// runTrivial is the floor the gateway is compared with: net/http reading each body and answering
// a fixed decision, nothing else.
func runTrivial() error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	fmt.Printf("trivial server listening on http://%s\n", ln.Addr())
	answer := []byte(`{"decision":"ALLOW","decision_id":"dec_trivial"}` + "\n")
	return http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(answer)
	}))
}

// requestBody is a benign call of the seed policy's fetch_customer_names with a 1 KiB argument set.
func requestBody() []byte {
	params := map[string]any{
		"limit":   250,
		"segment": "enterprise accounts renewed in the last quarter",
		"fields":  []string{"name", "country", "renewal_date", "account_manager", "plan", "seats"},
		"sort":    map[string]any{"by": "renewal_date", "order": "desc"},
		"notes":   strings.Repeat("Quarterly review list for the customer success team. ", 15),
	}
	b, _ := json.Marshal(map[string]any{"tool": "fetch_customer_names", "params": params})
	return b
}

// blastResult is what one run of load measured.
type blastResult struct {
	latencies []time.Duration // of the successful requests
	errors    int64
	firstErr  error
	elapsed   time.Duration
	exhausted bool // the pre-signed requests ran out before the time did
}

// blast runs send from n goroutines for d.
func blast(send func() (time.Duration, error), n int, d time.Duration) blastResult {
	var (
		mu        sync.Mutex
		all       []time.Duration
		errs      atomic.Int64
		firstErr  atomic.Value
		exhausted atomic.Bool
		wg        sync.WaitGroup
	)
	deadline := time.Now().Add(d)
	start := time.Now()
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			local := make([]time.Duration, 0, 4096)
			for time.Now().Before(deadline) {
				l, err := send()
				if errors.Is(err, errExhausted) {
					exhausted.Store(true)
					break
				}
				if err != nil {
					errs.Add(1)
					firstErr.CompareAndSwap(nil, err)
					continue
				}
				local = append(local, l)
			}
			mu.Lock()
			all = append(all, local...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	fe, _ := firstErr.Load().(error)
	return blastResult{latencies: all, errors: errs.Load(), firstErr: fe, elapsed: time.Since(start), exhausted: exhausted.Load()}
}

var errExhausted = errors.New("no pre-signed request left")

// prepare signs n requests (each with its own nonce) and serialises them as HTTP/1.1 messages.
func prepare(n int, body []byte, hostPath string, keyAuth bool, apiKey string, signer *httpsig.Signer) ([][]byte, error) {
	out := make([][]byte, n)
	workers := runtime.NumCPU()
	errc := make(chan error, workers)
	for w := range workers {
		go func() {
			for i := w; i < n; i += workers {
				req, _ := http.NewRequest(http.MethodPost, "http://"+hostPath, bytes.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("User-Agent", "portcullis-load")
				if keyAuth {
					req.Header.Set("Authorization", "Bearer "+apiKey)
				} else if err := signer.Sign(req, body); err != nil {
					errc <- err
					return
				}
				var buf bytes.Buffer
				if err := req.Write(&buf); err != nil {
					errc <- err
					return
				}
				out[i] = buf.Bytes()
			}
			errc <- nil
		}()
	}
	for range workers {
		if err := <-errc; err != nil {
			return nil, err
		}
	}
	return out, nil
}

// conn is one keep-alive connection to the gateway.
type conn struct {
	net.Conn
	r *bufio.Reader
}

func dial(host string) (*conn, error) {
	c, err := net.Dial("tcp", host)
	if err != nil {
		return nil, err
	}
	return &conn{Conn: c, r: bufio.NewReaderSize(c, 16<<10)}, nil
}

// roundTrip writes one serialised request and reads its response.
func (c *conn) roundTrip(msg []byte) (int, []byte, error) {
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write(msg); err != nil {
		return 0, nil, err
	}
	resp, err := http.ReadResponse(c.r, nil)
	if err != nil {
		return 0, nil, err
	}
	raw, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp.StatusCode, raw, err
}

func pct(sorted []time.Duration, q float64) string {
	if len(sorted) == 0 {
		return "-"
	}
	return sorted[int(math.Min(float64(len(sorted)-1), q*float64(len(sorted))))].Round(time.Microsecond).String()
}

func secs(s float64) string {
	if math.IsNaN(s) {
		return "-"
	}
	return time.Duration(s * float64(time.Second)).Round(time.Microsecond / 10).String()
}

// metrics is a scrape of the Prometheus text format: sample name+labels → value.
type metrics map[string]float64

// scrapeAll adds up the gateways' metrics (counters and histogram buckets add).
func scrapeAll(bases []string) (metrics, error) {
	sum := metrics{}
	for _, b := range bases {
		m, err := scrape(b)
		if err != nil {
			return nil, err
		}
		for k, v := range m {
			sum[k] += v
		}
	}
	return sum, nil
}

func serversCPU(srvs []*exec.Cmd) time.Duration {
	var d time.Duration
	for _, s := range srvs {
		d += proc.CPU(s.Process.Pid)
	}
	return d
}

func scrape(base string) (metrics, error) {
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	m := metrics{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		l := sc.Text()
		if strings.HasPrefix(l, "#") || l == "" {
			continue
		}
		i := strings.LastIndexByte(l, ' ')
		v, err := strconv.ParseFloat(l[i+1:], 64)
		if err == nil {
			m[l[:i]] = v
		}
	}
	return m, sc.Err()
}

// histogram is one Prometheus histogram series: cumulative bucket counts by upper bound.
type histogram struct {
	bounds []float64
	counts []float64
	sum    float64
	count  float64
}

func (m metrics) hist(name, label string) histogram {
	var h histogram
	type b struct{ le, c float64 }
	var bs []b
	for k, v := range m {
		if !strings.Contains(k, label) {
			continue
		}
		switch {
		case strings.HasPrefix(k, name+"_bucket{"):
			i := strings.Index(k, `le="`)
			le := k[i+4 : strings.Index(k[i+4:], `"`)+i+4]
			f, _ := strconv.ParseFloat(le, 64) // "+Inf" parses as +Inf
			bs = append(bs, b{f, v})
		case strings.HasPrefix(k, name+"_sum{"):
			h.sum = v
		case strings.HasPrefix(k, name+"_count{"):
			h.count = v
		}
	}
	slices.SortFunc(bs, func(x, y b) int {
		switch {
		case x.le < y.le:
			return -1
		case x.le > y.le:
			return 1
		}
		return 0
	})
	for _, x := range bs {
		h.bounds = append(h.bounds, x.le)
		h.counts = append(h.counts, x.c)
	}
	return h
}

func (h histogram) minus(o histogram) histogram {
	out := histogram{bounds: h.bounds, counts: make([]float64, len(h.counts)), sum: h.sum - o.sum, count: h.count - o.count}
	for i := range h.counts {
		out.counts[i] = h.counts[i]
		if i < len(o.counts) {
			out.counts[i] -= o.counts[i]
		}
	}
	return out
}

func (h histogram) mean() float64 {
	if h.count == 0 {
		return math.NaN()
	}
	return h.sum / h.count
}

// quantile interpolates linearly inside the bucket that holds the q-th observation.
func (h histogram) quantile(q float64) float64 {
	if h.count == 0 {
		return math.NaN()
	}
	rank := q * h.count
	prevBound, prevCount := 0.0, 0.0
	for i, c := range h.counts {
		if c >= rank {
			if math.IsInf(h.bounds[i], 1) {
				return prevBound
			}
			if c == prevCount {
				return h.bounds[i]
			}
			return prevBound + (h.bounds[i]-prevBound)*(rank-prevCount)/(c-prevCount)
		}
		prevBound, prevCount = h.bounds[i], c
	}
	return prevBound
}
