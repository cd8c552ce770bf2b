package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/portcullis-ai/portcullis/bench/internal/proc"
	"github.com/portcullis-ai/portcullis/internal/app"
)

// target is one path to the echo tool: the server reached directly, or through one gateway
// process. Its processes and sessions live for the whole run, across rounds.
type target struct {
	name     string // "direct", or "gateway" with the gateway's extra environment
	env      string // the gateway's extra environment ("" for direct and for the default)
	sessions []*mcp.ClientSession
	gateway  int        // the gateway's pid; 0 on the direct path
	upstream func() int // the pid of the echo server on this path (a gateway's child may be restarted)
	log      string     // where the gateway's (or the stdio server's) stderr goes
}

// lab holds everything a run started, so that it can all be stopped.
type lab struct {
	tmp      string
	bin      string
	echo     string
	stop     []func()
	echoHTTP string // URL of the shared Streamable HTTP echo server, once started
	echoPID  int
	// cpuProfile, if set, is the prefix of the serve gateways' CPU profiles.
	cpuProfile string
	profiles   int
	// durability is ledger.result_durability ("": not set, the default).
	durability string
}

func (l *lab) close() {
	for i := len(l.stop) - 1; i >= 0; i-- {
		l.stop[i]()
	}
}

// gatewayEnv is this process's environment minus the collector settings, plus the variant's:
// the "default" variant must run with portcullis's own default (defaultGCPercent in
// internal/cli), whatever the environment this tool was started in.
func gatewayEnv(variant string, extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "GOGC=") && !strings.HasPrefix(kv, "GOMEMLIMIT=") && !strings.HasPrefix(kv, "PORTCULLIS_") {
			env = append(env, kv)
		}
	}
	env = append(env, strings.Fields(variant)...)
	return append(env, extra...)
}

// dataDir makes a gateway data directory with every feature on: API-key authentication (the
// embedded default's demo agent), inspection of parameters and results (on by default, with
// result blocking and redaction), a deny-by-default policy that allows only echo, tool pinning
// (always on) and the durable SQLite ledger (the default). upstream is appended as the mcp:
// section's upstream (empty for the stdio wrapper, which wraps the command it is given).
func (l *lab) dataDir(upstream string) (cfgPath, apiKey string, err error) {
	dir, err := os.MkdirTemp(l.tmp, "gateway-")
	if err != nil {
		return "", "", err
	}
	cfgPath, apiKey, err = app.Init(context.Background(), dir)
	if err != nil {
		return "", "", err
	}
	policy := `agent_id: ` + app.DemoAgent + `
default_action: DENY
rules:
  - name: echo
    tool: echo
    action: ALLOW
`
	if err := os.WriteFile(filepath.Join(dir, "policies", "report-generator-v1.yaml"), []byte(policy), 0o600); err != nil {
		return "", "", err
	}
	cfg, err := os.ReadFile(cfgPath)
	if err != nil {
		return "", "", err
	}
	// warn: an info line per request would be the logger's cost, not the gateway's. 64 clients of
	// one agent: the per-agent concurrency limit (default 64) is not what is measured.
	cfg = bytes.Replace(cfg, []byte("level: info"), []byte("level: warn"), 1)
	cfg = append(cfg, "\nlimits:\n  max_concurrency_per_agent: 4096\n"...)
	if l.durability != "" {
		cfg = append(cfg, "ledger:\n  result_durability: "+l.durability+"\n"...)
	}
	// call_timeout below the clients' own 30 s: a call the upstream never answers then comes back
	// as the gateway's error result, with its log line, telling it apart from a stall in the
	// gateway itself.
	cfg = append(cfg, "mcp:\n  call_timeout: 20s\n"...)
	if upstream != "" {
		// A sole upstream without a name: its tools keep their names, so the client calls
		// "echo" on every path.
		cfg = append(cfg, "  upstreams:\n    - "+upstream+"\n"...)
	}
	return cfgPath, apiKey, os.WriteFile(cfgPath, cfg, 0o600)
}

// logFile is where a process's stderr goes: kept in the run's directory, shown when it fails.
func (l *lab) logFile(name string) (*os.File, error) {
	return os.CreateTemp(l.tmp, name+"-*.log")
}

func newClient() *mcp.Client {
	return mcp.NewClient(&mcp.Implementation{Name: "mcpload", Version: "1"}, nil)
}

// stdioTarget launches argv as an MCP server over stdio, the way an MCP client launches a server
// or the wrapper in its place.
func (l *lab) stdioTarget(ctx context.Context, name, variant string, env []string, argv ...string) (*target, error) {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = env
	logf, err := l.logFile(name)
	if err != nil {
		return nil, err
	}
	cmd.Stderr = logf
	cs, err := newClient().Connect(ctx, &mcp.CommandTransport{Command: cmd, TerminateDuration: 5 * time.Second}, nil)
	if err != nil {
		logf.Close()
		return nil, fmt.Errorf("%s: %v\n%s", name, err, tail(logf.Name()))
	}
	l.stop = append(l.stop, func() { _ = cs.Close(); logf.Close() })
	t := &target{name: name, env: variant, sessions: []*mcp.ClientSession{cs}, log: logf.Name()}
	pid := cmd.Process.Pid
	if argv[0] == l.echo {
		t.upstream = func() int { return pid }
	} else {
		t.gateway, t.upstream = pid, childOf(pid)
	}
	return t, nil
}

// childOf finds the (first) child of a gateway: its stdio upstream.
func childOf(pid int) func() int {
	return func() int {
		if c := proc.Children(pid); len(c) > 0 {
			return c[0]
		}
		return 0
	}
}

// startEchoHTTP starts the shared Streamable HTTP echo server once.
func (l *lab) startEchoHTTP() (string, error) {
	if l.echoHTTP != "" {
		return l.echoHTTP, nil
	}
	url, pid, _, err := l.startServer("echo-http", exec.Command(l.echo, "-http", "127.0.0.1:0"))
	if err != nil {
		return "", err
	}
	l.echoHTTP, l.echoPID = url, pid
	return url, nil
}

// startServer starts a process that prints "listening on http://ADDR" and stops it with SIGTERM at
// the end of the run. It returns the URL, the pid and the file that holds the process's stderr.
func (l *lab) startServer(name string, cmd *exec.Cmd) (string, int, string, error) {
	logf, err := l.logFile(name)
	if err != nil {
		return "", 0, "", err
	}
	cmd.Stderr = logf
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return "", 0, "", err
	}
	if err := cmd.Start(); err != nil {
		return "", 0, "", err
	}
	l.stop = append(l.stop, func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		logf.Close()
	})
	url, err := proc.WaitListening(stdout, 30*time.Second)
	if err != nil {
		return "", 0, "", fmt.Errorf("%s: %v\n%s", name, err, tail(logf.Name()))
	}
	return url, cmd.Process.Pid, logf.Name(), nil
}

// httpTarget opens clients sessions to a Streamable HTTP endpoint. Each session is one agent's
// client; they share a connection pool large enough that no call waits for or opens a connection
// (net/http keeps only two idle connections per host by default).
func (l *lab) httpTarget(ctx context.Context, name, variant, endpoint, apiKey string, clients int) (*target, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns, tr.MaxIdleConnsPerHost = 0, 4*clients+16
	var rt http.RoundTripper = tr
	if apiKey != "" {
		rt = bearer{key: apiKey, next: tr}
	}
	hc := &http.Client{Transport: rt}
	l.stop = append(l.stop, tr.CloseIdleConnections)
	t := &target{name: name, env: variant}
	client := newClient()
	for range clients {
		cs, err := client.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: endpoint, HTTPClient: hc, MaxRetries: -1}, nil)
		if err != nil {
			return nil, fmt.Errorf("%s: connect %s: %w", name, endpoint, err)
		}
		l.stop = append(l.stop, func() { _ = cs.Close() })
		t.sessions = append(t.sessions, cs)
	}
	return t, nil
}

// bearer adds the agent's API key to every request, as an agent's MCP client configured with a
// header does.
type bearer struct {
	key  string
	next http.RoundTripper
}

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.key)
	return b.next.RoundTrip(r)
}

// serveTarget starts `portcullis serve` with the given upstream and opens clients sessions to its
// /mcp, authenticated with the agent's API key.
func (l *lab) serveTarget(ctx context.Context, name, variant, upstream string, clients int) (*target, error) {
	cfgPath, apiKey, err := l.dataDir(upstream)
	if err != nil {
		return nil, err
	}
	args := []string{"serve", "--config", cfgPath, "--listen", "127.0.0.1:0"}
	if l.cpuProfile != "" {
		l.profiles++
		p, err := filepath.Abs(fmt.Sprintf("%s-%d.pprof", l.cpuProfile, l.profiles))
		if err != nil {
			return nil, err
		}
		args = append(args, "--cpuprofile", p)
	}
	cmd := exec.Command(l.bin, args...)
	cmd.Env = gatewayEnv(variant)
	url, pid, logPath, err := l.startServer(name, cmd)
	if err != nil {
		return nil, err
	}
	t, err := l.httpTarget(ctx, name, variant, url+"/mcp", apiKey, clients)
	if err != nil {
		return nil, err
	}
	t.gateway, t.log = pid, logPath
	if strings.HasPrefix(upstream, "url:") {
		t.upstream = func() int { return l.echoPID }
	} else {
		t.upstream = childOf(pid)
	}
	return t, nil
}

// wrapperTarget launches `portcullis mcp --config CFG -- echo` as the agent's MCP client would.
func (l *lab) wrapperTarget(ctx context.Context, name, variant string) (*target, error) {
	cfgPath, apiKey, err := l.dataDir("")
	if err != nil {
		return nil, err
	}
	return l.stdioTarget(ctx, name, variant, gatewayEnv(variant, "PORTCULLIS_API_KEY="+apiKey), l.bin, "mcp", "--config", cfgPath, "--", l.echo)
}

// tail is the end of a log file, for an error message.
func tail(path string) string {
	b, _ := os.ReadFile(path)
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(b)
}

// build compiles a command package of this module into dir.
func build(dir, pkg string) (string, error) {
	out := filepath.Join(dir, filepath.Base(pkg))
	if b, err := exec.Command("go", "build", "-o", out, pkg).CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build %s: %v\n%s", pkg, err, b)
	}
	return out, nil
}
