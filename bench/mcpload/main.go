// Command mcpload measures the latency the MCP gateway adds to a tools/call, out of process, with
// the real binaries: the agent's clients (this process), the gateway (`portcullis mcp` or
// `portcullis serve`) and the upstream server (bench/mcpload/echo, one tool "echo") each run as
// their own process, as in a deployment — so each process's garbage collector pays only for its
// own garbage, unlike the in-process benchmark (internal/gateway/mcp BenchmarkToolsCall).
//
//	go run ./bench/mcpload -rounds 3 -duration 10s
//
// Every gateway has every feature on: API-key authentication, inspection of the arguments and of
// the result, a deny-by-default policy that allows echo, tool pinning, and the durable SQLite
// ledger (a decision and a result record per call, each committed before the call goes on).
// Each workload is measured on the direct path and through the gateway in alternating order,
// round after round, so that the host's noise falls on both sides:
//
//   - stdio: the client launches `portcullis mcp --config CFG -- echo` vs `echo` itself; 1 client.
//   - http: clients speak Streamable HTTP to `portcullis serve`'s /mcp (API key) in front of echo
//     as a stdio child, vs to echo serving Streamable HTTP itself.
//   - http-http: the same with echo as a remote Streamable HTTP upstream of the gateway.
//
// The http modes run 1 client, -clients clients paced to -rate calls/s in total (each call timed
// from when it was due, so a stall is not hidden; -loads paced=N,paced=M sweeps several rates) and -clients clients in a closed loop (the
// saturation throughput). The gateway's CPU time per call is read from /proc. With -gateway-env,
// given several times, several gateway processes run side by side with different environments
// (e.g. GOGC=800); "" is portcullis's default (GOGC and GOMEMLIMIT are removed from the
// environment the gateways inherit).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/portcullis-ai/portcullis/bench/internal/proc"
)

func main() {
	c := config{out: os.Stdout}
	flag.StringVar(&c.bin, "bin", "", "portcullis binary (default: built from this checkout)")
	flag.StringVar(&c.echo, "echo", "", "echo server binary (default: built from bench/mcpload/echo)")
	flag.StringVar(&c.data, "data", "", "directory for the gateways' data (ledgers) and logs; its disk takes the ledger's fsyncs (default: a new temporary directory)")
	flag.DurationVar(&c.duration, "duration", 10*time.Second, "measured time of each run")
	flag.DurationVar(&c.warmup, "warmup", 2*time.Second, "load sent before each measured run")
	flag.IntVar(&c.rounds, "rounds", 3, "rounds; each measures every workload on every path")
	flag.IntVar(&c.clients, "clients", 64, "clients of the concurrent workloads")
	flag.Float64Var(&c.rate, "rate", 1000, "total calls/s of the paced workload")
	modes := flag.String("modes", "stdio,http", "comma-separated: stdio (the wrapper), http (serve, stdio upstream), http-http (serve, HTTP upstream)")
	loads := flag.String("loads", "1,paced,closed", "comma-separated workloads of the http modes: 1 (one client), paced (at -rate), paced=N (at N calls/s), closed")
	flag.StringVar(&c.cpuProfile, "cpuprofile", "", "write each serve gateway's CPU profile (whole run) to PREFIX-N.pprof")
	flag.StringVar(&c.durability, "result-durability", "", "ledger.result_durability of the gateways: sync (the default) or relaxed")
	flag.Var(&c.envs, "gateway-env", `extra environment of a gateway, e.g. "GOGC=800" or "GOGC=off GOMEMLIMIT=512MiB"; repeat for several gateways side by side ("" is the default)`)
	flag.Parse()
	c.modes, c.loads = strings.Split(*modes, ","), strings.Split(*loads, ",")
	if _, err := run(context.Background(), c); err != nil {
		fmt.Fprintln(os.Stderr, "mcpload:", err)
		os.Exit(1)
	}
}

type config struct {
	bin, echo, data  string
	cpuProfile       string
	duration, warmup time.Duration
	rounds, clients  int
	rate             float64
	modes, loads     []string
	envs             envList
	durability       string // ledger.result_durability of every gateway ("": the default, sync)
	out              io.Writer
}

// envList is a repeatable flag.
type envList []string

func (e *envList) String() string     { return strings.Join(*e, " | ") }
func (e *envList) Set(s string) error { *e = append(*e, s); return nil }

// workload is one mode at one load.
type workload struct {
	mode    string
	clients int
	rate    float64 // calls/s for all clients together; 0: closed loop
	direct  *target
	gateway []*target
}

func (w *workload) label() string {
	r := "closed loop"
	if w.rate > 0 {
		r = fmt.Sprintf("paced %.0f/s", w.rate)
	}
	return fmt.Sprintf("%s | %d | %s", w.mode, w.clients, r)
}

// row is one gateway variant of one workload in one round, beside that round's direct path.
type row struct {
	round   int
	work    *workload
	env     string
	direct  result
	gateway result
}

func run(ctx context.Context, c config) ([]row, error) {
	if len(c.envs) == 0 {
		c.envs = envList{""}
	}
	for _, m := range c.modes {
		if m != "stdio" && m != "http" && m != "http-http" {
			return nil, fmt.Errorf("unknown mode %q", m)
		}
	}
	for _, l := range c.loads {
		if _, ok := pacedRate(l, c.rate); !ok && l != "1" && l != "closed" {
			return nil, fmt.Errorf("unknown load %q", l)
		}
	}
	tmp := c.data
	if tmp == "" {
		var err error
		if tmp, err = os.MkdirTemp("", "portcullis-mcpload-"); err != nil {
			return nil, err
		}
		defer os.RemoveAll(tmp)
	}
	l := &lab{tmp: tmp, bin: c.bin, echo: c.echo, cpuProfile: c.cpuProfile, durability: c.durability}
	defer l.close()
	var err error
	if l.bin == "" {
		if l.bin, err = build(tmp, "github.com/portcullis-ai/portcullis/cmd/portcullis"); err != nil {
			return nil, err
		}
	}
	if l.echo == "" {
		if l.echo, err = build(tmp, "github.com/portcullis-ai/portcullis/bench/mcpload/echo"); err != nil {
			return nil, err
		}
	}
	works, err := setUp(ctx, l, c)
	if err != nil {
		return nil, err
	}

	abs, _ := filepath.Abs(tmp)
	fmt.Fprintf(c.out, "# MCP gateway, out of process: added latency per tools/call\n\n")
	fmt.Fprintf(c.out, "date: %s  machine: %d cores (%s)  go: %s  load average at start: %s\n", time.Now().UTC().Format(time.RFC3339), runtime.NumCPU(), proc.CPUModel(), runtime.Version(), loadAvg())
	fmt.Fprintf(c.out, "rounds: %d, each run %s after %s warm-up; ledgers in %s\n\n", c.rounds, c.duration, c.warmup, abs)

	var rows []row
	for r := 1; r <= c.rounds; r++ {
		for _, w := range works {
			// Direct first in odd rounds, last in even ones, so drift falls on both sides.
			paths := append([]*target{w.direct}, w.gateway...)
			if r%2 == 0 {
				slices.Reverse(paths)
			}
			res := map[*target]result{}
			for _, t := range paths {
				if _, err := measure(ctx, t, w, c.warmup); err != nil {
					fmt.Fprintf(os.Stderr, "mcpload: %s, %s, warm-up: %v\n", w.label(), t.name, err)
				}
				m, err := measure(ctx, t, w, c.duration)
				if err != nil {
					fmt.Fprintf(os.Stderr, "mcpload: round %d, %s, %s: %v\n", r, w.label(), t.name, err)
					if t.log != "" {
						fmt.Fprintf(os.Stderr, "mcpload: the end of %s:\n%s\n", t.log, tail(t.log))
					}
				}
				res[t] = m
			}
			for _, g := range w.gateway {
				rows = append(rows, row{round: r, work: w, env: g.env, direct: res[w.direct], gateway: res[g]})
			}
		}
		fmt.Fprintf(os.Stderr, "mcpload: round %d of %d done (load average %s)\n", r, c.rounds, loadAvg())
	}
	report(c.out, rows)
	fmt.Fprintf(c.out, "\nload average at end: %s\n", loadAvg())
	return rows, nil
}

// setUp starts every process and opens every session the run needs.
func setUp(ctx context.Context, l *lab, c config) ([]*workload, error) {
	var works []*workload
	for _, mode := range c.modes {
		if mode == "stdio" {
			w := &workload{mode: "stdio wrapper", clients: 1}
			var err error
			if w.direct, err = l.stdioTarget(ctx, "direct", "", os.Environ(), l.echo); err != nil {
				return nil, err
			}
			for _, env := range c.envs {
				g, err := l.wrapperTarget(ctx, "gateway-stdio", env)
				if err != nil {
					return nil, err
				}
				w.gateway = append(w.gateway, g)
			}
			works = append(works, w)
			continue
		}
		url, err := l.startEchoHTTP()
		if err != nil {
			return nil, err
		}
		label, upstream := "serve /mcp, stdio upstream", fmt.Sprintf("command: %q", l.echo)
		if mode == "http-http" {
			label, upstream = "serve /mcp, HTTP upstream", "url: "+url
		}
		direct, err := l.httpTarget(ctx, "direct", "", url, "", c.clients)
		if err != nil {
			return nil, err
		}
		echoPID := l.echoPID
		direct.upstream = func() int { return echoPID }
		var gws []*target
		for _, env := range c.envs {
			g, err := l.serveTarget(ctx, "gateway-"+mode, env, upstream, c.clients)
			if err != nil {
				return nil, err
			}
			gws = append(gws, g)
		}
		for _, load := range c.loads {
			w := &workload{mode: label, clients: c.clients, direct: direct, gateway: gws}
			if load == "1" {
				w.clients = 1
			} else if r, ok := pacedRate(load, c.rate); ok {
				w.rate = r
			}
			works = append(works, w)
		}
	}
	// The first call on each session: the gateway lists and pins the upstream's tools then.
	for _, w := range works {
		for _, t := range append([]*target{w.direct}, w.gateway...) {
			for _, cs := range t.sessions {
				if err := callEcho(ctx, cs); err != nil {
					return nil, fmt.Errorf("%s, %s: first call: %w", w.label(), t.name, err)
				}
			}
		}
	}
	return works, nil
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// report prints one row per round and path, then the medians over the rounds.
func report(w io.Writer, rows []row) {
	if len(rows) == 0 {
		return
	}
	fmt.Fprintf(w, "Each round, direct path beside the gateway (latency in ms; CPU in µs per call, read from /proc for the gateway and upstream processes, getrusage for the clients):\n\n")
	fmt.Fprintf(w, "| round | mode | clients | load | gateway env | direct p50 | direct p99 | gateway p50 | gateway p99 | added p50 | added p99 | calls/s direct | calls/s gateway | gateway CPU | upstream CPU direct / via gateway | client CPU direct / via gateway | errors |\n")
	fmt.Fprintf(w, "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range rows {
		d, g := r.direct, r.gateway
		fmt.Fprintf(w, "| %d | %s | %s | %s | %s | %s | %s | %s | %s | %.0f | %.0f | %s | %s / %s | %s / %s | %d / %d |\n",
			r.round, r.work.label(), envLabel(r.env), ms(d.p50), ms(d.p99), ms(g.p50), ms(g.p99), ms(g.p50-d.p50), ms(g.p99-d.p99),
			d.rate(), g.rate(), us(g.perCall(g.gatewayCPU)), us(d.perCall(d.upstreamCPU)), us(g.perCall(g.upstreamCPU)),
			us(d.perCall(d.clientCPU)), us(g.perCall(g.clientCPU)), d.errors, g.errors)
	}
	fmt.Fprintf(w, "\nMedians over the rounds (added: the median of each round's gateway minus direct):\n\n")
	fmt.Fprintf(w, "| mode | clients | load | gateway env | direct p50 | direct p99 | gateway p50 | gateway p99 | added p50 | added p99 | calls/s direct | calls/s gateway | gateway CPU µs/call |\n")
	fmt.Fprintf(w, "|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	type key struct {
		w   *workload
		env string
	}
	groups := map[key][]row{}
	var order []key
	for _, r := range rows {
		k := key{r.work, r.env}
		if _, ok := groups[k]; !ok {
			order = append(order, k)
		}
		groups[k] = append(groups[k], r)
	}
	for _, k := range order {
		rs := groups[k]
		med := func(f func(row) float64) float64 {
			v := make([]float64, len(rs))
			for i, r := range rs {
				v[i] = f(r)
			}
			slices.Sort(v)
			if len(v)%2 == 1 {
				return v[len(v)/2]
			}
			return (v[len(v)/2-1] + v[len(v)/2]) / 2
		}
		dur := func(f func(row) time.Duration) time.Duration {
			return time.Duration(med(func(r row) float64 { return float64(f(r)) }))
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %s | %s | %.0f | %.0f | %s |\n", k.w.label(), envLabel(k.env),
			ms(dur(func(r row) time.Duration { return r.direct.p50 })), ms(dur(func(r row) time.Duration { return r.direct.p99 })),
			ms(dur(func(r row) time.Duration { return r.gateway.p50 })), ms(dur(func(r row) time.Duration { return r.gateway.p99 })),
			ms(dur(func(r row) time.Duration { return r.gateway.p50 - r.direct.p50 })), ms(dur(func(r row) time.Duration { return r.gateway.p99 - r.direct.p99 })),
			med(func(r row) float64 { return r.direct.rate() }), med(func(r row) float64 { return r.gateway.rate() }),
			us(dur(func(r row) time.Duration { return r.gateway.perCall(r.gateway.gatewayCPU) })))
	}
}

func envLabel(env string) string {
	if env == "" {
		return "default"
	}
	return env
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f", float64(d)/float64(time.Millisecond)) }
func us(d time.Duration) string { return fmt.Sprintf("%.0f", float64(d)/float64(time.Microsecond)) }

// errCall is a call that came back without the echoed text.
var errCall = errors.New("echo call failed")

// pacedRate reads a paced workload: "paced" runs at def calls/s, "paced=N" at N.
func pacedRate(load string, def float64) (float64, bool) {
	if load == "paced" {
		return def, true
	}
	v, ok := strings.CutPrefix(load, "paced=")
	if !ok {
		return 0, false
	}
	r, err := strconv.ParseFloat(v, 64)
	return r, err == nil && r > 0
}
