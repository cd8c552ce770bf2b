package cli

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"os"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
	"strings"

	"golang.org/x/term"

	"github.com/portcullis-ai/portcullis/internal/app"
	"github.com/portcullis-ai/portcullis/internal/config"
)

// runServe implements `portcullis serve`: the gateway. With no flags it runs the embedded default
// in ./portcullis-data (created on first use with the seed's example policy and a demo agent).
func runServe(ctx context.Context, std Stdio, args []string) int {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(std.Err)
	cfgPath := fs.String("config", "", "configuration file (default: <data>/portcullis.yaml, created on first use)")
	data := fs.String("data", dataDirDefault(), "data directory for the embedded default")
	listen := fs.String("listen", "", "listen address, overriding the configuration (e.g. 127.0.0.1:0)")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the whole run to this file (for load tests)")
	heapProfile := fs.String("heapprofile", "", "on SIGUSR1 write a heap profile to this path with .1, .2, … appended (for soak tests)")
	allowEmpty := fs.Bool("allow-empty-policy", false, "start even when the policy paths hold no policy (every call is denied)")
	if code, done := parseCmdFlags(std, fs, args); done {
		return code
	}
	if fs.NArg() > 0 {
		problem(std.Err, fmt.Sprintf("serve: unexpected argument %q", fs.Arg(0)), "run 'portcullis serve -h'")
		return exitUsage
	}
	tuneGC()
	if *cpuProfile != "" {
		stop, err := startCPUProfile(*cpuProfile)
		if err != nil {
			problem(std.Err, "serve: "+err.Error(), "")
			return exitFail
		}
		defer stop()
	}
	if *heapProfile != "" {
		stop, ok := startHeapProfiles(ctx, *heapProfile, func(err error) {
			fmt.Fprintln(std.Err, "serve: heap profile:", err)
		})
		if !ok {
			problem(std.Err, "serve: --heapprofile needs a Unix signal (SIGUSR1), which this platform lacks", "")
			return exitUsage
		}
		defer stop()
	}
	path := *cfgPath
	if path == "" {
		p, key, err := app.Init(ctx, *data)
		if err != nil {
			problem(std.Err, "serve: "+err.Error(), "check that the data directory is writable")
			return exitFail
		}
		path = p
		if key != "" {
			fmt.Fprintf(std.Out, "Initialised %s with the example policy and the demo agent %q.\n", *data, app.DemoAgent)
			fmt.Fprintf(std.Out, "Its API key, shown only this once:\n\n  %s\n\n", key)
		}
	}
	cfg, err := config.Load(path)
	if err != nil {
		return printConfigError(std.Err, err, "")
	}
	if *listen != "" {
		cfg.Listen = *listen
	}
	// Everything that can be checked is, before the data directory, its keys or its ledger are
	// touched: a configuration that cannot run leaves nothing behind.
	sum, err := app.Check(cfg, *allowEmpty)
	if err != nil {
		return printStartCheckError(std.Err, err)
	}
	tuneMemory(cfg.Limits.MemoryLimitMiB, cgroupMemoryFiles)
	log := newLogger(std, cfg.Log)
	warnAllInterfaces(log, cfg.Listen)
	a, err := app.Open(ctx, cfg, path, log)
	if err != nil {
		problem(std.Err, "serve: "+err.Error(), "the gateway refuses to start rather than run without a policy or a writable ledger")
		return exitFail
	}
	defer a.Close(context.WithoutCancel(ctx))
	log.Info("gateway loaded", sum.LogAttrs()...)
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		problem(std.Err, "serve: "+err.Error(), "choose another address with --listen or listen: in the configuration")
		return exitFail
	}
	fmt.Fprintf(std.Out, "portcullis listening on http://%s\n", ln.Addr())
	if err := a.Serve(ctx, ln); err != nil {
		problem(std.Err, "serve: "+err.Error(), "")
		return exitFail
	}
	return exitOK
}

// defaultGCPercent is the garbage collector's target when GOGC is not set. The gateway's live
// heap is small and its garbage short-lived — the MCP SDK allocates a 32 KiB decode buffer for
// every JSON-RPC message — so at Go's default of 100 the collector runs often: a signed decision
// costs 11% more instructions than at 200. Above 200 the instructions saved are none on decisions
// and ≈ 13% of an MCP call's, while the heap's headroom, and with it resident memory, keeps
// growing: at 400 the heap grows to five times what is live between collections, about a quarter
// more RSS than at 200 (docs/benchmarks.md, "Steady state"). The gateway decides more than it
// proxies MCP, and runs for months: 200. GOGC, when set, still
// decides; the memory limit (tuneMemory) caps the headroom whatever the target.
const defaultGCPercent = 200

func tuneGC() {
	if _, set := os.LookupEnv("GOGC"); !set {
		debug.SetGCPercent(defaultGCPercent)
	}
}

// cgroupMemoryFiles hold the container's memory limit (cgroup v2, then v1).
var cgroupMemoryFiles = []string{"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"}

// tuneMemory sets the process's soft memory limit from limits.memory_limit_mib (see
// config.LimitsConfig) unless GOMEMLIMIT is set. With a limit the collector runs harder as the
// heap nears it, so GOGC's headroom never grows the process past it; it returns the limit set in
// bytes (0: none, -1: left to GOMEMLIMIT).
func tuneMemory(mib int64, cgroupFiles []string) int64 {
	if _, set := os.LookupEnv("GOMEMLIMIT"); set {
		return -1
	}
	var limit int64
	switch {
	case mib > 0:
		limit = mib << 20
	case mib == 0:
		limit = config.DefaultMemoryLimitMiB << 20
		if c := cgroupMemoryLimit(cgroupFiles); c > 0 {
			limit = c / 4 * 3
		}
	default:
		limit = math.MaxInt64
	}
	debug.SetMemoryLimit(limit)
	if limit == math.MaxInt64 {
		return 0
	}
	return limit
}

// cgroupMemoryLimit reads the first file of files holding a number ("max" and absurd values,
// meaning no limit, give 0).
func cgroupMemoryLimit(files []string) int64 {
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
		if err != nil || n <= 0 || n >= 1<<60 {
			return 0
		}
		return n
	}
	return 0
}

// startCPUProfile profiles the process until the returned function runs (at shutdown), so a load
// test can see where a decision's CPU goes without exposing a pprof endpoint on the listener.
func startCPUProfile(path string) (func(), error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}, nil
}

// newLogger writes logs to stderr: JSON for machines, or one readable line per event for a
// person (log.format: console, or auto on a terminal).
func newLogger(std Stdio, c config.LogConfig) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(c.Level)) // validated by config
	opts := &slog.HandlerOptions{Level: level}
	if c.Format == "console" || c.Format == "text" || (c.Format == "auto" && isTerminal(std.Err)) {
		opts.ReplaceAttr = func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) == 0 && a.Key == slog.TimeKey {
				return slog.String(slog.TimeKey, a.Value.Time().Format("15:04:05.000"))
			}
			return a
		}
		return slog.New(slog.NewTextHandler(std.Err, opts))
	}
	return slog.New(slog.NewJSONHandler(std.Err, opts))
}

// isTerminal reports whether w is a terminal (a person reads it).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// warnAllInterfaces says so when addr accepts connections from every network, which a
// --listen :8080 does without looking like it.
func warnAllInterfaces(log *slog.Logger, addr string) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		log.Warn("listening on every network interface: anyone who can reach this machine can call the API; use 127.0.0.1:"+port+" for this machine only",
			slog.String("listen", addr))
	}
}
